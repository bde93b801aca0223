//! I-frame playlists and audio renditions end to end (issue 16): real ffmpeg publishes, the
//! I-frame playlists (`iframes.m3u8`, `cmaf-iframes.m3u8`, RFC 8216bis §4.4.3.6) are fetched
//! and each listed byte range (§4.4.4.2) is fetched with an HTTP `Range` request and decoded
//! by ffmpeg to exactly one picture; the ranges end exactly on a TS packet / ISO BMFF box
//! boundary. A multitrack publish's audio tracks are checked as the group's `EXT-X-MEDIA` audio
//! renditions.

use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// (EXT-X-MAP URI, length, offset, segment URI) of each I-frame entry with a byte range.
fn iframe_entries(playlist: &str) -> Vec<(Option<String>, u64, u64, String)> {
    let mut out = Vec::new();
    let (mut map, mut range) = (None, None);
    for l in playlist.lines() {
        if let Some(m) = l.strip_prefix("#EXT-X-MAP:URI=\"") {
            map = Some(m.trim_end_matches('"').to_string());
        } else if let Some(r) = l.strip_prefix("#EXT-X-BYTERANGE:") {
            let (len, offset) = r.split_once('@').expect("offset is explicit");
            range = Some((len.parse().unwrap(), offset.parse().unwrap()));
        } else if !l.starts_with('#') && !l.is_empty() {
            if let Some((len, offset)) = range.take() {
                out.push((map.clone(), len, offset, l.to_string()));
            }
        }
    }
    out
}

