//! Turns merged policy sections into the plain policy types, checking every range rule of
//! SPEC §2 on the way. Errors are pushed to the context (all of them), never returned early.

use std::time::Duration;

use super::file::{
    BreakerFile, GlobalFile, LimitModeFile, OnErrorFile, OutcomeWord, RateLimitFile, RetryFile,
    ScopeFile, TimeoutsFile, Toggle,
};
use super::pem::TlsFiles;
use super::units::{PercentValue, WindowValue, format_duration};
use super::validate::Ctx;
use crate::breaker::policy::{BreakerPolicy, BreakerScope, BreakerWindow, SlowCallPolicy};
use crate::outcome::OutcomeFilter;
use crate::rate_limit::policy::{
    GlobalLimitPolicy, LimitMode, OnRedisError, Rate, RateLimitKey, RateLimitPolicy, RedisTlsPolicy,
};
use crate::retry::policy::{
    BackoffPolicy, BackoffStrategy, BudgetPolicy, RetryAfterPolicy, RetryPolicy,
};
use crate::secret::Secret;
use crate::upstream::policy::TimeoutPolicy;

/// Most tries a request may get; more only multiplies load on a failing upstream.
pub(crate) const MAX_ATTEMPTS: u32 = 10;

/// Where a merged section's fields may have come from, most specific first
/// (`upstreams.p.routes[0].retry`, `upstreams.p.retry`, `defaults.retry`).
#[derive(Clone, Debug)]
pub(crate) struct Scopes(pub(crate) Vec<String>);

impl Scopes {
    /// The same scopes one section deeper.
    pub(crate) fn child(&self, key: &str) -> Scopes {
        Scopes(self.0.iter().map(|s| super::tree::join(s, key)).collect())
    }
}

fn dur(d: Option<super::units::DurationValue>) -> Duration {
    d.map(|d| d.0).unwrap_or_default()
}

/// Converts `retry.on` / `failure_on` words into a filter.
pub(crate) fn outcome_filter(words: &[OutcomeWord]) -> OutcomeFilter {
    let mut filter = OutcomeFilter::empty();
    for word in words {
        match *word {
            OutcomeWord::ConnectFailure => filter.connect_failure = true,
            OutcomeWord::Reset => filter.reset = true,
            OutcomeWord::Timeout => filter.timeout = true,
            OutcomeWord::Class(class) => filter.add_status_range(class * 100, class * 100 + 99),
            OutcomeWord::GatewayError => filter.add_status_range(502, 504),
            OutcomeWord::Retriable4xx => filter.add_status(409),
            OutcomeWord::Status(code) => filter.add_status(code),
        }
    }
    filter
}

fn percent(ctx: &mut Ctx<'_>, at: &Scopes, key: &str, value: PercentValue, max: f64) -> f64 {
    if !(0.0..=max).contains(&value.0) {
        ctx.error_in(
            at,
            key,
            format!("must be between 0% and {max}%, got {}%", value.0),
        );
    }
    value.0 / 100.0
}

/// `timeouts`: all non-zero but idle; per_try <= request.
pub(crate) fn timeouts(ctx: &mut Ctx<'_>, t: &TimeoutsFile, at: &Scopes) -> TimeoutPolicy {
    let policy = TimeoutPolicy {
        connect: dur(t.connect),
        request: dur(t.request),
        per_try: dur(t.per_try),
        idle: dur(t.idle),
    };
    for (key, value) in [("connect", policy.connect), ("request", policy.request)] {
        if value.is_zero() {
            ctx.error_in(at, key, "must be greater than 0s");
        }
    }
    if policy.per_try.is_zero() {
        ctx.error_in(at, "per_try", "must be greater than 0s");
    } else if policy.per_try > policy.request {
        let msg = format!(
            "per_try ({}) must not exceed request ({})",
            format_duration(policy.per_try),
            format_duration(policy.request)
        );
        ctx.error_in_any(at, &["per_try", "request"], msg);
    }
    policy
}

