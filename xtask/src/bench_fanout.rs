//! `cargo xtask bench`, RTMP fan-out and RTMPT phases. Fan-out: one paced 3 Mbit/s publisher and
//! N RTMP players per server, Sluice and nginx-rtmp (`live` application) at once; players are the
//! minimal play client below (RTMP §5.2 handshake, §7.2.1.1 `connect`, §7.2.1.3 `createStream`,
//! §7.2.2.1 `play`, then bytes read and discarded with §5.4.3 Acknowledgements). RTMPT: Sluice's
//! CPU for one ffmpeg publish tunnelled over HTTP polling (`/open`, `/send`, `/idle`) against the
//! same publish over plain RTMP. Server cost is user+sys CPU from procfs, never wall time.
//! Alone: `XTASK_BENCH_ONLY=fanout cargo xtask bench` (splices its section into docs/BENCHMARKS.md).
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::BytesMut;

use crate::bench::{row, Collected, Row, SLUICE_BENCH_SETS};
use crate::flv::Media;
use crate::http_client::HttpConn;
use crate::load::{PubConfig, Publisher};
use crate::rtmp_client::{
    answer_ping, command, handshake, num, str, write_message, Amf, Reader, Reply,
};
use crate::servers::Server;

/// Player caps raised so N players from 127.0.0.1 are not refused (defaults: 64 per IP).
const SLUICE_PLAY_SETS: &[&str] = &["play.max_players=8192", "play.max_players_per_ip=8192"];

pub(crate) struct FanoutOpts {
    pub counts: Vec<usize>,
    pub window_secs: u64,
    pub rtmpt_secs: u64,
}

impl FanoutOpts {
    pub fn new(full: bool) -> Self {
        FanoutOpts {
            counts: if full {
                vec![50, 200, 500]
            } else {
                vec![20, 50]
            },
            window_secs: if full { 30 } else { 15 },
            rtmpt_secs: if full { 20 } else { 8 },
        }
    }
}

/// Both fan-out sizes and the RTMPT comparison, appended to `out`.
pub(crate) fn fanout_and_rtmpt(
    root: &Path,
    media: &Arc<Media>,
    o: &FanoutOpts,
    with_sluice: bool,
    out: &mut Collected,
) -> Result<()> {
    for &n in &o.counts {
        fanout(root, media, o, n, with_sluice, out)?;
    }
    if with_sluice {
        rtmpt_publish(root, o, out)?;
    }
    Ok(())
}

/// `XTASK_BENCH_ONLY=fanout`: this phase alone; its table and notes replace the fan-out section of
/// docs/BENCHMARKS.md, the rest of the file is kept.
pub(crate) fn run_alone(root: &Path, full: bool) -> Result<()> {
    let started = Instant::now();
    let (media, with_sluice) = crate::bench_report::prepare_alone(root)?;
    let mut out = Collected::default();
    fanout_and_rtmpt(root, &media, &FanoutOpts::new(full), with_sluice, &mut out)?;
    let mut sec = crate::bench_report::PhaseSection::new(
        "fanout",
        "RTMP fan-out and RTMPT publish",
        full,
        started,
        "the players, publishers and both servers share these cores, so read the figures as a same-run comparison, not as capacity.",
    );
    sec.push_rows(&out.rows, &out.notes);
    sec.write(root)
}

fn start(root: &Path, tag: &str, with_sluice: bool) -> Result<Vec<Server>> {
    let mut v = Vec::new();
    if with_sluice {
        let sets: Vec<&str> = SLUICE_BENCH_SETS
            .iter()
            .chain(SLUICE_PLAY_SETS)
            .copied()
            .collect();
        v.push(Server::start_sluice(root, &sets)?);
    }
    v.push(Server::start_nginx(root, tag)?);
    Ok(v)
}

