//! RTMPS: plain TLS (RFC 8446, RFC 5246; rustls) around the unchanged RTMP byte stream, then the
//! same connection actor as RTMP over TCP. No STARTTLS, no ALPN.
//!
//! ```text
//!  accept ─► caps (shared with RTMP) ─► TLS handshake (rtmps.handshake_timeout_ms) ─► actor
//!  certificate: one current pair, served whether or not the ClientHello carries SNI (librtmp and
//!  FFmpeg with an IP literal send none); files polled every rtmps.reload_interval_ms and swapped
//!  atomically; a pair that fails to load is logged and the old one kept.
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::pipeline::App;

/// `[rtmps]`: RTMP over TLS.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RtmpsConfig {
    pub listen: SocketAddr,
    pub cert_file: String,
    pub key_file: String,
    pub self_signed: bool,
    pub handshake_timeout_ms: u64,
    pub reload_interval_ms: u64,
}

impl Default for RtmpsConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:1936".parse().expect("valid literal"),
            cert_file: String::new(),
            key_file: String::new(),
            self_signed: false,
            handshake_timeout_ms: 10_000,
            reload_interval_ms: 2_000,
        }
    }
}

impl RtmpsConfig {
    /// RTMPS runs only with a certificate (files, or a generated self-signed one).
    pub fn enabled(&self) -> bool {
        self.self_signed || (!self.cert_file.is_empty() && !self.key_file.is_empty())
    }
}

/// Serves the current pair to every handshake, with or without SNI.
#[derive(Debug)]
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .context("parsing the certificate PEM")?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in the PEM");
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("parsing the private key PEM")?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .context("unsupported private key")?;
    let pair = CertifiedKey::new(certs, signing);
    // A half-swapped pair (new key, old certificate) must not replace a working one.
    pair.keys_match()
        .map_err(|e| anyhow::anyhow!("certificate and key do not match: {e}"))?;
    Ok(pair)
}

fn load_files(cert: &Path, key: &Path) -> Result<CertifiedKey> {
    let c = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    let k = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
    certified_key(&c, &k)
}

/// A self-signed certificate for `localhost`/`127.0.0.1` (testing only), as PEM (cert, key).
pub fn self_signed_pem() -> Result<(String, String)> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .context("generating a self-signed certificate")?;
    Ok((ck.cert.pem(), ck.key_pair.serialize_pem()))
}

fn mtimes(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

/// Binds the RTMPS listener and serves it until `shutdown`.
pub async fn serve(
    cfg: RtmpsConfig,
    server: rtmp_ingest::server::Server<App>,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>> {
    let files = (!cfg.cert_file.is_empty() && !cfg.key_file.is_empty())
        .then(|| (PathBuf::from(&cfg.cert_file), PathBuf::from(&cfg.key_file)));
    let first = match &files {
        Some((c, k)) if cfg.self_signed && !c.exists() => {
            // Generate once and write it where the operator (or a test client's ca_file) can
            // read it; from then on it is an ordinary reloadable pair.
            let (cert, key) = self_signed_pem()?;
            std::fs::write(c, cert).with_context(|| format!("writing {}", c.display()))?;
            std::fs::write(k, key).with_context(|| format!("writing {}", k.display()))?;
            load_files(c, k)?
        }
        Some((c, k)) => load_files(c, k).context("rtmps.cert_file / rtmps.key_file")?,
        None => {
            let (cert, key) = self_signed_pem()?;
            certified_key(cert.as_bytes(), key.as_bytes())?
        }
    };
    let current = Arc::new(CurrentCert(RwLock::new(Arc::new(first))));
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS versions")?
    .with_no_client_auth()
    .with_cert_resolver(current.clone());
    // No TLS 1.3 session tickets: RTMP clients never resume, and librtmp (GnuTLS build) fails
    // its RTMP handshake when post-handshake ticket records arrive before S0+S1.
    tls.send_tls13_tickets = 0;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding RTMPS listener on {} (rtmps.listen)", cfg.listen))?;
    tracing::info!(rtmps = %listener.local_addr()?, "RTMPS listening");

    if let Some((c, k)) = files {
        let (current, shutdown) = (current.clone(), shutdown.clone());
        let period = Duration::from_millis(cfg.reload_interval_ms.max(100));
        tokio::spawn(async move {
            let paths = [c.clone(), k.clone()];
            let mut seen = mtimes(&paths);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(period) => {}
                }
                let now = mtimes(&paths);
                if now == seen {
                    continue;
                }
                seen = now;
                match load_files(&c, &k) {
                    Ok(pair) => {
                        *current.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
                        metrics::counter!("sluice_rtmps_cert_reloads_total", "result" => "ok")
                            .increment(1);
                        tracing::info!(cert = %c.display(), "RTMPS certificate reloaded");
                    }
                    Err(e) => {
                        metrics::counter!("sluice_rtmps_cert_reloads_total", "result" => "error")
                            .increment(1);
                        tracing::warn!(error = %format!("{e:#}"), "RTMPS certificate reload failed; keeping the previous one");
                    }
                }
            }
        });
    }

    let handshake_timeout = Duration::from_millis(cfg.handshake_timeout_ms);
    Ok(tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "RTMPS accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(admission) = server.admit(peer) else {
                continue;
            };
            let (server, acceptor) = (server.clone(), acceptor.clone());
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => server.run_connection(admission, stream).await,
                    Ok(Err(e)) => {
                        metrics::counter!("sluice_rtmps_handshake_failures_total", "reason" => "tls").increment(1);
                        tracing::info!(%peer, error = %e, "RTMPS TLS handshake failed");
                    }
                    Err(_) => {
                        metrics::counter!("sluice_rtmps_handshake_failures_total", "reason" => "timeout").increment(1);
                        tracing::info!(%peer, "RTMPS TLS handshake timed out (rtmps.handshake_timeout_ms)");
                    }
                }
            });
        }
    }))
}
