//! Property: a segment's body, served whole or by any byte range, is the concatenation of the
//! parts the producer pushed, for both containers.

mod common;

use std::time::Instant;

use bytes::Bytes;
use common::*;
use hls_edge::{router, Container, EdgeConfig, NewSegment};
use http::StatusCode;
use proptest::prelude::*;

fn run(parts_bytes: Vec<Vec<u8>>, container: Container, range: (usize, usize)) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let t0 = Instant::now();
        let store = store_at(EdgeConfig::default(), t0);
        let app = router(store.store.clone());
        let h = store.publish("live", "p", 2);
        let whole: Vec<u8> = parts_bytes.concat();
        let chunks: Vec<Bytes> = parts_bytes.into_iter().map(Bytes::from).collect();
        let seg = NewSegment {
            container,
            parts: parts(chunks, 180_000),
            init: Some(Bytes::from_static(b"init")),
            duration_90k: 180_000,
            discontinuity: false,
            independent: true,
            arrival_unix_ms: T0_UNIX_MS,
            keyframe: None,
        };
        let seq = h.push_at(seg, t0);
        let uri = format!("/live/p/seg-{seq}.{}", container.segment_extension());
        let r = get(&app, &uri).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body.as_ref(), whole.as_slice());
        if whole.is_empty() {
            return;
        }
        let first = range.0 % whole.len();
        let last = first + range.1 % (whole.len() - first);
        let hdr = format!("bytes={first}-{last}");
        let r = request(&app, "GET", &uri, &[("range", &hdr)]).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(r.body.as_ref(), &whole[first..=last]);
    });
}

proptest! {
    #[test]
    fn segment_body_is_the_concatenation_of_its_parts(
        parts in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 1..9),
        cmaf in any::<bool>(),
        range in (any::<usize>(), any::<usize>()),
    ) {
        let c = if cmaf { Container::Cmaf } else { Container::Ts };
        run(parts, c, range);
    }
}
