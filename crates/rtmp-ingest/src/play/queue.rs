//! The per-player queue between the fan-out and a player's connection, bounded in media time
//! and bytes, with the slow-consumer drop order of a live RTMP server (video frame types from
//! the FLV tag header, Adobe FLV File Format Specification v10.1 §E.4.3.1: 1 key, 2 inter,
//! 3 disposable inter).
//!
//! ```text
//!  backlog (newest queued timestamp - oldest queued timestamp)
//!  0 ──────── drop_disposable_ms ──────── drop_video_ms ──────── hard_cap_ms ──▶
//!   everything     disposable frames         all video until        overflow:
//!   is queued      are dropped               the next keyframe      disconnect
//!                                            (audio still queued)
//! ```
//!
//! Sequence headers and script data are never dropped; the queued bytes have a hard cap of
//! their own, since a backlog in milliseconds says nothing about bytes when a frame may be
//! 16 MiB. Sans-IO: no clock, only the tags' own timestamps.

use std::collections::VecDeque;

use crate::{IngestTag, TagKind};

/// Limits of one player's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlayQueueLimits {
    /// From this backlog on, disposable inter frames are dropped.
    pub drop_disposable_ms: u32,
    /// From this backlog on, video is dropped until the next keyframe (audio is kept).
    pub drop_video_ms: u32,
    /// Above this backlog the player is too slow: [`PushOutcome::Overflow`].
    pub hard_cap_ms: u32,
    /// Above this many queued payload bytes: [`PushOutcome::Overflow`].
    pub max_bytes: usize,
}

impl Default for PlayQueueLimits {
    fn default() -> Self {
        Self {
            drop_disposable_ms: 1_000,
            drop_video_ms: 2_000,
            hard_cap_ms: 10_000,
            max_bytes: 16 * 1024 * 1024,
        }
    }
}

/// What [`PlayQueue::push`] did with a tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    Queued,
    /// Dropped by the slow-consumer policy (counted in [`PlayQueue::dropped`]).
    Dropped,
    /// The queue is over a hard cap: disconnect the player. The tag was not queued.
    Overflow,
}

/// FLV video frame type 3: a frame no other frame references.
const FRAME_TYPE_DISPOSABLE: u8 = 3;

/// Bounded FIFO of tags for one player.
#[derive(Debug)]
pub struct PlayQueue {
    limits: PlayQueueLimits,
    tags: VecDeque<IngestTag>,
    bytes: usize,
    /// Video is skipped until a keyframe arrives (set when an inter frame was dropped).
    skip_video_until_key: bool,
    dropped: u64,
    overflowed: bool,
}

impl PlayQueue {
    pub fn new(limits: PlayQueueLimits) -> Self {
        Self {
            limits,
            tags: VecDeque::new(),
            bytes: 0,
            skip_video_until_key: false,
            dropped: 0,
            overflowed: false,
        }
    }

    /// Media time between the oldest and the newest queued media tag, in ms (timestamps are
    /// u32 ms that wrap; a backwards step counts as no backlog).
    pub fn backlog_ms(&self) -> u32 {
        let mut media = self.tags.iter().filter(|t| t.kind != TagKind::Script);
        let Some(first) = media.next() else {
            return 0;
        };
        let last = self
            .tags
            .iter()
            .rev()
            .find(|t| t.kind != TagKind::Script)
            .unwrap_or(first);
        let d = last.timestamp_ms.wrapping_sub(first.timestamp_ms);
        if d > u32::MAX / 2 {
            0
        } else {
            d
        }
    }

    pub fn queued_bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// Tags dropped by the policy so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether a hard cap was ever exceeded.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Offers one tag; the payload `Bytes` is shared, never copied.
    pub fn push(&mut self, tag: &IngestTag) -> PushOutcome {
        if self.overflowed {
            return PushOutcome::Overflow;
        }
        let header = tag.info.is_some_and(|i| i.is_sequence_header);
        if tag.kind == TagKind::Video && !header {
            let keyframe = tag.info.is_some_and(|i| i.is_keyframe);
            if keyframe {
                self.skip_video_until_key = false;
            } else if self.skip_video_until_key {
                return self.drop_one();
            } else {
                let backlog = self.backlog_with(tag.timestamp_ms);
                let frame_type = tag.payload.first().map_or(0, |b| (b >> 4) & 0x07);
                if backlog >= self.limits.drop_video_ms {
                    self.skip_video_until_key = true;
                    return self.drop_one();
                }
                if backlog >= self.limits.drop_disposable_ms && frame_type == FRAME_TYPE_DISPOSABLE
                {
                    return self.drop_one();
                }
            }
        }
        let bytes = self.bytes.saturating_add(tag.payload.len());
        if bytes > self.limits.max_bytes
            || (tag.kind != TagKind::Script
                && self.backlog_with(tag.timestamp_ms) > self.limits.hard_cap_ms)
        {
            self.overflowed = true;
            return PushOutcome::Overflow;
        }
        self.bytes = bytes;
        self.tags.push_back(tag.clone());
        PushOutcome::Queued
    }

