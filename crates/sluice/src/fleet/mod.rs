//! The origin fleet (issue 18): nodes that share a stream registry on Redis, so that a publisher
//! may land on any node and every node answers every HLS URL of every stream.
//!
//! * `claim`: a node that accepts a publish claims the stream (a lease with a fencing epoch, see
//!   the `cluster` crate), renews it, saves the playlist's numbers with it, and releases it when
//!   the publisher leaves. A lost lease (the registry said so, or no renewal succeeded before
//!   `grant/renewal + lease - margin` on this node's clock) stops the stream here at once: no
//!   further segment is listed and the publisher is disconnected (it may reconnect to any node,
//!   which continues the playlist).
//! * `forward`: an HLS request for a stream this node does not own is proxied to the owner
//!   (owner from the registry, cached for `cluster.owner_cache_ms`), keeping the query (LL-HLS
//!   `_HLS_*` blocking requests block at the owner), the request's relevant headers and the
//!   owner's status, headers and streaming body (RFC 9110 §7.6.1: hop-by-hop fields are not
//!   forwarded). A forwarded request carries `x-sluice-forwarded` and is never forwarded again.
//! * Failover: a request for a stream that has no reachable owner right now but was live
//!   recently (its owner died and the lease has not run out, or ran out and the publisher has
//!   not claimed it again yet: the registry's `live` tombstone) is held, like a blocking reload,
//!   until the next owner answers, for at most `cluster.failover_hold_ms`, then answered 503 with
//!   `Retry-After` (players retry a 5xx; a 404 is the end of the stream to them). The owner's
//!   playlist between its claim and its first segment is held the same way. An unknown stream
//!   is a quick 404. Waiting requests share one registry lookup per stream per poll interval.
//! * Registry outage: local streams keep serving; errors are logged, counted
//!   (`sluice_cluster_registry_errors_total{op}`) and reported on `/readyz` (200, body
//!   `degraded: ...`: every node of a fleet shares the registry, so a 503 would take the whole
//!   fleet out of the CDN for an outage that leaves local streams playable); new publishes are
//!   refused while the registry cannot be reached (no claim, no publish: never two owners).

mod claim;
mod forward;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cluster::{LeaseTiming, Lookup, Registry, RegistryConfig};
use serde::{Deserialize, Serialize};

pub use claim::FleetClaim;

/// `[cluster]` settings. Off unless `redis_url` is set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `redis://HOST:PORT` of the shared registry; empty: a single node, no fleet.
    pub redis_url: String,
    /// HTTP base other nodes use to reach this node; empty: `http://` + `http.listen`.
    pub advertise_url: String,
    /// This node's unique name in the registry; empty: the advertise URL.
    pub node_id: String,
    /// Expiry of a stream claim in the registry.
    pub lease_ms: u64,
    /// How often the owner renews its claims.
    pub renew_interval_ms: u64,
    /// A claim is believed lost this long before it would expire (clock rate differences).
    pub lease_margin_ms: u64,
    /// How long a node remembers which node owns a stream it does not own.
    pub owner_cache_ms: u64,
    /// Bound on every registry operation.
    pub registry_timeout_ms: u64,
    /// Bound on a forwarded request until the owner's response headers (a blocking playlist
    /// reload waits at the owner for up to three target durations).
    pub forward_timeout_ms: u64,
    /// How long a request for a recently live stream with no reachable owner (or an owner
    /// without a playlist yet) is held for the next owner before a 503; also how long a stream
    /// counts as recently live after its claim ran out or was released.
    pub failover_hold_ms: u64,
    /// Numbers skipped ahead when a stream is resumed after its owner vanished without a
    /// release (must exceed the segments a node can list within one lease).
    pub resume_skip_segments: u64,
    /// How long a stream's epoch counter and numbers outlive its last publish.
    pub retention_s: u64,
    /// Streams listed by `/api/fleet`, at most.
    pub api_max_streams: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis_url: String::new(),
            advertise_url: String::new(),
            node_id: String::new(),
            lease_ms: 10_000,
            renew_interval_ms: 2_500,
            lease_margin_ms: 1_000,
            owner_cache_ms: 1_000,
            registry_timeout_ms: 1_000,
            forward_timeout_ms: 15_000,
            failover_hold_ms: 8_000,
            resume_skip_segments: 16,
            retention_s: 86_400,
            api_max_streams: 10_000,
        }
    }
}

impl ClusterConfig {
    pub fn enabled(&self) -> bool {
        !self.redis_url.is_empty()
    }

