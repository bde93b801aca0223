//! Stage 3a of the pipeline: the MPEG-TS writer. It applies the cut policy's decisions
//! ([`CutPolicy::decide`], the same policy and lead-track timeline the CMAF writer uses) and
//! writes the TS bytes (HLS [RFC 8216bis] §3.1 / §4.4.3.1 target duration, §4.4.4.9 parts;
//! ISO/IEC 13818-1 for TS).
//!
//! * A segment starts with PAT, PMT and — when the stream has video — a keyframe PES.
//! * Where segments and parts end, EXT-X-TARGETDURATION, and how a gap becomes a discontinuity
//!   are the cut policy's; the lead track is video, else audio. EXTINF is the real media
//!   duration (next lead DTS minus the first), never clamped.
//! * The only rule of this writer's own: the open segment is force-cut when its bytes reach
//!   `max_segment_bytes`, so a stream without keyframes cannot grow without bound.
//! * Parts end on frame boundaries; a segment's body is the list of its parts' `Bytes`.
//! * Audio PES group up to `audio_frames_per_pes` frames, flushed at part boundaries.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::cut::{Cut, CutPolicy};
use crate::timeline::BASE_OFFSET_90K;
use crate::ts::packet::ContinuityCounter;
use crate::ts::pes::{write_pes, PesParams, Piece, STREAM_ID_AUDIO, STREAM_ID_VIDEO};
use crate::ts::psi::{write_pat, write_pmt, Program};
use crate::ts::{PID_AUDIO, PID_VIDEO};
use crate::{CodecInfo, Part, RemuxConfig, RemuxOutput, RemuxStats, RemuxWarning, Segment};

/// Largest audio PES payload we build (PES_packet_length must fit 16 bits with the header).
const MAX_AUDIO_PES_BYTES: usize = 60_000;
/// Audio-only streams carry the PCR on audio PES: keep each PES within the 100 ms PCR limit.
const AUDIO_ONLY_MAX_PES_90K: u64 = 90 * 90;

/// One frame ready to be written.
#[derive(Debug)]
pub struct MediaFrame {
    pub dts_90k: u64,
    pub pts_90k: u64,
    pub keyframe: bool,
    pub pieces: Vec<Piece>,
    pub len: usize,
    pub arrival_ms: u64,
}

struct OpenSegment {
    sequence: u64,
    parts: Vec<Bytes>,
    len: usize,
    first_dts_90k: u64,
    first_arrival_ms: u64,
    independent: bool,
    discontinuity: bool,
    codec: Arc<CodecInfo>,
    part_first_dts_90k: u64,
    part_independent: bool,
    part_index: u32,
    /// DTS of the last frame of the primary track (video, else audio) and the step before it.
    last_primary_dts_90k: u64,
    last_primary_delta_90k: u64,
    /// A video frame has been written into this segment.
    video_written: bool,
    /// Bytes from the segment start through the last packet of its opening keyframe.
    keyframe_end: Option<usize>,
}

/// What the lead-track sample does to the open segment.
enum LeadStep {
    /// Dropped: no segment is open and it cannot start one.
    Drop,
    /// Written into the open segment (possibly after a cut).
    Write,
}

struct AudioPes {
    pieces: Vec<Piece>,
    len: usize,
    frames: usize,
    pts_90k: u64,
}

pub struct Segmenter {
    cfg: RemuxConfig,
    pub program: Program,
    pub codec: Arc<CodecInfo>,
    out: BytesMut,
    cc_pat: ContinuityCounter,
    cc_pmt: ContinuityCounter,
    cc_video: ContinuityCounter,
    cc_audio: ContinuityCounter,
    open: Option<OpenSegment>,
    audio: AudioPes,
    last_pcr_90k: Option<u64>,
    next_sequence: u64,
    /// Segment and part boundaries (shared with the CMAF writer).
    pub policy: CutPolicy,
    /// The last frame step of the previous segment, for one-frame segments.
    last_frame_step_90k: u64,
    /// The next segment is a discontinuity.
    discontinuity_pending: bool,
    /// Program/codec to switch to at the next cut.
    pending_program: Option<(Program, Arc<CodecInfo>)>,
    part_capacity: usize,
    pub outputs: VecDeque<RemuxOutput>,
}

