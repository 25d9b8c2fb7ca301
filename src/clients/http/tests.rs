//! ClientConn and Pool on byte slices and virtual time (no sockets, no sleeps).
//! Fixtures under tests/http-backend/fixtures/ are bytes captured from
//! Python's http.server (tests/http-backend/server.py) and `php -S`
//! (tests/http-backend/router.php).

use super::*;
use std::time::{Duration, Instant};

const PY_JSON: &[u8] = include_bytes!("../../../tests/http-backend/fixtures/python-json.http");
const PY_POST: &[u8] = include_bytes!("../../../tests/http-backend/fixtures/python-post.http");
const PY_CHUNKED: &[u8] =
    include_bytes!("../../../tests/http-backend/fixtures/python-chunked.http");
const PY_CLOSE: &[u8] = include_bytes!("../../../tests/http-backend/fixtures/python-close.http");
const PY_204: &[u8] = include_bytes!("../../../tests/http-backend/fixtures/python-204.http");
const PHP_JSON: &[u8] = include_bytes!("../../../tests/http-backend/fixtures/php-json.http");
const PHP_STREAM: &[u8] = include_bytes!("../../../tests/http-backend/fixtures/php-stream.http");
const PHP_204: &[u8] = include_bytes!("../../../tests/http-backend/fixtures/php-204.http");

fn t0() -> Instant {
    // One fixed origin for virtual time; only offsets from it matter.
    thread_local!(static T0: Instant = Instant::now());
    T0.with(|t| *t)
}

fn origin() -> Origin {
    Origin::new("127.0.0.1", 8080).unwrap()
}

fn started_with(method: &str, limits: Limits) -> ClientConn {
    let mut c = ClientConn::new(origin(), Timeouts::default(), limits, t0());
    c.connected(t0());
    c.start(Request::new(method, "/").unwrap(), t0()).unwrap();
    flush(&mut c);
    c
}

/// Writes everything the connection has to send, as the reactor would.
fn flush(c: &mut ClientConn) {
    while !c.transmit().is_empty() {
        c.advance(c.transmit().len());
    }
}

fn started(limits: Limits) -> ClientConn {
    started_with("GET", limits)
}

/// What one stream of pieces did to a started connection: the response or
/// the error, whether the connection is reusable after, the most it buffered.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    result: Result<Option<Response>, ClientError>,
    reusable: bool,
}

fn run(pieces: &[&[u8]], limits: Limits, eof: bool) -> Outcome {
    let mut c = started(limits);
    let mut result = Ok(None);
    for piece in pieces {
        result = c.handle_input(piece);
        assert!(c.buffered() <= limits.max_head.max(limits.max_body));
        if !matches!(result, Ok(None)) {
            break;
        }
    }
    if eof && matches!(result, Ok(None)) {
        result = c.handle_eof();
    }
    Outcome {
        result,
        reusable: c.reusable(),
    }
}

/// The outcome of `data` whole, checked equal for every split in two and
/// for byte-by-byte delivery.
fn every_split(data: &[u8], limits: Limits, eof: bool) -> Outcome {
    let whole = run(&[data], limits, eof);
    for i in 0..=data.len() {
        let (a, b) = data.split_at(i);
        assert_eq!(run(&[a, b], limits, eof), whole, "split at {i}");
    }
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(run(&bytes, limits, eof), whole, "byte by byte");
    whole
}

fn response_of(o: Outcome) -> Response {
    match o.result {
        Ok(Some(r)) => r,
        other => panic!("no response: {other:?}"),
    }
}

#[test]
fn every_prefix_is_need_more() {
    for data in [
        PY_JSON, PY_POST, PY_CHUNKED, PY_CLOSE, PY_204, PHP_JSON, PHP_STREAM, PHP_204,
    ] {
        for n in 0..data.len() {
            let mut c = started(Limits::default());
            assert_eq!(c.handle_input(&data[..n]), Ok(None), "prefix {n}");
            assert!(c.in_flight());
        }
    }
}