    /// Range checks; each error names the setting.
    pub fn validate(&self, http_listen: std::net::SocketAddr) -> Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        if !self.redis_url.starts_with("redis://") && !self.redis_url.starts_with("rediss://") {
            bail!("invalid value for cluster.redis_url: expected redis://HOST:PORT");
        }
        if self.advertise_url.is_empty() && http_listen.ip().is_unspecified() {
            bail!("cluster.advertise_url must be set when http.listen is an unspecified address ({http_listen}): other nodes need a reachable address");
        }
        let advertised = self.advertise_url.strip_prefix("http://");
        if !self.advertise_url.is_empty() && advertised.is_none_or(str::is_empty) {
            bail!("invalid value for cluster.advertise_url: expected http://ADDR:PORT");
        }
        if self.timing().is_none() {
            bail!("invalid value for cluster.renew_interval_ms: renew_interval_ms + lease_margin_ms must be below lease_ms, and renew_interval_ms above 0");
        }
        if self.registry_timeout_ms == 0 || self.registry_timeout_ms >= self.lease_ms {
            bail!("invalid value for cluster.registry_timeout_ms: between 1 and lease_ms");
        }
        if self.forward_timeout_ms == 0 {
            bail!("invalid value for cluster.forward_timeout_ms: above 0");
        }
        if self.failover_hold_ms == 0 {
            bail!("invalid value for cluster.failover_hold_ms: above 0");
        }
        if self.retention_s == 0 {
            bail!("invalid value for cluster.retention_s: above 0");
        }
        Ok(())
    }

    fn timing(&self) -> Option<LeaseTiming> {
        LeaseTiming::new(
            Duration::from_millis(self.lease_ms),
            Duration::from_millis(self.renew_interval_ms),
            Duration::from_millis(self.lease_margin_ms),
        )
    }
}

type StreamKey = (String, String);
type LookupCell = Arc<tokio::sync::OnceCell<Option<Lookup>>>;

/// What this node knows about the registry's health.
#[derive(Default)]
struct Health {
    last_ok: Option<Instant>,
    last_error: Option<(Instant, String)>,
}

/// This node's membership of the fleet. Installed once at start ([`install`]), like the
/// metrics recorder, so the HTTP workers reach it without another argument on every layer.
pub struct Fleet {
    cfg: ClusterConfig,
    node_id: String,
    advertise_url: String,
    timing: LeaseTiming,
    registry: Arc<Registry>,
    /// Claims this node holds, by stream.
    held: Mutex<HashMap<StreamKey, Arc<claim::Held>>>,
    /// Registry lookups of streams this node does not hold, for `cluster.owner_cache_ms`: one
    /// lookup per stream at a time, shared by every request that asks meanwhile (`None` in the
    /// cell: the registry did not answer).
    owners: moka::sync::Cache<StreamKey, LookupCell>,
    /// The same for requests held in failover, for [`forward::FAILOVER_POLL`]: a stream with
    /// waiting requests costs the registry one lookup per poll interval, however many wait.
    polls: moka::sync::Cache<StreamKey, LookupCell>,
    client: forward::Client,
    health: Mutex<Health>,
    /// Streams this node forwarded successfully in the last half minute: a 404 from the owner
    /// for one of their playlists is a new owner without a segment yet (held), not the end.
    recent: moka::sync::Cache<StreamKey, ()>,
    /// `Access-Control-Allow-Origin` of the node's own answers (`http.cors_allow_origin`), so a
    /// browser sees a forwarding error as the 503 it is, not as a CORS failure.
    cors_origin: Option<axum::http::HeaderValue>,
}

static FLEET: OnceLock<Arc<Fleet>> = OnceLock::new();

/// The fleet this process belongs to, if any.
pub fn installed() -> Option<&'static Arc<Fleet>> {
    FLEET.get()
}

/// Joins the fleet (`cluster.redis_url` set): builds the registry client (connecting lazily, so
/// a node starts while Redis is down) and starts the registry health probe.
pub fn install(cfg: &crate::config::Config) -> Result<Option<Arc<Fleet>>> {
    let c = &cfg.cluster;
    if !c.enabled() {
        return Ok(None);
    }
    let advertise_url = if c.advertise_url.is_empty() {
        format!("http://{}", cfg.http.listen)
    } else {
        c.advertise_url.trim_end_matches('/').to_string()
    };
    let node_id = if c.node_id.is_empty() {
        advertise_url.clone()
    } else {
        c.node_id.clone()
    };
    let registry = Registry::new(RegistryConfig {
        url: c.redis_url.clone(),
        op_timeout: Duration::from_millis(c.registry_timeout_ms),
        retention: Duration::from_secs(c.retention_s),
        recent: Duration::from_millis(c.failover_hold_ms),
    })
    .context("cluster.redis_url")?;
    let fleet = Arc::new(Fleet {
        timing: c.timing().context("cluster lease timing")?,
        cfg: c.clone(),
        node_id,
        advertise_url,
        registry: Arc::new(registry),
        held: Mutex::new(HashMap::new()),
        owners: moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_millis(c.owner_cache_ms.max(1)))
            .build(),
        polls: moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(forward::FAILOVER_POLL)
            .build(),
        client: forward::client(),
        health: Mutex::new(Health::default()),
        recent: moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_millis(c.lease_ms + 30_000))
            .build(),
        cors_origin: (!cfg.http.cors_allow_origin.is_empty())
            .then(|| axum::http::HeaderValue::from_str(&cfg.http.cors_allow_origin).ok())
            .flatten(),
    });
    let _ = FLEET.set(fleet.clone());
    tokio::spawn(probe(Arc::downgrade(&fleet)));
    tracing::info!(node_id = %fleet.node_id, advertise_url = %fleet.advertise_url, "joined the fleet registry");
    Ok(Some(fleet))
}

