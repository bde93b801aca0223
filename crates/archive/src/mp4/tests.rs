//! The progressive MP4 built from real CMAF fragments (Sluice's own `remux::fmp4` writer):
//! exact sample tables, box order, and (property) every sample's offset in the output points at
//! that sample's bytes, and any byte range is the same bytes as the whole file's.

use bytes::Bytes;
use proptest::prelude::*;
use remux::fmp4::{
    write_fragment, write_init, write_styp, Fragment, Sample, SampleEntry, TrackConfig,
};

use super::read::{children, need, Cur};
use super::*;

fn tracks() -> Vec<TrackConfig> {
    vec![
        TrackConfig {
            track_id: 1,
            timescale: 90_000,
            entry: SampleEntry::Avc {
                avcc: Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]),
                width: 320,
                height: 240,
            },
            language: None,
        },
        TrackConfig {
            track_id: 2,
            timescale: 48_000,
            entry: SampleEntry::Mp3 {
                channels: 2,
                sample_rate_hz: 48_000,
            },
            language: None,
        },
    ]
}

/// A sample whose bytes name it: (track, number), repeated to `len`.
fn sample(track: u8, n: u32, len: usize, duration: u32, cto: i32, sync: bool) -> Sample {
    let mut v = Vec::with_capacity(len);
    for i in 0..len {
        v.push(match i % 4 {
            0 => track,
            k => n.to_be_bytes()[k] ^ (i as u8),
        });
    }
    Sample {
        data: vec![Bytes::from(v)],
        duration,
        composition_offset: cto,
        is_sync: sync,
    }
}

/// A segment file: styp, then one moof+mdat per chunk of (video, audio) samples.
fn segment(first_seq: u32, chunks: &[(u64, Vec<Sample>, u64, Vec<Sample>)]) -> Vec<u8> {
    let mut out = write_styp().to_vec();
    for (i, (vt, v, at, a)) in chunks.iter().enumerate() {
        let frags = [
            Fragment {
                track_id: 1,
                base_media_decode_time: *vt,
                samples: v,
            },
            Fragment {
                track_id: 2,
                base_media_decode_time: *at,
                samples: a,
            },
        ];
        for b in write_fragment(first_seq + i as u32, &frags) {
            out.extend_from_slice(&b);
        }
    }
    out
}

/// Walks a file's top-level boxes like the HTTP side does.
fn push_file(b: &mut Builder, source: u32, file: &[u8]) {
    let mut at = 0usize;
    let mut moof: Option<(usize, usize)> = None;
    while at < file.len() {
        let h = box_header(&file[at..]).unwrap();
        let end = at + h.box_len as usize;
        match &h.fourcc {
            b"moof" => moof = Some((at, end)),
            b"mdat" => {
                let (s, e) = moof.take().unwrap();
                b.push_fragment(
                    source,
                    s as u64,
                    &file[s..e],
                    (at as u64 + h.header_len)..end as u64,
                )
                .unwrap();
            }
            _ => {}
        }
        at = end;
    }
}

fn assemble(layout: &Layout, files: &[Vec<u8>], first: u64, last: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for s in layout.slices(first, last) {
        match s {
            Slice::Head(r) => out.extend_from_slice(&layout.head[r]),
            Slice::File(p) => out.extend_from_slice(
                &files[p.source as usize][p.offset as usize..(p.offset + p.len) as usize],
            ),
        }
    }
    out
}

/// A track's sample tables read back from the output `moov`.
#[derive(Debug, Default)]
struct Tables {
    stts: Vec<(u32, u32)>,
    ctts: Option<(u8, Vec<(u32, i32)>)>,
    stss: Option<Vec<u32>>,
    sizes: Vec<u32>,
    stsc: Vec<(u32, u32, u32)>,
    offsets: Vec<u64>,
    elst: bool,
}

