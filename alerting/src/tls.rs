//! Outgoing TLS: Alertmanager's `tls_config` and `http_config` blocks, the
//! rustls client configuration they make (always with the `ring` crypto
//! provider, given explicitly: nothing process-wide is installed), and the
//! classification of TLS failures for logs and metrics.
//!
//! The same [`TlsConfig`] serves email (`email_configs[].tls_config`, used
//! for STARTTLS and implicit TLS) and HTTP integrations
//! (`http_config.tls_config` of webhooks, PagerDuty, Slack and actions).
//! As in Alertmanager, `ca_file` replaces the system's roots; without it the
//! system's roots (`/etc/ssl/certs`) are trusted.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};

/// Alertmanager's `tls_config`: how to verify the server and what client
/// certificate to present. Every field is optional; the default verifies
/// the server against the system's roots and presents no certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file of the CA certificate(s) to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key (with `cert_file`).
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate must hold (and SNI); by default
    /// the host of the URL or smarthost.
    pub server_name: Option<String>,
    /// Accept any server certificate. For tests and emergencies only: it
    /// makes the connection open to interception.
    pub insecure_skip_verify: bool,
}

/// Alertmanager's `http_config`, of which Vigie supports `tls_config`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// TLS settings of https URLs.
    pub tls_config: TlsConfig,
}

/// The crypto provider of every TLS connection Vigie's alerting makes.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's roots, loaded once.
static SYSTEM_ROOTS: LazyLock<Arc<RootCertStore>> = LazyLock::new(|| {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(
        added,
        ignored,
        errors = found.errors.len(),
        "system TLS roots loaded"
    );
    Arc::new(roots)
});

/// Reads every certificate of the PEM file at `path`.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// Reads the private key of the PEM file at `path` (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| format!("{}: no PEM private key found: {e}", path.display()))
}

impl TlsConfig {
    /// Whether this is the default (nothing configured).
    pub fn is_default(&self) -> bool {
        *self == TlsConfig::default()
    }

    /// The rustls client configuration: fails, naming the file, when a
    /// file cannot be read or parsed or the key does not fit the
    /// certificate.
    pub fn client_config(&self) -> Result<ClientConfig, TlsFileError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsFileError::new("ca_file", e.to_string()))?;
        // A configured CA file is read (and must be usable) even when
        // `insecure_skip_verify` ignores it.
        let mut own_roots = None;
        if let Some(ca) = &self.ca_file {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca).map_err(|m| TlsFileError::new("ca_file", m))? {
                roots
                    .add(cert)
                    .map_err(|e| TlsFileError::new("ca_file", format!("{}: {e}", ca.display())))?;
            }
            own_roots = Some(roots);
        }
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        } else if let Some(roots) = own_roots {
            builder.with_root_certificates(roots)
        } else {
            builder.with_root_certificates(Arc::clone(&SYSTEM_ROOTS))
        };
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let certs = read_certs(cert).map_err(|m| TlsFileError::new("cert_file", m))?;
                let key = read_key(key).map_err(|m| TlsFileError::new("key_file", m))?;
                builder.with_client_auth_cert(certs, key).map_err(|e| {
                    TlsFileError::new(
                        "key_file",
                        format!("does not fit cert_file {}: {e}", cert.display()),
                    )
                })
            }
            (Some(_), None) => Err(TlsFileError::new(
                "key_file",
                "cert_file is set without key_file; set both or neither".into(),
            )),
            (None, Some(_)) => Err(TlsFileError::new(
                "cert_file",
                "key_file is set without cert_file; set both or neither".into(),
            )),
            (None, None) => Ok(builder.with_no_client_auth()),
        }
    }

    /// Problems of this block at `key` (e.g.
    /// `alerting.receivers[0].email_configs[0].tls_config`), as
    /// `(key.field, what to fix)`: unreadable or unparsable files, a key
    /// without a certificate, an empty `server_name`.
    pub fn problems(&self, key: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(name) = &self.server_name
            && ServerName::try_from(name.clone()).is_err()
        {
            out.push((
                format!("{key}.server_name"),
                format!("{name:?} is not a DNS name or IP address; remove it to use the host"),
            ));
        }
        if let Err(e) = self.client_config() {
            out.push((format!("{key}.{}", e.field), e.message));
        }
        out
    }

    /// The server name to verify and send (SNI): `server_name`, else `host`.
    pub fn server_name_or<'a>(&'a self, host: &'a str) -> &'a str {
        self.server_name.as_deref().unwrap_or(host)
    }

    /// Makes relative file paths relative to `dir` (Alertmanager resolves
    /// them against the directory of `alertmanager.yml`).
    pub fn resolve_paths(&mut self, dir: &Path) {
        for p in [&mut self.ca_file, &mut self.cert_file, &mut self.key_file]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }
}

