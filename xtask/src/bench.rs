//! `cargo xtask bench`: Sluice side by side with the nginx-rtmp anchor on the same machine, in
//! one run (publishers run against both servers at once; single-server phases alternate A-B-B-A
//! so drift cancels). Server cost is user+sys CPU from procfs per unit of work, never wall time.
//! Writes docs/BENCHMARKS.md. Never pass/fail: targets are reported as met or not.
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sh;
use anyhow::{bail, Context, Result};

use crate::flv::{self, Media};
use crate::http_client::HttpConn;
use crate::load::{self, PubConfig, Publisher};
use crate::servers::{self, Kind, Server};

/// Settings Sluice gets in every bench run besides the segment settings.
/// Raised so the defaults (64 per IP, 256 publishers, 1 GiB of segments) do not cap the N = 128
/// runs or the full-mode ramp; all load comes from 127.0.0.1.
const SLUICE_BENCH_SETS: &[&str] = &[
    "rtmp.max_connections_per_ip=4096",
    "rtmp.max_connections=8192",
    "rtmp.max_publishers=4096",
    "hls.max_streams=8192",
    "hls.max_bytes_total=17179869184",
];

struct Opts {
    full: bool,
    counts: Vec<usize>,
    paced_secs: u64,
    latency_secs: u64,
    unpaced_secs: u64,
    wrk_secs: u64,
}

