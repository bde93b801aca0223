//! Writing the progressive file's `ftyp`, `moov` and `mdat` header (ISO/IEC 14496-12 §4.3
//! `ftyp`, §8.2.2 `mvhd`, §8.3.2 `tkhd`, §8.6.5-6 `edts`/`elst`, §8.4.2 `mdhd`, §8.6.1.2
//! `stts`, §8.6.1.3 `ctts`, §8.6.2 `stss`, §8.7.3.2 `stsz`, §8.7.4 `stsc`, §8.7.5 `stco`/`co64`,
//! §8.1.1 `mdat`). Times and durations are written as version 1 (64-bit) boxes.

use super::{Builder, Track};

/// Box writer: open, write, close back-patches the 32-bit size.
struct W(Vec<u8>);

impl W {
    fn open(&mut self, fourcc: &[u8; 4]) -> usize {
        let at = self.0.len();
        self.0.extend_from_slice(&[0, 0, 0, 0]);
        self.0.extend_from_slice(fourcc);
        at
    }
    fn open_full(&mut self, fourcc: &[u8; 4], version: u8, flags: u32) -> usize {
        let at = self.open(fourcc);
        self.u32((u32::from(version) << 24) | (flags & 0x00FF_FFFF));
        at
    }
    fn close(&mut self, at: usize) {
        let size = u32::try_from(self.0.len() - at).unwrap_or(u32::MAX);
        self.0[at..at + 4].copy_from_slice(&size.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn raw(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
}

pub(super) fn ftyp() -> Vec<u8> {
    let mut w = W(Vec::with_capacity(32));
    let b = w.open(b"ftyp");
    w.raw(b"isom");
    w.u32(0x200);
    for brand in [b"isom", b"iso6", b"mp41"] {
        w.raw(brand);
    }
    w.close(b);
    w.0
}

pub(super) fn mdat_header(payload_len: u64, large: bool) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(16));
    if large {
        w.u32(1);
        w.raw(b"mdat");
        w.u64(payload_len + 16);
    } else {
        w.u32((payload_len + 8) as u32);
        w.raw(b"mdat");
    }
    w.0
}

/// `t` in `from` units converted to `to` units (rounded down, saturating).
fn rescale(t: u64, from: u32, to: u32) -> u64 {
    let v = u128::from(t) * u128::from(to) / u128::from(from.max(1));
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// Per track with samples: (delay before its first sample, its whole duration), in movie
/// time; and the movie's duration.
pub(super) fn durations(b: &Builder) -> (Vec<(u64, u64)>, u64) {
    let mts = b.movie_timescale;
    let start_of = |t: &Track| rescale(t.first_decode_time.unwrap_or(0), t.init.timescale, mts);
    let with_samples = || b.tracks.iter().filter(|t| !t.sizes.is_empty());
    let earliest = with_samples().map(start_of).min().unwrap_or(0);
    let per: Vec<(u64, u64)> = with_samples()
        .map(|t| {
            let delay = start_of(t) - earliest;
            (
                delay,
                delay + rescale(t.media_duration(), t.init.timescale, mts),
            )
        })
        .collect();
    let movie = per.iter().map(|(_, d)| *d).max().unwrap_or(0);
    (per, movie)
}

/// The whole `moov`; chunk offsets are `base` + their offset in the mdat payload.
pub(super) fn moov(b: &Builder, base: u64, wide_offsets: bool) -> Vec<u8> {
    let samples: usize = b.tracks.iter().map(|t| t.sizes.len()).sum();
    let mut w = W(Vec::with_capacity(1024 + samples * 12));
    let (per_track, movie_duration) = durations(b);
    let moov = w.open(b"moov");
    let mvhd = w.open_full(b"mvhd", 1, 0);
    w.u64(0); // creation_time
    w.u64(0); // modification_time
    w.u32(b.movie_timescale);
    w.u64(movie_duration);
    w.raw(&b.mvhd_tail);
    w.close(mvhd);
    let tracks = b.tracks.iter().filter(|t| !t.sizes.is_empty());
    for (t, (delay, track_duration)) in tracks.zip(per_track) {
        let trak = w.open(b"trak");
        let tkhd = w.open_full(b"tkhd", 1, t.init.tkhd_flags);
        w.u64(0);
        w.u64(0);
        w.u32(t.init.track_id);
        w.u32(0); // reserved
        w.u64(track_duration);
        w.raw(&t.init.tkhd_tail);
        w.close(tkhd);
        if delay > 0 {
            // An empty edit, then the whole media from its first sample (§8.6.6).
            let edts = w.open(b"edts");
            let elst = w.open_full(b"elst", 1, 0);
            w.u32(2);
            w.u64(delay);
            w.u64(u64::MAX); // media_time -1: empty
            w.u32(0x0001_0000);
            w.u64(track_duration - delay);
            w.u64(0);
            w.u32(0x0001_0000);
            w.close(elst);
            w.close(edts);
        }
        let mdia = w.open(b"mdia");
        let mdhd = w.open_full(b"mdhd", 1, 0);
        w.u64(0);
        w.u64(0);
        w.u32(t.init.timescale);
        w.u64(t.media_duration());
        w.raw(&t.init.mdhd_tail);
        w.close(mdhd);
        w.raw(&t.init.hdlr);
        let minf = w.open(b"minf");
        w.raw(&t.init.media_header);
        w.raw(&t.init.dinf);
        let stbl = w.open(b"stbl");
        write_tables(&mut w, t, base, wide_offsets);
        w.close(stbl);
        w.close(minf);
        w.close(mdia);
        w.close(trak);
    }
    w.close(moov);
    w.0
}

/// Run-length encodes `values` into (count, value) pairs.
fn runs<T: Copy + PartialEq>(values: &[T]) -> Vec<(u32, T)> {
    let mut out: Vec<(u32, T)> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some((n, last)) if *last == *v => *n += 1,
            _ => out.push((1, *v)),
        }
    }
    out
}

