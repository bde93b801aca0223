//! A deliberately dumb RTMP client for hostile-input tests (RTMP §5.2 handshake, §5.3 chunks,
//! §7.2 commands): it writes exactly the bytes a test asks for (valid or not; well-formed
//! messages through the project's own encoder via `test_support::rtmp`), reads what the server
//! sends back into messages, and reports when the server closed.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use test_support::rtmp::{self, Amf, S0_S1_S2_BYTES};

/// What the reader thread saw, guarded by one mutex and signalled on every change.
#[derive(Default)]
struct Seen {
    bytes: Vec<u8>,
    closed: bool,
}

pub struct Raw {
    pub stream: TcpStream,
    seen: Arc<(Mutex<Seen>, Condvar)>,
}

/// How long a test waits for something the server must do before it is declared missing. Not a
/// timing assertion: a liveness guard so a broken server fails the test instead of hanging it.
pub const PATIENCE: Duration = Duration::from_secs(30);

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).ok();
        let seen = Arc::new((Mutex::new(Seen::default()), Condvar::new()));
        let mut r = stream.try_clone().unwrap();
        let s = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            loop {
                let n = r.read(&mut buf).unwrap_or(0);
                let (lock, cv) = &*s;
                let mut seen = lock.lock().unwrap();
                if n == 0 {
                    seen.closed = true;
                    cv.notify_all();
                    break;
                }
                // Keep what the tests parse (handshake and replies); a flood is only counted.
                if seen.bytes.len() < 1 << 20 {
                    seen.bytes.extend_from_slice(&buf[..n]);
                }
                cv.notify_all();
            }
        });
        Raw { stream, seen }
    }

    /// Local address of this connection (how the server's log names the peer).
    pub fn local_port(&self) -> u16 {
        self.stream.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Writes, ignoring errors (the server may already have closed).
    pub fn send(&mut self, bytes: &[u8]) -> &mut Self {
        let _ = self.stream.write_all(bytes);
        self
    }

    pub fn is_closed(&self) -> bool {
        self.seen.0.lock().unwrap().closed
    }

    /// Waits (at most `within`) until `done` holds for what was received; returns whether it did.
    fn wait_for(&self, within: Duration, done: impl Fn(&Seen) -> bool) -> bool {
        let (lock, cv) = &*self.seen;
        let guard = lock.lock().unwrap();
        let (guard, _) = cv.wait_timeout_while(guard, within, |s| !done(s)).unwrap();
        done(&guard)
    }

    /// Waits until the server closes the connection; true if it did within `within`.
    pub fn wait_closed(&self, within: Duration) -> bool {
        self.wait_for(within, |s| s.closed)
    }

    /// C0+C1 (simple handshake), waits for S0+S1+S2, then C2.
    pub fn handshake(&mut self) -> &mut Self {
        self.send(&rtmp::c0c1());
        assert!(
            self.wait_for(PATIENCE, |s| s.bytes.len() >= S0_S1_S2_BYTES || s.closed),
            "no S0+S1+S2 from the server"
        );
        assert!(!self.is_closed(), "server closed during the handshake");
        self.send(&rtmp::c2())
    }

    /// One message on `csid`, split at `chunk_size` with fmt-3 continuations.
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
        self.send(&rtmp::command(stream_id, values))
    }

    /// The `onStatus` codes received so far (after the handshake).
    pub fn status_codes(&self) -> Vec<String> {
        let bytes = self.seen.0.lock().unwrap().bytes.clone();
        let mut reader = rtmp::Reader::new();
        let after = bytes.get(S0_S1_S2_BYTES..).unwrap_or(&[]);
        reader
            .push(after)
            .iter()
            .filter_map(rtmp::status_code)
            .collect()
    }

    /// Waits for the first `onStatus` the server sends and returns its code.
    pub fn wait_status(&self) -> Option<String> {
        let found = self.wait_for(PATIENCE, |s| {
            s.closed || {
                let mut reader = rtmp::Reader::new();
                let after = s.bytes.get(S0_S1_S2_BYTES..).unwrap_or(&[]);
                reader
                    .push(after)
                    .iter()
                    .any(|m| rtmp::status_code(m).is_some())
            }
        });
        found
            .then(|| self.status_codes().into_iter().next())
            .flatten()
    }

    /// connect + createStream + publish(name), then waits for the server's answer to the
    /// publish: a well-behaved publisher up to `NetStream.Publish.Start` (or a refusal).
    /// Returns the `onStatus` code.
    pub fn publish(&mut self, app: &str, name: &str) -> Option<String> {
        self.send(&rtmp::connect(app));
        self.send(&rtmp::create_stream());
        self.send(&rtmp::publish(name));
        self.wait_status()
    }

    pub fn shutdown(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// One message as a fmt-0 chunk and fmt-3 continuations of `chunk_size` bytes.
pub fn encode_message(
    csid: u8,
    type_id: u8,
    stream_id: u32,
    timestamp_ms: u32,
    body: &[u8],
    chunk_size: usize,
) -> Vec<u8> {
    rtmp::encode_message(
        u32::from(csid),
        type_id,
        stream_id,
        timestamp_ms,
        body,
        u32::try_from(chunk_size).unwrap_or(u32::MAX),
    )
}