/// One line of the results table.
pub struct Row {
    pub metric: String,
    pub unit: String,
    pub sluice: Option<f64>,
    pub nginx: Option<f64>,
    /// Target on the ratio Sluice/nginx: (">=" or "<=", value).
    pub target: Option<(&'static str, f64)>,
    pub note: String,
}

pub fn run(root: &Path, full: bool) -> Result<()> {
    if std::env::var_os("XTASK_BENCH_REMUX_ONLY").is_some() {
        return crate::remux_bench::print(root);
    }
    if let Ok(spec) = std::env::var("XTASK_BENCH_LOAD") {
        return load_only(root, &spec);
    }
    ensure_tools()?;
    let opts = Opts {
        full,
        counts: if full { vec![8, 32, 128] } else { vec![8, 32] },
        paced_secs: if full { 40 } else { 20 },
        latency_secs: if full { 180 } else { 62 },
        unpaced_secs: if full { 15 } else { 5 },
        wrk_secs: if full { 10 } else { 5 },
    };
    let started = Instant::now();
    let src = flv::ensure_source(root)?;
    let media = Arc::new(flv::load(&src)?);
    eprintln!(
        "bench: source {} ({} tags, {:.1} s loop, {:.2} Mbit/s FLV payload)",
        src.display(),
        media.tags.len(),
        media.loop_duration_ms as f64 / 1000.0,
        media.media_bytes_per_loop as f64 * 8.0 / media.loop_duration_ms as f64 / 1000.0
    );
    let nginx_only = std::env::var_os("XTASK_BENCH_NGINX_ONLY").is_some();
    let with_sluice = !nginx_only && match crate::run(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args(["build", "--release", "-p", "sluice"])) {
        Ok(()) => true,
        Err(e) if std::env::var_os("XTASK_BENCH_ALLOW_NGINX_ONLY").is_some() => {
            eprintln!("bench: WARNING: sluice does not build ({e:#}); measuring nginx-rtmp only");
            false
        }
        Err(e) => return Err(e.context("cargo build --release -p sluice (set XTASK_BENCH_ALLOW_NGINX_ONLY=1 to run the anchor alone)")),
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    for &n in &opts.counts {
        paced_ingest(root, &media, &opts, n, with_sluice, &mut rows, &mut notes)?;
    }
    latency_and_http(root, &media, &opts, with_sluice, &mut rows, &mut notes)?;
    unpaced_ingest(root, &media, &opts, with_sluice, &mut rows, &mut notes)?;
    if opts.full {
        ramp(root, &media, with_sluice, &mut rows, &mut notes)?;
    } else {
        notes.push("Most concurrent real-time publishers (ramp): full mode only (`cargo xtask bench --full`); not measured in this run.".into());
    }
    rows.push(remux_row(root, &mut notes));

    let mut md = render(&opts, &rows, &notes, started.elapsed(), with_sluice, &media);
    // Hand-written analysis (profiles, suggestions) below the marker survives regeneration.
    let doc = root.join("docs/BENCHMARKS.md");
    if let Some(i) = std::fs::read_to_string(&doc)
        .ok()
        .as_deref()
        .and_then(|old| old.find(KEEP_MARKER).map(|i| old[i..].to_string()))
    {
        md.push('\n');
        md.push_str(&i);
    }
    std::fs::write(&doc, &md)?;
    println!("{md}");
    eprintln!(
        "bench: wrote docs/BENCHMARKS.md in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `XTASK_BENCH_LOAD=ADDR,N,SECONDS[,unpaced]`: only run the load generator (for profiling a
/// server by hand, e.g. under `perf record -p`).
fn load_only(root: &Path, spec: &str) -> Result<()> {
    let f: Vec<&str> = spec.split(',').collect();
    if f.len() < 3 {
        bail!("XTASK_BENCH_LOAD=ADDR,N,SECONDS[,unpaced]");
    }
    let addr = f[0].parse()?;
    let n: usize = f[1].parse()?;
    let secs: u64 = f[2].parse()?;
    let paced = f.get(3) != Some(&"unpaced");
    let media = Arc::new(flv::load(&flv::ensure_source(root)?)?);
    let pubs: Vec<Publisher> = (0..n)
        .map(|i| {
            Publisher::spawn(
                media.clone(),
                PubConfig {
                    addr,
                    app: "live".into(),
                    stream: format!("load{i}"),
                    paced,
                    record_keyframes: false,
                    max_duration: None,
                },
            )
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    let bytes: u64 = pubs.iter().map(|p| p.stats.flv_bytes.load(Relaxed)).sum();
    eprintln!(
        "load: {n} publishers, {:.1} MB sent, errors: {:?}",
        bytes as f64 / 1e6,
        errors(&pubs)
    );
    Ok(())
}

/// Builds xtask in release and re-runs it for the in-process remux measurement.
fn remux_row(root: &Path, notes: &mut Vec<String>) -> Row {
    eprintln!("bench: in-process remux throughput (release build of xtask)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let res = crate::run(Command::new(&cargo).args(["build", "--release", "-p", "xtask"]))
        .and_then(|_| {
            let out = Command::new(root.join("target/release/xtask"))
                .arg("bench")
                .env("XTASK_BENCH_REMUX_ONLY", "1")
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let field = |k: &str| -> Option<f64> {
                text.split_whitespace()
                    .find_map(|w| w.strip_prefix(k)?.strip_prefix('=')?.parse().ok())
            };
            match (
                field("flv_bytes"),
                field("ts_bytes"),
                field("segments"),
                field("seconds"),
            ) {
                (Some(f), Some(t), Some(s), Some(sec)) if sec > 0.0 => Ok((f, t, s, sec)),
                _ => bail!(
                    "remux run failed: {}{}",
                    text,
                    String::from_utf8_lossy(&out.stderr)
                ),
            }
        });
    let mut r = Row {
        metric: "In-process remux throughput (one thread, FLV tags looped, outputs drained)".into(),
        unit: "GB/s of FLV".into(),
        sluice: None,
        nginx: None,
        target: None,
        note: String::new(),
    };
    match res {
        Ok((f, t, s, sec)) => {
            let gbps = f / sec / 1e9;
            r.sluice = Some(gbps);
            r.note = format!("target: >= 1 GB/s per core ({})", met_abs(gbps, ">=", 1.0));
            notes.push(format!("Remux in-process: {:.0} MB FLV -> {:.0} MB TS ({:.4} TS/FLV), {s:.0} segments in {sec:.2} s", f / 1e6, t / 1e6, t / f));
        }
        Err(e) => r.note = format!("not measured: {e:#}"),
    }
    r
}

fn ensure_tools() -> Result<()> {
    let have = |c: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {c} >/dev/null")])
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut pkgs = Vec::new();
    if !have("nginx") {
        pkgs.push("nginx");
    }
    if !Path::new(servers::NGINX_RTMP_MODULE).exists() {
        pkgs.push("libnginx-mod-rtmp");
    }
    if !have("wrk") {
        pkgs.push("wrk");
    }
    if !have("ffmpeg") {
        pkgs.push("ffmpeg");
    }
    if !pkgs.is_empty() {
        crate::run(
            Command::new("apt-get")
                .args(["update", "-qq"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
        crate::run(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&pkgs)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    Ok(())
}

fn start_servers(root: &Path, tag: &str, with_sluice: bool) -> Result<Vec<Server>> {
    let mut v = Vec::new();
    if with_sluice {
        v.push(Server::start_sluice(root, SLUICE_BENCH_SETS)?);
    }
    v.push(Server::start_nginx(root, tag)?);
    Ok(v)
}

fn value_of(vals: &[(Kind, f64)], k: Kind) -> Option<f64> {
    vals.iter().find(|(kk, _)| *kk == k).map(|(_, v)| *v)
}

fn row(
    metric: impl Into<String>,
    unit: &str,
    vals: &[(Kind, f64)],
    target: Option<(&'static str, f64)>,
    note: impl Into<String>,
) -> Row {
    Row {
        metric: metric.into(),
        unit: unit.into(),
        sluice: value_of(vals, Kind::Sluice),
        nginx: value_of(vals, Kind::Nginx),
        target,
        note: note.into(),
    }
}

fn wait_connected(pubs: &[Publisher], timeout: Duration) {
    let end = Instant::now() + timeout;
    while Instant::now() < end
        && pubs
            .iter()
            .any(|p| !p.stats.connected.load(Relaxed) && !p.is_finished())
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn errors(pubs: &[Publisher]) -> Vec<String> {
    pubs.iter()
        .filter_map(|p| p.stats.error.lock().unwrap().clone())
        .collect()
}

/// N real-time publishers against each server at once; CPU per stream-second and memory per stream.
fn paced_ingest(
    root: &Path,
    media: &Arc<Media>,
    o: &Opts,
    n: usize,
    with_sluice: bool,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
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
        cpu_vals.push((s.kind, cpu / (live as f64 * dt) * 1000.0));
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

fn met_abs(v: f64, cmp: &str, target: f64) -> &'static str {
    let ok = if cmp == "<=" {
        v <= target
    } else {
        v >= target
    };
    if ok {
        "met"
    } else {
        "not met"
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// One real-time publisher per server with a 1 ms playlist poller: listing latency and TS/FLV
/// bytes; then wrk against each server's playlist and a segment while the stream stays live.
fn latency_and_http(
    root: &Path,
    media: &Arc<Media>,
    o: &Opts,
    with_sluice: bool,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
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
fn http_bench(
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
fn parse_wrk(text: &str) -> Option<(u64, u64)> {
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

/// Four publishers writing as fast as the server reads, one server at a time (A-B-B-A).
fn unpaced_ingest(
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
fn ramp(
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

fn fmt_num(v: Option<f64>) -> String {
    match v {
        None => "—".into(),
        Some(v) if v.is_nan() => "—".into(),
        Some(v) if v.abs() >= 1000.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) if v.abs() >= 1.0 => format!("{v:.3}"),
        Some(v) => format!("{v:.3}"),
    }
}

fn render(
    o: &Opts,
    rows: &[Row],
    notes: &[String],
    took: Duration,
    with_sluice: bool,
    media: &Media,
) -> String {
    let cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
    let mem = sh("grep MemTotal /proc/meminfo | awk '{printf \"%.1f GiB\", $2/1048576}'");
    let mut s = String::new();
    s.push_str("# Benchmarks\n\n");
    s.push_str("Generated by `cargo xtask bench");
    s.push_str(if o.full { " --full" } else { "" });
    s.push_str("` (see \"How to reproduce\"). Benchmarks are never pass/fail: targets are what we aim for, and each row says whether this run met them.\n\n");
    s.push_str("## Run\n\n");
    s.push_str(&format!(
        "- Date: {}\n",
        sh("date -u '+%Y-%m-%d %H:%M UTC'")
    ));
    s.push_str(&format!(
        "- Mode: {} ({:.0} s)\n",
        if o.full { "full" } else { "quick" },
        took.as_secs_f64()
    ));
    s.push_str(&format!(
        "- Machine: {} CPUs (`nproc`), {}, {} RAM; shared with other work during the run\n",
        sh("nproc"),
        cpu.trim(),
        mem
    ));
    s.push_str(&format!(
        "- Sluice: git {}{}, release build\n",
        sh("git rev-parse --short HEAD"),
        if sh("git status --porcelain -- crates").is_empty() {
            ""
        } else {
            " (with uncommitted changes in crates/)"
        }
    ));
    s.push_str(&format!("- Anchor: {} with libnginx-mod-rtmp {}, one worker, HLS on tmpfs (/dev/shm), served by the same nginx's `http` server (sendfile)\n", servers::nginx_version(), servers::nginx_rtmp_module_version()));
    s.push_str(&format!("- Toolchain: {}\n", sh("rustc -V")));
    s.push_str(&format!(
        "- Source: target/bench/source.flv, 1280x720 30 fps testsrc2 (+noise) H.264 3 Mbit/s, GOP 60 (2 s), 2 B-frames + AAC 128 kbit/s 48 kHz; {:.1} s, {:.2} Mbit/s of FLV payload; looped with rebased timestamps\n",
        media.loop_duration_ms as f64 / 1000.0,
        media.media_bytes_per_loop as f64 * 8.0 / media.loop_duration_ms as f64 / 1000.0
    ));
    s.push_str("- Segment settings, both servers: 2 s target, 12 s (6 segment) playlist (`hls_fragment 2s; hls_playlist_length 12s;` / `--set hls.target_duration_ms=2000 --set hls.window_segments=6`)\n");
    s.push_str(&format!(
        "- Sluice limits raised for the load (`--set`): {}\n",
        SLUICE_BENCH_SETS.join(", ")
    ));
    if !with_sluice {
        s.push_str("\n**Sluice did not build when this was generated: only the nginx-rtmp anchor was measured.**\n");
    }
    s.push_str("\n## Results\n\n| Metric | Unit | Sluice | nginx-rtmp | Sluice / nginx | Target (ratio) | Notes |\n|---|---|---|---|---|---|---|\n");
    for r in rows {
        let ratio = r
            .sluice
            .zip(r.nginx)
            .filter(|(_, n)| *n != 0.0)
            .map(|(a, b)| a / b);
        let target = match (r.target, ratio) {
            (Some((c, t)), Some(x)) => format!("{c} {t}x: **{}**", met_abs(x, c, t)),
            (Some((c, t)), None) => format!("{c} {t}x: not measured"),
            (None, _) => "—".into(),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.metric,
            r.unit,
            fmt_num(r.sluice),
            fmt_num(r.nginx),
            ratio
                .map(|x| format!("{x:.2}x"))
                .unwrap_or_else(|| "—".into()),
            target,
            r.note
        ));
    }
    s.push_str("\n## Raw observations\n\n");
    for n in notes {
        s.push_str(&format!("- {n}\n"));
    }
    s.push_str(HOW_TO_READ);
    s
}

/// Everything in docs/BENCHMARKS.md from this line on is hand-written and kept across runs.
const KEEP_MARKER: &str = "<!-- Hand-written below this line; `cargo xtask bench` keeps it. -->";

const HOW_TO_READ: &str = r#"
## How to read this

- **CPU** is user+sys time of the server processes from `/proc/PID/stat` (nginx: master + worker),
  divided by the work done (stream-seconds, ingested bytes, requests, bytes served), not wall time.
  The load generator, wrk and the other server run on the same cores, so the machine being busy
  does not by itself inflate a figure; it can still shift cache behaviour. Lower is better for
  CPU per unit of work, higher for work per CPU-second. procfs counts in 10 ms ticks.
- **Same run, drift cancels:** real-time publishers run against both servers at once; the
  single-server phases (unpaced ingest, wrk) alternate Sluice, nginx, nginx, Sluice.
- **Ratio** is always Sluice / nginx-rtmp for the same metric; the target column says which way is
  better (`<=` for costs, `>=` for throughput).
- **Memory per stream** is RSS growth from before publishing to the end of the paced run divided by
  the number of streams; nginx-rtmp's segments live in tmpfs, so their bytes are added to its RSS.
  The "memory / segment bytes held" row compares Sluice's RSS growth with its own
  `sluice_edge_bytes_held` (the ideal is a little above 1: the window itself plus small overhead).
- **Listing latency** is client-side: the publisher notes when it finished writing each keyframe
  (with a fixed 2 s GOP, keyframe i+1 closes segment i), a poller fetches the playlist about every
  millisecond and notes when each new segment appears. It includes one poll interval (~1 ms plus
  a request), so it is an upper bound of the server's own delay.
- **TS bytes per FLV byte** sums the sizes of 2 s segments fetched over HTTP and the FLV bytes
  of the GOPs they hold, counted as an .flv file holds them (11-byte tag header + payload + 4-byte
  PreviousTagSize per tag; the raw notes also give the payload-only ratio, about 0.3 % higher).
  Boundaries are at keyframes; audio near a cut may fall on either side, which averages out.
- Treat differences under ~10 % as noise on a shared 2-core machine; rerun before concluding.

## How to reproduce

```sh
cargo xtask bench          # quick mode, a few minutes
cargo xtask bench --full   # N = 8, 32, 128, longer windows, publisher ramp
```

It installs nginx + libnginx-mod-rtmp and wrk if missing, generates `target/bench/source.flv`
with ffmpeg once, builds `cargo build --release -p sluice`, starts both servers on free loopback
ports (nginx with its own config under `target/bench/nginx-*/`, HLS under `/dev/shm`), and
rewrites this file.
"#;
