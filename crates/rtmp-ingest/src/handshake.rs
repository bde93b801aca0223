//! Server side of the RTMP handshake (RTMP §5.2): simple and FP9 digest
//! (the digest scheme is outside the spec; as librtmp `handshake.h` and nginx-rtmp do it).
//!
//! ```text
//!  client                         server
//!  C0 (1) + C1 (1536)  ------->
//!                      <-------   S0 (1) + S1 (1536) + S2 (1536)   (all at once, never wait for C2)
//!  C2 (1536)           ------->
//!  chunk stream ...    ------->   handed back by `take_remaining()`
//! ```
//!
//! The digest ("complex") handshake is detected as nginx-rtmp and SRS do: a non-zero version in
//! C1[4..8] and a valid HMAC-SHA256 digest (30-byte Flash Player key) at the scheme 1 or scheme 0
//! position. Digest or C2 mismatches are logged at debug level and never fail the connection.

use bytes::{Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::IngestError;

pub const RTMP_VERSION: u8 = 3;
pub const PACKET_BYTES: usize = 1536;
const DIGEST_BYTES: usize = 32;

const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];
const FP_PARTIAL: &[u8; 30] = b"Genuine Adobe Flash Player 001";
const FMS_PARTIAL: &[u8; 36] = b"Genuine Adobe Flash Media Server 001";
/// Version we put in S1 when answering a digest handshake (same as nginx).
const SERVER_VERSION: [u8; 4] = [0x0D, 0x0E, 0x0A, 0x0D];

/// The 62-byte Flash Player key ("Genuine Adobe Flash Player 001" + 32 constant bytes).
pub fn fp_key_full() -> [u8; 62] {
    let mut k = [0u8; 62];
    k[..30].copy_from_slice(FP_PARTIAL);
    k[30..].copy_from_slice(&KEY_TAIL);
    k
}

/// The 68-byte Flash Media Server key.
pub fn fms_key_full() -> [u8; 68] {
    let mut k = [0u8; 68];
    k[..36].copy_from_slice(FMS_PARTIAL);
    k[36..].copy_from_slice(&KEY_TAIL);
    k
}

pub fn fp_key_partial() -> &'static [u8] {
    FP_PARTIAL
}

pub fn fms_key_partial() -> &'static [u8] {
    FMS_PARTIAL
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Where the digest sits in a 1536-byte C1/S1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestScheme {
    /// Offset bytes 8..12, digest at `sum % 728 + 12` ("digest first").
    Scheme0,
    /// Offset bytes 772..776, digest at `sum % 728 + 776` ("key first").
    Scheme1,
}

impl DigestScheme {
    /// Digest offset inside `packet` (a full 1536-byte C1/S1); always `<= 1536 - 32`.
    pub fn digest_offset(self, packet: &[u8; PACKET_BYTES]) -> usize {
        let base = match self {
            Self::Scheme0 => 8,
            Self::Scheme1 => 772,
        };
        let sum: usize = packet[base..base + 4].iter().map(|b| usize::from(*b)).sum();
        sum % 728 + base + 4
    }
}

/// HMAC of `packet` with its 32 digest bytes at `offset` left out.
pub fn packet_digest(key: &[u8], packet: &[u8; PACKET_BYTES], offset: usize) -> [u8; 32] {
    hmac_sha256(key, &[&packet[..offset], &packet[offset + DIGEST_BYTES..]])
}

/// Writes a digest at `scheme`'s position into `packet`.
pub fn sign_packet(key: &[u8], packet: &mut [u8; PACKET_BYTES], scheme: DigestScheme) -> [u8; 32] {
    let offset = scheme.digest_offset(packet);
    let digest = packet_digest(key, packet, offset);
    packet[offset..offset + DIGEST_BYTES].copy_from_slice(&digest);
    digest
}

/// Finds a valid digest in `packet` signed with `key`: scheme 1 first, then scheme 0 (nginx order).
pub fn find_digest(key: &[u8], packet: &[u8; PACKET_BYTES]) -> Option<(DigestScheme, [u8; 32])> {
    [DigestScheme::Scheme1, DigestScheme::Scheme0]
        .into_iter()
        .find_map(|scheme| {
            let offset = scheme.digest_offset(packet);
            let want = packet_digest(key, packet, offset);
            (packet[offset..offset + DIGEST_BYTES] == want).then_some((scheme, want))
        })
}

