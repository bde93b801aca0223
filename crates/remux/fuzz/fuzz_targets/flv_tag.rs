//! FLV / Enhanced RTMP audio and video tag headers (the shared `flv-tag` parser) must never panic,
//! and every track body must be a slice of the message.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let b = bytes::Bytes::copy_from_slice(data);
    for media in [flv_tag::Media::Video, flv_tag::Media::Audio] {
        if let Ok(tag) = flv_tag::parse(media, &b) {
            assert!(tag.tracks.len() <= flv_tag::MAX_TRACKS_PER_MESSAGE);
            for t in &tag.tracks {
                assert!(t.body.len() <= b.len());
            }
            let _ = tag.info();
        }
    }
});
