//! HTTP for DVR windows and recordings (draft-pantos-hls-rfc8216bis §4.4.3.5 EVENT/VOD,
//! §4.4.2.2 EXT-X-START, §6.2.2 serving; RFC 9110 §14 ranges):
//!
//! * `/{app}/{stream}/dvr.m3u8[?start=beginning|<unix seconds>|<RFC 3339 time>]`: the DVR
//!   window (EVENT while it fits, sliding after; `#EXT-X-ENDLIST` once the publish ended, until
//!   a reconnect continues it or `hls.dvr_keep_after_end_s` passes); `start` adds
//!   `#EXT-X-START:TIME-OFFSET` (the query is part of the cache key; the live playlist is
//!   untouched).
//! * `/{app}/{stream}/dvr/{seg-N.ts|seg-N.m4s|init-N.mp4}`: DVR segments, from disk.
//! * `/recordings/{id}/{index.m3u8|cmaf.m3u8|seg-N.*|init-N.mp4}`: recordings;
//!   `download.mp4` (a progressive MP4) is `recording_download`'s.
//! * `GET /api/recordings`, `GET|DELETE /api/recordings/{id}` (DELETE needs the admin token).
//! * `GET /api/dvr`: every DVR window, its bytes on disk and its index's bytes in memory.
//!
//! Segments are read from their own files (one segment at a time, only the requested range),
//! never whole logs; playlists are rendered from the in-memory index.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use archive::{Container, Index, RenderOptions};
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use hls_edge::http::{parse_range, RangeOutcome};

use crate::pipeline::App;
use crate::recording::{Archive, DeleteOutcome};

const SEGMENT_CACHE: &str = "public, max-age=31536000, immutable";

/// Paths this module answers that would otherwise look like `/{app}/{stream}/{file}` to the
/// HTTP fast path.
/// App names whose HLS URLs these routes would shadow; publishing to them is refused.
pub const RESERVED_APPS: [&str; 2] = ["api", "recordings"];

pub fn claims(path: &str) -> bool {
    path.starts_with("/recordings/") || path.starts_with("/api/") || path.ends_with("/dvr.m3u8")
}

#[derive(Clone)]
struct St {
    app: Arc<App>,
    downloads: Arc<crate::recording_download::DownloadCache>,
}

impl St {
    fn archive(&self) -> Option<&Arc<Archive>> {
        self.app.archive.get()
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/{app}/{stream}/dvr.m3u8", get(dvr_playlist))
        .route("/{app}/{stream}/dvr/{file}", get(dvr_file))
        .route("/recordings/{id}/{file}", get(recording_file))
        .route("/api/dvr", get(dvr_list))
        .route("/api/recordings", get(list))
        .route("/api/recordings/{id}", get(get_one).delete(delete_one))
        .with_state(St {
            app,
            downloads: Arc::default(),
        })
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=1"),
        )],
        "not found\n",
    )
        .into_response()
}

fn with_common(st: &St, mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let origin = &st.app.cfg.http.cors_allow_origin;
    if !origin.is_empty() {
        if let Ok(v) = HeaderValue::from_str(origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
    }
    r
}

fn playlist_response(st: &St, text: String, cache: String) -> Response {
    let r = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.apple.mpegurl"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_str(&cache).unwrap_or(HeaderValue::from_static("no-cache")),
            ),
        ],
        text,
    )
        .into_response();
    with_common(st, r)
}

/// `start` query: `beginning`, unix seconds, or an RFC 3339 time.
fn parse_start(v: &str) -> Option<Option<u64>> {
    if v == "beginning" {
        return Some(None);
    }
    if let Ok(s) = v.parse::<u64>() {
        return Some(Some(s.saturating_mul(1000)));
    }
    let t = humantime::parse_rfc3339_weak(v).ok()?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    Some(Some(u64::try_from(ms).ok()?))
}

fn target_s(app: &App) -> u32 {
    app.cfg.hls.target_duration_ms.div_ceil(1000).max(1)
}

async fn dvr_playlist(
    State(st): State<St>,
    Path((app, stream)): Path<(String, String)>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    dvr_playlist_inner(st, app, stream, q)
}

