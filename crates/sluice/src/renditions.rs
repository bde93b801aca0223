//! Remuxer output as edge renditions: the typed media declaration of a rendition
//! (RFC 8216bis §4.4.6.2 `EXT-X-STREAM-INF` needs codecs, resolution, frame rate), and the video
//! tracks of an Enhanced RTMP v2 multitrack publish ("Multitrack" in the E-RTMP v2 spec) as
//! renditions of one group (RFC 8216bis §6.2.4).
//!
//! Multitrack: as soon as a publish to `APP/NAME` carries a second video track id, every video
//! track `K` gets its own remuxer (`RemuxConfig::video_track`, each with its own cut on that
//! track's keyframes and both writers, video only: see Audio below) writing the edge
//! stream `APP/NAME~vK`; the edge groups them (`hls_edge::group`) so `APP/NAME/index.m3u8` and
//! `cmaf.m3u8` become their multivariant playlists. The publish's own remuxer keeps running for
//! the stream statistics but no longer lists segments under `APP/NAME`. A track's remuxer starts
//! at that track's first tag, after a replay of the header tags seen so far (metadata and
//! sequence headers, bounded by count and bytes), so it never misses the audio configuration.
//! CMAF parts go to the edge one by one as each track's remuxer makes them, as for a single
//! publish, so every `NAME~vK/cmaf.m3u8` is LL-HLS (parts, preload hint, blocking reload) and
//! reports its siblings (`EXT-X-RENDITION-REPORT`, RFC 8216bis §4.4.5.4); TS segments are handed
//! over whole.
//!
//! Audio: every audio track `K` of a multitrack publish becomes the audio-only rendition
//! `APP/NAME~aK` (`RemuxConfig::media` = `AudioOnly`, cut on the lowest video track's keyframes
//! so its segment N covers the same time as the video's), listed as the group's
//! `EXT-X-MEDIA:TYPE=AUDIO` renditions; the video renditions are then video-only and carry
//! `AUDIO=` (RFC 8216bis §4.4.6.1-2). Audio tracks that appear after the group formed join it.

use std::sync::Arc;

use remux::{FlvTag, TagKind};
use rtmp_ingest::flv_tag::{self, Media, PacketKind};

/// Header tags kept for a late track's remuxer, at most this many...
const MAX_HEADER_TAGS: usize = 32;
/// ...and this many bytes (sequence headers are a few hundred bytes; metadata a few KiB).
const MAX_HEADER_BYTES: usize = 256 * 1024;
/// Default of `hls.max_renditions_per_group`: video tracks of one publish written as renditions;
/// further track ids are ignored (each costs a remuxer that reads every tag of the publish, so a
/// publisher cannot multiply the work beyond the setting).
pub(crate) const DEFAULT_MAX_TRACK_RENDITIONS: usize = 8;

pub(crate) fn edge_container(c: remux::Container) -> hls_edge::Container {
    match c {
        remux::Container::Ts => hls_edge::Container::Ts,
        remux::Container::Cmaf => hls_edge::Container::Cmaf,
    }
}

/// The edge's typed description of what the remuxer produces.
pub(crate) fn edge_info(c: &remux::CodecInfo) -> hls_edge::StreamInfo {
    use hls_edge::{AudioCodec, VideoCodec};
    let video = c.video.as_ref().and_then(|v| {
        let codec = match v.codec {
            "h264" => VideoCodec::H264,
            "hevc" => VideoCodec::Hevc,
            "av1" => VideoCodec::Av1,
            "vp9" => VideoCodec::Vp9,
            _ => return None,
        };
        Some(hls_edge::VideoInfo {
            codec,
            width: v.width,
            height: v.height,
            frame_rate: v.frame_rate,
        })
    });
    let audio = c.audio.as_ref().and_then(|a| {
        let codec = match a.codec {
            "aac" => AudioCodec::Aac,
            "mp3" => AudioCodec::Mp3,
            "opus" => AudioCodec::Opus,
            _ => return None,
        };
        Some(hls_edge::AudioInfo {
            codec,
            sample_rate_hz: a.sample_rate_hz,
            channels: a.channels,
            language: None,
            name: None,
        })
    });
    hls_edge::StreamInfo {
        codecs: Some(c.codecs.clone()),
        video,
        audio,
    }
}

/// One track of a multitrack publish, written as the edge stream `NAME~vK` (video) or
/// `NAME~aK` (audio).
struct TrackRendition {
    media: Media,
    track_id: u8,
    remuxer: remux::Remuxer,
    handle: Option<hls_edge::StreamHandle>,
    cmaf_init: Option<bytes::Bytes>,
    /// Bytes of the open CMAF segment's parts the edge took (LL-HLS).
    cmaf_part_bytes: usize,
    declared: hls_edge::PerContainer<Option<Arc<remux::CodecInfo>>>,
}