/// The signature at the end of a digest-mode S2/C2: `HMAC(HMAC(full_key, peer_digest), packet[..1504])`.
pub fn response_signature(
    full_key: &[u8],
    peer_digest: &[u8; 32],
    packet: &[u8; PACKET_BYTES],
) -> [u8; 32] {
    let key = hmac_sha256(full_key, &[peer_digest]);
    hmac_sha256(&key, &[&packet[..PACKET_BYTES - DIGEST_BYTES]])
}

/// Which handshake the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeKind {
    Simple,
    Digest(DigestScheme),
}

#[derive(Debug)]
enum State {
    /// Waiting for C0+C1 (1537 bytes).
    AwaitC0C1,
    /// S0+S1+S2 queued; waiting for C2.
    AwaitC2 {
        s1: Box<[u8; PACKET_BYTES]>,
        s1_digest: Option<[u8; 32]>,
    },
    Done,
}

/// The handshake state machine. Feed bytes with [`Handshake::handle_input`].
#[derive(Debug)]
pub struct Handshake {
    state: State,
    buf: BytesMut,
    transmit: Option<Bytes>,
    kind: Option<HandshakeKind>,
    random: Box<[u8; 2 * PACKET_BYTES]>,
    c2_matched: Option<bool>,
}

impl Handshake {
    /// `random` supplies the random parts of S1 and S2 (the caller picks the RNG; tests pass constants).
    pub fn new(random: Box<[u8; 2 * PACKET_BYTES]>) -> Self {
        Self {
            state: State::AwaitC0C1,
            buf: BytesMut::new(),
            transmit: None,
            kind: None,
            random,
            c2_matched: None,
        }
    }

    /// Consumes bytes; returns `true` once C2 has been read (then call [`Self::take_remaining`]).
    pub fn handle_input(&mut self, data: &[u8]) -> Result<bool, IngestError> {
        self.buf.extend_from_slice(data);
        loop {
            match &self.state {
                State::AwaitC0C1 => {
                    let Some(&version) = self.buf.first() else {
                        return Ok(false);
                    };
                    if version != RTMP_VERSION {
                        return Err(IngestError::BadVersion { version });
                    }
                    if self.buf.len() < 1 + PACKET_BYTES {
                        return Ok(false);
                    }
                    let c0c1 = self.buf.split_to(1 + PACKET_BYTES);
                    let mut c1 = [0u8; PACKET_BYTES];
                    c1.copy_from_slice(&c0c1[1..]);
                    self.answer(&c1);
                }
                State::AwaitC2 { s1, s1_digest } => {
                    if self.buf.len() < PACKET_BYTES {
                        return Ok(false);
                    }
                    let c2_bytes = self.buf.split_to(PACKET_BYTES);
                    let mut c2 = [0u8; PACKET_BYTES];
                    c2.copy_from_slice(&c2_bytes);
                    let matched = match s1_digest {
                        Some(d) => {
                            c2[PACKET_BYTES - DIGEST_BYTES..]
                                == response_signature(&fp_key_full(), d, &c2)
                        }
                        None => c2[8..] == s1[8..],
                    };
                    if !matched {
                        // Never enforced: ffmpeg echoes S1 even in digest mode, restream.io sends digests in simple mode.
                        tracing::debug!(kind = ?self.kind, "C2 does not match S1 (ignored)");
                    }
                    self.c2_matched = Some(matched);
                    self.state = State::Done;
                }
                State::Done => return Ok(true),
            }
        }
    }

