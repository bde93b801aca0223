//! A minimal RTMP publish client for the load generator: simple handshake (RTMP §5.2),
//! chunk writer/reader (RTMP §5.3), AMF0 commands (AMF0 §2, RTMP §7.2) and the publish
//! sequence FFmpeg sends (`libavformat/rtmpproto.c`).
//! It parses only what it needs from the server: control messages and command replies.
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{BufMut, BytesMut};

use crate::flv::OUT_CHUNK_SIZE;

const CSID_COMMAND: u8 = 3;

#[derive(Debug, Clone, PartialEq)]
pub enum Amf {
    Num(f64),
    Bool(bool),
    Str(String),
    Obj(Vec<(String, Amf)>),
    Null,
    Undefined,
    Array(Vec<Amf>),
}

impl Amf {
    pub fn get(&self, key: &str) -> Option<&Amf> {
        match self {
            Amf::Obj(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf::Str(s) => Some(s),
            _ => None,
        }
    }
}

pub fn amf_encode(out: &mut BytesMut, v: &Amf) {
    match v {
        Amf::Num(n) => {
            out.put_u8(0);
            out.put_f64(*n);
        }
        Amf::Bool(b) => {
            out.put_u8(1);
            out.put_u8(*b as u8);
        }
        Amf::Str(s) => {
            out.put_u8(2);
            out.put_u16(s.len() as u16);
            out.put_slice(s.as_bytes());
        }
        Amf::Obj(kv) => {
            out.put_u8(3);
            for (k, v) in kv {
                out.put_u16(k.len() as u16);
                out.put_slice(k.as_bytes());
                amf_encode(out, v);
            }
            out.put_slice(&[0, 0, 9]);
        }
        Amf::Null => out.put_u8(5),
        Amf::Undefined => out.put_u8(6),
        Amf::Array(items) => {
            out.put_u8(0x0A);
            out.put_u32(items.len() as u32);
            for i in items {
                amf_encode(out, i);
            }
        }
    }
}

/// Decodes one AMF0 value; `None` on anything unexpected (the reply is then ignored).
pub fn amf_decode(b: &mut &[u8]) -> Option<Amf> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (h, t) = b.split_at(n);
        *b = t;
        Some(h)
    }
    fn key(b: &mut &[u8]) -> Option<String> {
        let n = u16::from_be_bytes(take(b, 2)?.try_into().ok()?) as usize;
        Some(String::from_utf8_lossy(take(b, n)?).into_owned())
    }
    fn props(b: &mut &[u8]) -> Option<Vec<(String, Amf)>> {
        let mut kv = Vec::new();
        loop {
            let k = key(b)?;
            if k.is_empty() && b.first() == Some(&9) {
                *b = &b[1..];
                return Some(kv);
            }
            let v = amf_decode(b)?;
            kv.push((k, v));
        }
    }
    let marker = *take(b, 1)?.first()?;
    Some(match marker {
        0 => Amf::Num(f64::from_be_bytes(take(b, 8)?.try_into().ok()?)),
        1 => Amf::Bool(take(b, 1)?[0] != 0),
        2 => Amf::Str(key(b)?),
        3 => Amf::Obj(props(b)?),
        5 => Amf::Null,
        6 => Amf::Undefined,
        8 => {
            take(b, 4)?;
            Amf::Obj(props(b)?)
        }
        0x0A => {
            let n = u32::from_be_bytes(take(b, 4)?.try_into().ok()?) as usize;
            let mut items = Vec::new();
            for _ in 0..n.min(1024) {
                items.push(amf_decode(b)?);
            }
            Amf::Array(items)
        }
        0x0C => {
            let n = u32::from_be_bytes(take(b, 4)?.try_into().ok()?) as usize;
            Amf::Str(String::from_utf8_lossy(take(b, n)?).into_owned())
        }
        _ => return None,
    })
}

