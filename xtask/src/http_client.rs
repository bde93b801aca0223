//! A tiny blocking HTTP/1.1 GET client with keep-alive, enough for playlist polling and segment
//! fetches (Content-Length or chunked bodies).
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub struct HttpConn {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    timeout: Duration,
}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl HttpConn {
    pub fn new(addr: SocketAddr) -> Self {
        HttpConn {
            addr,
            conn: None,
            timeout: Duration::from_secs(5),
        }
    }

    /// GET `path`, retrying once on a fresh connection if a kept-alive one was closed.
    pub fn get(&mut self, path: &str) -> Result<Response> {
        let reused = self.conn.is_some();
        match self.get_once(path) {
            Ok(r) => Ok(r),
            Err(_) if reused => {
                self.conn = None;
                self.get_once(path)
            }
            Err(e) => Err(e),
        }
    }

    fn get_once(&mut self, path: &str) -> Result<Response> {
        if self.conn.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, self.timeout)
                .with_context(|| format!("connect {}", self.addr))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(self.timeout))?;
            s.set_write_timeout(Some(self.timeout))?;
            self.conn = Some(BufReader::with_capacity(65536, s));
        }
        let r = self.conn.as_mut().unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sluice-xtask\r\n\r\n",
            self.addr
        );
        let res = (|| -> Result<(Response, bool)> {
            r.get_mut().write_all(req.as_bytes())?;
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                bail!("connection closed");
            }
            let status: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .context("bad status line")?;
            let (mut len, mut chunked, mut close) = (None, false, false);
            loop {
                line.clear();
                if r.read_line(&mut line)? == 0 {
                    bail!("connection closed in headers");
                }
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
                    match k.as_str() {
                        "content-length" => len = v.parse::<usize>().ok(),
                        "transfer-encoding" => chunked = v.contains("chunked"),
                        "connection" => close = v == "close",
                        _ => {}
                    }
                }
            }
            let mut body = Vec::new();
            if chunked {
                loop {
                    line.clear();
                    r.read_line(&mut line)?;
                    let n = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                        .context("bad chunk size")?;
                    if n == 0 {
                        line.clear();
                        r.read_line(&mut line)?;
                        break;
                    }
                    let start = body.len();
                    body.resize(start + n, 0);
                    r.read_exact(&mut body[start..])?;
                    line.clear();
                    r.read_line(&mut line)?;
                }
            } else if let Some(n) = len {
                body.resize(n, 0);
                r.read_exact(&mut body)?;
            } else {
                r.read_to_end(&mut body)?;
                close = true;
            }
            Ok((Response { status, body }, close))
        })();
        match res {
            Ok((resp, close)) => {
                if close {
                    self.conn = None;
                }
                Ok(resp)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }
}
