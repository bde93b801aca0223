//! Arbitrary FLV tag bodies into the shared tag parser, as ingest calls it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtmp_ingest::flv_tag::{inspect, Media};

fuzz_target!(|data: &[u8]| {
    let body = data.to_vec().into();
    let _ = inspect(Media::Video, &body);
    let _ = inspect(Media::Audio, &body);
});