/// Decodes `bytes` with ffmpeg to raw yuv420p pictures; returns how many whole pictures of
/// `width`x`height` came out.
fn decoded_pictures(bytes: &[u8], name: &str, width: usize, height: usize) -> usize {
    let dir = std::env::temp_dir();
    let input = dir.join(format!("sluice-iframe-{}-{name}", std::process::id()));
    std::fs::write(&input, bytes).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(&input)
        .args([
            "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-",
        ])
        .output()
        .expect("run ffmpeg");
    let _ = std::fs::remove_file(&input);
    let picture = width * height * 3 / 2;
    assert!(
        out.status.success(),
        "ffmpeg failed on {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len() % picture, 0, "{name}: partial picture");
    out.stdout.len() / picture
}

fn ranged(s: &Sluice, path: &str, offset: u64, len: u64) -> Vec<u8> {
    let range = format!("bytes={offset}-{}", offset + len - 1);
    let r = http_request(&s.http(""), "GET", path, &[("Range", &range)]).unwrap();
    assert_eq!(r.status, 206, "{path} {range}");
    assert_eq!(r.body.len() as u64, len);
    r.body
}

/// ffmpeg publishes H.264 + AAC; both I-frame playlists list every segment's keyframe, each
/// range decodes (behind PAT/PMT for TS, behind the init segment for CMAF) to one picture, and
/// ends exactly where the next packet / box starts.
#[test]
fn iframe_playlists_byteranges_decode_to_one_picture() {
    if !require("ffmpeg") {
        return;
    }
    let s = Sluice::start(&[]);
    let _pub = ffmpeg_publish(&s.rtmp("live/scrub"), 30, &[]);
    let media = s.wait_for_segments("/live/scrub/index.m3u8", 3, Duration::from_secs(60));
    s.wait_for_segments("/live/scrub/cmaf.m3u8", 3, Duration::from_secs(30));
    for (file, container) in [("iframes.m3u8", "ts"), ("cmaf-iframes.m3u8", "cmaf")] {
        let r = s.get(&format!("/live/scrub/{file}"));
        assert_eq!(r.status, 200, "{file}\n{}", s.log_text());
        assert_eq!(
            r.header("content-type"),
            Some("application/vnd.apple.mpegurl")
        );
        let media_cache = s.get("/live/scrub/index.m3u8");
        assert_eq!(
            r.header("cache-control"),
            media_cache.header("cache-control"),
            "I-frame playlists are cached like media playlists"
        );
        let pl = r.text();
        assert!(pl.contains("#EXT-X-I-FRAMES-ONLY\n"), "{pl}");
        let entries = iframe_entries(&pl);
        assert!(entries.len() >= 3, "{pl}");
        for (map, len, offset, seg) in entries.iter().rev().take(3) {
            let path = format!("/live/scrub/{seg}");
            let whole = s.get(&path).body;
            let bytes = ranged(&s, &path, *offset, *len);
            assert_eq!(
                &whole[*offset as usize..(*offset + *len) as usize],
                &bytes[..]
            );
            let end = (*offset + *len) as usize;
            let mut input = Vec::new();
            if container == "ts" {
                assert_eq!(*offset, 0, "TS ranges start with PAT/PMT");
                assert_eq!(len % 188, 0, "{seg}: not a whole number of TS packets");
                assert!(
                    end < whole.len() && whole[end] == 0x47,
                    "{seg}: packet boundary"
                );
            } else {
                let size = |at: usize| u32::from_be_bytes(whole[at..at + 4].try_into().unwrap());
                let at = *offset as usize;
                assert_eq!(&whole[at + 4..at + 8], b"moof", "{seg}");
                let mdat = at + size(at) as usize;
                assert_eq!(&whole[mdat + 4..mdat + 8], b"mdat", "{seg}");
                assert_eq!(mdat + size(mdat) as usize, end, "{seg}: range is moof+mdat");
                let init = map.as_ref().expect("EXT-X-MAP before the entries");
                input = s.get(&format!("/live/scrub/{init}")).body;
            }
            input.extend_from_slice(&bytes);
            let name = format!("{container}-{seg}");
            let pictures = decoded_pictures(&input, &name, 640, 360);
            if container == "ts" {
                assert_eq!(pictures, 1, "{seg}: the range holds exactly the keyframe");
            } else {
                // One fragment per part today (a few frames); one per frame once the CMAF
                // writer emits a chunk per frame: the keyframe comes first either way.
                assert!(pictures >= 1, "{seg}");
            }
        }
        // Every media segment has its I-frame entry, under the same numbers.
        if container == "ts" {
            let listed = segment_uris(&pl);
            for seg in segment_uris(&media).iter().filter(|s| listed.contains(s)) {
                assert!(entries.iter().any(|e| &e.3 == seg), "{seg} missing\n{pl}");
            }
        }
    }
}

/// First PTS (seconds) of the `kind` stream (`v:0`, `a:0`) of a segment, by ffprobe; CMAF
/// segments are probed behind their init segment.
fn first_pts(s: &Sluice, dir: &str, playlist: &str, seg: &str, kind: &str) -> f64 {
    let mut bytes = Vec::new();
    if let Some(init) = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .next_back()
    {
        bytes = s.get(&format!("{dir}/{}", init.trim_end_matches('"'))).body;
    }
    bytes.extend(s.get(&format!("{dir}/{seg}")).body);
    let file = std::env::temp_dir().join(format!(
        "sluice-abr-media-{}-{}-{seg}",
        std::process::id(),
        dir.replace('/', "_")
    ));
    std::fs::write(&file, &bytes).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", kind, "-show_entries"])
        .args(["stream=start_time", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .expect("run ffprobe");
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no {kind} start time for {dir}/{seg}: {text:?}"))
}

/// FFmpeg 9 publishes one Enhanced RTMP multitrack stream with two video and two audio tracks:
/// the multivariant playlists list the audio tracks as an `EXT-X-MEDIA:TYPE=AUDIO` group of
/// audio-only renditions (`live/mta~a0`, `~a1`), the video-only variants carry `AUDIO=` and the
/// audio codec in CODECS; ffmpeg opens the multivariant playlist with video and audio; ffprobe
/// reads each audio rendition; audio segment N starts within one audio frame of video segment N.
#[test]
fn multitrack_audio_tracks_are_an_audio_group() {
    let Some(ff9) = test_support::ffmpeg9() else {
        return;
    };
    if !require("ffmpeg") || !require("ffprobe") {
        return;
    }
    let s = Sluice::start(&[]);
    let mut c = Command::new(ff9);
    c.args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-f", "lavfi", "-i", "sine=frequency=660:sample_rate=48000"])
        .args(["-t", "30"])
        .args([
            "-filter_complex",
            "[0:v]split=2[v0][v1];[v1]scale=320:180[v1s]",
        ])
        .args([
            "-map", "[v0]", "-map", "[v1s]", "-map", "1:a", "-map", "2:a",
        ])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-bf", "0"])
        .args([
            "-force_key_frames",
            "expr:gte(t,n_forced*2)",
            "-sc_threshold",
            "0",
        ])
        .args(["-g", "600", "-pix_fmt", "yuv420p", "-b:v", "600k"])
        .args([
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            "-f",
            "flv",
            &s.rtmp("live/mta"),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let _pub = Proc(c.spawn().expect("start FFmpeg 9"));
    let names = ["mta~v0", "mta~v1", "mta~a0", "mta~a1"];
    for n in names {
        s.wait_for_segments(&format!("/live/{n}/index.m3u8"), 4, Duration::from_secs(60));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mv = loop {
        let t = s.get("/live/mta/index.m3u8").text();
        if t.matches("#EXT-X-MEDIA:TYPE=AUDIO").count() == 2
            && t.matches("#EXT-X-STREAM-INF:").count() == 2
        {
            break t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{t}\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let media: Vec<&str> = mv
        .lines()
        .filter(|l| l.starts_with("#EXT-X-MEDIA:"))
        .collect();
    assert!(media[0].contains("GROUP-ID=\"audio\""), "{mv}");
    assert!(media[0].contains("DEFAULT=YES,AUTOSELECT=YES"), "{mv}");
    assert!(media[0].contains("CHANNELS=\"1\""), "mono sine: {mv}");
    assert!(media[0].ends_with("URI=\"../mta~a0/index.m3u8\""), "{mv}");
    assert!(media[1].contains("DEFAULT=NO"), "{mv}");
    assert!(media[1].ends_with("URI=\"../mta~a1/index.m3u8\""), "{mv}");
    for l in mv.lines().filter(|l| l.starts_with("#EXT-X-STREAM-INF:")) {
        assert!(l.contains("AUDIO=\"audio\""), "{l}");
        assert!(
            l.contains(",mp4a.40.2\""),
            "CODECS names the audio group's codec: {l}"
        );
    }
    assert!(mv.contains("#EXT-X-I-FRAME-STREAM-INF:"), "{mv}");
    let cmaf = s.get("/live/mta/cmaf.m3u8").text();
    assert!(cmaf.contains("URI=\"../mta~a1/cmaf.m3u8\""), "{cmaf}");
    // Video renditions are video-only; audio renditions audio-only; the multivariant has both.
    assert_eq!(probe_codecs(s.http("/live/mta~v0/index.m3u8")), ["h264"]);
    for n in ["mta~a0", "mta~a1"] {
        for file in ["index.m3u8", "cmaf.m3u8"] {
            assert_eq!(
                probe_codecs(s.http(&format!("/live/{n}/{file}"))),
                ["aac"],
                "{n}/{file}"
            );
        }
    }
    let all = probe_codecs(s.http("/live/mta/index.m3u8"));
    assert!(
        all.contains(&"aac".to_string()) && all.contains(&"h264".to_string()),
        "{all:?}"
    );
    let url = s.http("/live/mta/index.m3u8");
    let errors = ffmpeg_decode_errors(&url, &["-t", "3"]);
    assert!(errors.is_empty(), "{url}: {errors}");
    // Alignment: same numbers, same media time within one AAC frame (1024 / 48 kHz) + 1 ms.
    for file in ["index.m3u8", "cmaf.m3u8"] {
        let v = s.get(&format!("/live/mta~v0/{file}")).text();
        let a = s.get(&format!("/live/mta~a0/{file}")).text();
        let (vs, as_) = (segment_uris(&v), segment_uris(&a));
        let common: Vec<&String> = vs.iter().filter(|x| as_.contains(x)).collect();
        assert!(common.len() >= 2, "{file}: {v}\n{a}");
        for seg in common.iter().rev().take(3) {
            let tv = first_pts(&s, "/live/mta~v0", &v, seg, "v:0");
            let ta = first_pts(&s, "/live/mta~a0", &a, seg, "a:0");
            assert!(
                (ta - tv).abs() <= 1024.0 / 48_000.0 + 0.001,
                "{file} {seg}: video {tv} audio {ta}"
            );
        }
    }
}
