//! Read coalescing for publishers on a bare TCP socket (see the [`super`] module docs): the
//! receive low watermark (`SO_RCVLOWAT`, socket(7)) the driver asks the kernel for, and the tick,
//! aligned across every connection of the process, that picks up small messages.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

/// A tick of `period` on a grid shared by every connection of the process, so that the timer
/// wheel fires the ticks of all coalescing readers together.
pub(super) fn aligned_interval(period: Duration) -> tokio::time::Interval {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let period_ns = period.as_nanos().max(1);
    let since = Instant::now().saturating_duration_since(epoch).as_nanos();
    let next = epoch + Duration::from_nanos(((since / period_ns + 1) * period_ns) as u64);
    let mut tick = tokio::time::interval_at(next, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick
}

/// The receive low watermark the driver wants the kernel to apply (see the module docs).
pub(super) struct Watermark {
    /// The value last set on the socket.
    pub(super) current: usize,
    /// Set after a failed `setsockopt`: coalescing is off for this connection.
    pub(super) unsupported: bool,
}

impl Watermark {
    pub(super) fn set(&mut self, socket: &TcpStream, bytes: usize) {
        // After a failure only the reset to 1 is still attempted.
        if bytes == self.current || (self.unsupported && bytes != 1) {
            return;
        }
        match sockopt::set_recv_low_watermark(socket, bytes) {
            Ok(()) => self.current = bytes,
            Err(e) => {
                tracing::debug!(error = %e, "SO_RCVLOWAT not available; reading on every arrival");
                self.unsupported = true;
            }
        }
    }
}

pub(super) async fn next_tick(tick: &mut Option<tokio::time::Interval>) {
    match tick {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
