//! The blocking RTMP client of the load generator and the benchmarks: the simple handshake
//! (RTMP §5.2), the publish sequence FFmpeg sends (`connect`, `releaseStream`, `FCPublish`,
//! `createStream`, `publish`; RTMP §7.2) and the commands the fan-out players send. Chunks and
//! AMF0 go through the project's own codec (`rtmp_ingest::chunk`, `rtmp_ingest::amf0`, via
//! `test_support::rtmp`), never a private copy; only the load generator's pre-chunked media path
//! ([`media_header`]) writes a header itself, and a test checks it against the encoder.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::BytesMut;
use rtmp_ingest::chunk::{message_type, RawMessage};
use test_support::rtmp::{amf_body, c0c1, encode_message, S0_S1_S2_BYTES};
pub use test_support::rtmp::{command_values, num, str, Amf, Reader};

use crate::flv::OUT_CHUNK_SIZE;

const CSID_COMMAND: u8 = 3;
const CSID_CONTROL: u8 = 2;

/// Appends one message, chunked at `chunk_size` by the project's `ChunkEncoder`.
pub fn write_message(
    out: &mut BytesMut,
    csid: u8,
    type_id: u8,
    msid: u32,
    timestamp_ms: u32,
    payload: &[u8],
    chunk_size: usize,
) {
    let chunk_size = u32::try_from(chunk_size).unwrap_or(u32::MAX);
    out.extend_from_slice(&encode_message(
        u32::from(csid),
        type_id,
        msid,
        timestamp_ms,
        payload,
        chunk_size,
    ));
}

/// The 12-byte type-0 chunk header (RTMP §5.3.1.2.1) of a media message whose body was
/// pre-chunked by `flv::chunk_payload` (timestamp below 0xFFFFFF: no extended timestamp). The
/// load generator writes it with the pre-chunked body so a tag costs no encoding at run time.
pub fn media_header(csid: u8, type_id: u8, msid: u32, timestamp_ms: u32, len: usize) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0] = csid;
    h[1..4].copy_from_slice(&timestamp_ms.to_be_bytes()[1..]);
    h[4..7].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
    h[7] = type_id;
    h[8..12].copy_from_slice(&msid.to_le_bytes());
    h
}

/// The AMF0 body of command `name` with transaction id `txn` and `args`.
pub fn command(name: &str, txn: f64, args: &[Amf]) -> Vec<u8> {
    let mut values = vec![str(name), num(txn)];
    values.extend_from_slice(args);
    amf_body(&values)
}

/// The simple handshake: C0+C1, read S0+S1+S2, send C2 (= S1 echoed).
pub fn handshake(sock: &mut TcpStream) -> Result<()> {
    sock.write_all(&c0c1())?;
    let mut s = vec![0u8; S0_S1_S2_BYTES];
    sock.read_exact(&mut s).context("reading S0+S1+S2")?;
    if s[0] != 3 {
        bail!("server answered version {}", s[0]);
    }
    sock.write_all(&s[1..1537])?;
    Ok(())
}

/// A command reply: its name, transaction id and values.
pub struct Reply {
    pub name: String,
    pub txn: f64,
    pub values: Vec<Amf>,
}

impl Reply {
    /// The reply in `m`, if `m` is an AMF0 command.
    pub fn of(m: &RawMessage) -> Option<Reply> {
        let values = command_values(m)?;
        let name = values.first()?.as_str()?.to_owned();
        let txn = values.get(1).and_then(Amf::as_number).unwrap_or(-1.0);
        Some(Reply { name, txn, values })
    }

    /// A string field of the info object of an `onStatus` (`code`, `level`), or "".
    pub fn info(&self, key: &str) -> &str {
        self.values
            .get(3)
            .and_then(|i| i.get(key))
            .and_then(Amf::as_str)
            .unwrap_or("")
    }
}

/// A connected, publishing RTMP session.
pub struct Session {
    pub sock: TcpStream,
    pub stream_id: u32,
}

fn ctrl(type_id: u8, payload: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    write_message(&mut b, CSID_CONTROL, type_id, 0, 0, payload, 128);
    b
}