/// `retry`, fully merged with the built-ins.
pub(crate) fn retry(ctx: &mut Ctx<'_>, r: &RetryFile, at: &Scopes) -> RetryPolicy {
    let attempts = r.attempts.unwrap_or(1);
    if !(1..=MAX_ATTEMPTS).contains(&attempts) {
        ctx.error_in(
            at,
            "attempts",
            format!("must be between 1 and {MAX_ATTEMPTS}, got {attempts}"),
        );
    }
    let mut methods = Vec::new();
    for (i, m) in r.methods.iter().flatten().enumerate() {
        match http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
            Ok(method) if !m.is_empty() => methods.push(method),
            _ => ctx.error_in(
                at,
                &format!("methods[{i}]"),
                format!("\"{m}\" is not an HTTP method"),
            ),
        }
    }
    let b = r.backoff.clone().unwrap_or_default();
    let backoff = BackoffPolicy {
        strategy: match b.strategy {
            Some(super::file::BackoffStrategyFile::Fixed) => BackoffStrategy::Fixed,
            Some(super::file::BackoffStrategyFile::Linear) => BackoffStrategy::Linear,
            Some(super::file::BackoffStrategyFile::Exponential) => BackoffStrategy::Exponential,
            _ => BackoffStrategy::ExponentialJitter,
        },
        base: dur(b.base),
        max: dur(b.max),
    };
    if backoff.base > backoff.max {
        let msg = format!(
            "base ({}) must not exceed max ({})",
            format_duration(backoff.base),
            format_duration(backoff.max)
        );
        ctx.error_in_any(&at.child("backoff"), &["base", "max"], msg);
    }
    let ra = r.retry_after.clone().unwrap_or_default();
    let budget = match r.budget.clone() {
        Some(Toggle::On(b)) => {
            let at = at.child("budget");
            let ratio = percent(
                ctx,
                &at,
                "ratio",
                b.ratio.unwrap_or(PercentValue(20.0)),
                1000.0,
            );
            let window = dur(b.window);
            if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&window) {
                let msg = format!(
                    "must be between 1s and 60s, got {}",
                    format_duration(window)
                );
                ctx.error_in(&at, "window", msg);
            }
            Some(BudgetPolicy {
                ratio: ratio as f32,
                min_per_second: b.min_per_second.unwrap_or(10),
                window,
            })
        }
        _ => None,
    };
    RetryPolicy {
        attempts,
        on: outcome_filter(r.on.as_deref().unwrap_or_default()),
        methods,
        backoff,
        retry_after: RetryAfterPolicy {
            honor: ra.honor.unwrap_or(true),
            max: dur(ra.max),
        },
        budget,
        max_body_bytes: r.max_body_bytes.map_or(0, |s| s.0),
        hedge_delay: dur(r.hedge.as_ref().and_then(|h| h.delay)),
    }
}

/// `circuit_breaker`, fully merged with the built-ins.
pub(crate) fn breaker(ctx: &mut Ctx<'_>, b: &BreakerFile, at: &Scopes) -> BreakerPolicy {
    let failure_rate = match b.failure_rate {
        Some(Toggle::On(p)) => Some(percent(ctx, at, "failure_rate", p, 100.0)),
        _ => None,
    };
    let window = match b
        .window
        .unwrap_or(WindowValue::Time(Duration::from_secs(60)))
    {
        WindowValue::Time(d) => {
            if d.is_zero() {
                ctx.error_in(at, "window", "must be greater than 0s");
            }
            BreakerWindow::Time(d)
        }
        WindowValue::Calls(n) => {
            if n == 0 {
                ctx.error_in(at, "window", "must be at least 1 call");
            }
            BreakerWindow::Calls(n)
        }
    };
    let slow_call = match &b.slow_call {
        Some(Toggle::On(s)) => {
            let at = at.child("slow_call");
            let duration = dur(s.duration);
            if duration.is_zero() {
                ctx.error_in(&at, "duration", "must be set and greater than 0s");
            }
            let rate = percent(
                ctx,
                &at,
                "rate",
                s.rate.unwrap_or(PercentValue(100.0)),
                100.0,
            );
            Some(SlowCallPolicy { duration, rate })
        }
        _ => None,
    };
    let policy = BreakerPolicy {
        consecutive_failures: b.consecutive_failures.unwrap_or(0),
        failure_rate,
        minimum_calls: b.minimum_calls.unwrap_or(10),
        window,
        slow_call,
        open_for: dur(b.open_for),
        max_open_for: dur(b.max_open_for),
        half_open_calls: b.half_open_calls.unwrap_or(3),
        success_threshold: b.success_threshold.unwrap_or(3),
        failure_on: outcome_filter(b.failure_on.as_deref().unwrap_or_default()),
        scope: match b.scope {
            Some(ScopeFile::Endpoint) => BreakerScope::Endpoint,
            _ => BreakerScope::Upstream,
        },
        max_ejection: percent(
            ctx,
            at,
            "max_ejection",
            b.max_ejection.unwrap_or_default(),
            100.0,
        ),
        dry_run: b.dry_run.unwrap_or(false),
    };
    for (key, value) in [
        ("minimum_calls", policy.minimum_calls),
        ("half_open_calls", policy.half_open_calls),
        ("success_threshold", policy.success_threshold),
    ] {
        if value == 0 {
            ctx.error_in(at, key, "must be at least 1");
        }
    }
    if policy.open_for.is_zero() {
        ctx.error_in(at, "open_for", "must be greater than 0s");
    } else if policy.max_open_for < policy.open_for {
        let msg = format!(
            "max_open_for ({}) must not be shorter than open_for ({})",
            format_duration(policy.max_open_for),
            format_duration(policy.open_for)
        );
        ctx.error_in_any(at, &["max_open_for", "open_for"], msg);
    }
    policy
}

