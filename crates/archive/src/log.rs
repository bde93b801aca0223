//! One segment log: a directory holding one publish life's segments (one file per segment and
//! per init segment, never rewritten), `meta.json` (written once, atomically) and the journal
//! `index.log` (see [`crate::journal`]). [`LogWriter`] appends; [`Index`] is the in-memory view
//! that playlists are rendered from; [`recover`] rebuilds an index from disk after a crash.
//!
//! Write order for each segment: data file written and `sync_data`'d, then its journal record
//! appended and `sync_data`'d. A crash at any point leaves every earlier record and file intact;
//! the torn tail (a partial data file, a record without its data, half a record) is dropped on
//! recovery.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{ArchiveError, Result};
use crate::journal::{Kind, Record, CRC, RECORD_BYTES};
use crate::Container;

pub const META_FILE: &str = "meta.json";
pub const JOURNAL_FILE: &str = "index.log";

/// What a log is, written once when it is created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub id: String,
    pub app: String,
    pub stream: String,
    pub created_unix_ms: u64,
}

/// One listed segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub container: Container,
    pub seq: u64,
    pub len: u64,
    pub duration_90k: u64,
    pub wall_unix_ms: u64,
    pub discontinuity: bool,
    pub independent: bool,
    pub init: Option<u64>,
}

/// File name of segment `seq` of `container`.
pub fn segment_file(container: Container, seq: u64) -> String {
    format!("seg-{seq}.{}", container.extension())
}

/// File name of init segment `n`.
pub fn init_file(n: u64) -> String {
    format!("init-{n}.mp4")
}

/// The in-memory index of one log: only numbers, never media bytes.
#[derive(Clone, Debug)]
pub struct Index {
    pub meta: Meta,
    pub dir: PathBuf,
    /// Listed segments per container (`Container::index`), oldest first.
    segments: [VecDeque<Entry>; 2],
    /// Init segments still referenced: (number, bytes).
    inits: Vec<(u64, u64)>,
    /// Discontinuities that left the front of the list, per container.
    evicted_discontinuities: [u64; 2],
    /// Whether anything has left the front (an EVENT playlist becomes a sliding one).
    evicted_any: bool,
    /// Set once the log is closed: the playlist ends.
    pub closed_unix_ms: Option<u64>,
    /// Bytes of the segment and init files listed.
    bytes: u64,
}

impl Index {
    pub fn new(meta: Meta, dir: PathBuf) -> Self {
        Index {
            meta,
            dir,
            segments: Default::default(),
            inits: Vec::new(),
            evicted_discontinuities: [0; 2],
            evicted_any: false,
            closed_unix_ms: None,
            bytes: 0,
        }
    }

    pub fn segments(&self, c: Container) -> &VecDeque<Entry> {
        &self.segments[c.index()]
    }

    pub fn containers(&self) -> Vec<Container> {
        Container::ALL
            .into_iter()
            .filter(|c| !self.segments[c.index()].is_empty())
            .collect()
    }