/// A `tls_config` file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tls_config.{field}: {message}")]
pub struct TlsFileError {
    /// `ca_file`, `cert_file` or `key_file`.
    pub field: &'static str,
    /// What is wrong, with the file's path.
    pub message: String,
}

impl TlsFileError {
    fn new(field: &'static str, message: String) -> Self {
        Self { field, message }
    }
}

/// `insecure_skip_verify`: any certificate, checked signatures.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS failure found in an error's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFailure {
    /// What rustls said, e.g. `invalid peer certificate: UnknownIssuer`.
    pub message: String,
    /// False when the server's certificate was refused (untrusted, expired,
    /// wrong name): trying again will not help until someone fixes the
    /// certificate or `tls_config`.
    pub retriable: bool,
}

/// The rustls error in `e`'s chain, if the failure was a TLS one. Looks
/// inside `io::Error`s too, whose `source()` skips the error they wrap.
pub fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(found) = as_rustls(err) {
            return Some(found);
        }
        // An io::Error may wrap an io::Error (hyper-rustls does) that
        // wraps the rustls error: unwrap them all.
        let mut wrapped = err;
        while let Some(inner) = wrapped
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            let inner: &(dyn std::error::Error + 'static) = inner;
            if let Some(found) = as_rustls(inner) {
                return Some(found);
            }
            wrapped = inner;
        }
        next = err.source();
    }
    None
}

fn as_rustls(e: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    let r = e.downcast_ref::<rustls::Error>()?;
    let retriable = !matches!(
        r,
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
    );
    Some(TlsFailure {
        message: r.to_string(),
        retriable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_build_and_report_nothing() {
        let t = TlsConfig::default();
        assert!(t.is_default());
        assert!(t.client_config().is_ok());
        assert!(t.problems("k").is_empty());
    }

    #[test]
    fn unreadable_files_are_named_by_key() {
        let dir = tempfile::tempdir().expect("tmp");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").expect("write");
        let t = TlsConfig {
            ca_file: Some(dir.path().join("missing.pem")),
            ..TlsConfig::default()
        };
        let p = t.problems("r.tls_config");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "r.tls_config.ca_file");
        assert!(p[0].1.contains("missing.pem"), "{}", p[0].1);

        let t = TlsConfig {
            ca_file: Some(garbage.clone()),
            ..TlsConfig::default()
        };
        let p = t.problems("r.tls_config");
        assert!(p[0].1.contains("no PEM certificate"), "{p:?}");

        let t = TlsConfig {
            cert_file: Some(garbage),
            ..TlsConfig::default()
        };
        assert_eq!(t.problems("r")[0].0, "r.key_file");

        let t = TlsConfig {
            server_name: Some("not a name!".into()),
            ..TlsConfig::default()
        };
        assert_eq!(t.problems("r")[0].0, "r.server_name");
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let mut t = TlsConfig {
            ca_file: Some("ca.pem".into()),
            cert_file: Some("/abs/c.pem".into()),
            ..TlsConfig::default()
        };
        t.resolve_paths(Path::new("/etc/am"));
        assert_eq!(t.ca_file, Some(PathBuf::from("/etc/am/ca.pem")));
        assert_eq!(t.cert_file, Some(PathBuf::from("/abs/c.pem")));
    }

    #[test]
    fn rustls_errors_are_found_inside_io_errors() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let f = tls_failure(&io).expect("found");
        assert!(!f.retriable);
        assert!(f.message.contains("UnknownIssuer"), "{}", f.message);
        // hyper-rustls wraps tokio-rustls' io::Error in another.
        let twice = std::io::Error::other(io);
        assert_eq!(tls_failure(&twice), Some(f));
        let plain = std::io::Error::other("refused");
        assert_eq!(tls_failure(&plain), None);
    }
}
