//! `cargo xtask bench`, HTTP phases: keyframe-arrival-to-listing latency with a 1 ms playlist
//! poller (and TS bytes per FLV byte from the same segments), then wrk against a live playlist
//! and a segment of each server in A-B-B-A order.
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench::{met_abs, percentile, row, start_servers, value_of, Collected, Opts, Row};
use crate::flv::Media;
use crate::http_client::HttpConn;
use crate::load::{self, PubConfig, Publisher};
use crate::servers::{Kind, Server};

/// One real-time publisher per server with a 1 ms playlist poller: listing latency and TS/FLV
/// bytes; then wrk against each server's playlist and a segment while the stream stays live.
pub(crate) fn latency_and_http(
    root: &Path,
    media: &Arc<Media>,
    o: &Opts,
    with_sluice: bool,
    out: &mut Collected,
) -> Result<()> {
    let Collected { rows, notes, figs } = out;
    eprintln!("bench: segment listing latency, {} s", o.latency_secs);
    let servers = start_servers(root, "latency", with_sluice)?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut pubs = Vec::new();
    let mut pollers = Vec::new();
    for s in &servers {
        let cfg = PubConfig {
            addr: s.rtmp,
            app: "live".into(),
            stream: "lat".into(),
            paced: true,
            record_keyframes: true,
            max_duration: None,
        };
        pubs.push(Publisher::spawn(media.clone(), cfg));
        pollers.push(load::spawn_latency_poller(
            s.http,
            Server::playlist_path("lat"),
            stop.clone(),
        ));
    }
    std::thread::sleep(Duration::from_secs(o.latency_secs));
    stop.store(true, Relaxed);
    let appearances: Vec<Vec<load::Appearance>> = pollers
        .into_iter()
        .map(|j| j.join().unwrap_or_default())
        .collect();
    let (mut p50s, mut p99s, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for ((s, p), apps) in servers.iter().zip(&pubs).zip(&appearances) {
        let kfs = p.stats.keyframes.lock().unwrap().clone();
        let mut lat_ms = Vec::new();
        // FLV bytes as an .flv file holds them: each tag is an 11-byte header, the payload and a
        // 4-byte PreviousTagSize (the basis of the usual "TS bytes per FLV byte" comparisons,
        // e.g. ffmpeg's hls muxer at 1.032); the payload-only ratio is noted too.
        let (mut ts_bytes, mut flv_bytes, mut flv_payload) = (0u64, 0u64, 0u64);
        for a in apps {
            let Some(k) = kfs.iter().rposition(|(t, _, _)| *t <= a.at) else {
                continue;
            };
            lat_ms.push((a.at - kfs[k].0).as_secs_f64() * 1000.0);
            if let (Some(b), true) = (a.bytes, k >= 1 && (a.duration_s - 2.0).abs() < 0.1) {
                ts_bytes += b;
                let payload = kfs[k].1 - kfs[k - 1].1;
                flv_payload += payload;
                flv_bytes += payload + 15 * (kfs[k].2 - kfs[k - 1].2);
            }
        }
        lat_ms.sort_by(f64::total_cmp);
        figs.add_latency_samples(s.kind.name(), &lat_ms);
        let gaps: u64 = apps
            .windows(2)
            .map(|w| w[1].seq.saturating_sub(w[0].seq + 1))
            .sum();
        if gaps > 0 {
            notes.push(format!(
                "{}: the 1 ms poller saw {gaps} media sequence numbers skipped",
                s.kind.name()
            ));
        }
        if let Some(e) = p.stats.error.lock().unwrap().clone() {
            notes.push(format!("latency publisher to {}: {e}", s.kind.name()));
        }
        notes.push(format!(
            "Listing latency, {}: {} new segments observed, latencies (ms) min {:.2} / p50 {:.2} / p99 {:.2} / max {:.2}",
            s.kind.name(),
            lat_ms.len(),
            lat_ms.first().copied().unwrap_or(f64::NAN),
            percentile(&lat_ms, 0.5),
            percentile(&lat_ms, 0.99),
            lat_ms.last().copied().unwrap_or(f64::NAN)
        ));
        if !lat_ms.is_empty() {
            p50s.push((s.kind, percentile(&lat_ms, 0.5)));
            p99s.push((s.kind, percentile(&lat_ms, 0.99)));
        }
        if flv_bytes > 0 {
            ratios.push((s.kind, ts_bytes as f64 / flv_bytes as f64));
            notes.push(format!(
                "TS/FLV, {}: {ts_bytes} TS bytes in 2 s segments vs {flv_bytes} FLV bytes (tags with headers) of the same GOPs = {:.4}; vs {flv_payload} payload bytes only = {:.4}",
                s.kind.name(),
                ts_bytes as f64 / flv_bytes as f64,
                ts_bytes as f64 / flv_payload.max(1) as f64
            ));
        }
    }
    let abs =
        |v: Option<f64>, cmp: &str, t: f64| v.map(|v| met_abs(v, cmp, t)).unwrap_or("not measured");
    rows.push(row(
        "Keyframe arrival -> segment listed, p50",
        "ms",
        &p50s,
        None,
        format!(
            "target: Sluice p50 <= 1 ms ({})",
            abs(value_of(&p50s, Kind::Sluice), "<=", 1.0)
        ),
    ));
    rows.push(row(
        "Keyframe arrival -> segment listed, p99",
        "ms",
        &p99s,
        None,
        format!(
            "target: Sluice p99 <= 5 ms ({})",
            abs(value_of(&p99s, Kind::Sluice), "<=", 5.0)
        ),
    ));
    rows.push(row(
        "TS bytes per FLV byte",
        "x",
        &ratios,
        None,
        format!(
            "target: Sluice <= 1.031 ({}); ffmpeg's hls muxer: 1.032",
            abs(value_of(&ratios, Kind::Sluice), "<=", 1.031)
        ),
    ));

    http_bench(&servers, o, rows, notes)?;
    for p in pubs {
        let _ = p.stop();
    }
    Ok(())
}

/// wrk (keep-alive, 32 connections) against the live playlist and one segment of each server, in
/// A-B-B-A order; the server CPU of the running publisher (measured just before) is subtracted.
pub(crate) fn http_bench(
    servers: &[Server],
    o: &Opts,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    eprintln!("bench: wrk playlists and segments");
    let probe = 3.0;
    let c0: Vec<f64> = servers.iter().map(Server::cpu_seconds).collect();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(probe));
    let dt = t.elapsed().as_secs_f64();
    let base_rate: Vec<f64> = servers
        .iter()
        .zip(&c0)
        .map(|(s, c)| (s.cpu_seconds() - c) / dt)
        .collect();
    let order: Vec<usize> = if servers.len() == 2 {
        vec![0, 1, 1, 0]
    } else {
        vec![0, 0]
    };
    for what in ["playlist", "segment"] {
        let mut work = vec![0.0f64; servers.len()];
        let mut cpu = vec![0.0f64; servers.len()];
        let mut non2xx = vec![0u64; servers.len()];
        for &si in &order {
            let s = &servers[si];
            let pl_path = Server::playlist_path("lat");
            let mut http = HttpConn::new(s.http);
            let pl = http.get(&pl_path)?;
            if pl.status != 200 {
                bail!("{}: playlist answered {}", s.kind.name(), pl.status);
            }
            let p = load::parse_playlist(&String::from_utf8_lossy(&pl.body));
            let (path, body_len) = if what == "playlist" {
                (pl_path.clone(), pl.body.len() as u64)
            } else {
                let seg = p.segments.last().context("playlist has no segments")?;
                let path = load::resolve(&pl_path, &seg.uri);
                let r = http.get(&path)?;
                (path, r.body.len() as u64)
            };
            let url = format!("http://{}{}", s.http, path);
            let c_before = s.cpu_seconds();
            let t0 = Instant::now();
            let out = Command::new("wrk")
                .args(["-t1", "-c32", &format!("-d{}s", o.wrk_secs), &url])
                .output()
                .context("running wrk")?;
            let el = t0.elapsed().as_secs_f64();
            let c = s.cpu_seconds() - c_before - base_rate[si] * el;
            let text = String::from_utf8_lossy(&out.stdout);
            let (reqs, bad) =
                parse_wrk(&text).with_context(|| format!("unexpected wrk output: {text}"))?;
            cpu[si] += c.max(1e-3);
            non2xx[si] += bad;
            work[si] += if what == "playlist" {
                (reqs - bad) as f64
            } else {
                (reqs - bad) as f64 * body_len as f64
            };
        }
        let vals: Vec<(Kind, f64)> = servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    s.kind,
                    if what == "playlist" {
                        work[i] / cpu[i]
                    } else {
                        work[i] / cpu[i] / 1e9
                    },
                )
            })
            .collect();
        for (i, s) in servers.iter().enumerate() {
            notes.push(format!("wrk {what}, {}: {:.3} server CPU-s (publisher's {:.3} CPU-s/s subtracted), {} non-2xx", s.kind.name(), cpu[i], base_rate[i], non2xx[i]));
        }
        if what == "playlist" {
            rows.push(row(
                "Playlist requests per server-CPU-second (wrk -t1 -c32, keep-alive)",
                "req/CPU-s",
                &vals,
                Some((">=", 1.5)),
                "",
            ));
        } else {
            rows.push(row(
                "Segment bytes per server-CPU-second (wrk on one segment URL)",
                "GB/CPU-s",
                &vals,
                Some((">=", 1.0)),
                "nginx: sendfile from tmpfs",
            ));
        }
    }
    Ok(())
}

/// (requests, non-2xx/3xx) from wrk's summary.
pub(crate) fn parse_wrk(text: &str) -> Option<(u64, u64)> {
    let reqs = text
        .lines()
        .find(|l| l.contains("requests in"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let bad = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses:"))
        .and_then(|l| l.rsplit(':').next()?.trim().parse().ok())
        .unwrap_or(0);
    Some((reqs, bad))
}
