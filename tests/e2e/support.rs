//! Shared helpers for the end-to-end tests: start the real `sluice` binary, real publishers
//! (ffmpeg), real players (ffmpeg/ffprobe, hls.js in headless Chromium) and a real CDN (Varnish).
//!
//! A missing tool is a recorded skip on a developer machine (`test_support`, counted and listed
//! by `cargo xtask test`) and a failure when `CI` is set.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// True if `tool` is on PATH (or in /usr/sbin). Without it: a recorded skip, or a failure in CI.
pub fn require(tool: &str) -> bool {
    test_support::require_tool(tool)
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn node_modules() -> Option<PathBuf> {
    let p = repo_root().join("tests/browser/node_modules");
    let found = p.join("hls.js").is_dir() && p.join("playwright-core").is_dir();
    test_support::require(
        found,
        "tests/browser/node_modules (hls.js, playwright-core)",
    )
    .then_some(p)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `sluice` process; killed on drop.
pub struct Sluice {
    pub child: Child,
    pub rtmp_port: u16,
    pub http_port: u16,
    pub log: PathBuf,
}

impl Sluice {
    pub fn start(extra: &[&str]) -> Sluice {
        let rtmp_port = free_port();
        let http_port = free_port();
        let log = std::env::temp_dir().join(format!("sluice-e2e-{rtmp_port}.log"));
        let logf = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["--rtmp", &format!("127.0.0.1:{rtmp_port}")])
            .args(["--http", &format!("127.0.0.1:{http_port}")])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .expect("start sluice");
        let s = Sluice {
            child,
            rtmp_port,
            http_port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if http_get(&s.http(""), "/healthz").is_ok_and(|r| r.status == 200) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("sluice did not become healthy; log:\n{}", s.log_text());
    }

    pub fn rtmp(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{path}", self.rtmp_port)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        http_get(&self.http(""), path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Waits until the playlist lists at least `n` segments; returns its text.
    pub fn wait_for_segments(&self, path: &str, n: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(r) = http_get(&self.http(""), path) {
                if r.status == 200 {
                    last = r.text();
                    if segment_uris(&last).len() >= n {
                        return last;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "playlist {path} did not reach {n} segments in {timeout:?}; last:\n{last}\nlog:\n{}",
            self.log_text()
        );
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The log is kept when the test failed (its path is in the panic message).
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A directory removed when dropped; declare it after the process using it, so the process is
/// stopped first (fields drop in declaration order).
pub struct TempDirGuard(pub PathBuf);

impl Drop for TempDirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn segment_uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ffmpeg publishing a generated live stream (testsrc2 + sine, x264 with B-frames, AAC) in real time.
pub fn ffmpeg_publish(url: &str, seconds: u32, extra_out: &[&str]) -> Proc {
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-bf",
            "2",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "128k"])
        .args(extra_out)
        .args(["-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Proc(c.spawn().expect("start ffmpeg"))
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Minimal blocking HTTP/1.1 GET (Connection: close) so tests need no client library.
pub fn http_get(base: &str, path: &str) -> std::io::Result<HttpResponse> {
    http_request(base, "GET", path, &[])
}

pub fn http_request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpResponse> {
    use std::io::{Read, Write};
    let hostport = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(hostport)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

/// Runs hls.js in headless Chromium for `seconds` against `playlist_url`; returns the JSON report.
pub fn play_in_browser(
    playlist_url: &str,
    seconds: u32,
    page_url: Option<&str>,
) -> serde_json::Value {
    let nm = node_modules().expect("node_modules");
    let script = nm.parent().unwrap().join("play.mjs");
    let mut c = Command::new("node");
    c.arg(&script).arg(playlist_url).arg(seconds.to_string());
    if let Some(p) = page_url {
        c.arg(p);
    }
    let out: Output = c.output().expect("run node play.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "play.mjs failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        stdout
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("{}"))
        .unwrap_or_else(|e| panic!("bad report ({e}): {stdout}"))
}

/// Prometheus sample value for a metric line prefix (name plus labels), summed over matches.
pub fn metric(text: &str, name: &str, label_filter: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && label_filter.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Codec names of the top-level streams in `ffprobe -show_entries stream=codec_name -of json`
/// output (program-level duplicates are not counted).
pub fn ffprobe_codecs(json: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(json).unwrap_or_default();
    v["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["codec_name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The sorted codec names ffprobe sees in `input` (a file or URL).
pub fn probe_codecs(input: impl AsRef<std::ffi::OsStr>) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "json",
        ])
        .arg(input)
        .output()
        .expect("run ffprobe");
    let mut codecs = ffprobe_codecs(&out.stdout);
    codecs.sort();
    codecs
}

/// Decodes `input` with ffmpeg (`extra` input-side limits such as `-t 6` go after it) and returns
/// what it reported at error level; empty means a clean decode.
pub fn ffmpeg_decode_errors(input: impl AsRef<std::ffi::OsStr>, extra: &[&str]) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(input)
        .args(extra)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let errors = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() && errors.is_empty() {
        return format!("ffmpeg exited with {}", out.status);
    }
    errors
}
