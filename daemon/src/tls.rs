//! TLS for both daemons: rustls server settings read from certificate and key files (with an
//! optional client CA for mutual TLS), and HTTP clients that verify the server by the system's
//! roots or a configured CA, all on ring as the one crypto provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS settings could not be used; names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct TlsError {
    /// The file at fault.
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

fn fault(path: &Path, message: impl std::fmt::Display) -> TlsError {
    TlsError {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Makes ring the process's rustls provider (reqwest is built without one); idempotent.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP client builder with the provider installed; the system's roots verify servers.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_provider();
    reqwest::Client::builder()
}

/// A blocking HTTP client builder with the provider installed.
pub fn blocking_client_builder() -> reqwest::blocking::ClientBuilder {
    install_provider();
    reqwest::blocking::Client::builder()
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fault(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fault(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(fault(path, "no certificate in the file"));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| fault(path, format!("no PEM private key read: {e}")))
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(path)? {
        store
            .add(cert)
            .map_err(|e| fault(path, format!("unusable CA certificate: {e}")))?;
    }
    Ok(store)
}

/// Server settings from a PEM certificate chain (leaf first) and its key; with `client_ca`,
/// clients must present a certificate it signed (mutual TLS). HTTP/1.1 only.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    install_provider();
    let chain = certificates(cert)?;
    let key_der = private_key(key)?;
    let builder = ServerConfig::builder();
    let builder = match client_ca {
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots(ca)?))
                .build()
                .map_err(|e| fault(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key_der)
        .map_err(|e| fault(key, format!("does not match the certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How a client verifies the server and proves who it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientTls {
    /// PEM CA certificates to trust instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate and key to present (mutual TLS).
    pub identity: Option<(PathBuf, PathBuf)>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| fault(path, e))
}

impl ClientTls {
    /// Applies these settings to a client builder (files are read now).
    pub fn apply(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, TlsError> {
        let mut builder = builder;
        if let Some(ca) = &self.ca_file {
            let certs = reqwest::Certificate::from_pem_bundle(&read(ca)?)
                .map_err(|e| fault(ca, format!("not a PEM certificate file: {e}")))?;
            if certs.is_empty() {
                return Err(fault(ca, "no certificate in the file"));
            }
            builder = builder.tls_certs_only(certs);
        }
        if let Some((cert, key)) = &self.identity {
            // Checked here as the server would, so a bad pair is an error at load, not a
            // handshake failure at the first batch.
            certificates(cert)?;
            private_key(key)?;
            let mut pem = read(cert)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| fault(cert, format!("unusable with {}: {e}", key.display())))?;
            builder = builder.identity(identity);
        }
        Ok(builder)
    }
}

/// An error with its causes, `outer: inner: …`: reqwest says only "error sending request"
/// where the cause (an unknown issuer, a refused client certificate) is what an operator needs.
pub fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
