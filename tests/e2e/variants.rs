//! Remux end to end through the real ingest: ffmpeg publishes media of several shapes (B-frames,
//! irregular GOP, video only, audio only, MP3, timestamps crossing 2^24 ms); every segment is
//! fetched over HTTP as it appears, then checked by an independent TS reader (`mpeg2ts`), by
//! ffprobe (exact track set, strictly increasing DTS per track) and by ffmpeg decoding all segments
//! in order with zero errors.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mpeg2ts::ts::{ReadTsPacket, TsPacketReader, TsPayload};

use crate::support::*;

struct Variant {
    name: &'static str,
    /// lavfi sources (`-f lavfi -i ...`).
    video: Option<&'static str>,
    audio: Option<&'static str>,
    /// Encoder options after the inputs (x264 basics are added when there is video).
    codec_args: &'static str,
    expect: &'static [&'static str],
}

impl Variant {
    fn ffmpeg_args(&self) -> Vec<&'static str> {
        let mut a = Vec::new();
        for src in [self.video, self.audio].into_iter().flatten() {
            a.extend(["-f", "lavfi", "-i", src]);
        }
        if self.video.is_some() {
            a.extend("-c:v libx264 -preset ultrafast -pix_fmt yuv420p".split_whitespace());
        }
        a.extend(self.codec_args.split_whitespace());
        a
    }
}

const VARIANTS: &[Variant] = &[
    Variant {
        name: "bframes",
        video: Some("testsrc2=size=320x240:rate=30"),
        audio: Some("sine=frequency=300:sample_rate=44100"),
        codec_args: "-bf 3 -g 60 -c:a aac -b:a 96k",
        expect: &["aac", "h264"],
    },
    Variant {
        name: "irregular",
        video: Some("testsrc2=size=320x240:rate=25"),
        audio: Some("sine=frequency=500:sample_rate=48000"),
        codec_args:
            "-bf 2 -g 250 -force_key_frames expr:gte(t,n_forced*1.7)+eq(n,37)+eq(n,130) -c:a aac",
        expect: &["aac", "h264"],
    },
    Variant {
        name: "videoonly",
        video: Some("testsrc2=size=320x240:rate=30"),
        audio: None,
        codec_args: "-bf 2 -g 60 -an",
        expect: &["h264"],
    },
    Variant {
        name: "audioonly",
        video: None,
        audio: Some("sine=frequency=700:sample_rate=48000"),
        codec_args: "-c:a aac -b:a 128k -vn",
        expect: &["aac"],
    },
    Variant {
        name: "mp3",
        video: Some("testsrc2=size=320x240:rate=30"),
        audio: Some("sine=frequency=440:sample_rate=44100"),
        codec_args: "-bf 2 -g 60 -c:a libmp3lame -b:a 128k",
        expect: &["h264", "mp3"],
    },
    Variant {
        name: "ts2pow24",
        // Starts 5 s before 2^24 ms (16777.216 s): crosses the extended-timestamp boundary.
        video: Some("testsrc2=size=320x240:rate=30"),
        audio: Some("sine=frequency=440:sample_rate=48000"),
        codec_args: "-bf 2 -g 60 -c:a aac -output_ts_offset 16772.2",
        expect: &["aac", "h264"],
    },
];

