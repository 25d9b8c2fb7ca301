//! The receive side of one WebSocket connection, sans I/O.
//!
//! [`Decoder::decode`] looks at the caller's buffer, which always starts at a
//! frame boundary. It either returns one complete frame (payload unmasked in
//! place, borrowed from the buffer) and how many bytes it spans, or reports
//! that it needs more bytes. Partial input is never consumed; the payload
//! bytes of an incomplete frame are unmasked and UTF-8 checked as they
//! arrive, so invalid text fails fast (§8.1), and the work is not repeated
//! when the rest of the frame comes.
//!
//! With permessage-deflate negotiated (RFC 7692) a message whose first
//! frame has RSV1 set is compressed: its frames come out as
//! [`Frame::Compressed`], not validated, for the caller to decompress
//! (see [`super::deflate`]).

use super::close::{self, BadClose, ClosePayload};
use super::frame::{self, OpCode};
use super::utf8::Utf8Validator;
use std::fmt;

/// Size limits enforced while decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload a single frame may declare.
    pub max_frame: u64,
    /// Largest total payload of a message, across its fragments.
    pub max_message: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: 16 << 20,
            max_message: 16 << 20,
        }
    }
}

/// Everything a peer can get wrong on the wire; each maps to a close code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// §5.1: a client frame without the MASK bit.
    Unmasked,
    /// §5.1: a server frame with the MASK bit (seen in the client role).
    Masked,
    /// §5.2: RSV bits set with no extension negotiated.
    ReservedBits,
    /// §5.2: opcode 0x3–0x7 or 0xB–0xF.
    ReservedOpcode(u8),
    /// §5.5: control frame payload over 125 bytes.
    ControlTooLong,
    /// §5.5: control frame without FIN.
    ControlFragmented,
    /// §5.4: continuation frame with no message in progress.
    UnexpectedContinuation,
    /// §5.4: a new text/binary frame while a fragmented message is open.
    ExpectedContinuation,
    /// §5.2: 64-bit length with the most significant bit set.
    LengthOverflow,
    /// Frame larger than the configured limit.
    FrameTooBig,
    /// Message larger than the configured limit.
    MessageTooBig,
    /// §8.1: text message that is not UTF-8.
    InvalidUtf8,
    /// §5.5.1 / §7.4: close frame with one byte of payload or a code that
    /// must not be sent.
    BadCloseCode,
    /// §5.5.1: close reason that is not UTF-8.
    CloseReasonUtf8,
    /// RFC 7692 §6.1: RSV1 on a control frame.
    CompressedControl,
    /// RFC 7692 §6.1: RSV1 on a frame that is not the first of a message.
    CompressedContinuation,
    /// RFC 7692 §7.2.2: a compressed message that is not valid DEFLATE data.
    BadDeflateData,
}

