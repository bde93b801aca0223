//! Sans-IO remuxer: FLV tag bodies (as carried in RTMP messages 8/9/18, FLV E.4) in, MPEG-TS
//! segments built from LL-HLS parts out ([RFC 8216bis] §3.1, §4.4.4.9; ISO/IEC 13818-1).
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

pub mod aac;
pub mod access_unit;
pub mod avc;
pub mod cmaf;
pub mod codec;
pub mod cut;
mod error;
pub mod fmp4;
mod meta;
mod segmenter;
pub mod timeline;
pub mod ts;

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

pub use error::RemuxError;

use aac::{AacConfig, Mp3Info};
use access_unit::{AccessUnit, AccessUnits, AuEvent, DecoderConfig};
use avc::AvcConfig;
use cmaf::{CmafEvent, CmafWriter};
use cut::CutPolicy;
pub use flv_tag::Media;
use flv_tag::{AudioCodec, Codec, PacketKind, VideoCodec};
use segmenter::{MediaFrame, Segmenter};
use timeline::{ms_to_90k, Timeline};
use ts::pes::Piece;
use ts::psi::Program;

/// Remuxer settings. `Default` gives the values documented on each field.
#[derive(Clone, Debug)]
pub struct RemuxConfig {
    /// Segment target: cut at the first keyframe at or after this. Default 2000.
    pub target_duration_ms: u32,
    /// LL-HLS part target (`PART-TARGET`): no part is longer. Default 333.
    pub part_target_ms: u32,
    /// Containers written (`hls.containers`). Default both; TS only carries H.264/AAC/MP3.
    pub containers: Containers,
    /// A forward step above, or a backward step below, the stream's latest timestamp by more than
    /// this is a discontinuity. Default 3000 (interleaving differs by ~100 ms; 3 s still tolerates
    /// very low frame rates). Forward jumps larger than the playlist target duration are also
    /// treated as jumps, so no segment can outgrow EXT-X-TARGETDURATION through a gap.
    pub max_timestamp_jump_ms: u32,
    /// A track stepping back by more than this below its own previous DTS is a discontinuity;
    /// smaller steps are absorbed (DTS nudged to previous + 1 tick). Default 500.
    pub backward_tolerance_ms: u32,
    /// Pin EXT-X-TARGETDURATION (publisher reconnecting to an existing playlist). Default None.
    pub fixed_target_duration_s: Option<u32>,
    /// An open segment reaching this size is force-cut. Default 32 MiB.
    pub max_segment_bytes: usize,
    /// Frames larger than this are dropped with an error. Default 8 MiB.
    pub max_frame_bytes: usize,
    /// Frames with more NAL units are dropped with an error. Default 1024.
    pub max_nal_units_per_frame: usize,
    /// Maximum gap between PCRs on the PCR PID while frames are dense enough. Default 40.
    pub pcr_interval_ms: u32,
    /// AAC/MP3 frames grouped into one audio PES. Default 14 (about 300 ms of 48 kHz AAC, as
    /// nginx-rtmp's `hls_max_audio_delay`; hls.js, ffmpeg and Safari accept multi-frame audio
    /// PES). Each PES costs a header and, on average, half a TS packet of stuffing.
    pub audio_frames_per_pes: usize,
    /// How long (media time) to wait for a missing sequence header before the first segment
    /// declares the tracks. Default 1000.
    pub track_wait_ms: u32,
    /// Maximum tags buffered during that wait. Default 512.
    pub track_wait_max_tags: usize,
    /// Maximum payload bytes buffered during that wait. Default 8 MiB.
    pub track_wait_max_bytes: usize,
}

impl Default for RemuxConfig {
    fn default() -> Self {
        RemuxConfig {
            target_duration_ms: 2000,
            part_target_ms: 333,
            containers: Containers::default(),
            max_timestamp_jump_ms: 3000,
            backward_tolerance_ms: 500,
            fixed_target_duration_s: None,
            max_segment_bytes: 32 << 20,
            max_frame_bytes: 8 << 20,
            max_nal_units_per_frame: 1024,
            pcr_interval_ms: 40,
            audio_frames_per_pes: 14,
            track_wait_ms: 1000,
            track_wait_max_tags: 512,
            track_wait_max_bytes: 8 << 20,
        }
    }
}

