//! The sans-IO HTTP client against a real server: Python 3's http.server
//! (tests/http-backend/server.py). This test is the I/O: a small blocking
//! driver moves bytes between a std TcpStream and a ClientConn, the way the
//! reactor will with mio.

use sprocket::clients::http::{
    Checkout, ClientConn, ClientError, Limits, Origin, Pool, PoolConfig, Request, Response,
    Timeouts, Url, retry_allowed,
};
mod common;
use common::services::Backend;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn backend_url(backend: &Backend, path: &str) -> Url {
    Url::parse(&backend.url(path)).unwrap()
}

/// One connection: the socket and the protocol state.
struct Driver {
    conn: ClientConn,
    stream: TcpStream,
}

fn quick() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(5),
        response: Duration::from_secs(10),
    }
}

impl Driver {
    fn dial(origin: &Origin, timeouts: Timeouts, limits: Limits) -> Driver {
        let mut conn = ClientConn::new(origin.clone(), timeouts, limits, Instant::now());
        let stream = TcpStream::connect((origin.host(), origin.port())).unwrap();
        conn.connected(Instant::now());
        stream.set_nodelay(true).unwrap();
        // Short reads let the driver check the deadlines between them.
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        Driver { conn, stream }
    }

    fn local_port(&self) -> u16 {
        self.stream.local_addr().unwrap().port()
    }

    fn exchange(&mut self, request: Request) -> Result<Response, ClientError> {
        self.conn.start(request, Instant::now())?;
        self.pump()
    }

    /// Writes what the connection has to send, reads until it has a response.
    fn pump(&mut self) -> Result<Response, ClientError> {
        let mut buf = vec![0; 64 * 1024];
        loop {
            while !self.conn.transmit().is_empty() {
                match self.stream.write(self.conn.transmit()) {
                    Ok(n) => self.conn.advance(n),
                    Err(_) => return Err(self.reset()),
                }
            }
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return self.conn.handle_eof()?.ok_or(ClientError::Closed {
                        response_bytes_seen: false,
                    });
                }
                Ok(n) => {
                    if let Some(r) = self.conn.handle_input(&buf[..n])? {
                        return Ok(r);
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    self.conn.handle_timeout(Instant::now())?;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(self.reset()),
            }
        }
    }

    fn reset(&mut self) -> ClientError {
        self.conn
            .handle_reset()
            .err()
            .unwrap_or(ClientError::Closed {
                response_bytes_seen: false,
            })
    }
}

fn get(url: &Url) -> Request {
    Request::new("GET", url.target()).unwrap()
}

fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn content_length_json_and_keep_alive_reuse() {
    let backend = Backend::start();
    let url = backend_url(&backend, "/json");
    let mut d = Driver::dial(url.origin(), quick(), Limits::default());
    let first = d.exchange(get(&url)).unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(json(&first)["requests"], 1);
    assert_eq!(json(&first)["port"], d.local_port());
    assert!(d.conn.reusable() && !d.conn.reused());

    // The same connection: the server counts a second request on it.
    let echo = backend_url(&backend, "/echo");
    let post = Request::new("POST", echo.target())
        .unwrap()
        .header("Content-Type", "application/json")
        .unwrap()
        .body(br#"{"topic":"chat","args":[1,2]}"#.to_vec());
    let second = d.exchange(post).unwrap();
    assert!(d.conn.reused());
    let v = json(&second);
    assert_eq!(v["requests"], 2);
    assert_eq!(v["port"], d.local_port());
    assert_eq!(v["body"], r#"{"topic":"chat","args":[1,2]}"#);
    assert_eq!(v["content_type"], "application/json");
    // A POST with an empty body still says Content-Length: 0.
    let empty = d.exchange(Request::new("POST", "/echo").unwrap()).unwrap();
    assert_eq!(
        (
            json(&empty)["length"].as_u64(),
            json(&empty)["requests"].as_u64()
        ),
        (Some(0), Some(3))
    );
}

#[test]
fn chunked_close_delimited_and_204() {
    let backend = Backend::start();
    let url = backend_url(&backend, "/chunked");
    let mut d = Driver::dial(url.origin(), quick(), Limits::default());
    let r = d.exchange(get(&url)).unwrap();
    assert_eq!(r.body, b"Wikipedia in\r\n\r\nchunks.");
    assert!(d.conn.reusable());

    let r = d
        .exchange(get(&backend_url(&backend, "/nocontent")))
        .unwrap();
    assert_eq!((r.status, r.body.len()), (204, 0));
    assert!(d.conn.reusable());

    let r = d.exchange(get(&backend_url(&backend, "/close"))).unwrap();
    assert_eq!(r.body, "until the server closes\n".repeat(3).as_bytes());
    assert!(
        !d.conn.reusable(),
        "a close-delimited body ends the connection"
    );
    assert_eq!(d.exchange(get(&url)).unwrap_err(), ClientError::NotReusable);
}

#[test]
fn bodies_over_the_cap_are_refused() {
    let backend = Backend::start();
    let origin = backend_url(&backend, "/").origin().clone();
    let limits = Limits::default();
    let mut d = Driver::dial(&origin, quick(), limits);
    // Exactly at the cap: fine.
    let r = d
        .exchange(get(&backend_url(&backend, "/large?n=1048576")))
        .unwrap();
    assert_eq!(r.body.len(), 1 << 20);
    // Declared over the cap: refused with the head.
    let err = d
        .exchange(get(&backend_url(&backend, "/large?n=2000000")))
        .unwrap_err();
    assert_eq!(err, ClientError::TooLarge);
    assert!(!d.conn.reusable());
    // Chunked over the cap: refused at the chunk that would pass it.
    let mut d = Driver::dial(&origin, quick(), limits);
    let err = d
        .exchange(get(&backend_url(&backend, "/large-chunked?n=2000000")))
        .unwrap_err();
    assert_eq!(err, ClientError::TooLarge);
    assert!(d.conn.buffered() == 0 && !d.conn.reusable());
}

#[test]
fn a_server_that_never_answers_times_out() {
    let backend = Backend::start();
    let url = backend_url(&backend, "/slow");
    let timeouts = Timeouts {
        connect: Duration::from_secs(5),
        response: Duration::from_millis(300),
    };
    let mut d = Driver::dial(url.origin(), timeouts, Limits::default());
    let started = Instant::now();
    let err = d.exchange(get(&url)).unwrap_err();
    let took = started.elapsed();
    assert_eq!(
        err,
        ClientError::ResponseTimeout {
            response_bytes_seen: false
        }
    );
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(d.conn.poll_timeout(), None);
}

/// Asks the backend (on a connection of its own) until it reports that it
/// closed the connection from `port` on its idle timeout.
fn wait_closed_by_server(backend: &Backend, port: u16) {
    let url = backend_url(backend, "/closed");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut d = Driver::dial(url.origin(), quick(), Limits::default());
        let closed = json(&d.exchange(get(&url)).unwrap());
        if closed["closed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == port)
        {
            return;
        }
        assert!(Instant::now() < deadline, "server never closed port {port}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn idle_connection_closed_by_the_server_retry_rule() {
    let backend = Backend::start();
    let url = backend_url(&backend, "/idle-close");
    let origin = url.origin().clone();
    let mut pool: Pool<u16, Request> = Pool::new(PoolConfig::default());

    for (method, target, retry) in [("GET", "/json", true), ("POST", "/echo", false)] {
        // A request, then the connection idles and the server closes it.
        let first = match pool.checkout(&origin, get(&url), Instant::now()) {
            Checkout::Dial(r) => r,
            other => panic!("{other:?}"),
        };
        let mut d = Driver::dial(&origin, quick(), Limits::default());
        assert_eq!(d.exchange(first).unwrap().status, 200);
        assert!(d.conn.reusable());
        let port = d.local_port();
        pool.release(&origin, port, Instant::now());
        wait_closed_by_server(&backend, port);

        // The next request goes out on it and fails before any byte.
        let request = Request::new(method, target).unwrap();
        let request = match pool.checkout(&origin, request, Instant::now()) {
            Checkout::Reuse(p, r) if p == port => r,
            other => panic!("{other:?}"),
        };
        let err = d.exchange(request.clone()).unwrap_err();
        assert_eq!(
            err,
            ClientError::Closed {
                response_bytes_seen: false
            },
            "{method}"
        );
        assert!(d.conn.reused() && !d.conn.response_bytes_seen());
        let allowed = retry_allowed(method, d.conn.reused(), d.conn.response_bytes_seen());
        assert_eq!(allowed, retry, "{method}");
        pool.closed(&origin, port);
        if allowed {
            // The one retry goes on a new connection, and succeeds there.
            let again = match pool.retry(&origin, request) {
                Checkout::Dial(r) => r,
                other => panic!("{other:?}"),
            };
            let mut fresh = Driver::dial(&origin, quick(), Limits::default());
            assert_eq!(fresh.exchange(again).unwrap().status, 200);
            assert!(!fresh.conn.reused());
            pool.closed(&origin, fresh.local_port());
        }
        assert_eq!(pool.open(&origin), 0);
    }
}
