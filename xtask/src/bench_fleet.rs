//! Fleet benchmark (`XTASK_BENCH_ONLY=fleet cargo xtask bench`): a real `redis-server` and two
//! release `sluice` nodes sharing it, one paced publisher on the owner. Measures playlist and
//! segment requests per CPU-second answered locally by the owner against the same requests
//! forwarded by the other node (CPU of both nodes counted, from procfs, never wall time), the
//! registry operations one live stream costs per minute (Redis `total_commands_processed`), and
//! the time from `kill -9` of the owner to the playlist advancing again on the other node after
//! the publisher reconnects there. Splices its section into docs/BENCHMARKS.md.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::http_client::HttpConn;
use crate::load::{parse_playlist, PubConfig, Publisher};
use crate::servers::{free_addr, Server};

const PLAYLIST: &str = "/live/fleet/index.m3u8";
const LEASE_MS: u64 = 2000;

struct Redis(Child, u16);

impl Redis {
    fn start() -> Result<Redis> {
        let port = free_addr()?.port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("redis-server (cargo xtask deps installs it)")?;
        let r = Redis(child, port);
        let deadline = Instant::now() + Duration::from_secs(20);
        while r.cli(&["ping"]) != "PONG" {
            if Instant::now() > deadline {
                bail!("redis-server did not answer PING");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(r)
    }

    fn cli(&self, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-p", &self.1.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    fn commands(&self) -> u64 {
        self.cli(&["info", "stats"])
            .lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node(root: &Path, redis: &Redis) -> Result<Server> {
    let url = format!("cluster.redis_url=redis://127.0.0.1:{}", redis.1);
    let lease = format!("cluster.lease_ms={LEASE_MS}");
    Server::start_sluice(
        root,
        &[
            &url,
            &lease,
            "cluster.renew_interval_ms=500",
            "cluster.lease_margin_ms=300",
            "cluster.owner_cache_ms=1000",
        ],
    )
}

fn publish(media: &Arc<crate::flv::Media>, s: &Server) -> Publisher {
    Publisher::spawn(
        media.clone(),
        PubConfig {
            addr: s.rtmp,
            app: "live".into(),
            stream: "fleet".into(),
            paced: true,
            record_keyframes: false,
            max_duration: None,
        },
    )
}

fn last_segment(conn: &mut HttpConn) -> Option<u64> {
    let r = conn.get(PLAYLIST).ok()?;
    (r.status == 200)
        .then(|| parse_playlist(&String::from_utf8_lossy(&r.body)))
        .and_then(|p| p.segments.last().map(|s| s.seq))
}

/// Requests per CPU-second of `servers` for `secs` of back-to-back GETs of `path` on `via`.
fn per_cpu_second(via: &Server, servers: &[&Server], path: &str, secs: u64) -> Result<f64> {
    let mut conn = HttpConn::new(via.http);
    let cpu0: f64 = servers.iter().map(|s| s.cpu_seconds()).sum();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut n = 0u64;
    while Instant::now() < end {
        let r = conn.get(path)?;
        if r.status != 200 {
            bail!("GET {path}: {}", r.status);
        }
        n += 1;
    }
    let cpu = servers.iter().map(|s| s.cpu_seconds()).sum::<f64>() - cpu0;
    Ok(n as f64 / cpu.max(1e-6))
}

pub(crate) fn run_alone(root: &Path, full: bool) -> Result<()> {
    let started = Instant::now();
    let secs = if full { 10 } else { 4 };
    let media = Arc::new(crate::flv::load(&crate::flv::ensure_source(root)?)?);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    crate::run(Command::new(cargo).args(["build", "--release", "-p", "sluice"]))?;
    let redis = Redis::start()?;
    let owner = node(root, &redis)?;
    let other = node(root, &redis)?;
    let publisher = publish(&media, &owner);
    let mut watch = HttpConn::new(owner.http);
    let deadline = Instant::now() + Duration::from_secs(60);
    while last_segment(&mut watch).is_none_or(|s| s < 2) {
        if Instant::now() > deadline {
            bail!("no playlist on the owner");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // The newest segment at the time of asking (the window slides while the bench runs).
    let newest_segment = || -> Result<String> {
        let r = HttpConn::new(owner.http).get(PLAYLIST)?;
        let pl = parse_playlist(&String::from_utf8_lossy(&r.body));
        let seg = pl.segments.last().context("empty playlist")?;
        Ok(format!("/live/fleet/{}", seg.uri))
    };

    // Registry cost of one live stream, nothing else running (the nodes' health probes are
    // included: one lookup per node per renew interval).
    let c0 = redis.commands();
    let window = Duration::from_secs(if full { 60 } else { 20 });
    std::thread::sleep(window);
    let ops_per_min = (redis.commands() - c0) as f64 * 60.0 / window.as_secs_f64();

    let pl_local = per_cpu_second(&owner, &[&owner], PLAYLIST, secs)?;
    let pl_fwd = per_cpu_second(&other, &[&owner, &other], PLAYLIST, secs)?;
    let seg_local = per_cpu_second(&owner, &[&owner], &newest_segment()?, secs)?;
    let seg_fwd = per_cpu_second(&other, &[&owner, &other], &newest_segment()?, secs)?;

    // kill -9 of the owner; the publisher reconnects to the other node until it is accepted.
    let mut via_other = HttpConn::new(other.http);
    let seen = last_segment(&mut via_other).unwrap_or(0);
    drop(publisher);
    let killed = Instant::now();
    Command::new("kill")
        .args(["-KILL", &owner.pid().to_string()])
        .status()?;
    let recovered = loop {
        let p = publish(&media, &other);
        std::thread::sleep(Duration::from_millis(500));
        if !p.is_finished() {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if last_segment(&mut via_other).is_some_and(|s| s > seen) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("playlist did not advance on the new owner");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let t = killed.elapsed();
            drop(p);
            break t;
        }
        if killed.elapsed() > Duration::from_secs(60) {
            bail!("the other node never accepted the publish");
        }
    };

    let rows = [
        (
            "Playlist requests per CPU-second, local (owner)",
            pl_local,
            "req/CPU-s",
        ),
        (
            "Playlist requests per CPU-second, forwarded (both nodes' CPU)",
            pl_fwd,
            "req/CPU-s",
        ),
        (
            "Segment requests per CPU-second, local (owner)",
            seg_local,
            "req/CPU-s",
        ),
        (
            "Segment requests per CPU-second, forwarded (both nodes' CPU)",
            seg_fwd,
            "req/CPU-s",
        ),
        (
            "Registry operations per live stream per minute",
            ops_per_min,
            "Redis commands/min",
        ),
        (
            "Owner kill -9 to the playlist advancing on another node",
            recovered.as_secs_f64(),
            "s",
        ),
    ];
    let mut sec = crate::bench_report::PhaseSection::new(
        "fleet",
        "Fleet (Redis registry, forwarding, failover)",
        full,
        started,
        &format!("two release nodes and one `redis-server` on loopback, one paced publisher, `cluster.lease_ms={LEASE_MS}`, renew every 500 ms."),
    );
    sec.push_str("| Metric | Value | Unit |\n|---|---:|---|\n");
    for (m, v, u) in rows {
        sec.push_str(&format!("| {m} | {v:.1} | {u} |\n"));
    }
    sec.push_str(&format!(
        "\n- Requests are back-to-back on one keep-alive connection for {secs} s each; a forwarded request costs the forwarding node (owner lookup, cached for `cluster.owner_cache_ms`, plus the proxy) and the owner.\n- Registry operations include both nodes' health probes; the owner's share is one renewal per renew interval, or sooner when a segment's numbers are to be saved (a renewal carries them).\n- The failover time includes the lease expiry ({LEASE_MS} ms), the publisher's reconnect attempts (every ~0.5 s) and the first segment on the new owner (a 2 s target duration); meanwhile the other node holds playlist requests (`cluster.failover_hold_ms`) instead of answering 404.\n- Taken on a machine shared with other builds and tests: CPU-second figures are per CPU-second actually used by the nodes, the failover time is wall time and grows with load.\n"
    ));
    sec.write(root)
}
