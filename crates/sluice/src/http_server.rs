//! The HTTP accept loop: hyper HTTP/1.1 connections serving the axum router, with the limits a
//! public origin needs against slow or hostile clients (axum::serve sets none of these):
//! a header read timeout (slowloris), a write stall timeout (a client that stops reading),
//! a bounded header buffer, a cap on open connections, and graceful shutdown that lets in-flight
//! responses finish.
//!
//! **Threads.** The HTTP side runs on its own `http.workers` threads, each a single-threaded
//! tokio runtime accepting from the shared listening socket (like nginx's workers): a
//! connection lives on one thread for its whole life, so a keep-alive request costs no
//! cross-thread wakeup or work stealing. On a 2-core machine this alone raised playlist
//! requests per CPU-second by about 45 % over the shared multi-threaded runtime. Ingest stays on
//! the main runtime.
//!
//! HLS requests (`/{app}/{stream}/{file}`, by far the most frequent) go straight to
//! [`hls_edge::Edge::respond`]; everything else goes through the axum router (whose fallback is
//! the same edge, so the answers are identical either way).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use hls_edge::Edge;

use crate::rtmpt::Rtmpt;

#[derive(Clone, Debug)]
pub struct HttpLimits {
    pub header_read_timeout: Duration,
    pub write_stall_timeout: Duration,
    pub max_connections: usize,
    pub max_header_bytes: usize,
}

/// Starts `workers` threads (at least 1), each a current-thread runtime serving `listener` until
/// `shutdown` is cancelled, then draining for up to `drain`. The connection cap is shared.
/// Completes when every worker has finished.
#[allow(clippy::too_many_arguments)]
pub async fn serve_on_workers(
    listener: std::net::TcpListener,
    workers: usize,
    router: Router,
    edge: Edge,
    rtmpt: Option<Arc<Rtmpt>>,
    limits: HttpLimits,
    shutdown: CancellationToken,
    drain: Duration,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut done = Vec::new();
    for i in 0..workers.max(1) {
        let listener = listener.try_clone()?;
        let (router, edge, rtmpt, limits, shutdown, permits) = (
            router.clone(),
            edge.clone(),
            rtmpt.clone(),
            limits.clone(),
            shutdown.clone(),
            permits.clone(),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name(format!("sluice-http-{i}"))
            .spawn(move || {
                let _entered = span.enter();
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, worker = i, "HTTP worker runtime failed to start");
                        return;
                    }
                };
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => {
                            serve(listener, router, edge, rtmpt, limits, permits, shutdown, drain)
                                .await
                        }
                        Err(e) => {
                            tracing::error!(error = %e, worker = i, "HTTP worker cannot register the listener")
                        }
                    }
                });
                let _ = tx.send(());
            })?;
        done.push(rx);
    }
    drop(listener);
    for rx in done {
        let _ = rx.await;
    }
    Ok(())
}

/// Serves `router` until `shutdown` is cancelled, then waits up to `drain` for open connections.
#[allow(clippy::too_many_arguments)]
async fn serve(
    listener: TcpListener,
    router: Router,
    edge: Edge,
    rtmpt: Option<Arc<Rtmpt>>,
    limits: HttpLimits,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        // librtmp finds RTMPT's `Content-Length` by a case-sensitive search for "Content-".
        .title_case_headers(true)
        .keep_alive(true);
    let builder = Arc::new(builder);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!("sluice_http_connections_refused_total").increment(1);
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let mut io = TimeoutStream::new(tcp);
        io.set_write_timeout(Some(limits.write_stall_timeout));
        let (router, edge, rtmpt) = (router.clone(), edge.clone(), rtmpt.clone());
        let svc =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                // Routed by real paths: RTMPT's /open, /send, /idle, /close and /fcs requests
                // go to the tunnel and never to the HLS edge.
                let tunnel = rtmpt
                    .as_ref()
                    .filter(|t| t.claims(req.uri().path()))
                    .cloned();
                let hls = (tunnel.is_none()
                    && Edge::is_hls_path(req.uri().path())
                    && !crate::recording_http::claims(req.uri().path()))
                .then(|| edge.clone());
                if hls.is_some() {
                    crate::console::note_request(req.uri().path());
                }
                let hls_kind = if req.uri().query().is_some_and(|q| q.contains("_HLS_msn=")) {
                    crate::telemetry::HttpKind::HlsBlocking
                } else {
                    crate::telemetry::HttpKind::Hls
                };
                let router = router.clone();
                let started = std::time::Instant::now();
                async move {
                    use crate::telemetry::{http_duration, HttpKind};
                    if let Some(tunnel) = tunnel {
                        let resp = tunnel.respond(req, peer).await;
                        http_duration(HttpKind::Rtmpt).record(started.elapsed().as_secs_f64());
                        return Ok(resp);
                    }
                    if let Some(edge) = hls {
                        // In a fleet, a stream another node owns is answered by that node.
                        let forwarded = match crate::fleet::installed() {
                            Some(f) => f.forward(&req).await,
                            None => None,
                        };
                        let resp = match forwarded {
                            Some(r) => r,
                            None => edge.respond(req).await,
                        };
                        http_duration(hls_kind).record(started.elapsed().as_secs_f64());
                        return Ok::<_, std::convert::Infallible>(resp);
                    }
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let resp = router.oneshot(req).await;
                    http_duration(HttpKind::Operator).record(started.elapsed().as_secs_f64());
                    resp
                }
            });
        let conn = builder.serve_connection(TokioIo::new(Box::pin(io)), svc);
        let fut = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = fut.await {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open after the shutdown timeout; closing them");
    }
}
