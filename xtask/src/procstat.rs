//! Server-side resource accounting from procfs: CPU as utime+stime (`/proc/PID/stat` fields 14
//! and 15, in clock ticks), resident memory as `VmRSS` from `/proc/PID/status`.
use anyhow::{Context, Result};

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux configuration we run on).
const TICKS_PER_SECOND: f64 = 100.0;

fn stat_fields(pid: u32) -> Result<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces; everything after the last ')' is space separated,
    // starting at field 3 (state).
    let rest = &s[s.rfind(')').context("bad stat")? + 1..];
    Ok(rest.split_whitespace().map(str::to_owned).collect())
}

/// User + system CPU seconds of one process (all its threads).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let f = stat_fields(pid)?;
    let utime: u64 = f[11].parse()?;
    let stime: u64 = f[12].parse()?;
    Ok((utime + stime) as f64 / TICKS_PER_SECOND)
}

pub fn rss_bytes(pid: u32) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    let kb: u64 = line.split_whitespace().nth(1).context("VmRSS")?.parse()?;
    Ok(kb * 1024)
}

/// Direct children of `pid` (e.g. nginx workers of the master), found via the ppid in /proc/*/stat.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Ok(f) = stat_fields(child) {
                if f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
                    out.push(child);
                }
            }
        }
    }
    out.sort_unstable();
    out
}

pub fn alive(pid: u32) -> bool {
    stat_fields(pid).is_ok_and(|f| f.first().is_some_and(|s| s != "Z" && s != "X"))
}

/// Sum of CPU seconds / RSS over a set of processes.
pub fn cpu_sum(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|p| cpu_seconds(*p).ok()).sum()
}

pub fn rss_sum(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|p| rss_bytes(*p).ok()).sum()
}
