use super::*;

const A: Origin = Origin([0xa; 16]);
const B: Origin = Origin([0xb; 16]);

fn feed(t: &mut SeqTracker, origin: Origin, topic: &str, seqs: &[u64]) -> Vec<Seen> {
    seqs.iter().map(|&s| t.observe(origin, topic, s)).collect()
}

#[test]
fn first_in_order_duplicate_and_gaps() {
    use Seen::*;
    let mut t = SeqTracker::default();
    assert_eq!(
        feed(&mut t, A, "x", &[1, 2, 3, 3, 2, 1, 5, 6, 10, 9, 11]),
        [
            First,
            InOrder,
            InOrder,
            Duplicate,
            Duplicate,
            Duplicate,
            Gap { missed: 1 },
            InOrder,
            Gap { missed: 3 },
            Duplicate,
            InOrder,
        ]
    );
    assert_eq!(t.last_seen(A, "x"), Some(11));
    assert_eq!((t.len(), t.topic_count()), (1, 1));
}

#[test]
fn first_is_whatever_seq_comes_first() {
    // Subscribed mid-stream: what came before was not ours.
    let mut t = SeqTracker::default();
    assert_eq!(t.observe(A, "x", 500), Seen::First);
    assert_eq!(t.observe(A, "x", 501), Seen::InOrder);
}

#[test]
fn pairs_are_independent() {
    let mut t = SeqTracker::default();
    assert_eq!(t.observe(A, "x", 1), Seen::First);
    assert_eq!(t.observe(A, "y", 1), Seen::First);
    assert_eq!(t.observe(B, "x", 7), Seen::First);
    assert_eq!(t.observe(A, "x", 2), Seen::InOrder);
    // A's numbers on y do not depend on what it published on x.
    assert_eq!(t.observe(A, "y", 2), Seen::InOrder);
    assert_eq!(t.observe(B, "x", 9), Seen::Gap { missed: 1 });
    assert_eq!((t.len(), t.topic_count()), (3, 2));
}

#[test]
fn an_origin_restart_is_a_new_origin() {
    let mut t = SeqTracker::default();
    feed(&mut t, A, "x", &[1, 2, 3]);
    // A restarted process draws a new id: its 1 is First, not Duplicate.
    assert_eq!(t.observe(B, "x", 1), Seen::First);
    // Had it kept its id, its numbers would be taken for old ones.
    assert_eq!(t.observe(A, "x", 1), Seen::Duplicate);
}

#[test]
fn gap_sizes_add_up() {
    let mut t = SeqTracker::default();
    let seqs = [3, 4, 8, 8, 9, 20, 21, 100];
    let missed: u64 = feed(&mut t, A, "x", &seqs)
        .iter()
        .map(|s| match s {
            Seen::Gap { missed } => *missed,
            _ => 0,
        })
        .sum();
    // 3..=100 is 98 numbers, of which 7 distinct ones arrived.
    assert_eq!(missed, 98 - 7);
}

#[test]
fn the_ends_of_u64() {
    let mut t = SeqTracker::default();
    assert_eq!(t.observe(A, "x", 0), Seen::First);
    assert_eq!(t.observe(A, "x", 0), Seen::Duplicate);
    assert_eq!(
        t.observe(A, "x", u64::MAX),
        Seen::Gap {
            missed: u64::MAX - 1
        }
    );
    // Nothing is above u64::MAX: everything after is a duplicate.
    assert_eq!(t.observe(A, "x", u64::MAX), Seen::Duplicate);
    assert_eq!(t.observe(A, "x", 1), Seen::Duplicate);
    assert_eq!(t.last_seen(A, "x"), Some(u64::MAX));
}

#[test]
fn reset_forgets_a_topic_for_every_origin() {
    let mut t = SeqTracker::default();
    feed(&mut t, A, "x", &[1, 2]);
    feed(&mut t, B, "x", &[1]);
    feed(&mut t, A, "y", &[1]);
    t.reset("x");
    assert_eq!((t.len(), t.topic_count()), (1, 1));
    assert_eq!(t.last_seen(A, "x"), None);
    // Resubscribed: 9 is First, not a gap of the 6 it did not listen to.
    assert_eq!(t.observe(A, "x", 9), Seen::First);
    assert_eq!(t.observe(A, "y", 2), Seen::InOrder);
    t.reset("nothing");
    assert_eq!(t.len(), 2);
}

