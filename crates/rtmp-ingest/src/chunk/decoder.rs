//! Chunk stream decoder (RTMP §5.3.1–5.3.2, §5.4.1–5.4.2).
//!
//! Bytes go in with [`ChunkDecoder::handle_input`]; complete messages come out of
//! [`ChunkDecoder::poll_message`]. Header bytes split across reads are kept in an 18-byte buffer;
//! payload bytes are copied once, straight from the input into the message's `BytesMut`.
//! Set Chunk Size (type 1) and Abort (type 2) are applied here, at the exact point in the stream
//! where they arrive, and still handed on so the session can see them.
//!
//! Extended timestamps on type-3 chunks: RTMP §5.3.1.3 says they are repeated; OBS/librtmp
//! readers never read them and some writers leave them out. Like SRS (`SrsChunkStream`, PR #4356)
//! we peek at 4 bytes and consume them only if they equal the last extended value on that chunk
//! stream.

use std::collections::{HashMap, VecDeque};

use bytes::BytesMut;

use super::{
    message_type, ChunkStreamId, RawMessage, DEFAULT_CHUNK_SIZE, EXTENDED_TIMESTAMP_MARKER,
};
use crate::error::{HexExcerpt, IngestError};

/// Longest possible chunk header: 3 (basic) + 11 (fmt 0) + 4 (extended timestamp).
const MAX_HEADER_BYTES: usize = 18;
/// Initial capacity of a message body: the whole message up to 64 KiB (audio frames and most
/// inter frames are allocated once, without regrowth copies); larger bodies grow (amortised
/// doubling) as bytes actually arrive, so a peer cannot make us reserve much memory by only
/// announcing lengths (64 chunk streams each announcing a large message cost at most 64 x 64 KiB,
/// the same as one chunk each at the largest chunk sizes).
const MAX_INITIAL_BODY_CAPACITY: usize = 64 * 1024;

/// Limits for the decoder (from [`crate::IngestConfig`]).
#[derive(Clone, Copy, Debug)]
pub struct DecoderLimits {
    pub max_message_bytes: u32,
    pub max_chunk_size: u32,
    pub max_chunk_streams: usize,
    /// Bytes held in partly received messages, over all chunk streams of the connection.
    pub max_partial_bytes: u64,
}

#[derive(Debug, Default)]
struct ChunkStreamState {
    /// Timestamp of the last message started on this chunk stream.
    timestamp_ms: u32,
    /// Delta reused by fmt 3 chunks that start a new message.
    delta_ms: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The extended-timestamp field of the last fmt 0/1/2 header, if it had one.
    extended: Option<u32>,
    /// The message being assembled.
    partial: Option<BytesMut>,
}

#[derive(Debug)]
struct Header {
    fmt: u8,
    csid: ChunkStreamId,
    timestamp_field: u32,
    length: Option<u32>,
    type_id: Option<u8>,
    stream_id: Option<u32>,
    extended: Option<u32>,
}

/// The chunk stream decoder.
#[derive(Debug)]
pub struct ChunkDecoder {
    limits: DecoderLimits,
    chunk_size: u32,
    streams: HashMap<ChunkStreamId, ChunkStreamState>,
    partial_count: usize,
    /// Bytes currently held in partly received messages.
    partial_bytes: u64,
    header_buf: [u8; MAX_HEADER_BYTES],
    header_len: usize,
    /// Chunk stream and payload bytes still expected for the chunk being read.
    in_chunk: Option<(ChunkStreamId, u32)>,
    offset: u64,
    ready: VecDeque<RawMessage>,
}

impl ChunkDecoder {
    pub fn new(limits: DecoderLimits) -> Self {
        Self {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            partial_count: 0,
            partial_bytes: 0,
            header_buf: [0; MAX_HEADER_BYTES],
            header_len: 0,
            in_chunk: None,
            offset: 0,
            ready: VecDeque::new(),
        }
    }

    /// The chunk size currently used by the peer.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Total bytes consumed so far (error offsets are relative to this).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of chunk streams holding a partly received message.
    pub fn partial_messages(&self) -> usize {
        self.partial_count
    }

