//! Publisher sessions (Adobe RTMP 1.0 §7.2.1.1 connect, §7.2.1.3 createStream, §7.2.2.6
//! publish): the full flow over every chunk header format (§5.3.1.2) and extended timestamps
//! (§5.3.1.3), refusals, republish on one connection, limits, AMF3 commands and aggregates (§7.1),
//! handshake/idle deadlines and hostile bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

#[test]
fn full_publish_flow_with_all_header_formats_and_extended_timestamps() {
    let t0 = Instant::now();
    let (mut c, mut s) = connected(config(), t0);
    let replies = publish(&mut c, &mut s, t0, 1, "test?key=secret&x=a%20b");
    assert!(
        replies.iter().all(|m| status_code(m).is_none()),
        "nothing before the decision: {replies:?}"
    );
    let ev = events(&mut s);
    let [SessionEvent::PublishRequested(info)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        (info.app.as_str(), info.stream.as_str(), info.stream_id),
        ("live", "test", 1)
    );
    assert_eq!(
        info.params,
        vec![("key".into(), "secret".into()), ("x".into(), "a b".into())]
    );
    assert_eq!(info.tc_url.as_deref(), Some("rtmp://127.0.0.1/live"));

    // Media before the decision is dropped (counted), not fatal.
    c.send(4, 0, message_type::VIDEO, 1, &[0x17, 0, 0, 0, 0]);
    c.flush_to(&mut s, t0, 1000).unwrap();
    assert_eq!(s.stats().dropped_before_publish, 1);

    s.accept_publish(t0).unwrap();
    let replies = c.read_from(&mut s);
    assert_eq!(replies.len(), 3);
    assert_eq!(
        message::parse_control(2, replies[0].type_id, &replies[0].payload).unwrap(),
        Some(ControlMessage::UserControl(UserControlEvent::StreamBegin {
            stream_id: 1
        }))
    );
    // onFCPublish only after the decision, right before Publish.Start.
    assert_eq!(amf(&replies[1])[0].as_str(), Some("onFCPublish"));
    assert_eq!(
        replies[2].stream_id, 1,
        "onStatus on the publish command's message stream"
    );
    assert_eq!(
        status_code(&replies[2]).as_deref(),
        Some("NetStream.Publish.Start")
    );

    // Metadata with @setDataFrame.
    let mut meta = BytesMut::new();
    amf0::encode_all(
        &[
            Amf0Value::string("@setDataFrame"),
            Amf0Value::string("onMetaData"),
            Amf0Value::EcmaArray(vec![("width".into(), Amf0Value::Number(320.0))]),
        ],
        &mut meta,
    );
    c.send(4, 0, message_type::AMF0_DATA, 1, &meta);
    // Small chunk size so every message spans several chunks.
    c.control(&ControlMessage::SetChunkSize { chunk_size: 100 });
    c.enc.set_chunk_size(100);
    c.control(&ControlMessage::WindowAckSize { window_bytes: 2000 });
    let mut sent = Vec::new();
    let mut video_ts = 0xFF_FF00u32; // crosses 0xFFFFFF
    let mut audio_ts = 0xFF_FF10u32;
    for i in 0..40u32 {
        let vbody: Vec<u8> = if i == 0 {
            vec![0x17, 0, 0, 0, 0, 1, 2, 3]
        } else {
            let mut v = vec![if i % 10 == 1 { 0x17 } else { 0x27 }, 1, 0, 0, 0];
            v.extend(std::iter::repeat_n(i as u8, 250));
            v
        };
        c.send(6, video_ts, message_type::VIDEO, 1, &vbody);
        sent.push((TagKind::Video, video_ts, Bytes::from(vbody)));
        let abody = if i == 0 {
            vec![0xAF, 0, 0x12, 0x10]
        } else {
            vec![0xAF, 1, i as u8, 0, 0, 0]
        };
        c.send(4, audio_ts, message_type::AUDIO, 1, &abody);
        sent.push((TagKind::Audio, audio_ts, Bytes::from(abody)));
        video_ts = video_ts.wrapping_add(if i % 3 == 0 { 40 } else { 33 });
        audio_ts = audio_ts.wrapping_add(23);
    }
    c.send(4, audio_ts, message_type::AUDIO, 1, &[]); // zero-length audio = silence
    sent.push((TagKind::Audio, audio_ts, Bytes::new()));
    let now = t0 + Duration::from_secs(1);
    c.flush_to(&mut s, now, 77).unwrap();
    let got: Vec<IngestTag> = events(&mut s)
        .into_iter()
        .map(|e| match e {
            SessionEvent::Tag(t) => t,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got[0].kind, TagKind::Script);
    assert_eq!(
        &got[0].payload[..13],
        b"\x02\x00\x0aonMetaData",
        "starts at the onMetaData string"
    );
    let got: Vec<_> = got[1..]
        .iter()
        .map(|t| (t.kind, t.timestamp_ms, t.payload.clone()))
        .collect();
    assert_eq!(got, sent);
    assert!(
        s.stats().acks_sent >= 2,
        "acks after the window: {:?}",
        s.stats()
    );
    let acks: Vec<_> = c
        .read_from(&mut s)
        .into_iter()
        .filter(|m| m.type_id == message_type::ACKNOWLEDGEMENT)
        .collect();
    assert_eq!(acks.len() as u64, s.stats().acks_sent);
    assert_eq!(s.stats().keyframes, 4);

    // Ping request -> response; unknown command -> _error for its transaction.
    c.control(&ControlMessage::UserControl(
        UserControlEvent::PingRequest { timestamp: 99 },
    ));
    c.command(
        0,
        &[
            Amf0Value::string("noSuchCommand"),
            Amf0Value::Number(9.0),
            Amf0Value::Null,
        ],
    );
    c.command(
        0,
        &[
            Amf0Value::string("noSuchNotify"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
        ],
    );
    c.flush_to(&mut s, now, 1000).unwrap();
    let replies = c.read_from(&mut s);
    assert!(replies
        .iter()
        .any(|m| message::parse_control(2, m.type_id, &m.payload)
            .ok()
            .flatten()
            == Some(ControlMessage::UserControl(
                UserControlEvent::PingResponse { timestamp: 99 }
            ))));
    let errors: Vec<_> = replies
        .iter()
        .filter(|m| m.type_id == 20)
        .map(amf)
        .collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0][0].as_str(), errors[0][1].as_number()),
        (Some("_error"), Some(9.0))
    );
    assert!(!s.is_closed());

    // FCUnpublish + deleteStream end the publish once.
    c.command(
        0,
        &[
            Amf0Value::string("FCUnpublish"),
            Amf0Value::Number(10.0),
            Amf0Value::Null,
            Amf0Value::string("test"),
        ],
    );
    c.command(
        0,
        &[
            Amf0Value::string("deleteStream"),
            Amf0Value::Number(11.0),
            Amf0Value::Null,
            Amf0Value::Number(1.0),
        ],
    );
    c.flush_to(&mut s, now, 1000).unwrap();
    let ev = events(&mut s);
    assert!(matches!(&ev[..], [SessionEvent::Unpublished]), "{ev:?}");
    let summary = s.publish_summary(now, CloseReason::Unpublished);
    assert_eq!(
        (summary.video_tags, summary.audio_tags, summary.keyframes),
        (40, 41, 4)
    );
    assert_eq!(summary.duration, Duration::from_secs(1));
}

