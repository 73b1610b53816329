//! Endpoint choice for each try: weighted round robin, weighted random, or power of two
//! choices over in-flight counts. Unhealthy endpoints and the one that just failed are
//! skipped while another is available; when none is, any endpoint is used (as Envoy's panic
//! threshold does) rather than failing a request that might still succeed.

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;

use crate::upstream::endpoint::Endpoint;
use crate::upstream::policy::LoadBalancing;

/// Longest precomputed round-robin schedule; larger weight sums are scaled down.
const MAX_SCHEDULE: u64 = 4096;

/// Picks endpoint indices for one upstream.
#[derive(Debug)]
pub struct Balancer {
    strategy: LoadBalancing,
    /// Smooth weighted round-robin order (indices), for `round_robin`.
    schedule: Vec<usize>,
    next: AtomicUsize,
    /// Cumulative weights, for weighted random draws.
    cumulative: Vec<u64>,
}

impl Balancer {
    /// Precomputes the schedule and weight table for these endpoints.
    pub fn new(strategy: LoadBalancing, endpoints: &[Endpoint]) -> Self {
        let weights: Vec<u64> = endpoints.iter().map(|e| u64::from(e.weight)).collect();
        let mut total = 0;
        let cumulative = weights
            .iter()
            .map(|w| {
                total += w;
                total
            })
            .collect();
        Self {
            strategy,
            schedule: smooth_schedule(&weights),
            next: AtomicUsize::new(0),
            cumulative,
        }
    }

    /// An endpoint index for the next try, avoiding `avoid` when another usable one exists.
    pub fn pick(&self, endpoints: &[Endpoint], avoid: Option<usize>) -> usize {
        self.pick_where(endpoints, avoid, |_| true)
    }

    /// As `pick`, also skipping endpoints for which `admits` is false (endpoint breakers
    /// that are open) while another usable one exists.
    pub fn pick_where(
        &self,
        endpoints: &[Endpoint],
        avoid: Option<usize>,
        admits: impl Fn(usize) -> bool,
    ) -> usize {
        if endpoints.len() == 1 {
            return 0;
        }
        let usable = |i: usize| endpoints[i].is_healthy() && Some(i) != avoid && admits(i);
        match self.strategy {
            LoadBalancing::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                let len = self.schedule.len();
                (0..len)
                    .map(|k| self.schedule[(start + k) % len])
                    .find(|&i| usable(i))
                    .unwrap_or(self.schedule[start % len])
            }
            LoadBalancing::Random => self.random(endpoints, &usable),
            LoadBalancing::LeastRequest => {
                let a = self.random(endpoints, &usable);
                let b = self.random(endpoints, &usable);
                // Compare in_flight / weight without division: a_in * b_w vs b_in * a_w.
                let load = |x: usize, y: usize| {
                    u64::from(endpoints[x].in_flight()) * u64::from(endpoints[y].weight)
                };
                if load(b, a) < load(a, b) { b } else { a }
            }
        }
    }

    fn random(&self, endpoints: &[Endpoint], usable: &dyn Fn(usize) -> bool) -> usize {
        let total = *self.cumulative.last().unwrap_or(&1);
        let mut rng = rand::rng();
        for _ in 0..4 {
            let draw = rng.random_range(0..total);
            let i = self.cumulative.partition_point(|&c| c <= draw);
            if usable(i) {
                return i;
            }
        }
        let start = rng.random_range(0..endpoints.len());
        (0..endpoints.len())
            .map(|k| (start + k) % endpoints.len())
            .find(|&i| usable(i))
            .unwrap_or(start)
    }
}

/// nginx's smooth weighted round robin, unrolled once into a fixed order so picking is one
/// atomic increment. Weights `{5, 1, 1}` give `a a b a c a a`, not `a a a a a b c`.
fn smooth_schedule(weights: &[u64]) -> Vec<usize> {
    let sum: u64 = weights.iter().sum();
    let scale = sum.div_ceil(MAX_SCHEDULE).max(1);
    let weights: Vec<i64> = weights
        .iter()
        .map(|w| i64::try_from((w / scale).max(1)).unwrap_or(1))
        .collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    (0..total)
        .map(|_| {
            for (c, w) in current.iter_mut().zip(&weights) {
                *c += w;
            }
            let best = (0..current.len())
                .max_by_key(|&i| (current[i], -(i as i64)))
                .unwrap_or(0);
            current[best] -= total;
            best
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::policy::EndpointPolicy;

    fn endpoints(weights: &[u32]) -> Vec<Endpoint> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                Endpoint::new(
                    &EndpointPolicy {
                        url: format!("http://10.0.0.{i}:80").parse().unwrap(),
                        weight: *w,
                    },
                    std::time::Duration::from_secs(90),
                )
            })
            .collect()
    }

    fn shares(strategy: LoadBalancing, weights: &[u32], n: usize) -> Vec<usize> {
        let eps = endpoints(weights);
        let b = Balancer::new(strategy, &eps);
        let mut counts = vec![0; eps.len()];
        for _ in 0..n {
            counts[b.pick(&eps, None)] += 1;
        }
        counts
    }

    #[test]
    fn smooth_round_robin_interleaves_by_weight() {
        assert_eq!(smooth_schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(
            shares(LoadBalancing::RoundRobin, &[1, 2], 300),
            vec![100, 200]
        );
    }

    #[test]
    fn random_and_least_request_follow_weights_roughly() {
        for strategy in [LoadBalancing::Random, LoadBalancing::LeastRequest] {
            let c = shares(strategy, &[1, 3], 8000);
            assert!(c[1] > c[0] * 2, "{strategy:?} {c:?}");
        }
    }

    #[test]
    fn least_request_prefers_the_idle_endpoint() {
        let eps = endpoints(&[1, 1]);
        let b = Balancer::new(LoadBalancing::LeastRequest, &eps);
        let _busy: Vec<_> = (0..10).map(|_| eps[0].start()).collect();
        let picks: usize = (0..100).filter(|_| b.pick(&eps, None) == 1).count();
        // Two random draws land on the same busy endpoint a quarter of the time.
        assert!(picks >= 60, "{picks}");
    }

    #[test]
    fn avoids_the_failed_and_unhealthy_endpoints_until_none_is_left() {
        let eps = endpoints(&[1, 1, 1]);
        for strategy in [
            LoadBalancing::RoundRobin,
            LoadBalancing::Random,
            LoadBalancing::LeastRequest,
        ] {
            let b = Balancer::new(strategy, &eps);
            eps[1].set_healthy(false);
            for _ in 0..50 {
                assert_eq!(b.pick(&eps, Some(0)), 2, "{strategy:?}");
            }
            eps[2].set_healthy(false);
            eps[0].set_healthy(false);
            let _ = b.pick(&eps, Some(0)); // panic mode: still answers
            for e in &eps {
                e.set_healthy(true);
            }
        }
    }
}
