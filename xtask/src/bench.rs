//! `cargo xtask bench`: Sluice side by side with the nginx-rtmp anchor on the same machine, in
//! one run (publishers run against both servers at once; single-server phases alternate A-B-B-A
//! so drift cancels). Server cost is user+sys CPU from procfs per unit of work, never wall time.
//! Writes docs/BENCHMARKS.md. Never pass/fail: targets are reported as met or not.
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::flv;
use crate::load::{PubConfig, Publisher};
use crate::servers::{self, Kind, Server};

pub(crate) use crate::bench_chart::Figures;
use crate::bench_http::latency_and_http;
use crate::bench_ingest::{paced_ingest, ramp, unpaced_ingest};
use crate::bench_report::{render, KEEP_MARKER};

/// Settings Sluice gets in every bench run besides the segment settings.
/// Raised so the defaults (64 per IP, 256 publishers, 1 GiB of segments) do not cap the N = 128
/// runs or the full-mode ramp; all load comes from 127.0.0.1.
pub(crate) const SLUICE_BENCH_SETS: &[&str] = &[
    "rtmp.max_connections_per_ip=4096",
    "rtmp.max_connections=8192",
    "rtmp.max_publishers=4096",
    "hls.max_streams=8192",
    "hls.max_bytes_total=17179869184",
];

pub(crate) struct Opts {
    pub full: bool,
    pub counts: Vec<usize>,
    pub paced_secs: u64,
    pub latency_secs: u64,
    pub unpaced_secs: u64,
    pub wrk_secs: u64,
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

/// What the phases collect: table rows, raw notes and the figures for the charts.
#[derive(Default)]
pub(crate) struct Collected {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    pub figs: Figures,
}

pub fn run(root: &Path, full: bool) -> Result<()> {
    if std::env::var_os("XTASK_BENCH_REMUX_ONLY").is_some() {
        return crate::remux_bench::print(root);
    }
    if std::env::var_os("XTASK_BENCH_CHARTS_ONLY").is_some() {
        return charts_only(root);
    }
    if std::env::var("XTASK_BENCH_ONLY").as_deref() == Ok("dvr") {
        return crate::bench_dvr::run_alone(root);
    }
    if std::env::var("XTASK_BENCH_ONLY").as_deref() == Ok("fanout") {
        return crate::bench_fanout::run_alone(root, full);
    }
    if std::env::var("XTASK_BENCH_ONLY").as_deref() == Ok("llhls") {
        return crate::bench_llhls::run_alone(root, full);
    }
    if std::env::var("XTASK_BENCH_ONLY").as_deref() == Ok("abr") {
        return crate::bench_abr::run_alone(root, full);
    }
    if std::env::var("XTASK_BENCH_ONLY").as_deref() == Ok("fleet") {
        return crate::bench_fleet::run_alone(root, full);
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
    let mut out = Collected::default();
    for &n in &opts.counts {
        paced_ingest(root, &media, &opts, n, with_sluice, &mut out)?;
    }
    latency_and_http(root, &media, &opts, with_sluice, &mut out)?;
    let fan = crate::bench_fanout::FanoutOpts::new(full);
    crate::bench_fanout::fanout_and_rtmpt(root, &media, &fan, with_sluice, &mut out)?;
    let ll = crate::bench_llhls::LlOpts::new(full);
    crate::bench_llhls::llhls(root, &media, &ll, with_sluice, &mut out)?;
    let Collected { rows, notes, figs } = &mut out;
    unpaced_ingest(root, &media, &opts, with_sluice, rows, notes)?;
    if opts.full {
        ramp(root, &media, with_sluice, rows, notes)?;
    } else {
        notes.push("Most concurrent real-time publishers (ramp): full mode only (`cargo xtask bench --full`); not measured in this run.".into());
    }
    rows.push(remux_row(root, notes));

    let mut md = render(&opts, rows, notes, started.elapsed(), with_sluice, &media);
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
    for chart in figs.write_charts(root)? {
        eprintln!("bench: wrote {chart}");
    }
    println!("{md}");
    eprintln!(
        "bench: wrote docs/BENCHMARKS.md in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `XTASK_BENCH_CHARTS_ONLY=1`: redraw docs/bench/*.svg from the figures already in
/// docs/BENCHMARKS.md, without measuring anything.
fn charts_only(root: &Path) -> Result<()> {
    let doc = root.join("docs/BENCHMARKS.md");
    let md = std::fs::read_to_string(&doc).with_context(|| format!("reading {}", doc.display()))?;
    let written = Figures::from_report(&md).write_charts(root)?;
    if written.is_empty() {
        bail!("no figures found in {}", doc.display());
    }
    for chart in written {
        eprintln!("bench: wrote {chart}");
    }
    Ok(())
}

/// `XTASK_BENCH_LOAD=ADDR,N,SECONDS[,unpaced]`: only run the load generator (for profiling a
/// server by hand, e.g. under `perf record -p`).
pub(crate) fn load_only(root: &Path, spec: &str) -> Result<()> {
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
pub(crate) fn remux_row(root: &Path, notes: &mut Vec<String>) -> Row {
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
                (Some(f), Some(t), Some(s), Some(sec)) if sec > 0.0 => {
                    // CMAF only and both containers (remux_bench prints them on the same line).
                    if let (Some(cf), Some(cb), Some(cs), Some(bf), Some(bs)) = (
                        field("cmaf_flv_bytes"),
                        field("cmaf_bytes"),
                        field("cmaf_seconds"),
                        field("both_flv_bytes"),
                        field("both_seconds"),
                    ) {
                        notes.push(format!(
                            "Remux in-process, fMP4/CMAF only: {:.2} GB/s of FLV, {:.4} fMP4/FLV; TS and CMAF together: {:.2} GB/s of FLV",
                            cf / cs.max(1e-9) / 1e9,
                            cb / cf.max(1.0),
                            bf / bs.max(1e-9) / 1e9
                        ));
                    }
                    Ok((f, t, s, sec))
                }
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

pub(crate) fn ensure_tools() -> Result<()> {
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

pub(crate) fn start_servers(root: &Path, tag: &str, with_sluice: bool) -> Result<Vec<Server>> {
    let mut v = Vec::new();
    if with_sluice {
        v.push(Server::start_sluice(root, SLUICE_BENCH_SETS)?);
    }
    v.push(Server::start_nginx(root, tag)?);
    Ok(v)
}

pub(crate) fn value_of(vals: &[(Kind, f64)], k: Kind) -> Option<f64> {
    vals.iter().find(|(kk, _)| *kk == k).map(|(_, v)| *v)
}

pub(crate) fn row(
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

pub(crate) fn wait_connected(pubs: &[Publisher], timeout: Duration) {
    let end = Instant::now() + timeout;
    while Instant::now() < end
        && pubs
            .iter()
            .any(|p| !p.stats.connected.load(Relaxed) && !p.is_finished())
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn errors(pubs: &[Publisher]) -> Vec<String> {
    pubs.iter()
        .filter_map(|p| p.stats.error.lock().unwrap().clone())
        .collect()
}

/// N real-time publishers against each server at once; CPU per stream-second and memory per stream.
pub(crate) fn met_abs(v: f64, cmp: &str, target: f64) -> &'static str {
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

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}