#[test]
fn refused_publish_and_second_publish() {
    let t0 = Instant::now();
    let (mut c, mut s) = connected(config(), t0);
    publish(&mut c, &mut s, t0, 1, "taken");
    assert!(matches!(
        &events(&mut s)[..],
        [SessionEvent::PublishRequested(_)]
    ));
    s.reject_publish(PublishRefusal::BadName("stream is already live".into()))
        .unwrap();
    let replies = c.read_from(&mut s);
    assert_eq!(
        status_code(&replies[0]).as_deref(),
        Some("NetStream.Publish.BadName")
    );
    assert_eq!(
        amf(&replies[0])[3].get("level").and_then(|v| v.as_str()),
        Some("error")
    );
    // A refused publish may be followed by another on the same connection.
    publish(&mut c, &mut s, t0, 1, "other");
    assert!(matches!(
        &events(&mut s)[..],
        [SessionEvent::PublishRequested(i)] if i.stream == "other"
    ));
    // ... but not a second one while the first is pending.
    let replies = publish(&mut c, &mut s, t0, 1, "third");
    assert_eq!(
        status_code(&replies[0]).as_deref(),
        Some("NetStream.Publish.BadName")
    );
    assert!(events(&mut s).is_empty());
    s.accept_publish(t0).unwrap();
    assert!(s.accept_publish(t0).is_err());
}

