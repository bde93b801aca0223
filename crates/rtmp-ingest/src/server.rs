//! The tokio driver: the only module that touches sockets and clocks. It makes no protocol
//! decisions — it accepts (enforcing connection caps), reads into a buffer, feeds the
//! [`Session`], writes `poll_transmit` output, turns deadlines into `handle_timeout` calls and
//! relays events to the [`IngestHandler`] / [`MediaSink`].
//!
//! ```text
//! loop { flush transmit; drain events (authorize → accept/reject, tags → sink);
//!        select { socket read → handle_input | coalescing tick → read | deadline → handle_timeout
//!                 | shutdown | kick } }
//! ```
//!
//! **Read coalescing** (while publishing, `IngestConfig::read_coalesce` > 0). A publisher sends
//! ~75 messages a second (video frames and AAC frames); waking a thread for each one is most of
//! the CPU an idle-looking origin spends per stream. So the driver sets the socket's receive low
//! watermark (`SO_RCVLOWAT`, socket(7)) to the bytes still missing from the partly received
//! message ([`Session::bytes_to_complete_message`], a lower bound) or, at a message boundary, to
//! `read_batch_bytes`; the kernel then wakes the reader exactly when a large message (a
//! keyframe, which closes a segment) is complete, and small messages are picked up by a
//! non-blocking read on a tick aligned across all connections, so one timer wakeup serves them
//! all. End of stream and errors wake the reader regardless of the watermark.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::io::Read;
use std::sync::OnceLock;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::{Deadline, Fault, IngestError};
use crate::session::{Session, SessionEvent};
use crate::{CloseReason, IngestConfig, IngestHandler, MediaSink, PublishRequest};

const READ_BUFFER_BYTES: usize = 64 * 1024;
/// At most one "connection refused at accept" log line per this interval.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Process-wide counters (also exported through the `metrics` facade as `sluice_rtmp_*`).
#[derive(Debug, Default)]
pub struct IngestCounters {
    pub connections_total: AtomicU64,
    pub connections_active: AtomicU64,
    /// Connections closed at accept because a cap was reached.
    pub refused_total: AtomicU64,
    pub publishes_accepted: AtomicU64,
    pub publishes_refused: AtomicU64,
    /// Connections closed because of a peer protocol violation, wrong-time message, unsupported feature or limit.
    pub connection_errors: AtomicU64,
}

/// Serves RTMP on `listener` until `shutdown` is cancelled; then every connection is closed
/// (open publishes end with [`CloseReason::Shutdown`]) and this returns once all have finished.
pub async fn serve<H: IngestHandler>(
    listener: TcpListener,
    config: IngestConfig,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    serve_with_counters(
        listener,
        config,
        handler,
        shutdown,
        Arc::new(IngestCounters::default()),
    )
    .await
}

/// [`serve`] with caller-owned counters.
pub async fn serve_with_counters<H: IngestHandler>(
    listener: TcpListener,
    config: IngestConfig,
    handler: Arc<H>,
    shutdown: CancellationToken,
    counters: Arc<IngestCounters>,
) -> io::Result<()> {
    let config = Arc::new(config);
    let limiter = Arc::new(ConnectionLimiter::new(
        config.max_connections,
        config.max_connections_per_ip,
    ));
    let mut tasks = JoinSet::new();
    let mut next_connection_id: u64 = 0;
    let mut last_refusal_log: Option<Instant> = None;
    let mut refusals_not_logged: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "RTMP accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let permit = match limiter.try_acquire(peer.ip()) {
                    Ok(p) => p,
                    Err(reason) => {
                        counters.refused_total.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("sluice_rtmp_refused_total", "reason" => reason).increment(1);
                        let now = Instant::now();
                        if last_refusal_log.is_none_or(|t| now.duration_since(t) >= REFUSAL_LOG_INTERVAL) {
                            tracing::warn!(%peer, reason, suppressed = refusals_not_logged, "RTMP connection refused at accept");
                            last_refusal_log = Some(now);
                            refusals_not_logged = 0;
                        } else {
                            refusals_not_logged += 1;
                        }
                        drop(socket);
                        continue;
                    }
                };
                next_connection_id += 1;
                counters.connections_total.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("sluice_rtmp_connections_total").increment(1);
                let span = tracing::info_span!("rtmp", connection = next_connection_id, %peer);
                let conn = Connection {
                    id: next_connection_id,
                    peer,
                    config: config.clone(),
                    counters: counters.clone(),
                    shutdown: shutdown.clone(),
                    kick: CancellationToken::new(),
                };
                let handler = handler.clone();
                tasks.spawn(async move {
                    let _permit = permit;
                    conn.run(socket, handler).await;
                }.instrument(span));
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Global and per-IP connection caps.
#[derive(Debug)]
struct ConnectionLimiter {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

struct Permit {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
}

impl ConnectionLimiter {
    fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            state: Mutex::new((0, HashMap::new())),
        }
    }

    fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, &'static str> {
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

