//! The in-memory HLS store: playlists per app/stream and segment bodies in a byte-bounded `moka`
//! cache (RFC 8216bis §6.2.1 playlist updates, §6.2.2 live window and segment availability).
//!
//! Locks: `streams` (map) before a stream's `core` mutex before `tombstones`; never two `core`
//! mutexes at once; nothing held across `.await`; the moka eviction listener takes no lock.
//! Requests only clone an `Arc` under a lock; bodies are written with no lock held.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use crate::config::EdgeConfig;
use crate::error::EdgeError;
use crate::http::is_valid_name;
use crate::stream::{
    Continuation, Dropped, NewSegment, RenderedPlaylist, StreamCore, StreamInfo, StreamSummary,
};

/// An immutable segment body, shared with requests by `Arc` clone.
#[derive(Debug)]
pub(crate) struct SegmentBody {
    pub chunks: Vec<Bytes>,
    pub len_bytes: u64,
    pub etag: String,
    pub last_modified: SystemTime,
    /// `etag` and `last_modified` as header values, formatted once when the segment is stored.
    pub etag_value: http::HeaderValue,
    pub last_modified_value: http::HeaderValue,
}

/// (stream entry id, media sequence).
type SegmentKey = (u64, u64);

struct StreamEntry {
    id: u64,
    app: Arc<str>,
    stream: Arc<str>,
    core: Mutex<StreamCore>,
}

struct Tombstone {
    continuation: Continuation,
    removed_at: Instant,
}

struct Inner {
    config: EdgeConfig,
    streams: RwLock<HashMap<String, Arc<StreamEntry>>>,
    /// Sequence numbers of removed playlists, so a later publish of the same URL keeps them
    /// growing (CDNs may still hold `seg-N.ts` of the old life as immutable).
    tombstones: Mutex<HashMap<String, Tombstone>>,
    segments: Cache<SegmentKey, Arc<SegmentBody>>,
    total_bytes: AtomicU64,
    next_id: AtomicU64,
    /// Maps monotonic instants to wall-clock time for `Last-Modified`.
    clock_anchor: (Instant, SystemTime),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// "Now" for callers that do not pass time: tokio's clock, so `tokio::time::pause()` applies.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
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
    pub fn new(config: EdgeConfig) -> Self {
        Self::with_clock_anchor(config, now(), SystemTime::now())
    }

    /// As [`Store::new`] with the wall-clock time `wall` corresponding to `instant` given
    /// (deterministic `Last-Modified` in tests).
    pub fn with_clock_anchor(config: EdgeConfig, instant: Instant, wall: SystemTime) -> Self {
        let segments = Cache::builder()
            .max_capacity(config.max_bytes_total)
            .weigher(|_k: &SegmentKey, v: &Arc<SegmentBody>| {
                u32::try_from(v.len_bytes).unwrap_or(u32::MAX)
            })
            // LRU admits every new segment; TinyLFU could refuse a fresh one when full. The store
            // keeps the total under the budget itself, so moka evicting is only a backstop.
            .eviction_policy(EvictionPolicy::lru())
            .eviction_listener(|k: Arc<SegmentKey>, _v, cause| {
                if cause == RemovalCause::Size {
                    metrics::counter!("sluice_edge_cache_evictions_total").increment(1);
                    tracing::warn!(
                        media_sequence = k.1,
                        "segment cache evicted a body over the total byte budget"
                    );
                }
            })
            .build();
        Self {
            inner: Arc::new(Inner {
                config,
                streams: RwLock::new(HashMap::new()),
                tombstones: Mutex::new(HashMap::new()),
                segments,
                total_bytes: AtomicU64::new(0),
                next_id: AtomicU64::new(1),
                clock_anchor: (instant, wall),
            }),
        }
    }

    pub fn config(&self) -> &EdgeConfig {
        &self.inner.config
    }

