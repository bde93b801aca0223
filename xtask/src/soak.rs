//! `cargo xtask soak`: reconnecting publishers, viewers and hostile connections against one
//! Sluice (release build) for N minutes. Reports RSS over time, segments lost by viewers of healthy
//! streams, HTTP errors and whether Sluice stayed alive; exits non-zero on lost segments or death.
//!
//! Hostile connections come from 127.0.0.2 so the per-IP connection cap they probe does not
//! refuse the soak's own publishers (127.0.0.1).
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::sh;
use anyhow::{bail, Result};

use crate::flv::{self, Media};
use crate::http_client::HttpConn;
use crate::load::{self, sleep_unless_stopped, PlayerStats, PubConfig, Publisher};
use crate::servers::{self, Server};

const STREAMS: usize = 4;
const VIEWERS_PER_STREAM: usize = 3;

struct Rng(u64);
impl Rng {
    fn seeded(salt: u64) -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        Rng(t ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Counters of the hostile load, by kind.
#[derive(Default)]
struct Hostile {
    attempts: [AtomicU64; 7],
    /// The server closed the connection (the expected outcome for garbage).
    closed_by_server: [AtomicU64; 7],
    /// Connect or handshake failed (e.g. refused at accept by the per-IP cap during a flood).
    refused: [AtomicU64; 7],
    /// Still open when we gave up waiting (15 s for garbage; the slowloris ran out of bytes).
    still_open: [AtomicU64; 7],
    /// Flood: most connections from one IP that completed a handshake at once.
    flood_max_accepted: AtomicU64,
    slowloris_max_held_s: AtomicU64,
    http_statuses: Mutex<Vec<u16>>,
}

const KINDS: [&str; 7] = [
    "garbage after a valid handshake",
    "handshake with bad C0",
    "RTMP slowloris (1 byte/s)",
    "connect flood (80 from one IP)",
    "HTTP garbage",
    "HTTP huge query string",
    "HTTP slowloris (1 byte/s)",
];

fn hostile_connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into())?;
    s.connect_timeout(&addr.into(), Duration::from_secs(3))?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(s)
}

