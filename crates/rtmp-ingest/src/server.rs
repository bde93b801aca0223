//! The tokio driver: the only module that touches sockets and clocks. It makes no protocol
//! decisions — it accepts (enforcing connection caps), reads into a buffer, feeds the
//! [`Session`], writes `poll_transmit` output, turns deadlines into `handle_timeout` calls and
//! relays events to the [`IngestHandler`] / [`MediaSink`] / player inbox.
//!
//! The connection actor ([`Server::run_connection`]) takes any `AsyncRead + AsyncWrite`: a
//! `TcpStream` (RTMP), a TLS stream (RTMPS) or one end of an in-memory pipe fed by HTTP polling
//! (RTMPT). Only a bare TCP socket gets read coalescing.
//!
//! ```text
//! loop { flush transmit (vectored, shared media slices); drain events (authorize → accept/reject,
//!        tags → sink, play → authorize_play → accept/reject);
//!        select { socket read → handle_input | coalescing tick → read | deadline → handle_timeout
//!                 | player inbox → send_media | shutdown | kick } }
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

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::io::Read;
use std::sync::OnceLock;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::{Deadline, Fault, IngestError};
use crate::fanout::{Drained, Notice, PlayerInbox};
use crate::session::{Session, SessionEvent};
use crate::{CloseReason, IngestConfig, IngestTag, PlayRefusal, PublishRefusal, PublishSummary};

/// A publish waiting for the binary's decision.
#[derive(Clone, Debug)]
pub struct PublishRequest {
    pub connection_id: u64,
    pub peer: SocketAddr,
    pub app: String,
    /// The publish name without its query string.
    pub stream: String,
    /// Percent-decoded query parameters of the publish name (stream keys: never log the values).
    pub params: Vec<(String, String)>,
    pub tc_url: Option<String>,
    /// The driver closes the connection when this is cancelled ("kick publisher").
    pub kick: tokio_util::sync::CancellationToken,
}

/// A play waiting for the binary's decision.
#[derive(Clone, Debug)]
pub struct PlayRequest {
    pub connection_id: u64,
    pub peer: SocketAddr,
    pub app: String,
    /// The play name without its query string.
    pub stream: String,
    /// Percent-decoded query parameters of the play name (play tokens: never log the values).
    pub params: Vec<(String, String)>,
    pub tc_url: Option<String>,
}

/// An accepted play: the inbox the fan-out fills (already holding the join sequence) and a
/// guard the driver drops when the play ends (the binary unregisters the player there).
pub struct PlayAccepted<G> {
    pub inbox: PlayerInbox,
    pub guard: G,
}

/// Implemented by the binary.
pub trait IngestHandler: Send + Sync + 'static {
    type Sink: MediaSink;
    /// Dropped when a play ends, however it ends.
    type PlayGuard: Send + Sync + 'static;
    /// Decide on a publish before `onFCPublish`/`NetStream.Publish.Start` are sent. May await
    /// (webhooks).
    fn authorize(
        &self,
        request: PublishRequest,
    ) -> impl std::future::Future<Output = Result<Self::Sink, PublishRefusal>> + Send;
    /// Decide on a play before `NetStream.Play.Start` is sent and subscribe the player. May
    /// await (webhooks).
    fn authorize_play(
        &self,
        request: PlayRequest,
    ) -> impl std::future::Future<Output = Result<PlayAccepted<Self::PlayGuard>, PlayRefusal>> + Send;
}

/// Receives the tags of one accepted publish.
pub trait MediaSink: Send + 'static {
    /// Called synchronously from the connection task for every tag, in arrival order. Must not block.
    fn on_tag(&mut self, tag: IngestTag);
    /// The publisher left (unpublish, deleteStream, disconnect, error, timeout, kick or shutdown). Called exactly once.
    fn on_close(self, summary: PublishSummary);
}

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
    Server::new(
        config,
        handler,
        shutdown,
        Arc::new(IngestCounters::default()),
    )
    .serve_tcp(listener)
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
    Server::new(config, handler, shutdown, counters)
        .serve_tcp(listener)
        .await
}

