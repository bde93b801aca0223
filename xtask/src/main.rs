//! `cargo xtask`: the project's automation (the rust-analyzer pattern).
//!
//! `cargo xtask test` is the single command that sets up a fresh machine and runs the whole suite;
//! `.ci/run` calls it. Other verbs: `deps`, `fuzz`, `bench`, `soak`, `docker-check`, `capture-vectors`.

mod bench;
mod bench_abr;
mod bench_chart;
mod bench_dvr;
mod bench_fanout;
mod bench_fleet;
mod bench_http;
mod bench_ingest;
mod bench_llhls;
mod bench_report;
mod capture_vectors;
mod deps;
mod flv;
mod http_client;
mod load;
mod procstat;
mod remux_bench;
mod rtmp_client;
mod servers;
mod soak;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Sluice project automation")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what the tests need (Debian packages, npm packages, cargo-fuzz), idempotently.
    Deps,
    /// The whole suite: deps, fmt, clippy, docs, unit/property/real-peer/browser tests (skips
    /// listed at the end), fuzz smoke, docker checks.
    Test {
        /// Skip `cargo fmt --check` and `cargo clippy`.
        #[arg(long)]
        no_lint: bool,
        /// Seconds per fuzz target in the smoke run.
        #[arg(long, default_value_t = 15)]
        fuzz_seconds: u64,
    },
    /// Run every cargo-fuzz target (or one) for a while.
    Fuzz {
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        target: Option<String>,
    },
    /// Benchmarks side by side with nginx-rtmp; writes docs/BENCHMARKS.md.
    Bench {
        /// Full mode (longer runs, more stream counts).
        #[arg(long)]
        full: bool,
    },
    /// Publishers that reconnect, viewers and hostile connections together for N minutes.
    Soak {
        #[arg(long, default_value_t = 5)]
        minutes: u64,
    },
    /// Validate docker/compose.yaml and the shipped Varnish configuration.
    DockerCheck,
    /// Re-record the real-encoder RTMP vectors in crates/rtmp-ingest/testdata (FFmpeg 5.1,
    /// GStreamer rtmp2sink, librtmp through GStreamer rtmpsink, FFmpeg 9 Enhanced RTMP).
    CaptureVectors,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = project_root();
    std::env::set_current_dir(&root)?;
    match cli.cmd {
        Cmd::Deps => deps::ensure(&root),
        Cmd::Test {
            no_lint,
            fuzz_seconds,
        } => test(&root, no_lint, fuzz_seconds),
        Cmd::Fuzz { seconds, target } => fuzz(&root, seconds, target.as_deref()),
        Cmd::Bench { full } => bench::run(&root, full),
        Cmd::Soak { minutes } => soak::run(&root, minutes),
        Cmd::DockerCheck => docker_check(&root),
        Cmd::CaptureVectors => capture_vectors::run(&root),
    }
}

pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}

/// `CI=true` or `CI=1` (any case): the one reading, shared with the tests' tool gate.
pub use test_support::in_ci;

/// Runs a command, inheriting stdio, failing with its name on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {}", display(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("could not start {}", display(cmd)))?;
    if !status.success() {
        bail!("{} failed with {status}", display(cmd));
    }
    Ok(())
}

fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a shell command line and returns its trimmed stdout ("" if it could not run).
pub fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn test(root: &Path, no_lint: bool, fuzz_seconds: u64) -> Result<()> {
    deps::ensure(root)?;
    if !no_lint {
        run(cargo().args(["fmt", "--all", "--", "--check"]))?;
        run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]))?;
        // Docs build without warnings (broken intra-doc links, bad code blocks).
        run(cargo().env("RUSTDOCFLAGS", "-D warnings").args([
            "doc",
            "--workspace",
            "--no-deps",
            "--locked",
        ]))?;
    }
    // Unit, property, golden, real-peer (ffmpeg, GStreamer) and browser (hls.js in Chromium,
    // Varnish) tests. The real-peer tests fail rather than skip when CI is set; otherwise every
    // skip is recorded (crates/test-support) and listed below, so a green run says what it
    // did not run.
    let skip_log = target_dir(root).join("test-skips.log");
    std::fs::create_dir_all(target_dir(root))?;
    match std::fs::remove_file(&skip_log) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).context("removing the previous skip log")
        }
        _ => {}
    }
    let mut t = cargo();
    t.args(["test", "--workspace", "--locked", "--", "--test-threads=2"])
        // Not a SLUICE_ name: the sluice processes the tests spawn reject unknown SLUICE_ variables.
        .env(test_support::SKIP_LOG_ENV, &skip_log);
    // Tests find the Enhanced RTMP publisher here (not a SLUICE_ name: strict config).
    if let Some(p) = deps::ffmpeg9_path() {
        t.env("FFMPEG9", p);
    }
    let tests = run(&mut t);
    let skipped = report_skips(&skip_log)?;
    tests?;
    if skipped > 0 && in_ci() {
        bail!("{skipped} tests skipped with CI set");
    }
    docker_check(root)?;
    fuzz(root, fuzz_seconds, None)?;
    eprintln!("xtask: the whole suite passed");
    Ok(())
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Prints, loudly, how many tests skipped for a missing tool and which; returns the count.
fn report_skips(log: &Path) -> Result<usize> {
    let text = match std::fs::read_to_string(log) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", log.display())),
    };
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    lines.sort_unstable();
    lines.dedup();
    if lines.is_empty() {
        eprintln!("xtask: no test skipped");
    } else {
        eprintln!("\n================================================================");
        eprintln!(
            "xtask: {} TESTS SKIPPED (they passed without running; run `cargo xtask deps`):",
            lines.len()
        );
        for l in &lines {
            let (test, reason) = l.split_once('\t').unwrap_or((l, ""));
            eprintln!("  SKIPPED {test}: {reason}");
        }
        eprintln!("================================================================\n");
    }
    Ok(lines.len())
}

