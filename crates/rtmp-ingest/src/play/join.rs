//! What a late joiner needs before live media: the stream's `onMetaData`, its video and audio
//! sequence headers (AVCDecoderConfigurationRecord, ISO/IEC 14496-15 §5.3.3.1;
//! AudioSpecificConfig, ISO/IEC 14496-3 §1.6.2.1) and, optionally, the group of pictures since
//! the last keyframe so playback starts at once (a "GOP cache"), bounded in bytes.
//!
//! Sans-IO: fed every tag of a publish, asked for the join sequence when a player subscribes.

use crate::{IngestTag, TagKind};

/// Per-stream state for late joiners.
#[derive(Debug, Default)]
pub struct JoinCache {
    metadata: Option<IngestTag>,
    video_header: Option<IngestTag>,
    audio_header: Option<IngestTag>,
    gop: Vec<IngestTag>,
    gop_bytes: usize,
    /// 0 disables the GOP cache.
    max_gop_bytes: usize,
    /// The GOP outgrew `max_gop_bytes`: nothing is cached until the next keyframe.
    gop_overflowed: bool,
    last_timestamp_ms: u32,
}

impl JoinCache {
    /// `max_gop_bytes` = 0 turns the GOP cache off (joiners then wait for the next keyframe).
    pub fn new(max_gop_bytes: usize) -> Self {
        Self {
            max_gop_bytes,
            ..Self::default()
        }
    }

    /// A new publisher of the same name: forget the previous one's headers and frames.
    pub fn reset(&mut self) {
        *self = Self::new(self.max_gop_bytes);
    }

    /// Records one tag of the publish (the `Bytes` are shared, not copied).
    pub fn push(&mut self, tag: &IngestTag) {
        self.last_timestamp_ms = tag.timestamp_ms;
        let header = tag.info.is_some_and(|i| i.is_sequence_header);
        let track0 = tag.info.is_none_or(|i| i.track_id == 0);
        match tag.kind {
            TagKind::Script => {
                if is_on_metadata(&tag.payload) {
                    self.metadata = Some(tag.clone());
                }
                return;
            }
            TagKind::Video if header && track0 => {
                self.video_header = Some(tag.clone());
                return;
            }
            TagKind::Audio if header && track0 => {
                self.audio_header = Some(tag.clone());
                return;
            }
            _ => {}
        }
        if self.max_gop_bytes == 0 || header {
            return;
        }
        let keyframe = tag.kind == TagKind::Video && tag.info.is_some_and(|i| i.is_keyframe);
        if keyframe {
            self.gop.clear();
            self.gop_bytes = 0;
            self.gop_overflowed = false;
        } else if self.gop.is_empty() || self.gop_overflowed {
            // Before the first keyframe a GOP cannot start.
            return;
        }
        if self.gop_bytes + tag.payload.len() > self.max_gop_bytes {
            self.gop.clear();
            self.gop_bytes = 0;
            self.gop_overflowed = true;
            return;
        }
        self.gop_bytes += tag.payload.len();
        self.gop.push(tag.clone());
    }

    /// Whether a video sequence header was seen (a video stream).
    pub fn has_video(&self) -> bool {
        self.video_header.is_some()
    }

    /// Bytes held by the GOP cache.
    pub fn gop_bytes(&self) -> usize {
        self.gop_bytes
    }

    /// The tags a joiner gets first: metadata, video and audio sequence headers (stamped with
    /// the timestamp the joiner starts at, so its clock never steps backwards), then the cached
    /// GOP (starting with a keyframe) if there is one.
    pub fn join_sequence(&self) -> Vec<IngestTag> {
        let start_ms = self
            .gop
            .first()
            .map_or(self.last_timestamp_ms, |t| t.timestamp_ms);
        let stamp = |t: &IngestTag| IngestTag {
            timestamp_ms: start_ms,
            ..t.clone()
        };
        let mut out: Vec<IngestTag> = [&self.metadata, &self.video_header, &self.audio_header]
            .into_iter()
            .flatten()
            .map(stamp)
            .collect();
        out.extend(self.gop.iter().cloned());
        out
    }
}

/// A script tag whose first AMF0 value is the string `onMetaData` (type 2, length 10).
pub fn is_on_metadata(payload: &[u8]) -> bool {
    payload.starts_with(b"\x02\x00\x0aonMetaData")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn tag(kind: TagKind, ts: u32, payload: &'static [u8]) -> IngestTag {
        let info = match kind {
            TagKind::Video => flv_tag::inspect(flv_tag::Media::Video, &Bytes::from_static(payload)),
            TagKind::Audio => flv_tag::inspect(flv_tag::Media::Audio, &Bytes::from_static(payload)),
            TagKind::Script => None,
        };
        IngestTag {
            kind,
            timestamp_ms: ts,
            payload: Bytes::from_static(payload),
            info,
        }
    }

    #[test]
    fn joiner_gets_metadata_headers_then_gop_from_keyframe() {
        let mut c = JoinCache::new(1 << 20);
        c.push(&tag(TagKind::Script, 0, b"\x02\x00\x0aonMetaData\x08"));
        c.push(&tag(TagKind::Video, 0, &[0x17, 0, 0, 0, 0]));
        c.push(&tag(TagKind::Audio, 0, &[0xAF, 0, 0x12, 0x10]));
        c.push(&tag(TagKind::Video, 0, &[0x17, 1, 0, 0, 0]));
        c.push(&tag(TagKind::Video, 33, &[0x27, 1, 0, 0, 0]));
        c.push(&tag(TagKind::Video, 2000, &[0x17, 1, 0, 0, 0]));
        c.push(&tag(TagKind::Audio, 2010, &[0xAF, 1, 0x21]));
        let seq = c.join_sequence();
        let heads: Vec<(TagKind, u32, u8, u8)> = seq
            .iter()
            .map(|t| (t.kind, t.timestamp_ms, t.payload[0], t.payload[1]))
            .collect();
        assert_eq!(
            heads,
            vec![
                (TagKind::Script, 2000, 0x02, 0x00),
                (TagKind::Video, 2000, 0x17, 0),
                (TagKind::Audio, 2000, 0xAF, 0),
                (TagKind::Video, 2000, 0x17, 1),
                (TagKind::Audio, 2010, 0xAF, 1),
            ]
        );
    }

    #[test]
    fn gop_cache_off_or_overflowing_gives_headers_only() {
        let mut off = JoinCache::new(0);
        let mut small = JoinCache::new(6);
        for c in [&mut off, &mut small] {
            c.push(&tag(TagKind::Video, 0, &[0x17, 0, 0, 0, 0]));
            c.push(&tag(TagKind::Video, 40, &[0x17, 1, 0, 0, 0]));
            c.push(&tag(TagKind::Video, 80, &[0x27, 1, 0, 0, 0]));
            let seq = c.join_sequence();
            assert_eq!(seq.len(), 1, "only the sequence header");
            assert_eq!(seq[0].timestamp_ms, 80);
        }
    }
}
