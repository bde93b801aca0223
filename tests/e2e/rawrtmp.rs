//! A deliberately dumb RTMP client for hostile-input tests: it writes exactly the bytes a test
//! asks for (valid or not), drains what the server sends, and reports when the server closed.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Raw {
    pub stream: TcpStream,
    closed: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    opened: Instant,
    closed_after_ms: Arc<AtomicU64>,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).ok();
        let closed = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let closed_after_ms = Arc::new(AtomicU64::new(u64::MAX));
        let opened = Instant::now();
        let mut r = stream.try_clone().unwrap();
        let (c, rcv, after) = (closed.clone(), received.clone(), closed_after_ms.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        rcv.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
            after.store(opened.elapsed().as_millis() as u64, Ordering::SeqCst);
            c.store(true, Ordering::SeqCst);
        });
        Raw {
            stream,
            closed,
            received,
            opened,
            closed_after_ms,
        }
    }

    /// Writes, ignoring errors (the server may already have closed).
    pub fn send(&mut self, bytes: &[u8]) -> &mut Self {
        let _ = self.stream.write_all(bytes);
        self
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Waits until the server closes the connection; returns how long after connect it did.
    pub fn wait_closed(&self, within: Duration) -> Option<Duration> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.is_closed() {
                return Some(Duration::from_millis(
                    self.closed_after_ms.load(Ordering::SeqCst),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// C0+C1 (simple handshake), waits for S0+S1+S2, then C2.
    pub fn handshake(&mut self) -> &mut Self {
        let mut c0c1 = vec![3u8];
        c0c1.extend_from_slice(&[0u8; 8]);
        c0c1.extend((0..1528).map(|i| (i * 7 % 251) as u8));
        self.send(&c0c1);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.received() < 3073 && Instant::now() < deadline && !self.is_closed() {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(self.received() >= 3073, "no S0+S1+S2 from the server");
        self.send(&[0u8; 1536]);
        self
    }

    /// One message as a single fmt-0 chunk on `csid` (caller keeps it under the chunk size) or
    /// split at `chunk_size` with fmt-3 continuations.
    pub fn message(
        &mut self,
        csid: u8,
        type_id: u8,
        stream_id: u32,
        timestamp_ms: u32,
        body: &[u8],
        chunk_size: usize,
    ) -> &mut Self {
        let bytes = encode_message(csid, type_id, stream_id, timestamp_ms, body, chunk_size);
        self.send(&bytes)
    }

    pub fn command(&mut self, stream_id: u32, values: &[Amf]) -> &mut Self {
        let mut body = Vec::new();
        for v in values {
            v.encode(&mut body);
        }
        self.message(3, 20, stream_id, 0, &body, 128)
    }

    /// connect + createStream + publish(name): a well-behaved publisher up to Publish.Start.
    pub fn publish(&mut self, app: &str, name: &str) -> &mut Self {
        self.command(
            0,
            &[
                Amf::Str("connect".into()),
                Amf::Num(1.0),
                Amf::Obj(vec![
                    ("app".into(), Amf::Str(app.into())),
                    ("type".into(), Amf::Str("nonprivate".into())),
                    ("tcUrl".into(), Amf::Str(format!("rtmp://127.0.0.1/{app}"))),
                ]),
            ],
        );
        self.command(
            0,
            &[Amf::Str("createStream".into()), Amf::Num(2.0), Amf::Null],
        );
        std::thread::sleep(Duration::from_millis(100));
        self.command(
            1,
            &[
                Amf::Str("publish".into()),
                Amf::Num(3.0),
                Amf::Null,
                Amf::Str(name.into()),
                Amf::Str("live".into()),
            ],
        );
        std::thread::sleep(Duration::from_millis(200));
        self
    }

    pub fn shutdown(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

pub fn encode_message(
    csid: u8,
    type_id: u8,
    stream_id: u32,
    timestamp_ms: u32,
    body: &[u8],
    chunk_size: usize,
) -> Vec<u8> {
    assert!((2..64).contains(&csid));
    let mut out = Vec::with_capacity(body.len() + 32);
    out.push(csid);
    let ext = timestamp_ms >= 0xFF_FFFF;
    let ts24 = if ext { 0xFF_FFFF } else { timestamp_ms };
    out.extend_from_slice(&ts24.to_be_bytes()[1..]);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream_id.to_le_bytes());
    if ext {
        out.extend_from_slice(&timestamp_ms.to_be_bytes());
    }
    for (i, chunk) in body.chunks(chunk_size.max(1)).enumerate() {
        if i > 0 {
            out.push(0xC0 | csid);
            if ext {
                out.extend_from_slice(&timestamp_ms.to_be_bytes());
            }
        }
        out.extend_from_slice(chunk);
    }
    out
}

pub enum Amf {
    Num(f64),
    Str(String),
    Null,
    Obj(Vec<(String, Amf)>),
}

impl Amf {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Amf::Num(n) => {
                out.push(0);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Amf::Str(s) => {
                out.push(2);
                out.extend_from_slice(&(s.len() as u16).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Amf::Null => out.push(5),
            Amf::Obj(props) => {
                out.push(3);
                for (k, v) in props {
                    out.extend_from_slice(&(k.len() as u16).to_be_bytes());
                    out.extend_from_slice(k.as_bytes());
                    v.encode(out);
                }
                out.extend_from_slice(&[0, 0, 9]);
            }
        }
    }
}
