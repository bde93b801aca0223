//! Starting and stopping the servers under test: Sluice (release build) and the nginx-rtmp anchor
//! (own nginx.conf in a temp dir, HLS on tmpfs, run in the foreground as our child).
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::http_client::HttpConn;
use crate::procstat;

pub const NGINX_RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

pub fn free_addr() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn wait_listening(addr: SocketAddr, child: &mut Child, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait()? {
            bail!("{what} exited during start-up: {st}");
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} did not listen on {addr} within 15 s")
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Which server a measurement is about.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Sluice,
    Nginx,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sluice => "Sluice",
            Kind::Nginx => "nginx-rtmp",
        }
    }
}

pub struct Server {
    pub kind: Kind,
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    child: Child,
    /// nginx: the tmpfs directory holding HLS files (removed on drop).
    hls_dir: Option<PathBuf>,
    conf_dir: Option<PathBuf>,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The processes whose CPU and memory count: nginx master + workers, or Sluice.
    pub fn pids(&self) -> Vec<u32> {
        let mut p = vec![self.pid()];
        if self.kind == Kind::Nginx {
            p.extend(procstat::children(self.pid()));
        }
        p
    }

    pub fn cpu_seconds(&self) -> f64 {
        procstat::cpu_sum(&self.pids())
    }

    pub fn rss_bytes(&self) -> u64 {
        procstat::rss_sum(&self.pids())
    }

    /// Segment bytes the server holds: Sluice's `sluice_edge_bytes_held` gauge, or the bytes in
    /// nginx-rtmp's tmpfs HLS directory.
    pub fn held_bytes(&self) -> Result<u64> {
        match self.kind {
            Kind::Nginx => Ok(dir_bytes(self.hls_dir.as_ref().unwrap())),
            Kind::Sluice => {
                let m = HttpConn::new(self.http).get("/metrics")?;
                let text = String::from_utf8_lossy(&m.body);
                metric_sum(&text, "sluice_edge_bytes_held")
                    .context("sluice_edge_bytes_held not in /metrics")
            }
        }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn start_nginx(root: &Path, tag: &str) -> Result<Server> {
        let rtmp = free_addr()?;
        let http = free_addr()?;
        let conf_dir = root.join("target/bench").join(format!("nginx-{tag}"));
        let hls_dir = PathBuf::from(format!(
            "/dev/shm/sluice-bench-{}-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&hls_dir);
        std::fs::create_dir_all(hls_dir.join("live"))?;
        std::fs::create_dir_all(&conf_dir)?;
        let conf = format!(
            r#"load_module {NGINX_RTMP_MODULE};
worker_processes 1;
pid {conf}/nginx.pid;
error_log {conf}/error.log warn;
events {{ worker_connections 8192; }}
rtmp {{
    server {{
        listen {rtmp};
        chunk_size 4096;
        max_message 16M;
        application live {{
            live on;
            hls on;
            hls_path {hls}/live;
            hls_nested on;
            hls_fragment 2s;
            hls_playlist_length 12s;
        }}
    }}
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    keepalive_timeout 65;
    client_body_temp_path {conf}/tmp;
    proxy_temp_path {conf}/tmp;
    fastcgi_temp_path {conf}/tmp;
    uwsgi_temp_path {conf}/tmp;
    scgi_temp_path {conf}/tmp;
    types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
    server {{
        listen {http};
        # CORS so hls.js in a browser page (the LL-HLS latency bench) can load it too.
        location / {{ root {hls}; add_header Cache-Control no-cache; add_header Access-Control-Allow-Origin *; }}
    }}
}}
"#,
            conf = conf_dir.display(),
            hls = hls_dir.display(),
        );
        std::fs::write(conf_dir.join("nginx.conf"), conf)?;
        let mut child = Command::new("nginx")
            .arg("-p")
            .arg(&conf_dir)
            .arg("-e")
            .arg(conf_dir.join("error.log"))
            .arg("-c")
            .arg(conf_dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        wait_listening(rtmp, &mut child, "nginx")?;
        wait_listening(http, &mut child, "nginx")?;
        Ok(Server {
            kind: Kind::Nginx,
            rtmp,
            http,
            child,
            hls_dir: Some(hls_dir),
            conf_dir: Some(conf_dir),
        })
    }

    pub fn start_sluice(root: &Path, sets: &[&str]) -> Result<Server> {
        let rtmp = free_addr()?;
        let http = free_addr()?;
        let mut cmd = Command::new(root.join("target/release/sluice"));
        cmd.arg("--rtmp")
            .arg(rtmp.to_string())
            .arg("--http")
            .arg(http.to_string());
        for s in [
            "hls.target_duration_ms=2000",
            "hls.window_segments=6",
            "log.level=warn",
        ]
        .iter()
        .chain(sets)
        {
            cmd.arg("--set").arg(s);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .spawn()
            .context("starting target/release/sluice")?;
        wait_listening(rtmp, &mut child, "sluice")?;
        wait_listening(http, &mut child, "sluice")?;
        Ok(Server {
            kind: Kind::Sluice,
            rtmp,
            http,
            child,
            hls_dir: None,
            conf_dir: None,
        })
    }

    pub fn playlist_path(stream: &str) -> String {
        format!("/live/{stream}/index.m3u8")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pids = self.pids();
        signal(self.pid(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // nginx workers outlive a killed master; end them by id.
        for p in pids.into_iter().skip(1) {
            if procstat::alive(p) {
                signal(p, "KILL");
            }
        }
        if let Some(d) = &self.hls_dir {
            let _ = std::fs::remove_dir_all(d);
        }
        let _ = &self.conf_dir;
    }
}

pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_bytes(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Sum of all samples of a Prometheus metric (any labels).
pub fn metric_sum(text: &str, name: &str) -> Option<u64> {
    let mut found = None;
    for l in text.lines() {
        if l.starts_with('#') {
            continue;
        }
        let Some(rest) = l.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let v: f64 = rest.rsplit(' ').next()?.parse().ok()?;
        *found.get_or_insert(0) += v as u64;
    }
    found
}

pub fn nginx_version() -> String {
    Command::new("nginx")
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

pub fn nginx_rtmp_module_version() -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "libnginx-mod-rtmp"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}
