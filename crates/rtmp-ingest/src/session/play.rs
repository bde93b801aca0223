//! The player side of a session: `play`, `pause`, `seek`, `receiveAudio`/`receiveVideo` and
//! the media a player receives (RTMP §7.2.2.1, §7.2.2.4–§7.2.2.8; status codes of the
//! ActionScript 3.0 `NetStatusEvent.info` reference).
//!
//! ```text
//!  play ──► Pending ──accept_play──► Active ──deleteStream/closeStream──► Ended
//!              └──reject_play──► Refused (error onStatus, then close)
//!  Active: StreamBegin(sid), Play.Reset, Play.Start, |RtmpSampleAccess, then send_media(tag)...
//!          publisher_left ─► StreamEOF + Play.UnpublishNotify   (players exit, or wait for:)
//!          publisher_returned ─► StreamBegin + Play.PublishNotify, media from the next keyframe
//! ```
//!
//! Every reply is `["onStatus", 0, null, {level, code, description}]` on the play stream's
//! message stream id: libavformat parses that shape positionally and treats `level: "error"` as
//! fatal; GStreamer's rtmp2src needs it on the created stream id. Media keeps the publisher's
//! timestamps rebased so each player's clock starts at 0 (librtmp's `-B`/stop offsets and
//! progress count from the first timestamp) and continues when a new publisher restarts at 0.

use std::time::Instant;

use bytes::Bytes;

use super::command::Command;
use super::{Session, SessionEvent};
use crate::amf0::{self, Amf0Value};
use crate::chunk::{message_type, MessageStreamId, RawMessage};
use crate::error::IngestError;
use crate::message::{ControlMessage, UserControlEvent};
use crate::{query, IngestTag, PlayRefusal, TagKind};

/// Chunk streams for a player's media (nginx-rtmp `ngx_rtmp_streams.h` numbering; peers do not
/// care which csid carries what).
const AUDIO_CSID: u32 = 6;
const VIDEO_CSID: u32 = 7;
const DATA_CSID: u32 = 5;

/// What a player asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct PlayInfo {
    pub app: String,
    /// The play name without its query string.
    pub stream: String,
    /// Percent-decoded query parameters (play tokens: never log the values).
    pub params: Vec<(String, String)>,
    pub tc_url: Option<String>,
    pub stream_id: MessageStreamId,
    /// The `start` argument as sent (-2, -2000, -1, -1000, 0, > 0): live playback ignores it.
    pub start: f64,
    /// The `duration` argument in ms if positive (librtmp's `--stop`): the play ends with
    /// `Play.Stop` after that much media.
    pub duration_ms: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PlayState {
    Pending,
    Active,
    Refused,
    Ended,
}

#[derive(Debug)]
pub(super) struct Play {
    pub(super) stream_id: MessageStreamId,
    pub(super) state: PlayState,
    name: String,
    paused: bool,
    receive_audio: bool,
    receive_video: bool,
    /// Video is held back until a keyframe (start, seek, unpause, receiveVideo, publisher back).
    need_keyframe: bool,
    /// Re-send the cached sequence headers in front of that keyframe (after a seek or pause the
    /// player may have flushed its decoder).
    resend_headers: bool,
    video_header: Option<IngestTag>,
    audio_header: Option<IngestTag>,
    pub(super) sent_tags: u64,
    /// Publisher timestamp that maps to the player's `last_out_ms` on the next tag (set at
    /// the start and when a publisher returns): each player's clock starts at 0 and never
    /// steps back when a new publisher restarts at 0.
    rebase: bool,
    base_ms: u32,
    last_out_ms: u32,
    stop_at_ms: Option<u32>,
}