impl TrackRendition {
    fn drain(&mut self) {
        while let Some(out) = self.remuxer.poll_output() {
            match out {
                remux::RemuxOutput::Init(i) => {
                    // Declared before the first part, so parts get the right content type.
                    self.declare(remux::Container::Cmaf, &i.codec);
                    self.cmaf_init = Some(i.bytes);
                }
                remux::RemuxOutput::Part(p) if p.container == remux::Container::Cmaf => {
                    self.push_cmaf_part(p)
                }
                remux::RemuxOutput::Segment(seg) => self.publish(seg),
                // TS parts are the chunks of their segment, handed over with it; CMAF parts go
                // whole (their chunks are not streamed for track renditions yet).
                remux::RemuxOutput::Part(_)
                | remux::RemuxOutput::Chunk(_)
                | remux::RemuxOutput::Warning(_) => {}
            }
        }
    }

    /// Declares what the rendition carries per container when the remuxer's description changed.
    fn declare(&mut self, container: remux::Container, codec: &Arc<remux::CodecInfo>) {
        let Some(h) = &self.handle else { return };
        let container = edge_container(container);
        if self.declared[container]
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, codec))
        {
            return;
        }
        self.declared[container] = Some(codec.clone());
        let info = |c: &Option<Arc<remux::CodecInfo>>, on: bool| {
            on.then(|| c.as_ref().or(Some(codec)).map(|c| edge_info(c)))
                .flatten()
        };
        h.set_media(hls_edge::PerContainer {
            ts: info(&self.declared.ts, self.remuxer.ts_active()),
            cmaf: info(&self.declared.cmaf, self.remuxer.cmaf_active()),
        });
    }

    /// LL-HLS, as for a single publish: a CMAF part goes to the edge the moment this track's
    /// remuxer made it. Every track's cut follows the same encoder-aligned keyframes and the
    /// same part target, so parts of one number cover the same media time in every rendition.
    fn push_cmaf_part(&mut self, p: remux::Part) {
        let Some(h) = &self.handle else { return };
        let bytes = if p.chunks.len() == 1 {
            p.chunks.into_iter().next().unwrap_or_default()
        } else {
            bytes::Bytes::from(p.chunks.concat())
        };
        let len = bytes.len();
        let start = hls_edge::SegmentStart {
            container: hls_edge::Container::Cmaf,
            init: self.cmaf_init.clone(),
            discontinuity: p.discontinuity,
            arrival_unix_ms: p.segment_first_arrival_ms,
        };
        let part = hls_edge::NewPart {
            bytes,
            duration_90k: p.duration_90k,
            independent: p.independent,
            segment_target_reached: p.segment_target_reached,
        };
        match h.push_part(&start, part) {
            Ok(()) => self.cmaf_part_bytes += len,
            Err(e) => tracing::debug!(track = self.track_id, error = %e, "part not listed"),
        }
    }

    fn publish(&mut self, seg: remux::Segment) {
        self.declare(seg.container, &seg.codec);
        let Some(h) = &self.handle else { return };
        let container = edge_container(seg.container);
        // CMAF parts already pushed one by one are the segment: the push closes it.
        let parts_pushed =
            container == hls_edge::Container::Cmaf && std::mem::take(&mut self.cmaf_part_bytes) > 0;
        let n = if parts_pushed { 0 } else { seg.parts.len() };
        let parts = (seg.parts.into_iter().take(n).enumerate())
            .map(|(i, bytes)| hls_edge::NewPart {
                bytes,
                duration_90k: if i + 1 == n { seg.duration_90k } else { 0 },
                independent: i == 0 && seg.independent,
                segment_target_reached: false,
            })
            .collect();
        let pushed = h.push_segment(hls_edge::NewSegment {
            container,
            parts,
            init: (container == hls_edge::Container::Cmaf)
                .then(|| self.cmaf_init.clone())
                .flatten(),
            duration_90k: seg.duration_90k,
            discontinuity: seg.discontinuity,
            independent: seg.independent,
            arrival_unix_ms: seg.first_arrival_ms,
            keyframe: seg.keyframe_range.map(|r| hls_edge::ByteRange {
                offset: r.offset,
                len: r.len,
            }),
        });
        match pushed {
            Ok(msn) => h.report_segment_start(container, msn, seg.first_dts_90k),
            Err(e) => tracing::debug!(track = self.track_id, error = %e, "segment not listed"),
        }
    }
}

/// The renditions of one publish's video tracks (empty until a second video track shows up).
pub(crate) struct Multitrack {
    store: hls_edge::Store,
    app: String,
    stream: String,
    params: hls_edge::PublishParams,
    remux_config: remux::RemuxConfig,
    /// `hls.max_renditions_per_group`.
    max_renditions: usize,
    /// Metadata and sequence-header tags, replayed to a track's remuxer when it starts.
    headers: Vec<FlvTag>,
    headers_bytes: usize,
    video_tracks: Vec<u8>,
    audio_tracks: Vec<u8>,
    tracks: Vec<TrackRendition>,
}