/// How a connection task ended.
enum End {
    Disconnected,
    Io(io::Error),
    Error(IngestError),
    Shutdown,
    Kicked,
    Requested(String),
}

struct Connection {
    id: u64,
    peer: SocketAddr,
    config: Arc<IngestConfig>,
    counters: Arc<IngestCounters>,
    shutdown: CancellationToken,
    kick: CancellationToken,
}

fn std_now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Lines per second for per-connection error logs; the rest are counted and reported with the
/// next line that is written.
const ERROR_LOGS_PER_SECOND: u64 = 10;

static ERROR_LOG_LIMIT: LogLimiter = LogLimiter::new();

/// A tiny process-wide log rate limiter (fixed one-second windows).
struct LogLimiter {
    window_s: std::sync::atomic::AtomicU64,
    in_window: std::sync::atomic::AtomicU64,
    suppressed: std::sync::atomic::AtomicU64,
}

impl LogLimiter {
    const fn new() -> Self {
        Self {
            window_s: std::sync::atomic::AtomicU64::new(0),
            in_window: std::sync::atomic::AtomicU64::new(0),
            suppressed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(lines suppressed since the last admitted one)` if this line may be written.
    fn admit(&self) -> Option<u64> {
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

/// A tick of `period` on a grid shared by every connection of the process, so that the timer
/// wheel fires the ticks of all coalescing readers together.
fn aligned_interval(period: Duration) -> tokio::time::Interval {
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
struct Watermark {
    /// The value last set on the socket.
    current: usize,
    /// Set after a failed `setsockopt`: coalescing is off for this connection.
    unsupported: bool,
}

impl Watermark {
    fn set(&mut self, socket: &TcpStream, bytes: usize) {
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

async fn next_tick(tick: &mut Option<tokio::time::Interval>) {
    match tick {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

impl Connection {
    async fn run<H: IngestHandler>(self, mut socket: TcpStream, handler: Arc<H>) {
        self.counters
            .connections_active
            .fetch_add(1, Ordering::Relaxed);
        let _ = socket.set_nodelay(true);
        let mut session = Session::new(self.id, self.config.clone(), std_now());
        let mut sink: Option<H::Sink> = None;
        let end = self
            .drive(&mut socket, &mut session, &mut sink, &*handler)
            .await;
        // Tags decoded before an error still reach the sink, in order.
        while let Some(ev) = session.poll_event() {
            if let (SessionEvent::Tag(tag), Some(s)) = (ev, sink.as_mut()) {
                s.on_tag(tag);
            }
        }
        let reason = match &end {
            End::Disconnected | End::Io(_) | End::Requested(_) => CloseReason::Disconnected,
            End::Error(IngestError::Timeout {
                deadline: Deadline::Idle,
                ..
            }) => CloseReason::IdleTimeout,
            End::Error(e) => CloseReason::ProtocolError(e.to_string()),
            End::Shutdown => CloseReason::Shutdown,
            End::Kicked => CloseReason::Kicked,
        };
        match &end {
            End::Disconnected => tracing::debug!("RTMP peer disconnected"),
            End::Io(e) => tracing::info!(error = %e, "RTMP connection I/O error"),
            End::Error(e) => {
                self.counters
                    .connection_errors
                    .fetch_add(1, Ordering::Relaxed);
                metrics::counter!("sluice_rtmp_connection_errors_total", "reason" => e.label())
                    .increment(1);
                // One line per refused connection, but at most ERROR_LOGS_PER_SECOND of them: a
                // flood of garbage must not turn into a flood of log lines.
                if let Some(suppressed) = ERROR_LOG_LIMIT.admit() {
                    match e.fault() {
                        Fault::Limit | Fault::Io => {
                            tracing::info!(error = %e, suppressed, "closing RTMP connection")
                        }
                        _ => {
                            tracing::warn!(error = %e, fault = ?e.fault(), suppressed, "closing RTMP connection")
                        }
                    }
                }
            }
            End::Shutdown => tracing::debug!("RTMP connection closed for shutdown"),
            End::Kicked => tracing::info!("RTMP publisher kicked"),
            End::Requested(r) => tracing::info!(reason = %r, "RTMP connection refused"),
        }
        if let Some(s) = sink.take() {
            s.on_close(session.publish_summary(std_now(), reason));
        }
        let _ = socket.shutdown().await;
        self.counters
            .connections_active
            .fetch_sub(1, Ordering::Relaxed);
    }

    async fn flush(&self, socket: &mut TcpStream, session: &mut Session) -> io::Result<()> {
        while let Some(bytes) = session.poll_transmit() {
            tokio::time::timeout(self.config.write_timeout, socket.write_all(&bytes))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "socket write stalled"))??;
        }
        Ok(())
    }

    async fn drive<H: IngestHandler>(
        &self,
        socket: &mut TcpStream,
        session: &mut Session,
        sink: &mut Option<H::Sink>,
        handler: &H,
    ) -> End {
        let mut buf = vec![0u8; READ_BUFFER_BYTES];
        let coalesce = self.config.read_coalesce;
        let batch_bytes = self.config.read_batch_bytes.max(1);
        let mut watermark = Watermark {
            current: 1,
            unsupported: coalesce.is_zero(),
        };
        let mut tick: Option<tokio::time::Interval> = None;
        // The futures of the read loop are created once, not per read: a fresh timer and two
        // cancellation waiters per wakeup were a measurable share of the per-stream CPU cost.
        // The timer is lazy: a later deadline (the idle deadline moves with every message)
        // leaves it armed at the earlier instant; when it fires, `handle_timeout` finds nothing
        // due yet and it is re-armed at the current deadline.
        let shutdown = self.shutdown.clone().cancelled_owned();
        let kick = self.kick.clone().cancelled_owned();
        let timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(shutdown, kick, timer);
        let mut armed: Option<std::time::Instant> = None;
        loop {
            if let Err(e) = self.flush(socket, session).await {
                return End::Io(e);
            }
            while let Some(event) = session.poll_event() {
                match event {
                    SessionEvent::Tag(tag) => {
                        if let Some(s) = sink.as_mut() {
                            s.on_tag(tag);
                        }
                    }
                    SessionEvent::Unpublished => {
                        if let Some(s) = sink.take() {
                            s.on_close(
                                session.publish_summary(std_now(), CloseReason::Unpublished),
                            );
                        }
                    }
                    SessionEvent::CloseRequested { reason } => {
                        let _ = self.flush(socket, session).await;
                        return End::Requested(reason);
                    }
                    SessionEvent::PublishRequested(info) => {
                        let request = PublishRequest {
                            connection_id: self.id,
                            peer: self.peer,
                            app: info.app,
                            stream: info.stream,
                            params: info.params,
                            tc_url: info.tc_url,
                            kick: self.kick.clone(),
                        };
                        let (app, stream) = (request.app.clone(), request.stream.clone());
                        let deadline = session.poll_timeout();
                        let decision = tokio::select! {
                            d = handler.authorize(request) => d,
                            _ = sleep_until_opt(deadline) => {
                                return match session.handle_timeout(std_now()) {
                                    Err(e) => End::Error(e),
                                    Ok(()) => End::Error(IngestError::Timeout { deadline: Deadline::HandshakeToPublish, elapsed_ms: 0 }),
                                };
                            }
                            _ = self.shutdown.cancelled() => return End::Shutdown,
                            _ = self.kick.cancelled() => return End::Kicked,
                        };
                        let result = match decision {
                            Ok(s) => {
                                *sink = Some(s);
                                self.counters
                                    .publishes_accepted
                                    .fetch_add(1, Ordering::Relaxed);
                                tracing::info!(%app, %stream, "publish accepted");
                                session.accept_publish(std_now())
                            }
                            Err(refusal) => {
                                self.counters
                                    .publishes_refused
                                    .fetch_add(1, Ordering::Relaxed);
                                tracing::info!(%app, %stream, ?refusal, "publish refused");
                                session.reject_publish(refusal)
                            }
                        };
                        if let Err(e) = result {
                            return End::Error(e);
                        }
                        if let Err(e) = self.flush(socket, session).await {
                            return End::Io(e);
                        }
                    }
                }
            }
            if session.is_closed() {
                return End::Disconnected;
            }
            let coalescing = !watermark.unsupported && session.is_publishing();
            if coalescing {
                let want = session
                    .bytes_to_complete_message()
                    .map_or(batch_bytes, |missing| missing.clamp(1, batch_bytes));
                watermark.set(socket, want);
                if tick.is_none() {
                    tick = Some(aligned_interval(coalesce));
                }
            } else {
                if watermark.current != 1 {
                    watermark.set(socket, 1);
                }
                // The tick goes only once the kernel wakes us for every byte again.
                if watermark.current == 1 {
                    tick = None;
                }
            }
            match (session.poll_timeout(), armed) {
                (Some(want), Some(at)) if want >= at => {}
                (Some(want), _) => {
                    timer.as_mut().reset(Instant::from_std(want));
                    armed = Some(want);
                }
                (None, _) => {}
            }
            let read = tokio::select! {
                read = socket.read(&mut buf) => read,
                // Below the watermark the kernel does not report the socket readable: read
                // whatever is queued, without waiting.
                _ = next_tick(&mut tick) => {
                    match (&*socket2::SockRef::from(&*socket)).read(&mut buf) {
                        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => continue,
                        other => other,
                    }
                }
                _ = &mut timer, if armed.is_some() => {
                    armed = None;
                    if let Err(e) = session.handle_timeout(std_now()) {
                        return End::Error(e);
                    }
                    continue;
                }
                _ = &mut shutdown => return End::Shutdown,
                _ = &mut kick => return End::Kicked,
            };
            match read {
                Ok(0) => return End::Disconnected,
                Ok(n) => {
                    if let Err(e) = session.handle_input(std_now(), &buf[..n]) {
                        return End::Error(e);
                    }
                }
                Err(e) => return End::Io(e),
            }
        }
    }
}
