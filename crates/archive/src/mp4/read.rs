//! Reading the boxes the progressive MP4 is built from (ISO/IEC 14496-12 §4.2 box header,
//! §8.2.2 `mvhd`, §8.3.2 `tkhd`, §8.4.2 `mdhd`, §8.5.2 `stsd`, §8.8.3 `trex`, §8.8.7 `tfhd`,
//! §8.8.8 `trun`, §8.8.12 `tfdt`). Every length is checked against the bytes present; nothing
//! is allocated from a count read off the disk before that count is bounded by the box size.

use crate::error::{ArchiveError, Result};

pub(super) fn bad(why: impl Into<String>) -> ArchiveError {
    ArchiveError::BadMp4 { why: why.into() }
}

/// A box header (§4.2): its type, the bytes of the header, the bytes of the whole box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoxHeader {
    pub fourcc: [u8; 4],
    pub header_len: u64,
    pub box_len: u64,
}

/// Parses the box header at the start of `b` (at least 8 bytes; 16 for `largesize`). `None`
/// when `b` is too short or the size is impossible. A size of 0 (to the end of the file) is
/// returned as `box_len` 0: the caller knows where its file ends.
pub fn box_header(b: &[u8]) -> Option<BoxHeader> {
    let size = u32::from_be_bytes(b.get(0..4)?.try_into().ok()?);
    let fourcc: [u8; 4] = b.get(4..8)?.try_into().ok()?;
    match size {
        1 => {
            let large = u64::from_be_bytes(b.get(8..16)?.try_into().ok()?);
            (large >= 16).then_some(BoxHeader {
                fourcc,
                header_len: 16,
                box_len: large,
            })
        }
        0 => Some(BoxHeader {
            fourcc,
            header_len: 8,
            box_len: 0,
        }),
        n if n >= 8 => Some(BoxHeader {
            fourcc,
            header_len: 8,
            box_len: u64::from(n),
        }),
        _ => None,
    }
}

/// A child box: (type, whole box bytes, body bytes).
pub(super) type Child<'a> = ([u8; 4], &'a [u8], &'a [u8]);

/// The child boxes of a container body.
pub(super) fn children(body: &[u8]) -> Result<Vec<Child<'_>>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < body.len() {
        let h = box_header(&body[at..]).ok_or_else(|| bad("truncated box header"))?;
        let len = if h.box_len == 0 {
            (body.len() - at) as u64
        } else {
            h.box_len
        };
        let end = at
            .checked_add(usize::try_from(len).map_err(|_| bad("box too large"))?)
            .filter(|e| *e <= body.len())
            .ok_or_else(|| bad(format!("box {} overruns its parent", fourcc_str(&h.fourcc))))?;
        out.push((
            h.fourcc,
            &body[at..end],
            &body[at + h.header_len as usize..end],
        ));
        at = end;
    }
    Ok(out)
}

pub(super) fn child<'a>(body: &'a [u8], fourcc: &[u8; 4]) -> Result<Option<(&'a [u8], &'a [u8])>> {
    Ok(children(body)?
        .into_iter()
        .find(|(t, _, _)| t == fourcc)
        .map(|(_, whole, b)| (whole, b)))
}

pub(super) fn need<'a>(body: &'a [u8], fourcc: &[u8; 4]) -> Result<(&'a [u8], &'a [u8])> {
    child(body, fourcc)?.ok_or_else(|| bad(format!("no {} box", fourcc_str(fourcc))))
}

pub(super) fn fourcc_str(f: &[u8; 4]) -> String {
    String::from_utf8_lossy(f).into_owned()
}

/// A big-endian cursor over a box body.
pub(super) struct Cur<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cur<'a> {
    pub(super) fn new(b: &'a [u8]) -> Self {
        Cur { b, at: 0 }
    }
    pub(super) fn left(&self) -> usize {
        self.b.len() - self.at
    }
    pub(super) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = self
            .b
            .get(self.at..self.at.saturating_add(n))
            .ok_or_else(|| bad("box body too short"))?;
        self.at += n;
        Ok(s)
    }
    pub(super) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(
            self.bytes(4)?.try_into().unwrap_or_default(),
        ))
    }
    pub(super) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(
            self.bytes(8)?.try_into().unwrap_or_default(),
        ))
    }
    /// FullBox version and flags.
    pub(super) fn full(&mut self) -> Result<(u8, u32)> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00FF_FFFF))
    }
    pub(super) fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.at..];
        self.at = self.b.len();
        s
    }
}

/// A track of an initialization segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct InitTrack {
    pub track_id: u32,
    pub timescale: u32,
    /// `tkhd` fields after the duration (layer, volume, matrix, width, height).
    pub tkhd_tail: Vec<u8>,
    pub tkhd_flags: u32,
    /// `mdhd` language and pre_defined.
    pub mdhd_tail: Vec<u8>,
    /// Whole `hdlr`, media header (`vmhd`/`smhd`/...) and `dinf` boxes, copied.
    pub hdlr: Vec<u8>,
    pub media_header: Vec<u8>,
    pub dinf: Vec<u8>,
    /// The sample entries of `stsd`, each a whole box.
    pub entries: Vec<Vec<u8>>,
    /// `trex` defaults: sample description index, duration, size, flags.
    pub trex: [u32; 4],
}

