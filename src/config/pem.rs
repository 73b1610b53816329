//! TLS files the config names (an upstream's `tls`, a global rate limit's `tls`): paths
//! resolved against the config file's directory, then checked to exist and parse as PEM, so a
//! bad file is a validation error instead of a failure at the first connection.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Trusted roots and an optional client identity, as paths.
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsFiles {
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) client_cert: Option<PathBuf>,
    pub(crate) client_key: Option<PathBuf>,
}

impl TlsFiles {
    /// Resolves relative paths against `base_dir` and checks every file; `error(field,
    /// message)` receives each problem (`field` is `ca_file`, `client_cert` or `client_key`).
    pub(crate) fn checked(self, base_dir: &Path, mut error: impl FnMut(&str, String)) -> Self {
        let resolve = |p: PathBuf| if p.is_relative() { base_dir.join(p) } else { p };
        let files = Self {
            ca_file: self.ca_file.map(resolve),
            client_cert: self.client_cert.map(resolve),
            client_key: self.client_key.map(resolve),
        };
        if let Some(Err(msg)) = files.ca_file.as_deref().map(check_certs) {
            error("ca_file", msg);
        }
        match (&files.client_cert, &files.client_key) {
            (Some(cert), Some(key)) => {
                if let Err(msg) = check_certs(cert) {
                    error("client_cert", msg);
                }
                if let Err(msg) = check_key(key) {
                    error("client_key", msg);
                }
            }
            (Some(_), None) => error("client_key", "is required with client_cert".into()),
            (None, Some(_)) => error("client_cert", "is required with client_key".into()),
            (None, None) => {}
        }
        files
    }

    /// True when any file is named.
    pub(crate) fn any(&self) -> bool {
        self.ca_file.is_some() || self.client_cert.is_some() || self.client_key.is_some()
    }
}

fn check_certs(file: &Path) -> Result<(), String> {
    let pem = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(()),
        Ok(_) => Err(format!("no PEM certificate in {}", file.display())),
        Err(e) => Err(format!("bad PEM in {}: {e}", file.display())),
    }
}

fn check_key(file: &Path) -> Result<(), String> {
    let pem = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map(drop)
        .map_err(|e| format!("no private key in {}: {e}", file.display()))
}