impl ProtocolError {
    /// The close code the peer gets for this error (§7.4.1).
    pub fn close_code(self) -> u16 {
        match self {
            ProtocolError::InvalidUtf8
            | ProtocolError::CloseReasonUtf8
            | ProtocolError::BadDeflateData => close::INVALID_PAYLOAD,
            ProtocolError::FrameTooBig | ProtocolError::MessageTooBig => close::TOO_BIG,
            _ => close::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Unmasked => f.write_str("client frame not masked"),
            ProtocolError::Masked => f.write_str("server frame masked"),
            ProtocolError::ReservedBits => f.write_str("reserved bits set"),
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::ControlTooLong => f.write_str("control frame over 125 bytes"),
            ProtocolError::ControlFragmented => f.write_str("fragmented control frame"),
            ProtocolError::UnexpectedContinuation => f.write_str("continuation without a message"),
            ProtocolError::ExpectedContinuation => {
                f.write_str("new message inside a fragmented one")
            }
            ProtocolError::LengthOverflow => f.write_str("64-bit length with top bit set"),
            ProtocolError::FrameTooBig => f.write_str("frame too big"),
            ProtocolError::MessageTooBig => f.write_str("message too big"),
            ProtocolError::InvalidUtf8 => f.write_str("invalid UTF-8 in text message"),
            ProtocolError::BadCloseCode => f.write_str("invalid close code"),
            ProtocolError::CloseReasonUtf8 => f.write_str("invalid UTF-8 in close reason"),
            ProtocolError::CompressedControl => f.write_str("RSV1 set on a control frame"),
            ProtocolError::CompressedContinuation => {
                f.write_str("RSV1 set on a continuation frame")
            }
            ProtocolError::BadDeflateData => f.write_str("invalid DEFLATE data"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// One complete frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole text message that arrived as one frame, validated once.
    Text(&'a str),
    /// A whole binary message that arrived as one frame.
    Binary(&'a [u8]),
    /// One frame of a fragmented message; the caller assembles them. Text
    /// fragments are validated incrementally, across fragment boundaries.
    Fragment {
        /// The message is text.
        text: bool,
        /// Starts the message.
        first: bool,
        /// Ends the message.
        fin: bool,
        /// Unmasked payload.
        payload: &'a [u8],
    },
    /// One frame of a compressed message (permessage-deflate), whole or
    /// fragmented; the payload is DEFLATE data, not yet checked in any way.
    Compressed {
        /// The message is text.
        text: bool,
        /// Starts the message.
        first: bool,
        /// Ends the message.
        fin: bool,
        /// Unmasked, still compressed payload.
        payload: &'a [u8],
    },
    /// Ping with its application data.
    Ping(&'a [u8]),
    /// Pong with its application data.
    Pong(&'a [u8]),
    /// Close with its validated payload.
    Close(ClosePayload<'a>),
}

/// Result of one [`Decoder::decode`] call.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// More bytes are needed. `frame_len` is the full size of the frame at the
    /// head of the buffer once its header is known (0 before), so the caller
    /// can size its buffer once.
    Incomplete {
        /// Header plus payload length of the pending frame, or 0.
        frame_len: usize,
    },
    /// A frame spanning the first `consumed` bytes of the buffer.
    Frame {
        /// Bytes to drop from the head of the buffer.
        consumed: usize,
        /// The frame.
        frame: Frame<'a>,
    },
}

/// Which side decodes, and what that side allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Role {
    /// A server: frames must be masked.
    #[default]
    Server,
    /// A server with permessage-deflate in force: RSV1 may mark a message
    /// compressed.
    ServerDeflate,
    /// A client: frames from the server must not be masked (§5.1).
    Client,
}

/// Receive state of one connection: 24 bytes, no heap.
#[derive(Clone, Debug, Default)]
pub struct Decoder {
    /// `Some(is_text)` while a fragmented message is open.
    open_message: Option<bool>,
    /// The open message is compressed (its first frame had RSV1).
    open_compressed: bool,
    role: Role,
    /// Payload bytes of the open message in frames already returned.
    message_len: u64,
    utf8: Utf8Validator,
    /// Payload bytes of the frame at the buffer head that are already
    /// unmasked (and validated, for text).
    unmasked: usize,
}

impl Decoder {
    /// A decoder at the start of a connection, in the server role: every
    /// frame must be masked.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// A decoder for the client role: frames must not be masked.
    pub fn client() -> Self {
        Decoder {
            role: Role::Client,
            ..Decoder::default()
        }
    }

    /// Allows RSV1 on the first frame of a data message, once
    /// permessage-deflate has been negotiated (RFC 7692 §6).
    pub fn set_compression(&mut self, on: bool) {
        if self.role != Role::Client {
            self.role = if on {
                Role::ServerDeflate
            } else {
                Role::Server
            };
        }
    }

    /// True while a fragmented message has started but not finished.
    pub fn in_message(&self) -> bool {
        self.open_message.is_some()
    }

    /// Decodes the frame at the head of `buf`. See the module docs.
    ///
    /// An error means the connection must be failed (§7.1.7) with the
    /// error's close code; the decoder is not meant to be used after that.
    pub fn decode<'b>(
        &mut self,
        buf: &'b mut [u8],
        limits: &Limits,
    ) -> Result<Decoded<'b>, ProtocolError> {
        let header = match frame::parse_header(buf) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(Decoded::Incomplete { frame_len: 0 }),
            Err(frame::LengthOverflow) => return Err(ProtocolError::LengthOverflow),
        };
        let (opcode, text, compressed) = self.check_header(&header, limits)?;
        // Compressed payload is validated after decompression, by the caller.
        let validate = text && !compressed;
        // check_header bounded the length by the limits, which fit in usize.
        let len = usize::try_from(header.payload_len).map_err(|_| ProtocolError::FrameTooBig)?;
        let start = header.header_len;
        let frame_len = start + len;
        let avail = (buf.len() - start).min(len);
        let whole_in_one_call = avail == len && self.unmasked == 0;
        if avail > self.unmasked {
            let fresh = &mut buf[start + self.unmasked..start + avail];
            // check_header allowed a mask only in the server role.
            if let Some(mask) = header.mask {
                frame::apply_mask(fresh, mask, self.unmasked);
            }
            // A single-frame text message seen whole is validated once below,
            // as it is turned into a str; everything else incrementally.
            let single = header.fin && self.open_message.is_none();
            if validate && !(whole_in_one_call && single) {
                self.utf8
                    .feed(fresh)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            self.unmasked = avail;
        }
        if avail < len {
            return Ok(Decoded::Incomplete { frame_len });
        }
        self.unmasked = 0;
        let payload = &buf[start..frame_len];
        let frame = match opcode {
            OpCode::Ping => Frame::Ping(payload),
            OpCode::Pong => Frame::Pong(payload),
            OpCode::Close => Frame::Close(close::parse_payload(payload).map_err(|e| match e {
                BadClose::Protocol => ProtocolError::BadCloseCode,
                BadClose::Utf8 => ProtocolError::CloseReasonUtf8,
            })?),
            OpCode::Text | OpCode::Binary | OpCode::Continuation if compressed => {
                self.compressed_frame(header.fin, text, payload)
            }
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                self.data_frame(header.fin, text, payload)?
            }
        };
        Ok(Decoded::Frame {
            consumed: frame_len,
            frame,
        })
    }

    /// A complete frame of a compressed message.
    fn compressed_frame<'b>(&mut self, fin: bool, text: bool, payload: &'b [u8]) -> Frame<'b> {
        let first = self.open_message.is_none();
        if fin {
            self.open_message = None;
            self.open_compressed = false;
            self.message_len = 0;
        } else {
            self.open_message = Some(text);
            self.open_compressed = true;
            self.message_len += payload.len() as u64;
        }
        Frame::Compressed {
            text,
            first,
            fin,
            payload,
        }
    }

    /// Turns a complete data frame into a [`Frame`], closing the message on FIN.
    fn data_frame<'b>(
        &mut self,
        fin: bool,
        text: bool,
        payload: &'b [u8],
    ) -> Result<Frame<'b>, ProtocolError> {
        let first = self.open_message.is_none();
        if !fin {
            self.open_message = Some(text);
            self.message_len += payload.len() as u64;
            return Ok(Frame::Fragment {
                text,
                first,
                fin,
                payload,
            });
        }
        let complete = self.utf8.is_complete();
        self.utf8.reset();
        self.open_message = None;
        self.message_len = 0;
        match (first, text) {
            (false, _) if text && !complete => Err(ProtocolError::InvalidUtf8),
            (false, _) => Ok(Frame::Fragment {
                text,
                first,
                fin,
                payload,
            }),
            (true, false) => Ok(Frame::Binary(payload)),
            // Either validated incrementally (then this cannot fail) or seen
            // whole and validated here, once.
            (true, true) => std::str::from_utf8(payload)
                .map(Frame::Text)
                .map_err(|_| ProtocolError::InvalidUtf8),
        }
    }

    /// Applies the per-frame MUSTs of §5 that depend on connection state.
    /// Returns the opcode, whether the message is text, and whether it is
    /// compressed.
    fn check_header(
        &self,
        h: &frame::FrameHeader,
        limits: &Limits,
    ) -> Result<(OpCode, bool, bool), ProtocolError> {
        // §5.1: a server MUST close on an unmasked frame, a client on a
        // masked one.
        match (self.role == Role::Client, h.mask.is_some()) {
            (false, false) => return Err(ProtocolError::Unmasked),
            (true, true) => return Err(ProtocolError::Masked),
            _ => {}
        }
        // §5.2: RSV bits MUST be 0 unless an extension defines them; the
        // only one sprocket knows is RFC 7692's use of RSV1.
        let rsv1 = h.rsv & 0b100 != 0;
        if h.rsv & 0b011 != 0 || (rsv1 && self.role != Role::ServerDeflate) {
            return Err(ProtocolError::ReservedBits);
        }
        let opcode = OpCode::from_bits(h.opcode).ok_or(ProtocolError::ReservedOpcode(h.opcode))?;
        if rsv1 && opcode.is_control() {
            // RFC 7692 §6.1: "An endpoint MUST NOT set the "Per-Message
            // Compressed" bit of control frames".
            return Err(ProtocolError::CompressedControl);
        }
        if rsv1 && opcode == OpCode::Continuation {
            // RFC 7692 §6.1: "... and non-first fragments of a data message."
            return Err(ProtocolError::CompressedContinuation);
        }
        if opcode.is_control() {
            // §5.5: "All control frames MUST have a payload length of 125
            // bytes or less and MUST NOT be fragmented."
            if !h.fin {
                return Err(ProtocolError::ControlFragmented);
            }
            if h.payload_len > 125 {
                return Err(ProtocolError::ControlTooLong);
            }
            return Ok((opcode, false, false));
        }
        let (text, compressed) = match (opcode, self.open_message) {
            (OpCode::Continuation, Some(text)) => (text, self.open_compressed),
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            (op, None) => (op == OpCode::Text, rsv1),
        };
        if h.payload_len > limits.max_frame {
            return Err(ProtocolError::FrameTooBig);
        }
        // For a compressed message this bounds the bytes on the wire; the
        // decompressed size is checked as it is produced.
        if self.message_len + h.payload_len > limits.max_message {
            return Err(ProtocolError::MessageTooBig);
        }
        Ok((opcode, text, compressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        frame::write_masked_frame(&mut out, first, payload, [0x37, 0xfa, 0x21, 0x3d]);
        out
    }

    /// Feeds `wire` growing one byte at a time, as the worst-case chunking.
    /// (is_text, fin, payload) of each data frame, or the error that ended it.
    type Seen = Result<(bool, bool, Vec<u8>), ProtocolError>;

    fn decode_bytewise(wire: &[u8]) -> Vec<Seen> {
        let mut d = Decoder::new();
        let limits = Limits::default();
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        for &b in wire {
            buf.push(b);
            loop {
                match d.decode(&mut buf, &limits) {
                    Ok(Decoded::Incomplete { .. }) => break,
                    Ok(Decoded::Frame { consumed, frame }) => {
                        match frame {
                            Frame::Fragment {
                                text, fin, payload, ..
                            } => out.push(Ok((text, fin, payload.to_vec()))),
                            Frame::Text(s) => out.push(Ok((true, true, s.as_bytes().to_vec()))),
                            Frame::Binary(b) => out.push(Ok((false, true, b.to_vec()))),
                            _ => {}
                        }
                        buf.drain(..consumed);
                    }
                    Err(e) => {
                        out.push(Err(e));
                        return out;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn a_decoder_is_24_bytes() {
        assert_eq!(std::mem::size_of::<Decoder>(), 24);
    }

    #[test]
    fn rfc_masked_hello() {
        let mut buf = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let mut d = Decoder::new();
        let got = d.decode(&mut buf, &Limits::default()).unwrap();
        assert_eq!(
            got,
            Decoded::Frame {
                consumed: 11,
                frame: Frame::Text("Hello")
            }
        );
    }

    #[test]
    fn split_at_every_byte_decodes_the_same() {
        let mut wire = masked(0x01, b"Hel");
        wire.extend(masked(0x89, b"ping"));
        wire.extend(masked(0x80, "lo κόσμε".as_bytes()));
        wire.extend(masked(0x82, &[7u8; 300]));
        let got = decode_bytewise(&wire);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], Ok((true, false, b"Hel".to_vec())));
        assert_eq!(got[1], Ok((true, true, "lo κόσμε".as_bytes().to_vec())));
        assert_eq!(got[2], Ok((false, true, vec![7u8; 300])));
    }

    #[test]
    fn invalid_utf8_fails_before_the_frame_is_complete() {
        let mut payload = "κόσμε".as_bytes().to_vec();
        payload.extend_from_slice(&[0xED, 0xA0, 0x80]);
        payload.extend_from_slice(b"edited");
        let wire = masked(0x81, &payload);
        let mut d = Decoder::new();
        let limits = Limits::default();
        // Header (2+4) plus the valid text plus two bytes of the surrogate.
        let mut partial = wire[..6 + 11 + 2].to_vec();
        assert_eq!(
            d.decode(&mut partial, &limits),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn protocol_violations() {
        let limits = Limits {
            max_frame: 1000,
            max_message: 1500,
        };
        let cases: Vec<(Vec<u8>, ProtocolError)> = vec![
            (vec![0x81, 0x00], ProtocolError::Unmasked),
            (masked(0xC1, b"x"), ProtocolError::ReservedBits),
            (masked(0x83, b""), ProtocolError::ReservedOpcode(3)),
            (masked(0x8B, b""), ProtocolError::ReservedOpcode(0xB)),
            (masked(0x89, &[0u8; 126]), ProtocolError::ControlTooLong),
            (masked(0x09, b""), ProtocolError::ControlFragmented),
            (masked(0x80, b"x"), ProtocolError::UnexpectedContinuation),
            (masked(0x82, &[0u8; 1001]), ProtocolError::FrameTooBig),
            (masked(0x88, &[3]), ProtocolError::BadCloseCode),
            (masked(0x88, &[0x03, 0xEE]), ProtocolError::BadCloseCode),
            (
                masked(0x88, &[0x03, 0xE8, 0xC0]),
                ProtocolError::CloseReasonUtf8,
            ),
            (masked(0x81, &[0xE2, 0x82]), ProtocolError::InvalidUtf8),
        ];
        for (mut wire, want) in cases {
            let mut d = Decoder::new();
            let shown = format!("{wire:x?}");
            assert_eq!(d.decode(&mut wire, &limits), Err(want), "{shown}");
            assert!(want.close_code() >= 1002);
        }
        // New message inside a fragmented one, and a message over the limit.
        let mut d = Decoder::new();
        let mut wire = masked(0x01, &[b'a'; 800]);
        assert!(matches!(
            d.decode(&mut wire, &limits),
            Ok(Decoded::Frame { .. })
        ));
        assert_eq!(
            d.decode(&mut masked(0x81, b"x"), &limits),
            Err(ProtocolError::ExpectedContinuation)
        );
        assert_eq!(
            d.decode(&mut masked(0x80, &[b'a'; 800]), &limits),
            Err(ProtocolError::MessageTooBig)
        );
        // 64-bit length with its top bit set.
        let mut wire = vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(
            Decoder::new().decode(&mut wire, &limits),
            Err(ProtocolError::LengthOverflow)
        );
    }

    #[test]
    fn rsv1_marks_compressed_messages_once_negotiated() {
        let limits = Limits::default();
        // RFC 7692 §7.2.3.1, as one frame and as two fragments.
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let mut d = Decoder::new();
        assert_eq!(
            d.decode(&mut masked(0xC1, &hello), &limits),
            Err(ProtocolError::ReservedBits),
            "not negotiated"
        );
        d.set_compression(true);
        let mut wire = masked(0xC1, &hello);
        let got = d.decode(&mut wire, &limits).unwrap();
        let Decoded::Frame { frame, .. } = got else {
            panic!("{got:?}")
        };
        assert_eq!(
            frame,
            Frame::Compressed {
                text: true,
                first: true,
                fin: true,
                payload: &hello
            }
        );
        // Fragmented, with a ping in between; the continuation carries no
        // RSV1 and is still part of the compressed message.
        let mut wire = masked(0x42, &hello[..3]);
        wire.extend(masked(0x89, b""));
        wire.extend(masked(0x80, &hello[3..]));
        wire.extend(masked(0x82, b"plain"));
        let mut frames = Vec::new();
        let mut pos = 0;
        while pos < wire.len() {
            match d.decode(&mut wire[pos..], &limits).unwrap() {
                Decoded::Frame { consumed, frame } => {
                    frames.push(format!("{frame:?}"));
                    pos += consumed;
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(frames[0].starts_with("Compressed { text: false, first: true, fin: false"));
        assert!(frames[1].starts_with("Ping"));
        assert!(frames[2].starts_with("Compressed { text: false, first: false, fin: true"));
        assert!(frames[3].starts_with("Binary"), "{frames:?}");
        // Invalid (not compressed) UTF-8 is not looked at here: the caller
        // validates the decompressed text.
        let mut raw = masked(0xC1, &[0xff, 0xfe]);
        assert!(d.decode(&mut raw, &limits).is_ok());
    }

    #[test]
    fn rsv_rules_with_compression() {
        let limits = Limits::default();
        let cases: Vec<(Vec<u8>, ProtocolError)> = vec![
            (masked(0xC9, b""), ProtocolError::CompressedControl),
            (
                masked(0xC8, &[0x03, 0xE8]),
                ProtocolError::CompressedControl,
            ),
            (masked(0xA1, b"x"), ProtocolError::ReservedBits),
            (masked(0x91, b"x"), ProtocolError::ReservedBits),
            (masked(0xE1, b"x"), ProtocolError::ReservedBits),
        ];
        for (mut wire, want) in cases {
            let mut d = Decoder::new();
            d.set_compression(true);
            let shown = format!("{wire:x?}");
            assert_eq!(d.decode(&mut wire, &limits), Err(want), "{shown}");
            assert_eq!(want.close_code(), 1002);
        }
        // RSV1 on a continuation, compressed message or not.
        for first in [0x01, 0x41] {
            let mut d = Decoder::new();
            d.set_compression(true);
            assert!(d.decode(&mut masked(first, b"a"), &limits).is_ok());
            assert_eq!(
                d.decode(&mut masked(0xC0, b"b"), &limits),
                Err(ProtocolError::CompressedContinuation)
            );
        }
    }

    #[test]
    fn oversized_declared_length_fails_without_payload() {
        let mut wire = vec![0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(
            Decoder::new().decode(&mut wire, &Limits::default()),
            Err(ProtocolError::FrameTooBig)
        );
    }

    #[test]
    fn incomplete_reports_frame_len() {
        let wire = masked(0x82, &[1u8; 200]);
        let mut part = wire[..50].to_vec();
        assert_eq!(
            Decoder::new().decode(&mut part, &Limits::default()),
            Ok(Decoded::Incomplete {
                frame_len: wire.len()
            })
        );
    }

    #[test]
    fn close_frames() {
        let mut d = Decoder::new();
        let mut wire = masked(0x88, &[0x03, 0xE8, b'b', b'y', b'e']);
        let wire_len = wire.len();
        match d.decode(&mut wire, &Limits::default()).unwrap() {
            Decoded::Frame {
                frame: Frame::Close(c),
                consumed,
            } => {
                assert_eq!(consumed, wire_len);
                assert_eq!((c.code, c.reason), (Some(1000), "bye"));
            }
            other => panic!("{other:?}"),
        }
    }
}
