//! The HLS routes: `GET`/`HEAD`/`OPTIONS /{app}/{stream}/{file}` for `index.m3u8` (the primary
//! container's playlist), `cmaf.m3u8`, `iframes.m3u8` / `cmaf-iframes.m3u8` (I-frame playlists,
//! [`crate::iframes`]), `seg-{n}.ts`, `seg-{n}.m4s`, `part-{n}.{p}.m4s` (LL-HLS
//! parts) and `init-{n}.mp4` (RFC 8216bis §4 file rules, §6.2.1 serving, §6.2.2 availability,
//! §6.2.5 delivery directives and blocking reload, §6.2.6 preload hints, Appendix B.1 cache
//! lifetimes).
//! Content types per RFC 8216 §4 / RFC 8216bis §3: `application/vnd.apple.mpegurl`, `video/mp2t`,
//! `video/mp4` (`audio/mp4` for audio-only CMAF, RFC 4337).
//!
//! Every response carries `X-Content-Type-Options: nosniff` and, if configured, CORS headers.
//! Error bodies are fixed texts. Nothing here waits on ingest or holds a lock while writing or
//! waiting: a blocked request (`_HLS_msn`, or the part a preload hint names) is a future parked
//! on the rendition's watch ([`crate::ll`]), answered the moment the playlist has what it asked
//! for, or 503 after three target durations; a stream that ends answers it with the final
//! playlist, so shutdown (which ends every playlist) releases every waiter.
//!
//! Cache lifetimes (Appendix B.1): non-blocking playlists about half a target duration;
//! blocking playlist answers six target durations (the URL names a future part, so the answer
//! for it never changes; the `_HLS_*` query is part of the cache key); parts and segments
//! long-lived and immutable. A preload-hint request waits for the part's first CMAF chunk, then
//! gets `200` at once with the same immutable lifetime and a body that streams the chunks as
//! they arrive (no `Content-Length`), ending normally only when the part is complete
//! ([`crate::growing`]); a hint that turns out wrong (the segment ended first) is still a 404.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};

use crate::body::{RenderedPlaylist, StoredBody};
use crate::error::EdgeError;
use crate::growing;
use crate::http::{
    accepts_gzip, decode_name, if_range_holds, none_match_hits, not_modified_since, parse_range,
    slice_chunks, ChunksBody, RangeOutcome,
};
use crate::ll::{parse_directives, LlProgress};
use crate::media::Container;
use crate::store::FoundPart;
use crate::store::Store;

/// Longest request target (path and query) accepted; longer is 414.
pub const MAX_URI_BYTES: usize = 2048;
/// Longest query string accepted; longer is 414. Queries are otherwise ignored.
pub const MAX_QUERY_BYTES: usize = 1024;
/// Cap on `max-age` of an ended playlist: a republish drops ENDLIST again.
const ENDED_PLAYLIST_MAX_AGE_CAP_S: u64 = 60;

const PLAYLIST_CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";
const ALLOW: &str = "GET, HEAD, OPTIONS";

#[derive(Clone)]
struct EdgeState {
    store: Store,
    cors_origin: Option<HeaderValue>,
    segment_cache_control: HeaderValue,
    not_found_cache_control: HeaderValue,
}

/// What a request was for, as the `route` metric label.
#[derive(Clone, Copy)]
#[repr(usize)]
enum Route {
    Playlist,
    Segment,
    Init,
    Other,
    Part,
}

impl Route {
    const ALL: [Route; 5] = [
        Route::Playlist,
        Route::Segment,
        Route::Init,
        Route::Other,
        Route::Part,
    ];

    fn label(self) -> &'static str {
        match self {
            Route::Playlist => "playlist",
            Route::Segment => "segment",
            Route::Init => "init",
            Route::Other => "other",
            Route::Part => "part",
        }
    }
}

/// The HLS edge as a plain request handler (cheap to clone). Everything it serves is in memory;
/// [`Edge::respond`] completes at its first poll unless the request blocks (LL-HLS), and is what
/// the HTTP server calls directly for HLS paths, without a router in between.
#[derive(Clone)]
pub struct Edge(Arc<EdgeState>);

