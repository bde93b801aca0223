//! Shared helpers for the hls-edge integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use hls_edge::{EdgeConfig, NewSegment, Store};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// 2026-05-01T12:00:00.000Z
pub const T0_UNIX_MS: u64 = 1_777_636_800_000;

pub fn store_at(cfg: EdgeConfig, t0: Instant) -> Store {
    Store::with_clock_anchor(
        cfg,
        t0,
        SystemTime::UNIX_EPOCH + Duration::from_millis(T0_UNIX_MS),
    )
}

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// A segment of `len` bytes (two chunks) with a recognisable fill byte.
pub fn segment(fill: u8, len: usize, duration_90k: u64, arrival_unix_ms: u64) -> NewSegment {
    let half = len / 2;
    NewSegment {
        chunks: vec![
            Bytes::from(vec![fill; half]),
            Bytes::from(vec![fill.wrapping_add(1); len - half]),
        ],
        duration_90k,
        discontinuity: false,
        independent: true,
        target_duration_s: 2,
        arrival_unix_ms,
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