    /// A lower bound on the input bytes still needed before a partly received message can
    /// complete (its missing payload plus at least one header byte per chunk still to come),
    /// over all chunk streams; `None` when no message is partly received.
    ///
    /// Drivers use it to be woken when a large message is complete rather than per TCP segment
    /// (`SO_RCVLOWAT`); a lower bound only ever wakes them early, never late.
    pub fn bytes_to_complete_message(&self) -> Option<usize> {
        let chunk_size = self.chunk_size.max(1) as usize;
        self.streams
            .iter()
            .filter_map(|(csid, state)| {
                let have = state.partial.as_ref()?.len();
                let missing = (state.length as usize).saturating_sub(have);
                let in_current = match self.in_chunk {
                    Some((c, r)) if c == *csid => (r as usize).min(missing),
                    _ => 0,
                };
                let headers = (missing - in_current).div_ceil(chunk_size);
                Some((missing + headers).saturating_sub(self.header_len))
            })
            .min()
    }

    /// The next complete message.
    pub fn poll_message(&mut self) -> Option<RawMessage> {
        self.ready.pop_front()
    }

    /// Consumes `data`. Errors are fatal for the connection.
    pub fn handle_input(&mut self, mut data: &[u8]) -> Result<(), IngestError> {
        while !data.is_empty() {
            if let Some((csid, remaining)) = self.in_chunk {
                let n = (remaining as usize).min(data.len());
                let offset = self.offset;
                let lost = || IngestError::MalformedChunk {
                    csid,
                    reason: "decoder lost track of the chunk stream",
                    offset,
                    excerpt: HexExcerpt::of(&[]),
                };
                let state = self.streams.get_mut(&csid).ok_or_else(lost)?;
                let Some(body) = state.partial.as_mut() else {
                    return Err(lost());
                };
                if self.partial_bytes + n as u64 > self.limits.max_partial_bytes {
                    return Err(IngestError::LimitExceeded {
                        limit: "max_partial_bytes (bytes in partly received messages)",
                        value: self.partial_bytes + n as u64,
                        max: self.limits.max_partial_bytes,
                        csid: Some(csid),
                        type_id: Some(state.type_id),
                    });
                }
                self.partial_bytes += n as u64;
                body.extend_from_slice(&data[..n]);
                let complete = body.len() as u64 >= u64::from(state.length);
                data = &data[n..];
                self.offset += n as u64;
                let left = remaining - n as u32;
                if left == 0 {
                    self.in_chunk = None;
                    if complete {
                        self.complete(csid)?;
                    }
                } else {
                    self.in_chunk = Some((csid, left));
                }
                continue;
            }
            let have = self.header_len;
            let take = (MAX_HEADER_BYTES - have).min(data.len());
            self.header_buf[have..have + take].copy_from_slice(&data[..take]);
            let avail = have + take;
            match self.parse_header(avail)? {
                None => {
                    self.header_len = avail;
                    data = &data[take..];
                    self.offset += take as u64;
                }
                Some((header, used)) if used >= have => {
                    let from_data = used - have;
                    data = data.get(from_data..).unwrap_or(&[]);
                    self.offset += from_data as u64;
                    self.header_len = 0;
                    self.apply(header)?;
                }
                Some((header, used)) => {
                    // Bytes buffered by an earlier call turned out not to belong to this header
                    // (a type-3 chunk whose 4 peeked bytes were payload). Replay them before `data`,
                    // which has not been advanced. The replay starts with an empty header buffer,
                    // so it never takes this branch again: recursion depth is at most 1.
                    let mut leftover = [0u8; MAX_HEADER_BYTES];
                    let n = have - used;
                    leftover[..n].copy_from_slice(&self.header_buf[used..have]);
                    self.header_len = 0;
                    self.offset = self.offset.saturating_sub(n as u64);
                    self.apply(header)?;
                    self.handle_input(&leftover[..n])?;
                }
            }
        }
        Ok(())
    }

    fn internal(&self, csid: ChunkStreamId) -> IngestError {
        IngestError::MalformedChunk {
            csid,
            reason: "decoder lost track of the chunk stream",
            offset: self.offset,
            excerpt: HexExcerpt::of(&[]),
        }
    }

