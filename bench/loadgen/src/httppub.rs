//! HTTP publishers for `fanout --publish-url`: keep-alive connections that
//! POST messages to a publish endpoint (Pushpin's `/publish/`, sprocket's
//! on `--admin-listen`), one request in flight per connection. Sockets are
//! non-blocking and polled from the fan-out loop (no mio: they are few).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// `http://HOST:PORT/PATH`.
pub struct PubTarget {
    pub addr: SocketAddr,
    host: String,
    path: String,
}

impl PubTarget {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("--publish-url {url:?}: only http:// URLs"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = host
            .to_socket_addrs()
            .map_err(|e| format!("--publish-url {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("--publish-url {host} resolves to nothing"))?;
        Ok(PubTarget {
            addr,
            host: host.to_owned(),
            path: path.to_owned(),
        })
    }
}

pub struct HttpPub {
    sock: TcpStream,
    addr: SocketAddr,
    wbuf: Vec<u8>,
    wpos: usize,
    rbuf: Vec<u8>,
    /// A request is out and its response not yet read.
    pub in_flight: bool,
    /// Messages due and not yet sent.
    pub queued: u64,
    /// Requests answered (200).
    pub answered: u64,
    /// Connections opened again after a `Connection: close` answer
    /// (Pushpin's publish endpoint closes after every request).
    pub reconnects: u64,
}

impl HttpPub {
    pub fn connect(t: &PubTarget) -> Result<Self, String> {
        let sock = TcpStream::connect_timeout(&t.addr, Duration::from_secs(5))
            .map_err(|e| format!("publish connection to {}: {e}", t.addr))?;
        sock.set_nodelay(true).map_err(|e| e.to_string())?;
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(HttpPub {
            sock,
            addr: t.addr,
            wbuf: Vec::new(),
            wpos: 0,
            rbuf: Vec::new(),
            in_flight: false,
            queued: 0,
            answered: 0,
            reconnects: 0,
        })
    }

    /// Starts a POST of `body` (JSON).
    pub fn send(&mut self, t: &PubTarget, body: &[u8]) -> Result<(), String> {
        debug_assert!(!self.in_flight);
        self.wbuf.clear();
        self.wpos = 0;
        self.wbuf.extend_from_slice(
            format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                t.path,
                t.host,
                body.len()
            )
            .as_bytes(),
        );
        self.wbuf.extend_from_slice(body);
        self.in_flight = true;
        self.write()
    }

    fn write(&mut self) -> Result<(), String> {
        while self.wpos < self.wbuf.len() {
            match self.sock.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err("publish connection closed".into()),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("publish write: {e}")),
            }
        }
        Ok(())
    }

    /// Writes what is pending and reads what came; Ok(true) when the
    /// response of the request in flight is complete (and was a 200).
    pub fn poll(&mut self) -> Result<bool, String> {
        if !self.in_flight {
            return Ok(false);
        }
        self.write()?;
        let mut buf = [0u8; 4096];
        let mut eof = false;
        loop {
            match self.sock.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => self.rbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("publish read: {e}")),
            }
        }
        let Some((used, close)) = complete(&self.rbuf)? else {
            if eof {
                return Err("publish connection closed by the server".into());
            }
            return Ok(false);
        };
        let close = close || eof;
        self.rbuf.drain(..used);
        self.in_flight = false;
        self.answered += 1;
        if close {
            let sock = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
                .map_err(|e| format!("publish connection to {}: {e}", self.addr))?;
            sock.set_nodelay(true).map_err(|e| e.to_string())?;
            sock.set_nonblocking(true).map_err(|e| e.to_string())?;
            self.sock = sock;
            self.rbuf.clear();
            self.reconnects += 1;
        }
        Ok(true)
    }
}

/// The length of a complete 200 response at the start of `b` and whether
/// it says `Connection: close`, None while incomplete; an error for any
/// other status.
fn complete(b: &[u8]) -> Result<Option<(usize, bool)>, String> {
    let Some(end) = b.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&b[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        let body = String::from_utf8_lossy(&b[end + 4..]);
        return Err(format!("publish answered {status:?}: {body:?}"));
    }
    let mut len = 0usize;
    let mut chunked = false;
    let mut close = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().map_err(|_| format!("bad {l:?}"))?;
            } else if k.eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            } else if k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close")
            {
                close = true;
            }
        }
    }
    let body = end + 4;
    if chunked {
        // Small bodies only: up to the last chunk and its empty trailer.
        return Ok(b[body..]
            .windows(5)
            .position(|w| w == b"0\r\n\r\n")
            .map(|i| (body + i + 5, close)));
    }
    Ok((b.len() >= body + len).then_some((body + len, close)))
}

#[cfg(test)]
mod tests {
    use super::complete;

    #[test]
    fn responses() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nPublished\n";
        assert_eq!(complete(r), Ok(Some((r.len(), false))));
        let k = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(complete(k), Ok(Some((k.len(), true))));
        assert_eq!(complete(&r[..r.len() - 1]), Ok(None));
        assert_eq!(complete(b"HTTP/1.1 200 OK\r\nContent"), Ok(None));
        let c =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nPublished\n\r\n0\r\n\r\n";
        assert_eq!(complete(c), Ok(Some((c.len(), false))));
        assert!(complete(b"HTTP/1.1 400 Bad\r\nContent-Length: 3\r\n\r\nbad").is_err());
    }
}