/// Pings the registry every renew interval so `/readyz` knows its state with no stream live.
async fn probe(fleet: std::sync::Weak<Fleet>) {
    loop {
        let Some(f) = fleet.upgrade() else { return };
        let every = Duration::from_millis(f.cfg.renew_interval_ms);
        match f.registry.owner("sluice-probe", "probe").await {
            Ok(_) => f.note_ok(),
            Err(e) => f.note_error(&e),
        }
        drop(f);
        tokio::time::sleep(every).await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Fleet {
    fn note_ok(&self) {
        let mut h = lock(&self.health);
        h.last_ok = Some(Instant::now());
    }

    fn note_error(&self, e: &cluster::ClusterError) {
        metrics::counter!("sluice_cluster_registry_errors_total", "op" => e.op()).increment(1);
        let mut h = lock(&self.health);
        let first = h
            .last_error
            .as_ref()
            .is_none_or(|(at, _)| h.last_ok.is_some_and(|ok| ok > *at));
        if first {
            tracing::warn!(error = %e, "fleet registry unreachable: local streams keep serving, new publishes are refused");
        } else {
            tracing::debug!(error = %e, "fleet registry error");
        }
        h.last_error = Some((Instant::now(), e.to_string()));
    }

    /// `Some(reason)` while the last registry operation failed.
    pub fn degraded(&self) -> Option<String> {
        let h = lock(&self.health);
        match (&h.last_error, h.last_ok) {
            (Some((at, why)), ok) if ok.is_none_or(|ok| ok < *at) => {
                Some(format!("registry unreachable: {why}"))
            }
            _ => None,
        }
    }

    /// True while this node holds a live claim on `app/stream`.
    pub fn holds(&self, app: &str, stream: &str) -> bool {
        lock(&self.held)
            .get(&(app.to_string(), stream.to_string()))
            .is_some_and(|h| h.is_held())
    }

    /// What the registry says about `app/stream`: from the owner cache, or (`polling`, for a
    /// held request) from the poll cache; `None` if the registry did not answer.
    async fn lookup(&self, key: &StreamKey, polling: bool) -> Option<Lookup> {
        let cache = if polling { &self.polls } else { &self.owners };
        let cell = cache.get_with(key.clone(), || Arc::new(tokio::sync::OnceCell::new()));
        cell.get_or_init(|| async {
            match self.registry.lookup(&key.0, &key.1).await {
                Ok(l) => {
                    self.note_ok();
                    if polling {
                        // Fresher than the owner cache's: every request uses it from now on.
                        let fresh = tokio::sync::OnceCell::new_with(Some(Some(l.clone())));
                        self.owners.insert(key.clone(), Arc::new(fresh));
                    }
                    Some(l)
                }
                Err(e) => {
                    self.note_error(&e);
                    None
                }
            }
        })
        .await
        .clone()
    }

    /// Forgets the cached owner of `key` (a forward to it failed).
    fn forget_owner(&self, key: &StreamKey) {
        self.owners.invalidate(key);
    }
}

/// `/api/fleet`: every claimed stream in the fleet with its owner. (Not `/api/fleet/streams`:
/// a three-segment path is an HLS path, `/{app}/{stream}/{file}`.)
pub fn routes() -> Router {
    Router::new().route("/api/fleet", get(fleet_streams))
}

#[derive(Serialize)]
struct FleetStream {
    app: String,
    stream: String,
    owner_node_id: String,
    owner_url: String,
    epoch: u64,
    local: bool,
}

async fn fleet_streams(State(()): State<()>) -> Response {
    let Some(f) = installed() else {
        return (
            StatusCode::NOT_FOUND,
            "not part of a fleet (cluster.redis_url)\n",
        )
            .into_response();
    };
    let mut r = match f.registry.streams(f.cfg.api_max_streams).await {
        Ok(list) => {
            f.note_ok();
            let streams: Vec<FleetStream> = list
                .into_iter()
                .map(|(app, stream, o)| FleetStream {
                    local: o.token.node_id == f.node_id,
                    app,
                    stream,
                    owner_node_id: o.token.node_id,
                    owner_url: o.url,
                    epoch: o.token.epoch,
                })
                .collect();
            Json(serde_json::json!({
                "node_id": f.node_id,
                "advertise_url": f.advertise_url,
                "streams": streams,
            }))
            .into_response()
        }
        Err(e) => {
            f.note_error(&e);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("fleet registry unreachable: {e}\n"),
            )
                .into_response()
        }
    };
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
