//! The global bucket: one GCRA per upstream (and key) in Redis, shared by every replica and
//! decided by one atomic Lua script on the Redis server's clock. Tracks whether Redis answers;
//! what to decide while it does not is the layer's business (`on_error`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics::Gauge;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::key::RequestKey;
use super::policy::{GlobalLimitPolicy, Rate, RedisTlsPolicy};
use super::redis_tls;
use crate::secret::Secret;

/// Longest a decision may wait for Redis before this replica decides without it.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(100);

/// How often an unreachable Redis is probed; a restarted Redis is used again within about
/// this plus one connection attempt.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(200);

const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);

/// GCRA on Redis server time (microseconds), so replica clocks do not matter. KEYS[1]: the
/// bucket; ARGV: emission interval (µs), burst, longest wait a caller accepts (µs). Returns
/// `{1, wait}` when admitted (after `wait` µs, the slot reserved) or `{0, wait}` when refused
/// (a token comes in `wait` µs). Only admissions write, with an expiry when the bucket would
/// be full again, so idle keys vanish.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - tau - now
if wait < 0 then wait = 0 end
if wait > tonumber(ARGV[3]) then return {0, wait} end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, wait}
";

/// What Redis decided for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Admitted; the caller waits this long first (zero: at once). The slot is reserved.
    Admit(Duration),
    /// Refused; a token comes after this wait.
    Deny(Duration),
    /// Redis did not answer (down, slow or not connected yet).
    Unavailable,
}

/// One limiter's global buckets.
#[derive(Debug)]
pub struct GlobalBuckets {
    redis: Arc<Redis>,
    prefix: Vec<u8>,
    interval_us: u64,
    burst: u32,
    probe: Option<AbortHandle>,
}

struct Redis {
    conn: Option<ConnectionManager>,
    script: Script,
    up: AtomicBool,
    wake: Notify,
    /// `rampart_rate_limit_global_fallback`: 1 while decisions are made without Redis.
    fallback: Gauge,
    scope: String,
    /// host:port only, never the URL (it may carry a password).
    target: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("target", &self.target)
            .field("up", &self.up)
            .finish_non_exhaustive()
    }
}

impl GlobalBuckets {
    /// Starts in fallback (gauge 1) and connects in the background; decisions go to Redis
    /// from the first successful probe on. A URL or TLS file the client cannot use is logged
    /// once, by host only, and keeps the limiter in fallback. Must run inside a tokio runtime.
    pub fn new(
        policy: &GlobalLimitPolicy,
        rate: Rate,
        burst: u32,
        scope: &str,
        fallback: Gauge,
    ) -> Self {
        fallback.set(1.0);
        let (conn, target) = match connect_lazily(&policy.redis_url, &policy.tls) {
            Ok(pair) => (Some(pair.0), pair.1),
            Err(reason) => {
                tracing::error!(
                    scope,
                    reason,
                    "global rate limit disabled: Redis URL unusable"
                );
                (None, String::new())
            }
        };
        let redis = Arc::new(Redis {
            conn,
            script: Script::new(GCRA),
            up: AtomicBool::new(false),
            wake: Notify::new(),
            fallback,
            scope: scope.to_owned(),
            target,
        });
        let probe = redis
            .conn
            .is_some()
            .then(|| tokio::spawn(probe(redis.clone())).abort_handle());
        Self {
            redis,
            prefix: format!("rampart:rl:{scope}").into_bytes(),
            interval_us: u64::try_from(rate.interval().as_micros())
                .unwrap_or(u64::MAX)
                .max(1),
            burst: burst.max(1),
            probe,
        }
    }

    /// True while decisions are made in Redis.
    pub fn is_up(&self) -> bool {
        self.redis.up.load(Ordering::Acquire)
    }

