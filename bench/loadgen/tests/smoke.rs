//! Smoke tests of the load tool itself against tiny servers written here
//! (a thread per connection, blocking I/O), including servers that corrupt
//! or drop messages on purpose: the tool must count what it validated and
//! must notice when the server misbehaves.

use base64::Engine;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

#[derive(Clone, Copy, Default)]
struct Faults {
    /// Flip a byte in the n-th echoed message (counted over all connections).
    corrupt_nth: Option<u64>,
    /// Chat: skip every n-th delivery to the first subscriber.
    drop_every: Option<u64>,
}

type Members = Arc<Mutex<Vec<(u64, TcpStream)>>>;

/// A WebSocket server on an ephemeral port: `/echo` and `/chat`.
fn ws_server(faults: Faults) -> String {
    ws_server_in(faults, Members::default()).0
}

/// Connection ids, unique over every server of the test process (servers
/// may share a chat room).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A WebSocket server whose `/chat` is the room `members`, which other
/// servers may share (as processes sharing topics through a bus do), and
/// how many connections it accepted.
fn ws_server_in(faults: Faults, members: Members) -> (String, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let echoed = Arc::new(AtomicU64::new(0));
    let relayed = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
            let (m, e, r) = (members.clone(), echoed.clone(), relayed.clone());
            thread::spawn(move || serve_ws(s, id, faults, m, e, r));
        }
    });
    (addr, accepted)
}

fn serve_ws(
    s: TcpStream,
    id: u64,
    f: Faults,
    members: Members,
    echoed: Arc<AtomicU64>,
    relayed: Arc<AtomicU64>,
) {
    s.set_nodelay(true).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s.try_clone().unwrap();
    let (mut path, mut key) = (String::new(), String::new());
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(rest) = line.strip_prefix("GET ") {
            path = rest.split(' ').next().unwrap_or("").to_owned();
        } else if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("sec-websocket-key")
        {
            key = v.trim().to_owned();
        }
    }
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes());
    write!(
        w,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .unwrap();
    let chat = path == "/chat";
    if chat {
        members.lock().unwrap().push((id, s.try_clone().unwrap()));
    }
    while let Some((op, mut data)) = read_frame(&mut r) {
        match op {
            0x8 => {
                let _ = w.write_all(&frame(0x8, &data));
                break;
            }
            0x9 => {
                let _ = w.write_all(&frame(0xA, &data));
            }
            0x1 | 0x2 if chat => {
                let n = relayed.fetch_add(1, Ordering::SeqCst) + 1;
                let out = frame(op, &data);
                let ms = members.lock().unwrap();
                let first = ms.iter().map(|m| m.0).min();
                for (other, sock) in ms.iter() {
                    let skip =
                        f.drop_every.is_some_and(|k| n.is_multiple_of(k)) && Some(*other) == first;
                    if *other != id && !skip {
                        let _ = (&mut &*sock).write_all(&out);
                    }
                }
            }
            0x1 | 0x2 => {
                let n = echoed.fetch_add(1, Ordering::SeqCst) + 1;
                if f.corrupt_nth == Some(n) {
                    let last = data.len() - 1;
                    data[last] ^= 0x01;
                }
                if w.write_all(&frame(op, &data)).is_err() {
                    break;
                }
            }
            _ => {}
        }
    }
    members.lock().unwrap().retain(|m| m.0 != id);
    let _ = s.shutdown(Shutdown::Both);
}

fn read_frame(r: &mut impl Read) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h).ok()?;
    assert!(h[1] & 0x80 != 0, "client frame not masked");
    let len = match h[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).ok()?;
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).ok()?;
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut key = [0u8; 4];
    r.read_exact(&mut key).ok()?;
    let mut data = vec![0u8; len];
    r.read_exact(&mut data).ok()?;
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
    Some((h[0] & 0x0F, data))
}

fn frame(op: u8, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | op];
    if data.len() < 126 {
        f.push(data.len() as u8);
    } else if data.len() <= 0xFFFF {
        f.push(126);
        f.extend_from_slice(&(data.len() as u16).to_be_bytes());
    } else {
        f.push(127);
        f.extend_from_slice(&(data.len() as u64).to_be_bytes());
    }
    f.extend_from_slice(data);
    f
}

