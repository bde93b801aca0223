//! The shipped Grafana dashboard (`docker/grafana/dashboards/sluice.json`) against a real
//! Prometheus (Debian's `prometheus`, started here on a free port with a temporary config and
//! data directory) scraping a Sluice with a live ffmpeg publish: every PromQL expression in the
//! dashboard, and every template-variable query, must return data through Prometheus' HTTP API
//! (<https://prometheus.io/docs/prometheus/latest/querying/api/>).

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn dashboard() -> serde_json::Value {
    let path = repo_root().join("docker/grafana/dashboards/sluice.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `targets[].expr` of every panel (rows included), with the panel title.
fn exprs(dash: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((p["title"].as_str().unwrap_or("").to_string(), e.to_string()));
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// Grafana's variables, set the way an operator looking at the test stream would set them.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "15s")
        .replace("$app", "live")
        .replace("$stream", "mon")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /api/v1/<what>` on Prometheus; the `data` member of a successful answer.
fn prom(base: &str, what: &str) -> serde_json::Value {
    let r = http_get(base, &format!("/api/v1/{what}"))
        .unwrap_or_else(|e| panic!("prometheus {what}: {e}"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    assert_eq!(v["status"], "success", "prometheus {what}: {}", r.text());
    v["data"].clone()
}

fn query(base: &str, expr: &str) -> Vec<serde_json::Value> {
    prom(base, &format!("query?query={}", encode(expr)))["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

struct Prometheus {
    proc: Proc,
    base: String,
    dir: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.proc.0.kill();
        let _ = self.proc.0.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_prometheus(scrape_target: &str) -> Prometheus {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("sluice-prometheus-{port}"));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    // The shipped config with the compose service name pointed at the test's Sluice and a 1 s
    // scrape interval, so the test waits seconds rather than minutes.
    let shipped =
        std::fs::read_to_string(repo_root().join("docker/prometheus/prometheus.yml")).unwrap();
    let cfg = shipped
        .replace("\"sluice:8080\"", &format!("\"{scrape_target}\""))
        .replace("scrape_interval: 5s", "scrape_interval: 1s");
    assert_ne!(
        cfg, shipped,
        "docker/prometheus/prometheus.yml changed shape"
    );
    std::fs::write(dir.join("prometheus.yml"), cfg).unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    let p = Prometheus {
        proc: Proc(child),
        base: format!("http://127.0.0.1:{port}"),
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if http_get(&p.base, "/-/ready").is_ok_and(|r| r.status == 200) {
            return p;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "prometheus did not become ready: {}",
        std::fs::read_to_string(p.dir.join("prometheus.log")).unwrap_or_default()
    );
}

/// Makes Sluice count one of each refusal the dashboard's refusal panels show: a duplicate
/// publish (`sluice_publish_refused_total`), a bad handshake
/// (`sluice_rtmp_connection_errors_total`) and a connection over `rtmp.max_connections`
/// (`sluice_rtmp_refused_total`).
fn provoke_refusals(s: &Sluice, max_connections: usize) {
    let mut dup = ffmpeg_publish(&s.rtmp("live/mon"), 5, &[]);
    let _ = dup.0.wait();
    let mut bad = TcpStream::connect(("127.0.0.1", s.rtmp_port)).unwrap();
    let _ = bad.write_all(&[0x09; 1537]);
    // The publisher holds one connection; fill the rest and one more.
    let idle: Vec<TcpStream> = (0..max_connections)
        .map(|_| TcpStream::connect(("127.0.0.1", s.rtmp_port)).unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let names = [
        "sluice_publish_refused_total",
        "sluice_rtmp_connection_errors_total",
        "sluice_rtmp_refused_total",
    ];
    loop {
        let m = s.get("/metrics").text();
        let missing: Vec<_> = names.iter().filter(|n| metric(&m, n, &[]) < 1.0).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "refusals not counted: {missing:?}\n{m}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(idle);
    drop(bad);
}

#[test]
fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    if !require("ffmpeg") || !require("prometheus") {
        return;
    }
    let max_connections = 4;
    let s = Sluice::start(&["--set", &format!("rtmp.max_connections={max_connections}")]);
    let _pub = ffmpeg_publish(&s.rtmp("live/mon"), 120, &[]);
    s.wait_for_segments("/live/mon/index.m3u8", 2, Duration::from_secs(30));
    provoke_refusals(&s, max_connections);
    // Viewers: a few playlist and segment requests, and one 404.
    let pl = s.get("/live/mon/index.m3u8").text();
    if let Some(seg) = segment_uris(&pl).first() {
        s.get(&format!("/live/mon/{seg}"));
    }
    assert_eq!(s.get("/live/none/index.m3u8").status, 404);

    let p = start_prometheus(&format!("127.0.0.1:{}", s.http_port));
    // Wait for the scrapes, not for a duration: enough samples for 15 s rate windows.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = query(
            &p.base,
            "count_over_time(sluice_streams_live[1m]) >= 12 and on() up{job=\"sluice\"} == 1",
        );
        if !r.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not scrape sluice: {}",
            std::fs::read_to_string(p.dir.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let dash = dashboard();
    let all = exprs(&dash);
    assert!(all.len() >= 20, "dashboard has {} queries", all.len());
    let mut empty = Vec::new();
    for (title, expr) in &all {
        let q = substitute(expr);
        let r = query(&p.base, &q);
        if r.is_empty() {
            empty.push(format!("{title}: {q}"));
        }
    }
    // Template variables: label_values(METRIC{...}, LABEL) must list the test stream.
    for v in dash["templating"]["list"].as_array().unwrap() {
        let Some(def) = v["definition"].as_str() else {
            continue;
        };
        let inner = def
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("unexpected variable query {def}"));
        let (selector, label) = inner.rsplit_once(',').unwrap();
        let data = prom(
            &p.base,
            &format!(
                "label/{}/values?match[]={}",
                label.trim(),
                encode(&substitute(selector.trim()))
            ),
        );
        let values: Vec<&str> = data
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x.as_str())
            .collect();
        let want = if label.trim() == "app" { "live" } else { "mon" };
        if !values.contains(&want) {
            empty.push(format!("variable {}: {def} -> {values:?}", v["name"]));
        }
    }
    assert!(
        empty.is_empty(),
        "{} of {} dashboard queries returned no data:\n{}",
        empty.len(),
        all.len(),
        empty.join("\n")
    );
}

/// Without any tool: the dashboard is well formed, and every metric it names is one Sluice
/// registers (a string literal in `crates/`), so a renamed metric cannot leave a dead panel.
#[test]
fn dashboard_names_only_metrics_the_code_exports() {
    let dash = dashboard();
    let mut ids = std::collections::HashSet::new();
    fn all_panels(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
        for p in v.as_array().into_iter().flatten() {
            out.push(p.clone());
            all_panels(&p["panels"], out);
        }
    }
    let mut panels = Vec::new();
    all_panels(&dash["panels"], &mut panels);
    for p in &panels {
        assert!(ids.insert(p["id"].as_i64().unwrap()), "duplicate panel id");
    }
    let mut source = String::new();
    let mut stack = vec![repo_root().join("crates")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() && !path.ends_with("target") && !path.ends_with("fuzz") {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                source.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for (_, expr) in exprs(&dash) {
        let mut rest = expr.as_str();
        while let Some(i) = rest.find("sluice_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[i + name.len()..];
            names.insert(name);
        }
    }
    assert!(names.len() >= 15, "{names:?}");
    let unknown: Vec<_> = names
        .iter()
        .filter(|n| {
            // A histogram is exported as `<name>_bucket`, `_sum` and `_count`.
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n);
            !source.contains(&format!("\"{n}\"")) && !source.contains(&format!("\"{base}\""))
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "dashboard uses metrics no crate registers: {unknown:?}"
    );
}
