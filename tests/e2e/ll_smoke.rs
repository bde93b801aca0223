//! LL-HLS smoke test against the real binary (RFC 8216bis §4.4.3.7-8, §4.4.4.9, §4.4.5.2,
//! §6.2.5.2, §6.2.6): ffmpeg publishes; `cmaf.m3u8` carries the LL tags at the default settings
//! with every part within `PART-TARGET`; a blocking reload for the hinted part and a request for
//! the hinted part itself are answered once it exists; too far ahead is 400; a part's bytes are
//! its range of its segment.

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