    /// The container `index.m3u8` serves: TS when there is TS, else CMAF.
    pub fn primary(&self) -> Option<Container> {
        self.containers().first().copied()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn evicted_discontinuities(&self, c: Container) -> u64 {
        self.evicted_discontinuities[c.index()]
    }

    pub fn evicted_any(&self) -> bool {
        self.evicted_any
    }

    /// Listed media duration of the primary container, in 90 kHz ticks.
    pub fn duration_90k(&self) -> u64 {
        self.primary().map_or(0, |c| {
            self.segments[c.index()]
                .iter()
                .map(|e| e.duration_90k)
                .sum()
        })
    }

    /// Wall-clock time of the oldest listed segment (any container).
    pub fn oldest_wall_unix_ms(&self) -> Option<u64> {
        self.segments
            .iter()
            .filter_map(|q| q.front())
            .map(|e| e.wall_unix_ms)
            .min()
    }

    pub fn segment(&self, c: Container, seq: u64) -> Option<&Entry> {
        let q = &self.segments[c.index()];
        let first = q.front()?.seq;
        q.get(usize::try_from(seq.checked_sub(first)?).ok()?)
            .filter(|e| e.seq == seq)
    }

    pub fn init_len(&self, n: u64) -> Option<u64> {
        self.inits.iter().find(|(i, _)| *i == n).map(|(_, l)| *l)
    }

    pub fn push_init(&mut self, n: u64, len: u64) {
        self.inits.push((n, len));
        self.bytes += len;
    }

    pub fn push(&mut self, e: Entry) {
        self.bytes += e.len;
        self.segments[e.container.index()].push_back(e);
    }

    /// Drops the oldest segment (of whichever container has the oldest), and any init segment
    /// no longer referenced; returns the file names to delete and their bytes.
    pub fn evict_oldest(&mut self) -> Option<(Vec<String>, u64)> {
        let c = Container::ALL
            .into_iter()
            .filter_map(|c| {
                self.segments[c.index()]
                    .front()
                    .map(|e| (e.wall_unix_ms, e.seq, c))
            })
            .min()?
            .2;
        self.evict_front(c)
    }

    /// Media duration listed for `c`, in 90 kHz ticks.
    pub fn listed_90k(&self, c: Container) -> u64 {
        self.segments[c.index()]
            .iter()
            .map(|e| e.duration_90k)
            .sum()
    }

    /// Drops the oldest segment of `c` (see [`Index::evict_oldest`]).
    pub fn evict_front(&mut self, c: Container) -> Option<(Vec<String>, u64)> {
        let e = self.segments[c.index()].pop_front()?;
        self.evicted_any = true;
        if e.discontinuity {
            self.evicted_discontinuities[c.index()] += 1;
        }
        let mut files = vec![segment_file(c, e.seq)];
        let mut freed = e.len;
        let used: Vec<u64> = self
            .segments
            .iter()
            .flatten()
            .filter_map(|e| e.init)
            .collect();
        let newest_init = self.inits.iter().map(|(n, _)| *n).max();
        self.inits.retain(|(n, len)| {
            // The newest init stays: segments still to come need it.
            let keep = used.contains(n) || Some(*n) == newest_init;
            if !keep {
                files.push(init_file(*n));
                freed += len;
            }
            keep
        });
        self.bytes -= freed;
        Some((files, freed))
    }
}

/// Appends to one log. Owned by the single writer thread.
pub struct LogWriter {
    dir: PathBuf,
    journal: File,
    next_seq: [u64; 2],
    next_init: u64,
    /// The next segment of each container starts a discontinuity (a reconnect).
    pending_discontinuity: [bool; 2],
    closed: bool,
}

fn sync_file(path: &Path, bytes: &[&[u8]], create_new: bool) -> Result<u32> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .create_new(create_new)
        .truncate(!create_new)
        .open(path)
        .map_err(|e| ArchiveError::io(path, e))?;
    let mut digest = CRC.digest();
    for b in bytes {
        f.write_all(b).map_err(|e| ArchiveError::io(path, e))?;
        digest.update(b);
    }
    f.sync_data().map_err(|e| ArchiveError::io(path, e))?;
    Ok(digest.finalize())
}