/// `rate_limit`, merged over the rate-limit built-ins; `None` when `rate` is missing (an error).
pub(crate) fn rate_limit(
    ctx: &mut Ctx<'_>,
    r: &RateLimitFile,
    at: &Scopes,
) -> Option<RateLimitPolicy> {
    let Some(rate) = r.rate else {
        ctx.error_in(
            at,
            "rate",
            "is required when rate_limit is set (e.g. \"100/s\")",
        );
        return None;
    };
    if rate.tokens == 0 {
        ctx.error_in(at, "rate", "must be greater than 0");
    }
    let burst = r.burst.unwrap_or(rate.tokens.max(1));
    if burst == 0 {
        ctx.error_in(at, "burst", "must be at least 1");
    }
    let key = match r.key.as_deref().unwrap_or("none").trim() {
        "none" => RateLimitKey::None,
        "client-ip" => RateLimitKey::ClientIp,
        other => match other
            .strip_prefix("header:")
            .map(|h| http::HeaderName::try_from(h.trim()))
        {
            Some(Ok(name)) => RateLimitKey::Header(name),
            _ => {
                let msg = format!("expected none, client-ip or header:<name>, got \"{other}\"");
                ctx.error_in(at, "key", msg);
                RateLimitKey::None
            }
        },
    };
    let global = match &r.global {
        Some(Toggle::On(g)) => Some(global(ctx, g, &at.child("global"))),
        _ => None,
    };
    Some(RateLimitPolicy {
        rate: Rate {
            tokens: rate.tokens,
            period: rate.period,
        },
        burst,
        mode: match r.mode {
            Some(LimitModeFile::Wait) => LimitMode::Wait {
                max_wait: dur(r.max_wait),
            },
            _ => LimitMode::Reject,
        },
        dry_run: r.dry_run.unwrap_or(false),
        key,
        global,
    })
}

/// `rate_limit.global`: a redis:// or rediss:// URL with a host and no fragment (`#insecure`
/// would turn certificate checks off); `tls` files only with rediss://.
fn global(ctx: &mut Ctx<'_>, g: &GlobalFile, at: &Scopes) -> GlobalLimitPolicy {
    let url = g.redis.clone().unwrap_or_default();
    let (tls_url, rest) = match url.strip_prefix("rediss://") {
        Some(rest) => (true, Some(rest)),
        None => (false, url.strip_prefix("redis://")),
    };
    if rest.is_none_or(|rest| rest.split(['/', '?', '#']).next().unwrap_or("").is_empty()) {
        let msg = "expected a redis:// or rediss:// URL with a host";
        ctx.error_in(at, "redis", msg);
    } else if url.contains('#') {
        let msg = "a URL fragment (#insecure: no certificate check) is not supported; \
                   trust a private CA with tls.ca_file";
        ctx.error_in(at, "redis", msg);
    }
    let files = g.tls.clone().map_or_else(TlsFiles::default, |t| TlsFiles {
        ca_file: t.ca_file,
        client_cert: t.client_cert,
        client_key: t.client_key,
    });
    let tls_at = at.child("tls");
    let base_dir = ctx.base_dir;
    let files = files.checked(base_dir, |field, msg| ctx.error_in(&tls_at, field, msg));
    if files.any() && !tls_url {
        let msg = "needs a rediss:// URL: redis:// connects without TLS";
        ctx.error_in_any(at, &["tls", "redis"], msg);
    }
    GlobalLimitPolicy {
        redis_url: Secret::new(url),
        on_error: match g.on_error {
            Some(OnErrorFile::Allow) => OnRedisError::Allow,
            Some(OnErrorFile::Deny) => OnRedisError::Deny,
            _ => OnRedisError::Local,
        },
        tls: RedisTlsPolicy {
            ca_file: files.ca_file,
            client_cert: files.client_cert,
            client_key: files.client_key,
        },
    }
}