fn fanout(
    root: &Path,
    media: &Arc<Media>,
    o: &FanoutOpts,
    n: usize,
    with_sluice: bool,
    out: &mut Collected,
) -> Result<()> {
    eprintln!("bench: RTMP fan-out, 1 publisher -> {n} players per server");
    let servers = start(root, &format!("fanout{n}"), with_sluice)?;
    std::thread::sleep(Duration::from_millis(500));
    let pubs: Vec<Publisher> = servers
        .iter()
        .map(|s| {
            Publisher::spawn(
                media.clone(),
                PubConfig {
                    addr: s.rtmp,
                    app: "live".into(),
                    stream: "fan".into(),
                    paced: true,
                    record_keyframes: false,
                    max_duration: None,
                },
            )
        })
        .collect();
    crate::bench::wait_connected(&pubs, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));
    // The publisher's own cost, subtracted from the players' window below.
    let base_secs = 5.0;
    let b0: Vec<f64> = servers.iter().map(Server::cpu_seconds).collect();
    std::thread::sleep(Duration::from_secs_f64(base_secs));
    let b1: Vec<f64> = servers.iter().map(Server::cpu_seconds).collect();
    let rss0: Vec<u64> = servers.iter().map(Server::rss_bytes).collect();
    let mut players: Vec<(usize, Player)> = Vec::new();
    for i in 0..n {
        for (si, s) in servers.iter().enumerate() {
            players.push((si, Player::spawn(s.rtmp, "live", "fan", i)));
        }
    }
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end
        && players
            .iter()
            .any(|(_, p)| !p.stats.playing.load(Relaxed) && !p.stats.finished.load(Relaxed))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let c0: Vec<f64> = servers.iter().map(Server::cpu_seconds).collect();
    let bytes0: Vec<u64> = sum_bytes(&players, servers.len());
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(o.window_secs));
    let c1: Vec<f64> = servers.iter().map(Server::cpu_seconds).collect();
    let dt = t0.elapsed().as_secs_f64();
    let bytes1: Vec<u64> = sum_bytes(&players, servers.len());
    let rss1: Vec<u64> = servers.iter().map(Server::rss_bytes).collect();
    let (mut cpu_vals, mut mem_vals) = (Vec::new(), Vec::new());
    let Collected { rows, notes, .. } = out;
    for (si, s) in servers.iter().enumerate() {
        let mine: Vec<&Player> = players
            .iter()
            .filter(|(i, _)| *i == si)
            .map(|(_, p)| p)
            .collect();
        let live = mine
            .iter()
            .filter(|p| p.stats.playing.load(Relaxed) && !p.stats.finished.load(Relaxed))
            .count();
        let mut errs: Vec<String> = mine
            .iter()
            .filter_map(|p| p.stats.error.lock().unwrap().clone())
            .collect();
        errs.truncate(3);
        let base_rate = (b1[si] - b0[si]) / base_secs;
        let gross = c1[si] - c0[si];
        let mbps = (bytes1[si] - bytes0[si]) as f64 * 8.0 / dt / 1e6 / live.max(1) as f64;
        if live == 0 {
            notes.push(format!(
                "Fan-out N = {n}, {}: no player stayed connected: {errs:?}",
                s.kind.name()
            ));
            continue;
        }
        let net = (gross - base_rate * dt).max(0.0);
        cpu_vals.push((s.kind, net / (live as f64 * dt) * 1000.0));
        let mem = rss1[si].saturating_sub(rss0[si]) as f64 / live as f64;
        mem_vals.push((s.kind, mem / 1e3));
        notes.push(format!(
            "Fan-out N = {n}, {}: {live}/{n} players playing, {gross:.2} CPU-s over {dt:.1} s with players (publisher alone: {:.1} CPU-ms/s, subtracted), {mbps:.2} Mbit/s received per player, RSS {:.1} -> {:.1} MB{}",
            s.kind.name(),
            base_rate * 1000.0,
            rss0[si] as f64 / 1e6,
            rss1[si] as f64 / 1e6,
            if errs.is_empty() { String::new() } else { format!(", errors: {errs:?}") }
        ));
    }
    rows.push(row(
        format!("RTMP fan-out CPU per player-second, 1 real-time 3 Mbit/s stream to N = {n} players (publisher's own cost subtracted)"),
        "CPU-ms",
        &cpu_vals,
        Some(("<=", 0.5)),
        "",
    ));
    rows.push(row(
        format!("RTMP fan-out memory per player, N = {n} (RSS growth after the players joined)"),
        "KB",
        &mem_vals,
        None,
        "",
    ));
    for (_, p) in &players {
        p.stop.store(true, Relaxed);
    }
    drop(players);
    drop(pubs);
    Ok(())
}

fn sum_bytes(players: &[(usize, Player)], servers: usize) -> Vec<u64> {
    let mut v = vec![0; servers];
    for (si, p) in players {
        v[*si] += p.stats.bytes.load(Relaxed);
    }
    v
}

