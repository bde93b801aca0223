//! Connection caps and log rate limits of the RTMP driver: the global and per-IP connection
//! caps enforced at accept (shared by RTMP, RTMPS and RTMPT), and the process-wide rate limit on
//! per-connection error logs. No protocol state; the RTMP specification (Adobe RTMP 1.0 §5)
//! leaves admission to the server.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Global and per-IP connection caps.
#[derive(Debug)]
pub(super) struct ConnectionLimiter {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

pub(super) struct Permit {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
}

impl ConnectionLimiter {
    pub(super) fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            state: Mutex::new((0, HashMap::new())),
        }
    }

    pub(super) fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, &'static str> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_ip) = &mut *guard;
        if *total >= self.max_total {
            return Err("max_connections");
        }
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            if *n == 0 {
                per_ip.remove(&ip);
            }
            return Err("max_connections_per_ip");
        }
        *n += 1;
        *total += 1;
        metrics::gauge!("sluice_rtmp_connections_active").set(*total as f64);
        Ok(Permit {
            limiter: self.clone(),
            ip,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut guard = self.limiter.state.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_ip) = &mut *guard;
        *total = total.saturating_sub(1);
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
        metrics::gauge!("sluice_rtmp_connections_active").set(*total as f64);
    }
}

/// Lines per second for per-connection error logs; the rest are counted and reported with the
/// next line that is written.
const ERROR_LOGS_PER_SECOND: u64 = 10;

pub(super) static ERROR_LOG_LIMIT: LogLimiter = LogLimiter::new();

/// A tiny process-wide log rate limiter (fixed one-second windows).
pub(super) struct LogLimiter {
    window_s: std::sync::atomic::AtomicU64,
    in_window: std::sync::atomic::AtomicU64,
    suppressed: std::sync::atomic::AtomicU64,
}

impl LogLimiter {
    pub(super) const fn new() -> Self {
        Self {
            window_s: std::sync::atomic::AtomicU64::new(0),
            in_window: std::sync::atomic::AtomicU64::new(0),
            suppressed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(lines suppressed since the last admitted one)` if this line may be written.
    pub(super) fn admit(&self) -> Option<u64> {
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.window_s.swap(now_s, Ordering::Relaxed) != now_s {
            self.in_window.store(0, Ordering::Relaxed);
        }
        if self.in_window.fetch_add(1, Ordering::Relaxed) < ERROR_LOGS_PER_SECOND {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}
