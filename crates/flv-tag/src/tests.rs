//! Table tests for the header rules of FLV §E.4.2.1/§E.4.3.1 and Enhanced RTMP v2, including
//! every case where the two former copies (ingest statistics and remux) disagreed.

use bytes::Bytes;
use proptest::prelude::*;

use crate::*;

fn v(body: &'static [u8]) -> Tag {
    parse_video(&Bytes::from_static(body)).unwrap_or_else(|e| panic!("{body:02x?}: {e}"))
}

fn a(body: &'static [u8]) -> Tag {
    parse_audio(&Bytes::from_static(body)).unwrap_or_else(|e| panic!("{body:02x?}: {e}"))
}

const AVC: Codec = Codec::Video(VideoCodec::Avc);
const HEVC: Codec = Codec::Video(VideoCodec::Hevc);

/// (body, codec, packet, keyframe, track id, enhanced, cts, body after headers)
type Row = (
    &'static [u8],
    Codec,
    PacketKind,
    bool,
    u8,
    bool,
    Option<i32>,
    &'static [u8],
);

#[test]
fn video_table() {
    use PacketKind::*;
    let rows: &[Row] = &[
        (
            &[0x17, 0, 0, 0, 0, 1],
            AVC,
            SequenceStart,
            false,
            0,
            false,
            None,
            &[1],
        ),
        (
            &[0x17, 1, 0, 0, 0x28, 9],
            AVC,
            CodedFrames,
            true,
            0,
            false,
            Some(40),
            &[9],
        ),
        (
            &[0x27, 1, 0xff, 0xff, 0xd8],
            AVC,
            CodedFrames,
            false,
            0,
            false,
            Some(-40),
            &[],
        ),
        // Drift 1: frame type 4 (generated keyframe) is a keyframe.
        (
            &[0x47, 1, 0, 0, 0, 7],
            AVC,
            CodedFrames,
            true,
            0,
            false,
            Some(0),
            &[7],
        ),
        // Drift 2: legacy CodecID 12 is HEVC, with the AVC layout.
        (
            &[0x1c, 0, 0, 0, 0, 1],
            HEVC,
            SequenceStart,
            false,
            0,
            false,
            None,
            &[1],
        ),
        (
            &[0x2c, 1, 0, 0, 0x21, 5],
            HEVC,
            CodedFrames,
            false,
            0,
            false,
            Some(33),
            &[5],
        ),
        // End of sequence, with and without the CompositionTime field.
        (
            &[0x17, 2, 0, 0, 0],
            AVC,
            SequenceEnd,
            false,
            0,
            false,
            None,
            &[],
        ),
        (&[0x17, 2], AVC, SequenceEnd, false, 0, false, None, &[]),
        // Another legacy codec (Sorenson H.263): frames, no AVCPacketType.
        (
            &[0x22, 0, 1],
            Codec::Video(VideoCodec::Legacy(2)),
            CodedFrames,
            false,
            0,
            false,
            None,
            &[0, 1],
        ),
        // Enhanced key + SequenceStart hvc1.
        (
            &[0x90, b'h', b'v', b'c', b'1', 1],
            HEVC,
            SequenceStart,
            false,
            0,
            true,
            None,
            &[1],
        ),
        // Inter + CodedFrames av01: no CTS for AV1.
        (
            &[0xA1, b'a', b'v', b'0', b'1', 0x12],
            Codec::Video(VideoCodec::Av1),
            CodedFrames,
            false,
            0,
            true,
            None,
            &[0x12],
        ),
        (
            &[0x93, b'v', b'p', b'0', b'9', 8],
            Codec::Video(VideoCodec::Vp9),
            CodedFrames,
            true,
            0,
            true,
            None,
            &[8],
        ),
        (
            &[0xC3, b'v', b'p', b'0', b'9', 8],
            Codec::Video(VideoCodec::Vp9),
            CodedFrames,
            true,
            0,
            true,
            None,
            &[8],
        ),
        (
            &[0x91, b'a', b'v', b'c', b'1', 0, 0, 0x50, 3],
            AVC,
            CodedFrames,
            true,
            0,
            true,
            Some(80),
            &[3],
        ),
        (
            &[0x91, b'h', b'v', b'c', b'1', 0xff, 0xff, 0xdf],
            HEVC,
            CodedFrames,
            true,
            0,
            true,
            Some(-33),
            &[],
        ),
        // CodedFramesX: CTS implicitly 0, no SI24 on the wire.
        (
            &[0x93, b'h', b'v', b'c', b'1', 4],
            HEVC,
            CodedFrames,
            true,
            0,
            true,
            Some(0),
            &[4],
        ),
        (
            &[0x95, b'a', b'v', b'0', b'1', 2],
            Codec::Video(VideoCodec::Av1),
            Mpeg2TsSequenceStart,
            false,
            0,
            true,
            None,
            &[2],
        ),
        (
            &[0x92, b'a', b'v', b'0', b'1'],
            Codec::Video(VideoCodec::Av1),
            SequenceEnd,
            false,
            0,
            true,
            None,
            &[],
        ),
        // Metadata: frame type ignored (even 5).
        (
            &[0xD4, b'h', b'v', b'c', b'1', 2],
            HEVC,
            Metadata,
            false,
            0,
            true,
            None,
            &[2],
        ),
        // Multitrack OneTrack (OBS extra encoder): key, then (0 << 4 | CodedFramesX), avc1, trackId 2.
        (
            &[0x96, 0x03, b'a', b'v', b'c', b'1', 2, 9],
            AVC,
            CodedFrames,
            true,
            2,
            true,
            Some(0),
            &[9],
        ),
        // ModEx (TimestampOffsetNano, 3 bytes) then CodedFramesX.
        (
            &[0x97, 2, 0x00, 0x01, 0x02, 0x03, b'a', b'v', b'c', b'1', 6],
            AVC,
            CodedFrames,
            true,
            0,
            true,
            Some(0),
            &[6],
        ),
        (
            &[0x90, b'x', b'y', b'z', b'w'],
            Codec::Video(VideoCodec::Unknown(FourCc(*b"xyzw"))),
            SequenceStart,
            false,
            0,
            true,
            None,
            &[],
        ),
    ];
    for (body, codec, packet, key, track, enhanced, cts, rest) in rows {
        let tag = v(body);
        let t = tag.default_track().unwrap();
        let info = tag.info().unwrap();
        assert_eq!(
            (
                info.codec,
                info.packet,
                info.is_keyframe,
                info.track_id,
                info.enhanced,
                info.composition_time_ms
            ),
            (*codec, *packet, *key, *track, *enhanced, *cts),
            "{body:02x?}"
        );
        assert_eq!(&t.body[..], *rest, "{body:02x?}");
        assert_eq!(info.is_sequence_header, *packet == SequenceStart);
        assert_eq!(info.is_sequence_end, *packet == SequenceEnd);
    }
}

