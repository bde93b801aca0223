//! NetConnection / NetStream commands (RTMP §7.2.1–7.2.2; Enhanced RTMP v2
//! "Enhancing NetConnection connect Command").

use std::time::Instant;

use super::{Phase, Publish, PublishInfo, PublishState, Session, SessionEvent, COMMAND_CSID};
use crate::amf0::{self, Amf0Value};
use crate::chunk::{message_type, MessageStreamId, RawMessage};
use crate::error::IngestError;
use crate::message::{BandwidthLimit, ControlMessage, UserControlEvent};
use crate::query;

/// A decoded command: name, transaction id, command object, further arguments.
pub(super) struct Command {
    pub(super) name: String,
    pub(super) txn: f64,
    pub(super) object: Amf0Value,
    pub(super) args: Vec<Amf0Value>,
}

/// FourCCs we can forward (E-RTMP `fourCcList`, `*FourCcInfoMap` with CanForward = 4): exactly
/// the codecs the HLS pipeline (`remux`) writes, no more (VP8, VVC, FLAC, AC-3 would be dropped).
const VIDEO_FOURCCS: [&str; 4] = ["avc1", "hvc1", "av01", "vp09"];
const AUDIO_FOURCCS: [&str; 3] = ["mp4a", ".mp3", "Opus"];
const FOURCC_CAN_FORWARD: f64 = 4.0;
/// capsEx: Multitrack (2) | ModEx (4). Reconnect and nano offsets are not advertised.
const CAPS_EX: f64 = 6.0;

impl Session {
    fn decode_command(&self, msg: &RawMessage) -> Result<Command, IngestError> {
        let mut body = &msg.payload[..];
        if msg.type_id == message_type::AMF3_COMMAND && body.first() == Some(&0) {
            // AMF3 command: one format-selector byte 0, then AMF0 (nginx `ngx_rtmp_receive.c`).
            body = &body[1..];
        }
        let mut d = amf0::Decoder::new(body, self.config.amf_limits());
        let mut next = || d.next_value().map_err(|e| Self::amf_error(msg, e));
        let name = match next()? {
            Some(Amf0Value::String(s)) => s,
            _ => return Err(Self::malformed(msg, "command name is not an AMF0 string")),
        };
        let txn = next()?.and_then(|v| v.as_number()).unwrap_or(0.0);
        let object = next()?.unwrap_or(Amf0Value::Null);
        let mut args = Vec::new();
        while let Some(v) = next()? {
            args.push(v);
        }
        Ok(Command {
            name,
            txn,
            object,
            args,
        })
    }

    pub(super) fn command(&mut self, now: Instant, msg: &RawMessage) -> Result<(), IngestError> {
        let cmd = self.decode_command(msg)?;
        tracing::debug!(connection = self.connection_id, command = %cmd.name, txn = cmd.txn, stream_id = msg.stream_id, "command");
        if cmd.name == "connect" {
            return self.connect(&cmd);
        }
        if self.phase != Phase::Connected {
            return Err(IngestError::UnexpectedMessage {
                what: format!("command {:?}", cmd.name),
                state: "awaiting connect",
            });
        }
        match cmd.name.as_str() {
            "releaseStream" | "_checkbw" => self.result(cmd.txn, Amf0Value::Undefined),
            "FCPublish" => {
                // `onFCPublish` waits for the publish decision (sent by `accept_publish`, right
                // before `Publish.Start`): OBS and FFmpeg only log it, so nothing says "started"
                // before authorization.
                self.result(cmd.txn, Amf0Value::Undefined);
                self.fc_publish = true;
            }
            "FCSubscribe" | "FCUnsubscribe" => self.result(cmd.txn, Amf0Value::Undefined),
            "createStream" => self.create_stream(cmd.txn)?,
            "publish" => self.publish(msg.stream_id, &cmd),
            "FCUnpublish" => {
                self.result(cmd.txn, Amf0Value::Undefined);
                self.unpublish(now, None);
            }
            "deleteStream" => {
                let id = cmd.args.first().and_then(|v| v.as_number()).unwrap_or(-1.0);
                if id >= 0.0 && id <= f64::from(u32::MAX) {
                    let id = id as u32;
                    self.unpublish(now, Some(id));
                    self.stop_play(now, id);
                    self.created_streams.retain(|s| *s != id);
                }
            }
            "closeStream" => {
                self.unpublish(now, Some(msg.stream_id));
                self.stop_play(now, msg.stream_id);
            }
            "getStreamLength" => self.result(cmd.txn, Amf0Value::Number(0.0)),
            "play" => self.play_command(msg.stream_id, &cmd),
            "pause" => self.pause_command(msg, &cmd),
            "seek" => self.seek_command(msg),
            "receiveAudio" => self.receive_command(msg, &cmd, false),
            "receiveVideo" => self.receive_command(msg, &cmd, true),
            _ => {
                if cmd.txn != 0.0 {
                    let info = Amf0Value::object([
                        ("level", Amf0Value::string("error")),
                        ("code", Amf0Value::string("NetConnection.Call.Failed")),
                        ("description", Amf0Value::string("unknown command")),
                    ]);
                    self.send_command(
                        COMMAND_CSID,
                        msg.stream_id,
                        &[
                            Amf0Value::string("_error"),
                            Amf0Value::Number(cmd.txn),
                            Amf0Value::Null,
                            info,
                        ],
                    );
                }
            }
        }
        Ok(())
    }

