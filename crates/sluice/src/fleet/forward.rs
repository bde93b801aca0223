//! Forwarding an HLS request to the stream's owner: a reverse proxy for GET/HEAD on the hyper
//! client already in the tree (RFC 9110 §7.6.1: hop-by-hop fields and those named by
//! `Connection` are not forwarded; §7.6.3 `Via` is not added since the hop stays inside the
//! fleet, which marks it with [`FORWARDED_HEADER`] instead).

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{Fleet, Route};

/// Marks a request one node forwarded to another (value: the forwarding node's id); a node never
/// forwards such a request again, so a stale owner record cannot make a loop.
pub const FORWARDED_HEADER: &str = "x-sluice-forwarded";

/// How often a request held in failover looks for the next owner (lookups go through the
/// owner cache, so a node asks the registry at most once per `cluster.owner_cache_ms`).
const FAILOVER_POLL: Duration = Duration::from_millis(250);

pub(super) type Client = hyper_util::client::legacy::Client<HttpConnector, Empty<Bytes>>;

pub(super) fn client() -> Client {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(2)));
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build(http)
}

const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    header::HOST,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn keep(name: &HeaderName, connection: Option<&HeaderValue>) -> bool {
    if HOP_BY_HOP.contains(name) || name.as_str() == "keep-alive" {
        return false;
    }
    // Fields the peer listed in `Connection` are hop-by-hop too.
    !connection.and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(name.as_str()))
    })
}

/// `app` and `stream` of an HLS path `/{app}/{stream}/{file}`.
fn stream_of(path: &str) -> Option<(&str, &str)> {
    let mut it = path.strip_prefix('/')?.split('/');
    let (app, stream, _file) = (it.next()?, it.next()?, it.next()?);
    (it.next().is_none() && crate::config::valid_name(app) && crate::config::valid_name(stream))
        .then_some((app, stream))
}

fn unavailable(why: &str, cors_origin: Option<&HeaderValue>) -> Response<Body> {
    let mut r = Response::new(Body::from(format!("{why}\n")));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(origin) = cors_origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
    r
}

