//! Store internals: the total byte budget costs O(bodies dropped), not O(streams).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::*;
use crate::clock::SimClock;
use crate::stream::NewPart;

fn seg(len: usize, arrival_unix_ms: u64) -> NewSegment {
    NewSegment {
        container: Container::Ts,
        parts: vec![NewPart {
            bytes: Bytes::from(vec![0u8; len]),
            duration_90k: 180_000,
            independent: true,
            segment_target_reached: false,
        }],
        init: None,
        duration_90k: 180_000,
        discontinuity: false,
        independent: true,
        arrival_unix_ms,
        keyframe: None,
    }
}

/// 3000 streams fill the budget exactly; one more segment drops exactly one body (the listed
/// segment with the oldest program date-time, of whichever stream holds it) and locks one
/// stream core to do it. The scan it replaces locked all 3000 per body dropped.
#[test]
fn total_budget_enforcement_is_o_evicted() {
    const STREAMS: u64 = 3000;
    let t0 = Instant::now();
    let clock = Arc::new(SimClock::new(t0, SystemTime::UNIX_EPOCH));
    let store = Store::new(
        EdgeConfig {
            window_segments: 10,
            max_streams: STREAMS as usize,
            max_bytes_total: STREAMS * 2 * 100,
            max_bytes_per_stream: u64::MAX,
            ..EdgeConfig::default()
        },
        clock.clone(),
    );
    let params = PublishParams {
        target_duration_s: 2,
        part_target_ms: 500,
    };
    let mut handles = Vec::new();
    for i in 0..STREAMS {
        let h = store
            .begin_publish("live", &format!("s{i}"), params)
            .unwrap();
        // Stream 1234 has the oldest first segment.
        let base = if i == 1234 { 0 } else { 10_000 + i };
        h.push_segment(seg(100, base)).unwrap();
        h.push_segment(seg(100, base + 2000)).unwrap();
        handles.push(h);
    }
    assert_eq!(store.bytes_held(), STREAMS * 200);
    assert_eq!(store.inner.budget_core_locks.load(Ordering::Relaxed), 0);

    clock.advance(Duration::from_secs(2));
    handles[7].push_segment(seg(100, 50_000)).unwrap();
    assert_eq!(store.bytes_held(), STREAMS * 200);
    assert_eq!(store.inner.budget_core_locks.load(Ordering::Relaxed), 1);
    let victim = store.stream("live", "s1234").unwrap();
    assert_eq!((victim.segments, victim.media_sequence), (1, 1));
    assert_eq!(store.stream("live", "s7").unwrap().segments, 3);

    // A bigger body needs several: still one core per body dropped.
    handles[8].push_segment(seg(450, 60_000)).unwrap();
    assert!(store.bytes_held() <= STREAMS * 200);
    assert_eq!(store.inner.budget_core_locks.load(Ordering::Relaxed), 1 + 5);
}

fn playlist_text(store: &Store, stream: &str) -> String {
    let p = store.playlist("live", stream, Some(Container::Ts)).unwrap();
    String::from_utf8(p.body.to_vec()).unwrap()
}

/// A fleet node continues a playlist another node left off: a stream new here starts at the
/// resume numbers with the resumed timing and a discontinuity; an existing one jumps up (its
/// listed segments leave, numbers stay consecutive); a resume below the local numbers never
/// moves them back.
#[test]
fn resume_continues_another_producers_numbers() {
    let clock = Arc::new(SimClock::new(Instant::now(), SystemTime::UNIX_EPOCH));
    let store = Store::new(EdgeConfig::default(), clock.clone());
    let declared = PublishParams {
        target_duration_s: 4,
        part_target_ms: 1000,
    };
    let numbers = |msn, dseq, init| crate::rendition::Continuation {
        next_media_sequence: msn,
        discontinuity_sequence: dseq,
        next_init: init,
    };
    let resume = crate::media::Resume {
        target_duration_s: 2,
        part_target_ms: 500,
        renditions: PerContainer {
            ts: numbers(57, 3, 0),
            cmaf: numbers(57, 3, 9),
        },
    };
    let h = store
        .begin_publish_resuming("live", "r", declared, Some(resume.clone()))
        .unwrap();
    assert_eq!(h.push_segment(seg(10, 0)).unwrap(), 57);
    let text = playlist_text(&store, "r");
    assert!(text.contains("#EXT-X-TARGETDURATION:2\n"), "{text}");
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:57\n"), "{text}");
    assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:4\n"), "{text}");
    let point = h.resume_point();
    assert_eq!(point.renditions.ts.next_media_sequence, 58);
    assert_eq!(point.renditions.cmaf.next_init, 9);
    assert_eq!((point.target_duration_s, point.part_target_ms), (2, 500));

    // The stream went to another node and comes back further on: the local copy jumps.
    h.push_segment(seg(10, 2000)).unwrap();
    let mut ahead = resume.clone();
    ahead.renditions.ts = numbers(80, 5, 0);
    let h2 = store
        .begin_publish_resuming("live", "r", declared, Some(ahead))
        .unwrap();
    assert_eq!(h2.push_segment(seg(10, 9000)).unwrap(), 80);
    let text = playlist_text(&store, "r");
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:80\n"), "{text}");
    assert!(!text.contains("seg-57.ts"), "{text}");

    // A stale resume (numbers behind this node's) changes nothing.
    let h3 = store
        .begin_publish_resuming("live", "r", declared, Some(resume))
        .unwrap();
    assert_eq!(h3.push_segment(seg(10, 11_000)).unwrap(), 81);
}
