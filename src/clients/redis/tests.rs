//! RedisConn on bytes: what it writes, what it makes of what redis-server
//! sends (replies captured from redis-server 7.0.15 on a raw socket).

use super::*;
use crate::clients::resp::RespError;

fn conn(url: &str, mode: Mode) -> RedisConn {
    RedisConn::new(&RedisUrl::parse(url).unwrap(), mode)
}

fn cmd(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    resp::encode_command(&mut out, args);
    out
}

fn events(c: &mut RedisConn) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// Takes everything the connection wants written.
fn written(c: &mut RedisConn) -> Vec<u8> {
    let out = c.transmit().to_vec();
    c.advance(out.len());
    out
}

fn ok(tag: u64, reply: Reply) -> Event {
    Event::Reply {
        tag,
        reply: Ok(reply),
    }
}

fn err(tag: u64, e: ReplyError) -> Event {
    Event::Reply { tag, reply: Err(e) }
}

fn bulk(b: &[u8]) -> Reply {
    Reply::Bulk(Some(b.to_vec()))
}

#[test]
fn auth_and_select_go_first_and_their_replies_are_consumed() {
    let mut c = conn("redis://alice:pw@h/3", Mode::Commands);
    let t0 = Instant::now();
    c.command(&[b"GET", b"k"], 7);
    assert!(c.transmit().is_empty(), "nothing is written while down");
    assert_eq!(c.held(), 1);
    assert_eq!(c.connected(t0), None);
    let mut want = cmd(&[b"AUTH", b"alice", b"pw"]);
    want.extend(cmd(&[b"SELECT", b"3"]));
    want.extend(cmd(&[b"GET", b"k"]));
    assert_eq!(written(&mut c), want);
    assert_eq!(c.in_flight(), 3);
    c.handle_input(b"+OK\r\n+OK\r\n$3\r\nv\x00\xff\r\n");
    assert_eq!(events(&mut c), [ok(7, bulk(b"v\x00\xff"))]);
    assert_eq!(c.in_flight(), 0);
}

#[test]
fn no_password_no_auth_and_db_0_no_select() {
    let mut c = conn("redis://h", Mode::Commands);
    c.connected(Instant::now());
    assert!(c.transmit().is_empty());
    c.command(&[b"PING"], 1);
    assert_eq!(written(&mut c), cmd(&[b"PING"]));
    // Password only: AUTH with one argument.
    let mut c = conn("redis://:s3cret@h/0", Mode::Commands);
    c.connected(Instant::now());
    assert_eq!(written(&mut c), cmd(&[b"AUTH", b"s3cret"]));
}

#[test]
fn pipelined_replies_match_tags_in_order_however_they_are_cut() {
    let mut wire = Vec::new();
    for i in 1..=200i64 {
        wire.extend_from_slice(format!(":{i}\r\n").as_bytes());
    }
    for piece in [wire.len(), 1, 3, 4096] {
        let mut c = conn("redis://h", Mode::Commands);
        c.connected(Instant::now());
        for tag in 0..200 {
            c.command(&[b"INCR", b"n"], 1000 + tag);
        }
        written(&mut c);
        let mut got = Vec::new();
        for chunk in wire.chunks(piece) {
            c.handle_input(chunk);
            got.extend(events(&mut c));
        }
        let want: Vec<_> = (0..200)
            .map(|t| ok(1000 + t, Reply::Integer(t as i64 + 1)))
            .collect();
        assert_eq!(got, want, "pieces of {piece}");
    }
}

#[test]
fn wrong_password_makes_the_connection_unusable_with_the_server_text() {
    let mut c = conn("redis://:nope@h", Mode::Commands);
    c.connected(Instant::now());
    c.command(&[b"GET", b"k"], 1);
    c.command(&[b"GET", b"k"], 2);
    written(&mut c);
    // What redis-server answers: WRONGPASS, then NOAUTH for each command.
    c.handle_input(
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n\
          -NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n",
    );
    let text = "WRONGPASS invalid username-password pair or user is disabled.";
    assert_eq!(
        events(&mut c),
        [
            err(1, ReplyError::Unusable),
            err(2, ReplyError::Unusable),
            Event::Unusable(UnusableReason::AuthFailed(text.into())),
        ]
    );
    assert!(c.is_unusable());
    assert_eq!(
        UnusableReason::AuthFailed(text.into()).to_string(),
        format!("Redis AUTH failed: {text}")
    );
    // Until the reactor reports the connection gone, nothing flows.
    c.command(&[b"PING"], 3);
    assert!(c.transmit().is_empty());
    c.handle_input(b"+PONG\r\n");
    assert_eq!(events(&mut c), []);
    // Held, then sent on the next connection after a fresh AUTH.
    c.disconnected(Instant::now());
    c.connected(Instant::now());
    let mut want = cmd(&[b"AUTH", b"nope"]);
    want.extend(cmd(&[b"PING"]));
    assert_eq!(written(&mut c), want);
}

