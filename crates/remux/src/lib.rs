//! Sans-IO remuxer: FLV tag bodies (as carried in RTMP messages 8/9/18, FLV E.4) in, MPEG-TS
//! segments built from LL-HLS parts out (RFC 8216bis §3.1, §4.4.4.9; ISO/IEC 13818-1).
//!
//! No sockets, clock, files or environment: the caller pushes tags (with an opaque arrival clock
//! value) and polls [`RemuxOutput`]s. The same tags always produce the same bytes.
//!
//! Design decisions (see the module docs for details):
//! * PIDs: PAT 0, PMT 0x1000, video 0x100, audio 0x101; one program.
//! * PCR on the video PID (audio PID for audio-only) on every keyframe, on the first PES of a
//!   segment, and whenever `pcr_interval_ms` (40 ms) has passed; PCR = DTS − 700 ms.
//! * DTS = RTMP timestamp; PTS = DTS + composition time. A negative composition time raises a
//!   stream-wide presentation delay (`pts_delay_ms`, added to every video *and* audio PTS from
//!   then on) so PTS ≥ DTS without ever moving a DTS: A/V sync is kept, DTS stays monotonic.
//! * Timestamp jumps (see [`timeline`]) rebase the output and start a discontinuity segment.
//!
//! Modules by stage: `access_unit` (stage 1), `cut` (stage 2), `cmaf` and `segmenter` + `ts`
//! (stage 3, the writers); the [`Remuxer`] drives them, its CMAF path in `cmaf_stage` and its TS
//! path in `ts_stage`; `config` and `output` hold its settings and outputs.

pub mod aac;
pub mod access_unit;
pub mod avc;
pub mod cmaf;
mod cmaf_stage;
pub mod codec;
mod config;
pub mod cut;
mod error;
pub mod fmp4;
pub mod keyframe_range;
mod meta;
mod output;
mod segmenter;
mod selection;
pub mod timeline;
pub mod ts;
mod ts_stage;

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

pub use config::{Containers, MediaSelection, RemuxConfig};
pub use error::RemuxError;
pub use flv_tag::Media;
pub use keyframe_range::ByteRange;
pub use output::{
    AudioInfo, Chunk, CodecInfo, Container, InitSegment, Part, RemuxOutput, RemuxStats,
    RemuxWarning, Segment, VideoInfo, MAX_UNSUPPORTED_CODECS_LISTED,
};

use access_unit::{AccessUnit, AccessUnits, AuEvent, DecoderConfig};
use avc::AvcConfig;
use cmaf::CmafWriter;
use cut::CutPolicy;
use segmenter::Segmenter;
use timeline::Timeline;
use ts::psi::Program;
use ts_stage::AudioConfig;

/// RTMP message / FLV tag type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagKind {
    Audio,
    Video,
    Script,
}

/// One FLV tag body with its RTMP timestamp (the DTS, in ms).
#[derive(Clone, Debug)]
pub struct FlvTag {
    pub kind: TagKind,
    pub timestamp_ms: u32,
    pub payload: Bytes,
}

/// The remuxer for one published stream.
pub struct Remuxer {
    cfg: RemuxConfig,
    stats: RemuxStats,
    timeline: Timeline,
    seg: Segmenter,
    avc: Option<AvcConfig>,
    pending_avc: Option<AvcConfig>,
    audio: Option<AudioConfig>,
    hints: meta::TrackHints,
    /// Tracks have been declared (the first segment may start).
    decided: bool,
    queue: VecDeque<(FlvTag, u64)>,
    pts_delay_ms: i64,
    last_dts_90k: [Option<u64>; 2],
    last_keyframe_dts_90k: Option<u64>,
    /// (first DTS, last DTS, frames) for the measured frame rate.
    fps_probe: Option<(u64, u64, u64)>,
    measured_fps: Option<f64>,
    warned_gop: bool,
    finished: bool,
    /// Stage 1: access units of every track, addressable by id.
    aus: AccessUnits,
    au_events: Vec<AuEvent>,
    /// Stage 3b: the CMAF writer (`None` when `containers.cmaf` is off).
    cmaf: Option<CmafWriter>,
    /// The TS writer runs while every default track is H.264 / AAC / MP3.
    ts_enabled: bool,
    queue_bytes: usize,
    pts_delay_decided: bool,
    /// Access units held until the CMAF tracks are decided (bounded like the TS queue).
    cmaf_pre: VecDeque<(AccessUnit, u64)>,
    cmaf_pre_bytes: usize,
    cmaf_started: bool,
    /// Audio-only: cut points from the video track's keyframes ([`MediaSelection::AudioOnly`]).
    follow: selection::KeyframeFollower,
}