impl LogWriter {
    /// Creates the directory, writes `meta.json` (temporary file, `sync_data`, rename) and an
    /// empty journal.
    pub fn create(dir: &Path, meta: Meta) -> Result<(LogWriter, Index)> {
        std::fs::create_dir_all(dir).map_err(|e| ArchiveError::io(dir, e))?;
        let tmp = dir.join("meta.json.tmp");
        let json = serde_json::to_vec_pretty(&meta).unwrap_or_default();
        sync_file(&tmp, &[&json], false)?;
        let path = dir.join(META_FILE);
        std::fs::rename(&tmp, &path).map_err(|e| ArchiveError::io(&path, e))?;
        let jpath = dir.join(JOURNAL_FILE);
        let journal = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&jpath)
            .map_err(|e| ArchiveError::io(&jpath, e))?;
        let index = Index::new(meta, dir.to_path_buf());
        Ok((
            LogWriter {
                dir: dir.to_path_buf(),
                journal,
                next_seq: [0; 2],
                next_init: 0,
                pending_discontinuity: [false; 2],
                closed: false,
            },
            index,
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn append_record(&mut self, r: &Record) -> Result<()> {
        if self.closed {
            return Err(ArchiveError::Closed {
                path: self.dir.clone(),
            });
        }
        let path = self.dir.join(JOURNAL_FILE);
        self.journal
            .write_all(&r.encode())
            .and_then(|()| self.journal.sync_data())
            .map_err(|e| ArchiveError::io(&path, e))
    }

    /// Writes init segment bytes; returns its number and length (for [`Index::push_init`]).
    pub fn append_init(&mut self, container: Container, bytes: &[Bytes]) -> Result<(u64, u64)> {
        if self.closed {
            return Err(ArchiveError::Closed {
                path: self.dir.clone(),
            });
        }
        let n = self.next_init;
        let parts: Vec<&[u8]> = bytes.iter().map(|b| b.as_ref()).collect();
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let data_crc = sync_file(&self.dir.join(init_file(n)), &parts, false)?;
        self.append_record(&Record {
            kind: Kind::Init,
            container,
            discontinuity: false,
            independent: false,
            seq: n,
            len,
            duration_90k: 0,
            wall_unix_ms: 0,
            init: None,
            data_crc,
        })?;
        self.next_init += 1;
        Ok((n, len))
    }

    /// The next segment of every container is a discontinuity (a reconnect continues the log).
    pub fn mark_discontinuity(&mut self) {
        self.pending_discontinuity = [true; 2];
    }

    /// Writes one segment (its parts in order); returns its entry (for [`Index::push`]). The
    /// caller lists it, so that readers never wait for the disk.
    #[allow(clippy::too_many_arguments)]
    pub fn append_segment(
        &mut self,
        container: Container,
        parts: &[Bytes],
        duration_90k: u64,
        wall_unix_ms: u64,
        discontinuity: bool,
        independent: bool,
        init: Option<u64>,
    ) -> Result<Entry> {
        if self.closed {
            return Err(ArchiveError::Closed {
                path: self.dir.clone(),
            });
        }
        let ci = container.index();
        let seq = self.next_seq[ci];
        let slices: Vec<&[u8]> = parts.iter().map(|b| b.as_ref()).collect();
        let len: u64 = slices.iter().map(|p| p.len() as u64).sum();
        let data_crc = sync_file(&self.dir.join(segment_file(container, seq)), &slices, false)?;
        let discontinuity = discontinuity || self.pending_discontinuity[ci];
        let e = Entry {
            container,
            seq,
            len,
            duration_90k,
            wall_unix_ms,
            discontinuity,
            independent,
            init,
        };
        self.append_record(&Record {
            kind: Kind::Segment,
            container,
            discontinuity,
            independent,
            seq,
            len,
            duration_90k,
            wall_unix_ms,
            init,
            data_crc,
        })?;
        self.pending_discontinuity[ci] = false;
        self.next_seq[ci] += 1;
        Ok(e)
    }

    /// Appends the end record: the log is complete (VOD); set `Index::closed_unix_ms` too.
    /// Idempotent.
    pub fn close(&mut self, at_unix_ms: u64) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = self.append_record(&Record {
            kind: Kind::End,
            container: Container::Ts,
            discontinuity: false,
            independent: false,
            seq: 0,
            len: 0,
            duration_90k: 0,
            wall_unix_ms: at_unix_ms,
            init: None,
            data_crc: 0,
        });
        self.closed = true;
        r
    }
}

/// What recovery found in one directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Intact records kept.
    pub records_kept: usize,
    /// Journal bytes cut off (a torn record, or records whose data was incomplete).
    pub journal_bytes_dropped: u64,
    /// Files deleted because no intact record described them.
    pub files_dropped: usize,
    /// The log had no end record and was closed at its last complete segment.
    pub closed_now: bool,
}

fn file_matches(path: &Path, len: u64, crc: u32) -> bool {
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    if f.metadata().map(|m| m.len()).ok() != Some(len) {
        return false;
    }
    let mut digest = CRC.digest();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => digest.update(&buf[..n]),
            Err(_) => return false,
        }
    }
    digest.finalize() == crc
}

