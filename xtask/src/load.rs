//! Load generation for `bench` and `soak`: RTMP publishers that replay a pre-parsed FLV file
//! (paced by its timestamps, or as fast as possible), a player simulator that polls a playlist
//! at a real player's cadence, and a 1 ms playlist poller that timestamps new segments.
//!
//! Each publisher is one thread (plus one that reads and discards server bytes): the file is
//! parsed once and every tag's RTMP body is pre-chunked, so a stream costs a 12-byte header
//! and one `write` per message.
use std::io::{BufWriter, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::BytesMut;

use crate::flv::Media;
use crate::http_client::HttpConn;
use crate::rtmp_client::{self, media_header};

#[derive(Clone)]
pub struct PubConfig {
    pub addr: SocketAddr,
    pub app: String,
    pub stream: String,
    /// Pace by timestamps (real time); false = as fast as the server reads.
    pub paced: bool,
    /// Record (time written, FLV bytes sent before it) for every keyframe.
    pub record_keyframes: bool,
    /// Stop by itself after this long (soak reconnect cycles).
    pub max_duration: Option<Duration>,
}

#[derive(Default)]
pub struct PubStats {
    pub connected: AtomicBool,
    pub finished: AtomicBool,
    /// FLV payload bytes of audio/video tags written.
    pub flv_bytes: AtomicU64,
    pub tags: AtomicU64,
    /// Largest observed lateness behind the timestamp schedule (paced mode).
    pub max_lag_ms: AtomicU64,
    pub lag_ms: AtomicU64,
    pub error: Mutex<Option<String>>,
    /// (when the keyframe was written, FLV payload bytes before it, tags before it).
    pub keyframes: Mutex<Vec<(Instant, u64, u64)>>,
}

pub struct Publisher {
    stop: Arc<AtomicBool>,
    pub stats: Arc<PubStats>,
    join: Option<JoinHandle<()>>,
}

impl Publisher {
    pub fn spawn(media: Arc<Media>, cfg: PubConfig) -> Publisher {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(PubStats::default());
        let (s2, st2) = (stop.clone(), stats.clone());
        let join = std::thread::Builder::new()
            .name(format!("pub-{}", cfg.stream))
            .stack_size(256 * 1024)
            .spawn(move || {
                if let Err(e) = publish_loop(&media, &cfg, &s2, &st2) {
                    *st2.error.lock().unwrap() = Some(format!("{}: {e:#}", cfg.stream));
                }
                st2.finished.store(true, Relaxed);
            })
            .expect("spawn publisher");
        Publisher {
            stop,
            stats,
            join: Some(join),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.stats.finished.load(Relaxed)
    }

    pub fn signal_stop(&self) {
        self.stop.store(true, Relaxed);
    }

    pub fn stop(mut self) -> Arc<PubStats> {
        self.signal_stop();
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
        self.stats.clone()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

fn publish_loop(media: &Media, cfg: &PubConfig, stop: &AtomicBool, stats: &PubStats) -> Result<()> {
    let session = rtmp_client::publish(
        cfg.addr,
        &cfg.app,
        &cfg.stream,
        media.metadata.as_deref(),
        Duration::from_secs(10),
    )?;
    stats.connected.store(true, Relaxed);
    let msid = session.stream_id;
    // Read and discard whatever the server sends (acks, pings, status) so it never blocks on us.
    let mut rd = session.sock.try_clone()?;
    rd.set_read_timeout(None)?;
    let reader = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut buf = [0u8; 4096];
            while matches!(rd.read(&mut buf), Ok(n) if n > 0) {}
        })?;
    session
        .sock
        .set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut w = BufWriter::with_capacity(256 * 1024, session.sock.try_clone()?);
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut tags_sent: u64 = 0;
    let mut scratch = BytesMut::new();
    let result = (|| -> Result<()> {
        'outer: for lap in 0u64.. {
            let base = lap * media.loop_duration_ms as u64;
            for tag in &media.tags {
                if stop.load(Relaxed) || cfg.max_duration.is_some_and(|d| start.elapsed() >= d) {
                    break 'outer;
                }
                let ts64 = base + tag.timestamp_ms as u64;
                if cfg.paced {
                    let due = start + Duration::from_millis(ts64);
                    let now = Instant::now();
                    if due > now {
                        w.flush()?;
                        std::thread::sleep(due - now);
                        stats.lag_ms.store(0, Relaxed);
                    } else {
                        let lag = (now - due).as_millis() as u64;
                        stats.lag_ms.store(lag, Relaxed);
                        stats.max_lag_ms.fetch_max(lag, Relaxed);
                    }
                }
                let ts = ts64 as u32;
                if ts < 0xFF_FFFF {
                    w.write_all(&media_header(
                        tag.csid(),
                        tag.kind,
                        msid,
                        ts,
                        tag.payload.len(),
                    ))?;
                    w.write_all(&tag.chunked)?;
                } else {
                    scratch.clear();
                    rtmp_client::write_message(
                        &mut scratch,
                        tag.csid(),
                        tag.kind,
                        msid,
                        ts,
                        &tag.payload,
                        crate::flv::OUT_CHUNK_SIZE,
                    );
                    w.write_all(&scratch)?;
                }
                if tag.keyframe && cfg.record_keyframes {
                    w.flush()?;
                    stats
                        .keyframes
                        .lock()
                        .unwrap()
                        .push((Instant::now(), sent, tags_sent));
                }
                sent += tag.payload.len() as u64;
                tags_sent += 1;
                stats.flv_bytes.store(sent, Relaxed);
                stats.tags.fetch_add(1, Relaxed);
            }
        }
        w.flush()?;
        Ok(())
    })();
    drop(w);
    session.close();
    let _ = reader.join();
    result
}

/// One media playlist, as much as a player needs.
#[derive(Debug, Default)]
pub struct Playlist {
    pub media_sequence: u64,
    pub segments: Vec<Segment>,
    pub ended: bool,
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub seq: u64,
    pub uri: String,
    pub duration_s: f64,
}

pub fn parse_playlist(text: &str) -> Playlist {
    let mut p = Playlist::default();
    let mut dur = 0.0;
    let mut n = 0;
    for l in text.lines().map(str::trim) {
        if let Some(v) = l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.media_sequence = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = l.strip_prefix("#EXTINF:") {
            dur = v
                .split(',')
                .next()
                .and_then(|d| d.trim().parse().ok())
                .unwrap_or(0.0);
        } else if l == "#EXT-X-ENDLIST" {
            p.ended = true;
        } else if !l.is_empty() && !l.starts_with('#') {
            p.segments.push(Segment {
                seq: p.media_sequence + n,
                uri: l.to_string(),
                duration_s: dur,
            });
            n += 1;
        }
    }
    p
}

/// Resolves a segment URI against the playlist's path (relative, absolute-path or absolute URL).
pub fn resolve(playlist_path: &str, uri: &str) -> String {
    if let Some(rest) = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
    {
        return rest
            .find('/')
            .map(|i| rest[i..].to_string())
            .unwrap_or_else(|| "/".into());
    }
    if uri.starts_with('/') {
        return uri.to_string();
    }
    let dir = playlist_path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    format!("{dir}/{uri}")
}

#[derive(Debug, Default, Clone)]
pub struct PlayerStats {
    pub playlist_fetches: u64,
    /// Non-200 playlist answers or transport errors after the playlist was first seen.
    pub playlist_errors: u64,
    /// 404s before the playlist first appeared (stream starting up; not an error).
    pub waiting_404s: u64,
    pub segments_fetched: u64,
    pub segment_errors: u64,
    /// Media sequence numbers never seen (the window moved past them between polls) or that
    /// could not be fetched.
    pub segments_missing: u64,
    /// The media sequence went backwards (playlist restarted).
    pub sequence_resets: u64,
    pub segment_bytes: u64,
    pub last_error: Option<String>,
}

/// A player: fetches the playlist every `interval` (≈ target duration / 2) and each new
/// segment once, starting three segments from the live edge.
pub fn spawn_player(
    addr: SocketAddr,
    path: String,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> JoinHandle<PlayerStats> {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let mut st = PlayerStats::default();
            let mut http = HttpConn::new(addr);
            let mut last: Option<u64> = None;
            while !stop.load(Relaxed) {
                let t0 = Instant::now();
                st.playlist_fetches += 1;
                match http.get(&path) {
                    Ok(r) if r.status == 200 => {
                        let p = parse_playlist(&String::from_utf8_lossy(&r.body));
                        if let (Some(l), Some(first)) = (last, p.segments.first()) {
                            if p.segments.last().is_some_and(|s| s.seq < l) {
                                st.sequence_resets += 1;
                                last = None;
                            } else if first.seq > l + 1 {
                                st.segments_missing += first.seq - l - 1;
                            }
                        }
                        if last.is_none() && !p.segments.is_empty() {
                            let start = p.segments.len().saturating_sub(3);
                            last = Some(p.segments[start].seq.saturating_sub(1));
                        }
                        for s in &p.segments {
                            if last.is_some_and(|l| s.seq <= l) {
                                continue;
                            }
                            match http.get(&resolve(&path, &s.uri)) {
                                Ok(r) if r.status == 200 => {
                                    st.segments_fetched += 1;
                                    st.segment_bytes += r.body.len() as u64;
                                }
                                Ok(r) => {
                                    st.segment_errors += 1;
                                    st.segments_missing += 1;
                                    st.last_error =
                                        Some(format!("segment {} -> {}", s.uri, r.status));
                                }
                                Err(e) => {
                                    st.segment_errors += 1;
                                    st.segments_missing += 1;
                                    st.last_error = Some(format!("segment {}: {e:#}", s.uri));
                                }
                            }
                            last = Some(s.seq);
                        }
                    }
                    Ok(r) if r.status == 404 && last.is_none() => st.waiting_404s += 1,
                    Ok(r) => {
                        st.playlist_errors += 1;
                        st.last_error = Some(format!("playlist -> {}", r.status));
                    }
                    Err(e) => {
                        st.playlist_errors += 1;
                        st.last_error = Some(format!("playlist: {e:#}"));
                    }
                }
                let spent = t0.elapsed();
                if spent < interval {
                    sleep_unless_stopped(interval - spent, &stop);
                }
            }
            st
        })
        .expect("spawn player")
}

