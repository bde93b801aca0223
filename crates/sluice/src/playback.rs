//! RTMP playback fan-out: one [`Hub`] per live stream holds its join cache and the feeds of its
//! players. The publisher's connection task pushes every tag into the hub (the tag `Bytes` are
//! shared by every player, never copied); each player's connection actor drains its own
//! time-bounded queue ([`rtmp_ingest::play::PlayQueue`]), so a slow player never slows the
//! publisher, the HLS pipeline or another player.
//!
//! ```text
//!  PublishSink::on_tag ─► Hub::push ─► JoinCache (metadata, sequence headers, GOP)
//!                                  └─► PlayerFeed::push ×N (queue or drop; overflow ⇒ player closed)
//!  play ─► Playback::authorize_play (keys, on_play webhook, caps) ─► join sequence + live tags
//!  publisher leaves ─► Play.UnpublishNotify; back within play.unpublish_grace_ms ⇒ PublishNotify,
//!                      otherwise Play.Stop and close
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rtmp_ingest::fanout::{player_channel, Notice, PlayerFeed};
use rtmp_ingest::play::{JoinCache, PlayQueueLimits, PushOutcome};
use rtmp_ingest::{IngestTag, PlayAccepted, PlayRefusal, PlayRequest};
use serde::{Deserialize, Serialize};

use crate::auth::Authorizer;
use crate::config::{valid_name, AuthConfig};

/// `[play]`: RTMP playback on the RTMP port (`rtmp://HOST:1935/APP/STREAM`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PlayConfig {
    pub enabled: bool,
    pub gop_cache: bool,
    pub gop_cache_max_bytes: usize,
    pub wait_for_publisher: bool,
    pub wait_timeout_ms: u64,
    pub unpublish_grace_ms: u64,
    pub drop_disposable_ms: u32,
    pub drop_video_ms: u32,
    pub hard_cap_ms: u32,
    pub max_queue_bytes: usize,
    pub max_players: usize,
    pub max_players_per_ip: usize,
    pub keys: Vec<String>,
    pub on_play_url: String,
}

impl Default for PlayConfig {
    fn default() -> Self {
        let q = PlayQueueLimits::default();
        Self {
            enabled: true,
            gop_cache: true,
            gop_cache_max_bytes: 8 * 1024 * 1024,
            wait_for_publisher: false,
            wait_timeout_ms: 30_000,
            unpublish_grace_ms: 5_000,
            drop_disposable_ms: q.drop_disposable_ms,
            drop_video_ms: q.drop_video_ms,
            hard_cap_ms: q.hard_cap_ms,
            max_queue_bytes: q.max_bytes,
            max_players: 2_000,
            max_players_per_ip: 64,
            keys: Vec::new(),
            on_play_url: String::new(),
        }
    }
}

type Key = (String, String);

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// All hubs, player caps and play authorization.
pub struct Playback {
    cfg: PlayConfig,
    auth: Option<Authorizer>,
    hubs: Mutex<HashMap<Key, Arc<Hub>>>,
    counts: Mutex<Counts>,
}

/// One stream's fan-out.
pub struct Hub {
    key: Key,
    state: Mutex<HubState>,
    players_gauge: metrics::Gauge,
}

