//! Limits and tunables for the ingest side (all enforced before allocating; see README "Configuration").

use std::time::Duration;

/// Configuration for [`crate::session::Session`] and [`crate::server::serve`].
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// Largest RTMP message body accepted (the u24 length allows 16 MiB - 1). Large keyframes must fit.
    pub max_message_bytes: u32,
    /// Largest Set Chunk Size accepted from the peer (the minimum is always 1).
    pub max_chunk_size: u32,
    /// Most chunk streams that may hold a partly received message at the same time.
    pub max_chunk_streams: usize,
    /// Bytes held in partly received messages over all chunk streams of one connection; bounds
    /// what `max_chunk_streams` x `max_message_bytes` would otherwise allow.
    pub max_partial_bytes: u64,
    /// Most `createStream` calls answered per connection.
    pub max_streams_per_connection: u32,
    /// AMF nesting depth limit (objects/arrays inside each other).
    pub amf_max_depth: usize,
    /// AMF element limit per message (values and properties, summed over all nesting levels).
    pub amf_max_elements: usize,
    /// Absolute deadline from TCP accept until a publish has been accepted.
    pub handshake_to_publish_timeout: Duration,
    /// While publishing: close when no media arrived for this long.
    pub idle_timeout: Duration,
    /// Global connection cap (enforced at accept).
    pub max_connections: usize,
    /// Connection cap per peer IP address (enforced at accept).
    pub max_connections_per_ip: usize,
    /// Chunk size we announce and use for our own output.
    pub out_chunk_size: u32,
    /// Window Acknowledgement Size / Set Peer Bandwidth we announce.
    pub ack_window_bytes: u32,
    /// `None` = any app; otherwise `connect` to another app is refused.
    pub allowed_apps: Option<Vec<String>>,
    /// How long the driver waits for a socket write to progress before dropping the peer.
    pub write_timeout: Duration,
    /// While publishing, read coalescing: the driver asks the kernel (`SO_RCVLOWAT`) to wake it
    /// only when a partly received message is complete or `read_batch_bytes` are queued, and
    /// picks up smaller messages on a tick of this period shared by all connections. A large
    /// message (a keyframe) is still read the moment it is complete; small ones wait at most one
    /// period. `Duration::ZERO` reads on every arrival.
    pub read_coalesce: Duration,
    /// Queued bytes that wake a coalescing reader before its tick.
    pub read_batch_bytes: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024 * 1024 - 1,
            max_chunk_size: 16 * 1024 * 1024,
            max_chunk_streams: 64,
            max_partial_bytes: 32 * 1024 * 1024,
            max_streams_per_connection: 8,
            amf_max_depth: 32,
            amf_max_elements: 4096,
            handshake_to_publish_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 1000,
            max_connections_per_ip: 64,
            out_chunk_size: 4096,
            ack_window_bytes: 5_000_000,
            allowed_apps: None,
            write_timeout: Duration::from_secs(10),
            read_coalesce: Duration::from_millis(50),
            read_batch_bytes: 32 * 1024,
        }
    }
}

impl IngestConfig {
    /// The AMF limits as the decoder takes them.
    pub fn amf_limits(&self) -> crate::amf0::Amf0Limits {
        crate::amf0::Amf0Limits {
            max_depth: self.amf_max_depth,
            max_elements: self.amf_max_elements,
        }
    }

    /// `out_chunk_size` clamped to the legal range 1..=0x7FFF_FFFF.
    pub(crate) fn effective_out_chunk_size(&self) -> u32 {
        self.out_chunk_size.clamp(1, 0x7FFF_FFFF)
    }
}
