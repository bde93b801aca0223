//! Hostile input over real TCP, by category (handshake, chunk layer, AMF, session state, codec
//! payloads, timestamps, connection floods, HTTP), while a canary stream publishes with ffmpeg.
//! Each case asserts the bad connection is closed within its deadline; at the end the canary must
//! have lost no segment and memory must be back near its baseline.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::rawrtmp::{encode_message, Amf, Raw};
use crate::support::*;

const HANDSHAKE_DEADLINE_MS: u64 = 3000;
const IDLE_MS: u64 = 3000;
const SLACK: Duration = Duration::from_millis(2500);

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Polls the canary playlist and records every media sequence number it lists.
struct CanaryWatch {
    seen: Arc<Mutex<BTreeSet<u64>>>,
    discontinuities: Arc<Mutex<u32>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CanaryWatch {
    fn start(base: String, path: &'static str) -> CanaryWatch {
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let disc = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, d2, st2) = (seen.clone(), disc.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st2.load(Ordering::SeqCst) {
                if let Ok(r) = http_get(&base, path) {
                    if r.status == 200 {
                        let text = r.text();
                        let msn: u64 = text
                            .lines()
                            .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        let n = segment_uris(&text).len() as u64;
                        let mut s = s2.lock().unwrap();
                        s.extend(msn..msn + n);
                        if text.contains("#EXT-X-DISCONTINUITY\n") {
                            *d2.lock().unwrap() += 1;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(400));
            }
        });
        CanaryWatch {
            seen,
            discontinuities: disc,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (BTreeSet<u64>, u32) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let s = self.seen.lock().unwrap().clone();
        let d = *self.discontinuities.lock().unwrap();
        (s, d)
    }
}

fn expect_closed(name: &str, raw: &Raw, within: Duration) {
    match raw.wait_closed(within) {
        Some(after) => eprintln!("hostile: {name}: closed after {after:?}"),
        None => panic!("hostile case {name}: connection still open after {within:?}"),
    }
}

fn flv_video(keyframe: bool, packet_type: u8, cts: i32, body: &[u8]) -> Vec<u8> {
    let mut v = vec![if keyframe { 0x17 } else { 0x27 }, packet_type];
    v.extend_from_slice(&cts.to_be_bytes()[1..]);
    v.extend_from_slice(body);
    v
}

#[test]
fn hostile_inputs_do_not_disturb_a_canary_stream() {
    if !require("ffmpeg") {
        return;
    }
    let s = Sluice::start(&[
        "--set",
        &format!("rtmp.handshake_timeout_ms={HANDSHAKE_DEADLINE_MS}"),
        "--set",
        &format!("rtmp.idle_timeout_ms={IDLE_MS}"),
        "--set",
        "rtmp.max_connections_per_ip=24",
        "--set",
        "rtmp.max_message_bytes=4194304",
        "--set",
        "rtmp.max_chunk_streams=16",
        "--set",
        "rtmp.max_partial_bytes=4194304",
        "--set",
        "http.header_read_timeout_ms=2000",
    ]);
    let pid = s.child.id();
    let port = s.rtmp_port;
    let _canary = ffmpeg_publish(&s.rtmp("live/canary"), 75, &[]);
    s.wait_for_segments("/live/canary/index.m3u8", 3, Duration::from_secs(20));
    let watch = CanaryWatch::start(s.http(""), "/live/canary/index.m3u8");
    std::thread::sleep(Duration::from_secs(8));
    let baseline_kib = rss_kib(pid);
    let deadline = Duration::from_millis(HANDSHAKE_DEADLINE_MS) + SLACK;
    let idle = Duration::from_millis(IDLE_MS) + SLACK;
    let quick = Duration::from_millis(1500);

    // ---- handshake ----
    let mut c = Raw::connect(port);
    c.send(&[6u8; 1537]); // RTMPE
    expect_closed("C0=6 (RTMPE)", &c, quick);
    let mut c = Raw::connect(port);
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_closed("HTTP on the RTMP port", &c, quick);
    let mut c = Raw::connect(port);
    c.send(&[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ]);
    expect_closed("TLS ClientHello", &c, quick);
    let mut c = Raw::connect(port);
    c.send(&[3u8; 100]);
    expect_closed("truncated C1 then silence", &c, deadline);
    // A client that drips one byte every 100 ms is closed by the absolute deadline.
    let mut c = Raw::connect(port);
    let mut drip = c.stream.try_clone().unwrap();
    let dripper = std::thread::spawn(move || {
        use std::io::Write;
        for _ in 0..80 {
            if drip.write_all(&[3u8]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    expect_closed("one byte every 100 ms", &c, deadline);
    c.shutdown();
    let _ = dripper.join();

    // ---- chunk layer ----
    let mut c = Raw::connect(port);
    c.handshake().message(2, 1, 0, 0, &0u32.to_be_bytes(), 128);
    expect_closed("Set Chunk Size 0", &c, quick);
    let mut c = Raw::connect(port);
    c.handshake()
        .message(2, 1, 0, 0, &0x8000_0000u32.to_be_bytes(), 128);
    expect_closed("Set Chunk Size with the top bit", &c, quick);
    let mut c = Raw::connect(port);
    // fmt 0 header declaring a 16 MiB - 1 message, above the 4 MiB limit.
    c.handshake()
        .send(&[3, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0, 1, 2, 3]);
    expect_closed("message above max_message_bytes", &c, quick);
    let mut c = Raw::connect(port);
    c.handshake().send(&[0xC0 | 9, 1, 2, 3, 4]);
    expect_closed("fmt 3 on a chunk stream with no state", &c, deadline);
    let mut c = Raw::connect(port);
    c.handshake();
    for csid in 4u8..40 {
        // Each chunk stream gets the first 128 bytes of a 1000-byte message: partial messages pile up.
        let m = encode_message(csid, 20, 0, 0, &[0u8; 1000], 128);
        c.send(&m[..12 + 128]);
    }
    expect_closed("too many chunk streams with partial messages", &c, quick);
    // Partial messages on a few chunk streams, each within max_message_bytes but together over the
    // per-connection budget of bytes held in partial messages.
    let mut c = Raw::connect(port);
    c.handshake()
        .message(2, 1, 0, 0, &65536u32.to_be_bytes(), 128);
    for csid in 4u8..8 {
        let m = encode_message(csid, 9, 1, 0, &vec![0u8; 3 * 1024 * 1024], 65536);
        c.send(&m[..12 + 65536 * 24]); // 1.5 MiB of each 3 MiB message
    }
    expect_closed("partial messages over max_partial_bytes", &c, quick);
    let mut c = Raw::connect(port);
    c.handshake().message(2, 2, 0, 0, &77u32.to_be_bytes(), 128); // Abort for a chunk stream never used
    expect_closed(
        "Abort for an unknown chunk stream (then the deadline)",
        &c,
        deadline,
    );

    // ---- AMF ----
    let mut c = Raw::connect(port);
    let mut nested = vec![2, 0, 7];
    nested.extend_from_slice(b"connect");
    nested.extend_from_slice(&[0, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
    for _ in 0..200_000 {
        nested.extend_from_slice(&[3, 0, 1, b'a']);
    }
    c.handshake()
        .message(3, 20, 0, 0, &nested[..4_000_000.min(nested.len())], 4096);
    expect_closed("AMF nested 200 000 deep", &c, deadline);
    let mut c = Raw::connect(port);
    let mut huge = vec![2, 0, 7];
    huge.extend_from_slice(b"connect");
    huge.extend_from_slice(&[
        0, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 5,
    ]);
    c.handshake().message(3, 20, 0, 0, &huge, 128);
    expect_closed("AMF strict array counting 2^32-1", &c, deadline);
    let mut c = Raw::connect(port);
    c.handshake()
        .message(3, 20, 0, 0, &[2, 0xFF, 0xFF, b'c'], 128);
    expect_closed("AMF string longer than its message", &c, deadline);

    // ---- session state ----
    let mut c = Raw::connect(port);
    c.handshake().command(
        1,
        &[
            Amf::Str("publish".into()),
            Amf::Num(5.0),
            Amf::Null,
            Amf::Str("x".into()),
        ],
    );
    expect_closed("publish before connect", &c, deadline);
    let mut c = Raw::connect(port);
    c.handshake().command(
        0,
        &[
            Amf::Str("connect".into()),
            Amf::Num(1.0),
            Amf::Obj(vec![("app".into(), Amf::Str("live".into()))]),
        ],
    );
    c.command(
        7,
        &[
            Amf::Str("publish".into()),
            Amf::Num(2.0),
            Amf::Null,
            Amf::Str("never".into()),
            Amf::Str("live".into()),
        ],
    );
    expect_closed("publish on a stream id never created", &c, deadline);
    let mut c = Raw::connect(port);
    c.handshake().command(
        0,
        &[
            Amf::Str("connect".into()),
            Amf::Num(1.0),
            Amf::Obj(vec![("app".into(), Amf::Str("live".into()))]),
        ],
    );
    for i in 0..200 {
        c.command(
            0,
            &[
                Amf::Str("createStream".into()),
                Amf::Num(f64::from(i) + 2.0),
                Amf::Null,
            ],
        );
    }
    expect_closed("200 createStream calls", &c, deadline);
    let mut c = Raw::connect(port);
    c.handshake()
        .message(4, 9, 1, 0, &flv_video(true, 1, 0, &[0, 0, 0, 1, 0x65]), 128);
    c.message(4, 8, 1, 0, &[0xAF, 1, 1, 2, 3], 128);
    c.message(5, 0x55, 0, 0, &[1, 2, 3], 128); // unknown message type
    expect_closed("media before publish", &c, deadline);
    // The canary's name is taken: a second publisher is refused and the canary is untouched.
    let mut c = Raw::connect(port);
    c.handshake().publish("live", "canary");
    expect_closed("second publisher for a live name", &c, deadline);

    // ---- codec payloads and timestamps, after a valid publish ----
    let mut c = Raw::connect(port);
    c.handshake().publish("live", "hostile");
    let avcc_bad_counts = flv_video(true, 0, 0, &[1, 0x64, 0, 0x1f, 0xff, 0xff, 0xff, 0xff]);
    let avcc_overrun = flv_video(
        true,
        0,
        0,
        &[1, 0x64, 0, 0x1f, 0xff, 0xe1, 0xff, 0xf0, 0x67],
    );
    let nal_overrun = flv_video(true, 1, 0, &[0x7f, 0xff, 0xff, 0xff, 0x65, 0x88]);
    let nal_zero = flv_video(false, 1, 0, &[0, 0, 0, 0, 0, 0, 0, 0]);
    let cts_absurd = flv_video(false, 1, -8_000_000, &[0, 0, 0, 2, 0x41, 0x9a]);
    let cases: Vec<(u8, u32, Vec<u8>)> = vec![
        (9, 0, avcc_bad_counts),
        (9, 0, avcc_overrun),
        (9, 40, nal_overrun),
        (9, 80, nal_zero),
        (9, 80, vec![]),                    // empty video message
        (8, 80, vec![]),                    // empty audio message (silence)
        (8, 80, vec![0xAF, 0, 0x17, 0x80]), // AAC config with sampling index 15 (escape) truncated
        (8, 80, vec![0xAF, 0, 0x16, 0x88]), // AAC config with reserved sampling index 13
        (8, 90, vec![0xAF, 1, 1, 2, 3]),    // AAC frame
        (9, 10, cts_absurd),                // backwards step plus absurd CTS
        (
            9,
            0x8000_0000,
            flv_video(false, 1, 0, &[0, 0, 0, 2, 0x41, 0x9a]),
        ), // 2^31 jump
        (
            9,
            0xFFFF_FFF0,
            flv_video(false, 1, 0, &[0, 0, 0, 2, 0x41, 0x9a]),
        ), // near the wrap
        (9, 5, flv_video(false, 1, 0, &[0, 0, 0, 2, 0x41, 0x9a])), // wrapped
        (9, 0, vec![0x9F, b'h', b'v', b'c', b'1']), // enhanced header, truncated
        (9, 0, vec![0x90 | 7, 0xFF]),       // ModEx with no body
    ];
    for (type_id, ts, body) in &cases {
        c.message(4, *type_id, 1, *ts, body, 4096);
    }
    for _ in 0..50 {
        c.message(
            4,
            9,
            1,
            0,
            &flv_video(false, 1, 0, &[0, 0, 0, 2, 0x41, 0x9a]),
            4096,
        ); // all-zero timestamps
    }
    // Then silence: the idle deadline closes it.
    expect_closed(
        "codec garbage then silence (idle deadline)",
        &c,
        idle + Duration::from_millis(500),
    );

    // ---- connection flood: the per-IP cap holds; every extra connection is closed ----
    let flood: Vec<Raw> = (0..60).map(|_| Raw::connect(port)).collect();
    for (i, c) in flood.iter().enumerate() {
        expect_closed(&format!("flood connection {i}"), c, deadline);
    }

    // ---- HTTP ----
    let base = s.http("");
    for path in [
        "/%2e%2e/%2e%2e/etc/passwd",
        "/live/..%2f..%2fetc/index.m3u8",
        "/live/%2e%2e/index.m3u8",
        "/live/canary/..%2findex.m3u8",
        "/live/canary/seg-99999999999999999999999.ts",
        "/live/canary/seg--1.ts",
        "/live/canary/%00.ts",
        "/live/can%ary/index.m3u8",
        "//////",
        "/live/canary/index.m3u8/",
    ] {
        let r = http_get(&base, path).unwrap();
        assert!(
            (400..500).contains(&r.status),
            "{path} answered {}",
            r.status
        );
        assert!(!r.text().contains("passwd"), "{path}: request reflected");
    }
    let long_query = format!("/live/canary/index.m3u8?{}", "a=b&".repeat(30_000));
    let r = http_get(&base, &long_query).unwrap();
    assert!(
        (400..500).contains(&r.status),
        "huge query answered {}",
        r.status
    );
    let r = http_request(
        &base,
        "GET",
        "http://evil.example/live/canary/index.m3u8",
        &[],
    )
    .unwrap();
    assert!(r.status < 500, "absolute-form target answered {}", r.status);
    let r = http_request(
        &base,
        "POST",
        "/live/canary/index.m3u8",
        &[("Content-Length", "0")],
    )
    .unwrap();
    assert_eq!(r.status, 405);
    let r = http_request(
        &base,
        "GET",
        "/live/canary/index.m3u8",
        &[("Range", "bytes=99999999-")],
    )
    .unwrap();
    assert!(r.status < 500);
    assert_eq!(
        http_get(&base, "/live/canary/index.m3u8")
            .unwrap()
            .header("x-content-type-options"),
        Some("nosniff")
    );
    // Slowloris: request headers dripped one line every 500 ms are cut off by the header timeout.
    {
        use std::io::{Read, Write};
        let mut t = std::net::TcpStream::connect(("127.0.0.1", s.http_port)).unwrap();
        t.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        t.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let start = Instant::now();
        let mut closed = false;
        while start.elapsed() < Duration::from_secs(8) {
            if t.write_all(b"X-Drip: 1\r\n").is_err() {
                closed = true;
                break;
            }
            let mut b = [0u8; 512];
            match t.read(&mut b) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(_) => {} // a 408 may come first; the close follows
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(400));
        }
        assert!(closed, "slowloris HTTP client was not cut off");
        eprintln!("hostile: slowloris HTTP closed after {:?}", start.elapsed());
    }

    // ---- the canary lost nothing, the process is healthy, memory is back near baseline ----
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(s.get("/healthz").status, 200);
    let (seen, discontinuities) = watch.finish();
    let (first, last) = (*seen.first().unwrap(), *seen.last().unwrap());
    let missing: Vec<u64> = (first..=last).filter(|n| !seen.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "canary segments missing from its playlist: {missing:?}"
    );
    assert!(
        last - first >= 10,
        "canary produced too few segments: {first}..{last}"
    );
    assert_eq!(
        discontinuities, 0,
        "the canary playlist got a discontinuity"
    );
    let log = s.log_text();
    assert!(
        !log.lines()
            .any(|l| l.contains("publish ended") && l.contains("canary")),
        "canary publish ended during the attack"
    );
    assert!(!log.contains("panicked"), "a task panicked:\n{log}");
    let after_kib = rss_kib(pid);
    eprintln!("hostile: RSS baseline {baseline_kib} KiB, after {after_kib} KiB");
    assert!(
        after_kib <= baseline_kib + 48 * 1024,
        "memory did not return near baseline: {baseline_kib} KiB -> {after_kib} KiB"
    );
}
