//! Arbitrary FLV tag bodies into the codec inspectors.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rtmp_ingest::flv::inspect_video(data);
    let _ = rtmp_ingest::flv::inspect_audio(data);
});
