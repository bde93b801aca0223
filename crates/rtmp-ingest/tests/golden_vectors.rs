//! Golden replays of what real encoders sent (`testdata/`, recorded by `cargo xtask
//! capture-vectors`; see `testdata/README.md`): the handshake (RTMP §5.2) through `Handshake`,
//! the chunk stream (RTMP §5.3) through `ChunkDecoder` and the AMF0 commands (RTMP §7.2), and the
//! whole connection through `Session`, fed whole and in odd-sized pieces. Each test asserts the
//! exact command sequence and every media tag's kind, timestamp and codec.

use std::sync::Arc;
use std::time::Instant;

use rtmp_ingest::amf0::{self, Amf0Limits};
use rtmp_ingest::chunk::decoder::DecoderLimits;
use rtmp_ingest::chunk::{message_type, ChunkDecoder};
use rtmp_ingest::flv_tag::{AudioCodec, Codec, PacketKind, VideoCodec};
use rtmp_ingest::handshake::{DigestScheme, Handshake, HandshakeKind, PACKET_BYTES};
use rtmp_ingest::session::{PublishInfo, Session, SessionEvent};
use rtmp_ingest::{IngestConfig, TagKind};

fn vector(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One media or script tag as the session delivered it.
#[derive(Clone, Debug, PartialEq)]
struct Tag {
    kind: TagKind,
    timestamp_ms: u32,
    codec: Option<Codec>,
    packet: Option<PacketKind>,
    keyframe: bool,
}

/// What a vector decodes to.
#[derive(Debug)]
struct Replay {
    handshake: HandshakeKind,
    /// C2's random echo field is S1's random data (RTMP §5.2.4; bytes 0..8 are times).
    c2_echoes_s1: bool,
    /// C2 carries the digest-handshake signature over S1's digest.
    c2_signed: bool,
    /// AMF0 command names (type 20), in order.
    commands: Vec<String>,
    /// AMF0 data messages (type 18, `@setDataFrame`).
    data_messages: usize,
    publish: PublishInfo,
    tags: Vec<Tag>,
    unpublished: bool,
}

/// The handshake through `Handshake` (answered with the recorder's random bytes, so S1 is the
/// one the encoder saw) and the chunk stream through `ChunkDecoder`.
fn decode(bytes: &[u8]) -> (HandshakeKind, bool, bool, Vec<String>, usize) {
    let mut hs = Handshake::new(test_support::rtmp::capture_random());
    assert!(hs.handle_input(bytes).unwrap(), "handshake incomplete");
    let s0s1s2 = hs.poll_transmit().expect("S0+S1+S2");
    let c2 = &bytes[1 + PACKET_BYTES..1 + 2 * PACKET_BYTES];
    let c2_echoes_s1 = c2[8..] == s0s1s2[1 + 8..1 + PACKET_BYTES];
    let rest = hs.take_remaining();
    let mut dec = ChunkDecoder::new(DecoderLimits {
        max_message_bytes: 16 << 20,
        max_chunk_size: 16 << 20,
        max_chunk_streams: 64,
        max_partial_bytes: 64 << 20,
    });
    dec.handle_input(&rest).unwrap();
    assert_eq!(dec.partial_messages(), 0, "the recording ends mid-message");
    let (mut commands, mut data_messages) = (Vec::new(), 0);
    while let Some(m) = dec.poll_message() {
        match m.type_id {
            message_type::AMF0_COMMAND => {
                let values = amf0::decode_all(&m.payload, Amf0Limits::default()).unwrap();
                commands.push(values[0].as_str().unwrap().to_owned());
            }
            message_type::AMF0_DATA => data_messages += 1,
            _ => {}
        }
    }
    let kind = hs.kind().unwrap();
    (
        kind,
        c2_echoes_s1,
        hs.c2_matched().unwrap(),
        commands,
        data_messages,
    )
}

/// The whole connection through `Session`. Until the publish is accepted the bytes go in one at
/// a time: a real encoder waits for `NetStream.Publish.Start` before it sends media, and a
/// recording has no read boundaries to say so. After that, `pieces` bytes at a time (cycling
/// through the sizes so headers and message boundaries fall mid-read).
fn session(bytes: &[u8], pieces: &[usize]) -> (PublishInfo, Vec<Tag>, bool) {
    let now = Instant::now();
    let mut s = Session::with_random(
        1,
        Arc::new(IngestConfig::default()),
        now,
        test_support::rtmp::capture_random(),
    );
    let (mut publish, mut tags, mut unpublished) = (None, Vec::new(), false);
    let mut rest = bytes;
    let mut sizes = pieces.iter().cycle();
    while !rest.is_empty() {
        let n = match publish {
            None => 1,
            Some(_) => *sizes.next().unwrap(),
        };
        let (head, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        s.handle_input(now, head).unwrap();
        while let Some(ev) = s.poll_event() {
            match ev {
                SessionEvent::PublishRequested(p) => {
                    assert!(publish.replace(p).is_none(), "second publish request");
                    s.accept_publish(now).unwrap();
                }
                SessionEvent::Tag(t) => tags.push(Tag {
                    kind: t.kind,
                    timestamp_ms: t.timestamp_ms,
                    codec: t.info.map(|i| i.codec),
                    packet: t.info.map(|i| i.packet),
                    keyframe: t.info.is_some_and(|i| i.is_keyframe),
                }),
                SessionEvent::Unpublished => unpublished = true,
                other => panic!("unexpected event {other:?}"),
            }
        }
        while s.poll_transmit().is_some() {}
    }
    let stats = s.stats();
    assert_eq!(stats.dropped_before_publish, 0, "media dropped: {stats:?}");
    assert_eq!(
        (stats.bytes_received, stats.video_tags + stats.audio_tags),
        (
            bytes.len() as u64,
            tags.iter().filter(|t| t.kind != TagKind::Script).count() as u64
        ),
        "session counters"
    );
    (publish.expect("no publish request"), tags, unpublished)
}

fn replay(name: &str) -> Replay {
    let bytes = vector(name);
    let (handshake, c2_echoes_s1, c2_matched, commands, data_messages) = decode(&bytes);
    let (publish, tags, unpublished) = session(&bytes, &[bytes.len()]);
    let piecewise = session(&bytes, &[1, 7, 128, 1536, 3, 4093]);
    assert_eq!(
        (&publish, &tags, unpublished),
        (&piecewise.0, &piecewise.1, piecewise.2),
        "{name}: feeding in pieces changed the result"
    );
    Replay {
        handshake,
        c2_echoes_s1,
        // In simple mode `c2_matched` is the echo check itself.
        c2_signed: matches!(handshake, HandshakeKind::Digest(_)) && c2_matched,
        commands,
        data_messages,
        publish,
        tags,
        unpublished,
    }
}

/// What a publisher's vector must decode to.
struct Expect {
    file: &'static str,
    handshake: HandshakeKind,
    c2_echoes_s1: bool,
    data_messages: usize,
    stream: &'static str,
    params: &'static [(&'static str, &'static str)],
    video: VideoCodec,
    audio: AudioCodec,
    /// Packets before the first coded frame of each kind, in order: (kind, packet).
    head: &'static [(TagKind, PacketKind)],
    /// Coded video frames: timestamps, and the keyframes among them.
    video_ts: Vec<u32>,
    keyframes: &'static [u32],
    /// Coded audio frames' timestamps.
    audio_ts: Vec<u32>,
    /// The video `SequenceEnd` the encoder sends on close, if any.
    sequence_end_ms: Option<u32>,
}

/// Every publisher in `testdata/` sends this exact sequence.
const COMMANDS: &[&str] = &[
    "connect",
    "releaseStream",
    "FCPublish",
    "createStream",
    "publish",
    "FCUnpublish",
    "deleteStream",
];

/// AAC frame `i` (1024 samples at 44.1 kHz) in ms as GStreamer stamps it: truncated.
fn aac_ms_truncated(i: u32) -> u32 {
    (u64::from(i) * 1024 * 1000 / 44_100) as u32
}

/// AAC frame `i` as FFmpeg stamps it: the encoder's 1024-sample priming delay (-23.2 ms, rounded
/// to -23) is shifted to zero, so frame `i` is at round((i - 1) × 23.22 ms) + 23 ms.
fn aac_ms_ffmpeg(i: u32) -> u32 {
    match i {
        0 => 0,
        _ => ((u64::from(i - 1) * 1024 * 1000 + 22_050) / 44_100) as u32 + 23,
    }
}

fn check(e: Expect) {
    let r = replay(e.file);
    let name = e.file;
    assert_eq!(r.handshake, e.handshake, "{name}: handshake");
    assert_eq!(r.c2_echoes_s1, e.c2_echoes_s1, "{name}: C2 echoes S1");
    assert!(!r.c2_signed, "{name}: no publisher signs C2");
    assert_eq!(r.commands, COMMANDS, "{name}: command sequence");
    assert_eq!(
        r.data_messages, e.data_messages,
        "{name}: @setDataFrame count"
    );
    let p = &r.publish;
    assert_eq!(
        (p.app.as_str(), p.stream.as_str()),
        ("live", e.stream),
        "{name}"
    );
    let params: Vec<(&str, &str)> = p
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(params, e.params, "{name}: query parameters");
    let tc_url = p.tc_url.as_deref().unwrap();
    assert!(
        tc_url.starts_with("rtmp://127.0.0.1:") && tc_url.ends_with("/live"),
        "{name}: tcUrl {tc_url}"
    );
    assert!(r.unpublished, "{name}: the encoder unpublished on close");

    // Every media tag names the expected codec; script tags are the data messages.
    for t in &r.tags {
        let want = match t.kind {
            TagKind::Video => Some(Codec::Video(e.video)),
            TagKind::Audio => Some(Codec::Audio(e.audio)),
            TagKind::Script => None,
        };
        assert_eq!(t.codec, want, "{name}: {t:?}");
    }
    let scripts = r.tags.iter().filter(|t| t.kind == TagKind::Script).count();
    assert_eq!(scripts, e.data_messages, "{name}: script tags");

    let media: Vec<&Tag> = r
        .tags
        .iter()
        .filter(|t| t.kind != TagKind::Script)
        .collect();
    let head: Vec<(TagKind, PacketKind)> = media
        .iter()
        .filter(|t| t.packet != Some(PacketKind::CodedFrames))
        .filter(|t| t.packet != Some(PacketKind::SequenceEnd))
        .map(|t| (t.kind, t.packet.unwrap()))
        .collect();
    assert_eq!(head, e.head, "{name}: configuration packets");
    let coded = |kind| -> Vec<&Tag> {
        media
            .iter()
            .copied()
            .filter(|t| t.kind == kind && t.packet == Some(PacketKind::CodedFrames))
            .collect()
    };
    let video = coded(TagKind::Video);
    let video_ts: Vec<u32> = video.iter().map(|t| t.timestamp_ms).collect();
    assert_eq!(video_ts, e.video_ts, "{name}: video timestamps");
    let keyframes: Vec<u32> = video
        .iter()
        .filter(|t| t.keyframe)
        .map(|t| t.timestamp_ms)
        .collect();
    assert_eq!(keyframes, e.keyframes, "{name}: keyframes");
    let audio_ts: Vec<u32> = coded(TagKind::Audio)
        .iter()
        .map(|t| t.timestamp_ms)
        .collect();
    assert_eq!(audio_ts, e.audio_ts, "{name}: audio timestamps");
    let end: Vec<u32> = media
        .iter()
        .filter(|t| t.packet == Some(PacketKind::SequenceEnd))
        .map(|t| t.timestamp_ms)
        .collect();
    assert_eq!(
        end,
        e.sequence_end_ms.into_iter().collect::<Vec<_>>(),
        "{name}: SequenceEnd"
    );
}

const LEGACY_HEAD: &[(TagKind, PacketKind)] = &[
    (TagKind::Video, PacketKind::SequenceStart),
    (TagKind::Audio, PacketKind::SequenceStart),
];

/// FFmpeg 5.1 (Debian): digest handshake (C2 echoes S1 rather than signing it), one
/// `@setDataFrame`, the stream key in the query, everything shifted by the AAC priming delay (the
/// first video frame 23 ms in), and a `SequenceEnd` on close.
#[test]
fn ffmpeg_5_1() {
    check(Expect {
        file: "ffmpeg-5.1-h264-aac.rtmp",
        handshake: HandshakeKind::Digest(DigestScheme::Scheme0),
        c2_echoes_s1: true,
        data_messages: 1,
        stream: "ffmpeg",
        params: &[("key", "secret")],
        video: VideoCodec::Avc,
        audio: AudioCodec::Aac,
        head: LEGACY_HEAD,
        video_ts: (0..20).map(|i| 23 + 100 * i).collect(),
        keyframes: &[23, 1023],
        audio_ts: (0..88).map(aac_ms_ffmpeg).collect(),
        sequence_end_ms: Some(1923),
    });
}

/// GStreamer `rtmp2sink`: simple handshake, `@setDataFrame` with every keyframe and then some
/// (flvmux `streamable`), AAC frames truncated to the ms.
#[test]
fn gstreamer_rtmp2sink() {
    check(gstreamer("gstreamer-rtmp2sink-h264-aac.rtmp", "gst2"));
}

/// librtmp (GStreamer `rtmpsink`): the same stream as `rtmp2sink` through librtmp's writer.
#[test]
fn librtmp_rtmpsink() {
    check(gstreamer(
        "librtmp-gstreamer-rtmpsink-h264-aac.rtmp",
        "librtmp",
    ));
}

fn gstreamer(file: &'static str, stream: &'static str) -> Expect {
    Expect {
        file,
        handshake: HandshakeKind::Simple,
        c2_echoes_s1: true,
        data_messages: 22,
        stream,
        params: &[],
        video: VideoCodec::Avc,
        audio: AudioCodec::Aac,
        head: LEGACY_HEAD,
        video_ts: (0..20).map(|i| 100 * i).collect(),
        keyframes: &[0, 1000],
        audio_ts: (0..87).map(aac_ms_truncated).collect(),
        sequence_end_ms: Some(1996),
    }
}

/// FFmpeg 9, Enhanced RTMP v2: HEVC (`hvc1`) with a `Metadata` (colorInfo) packet, Opus with a
/// `MultichannelConfig` packet, 20 ms Opus frames after the encoder's initial delay.
#[test]
fn ffmpeg_9_enhanced_rtmp() {
    check(Expect {
        file: "ffmpeg-9-hevc-opus-enhanced.rtmp",
        handshake: HandshakeKind::Digest(DigestScheme::Scheme0),
        c2_echoes_s1: true,
        data_messages: 1,
        stream: "ffmpeg9",
        params: &[],
        video: VideoCodec::Hevc,
        audio: AudioCodec::Opus,
        head: &[
            (TagKind::Video, PacketKind::SequenceStart),
            (TagKind::Audio, PacketKind::SequenceStart),
            (TagKind::Audio, PacketKind::MultichannelConfig),
            (TagKind::Video, PacketKind::Metadata),
        ],
        video_ts: (0..20).map(|i| 100 * i).collect(),
        keyframes: &[0, 900],
        audio_ts: std::iter::once(193)
            .chain((0..100).map(|i| 214 + 20 * i))
            .collect(),
        sequence_end_ms: None,
    });
}
