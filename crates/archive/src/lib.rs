//! Sluice's on-disk segment log, shared by the DVR window of live streams and by recordings
//! (VOD). HLS segments as the remuxer produced them (MPEG-TS, ISO/IEC 14496-12 fragments) are
//! stored one file per segment in a directory per publish life, with an append-only, CRC-checked
//! index journal, so that a crash (`kill -9`, a torn write) loses at most the segment being
//! written; playlists (draft-pantos-hls-rfc8216bis §4.4.3.5 EVENT/VOD, §4.4.4.6
//! PROGRAM-DATE-TIME, §4.4.2.2 EXT-X-START) are rendered from the in-memory index, never from
//! media bytes.
//!
//! Plain synchronous `std::fs`: the binary runs the writer on its own thread, off the ingest
//! path. No clock is read: every time is passed in.
//!
//! Modules: `journal` (record format), `log` (one log: writer, index, recovery), `playlist`
//! (rendering), `retention` (which recordings go, and which DVR data goes first), `mp4` (a
//! recording's CMAF fragments as one progressive MP4: sample tables and byte layout).

pub mod error;
pub mod journal;
pub mod log;
pub mod mp4;
pub mod playlist;
pub mod retention;

pub use error::ArchiveError;
pub use log::{init_file, recover, segment_file, Entry, Index, LogWriter, Meta, Recovery};
pub use playlist::{offset_at, render, RenderOptions};

/// The containers a stream is produced in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Container {
    Ts,
    Cmaf,
}

impl Container {
    pub const ALL: [Container; 2] = [Container::Ts, Container::Cmaf];

    pub fn index(self) -> usize {
        match self {
            Container::Ts => 0,
            Container::Cmaf => 1,
        }
    }

    /// Segment file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Container::Ts => "ts",
            Container::Cmaf => "m4s",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Container::Ts => "ts",
            Container::Cmaf => "cmaf",
        }
    }
}

#[cfg(test)]
mod tests;
