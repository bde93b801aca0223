//! The sans-IO connection state machine: handshake → chunk stream → commands → publish
//! (RTMP §7.2).
//!
//! ```text
//!  Handshake ──C2──► AwaitConnect ──connect──► Connected ──publish──► Pending ──accept_publish──► Active
//!                                     │                                  └──reject_publish──► Refused
//!                                     └─ app not allowed: _error + CloseRequested        Active ──FCUnpublish/deleteStream──► Ended
//! ```
//!
//! Inputs: [`Session::handle_input`], [`Session::handle_timeout`], [`Session::accept_publish`],
//! [`Session::reject_publish`]. Outputs: [`Session::poll_transmit`], [`Session::poll_event`],
//! [`Session::poll_timeout`]. No sockets, no clocks: `now` is always passed in.

mod command;
mod play;

pub use play::PlayInfo;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rand::RngCore;

use crate::amf0::{self, Amf0Value};
use crate::chunk::decoder::DecoderLimits;
use crate::chunk::{message_type, ChunkDecoder, ChunkEncoder, MessageStreamId, RawMessage};
use crate::error::{Deadline, HexExcerpt, IngestError};
use crate::handshake::{Handshake, PACKET_BYTES};
use crate::message::{self, ControlMessage, UserControlEvent};
use crate::{CloseReason, IngestConfig, IngestTag, PublishRefusal, PublishSummary, TagKind};

/// Chunk stream for `_result`/`_error` replies (nginx `NGX_RTMP_CSID_AMF_INI`).
const COMMAND_CSID: u32 = 3;
/// Chunk stream for `onStatus` (nginx `NGX_RTMP_CSID_AMF`).
const STATUS_CSID: u32 = 5;

/// What a publisher asked for (the sans-IO part of [`crate::PublishRequest`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishInfo {
    pub app: String,
    /// The publish name without its query string.
    pub stream: String,
    /// Percent-decoded query parameters (stream keys: never log the values).
    pub params: Vec<(String, String)>,
    pub tc_url: Option<String>,
    pub stream_id: MessageStreamId,
}

/// Something the driver must act on.
#[derive(Clone, Debug)]
pub enum SessionEvent {
    /// Decide, then call [`Session::accept_publish`] or [`Session::reject_publish`].
    PublishRequested(PublishInfo),
    /// A media or script message of the accepted publish.
    Tag(IngestTag),
    /// The publisher ended the publish (FCUnpublish, deleteStream, closeStream).
    Unpublished,
    /// Decide, then call [`Session::accept_play`] or [`Session::reject_play`].
    PlayRequested(PlayInfo),
    /// The player stopped playing (deleteStream, closeStream): stop feeding it.
    PlayStopped,
    /// Flush the transmit queue, then close the connection.
    CloseRequested { reason: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Handshake,
    AwaitConnect,
    Connected,
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PublishState {
    Pending,
    Active,
    Refused,
    Ended,
}

#[derive(Clone, Debug)]
struct Publish {
    stream_id: MessageStreamId,
    state: PublishState,
    started: Option<Instant>,
}

/// Counters over the life of the connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub bytes_received: u64,
    pub bytes_received_at_publish: u64,
    pub audio_tags: u64,
    pub video_tags: u64,
    pub script_tags: u64,
    pub keyframes: u64,
    /// Media/script messages dropped because no publish was accepted (or it had ended).
    pub dropped_before_publish: u64,
    pub acks_sent: u64,
}

/// One RTMP connection, sans-IO.
#[derive(Debug)]
pub struct Session {
    config: Arc<IngestConfig>,
    connection_id: u64,
    phase: Phase,
    handshake: Option<Handshake>,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    transmit: BytesMut,
    /// Output in order, ahead of `transmit`: frozen control bytes and shared media slices.
    out: VecDeque<Bytes>,
    out_bytes: usize,
    scratch: BytesMut,
    events: VecDeque<SessionEvent>,
    app: String,
    tc_url: Option<String>,
    object_encoding: f64,
    created_streams: Vec<MessageStreamId>,
    streams_created: u32,
    publish: Option<Publish>,
    publish_stream_name: String,
    /// `FCPublish` was called: answer `onFCPublish` once the publish is accepted.
    fc_publish: bool,
    play: Option<play::Play>,
    peer_ack_window: Option<u32>,
    last_ack_at: u64,
    accepted_at: Instant,
    publish_deadline: Instant,
    idle_deadline: Option<Instant>,
    stats: SessionStats,
}

impl Session {
    /// A new connection accepted at `now`; handshake randomness from the thread RNG.
    pub fn new(connection_id: u64, config: Arc<IngestConfig>, now: Instant) -> Self {
        let mut random = Box::new([0u8; 2 * PACKET_BYTES]);
        rand::thread_rng().fill_bytes(&mut random[..]);
        Self::with_random(connection_id, config, now, random)
    }