fn write_tables(w: &mut W, t: &Track, base: u64, wide_offsets: bool) {
    let stsd = w.open_full(b"stsd", 0, 0);
    w.u32(t.entries.len() as u32);
    for e in &t.entries {
        w.raw(e);
    }
    w.close(stsd);

    let stts_runs = runs(&t.durations);
    let stts = w.open_full(b"stts", 0, 0);
    w.u32(stts_runs.len() as u32);
    for (n, d) in stts_runs {
        w.u32(n);
        w.u32(d);
    }
    w.close(stts);

    if t.composition_offsets.iter().any(|o| *o != 0) {
        let signed = t.composition_offsets.iter().any(|o| *o < 0);
        let ctts_runs = runs(&t.composition_offsets);
        let ctts = w.open_full(b"ctts", u8::from(signed), 0);
        w.u32(ctts_runs.len() as u32);
        for (n, o) in ctts_runs {
            w.u32(n);
            w.u32(o as u32);
        }
        w.close(ctts);
    }

    if t.sync.len() < t.sizes.len() {
        let stss = w.open_full(b"stss", 0, 0);
        w.u32(t.sync.len() as u32);
        for n in &t.sync {
            w.u32(*n);
        }
        w.close(stss);
    }

    let stsc = w.open_full(b"stsc", 0, 0);
    let mut entries: Vec<(u32, u32, u32)> = Vec::new();
    for (i, c) in t.chunks.iter().enumerate() {
        if entries
            .last()
            .is_none_or(|(_, n, d)| *n != c.samples || *d != c.description)
        {
            entries.push((i as u32 + 1, c.samples, c.description));
        }
    }
    w.u32(entries.len() as u32);
    for (first, n, d) in entries {
        w.u32(first);
        w.u32(n);
        w.u32(d);
    }
    w.close(stsc);

    let stsz = w.open_full(b"stsz", 0, 0);
    let uniform = t.sizes.iter().all(|s| *s == t.sizes[0]);
    if uniform {
        w.u32(t.sizes[0]);
        w.u32(t.sizes.len() as u32);
    } else {
        w.u32(0);
        w.u32(t.sizes.len() as u32);
        for s in &t.sizes {
            w.u32(*s);
        }
    }
    w.close(stsz);

    if wide_offsets {
        let co64 = w.open_full(b"co64", 0, 0);
        w.u32(t.chunks.len() as u32);
        for c in &t.chunks {
            w.u64(base + c.payload_offset);
        }
        w.close(co64);
    } else {
        let stco = w.open_full(b"stco", 0, 0);
        w.u32(t.chunks.len() as u32);
        for c in &t.chunks {
            w.u32((base + c.payload_offset) as u32);
        }
        w.close(stco);
    }
}
