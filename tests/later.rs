//! Answers that come later: handshakes an app decides on after a while,
//! plain HTTP requests with bodies answered now or later, keep-alive, and
//! timers delivered to the app that made them, through the real server.

mod common;
use common::*;
use sprocket::app::{
    Accept, Application, ConnId, Context, Echo, Http, Message, Page, Reject, Router, TimerId,
};
use sprocket::{Config, Request};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Decides handshakes 50 ms later (by a timer): `?no` is refused, `?never`
/// is never decided; echoes messages. Plain `GET` is answered later too,
/// `POST` at once with its body.
#[derive(Default)]
struct Deferred {
    waiting: HashMap<TimerId, (ConnId, String, bool)>,
}

impl Application for Deferred {
    fn accept(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        req: &Request,
    ) -> Result<Accept, Reject> {
        if req.query != "never" {
            let t = ctx.add_timer(Duration::from_millis(50));
            self.waiting.insert(t, (conn, req.query.clone(), true));
        }
        Ok(Accept::Later(None))
    }
    fn http(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) -> Http {
        match req.method.as_str() {
            "POST" => Http::Respond(Page::new(200, "application/octet-stream", req.body.clone())),
            _ if req.query == "never" => Http::Later,
            _ => {
                let t = ctx.add_timer(Duration::from_millis(20));
                self.waiting.insert(t, (conn, req.path.clone(), false));
                Http::Later
            }
        }
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        let Some((conn, what, ws)) = self.waiting.remove(&timer) else {
            return;
        };
        if !ws {
            assert!(ctx.respond(conn, Page::text(200, format!("later for {what}\n"))));
        } else if what == "no" {
            assert!(ctx.reject(conn, Reject::new(403, "decided against you")));
        } else {
            assert!(ctx.accept(conn, None));
        }
    }
    fn on_open(&mut self, _: &mut Context<'_>, _: ConnId, _: &Request) {}
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        ctx.send(conn, msg);
    }
    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, _: u16, _: &str) {}
}

fn server() -> TestServer {
    let cfg = Config {
        handshake_timeout: Duration::from_millis(400),
        max_http_body: 1000,
        ..Config::default()
    };
    TestServer::start(cfg, || {
        Router::new()
            .route("/later", Deferred::default())
            .route("/echo", Echo)
    })
}

/// Reads until `n` complete responses (heads plus Content-Length bodies)
/// are in, or EOF; returns them and whether the server closed.
fn responses(s: &mut TcpStream, n: usize) -> (Vec<String>, bool) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: ")?.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() < end + 4 + len {
                break;
            }
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
            buf.drain(..end + 4 + len);
            out.push(head + &body);
        }
        if out.len() >= n {
            return (out, false);
        }
        let mut tmp = [0u8; 4096];
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => return (out, true),
            Ok(k) => buf.extend_from_slice(&tmp[..k]),
        }
    }
}

#[test]
fn a_handshake_decided_later_holds_the_bytes_sent_behind_it() {
    let srv = server();
    // The request and a first message in one write: the message must wait
    // for the decision, then be echoed.
    let mut wire = upgrade_request("/later", &[]).into_bytes();
    wire.extend(masked_frame(0x81, b"sent early"));
    let mut c = Client::connect_raw(srv.addr, &wire);
    assert_eq!(status_of(&c.response), 101, "{}", c.response);
    assert_eq!(c.read_text(), "sent early");
    c.echo("and after");
}

