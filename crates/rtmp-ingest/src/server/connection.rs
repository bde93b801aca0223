//! The connection actor: one task per RTMP connection (over TCP, TLS or an RTMPT pipe) that
//! feeds the sans-IO [`Session`] its bytes and deadlines, writes its output (vectored, shared media
//! slices), and relays its events to the [`IngestHandler`], the [`MediaSink`] and the player
//! inbox. Message and command semantics are the session's (Adobe RTMP 1.0 §5.4, §7); this module
//! only moves bytes and events.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::coalesce::{aligned_interval, next_tick, Watermark};
use super::limits::ERROR_LOG_LIMIT;
use super::{
    IngestCounters, IngestHandler, MediaSink, PlayRequest, PublishRequest, READ_BUFFER_BYTES,
};
use crate::error::{Deadline, Fault, IngestError};
use crate::fanout::{Drained, Notice, PlayerInbox};
use crate::session::{Session, SessionEvent};
use crate::{CloseReason, IngestConfig};

/// What carries a connection's bytes. Only a bare TCP socket gets read coalescing
/// (`SO_RCVLOWAT` says nothing about the plaintext inside TLS or a pipe).
pub(super) enum Transport<'a> {
    Tcp(&'a mut TcpStream),
    Stream(Pin<Box<dyn AsyncReadWrite + 'a>>),
}

pub(super) trait AsyncReadWrite: AsyncRead + AsyncWrite + Send {}
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

/// How a connection task ended.
enum End {
    Disconnected,
    Io(io::Error),
    Error(IngestError),
    Shutdown,
    Kicked,
    Requested(String),
}

pub(super) struct Connection {
    pub(super) id: u64,
    pub(super) peer: SocketAddr,
    pub(super) config: Arc<IngestConfig>,
    pub(super) counters: Arc<IngestCounters>,
    pub(super) shutdown: CancellationToken,
    pub(super) kick: CancellationToken,
}

fn std_now() -> std::time::Instant {
    Instant::now().into_std()
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
    pub(super) async fn run<H: IngestHandler>(self, mut socket: Transport<'_>, handler: Arc<H>) {
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
