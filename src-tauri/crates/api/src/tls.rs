//! TLS for the API (rustls with the ring provider): the server configuration built from a
//! PEM certificate chain and private key (`SUTAZAI_TLS_CERT`, `SUTAZAI_TLS_KEY`), for an
//! API that listens beyond loopback. HTTP/1.1 and HTTP/2 are offered; WebSockets upgrade
//! over HTTP/1.1 as without TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{what} {path}: {why}")]
    Pem {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The certificate file holds no certificate.
    #[error("certificate {0}: no CERTIFICATE block in the file")]
    NoCertificate(PathBuf),
    /// rustls refused the pair (the key does not match the certificate, an unsupported key).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Reads the certificate chain (leaf first) and the private key (PKCS#8, PKCS#1 or SEC1)
/// and builds the server configuration.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let pem = |what, path: &Path, why: &dyn std::fmt::Display| TlsError::Pem {
        what,
        path: path.to_owned(),
        why: why.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem("certificate", cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem("certificate", cert, &e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem("private key", key, &e))?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
