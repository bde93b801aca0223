//! The test-side RTMP client, built on the project's own codec (RTMP §5.3 chunking through
//! `rtmp_ingest::chunk`, AMF0 §2 through `rtmp_ingest::amf0`): writes the messages a test asks
//! for (well-formed ones through the encoder; tests that need broken bytes write them raw) and
//! reads the server's replies back into messages and AMF0 values.

use bytes::BytesMut;
use rtmp_ingest::amf0::{self, Amf0Limits, Amf0Value};
use rtmp_ingest::chunk::decoder::DecoderLimits;
use rtmp_ingest::chunk::{message_type, ChunkDecoder, ChunkEncoder, RawMessage};

pub use rtmp_ingest::amf0::Amf0Value as Amf;

/// C0+C1 of a simple handshake (RTMP §5.2.2–5.2.3): version 3, zero time and zero field, and
/// a fixed pseudo-random pattern (the server does not check it).
pub fn c0c1() -> Vec<u8> {
    let mut out = vec![3u8];
    out.extend_from_slice(&[0u8; 8]);
    out.extend((0..1528u32).map(|i| (i * 7 % 251) as u8));
    out
}

/// S0+S1+S2 length: what the server sends before it waits for C2.
pub const S0_S1_S2_BYTES: usize = 1 + 2 * 1536;

/// The handshake random bytes (S1 and S2 bodies) the vector recorder (`cargo xtask
/// capture-vectors`) answered with: a replay through `Handshake::new(capture_random())` sends the
/// same S1, so the captured C2 can be checked against it. Changing this invalidates every
/// recorded vector's C2.
pub fn capture_random() -> Box<[u8; 2 * 1536]> {
    let mut r = Box::new([0u8; 2 * 1536]);
    for (i, b) in r.iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0];
    }
    r
}

/// C2 of a simple handshake (the server does not check it against S1).
pub fn c2() -> Vec<u8> {
    vec![0u8; 1536]
}

/// One message as chunks of at most `chunk_size` bytes (fmt 0, then fmt 3 continuations, the
/// extended timestamp repeated on each as FFmpeg and librtmp do). `csid` in 2..=65599.
pub fn encode_message(
    csid: u32,
    type_id: u8,
    stream_id: u32,
    timestamp_ms: u32,
    body: &[u8],
    chunk_size: u32,
) -> Vec<u8> {
    let mut enc = ChunkEncoder::new();
    enc.set_chunk_size(chunk_size);
    let mut out = BytesMut::with_capacity(body.len() + 32);
    enc.write_message(&mut out, csid, timestamp_ms, type_id, stream_id, body);
    out.to_vec()
}

/// The AMF0 body of a command message: the values in order.
pub fn amf_body(values: &[Amf]) -> Vec<u8> {
    let mut out = BytesMut::new();
    amf0::encode_all(values, &mut out);
    out.to_vec()
}

/// A command message (type 20) on chunk stream 3 at the default chunk size of 128.
pub fn command(stream_id: u32, values: &[Amf]) -> Vec<u8> {
    encode_message(
        3,
        message_type::AMF0_COMMAND,
        stream_id,
        0,
        &amf_body(values),
        128,
    )
}

pub fn str(s: &str) -> Amf {
    Amf::String(s.to_owned())
}

pub fn num(n: f64) -> Amf {
    Amf::Number(n)
}

/// `connect(app)` as a publisher sends it (transaction 1).
pub fn connect(app: &str) -> Vec<u8> {
    command(
        0,
        &[
            str("connect"),
            num(1.0),
            Amf::object([
                ("app", str(app)),
                ("type", str("nonprivate")),
                ("tcUrl", str(&format!("rtmp://127.0.0.1/{app}"))),
            ]),
        ],
    )
}

/// `createStream` (transaction 2).
pub fn create_stream() -> Vec<u8> {
    command(0, &[str("createStream"), num(2.0), Amf::Null])
}

/// `publish(name, "live")` on message stream 1 (transaction 3).
pub fn publish(name: &str) -> Vec<u8> {
    command(
        1,
        &[str("publish"), num(3.0), Amf::Null, str(name), str("live")],
    )
}

/// Reads what a server sends after the handshake: chunks in, messages and AMF0 commands out.
/// Set Chunk Size from the server is applied, as a client must.
pub struct Reader {
    decoder: ChunkDecoder,
}

impl Default for Reader {
    fn default() -> Self {
        Self::new()
    }
}

impl Reader {
    pub fn new() -> Self {
        Self {
            decoder: ChunkDecoder::new(DecoderLimits {
                max_message_bytes: 16 * 1024 * 1024 - 1,
                max_chunk_size: 0x7FFF_FFFF,
                max_chunk_streams: 64,
                max_partial_bytes: 64 * 1024 * 1024,
            }),
        }
    }

    /// Feeds bytes; returns the messages they completed. Panics on a chunk stream the
    /// project's own decoder rejects (a server bug the test should see).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<RawMessage> {
        self.try_push(bytes)
            .unwrap_or_else(|e| panic!("server sent an invalid chunk stream: {e}"))
    }

    /// Like [`Reader::push`], returning the decoder's error instead of panicking (for callers
    /// outside tests, such as the load generator, that report it).
    pub fn try_push(&mut self, bytes: &[u8]) -> Result<Vec<RawMessage>, rtmp_ingest::IngestError> {
        self.decoder.handle_input(bytes)?;
        Ok(std::iter::from_fn(|| self.decoder.poll_message()).collect())
    }
}

/// The AMF0 values of a command message (type 20), or `None` for any other message.
pub fn command_values(m: &RawMessage) -> Option<Vec<Amf0Value>> {
    (m.type_id == message_type::AMF0_COMMAND)
        .then(|| amf0::decode_all(&m.payload, Amf0Limits::default()).ok())
        .flatten()
}

/// The `code` of an `onStatus` command (e.g. `NetStream.Publish.Start`), if `m` is one.
pub fn status_code(m: &RawMessage) -> Option<String> {
    let v = command_values(m)?;
    if v.first()?.as_str()? != "onStatus" {
        return None;
    }
    v.get(3)?.get("code")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the writer produces, the project's decoder reads back: chunking at several sizes,
    /// an extended timestamp, and a command's AMF0 values.
    #[test]
    fn writer_and_reader_round_trip() {
        let values = [str("publish"), num(3.0), Amf::Null, str("s"), str("live")];
        for chunk_size in [128u32, 100, 4096] {
            let body = amf_body(&values);
            let bytes = encode_message(3, 20, 1, 0x0100_0000, &body, chunk_size);
            let mut r = Reader::new();
            r.push(&crate::rtmp::encode_message(
                2,
                message_type::SET_CHUNK_SIZE,
                0,
                0,
                &chunk_size.to_be_bytes(),
                128,
            ));
            let msgs = r.push(&bytes);
            assert_eq!(msgs.len(), 1, "chunk size {chunk_size}");
            assert_eq!(msgs[0].timestamp_ms, 0x0100_0000);
            assert_eq!(command_values(&msgs[0]).unwrap(), values);
        }
    }
}
