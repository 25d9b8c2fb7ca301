//! Unit tests on bytes: every octet here is written out from 37/ZMTP's
//! grammar, and the libzmq-shaped ones match what libzmq 4.3 sends (its
//! signature carries identity size + 1 in the padding).

use super::*;

/// A peer greeting with this version and mechanism.
fn greeting(major: u8, minor: u8, mechanism: &[u8]) -> Vec<u8> {
    let mut g = vec![0u8; GREETING_LEN];
    g[0] = 0xFF;
    g[8] = 1; // libzmq: identity size + 1, in network order
    g[9] = 0x7F;
    g[10] = major;
    g[11] = minor;
    g[12..12 + mechanism.len()].copy_from_slice(mechanism);
    g
}

/// A frame with these flags; long if the body needs it or `long` is set.
fn frame(flags: u8, body: &[u8], long: bool) -> Vec<u8> {
    let mut f = Vec::new();
    if long || body.len() > 255 {
        f.push(flags | LONG);
        f.extend_from_slice(&(body.len() as u64).to_be_bytes());
    } else {
        f.push(flags);
        f.push(body.len() as u8);
    }
    f.extend_from_slice(body);
    f
}

fn command(name: &[u8], data: &[u8]) -> Vec<u8> {
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(data);
    frame(COMMAND, &body, false)
}

fn props(props: &[(&str, &[u8])]) -> Vec<u8> {
    let mut m = Vec::new();
    for (name, value) in props {
        m.push(name.len() as u8);
        m.extend_from_slice(name.as_bytes());
        m.extend_from_slice(&(value.len() as u32).to_be_bytes());
        m.extend_from_slice(value);
    }
    m
}

fn ready(socket_type: &[u8]) -> Vec<u8> {
    command(
        b"READY",
        &props(&[("Socket-Type", socket_type), ("Identity", b"")]),
    )
}

/// What a libzmq PUSH sends before its first message.
fn hello() -> Vec<u8> {
    let mut v = greeting(3, 1, b"NULL");
    v.extend(ready(b"PUSH"));
    v
}

fn events(conn: &mut ZmtpConn) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

/// Feeds `chunks` one after the other; returns the events and the output.
fn run<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    settings: Settings,
) -> (Vec<Event>, Vec<u8>) {
    let mut conn = ZmtpConn::server(settings);
    let mut out = Vec::new();
    let mut all = Vec::new();
    for chunk in chunks {
        conn.handle_input(chunk);
        all.extend(events(&mut conn));
        out.extend_from_slice(conn.transmit());
        let n = conn.transmit().len();
        conn.advance_transmit(n);
    }
    out.extend_from_slice(conn.transmit());
    (all, out)
}

fn whole(bytes: &[u8]) -> (Vec<Event>, Vec<u8>) {
    run([bytes], Settings::default())
}

fn messages(events: &[Event]) -> Vec<Vec<Vec<u8>>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.clone().into_parts()),
            _ => None,
        })
        .collect()
}

fn error(events: &[Event]) -> Option<ZmtpError> {
    match events.last() {
        Some(Event::Error(e)) => Some(e.clone()),
        _ => None,
    }
}

/// Our ERROR command with this reason.
fn error_command(reason: &str) -> Vec<u8> {
    let mut data = vec![reason.len() as u8];
    data.extend_from_slice(reason.as_bytes());
    command(b"ERROR", &data)
}

#[test]
fn our_greeting_goes_out_whole_at_once() {
    let conn = ZmtpConn::server(Settings::default());
    let mut expected = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 1];
    expected.extend_from_slice(b"NULL");
    expected.resize(64, 0);
    assert_eq!(conn.transmit(), &expected[..]);
    assert!(!conn.is_ready() && !conn.is_failed());
    assert_eq!(conn.peer_version(), None);
}

#[test]
fn advance_transmit_takes_partial_writes() {
    let mut conn = ZmtpConn::server(Settings::default());
    conn.advance_transmit(10);
    assert_eq!(conn.transmit(), &GREETING[10..]);
    conn.advance_transmit(1000);
    assert!(conn.transmit().is_empty());
    conn.advance_transmit(1);
    assert!(conn.transmit().is_empty());
}

