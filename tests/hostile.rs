//! The bad-input suite: more than 50 malformed or hostile inputs, each with
//! the exact answer it must get, while a healthy client on another
//! connection keeps doing round trips the whole time.

mod common;
use common::*;
use sprocket::Config;
use sprocket::app::{Echo, Router};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a hostile input must get.
enum Expect {
    /// An HTTP answer with this status, then the connection closed.
    Status(u16),
    /// After the handshake: a close frame with this code, then TCP closed.
    Close(u16),
    /// The connection closed with nothing sent back.
    SilentClose,
}

fn config() -> Config {
    Config {
        max_message_size: 64 * 1024,
        max_frame_size: 32 * 1024,
        handshake_timeout: Duration::from_millis(300),
        ..Config::default()
    }
}

fn ok_request() -> String {
    upgrade_request("/echo", &[])
}

/// HTTP-level inputs: raw bytes instead of a valid handshake.
fn http_cases() -> Vec<(String, Vec<u8>, Expect)> {
    let ok = ok_request();
    let with = |from: &str, to: &str| ok.replacen(from, to, 1).into_bytes();
    let header = |h: &str| {
        with(
            "Host: 127.0.0.1\r\n",
            &format!("Host: 127.0.0.1\r\n{h}\r\n"),
        )
    };
    let mut flood = String::from("GET /echo HTTP/1.1\r\nHost: x\r\n");
    for i in 0..100 {
        flood.push_str(&format!("X-Flood-{i}: y\r\n"));
    }
    flood.push_str("\r\n");
    let mut tls_hello = vec![
        0x16, 0x03, 0x01, 0x00, 0xA5, 0x01, 0x00, 0x00, 0xA1, 0x03, 0x03,
    ];
    tls_hello.extend_from_slice(&[0u8; 32]);
    use Expect::*;
    vec![
        (
            "head over 8 KiB".into(),
            header(&format!("X-Big: {}", "a".repeat(9000))),
            Status(431),
        ),
        ("100 header fields".into(), flood.into_bytes(), Status(431)),
        (
            "key not base64".into(),
            with(KEY, "not*base64*at*all"),
            Status(400),
        ),
        (
            "key of 15 bytes".into(),
            with(KEY, "AAAAAAAAAAAAAAAAAAAA"),
            Status(400),
        ),
        (
            "missing key".into(),
            with(&format!("Sec-WebSocket-Key: {KEY}\r\n"), ""),
            Status(400),
        ),
        (
            "duplicate key".into(),
            header(&format!("Sec-WebSocket-Key: {KEY}")),
            Status(400),
        ),
        (
            "version 8".into(),
            with("Version: 13", "Version: 8"),
            Status(426),
        ),
        (
            "version list".into(),
            with("Version: 13", "Version: 13, 8"),
            Status(426),
        ),
        (
            "missing version".into(),
            with("Sec-WebSocket-Version: 13\r\n", ""),
            Status(400),
        ),
        ("duplicate host".into(), header("Host: evil"), Status(400)),
        (
            "empty host".into(),
            with("Host: 127.0.0.1", "Host:"),
            Status(400),
        ),
        (
            "chunked body".into(),
            header("Transfer-Encoding: chunked"),
            Status(400),
        ),
        (
            "content length".into(),
            header("Content-Length: 10"),
            Status(400),
        ),
        (
            "conflicting content lengths".into(),
            header("Content-Length: 0\r\nContent-Length: 5"),
            Status(400),
        ),
        (
            "obs-fold".into(),
            header(" folded-continuation"),
            Status(400),
        ),
        (
            "bare LF".into(),
            with("Upgrade: websocket\r\n", "Upgrade: websocket\n"),
            Status(400),
        ),
        (
            "bare CR".into(),
            with("Upgrade: websocket\r\n", "Upgrade: websocket\rX: y\r\n"),
            Status(400),
        ),
        ("NUL in header".into(), header("X-Nul: a\0b"), Status(400)),
        (
            "control character in header".into(),
            with("Host: 127.0.0.1", "Host: \u{1}"),
            Status(400),
        ),
        (
            "non-UTF-8 header value".into(),
            {
                let mut b = header("X-Latin1: caf");
                let at = b.windows(3).position(|w| w == b"caf").unwrap() + 3;
                b.insert(at, 0xE9);
                b
            },
            Status(400),
        ),
        (
            "space before colon".into(),
            header("X-Bad : 1"),
            Status(400),
        ),
        (
            "four-part request line".into(),
            with("GET /echo HTTP/1.1", "GET /echo HTTP/1.1 extra"),
            Status(400),
        ),
        ("HTTP/2.0".into(), with("HTTP/1.1", "HTTP/2.0"), Status(400)),
        ("HTTP/1.0".into(), with("HTTP/1.1", "HTTP/1.0"), Status(400)),
        ("lowercase method".into(), with("GET", "get"), Status(405)),
        ("POST".into(), with("GET", "POST"), Status(405)),
        (
            "unknown path".into(),
            with("/echo", "/../etc/passwd"),
            Status(404),
        ),
        (
            "Connection without upgrade".into(),
            with("Connection: Upgrade", "Connection: keep-alive"),
            Status(400),
        ),
        ("empty request".into(), b"\r\n\r\n".to_vec(), Status(400)),
        (
            "TLS ClientHello on plain port".into(),
            tls_hello,
            Status(400),
        ),
        (
            "slowloris head".into(),
            b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_vec(),
            Status(408),
        ),
        (
            "truncated head then FIN".into(),
            b"GET /echo HTTP/1.1\r\nHo".to_vec(),
            SilentClose,
        ),
    ]
}