/// Reads until EOF/error; true if the server closed (EOF or reset) rather than timing out.
fn drained_to_close(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

fn spawn_hostile(
    kind: usize,
    rtmp: SocketAddr,
    http: SocketAddr,
    h: Arc<Hostile>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut rng = Rng::seeded(kind as u64 + 17);
        while !stop.load(Relaxed) {
            h.attempts[kind].fetch_add(1, Relaxed);
            let closed = match kind {
                0 => hostile_connect(rtmp).and_then(|mut s| {
                    crate::rtmp_client::handshake(&mut s).map_err(std::io::Error::other)?;
                    let n = rng.range(16, 8192) as usize;
                    let _ = s.write_all(&rng.bytes(n));
                    Ok(drained_to_close(&mut s))
                }),
                1 => hostile_connect(rtmp).map(|mut s| {
                    let mut c = rng.bytes(1537);
                    c[0] = [0u8, 6, 0xFF, b'G'][rng.range(0, 3) as usize];
                    let _ = s.write_all(&c);
                    drained_to_close(&mut s)
                }),
                2 | 6 => hostile_connect(if kind == 2 { rtmp } else { http }).map(|mut s| {
                    let t = Instant::now();
                    let msg: &[u8] = if kind == 2 { &[3u8; 1537] } else { b"GET /live/soak0/index.m3u8 HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" };
                    let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
                    let mut closed = false;
                    let mut buf = [0u8; 4096];
                    for b in msg {
                        if stop.load(Relaxed) || s.write_all(&[*b]).is_err() {
                            closed = !stop.load(Relaxed);
                            break;
                        }
                        match s.read(&mut buf) {
                            Ok(0) => {
                                closed = true;
                                break;
                            }
                            Err(e) if !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                                closed = true;
                                break;
                            }
                            _ => {}
                        }
                    }
                    h.slowloris_max_held_s.fetch_max(t.elapsed().as_secs(), Relaxed);
                    closed
                }),
                3 => {
                    let mut held = Vec::new();
                    for _ in 0..80 {
                        if let Ok(mut s) = hostile_connect(rtmp) {
                            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                            if crate::rtmp_client::handshake(&mut s).is_ok() {
                                held.push(s);
                            }
                        }
                    }
                    h.flood_max_accepted.fetch_max(held.len() as u64, Relaxed);
                    sleep_unless_stopped(Duration::from_secs(5), &stop);
                    drop(held);
                    sleep_unless_stopped(Duration::from_secs(25), &stop);
                    Ok(true)
                }
                4 | 5 => hostile_connect(http).map(|mut s| {
                    let req = if kind == 4 {
                        {
                        let n = rng.range(1, 20000) as usize;
                        rng.bytes(n)
                    }
                    } else {
                        let q = "a".repeat(rng.range(8_000, 200_000) as usize);
                        format!("GET /live/soak0/index.m3u8?{q} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
                    };
                    let _ = s.write_all(&req);
                    let mut resp = Vec::new();
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut buf = [0u8; 4096];
                    let mut closed = false;
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) => {
                                closed = true;
                                break;
                            }
                            Ok(n) => {
                                resp.extend_from_slice(&buf[..n]);
                                if resp.windows(4).any(|w| w == b"\r\n\r\n") {
                                    break;
                                }
                            }
                            Err(e) => {
                                closed = !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut);
                                break;
                            }
                        }
                    }
                    if let Some(code) = std::str::from_utf8(&resp).ok().and_then(|r| r.split_whitespace().nth(1)).and_then(|c| c.parse().ok()) {
                        h.http_statuses.lock().unwrap().push(code);
                        closed = true;
                    }
                    closed
                }),
                _ => unreachable!(),
            };
            match closed {
                Ok(true) => h.closed_by_server[kind].fetch_add(1, Relaxed),
                Ok(false) => h.still_open[kind].fetch_add(1, Relaxed),
                Err(_) => h.refused[kind].fetch_add(1, Relaxed),
            };
            if kind != 3 {
                sleep_unless_stopped(Duration::from_millis(rng.range(200, 1000)), &stop);
            }
        }
    })
}

#[derive(Default)]
struct PubLog {
    sessions: u64,
    failures: Vec<String>,
}

/// A publisher that reconnects every 60–90 s (pausing 0.5–2 s in between).
fn spawn_reconnecting(
    media: Arc<Media>,
    addr: SocketAddr,
    stream: String,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<PubLog>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut rng = Rng::seeded(stream.len() as u64 + stream.as_bytes()[stream.len() - 1] as u64);
        while !stop.load(Relaxed) {
            let cfg = PubConfig {
                addr,
                app: "live".into(),
                stream: stream.clone(),
                paced: true,
                record_keyframes: false,
                max_duration: Some(Duration::from_secs(rng.range(60, 90))),
            };
            let p = Publisher::spawn(media.clone(), cfg);
            while !p.is_finished() && !stop.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let st = p.stop();
            let mut l = log.lock().unwrap();
            l.sessions += 1;
            if let Some(e) = st.error.lock().unwrap().clone() {
                l.failures.push(e);
            }
            drop(l);
            sleep_unless_stopped(Duration::from_millis(rng.range(500, 2000)), &stop);
        }
    })
}

