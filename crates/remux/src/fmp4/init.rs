//! The initialization segment (ISO/IEC 14496-12 §8.2–8.8, CMAF header ISO/IEC 23000-19 §7.3.2.1):
//! `ftyp` + `moov` with one `trak` per track, empty sample tables and `mvex`/`trex`.
//!
//! ```text
//! ftyp  major iso6, compatible iso6 mp41 [cmfc if one track] [av01 if AV1]
//! moov
//! ├─ mvhd  timescale 1000, duration 0, next_track_ID
//! ├─ trak  (per track)
//! │  ├─ tkhd  flags 3 (enabled, in movie), duration 0, width/height 16.16 for video
//! │  └─ mdia
//! │     ├─ mdhd  timescale, duration 0, language
//! │     ├─ hdlr  vide / soun
//! │     └─ minf
//! │        ├─ vmhd / smhd
//! │        ├─ dinf/dref  one `url ` entry, flag 1 (media in this file)
//! │        └─ stbl  stsd (the sample entry), stts, stsc, stsz, stco with zero entries
//! └─ mvex  trex per track (defaults all zero: every fragment states its own)
//! ```
//! Sample entries (§12.1.3 VisualSampleEntry, §12.2.3 AudioSampleEntry) wrap the configuration
//! box: `avc1`/`avcC` (ISO/IEC 14496-15 §5.4), `hvc1`/`hvcC` (§8.4), `av01`/`av1C` (AV1-ISOBMFF
//! §2.2), `vp09`/`vpcC` (VP-ISOBMFF §2.1), `mp4a`/`esds` (ISO/IEC 14496-14 §5.6, descriptors of
//! ISO/IEC 14496-1 §7.2.6) and `Opus`/`dOps` (Opus-ISOBMFF §4.3).

use bytes::{BufMut, Bytes, BytesMut};

use super::boxes::{close, leaf, open, open_full, put_unity_matrix};
use super::{SampleEntry, TrackConfig};

/// MPEG-4 objectTypeIndication values (ISO/IEC 14496-1 Table 5, MP4RA).
const OTI_AAC: u8 = 0x40;
const OTI_MP3: u8 = 0x6B;

/// The `ftyp` + `moov` of an initialization segment for `tracks` (see the module doc). The
/// major brand is `iso6` (RFC 8216bis §3.1.2 asks for `iso6` or later: 64-bit `tfdt` and signed
/// `trun` offsets); `cmfc` is claimed only for a single-track header, since a CMAF track holds
/// exactly one media track (ISO/IEC 23000-19 §7.3.2.1); `av01` when there is an AV1 track
/// (AV1-ISOBMFF §2.1).
pub fn write_init(tracks: &[TrackConfig]) -> Bytes {
    let mut buf = BytesMut::with_capacity(
        1024 + tracks
            .iter()
            .map(|t| 512 + entry_payload_bytes(&t.entry))
            .sum::<usize>(),
    );
    let ftyp = open(&mut buf, b"ftyp");
    buf.put_slice(b"iso6");
    buf.put_u32(0);
    buf.put_slice(b"iso6");
    buf.put_slice(b"mp41");
    if tracks.len() == 1 {
        buf.put_slice(b"cmfc");
    }
    if tracks
        .iter()
        .any(|t| matches!(t.entry, SampleEntry::Av1 { .. }))
    {
        buf.put_slice(b"av01");
    }
    close(&mut buf, ftyp);

    let moov = open(&mut buf, b"moov");
    write_mvhd(&mut buf, tracks);
    for t in tracks {
        write_trak(&mut buf, t);
    }
    let mvex = open(&mut buf, b"mvex");
    for t in tracks {
        let trex = open_full(&mut buf, b"trex", 0, 0);
        buf.put_u32(t.track_id);
        buf.put_u32(1); // default_sample_description_index
        buf.put_u32(0); // default_sample_duration
        buf.put_u32(0); // default_sample_size
        buf.put_u32(0); // default_sample_flags
        close(&mut buf, trex);
    }
    close(&mut buf, mvex);
    close(&mut buf, moov);
    buf.freeze()
}

