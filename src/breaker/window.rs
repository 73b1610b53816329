//! The breaker's sliding window: calls, failures and slow calls over the last duration (16
//! time buckets) or the last N calls (a ring). Lock-free: recording is one or two atomic
//! operations on the current bucket or slot, so concurrent requests never queue on a mutex;
//! time buckets are striped per thread so threads do not even share a cache line.
//! It counts; it decides nothing.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::breaker::policy::BreakerWindow;

/// Buckets of a time-based window (a power of two, so a slot is a mask away from its epoch).
pub const BUCKETS: usize = 16;

/// Copies of a time window's counters; each thread records into one, readers sum them all.
pub const STRIPES: usize = 4;

/// Counts over the current window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// Calls recorded.
    pub calls: u64,
    /// Of those, failures (per `failure_on`).
    pub failures: u64,
    /// Of those, slow calls (per `slow_call.duration`).
    pub slow: u64,
}

impl WindowCounts {
    /// failures / calls, 0 for an empty window.
    pub fn failure_ratio(&self) -> f64 {
        ratio(self.failures, self.calls)
    }

    /// slow / calls, 0 for an empty window.
    pub fn slow_ratio(&self) -> f64 {
        ratio(self.slow, self.calls)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part.min(whole) as f64) / (whole as f64)
    }
}

/// A sliding window of call outcomes.
#[derive(Debug)]
pub enum Window {
    /// The calls of the last `BUCKETS` bucket widths.
    Time(TimeWindow),
    /// The last N calls.
    Count(CountWindow),
}

impl Window {
    /// An empty window of the policy's shape.
    pub fn new(shape: BreakerWindow) -> Self {
        match shape {
            BreakerWindow::Time(d) => Window::Time(TimeWindow::new(d)),
            BreakerWindow::Calls(n) => Window::Count(CountWindow::new(n)),
        }
    }

    /// Records one call; `now` is time since the breaker's origin.
    pub fn record(&self, now: Duration, failure: bool, slow: bool) {
        match self {
            Window::Time(w) => w.record(now, failure, slow),
            Window::Count(w) => w.record(failure, slow),
        }
    }

    /// The counts over the window as of `now`.
    pub fn counts(&self, now: Duration) -> WindowCounts {
        match self {
            Window::Time(w) => w.counts(now),
            Window::Count(w) => w.counts(),
        }
    }

    /// Forgets every call (after closing from half-open, and on reset).
    pub fn clear(&self) {
        match self {
            Window::Time(w) => w.clear(),
            Window::Count(w) => w.clear(),
        }
    }
}

// === impl TimeWindow ===

/// `BUCKETS` buckets of `window / BUCKETS` each; the window is the current bucket and the 15
/// before it, so the oldest calls leave one whole bucket at a time.
///
/// Each counter is one `AtomicU64`: the bucket's epoch (bucket number since the origin,
/// truncated to 32 bits) in the high half and the count in the low half. A record whose
/// epoch differs from the stored one replaces the word, so a bucket that comes round again
/// starts from zero without a lock and without a reader ever seeing a stale count.
///
/// The counters exist `STRIPES` times, each set on its own cache lines: a thread always
/// records into the same stripe, so two threads recording at once do not bounce one cache
/// line between cores. Reading sums every stripe.
#[derive(Debug)]
pub struct TimeWindow {
    width_nanos: u64,
    stripes: Box<[Stripe; STRIPES]>,
}

/// One copy of the bucket counters, aligned so no two stripes share a cache line (128 bytes
/// covers adjacent-line prefetching too).
#[repr(align(128))]
#[derive(Debug, Default)]
struct Stripe {
    calls: [AtomicU64; BUCKETS],
    failures: [AtomicU64; BUCKETS],
    slow: [AtomicU64; BUCKETS],
}

/// This thread's stripe, handed out round robin on first use.
fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES);
        }
        s.get()
    })
}

const COUNT_MASK: u64 = u32::MAX as u64;

impl TimeWindow {
    fn new(window: Duration) -> Self {
        let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        Self {
            width_nanos: (nanos / BUCKETS as u64).max(1),
            stripes: Box::default(),
        }
    }

