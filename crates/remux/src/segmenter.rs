//! Segmenter and part builder: decides where segments and parts are cut and writes the TS bytes
//! (HLS [RFC 8216bis] §3.1 / §4.4.3.1 target duration, §4.4.4.9 parts; ISO/IEC 13818-1 for TS).
//!
//! * A segment starts with PAT, PMT and — when the stream has video — a keyframe PES.
//! * Cut at the first video keyframe at or after the target (audio-only: the first audio frame).
//! * The playlist target duration is fixed when the first segment closes (or pinned by the
//!   caller). A segment that would outgrow it is cut at a non-keyframe (a *forced cut*:
//!   counted, warned, `independent: false`). The open segment is also force-cut when its bytes
//!   reach `max_segment_bytes`, so a stream without keyframes cannot grow without bound.
//! * Parts end on frame boundaries; a segment's body is the list of its parts' `Bytes`.
//! * Audio PES group up to `audio_frames_per_pes` frames, flushed at part boundaries.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

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
    /// The playlist's EXT-X-TARGETDURATION once fixed.
    pub target_duration_s: Option<u32>,
    /// The last frame step of the previous segment, for one-frame segments.
    last_frame_step_90k: u64,
    /// Cut at the next opportunity and mark the new segment as a discontinuity.
    cut_requested: bool,
    discontinuity_pending: bool,
    /// Program/codec to switch to at the next cut.
    pending_program: Option<(Program, Arc<CodecInfo>)>,
    part_capacity: usize,
    pub outputs: VecDeque<RemuxOutput>,
}

impl Segmenter {
    pub fn new(cfg: RemuxConfig, program: Program, codec: Arc<CodecInfo>) -> Self {
        let target_duration_s = cfg.fixed_target_duration_s.filter(|s| *s > 0);
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
            target_duration_s,
            last_frame_step_90k: 0,
            cut_requested: false,
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

    /// Start a new segment, marked discontinuity, at the next cut opportunity.
    pub fn request_discontinuity(&mut self) {
        self.cut_requested = true;
        self.discontinuity_pending = true;
    }

    /// Switches program/codec info at the next cut (a discontinuity if the tracks changed).
    pub fn request_program(&mut self, program: Program, codec: Arc<CodecInfo>) {
        self.pending_program = Some((program, codec));
        self.request_discontinuity();
    }

    /// Replaces the codec info for segments opened from now on (no cut; e.g. measured frame rate).
    pub fn refresh_codec(&mut self, codec: Arc<CodecInfo>) {
        self.codec = codec;
    }

    fn target_90k(&self) -> u64 {
        let mut ms = u64::from(self.cfg.target_duration_ms.max(1));
        if let Some(p) = self.cfg.fixed_target_duration_s.filter(|s| *s > 0) {
            ms = ms.min(u64::from(p) * 1000);
        }
        ms * 90
    }

    /// The longest a segment may be. HLS requires every EXTINF *rounded to the nearest integer*
    /// to be <= EXT-X-TARGETDURATION, so a segment may last up to (but not including) TD + 0.5 s.
    /// Cutting at TD instead would force non-keyframe cuts on every stream whose GOP is exactly
    /// the target (2.000 s GOPs arrive as 1.967 + 0.034 s of millisecond timestamps).
    fn limit_90k(&self) -> u64 {
        let s = self.target_duration_s.unwrap_or_else(|| {
            self.cfg
                .max_target_duration_s
                .max(1)
                .max(self.cfg.target_duration_ms.div_ceil(1000))
        });
        max_honest_duration_90k(s)
    }

    fn part_90k(&self) -> u64 {
        u64::from(self.cfg.part_target_ms.max(1)) * 90
    }

    /// Pushes a video frame. Frames before the first keyframe are dropped (returns false).
    pub fn push_video(&mut self, f: MediaFrame, stats: &mut RemuxStats) -> bool {
        if self.program.video.is_none() {
            return false;
        }
        match &self.open {
            None => {
                if !f.keyframe {
                    return false;
                }
                self.open_segment(&f, true);
            }
            Some(seg) => {
                let elapsed = f.dts_90k.saturating_sub(seg.first_dts_90k);
                let keyframe_cut =
                    f.keyframe && (elapsed >= self.target_90k() || self.cut_requested);
                let too_long =
                    elapsed.saturating_add(seg.last_primary_delta_90k) > self.limit_90k();
                let too_big = seg.len + self.out.len() + f.len >= self.cfg.max_segment_bytes;
                if keyframe_cut {
                    self.cut(&f, true, stats);
                } else if too_long || too_big {
                    stats.forced_cuts += 1;
                    let reason = if too_big {
                        "max_segment_bytes"
                    } else {
                        "target duration"
                    };
                    self.outputs
                        .push_back(RemuxOutput::Warning(RemuxWarning::ForcedCut {
                            sequence: self.next_sequence,
                            reason,
                        }));
                    // A byte-limit cut can land on a keyframe: that segment is still independent.
                    self.cut(&f, f.keyframe, stats);
                } else if f.dts_90k.saturating_sub(seg.part_first_dts_90k) >= self.part_90k() {
                    self.close_part(f.dts_90k, stats);
                    self.start_part(&f, f.keyframe);
                }
            }
        }
        if let Some(seg) = &mut self.open {
            seg.last_primary_delta_90k = f
                .dts_90k
                .saturating_sub(seg.last_primary_dts_90k)
                .min(90_000);
            seg.last_primary_dts_90k = f.dts_90k;
        }
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
        true
    }

    /// Pushes an audio frame (one AAC frame with its ADTS header, or an MP3 frame).
    pub fn push_audio(&mut self, f: MediaFrame, stats: &mut RemuxStats) -> bool {
        if self.program.audio.is_none() {
            return false;
        }
        let audio_only = self.program.video.is_none();
        if audio_only {
            match &self.open {
                None => self.open_segment(&f, true),
                Some(seg) => {
                    let elapsed = f.pts_90k.saturating_sub(seg.first_dts_90k);
                    let over_limit =
                        elapsed.saturating_add(seg.last_primary_delta_90k) > self.limit_90k();
                    if elapsed >= self.target_90k() || self.cut_requested || over_limit {
                        self.cut(&f, true, stats);
                    } else if f.pts_90k.saturating_sub(seg.part_first_dts_90k) >= self.part_90k() {
                        self.close_part(f.pts_90k, stats);
                        self.start_part(&f, true);
                    }
                }
            }
            if let Some(seg) = &mut self.open {
                seg.last_primary_delta_90k = f
                    .pts_90k
                    .saturating_sub(seg.last_primary_dts_90k)
                    .min(90_000);
                seg.last_primary_dts_90k = f.pts_90k;
            }
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
        self.cut_requested = false;
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
        });
        self.next_sequence += 1;
        self.out.reserve(self.part_capacity);
        write_pat(&mut self.out, &mut self.cc_pat);
        write_pmt(&mut self.out, &mut self.cc_pmt, &self.program);
        // Every segment starts with a PCR on its first PES.
        self.last_pcr_90k = None;
    }

