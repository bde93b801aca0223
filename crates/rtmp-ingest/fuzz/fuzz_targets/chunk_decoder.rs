//! Arbitrary bytes into the chunk decoder, fed in fuzzer-sized pieces; the read hint after each.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtmp_ingest::chunk::decoder::{ChunkDecoder, DecoderLimits};

fuzz_target!(|data: &[u8]| {
    let Some((&piece, rest)) = data.split_first() else { return };
    let mut d = ChunkDecoder::new(DecoderLimits { max_message_bytes: 1 << 20, max_chunk_size: 1 << 20, max_chunk_streams: 8, max_partial_bytes: 1 << 22 });
    for chunk in rest.chunks(usize::from(piece).max(1)) {
        if d.handle_input(chunk).is_err() {
            break;
        }
        while d.poll_message().is_some() {}
        // The driver asks for the read hint after every read: it must never panic, and it is
        // given exactly when a message is partly received.
        assert_eq!(d.bytes_to_complete_message().is_some(), d.partial_messages() > 0);
    }
});