impl Edge {
    pub fn new(store: Store) -> Self {
        let cfg = store.config();
        let cors_origin =
            cfg.cors_allow_origin
                .as_deref()
                .and_then(|o| match HeaderValue::from_str(o) {
                    Ok(v) => Some(v),
                    Err(_) => {
                        tracing::warn!(
                            "cors_allow_origin is not a valid header value; CORS headers disabled"
                        );
                        None
                    }
                });
        Edge(Arc::new(EdgeState {
            segment_cache_control: header_value(format!(
                "public, max-age={}, immutable",
                cfg.segment_cache_max_age_s
            )),
            not_found_cache_control: header_value(format!(
                "public, max-age={}",
                cfg.not_found_max_age_s
            )),
            cors_origin,
            store,
        }))
    }

    /// True for the paths the edge owns: exactly three segments, `/{app}/{stream}/{file}`.
    /// Every other path belongs to whatever router the edge is merged into (its fallback is
    /// still the edge, for 400/404 with the edge's headers).
    pub fn is_hls_path(path: &str) -> bool {
        path.starts_with('/') && path.bytes().filter(|&b| b == b'/').count() == 3
    }

    /// Answers one request (any path: non-HLS paths get the edge's 400/404). The request body
    /// is dropped unread. Blocking requests (LL-HLS) wait here; everything else is answered at
    /// the first poll.
    pub async fn respond<B>(&self, req: http::Request<B>) -> Response {
        let state = &*self.0;
        let (parts, body) = req.into_parts();
        drop(body);
        let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
        let (route, result) = serve(state, method, uri, headers).await;
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => error_response(state, e),
        };
        finish(state, route, method, &mut resp);
        resp
    }
}

/// The HLS routes as an axum router. Also installs a fallback (the same handler: 400/404/405
/// with the edge's headers), so the router it is merged into must not set another fallback.
pub fn router(store: Store) -> Router {
    Edge::new(store).router()
}

impl Edge {
    /// This edge as an axum router (see [`router`]).
    pub fn router(self) -> Router {
        Router::new()
            .route("/{app}/{stream}/{file}", any(handle))
            .fallback(handle)
            .with_state(self)
    }
}

/// A response that takes `headers` as its header map (moved, not re-inserted one by one).
fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

fn header_value(s: String) -> HeaderValue {
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("no-store"))
}

async fn handle(State(edge): State<Edge>, req: axum::extract::Request) -> Response {
    // The request is taken whole: extracting `HeaderMap`/`Uri` by value would clone them.
    edge.respond(req).await
}

async fn serve(
    state: &EdgeState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> (Route, Result<Response, EdgeError>) {
    let query_len = uri.query().map_or(0, str::len);
    if query_len > MAX_QUERY_BYTES || uri.path().len() + query_len > MAX_URI_BYTES {
        return (Route::Other, Err(EdgeError::UriTooLong));
    }
    if *method == Method::OPTIONS {
        return (Route::Other, Ok(preflight(state)));
    }
    if *method != Method::GET && *method != Method::HEAD {
        return (Route::Other, Err(EdgeError::MethodNotAllowed));
    }
    let raw = uri.path().strip_prefix('/').unwrap_or(uri.path());
    let mut parts = raw.split('/');
    let (Some(app), Some(stream), Some(file), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        // Not three segments: still reject undecodable names as 400 rather than 404.
        if raw.split('/').any(|p| decode_name(p).is_none()) {
            return (Route::Other, Err(EdgeError::BadName));
        }
        return (Route::Other, Err(EdgeError::NotFound));
    };
    let (Some(app), Some(stream), Some(file)) =
        (decode_name(app), decode_name(stream), decode_name(file))
    else {
        return (Route::Other, Err(EdgeError::BadName));
    };
    let (app, stream, file) = (app.as_ref(), stream.as_ref(), file.as_ref());
    let store = &state.store;
    let (route, body) = match parse_file_name(file) {
        Some(File::Playlist(container)) => {
            let query = uri.query().filter(|q| q.contains("_HLS_"));
            if query.is_some() && state.store.config().low_latency {
                let r = blocking_playlist(state, app, stream, container, query, method, headers);
                return (Route::Playlist, r.await);
            }
            let r = store
                .playlist(app, stream, container)
                .ok_or(EdgeError::NotFound);
            return (
                Route::Playlist,
                r.map(|p| playlist_response(&p, method, headers)),
            );
        }
        Some(File::IFrames(container)) => {
            let r = store
                .iframe_playlist(app, stream, container)
                .ok_or(EdgeError::NotFound);
            return (
                Route::Playlist,
                r.map(|p| playlist_response(&p, method, headers)),
            );
        }
        Some(File::Part(msn, index)) => {
            let r = part_request(state, app, stream, msn, index, method, headers);
            return (Route::Part, r.await);
        }
        Some(File::Segment(container, seq)) => {
            (Route::Segment, store.segment(app, stream, container, seq))
        }
        Some(File::Init(n)) => (Route::Init, store.init(app, stream, n)),
        None => return (Route::Other, Err(EdgeError::NotFound)),
    };
    let r = body.ok_or(EdgeError::NotFound);
    (
        route,
        r.and_then(|s| segment_response(state, &s, method, headers)),
    )
}

/// A file name the edge serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum File {
    /// `index.m3u8` (`None`: the primary container) or `cmaf.m3u8`.
    Playlist(Option<Container>),
    /// `iframes.m3u8` (`None`: the primary container) or `cmaf-iframes.m3u8`.
    IFrames(Option<Container>),
    Segment(Container, u64),
    Init(u64),
    /// `part-{msn}.{index}.m4s` (CMAF).
    Part(u64, u32),
}

