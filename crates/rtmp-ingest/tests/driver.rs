//! The tokio driver on 127.0.0.1:0: connection caps at accept and the absolute
//! handshake-to-publish deadline against a client dripping one byte at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtmp_ingest::{
    server, IngestConfig, IngestHandler, IngestTag, MediaSink, PublishRefusal, PublishRequest,
    PublishSummary,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

struct Nobody;
struct NoSink;

impl MediaSink for NoSink {
    fn on_tag(&mut self, _tag: IngestTag) {}
    fn on_close(self, _summary: PublishSummary) {}
}

impl IngestHandler for Nobody {
    type Sink = NoSink;
    type PlayGuard = ();
    async fn authorize_play(
        &self,
        _request: rtmp_ingest::PlayRequest,
    ) -> Result<rtmp_ingest::PlayAccepted<()>, rtmp_ingest::PlayRefusal> {
        Err(rtmp_ingest::PlayRefusal::NotFound("no such stream".into()))
    }
    async fn authorize(&self, _request: PublishRequest) -> Result<NoSink, PublishRefusal> {
        Err(PublishRefusal::Unauthorized("no".into()))
    }
}

async fn start(
    config: IngestConfig,
) -> (
    std::net::SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server::serve(
        listener,
        config,
        Arc::new(Nobody),
        shutdown.clone(),
    ));
    (addr, shutdown, task)
}

/// Reads until EOF/error; returns the bytes read.
async fn read_to_close(s: &mut TcpStream, limit: Duration) -> Option<usize> {
    let mut total = 0;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(total),
            Ok(Ok(n)) => total += n,
        }
    }
}

#[tokio::test]
async fn per_ip_cap_closes_extra_connections_at_accept() {
    let (addr, shutdown, task) = start(IngestConfig {
        max_connections_per_ip: 1,
        ..IngestConfig::default()
    })
    .await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(&[3]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        read_to_close(&mut second, Duration::from_secs(2)).await,
        Some(0),
        "closed without a byte"
    );
    // The first is still open (no handshake bytes yet beyond C0).
    assert_eq!(
        read_to_close(&mut first, Duration::from_millis(200)).await,
        None
    );
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        read_to_close(&mut third, Duration::from_millis(200)).await,
        None,
        "slot freed after close"
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

/// The absolute handshake-to-publish deadline against a client dripping one byte every 20 ms,
/// on tokio's paused clock (the connection actor over an in-memory pipe): the close comes at
/// exactly the deadline of virtual time, whatever the machine's load.
#[tokio::test(start_paused = true)]
async fn byte_dripper_is_closed_on_the_absolute_deadline() {
    let timeout = Duration::from_millis(400);
    let server = server::Server::new(
        IngestConfig {
            handshake_to_publish_timeout: timeout,
            ..IngestConfig::default()
        },
        Arc::new(Nobody),
        CancellationToken::new(),
        Arc::new(rtmp_ingest::IngestCounters::default()),
    );
    let admission = server.admit("127.0.0.1:1".parse().unwrap()).unwrap();
    let (mut ours, theirs) = tokio::io::duplex(64 * 1024);
    let actor = {
        let server = server.clone();
        tokio::spawn(async move { server.run_connection(admission, theirs).await })
    };
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 4096];
    let mut closed_at = None;
    for i in 0..200u32 {
        let byte = if i == 0 { 3 } else { i as u8 };
        if ours.write_all(&[byte]).await.is_err() {
            closed_at = Some(tokio::time::Instant::now());
            break;
        }
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(20), ours.read(&mut buf)).await {
            if matches!(r, Ok(0) | Err(_)) {
                closed_at = Some(tokio::time::Instant::now());
                break;
            }
        }
    }
    let elapsed = closed_at.expect("dripper was never closed") - started;
    assert!(
        elapsed >= timeout && elapsed <= timeout + Duration::from_millis(20),
        "closed after {elapsed:?} of virtual time"
    );
    actor.await.unwrap();
}

