//! RTMPT on the HTTP port with real peers (ffmpeg publishes and plays, rtmpdump plays) and the
//! protocol's hostile cases over raw keep-alive HTTP: exact framing, unknown and expired
//! sessions, pipelining, empty and oversized bodies, and HLS paths unaffected.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

/// One keep-alive HTTP/1.1 connection speaking RTMPT like librtmp does.
struct Tunnel {
    s: TcpStream,
    buf: Vec<u8>,
}

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Tunnel {
    fn connect(port: u16) -> Tunnel {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Tunnel { s, buf: Vec::new() }
    }

    fn request_bytes(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\nUser-Agent: Shockwave Flash\r\nConnection: Keep-Alive\r\nCache-Control: no-cache\r\nContent-type: application/x-fcs\r\nContent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    /// Reads exactly one response (Content-Length framed).
    fn read_reply(&mut self) -> Option<Reply> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    let body = self.buf[end + 4..end + 4 + len].to_vec();
                    self.buf.drain(..end + 4 + len);
                    let status = head.split_whitespace().nth(1)?.parse().ok()?;
                    return Some(Reply { status, head, body });
                }
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn post(&mut self, path: &str, body: &[u8]) -> Reply {
        self.send_raw(&Self::request_bytes("POST", path, body));
        self.read_reply().expect("a reply on the same connection")
    }
}

/// ffmpeg publishes over RTMPT and the HLS output decodes; ffmpeg and rtmpdump play over RTMPT.
#[test]
fn rtmpt_publish_and_play_with_ffmpeg_and_rtmpdump() {
    if !require("ffmpeg") || !require("ffprobe") || !require("rtmpdump") {
        return;
    }
    let s = Sluice::start(&[]);
    let url = format!("rtmpt://127.0.0.1:{}/live/tunnel", s.http_port);
    let _pub = ffmpeg_publish(&url, 60, &["-rtmp_flush_interval", "1"]);
    let pl = s.wait_for_segments("/live/tunnel/index.m3u8", 2, Duration::from_secs(40));
    assert_eq!(
        probe_codecs(s.http("/live/tunnel/index.m3u8")),
        vec!["aac", "h264"],
        "{pl}"
    );
    let errors = ffmpeg_decode_errors(s.http("/live/tunnel/index.m3u8"), &["-t", "4"]);
    assert!(errors.is_empty(), "HLS decode errors: {errors}");

    // ffmpeg plays over RTMPT (idle polling) and decodes 4 s without an error.
    let out = Command::new("timeout")
        .args(["60", "ffmpeg", "-hide_banner", "-v", "error", "-xerror"])
        .args(["-i", &url, "-t", "4", "-map", "0:v:0", "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg RTMPT play: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // rtmpdump (librtmp: pipelined POSTs, Content-Length parsed case-sensitively).
    let flv = std::env::temp_dir().join(format!("sluice-rtmpt-{}.flv", s.http_port));
    let out = Command::new("timeout")
        .args([
            "60", "rtmpdump", "-r", &url, "-v", "-B", "4", "-m", "20", "-o",
        ])
        .arg(&flv)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 2)),
        "rtmpdump RTMPT: {:?} {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(&flv).map_or(0, |m| m.len());
    assert!(size > 50_000, "rtmpdump wrote {size} bytes over RTMPT");
    let _ = std::fs::remove_file(&flv);
    let m = s.get("/metrics").text();
    assert!(metric(&m, "sluice_rtmpt_sessions_total", &[]) >= 3.0, "{m}");
}