fn frame_cases() -> Vec<(String, Vec<u8>, Expect)> {
    use Expect::*;
    let mut cases: Vec<(String, Vec<u8>, Expect)> = Vec::new();
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        cases.push((
            format!("reserved opcode {op:#x}"),
            masked_frame(0x80 | op, b""),
            Close(1002),
        ));
    }
    for rsv in 1u8..=7 {
        cases.push((
            format!("RSV bits {rsv:03b}"),
            masked_frame(0x81 | (rsv << 4), b"x"),
            Close(1002),
        ));
    }
    let utf8_text = |bytes: &[u8]| masked_frame(0x81, bytes);
    let mut bad_second_fragment = masked_frame(0x01, "ok so far ".as_bytes());
    bad_second_fragment.extend(masked_frame(0x80, &[b'a', 0xFE]));
    let mut split_code_point = masked_frame(0x01, &[0xE2, 0x82]);
    split_code_point.extend(masked_frame(0x80, &[0xAC, b'!']));
    let over_message: Vec<u8> = [
        masked_frame(0x02, &[0; 32 * 1024]),
        masked_frame(0x00, &[0; 32 * 1024]),
        masked_frame(0x80, &[0; 1]),
    ]
    .concat();
    cases.extend([
        ("unmasked frame".into(), vec![0x81, 0x01, b'x'], Close(1002)),
        (
            "ping of 126 bytes".into(),
            masked_frame(0x89, &[0; 126]),
            Close(1002),
        ),
        (
            "pong of 126 bytes".into(),
            masked_frame(0x8A, &[0; 126]),
            Close(1002),
        ),
        (
            "close of 126 bytes".into(),
            masked_frame(0x88, &[0x03; 126]),
            Close(1002),
        ),
        (
            "fragmented ping".into(),
            masked_frame(0x09, b"p"),
            Close(1002),
        ),
        (
            "fragmented close".into(),
            masked_frame(0x08, &[0x03, 0xE8]),
            Close(1002),
        ),
        (
            "continuation first".into(),
            masked_frame(0x80, b"x"),
            Close(1002),
        ),
        (
            "text inside fragmented".into(),
            [masked_frame(0x01, b"a"), masked_frame(0x81, b"b")].concat(),
            Close(1002),
        ),
        (
            "close with 1 byte".into(),
            masked_frame(0x88, &[0x03]),
            Close(1002),
        ),
        (
            "close reason bad UTF-8".into(),
            masked_frame(0x88, &[0x03, 0xE8, 0xC3, 0x28]),
            Close(1007),
        ),
        (
            "invalid lead byte".into(),
            utf8_text(&[0xFF, b'a']),
            Close(1007),
        ),
        (
            "lone continuation byte".into(),
            utf8_text(&[b'a', 0x80]),
            Close(1007),
        ),
        (
            "overlong 2-byte".into(),
            utf8_text(&[0xC0, 0xAF]),
            Close(1007),
        ),
        (
            "overlong 3-byte".into(),
            utf8_text(&[0xE0, 0x80, 0xAF]),
            Close(1007),
        ),
        (
            "surrogate".into(),
            utf8_text(&[0xED, 0xA0, 0x80]),
            Close(1007),
        ),
        (
            "above U+10FFFF".into(),
            utf8_text(&[0xF4, 0x90, 0x80, 0x80]),
            Close(1007),
        ),
        (
            "truncated at message end".into(),
            utf8_text(&[b'a', 0xE2, 0x82]),
            Close(1007),
        ),
        (
            "invalid in second fragment".into(),
            bad_second_fragment,
            Close(1007),
        ),
        (
            "2^40 declared, no payload".into(),
            [
                vec![0x82, 0xFF],
                (1u64 << 40).to_be_bytes().to_vec(),
                vec![1, 2, 3, 4],
            ]
            .concat(),
            Close(1009),
        ),
        (
            "64-bit length top bit".into(),
            [
                vec![0x82, 0xFF],
                (1u64 << 63).to_be_bytes().to_vec(),
                vec![1, 2, 3, 4],
            ]
            .concat(),
            Close(1002),
        ),
        (
            "frame over limit".into(),
            masked_frame(0x82, &[0; 32 * 1024 + 1]),
            Close(1009),
        ),
        ("message over limit".into(), over_message, Close(1009)),
        (
            "code point split over fragments, then close".into(),
            [split_code_point, masked_frame(0x88, &[0x03, 0xE8])].concat(),
            Close(1000),
        ),
    ]);
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        cases.push((
            format!("close code {code}"),
            masked_frame(0x88, &code.to_be_bytes()),
            Close(1002),
        ));
    }
    cases
}

