//! Stage 3b: the CMAF writer (ISO/IEC 23000-19 §7, fMP4 per RFC 8216bis §3.1.2). Takes the
//! access units of the stream's default video and audio tracks, cuts them with the stream's
//! [`CutPolicy`], and writes an init segment per configuration plus parts and segments.
//!
//! Every part is a sequence of CMAF chunks (ISO/IEC 23000-19 §7.3.2.3: one `moof`+`mdat`,
//! ISO/IEC 14496-12 §8.8), each emitted ([`CmafEvent::Chunk`]) the moment its media is final, so
//! the edge can stream a part while it grows (RFC 8216bis §6.2.6 preload hints):
//!
//! ```text
//!  video+audio: one chunk per video frame, with the audio samples that arrived before the
//!               next frame; written when the next frame's DTS gives the frame its duration
//!  audio only:  one chunk per AUDIO_CHUNK_MS of audio (a few frames: ~5 AAC frames at 48 kHz)
//!  part    = its chunks concatenated ([`CmafEvent::Part`] follows its last chunk)
//!  segment = styp + its parts concatenated
//! ```
//! `styp` opens the first chunk of a segment; `mfhd` sequence numbers count chunks.
//!
//! Timeline: one stream-wide offset maps every track's unwrapped DTS onto the output; jumps are
//! detected per track against that track's own last DTS (so a track that starts late is not a
//! jump), and a jump rebases the stream and starts a discontinuity segment. Video sample
//! durations are DTS deltas (the last sample of a part waits for the next DTS); audio sample
//! durations are the codec's exact frame durations, re-anchored if they drift from the RTMP
//! timestamps by more than [`AUDIO_RESYNC_MS`]. Composition offsets stay signed (`trun` v1), so
//! negative CTS needs no presentation delay.

use std::collections::VecDeque;

use bytes::Bytes;
use flv_tag::Media;

use crate::access_unit::{AccessUnit, DecoderConfig};
use crate::cut::{Cut, CutPolicy};
use crate::fmp4::{self, Fragment, Sample, TrackConfig};

/// Audio is re-anchored to its RTMP timestamps when exact frame durations drift more than this.
pub const AUDIO_RESYNC_MS: i64 = 200;

/// Output media time of the first sample (ms): room for negative composition offsets.
const ORIGIN_OFFSET_MS: i64 = 1000;

/// Audio-only streams: a chunk holds this much audio (ms) before it is written. Short enough that
/// a part (0.3 s) streams in three pieces; long enough that the `moof` costs little (about 90
/// bytes per chunk against ~1.6 kB of 128 kbit/s AAC).
pub const AUDIO_CHUNK_MS: u64 = 100;

/// fMP4 track ids in the init segment.
const VIDEO_TRACK: u32 = 1;
const AUDIO_TRACK: u32 = 2;

/// What the writer produces.
#[derive(Clone, Debug)]
pub enum CmafEvent {
    Init {
        version: u32,
        bytes: Bytes,
    },
    /// One CMAF chunk of part `part_index` (box headers, then sample data `Bytes` unchanged).
    Chunk {
        segment_sequence: u64,
        part_index: u32,
        bytes: Vec<Bytes>,
        /// The chunk starts with a lead-track sync sample (always true for audio only).
        independent: bool,
    },
    /// Closes part `index`: `chunks` are the pieces of its chunks, in order.
    Part {
        segment_sequence: u64,
        index: u32,
        chunks: Vec<Bytes>,
        duration_90k: u64,
        independent: bool,
        discontinuity: bool,
        segment_first_arrival_ms: u64,
        segment_target_reached: bool,
    },
    Segment {
        sequence: u64,
        chunks: Vec<Bytes>,
        duration_90k: u64,
        first_dts_90k: u64,
        independent: bool,
        discontinuity: bool,
        init_version: u32,
        first_arrival_ms: u64,
    },
    /// A timestamp jump on one track (output ms before and after).
    Jump {
        from_ms: i64,
        to_ms: i64,
    },
}

