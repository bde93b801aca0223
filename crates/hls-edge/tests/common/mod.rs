//! Shared helpers for the hls-edge integration tests: a store on a simulated clock, segments
//! with recognisable bytes, and `oneshot` requests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use hls_edge::{
    Container, EdgeConfig, EdgeError, NewPart, NewSegment, PerContainer, PublishParams,
    SegmentStart, SimClock, Store, StreamHandle, StreamInfo,
};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// 2026-05-01T12:00:00.000Z
pub const T0_UNIX_MS: u64 = 1_777_636_800_000;

/// A store and the simulated clock it reads.
#[derive(Clone)]
pub struct TestStore {
    pub store: Store,
    pub clock: Arc<SimClock>,
}

impl std::ops::Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl TestStore {
    /// One janitor pass at `at`.
    pub fn tick_at(&self, at: Instant) {
        self.clock.set(at);
        self.store.tick();
    }

    pub fn end_all_at(&self, at: Instant) {
        self.clock.set(at);
        self.store.end_all();
    }

    /// A publish with [`ll_params`].
    pub fn publish_ll(&self, app: &str, stream: &str) -> TestHandle {
        TestHandle {
            h: self.store.begin_publish(app, stream, ll_params()).unwrap(),
            clock: self.clock.clone(),
        }
    }

    pub fn publish(&self, app: &str, stream: &str, target_duration_s: u32) -> TestHandle {
        TestHandle {
            h: self
                .store
                .begin_publish(app, stream, params(target_duration_s))
                .unwrap(),
            clock: self.clock.clone(),
        }
    }
}

/// A publisher's handle with its pushes at chosen times.
pub struct TestHandle {
    pub h: StreamHandle,
    pub clock: Arc<SimClock>,
}

impl TestHandle {
    /// Pushes at `at`; panics if the store refuses. Returns the media sequence number.
    pub fn push_at(&self, seg: NewSegment, at: Instant) -> u64 {
        self.try_push_at(seg, at).expect("segment refused")
    }

    pub fn try_push_at(&self, seg: NewSegment, at: Instant) -> Result<u64, EdgeError> {
        self.clock.set(at);
        self.h.push_segment(seg)
    }

    pub fn end_at(self, at: Instant) {
        self.clock.set(at);
        self.h.end();
    }

    pub fn set_media(&self, ts: Option<StreamInfo>, cmaf: Option<StreamInfo>) {
        self.h.set_media(PerContainer { ts, cmaf });
    }
}

pub fn params(target_duration_s: u32) -> PublishParams {
    PublishParams {
        target_duration_s,
        part_target_ms: 500,
    }
}

pub fn store_at(cfg: EdgeConfig, t0: Instant) -> TestStore {
    let clock = Arc::new(SimClock::new(
        t0,
        SystemTime::UNIX_EPOCH + Duration::from_millis(T0_UNIX_MS),
    ));
    TestStore {
        store: Store::new(cfg, clock.clone()),
        clock,
    }
}

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Parts from chunks, the duration spread evenly (the last part takes the remainder).
pub fn parts(chunks: Vec<Bytes>, duration_90k: u64) -> Vec<NewPart> {
    let n = chunks.len().max(1) as u64;
    let each = duration_90k / n;
    let count = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| NewPart {
            bytes,
            duration_90k: if i + 1 == count {
                duration_90k - each * (n - 1)
            } else {
                each
            },
            independent: i == 0,
            segment_target_reached: false,
        })
        .collect()
}

/// A TS segment of `len` bytes (two parts) with a recognisable fill byte.
pub fn segment(fill: u8, len: usize, duration_90k: u64, arrival_unix_ms: u64) -> NewSegment {
    let half = len / 2;
    let chunks = vec![
        Bytes::from(vec![fill; half]),
        Bytes::from(vec![fill.wrapping_add(1); len - half]),
    ];
    NewSegment {
        container: Container::Ts,
        parts: parts(chunks, duration_90k),
        init: None,
        duration_90k,
        discontinuity: false,
        independent: true,
        arrival_unix_ms,
        keyframe: None,
    }
}

/// The same as a CMAF segment needing `init`.
pub fn cmaf_segment(
    fill: u8,
    len: usize,
    duration_90k: u64,
    arrival_unix_ms: u64,
    init: &'static [u8],
) -> NewSegment {
    NewSegment {
        container: Container::Cmaf,
        init: Some(Bytes::from_static(init)),
        ..segment(fill, len, duration_90k, arrival_unix_ms)
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

pub async fn request(router: &Router, method: &str, uri: &str, headers: &[(&str, &str)]) -> Reply {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = router
        .clone()
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn get(router: &Router, uri: &str) -> Reply {
    request(router, "GET", uri, &[]).await
}

/// LL-HLS timelines: a 2 s target duration and 0.5 s part target.
pub fn ll_params() -> PublishParams {
    PublishParams {
        target_duration_s: 2,
        part_target_ms: 500,
    }
}

pub const INIT: &[u8] = b"init-bytes";

/// The start of a CMAF segment (for its first part).
pub fn cmaf_start(discontinuity: bool, arrival_unix_ms: u64) -> SegmentStart {
    SegmentStart {
        container: Container::Cmaf,
        init: Some(Bytes::from_static(INIT)),
        discontinuity,
        arrival_unix_ms,
    }
}

/// A part of `len` bytes of `fill`.
pub fn ll_part(fill: u8, len: usize, duration_90k: u64, independent: bool) -> NewPart {
    NewPart {
        bytes: Bytes::from(vec![fill; len]),
        duration_90k,
        independent,
        segment_target_reached: false,
    }
}

/// Completes the open CMAF segment (its parts were pushed).
pub fn ll_finish(duration_90k: u64, arrival_unix_ms: u64) -> NewSegment {
    NewSegment {
        container: Container::Cmaf,
        parts: Vec::new(),
        init: Some(Bytes::from_static(INIT)),
        duration_90k,
        discontinuity: false,
        independent: true,
        arrival_unix_ms,
        keyframe: None,
    }
}

impl TestHandle {
    /// Pushes a part at `at`.
    pub fn part_at(&self, start: &SegmentStart, part: NewPart, at: Instant) {
        self.clock.set(at);
        self.h.push_part(start, part).expect("part refused");
    }

    /// A whole LL segment at 2 s per segment from `t0`: `n` parts of 0.5 s (the last one says
    /// the target is reached), then completion. Returns its media sequence number.
    pub fn ll_segment(&self, t0: Instant, index: u64, n: u32, fill: u8) -> u64 {
        let arrival = T0_UNIX_MS + index * 2000;
        let start = cmaf_start(false, arrival);
        for p in 0..n {
            let at = t0 + Duration::from_millis(index * 2000 + u64::from(p) * 500);
            let mut part = ll_part(fill.wrapping_add(p as u8), 100 + p as usize, 45_000, p == 0);
            part.segment_target_reached = p + 1 == n;
            self.part_at(&start, part, at);
        }
        self.clock
            .set(t0 + Duration::from_millis(index * 2000 + u64::from(n) * 500));
        self.h
            .push_segment(ll_finish(45_000 * u64::from(n), arrival))
            .expect("segment refused")
    }
}