/// Echo round trips in a loop until told to stop; counts them and
/// remembers the slowest.
fn healthy(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    worst_ms: Arc<AtomicU64>,
) {
    let mut c = Client::connect(addr, "/echo", &[]);
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        c.echo(&format!("healthy {i}"));
        worst_ms.fetch_max(t.elapsed().as_millis() as u64, Ordering::Relaxed);
        rounds.fetch_add(1, Ordering::Relaxed);
        i += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn check_http(addr: std::net::SocketAddr, name: &str, bytes: &[u8], expect: &Expect) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    if matches!(expect, Expect::SilentClose) {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut out = Vec::new();
    let result = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    match expect {
        Expect::Status(status) => {
            assert_eq!(
                status_of(&text),
                *status,
                "{name}: got {text:?} ({result:?})"
            );
            assert!(text.contains("Connection: close\r\n"), "{name}");
            let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
            assert!(
                body.ends_with('\n') && body.lines().count() == 1,
                "{name}: one-line reason, got {body:?}"
            );
        }
        Expect::SilentClose => assert!(out.is_empty() && result.is_ok(), "{name}: got {text:?}"),
        Expect::Close(_) => unreachable!(),
    }
}

fn check_frames(addr: std::net::SocketAddr, name: &str, bytes: &[u8], code: u16) {
    let mut c = Client::connect(addr, "/echo", &[]);
    c.send_raw(bytes);
    let f = loop {
        let f = c.read_frame();
        if f.opcode != 1 && f.opcode != 2 {
            break f; // the split-code-point case echoes its message first
        }
    };
    assert_eq!(
        (f.opcode, f.close_code()),
        (8, Some(code)),
        "{name}: got {f:?}"
    );
    assert_eq!(
        c.read_timeout(Duration::from_secs(5)),
        Read_::Eof,
        "{name}: TCP must close"
    );
}

#[test]
fn hostile_inputs_get_exact_answers_and_harm_nobody_else() {
    let srv = TestServer::start(config(), || Router::new().route("/echo", Echo));
    let (stop, rounds, worst) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let bystander = {
        let (addr, stop, rounds, worst) = (srv.addr, stop.clone(), rounds.clone(), worst.clone());
        std::thread::spawn(move || healthy(addr, stop, rounds, worst))
    };
    wait_until("bystander running", || rounds.load(Ordering::Relaxed) > 0);

    let http = http_cases();
    let frames = frame_cases();
    let total = http.len() + frames.len();
    for (name, bytes, expect) in &http {
        let before = rounds.load(Ordering::Relaxed);
        check_http(srv.addr, name, bytes, expect);
        wait_until(&format!("bystander round trip after {name}"), || {
            rounds.load(Ordering::Relaxed) > before
        });
    }
    for (name, bytes, expect) in &frames {
        let Expect::Close(code) = expect else {
            unreachable!()
        };
        let before = rounds.load(Ordering::Relaxed);
        check_frames(srv.addr, name, bytes, *code);
        wait_until(&format!("bystander round trip after {name}"), || {
            rounds.load(Ordering::Relaxed) > before
        });
    }

    // A ping flood is answered in full, in order, without hurting others.
    let mut flooder = Client::connect(srv.addr, "/echo", &[]);
    let mut pings = Vec::new();
    for i in 0..5000u32 {
        pings.extend(masked_frame(0x89, &i.to_be_bytes()));
    }
    flooder.send_raw(&pings);
    for i in 0..5000u32 {
        let f = flooder.read_frame();
        assert_eq!(
            (f.opcode, f.payload.as_slice()),
            (0xA, &i.to_be_bytes()[..])
        );
    }

    // A connection storm: 300 clients connect, upgrade and vanish.
    for _ in 0..300 {
        let c = Client::connect(srv.addr, "/echo", &[]);
        drop(c);
    }
    // A peer killed mid-frame, and one that half-closes mid-frame.
    let mut dead = Client::connect(srv.addr, "/echo", &[]);
    dead.send_raw(&masked_frame(0x82, &[7; 1000])[..500]);
    drop(dead);
    let mut half = Client::connect(srv.addr, "/echo", &[]);
    half.send_raw(&masked_frame(0x82, &[7; 1000])[..500]);
    half.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(half.read_timeout(Duration::from_secs(5)), Read_::Eof);

    stop.store(true, Ordering::Relaxed);
    bystander
        .join()
        .expect("bystander never failed a round trip");
    assert!(total >= 50, "only {total} hostile inputs");
    let worst = worst.load(Ordering::Relaxed);
    eprintln!(
        "{total} hostile inputs; bystander: {} round trips, slowest {worst} ms",
        rounds.load(Ordering::Relaxed)
    );
    assert!(worst < 1000, "a bystander round trip took {worst} ms");
}