    fn wall(&self, at: Instant) -> SystemTime {
        let (i0, w0) = self.inner.clock_anchor;
        if at >= i0 {
            w0 + (at - i0)
        } else {
            w0.checked_sub(i0 - at).unwrap_or(SystemTime::UNIX_EPOCH)
        }
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

    /// A publisher starts on `app/stream`.
    ///
    /// An existing playlist (live, in grace, or ended but not yet removed) continues: ENDLIST is
    /// dropped, the next segment carries `#EXT-X-DISCONTINUITY`, TARGETDURATION stays pinned and
    /// media sequence numbers go on. A removed (or never seen) name starts a new playlist life,
    /// still continuing the media sequence numbers of a previous life of the same URL.
    /// A still-attached previous handle is detached (its pushes are ignored).
    pub fn begin_publish(
        &self,
        app: &str,
        stream: &str,
        info: StreamInfo,
    ) -> Result<StreamHandle, EdgeError> {
        if !is_valid_name(app) || !is_valid_name(stream) {
            return Err(EdgeError::InvalidStreamName);
        }
        let at = now();
        let wall = self.wall(at);
        let key = stream_key(app, stream);
        let mut map = self
            .inner
            .streams
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let existing = map.get(&key).cloned();
        let is_active = |e: &StreamEntry| lock(&e.core).state().is_some();
        if !existing.as_deref().is_some_and(is_active) {
            let active = map.values().filter(|e| is_active(e)).count();
            if active >= self.inner.config.max_streams {
                return Err(EdgeError::TooManyStreams {
                    max_streams: self.inner.config.max_streams,
                });
            }
        }
        let (entry, epoch) = match existing {
            Some(entry) => {
                let epoch = lock(&entry.core).begin(info, wall);
                (entry, epoch)
            }
            None => {
                let continuation = lock(&self.inner.tombstones)
                    .remove(&key)
                    .map(|t| t.continuation)
                    .unwrap_or_default();
                let core = StreamCore::new(continuation, info);
                let epoch = core.publish_epoch;
                let entry = Arc::new(StreamEntry {
                    id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
                    app: app.into(),
                    stream: stream.into(),
                    core: Mutex::new(core),
                });
                map.insert(key, entry.clone());
                (entry, epoch)
            }
        };
        drop(map);
        Ok(StreamHandle {
            store: self.clone(),
            entry,
            epoch,
            ended: false,
        })
    }

    /// Every playlist that is live, in grace or ended (not removed ones).
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

    /// Bytes of segment bodies held, all streams.
    pub fn bytes_held(&self) -> u64 {
        self.inner.total_bytes.load(Ordering::Relaxed)
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
                Store { inner }.tick(tokio::time::Instant::now().into_std());
            }
        })
    }

    /// Graceful shutdown: every live or in-grace playlist gets `#EXT-X-ENDLIST` now and its
    /// publisher is detached. The ended retention then runs as usual.
    pub fn end_all(&self) {
        self.end_all_at(now());
    }

    /// [`Store::end_all`] at a given time.
    pub fn end_all_at(&self, at: Instant) {
        let wall = self.wall(at);
        for e in self.entries() {
            lock(&e.core).end_now(at, wall);
        }
    }

    /// One janitor pass at time `at`.
    pub fn tick(&self, at: Instant) {
        let wall = self.wall(at);
        let mut removable = Vec::new();
        for e in self.entries() {
            let (dropped, gone, held) = {
                let mut core = lock(&e.core);
                let (dropped, gone) = core.tick(at, wall, &self.inner.config);
                self.release(e.id, &dropped);
                (dropped, gone, core.bytes_held)
            };
            if !dropped.is_empty() {
                set_stream_gauge(&e, held);
            }
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
                drop(core);
                map.remove(&key);
                lock(&self.inner.tombstones).insert(
                    key,
                    Tombstone {
                        continuation,
                        removed_at: at,
                    },
                );
                set_stream_gauge(&e, 0);
            }
        }
        self.prune_tombstones(at);
        self.inner.segments.run_pending_tasks();
    }

    /// Tombstones only matter while a CDN may still cache old segments; keep them that long,
    /// and never more than a few times `max_streams`.
    fn prune_tombstones(&self, at: Instant) {
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

    fn release(&self, id: u64, dropped: &[Dropped]) {
        if dropped.is_empty() {
            return;
        }
        let mut bytes = 0;
        for d in dropped {
            self.inner.segments.invalidate(&(id, d.media_sequence));
            bytes += d.len_bytes;
        }
        let total = self.inner.total_bytes.fetch_sub(bytes, Ordering::Relaxed) - bytes;
        metrics::gauge!("sluice_edge_bytes_held").set(total as f64);
    }

    /// Brings the total back under `max_bytes_total`: bodies already out of a playlist go
    /// first (earliest expiry first), then the oldest listed segments of any stream (never a
    /// stream's newest one).
    ///
    /// Called with `reserve_bytes` before a body is inserted so that moka never has to evict on
    /// its own (it would pick by recency, not by our rules), and with 0 after.
    fn enforce_total_budget(&self, at: Instant, reserve_bytes: u64) {
        let wall = self.wall(at);
        let max = self.inner.config.max_bytes_total;
        for _ in 0..100_000 {
            if self.bytes_held().saturating_add(reserve_bytes) <= max {
                return;
            }
            let victim = self
                .entries()
                .into_iter()
                .filter_map(|e| {
                    let c = lock(&e.core).eviction_candidate()?;
                    Some((c, e))
                })
                .min_by_key(|(c, _)| *c);
            let Some((_, e)) = victim else { return };
            let held = {
                let mut core = lock(&e.core);
                let Some(d) = core.drop_oldest_and_render(wall) else {
                    continue;
                };
                self.release(e.id, &[d]);
                core.bytes_held
            };
            set_stream_gauge(&e, held);
        }
    }

    pub(crate) fn playlist(&self, app: &str, stream: &str) -> Option<Arc<RenderedPlaylist>> {
        let e = self.entry(app, stream)?;
        let rendered = lock(&e.core).rendered();
        rendered
    }

    pub(crate) fn segment(
        &self,
        app: &str,
        stream: &str,
        media_sequence: u64,
    ) -> Option<Arc<SegmentBody>> {
        let e = self.entry(app, stream)?;
        self.inner.segments.get(&(e.id, media_sequence))
    }
}

