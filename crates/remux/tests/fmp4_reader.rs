//! The fMP4 writer's output read back by an independent reader, the `mp4-atom` crate: every
//! sample entry and configuration box, and fragments with per-sample durations, sizes, sync
//! flags and negative composition offsets resolved through the `tfhd` defaults exactly as a
//! player does. A property test checks sizes and data offsets on random sample tables.

use std::io::Cursor;

use bytes::Bytes;
use mp4_atom::{Codec, Decode, Ftyp, Mdat, Moof, Moov, StszSamples, Styp};
use proptest::prelude::*;
use remux::codec::{av1::Av1Config, hevc::HevcConfig, opus::OpusConfig, vp9::Vp9Config};
use remux::fmp4::{
    write_fragment, write_init, write_styp, Fragment, Sample, SampleEntry, TrackConfig,
    NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS,
};

const HVCC: &[u8] = &[
    0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3C, 0xF0, 0x00, 0xFC,
    0xFD, 0xF8, 0xF8, 0x00, 0x00, 0x0F, 0x01, 0xA1, 0x00, 0x01, 0x00, 0x2A, 0x42, 0x01, 0x01, 0x01,
    0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x3C, 0xA0, 0x0A,
    0x08, 0x0F, 0x16, 0x59, 0x59, 0xA4, 0x93, 0x2B, 0xC0, 0x5A, 0x02, 0x00, 0x00, 0x03, 0x00, 0x02,
    0x00, 0x00, 0x03, 0x00, 0x32, 0x10,
];
const AV1C: &[u8] = &[
    0x81, 0x00, 0x0C, 0x00, 0x0A, 0x0B, 0x02, 0x00, 0x00, 0x05, 0x61, 0xE7, 0xFD, 0xE0, 0x17, 0xC0,
    0x02,
];
const VPCC: &[u8] = &[
    0x01, 0x00, 0x00, 0x00, 0x00, 0x14, 0x80, 0x02, 0x02, 0x02, 0x00, 0x00,
];
const OPUS_HEAD: &[u8] = b"OpusHead\x01\x02\x38\x01\x80\xBB\x00\x00\x00\x00\x00";
/// A Baseline 320x240 AVCDecoderConfigurationRecord is not needed here: `avcC` is written
/// verbatim, so any record shows the entry layout; this one is profile 66, level 30.
const AVCC: &[u8] = &[0x01, 0x42, 0xC0, 0x1E, 0xFF, 0xE0, 0x00];

fn track(track_id: u32, timescale: u32, entry: SampleEntry) -> TrackConfig {
    TrackConfig {
        track_id,
        timescale,
        entry,
        language: None,
    }
}

fn decode_init(init: &[u8]) -> (Ftyp, Moov) {
    let mut c = Cursor::new(init);
    let ftyp = Ftyp::decode(&mut c).expect("ftyp");
    let moov = Moov::decode(&mut c).expect("moov");
    assert_eq!(c.position() as usize, init.len(), "nothing after moov");
    (ftyp, moov)
}

