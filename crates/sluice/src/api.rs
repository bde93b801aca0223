//! The HTTP surface beyond HLS: `/metrics` (Prometheus), `/api/streams` (JSON), `/healthz`,
//! `/readyz` and the preview page at `/`. The HLS routes come from `hls_edge::router`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tower::ServiceBuilder;

use crate::pipeline::App;

#[derive(Clone)]
struct ApiState {
    app: Arc<App>,
    prometheus: PrometheusHandle,
    page: Arc<str>,
}

pub fn router(app: Arc<App>, prometheus: PrometheusHandle, edge: hls_edge::Edge) -> Router {
    let page: Arc<str> = preview_page(&app.cfg.http.hlsjs_url).into();
    let timeout = Duration::from_millis(app.cfg.http.request_timeout_ms);
    let max_concurrent = app.cfg.http.max_concurrent_requests;
    let state = ApiState {
        app: app.clone(),
        prometheus,
        page,
    };
    let own = Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/api/streams", get(list_streams))
        .route(
            "/api/streams/{app}/{stream}",
            get(get_stream).delete(kick_stream),
        )
        .with_state(state);
    // The timeout and concurrency limit guard the operator routes (metrics rendering, JSON,
    // webhooks-adjacent kicks); HLS answers come from memory without waiting, are bounded by the
    // connection limits, and must not pay a timer and a semaphore per request.
    own.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                (StatusCode::SERVICE_UNAVAILABLE, "overloaded or timed out\n")
            }))
            .load_shed()
            .concurrency_limit(max_concurrent)
            .timeout(timeout),
    )
    .merge(edge.router())
}

async fn index(State(s): State<ApiState>) -> Response {
    (
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        Html(s.page.to_string()),
    )
        .into_response()
}

async fn healthz() -> impl IntoResponse {
    no_store((StatusCode::OK, "ok\n"))
}

async fn readyz(State(s): State<ApiState>) -> Response {
    if s.app.is_draining() {
        no_store((StatusCode::SERVICE_UNAVAILABLE, "draining\n"))
    } else {
        no_store((StatusCode::OK, "ready\n"))
    }
}

fn no_store(r: impl IntoResponse) -> Response {
    let mut r = r.into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

async fn metrics_text(State(s): State<ApiState>) -> Response {
    metrics::gauge!("sluice_edge_bytes_held").set(s.app.store.bytes_held() as f64);
    let mut r = s.prometheus.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    no_store(r)
}

/// One stream as the API shows it: the edge's view (playlist, bytes held) joined with the
/// publisher's (codec, bitrate, GOP, client).
fn stream_json(s: &ApiState, summary: &hls_edge::StreamSummary) -> serde_json::Value {
    let mut v = serde_json::to_value(summary).unwrap_or_default();
    let live = s
        .app
        .live_stats()
        .into_iter()
        .find(|l| l.app == summary.app && l.stream == summary.stream);
    if let serde_json::Value::Object(m) = &mut v {
        m.insert(
            "playlist_url".into(),
            format!("/{}/{}/index.m3u8", summary.app, summary.stream).into(),
        );
        m.insert("publishing".into(), live.is_some().into());
        m.insert(
            "rtmp_players".into(),
            s.app.playback.players(&summary.app, &summary.stream).into(),
        );
        if let Some(l) = live {
            m.insert(
                "publisher".into(),
                serde_json::to_value(l).unwrap_or_default(),
            );
        }
    }
    v
}

async fn list_streams(State(s): State<ApiState>) -> Response {
    let streams: Vec<_> = s
        .app
        .store
        .streams()
        .iter()
        .map(|x| stream_json(&s, x))
        .collect();
    no_store(Json(serde_json::json!({ "streams": streams })))
}

async fn get_stream(
    State(s): State<ApiState>,
    Path((app, stream)): Path<(String, String)>,
) -> Response {
    match s.app.store.stream(&app, &stream) {
        Some(sum) => no_store(Json(stream_json(&s, &sum))),
        None => no_store((StatusCode::NOT_FOUND, "no such stream\n")),
    }
}

async fn kick_stream(
    State(s): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((app, stream)): Path<(String, String)>,
) -> Response {
    let token = &s.app.cfg.http.admin_token;
    let allowed = if token.is_empty() {
        peer.ip().is_loopback()
    } else {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| {
                t.len() == token.len()
                    && t.bytes()
                        .zip(token.bytes())
                        .fold(0u8, |a, (x, y)| a | (x ^ y))
                        == 0
            })
    };
    if !allowed {
        return no_store((StatusCode::UNAUTHORIZED, "admin token required\n"));
    }
    if s.app.kick(&app, &stream) {
        tracing::info!(%app, %stream, %peer, "publisher kicked through the API");
        no_store(StatusCode::NO_CONTENT)
    } else {
        no_store((StatusCode::NOT_FOUND, "no publisher for that stream\n"))
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn preview_page(hlsjs_url: &str) -> String {
    include_str!("preview.html").replace("{{HLSJS_URL}}", &html_escape(hlsjs_url))
}
