//! Unit tests: the index across reconnects, DVR eviction order, recovery from a torn tail
//! (property test truncating the files at random offsets), retention.

use std::path::PathBuf;

use bytes::Bytes;
use proptest::prelude::*;

use crate::retention::{dvr_victim, recordings_to_delete, RecordingAge};
use crate::*;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("archive-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn meta(id: &str) -> Meta {
    Meta {
        id: id.into(),
        app: "live".into(),
        stream: "s".into(),
        created_unix_ms: 1_000_000,
    }
}

fn seg_bytes(i: u64) -> Vec<Bytes> {
    vec![
        Bytes::from(vec![i as u8; 100 + i as usize]),
        Bytes::from(vec![0xAB; 50]),
    ]
}

/// Writes `n` CMAF and TS segments (2 s each); a reconnect after `reconnect_after`.
fn write_log(dir: &std::path::Path, n: u64, reconnect_after: Option<u64>) -> (LogWriter, Index) {
    let (mut w, mut idx) = LogWriter::create(dir, meta("r1")).unwrap();
    let (init, len) = w
        .append_init(Container::Cmaf, &[Bytes::from_static(b"ftypmoov")])
        .unwrap();
    idx.push_init(init, len);
    for i in 0..n {
        if Some(i) == reconnect_after {
            w.mark_discontinuity();
        }
        let wall = 1_000_000 + i * 2000;
        for c in Container::ALL {
            let init = (c == Container::Cmaf).then_some(init);
            let e = w
                .append_segment(c, &seg_bytes(i), 180_000, wall, false, true, init)
                .unwrap();
            idx.push(e);
        }
    }
    (w, idx)
}