/// The shared state of every connection actor, whatever carries its bytes: configuration,
/// handler, counters, connection caps (shared by RTMP, RTMPS and RTMPT) and shutdown.
pub struct Server<H> {
    config: Arc<IngestConfig>,
    handler: Arc<H>,
    counters: Arc<IngestCounters>,
    shutdown: CancellationToken,
    limiter: Arc<ConnectionLimiter>,
    next_id: Arc<AtomicU64>,
}

impl<H> Clone for Server<H> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            handler: self.handler.clone(),
            counters: self.counters.clone(),
            shutdown: self.shutdown.clone(),
            limiter: self.limiter.clone(),
            next_id: self.next_id.clone(),
        }
    }
}

/// A connection admitted under the caps; the slot is released when this is dropped.
pub struct Admission {
    _permit: Permit,
    id: u64,
    peer: SocketAddr,
}

impl Admission {
    pub fn connection_id(&self) -> u64 {
        self.id
    }
}

impl<H: IngestHandler> Server<H> {
    pub fn new(
        config: IngestConfig,
        handler: Arc<H>,
        shutdown: CancellationToken,
        counters: Arc<IngestCounters>,
    ) -> Self {
        let limiter = Arc::new(ConnectionLimiter::new(
            config.max_connections,
            config.max_connections_per_ip,
        ));
        Self {
            config: Arc::new(config),
            handler,
            counters,
            shutdown,
            limiter,
            next_id: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Takes a connection slot for `peer` (global and per-IP caps), or names the cap that
    /// refused it (counted in `sluice_rtmp_refused_total{reason}`).
    pub fn admit(&self, peer: SocketAddr) -> Result<Admission, &'static str> {
        match self.limiter.try_acquire(peer.ip()) {
            Ok(permit) => {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
                self.counters
                    .connections_total
                    .fetch_add(1, Ordering::Relaxed);
                metrics::counter!("sluice_rtmp_connections_total").increment(1);
                Ok(Admission {
                    _permit: permit,
                    id,
                    peer,
                })
            }
            Err(reason) => {
                self.counters.refused_total.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("sluice_rtmp_refused_total", "reason" => reason).increment(1);
                Err(reason)
            }
        }
    }

    /// Runs one connection to its end over any byte stream (TLS, an RTMPT pipe, ...).
    pub async fn run_connection<S>(&self, admission: Admission, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        self.run(admission, Transport::Stream(Box::pin(stream)))
            .await
    }

    async fn run(&self, admission: Admission, transport: Transport<'_>) {
        let span = tracing::info_span!("rtmp", connection = admission.id, peer = %admission.peer);
        let conn = Connection {
            id: admission.id,
            peer: admission.peer,
            config: self.config.clone(),
            counters: self.counters.clone(),
            shutdown: self.shutdown.clone(),
            kick: CancellationToken::new(),
        };
        conn.run(transport, self.handler.clone())
            .instrument(span)
            .await;
        drop(admission);
    }

    /// The RTMP accept loop; returns after shutdown once every connection it started ended.
    pub async fn serve_tcp(&self, listener: TcpListener) -> io::Result<()> {
        let mut tasks = JoinSet::new();
        let mut last_refusal_log: Option<Instant> = None;
        let mut refusals_not_logged: u64 = 0;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
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
                    let admission = match self.admit(peer) {
                        Ok(a) => a,
                        Err(reason) => {
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
                    let this = self.clone();
                    tasks.spawn(async move {
                        let mut socket = socket;
                        this.run(admission, Transport::Tcp(&mut socket)).await;
                    });
                }
            }
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// What carries a connection's bytes. Only a bare TCP socket gets read coalescing
/// (`SO_RCVLOWAT` says nothing about the plaintext inside TLS or a pipe).
enum Transport<'a> {
    Tcp(&'a mut TcpStream),
    Stream(Pin<Box<dyn AsyncReadWrite + 'a>>),
}

trait AsyncReadWrite: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> AsyncReadWrite for T {}

impl Transport<'_> {
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Transport::Tcp(s) => Some(s),
            Transport::Stream(_) => None,
        }
    }

    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.read(buf).await,
            Transport::Stream(s) => s.read(buf).await,
        }
    }

    async fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.write_vectored(bufs).await,
            Transport::Stream(s) => s.write_vectored(bufs).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.flush().await,
            Transport::Stream(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.shutdown().await,
            Transport::Stream(s) => s.shutdown().await,
        }
    }
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

