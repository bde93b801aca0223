//! `cargo xtask bench`, DVR and recording phase (`XTASK_BENCH_ONLY=dvr`): Sluice alone (nginx-rtmp
//! has no DVR window to compare with). Ingest CPU per stream-second with recording off and on
//! (unpaced publishers, alternating servers), disk bytes written per ingested FLV byte, memory
//! per stream with a 2-hour DVR window against the live-only figure, and segment serving from disk
//! (DVR) against memory (live) in bytes per CPU-second. Server cost is user+sys CPU from procfs,
//! never wall time. Splices its section into docs/BENCHMARKS.md.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::bench::{errors, wait_connected, SLUICE_BENCH_SETS};
use crate::flv::Media;
use crate::http_client::HttpConn;
use crate::load::{parse_playlist, resolve, PubConfig, Publisher};
use crate::servers::{dir_bytes, Server};

const UNPACED_SECS: u64 = 6;
const PUBLISHERS: usize = 2;

fn start(root: &Path, extra: &[String]) -> Result<Server> {
    let mut sets: Vec<&str> = SLUICE_BENCH_SETS.to_vec();
    sets.extend(extra.iter().map(String::as_str));
    Server::start_sluice(root, &sets)
}

/// `PUBLISHERS` unpaced publishers for `UNPACED_SECS`: (CPU seconds, FLV bytes) in the window.
fn unpaced(s: &Server, media: &Arc<Media>, tag: &str) -> Result<(f64, u64, Vec<String>)> {
    let pubs: Vec<Publisher> = (0..PUBLISHERS)
        .map(|i| {
            Publisher::spawn(
                media.clone(),
                PubConfig {
                    addr: s.rtmp,
                    app: "live".into(),
                    stream: format!("{tag}-{i}"),
                    paced: false,
                    record_keyframes: false,
                    max_duration: None,
                },
            )
        })
        .collect();
    wait_connected(&pubs, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let b0: u64 = pubs.iter().map(|p| p.stats.flv_bytes.load(Relaxed)).sum();
    let c0 = s.cpu_seconds();
    std::thread::sleep(Duration::from_secs(UNPACED_SECS));
    let c1 = s.cpu_seconds();
    let b1: u64 = pubs.iter().map(|p| p.stats.flv_bytes.load(Relaxed)).sum();
    let errs = errors(&pubs);
    for p in pubs {
        let _ = p.stop();
    }
    Ok((c1 - c0, b1 - b0, errs))
}

/// GETs `path` in a loop for `secs`: (bytes served, server CPU seconds).
/// Fetches the newest segment of `playlist` back to back for `secs`; a segment that leaves the
/// window meanwhile (404) is replaced by the then newest one. (bytes served, server CPU s).
fn serve(s: &Server, playlist: &str, secs: u64) -> Result<(u64, f64)> {
    let mut c = HttpConn::new(s.http);
    let mut path = newest_segment(s, playlist)?;
    let c0 = s.cpu_seconds();
    let until = Instant::now() + Duration::from_secs(secs);
    let mut bytes = 0u64;
    let mut misses = 0;
    while Instant::now() < until {
        let r = c.get(&path)?;
        if r.status == 404 && misses < 20 {
            misses += 1;
            path = newest_segment(s, playlist)?;
            continue;
        }
        anyhow::ensure!(r.status == 200, "GET {path}: {}", r.status);
        bytes += r.body.len() as u64;
    }
    Ok((bytes, s.cpu_seconds() - c0))
}

/// Mean over the DVR windows of /api/dvr: in-memory index bytes per listed media-second,
/// times 7200.
fn dvr_index_bytes_per_2h(s: &Server) -> Result<f64> {
    let r = HttpConn::new(s.http).get("/api/dvr")?;
    anyhow::ensure!(r.status == 200, "GET /api/dvr: {}", r.status);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&r.body)?;
    let per_s: Vec<f64> = list
        .iter()
        .filter_map(|w| {
            let d = w["duration_s"].as_f64().filter(|d| *d > 0.0)?;
            Some(w["index_bytes_in_memory"].as_f64()? / d)
        })
        .collect();
    anyhow::ensure!(!per_s.is_empty(), "no DVR window listed");
    Ok(per_s.iter().sum::<f64>() / per_s.len() as f64 * 7200.0)
}

fn newest_segment(s: &Server, playlist: &str) -> Result<String> {
    let r = HttpConn::new(s.http).get(playlist)?;
    anyhow::ensure!(r.status == 200, "GET {playlist}: {}", r.status);
    let pl = parse_playlist(&String::from_utf8_lossy(&r.body));
    let seg = pl.segments.last().context("empty playlist")?;
    Ok(resolve(playlist, &seg.uri))
}

