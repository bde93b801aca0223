//! `cargo xtask bench`, ingest phases: real-time publishers at N streams per server (CPU per
//! stream-second, memory per stream), faster-than-real-time publishers (CPU per ingested byte) and,
//! in full mode, the publisher ramp. Server cost is user+sys CPU from procfs, never wall time.
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::bench::{
    errors, met_abs, row, start_servers, value_of, wait_connected, Collected, Opts, Row,
    SLUICE_BENCH_SETS,
};
use crate::flv::Media;
use crate::load::{PubConfig, Publisher};
use crate::servers::{Kind, Server};

pub(crate) fn paced_ingest(
    root: &Path,
    media: &Arc<Media>,
    o: &Opts,
    n: usize,
    with_sluice: bool,
    out: &mut Collected,
) -> Result<()> {
    let Collected { rows, notes, figs } = out;
    eprintln!(
        "bench: paced ingest, {n} publishers per server, {} s",
        o.paced_secs
    );
    let servers = start_servers(root, &format!("paced{n}"), with_sluice)?;
    std::thread::sleep(Duration::from_millis(500));
    let rss0: Vec<u64> = servers.iter().map(Server::rss_bytes).collect();
    let mut pubs: Vec<(usize, Publisher)> = Vec::new();
    for i in 0..n {
        for (si, s) in servers.iter().enumerate() {
            let cfg = PubConfig {
                addr: s.rtmp,
                app: "live".into(),
                stream: format!("p{n}-{i}"),
                paced: true,
                record_keyframes: false,
                max_duration: None,
            };
            pubs.push((si, Publisher::spawn(media.clone(), cfg)));
        }
    }
    let all: Vec<&Publisher> = pubs.iter().map(|(_, p)| p).collect();
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end
        && all
            .iter()
            .any(|p| !p.stats.connected.load(Relaxed) && !p.is_finished())
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let cpu0: Vec<f64> = servers.iter().map(Server::cpu_seconds).collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(o.paced_secs));
    let cpu1: Vec<f64> = servers.iter().map(Server::cpu_seconds).collect();
    let dt = t0.elapsed().as_secs_f64();
    let rss1: Vec<u64> = servers.iter().map(Server::rss_bytes).collect();
    let held: Vec<u64> = servers
        .iter()
        .map(|s| s.held_bytes().unwrap_or(0))
        .collect();
    let mut cpu_vals = Vec::new();
    let mut mem_vals = Vec::new();
    let mut held_vals = Vec::new();
    for (si, s) in servers.iter().enumerate() {
        let mine: Vec<&Publisher> = pubs
            .iter()
            .filter(|(i, _)| *i == si)
            .map(|(_, p)| p)
            .collect();
        let live = mine
            .iter()
            .filter(|p| p.stats.connected.load(Relaxed) && !p.is_finished())
            .count();
        let max_lag = mine
            .iter()
            .map(|p| p.stats.max_lag_ms.load(Relaxed))
            .max()
            .unwrap_or(0);
        let errs: Vec<String> = mine
            .iter()
            .filter_map(|p| p.stats.error.lock().unwrap().clone())
            .collect();
        if live == 0 {
            notes.push(format!(
                "{}: no publisher stayed connected with N = {n}: {errs:?}",
                s.kind.name()
            ));
            continue;
        }
        let cpu = cpu1[si] - cpu0[si];
        let cpu_ms = cpu / (live as f64 * dt) * 1000.0;
        cpu_vals.push((s.kind, cpu_ms));
        figs.add_cpu(s.kind.name(), n, cpu_ms);
        // nginx-rtmp keeps its segments in tmpfs: those bytes are its memory too.
        let extra = if s.kind == Kind::Nginx { held[si] } else { 0 };
        let mem = (rss1[si].saturating_sub(rss0[si]) + extra) as f64 / live as f64;
        mem_vals.push((s.kind, mem / 1e6));
        held_vals.push((s.kind, held[si] as f64 / live as f64 / 1e6));
        notes.push(format!(
            "Paced N = {n}, {}: {live}/{n} publishers live, {:.2} CPU-s over {:.1} s, max publisher lag {max_lag} ms, RSS {:.1} -> {:.1} MB, segment bytes held {:.1} MB{}",
            s.kind.name(),
            cpu,
            dt,
            rss0[si] as f64 / 1e6,
            rss1[si] as f64 / 1e6,
            held[si] as f64 / 1e6,
            if errs.is_empty() { String::new() } else { format!(", errors: {errs:?}") }
        ));
    }
    rows.push(row(
        format!("Ingest CPU per stream-second, N = {n} real-time 3 Mbit/s publishers"),
        "CPU-ms",
        &cpu_vals,
        Some(("<=", 0.4)),
        "",
    ));
    if n == *o.counts.last().unwrap() || n == 32 {
        rows.push(row(
            format!(
                "Memory per stream, N = {n}, 6 x 2 s window (RSS growth; nginx: + tmpfs bytes)"
            ),
            "MB",
            &mem_vals,
            None,
            "no ratio target vs nginx; see the next row",
        ));
        if let (Some(m), Some(h)) = (
            value_of(&mem_vals, Kind::Sluice),
            value_of(&held_vals, Kind::Sluice),
        ) {
            rows.push(Row {
                metric: format!(
                    "Sluice memory per stream / segment bytes held per stream, N = {n}"
                ),
                unit: "x".into(),
                sluice: Some(m / h),
                nginx: value_of(&mem_vals, Kind::Nginx)
                    .zip(value_of(&held_vals, Kind::Nginx))
                    .map(|(a, b)| a / b),
                target: None,
                note: format!(
                    "target: Sluice <= 1.3 ({}); held per stream: Sluice {:.2} MB, nginx {:.2} MB",
                    met_abs(m / h, "<=", 1.3),
                    h,
                    value_of(&held_vals, Kind::Nginx).unwrap_or(0.0)
                ),
            });
        }
    }
    drop(all);
    for (_, p) in pubs {
        p.signal_stop();
        let _ = p.stop();
    }
    Ok(())
}

