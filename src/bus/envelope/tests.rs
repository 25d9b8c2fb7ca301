use super::*;

const ORIGIN: Origin = Origin([
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
]);

fn full() -> Envelope<'static> {
    Envelope {
        origin: ORIGIN,
        seq: 0x0102_0304_0506_0708,
        epoch: 9,
        topic: "chat",
        session: Some("s1"),
        user: Some("ann"),
        exclude: vec!["x", "yz"],
        eligible: Some(vec!["e"]),
        payload: r#"{"a":1}"#,
    }
}

/// `full()` written out by hand, field by field.
fn full_bytes() -> Vec<u8> {
    let mut b = vec![1, 0b111];
    b.extend_from_slice(&ORIGIN.0);
    b.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // seq
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9]); // epoch
    b.extend_from_slice(b"\x00\x04chat");
    b.extend_from_slice(b"\x00\x02s1"); // session
    b.extend_from_slice(b"\x00\x03ann"); // user
    b.extend_from_slice(b"\x00\x02\x00\x01x\x00\x02yz"); // exclude
    b.extend_from_slice(b"\x00\x01\x00\x01e"); // eligible
    b.extend_from_slice(b"\x00\x00\x00\x07{\"a\":1}");
    b
}

fn minimal() -> Envelope<'static> {
    Envelope {
        origin: Origin([7; 16]),
        seq: 1,
        epoch: 0,
        topic: "t",
        session: None,
        user: None,
        exclude: vec![],
        eligible: None,
        payload: "null",
    }
}

fn minimal_bytes() -> Vec<u8> {
    let mut b = vec![1, 0];
    b.extend_from_slice(&[7; 16]);
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(b"\x00\x01t\x00\x00\x00\x00\x00\x04null");
    b
}

fn encoded(e: &Envelope<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    e.encode(&mut out).expect("encodes");
    assert_eq!(out.len(), e.encoded_len());
    out
}

#[test]
fn every_field_encodes_as_specified() {
    assert_eq!(encoded(&full()), full_bytes());
    assert_eq!(encoded(&minimal()), minimal_bytes());
}

#[test]
fn every_field_decodes_and_borrows_the_input() {
    let bytes = full_bytes();
    let e = Envelope::decode(&bytes).unwrap();
    assert_eq!(e, full());
    assert_eq!(e.origin, ORIGIN);
    assert_eq!(e.seq, 0x0102_0304_0506_0708);
    assert_eq!(e.epoch, 9);
    assert_eq!(
        (e.topic, e.session, e.user),
        ("chat", Some("s1"), Some("ann"))
    );
    assert_eq!((e.exclude, e.eligible), (vec!["x", "yz"], Some(vec!["e"])));
    // Zero-copy: the payload is the input's own bytes.
    let at = bytes.len() - 7;
    assert!(std::ptr::eq(e.payload.as_ptr(), bytes[at..].as_ptr()));
    assert_eq!(Envelope::decode(&minimal_bytes()).unwrap(), minimal());
}

#[test]
fn each_optional_field_alone_round_trips() {
    let mut cases = Vec::new();
    for bits in 0..8u8 {
        let mut e = minimal();
        e.session = (bits & 1 != 0).then_some("sess");
        e.user = (bits & 2 != 0).then_some("user");
        e.eligible = (bits & 4 != 0).then(Vec::new);
        cases.push(e);
    }
    let mut e = minimal();
    e.exclude = vec!["", "ü"];
    e.eligible = Some(vec!["a", "b", "c"]);
    e.topic = "";
    e.payload = "";
    e.seq = u64::MAX;
    e.epoch = u64::MAX;
    cases.push(e);
    for e in cases {
        let bytes = encoded(&e);
        assert_eq!(Envelope::decode(&bytes), Ok(e.clone()));
        assert_eq!(bytes[1] & HAS_ELIGIBLE != 0, e.eligible.is_some());
    }
}