fn entry_payload_bytes(e: &SampleEntry) -> usize {
    match e {
        SampleEntry::Avc { avcc: b, .. }
        | SampleEntry::Hevc { hvcc: b, .. }
        | SampleEntry::Av1 { av1c: b, .. }
        | SampleEntry::Vp9 { vpcc: b, .. }
        | SampleEntry::Aac { asc: b, .. }
        | SampleEntry::Opus { dops: b, .. } => b.len(),
        SampleEntry::Mp3 { .. } => 0,
    }
}

fn write_mvhd(buf: &mut BytesMut, tracks: &[TrackConfig]) {
    let mvhd = open_full(buf, b"mvhd", 0, 0);
    buf.put_u32(0); // creation_time
    buf.put_u32(0); // modification_time
    buf.put_u32(1000); // timescale (only used for durations, all 0 here)
    buf.put_u32(0); // duration: unknown (fragmented)
    buf.put_u32(0x0001_0000); // rate 1.0
    buf.put_u16(0x0100); // volume 1.0
    buf.put_u16(0);
    buf.put_u64(0); // reserved
    put_unity_matrix(buf);
    buf.put_slice(&[0; 24]); // pre_defined
    let next = tracks.iter().map(|t| t.track_id).max().unwrap_or(0);
    buf.put_u32(next.saturating_add(1)); // next_track_ID
    close(buf, mvhd);
}

fn write_trak(buf: &mut BytesMut, t: &TrackConfig) {
    let video_size = t.entry.video_size();
    let trak = open(buf, b"trak");
    let tkhd = open_full(buf, b"tkhd", 0, 0x3); // track_enabled | track_in_movie
    buf.put_u32(0); // creation_time
    buf.put_u32(0); // modification_time
    buf.put_u32(t.track_id);
    buf.put_u32(0); // reserved
    buf.put_u32(0); // duration
    buf.put_u64(0); // reserved
    buf.put_u16(0); // layer
    buf.put_u16(0); // alternate_group
    buf.put_u16(if video_size.is_some() { 0 } else { 0x0100 }); // volume
    buf.put_u16(0);
    put_unity_matrix(buf);
    let (w, h) = video_size.unwrap_or((0, 0));
    buf.put_u32(u32::from(w) << 16); // width, 16.16
    buf.put_u32(u32::from(h) << 16); // height, 16.16
    close(buf, tkhd);

    let mdia = open(buf, b"mdia");
    let mdhd = open_full(buf, b"mdhd", 0, 0);
    buf.put_u32(0); // creation_time
    buf.put_u32(0); // modification_time
    buf.put_u32(t.timescale);
    buf.put_u32(0); // duration
    buf.put_u16(pack_language(t.language));
    buf.put_u16(0); // pre_defined
    close(buf, mdhd);
    let hdlr = open_full(buf, b"hdlr", 0, 0);
    buf.put_u32(0); // pre_defined
    let (handler, name): (&[u8; 4], &[u8]) = if video_size.is_some() {
        (b"vide", b"VideoHandler\0")
    } else {
        (b"soun", b"SoundHandler\0")
    };
    buf.put_slice(handler);
    buf.put_slice(&[0; 12]); // reserved
    buf.put_slice(name);
    close(buf, hdlr);

    let minf = open(buf, b"minf");
    if video_size.is_some() {
        let vmhd = open_full(buf, b"vmhd", 0, 1);
        buf.put_u16(0); // graphicsmode: copy
        buf.put_slice(&[0; 6]); // opcolor
        close(buf, vmhd);
    } else {
        let smhd = open_full(buf, b"smhd", 0, 0);
        buf.put_u16(0); // balance
        buf.put_u16(0);
        close(buf, smhd);
    }
    let dinf = open(buf, b"dinf");
    let dref = open_full(buf, b"dref", 0, 0);
    buf.put_u32(1); // entry_count
    let url = open_full(buf, b"url ", 0, 1); // flag 1: media data is in this file
    close(buf, url);
    close(buf, dref);
    close(buf, dinf);
    let stbl = open(buf, b"stbl");
    let stsd = open_full(buf, b"stsd", 0, 0);
    buf.put_u32(1); // entry_count
    write_sample_entry(buf, &t.entry);
    close(buf, stsd);
    for fourcc in [b"stts", b"stsc", b"stco"] {
        let b = open_full(buf, fourcc, 0, 0);
        buf.put_u32(0); // entry_count
        close(buf, b);
    }
    let stsz = open_full(buf, b"stsz", 0, 0);
    buf.put_u32(0); // sample_size
    buf.put_u32(0); // sample_count
    close(buf, stsz);
    close(buf, stbl);
    close(buf, minf);
    close(buf, mdia);
    close(buf, trak);
}

