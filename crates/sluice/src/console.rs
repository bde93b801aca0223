//! The operator console's data: a one-second sampler that keeps a short history per stream (ring
//! buffers bounded by `http.console_history_seconds`) and derives health warnings, served as
//! `GET /api/streams/{app}/{stream}/history` and as a server-sent events feed at `/api/events`
//! (HTML Living Standard §9.2 "Server-sent events", `text/event-stream`).
//!
//! The sampler reads the same numbers the API and `/metrics` show (the publisher's [`LiveStats`]
//! and the edge's `StreamSummary`) once a second; nothing here runs per tag. Viewer counts come
//! from playlist requests, counted only for streams the sampler knows (a bounded map: request
//! paths of unknown streams add nothing).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::pipeline::{unix_ms, App, LiveStats};

/// Sampling interval of the history and the event feed.
pub const SAMPLE_INTERVAL_MS: u64 = 1000;
/// Warning events kept per stream (the newest).
const MAX_WARNINGS: usize = 32;
/// Samples the viewer rate is averaged over (players poll about once per target duration, so a
/// one-second rate would flicker between 0 and a burst).
const REQUEST_WINDOW_SAMPLES: usize = 10;
/// A/V timestamp skew above which a stream is flagged.
const AV_SKEW_WARN_MS: i64 = 1000;

/// One second of one stream.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Sample {
    pub unix_ms: u64,
    /// Ingest bitrate over the last interval (FLV payload bytes).
    pub bitrate_bps: u64,
    /// Video frames per second over the last interval.
    pub frame_rate: f64,
    /// Last measured keyframe interval.
    pub gop_ms: Option<u32>,
    /// Newest video timestamp minus newest audio timestamp; positive: video ahead.
    pub av_skew_ms: Option<i64>,
    /// Duration of the newest segment.
    pub segment_duration_ms: Option<u64>,
    /// Playlist requests per second over the last ten samples (HLS viewers poll about once per
    /// target duration).
    pub playlist_requests_per_s: f64,
    /// Players estimated from playlist requests: requests per second x target duration.
    pub players_estimate: f64,
    /// Segment bytes the edge holds for this stream.
    pub bytes_held: u64,
    pub publishing: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Warning {
    pub unix_ms: u64,
    /// `gop_exceeds_target`, `timestamp_jump`, `dropped_frames`, `publisher_reconnect`,
    /// `av_skew`.
    pub kind: &'static str,
    pub message: String,
}

/// What `/history` returns and what each event carries per stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamView {
    pub app: String,
    pub stream: String,
    pub target_duration_ms: u64,
    pub interval_ms: u64,
    /// `ok` or `warning` (any active warning).
    pub health: &'static str,
    /// Conditions true now (e.g. the GOP is longer than the target).
    pub active: Vec<Warning>,
    /// The newest warning events, oldest first.
    pub warnings: Vec<Warning>,
    pub publishes: u64,
    pub reconnects: u64,
    pub samples: Vec<Sample>,
}

#[derive(Default)]
struct Prev {
    at_ms: u64,
    publish_started_unix_ms: u64,
    bytes_received: u64,
    video_frames: u64,
    timestamp_jumps: u64,
    dropped_frames: u64,
}

#[derive(Default)]
struct History {
    samples: VecDeque<Sample>,
    warnings: VecDeque<Warning>,
    active: Vec<Warning>,
    prev: Option<Prev>,
    /// (unix_ms, playlist requests so far) of the last samples, for the viewer rate.
    requests: VecDeque<(u64, u64)>,
    publishes: u64,
    reconnects: u64,
}

struct Inner {
    target_duration_ms: u64,
    history_len: usize,
    max_subscribers: usize,
    streams: Mutex<HashMap<(String, String), History>>,
    /// "app/stream" -> playlist requests, for the streams the sampler knows.
    playlist_requests: RwLock<HashMap<String, AtomicU64>>,
    events: broadcast::Sender<Arc<str>>,
    subscribers: AtomicUsize,
}

/// Shared handle; cheap to clone.
#[derive(Clone)]
pub struct Console(Arc<Inner>);

/// The process's console, for the playlist-request hook on the HTTP fast path.
static CURRENT: OnceLock<Console> = OnceLock::new();

