//! LL-HLS smoke test against the real binary (RFC 8216bis §4.4.3.7-8, §4.4.4.9, §4.4.5.2,
//! §6.2.5.2, §6.2.6): ffmpeg publishes; `cmaf.m3u8` carries the LL tags at the default settings
//! with every part within `PART-TARGET`; a blocking reload for the hinted part and a request for
//! the hinted part itself are answered once it exists; too far ahead is 400; a part's bytes are
//! its range of its segment. The hinted part streams: its first bytes arrive while the
//! playlist does not list it yet (events, no clock), chunked, and the whole body equals the
//! part served later with `Content-Length`.

use std::io::{Read, Write};
use std::time::Duration;

use crate::support::*;

fn hint(playlist: &str) -> (u64, u32) {
    let line = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-"))
        .unwrap_or_else(|| panic!("no preload hint:\n{playlist}"));
    let (msn, rest) = line.split_once('.').unwrap();
    let part = rest.split_once('.').unwrap().0;
    (msn.parse().unwrap(), part.parse().unwrap())
}

#[test]
fn ll_hls_tags_blocking_reload_and_preload_hint() {
    if !require("ffmpeg") {
        return;
    }
    let s = Sluice::start(&[]);
    let _publisher = ffmpeg_publish(&s.rtmp("live/ll"), 40, &[]);
    let text = s.wait_for_segments("/live/ll/cmaf.m3u8", 2, Duration::from_secs(60));
    for tag in [
        "#EXT-X-VERSION:9\n",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.000,PART-HOLD-BACK=0.999\n",
        "#EXT-X-PART-INF:PART-TARGET=0.333\n",
        ",INDEPENDENT=YES\n",
    ] {
        assert!(text.contains(tag), "{tag:?} missing:\n{text}");
    }
    for line in text.lines().filter(|l| l.starts_with("#EXT-X-PART:")) {
        let d = line
            .strip_prefix("#EXT-X-PART:DURATION=")
            .and_then(|r| r.split_once(',').map(|x| x.0))
            .unwrap();
        let ms: u64 = d.replace('.', "").parse().unwrap();
        assert!(ms <= 333, "part over PART-TARGET: {line}");
    }
    // The TS playlist stays a standard one.
    let ts = s.get("/live/ll/index.m3u8").text();
    assert!(
        !ts.contains("#EXT-X-PART") && ts.contains("#EXT-X-VERSION:3\n"),
        "{ts}"
    );

    // Blocking reload for the hinted part: held until it exists, then the playlist lists it.
    let (msn, part) = hint(&s.get("/live/ll/cmaf.m3u8").text());
    let r = s.get(&format!(
        "/live/ll/cmaf.m3u8?_HLS_msn={msn}&_HLS_part={part}"
    ));
    assert_eq!(r.status, 200);
    let after = r.text();
    assert!(
        after.contains(&format!("part-{msn}.{part}.m4s\"")),
        "blocking answer without the part it waited for:\n{after}"
    );
    assert_eq!(r.header("cache-control"), Some("public, max-age=12"));

    // The hinted part itself: answered when it exists, immutable.
    let (msn, part) = hint(&after);
    let p = s.get(&format!("/live/ll/part-{msn}.{part}.m4s"));
    assert_eq!(p.status, 200, "hinted part");
    assert!(p.header("cache-control").unwrap().contains("immutable"));
    assert!(!p.body.is_empty());

    // Too far ahead: 400 at once.
    let r = s.get(&format!("/live/ll/cmaf.m3u8?_HLS_msn={}", msn + 3));
    assert_eq!(r.status, 400);

    // When its segment completes, the part is its byte range of the segment.
    let done = s.get(&format!("/live/ll/cmaf.m3u8?_HLS_msn={msn}"));
    assert_eq!(done.status, 200);
    let seg = s.get(&format!("/live/ll/seg-{msn}.m4s"));
    assert_eq!(seg.status, 200);
    let mut offset = 0;
    for i in 0..=part {
        let b = s.get(&format!("/live/ll/part-{msn}.{i}.m4s")).body;
        assert_eq!(
            &seg.body[offset..offset + b.len()],
            b.as_slice(),
            "part {msn}.{i}"
        );
        offset += b.len();
    }
}

/// Opens `GET path`, reads the head and the first non-empty chunk of a chunked body; then
/// `at_first_bytes` runs (with the first bytes still the only ones seen); then reads the rest.
/// Returns (head, body, what `at_first_bytes` returned).
fn get_streaming<T>(
    base: &str,
    path: &str,
    at_first_bytes: impl FnOnce() -> T,
) -> (String, Vec<u8>, Option<T>) {
    let hostport = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(hostport).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    let mut seen = None;
    let mut at = Some(at_first_bytes);
    loop {
        let n = s.read(&mut byte).unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&byte[..n]);
        if seen.is_none() {
            if let Some(h) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                // A first chunk with data: its size line is not "0".
                let rest = &buf[h + 4..];
                if let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
                    let size = usize::from_str_radix(
                        std::str::from_utf8(&rest[..eol]).unwrap().trim(),
                        16,
                    );
                    if size.is_ok_and(|n| n > 0) {
                        seen = at.take().map(|f| f());
                    }
                }
            }
        }
    }
    let h = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("head");
    let head = String::from_utf8_lossy(&buf[..h]).into_owned();
    let mut body = Vec::new();
    let mut b = &buf[h + 4..];
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        body.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    (head, body, seen)
}

#[test]
fn ll_hinted_part_streams_before_it_is_complete() {
    if !require("ffmpeg") {
        return;
    }
    let s = Sluice::start(&[]);
    let _publisher = ffmpeg_publish(&s.rtmp("live/lls"), 40, &[]);
    s.wait_for_segments("/live/lls/cmaf.m3u8", 1, Duration::from_secs(60));
    let base = s.http("");
    let mut early = 0;
    for _ in 0..5 {
        // Wait for the next part to be listed, then ask for the one the hint names.
        let (msn, part) = hint(&s.get("/live/lls/cmaf.m3u8").text());
        let listed = format!("part-{msn}.{part}.m4s\"");
        let path = format!("/live/lls/part-{msn}.{part}.m4s");
        let (head, body, listed_at_first_bytes) = get_streaming(&base, &path, || {
            let pl = s.get("/live/lls/cmaf.m3u8").text();
            pl.lines()
                .any(|l| l.starts_with("#EXT-X-PART:") && l.contains(&listed))
        });
        let head_l = head.to_ascii_lowercase();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        if listed_at_first_bytes == Some(false) {
            // Streamed while growing: chunked, no length, the long immutable lifetime.
            assert!(head_l.contains("transfer-encoding: chunked"), "{head}");
            assert!(
                !head_l.lines().any(|l| l.starts_with("content-length:")),
                "{head}"
            );
            early += 1;
        }
        assert!(head_l.contains("immutable"), "{head}");
        // Complete now: served with Content-Length, the same bytes.
        let whole = s.get(&path);
        assert_eq!(whole.status, 200);
        assert_eq!(
            whole.header("content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(whole.body, body, "{path}: streamed body is not the part");
        if early >= 2 {
            break;
        }
    }
    // The edge answers a hinted part at its first chunk, ~33 ms into a 300 ms part: the first
    // bytes come before the playlist lists the part (at least twice in five tries under load).
    assert!(
        early >= 2,
        "hinted parts were not streamed before completion ({early}/5)"
    );
}
