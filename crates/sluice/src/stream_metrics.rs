//! Per-stream Prometheus handles of a publish (the pipeline's media sink), batched off the
//! per-tag path.

/// Metric handles of one stream, registered once at publish start (a `counter!` call with
/// labels hashes and allocates; the per-tag path must not).
///
/// Counts are added to the handles in batches (every [`METRIC_FLUSH_TAGS`] tags, at each
/// keyframe and at the end of the publish): a Prometheus scrape every few seconds cannot tell,
/// and it takes four atomic read-modify-writes off the per-tag path.
pub(super) struct StreamMetrics {
    pub(super) bytes_received: metrics::Counter,
    pub(super) video_frames: metrics::Counter,
    pub(super) audio_frames: metrics::Counter,
    pub(super) keyframes: metrics::Counter,
    pub(super) pending: PendingCounts,
}

/// Tags between two metric flushes (about a second of a typical stream).
pub(super) const METRIC_FLUSH_TAGS: u32 = 64;

#[derive(Default)]
pub(super) struct PendingCounts {
    pub(super) tags: u32,
    pub(super) bytes: u64,
    pub(super) video_frames: u64,
    pub(super) audio_frames: u64,
    pub(super) keyframes: u64,
}

impl StreamMetrics {
    pub(super) fn new(app: &str, stream: &str) -> Self {
        let (a, s) = (app.to_string(), stream.to_string());
        Self {
            bytes_received: metrics::counter!("sluice_stream_bytes_received_total", "app" => a.clone(), "stream" => s.clone()),
            video_frames: metrics::counter!("sluice_stream_frames_total", "app" => a.clone(), "stream" => s.clone(), "track" => "video"),
            audio_frames: metrics::counter!("sluice_stream_frames_total", "app" => a.clone(), "stream" => s.clone(), "track" => "audio"),
            keyframes: metrics::counter!("sluice_stream_keyframes_total", "app" => a, "stream" => s),
            pending: PendingCounts::default(),
        }
    }

    pub(super) fn flush(&mut self) {
        let p = std::mem::take(&mut self.pending);
        for (counter, n) in [
            (&self.bytes_received, p.bytes),
            (&self.video_frames, p.video_frames),
            (&self.audio_frames, p.audio_frames),
            (&self.keyframes, p.keyframes),
        ] {
            if n > 0 {
                counter.increment(n);
            }
        }
    }
}