struct TrackOut {
    fmp4_id: u32,
    config: DecoderConfig,
    timescale: u32,
    /// Video: the last sample, waiting for the next DTS to know its duration.
    pending: Option<(u64, Sample)>,
    /// Finalised samples of the open part and the DTS of the first.
    samples: Vec<Sample>,
    base: Option<u64>,
    /// Next expected DTS (ticks) for audio continuity; last DTS for video.
    next_dts: Option<u64>,
    last_out_ms: Option<i64>,
    last_duration: u32,
}

impl TrackOut {
    fn new(fmp4_id: u32, config: DecoderConfig) -> Self {
        TrackOut {
            fmp4_id,
            timescale: config.timescale(),
            config,
            pending: None,
            samples: Vec::new(),
            base: None,
            next_dts: None,
            last_out_ms: None,
            last_duration: 0,
        }
    }

    fn ticks(&self, ms: i64) -> u64 {
        (ms.max(0) as u64).saturating_mul(u64::from(self.timescale)) / 1000
    }

    fn to_ms(&self, ticks: u64) -> i64 {
        (ticks.saturating_mul(1000) / u64::from(self.timescale.max(1))) as i64
    }

    fn push_final(&mut self, dts: u64, s: Sample) {
        self.base.get_or_insert(dts);
        self.last_duration = s.duration;
        self.samples.push(s);
    }

    /// Closes the pending video sample with the last known duration (end of a segment before a
    /// jump, a configuration change or the end of the stream).
    fn flush_pending(&mut self) {
        if let Some((dts, mut s)) = self.pending.take() {
            s.duration = self.last_duration.max(1);
            self.push_final(dts, s);
        }
    }
}

struct OpenSegment {
    sequence: u64,
    chunks: Vec<Bytes>,
    parts: u32,
    duration_90k: u64,
    first_dts_90k: u64,
    independent: bool,
    discontinuity: bool,
    first_arrival_ms: u64,
}

/// The CMAF writer for one stream.
pub struct CmafWriter {
    policy: CutPolicy,
    max_jump_ms: i64,
    video: Option<TrackOut>,
    audio: Option<TrackOut>,
    init_version: u32,
    init_dirty: bool,
    offset_ms: Option<i64>,
    seg: Option<OpenSegment>,
    next_sequence: u64,
    fragment_sequence: u32,
    /// Lead track start of the open part / segment, in output ms.
    part_start_ms: Option<i64>,
    seg_start_ms: Option<i64>,
    discontinuity_next: bool,
    part_arrival_ms: Option<u64>,
    /// The open part: pieces of the chunks written so far, its lead duration (90 kHz) and
    /// whether its first lead sample is a sync sample.
    part_chunks: Vec<Bytes>,
    part_duration_90k: u64,
    part_independent: Option<bool>,
    pub events: VecDeque<CmafEvent>,
}

impl CmafWriter {
    pub fn new(policy: CutPolicy, max_jump_ms: u32) -> Self {
        CmafWriter {
            policy,
            max_jump_ms: i64::from(max_jump_ms)
                .min(i64::from(policy.target_duration_s) * 1000)
                .max(1000),
            video: None,
            audio: None,
            init_version: 0,
            init_dirty: false,
            offset_ms: None,
            seg: None,
            next_sequence: 0,
            fragment_sequence: 0,
            part_start_ms: None,
            seg_start_ms: None,
            discontinuity_next: false,
            part_arrival_ms: None,
            part_chunks: Vec::new(),
            part_duration_90k: 0,
            part_independent: None,
            events: VecDeque::new(),
        }
    }

    pub fn policy(&self) -> &CutPolicy {
        &self.policy
    }

