//! Recordings and DVR windows: every completed segment of a publish is handed (its `Bytes`, no
//! copy) through a byte-bounded queue to one writer thread that appends it to the stream's
//! on-disk logs (`archive` crate): the recording (VOD, `recording.*`) and the DVR window
//! (`hls.dvr_window_s`). The ingest path never touches the disk: when the queue is full or the
//! disk fails, the recording stops with an error log and `sluice_recording_errors_total{reason}`,
//! and the live stream goes on.
//!
//! A reconnect within `hls.grace_period_ms` continues the same recording and DVR window with a
//! discontinuity; when the grace period passes the recording is closed (VOD playlist with
//! `#EXT-X-ENDLIST`, `recording.on_record_done_url` notified). At start the recordings directory
//! is scanned and every recording recovered (`archive::recover`): one cut short by a crash is
//! closed at its last complete segment.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use archive::{Container, Index};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::pipeline::unix_ms;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Record every publish (of `apps`, when set).
    pub enabled: bool,
    /// Where recordings live (one directory per recording).
    pub dir: String,
    /// Only these apps are recorded; empty: all.
    pub apps: Vec<String>,
    /// Closed recordings older than this are deleted (0: kept forever).
    pub max_age_s: u64,
    /// Oldest closed recordings are deleted while all take more (0: no cap).
    pub max_bytes_total: u64,
    /// Bytes of segments waiting for the writer; beyond it the recording stops.
    pub queue_max_bytes: u64,
    /// POSTed JSON when a recording is complete (id, duration, paths); empty: none.
    pub on_record_done_url: String,
    /// Samples (video frames plus audio frames) at most in one `download.mp4`; building it
    /// holds about 16 bytes per sample in memory. A longer recording is refused (its HLS
    /// playlist still plays).
    pub download_max_samples: u64,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            dir: "/var/lib/sluice/recordings".into(),
            apps: Vec::new(),
            max_age_s: 0,
            max_bytes_total: 0,
            queue_max_bytes: 64 * 1024 * 1024,
            on_record_done_url: String::new(),
            download_max_samples: 8_000_000,
        }
    }
}

impl RecordingConfig {
    pub fn validate(&self) -> Result<()> {
        if self.enabled && self.dir.is_empty() {
            bail!("invalid value for recording.dir: must be set when recording.enabled is true");
        }
        if self.queue_max_bytes < 1024 * 1024 {
            bail!("invalid value for recording.queue_max_bytes: must be at least 1 MiB");
        }
        if self.download_max_samples == 0 {
            bail!("invalid value for recording.download_max_samples: must be at least 1");
        }
        let u = &self.on_record_done_url;
        if !(u.is_empty() || u.starts_with("http://") || u.starts_with("https://")) {
            bail!("invalid value for recording.on_record_done_url: must be empty or an http:// or https:// URL");
        }
        Ok(())
    }
}

/// One recording as the API lists it.
#[derive(Clone)]
pub struct Recording {
    pub index: Arc<RwLock<Index>>,
}

/// A stream's (app, stream) name.
pub type StreamKey = (String, String);

/// What HTTP handlers read: the indexes, never media bytes.
#[derive(Default)]
pub struct Shared {
    pub recordings: RwLock<BTreeMap<String, Recording>>,
    pub dvr: RwLock<HashMap<StreamKey, Arc<RwLock<Index>>>>,
}

/// One segment on its way to the writer.
pub struct SegmentJob {
    pub container: Container,
    pub parts: Vec<Bytes>,
    pub init: Option<Bytes>,
    pub duration_90k: u64,
    pub wall_unix_ms: u64,
    pub discontinuity: bool,
    pub independent: bool,
}

