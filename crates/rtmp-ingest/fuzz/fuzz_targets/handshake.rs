//! Arbitrary bytes into the handshake state machine, split at a fuzzer-chosen point.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtmp_ingest::handshake::{Handshake, PACKET_BYTES};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let mut hs = Handshake::new(Box::new([0x5a; 2 * PACKET_BYTES]));
    let at = (usize::from(split) * 16).min(rest.len());
    if hs.handle_input(&rest[..at]).is_ok() {
        let _ = hs.handle_input(&rest[at..]);
    }
    let _ = hs.poll_transmit();
    let _ = hs.take_remaining();
});