    fn answer(&mut self, c1: &[u8; PACKET_BYTES]) {
        let mut out = BytesMut::with_capacity(1 + 2 * PACKET_BYTES);
        out.extend_from_slice(&[RTMP_VERSION]);
        let mut s1 = Box::new([0u8; PACKET_BYTES]);
        s1[8..].copy_from_slice(&self.random[8..PACKET_BYTES]);
        let client_digest = if c1[4..8] == [0, 0, 0, 0] {
            None
        } else {
            find_digest(FP_PARTIAL, c1)
        };
        match client_digest {
            Some((scheme, c1_digest)) => {
                self.kind = Some(HandshakeKind::Digest(scheme));
                s1[4..8].copy_from_slice(&SERVER_VERSION);
                let s1_digest = sign_packet(FMS_PARTIAL, &mut s1, DigestScheme::Scheme0);
                let mut s2 = [0u8; PACKET_BYTES];
                s2.copy_from_slice(&self.random[PACKET_BYTES..]);
                let sig = response_signature(&fms_key_full(), &c1_digest, &s2);
                s2[PACKET_BYTES - DIGEST_BYTES..].copy_from_slice(&sig);
                out.extend_from_slice(&s1[..]);
                out.extend_from_slice(&s2);
                self.state = State::AwaitC2 {
                    s1,
                    s1_digest: Some(s1_digest),
                };
            }
            None => {
                self.kind = Some(HandshakeKind::Simple);
                // S1: time 0, zero 0 (a non-zero version would make ffmpeg players check digests).
                out.extend_from_slice(&s1[..]);
                // S2 echoes C1 exactly (nginx).
                out.extend_from_slice(c1);
                self.state = State::AwaitC2 {
                    s1,
                    s1_digest: None,
                };
            }
        }
        self.transmit = Some(out.freeze());
    }

