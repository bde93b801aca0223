//! A recording as one progressive ("fast start") MP4, remuxed from its stored CMAF fragments
//! without transcoding (ISO/IEC 14496-12: §8.1.1 `mdat`, §8.6.1.2 `stts`, §8.6.1.3 `ctts`,
//! §8.6.2 `stss`, §8.7.3 `stsz`, §8.7.4 `stsc`, §8.7.5 `stco`/`co64`, §8.6.6 `elst`, read from
//! the §8.8 movie fragments).
//!
//! ```text
//! ftyp | moov (mvhd, trak: tkhd [edts] mdia/minf/stbl with full sample tables) | mdat header
//!      | the samples of every trun, in fragment order, copied from the segment files
//! ```
//! Sans-IO: the caller walks its segment files' top-level boxes ([`box_header`]), hands each
//! `moof` (its bytes and file offset) and the payload range of the `mdat` after it to
//! [`Builder::push_fragment`], and gets a [`Layout`]: the head bytes (ftyp + moov + mdat
//! header, sizes and chunk offsets final) and the file pieces that make up the `mdat`
//! payload. Total length is known before a byte of media is read, and any byte range maps to
//! head bytes and file ranges ([`Layout::slices`]), so HTTP can answer `Range` requests and
//! stream the body without holding the recording in memory. Each `trun` is one chunk.
//!
//! Decode times restart at 0 per track; a track that starts later than the earliest one gets
//! an empty edit (`elst`) for the difference, so audio and video stay in sync. Gaps inside a
//! track (a reconnect within the grace period) are closed up: samples play back to back.
//! A later init segment with the same tracks adds its sample entries to `stsd` (a resolution
//! change); one with other tracks or timescales ends the download there
//! ([`Builder::push_init`] refuses it).

mod read;
mod write;

#[cfg(test)]
mod tests;

use std::ops::Range;

use bytes::Bytes;

use crate::error::Result;
use read::{bad, parse_init, parse_moof, Init, InitTrack};
pub use read::{box_header, BoxHeader};

/// A byte range of one of the caller's source files (its number, as passed to
/// [`Builder::push_fragment`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub source: u32,
    pub offset: u64,
    pub len: u64,
}

/// Part of an output byte range: head bytes, or bytes of a source file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slice {
    Head(Range<usize>),
    File(Piece),
}

/// The finished file: `head` then the pieces.
#[derive(Clone, Debug)]
pub struct Layout {
    pub head: Bytes,
    pub pieces: Vec<Piece>,
    /// Where each piece starts in the output.
    starts: Vec<u64>,
    pub total_len: u64,
    /// The movie's duration in seconds (the longest track, edits included).
    pub duration_s: f64,
    /// Samples per track, in track order.
    pub samples: Vec<u64>,
}

impl Layout {
    /// What bytes `first..=last` of the output are made of, in order.
    pub fn slices(&self, first: u64, last: u64) -> Vec<Slice> {
        let mut out = Vec::new();
        if first > last || last >= self.total_len {
            return out;
        }
        let head_len = self.head.len() as u64;
        if first < head_len {
            out.push(Slice::Head(
                first as usize..(last.min(head_len - 1) + 1) as usize,
            ));
        }
        let from = first.max(head_len);
        if from > last {
            return out;
        }
        let mut i = self
            .starts
            .partition_point(|s| *s <= from)
            .saturating_sub(1);
        while i < self.pieces.len() && self.starts[i] <= last {
            let p = self.pieces[i];
            let s = self.starts[i];
            let a = from.max(s) - s;
            let b = (last + 1).min(s + p.len) - s;
            if b > a {
                out.push(Slice::File(Piece {
                    source: p.source,
                    offset: p.offset + a,
                    len: b - a,
                }));
            }
            i += 1;
        }
        out
    }
}

/// A chunk of one track: `samples` samples at `payload_offset` of the mdat payload.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    payload_offset: u64,
    samples: u32,
    description: u32,
}

/// One track being collected.
#[derive(Debug)]
struct Track {
    init: InitTrack,
    /// Every sample entry seen (the first init's, then new ones from later inits).
    entries: Vec<Vec<u8>>,
    /// For the current init: its sdi (1-based, as in the fragments) -> index in `entries`.
    entry_map: Vec<u32>,
    first_decode_time: Option<u64>,
    durations: Vec<u32>,
    sizes: Vec<u32>,
    composition_offsets: Vec<i32>,
    /// 1-based numbers of sync samples.
    sync: Vec<u32>,
    chunks: Vec<Chunk>,
}

impl Track {
    fn media_duration(&self) -> u64 {
        self.durations.iter().map(|d| u64::from(*d)).sum()
    }
}

/// Collects fragments; see the module doc.
#[derive(Debug)]
pub struct Builder {
    movie_timescale: u32,
    mvhd_tail: Vec<u8>,
    tracks: Vec<Track>,
    pieces: Vec<Piece>,
    payload_len: u64,
    /// Upper bound on samples in total (bounds memory: about 16 bytes each).
    max_samples: u64,
}

impl Builder {
    /// Starts from the first init segment (`ftyp` + `moov` with `mvex`). `max_samples` bounds
    /// the samples of the whole file (each costs about 16 bytes of memory while building).
    pub fn new(init: &[u8], max_samples: u64) -> Result<Builder> {
        let Init {
            movie_timescale,
            mvhd_tail,
            tracks,
        } = parse_init(init)?;
        let tracks = tracks
            .into_iter()
            .map(|t| Track {
                entry_map: (0..t.entries.len() as u32).collect(),
                entries: t.entries.clone(),
                init: t,
                first_decode_time: None,
                durations: Vec::new(),
                sizes: Vec::new(),
                composition_offsets: Vec::new(),
                sync: Vec::new(),
                chunks: Vec::new(),
            })
            .collect();
        Ok(Builder {
            movie_timescale,
            mvhd_tail,
            tracks,
            pieces: Vec::new(),
            payload_len: 0,
            max_samples,
        })
    }

