//! Deterministic in-memory client/server runs on a simulated clock: the harness (a tiny RTMP
//! client speaking to a [`Session`] through byte buffers, and the connect/createStream/publish
//! steps of Adobe RTMP 1.0 §7.2) shared by the publish and play tests below.

mod play;
mod publish;

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use super::*;
use crate::chunk::decoder::DecoderLimits;
use crate::handshake::PACKET_BYTES;

/// A tiny RTMP publisher speaking to a [`Session`] through byte buffers.
struct Client {
    enc: ChunkEncoder,
    dec: ChunkDecoder,
    out: BytesMut,
    got_handshake: usize,
}

impl Client {
    fn new() -> Self {
        Self {
            enc: ChunkEncoder::new().with_header_compression(),
            dec: ChunkDecoder::new(DecoderLimits {
                max_message_bytes: 1 << 24,
                max_chunk_size: 1 << 24,
                max_chunk_streams: 16,
                max_partial_bytes: 1 << 26,
            }),
            out: BytesMut::new(),
            got_handshake: 0,
        }
    }

    fn c0c1() -> Vec<u8> {
        let mut v = vec![3u8];
        v.extend((0..PACKET_BYTES).map(|i| if (4..8).contains(&i) { 0 } else { i as u8 }));
        v
    }

    fn command(&mut self, stream_id: u32, values: &[Amf0Value]) {
        let mut body = BytesMut::new();
        amf0::encode_all(values, &mut body);
        self.enc.write_message(
            &mut self.out,
            3,
            0,
            message_type::AMF0_COMMAND,
            stream_id,
            &body,
        );
    }

    fn send(&mut self, csid: u32, ts: u32, type_id: u8, stream_id: u32, payload: &[u8]) {
        self.enc
            .write_message(&mut self.out, csid, ts, type_id, stream_id, payload);
    }

    fn control(&mut self, msg: &ControlMessage) {
        message::write_control(&mut self.enc, &mut self.out, msg);
    }

    /// Moves queued client bytes into the server, `split` bytes at a time.
    fn flush_to(
        &mut self,
        server: &mut Session,
        now: Instant,
        split: usize,
    ) -> Result<(), IngestError> {
        let bytes = self.out.split();
        for piece in bytes.chunks(split.max(1)) {
            server.handle_input(now, piece)?;
        }
        Ok(())
    }

    /// Reads everything the server wrote; returns decoded messages (after S0+S1+S2).
    fn read_from(&mut self, server: &mut Session) -> Vec<RawMessage> {
        while let Some(mut b) = server.poll_transmit() {
            let skip = (1 + 2 * PACKET_BYTES - self.got_handshake).min(b.len());
            self.got_handshake += skip;
            let rest = b.split_off(skip);
            self.dec.handle_input(&rest).unwrap();
        }
        std::iter::from_fn(|| self.dec.poll_message()).collect()
    }
}

fn amf(msg: &RawMessage) -> Vec<Amf0Value> {
    amf0::decode_all(&msg.payload, amf0::Amf0Limits::default()).unwrap()
}

fn status_code(msg: &RawMessage) -> Option<String> {
    let v = amf(msg);
    v.get(3)
        .and_then(|o| o.get("code"))
        .and_then(|c| c.as_str())
        .map(str::to_owned)
}

fn config() -> Arc<IngestConfig> {
    Arc::new(IngestConfig::default())
}

fn server(config: Arc<IngestConfig>, now: Instant) -> Session {
    Session::with_random(1, config, now, Box::new([7u8; 2 * PACKET_BYTES]))
}

fn events(s: &mut Session) -> Vec<SessionEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Handshake + connect + createStream; returns (client, server) ready for `publish`.
fn connected(config: Arc<IngestConfig>, t0: Instant) -> (Client, Session) {
    let mut s = server(config, t0);
    let mut c = Client::new();
    c.out.extend_from_slice(&Client::c0c1());
    c.flush_to(&mut s, t0, 700).unwrap();
    assert!(
        s.poll_transmit()
            .is_some_and(|b| b.len() == 1 + 2 * PACKET_BYTES),
        "S0+S1+S2 before C2"
    );
    c.got_handshake = 1 + 2 * PACKET_BYTES;
    c.out.extend_from_slice(&[0u8; PACKET_BYTES]);
    // OBS: Set Chunk Size 4096 right after the handshake, before connect.
    c.control(&ControlMessage::SetChunkSize { chunk_size: 4096 });
    c.enc.set_chunk_size(4096);
    c.command(
        0,
        &[
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::object([
                ("app", Amf0Value::string("live?vhost=x")),
                ("type", Amf0Value::string("nonprivate")),
                ("tcUrl", Amf0Value::string("rtmp://127.0.0.1/live")),
                ("objectEncoding", Amf0Value::Number(3.0)),
            ]),
        ],
    );
    c.flush_to(&mut s, t0, 3).unwrap();
    let replies = c.read_from(&mut s);
    let types: Vec<u8> = replies.iter().map(|m| m.type_id).collect();
    assert_eq!(
        types,
        vec![5, 6, 1, 4, 20],
        "WinAck, SetPeerBW, SetChunkSize, StreamBegin(0), _result"
    );
    assert_eq!(c.dec.chunk_size(), 4096);
    let result = amf(&replies[4]);
    assert_eq!(result[0].as_str(), Some("_result"));
    assert_eq!(result[1].as_number(), Some(1.0));
    assert_eq!(
        result[2].get("fmsVer").and_then(|v| v.as_str()),
        Some("FMS/3,0,1,123")
    );
    assert!(result[2].get("videoFourCcInfoMap").is_some());
    assert_eq!(
        result[3].get("code").and_then(|v| v.as_str()),
        Some("NetConnection.Connect.Success")
    );
    assert_eq!(
        result[3].get("objectEncoding").and_then(|v| v.as_number()),
        Some(3.0)
    );
    assert_eq!(s.app(), "live");
    for (name, txn) in [
        ("releaseStream", 2.0),
        ("FCPublish", 3.0),
        ("createStream", 4.0),
    ] {
        c.command(
            0,
            &[
                Amf0Value::string(name),
                Amf0Value::Number(txn),
                Amf0Value::Null,
                Amf0Value::string("test?key=secret"),
            ],
        );
    }
    c.flush_to(&mut s, t0, 1000).unwrap();
    let replies = c.read_from(&mut s);
    let create = replies
        .iter()
        .map(amf)
        .find(|v| v[1].as_number() == Some(4.0))
        .expect("createStream _result");
    assert_eq!(
        create,
        vec![
            Amf0Value::string("_result"),
            Amf0Value::Number(4.0),
            Amf0Value::Null,
            Amf0Value::Number(1.0)
        ]
    );
    (c, s)
}

fn publish(
    c: &mut Client,
    s: &mut Session,
    now: Instant,
    stream_id: u32,
    name: &str,
) -> Vec<RawMessage> {
    c.command(
        stream_id,
        &[
            Amf0Value::string("publish"),
            Amf0Value::Number(5.0),
            Amf0Value::Null,
            Amf0Value::string(name),
            Amf0Value::string("live"),
        ],
    );
    c.flush_to(s, now, 1000).unwrap();
    c.read_from(s)
}