#[test]
fn modex_timestamp_offset() {
    let tag = v(&[0x97, 2, 0x0f, 0x42, 0x3f, 0x03, b'a', b'v', b'c', b'1']);
    assert_eq!(tag.timestamp_offset_ns, 999_999);
    // A 256+ byte ModEx block uses the u16 size escape.
    let mut body = vec![0x97, 0xff, 0x01, 0x00];
    body.extend(std::iter::repeat_n(0u8, 257));
    body.extend_from_slice(&[0x13, b'v', b'p', b'0', b'9', 1]);
    let tag = parse_video(&Bytes::from(body)).unwrap();
    assert_eq!(tag.tracks[0].codec, Codec::Video(VideoCodec::Vp9));
    assert_eq!(&tag.tracks[0].body[..], &[1]);
}

#[test]
fn command_frames_have_no_tracks() {
    for body in [
        &[0x57, 0x01][..],
        &[0x52, 0x00],
        &[0xD1, 0x01],
        &[0xD7, 0, 0, 0x01, 0x00],
    ] {
        let tag = parse_video(&Bytes::copy_from_slice(body)).unwrap();
        assert_eq!(tag.frame_type, Some(FrameType::Command), "{body:02x?}");
        assert!(
            tag.command.is_some() && tag.tracks.is_empty(),
            "{body:02x?}"
        );
        assert_eq!(tag.info(), None);
    }
}