/// Which containers a stream is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Containers {
    /// MPEG-TS (`index.m3u8` for H.264 / AAC / MP3 streams).
    pub ts: bool,
    /// fMP4 / CMAF (`cmaf.m3u8`, and `index.m3u8` for every other codec).
    pub cmaf: bool,
}

impl Default for Containers {
    fn default() -> Self {
        Containers {
            ts: true,
            cmaf: true,
        }
    }
}

/// The container of a part, segment or init segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Container {
    Ts,
    Cmaf,
}

/// A CMAF initialization segment (`ftyp`+`moov`); a new version follows every configuration
/// change and the next segment is a discontinuity.
#[derive(Clone, Debug)]
pub struct InitSegment {
    pub container: Container,
    /// 1, 2, ...: segments name the version they need (`Segment::init_version`).
    pub version: u32,
    pub bytes: Bytes,
    pub codec: Arc<CodecInfo>,
}

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

/// Video track description.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct VideoInfo {
    pub codec: &'static str,
    pub profile_idc: u8,
    pub level_idc: u8,
    pub width: u32,
    pub height: u32,
    /// From the SPS VUI, else measured from timestamps once a GOP has been seen.
    pub frame_rate: Option<f64>,
}

/// Audio track description.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AudioInfo {
    pub codec: &'static str,
    pub sample_rate_hz: u32,
    pub channels: u8,
    /// MPEG-4 audio object type (AAC only).
    pub object_type: Option<u8>,
}

/// Tracks of the stream, for playlists and stats.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct CodecInfo {
    pub video: Option<VideoInfo>,
    pub audio: Option<AudioInfo>,
    /// RFC 6381 `CODECS`, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: String,
}

/// A finished part (LL-HLS partial segment).
#[derive(Clone, Debug)]
pub struct Part {
    pub container: Container,
    pub segment_sequence: u64,
    pub index: u32,
    /// The part's bytes; concatenated they are the part (zero-copy pieces for CMAF).
    pub chunks: Vec<Bytes>,
    pub duration_90k: u64,
    pub independent: bool,
    /// The segment this part belongs to starts with `#EXT-X-DISCONTINUITY` (known when its
    /// first part is written, so the edge can list the tag before the first `EXT-X-PART`).
    pub discontinuity: bool,
    /// Wall-clock arrival of the segment's first frame (as `Segment::first_arrival_ms`).
    pub segment_first_arrival_ms: u64,
    /// With this part the segment reached its target duration: the next lead keyframe starts a
    /// new segment (lets the edge predict the next part's name for `EXT-X-PRELOAD-HINT`).
    pub segment_target_reached: bool,
}

/// A finished segment; `parts` concatenated are the segment bytes.
#[derive(Clone, Debug)]
pub struct Segment {
    pub container: Container,
    /// 0-based within this Remuxer, per container.
    pub sequence: u64,
    pub parts: Vec<Bytes>,
    pub len: usize,
    pub duration_90k: u64,
    /// First DTS (first PTS for audio-only) on the unwrapped 90 kHz output timeline
    /// (RTMP ms × 90 + 63000, rebased after jumps); the TS carries it modulo 2^33.
    pub first_dts_90k: u64,
    /// Starts with a keyframe (false only after a forced cut).
    pub independent: bool,
    pub discontinuity: bool,
    /// The EXT-X-TARGETDURATION the playlist must state; fixed for the Remuxer's lifetime.
    pub target_duration_s: u32,
    /// PART-TARGET of the parts (ms).
    pub part_target_ms: u32,
    /// The init segment version it needs (CMAF; 0 for TS).
    pub init_version: u32,
    pub first_arrival_ms: u64,
    pub codec: Arc<CodecInfo>,
}

