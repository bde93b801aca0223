//! Unit tests of group naming, ordering and rounding (the golden playlists are in
//! `tests/groups.rs`).

use super::*;

#[test]
fn track_names_are_reserved_and_canonical() {
    assert_eq!(track_stream_name("cam", 3), "cam~v3");
    for (name, want) in [
        ("cam~v0", Some(("cam", 0))),
        ("cam~v255", Some(("cam", 255))),
        ("a~vb~v1", Some(("a~vb", 1))),
        ("cam~v", None),
        ("cam~v01", None),
        ("cam~v256", None),
        ("~v1", None),
        ("cam~v1x", None),
        ("cam", None),
    ] {
        assert_eq!(parse_track_name(name), want, "{name}");
        assert_eq!(is_track_stream_name(name), want.is_some(), "{name}");
    }
    assert_eq!(audio_track_stream_name("cam", 1), "cam~a1");
    assert_eq!(parse_audio_track_name("cam~a1"), Some(("cam", 1)));
    assert!(is_track_stream_name("cam~a0"));
    assert!(!is_track_stream_name("cam~a01"));
    let g = Groups::new(&[]);
    assert_eq!(g.group_of("cam~a2"), Some(("cam", GroupKind::Multitrack)));
}

#[test]
fn suffixes_longest_first_and_never_the_whole_name() {
    let g = Groups::new(&["_hi".into(), "_xhi".into(), String::new(), "_lo".into()]);
    assert_eq!(g.group_of("cam_hi"), Some(("cam", GroupKind::Suffix)));
    assert_eq!(g.group_of("cam_xhi"), Some(("cam", GroupKind::Suffix)));
    assert_eq!(g.group_of("_hi"), None);
    assert_eq!(g.group_of("cam"), None);
    assert_eq!(g.group_of("cam~v2"), Some(("cam", GroupKind::Multitrack)));
    assert_eq!(Groups::new(&[]).group_of("cam_hi"), None);
}

#[test]
fn bandwidth_rounds_up_to_two_digits() {
    for (v, want) in [
        (0, 0),
        (7, 7),
        (99, 99),
        (100, 100),
        (101, 110),
        (3_140_000, 3_200_000),
        (3_100_000, 3_100_000),
        (999_999, 1_000_000),
        (u64::MAX, u64::MAX),
    ] {
        assert_eq!(round_up_2_digits(v), want, "{v}");
    }
}

#[test]
fn start_rendition_is_the_median_then_highest_first() {
    let media = |bps| MemberMedia {
        info: StreamInfo::default(),
        bandwidth: Bandwidth {
            peak_bps: bps,
            average_bps: bps,
        },
        iframe_bandwidth: Bandwidth::default(),
    };
    let ms: Vec<(String, MemberMedia)> = [300, 6000, 800, 3000, 1500]
        .iter()
        .map(|b| (format!("r{b}"), media(*b)))
        .collect();
    for n in 0..=ms.len() {
        let mut v: Vec<Variant<'_>> = ms[..n]
            .iter()
            .map(|(s, m)| Variant {
                stream: s,
                media: m,
            })
            .collect();
        order_variants(&mut v);
        let got: Vec<&str> = v.iter().map(|v| v.stream).collect();
        let want: &[&str] = match n {
            0 => &[],
            1 => &["r300"],
            2 => &["r300", "r6000"],
            3 => &["r800", "r6000", "r300"],
            4 => &["r800", "r6000", "r3000", "r300"],
            _ => &["r1500", "r6000", "r3000", "r800", "r300"],
        };
        assert_eq!(got, want, "{n} variants");
    }
}