pub(crate) enum Job {
    Begin {
        key: (String, String),
        at_ms: u64,
    },
    Segment {
        key: (String, String),
        seg: SegmentJob,
        bytes: u64,
    },
    End {
        key: (String, String),
        at_ms: u64,
    },
    /// The publish's recording stops (queue full).
    Fail {
        key: (String, String),
        reason: &'static str,
    },
    Delete {
        id: String,
        reply: tokio::sync::oneshot::Sender<DeleteOutcome>,
    },
    /// Graceful shutdown: every open recording is closed now.
    Shutdown {
        reply: tokio::sync::oneshot::Sender<()>,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    StillRecording,
}

pub struct Archive {
    tx: mpsc::Sender<Job>,
    queued_bytes: Arc<AtomicU64>,
    queue_max_bytes: u64,
    pub shared: Arc<Shared>,
}

/// The per-publish handle the pipeline holds.
pub struct Tap {
    tx: mpsc::Sender<Job>,
    queued_bytes: Arc<AtomicU64>,
    queue_max_bytes: u64,
    key: (String, String),
    stopped: bool,
    ended: bool,
}

impl Tap {
    /// Hands a completed segment to the writer; never blocks. A full queue stops this publish's
    /// recording (not the stream).
    pub fn segment(&mut self, seg: SegmentJob) {
        if self.stopped {
            return;
        }
        let bytes: u64 = seg.parts.iter().map(|b| b.len() as u64).sum();
        let queued = self.queued_bytes.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if queued > self.queue_max_bytes {
            self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            self.stopped = true;
            metrics::counter!("sluice_recording_errors_total", "reason" => "queue_full")
                .increment(1);
            tracing::error!(app = %self.key.0, stream = %self.key.1, queued_bytes = queued,
                "recording stopped: the disk writer is behind by more than recording.queue_max_bytes; the live stream continues");
            let _ = self.tx.send(Job::Fail {
                key: self.key.clone(),
                reason: "queue_full",
            });
            return;
        }
        let key = self.key.clone();
        if self.tx.send(Job::Segment { key, seg, bytes }).is_err() {
            self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            self.stopped = true;
        }
    }

    /// The publish ended (the grace period starts).
    pub fn end(&mut self) {
        if !self.ended {
            self.ended = true;
            let _ = self.tx.send(Job::End {
                key: self.key.clone(),
                at_ms: unix_ms(),
            });
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.end();
    }
}

/// The pipeline's hook: a completed segment (its chunks' `Bytes`, shared with the edge, no
/// copy) and the init segment it needs go to the disk writer.
pub fn feed(tap: Option<&mut Tap>, seg: &remux::Segment, cmaf_init: &Option<Bytes>) {
    if let Some(tap) = tap {
        let init = match seg.container {
            remux::Container::Ts => None,
            remux::Container::Cmaf => cmaf_init.clone(),
        };
        tap.segment(SegmentJob {
            container: match seg.container {
                remux::Container::Ts => Container::Ts,
                remux::Container::Cmaf => Container::Cmaf,
            },
            parts: seg.parts.clone(),
            init,
            duration_90k: seg.duration_90k,
            wall_unix_ms: seg.first_arrival_ms,
            discontinuity: seg.discontinuity,
            independent: seg.independent,
        });
    }
}

impl Archive {
    /// Recovers the recordings on disk, empties the DVR directory and starts the writer thread.
    /// `None` when neither recording nor DVR is on.
    pub fn start(cfg: Arc<Config>, http_port: u16) -> Result<Option<Arc<Archive>>> {
        let rec = &cfg.recording;
        if !rec.enabled && !cfg.hls.dvr_on() {
            return Ok(None);
        }
        let shared = Arc::new(Shared::default());
        let rec_dir = PathBuf::from(&rec.dir);
        if rec.enabled {
            std::fs::create_dir_all(&rec_dir)
                .with_context(|| format!("creating recording.dir {}", rec_dir.display()))?;
            recover_all(&rec_dir, &shared)?;
        }
        let dvr_dir = if cfg.hls.dvr_dir.is_empty() {
            std::env::temp_dir().join(format!("sluice-dvr-{http_port}"))
        } else {
            PathBuf::from(&cfg.hls.dvr_dir)
        };
        if cfg.hls.dvr_on() {
            // DVR data does not outlive the process: a window of a stream that is gone.
            prepare_dvr_dir(&dvr_dir)?;
        }
        let (tx, rx) = mpsc::channel();
        let queued_bytes = Arc::new(AtomicU64::new(0));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.auth.webhook_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("webhook HTTP client")?;
        let mut writer = crate::recording_writer::Writer::new(
            cfg.clone(),
            shared.clone(),
            queued_bytes.clone(),
            rec_dir,
            dvr_dir,
            client,
        );
        std::thread::Builder::new()
            .name("sluice-archive".into())
            .spawn(move || writer.run(rx))
            .context("starting the archive writer thread")?;
        Ok(Some(Arc::new(Archive {
            tx,
            queued_bytes,
            queue_max_bytes: cfg.recording.queue_max_bytes,
            shared,
        })))
    }