/// A plain TCP echo.
fn raw_server() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let _ = std::io::copy(&mut &s, &mut w);
            });
        }
    });
    addr
}

struct Run {
    code: i32,
    json: String,
}

impl Run {
    /// A top-level number (or bool as 0/1) from the JSON line.
    fn num(&self, key: &str) -> f64 {
        let pat = format!("\"{key}\":");
        let at = self
            .json
            .find(&pat)
            .unwrap_or_else(|| panic!("no {key} in {}", self.json));
        let rest = &self.json[at + pat.len()..];
        let end = rest.find([',', '}']).unwrap();
        match &rest[..end] {
            "true" => 1.0,
            "false" => 0.0,
            v => v.parse().unwrap_or_else(|_| panic!("{key} = {v}")),
        }
    }
}

/// Runs the tool with `--quiet` and, unless `args` name one, this test
/// process as the server pid.
fn loadgen(args: &[&str]) -> Run {
    let pid = std::process::id().to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    cmd.args(args).arg("--quiet");
    if !args.contains(&"--server-pid") {
        cmd.args(["--server-pid", &pid]);
    }
    let out = cmd.output().unwrap();
    let json = String::from_utf8(out.stdout).unwrap();
    assert_eq!(json.lines().count(), 1, "one JSON line: {json}");
    assert!(json.starts_with('{') && json.trim_end().ends_with('}'));
    Run {
        code: out.status.code().unwrap_or(-1),
        json: json.trim().to_owned(),
    }
}

const SHORT: &[&str] = &["--warmup", "0.2", "--duration", "1"];

#[test]
fn echo_counts_and_validates() {
    let addr = ws_server(Faults::default());
    let r = loadgen(
        &[
            &["echo", "--addr", &addr, "--conns", "4", "--window", "4"],
            SHORT,
        ]
        .concat(),
    );
    assert_eq!(r.code, 0, "{}", r.json);
    assert_eq!(r.num("ok"), 1.0);
    let (msgs, validated) = (r.num("msgs"), r.num("validated"));
    assert!(msgs > 100.0, "{}", r.json);
    // Everything measured was validated, plus warm-up and drain.
    assert!(validated >= msgs + 16.0, "{}", r.json);
    assert_eq!(r.num("mismatches"), 0.0);
    assert_eq!(r.num("unanswered"), 0.0);
    // The rate is what was counted over the window (seconds are rounded
    // to 0.1 ms in the JSON).
    let rate = msgs / r.num("seconds");
    assert!(
        (r.num("msgs_per_s") - rate).abs() / rate < 1e-3,
        "{}",
        r.json
    );
    assert!(r.num("rtt_p50_us") > 0.0 && r.num("rtt_p99_us") >= r.num("rtt_p50_us"));
    // CPU sampling of the given pid worked.
    assert!(
        r.json.contains("\"server_cpu_us_per_msg\":") && !r.json.contains("\"server_cpu_s\":null")
    );
}

#[test]
fn echo_large_binary_messages() {
    let addr = ws_server(Faults::default());
    let r = loadgen(
        &[
            &[
                "echo", "--addr", &addr, "--conns", "2", "--window", "2", "--size", "70000",
                "--binary",
            ],
            SHORT,
        ]
        .concat(),
    );
    assert_eq!(r.code, 0, "{}", r.json);
    assert!(
        r.num("msgs") > 10.0 && r.num("mb_per_s") > 0.5,
        "{}",
        r.json
    );
}

#[test]
fn echo_detects_a_corrupted_echo() {
    let addr = ws_server(Faults {
        corrupt_nth: Some(300),
        ..Faults::default()
    });
    let r = loadgen(
        &[
            &["echo", "--addr", &addr, "--conns", "2", "--window", "4"],
            SHORT,
        ]
        .concat(),
    );
    assert_eq!(r.code, 1, "{}", r.json);
    assert_eq!(r.num("ok"), 0.0);
    assert_eq!(r.num("mismatches"), 1.0);
    assert!(r.json.contains("differs from what was sent"), "{}", r.json);
}