impl Multitrack {
    pub fn new(
        store: &hls_edge::Store,
        app: &str,
        stream: &str,
        params: hls_edge::PublishParams,
        remux_config: remux::RemuxConfig,
        max_renditions: usize,
    ) -> Self {
        Self {
            max_renditions,
            store: store.clone(),
            app: app.to_string(),
            stream: stream.to_string(),
            params,
            remux_config,
            headers: Vec::new(),
            headers_bytes: 0,
            video_tracks: Vec::new(),
            audio_tracks: Vec::new(),
            tracks: Vec::new(),
        }
    }

    /// The publish carries more than one video track: its renditions are the `NAME~vK` streams.
    pub fn active(&self) -> bool {
        !self.tracks.is_empty()
    }

    /// Every tag of the publish, before the publish's own remuxer takes it.
    pub fn push(&mut self, tag: &FlvTag, arrival_ms: u64) {
        let (header, new_tracks) = self.inspect(tag);
        let media = if tag.kind == TagKind::Audio {
            Media::Audio
        } else {
            Media::Video
        };
        match media {
            Media::Video => self.video_tracks.extend(&new_tracks),
            Media::Audio => self.audio_tracks.extend(&new_tracks),
        }
        if !new_tracks.is_empty() && self.video_tracks.len() > 1 {
            // The lowest video track's keyframes cut the audio renditions.
            self.video_tracks.sort_unstable();
            let wanted: Vec<(Media, u8)> = (self.video_tracks.iter())
                .map(|id| (Media::Video, *id))
                .chain(self.audio_tracks.iter().map(|id| (Media::Audio, *id)))
                .collect();
            for (m, id) in wanted {
                if self.tracks.iter().any(|t| t.media == m && t.track_id == id) {
                    continue;
                }
                if self.tracks.len() < self.max_renditions {
                    self.start_track(m, id, arrival_ms);
                } else if new_tracks.contains(&id) {
                    tracing::warn!(app = %self.app, stream = %self.stream, track = id,
                        media = ?m, max = self.max_renditions,
                        "multitrack publish: track ignored (hls.max_renditions_per_group)");
                }
            }
        }
        if header
            && self.headers.len() < MAX_HEADER_TAGS
            && self.headers_bytes + tag.payload.len() <= MAX_HEADER_BYTES
        {
            self.headers_bytes += tag.payload.len();
            self.headers.push(tag.clone());
        }
        for t in &mut self.tracks {
            let _ = t.remuxer.push(tag.clone(), arrival_ms);
            t.drain();
        }
    }

    /// Whether `tag` is a header worth replaying, and the video track ids it shows first.
    fn inspect(&self, tag: &FlvTag) -> (bool, Vec<u8>) {
        let media = match tag.kind {
            TagKind::Script => return (true, Vec::new()),
            TagKind::Audio => Media::Audio,
            TagKind::Video => Media::Video,
        };
        let Ok(parsed) = flv_tag::parse(media, &tag.payload) else {
            return (false, Vec::new());
        };
        let header = parsed
            .tracks
            .iter()
            .any(|t| t.packet == PacketKind::SequenceStart);
        let known = match media {
            Media::Video => &self.video_tracks,
            Media::Audio => &self.audio_tracks,
        };
        let mut new = Vec::new();
        for t in &parsed.tracks {
            if !known.contains(&t.track_id) && !new.contains(&t.track_id) {
                new.push(t.track_id);
            }
        }
        (header, new)
    }

    fn start_track(&mut self, media: Media, track_id: u8, arrival_ms: u64) {
        let name = match media {
            Media::Video => hls_edge::group::track_stream_name(&self.stream, track_id),
            Media::Audio => hls_edge::group::audio_track_stream_name(&self.stream, track_id),
        };
        let handle = match self.store.begin_publish(&self.app, &name, self.params) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(app = %self.app, stream = %self.stream, track = track_id, error = %e,
                    "no room in the HLS store for a multitrack rendition");
                None
            }
        };
        tracing::info!(app = %self.app, stream = %self.stream, track = track_id, rendition = %name,
            media = ?media, "multitrack publish: track written as its own rendition");
        let config = match media {
            Media::Video => remux::RemuxConfig {
                video_track: Some(track_id),
                media: remux::MediaSelection::VideoOnly,
                ..self.remux_config.clone()
            },
            Media::Audio => remux::RemuxConfig {
                video_track: self.video_tracks.first().copied(),
                audio_track: Some(track_id),
                media: remux::MediaSelection::AudioOnly,
                ..self.remux_config.clone()
            },
        };
        let mut remuxer = remux::Remuxer::new(config);
        for h in &self.headers {
            let _ = remuxer.push(h.clone(), arrival_ms);
        }
        let mut t = TrackRendition {
            media,
            track_id,
            remuxer,
            handle,
            cmaf_init: None,
            cmaf_part_bytes: 0,
            declared: hls_edge::PerContainer::default(),
        };
        t.drain();
        self.tracks.push(t);
    }

    /// End of the publish: the open segments are listed, the renditions' grace periods start.
    pub fn finish(&mut self) {
        for t in &mut self.tracks {
            t.remuxer.finish();
            t.drain();
            if let Some(h) = t.handle.take() {
                h.end();
            }
        }
    }
}

#[cfg(test)]
#[path = "renditions_tests.rs"]
mod tests;