    /// The bucket number of `now`, truncated to the 32 bits a word keeps.
    fn epoch(&self, now: Duration) -> u64 {
        let nanos = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        (nanos / self.width_nanos) & COUNT_MASK
    }

    fn record(&self, now: Duration, failure: bool, slow: bool) {
        let epoch = self.epoch(now);
        let slot = (epoch as usize) & (BUCKETS - 1);
        let stripe = &self.stripes[stripe_index()];
        bump(&stripe.calls[slot], epoch);
        if failure {
            bump(&stripe.failures[slot], epoch);
        }
        if slow {
            bump(&stripe.slow[slot], epoch);
        }
    }

    fn counts(&self, now: Duration) -> WindowCounts {
        let epoch = self.epoch(now);
        let sum = |words: &[AtomicU64; BUCKETS]| -> u64 {
            words
                .iter()
                .map(|w| {
                    let word = w.load(Ordering::Relaxed);
                    let age = epoch.wrapping_sub(word >> 32) & COUNT_MASK;
                    if age < BUCKETS as u64 {
                        word & COUNT_MASK
                    } else {
                        0
                    }
                })
                .sum()
        };
        let mut counts = WindowCounts::default();
        for stripe in self.stripes.iter() {
            counts.calls += sum(&stripe.calls);
            counts.failures += sum(&stripe.failures);
            counts.slow += sum(&stripe.slow);
        }
        counts
    }

