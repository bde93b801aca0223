//! Test support shared by the workspace's tests and by `xtask` (never a dependency of a shipped
//! crate; the h2 pattern of a separate test-support crate).
//!
//! * [`gate`]: the one tool gate. A test that needs a real peer (ffmpeg, GStreamer, Chromium,
//!   Varnish, ...) asks [`require_tool`]; a missing tool fails the test when `CI` is `true` or
//!   `1`, and otherwise skips it *visibly*: `SKIP:` on stderr and a line in the file named by
//!   [`SKIP_LOG_ENV`], which `cargo xtask test` counts and lists at the end of the run.
//! * [`redis`]: a real `redis-server` on a free loopback port, stoppable and restartable.
//! * `rtmp` (feature `rtmp`): a test-side RTMP publish client and AMF0 reader that reuse the
//!   project's own codec (`rtmp_ingest::{amf0, chunk, message}`) instead of private copies.

pub mod gate;
pub mod redis;
#[cfg(feature = "rtmp")]
pub mod rtmp;

pub use gate::{
    ffmpeg9, find_ffmpeg9, in_ci, require, require_command, require_tool, skip, SKIP_LOG_ENV,
};
