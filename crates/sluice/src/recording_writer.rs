//! The recording/DVR writer thread: the only code that writes recordings and DVR windows to
//! disk (see `recording`). Per stream it keeps the open logs of the current publish life, writes
//! each segment (data, then journal record, each synced), applies the DVR window and disk cap,
//! closes recordings when the grace period passes, applies retention and sends
//! `on_record_done`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use archive::{Container, Index, LogWriter, Meta};
use bytes::Bytes;

use crate::config::Config;
use crate::pipeline::unix_ms;
use crate::recording::{DeleteOutcome, Job, Recording, SegmentJob, Shared};

/// One open log on the writer thread.
struct OpenLog {
    writer: LogWriter,
    index: Arc<RwLock<Index>>,
    /// The last init segment written per container and its number.
    last_init: [Option<(Bytes, u64)>; 2],
    failed: bool,
}

impl OpenLog {
    fn create(dir: &Path, meta: Meta) -> archive::error::Result<OpenLog> {
        let (writer, index) = LogWriter::create(dir, meta)?;
        Ok(OpenLog {
            writer,
            index: Arc::new(RwLock::new(index)),
            last_init: [None, None],
            failed: false,
        })
    }

    fn write(&mut self, seg: &SegmentJob) -> archive::error::Result<()> {
        let ci = seg.container.index();
        let init = match &seg.init {
            None => None,
            Some(b) => match &self.last_init[ci] {
                Some((old, n)) if old == b => Some(*n),
                _ => {
                    let (n, len) = self
                        .writer
                        .append_init(seg.container, std::slice::from_ref(b))?;
                    self.index
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_init(n, len);
                    self.last_init[ci] = Some((b.clone(), n));
                    Some(n)
                }
            },
        };
        let e = self.writer.append_segment(
            seg.container,
            &seg.parts,
            seg.duration_90k,
            seg.wall_unix_ms,
            seg.discontinuity,
            seg.independent,
            init,
        )?;
        self.index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(e);
        Ok(())
    }

    fn close(&mut self, at_ms: u64) {
        if let Err(e) = self.writer.close(at_ms) {
            tracing::warn!(dir = %self.writer.dir().display(), error = %e, "end record not written (recovery closes the log at start)");
        }
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        if index.closed_unix_ms.is_none() {
            index.closed_unix_ms = Some(at_ms);
        }
    }
}

struct LiveLogs {
    rec: Option<OpenLog>,
    dvr: Option<OpenLog>,
    ended_at_ms: Option<u64>,
}

pub(crate) struct Writer {
    cfg: Arc<Config>,
    shared: Arc<Shared>,
    queued_bytes: Arc<AtomicU64>,
    rec_dir: PathBuf,
    dvr_dir: PathBuf,
    live: HashMap<(String, String), LiveLogs>,
    /// DVR windows of streams whose publish life is over, kept (with `#EXT-X-ENDLIST`) until
    /// `hls.dvr_keep_after_end_s` after the publish ended: (log, release time).
    ended_dvr: HashMap<(String, String), (OpenLog, u64)>,
    dvr_bytes: u64,
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    last_retention_ms: u64,
}

impl Writer {
    pub(crate) fn new(
        cfg: Arc<Config>,
        shared: Arc<Shared>,
        queued_bytes: Arc<AtomicU64>,
        rec_dir: PathBuf,
        dvr_dir: PathBuf,
        client: reqwest::Client,
    ) -> Self {
        Writer {
            cfg,
            shared,
            queued_bytes,
            rec_dir,
            dvr_dir,
            live: HashMap::new(),
            ended_dvr: HashMap::new(),
            dvr_bytes: 0,
            client,
            runtime: tokio::runtime::Handle::current(),
            last_retention_ms: 0,
        }
    }

    pub(crate) fn run(&mut self, rx: mpsc::Receiver<Job>) {
        loop {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(job) => self.handle(job),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            self.housekeeping(unix_ms());
        }
        let now = unix_ms();
        for (_, mut l) in self.live.drain() {
            if let Some(r) = l.rec.as_mut() {
                r.close(now);
            }
        }
    }