#[test]
fn python_fixtures_parse_the_same_at_every_split() {
    let l = Limits::default();
    let o = every_split(PY_JSON, l, false);
    assert!(o.reusable);
    let r = response_of(o);
    assert_eq!((r.status, r.reason.as_str()), (200, "OK"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["requests"], 1);

    let r = response_of(every_split(PY_POST, l, false));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["body"], "{\"a\":1}");

    let o = every_split(PY_CHUNKED, l, false);
    assert!(o.reusable);
    let r = response_of(o);
    assert_eq!(r.body, b"Wikipedia in\r\n\r\nchunks.");
    assert_eq!(r.header("Trailer"), Some("X-Checksum"));

    let o = every_split(PY_CLOSE, l, true);
    assert!(!o.reusable, "close-delimited");
    assert_eq!(
        response_of(o).body,
        "until the server closes\n".repeat(3).as_bytes()
    );

    let o = every_split(PY_204, l, false);
    assert!(o.reusable);
    assert_eq!(response_of(o).status, 204);
}

#[test]
fn php_fixtures_parse_the_same_at_every_split() {
    let l = Limits::default();
    let o = every_split(PHP_JSON, l, false);
    assert!(!o.reusable, "php -S sends Connection: close");
    let r = response_of(o);
    assert_eq!(
        r.header("x-powered-by").map(|v| v.starts_with("PHP/")),
        Some(true)
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (v["ok"].as_bool(), v["method"].as_str()),
        (Some(true), Some("POST"))
    );
    assert_eq!(
        response_of(every_split(PHP_STREAM, l, true)).body,
        b"first second third"
    );
    assert_eq!(response_of(every_split(PHP_204, l, false)).body, b"");
}

#[test]
fn close_delimited_body_ends_at_eof_only() {
    let mut c = started(Limits::default());
    assert_eq!(c.handle_input(b"HTTP/1.1 200 OK\r\n\r\nabc"), Ok(None));
    assert_eq!(c.handle_input(b"def"), Ok(None));
    let r = c.handle_eof().unwrap().unwrap();
    assert_eq!(r.body, b"abcdef");
    assert!(!c.reusable());
    assert_eq!(
        c.start(Request::new("GET", "/").unwrap(), t0()),
        Err(ClientError::NotReusable)
    );
}

#[test]
fn interim_responses_are_skipped() {
    let data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let o = every_split(data, Limits::default(), false);
    assert!(o.reusable);
    let r = response_of(o);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(r.header("link"), None);
}

