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

fn durable_bus() -> RemoteBus {
    let settings = Settings {
        durable: vec!["d:".into()],
        ..Settings::default()
    };
    let mut b = RemoteBus::new(settings, ME);
    b.take_interest();
    join_durable(&mut b, "d:seats", vec![]);
    b
}

/// A durable topic's first local subscriber: its stream located (with
/// `last` as its last entry), then subscribed, then read from there.
fn join_durable(b: &mut RemoteBus, topic: &str, last: Vec<Entry>) {
    b.interest(topic, true, Instant::now());
    assert_eq!(
        b.take_interest(),
        (vec![], vec![]),
        "not before it is located"
    );
    assert!(matches!(
        commands(b).as_slice(),
        [Command::Locate { topic: t, .. }] if t == topic
    ));
    let after = last.first().map(|e| e.id);
    b.located(topic, Some(last));
    let channel = format!("sprocket:topic:{topic}").into_bytes();
    assert_eq!(b.take_interest(), (vec![channel.clone()], vec![]));
    b.subscribed(&channel);
    assert!(matches!(
        commands(b).as_slice(),
        [Command::Repair { after: a, .. }] if *a == after
    ));
    b.repaired(topic, Some(vec![]));
}

/// A durable channel message from OTHER: `epoch id envelope`.
fn durable_msg(epoch: &str, id: StreamId, seq: u64) -> Vec<u8> {
    let mut m = format!("{epoch} {id} ").into_bytes();
    m.extend(envelope(OTHER, "d:seats", seq, &seq.to_string()));
    m
}

fn entry(epoch: &str, id: StreamId, seq: u64) -> Entry {
    Entry {
        id,
        epoch: epoch.into(),
        envelope: envelope(OTHER, "d:seats", seq, &seq.to_string()),
    }
}

/// What the outputs delivered (payloads) and the gaps among them.
fn outputs(b: &mut RemoteBus) -> (Vec<String>, u64, usize) {
    let (mut got, mut missed, mut lost) = (Vec::new(), 0, 0);
    while let Some(o) = b.poll_output() {
        match o {
            Output::Deliver {
                event, missed: m, ..
            } => {
                got.push(event.data);
                missed += m;
            }
            Output::Lost { .. } => lost += 1,
            Output::Dropped(_) => {}
        }
    }
    (got, missed, lost)
}

const CH: &[u8] = b"sprocket:topic:d:seats";

