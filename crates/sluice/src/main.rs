//! `sluice`: the binary. Loads configuration, installs telemetry, and wires
//! RTMP ingest -> remux -> in-memory HLS store -> HTTP edge, with graceful shutdown.

mod api;
mod assets;
mod auth;
mod config;
mod console;
mod fleet;
mod http_server;
mod pipeline;
mod playback;
mod recording;
mod recording_download;
mod recording_http;
mod recording_writer;
mod renditions;
mod rtmpt;
#[cfg(test)]
mod sim;
mod telemetry;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::config::{ms, Cli, Config};

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line (with causes), no backtrace: this is what an operator sees.
            eprintln!("sluice: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    let cfg = Config::load(&cli, std::env::vars()).context("configuration")?;
    if cli.print_config {
        print!("{}", cfg.to_toml_masked());
        return Ok(());
    }
    if cli.healthcheck {
        return healthcheck(&cfg);
    }
    telemetry::init_logging(&cfg.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice")
        .build()?;
    runtime.block_on(run(cfg))
}

async fn run(cfg: Config) -> Result<()> {
    let cfg = Arc::new(cfg);
    let prometheus = telemetry::install_metrics()?;
    let _upkeep = telemetry::spawn_upkeep(prometheus.clone());
    let clock = Arc::new(hls_edge::TokioClock::new(std::time::SystemTime::now()));
    let store = hls_edge::Store::new(pipeline::edge_config(&cfg), clock);
    let janitor = store.spawn_janitor();
    let auth = auth::Authorizer::new(&cfg.auth)?;
    let mut app = pipeline::App::new(cfg.clone(), store.clone(), auth);
    app.fleet = fleet::install(&cfg)?;
    let app = Arc::new(app);
    if let Some(archive) = recording::Archive::start(cfg.clone(), cfg.http.listen.port())? {
        let _ = app.archive.set(archive);
    }

    let rtmp_listener = tokio::net::TcpListener::bind(cfg.rtmp.listen)
        .await
        .with_context(|| format!("binding RTMP listener on {} (rtmp.listen)", cfg.rtmp.listen))?;
    let http_listener = std::net::TcpListener::bind(cfg.http.listen)
        .with_context(|| format!("binding HTTP listener on {} (http.listen)", cfg.http.listen))?;
    tracing::info!(
        rtmp = %rtmp_listener.local_addr()?,
        http = %http_listener.local_addr()?,
        version = env!("CARGO_PKG_VERSION"),
        "sluice listening: publish to rtmp://HOST:{}/APP/STREAM, play http://HOST:{}/APP/STREAM/index.m3u8",
        rtmp_listener.local_addr()?.port(),
        http_listener.local_addr()?.port(),
    );

    let ingest_shutdown = CancellationToken::new();
    let http_shutdown = CancellationToken::new();
    // One connection-actor server for RTMP, RTMPT and RTMPS (shared caps and handler).
    let rtmp_server = rtmp_ingest::server::Server::new(
        pipeline::ingest_config(&cfg),
        app.clone(),
        ingest_shutdown.clone(),
        std::sync::Arc::new(rtmp_ingest::IngestCounters::default()),
    );
    let ingest = {
        let server = rtmp_server.clone();
        tokio::spawn(async move { server.serve_tcp(rtmp_listener).await })
    };
    let rtmps = if cfg.rtmps.enabled() {
        Some(
            tls::serve(
                cfg.rtmps.clone(),
                rtmp_server.clone(),
                ingest_shutdown.clone(),
            )
            .await?,
        )
    } else {
        None
    };
    let rtmpt = cfg.rtmpt.enabled.then(|| {
        rtmpt::Rtmpt::new(
            cfg.rtmpt.clone(),
            rtmp_server.clone(),
            tokio::runtime::Handle::current(),
        )
    });
    let edge = hls_edge::Edge::new(app.store.clone());
    let router = api::router(app.clone(), prometheus, edge.clone());
    let limits = http_server::HttpLimits {
        header_read_timeout: ms(cfg.http.header_read_timeout_ms),
        write_stall_timeout: ms(cfg.http.write_stall_timeout_ms),
        max_connections: cfg.http.max_connections,
        max_header_bytes: cfg.http.max_header_bytes,
    };
    let workers = match cfg.http.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let http = tokio::spawn(http_server::serve_on_workers(
        http_listener,
        workers,
        router,
        edge,
        rtmpt,
        limits,
        http_shutdown.clone(),
        ms(cfg.http.shutdown_timeout_ms),
    ));

    shutdown_signal().await;
    tracing::info!("shutdown requested: closing publishers, ending playlists");
    app.set_draining();
    // 1. Stop ingest: every publisher's sink is closed, which flushes its open segment.
    ingest_shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(3), ingest).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "RTMP server ended with an error"),
        Err(_) => tracing::warn!("RTMP connections did not close within 3 s"),
        _ => {}
    }
    if let Some(t) = rtmps {
        let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
    }
    if let Some(a) = app.archive.get() {
        a.shutdown().await;
    }
    // 2. Every playlist gets EXT-X-ENDLIST so players and CDNs see a clean end.
    store.end_all();
    // 3. Let in-flight HTTP responses complete.
    http_shutdown.cancel();
    let _ = http.await;
    janitor.abort();
    tracing::info!("sluice stopped");
    Ok(())
}

/// `GET /healthz` over loopback with a raw HTTP/1.1 request; exits non-zero unless it answers 200.
fn healthcheck(cfg: &Config) -> Result<()> {
    use std::io::{Read, Write};
    let port = cfg.http.listen.port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    if &head[9..12] == b"200" {
        Ok(())
    } else {
        anyhow::bail!("unhealthy: {}", String::from_utf8_lossy(&head))
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