#[tokio::test]
async fn non_rtmp_client_is_closed() {
    let (addr, shutdown, task) = start(IngestConfig::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_to_close(&mut s, Duration::from_secs(2)).await, Some(0));
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

/// Accepts every publish; tags go to a channel with their arrival time.
struct Recorder(tokio::sync::mpsc::UnboundedSender<(Instant, usize)>);
struct RecorderSink(tokio::sync::mpsc::UnboundedSender<(Instant, usize)>);

impl MediaSink for RecorderSink {
    fn on_tag(&mut self, tag: IngestTag) {
        let _ = self.0.send((Instant::now(), tag.payload.len()));
    }
    fn on_close(self, _summary: PublishSummary) {}
}

impl IngestHandler for Recorder {
    type Sink = RecorderSink;
    type PlayGuard = ();
    async fn authorize_play(
        &self,
        _request: rtmp_ingest::PlayRequest,
    ) -> Result<rtmp_ingest::PlayAccepted<()>, rtmp_ingest::PlayRefusal> {
        Err(rtmp_ingest::PlayRefusal::NotFound("no such stream".into()))
    }
    async fn authorize(&self, _request: PublishRequest) -> Result<RecorderSink, PublishRefusal> {
        Ok(RecorderSink(self.0.clone()))
    }
}

/// A minimal publisher over real TCP (the shared test client, `test_support::rtmp`): simple
/// handshake, connect, createStream, publish; returns the socket and an encoder for the media.
async fn publish_raw(addr: std::net::SocketAddr) -> (TcpStream, rtmp_ingest::chunk::ChunkEncoder) {
    use test_support::rtmp;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&rtmp::c0c1()).await.unwrap();
    let mut s0s1s2 = vec![0u8; rtmp::S0_S1_S2_BYTES];
    s.read_exact(&mut s0s1s2).await.unwrap();
    s.write_all(&rtmp::c2()).await.unwrap();
    for message in [
        rtmp::connect("live"),
        rtmp::create_stream(),
        rtmp::publish("coalesce"),
    ] {
        s.write_all(&message).await.unwrap();
    }
    (s, rtmp_ingest::chunk::ChunkEncoder::new())
}

async fn next_tag(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(Instant, usize)>,
    limit: Duration,
) -> (Instant, usize) {
    tokio::time::timeout(limit, rx.recv())
        .await
        .expect("message never delivered")
        .unwrap()
}

/// Read coalescing (`SO_RCVLOWAT` + shared tick), with a tick an hour away so that only the
/// watermark can deliver anything: a small message is held (nothing arrives for two seconds,
/// which machine load can only lengthen), and a message larger than the batch, written in two
/// parts, is read as soon as its bytes are there, the held small message first. No duration is
/// measured; the waits are liveness guards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalesced_reads_hold_small_messages_and_deliver_large_ones_when_complete() {
    use rtmp_ingest::chunk::message_type;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(server::serve(
        listener,
        IngestConfig {
            read_coalesce: Duration::from_secs(3600),
            read_batch_bytes: 16 * 1024,
            ..IngestConfig::default()
        },
        Arc::new(Recorder(tx)),
        shutdown.clone(),
    ));
    let (s, mut enc) = publish_raw(addr).await;
    let (mut reader, mut s) = s.into_split();
    // Media counts only once the publish is accepted: wait for NetStream.Publish.Start.
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        let mut replies = test_support::rtmp::Reader::new();
        let mut started_tx = Some(started_tx);
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 {
                break;
            }
            for m in replies.push(&buf[..n]) {
                let code = test_support::rtmp::status_code(&m);
                if code.as_deref() == Some("NetStream.Publish.Start") {
                    if let Some(tx) = started_tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), started_rx)
        .await
        .expect("no NetStream.Publish.Start")
        .unwrap();

    let mut out = bytes::BytesMut::new();
    let small = [0xAFu8, 0x01, 1, 2, 3, 4];
    enc.write_message(&mut out, 4, 0, message_type::AUDIO, 1, &small);
    s.write_all(&out.split()).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .is_err(),
        "a small message was read before the tick or a full batch"
    );

    let big = vec![0x17u8; 200_000];
    enc.write_message(&mut out, 6, 40, message_type::VIDEO, 1, &big);
    let bytes = out.split();
    s.write_all(&bytes[..20_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(&bytes[20_000..]).await.unwrap();
    let patience = Duration::from_secs(60);
    assert_eq!(next_tag(&mut rx, patience).await.1, small.len());
    assert_eq!(next_tag(&mut rx, patience).await.1, big.len());
    shutdown.cancel();
    let _ = task.await;
}
