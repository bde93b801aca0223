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
    console: crate::console::Console,
}

pub fn router(app: Arc<App>, prometheus: PrometheusHandle, edge: hls_edge::Edge) -> Router {
    let page: Arc<str> = preview_page(&app.cfg.http.hlsjs_url, app.cfg.hls.low_latency).into();
    let timeout = Duration::from_millis(app.cfg.http.request_timeout_ms);
    let max_concurrent = app.cfg.http.max_concurrent_requests;
    let h = &app.cfg.http;
    let console = crate::console::Console::new(
        u64::from(app.cfg.hls.target_duration_ms),
        h.console_history_seconds,
        h.console_max_subscribers,
    );
    console.spawn_sampler(app.clone());
    let state = ApiState {
        app: app.clone(),
        prometheus,
        page,
        console,
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
        .route(crate::assets::HLSJS_PATH, get(crate::assets::hlsjs))
        .route("/api/streams/{app}/{stream}/history", get(stream_history))
        .route("/api/groups", get(list_groups))
        .route("/api/groups/{app}/{name}", get(get_group))
        .route("/api/events", get(console_events))
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
    .merge(crate::fleet::routes())
    // DVR and recordings: outside the operator timeout (a download streams for long).
    .merge(crate::recording_http::router(app))
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
    } else if let Some(why) = s.app.fleet.as_ref().and_then(|f| f.degraded()) {
        // 200: local streams still play; see the fleet module for why not 503.
        no_store((StatusCode::OK, format!("degraded: {why}\n")))
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
    for (c, bytes) in s.app.store.bytes_held_by_container().iter() {
        metrics::gauge!("sluice_edge_bytes_held", "container" => c.name()).set(*bytes as f64);
    }
    let mut r = s.prometheus.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    no_store(r)
}

/// One stream as the API shows it: the edge's view (playlists per container, bytes held,
/// typed stream information) joined with the publisher's (codec, bitrate, GOP, client).
fn stream_json(
    summary: &hls_edge::StreamSummary,
    live: Option<&crate::pipeline::LiveStats>,
) -> serde_json::Value {
    let mut v = serde_json::to_value(summary).unwrap_or_default();
    let (app, stream) = (&summary.app, &summary.stream);
    if let serde_json::Value::Object(m) = &mut v {
        m.insert(
            "playlist_url".into(),
            format!("/{app}/{stream}/index.m3u8").into(),
        );
        if let Some(serde_json::Value::Object(c)) = m.get_mut("containers") {
            for (name, file) in [("ts", "index.m3u8"), ("cmaf", "cmaf.m3u8")] {
                if let Some(serde_json::Value::Object(r)) = c.get_mut(name) {
                    r.insert(
                        "playlist_url".into(),
                        format!("/{app}/{stream}/{file}").into(),
                    );
                }
            }
        }
        m.insert("publishing".into(), live.is_some().into());
        if let Some(l) = live {
            m.insert(
                "publisher".into(),
                serde_json::to_value(l).unwrap_or_default(),
            );
        }
    }
    v
}

/// The `/api/streams` body: one pass over the summaries with the live publishers indexed by
/// name (linear in streams), plus the bytes held per container and in total.
fn streams_json(
    summaries: &[hls_edge::StreamSummary],
    live: Vec<crate::pipeline::LiveStats>,
    bytes_held: hls_edge::PerContainer<u64>,
) -> serde_json::Value {
    let live: std::collections::HashMap<(&str, &str), &crate::pipeline::LiveStats> = live
        .iter()
        .map(|l| ((l.app.as_str(), l.stream.as_str()), l))
        .collect();
    let streams: Vec<_> = summaries
        .iter()
        .map(|x| stream_json(x, live.get(&(x.app.as_str(), x.stream.as_str())).copied()))
        .collect();
    serde_json::json!({
        "streams": streams,
        "bytes_held": bytes_held.ts + bytes_held.cmaf,
        "bytes_held_by_container": bytes_held,
    })
}

async fn list_streams(State(s): State<ApiState>) -> Response {
    let store = &s.app.store;
    let body = streams_json(
        &store.streams(),
        s.app.live_stats(),
        store.bytes_held_by_container(),
    );
    no_store(Json(body))
}

/// Groups of renditions (`hls.variant_suffixes` and multitrack publishes): their members, the
/// order of the multivariant playlist, measured bandwidths and alignment counts.
async fn list_groups(State(s): State<ApiState>) -> Response {
    no_store(Json(serde_json::json!({ "groups": s.app.store.groups() })))
}

async fn get_group(
    State(s): State<ApiState>,
    Path((app, name)): Path<(String, String)>,
) -> Response {
    match s.app.store.group(&app, &name) {
        Some(g) => no_store(Json(g)),
        None => no_store((StatusCode::NOT_FOUND, "no such group\n")),
    }
}

async fn get_stream(
    State(s): State<ApiState>,
    Path((app, stream)): Path<(String, String)>,
) -> Response {
    match s.app.store.stream(&app, &stream) {
        Some(sum) => {
            let live = s.app.live_stats();
            let l = live
                .iter()
                .find(|l| l.app == sum.app && l.stream == sum.stream);
            no_store(Json(stream_json(&sum, l)))
        }
        None => no_store((StatusCode::NOT_FOUND, "no such stream\n")),
    }
}

async fn stream_history(
    State(s): State<ApiState>,
    Path((app, stream)): Path<(String, String)>,
) -> Response {
    match s.console.history(&app, &stream) {
        Some(h) => no_store(Json(h)),
        None => no_store((StatusCode::NOT_FOUND, "no such stream\n")),
    }
}

async fn console_events(State(s): State<ApiState>) -> Response {
    match s.console.subscribe() {
        Some(sse) => no_store(sse),
        None => no_store((
            StatusCode::SERVICE_UNAVAILABLE,
            "too many event-feed clients (http.console_max_subscribers)\n",
        )),
    }
}

/// The operator routes' check: `Authorization: Bearer <http.admin_token>`, or loopback when no
/// token is set.
pub(crate) fn admin_allowed(app: &App, peer: SocketAddr, headers: &HeaderMap) -> bool {
    let token = &app.cfg.http.admin_token;
    if token.is_empty() {
        peer.ip().is_loopback()
    } else {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| crate::auth::constant_time_eq(t.as_bytes(), token.as_bytes()))
    }
}