#[test]
fn raw_echo_mode() {
    let addr = raw_server();
    let r = loadgen(
        &[
            &[
                "echo", "--raw", "--addr", &addr, "--conns", "3", "--window", "8", "--size", "100",
            ],
            SHORT,
        ]
        .concat(),
    );
    assert_eq!(r.code, 0, "{}", r.json);
    assert!(r.num("msgs") > 100.0 && r.num("validated") > r.num("msgs"));
}

#[test]
fn fanout_counts_every_delivery() {
    let addr = ws_server(Faults::default());
    let r = loadgen(
        &[
            &[
                "fanout", "--addr", &addr, "--subs", "5", "--pubs", "2", "--rate", "200",
            ],
            SHORT,
        ]
        .concat(),
    );
    assert_eq!(r.code, 0, "{}", r.json);
    assert_eq!(r.num("lost"), 0.0);
    assert_eq!(r.num("reordered"), 0.0);
    // 200 msgs/s to 5 subscribers for 1 s.
    let d = r.num("deliveries_per_s");
    assert!((800.0..1200.0).contains(&d), "{}", r.json);
    // Two publishers on /chat receive each other's messages.
    assert!(r.num("to_publishers_total") > 100.0, "{}", r.json);
    // Whole run: (warm-up + window) x rate x subscribers, all delivered.
    let total = r.num("delivered_total");
    assert!((1000.0..1400.0).contains(&total), "{}", r.json);
    assert!(r.num("lat_p99_us") > 0.0);
}

#[test]
fn fanout_detects_loss() {
    let addr = ws_server(Faults {
        drop_every: Some(20),
        ..Faults::default()
    });
    let r = loadgen(
        &[
            &["fanout", "--addr", &addr, "--subs", "3", "--rate", "200"],
            SHORT,
        ]
        .concat(),
    );
    assert_eq!(r.code, 1, "{}", r.json);
    assert!(r.num("lost") >= 5.0, "{}", r.json);
}

#[test]
fn fanout_spreads_over_servers() {
    // Two servers sharing one room: every subscriber gets every message,
    // whichever server it and the publisher are on.
    let room = Members::default();
    let (a, on_a) = ws_server_in(Faults::default(), room.clone());
    let (b, on_b) = ws_server_in(Faults::default(), room);
    let pid = std::process::id().to_string();
    let pids = format!("{pid},{pid}");
    let r = loadgen(
        &[
            &[
                "fanout",
                "--addr",
                &format!("{a},{b}"),
                "--subs",
                "6",
                "--pubs",
                "2",
                "--rate",
                "200",
                "--server-pid",
                &pids,
                "--aux-pid",
                &pid,
            ],
            SHORT,
        ]
        .concat(),
    );
    assert_eq!(r.code, 0, "{}", r.json);
    assert_eq!(r.num("servers"), 2.0);
    assert_eq!(r.num("lost"), 0.0);
    assert_eq!(r.num("reordered"), 0.0);
    // Round robin: 3 subscribers and 1 publisher on each.
    assert_eq!(on_a.load(Ordering::SeqCst), 4);
    assert_eq!(on_b.load(Ordering::SeqCst), 4);
    let d = r.num("deliveries_per_s");
    assert!((960.0..1440.0).contains(&d), "{}", r.json);
    // Two server pids: summed, with each one's share; the aux pid apart.
    assert!(
        r.json.contains(&format!("\"server_pids\":[{pids}]")),
        "{}",
        r.json
    );
    assert!(r.json.contains("\"server_cpu_s_each\":["), "{}", r.json);
    r.num("aux_cpu_us_per_delivery");
    r.num("server_cpu_us_per_delivery");
}

#[test]
fn fanout_over_separate_servers_shows_loss() {
    // Two servers that do not share the room: subscribers on one never get
    // the other's publisher's messages, and the tool must say so.
    let a = ws_server(Faults::default());
    let b = ws_server(Faults::default());
    let r = loadgen(
        &[
            &[
                "fanout",
                "--addr",
                &format!("{a},{b}"),
                "--subs",
                "4",
                "--pubs",
                "2",
                "--rate",
                "200",
            ],
            SHORT,
        ]
        .concat(),
    );
    assert_eq!(r.code, 1, "{}", r.json);
    assert!(r.num("lost") >= 100.0, "{}", r.json);
}

