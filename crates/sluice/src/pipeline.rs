//! The wiring: an accepted RTMP publish becomes a [`PublishSink`] that runs the remuxer inline on
//! the connection task and hands finished segments to the HLS store. `rtmp-ingest` and `remux` do
//! not know each other; this module converts between their types.
//!
//! ```text
//! socket -> rtmp_ingest::server (per connection task) -> Session events
//!        -> PublishSink::on_tag -> remux::Remuxer::push -> poll_output
//!        -> hls_edge::StreamHandle::push_segment -> Store (moka, bytes-bounded) -> axum edge
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtmp_ingest::{
    IngestHandler, IngestTag, MediaSink, PlayAccepted, PlayRefusal, PlayRequest, PublishRefusal,
    PublishRequest, PublishSummary,
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::auth::Authorizer;
use crate::config::{ms, valid_name, Config};
use crate::playback::{Hub, PlayGuard, Playback};
use crate::renditions::{edge_container, edge_info, Multitrack};

#[path = "pipeline_parts.rs"]
mod parts;
#[path = "stream_metrics.rs"]
mod stream_metrics;
use stream_metrics::{StreamMetrics, METRIC_FLUSH_TAGS};

pub fn ingest_config(cfg: &Config) -> rtmp_ingest::IngestConfig {
    let r = &cfg.rtmp;
    rtmp_ingest::IngestConfig {
        max_message_bytes: r.max_message_bytes,
        max_chunk_size: r.max_chunk_size,
        max_chunk_streams: r.max_chunk_streams,
        max_partial_bytes: r.max_partial_bytes,
        max_streams_per_connection: r.max_streams_per_connection,
        out_chunk_size: r.out_chunk_size,
        ack_window_bytes: r.ack_window_bytes,
        handshake_to_publish_timeout: ms(r.handshake_timeout_ms),
        idle_timeout: ms(r.idle_timeout_ms),
        max_connections: r.max_connections,
        max_connections_per_ip: r.max_connections_per_ip,
        allowed_apps: (!r.allowed_apps.is_empty()).then(|| r.allowed_apps.clone()),
        read_coalesce: ms(r.read_coalesce_ms),
        read_batch_bytes: r.read_batch_bytes,
        ..rtmp_ingest::IngestConfig::default()
    }
}

pub fn edge_config(cfg: &Config) -> hls_edge::EdgeConfig {
    let h = &cfg.hls;
    hls_edge::EdgeConfig {
        window_segments: h.window_segments,
        grace_period: ms(h.grace_period_ms),
        ended_retention: ms(h.ended_retention_ms),
        max_bytes_total: h.max_bytes_total,
        max_bytes_per_stream: h.max_bytes_per_stream,
        cors_allow_origin: (!cfg.http.cors_allow_origin.is_empty())
            .then(|| cfg.http.cors_allow_origin.clone()),
        segment_cache_max_age_s: h.segment_max_age_s,
        not_found_max_age_s: h.not_found_max_age_s,
        max_streams: h.max_streams,
        low_latency: h.low_latency,
        max_waiting_requests_per_stream: h.max_waiting_requests_per_stream,
        variant_suffixes: h.variant_suffixes.clone(),
    }
}

pub(crate) fn remux_config(
    cfg: &Config,
    fixed_target_duration_s: Option<u32>,
) -> remux::RemuxConfig {
    let h = &cfg.hls;
    remux::RemuxConfig {
        target_duration_ms: h.target_duration_ms,
        part_target_ms: h.part_target_ms,
        containers: remux::Containers {
            ts: h.containers.iter().any(|c| c == "ts"),
            cmaf: h.containers.iter().any(|c| c == "cmaf"),
        },
        max_timestamp_jump_ms: h.max_timestamp_jump_ms,
        fixed_target_duration_s,
        ..remux::RemuxConfig::default()
    }
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What the API reports about a live publisher (no stream keys: parameters are not kept here).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveStats {
    pub app: String,
    pub stream: String,
    pub client_addr: String,
    pub publish_started_unix_ms: u64,
    pub bytes_received: u64,
    pub video_frames: u64,
    pub audio_frames: u64,
    pub keyframes: u64,
    pub segments: u64,
    pub discontinuities: u64,
    pub timestamp_jumps: u64,
    pub dropped_frames: u64,
    pub bitrate_bps: u64,
    pub gop_ms: Option<u32>,
    pub gop_exceeds_target: bool,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub codec: Option<serde_json::Value>,
    /// RTMP players of this stream right now (filled in by [`App::live_stats`]).
    pub rtmp_players: usize,
    /// Newest video and audio frame timestamps (their difference is the console's A/V skew).
    pub video_timestamp_ms: Option<u32>,
    pub audio_timestamp_ms: Option<u32>,
    pub last_segment_duration_ms: Option<u64>,
}

pub struct LiveEntry {
    /// Which publish registered this entry: unique for the life of the process, so a sink only
    /// ever removes its own entry, never that of a later publisher of the same name.
    pub registration: u64,
    pub kick: CancellationToken,
    pub stats: Arc<Mutex<LiveStats>>,
}

pub type LiveMap = Arc<Mutex<HashMap<(String, String), LiveEntry>>>;

/// Removes `key` from the registry if, and only if, it is still the entry `registration` made.
fn release_registration(live: &LiveMap, key: &(String, String), registration: u64) {
    let mut live = live.lock().unwrap_or_else(|e| e.into_inner());
    if live
        .get(key)
        .is_some_and(|e| e.registration == registration)
    {
        live.remove(key);
    }
}

pub struct App {
    pub cfg: Arc<Config>,
    pub store: hls_edge::Store,
    pub auth: Arc<Authorizer>,
    pub live: LiveMap,
    next_registration: AtomicU64,
    /// RTMP playback fan-out (one hub per live stream).
    pub playback: Arc<Playback>,
    draining: AtomicBool,
    /// Membership of an origin fleet (`cluster.redis_url`), if any.
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
    pub archive: std::sync::OnceLock<Arc<crate::recording::Archive>>,
}

impl App {
    pub fn new(cfg: Arc<Config>, store: hls_edge::Store, auth: Authorizer) -> Self {
        let playback = Playback::new(cfg.play.clone(), &cfg.auth)
            .expect("the play authorizer's HTTP client builds like the publish one");
        Self {
            playback: Arc::new(playback),
            cfg,
            store,
            auth: Arc::new(auth),
            live: Arc::new(Mutex::new(HashMap::new())),
            next_registration: AtomicU64::new(1),
            draining: AtomicBool::new(false),
            fleet: None,
            archive: std::sync::OnceLock::new(),
        }
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn live_stats(&self) -> Vec<LiveStats> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.values()
            .map(|e| {
                let mut st = e.stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
                st.rtmp_players = self.playback.players(&st.app, &st.stream);
                st
            })
            .collect()
    }

    /// Kicks the publisher of app/stream; true if there was one.
    pub fn kick(&self, app: &str, stream: &str) -> bool {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        match live.get(&(app.to_string(), stream.to_string())) {
            Some(e) => {
                e.kick.cancel();
                true
            }
            None => false,
        }
    }

    fn refuse(&self, reason: &'static str, app: &str, stream: &str, peer: SocketAddr) {
        metrics::counter!("sluice_publish_refused_total", "reason" => reason).increment(1);
        tracing::info!(app, stream, %peer, reason, "publish refused");
    }
}

impl IngestHandler for App {
    type Sink = PublishSink;
    type PlayGuard = PlayGuard;

    async fn authorize_play(
        &self,
        req: PlayRequest,
    ) -> Result<PlayAccepted<PlayGuard>, PlayRefusal> {
        self.playback.authorize_play(req).await
    }

    async fn authorize(&self, req: PublishRequest) -> Result<PublishSink, PublishRefusal> {
        let (app, stream, peer) = (req.app.as_str(), req.stream.as_str(), req.peer);
        if self.is_draining() {
            self.refuse("shutting_down", app, stream, peer);
            return Err(PublishRefusal::BadName("server is shutting down".into()));
        }
        // `NAME~vK` / `NAME~aK` names are the renditions of multitrack publishes (hls_edge::group).
        if !valid_name(app) || !valid_name(stream) || hls_edge::group::is_track_stream_name(stream)
        {
            self.refuse("bad_name", app, stream, peer);
            return Err(PublishRefusal::BadName(
                "app and stream names use [A-Za-z0-9._~-], 1 to 128 characters, and do not end in ~v<number> or ~a<number>".into(),
            ));
        }
        if crate::recording_http::RESERVED_APPS.contains(&app) {
            self.refuse("bad_name", app, stream, peer);
            return Err(PublishRefusal::BadName(format!(
                "the app name {app:?} is reserved for the HTTP API and recordings"
            )));
        }
        if let Err(r) = self.auth.authorize(app, stream, &req.params, peer).await {
            self.refuse(r.label(), app, stream, peer);
            return Err(PublishRefusal::Unauthorized(
                "publish not authorized".into(),
            ));
        }
        let key = (app.to_string(), stream.to_string());
        let stats = Arc::new(Mutex::new(LiveStats {
            app: app.to_string(),
            stream: stream.to_string(),
            client_addr: peer.to_string(),
            publish_started_unix_ms: unix_ms(),
            ..LiveStats::default()
        }));
        let registration = self.next_registration.fetch_add(1, Ordering::Relaxed);
        {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            if live.contains_key(&key) {
                drop(live);
                self.refuse("already_publishing", app, stream, peer);
                return Err(PublishRefusal::BadName(
                    "stream is already being published".into(),
                ));
            }
            if live.len() >= self.cfg.rtmp.max_publishers {
                drop(live);
                self.refuse("max_publishers", app, stream, peer);
                return Err(PublishRefusal::BadName("too many publishers".into()));
            }
            live.insert(
                key.clone(),
                LiveEntry {
                    registration,
                    kick: req.kick.clone(),
                    stats: stats.clone(),
                },
            );
        }
        // The producer owns the segment timing and declares it; the edge keeps the first
        // declaration of a playlist life.
        let target_duration_s = self.cfg.hls.target_duration_ms.div_ceil(1000).max(1);
        let params = hls_edge::PublishParams {
            target_duration_s,
            part_target_ms: self.cfg.hls.part_target_ms,
        };
        // In a fleet the stream is claimed (and its numbers read) before anything is published.
        let fleet = match &self.fleet {
            Some(f) => match f.claim(app, stream, req.kick.clone()).await {
                Ok(c) => Some(c),
                Err(r) => {
                    release_registration(&self.live, &key, registration);
                    self.refuse(r.label(), app, stream, peer);
                    return Err(PublishRefusal::BadName(
                        "stream is published elsewhere".into(),
                    ));
                }
            },
            None => None,
        };
        let resume = fleet.as_ref().and_then(|c| c.resume.clone());
        let handle = match self
            .store
            .begin_publish_resuming(app, stream, params, resume)
        {
            Ok(h) => h,
            Err(e) => {
                release_registration(&self.live, &key, registration);
                self.refuse("store_full", app, stream, peer);
                tracing::warn!(app, stream, error = %e, "HLS store refused a new stream");
                return Err(PublishRefusal::BadName("no room for another stream".into()));
            }
        };
        let remuxer = remux::Remuxer::new(remux_config(&self.cfg, Some(target_duration_s)));
        let multitrack = Multitrack::new(
            &self.store,
            app,
            stream,
            params,
            remux_config(&self.cfg, Some(target_duration_s)),
            self.cfg.hls.max_renditions_per_group,
        );
        metrics::counter!("sluice_publish_total").increment(1);
        metrics::gauge!("sluice_streams_live").increment(1.0);
        tracing::info!(app, stream, %peer, connection = req.connection_id, "publish started");
        let hub = self.playback.publish_started(app, stream);
        Ok(PublishSink {
            playback: self.playback.clone(),
            hub,
            live: self.live.clone(),
            registration,
            auth: self.auth.clone(),
            key,
            peer,
            params: req.params,
            started: Instant::now(),
            remuxer,
            multitrack,
            handle: Some(handle),
            stats,
            labels: [("app", app.to_string()), ("stream", stream.to_string())],
            warned_gop: false,
            last_segment_bytes_in: 0,
            last_codec: hls_edge::PerContainer::default(),
            dropped_reported: 0,
            kick: req.kick.clone(),
            broken: false,
            pending_parts: hls_edge::PerContainer::default(),
            cmaf_part_bytes: 0,
            cmaf_chunk_part: None,
            cmaf_chunks_pushed: false,
            cmaf_init: None,
            last_ts_active: true,
            metrics: StreamMetrics::new(app, stream),
            video_codec: None,
            audio_codec: None,
            fleet,
            archive: self.archive.get().map(|a| a.begin(app, stream)),
        })
    }
}

pub struct PublishSink {
    playback: Arc<Playback>,
    /// RTMP players of this stream (fed before the remuxer, sharing the tag bytes).
    hub: Arc<Hub>,
    live: LiveMap,
    registration: u64,
    auth: Arc<Authorizer>,
    key: (String, String),
    peer: SocketAddr,
    params: Vec<(String, String)>,
    started: Instant,
    remuxer: remux::Remuxer,
    /// The video tracks of a multitrack publish as renditions `NAME~vK` (then `handle` gets none).
    multitrack: Multitrack,
    handle: Option<hls_edge::StreamHandle>,
    stats: Arc<Mutex<LiveStats>>,
    labels: [(&'static str, String); 2],
    warned_gop: bool,
    last_segment_bytes_in: u64,
    /// The codec description last declared to the edge, per container.
    last_codec: hls_edge::PerContainer<Option<Arc<remux::CodecInfo>>>,
    /// The CMAF init segment the next CMAF segments need.
    cmaf_init: Option<bytes::Bytes>,
    last_ts_active: bool,
    dropped_reported: u64,
    kick: CancellationToken,
    broken: bool,
    /// The remuxer's parts of the TS segment being cut (their bytes are the segment's chunks).
    /// CMAF parts go to the edge as they are made (LL-HLS) instead.
    pending_parts: hls_edge::PerContainer<Vec<hls_edge::NewPart>>,
    /// Bytes of the open CMAF segment's parts the edge took.
    cmaf_part_bytes: usize,
    /// The CMAF part whose chunks are being pushed, and whether the edge took every one.
    cmaf_chunk_part: Option<(u64, u32)>,
    cmaf_chunks_pushed: bool,
    metrics: StreamMetrics,
    video_codec: Option<rtmp_ingest::flv_tag::Codec>,
    audio_codec: Option<rtmp_ingest::flv_tag::Codec>,
    /// The fleet claim: segments are listed only while it holds.
    fleet: Option<crate::fleet::FleetClaim>,
    archive: Option<crate::recording::Tap>, // recording / DVR writer feed
}

impl PublishSink {
    fn drain(&mut self) {
        while let Some(out) = self.remuxer.poll_output() {
            match out {
                remux::RemuxOutput::Init(i) => {
                    // Declared before the first part, so parts get the right content type.
                    self.declare_media(remux::Container::Cmaf, &i.codec);
                    self.cmaf_init = Some(i.bytes);
                }
                remux::RemuxOutput::Chunk(c) => self.push_cmaf_chunk(c),
                remux::RemuxOutput::Part(p)
                    if p.container == remux::Container::Cmaf
                        && std::mem::take(&mut self.cmaf_chunks_pushed) =>
                {
                    // Its chunks are at the edge already (the same Bytes): close it there.
                    let len: usize = p.chunks.iter().map(bytes::Bytes::len).sum();
                    let done = hls_edge::PartDone {
                        duration_90k: p.duration_90k,
                        independent: p.independent,
                        segment_target_reached: p.segment_target_reached,
                    };
                    self.complete_cmaf_part(done, len, p.discontinuity, p.segment_first_arrival_ms);
                }
                remux::RemuxOutput::Part(p) => {
                    // A part is one Bytes for TS; a CMAF part not streamed as chunks (styp,
                    // moof, samples) is joined once here, since the edge stores one body per part.
                    let bytes = if p.chunks.len() == 1 {
                        p.chunks.into_iter().next().unwrap_or_default()
                    } else {
                        bytes::Bytes::from(p.chunks.concat())
                    };
                    let part = hls_edge::NewPart {
                        bytes,
                        duration_90k: p.duration_90k,
                        independent: p.independent,
                        segment_target_reached: p.segment_target_reached,
                    };
                    if p.container == remux::Container::Cmaf {
                        self.push_cmaf_part(part, p.discontinuity, p.segment_first_arrival_ms);
                    } else {
                        self.pending_parts[edge_container(p.container)].push(part);
                    }
                }
                remux::RemuxOutput::Segment(seg) => self.publish_segment(seg),
                remux::RemuxOutput::Warning(w) => self.warn(w),
            }
        }
    }

    /// Declares to the edge which containers this publish produces and what they carry, when
    /// that changed: TS while the remuxer writes it (H.264/AAC/MP3 only), CMAF when enabled.
    fn declare_media(&mut self, container: remux::Container, codec: &Arc<remux::CodecInfo>) {
        let c = edge_container(container);
        if self.last_codec[c]
            .as_ref()
            .is_some_and(|old| Arc::ptr_eq(old, codec))
            && self.last_ts_active == self.remuxer.ts_active()
        {
            return;
        }
        self.last_codec[c] = Some(codec.clone());
        self.last_ts_active = self.remuxer.ts_active();
        let any = self
            .last_codec
            .ts
            .clone()
            .or_else(|| self.last_codec.cmaf.clone());
        let info = |own: &Option<Arc<remux::CodecInfo>>| {
            own.as_ref().or(any.as_ref()).map(|c| edge_info(c))
        };
        let media = hls_edge::PerContainer {
            ts: self
                .remuxer
                .ts_active()
                .then(|| info(&self.last_codec.ts))
                .flatten(),
            cmaf: self
                .remuxer
                .cmaf_active()
                .then(|| info(&self.last_codec.cmaf))
                .flatten(),
        };
        if let Some(h) = &self.handle {
            h.set_media(media);
        }
    }

    fn publish_segment(&mut self, seg: remux::Segment) {
        let container = edge_container(seg.container);
        self.declare_media(seg.container, &seg.codec);
        let mut parts = std::mem::take(&mut self.pending_parts[container]);
        let cmaf_part_bytes = if seg.container == remux::Container::Cmaf {
            std::mem::take(&mut self.cmaf_part_bytes)
        } else {
            0
        };
        // Stream statistics follow the primary container (TS when it is written).
        let primary = !self.remuxer.ts_active() || seg.container == remux::Container::Ts;
        if primary {
            self.segment_stats(&seg);
        }
        let held = self
            .fleet
            .as_ref()
            .is_none_or(crate::fleet::FleetClaim::may_publish);
        let Some(h) = (self.handle.as_ref()).filter(|_| held && !self.multitrack.active()) else {
            return;
        };
        let same_bytes = parts.len() == seg.parts.len()
            && (parts.iter().zip(&seg.parts))
                .all(|(p, c)| p.bytes.as_ptr() == c.as_ptr() && p.bytes.len() == c.len());
        if cmaf_part_bytes > 0 && cmaf_part_bytes != seg.len {
            tracing::warn!(app = %self.key.0, stream = %self.key.1, parts_bytes = cmaf_part_bytes,
                segment_bytes = seg.len, "CMAF parts do not add up to their segment");
        }
        // CMAF parts already pushed one by one are the segment: nothing more to hand over.
        let complete = same_bytes || cmaf_part_bytes > 0;
        crate::recording::feed(self.archive.as_mut(), &seg, &self.cmaf_init);
        if !complete {
            // Parts not reported one by one: the segment's chunks, the duration on the last.
            let n = seg.parts.len();
            parts = (seg.parts.into_iter().enumerate())
                .map(|(i, bytes)| hls_edge::NewPart {
                    bytes,
                    duration_90k: if i + 1 == n { seg.duration_90k } else { 0 },
                    independent: i == 0 && seg.independent,
                    segment_target_reached: false,
                })
                .collect();
        }
        let init = match seg.container {
            remux::Container::Ts => None,
            remux::Container::Cmaf => self.cmaf_init.clone(),
        };
        let pushed = h.push_segment(hls_edge::NewSegment {
            container,
            parts,
            init,
            duration_90k: seg.duration_90k,
            discontinuity: seg.discontinuity,
            independent: seg.independent,
            arrival_unix_ms: seg.first_arrival_ms,
            keyframe: seg.keyframe_range.map(|r| hls_edge::ByteRange {
                offset: r.offset,
                len: r.len,
            }),
        });
        match pushed {
            // Groups compare these across renditions (alignment check).
            Ok(msn) => {
                h.report_segment_start(container, msn, seg.first_dts_90k);
                if let Some(f) = &self.fleet {
                    f.progress(h.resume_point());
                }
            }
            Err(e) => {
                tracing::debug!(app = %self.key.0, stream = %self.key.1, error = %e, "segment not listed");
            }
        }
    }

    fn segment_stats(&mut self, seg: &remux::Segment) {
        let duration = Duration::from_nanos(seg.duration_90k.saturating_mul(1_000_000) / 90);
        let s = self.remuxer.stats();
        let bytes_in = s.bytes_in;
        let bitrate = if duration.as_millis() > 0 {
            (bytes_in.saturating_sub(self.last_segment_bytes_in)).saturating_mul(8_000)
                / duration.as_millis() as u64
        } else {
            0
        };
        self.last_segment_bytes_in = bytes_in;
        metrics::counter!("sluice_stream_segments_total", &self.labels).increment(1);
        metrics::gauge!("sluice_stream_bitrate_bps", &self.labels).set(bitrate as f64);
        if seg.discontinuity {
            metrics::counter!("sluice_stream_discontinuities_total", &self.labels).increment(1);
        }
        if let Some(gop) = s.gop_ms_last {
            metrics::gauge!("sluice_stream_gop_seconds", &self.labels).set(f64::from(gop) / 1000.0);
        }
        let mut st = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        st.segments += 1;
        st.last_segment_duration_ms = Some(duration.as_millis() as u64);
        st.bitrate_bps = bitrate;
        st.gop_ms = s.gop_ms_last;
        st.gop_exceeds_target = s.gop_exceeds_target;
        st.discontinuities = s.discontinuities;
        st.timestamp_jumps = s.timestamp_jumps;
        st.dropped_frames = s.dropped_frames;
        st.codec = serde_json::to_value(&*seg.codec).ok();
    }

    fn warn(&mut self, w: remux::RemuxWarning) {
        let (app, stream) = (&self.key.0, &self.key.1);
        match &w {
            remux::RemuxWarning::GopExceedsTarget { gop_ms, target_ms } => {
                if !self.warned_gop {
                    self.warned_gop = true;
                    tracing::warn!(app, stream, gop_ms, target_ms,
                        "keyframe interval exceeds the segment target: segments will be longer than hls.target_duration_ms; set the encoder's keyframe interval to the target");
                }
            }
            remux::RemuxWarning::TimestampJump { .. } => {
                metrics::counter!("sluice_stream_timestamp_jumps_total", &self.labels).increment(1);
                tracing::warn!(app, stream, warning = ?w, "timestamp jump: starting a discontinuity");
            }
            other => tracing::warn!(app, stream, warning = ?other, "remux warning"),
        }
    }
}

impl Drop for PublishSink {
    /// However the sink ends (on_close, or a connection task that died), the name is released;
    /// only this publish's own entry, in case the name was already released and taken again.
    fn drop(&mut self) {
        release_registration(&self.live, &self.key, self.registration);
    }
}

impl MediaSink for PublishSink {
    fn on_tag(&mut self, tag: IngestTag) {
        self.hub.push(&tag);
        let kind = match tag.kind {
            rtmp_ingest::TagKind::Audio => remux::TagKind::Audio,
            rtmp_ingest::TagKind::Video => remux::TagKind::Video,
            rtmp_ingest::TagKind::Script => remux::TagKind::Script,
        };
        // Per tag: plain counters, flushed to the pre-registered metric handles in batches; no
        // allocation, no lookup.
        let len = tag.payload.len() as u64;
        let pending = &mut self.metrics.pending;
        pending.tags += 1;
        pending.bytes += len;
        let mut flush = pending.tags >= METRIC_FLUSH_TAGS;
        {
            let mut st = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            st.bytes_received += len;
            if let Some(info) = &tag.info {
                let frame = info.packet == rtmp_ingest::flv_tag::PacketKind::CodedFrames;
                match kind {
                    remux::TagKind::Video => {
                        if frame {
                            st.video_timestamp_ms = Some(tag.timestamp_ms);
                            st.video_frames += 1;
                            pending.video_frames += 1;
                            if info.is_keyframe {
                                st.keyframes += 1;
                                pending.keyframes += 1;
                                flush = true;
                            }
                        }
                        if self.video_codec != Some(info.codec) {
                            self.video_codec = Some(info.codec);
                            st.video_codec = Some(info.codec.name());
                        }
                    }
                    remux::TagKind::Audio => {
                        if frame {
                            st.audio_timestamp_ms = Some(tag.timestamp_ms);
                            st.audio_frames += 1;
                            pending.audio_frames += 1;
                        }
                        if self.audio_codec != Some(info.codec) {
                            self.audio_codec = Some(info.codec);
                            st.audio_codec = Some(info.codec.name());
                        }
                    }
                    remux::TagKind::Script => {}
                }
            }
        }
        if flush {
            self.metrics.flush();
        }
        if self.broken {
            return;
        }
        let ts = tag.timestamp_ms;
        let flv = remux::FlvTag {
            kind,
            timestamp_ms: ts,
            payload: tag.payload,
        };
        // Defence in depth: a bug in the remuxer must cost this publisher a reconnect, never the
        // process or another stream. The publisher is kicked (the encoder reconnects and the
        // playlist continues with a discontinuity).
        let pushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.multitrack.push(&flv, unix_ms());
            self.remuxer.push(flv, unix_ms())
        }));
        match pushed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(app = %self.key.0, stream = %self.key.1, timestamp_ms = ts, error = %e, "tag dropped");
            }
            Err(_) => {
                self.broken = true;
                metrics::counter!("sluice_remux_panics_total").increment(1);
                tracing::error!(app = %self.key.0, stream = %self.key.1, timestamp_ms = ts,
                    "remuxer panicked on this stream's input; disconnecting its publisher");
                self.kick.cancel();
                return;
            }
        }
        self.drain();
        let dropped = self.remuxer.stats().dropped_frames;
        if dropped > self.dropped_reported {
            metrics::counter!("sluice_stream_dropped_frames_total", &self.labels)
                .increment(dropped - self.dropped_reported);
            self.dropped_reported = dropped;
        }
    }

    fn on_close(mut self, summary: PublishSummary) {
        self.playback.publish_ended(&self.hub);
        self.metrics.flush();
        if !self.broken {
            self.remuxer.finish();
            self.drain();
            self.multitrack.finish();
        }
        if let Some(h) = self.handle.take() {
            h.end();
        }
        drop(self.archive.take()); // ends the recording's publish before the name is released
        let st = self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
        metrics::gauge!("sluice_streams_live").decrement(1.0);
        tracing::info!(
            app = %self.key.0,
            stream = %self.key.1,
            peer = %self.peer,
            reason = ?summary.reason,
            duration_s = self.started.elapsed().as_secs_f64(),
            bytes = summary.bytes_received,
            video_frames = st.video_frames,
            audio_frames = st.audio_frames,
            keyframes = st.keyframes,
            segments = st.segments,
            discontinuities = st.discontinuities,
            "publish ended"
        );
        release_registration(&self.live, &self.key, self.registration);
        self.auth.notify_unpublish(
            &self.key.0,
            &self.key.1,
            &self.params,
            self.peer,
            self.started.elapsed().as_millis() as u64,
            summary.bytes_received,
        );
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