    fn malformed(&self, csid: ChunkStreamId, reason: &'static str, avail: usize) -> IngestError {
        IngestError::MalformedChunk {
            csid,
            reason,
            offset: self.offset.saturating_sub(self.header_len as u64),
            excerpt: HexExcerpt::of(&self.header_buf[..avail]),
        }
    }

    /// Parses a header from `header_buf[..avail]`; `None` = need more bytes.
    fn parse_header(&self, avail: usize) -> Result<Option<(Header, usize)>, IngestError> {
        let b = &self.header_buf[..avail];
        let Some(&b0) = b.first() else {
            return Ok(None);
        };
        let fmt = b0 >> 6;
        let (csid, mut pos) = match b0 & 0x3f {
            0 => match b.get(1) {
                Some(&x) => (64 + u32::from(x), 2),
                None => return Ok(None),
            },
            1 => match (b.get(1), b.get(2)) {
                (Some(&lo), Some(&hi)) => (64 + u32::from(lo) + 256 * u32::from(hi), 3),
                _ => return Ok(None),
            },
            n => (u32::from(n), 1),
        };
        let message_header_len = [11usize, 7, 3, 0][usize::from(fmt)];
        let Some(mh) = b.get(pos..pos + message_header_len) else {
            return Ok(None);
        };
        pos += message_header_len;
        let u24 = |s: &[u8]| (u32::from(s[0]) << 16) | (u32::from(s[1]) << 8) | u32::from(s[2]);
        let mut header = Header {
            fmt,
            csid,
            timestamp_field: 0,
            length: None,
            type_id: None,
            stream_id: None,
            extended: None,
        };
        if fmt <= 2 {
            header.timestamp_field = u24(&mh[0..3]);
        }
        if fmt <= 1 {
            header.length = Some(u24(&mh[3..6]));
            header.type_id = Some(mh[6]);
        }
        if fmt == 0 {
            header.stream_id = Some(u32::from_le_bytes([mh[7], mh[8], mh[9], mh[10]]));
        }
        let state = self.streams.get(&csid);
        if fmt >= 2 && state.is_none() {
            return Err(self.malformed(
                csid,
                "fmt 2/3 chunk on a chunk stream without a previous header",
                avail,
            ));
        }
        if fmt <= 2 && header.timestamp_field == EXTENDED_TIMESTAMP_MARKER {
            let Some(e) = b.get(pos..pos + 4) else {
                return Ok(None);
            };
            header.extended = Some(u32::from_be_bytes([e[0], e[1], e[2], e[3]]));
            pos += 4;
        } else if fmt == 3 {
            if let Some(want) = state.and_then(|s| s.extended) {
                // SRS compare-and-rewind: consume only if the 4 bytes repeat the last extended value.
                let Some(e) = b.get(pos..pos + 4) else {
                    return Ok(None);
                };
                if u32::from_be_bytes([e[0], e[1], e[2], e[3]]) == want {
                    pos += 4;
                }
            }
        }
        Ok(Some((header, pos)))
    }

