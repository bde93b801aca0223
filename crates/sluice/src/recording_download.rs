//! `/recordings/{id}/download.mp4`: the recording as one progressive MP4 with `moov` before
//! `mdat` (ISO/IEC 14496-12 §8.1.1, §8.6, §8.7: fast start), remuxed from the stored CMAF
//! segments without transcoding (`archive::mp4`), with `Content-Length` known up front and
//! `Range` requests (RFC 9110 §14) answered from the layout.
//!
//! Building the layout reads only box headers and `moof`s from the segment files (one at a
//! time, `pread`), never the media; the body streams the media from the files in pieces of at
//! most [`READ_PIECE_BYTES`]. The layout of a complete recording is cached (a few recordings,
//! [`CACHED_LAYOUTS`]), so a player's many range requests do not rebuild it.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use archive::mp4::{box_header, Builder, Layout, Slice};
use archive::{Container, Index};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hls_edge::http::{parse_range, RangeOutcome};

/// Bytes read from a file per body chunk.
const READ_PIECE_BYTES: u64 = 1024 * 1024;
/// Complete recordings whose layout is kept.
const CACHED_LAYOUTS: usize = 8;
/// A `moof` larger than this is refused (Sluice's are a few KiB).
const MAX_MOOF_BYTES: u64 = 16 * 1024 * 1024;

/// A built download: its layout and the files its pieces come from.
pub struct Download {
    pub layout: Layout,
    files: Vec<PathBuf>,
}

/// Layouts of complete recordings, by id (the oldest entry goes when full).
#[derive(Default)]
pub struct DownloadCache {
    entries: Mutex<Vec<(String, Arc<Download>)>>,
}

impl DownloadCache {
    fn get(&self, id: &str) -> Option<Arc<Download>> {
        let e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        e.iter().find(|(k, _)| k == id).map(|(_, d)| d.clone())
    }

    fn put(&self, id: &str, d: Arc<Download>) {
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        e.retain(|(k, _)| k != id);
        if e.len() >= CACHED_LAYOUTS {
            e.remove(0);
        }
        e.push((id.to_string(), d));
    }
}

/// Walks one segment file's top-level boxes into the builder.
fn push_file(b: &mut Builder, source: u32, path: &Path) -> anyhow::Result<()> {
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut at = 0u64;
    let mut moof: Option<(u64, Vec<u8>)> = None;
    let mut head = [0u8; 16];
    while at < len {
        let n = (len - at).min(16) as usize;
        f.read_exact_at(&mut head[..n], at)?;
        let h = box_header(&head[..n]).ok_or_else(|| anyhow::anyhow!("bad box header at {at}"))?;
        let box_len = if h.box_len == 0 { len - at } else { h.box_len };
        let end = at.checked_add(box_len).filter(|e| *e <= len);
        let end = end.ok_or_else(|| anyhow::anyhow!("box at {at} overruns the file"))?;
        match &h.fourcc {
            b"moof" => {
                anyhow::ensure!(box_len <= MAX_MOOF_BYTES, "moof of {box_len} bytes");
                let mut buf = vec![0u8; box_len as usize];
                f.read_exact_at(&mut buf, at)?;
                moof = Some((at, buf));
            }
            b"mdat" => {
                if let Some((m_at, m)) = moof.take() {
                    b.push_fragment(source, m_at, &m, (at + h.header_len)..end)?;
                }
            }
            _ => {}
        }
        at = end;
    }
    Ok(())
}

