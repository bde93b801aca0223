//! MPEG-TS packetizer (ISO/IEC 13818-1 §2.4): 188-byte packets, PSI (PAT/PMT) and PES.
//!
//! PIDs (the same as nginx-rtmp, so existing tooling recognises the output):
//! PAT 0x0000, PMT 0x1000, video 0x100, audio 0x101. One program, number 1.

pub mod packet;
pub mod pes;
pub mod psi;

/// PID of the PMT.
pub const PID_PMT: u16 = 0x1000;
/// PID of the video elementary stream.
pub const PID_VIDEO: u16 = 0x100;
/// PID of the audio elementary stream.
pub const PID_AUDIO: u16 = 0x101;
