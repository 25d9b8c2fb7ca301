//! The real client behind a trusted proxy: `X-Forwarded-For` or `Forwarded`
//! (whichever `--forwarded-header` names; the other is ignored) and the
//! PROXY protocol (v1, v2) decide what `--block` and the per-IP
//! limit see; the same headers from anyone else change nothing. Clients
//! connect from distinct loopback sources (all of 127/8 is loopback).

mod common;

use common::{TestServer, status_of, upgrade_request};
use sprocket::app::Admin;
use sprocket::proxy::ForwardedHeader;
use sprocket::{Config, Echo, IpBlocklist, Router};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A TCP connection to `addr` from the loopback address `src`.
fn connect_from(src: [u8; 4], addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((src, 0)).into()).unwrap();
    s.connect(&addr.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Sends `bytes` and returns what came back until the head is in or the
/// server closed.
fn exchange(s: &mut TcpStream, bytes: &[u8]) -> String {
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn server(proxy_protocol: bool, per_ip: usize) -> TestServer {
    server_reading(ForwardedHeader::default(), proxy_protocol, per_ip)
}

fn server_reading(read: ForwardedHeader, proxy_protocol: bool, per_ip: usize) -> TestServer {
    let cfg = Config {
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        forwarded_header: read,
        proxy_protocol,
        max_connections_per_ip: per_ip,
        ..Config::default()
    };
    let blocked = ["127.0.0.5".parse().unwrap(), "127.0.0.9".parse().unwrap()];
    // `/metrics` (Admin) beside the echo, to read the counters.
    let app = move || {
        let routes = Router::new().route("/", Echo).route("/metrics", Admin);
        IpBlocklist::new(routes, blocked)
    };
    TestServer::start(cfg, app)
}

fn handshake(extra: &[(&str, &str)]) -> Vec<u8> {
    upgrade_request("/", extra).into_bytes()
}

/// The status of a handshake with headers `h` from `src`.
fn status_from(srv: &TestServer, src: [u8; 4], h: &[(&str, &str)]) -> u16 {
    let mut s = connect_from(src, srv.addr);
    status_of(&exchange(&mut s, &handshake(h)))
}

/// `sprocket_forwarded_*_total` (`outcome` is `used`, `ignored`,
/// `other_header_ignored`) of `srv`'s metrics page.
fn forwarded_metric(srv: &TestServer, outcome: &str) -> u64 {
    let mut s = connect_from([127, 0, 0, 30], srv.addr);
    let page = exchange(
        &mut s,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    // The head is in; the body may follow in more reads.
    let mut rest = String::new();
    let _ = s.read_to_string(&mut rest);
    let page = page + &rest;
    let series = format!("sprocket_forwarded_{outcome}_total");
    common::metric(&page, &series).unwrap_or_else(|| panic!("no {series} in {page}"))
}

#[test]
fn x_forwarded_for_from_a_trusted_proxy_by_default() {
    let srv = server(false, 0);
    let via_proxy = |h: &[(&str, &str)]| status_from(&srv, [127, 0, 0, 1], h);
    assert_eq!(via_proxy(&[("X-Forwarded-For", "127.0.0.5")]), 403);
    assert_eq!(via_proxy(&[("X-Forwarded-For", "127.0.0.6")]), 101);
    // A client prepending an unblocked address is still itself.
    assert_eq!(
        via_proxy(&[("X-Forwarded-For", "127.0.0.6, 127.0.0.5")]),
        403
    );
    // The hole behind nginx setting X-Forwarded-For only: the blocked
    // client's own Forwarded comes through untouched, and is not read.
    let forged = [
        ("Forwarded", "for=127.0.0.6"),
        ("X-Forwarded-For", "127.0.0.5"),
    ];
    assert_eq!(via_proxy(&forged), 403);
    // Forwarded alone does not move the client off the proxy's address
    // (127.0.0.1, not blocked), whatever it names.
    assert_eq!(via_proxy(&[("Forwarded", "for=127.0.0.5")]), 101);
    assert_eq!(forwarded_metric(&srv, "other_header_ignored"), 2);
    assert_eq!(forwarded_metric(&srv, "used"), 4);
    assert_eq!(forwarded_metric(&srv, "ignored"), 0);
    // Straight from 127.0.0.9 (blocked, not a trusted proxy): the header
    // that would unblock it is ignored.
    let spoof = [("X-Forwarded-For", "127.0.0.6")];
    assert_eq!(status_from(&srv, [127, 0, 0, 9], &spoof), 403);
    // 127.0.0.7 is not blocked, and its headers naming 127.0.0.5 are ignored.
    for h in [
        ("X-Forwarded-For", "127.0.0.5"),
        ("Forwarded", "for=127.0.0.5"),
    ] {
        assert_eq!(status_from(&srv, [127, 0, 0, 7], &[h]), 101);
    }
    assert_eq!(forwarded_metric(&srv, "ignored"), 3);
}

#[test]
fn only_forwarded_with_forwarded_header_forwarded() {
    let srv = server_reading(ForwardedHeader::Forwarded, false, 0);
    let via_proxy = |h: &[(&str, &str)]| status_from(&srv, [127, 0, 0, 1], h);
    assert_eq!(
        via_proxy(&[("Forwarded", "for=127.0.0.5;proto=https")]),
        403
    );
    assert_eq!(via_proxy(&[("Forwarded", "for=\"127.0.0.6:4711\"")]), 101);
    // A forged X-Forwarded-For passed through by the proxy is not read.
    let forged = [
        ("X-Forwarded-For", "127.0.0.6"),
        ("Forwarded", "for=127.0.0.5"),
    ];
    assert_eq!(via_proxy(&forged), 403);
    assert_eq!(via_proxy(&[("X-Forwarded-For", "127.0.0.5")]), 101);
    assert_eq!(forwarded_metric(&srv, "other_header_ignored"), 2);
    assert_eq!(forwarded_metric(&srv, "used"), 3);
    // An untrusted peer's headers are ignored here too.
    let spoof = [("Forwarded", "for=127.0.0.6")];
    assert_eq!(status_from(&srv, [127, 0, 0, 9], &spoof), 403);
    let frame = [("Forwarded", "for=127.0.0.5")];
    assert_eq!(status_from(&srv, [127, 0, 0, 7], &frame), 101);
    assert_eq!(forwarded_metric(&srv, "ignored"), 2);
}

#[test]
fn per_ip_limit_counts_the_client_not_the_proxy() {
    let srv = server(false, 1);
    let mut open = Vec::new();
    for client in ["127.0.0.6", "127.0.0.7", "127.0.0.8"] {
        let mut s = connect_from([127, 0, 0, 1], srv.addr);
        let resp = exchange(&mut s, &handshake(&[("X-Forwarded-For", client)]));
        assert_eq!(status_of(&resp), 101, "{client}: {resp}");
        open.push(s);
    }
    let mut s = connect_from([127, 0, 0, 1], srv.addr);
    let resp = exchange(&mut s, &handshake(&[("X-Forwarded-For", "127.0.0.7")]));
    assert_eq!(status_of(&resp), 429, "{resp}");
    // A direct client is still counted at accept.
    let _first = connect_from([127, 0, 0, 20], srv.addr);
    std::thread::sleep(Duration::from_millis(100));
    let mut second = connect_from([127, 0, 0, 20], srv.addr);
    assert_eq!(status_of(&exchange(&mut second, &handshake(&[]))), 429);
}

fn v2_header(src: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&443u16.to_be_bytes());
    h
}

#[test]
fn proxy_protocol_v1_and_v2() {
    let srv = server(true, 0);
    let through = |header: Vec<u8>| {
        let mut s = connect_from([127, 0, 0, 1], srv.addr);
        let mut bytes = header;
        bytes.extend_from_slice(&handshake(&[]));
        status_of(&exchange(&mut s, &bytes))
    };
    assert_eq!(
        through(b"PROXY TCP4 127.0.0.5 127.0.0.1 4000 443\r\n".to_vec()),
        403
    );
    assert_eq!(
        through(b"PROXY TCP4 127.0.0.6 127.0.0.1 4000 443\r\n".to_vec()),
        101
    );
    assert_eq!(through(v2_header([127, 0, 0, 5], 4001)), 403);
    assert_eq!(through(v2_header([127, 0, 0, 6], 4001)), 101);
    // The header alone in its own segment, the request later.
    let mut s = connect_from([127, 0, 0, 1], srv.addr);
    s.write_all(&v2_header([127, 0, 0, 5], 4002)[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(&v2_header([127, 0, 0, 5], 4002)[10..]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(status_of(&exchange(&mut s, &handshake(&[]))), 403);
    // No header: closed without an answer.
    let mut s = connect_from([127, 0, 0, 1], srv.addr);
    assert_eq!(exchange(&mut s, &handshake(&[])), "");
    // A header from an untrusted peer does not change its address.
    assert_eq!(
        {
            let mut s = connect_from([127, 0, 0, 9], srv.addr);
            let mut bytes = b"PROXY TCP4 127.0.0.6 127.0.0.1 4000 443\r\n".to_vec();
            bytes.extend_from_slice(&handshake(&[]));
            status_of(&exchange(&mut s, &bytes))
        },
        403
    );
}