fn set_stream_gauge(e: &StreamEntry, bytes: u64) {
    metrics::gauge!("sluice_stream_bytes_held", "app" => e.app.to_string(), "stream" => e.stream.to_string())
        .set(bytes as f64);
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

    /// Playlist TARGETDURATION pinned for this playlist's life, if a previous publish already
    /// fixed it (the producer must then cut for it).
    pub fn target_duration_s(&self) -> Option<u32> {
        lock(&self.entry.core).target_duration_s()
    }

    /// Lists a complete segment. Never waits on HTTP clients.
    pub fn push_segment(&self, segment: NewSegment) {
        self.push_segment_at(segment, now());
    }

    /// [`StreamHandle::push_segment`] at a given time.
    pub fn push_segment_at(&self, mut segment: NewSegment, at: Instant) {
        let store = &self.store;
        let wall = store.wall(at);
        let len_bytes: u64 = segment.chunks.iter().map(|c| c.len() as u64).sum();
        if !lock(&self.entry.core).accepts(self.epoch) {
            return;
        }
        if store.bytes_held().saturating_add(len_bytes) > store.inner.config.max_bytes_total {
            store.enforce_total_budget(at, len_bytes);
        }
        let held = {
            let mut core = lock(&self.entry.core);
            let Some((seq, dropped)) = core.push(
                self.epoch,
                &segment,
                len_bytes,
                at,
                wall,
                &store.inner.config,
            ) else {
                return;
            };
            // Room first (the per-stream drops), then the new body; stored before the lock is
            // released, so a request only sees the new playlist once the body is downloadable.
            store.release(self.entry.id, &dropped);
            let etag = core.segment_etag(seq);
            let hv = |s: &str| {
                http::HeaderValue::from_str(s)
                    .unwrap_or_else(|_| http::HeaderValue::from_static(""))
            };
            let body = SegmentBody {
                chunks: std::mem::take(&mut segment.chunks),
                len_bytes,
                etag_value: hv(&etag),
                last_modified_value: hv(&httpdate::fmt_http_date(wall)),
                etag,
                last_modified: wall,
            };
            store
                .inner
                .segments
                .insert((self.entry.id, seq), Arc::new(body));
            store
                .inner
                .total_bytes
                .fetch_add(len_bytes, Ordering::Relaxed);
            core.bytes_held
        };
        set_stream_gauge(&self.entry, held);
        metrics::gauge!("sluice_edge_bytes_held").set(store.bytes_held() as f64);
        if store.bytes_held() > store.inner.config.max_bytes_total {
            // Only when the reservation above could not free enough (e.g. the pushing stream's
            // own previous segment was the only candidate).
            store.enforce_total_budget(at, 0);
        }
    }

    /// Replaces the stream description shown by the API.
    pub fn update_info(&self, info: StreamInfo) {
        let mut core = lock(&self.entry.core);
        if core.publish_epoch == self.epoch {
            core.info = info;
        }
    }

    /// The publisher left: the grace period starts.
    pub fn end(self) {
        self.end_at(now());
    }

    /// [`StreamHandle::end`] at a given time.
    pub fn end_at(mut self, at: Instant) {
        self.ended = true;
        lock(&self.entry.core).end(self.epoch, at);
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        if !self.ended {
            lock(&self.entry.core).end(self.epoch, now());
        }
    }
}