/// ISO-639-2/T code packed as three 5-bit letters (§8.4.2.3); `und` when absent or not a-z.
fn pack_language(language: Option<[u8; 3]>) -> u16 {
    let code = match language {
        Some(l) if l.iter().all(u8::is_ascii_lowercase) => l,
        _ => *b"und",
    };
    code.iter()
        .fold(0u16, |acc, &c| (acc << 5) | u16::from(c - 0x60))
}

fn write_sample_entry(buf: &mut BytesMut, entry: &SampleEntry) {
    match entry {
        SampleEntry::Avc {
            avcc,
            width,
            height,
        } => visual(buf, b"avc1", b"avcC", avcc, *width, *height),
        SampleEntry::Hevc {
            hvcc,
            width,
            height,
        } => visual(buf, b"hvc1", b"hvcC", hvcc, *width, *height),
        SampleEntry::Av1 {
            av1c,
            width,
            height,
        } => visual(buf, b"av01", b"av1C", av1c, *width, *height),
        // vpcC is a FullBox whose version/flags are part of the payload we were given.
        SampleEntry::Vp9 {
            vpcc,
            width,
            height,
        } => visual(buf, b"vp09", b"vpcC", vpcc, *width, *height),
        SampleEntry::Aac {
            asc,
            channels,
            sample_rate_hz,
        } => {
            let e = audio_header(buf, b"mp4a", *channels, *sample_rate_hz);
            write_esds(buf, OTI_AAC, Some(asc));
            close(buf, e);
        }
        SampleEntry::Mp3 {
            channels,
            sample_rate_hz,
        } => {
            let e = audio_header(buf, b"mp4a", *channels, *sample_rate_hz);
            write_esds(buf, OTI_MP3, None);
            close(buf, e);
        }
        SampleEntry::Opus { dops, channels } => {
            let e = audio_header(buf, b"Opus", *channels, 48_000);
            leaf(buf, b"dOps", dops);
            close(buf, e);
        }
    }
}

/// VisualSampleEntry (§12.1.3.2) with one configuration box.
fn visual(
    buf: &mut BytesMut,
    fourcc: &[u8; 4],
    config_fourcc: &[u8; 4],
    config: &Bytes,
    width: u16,
    height: u16,
) {
    let e = open(buf, fourcc);
    buf.put_slice(&[0; 6]); // reserved
    buf.put_u16(1); // data_reference_index
    buf.put_u16(0); // pre_defined
    buf.put_u16(0); // reserved
    buf.put_slice(&[0; 12]); // pre_defined
    buf.put_u16(width);
    buf.put_u16(height);
    buf.put_u32(0x0048_0000); // horizresolution 72 dpi
    buf.put_u32(0x0048_0000); // vertresolution 72 dpi
    buf.put_u32(0); // reserved
    buf.put_u16(1); // frame_count
    buf.put_slice(&[0; 32]); // compressorname (empty Pascal string)
    buf.put_u16(0x0018); // depth: colour, no alpha
    buf.put_i16(-1); // pre_defined
    leaf(buf, config_fourcc, config);
    close(buf, e);
}

