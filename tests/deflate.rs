//! permessage-deflate (RFC 7692) over real TCP: the negotiation answer,
//! compressed round trips (whole, fragmented, with and without context
//! takeover), broadcasts, and the failures: bombs, bad data, bad RSV1.

mod common;
use common::*;
use sprocket::Config;
use sprocket::app::{Chat, Echo, Router};
use sprocket::ws::deflate::{Compressor, DeflateConfig, Inflater};

const EXT: &str = "Sec-WebSocket-Extensions";
/// What sprocket answers by default: no context takeover either way.
const DEFAULT_ANSWER: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
/// RFC 7692 §7.2.3.1: "Hello", compressed.
const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
/// RFC 7692 §7.2.3.2: "Hello" again, referring back to the first.
const HELLO_AGAIN: [u8; 5] = [0xf2, 0x00, 0x11, 0x00, 0x00];

fn server_with(deflate: DeflateConfig, max_message: usize) -> TestServer {
    let cfg = Config {
        deflate,
        max_message_size: max_message,
        max_frame_size: max_message,
        ..Config::default()
    };
    TestServer::start(cfg, || {
        Router::new()
            .route("/echo", Echo)
            .route("/chat", Chat::default())
    })
}

fn server() -> TestServer {
    server_with(DeflateConfig::default(), 16 << 20)
}

fn offering(srv: &TestServer, path: &str, offer: &str) -> Client {
    let c = Client::connect(srv.addr, path, &[(EXT, offer)]);
    assert_eq!(c.header(EXT).as_deref(), Some(DEFAULT_ANSWER), "{offer}");
    c
}

fn pack(msg: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    let n = Compressor::new(6, 15).compress(msg, &mut buf);
    buf.truncate(n);
    buf
}

fn unpack(inf: &mut Inflater, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    inf.inflate(payload, true, &mut out, 64 << 20, None)
        .expect("server sent valid DEFLATE data");
    out
}

/// Text-like, compressible payload.
fn text(len: usize) -> String {
    let words = [
        "sprocket ",
        "relays ",
        "{\"topic\":\"prices\",",
        "\"v\":42}\n",
    ];
    let mut s = String::new();
    let mut i = 0usize;
    while s.len() < len {
        s.push_str(words[i % 4]);
        i = i.wrapping_mul(7).wrapping_add(3);
    }
    s.truncate(len);
    s
}

/// Reads the next data frame, skipping pings.
fn data_frame(c: &mut Client) -> WsFrame {
    loop {
        let f = c.read_frame();
        if f.opcode != 9 {
            return f;
        }
    }
}

#[test]
fn negotiation_answers() {
    let srv = server();
    let cases: Vec<(Vec<&str>, Option<String>)> = vec![
        (vec![], None),
        // Chromium's offer.
        (
            vec!["permessage-deflate; client_max_window_bits"],
            Some(DEFAULT_ANSWER.into()),
        ),
        // Several offers on several lines: the first acceptable one wins.
        (
            vec![
                "x-webkit-deflate-frame",
                "permessage-deflate; server_max_window_bits=10",
            ],
            Some(format!("{DEFAULT_ANSWER}; server_max_window_bits=10")),
        ),
        // An invalid offer is declined, the next is taken.
        (
            vec![
                "permessage-deflate; server_max_window_bits=7, \
                 permessage-deflate; server_max_window_bits=\"12\"",
            ],
            Some(format!("{DEFAULT_ANSWER}; server_max_window_bits=12")),
        ),
        (
            vec!["permessage-deflate; client_max_window_bits=9"],
            Some(format!("{DEFAULT_ANSWER}; client_max_window_bits=9")),
        ),
        // Nothing acceptable: the handshake still succeeds, uncompressed.
        (vec!["permessage-deflate; foo=bar"], None),
        (
            vec!["permessage-deflate; client_no_context_takeover=1"],
            None,
        ),
        (vec!["permessage-deflate; a=\"unterminated"], None),
        (vec!["; ,,"], None),
    ];
    for (offers, want) in cases {
        let headers: Vec<(&str, &str)> = offers.iter().map(|o| (EXT, *o)).collect();
        let mut c = Client::connect(srv.addr, "/echo", &headers);
        assert_eq!(c.header(EXT), want, "{offers:?}");
        c.echo("still works");
    }
    let off = server_with(
        DeflateConfig {
            enabled: false,
            ..DeflateConfig::default()
        },
        1 << 20,
    );
    let c = Client::connect(off.addr, "/echo", &[(EXT, "permessage-deflate")]);
    assert_eq!(c.header(EXT), None);
}

