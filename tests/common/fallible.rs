//! A WebSocket client whose every step returns an error instead of
//! panicking, for tests that count what failed (restarts, supervisors).
#![allow(dead_code)]

use super::{WsFrame, masked_frame, parse_server_frame, upgrade_request};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One client connection after a 101.
pub struct Ws {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// What an echo round trip gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Echo {
    /// The text came back.
    Ok,
    /// The server closed first, with this code and reason.
    Closed(u16, String),
}

impl Ws {
    /// Connects to `addr` and completes the handshake on `path`.
    pub fn open(addr: SocketAddr, path: &str) -> Result<Ws, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("nodelay: {e}"))?;
        let mut ws = Ws {
            stream,
            buf: Vec::new(),
        };
        ws.stream
            .write_all(upgrade_request(path, &[]).as_bytes())
            .map_err(|e| format!("send handshake: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(end) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = ws.buf.drain(..end + 4).collect();
                let head = String::from_utf8_lossy(&head).into_owned();
                return if head.starts_with("HTTP/1.1 101 ") {
                    Ok(ws)
                } else {
                    Err(format!("handshake answered {head:?}"))
                };
            }
            ws.fill(deadline).map_err(|e| format!("handshake: {e}"))?;
        }
    }

    /// Reads more bytes before `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<(), String> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out".into());
        }
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let mut tmp = [0u8; 4096];
        match self.stream.read(&mut tmp) {
            Ok(0) => Err("EOF".into()),
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err("timed out".into())
            }
            Err(e) => Err(format!("read: {e} ({:?})", e.kind())),
        }
    }

    /// The next frame other than a ping or pong, within `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Result<WsFrame, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((frame, len)) = parse_server_frame(&self.buf) {
                self.buf.drain(..len);
                if frame.opcode == 9 || frame.opcode == 10 {
                    continue;
                }
                return Ok(frame);
            }
            self.fill(deadline)?;
        }
    }

    /// Sends one masked frame.
    pub fn send(&mut self, first: u8, payload: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(&masked_frame(first, payload))
            .map_err(|e| format!("write: {e} ({:?})", e.kind()))
    }

    /// Sends `text` and waits (up to 5 s) for it to come back, or for the
    /// server's close frame (answered).
    pub fn echo(&mut self, text: &str) -> Result<Echo, String> {
        self.send(0x81, text.as_bytes())?;
        let frame = self.next(Duration::from_secs(5))?;
        match frame.opcode {
            1 if frame.payload == text.as_bytes() => Ok(Echo::Ok),
            8 => {
                let (code, reason) = close_of(&frame);
                let _ = self.send(0x88, &frame.payload[..frame.payload.len().min(2)]);
                Ok(Echo::Closed(code, reason))
            }
            _ => Err(format!("expected the echo, got {frame:?}")),
        }
    }

    /// Sends a close frame with `code`.
    pub fn close(&mut self, code: u16) -> Result<(), String> {
        self.send(0x88, &code.to_be_bytes())
    }
}

/// Code and reason of a close frame (1005 when it has none).
pub fn close_of(frame: &WsFrame) -> (u16, String) {
    (
        frame.close_code().unwrap_or(1005),
        String::from_utf8_lossy(frame.payload.get(2..).unwrap_or_default()).into_owned(),
    )
}