    /// Sets (or replaces) the configuration of the video or audio track. A change closes the
    /// open segment; the next segment follows a new init segment with a discontinuity.
    pub fn set_config(&mut self, config: DecoderConfig) {
        let media = config.media();
        let slot = match media {
            Media::Video => &mut self.video,
            Media::Audio => &mut self.audio,
        };
        if slot.as_ref().is_some_and(|t| t.config == config) {
            return;
        }
        if slot.is_some() || self.seg.is_some() {
            self.close_segment_flush();
            if self.next_sequence > 0 {
                self.discontinuity_next = true;
            }
        }
        let prev = match media {
            Media::Video => self.video.take(),
            Media::Audio => self.audio.take(),
        };
        let mut t = TrackOut::new(
            match media {
                Media::Video => VIDEO_TRACK,
                Media::Audio => AUDIO_TRACK,
            },
            config,
        );
        // Keep the track's timeline position so its jump detection continues.
        if let Some(p) = prev {
            t.last_out_ms = p.last_out_ms;
        }
        match media {
            Media::Video => self.video = Some(t),
            Media::Audio => self.audio = Some(t),
        }
        self.init_dirty = true;
    }

    /// The init segment for the current track set, if every track can be described.
    fn write_init(&mut self) -> bool {
        let mut tracks = Vec::new();
        for t in [&self.video, &self.audio].into_iter().flatten() {
            let Some(entry) = t.config.sample_entry() else {
                return false;
            };
            tracks.push(TrackConfig {
                track_id: t.fmp4_id,
                timescale: t.timescale,
                entry,
                language: None,
            });
        }
        if tracks.is_empty() {
            return false;
        }
        self.init_version += 1;
        self.events.push_back(CmafEvent::Init {
            version: self.init_version,
            bytes: fmp4::write_init(&tracks),
        });
        self.init_dirty = false;
        true
    }

    fn lead(&self) -> Media {
        if self.video.is_some() {
            Media::Video
        } else {
            Media::Audio
        }
    }

    /// Adds one access unit of the default video or audio track.
    pub fn push(&mut self, au: &AccessUnit, arrival_ms: u64) {
        let lead = self.lead();
        let Some(track) = (match au.media {
            Media::Video => self.video.as_mut(),
            Media::Audio => self.audio.as_mut(),
        }) else {
            return;
        };
        // Before the first segment: wait for a video keyframe (or any audio when audio-only),
        // and for an init segment that can be written.
        if self.seg_start_ms.is_none() && (au.media != lead || !au.keyframe) {
            return;
        }
        let offset = *self.offset_ms.get_or_insert(ORIGIN_OFFSET_MS - au.dts_ms);
        let mut out_ms = au.dts_ms + offset;
        // Per-track jump detection against this track's own last DTS.
        if let Some(last) = track.last_out_ms {
            let step = out_ms - last;
            if step > self.max_jump_ms || step < -self.max_jump_ms {
                let cont = last + track.to_ms(u64::from(track.last_duration)).max(1);
                let shift = cont - out_ms;
                self.offset_ms = Some(offset + shift);
                self.events.push_back(CmafEvent::Jump {
                    from_ms: last,
                    to_ms: out_ms,
                });
                out_ms = cont;
                self.close_segment_flush();
                self.discontinuity_next = true;
            }
        }
        if self.init_dirty && !self.write_init() {
            return;
        }
        if au.media == lead {
            let prev_ms = match lead {
                Media::Video => self.video.as_ref().and_then(|t| t.last_out_ms),
                Media::Audio => self.audio.as_ref().and_then(|t| t.last_out_ms),
            };
            let frame_ms = prev_ms.map_or(0, |p| (out_ms - p).max(0));
            if let (Some(seg_start), Some(part_start)) = (self.seg_start_ms, self.part_start_ms) {
                let cut = self.policy.decide(
                    out_ms - seg_start,
                    out_ms - part_start,
                    frame_ms,
                    au.keyframe,
                );
                if let Cut::Gap { .. } = cut {
                    // The segment ends where its media ends; the gap is a discontinuity.
                    self.close_segment_flush();
                    self.discontinuity_next = true;
                } else {
                    // The previous lead sample ends here.
                    self.finalise_video(out_ms);
                }
                match cut {
                    Cut::None | Cut::Gap { .. } => {}
                    Cut::Part => {
                        self.close_part();
                        self.part_start_ms = Some(out_ms);
                    }
                    Cut::Segment { .. } => self.close_segment(),
                }
            }
            if self.seg.is_none() {
                self.open_segment(out_ms, au.keyframe, arrival_ms);
            }
        } else if self.seg.is_none() {
            return;
        }
        self.part_arrival_ms.get_or_insert(arrival_ms);
        let Some(track) = (match au.media {
            Media::Video => self.video.as_mut(),
            Media::Audio => self.audio.as_mut(),
        }) else {
            return;
        };
        track.last_out_ms = Some(out_ms);
        let ts_dts = track.ticks(out_ms);
        let sample = Sample {
            data: vec![au.data.clone()],
            duration: au.duration.unwrap_or(0),
            composition_offset: i32::try_from(
                i64::from(au.cts_ms) * i64::from(track.timescale) / 1000,
            )
            .unwrap_or(0),
            is_sync: au.keyframe || au.media == Media::Audio, // audio: `keyframe` marks cut points only
        };
        match au.duration {
            // Audio: exact durations, continuous unless they drift from the timestamps.
            Some(d) => {
                let dts = match track.next_dts {
                    Some(n) if (track.to_ms(n) - out_ms).abs() <= AUDIO_RESYNC_MS => n,
                    _ => {
                        if !track.samples.is_empty() {
                            // A new tfdt needs a new fragment for this track: a new chunk.
                            self.write_chunk();
                        }
                        ts_dts
                    }
                };
                let track = match au.media {
                    Media::Video => self.video.as_mut(),
                    Media::Audio => self.audio.as_mut(),
                };
                if let Some(track) = track {
                    track.next_dts = Some(dts + u64::from(d));
                    track.push_final(dts, sample);
                }
                if self.video.is_none() && self.audio_chunk_full() {
                    self.write_chunk();
                }
            }
            None => {
                let dts = match track.next_dts {
                    Some(last) if ts_dts <= last => last + 1,
                    _ => ts_dts,
                };
                track.next_dts = Some(dts);
                track.pending = Some((dts, sample));
            }
        }
    }