    /// `_result, txn, null, value` (only when the client asked with a transaction id).
    fn result(&mut self, txn: f64, value: Amf0Value) {
        if txn != 0.0 {
            self.send_command(
                COMMAND_CSID,
                0,
                &[
                    Amf0Value::string("_result"),
                    Amf0Value::Number(txn),
                    Amf0Value::Null,
                    value,
                ],
            );
        }
    }

    fn connect(&mut self, cmd: &Command) -> Result<(), IngestError> {
        if self.phase != Phase::AwaitConnect {
            return Err(IngestError::UnexpectedMessage {
                what: "second connect".into(),
                state: "connected",
            });
        }
        let app_raw = cmd.object.get("app").and_then(|v| v.as_str()).unwrap_or("");
        self.app = query::strip_app(app_raw);
        self.tc_url = cmd
            .object
            .get("tcUrl")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        self.object_encoding = cmd
            .object
            .get("objectEncoding")
            .and_then(|v| v.as_number())
            .unwrap_or(0.0);
        let allowed = match &self.config.allowed_apps {
            None => true,
            Some(list) => list.contains(&self.app),
        };
        if !allowed {
            let info = Amf0Value::object([
                ("level", Amf0Value::string("error")),
                ("code", Amf0Value::string("NetConnection.Connect.Rejected")),
                (
                    "description",
                    Amf0Value::string("NetConnection.Connect.InvalidApp: application not allowed"),
                ),
            ]);
            self.send_command(
                COMMAND_CSID,
                0,
                &[
                    Amf0Value::string("_error"),
                    Amf0Value::Number(cmd.txn),
                    Amf0Value::Null,
                    info,
                ],
            );
            self.phase = Phase::Closed;
            self.events.push_back(SessionEvent::CloseRequested {
                reason: format!("app {:?} not allowed", self.app),
            });
            return Ok(());
        }
        let window = self.config.ack_window_bytes;
        let out_chunk_size = self.config.effective_out_chunk_size();
        self.send_control(&ControlMessage::WindowAckSize {
            window_bytes: window,
        });
        self.send_control(&ControlMessage::SetPeerBandwidth {
            window_bytes: window,
            limit_type: BandwidthLimit::Dynamic as u8,
        });
        self.send_control(&ControlMessage::SetChunkSize {
            chunk_size: out_chunk_size,
        });
        self.encoder.set_chunk_size(out_chunk_size);
        self.send_control(&ControlMessage::UserControl(
            UserControlEvent::StreamBegin { stream_id: 0 },
        ));
        let info_map = |list: &[&str]| {
            Amf0Value::Object(
                list.iter()
                    .map(|f| ((*f).to_owned(), Amf0Value::Number(FOURCC_CAN_FORWARD)))
                    .collect(),
            )
        };
        let fourcc_list = Amf0Value::StrictArray(
            VIDEO_FOURCCS
                .iter()
                .chain(AUDIO_FOURCCS.iter())
                .map(|f| Amf0Value::string(*f))
                .collect(),
        );
        let properties = Amf0Value::object([
            ("fmsVer", Amf0Value::string("FMS/3,0,1,123")),
            ("capabilities", Amf0Value::Number(31.0)),
            ("mode", Amf0Value::Number(1.0)),
            ("capsEx", Amf0Value::Number(CAPS_EX)),
            ("fourCcList", fourcc_list),
            ("videoFourCcInfoMap", info_map(&VIDEO_FOURCCS)),
            ("audioFourCcInfoMap", info_map(&AUDIO_FOURCCS)),
        ]);
        let info = Amf0Value::object([
            ("level", Amf0Value::string("status")),
            ("code", Amf0Value::string("NetConnection.Connect.Success")),
            ("description", Amf0Value::string("Connection succeeded.")),
            ("objectEncoding", Amf0Value::Number(self.object_encoding)),
        ]);
        self.send_command(
            COMMAND_CSID,
            0,
            &[
                Amf0Value::string("_result"),
                Amf0Value::Number(cmd.txn),
                properties,
                info,
            ],
        );
        self.phase = Phase::Connected;
        Ok(())
    }