#[test]
fn forget_origin_and_clear() {
    let mut t = SeqTracker::default();
    feed(&mut t, A, "x", &[1]);
    feed(&mut t, A, "y", &[1]);
    feed(&mut t, B, "x", &[1]);
    t.forget_origin(A);
    assert_eq!((t.len(), t.topic_count()), (1, 1));
    assert_eq!(t.observe(A, "y", 5), Seen::First);
    assert_eq!(t.observe(B, "x", 2), Seen::InOrder);
    t.clear();
    assert!(t.is_empty());
    assert_eq!(t.topic_count(), 0);
    assert_eq!(t.observe(B, "x", 3), Seen::First);
}

#[test]
fn the_cap_evicts_the_least_recently_observed_pair() {
    let mut t = SeqTracker::new(2);
    assert_eq!(t.cap(), 2);
    t.observe(A, "x", 1);
    t.observe(A, "y", 1);
    t.observe(A, "x", 2); // x is now the younger one
    t.observe(A, "z", 1); // evicts y
    assert_eq!(t.len(), 2);
    assert_eq!(t.evicted(), 1);
    assert_eq!(t.last_seen(A, "y"), None);
    assert_eq!(t.observe(A, "x", 3), Seen::InOrder);
    // y comes back as First (its gap, if any, goes unseen), evicting z.
    assert_eq!(t.observe(A, "y", 5), Seen::First);
    assert_eq!(t.last_seen(A, "z"), None);
    assert_eq!((t.len(), t.topic_count(), t.evicted()), (2, 2, 2));
    // A duplicate counts as use too.
    t.observe(A, "x", 1);
    t.observe(B, "w", 1); // evicts y
    assert_eq!(t.last_seen(A, "x"), Some(3));
    assert_eq!(t.last_seen(A, "y"), None);
    assert_eq!(SeqTracker::new(0).cap(), 1);
}

#[test]
fn the_sequencer_numbers_per_topic() {
    let mut s = Sequencer::new(A, 2);
    assert_eq!(s.origin(), A);
    assert!(s.is_empty());
    assert_eq!(
        [s.next("x"), s.next("x"), s.next("y"), s.next("x")],
        [Some(1), Some(2), Some(1), Some(3)]
    );
    assert_eq!(s.len(), 2);
    // A third topic would exceed the cap: rotate to a new origin.
    assert_eq!(s.next("z"), None);
    assert_eq!(s.next("y"), Some(2));
    s.rotate(B);
    assert_eq!((s.origin(), s.len()), (B, 0));
    assert_eq!([s.next("z"), s.next("x")], [Some(1), Some(1)]);
}

#[test]
fn the_sequencer_never_hands_out_u64_max() {
    let mut s = Sequencer::new(A, 1);
    s.next("x");
    s.next.insert("x".into(), u64::MAX - 1);
    assert_eq!(s.next("x"), Some(u64::MAX - 1));
    assert_eq!(s.next("x"), None);
    assert_eq!(s.next("x"), None);
}

#[test]
fn a_sequencer_and_a_tracker_agree() {
    let mut s = Sequencer::new(A, DEFAULT_CAP);
    let mut t = SeqTracker::default();
    let topics = ["a", "b", "c"];
    let mut lost = 0;
    for i in 0..300usize {
        let topic = topics[i % 3];
        let seq = s.next(topic).unwrap();
        // The receiver hears only a and b, and loses every 7th message.
        if topic == "c" || i % 7 == 0 && i > 2 {
            lost += u64::from(topic != "c");
            continue;
        }
        match t.observe(s.origin(), topic, seq) {
            Seen::First => assert_eq!(seq, 1),
            Seen::InOrder => {}
            Seen::Gap { missed } => lost -= missed,
            Seen::Duplicate => panic!("no duplicates were sent"),
        }
    }
    assert_eq!(lost, 0, "every loss on a heard topic was seen");
}