fn parse_file_name(file: &str) -> Option<File> {
    match file {
        "index.m3u8" => return Some(File::Playlist(None)),
        "cmaf.m3u8" => return Some(File::Playlist(Some(Container::Cmaf))),
        "iframes.m3u8" => return Some(File::IFrames(None)),
        "cmaf-iframes.m3u8" => return Some(File::IFrames(Some(Container::Cmaf))),
        _ => {}
    }
    if let Some(rest) = file.strip_prefix("seg-") {
        for c in Container::ALL {
            let ext = c.segment_extension();
            if let Some(n) = rest
                .strip_suffix(ext)
                .and_then(|r| r.strip_suffix('.'))
                .and_then(canonical_number)
            {
                return Some(File::Segment(c, n));
            }
        }
        return None;
    }
    if let Some(rest) = file.strip_prefix("part-") {
        let (msn, index) = rest.strip_suffix(".m4s")?.split_once('.')?;
        let index = u32::try_from(canonical_number(index)?).ok()?;
        return Some(File::Part(canonical_number(msn)?, index));
    }
    let n = file.strip_prefix("init-")?.strip_suffix(".mp4")?;
    canonical_number(n).map(File::Init)
}

/// A playlist request with `_HLS_*` delivery directives (RFC 8216bis §6.2.5). Directives are
/// ignored on a playlist that is not Low-Latency (no `CAN-BLOCK-RELOAD`) and on an ended one
/// (the final playlist is the answer).
async fn blocking_playlist(
    state: &EdgeState,
    app: &str,
    stream: &str,
    container: Option<Container>,
    query: Option<&str>,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, EdgeError> {
    let store = &state.store;
    let (signal, _) = store
        .signal(app, stream, container)
        .ok_or(EdgeError::NotFound)?;
    let mut rx = signal.subscribe();
    let now = rx.borrow_and_update().clone();
    if now.gone || now.playlist.is_none() {
        return Err(EdgeError::NotFound);
    }
    if !now.ll || now.ended {
        let p = now.playlist.ok_or(EdgeError::NotFound)?;
        return Ok(playlist_response(&p, method, headers));
    }
    let d = parse_directives(query).map_err(|_| {
        blocking_outcome("bad_request");
        EdgeError::BadDirective
    })?;
    let ready = |p: &LlProgress| match (d.msn, d.part) {
        (Some(m), Some(part)) => p.has_part(m, part),
        (Some(m), None) => p.has_segment(m),
        _ => true,
    };
    let blocking = d.msn.is_some();
    if let Some(m) = d.msn.filter(|_| !ready(&now)) {
        if now.too_far_ahead(m, d.part) {
            blocking_outcome("bad_request");
            return Err(EdgeError::BadDirective);
        }
    }
    let p = if ready(&now) {
        if blocking {
            blocking_outcome("immediate");
        }
        now
    } else {
        let Some(_waiting) = signal.enter(store.config().max_waiting_requests_per_stream) else {
            blocking_outcome("too_many");
            return Err(EdgeError::TooManyWaiting);
        };
        let limit = std::time::Duration::from_secs(3 * u64::from(now.target_duration_s.max(1)));
        let woken =
            tokio::time::timeout(limit, rx.wait_for(|p| p.gone || p.ended || ready(p))).await;
        match woken {
            Ok(Ok(p)) => {
                let p = p.clone();
                blocking_outcome(if p.ended { "ended" } else { "woken" });
                p
            }
            Ok(Err(_)) => return Err(EdgeError::NotFound),
            Err(_) => {
                blocking_outcome("timeout");
                return Err(EdgeError::BlockingTimeout);
            }
        }
    };
    if p.gone {
        return Err(EdgeError::NotFound);
    }
    let rendered = match d.skip {
        Some(_) if !p.ended => p.delta.or(p.playlist),
        _ => p.playlist,
    }
    .ok_or(EdgeError::NotFound)?;
    let mut resp = playlist_response(&rendered, method, headers);
    if blocking && !p.ended {
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            header_value(format!(
                "public, max-age={}",
                blocking_playlist_max_age_s(p.target_duration_s)
            )),
        );
    }
    Ok(resp)
}

