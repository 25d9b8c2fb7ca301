use super::*;

const ME: Origin = Origin([1; 16]);
const OTHER: Origin = Origin([2; 16]);

fn bus() -> RemoteBus {
    RemoteBus::new(Settings::default(), ME)
}

fn envelope(origin: Origin, topic: &str, seq: u64, data: &str) -> Vec<u8> {
    let mut event = Event::new(topic, &serde_json::Value::Null);
    event.data = data.to_owned();
    let mut out = Vec::new();
    Envelope::from_event(&event, origin, seq, 0)
        .encode(&mut out)
        .unwrap();
    out
}

fn commands(b: &mut RemoteBus) -> Vec<Command> {
    std::iter::from_fn(|| b.poll_command()).collect()
}

fn names(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[test]
fn channels_follow_interest_batched_per_turn_with_a_linger() {
    let t0 = Instant::now();
    let mut b = bus();
    let probe = format!("sprocket:probe:{ME}");
    assert_eq!(b.take_interest(), (names(&[&probe]), vec![]));
    b.interest("a", true, t0);
    b.interest("b", true, t0);
    assert!(b.has_work());
    assert_eq!(
        b.take_interest(),
        (names(&["sprocket:topic:a", "sprocket:topic:b"]), vec![])
    );
    assert!(!b.has_work());
    // The last subscriber leaves; one comes back within the linger: no
    // command at all.
    b.interest("a", false, t0);
    b.interest("a", true, t0 + Duration::from_millis(500));
    b.handle_timeout(t0 + Duration::from_secs(2));
    assert_eq!(b.take_interest(), (vec![], vec![]));
    // Gone for good: unsubscribed once the linger is over, not before.
    b.interest("a", false, t0 + Duration::from_secs(2));
    assert_eq!(b.poll_timeout(), Some(t0 + Duration::from_secs(3)));
    b.handle_timeout(t0 + Duration::from_millis(2999));
    assert_eq!(b.take_interest(), (vec![], vec![]));
    b.handle_timeout(t0 + Duration::from_secs(3));
    assert_eq!(b.take_interest(), (vec![], names(&["sprocket:topic:a"])));
    assert_eq!(b.channel_count(), 1);
    // Off and on again within one turn: nothing goes out.
    b.interest("b", false, t0);
    b.handle_timeout(t0 + Duration::from_secs(5));
    b.interest("b", true, t0 + Duration::from_secs(5));
    assert_eq!(b.take_interest(), (vec![], vec![]));
}

#[test]
fn a_prefix_keeps_applications_apart() {
    let settings = Settings {
        prefix: "app1:".into(),
        ..Settings::default()
    };
    let mut b = RemoteBus::new(settings, ME);
    assert_eq!(b.channel("x"), b"app1:topic:x");
    assert_eq!(b.probe_channel(), format!("app1:probe:{ME}").as_bytes());
    b.interest("x", true, Instant::now());
    let env = envelope(OTHER, "x", 1, "1");
    let now = Instant::now();
    assert_eq!(
        b.receive(b"sprocket:topic:x", &env, now),
        Received::Dropped(Dropped::Foreign)
    );
    assert!(matches!(
        b.receive(b"app1:topic:x", &env, now),
        Received::Deliver { .. }
    ));
}

#[test]
fn publishes_are_numbered_per_topic_and_encoded_once() {
    let mut b = bus();
    let mut e = Event::new("t", &serde_json::json!({"n": 1}));
    e.publisher = Some("s1".into());
    b.publish(&e, || unreachable!()).unwrap();
    b.publish(&e, || unreachable!()).unwrap();
    b.publish(&Event::new("u", &serde_json::json!(2)), || unreachable!())
        .unwrap();
    let seqs: Vec<(Vec<u8>, u64, Option<String>)> = commands(&mut b)
        .into_iter()
        .map(|c| match c {
            Command::Publish {
                channel,
                payload,
                purpose: Purpose::Event,
            } => {
                let env = Envelope::decode(&payload).unwrap();
                assert_eq!(env.origin, ME);
                (channel, env.seq, env.session.map(str::to_owned))
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        seqs,
        [
            (b"sprocket:topic:t".to_vec(), 1, Some("s1".into())),
            (b"sprocket:topic:t".to_vec(), 2, Some("s1".into())),
            (b"sprocket:topic:u".to_vec(), 1, None),
        ]
    );
    let too_long = Event::new("x".repeat(3000), &serde_json::Value::Null);
    assert_eq!(
        b.publish(&too_long, || unreachable!()),
        Err(EnvelopeError::TopicTooLong(3000))
    );
    assert!(commands(&mut b).is_empty());
}

#[test]
fn receiving_drops_own_repeats_unwanted_and_reports_gaps() {
    let now = Instant::now();
    let mut b = bus();
    let ch = b"sprocket:topic:t";
    assert_eq!(
        b.receive(ch, &envelope(OTHER, "t", 1, "1"), now),
        Received::Dropped(Dropped::NotWanted)
    );
    b.interest("t", true, now);
    let deliver = |b: &mut RemoteBus, seq: u64| match b.receive(
        ch,
        &envelope(OTHER, "t", seq, &seq.to_string()),
        now,
    ) {
        Received::Deliver {
            event,
            origin,
            missed,
        } => {
            assert_eq!((event.topic.as_str(), origin), ("t", OTHER));
            assert_eq!(event.data, seq.to_string());
            Some(missed)
        }
        Received::Dropped(Dropped::Duplicate) => None,
        other => panic!("{other:?}"),
    };
    assert_eq!(deliver(&mut b, 5), Some(0), "joined mid-stream: no gap");
    assert_eq!(deliver(&mut b, 6), Some(0));
    assert_eq!(deliver(&mut b, 6), None, "at most once");
    assert_eq!(deliver(&mut b, 10), Some(3), "7, 8 and 9 were lost");
    assert_eq!(deliver(&mut b, 8), None, "late: dropped");
    assert_eq!(
        b.receive(ch, &envelope(ME, "t", 1, "1"), now),
        Received::Dropped(Dropped::Own)
    );
    assert_eq!(
        b.receive(ch, b"{\"not\":\"an envelope\"}", now),
        Received::Dropped(Dropped::Malformed(EnvelopeError::UnknownVersion(b'{')))
    );
    assert_eq!(
        b.receive(ch, &envelope(OTHER, "u", 11, "1"), now),
        Received::Dropped(Dropped::WrongChannel)
    );
    assert_eq!(
        b.receive(b"elsewhere", &envelope(OTHER, "t", 11, "1"), now),
        Received::Dropped(Dropped::Foreign)
    );
    // Unsubscribed on purpose and back: the numbers skipped meanwhile are
    // not a gap.
    b.interest("t", false, now);
    b.handle_timeout(now + Duration::from_secs(1));
    b.interest("t", true, now + Duration::from_secs(1));
    assert_eq!(deliver(&mut b, 50), Some(0));
}

#[test]
fn a_payload_over_the_limit_is_refused_by_its_length() {
    let settings = Settings {
        max_payload: 4,
        ..Settings::default()
    };
    let mut b = RemoteBus::new(settings, ME);
    let now = Instant::now();
    b.interest("t", true, now);
    assert_eq!(
        b.receive(b"sprocket:topic:t", &envelope(OTHER, "t", 1, "12345"), now),
        Received::Dropped(Dropped::Malformed(EnvelopeError::PayloadTooLarge(5, 4)))
    );
}

#[test]
fn probes_go_out_when_quiet_and_a_silent_subscriber_is_replaced() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut b = bus();
    assert_eq!(b.poll_timeout(), None, "no probe while the link is down");
    assert!(!b.subscriber_up(t0), "the first connection");
    assert_eq!(b.poll_timeout(), Some(t0 + s(1)));
    // Traffic keeps it from probing.
    b.receive(b"sprocket:topic:x", b"junk", t0 + s(1) / 2);
    b.handle_timeout(t0 + s(1));
    assert!(commands(&mut b).is_empty());
    b.handle_timeout(t0 + s(2));
    let probe = match commands(&mut b).as_slice() {
        [
            Command::Publish {
                channel,
                payload,
                purpose: Purpose::Probe,
            },
        ] => {
            assert_eq!(channel.as_slice(), b.probe_channel());
            payload.clone()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(b.poll_timeout(), Some(t0 + s(7)));
    let channel = b.probe_channel().to_vec();
    assert_eq!(b.receive(&channel, &probe, t0 + s(3)), Received::Probe);
    assert_eq!(b.poll_timeout(), Some(t0 + s(4)));
    // A probe that never comes back: reconnect, and no more probes until
    // the new connection is up.
    b.handle_timeout(t0 + s(4));
    assert!(matches!(commands(&mut b)[..], [Command::Publish { .. }]));
    b.handle_timeout(t0 + s(9) - Duration::from_millis(1));
    assert!(commands(&mut b).is_empty());
    b.handle_timeout(t0 + s(9));
    assert_eq!(commands(&mut b), [Command::Reconnect { commands: true }]);
    assert_eq!(b.poll_timeout(), None);
    b.handle_timeout(t0 + s(20));
    assert!(commands(&mut b).is_empty());
    // Redis took the probe but it never came back: only the subscriber
    // connection is replaced.
    assert!(b.subscriber_up(t0 + s(20)), "up again: an outage");
    b.handle_timeout(t0 + s(21));
    assert!(matches!(commands(&mut b)[..], [Command::Publish { .. }]));
    b.probe_published();
    b.handle_timeout(t0 + s(26));
    assert_eq!(commands(&mut b), [Command::Reconnect { commands: false }]);
    b.subscriber_up(t0 + s(30));
    b.subscriber_down();
    assert_eq!(b.poll_timeout(), None);
}

#[test]
fn run_ids_tell_a_restarted_redis() {
    let mut b = bus();
    b.commands_up();
    assert_eq!(commands(&mut b), [Command::Info]);
    let info =
        |id: &str| format!("# Server\r\nredis_version:7.0.15\r\nrun_id:{id}\r\ntcp_port:6379\r\n");
    assert_eq!(b.info(info("aaa").as_bytes()), RunId::First("aaa".into()));
    assert_eq!(b.info(info("aaa").as_bytes()), RunId::Same);
    assert_eq!(
        b.info(info("bbb").as_bytes()),
        RunId::Changed {
            old: "aaa".into(),
            new: "bbb".into()
        }
    );
    assert_eq!(b.info(b"# Server\r\n"), RunId::Missing);
    assert_eq!(b.info(&[0xff, 0xfe]), RunId::Missing);
}
