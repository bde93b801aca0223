//! The RTMP, HTTP, auth and log sections of the configuration (defaults from the libraries).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::duration_ms;

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
