//! Edge configuration: live window, grace period and end of life, memory budgets and HTTP cache
//! lifetimes (RFC 8216bis §6.2.2 for the window and availability rules these bound).

use std::time::Duration;

/// How the edge keeps and serves playlists and segments. Built by the binary from its config file.
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    /// Segments listed in a live playlist. The effective window is never less than 3 target
    /// durations of media (RFC 8216bis §6.2.2), so short segments may make it longer than this.
    pub window_segments: usize,
    /// After the publisher leaves, the playlist stays live-looking (no `#EXT-X-ENDLIST`) this
    /// long; a publish of the same name within it continues the playlist.
    pub grace_period: Duration,
    /// After the grace period the playlist carries `#EXT-X-ENDLIST` for this long, then it is
    /// removed (404). Its segments stay downloadable for their availability duration after that.
    pub ended_retention: Duration,
    /// Byte budget for all segment bodies of all streams (the `moka` cache capacity).
    pub max_bytes_total: u64,
    /// Byte budget for one stream's segment bodies. Over it, segments that already left the
    /// playlist go first (oldest first), then the oldest listed segments.
    pub max_bytes_per_stream: u64,
    /// `Access-Control-Allow-Origin` value on every response; `None` sends no CORS headers.
    pub cors_allow_origin: Option<String>,
    /// `Cache-Control: public, max-age=<this>, immutable` on segments.
    pub segment_cache_max_age_s: u32,
    /// `Cache-Control: public, max-age=<this>` on 404 answers.
    pub not_found_max_age_s: u32,
    /// Playlists held at once (live, in grace or ended); more publishes are refused.
    pub max_streams: usize,
    /// Low-Latency HLS on the CMAF playlist (RFC 8216bis §4.4.3.7-8, §4.4.4.9, §4.4.5, §6.2.5):
    /// parts, preload hint, blocking reload, delta updates. Off: `cmaf.m3u8` is a standard
    /// playlist and `_HLS_*` query parameters are ignored.
    pub low_latency: bool,
    /// Requests one stream may hold waiting at once (blocking playlist reloads and preload-hint
    /// part requests, RFC 8216bis §6.2.5.2, §6.2.6); more are answered 503 at once.
    pub max_waiting_requests_per_stream: usize,
    /// Stream name suffixes that make groups: with `["_hi", "_lo"]`, the publishes `NAME_hi`
    /// and `NAME_lo` are the renditions of the multivariant playlist `NAME/index.m3u8`
    /// (see [`crate::group`]). Empty: no suffix groups (multitrack groups still form).
    pub variant_suffixes: Vec<String>,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            window_segments: 6,
            grace_period: Duration::from_secs(20),
            ended_retention: Duration::from_secs(60),
            max_bytes_total: 1 << 30,
            max_bytes_per_stream: 128 << 20,
            cors_allow_origin: Some("*".to_string()),
            segment_cache_max_age_s: 86_400,
            not_found_max_age_s: 1,
            max_streams: 1000,
            low_latency: true,
            max_waiting_requests_per_stream: 10_000,
            variant_suffixes: Vec::new(),
        }
    }
}
