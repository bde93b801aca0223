//! The MPEG-TS path of [`Remuxer`] (ISO/IEC 13818-1): H.264 / AAC / MP3 tags are held until the
//! tracks are decided, placed on the stream-wide [`Timeline`](crate::timeline::Timeline),
//! converted to Annex B (ITU-T H.264 Annex B) and ADTS (ISO/IEC 14496-3 §1.A.2) and handed to the
//! [`Segmenter`](crate::segmenter::Segmenter).

use std::sync::Arc;

use bytes::Bytes;
use flv_tag::{AudioCodec, Codec, PacketKind, VideoCodec};

use crate::aac::{self, AacConfig, Mp3Info};
use crate::avc::{self, AvcConfig};
use crate::segmenter::MediaFrame;
use crate::timeline::ms_to_90k;
use crate::ts::pes::Piece;
use crate::ts::psi::Program;
use crate::{
    meta, AudioInfo, CodecInfo, FlvTag, Media, RemuxError, RemuxOutput, RemuxWarning, Remuxer,
    TagKind, VideoInfo,
};

/// The TS audio track's configuration.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum AudioConfig {
    Aac(AacConfig),
    Mp3(Mp3Info),
}

const VIDEO: usize = 0;
const AUDIO: usize = 1;

impl Remuxer {
    pub(crate) fn handle(&mut self, tag: FlvTag, arrival_ms: u64) -> Result<(), RemuxError> {
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
    pub(crate) fn maybe_decide(&mut self) {
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
        // Every audio frame is a random access point; an audio-only rendition that follows a
        // video track may start a segment only at that track's keyframes (`selection`).
        let cut_point = self.audio_cut_point(crate::selection::Path::Ts, ts);
        let frame = MediaFrame {
            dts_90k: dts,
            pts_90k: dts,
            keyframe: cut_point,
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
}

fn audio_stream_type(a: &AudioConfig) -> u8 {
    match a {
        AudioConfig::Aac(_) => 0x0F,
        AudioConfig::Mp3(m) => m.stream_type,
    }
}
