//! Configuration: embedded defaults, then a TOML file (`--config`), then `SLUICE_*` environment
//! variables, then command-line flags, each layer overriding the one before.
//!
//! Every setting lives in [`Config`]; `docs/configuration.md` documents each one with its default.
//! Layers are merged as TOML values and deserialized once with `deny_unknown_fields`, so an unknown
//! key or a value of the wrong type is rejected at start with the setting's name.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug, Default)]
#[command(name = "sluice", version, about = "RTMP-to-HLS transmuxing origin")]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// RTMP listen address (rtmp.listen).
    #[arg(long, value_name = "ADDR")]
    pub rtmp: Option<SocketAddr>,
    /// RTMPS listen address (rtmps.listen); RTMPS runs when a certificate is configured.
    #[arg(long, value_name = "ADDR")]
    pub rtmps: Option<SocketAddr>,
    /// HTTP listen address (http.listen).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// A stream key that publishers must present; repeatable (auth.publish_keys).
    #[arg(long = "publish-key", value_name = "KEY")]
    pub publish_keys: Vec<String>,
    /// Log format: text or json (log.format).
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Any setting as SECTION.KEY=VALUE (VALUE in TOML syntax; bare words are strings); repeatable.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Check the running server's /healthz on the configured HTTP port and exit 0 if healthy
    /// (for container health checks; the image has no shell or curl).
    #[arg(long)]
    pub healthcheck: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub rtmp: RtmpConfig,
    pub http: HttpConfig,
    pub hls: HlsConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub play: crate::playback::PlayConfig,
    pub rtmpt: crate::rtmpt::RtmptConfig,
    pub rtmps: crate::tls::RtmpsConfig,
    pub cluster: crate::fleet::ClusterConfig,
    pub recording: crate::recording::RecordingConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RtmpConfig {
    pub listen: SocketAddr,
    pub max_message_bytes: u32,
    pub max_chunk_size: u32,
    pub max_chunk_streams: usize,
    pub max_partial_bytes: u64,
    pub max_streams_per_connection: u32,
    pub out_chunk_size: u32,
    pub ack_window_bytes: u32,
    pub handshake_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_publishers: usize,
    pub allowed_apps: Vec<String>,
    pub read_coalesce_ms: u64,
    pub read_batch_bytes: usize,
}

