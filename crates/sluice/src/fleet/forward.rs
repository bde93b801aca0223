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

use cluster::Lookup;

use super::Fleet;

/// Marks a request one node forwarded to another (value: the forwarding node's id); a node never
/// forwards such a request again, so a stale owner record cannot make a loop.
pub const FORWARDED_HEADER: &str = "x-sluice-forwarded";

/// How often a request held in failover looks for the next owner. Lookups of held requests are
/// shared per stream (the fleet's poll cache), so a node asks the registry about a stream at
/// most once per interval, however many requests wait for it.
pub(super) const FAILOVER_POLL: Duration = Duration::from_millis(250);

/// What to do with an HLS request, one step of the failover loop.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// This node's edge answers (it owns the stream; or nobody does and the stream is unknown,
    /// a quick 404; or the registry is unreachable and local copies keep serving).
    Local,
    /// Proxy to the owner at this HTTP base.
    Forward(String),
    /// Hold the request and look again: the stream was live recently and its next owner is
    /// expected (or the registry still names an owner this request found dead).
    Wait,
}

/// The decision, from what this node holds, what the registry answered (`None`: no answer) and
/// the owner this request already found unreachable.
fn decide(me: &str, holds: bool, lookup: Option<&Lookup>, dead_owner: Option<&str>) -> Step {
    if holds {
        return Step::Local;
    }
    match lookup {
        None => Step::Local,
        // Our own claim that this node does not hold (yet): a claim in flight.
        Some(Lookup::Owned(o)) if o.token.node_id == me => Step::Wait,
        Some(Lookup::Owned(o)) if o.url.is_empty() || dead_owner == Some(o.url.as_str()) => {
            Step::Wait
        }
        Some(Lookup::Owned(o)) => Step::Forward(o.url.clone()),
        Some(Lookup::Recent) => Step::Wait,
        // The owner this request reached a moment ago is gone and the registry forgot the
        // stream (its data was lost): its publisher is likely on its way back.
        Some(Lookup::Unknown) if dead_owner.is_some() => Step::Wait,
        Some(Lookup::Unknown) => Step::Local,
    }
}

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

