//! AudioSpecificConfig, ADTS header and MP3 header parsing must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let b = bytes::Bytes::copy_from_slice(data);
    if let Ok(c) = remux::aac::AacConfig::parse(&b) {
        let _ = c.adts_header(data.len());
    }
    let _ = remux::aac::parse_mp3_header(data);
});
