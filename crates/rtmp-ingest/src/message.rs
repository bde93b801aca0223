//! Protocol control messages (types 1, 2, 3, 5, 6; RTMP §5.4), User Control (type 4; §7.1.7)
//! and aggregate messages (type 22; §7.1.6).

use bytes::{BufMut, Bytes, BytesMut};

use crate::chunk::{message_type, ChunkEncoder, ChunkStreamId};
use crate::error::{HexExcerpt, IngestError};

/// Chunk stream used for protocol control and user control messages.
pub const CONTROL_CSID: ChunkStreamId = 2;

/// User Control event types.
pub mod user_control {
    pub const STREAM_BEGIN: u16 = 0;
    pub const STREAM_EOF: u16 = 1;
    pub const STREAM_DRY: u16 = 2;
    pub const SET_BUFFER_LENGTH: u16 = 3;
    pub const STREAM_IS_RECORDED: u16 = 4;
    pub const PING_REQUEST: u16 = 6;
    pub const PING_RESPONSE: u16 = 7;
}

/// Set Peer Bandwidth limit types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BandwidthLimit {
    Hard = 0,
    Soft = 1,
    Dynamic = 2,
}

/// A decoded protocol control / user control message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlMessage {
    SetChunkSize { chunk_size: u32 },
    Abort { csid: ChunkStreamId },
    Acknowledgement { sequence_number: u32 },
    WindowAckSize { window_bytes: u32 },
    SetPeerBandwidth { window_bytes: u32, limit_type: u8 },
    UserControl(UserControlEvent),
}

/// A User Control event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserControlEvent {
    StreamBegin {
        stream_id: u32,
    },
    StreamEof {
        stream_id: u32,
    },
    StreamDry {
        stream_id: u32,
    },
    SetBufferLength {
        stream_id: u32,
        buffer_length_ms: u32,
    },
    StreamIsRecorded {
        stream_id: u32,
    },
    PingRequest {
        timestamp: u32,
    },
    PingResponse {
        timestamp: u32,
    },
    /// Events outside the spec (SWF verification, BufferEmpty/Ready, ...), kept opaque.
    Other {
        event_type: u16,
        data: Bytes,
    },
}

