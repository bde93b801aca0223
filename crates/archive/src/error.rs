//! The archive's one error type, grouped by who is at fault: the disk (I/O, full), the data on
//! it (a journal or metadata file that does not parse), or the caller (a wrong argument).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The disk is full (ENOSPC): recording stops, the live stream does not.
    #[error("disk full writing {path}")]
    DiskFull { path: PathBuf },
    /// Any other I/O failure, with the file it concerned.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A metadata file that does not parse (the directory is not a recording, or is damaged).
    #[error("bad metadata in {path}: {why}")]
    BadMeta { path: PathBuf, why: String },
    /// A stored fragment or init segment that cannot be turned into a progressive MP4
    /// (ISO/IEC 14496-12 boxes that do not parse, or a track layout that changed mid-recording).
    #[error("cannot build the MP4 download: {why}")]
    BadMp4 { why: String },
    /// A log that was closed was asked to take more data.
    #[error("the log in {path} is closed")]
    Closed { path: PathBuf },
}

impl ArchiveError {
    /// Wraps an I/O error with its path, telling a full disk apart.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::StorageFull || source.raw_os_error() == Some(28) {
            ArchiveError::DiskFull { path }
        } else {
            ArchiveError::Io { path, source }
        }
    }

    /// A short label for metrics (`sluice_recording_errors_total{reason}`).
    pub fn label(&self) -> &'static str {
        match self {
            ArchiveError::DiskFull { .. } => "disk_full",
            ArchiveError::Io { .. } => "io",
            ArchiveError::BadMeta { .. } => "bad_meta",
            ArchiveError::BadMp4 { .. } => "bad_mp4",
            ArchiveError::Closed { .. } => "closed",
        }
    }
}

pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;