/// Appendix B.1: a successful blocking playlist answer may be cached for six target durations.
fn blocking_playlist_max_age_s(target_duration_s: u32) -> u64 {
    6 * u64::from(target_duration_s.max(1))
}

fn blocking_outcome(outcome: &'static str) {
    metrics::counter!("sluice_hls_blocking_requests_total", "outcome" => outcome).increment(1);
}

/// `part-{msn}.{index}.m4s`: a part that exists, one growing (streamed as its chunks arrive),
/// or the one the preload hint names (waited for until its first chunk, RFC 8216bis §6.2.6);
/// anything else is 404.
async fn part_request(
    state: &EdgeState,
    app: &str,
    stream: &str,
    msn: u64,
    index: u32,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, EdgeError> {
    let store = &state.store;
    let (signal, _) = store
        .signal(app, stream, Some(Container::Cmaf))
        .ok_or(EdgeError::NotFound)?;
    let mut rx = signal.subscribe();
    let now = rx.borrow_and_update().clone();
    let stall_limit = std::time::Duration::from_secs(3 * u64::from(now.target_duration_s.max(1)));
    if let Some(found) = store.find_part(app, stream, msn, index) {
        return part_response(state, found, stall_limit, method, headers);
    }
    let hinted = |p: &LlProgress| {
        p.ll && !p.gone && p.hint == Some((msn, index)) && p.growing != Some((msn, index))
    };
    if hinted(&now) {
        let Some(_waiting) = signal.enter(store.config().max_waiting_requests_per_stream) else {
            blocking_outcome("too_many");
            return Err(EdgeError::TooManyWaiting);
        };
        // The hint moves on when the part is complete (or the segment ended without it); its
        // first chunk wakes the wait too.
        let woken = tokio::time::timeout(stall_limit, rx.wait_for(|p| !hinted(p))).await;
        if woken.is_err() {
            blocking_outcome("timeout");
            return Err(EdgeError::BlockingTimeout);
        }
        blocking_outcome("part");
    }
    // Also covers a part that arrived between the first look and the subscription.
    let found = store
        .find_part(app, stream, msn, index)
        .ok_or(EdgeError::NotFound)?;
    part_response(state, found, stall_limit, method, headers)
}

/// A complete part as any segment; a growing one as `200` now with a body that streams its
/// chunks (no `Content-Length`, so chunked transfer) and the same immutable lifetime: once the
/// body ends normally it is the part (see [`crate::growing`] for how an early end is cut).
fn part_response(
    state: &EdgeState,
    found: FoundPart,
    stall_limit: std::time::Duration,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, EdgeError> {
    let g = match found {
        FoundPart::Complete(b) => return segment_response(state, &b, method, headers),
        FoundPart::Growing(g) => g,
    };
    let mut h = HeaderMap::with_capacity(8);
    h.insert(header::CACHE_CONTROL, state.segment_cache_control.clone());
    h.insert(header::CONTENT_TYPE, g.content_type.clone());
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        growing::body(g, stall_limit)
    };
    Ok(response(StatusCode::OK, h, body))
}

/// `n` in canonical decimal (no sign, no leading zeros): one name per object.
fn canonical_number(digits: &str) -> Option<u64> {
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// RFC 9110 §13.2.2: If-None-Match, else If-Modified-Since; true means 304.
fn not_modified(headers: &HeaderMap, etag: &str, last_modified: std::time::SystemTime) -> bool {
    if let Some(inm) = header_str(headers, &header::IF_NONE_MATCH) {
        return none_match_hits(inm, etag);
    }
    if headers.contains_key(header::IF_NONE_MATCH) {
        return false;
    }
    header_str(headers, &header::IF_MODIFIED_SINCE)
        .is_some_and(|ims| not_modified_since(ims, last_modified))
}

/// Live: about half a target duration (at least 1 s). Ended: longer, but capped because a
/// republish before removal makes the playlist live again.
pub fn playlist_max_age_s(target_duration_s: u32, ended: bool) -> u64 {
    let td = u64::from(target_duration_s);
    let live = (td / 2).max(1);
    if ended {
        (6 * td).min(ENDED_PLAYLIST_MAX_AGE_CAP_S).max(live)
    } else {
        live
    }
}

fn playlist_response(p: &RenderedPlaylist, method: &Method, headers: &HeaderMap) -> Response {
    let gzip = header_str(headers, &header::ACCEPT_ENCODING).is_some_and(accepts_gzip);
    let ph = &p.headers;
    let (body, etag, etag_value, length) = if gzip {
        (
            &p.gzip,
            &p.etag_gzip,
            &ph.etag_gzip,
            &ph.content_length_gzip,
        )
    } else {
        (&p.body, &p.etag, &ph.etag, &ph.content_length)
    };
    let mut h = HeaderMap::with_capacity(12);
    h.insert(header::CACHE_CONTROL, ph.cache_control.clone());
    h.insert(header::ETAG, etag_value.clone());
    h.insert(header::LAST_MODIFIED, ph.last_modified.clone());
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if not_modified(headers, etag, p.last_modified) {
        return response(StatusCode::NOT_MODIFIED, h, Body::empty());
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PLAYLIST_CONTENT_TYPE),
    );
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::CONTENT_LENGTH, length.clone());
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body.clone())
    };
    response(StatusCode::OK, h, body)
}