    /// Asks Redis for a token from the bucket of `key`, accepting to wait up to `max_wait`.
    pub async fn decide(&self, key: &RequestKey<'_>, max_wait: Duration) -> Answer {
        let Some(conn) = self.redis.conn.as_ref().filter(|_| self.is_up()) else {
            return Answer::Unavailable;
        };
        let mut conn = conn.clone();
        let bucket = [self.prefix.as_slice(), &key.redis_suffix()].concat();
        let max_wait_us = u64::try_from(max_wait.as_micros()).unwrap_or(u64::MAX);
        let mut call = self.redis.script.key(bucket);
        call.arg(self.interval_us).arg(self.burst).arg(max_wait_us);
        let reply =
            tokio::time::timeout(RESPONSE_TIMEOUT, call.invoke_async::<(u8, u64)>(&mut conn));
        match reply.await {
            Ok(Ok((1, wait))) => Answer::Admit(Duration::from_micros(wait)),
            Ok(Ok((_, wait))) => Answer::Deny(Duration::from_micros(wait)),
            Ok(Err(e)) => {
                self.redis.down(&e.to_string());
                Answer::Unavailable
            }
            Err(_) => {
                self.redis.down("no answer within the response timeout");
                Answer::Unavailable
            }
        }
    }
}

impl Drop for GlobalBuckets {
    fn drop(&mut self) {
        if let Some(probe) = &self.probe {
            probe.abort();
        }
    }
}

impl Redis {
    fn down(&self, reason: &str) {
        if self.up.swap(false, Ordering::AcqRel) {
            self.fallback.set(1.0);
            tracing::warn!(
                upstream = %self.scope,
                redis = %self.target,
                reason,
                "global rate limit: Redis unavailable, deciding with on_error"
            );
            self.wake.notify_one();
        }
    }
}

/// A lazily connecting manager (it never blocks start-up) and the target for logs. Errors
/// never quote the URL (it may carry a password).
fn connect_lazily(
    url: &Secret,
    tls: &RedisTlsPolicy,
) -> Result<(ConnectionManager, String), String> {
    let client = if url.expose().starts_with("rediss://") {
        // The Redis client builds its rustls config with the process-default provider: make
        // it ring, the only one compiled in, whatever crate features say.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client::build_with_tls(url.expose(), redis_tls::certificates(tls)?)
    } else {
        Client::open(url.expose())
    };
    let client = client.map_err(|e| format!("{:?}", e.kind()))?;
    let target = client.get_connection_info().addr().to_string();
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(PROBE_INTERVAL);
    let conn = ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| format!("{:?}", e.kind()))?;
    Ok((conn, target))
}

/// While Redis is down: PING it every `PROBE_INTERVAL` and switch back on the first answer.
/// While it is up: sleep until a failed decision wakes this task.
async fn probe(redis: Arc<Redis>) {
    let Some(conn) = redis.conn.clone() else {
        return;
    };
    let (mut first, mut said_tls) = (true, false);
    loop {
        if redis.up.load(Ordering::Acquire) {
            redis.wake.notified().await;
            continue;
        }
        let mut c = conn.clone();
        let cmd = redis::cmd("PING");
        let ping = tokio::time::timeout(
            CONNECT_TIMEOUT + RESPONSE_TIMEOUT,
            cmd.query_async::<String>(&mut c),
        );
        match ping.await {
            Ok(Ok(_)) => {
                // Load the script now so the first decision needs one round trip.
                let _ = redis.script.prepare_invoke().load_async(&mut c).await;
                redis.up.store(true, Ordering::Release);
                redis.fallback.set(0.0);
                tracing::info!(upstream = %redis.scope, redis = %redis.target, "global rate limit: deciding in Redis");
            }
            Ok(Err(e)) if !said_tls && redis_tls::is_tls_failure(&e) => {
                said_tls = true;
                tracing::error!(upstream = %redis.scope, redis = %redis.target, reason = %e, "global rate limit: TLS with Redis failed (check rate_limit.global.tls and the rediss:// host), deciding with on_error");
            }
            Ok(Err(e)) if first => {
                tracing::warn!(upstream = %redis.scope, redis = %redis.target, reason = %e, "global rate limit: Redis not reachable yet, deciding with on_error");
            }
            Err(_) if first => {
                tracing::warn!(upstream = %redis.scope, redis = %redis.target, "global rate limit: Redis not reachable yet, deciding with on_error");
            }
            _ => {}
        }
        first = false;
        if !redis.up.load(Ordering::Acquire) {
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }
}
