//! The socket-free harness behaves like the server: the same bytes in give
//! the same bytes out however they are chunked.

mod common;
use common::*;
use sprocket::Config;
use sprocket::app::{Echo, Router};
use sprocket::reactor::harness::Harness;

fn session() -> Vec<u8> {
    let mut wire = upgrade_request("/echo", &[]).into_bytes();
    wire.extend(masked_frame(0x81, "hello".as_bytes()));
    wire.extend(masked_frame(0x02, &[1; 300]));
    wire.extend(masked_frame(0x89, b"ping"));
    wire.extend(masked_frame(0x80, &[2; 70_000]));
    wire.extend(masked_frame(0x88, &[0x03, 0xE8]));
    wire
}

fn run(chunk: usize) -> (Vec<u8>, bool) {
    let mut h = Harness::new(Config::default(), Router::new().route("/echo", Echo));
    let key = h.connect();
    let mut out = Vec::new();
    for piece in session().chunks(chunk) {
        h.feed(key, piece);
        out.extend(h.take_output(key));
    }
    (out, h.is_closed(key))
}

#[test]
fn chunking_does_not_change_the_output() {
    let (whole, closed) = run(usize::MAX);
    assert!(closed);
    assert!(whole.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    let body = &whole[whole.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    let mut frames = Vec::new();
    let mut rest = body;
    while let Some((f, len)) = parse_server_frame(rest) {
        frames.push((f.opcode, f.payload.len()));
        rest = &rest[len..];
    }
    assert_eq!(frames, vec![(1, 5), (0xA, 4), (2, 70_300), (8, 2)]);
    for chunk in [1, 2, 3, 7, 100, 4096, 65_536] {
        assert_eq!(run(chunk).0, whole, "chunk size {chunk}");
    }
}

/// The harness runs the reactor's real timeout logic on virtual time: an
/// idle peer is pinged, dropped when it stays silent, and the app hears it.
#[test]
fn ping_and_close_timeouts_on_virtual_time() {
    use sprocket::app::{Application, ConnId, Context, Message};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[derive(Clone, Default)]
    struct Closes(Arc<Mutex<Vec<u16>>>);
    impl Application for Closes {
        fn on_open(&mut self, _: &mut Context<'_>, _: ConnId, _: &sprocket::Request) {}
        fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: Message<'_>) {
            ctx.close(conn, 4000, "asked to");
        }
        fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, code: u16, _: &str) {
            self.0.lock().unwrap().push(code);
        }
    }
    let cfg = Config {
        ping_interval: Some(Duration::from_secs(10)),
        close_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    let app = Closes::default();
    let mut h = Harness::new(cfg, app.clone());
    let key = h.connect();
    h.feed(key, upgrade_request("/", &[]).as_bytes());
    assert!(h.take_output(key).starts_with(b"HTTP/1.1 101 "));
    h.advance(Duration::from_secs(9));
    assert!(h.take_output(key).is_empty(), "not idle long enough");
    h.advance(Duration::from_secs(1));
    assert_eq!(h.take_output(key), [0x89, 0x00], "pinged after 10 s");
    h.advance(Duration::from_secs(9));
    assert!(h.is_open(key), "still within the second interval");
    h.advance(Duration::from_secs(1));
    assert!(!h.is_held(key), "dropped after 20 s of silence");
    assert_eq!(*app.0.lock().unwrap(), [1006]);

    // The app closes; the peer never answers; after the close timeout the
    // connection goes, and on_close says 1006.
    let key = h.connect();
    h.feed(key, upgrade_request("/", &[]).as_bytes());
    h.take_output(key);
    h.feed(key, &masked_frame(0x81, b"close me"));
    let out = h.take_output(key);
    assert_eq!(&out[..4], &[0x88, 10, 0x0F, 0xA0], "close 4000 sent");
    h.advance(Duration::from_secs(2));
    assert!(h.is_held(key));
    h.advance(Duration::from_secs(1));
    assert!(!h.is_held(key), "close timeout");
    assert_eq!(*app.0.lock().unwrap(), [1006, 1006]);
}