fn segment_response(
    state: &EdgeState,
    s: &StoredBody,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, EdgeError> {
    let mut h = HeaderMap::with_capacity(12);
    h.insert(header::CACHE_CONTROL, state.segment_cache_control.clone());
    h.insert(header::ETAG, s.etag_value.clone());
    h.insert(header::LAST_MODIFIED, s.last_modified_value.clone());
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if not_modified(headers, &s.etag, s.last_modified) {
        return Ok(response(StatusCode::NOT_MODIFIED, h, Body::empty()));
    }
    h.insert(header::CONTENT_TYPE, s.content_type.clone());
    let len = s.len_bytes;
    let range = match header_str(headers, &header::RANGE) {
        Some(r) => {
            let if_range_ok = header_str(headers, &header::IF_RANGE)
                .is_none_or(|ir| if_range_holds(ir, &s.etag, s.last_modified));
            if if_range_ok {
                parse_range(r, len)
            } else {
                RangeOutcome::Full
            }
        }
        // A Range header that is not valid text is ignored like any malformed one.
        None => RangeOutcome::Full,
    };
    let head = *method == Method::HEAD;
    match range {
        RangeOutcome::Full => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            let body = if head {
                Body::empty()
            } else {
                Body::new(ChunksBody::new(s.chunks.clone()))
            };
            Ok(response(StatusCode::OK, h, body))
        }
        RangeOutcome::Partial { first, last } => {
            h.insert(
                header::CONTENT_RANGE,
                header_value(format!("bytes {first}-{last}/{len}")),
            );
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(last - first + 1));
            let body = if head {
                Body::empty()
            } else {
                Body::new(ChunksBody::new(slice_chunks(&s.chunks, first, last)))
            };
            Ok(response(StatusCode::PARTIAL_CONTENT, h, body))
        }
        RangeOutcome::Unsatisfiable => Err(EdgeError::RangeNotSatisfiable { len_bytes: len }),
    }
}

