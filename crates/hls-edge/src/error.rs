//! The edge's one error type and its mapping to HTTP statuses (RFC 9110 §15). Response bodies are
//! fixed texts: nothing from the request and nothing internal is ever echoed.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// Everything that can go wrong at the edge, grouped by who is at fault.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EdgeError {
    // --- the client asked for something malformed ---
    /// A path segment is not `[A-Za-z0-9._~-]{1,128}` after percent-decoding, or is `.`/`..`.
    #[error("invalid name in request path")]
    BadName,
    /// The request target is longer than the edge accepts.
    #[error("request URI too long")]
    UriTooLong,
    /// Only GET, HEAD and OPTIONS are served.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A byte range that starts beyond the end of the segment.
    #[error("range not satisfiable (resource is {len_bytes} bytes)")]
    RangeNotSatisfiable { len_bytes: u64 },
    /// A malformed `_HLS_*` delivery directive, `_HLS_part` without `_HLS_msn`, or a blocking
    /// request too far ahead of the playlist (RFC 8216bis §6.2.5.2).
    #[error("bad delivery directive")]
    BadDirective,

    // --- the client asked for something that is not (or no longer) here ---
    #[error("not found")]
    NotFound,

    // --- the edge cannot answer now ---
    /// A blocking request waited three target durations (RFC 8216bis §6.2.5.2).
    #[error("blocking request timed out")]
    BlockingTimeout,
    /// `max_waiting_requests_per_stream` requests already wait on this stream.
    #[error("too many waiting requests on this stream")]
    TooManyWaiting,

    // --- the publisher side asked for something the edge refuses ---
    /// `max_streams` playlists are already held.
    #[error("too many streams (limit {max_streams})")]
    TooManyStreams { max_streams: usize },
    /// App or stream name unusable in a URL path segment.
    #[error("invalid app or stream name for HLS")]
    InvalidStreamName,
    /// A push from a publisher that no longer owns the stream (taken over, or shut down).
    #[error("this publisher no longer owns the stream")]
    NotPublishing,
    /// A CMAF segment pushed without its init segment.
    #[error("CMAF segment without an init segment")]
    MissingInit,
}

impl EdgeError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            EdgeError::BadName => StatusCode::BAD_REQUEST,
            EdgeError::UriTooLong => StatusCode::URI_TOO_LONG,
            EdgeError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            EdgeError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            EdgeError::NotFound => StatusCode::NOT_FOUND,
            EdgeError::BadDirective => StatusCode::BAD_REQUEST,
            EdgeError::BlockingTimeout | EdgeError::TooManyWaiting => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            EdgeError::TooManyStreams { .. } => StatusCode::SERVICE_UNAVAILABLE,
            EdgeError::InvalidStreamName => StatusCode::BAD_REQUEST,
            EdgeError::NotPublishing | EdgeError::MissingInit => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Fixed, request-independent body text.
    fn body(&self) -> &'static str {
        match self {
            EdgeError::BadName => "bad request\n",
            EdgeError::UriTooLong => "request URI too long\n",
            EdgeError::MethodNotAllowed => "method not allowed\n",
            EdgeError::RangeNotSatisfiable { .. } => "range not satisfiable\n",
            EdgeError::NotFound => "not found\n",
            EdgeError::BadDirective => "bad request\n",
            EdgeError::BlockingTimeout | EdgeError::TooManyWaiting => "service unavailable\n",
            EdgeError::TooManyStreams { .. } => "service unavailable\n",
            EdgeError::InvalidStreamName => "bad request\n",
            EdgeError::NotPublishing | EdgeError::MissingInit => "internal server error\n",
        }
    }
}

/// Bare conversion (status + fixed text). The router adds cache, CORS and nosniff headers.
impl IntoResponse for EdgeError {
    fn into_response(self) -> Response {
        let mut r = (self.status(), self.body()).into_response();
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    }
}