/// Publishes one variant for `seconds` in real time and downloads every segment as it appears.
fn publish_and_collect(s: &Sluice, v: &Variant, seconds: u32) -> Vec<Vec<u8>> {
    let mut ff = Command::new("ffmpeg");
    ff.args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(v.ffmpeg_args())
        .args([
            "-t",
            &seconds.to_string(),
            "-f",
            "flv",
            &s.rtmp(&format!("live/{}", v.name)),
        ])
        .stdin(Stdio::null());
    let mut child = Proc(ff.spawn().expect("ffmpeg"));
    let path = format!("/live/{}/index.m3u8", v.name);
    let mut got: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut done_at: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(u64::from(seconds) + 30);
    while Instant::now() < deadline {
        if done_at.is_none() && child.0.try_wait().unwrap().is_some() {
            done_at = Some(Instant::now());
        }
        if let Ok(r) = http_get(&s.http(""), &path) {
            if r.status == 200 {
                let text = r.text();
                let msn: u64 = text
                    .lines()
                    .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
                    .and_then(|x| x.trim().parse().ok())
                    .unwrap();
                for (i, uri) in segment_uris(&text).iter().enumerate() {
                    let n = msn + i as u64;
                    if !got.iter().any(|(k, _)| *k == n) {
                        let seg = s.get(&format!("/live/{}/{uri}", v.name));
                        assert_eq!(seg.status, 200, "{uri}");
                        got.push((n, seg.body));
                    }
                }
            }
        }
        if done_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    got.sort_by_key(|(n, _)| *n);
    for w in got.windows(2) {
        assert_eq!(
            w[0].0 + 1,
            w[1].0,
            "{}: segment gap in what the playlist listed",
            v.name
        );
    }
    got.into_iter().map(|(_, b)| b).collect()
}

/// Independent demux of each segment: PAT then PMT first, exactly the expected number of tracks,
/// continuity counters continuous across segment boundaries.
fn check_with_mpeg2ts(name: &str, segments: &[Vec<u8>], tracks: usize) {
    let mut last_cc: HashMap<u16, u8> = HashMap::new();
    for (i, seg) in segments.iter().enumerate() {
        assert_eq!(
            seg.len() % 188,
            0,
            "{name}: segment {i} is not whole TS packets"
        );
        let mut r = TsPacketReader::new(&seg[..]);
        let mut n = 0;
        while let Some(p) = r
            .read_ts_packet()
            .unwrap_or_else(|e| panic!("{name}: segment {i}: {e}"))
        {
            match (n, &p.payload) {
                (0, Some(TsPayload::Pat(_))) => {}
                (0, other) => panic!("{name}: segment {i} does not start with a PAT: {other:?}"),
                (1, Some(TsPayload::Pmt(pmt))) => {
                    assert_eq!(
                        pmt.es_info.len(),
                        tracks,
                        "{name}: PMT declares {:?}",
                        pmt.es_info
                    );
                }
                (1, other) => panic!("{name}: segment {i}: second packet is not a PMT: {other:?}"),
                _ => {}
            }
            let pid = p.header.pid.as_u16();
            let has_payload = p.payload.is_some();
            if pid != 0 && pid != 0x1FFF && has_payload {
                let cc = p.header.continuity_counter.as_u8();
                if let Some(prev) = last_cc.get(&pid) {
                    let discontinuity = p
                        .adaptation_field
                        .as_ref()
                        .is_some_and(|a| a.discontinuity_indicator);
                    assert!(
                        discontinuity || cc == (prev + 1) % 16,
                        "{name}: segment {i} packet {n}: CC on PID {pid:#x} jumps {prev} -> {cc}"
                    );
                }
                last_cc.insert(pid, cc);
            }
            n += 1;
        }
    }
}

fn check_with_ffmpeg(name: &str, segments: &[Vec<u8>], expect: &[&str]) {
    let dir = std::env::temp_dir().join(format!("sluice-variants-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let all = dir.join("all.ts");
    std::fs::write(&all, segments.concat()).unwrap();
    let first = dir.join("first.ts");
    std::fs::write(&first, &segments[0]).unwrap();

    // Exactly the tracks that were sent, in the first segment on its own.
    assert_eq!(
        probe_codecs(&first),
        expect,
        "{name}: tracks of the first segment"
    );

    // All segments in order decode with zero errors.
    let errors = ffmpeg_decode_errors(&all, &[]);
    assert!(errors.is_empty(), "{name}: ffmpeg decode errors:\n{errors}");

    // DTS strictly increasing per track across all segments.
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,dts",
            "-of",
            "csv=p=0",
        ])
        .arg(&all)
        .output()
        .unwrap();
    let mut last: HashMap<String, i64> = HashMap::new();
    let mut count = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut f = line.split(',');
        let (Some(idx), Some(dts)) = (f.next(), f.next()) else {
            continue;
        };
        let Ok(dts) = dts.trim().parse::<i64>() else {
            continue;
        };
        if let Some(prev) = last.get(idx) {
            assert!(
                dts > *prev,
                "{name}: DTS not strictly increasing on stream {idx}: {prev} -> {dts}"
            );
        }
        last.insert(idx.to_string(), dts);
        count += 1;
    }
    assert!(count > 50, "{name}: only {count} packets");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn remux_variants_through_the_ingest_decode_cleanly() {
    if !require("ffmpeg") || !require("ffprobe") {
        return;
    }
    let s = Sluice::start(&[]);
    let results: Vec<(usize, Vec<Vec<u8>>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = VARIANTS
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let s = &s;
                scope.spawn(move || (i, publish_and_collect(s, v, 12)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, segments) in results {
        let v = &VARIANTS[i];
        assert!(
            segments.len() >= 4,
            "{}: only {} segments",
            v.name,
            segments.len()
        );
        check_with_mpeg2ts(v.name, &segments, v.expect.len());
        check_with_ffmpeg(v.name, &segments, v.expect);
        eprintln!("variant {}: {} segments OK", v.name, segments.len());
    }
}