#[test]
fn durable_publishes_go_to_the_stream_with_a_fresh_epoch_name_each() {
    let mut b = durable_bus();
    let e = Event::new("d:seats", &serde_json::json!(1));
    b.publish(&e, || unreachable!()).unwrap();
    b.publish(&e, || unreachable!()).unwrap();
    let epochs: Vec<String> = commands(&mut b)
        .into_iter()
        .map(|c| match c {
            Command::PublishDurable {
                stream,
                channel,
                maxlen,
                epoch,
                payload,
            } => {
                assert_eq!(stream, b"sprocket:stream:d:seats");
                assert_eq!(channel, CH);
                assert_eq!(maxlen, 10_000);
                assert!(Envelope::decode(&payload).is_ok());
                epoch
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_ne!(epochs[0], epochs[1]);
    assert!(b.is_durable("d:x") && !b.is_durable("x"));
}

#[test]
fn a_gap_in_a_durable_topic_is_repaired_from_the_stream_in_order() {
    let now = Instant::now();
    let mut b = durable_bus();
    let id = |n| StreamId(1000, n);
    assert_eq!(
        b.receive(CH, &durable_msg("E", id(1), 1), now),
        Received::Durable
    );
    assert_eq!(
        b.receive(CH, &durable_msg("E", id(2), 2), now),
        Received::Durable
    );
    assert_eq!(outputs(&mut b), (vec!["1".into(), "2".into()], 0, 0));
    // 3 and 4 never came live; 5 does: ask the stream, hold 5 and 6.
    b.receive(CH, &durable_msg("E", id(5), 5), now);
    match commands(&mut b).as_slice() {
        [
            Command::Repair {
                topic,
                stream,
                after,
                count,
            },
        ] => {
            assert_eq!((topic.as_str(), after), ("d:seats", &Some(id(2))));
            assert_eq!(stream, b"sprocket:stream:d:seats");
            assert_eq!(*count, durable::REPAIR_BATCH);
        }
        other => panic!("{other:?}"),
    }
    b.receive(CH, &durable_msg("E", id(6), 6), now);
    assert_eq!(outputs(&mut b), (vec![], 0, 0), "held while repairing");
    // The stream has 3, 4, 5 (6 came after the XRANGE ran).
    b.repaired(
        "d:seats",
        Some(vec![
            entry("E", id(3), 3),
            entry("E", id(4), 4),
            entry("E", id(5), 5),
        ]),
    );
    let want: Vec<String> = (3..=6).map(|n| n.to_string()).collect();
    assert_eq!(outputs(&mut b), (want, 0, 0), "no gap, each once, in order");
    // Repeats of anything taken are dropped.
    b.receive(CH, &durable_msg("E", id(6), 6), now);
    assert_eq!(outputs(&mut b).0, Vec::<String>::new());
    // A stream that lost entries too (trimmed): the gap is for good.
    b.receive(CH, &durable_msg("E", id(9), 9), now);
    commands(&mut b);
    b.repaired(
        "d:seats",
        Some(vec![entry("E", id(8), 8), entry("E", id(9), 9)]),
    );
    assert_eq!(outputs(&mut b), (vec!["8".into(), "9".into()], 1, 0));
}

#[test]
fn after_an_outage_durable_topics_read_back_what_they_missed() {
    let now = Instant::now();
    let mut b = durable_bus();
    b.subscriber_up(now);
    let id = |n| StreamId(7, n);
    b.receive(CH, &durable_msg("E", id(1), 1), now);
    outputs(&mut b);
    b.subscriber_down();
    assert!(b.subscriber_up(now));
    assert!(commands(&mut b).is_empty(), "not before Redis confirms");
    b.subscribed(CH);
    assert!(matches!(
        commands(&mut b).as_slice(),
        [Command::Repair { after: Some(a), .. }] if *a == id(1)
    ));
    // A full batch asks for the next one.
    let batch: Vec<Entry> = (2..2 + durable::REPAIR_BATCH as u64)
        .map(|n| entry("E", id(n), n))
        .collect();
    b.repaired("d:seats", Some(batch));
    let last = id(1 + durable::REPAIR_BATCH as u64);
    assert!(matches!(
        commands(&mut b).as_slice(),
        [Command::Repair { after: Some(a), .. }] if *a == last
    ));
    b.repaired("d:seats", Some(vec![]));
    let (got, missed, lost) = outputs(&mut b);
    assert_eq!((got.len(), missed, lost), (durable::REPAIR_BATCH, 0, 0));
    // A stream that cannot be read: the loss is announced, what waited
    // goes on with its gaps counted.
    b.subscriber_down();
    b.subscriber_up(now);
    b.subscribed(CH);
    commands(&mut b);
    let next = 2 + durable::REPAIR_BATCH as u64;
    b.receive(CH, &durable_msg("E", id(next + 3), next + 3), now);
    b.repaired("d:seats", None);
    assert_eq!(outputs(&mut b), (vec![(next + 3).to_string()], 3, 1));
}

#[test]
fn a_new_epoch_means_the_stream_was_lost_and_is_read_from_its_start() {
    let now = Instant::now();
    let mut b = durable_bus();
    b.receive(CH, &durable_msg("old", StreamId(5, 0), 1), now);
    outputs(&mut b);
    // Redis lost the stream; the publisher goes on (seq 3: 2 was lost
    // with the old stream), the new stream already has seq 2 at 9-0.
    b.receive(CH, &durable_msg("new", StreamId(9, 1), 3), now);
    assert!(matches!(
        commands(&mut b).as_slice(),
        [Command::Repair { after: None, .. }]
    ));
    b.repaired(
        "d:seats",
        Some(vec![
            entry("new", StreamId(9, 0), 2),
            entry("new", StreamId(9, 1), 3),
        ]),
    );
    assert_eq!(outputs(&mut b), (vec!["2".into(), "3".into()], 0, 1));
}

#[test]
fn durable_messages_are_checked() {
    assert_eq!(
        durable::split_message(b"E 1-2 xyz"),
        Some(("E", StreamId(1, 2), &b"xyz"[..]))
    );
    for bad in [
        &b"E 1-2"[..],
        b" 1-2 x",
        b"E 1 x",
        b"E -2 x",
        b"E 1-x x",
        b"E 1-2-3 x",
    ] {
        assert_eq!(durable::split_message(bad), None, "{bad:?}");
    }
    assert!(StreamId(1, 9) < StreamId(2, 0) && StreamId(2, 0) < StreamId(2, 1));
    let now = Instant::now();
    let mut b = durable_bus();
    assert_eq!(
        b.receive(CH, b"not durable", now),
        Received::Dropped(Dropped::NotDurable)
    );
    use crate::clients::resp::Reply::{Array, Bulk};
    let bulk = |s: &[u8]| Bulk(Some(s.to_vec()));
    let reply = Array(Some(vec![Array(Some(vec![
        bulk(b"3-4"),
        Array(Some(vec![bulk(b"p"), bulk(b"E"), bulk(b"e"), bulk(b"env")])),
    ]))]));
    assert_eq!(
        Entry::from_reply(reply),
        Some(vec![Entry {
            id: StreamId(3, 4),
            epoch: "E".into(),
            envelope: b"env".to_vec()
        }])
    );
    let no_epoch = Array(Some(vec![Array(Some(vec![
        bulk(b"3-4"),
        Array(Some(vec![bulk(b"e"), bulk(b"env")])),
    ]))]));
    assert_eq!(Entry::from_reply(no_epoch), None);
}

#[test]
fn a_quiet_durable_topic_knows_its_place_in_the_stream_from_the_start() {
    let now = Instant::now();
    let mut b = durable_bus();
    join_durable(&mut b, "d:empty", vec![]);
    assert_eq!(b.wanted().count(), 0, "both can repair an outage");
    // A stream that cannot be located: subscribed all the same, and an
    // outage gets the plain notice.
    b.interest("d:dark", true, now);
    commands(&mut b);
    b.located("d:dark", None);
    assert_eq!(
        b.take_interest(),
        (vec![b"sprocket:topic:d:dark".to_vec()], vec![])
    );
    assert_eq!(b.wanted().collect::<Vec<_>>(), ["d:dark"]);
    // An outage: the located ones are read back, from where they stood,
    // once Redis confirmed each subscription.
    b.subscriber_up(now);
    b.subscriber_down();
    b.subscriber_up(now);
    b.subscribed(CH);
    b.subscribed(b"sprocket:topic:d:empty");
    b.subscribed(b"sprocket:topic:d:dark");
    let mut after: Vec<(String, Option<StreamId>)> = commands(&mut b)
        .into_iter()
        .map(|c| match c {
            Command::Repair { topic, after, .. } => (topic, after),
            other => panic!("{other:?}"),
        })
        .collect();
    after.sort();
    assert_eq!(
        after,
        [("d:empty".to_owned(), None), ("d:seats".to_owned(), None)]
    );
}

#[test]
fn what_came_before_the_subscription_is_not_delivered_what_came_after_is() {
    let settings = Settings {
        durable: vec!["d:".into()],
        ..Settings::default()
    };
    let mut b = RemoteBus::new(settings, ME);
    b.take_interest();
    // The stream's last entry when located; the subscription confirmed;
    // the read from there has what came in between.
    b.interest("d:seats", true, Instant::now());
    commands(&mut b);
    b.located("d:seats", Some(vec![entry("E", StreamId(4, 0), 9)]));
    b.take_interest();
    b.subscribed(CH);
    assert!(matches!(
        commands(&mut b).as_slice(),
        [Command::Repair { after: Some(a), .. }] if *a == StreamId(4, 0)
    ));
    // Its live copy comes while the read is out, and after it.
    b.receive(CH, &durable_msg("E", StreamId(5, 0), 10), Instant::now());
    b.repaired("d:seats", Some(vec![entry("E", StreamId(5, 0), 10)]));
    assert_eq!(outputs(&mut b), (vec!["10".into()], 0, 0), "once");
}

#[test]
fn a_deleted_stream_ends_in_a_counted_gap_not_a_loop() {
    let now = Instant::now();
    let mut b = durable_bus();
    let id = |n| StreamId(9, n);
    b.receive(CH, &durable_msg("E", id(1), 1), now);
    b.receive(CH, &durable_msg("E", id(3), 3), now);
    assert!(matches!(commands(&mut b)[..], [Command::Repair { .. }]));
    // The stream is gone: the read finds nothing.
    b.repaired("d:seats", Some(vec![]));
    assert!(commands(&mut b).is_empty(), "no second read of the same");
    assert_eq!(outputs(&mut b), (vec!["1".into(), "3".into()], 1, 0));
    // A late message of another epoch after that: announced, not taken.
    b.receive(CH, &durable_msg("old", id(2), 2), now);
    let (got, _, lost) = outputs(&mut b);
    assert!(
        commands(&mut b)
            .iter()
            .all(|c| matches!(c, Command::Repair { after: None, .. }))
    );
    let _ = (got, lost);
}

#[test]
fn a_durable_publish_sent_again_names_a_new_stream_afresh() {
    let mut b = durable_bus();
    b.publish(
        &Event::new("d:seats", &serde_json::json!(1)),
        || unreachable!(),
    )
    .unwrap();
    let (first, tries) = b.poll_command_tried().unwrap();
    let Command::PublishDurable { epoch: e1, .. } = &first else {
        panic!("{first:?}");
    };
    let e1 = e1.clone();
    b.retry(first, tries + 1);
    match b.poll_command_tried() {
        Some((Command::PublishDurable { epoch, payload, .. }, 1)) => {
            assert_ne!(epoch, e1);
            assert_eq!(Envelope::decode(&payload).unwrap().seq, 1, "the same event");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_outage_during_a_repair_reads_the_stream_again_after_it() {
    let now = Instant::now();
    let mut b = durable_bus();
    b.subscriber_up(now);
    let id = |n| StreamId(3, n);
    b.receive(CH, &durable_msg("E", id(1), 1), now);
    b.receive(CH, &durable_msg("E", id(3), 3), now); // 2 missing: repair
    assert!(matches!(commands(&mut b)[..], [Command::Repair { .. }]));
    b.subscriber_down();
    b.subscriber_up(now);
    b.subscribed(CH);
    assert!(commands(&mut b).is_empty(), "one repair at a time");
    b.repaired(
        "d:seats",
        Some(vec![entry("E", id(2), 2), entry("E", id(3), 3)]),
    );
    assert!(
        matches!(commands(&mut b).as_slice(), [Command::Repair { after: Some(a), .. }] if *a == id(3)),
        "and another for what the outage hid"
    );
    // A gap among what waited is read back, not counted.
    b.receive(CH, &durable_msg("E", id(4), 4), now);
    b.receive(CH, &durable_msg("E", id(6), 6), now);
    b.repaired("d:seats", Some(vec![entry("E", id(4), 4)]));
    assert!(
        matches!(commands(&mut b).as_slice(), [Command::Repair { after: Some(a), .. }] if *a == id(4))
    );
    b.repaired(
        "d:seats",
        Some(vec![entry("E", id(5), 5), entry("E", id(6), 6)]),
    );
    let want: Vec<String> = (1..=6).map(|n| n.to_string()).collect();
    assert_eq!(outputs(&mut b), (want, 0, 0));
}

#[test]
fn a_refused_publish_uses_no_number() {
    let mut b = bus();
    let e = Event::new("t", &serde_json::json!(1));
    b.publish(&e, || unreachable!()).unwrap();
    let mut too_long = e.clone();
    too_long.publisher = Some("s".repeat(1025));
    assert!(b.publish(&too_long, || unreachable!()).is_err());
    b.publish(&e, || unreachable!()).unwrap();
    let seqs: Vec<u64> = commands(&mut b)
        .into_iter()
        .map(|c| match c {
            Command::Publish { payload, .. } => Envelope::decode(&payload).unwrap().seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, [1, 2], "no gap for the receivers");
}

#[test]
fn publishes_sent_again_go_before_later_ones() {
    let mut b = bus();
    let e = |n: i32| Event::new("t", &serde_json::json!(n));
    b.publish(&e(1), || unreachable!()).unwrap();
    let first = b.poll_command_tried().unwrap();
    assert_eq!(first.1, 0);
    b.publish(&e(2), || unreachable!()).unwrap();
    // The first one's connection failed: it goes out again, first.
    b.retry(first.0, 1);
    let order: Vec<(u64, u8)> = std::iter::from_fn(|| b.poll_command_tried())
        .map(|(c, tries)| match c {
            Command::Publish { payload, .. } => (Envelope::decode(&payload).unwrap().seq, tries),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(order, [(1, 1), (2, 0)]);
}

#[test]
fn after_a_read_that_found_nothing_a_new_stream_is_taken_up() {
    let settings = Settings {
        durable: vec!["d:".into()],
        ..Settings::default()
    };
    let mut b = RemoteBus::new(settings, ME);
    b.take_interest();
    // Located in stream "old", which is deleted before the read back.
    join_durable(&mut b, "d:seats", vec![entry("old", StreamId(4, 0), 1)]);
    let now = Instant::now();
    b.receive(CH, &durable_msg("new", StreamId(1, 0), 2), now);
    b.receive(CH, &durable_msg("new", StreamId(1, 1), 3), now);
    assert_eq!(outputs(&mut b), (vec!["2".into(), "3".into()], 0, 1));
    // A late message of the old stream: not taken, not announced again.
    b.receive(CH, &durable_msg("old", StreamId(5, 0), 9), now);
    assert_eq!(outputs(&mut b), (vec![], 0, 0));
    assert!(commands(&mut b).is_empty(), "and no read for it");
}

#[test]
fn a_read_tells_which_stream_stands_and_late_ones_of_the_old_are_dropped() {
    let now = Instant::now();
    let mut b = durable_bus();
    // Gap in a stream "one" (2 missing): read back, and meanwhile the
    // stream was deleted and begun again as "two".
    b.receive(CH, &durable_msg("one", StreamId(1, 0), 1), now);
    b.receive(CH, &durable_msg("one", StreamId(1, 2), 3), now);
    commands(&mut b);
    b.receive(CH, &durable_msg("two", StreamId(2, 0), 4), now);
    b.repaired("d:seats", Some(vec![entry("two", StreamId(2, 0), 4)]));
    let (got, _, lost) = outputs(&mut b);
    assert_eq!(
        (got, lost),
        (vec!["1".into(), "4".into()], 1),
        "3 is gone, announced"
    );
    assert!(commands(&mut b).is_empty(), "no read for the late one");
    b.receive(CH, &durable_msg("two", StreamId(2, 1), 5), now);
    assert_eq!(outputs(&mut b).0, vec!["5".to_owned()]);
}
