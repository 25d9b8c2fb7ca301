//! Echo throughput with and without permessage-deflate, on compressible
//! (JSON) and incompressible (random) payloads.
//!
//! One sprocket server thread runs the echo app; one client thread sends
//! batches of up to 16 messages (at most 256 KiB) on one connection and
//! reads every echo before the next batch, for a few seconds. The client
//! sends a frame prepared once (compressed once, when deflate is on) and
//! only parses the replies' headers, so the time measured is the server's:
//! inflating, validating and compressing each message. Run it with the two
//! threads on two cores, e.g. `cargo run --release --example
//! deflate_throughput`, optionally `-- SECONDS`; `LEVEL=n` sets the
//! server's compression level (default 1).
//!
//! A first table times the codec alone on one thread, per message: the
//! shared compressor (compress, then reset: no context takeover) and the
//! inflater. Times are CPU time of the measuring thread (from
//! `/proc/thread-self/stat`), so other processes competing for the cores
//! disturb them little; the echo table adds the server thread's CPU time
//! per message next to the wall-clock rate.

use sprocket::app::{Echo, Router};
use sprocket::ws::deflate::{Compressor, DeflateConfig, Inflater};
use sprocket::{Config, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const IN_FLIGHT: usize = 16;

fn json(len: usize) -> Vec<u8> {
    let mut s = String::from("[");
    let mut i = 0u64;
    while s.len() < len {
        s.push_str(&format!(
            "{{\"id\":{i},\"topic\":\"prices\",\"value\":{},\"note\":\"ok\"}},",
            i * 37 % 1000
        ));
        i += 1;
    }
    s.truncate(len);
    s.into_bytes()
}

fn random(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    sprocket::ws::frame::write_masked_frame(&mut out, first, payload, [0x11, 0x22, 0x33, 0x44]);
    out
}

/// Reads frames from `buf`, returning how many complete ones were dropped
/// from its head and their total bytes.
fn drain_frames(buf: &mut Vec<u8>) -> (usize, usize) {
    let (mut frames, mut pos) = (0, 0);
    loop {
        let b = &buf[pos..];
        if b.len() < 2 {
            break;
        }
        let (len, hl) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => break,
            n => (n as usize, 2),
        };
        if b.len() < hl + len {
            break;
        }
        pos += hl + len;
        frames += 1;
    }
    buf.drain(..pos);
    (frames, pos)
}

struct Run {
    server_cpu_us: f64,
    msgs_per_s: f64,
    mb_per_s: f64,
    wire_in: usize,
    wire_out: usize,
}

