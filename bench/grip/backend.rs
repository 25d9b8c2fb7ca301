//! A trivial WebSocket-over-HTTP backend for bench/grip_bench.py, std only
//! (build: `rustc -O --edition 2021 bench/grip/backend.rs -o BIN`).
//!
//! `BIN ADDR:PORT [CHANNEL]` serves HTTP/1.1 with keep-alive, one thread per
//! connection (the proxies keep a few connections each and reuse them).
//! Every POST body is a list of `application/websocket-events`; the answer
//! (200, same content type) is:
//!
//! - `OPEN`: `OPEN`, with `Sec-WebSocket-Extensions: grip`; when the request
//!   path starts with `/gsub`, also `c:{"type":"subscribe","channel":CHANNEL}`
//!   (CHANNEL default `bench`);
//! - `TEXT`/`BINARY`: the same message back, prefixed `m:` (the grip extension
//!   is on, so unprefixed messages would be dropped);
//! - `PING`: `PONG` with the same payload; `CLOSE`: the same `CLOSE` back;
//!   `PONG`, `DISCONNECT`, an empty body (keep-alive): nothing.
//!
//! It counts requests and events: any `GET` answers `{"requests":N,"events":N}`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static REQUESTS: AtomicU64 = AtomicU64::new(0);
static EVENTS: AtomicU64 = AtomicU64::new(0);

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9000".into());
    let channel = Arc::new(args.next().unwrap_or_else(|| "bench".into()));
    let listener = TcpListener::bind(&addr).expect("bind");
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let channel = Arc::clone(&channel);
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let _ = serve(stream, &channel);
            })
            .expect("spawn");
    }
}

fn serve(stream: TcpStream, channel: &str) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::with_capacity(64 * 1024, stream);
    let mut line = String::new();
    let mut body = Vec::new();
    let mut out = Vec::with_capacity(64 * 1024);
    let mut answer = Vec::with_capacity(64 * 1024);
    loop {
        // Request line.
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("").to_owned();
        let mut len = 0usize;
        let mut close = false;
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let h = line.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let v = v.trim();
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        body.resize(len, 0);
        r.read_exact(&mut body)?;
        REQUESTS.fetch_add(1, Ordering::Relaxed);
        answer.clear();
        let mut grip = false;
        if method == "GET" {
            answer.extend_from_slice(
                format!(
                    "{{\"requests\":{},\"events\":{}}}\n",
                    REQUESTS.load(Ordering::Relaxed),
                    EVENTS.load(Ordering::Relaxed)
                )
                .as_bytes(),
            );
        } else if !events(&body, &path, channel, &mut answer, &mut grip) {
            out.clear();
            out.extend_from_slice(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            w.write_all(&out)?;
            continue;
        }
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: ");
        out.extend_from_slice(if method == "GET" {
            b"application/json".as_slice()
        } else {
            b"application/websocket-events".as_slice()
        });
        if grip {
            out.extend_from_slice(b"\r\nSec-WebSocket-Extensions: grip");
        }
        out.extend_from_slice(format!("\r\nContent-Length: {}\r\n\r\n", answer.len()).as_bytes());
        out.extend_from_slice(&answer);
        w.write_all(&out)?;
        if close {
            return Ok(());
        }
    }
}

fn put(out: &mut Vec<u8>, name: &str, prefix: &[u8], content: &[u8]) {
    let n = prefix.len() + content.len();
    out.extend_from_slice(format!("{name} {n:x}\r\n").as_bytes());
    out.extend_from_slice(prefix);
    out.extend_from_slice(content);
    out.extend_from_slice(b"\r\n");
}

/// Parses the request's events and writes the answer's; false when the
/// body is not a valid event list.
fn events(mut b: &[u8], path: &str, channel: &str, out: &mut Vec<u8>, grip: &mut bool) -> bool {
    while !b.is_empty() {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        let head = &b[..eol];
        b = &b[eol + 2..];
        let (name, content) = match head.iter().position(|&c| c == b' ') {
            None => (head, &b[..0]),
            Some(sp) => {
                let Some(n) = std::str::from_utf8(&head[sp + 1..])
                    .ok()
                    .and_then(|h| usize::from_str_radix(h, 16).ok())
                else {
                    return false;
                };
                if b.len() < n + 2 || &b[n..n + 2] != b"\r\n" {
                    return false;
                }
                let c = &b[..n];
                b = &b[n + 2..];
                (&head[..sp], c)
            }
        };
        EVENTS.fetch_add(1, Ordering::Relaxed);
        match name {
            b"OPEN" => {
                *grip = true;
                out.extend_from_slice(b"OPEN\r\n");
                if path.starts_with("/gsub") {
                    let c = format!("{{\"type\":\"subscribe\",\"channel\":\"{channel}\"}}");
                    put(out, "TEXT", b"c:", c.as_bytes());
                }
            }
            b"TEXT" => put(out, "TEXT", b"m:", content),
            b"BINARY" => put(out, "BINARY", b"m:", content),
            b"PING" => put(out, "PONG", b"", content),
            b"CLOSE" => {
                if content.is_empty() {
                    out.extend_from_slice(b"CLOSE\r\n");
                } else {
                    put(out, "CLOSE", b"", content);
                }
            }
            _ => {}
        }
    }
    true
}