#[test]
fn several_addrs_only_in_fanout() {
    let a = ws_server(Faults::default());
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["echo", "--addr", &format!("{a},{a}"), "--duration", "0.2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn fanout_search_finds_a_rate() {
    let addr = ws_server(Faults::default());
    let r = loadgen(&[
        "fanout",
        "--addr",
        &addr,
        "--subs",
        "3",
        "--rate",
        "50",
        "--search",
        "--max-steps",
        "3",
        "--warmup",
        "0.1",
        "--duration",
        "0.4",
    ]);
    assert_eq!(r.code, 0, "{}", r.json);
    assert_eq!(r.num("found"), 1.0);
    assert!(r.num("max_rate") >= 50.0, "{}", r.json);
    assert_eq!(r.json.matches("\"pass\":").count(), 3, "{}", r.json);
}

#[test]
fn connect_opens_and_closes_all() {
    let addr = ws_server(Faults::default());
    let r = loadgen(&[
        "connect",
        "--addr",
        &addr,
        "--conns",
        "200",
        "--concurrency",
        "20",
        "--hold",
        "0.2",
    ]);
    assert_eq!(r.code, 0, "{}", r.json);
    assert_eq!(r.num("opened"), 200.0);
    assert_eq!(r.num("closed_cleanly"), 200.0);
    assert!(r.num("handshakes_per_s") > 10.0);
    r.num("rss_per_conn");
}

#[test]
fn refused_handshake_is_an_error() {
    // A server that answers 404 to everything.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let r = loadgen(&["echo", "--addr", &addr, "--conns", "1", "--duration", "0.2"]);
    assert_eq!(r.code, 1, "{}", r.json);
    assert!(r.json.contains("404"), "{}", r.json);
}

/// The server binary, built with `cargo build --release` at the repository
/// root (`.ci/run` builds it before these tests). Missing, the test fails
/// saying so: it is never skipped.
fn sprocket_binary() -> &'static str {
    let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/sprocket");
    assert!(
        std::path::Path::new(bin).exists(),
        "{bin} not built: run `cargo build --release` at the repository root first"
    );
    bin
}

/// Against the real server.
#[test]
fn sprocket_echo() {
    let bin = sprocket_binary();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(bin)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--ping-interval",
            "0",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if TcpStream::connect(&addr).is_ok() {
            break;
        }
        thread::sleep(std::time::Duration::from_millis(20));
    }
    let r = loadgen(&[&["echo", "--addr", &addr, "--conns", "4"], SHORT].concat());
    let f = loadgen(
        &[
            &["fanout", "--addr", &addr, "--subs", "10", "--rate", "100"],
            SHORT,
        ]
        .concat(),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(r.code, 0, "{}", r.json);
    assert!(r.num("validated") > 100.0);
    assert_eq!(f.code, 0, "{}", f.json);
    assert_eq!(f.num("lost"), 0.0);
}

/// A self-signed certificate for 127.0.0.1, its PEM in a temporary file
/// (the trust anchor a client is given), and the rustls server config.
fn tls_identity(tag: &str) -> (std::path::PathBuf, Arc<rustls::ServerConfig>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let pem = std::env::temp_dir().join(format!(
        "loadgen-smoke-{tag}-{}-{:?}.pem",
        std::process::id(),
        thread::current().id()
    ));
    std::fs::write(&pem, cert.pem()).unwrap();
    let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], der)
    .unwrap();
    (pem, Arc::new(cfg))
}

/// A wss:// echo server on an ephemeral port (a thread per connection,
/// blocking rustls streams); counts the connections whose TLS handshake
/// completed.
fn tls_echo_server(cfg: Arc<rustls::ServerConfig>) -> (String, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let handshakes = Arc::new(AtomicU64::new(0));
    let counter = handshakes.clone();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            let (cfg, counter) = (cfg.clone(), counter.clone());
            thread::spawn(move || {
                let tls = rustls::ServerConnection::new(cfg).unwrap();
                let mut stream = rustls::StreamOwned::new(tls, s);
                if stream.conn.complete_io(&mut stream.sock).is_err() {
                    return;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                serve_ws_echo(BufReader::new(stream));
            });
        }
    });
    (addr, handshakes)
}

