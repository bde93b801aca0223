//! VPCodecConfigurationRecord and the VP9 uncompressed header must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = remux::codec::vp9::Vp9Config::parse(data) {
        let _ = c.codec_string();
    }
    let _ = remux::codec::vp9::Vp9Config::frame_size(data);
});