#[test]
fn limits_at_the_edge_round_trip() {
    let topic = "t".repeat(MAX_TOPIC_LEN);
    let name = "n".repeat(MAX_NAME_LEN);
    let ids = vec!["i"; MAX_IDS];
    let payload = " ".repeat(MAX_PAYLOAD);
    let e = Envelope {
        topic: &topic,
        session: Some(&name),
        user: Some(&name),
        exclude: ids.clone(),
        eligible: Some(ids),
        payload: &payload,
        ..minimal()
    };
    let bytes = encoded(&e);
    assert_eq!(Envelope::decode(&bytes), Ok(e));
}

#[test]
fn encode_refuses_what_decode_would_and_writes_nothing() {
    let topic = "t".repeat(MAX_TOPIC_LEN + 1);
    let name = "n".repeat(MAX_NAME_LEN + 1);
    let ids = vec!["i"; MAX_IDS + 1];
    let payload = " ".repeat(MAX_PAYLOAD + 1);
    let cases = [
        (
            Envelope {
                seq: 0,
                ..minimal()
            },
            EnvelopeError::ZeroSeq,
        ),
        (
            Envelope {
                topic: &topic,
                ..minimal()
            },
            EnvelopeError::TopicTooLong(MAX_TOPIC_LEN + 1),
        ),
        (
            Envelope {
                session: Some(&name),
                ..minimal()
            },
            EnvelopeError::NameTooLong(Field::Session, MAX_NAME_LEN + 1),
        ),
        (
            Envelope {
                user: Some(&name),
                ..minimal()
            },
            EnvelopeError::NameTooLong(Field::User, MAX_NAME_LEN + 1),
        ),
        (
            Envelope {
                exclude: vec![&name],
                ..minimal()
            },
            EnvelopeError::NameTooLong(Field::Exclude, MAX_NAME_LEN + 1),
        ),
        (
            Envelope {
                exclude: ids.clone(),
                ..minimal()
            },
            EnvelopeError::TooManyIds(Field::Exclude, MAX_IDS + 1),
        ),
        (
            Envelope {
                eligible: Some(ids.clone()),
                ..minimal()
            },
            EnvelopeError::TooManyIds(Field::Eligible, MAX_IDS + 1),
        ),
        (
            Envelope {
                eligible: Some(vec![&name]),
                ..minimal()
            },
            EnvelopeError::NameTooLong(Field::Eligible, MAX_NAME_LEN + 1),
        ),
        (
            Envelope {
                payload: &payload,
                ..minimal()
            },
            EnvelopeError::PayloadTooLarge(MAX_PAYLOAD + 1, MAX_PAYLOAD),
        ),
    ];
    for (e, err) in cases {
        let mut out = vec![0xaa];
        assert_eq!(e.encode(&mut out), Err(err));
        assert_eq!(out, [0xaa]);
        assert_eq!(e.check(), Err(err));
    }
}

#[test]
fn encode_appends() {
    let mut out = b"prefix".to_vec();
    minimal().encode(&mut out).unwrap();
    assert_eq!(&out[..6], b"prefix");
    assert_eq!(&out[6..], minimal_bytes());
}

#[test]
fn every_strict_prefix_is_truncated_in_its_field() {
    let bytes = full_bytes();
    // Where each field (with its prefix) starts in full_bytes().
    let starts = [
        (0, Field::Head),
        (HEAD_LEN, Field::Topic),
        (HEAD_LEN + 6, Field::Session),
        (HEAD_LEN + 10, Field::User),
        (HEAD_LEN + 15, Field::Exclude),
        (HEAD_LEN + 24, Field::Eligible),
        (HEAD_LEN + 29, Field::Payload),
    ];
    for n in 0..bytes.len() {
        let field = starts.iter().rev().find(|(at, _)| n >= *at).unwrap().1;
        assert_eq!(
            Envelope::decode(&bytes[..n]),
            Err(EnvelopeError::Truncated(field)),
            "prefix of {n} bytes"
        );
    }
}