#[test]
fn index_across_a_reconnect_has_one_discontinuity_per_container() {
    let dir = tmp("reconnect");
    let (mut w, mut idx) = write_log(&dir, 6, Some(3));
    for c in Container::ALL {
        let d: Vec<bool> = idx.segments(c).iter().map(|e| e.discontinuity).collect();
        assert_eq!(d, [false, false, false, true, false, false], "{c:?}");
        let seqs: Vec<u64> = idx.segments(c).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4, 5]);
    }
    let opts = RenderOptions {
        vod: true,
        uri_prefix: String::new(),
        start_offset_s: None,
        target_duration_s: 2,
    };
    let open = render(&idx, Container::Cmaf, &opts).unwrap();
    assert!(
        open.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n") && !open.contains("ENDLIST"),
        "{open}"
    );
    w.close(2_000_000).unwrap();
    idx.closed_unix_ms = Some(2_000_000);
    let pl = render(&idx, Container::Cmaf, &opts).unwrap();
    assert!(pl.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{pl}");
    assert!(pl.ends_with("#EXT-X-ENDLIST\n"), "{pl}");
    assert_eq!(pl.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{pl}");
    assert_eq!(pl.matches("#EXT-X-PROGRAM-DATE-TIME:").count(), 6, "{pl}");
    assert_eq!(
        pl.matches("#EXT-X-MAP:URI=\"init-0.mp4\"").count(),
        1,
        "{pl}"
    );
    assert!(
        pl.contains("#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:16:40.000Z\n"),
        "{pl}"
    );
    // The recovered index of a closed log is the same.
    let (back, rep) = recover(&dir).unwrap();
    assert!(!rep.closed_now);
    assert_eq!(render(&back, Container::Cmaf, &opts).unwrap(), pl);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dvr_eviction_takes_the_oldest_first_and_slides_the_playlist() {
    let dir = tmp("evict");
    let (_w, mut idx) = write_log(&dir, 5, Some(1));
    let before = idx.bytes();
    // Oldest first, across containers; the discontinuity count follows what left.
    let (files, freed) = idx.evict_oldest().unwrap();
    assert_eq!(files, ["seg-0.ts"]);
    let (files, _) = idx.evict_oldest().unwrap();
    assert_eq!(files, ["seg-0.m4s"]);
    idx.evict_oldest().unwrap();
    idx.evict_oldest().unwrap();
    assert_eq!(idx.bytes(), before - freed * 2 - 2 * 151);
    assert_eq!(idx.evicted_discontinuities(Container::Ts), 1);
    let pl = render(
        &idx,
        Container::Ts,
        &RenderOptions {
            vod: false,
            uri_prefix: "dvr/".into(),
            start_offset_s: Some(0.0),
            target_duration_s: 2,
        },
    )
    .unwrap();
    assert!(
        !pl.contains("PLAYLIST-TYPE"),
        "a sliding window has no type: {pl}"
    );
    assert!(pl.contains("#EXT-X-MEDIA-SEQUENCE:2\n"), "{pl}");
    assert!(pl.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{pl}");
    assert!(
        pl.contains("#EXT-X-START:TIME-OFFSET=0.000,PRECISE=YES\n"),
        "{pl}"
    );
    assert!(pl.contains("\ndvr/seg-2.ts\n"), "{pl}");
    // The init segment is kept while the newest init.
    assert_eq!(idx.init_len(0), Some(8));
    // Start-over at a wall-clock time: the segment received then.
    assert_eq!(
        offset_at(&idx, Container::Ts, 1_000_000 + 3 * 2000 + 500),
        2.0
    );
    assert_eq!(offset_at(&idx, Container::Ts, 0), 0.0);
    // The DVR log with the oldest data is the disk cap's victim.
    assert_eq!(
        dvr_victim([("a", Some(5)), ("b", Some(3)), ("c", None)]),
        Some("b")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn retention_by_age_then_by_bytes_oldest_first() {
    let r = |id: &str, closed: u64, bytes: u64| RecordingAge {
        id: id.into(),
        closed_unix_ms: closed,
        bytes,
    };
    let closed = [r("c", 300, 10), r("a", 100, 10), r("b", 200, 10)];
    assert_eq!(
        recordings_to_delete(&closed, 0, 1000, 0, 0),
        Vec::<String>::new()
    );
    assert_eq!(recordings_to_delete(&closed, 0, 1000, 850, 0), ["a"]);
    assert_eq!(recordings_to_delete(&closed, 0, 1000, 0, 20), ["a"]);
    // Open recordings count toward the cap but are never deleted.
    assert_eq!(
        recordings_to_delete(&closed, 15, 1000, 0, 20),
        ["a", "b", "c"]
    );
}

#[test]
fn an_open_log_is_closed_at_its_last_complete_segment() {
    let dir = tmp("open");
    let (w, _) = write_log(&dir, 3, None);
    drop(w); // kill -9: no end record
    let (idx, rep) = recover(&dir).unwrap();
    assert!(rep.closed_now, "{rep:?}");
    assert_eq!(idx.segments(Container::Ts).len(), 3);
    assert_eq!(idx.closed_unix_ms, Some(1_000_000 + 2 * 2000 + 2000));
    let _ = std::fs::remove_dir_all(&dir);
}

fn truncate(path: &std::path::Path, at_fraction: f64) {
    let len = std::fs::metadata(path).unwrap().len();
    let at = ((len as f64) * at_fraction) as u64;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(at.min(len)).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A crash tears the tail: the journal is cut at a random byte, and the newest segment file
    /// (possibly one the journal never got to) at another. Recovery keeps exactly the segments
    /// whose record and data are both intact, which are a prefix of what was written, and every
    /// kept segment's bytes are the bytes written; the log is closed and a second recovery
    /// changes nothing.
    #[test]
    fn recovery_after_a_torn_tail_keeps_an_intact_prefix(
        n in 1u64..6,
        journal_cut in 0.0f64..1.0,
        data_cut in 0.0f64..1.0,
        cut_journal in any::<bool>(),
        extra_file in any::<bool>(),
    ) {
        let dir = tmp(&format!("prop-{n}-{}", (journal_cut * 1e6) as u64));
        let (w, _) = write_log(&dir, n, None);
        drop(w);
        if extra_file {
            // A segment whose data was being written when the process died (no record yet).
            std::fs::write(dir.join(segment_file(Container::Ts, n)), b"partial").unwrap();
        }
        if cut_journal {
            truncate(&dir.join(log::JOURNAL_FILE), journal_cut);
        }
        truncate(&dir.join(segment_file(Container::Cmaf, n - 1)), data_cut);
        let (idx, rep) = recover(&dir).unwrap();
        prop_assert!(idx.closed_unix_ms.is_some());
        for c in Container::ALL {
            let segs = idx.segments(c);
            // A prefix: 0, 1, 2, ...
            for (i, e) in segs.iter().enumerate() {
                prop_assert_eq!(e.seq, i as u64);
                let data = std::fs::read(dir.join(segment_file(c, e.seq))).unwrap();
                let want: Vec<u8> = seg_bytes(e.seq).concat();
                prop_assert_eq!(data, want);
            }
        }
        // The torn CMAF segment is never listed unless intact.
        let full = data_cut >= 0.999;
        if !full {
            prop_assert!(idx.segment(Container::Cmaf, n - 1).is_none());
        }
        prop_assert!(!dir.join(segment_file(Container::Ts, n)).exists());
        let (again, rep2) = recover(&dir).unwrap();
        prop_assert!(!rep2.closed_now);
        prop_assert_eq!(rep2.files_dropped, 0);
        prop_assert_eq!(again.segments(Container::Ts).len(), idx.segments(Container::Ts).len());
        prop_assert_eq!(again.segments(Container::Cmaf).len(), idx.segments(Container::Cmaf).len());
        let _ = rep;
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A full disk (the kernel's ENOSPC, from `/dev/full` standing in for the next segment file)
/// is `DiskFull` with the metric label `disk_full`; the segments before it stay whole and a
/// restart recovers the log up to them.
#[test]
fn a_full_disk_fails_the_segment_and_keeps_the_earlier_ones() {
    if !std::path::Path::new("/dev/full").exists() {
        eprintln!("SKIP: no /dev/full on this system");
        return;
    }
    let dir = tmp("full");
    let (mut w, idx) = write_log(&dir, 3, None);
    std::os::unix::fs::symlink("/dev/full", dir.join(segment_file(Container::Ts, 3))).unwrap();
    let e = w
        .append_segment(Container::Ts, &seg_bytes(3), 180_000, 0, false, true, None)
        .unwrap_err();
    assert!(matches!(e, ArchiveError::DiskFull { .. }), "{e}");
    assert_eq!(e.label(), "disk_full");
    drop(w);
    let _ = std::fs::remove_file(dir.join(segment_file(Container::Ts, 3)));
    let (rec, _) = recover(&dir).unwrap();
    assert_eq!(rec.segments(Container::Ts), idx.segments(Container::Ts));
    assert_eq!(rec.segments(Container::Cmaf), idx.segments(Container::Cmaf));
    let _ = std::fs::remove_dir_all(&dir);
}