    /// A later init segment: the fragments after it use its sample entries. Refused (nothing
    /// changes) when its tracks are not the same ids with the same timescales.
    pub fn push_init(&mut self, init: &[u8]) -> Result<()> {
        let next = parse_init(init)?;
        let same = next.tracks.len() == self.tracks.len()
            && next.tracks.iter().zip(&self.tracks).all(|(n, t)| {
                n.track_id == t.init.track_id
                    && n.timescale == t.init.timescale
                    && n.hdlr == t.init.hdlr
            });
        if !same {
            return Err(bad("a later init segment has other tracks"));
        }
        for (n, t) in next.tracks.into_iter().zip(&mut self.tracks) {
            t.entry_map = n
                .entries
                .iter()
                .map(|e| match t.entries.iter().position(|x| x == e) {
                    Some(i) => i as u32,
                    None => {
                        t.entries.push(e.clone());
                        (t.entries.len() - 1) as u32
                    }
                })
                .collect();
            t.init.trex = n.trex;
        }
        Ok(())
    }

    /// One `moof` (whole box, at `moof_file_offset` of source file `source`) and the payload
    /// range (file offsets) of the `mdat` that follows it. Every run must lie inside that
    /// payload.
    pub fn push_fragment(
        &mut self,
        source: u32,
        moof_file_offset: u64,
        moof: &[u8],
        mdat_payload: Range<u64>,
    ) -> Result<()> {
        let trex = |id: u32| {
            (self.tracks.iter())
                .find(|t| t.init.track_id == id)
                .map(|t| t.init.trex)
        };
        let runs = parse_moof(
            moof,
            moof_file_offset,
            &trex,
            mdat_payload.end.saturating_sub(mdat_payload.start) + 1,
        )?;
        let total: u64 = self
            .tracks
            .iter()
            .map(|t| t.sizes.len() as u64)
            .sum::<u64>()
            + runs.iter().map(|r| r.samples.len() as u64).sum::<u64>();
        if total > self.max_samples {
            return Err(bad(format!(
                "more than {} samples in the recording",
                self.max_samples
            )));
        }
        for r in &runs {
            let len: u64 = r.samples.iter().map(|s| u64::from(s.size)).sum();
            if r.data_file_offset < mdat_payload.start
                || r.data_file_offset + len > mdat_payload.end
            {
                return Err(bad(format!(
                    "a run of track {} lies outside its mdat",
                    r.track_id
                )));
            }
        }
        for r in runs {
            if r.samples.is_empty() {
                continue;
            }
            let Some(t) = self
                .tracks
                .iter_mut()
                .find(|t| t.init.track_id == r.track_id)
            else {
                continue;
            };
            let description = t
                .entry_map
                .get(r.sample_description_index.saturating_sub(1) as usize)
                .copied()
                .ok_or_else(|| bad("sample_description_index out of range"))?;
            if t.first_decode_time.is_none() {
                t.first_decode_time = Some(r.base_decode_time.unwrap_or(0));
            }
            let len: u64 = r.samples.iter().map(|s| u64::from(s.size)).sum();
            t.chunks.push(Chunk {
                payload_offset: self.payload_len,
                samples: r.samples.len() as u32,
                description: description + 1,
            });
            for s in &r.samples {
                t.durations.push(s.duration);
                t.sizes.push(s.size);
                t.composition_offsets
                    .push(i32::try_from(s.composition_offset).unwrap_or(i32::MAX));
                if s.sync {
                    t.sync.push(t.sizes.len() as u32);
                }
            }
            match self.pieces.last_mut() {
                Some(p) if p.source == source && p.offset + p.len == r.data_file_offset => {
                    p.len += len
                }
                _ => self.pieces.push(Piece {
                    source,
                    offset: r.data_file_offset,
                    len,
                }),
            }
            self.payload_len += len;
        }
        Ok(())
    }

    /// The finished layout: chunk offsets placed after the head, `co64` when the file passes
    /// 4 GiB, an `mdat` with `largesize` when its payload does.
    pub fn finish(self) -> Result<Layout> {
        if self.tracks.iter().all(|t| t.sizes.is_empty()) {
            return Err(bad("no samples"));
        }
        let ftyp = write::ftyp();
        let large_mdat = self.payload_len + 8 > u64::from(u32::MAX);
        let mdat_header = write::mdat_header(self.payload_len, large_mdat);
        // The moov's length depends only on the offset width, not on the values.
        let probe = write::moov(&self, 0, false).len() as u64;
        let wide = ftyp.len() as u64 + probe + mdat_header.len() as u64 + self.payload_len
            > u64::from(u32::MAX);
        let moov_len = write::moov(&self, 0, wide).len() as u64;
        let base = ftyp.len() as u64 + moov_len + mdat_header.len() as u64;
        let moov = write::moov(&self, base, wide);
        let mut head = Vec::with_capacity(base as usize);
        head.extend_from_slice(&ftyp);
        head.extend_from_slice(&moov);
        head.extend_from_slice(&mdat_header);
        let mut starts = Vec::with_capacity(self.pieces.len());
        let mut at = base;
        for p in &self.pieces {
            starts.push(at);
            at += p.len;
        }
        let (_, movie_duration) = write::durations(&self);
        Ok(Layout {
            head: Bytes::from(head),
            starts,
            total_len: at,
            duration_s: movie_duration as f64 / f64::from(self.movie_timescale),
            samples: self.tracks.iter().map(|t| t.sizes.len() as u64).collect(),
            pieces: self.pieces,
        })
    }
}
