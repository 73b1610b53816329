//! The layers under the file: retry and breaker presets, the built-in defaults, and the
//! field-by-field merge that stacks route over upstream over `defaults` over built-ins.

use std::time::Duration;

use super::file::{
    BackoffFile, BackoffStrategyFile, BreakerFile, BreakerPreset, BudgetFile, ConcurrencyFile,
    GlobalFile, HedgeFile, OutcomeWord, PoliciesFile, RateLimitFile, RedisTlsFile, RetryAfterFile,
    RetryFile, RetryPreset, ScopeFile, SlowCallFile, TimeoutsFile, Toggle,
};
use super::units::{DurationValue, PercentValue, WindowValue};

/// Field-by-field merge: `self` (the more specific layer) wins, `under` fills the gaps.
pub(crate) trait Merge {
    fn merge(self, under: Self) -> Self;
}

impl<T: Merge> Merge for Option<T> {
    fn merge(self, under: Self) -> Self {
        match (self, under) {
            (Some(a), Some(b)) => Some(a.merge(b)),
            (a, b) => a.or(b),
        }
    }
}

impl<T: Merge> Merge for Toggle<T> {
    fn merge(self, under: Self) -> Self {
        match (self, under) {
            (Toggle::On(a), Toggle::On(b)) => Toggle::On(a.merge(b)),
            (a, _) => a,
        }
    }
}

/// Leaves (scalars and lists) are replaced whole; sections merge recursively.
macro_rules! merge_fields {
    ($t:ident { $($leaf:ident),* } { $($deep:ident),* }) => {
        impl Merge for $t {
            fn merge(self, under: Self) -> Self {
                Self {
                    $($leaf: self.$leaf.or(under.$leaf),)*
                    $($deep: self.$deep.merge(under.$deep),)*
                }
            }
        }
    };
}

merge_fields!(PoliciesFile {} { timeouts, retry, circuit_breaker, rate_limit, concurrency });
merge_fields!(TimeoutsFile { connect, request, per_try, idle } {});
merge_fields!(RetryFile { preset, attempts, on, methods, max_body_bytes }
    { backoff, retry_after, budget, hedge });
merge_fields!(BackoffFile { strategy, base, max } {});
merge_fields!(RetryAfterFile { honor, max } {});
merge_fields!(BudgetFile { ratio, min_per_second, window } {});
merge_fields!(HedgeFile { delay } {});
merge_fields!(RateLimitFile { rate, burst, mode, max_wait, dry_run, key } { global });
merge_fields!(GlobalFile { redis, on_error } { tls });
merge_fields!(RedisTlsFile { ca_file, client_cert, client_key } {});
merge_fields!(BreakerFile {
    preset, consecutive_failures, failure_rate, minimum_calls, window, open_for, max_open_for,
    half_open_calls, success_threshold, failure_on, scope, max_ejection, dry_run
} { slow_call });
merge_fields!(SlowCallFile { duration, rate } {});
merge_fields!(ConcurrencyFile { max_requests } {});

fn secs(s: u64) -> Option<DurationValue> {
    Some(DurationValue(Duration::from_secs(s)))
}

fn millis(ms: u64) -> Option<DurationValue> {
    Some(DurationValue(Duration::from_millis(ms)))
}

/// A retry preset: (attempts, backoff base, request timeout); its backoff max is 10 × base.
pub(crate) fn retry_preset(preset: RetryPreset) -> (u32, Duration, Duration) {
    match preset {
        RetryPreset::Quick => (2, Duration::from_millis(100), Duration::from_secs(5)),
        RetryPreset::Standard => (3, Duration::from_secs(1), Duration::from_secs(30)),
        RetryPreset::Patient => (5, Duration::from_secs(2), Duration::from_secs(120)),
        RetryPreset::Aggressive => (10, Duration::from_millis(500), Duration::from_secs(60)),
    }
}

/// A breaker preset: (consecutive failures, open time).
pub(crate) fn breaker_preset(preset: BreakerPreset) -> (u32, Duration) {
    match preset {
        BreakerPreset::Aggressive => (3, Duration::from_secs(10)),
        BreakerPreset::Moderate => (5, Duration::from_secs(30)),
        BreakerPreset::Tolerant => (10, Duration::from_secs(60)),
        BreakerPreset::Critical => (2, Duration::from_secs(60)),
    }
}