impl Console {
    pub fn new(target_duration_ms: u64, history_seconds: u64, max_subscribers: usize) -> Self {
        let (events, _) = broadcast::channel(4);
        Console(Arc::new(Inner {
            target_duration_ms,
            history_len: (history_seconds * 1000 / SAMPLE_INTERVAL_MS).max(1) as usize,
            max_subscribers,
            streams: Mutex::new(HashMap::new()),
            playlist_requests: RwLock::new(HashMap::new()),
            events,
            subscribers: AtomicUsize::new(0),
        }))
    }

    /// Starts the one-second sampler on the current runtime and makes this console the one
    /// [`note_request`] counts for.
    pub fn spawn_sampler(&self, app: Arc<App>) {
        let _ = CURRENT.set(self.clone());
        let console = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(SAMPLE_INTERVAL_MS));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let live = app.live_stats();
                let edge = app.store.streams();
                record_process_memory();
                console.sample(unix_ms(), &live, &edge);
            }
        });
    }

    /// Counts a playlist request of a known stream (`path` is `/app/stream/file.m3u8`).
    pub fn count_request(&self, path: &str) {
        let Some(rest) = path.strip_prefix('/') else {
            return;
        };
        let Some((key, file)) = rest.rsplit_once('/') else {
            return;
        };
        if !file.ends_with(".m3u8") {
            return;
        }
        let map = self
            .0
            .playlist_requests
            .read()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get(key) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes one sample of every stream (the sampler calls this each second; tests call it
    /// with their own clock).
    pub fn sample(&self, now_ms: u64, live: &[LiveStats], edge: &[hls_edge::StreamSummary]) {
        let i = &*self.0;
        let live_by: HashMap<(&str, &str), &LiveStats> = live
            .iter()
            .map(|l| ((l.app.as_str(), l.stream.as_str()), l))
            .collect();
        let mut streams = i.streams.lock().unwrap_or_else(|e| e.into_inner());
        // Streams the edge no longer has are forgotten; live publishers and edge streams are kept.
        let mut keep: Vec<(String, String)> = edge
            .iter()
            .map(|e| (e.app.clone(), e.stream.clone()))
            .collect();
        keep.extend(live.iter().map(|l| (l.app.clone(), l.stream.clone())));
        keep.sort();
        keep.dedup();
        streams.retain(|k, _| keep.contains(k));
        let requests = {
            let mut map = i
                .playlist_requests
                .write()
                .unwrap_or_else(|e| e.into_inner());
            map.retain(|k, _| {
                k.split_once('/')
                    .is_some_and(|(a, s)| keep.iter().any(|(ka, ks)| ka == a && ks == s))
            });
            for (a, s) in &keep {
                map.entry(format!("{a}/{s}"))
                    .or_insert_with(|| AtomicU64::new(0));
            }
            map.iter()
                .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
                .collect::<HashMap<_, _>>()
        };
        let edge_by: HashMap<(&str, &str), &hls_edge::StreamSummary> = edge
            .iter()
            .map(|e| ((e.app.as_str(), e.stream.as_str()), e))
            .collect();
        for (app, stream) in keep {
            let key = (app.as_str(), stream.as_str());
            let l = live_by.get(&key).copied();
            let e = edge_by.get(&key).copied();
            let target_ms = e
                .and_then(|e| e.target_duration_s)
                .map(|s| u64::from(s) * 1000)
                .unwrap_or(i.target_duration_ms);
            let reqs = requests
                .get(&format!("{app}/{stream}"))
                .copied()
                .unwrap_or(0);
            let h = streams.entry((app.clone(), stream.clone())).or_default();
            h.push(
                now_ms,
                l,
                e,
                target_ms,
                i.target_duration_ms,
                reqs,
                i.history_len,
            );
        }
        let views: Vec<StreamView> = streams
            .iter()
            .map(|((a, s), h)| h.view(a, s, i.target_duration_ms, true))
            .collect();
        drop(streams);
        if i.events.receiver_count() > 0 {
            let body = serde_json::json!({
                "unix_ms": now_ms,
                "resident_memory_bytes": memory_stats::memory_stats().map(|m| m.physical_mem),
                "streams": views,
            });
            let _ = i.events.send(body.to_string().into());
        }
    }

    pub fn history(&self, app: &str, stream: &str) -> Option<StreamView> {
        let streams = self.0.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams
            .get(&(app.to_string(), stream.to_string()))
            .map(|h| h.view(app, stream, self.0.target_duration_ms, false))
    }

    /// The event feed: one `sample` event a second with the newest sample, active warnings and
    /// recent warnings of every stream. `None` when `http.console_max_subscribers` are
    /// connected.
    pub fn subscribe(&self) -> Option<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
        let i = &self.0;
        if i.subscribers.fetch_add(1, Ordering::SeqCst) >= i.max_subscribers {
            i.subscribers.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let guard = SubscriberGuard(self.0.clone());
        let rx = i.events.subscribe();
        let stream = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
            loop {
                match rx.recv().await {
                    Ok(body) => {
                        let ev = Event::default().event("sample").data(&*body);
                        return Some((Ok(ev), (rx, guard)));
                    }
                    // A slow reader skips samples; the next one carries the whole state.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Some(Sse::new(stream).keep_alive(KeepAlive::default()))
    }
}

/// The process's resident memory as `sluice_process_resident_memory_bytes` (the dashboard's
/// memory panel sets it beside `sluice_edge_bytes_held`), sampled on the console's tick.
fn record_process_memory() {
    if let Some(m) = memory_stats::memory_stats() {
        metrics::gauge!("sluice_process_resident_memory_bytes").set(m.physical_mem as f64);
    }
}

/// Counts a playlist request for the process's console, if one runs (called by the HTTP
/// workers before the edge answers an HLS path).
pub fn note_request(path: &str) {
    if let Some(c) = CURRENT.get() {
        c.count_request(path);
    }
}

struct SubscriberGuard(Arc<Inner>);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.subscribers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl History {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        now_ms: u64,
        live: Option<&LiveStats>,
        edge: Option<&hls_edge::StreamSummary>,
        target_ms: u64,
        configured_target_ms: u64,
        playlist_requests: u64,
        history_len: usize,
    ) {
        let prev = self.prev.take().unwrap_or_default();
        let dt_ms = now_ms.saturating_sub(prev.at_ms);
        let per_s = |now: u64, before: u64| -> f64 {
            if prev.at_ms == 0 || dt_ms == 0 {
                0.0
            } else {
                now.saturating_sub(before) as f64 * 1000.0 / dt_ms as f64
            }
        };
        let mut events = Vec::new();
        let mut active = Vec::new();
        let mut next = Prev {
            at_ms: now_ms,
            ..Prev::default()
        };
        let mut sample = Sample {
            unix_ms: now_ms,
            bitrate_bps: 0,
            frame_rate: 0.0,
            gop_ms: None,
            av_skew_ms: None,
            segment_duration_ms: None,
            playlist_requests_per_s: 0.0,
            players_estimate: 0.0,
            bytes_held: edge.map_or(0, |e| e.bytes_held),
            publishing: live.is_some(),
        };
        if self.requests.len() >= REQUEST_WINDOW_SAMPLES {
            self.requests.pop_front();
        }
        self.requests.push_back((now_ms, playlist_requests));
        if let (Some(&(t0, n0)), Some(&(t1, n1))) = (self.requests.front(), self.requests.back()) {
            if t1 > t0 {
                sample.playlist_requests_per_s =
                    (n1.saturating_sub(n0) as f64 * 1000.0 / (t1 - t0) as f64 * 100.0).round()
                        / 100.0;
            }
        }
        sample.players_estimate =
            (sample.playlist_requests_per_s * target_ms as f64 / 1000.0 * 10.0).round() / 10.0;
        if let Some(l) = live {
            let same_publish = prev.publish_started_unix_ms == l.publish_started_unix_ms;
            if !same_publish {
                self.publishes += 1;
                if self.publishes > 1 {
                    self.reconnects += 1;
                    events.push((
                        "publisher_reconnect",
                        format!(
                            "publisher reconnected from {} (publish #{})",
                            l.client_addr, self.publishes
                        ),
                    ));
                }
            }
            // A new publish counts from zero.
            let since = |now: u64, before: u64| {
                if same_publish {
                    now.saturating_sub(before)
                } else {
                    now
                }
            };
            if same_publish {
                sample.bitrate_bps = (per_s(l.bytes_received, prev.bytes_received) * 8.0) as u64;
                sample.frame_rate =
                    (per_s(l.video_frames, prev.video_frames) * 100.0).round() / 100.0;
            }
            sample.gop_ms = l.gop_ms;
            sample.av_skew_ms = match (l.video_timestamp_ms, l.audio_timestamp_ms) {
                (Some(v), Some(a)) => Some(i64::from(v) - i64::from(a)),
                _ => None,
            };
            sample.segment_duration_ms = l.last_segment_duration_ms;
            let jumps = since(l.timestamp_jumps, prev.timestamp_jumps);
            if jumps > 0 {
                events.push((
                    "timestamp_jump",
                    format!("{jumps} timestamp jump(s): a discontinuity was started"),
                ));
            }
            let dropped = since(l.dropped_frames, prev.dropped_frames);
            if dropped > 0 {
                events.push(("dropped_frames", format!("{dropped} frame(s) dropped")));
            }
            next.publish_started_unix_ms = l.publish_started_unix_ms;
            next.bytes_received = l.bytes_received;
            next.video_frames = l.video_frames;
            next.timestamp_jumps = l.timestamp_jumps;
            next.dropped_frames = l.dropped_frames;
            if let Some(gop) = l.gop_ms.filter(|&g| u64::from(g) > configured_target_ms) {
                active.push(Warning {
                    unix_ms: now_ms,
                    kind: "gop_exceeds_target",
                    message: format!(
                        "GOP {:.2} s is longer than the {:.2} s segment target: segments run long; set the encoder's keyframe interval to the target",
                        f64::from(gop) / 1000.0,
                        configured_target_ms as f64 / 1000.0
                    ),
                });
            }
            if let Some(skew) = sample.av_skew_ms.filter(|s| s.abs() > AV_SKEW_WARN_MS) {
                active.push(Warning {
                    unix_ms: now_ms,
                    kind: "av_skew",
                    message: format!("audio and video timestamps are {skew} ms apart"),
                });
            }
        } else {
            // Between publishes: keep the publish identity so a return counts as a reconnect.
            next.publish_started_unix_ms = prev.publish_started_unix_ms;
        }
        for (kind, message) in events {
            self.push_warning(Warning {
                unix_ms: now_ms,
                kind,
                message,
            });
        }
        for a in &active {
            if !self.active.iter().any(|w| w.kind == a.kind) {
                self.push_warning(a.clone());
            }
        }
        self.active = active;
        self.prev = Some(next);
        if self.samples.len() >= history_len {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    fn push_warning(&mut self, w: Warning) {
        if self.warnings.len() >= MAX_WARNINGS {
            self.warnings.pop_front();
        }
        self.warnings.push_back(w);
    }

    fn view(&self, app: &str, stream: &str, target_ms: u64, newest_only: bool) -> StreamView {
        let samples = if newest_only {
            self.samples.back().copied().into_iter().collect()
        } else {
            self.samples.iter().copied().collect()
        };
        StreamView {
            app: app.to_string(),
            stream: stream.to_string(),
            target_duration_ms: target_ms,
            interval_ms: SAMPLE_INTERVAL_MS,
            health: if self.active.is_empty() {
                "ok"
            } else {
                "warning"
            },
            active: self.active.clone(),
            warnings: self.warnings.iter().cloned().collect(),
            publishes: self.publishes,
            reconnects: self.reconnects,
            samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(started: u64, bytes: u64, frames: u64) -> LiveStats {
        LiveStats {
            app: "live".into(),
            stream: "a".into(),
            client_addr: "127.0.0.1:5000".into(),
            publish_started_unix_ms: started,
            bytes_received: bytes,
            video_frames: frames,
            gop_ms: Some(2000),
            video_timestamp_ms: Some(10_040),
            audio_timestamp_ms: Some(10_000),
            last_segment_duration_ms: Some(2000),
            ..LiveStats::default()
        }
    }

    fn kinds(v: &[Warning]) -> Vec<&'static str> {
        v.iter().map(|w| w.kind).collect()
    }

    #[test]
    fn rates_come_from_counter_deltas_and_the_ring_is_bounded() {
        let c = Console::new(2000, 10, 4);
        for i in 0..15u64 {
            c.sample(1_000 * (i + 1), &[live(1, i * 125_000, i * 30)], &[]);
        }
        let h = c.history("live", "a").unwrap();
        assert_eq!(h.samples.len(), 10, "history_seconds bounds the ring");
        let s = h.samples.last().unwrap();
        assert_eq!(s.bitrate_bps, 1_000_000);
        assert_eq!(s.frame_rate, 30.0);
        assert_eq!(s.av_skew_ms, Some(40));
        assert_eq!(s.segment_duration_ms, Some(2000));
        assert!(s.publishing);
        assert_eq!(h.health, "ok");
        assert!(h.warnings.is_empty(), "{:?}", h.warnings);
        assert_eq!((h.publishes, h.reconnects), (1, 0));
        assert!(c.history("live", "other").is_none());
    }

    #[test]
    fn long_gop_is_an_active_warning_and_an_event_once() {
        let c = Console::new(2000, 60, 4);
        let mut l = live(1, 0, 0);
        l.gop_ms = Some(4000);
        for t in 1..=5 {
            c.sample(t * 1000, &[l.clone()], &[]);
        }
        let h = c.history("live", "a").unwrap();
        assert_eq!(h.health, "warning");
        assert_eq!(kinds(&h.active), ["gop_exceeds_target"]);
        assert_eq!(kinds(&h.warnings), ["gop_exceeds_target"], "logged once");
        assert!(
            h.active[0].message.contains("4.00 s"),
            "{}",
            h.active[0].message
        );
        l.gop_ms = Some(2000);
        c.sample(6000, &[l], &[]);
        assert_eq!(c.history("live", "a").unwrap().health, "ok");
    }

    #[test]
    fn jumps_drops_skew_and_reconnects_become_warnings() {
        let c = Console::new(2000, 60, 4);
        c.sample(1000, &[live(1, 0, 0)], &[]);
        let mut l = live(1, 1000, 30);
        l.timestamp_jumps = 1;
        l.dropped_frames = 3;
        l.audio_timestamp_ms = Some(5_000);
        c.sample(2000, &[l.clone()], &[]);
        let h = c.history("live", "a").unwrap();
        assert_eq!(
            kinds(&h.warnings),
            ["timestamp_jump", "dropped_frames", "av_skew"]
        );
        assert_eq!(kinds(&h.active), ["av_skew"]);
        // Unchanged counters add nothing; the publisher leaves and a new publish comes back.
        c.sample(3000, &[l], &[]);
        c.sample(4000, &[], &[]);
        assert!(
            c.history("live", "a").is_none(),
            "forgotten when neither live nor in the edge"
        );
        c.sample(5000, &[live(1, 0, 0)], &[]);
        c.sample(6000, &[live(2, 10, 1)], &[]);
        let h = c.history("live", "a").unwrap();
        assert_eq!((h.publishes, h.reconnects), (2, 1));
        assert_eq!(kinds(&h.warnings), ["publisher_reconnect"]);
        assert_eq!(
            h.samples.last().unwrap().bitrate_bps,
            0,
            "no rate across publishes"
        );
    }

    #[test]
    fn playlist_requests_are_counted_for_known_streams_only() {
        let c = Console::new(2000, 60, 4);
        c.count_request("/live/a/index.m3u8");
        c.sample(1000, &[live(1, 0, 0)], &[]);
        for _ in 0..4 {
            c.count_request("/live/a/index.m3u8");
        }
        c.count_request("/live/a/seg-1.ts");
        c.count_request("/live/nope/index.m3u8");
        c.count_request("no-slash");
        c.sample(3000, &[live(1, 0, 0)], &[]);
        let s = *c.history("live", "a").unwrap().samples.last().unwrap();
        assert_eq!(s.playlist_requests_per_s, 2.0);
        assert_eq!(s.players_estimate, 4.0);
        let map = c.0.playlist_requests.read().unwrap();
        assert_eq!(map.len(), 1, "unknown streams add no entries");
    }

    #[tokio::test]
    async fn the_event_feed_is_capped() {
        let c = Console::new(2000, 60, 1);
        let first = c.subscribe();
        assert!(first.is_some());
        assert!(c.subscribe().is_none(), "over http.console_max_subscribers");
        drop(first);
        assert!(
            c.subscribe().is_some(),
            "a closed subscriber frees its place"
        );
    }
}
