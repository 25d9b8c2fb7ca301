//! Topic events as they travel between the apps of a process (and, with
//! the Redis bus, between processes): what was published, to whom, and
//! by whom. Each protocol's subscriber encodes its own frame from it
//! (WAMP v1 `EVENT`, later v2 and Pusher), with `data` already JSON text
//! so that nobody re-encodes the payload.
//!
//! Across processes an event travels as an [`Envelope`] (`envelope`),
//! numbered per origin and topic so that receivers see losses
//! ([`Sequencer`], [`SeqTracker`] in `seq`); `docs/scaling.md` describes
//! both.

mod envelope;
pub mod remote;
mod seq;

pub use envelope::{
    Envelope, EnvelopeError, Field, MAX_IDS, MAX_NAME_LEN, MAX_PAYLOAD, MAX_TOPIC_LEN, Origin,
    VERSION,
};
pub use seq::{DEFAULT_CAP, Seen, SeqTracker, Sequencer};

/// What a durable topic's stream holds after a position: the answer to
/// [`crate::app::Context::bus_history`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    /// The events after the position, oldest first, each with its
    /// [`Event::position`].
    pub events: Vec<Event>,
    /// Where the stream stands after them (the position asked from if
    /// nothing followed it; `None` for an empty stream).
    pub position: Option<String>,
    /// False when the stream may no longer hold all that followed the
    /// position: it began again under a new epoch, was trimmed past it,
    /// or more followed than one answer carries.
    pub complete: bool,
}

/// How far a publish goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every process sharing the bus (just this one without the Redis bus).
    Cluster,
    /// This process only.
    Local,
}

/// One published event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The topic URI.
    pub topic: String,
    /// The event payload, as JSON text.
    pub data: String,
    /// Only connections of this user, if set.
    pub user: Option<String>,
    /// WAMP session ids not to deliver to.
    pub exclude: Vec<String>,
    /// If set, only these WAMP session ids.
    pub eligible: Option<Vec<String>>,
    /// The WAMP session id of the client that published it, if a client
    /// did (pushes from the backend have none). It travels between
    /// processes as the envelope's session.
    pub publisher: Option<String>,
    /// On a durable topic, where the event stands in the topic's stream
    /// (`{epoch}/{id}`), once the stream has it: what a client gives back
    /// to resume after it (`docs/scaling.md`).
    pub position: Option<String>,
}

impl Event {
    /// Whether the event goes to the WAMP session `session` of `user`:
    /// not in `exclude`, in `eligible` if given, and of the event's user
    /// if it has one.
    pub fn admits(&self, session: &str, user: Option<&str>) -> bool {
        !self.exclude.iter().any(|x| x == session)
            && self
                .eligible
                .as_ref()
                .is_none_or(|e| e.iter().any(|x| x == session))
            && self.user.as_deref().is_none_or(|u| user == Some(u))
    }

    /// An event for every subscriber of `topic`.
    pub fn new(topic: impl Into<String>, data: &serde_json::Value) -> Event {
        Event::raw(topic, data.to_string())
    }

    /// An event for every subscriber of `topic` whose payload is already
    /// JSON text.
    pub fn raw(topic: impl Into<String>, data: String) -> Event {
        Event {
            topic: topic.into(),
            data,
            user: None,
            exclude: Vec::new(),
            eligible: None,
            publisher: None,
            position: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Event;

    #[test]
    fn admits_by_exclude_eligible_and_user() {
        let mut e = Event::new("t", &serde_json::json!(1));
        assert!(e.admits("a", None));
        e.exclude = vec!["a".into()];
        assert!(!e.admits("a", None) && e.admits("b", None));
        e.eligible = Some(vec!["b".into()]);
        assert!(e.admits("b", None) && !e.admits("c", None));
        e.user = Some("7".into());
        assert!(e.admits("b", Some("7")));
        assert!(!e.admits("b", Some("8")) && !e.admits("b", None));
    }
}