#[test]
fn unpublish_then_publish_again_on_one_connection() {
    let t0 = Instant::now();
    let (mut c, mut s) = connected(config(), t0);
    for round in 0..3 {
        let name = format!("s{round}");
        publish(&mut c, &mut s, t0, 1, &name);
        assert!(matches!(
            &events(&mut s)[..],
            [SessionEvent::PublishRequested(i)] if i.stream == name
        ));
        s.accept_publish(t0).unwrap();
        c.read_from(&mut s);
        c.send(4, 0, message_type::VIDEO, 1, &[0x17, 1, 0, 0, 0]);
        c.command(
            0,
            &[
                Amf0Value::string("FCUnpublish"),
                Amf0Value::Number(6.0),
                Amf0Value::Null,
                Amf0Value::string(name.as_str()),
            ],
        );
        c.flush_to(&mut s, t0, 1000).unwrap();
        let ev = events(&mut s);
        assert!(
            matches!(&ev[..], [SessionEvent::Tag(_), SessionEvent::Unpublished]),
            "{ev:?}"
        );
        assert_eq!(
            s.publish_summary(t0, CloseReason::Unpublished).video_tags,
            1
        );
    }
}

#[test]
fn unauthorized_and_uncreated_stream() {
    let t0 = Instant::now();
    let (mut c, mut s) = connected(config(), t0);
    let replies = publish(&mut c, &mut s, t0, 7, "x");
    assert_eq!(
        status_code(&replies[0]).as_deref(),
        Some("NetStream.Publish.BadName")
    );
    assert!(events(&mut s).is_empty());
    publish(&mut c, &mut s, t0, 1, "x?key=wrong");
    events(&mut s);
    s.reject_publish(PublishRefusal::Unauthorized("bad key".into()))
        .unwrap();
    assert_eq!(
        status_code(&c.read_from(&mut s)[0]).as_deref(),
        Some("NetStream.Publish.Unauthorized")
    );
}

#[test]
fn app_not_allowed_is_refused_and_closed() {
    let t0 = Instant::now();
    let cfg = Arc::new(IngestConfig {
        allowed_apps: Some(vec!["other".into()]),
        ..IngestConfig::default()
    });
    let mut s = server(cfg, t0);
    let mut c = Client::new();
    c.out.extend_from_slice(&Client::c0c1());
    c.out.extend_from_slice(&[0u8; PACKET_BYTES]);
    c.command(
        0,
        &[
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::object([("app", Amf0Value::string("live"))]),
        ],
    );
    c.flush_to(&mut s, t0, 5000).unwrap();
    let replies = c.read_from(&mut s);
    let v = amf(replies.last().unwrap());
    assert_eq!(v[0].as_str(), Some("_error"));
    assert_eq!(
        v[3].get("code").and_then(|c| c.as_str()),
        Some("NetConnection.Connect.Rejected")
    );
    assert!(matches!(
        &events(&mut s)[..],
        [SessionEvent::CloseRequested { .. }]
    ));
    assert!(s.is_closed());
}

