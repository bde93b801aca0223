//! RTMPT on the HTTP port: each tunnel session is an in-memory pipe to the same RTMP connection
//! actor that serves TCP and TLS (spawned on the ingest runtime); HTTP POSTs write into the pipe
//! and answer with whatever the actor has written since (framing in [`rtmp_ingest::rtmpt`]).
//!
//! ```text
//!  POST /send/<id>/<seq> ─► session (mutex: one request at a time, in order) ─► pipe ─► actor
//!  reply: 0x01 + bytes the actor wrote ◄── pipe (bounded: rtmpt.max_queued_bytes) ◄──┘
//! ```
//!
//! Sessions have unguessable ids, expire after `rtmpt.session_idle_timeout_ms` without a
//! request, are capped in number (`rtmpt.max_sessions`, plus the RTMP connection caps) and in
//! request body size; `/close` ends the session like a disconnect (for a publisher: unpublish,
//! since FFmpeg discards its `FCUnpublish` over RTMPT).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::BytesMut;
use http_body_util::BodyExt;
use rtmp_ingest::rtmpt::{self, RtmptPathError, RtmptRequest};
use rtmp_ingest::server::Server;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

use crate::pipeline::App;

/// `[rtmpt]`: RTMP tunnelled over HTTP on the HTTP port.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RtmptConfig {
    pub enabled: bool,
    pub max_sessions: usize,
    pub session_idle_timeout_ms: u64,
    pub max_body_bytes: usize,
    pub max_queued_bytes: usize,
    pub poll_wait_ms: u64,
}

impl Default for RtmptConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_sessions: 1000,
            session_idle_timeout_ms: 30_000,
            max_body_bytes: 1024 * 1024,
            max_queued_bytes: 4 * 1024 * 1024,
            poll_wait_ms: 20,
        }
    }
}

struct Tunnel {
    /// Our end of the pipe; the lock also serializes a session's requests.
    pipe: tokio::sync::Mutex<(ReadHalf<DuplexStream>, WriteHalf<DuplexStream>)>,
    last_seen: Mutex<Instant>,
}

/// The RTMPT endpoint shared by the HTTP workers.
pub struct Rtmpt {
    cfg: RtmptConfig,
    server: Server<App>,
    runtime: tokio::runtime::Handle,
    sessions: Mutex<HashMap<String, Arc<Tunnel>>>,
}