fn preflight(state: &EdgeState) -> Response {
    let mut h = HeaderMap::new();
    h.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    if state.cors_origin.is_some() {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW),
        );
        // A fixed list: request headers are never reflected.
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(
                "Range, If-None-Match, If-Modified-Since, If-Range, Cache-Control, Pragma",
            ),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
    }
    response(StatusCode::NO_CONTENT, h, Body::empty())
}

fn error_response(state: &EdgeState, e: EdgeError) -> Response {
    let mut r = e.clone().into_response();
    let h = r.headers_mut();
    match e {
        EdgeError::NotFound => {
            h.insert(header::CACHE_CONTROL, state.not_found_cache_control.clone());
        }
        EdgeError::MethodNotAllowed => {
            h.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        EdgeError::RangeNotSatisfiable { len_bytes } => {
            h.insert(
                header::CONTENT_RANGE,
                header_value(format!("bytes */{len_bytes}")),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        _ => {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    r
}

/// Headers every response gets, and metrics.
fn finish(state: &EdgeState, route: Route, method: &Method, resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(origin) = &state.cors_origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Content-Length, Content-Range, ETag, Age"),
        );
    }
    let status = resp.status();
    request_counter(route, status).increment(1);
    if *method != Method::HEAD
        && (status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT)
    {
        let sent = http_body::Body::size_hint(resp.body()).exact().unwrap_or(0);
        bytes_served_counter().increment(sent);
    }
}

/// Statuses the HLS routes answer with; their counters are registered once (a `counter!` call
/// with labels hashes and allocates on every request).
const COMMON_STATUSES: [u16; 10] = [200, 206, 304, 400, 404, 405, 414, 416, 500, 503];

fn request_counter(route: Route, status: StatusCode) -> metrics::Counter {
    static HANDLES: std::sync::OnceLock<Vec<metrics::Counter>> = std::sync::OnceLock::new();
    let handles = HANDLES.get_or_init(|| {
        Route::ALL
            .iter()
            .flat_map(|r| {
                COMMON_STATUSES.iter().map(move |st| {
                    metrics::counter!("sluice_http_requests_total", "route" => r.label(), "status" => st.to_string())
                })
            })
            .collect()
    });
    let r = route as usize;
    match COMMON_STATUSES.iter().position(|s| *s == status.as_u16()) {
        Some(i) => handles[r * COMMON_STATUSES.len() + i].clone(),
        None => {
            metrics::counter!("sluice_http_requests_total", "route" => route.label(), "status" => status.as_str().to_owned())
        }
    }
}

fn bytes_served_counter() -> &'static metrics::Counter {
    static HANDLE: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();
    HANDLE.get_or_init(|| metrics::counter!("sluice_http_bytes_served_total"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_canonical() {
        use Container::*;
        for (name, want) in [
            ("index.m3u8", File::Playlist(None)),
            ("cmaf.m3u8", File::Playlist(Some(Cmaf))),
            ("iframes.m3u8", File::IFrames(None)),
            ("cmaf-iframes.m3u8", File::IFrames(Some(Cmaf))),
            ("seg-0.ts", File::Segment(Ts, 0)),
            ("seg-17.ts", File::Segment(Ts, 17)),
            ("seg-17.m4s", File::Segment(Cmaf, 17)),
            ("init-0.mp4", File::Init(0)),
            ("init-3.mp4", File::Init(3)),
            ("part-0.0.m4s", File::Part(0, 0)),
            ("part-17.12.m4s", File::Part(17, 12)),
        ] {
            assert_eq!(parse_file_name(name), Some(want), "{name}");
        }
        assert_eq!(
            parse_file_name(&format!("seg-{}.ts", u64::MAX)),
            Some(File::Segment(Ts, u64::MAX))
        );
        for bad in [
            "seg-.ts",
            "seg-01.ts",
            "seg--1.ts",
            "seg-+1.ts",
            "seg-1.TS",
            "seg-1",
            "seg-1ts",
            "seg-1m4s",
            "seg-18446744073709551616.ts",
            "seg-1.ts.ts",
            "seg-1.mp4",
            "init-1.m4s",
            "init-01.mp4",
            "init-.mp4",
            "ts.m3u8",
            "INDEX.m3u8",
            "part-1.m4s",
            "part-01.1.m4s",
            "part-1.01.m4s",
            "part-1.1.1.m4s",
            "part-1.4294967296.m4s",
            "part-1.1.ts",
            "part-.1.m4s",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }
}