impl Fleet {
    /// `Some(response)` if `req` is for a stream another node owns (answered by that node),
    /// `None` if this node's edge answers it.
    pub async fn forward<B>(&self, req: &Request<B>) -> Option<Response<Body>> {
        if req.headers().contains_key(FORWARDED_HEADER)
            || !matches!(*req.method(), Method::GET | Method::HEAD)
        {
            return None;
        }
        let (app, stream) = stream_of(req.uri().path())?;
        // A multitrack publish's rendition `NAME~vK` lives with the publish `NAME` it comes from.
        let stream = match stream.rsplit_once("~v") {
            Some((name, k)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => stream,
        };
        let key = (app.to_string(), stream.to_string());
        let playlist = req.uri().path().ends_with(".m3u8");
        // Failover: a request whose owner is gone (unreachable, then no owner yet while the
        // registry answers) or, for a stream forwarded recently, a new owner with no playlist
        // yet, is held here until an owner answers, for at most `failover_hold`, then 503
        // (retryable); not a 404, which players take for the end of the stream.
        let deadline = tokio::time::Instant::now() + self.failover_hold();
        let mut dead_owner: Option<String> = None;
        loop {
            let recent = self.recent.contains_key(&key);
            match self.route(app, stream, dead_owner.is_some()).await {
                Route::Forward(base) if dead_owner.as_deref() != Some(base.as_str()) => {
                    match self.send(&base, req).await {
                        Ok(r)
                            if r.status() == StatusCode::NOT_FOUND
                                && playlist
                                && recent
                                && tokio::time::Instant::now() < deadline => {}
                        Ok(r) => {
                            if r.status().is_success() {
                                self.recent.insert(key, ());
                            }
                            return Some(r);
                        }
                        Err(e) => {
                            tracing::debug!(app, stream, owner = %base, error = %e, "forwarding failed; waiting for the owner or its successor");
                            dead_owner = Some(base);
                        }
                    }
                }
                Route::Forward(_) => {}
                // No owner: wait only if this request already found one dead (its successor
                // is on the way); otherwise this node's edge answers with what it has (an
                // unknown stream is a quick 404; a stream whose lease this node lost or whose
                // registry is unreachable keeps its local copy).
                Route::Local
                    if dead_owner.is_none()
                        || self.holds(app, stream)
                        || self.degraded().is_some() =>
                {
                    return None
                }
                Route::Local => {}
            }
            if tokio::time::Instant::now() >= deadline {
                let owner = dead_owner.as_deref().unwrap_or("none");
                let e = anyhow::anyhow!("no owner answered within {:?}", self.failover_hold());
                return Some(self.failed(app, stream, owner, &e));
            }
            tokio::time::sleep(FAILOVER_POLL).await;
        }
    }

    /// How long a request for a stream in failover waits for its next owner: the lease plus
    /// two 2 s segments, capped below hls.js's 10 s time-to-first-byte for playlists.
    fn failover_hold(&self) -> Duration {
        Duration::from_millis((self.cfg.lease_ms + 4_000).min(8_000))
    }

    fn failed(&self, app: &str, stream: &str, owner: &str, e: &anyhow::Error) -> Response<Body> {
        metrics::counter!("sluice_cluster_forward_errors_total").increment(1);
        tracing::warn!(app, stream, owner, error = %e, "cannot reach the stream's owner");
        unavailable(
            "the node that owns this stream cannot be reached; retry shortly",
            self.cors_origin.as_ref(),
        )
    }

    async fn send<B>(&self, base: &str, req: &Request<B>) -> anyhow::Result<Response<Body>> {
        let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let uri: Uri = format!("{base}{path_and_query}").parse()?;
        let connection = req.headers().get(header::CONNECTION);
        let mut out = Request::builder().method(req.method().clone()).uri(uri);
        for (name, value) in req.headers() {
            if keep(name, connection) {
                out = out.header(name, value);
            }
        }
        let out = out
            .header(FORWARDED_HEADER, self.node_id.as_str())
            .body(Empty::<Bytes>::new())?;
        let timeout = Duration::from_millis(self.cfg.forward_timeout_ms);
        let resp = tokio::time::timeout(timeout, self.client.request(out))
            .await
            .map_err(|_| anyhow::anyhow!("no response headers within {timeout:?}"))??;
        metrics::counter!("sluice_cluster_forwarded_total").increment(1);
        let (parts, body) = resp.into_parts();
        let connection = parts.headers.get(header::CONNECTION).cloned();
        let mut r = Response::new(Body::new(body));
        *r.status_mut() = parts.status;
        for (name, value) in &parts.headers {
            if keep(name, connection.as_ref()) {
                r.headers_mut().append(name, value.clone());
            }
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hls_paths_name_their_stream() {
        assert_eq!(stream_of("/live/cam/index.m3u8"), Some(("live", "cam")));
        assert_eq!(stream_of("/live/cam/seg-3.ts"), Some(("live", "cam")));
        assert_eq!(stream_of("/live/cam"), None);
        assert_eq!(stream_of("/live/cam/a/b"), None);
        assert_eq!(stream_of("/l%2Fx/cam/index.m3u8"), None);
    }

    #[test]
    fn hop_by_hop_fields_stay() {
        let conn = HeaderValue::from_static("keep-alive, x-trace");
        assert!(!keep(&header::CONNECTION, None));
        assert!(!keep(&header::HOST, None));
        assert!(!keep(&HeaderName::from_static("x-trace"), Some(&conn)));
        assert!(keep(&header::IF_NONE_MATCH, Some(&conn)));
        assert!(keep(&header::ACCEPT_ENCODING, None));
    }
}

#[cfg(test)]
mod unavailable_tests {
    use super::*;

    /// A browser must see the 503 (hls.js retries 5xx), not a CORS failure (status 0).
    #[test]
    fn a_forwarding_error_is_a_503_with_cors_and_no_cache() {
        let origin = HeaderValue::from_static("*");
        let r = unavailable("owner gone", Some(&origin));
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = unavailable("owner gone", None);
        assert!(!r
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    }
}