#[test]
fn compressed_round_trips() {
    let srv = server();
    let mut c = offering(&srv, "/echo", "permessage-deflate");
    let mut inf = Inflater::new();
    for len in [64, 1000, 100_000, 3 << 20] {
        let msg = text(len);
        c.send_frame(0xC1, &pack(msg.as_bytes()));
        let f = data_frame(&mut c);
        assert_eq!((f.opcode, f.rsv, f.fin), (1, 4, true), "len {len}");
        assert!(f.payload.len() < len / 2, "compressed reply, len {len}");
        assert!(unpack(&mut inf, &f.payload) == msg.as_bytes(), "len {len}");
        inf.reset(); // server_no_context_takeover
    }
    // Binary, and an uncompressed message on the same connection: the
    // server compresses per message, whatever the client did.
    let bin: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    c.send_frame(0xC2, &pack(&bin));
    let f = data_frame(&mut c);
    assert_eq!((f.opcode, f.rsv), (2, 4));
    assert_eq!(unpack(&mut inf, &f.payload), bin);
    inf.reset();
    c.send_binary(&bin);
    let f = data_frame(&mut c);
    assert_eq!((f.opcode, f.rsv), (2, 4));
    assert_eq!(unpack(&mut inf, &f.payload), bin);
    inf.reset();
    // Below the minimum size the reply goes uncompressed.
    c.send_frame(0xC1, &HELLO);
    let f = data_frame(&mut c);
    assert_eq!((f.opcode, f.rsv, f.text()), (1, 0, "Hello"));
    // An empty compressed message (RFC 7692 §7.2.3.6's empty block).
    c.send_frame(0xC1, &[0x00]);
    let f = data_frame(&mut c);
    assert_eq!((f.opcode, f.rsv, f.payload.len()), (1, 0, 0));
}

#[test]
fn rfc_examples_and_fragments() {
    let srv = server();
    let mut c = offering(&srv, "/echo", "permessage-deflate");
    // §7.2.3.1 as two fragments.
    c.send_frame(0x41, &HELLO[..3]);
    c.send_frame(0x80, &HELLO[3..]);
    assert_eq!(c.read_text(), "Hello");
    // §7.2.3.3 (stored block), §7.2.3.4 (BFINAL), §7.2.3.5 (two blocks).
    let examples: [&[u8]; 3] = [
        &[
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ],
        &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
        &[
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ],
    ];
    for e in examples {
        c.send_frame(0xC1, e);
        assert_eq!(c.read_text(), "Hello", "{e:x?}");
    }
    // A big message in many fragments, a ping among them, the text split
    // inside multi-byte characters.
    let msg = "κόσμε ".repeat(20_000);
    let packed = pack(msg.as_bytes());
    let chunks: Vec<&[u8]> = packed.chunks(97).collect();
    assert!(chunks.len() > 4, "{}", chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        let first = match i {
            0 => 0x41,
            _ if i + 1 == chunks.len() => 0x80,
            _ => 0x00,
        };
        c.send_frame(first, chunk);
        if i == 3 {
            c.send_frame(0x89, b"ping");
        }
    }
    let pong = c.read_frame();
    assert_eq!(
        (pong.opcode, pong.rsv),
        (10, 0),
        "control frames are never compressed"
    );
    let f = data_frame(&mut c);
    assert_eq!(f.rsv, 4);
    assert!(unpack(&mut Inflater::new(), &f.payload) == msg.as_bytes());
}

#[test]
fn context_takeover_both_ways() {
    let srv = server_with(
        DeflateConfig {
            server_context_takeover: true,
            client_context_takeover: true,
            level: 6,
            min_size: 0,
            ..DeflateConfig::default()
        },
        1 << 20,
    );
    let mut c = Client::connect(srv.addr, "/echo", &[(EXT, "permessage-deflate")]);
    assert_eq!(c.header(EXT).as_deref(), Some("permessage-deflate"));
    // §7.2.3.2: the second message only makes sense with the first's window.
    c.send_frame(0xC1, &HELLO);
    c.send_frame(0xC1, &HELLO_AGAIN);
    let mut inf = Inflater::new();
    let first = data_frame(&mut c);
    let second = data_frame(&mut c);
    assert_eq!(first.payload, HELLO);
    assert_ne!(second.payload, HELLO, "the server reuses its window");
    assert_eq!(unpack(&mut inf, &first.payload), b"Hello");
    assert_eq!(unpack(&mut inf, &second.payload), b"Hello");
}

#[test]
fn context_takeover_refused_means_a_fresh_window_per_message() {
    let srv = server();
    let mut c = offering(&srv, "/echo", "permessage-deflate");
    c.send_frame(0xC1, &HELLO);
    assert_eq!(c.read_text(), "Hello");
    // We answered client_no_context_takeover: a reference into the last
    // message is invalid data.
    c.send_frame(0xC1, &HELLO_AGAIN);
    c.expect_close(1007);
}