    fn handle(&mut self, job: Job) {
        match job {
            Job::Begin { key, at_ms } => self.begin(key, at_ms),
            Job::Segment { key, seg, bytes } => {
                self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
                self.segment(&key, &seg);
            }
            Job::End { key, at_ms } => {
                if let Some(l) = self.live.get_mut(&key) {
                    l.ended_at_ms = Some(at_ms);
                    if let Some(d) = &l.dvr {
                        // dvr.m3u8 ends (§4.4.3.4 ENDLIST) until a reconnect continues it.
                        d.index
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .closed_unix_ms = Some(at_ms);
                    }
                }
            }
            Job::Fail { key, reason } => {
                if let Some(rec) = self.live.get_mut(&key).and_then(|l| l.rec.as_mut()) {
                    rec.failed = true;
                    rec.close(unix_ms());
                    tracing::warn!(app = %key.0, stream = %key.1, reason, "recording closed early");
                }
            }
            Job::Delete { id, reply } => {
                let _ = reply.send(self.delete(&id));
            }
            Job::Shutdown { reply } => {
                let now = unix_ms();
                let keys: Vec<_> = self.live.keys().cloned().collect();
                for k in keys {
                    self.finish(&k, now);
                }
                let _ = reply.send(());
            }
        }
    }

    fn begin(&mut self, key: (String, String), at_ms: u64) {
        let grace = self.cfg.hls.grace_period_ms;
        if let Some(l) = self.live.get_mut(&key) {
            let continues = l
                .ended_at_ms
                .is_none_or(|t| at_ms.saturating_sub(t) <= grace);
            if continues {
                l.ended_at_ms = None;
                for log in [l.rec.as_mut(), l.dvr.as_mut()].into_iter().flatten() {
                    log.writer.mark_discontinuity();
                }
                if let Some(d) = &l.dvr {
                    d.index
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .closed_unix_ms = None;
                }
                return;
            }
            self.finish(&key, at_ms);
        }
        // A new publish life replaces the ended window the last one left.
        if let Some((old, _)) = self.ended_dvr.remove(&key) {
            self.release_dvr(&key, old);
        }
        let (app, stream) = (&key.0, &key.1);
        let id = format!("{app}-{stream}-{at_ms}");
        let meta = Meta {
            id: id.clone(),
            app: app.clone(),
            stream: stream.clone(),
            created_unix_ms: at_ms,
        };
        let rc = &self.cfg.recording;
        let rec = (rc.enabled && (rc.apps.is_empty() || rc.apps.iter().any(|a| a == app)))
            .then(
                || match OpenLog::create(&self.rec_dir.join(&id), meta.clone()) {
                    Ok(log) => {
                        self.shared
                            .recordings
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(
                                id.clone(),
                                Recording {
                                    index: log.index.clone(),
                                },
                            );
                        tracing::info!(%app, %stream, %id, "recording started");
                        Some(log)
                    }
                    Err(e) => {
                        metrics::counter!("sluice_recording_errors_total", "reason" => e.label())
                            .increment(1);
                        tracing::error!(%app, %stream, error = %e, "recording not started");
                        None
                    }
                },
            )
            .flatten();
        let dvr = (self.cfg.hls.dvr_window_s_for(app) > 0)
            .then(|| match OpenLog::create(&self.dvr_dir.join(&id), meta) {
                Ok(log) => {
                    self.shared
                        .dvr
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key.clone(), log.index.clone());
                    Some(log)
                }
                Err(e) => {
                    metrics::counter!("sluice_dvr_errors_total", "reason" => e.label())
                        .increment(1);
                    tracing::error!(%app, %stream, error = %e, "DVR window not started");
                    None
                }
            })
            .flatten();
        self.live.insert(
            key,
            LiveLogs {
                rec,
                dvr,
                ended_at_ms: None,
            },
        );
    }

    fn segment(&mut self, key: &(String, String), seg: &SegmentJob) {
        let Some(l) = self.live.get_mut(key) else {
            return;
        };
        if let Some(rec) = l.rec.as_mut().filter(|r| !r.failed) {
            match rec.write(seg) {
                Ok(()) => {
                    let n: u64 = seg.parts.iter().map(|b| b.len() as u64).sum();
                    metrics::counter!("sluice_recording_bytes_written_total").increment(n);
                }
                Err(e) => {
                    metrics::counter!("sluice_recording_errors_total", "reason" => e.label())
                        .increment(1);
                    tracing::error!(app = %key.0, stream = %key.1, error = %e,
                        "recording stopped: disk error; the live stream continues");
                    rec.failed = true;
                    rec.close(unix_ms());
                }
            }
        }
        let mut evict_window = false;
        if let Some(dvr) = l.dvr.as_mut().filter(|r| !r.failed) {
            let before = dvr.index.read().unwrap_or_else(|e| e.into_inner()).bytes();
            match dvr.write(seg) {
                Ok(()) => evict_window = true,
                Err(e) => {
                    metrics::counter!("sluice_dvr_errors_total", "reason" => e.label())
                        .increment(1);
                    tracing::error!(app = %key.0, stream = %key.1, error = %e,
                        "DVR window stopped: disk error; the live stream continues");
                    dvr.failed = true;
                }
            }
            let after = dvr.index.read().unwrap_or_else(|e| e.into_inner()).bytes();
            self.dvr_bytes += after.saturating_sub(before);
        }
        if evict_window {
            self.evict_dvr_window(key);
            self.evict_dvr_cap();
        }
    }

    /// The oldest segments leave the window while the rest still cover the app's DVR window
    /// (`hls.dvr_window_s`, `hls.dvr_window_s_by_app`) of media (per container; media time, so
    /// a publisher faster than real time is windowed the same).
    fn evict_dvr_window(&mut self, key: &(String, String)) {
        let window_90k = self.cfg.hls.dvr_window_s_for(&key.0) * 90_000;
        let Some(dvr) = self.live.get(key).and_then(|l| l.dvr.as_ref()) else {
            return;
        };
        let mut index = dvr.index.write().unwrap_or_else(|e| e.into_inner());
        let mut freed_total = 0;
        for c in Container::ALL {
            while let Some(front) = index.segments(c).front().copied() {
                if index.listed_90k(c).saturating_sub(front.duration_90k) < window_90k {
                    break;
                }
                let Some((files, freed)) = index.evict_front(c) else {
                    break;
                };
                remove_files(&index.dir, &files);
                freed_total += freed;
            }
        }
        let stream_bytes = index.bytes();
        drop(index);
        metrics::gauge!("sluice_dvr_stream_bytes", "app" => key.0.clone(), "stream" => key.1.clone())
            .set(stream_bytes as f64);
        if freed_total > 0 {
            self.dvr_bytes = self.dvr_bytes.saturating_sub(freed_total);
            metrics::counter!("sluice_dvr_evicted_bytes_total", "reason" => "window")
                .increment(freed_total);
        }
        metrics::gauge!("sluice_dvr_bytes_on_disk").set(self.dvr_bytes as f64);
    }

    /// Beyond `hls.dvr_max_bytes_total`, the oldest DVR data of any stream goes first.
    fn evict_dvr_cap(&mut self) {
        let cap = self.cfg.hls.dvr_max_bytes_total;
        while self.dvr_bytes > cap {
            let live = (self.live.iter()).filter_map(|(k, l)| Some((k, l.dvr.as_ref()?, false)));
            let ended = (self.ended_dvr.iter()).map(|(k, (d, _))| (k, d, true));
            let victim =
                archive::retention::dvr_victim(live.chain(ended).filter_map(|(k, d, e)| {
                    let i = d.index.read().unwrap_or_else(|e| e.into_inner());
                    // The newest segment of a stream stays listed.
                    let n: usize = Container::ALL.iter().map(|c| i.segments(*c).len()).sum();
                    (n > 1).then(|| ((k.clone(), e), i.oldest_wall_unix_ms()))
                }));
            let Some((k, ended)) = victim else { break };
            let d = if ended {
                self.ended_dvr.get(&k).map(|(d, _)| d)
            } else {
                self.live.get(&k).and_then(|l| l.dvr.as_ref())
            };
            let Some(d) = d else {
                break;
            };
            let mut index = d.index.write().unwrap_or_else(|e| e.into_inner());
            let Some((files, freed)) = index.evict_oldest() else {
                break;
            };
            remove_files(&index.dir, &files);
            self.dvr_bytes = self.dvr_bytes.saturating_sub(freed);
            metrics::counter!("sluice_dvr_evicted_bytes_total", "reason" => "disk_cap")
                .increment(freed);
        }
    }

    /// Closes the recording and ends the DVR window of a publish life that is over.
    fn finish(&mut self, key: &(String, String), now: u64) {
        let Some(mut l) = self.live.remove(key) else {
            return;
        };
        if let Some(mut rec) = l.rec.take() {
            rec.close(l.ended_at_ms.unwrap_or(now));
            let index = rec.index.read().unwrap_or_else(|e| e.into_inner()).clone();
            tracing::info!(app = %key.0, stream = %key.1, id = %index.meta.id,
                duration_s = index.duration_90k() as f64 / 90_000.0, "recording complete");
            self.notify_done(&index);
        }
        if let Some(dvr) = l.dvr.take() {
            let ended_at = l.ended_at_ms.unwrap_or(now);
            dvr.index
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .closed_unix_ms = Some(ended_at);
            let release_at = ended_at.saturating_add(self.cfg.hls.dvr_keep_after_end_s * 1000);
            if release_at > now {
                self.ended_dvr.insert(key.clone(), (dvr, release_at));
            } else {
                self.release_dvr(key, dvr);
            }
        }
    }

    /// Frees an ended DVR window: its files, its bytes, its playlist.
    fn release_dvr(&mut self, key: &(String, String), dvr: OpenLog) {
        let index = dvr.index.read().unwrap_or_else(|e| e.into_inner());
        let freed = index.bytes();
        self.dvr_bytes = self.dvr_bytes.saturating_sub(freed);
        if let Err(e) = std::fs::remove_dir_all(&index.dir) {
            tracing::warn!(dir = %index.dir.display(), error = %e, "DVR directory not removed");
        }
        drop(index);
        let mut map = self.shared.dvr.write().unwrap_or_else(|e| e.into_inner());
        if map.get(key).is_some_and(|i| Arc::ptr_eq(i, &dvr.index)) {
            map.remove(key);
        }
        drop(map);
        tracing::info!(app = %key.0, stream = %key.1, freed_bytes = freed, "DVR window released");
        metrics::counter!("sluice_dvr_evicted_bytes_total", "reason" => "ended").increment(freed);
        metrics::gauge!("sluice_dvr_stream_bytes", "app" => key.0.clone(), "stream" => key.1.clone())
            .set(0.0);
        metrics::gauge!("sluice_dvr_bytes_on_disk").set(self.dvr_bytes as f64);
    }

    fn housekeeping(&mut self, now: u64) {
        let grace = self.cfg.hls.grace_period_ms;
        let over: Vec<(String, String)> = (self.live.iter())
            .filter(|(_, l)| l.ended_at_ms.is_some_and(|t| now.saturating_sub(t) > grace))
            .map(|(k, _)| k.clone())
            .collect();
        for k in over {
            self.finish(&k, now);
        }
        let released: Vec<(String, String)> = (self.ended_dvr.iter())
            .filter(|(_, (_, at))| *at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in released {
            if let Some((d, _)) = self.ended_dvr.remove(&k) {
                self.release_dvr(&k, d);
            }
        }
        if now.saturating_sub(self.last_retention_ms) >= 10_000 {
            self.last_retention_ms = now;
            self.retention(now);
        }
    }

    fn retention(&mut self, now: u64) {
        let rc = &self.cfg.recording;
        let recs = self
            .shared
            .recordings
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let mut closed = Vec::new();
        let mut open_bytes = 0;
        for (id, r) in recs.iter() {
            let i = r.index.read().unwrap_or_else(|e| e.into_inner());
            match i.closed_unix_ms {
                Some(t) => closed.push(archive::retention::RecordingAge {
                    id: id.clone(),
                    closed_unix_ms: t,
                    bytes: i.bytes(),
                }),
                None => open_bytes += i.bytes(),
            }
        }
        let total: u64 = open_bytes + closed.iter().map(|c| c.bytes).sum::<u64>();
        metrics::gauge!("sluice_recordings_bytes_on_disk").set(total as f64);
        drop(recs);
        let victims = archive::retention::recordings_to_delete(
            &closed,
            open_bytes,
            now,
            rc.max_age_s.saturating_mul(1000),
            rc.max_bytes_total,
        );
        for id in victims {
            tracing::info!(%id, "recording deleted by retention (recording.max_age_s / max_bytes_total)");
            metrics::counter!("sluice_recordings_deleted_total", "reason" => "retention")
                .increment(1);
            self.delete(&id);
        }
    }

    fn delete(&mut self, id: &str) -> DeleteOutcome {
        let mut recs = self
            .shared
            .recordings
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let Some(r) = recs.get(id) else {
            return DeleteOutcome::NotFound;
        };
        let dir = {
            let i = r.index.read().unwrap_or_else(|e| e.into_inner());
            if i.closed_unix_ms.is_none() {
                return DeleteOutcome::StillRecording;
            }
            i.dir.clone()
        };
        recs.remove(id);
        drop(recs);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(%id, dir = %dir.display(), error = %e, "recording directory not removed");
        }
        DeleteOutcome::Deleted
    }

    fn notify_done(&self, index: &Index) {
        let url = self.cfg.recording.on_record_done_url.clone();
        if url.is_empty() {
            return;
        }
        let body = serde_json::json!({
            "action": "record_done",
            "id": index.meta.id,
            "app": index.meta.app,
            "stream": index.meta.stream,
            "duration_s": index.duration_90k() as f64 / 90_000.0,
            "bytes": index.bytes(),
            "playlist": format!("/recordings/{}/index.m3u8", index.meta.id),
            "download": format!("/recordings/{}/download.mp4", index.meta.id),
            "dir": index.dir.display().to_string(),
        });
        let client = self.client.clone();
        let id = index.meta.id.clone();
        self.runtime.spawn(async move {
            match client.post(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    tracing::warn!(%id, status = %r.status(), "on_record_done webhook refused")
                }
                Err(e) => tracing::warn!(%id, error = %e, "on_record_done webhook failed"),
            }
        });
    }
}

fn remove_files(dir: &Path, files: &[String]) {
    for f in files {
        let _ = std::fs::remove_file(dir.join(f));
    }
}
