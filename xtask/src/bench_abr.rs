//! ABR benchmark (`XTASK_BENCH_ONLY=abr cargo xtask bench`): what a ladder costs the origin
//! (issue 16). A three-rung ladder (640x360 1.5 Mbit/s, 480x270 0.8 Mbit/s, 320x180
//! 0.3 Mbit/s H.264 with keyframes forced every 2 s, AAC 64 kbit/s) is encoded once by FFmpeg 9
//! into FLV files: each rung alone, and the three as one Enhanced RTMP multitrack FLV. Paced
//! publishers replay them into a fresh release `sluice` per shape: the top rung alone (the
//! single-stream figure), the three rungs as three unrelated streams, as a suffix group
//! (`hls.variant_suffixes`) and as one multitrack publish. Per shape: CPU (procfs, seconds of CPU
//! per second of media) and resident memory growth over the idle process, in total and per
//! rendition; for the two groups, multivariant playlist requests per CPU-second (back-to-back on
//! one keep-alive connection, the ingest CPU measured in the same shape subtracted), next to a
//! rendition's media playlist. Splices its section into docs/BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::flv::Media;
use crate::http_client::HttpConn;
use crate::load::{parse_playlist, PubConfig, Publisher};
use crate::servers::Server;

/// (suffix, size, video bitrate): the e2e ladder (`tests/e2e/abr.rs`).
const LADDER: [(&str, &str, &str); 3] = [
    ("_hi", "640x360", "1500k"),
    ("_mid", "480x270", "800k"),
    ("_lo", "320x180", "300k"),
];