/// The play of one connection: its inbox, the binary's guard, reusable drain buffers.
struct Player<G> {
    inbox: PlayerInbox,
    _guard: G,
    drained: Drained,
}

async fn player_changed<G>(player: &Option<Player<G>>) {
    match player {
        Some(p) => p.inbox.changed().await,
        None => std::future::pending().await,
    }
}

/// Most buffers handed to one vectored write.
const MAX_IOV: usize = 64;

impl Connection {
    async fn run<H: IngestHandler>(self, mut socket: Transport<'_>, handler: Arc<H>) {
        self.counters
            .connections_active
            .fetch_add(1, Ordering::Relaxed);
        if let Some(tcp) = socket.tcp() {
            let _ = tcp.set_nodelay(true);
        }
        let mut session = Session::new(self.id, self.config.clone(), std_now());
        let mut sink: Option<H::Sink> = None;
        let mut player: Option<Player<H::PlayGuard>> = None;
        let end = self
            .drive(&mut socket, &mut session, &mut sink, &mut player, &*handler)
            .await;
        drop(player);
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
            End::Requested(r) => tracing::info!(reason = %r, "RTMP connection closed"),
        }
        if let Some(s) = sink.take() {
            s.on_close(session.publish_summary(std_now(), reason));
        }
        let _ = tokio::time::timeout(self.config.write_timeout, socket.shutdown()).await;
        self.counters
            .connections_active
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// Writes everything the session has queued: vectored writes of header bytes and shared
    /// payload slices, each write bounded by `write_timeout` (a stalled reader is dropped).
    async fn flush(&self, socket: &mut Transport<'_>, session: &mut Session) -> io::Result<()> {
        let mut pending: VecDeque<Bytes> = VecDeque::new();
        loop {
            while pending.len() < MAX_IOV {
                match session.poll_transmit() {
                    Some(b) if b.is_empty() => {}
                    Some(b) => pending.push_back(b),
                    None => break,
                }
            }
            if pending.is_empty() {
                break;
            }
            let write = async {
                while !pending.is_empty() {
                    let mut slices = [IoSlice::new(&[]); MAX_IOV];
                    let n_slices = pending.len().min(MAX_IOV);
                    for (slot, b) in slices.iter_mut().zip(pending.iter()) {
                        *slot = IoSlice::new(b);
                    }
                    let mut written = socket.write_vectored(&slices[..n_slices]).await?;
                    if written == 0 {
                        return Err(io::Error::from(io::ErrorKind::WriteZero));
                    }
                    while written > 0 {
                        let Some(front) = pending.front_mut() else {
                            break;
                        };
                        if written >= front.len() {
                            written -= front.len();
                            pending.pop_front();
                        } else {
                            let _ = front.split_to(written);
                            written = 0;
                        }
                    }
                }
                socket.flush().await
            };
            tokio::time::timeout(self.config.write_timeout, write)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "socket write stalled"))??;
        }
        Ok(())
    }

    /// Feeds what the fan-out queued into the player's session. `Err` ends the connection.
    fn feed_player<G>(
        &self,
        session: &mut Session,
        player: &mut Option<Player<G>>,
    ) -> Result<(), End> {
        let Some(p) = player.as_mut() else {
            return Ok(());
        };
        p.inbox.drain(&mut p.drained);
        for tag in p.drained.tags.drain(..) {
            session.send_media(&tag);
        }
        for notice in p.drained.notices.drain(..) {
            match notice {
                Notice::PublisherLeft => session.publisher_left(),
                Notice::PublisherReturned => session.publisher_returned(),
                Notice::Ended(reason) => session.end_play(&reason),
            }
        }
        if p.drained.overflowed {
            metrics::counter!("sluice_rtmp_players_dropped_total", "reason" => "slow").increment(1);
            return Err(End::Requested(
                "player too slow: its queue went over play.hard_cap_ms or play.max_queue_bytes"
                    .into(),
            ));
        }
        Ok(())
    }

    async fn drive<H: IngestHandler>(
        &self,
        socket: &mut Transport<'_>,
        session: &mut Session,
        sink: &mut Option<H::Sink>,
        player: &mut Option<Player<H::PlayGuard>>,
        handler: &H,
    ) -> End {
        let mut buf = vec![0u8; READ_BUFFER_BYTES];
        let coalesce = self.config.read_coalesce;
        let batch_bytes = self.config.read_batch_bytes.max(1);
        let mut watermark = Watermark {
            current: 1,
            unsupported: coalesce.is_zero() || socket.tcp().is_none(),
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
                if player.is_some() && e.kind() == io::ErrorKind::TimedOut {
                    metrics::counter!("sluice_rtmp_players_dropped_total", "reason" => "write_stall")
                        .increment(1);
                }
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
                    SessionEvent::PlayStopped => {
                        *player = None;
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
                        let decision = match self.decide(session, handler.authorize(request)).await
                        {
                            Ok(d) => d,
                            Err(end) => return end,
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
                    SessionEvent::PlayRequested(info) => {
                        let request = PlayRequest {
                            connection_id: self.id,
                            peer: self.peer,
                            app: info.app,
                            stream: info.stream,
                            params: info.params,
                            tc_url: info.tc_url,
                        };
                        let (app, stream) = (request.app.clone(), request.stream.clone());
                        let decision =
                            match self.decide(session, handler.authorize_play(request)).await {
                                Ok(d) => d,
                                Err(end) => return end,
                            };
                        let result = match decision {
                            Ok(accepted) => {
                                tracing::info!(%app, %stream, start = info.start, "play started");
                                *player = Some(Player {
                                    inbox: accepted.inbox,
                                    _guard: accepted.guard,
                                    drained: Drained::default(),
                                });
                                session.accept_play(std_now())
                            }
                            Err(refusal) => {
                                tracing::info!(%app, %stream, ?refusal, "play refused");
                                session.reject_play(refusal)
                            }
                        };
                        if let Err(e) = result {
                            return End::Error(e);
                        }
                        // The join sequence is already queued; it follows Play.Start.
                        if let Err(end) = self.feed_player(session, player) {
                            return end;
                        }
                    }
                }
            }
            if session.is_closed() {
                return End::Disconnected;
            }
            let coalescing = !watermark.unsupported && session.is_publishing();
            if let Some(tcp) = socket.tcp() {
                if coalescing {
                    let want = session
                        .bytes_to_complete_message()
                        .map_or(batch_bytes, |missing| missing.clamp(1, batch_bytes));
                    watermark.set(tcp, want);
                    if tick.is_none() {
                        tick = Some(aligned_interval(coalesce));
                    }
                } else {
                    if watermark.current != 1 {
                        watermark.set(tcp, 1);
                    }
                    // The tick goes only once the kernel wakes us for every byte again.
                    if watermark.current == 1 {
                        tick = None;
                    }
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
                    let Some(tcp) = socket.tcp() else { continue };
                    match (&*socket2::SockRef::from(tcp)).read(&mut buf) {
                        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => continue,
                        other => other,
                    }
                }
                _ = player_changed(player) => {
                    if let Err(end) = self.feed_player(session, player) {
                        return end;
                    }
                    continue;
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

    /// Awaits the binary's decision on a publish or play, bounded by the session's deadline,
    /// shutdown and kick.
    async fn decide<T>(
        &self,
        session: &mut Session,
        decision: impl std::future::Future<Output = T>,
    ) -> Result<T, End> {
        let deadline = session.poll_timeout();
        tokio::select! {
            d = decision => Ok(d),
            _ = sleep_until_opt(deadline) => Err(match session.handle_timeout(std_now()) {
                Err(e) => End::Error(e),
                Ok(()) => End::Error(IngestError::Timeout { deadline: Deadline::HandshakeToPublish, elapsed_ms: 0 }),
            }),
            _ = self.shutdown.cancelled() => Err(End::Shutdown),
            _ = self.kick.cancelled() => Err(End::Kicked),
        }
    }
}
