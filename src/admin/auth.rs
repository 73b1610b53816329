//! Bearer-token check for /admin/*: constant-time comparison, so response timing does not
//! reveal how much of a guessed token was right.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// True when `token` is empty (auth off) or the request carries `Authorization: Bearer <token>`.
pub fn authorized(token: &Secret, headers: &HeaderMap) -> bool {
    if token.is_empty() {
        return true;
    }
    let Some(presented) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
    else {
        return false;
    };
    presented
        .trim()
        .as_bytes()
        .ct_eq(token.expose().as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn only_the_exact_token_passes() {
        let token = Secret::new("s3cret");
        assert!(authorized(&token, &bearer("Bearer s3cret")));
        assert!(!authorized(&token, &bearer("Bearer s3cre")));
        assert!(!authorized(&token, &bearer("Bearer s3cret2")));
        assert!(!authorized(&token, &bearer("Basic s3cret")));
        assert!(!authorized(&token, &HeaderMap::new()));
        assert!(authorized(&Secret::default(), &HeaderMap::new()));
    }
}
