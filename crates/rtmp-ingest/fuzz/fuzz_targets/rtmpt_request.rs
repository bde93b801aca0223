//! The RTMPT request-line parser: any method flag and path; an accepted session id is
//! alphanumeric and bounded, and a path it claims is exactly what `is_rtmpt_path` claims.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtmp_ingest::rtmpt::{is_rtmpt_path, parse_request, RtmptRequest, MAX_SESSION_ID_CHARS};

fuzz_target!(|data: &[u8]| {
    let Some((&flag, rest)) = data.split_first() else { return };
    let Ok(path) = std::str::from_utf8(rest) else { return };
    match parse_request(flag & 1 == 1, path) {
        Ok(None) => assert!(!is_rtmpt_path(path)),
        Err(_) => assert!(is_rtmpt_path(path)),
        Ok(Some(r)) => {
            assert!(is_rtmpt_path(path));
            if let RtmptRequest::Send { session, .. } | RtmptRequest::Idle { session, .. } | RtmptRequest::Close { session, .. } = r {
                assert!(!session.is_empty() && session.len() <= MAX_SESSION_ID_CHARS);
                assert!(session.bytes().all(|c| c.is_ascii_alphanumeric()));
            }
        }
    }
});