#[test]
fn multitrack_every_track_addressable() {
    // Drift 3: ManyTracks with track 1 first and track 0 second. Both are returned; the default
    // track is 0, not the first one on the wire.
    let tag = v(&[
        0x96, 0x13, b'a', b'v', b'c', b'1', //
        1, 0, 0, 2, 0xAA, 0xBB, // track 1: 2 bytes
        0, 0, 0, 1, 0xCC, // track 0: 1 byte
    ]);
    assert_eq!(tag.tracks.len(), 2);
    assert_eq!(&tag.track(1).unwrap().body[..], &[0xAA, 0xBB]);
    assert_eq!(&tag.track(0).unwrap().body[..], &[0xCC]);
    assert_eq!(tag.default_track().unwrap().track_id, 0);
    assert_eq!(tag.info().unwrap().track_count, 2);
    // ManyTracksManyCodecs with SequenceStart: per-track FourCC; no track 0: lowest id is default.
    let tag = v(&[
        0x96, 0x20, //
        b'h', b'v', b'c', b'1', 3, 0, 0, 1, 0x01, //
        b'a', b'v', b'0', b'1', 2, 0, 0, 1, 0x81,
    ]);
    assert_eq!(tag.tracks[0].codec, HEVC);
    assert_eq!(tag.tracks[1].codec, Codec::Video(VideoCodec::Av1));
    let d = tag.default_track().unwrap();
    assert_eq!((d.track_id, &d.body[..]), (2, &[0x81u8][..]));
    // CTS is per track, inside each track's body.
    let tag = v(&[
        0x96, 0x11, b'a', b'v', b'c', b'1', //
        0, 0, 0, 4, 0, 0, 40, 7, //
        1, 0, 0, 4, 0xff, 0xff, 0xd8, 8,
    ]);
    assert_eq!(tag.track(0).unwrap().composition_time_ms, 40);
    assert_eq!(tag.track(1).unwrap().composition_time_ms, -40);
    assert_eq!(&tag.track(1).unwrap().body[..], &[8]);
    // Audio: multitrack OneTrack mp4a track 3 (OBS extra audio track).
    let tag = a(&[0x95, 0x01, b'm', b'p', b'4', b'a', 3, 0x21]);
    assert_eq!(tag.info().unwrap().track_id, 3);
    assert_eq!(&tag.tracks[0].body[..], &[0x21]);
}

#[test]
fn multitrack_refusals() {
    let refuse = |body: Vec<u8>| parse_video(&Bytes::from(body)).unwrap_err();
    // 255 tracks in one message: refused at the cap, no allocation per track beyond it.
    let mut body = vec![0x96, 0x11, b'a', b'v', b'c', b'1'];
    for id in 0..255u8 {
        body.extend_from_slice(&[id, 0, 0, 3, 0, 0, 0]);
    }
    assert!(matches!(
        refuse(body),
        FlvTagError::TooManyTracks {
            limit: MAX_TRACKS_PER_MESSAGE,
            ..
        }
    ));
    // Exactly the cap is fine.
    let mut body = vec![0x96, 0x11, b'a', b'v', b'c', b'1'];
    for id in 0..MAX_TRACKS_PER_MESSAGE as u8 {
        body.extend_from_slice(&[id, 0, 0, 3, 0, 0, 0]);
    }
    assert_eq!(
        parse_video(&Bytes::from(body)).unwrap().tracks.len(),
        MAX_TRACKS_PER_MESSAGE
    );
    assert!(matches!(
        refuse(vec![
            0x96, 0x13, b'a', b'v', b'c', b'1', 1, 0, 0, 0, 1, 0, 0, 0
        ]),
        FlvTagError::DuplicateTrack { track_id: 1, .. }
    ));
    assert!(matches!(
        refuse(vec![0x96, 0x33, b'a', b'v', b'c', b'1', 0]),
        FlvTagError::Reserved { .. }
    ));
    assert!(matches!(
        refuse(vec![0x96, 0x06, b'a', b'v', b'c', b'1', 0]),
        FlvTagError::Reserved { .. }
    ));
    // A declared track size past the end.
    assert!(matches!(
        refuse(vec![0x96, 0x13, b'a', b'v', b'c', b'1', 0, 0, 0, 9, 1]),
        FlvTagError::Truncated { .. }
    ));
    // Nine chained ModEx blocks.
    let mut body = vec![0x97];
    for _ in 0..9 {
        body.extend_from_slice(&[0, 0, 0x07]);
    }
    assert!(matches!(refuse(body), FlvTagError::TooManyModEx { .. }));
}

