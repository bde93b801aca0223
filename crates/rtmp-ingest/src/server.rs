//! The tokio driver: the only module that touches sockets and clocks. It makes no protocol
//! decisions — it accepts (enforcing connection caps), reads into a buffer, feeds the
//! [`Session`](crate::session::Session), writes `poll_transmit` output, turns deadlines into `handle_timeout` calls and
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
//! message ([`Session::bytes_to_complete_message`](crate::session::Session::bytes_to_complete_message), a lower bound) or, at a message boundary, to
//! `read_batch_bytes`; the kernel then wakes the reader exactly when a large message (a
//! keyframe, which closes a segment) is complete, and small messages are picked up by a
//! non-blocking read on a tick aligned across all connections, so one timer wakeup serves them
//! all. End of stream and errors wake the reader regardless of the watermark.

mod coalesce;
mod connection;
mod limits;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::connection::{Connection, Transport};
use self::limits::{ConnectionLimiter, Permit};
use crate::fanout::PlayerInbox;
use crate::{IngestConfig, IngestTag, PlayRefusal, PublishRefusal, PublishSummary};

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
/// (open publishes end with [`CloseReason::Shutdown`](crate::CloseReason::Shutdown)) and this returns once all have finished.
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
