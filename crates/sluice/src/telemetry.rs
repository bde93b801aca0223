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

pub fn install_metrics() -> Result<PrometheusHandle> {
    // Per-stream series of streams that are gone stop being exported after 10 minutes, so a
    // long-running origin with many short-lived stream names does not grow without bound.
    let handle = PrometheusBuilder::new()
        .idle_timeout(
            metrics_util::MetricKindMask::COUNTER | metrics_util::MetricKindMask::GAUGE,
            Some(std::time::Duration::from_secs(600)),
        )
        .install_recorder()
        .context("installing the Prometheus recorder")?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, Unit};
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