    /// A tap for a new publish of app/stream (a reconnect within the grace period continues the
    /// same recording and DVR window).
    pub fn begin(&self, app: &str, stream: &str) -> Tap {
        let key = (app.to_string(), stream.to_string());
        let _ = self.tx.send(Job::Begin {
            key: key.clone(),
            at_ms: unix_ms(),
        });
        Tap {
            tx: self.tx.clone(),
            queued_bytes: self.queued_bytes.clone(),
            queue_max_bytes: self.queue_max_bytes,
            key,
            stopped: false,
            ended: false,
        }
    }

    /// Closes every open recording (after ingest has stopped).
    pub async fn shutdown(&self) {
        let (reply, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Job::Shutdown { reply }).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
        }
    }

    pub async fn delete(&self, id: &str) -> DeleteOutcome {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let job = Job::Delete {
            id: id.to_string(),
            reply,
        };
        if self.tx.send(job).is_err() {
            return DeleteOutcome::NotFound;
        }
        rx.await.unwrap_or(DeleteOutcome::NotFound)
    }
}

fn recover_all(dir: &Path, shared: &Shared) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading recording.dir {}", dir.display()))?;
    let mut recs = shared.recordings.write().unwrap_or_else(|e| e.into_inner());
    for ent in entries.flatten() {
        let path = ent.path();
        if !path.join(archive::log::META_FILE).exists() {
            continue;
        }
        match archive::recover(&path) {
            Ok((index, report)) => {
                if report.closed_now || report.journal_bytes_dropped > 0 || report.files_dropped > 0
                {
                    tracing::warn!(dir = %path.display(), ?report,
                        "recording recovered after a crash: closed at its last complete segment");
                }
                recs.insert(
                    index.meta.id.clone(),
                    Recording {
                        index: Arc::new(RwLock::new(index)),
                    },
                );
            }
            Err(e) => tracing::error!(dir = %path.display(), error = %e, "recording not recovered"),
        }
    }
    tracing::info!(recordings = recs.len(), dir = %dir.display(), "recordings loaded");
    Ok(())
}

/// Marks a directory as Sluice's DVR spill, so emptying it at start can never delete an
/// operator's files (a mistyped `hls.dvr_dir` pointing at a data directory).
const DVR_DIR_MARKER: &str = ".sluice-dvr";

/// Empties `dir` for a new process (only when it is empty or carries [`DVR_DIR_MARKER`]; anything
/// else is refused with an error at start) and marks it.
fn prepare_dvr_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("reading hls.dvr_dir {}", dir.display()))?;
        let ours = dir.join(DVR_DIR_MARKER).exists();
        if !ours && entries.next().is_some() {
            anyhow::bail!(
                "hls.dvr_dir {} is not empty and was not made by Sluice (no {DVR_DIR_MARKER} file): \
                 refusing to empty it; point hls.dvr_dir at a new or empty directory",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("emptying hls.dvr_dir {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating hls.dvr_dir {}", dir.display()))?;
    std::fs::write(dir.join(DVR_DIR_MARKER), b"")
        .with_context(|| format!("marking hls.dvr_dir {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod dvr_dir_tests {
    use super::*;

    #[test]
    fn a_foreign_directory_is_never_emptied() {
        let base = std::env::temp_dir().join(format!("sluice-dvrdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join("precious.txt"), b"keep").unwrap();
        assert!(prepare_dvr_dir(&base).is_err());
        assert!(base.join("precious.txt").exists());
        // Ours (marked) or new: emptied and marked.
        let spill = base.join("spill");
        prepare_dvr_dir(&spill).unwrap();
        std::fs::write(spill.join("old-window"), b"x").unwrap();
        prepare_dvr_dir(&spill).unwrap();
        assert!(!spill.join("old-window").exists());
        assert!(spill.join(DVR_DIR_MARKER).exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