#[test]
fn no_body_for_head_204_304() {
    let mut c = started_with("HEAD", Limits::default());
    let r = c
        .handle_input(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(r.body.is_empty() && c.reusable());
    for status in ["204 No Content", "304 Not Modified"] {
        let head = format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\n");
        let o = every_split(head.as_bytes(), Limits::default(), false);
        assert!(o.reusable);
        assert!(response_of(o).body.is_empty());
    }
}

#[test]
fn head_limits() {
    let l = Limits {
        max_head: 64,
        max_headers: 3,
        max_body: 16,
    };
    let fits = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nContent-Length: 0\r\nX: 012345678\r\n\r\n";
    assert_eq!(fits.len(), 64);
    let too_many = every_split(fits, l, false).result;
    assert_eq!(too_many, Err(ClientError::TooManyHeaders));
    let l4 = Limits {
        max_headers: 4,
        ..l
    };
    assert!(response_of(every_split(fits, l4, false)).body.is_empty());
    let over = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nContent-Length: 0\r\nX: 0123456789\r\n\r\n";
    assert_eq!(
        every_split(over, l4, false).result,
        Err(ClientError::HeadTooLarge)
    );
    // A head that never ends is refused at the limit, not buffered on.
    let mut c = started(l);
    assert_eq!(c.handle_input(&[b'a'; 63]), Ok(None));
    assert_eq!(c.buffered(), 63);
    assert_eq!(
        c.handle_input(&[b'a'; 1000]),
        Err(ClientError::HeadTooLarge)
    );
    assert_eq!(c.buffered(), 0);
    assert!(!c.reusable());
    // The default limit is 16 KiB.
    let mut big = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
    big.resize(16 * 1024, b'x');
    assert_eq!(
        started(Limits::default()).handle_input(&big),
        Err(ClientError::HeadTooLarge)
    );
}

#[test]
fn body_cap() {
    let l = Limits {
        max_body: 4,
        ..Limits::default()
    };
    // Declared: refused with the head, before any body byte.
    let mut c = started(l);
    assert_eq!(
        c.handle_input(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
        Err(ClientError::TooLarge)
    );
    let fits = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd";
    assert_eq!(response_of(every_split(fits, l, false)).body, b"abcd");
    // Chunked: refused at the chunk size that would pass the cap.
    let chunked =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    assert_eq!(
        every_split(chunked, l, false).result,
        Err(ClientError::TooLarge)
    );
    let l5 = Limits { max_body: 5, ..l };
    assert_eq!(response_of(every_split(chunked, l5, false)).body, b"abcde");
    // Close-delimited: refused as the cap is passed.
    let close = b"HTTP/1.1 200 OK\r\n\r\nabcde";
    assert_eq!(
        every_split(close, l, true).result,
        Err(ClientError::TooLarge)
    );
    assert_eq!(response_of(every_split(close, l5, true)).body, b"abcde");
    // The default cap is 1 MiB, declared or streamed.
    let mut c = started(Limits::default());
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
        (1 << 20) + 1
    );
    assert_eq!(c.handle_input(head.as_bytes()), Err(ClientError::TooLarge));
    let mut c = started(Limits::default());
    assert_eq!(c.handle_input(b"HTTP/1.1 200 OK\r\n\r\n"), Ok(None));
    assert_eq!(c.handle_input(&vec![b'x'; 1 << 20]), Ok(None));
    assert_eq!(c.buffered(), 1 << 20);
    assert_eq!(c.handle_input(b"x"), Err(ClientError::TooLarge));
}

#[test]
fn smuggling_shapes_are_errors() {
    use ClientError::*;
    let l = Limits::default();
    let cases: &[(&[u8], ClientError)] = &[
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            LengthWithTransferEncoding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            LengthWithTransferEncoding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            ConflictingContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            BadContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            BadContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
            BadContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            UnsupportedTransferEncoding,
        ),
        (
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            UnsupportedTransferEncoding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            BadChunk,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n",
            BadChunk,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
            BadChunk,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
            BadChunk,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n",
            BadChunk,
        ),
        // RFC 9112 §2.2, strict: a bare LF or CR in the head is an error.
        (b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", BadLineEnding),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n", BadLineEnding),
        (b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", BadLineEnding),
        (b"HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n", BadLineEnding),
        (
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            UnexpectedSwitch,
        ),
        (b"HTTP/1.1 200 OK\r\nX : 1\r\n\r\n", BadHeader),
        (b"HTTP/1.1 200 OK\r\n X: 1\r\n\r\n", BadHeader),
        (b"HTTP/1.2 200 OK\r\n\r\n", BadStatusLine),
        (b"HTTP/1.1 2000 OK\r\n\r\n", BadStatusLine),
    ];
    for (data, want) in cases {
        let o = every_split(data, l, true);
        assert_eq!(o.result, Err(*want), "{:?}", String::from_utf8_lossy(data));
        assert!(!o.reusable);
    }
}

#[test]
fn keep_alive_and_one_request_at_a_time() {
    let mut c = started(Limits::default());
    assert!(!c.reused());
    assert_eq!(
        c.start(Request::new("GET", "/").unwrap(), t0()),
        Err(ClientError::Busy)
    );
    assert!(c.handle_input(PY_JSON).unwrap().is_some());
    assert!(c.reusable() && !c.in_flight());
    c.start(Request::new("POST", "/echo").unwrap(), t0())
        .unwrap();
    flush(&mut c);
    assert!(c.reused() && !c.response_bytes_seen());
    assert!(c.handle_input(PY_POST).unwrap().is_some());
    assert!(c.response_bytes_seen());
    // HTTP/1.0 keep-alive is honoured when asked for.
    c.start(Request::new("GET", "/").unwrap(), t0()).unwrap();
    flush(&mut c);
    let r10 = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx";
    assert!(c.handle_input(r10).unwrap().is_some());
    assert!(c.reusable());
    // Connection: close ends it.
    c.start(Request::new("GET", "/").unwrap(), t0()).unwrap();
    flush(&mut c);
    let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    assert!(c.handle_input(close).unwrap().is_some());
    assert!(!c.reusable());
    assert_eq!(
        c.start(Request::new("GET", "/").unwrap(), t0()),
        Err(ClientError::NotReusable)
    );
}

#[test]
fn stray_bytes_spend_the_connection() {
    // After the response, in the same read: the response stands.
    let mut c = started(Limits::default());
    let mut data = PY_JSON.to_vec();
    data.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    assert!(c.handle_input(&data).unwrap().is_some());
    assert!(!c.reusable());
    // With no request in flight.
    let mut c = started(Limits::default());
    assert!(c.handle_input(PY_204).unwrap().is_some());
    assert_eq!(c.handle_input(b"x"), Err(ClientError::Unsolicited));
    assert!(!c.reusable());
    // An idle connection's EOF is not an error.
    let mut c = started(Limits::default());
    assert!(c.handle_input(PY_204).unwrap().is_some());
    assert_eq!(c.handle_eof(), Ok(None));
    assert!(!c.reusable());
}

#[test]
fn eof_and_reset_say_whether_bytes_were_seen() {
    let closed = |seen| -> Result<Option<Response>, ClientError> {
        Err(ClientError::Closed {
            response_bytes_seen: seen,
        })
    };
    let mut c = started(Limits::default());
    assert_eq!(c.handle_eof(), closed(false));
    let mut c = started(Limits::default());
    c.handle_input(b"HTTP/1.1 2").unwrap();
    assert_eq!(c.handle_eof(), closed(true));
    let mut c = started(Limits::default());
    c.handle_input(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab")
        .unwrap();
    assert_eq!(c.handle_eof(), closed(true));
    // A reset loses even a close-delimited body (it may be truncated).
    let mut c = started(Limits::default());
    c.handle_input(b"HTTP/1.1 200 OK\r\n\r\nab").unwrap();
    assert_eq!(
        c.handle_reset(),
        Err(ClientError::Closed {
            response_bytes_seen: true
        })
    );
    let mut c = started(Limits::default());
    assert!(c.handle_input(PY_204).unwrap().is_some());
    assert_eq!(c.handle_reset(), Ok(()));
    assert!(!c.reusable());
}

#[test]
fn transmit_and_advance() {
    let mut c = ClientConn::new(origin(), Timeouts::default(), Limits::default(), t0());
    let body = b"{\"a\":1}".to_vec();
    let req = Request::new("POST", "/auth").unwrap().body(body.clone());
    let mut want = Vec::new();
    req.encode("127.0.0.1:8080", &mut want);
    c.start(req, t0()).unwrap();
    assert_eq!(c.transmit(), b"", "nothing before the connect finished");
    c.connected(t0());
    let mut wrote = Vec::new();
    // Writes of 5 bytes at most, as a short write(2) would.
    while !c.transmit().is_empty() {
        let n = c.transmit().len().min(5);
        wrote.extend_from_slice(&c.transmit()[..n]);
        c.advance(n);
    }
    assert_eq!(wrote, want);
    // The body slice is the caller's bytes, handed out as they were.
    assert!(want.ends_with(&body));
}

#[test]
fn early_response_before_the_request_was_sent_spends_the_connection() {
    let mut c = ClientConn::new(origin(), Timeouts::default(), Limits::default(), t0());
    c.connected(t0());
    let req = Request::new("POST", "/upload")
        .unwrap()
        .body(vec![b'z'; 1000]);
    c.start(req, t0()).unwrap();
    c.advance(10);
    let r = b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(c.handle_input(r).unwrap().unwrap().status, 413);
    assert!(!c.reusable());
    assert!(c.transmit().is_empty());
}

#[test]
fn connect_timeout_on_virtual_time() {
    let t = Timeouts {
        connect: Duration::from_secs(2),
        response: Duration::from_secs(10),
    };
    let mut c = ClientConn::new(origin(), t, Limits::default(), t0());
    c.start(Request::new("GET", "/").unwrap(), t0()).unwrap();
    flush(&mut c);
    assert_eq!(c.poll_timeout(), Some(t0() + Duration::from_secs(2)));
    assert_eq!(c.handle_timeout(t0() + Duration::from_millis(1999)), Ok(()));
    assert_eq!(
        c.handle_timeout(t0() + Duration::from_secs(2)),
        Err(ClientError::ConnectTimeout)
    );
    assert_eq!(c.poll_timeout(), None);
    assert!(!c.reusable() && !c.in_flight());
}

#[test]
fn response_timeout_runs_from_connect_or_start() {
    let t = Timeouts {
        connect: Duration::from_secs(2),
        response: Duration::from_secs(10),
    };
    let at = |ms| t0() + Duration::from_millis(ms);
    // Started before the connect: the clock starts at the connect.
    let mut c = ClientConn::new(origin(), t, Limits::default(), t0());
    c.start(Request::new("GET", "/").unwrap(), t0()).unwrap();
    flush(&mut c);
    c.connected(at(1500));
    assert_eq!(c.poll_timeout(), Some(at(11_500)));
    assert_eq!(c.handle_timeout(at(11_499)), Ok(()));
    assert_eq!(
        c.handle_timeout(at(11_500)),
        Err(ClientError::ResponseTimeout {
            response_bytes_seen: false
        })
    );
    // Connected and idle: no deadline until a request starts.
    let mut c = ClientConn::new(origin(), t, Limits::default(), t0());
    c.connected(at(100));
    assert_eq!(c.poll_timeout(), None);
    c.start(Request::new("GET", "/").unwrap(), at(500)).unwrap();
    flush(&mut c);
    assert_eq!(c.poll_timeout(), Some(at(10_500)));
    c.handle_input(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
        .unwrap();
    assert_eq!(
        c.handle_timeout(at(10_500)),
        Err(ClientError::ResponseTimeout {
            response_bytes_seen: true
        })
    );
    // A complete response clears it; the next request sets a new one.
    let mut c = ClientConn::new(origin(), t, Limits::default(), t0());
    c.connected(t0());
    c.start(Request::new("GET", "/").unwrap(), t0()).unwrap();
    flush(&mut c);
    assert!(c.handle_input(PY_204).unwrap().is_some());
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.handle_timeout(at(100_000)), Ok(()));
    c.start(Request::new("GET", "/").unwrap(), at(20_000))
        .unwrap();
    flush(&mut c);
    assert_eq!(c.poll_timeout(), Some(at(30_000)));
}

#[test]
fn retry_rule() {
    for m in ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"] {
        assert!(retry_allowed(m, true, false), "{m}");
        assert!(
            !retry_allowed(m, false, false),
            "{m}: first use of a connection"
        );
        assert!(!retry_allowed(m, true, true), "{m}: response bytes seen");
    }
    for m in ["POST", "PATCH", "CONNECT", "get", "PROPFIND"] {
        assert!(!retry_allowed(m, true, false), "{m}");
    }
}

fn pool(max: usize) -> Pool<u32, &'static str> {
    Pool::new(PoolConfig {
        max_per_origin: max,
        idle_timeout: Duration::from_secs(4),
    })
}

