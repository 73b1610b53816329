//! Per-request override headers (SPEC §3). The app is local and trusted, but a value that is
//! not a positive integer is a client bug worth a 400, not a silent default.

use std::time::Duration;

use http::{HeaderMap, HeaderName};

use crate::error::ProxyError;
use crate::proxy::headers::{X_RAMPART_ATTEMPTS, X_RAMPART_TIMEOUT_MS};

/// Overrides read from `x-rampart-*` request headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `x-rampart-attempts`.
    pub attempts: Option<u32>,
    /// `x-rampart-timeout-ms`.
    pub timeout: Option<Duration>,
}

/// Reads the override headers, refusing malformed values.
pub fn parse(headers: &HeaderMap) -> Result<Overrides, ProxyError> {
    let attempts = positive(
        headers,
        &X_RAMPART_ATTEMPTS,
        "x-rampart-attempts must be a positive integer",
    )?;
    let timeout = positive(
        headers,
        &X_RAMPART_TIMEOUT_MS,
        "x-rampart-timeout-ms must be a positive integer",
    )?;
    Ok(Overrides {
        attempts: attempts.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        timeout: timeout.map(Duration::from_millis),
    })
}

fn positive(
    headers: &HeaderMap,
    name: &HeaderName,
    message: &'static str,
) -> Result<Option<u64>, ProxyError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ProxyError::BadRequest(message))?
        .trim();
    match text.parse::<u64>() {
        Ok(n) if n > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
        _ => Err(ProxyError::BadRequest(message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        h
    }

    #[test]
    fn positive_integers_parse_and_everything_else_is_a_400() {
        assert_eq!(
            parse(&with("x-rampart-attempts", "2")).unwrap().attempts,
            Some(2)
        );
        assert_eq!(
            parse(&with("x-rampart-timeout-ms", "150")).unwrap().timeout,
            Some(Duration::from_millis(150))
        );
        for bad in ["0", "-1", "1.5", "abc", "", "+3"] {
            for name in ["x-rampart-attempts", "x-rampart-timeout-ms"] {
                let err = parse(&with(name, bad)).unwrap_err();
                assert_eq!(err.code(), "bad_request", "{name}: {bad:?}");
            }
        }
        assert_eq!(parse(&HeaderMap::new()).unwrap(), Overrides::default());
    }
}