/// What the progressive file keeps of an initialization segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Init {
    pub movie_timescale: u32,
    /// `mvhd` fields after the duration (rate, volume, matrix, next_track_ID).
    pub mvhd_tail: Vec<u8>,
    pub tracks: Vec<InitTrack>,
}

/// Skips creation/modification time, reads timescale (mvhd/mdhd) or track id (tkhd) and
/// duration, by version.
fn times(c: &mut Cur<'_>, version: u8, tkhd: bool) -> Result<u32> {
    let wide = version == 1;
    c.bytes(if wide { 16 } else { 8 })?;
    let v = c.u32()?;
    if tkhd {
        c.u32()?; // reserved
    }
    c.bytes(if wide { 8 } else { 4 })?;
    Ok(v)
}

pub(super) fn parse_init(init: &[u8]) -> Result<Init> {
    let (_, moov) = need(init, b"moov")?;
    let (_, mvhd) = need(moov, b"mvhd")?;
    let mut c = Cur::new(mvhd);
    let (v, _) = c.full()?;
    let movie_timescale = times(&mut c, v, false)?;
    let mvhd_tail = c.rest().to_vec();
    let mut trex = Vec::new();
    if let Some((_, mvex)) = child(moov, b"mvex")? {
        for (t, _, body) in children(mvex)? {
            if &t == b"trex" {
                let mut c = Cur::new(body);
                c.full()?;
                let id = c.u32()?;
                trex.push((id, [c.u32()?, c.u32()?, c.u32()?, c.u32()?]));
            }
        }
    }
    let mut tracks = Vec::new();
    for (t, _, trak) in children(moov)? {
        if &t != b"trak" {
            continue;
        }
        let (_, tkhd) = need(trak, b"tkhd")?;
        let mut c = Cur::new(tkhd);
        let (v, tkhd_flags) = c.full()?;
        let track_id = times(&mut c, v, true)?;
        let tkhd_tail = c.rest().to_vec();
        let (_, mdia) = need(trak, b"mdia")?;
        let (_, mdhd) = need(mdia, b"mdhd")?;
        let mut c = Cur::new(mdhd);
        let (v, _) = c.full()?;
        let timescale = times(&mut c, v, false)?;
        if timescale == 0 {
            return Err(bad(format!("track {track_id} has timescale 0")));
        }
        let mdhd_tail = c.rest().to_vec();
        let (hdlr, _) = need(mdia, b"hdlr")?;
        let (_, minf) = need(mdia, b"minf")?;
        let media_header = children(minf)?
            .into_iter()
            .find(|(t, _, _)| matches!(t, b"vmhd" | b"smhd" | b"sthd" | b"nmhd"))
            .map(|(_, whole, _)| whole.to_vec())
            .ok_or_else(|| bad(format!("track {track_id} has no media header")))?;
        let (dinf, _) = need(minf, b"dinf")?;
        let (_, stbl) = need(minf, b"stbl")?;
        let (_, stsd) = need(stbl, b"stsd")?;
        let mut c = Cur::new(stsd);
        c.full()?;
        c.u32()?; // entry_count: the boxes themselves are counted
        let entries: Vec<Vec<u8>> = children(c.rest())?
            .into_iter()
            .map(|(_, whole, _)| whole.to_vec())
            .collect();
        if entries.is_empty() {
            return Err(bad(format!("track {track_id} has no sample entry")));
        }
        let trex = trex
            .iter()
            .find(|(id, _)| *id == track_id)
            .map_or([1, 0, 0, 0], |(_, d)| *d);
        tracks.push(InitTrack {
            track_id,
            timescale,
            tkhd_tail,
            tkhd_flags,
            mdhd_tail,
            hdlr: hdlr.to_vec(),
            media_header,
            dinf: dinf.to_vec(),
            entries,
            trex,
        });
    }
    if tracks.is_empty() {
        return Err(bad("init segment has no track"));
    }
    Ok(Init {
        movie_timescale: movie_timescale.max(1),
        mvhd_tail,
        tracks,
    })
}

/// One sample of a track run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RunSample {
    pub duration: u32,
    pub size: u32,
    pub sync: bool,
    pub composition_offset: i64,
}

/// One `trun` of a `traf`: where its data lies in the file and its samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Run {
    pub track_id: u32,
    /// `tfdt` of the `traf` (its first run's decode time), if present.
    pub base_decode_time: Option<u64>,
    pub sample_description_index: u32,
    pub data_file_offset: u64,
    pub samples: Vec<RunSample>,
}