#[test]
fn truncated_and_reserved_video() {
    for short in [
        &[][..],
        &[0x17],
        &[0x17, 1, 0],
        &[0x57],
        &[0x90, b'h', b'v'],
        &[0x97, 5, 0],
        &[0x96, 0x03, b'a'],
        &[0x91, b'a', b'v', b'c', b'1', 0],
    ] {
        assert!(
            matches!(
                parse_video(&Bytes::copy_from_slice(short)),
                Err(FlvTagError::Truncated { .. })
            ),
            "{short:02x?}"
        );
    }
    for reserved in [&[0x17, 3, 0, 0, 0][..], &[0x98, b'a', b'v', b'c', b'1']] {
        assert!(
            matches!(
                parse_video(&Bytes::copy_from_slice(reserved)),
                Err(FlvTagError::Reserved { .. })
            ),
            "{reserved:02x?}"
        );
    }
}

/// (body, codec, packet, track id, enhanced, body after headers)
type AudioRow = (&'static [u8], Codec, PacketKind, u8, bool, &'static [u8]);

#[test]
fn audio_table() {
    use PacketKind::*;
    let aac = Codec::Audio(AudioCodec::Aac);
    let mp3 = Codec::Audio(AudioCodec::Mp3);
    let rows: &[AudioRow] = &[
        (
            &[0xAF, 0x00, 0x12, 0x10],
            aac,
            SequenceStart,
            0,
            false,
            &[0x12, 0x10],
        ),
        (&[0xAF, 0x01, 0x21], aac, CodedFrames, 0, false, &[0x21]),
        (
            &[0x2F, 0xff, 0xfb],
            mp3,
            CodedFrames,
            0,
            false,
            &[0xff, 0xfb],
        ),
        (&[0xE2], mp3, CodedFrames, 0, false, &[]),
        (
            &[0x72, 1],
            Codec::Audio(AudioCodec::Legacy(7)),
            CodedFrames,
            0,
            false,
            &[1],
        ),
        (
            &[0x90, b'm', b'p', b'4', b'a', 0x12],
            aac,
            SequenceStart,
            0,
            true,
            &[0x12],
        ),
        (
            &[0x91, b'O', b'p', b'u', b's', 0xfc],
            Codec::Audio(AudioCodec::Opus),
            CodedFrames,
            0,
            true,
            &[0xfc],
        ),
        (
            &[0x91, b'.', b'm', b'p', b'3', 0xff],
            mp3,
            CodedFrames,
            0,
            true,
            &[0xff],
        ),
        (
            &[0x90, b'f', b'L', b'a', b'C'],
            Codec::Audio(AudioCodec::Flac),
            SequenceStart,
            0,
            true,
            &[],
        ),
        (
            &[0x91, b'a', b'c', b'-', b'3'],
            Codec::Audio(AudioCodec::Ac3),
            CodedFrames,
            0,
            true,
            &[],
        ),
        (
            &[0x91, b'e', b'c', b'-', b'3'],
            Codec::Audio(AudioCodec::Eac3),
            CodedFrames,
            0,
            true,
            &[],
        ),
        (
            &[0x94, b'O', b'p', b'u', b's', 1, 2],
            Codec::Audio(AudioCodec::Opus),
            MultichannelConfig,
            0,
            true,
            &[1, 2],
        ),
        (
            &[0x92, b'O', b'p', b'u', b's'],
            Codec::Audio(AudioCodec::Opus),
            SequenceEnd,
            0,
            true,
            &[],
        ),
        (
            &[0x97, 0, 0xAA, 0x01, b'O', b'p', b'u', b's'],
            Codec::Audio(AudioCodec::Opus),
            CodedFrames,
            0,
            true,
            &[],
        ),
    ];
    for (body, codec, packet, track, enhanced, rest) in rows {
        let tag = a(body);
        let t = tag.default_track().unwrap();
        assert_eq!(
            (t.codec, t.packet, t.track_id, tag.enhanced, &t.body[..]),
            (*codec, *packet, *track, *enhanced, *rest),
            "{body:02x?}"
        );
        assert!(!t.is_keyframe);
    }
    assert!(a(&[]).is_silence(), "zero-length audio is silence");
    assert!(matches!(
        parse_audio(&Bytes::from_static(&[0xAF])),
        Err(FlvTagError::Truncated { .. })
    ));
    assert!(matches!(
        parse_audio(&Bytes::from_static(&[0xAF, 2])),
        Err(FlvTagError::Reserved { .. })
    ));
    assert!(matches!(
        parse_audio(&Bytes::from_static(&[0x93, b'm', b'p', b'4', b'a'])),
        Err(FlvTagError::Reserved { .. })
    ));
}