    /// S0+S1+S2 once C0+C1 have arrived (exactly once).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.take()
    }

    /// The handshake the client chose (known after C1).
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }

    /// Whether C2 echoed S1 / carried the right signature (known after C2; informational only).
    pub fn c2_matched(&self) -> Option<bool> {
        self.c2_matched
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Bytes that arrived after C2 (the start of the chunk stream).
    pub fn take_remaining(&mut self) -> BytesMut {
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn random(seed: u8) -> Box<[u8; 2 * PACKET_BYTES]> {
        let mut r = Box::new([0u8; 2 * PACKET_BYTES]);
        for (i, b) in r.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
        }
        r
    }

    /// RFC 4231 test case 2 pins our HMAC-SHA256 usage.
    #[test]
    fn hmac_rfc4231_case2() {
        let got = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        let want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let hex: String = got.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, want);
    }

    #[test]
    fn key_lengths() {
        assert_eq!(fp_key_partial().len(), 30);
        assert_eq!(fms_key_partial().len(), 36);
        assert_eq!(&fp_key_full()[..30], fp_key_partial());
        assert_eq!(fms_key_full()[36..], KEY_TAIL);
    }

    #[test]
    fn digest_offsets_from_the_spec() {
        let mut p = [0u8; PACKET_BYTES];
        // Scheme 0: bytes 8..12 summed, % 728, + 12.
        p[8..12].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            DigestScheme::Scheme0.digest_offset(&p),
            (4 * 255) % 728 + 12
        );
        p[772..776].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(DigestScheme::Scheme1.digest_offset(&p), 10 + 776);
    }

    #[test]
    fn simple_handshake_echoes_c1_and_hands_back_the_rest() {
        let mut hs = Handshake::new(random(1));
        let mut c1 = [0u8; PACKET_BYTES];
        for (i, b) in c1.iter_mut().enumerate().skip(8) {
            *b = i as u8;
        }
        // Feed C0 alone, then C1 in two pieces.
        assert!(!hs.handle_input(&[3]).unwrap());
        assert!(hs.poll_transmit().is_none());
        assert!(!hs.handle_input(&c1[..100]).unwrap());
        assert!(!hs.handle_input(&c1[100..]).unwrap());
        let out = hs.poll_transmit().expect("S0+S1+S2 before C2");
        assert_eq!(out.len(), 1 + 2 * PACKET_BYTES);
        assert_eq!(out[0], 3);
        assert_eq!(
            &out[1 + 4..1 + 8],
            &[0, 0, 0, 0],
            "S1 version must be zero in simple mode"
        );
        assert_eq!(&out[1 + PACKET_BYTES..], &c1[..], "S2 echoes C1");
        assert_eq!(hs.kind(), Some(HandshakeKind::Simple));
        // C2 that does not echo S1 + trailing chunk bytes.
        let mut tail = vec![0xAAu8; PACKET_BYTES];
        tail.extend_from_slice(&[0x02, 0x00]);
        assert!(hs.handle_input(&tail).unwrap());
        assert_eq!(hs.c2_matched(), Some(false));
        assert_eq!(&hs.take_remaining()[..], &[0x02, 0x00]);
    }

    #[test]
    fn bad_version_is_an_error() {
        for v in [0u8, 6, 8, b'G'] {
            let mut hs = Handshake::new(random(0));
            assert!(
                matches!(hs.handle_input(&[v]), Err(IngestError::BadVersion { version }) if version == v)
            );
        }
    }

    /// Builds a C1 the way ffmpeg's publisher does: version 9.0.124.2, scheme-0 digest, FP partial key.
    fn ffmpeg_like_c1(fill: u8, scheme: DigestScheme) -> [u8; PACKET_BYTES] {
        let mut c1 = [0u8; PACKET_BYTES];
        c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
        for (i, b) in c1.iter_mut().enumerate().skip(8) {
            *b = (i as u8) ^ fill;
        }
        sign_packet(fp_key_partial(), &mut c1, scheme);
        c1
    }

    fn run_digest(c1: [u8; PACKET_BYTES]) {
        let (scheme, c1_digest) =
            find_digest(fp_key_partial(), &c1).expect("vector carries a digest");
        let mut hs = Handshake::new(random(7));
        let mut input = vec![3u8];
        input.extend_from_slice(&c1);
        hs.handle_input(&input).unwrap();
        assert_eq!(hs.kind(), Some(HandshakeKind::Digest(scheme)));
        let out = hs.poll_transmit().unwrap();
        let mut s1 = [0u8; PACKET_BYTES];
        s1.copy_from_slice(&out[1..1 + PACKET_BYTES]);
        let mut s2 = [0u8; PACKET_BYTES];
        s2.copy_from_slice(&out[1 + PACKET_BYTES..]);
        // Client-side checks as the ffmpeg player does them.
        assert_ne!(s1[4], 0);
        let (_, s1_digest) =
            find_digest(fms_key_partial(), &s1).expect("S1 digest verifies with the FMS key");
        assert_eq!(
            s2[PACKET_BYTES - 32..],
            response_signature(&fms_key_full(), &c1_digest, &s2)
        );
        // A correct digest C2.
        let mut c2 = [0x5Au8; PACKET_BYTES];
        let sig = response_signature(&fp_key_full(), &s1_digest, &c2);
        c2[PACKET_BYTES - 32..].copy_from_slice(&sig);
        assert!(hs.handle_input(&c2).unwrap());
        assert_eq!(hs.c2_matched(), Some(true));
    }

    #[test]
    fn digest_handshake_vectors() {
        run_digest(ffmpeg_like_c1(0, DigestScheme::Scheme0));
        run_digest(ffmpeg_like_c1(0x33, DigestScheme::Scheme1));
    }

    #[test]
    fn non_zero_version_without_digest_falls_back_to_simple() {
        let mut c1 = [0x11u8; PACKET_BYTES];
        c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
        let mut hs = Handshake::new(random(0));
        let mut input = vec![3u8];
        input.extend_from_slice(&c1);
        hs.handle_input(&input).unwrap();
        assert_eq!(hs.kind(), Some(HandshakeKind::Simple));
    }

    proptest! {
        #[test]
        fn digest_detected_for_any_c1(fill in any::<u8>(), scheme0 in any::<bool>()) {
            let scheme = if scheme0 { DigestScheme::Scheme0 } else { DigestScheme::Scheme1 };
            run_digest(ffmpeg_like_c1(fill, scheme));
        }

        #[test]
        fn arbitrary_input_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..4000)) {
            let mut hs = Handshake::new(random(0));
            let _ = hs.handle_input(&bytes);
        }
    }
}