const TFHD_BASE_DATA_OFFSET: u32 = 0x00_0001;
const TFHD_SDI: u32 = 0x00_0002;
const TFHD_DURATION: u32 = 0x00_0008;
const TFHD_SIZE: u32 = 0x00_0010;
const TFHD_FLAGS: u32 = 0x00_0020;
const TFHD_BASE_IS_MOOF: u32 = 0x02_0000;
const TRUN_DATA_OFFSET: u32 = 0x00_0001;
const TRUN_FIRST_FLAGS: u32 = 0x00_0004;
const TRUN_DURATION: u32 = 0x00_0100;
const TRUN_SIZE: u32 = 0x00_0200;
const TRUN_FLAGS: u32 = 0x00_0400;
const TRUN_CTO: u32 = 0x00_0800;
/// sample_is_non_sync_sample (§8.8.3.1).
const NON_SYNC: u32 = 0x0001_0000;

/// The runs of a `moof` that starts at `moof_file_offset` in its file; `trex` gives each
/// track's defaults (track id, then sdi, duration, size, flags). `max_samples` bounds the
/// samples of one run that carries no per-sample field (the caller passes what its `mdat`
/// could hold).
pub(super) fn parse_moof(
    moof: &[u8],
    moof_file_offset: u64,
    trex: &dyn Fn(u32) -> Option<[u32; 4]>,
    max_samples: u64,
) -> Result<Vec<Run>> {
    let h = box_header(moof).ok_or_else(|| bad("truncated moof"))?;
    if &h.fourcc != b"moof" {
        return Err(bad("expected a moof box"));
    }
    let body = &moof[h.header_len as usize..];
    let mut runs = Vec::new();
    // Without base-data-offset or default-base-is-moof, a traf's data follows the previous
    // traf's data (the first one: the moof's first byte), §8.8.7.1.
    let mut previous_end = moof_file_offset;
    for (t, _, traf) in children(body)? {
        if &t != b"traf" {
            continue;
        }
        let (_, tfhd) = need(traf, b"tfhd")?;
        let mut c = Cur::new(tfhd);
        let (_, flags) = c.full()?;
        let track_id = c.u32()?;
        let d =
            trex(track_id).ok_or_else(|| bad(format!("fragment of unknown track {track_id}")))?;
        let base = if flags & TFHD_BASE_DATA_OFFSET != 0 {
            c.u64()?
        } else if flags & TFHD_BASE_IS_MOOF != 0 {
            moof_file_offset
        } else {
            previous_end
        };
        let sdi = if flags & TFHD_SDI != 0 {
            c.u32()?
        } else {
            d[0]
        };
        let def_duration = if flags & TFHD_DURATION != 0 {
            c.u32()?
        } else {
            d[1]
        };
        let def_size = if flags & TFHD_SIZE != 0 {
            c.u32()?
        } else {
            d[2]
        };
        let def_flags = if flags & TFHD_FLAGS != 0 {
            c.u32()?
        } else {
            d[3]
        };
        let tfdt = match child(traf, b"tfdt")? {
            Some((_, b)) => {
                let mut c = Cur::new(b);
                let (v, _) = c.full()?;
                Some(if v == 1 {
                    c.u64()?
                } else {
                    u64::from(c.u32()?)
                })
            }
            None => None,
        };
        let mut next = base;
        let mut first_run = true;
        for (t, _, trun) in children(traf)? {
            if &t != b"trun" {
                continue;
            }
            let mut c = Cur::new(trun);
            let (v, f) = c.full()?;
            let count = u64::from(c.u32()?);
            let start = if f & TRUN_DATA_OFFSET != 0 {
                let off = i64::from(c.u32()? as i32);
                base.checked_add_signed(off)
                    .ok_or_else(|| bad("data_offset before the file start"))?
            } else {
                next
            };
            let first_flags = if f & TRUN_FIRST_FLAGS != 0 {
                Some(c.u32()?)
            } else {
                None
            };
            let per_sample = 4 * [TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTO]
                .iter()
                .filter(|b| f & **b != 0)
                .count() as u64;
            let bound = (c.left() as u64)
                .checked_div(per_sample)
                .unwrap_or(max_samples);
            if count > bound {
                return Err(bad(format!(
                    "trun of track {track_id} claims {count} samples"
                )));
            }
            let mut samples = Vec::with_capacity(count as usize);
            let mut bytes = 0u64;
            for i in 0..count {
                let duration = if f & TRUN_DURATION != 0 {
                    c.u32()?
                } else {
                    def_duration
                };
                let size = if f & TRUN_SIZE != 0 {
                    c.u32()?
                } else {
                    def_size
                };
                let sflags = if f & TRUN_FLAGS != 0 {
                    c.u32()?
                } else if i == 0 {
                    first_flags.unwrap_or(def_flags)
                } else {
                    def_flags
                };
                let composition_offset = if f & TRUN_CTO != 0 {
                    let raw = c.u32()?;
                    if v == 0 {
                        i64::from(raw)
                    } else {
                        i64::from(raw as i32)
                    }
                } else {
                    0
                };
                bytes += u64::from(size);
                samples.push(RunSample {
                    duration,
                    size,
                    sync: sflags & NON_SYNC == 0,
                    composition_offset,
                });
            }
            next = start + bytes;
            runs.push(Run {
                track_id,
                base_decode_time: if first_run { tfdt } else { None },
                sample_description_index: sdi,
                data_file_offset: start,
                samples,
            });
            first_run = false;
        }
        previous_end = next;
    }
    Ok(runs)
}
