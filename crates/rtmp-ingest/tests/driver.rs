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

#[tokio::test]
async fn byte_dripper_is_closed_on_the_absolute_deadline() {
    let timeout = Duration::from_millis(400);
    let (addr, shutdown, task) = start(IngestConfig {
        handshake_to_publish_timeout: timeout,
        ..IngestConfig::default()
    })
    .await;
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut closed = false;
    let mut buf = [0u8; 4096];
    for i in 0..200u32 {
        let byte = if i == 0 { 3 } else { i as u8 };
        if s.write_all(&[byte]).await.is_err() {
            closed = true;
            break;
        }
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await {
            if matches!(r, Ok(0) | Err(_)) {
                closed = true;
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    assert!(closed, "dripper was never closed");
    assert!(
        elapsed >= timeout && elapsed < timeout * 3,
        "closed after {elapsed:?}"
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
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