/// The echo half of `serve_ws` on any stream, reading and writing in turn.
fn serve_ws_echo<S: Read + Write>(mut r: BufReader<S>) {
    let mut key = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("sec-websocket-key")
        {
            key = v.trim().to_owned();
        }
    }
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes());
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if r.get_mut().write_all(head.as_bytes()).is_err() {
        return;
    }
    while let Some((op, data)) = read_frame(&mut r) {
        let reply = match op {
            0x8 => frame(0x8, &data),
            0x9 => frame(0xA, &data),
            0x1 | 0x2 => frame(op, &data),
            _ => continue,
        };
        if r.get_mut()
            .write_all(&reply)
            .and_then(|_| r.get_mut().flush())
            .is_err()
            || op == 0x8
        {
            return;
        }
    }
}

#[test]
fn echo_over_tls() {
    let (pem, cfg) = tls_identity("echo");
    let (addr, handshakes) = tls_echo_server(cfg);
    let ca = pem.to_str().unwrap();
    let r = loadgen(
        &[
            &["echo", "--addr", &addr, "--conns", "4", "--window", "4"][..],
            &["--size", "20000", "--tls-ca", ca],
            SHORT,
        ]
        .concat(),
    );
    assert_eq!(r.code, 0, "{}", r.json);
    assert!(r.num("msgs") > 50.0, "{}", r.json);
    assert_eq!(r.num("mismatches"), 0.0);
    assert_eq!(r.num("unanswered"), 0.0);
    assert_eq!(handshakes.load(Ordering::SeqCst), 4);
    let _ = std::fs::remove_file(pem);
}

#[test]
fn connect_over_tls_counts_handshakes() {
    let (pem, cfg) = tls_identity("connect");
    let (addr, handshakes) = tls_echo_server(cfg);
    let ca = pem.to_str().unwrap();
    let r = loadgen(&[
        "connect",
        "--addr",
        &addr,
        "--conns",
        "50",
        "--concurrency",
        "10",
        "--hold",
        "0.2",
        "--tls-ca",
        ca,
    ]);
    assert_eq!(r.code, 0, "{}", r.json);
    assert_eq!(handshakes.load(Ordering::SeqCst), 50, "{}", r.json);
    let _ = std::fs::remove_file(pem);
}

#[test]
fn untrusted_certificate_is_an_error() {
    let (pem, cfg) = tls_identity("server");
    let (other, _) = tls_identity("other");
    let (addr, handshakes) = tls_echo_server(cfg);
    let r = loadgen(&[
        "echo",
        "--addr",
        &addr,
        "--conns",
        "1",
        "--duration",
        "0.2",
        "--tls-ca",
        other.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{}", r.json);
    assert!(r.json.contains("certificate"), "{}", r.json);
    assert_eq!(handshakes.load(Ordering::SeqCst), 0);
    for f in [pem, other] {
        let _ = std::fs::remove_file(f);
    }
}

// ------------------------------------------------------------- WAMP v2

/// Faults of the tiny WAMP v2 router.
#[derive(Clone, Copy, Default)]
struct WampFaults {
    /// Answer the n-th CALL with another call's arguments.
    wrong_result_nth: Option<u64>,
    /// Skip every n-th EVENT to the first subscriber.
    drop_event_every: Option<u64>,
}

#[derive(Default)]
struct Router {
    /// Writers of every session, by connection id.
    socks: std::collections::HashMap<u64, TcpStream>,
    callee: Option<u64>,
    /// Invocation id -> (caller, its request id).
    calls: std::collections::HashMap<u64, (u64, String)>,
    next_inv: u64,
    call_count: u64,
    /// The arguments of the previous CALL (for the wrong-result fault).
    last_args: String,
    subscribers: Vec<u64>,
    published: u64,
}

/// A WAMP v2 router for the load tool's messages only (realm1, JSON, a
/// thread per connection): HELLO, REGISTER/CALL/YIELD, SUBSCRIBE/PUBLISH,
/// GOODBYE. Not a parser: the fields are split at commas, which the tool's
/// messages allow.
fn wamp2_server(f: WampFaults) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let router = Arc::new(Mutex::new(Router::default()));
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
            let r = router.clone();
            thread::spawn(move || serve_wamp2(s, id, f, r));
        }
    });
    addr
}

