//! HTTPS: a rustls acceptor (ring provider) from PEM files, or from a self-signed certificate
//! generated for local use.
//!
//! `--tls-self-signed` writes the certificate to `<data-dir>/tls/self-signed.pem` (and its key
//! next to it, mode 0600) so clients can trust exactly that file (`AWS_CA_BUNDLE`, rclone
//! `--ca-cert`, curl `--cacert`). Later starts reuse the pair; delete both files to make a new
//! one (for example after setting `server.base_domain`).

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the certificate/key pair.
    #[error("invalid certificate or key: {0}")]
    Rustls(#[from] rustls::Error),
    /// Generating the self-signed certificate failed.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// Writing the self-signed certificate failed.
    #[error("cannot write the self-signed certificate: {0}")]
    Io(#[from] io::Error),
}

/// The certificate `--tls-self-signed` serves, for clients to trust.
#[must_use]
pub fn self_signed_cert_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tls").join("self-signed.pem")
}

fn self_signed_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tls").join("self-signed-key.pem")
}

/// The acceptor for `server`, or `None` for plain HTTP.
///
/// # Errors
///
/// [`TlsError`] for unreadable or invalid PEM files or a failed generation.
pub fn acceptor(server: &ServerConfig, data_dir: &Path) -> Result<Option<TlsAcceptor>, TlsError> {
    let (cert, key) = if server.tls_self_signed {
        ensure_self_signed(data_dir, server.base_domain.as_deref())?
    } else if let (Some(cert), Some(key)) = (&server.tls_cert, &server.tls_key) {
        (cert.clone(), key.clone())
    } else {
        return Ok(None);
    };

    let pem_error = |path: &Path, reason: String| TlsError::Pem { path: path.to_owned(), reason };
    let certs = CertificateDer::pem_file_iter(&cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| pem_error(&cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error(&cert, "no certificate found".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| pem_error(&key, e.to_string()))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// Returns the self-signed pair, generating it if either file is missing.
fn ensure_self_signed(data_dir: &Path, base_domain: Option<&str>) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = self_signed_cert_path(data_dir);
    let key_path = self_signed_key_path(data_dir);
    if cert_path.is_file() && key_path.is_file() {
        return Ok((cert_path, key_path));
    }

    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Some(domain) = base_domain {
        names.push(domain.to_owned());
        names.push(format!("*.{domain}"));
    }
    let mut params = rcgen::CertificateParams::new(names)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "artifact-store self-signed");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;

    fs::create_dir_all(cert_path.parent().unwrap_or(data_dir))?;
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed TLS certificate");
    Ok((cert_path, key_path))
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_pair_is_generated_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let server = ServerConfig { tls_self_signed: true, ..ServerConfig::default() };
        assert!(acceptor(&server, dir.path()).unwrap().is_some());
        let pem = fs::read(self_signed_cert_path(dir.path())).unwrap();
        assert!(acceptor(&server, dir.path()).unwrap().is_some());
        assert_eq!(fs::read(self_signed_cert_path(dir.path())).unwrap(), pem, "reused, not regenerated");
    }

    #[test]
    fn plain_http_needs_no_acceptor() {
        let dir = tempfile::tempdir().unwrap();
        assert!(acceptor(&ServerConfig::default(), dir.path()).unwrap().is_none());
    }

    #[test]
    fn missing_pem_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let server = ServerConfig {
            tls_cert: Some(dir.path().join("nope.pem")),
            tls_key: Some(dir.path().join("nope-key.pem")),
            ..ServerConfig::default()
        };
        let err = acceptor(&server, dir.path()).err().unwrap();
        assert!(err.to_string().contains("nope.pem"), "{err}");
    }
}
