//! Opening handshake over real TCP: statuses, reasons, negotiation, limits.

mod common;
use common::*;
use sprocket::app::{
    Application, Cidr, ConnId, Context, Echo, IpBlocklist, Message, OriginCheck, Router,
};
use sprocket::{Config, Request};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn default_server() -> TestServer {
    TestServer::start(Config::default(), move || {
        Router::new()
            .route("/echo", Echo)
            .route("/health", sprocket::app::Admin)
    })
}

#[test]
fn rfc_accept_key_and_echo() {
    let srv = default_server();
    let mut c = srv.client("/echo");
    assert_eq!(
        c.header("Sec-WebSocket-Accept").as_deref(),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert_eq!(c.header("Sec-WebSocket-Protocol"), None);
    c.echo("hello");
}

#[test]
fn request_split_at_every_byte_still_upgrades() {
    let srv = default_server();
    let req = upgrade_request("/echo", &[]);
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_nodelay(true).unwrap();
    for b in req.as_bytes() {
        s.write_all(&[*b]).unwrap();
    }
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[test]
fn statuses_with_reasons() {
    let srv = default_server();
    let ok = upgrade_request("/echo", &[]);
    let cases: Vec<(String, u16, &str)> = vec![
        (ok.replace("GET", "POST"), 405, "only GET"),
        (
            ok.replace("/echo", "/nowhere"),
            404,
            "no application at /nowhere",
        ),
        (
            ok.replace("Version: 13", "Version: 8"),
            426,
            "unsupported WebSocket version",
        ),
        (ok.replace(KEY, "short"), 400, "Sec-WebSocket-Key"),
        (
            ok.replace("Sec-WebSocket-Version: 13\r\n", ""),
            400,
            "missing Sec-WebSocket-Version",
        ),
        (ok.replace("Host: 127.0.0.1\r\n", ""), 400, "missing Host"),
        (
            ok.replace("Connection: Upgrade", "Connection: close"),
            400,
            "Connection header",
        ),
        (ok.replace("HTTP/1.1", "HTTP/1.0"), 400, "HTTP/1.1"),
        (ok.replace("Host:", "Host : "), 400, "malformed header"),
        (ok.replace("\r\nUpgrade", "\nUpgrade"), 400, "bare LF"),
        (
            ok.replace(
                "Upgrade: websocket\r\n",
                "Upgrade: websocket\r\n folded\r\n",
            ),
            400,
            "folding",
        ),
        (
            "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            426,
            "upgrade required",
        ),
        (
            format!(
                "GET /echo HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
                "a".repeat(9000)
            ),
            431,
            "too large",
        ),
    ];
    for (req, status, reason) in cases {
        let resp = http_exchange(srv.addr, req.as_bytes());
        assert_eq!(status_of(&resp), status, "request {req:?} got {resp:?}");
        assert!(
            resp.contains(reason),
            "reason {reason:?} missing from {resp:?}"
        );
    }
    let resp = http_exchange(srv.addr, ok.replace("Version: 13", "Version: 8").as_bytes());
    assert!(
        resp.contains("\r\nSec-WebSocket-Version: 13\r\n"),
        "426 names the version: {resp}"
    );
    // RFC 9110 §15.5.22: a 426 MUST send Upgrade.
    assert!(
        resp.contains("\r\nUpgrade: websocket\r\n"),
        "426 names the protocol: {resp}"
    );
}

#[test]
fn absolute_form_request_target_is_accepted() {
    // RFC 9112 §3.2.2: a server MUST accept the absolute form.
    let srv = default_server();
    let target = format!("http://{}/echo?room=1", srv.addr);
    let req = upgrade_request("/echo", &[]).replacen("/echo", &target, 1);
    let mut c = Client::connect_raw(srv.addr, req.as_bytes());
    assert_eq!(status_of(&c.response), 101, "{}", c.response);
    c.echo("absolute");
}

#[test]
fn health_endpoint() {
    let srv = default_server();
    let resp = http_exchange(srv.addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp.ends_with("\r\n\r\nok\n"), "{resp}");
}

#[test]
fn origin_and_ip_refusals() {
    let app = || OriginCheck::new(Router::new().route("/echo", Echo), ["good.example"]);
    let srv = TestServer::start(Config::default(), app);
    let c = Client::try_connect(srv.addr, "/echo", &[("Origin", "https://evil.example")]);
    assert_eq!(status_of(&c.response), 403);
    let c = Client::try_connect(srv.addr, "/echo", &[]);
    assert_eq!(
        status_of(&c.response),
        403,
        "no Origin with an allow-list is refused"
    );
    Client::connect(srv.addr, "/echo", &[("Origin", "https://good.example")]).echo("in");

    let blocked: Cidr = "127.0.0.0/8".parse().unwrap();
    let srv = TestServer::start(Config::default(), move || IpBlocklist::new(Echo, [blocked]));
    let c = Client::try_connect(srv.addr, "/", &[]);
    assert_eq!(status_of(&c.response), 403);
    let open: Cidr = "10.0.0.0/8".parse().unwrap();
    let srv = TestServer::start(Config::default(), move || IpBlocklist::new(Echo, [open]));
    Client::connect(srv.addr, "/", &[]).echo("not blocked");
}

struct Wamp;
impl Application for Wamp {
    fn protocols(&self) -> &[&str] {
        &["wamp"]
    }
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) {
        ctx.send_text(conn, req.protocol.as_deref().unwrap_or("none"));
    }
    fn on_message(&mut self, _: &mut Context<'_>, _: ConnId, _: Message<'_>) {}
    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, _: u16, _: &str) {}
}