pub fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while !stop.load(Relaxed) {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}

/// A segment the 1 ms poller saw appear.
#[derive(Debug, Clone)]
pub struct Appearance {
    pub seq: u64,
    pub at: Instant,
    pub duration_s: f64,
    pub bytes: Option<u64>,
}

/// Polls the playlist every ~1 ms and records when each new segment is first listed (segments
/// listed in the first answer are skipped: their arrival time is unknown), then fetches it once.
pub fn spawn_latency_poller(
    addr: SocketAddr,
    path: String,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<Appearance>> {
    std::thread::spawn(move || {
        let mut out: Vec<Appearance> = Vec::new();
        let mut http = HttpConn::new(addr);
        let mut last: Option<u64> = None;
        while !stop.load(Relaxed) {
            if let Ok(r) = http.get(&path) {
                let at = Instant::now();
                if r.status == 200 {
                    let p = parse_playlist(&String::from_utf8_lossy(&r.body));
                    match last {
                        None => {
                            last = p
                                .segments
                                .last()
                                .map(|s| s.seq)
                                .or(Some(0))
                                .filter(|_| !p.segments.is_empty())
                        }
                        Some(l) => {
                            for s in p.segments.iter().filter(|s| s.seq > l) {
                                let bytes = http
                                    .get(&resolve(&path, &s.uri))
                                    .ok()
                                    .filter(|r| r.status == 200)
                                    .map(|r| r.body.len() as u64);
                                out.push(Appearance {
                                    seq: s.seq,
                                    at,
                                    duration_s: s.duration_s,
                                    bytes,
                                });
                                last = Some(s.seq);
                            }
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playlist_parsing_and_resolution() {
        let p = parse_playlist("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2.000,\n7.ts\n#EXT-X-PART:DURATION=0.5,URI=\"p.ts\"\n#EXTINF:2.0,\nseg8.ts\n");
        assert_eq!(p.segments.len(), 2);
        assert_eq!((p.segments[1].seq, p.segments[1].duration_s), (8, 2.0));
        assert_eq!(resolve("/live/a/index.m3u8", "7.ts"), "/live/a/7.ts");
        assert_eq!(resolve("/live/a/index.m3u8", "/x/7.ts"), "/x/7.ts");
        assert_eq!(
            resolve("/live/a/index.m3u8", "http://h:1/y/7.ts"),
            "/y/7.ts"
        );
    }
}
