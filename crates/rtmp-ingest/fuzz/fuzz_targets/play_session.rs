//! The player side of a Session: a valid handshake, `connect`/`createStream`/`play` from the
//! input, every play accepted; the input also drives the fan-out (tags of arbitrary bytes into
//! `send_media` through a small PlayQueue, publisher left/returned) interleaved with the
//! player's own commands. Nothing may panic and every queue stays within its byte cap.
#![no_main]
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rtmp_ingest::handshake::PACKET_BYTES;
use rtmp_ingest::play::{JoinCache, PlayQueue, PlayQueueLimits};
use rtmp_ingest::session::{Session, SessionEvent};
use rtmp_ingest::{flv_tag, IngestConfig, IngestTag, TagKind};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut s = Session::with_random(1, Arc::new(IngestConfig::default()), t0, Box::new([1; 2 * PACKET_BYTES]));
    let mut prefix = vec![3u8];
    prefix.extend(std::iter::repeat_n(0u8, 2 * PACKET_BYTES));
    if s.handle_input(t0, &prefix).is_err() {
        return;
    }
    let limits = PlayQueueLimits { drop_disposable_ms: 10, drop_video_ms: 20, hard_cap_ms: 100, max_bytes: 4096 };
    let mut queue = PlayQueue::new(limits);
    let mut cache = JoinCache::new(2048);
    let mut ts: u32 = 0;
    for (i, piece) in data.chunks(61).enumerate() {
        let now = t0 + Duration::from_millis(i as u64);
        match piece.first().copied().unwrap_or(0) % 4 {
            // Peer bytes.
            0 | 1 => {
                if s.handle_input(now, &piece[1..]).is_err() {
                    return;
                }
            }
            // A tag from the "publisher".
            2 => {
                let kind = match piece.get(1).copied().unwrap_or(0) % 3 {
                    0 => TagKind::Audio,
                    1 => TagKind::Video,
                    _ => TagKind::Script,
                };
                ts = ts.wrapping_add(u32::from(piece.get(2).copied().unwrap_or(0)));
                let payload = Bytes::copy_from_slice(piece.get(3..).unwrap_or(&[]));
                let info = match kind {
                    TagKind::Video => flv_tag::inspect(flv_tag::Media::Video, &payload),
                    TagKind::Audio => flv_tag::inspect(flv_tag::Media::Audio, &payload),
                    TagKind::Script => None,
                };
                let tag = IngestTag { kind, timestamp_ms: ts, payload, info };
                cache.push(&tag);
                let _ = queue.push(&tag);
                assert!(queue.queued_bytes() <= limits.max_bytes);
            }
            // Publisher events and a late joiner's sequence.
            _ => match piece.get(1).copied().unwrap_or(0) % 3 {
                0 => s.publisher_left(),
                1 => s.publisher_returned(),
                _ => {
                    for t in cache.join_sequence() {
                        s.send_media(&t);
                    }
                }
            },
        }
        while let Some(t) = queue.pop() {
            s.send_media(&t);
        }
        while let Some(ev) = s.poll_event() {
            if let SessionEvent::PlayRequested(_) = ev {
                let _ = s.accept_play(now);
            }
            if let SessionEvent::PublishRequested(_) = ev {
                let _ = s.accept_publish(now);
            }
        }
        while s.poll_transmit().is_some() {}
    }
    let _ = s.handle_timeout(t0 + Duration::from_secs(3600));
});
