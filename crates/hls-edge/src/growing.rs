//! A part that grows: the LL-HLS part being written (RFC 8216bis §4.4.4.9), whose CMAF chunks
//! (ISO/IEC 23000-19 §7.3.2.3) the producer hands over one by one, and the response body that
//! serves it while it grows, so a request for the part the preload hint names (RFC 8216bis
//! §6.2.6) gets media the moment it exists.
//!
//! ```text
//!  producer: push_chunk ─► append ─┐ (watch: one notification per chunk, however many readers)
//!            complete_part ─► end ─┤
//!  reader:   GET part-N.P.m4s ─► 200, no Content-Length (RFC 9112 §7.1 chunked coding)
//!            yields the chunks present, then each new one, until the part is complete
//! ```
//! A body ends normally only when the part is complete, so it is then byte for byte the part
//! served later with `Content-Length`. A part that is abandoned (the publisher left mid-part, a
//! new publish began, a part pushed whole replaced it) or that stalls longer than the limit
//! ends the body with an error: the connection's chunked coding is cut before its last chunk,
//! so neither a player nor a cache can take the truncated body for the part (RFC 9112 §7.1).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::HeaderValue;
use tokio::sync::watch;

/// How a growing part ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Its last chunk is in: the part as listed.
    Complete,
    /// It will never be complete; readers end with an error.
    Abandoned,
}

#[derive(Debug, Default)]
struct Grown {
    pieces: Vec<Bytes>,
    len_bytes: u64,
    end: Option<End>,
}

/// The open part of a rendition, at its place (`media_sequence`, `index`).
#[derive(Debug)]
pub(crate) struct GrowingPart {
    pub media_sequence: u64,
    pub index: u32,
    pub content_type: HeaderValue,
    state: Mutex<Grown>,
    /// Bumped on every append and at the end; readers wait on it.
    tx: watch::Sender<u64>,
}

fn lock(m: &Mutex<Grown>) -> std::sync::MutexGuard<'_, Grown> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl GrowingPart {
    pub fn new(media_sequence: u64, index: u32, content_type: HeaderValue) -> Self {
        Self {
            media_sequence,
            index,
            content_type,
            state: Mutex::new(Grown::default()),
            tx: watch::Sender::new(0),
        }
    }

    /// Appends one chunk (its pieces, not copied); returns its length.
    pub fn append(&self, pieces: Vec<Bytes>) -> u64 {
        let added: u64 = pieces.iter().map(|b| b.len() as u64).sum();
        {
            let mut g = lock(&self.state);
            if g.end.is_some() {
                return 0;
            }
            g.pieces.extend(pieces);
            g.len_bytes += added;
        }
        self.tx.send_modify(|v| *v += 1);
        added
    }

    pub fn len_bytes(&self) -> u64 {
        lock(&self.state).len_bytes
    }

    /// Every piece so far (for the complete part's stored body: the same `Bytes`).
    pub fn pieces(&self) -> Vec<Bytes> {
        lock(&self.state).pieces.clone()
    }

    /// Ends the part (readers finish what is left, then end as `end` says).
    pub fn end(&self, end: End) {
        {
            let mut g = lock(&self.state);
            if g.end.is_some() {
                return;
            }
            g.end = Some(end);
        }
        self.tx.send_modify(|v| *v += 1);
    }

    /// Pieces from `from` on, and how the part ended (if it did).
    fn read_from(&self, from: usize) -> (Vec<Bytes>, Option<End>) {
        let g = lock(&self.state);
        (g.pieces.get(from..).unwrap_or_default().to_vec(), g.end)
    }

    /// Whether anything has been appended yet.
    pub fn started(&self) -> bool {
        !lock(&self.state).pieces.is_empty()
    }
}

/// Why a growing body ended early (the transfer is cut, never completed).
#[derive(Debug, thiserror::Error)]
enum Cut {
    #[error("part abandoned before it was complete")]
    Abandoned,
    #[error("no new chunk for {0:?}")]
    Stalled(Duration),
}

struct Reader {
    part: Arc<GrowingPart>,
    rx: watch::Receiver<u64>,
    next: usize,
    queue: std::collections::VecDeque<Bytes>,
    stall_limit: Duration,
    done: bool,
}

/// A streaming body for `part`: its pieces so far, then each new one, ending when the part is
/// complete; cut with an error when it is abandoned or no chunk arrives for `stall_limit`.
pub(crate) fn body(part: Arc<GrowingPart>, stall_limit: Duration) -> Body {
    let rx = part.tx.subscribe();
    let reader = Reader {
        part,
        rx,
        next: 0,
        queue: Default::default(),
        stall_limit,
        done: false,
    };
    let stream = futures_util::stream::unfold(reader, |mut r| async move {
        if r.done {
            return None;
        }
        loop {
            if let Some(b) = r.queue.pop_front() {
                return Some((Ok(b), r));
            }
            // Mark the current version seen before reading, so a chunk appended after the
            // read wakes the wait below.
            r.rx.borrow_and_update();
            let (new, end) = r.part.read_from(r.next);
            if !new.is_empty() {
                r.next += new.len();
                r.queue.extend(new);
                continue;
            }
            match end {
                Some(End::Complete) => return None,
                Some(End::Abandoned) => {
                    r.done = true;
                    return Some((Err(Cut::Abandoned), r));
                }
                None => {}
            }
            match tokio::time::timeout(r.stall_limit, r.rx.changed()).await {
                Ok(Ok(())) => {}
                // The sender lives as long as the part, which this reader holds: unreachable,
                // but ending cut is the safe answer.
                Ok(Err(_)) => {
                    r.done = true;
                    return Some((Err(Cut::Abandoned), r));
                }
                Err(_) => {
                    r.done = true;
                    let limit = r.stall_limit;
                    return Some((Err(Cut::Stalled(limit)), r));
                }
            }
        }
    });
    Body::from_stream(stream)
}