async fn kick_stream(
    State(s): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((app, stream)): Path<(String, String)>,
) -> Response {
    if !admin_allowed(&s.app, peer, &headers) {
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

fn preview_page(hlsjs_url: &str, low_latency: bool) -> String {
    let (url, note) = if hlsjs_url.is_empty() {
        let v = crate::assets::HLSJS_VERSION;
        (
            crate::assets::HLSJS_PATH,
            format!("{v}, built into this server"),
        )
    } else {
        (hlsjs_url, format!("from {hlsjs_url} (http.hlsjs_url)"))
    };
    include_str!("preview.html")
        .replace("{{HLSJS_URL}}", &html_escape(url))
        .replace("{{HLSJS_NOTE}}", &html_escape(&note))
        .replace(
            "{{LOW_LATENCY}}",
            if low_latency { "true" } else { "false" },
        )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime};

    use crate::pipeline::LiveStats;

    /// `/api/streams` with 5000 streams in the store, every one with a live publisher: one pass
    /// joins each stream with its publisher through an index (the old code cloned every
    /// publisher's stats once per listed stream: 25 million clones here).
    #[test]
    fn listing_5000_streams_joins_each_with_its_publisher() {
        const N: usize = 5000;
        let clock = Arc::new(hls_edge::SimClock::new(
            Instant::now(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_777_636_800),
        ));
        let store = hls_edge::Store::new(
            hls_edge::EdgeConfig {
                max_streams: N,
                ..hls_edge::EdgeConfig::default()
            },
            clock,
        );
        let params = hls_edge::PublishParams {
            target_duration_s: 2,
            part_target_ms: 500,
        };
        let mut handles = Vec::with_capacity(N);
        let mut live = Vec::with_capacity(N);
        for i in 0..N {
            let name = format!("s{i:04}");
            let h = store.begin_publish("live", &name, params).unwrap();
            let seg = hls_edge::NewSegment {
                container: hls_edge::Container::Ts,
                parts: vec![hls_edge::NewPart {
                    bytes: bytes::Bytes::from(vec![0u8; 188]),
                    duration_90k: 180_000,
                    independent: true,
                    segment_target_reached: false,
                }],
                init: None,
                duration_90k: 180_000,
                discontinuity: false,
                independent: true,
                arrival_unix_ms: 1_777_636_800_000,
                keyframe: None,
            };
            h.push_segment(seg).unwrap();
            handles.push(h);
            // Every other stream has a publisher, listed in reverse order.
            if i % 2 == 0 {
                live.push(LiveStats {
                    app: "live".into(),
                    stream: name,
                    bytes_received: i as u64,
                    ..LiveStats::default()
                });
            }
        }
        live.reverse();
        let v = super::streams_json(&store.streams(), live, store.bytes_held_by_container());
        let streams = v["streams"].as_array().unwrap();
        assert_eq!(streams.len(), N);
        for (i, s) in streams.iter().enumerate() {
            assert_eq!(s["stream"], format!("s{i:04}"));
            assert_eq!(s["publishing"], i % 2 == 0, "{s}");
            if i % 2 == 0 {
                assert_eq!(s["publisher"]["bytes_received"], i as u64);
            }
            assert_eq!(s["playlist_url"], format!("/live/s{i:04}/index.m3u8"));
            assert_eq!(
                s["containers"]["cmaf"]["playlist_url"],
                format!("/live/s{i:04}/cmaf.m3u8")
            );
            assert_eq!(s["containers"]["ts"]["bytes_held"], 188);
        }
        assert_eq!(v["bytes_held"], 188 * N as u64);
        assert_eq!(v["bytes_held_by_container"]["ts"], 188 * N as u64);
        assert_eq!(v["bytes_held_by_container"]["cmaf"], 0);
    }
}
