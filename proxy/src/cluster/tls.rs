//! TLS between the controller and its agents (rustls, ring provider).
//!
//! A process given `--tls-cert` and `--tls-key` serves its API over HTTPS with that
//! certificate; given `--tls-ca`, it dials its peers (the controller its agents, an
//! agent its controller) over HTTPS and accepts only certificates that CA signed for
//! the address it dials. The bearer token still authenticates every request: TLS
//! keeps it and the matrix private and proves which server answers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The `--tls-*` files of a controller or an agent.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// This process's certificate chain (PEM), served by its API.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// The CA (PEM) that signed the peers' certificates.
    pub ca: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{flag} {path}: {reason}")]
    File {
        flag: &'static str,
        path: String,
        reason: String,
    },
    #[error("--tls-cert and --tls-key go together (got only {0})")]
    Half(&'static str),
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_error(flag: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        flag,
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsFiles {
    /// The server side, when a certificate and key are given.
    pub fn server(&self) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
        let (cert, key) = match (&self.cert, &self.key) {
            (None, None) => return Ok(None),
            (Some(_), None) => return Err(TlsError::Half("--tls-cert")),
            (None, Some(_)) => return Err(TlsError::Half("--tls-key")),
            (Some(c), Some(k)) => (c, k),
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| file_error("--tls-cert", cert, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_error("--tls-cert", cert, e))?;
        if chain.is_empty() {
            return Err(file_error("--tls-cert", cert, "no PEM certificate in it"));
        }
        let key_der =
            PrivateKeyDer::from_pem_file(key).map_err(|e| file_error("--tls-key", key, e))?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .map_err(|e| {
                file_error(
                    "--tls-key",
                    key,
                    format!("does not fit the certificate: {e}"),
                )
            })?;
        Ok(Some(Arc::new(config)))
    }

    /// The client side, when a CA is given: peers are dialed over HTTPS.
    pub fn client(&self) -> Result<Option<rustls::ClientConfig>, TlsError> {
        let Some(ca) = &self.ca else { return Ok(None) };
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| file_error("--tls-ca", ca, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_error("--tls-ca", ca, e))?;
        if certs.is_empty() {
            return Err(file_error("--tls-ca", ca, "no PEM certificate in it"));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| file_error("--tls-ca", ca, e))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Some(config))
    }
}

/// Serves `app` over TLS until `shutdown`; a failed handshake drops that connection only.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: Arc<rustls::ServerConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(config);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "API accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                let mut stop = shutdown.clone();
                connections.spawn(async move {
                    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            metrics::counter!("rift_api_tls_failures_total").increment(1);
                            tracing::warn!(%peer, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            metrics::counter!("rift_api_tls_failures_total").increment(1);
                            tracing::warn!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let service = TowerToHyperService::new(app);
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        result = connection.as_mut() => {
                            if let Err(error) = result {
                                tracing::debug!(%peer, %error, "API connection ended");
                            }
                        }
                        _ = stop.changed() => {}
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    connections.shutdown().await;
}