pub(crate) fn run_alone(root: &Path) -> Result<()> {
    crate::bench::ensure_tools()?;
    let started = Instant::now();
    let media = Arc::new(crate::flv::load(&crate::flv::ensure_source(root)?)?);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    crate::run(Command::new(cargo).args(["build", "--release", "-p", "sluice"]))?;
    let media_bytes_per_s =
        media.media_bytes_per_loop as f64 / (f64::from(media.loop_duration_ms) / 1000.0);
    let tmp = std::env::temp_dir().join(format!("sluice-bench-dvr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let rec_dir = tmp.join("rec");
    let dvr_dir = tmp.join("dvr");
    let mut notes = Vec::new();

    // 1. Ingest CPU, recording off / on (off, on, on, off).
    eprintln!("bench dvr: ingest with recording off and on");
    let off = start(root, &[])?;
    let on = start(
        root,
        &[
            "recording.enabled=true".into(),
            format!("recording.dir={}", rec_dir.display()),
        ],
    )?;
    let (mut cpu, mut bytes) = ([0.0f64; 2], [0u64; 2]);
    for (round, which) in [0usize, 1, 1, 0].into_iter().enumerate() {
        let s = if which == 0 { &off } else { &on };
        let (c, b, errs) = unpaced(s, &media, &format!("r{round}"))?;
        if !errs.is_empty() {
            notes.push(format!("publisher errors: {errs:?}"));
        }
        cpu[which] += c;
        bytes[which] += b;
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(off);
    drop(on); // SIGTERM: recordings closed
    let written = dir_bytes(&rec_dir);
    let per_stream_s = |i: usize| cpu[i] * 1000.0 / (bytes[i] as f64 / media_bytes_per_s).max(1e-9);
    let (cpu_off, cpu_on) = (per_stream_s(0), per_stream_s(1));

    // 2. Memory with a 2-hour DVR window vs live only, and 3. serving from disk vs memory.
    eprintln!("bench dvr: memory and serving");
    let live_only = start(root, &[])?;
    let (_, b_live, _) = unpaced(&live_only, &media, "m")?;
    let rss_live = live_only.rss_bytes();
    let (live_bytes, live_cpu) = serve(&live_only, "/live/m-0/index.m3u8", 4)?;
    drop(live_only);
    let dvr = start(
        root,
        &[
            "hls.dvr_window_s=7200".into(),
            format!("hls.dvr_dir={}", dvr_dir.display()),
        ],
    )?;
    let (_, b_dvr, _) = unpaced(&dvr, &media, "m")?;
    let rss_dvr = dvr.rss_bytes();
    // The DVR data held in memory is the index (media is on disk): its bytes per listed
    // media-second, from /api/dvr, times 7200 s is the 2-hour figure.
    let index_per_2h = dvr_index_bytes_per_2h(&dvr)?;
    let (disk_bytes, disk_cpu) = serve(&dvr, "/live/m-0/dvr.m3u8", 4)?;
    let on_disk = dir_bytes(&dvr_dir);
    drop(dvr);
    let _ = std::fs::remove_dir_all(&tmp);

    let mb = |b: u64| b as f64 / 1e6;
    let rows = [
        (
            "Ingest CPU per stream-second, recording off".to_string(),
            format!("{cpu_off:.2} ms"),
        ),
        (
            "Ingest CPU per stream-second, recording on (both containers, fsync per segment)".into(),
            format!("{cpu_on:.2} ms ({:.2}x; aim <= 1.2x)", cpu_on / cpu_off.max(1e-9)),
        ),
        (
            "Disk bytes written per ingested FLV byte (TS + CMAF recorded)".into(),
            format!("{:.2}", written as f64 / (bytes[1] as f64).max(1.0)),
        ),
        (
            format!(
                "Server RSS after {:.0} media-s per stream x {PUBLISHERS} streams, live only",
                b_live as f64 / media_bytes_per_s / PUBLISHERS as f64
            ),
            format!("{:.1} MB", mb(rss_live)),
        ),
        (
            format!(
                "Same with hls.dvr_window_s=7200 ({:.0} media-s per stream, {:.1} MB of DVR on disk)",
                b_dvr as f64 / media_bytes_per_s / PUBLISHERS as f64,
                mb(on_disk)
            ),
            format!("{:.1} MB", mb(rss_dvr)),
        ),
        (
            "DVR index in memory per stream for a 2-hour window (extrapolated from the bytes per listed media-second in /api/dvr; the media is on disk)".into(),
            format!("{:.0} kB", index_per_2h / 1e3),
        ),
        (
            "Segment serving from memory (live segment, keep-alive loop)".into(),
            format!("{:.0} MB per CPU-s", mb(live_bytes) / live_cpu.max(1e-9)),
        ),
        (
            "Segment serving from disk (DVR segment, page cache warm)".into(),
            format!("{:.0} MB per CPU-s", mb(disk_bytes) / disk_cpu.max(1e-9)),
        ),
    ];
    let mut sec = crate::bench_report::PhaseSection::new(
        "dvr",
        "DVR window and recordings",
        false,
        started,
        &format!("{PUBLISHERS} unpaced publishers of the bench FLV for {UNPACED_SECS} s per round (rounds alternate off/on/on/off); CPU is the server's user+sys from procfs."),
    );
    sec.push_str("| Metric | Sluice |\n|---|---|\n");
    for (m, v) in rows {
        sec.push_str(&format!("| {m} | {v} |\n"));
    }
    for n in &notes {
        sec.push_str(&format!("\n- {n}"));
    }
    sec.push_str("\n");
    sec.write(root)
}