#[test]
fn null_handshake_with_a_push_peer() {
    let mut conn = ZmtpConn::server(Settings::default());
    conn.advance_transmit(GREETING_LEN);
    conn.handle_input(&greeting(3, 1, b"NULL"));
    assert!(events(&mut conn).is_empty());
    assert_eq!(conn.peer_version(), Some((3, 1)));
    // Nothing until the peer's READY: the server answers it.
    assert!(conn.transmit().is_empty());
    conn.handle_input(&ready(b"PUSH"));
    let ev = events(&mut conn);
    let Event::Ready {
        peer_socket_type,
        peer_version,
        metadata,
    } = &ev[0]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(*peer_socket_type, SocketType::Push);
    assert_eq!(*peer_version, (3, 1));
    assert_eq!(metadata.get("socket-type"), Some(&b"PUSH"[..]));
    assert_eq!(metadata.get("IDENTITY"), Some(&b""[..]));
    assert_eq!(metadata.len(), 2);
    assert!(conn.is_ready());
    // Our READY, byte for byte as in 37/ZMTP's worked example (with PULL).
    let mut expected = vec![0x04, 26, 5];
    expected.extend_from_slice(b"READY");
    expected.push(11);
    expected.extend_from_slice(b"Socket-Type");
    expected.extend_from_slice(&[0, 0, 0, 4]);
    expected.extend_from_slice(b"PULL");
    assert_eq!(conn.transmit(), &expected[..]);
    assert_eq!(expected, ready_without_identity(b"PULL"));
}

fn ready_without_identity(t: &[u8]) -> Vec<u8> {
    command(b"READY", &props(&[("Socket-Type", t)]))
}