impl Session {
    /// `play(name, start, duration, reset)` on a created stream.
    pub(super) fn play_command(&mut self, stream_id: MessageStreamId, cmd: &Command) {
        let busy = self
            .play
            .as_ref()
            .is_some_and(|p| matches!(p.state, PlayState::Pending | PlayState::Active));
        if busy || self.is_publishing() || !self.created_streams.contains(&stream_id) {
            let why = if busy {
                "already playing on this connection"
            } else if self.is_publishing() {
                "cannot play while publishing on this connection"
            } else {
                "play on a stream that was not created"
            };
            self.send_status(stream_id, "error", "NetStream.Play.Failed", why);
            return;
        }
        let name = cmd.args.first().and_then(|v| v.as_str()).unwrap_or("");
        let start = cmd.args.get(1).and_then(|v| v.as_number()).unwrap_or(-2.0);
        let duration_ms = cmd
            .args
            .get(2)
            .and_then(|v| v.as_number())
            .filter(|d| *d > 0.0)
            .map(|d| d.min(f64::from(u32::MAX)) as u32);
        let (stream, params) = query::split_stream_name(name);
        self.play = Some(Play {
            stream_id,
            state: PlayState::Pending,
            name: stream.clone(),
            paused: false,
            receive_audio: true,
            receive_video: true,
            need_keyframe: true,
            resend_headers: false,
            video_header: None,
            audio_header: None,
            sent_tags: 0,
            rebase: true,
            base_ms: 0,
            last_out_ms: 0,
            stop_at_ms: duration_ms,
        });
        self.events.push_back(SessionEvent::PlayRequested(PlayInfo {
            app: self.app.clone(),
            stream,
            params,
            tc_url: self.tc_url.clone(),
            stream_id,
            start,
            duration_ms,
        }));
    }

    fn pending_play(&mut self, what: &str) -> Result<&mut Play, IngestError> {
        self.play
            .as_mut()
            .filter(|p| p.state == PlayState::Pending)
            .ok_or_else(|| IngestError::UnexpectedMessage {
                what: what.into(),
                state: "no play pending",
            })
    }

    /// Whether a play is accepted and running.
    pub fn is_playing(&self) -> bool {
        self.play
            .as_ref()
            .is_some_and(|p| p.state == PlayState::Active)
    }

