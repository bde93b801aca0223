//! AV1CodecConfigurationRecord, OBU walking and sequence header parsing must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = remux::codec::av1::Av1Config::parse(data) {
        let _ = c.codec_string();
        let _ = c.dimensions();
    }
    let _ = remux::codec::av1::find_sequence_header(data);
    let _ = remux::codec::av1::parse_sequence_header(data);
});