fn reply(status: StatusCode, body: Vec<u8>) -> Response {
    let len = body.len();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-fcs"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Keep-Alive"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

fn refuse(status: StatusCode, reason: &'static str) -> Response {
    metrics::counter!("sluice_rtmpt_refused_total", "reason" => reason).increment(1);
    reply(status, Vec::new())
}

impl Rtmpt {
    /// `runtime` is the ingest runtime the connection actors run on.
    pub fn new(
        cfg: RtmptConfig,
        server: Server<App>,
        runtime: tokio::runtime::Handle,
    ) -> Arc<Self> {
        let this = Arc::new(Self {
            cfg,
            server,
            runtime,
            sessions: Mutex::new(HashMap::new()),
        });
        let janitor = Arc::downgrade(&this);
        let period =
            Duration::from_millis((this.cfg.session_idle_timeout_ms / 4).clamp(100, 5_000));
        this.runtime.spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(this) = janitor.upgrade() else {
                    return;
                };
                this.expire(Instant::now());
            }
        });
        this
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Tunnel>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops sessions idle for longer than the timeout (the actor sees end of stream).
    fn expire(&self, now: Instant) {
        let timeout = Duration::from_millis(self.cfg.session_idle_timeout_ms);
        let mut sessions = self.sessions();
        let before = sessions.len();
        sessions.retain(|_, t| {
            let seen = *t.last_seen.lock().unwrap_or_else(|e| e.into_inner());
            now.saturating_duration_since(seen) < timeout
        });
        let expired = before - sessions.len();
        if expired > 0 {
            metrics::counter!("sluice_rtmpt_sessions_expired_total").increment(expired as u64);
            tracing::info!(expired, "RTMPT sessions expired (idle)");
        }
        metrics::gauge!("sluice_rtmpt_sessions").set(sessions.len() as f64);
    }

    /// Whether this request is RTMPT's (it must then never reach the HLS edge).
    pub fn claims(&self, path: &str) -> bool {
        self.cfg.enabled && rtmpt::is_rtmpt_path(path)
    }

    /// Answers one RTMPT request.
    pub async fn respond(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
        peer: SocketAddr,
    ) -> Response {
        let post = req.method() == hyper::Method::POST;
        let path = req.uri().path().to_owned();
        let request = match rtmpt::parse_request(post, &path) {
            Ok(Some(r)) => r,
            Ok(None) => return refuse(StatusCode::NOT_FOUND, "bad_path"),
            Err(RtmptPathError::NotPost) => {
                return refuse(StatusCode::METHOD_NOT_ALLOWED, "not_post")
            }
            Err(RtmptPathError::BadPath) => return refuse(StatusCode::BAD_REQUEST, "bad_path"),
        };
        let limit = self.cfg.max_body_bytes;
        let body = match http_body_util::Limited::new(req.into_body(), limit)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        };
        match request {
            RtmptRequest::Ident => refuse(StatusCode::NOT_FOUND, "ident"),
            RtmptRequest::Open => self.open(peer),
            RtmptRequest::Send { session, .. } => {
                if body.is_empty() {
                    return refuse(StatusCode::BAD_REQUEST, "empty_body");
                }
                self.exchange(session, &body).await
            }
            RtmptRequest::Idle { session, .. } => self.exchange(session, &[]).await,
            RtmptRequest::Close { session, .. } => {
                if self.sessions().remove(session).is_none() {
                    return refuse(StatusCode::NOT_FOUND, "unknown_session");
                }
                reply(StatusCode::OK, vec![rtmpt::CLOSE_REPLY])
            }
        }
    }

    fn open(&self, peer: SocketAddr) -> Response {
        if self.sessions().len() >= self.cfg.max_sessions {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "max_sessions");
        }
        let admission = match self.server.admit(peer) {
            Ok(a) => a,
            Err(_) => return refuse(StatusCode::SERVICE_UNAVAILABLE, "max_connections"),
        };
        let (ours, theirs) = tokio::io::duplex(self.cfg.max_queued_bytes.max(4096));
        let id = rtmpt::new_session_id();
        let server = self.server.clone();
        self.runtime.spawn(async move {
            server.run_connection(admission, theirs).await;
        });
        let tunnel = Arc::new(Tunnel {
            pipe: tokio::sync::Mutex::new(tokio::io::split(ours)),
            last_seen: Mutex::new(Instant::now()),
        });
        let n = {
            let mut s = self.sessions();
            s.insert(id.clone(), tunnel);
            s.len()
        };
        metrics::gauge!("sluice_rtmpt_sessions").set(n as f64);
        metrics::counter!("sluice_rtmpt_sessions_total").increment(1);
        tracing::debug!(%peer, "RTMPT session opened");
        reply(StatusCode::OK, rtmpt::open_reply(&id))
    }

    /// Writes `body` to the session's actor and answers with the poll byte and everything the
    /// actor has queued (waiting up to `poll_wait_ms` for the first byte).
    async fn exchange(&self, session: &str, body: &[u8]) -> Response {
        let Some(tunnel) = self.sessions().get(session).cloned() else {
            return refuse(StatusCode::NOT_FOUND, "unknown_session");
        };
        *tunnel.last_seen.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let mut guard = tunnel.pipe.lock().await;
        let (reader, writer) = &mut *guard;
        let mut out = BytesMut::with_capacity(4096);
        out.extend_from_slice(&[rtmpt::POLL_BYTE]);
        let max_reply = self.cfg.max_queued_bytes.max(4096);
        // Write the body while draining replies, so neither direction of the pipe can fill
        // up and stall the other.
        let mut rest = body;
        let write_deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !rest.is_empty() {
            let mut buf = [0u8; 16 * 1024];
            tokio::select! {
                w = writer.write(rest) => match w {
                    Ok(0) | Err(_) => return self.gone(session),
                    Ok(n) => rest = &rest[n..],
                },
                r = reader.read(&mut buf), if out.len() < max_reply => match r {
                    Ok(0) | Err(_) => return self.gone(session),
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                },
                _ = tokio::time::sleep_until(write_deadline) => return self.gone(session),
            }
        }
        // Wait briefly for the actor's answer, then take whatever else is there without waiting.
        if out.len() == 1 {
            let mut buf = [0u8; 16 * 1024];
            match tokio::time::timeout(
                Duration::from_millis(self.cfg.poll_wait_ms),
                reader.read(&mut buf),
            )
            .await
            {
                Ok(Ok(0)) | Ok(Err(_)) => return self.gone(session),
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        while out.len() < max_reply {
            let mut buf = [0u8; 16 * 1024];
            match tokio::time::timeout(Duration::ZERO, reader.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        reply(StatusCode::OK, out.to_vec())
    }

    /// The actor closed its end: forget the session; the client gets a non-200 and closes.
    fn gone(&self, session: &str) -> Response {
        self.sessions().remove(session);
        refuse(StatusCode::NOT_FOUND, "session_closed")
    }
}
