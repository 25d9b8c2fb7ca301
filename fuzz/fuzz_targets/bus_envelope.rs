//! Bus envelopes and sequence tracking, picked by the first byte.
//!
//! Even: the rest is decoded as an envelope. Nothing panics; what decodes
//! encodes back to the very same bytes (the encoding is canonical: fixed
//! widths, presence in flags, no trailing bytes, so equal envelopes and
//! equal bytes are the same thing); its payload limit is exact; its bus
//! event converts back to an equal envelope.
//!
//! Odd: the rest is a list of operations on a small `SeqTracker` (cap
//! 1–8, from the first byte) over 4 origins and 8 topics, checked against
//! an unbounded model: every answer is the model's (First only for a pair
//! it does not hold), Duplicate never above the highest seq seen, per pair
//! `last - first = in-order + gaps + missed`, the size never over the cap,
//! and pairs only disappear by reset, forget, clear or a counted eviction.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::bus::{Envelope, EnvelopeError, Origin, Seen, SeqTracker};
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    if pick & 1 == 0 {
        envelope(rest);
    } else {
        tracker(usize::from(pick >> 1) % 8 + 1, rest);
    }
});

fn envelope(bytes: &[u8]) {
    let e = match Envelope::decode(bytes) {
        Ok(e) => e,
        Err(err) => {
            let _ = err.to_string();
            return;
        }
    };
    let mut out = Vec::new();
    e.encode(&mut out).expect("what decodes encodes");
    assert_eq!(out, bytes, "{e:?}");
    assert_eq!(e.encoded_len(), bytes.len());
    let len = e.payload.len();
    assert_eq!(Envelope::decode_with_limit(bytes, len).as_ref(), Ok(&e));
    if len > 0 {
        assert_eq!(
            Envelope::decode_with_limit(bytes, len - 1),
            Err(EnvelopeError::PayloadTooLarge(len, len - 1))
        );
    }
    let event = e.to_event();
    let mut again = Envelope::from_event(&event, e.origin, e.seq, e.epoch);
    again.session = e.session;
    assert_eq!(again, e);
}

#[derive(Debug)]
struct Pair {
    first: u64,
    last: u64,
    in_order: u64,
    gaps: u64,
    missed: u64,
}

fn tracker(cap: usize, ops: &[u8]) {
    let mut t = SeqTracker::new(cap);
    let mut model: HashMap<(u8, u8), Pair> = HashMap::new();
    const TOPICS: [&str; 8] = ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"];
    let topic = |i: u8| TOPICS[usize::from(i)];
    let origin = |i: u8| Origin([i; 16]);
    let mut rest = ops;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        let (o, tp) = ((op >> 2) & 3, op >> 5);
        match op & 3 {
            0 | 1 => {
                // A small seq (0..=255) from one byte, or a full u64 from 8.
                let seq = if op & 1 == 0 {
                    let Some((&b, tail)) = rest.split_first() else {
                        break;
                    };
                    rest = tail;
                    u64::from(b)
                } else {
                    let Some(b) = rest.get(..8) else { break };
                    rest = &rest[8..];
                    u64::from_be_bytes(b.try_into().unwrap())
                };
                let (len, evicted) = (t.len(), t.evicted());
                let seen = t.observe(origin(o), topic(tp), seq);
                match model.get_mut(&(o, tp)) {
                    None => {
                        assert_eq!(seen, Seen::First);
                        // Room was made only if the tracker was full.
                        assert_eq!(t.evicted() - evicted, u64::from(len == cap));
                        let p = Pair {
                            first: seq,
                            last: seq,
                            in_order: 0,
                            gaps: 0,
                            missed: 0,
                        };
                        model.insert((o, tp), p);
                    }
                    Some(p) => {
                        let expected = match seq.checked_sub(p.last) {
                            None | Some(0) => Seen::Duplicate,
                            Some(1) => Seen::InOrder,
                            Some(n) => Seen::Gap { missed: n - 1 },
                        };
                        assert_eq!(seen, expected, "{p:?} seq {seq}");
                        match seen {
                            Seen::Duplicate => assert!(seq <= p.last),
                            Seen::InOrder => p.in_order += 1,
                            Seen::Gap { missed } => {
                                assert!(missed >= 1);
                                p.gaps += 1;
                                p.missed += missed;
                            }
                            Seen::First => unreachable!(),
                        }
                        if seen != Seen::Duplicate {
                            p.last = seq;
                        }
                        assert_eq!(t.evicted(), evicted);
                    }
                }
            }
            2 => {
                t.reset(topic(tp));
                model.retain(|&(_, mt), _| mt != tp);
            }
            _ if op & 0x10 == 0 => {
                t.forget_origin(origin(o));
                model.retain(|&(mo, _), _| mo != o);
            }
            _ => {
                t.clear();
                model.clear();
            }
        }
        // Evicted pairs leave the model; every other one agrees.
        model.retain(|&(o, tp), p| match t.last_seen(origin(o), topic(tp)) {
            Some(last) => {
                assert_eq!(last, p.last);
                assert_eq!(p.last - p.first, p.in_order + p.gaps + p.missed);
                true
            }
            None => false,
        });
        assert_eq!(t.len(), model.len());
        assert!(t.len() <= cap);
        assert!(t.topic_count() <= t.len());
    }
}