fn serve_wamp2(s: TcpStream, id: u64, f: WampFaults, router: Arc<Mutex<Router>>) {
    s.set_nodelay(true).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut key = String::new();
    let mut proto = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("sec-websocket-key") {
                key = v.trim().to_owned();
            } else if k.eq_ignore_ascii_case("sec-websocket-protocol") {
                proto = v.trim().to_owned();
            }
        }
    }
    assert_eq!(proto, "wamp.2.json", "the tool asks for wamp.2.json");
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes());
    write!(
        &s,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: wamp.2.json\r\n\r\n"
    )
    .unwrap();
    router
        .lock()
        .unwrap()
        .socks
        .insert(id, s.try_clone().unwrap());
    let send = |rt: &Router, to: u64, msg: &str| {
        if let Some(sock) = rt.socks.get(&to) {
            let _ = (&mut &*sock).write_all(&frame(0x1, msg.as_bytes()));
        }
    };
    while let Some((op, data)) = read_frame(&mut r) {
        if op == 0x8 {
            let _ = (&s).write_all(&frame(0x8, &data));
            break;
        }
        if op != 0x1 {
            continue;
        }
        let msg = String::from_utf8(data).unwrap();
        let inner = &msg[1..msg.len() - 1];
        let ty = inner.split(',').next().unwrap();
        let mut rt = router.lock().unwrap();
        match ty {
            "1" => {
                let realm = inner.split(',').nth(1).unwrap();
                if realm == "\"realm1\"" {
                    send(
                        &rt,
                        id,
                        &format!("[2,{id},{{\"roles\":{{\"broker\":{{}}}}}}]"),
                    );
                } else {
                    send(&rt, id, "[3,{},\"wamp.error.no_such_realm\"]");
                }
            }
            "64" => {
                rt.callee = Some(id);
                let req = inner.split(',').nth(1).unwrap();
                send(&rt, id, &format!("[65,{req},7]"));
            }
            "48" => {
                let p: Vec<&str> = inner.splitn(5, ',').collect();
                rt.call_count += 1;
                let args = if f.wrong_result_nth == Some(rt.call_count) {
                    rt.last_args.clone()
                } else {
                    p[4].to_owned()
                };
                rt.last_args = p[4].to_owned();
                rt.next_inv += 1;
                let inv = rt.next_inv;
                rt.calls.insert(inv, (id, p[1].to_owned()));
                let callee = rt.callee.unwrap();
                send(&rt, callee, &format!("[68,{inv},7,{{}},{args}]"));
            }
            "70" => {
                let p: Vec<&str> = inner.splitn(4, ',').collect();
                let (caller, req) = rt.calls.remove(&p[1].parse().unwrap()).unwrap();
                send(&rt, caller, &format!("[50,{req},{{}},{}]", p[3]));
            }
            "32" => {
                rt.subscribers.push(id);
                let req = inner.split(',').nth(1).unwrap();
                send(&rt, id, &format!("[33,{req},9]"));
            }
            "16" => {
                let args = inner.splitn(5, ',').nth(4).unwrap();
                rt.published += 1;
                let n = rt.published;
                let ev = format!("[36,9,{n},{{}},{args}]");
                let first = rt.subscribers.first().copied();
                for &sub in &rt.subscribers {
                    let skip = f.drop_event_every.is_some_and(|k| n.is_multiple_of(k))
                        && Some(sub) == first;
                    if !skip {
                        send(&rt, sub, &ev);
                    }
                }
            }
            "6" => send(&rt, id, "[6,{},\"wamp.close.goodbye_and_out\"]"),
            other => panic!("tiny router: unexpected message type {other}: {msg}"),
        }
    }
    let mut rt = router.lock().unwrap();
    rt.socks.remove(&id);
    rt.subscribers.retain(|&x| x != id);
    let _ = s.shutdown(Shutdown::Both);
}

#[test]
fn wamp2_rpc_counts_and_validates() {
    let addr = wamp2_server(WampFaults::default());
    let r = loadgen(
        &[
            &[
                "wamp2-rpc",
                "--addr",
                &addr,
                "--callers",
                "3",
                "--inflight",
                "4",
            ],
            SHORT,
        ]
        .concat(),
    );
    assert_eq!(r.code, 0, "{}", r.json);
    assert!(r.num("validated") > 100.0, "{}", r.json);
    assert_eq!(r.num("validated"), r.num("invocations"));
    assert_eq!(r.num("unanswered"), 0.0);
    assert!(r.num("calls_per_s") > 50.0);
    assert!(r.num("rtt_p50_us") > 0.0);
}