/// The ladder's FLV files, encoded once into target/bench/abr: `_hi.flv`, `_mid.flv`, `_lo.flv`
/// and `mt.flv` (three video tracks, one audio track).
fn ensure_ladder(root: &Path) -> Result<PathBuf> {
    let dir = root.join("target/bench/abr");
    if dir.join("mt.flv").exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)?;
    let ff9 = test_support::find_ffmpeg9()
        .context("FFmpeg 9 ($FFMPEG9 or imageio_ffmpeg; `cargo xtask deps` installs it)")?;
    let mut c = Command::new(ff9);
    c.args(["-hide_banner", "-loglevel", "error", "-y"])
        // Noise keeps testsrc2 near its bitrate targets.
        // 30 s of each input (an input option: it bounds every output).
        .args([
            "-t",
            "30",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30,noise=alls=12:allf=t",
        ])
        .args(["-t", "30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .arg("-filter_complex")
        .arg("[0:v]split=6[a0][a1][a2][b0][b1][b2];[a1]scale=480:270[a1s];[a2]scale=320:180[a2s];[b1]scale=480:270[b1s];[b2]scale=320:180[b2s]");
    let video = |c: &mut Command| {
        c.args(["-c:v", "libx264", "-preset", "veryfast", "-bf", "0"])
            .args(["-force_key_frames", "expr:gte(t,n_forced*2)"])
            .args(["-sc_threshold", "0", "-g", "600", "-pix_fmt", "yuv420p"]);
    };
    let audio = |c: &mut Command| {
        c.args(["-c:a", "aac", "-b:a", "64k"]);
    };
    for (i, (suffix, _, rate)) in LADDER.iter().enumerate() {
        let label = if i == 0 {
            "[a0]".to_string()
        } else {
            format!("[a{i}s]")
        };
        c.args(["-map", &label, "-map", "1:a"]);
        video(&mut c);
        c.args(["-b:v", rate, "-maxrate", rate, "-bufsize", rate]);
        audio(&mut c);
        c.arg(dir.join(format!("{suffix}.flv")));
    }
    c.args([
        "-map", "[b0]", "-map", "[b1s]", "-map", "[b2s]", "-map", "1:a",
    ]);
    video(&mut c);
    for (i, (.., rate)) in LADDER.iter().enumerate() {
        for opt in ["b", "maxrate", "bufsize"] {
            c.args([format!("-{opt}:v:{i}"), rate.to_string()]);
        }
    }
    audio(&mut c);
    c.arg(dir.join("mt.tmp.flv"));
    crate::run(&mut c)?;
    std::fs::rename(dir.join("mt.tmp.flv"), dir.join("mt.flv"))?;
    Ok(dir)
}

/// What one shape cost over the measuring window.
struct Cost {
    cpu_per_s: f64,
    rss_mib: f64,
}

/// Starts a fresh release `sluice`, publishes `(name, media)` paced, waits until every listed
/// playlist has three segments, then measures CPU and memory growth for `window`.
fn measure(
    root: &Path,
    sets: &[&str],
    pubs: &[(String, Arc<Media>)],
    playlists: &[String],
    window: Duration,
) -> Result<(Server, Vec<Publisher>, Cost)> {
    let server = Server::start_sluice(root, sets)?;
    std::thread::sleep(Duration::from_millis(500));
    let rss0 = server.rss_bytes();
    let publishers: Vec<Publisher> = pubs
        .iter()
        .map(|(name, media)| {
            Publisher::spawn(
                media.clone(),
                PubConfig {
                    addr: server.rtmp,
                    app: "live".into(),
                    stream: name.clone(),
                    paced: true,
                    record_keyframes: false,
                    max_duration: None,
                },
            )
        })
        .collect();
    let mut conn = HttpConn::new(server.http);
    let deadline = Instant::now() + Duration::from_secs(60);
    for p in playlists {
        loop {
            let r = conn.get(p)?;
            if r.status == 200
                && parse_playlist(&String::from_utf8_lossy(&r.body))
                    .segments
                    .len()
                    >= 3
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("{p} did not list three segments within 60 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let cpu0 = server.cpu_seconds();
    let t0 = Instant::now();
    std::thread::sleep(window);
    let cpu_per_s = (server.cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64();
    let rss_mib = server.rss_bytes().saturating_sub(rss0) as f64 / (1024.0 * 1024.0);
    if let Some(e) = crate::bench::errors(&publishers).first() {
        bail!("publisher: {e}");
    }
    Ok((server, publishers, Cost { cpu_per_s, rss_mib }))
}

/// Requests of `path` per CPU-second, back-to-back for `secs`, the ingest CPU (`ingest_per_s`,
/// measured without requests) subtracted.
fn requests_per_cpu_second(s: &Server, path: &str, secs: u64, ingest_per_s: f64) -> Result<f64> {
    let mut conn = HttpConn::new(s.http);
    let cpu0 = s.cpu_seconds();
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_secs(secs) {
        let r = conn.get(path)?;
        if r.status != 200 {
            bail!("GET {path}: {}", r.status);
        }
        n += 1;
    }
    let cpu = s.cpu_seconds() - cpu0 - ingest_per_s * t0.elapsed().as_secs_f64();
    Ok(n as f64 / cpu.max(1e-3))
}

pub(crate) fn run_alone(root: &Path, full: bool) -> Result<()> {
    let started = Instant::now();
    let window = Duration::from_secs(if full { 40 } else { 15 });
    let secs = if full { 10 } else { 4 };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    crate::run(Command::new(cargo).args(["build", "--release", "-p", "sluice"]))?;
    let dir = ensure_ladder(root)?;
    let load = |f: &str| -> Result<Arc<Media>> { Ok(Arc::new(crate::flv::load(&dir.join(f))?)) };
    let rungs: Vec<Arc<Media>> = LADDER
        .iter()
        .map(|(s, ..)| load(&format!("{s}.flv")))
        .collect::<Result<_>>()?;
    let mt = load("mt.flv")?;
    let group = ["hls.variant_suffixes=[\"_hi\",\"_mid\",\"_lo\"]"];
    let named = |base: &str| -> Vec<(String, Arc<Media>)> {
        LADDER
            .iter()
            .zip(&rungs)
            .map(|((s, ..), m)| (format!("{base}{s}"), m.clone()))
            .collect()
    };
    let lists = |names: &[String]| -> Vec<String> {
        names
            .iter()
            .map(|n| format!("/live/{n}/index.m3u8"))
            .collect()
    };

    let (_, _, one) = measure(
        root,
        &[],
        &[("one".into(), rungs[0].clone())],
        &lists(&["one".into()]),
        window,
    )?;
    let flat = named("cam");
    let flat_names: Vec<String> = flat.iter().map(|(n, _)| n.clone()).collect();
    let (_, _, three) = measure(root, &[], &flat, &lists(&flat_names), window)?;
    let (s, p, suffix) = measure(root, &group, &flat, &lists(&flat_names), window)?;
    let suffix_mv = requests_per_cpu_second(&s, "/live/cam/index.m3u8", secs, suffix.cpu_per_s)?;
    let suffix_media =
        requests_per_cpu_second(&s, "/live/cam_hi/index.m3u8", secs, suffix.cpu_per_s)?;
    drop(p);
    drop(s);
    let mt_names: Vec<String> = (0..3).map(|k| format!("mt~v{k}")).collect();
    let (s, p, multi) = measure(root, &[], &[("mt".into(), mt)], &lists(&mt_names), window)?;
    let mt_mv = requests_per_cpu_second(&s, "/live/mt/index.m3u8", secs, multi.cpu_per_s)?;
    let mt_cmaf_mv = requests_per_cpu_second(&s, "/live/mt/cmaf.m3u8", secs, multi.cpu_per_s)?;
    drop(p);
    drop(s);

    let mut sec = crate::bench_report::PhaseSection::new(
        "abr",
        "ABR (renditions of a ladder)",
        full,
        started,
        &format!("one release `sluice` per shape, paced publishers replaying a three-rung ladder encoded once by FFmpeg 9 (640x360 1.5 Mbit/s, 480x270 0.8 Mbit/s, 320x180 0.3 Mbit/s H.264, keyframes every 2 s, AAC 64 kbit/s; the rungs alone and as one multitrack FLV); each shape measured for {} s after every playlist listed three segments; both containers written (TS and CMAF with LL-HLS parts).", window.as_secs()),
    );
    sec.push_str("| Shape | Renditions | CPU (% of a core) | CPU per rendition | Memory growth (MiB) | Memory per rendition (MiB) |\n|---|---:|---:|---:|---:|---:|\n");
    for (name, n, c) in [
        ("Top rung alone (single stream)", 1.0, &one),
        ("Three rungs, three unrelated streams", 3.0, &three),
        ("Suffix group of three publishes", 3.0, &suffix),
        ("One multitrack publish, three video tracks", 3.0, &multi),
    ] {
        sec.push_str(&format!(
            "| {name} | {n:.0} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            c.cpu_per_s * 100.0,
            c.cpu_per_s * 100.0 / n,
            c.rss_mib,
            c.rss_mib / n
        ));
    }
    sec.push_str("\n| Playlist requested | Requests per CPU-second |\n|---|---:|\n");
    for (what, v) in [
        ("Suffix group multivariant `cam/index.m3u8`", suffix_mv),
        (
            "Its top rendition's media playlist `cam_hi/index.m3u8`",
            suffix_media,
        ),
        ("Multitrack multivariant `mt/index.m3u8`", mt_mv),
        ("Multitrack multivariant `mt/cmaf.m3u8`", mt_cmaf_mv),
    ] {
        sec.push_str(&format!("| {what} | {v:.0} |\n"));
    }
    sec.push_str(&format!(
        "\n- Per rendition is the shape's total divided by three; the single-stream row is the top (most expensive) rung, so the three-rung rows per rendition are expected below it.\n- A multitrack publish costs one remuxer per video track, each reading every tag of the publish, plus the publish's own remuxer for the statistics.\n- Requests are back-to-back on one keep-alive connection for {secs} s each, while the shape keeps publishing; the shape's ingest CPU rate is subtracted.\n- Memory growth is resident set size after the window minus that of the idle process: segments and parts held for both containers (6-segment window), remuxer state, metrics.\n"
    ));
    sec.write(root)
}
