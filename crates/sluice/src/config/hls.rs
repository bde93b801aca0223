//! The `[hls]` section: segmenting, windows, LL-HLS, DVR and groups (RFC 8216bis playlists).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::duration_ms;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HlsConfig {
    pub target_duration_ms: u32,
    /// LL-HLS PART-TARGET; no part is longer.
    pub part_target_ms: u32,
    /// Containers written: `ts` (H.264/AAC/MP3 only), `cmaf`.
    pub containers: Vec<String>,
    pub window_segments: usize,
    pub max_timestamp_jump_ms: u32,
    pub grace_period_ms: u64,
    pub ended_retention_ms: u64,
    pub max_bytes_total: u64,
    pub max_bytes_per_stream: u64,
    pub max_streams: usize,
    /// LL-HLS on the CMAF playlist (parts, preload hints, blocking reload, delta updates).
    pub low_latency: bool,
    /// Blocking playlist reloads and preload-hint part requests one stream may hold at once.
    pub max_waiting_requests_per_stream: usize,
    pub segment_max_age_s: u32,
    pub not_found_max_age_s: u32,
    /// DVR window in seconds (0: off); the DVR playlist is `/{app}/{stream}/dvr.m3u8`.
    pub dvr_window_s: u64,
    /// Directory for DVR segments (emptied at start); empty: `<temp dir>/sluice-dvr-<http port>`.
    pub dvr_dir: String,
    /// Bytes of DVR segments on disk across all streams; the oldest go first beyond it.
    pub dvr_max_bytes_total: u64,
    /// Per-app DVR windows in seconds (`[hls.dvr_window_s_by_app]` `live = 7200`), overriding
    /// `dvr_window_s` for that app (0: off for it).
    pub dvr_window_s_by_app: BTreeMap<String, u64>,
    /// How long the DVR window of a stream whose publish ended stays served (`dvr.m3u8` with
    /// `#EXT-X-ENDLIST`), counted from the end of the publish; never less than the grace period.
    pub dvr_keep_after_end_s: u64,
    /// Stream name suffixes forming groups: `NAME_hi`, `NAME_lo`... are the renditions of the
    /// multivariant playlist `NAME/index.m3u8`.
    pub variant_suffixes: Vec<String>,
    /// Video tracks of one multitrack publish written as renditions (each costs a remuxer that
    /// reads every tag of the publish); further track ids are ignored.
    pub max_renditions_per_group: usize,
}

/// Defaults from `remux::RemuxConfig::default()` and `hls_edge::EdgeConfig::default()`.
impl Default for HlsConfig {
    fn default() -> Self {
        let remux = remux::RemuxConfig::default();
        let edge = hls_edge::EdgeConfig::default();
        Self {
            target_duration_ms: remux.target_duration_ms,
            part_target_ms: remux.part_target_ms,
            containers: [("ts", remux.containers.ts), ("cmaf", remux.containers.cmaf)]
                .into_iter()
                .filter(|(_, on)| *on)
                .map(|(name, _)| name.to_string())
                .collect(),
            window_segments: edge.window_segments,
            max_timestamp_jump_ms: remux.max_timestamp_jump_ms,
            grace_period_ms: duration_ms(edge.grace_period),
            ended_retention_ms: duration_ms(edge.ended_retention),
            max_bytes_total: edge.max_bytes_total,
            max_bytes_per_stream: edge.max_bytes_per_stream,
            max_streams: edge.max_streams,
            low_latency: edge.low_latency,
            max_waiting_requests_per_stream: edge.max_waiting_requests_per_stream,
            segment_max_age_s: edge.segment_cache_max_age_s,
            not_found_max_age_s: edge.not_found_max_age_s,
            dvr_window_s: 0,
            dvr_dir: String::new(),
            dvr_max_bytes_total: 10 * 1024 * 1024 * 1024,
            dvr_window_s_by_app: BTreeMap::new(),
            dvr_keep_after_end_s: 600,
            variant_suffixes: edge.variant_suffixes,
            max_renditions_per_group: crate::renditions::DEFAULT_MAX_TRACK_RENDITIONS,
        }
    }
}

impl HlsConfig {
    /// The DVR window of `app`'s streams in seconds (0: none).
    pub fn dvr_window_s_for(&self, app: &str) -> u64 {
        self.dvr_window_s_by_app
            .get(app)
            .copied()
            .unwrap_or(self.dvr_window_s)
    }

    /// Whether any app has a DVR window.
    pub fn dvr_on(&self) -> bool {
        self.dvr_window_s > 0 || self.dvr_window_s_by_app.values().any(|w| *w > 0)
    }
}