#[test]
fn every_sample_entry_reads_back() {
    let hevc = HevcConfig::parse(HVCC).unwrap();
    let av1 = Av1Config::parse(AV1C).unwrap();
    let vp9 = Vp9Config::parse(VPCC).unwrap();
    let opus = OpusConfig::parse(OPUS_HEAD).unwrap();
    let tracks = [
        track(
            1,
            90_000,
            SampleEntry::Avc {
                avcc: Bytes::from_static(AVCC),
                width: 320,
                height: 240,
            },
        ),
        track(2, 90_000, SampleEntry::from_hevc(&hevc)),
        track(3, 90_000, SampleEntry::from_av1(&av1)),
        track(4, 90_000, SampleEntry::from_vp9(&vp9, 320, 240)),
        track(
            5,
            44_100,
            SampleEntry::Aac {
                asc: Bytes::from_static(&[0x12, 0x10]),
                channels: 2,
                sample_rate_hz: 44_100,
            },
        ),
        track(
            6,
            44_100,
            SampleEntry::Mp3 {
                channels: 2,
                sample_rate_hz: 44_100,
            },
        ),
        track(7, 48_000, SampleEntry::from_opus(&opus)),
    ];
    let init = write_init(&tracks);
    let (ftyp, moov) = decode_init(&init);
    assert_eq!(&ftyp.major_brand.to_string(), "iso6");
    let brands: Vec<String> = ftyp
        .compatible_brands
        .iter()
        .map(|b| b.to_string())
        .collect();
    assert_eq!(
        brands,
        ["iso6", "mp41", "av01"],
        "no cmfc with several tracks"
    );
    assert_eq!(moov.mvhd.next_track_id, 8);
    assert_eq!(moov.trak.len(), 7);
    let trex = &moov.mvex.as_ref().expect("mvex").trex;
    assert_eq!(
        trex.iter().map(|t| t.track_id).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7]
    );
    for (trak, cfg) in moov.trak.iter().zip(&tracks) {
        assert_eq!(trak.tkhd.track_id, cfg.track_id);
        assert_eq!(trak.mdia.mdhd.timescale, cfg.timescale);
        assert_eq!(trak.mdia.mdhd.language, "und");
        let stbl = &trak.mdia.minf.stbl;
        assert!(
            matches!(
                &stbl.stsz.samples,
                StszSamples::Different { sizes } if sizes.is_empty()
            ) || matches!(stbl.stsz.samples, StszSamples::Identical { count: 0, .. }),
            "no samples in an init segment"
        );
        assert_eq!(stbl.stsd.codecs.len(), 1);
        let video = cfg.entry.video_size().is_some();
        assert_eq!(
            &trak.mdia.hdlr.handler.to_string(),
            if video { "vide" } else { "soun" }
        );
        match (&stbl.stsd.codecs[0], &cfg.entry) {
            (Codec::Avc1(a), SampleEntry::Avc { .. }) => {
                assert_eq!((a.visual.width, a.visual.height), (320, 240));
                assert_eq!(a.avcc.avc_profile_indication, 66);
                assert_eq!(a.avcc.avc_level_indication, 30);
            }
            (Codec::Hvc1(h), SampleEntry::Hevc { .. }) => {
                assert_eq!((h.visual.width, h.visual.height), (320, 240));
                assert_eq!(h.hvcc.general_profile_idc, 1);
                assert_eq!(h.hvcc.general_level_idc, 60);
                assert_eq!(h.hvcc.length_size_minus_one, 3);
                assert_eq!(h.hvcc.arrays.len(), 1);
            }
            (Codec::Av01(a), SampleEntry::Av1 { .. }) => {
                assert_eq!((a.visual.width, a.visual.height), (320, 240));
                assert_eq!(a.av1c.seq_profile, 0);
                assert!(a.av1c.chroma_subsampling_x && a.av1c.chroma_subsampling_y);
                assert_eq!(a.av1c.config_obus, &AV1C[4..]);
            }
            (Codec::Vp09(v), SampleEntry::Vp9 { .. }) => {
                assert_eq!((v.visual.width, v.visual.height), (320, 240));
                assert_eq!((v.vpcc.profile, v.vpcc.level, v.vpcc.bit_depth), (0, 20, 8));
            }
            (Codec::Mp4a(m), SampleEntry::Aac { .. }) => {
                assert_eq!(m.audio.channel_count, 2);
                let dc = &m.esds.es_desc.dec_config;
                assert_eq!(dc.object_type_indication, 0x40);
                assert_eq!(dc.stream_type, 5);
                let ds = dc.dec_specific.as_ref().expect("AudioSpecificConfig");
                assert_eq!((ds.profile, ds.freq_index, ds.chan_conf), (2, 4, 2));
            }
            (Codec::Mp4a(m), SampleEntry::Mp3 { .. }) => {
                let dc = &m.esds.es_desc.dec_config;
                assert_eq!(dc.object_type_indication, 0x6B);
                assert!(dc.dec_specific.is_none(), "MP3 has no DecoderSpecificInfo");
            }
            (Codec::Opus(o), SampleEntry::Opus { .. }) => {
                assert_eq!(o.audio.channel_count, 2);
                assert_eq!(o.dops.output_channel_count, 2);
                assert_eq!(o.dops.pre_skip, 312);
                assert_eq!(o.dops.input_sample_rate, 48_000);
                assert!(o.dops.channel_mapping.is_none());
            }
            (got, want) => panic!("track {}: {got:?} for {want:?}", cfg.track_id),
        }
    }
}

#[test]
fn single_track_init_is_cmaf_and_styp_reads_back() {
    let opus = OpusConfig::parse(OPUS_HEAD).unwrap();
    let (ftyp, _) = decode_init(&write_init(&[track(
        1,
        48_000,
        SampleEntry::from_opus(&opus),
    )]));
    let brands: Vec<String> = ftyp
        .compatible_brands
        .iter()
        .map(|b| b.to_string())
        .collect();
    assert_eq!(brands, ["iso6", "mp41", "cmfc"]);
    let styp = Styp::decode(&mut Cursor::new(write_styp())).unwrap();
    assert_eq!(&styp.major_brand.to_string(), "msdh");
}

/// What a player sees for one track run: (duration, size, flags, cts) per sample, with the
/// `tfhd` defaults applied, plus the run's data offset and base decode time.
struct Run {
    track_id: u32,
    base: u64,
    data_offset: i32,
    samples: Vec<(u32, u32, u32, i64)>,
}

