//! The `max_ejection` cap of an upstream with endpoint scope: how many of its endpoint
//! breakers may be open at once. Shared by those breakers; one atomic counter.

use std::sync::atomic::{AtomicU32, Ordering};

/// A shared cap on how many endpoint breakers of one upstream may be open at once
/// (`max_ejection`); a breaker that would open beyond it stays closed.
#[derive(Debug)]
pub struct Ejections {
    max: u32,
    current: AtomicU32,
}

impl Ejections {
    /// At most `max` breakers open at once.
    pub fn new(max: u32) -> Self {
        Self {
            max,
            current: AtomicU32::new(0),
        }
    }

    /// Breakers currently holding an ejection.
    pub fn current(&self) -> u32 {
        self.current.load(Ordering::Relaxed)
    }

    pub(super) fn try_acquire(&self) -> bool {
        self.current
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    pub(super) fn release(&self) {
        let _ = self
            .current
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}