/// Builds the layout of the recording's CMAF segments (on the blocking pool). A segment that
/// cannot be read, or a later init segment with other tracks, ends the file there (logged).
fn build(index: &Index, max_samples: u64) -> anyhow::Result<Download> {
    let segs = index.segments(Container::Cmaf);
    let first_init = segs
        .front()
        .and_then(|e| e.init)
        .ok_or_else(|| anyhow::anyhow!("no CMAF segment"))?;
    let read_init = |n: u64| std::fs::read(index.dir.join(archive::init_file(n)));
    let mut b = Builder::new(&read_init(first_init)?, max_samples)?;
    let mut current_init = first_init;
    let mut files = Vec::with_capacity(segs.len());
    for e in segs {
        if let Some(n) = e.init.filter(|n| *n != current_init) {
            if let Err(err) = read_init(n)
                .map_err(anyhow::Error::from)
                .and_then(|i| b.push_init(&i).map_err(anyhow::Error::from))
            {
                tracing::warn!(id = %index.meta.id, seq = e.seq, error = %err,
                    "download.mp4 ends before this segment: its init segment has other tracks");
                break;
            }
            current_init = n;
        }
        let path = index
            .dir
            .join(archive::segment_file(Container::Cmaf, e.seq));
        if let Err(err) = push_file(&mut b, files.len() as u32, &path) {
            tracing::warn!(id = %index.meta.id, seq = e.seq, error = %err,
                "download.mp4 ends before this segment: it does not read");
            break;
        }
        files.push(path);
    }
    Ok(Download {
        layout: b.finish()?,
        files,
    })
}

/// The response to `GET /recordings/{id}/download.mp4`.
pub async fn respond(
    cache: &DownloadCache,
    index: &Arc<RwLock<Index>>,
    max_samples: u64,
    headers: &HeaderMap,
) -> Response {
    let (id, complete) = {
        let i = index.read().unwrap_or_else(|e| e.into_inner());
        (i.meta.id.clone(), i.closed_unix_ms.is_some())
    };
    let cached = complete.then(|| cache.get(&id)).flatten();
    let d = match cached {
        Some(d) => d,
        None => {
            let index = index.clone();
            let built = tokio::task::spawn_blocking(move || {
                build(
                    &index.read().unwrap_or_else(|e| e.into_inner()),
                    max_samples,
                )
            })
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r);
            match built {
                Ok(d) => {
                    let d = Arc::new(d);
                    if complete {
                        cache.put(&id, d.clone());
                    }
                    d
                }
                Err(e) => {
                    tracing::warn!(%id, error = %e, "download.mp4 not built");
                    return (
                        StatusCode::NOT_FOUND,
                        "no MP4 download for this recording\n",
                    )
                        .into_response();
                }
            }
        }
    };
    let total = d.layout.total_len;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(RangeOutcome::Full, |h| parse_range(h, total));
    let (status, first, last) = match range {
        RangeOutcome::Full => (StatusCode::OK, 0, total - 1),
        RangeOutcome::Partial { first, last } => (StatusCode::PARTIAL_CONTENT, first, last),
        RangeOutcome::Unsatisfiable => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let mut chunks: Vec<Slice> = Vec::new();
    for s in d.layout.slices(first, last) {
        match s {
            Slice::File(p) => {
                let mut off = 0;
                while off < p.len {
                    let n = (p.len - off).min(READ_PIECE_BYTES);
                    chunks.push(Slice::File(archive::mp4::Piece {
                        source: p.source,
                        offset: p.offset + off,
                        len: n,
                    }));
                    off += n;
                }
            }
            head => chunks.push(head),
        }
    }
    let body =
        futures_util::stream::unfold((chunks.into_iter(), d.clone()), |(mut it, d)| async move {
            let s = it.next()?;
            let r = match s {
                Slice::Head(r) => Ok(d.layout.head.slice(r)),
                Slice::File(p) => {
                    let path = d.files[p.source as usize].clone();
                    tokio::task::spawn_blocking(move || {
                        let f = std::fs::File::open(&path)?;
                        let mut buf = vec![0u8; p.len as usize];
                        f.read_exact_at(&mut buf, p.offset)?;
                        Ok(Bytes::from(buf))
                    })
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
                }
            };
            Some((r, (it, d)))
        });
    let mut r = Response::new(Body::from_stream(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(last - first + 1));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let cache_control = if complete {
        "public, max-age=3600"
    } else {
        "no-cache"
    };
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{total}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.mp4\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}
