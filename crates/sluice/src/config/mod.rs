//! Configuration: embedded defaults, then a TOML file (`--config`), then `SLUICE_*` environment
//! variables, then command-line flags, each layer overriding the one before.
//!
//! Every setting lives in [`Config`]; `docs/configuration.md` documents each one with its default.
//! Sections live in `sections` (RTMP, HTTP, auth, log) and `hls`; `validate` holds the range
//! checks, `layers` the merging of TOML values.
//! Layers are merged as TOML values and deserialized once with `deny_unknown_fields`, so an unknown
//! key or a value of the wrong type is rejected at start with the setting's name.

mod hls;
mod layers;
mod sections;
#[cfg(test)]
mod tests;
mod validate;

pub use hls::HlsConfig;
pub use sections::{AuthConfig, HttpConfig, LogConfig, RtmpConfig};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use clap::Parser;
use layers::{known_settings, merge, set_path};
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

/// Milliseconds of a library `Duration` default, for the `*_ms` settings.
fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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
}

impl Config {
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