/// Sluice alone: one `ffmpeg -re` publish over plain RTMP and over RTMPT, alternating
/// RTMP, RTMPT, RTMPT, RTMP so drift cancels.
fn rtmpt_publish(root: &Path, o: &FanoutOpts, out: &mut Collected) -> Result<()> {
    eprintln!("bench: RTMPT publish vs plain RTMP (Sluice)");
    let src = crate::flv::ensure_source(root)?;
    let s = Server::start_sluice(root, SLUICE_BENCH_SETS)?;
    let mut cpu = [0.0f64; 2];
    let mut secs = [0.0f64; 2];
    let mut fails = Vec::new();
    for (round, tunnel) in [false, true, true, false].into_iter().enumerate() {
        let stream = format!("t{round}");
        let url = if tunnel {
            format!("rtmpt://{}/live/{stream}", s.http)
        } else {
            format!("rtmp://{}/live/{stream}", s.rtmp)
        };
        let mut ff = FfmpegPub::spawn(&src, &url)?;
        std::thread::sleep(Duration::from_secs(3));
        let c0 = s.cpu_seconds();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(o.rtmpt_secs));
        let c1 = s.cpu_seconds();
        let dt = t0.elapsed().as_secs_f64();
        let listed = HttpConn::new(s.http)
            .get(&Server::playlist_path(&stream))
            .map(|r| r.body.windows(4).any(|w| w == b".ts\n" || w == b"m4s\n"))
            .unwrap_or(false);
        let running = ff.0.try_wait().ok().flatten().is_none();
        if !listed || !running {
            fails.push(format!(
                "{url}: ffmpeg running {running}, segments listed {listed}"
            ));
            continue;
        }
        cpu[tunnel as usize] += c1 - c0;
        secs[tunnel as usize] += dt;
    }
    let Collected { rows, notes, .. } = out;
    let per = |i: usize| (secs[i] > 0.0).then(|| cpu[i] / secs[i] * 1000.0);
    let (plain, tunnel) = (per(0), per(1));
    for (name, i) in [("plain RTMP", 0), ("RTMPT", 1)] {
        rows.push(Row {
            metric: format!("Publish CPU per stream-second, one `ffmpeg -re -c copy` 3 Mbit/s publisher over {name}"),
            unit: "CPU-ms".into(),
            sluice: per(i),
            nginx: None,
            target: None,
            note: "nginx-rtmp has no RTMPT".into(),
        });
    }
    rows.push(Row {
        metric: "Price of the tunnel: RTMPT / plain RTMP publish CPU".into(),
        unit: "x".into(),
        sluice: plain.zip(tunnel).map(|(p, t)| t / p.max(1e-9)),
        nginx: None,
        target: None,
        note: "reported, no target".into(),
    });
    notes.push(format!(
        "RTMPT vs RTMP (Sluice, ffmpeg `-re -stream_loop -1 -c copy -f flv`, default `-rtmp_flush_interval` 10 packets per POST): plain {:.2} CPU-s over {:.1} s, RTMPT {:.2} CPU-s over {:.1} s (rounds RTMP, RTMPT, RTMPT, RTMP){}",
        cpu[0],
        secs[0],
        cpu[1],
        secs[1],
        if fails.is_empty() { String::new() } else { format!("; rounds not counted: {fails:?}") }
    ));
    Ok(())
}

/// An ffmpeg publisher child, killed on drop.
struct FfmpegPub(Child);

impl FfmpegPub {
    fn spawn(src: &Path, url: &str) -> Result<FfmpegPub> {
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
            .args(["-stream_loop", "-1", "-i"])
            .arg(src)
            .args(["-c", "copy", "-f", "flv", url])
            .stdin(Stdio::null())
            .spawn()
            .context("starting ffmpeg")?;
        Ok(FfmpegPub(child))
    }
}

impl Drop for FfmpegPub {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Default)]
pub(crate) struct PlayStats {
    pub playing: AtomicBool,
    pub finished: AtomicBool,
    /// Bytes received after `NetStream.Play.Start`.
    pub bytes: AtomicU64,
    pub error: Mutex<Option<String>>,
}

/// One RTMP play client on its own thread.
pub(crate) struct Player {
    stop: Arc<AtomicBool>,
    pub stats: Arc<PlayStats>,
    join: Option<JoinHandle<()>>,
}