#[test]
fn create_stream_limit() {
    let t0 = Instant::now();
    let cfg = Arc::new(IngestConfig {
        max_streams_per_connection: 2,
        ..IngestConfig::default()
    });
    let (mut c, mut s) = connected(cfg, t0);
    c.command(
        0,
        &[
            Amf0Value::string("createStream"),
            Amf0Value::Number(20.0),
            Amf0Value::Null,
        ],
    );
    c.flush_to(&mut s, t0, 1000).unwrap();
    c.command(
        0,
        &[
            Amf0Value::string("createStream"),
            Amf0Value::Number(21.0),
            Amf0Value::Null,
        ],
    );
    let err = c.flush_to(&mut s, t0, 1000).unwrap_err();
    assert!(
        matches!(
            err,
            IngestError::LimitExceeded {
                limit: "max_streams_per_connection",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn amf3_command_and_aggregate() {
    let t0 = Instant::now();
    let mut s = server(config(), t0);
    let mut c = Client::new();
    c.out.extend_from_slice(&Client::c0c1());
    c.out.extend_from_slice(&[0u8; PACKET_BYTES]);
    let mut body = BytesMut::from(&[0u8][..]);
    amf0::encode_all(
        &[
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::object([("app", Amf0Value::string("live"))]),
        ],
        &mut body,
    );
    c.send(3, 0, message_type::AMF3_COMMAND, 0, &body);
    c.command(
        0,
        &[
            Amf0Value::string("createStream"),
            Amf0Value::Number(2.0),
            Amf0Value::Null,
        ],
    );
    c.flush_to(&mut s, t0, 5000).unwrap();
    publish(&mut c, &mut s, t0, 1, "agg");
    events(&mut s);
    s.accept_publish(t0).unwrap();
    // Aggregate with two sub-tags at 100 and 140, aggregate timestamp 1000.
    let mut agg = Vec::new();
    for (ty, ts, data) in [
        (9u8, 100u32, &[0x17u8, 1, 0, 0, 0][..]),
        (8, 140, &[0xAF, 1, 5][..]),
    ] {
        agg.push(ty);
        agg.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        agg.extend_from_slice(&ts.to_be_bytes()[1..]);
        agg.extend_from_slice(&[0, 0, 0, 0]);
        agg.extend_from_slice(data);
        agg.extend_from_slice(&(data.len() as u32 + 11).to_be_bytes());
    }
    c.send(6, 1000, message_type::AGGREGATE, 1, &agg);
    c.flush_to(&mut s, t0, 5000).unwrap();
    let tags: Vec<(TagKind, u32)> = events(&mut s)
        .into_iter()
        .filter_map(|e| match e {
            SessionEvent::Tag(t) => Some((t.kind, t.timestamp_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(tags, vec![(TagKind::Video, 1000), (TagKind::Audio, 1040)]);
}

#[test]
fn handshake_to_publish_deadline_against_a_byte_dripper() {
    let t0 = Instant::now();
    let mut s = server(config(), t0);
    let input = Client::c0c1();
    let mut now = t0;
    let mut closed_at = None;
    for b in input.iter().cycle().take(10_000) {
        now += Duration::from_millis(100);
        if s.poll_timeout().is_some_and(|d| now >= d) {
            let err = s.handle_timeout(now).unwrap_err();
            assert!(matches!(
                err,
                IngestError::Timeout {
                    deadline: Deadline::HandshakeToPublish,
                    ..
                }
            ));
            closed_at = Some(now);
            break;
        }
        let _ = s.handle_input(now, std::slice::from_ref(b));
    }
    assert_eq!(closed_at, Some(t0 + Duration::from_secs(10)));
}

#[test]
fn idle_timeout_while_publishing() {
    let t0 = Instant::now();
    let (mut c, mut s) = connected(config(), t0);
    publish(&mut c, &mut s, t0, 1, "idle");
    events(&mut s);
    let t1 = t0 + Duration::from_secs(9);
    s.accept_publish(t1).unwrap();
    assert_eq!(
        s.poll_timeout(),
        Some(t1 + Duration::from_secs(30)),
        "publish deadline no longer applies"
    );
    c.send(6, 0, message_type::VIDEO, 1, &[0x17, 1, 0, 0, 0]);
    let t2 = t1 + Duration::from_secs(20);
    c.flush_to(&mut s, t2, 1000).unwrap();
    assert_eq!(s.poll_timeout(), Some(t2 + Duration::from_secs(30)));
    assert!(s.handle_timeout(t2 + Duration::from_secs(29)).is_ok());
    let err = s.handle_timeout(t2 + Duration::from_secs(30)).unwrap_err();
    assert!(
        matches!(
            err,
            IngestError::Timeout {
                deadline: Deadline::Idle,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn bad_c0_is_an_error() {
    let mut s = server(config(), Instant::now());
    let err = s
        .handle_input(Instant::now(), b"GET / HTTP/1.1\r\n")
        .unwrap_err();
    assert!(matches!(err, IngestError::BadVersion { version: b'G' }));
    assert!(s.is_closed());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn arbitrary_bytes_after_handshake_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..3000), split in 1usize..200) {
        let t0 = Instant::now();
        let mut s = server(config(), t0);
        let mut input = Client::c0c1();
        input.extend_from_slice(&[0u8; PACKET_BYTES]);
        input.extend_from_slice(&bytes);
        for piece in input.chunks(split) {
            if s.handle_input(t0, piece).is_err() { break; }
        }
        let _ = s.poll_transmit();
        let _ = s.handle_timeout(t0 + Duration::from_secs(60));
    }
}