impl Segmenter {
    pub fn new(cfg: RemuxConfig, program: Program, codec: Arc<CodecInfo>) -> Self {
        let policy = CutPolicy::new(
            cfg.target_duration_ms,
            cfg.part_target_ms,
            cfg.fixed_target_duration_s.filter(|s| *s > 0),
        );
        Segmenter {
            cfg,
            program,
            codec,
            out: BytesMut::new(),
            cc_pat: ContinuityCounter::default(),
            cc_pmt: ContinuityCounter::default(),
            cc_video: ContinuityCounter::default(),
            cc_audio: ContinuityCounter::default(),
            open: None,
            audio: AudioPes {
                pieces: Vec::with_capacity(16),
                len: 0,
                frames: 0,
                pts_90k: 0,
            },
            last_pcr_90k: None,
            next_sequence: 0,
            policy,
            last_frame_step_90k: 0,
            discontinuity_pending: false,
            pending_program: None,
            part_capacity: 64 * 1024,
            outputs: VecDeque::new(),
        }
    }

    /// Whether a segment is open (i.e. the first keyframe has been written).
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// A timestamp jump or a track change: the open segment ends where its media ends, and the
    /// next segment (at the next lead keyframe, as in the CMAF writer) is a discontinuity.
    pub fn request_discontinuity(&mut self, stats: &mut RemuxStats) {
        self.finish(stats);
        self.discontinuity_pending = true;
    }

    /// Switches program/codec info with a discontinuity.
    pub fn request_program(
        &mut self,
        program: Program,
        codec: Arc<CodecInfo>,
        stats: &mut RemuxStats,
    ) {
        self.pending_program = Some((program, codec));
        self.request_discontinuity(stats);
    }

    /// Replaces the codec info for segments opened from now on (no cut; e.g. measured frame rate).
    pub fn refresh_codec(&mut self, codec: Arc<CodecInfo>) {
        self.codec = codec;
    }

    /// Applies the cut policy to a lead-track sample at `t_90k` (DTS; PTS when audio-only).
    fn lead_sample(
        &mut self,
        f: &MediaFrame,
        t_90k: u64,
        keyframe: bool,
        stats: &mut RemuxStats,
    ) -> LeadStep {
        let Some(seg) = &self.open else {
            if !keyframe {
                return LeadStep::Drop;
            }
            self.open_segment(f, true);
            return LeadStep::Write;
        };
        let ms = |from_90k: u64| (t_90k.saturating_sub(from_90k) / 90) as i64;
        let (segment_ms, part_ms) = (ms(seg.first_dts_90k), ms(seg.part_first_dts_90k));
        let frame_ms = ms(seg.last_primary_dts_90k);
        let too_big = seg.len + self.out.len() + f.len >= self.cfg.max_segment_bytes;
        match self.policy.decide(segment_ms, part_ms, frame_ms, keyframe) {
            Cut::Gap { independent } => {
                // The segment's media ends one frame step after its last sample; what follows
                // the gap is a discontinuity.
                let end = seg
                    .last_primary_dts_90k
                    .saturating_add(seg.last_primary_delta_90k.max(1));
                self.close_segment(end, stats);
                self.discontinuity_pending = true;
                self.open_segment(f, independent);
            }
            Cut::Segment { independent } => {
                if !independent {
                    self.forced_cut("target duration", stats);
                }
                self.cut(f, t_90k, independent, stats);
            }
            Cut::None | Cut::Part if too_big => {
                self.forced_cut("max_segment_bytes", stats);
                // A byte-limit cut can land on a keyframe: that segment is still independent.
                self.cut(f, t_90k, keyframe, stats);
            }
            Cut::Part => {
                self.close_part(t_90k, stats);
                self.start_part(t_90k, keyframe);
            }
            Cut::None => {}
        }
        LeadStep::Write
    }

    fn forced_cut(&mut self, reason: &'static str, stats: &mut RemuxStats) {
        stats.forced_cuts += 1;
        self.outputs
            .push_back(RemuxOutput::Warning(RemuxWarning::ForcedCut {
                sequence: self.next_sequence,
                reason,
            }));
    }

    /// Records the lead sample at `t_90k` as the open segment's last.
    fn lead_written(&mut self, t_90k: u64) {
        if let Some(seg) = &mut self.open {
            if t_90k > seg.last_primary_dts_90k {
                seg.last_primary_delta_90k = t_90k - seg.last_primary_dts_90k;
            }
            seg.last_primary_dts_90k = t_90k;
        }
    }