    fn create_stream(&mut self, txn: f64) -> Result<(), IngestError> {
        let created = self.stats_streams_created();
        if created >= self.config.max_streams_per_connection {
            return Err(IngestError::limit(
                "max_streams_per_connection",
                u64::from(created) + 1,
                u64::from(self.config.max_streams_per_connection),
            ));
        }
        self.streams_created = created + 1;
        // Stream ids count from 1 (nginx always answers 1; ffmpeg-listen counts from 1).
        let id = self.streams_created;
        self.created_streams.push(id);
        self.send_command(
            COMMAND_CSID,
            0,
            &[
                Amf0Value::string("_result"),
                Amf0Value::Number(txn),
                Amf0Value::Null,
                Amf0Value::Number(f64::from(id)),
            ],
        );
        Ok(())
    }

    fn stats_streams_created(&self) -> u32 {
        self.streams_created
    }

    fn publish(&mut self, stream_id: MessageStreamId, cmd: &Command) {
        // A publish that ended (unpublished or refused) may be followed by another on the same
        // connection (OBS and FFmpeg reuse connections); two at once may not.
        let running = self
            .publish
            .as_ref()
            .is_some_and(|p| matches!(p.state, PublishState::Pending | PublishState::Active));
        if running || self.is_playing() {
            self.send_status(
                stream_id,
                "error",
                "NetStream.Publish.BadName",
                "a publish or play is already running on this connection",
            );
            return;
        }
        if !self.created_streams.contains(&stream_id) {
            self.send_status(
                stream_id,
                "error",
                "NetStream.Publish.BadName",
                "publish on a stream that was not created",
            );
            return;
        }
        let name = cmd.args.first().and_then(|v| v.as_str()).unwrap_or("");
        let (stream, params) = query::split_stream_name(name);
        if stream.is_empty() {
            self.send_status(
                stream_id,
                "error",
                "NetStream.Publish.BadName",
                "empty stream name",
            );
            return;
        }
        self.publish = Some(Publish {
            stream_id,
            state: PublishState::Pending,
            started: None,
        });
        self.publish_stream_name = stream.clone();
        let info = PublishInfo {
            app: self.app.clone(),
            stream,
            params,
            tc_url: self.tc_url.clone(),
            stream_id,
        };
        self.events.push_back(SessionEvent::PublishRequested(info));
    }

    /// Ends an active publish (on `stream_id`, or any when `None`).
    fn unpublish(&mut self, now: Instant, stream_id: Option<MessageStreamId>) {
        let Some(p) = self.publish.as_mut() else {
            return;
        };
        if p.state != PublishState::Active || stream_id.is_some_and(|s| s != p.stream_id) {
            return;
        }
        p.state = PublishState::Ended;
        let id = p.stream_id;
        self.send_status(
            id,
            "status",
            "NetStream.Unpublish.Success",
            "stream unpublished",
        );
        self.idle_after_unpublish(now);
        self.events.push_back(SessionEvent::Unpublished);
    }
}
