//! A real `redis-server` for tests: started on a free loopback port with persistence off,
//! stoppable and restartable on the same port (to test a registry outage), killed on drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) `redis-server`.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` on a free port and waits until it answers `PING`. Gate the test with
    /// `require_tool("redis-server")` first.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let mut s = Self { port, child: None };
        s.restart();
        s
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: every key is gone, as after a crash without persistence).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty) and waits for `PING`.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server on port {} did not answer PING", self.port);
    }

    /// `FLUSHALL`: every key is gone while the server keeps running (as after an operator's
    /// mistake, or a failover to an empty replica). True if the server said `OK`.
    pub fn flushall(&self) -> bool {
        self.command(b"FLUSHALL\r\n", b"+OK\r\n")
    }

    /// True if the server answers `PING` with `PONG`.
    pub fn ping(&self) -> bool {
        self.command(b"PING\r\n", b"+PONG\r\n")
    }

    /// Sends one inline command and checks the exact reply.
    fn command(&self, cmd: &[u8], want: &[u8]) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(cmd).is_err() {
            return false;
        }
        let mut buf = vec![0u8; want.len()];
        s.read_exact(&mut buf).is_ok() && buf == want
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
