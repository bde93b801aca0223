//! FLV file reader for the load generator (FLV v10.1 Annex E.3): the file is parsed once into
//! tags held in memory as `Bytes`, each media tag pre-chunked for the RTMP wire so a publisher
//! only writes a 12-byte header plus a shared buffer per message.
//!
//! ```text
//! header "FLV" v1 flags u8 offset u32 | prev u32 | tag: type u8, size u24, ts u24, ts_ext u8,
//! stream u24, body[size] | prev u32 | ...
//! ```
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};

/// RTMP chunk size the publisher announces before `connect` (Set Chunk Size, RTMP §5.4.1).
pub const OUT_CHUNK_SIZE: usize = 60_000;
pub const CSID_AUDIO: u8 = 4;
pub const CSID_VIDEO: u8 = 6;
pub const CSID_DATA: u8 = 5;

#[derive(Clone)]
pub struct Tag {
    /// 8 audio, 9 video, 18 script data.
    pub kind: u8,
    /// Timestamp relative to the first tag of the file.
    pub timestamp_ms: u32,
    /// The FLV tag body (= the RTMP message payload).
    pub payload: Bytes,
    /// `payload` split at `OUT_CHUNK_SIZE` with fmt-3 continuation headers inserted, valid for
    /// timestamps below 0xFFFFFF (no extended timestamp in continuation chunks).
    pub chunked: Bytes,
    pub keyframe: bool,
}

impl Tag {
    pub fn csid(&self) -> u8 {
        match self.kind {
            8 => CSID_AUDIO,
            9 => CSID_VIDEO,
            _ => CSID_DATA,
        }
    }
}

/// A parsed FLV file: the metadata tag and the media tags, plus how long one pass lasts so a
/// publisher can loop it with rebased timestamps.
pub struct Media {
    pub metadata: Option<Bytes>,
    pub tags: Vec<Tag>,
    /// Offset added to timestamps on each loop: last video timestamp + one frame interval.
    pub loop_duration_ms: u32,
    /// FLV payload bytes of audio+video tags in one pass.
    pub media_bytes_per_loop: u64,
}

pub fn chunk_payload(payload: &[u8], csid: u8) -> Bytes {
    let pieces = payload.len().div_ceil(OUT_CHUNK_SIZE).max(1);
    let mut out = BytesMut::with_capacity(payload.len() + pieces);
    for (i, piece) in payload.chunks(OUT_CHUNK_SIZE).enumerate() {
        if i > 0 {
            out.put_u8(0xC0 | csid);
        }
        out.put_slice(piece);
    }
    out.freeze()
}

pub fn load(path: &Path) -> Result<Media> {
    let data =
        Bytes::from(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
    parse(data)
}

pub fn parse(data: Bytes) -> Result<Media> {
    ensure!(data.len() >= 13 && &data[..3] == b"FLV", "not an FLV file");
    let header_len = u32::from_be_bytes(data[5..9].try_into().unwrap()) as usize;
    let mut pos = header_len + 4;
    let mut metadata = None;
    let mut tags = Vec::new();
    let mut first_ts: Option<u32> = None;
    while pos + 11 <= data.len() {
        let kind = data[pos] & 0x1f;
        let size = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let ts = u32::from_be_bytes([data[pos + 7], data[pos + 4], data[pos + 5], data[pos + 6]]);
        let body_start = pos + 11;
        if body_start + size > data.len() {
            break; // truncated last tag
        }
        let payload = data.slice(body_start..body_start + size);
        pos = body_start + size + 4;
        match kind {
            18 if metadata.is_none() => metadata = Some(payload),
            8 | 9 if !payload.is_empty() => {
                let base = *first_ts.get_or_insert(ts);
                let keyframe = kind == 9 && payload[0] >> 4 == 1 && payload.get(1) == Some(&1);
                let csid = if kind == 8 { CSID_AUDIO } else { CSID_VIDEO };
                tags.push(Tag {
                    kind,
                    timestamp_ms: ts.saturating_sub(base),
                    chunked: chunk_payload(&payload, csid),
                    payload,
                    keyframe,
                });
            }
            _ => {}
        }
    }
    let video_ts: Vec<u32> = tags
        .iter()
        .filter(|t| t.kind == 9)
        .map(|t| t.timestamp_ms)
        .collect();
    if video_ts.len() < 2 {
        bail!("FLV has fewer than two video tags");
    }
    let mut deltas: Vec<u32> = video_ts
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .collect();
    deltas.sort_unstable();
    let frame = deltas[deltas.len() / 2].max(1);
    let last_any = tags.iter().map(|t| t.timestamp_ms).max().unwrap_or(0);
    let loop_duration_ms = (video_ts[video_ts.len() - 1] + frame).max(last_any + 1);
    let media_bytes_per_loop = tags.iter().map(|t| t.payload.len() as u64).sum();
    Ok(Media {
        metadata,
        tags,
        loop_duration_ms,
        media_bytes_per_loop,
    })
}

/// Generates the benchmark source once (3 Mbit/s H.264 with a fixed 2 s GOP + 128 kbit/s AAC).
pub fn ensure_source(root: &Path) -> Result<std::path::PathBuf> {
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("source.flv");
    if out.exists() {
        return Ok(out);
    }
    let tmp = dir.join("source.flv.tmp");
    crate::run(
        std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            // Noise keeps testsrc2 from undershooting the 3 Mbit/s target.
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t",
            ])
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                "30",
            ])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-b:v", "3M", "-maxrate", "3M",
            ])
            .args([
                "-bufsize",
                "6M",
                "-g",
                "60",
                "-keyint_min",
                "60",
                "-sc_threshold",
                "0",
            ])
            .args([
                "-bf", "2", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-ac", "2",
            ])
            .args(["-f", "flv"])
            .arg(&tmp),
    )?;
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}