    /// Pushes a video frame. Frames before the first keyframe are dropped (returns false).
    pub fn push_video(&mut self, f: MediaFrame, stats: &mut RemuxStats) -> bool {
        if self.program.video.is_none() {
            return false;
        }
        if let LeadStep::Drop = self.lead_sample(&f, f.dts_90k, f.keyframe, stats) {
            return false;
        }
        self.lead_written(f.dts_90k);
        let pcr_due = f.keyframe
            || self.last_pcr_90k.is_none_or(|p| {
                f.dts_90k.saturating_sub(p) >= u64::from(self.cfg.pcr_interval_ms) * 90
            });
        if pcr_due {
            self.last_pcr_90k = Some(f.dts_90k);
        }
        let p = PesParams {
            pid: PID_VIDEO,
            stream_id: STREAM_ID_VIDEO,
            pts_90k: f.pts_90k,
            dts_90k: Some(f.dts_90k),
            pcr_90k: pcr_due.then(|| f.dts_90k.saturating_sub(BASE_OFFSET_90K)),
            random_access: f.keyframe,
        };
        write_pes(&mut self.out, &mut self.cc_video, &p, &f.pieces, f.len);
        if let Some(seg) = &mut self.open {
            // The opening keyframe directly follows PAT and PMT (audio waits in its PES
            // buffer), so the segment up to here decodes to that picture on its own.
            if !seg.video_written && f.keyframe && seg.independent {
                seg.keyframe_end = Some(seg.len + self.out.len());
            }
            seg.video_written = true;
        }
        true
    }

    /// Pushes an audio frame (one AAC frame with its ADTS header, or an MP3 frame).
    pub fn push_audio(&mut self, f: MediaFrame, stats: &mut RemuxStats) -> bool {
        if self.program.audio.is_none() {
            return false;
        }
        let audio_only = self.program.video.is_none();
        if audio_only {
            // Every audio frame is a random access point; `keyframe` says where a segment may
            // start (every frame, unless the rendition follows a video track's keyframes).
            if let LeadStep::Drop = self.lead_sample(&f, f.pts_90k, f.keyframe, stats) {
                return false;
            }
            self.lead_written(f.pts_90k);
        } else if self.open.is_none() {
            return false;
        }
        let span_full = audio_only
            && self.audio.frames > 0
            && f.pts_90k.saturating_sub(self.audio.pts_90k) >= AUDIO_ONLY_MAX_PES_90K;
        if self.audio.frames >= self.cfg.audio_frames_per_pes.max(1)
            || self.audio.len + f.len > MAX_AUDIO_PES_BYTES
            || span_full
        {
            self.flush_audio();
        }
        if self.audio.frames == 0 {
            self.audio.pts_90k = f.pts_90k;
        }
        self.audio.len += f.len;
        self.audio.frames += 1;
        self.audio.pieces.extend(f.pieces);
        true
    }

    fn flush_audio(&mut self) {
        if self.audio.frames == 0 {
            return;
        }
        let audio_only = self.program.video.is_none();
        let pcr = audio_only.then(|| self.audio.pts_90k.saturating_sub(BASE_OFFSET_90K));
        let p = PesParams {
            pid: PID_AUDIO,
            stream_id: STREAM_ID_AUDIO,
            pts_90k: self.audio.pts_90k,
            dts_90k: None,
            pcr_90k: pcr,
            random_access: audio_only,
        };
        write_pes(
            &mut self.out,
            &mut self.cc_audio,
            &p,
            &self.audio.pieces,
            self.audio.len,
        );
        self.audio.pieces.clear();
        self.audio.len = 0;
        self.audio.frames = 0;
    }

