//! RTMPS with real peers: ffmpeg and GStreamer `rtmp2sink` publish over TLS with a self-signed
//! certificate, rtmpdump (librtmp: no SNI) plays, and a certificate swap on disk is served to
//! new connections while the publish continues.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// The subject of the certificate served on `port` (no SNI: an IP literal).
fn served_subject(port: u16) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} </dev/null 2>/dev/null | openssl x509 -noout -subject"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn new_pair(dir: &Path, cn: &str) {
    let (cert_tmp, key_tmp) = (dir.join("new-cert.pem"), dir.join("new-key.pem"));
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", &format!("/CN={cn}")])
        .arg("-keyout")
        .arg(&key_tmp)
        .arg("-out")
        .arg(&cert_tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    // Renames: each file changes atomically (a half-swapped pair is refused and retried).
    std::fs::rename(&key_tmp, dir.join("key.pem")).unwrap();
    std::fs::rename(&cert_tmp, dir.join("cert.pem")).unwrap();
}

#[test]
fn rtmps_publish_play_and_certificate_swap() {
    if !require("ffmpeg") || !require("ffprobe") || !require("rtmpdump") || !require("openssl") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("sluice-rtmps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _ = std::fs::remove_file(dir.join("cert.pem"));
    let _ = std::fs::remove_file(dir.join("key.pem"));
    let port = free_port();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let s = Sluice::start(&[
        "--rtmps",
        &format!("127.0.0.1:{port}"),
        "--set",
        "rtmps.self_signed=true",
        "--set",
        &format!("rtmps.cert_file={}", cert.display()),
        "--set",
        &format!("rtmps.key_file={}", key.display()),
        "--set",
        "rtmps.reload_interval_ms=200",
    ]);
    assert!(cert.exists() && key.exists(), "self-signed pair written");

    // ffmpeg publishes over TLS (tls_verify defaults to 0).
    let url = format!("rtmps://127.0.0.1:{port}/live/secure");
    let _pub = ffmpeg_publish(&url, 60, &[]);
    s.wait_for_segments("/live/secure/index.m3u8", 2, Duration::from_secs(40));
    assert_eq!(
        probe_codecs(s.http("/live/secure/index.m3u8")),
        vec!["aac", "h264"]
    );

    // rtmpdump plays over RTMPS without SNI.
    let flv = dir.join("play.flv");
    let out = Command::new("timeout")
        .args([
            "60", "rtmpdump", "-r", &url, "-v", "-B", "3", "-m", "20", "-o",
        ])
        .arg(&flv)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 2)),
        "rtmpdump RTMPS: {:?} {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::metadata(&flv).map_or(0, |m| m.len()) > 20_000);

    // GStreamer rtmp2sink publishes over RTMPS, accepting the self-signed certificate.
    if require("gst-launch-1.0") {
        let mut gst = Proc(
            Command::new("gst-launch-1.0")
                .args(["-e", "videotestsrc", "is-live=true", "num-buffers=300"])
                .args(["!", "video/x-raw,width=320,height=180,framerate=30/1"])
                .args(["!", "x264enc", "tune=zerolatency", "key-int-max=30"])
                .args(["!", "h264parse", "!", "flvmux", "streamable=true"])
                .args(["!", "rtmp2sink"])
                .arg(format!("location=rtmps://127.0.0.1:{port}/live/gst"))
                .arg("tls-validation-flags=0")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        s.wait_for_segments("/live/gst/index.m3u8", 2, Duration::from_secs(40));
        let _ = gst.0.wait();
    }

    // Certificate swap on disk: new connections get the new certificate, the publish goes on.
    let before = served_subject(port);
    assert!(!before.is_empty(), "no certificate served without SNI");
    let segments_before = segment_uris(&s.get("/live/secure/index.m3u8").text());
    new_pair(&dir, "swapped.sluice.test");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = served_subject(port);
        if now.contains("swapped.sluice.test") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new certificate never served: {now}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A broken file keeps the current pair.
    std::fs::write(dir.join("cert.pem"), b"not a certificate").unwrap();
    let m = loop {
        let m = s.get("/metrics").text();
        if metric(&m, "sluice_rtmps_cert_reloads_total", &["error"]) >= 1.0 {
            break m;
        }
        assert!(Instant::now() < deadline, "broken pair never tried");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(served_subject(port).contains("swapped.sluice.test"), "{m}");
    // The publisher was never dropped: its playlist kept growing past the swap.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = segment_uris(&s.get("/live/secure/index.m3u8").text());
        if now.iter().any(|u| !segments_before.contains(u)) {
            break;
        }
        assert!(Instant::now() < deadline, "publish stalled after the swap");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !s.log_text().contains("RTMP publisher kicked"),
        "no session dropped"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