#[test]
fn pool_cap_and_fifo() {
    let o = origin();
    let other = Origin::new("10.0.0.1", 80).unwrap();
    let mut p = pool(2);
    assert_eq!(p.checkout(&o, "a", t0()), Checkout::Dial("a"));
    assert_eq!(p.checkout(&o, "b", t0()), Checkout::Dial("b"));
    assert_eq!(p.checkout(&o, "c", t0()), Checkout::Queued);
    assert_eq!(p.checkout(&o, "d", t0()), Checkout::Queued);
    // The cap is per origin.
    assert_eq!(p.checkout(&other, "x", t0()), Checkout::Dial("x"));
    assert_eq!((p.open(&o), p.waiting(&o)), (2, 2));
    // Released connections go to waiters in order.
    assert_eq!(p.release(&o, 1, t0()), Next::Start(1, "c"));
    // A connection that ends lets the next waiter dial.
    assert_eq!(p.closed(&o, 2), Next::Dial("d"));
    assert_eq!((p.open(&o), p.waiting(&o)), (2, 0));
    assert_eq!(p.release(&o, 1, t0()), Next::Nothing);
    assert_eq!(p.idle(&o), 1);
    assert_eq!(p.checkout(&o, "e", t0()), Checkout::Reuse(1, "e"));
    assert_eq!(p.closed(&o, 1), Next::Nothing);
    assert_eq!(p.closed(&o, 3), Next::Nothing);
    assert_eq!(p.open(&o), 0);
    assert_eq!(p.closed(&o, 9), Next::Nothing, "unknown: no underflow");
    assert_eq!(p.open(&o), 0);
}