    fn drop_one(&mut self) -> PushOutcome {
        self.dropped += 1;
        PushOutcome::Dropped
    }

    /// The backlog if a media tag with `timestamp_ms` were queued now.
    fn backlog_with(&self, timestamp_ms: u32) -> u32 {
        let Some(first) = self.tags.iter().find(|t| t.kind != TagKind::Script) else {
            return 0;
        };
        let d = timestamp_ms.wrapping_sub(first.timestamp_ms);
        if d > u32::MAX / 2 {
            0
        } else {
            d
        }
    }

    /// The oldest queued tag.
    pub fn pop(&mut self) -> Option<IngestTag> {
        let tag = self.tags.pop_front()?;
        self.bytes = self.bytes.saturating_sub(tag.payload.len());
        Some(tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use flv_tag::TagInfo;

    fn video(ts: u32, frame_type: u8, header: bool) -> IngestTag {
        let payload = Bytes::from(vec![(frame_type << 4) | 7, u8::from(!header), 0, 0, 0]);
        IngestTag {
            kind: TagKind::Video,
            timestamp_ms: ts,
            info: flv_tag::inspect(flv_tag::Media::Video, &payload),
            payload,
        }
    }

    fn audio(ts: u32) -> IngestTag {
        let payload = Bytes::from_static(&[0xAF, 1, 0x21]);
        IngestTag {
            kind: TagKind::Audio,
            timestamp_ms: ts,
            info: flv_tag::inspect(flv_tag::Media::Audio, &payload),
            payload,
        }
    }

    fn limits() -> PlayQueueLimits {
        PlayQueueLimits {
            drop_disposable_ms: 100,
            drop_video_ms: 200,
            hard_cap_ms: 1000,
            max_bytes: 1 << 20,
        }
    }

    #[test]
    fn drop_order_disposable_then_video_until_keyframe_keeping_audio() {
        let mut q = PlayQueue::new(limits());
        assert_eq!(q.push(&video(0, 1, true)), PushOutcome::Queued);
        assert_eq!(q.push(&video(0, 1, false)), PushOutcome::Queued);
        assert_eq!(q.push(&video(50, 3, false)), PushOutcome::Queued);
        // Backlog 150 ms: disposable frames go, inter frames stay.
        assert_eq!(q.push(&video(150, 3, false)), PushOutcome::Dropped);
        assert_eq!(q.push(&video(150, 2, false)), PushOutcome::Queued);
        // Backlog 250 ms: an inter frame is dropped and video waits for a keyframe.
        assert_eq!(q.push(&video(250, 2, false)), PushOutcome::Dropped);
        assert_eq!(q.push(&audio(260)), PushOutcome::Queued);
        assert_eq!(q.push(&video(270, 2, false)), PushOutcome::Dropped);
        // Sequence headers are never dropped.
        assert_eq!(q.push(&video(270, 1, true)), PushOutcome::Queued);
        assert_eq!(q.push(&video(300, 1, false)), PushOutcome::Queued);
        assert_eq!(q.dropped(), 3);
        // The reader catches up: everything queued comes out in order.
        let mut last = 0;
        while let Some(t) = q.pop() {
            assert!(t.timestamp_ms >= last);
            last = t.timestamp_ms;
        }
        assert_eq!(q.queued_bytes(), 0);
        assert_eq!(q.push(&video(310, 2, false)), PushOutcome::Queued);
    }

    #[test]
    fn hard_caps_overflow_in_time_and_bytes() {
        let mut q = PlayQueue::new(limits());
        assert_eq!(q.push(&audio(0)), PushOutcome::Queued);
        assert_eq!(q.push(&audio(1000)), PushOutcome::Queued);
        assert_eq!(q.push(&audio(1001)), PushOutcome::Overflow);
        assert!(q.overflowed());
        assert_eq!(q.push(&audio(1002)), PushOutcome::Overflow);

        let mut q = PlayQueue::new(PlayQueueLimits {
            max_bytes: 8,
            ..limits()
        });
        assert_eq!(q.push(&audio(0)), PushOutcome::Queued);
        assert_eq!(q.push(&audio(1)), PushOutcome::Queued);
        assert_eq!(q.push(&audio(2)), PushOutcome::Overflow);
    }

    #[test]
    fn shares_payload_bytes() {
        let mut q = PlayQueue::new(limits());
        let tag = video(0, 1, false);
        q.push(&tag);
        let out = q.pop().unwrap();
        assert_eq!(out.payload.as_ptr(), tag.payload.as_ptr());
        let _: Option<TagInfo> = out.info;
    }
}
