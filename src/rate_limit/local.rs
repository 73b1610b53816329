//! This replica's token buckets: governor's GCRA on tokio time, one bucket or one per key in an
//! LRU of bounded size. Decides instantly; waiting and metrics live in the layer above.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use lru::LruCache;

use super::key::RequestKey;
use super::policy::Rate;

/// Most keys one keyed limiter remembers. A bucket costs about 100 bytes with its LRU node, so
/// a flood of distinct keys holds at most ~10 MB; the least recently seen key is forgotten
/// first (and gets a full bucket if it comes back).
pub const MAX_KEYS: usize = 100_000;

/// governor's clock on tokio time, so paused-time tests drive the buckets too. Readings are
/// nanoseconds since the clock was made.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.origin.elapsed())
    }
}

/// The shared bucket's GCRA state: the theoretical arrival time governor keeps, also held
/// outside the limiter so the admin API can show the tokens available without taking one.
#[derive(Clone, Debug, Default)]
pub struct Tat(Arc<AtomicU64>);

impl StateStore for Tat {
    type Key = NotKeyed;

    fn measure_and_replace<T, F, E>(&self, _key: &NotKeyed, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut prev = self.0.load(Ordering::Acquire);
        loop {
            let (result, next) = f(NonZeroU64::new(prev).map(|n| Nanos::from(n.get())))?;
            match self.0.compare_exchange_weak(
                prev,
                next.as_u64(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(result),
                Err(actual) => prev = actual,
            }
        }
    }
}

/// The shared bucket on clock `C`, its state readable.
type SharedBucket<C> = RateLimiter<NotKeyed, Tat, C, NoOpMiddleware<Nanos>>;

/// One key's bucket: governor's plain atomic state, nothing extra per key.
type KeyBucket<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<Nanos>>;

/// What a bucket said: a token was taken, or how long until one is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// A token was taken.
    Taken,
    /// Empty; the next token comes after this wait.
    Empty(Duration),
}

/// The buckets of one limiter: one, or one per key (plus one shared by keyless requests).
#[derive(Debug)]
pub struct LocalBuckets<C: Clock<Instant = Nanos> + Clone = TokioClock> {
    quota: Quota,
    burst: u32,
    clock: C,
    shared: SharedBucket<C>,
    shared_tat: Tat,
    keyed: Option<Keyed<C>>,
}

#[derive(Debug)]
struct Keyed<C: Clock<Instant = Nanos> + Clone> {
    hasher: RandomState,
    buckets: Mutex<LruCache<u64, KeyBucket<C>>>,
}

impl LocalBuckets {
    /// Buckets on tokio time for `rate` and `burst`; `keyed` gives one bucket per key.
    pub fn new(rate: Rate, burst: u32, keyed: bool) -> Self {
        Self::with_clock(rate, burst, keyed, MAX_KEYS, TokioClock::default())
    }
}

impl<C: Clock<Instant = Nanos> + Clone> LocalBuckets<C> {
    /// Buckets on `clock` (governor's fake clock in tests), remembering at most `max_keys` keys.
    pub fn with_clock(rate: Rate, burst: u32, keyed: bool, max_keys: usize, clock: C) -> Self {
        let quota = quota(rate, burst);
        let shared_tat = Tat::default();
        Self {
            quota,
            burst: burst.max(1),
            shared: RateLimiter::new(quota, shared_tat.clone(), clock.clone()),
            shared_tat,
            keyed: keyed.then(|| Keyed {
                hasher: RandomState::new(),
                buckets: Mutex::new(LruCache::new(
                    NonZeroUsize::new(max_keys).unwrap_or(NonZeroUsize::MIN),
                )),
            }),
            clock,
        }
    }

    /// Takes a token from the bucket of `key`, or says how long until one is there.
    pub fn check(&self, key: &RequestKey<'_>) -> Check {
        match (&self.keyed, key) {
            (Some(keyed), RequestKey::Ip(_) | RequestKey::Header(_)) => {
                let hash = keyed.hasher.hash_one(key);
                let mut buckets = keyed.buckets.lock().unwrap_or_else(PoisonError::into_inner);
                let bucket = buckets.get_or_insert(hash, || {
                    RateLimiter::direct_with_clock(self.quota, self.clock.clone())
                });
                self.answer(bucket.check())
            }
            _ => self.answer(self.shared.check()),
        }
    }

    fn answer(&self, result: Result<(), governor::NotUntil<Nanos>>) -> Check {
        match result {
            Ok(()) => Check::Taken,
            Err(not_until) => Check::Empty(not_until.wait_time_from(self.clock.now())),
        }
    }

    /// Tokens in the shared bucket now (keyless requests, or every request when not keyed).
    pub fn available(&self) -> u32 {
        let Some(tat) = NonZeroU64::new(self.shared_tat.0.load(Ordering::Acquire)) else {
            return self.burst;
        };
        // The limiter's own start reading came a moment after the clock's origin, so `now`
        // may run a few nanoseconds ahead of governor's: harmless for a count of tokens.
        let now = self.clock.now().as_u64();
        let t = self.quota.replenish_interval().as_nanos().max(1) as u64;
        let tau = t * u64::from(self.burst - 1);
        match (now + tau).checked_sub(tat.get()) {
            Some(slack) => u32::try_from(slack / t + 1)
                .unwrap_or(u32::MAX)
                .min(self.burst),
            None => 0,
        }
    }

    /// Keys remembered now (0 when not keyed).
    pub fn keys(&self) -> usize {
        self.keyed.as_ref().map_or(0, |k| {
            k.buckets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len()
        })
    }
}

/// governor's quota for `rate` with `burst`: one token every `period / tokens`.
fn quota(rate: Rate, burst: u32) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(rate.interval().max(Duration::from_nanos(1)))
        .expect("the interval is positive")
        .allow_burst(burst)
}
