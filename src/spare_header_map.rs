//! One spare, empty `HeaderMap` per thread, so that a proxied request's header map, once
//! its head has gone upstream, holds the next upstream response's headers instead of being
//! freed while a new map is allocated for that response.
//!
//! Why: building a map allocates twice (its index table and its entries) and dropping one
//! frees twice, about 600 instructions per proxied request (callgrind, docs/performance.md),
//! while hyper's HTTP/1 server already reuses each response's map for the next request it
//! parses. With this, the maps of a busy thread go round without `malloc` or `free`.
//!
//! A kept map holds no header values (they are dropped when it is cleared, so it pins no
//! read buffer), only its capacity, which is bounded by [`MAX_CAPACITY`].

use std::cell::Cell;

use http::HeaderMap;

/// Largest capacity kept (headers): enough for ordinary heads, while one with hundreds of
/// headers does not leave a table of that size behind on the thread.
pub const MAX_CAPACITY: usize = 96;

thread_local! {
    static SPARE: Cell<Option<HeaderMap>> = const { Cell::new(None) };
}

/// This thread's spare map, empty; a new one when there is none.
pub fn take() -> HeaderMap {
    SPARE.take().unwrap_or_default()
}

/// `map` emptied for reuse, unless it has no capacity or more than [`MAX_CAPACITY`].
pub fn emptied(mut map: HeaderMap) -> Option<HeaderMap> {
    if map.capacity() == 0 || map.capacity() > MAX_CAPACITY {
        return None;
    }
    map.clear();
    Some(map)
}

/// Keeps `map`, emptied, as this thread's spare unless it is too large or a spare is
/// already kept (then it is dropped as it would have been).
pub fn keep(map: HeaderMap) {
    let Some(map) = emptied(map) else { return };
    SPARE.with(|spare| {
        let kept = spare.take();
        spare.set(kept.or(Some(map)));
    });
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use http::header::{CONTENT_TYPE, HOST};

    use super::*;

    #[test]
    fn a_kept_map_comes_back_empty_with_its_capacity() {
        let mut map = HeaderMap::with_capacity(16);
        map.insert(HOST, HeaderValue::from_static("example.test"));
        map.append(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let capacity = map.capacity();
        keep(map);

        let spare = take();
        assert!(spare.is_empty());
        assert_eq!(spare.capacity(), capacity);
        // Taken: the next one is new.
        assert_eq!(take().capacity(), 0);
    }

    #[test]
    fn one_spare_at_most_and_none_too_large() {
        let _ = take();
        keep(HeaderMap::with_capacity(MAX_CAPACITY * 2));
        assert_eq!(take().capacity(), 0, "a large map is not kept");

        let first = HeaderMap::with_capacity(8);
        let first_capacity = first.capacity();
        keep(first);
        keep(HeaderMap::with_capacity(32));
        assert_eq!(take().capacity(), first_capacity, "the first spare stays");
        assert_eq!(take().capacity(), 0);
    }
}