/// AudioSampleEntry (§12.2.3.2, version 0); the caller adds the configuration box and closes.
fn audio_header(
    buf: &mut BytesMut,
    fourcc: &[u8; 4],
    channels: u16,
    sample_rate_hz: u32,
) -> super::boxes::Open {
    let e = open(buf, fourcc);
    buf.put_slice(&[0; 6]); // reserved
    buf.put_u16(1); // data_reference_index
    buf.put_u64(0); // reserved
    buf.put_u16(channels);
    buf.put_u16(16); // samplesize
    buf.put_u16(0); // pre_defined
    buf.put_u16(0); // reserved
                    // samplerate is 16.16: rates above 65535 Hz do not fit and are written as 0 (the decoder
                    // configuration carries the real rate).
    let rate = u16::try_from(sample_rate_hz).unwrap_or(0);
    buf.put_u32(u32::from(rate) << 16);
    e
}

/// `esds` (ISO/IEC 14496-14 §5.6.1): ES_Descriptor { DecoderConfigDescriptor { OTI, audio
/// stream, [DecoderSpecificInfo = AudioSpecificConfig] }, SLConfigDescriptor { predefined 2 } }.
fn write_esds(buf: &mut BytesMut, object_type: u8, decoder_specific: Option<&Bytes>) {
    let esds = open_full(buf, b"esds", 0, 0);
    let dsi_len = decoder_specific.map_or(0, |d| descriptor_bytes(d.len()));
    let dcd_body = 13 + dsi_len;
    let es_body = 3 + descriptor_bytes(dcd_body) + descriptor_bytes(1);
    put_descriptor_header(buf, 0x03, es_body); // ES_DescrTag
    buf.put_u16(0); // ES_ID: 0 in an MP4 file (ISO/IEC 14496-14 §3.1.2)
    buf.put_u8(0); // no stream dependence, URL or OCR stream
    put_descriptor_header(buf, 0x04, dcd_body); // DecoderConfigDescrTag
    buf.put_u8(object_type);
    buf.put_u8((0x05 << 2) | 1); // streamType audio, upStream 0, reserved 1
    buf.put_slice(&[0; 3]); // bufferSizeDB
    buf.put_u32(0); // maxBitrate
    buf.put_u32(0); // avgBitrate
    if let Some(d) = decoder_specific {
        put_descriptor_header(buf, 0x05, d.len()); // DecSpecificInfoTag
        buf.put_slice(d);
    }
    put_descriptor_header(buf, 0x06, 1); // SLConfigDescrTag
    buf.put_u8(2); // predefined: reserved for MP4 files
    close(buf, esds);
}

/// Bytes of a descriptor with a `body`-byte payload: tag + size (7 bits per byte) + body.
fn descriptor_bytes(body: usize) -> usize {
    1 + size_field_bytes(body) + body
}

fn size_field_bytes(body: usize) -> usize {
    match body {
        0..=0x7F => 1,
        0x80..=0x3FFF => 2,
        0x4000..=0x1F_FFFF => 3,
        _ => 4,
    }
}

/// Tag and expandable size (ISO/IEC 14496-1 §8.3.3): big-endian 7-bit groups, the high bit set
/// on all but the last. Sizes are capped at 2^28 − 1 (4 bytes), far above any AudioSpecificConfig.
fn put_descriptor_header(buf: &mut BytesMut, tag: u8, body: usize) {
    buf.put_u8(tag);
    let body = body.min(0x0FFF_FFFF);
    let n = size_field_bytes(body);
    for i in (0..n).rev() {
        let group = ((body >> (7 * i)) & 0x7F) as u8;
        buf.put_u8(if i > 0 { group | 0x80 } else { group });
    }
}