#[test]
fn pool_reuses_the_most_recent_idle_and_expires_idle() {
    let o = origin();
    let mut p = pool(3);
    let s = |n| t0() + Duration::from_secs(n);
    for r in ["a", "b", "c"] {
        assert_eq!(p.checkout(&o, r, t0()), Checkout::Dial(r));
    }
    assert_eq!(p.release(&o, 1, s(0)), Next::Nothing);
    assert_eq!(p.release(&o, 2, s(1)), Next::Nothing);
    assert_eq!(p.release(&o, 3, s(2)), Next::Nothing);
    assert_eq!(p.poll_timeout(), Some(s(4)));
    assert_eq!(p.handle_timeout(s(3)), Vec::<u32>::new());
    assert_eq!(p.handle_timeout(s(5)), vec![1, 2]);
    assert_eq!((p.open(&o), p.idle(&o)), (1, 1));
    assert_eq!(p.poll_timeout(), Some(s(6)));
    assert_eq!(p.checkout(&o, "d", s(5)), Checkout::Reuse(3, "d"));
    assert_eq!(p.poll_timeout(), None);
    // Expired but not yet swept: never handed out; no longer counted, so a
    // new request dials; the sweep hands it back to be closed.
    assert_eq!(p.release(&o, 3, s(5)), Next::Nothing);
    assert_eq!(p.checkout(&o, "e", s(9)), Checkout::Dial("e"));
    assert_eq!(p.open(&o), 1);
    assert_eq!(p.poll_timeout(), Some(s(9)));
    assert_eq!(p.handle_timeout(s(9)), vec![3]);
    assert_eq!(p.poll_timeout(), None);
    // An expired one that the reactor saw close first is not counted twice.
    assert_eq!(p.release(&o, 4, s(10)), Next::Nothing);
    assert_eq!(p.checkout(&o, "f", s(20)), Checkout::Dial("f"));
    assert_eq!(p.closed(&o, 4), Next::Nothing);
    assert_eq!(p.open(&o), 1);
    assert_eq!(p.handle_timeout(s(30)), Vec::<u32>::new());
}