fn run(port: u16, server_stat: &str, deflate: bool, payload: &[u8], secs: f64) -> Run {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    let ext = if deflate {
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    } else {
        ""
    };
    write!(
        s,
        "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 1 << 20];
    let head_end = loop {
        let n = s.read(&mut tmp).unwrap();
        buf.extend_from_slice(&tmp[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    assert_eq!(deflate, head.contains("permessage-deflate"), "{head}");
    buf.drain(..head_end);
    let frame = if deflate {
        let mut out = Vec::new();
        let n = Compressor::new(6, 15).compress(payload, &mut out);
        masked(0xC2, &out[..n])
    } else {
        masked(0x82, payload)
    };
    let in_flight = (256 * 1024 / frame.len()).clamp(1, IN_FLIGHT);
    let batch: Vec<u8> = frame.repeat(in_flight);
    let (mut sent, mut got, mut bytes_in) = (0usize, 0usize, 0usize);
    let cpu0 = cpu_seconds(server_stat);
    let start = Instant::now();
    let stop = start + Duration::from_secs_f64(secs);
    while Instant::now() < stop || got < sent {
        if sent == got && Instant::now() < stop {
            s.write_all(&batch).unwrap();
            sent += in_flight;
        }
        let n = s.read(&mut tmp).unwrap();
        assert!(n > 0, "server closed");
        buf.extend_from_slice(&tmp[..n]);
        let (frames, b) = drain_frames(&mut buf);
        got += frames;
        bytes_in += b;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(server_stat) - cpu0;
    Run {
        server_cpu_us: cpu * 1e6 / got.max(1) as f64,
        msgs_per_s: got as f64 / elapsed,
        mb_per_s: (got * payload.len()) as f64 / elapsed / 1e6,
        wire_in: frame.len(),
        wire_out: bytes_in / got.max(1),
    }
}

/// CPU time (user + system) of the thread whose stat file is `path`, in
/// seconds (clock ticks of 10 ms).
fn cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// The stat file of the calling thread.
fn own_stat() -> String {
    let link = std::fs::read_link("/proc/thread-self").unwrap();
    format!("/proc/{}/stat", link.display())
}

/// Runs `f` until it has used about a second of CPU; nanoseconds of CPU
/// per call.
fn cpu_per_call(mut f: impl FnMut()) -> f64 {
    let stat = own_stat();
    let start = cpu_seconds(&stat);
    let mut calls = 0u64;
    loop {
        for _ in 0..50 {
            f();
        }
        calls += 50;
        let used = cpu_seconds(&stat) - start;
        if used >= 1.0 {
            return used * 1e9 / calls as f64;
        }
    }
}

/// Nanoseconds of CPU per message: (compress + reset, inflate), and the
/// compressed size.
fn codec_cost(level: u8, data: &[u8]) -> (f64, f64, usize) {
    let mut c = Compressor::new(level, 15);
    let mut buf = Vec::new();
    let mut n = 0;
    let compress = cpu_per_call(|| {
        n = c.compress(data, &mut buf);
        c.reset();
    });
    let packed = buf[..n].to_vec();
    let mut inf = Inflater::new();
    let mut out = Vec::new();
    let inflate = cpu_per_call(|| {
        out.clear();
        inf.inflate(&packed, true, &mut out, 1 << 24, None).unwrap();
        inf.reset();
    });
    (compress, inflate, n)
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3.0);
    let level: u8 = std::env::var("LEVEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let cfg = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        deflate: DeflateConfig {
            level,
            ..DeflateConfig::default()
        },
        ..Config::default()
    };
    println!("| payload | size | level | compressed | compress + reset | inflate |");
    println!("|---|---|---|---|---|---|");
    for (name, make) in [("JSON", json as fn(usize) -> Vec<u8>), ("random", random)] {
        for size in [256, 4096, 65536] {
            let data = make(size);
            for level in [1, 6] {
                let (c, i, n) = codec_cost(level, &data);
                println!(
                    "| {name} | {size} | {level} | {n} | {:.1} µs | {:.1} µs |",
                    c / 1000.0,
                    i / 1000.0
                );
            }
        }
    }
    println!();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut server = Server::bind(cfg, Router::new().route("/echo", Echo)).unwrap();
        tx.send((
            server.local_addr().port(),
            server.shutdown_handle(),
            own_stat(),
        ))
        .unwrap();
        server.run().unwrap();
    });
    let (port, stop, server_stat) = rx.recv().unwrap();
    println!("server compression level {level}; {IN_FLIGHT} messages in flight; {secs} s per row");
    println!(
        "| payload | size | deflate | server CPU per message | msgs/s | MB/s (uncompressed) | bytes in / out per message |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, make) in [("JSON", json as fn(usize) -> Vec<u8>), ("random", random)] {
        for size in [256, 4096, 65536] {
            let payload = make(size);
            for deflate in [false, true] {
                let r = run(port, &server_stat, deflate, &payload, secs);
                println!(
                    "| {name} | {size} | {} | {:.1} µs | {:.0} | {:.1} | {} / {} |",
                    if deflate { "on" } else { "off" },
                    r.server_cpu_us,
                    r.msgs_per_s,
                    r.mb_per_s,
                    r.wire_in,
                    r.wire_out
                );
            }
        }
    }
    stop.shutdown();
    thread.join().unwrap();
}
