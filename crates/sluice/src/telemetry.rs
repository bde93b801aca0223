//! Logging (tracing, text or JSON) and the Prometheus metrics recorder.

use std::io::IsTerminal;

use anyhow::{Context, Result};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

pub fn init_logging(cfg: &LogConfig) -> Result<()> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .with_context(|| format!("invalid value for log.level: {:?}", cfg.level))?;
    // Colour only on a terminal: log files, pipes and container log drivers get plain text.
    // `NO_COLOR` (https://no-color.org) turns it off on a terminal too.
    let ansi = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_target(false);
    if cfg.format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
    Ok(())
}

/// Time from a request's head being read to its response head, in seconds.
pub const HTTP_DURATION: &str = "sluice_http_request_duration_seconds";

/// Histogram buckets for [`HTTP_DURATION`]: an in-memory origin answers in well under a
/// millisecond; the upper buckets catch lock contention and slow operator routes.
const HTTP_DURATION_BUCKETS_S: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

pub fn install_metrics() -> Result<PrometheusHandle> {
    // Per-stream series of streams that are gone stop being exported after 10 minutes, so a
    // long-running origin with many short-lived stream names does not grow without bound.
    let handle = PrometheusBuilder::new()
        .idle_timeout(
            metrics_util::MetricKindMask::COUNTER | metrics_util::MetricKindMask::GAUGE,
            Some(std::time::Duration::from_secs(600)),
        )
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(HTTP_DURATION.to_owned()),
            HTTP_DURATION_BUCKETS_S,
        )
        .context("histogram buckets")?
        .install_recorder()
        .context("installing the Prometheus recorder")?;
    describe();
    Ok(handle)
}

/// Histogram samples wait in the recorder until they are folded into buckets; without a scrape
/// that happens only here, so the samples held stay bounded by one interval's requests.
pub fn spawn_upkeep(handle: PrometheusHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}

/// One pre-registered histogram handle per kind of HTTP request (a labelled `histogram!` call
/// hashes and allocates; this runs once per request).
pub fn http_duration(kind: HttpKind) -> &'static metrics::Histogram {
    static HANDLES: std::sync::OnceLock<[metrics::Histogram; 4]> = std::sync::OnceLock::new();
    let h = HANDLES.get_or_init(|| {
        [
            HttpKind::Hls,
            HttpKind::Rtmpt,
            HttpKind::Operator,
            HttpKind::HlsBlocking,
        ]
        .map(|k| metrics::histogram!(HTTP_DURATION, "kind" => k.label()))
    });
    &h[kind as usize]
}

/// What an HTTP request was routed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpKind {
    /// Playlists, segments, parts and init segments (`hls_edge::Edge`).
    Hls = 0,
    /// RTMP tunnelled over HTTP polling.
    Rtmpt = 1,
    /// `/metrics`, `/api`, health, the preview page and its assets.
    Operator = 2,
    /// LL-HLS blocking playlist reloads (`_HLS_msn`, RFC 8216bis §6.2.5.2): held until the part
    /// exists by design, so kept apart from the `hls` answers they would swamp.
    HlsBlocking = 3,
}

impl HttpKind {
    pub fn label(self) -> &'static str {
        match self {
            HttpKind::Hls => "hls",
            HttpKind::Rtmpt => "rtmpt",
            HttpKind::Operator => "operator",
            HttpKind::HlsBlocking => "hls_blocking",
        }
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP time from request head to response head, by kind (hls, hls_blocking: LL-HLS blocking reloads, which wait for the next part by design; rtmpt; operator)"
    );
    describe_counter!(
        "sluice_stream_bytes_received_total",
        Unit::Bytes,
        "FLV payload bytes received per stream"
    );
    describe_counter!(
        "sluice_stream_frames_total",
        "Frames received per stream and track"
    );
    describe_counter!(
        "sluice_stream_keyframes_total",
        "Video keyframes received per stream"
    );
    describe_counter!(
        "sluice_stream_segments_total",
        "Segments produced per stream"
    );
    describe_counter!(
        "sluice_stream_discontinuities_total",
        "Discontinuities (timestamp jumps, codec changes) per stream"
    );
    describe_counter!(
        "sluice_stream_timestamp_jumps_total",
        "Timestamp jumps detected per stream"
    );
    describe_counter!(
        "sluice_stream_dropped_frames_total",
        "Frames dropped per stream (before a keyframe, malformed, unsupported)"
    );
    describe_gauge!(
        "sluice_stream_bitrate_bps",
        "Ingest bitrate per stream over the last segment, bits per second"
    );
    describe_gauge!(
        "sluice_stream_gop_seconds",
        "Measured keyframe interval per stream"
    );
    describe_gauge!("sluice_streams_live", "Streams with a publisher");
    describe_gauge!(
        "sluice_process_resident_memory_bytes",
        Unit::Bytes,
        "Resident memory of the process, sampled once a second"
    );
    describe_counter!(
        "sluice_publish_refused_total",
        "Publishes refused, by reason"
    );
    describe_counter!("sluice_publish_total", "Publishes accepted");
}