fn tables(file: &[u8]) -> (Vec<&'static str>, Vec<Tables>) {
    let mut order = Vec::new();
    for (t, _, _) in children(file).unwrap() {
        order.push(match &t {
            b"ftyp" => "ftyp",
            b"moov" => "moov",
            b"mdat" => "mdat",
            _ => "other",
        });
    }
    let (_, moov) = need(file, b"moov").unwrap();
    let mut out = Vec::new();
    for (t, _, trak) in children(moov).unwrap() {
        if &t != b"trak" {
            continue;
        }
        let mut tb = Tables {
            elst: need(trak, b"edts").is_ok(),
            ..Tables::default()
        };
        let (_, mdia) = need(trak, b"mdia").unwrap();
        let (_, minf) = need(mdia, b"minf").unwrap();
        let (_, stbl) = need(minf, b"stbl").unwrap();
        for (t, _, body) in children(stbl).unwrap() {
            let mut c = Cur::new(body);
            let (v, _) = c.full().unwrap();
            match &t {
                b"stts" => {
                    for _ in 0..c.u32().unwrap() {
                        tb.stts.push((c.u32().unwrap(), c.u32().unwrap()));
                    }
                }
                b"ctts" => {
                    let mut e = Vec::new();
                    for _ in 0..c.u32().unwrap() {
                        e.push((c.u32().unwrap(), c.u32().unwrap() as i32));
                    }
                    tb.ctts = Some((v, e));
                }
                b"stss" => {
                    let n = c.u32().unwrap();
                    tb.stss = Some((0..n).map(|_| c.u32().unwrap()).collect());
                }
                b"stsz" => {
                    let uniform = c.u32().unwrap();
                    let n = c.u32().unwrap();
                    tb.sizes = (0..n)
                        .map(|_| {
                            if uniform > 0 {
                                uniform
                            } else {
                                c.u32().unwrap()
                            }
                        })
                        .collect();
                }
                b"stsc" => {
                    for _ in 0..c.u32().unwrap() {
                        tb.stsc
                            .push((c.u32().unwrap(), c.u32().unwrap(), c.u32().unwrap()));
                    }
                }
                b"stco" => {
                    for _ in 0..c.u32().unwrap() {
                        tb.offsets.push(u64::from(c.u32().unwrap()));
                    }
                }
                b"co64" => {
                    for _ in 0..c.u32().unwrap() {
                        tb.offsets.push(c.u64().unwrap());
                    }
                }
                _ => {}
            }
        }
        out.push(tb);
    }
    (order, out)
}

/// Each sample's (offset, size) in the output, from stsc + stco + stsz.
fn sample_positions(t: &Tables) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    let mut sample = 0usize;
    for (ci, off) in t.offsets.iter().enumerate() {
        let chunk = ci as u32 + 1;
        let per = t.stsc.iter().rev().find(|(f, _, _)| *f <= chunk).unwrap().1;
        let mut at = *off;
        for _ in 0..per {
            out.push((at, t.sizes[sample]));
            at += u64::from(t.sizes[sample]);
            sample += 1;
        }
    }
    assert_eq!(sample, t.sizes.len(), "stsc covers every sample");
    out
}

#[test]
fn sample_tables_are_exact_and_moov_comes_before_mdat() {
    let init = write_init(&tracks()).to_vec();
    // Video: IPB-like, 3000 ticks each, offsets +6000, -3000, 0 ...; audio 1152 samples each.
    let v1 = vec![
        sample(1, 0, 100, 3000, 3000, true),
        sample(1, 1, 40, 3000, -3000, false),
        sample(1, 2, 50, 3000, 0, false),
    ];
    let a1 = vec![
        sample(2, 0, 30, 1152, 0, true),
        sample(2, 1, 30, 1152, 0, true),
    ];
    let v2 = vec![
        sample(1, 3, 90, 3000, 0, true),
        sample(1, 4, 45, 3000, 0, false),
    ];
    let a2 = vec![sample(2, 2, 30, 1152, 0, true)];
    let file0 = segment(1, &[(0, v1, 960, a1)]);
    let file1 = segment(2, &[(9000, v2, 960 + 2304, a2)]);
    let mut b = Builder::new(&init, 1 << 20).unwrap();
    push_file(&mut b, 0, &file0);
    push_file(&mut b, 1, &file1);
    let layout = b.finish().unwrap();
    let files = vec![file0, file1];
    let out = assemble(&layout, &files, 0, layout.total_len - 1);
    assert_eq!(out.len() as u64, layout.total_len);
    let (order, t) = tables(&out);
    assert_eq!(order, ["ftyp", "moov", "mdat"]);
    assert_eq!(layout.samples, [5, 3]);
    let (v, a) = (&t[0], &t[1]);
    assert_eq!(v.stts, [(5, 3000)]);
    assert_eq!(
        v.ctts,
        Some((1, vec![(1, 3000), (1, -3000), (3, 0)])),
        "signed offsets: ctts version 1"
    );
    assert_eq!(v.stss, Some(vec![1, 4]));
    assert_eq!(v.sizes, [100, 40, 50, 90, 45]);
    assert_eq!(v.stsc, [(1, 3, 1), (2, 2, 1)]);
    assert!(!v.elst, "video starts first");
    assert_eq!(a.stts, [(3, 1152)]);
    assert_eq!(a.ctts, None);
    assert_eq!(a.stss, None, "all audio samples are sync");
    assert_eq!(a.stsc, [(1, 2, 1), (2, 1, 1)]);
    assert!(a.elst, "audio starts 20 ms after video: an empty edit");
    // Movie: 1000 ticks/s; video 5 x 3000 / 90 000 = 166 ms.
    assert!(
        (layout.duration_s - 0.166).abs() < 0.002,
        "{}",
        layout.duration_s
    );
}

/// Per file, per chunk: video samples (size, sync, composition offset in frames) and audio
/// sample sizes.
type FilesSpec = Vec<Vec<(Vec<(usize, bool, i32)>, Vec<usize>)>>;