fn dvr_playlist_inner(
    st: St,
    app: String,
    stream: String,
    q: std::collections::HashMap<String, String>,
) -> Response {
    let Some(index) = st.archive().and_then(|a| {
        (a.shared.dvr.read().unwrap_or_else(|e| e.into_inner()))
            .get(&(app, stream))
            .cloned()
    }) else {
        return with_common(&st, not_found());
    };
    let index = index.read().unwrap_or_else(|e| e.into_inner());
    let Some(c) = index.primary() else {
        return with_common(&st, not_found());
    };
    let start_offset_s = match q.get("start").map(|v| parse_start(v)) {
        None => None,
        Some(None) => {
            return with_common(
                &st,
                (
                    StatusCode::BAD_REQUEST,
                    "start: use beginning, unix seconds or an RFC 3339 time\n",
                )
                    .into_response(),
            )
        }
        Some(Some(None)) => Some(0.0),
        Some(Some(Some(ms))) => Some(archive::offset_at(&index, c, ms)),
    };
    let opts = RenderOptions {
        vod: false,
        uri_prefix: "dvr/".into(),
        start_offset_s,
        target_duration_s: target_s(&st.app),
    };
    let Some(text) = archive::render(&index, c, &opts) else {
        return with_common(&st, not_found());
    };
    // The live playlist's rule: about half a target duration while live, longer (capped: a
    // reconnect continues the window) once the publish has ended.
    let ended = index.closed_unix_ms.is_some();
    let max_age = hls_edge::playlist_max_age_s(target_s(&st.app), ended);
    playlist_response(&st, text, format!("public, max-age={max_age}"))
}

/// `seg-N.ts`, `seg-N.m4s`, `init-N.mp4` of an index: (path, length, content type).
fn file_of(index: &Index, file: &str) -> Option<(PathBuf, u64, &'static str)> {
    if let Some(n) = file
        .strip_prefix("init-")
        .and_then(|r| r.strip_suffix(".mp4"))
    {
        let n = canonical(n)?;
        let len = index.init_len(n)?;
        return Some((index.dir.join(archive::init_file(n)), len, "video/mp4"));
    }
    let rest = file.strip_prefix("seg-")?;
    for c in Container::ALL {
        if let Some(n) = rest
            .strip_suffix(c.extension())
            .and_then(|r| r.strip_suffix('.'))
            .and_then(canonical)
        {
            let e = index.segment(c, n)?;
            let ct = match c {
                Container::Ts => "video/mp2t",
                Container::Cmaf => "video/iso.segment",
            };
            return Some((index.dir.join(archive::segment_file(c, n)), e.len, ct));
        }
    }
    None
}

fn canonical(d: &str) -> Option<u64> {
    if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) || (d.len() > 1 && d.starts_with('0'))
    {
        return None;
    }
    d.parse().ok()
}

/// Reads `len` bytes at `offset` of `path` on the blocking pool.
async fn read_range(path: PathBuf, offset: u64, len: u64) -> std::io::Result<Bytes> {
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(&path)?;
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
        f.read_exact_at(&mut buf, offset)?;
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(std::io::Error::other)?
}

async fn serve_file(
    st: &St,
    index: &Arc<RwLock<Index>>,
    file: &str,
    headers: &HeaderMap,
) -> Response {
    let found = {
        let i = index.read().unwrap_or_else(|e| e.into_inner());
        file_of(&i, file)
    };
    let Some((path, len, ct)) = found else {
        return with_common(st, not_found());
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(RangeOutcome::Full, |h| parse_range(h, len));
    let (status, first, last) = match range {
        RangeOutcome::Full => (StatusCode::OK, 0, len.saturating_sub(1)),
        RangeOutcome::Partial { first, last } => (StatusCode::PARTIAL_CONTENT, first, last),
        RangeOutcome::Unsatisfiable => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return with_common(st, r);
        }
    };
    let n = if len == 0 { 0 } else { last - first + 1 };
    let body = match read_range(path, first, n).await {
        Ok(b) => b,
        Err(e) => {
            // Evicted or deleted between listing and reading.
            tracing::debug!(file, error = %e, "archived segment not readable");
            return with_common(st, not_found());
        }
    };
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(SEGMENT_CACHE),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{len}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    with_common(st, r)
}

