//! RFC 6455 framing over real TCP: the answer to every kind of bad frame.

mod common;
use common::*;
use sprocket::Config;
use sprocket::app::{Echo, Router};
use std::time::Duration;

fn echo_server(cfg: Config) -> TestServer {
    TestServer::start(cfg, move || Router::new().route("/echo", Echo))
}

#[test]
fn echoes_all_three_length_encodings() {
    let srv = echo_server(Config::default());
    let mut c = srv.client("/echo");
    for len in [0usize, 1, 125, 126, 65535, 65536, 1 << 20] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        c.send_binary(&data);
        let f = c.read_frame();
        assert_eq!((f.opcode, f.fin, f.payload.len()), (2, true, len));
        assert_eq!(f.payload, data);
    }
}

#[test]
fn fragmented_message_with_interleaved_ping() {
    let srv = echo_server(Config::default());
    let mut c = srv.client("/echo");
    c.send_frame(0x01, "Hel".as_bytes());
    c.send_frame(0x89, b"mid");
    c.send_frame(0x00, "lo κό".as_bytes());
    c.send_frame(0x80, "σμε".as_bytes());
    let pong = c.read_frame();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (0xA, &b"mid"[..]));
    assert_eq!(c.read_text(), "Hello κόσμε");
}

#[test]
fn ping_gets_pong_with_same_payload_and_pong_is_ignored() {
    let srv = echo_server(Config::default());
    let mut c = srv.client("/echo");
    c.send_frame(0x8A, b"unsolicited");
    c.send_frame(0x89, &[7u8; 125]);
    let f = c.read_frame();
    assert_eq!((f.opcode, f.payload), (0xA, vec![7u8; 125]));
}

#[test]
fn close_handshake_echoes_code() {
    let srv = echo_server(Config::default());
    let mut c = srv.client("/echo");
    c.send_close(4000, "bye");
    c.expect_close(4000);
    let mut c = srv.client("/echo");
    c.send_frame(0x88, b"");
    let f = c.read_frame();
    assert_eq!(
        (f.opcode, f.payload.len()),
        (8, 0),
        "empty close answered with empty close"
    );
}

/// Each case: raw bytes sent after the handshake, close code expected.
#[test]
fn bad_frames_get_the_rfc_close_code() {
    let srv = echo_server(Config {
        max_message_size: 4096,
        max_frame_size: 2048,
        ..Config::default()
    });
    let mut invalid_mid_fragment = masked_frame(0x01, "κόσμε".as_bytes());
    invalid_mid_fragment.extend(masked_frame(0x80, &[0xED, 0xA0, 0x80]));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked frame", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("RSV1 set", masked_frame(0xC1, b"x"), 1002),
        ("RSV2 set", masked_frame(0xA1, b"x"), 1002),
        ("RSV3 set", masked_frame(0x91, b"x"), 1002),
        ("opcode 3", masked_frame(0x83, b""), 1002),
        ("opcode 7", masked_frame(0x87, b""), 1002),
        ("opcode 0xB", masked_frame(0x8B, b""), 1002),
        ("opcode 0xF", masked_frame(0x8F, b""), 1002),
        ("ping of 126 bytes", masked_frame(0x89, &[0; 126]), 1002),
        ("fragmented ping", masked_frame(0x09, b""), 1002),
        ("continuation first", masked_frame(0x80, b"x"), 1002),
        (
            "text inside fragmented",
            [masked_frame(0x01, b"a"), masked_frame(0x81, b"b")].concat(),
            1002,
        ),
        ("close with 1 byte", masked_frame(0x88, &[3]), 1002),
        (
            "close code 1005",
            masked_frame(0x88, &1005u16.to_be_bytes()),
            1002,
        ),
        (
            "close code 999",
            masked_frame(0x88, &999u16.to_be_bytes()),
            1002,
        ),
        (
            "close code 5000",
            masked_frame(0x88, &5000u16.to_be_bytes()),
            1002,
        ),
        (
            "close reason not UTF-8",
            masked_frame(0x88, &[0x03, 0xE8, 0xFF]),
            1007,
        ),
        (
            "invalid UTF-8 text",
            masked_frame(0x81, &[0xC0, 0xAF]),
            1007,
        ),
        (
            "truncated UTF-8 at end",
            masked_frame(0x81, &[0xE2, 0x82]),
            1007,
        ),
        (
            "invalid UTF-8 in later fragment",
            invalid_mid_fragment,
            1007,
        ),
        ("frame over limit", masked_frame(0x82, &[0; 2049]), 1009),
        (
            "message over limit",
            [
                masked_frame(0x02, &[0; 2048]),
                masked_frame(0x00, &[0; 2048]),
                masked_frame(0x80, &[0; 1]),
            ]
            .concat(),
            1009,
        ),
        (
            "64-bit length top bit",
            vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
            1002,
        ),
        (
            "huge declared length, no payload",
            vec![0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4],
            1009,
        ),
    ];
    let mut healthy = srv.client("/echo");
    for (name, bytes, code) in cases {
        let mut c = srv.client("/echo");
        c.send_raw(&bytes);
        let f = c.read_frame();
        assert_eq!(f.opcode, 8, "{name}: expected close, got {f:?}");
        assert_eq!(f.close_code(), Some(code), "{name}");
        assert_eq!(
            c.read_timeout(Duration::from_secs(5)),
            Read_::Eof,
            "{name}: TCP closed after"
        );
        healthy.echo(name);
    }
}

#[test]
fn invalid_utf8_fails_before_the_frame_ends() {
    let srv = echo_server(Config::default());
    let mut c = srv.client("/echo");
    let mut payload = "valid prefix ".as_bytes().to_vec();
    payload.extend_from_slice(&[0xF4, 0x90, 0x80, 0x80]); // above U+10FFFF
    payload.extend_from_slice(&[b'x'; 100]);
    let wire = masked_frame(0x81, &payload);
    // Send only up to two bytes past the bad lead byte: the frame is far
    // from complete, yet the server must already fail the connection.
    c.send_raw(&wire[..8 + 13 + 2]);
    c.expect_close(1007);
}

#[test]
fn data_byte_by_byte() {
    let srv = echo_server(Config::default());
    let mut c = srv.client("/echo");
    let wire = [
        masked_frame(0x01, "ab".as_bytes()),
        masked_frame(0x89, b"p"),
        masked_frame(0x80, "cd€".as_bytes()),
    ]
    .concat();
    for b in wire {
        c.send_raw(&[b]);
    }
    let pong = c.read_frame();
    assert_eq!(pong.opcode, 0xA);
    assert_eq!(c.read_text(), "abcd€");
}
