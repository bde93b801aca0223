//! Chunk stream encoder (RTMP §5.3.1, §5.4.1).
//!
//! The server writes every message with a fmt 0 header (continuations fmt 3), which no reader can
//! misinterpret. With [`ChunkEncoder::with_header_compression`] it picks the smallest header like a
//! real client does (fmt 1/2/3 when fields repeat) — used by the test client to exercise the decoder.
//! Extended timestamps are repeated on continuation chunks, as Flash, FMS, ffmpeg, OBS and nginx do.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::{ChunkStreamId, MessageStreamId, DEFAULT_CHUNK_SIZE, EXTENDED_TIMESTAMP_MARKER};

#[derive(Clone, Copy, Debug)]
struct LastHeader {
    timestamp_ms: u32,
    delta_ms: u32,
    length: u32,
    type_id: u8,
    stream_id: MessageStreamId,
    extended: bool,
}

/// The chunk stream encoder.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    compress: bool,
    repeat_extended_on_type3: bool,
    last: HashMap<ChunkStreamId, LastHeader>,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    pub fn new() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            compress: false,
            repeat_extended_on_type3: true,
            last: HashMap::new(),
        }
    }

    /// Use fmt 1/2/3 headers when fields repeat (what OBS and ffmpeg do).
    pub fn with_header_compression(mut self) -> Self {
        self.compress = true;
        self
    }

    /// Whether type-3 chunks repeat the extended timestamp (default true; false = OBS-reader style).
    pub fn repeat_extended_on_type3(mut self, repeat: bool) -> Self {
        self.repeat_extended_on_type3 = repeat;
        self
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Our outgoing chunk size; call after queueing the Set Chunk Size message itself. Clamped to >= 1.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.max(1);
    }

    fn basic_header(out: &mut BytesMut, fmt: u8, csid: ChunkStreamId) {
        let fmt_bits = fmt << 6;
        match csid {
            2..=63 => out.put_u8(fmt_bits | csid as u8),
            64..=319 => {
                out.put_u8(fmt_bits);
                out.put_u8((csid - 64) as u8);
            }
            _ => {
                let v = csid.saturating_sub(64).min(0xFFFF);
                out.put_u8(fmt_bits | 1);
                out.put_u8((v & 0xff) as u8);
                out.put_u8((v >> 8) as u8);
            }
        }
    }

    fn put_u24(out: &mut BytesMut, v: u32) {
        out.put_slice(&v.to_be_bytes()[1..]);
    }

    /// Appends one message as chunks. `csid` must be in 2..=65599; `payload.len()` < 2^24.
    pub fn write_message(
        &mut self,
        out: &mut BytesMut,
        csid: ChunkStreamId,
        timestamp_ms: u32,
        type_id: u8,
        stream_id: MessageStreamId,
        payload: &[u8],
    ) {
        self.write_with(
            out,
            csid,
            timestamp_ms,
            type_id,
            stream_id,
            payload.len(),
            |out, range| out.put_slice(&payload[range]),
        );
    }

    /// Like [`ChunkEncoder::write_message`] without copying the payload: chunk headers are
    /// written into `scratch` and pushed to `queue` as frozen `Bytes`, interleaved with
    /// zero-copy slices of `payload` (one shared tag body fans out to every player).
    #[allow(clippy::too_many_arguments)]
    pub fn write_message_shared(
        &mut self,
        queue: &mut VecDeque<Bytes>,
        scratch: &mut BytesMut,
        csid: ChunkStreamId,
        timestamp_ms: u32,
        type_id: u8,
        stream_id: MessageStreamId,
        payload: &Bytes,
    ) {
        self.write_with(
            scratch,
            csid,
            timestamp_ms,
            type_id,
            stream_id,
            payload.len(),
            |out, range| {
                if !out.is_empty() {
                    queue.push_back(out.split().freeze());
                }
                queue.push_back(payload.slice(range));
            },
        );
        if !scratch.is_empty() {
            queue.push_back(scratch.split().freeze());
        }
    }

    /// Writes the chunk headers of one message into `out`; `put` emits each chunk's payload
    /// range right after its header.
    #[allow(clippy::too_many_arguments)]
    fn write_with(
        &mut self,
        out: &mut BytesMut,
        csid: ChunkStreamId,
        timestamp_ms: u32,
        type_id: u8,
        stream_id: MessageStreamId,
        payload_len: usize,
        mut put: impl FnMut(&mut BytesMut, Range<usize>),
    ) {
        let length = (payload_len as u32).min(0xFF_FFFF);
        let prev = self.last.get(&csid).copied();
        let delta = prev.map(|p| timestamp_ms.wrapping_sub(p.timestamp_ms));
        let fmt = match (self.compress, prev, delta) {
            (true, Some(p), Some(d))
                if p.stream_id == stream_id && timestamp_ms >= p.timestamp_ms =>
            {
                if p.length == length && p.type_id == type_id {
                    if d == p.delta_ms {
                        3
                    } else {
                        2
                    }
                } else {
                    1
                }
            }
            _ => 0,
        };
        let field = if fmt == 0 {
            timestamp_ms
        } else {
            delta.unwrap_or(0)
        };
        let extended = if fmt == 3 {
            prev.is_some_and(|p| p.extended)
        } else {
            field >= EXTENDED_TIMESTAMP_MARKER
        };
        let ext_value = if fmt == 3 {
            prev.map_or(0, |p| p.delta_ms)
        } else {
            field
        };
        // After fmt 0 the stored delta is the absolute timestamp ([RTMP] §5.3.1.2.4).
        let new_delta = if fmt == 3 {
            prev.map_or(0, |p| p.delta_ms)
        } else {
            field
        };
        self.last.insert(
            csid,
            LastHeader {
                timestamp_ms,
                delta_ms: new_delta,
                length,
                type_id,
                stream_id,
                extended,
            },
        );

        Self::basic_header(out, fmt, csid);
        let ts_field = if extended {
            EXTENDED_TIMESTAMP_MARKER
        } else {
            field
        };
        if fmt <= 2 {
            Self::put_u24(out, ts_field);
        }
        if fmt <= 1 {
            Self::put_u24(out, length);
            out.put_u8(type_id);
        }
        if fmt == 0 {
            out.put_u32_le(stream_id);
        }
        if extended && (fmt <= 2 || self.repeat_extended_on_type3) {
            out.put_u32(ext_value);
        }
        let chunk = self.chunk_size as usize;
        let total = length as usize;
        let mut at = 0;
        while at < total {
            if at > 0 {
                Self::basic_header(out, 3, csid);
                if extended && self.repeat_extended_on_type3 {
                    out.put_u32(ext_value);
                }
            }
            let end = (at + chunk).min(total);
            put(out, at..end);
            at = end;
        }
    }
}
