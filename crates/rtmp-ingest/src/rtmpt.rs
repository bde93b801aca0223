//! RTMPT, RTMP tunnelled over HTTP polling (J. Bauch, "Specification of the RTMPT protocol",
//! Red5, 2006): the request paths, session ids and the framing of the replies. Sans-IO; the
//! HTTP server and the pipe to the connection actor live in the binary.
//!
//! ```text
//!  POST /open/1              body 0x00          reply  "<session id>\n"        (no poll byte)
//!  POST /send/<id>/<seq>     body RTMP bytes    reply  <poll byte> + queued server bytes
//!  POST /idle/<id>/<seq>     body 0x00          reply  <poll byte> + queued server bytes
//!  POST /close/<id>/<seq>    body 0x00          reply  0x00                    (session ends)
//!  POST /fcs/ident2          (Flash only)       reply  404
//! ```
//!
//! Client constraints that fix the format (FFmpeg `libavformat/rtmphttp.c`, librtmp
//! `HTTP_read`): the id line ends in exactly one `\n` (librtmp drops the last byte blindly) and
//! fits FFmpeg's 64-byte buffer; every `/send` and `/idle` reply carries at least the poll byte
//! (an empty body is EOF to both); the sequence number is not checked by any client or server.

use rand::Rng;

/// One RTMPT request, from its method and path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtmptRequest<'a> {
    Open,
    Send {
        session: &'a str,
        seq: u64,
    },
    Idle {
        session: &'a str,
        seq: u64,
    },
    Close {
        session: &'a str,
        seq: u64,
    },
    /// `/fcs/ident2` (and `/fcs/ident`): Flash Player's server probe.
    Ident,
}

/// Why an RTMPT-shaped request is not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtmptPathError {
    /// RTMPT requests are POSTs only.
    NotPost,
    /// A malformed session id or sequence number.
    BadPath,
}

/// Longest session id accepted in a path (ours are [`SESSION_ID_CHARS`] long).
pub const MAX_SESSION_ID_CHARS: usize = 64;
/// Length of the session ids we issue: 32 characters of [A-Za-z0-9] from the OS-seeded CSPRNG,
/// about 190 bits, so an id cannot be guessed.
pub const SESSION_ID_CHARS: usize = 32;
/// The poll byte while data flows (Red5 and crtmpserver send 0x01; neither FFmpeg nor librtmp
/// uses the value).
pub const POLL_BYTE: u8 = 0x01;
/// The reply body of `/close`.
pub const CLOSE_REPLY: u8 = 0x00;

/// Whether `path` belongs to RTMPT (whatever the method): `/open/...`, `/send/...`,
/// `/idle/...`, `/close/...`, `/fcs/...`. Such paths never reach the HLS edge.
pub fn is_rtmpt_path(path: &str) -> bool {
    let first = path
        .strip_prefix('/')
        .and_then(|p| p.split('/').next())
        .unwrap_or("");
    matches!(first, "open" | "send" | "idle" | "close" | "fcs") && path.len() > first.len() + 1
}

