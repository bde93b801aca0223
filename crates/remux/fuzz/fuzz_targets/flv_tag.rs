//! FLV / Enhanced RTMP audio and video tag headers must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let b = bytes::Bytes::copy_from_slice(data);
    let _ = remux::flv::parse_video(&b);
    let _ = remux::flv::parse_audio(&b);
});
