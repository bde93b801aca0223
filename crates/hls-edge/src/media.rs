//! What the edge knows about media: the containers it serves (RFC 8216bis §3.2 MPEG-2 Transport
//! Streams, §3.3 Fragmented MPEG-4), the producer's declarations for a publish, and typed stream
//! information (codecs per RFC 6381, resolution, frame rate, measured bandwidth) as a
//! multivariant playlist needs it (RFC 8216bis §4.4.6.2 `EXT-X-STREAM-INF` attributes).
//!
//! The edge never parses media: everything here is declared by the producer, except the
//! bandwidth, which the edge measures from the segment sizes and durations it stores.

use serde::Serialize;

/// A segment container, one rendition of a stream each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Container {
    /// MPEG-2 Transport Stream segments `seg-N.ts` (RFC 8216bis §3.2).
    Ts,
    /// Fragmented MPEG-4 / CMAF segments `seg-N.m4s` with init segments `init-N.mp4`
    /// (RFC 8216bis §3.3, ISO/IEC 23000-19).
    Cmaf,
}

impl Container {
    pub const ALL: [Container; 2] = [Container::Ts, Container::Cmaf];

    /// The name used in settings, metric labels and the API.
    pub fn name(self) -> &'static str {
        match self {
            Container::Ts => "ts",
            Container::Cmaf => "cmaf",
        }
    }

    /// File extension of a media segment (without the dot).
    pub fn segment_extension(self) -> &'static str {
        match self {
            Container::Ts => "ts",
            Container::Cmaf => "m4s",
        }
    }
}

impl std::fmt::Display for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One value per container, indexable by [`Container`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PerContainer<T> {
    pub ts: T,
    pub cmaf: T,
}

impl<T> PerContainer<T> {
    pub fn get(&self, c: Container) -> &T {
        match c {
            Container::Ts => &self.ts,
            Container::Cmaf => &self.cmaf,
        }
    }

    pub fn get_mut(&mut self, c: Container) -> &mut T {
        match c {
            Container::Ts => &mut self.ts,
            Container::Cmaf => &mut self.cmaf,
        }
    }

    /// `(container, value)` for both containers, TS first.
    pub fn iter(&self) -> impl Iterator<Item = (Container, &T)> {
        Container::ALL.into_iter().map(move |c| (c, self.get(c)))
    }

    pub fn map<U>(&self, mut f: impl FnMut(Container, &T) -> U) -> PerContainer<U> {
        PerContainer {
            ts: f(Container::Ts, &self.ts),
            cmaf: f(Container::Cmaf, &self.cmaf),
        }
    }
}

impl<T> std::ops::Index<Container> for PerContainer<T> {
    type Output = T;
    fn index(&self, c: Container) -> &T {
        self.get(c)
    }
}

impl<T> std::ops::IndexMut<Container> for PerContainer<T> {
    fn index_mut(&mut self, c: Container) -> &mut T {
        self.get_mut(c)
    }
}

/// What the producer declares when a publish begins ([`crate::Store::begin_publish`]). The
/// edge never feeds anything back: the producer's cut policy owns these values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishParams {
    /// `#EXT-X-TARGETDURATION` the producer cuts for (RFC 8216bis §4.4.3.1). The first declared
    /// value is kept for the playlist's whole life; a later publish that declares another value
    /// is logged and the old value stays.
    pub target_duration_s: u32,
    /// LL-HLS part target (`#EXT-X-PART-INF:PART-TARGET`, RFC 8216bis §4.4.3.7), kept like the
    /// target duration. Parts are never longer than this.
    pub part_target_ms: u32,
}

/// Where a publish continues a playlist another producer (another node of a fleet) left off:
/// [`crate::Store::begin_publish_resuming`] takes it, [`crate::StreamHandle::resume_point`] gives
/// it. Numbers only grow: each is raised to at least these values, never lowered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    /// Used (instead of the declared values) when the playlist is new on this node.
    pub target_duration_s: u32,
    pub part_target_ms: u32,
    pub renditions: PerContainer<crate::rendition::Continuation>,
}

/// Video codec of a rendition (the sample entry / stream type the producer wrote).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoCodec {
    H264,
    Hevc,
    Av1,
    Vp9,
}

/// Audio codec of a rendition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioCodec {
    Aac,
    Mp3,
    Opus,
}

/// The video track a playlist carries.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VideoInfo {
    pub codec: VideoCodec,
    pub width: u32,
    pub height: u32,
    /// Frames per second, if known (`FRAME-RATE`).
    pub frame_rate: Option<f64>,
}

/// The audio track a playlist carries.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AudioInfo {
    pub codec: AudioCodec,
    pub sample_rate_hz: u32,
    pub channels: u8,
    /// RFC 5646 language tag from the track's metadata (`EXT-X-MEDIA` `LANGUAGE`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Human-readable track name from the metadata (`EXT-X-MEDIA` `NAME`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Typed description of one rendition (one container of a stream), declared by the producer
/// with [`crate::StreamHandle::set_media`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StreamInfo {
    /// RFC 6381 `CODECS` of this container's segments, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: Option<String>,
    pub video: Option<VideoInfo>,
    pub audio: Option<AudioInfo>,
}

impl StreamInfo {
    /// True when the rendition has audio and no video (CMAF segments are then `audio/mp4`).
    pub fn is_audio_only(&self) -> bool {
        self.video.is_none() && self.audio.is_some()
    }
}

/// Bitrates the edge measured from the segments it stored (RFC 8216bis §4.4.6.2 `BANDWIDTH` and
/// `AVERAGE-BANDWIDTH`), bits per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Bandwidth {
    /// Highest segment bitrate of this playlist life (segment bytes x 8 / segment duration).
    pub peak_bps: u64,
    /// Bytes x 8 / duration over the segments currently listed.
    pub average_bps: u64,
}

/// Bits per second of `len_bytes` over `duration_90k` (0 for an empty duration).
pub(crate) fn bitrate_bps(len_bytes: u64, duration_90k: u64) -> u64 {
    if duration_90k == 0 {
        return 0;
    }
    let bps = u128::from(len_bytes) * 8 * 90_000 / u128::from(duration_90k);
    u64::try_from(bps).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrates() {
        assert_eq!(bitrate_bps(250_000, 180_000), 1_000_000);
        assert_eq!(bitrate_bps(1, 0), 0);
        assert_eq!(bitrate_bps(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn per_container_indexing() {
        let mut p = PerContainer { ts: 1, cmaf: 2 };
        p[Container::Cmaf] += 1;
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            [(Container::Ts, &1), (Container::Cmaf, &3)]
        );
    }
}