    /// Like [`Session::new`] with caller-chosen handshake random bytes (deterministic tests).
    pub fn with_random(
        connection_id: u64,
        config: Arc<IngestConfig>,
        now: Instant,
        random: Box<[u8; 2 * PACKET_BYTES]>,
    ) -> Self {
        let limits = DecoderLimits {
            max_message_bytes: config.max_message_bytes,
            max_chunk_size: config.max_chunk_size.max(1),
            max_chunk_streams: config.max_chunk_streams,
            max_partial_bytes: config
                .max_partial_bytes
                .max(u64::from(config.max_message_bytes)),
        };
        let deadline = now + config.handshake_to_publish_timeout;
        Self {
            connection_id,
            phase: Phase::Handshake,
            handshake: Some(Handshake::new(random)),
            decoder: ChunkDecoder::new(limits),
            encoder: ChunkEncoder::new(),
            transmit: BytesMut::new(),
            out: VecDeque::new(),
            out_bytes: 0,
            scratch: BytesMut::new(),
            events: VecDeque::new(),
            app: String::new(),
            tc_url: None,
            object_encoding: 0.0,
            created_streams: Vec::new(),
            streams_created: 0,
            publish: None,
            publish_stream_name: String::new(),
            fc_publish: false,
            play: None,
            peer_ack_window: None,
            last_ack_at: 0,
            accepted_at: now,
            publish_deadline: deadline,
            idle_deadline: None,
            stats: SessionStats::default(),
            config,
        }
    }

    pub fn connection_id(&self) -> u64 {
        self.connection_id
    }

    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// The app from `connect` (query stripped), empty before connect.
    pub fn app(&self) -> &str {
        &self.app
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether a publish is currently accepted and running.
    pub fn is_publishing(&self) -> bool {
        self.publish
            .as_ref()
            .is_some_and(|p| p.state == PublishState::Active)
    }

    /// Bytes from the peer. An error is fatal: log it once and close the connection.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), IngestError> {
        if self.phase == Phase::Closed {
            return Ok(());
        }
        let result = self.input(now, data);
        if result.is_err() {
            self.phase = Phase::Closed;
        }
        result
    }

    fn input(&mut self, now: Instant, data: &[u8]) -> Result<(), IngestError> {
        self.stats.bytes_received = self.stats.bytes_received.saturating_add(data.len() as u64);
        if let Some(hs) = self.handshake.as_mut() {
            let done = hs.handle_input(data)?;
            if let Some(out) = hs.poll_transmit() {
                self.transmit.extend_from_slice(&out);
            }
            if !done {
                return Ok(());
            }
            let rest = hs.take_remaining();
            tracing::debug!(connection = self.connection_id, kind = ?hs.kind(), "handshake done");
            self.handshake = None;
            self.phase = Phase::AwaitConnect;
            self.decoder.handle_input(&rest)?;
        } else {
            self.decoder.handle_input(data)?;
        }
        while let Some(msg) = self.decoder.poll_message() {
            self.handle_message(now, msg)?;
            if self.phase == Phase::Closed {
                break;
            }
        }
        self.maybe_ack();
        Ok(())
    }

