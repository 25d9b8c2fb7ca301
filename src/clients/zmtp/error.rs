//! What can go wrong on a ZMTP connection, and whose fault it is.

use super::meta::SocketType;
use std::fmt;

/// Why a connection ended. Every one is fatal: after it the connection
/// takes no more input, and the reactor writes what [`super::ZmtpConn::transmit`]
/// still holds (an ERROR command, during the handshake) and closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZmtpError {
    /// The greeting does not start with the ZMTP signature (`%xFF`, 8
    /// octets, `%x7F`): a ZMTP 1.0 peer, or not ZeroMQ at all.
    NotZmtp,
    /// A ZMTP 2.0 or older peer (major version below 3); we speak ZMTP 3.x
    /// only, and close (37/ZMTP "Version Negotiation": a peer that cannot
    /// downgrade MUST close the connection).
    UnsupportedVersion(u8),
    /// The peer's security mechanism is not NULL (e.g. CURVE or PLAIN); the
    /// 20 octets as sent. 37/ZMTP: "If the mechanism that the peer received
    /// does not exactly match the mechanism it sent, it MUST close".
    WrongMechanism([u8; 20]),
    /// A frame's flags have reserved bits 7-3 set ("MUST be zero").
    ReservedFlags(u8),
    /// A command frame with the MORE flag ("SHALL be zero on command frames").
    CommandWithMore,
    /// A command whose name is empty, runs past the frame, or is not ALPHA.
    MalformedCommand,
    /// A command frame over [`super::Settings::max_command`] (declared size).
    CommandTooLarge(u64),
    /// A message frame over [`super::Settings::max_frame`] (declared size).
    FrameTooLarge(u64),
    /// A message whose parts would add up to more than
    /// [`super::Settings::max_message`] bytes.
    MessageTooLarge,
    /// A message with more than [`super::Settings::max_parts`] parts.
    TooManyParts,
    /// A message frame, or a command other than READY or ERROR, before the
    /// peer's READY (the NULL handshake: `null = ready *message | error`).
    ExpectedReady,
    /// A READY command whose metadata is not well-formed properties.
    MalformedReady,
    /// A READY command without a Socket-Type property.
    MissingSocketType,
    /// A Socket-Type that is not one of the socket types of 37/ZMTP.
    UnknownSocketType,
    /// A socket type that may not talk to PULL (only PUSH may).
    IncompatibleSocketType(SocketType),
    /// A second READY command after the handshake.
    DuplicateReady,
    /// A PING shorter than its TTL or with a context over 16 octets.
    MalformedPing,
    /// The peer sent an ERROR command (its reason, printable ASCII only;
    /// other octets become `?`). The peer closes; we close too.
    PeerError(String),
    /// More than [`super::Settings::max_transmit`] bytes of our replies
    /// (PONGs) are unwritten: the peer sends PINGs but does not read.
    TransmitBacklog,
}

/// Whose fault an error is, for the log line and the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// The peer is well-behaved but not what we accept: not ZMTP 3, a
    /// mechanism other than NULL, a socket type other than PUSH.
    Incompatible,
    /// The peer broke the protocol (malformed bytes).
    Protocol,
    /// The peer went over one of our limits.
    Limit,
    /// The peer refused the connection (it sent ERROR).
    Refused,
}

impl ZmtpError {
    /// Whose fault it is.
    pub fn category(&self) -> Category {
        use ZmtpError::*;
        match self {
            NotZmtp
            | UnsupportedVersion(_)
            | WrongMechanism(_)
            | MissingSocketType
            | UnknownSocketType
            | IncompatibleSocketType(_) => Category::Incompatible,
            CommandTooLarge(_) | FrameTooLarge(_) | MessageTooLarge | TooManyParts
            | TransmitBacklog => Category::Limit,
            PeerError(_) => Category::Refused,
            ReservedFlags(_) | CommandWithMore | MalformedCommand | ExpectedReady
            | MalformedReady | DuplicateReady | MalformedPing => Category::Protocol,
        }
    }

    /// The reason sent in our ERROR command when this happens during the
    /// NULL handshake. The grammar is `0*255VCHAR`, so no spaces.
    pub(super) fn reason(&self) -> &'static str {
        use ZmtpError::*;
        match self {
            MissingSocketType => "missing-Socket-Type",
            UnknownSocketType => "unknown-Socket-Type",
            IncompatibleSocketType(_) => "incompatible-Socket-Type",
            MalformedReady => "malformed-READY",
            ExpectedReady | DuplicateReady => "expected-READY",
            ReservedFlags(_) | CommandWithMore | MalformedCommand | MalformedPing => {
                "malformed-frame"
            }
            CommandTooLarge(_) | FrameTooLarge(_) | MessageTooLarge | TooManyParts
            | TransmitBacklog => "too-large",
            NotZmtp | UnsupportedVersion(_) | WrongMechanism(_) | PeerError(_) => "error",
        }
    }
}

impl fmt::Display for ZmtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ZmtpError::*;
        match self {
            NotZmtp => f.write_str("not a ZMTP 3 greeting (ZMTP 1.0 peer, or not ZeroMQ)"),
            UnsupportedVersion(v) => {
                write!(f, "ZMTP major version {v} is not supported (3.x only)")
            }
            WrongMechanism(m) => {
                f.write_str("security mechanism ")?;
                let name = m.split(|&b| b == 0).next().unwrap_or_default();
                write!(f, "{:?}", printable(name))?;
                f.write_str(" is not NULL")
            }
            ReservedFlags(b) => write!(f, "frame flags {b:#04x} have reserved bits set"),
            CommandWithMore => f.write_str("command frame with the MORE flag"),
            MalformedCommand => f.write_str("malformed command name"),
            CommandTooLarge(n) => write!(f, "command of {n} bytes is over the limit"),
            FrameTooLarge(n) => write!(f, "frame of {n} bytes is over the limit"),
            MessageTooLarge => f.write_str("message is over the size limit"),
            TooManyParts => f.write_str("message has too many parts"),
            ExpectedReady => f.write_str("expected the READY command first"),
            MalformedReady => f.write_str("malformed READY metadata"),
            MissingSocketType => f.write_str("READY without a Socket-Type"),
            UnknownSocketType => f.write_str("READY with an unknown Socket-Type"),
            IncompatibleSocketType(t) => write!(f, "socket type {t} cannot connect to PULL"),
            DuplicateReady => f.write_str("a second READY command"),
            MalformedPing => f.write_str("malformed PING command"),
            PeerError(reason) => write!(f, "peer sent ERROR {reason:?}"),
            TransmitBacklog => f.write_str("peer does not read our PONGs"),
        }
    }
}

impl std::error::Error for ZmtpError {}

/// Printable ASCII as is, every other octet as `?`.
pub(super) fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}