/// Four publishers writing as fast as the server reads, one server at a time (A-B-B-A).
pub(crate) fn unpaced_ingest(
    root: &Path,
    media: &Arc<Media>,
    o: &Opts,
    with_sluice: bool,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    eprintln!("bench: unpaced ingest");
    let servers = start_servers(root, "unpaced", with_sluice)?;
    let order: Vec<usize> = if servers.len() == 2 {
        vec![0, 1, 1, 0]
    } else {
        vec![0, 0]
    };
    let mut cpu = vec![0.0; servers.len()];
    let mut bytes = vec![0u64; servers.len()];
    for (round, &si) in order.iter().enumerate() {
        let s = &servers[si];
        let pubs: Vec<Publisher> = (0..4)
            .map(|i| {
                let cfg = PubConfig {
                    addr: s.rtmp,
                    app: "live".into(),
                    stream: format!("u{round}-{i}"),
                    paced: false,
                    record_keyframes: false,
                    max_duration: None,
                };
                Publisher::spawn(media.clone(), cfg)
            })
            .collect();
        wait_connected(&pubs, Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(500));
        let b0: u64 = pubs.iter().map(|p| p.stats.flv_bytes.load(Relaxed)).sum();
        let c0 = s.cpu_seconds();
        std::thread::sleep(Duration::from_secs(o.unpaced_secs));
        let c1 = s.cpu_seconds();
        let b1: u64 = pubs.iter().map(|p| p.stats.flv_bytes.load(Relaxed)).sum();
        cpu[si] += c1 - c0;
        bytes[si] += b1 - b0;
        let errs = errors(&pubs);
        if !errs.is_empty() {
            notes.push(format!("unpaced publishers to {}: {errs:?}", s.kind.name()));
        }
        for p in pubs {
            let _ = p.stop();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let vals: Vec<(Kind, f64)> = servers
        .iter()
        .enumerate()
        .filter(|(i, _)| bytes[*i] > 0)
        .map(|(i, s)| (s.kind, cpu[i] * 1e9 / bytes[i] as f64))
        .collect();
    for (i, s) in servers.iter().enumerate() {
        notes.push(format!(
            "Unpaced, {}: {:.1} MB ingested with {:.2} CPU-s ({:.0} MB/CPU-s)",
            s.kind.name(),
            bytes[i] as f64 / 1e6,
            cpu[i],
            bytes[i] as f64 / 1e6 / cpu[i].max(1e-9)
        ));
    }
    rows.push(row(
        "Faster-than-real-time ingest, server CPU per ingested FLV byte (4 unpaced publishers)",
        "ns/byte",
        &vals,
        Some(("<=", 0.4)),
        "",
    ));
    Ok(())
}

/// Full mode: add real-time publishers 8 at a time (every 3 s) to one server at a time until one
/// falls more than 1 s behind its timestamps or fails.
pub(crate) fn ramp(
    root: &Path,
    media: &Arc<Media>,
    with_sluice: bool,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let mut vals = Vec::new();
    for kind in [Kind::Sluice, Kind::Nginx] {
        if kind == Kind::Sluice && !with_sluice {
            continue;
        }
        eprintln!("bench: ramp {}", kind.name());
        let s = if kind == Kind::Sluice {
            Server::start_sluice(root, SLUICE_BENCH_SETS)?
        } else {
            Server::start_nginx(root, "ramp")?
        };
        let mut pubs: Vec<Publisher> = Vec::new();
        let mut ok = 0;
        'ramp: while pubs.len() < 1024 {
            for _ in 0..8 {
                let cfg = PubConfig {
                    addr: s.rtmp,
                    app: "live".into(),
                    stream: format!("r{}", pubs.len()),
                    paced: true,
                    record_keyframes: false,
                    max_duration: None,
                };
                pubs.push(Publisher::spawn(media.clone(), cfg));
            }
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(3) {
                std::thread::sleep(Duration::from_millis(100));
                if pubs
                    .iter()
                    .any(|p| p.stats.lag_ms.load(Relaxed) > 1000 || p.is_finished())
                {
                    break 'ramp;
                }
            }
            ok = pubs.len();
        }
        notes.push(format!(
            "Ramp, {}: {ok} real-time publishers sustained; errors at the failing step: {:?}",
            kind.name(),
            errors(&pubs)
        ));
        vals.push((kind, ok as f64));
        for p in &pubs {
            p.signal_stop();
        }
        drop(pubs);
        drop(s);
    }
    rows.push(row(
        "Most concurrent real-time publishers before one falls > 1 s behind (ramp, +8 every 3 s)",
        "streams",
        &vals,
        Some((">=", 2.0)),
        "load generator shares the 2 cores",
    ));
    Ok(())
}