/// Every cargo-fuzz project in the tree, with its targets.
fn fuzz_projects(root: &Path) -> Result<Vec<(PathBuf, Vec<String>)>> {
    let mut out = Vec::new();
    for dir in ["crates/rtmp-ingest/fuzz", "crates/remux/fuzz"] {
        let d = root.join(dir);
        let targets_dir = d.join("fuzz_targets");
        if !targets_dir.is_dir() {
            continue;
        }
        let mut targets: Vec<String> = std::fs::read_dir(&targets_dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let p = e.path();
                (p.extension()? == "rs").then(|| p.file_stem().unwrap().to_string_lossy().into())
            })
            .collect();
        targets.sort();
        out.push((d, targets));
    }
    Ok(out)
}

fn fuzz(root: &Path, seconds: u64, only: Option<&str>) -> Result<()> {
    let projects = fuzz_projects(root)?;
    if projects.is_empty() {
        bail!("no fuzz projects found");
    }
    for (dir, targets) in projects {
        for t in targets {
            if only.is_some_and(|o| o != t) {
                continue;
            }
            let corpus = dir.join("corpus").join(&t);
            std::fs::create_dir_all(&corpus)?;
            // cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the one stable toolchain accept them.
            run(cargo()
                .current_dir(&dir)
                .env("RUSTC_BOOTSTRAP", "1")
                .args(["fuzz", "run", &t, "--"])
                .arg(&corpus)
                .arg(format!("-max_total_time={seconds}"))
                .arg("-rss_limit_mb=2048")
                .arg("-print_final_stats=1"))?;
        }
    }
    Ok(())
}

fn docker_check(root: &Path) -> Result<()> {
    let compose = root.join("docker/compose.yaml");
    run(Command::new("docker-compose")
        .arg("-f")
        .arg(&compose)
        .args(["config", "--quiet"]))?;
    // The monitoring profile (Prometheus + Grafana) and its Prometheus configuration.
    run(Command::new("docker-compose")
        .arg("-f")
        .arg(&compose)
        .args(["--profile", "monitoring", "config", "--quiet"]))?;
    run(Command::new("promtool")
        .args(["check", "config"])
        .arg(root.join("docker/prometheus/prometheus.yml")))?;
    // The VCL must compile with the real varnishd (-C compiles and prints C, exits non-zero on
    // error). varnishd resolves backend hosts at compile time, and the compose service name
    // `sluice` only resolves inside compose, so compile a copy pointed at loopback.
    let vcl = std::fs::read_to_string(root.join("docker/varnish/default.vcl"))?;
    let local = vcl.replace(".host = \"sluice\";", ".host = \"127.0.0.1\";");
    if local == vcl {
        bail!("docker/varnish/default.vcl: backend host \"sluice\" not found");
    }
    let tmp = std::env::temp_dir().join(format!("sluice-vcl-check-{}.vcl", std::process::id()));
    std::fs::write(&tmp, local)?;
    let out = Command::new("varnishd")
        .args(["-C", "-f"])
        .arg(&tmp)
        .output()
        .context("varnishd")?;
    let _ = std::fs::remove_file(&tmp);
    if !out.status.success() {
        bail!(
            "docker/varnish/default.vcl does not compile:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fleet_check(root)?;
    eprintln!("xtask: docker/compose.yaml (with the monitoring profile), prometheus.yml, default.vcl, compose.fleet.yaml and fleet.vcl are valid");
    Ok(())
}

/// The fleet compose file and its Varnish configuration (three backends `sluice1..3`, compiled
/// pointed at 127.0.0.1..3 since compose service names only resolve inside compose).
fn fleet_check(root: &Path) -> Result<()> {
    run(Command::new("docker-compose")
        .arg("-f")
        .arg(root.join("docker/compose.fleet.yaml"))
        .args(["config", "--quiet"]))?;
    let vcl = std::fs::read_to_string(root.join("docker/varnish/fleet.vcl"))?;
    let mut local = vcl.clone();
    for n in 1..=3 {
        local = local.replace(
            &format!(".host = \"sluice{n}\";"),
            &format!(".host = \"127.0.0.{n}\";"),
        );
    }
    if local.matches("127.0.0.").count() != 3 {
        bail!("docker/varnish/fleet.vcl: backend hosts sluice1..3 not found");
    }
    let tmp = std::env::temp_dir().join(format!("sluice-fleet-vcl-{}.vcl", std::process::id()));
    std::fs::write(&tmp, local)?;
    let out = Command::new("varnishd")
        .args(["-C", "-f"])
        .arg(&tmp)
        .output()
        .context("varnishd")?;
    let _ = std::fs::remove_file(&tmp);
    if !out.status.success() {
        bail!(
            "docker/varnish/fleet.vcl does not compile:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
