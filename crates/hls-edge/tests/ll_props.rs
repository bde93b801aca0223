//! Properties of LL-HLS playlists over random timelines (RFC 8216bis §4.4.4.9): every listed
//! part is no longer than `PART-TARGET`; a segment's parts concatenate to the segment; part and
//! segment URIs are never reused for other bytes, across reconnects and playlist lives.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use hls_edge::{router, EdgeConfig};
use http::StatusCode;
use proptest::prelude::*;

/// One publish: segments of parts `(duration_90k, len)`, and whether it leaves mid-segment
/// with some parts of one more segment.
type Publish = (Vec<Vec<(u64, usize)>>, Vec<(u64, usize)>);

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest = &line[line.find(&format!("{name}="))? + name.len() + 1..];
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    Some(&rest[..rest.find(['"', ',']).unwrap_or(rest.len())])
}

async fn check(app: &axum::Router, seen: &mut HashMap<String, Bytes>) {
    let r = get(app, "/live/p/cmaf.m3u8").await;
    if r.status == StatusCode::NOT_FOUND {
        return;
    }
    let text = r.text().to_string();
    let part_target = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PART-INF:PART-TARGET="))
        .expect("PART-INF")
        .to_string();
    let target_ms: u64 = part_target.replace('.', "").parse().unwrap();
    assert_eq!(target_ms, 500, "PART-TARGET pinned");
    let mut parts: Vec<Bytes> = Vec::new();
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("#EXT-X-PART:") {
            let d_ms: u64 = attr(p, "DURATION")
                .unwrap()
                .replace('.', "")
                .parse()
                .unwrap();
            assert!(
                d_ms <= target_ms,
                "part of {d_ms} ms over PART-TARGET: {line}"
            );
            let uri = attr(p, "URI").unwrap();
            let body = get(app, &format!("/live/p/{uri}")).await;
            assert_eq!(body.status, StatusCode::OK, "{uri}");
            parts.push(body.body.clone());
            remember(seen, uri, body.body);
        } else if line.starts_with("seg-") {
            let body = get(app, &format!("/live/p/{line}")).await;
            assert_eq!(body.status, StatusCode::OK, "{line}");
            if !parts.is_empty() {
                assert_eq!(
                    body.body,
                    Bytes::from(parts.concat()),
                    "{line} vs its parts"
                );
            }
            parts.clear();
            remember(seen, line, body.body);
        }
    }
}

fn remember(seen: &mut HashMap<String, Bytes>, uri: &str, body: Bytes) {
    if let Some(old) = seen.insert(uri.to_string(), body.clone()) {
        assert_eq!(old, body, "{uri} reused for other bytes");
    }
}

fn run(publishes: Vec<Publish>, remove_between: Vec<bool>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let t0 = Instant::now();
        let cfg = EdgeConfig::default();
        let (grace, retention) = (cfg.grace_period, cfg.ended_retention);
        let s = store_at(cfg, t0);
        let app = router(s.store.clone());
        let mut seen = HashMap::new();
        let mut t = t0;
        let mut fill = 0u8;
        for (i, (segments, tail)) in publishes.into_iter().enumerate() {
            let h = s.publish_ll("live", "p");
            let mut parts_of = |list: &[(u64, usize)], t: &mut Instant, h: &TestHandle| {
                let unix = T0_UNIX_MS + (*t - t0).as_millis() as u64;
                let start = cmaf_start(false, unix);
                let mut total = 0;
                for (k, (d, len)) in list.iter().enumerate() {
                    fill = fill.wrapping_add(1);
                    h.part_at(&start, ll_part(fill, *len, *d, k == 0), *t);
                    *t += Duration::from_nanos(d * 100_000 / 9);
                    total += d;
                }
                (total, unix)
            };
            for seg in &segments {
                let (total, unix) = parts_of(seg, &mut t, &h);
                h.h.push_segment(ll_finish(total, unix)).unwrap();
                check(&app, &mut seen).await;
            }
            parts_of(&tail, &mut t, &h);
            check(&app, &mut seen).await;
            h.end_at(t);
            check(&app, &mut seen).await;
            if remove_between.get(i).copied().unwrap_or(false) {
                // Past grace and retention: the playlist is removed, the next publish starts
                // a new life (numbers go on).
                t += grace + Duration::from_secs(1);
                s.tick_at(t);
                t += retention + Duration::from_secs(1);
                s.tick_at(t);
                assert_eq!(
                    get(&app, "/live/p/cmaf.m3u8").await.status,
                    StatusCode::NOT_FOUND
                );
            }
        }
    });
}

fn part() -> impl Strategy<Value = (u64, usize)> {
    (1u64..=45_000, 1usize..300)
}

fn publish() -> impl Strategy<Value = Publish> {
    (
        prop::collection::vec(prop::collection::vec(part(), 1..6), 0..5),
        prop::collection::vec(part(), 0..4),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn parts_are_short_concatenate_to_segments_and_names_are_never_reused(
        publishes in prop::collection::vec(publish(), 1..4),
        remove_between in prop::collection::vec(any::<bool>(), 0..4),
    ) {
        run(publishes, remove_between);
    }
}