/// Rebuilds the index of the log in `dir` from its journal, keeping every record whose data is
/// complete and matches its CRC, up to the first one that is not; truncates the journal there,
/// deletes files no kept record describes, and closes the log (an end record at the last
/// complete segment) if it was still open.
pub fn recover(dir: &Path) -> Result<(Index, Recovery)> {
    let meta_path = dir.join(META_FILE);
    let meta_bytes = std::fs::read(&meta_path).map_err(|e| ArchiveError::io(&meta_path, e))?;
    let meta: Meta = serde_json::from_slice(&meta_bytes).map_err(|e| ArchiveError::BadMeta {
        path: meta_path.clone(),
        why: e.to_string(),
    })?;
    let jpath = dir.join(JOURNAL_FILE);
    let journal = match std::fs::read(&jpath) {
        Ok(j) => j,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(ArchiveError::io(&jpath, e)),
    };
    let mut index = Index::new(meta, dir.to_path_buf());
    let mut report = Recovery::default();
    let mut good = 0usize;
    let mut keep_files: Vec<String> = Vec::new();
    for chunk in journal.chunks(RECORD_BYTES) {
        let Some(r) = Record::decode(chunk) else {
            break;
        };
        match r.kind {
            Kind::End => {
                index.closed_unix_ms = Some(r.wall_unix_ms);
            }
            Kind::Init => {
                let name = init_file(r.seq);
                if !file_matches(&dir.join(&name), r.len, r.data_crc) {
                    break;
                }
                index.push_init(r.seq, r.len);
                keep_files.push(name);
            }
            Kind::Segment => {
                let name = segment_file(r.container, r.seq);
                if index.closed_unix_ms.is_some()
                    || !file_matches(&dir.join(&name), r.len, r.data_crc)
                {
                    break;
                }
                index.push(Entry {
                    container: r.container,
                    seq: r.seq,
                    len: r.len,
                    duration_90k: r.duration_90k,
                    wall_unix_ms: r.wall_unix_ms,
                    discontinuity: r.discontinuity,
                    independent: r.independent,
                    init: r.init,
                });
                keep_files.push(name);
            }
        }
        good += RECORD_BYTES;
        report.records_kept += 1;
    }
    if good < journal.len() {
        report.journal_bytes_dropped = (journal.len() - good) as u64;
        let f = OpenOptions::new()
            .write(true)
            .open(&jpath)
            .map_err(|e| ArchiveError::io(&jpath, e))?;
        f.set_len(good as u64)
            .and_then(|()| f.sync_data())
            .map_err(|e| ArchiveError::io(&jpath, e))?;
    }
    // Files written after the last intact record (a torn segment) go.
    let entries = std::fs::read_dir(dir).map_err(|e| ArchiveError::io(dir, e))?;
    for ent in entries.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        let media = name.starts_with("seg-") || name.starts_with("init-") || name.ends_with(".tmp");
        if media && !keep_files.contains(&name) {
            let _ = std::fs::remove_file(ent.path());
            report.files_dropped += 1;
        }
    }
    if index.closed_unix_ms.is_none() {
        let last = Container::ALL
            .into_iter()
            .filter_map(|c| {
                index
                    .segments(c)
                    .back()
                    .map(|e| e.wall_unix_ms + e.duration_90k / 90)
            })
            .max()
            .unwrap_or(index.meta.created_unix_ms);
        let mut f = OpenOptions::new()
            .append(true)
            .open(&jpath)
            .or_else(|_| OpenOptions::new().append(true).create(true).open(&jpath))
            .map_err(|e| ArchiveError::io(&jpath, e))?;
        let end = Record {
            kind: Kind::End,
            container: Container::Ts,
            discontinuity: false,
            independent: false,
            seq: 0,
            len: 0,
            duration_90k: 0,
            wall_unix_ms: last,
            init: None,
            data_crc: 0,
        };
        f.write_all(&end.encode())
            .and_then(|()| f.sync_data())
            .map_err(|e| ArchiveError::io(&jpath, e))?;
        index.closed_unix_ms = Some(last);
        report.closed_now = true;
    }
    Ok((index, report))
}
