//! Small short-lived byte strings (an upstream's response head relayed to an HTTP/1 app,
//! short body pieces) copied into a shared chunk instead of an allocation each.
//!
//! Why: each was a `malloc` and a `free` per request, and a copied head paid a second pair
//! when its first header value was sliced from it (the copy turns shared then). A chunk is
//! one allocation for dozens of requests; cutting a piece from it is a reference-count
//! increment. The chunk is freed when its last piece is dropped, or reused in place when the
//! next one is needed and no piece of it is left.
//!
//! The cost: a piece kept alive keeps its whole chunk, [`CHUNK`] bytes. So only what is
//! dropped once relayed comes here. Not header values an HTTP/2 peer's HPACK table may keep
//! for the life of its connection (generated request ids, heads for an HTTP/2 app). A body
//! piece waiting in an HTTP/2 stream's send buffer holds one chunk until flow control
//! lets it go.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

/// Bytes per chunk: small enough that a piece held for long pins little, large enough that
/// allocations are rare (a typical response head is about 150 bytes).
pub const CHUNK: usize = 4 * 1024;
/// Larger pieces get their own allocation: they would waste the rest of a chunk.
pub const MAX_PIECE: usize = 512;

thread_local! {
    /// The current chunk of this thread: empty, with the unused rest as capacity.
    static CURRENT: RefCell<BytesMut> = RefCell::new(BytesMut::with_capacity(CHUNK));
}

/// `bytes` as a `Bytes` of its own, cut from this thread's chunk when small.
pub fn copy(bytes: &[u8]) -> Bytes {
    if bytes.len() > MAX_PIECE {
        return Bytes::copy_from_slice(bytes);
    }
    CURRENT.with_borrow_mut(|chunk| {
        // Reclaims the chunk in place when every piece of it is gone; otherwise starts a new
        // one of `CHUNK` bytes (the chunk's original capacity), leaving the old one to its pieces.
        chunk.reserve(bytes.len());
        chunk.extend_from_slice(bytes);
        chunk.split().freeze()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_pieces_share_a_chunk_and_keep_their_bytes_across_chunks() {
        let first = copy(b"HTTP/1.1 200 OK\r\n");
        let second = copy(b"0123456789abcdef");
        // Cut from one chunk: the second starts where the first ends.
        assert_eq!(
            second.as_ptr() as usize,
            first.as_ptr() as usize + first.len()
        );

        // Enough pieces to fill several chunks while all are alive: none is overwritten.
        let pieces: Vec<Bytes> = (0..3 * CHUNK / 100)
            .map(|i| copy(format!("{i:0100}").as_bytes()))
            .collect();
        for (i, piece) in pieces.iter().enumerate() {
            assert_eq!(&piece[..], format!("{i:0100}").as_bytes());
        }
        assert_eq!(&first[..], b"HTTP/1.1 200 OK\r\n");
        assert_eq!(&second[..], b"0123456789abcdef");
    }

    #[test]
    fn a_large_piece_gets_its_own_allocation() {
        let before = copy(b"a");
        let large = copy(&[b'x'; MAX_PIECE + 1]);
        let after = copy(b"b");
        assert_eq!(large.len(), MAX_PIECE + 1);
        assert!(large.iter().all(|&b| b == b'x'));
        // The small pieces on either side are still neighbours in the chunk.
        assert_eq!(after.as_ptr() as usize, before.as_ptr() as usize + 1);
    }

    #[test]
    fn pieces_outlive_their_thread() {
        let piece = std::thread::spawn(|| copy(b"request-id")).join().unwrap();
        assert_eq!(&piece[..], b"request-id");
    }
}