/// Parses an RTMPT request; `Ok(None)` if the path is not RTMPT at all.
pub fn parse_request<'a>(
    method_is_post: bool,
    path: &'a str,
) -> Result<Option<RtmptRequest<'a>>, RtmptPathError> {
    if !is_rtmpt_path(path) {
        return Ok(None);
    }
    if !method_is_post {
        return Err(RtmptPathError::NotPost);
    }
    let mut parts = path[1..].split('/');
    let command = parts.next().unwrap_or("");
    let a = parts.next();
    let b = parts.next();
    if parts.next().is_some() {
        return Err(RtmptPathError::BadPath);
    }
    let session_seq = || -> Result<(&'a str, u64), RtmptPathError> {
        let (Some(id), Some(seq)) = (a, b) else {
            return Err(RtmptPathError::BadPath);
        };
        let id_ok = !id.is_empty()
            && id.len() <= MAX_SESSION_ID_CHARS
            && id.bytes().all(|c| c.is_ascii_alphanumeric());
        let seq_ok = !seq.is_empty() && seq.len() <= 19 && seq.bytes().all(|c| c.is_ascii_digit());
        if !id_ok || !seq_ok {
            return Err(RtmptPathError::BadPath);
        }
        Ok((id, seq.parse().map_err(|_| RtmptPathError::BadPath)?))
    };
    let request = match command {
        "open" if a == Some("1") && b.is_none() => RtmptRequest::Open,
        "fcs" if matches!(a, Some("ident2" | "ident")) && b.is_none() => RtmptRequest::Ident,
        "send" => {
            let (session, seq) = session_seq()?;
            RtmptRequest::Send { session, seq }
        }
        "idle" => {
            let (session, seq) = session_seq()?;
            RtmptRequest::Idle { session, seq }
        }
        "close" => {
            let (session, seq) = session_seq()?;
            RtmptRequest::Close { session, seq }
        }
        _ => return Err(RtmptPathError::BadPath),
    };
    Ok(Some(request))
}

/// A new unguessable session id.
pub fn new_session_id() -> String {
    rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(SESSION_ID_CHARS)
        .map(char::from)
        .collect()
}

/// The `/open` reply body: the id and exactly one `\n`.
pub fn open_reply(session_id: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(session_id.len() + 1);
    b.extend_from_slice(session_id.as_bytes());
    b.push(b'\n');
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_table() {
        use RtmptRequest::*;
        let id = "AbC123";
        type Want<'a> = Result<Option<RtmptRequest<'a>>, RtmptPathError>;
        let cases: &[(bool, &str, Want)] = &[
            (true, "/open/1", Ok(Some(Open))),
            (
                true,
                "/send/AbC123/0",
                Ok(Some(Send {
                    session: id,
                    seq: 0,
                })),
            ),
            (
                true,
                "/idle/AbC123/17",
                Ok(Some(Idle {
                    session: id,
                    seq: 17,
                })),
            ),
            (
                true,
                "/close/AbC123/18",
                Ok(Some(Close {
                    session: id,
                    seq: 18,
                })),
            ),
            (true, "/fcs/ident2", Ok(Some(Ident))),
            (false, "/send/AbC123/0", Err(RtmptPathError::NotPost)),
            (true, "/open/2", Err(RtmptPathError::BadPath)),
            (true, "/send/AbC123", Err(RtmptPathError::BadPath)),
            (true, "/send/AbC123/x", Err(RtmptPathError::BadPath)),
            (true, "/send/Ab-C/1", Err(RtmptPathError::BadPath)),
            (true, "/send/AbC123/1/extra", Err(RtmptPathError::BadPath)),
            (true, "/send//1", Err(RtmptPathError::BadPath)),
            (
                true,
                "/send/a/99999999999999999999",
                Err(RtmptPathError::BadPath),
            ),
            (true, "/live/stream/index.m3u8", Ok(None)),
            (true, "/sender/x/1", Ok(None)),
            (true, "/send", Ok(None)),
            (true, "/", Ok(None)),
            (true, "", Ok(None)),
        ];
        for (post, path, want) in cases {
            assert_eq!(&parse_request(*post, path), want, "{path}");
        }
    }

    #[test]
    fn session_ids_are_long_random_alphanumerics() {
        let a = new_session_id();
        let b = new_session_id();
        assert_eq!(a.len(), SESSION_ID_CHARS);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        let reply = open_reply(&a);
        assert_eq!(reply.len(), SESSION_ID_CHARS + 1);
        assert_eq!(reply.last(), Some(&b'\n'));
        assert_eq!(
            parse_request(true, &format!("/idle/{a}/3")),
            Ok(Some(RtmptRequest::Idle {
                session: &a,
                seq: 3
            }))
        );
    }
}