/// Answers a Ping Request (User Control event 6, RTMP §7.1.7) in `m`, if it is one.
pub fn answer_ping(sock: &mut TcpStream, m: &RawMessage) -> Result<()> {
    if m.type_id == message_type::USER_CONTROL && m.payload.len() >= 6 && m.payload[..2] == [0, 6] {
        let mut pong = vec![0, 7];
        pong.extend_from_slice(&m.payload[2..6]);
        sock.write_all(&ctrl(message_type::USER_CONTROL, &pong))?;
    }
    Ok(())
}

/// Connects and goes through ffmpeg's publish sequence up to `NetStream.Publish.Start`, then
/// sends `@setDataFrame onMetaData`.
pub fn publish(
    addr: SocketAddr,
    app: &str,
    stream: &str,
    metadata: Option<&[u8]>,
    timeout: Duration,
) -> Result<Session> {
    let mut sock =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect {addr}"))?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(timeout))?;
    sock.set_write_timeout(Some(timeout))?;
    handshake(&mut sock)?;
    let tc_url = format!("rtmp://{addr}/{app}");
    let mut out = ctrl(
        message_type::SET_CHUNK_SIZE,
        &(OUT_CHUNK_SIZE as u32).to_be_bytes(),
    );
    let connect = command(
        "connect",
        1.0,
        &[Amf::object([
            ("app", str(app)),
            ("type", str("nonprivate")),
            ("flashVer", str("FMLE/3.0 (compatible; sluice-xtask)")),
            ("tcUrl", str(&tc_url)),
        ])],
    );
    let amf0_command = message_type::AMF0_COMMAND;
    write_message(
        &mut out,
        CSID_COMMAND,
        amf0_command,
        0,
        0,
        &connect,
        OUT_CHUNK_SIZE,
    );
    sock.write_all(&out)?;
    let mut reader = Reader::new();
    let deadline = Instant::now() + timeout;
    let mut stream_id = None;
    let mut sent_create = false;
    let mut buf = vec![0u8; 16384];
    loop {
        let n = sock.read(&mut buf).context("reading server reply")?;
        if n == 0 {
            bail!("server closed the connection during the publish sequence");
        }
        for m in reader.try_push(&buf[..n])? {
            answer_ping(&mut sock, &m)?;
            let Some(reply) = Reply::of(&m) else {
                continue;
            };
            match (reply.name.as_str(), reply.txn) {
                ("_result", 1.0) if !sent_create => {
                    let mut o = BytesMut::new();
                    for (n, t, args) in [
                        ("releaseStream", 2.0, vec![Amf::Null, str(stream)]),
                        ("FCPublish", 3.0, vec![Amf::Null, str(stream)]),
                        ("createStream", 4.0, vec![Amf::Null]),
                    ] {
                        let body = command(n, t, &args);
                        write_message(
                            &mut o,
                            CSID_COMMAND,
                            amf0_command,
                            0,
                            0,
                            &body,
                            OUT_CHUNK_SIZE,
                        );
                    }
                    sock.write_all(&o)?;
                    sent_create = true;
                }
                ("_result", 4.0) => {
                    let Some(id) = reply.values.get(3).and_then(Amf::as_number) else {
                        bail!("createStream _result without a stream id");
                    };
                    let id = id as u32;
                    stream_id = Some(id);
                    let cmd = command("publish", 5.0, &[Amf::Null, str(stream), str("live")]);
                    let mut o = BytesMut::new();
                    write_message(
                        &mut o,
                        CSID_COMMAND,
                        amf0_command,
                        id,
                        0,
                        &cmd,
                        OUT_CHUNK_SIZE,
                    );
                    sock.write_all(&o)?;
                }
                ("_error", 1.0 | 4.0 | 5.0) => bail!("server refused: {:?}", reply.values),
                ("onStatus", _) => {
                    let code = reply.info("code");
                    if code == "NetStream.Publish.Start" {
                        let id = stream_id.context("onStatus before createStream result")?;
                        if let Some(meta) = metadata {
                            let mut body = amf_body(&[str("@setDataFrame")]);
                            body.extend_from_slice(meta);
                            let mut o = BytesMut::new();
                            let data = message_type::AMF0_DATA;
                            let csid = crate::flv::CSID_DATA;
                            write_message(&mut o, csid, data, id, 0, &body, OUT_CHUNK_SIZE);
                            sock.write_all(&o)?;
                        }
                        return Ok(Session {
                            sock,
                            stream_id: id,
                        });
                    }
                    if reply.info("level") == "error" {
                        bail!("publish refused: {code}");
                    }
                }
                _ => {}
            }
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for NetStream.Publish.Start");
        }
    }
}