/// Things the operator should know about; none stops the stream.
#[derive(Clone, Debug, PartialEq)]
pub enum RemuxWarning {
    /// The measured keyframe interval does not fit the segment target (reported once).
    GopExceedsTarget { gop_ms: u32, target_ms: u32 },
    /// A track uses a codec we do not remux; it is ignored (reported once per codec).
    UnsupportedCodec { kind: TagKind, codec: String },
    /// Timestamps jumped; a discontinuity follows. Values are output-timeline ms.
    TimestampJump { from_ms: u64, to_ms: u64 },
    /// A segment was cut without a keyframe.
    ForcedCut { sequence: u64, reason: &'static str },
    /// A new sequence header with different parameters; applied with a discontinuity.
    CodecChanged { kind: TagKind },
}

/// What [`Remuxer::poll_output`] returns.
#[derive(Clone, Debug)]
pub enum RemuxOutput {
    Init(InitSegment),
    Part(Part),
    Segment(Segment),
    Warning(RemuxWarning),
}

/// Counters for the stats API and metrics.
#[derive(Clone, Debug, Default)]
pub struct RemuxStats {
    pub video_frames_in: u64,
    pub audio_frames_in: u64,
    pub keyframes: u64,
    pub gop_ms_last: Option<u32>,
    pub gop_ms_max: Option<u32>,
    pub gop_exceeds_target: bool,
    pub segments: u64,
    pub parts: u64,
    pub forced_cuts: u64,
    pub discontinuities: u64,
    pub timestamp_jumps: u64,
    /// DTS nudged forward to keep a track strictly increasing.
    pub timestamps_nudged: u64,
    /// Presentation delay added because of negative composition times.
    pub pts_delay_ms: u32,
    /// Sum of the dropped_* counters.
    pub dropped_frames: u64,
    pub dropped_before_keyframe: u64,
    pub dropped_before_config: u64,
    pub dropped_errors: u64,
    pub dropped_unsupported: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub target_duration_s: Option<u32>,
    pub codec: Option<Arc<CodecInfo>>,
    /// At most [`MAX_UNSUPPORTED_CODECS_LISTED`] names (each logged once).
    pub unsupported_codecs: Vec<String>,
    /// Unsupported-codec tags whose name did not fit in the list.
    pub unsupported_codecs_unlisted: u64,
}

/// Distinct unsupported codec names remembered (and logged) per stream.
pub const MAX_UNSUPPORTED_CODECS_LISTED: usize = 8;

#[derive(Clone, Debug, PartialEq)]
enum AudioConfig {
    Aac(AacConfig),
    Mp3(Mp3Info),
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
}

const VIDEO: usize = 0;
const AUDIO: usize = 1;

impl Remuxer {
    pub fn new(config: RemuxConfig) -> Self {
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

    /// The lowest configured track id of a media type: the stream's default track (track 0,
    /// else the lowest id).
    fn selected(&self, media: Media) -> u8 {
        self.aus.track_ids(media).next().unwrap_or(0)
    }

    /// Stages 1 and 3b: access units of every track; the default tracks go to the CMAF writer.
    fn stage(&mut self, tag: &FlvTag, arrival_ms: u64) -> Result<(), RemuxError> {
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
                AuEvent::Unit(au) => {
                    if au.track_id != self.selected(au.media) || self.cmaf.is_none() {
                        continue;
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
    fn try_start_cmaf(&mut self, force: bool) {
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

    fn drain_cmaf(&mut self) {
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

    fn count_drop(&mut self, e: &RemuxError) {
        match e {
            RemuxError::NotConfigured { .. } => self.stats.dropped_before_config += 1,
            RemuxError::Unsupported { .. } => self.stats.dropped_unsupported += 1,
            _ => self.stats.dropped_errors += 1,
        }
        self.stats.dropped_frames += 1;
    }

    fn handle(&mut self, tag: FlvTag, arrival_ms: u64) -> Result<(), RemuxError> {
        let ts = tag.timestamp_ms;
        match tag.kind {
            TagKind::Script => {
                if let Some(h) = meta::parse_script(&tag.payload) {
                    self.hints = h;
                }
                self.maybe_decide();
                Ok(())
            }
            TagKind::Video => {
                let parsed = flv_tag::parse(Media::Video, &tag.payload)
                    .map_err(|e| RemuxError::from(e).at(ts))?;
                let Some(v) = parsed.track(self.selected(Media::Video)) else {
                    return Ok(()); // command frame, or only non-default tracks
                };
                if v.codec != Codec::Video(VideoCodec::Avc) {
                    return Ok(()); // reported by the access-unit stage
                }
                match v.packet {
                    PacketKind::SequenceStart => {
                        let c = AvcConfig::parse(&v.body).map_err(|e| e.at(ts))?;
                        match &self.avc {
                            None => {
                                self.avc = Some(c);
                                if self.decided {
                                    self.request_track_change();
                                }
                                self.maybe_decide();
                            }
                            Some(cur) if cur.raw == c.raw => self.pending_avc = None,
                            Some(_) => self.pending_avc = Some(c),
                        }
                        Ok(())
                    }
                    PacketKind::CodedFrames => {
                        if !self.decided {
                            self.enqueue(tag, arrival_ms);
                            return Ok(());
                        }
                        let (body, keyframe, cts_ms) =
                            (v.body.clone(), v.is_keyframe, v.composition_time_ms);
                        self.video_frame(body, keyframe, cts_ms, ts, arrival_ms)
                    }
                    _ => Ok(()),
                }
            }
            TagKind::Audio => {
                let parsed = flv_tag::parse(Media::Audio, &tag.payload)
                    .map_err(|e| RemuxError::from(e).at(ts))?;
                let Some(a) = parsed.track(self.selected(Media::Audio)) else {
                    return Ok(()); // silence, or only non-default tracks
                };
                let codec = match a.codec {
                    Codec::Audio(c @ (AudioCodec::Aac | AudioCodec::Mp3)) => c,
                    _ => return Ok(()), // reported by the access-unit stage
                };
                match a.packet {
                    // `.mp3` has no sequence header: its frames configure the track.
                    PacketKind::SequenceStart if a.codec.has_sequence_start() => {
                        let c = AudioConfig::Aac(AacConfig::parse(&a.body).map_err(|e| e.at(ts))?);
                        self.set_audio_config(c, ts);
                        Ok(())
                    }
                    PacketKind::CodedFrames => {
                        if codec == AudioCodec::Mp3 {
                            let info = aac::parse_mp3_header(&a.body).map_err(|e| e.at(ts))?;
                            self.set_audio_config(AudioConfig::Mp3(info), ts);
                        }
                        if !self.decided {
                            self.enqueue(tag, arrival_ms);
                            return Ok(());
                        }
                        let body = a.body.clone();
                        self.audio_frame(codec, body, ts, arrival_ms)
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    fn set_audio_config(&mut self, c: AudioConfig, _ts: u32) {
        match &self.audio {
            Some(cur) if *cur == c => {}
            Some(cur) => {
                // Same-codec MP3 frames differ only if the stream changed; compare as a whole.
                let stream_type_changed = audio_stream_type(cur) != audio_stream_type(&c);
                self.audio = Some(c);
                if self.decided {
                    self.seg
                        .outputs
                        .push_back(RemuxOutput::Warning(RemuxWarning::CodecChanged {
                            kind: TagKind::Audio,
                        }));
                    let _ = stream_type_changed;
                    self.request_track_change();
                }
            }
            None => {
                self.audio = Some(c);
                if self.decided {
                    self.request_track_change();
                }
                self.maybe_decide();
            }
        }
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

    fn program(&self) -> Program {
        Program {
            video: self.avc.as_ref().map(|_| 0x1B),
            audio: self.audio.as_ref().map(audio_stream_type),
            version: self.seg.program.version,
        }
    }

    fn build_codec_info(&self) -> Arc<CodecInfo> {
        let video = self.avc.as_ref().map(|c| {
            let s = c.sps_info.as_ref();
            VideoInfo {
                codec: "h264",
                profile_idc: c.profile_idc,
                level_idc: c.level_idc,
                width: s.map_or(0, |s| s.width),
                height: s.map_or(0, |s| s.height),
                frame_rate: s.and_then(|s| s.frame_rate).or(self.measured_fps),
            }
        });
        let audio = self.audio.as_ref().map(|a| match a {
            AudioConfig::Aac(c) => AudioInfo {
                codec: "aac",
                sample_rate_hz: c.sample_rate_hz,
                channels: c.channels,
                object_type: Some(c.object_type),
            },
            AudioConfig::Mp3(m) => AudioInfo {
                codec: "mp3",
                sample_rate_hz: m.sample_rate_hz,
                channels: m.channels,
                object_type: None,
            },
        });
        let mut codecs = Vec::new();
        if let Some(c) = &self.avc {
            codecs.push(c.codecs_string());
        }
        match &self.audio {
            Some(AudioConfig::Aac(c)) => codecs.push(c.codecs_string()),
            Some(AudioConfig::Mp3(_)) => codecs.push("mp4a.40.34".into()),
            None => {}
        }
        Arc::new(CodecInfo {
            video,
            audio,
            codecs: codecs.join(","),
        })
    }

    /// A track appeared or changed after the tracks were declared: switch at the next cut.
    fn request_track_change(&mut self) {
        let info = self.build_codec_info();
        self.stats.codec = Some(info.clone());
        self.seg
            .request_program(self.program(), info, &mut self.stats);
    }

    fn enqueue(&mut self, tag: FlvTag, arrival_ms: u64) {
        self.queue_bytes += tag.payload.len();
        self.queue.push_back((tag, arrival_ms));
        // Bounded by bytes as well as by count: drop the oldest beyond the byte budget.
        while self.queue_bytes > self.cfg.track_wait_max_bytes && self.queue.len() > 1 {
            if let Some((old, _)) = self.queue.pop_front() {
                self.queue_bytes -= old.payload.len();
                self.stats.dropped_before_config += 1;
                self.stats.dropped_frames += 1;
            }
        }
        self.maybe_decide();
    }

    /// Declares the tracks once every expected sequence header is here, or the wait is over.
    fn maybe_decide(&mut self) {
        if self.decided {
            return;
        }
        let expect_video = self.hints.seen && self.hints.video_codec_id.is_some_and(|id| id == 7);
        let expect_audio = self.hints.seen
            && self
                .hints
                .audio_codec_id
                .is_some_and(|id| id == 10 || id == 2 || id == 14);
        let have_video = self.avc.is_some();
        let have_audio = self.audio.is_some();
        let complete = if self.hints.seen {
            let video_ok = have_video || !expect_video;
            let audio_ok = have_audio || !expect_audio;
            (have_video || have_audio) && video_ok && audio_ok
        } else {
            have_video && have_audio
        };
        let span_ms = match (self.queue.front(), self.queue.back()) {
            (Some(a), Some(b)) => b.0.timestamp_ms.wrapping_sub(a.0.timestamp_ms) as i32,
            _ => 0,
        };
        let waited = span_ms >= self.cfg.track_wait_ms as i32
            || self.queue.len() >= self.cfg.track_wait_max_tags.max(1);
        if !(complete || (waited && (have_video || have_audio))) {
            // Nothing decodable yet: keep the wait bounded by dropping the oldest tag.
            if self.queue.len() > self.cfg.track_wait_max_tags.max(1) {
                if let Some((old, _)) = self.queue.pop_front() {
                    self.queue_bytes -= old.payload.len();
                }
                self.stats.dropped_before_config += 1;
                self.stats.dropped_frames += 1;
            }
            return;
        }
        self.decided = true;
        let info = self.build_codec_info();
        self.stats.codec = Some(info.clone());
        self.seg.program = self.program();
        self.seg.refresh_codec(info);
        let queued = std::mem::take(&mut self.queue);
        self.queue_bytes = 0;
        for (tag, arrival) in queued {
            if let Err(e) = self.handle(tag, arrival) {
                self.count_drop(&e);
            }
        }
    }

    /// Places `ts` on the timeline, reporting jumps. Returns output ms.
    fn place(&mut self, ts: u32, track: usize) -> i64 {
        // The same jump threshold as the CMAF writer's: at most TARGETDURATION, at least 1 s.
        let limit_ms = i64::from(self.seg.policy.target_duration_s).saturating_mul(1000);
        let max_jump = i64::from(self.cfg.max_timestamp_jump_ms)
            .min(limit_ms)
            .max(1000);
        let p = self.timeline.place(
            ts,
            track,
            max_jump,
            i64::from(self.cfg.backward_tolerance_ms),
        );
        if let Some((from, to)) = p.jump {
            self.stats.timestamp_jumps += 1;
            tracing::debug!(from, to, "timestamp jump");
            self.seg
                .outputs
                .push_back(RemuxOutput::Warning(RemuxWarning::TimestampJump {
                    from_ms: from.max(0) as u64,
                    to_ms: to.max(0) as u64,
                }));
            self.seg.request_discontinuity(&mut self.stats);
        }
        p.out_ms
    }

    /// Keeps a track's DTS strictly increasing.
    fn monotonic(&mut self, track: usize, dts: u64) -> u64 {
        let out = match self.last_dts_90k[track] {
            Some(last) if dts <= last => {
                self.stats.timestamps_nudged += 1;
                last + 1
            }
            _ => dts,
        };
        self.last_dts_90k[track] = Some(out);
        out
    }

    fn video_frame(
        &mut self,
        body: Bytes,
        tag_keyframe: bool,
        cts_ms: i32,
        ts: u32,
        arrival_ms: u64,
    ) -> Result<(), RemuxError> {
        if body.len() > self.cfg.max_frame_bytes {
            return Err(RemuxError::LimitExceeded {
                kind: TagKind::Video,
                what: "frame bytes",
                timestamp_ms: ts,
                value: body.len(),
                limit: self.cfg.max_frame_bytes,
            });
        }
        if tag_keyframe {
            if let Some(c) = self.pending_avc.take() {
                let changed = self.avc.as_ref().is_none_or(|cur| cur.raw != c.raw);
                self.avc = Some(c);
                if changed {
                    self.seg
                        .outputs
                        .push_back(RemuxOutput::Warning(RemuxWarning::CodecChanged {
                            kind: TagKind::Video,
                        }));
                    self.request_track_change();
                }
            }
        }
        let Some(avc) = &self.avc else {
            return Err(RemuxError::NotConfigured {
                kind: TagKind::Video,
                timestamp_ms: ts,
            });
        };
        let au =
            avc::to_annex_b(&body, avc, self.cfg.max_nal_units_per_frame).map_err(|e| e.at(ts))?;
        let keyframe = tag_keyframe || au.has_idr;
        self.stats.video_frames_in += 1;
        let out_ms = self.place(ts, VIDEO);
        let dts = self.monotonic(VIDEO, ms_to_90k(out_ms));
        // The presentation delay is decided once, while the first segment is open (nothing is
        // published yet); afterwards a more negative composition time is clamped to PTS = DTS
        // and never shifts the rest of the stream.
        self.pts_delay_decided |= self.stats.segments > 0;
        if !self.pts_delay_decided && i64::from(cts_ms) + self.pts_delay_ms < 0 {
            self.pts_delay_ms = -i64::from(cts_ms);
            self.stats.pts_delay_ms = u32::try_from(self.pts_delay_ms).unwrap_or(u32::MAX);
        }
        let pts = ms_to_90k(out_ms + i64::from(cts_ms) + self.pts_delay_ms).max(dts);
        let was_open = self.seg.is_open();
        let frame = MediaFrame {
            dts_90k: dts,
            pts_90k: pts,
            keyframe,
            len: au.len,
            pieces: au.pieces.into_iter().map(Piece::Shared).collect(),
            arrival_ms,
        };
        if !self.seg.push_video(frame, &mut self.stats) {
            self.stats.dropped_before_keyframe += 1;
            self.stats.dropped_frames += 1;
            return Ok(());
        }
        if keyframe {
            self.stats.keyframes += 1;
            self.measure_gop(dts);
        }
        self.probe_fps(dts, was_open);
        Ok(())
    }

    fn measure_gop(&mut self, dts: u64) {
        if let Some(prev) = self.last_keyframe_dts_90k {
            let gop_ms = u32::try_from(dts.saturating_sub(prev) / 90).unwrap_or(u32::MAX);
            self.stats.gop_ms_last = Some(gop_ms);
            self.stats.gop_ms_max = Some(self.stats.gop_ms_max.map_or(gop_ms, |m| m.max(gop_ms)));
            let target_ms = self.cfg.target_duration_ms;
            // "Does not fit": segments would run more than 10% past the target.
            if u64::from(gop_ms) * 10 > u64::from(target_ms) * 11 {
                self.stats.gop_exceeds_target = true;
                if !self.warned_gop {
                    self.warned_gop = true;
                    tracing::warn!(
                        gop_ms,
                        target_ms,
                        "keyframe interval exceeds the segment target"
                    );
                    self.seg.outputs.push_back(RemuxOutput::Warning(
                        RemuxWarning::GopExceedsTarget { gop_ms, target_ms },
                    ));
                }
            }
        }
        self.last_keyframe_dts_90k = Some(dts);
    }

    /// Measures the frame rate over the first ~2 s when the SPS has no VUI timing.
    fn probe_fps(&mut self, dts: u64, _was_open: bool) {
        if self.measured_fps.is_some()
            || self
                .avc
                .as_ref()
                .and_then(|c| c.sps_info.as_ref())
                .is_some_and(|s| s.frame_rate.is_some())
        {
            return;
        }
        let (first, _, n) = *self.fps_probe.get_or_insert((dts, dts, 0));
        self.fps_probe = Some((first, dts, n + 1));
        let span = dts.saturating_sub(first);
        if span >= 180_000 && n > 0 {
            let fps = (n as f64) * 90_000.0 / span as f64;
            self.measured_fps = Some((fps * 100.0).round() / 100.0);
            let info = self.build_codec_info();
            self.stats.codec = Some(info.clone());
            self.seg.refresh_codec(info);
        }
    }

    fn audio_frame(
        &mut self,
        codec: AudioCodec,
        body: Bytes,
        ts: u32,
        arrival_ms: u64,
    ) -> Result<(), RemuxError> {
        if body.is_empty() {
            return Ok(());
        }
        if body.len() > self.cfg.max_frame_bytes {
            return Err(RemuxError::LimitExceeded {
                kind: TagKind::Audio,
                what: "frame bytes",
                timestamp_ms: ts,
                value: body.len(),
                limit: self.cfg.max_frame_bytes,
            });
        }
        let (pieces, len) = match (&self.audio, codec) {
            (Some(AudioConfig::Aac(c)), AudioCodec::Aac) => {
                let h = c.adts_header(body.len()).map_err(|e| e.at(ts))?;
                let len = body.len() + 7;
                (vec![Piece::Adts(h), Piece::Shared(body)], len)
            }
            (Some(AudioConfig::Mp3(_)), AudioCodec::Mp3) => {
                let len = body.len();
                (vec![Piece::Shared(body)], len)
            }
            _ => {
                return Err(RemuxError::NotConfigured {
                    kind: TagKind::Audio,
                    timestamp_ms: ts,
                })
            }
        };
        self.stats.audio_frames_in += 1;
        let out_ms = self.place(ts, AUDIO);
        let dts = self.monotonic(AUDIO, ms_to_90k(out_ms + self.pts_delay_ms));
        let frame = MediaFrame {
            dts_90k: dts,
            pts_90k: dts,
            keyframe: true,
            pieces,
            len,
            arrival_ms,
        };
        if !self.seg.push_audio(frame, &mut self.stats) {
            self.stats.dropped_before_keyframe += 1;
            self.stats.dropped_frames += 1;
        }
        Ok(())
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

fn audio_stream_type(a: &AudioConfig) -> u8 {
    match a {
        AudioConfig::Aac(_) => 0x0F,
        AudioConfig::Mp3(m) => m.stream_type,
    }
}

#[cfg(test)]
mod cut_tests;
#[cfg(test)]
mod pipeline_tests;
#[cfg(test)]
mod tests;
