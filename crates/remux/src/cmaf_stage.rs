//! The CMAF path of [`Remuxer`]: every FLV tag becomes access units of every track (stage 1);
//! those of the default tracks are held until the tracks are decided, then fed to the
//! [`CmafWriter`](crate::cmaf::CmafWriter) (stage 3b, ISO/IEC 23000-19), whose events become
//! [`RemuxOutput`]s.

use std::sync::Arc;

use bytes::Bytes;

use crate::access_unit::{AuEvent, DecoderConfig};
use crate::cmaf::CmafEvent;
use crate::{
    meta, AudioInfo, Chunk, CodecInfo, Container, FlvTag, InitSegment, Media, Part, RemuxError,
    RemuxOutput, RemuxWarning, Remuxer, Segment, TagKind, VideoInfo,
};

impl Remuxer {
    /// Stages 1 and 3b: access units of every track; the default tracks go to the CMAF writer.
    pub(crate) fn stage(&mut self, tag: &FlvTag, arrival_ms: u64) -> Result<(), RemuxError> {
        let media = match tag.kind {
            TagKind::Script => {
                if let Some(h) = meta::parse_script(&tag.payload) {
                    self.hints = h;
                }
                return Ok(());
            }
            TagKind::Audio => Media::Audio,
            TagKind::Video => Media::Video,
        };
        let ts = tag.timestamp_ms;
        let parsed = flv_tag::parse(media, &tag.payload).map_err(|e| RemuxError::from(e).at(ts))?;
        let mut events = std::mem::take(&mut self.au_events);
        let r = self.aus.push(&parsed, ts, &mut events);
        for ev in events.drain(..) {
            match ev {
                AuEvent::Config(c) => {
                    if c.track_id != self.selected(c.media) {
                        continue;
                    }
                    if !c.config.fits_ts() && self.ts_enabled {
                        self.ts_enabled = false;
                        self.queue.clear();
                        self.queue_bytes = 0;
                        self.seg.finish(&mut self.stats);
                        tracing::info!(
                            codec = c.config.name(),
                            "codec not carried in MPEG-TS: CMAF only"
                        );
                    }
                    if c.changed {
                        self.seg.outputs.push_back(RemuxOutput::Warning(
                            RemuxWarning::CodecChanged { kind: tag.kind },
                        ));
                    }
                    if let Some(w) = self.cmaf.as_mut() {
                        w.set_config(c.config);
                    }
                }
                AuEvent::Unit(mut au) => {
                    if au.track_id != self.selected(au.media) || self.cmaf.is_none() {
                        continue;
                    }
                    if au.media == Media::Audio {
                        // Where an audio-only rendition may cut (`selection`).
                        au.keyframe = self.audio_cut_point(crate::selection::Path::Cmaf, ts);
                    }
                    if self.cmaf_started {
                        if let Some(w) = self.cmaf.as_mut() {
                            w.push(&au, arrival_ms);
                        }
                    } else {
                        self.cmaf_pre_bytes += au.data.len();
                        self.cmaf_pre.push_back((au, arrival_ms));
                        while self.cmaf_pre_bytes > self.cfg.track_wait_max_bytes
                            && self.cmaf_pre.len() > 1
                        {
                            if let Some((old, _)) = self.cmaf_pre.pop_front() {
                                self.cmaf_pre_bytes -= old.data.len();
                            }
                        }
                        self.try_start_cmaf(false);
                    }
                }
                AuEvent::Unsupported { media, codec, .. } => self.unsupported(
                    match media {
                        Media::Audio => TagKind::Audio,
                        Media::Video => TagKind::Video,
                    },
                    codec.name(),
                ),
            }
        }
        self.au_events = events;
        self.drain_cmaf();
        r
    }

    /// Starts the CMAF writer once every expected default track is configured (onMetaData says
    /// which; without it, both), or once `track_wait_ms` of media is held, then replays the
    /// held access units. `force` at the end of the stream.
    pub(crate) fn try_start_cmaf(&mut self, force: bool) {
        if self.cmaf_started {
            return;
        }
        let have_v = self
            .aus
            .config(Media::Video, self.selected(Media::Video))
            .is_some();
        let have_a = self
            .aus
            .config(Media::Audio, self.selected(Media::Audio))
            .is_some();
        let h = &self.hints;
        let complete = if h.seen {
            let video_ok = have_v || h.video_codec_id.is_none();
            let audio_ok = have_a || h.audio_codec_id.is_none();
            (have_v || have_a) && video_ok && audio_ok
        } else {
            have_v && have_a
        };
        let span_ms = match (self.cmaf_pre.front(), self.cmaf_pre.back()) {
            (Some(a), Some(b)) => b.0.dts_ms - a.0.dts_ms,
            _ => 0,
        };
        let waited = span_ms >= i64::from(self.cfg.track_wait_ms)
            || self.cmaf_pre.len() >= self.cfg.track_wait_max_tags.max(1);
        if !(complete || ((waited || force) && (have_v || have_a))) {
            return;
        }
        self.cmaf_started = true;
        self.cmaf_pre_bytes = 0;
        let held = std::mem::take(&mut self.cmaf_pre);
        if let Some(w) = self.cmaf.as_mut() {
            for (au, arrival) in &held {
                w.push(au, *arrival);
            }
        }
    }

