//! The in-memory HLS store: streams per app/stream, their renditions (one media playlist per
//! container) and segment bodies in a byte-bounded `moka` cache (RFC 8216bis §6.2.1 playlist
//! updates, §6.2.2 live window and segment availability).
//!
//! Locks: `streams` (map) before a stream's `core` mutex before `eviction` or `tombstones`
//! (never both); never two `core` mutexes at once; nothing held across `.await`; the moka
//! eviction listener takes no lock. Requests only clone an `Arc` under a lock; bodies are
//! written with no lock held.
//!
//! Time comes from the injected [`Clock`]; nothing here reads the system clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use crate::body::{RenderedPlaylist, StoredBody};
use crate::clock::{Clock, Now};
use crate::config::EdgeConfig;
use crate::error::EdgeError;
use crate::eviction::EvictionIndex;
use crate::http::is_valid_name;
use crate::ll::LlSignal;
use crate::media::{Container, PerContainer, PublishParams, StreamInfo};
use crate::rendition::{Continuation, Dropped};
use crate::stream::{NewPart, NewSegment, Pushed, SegmentStart, StreamCore, StreamSummary};

/// (stream entry id, container, media sequence).
type SegmentKey = (u64, Container, u64);

pub(crate) struct StreamEntry {
    pub id: u64,
    app: Arc<str>,
    stream: Arc<str>,
    pub core: Mutex<StreamCore>,
    /// `sluice_stream_bytes_held{app,stream,container}`, registered once.
    gauges: PerContainer<metrics::Gauge>,
    /// The CMAF rendition's LL-HLS signal, readable without the core lock (a sibling's
    /// rendition report reads its last part from it).
    cmaf_signal: Arc<LlSignal>,
}

struct Tombstone {
    continuation: PerContainer<Continuation>,
    removed_at: std::time::Instant,
}

struct Inner {
    config: EdgeConfig,
    clock: Arc<dyn Clock>,
    streams: RwLock<HashMap<String, Arc<StreamEntry>>>,
    /// Sequence numbers of removed playlists, so a later publish of the same URL keeps them
    /// growing (CDNs may still hold `seg-N.ts` of the old life as immutable).
    tombstones: Mutex<HashMap<String, Tombstone>>,
    segments: Cache<SegmentKey, Arc<StoredBody>>,
    /// Bytes held per container (media and init segments), all streams.
    bytes: PerContainer<AtomicU64>,
    /// `sluice_edge_bytes_held{container}`.
    gauges: PerContainer<metrics::Gauge>,
    eviction: Mutex<EvictionIndex>,
    next_id: AtomicU64,
    /// Streams live, in grace or ended (not removed): checked against `max_streams` in O(1).
    active_streams: AtomicUsize,
    /// Stream cores locked by total-budget enforcement, ever (one per body dropped, plus one
    /// per stale index entry): what keeps it O(evicted), checked by the tests.
    budget_core_locks: AtomicU64,
    /// Groups of renditions and their multivariant playlists (`crate::group`).
    groups: crate::group::Groups,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn stream_key(app: &str, stream: &str) -> String {
    format!("{app}/{stream}")
}

/// The edge's store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("bytes_held", &self.bytes_held())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store reading time from `clock` ([`crate::TokioClock`] in the binary,
    /// [`crate::SimClock`] in tests).
    pub fn new(config: EdgeConfig, clock: Arc<dyn Clock>) -> Self {
        let segments = Cache::builder()
            .max_capacity(config.max_bytes_total)
            .weigher(|_k: &SegmentKey, v: &Arc<StoredBody>| {
                u32::try_from(v.len_bytes).unwrap_or(u32::MAX)
            })
            // LRU admits every new segment; TinyLFU could refuse a fresh one when full. The store
            // keeps the total under the budget itself, so moka evicting is only a backstop.
            .eviction_policy(EvictionPolicy::lru())
            .eviction_listener(|k: Arc<SegmentKey>, _v, cause| {
                if cause == RemovalCause::Size {
                    metrics::counter!("sluice_edge_cache_evictions_total").increment(1);
                    tracing::warn!(
                        container = %k.1,
                        media_sequence = k.2,
                        "segment cache evicted a body over the total byte budget"
                    );
                }
            })
            .build();
        let gauges = PerContainer {
            ts: metrics::gauge!("sluice_edge_bytes_held", "container" => "ts"),
            cmaf: metrics::gauge!("sluice_edge_bytes_held", "container" => "cmaf"),
        };
        Self {
            inner: Arc::new(Inner {
                clock,
                streams: RwLock::new(HashMap::new()),
                tombstones: Mutex::new(HashMap::new()),
                segments,
                bytes: PerContainer::default(),
                gauges,
                eviction: Mutex::new(EvictionIndex::default()),
                next_id: AtomicU64::new(1),
                active_streams: AtomicUsize::new(0),
                budget_core_locks: AtomicU64::new(0),
                groups: crate::group::Groups::new(&config.variant_suffixes),
                config,
            }),
        }
    }

