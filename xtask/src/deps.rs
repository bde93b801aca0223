//! Installs what the test suite needs, idempotently: Debian packages (ffmpeg, GStreamer, Chromium,
//! Varnish, nginx with the RTMP module for the benchmark anchor, docker-compose for validation),
//! npm packages (hls.js, playwright-core) and cargo-fuzz. With `CI=true` anything that is still
//! missing afterwards is a hard failure.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use crate::{in_ci, run};

/// (command that must exist, Debian packages that provide it)
const TOOLS: &[(&str, &[&str])] = &[
    ("ffmpeg", &["ffmpeg"]),
    ("ffprobe", &["ffmpeg"]),
    (
        "gst-launch-1.0",
        &[
            "gstreamer1.0-tools",
            "gstreamer1.0-plugins-base",
            "gstreamer1.0-plugins-good",
            "gstreamer1.0-plugins-bad",
            "gstreamer1.0-plugins-ugly",
            "gstreamer1.0-libav",
        ],
    ),
    ("chromium", &["chromium"]),
    ("varnishd", &["varnish"]),
    ("nginx", &["nginx", "libnginx-mod-rtmp"]),
    ("docker-compose", &["docker-compose"]),
    ("wrk", &["wrk"]),
    ("node", &["nodejs"]),
    // librtmp's player/publisher (RTMP play tests), the fleet registry and the monitoring stack.
    ("rtmpdump", &["rtmpdump"]),
    ("redis-server", &["redis-server"]),
    ("prometheus", &["prometheus"]),
    ("npm", &["npm"]),
];

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
        || Path::new("/usr/sbin").join(cmd).exists()
}

fn have_gst_element(name: &str) -> bool {
    Command::new("gst-inspect-1.0")
        .arg(name)
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn ensure(root: &Path) -> Result<()> {
    let mut packages: Vec<&str> = Vec::new();
    for (cmd, pkgs) in TOOLS {
        if !have(cmd) {
            packages.extend_from_slice(pkgs);
        }
    }
    if have("gst-launch-1.0") && !(have_gst_element("rtmp2sink") && have_gst_element("rtmpsink")) {
        packages.extend_from_slice(&["gstreamer1.0-plugins-bad", "gstreamer1.0-plugins-good"]);
    }
    if !Path::new("/usr/lib/nginx/modules/ngx_rtmp_module.so").exists() {
        packages.push("libnginx-mod-rtmp");
    }
    packages.sort();
    packages.dedup();
    if !packages.is_empty() {
        eprintln!("xtask: installing Debian packages: {}", packages.join(" "));
        let apt = |args: &[&str]| {
            let mut c = Command::new("apt-get");
            c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
            run(&mut c)
        };
        let r = apt(&["update", "-qq"]).and_then(|_| {
            let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
            args.extend(packages.iter().copied());
            apt(&args)
        });
        if let Err(e) = r {
            if in_ci() {
                return Err(e);
            }
            eprintln!(
                "xtask: warning: could not install packages ({e}); tests needing them will skip"
            );
        }
    }
    ensure_npm(root)?;
    ensure_ffmpeg9()?;
    ensure_cargo_fuzz()?;
    let missing: Vec<&str> = TOOLS.iter().map(|(c, _)| *c).filter(|c| !have(c)).collect();
    if !missing.is_empty() {
        if in_ci() {
            bail!(
                "required tools missing after install: {}",
                missing.join(", ")
            );
        }
        eprintln!("xtask: warning: missing tools: {}", missing.join(", "));
    }
    Ok(())
}

fn ensure_npm(root: &Path) -> Result<()> {
    let dir = root.join("tests/browser");
    let marker = dir.join("node_modules/hls.js/package.json");
    let marker2 = dir.join("node_modules/playwright-core/package.json");
    if marker.exists() && marker2.exists() {
        return Ok(());
    }
    let mut c = Command::new("npm");
    c.current_dir(&dir)
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
    match run(&mut c) {
        Ok(()) => Ok(()),
        Err(e) if !in_ci() => {
            eprintln!("xtask: warning: npm ci failed ({e}); browser tests will skip");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The static FFmpeg 9 of the PyPI package `imageio-ffmpeg`: the Enhanced RTMP publisher (HEVC,
/// AV1, VP9, Opus, multitrack) that Debian's FFmpeg 5.1 is not.
pub fn ffmpeg9_path() -> Option<String> {
    test_support::find_ffmpeg9().map(|p| p.to_string_lossy().into_owned())
}

fn ensure_ffmpeg9() -> Result<()> {
    if ffmpeg9_path().is_some() {
        return Ok(());
    }
    let r = run(Command::new("python3").args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--root-user-action=ignore",
        "imageio-ffmpeg",
    ]));
    match (r, ffmpeg9_path()) {
        (_, Some(_)) => Ok(()),
        (Err(e), None) if in_ci() => Err(e),
        (Ok(()), None) if in_ci() => bail!("imageio-ffmpeg installed but its ffmpeg is missing"),
        (_, None) => {
            eprintln!(
                "xtask: warning: FFmpeg 9 (imageio-ffmpeg) unavailable; E-RTMP tests will skip"
            );
            Ok(())
        }
    }
}

fn ensure_cargo_fuzz() -> Result<()> {
    let ok = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Ok(());
    }
    let r = run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]));
    match r {
        Err(e) if in_ci() => Err(e),
        Err(e) => {
            eprintln!("xtask: warning: cargo-fuzz unavailable ({e})");
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}