fn decode_chunk(chunk: &[Bytes]) -> (u32, Vec<Run>, Vec<u8>, usize) {
    let all: Vec<u8> = chunk.iter().flat_map(|b| b.iter().copied()).collect();
    let mut c = Cursor::new(&all[..]);
    let moof = Moof::decode(&mut c).expect("moof");
    let moof_bytes = c.position() as usize;
    let mdat = Mdat::decode(&mut c).expect("mdat");
    assert_eq!(c.position() as usize, all.len(), "nothing after mdat");
    let runs = moof
        .traf
        .iter()
        .map(|traf| {
            let t = &traf.tfhd;
            assert!(t.default_base_is_moof, "default-base-is-moof");
            assert_eq!(traf.trun.len(), 1);
            let trun = &traf.trun[0];
            Run {
                track_id: t.track_id,
                base: traf.tfdt.as_ref().expect("tfdt").base_media_decode_time,
                data_offset: trun.data_offset.expect("data_offset"),
                samples: trun
                    .samples
                    .iter()
                    .map(|e| {
                        (
                            e.duration.or(t.default_sample_duration).expect("duration"),
                            e.size.or(t.default_sample_size).expect("size"),
                            e.flags.or(t.default_sample_flags).expect("flags"),
                            e.cts.unwrap_or(0),
                        )
                    })
                    .collect(),
            }
        })
        .collect();
    (moof.mfhd.sequence_number, runs, mdat.data, moof_bytes)
}

fn check_chunk(seq: u32, frags: &[Fragment<'_>]) {
    let chunk = write_fragment(seq, frags);
    let (got_seq, runs, mdat, moof_bytes) = decode_chunk(&chunk);
    assert_eq!(got_seq, seq);
    assert_eq!(runs.len(), frags.len());
    let mut mdat_pos = 0usize;
    for (run, f) in runs.iter().zip(frags) {
        assert_eq!(run.track_id, f.track_id);
        assert_eq!(run.base, f.base_media_decode_time);
        assert_eq!(run.samples.len(), f.samples.len());
        assert_eq!(run.data_offset as usize, moof_bytes + 8 + mdat_pos);
        for (got, s) in run.samples.iter().zip(f.samples) {
            let bytes: Vec<u8> = s.data.iter().flat_map(|b| b.iter().copied()).collect();
            let want_flags = if s.is_sync {
                SYNC_SAMPLE_FLAGS
            } else {
                NON_SYNC_SAMPLE_FLAGS
            };
            assert_eq!(
                *got,
                (
                    s.duration,
                    bytes.len() as u32,
                    want_flags,
                    i64::from(s.composition_offset)
                )
            );
            assert_eq!(&mdat[mdat_pos..mdat_pos + bytes.len()], &bytes[..]);
            mdat_pos += bytes.len();
        }
    }
    assert_eq!(mdat_pos, mdat.len());
}

fn sample(data: &[u8], duration: u32, cts: i32, sync: bool) -> Sample {
    Sample {
        data: vec![Bytes::copy_from_slice(data)],
        duration,
        composition_offset: cts,
        is_sync: sync,
    }
}

#[test]
fn fragments_with_b_frames_and_audio_read_back() {
    // IPBB with negative offsets (B-frames shown before the P that precedes them in decode order).
    let video = [
        sample(b"I-frame", 3000, 0, true),
        sample(b"P", 3000, 6000, false),
        sample(b"B1", 3000, -3000, false),
        sample(b"B2", 1500, -1500, false),
    ];
    let audio: Vec<Sample> = (0..5).map(|i| sample(&[i; 9], 1024, 0, true)).collect();
    check_chunk(
        42,
        &[
            Fragment {
                track_id: 1,
                base_media_decode_time: 1 << 40,
                samples: &video,
            },
            Fragment {
                track_id: 2,
                base_media_decode_time: 7,
                samples: &audio,
            },
        ],
    );
}

fn arb_sample() -> impl Strategy<Value = Sample> {
    (
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..4),
        prop_oneof![Just(3000u32), any::<u32>()],
        prop_oneof![Just(0i32), any::<i32>()],
        any::<bool>(),
    )
        .prop_map(|(pieces, duration, cts, sync)| Sample {
            data: pieces.into_iter().map(Bytes::from).collect(),
            duration,
            composition_offset: cts,
            is_sync: sync,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Sizes and data offsets always match what an independent reader finds, whatever mix of
    /// uniform and varying fields (and so of tfhd defaults) the runs have.
    #[test]
    fn random_sample_tables_read_back(
        seq in any::<u32>(),
        tables in proptest::collection::vec(
            (any::<u64>(), proptest::collection::vec(arb_sample(), 0..12)), 0..4),
    ) {
        let frags: Vec<Fragment<'_>> = tables
            .iter()
            .enumerate()
            .map(|(i, (base, s))| Fragment {
                track_id: i as u32 + 1,
                base_media_decode_time: *base,
                samples: s,
            })
            .collect();
        check_chunk(seq, &frags);
        let total: usize = write_fragment(seq, &frags).iter().map(Bytes::len).sum();
        let media: usize = tables.iter().flat_map(|t| &t.1).flat_map(|s| &s.data).map(Bytes::len).sum();
        prop_assert!(total > media);
    }
}