/// Greeting, READY and a few messages, short and long, single and multi-part.
fn session() -> Vec<u8> {
    let mut v = hello();
    v.extend(frame(0, br#"{"topic":"a","n":1}"#, false));
    v.extend(frame(MORE, b"topic", false));
    v.extend(frame(0, b"payload", true));
    v.extend(frame(0, &[7u8; 300], false));
    v.extend(frame(0, b"", false));
    v
}

fn session_messages() -> Vec<Vec<Vec<u8>>> {
    vec![
        vec![br#"{"topic":"a","n":1}"#.to_vec()],
        vec![b"topic".to_vec(), b"payload".to_vec()],
        vec![vec![7u8; 300]],
        vec![vec![]],
    ]
}

#[test]
fn a_session_split_at_every_byte_gives_the_same_events() {
    let bytes = session();
    let (reference, out) = whole(&bytes);
    assert_eq!(messages(&reference), session_messages());
    assert!(matches!(reference[0], Event::Ready { .. }));
    for at in 0..=bytes.len() {
        let (a, b) = bytes.split_at(at);
        assert_eq!(
            run([a, b], Settings::default()),
            (reference.clone(), out.clone()),
            "split at {at}"
        );
    }
    let bytewise = run(bytes.chunks(1), Settings::default());
    assert_eq!(bytewise, (reference.clone(), out.clone()));
    for size in [2, 3, 7, 11, 63, 64, 65] {
        assert_eq!(
            run(bytes.chunks(size), Settings::default()),
            (reference.clone(), out.clone())
        );
    }
}

#[test]
fn greeting_in_libzmq_steps_10_then_1_then_53() {
    // libzmq sends the signature, waits for ours, then the major version,
    // waits, then the rest: each step must be taken without an answer.
    let g = greeting(3, 1, b"NULL");
    let mut conn = ZmtpConn::server(Settings::default());
    for piece in [&g[..10], &g[10..11], &g[11..]] {
        assert_eq!(
            conn.transmit(),
            &GREETING[..],
            "all of ours is out from the start"
        );
        conn.handle_input(piece);
        assert!(events(&mut conn).is_empty());
    }
    assert_eq!(conn.peer_version(), Some((3, 1)));
}

#[test]
fn zmtp_3_0_and_later_versions_are_accepted() {
    for (major, minor) in [(3, 0), (3, 1), (3, 7), (4, 0), (255, 255)] {
        let mut v = greeting(major, minor, b"NULL");
        v.extend(ready(b"PUSH"));
        v.extend(frame(0, b"m", false));
        let (ev, _) = whole(&v);
        assert!(
            matches!(&ev[0], Event::Ready { peer_version, .. } if *peer_version == (major, minor)),
            "{major}.{minor}: {ev:?}"
        );
        assert_eq!(messages(&ev), vec![vec![b"m".to_vec()]]);
    }
}

#[test]
fn padding_as_server_and_filler_are_not_validated() {
    let mut g = greeting(3, 0, b"NULL");
    g[1..9].copy_from_slice(&[0xAB; 8]);
    g[32] = 1;
    g[40] = 9;
    g.extend(ready(b"PUSH"));
    assert!(matches!(whole(&g).0[0], Event::Ready { .. }));
}

#[test]
fn zmtp_1_and_2_peers_are_refused_without_an_error_command() {
    // ZMTP 1.0: a short identity frame (length 1, flags 0); the first octet
    // decides, at once.
    let mut conn = ZmtpConn::server(Settings::default());
    conn.handle_input(&[0x01]);
    assert_eq!(events(&mut conn), vec![Event::Error(ZmtpError::NotZmtp)]);
    assert!(conn.is_failed());
    assert_eq!(conn.transmit(), &GREETING[..]);
    // ZMTP 1.0 with a long identity length: %xFF, 8 octets, flags %x00.
    let (ev, _) = whole(&[0xFF, 0, 0, 0, 0, 0, 0, 1, 0, 0x00, 0]);
    assert_eq!(error(&ev), Some(ZmtpError::NotZmtp));
    // ZMTP 2.0 (libzmq 3.x): revision 1 after the signature.
    let g = greeting(1, 0, b"");
    let (ev, out) = whole(&g[..12]);
    assert_eq!(ev, vec![Event::Error(ZmtpError::UnsupportedVersion(1))]);
    assert_eq!(out, GREETING.to_vec());
    let (ev, _) = whole(&greeting(2, 0, b"NULL"));
    assert_eq!(error(&ev), Some(ZmtpError::UnsupportedVersion(2)));
    let (ev, _) = whole(&greeting(0, 0, b"NULL"));
    assert_eq!(error(&ev), Some(ZmtpError::UnsupportedVersion(0)));
}

#[test]
fn other_mechanisms_are_refused() {
    for mechanism in [&b"CURVE"[..], b"PLAIN", b"NULLX", b"null", b"NUL"] {
        let mut v = greeting(3, 1, mechanism);
        v.extend(ready(b"PUSH"));
        let (ev, out) = whole(&v);
        let Some(ZmtpError::WrongMechanism(m)) = error(&ev) else {
            panic!("{ev:?}")
        };
        assert_eq!(&m[..mechanism.len()], mechanism);
        assert_eq!(out, GREETING.to_vec(), "no ERROR for another mechanism");
        assert_eq!(ev.len(), 1);
        let text = ZmtpError::WrongMechanism(m).to_string();
        assert!(
            text.contains(std::str::from_utf8(mechanism).unwrap()),
            "{text}"
        );
        assert_eq!(
            ZmtpError::WrongMechanism(m).category(),
            Category::Incompatible
        );
    }
}

#[test]
fn socket_types_other_than_push_get_an_error_command() {
    for (t, expected) in [
        (&b"PUB"[..], SocketType::Pub),
        (b"REQ", SocketType::Req),
        (b"PULL", SocketType::Pull),
        (b"DEALER", SocketType::Dealer),
    ] {
        let mut v = greeting(3, 1, b"NULL");
        v.extend(ready(t));
        v.extend(frame(0, b"never delivered", false));
        let (ev, out) = whole(&v);
        assert_eq!(
            ev,
            vec![Event::Error(ZmtpError::IncompatibleSocketType(expected))]
        );
        let mut want = GREETING.to_vec();
        want.extend(error_command("incompatible-Socket-Type"));
        assert_eq!(out, want);
    }
    let cases: [(Vec<u8>, ZmtpError, &str); 4] = [
        (
            command(b"READY", &props(&[("Identity", b"x")])),
            ZmtpError::MissingSocketType,
            "missing-Socket-Type",
        ),
        (
            ready(b"push"),
            ZmtpError::UnknownSocketType,
            "unknown-Socket-Type",
        ),
        (
            ready(b"PUSHER"),
            ZmtpError::UnknownSocketType,
            "unknown-Socket-Type",
        ),
        (
            command(b"READY", &[]),
            ZmtpError::MissingSocketType,
            "missing-Socket-Type",
        ),
    ];
    for (ready, e, reason) in cases {
        let mut v = greeting(3, 1, b"NULL");
        v.extend(ready);
        let (ev, out) = whole(&v);
        assert_eq!(ev, vec![Event::Error(e)]);
        assert!(out.ends_with(&error_command(reason)));
    }
}

#[test]
fn property_names_are_case_insensitive_and_others_are_kept() {
    let mut v = greeting(3, 1, b"NULL");
    v.extend(command(
        b"READY",
        &props(&[
            ("X-App", b"\x00bin"),
            ("socket-TYPE", b"PUSH"),
            ("Resource", b"a/b"),
        ]),
    ));
    let (ev, _) = whole(&v);
    let Event::Ready { metadata, .. } = &ev[0] else {
        panic!("{ev:?}")
    };
    let all: Vec<_> = metadata.iter().collect();
    assert_eq!(
        all,
        vec![
            ("X-App", &b"\x00bin"[..]),
            ("socket-TYPE", b"PUSH"),
            ("Resource", b"a/b")
        ]
    );
    assert_eq!(metadata.get("x-app"), Some(&b"\x00bin"[..]));
    assert_eq!(metadata.get("Identity"), None);
}

#[test]
fn malformed_ready_metadata_is_refused() {
    let good = props(&[("Socket-Type", b"PUSH")]);
    let mut truncated_value = good.clone();
    truncated_value.pop();
    let mut long_value = good.clone();
    long_value[12..16].copy_from_slice(&0x8000_0000u32.to_be_bytes());
    let mut bad_char = good.clone();
    bad_char[7] = b' ';
    let mut trailing = good.clone();
    trailing.push(3);
    for body in [
        vec![0u8, 0, 0, 0, 0],
        truncated_value,
        long_value,
        bad_char,
        trailing,
        vec![11],
    ] {
        let mut v = greeting(3, 1, b"NULL");
        v.extend(command(b"READY", &body));
        let (ev, out) = whole(&v);
        assert_eq!(
            ev,
            vec![Event::Error(ZmtpError::MalformedReady)],
            "{body:?}"
        );
        assert!(out.ends_with(&error_command("malformed-READY")));
    }
}

#[test]
fn only_ready_or_error_may_come_first() {
    for first in [
        frame(0, b"early", false),
        command(b"PING", &[0, 0]),
        command(b"HELLO", b""),
    ] {
        let mut v = greeting(3, 1, b"NULL");
        v.extend(first);
        let (ev, out) = whole(&v);
        assert_eq!(ev, vec![Event::Error(ZmtpError::ExpectedReady)]);
        assert!(out.ends_with(&error_command("expected-READY")));
    }
}

#[test]
fn short_and_long_frames() {
    let mut v = hello();
    v.extend(frame(0, b"short", false));
    v.extend(frame(0, b"long but small", true));
    v.extend(frame(0, &[1u8; 255], false));
    v.extend(frame(0, &[2u8; 256], false));
    v.extend(frame(0, b"", true));
    let (ev, _) = whole(&v);
    assert_eq!(
        messages(&ev),
        vec![
            vec![b"short".to_vec()],
            vec![b"long but small".to_vec()],
            vec![vec![1u8; 255]],
            vec![vec![2u8; 256]],
            vec![vec![]],
        ]
    );
}

#[test]
fn a_300_kb_frame_in_4_kib_reads() {
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut v = hello();
    v.extend(frame(0, &payload, false));
    v.extend(frame(0, b"next", false));
    let (ev, _) = run(v.chunks(4096), Settings::default());
    assert_eq!(messages(&ev), vec![vec![payload], vec![b"next".to_vec()]]);
}

#[test]
fn multipart_messages_and_their_accessors() {
    let mut v = hello();
    v.extend(frame(MORE, b"one", false));
    v.extend(frame(MORE, b"", false));
    v.extend(frame(MORE | LONG, &[0u8; 0], true));
    v.extend(frame(0, br#"{"json":true}"#, true));
    let (ev, _) = whole(&v);
    let Some(Event::Message(m)) = ev.get(1) else {
        panic!("{ev:?}")
    };
    assert_eq!(m.part_count(), 4);
    assert_eq!(
        m.parts().collect::<Vec<_>>(),
        vec![&b"one"[..], b"", b"", br#"{"json":true}"#]
    );
    assert_eq!(m.part(0), Some(&b"one"[..]));
    assert_eq!(m.part(4), None);
    assert_eq!(m.last(), br#"{"json":true}"#);
    assert_eq!(m.size(), 3 + 13);
    assert_eq!(
        m,
        &Message::from_parts(&[&b"one"[..], b"", b"", br#"{"json":true}"#])
    );
    assert_eq!(m.clone().into_last(), br#"{"json":true}"#.to_vec());
    let single = Message::from_parts(&[b"x"]);
    assert_eq!((single.part_count(), single.last()), (1, &b"x"[..]));
    assert_eq!(single.into_last(), b"x".to_vec());
}

#[test]
fn ping_gets_a_pong_with_its_context() {
    let mut conn = ZmtpConn::server(Settings::default());
    conn.handle_input(&hello());
    let n = conn.transmit().len();
    conn.advance_transmit(n);
    events(&mut conn);
    // libzmq: TTL in tenths of a second, context empty or up to 16 octets.
    conn.handle_input(&command(b"PING", b"\x00\x1eabc"));
    let mut pong = vec![0x04, 8, 4];
    pong.extend_from_slice(b"PONGabc");
    assert_eq!(conn.transmit(), &pong[..]);
    assert_eq!(conn.heartbeat_ttl(), Some(Duration::from_secs(3)));
    assert_eq!(conn.pings(), 1);
    conn.advance_transmit(pong.len());
    conn.handle_input(&command(b"PING", &[0, 0]));
    assert_eq!(conn.transmit(), b"\x04\x05\x04PONG");
    assert_eq!(conn.heartbeat_ttl(), None);
    conn.handle_input(&command(
        b"PING",
        &[[0u8, 1].as_slice(), &[9u8; 16]].concat(),
    ));
    assert_eq!(conn.transmit().len(), 7 + 7 + 16);
    assert!(events(&mut conn).is_empty());
    assert_eq!(conn.pings(), 3);
}

#[test]
fn malformed_pings_end_the_connection_without_error_command() {
    for data in [&b""[..], b"\x00", &[0u8; 19]] {
        let mut v = hello();
        v.extend(command(b"PING", data));
        let (ev, out) = whole(&v);
        assert_eq!(error(&ev), Some(ZmtpError::MalformedPing));
        assert!(out.ends_with(READY), "no ERROR after the handshake");
    }
}

#[test]
fn commands_between_parts_do_not_disturb_the_message() {
    let mut v = hello();
    v.extend(frame(MORE, b"a", false));
    v.extend(command(b"PING", b"\x00\x00ctx"));
    v.extend(command(b"PONG", b""));
    v.extend(frame(0, b"b", false));
    let (ev, out) = whole(&v);
    assert_eq!(messages(&ev), vec![vec![b"a".to_vec(), b"b".to_vec()]]);
    assert!(out.ends_with(b"\x04\x08\x04PONGctx"));
}

#[test]
fn unknown_and_other_patterns_commands_are_ignored() {
    let mut v = hello();
    for c in [
        command(b"PONG", b"x"),
        command(b"SUBSCRIBE", b"topic"),
        command(b"CANCEL", b""),
        command(b"JOIN", b"g"),
        command(b"FUTURE", &[1, 2, 3]),
        frame(
            COMMAND,
            &[[5u8].as_slice(), b"LATER", &[0u8; 300]].concat(),
            true,
        ),
    ] {
        v.extend(c);
    }
    v.extend(frame(0, b"still here", false));
    let (ev, _) = whole(&v);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(messages(&ev), vec![vec![b"still here".to_vec()]]);
}

#[test]
fn a_peer_error_is_fatal_and_not_answered() {
    let mut v = greeting(3, 1, b"NULL");
    v.extend(command(b"ERROR", b"\x03400"));
    let (ev, out) = whole(&v);
    assert_eq!(ev, vec![Event::Error(ZmtpError::PeerError("400".into()))]);
    assert_eq!(out, GREETING.to_vec());
    assert_eq!(
        ZmtpError::PeerError(String::new()).category(),
        Category::Refused
    );
    let mut v = hello();
    v.extend(command(b"ERROR", b"\x09bad\x00\nthing and more"));
    let (ev, _) = whole(&v);
    assert_eq!(error(&ev), Some(ZmtpError::PeerError("bad??thin".into())));
}

#[test]
fn a_second_ready_is_an_error() {
    let mut v = hello();
    v.extend(ready(b"PUSH"));
    assert_eq!(error(&whole(&v).0), Some(ZmtpError::DuplicateReady));
}

#[test]
fn limits_are_decided_from_the_header() {
    let settings = Settings {
        max_frame: 100,
        max_message: 150,
        max_parts: 3,
        max_command: 64,
        max_transmit: 30,
    };
    let check = |tail: Vec<u8>, expected: ZmtpError| {
        let mut v = hello();
        v.extend(tail);
        let (ev, _) = run([&v[..]], settings);
        assert_eq!(error(&ev), Some(expected.clone()), "{ev:?}");
        assert_eq!(expected.category(), Category::Limit);
    };
    // A header alone, its body never sent: the error comes at once.
    check(
        vec![LONG, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
        ZmtpError::FrameTooLarge(i64::MAX as u64),
    );
    check(
        vec![LONG, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
        ZmtpError::FrameTooLarge(u64::MAX),
    );
    check(vec![0, 101], ZmtpError::FrameTooLarge(101));
    check(
        [frame(MORE, &[0; 100], false), vec![0, 51]].concat(),
        ZmtpError::MessageTooLarge,
    );
    check(
        [
            frame(MORE, b"", false),
            frame(MORE, b"", false),
            frame(MORE, b"", false),
            vec![0, 0],
        ]
        .concat(),
        ZmtpError::TooManyParts,
    );
    check(
        vec![COMMAND | LONG, 0, 0, 0, 0, 0, 0, 0, 65],
        ZmtpError::CommandTooLarge(65),
    );
    // PINGs from a peer that does not read: 30 bytes of PONGs at most.
    check(
        command(b"PING", &[0, 0, 1, 2, 3, 4, 5, 6, 7, 8]).repeat(3),
        ZmtpError::TransmitBacklog,
    );
    // At the limits exactly: fine.
    let mut v = hello();
    v.extend(frame(MORE, &[1; 100], false));
    v.extend(frame(MORE, &[2; 50], false));
    v.extend(frame(0, b"", false));
    let (ev, _) = run([&v[..]], settings);
    assert_eq!(messages(&ev), vec![vec![vec![1; 100], vec![2; 50], vec![]]]);
    // The limits are per message: the next one starts from zero.
    let mut v = hello();
    for _ in 0..3 {
        v.extend(frame(MORE, &[1; 100], false));
        v.extend(frame(0, &[2; 50], false));
    }
    assert_eq!(messages(&run([&v[..]], settings).0).len(), 3);
}

#[test]
fn a_handshake_command_over_the_limit_gets_an_error_command() {
    let mut v = greeting(3, 1, b"NULL");
    v.extend(frame(COMMAND, &[0u8; 70_000], true));
    let (ev, out) = whole(&v);
    assert_eq!(ev, vec![Event::Error(ZmtpError::CommandTooLarge(70_000))]);
    assert!(out.ends_with(&error_command("too-large")));
}

#[test]
fn framing_errors() {
    let cases = [
        (vec![0x08, 0], ZmtpError::ReservedFlags(0x08)),
        (vec![0x80], ZmtpError::ReservedFlags(0x80)),
        (vec![COMMAND | MORE, 1, 0], ZmtpError::CommandWithMore),
        (vec![COMMAND, 0], ZmtpError::MalformedCommand),
        (vec![COMMAND, 1, 0], ZmtpError::MalformedCommand),
        (vec![COMMAND, 3, 5, b'P', b'I'], ZmtpError::MalformedCommand),
        (command(b"PI-G", b""), ZmtpError::MalformedCommand),
        (command(b"P1NG", b""), ZmtpError::MalformedCommand),
    ];
    for (tail, expected) in cases {
        let mut v = hello();
        v.extend(tail.clone());
        let (ev, _) = whole(&v);
        assert_eq!(error(&ev), Some(expected.clone()), "{tail:?}");
        assert_eq!(expected.category(), Category::Protocol);
        // The same during the handshake gets an ERROR command.
        let mut v = greeting(3, 1, b"NULL");
        v.extend(tail);
        let (ev, out) = whole(&v);
        assert_eq!(error(&ev), Some(expected));
        assert!(out.ends_with(&error_command("malformed-frame")));
    }
}

#[test]
fn garbage_is_refused_at_its_first_octet_and_nothing_after_an_error_counts() {
    let mut conn = ZmtpConn::server(Settings::default());
    conn.handle_input(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(events(&mut conn), vec![Event::Error(ZmtpError::NotZmtp)]);
    conn.handle_input(&hello());
    assert!(events(&mut conn).is_empty());
    assert!(conn.is_failed() && !conn.is_ready());
    // Pseudo-random bytes after a good handshake: an error or nothing, never
    // a panic, and the same whole or byte by byte.
    let mut x = 0x2545F491_4F6CDD1Du64;
    for _ in 0..200 {
        let mut v = hello();
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(x as u8 & 0x87);
        }
        assert_eq!(whole(&v), run(v.chunks(1), Settings::default()));
    }
}

#[test]
fn socket_type_table_is_symmetric_and_names_round_trip() {
    let all = super::meta::tests_all();
    for a in all {
        assert_eq!(SocketType::from_bytes(a.as_str().as_bytes()), Some(a));
        for b in all {
            assert_eq!(a.is_compatible_with(b), b.is_compatible_with(a), "{a} {b}");
        }
    }
    assert!(SocketType::Pull.is_compatible_with(SocketType::Push));
    assert_eq!(
        all.iter()
            .filter(|t| t.is_compatible_with(SocketType::Pull))
            .count(),
        1
    );
}

/// What php-zmq 1.1.3 (libzmq 4.3.4) sent, captured on a raw socket that
/// answered with our greeting and READY: `send('{"topic":"news","n":1}')`,
/// `sendmulti(['news', '{"n":2}'])`, `send(str_repeat('x', 300))`, `send('')`.
const PHP_ZMQ: &[u8] = include_bytes!("fixtures/php-zmq-1.1.3-libzmq-4.3.4.bin");
/// What pyzmq 27.3.0 (libzmq 4.3.5) sent with `HEARTBEAT_IVL` 100 ms and
/// `HEARTBEAT_TTL` 2 s: `send(b"first")`, PINGs, `send_multipart([b"a", b"b"])`.
const PYZMQ: &[u8] = include_bytes!("fixtures/pyzmq-27.3.0-libzmq-4.3.5-heartbeat.bin");

#[test]
fn bytes_captured_from_php_zmq() {
    // libzmq puts identity size + 1 in the padding; READY has Socket-Type only.
    assert_eq!(&PHP_ZMQ[..10], &[0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F]);
    let (ev, out) = whole(PHP_ZMQ);
    assert!(
        matches!(&ev[0], Event::Ready { peer_version: (3, 1), metadata, .. } if metadata.len() == 1)
    );
    assert_eq!(
        messages(&ev),
        vec![
            vec![br#"{"topic":"news","n":1}"#.to_vec()],
            vec![b"news".to_vec(), br#"{"n":2}"#.to_vec()],
            vec![vec![b'x'; 300]],
            vec![vec![]],
        ]
    );
    assert_eq!(out, [&GREETING[..], READY].concat());
    assert_eq!(run(PHP_ZMQ.chunks(1), Settings::default()), (ev, out));
}

#[test]
fn bytes_captured_from_pyzmq_with_heartbeats() {
    let pings = PYZMQ.windows(4).filter(|w| w == b"PING").count();
    assert!(pings >= 2);
    let mut conn = ZmtpConn::server(Settings::default());
    conn.handle_input(PYZMQ);
    let ev = events(&mut conn);
    assert_eq!(
        messages(&ev),
        vec![vec![b"first".to_vec()], vec![b"a".to_vec(), b"b".to_vec()]]
    );
    assert_eq!(conn.pings(), pings as u64);
    assert_eq!(conn.heartbeat_ttl(), Some(Duration::from_secs(2)));
    let pongs = [&GREETING[..], READY, &b"\x04\x05\x04PONG".repeat(pings)].concat();
    assert_eq!(conn.transmit(), &pongs[..]);
}