impl Remuxer {
    pub fn new(config: RemuxConfig) -> Self {
        let (config, follow) = selection::effective(&config);
        let seg = Segmenter::new(
            config.clone(),
            Program {
                video: None,
                audio: None,
                version: 0,
            },
            Arc::new(CodecInfo::default()),
        );
        Remuxer {
            stats: RemuxStats::default(),
            timeline: Timeline::default(),
            seg,
            avc: None,
            pending_avc: None,
            audio: None,
            hints: meta::TrackHints::default(),
            decided: false,
            queue: VecDeque::new(),
            pts_delay_ms: 0,
            last_dts_90k: [None, None],
            last_keyframe_dts_90k: None,
            fps_probe: None,
            measured_fps: None,
            warned_gop: false,
            finished: false,
            aus: AccessUnits::default(),
            au_events: Vec::new(),
            cmaf: config.containers.cmaf.then(|| {
                CmafWriter::new(
                    CutPolicy::new(
                        config.target_duration_ms,
                        config.part_target_ms,
                        config.fixed_target_duration_s.filter(|s| *s > 0),
                    ),
                    config.max_timestamp_jump_ms,
                )
            }),
            ts_enabled: config.containers.ts,
            queue_bytes: 0,
            pts_delay_decided: false,
            cmaf_pre: VecDeque::new(),
            cmaf_pre_bytes: 0,
            cmaf_started: false,
            follow,
            cfg: config,
        }
    }

    pub fn stats(&self) -> &RemuxStats {
        &self.stats
    }

    pub fn codec_info(&self) -> Option<Arc<CodecInfo>> {
        self.stats.codec.clone()
    }

    /// Whether MPEG-TS is being written (enabled, and every default track fits TS).
    pub fn ts_active(&self) -> bool {
        self.ts_enabled
    }

    /// Whether CMAF is being written.
    pub fn cmaf_active(&self) -> bool {
        self.cmaf.is_some()
    }

    /// The decoder configuration of any track of the publish, by media and track id (every
    /// track is kept addressable; only the default ones are written).
    pub fn track_config(&self, media: Media, track_id: u8) -> Option<&DecoderConfig> {
        self.aus.config(media, track_id)
    }

    /// Configured track ids of a media type, ascending (the first is the default track).
    pub fn track_ids(&self, media: Media) -> Vec<u8> {
        self.aus.track_ids(media).collect()
    }

    pub fn poll_output(&mut self) -> Option<RemuxOutput> {
        self.seg.outputs.pop_front()
    }

    /// Pushes one tag. `arrival_ms` is an opaque caller clock value recorded for the first frame
    /// of each segment. An `Err` affects only this tag.
    pub fn push(&mut self, tag: FlvTag, arrival_ms: u64) -> Result<(), RemuxError> {
        if self.finished {
            return Ok(());
        }
        self.stats.bytes_in += tag.payload.len() as u64;
        match (self.cfg.media, tag.kind) {
            (MediaSelection::VideoOnly, TagKind::Audio) => return Ok(()),
            (MediaSelection::AudioOnly, TagKind::Video) => {
                self.follow_keyframe(&tag);
                return Ok(());
            }
            _ => {}
        }
        let staged = self.stage(&tag, arrival_ms);
        let r = if self.ts_enabled {
            self.handle(tag, arrival_ms)
        } else {
            Ok(())
        };
        let r = staged.and(r);
        if let Err(e) = &r {
            self.count_drop(e);
        }
        r
    }

    /// The track written for a media type: the configured video track, else the lowest
    /// configured track id (the stream's default track: track 0, else the lowest id).
    fn selected(&self, media: Media) -> u8 {
        let configured = match media {
            Media::Video => self.cfg.video_track,
            Media::Audio => self.cfg.audio_track,
        };
        configured.unwrap_or_else(|| self.aus.track_ids(media).next().unwrap_or(0))
    }

    fn count_drop(&mut self, e: &RemuxError) {
        match e {
            RemuxError::NotConfigured { .. } => self.stats.dropped_before_config += 1,
            RemuxError::Unsupported { .. } => self.stats.dropped_unsupported += 1,
            _ => self.stats.dropped_errors += 1,
        }
        self.stats.dropped_frames += 1;
    }
    fn unsupported(&mut self, kind: TagKind, codec: String) {
        self.stats.dropped_unsupported += 1;
        self.stats.dropped_frames += 1;
        if self.stats.unsupported_codecs.contains(&codec) {
            return;
        }
        if self.stats.unsupported_codecs.len() >= MAX_UNSUPPORTED_CODECS_LISTED {
            // Counted, not listed or logged: a publisher cycling FourCCs cannot grow this.
            self.stats.unsupported_codecs_unlisted += 1;
            return;
        }
        {
            self.stats.unsupported_codecs.push(codec.clone());
            tracing::warn!(?kind, codec = %codec, "unsupported codec: track ignored");
            self.seg
                .outputs
                .push_back(RemuxOutput::Warning(RemuxWarning::UnsupportedCodec {
                    kind,
                    codec,
                }));
        }
    }

    /// End of publish: decides the tracks if still waiting, then closes the open part and
    /// segment so they can be polled. Later pushes are ignored.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        if !self.decided && (self.avc.is_some() || self.audio.is_some()) {
            self.cfg.track_wait_max_tags = 0;
            self.queue.push_back((
                FlvTag {
                    kind: TagKind::Script,
                    timestamp_ms: 0,
                    payload: Bytes::new(),
                },
                0,
            ));
            self.maybe_decide();
        }
        self.seg.finish(&mut self.stats);
        self.try_start_cmaf(true);
        if let Some(w) = self.cmaf.as_mut() {
            w.finish();
        }
        self.drain_cmaf();
        self.finished = true;
    }
}

#[cfg(test)]
mod chunk_tests;
#[cfg(test)]
mod cut_tests;
#[cfg(test)]
mod pipeline_tests;
#[cfg(test)]
mod tests;