#[test]
fn a_handshake_refused_later_or_never_decided() {
    let srv = server();
    let c = Client::try_connect(srv.addr, "/later?no", &[]);
    assert_eq!(status_of(&c.response), 403, "{}", c.response);
    let started = std::time::Instant::now();
    let raw = http_exchange(srv.addr, upgrade_request("/later?never", &[]).as_bytes());
    assert_eq!(status_of(&raw), 503, "{raw}");
    assert!(raw.contains("did not answer in time"), "{raw}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    // Others were served meanwhile and after.
    srv.client("/echo").echo("fine");
}

#[test]
fn plain_http_bodies_limits_later_answers_and_keep_alive() {
    let srv = server();
    let mut s = TcpStream::connect(srv.addr).unwrap();
    // Two requests pipelined in one write, then a third that closes.
    s.write_all(
        b"POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world\
GET /later HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let (got, closed) = responses(&mut s, 2);
    assert!(!closed);
    assert!(got[0].starts_with("HTTP/1.1 200 OK\r\n"), "{}", got[0]);
    assert!(got[0].contains("Connection: keep-alive\r\n"), "{}", got[0]);
    assert!(got[0].ends_with("\r\n\r\nhello world"), "{}", got[0]);
    assert!(
        got[1].ends_with("later for /later\n"),
        "answered later, in order: {}",
        got[1]
    );
    s.write_all(
        b"POST /later HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    )
    .unwrap();
    let (got, _) = responses(&mut s, 1);
    assert!(got[0].contains("Connection: close\r\n"), "{}", got[0]);
    let (more, closed) = responses(&mut s, 1);
    assert!(more.is_empty() && closed, "closed after Connection: close");

    // A body in pieces, with its head.
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(b"POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nab")
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    s.write_all(b"cdef").unwrap();
    let (got, _) = responses(&mut s, 1);
    assert!(got[0].ends_with("abcdef"), "{}", got[0]);

    let big = format!(
        "POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n{}",
        "x".repeat(1001)
    );
    let resp = http_exchange(srv.addr, big.as_bytes());
    assert_eq!(status_of(&resp), 413, "{resp}");
    let chunked = b"POST /later HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let resp = http_exchange(srv.addr, chunked);
    assert_eq!(status_of(&resp), 411, "{resp}");
    let resp = http_exchange(srv.addr, b"DELETE /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&resp), 405, "{resp}");
    let resp = http_exchange(srv.addr, b"GET /later?never HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&resp), 503, "{resp}");
}

#[test]
fn an_idle_keep_alive_connection_is_closed_quietly() {
    let srv = server();
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(b"POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n!")
        .unwrap();
    let (got, _) = responses(&mut s, 1);
    assert!(got[0].starts_with("HTTP/1.1 200 "));
    // Nothing more: after the handshake timeout the server closes, without a 408.
    let (more, closed) = responses(&mut s, 1);
    assert!(closed && more.is_empty(), "{more:?}");
}

/// Records, from timers, whether deferred handshakes still wait: one it
/// accepts after 50 ms, one it never decides, checked after the handshake
/// timeout (400 ms) sent its 503.
struct Watcher {
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, bool)>>>,
    timers: HashMap<TimerId, (ConnId, String)>,
}

impl Application for Watcher {
    fn accept(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        req: &Request,
    ) -> Result<Accept, Reject> {
        let delay = if req.query == "never" { 600 } else { 50 };
        let t = ctx.add_timer(Duration::from_millis(delay));
        self.timers.insert(t, (conn, req.query.clone()));
        Ok(Accept::Later(None))
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        let Some((conn, what)) = self.timers.remove(&timer) else {
            return;
        };
        let deciding = ctx.is_deciding(conn);
        self.seen.lock().unwrap().push((what.clone(), deciding));
        if what != "never" {
            assert!(ctx.accept(conn, None));
            self.seen
                .lock()
                .unwrap()
                .push(("after accept".into(), ctx.is_deciding(conn)));
        }
    }
    fn on_open(&mut self, _: &mut Context<'_>, _: ConnId, _: &Request) {}
    fn on_message(&mut self, _: &mut Context<'_>, _: ConnId, _: Message<'_>) {}
    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, _: u16, _: &str) {}
}

#[test]
fn an_app_can_tell_whether_a_deferred_handshake_still_waits() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let cfg = Config {
        handshake_timeout: Duration::from_millis(400),
        ..Config::default()
    };
    let shared = seen.clone();
    let srv = TestServer::start(cfg, move || Watcher {
        seen: shared,
        timers: HashMap::new(),
    });
    let c = Client::try_connect(srv.addr, "/?soon", &[]);
    assert_eq!(status_of(&c.response), 101, "{}", c.response);
    let raw = http_exchange(srv.addr, upgrade_request("/?never", &[]).as_bytes());
    assert_eq!(status_of(&raw), 503, "{raw}");
    wait_until("the late timer", || seen.lock().unwrap().len() == 3);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            ("soon".to_owned(), true),
            // The decision is applied after the callback.
            ("after accept".to_owned(), true),
            ("never".to_owned(), false),
        ]
    );
}