#[test]
fn pool_retry_never_takes_an_idle_connection() {
    let o = origin();
    let mut p = pool(2);
    assert_eq!(p.checkout(&o, "a", t0()), Checkout::Dial("a"));
    assert_eq!(p.checkout(&o, "b", t0()), Checkout::Dial("b"));
    assert_eq!(p.release(&o, 1, t0()), Next::Nothing);
    assert_eq!(p.release(&o, 2, t0()), Next::Nothing);
    // "g" goes out on idle connection 2, which the server had closed.
    assert_eq!(p.checkout(&o, "g", t0()), Checkout::Reuse(2, "g"));
    assert!(retry_allowed("GET", true, false));
    assert_eq!(p.closed(&o, 2), Next::Nothing);
    assert_eq!(
        p.retry(&o, "g"),
        Checkout::Dial("g"),
        "a new connection, not idle 1"
    );
    // At the cap, a retry waits first in line.
    assert_eq!(p.checkout(&o, "h", t0()), Checkout::Reuse(1, "h"));
    assert_eq!(p.checkout(&o, "i", t0()), Checkout::Queued);
    assert_eq!(p.retry(&o, "h"), Checkout::Queued);
    assert_eq!(p.closed(&o, 1), Next::Dial("h"));
    assert_eq!(p.closed(&o, 5), Next::Dial("i"));
}