    fn open_segment(&mut self, f: &MediaFrame, independent: bool) {
        let discontinuity = std::mem::take(&mut self.discontinuity_pending);
        if let Some((program, codec)) = self.pending_program.take() {
            if program.video != self.program.video || program.audio != self.program.audio {
                self.program = Program {
                    version: (self.program.version + 1) & 0x1F,
                    ..program
                };
            }
            self.codec = codec;
        }
        let dts = if self.program.video.is_some() {
            f.dts_90k
        } else {
            f.pts_90k
        };
        self.open = Some(OpenSegment {
            sequence: self.next_sequence,
            parts: Vec::new(),
            len: 0,
            first_dts_90k: dts,
            first_arrival_ms: f.arrival_ms,
            independent,
            discontinuity: discontinuity && self.next_sequence > 0,
            codec: self.codec.clone(),
            part_first_dts_90k: dts,
            part_independent: independent,
            part_index: 0,
            last_primary_dts_90k: dts,
            // The frame step carries over so a one-frame segment at finish() gets a duration.
            last_primary_delta_90k: self.last_frame_step_90k,
            video_written: false,
            keyframe_end: None,
        });
        self.next_sequence += 1;
        self.out.reserve(self.part_capacity);
        write_pat(&mut self.out, &mut self.cc_pat);
        write_pmt(&mut self.out, &mut self.cc_pmt, &self.program);
        // Every segment starts with a PCR on its first PES.
        self.last_pcr_90k = None;
    }

    fn start_part(&mut self, t_90k: u64, independent: bool) {
        if let Some(seg) = &mut self.open {
            seg.part_first_dts_90k = t_90k;
            seg.part_independent = independent;
            self.out.reserve(self.part_capacity);
        }
    }

    fn close_part(&mut self, end_90k: u64, stats: &mut RemuxStats) {
        self.flush_audio();
        let Some(seg) = &mut self.open else { return };
        if self.out.is_empty() {
            return;
        }
        let bytes = self.out.split().freeze();
        self.part_capacity = (bytes.len() + bytes.len() / 8).max(16 * 1024);
        stats.bytes_out += bytes.len() as u64;
        stats.parts += 1;
        seg.len += bytes.len();
        seg.parts.push(bytes.clone());
        self.outputs.push_back(RemuxOutput::Part(Part {
            container: crate::Container::Ts,
            segment_sequence: seg.sequence,
            index: seg.part_index,
            chunks: vec![bytes],
            duration_90k: end_90k.saturating_sub(seg.part_first_dts_90k),
            independent: seg.part_independent,
            discontinuity: seg.discontinuity,
            segment_first_arrival_ms: seg.first_arrival_ms,
            segment_target_reached: false,
        }));
        seg.part_index += 1;
    }

    fn cut(&mut self, f: &MediaFrame, end_90k: u64, independent: bool, stats: &mut RemuxStats) {
        self.close_segment(end_90k, stats);
        self.open_segment(f, independent);
    }

    /// Closes the open segment at `end_90k` (the first DTS of what follows).
    fn close_segment(&mut self, end_90k: u64, stats: &mut RemuxStats) {
        self.close_part(end_90k, stats);
        let Some(seg) = self.open.take() else { return };
        self.last_frame_step_90k = seg.last_primary_delta_90k;
        if seg.parts.is_empty() {
            return;
        }
        // EXTINF is the real media duration: the cut policy keeps it within TARGETDURATION.
        let duration_90k = end_90k.saturating_sub(seg.first_dts_90k);
        let td = self.policy.target_duration_s;
        stats.target_duration_s = Some(td);
        stats.segments += 1;
        if seg.discontinuity {
            stats.discontinuities += 1;
        }
        self.outputs.push_back(RemuxOutput::Segment(Segment {
            container: crate::Container::Ts,
            sequence: seg.sequence,
            len: seg.len,
            parts: seg.parts,
            duration_90k,
            first_dts_90k: seg.first_dts_90k,
            independent: seg.independent,
            discontinuity: seg.discontinuity,
            target_duration_s: td,
            part_target_ms: self.policy.part_target_ms,
            init_version: 0,
            first_arrival_ms: seg.first_arrival_ms,
            codec: seg.codec,
            keyframe_range: seg.keyframe_end.map(|end| crate::ByteRange {
                offset: 0,
                len: end as u64,
            }),
        }));
    }

    /// Closes the open part and segment; the last frame's duration is estimated from the step
    /// before it (carried over from the previous segment when this one has a single frame).
    pub fn finish(&mut self, stats: &mut RemuxStats) {
        let Some(seg) = &self.open else { return };
        let end = seg
            .last_primary_dts_90k
            .saturating_add(seg.last_primary_delta_90k.max(1));
        self.close_segment(end, stats);
    }
}
