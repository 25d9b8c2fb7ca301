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