    /// Gives the pending video sample its duration (DTS delta to `next_out_ms`).
    fn finalise_video(&mut self, next_out_ms: i64) {
        if let Some(t) = self.video.as_mut() {
            if let Some((dts, mut s)) = t.pending.take() {
                let next = t.ticks(next_out_ms).max(dts + 1);
                s.duration = u32::try_from(next - dts).unwrap_or(u32::MAX);
                t.push_final(dts, s);
                self.write_chunk();
            }
        }
    }

    /// Audio only: the open chunk holds at least [`AUDIO_CHUNK_MS`] of audio.
    fn audio_chunk_full(&self) -> bool {
        self.audio.as_ref().is_some_and(|t| {
            let ticks: u64 = t.samples.iter().map(|s| u64::from(s.duration)).sum();
            ticks * 1000 >= AUDIO_CHUNK_MS * u64::from(t.timescale.max(1))
        })
    }

    fn open_segment(&mut self, out_ms: i64, independent: bool, arrival_ms: u64) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.seg = Some(OpenSegment {
            sequence,
            chunks: Vec::new(),
            parts: 0,
            duration_90k: 0,
            first_dts_90k: (out_ms.max(0) as u64) * 90,
            independent: independent || self.video.is_none(),
            discontinuity: std::mem::take(&mut self.discontinuity_next),
            first_arrival_ms: arrival_ms,
        });
        self.seg_start_ms = Some(out_ms);
        self.part_start_ms = Some(out_ms);
    }

    /// Writes the final samples of every track as one CMAF chunk (`moof`+`mdat`, `styp` first
    /// in a segment) of the open part, and emits it.
    fn write_chunk(&mut self) {
        let Some(seg) = self.seg.as_mut() else {
            return;
        };
        let mut frags_src = Vec::new();
        let mut lead_duration_90k = 0u64;
        let lead_is_video = self.video.is_some();
        let mut lead_sync = None;
        for t in [self.video.as_mut(), self.audio.as_mut()]
            .into_iter()
            .flatten()
        {
            if t.samples.is_empty() {
                continue;
            }
            let samples = std::mem::take(&mut t.samples);
            let base = t.base.take().unwrap_or(0);
            let dur: u64 = samples.iter().map(|s| u64::from(s.duration)).sum();
            let is_lead = (t.fmp4_id == VIDEO_TRACK) == lead_is_video;
            if is_lead {
                lead_duration_90k = dur * 90_000 / u64::from(t.timescale.max(1));
                lead_sync = Some(samples[0].is_sync);
            }
            frags_src.push((t.fmp4_id, base, samples));
        }
        if frags_src.is_empty() {
            return;
        }
        let frags: Vec<Fragment<'_>> = frags_src
            .iter()
            .map(|(id, base, samples)| Fragment {
                track_id: *id,
                base_media_decode_time: *base,
                samples,
            })
            .collect();
        self.fragment_sequence = self.fragment_sequence.wrapping_add(1);
        let mut bytes = Vec::new();
        if seg.parts == 0 && self.part_chunks.is_empty() {
            bytes.push(fmp4::write_styp());
        }
        bytes.extend(fmp4::write_fragment(self.fragment_sequence, &frags));
        self.part_chunks.extend(bytes.iter().cloned());
        self.part_duration_90k += lead_duration_90k;
        if let Some(sync) = lead_sync {
            self.part_independent.get_or_insert(sync);
        }
        self.events.push_back(CmafEvent::Chunk {
            segment_sequence: seg.sequence,
            part_index: seg.parts,
            bytes,
            independent: lead_sync.unwrap_or(!lead_is_video),
        });
    }

    /// Writes what is left of the open part as a last chunk and closes the part.
    fn close_part(&mut self) {
        self.write_chunk();
        let Some(seg) = self.seg.as_mut() else {
            return;
        };
        if self.part_chunks.is_empty() {
            return;
        }
        let chunks = std::mem::take(&mut self.part_chunks);
        let lead_duration_90k = std::mem::take(&mut self.part_duration_90k);
        let independent = self.part_independent.take().unwrap_or(self.video.is_none());
        seg.chunks.extend(chunks.iter().cloned());
        seg.duration_90k += lead_duration_90k;
        let target_90k = u64::from(self.policy.target_ms) * 90;
        self.events.push_back(CmafEvent::Part {
            segment_sequence: seg.sequence,
            index: seg.parts,
            chunks,
            duration_90k: lead_duration_90k,
            independent,
            discontinuity: seg.discontinuity,
            segment_first_arrival_ms: seg.first_arrival_ms,
            segment_target_reached: seg.duration_90k >= target_90k,
        });
        seg.parts += 1;
        self.part_arrival_ms = None;
    }

    /// Closes the open part and segment (pending video takes its last duration only when the
    /// segment ends without a following sample: jumps, config changes, end of stream).
    fn close_segment(&mut self) {
        if self.seg.is_none() {
            return;
        }
        self.close_part();
        if let Some(seg) = self.seg.take() {
            self.events.push_back(CmafEvent::Segment {
                sequence: seg.sequence,
                chunks: seg.chunks,
                duration_90k: seg.duration_90k,
                first_dts_90k: seg.first_dts_90k,
                independent: seg.independent,
                discontinuity: seg.discontinuity,
                init_version: self.init_version,
                first_arrival_ms: seg.first_arrival_ms,
            });
        }
        self.seg_start_ms = None;
        self.part_start_ms = None;
    }

    /// Flushes pending samples without a following DTS, then closes the segment.
    fn close_segment_flush(&mut self) {
        if let Some(t) = self.video.as_mut() {
            t.flush_pending();
        }
        self.close_segment();
    }

    /// End of stream: everything still open becomes the last segment.
    pub fn finish(&mut self) {
        self.close_segment_flush();
    }
}
