//! Connection metadata: the READY command's properties and the socket types
//! (37/ZMTP "The NULL Security Mechanism", "Connection Metadata").

use std::fmt;

/// A ZeroMQ socket type, as named by the Socket-Type property.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // The names are the documentation.
pub enum SocketType {
    Req,
    Rep,
    Dealer,
    Router,
    Pub,
    Xpub,
    Sub,
    Xsub,
    Push,
    Pull,
    Pair,
    Client,
    Server,
    Radio,
    Dish,
    Scatter,
    Gather,
    Peer,
    Channel,
}

const ALL: [SocketType; 19] = {
    use SocketType::*;
    [
        Req, Rep, Dealer, Router, Pub, Xpub, Sub, Xsub, Push, Pull, Pair, Client, Server, Radio,
        Dish, Scatter, Gather, Peer, Channel,
    ]
};

impl SocketType {
    /// The name on the wire, e.g. `"PUSH"`.
    pub fn as_str(self) -> &'static str {
        use SocketType::*;
        match self {
            Req => "REQ",
            Rep => "REP",
            Dealer => "DEALER",
            Router => "ROUTER",
            Pub => "PUB",
            Xpub => "XPUB",
            Sub => "SUB",
            Xsub => "XSUB",
            Push => "PUSH",
            Pull => "PULL",
            Pair => "PAIR",
            Client => "CLIENT",
            Server => "SERVER",
            Radio => "RADIO",
            Dish => "DISH",
            Scatter => "SCATTER",
            Gather => "GATHER",
            Peer => "PEER",
            Channel => "CHANNEL",
        }
    }

    /// The socket type a Socket-Type value names, exactly as 37/ZMTP spells
    /// it (upper case; libzmq compares the same way).
    pub fn from_bytes(value: &[u8]) -> Option<SocketType> {
        ALL.into_iter().find(|t| t.as_str().as_bytes() == value)
    }

    /// Whether a socket of this type may talk to a peer of type `peer`
    /// (the table in 37/ZMTP "The Socket-Type Property").
    pub fn is_compatible_with(self, peer: SocketType) -> bool {
        use SocketType::*;
        match self {
            Req => matches!(peer, Rep | Router),
            Rep => matches!(peer, Req | Dealer),
            Dealer => matches!(peer, Rep | Dealer | Router),
            Router => matches!(peer, Req | Dealer | Router),
            Pub | Xpub => matches!(peer, Sub | Xsub),
            Sub | Xsub => matches!(peer, Pub | Xpub),
            Push => peer == Pull,
            Pull => peer == Push,
            Pair => peer == Pair,
            Client => peer == Server,
            Server => peer == Client,
            Radio => peer == Dish,
            Dish => peer == Radio,
            Scatter => peer == Gather,
            Gather => peer == Scatter,
            Peer => peer == Peer,
            Channel => peer == Channel,
        }
    }
}

impl fmt::Display for SocketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The properties of a peer's READY command, in the order sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    props: Vec<(String, Vec<u8>)>,
}

/// The longest property value (`INT32_MAX`, 37/ZMTP).
const MAX_VALUE: u32 = i32::MAX as u32;

impl Metadata {
    /// The value of the first property called `name`, compared without
    /// regard to ASCII case ("Metadata names SHALL be case-insensitive").
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.props
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Every property, in the order the peer sent them (duplicates kept).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.props.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// How many properties there are.
    pub fn len(&self) -> usize {
        self.props.len()
    }

    /// No properties at all.
    pub fn is_empty(&self) -> bool {
        self.props.is_empty()
    }

    /// Parses `metadata = *property` (the READY body after its name).
    /// `None` if it is not exactly a sequence of well-formed properties.
    pub(super) fn parse(mut data: &[u8]) -> Option<Metadata> {
        let mut props = Vec::new();
        while let Some((&len, rest)) = data.split_first() {
            // name = short-size 1*255name-char
            let len = usize::from(len);
            if len == 0 || rest.len() < len {
                return None;
            }
            let (name, rest) = rest.split_at(len);
            if !name.iter().all(|&b| is_name_char(b)) {
                return None;
            }
            // value = 4OCTET *OCTET, size in network byte order
            let (size, rest) = rest.split_first_chunk::<4>()?;
            let size = u32::from_be_bytes(*size);
            if size > MAX_VALUE || rest.len() < size as usize {
                return None;
            }
            let (value, rest) = rest.split_at(size as usize);
            // name-chars are ASCII, so this never replaces anything.
            props.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
            data = rest;
        }
        Some(Metadata { props })
    }
}

/// `name-char = ALPHA | DIGIT | "-" | "_" | "." | "+"`
fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+')
}

/// Every socket type, for the tests.
#[cfg(test)]
pub(super) fn tests_all() -> [SocketType; 19] {
    ALL
}