fn breaker_preset_file(preset: BreakerPreset) -> BreakerFile {
    let (consecutive, open_for) = breaker_preset(preset);
    BreakerFile {
        consecutive_failures: Some(consecutive),
        failure_rate: Some(Toggle::On(PercentValue(50.0))),
        minimum_calls: Some(10),
        window: Some(WindowValue::Time(Duration::from_secs(60))),
        open_for: Some(DurationValue(open_for)),
        half_open_calls: Some(3),
        success_threshold: Some(3),
        ..BreakerFile::default()
    }
}

/// Expands the presets of one layer (its own fields win over its preset). A retry preset's
/// request timeout applies unless the same layer sets `timeouts.request`.
pub(crate) fn expand_presets(mut layer: PoliciesFile) -> PoliciesFile {
    if let Some(preset) = layer.retry.as_ref().and_then(|r| r.preset) {
        let (attempts, base, request) = retry_preset(preset);
        let from_preset = RetryFile {
            attempts: Some(attempts),
            backoff: Some(BackoffFile {
                strategy: None,
                base: Some(DurationValue(base)),
                max: Some(DurationValue(base * 10)),
            }),
            ..Default::default()
        };
        layer.retry = layer.retry.merge(Some(from_preset));
        let timeouts = layer.timeouts.get_or_insert_with(TimeoutsFile::default);
        timeouts.request = timeouts.request.or(Some(DurationValue(request)));
    }
    if let Some(Toggle::On(breaker)) = &mut layer.circuit_breaker
        && let Some(preset) = breaker.preset
    {
        *breaker = std::mem::take(breaker).merge(breaker_preset_file(preset));
    }
    layer
}

/// What applies when nothing sets a field (SPEC §2 "Defaults when nothing sets them").
pub(crate) fn builtin() -> PoliciesFile {
    use OutcomeWord::*;
    PoliciesFile {
        timeouts: Some(TimeoutsFile {
            connect: secs(1),
            request: secs(15),
            per_try: secs(5),
            idle: secs(90),
        }),
        retry: Some(RetryFile {
            preset: None,
            attempts: Some(3),
            on: Some(vec![ConnectFailure, Reset, Timeout, GatewayError]),
            methods: Some(
                ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]
                    .map(String::from)
                    .to_vec(),
            ),
            backoff: Some(BackoffFile {
                strategy: Some(BackoffStrategyFile::ExponentialJitter),
                base: millis(25),
                max: secs(1),
            }),
            retry_after: Some(RetryAfterFile {
                honor: Some(true),
                max: secs(10),
            }),
            budget: Some(Toggle::On(BudgetFile {
                ratio: Some(PercentValue(20.0)),
                min_per_second: Some(10),
                window: secs(10),
            })),
            max_body_bytes: Some(super::units::SizeValue(64 * 1024)),
            hedge: Some(HedgeFile { delay: secs(0) }),
        }),
        circuit_breaker: Some(Toggle::On(builtin_breaker())),
        rate_limit: None,
        concurrency: None,
    }
}

/// The breaker fields nothing else sets: `moderate` plus the shared defaults.
pub(crate) fn builtin_breaker() -> BreakerFile {
    use OutcomeWord::*;
    BreakerFile {
        slow_call: Some(Toggle::Off),
        max_open_for: Some(DurationValue(Duration::from_secs(300))),
        failure_on: Some(vec![Class(5), ConnectFailure, Reset, Timeout]),
        scope: Some(ScopeFile::Upstream),
        max_ejection: Some(PercentValue(50.0)),
        dry_run: Some(false),
        ..breaker_preset_file(BreakerPreset::Moderate)
    }
}

/// The rate-limit fields nothing else sets (`rate` has no default).
pub(crate) fn builtin_rate_limit() -> RateLimitFile {
    RateLimitFile {
        rate: None,
        burst: None,
        mode: Some(super::file::LimitModeFile::Reject),
        max_wait: millis(250),
        dry_run: Some(false),
        key: Some("none".into()),
        global: None,
    }
}