fn arb_chunks() -> impl Strategy<Value = FilesSpec> {
    let video = prop::collection::vec((1usize..300, any::<bool>(), -2i32..3), 0..6);
    let audio = prop::collection::vec(1usize..80, 0..5);
    prop::collection::vec(prop::collection::vec((video, audio), 1..4), 1..5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Files of random fragments: every sample's offset in the output (stsc + stco + stsz)
    /// points at exactly that sample's bytes, and any range equals the same slice of the
    /// whole output.
    #[test]
    fn offsets_point_at_the_right_samples(files_spec in arb_chunks(), r in any::<(u64, u64)>()) {
        let init = write_init(&tracks()).to_vec();
        let mut expected: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
        let mut files = Vec::new();
        let (mut vn, mut an, mut seq) = (0u32, 0u32, 1u32);
        for chunks in &files_spec {
            let mut c = Vec::new();
            for (v, a) in chunks {
                let vs: Vec<Sample> = v.iter().map(|(len, sync, k)| {
                    vn += 1;
                    sample(1, vn, *len, 3000, k * 3000, *sync)
                }).collect();
                let aus: Vec<Sample> = a.iter().map(|len| {
                    an += 1;
                    sample(2, an, *len, 1024, 0, true)
                }).collect();
                expected[0].extend(vs.iter().map(|s| s.data[0].to_vec()));
                expected[1].extend(aus.iter().map(|s| s.data[0].to_vec()));
                c.push((u64::from(vn) * 3000, vs, u64::from(an) * 1024, aus));
            }
            files.push(segment(seq, &c));
            seq += c.len() as u32;
        }
        let mut b = Builder::new(&init, 1 << 20).unwrap();
        for (i, f) in files.iter().enumerate() {
            push_file(&mut b, i as u32, f);
        }
        if expected.iter().all(Vec::is_empty) {
            prop_assert!(b.finish().is_err());
            return Ok(());
        }
        let layout = b.finish().unwrap();
        let out = assemble(&layout, &files, 0, layout.total_len - 1);
        prop_assert_eq!(out.len() as u64, layout.total_len);
        let (order, t) = tables(&out);
        prop_assert_eq!(order, vec!["ftyp", "moov", "mdat"]);
        let mut ti = t.iter();
        for exp in expected.iter().filter(|e| !e.is_empty()) {
            let tb = ti.next().unwrap();
            let pos = sample_positions(tb);
            prop_assert_eq!(pos.len(), exp.len());
            for ((off, size), data) in pos.iter().zip(exp) {
                prop_assert_eq!(&out[*off as usize..*off as usize + *size as usize], &data[..]);
            }
        }
        let first = r.0 % layout.total_len;
        let last = first + r.1 % (layout.total_len - first);
        prop_assert_eq!(
            assemble(&layout, &files, first, last),
            out[first as usize..=last as usize].to_vec()
        );
    }
}

#[test]
fn a_run_outside_its_mdat_and_other_tracks_are_refused() {
    let init = write_init(&tracks()).to_vec();
    let file = segment(1, &[(0, vec![sample(1, 0, 100, 3000, 0, true)], 0, vec![])]);
    let mut b = Builder::new(&init, 1 << 20).unwrap();
    let h = box_header(&file[20..]).unwrap();
    let moof_end = 20 + h.box_len as usize;
    // The mdat claimed one byte shorter than the run.
    let mdat_start = moof_end as u64 + 8;
    assert!(b
        .push_fragment(
            0,
            20,
            &file[20..moof_end],
            mdat_start..file.len() as u64 - 1
        )
        .is_err());
    // A later init with one track only.
    let one = write_init(&tracks()[..1]);
    assert!(b.push_init(&one).is_err());
    // Too many samples for the bound.
    let mut small = Builder::new(&init, 0).unwrap();
    assert!(small
        .push_fragment(0, 20, &file[20..moof_end], mdat_start..file.len() as u64)
        .is_err());
}

#[test]
fn a_later_init_adds_its_sample_entry() {
    let init = write_init(&tracks()).to_vec();
    let mut t2 = tracks();
    t2[0].entry = SampleEntry::Avc {
        avcc: Bytes::from_static(&[1, 0x64, 0, 0x28, 0xff, 0xe0, 0]),
        width: 640,
        height: 480,
    };
    let init2 = write_init(&t2).to_vec();
    let f0 = segment(1, &[(0, vec![sample(1, 0, 10, 3000, 0, true)], 0, vec![])]);
    let f1 = segment(
        2,
        &[(3000, vec![sample(1, 1, 10, 3000, 0, true)], 0, vec![])],
    );
    let mut b = Builder::new(&init, 100).unwrap();
    push_file(&mut b, 0, &f0);
    b.push_init(&init2).unwrap();
    push_file(&mut b, 1, &f1);
    let layout = b.finish().unwrap();
    let out = assemble(&layout, &[f0, f1], 0, layout.total_len - 1);
    let (_, t) = tables(&out);
    assert_eq!(t[0].stsc, [(1, 1, 1), (2, 1, 2)]);
}