struct HubState {
    live: bool,
    /// Bumped by every publish start and end; a grace or wait timer acts only if unchanged.
    generation: u64,
    cache: JoinCache,
    players: Vec<PlayerFeed>,
    /// Players registered (guards alive), the API and metrics count.
    count: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Playback {
    pub fn new(cfg: PlayConfig, auth: &AuthConfig) -> anyhow::Result<Self> {
        let needs_auth = !cfg.keys.is_empty() || !cfg.on_play_url.is_empty();
        let auth = needs_auth
            .then(|| Authorizer::for_play(&cfg.keys, &cfg.on_play_url, auth))
            .transpose()?;
        Ok(Self {
            cfg,
            auth,
            hubs: Mutex::new(HashMap::new()),
            counts: Mutex::new(Counts::default()),
        })
    }

    fn hub(&self, app: &str, stream: &str, create: bool) -> Option<Arc<Hub>> {
        let key = (app.to_string(), stream.to_string());
        let mut hubs = lock(&self.hubs);
        if let Some(h) = hubs.get(&key) {
            return Some(h.clone());
        }
        if !create {
            return None;
        }
        let gop = if self.cfg.gop_cache {
            self.cfg.gop_cache_max_bytes
        } else {
            0
        };
        let hub = Arc::new(Hub {
            players_gauge: metrics::gauge!("sluice_stream_players", "app" => app.to_string(), "stream" => stream.to_string()),
            key: key.clone(),
            state: Mutex::new(HubState {
                live: false,
                generation: 0,
                cache: JoinCache::new(gop),
                players: Vec::new(),
                count: 0,
            }),
        });
        hubs.insert(key, hub.clone());
        Some(hub)
    }

    /// Removes `hub` from the map if nobody uses it any more.
    fn maybe_forget(&self, hub: &Arc<Hub>) {
        let mut hubs = lock(&self.hubs);
        let st = lock(&hub.state);
        if !st.live && st.count == 0 && hubs.get(&hub.key).is_some_and(|h| Arc::ptr_eq(h, hub)) {
            hubs.remove(&hub.key);
        }
    }

    /// A publish of app/stream was accepted: its tags go to [`Hub::push`].
    pub fn publish_started(&self, app: &str, stream: &str) -> Arc<Hub> {
        let hub = self.hub(app, stream, true).expect("created when missing");
        let mut st = lock(&hub.state);
        st.cache.reset();
        st.live = true;
        st.generation += 1;
        st.players.retain(|p| !p.is_closed());
        for p in &st.players {
            p.notice(Notice::PublisherReturned);
        }
        drop(st);
        hub
    }

    /// The publisher left: players get `Play.UnpublishNotify` now and `Play.Stop` after the
    /// grace period unless a publisher returns first.
    pub fn publish_ended(self: &Arc<Self>, hub: &Arc<Hub>) {
        let generation = {
            let mut st = lock(&hub.state);
            st.live = false;
            st.generation += 1;
            st.players.retain(|p| !p.is_closed());
            for p in &st.players {
                p.notice(Notice::PublisherLeft);
            }
            st.generation
        };
        self.end_after(hub, generation, self.cfg.unpublish_grace_ms, "stream ended");
    }

    /// After `delay_ms`, ends every player of `hub` if nothing happened to it meanwhile.
    fn end_after(self: &Arc<Self>, hub: &Arc<Hub>, generation: u64, delay_ms: u64, why: &str) {
        let (this, hub, why) = (self.clone(), hub.clone(), why.to_string());
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            {
                let mut st = lock(&hub.state);
                if st.live || st.generation != generation {
                    return;
                }
                for p in st.players.drain(..) {
                    p.notice(Notice::Ended(why.clone()));
                }
            }
            this.maybe_forget(&hub);
        });
    }

    /// Players of app/stream (for the API).
    pub fn players(&self, app: &str, stream: &str) -> usize {
        self.hub(app, stream, false)
            .map_or(0, |h| lock(&h.state).count)
    }

    fn refuse(reason: &'static str, req: &PlayRequest, refusal: PlayRefusal) -> PlayRefusal {
        metrics::counter!("sluice_play_refused_total", "reason" => reason).increment(1);
        tracing::info!(app = %req.app, stream = %req.stream, peer = %req.peer, reason, "play refused");
        refusal
    }

    /// Decides on a play and subscribes the player.
    pub async fn authorize_play(
        self: &Arc<Self>,
        req: PlayRequest,
    ) -> Result<PlayAccepted<PlayGuard>, PlayRefusal> {
        if !self.cfg.enabled {
            return Err(Self::refuse(
                "disabled",
                &req,
                PlayRefusal::Failed("playback is disabled".into()),
            ));
        }
        if !valid_name(&req.app) || !valid_name(&req.stream) {
            return Err(Self::refuse(
                "bad_name",
                &req,
                PlayRefusal::NotFound("no such stream".into()),
            ));
        }
        if let Some(auth) = &self.auth {
            if let Err(r) = auth
                .authorize(&req.app, &req.stream, &req.params, req.peer)
                .await
            {
                return Err(Self::refuse(
                    r.label(),
                    &req,
                    PlayRefusal::Unauthorized("play not authorized".into()),
                ));
            }
        }
        let ip = req.peer.ip();
        {
            let mut c = lock(&self.counts);
            if c.total >= self.cfg.max_players {
                drop(c);
                return Err(Self::refuse(
                    "max_players",
                    &req,
                    PlayRefusal::Failed("too many players".into()),
                ));
            }
            let n = c.per_ip.entry(ip).or_insert(0);
            if *n >= self.cfg.max_players_per_ip {
                drop(c);
                return Err(Self::refuse(
                    "max_players_per_ip",
                    &req,
                    PlayRefusal::Failed("too many players from this address".into()),
                ));
            }
            *n += 1;
            c.total += 1;
            metrics::gauge!("sluice_players_active").set(c.total as f64);
        }
        // From here on the guard gives the slot back, however this ends.
        let mut guard = PlayGuard {
            playback: self.clone(),
            hub: None,
            ip,
        };
        let hub = self.hub(&req.app, &req.stream, self.cfg.wait_for_publisher);
        let live = hub.as_ref().is_some_and(|h| lock(&h.state).live);
        let Some(hub) = hub.filter(|_| live || self.cfg.wait_for_publisher) else {
            return Err(Self::refuse(
                "not_found",
                &req,
                PlayRefusal::NotFound(format!("{}/{} is not live", req.app, req.stream)),
            ));
        };
        let limits = PlayQueueLimits {
            drop_disposable_ms: self.cfg.drop_disposable_ms,
            drop_video_ms: self.cfg.drop_video_ms,
            hard_cap_ms: self.cfg.hard_cap_ms,
            max_bytes: self.cfg.max_queue_bytes,
        };
        let (feed, inbox) = player_channel(limits);
        let waiting_generation = {
            let mut st = lock(&hub.state);
            for tag in st.cache.join_sequence() {
                feed.push(&tag);
            }
            st.players.push(feed);
            st.count += 1;
            hub.players_gauge.set(st.count as f64);
            (!st.live).then_some(st.generation)
        };
        guard.hub = Some(hub.clone());
        if let Some(generation) = waiting_generation {
            self.end_after(
                &hub,
                generation,
                self.cfg.wait_timeout_ms,
                "no publisher within play.wait_timeout_ms",
            );
        }
        metrics::counter!("sluice_plays_total").increment(1);
        Ok(PlayAccepted { inbox, guard })
    }
}

impl Hub {
    /// One tag of the publish, for the join cache and every player (never blocks).
    pub fn push(&self, tag: &IngestTag) {
        let mut st = lock(&self.state);
        st.cache.push(tag);
        st.players.retain(|p| p.push(tag) != PushOutcome::Overflow);
    }
}

/// Held by a player's connection; gives back its slot and its place in the hub when dropped.
pub struct PlayGuard {
    playback: Arc<Playback>,
    hub: Option<Arc<Hub>>,
    ip: IpAddr,
}

impl Drop for PlayGuard {
    fn drop(&mut self) {
        {
            let mut c = lock(&self.playback.counts);
            c.total = c.total.saturating_sub(1);
            if let Some(n) = c.per_ip.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.per_ip.remove(&self.ip);
                }
            }
            metrics::gauge!("sluice_players_active").set(c.total as f64);
        }
        if let Some(hub) = self.hub.take() {
            {
                let mut st = lock(&hub.state);
                st.count = st.count.saturating_sub(1);
                st.players.retain(|p| !p.is_closed());
                hub.players_gauge.set(st.count as f64);
            }
            self.playback.maybe_forget(&hub);
        }
    }
}
