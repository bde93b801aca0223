//! Sans-IO building blocks for serving live streams to RTMP players (RTMP §7.2.2.1 and the
//! FLV tag layout of the Adobe FLV File Format Specification v10.1 §E.4): what a late joiner
//! gets first ([`join::JoinCache`]) and the time-bounded per-player queue with its
//! slow-consumer drop order ([`queue::PlayQueue`]). The player's protocol state (the replies
//! to `play`, `pause`, `seek`, ...) lives in [`crate::session`].

pub mod join;
pub mod queue;

pub use join::JoinCache;
pub use queue::{PlayQueue, PlayQueueLimits, PushOutcome};