impl Session {
    /// Sends FCUnpublish + deleteStream, as ffmpeg does on close.
    pub fn close(mut self) {
        let mut o = BytesMut::new();
        let s = self.stream_id;
        for body in [
            command("FCUnpublish", 6.0, &[Amf::Null]),
            command("deleteStream", 7.0, &[Amf::Null, num(f64::from(s))]),
        ] {
            let t = message_type::AMF0_COMMAND;
            write_message(&mut o, CSID_COMMAND, t, 0, 0, &body, OUT_CHUNK_SIZE);
        }
        let _ = self.sock.write_all(&o);
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pre-chunked media path writes exactly what the project's encoder writes.
    #[test]
    fn pre_chunked_media_matches_the_encoder() {
        let payload: Vec<u8> = (0..150_000u32).map(|i| i as u8).collect();
        for len in [0, 1, OUT_CHUNK_SIZE, OUT_CHUNK_SIZE + 1, payload.len()] {
            let body = &payload[..len];
            let csid = crate::flv::CSID_VIDEO;
            let mut ours = media_header(csid, 9, 1, 0x00AB_CDEF, body.len()).to_vec();
            ours.extend_from_slice(&crate::flv::chunk_payload(body, csid));
            let mut theirs = BytesMut::new();
            write_message(&mut theirs, csid, 9, 1, 0x00AB_CDEF, body, OUT_CHUNK_SIZE);
            assert_eq!(ours, theirs.to_vec(), "{len} bytes");
        }
    }

    /// The publish sequence against the project's own session (the vector recorder), then
    /// `close`: the server sees the whole FFmpeg command sequence and the metadata.
    #[test]
    fn publish_and_close_against_the_session() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (sock, _) = listener.accept().unwrap();
            crate::capture_vectors::record(sock).unwrap()
        });
        let meta = amf_body(&[str("onMetaData"), Amf::object([("width", num(160.0))])]);
        let session = publish(addr, "live", "load0", Some(&meta), Duration::from_secs(30)).unwrap();
        assert_eq!(session.stream_id, 1);
        session.close();
        let recorded = server.join().unwrap();
        let mut reader = Reader::new();
        let commands: Vec<String> = reader
            .push(&recorded[1 + 2 * 1536..])
            .iter()
            .filter(|m| {
                m.type_id == message_type::AMF0_COMMAND || m.type_id == message_type::AMF0_DATA
            })
            .filter_map(|m| {
                let values = rtmp_ingest::amf0::decode_all(&m.payload, Default::default()).ok()?;
                Some(values.first()?.as_str()?.to_owned())
            })
            .collect();
        let want = [
            "connect",
            "releaseStream",
            "FCPublish",
            "createStream",
            "publish",
            "@setDataFrame",
            "FCUnpublish",
            "deleteStream",
        ];
        assert_eq!(commands, want);
    }

    /// A command written here is read back by the project's decoder as the same values.
    #[test]
    fn command_round_trip() {
        let mut out = BytesMut::new();
        let body = command("publish", 5.0, &[Amf::Null, str("s"), str("live")]);
        write_message(&mut out, CSID_COMMAND, 20, 1, 0, &body, 128);
        let msgs = Reader::new().push(&out);
        let reply = Reply::of(&msgs[0]).unwrap();
        assert_eq!((reply.name.as_str(), reply.txn), ("publish", 5.0));
        assert_eq!(reply.values[3], str("s"));
    }
}