#[test]
fn wamp2_rpc_detects_a_wrong_result() {
    let addr = wamp2_server(WampFaults {
        wrong_result_nth: Some(50),
        ..Default::default()
    });
    let r = loadgen(&[&["wamp2-rpc", "--addr", &addr, "--callers", "2"], SHORT].concat());
    assert_eq!(r.code, 1, "{}", r.json);
    assert!(r.json.contains("carries the arguments"), "{}", r.json);
}

#[test]
fn wamp2_fanout_counts_every_delivery() {
    let addr = wamp2_server(WampFaults::default());
    let r = loadgen(
        &[
            &[
                "wamp2-fanout",
                "--addr",
                &addr,
                "--subs",
                "20",
                "--max-lag",
                "10",
            ],
            SHORT,
        ]
        .concat(),
    );
    assert_eq!(r.code, 0, "{}", r.json);
    assert_eq!(r.num("lost"), 0.0);
    assert_eq!(r.num("reordered"), 0.0);
    let (published, deliveries) = (r.num("published"), r.num("deliveries"));
    assert!(deliveries > 100.0, "{}", r.json);
    // Every event reaches all 20; the window may cut at most the lag bound.
    assert!(
        (deliveries - published * 20.0).abs() <= 10.0 * 20.0,
        "{}",
        r.json
    );
    // Open loop at a fixed rate: about that many events.
    let f = loadgen(
        &[
            &[
                "wamp2-fanout",
                "--addr",
                &addr,
                "--subs",
                "5",
                "--rate",
                "200",
            ],
            SHORT,
        ]
        .concat(),
    );
    assert_eq!(f.code, 0, "{}", f.json);
    let rate = f.num("publishes_per_s");
    assert!((150.0..250.0).contains(&rate), "{}", f.json);
}

#[test]
fn wamp2_fanout_detects_loss() {
    let addr = wamp2_server(WampFaults {
        drop_event_every: Some(7),
        ..Default::default()
    });
    let r = loadgen(
        &[
            &[
                "wamp2-fanout",
                "--addr",
                &addr,
                "--subs",
                "5",
                "--rate",
                "300",
            ],
            SHORT,
        ]
        .concat(),
    );
    assert_eq!(r.code, 1, "{}", r.json);
    assert!(r.num("lost") > 0.0, "{}", r.json);
}

#[test]
fn wamp2_idle_opens_and_says_goodbye() {
    let addr = wamp2_server(WampFaults::default());
    let r = loadgen(&[
        "wamp2-idle",
        "--addr",
        &addr,
        "--sessions",
        "100",
        "--concurrency",
        "20",
        "--hold",
        "0.2",
    ]);
    assert_eq!(r.code, 0, "{}", r.json);
    assert_eq!(r.num("welcomed"), 100.0);
    assert_eq!(r.num("goodbyes_answered"), 100.0);
    r.num("rss_per_session");
}

#[test]
fn wamp2_abort_is_an_error() {
    let addr = wamp2_server(WampFaults::default());
    let r = loadgen(&[
        "wamp2-idle",
        "--addr",
        &addr,
        "--sessions",
        "3",
        "--realm",
        "nope",
    ]);
    assert_eq!(r.code, 1, "{}", r.json);
    assert!(r.json.contains("no_such_realm"), "{}", r.json);
}