#[test]
fn codec_rules() {
    // `.mp3` has no sequence header, whatever the packet type says.
    assert!(!Codec::Audio(AudioCodec::Mp3).has_sequence_start());
    assert!(Codec::Audio(AudioCodec::Aac).has_sequence_start());
    assert!(Codec::Audio(AudioCodec::Opus).has_sequence_start());
    assert!(Codec::Video(VideoCodec::Av1).has_sequence_start());
    assert!(!VideoCodec::Av1.carries_composition_time());
    assert!(!VideoCodec::Vp9.carries_composition_time());
    assert!(VideoCodec::Hevc.carries_composition_time());
    assert_eq!(
        Codec::Video(VideoCodec::Hevc).fourcc(),
        Some(FourCc(*b"hvc1"))
    );
    assert_eq!(Codec::Audio(AudioCodec::Legacy(7)).fourcc(), None);
    assert_eq!(FourCc(*b"a\x00b\xff").to_string(), "a\\x00b\\xff");
    assert!(FrameType::GeneratedKey.is_key() && FrameType::Key.is_key());
    assert!(!FrameType::Inter.is_key() && !FrameType::Command.is_key());
}

proptest! {
    #[test]
    fn never_panics_and_tracks_are_slices(body in prop::collection::vec(any::<u8>(), 0..96)) {
        let bytes = Bytes::from(body);
        for media in [Media::Audio, Media::Video] {
            if let Ok(tag) = parse(media, &bytes) {
                prop_assert!(tag.tracks.len() <= MAX_TRACKS_PER_MESSAGE);
                for t in &tag.tracks {
                    prop_assert!(t.body.len() <= bytes.len());
                    prop_assert_eq!(t.codec.media(), media);
                }
                let _ = tag.info();
            }
        }
    }

    /// Any well-formed ManyTracks message round-trips: every track body comes back by id.
    #[test]
    fn many_tracks_round_trip(bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..=MAX_TRACKS_PER_MESSAGE)) {
        let mut msg = vec![0x95, 0x11, b'm', b'p', b'4', b'a'];
        for (id, b) in bodies.iter().enumerate() {
            msg.push(id as u8 * 3);
            msg.extend_from_slice(&(b.len() as u32).to_be_bytes()[1..]);
            msg.extend_from_slice(b);
        }
        let tag = parse_audio(&Bytes::from(msg)).unwrap();
        prop_assert_eq!(tag.tracks.len(), bodies.len());
        for (id, b) in bodies.iter().enumerate() {
            prop_assert_eq!(&tag.track(id as u8 * 3).unwrap().body[..], &b[..]);
        }
    }
}