/// Milliseconds of a library `Duration` default, for the `*_ms` settings.
fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Library settings take their defaults from `rtmp_ingest::IngestConfig::default()`: one source
/// of truth per default (`pipeline::ingest_config` maps them back; a test checks the round trip).
impl Default for RtmpConfig {
    fn default() -> Self {
        let lib = rtmp_ingest::IngestConfig::default();
        Self {
            listen: "0.0.0.0:1935".parse().expect("valid literal"),
            max_message_bytes: lib.max_message_bytes,
            max_chunk_size: lib.max_chunk_size,
            max_chunk_streams: lib.max_chunk_streams,
            max_partial_bytes: lib.max_partial_bytes,
            max_streams_per_connection: lib.max_streams_per_connection,
            out_chunk_size: lib.out_chunk_size,
            ack_window_bytes: lib.ack_window_bytes,
            handshake_timeout_ms: duration_ms(lib.handshake_to_publish_timeout),
            idle_timeout_ms: duration_ms(lib.idle_timeout),
            max_connections: lib.max_connections,
            max_connections_per_ip: lib.max_connections_per_ip,
            max_publishers: 256,
            allowed_apps: lib.allowed_apps.unwrap_or_default(),
            read_coalesce_ms: duration_ms(lib.read_coalesce),
            read_batch_bytes: lib.read_batch_bytes,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// `Access-Control-Allow-Origin` value; empty disables CORS headers.
    pub cors_allow_origin: String,
    /// Bearer token required for `DELETE /api/streams/...`; empty means no token (loopback only).
    pub admin_token: String,
    /// URL the preview page loads hls.js from; empty: the copy built into the binary.
    pub hlsjs_url: String,
    pub request_timeout_ms: u64,
    pub max_concurrent_requests: usize,
    pub shutdown_timeout_ms: u64,
    pub header_read_timeout_ms: u64,
    pub write_stall_timeout_ms: u64,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub workers: usize,
    /// Seconds of per-stream history the preview console keeps (one sample a second).
    pub console_history_seconds: u64,
    /// Clients of the console's event feed (`/api/events`) at once.
    pub console_max_subscribers: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".parse().expect("valid literal"),
            cors_allow_origin: hls_edge::EdgeConfig::default()
                .cors_allow_origin
                .unwrap_or_default(),
            admin_token: String::new(),
            hlsjs_url: String::new(),
            request_timeout_ms: 10_000,
            max_concurrent_requests: 4096,
            shutdown_timeout_ms: 5_000,
            header_read_timeout_ms: 10_000,
            write_stall_timeout_ms: 20_000,
            max_connections: 10_000,
            max_header_bytes: 16 * 1024,
            workers: 0,
            console_history_seconds: 300,
            console_max_subscribers: 32,
        }
    }
}

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
    /// Stream name suffixes forming groups: `NAME_hi`, `NAME_lo`... are the renditions of the
    /// multivariant playlist `NAME/index.m3u8`.
    pub variant_suffixes: Vec<String>,
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
            variant_suffixes: edge.variant_suffixes,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// When non-empty, a publish must carry one of these as `?key=KEY`.
    pub publish_keys: Vec<String>,
    /// POSTed JSON before a publish is accepted; 2xx admits, anything else refuses.
    pub on_publish_url: String,
    /// POSTed JSON when a publish ends (fire and forget).
    pub on_unpublish_url: String,
    pub webhook_timeout_ms: u64,
    pub webhook_max_concurrency: usize,
    pub webhook_max_body_bytes: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            publish_keys: Vec::new(),
            on_publish_url: String::new(),
            on_unpublish_url: String::new(),
            webhook_timeout_ms: 3000,
            webhook_max_concurrency: 16,
            webhook_max_body_bytes: 16 * 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter directive, e.g. `info` or `sluice=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

impl Config {
    /// Builds the effective configuration from all layers.
    pub fn load(cli: &Cli, env: impl IntoIterator<Item = (String, String)>) -> Result<Config> {
        let mut merged = toml::Value::try_from(Config::default()).context("encoding defaults")?;
        if let Some(path) = &cli.config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            let file: toml::Value = toml::from_str(&text)
                .with_context(|| format!("parsing config file {}", path.display()))?;
            merge(&mut merged, file, "")?;
        }
        // Environment: SLUICE_<SECTION>_<KEY>, matched against the known settings.
        let known = known_settings(&merged);
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("SLUICE_") else {
                continue;
            };
            let path = if rest == "PUBLISH_KEYS" {
                "auth.publish_keys".to_string()
            } else if let Some(p) = known
                .iter()
                .find(|p| p.replace('.', "_").to_ascii_uppercase() == rest)
            {
                p.clone()
            } else {
                bail!("unknown environment setting {k} (expected SLUICE_<SECTION>_<KEY>, see docs/configuration.md)");
            };
            set_path(&mut merged, &path, &v).with_context(|| format!("environment {k}"))?;
        }
        // Command line.
        for s in &cli.set {
            let (path, value) = s
                .split_once('=')
                .with_context(|| format!("--set {s}: expected SECTION.KEY=VALUE"))?;
            if !known.iter().any(|p| p == path.trim()) {
                bail!("--set {s}: unknown setting {path}");
            }
            set_path(&mut merged, path.trim(), value).with_context(|| format!("--set {s}"))?;
        }
        let mut cfg: Config = merged
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("invalid configuration: {e}"))?;
        if let Some(a) = cli.rtmp {
            cfg.rtmp.listen = a;
        }
        if let Some(a) = cli.http {
            cfg.http.listen = a;
        }
        if let Some(a) = cli.rtmps {
            cfg.rtmps.listen = a;
        }
        if !cli.publish_keys.is_empty() {
            cfg.auth.publish_keys = cli.publish_keys.clone();
        }
        if let Some(f) = &cli.log_format {
            cfg.log.format = f.clone();
        }
        cfg.validate()?;
        Ok(cfg)
    }

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

    /// The configuration as TOML, with secrets masked.
    pub fn to_toml_masked(&self) -> String {
        let mut c = self.clone();
        c.auth.publish_keys = c
            .auth
            .publish_keys
            .iter()
            .map(|_| "<redacted>".into())
            .collect();
        if !c.http.admin_token.is_empty() {
            c.http.admin_token = "<redacted>".into();
        }
        toml::to_string_pretty(&c).unwrap_or_default()
    }
}

/// App and stream names: what may appear in a URL path segment without escaping.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
}

fn known_settings(v: &toml::Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(t) = v.as_table() {
        for (section, inner) in t {
            if let Some(inner) = inner.as_table() {
                for key in inner.keys() {
                    out.push(format!("{section}.{key}"));
                }
            }
        }
    }
    out
}

fn merge(base: &mut toml::Value, over: toml::Value, prefix: &str) -> Result<()> {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match b.get_mut(&k) {
                    Some(slot) if slot.is_table() => merge(slot, v, &path)?,
                    Some(slot) => *slot = v,
                    None => {
                        bail!("unknown setting {path} in config file (see docs/configuration.md)")
                    }
                }
            }
            Ok(())
        }
        (b, o) => {
            *b = o;
            Ok(())
        }
    }
}

/// Sets `section.key` from a string, interpreting it with the type the default has.
fn set_path(root: &mut toml::Value, path: &str, raw: &str) -> Result<()> {
    let (section, key) = path.split_once('.').context("expected SECTION.KEY")?;
    let slot = root
        .get_mut(section)
        .and_then(|s| s.get_mut(key))
        .with_context(|| format!("unknown setting {path}"))?;
    let value = match slot {
        toml::Value::String(_) => toml::Value::String(raw.to_string()),
        toml::Value::Array(_) => {
            if raw.trim_start().starts_with('[') {
                parse_toml_value(raw).with_context(|| format!("{path}: not a TOML array"))?
            } else {
                toml::Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_string()))
                        .collect(),
                )
            }
        }
        _ => parse_toml_value(raw).with_context(|| format!("invalid value for {path}: {raw:?}"))?,
    };
    *slot = value;
    Ok(())
}

fn parse_toml_value(raw: &str) -> Result<toml::Value> {
    let t: toml::Table = toml::from_str(&format!("v = {raw}"))?;
    t.get("v").cloned().context("no value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// Tidy check: every setting has a row in docs/configuration.md under its section, with
    /// its default value.
    #[test]
    fn every_setting_is_documented_with_its_default() {
        let doc = include_str!("../../../docs/configuration.md");
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        for path in known_settings(&defaults) {
            let (section, key) = path.split_once('.').unwrap();
            let start = doc
                .find(&format!("## `[{section}]`"))
                .unwrap_or_else(|| panic!("docs/configuration.md has no [{section}] section"));
            let body = &doc[start..];
            let body = &body[..body[3..].find("\n## ").map_or(body.len(), |i| i + 3)];
            let row = body
                .lines()
                .find(|l| l.starts_with(&format!("| `{key}` |")))
                .unwrap_or_else(|| panic!("docs/configuration.md does not document {path}"));
            let default = defaults[section][key].to_string();
            let default = default.trim_matches('"');
            assert!(
                row.contains(default),
                "docs/configuration.md: {path} default should be {default}: {row}"
            );
        }
    }

    #[test]
    fn defaults_are_the_documented_contract() {
        let c = Config::load(&Cli::default(), env(&[])).unwrap();
        assert_eq!(c.rtmp.listen.to_string(), "0.0.0.0:1935");
        assert_eq!(c.http.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.hls.target_duration_ms, 2000);
        assert_eq!(c.hls.window_segments, 6);
        assert_eq!(c.hls.grace_period_ms, 20_000);
    }

    /// One source of truth per default: the binary's defaults, printed by `--print-config` and
    /// read back, map to exactly the libraries' `Default`s (compared field by field through
    /// `Debug`, so a field added to a library config is covered too).
    #[test]
    fn printed_defaults_are_the_library_defaults() {
        let printed = Config::default().to_toml_masked();
        let cfg: Config = toml::from_str(&printed).unwrap();
        assert_eq!(cfg, Config::default());
        assert_eq!(
            format!("{:?}", crate::pipeline::ingest_config(&cfg)),
            format!("{:?}", rtmp_ingest::IngestConfig::default())
        );
        assert_eq!(
            format!("{:?}", crate::pipeline::edge_config(&cfg)),
            format!("{:?}", hls_edge::EdgeConfig::default())
        );
        assert_eq!(
            format!("{:?}", crate::pipeline::remux_config(&cfg, None)),
            format!("{:?}", remux::RemuxConfig::default())
        );
    }

    #[test]
    fn precedence_file_then_env_then_flags() {
        let dir = std::env::temp_dir().join(format!("sluice-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "[hls]\ntarget_duration_ms = 4000\nwindow_segments = 8\n[rtmp]\nlisten = \"127.0.0.1:1000\"\n").unwrap();
        let cli = Cli {
            config: Some(file),
            rtmp: Some("127.0.0.1:3000".parse().unwrap()),
            set: vec!["hls.grace_period_ms=5000".into()],
            ..Default::default()
        };
        let c = Config::load(
            &cli,
            env(&[
                ("SLUICE_HLS_WINDOW_SEGMENTS", "10"),
                ("SLUICE_PUBLISH_KEYS", "a,b"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.hls.target_duration_ms, 4000); // file
        assert_eq!(c.hls.window_segments, 10); // env over file
        assert_eq!(c.rtmp.listen.to_string(), "127.0.0.1:3000"); // flag over file
        assert_eq!(c.hls.grace_period_ms, 5000);
        assert_eq!(c.auth.publish_keys, vec!["a", "b"]);
        assert!(!c.to_toml_masked().contains("\"a\""));
    }

    #[test]
    fn unknown_and_invalid_settings_are_named() {
        let dir = std::env::temp_dir().join(format!("sluice-cfg2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "[hls]\ntarget_durration_ms = 4000\n").unwrap();
        let cli = Cli {
            config: Some(file.clone()),
            ..Default::default()
        };
        let e = format!("{:#}", Config::load(&cli, env(&[])).unwrap_err());
        assert!(e.contains("hls.target_durration_ms"), "{e}");

        let e = format!(
            "{:#}",
            Config::load(&Cli::default(), env(&[("SLUICE_HLS_BOGUS", "1")])).unwrap_err()
        );
        assert!(e.contains("SLUICE_HLS_BOGUS"), "{e}");

        let e = format!(
            "{:#}",
            Config::load(
                &Cli::default(),
                env(&[("SLUICE_HLS_WINDOW_SEGMENTS", "many")])
            )
            .unwrap_err()
        );
        assert!(e.contains("hls.window_segments"), "{e}");

        let cli = Cli {
            set: vec!["hls.window_segments=1".into()],
            ..Default::default()
        };
        let e = format!("{:#}", Config::load(&cli, env(&[])).unwrap_err());
        assert!(e.contains("hls.window_segments"), "{e}");

        std::fs::write(&file, "[hls]\ntarget_duration_ms = \"long\"\n").unwrap();
        let cli = Cli {
            config: Some(file),
            ..Default::default()
        };
        let e = format!("{:#}", Config::load(&cli, env(&[])).unwrap_err());
        assert!(e.contains("target_duration_ms"), "{e}");
    }
}
