//! The retry budget: why budgets instead of only a retry count.
//!
//! A per-request attempt limit multiplies load during an outage: with 3 attempts every
//! failing request becomes three, exactly when the upstream can least afford it (a retry
//! storm). A budget caps retries relative to first tries across all requests — by default at
//! most 20 % extra load over the window, plus a small floor so a quiet service can still
//! retry. When the budget runs dry the app gets the last upstream answer at once.
//!
//! Built on tower's `TpsBudget` (finagle's design). A retry is charged when it is scheduled,
//! before its backoff wait, so many requests backing off at once cannot all pass the check.

use tower::retry::budget::{Budget, TpsBudget};

use crate::retry::policy::BudgetPolicy;

/// A retry budget shared by every request to one upstream.
#[derive(Debug)]
pub struct RetryBudget(TpsBudget);

impl RetryBudget {
    /// Builds the budget; validation already keeps the window in 1–60 s and the ratio in
    /// 0–10, which `TpsBudget::new` asserts.
    pub fn new(policy: &BudgetPolicy) -> Self {
        Self(TpsBudget::new(
            policy.window,
            policy.min_per_second,
            policy.ratio,
        ))
    }

    /// Records a first try (earns retry credit).
    pub fn deposit(&self) {
        self.0.deposit();
    }

    /// Takes credit for one retry; false when the budget is exhausted.
    pub fn withdraw(&self) -> bool {
        self.0.withdraw()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn retries_are_capped_at_ratio_times_requests_plus_the_floor() {
        let budget = RetryBudget::new(&BudgetPolicy {
            ratio: 0.2,
            min_per_second: 1,
            window: Duration::from_secs(10),
        });
        let mut allowed = 0;
        for _ in 0..1000 {
            budget.deposit();
            if budget.withdraw() {
                allowed += 1;
            }
        }
        // 20 % of 1000 plus a floor of 1/s over 10 s.
        assert!(allowed <= 200 + 10, "{allowed}");
        assert!(allowed >= 190, "{allowed}");
    }
}
