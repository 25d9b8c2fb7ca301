//! Whole connections through the real handshake, decoder, dispatch and
//! output queue (the socket-free harness), with the stock apps behind a
//! router: echo, chat, and the WAMP v1 broker.
//!
//! Input: [flags][sizes-count + sizes][data]. Flag bit 0 prepends a valid
//! handshake (so most runs get past it), bits 1-2 pick the route, bit 3
//! lets virtual time pass afterwards (pings, ping and handshake timeouts).
//! The data is fed in the chunk sizes given.
//!
//! Invariants: no panic; the server's output is HTTP responses (plain
//! requests on a kept-alive connection may get several, each a head and a
//! `Content-Length` body) and, only after a 101, well-formed server frames
//! (unmasked, FIN, known opcode, control payload <= 125, sendable close
//! code, valid UTF-8 text), nothing after a close frame; a connection that
//! sent a close frame is closed; input held per connection stays under the
//! head/frame limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::Config;
use sprocket::app::{Chat, Echo, Router};
use sprocket::reactor::harness::Harness;
use sprocket::wamp::{Broker, WampServer};
use sprocket_fuzz::{chunks, sendable, split_input};

const ROUTES: [&str; 4] = ["/echo", "/chat", "/wamp", "/nowhere"];

fn handshake(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: wamp\r\n\r\n"
    )
    .into_bytes()
}

/// Checks the server's whole output; returns whether it sent a close frame.
fn check_output(out: &[u8]) -> bool {
    if out.is_empty() {
        return false;
    }
    assert!(
        out.starts_with(b"HTTP/1.1 "),
        "output starts with a status line"
    );
    let head_end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("complete head")
        + 4;
    let head = std::str::from_utf8(&out[..head_end]).expect("ASCII head");
    let rest = &out[head_end..];
    if !head.starts_with("HTTP/1.1 101 ") {
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .expect("answers carry Content-Length")
            .parse()
            .unwrap();
        assert!(rest.len() >= len, "the whole body");
        let more = &rest[len..];
        if more.is_empty() {
            return false;
        }
        // Only a kept-alive connection answers again.
        assert!(
            head.contains("Connection: keep-alive\r\n"),
            "nothing after a closing answer"
        );
        return check_output(more);
    }
    let mut rest = rest;
    let mut closed = false;
    while !rest.is_empty() {
        assert!(!closed, "a frame after the close frame");
        assert!(rest.len() >= 2);
        let (b0, b1) = (rest[0], rest[1]);
        assert_eq!(b0 & 0xF0, 0x80, "FIN set, no RSV bits");
        assert_eq!(b1 & 0x80, 0, "server frames are not masked");
        let (len, hl) = match b1 & 0x7F {
            126 => (usize::from(u16::from_be_bytes([rest[2], rest[3]])), 4),
            127 => (
                u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (usize::from(n), 2),
        };
        let payload = &rest[hl..hl + len];
        match b0 & 0x0F {
            1 => assert!(
                std::str::from_utf8(payload).is_ok(),
                "text frames are UTF-8"
            ),
            2 => {}
            8 => {
                assert!(len <= 125 && len != 1);
                if len >= 2 {
                    assert!(sendable(u16::from_be_bytes([payload[0], payload[1]])));
                    assert!(std::str::from_utf8(&payload[2..]).is_ok());
                }
                closed = true;
            }
            9 | 10 => assert!(len <= 125),
            op => panic!("opcode {op:#x} from the server"),
        }
        rest = &rest[hl + len..];
    }
    closed
}

fuzz_target!(|input: &[u8]| {
    let Some((&flags, input)) = input.split_first() else {
        return;
    };
    let (sizes, data) = split_input(input);
    let config = Config {
        max_frame_size: 4096,
        max_message_size: 8192,
        max_head_size: 1024,
        ..Config::default()
    };
    let app = Router::new()
        .route("/echo", Echo)
        .route("/chat", Chat::default())
        .route(
            "/wamp",
            WampServer::new(Broker::new().with_demo_procedures()),
        );
    let mut h = Harness::new(config, app);
    // A second chat member, so chat messages have somewhere to go.
    let other = h.connect();
    h.feed(other, &handshake("/chat"));
    let key = h.connect();
    let mut wire = Vec::new();
    if flags & 1 == 1 {
        wire.extend(handshake(ROUTES[usize::from(flags >> 1) % ROUTES.len()]));
    }
    wire.extend_from_slice(data);
    let mut out = Vec::new();
    for chunk in chunks(sizes, &wire) {
        h.feed(key, chunk);
        out.extend(h.take_output(key));
        assert!(
            h.buffered(key) <= 4096 + 14,
            "held input stays under the frame limit"
        );
    }
    if flags & 8 == 8 {
        for _ in 0..3 {
            h.advance(std::time::Duration::from_secs(31));
            out.extend(h.take_output(key));
        }
    }
    if check_output(&out) {
        assert!(!h.is_open(key), "sent a close frame but still open");
    }
    let mut others = h.take_output(other);
    if !others.is_empty() {
        // The other member's stream: its own 101, then relayed frames.
        check_output(&std::mem::take(&mut others));
    }
});