fn short(csid: ChunkStreamId, type_id: u8, payload: &[u8], need: usize) -> IngestError {
    IngestError::MalformedMessage {
        csid,
        type_id,
        reason: format!("payload of {} bytes, need {need}", payload.len()),
        offset: 0,
        excerpt: HexExcerpt::of(payload),
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Parses a control message of type 1..=6. Returns `Ok(None)` for other types.
pub fn parse_control(
    csid: ChunkStreamId,
    type_id: u8,
    payload: &Bytes,
) -> Result<Option<ControlMessage>, IngestError> {
    let u32_at = |at: usize, need: usize| {
        be32(payload, at).ok_or_else(|| short(csid, type_id, payload, need))
    };
    Ok(Some(match type_id {
        message_type::SET_CHUNK_SIZE => ControlMessage::SetChunkSize {
            chunk_size: u32_at(0, 4)?,
        },
        message_type::ABORT => ControlMessage::Abort {
            csid: u32_at(0, 4)?,
        },
        message_type::ACKNOWLEDGEMENT => ControlMessage::Acknowledgement {
            sequence_number: u32_at(0, 4)?,
        },
        message_type::WINDOW_ACK_SIZE => ControlMessage::WindowAckSize {
            window_bytes: u32_at(0, 4)?,
        },
        message_type::SET_PEER_BANDWIDTH => {
            let window_bytes = u32_at(0, 5)?;
            // Some peers omit the limit type; treat as dynamic.
            let limit_type = payload
                .get(4)
                .copied()
                .unwrap_or(BandwidthLimit::Dynamic as u8);
            ControlMessage::SetPeerBandwidth {
                window_bytes,
                limit_type,
            }
        }
        message_type::USER_CONTROL => {
            let Some(ev) = payload.get(..2) else {
                return Err(short(csid, type_id, payload, 2));
            };
            let event_type = u16::from_be_bytes([ev[0], ev[1]]);
            let arg =
                |need: usize| be32(payload, 2).ok_or_else(|| short(csid, type_id, payload, need));
            ControlMessage::UserControl(match event_type {
                user_control::STREAM_BEGIN => UserControlEvent::StreamBegin { stream_id: arg(6)? },
                user_control::STREAM_EOF => UserControlEvent::StreamEof { stream_id: arg(6)? },
                user_control::STREAM_DRY => UserControlEvent::StreamDry { stream_id: arg(6)? },
                user_control::SET_BUFFER_LENGTH => UserControlEvent::SetBufferLength {
                    stream_id: arg(10)?,
                    buffer_length_ms: be32(payload, 6)
                        .ok_or_else(|| short(csid, type_id, payload, 10))?,
                },
                user_control::STREAM_IS_RECORDED => {
                    UserControlEvent::StreamIsRecorded { stream_id: arg(6)? }
                }
                user_control::PING_REQUEST => UserControlEvent::PingRequest { timestamp: arg(6)? },
                user_control::PING_RESPONSE => {
                    UserControlEvent::PingResponse { timestamp: arg(6)? }
                }
                _ => UserControlEvent::Other {
                    event_type,
                    data: payload.slice(2..),
                },
            })
        }
        _ => return Ok(None),
    }))
}

/// Writes protocol control messages (csid 2, message stream 0, timestamp 0).
pub fn write_control(enc: &mut ChunkEncoder, out: &mut BytesMut, msg: &ControlMessage) {
    let mut body = BytesMut::with_capacity(10);
    let type_id = match msg {
        ControlMessage::SetChunkSize { chunk_size } => {
            body.put_u32(*chunk_size & 0x7FFF_FFFF);
            message_type::SET_CHUNK_SIZE
        }
        ControlMessage::Abort { csid } => {
            body.put_u32(*csid);
            message_type::ABORT
        }
        ControlMessage::Acknowledgement { sequence_number } => {
            body.put_u32(*sequence_number);
            message_type::ACKNOWLEDGEMENT
        }
        ControlMessage::WindowAckSize { window_bytes } => {
            body.put_u32(*window_bytes);
            message_type::WINDOW_ACK_SIZE
        }
        ControlMessage::SetPeerBandwidth {
            window_bytes,
            limit_type,
        } => {
            body.put_u32(*window_bytes);
            body.put_u8(*limit_type);
            message_type::SET_PEER_BANDWIDTH
        }
        ControlMessage::UserControl(ev) => {
            let (event_type, a, b) = match ev {
                UserControlEvent::StreamBegin { stream_id } => {
                    (user_control::STREAM_BEGIN, *stream_id, None)
                }
                UserControlEvent::StreamEof { stream_id } => {
                    (user_control::STREAM_EOF, *stream_id, None)
                }
                UserControlEvent::StreamDry { stream_id } => {
                    (user_control::STREAM_DRY, *stream_id, None)
                }
                UserControlEvent::SetBufferLength {
                    stream_id,
                    buffer_length_ms,
                } => (
                    user_control::SET_BUFFER_LENGTH,
                    *stream_id,
                    Some(*buffer_length_ms),
                ),
                UserControlEvent::StreamIsRecorded { stream_id } => {
                    (user_control::STREAM_IS_RECORDED, *stream_id, None)
                }
                UserControlEvent::PingRequest { timestamp } => {
                    (user_control::PING_REQUEST, *timestamp, None)
                }
                UserControlEvent::PingResponse { timestamp } => {
                    (user_control::PING_RESPONSE, *timestamp, None)
                }
                UserControlEvent::Other { event_type, data } => {
                    body.put_u16(*event_type);
                    body.put_slice(data);
                    enc.write_message(out, CONTROL_CSID, 0, message_type::USER_CONTROL, 0, &body);
                    return;
                }
            };
            body.put_u16(event_type);
            body.put_u32(a);
            if let Some(b) = b {
                body.put_u32(b);
            }
            message_type::USER_CONTROL
        }
    };
    enc.write_message(out, CONTROL_CSID, 0, type_id, 0, &body);
}

/// One FLV tag carried inside an aggregate message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AggregatePart {
    pub type_id: u8,
    /// Rebased: sub timestamp + (aggregate timestamp - first sub timestamp), wrapping.
    pub timestamp_ms: u32,
    pub payload: Bytes,
}

/// Splits an aggregate message body (a run of FLV tags with back-pointers) into its tags.
/// Every size is bounds-checked against the body; nothing is allocated from wire counts.
pub fn split_aggregate(
    csid: ChunkStreamId,
    aggregate_timestamp_ms: u32,
    body: &Bytes,
) -> Result<Vec<AggregatePart>, IngestError> {
    const TAG_HEADER: usize = 11;
    let mut parts = Vec::new();
    let mut pos = 0usize;
    let mut first_ts: Option<u32> = None;
    let err = |reason: &str, at: usize| IngestError::MalformedMessage {
        csid,
        type_id: message_type::AGGREGATE,
        reason: reason.to_owned(),
        offset: at,
        excerpt: HexExcerpt::at(body, at),
    };
    while pos < body.len() {
        let h = body
            .get(pos..pos + TAG_HEADER)
            .ok_or_else(|| err("truncated aggregate sub-message header", pos))?;
        let type_id = h[0] & 0x1f;
        let size = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        let ts = (u32::from(h[7]) << 24)
            | (u32::from(h[4]) << 16)
            | (u32::from(h[5]) << 8)
            | u32::from(h[6]);
        let data_start = pos + TAG_HEADER;
        let data_end = data_start
            .checked_add(size)
            .ok_or_else(|| err("sub-message size overflow", pos))?;
        if data_end > body.len() {
            return Err(err(
                "aggregate sub-message runs past the end of the body",
                pos,
            ));
        }
        let first = *first_ts.get_or_insert(ts);
        let timestamp_ms = ts.wrapping_add(aggregate_timestamp_ms.wrapping_sub(first));
        parts.push(AggregatePart {
            type_id,
            timestamp_ms,
            payload: body.slice(data_start..data_end),
        });
        // Back-pointer (u32). Tolerate its absence after the last tag.
        pos = data_end.saturating_add(4);
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{decoder::DecoderLimits, ChunkDecoder};

    #[test]
    fn control_round_trip_table() {
        let msgs = [
            ControlMessage::SetChunkSize { chunk_size: 4096 },
            ControlMessage::Abort { csid: 6 },
            ControlMessage::Acknowledgement {
                sequence_number: 5_000_001,
            },
            ControlMessage::WindowAckSize {
                window_bytes: 2_500_000,
            },
            ControlMessage::SetPeerBandwidth {
                window_bytes: 2_500_000,
                limit_type: 2,
            },
            ControlMessage::UserControl(UserControlEvent::StreamBegin { stream_id: 1 }),
            ControlMessage::UserControl(UserControlEvent::SetBufferLength {
                stream_id: 1,
                buffer_length_ms: 3000,
            }),
            ControlMessage::UserControl(UserControlEvent::PingRequest { timestamp: 42 }),
            ControlMessage::UserControl(UserControlEvent::PingResponse { timestamp: 43 }),
            ControlMessage::UserControl(UserControlEvent::Other {
                event_type: 31,
                data: Bytes::from_static(&[0, 0, 0, 1]),
            }),
        ];
        for m in msgs {
            let mut enc = ChunkEncoder::new();
            let mut out = BytesMut::new();
            write_control(&mut enc, &mut out, &m);
            let mut dec = ChunkDecoder::new(DecoderLimits {
                max_message_bytes: 1000,
                max_chunk_size: 1 << 24,
                max_chunk_streams: 4,
                max_partial_bytes: 1 << 26,
            });
            dec.handle_input(&out).unwrap();
            let raw = dec.poll_message().unwrap();
            assert_eq!((raw.csid, raw.stream_id), (2, 0));
            assert_eq!(
                parse_control(raw.csid, raw.type_id, &raw.payload).unwrap(),
                Some(m)
            );
        }
    }

    #[test]
    fn short_control_payloads_are_errors() {
        for (ty, p) in [
            (3u8, &[0u8, 0][..]),
            (4, &[0][..]),
            (4, &[0, 6, 0][..]),
            (4, &[0, 3, 0, 0, 0, 1][..]),
            (6, &[0, 0, 0][..]),
        ] {
            assert!(
                parse_control(2, ty, &Bytes::copy_from_slice(p)).is_err(),
                "type {ty} {p:?}"
            );
        }
        assert_eq!(parse_control(2, 9, &Bytes::new()).unwrap(), None);
    }

    fn sub(ty: u8, ts: u32, data: &[u8]) -> Vec<u8> {
        let mut v = vec![ty];
        v.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        v.extend_from_slice(&ts.to_be_bytes()[1..]);
        v.push((ts >> 24) as u8);
        v.extend_from_slice(&[0, 0, 0]);
        v.extend_from_slice(data);
        v.extend_from_slice(&(data.len() as u32 + 11).to_be_bytes());
        v
    }

    #[test]
    fn aggregate_split_rebases_timestamps() {
        let mut body = sub(9, 1000, &[0x17, 1]);
        body.extend(sub(8, 1010, &[0xAF, 1, 2]));
        body.extend(sub(9, 0x0100_0000 + 5, &[0x27]));
        let parts = split_aggregate(4, 5000, &Bytes::from(body)).unwrap();
        let got: Vec<(u8, u32, usize)> = parts
            .iter()
            .map(|p| (p.type_id, p.timestamp_ms, p.payload.len()))
            .collect();
        assert_eq!(
            got,
            vec![(9, 5000, 2), (8, 5010, 3), (9, 0x0100_0000 + 4005, 1)]
        );
    }

    #[test]
    fn aggregate_bounds_are_checked() {
        let mut body = sub(9, 0, &[1, 2, 3]);
        body[3] = 200; // size runs past the end
        assert!(split_aggregate(4, 0, &Bytes::from(body)).is_err());
        assert!(split_aggregate(4, 0, &Bytes::from_static(&[9, 0, 0])).is_err());
        assert!(split_aggregate(4, 0, &Bytes::new()).unwrap().is_empty());
    }
}