    pub fn config(&self) -> &EdgeConfig {
        &self.inner.config
    }

    fn now(&self) -> Now {
        self.inner.clock.now()
    }

    fn entries(&self) -> Vec<Arc<StreamEntry>> {
        self.inner
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn entry(&self, app: &str, stream: &str) -> Option<Arc<StreamEntry>> {
        let map = self.inner.streams.read().unwrap_or_else(|e| e.into_inner());
        map.get(&stream_key(app, stream)).cloned()
    }

    /// A publisher starts on `app/stream`, declaring its segment timing.
    ///
    /// An existing playlist (live, in grace, or ended but not yet removed) continues: ENDLIST is
    /// dropped, the next segment of each container carries `#EXT-X-DISCONTINUITY`, the target
    /// duration and part target stay as first declared and media sequence numbers go on. A
    /// removed (or never seen) name starts a new playlist life with the declared values, still
    /// continuing the numbers of a previous life of the same URL. A still-attached previous
    /// handle is detached (its pushes are refused).
    pub fn begin_publish(
        &self,
        app: &str,
        stream: &str,
        params: PublishParams,
    ) -> Result<StreamHandle, EdgeError> {
        self.begin_publish_resuming(app, stream, params, None)
    }

    /// [`Store::begin_publish`], continuing a playlist another producer left off (a fleet node
    /// taking a stream over): a playlist new on this node starts at `resume`'s numbers with its
    /// target duration and part target; an existing one jumps up to them. Either way the next
    /// segment of each container carries `#EXT-X-DISCONTINUITY` and no number goes back.
    pub fn begin_publish_resuming(
        &self,
        app: &str,
        stream: &str,
        mut params: PublishParams,
        resume: Option<crate::media::Resume>,
    ) -> Result<StreamHandle, EdgeError> {
        if !is_valid_name(app) || !is_valid_name(stream) {
            return Err(EdgeError::InvalidStreamName);
        }
        let now = self.now();
        let key = stream_key(app, stream);
        let mut map = self
            .inner
            .streams
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let existing = map.get(&key).cloned();
        let is_active = |e: &StreamEntry| lock(&e.core).state().is_some();
        if !existing.as_deref().is_some_and(is_active) {
            let active = self.inner.active_streams.load(Ordering::Relaxed);
            if active >= self.inner.config.max_streams {
                return Err(EdgeError::TooManyStreams {
                    max_streams: self.inner.config.max_streams,
                });
            }
        }
        let (entry, epoch) = match existing {
            Some(entry) => {
                let mut core = lock(&entry.core);
                if core.state().is_none() {
                    self.inner.active_streams.fetch_add(1, Ordering::Relaxed);
                }
                let (epoch, closed) = core.begin(params, now.instant, now.wall, &self.inner.config);
                for p in closed {
                    self.store_pushed(&entry, &core, p);
                }
                self.release_abandoned(&entry, &mut core);
                if let Some(r) = &resume {
                    core.resume_at(r, now.instant);
                }
                drop(core);
                (entry, epoch)
            }
            None => {
                let continuation = lock(&self.inner.tombstones)
                    .remove(&key)
                    .map(|t| t.continuation)
                    .unwrap_or_default();
                if let Some(r) = resume.as_ref().filter(|r| r.target_duration_s > 0) {
                    params.target_duration_s = r.target_duration_s;
                    params.part_target_ms = r.part_target_ms;
                }
                let mut core = StreamCore::new(continuation, params, self.inner.config.low_latency);
                if let Some(r) = &resume {
                    core.resume_at(r, now.instant);
                }
                self.inner.active_streams.fetch_add(1, Ordering::Relaxed);
                let epoch = core.publish_epoch;
                let gauge = |c: Container| metrics::gauge!("sluice_stream_bytes_held", "app" => app.to_string(), "stream" => stream.to_string(), "container" => c.name());
                let cmaf_signal = core.renditions.cmaf.signal.clone();
                let entry = Arc::new(StreamEntry {
                    cmaf_signal,
                    id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
                    app: app.into(),
                    stream: stream.into(),
                    core: Mutex::new(core),
                    gauges: PerContainer {
                        ts: gauge(Container::Ts),
                        cmaf: gauge(Container::Cmaf),
                    },
                });
                map.insert(key, entry.clone());
                (entry, epoch)
            }
        };
        drop(map);
        self.refresh_group(&entry);
        Ok(StreamHandle {
            store: self.clone(),
            entry,
            epoch,
            ended: false,
        })
    }

    /// Every playlist that is live, in grace or ended (not removed ones), sorted by name.
    pub fn streams(&self) -> Vec<StreamSummary> {
        let mut v: Vec<_> = self
            .entries()
            .iter()
            .filter_map(|e| lock(&e.core).summary(&e.app, &e.stream))
            .collect();
        v.sort_by(|a, b| (&a.app, &a.stream).cmp(&(&b.app, &b.stream)));
        v
    }

    pub fn stream(&self, app: &str, stream: &str) -> Option<StreamSummary> {
        let e = self.entry(app, stream)?;
        let summary = lock(&e.core).summary(&e.app, &e.stream);
        summary
    }

    /// Bytes of media and init segments held, all streams and containers.
    pub fn bytes_held(&self) -> u64 {
        let b = self.bytes_held_by_container();
        b.ts + b.cmaf
    }

    /// Bytes held per container, all streams.
    pub fn bytes_held_by_container(&self) -> PerContainer<u64> {
        self.inner.bytes.map(|_, b| b.load(Ordering::Relaxed))
    }

    /// Starts the periodic janitor (grace expiry, ENDLIST, removal, availability expiry). It
    /// stops by itself when every `Store` clone is dropped.
    pub fn spawn_janitor(&self) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(500));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Store { inner }.tick();
            }
        })
    }

    /// Graceful shutdown: every live or in-grace playlist gets `#EXT-X-ENDLIST` now and its
    /// publisher is detached. The ended retention then runs as usual.
    pub fn end_all(&self) {
        let now = self.now();
        for e in self.entries() {
            let mut core = lock(&e.core);
            for p in core.end_now(now.instant, now.wall, &self.inner.config) {
                self.store_pushed(&e, &core, p);
            }
            self.release_abandoned(&e, &mut core);
            drop(core);
            self.refresh_group(&e);
        }
    }

    /// One janitor pass at the clock's current time.
    pub fn tick(&self) {
        let now = self.now();
        let mut removable = Vec::new();
        let mut dropped = Vec::new();
        for e in self.entries() {
            let gone = {
                let mut core = lock(&e.core);
                dropped.clear();
                let was_active = core.state().is_some();
                let gone = core.tick(now.instant, now.wall, &self.inner.config, &mut dropped);
                if was_active && core.state().is_none() {
                    self.inner.active_streams.fetch_sub(1, Ordering::Relaxed);
                }
                self.release(&e, &core, &dropped);
                gone
            };
            self.refresh_group(&e);
            if gone {
                removable.push(e);
            }
        }
        if !removable.is_empty() {
            let mut map = self
                .inner
                .streams
                .write()
                .unwrap_or_else(|e| e.into_inner());
            for e in removable {
                let key = stream_key(&e.app, &e.stream);
                if !map.get(&key).is_some_and(|cur| Arc::ptr_eq(cur, &e)) {
                    continue;
                }
                let core = lock(&e.core);
                if !core.is_removable() {
                    continue;
                }
                let continuation = core.continuation();
                lock(&self.inner.eviction).remove_entry(e.id);
                drop(core);
                map.remove(&key);
                self.inner
                    .groups
                    .update(&e.app, &e.stream, None, now.wall, 0);
                lock(&self.inner.tombstones).insert(
                    key,
                    Tombstone {
                        continuation,
                        removed_at: now.instant,
                    },
                );
            }
        }
        self.prune_tombstones(now.instant);
        self.inner.segments.run_pending_tasks();
    }

    /// Tombstones only matter while a CDN may still cache old segments; keep them that long,
    /// and never more than a few times `max_streams`.
    fn prune_tombstones(&self, at: std::time::Instant) {
        let ttl = Duration::from_secs(u64::from(self.inner.config.segment_cache_max_age_s));
        let cap = self.inner.config.max_streams.saturating_mul(4).max(16);
        let mut t = lock(&self.inner.tombstones);
        t.retain(|_, v| at.saturating_duration_since(v.removed_at) < ttl);
        while t.len() > cap {
            let Some(oldest) = t
                .iter()
                .min_by_key(|(_, v)| v.removed_at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            t.remove(&oldest);
        }
    }

    /// After a change to `core` (its lock held): releases the `dropped` bodies, updates byte
    /// counts and gauges and the stream's place in the eviction index.
    fn release(&self, e: &Arc<StreamEntry>, core: &StreamCore, dropped: &[Dropped]) {
        let mut freed = PerContainer::<u64>::default();
        for d in dropped {
            if let Some(seq) = d.media_sequence {
                self.inner.segments.invalidate(&(e.id, d.container, seq));
            }
            freed[d.container] += d.len_bytes;
        }
        for c in Container::ALL {
            if freed[c] > 0 {
                let total = self.inner.bytes[c].fetch_sub(freed[c], Ordering::Relaxed) - freed[c];
                self.inner.gauges[c].set(total as f64);
                e.gauges[c].set(core.renditions[c].bytes_held as f64);
            }
        }
        lock(&self.inner.eviction).update(e, core);
    }

    /// Brings the total back under `max_bytes_total`: bodies already out of a playlist go
    /// first (earliest expiry first), then the oldest listed segments of any stream (never a
    /// rendition's newest one). O(log streams) per body dropped: the candidates are kept
    /// ordered in the eviction index.
    ///
    /// Called with `reserve_bytes` before a body is inserted so that moka never has to evict on
    /// its own (it would pick by recency, not by our rules), and with 0 after.
    fn enforce_total_budget(&self, reserve_bytes: u64) {
        let wall = self.now().wall;
        let max = self.inner.config.max_bytes_total;
        let mut dropped = Vec::new();
        while self.bytes_held().saturating_add(reserve_bytes) > max {
            let Some((candidate, (id, container), weak)) = lock(&self.inner.eviction).first()
            else {
                return;
            };
            let Some(e) = weak.upgrade() else {
                lock(&self.inner.eviction).remove_entry(id);
                continue;
            };
            let mut core = lock(&e.core);
            self.inner.budget_core_locks.fetch_add(1, Ordering::Relaxed);
            dropped.clear();
            // The index may be behind a change made since `first()`: then only re-index.
            if core.renditions[container].eviction_candidate() == Some(candidate) {
                core.drop_oldest_and_render(container, wall, &mut dropped);
            }
            self.release(&e, &core, &dropped);
        }
    }

    /// Stores a listed segment's body (the caller holds `core`'s lock, so a request only sees
    /// the new playlist once the body is downloadable): room first (the per-stream drops), then
    /// the body.
    fn store_pushed(&self, e: &Arc<StreamEntry>, core: &StreamCore, pushed: Pushed) {
        let c = pushed.container;
        self.release(e, core, &pushed.dropped);
        self.inner
            .segments
            .insert((e.id, c, pushed.media_sequence), Arc::new(pushed.body));
        self.add_bytes(e, core, c, pushed.added_bytes);
    }

    /// Releases the bytes of growing parts the core gave up.
    fn release_abandoned(&self, e: &Arc<StreamEntry>, core: &mut StreamCore) {
        if !core.abandoned.is_empty() {
            let d = std::mem::take(&mut core.abandoned);
            self.release(e, core, &d);
        }
    }

    fn add_bytes(&self, e: &StreamEntry, core: &StreamCore, c: Container, added: u64) {
        let total = self.inner.bytes[c].fetch_add(added, Ordering::Relaxed) + added;
        self.inner.gauges[c].set(total as f64);
        e.gauges[c].set(core.renditions[c].bytes_held as f64);
    }

    /// The wake-up signal of a stream's playlist (`container` `None`: the primary one) and the
    /// container it is for.
    pub(crate) fn signal(
        &self,
        app: &str,
        stream: &str,
        container: Option<Container>,
    ) -> Option<(Arc<LlSignal>, Container)> {
        let e = self.entry(app, stream)?;
        let core = lock(&e.core);
        let c = container.or_else(|| core.primary())?;
        Some((core.renditions[c].signal.clone(), c))
    }

    /// Requests waiting on a stream's playlists and hinted parts now (blocking reloads and
    /// preload hints, RFC 8216bis §6.2.5.2, §6.2.6).
    pub fn waiting_requests(&self, app: &str, stream: &str) -> usize {
        let Some(e) = self.entry(app, stream) else {
            return 0;
        };
        let core = lock(&e.core);
        Container::ALL
            .into_iter()
            .map(|c| core.renditions[c].signal.waiting())
            .sum()
    }

    /// Part `index` of CMAF segment `media_sequence`: of the open segment, or of a complete one.
    pub(crate) fn part(
        &self,
        app: &str,
        stream: &str,
        media_sequence: u64,
        index: u32,
    ) -> Option<Arc<StoredBody>> {
        let e = self.entry(app, stream)?;
        let open = lock(&e.core)
            .renditions
            .cmaf
            .open_part(media_sequence, index);
        if open.is_some() {
            return open;
        }
        let seg = self
            .inner
            .segments
            .get(&(e.id, Container::Cmaf, media_sequence))?;
        seg.part_bodies.get(index as usize).cloned()
    }

    /// Re-reads `e`'s state into its group, if it belongs to one (no core lock is held here).
    fn refresh_group(&self, e: &StreamEntry) {
        if self.inner.groups.group_of(&e.stream).is_none() {
            return;
        }
        let summary = lock(&e.core).summary(&e.app, &e.stream);
        let wall = self.now().wall;
        let wall_ms = wall
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.inner
            .groups
            .update(&e.app, &e.stream, summary.as_ref(), wall, wall_ms);
    }

    /// `EXT-X-RENDITION-REPORT`s for `e`'s CMAF playlist: its group's other listed renditions
    /// with their last part (RFC 8216bis §4.4.5.4). Read with no core lock held (each sibling's
    /// position comes from its signal), so no two stream locks are ever taken together.
    fn ll_reports(&self, e: &StreamEntry) -> Vec<crate::playlist::RenditionReport> {
        if !self.inner.config.low_latency || self.inner.groups.group_of(&e.stream).is_none() {
            return Vec::new();
        }
        let siblings = self
            .inner
            .groups
            .rendition_reports(&e.app, &e.stream, Container::Cmaf);
        siblings
            .into_iter()
            .map(|r| {
                let name = r
                    .uri
                    .strip_prefix("../")
                    .and_then(|u| u.strip_suffix("/cmaf.m3u8"));
                let last = name
                    .and_then(|n| self.entry(&e.app, n))
                    .and_then(|s| s.cmaf_signal.last_part());
                let (last_msn, last_part) = last.unwrap_or((r.last_msn, None));
                crate::playlist::RenditionReport {
                    uri: r.uri,
                    last_msn,
                    last_part,
                }
            })
            .collect()
    }

    /// Every group of renditions (suffix and multitrack groups), sorted by name.
    pub fn groups(&self) -> Vec<crate::group::GroupSummary> {
        self.inner.groups.summaries()
    }

    /// The group `app/name`, if it has members.
    pub fn group(&self, app: &str, name: &str) -> Option<crate::group::GroupSummary> {
        self.inner.groups.summary(app, name)
    }

    /// The sibling renditions of `app/stream` in its group with a `container` playlist, and
    /// their last media sequence numbers (LL-HLS `EXT-X-RENDITION-REPORT`). Empty outside
    /// groups.
    pub fn rendition_reports(
        &self,
        app: &str,
        stream: &str,
        container: Container,
    ) -> Vec<crate::group::RenditionReport> {
        self.inner.groups.rendition_reports(app, stream, container)
    }

    pub(crate) fn playlist(
        &self,
        app: &str,
        stream: &str,
        container: Option<Container>,
    ) -> Option<Arc<RenderedPlaylist>> {
        if let Some(p) = self.inner.groups.playlist(app, stream, container) {
            return Some(p);
        }
        let e = self.entry(app, stream)?;
        let core = lock(&e.core);
        let c = container.or_else(|| core.primary())?;
        core.renditions[c].rendered().cloned()
    }

    /// The I-frame playlist of a stream's `container` (`None`: the primary one's).
    pub(crate) fn iframe_playlist(
        &self,
        app: &str,
        stream: &str,
        container: Option<Container>,
    ) -> Option<Arc<RenderedPlaylist>> {
        let e = self.entry(app, stream)?;
        let core = lock(&e.core);
        let c = container.or_else(|| core.primary())?;
        core.renditions[c].rendered_iframes().cloned()
    }

    pub(crate) fn segment(
        &self,
        app: &str,
        stream: &str,
        container: Container,
        media_sequence: u64,
    ) -> Option<Arc<StoredBody>> {
        let e = self.entry(app, stream)?;
        self.inner.segments.get(&(e.id, container, media_sequence))
    }

    pub(crate) fn init(&self, app: &str, stream: &str, number: u64) -> Option<Arc<StoredBody>> {
        let e = self.entry(app, stream)?;
        let body = lock(&e.core).renditions.cmaf.init(number);
        body
    }
}