/// The three WAMP v2 modes against the real router.
#[test]
fn sprocket_wamp2() {
    let bin = sprocket_binary();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(bin)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--ping-interval",
            "0",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if TcpStream::connect(&addr).is_ok() {
            break;
        }
        thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    let base = ["--addr", &addr, "--server-pid", &pid];
    let rpc = loadgen(&[&["wamp2-rpc", "--callers", "3"], &base[..], SHORT].concat());
    let fan = loadgen(&[&["wamp2-fanout", "--subs", "50"], &base[..], SHORT].concat());
    let idle = loadgen(
        &[
            &["wamp2-idle", "--sessions", "100", "--hold", "0.2"],
            &base[..],
        ]
        .concat(),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(rpc.code, 0, "{}", rpc.json);
    assert!(rpc.num("validated") > 100.0);
    assert!(rpc.num("server_cpu_us_per_call") > 0.0, "{}", rpc.json);
    assert_eq!(fan.code, 0, "{}", fan.json);
    assert_eq!(fan.num("lost"), 0.0);
    assert!(fan.num("deliveries") > 100.0);
    assert_eq!(idle.code, 0, "{}", idle.json);
    assert_eq!(idle.num("goodbyes_answered"), 100.0);
}

/// sprocket with one Pusher app (`--pusher-app 1:key:secret`), on a free
/// port: the child and its address.
fn sprocket_pusher() -> (std::process::Child, String) {
    let bin = sprocket_binary();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--ping-interval",
            "0",
            "--pusher-app",
            "1:key:secret",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if TcpStream::connect(&addr).is_ok() {
            break;
        }
        thread::sleep(std::time::Duration::from_millis(20));
    }
    (child, addr)
}

/// The three Pusher modes against the real server: every event triggered
/// through the signed HTTP API reaches every subscriber, in order.
#[test]
fn sprocket_pusher_modes() {
    let (mut child, addr) = sprocket_pusher();
    let pid = child.id().to_string();
    let base = ["--addr", &addr, "--server-pid", &pid];
    let fan = loadgen(
        &[
            &["pusher-fanout", "--subs", "50", "--pubs", "4"],
            &base[..],
            SHORT,
        ]
        .concat(),
    );
    let rated = loadgen(
        &[
            &[
                "pusher-fanout",
                "--subs",
                "20",
                "--pubs",
                "2",
                "--rate",
                "200",
            ],
            &base[..],
            SHORT,
        ]
        .concat(),
    );
    let conn = loadgen(
        &[
            &["pusher-connect", "--conns", "300", "--hold", "0.2"],
            &base[..],
        ]
        .concat(),
    );
    let idle = loadgen(
        &[
            &[
                "pusher-idle",
                "--conns",
                "200",
                "--channels",
                "7",
                "--hold",
                "0.2",
            ],
            &base[..],
        ]
        .concat(),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(fan.code, 0, "{}", fan.json);
    assert_eq!(fan.num("lost"), 0.0);
    assert_eq!(fan.num("reordered"), 0.0);
    assert!(fan.num("deliveries") > 500.0, "{}", fan.json);
    assert_eq!(fan.num("answered"), fan.num("requests"), "{}", fan.json);
    assert!(fan.num("server_cpu_us_per_delivery") > 0.0, "{}", fan.json);
    // Every event reaches all 50; the window may cut at most the lag bound.
    let (published, deliveries) = (fan.num("published"), fan.num("deliveries"));
    assert!(
        (deliveries - published * 50.0).abs() <= 10.0 * 50.0,
        "{}",
        fan.json
    );
    assert_eq!(rated.code, 0, "{}", rated.json);
    let p = rated.num("publishes_per_s");
    assert!((150.0..250.0).contains(&p), "{}", rated.json);
    assert_eq!(conn.code, 0, "{}", conn.json);
    assert_eq!(conn.num("established"), 300.0);
    assert!(conn.num("rss_per_conn") > 0.0, "{}", conn.json);
    assert_eq!(idle.code, 0, "{}", idle.json);
    assert_eq!(idle.num("subscribed"), 200.0);
}

/// A wrong secret (the API answers 401) and a wrong key (pusher:error
/// 4001 on connect) fail the run.
#[test]
fn sprocket_pusher_refusals() {
    let (mut child, addr) = sprocket_pusher();
    let bad_secret = loadgen(
        &[
            &[
                "pusher-fanout",
                "--addr",
                &addr,
                "--subs",
                "5",
                "--secret",
                "wrong",
            ],
            SHORT,
        ]
        .concat(),
    );
    let bad_key = loadgen(&[
        "pusher-connect",
        "--addr",
        &addr,
        "--conns",
        "5",
        "--key",
        "nokey",
    ]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(bad_secret.code, 1, "{}", bad_secret.json);
    assert!(bad_secret.json.contains("401"), "{}", bad_secret.json);
    assert_eq!(bad_key.code, 1, "{}", bad_key.json);
    assert!(bad_key.json.contains("4001"), "{}", bad_key.json);
}
