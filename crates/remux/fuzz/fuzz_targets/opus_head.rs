//! OpusHead → dOps and the Opus TOC duration must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = remux::codec::opus::OpusConfig::parse(data) {
        assert_eq!(c.dops[1], c.channels);
    }
    if let Some(d) = remux::codec::opus::packet_duration_48k(data) {
        assert!(d <= remux::codec::opus::MAX_PACKET_DURATION_48K);
    }
});