/// A multitrack publish's rendition `NAME~vK` lives with the publish `NAME` it comes from.
fn publish_name(stream: &str) -> String {
    match stream.rsplit_once("~v") {
        Some((name, k)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => stream,
    }
    .to_string()
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
        let stream = publish_name(stream);
        let stream = stream.as_str();
        let key = (app.to_string(), stream.to_string());
        let playlist = req.uri().path().ends_with(".m3u8");
        let deadline = tokio::time::Instant::now() + self.failover_hold();
        let mut dead_owner: Option<String> = None;
        let mut polling = false;
        loop {
            let recent = self.recent.contains_key(&key);
            let lookup = self.lookup(&key, polling).await;
            let step = decide(
                &self.node_id,
                self.holds(app, stream),
                lookup.as_ref(),
                dead_owner.as_deref(),
            );
            match step {
                Step::Local => return None,
                Step::Forward(base) => match self.send(&base, req).await {
                    // A new owner with no playlist yet, for a stream forwarded recently (an
                    // owner holds such requests itself; this covers one without a claim yet).
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
                        self.forget_owner(&key);
                        dead_owner = Some(base);
                    }
                },
                Step::Wait => {}
            }
            if tokio::time::Instant::now() >= deadline {
                let owner = dead_owner.as_deref().unwrap_or("none");
                let e = anyhow::anyhow!("no owner answered within {:?}", self.failover_hold());
                return Some(self.failed(app, stream, owner, &e));
            }
            if !polling {
                metrics::counter!("sluice_cluster_requests_held_total").increment(1);
            }
            polling = true;
            tokio::time::sleep(FAILOVER_POLL).await;
        }
    }

    /// Answers a request for a stream this node owns from its edge; a playlist the edge does
    /// not have yet (a claim just granted, its first segment on the way) is held like a request
    /// in failover, then 503: never a 404 while the stream is owned here.
    pub async fn serve_owned<B>(&self, edge: &hls_edge::Edge, req: Request<B>) -> Response<Body> {
        let stream = stream_of(req.uri().path()).map(|(a, s)| (a.to_string(), publish_name(s)));
        let held = |s: &Option<(String, String)>| s.as_ref().is_some_and(|(a, n)| self.holds(a, n));
        if !req.uri().path().ends_with(".m3u8") || !held(&stream) {
            return edge.respond(req).await;
        }
        let (parts, _) = req.into_parts();
        let deadline = tokio::time::Instant::now() + self.failover_hold();
        let mut counted = false;
        loop {
            let r = edge.respond(Request::from_parts(parts.clone(), ())).await;
            if r.status() != StatusCode::NOT_FOUND || !held(&stream) {
                return r;
            }
            if tokio::time::Instant::now() >= deadline {
                let (app, name) = stream.as_ref().map_or(("", ""), |(a, n)| (a, n));
                let e = anyhow::anyhow!("no playlist within {:?}", self.failover_hold());
                return self.failed(app, name, &self.node_id, &e);
            }
            if !counted {
                metrics::counter!("sluice_cluster_requests_held_total").increment(1);
                counted = true;
            }
            tokio::time::sleep(FAILOVER_POLL).await;
        }
    }

    /// How long a request for a stream in failover waits for its next owner
    /// (`cluster.failover_hold_ms`; the default stays below hls.js's 10 s time-to-first-byte
    /// bound for playlists).
    fn failover_hold(&self) -> Duration {
        Duration::from_millis(self.cfg.failover_hold_ms)
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
mod decide_tests {
    use super::*;
    use cluster::{ClaimToken, Owner};

    /// What, holds here, registry answer, dead owner, expected step.
    type Case<'a> = (&'a str, bool, Option<Lookup>, Option<&'a str>, Step);

    fn owned(node: &str, url: &str) -> Lookup {
        Lookup::Owned(Owner {
            token: ClaimToken::new(node, 3),
            url: url.to_string(),
        })
    }

    /// The failover decision: a recently live stream without a reachable owner is held; an
    /// unknown one is a quick local answer (404); registry trouble serves local copies.
    #[test]
    fn requests_are_held_only_for_streams_expected_back() {
        let b = "http://b:8080";
        let cases: [Case; 11] = [
            (
                "owned here",
                true,
                Some(owned("a", "http://a")),
                None,
                Step::Local,
            ),
            ("owned here, registry down", true, None, None, Step::Local),
            ("registry down", false, None, None, Step::Local),
            (
                "unknown stream",
                false,
                Some(Lookup::Unknown),
                None,
                Step::Local,
            ),
            (
                "owned elsewhere",
                false,
                Some(owned("b", b)),
                None,
                Step::Forward(b.into()),
            ),
            (
                "owner found dead",
                false,
                Some(owned("b", b)),
                Some(b),
                Step::Wait,
            ),
            (
                "a successor",
                false,
                Some(owned("c", "http://c")),
                Some(b),
                Step::Forward("http://c".into()),
            ),
            (
                "no owner, recently live",
                false,
                Some(Lookup::Recent),
                None,
                Step::Wait,
            ),
            (
                "owner gone, data lost",
                false,
                Some(Lookup::Unknown),
                Some(b),
                Step::Wait,
            ),
            (
                "our claim in flight",
                false,
                Some(owned("a", "http://a")),
                None,
                Step::Wait,
            ),
            (
                "owner without a URL",
                false,
                Some(owned("b", "")),
                None,
                Step::Wait,
            ),
        ];
        for (what, holds, lookup, dead, want) in cases {
            assert_eq!(decide("a", holds, lookup.as_ref(), dead), want, "{what}");
        }
    }

    #[test]
    fn renditions_belong_to_their_publish() {
        assert_eq!(publish_name("cam~v2"), "cam");
        assert_eq!(publish_name("cam~v"), "cam~v");
        assert_eq!(publish_name("cam"), "cam");
        assert_eq!(publish_name("cam~vx"), "cam~vx");
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