#[test]
fn unknown_versions_are_refused_whatever_follows() {
    for v in [0, 2, 0x7b, 0xff] {
        let mut bytes = full_bytes();
        bytes[0] = v;
        assert_eq!(
            Envelope::decode(&bytes),
            Err(EnvelopeError::UnknownVersion(v))
        );
        // Even alone: the version is judged before the head's length.
        assert_eq!(
            Envelope::decode(&[v]),
            Err(EnvelopeError::UnknownVersion(v))
        );
    }
    // JSON text (what a backend might PUBLISH on the channel) is not v1.
    assert_eq!(
        Envelope::decode(br#"{"topic":"t"}"#),
        Err(EnvelopeError::UnknownVersion(b'{'))
    );
}

#[test]
fn bad_heads_are_refused() {
    for flags in [0b1000, 0x80, 0xff] {
        let mut bytes = minimal_bytes();
        bytes[1] = flags;
        assert_eq!(
            Envelope::decode(&bytes),
            Err(EnvelopeError::UnknownFlags(flags))
        );
    }
    let mut bytes = minimal_bytes();
    bytes[18 + 7] = 0; // seq 1 -> 0
    assert_eq!(Envelope::decode(&bytes), Err(EnvelopeError::ZeroSeq));
}

/// `minimal()` with the topic's bytes replaced by `field`, encoded by hand.
fn with_topic(prefix: u16, topic: &[u8]) -> Vec<u8> {
    let mut b = minimal_bytes()[..HEAD_LEN].to_vec();
    b.extend_from_slice(&prefix.to_be_bytes());
    b.extend_from_slice(topic);
    b.extend_from_slice(b"\x00\x00\x00\x00\x00\x04null");
    b
}

#[test]
fn lengths_over_the_limits_are_refused_before_reading() {
    let long = u16::try_from(MAX_TOPIC_LEN + 1).unwrap();
    assert_eq!(
        Envelope::decode(&with_topic(long, b"")),
        Err(EnvelopeError::TopicTooLong(MAX_TOPIC_LEN + 1))
    );
    assert_eq!(
        Envelope::decode(&with_topic(0xffff, b"")),
        Err(EnvelopeError::TopicTooLong(0xffff))
    );
    let name = u16::try_from(MAX_NAME_LEN + 1).unwrap().to_be_bytes();
    let mut head = minimal_bytes()[..HEAD_LEN + 3].to_vec();
    head[1] = HAS_SESSION;
    assert_eq!(
        Envelope::decode(&[&head[..], &name].concat()),
        Err(EnvelopeError::NameTooLong(Field::Session, MAX_NAME_LEN + 1))
    );
    head[1] = HAS_USER;
    assert_eq!(
        Envelope::decode(&[&head[..], &name].concat()),
        Err(EnvelopeError::NameTooLong(Field::User, MAX_NAME_LEN + 1))
    );
    head[1] = 0;
    let ids = u16::try_from(MAX_IDS + 1).unwrap().to_be_bytes();
    assert_eq!(
        Envelope::decode(&[&head[..], &ids].concat()),
        Err(EnvelopeError::TooManyIds(Field::Exclude, MAX_IDS + 1))
    );
    assert_eq!(
        Envelope::decode(&[&head[..], b"\x00\x01", &name].concat()),
        Err(EnvelopeError::NameTooLong(Field::Exclude, MAX_NAME_LEN + 1))
    );
    head[1] = HAS_ELIGIBLE;
    assert_eq!(
        Envelope::decode(&[&head[..], b"\x00\x00", &ids].concat()),
        Err(EnvelopeError::TooManyIds(Field::Eligible, MAX_IDS + 1))
    );
    assert_eq!(
        Envelope::decode(&[&head[..], b"\x00\x00\x00\x01", &name].concat()),
        Err(EnvelopeError::NameTooLong(
            Field::Eligible,
            MAX_NAME_LEN + 1
        ))
    );
    // A count the input cannot hold is truncated, not allocated for.
    assert_eq!(
        Envelope::decode(&[&head[..], b"\x00\x00\x27\x10\x00\x00"].concat()),
        Err(EnvelopeError::Truncated(Field::Eligible))
    );
    // A huge payload length, refused from its prefix alone.
    head[1] = 0;
    assert_eq!(
        Envelope::decode(&[&head[..], b"\x00\x00\xff\xff\xff\xff"].concat()),
        Err(EnvelopeError::PayloadTooLarge(
            u32::MAX as usize,
            MAX_PAYLOAD
        ))
    );
}

#[test]
fn the_payload_limit_is_the_callers() {
    let bytes = minimal_bytes(); // payload "null"
    assert_eq!(Envelope::decode_with_limit(&bytes, 4), Ok(minimal()));
    assert_eq!(
        Envelope::decode_with_limit(&bytes, 3),
        Err(EnvelopeError::PayloadTooLarge(4, 3))
    );
    let mut e = minimal();
    e.payload = "";
    assert!(Envelope::decode_with_limit(&encoded(&e), 0).is_ok());
}

#[test]
fn strings_must_be_utf8() {
    assert_eq!(
        Envelope::decode(&with_topic(2, b"\xc3\x28")),
        Err(EnvelopeError::BadUtf8(Field::Topic))
    );
    let at = |field: Field| match field {
        Field::Session => HEAD_LEN + 8,
        Field::User => HEAD_LEN + 12,
        Field::Exclude => HEAD_LEN + 19,
        Field::Eligible => HEAD_LEN + 28,
        _ => full_bytes().len() - 1,
    };
    for field in [
        Field::Session,
        Field::User,
        Field::Exclude,
        Field::Eligible,
        Field::Payload,
    ] {
        let mut bytes = full_bytes();
        bytes[at(field)] = 0xff;
        assert_eq!(
            Envelope::decode(&bytes),
            Err(EnvelopeError::BadUtf8(field)),
            "{field:?}"
        );
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = full_bytes();
    bytes.extend_from_slice(b"xyz");
    assert_eq!(Envelope::decode(&bytes), Err(EnvelopeError::Trailing(3)));
}

#[test]
fn events_convert_both_ways() {
    let mut event = Event::new("chat", &serde_json::json!({"a": 1}));
    let e = Envelope::from_event(&event, ORIGIN, 3, 0);
    assert_eq!((e.origin, e.seq, e.epoch, e.session), (ORIGIN, 3, 0, None));
    assert_eq!((e.topic, e.payload), ("chat", r#"{"a":1}"#));
    assert_eq!(e.to_event(), event);
    event.user = Some("ann".into());
    event.exclude = vec!["x".into(), "yz".into()];
    event.eligible = Some(vec!["e".into()]);
    event.publisher = Some("s1".into());
    let e = Envelope::from_event(&event, ORIGIN, 0x0102_0304_0506_0708, 9);
    assert_eq!(e, full());
    let bytes = encoded(&e);
    assert_eq!(bytes, full_bytes());
    let back = Envelope::decode(&bytes).unwrap();
    assert_eq!(Event::from(&back), event);
    event.eligible = Some(vec![]);
    let e = Envelope::from_event(&event, ORIGIN, 1, 0);
    assert_eq!(Envelope::decode(&encoded(&e)).unwrap().to_event(), event);
}

#[test]
fn errors_and_origins_print() {
    assert_eq!(ORIGIN.to_string(), "00112233445566778899aabbccddeeff");
    assert_eq!(
        EnvelopeError::Truncated(Field::Payload).to_string(),
        "envelope truncated in Payload"
    );
    assert_eq!(
        EnvelopeError::PayloadTooLarge(5, 4).to_string(),
        "payload of 5 bytes (limit 4)"
    );
}