    /// Starts the pending play: StreamBegin, `Play.Reset`, `Play.Start`, `|RtmpSampleAccess`
    /// (RTMP §7.2.2.1). Media follows through [`Session::send_media`].
    pub fn accept_play(&mut self, _now: Instant) -> Result<(), IngestError> {
        let p = self.pending_play("accept_play")?;
        p.state = PlayState::Active;
        let (stream_id, name) = (p.stream_id, p.name.clone());
        self.send_control(&ControlMessage::UserControl(
            UserControlEvent::StreamBegin { stream_id },
        ));
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.Reset",
            &format!("Playing and resetting {name}."),
        );
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.Start",
            &format!("Started playing {name}."),
        );
        self.send_data(
            stream_id,
            &[
                Amf0Value::string("|RtmpSampleAccess"),
                Amf0Value::Boolean(true),
                Amf0Value::Boolean(true),
            ],
        );
        Ok(())
    }

    /// Refuses the pending play with an error `onStatus`, then asks the driver to close
    /// (every client treats these codes as the end of the session).
    pub fn reject_play(&mut self, refusal: PlayRefusal) -> Result<(), IngestError> {
        let p = self.pending_play("reject_play")?;
        p.state = PlayState::Refused;
        let stream_id = p.stream_id;
        let (code, description) = match &refusal {
            PlayRefusal::NotFound(d) => ("NetStream.Play.StreamNotFound", d.as_str()),
            PlayRefusal::Unauthorized(d) | PlayRefusal::Failed(d) => {
                ("NetStream.Play.Failed", d.as_str())
            }
        };
        self.send_status(stream_id, "error", code, description);
        self.events.push_back(SessionEvent::CloseRequested {
            reason: format!("play refused: {code}"),
        });
        Ok(())
    }

    /// The publisher of the played stream left: StreamEOF + `Play.UnpublishNotify`, which makes
    /// libavformat and librtmp players end cleanly. Media resumes at a keyframe if a publisher
    /// returns ([`Session::publisher_returned`]).
    pub fn publisher_left(&mut self) {
        let Some(p) = self.play.as_mut().filter(|p| p.state == PlayState::Active) else {
            return;
        };
        p.need_keyframe = true;
        p.resend_headers = false;
        p.video_header = None;
        p.audio_header = None;
        let (stream_id, name) = (p.stream_id, p.name.clone());
        self.send_control(&ControlMessage::UserControl(UserControlEvent::StreamEof {
            stream_id,
        }));
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.UnpublishNotify",
            &format!("{name} is now unpublished."),
        );
    }

    /// A publisher of the played stream is back within the grace period.
    pub fn publisher_returned(&mut self) {
        let Some(p) = self.play.as_mut().filter(|p| p.state == PlayState::Active) else {
            return;
        };
        p.rebase = true;
        let (stream_id, name) = (p.stream_id, p.name.clone());
        self.send_control(&ControlMessage::UserControl(
            UserControlEvent::StreamBegin { stream_id },
        ));
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.PublishNotify",
            &format!("{name} is now published."),
        );
    }

    /// The played stream is gone for good: `Play.Stop`, then close.
    pub fn end_play(&mut self, reason: &str) {
        let Some(p) = self.play.as_mut().filter(|p| p.state == PlayState::Active) else {
            return;
        };
        p.state = PlayState::Ended;
        let stream_id = p.stream_id;
        self.send_control(&ControlMessage::UserControl(UserControlEvent::StreamEof {
            stream_id,
        }));
        self.send_status(stream_id, "status", "NetStream.Play.Stop", reason);
        self.events.push_back(SessionEvent::CloseRequested {
            reason: format!("play ended: {reason}"),
        });
    }

    /// Queues one tag of the played stream for the player (chunk headers written, payload
    /// slices shared). Returns whether it was sent; a paused player, a muted track or an inter
    /// frame while waiting for a keyframe is skipped.
    pub fn send_media(&mut self, tag: &IngestTag) -> bool {
        let Some(p) = self.play.as_mut().filter(|p| p.state == PlayState::Active) else {
            return false;
        };
        let header = tag.info.is_some_and(|i| i.is_sequence_header);
        let mut prefix: [Option<IngestTag>; 2] = [None, None];
        match tag.kind {
            TagKind::Audio => {
                if header {
                    p.audio_header = Some(tag.clone());
                }
                if p.paused || !p.receive_audio {
                    return false;
                }
            }
            TagKind::Video => {
                if header {
                    p.video_header = Some(tag.clone());
                }
                if p.paused || !p.receive_video {
                    return false;
                }
                if p.need_keyframe && !header {
                    if !tag.info.is_some_and(|i| i.is_keyframe) {
                        return false;
                    }
                    p.need_keyframe = false;
                    if std::mem::take(&mut p.resend_headers) {
                        let stamp = |h: &Option<IngestTag>| {
                            h.as_ref().map(|h| IngestTag {
                                timestamp_ms: tag.timestamp_ms,
                                ..h.clone()
                            })
                        };
                        prefix = [stamp(&p.video_header), stamp(&p.audio_header)];
                    }
                }
            }
            TagKind::Script => {
                if p.paused {
                    return false;
                }
            }
        }
        p.sent_tags += 1;
        if std::mem::take(&mut p.rebase) {
            p.base_ms = tag.timestamp_ms.wrapping_sub(p.last_out_ms);
        }
        // Slightly earlier tags (audio interleaved behind video) clamp to the first one.
        let diff = tag.timestamp_ms.wrapping_sub(p.base_ms) as i32;
        let out_ms = u32::try_from(diff).unwrap_or(0);
        p.last_out_ms = p.last_out_ms.max(out_ms);
        let stream_id = p.stream_id;
        let done = p.stop_at_ms.is_some_and(|stop| out_ms >= stop);
        for t in prefix.iter().flatten() {
            self.write_tag(stream_id, t, out_ms);
        }
        self.write_tag(stream_id, tag, out_ms);
        if done {
            self.end_play("requested duration played");
        }
        true
    }

    fn write_tag(&mut self, stream_id: MessageStreamId, tag: &IngestTag, timestamp_ms: u32) {
        let csid = match tag.kind {
            TagKind::Audio => AUDIO_CSID,
            TagKind::Video => VIDEO_CSID,
            TagKind::Script => DATA_CSID,
        };
        self.queue_shared(
            csid,
            timestamp_ms,
            tag.kind.type_id(),
            stream_id,
            &tag.payload,
        );
    }

    /// An AMF0 data message (type 18) on the play stream.
    fn send_data(&mut self, stream_id: MessageStreamId, values: &[Amf0Value]) {
        let mut body = bytes::BytesMut::new();
        amf0::encode_all(values, &mut body);
        self.queue_shared(
            DATA_CSID,
            0,
            message_type::AMF0_DATA,
            stream_id,
            &Bytes::from(body),
        );
    }

    /// The play stream, if `stream_id` is it and it runs.
    fn active_play(&mut self, stream_id: MessageStreamId) -> Option<&mut Play> {
        self.play
            .as_mut()
            .filter(|p| p.state == PlayState::Active && p.stream_id == stream_id)
    }

    /// `pause(flag, ms)` (RTMP §7.2.2.8): Pause.Notify + StreamEOF, or Unpause.Notify +
    /// StreamBegin and a restart at the next keyframe.
    pub(super) fn pause_command(&mut self, msg: &RawMessage, cmd: &Command) {
        let pause = cmd.args.first().and_then(bool_arg).unwrap_or(true);
        let Some(p) = self.active_play(msg.stream_id) else {
            return;
        };
        p.paused = pause;
        if !pause {
            p.need_keyframe = true;
            p.resend_headers = true;
        }
        let (stream_id, name) = (p.stream_id, p.name.clone());
        let (event, code, what) = if pause {
            (
                UserControlEvent::StreamEof { stream_id },
                "NetStream.Pause.Notify",
                "Paused",
            )
        } else {
            (
                UserControlEvent::StreamBegin { stream_id },
                "NetStream.Unpause.Notify",
                "Unpaused",
            )
        };
        self.send_status(stream_id, "status", code, &format!("{what} {name}."));
        self.send_control(&ControlMessage::UserControl(event));
    }

    /// `seek(ms)` (RTMP §7.2.2.7): a live stream cannot seek, but libavformat drops every
    /// packet after a seek until `Seek.Notify` arrives, so answer it and continue from the
    /// next keyframe.
    pub(super) fn seek_command(&mut self, msg: &RawMessage) {
        self.restart_at_keyframe(msg.stream_id);
    }

    /// `receiveAudio(bool)` / `receiveVideo(bool)` (RTMP §7.2.2.4, §7.2.2.5): false mutes
    /// the track without a reply; true answers like a seek.
    pub(super) fn receive_command(&mut self, msg: &RawMessage, cmd: &Command, video: bool) {
        let on = cmd.args.first().and_then(bool_arg).unwrap_or(true);
        let Some(p) = self.active_play(msg.stream_id) else {
            return;
        };
        if video {
            p.receive_video = on;
        } else {
            p.receive_audio = on;
        }
        if on {
            self.restart_at_keyframe(msg.stream_id);
        }
    }

    fn restart_at_keyframe(&mut self, stream_id: MessageStreamId) {
        let Some(p) = self.active_play(stream_id) else {
            return;
        };
        p.need_keyframe = true;
        p.resend_headers = true;
        let name = p.name.clone();
        self.send_status(
            stream_id,
            "status",
            "NetStream.Seek.Notify",
            &format!("Seeking {name}."),
        );
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.Start",
            &format!("Started playing {name}."),
        );
    }

    /// `deleteStream`/`closeStream` on the play stream: stop sending.
    pub(super) fn stop_play(&mut self, now: Instant, stream_id: MessageStreamId) {
        let Some(p) = self
            .play
            .as_mut()
            .filter(|p| p.stream_id == stream_id && p.state != PlayState::Ended)
        else {
            return;
        };
        let was_running = matches!(p.state, PlayState::Active | PlayState::Pending);
        p.state = PlayState::Ended;
        if was_running {
            self.idle_deadline = Some(now + self.config.idle_timeout);
            self.events.push_back(SessionEvent::PlayStopped);
        }
    }
}

fn bool_arg(v: &Amf0Value) -> Option<bool> {
    match v {
        Amf0Value::Boolean(b) => Some(*b),
        Amf0Value::Number(n) => Some(*n != 0.0),
        _ => None,
    }
}