    fn start_part(&mut self, f: &MediaFrame, independent: bool) {
        if let Some(seg) = &mut self.open {
            seg.part_first_dts_90k = if self.program.video.is_some() {
                f.dts_90k
            } else {
                f.pts_90k
            };
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
        }));
        seg.part_index += 1;
    }

    fn cut(&mut self, f: &MediaFrame, independent: bool, stats: &mut RemuxStats) {
        let end = if self.program.video.is_some() {
            f.dts_90k
        } else {
            f.pts_90k
        };
        self.close_segment(end, stats);
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
        let mut duration_90k = end_90k.saturating_sub(seg.first_dts_90k);
        let td = match self.target_duration_s {
            Some(td) => td,
            None => {
                let want = self
                    .cfg
                    .target_duration_ms
                    .div_ceil(1000)
                    .max(u32::try_from(duration_90k.div_ceil(90_000)).unwrap_or(u32::MAX));
                let td = want
                    .min(
                        self.cfg
                            .max_target_duration_s
                            .max(self.cfg.target_duration_ms.div_ceil(1000)),
                    )
                    .max(1);
                self.target_duration_s = Some(td);
                stats.target_duration_s = Some(td);
                td
            }
        };
        if duration_90k > max_honest_duration_90k(td) {
            // Only reachable when a timestamp gap lands on the cut: keep the playlist honest.
            duration_90k = max_honest_duration_90k(td);
            stats.durations_clamped += 1;
        }
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
            part_target_ms: self.cfg.part_target_ms,
            init_version: 0,
            first_arrival_ms: seg.first_arrival_ms,
            codec: seg.codec,
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

/// The longest duration whose rounding to the nearest second is still `td_s` (HLS §4.4.3.1).
fn max_honest_duration_90k(td_s: u32) -> u64 {
    u64::from(td_s) * 90_000 + 45_000 - 1
}
