//! HEVCDecoderConfigurationRecord and HEVC SPS parsing must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = remux::codec::hevc::HevcConfig::parse(data) {
        let _ = c.codec_string();
    }
    let _ = remux::codec::hevc::parse_sps_size(data);
});
