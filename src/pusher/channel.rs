//! Channel names and kinds.

use std::fmt;

/// The longest channel name accepted, in bytes.
pub const MAX_NAME: usize = 200;

/// The prefix of the channel a signed-in user's server events go to
/// (`#server-to-user-{id}`).
pub const SERVER_TO_USER: &str = "#server-to-user-";

/// What a channel's prefix makes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Anyone may subscribe.
    Public,
    /// `private-`: subscribing needs a signature from the app.
    Private,
    /// `private-encrypted-`: as private; payloads are end-to-end encrypted
    /// by the clients and the app, never readable here, and clients may
    /// not send events on it.
    Encrypted,
    /// `presence-`: as private, and subscribers are members with a user
    /// id and info that every member sees.
    Presence,
    /// `#server-to-user-{id}`: only the signed-in user `id`.
    User,
}

/// A checked channel name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel<'a> {
    /// The name as given.
    pub name: &'a str,
    /// Its kind.
    pub kind: Kind,
    /// A `cache-` variant: the last event is kept and replayed to new
    /// subscribers.
    pub cache: bool,
}

/// Why a channel name is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    /// Empty.
    Empty,
    /// Longer than [`MAX_NAME`].
    TooLong(usize),
    /// A byte outside `[-a-zA-Z0-9_=@,.;]` (a leading `#` excepted).
    BadByte(u8, usize),
    /// `#` that does not begin `#server-to-user-`.
    Reserved,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("the channel name is empty"),
            NameError::TooLong(n) => write!(
                f,
                "the channel name is {n} bytes long, more than {MAX_NAME}"
            ),
            NameError::BadByte(b, at) => write!(
                f,
                "the channel name has {:?} at byte {at}; allowed are letters, digits and -_=@,.;",
                char::from(*b)
            ),
            NameError::Reserved => f.write_str("channel names beginning with # are reserved"),
        }
    }
}

impl std::error::Error for NameError {}

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_=@,.;".contains(&b)
}

impl<'a> Channel<'a> {
    /// Checks `name` and finds its kind.
    pub fn parse(name: &'a str) -> Result<Channel<'a>, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_NAME {
            return Err(NameError::TooLong(name.len()));
        }
        let body = name.strip_prefix('#').unwrap_or(name);
        if let Some(at) = body.bytes().position(|b| !allowed(b)) {
            let at = at + (name.len() - body.len());
            return Err(NameError::BadByte(name.as_bytes()[at], at));
        }
        if name.starts_with('#') {
            return match name.strip_prefix(SERVER_TO_USER) {
                Some(id) if !id.is_empty() => Ok(Channel {
                    name,
                    kind: Kind::User,
                    cache: false,
                }),
                _ => Err(NameError::Reserved),
            };
        }
        Ok(Channel::checked(name))
    }

    /// The kind of a name [`Self::parse`] already accepted, by its
    /// prefixes alone: no byte is checked again (for names kept in state,
    /// or checked when a request was decoded).
    pub fn checked(name: &'a str) -> Channel<'a> {
        if name.starts_with(SERVER_TO_USER) {
            return Channel {
                name,
                kind: Kind::User,
                cache: false,
            };
        }
        let (kind, rest) = if let Some(rest) = name.strip_prefix("private-encrypted-") {
            (Kind::Encrypted, rest)
        } else if let Some(rest) = name.strip_prefix("private-") {
            (Kind::Private, rest)
        } else if let Some(rest) = name.strip_prefix("presence-") {
            (Kind::Presence, rest)
        } else {
            (Kind::Public, name)
        };
        Channel {
            name,
            kind,
            cache: rest.starts_with("cache-"),
        }
    }

    /// Subscribing needs a signature (`auth`).
    pub fn needs_auth(&self) -> bool {
        matches!(self.kind, Kind::Private | Kind::Encrypted | Kind::Presence)
    }

    /// Clients may send `client-*` events on it (private and presence;
    /// never public, encrypted or user channels).
    pub fn allows_client_events(&self) -> bool {
        matches!(self.kind, Kind::Private | Kind::Presence)
    }

    /// The user a `#server-to-user-` channel belongs to.
    pub fn user(&self) -> Option<&'a str> {
        match self.kind {
            Kind::User => self.name.strip_prefix(SERVER_TO_USER),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_prefix() {
        // `checked` (prefixes only) agrees with `parse` on every kind.
        let kind = |n| {
            let parsed = Channel::parse(n).map(|c| (c.kind, c.cache));
            if let Ok(p) = parsed {
                let c = Channel::checked(n);
                assert_eq!((c.kind, c.cache), p, "{n}");
            }
            parsed
        };
        assert_eq!(kind("orders"), Ok((Kind::Public, false)));
        assert_eq!(kind("cache-prices"), Ok((Kind::Public, true)));
        assert_eq!(kind("private-user.7"), Ok((Kind::Private, false)));
        assert_eq!(kind("private-cache-x"), Ok((Kind::Private, true)));
        assert_eq!(kind("private-encrypted-x"), Ok((Kind::Encrypted, false)));
        assert_eq!(
            kind("private-encrypted-cache-x"),
            Ok((Kind::Encrypted, true))
        );
        assert_eq!(kind("presence-room.1"), Ok((Kind::Presence, false)));
        assert_eq!(kind("presence-cache-room"), Ok((Kind::Presence, true)));
        assert_eq!(kind("#server-to-user-42"), Ok((Kind::User, false)));
        assert_eq!(
            Channel::parse("#server-to-user-42").unwrap().user(),
            Some("42")
        );
        // Laravel's names: dots, equals, at signs, commas, semicolons.
        assert!(Channel::parse("App.Models.User.1").is_ok());
        assert!(Channel::parse("a=b@c,d;e_f-g").is_ok());
    }

    #[test]
    fn bad_names() {
        assert_eq!(Channel::parse(""), Err(NameError::Empty));
        assert_eq!(
            Channel::parse(&"x".repeat(201)),
            Err(NameError::TooLong(201))
        );
        assert!(Channel::parse(&"x".repeat(200)).is_ok());
        assert_eq!(Channel::parse("a b"), Err(NameError::BadByte(b' ', 1)));
        assert_eq!(Channel::parse("#x"), Err(NameError::Reserved));
        assert_eq!(Channel::parse("#server-to-user-"), Err(NameError::Reserved));
        assert_eq!(Channel::parse("a#b"), Err(NameError::BadByte(b'#', 1)));
        assert_eq!(Channel::parse("ünï"), Err(NameError::BadByte(0xC3, 0)));
    }

    #[test]
    fn who_may_do_what() {
        let c = |n| Channel::parse(n).unwrap();
        assert!(!c("news").needs_auth() && !c("news").allows_client_events());
        assert!(c("private-a").needs_auth() && c("private-a").allows_client_events());
        assert!(c("private-encrypted-a").needs_auth());
        assert!(!c("private-encrypted-a").allows_client_events());
        assert!(c("presence-a").needs_auth() && c("presence-a").allows_client_events());
        assert!(!c("#server-to-user-1").allows_client_events());
    }
}
