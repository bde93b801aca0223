//! A valid simple handshake, then arbitrary bytes into a Session; accepts every publish request.
#![no_main]
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rtmp_ingest::handshake::PACKET_BYTES;
use rtmp_ingest::session::{Session, SessionEvent};
use rtmp_ingest::IngestConfig;

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut s = Session::with_random(1, Arc::new(IngestConfig::default()), t0, Box::new([1; 2 * PACKET_BYTES]));
    let mut prefix = vec![3u8];
    prefix.extend(std::iter::repeat_n(0u8, 2 * PACKET_BYTES));
    if s.handle_input(t0, &prefix).is_err() {
        return;
    }
    for (i, piece) in data.chunks(97).enumerate() {
        let now = t0 + Duration::from_millis(i as u64);
        if s.handle_input(now, piece).is_err() {
            return;
        }
        while let Some(ev) = s.poll_event() {
            if let SessionEvent::PublishRequested(_) = ev {
                let _ = s.accept_publish(now);
            }
        }
        let _ = s.poll_transmit();
    }
    let _ = s.handle_timeout(t0 + Duration::from_secs(3600));
});
