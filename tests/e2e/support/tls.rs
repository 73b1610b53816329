//! A throw-away certificate authority for TLS tests: CA, server and client certificates as
//! PEM files in a temp dir (what the proxy config points at) and rustls configs built from them.
//! Every `TestCa::new()` is unrelated to every other, so a second one is the "wrong CA".

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tempfile::TempDir;

pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

pub struct TestCa {
    dir: TempDir,
}

/// The ring provider: aws-lc-rs is not compiled in, so rustls' default builders would panic.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// === impl TestCa ===

impl TestCa {
    /// A new CA with a server certificate for `localhost` and `127.0.0.1` and a client
    /// certificate, written as ca.pem, server.pem, server.key, client.pem, client.key.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");

        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "rampart test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let leaf = |names: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            params.use_authority_key_identifier_extension = true;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let server = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = leaf(
            vec!["client.rampart.test".into()],
            "rampart test client",
            ExtendedKeyUsagePurpose::ClientAuth,
        );

        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", &ca_cert.pem());
        write("server.pem", &server.0);
        write("server.key", &server.1);
        write("client.pem", &client.0);
        write("client.key", &client.1);
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn server_cert_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    pub fn server_key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    pub fn client_cert_file(&self) -> PathBuf {
        self.dir.path().join("client.pem")
    }

    pub fn client_key_file(&self) -> PathBuf {
        self.dir.path().join("client.key")
    }

    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        for cert in certs(&self.ca_file()) {
            roots.add(cert).unwrap();
        }
        roots
    }

    /// Server config for `localhost`/`127.0.0.1` with ALPN h2 + http/1.1; with
    /// `require_client_cert`, only clients presenting a certificate from this CA get in.
    pub fn server_config(&self, require_client_cert: bool) -> Arc<ServerConfig> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()), provider())
                    .build()
                    .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(
                certs(&self.server_cert_file()),
                key(&self.server_key_file()),
            )
            .unwrap();
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// Client config trusting only this CA, presenting no certificate, ALPN h2 + http/1.1.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        Arc::new(self.client_builder().with_no_client_auth())
    }

    /// Client config trusting this CA and presenting `identity`'s client certificate
    /// (pass `self` for mTLS; another CA for "unknown client certificate").
    pub fn client_config_with_cert(&self, identity: &TestCa) -> Arc<ClientConfig> {
        let config = self
            .client_builder()
            .with_client_auth_cert(
                certs(&identity.client_cert_file()),
                key(&identity.client_key_file()),
            )
            .unwrap();
        Arc::new(config)
    }

    fn client_builder(
        &self,
    ) -> rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert> {
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.roots())
    }
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    let pem = std::fs::read(path).unwrap();
    CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .unwrap()
}

fn key(path: &Path) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(&std::fs::read(path).unwrap()).unwrap()
}