impl Player {
    pub fn spawn(addr: SocketAddr, app: &str, stream: &str, i: usize) -> Player {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(PlayStats::default());
        let (s2, st2, app, stream) = (
            stop.clone(),
            stats.clone(),
            app.to_string(),
            stream.to_string(),
        );
        let join = std::thread::Builder::new()
            .name(format!("play-{i}"))
            .stack_size(128 * 1024)
            .spawn(move || {
                if let Err(e) = play_loop(addr, &app, &stream, &s2, &st2) {
                    if !s2.load(Relaxed) {
                        *st2.error.lock().unwrap() = Some(format!("{e:#}"));
                    }
                }
                st2.finished.store(true, Relaxed);
            })
            .expect("spawn player");
        Player {
            stop,
            stats,
            join: Some(join),
        }
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

fn send(sock: &mut TcpStream, csid: u8, type_id: u8, msid: u32, payload: &[u8]) -> Result<()> {
    let mut o = BytesMut::new();
    write_message(&mut o, csid, type_id, msid, 0, payload, 128);
    sock.write_all(&o)?;
    Ok(())
}

/// connect, createStream, play (the order libavformat uses), then read and discard.
fn play_loop(
    addr: SocketAddr,
    app: &str,
    stream: &str,
    stop: &AtomicBool,
    stats: &PlayStats,
) -> Result<()> {
    let timeout = Duration::from_secs(15);
    let mut sock = TcpStream::connect_timeout(&addr, timeout)?;
    sock.set_nodelay(true)?;
    // Short read timeout so a stop request is seen within half a second.
    sock.set_read_timeout(Some(Duration::from_millis(500)))?;
    sock.set_write_timeout(Some(timeout))?;
    handshake(&mut sock)?;
    let connect = command(
        "connect",
        1.0,
        &[Amf::object([
            ("app", str(app)),
            ("flashVer", str("LNX 9,0,124,2")),
            ("tcUrl", str(&format!("rtmp://{addr}/{app}"))),
            ("fpad", Amf::Boolean(false)),
            ("capabilities", num(15.0)),
            ("audioCodecs", num(4071.0)),
            ("videoCodecs", num(252.0)),
            ("videoFunction", num(1.0)),
        ])],
    );
    send(&mut sock, 3, 20, 0, &connect)?;
    let mut reader = Reader::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + timeout;
    let mut window: u64 = 2_500_000;
    let mut total: u64 = 0;
    let mut messages = Vec::new();
    'setup: loop {
        for m in messages.drain(..) {
            answer_ping(&mut sock, &m)?;
            if m.type_id == 5 && m.payload.len() >= 4 {
                window = u32::from_be_bytes(m.payload[..4].try_into().unwrap()) as u64;
            }
            let Some(reply) = Reply::of(&m) else {
                continue;
            };
            match (reply.name.as_str(), reply.txn) {
                ("_result", 1.0) => {
                    let body = command("createStream", 2.0, &[Amf::Null]);
                    send(&mut sock, 3, 20, 0, &body)?;
                }
                ("_result", 2.0) => {
                    let Some(id) = reply.values.get(3).and_then(Amf::as_number) else {
                        bail!("createStream _result without a stream id");
                    };
                    let id = id as u32;
                    let play = command("play", 3.0, &[Amf::Null, str(stream), num(-1000.0)]);
                    send(&mut sock, 8, 20, id, &play)?;
                    // User Control SetBufferLength (RTMP §7.1.7), 3 s.
                    let mut sb = vec![0, 3];
                    sb.extend_from_slice(&id.to_be_bytes());
                    sb.extend_from_slice(&3000u32.to_be_bytes());
                    send(&mut sock, 2, 4, 0, &sb)?;
                }
                ("_error", _) => bail!("server refused: {:?}", reply.values),
                ("onStatus", _) => {
                    if reply.info("code") == "NetStream.Play.Start" {
                        break 'setup;
                    }
                    if reply.info("level") == "error" {
                        bail!("play refused: {}", reply.info("code"));
                    }
                }
                _ => {}
            }
        }
        if Instant::now() > deadline || stop.load(Relaxed) {
            bail!("no NetStream.Play.Start within {timeout:?}");
        }
        match sock.read(&mut buf) {
            Ok(0) => bail!("server closed the connection during the play sequence"),
            Ok(k) => {
                total += k as u64;
                messages = reader.try_push(&buf[..k])?;
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e).context("reading server reply"),
        }
    }
    stats.playing.store(true, Relaxed);
    // Discard media; acknowledge every half window so a server waiting for acks keeps sending.
    let mut acked = total;
    while !stop.load(Relaxed) {
        match sock.read(&mut buf) {
            Ok(0) => bail!("server closed the connection while playing"),
            Ok(k) => {
                total += k as u64;
                stats.bytes.fetch_add(k as u64, Relaxed);
                if total - acked >= window / 2 {
                    send(&mut sock, 2, 3, 0, &(total as u32).to_be_bytes())?;
                    acked = total;
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e).context("reading media"),
        }
    }
    Ok(())
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
