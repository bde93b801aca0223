//! Range checks that serde cannot express; each error names the setting.

use anyhow::{bail, Result};

use super::*;

impl Config {
    /// Range checks that serde cannot express; each error names the setting.
    pub fn validate(&self) -> Result<()> {
        fn check(ok: bool, setting: &str, why: &str) -> Result<()> {
            if ok {
                Ok(())
            } else {
                bail!("invalid value for {setting}: {why}")
            }
        }
        let r = &self.rtmp;
        check(
            (1024..=16 * 1024 * 1024 - 1).contains(&r.max_message_bytes),
            "rtmp.max_message_bytes",
            "must be between 1024 and 16777215 (the RTMP u24 maximum)",
        )?;
        check(
            (128..=0x7FFF_FFFF).contains(&r.max_chunk_size),
            "rtmp.max_chunk_size",
            "must be between 128 and 2147483647",
        )?;
        check(
            (128..=65536).contains(&r.out_chunk_size),
            "rtmp.out_chunk_size",
            "must be between 128 and 65536",
        )?;
        check(
            r.max_chunk_streams >= 4,
            "rtmp.max_chunk_streams",
            "must be at least 4",
        )?;
        check(
            r.max_streams_per_connection >= 1,
            "rtmp.max_streams_per_connection",
            "must be at least 1",
        )?;
        check(
            r.handshake_timeout_ms >= 100,
            "rtmp.handshake_timeout_ms",
            "must be at least 100",
        )?;
        check(
            r.idle_timeout_ms >= 100,
            "rtmp.idle_timeout_ms",
            "must be at least 100",
        )?;
        check(
            r.max_connections >= 1,
            "rtmp.max_connections",
            "must be at least 1",
        )?;
        check(
            r.max_connections_per_ip >= 1,
            "rtmp.max_connections_per_ip",
            "must be at least 1",
        )?;
        check(
            r.max_publishers >= 1,
            "rtmp.max_publishers",
            "must be at least 1",
        )?;
        check(
            r.read_coalesce_ms <= 200,
            "rtmp.read_coalesce_ms",
            "must be between 0 (off) and 200",
        )?;
        check(
            (1..=4 * 1024 * 1024).contains(&r.read_batch_bytes),
            "rtmp.read_batch_bytes",
            "must be between 1 and 4194304",
        )?;
        for a in &r.allowed_apps {
            check(
                valid_name(a),
                "rtmp.allowed_apps",
                "names use [A-Za-z0-9._~-], 1 to 128 characters",
            )?;
        }
        let h = &self.hls;
        check(
            (500..=30_000).contains(&h.target_duration_ms),
            "hls.target_duration_ms",
            "must be between 500 and 30000",
        )?;
        check(
            (100..=h.target_duration_ms).contains(&h.part_target_ms),
            "hls.part_target_ms",
            "must be between 100 and hls.target_duration_ms",
        )?;
        check(
            !h.containers.is_empty()
                && h.containers.iter().all(|c| c == "ts" || c == "cmaf")
                && !(h.containers.len() == 2 && h.containers[0] == h.containers[1]),
            "hls.containers",
            "must list \"ts\", \"cmaf\" or both",
        )?;
        check(
            (3..=100).contains(&h.window_segments),
            "hls.window_segments",
            "must be between 3 and 100",
        )?;
        check(
            h.max_timestamp_jump_ms >= 1000,
            "hls.max_timestamp_jump_ms",
            "must be at least 1000",
        )?;
        check(
            h.max_bytes_per_stream >= 1024 * 1024,
            "hls.max_bytes_per_stream",
            "must be at least 1 MiB",
        )?;
        check(
            h.max_bytes_total >= h.max_bytes_per_stream,
            "hls.max_bytes_total",
            "must be at least hls.max_bytes_per_stream",
        )?;
        check(h.max_streams >= 1, "hls.max_streams", "must be at least 1")?;
        check(
            h.dvr_window_s <= 7 * 24 * 3600,
            "hls.dvr_window_s",
            "must be between 0 (off) and 604800 (a week)",
        )?;
        for (app, w) in &h.dvr_window_s_by_app {
            if *w > 7 * 24 * 3600 {
                bail!("invalid value for hls.dvr_window_s_by_app.{app}: must be between 0 (off) and 604800 (a week)");
            }
        }
        check(
            h.dvr_max_bytes_total >= 1024 * 1024,
            "hls.dvr_max_bytes_total",
            "must be at least 1 MiB",
        )?;
        self.recording.validate()?;
        check(
            h.max_waiting_requests_per_stream >= 1,
            "hls.max_waiting_requests_per_stream",
            "must be at least 1",
        )?;
        check(
            h.variant_suffixes.len() <= 16
                && h.variant_suffixes.iter().all(|s| {
                    valid_name(s) && !hls_edge::group::is_track_stream_name(&format!("x{s}"))
                }),
            "hls.variant_suffixes",
            "at most 16 suffixes of [A-Za-z0-9._~-], none of the reserved form ~vN",
        )?;
        check(
            (1..=32).contains(&h.max_renditions_per_group),
            "hls.max_renditions_per_group",
            "must be between 1 and 32",
        )?;
        let h = &self.http;
        check(
            h.request_timeout_ms >= 100,
            "http.request_timeout_ms",
            "must be at least 100",
        )?;
        check(
            h.max_concurrent_requests >= 1,
            "http.max_concurrent_requests",
            "must be at least 1",
        )?;
        check(
            h.header_read_timeout_ms >= 100,
            "http.header_read_timeout_ms",
            "must be at least 100",
        )?;
        check(
            h.write_stall_timeout_ms >= 100,
            "http.write_stall_timeout_ms",
            "must be at least 100",
        )?;
        check(
            h.max_connections >= 1,
            "http.max_connections",
            "must be at least 1",
        )?;
        check(
            (8192..=1024 * 1024).contains(&h.max_header_bytes),
            "http.max_header_bytes",
            "must be between 8192 and 1048576",
        )?;
        check(
            h.workers <= 1024,
            "http.workers",
            "must be between 0 (one per CPU) and 1024",
        )?;
        check(
            (10..=3600).contains(&h.console_history_seconds),
            "http.console_history_seconds",
            "must be between 10 and 3600",
        )?;
        check(
            h.console_max_subscribers <= 10_000,
            "http.console_max_subscribers",
            "must be at most 10000 (0 turns the event feed off)",
        )?;
        let a = &self.auth;
        for (url, name) in [
            (&a.on_publish_url, "auth.on_publish_url"),
            (&a.on_unpublish_url, "auth.on_unpublish_url"),
        ] {
            check(
                url.is_empty() || url.starts_with("http://") || url.starts_with("https://"),
                name,
                "must be empty or an http:// or https:// URL",
            )?;
        }
        check(
            a.webhook_timeout_ms >= 10,
            "auth.webhook_timeout_ms",
            "must be at least 10",
        )?;
        check(
            a.webhook_max_concurrency >= 1,
            "auth.webhook_max_concurrency",
            "must be at least 1",
        )?;
        for k in &a.publish_keys {
            check(
                !k.is_empty() && k.len() <= 256,
                "auth.publish_keys",
                "keys are 1 to 256 characters",
            )?;
        }
        check(
            matches!(self.log.format.as_str(), "text" | "json"),
            "log.format",
            "must be \"text\" or \"json\"",
        )?;
        self.cluster.validate(self.http.listen)
    }
}
