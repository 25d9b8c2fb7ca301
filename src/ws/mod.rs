//! RFC 6455 protocol engine, free of I/O: framing, masking, message
//! assembly state, UTF-8 validation, close codes, the handshake key, and
//! the permessage-deflate extension (RFC 7692).

pub mod client;
pub mod close;
pub mod connection;
pub mod decoder;
pub mod deflate;
pub mod frame;
mod pool;
pub mod utf8;

pub use client::{ClientHandshake, HandshakeError, WsUrl};
pub use connection::{Connection, Event, Settings, Shared, State, Timeout};
pub use decoder::{Decoded, Decoder, Frame, Limits, ProtocolError};
pub use frame::OpCode;
pub use pool::Pool;

/// The GUID of RFC 6455 §1.3 appended to the client's key.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Computes `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`
/// (§4.2.2 step 5.4): base64(SHA-1(key ++ GUID)).
pub fn accept_key(key: &[u8]) -> String {
    use base64::Engine;
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(ACCEPT_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc_section_1_3_accept_key() {
        assert_eq!(
            super::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
