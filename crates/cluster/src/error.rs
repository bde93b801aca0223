//! The cluster crate's one error type, grouped by who is at fault.

/// A registry operation that did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The registry URL is not a valid `redis://` URL (configuration).
    #[error("invalid registry URL: {0}")]
    InvalidUrl(String),
    /// The registry refused or dropped the command (connection refused, reset, script error).
    #[error("registry error during {op}: {source}")]
    Redis {
        op: &'static str,
        #[source]
        source: redis::RedisError,
    },
    /// No answer within the configured operation timeout.
    #[error("registry timed out during {op} after {timeout_ms} ms")]
    Timeout { op: &'static str, timeout_ms: u64 },
    /// The registry answered something this version does not understand.
    #[error("unexpected registry answer to {op}: {detail}")]
    Malformed { op: &'static str, detail: String },
}

impl ClusterError {
    /// Metric label of the operation that failed.
    pub fn op(&self) -> &'static str {
        match self {
            ClusterError::InvalidUrl(_) => "connect",
            ClusterError::Redis { op, .. }
            | ClusterError::Timeout { op, .. }
            | ClusterError::Malformed { op, .. } => op,
        }
    }
}