    /// Sends an Acknowledgement each time the peer's window has been crossed.
    fn maybe_ack(&mut self) {
        let Some(window) = self.peer_ack_window.filter(|w| *w > 0) else {
            return;
        };
        if self.stats.bytes_received.saturating_sub(self.last_ack_at) >= u64::from(window) {
            self.last_ack_at = self.stats.bytes_received;
            self.stats.acks_sent += 1;
            // The sequence number is a u32 that wraps, as in nginx.
            let sequence_number = self.stats.bytes_received as u32;
            self.send_control(&ControlMessage::Acknowledgement { sequence_number });
        }
    }

    /// A lower bound on the bytes still needed before the partly received RTMP message
    /// completes; `None` at a message boundary. See
    /// [`ChunkDecoder::bytes_to_complete_message`](crate::chunk::decoder::ChunkDecoder::bytes_to_complete_message).
    pub fn bytes_to_complete_message(&self) -> Option<usize> {
        self.decoder.bytes_to_complete_message()
    }

    /// The earliest deadline, if any (`handshake_to_publish_timeout` or `idle_timeout`).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Closed {
            return None;
        }
        if self.is_playing() {
            // A player sends next to nothing; the driver's write timeout catches a dead one.
            return None;
        }
        let play_ended = self
            .play
            .as_ref()
            .is_some_and(|p| p.state == play::PlayState::Ended);
        match self.publish.as_ref().map(|p| p.state) {
            Some(PublishState::Active | PublishState::Ended) => self.idle_deadline,
            _ if play_ended => self.idle_deadline,
            _ => Some(self.publish_deadline),
        }
    }

    /// Call at (or after) [`Session::poll_timeout`]. An error means: close the connection.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), IngestError> {
        let Some(deadline) = self.poll_timeout() else {
            return Ok(());
        };
        if now < deadline {
            return Ok(());
        }
        self.phase = Phase::Closed;
        let which = if self.idle_deadline == Some(deadline)
            && self
                .publish
                .as_ref()
                .is_some_and(|p| p.state != PublishState::Pending)
        {
            Deadline::Idle
        } else {
            Deadline::HandshakeToPublish
        };
        let elapsed = now.saturating_duration_since(self.accepted_at);
        Err(IngestError::Timeout {
            deadline: which,
            elapsed_ms: elapsed.as_millis().min(u128::from(u64::MAX)) as u64,
        })
    }

    /// Bytes to write to the peer, in order (media payloads are shared slices, never copies).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if let Some(b) = self.out.pop_front() {
            self.out_bytes -= b.len();
            return Some(b);
        }
        (!self.transmit.is_empty()).then(|| self.transmit.split().freeze())
    }

    /// Bytes waiting in [`Session::poll_transmit`].
    pub fn transmit_bytes(&self) -> usize {
        self.out_bytes + self.transmit.len()
    }

    /// Queues one message whose payload is shared, keeping it in order after everything
    /// written so far.
    fn queue_shared(
        &mut self,
        csid: u32,
        timestamp_ms: u32,
        type_id: u8,
        stream_id: MessageStreamId,
        payload: &Bytes,
    ) {
        if !self.transmit.is_empty() {
            let b = self.transmit.split().freeze();
            self.out_bytes += b.len();
            self.out.push_back(b);
        }
        let before = self.out.len();
        self.encoder.write_message_shared(
            &mut self.out,
            &mut self.scratch,
            csid,
            timestamp_ms,
            type_id,
            stream_id,
            payload,
        );
        self.out_bytes += self.out.iter().skip(before).map(Bytes::len).sum::<usize>();
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// The publish waiting for a decision, or an error naming the call made without one.
    fn pending_publish(&mut self, what: &str) -> Result<&mut Publish, IngestError> {
        self.publish
            .as_mut()
            .filter(|p| p.state == PublishState::Pending)
            .ok_or_else(|| IngestError::UnexpectedMessage {
                what: what.into(),
                state: "no publish pending",
            })
    }

    /// Accepts the pending publish: StreamBegin(stream id) + `onStatus NetStream.Publish.Start`.
    pub fn accept_publish(&mut self, now: Instant) -> Result<(), IngestError> {
        let p = self.pending_publish("accept_publish")?;
        p.state = PublishState::Active;
        p.started = Some(now);
        let stream_id = p.stream_id;
        self.stats.bytes_received_at_publish = self.stats.bytes_received;
        self.stats.audio_tags = 0;
        self.stats.video_tags = 0;
        self.stats.script_tags = 0;
        self.stats.keyframes = 0;
        self.idle_deadline = Some(now + self.config.idle_timeout);
        self.send_control(&ControlMessage::UserControl(
            UserControlEvent::StreamBegin { stream_id },
        ));
        if std::mem::take(&mut self.fc_publish) {
            let info = Amf0Value::object([
                ("code", Amf0Value::string("NetStream.Publish.Start")),
                ("description", Amf0Value::string(&self.publish_stream_name)),
            ]);
            self.send_command(
                COMMAND_CSID,
                0,
                &[
                    Amf0Value::string("onFCPublish"),
                    Amf0Value::Number(0.0),
                    Amf0Value::Null,
                    info,
                ],
            );
        }
        let description = format!("{} is now published.", self.publish_stream_name);
        self.send_status(stream_id, "status", "NetStream.Publish.Start", &description);
        Ok(())
    }

    /// Refuses the pending publish with an error `onStatus` (the client is expected to close).
    pub fn reject_publish(&mut self, refusal: PublishRefusal) -> Result<(), IngestError> {
        let p = self.pending_publish("reject_publish")?;
        p.state = PublishState::Refused;
        let stream_id = p.stream_id;
        self.fc_publish = false;
        let (code, description) = match &refusal {
            PublishRefusal::BadName(d) => ("NetStream.Publish.BadName", d.as_str()),
            PublishRefusal::Unauthorized(d) => ("NetStream.Publish.Unauthorized", d.as_str()),
        };
        self.send_status(stream_id, "error", code, description);
        Ok(())
    }

    /// The summary handed to [`crate::MediaSink::on_close`].
    pub fn publish_summary(&self, now: Instant, reason: CloseReason) -> PublishSummary {
        let started = self.publish.as_ref().and_then(|p| p.started).unwrap_or(now);
        PublishSummary {
            reason,
            duration: now.saturating_duration_since(started),
            bytes_received: self
                .stats
                .bytes_received
                .saturating_sub(self.stats.bytes_received_at_publish),
            audio_tags: self.stats.audio_tags,
            video_tags: self.stats.video_tags,
            keyframes: self.stats.keyframes,
        }
    }

    fn amf_error(msg: &RawMessage, e: IngestError) -> IngestError {
        match e {
            IngestError::Amf0 {
                reason,
                offset,
                excerpt,
            } => IngestError::MalformedMessage {
                csid: msg.csid,
                type_id: msg.type_id,
                reason: format!("AMF0: {reason}"),
                offset,
                excerpt,
            },
            other => other,
        }
    }

    fn handle_message(&mut self, now: Instant, msg: RawMessage) -> Result<(), IngestError> {
        match msg.type_id {
            message_type::AUDIO => self.media(now, TagKind::Audio, msg.timestamp_ms, msg.payload),
            message_type::VIDEO => self.media(now, TagKind::Video, msg.timestamp_ms, msg.payload),
            message_type::AMF0_DATA | message_type::AMF3_DATA => self.data(now, &msg)?,
            message_type::AMF0_COMMAND | message_type::AMF3_COMMAND => self.command(now, &msg)?,
            message_type::AGGREGATE => {
                for part in message::split_aggregate(msg.csid, msg.timestamp_ms, &msg.payload)? {
                    let sub = RawMessage {
                        csid: msg.csid,
                        timestamp_ms: part.timestamp_ms,
                        type_id: part.type_id,
                        stream_id: msg.stream_id,
                        payload: part.payload,
                    };
                    match part.type_id {
                        message_type::AUDIO | message_type::VIDEO | message_type::AMF0_DATA => {
                            self.handle_message(now, sub)?
                        }
                        other => tracing::debug!(
                            connection = self.connection_id,
                            type_id = other,
                            "aggregate sub-message ignored"
                        ),
                    }
                }
            }
            message_type::AMF0_SHARED_OBJECT | message_type::AMF3_SHARED_OBJECT => {
                tracing::debug!(
                    connection = self.connection_id,
                    "shared object message ignored"
                );
            }
            t @ (1..=6) => match message::parse_control(msg.csid, t, &msg.payload)? {
                Some(ControlMessage::WindowAckSize { window_bytes }) => {
                    self.peer_ack_window = Some(window_bytes)
                }
                Some(ControlMessage::UserControl(UserControlEvent::PingRequest { timestamp })) => {
                    self.send_control(&ControlMessage::UserControl(
                        UserControlEvent::PingResponse { timestamp },
                    ));
                }
                // Set Chunk Size and Abort were applied by the decoder; the rest needs no action.
                _ => {}
            },
            other => tracing::debug!(
                connection = self.connection_id,
                type_id = other,
                "unknown message type ignored"
            ),
        }
        Ok(())
    }

    fn media(&mut self, now: Instant, kind: TagKind, timestamp_ms: u32, payload: Bytes) {
        if !self.is_publishing() {
            self.stats.dropped_before_publish += 1;
            if self.stats.dropped_before_publish == 1 {
                tracing::warn!(
                    connection = self.connection_id,
                    ?kind,
                    "media before an accepted publish: dropped (counted)"
                );
            }
            return;
        }
        let info = match kind {
            TagKind::Audio => {
                self.stats.audio_tags += 1;
                flv_tag::inspect(flv_tag::Media::Audio, &payload)
            }
            TagKind::Video => {
                self.stats.video_tags += 1;
                let info = flv_tag::inspect(flv_tag::Media::Video, &payload);
                if info.is_some_and(|i| i.is_keyframe && !i.is_sequence_header) {
                    self.stats.keyframes += 1;
                }
                info
            }
            TagKind::Script => {
                self.stats.script_tags += 1;
                None
            }
        };
        self.idle_deadline = Some(now + self.config.idle_timeout);
        self.events.push_back(SessionEvent::Tag(IngestTag {
            kind,
            timestamp_ms,
            payload,
            info,
        }));
    }

    /// Data messages: strip `@setDataFrame` (zero-copy slice) and deliver the rest as a Script tag.
    fn data(&mut self, now: Instant, msg: &RawMessage) -> Result<(), IngestError> {
        let mut body = msg.payload.clone();
        if msg.type_id == message_type::AMF3_DATA && body.first() == Some(&0) {
            body = body.slice(1..);
        }
        if body.is_empty() {
            return Ok(());
        }
        let (first, used) = amf0::decode_one(&body, self.config.amf_limits())
            .map_err(|e| Self::amf_error(msg, e))?;
        match first.as_str() {
            Some("@setDataFrame") => {
                self.media(now, TagKind::Script, msg.timestamp_ms, body.slice(used..))
            }
            Some("@clearDataFrame") => {}
            _ => self.media(now, TagKind::Script, msg.timestamp_ms, body),
        }
        Ok(())
    }

    fn send_control(&mut self, msg: &ControlMessage) {
        message::write_control(&mut self.encoder, &mut self.transmit, msg);
    }

    fn send_command(&mut self, csid: u32, stream_id: MessageStreamId, values: &[Amf0Value]) {
        let mut body = BytesMut::new();
        amf0::encode_all(values, &mut body);
        self.encoder.write_message(
            &mut self.transmit,
            csid,
            0,
            message_type::AMF0_COMMAND,
            stream_id,
            &body,
        );
    }

    fn send_status(
        &mut self,
        stream_id: MessageStreamId,
        level: &str,
        code: &str,
        description: &str,
    ) {
        let info = Amf0Value::object([
            ("level", Amf0Value::string(level)),
            ("code", Amf0Value::string(code)),
            ("description", Amf0Value::string(description)),
        ]);
        self.send_command(
            STATUS_CSID,
            stream_id,
            &[
                Amf0Value::string("onStatus"),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
                info,
            ],
        );
    }

    fn malformed(msg: &RawMessage, reason: &str) -> IngestError {
        IngestError::MalformedMessage {
            csid: msg.csid,
            type_id: msg.type_id,
            reason: reason.to_owned(),
            offset: 0,
            excerpt: HexExcerpt::of(&msg.payload),
        }
    }

    fn idle_after_unpublish(&mut self, now: Instant) {
        self.idle_deadline = Some(now + self.config.idle_timeout);
    }
}

#[cfg(test)]
mod tests;
