//! Player sessions (Adobe RTMP 1.0 §7.2.2.1 play, §7.2.2.8 pause, §7.2.2.7 seek): the reply
//! sequence for every `start` value, media starting at a keyframe, and refused plays.

use std::time::Instant;

use bytes::Bytes;

use super::*;
use crate::PlayRefusal;

fn play(c: &mut Client, s: &mut Session, now: Instant, name: &str, start: f64) -> Vec<RawMessage> {
    c.command(
        1,
        &[
            Amf0Value::string("play"),
            Amf0Value::Number(5.0),
            Amf0Value::Null,
            Amf0Value::string(name),
            Amf0Value::Number(start),
        ],
    );
    c.flush_to(s, now, 1000).unwrap();
    c.read_from(s)
}

fn tag(kind: TagKind, ts: u32, payload: &'static [u8]) -> IngestTag {
    IngestTag {
        kind,
        timestamp_ms: ts,
        payload: Bytes::from_static(payload),
        info: match kind {
            TagKind::Video => flv_tag::inspect(flv_tag::Media::Video, &Bytes::from_static(payload)),
            TagKind::Audio => flv_tag::inspect(flv_tag::Media::Audio, &Bytes::from_static(payload)),
            TagKind::Script => None,
        },
    }
}

#[test]
fn play_reply_sequence_for_every_start_value() {
    for start in [-2.0, -2000.0, -1.0, -1000.0, 0.0, 5000.0] {
        let t0 = Instant::now();
        let (mut c, mut s) = connected(config(), t0);
        assert!(play(&mut c, &mut s, t0, "test?token=t", start).is_empty());
        let ev = events(&mut s);
        let [SessionEvent::PlayRequested(info)] = &ev[..] else {
            panic!("{ev:?}")
        };
        assert_eq!((info.stream.as_str(), info.stream_id), ("test", 1));
        assert_eq!(info.params, vec![("token".into(), "t".into())]);
        assert_eq!(info.start, start);
        s.accept_play(t0).unwrap();
        let replies = c.read_from(&mut s);
        assert_eq!(
            message::parse_control(2, replies[0].type_id, &replies[0].payload).unwrap(),
            Some(ControlMessage::UserControl(UserControlEvent::StreamBegin {
                stream_id: 1
            }))
        );
        let codes: Vec<_> = replies[1..3].iter().map(status_code).collect();
        assert_eq!(
            codes,
            [
                Some("NetStream.Play.Reset".to_string()),
                Some("NetStream.Play.Start".to_string())
            ]
        );
        // The exact shape libavformat parses positionally, on the play stream id.
        let start_msg = amf(&replies[2]);
        assert_eq!(start_msg.len(), 4);
        assert_eq!(start_msg[1], Amf0Value::Number(0.0));
        assert_eq!(start_msg[2], Amf0Value::Null);
        assert_eq!(replies[2].stream_id, 1);
        assert_eq!(replies[3].type_id, message_type::AMF0_DATA);
        assert_eq!(amf(&replies[3])[0].as_str(), Some("|RtmpSampleAccess"));
        assert!(
            s.poll_timeout().is_none(),
            "a playing session has no deadline"
        );
    }
}