    fn clear(&self) {
        let words = self
            .stripes
            .iter()
            .flat_map(|s| [&s.calls, &s.failures, &s.slow]);
        for words in words {
            for w in words {
                // Count 0: whatever epoch the word is read as, it adds nothing.
                w.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// Adds one to a bucket counter, restarting it when it still holds an older epoch.
fn bump(word: &AtomicU64, epoch: u64) {
    let mut current = word.load(Ordering::Relaxed);
    loop {
        let next = if current >> 32 == epoch {
            current + 1
        } else {
            (epoch << 32) | 1
        };
        match word.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(seen) => current = seen,
        }
    }
}

// === impl CountWindow ===

/// A ring of the last N outcomes (one byte each) with running totals, so reading the window
/// costs three loads however long it is.
#[derive(Debug)]
pub struct CountWindow {
    slots: Box<[AtomicU8]>,
    /// Calls recorded since the last clear; the next slot is `head % len`.
    head: AtomicU64,
    failures: AtomicI64,
    slow: AtomicI64,
}

const RECORDED: u8 = 1;
const FAILURE: u8 = 2;
const SLOW: u8 = 4;

impl CountWindow {
    fn new(calls: u32) -> Self {
        Self {
            slots: (0..calls.max(1)).map(|_| AtomicU8::new(0)).collect(),
            head: AtomicU64::new(0),
            failures: AtomicI64::new(0),
            slow: AtomicI64::new(0),
        }
    }

    fn record(&self, failure: bool, slow: bool) {
        let at = self.head.fetch_add(1, Ordering::Relaxed) % self.slots.len() as u64;
        let value = RECORDED | if failure { FAILURE } else { 0 } | if slow { SLOW } else { 0 };
        let old = self.slots[at as usize].swap(value, Ordering::Relaxed);
        let delta = |bit: u8| i64::from(value & bit != 0) - i64::from(old & bit != 0);
        let (df, ds) = (delta(FAILURE), delta(SLOW));
        if df != 0 {
            self.failures.fetch_add(df, Ordering::Relaxed);
        }
        if ds != 0 {
            self.slow.fetch_add(ds, Ordering::Relaxed);
        }
    }

    fn counts(&self) -> WindowCounts {
        let calls = self
            .head
            .load(Ordering::Relaxed)
            .min(self.slots.len() as u64);
        // Totals may lag a concurrent record by one; clamp so ratios stay within 0–1.
        let clamp = |v: i64| u64::try_from(v).unwrap_or(0).min(calls);
        WindowCounts {
            calls,
            failures: clamp(self.failures.load(Ordering::Relaxed)),
            slow: clamp(self.slow.load(Ordering::Relaxed)),
        }
    }

    fn clear(&self) {
        for slot in &self.slots {
            slot.store(0, Ordering::Relaxed);
        }
        self.head.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        self.slow.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn time_buckets_expire_whole() {
        // 160 ms window: 10 ms buckets.
        let w = Window::new(BreakerWindow::Time(MS * 160));
        w.record(MS * 5, true, false);
        w.record(MS * 15, false, true);
        assert_eq!(
            w.counts(MS * 20),
            WindowCounts {
                calls: 2,
                failures: 1,
                slow: 1
            }
        );
        // At 160 ms the bucket of 0–10 ms has left the window; 10–20 ms has not.
        assert_eq!(w.counts(MS * 165).calls, 1);
        assert_eq!(w.counts(MS * 175).calls, 0);
        // A bucket that comes round again starts from zero.
        w.record(MS * 165, true, false);
        assert_eq!(w.counts(MS * 165).failures, 1);
        w.clear();
        assert_eq!(w.counts(MS * 165), WindowCounts::default());
    }

    #[test]
    fn the_count_window_keeps_the_last_n_calls() {
        let w = Window::new(BreakerWindow::Calls(3));
        for failure in [true, true, false, false] {
            w.record(Duration::ZERO, failure, false);
        }
        let c = w.counts(Duration::ZERO);
        assert_eq!((c.calls, c.failures), (3, 1));
        assert!((c.failure_ratio() - 1.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn records_from_many_threads_all_count() {
        let w = Window::new(BreakerWindow::Time(MS * 1600));
        std::thread::scope(|s| {
            for t in 0..(STRIPES + 2) {
                let w = &w;
                s.spawn(move || {
                    for _ in 0..1000 {
                        w.record(MS * 5, t % 2 == 0, false);
                    }
                });
            }
        });
        let c = w.counts(MS * 5);
        assert_eq!((c.calls, c.failures), ((STRIPES as u64 + 2) * 1000, 3000));
    }

    fn call() -> impl Strategy<Value = (u64, bool, bool)> {
        // (milliseconds since the previous call, failure, slow)
        (0u64..40, any::<bool>(), any::<bool>())
    }

    proptest! {
        /// The time window counts exactly the calls whose bucket is one of the last 16.
        #[test]
        fn time_window_counts_exactly_the_window(
            window_ms in 16u64..800,
            calls in prop::collection::vec(call(), 0..200),
            probe_gap in 0u64..400,
        ) {
            let w = Window::new(BreakerWindow::Time(MS * window_ms as u32));
            let width = (window_ms * 1_000_000 / BUCKETS as u64).max(1);
            let mut t = 0u64;
            let mut log = Vec::new();
            for (gap, failure, slow) in calls {
                t += gap;
                w.record(MS * t as u32, failure, slow);
                log.push((t, failure, slow));
            }
            let now = t + probe_gap;
            let current = now * 1_000_000 / width;
            let mut expected = WindowCounts::default();
            for (at, failure, slow) in log {
                if at * 1_000_000 / width + (BUCKETS as u64) > current {
                    expected.calls += 1;
                    expected.failures += u64::from(failure);
                    expected.slow += u64::from(slow);
                }
            }
            prop_assert_eq!(w.counts(MS * now as u32), expected);
        }

        /// The count window counts exactly the last N calls.
        #[test]
        fn count_window_counts_exactly_the_last_n(
            n in 1u32..50,
            calls in prop::collection::vec(call(), 0..200),
        ) {
            let w = Window::new(BreakerWindow::Calls(n));
            let mut last = VecDeque::new();
            for (_, failure, slow) in calls {
                w.record(Duration::ZERO, failure, slow);
                last.push_back((failure, slow));
                if last.len() > n as usize {
                    last.pop_front();
                }
            }
            let expected = WindowCounts {
                calls: last.len() as u64,
                failures: last.iter().filter(|c| c.0).count() as u64,
                slow: last.iter().filter(|c| c.1).count() as u64,
            };
            prop_assert_eq!(w.counts(Duration::ZERO), expected);
        }
    }
}
