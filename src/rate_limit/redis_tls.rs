//! TLS for `rediss://`: the PEM files of `global.tls` handed to the Redis client, and telling
//! a TLS failure (a setup problem: wrong CA, missing client certificate) from Redis being away.
//! The handshake itself is the Redis client's (rustls with ring).

use std::error::Error;
use std::path::Path;
use std::sync::Arc;

use redis::{ClientTlsConfig, RedisError, TlsCertificates};

use super::policy::RedisTlsPolicy;

/// The PEM material of `tls`, read now (validation checked it; it may have changed since).
/// No `ca_file`: the webpki roots.
pub fn certificates(tls: &RedisTlsPolicy) -> Result<TlsCertificates, String> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let client_tls = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        _ => None,
    };
    Ok(TlsCertificates {
        client_tls,
        root_cert: tls.ca_file.as_deref().map(read).transpose()?,
    })
}

/// True when rustls refused the connection (a certificate, an alert from the server): worth
/// an error line, since retrying will not help until the config or the server changes.
pub fn is_tls_failure(e: &RedisError) -> bool {
    from_rustls(e)
}

/// Walks the source chain, looking inside the `Arc` the Redis error keeps its cause in and
/// inside `io::Error`s (whose `source()` skips the error they wrap).
fn from_rustls(e: &(dyn Error + 'static)) -> bool {
    if e.is::<rustls::Error>() {
        return true;
    }
    if let Some(shared) = e.downcast_ref::<Arc<dyn Error + Send + Sync>>() {
        return from_rustls(shared.as_ref());
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        return from_rustls(inner);
    }
    e.source().is_some_and(from_rustls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_error_inside_io_inside_redis_is_tls_and_a_refusal_is_not() {
        let cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, cert);
        assert!(is_tls_failure(&RedisError::from(io)));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!is_tls_failure(&RedisError::from(refused)));
    }

    #[test]
    fn missing_files_are_named() {
        let tls = RedisTlsPolicy {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..RedisTlsPolicy::default()
        };
        let err = certificates(&tls).unwrap_err();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