/// Writes one message as chunks of `chunk_size` with a fmt-0 header (extended timestamp when needed).
pub fn write_message(
    out: &mut BytesMut,
    csid: u8,
    type_id: u8,
    msid: u32,
    ts: u32,
    payload: &[u8],
    chunk_size: usize,
) {
    let ext = ts >= 0xFF_FFFF;
    out.put_u8(csid);
    out.put_uint(if ext { 0xFF_FFFF } else { ts as u64 }, 3);
    out.put_uint(payload.len() as u64, 3);
    out.put_u8(type_id);
    out.put_u32_le(msid);
    if ext {
        out.put_u32(ts);
    }
    for (i, piece) in payload.chunks(chunk_size).enumerate() {
        if i > 0 {
            out.put_u8(0xC0 | csid);
            if ext {
                out.put_u32(ts);
            }
        }
        out.put_slice(piece);
    }
}

/// The 12-byte fmt-0 header of a media message whose body was pre-chunked (timestamp < 0xFFFFFF).
pub fn media_header(csid: u8, type_id: u8, msid: u32, ts: u32, len: usize) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0] = csid;
    h[1..4].copy_from_slice(&ts.to_be_bytes()[1..]);
    h[4..7].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
    h[7] = type_id;
    h[8..12].copy_from_slice(&msid.to_le_bytes());
    h
}

pub fn command(name: &str, txn: f64, args: &[Amf]) -> BytesMut {
    let mut b = BytesMut::new();
    amf_encode(&mut b, &Amf::Str(name.into()));
    amf_encode(&mut b, &Amf::Num(txn));
    for a in args {
        amf_encode(&mut b, a);
    }
    b
}

/// A message read from the server.
pub struct Message {
    pub type_id: u8,
    pub payload: Vec<u8>,
}

#[derive(Default, Clone)]
struct ChunkState {
    len: usize,
    type_id: u8,
    ext: bool,
    partial: Vec<u8>,
}

/// Incremental chunk-stream reader (server → client direction).
#[derive(Default)]
pub struct ChunkReader {
    buf: Vec<u8>,
    chunk_size: usize,
    streams: HashMap<u32, ChunkState>,
}