#[test]
fn subprotocol_negotiation() {
    let srv = TestServer::start(Config::default(), move || Wamp);
    let mut c = Client::connect(srv.addr, "/", &[("Sec-WebSocket-Protocol", "mqtt, wamp")]);
    assert_eq!(c.header("Sec-WebSocket-Protocol").as_deref(), Some("wamp"));
    assert_eq!(c.read_text(), "wamp");
    // RFC 6455 §4.2.2: none of ours offered, so no protocol header at all.
    let mut c = Client::connect(srv.addr, "/", &[("Sec-WebSocket-Protocol", "mqtt")]);
    assert_eq!(c.header("Sec-WebSocket-Protocol"), None);
    assert_eq!(c.read_text(), "none");
}

#[test]
fn slowloris_gets_408_and_is_closed() {
    let cfg = Config {
        handshake_timeout: Duration::from_millis(200),
        ..Config::default()
    };
    let srv = TestServer::start(cfg, move || Echo);
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert_eq!(status_of(&out), 408, "{out}");
    // Meanwhile the server still works.
    Client::connect(srv.addr, "/", &[]).echo("alive");
}

#[test]
fn connection_limit_answers_503() {
    let cfg = Config {
        max_connections: 2,
        ..Config::default()
    };
    let srv = TestServer::start(cfg, move || Echo);
    let mut a = Client::connect(srv.addr, "/", &[]);
    let mut b = Client::connect(srv.addr, "/", &[]);
    let c = Client::try_connect(srv.addr, "/", &[]);
    assert_eq!(status_of(&c.response), 503, "{}", c.response);
    a.echo("a");
    b.echo("b");
}

#[test]
fn pages_are_served_to_plain_gets() {
    use sprocket::app::Page;
    let srv = TestServer::start(Config::default(), || {
        Router::new()
            .page(
                "/",
                Page::ok("text/html; charset=utf-8", &b"<h1>demo</h1>"[..]),
            )
            .route("/echo", Echo)
    });
    let resp = http_exchange(srv.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp.contains("Content-Type: text/html; charset=utf-8\r\n"));
    assert!(resp.ends_with("\r\n\r\n<h1>demo</h1>"));
    let resp = http_exchange(srv.addr, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&resp), 426);
}

#[test]
fn per_ip_limit_answers_429() {
    let cfg = Config {
        max_connections_per_ip: 2,
        ..Config::default()
    };
    let srv = TestServer::start(cfg, || Echo);
    let mut a = Client::connect(srv.addr, "/", &[]);
    let b = Client::connect(srv.addr, "/", &[]);
    let c = Client::try_connect(srv.addr, "/", &[]);
    assert_eq!(status_of(&c.response), 429, "{}", c.response);
    assert!(
        c.response.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
        "{}",
        c.response
    );
    drop(b);
    // The slot frees up once the server has seen b go.
    wait_until("slot freed", || {
        status_of(&Client::try_connect(srv.addr, "/", &[]).response) == 101
    });
    a.echo("a");
}