#[test]
fn player_media_starts_at_a_keyframe_and_follows_pause_seek_and_unpublish() {
    let t0 = Instant::now();
    let (mut c, mut s) = connected(config(), t0);
    play(&mut c, &mut s, t0, "test", -1000.0);
    events(&mut s);
    s.accept_play(t0).unwrap();
    c.read_from(&mut s);
    let vh = tag(TagKind::Video, 0, &[0x17, 0, 0, 0, 0, 1]);
    let inter = tag(TagKind::Video, 40, &[0x27, 1, 0, 0, 0, 2]);
    let key = tag(TagKind::Video, 80, &[0x17, 1, 0, 0, 0, 3]);
    let audio = tag(TagKind::Audio, 50, &[0xAF, 1, 0x21]);
    assert!(s.send_media(&vh));
    assert!(
        !s.send_media(&inter),
        "no inter frame before the first keyframe"
    );
    assert!(s.send_media(&audio));
    assert!(s.send_media(&key));
    assert!(s.send_media(&inter));
    let got: Vec<(u8, u32, u8, u8)> = c
        .read_from(&mut s)
        .iter()
        .map(|m| (m.type_id, m.timestamp_ms, m.payload[0], m.payload[1]))
        .collect();
    assert_eq!(
        got,
        [
            (9, 0, 0x17, 0),
            (8, 50, 0xAF, 1),
            (9, 80, 0x17, 1),
            (9, 40, 0x27, 1)
        ]
    );
    // Seek: Seek.Notify + Play.Start, then the headers again in front of the next keyframe.
    c.command(
        1,
        &[
            Amf0Value::string("seek"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            Amf0Value::Number(1234.0),
        ],
    );
    c.flush_to(&mut s, t0, 1000).unwrap();
    let codes: Vec<_> = c.read_from(&mut s).iter().map(status_code).collect();
    assert_eq!(
        codes,
        [
            Some("NetStream.Seek.Notify".to_string()),
            Some("NetStream.Play.Start".to_string())
        ]
    );
    assert!(!s.send_media(&inter));
    assert!(s.send_media(&key));
    let got: Vec<(u32, u8, u8)> = c
        .read_from(&mut s)
        .iter()
        .map(|m| (m.timestamp_ms, m.payload[0], m.payload[1]))
        .collect();
    assert_eq!(got, [(80, 0x17, 0), (80, 0x17, 1)]);
    // Pause: nothing flows until unpause.
    c.command(
        1,
        &[
            Amf0Value::string("pause"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            Amf0Value::Boolean(true),
            Amf0Value::Number(100.0),
        ],
    );
    c.flush_to(&mut s, t0, 1000).unwrap();
    assert_eq!(
        status_code(&c.read_from(&mut s)[0]).as_deref(),
        Some("NetStream.Pause.Notify")
    );
    assert!(!s.send_media(&key));
    assert!(!s.send_media(&audio));
    // Publisher leaves: StreamEOF + UnpublishNotify.
    s.publisher_left();
    let replies = c.read_from(&mut s);
    assert_eq!(
        status_code(&replies[1]).as_deref(),
        Some("NetStream.Play.UnpublishNotify")
    );
    // deleteStream ends the play.
    c.command(
        0,
        &[
            Amf0Value::string("deleteStream"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            Amf0Value::Number(1.0),
        ],
    );
    c.flush_to(&mut s, t0, 1000).unwrap();
    assert!(matches!(&events(&mut s)[..], [SessionEvent::PlayStopped]));
    assert!(!s.is_playing());
}

#[test]
fn refused_play_is_an_error_status_then_close() {
    let t0 = Instant::now();
    let (mut c, mut s) = connected(config(), t0);
    play(&mut c, &mut s, t0, "nobody", -2.0);
    events(&mut s);
    s.reject_play(PlayRefusal::NotFound("no such stream".into()))
        .unwrap();
    let replies = c.read_from(&mut s);
    assert_eq!(
        status_code(&replies[0]).as_deref(),
        Some("NetStream.Play.StreamNotFound")
    );
    assert_eq!(replies[0].stream_id, 1);
    assert!(matches!(
        &events(&mut s)[..],
        [SessionEvent::CloseRequested { .. }]
    ));
    // A play on a stream that was never created fails without asking the driver.
    let (mut c, mut s) = connected(config(), t0);
    c.command(
        7,
        &[
            Amf0Value::string("play"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            Amf0Value::string("test"),
        ],
    );
    c.flush_to(&mut s, t0, 1000).unwrap();
    assert_eq!(
        status_code(&c.read_from(&mut s)[0]).as_deref(),
        Some("NetStream.Play.Failed")
    );
    assert!(events(&mut s).is_empty());
}