#[test]
fn decompression_bomb_closes_with_1009() {
    let srv = server_with(DeflateConfig::default(), 1 << 20);
    let bomb = pack(&vec![0u8; 16 << 20]);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let mut c = offering(&srv, "/echo", "permessage-deflate");
    c.send_frame(0xC2, &bomb);
    c.expect_close(1009);
    // The same across fragments: the total decompressed size counts.
    let mut c = offering(&srv, "/echo", "permessage-deflate");
    let half = pack(&vec![0u8; 700 << 10]);
    let mut with_tail = half.clone();
    with_tail.extend_from_slice(&[0, 0, 0xff, 0xff]);
    c.send_frame(0x42, &with_tail);
    c.send_frame(0x80, &half);
    c.expect_close(1009);
    // Just under the limit is fine.
    let mut c = offering(&srv, "/echo", "permessage-deflate");
    c.send_frame(0xC2, &pack(&vec![7u8; 1 << 20]));
    let f = data_frame(&mut c);
    assert_eq!(unpack(&mut Inflater::new(), &f.payload).len(), 1 << 20);
}

#[test]
fn bad_input_gets_the_right_close_code() {
    let srv = server();
    let bad_utf8 = pack(b"valid until here \xed\xa0\x80 then not");
    type Frames = Vec<(u8, Vec<u8>)>;
    let cases: Vec<(Frames, u16)> = vec![
        // RFC 7692 §6.1: RSV1 on control frames and continuations.
        (vec![(0xC9, b"ping".to_vec())], 1002),
        (vec![(0xC8, vec![0x03, 0xE8])], 1002),
        (
            vec![(0x41, HELLO[..3].to_vec()), (0xC0, HELLO[3..].to_vec())],
            1002,
        ),
        (
            vec![(0x01, b"plain ".to_vec()), (0xC0, b"x".to_vec())],
            1002,
        ),
        // RSV2 / RSV3 are still reserved.
        (vec![(0xA1, b"x".to_vec())], 1002),
        (vec![(0x91, b"x".to_vec())], 1002),
        // Not DEFLATE data; text that is not UTF-8 once inflated.
        (vec![(0xC2, vec![0xff, 0xff, 0xff])], 1007),
        (vec![(0xC1, bad_utf8)], 1007),
    ];
    for (frames, code) in cases {
        let mut c = offering(&srv, "/echo", "permessage-deflate");
        for (first, payload) in &frames {
            c.send_frame(*first, payload);
        }
        c.expect_close(code);
    }
    // RSV1 without the extension negotiated (RFC 6455 §5.2).
    let mut c = srv.client("/echo");
    c.send_frame(0xC1, &HELLO);
    c.expect_close(1002);
}

#[test]
fn broadcast_compresses_per_window_not_per_recipient() {
    let srv = server();
    let mut sender = srv.client("/chat");
    let mut plain = srv.client("/chat");
    let mut deflaters: Vec<Client> = (0..3)
        .map(|_| offering(&srv, "/chat", "permessage-deflate"))
        .collect();
    let mut small = Client::connect(
        srv.addr,
        "/chat",
        &[(EXT, "permessage-deflate; server_max_window_bits=9")],
    );
    let msg = text(20_000);
    sender.send_text(&msg);
    let f = data_frame(&mut plain);
    assert_eq!((f.rsv, f.text()), (0, msg.as_str()));
    let frames: Vec<WsFrame> = deflaters.iter_mut().map(data_frame).collect();
    for f in &frames {
        assert_eq!(f.rsv, 4);
        assert_eq!(f.payload, frames[0].payload, "one compressed frame for all");
    }
    assert!(unpack(&mut Inflater::new(), &frames[0].payload) == msg.as_bytes());
    let f = data_frame(&mut small);
    assert_eq!(f.rsv, 4);
    assert_ne!(
        f.payload, frames[0].payload,
        "a 512-byte window compresses differently"
    );
    assert!(unpack(&mut Inflater::new(), &f.payload) == msg.as_bytes());
}

fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn incompressible_messages_go_plain_unless_context_is_kept() {
    let data = noise(8192);
    // Without context takeover a message that does not shrink is sent
    // as it is (RSV1 clear), to one recipient or to many.
    let srv = server();
    let mut c = offering(&srv, "/echo", "permessage-deflate");
    c.send_frame(0xC2, &pack(&data));
    let f = data_frame(&mut c);
    assert_eq!((f.opcode, f.rsv), (2, 0));
    assert_eq!(f.payload, data);
    let mut sender = srv.client("/chat");
    let mut member = offering(&srv, "/chat", "permessage-deflate");
    sender.send_binary(&data);
    let f = data_frame(&mut member);
    assert_eq!((f.rsv, f.payload == data), (0, true));
    // With it, the peer's window must see every message: compressed.
    let keep = server_with(
        DeflateConfig {
            server_context_takeover: true,
            ..DeflateConfig::default()
        },
        1 << 20,
    );
    let mut c = Client::connect(keep.addr, "/echo", &[(EXT, "permessage-deflate")]);
    c.send_binary(&data);
    let f = data_frame(&mut c);
    assert_eq!(f.rsv, 4);
    assert_eq!(unpack(&mut Inflater::new(), &f.payload), data);
}