/// Protocol cases: exact framing, unknown session, pipelining, empty and oversized bodies,
/// GET on an RTMPT path, expiry; none of them reach the HLS edge or hurt the server.
#[test]
fn rtmpt_hostile_cases() {
    let s = Sluice::start(&[
        "--set",
        "rtmpt.max_body_bytes=4096",
        "--set",
        "rtmpt.session_idle_timeout_ms=2000",
    ]);
    let mut t = Tunnel::connect(s.http_port);

    // /open/1: exactly "<id>\n", title-case Content-Length (librtmp searches "Content-").
    let open = t.post("/open/1", &[0]);
    assert_eq!(open.status, 200);
    assert!(
        open.head
            .contains(&format!("Content-Length: {}", open.body.len())),
        "{}",
        open.head
    );
    assert_eq!(open.body.last(), Some(&b'\n'));
    let id = String::from_utf8(open.body[..open.body.len() - 1].to_vec()).unwrap();
    assert!(
        id.len() >= 16 && id.bytes().all(|c| c.is_ascii_alphanumeric()),
        "{id:?}"
    );
    assert!(open.head.starts_with("HTTP/1.1 200 "));

    // Pipelined: C0+C1 and two idles in one write, answered in order on the same connection.
    let mut c0c1 = vec![3u8];
    c0c1.extend_from_slice(&[0u8; 1536]);
    let mut batch = Tunnel::request_bytes("POST", &format!("/send/{id}/0"), &c0c1);
    batch.extend(Tunnel::request_bytes(
        "POST",
        &format!("/idle/{id}/1"),
        &[0],
    ));
    batch.extend(Tunnel::request_bytes(
        "POST",
        &format!("/idle/{id}/2"),
        &[0],
    ));
    t.send_raw(&batch);
    let mut handshake = 0;
    for _ in 0..3 {
        let r = t.read_reply().expect("pipelined reply");
        assert_eq!(r.status, 200);
        assert!(!r.body.is_empty(), "every reply carries the poll byte");
        assert!((1..=0x21).contains(&r.body[0]), "poll byte {}", r.body[0]);
        handshake += r.body.len() - 1;
    }
    // Keep polling until S0+S1+S2 (3073 bytes) arrived; ~100 requests on one connection.
    for seq in 3..100 {
        if handshake >= 3073 {
            break;
        }
        let r = t.post(&format!("/idle/{id}/{seq}"), &[0]);
        assert_eq!(r.status, 200);
        handshake += r.body.len() - 1;
    }
    assert_eq!(handshake, 3073, "S0+S1+S2 through the tunnel");

    // Unknown session: a non-200 and no session created; never the HLS edge's answer.
    let r = t.post("/send/NoSuchSession00000000000000000/0", &[1, 2, 3]);
    assert_eq!(r.status, 404);
    assert!(
        !r.head.to_ascii_lowercase().contains("mpegurl"),
        "{}",
        r.head
    );
    // Empty body on /send.
    assert_eq!(t.post(&format!("/send/{id}/100"), &[]).status, 400);
    // Oversized body.
    let mut t2 = Tunnel::connect(s.http_port);
    t2.send_raw(&Tunnel::request_bytes(
        "POST",
        &format!("/send/{id}/101"),
        &vec![0u8; 8192],
    ));
    assert_eq!(t2.read_reply().map(|r| r.status), Some(413));
    // GET on an RTMPT path is refused by the tunnel, not served by the edge.
    let r = http_get(&s.http(""), &format!("/idle/{id}/5")).unwrap();
    assert_eq!(r.status, 405);
    // Malformed session id.
    assert_eq!(t.post("/idle/bad-id!/1", &[0]).status, 400);

    // Expiry: once the janitor has expired the session (the event, from the metric), the id
    // is unknown.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(
        &s.get("/metrics").text(),
        "sluice_rtmpt_sessions_expired_total",
        &[],
    ) < 1.0
    {
        assert!(Instant::now() < deadline, "session never expired");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut t3 = Tunnel::connect(s.http_port);
    assert_eq!(t3.post(&format!("/idle/{id}/200"), &[0]).status, 404);
    // The server is fine: HLS routes and health still answer.
    assert_eq!(s.get("/healthz").status, 200);
    assert_eq!(s.get("/live/none/index.m3u8").status, 404);
}