#[test]
fn select_failure_is_unusable() {
    let mut c = conn("redis://h/99", Mode::Commands);
    c.connected(Instant::now());
    c.handle_input(b"-ERR DB index is out of range\r\n");
    assert_eq!(
        events(&mut c),
        [Event::Unusable(UnusableReason::SelectFailed(
            "ERR DB index is out of range".into()
        ))]
    );
}

#[test]
fn error_replies_to_commands_are_replies() {
    let mut c = conn("redis://h", Mode::Commands);
    c.connected(Instant::now());
    c.command(&[b"LPUSH", b"k", b"x"], 5);
    c.handle_input(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    assert_eq!(
        events(&mut c),
        [ok(
            5,
            Reply::Error(
                "WRONGTYPE Operation against a key holding the wrong kind of value".into()
            )
        )]
    );
    assert!(c.is_up());
}

#[test]
fn disconnect_fails_everything_in_flight_and_reports_the_outage() {
    let mut c = conn("redis://:pw@h", Mode::Commands);
    let t0 = Instant::now();
    c.connected(t0);
    c.command(&[b"INCR", b"a"], 1);
    c.command(&[b"INCR", b"a"], 2);
    // Half a reply buffered, half a command written.
    c.handle_input(b"+OK\r\n:4");
    c.advance(10);
    c.disconnected(t0 + Duration::from_secs(1));
    assert_eq!(
        events(&mut c),
        [
            err(1, ReplyError::Disconnected),
            err(2, ReplyError::Disconnected)
        ]
    );
    assert!(c.transmit().is_empty() && c.in_flight() == 0);
    // A failed attempt does not move the start of the outage.
    c.disconnected(t0 + Duration::from_secs(2));
    c.command(&[b"GET", b"a"], 3);
    assert_eq!(
        c.connected(t0 + Duration::from_secs(5)),
        Some(Duration::from_secs(4))
    );
    let mut want = cmd(&[b"AUTH", b"pw"]);
    want.extend(cmd(&[b"GET", b"a"]));
    assert_eq!(written(&mut c), want);
    // The stale half reply was dropped with the old connection.
    c.handle_input(b"+OK\r\n$1\r\n4\r\n");
    assert_eq!(events(&mut c), [ok(3, bulk(b"4"))]);
}

#[test]
fn first_connection_after_failed_attempts_reports_since_the_first_failure() {
    let mut c = conn("redis://h", Mode::Commands);
    let t0 = Instant::now();
    c.disconnected(t0);
    c.disconnected(t0 + Duration::from_secs(1));
    assert_eq!(
        c.connected(t0 + Duration::from_secs(3)),
        Some(Duration::from_secs(3))
    );
}

#[test]
fn held_commands_are_bounded_and_overflow_fails_at_once() {
    let settings = Settings {
        max_held: 2,
        max_held_bytes: 1000,
        ..Settings::default()
    };
    let url = RedisUrl::parse("redis://h").unwrap();
    let mut c = RedisConn::with_settings(&url, Mode::Commands, settings);
    c.command(&[b"A"], 1);
    c.command(&[b"B"], 2);
    c.command(&[b"C"], 3);
    assert_eq!(events(&mut c), [err(3, ReplyError::QueueFull)]);
    let mut c = RedisConn::with_settings(&url, Mode::Commands, settings);
    c.command(&[b"SET", b"k", &[0; 960]], 1);
    c.command(&[b"SET", b"k", &[0; 10]], 2);
    assert_eq!(events(&mut c), [err(2, ReplyError::QueueFull)]);
    assert_eq!(c.held(), 1);
}

#[test]
fn commands_that_break_the_pipeline_are_refused() {
    let mut c = conn("redis://h", Mode::Commands);
    c.connected(Instant::now());
    let refused: [&[&[u8]]; 6] = [
        &[],
        &[b"subscribe", b"x"],
        &[b"MONITOR"],
        &[b"hello", b"3"],
        &[b"Client", b"reply", b"off"],
        &[b"SELECT", b"1"],
    ];
    for (tag, args) in refused.iter().enumerate() {
        c.command(args, tag as u64);
    }
    c.command(&[b"CLIENT", b"SETNAME", b"x"], 9);
    let mut want: Vec<_> = (0..6).map(|t| err(t, ReplyError::Refused)).collect();
    assert_eq!(events(&mut c), want);
    assert_eq!(written(&mut c), cmd(&[b"CLIENT", b"SETNAME", b"x"]));
    // And a pub/sub connection takes no commands.
    let mut p = conn("redis://h", Mode::PubSub);
    p.command(&[b"GET", b"k"], 4);
    want = vec![err(4, ReplyError::WrongMode)];
    assert_eq!(events(&mut p), want);
    assert_eq!(c.subscribe(b"x"), Err(WrongMode));
}

#[test]
fn protocol_errors_and_stray_replies_are_unusable() {
    let mut c = conn("redis://h", Mode::Commands);
    c.connected(Instant::now());
    c.command(&[b"GET", b"k"], 1);
    c.handle_input(b"%1\r\n");
    assert_eq!(
        events(&mut c),
        [
            err(1, ReplyError::Unusable),
            Event::Unusable(UnusableReason::Protocol(RespError::BadType(b'%')))
        ]
    );
    let mut c = conn("redis://h", Mode::Commands);
    c.connected(Instant::now());
    c.handle_input(b"+OK\r\n");
    assert_eq!(
        events(&mut c),
        [Event::Unusable(UnusableReason::UnexpectedReply)]
    );
}

#[test]
fn pubsub_resubscribes_everything_wanted_on_each_connection() {
    let mut c = conn("redis://:pw@h/5", Mode::PubSub);
    assert_eq!(c.subscribe(b"ch1"), Ok(true));
    assert_eq!(c.subscribe(b"ch2"), Ok(true));
    assert_eq!(c.subscribe(b"ch1"), Ok(false));
    assert_eq!(c.psubscribe(b"news.*"), Ok(true));
    assert!(c.transmit().is_empty());
    c.connected(Instant::now());
    // No SELECT: pub/sub channels are not per database.
    let mut want = cmd(&[b"AUTH", b"pw"]);
    want.extend(cmd(&[b"SUBSCRIBE", b"ch1", b"ch2"]));
    want.extend(cmd(&[b"PSUBSCRIBE", b"news.*"]));
    assert_eq!(written(&mut c), want);
    c.handle_input(
        b"+OK\r\n*3\r\n$9\r\nsubscribe\r\n$3\r\nch1\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n\
          $3\r\nch2\r\n:2\r\n*3\r\n$10\r\npsubscribe\r\n$6\r\nnews.*\r\n:3\r\n\
          *3\r\n$7\r\nmessage\r\n$3\r\nch1\r\n$5\r\nhello\r\n\
          *4\r\n$8\r\npmessage\r\n$6\r\nnews.*\r\n$7\r\nnews.uk\r\n$6\r\nbin\r\n\x00\r\n",
    );
    let sub = |kind, name: &[u8], count| Event::Subscribed {
        kind,
        name: name.to_vec(),
        count,
    };
    assert_eq!(
        events(&mut c),
        [
            sub(SubKind::Channel, b"ch1", 1),
            sub(SubKind::Channel, b"ch2", 2),
            sub(SubKind::Pattern, b"news.*", 3),
            Event::Message {
                channel: b"ch1".to_vec(),
                payload: b"hello".to_vec()
            },
            Event::PMessage {
                pattern: b"news.*".to_vec(),
                channel: b"news.uk".to_vec(),
                payload: b"bin\r\n\x00".to_vec()
            },
        ]
    );
    assert_eq!(c.unsubscribe(b"ch1"), Ok(true));
    assert_eq!(c.unsubscribe(b"ch1"), Ok(false));
    assert_eq!(c.punsubscribe(b"news.*"), Ok(true));
    let mut want = cmd(&[b"UNSUBSCRIBE", b"ch1"]);
    want.extend(cmd(&[b"PUNSUBSCRIBE", b"news.*"]));
    assert_eq!(written(&mut c), want);
    c.handle_input(
        b"*3\r\n$11\r\nunsubscribe\r\n$3\r\nch1\r\n:2\r\n\
          *3\r\n$12\r\npunsubscribe\r\n$6\r\nnews.*\r\n:1\r\n",
    );
    assert_eq!(
        events(&mut c),
        [
            Event::Unsubscribed {
                kind: SubKind::Channel,
                name: b"ch1".to_vec(),
                count: 2
            },
            Event::Unsubscribed {
                kind: SubKind::Pattern,
                name: b"news.*".to_vec(),
                count: 1
            },
        ]
    );
    // Across an outage only what is still wanted comes back.
    c.disconnected(Instant::now());
    c.subscribe(b"ch3").unwrap();
    c.connected(Instant::now());
    let mut want = cmd(&[b"AUTH", b"pw"]);
    want.extend(cmd(&[b"SUBSCRIBE", b"ch2", b"ch3"]));
    assert_eq!(written(&mut c), want);
    assert_eq!(c.channels().collect::<Vec<_>>(), [b"ch2", b"ch3"]);
    assert_eq!(c.patterns().count(), 0);
}

#[test]
fn pubsub_resubscribes_in_batches() {
    let mut c = conn("redis://h", Mode::PubSub);
    for i in 0..2500 {
        c.subscribe(format!("c{i:04}").as_bytes()).unwrap();
    }
    c.connected(Instant::now());
    let out = written(&mut c);
    let mut at = 0;
    let mut sizes = Vec::new();
    while let Some((Reply::Array(Some(items)), used)) =
        resp::decode(&out[at..], &Limits::default()).unwrap()
    {
        assert_eq!(items[0], bulk(b"SUBSCRIBE"));
        sizes.push(items.len() - 1);
        at += used;
    }
    assert_eq!((sizes, at), (vec![1024, 1024, 452], out.len()));
}

#[test]
fn pubsub_errors_and_odd_pushes() {
    let mut c = conn("redis://h", Mode::PubSub);
    c.connected(Instant::now());
    c.handle_input(b"-NOPERM this user has no permissions to access the 'x' channel\r\n");
    assert_eq!(
        events(&mut c),
        [Event::ServerError(
            "NOPERM this user has no permissions to access the 'x' channel".into()
        )]
    );
    assert!(c.is_up());
    c.handle_input(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert_eq!(
        events(&mut c),
        [Event::Unusable(UnusableReason::UnexpectedReply)]
    );
    let mut c = conn("redis://:bad@h", Mode::PubSub);
    c.subscribe(b"x").unwrap();
    c.connected(Instant::now());
    c.handle_input(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    assert!(matches!(
        events(&mut c).as_slice(),
        [Event::Unusable(UnusableReason::AuthFailed(_))]
    ));
}

#[test]
fn partial_writes_and_buffers_shrink_after_a_big_reply() {
    let mut c = conn("redis://h", Mode::Commands);
    c.connected(Instant::now());
    c.command(&[b"GET", b"big"], 1);
    let all = c.transmit().to_vec();
    c.advance(3);
    assert_eq!(c.transmit(), &all[3..]);
    c.advance(usize::MAX);
    assert!(c.transmit().is_empty());
    let data = vec![b'x'; 1 << 20];
    let mut wire = b"$1048576\r\n".to_vec();
    wire.extend_from_slice(&data);
    wire.extend_from_slice(b"\r\n");
    for chunk in wire.chunks(4096) {
        assert_eq!(events(&mut c), []);
        c.handle_input(chunk);
    }
    assert_eq!(events(&mut c), [ok(1, Reply::Bulk(Some(data)))]);
    assert!(c.input.capacity() <= 4 * KEEP, "{}", c.input.capacity());
}

#[test]
fn encoded_len_is_exact() {
    for args in [
        &[][..],
        &[&b""[..]],
        &[b"SET", b"key", &[1; 9]],
        &[&[0; 10], &[0; 100], &[0; 12345]],
    ] {
        assert_eq!(encoded_len(args), cmd(args).len());
    }
}

#[test]
fn channel_batches_go_out_as_one_command_each_way() {
    let mut c = conn("redis://h", Mode::PubSub);
    let t0 = Instant::now();
    assert_eq!(c.want_channels([&b"a"[..], b"b"], true), Ok(2));
    assert!(c.transmit().is_empty(), "nothing is written while down");
    c.connected(t0);
    assert_eq!(written(&mut c), cmd(&[b"SUBSCRIBE", b"a", b"b"]));
    // Only the names that change are sent, each once.
    assert_eq!(c.want_channels([&b"b"[..], b"c", b"c"], true), Ok(1));
    assert_eq!(written(&mut c), cmd(&[b"SUBSCRIBE", b"c"]));
    assert_eq!(c.want_channels([&b"a"[..], b"z"], false), Ok(1));
    assert_eq!(written(&mut c), cmd(&[b"UNSUBSCRIBE", b"a"]));
    assert_eq!(c.want_channels(std::iter::empty(), true), Ok(0));
    assert!(c.transmit().is_empty());
    let names: Vec<&[u8]> = c.channels().collect();
    assert_eq!(names, [&b"b"[..], b"c"]);
    let mut cmds = conn("redis://h", Mode::Commands);
    assert_eq!(cmds.want_channels([&b"a"[..]], true), Err(WrongMode));
}