/// Owned by the publishing connection. Dropping it ends the publish (grace period starts).
pub struct StreamHandle {
    store: Store,
    entry: Arc<StreamEntry>,
    epoch: u64,
    ended: bool,
}

impl std::fmt::Debug for StreamHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamHandle")
            .field("app", &self.entry.app)
            .field("stream", &self.entry.stream)
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl StreamHandle {
    pub fn app(&self) -> &str {
        &self.entry.app
    }

    pub fn stream(&self) -> &str {
        &self.entry.stream
    }

    /// Declares which containers this publish produces from now on (`Some`) and describes
    /// them; call it before the first segment and again when the media changes. `index.m3u8`
    /// serves TS when TS is produced, else CMAF.
    pub fn set_media(&self, media: PerContainer<Option<StreamInfo>>) {
        lock(&self.entry.core).set_media(self.epoch, media);
        self.store.refresh_group(&self.entry);
    }

    /// The producer's first timestamp (90 kHz, its own timeline) of segment `media_sequence` of
    /// `container`, as returned by [`StreamHandle::push_segment`]. Only used to check that the
    /// renditions of a group are aligned (see [`crate::group`]); a no-op outside groups.
    pub fn report_segment_start(&self, container: Container, media_sequence: u64, start_90k: u64) {
        self.store.inner.groups.report_segment_start(
            &self.entry.app,
            &self.entry.stream,
            container,
            media_sequence,
            start_90k,
        );
    }

    /// The numbers (next media sequence, discontinuity sequence, next init per container) and
    /// the pinned timing another producer would continue this playlist from.
    pub fn resume_point(&self) -> crate::media::Resume {
        lock(&self.entry.core).resume_point()
    }

    /// Lists a complete segment of one container. Never waits on HTTP clients. Returns its
    /// media sequence number (the `N` of `seg-N.ts` / `seg-N.m4s`).
    pub fn push_segment(&self, segment: NewSegment) -> Result<u64, EdgeError> {
        let store = &self.store;
        if segment.container == Container::Cmaf && segment.init.is_none() {
            return Err(EdgeError::MissingInit);
        }
        let len_bytes: u64 = segment.parts.iter().map(|p| p.bytes.len() as u64).sum();
        if !lock(&self.entry.core).accepts(self.epoch) {
            return Err(EdgeError::NotPublishing);
        }
        let max = store.inner.config.max_bytes_total;
        if store.bytes_held().saturating_add(len_bytes) > max {
            store.enforce_total_budget(len_bytes);
        }
        let reports = store.ll_reports(&self.entry);
        let now = store.now();
        let seq = {
            let mut core = lock(&self.entry.core);
            if !core.accepts(self.epoch) {
                return Err(EdgeError::NotPublishing);
            }
            core.set_reports(reports);
            let pushed = core.push(segment, now.instant, now.wall, &store.inner.config);
            let seq = pushed.media_sequence;
            store.store_pushed(&self.entry, &core, pushed);
            seq
        };
        if store.bytes_held() > max {
            // Only when the reservation above could not free enough (e.g. the pushing stream's
            // own previous segment was the only candidate).
            store.enforce_total_budget(0);
        }
        store.refresh_group(&self.entry);
        Ok(seq)
    }

    /// Adds a part (LL-HLS partial segment, RFC 8216bis §4.4.4.9) to the segment being written
    /// in `start.container`, as soon as the producer has it: it is listed (`EXT-X-PART`) and
    /// downloadable (`part-N.P.m4s`) at once, and requests waiting for it are woken. The first
    /// part of a segment takes its media sequence number and its tags from `start`;
    /// [`StreamHandle::push_segment`] then completes the segment (its body is the
    /// concatenation of these parts, the same `Bytes`). Never waits on HTTP clients.
    pub fn push_part(&self, start: &SegmentStart, part: NewPart) -> Result<(), EdgeError> {
        let store = &self.store;
        if start.container == Container::Cmaf && start.init.is_none() {
            return Err(EdgeError::MissingInit);
        }
        let len_bytes = part.bytes.len() as u64;
        let max = store.inner.config.max_bytes_total;
        if store.bytes_held().saturating_add(len_bytes) > max {
            store.enforce_total_budget(len_bytes);
        }
        let reports = store.ll_reports(&self.entry);
        let now = store.now();
        let mut core = lock(&self.entry.core);
        if !core.accepts(self.epoch) {
            return Err(EdgeError::NotPublishing);
        }
        core.set_reports(reports);
        let (added, dropped) = core.push_part(start, part, now.wall);
        store.add_bytes(&self.entry, &core, start.container, added);
        store.release(&self.entry, &core, dropped.as_slice());
        Ok(())
    }

    /// The publisher left: the grace period starts.
    pub fn end(mut self) {
        self.ended = true;
        self.end_inner();
    }

    fn end_inner(&self) {
        let now = self.store.now();
        let mut core = lock(&self.entry.core);
        for p in core.end(self.epoch, now.instant, now.wall, &self.store.inner.config) {
            self.store.store_pushed(&self.entry, &core, p);
        }
        self.store.release_abandoned(&self.entry, &mut core);
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        if !self.ended {
            self.end_inner();
        }
    }
}

#[path = "store_chunks.rs"]
mod chunks;
pub(crate) use chunks::FoundPart;

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