    fn apply(&mut self, h: Header) -> Result<(), IngestError> {
        let csid = h.csid;
        let known = self.streams.len();
        let max_known = self.limits.max_chunk_streams.saturating_mul(4).max(16);
        let offset = self.offset;
        if !self.streams.contains_key(&csid) && known >= max_known {
            return Err(IngestError::LimitExceeded {
                limit: "chunk streams per connection",
                value: known as u64 + 1,
                max: max_known as u64,
                csid: Some(csid),
                type_id: h.type_id,
            });
        }
        let state = self.streams.entry(csid).or_default();
        if state.partial.is_some() {
            if h.fmt != 3 {
                return Err(IngestError::MalformedChunk {
                    csid,
                    reason: "new message header while the previous message is incomplete",
                    offset,
                    excerpt: HexExcerpt::of(&[]),
                });
            }
        } else {
            // A new message starts.
            let field = h.extended.unwrap_or(h.timestamp_field);
            match h.fmt {
                0 => {
                    state.timestamp_ms = field;
                    // [RTMP] §5.3.1.2.4: a type-3 chunk after type 0 uses the type-0 timestamp as delta.
                    state.delta_ms = field;
                }
                1 | 2 => {
                    state.delta_ms = field;
                    state.timestamp_ms = state.timestamp_ms.wrapping_add(field);
                }
                _ => state.timestamp_ms = state.timestamp_ms.wrapping_add(state.delta_ms),
            }
            if h.fmt <= 2 {
                state.extended = h.extended;
            }
            if let Some(length) = h.length {
                state.length = length;
            }
            if let Some(type_id) = h.type_id {
                state.type_id = type_id;
            }
            if let Some(stream_id) = h.stream_id {
                state.stream_id = stream_id;
            }
            if state.length > self.limits.max_message_bytes {
                return Err(IngestError::LimitExceeded {
                    limit: "max_message_bytes",
                    value: state.length.into(),
                    max: self.limits.max_message_bytes.into(),
                    csid: Some(csid),
                    type_id: Some(state.type_id),
                });
            }
            if state.length == 0 {
                let msg = RawMessage {
                    csid,
                    timestamp_ms: state.timestamp_ms,
                    type_id: state.type_id,
                    stream_id: state.stream_id,
                    payload: bytes::Bytes::new(),
                };
                return self.deliver(msg);
            }
            if self.partial_count >= self.limits.max_chunk_streams {
                return Err(IngestError::LimitExceeded {
                    limit: "max_chunk_streams (partial messages)",
                    value: self.partial_count as u64 + 1,
                    max: self.limits.max_chunk_streams as u64,
                    csid: Some(csid),
                    type_id: Some(state.type_id),
                });
            }
            state.partial = Some(BytesMut::with_capacity(
                (state.length as usize).min(MAX_INITIAL_BODY_CAPACITY),
            ));
            self.partial_count += 1;
        }
        let have = state.partial.as_ref().map_or(0, |p| p.len() as u32);
        let chunk_payload = state.length.saturating_sub(have).min(self.chunk_size);
        if chunk_payload == 0 {
            return self.complete(csid);
        }
        self.in_chunk = Some((csid, chunk_payload));
        Ok(())
    }

    fn complete(&mut self, csid: ChunkStreamId) -> Result<(), IngestError> {
        let Some(state) = self.streams.get_mut(&csid) else {
            return Err(self.internal(csid));
        };
        let Some(body) = state.partial.take() else {
            return Err(self.internal(csid));
        };
        self.partial_count = self.partial_count.saturating_sub(1);
        self.partial_bytes = self.partial_bytes.saturating_sub(body.len() as u64);
        let msg = RawMessage {
            csid,
            timestamp_ms: state.timestamp_ms,
            type_id: state.type_id,
            stream_id: state.stream_id,
            payload: body.freeze(),
        };
        self.deliver(msg)
    }

    /// Applies Set Chunk Size / Abort, then queues the message.
    fn deliver(&mut self, msg: RawMessage) -> Result<(), IngestError> {
        match msg.type_id {
            message_type::SET_CHUNK_SIZE | message_type::ABORT => {
                let Some(v) = msg.payload.get(..4) else {
                    return Err(IngestError::MalformedMessage {
                        csid: msg.csid,
                        type_id: msg.type_id,
                        reason: format!("control payload of {} bytes, need 4", msg.payload.len()),
                        offset: 0,
                        excerpt: HexExcerpt::of(&msg.payload),
                    });
                };
                let value = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
                if msg.type_id == message_type::SET_CHUNK_SIZE {
                    if value == 0 || value & 0x8000_0000 != 0 {
                        return Err(IngestError::InvalidChunkSize { size: value });
                    }
                    if value > self.limits.max_chunk_size {
                        return Err(IngestError::LimitExceeded {
                            limit: "max_chunk_size",
                            value: value.into(),
                            max: self.limits.max_chunk_size.into(),
                            csid: Some(msg.csid),
                            type_id: Some(msg.type_id),
                        });
                    }
                    self.chunk_size = value;
                } else if let Some(state) = self.streams.get_mut(&value) {
                    if let Some(dropped) = state.partial.take() {
                        self.partial_count = self.partial_count.saturating_sub(1);
                        self.partial_bytes =
                            self.partial_bytes.saturating_sub(dropped.len() as u64);
                    }
                }
            }
            _ => {}
        }
        self.ready.push_back(msg);
        Ok(())
    }
}