    /// The CMAF stream's codec description, from the default tracks' configurations.
    fn cmaf_codec_info(&self) -> Arc<CodecInfo> {
        let video = self.aus.config(Media::Video, self.selected(Media::Video));
        let audio = self.aus.config(Media::Audio, self.selected(Media::Audio));
        let codecs: Vec<String> = [video, audio]
            .into_iter()
            .flatten()
            .map(DecoderConfig::codec_string)
            .collect();
        Arc::new(CodecInfo {
            video: video.map(|v| {
                let (width, height) = v.video_size().unwrap_or((0, 0));
                let (profile_idc, level_idc, frame_rate) = match v {
                    DecoderConfig::Avc(c) => (
                        c.profile_idc,
                        c.level_idc,
                        c.sps_info.as_ref().and_then(|s| s.frame_rate),
                    ),
                    _ => (0, 0, None),
                };
                VideoInfo {
                    codec: v.name(),
                    profile_idc,
                    level_idc,
                    width,
                    height,
                    frame_rate: frame_rate.or(self.measured_fps),
                }
            }),
            audio: audio.map(|a| match a {
                DecoderConfig::Aac(c) => AudioInfo {
                    codec: "aac",
                    sample_rate_hz: c.sample_rate_hz,
                    channels: c.channels,
                    object_type: Some(c.object_type),
                },
                DecoderConfig::Mp3(m) => AudioInfo {
                    codec: "mp3",
                    sample_rate_hz: m.sample_rate_hz,
                    channels: m.channels,
                    object_type: None,
                },
                DecoderConfig::Opus(o) => AudioInfo {
                    codec: "opus",
                    sample_rate_hz: 48_000,
                    channels: o.channels,
                    object_type: None,
                },
                _ => AudioInfo {
                    codec: "unknown",
                    sample_rate_hz: 0,
                    channels: 0,
                    object_type: None,
                },
            }),
            codecs: codecs.join(","),
        })
    }

    pub(crate) fn drain_cmaf(&mut self) {
        let Some(w) = self.cmaf.as_mut() else {
            return;
        };
        if w.events.is_empty() {
            return;
        }
        let events = std::mem::take(&mut w.events);
        let policy = *w.policy();
        let codec = self.cmaf_codec_info();
        for ev in events {
            let out = match ev {
                CmafEvent::Init { version, bytes } => RemuxOutput::Init(InitSegment {
                    container: Container::Cmaf,
                    version,
                    bytes,
                    codec: codec.clone(),
                }),
                CmafEvent::Chunk {
                    segment_sequence,
                    part_index,
                    bytes,
                    independent,
                } => RemuxOutput::Chunk(Chunk {
                    container: Container::Cmaf,
                    segment_sequence,
                    part_index,
                    bytes,
                    independent,
                }),
                CmafEvent::Part {
                    segment_sequence,
                    index,
                    chunks,
                    duration_90k,
                    independent,
                    discontinuity,
                    segment_first_arrival_ms,
                    segment_target_reached,
                } => RemuxOutput::Part(Part {
                    container: Container::Cmaf,
                    segment_sequence,
                    index,
                    chunks,
                    duration_90k,
                    independent,
                    discontinuity,
                    segment_first_arrival_ms,
                    segment_target_reached,
                }),
                CmafEvent::Segment {
                    sequence,
                    chunks,
                    duration_90k,
                    first_dts_90k,
                    independent,
                    discontinuity,
                    init_version,
                    first_arrival_ms,
                } => RemuxOutput::Segment(Segment {
                    keyframe_range: (independent && codec.video.is_some())
                        .then(|| crate::keyframe_range::first_fragment(&chunks))
                        .flatten(),
                    container: Container::Cmaf,
                    sequence,
                    len: chunks.iter().map(Bytes::len).sum(),
                    parts: chunks,
                    duration_90k,
                    first_dts_90k,
                    independent,
                    discontinuity,
                    target_duration_s: policy.target_duration_s,
                    part_target_ms: policy.part_target_ms,
                    init_version,
                    first_arrival_ms,
                    codec: codec.clone(),
                }),
                CmafEvent::Jump { from_ms, to_ms } => {
                    RemuxOutput::Warning(RemuxWarning::TimestampJump {
                        from_ms: from_ms.max(0) as u64,
                        to_ms: to_ms.max(0) as u64,
                    })
                }
            };
            self.seg.outputs.push_back(out);
        }
    }
}
