//! Delay before retry number `n` (1 = the first retry). Full jitter for
//! `exponential-jitter`, written here because tower's `ExponentialBackoff` loses its jitter
//! once it reaches the cap. The RNG is a parameter so tests are deterministic.

use std::time::Duration;

use rand::Rng;

use crate::retry::policy::{BackoffPolicy, BackoffStrategy};

/// The delay before retry `n` (>= 1), never above `policy.max`.
pub fn delay(policy: &BackoffPolicy, n: u32, rng: &mut impl Rng) -> Duration {
    let n = n.max(1);
    let exponential = || {
        let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
        policy.base.saturating_mul(factor).min(policy.max)
    };
    match policy.strategy {
        BackoffStrategy::Fixed => policy.base.min(policy.max),
        BackoffStrategy::Linear => policy.base.saturating_mul(n).min(policy.max),
        BackoffStrategy::Exponential => exponential(),
        BackoffStrategy::ExponentialJitter => {
            let cap = exponential();
            let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(rng.random_range(0..=nanos))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn policy(strategy: BackoffStrategy) -> BackoffPolicy {
        BackoffPolicy {
            strategy,
            base: Duration::from_millis(25),
            max: Duration::from_millis(150),
        }
    }

    #[test]
    fn shapes_follow_the_strategy_and_cap_at_max() {
        let mut rng = SmallRng::seed_from_u64(7);
        let ms = |s, n, rng: &mut SmallRng| delay(&policy(s), n, rng).as_millis();
        assert_eq!(
            [1, 2, 3].map(|n| ms(BackoffStrategy::Fixed, n, &mut rng)),
            [25, 25, 25]
        );
        assert_eq!(
            [1, 2, 9].map(|n| ms(BackoffStrategy::Linear, n, &mut rng)),
            [25, 50, 150]
        );
        assert_eq!(
            [1, 2, 3, 4, 40].map(|n| ms(BackoffStrategy::Exponential, n, &mut rng)),
            [25, 50, 100, 150, 150]
        );
    }

    #[test]
    fn full_jitter_stays_within_the_capped_exponential_and_is_seeded() {
        let p = policy(BackoffStrategy::ExponentialJitter);
        let mut a = SmallRng::seed_from_u64(42);
        let mut b = SmallRng::seed_from_u64(42);
        let mut seen_low = false;
        for n in 1..=10 {
            for _ in 0..200 {
                let d = delay(&p, n, &mut a);
                assert_eq!(d, delay(&p, n, &mut b));
                let cap = Duration::from_millis(25 * (1 << (n - 1).min(3))).min(p.max);
                assert!(d <= cap, "retry {n}: {d:?} > {cap:?}");
                seen_low |= d < cap / 4;
            }
        }
        assert!(seen_low, "full jitter should reach low delays");
    }
}