impl ChunkReader {
    pub fn new() -> Self {
        ChunkReader {
            buf: Vec::new(),
            chunk_size: 128,
            streams: HashMap::new(),
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Parses the next complete message out of the buffer, if any.
    pub fn poll(&mut self) -> Result<Option<Message>> {
        loop {
            let b = &self.buf;
            if b.is_empty() {
                return Ok(None);
            }
            let fmt = b[0] >> 6;
            let (csid, mut p) = match b[0] & 0x3f {
                0 if b.len() >= 2 => (b[1] as u32 + 64, 2),
                1 if b.len() >= 3 => (b[2] as u32 * 256 + b[1] as u32 + 64, 3),
                0 | 1 => return Ok(None),
                c => (c as u32, 1),
            };
            let hlen = [11, 7, 3, 0][fmt as usize];
            if b.len() < p + hlen {
                return Ok(None);
            }
            let mut st = self.streams.get(&csid).cloned().unwrap_or_default();
            let mut ext = st.ext;
            if fmt <= 2 {
                let ts = u32::from_be_bytes([0, b[p], b[p + 1], b[p + 2]]);
                ext = ts == 0xFF_FFFF;
            }
            if fmt <= 1 {
                st.len = u32::from_be_bytes([0, b[p + 3], b[p + 4], b[p + 5]]) as usize;
                st.type_id = b[p + 6];
            }
            p += hlen;
            if ext {
                p += 4;
            }
            st.ext = ext;
            let want = (st.len - st.partial.len()).min(self.chunk_size);
            if b.len() < p + want {
                return Ok(None);
            }
            st.partial.extend_from_slice(&b[p..p + want]);
            self.buf.drain(..p + want);
            if st.partial.len() >= st.len {
                let payload = std::mem::take(&mut st.partial);
                let type_id = st.type_id;
                self.streams.insert(csid, st);
                if type_id == 1 && payload.len() >= 4 {
                    let n = u32::from_be_bytes(payload[..4].try_into().unwrap()) & 0x7fff_ffff;
                    if n == 0 {
                        bail!("server sent Set Chunk Size 0");
                    }
                    self.chunk_size = n as usize;
                }
                return Ok(Some(Message { type_id, payload }));
            }
            self.streams.insert(csid, st);
        }
    }
}

pub fn decode_command(payload: &[u8]) -> Vec<Amf> {
    let mut b = payload;
    let mut vals = Vec::new();
    while !b.is_empty() {
        match amf_decode(&mut b) {
            Some(v) => vals.push(v),
            None => break,
        }
    }
    vals
}

/// Does the simple handshake: C0+C1, read S0+S1+S2, send C2 (= S1 echoed).
pub fn handshake(sock: &mut TcpStream) -> Result<()> {
    let mut c0c1 = vec![0u8; 1537];
    c0c1[0] = 3;
    let mut x: u32 = 0x9e37_79b9;
    for b in &mut c0c1[9..] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    sock.write_all(&c0c1)?;
    let mut s = vec![0u8; 3073];
    sock.read_exact(&mut s).context("reading S0+S1+S2")?;
    if s[0] != 3 {
        bail!("server answered version {}", s[0]);
    }
    sock.write_all(&s[1..1537])?;
    Ok(())
}

/// A connected, publishing RTMP session.
pub struct Session {
    pub sock: TcpStream,
    pub stream_id: u32,
}

fn ctrl(type_id: u8, payload: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    write_message(&mut b, 2, type_id, 0, 0, payload, 128);
    b
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
    let mut out = ctrl(1, &(OUT_CHUNK_SIZE as u32).to_be_bytes());
    let connect = command(
        "connect",
        1.0,
        &[Amf::Obj(vec![
            ("app".into(), Amf::Str(app.into())),
            ("type".into(), Amf::Str("nonprivate".into())),
            (
                "flashVer".into(),
                Amf::Str("FMLE/3.0 (compatible; sluice-xtask)".into()),
            ),
            ("tcUrl".into(), Amf::Str(tc_url)),
        ])],
    );
    write_message(&mut out, CSID_COMMAND, 20, 0, 0, &connect, OUT_CHUNK_SIZE);
    sock.write_all(&out)?;
    let mut reader = ChunkReader::new();
    let deadline = Instant::now() + timeout;
    let mut stream_id = None;
    let mut sent_create = false;
    let mut buf = vec![0u8; 16384];
    loop {
        while let Some(m) = reader.poll()? {
            match m.type_id {
                4 if m.payload.len() >= 6 && m.payload[..2] == [0, 6] => {
                    let mut pong = vec![0, 7];
                    pong.extend_from_slice(&m.payload[2..6]);
                    sock.write_all(&ctrl(4, &pong))?;
                }
                20 | 17 => {
                    let p = if m.type_id == 17 {
                        &m.payload[1..]
                    } else {
                        &m.payload[..]
                    };
                    let vals = decode_command(p);
                    let name = vals.first().and_then(Amf::as_str).unwrap_or("");
                    let txn = match vals.get(1) {
                        Some(Amf::Num(n)) => *n,
                        _ => -1.0,
                    };
                    match name {
                        "_result" if txn == 1.0 && !sent_create => {
                            let mut o = BytesMut::new();
                            let s = Amf::Str(stream.into());
                            for (n, t, args) in [
                                ("releaseStream", 2.0, vec![Amf::Null, s.clone()]),
                                ("FCPublish", 3.0, vec![Amf::Null, s.clone()]),
                                ("createStream", 4.0, vec![Amf::Null]),
                            ] {
                                write_message(
                                    &mut o,
                                    CSID_COMMAND,
                                    20,
                                    0,
                                    0,
                                    &command(n, t, &args),
                                    OUT_CHUNK_SIZE,
                                );
                            }
                            sock.write_all(&o)?;
                            sent_create = true;
                        }
                        "_result" if txn == 4.0 => {
                            let id = match vals.get(3) {
                                Some(Amf::Num(n)) => *n as u32,
                                _ => bail!("createStream _result without a stream id"),
                            };
                            stream_id = Some(id);
                            let cmd = command(
                                "publish",
                                5.0,
                                &[Amf::Null, Amf::Str(stream.into()), Amf::Str("live".into())],
                            );
                            let mut o = BytesMut::new();
                            write_message(&mut o, CSID_COMMAND, 20, id, 0, &cmd, OUT_CHUNK_SIZE);
                            sock.write_all(&o)?;
                        }
                        "_error" if txn == 1.0 || txn == 4.0 || txn == 5.0 => {
                            bail!("server refused: {vals:?}")
                        }
                        "onStatus" => {
                            let info = vals.get(3);
                            let code = info
                                .and_then(|i| i.get("code"))
                                .and_then(Amf::as_str)
                                .unwrap_or("");
                            let level = info
                                .and_then(|i| i.get("level"))
                                .and_then(Amf::as_str)
                                .unwrap_or("");
                            if code == "NetStream.Publish.Start" {
                                let id =
                                    stream_id.context("onStatus before createStream result")?;
                                if let Some(meta) = metadata {
                                    let mut body = BytesMut::new();
                                    amf_encode(&mut body, &Amf::Str("@setDataFrame".into()));
                                    body.put_slice(meta);
                                    let mut o = BytesMut::new();
                                    write_message(
                                        &mut o,
                                        crate::flv::CSID_DATA,
                                        18,
                                        id,
                                        0,
                                        &body,
                                        OUT_CHUNK_SIZE,
                                    );
                                    sock.write_all(&o)?;
                                }
                                return Ok(Session {
                                    sock,
                                    stream_id: id,
                                });
                            }
                            if level == "error" {
                                bail!("publish refused: {code}");
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for NetStream.Publish.Start");
        }
        let n = sock.read(&mut buf).context("reading server reply")?;
        if n == 0 {
            bail!("server closed the connection during the publish sequence");
        }
        reader.push(&buf[..n]);
    }
}

impl Session {
    /// Sends FCUnpublish + deleteStream, as ffmpeg does on close.
    pub fn close(mut self) {
        let mut o = BytesMut::new();
        let s = self.stream_id;
        write_message(
            &mut o,
            CSID_COMMAND,
            20,
            0,
            0,
            &command("FCUnpublish", 6.0, &[Amf::Null]),
            OUT_CHUNK_SIZE,
        );
        write_message(
            &mut o,
            CSID_COMMAND,
            20,
            0,
            0,
            &command("deleteStream", 7.0, &[Amf::Null, Amf::Num(s as f64)]),
            OUT_CHUNK_SIZE,
        );
        let _ = self.sock.write_all(&o);
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amf_round_trip() {
        let v = Amf::Obj(vec![
            ("a".into(), Amf::Num(1.5)),
            ("b".into(), Amf::Str("x".into())),
        ]);
        let mut b = BytesMut::new();
        amf_encode(&mut b, &v);
        let mut s = &b[..];
        assert_eq!(amf_decode(&mut s), Some(v));
        assert!(s.is_empty());
    }

    #[test]
    fn chunk_reader_reassembles_across_chunks() {
        let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut b = BytesMut::new();
        write_message(&mut b, 3, 20, 0, 5, &payload, 128);
        let mut r = ChunkReader::new();
        r.push(&b[..100]);
        assert!(r.poll().unwrap().is_none());
        r.push(&b[100..]);
        let m = r.poll().unwrap().unwrap();
        assert_eq!((m.type_id, m.payload), (20, payload));
    }
}