async fn dvr_file(
    State(st): State<St>,
    Path((app, stream, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(index) = st.archive().and_then(|a| {
        (a.shared.dvr.read().unwrap_or_else(|e| e.into_inner()))
            .get(&(app, stream))
            .cloned()
    }) else {
        return with_common(&st, not_found());
    };
    serve_file(&st, &index, &file, &headers).await
}

fn recording(st: &St, id: &str) -> Option<Arc<RwLock<Index>>> {
    let a = st.archive()?;
    let recs = a
        .shared
        .recordings
        .read()
        .unwrap_or_else(|e| e.into_inner());
    recs.get(id).map(|r| r.index.clone())
}

async fn recording_file(
    State(st): State<St>,
    Path((id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(index) = recording(&st, &id) else {
        return with_common(&st, not_found());
    };
    let container = match file.as_str() {
        "index.m3u8" => Some(None),
        "cmaf.m3u8" => Some(Some(Container::Cmaf)),
        "ts.m3u8" => Some(Some(Container::Ts)),
        "download.mp4" => {
            let max = st.app.cfg.recording.download_max_samples;
            let r = crate::recording_download::respond(&st.downloads, &index, max, &headers);
            return with_common(&st, r.await);
        }
        _ => None,
    };
    let Some(container) = container else {
        return serve_file(&st, &index, &file, &headers).await;
    };
    let i = index.read().unwrap_or_else(|e| e.into_inner());
    let Some(c) = container.or_else(|| i.primary()) else {
        return with_common(&st, not_found());
    };
    let opts = RenderOptions {
        vod: true,
        uri_prefix: String::new(),
        start_offset_s: None,
        target_duration_s: target_s(&st.app),
    };
    let Some(text) = archive::render(&i, c, &opts) else {
        return with_common(&st, not_found());
    };
    let cache = if i.closed_unix_ms.is_some() {
        // Complete: it never changes again (but a DELETE can remove it).
        "public, max-age=3600".to_string()
    } else {
        format!("public, max-age={}", (target_s(&st.app) / 2).max(1))
    };
    playlist_response(&st, text, cache)
}

fn json_of(index: &Index) -> serde_json::Value {
    let id = &index.meta.id;
    serde_json::json!({
        "id": id,
        "app": index.meta.app,
        "stream": index.meta.stream,
        "started_unix_ms": index.meta.created_unix_ms,
        "ended_unix_ms": index.closed_unix_ms,
        "recording": index.closed_unix_ms.is_none(),
        "duration_s": index.duration_90k() as f64 / 90_000.0,
        "bytes": index.bytes(),
        "segments": index.primary().map_or(0, |c| index.segments(c).len()),
        "containers": index.containers().iter().map(|c| c.name()).collect::<Vec<_>>(),
        "playlist": format!("/recordings/{id}/index.m3u8"),
        "download": index.segments(Container::Cmaf).front().map(|_| format!("/recordings/{id}/download.mp4")),
    })
}

/// Every DVR window (live or ended): what it lists, its bytes on disk, and the bytes its
/// in-memory index takes (the only DVR data held in memory; media is read from disk).
async fn dvr_list(State(st): State<St>) -> Response {
    let Some(a) = st.archive() else {
        return no_store(Json(serde_json::json!([])));
    };
    let map = a.shared.dvr.read().unwrap_or_else(|e| e.into_inner());
    let mut out: Vec<serde_json::Value> = map
        .iter()
        .map(|((app, stream), i)| {
            let i = i.read().unwrap_or_else(|e| e.into_inner());
            let entries: usize = Container::ALL.iter().map(|c| i.segments(*c).len()).sum();
            serde_json::json!({
                "app": app,
                "stream": stream,
                "ended": i.closed_unix_ms.is_some(),
                "segments": i.primary().map_or(0, |c| i.segments(c).len()),
                "duration_s": i.primary().map_or(0, |c| i.listed_90k(c)) as f64 / 90_000.0,
                "bytes_on_disk": i.bytes(),
                "index_bytes_in_memory": entries * std::mem::size_of::<archive::Entry>(),
                "playlist": format!("/{app}/{stream}/dvr.m3u8"),
            })
        })
        .collect();
    out.sort_by(|a, b| a["playlist"].as_str().cmp(&b["playlist"].as_str()));
    no_store(Json(out))
}

fn no_store(r: impl IntoResponse) -> Response {
    let mut r = r.into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn list(State(st): State<St>) -> Response {
    let Some(a) = st.archive() else {
        return no_store(Json(serde_json::json!([])));
    };
    let recs = a
        .shared
        .recordings
        .read()
        .unwrap_or_else(|e| e.into_inner());
    let out: Vec<serde_json::Value> = recs
        .values()
        .map(|r| json_of(&r.index.read().unwrap_or_else(|e| e.into_inner())))
        .collect();
    no_store(Json(out))
}

async fn get_one(State(st): State<St>, Path(id): Path<String>) -> Response {
    match recording(&st, &id) {
        Some(i) => no_store(Json(json_of(&i.read().unwrap_or_else(|e| e.into_inner())))),
        None => no_store((StatusCode::NOT_FOUND, "no such recording\n")),
    }
}

async fn delete_one(
    State(st): State<St>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !crate::api::admin_allowed(&st.app, peer, &headers) {
        return no_store((StatusCode::UNAUTHORIZED, "admin token required\n"));
    }
    let Some(a) = st.archive() else {
        return no_store((StatusCode::NOT_FOUND, "no such recording\n"));
    };
    match a.delete(&id).await {
        DeleteOutcome::Deleted => {
            tracing::info!(%id, %peer, "recording deleted through the API");
            no_store(StatusCode::NO_CONTENT)
        }
        DeleteOutcome::NotFound => no_store((StatusCode::NOT_FOUND, "no such recording\n")),
        DeleteOutcome::StillRecording => no_store((
            StatusCode::CONFLICT,
            "recording in progress; delete it once it is complete\n",
        )),
    }
}
