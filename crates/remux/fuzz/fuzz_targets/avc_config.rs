//! AVCDecoderConfigurationRecord, SPS and AVCC → Annex B conversion must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let b = bytes::Bytes::copy_from_slice(data);
    if let Ok(c) = remux::avc::AvcConfig::parse(&b) {
        let _ = remux::avc::to_annex_b(&b, &c, 64);
    }
    let _ = remux::avc::parse_sps(data);
});