pub fn run(root: &Path, minutes: u64) -> Result<()> {
    let media = Arc::new(flv::load(&flv::ensure_source(root)?)?);
    // XTASK_SOAK_NGINX=1 soaks the nginx-rtmp anchor instead (to validate the harness itself).
    let mut server = if std::env::var_os("XTASK_SOAK_NGINX").is_some() {
        Server::start_nginx(root, "soak")?
    } else {
        crate::run(
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
                "build",
                "--release",
                "-p",
                "sluice",
            ]),
        )?;
        Server::start_sluice(root, &[])?
    };
    let pid = server.pid();
    eprintln!(
        "soak: sluice pid {pid}, RTMP {}, HTTP {}, {minutes} min",
        server.rtmp, server.http
    );
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut pub_threads = Vec::new();
    let logs: Vec<Arc<Mutex<PubLog>>> = (0..STREAMS).map(|_| Arc::default()).collect();
    for (i, log) in logs.iter().enumerate() {
        pub_threads.push(spawn_reconnecting(
            media.clone(),
            server.rtmp,
            format!("soak{i}"),
            stop.clone(),
            log.clone(),
        ));
    }
    let mut viewers: Vec<(usize, JoinHandle<PlayerStats>)> = Vec::new();
    for i in 0..STREAMS {
        for _ in 0..VIEWERS_PER_STREAM {
            viewers.push((
                i,
                load::spawn_player(
                    server.http,
                    Server::playlist_path(&format!("soak{i}")),
                    Duration::from_secs(1),
                    stop.clone(),
                ),
            ));
        }
    }
    let hostile = Arc::new(Hostile::default());
    let hostile_threads: Vec<JoinHandle<()>> = (0..KINDS.len())
        .map(|k| spawn_hostile(k, server.rtmp, server.http, hostile.clone(), stop.clone()))
        .collect();

    let mut samples: Vec<(u64, u64, Option<u64>)> = Vec::new();
    let end = started + Duration::from_secs(minutes * 60);
    let mut died = false;
    while Instant::now() < end {
        if !server.alive() {
            died = true;
            break;
        }
        let rss = server.rss_bytes(); // nginx: master + workers
        let held = server.held_bytes().ok();
        samples.push((started.elapsed().as_secs(), rss, held));
        eprintln!(
            "soak: t={:>4}s RSS {:.1} MB, segment bytes held {}",
            started.elapsed().as_secs(),
            rss as f64 / 1e6,
            held.map(|h| format!("{:.1} MB", h as f64 / 1e6))
                .unwrap_or("?".into())
        );
        std::thread::sleep(
            Duration::from_secs(10).min(end.saturating_duration_since(Instant::now())),
        );
    }
    stop.store(true, Relaxed);
    for t in pub_threads {
        let _ = t.join();
    }
    let viewer_stats: Vec<(usize, PlayerStats)> = viewers
        .into_iter()
        .map(|(i, j)| (i, j.join().unwrap_or_default()))
        .collect();
    for t in hostile_threads {
        let _ = t.join();
    }
    died |= !server.alive();
    let healthz = if died {
        None
    } else if server.kind == servers::Kind::Nginx {
        Some(200) // nginx has no /healthz; alive is all we can say
    } else {
        HttpConn::new(server.http)
            .get("/healthz")
            .ok()
            .map(|r| r.status)
    };
    let metrics = if died {
        String::new()
    } else {
        HttpConn::new(server.http)
            .get("/metrics")
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .unwrap_or_default()
    };

    // A stream is healthy when every publish session of it connected (a publisher refused by the
    // server cannot be blamed on the viewers' side).
    let mut r = String::new();
    let _ = writeln!(r, "# Soak report\n\n- Date: {}\n- Duration: {minutes} min; {STREAMS} publishers reconnecting every 60-90 s, {VIEWERS_PER_STREAM} viewers per stream, 7 kinds of hostile connections from 127.0.0.2", sh("date -u '+%Y-%m-%d %H:%M UTC'"));
    let _ = writeln!(
        r,
        "- Server: {} (Sluice git {})\n",
        server.kind.name(),
        sh("git rev-parse --short HEAD")
    );
    let _ = writeln!(
        r,
        "## Publishers\n\n| Stream | Sessions | Failed sessions | Healthy |\n|---|---|---|---|"
    );
    let mut healthy = [true; STREAMS];
    for (i, l) in logs.iter().enumerate() {
        let l = l.lock().unwrap();
        healthy[i] = l.failures.is_empty() && l.sessions > 0;
        let _ = writeln!(
            r,
            "| soak{i} | {} | {} | {} |",
            l.sessions,
            l.failures.len(),
            if healthy[i] { "yes" } else { "no" }
        );
        for f in l.failures.iter().take(3) {
            let _ = writeln!(r, "|  | error: {} | | |", f.replace('|', "/"));
        }
    }
    let _ = writeln!(r, "\n## Viewers\n\n| Stream | Playlist fetches | Segments fetched | Segments lost | Playlist errors | Segment errors | Sequence resets | Last error |\n|---|---|---|---|---|---|---|---|");
    let (mut lost_healthy, mut http_errors) = (0u64, 0u64);
    for (i, v) in &viewer_stats {
        if healthy[*i] {
            lost_healthy += v.segments_missing;
        }
        http_errors += v.playlist_errors + v.segment_errors;
        let _ = writeln!(
            r,
            "| soak{i} | {} | {} | {} | {} | {} | {} | {} |",
            v.playlist_fetches,
            v.segments_fetched,
            v.segments_missing,
            v.playlist_errors,
            v.segment_errors,
            v.sequence_resets,
            v.last_error.clone().unwrap_or_default().replace('|', "/")
        );
    }
    let _ = writeln!(r, "\n## Hostile connections\n\n| Kind | Attempts | Closed by server / answered | Refused at connect or handshake | Still open when we gave up |\n|---|---|---|---|---|");
    for (k, name) in KINDS.iter().enumerate() {
        let _ = writeln!(
            r,
            "| {name} | {} | {} | {} | {} |",
            hostile.attempts[k].load(Relaxed),
            hostile.closed_by_server[k].load(Relaxed),
            hostile.refused[k].load(Relaxed),
            hostile.still_open[k].load(Relaxed)
        );
    }
    let mut codes = hostile.http_statuses.lock().unwrap().clone();
    codes.sort_unstable();
    let mut hist: Vec<(u16, usize)> = Vec::new();
    for c in codes {
        match hist.last_mut() {
            Some((lc, n)) if *lc == c => *n += 1,
            _ => hist.push((c, 1)),
        }
    }
    let _ = writeln!(r, "\n- Connect flood: at most {} handshakes completed at once from one IP (cap `rtmp.max_connections_per_ip`, default 64)", hostile.flood_max_accepted.load(Relaxed));
    let _ = writeln!(
        r,
        "- Slowloris: longest connection held {} s",
        hostile.slowloris_max_held_s.load(Relaxed)
    );
    let _ = writeln!(
        r,
        "- HTTP status codes answered to garbage / huge queries: {hist:?}"
    );
    let _ = writeln!(r, "\n## Memory (RSS every 10 s)\n\n| t (s) | RSS (MB) | Segment bytes held (MB) |\n|---|---|---|");
    for (t, rss, held) in &samples {
        let _ = writeln!(
            r,
            "| {t} | {:.1} | {} |",
            *rss as f64 / 1e6,
            held.map(|h| format!("{:.1}", h as f64 / 1e6))
                .unwrap_or("?".into())
        );
    }
    let _ = writeln!(r, "\n## Verdict\n");
    let _ = writeln!(
        r,
        "- Segments lost by viewers of healthy streams: **{lost_healthy}** (must be 0)"
    );
    let _ = writeln!(
        r,
        "- Viewer HTTP errors (playlist + segment, after the stream was first seen): {http_errors}"
    );
    let _ = writeln!(
        r,
        "- {} alive at the end: **{}**; /healthz: {}",
        server.kind.name(),
        !died,
        healthz
            .map(|c| c.to_string())
            .unwrap_or_else(|| "no answer".into())
    );
    if let Some(v) = servers::metric_sum(&metrics, "sluice_stream_bytes_received_total") {
        let _ = writeln!(r, "- sluice_stream_bytes_received_total: {v}");
    }
    println!("{r}");
    std::fs::write(root.join("target/soak-report.md"), &r)?;
    eprintln!("soak: wrote target/soak-report.md");
    drop(server);
    if died || healthz != Some(200) {
        bail!("soak: sluice died or is unhealthy");
    }
    if lost_healthy > 0 {
        bail!("soak: {lost_healthy} segments lost by viewers of healthy streams");
    }
    Ok(())
}
