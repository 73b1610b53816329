//! Admission of one try: the balancer's endpoint choice and the breaker's permit together,
//! since with endpoint scope the breaker decides which endpoints may be chosen. Refusals
//! are counted here, once per refused try.

use std::time::Duration;

use tokio::time::Instant;

use crate::breaker::TryPermit;
use crate::breaker::permit::Rejected;
use crate::upstream::Upstream;

/// The endpoint a try goes to and its breaker permit (none when the breaker is off).
pub type Admitted<'a> = (usize, Option<TryPermit<'a>>);

impl Upstream {
    /// Chooses the endpoint for a try (not `avoid` when another will do) and admits the try
    /// on its breaker. Refused when the upstream's breaker is open, or with endpoint scope
    /// when no endpoint's breaker admits it.
    pub fn admit_try(&self, avoid: Option<usize>, now: Instant) -> Result<Admitted<'_>, Rejected> {
        let Some(breakers) = &self.breakers else {
            return Ok((self.balancer.pick(&self.endpoints, avoid), None));
        };
        if !breakers.per_endpoint() {
            return match breakers.admit(0, now) {
                Ok(permit) => Ok((self.balancer.pick(&self.endpoints, avoid), Some(permit))),
                Err(rejected) => {
                    breakers.refused();
                    Err(rejected)
                }
            };
        }
        let n = self.endpoints.len();
        let first = self.balancer.pick_where(&self.endpoints, avoid, |i| {
            breakers.endpoint_available(i, now)
        });
        // The balancer falls back to any endpoint when none is usable; then the first one
        // whose breaker admits the try takes it.
        let mut soonest: Option<Duration> = None;
        for k in 0..n {
            let index = (first + k) % n;
            match breakers.admit(index, now) {
                Ok(permit) => return Ok((index, Some(permit))),
                Err(r) => soonest = Some(soonest.map_or(r.retry_after, |s| s.min(r.retry_after))),
            }
        }
        breakers.refused();
        Err(Rejected {
            retry_after: soonest.unwrap_or_default(),
        })
    }

    /// Admits a CONNECT tunnel's set-up on the upstream breaker. Tunnels go to the requested
    /// authority, not to an endpoint, so endpoint-scoped breakers do not see them.
    pub fn admit_tunnel(&self, now: Instant) -> Result<Option<TryPermit<'_>>, Rejected> {
        match &self.breakers {
            Some(b) if !b.per_endpoint() => b.admit(0, now).map(Some).inspect_err(|_| b.refused()),
            _ => Ok(None),
        }
    }

    /// True when the breaker would refuse any try now: the upstream counts as open (no
    /// permit taken).
    pub fn breaker_refuses(&self, now: Instant) -> bool {
        match &self.breakers {
            None => false,
            Some(b) => !(0..self.endpoints.len()).any(|i| b.endpoint_available(i, now)),
        }
    }
}
