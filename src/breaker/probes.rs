//! Half-open probe slots: probes in flight and successful probes of the current half-open
//! period, in one atomic word tagged with that period, so a probe admitted in an earlier
//! period can never free a slot of, or count a success for, a later one.

use std::sync::atomic::{AtomicU64, Ordering};

/// Word layout: the period tag (24 bits) above successes (20 bits) above in flight (20 bits).
const FIELD: u64 = (1 << 20) - 1;
const TAG: u64 = (1 << 24) - 1;

/// The probe slots of one breaker.
#[derive(Debug, Default)]
pub(super) struct ProbeSlots(AtomicU64);

impl ProbeSlots {
    /// Starts half-open period `generation` with no probe in flight and no success.
    pub(super) fn start(&self, generation: u64) {
        self.0.store((generation & TAG) << 40, Ordering::Release);
    }

    /// True when period `generation` has a free slot (below `limit`).
    pub(super) fn has_room(&self, generation: u64, limit: u32) -> bool {
        let word = self.0.load(Ordering::Acquire);
        word >> 40 == generation & TAG && word & FIELD < u64::from(limit).min(FIELD)
    }

    /// Takes a slot of period `generation`: `None` when that period is over (look at the
    /// state again), else whether a slot below `limit` was free.
    pub(super) fn take(&self, generation: u64, limit: u32) -> Option<bool> {
        let limit = u64::from(limit).min(FIELD);
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            if current >> 40 != generation & TAG {
                return None;
            }
            if current & FIELD >= limit {
                return Some(false);
            }
            match self.0.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(true),
                Err(seen) => current = seen,
            }
        }
    }

    /// Frees a slot of period `generation`, counting a success when `success`; the
    /// successes so far, or `None` when the period is over.
    pub(super) fn give_back(&self, generation: u64, success: bool) -> Option<u32> {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            if current >> 40 != generation & TAG || current & FIELD == 0 {
                return None;
            }
            let counted = u64::from(success && (current >> 20) & FIELD < FIELD);
            let next = current - 1 + (counted << 20);
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(((next >> 20) & FIELD) as u32),
                Err(seen) => current = seen,
            }
        }
    }
}
