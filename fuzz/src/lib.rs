//! Helpers shared by the fuzz targets: chunking the input, and a frame
//! decoding driver that checks the decoder's per-call invariants.

use sprocket::ws::{Decoded, Decoder, Frame, Limits, ProtocolError};

/// Splits a raw fuzz input into (chunk sizes, data). The first byte says how
/// many of the following bytes (0..=15) are chunk sizes; the rest is data.
pub fn split_input(input: &[u8]) -> (&[u8], &[u8]) {
    match input.split_first() {
        None => (&[], &[]),
        Some((&n, rest)) => rest.split_at(usize::from(n % 16).min(rest.len())),
    }
}

/// Cuts `data` into chunks whose sizes cycle through `sizes`. A size of 0 is
/// an empty chunk (a call with no new bytes); with no non-zero size at all the
/// data goes byte by byte, the worst case.
pub fn chunks<'a>(sizes: &[u8], data: &'a [u8]) -> Vec<&'a [u8]> {
    let bytewise = sizes.iter().all(|&s| s == 0);
    let mut out = Vec::new();
    let mut rest = data;
    for i in 0.. {
        if rest.is_empty() {
            break;
        }
        let n = if bytewise {
            1
        } else {
            usize::from(sizes[i % sizes.len()])
        };
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        out.push(chunk);
        rest = tail;
    }
    out
}

/// A decoded frame, owned so that it outlives the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owned {
    Text(String),
    Binary(Vec<u8>),
    Fragment {
        text: bool,
        first: bool,
        fin: bool,
        payload: Vec<u8>,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

impl From<&Frame<'_>> for Owned {
    fn from(f: &Frame<'_>) -> Self {
        match *f {
            Frame::Text(s) => Owned::Text(s.to_owned()),
            Frame::Binary(b) => Owned::Binary(b.to_vec()),
            Frame::Fragment {
                text,
                first,
                fin,
                payload,
            } => Owned::Fragment {
                text,
                first,
                fin,
                payload: payload.to_vec(),
            },
            Frame::Ping(p) => Owned::Ping(p.to_vec()),
            Frame::Pong(p) => Owned::Pong(p.to_vec()),
            Frame::Close(c) => Owned::Close(c.code, c.reason.to_owned()),
            // These targets never negotiate permessage-deflate, so the
            // decoder must treat RSV1 as a protocol error, never as this.
            Frame::Compressed { .. } => panic!("compressed frame without the extension"),
        }
    }
}

/// Everything a connection's decoder produced from one byte stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Frames in order.
    pub frames: Vec<Owned>,
    /// The error that ended the stream, or the unfinished tail of the buffer
    /// (already unmasked as far as it goes) and the last `frame_len`.
    pub end: Result<(Vec<u8>, usize), ProtocolError>,
}

/// Close codes a peer may send (RFC 6455 §7.4.1, §7.4.2, IANA 1012-1014).
pub fn sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Feeds `chunks` to one decoder the way a connection does: append the chunk,
/// decode until `Incomplete` or an error, drop what each frame consumed.
/// Panics if an invariant of a single call or of message assembly breaks.
pub fn decode_stream<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, limits: &Limits) -> Outcome {
    let mut decoder = Decoder::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut frames = Vec::new();
    // The open fragmented message: (is_text, payload so far).
    let mut open: Option<(bool, Vec<u8>)> = None;
    let mut frame_len = 0;
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let len = buf.len();
            let consumed = match decoder.decode(&mut buf, limits) {
                Err(e) => {
                    return Outcome {
                        frames,
                        end: Err(e),
                    };
                }
                Ok(Decoded::Incomplete { frame_len: n }) => {
                    // Once the header is known it covers more than we have.
                    assert!(
                        n == 0 || n > len,
                        "Incomplete frame_len {n} with {len} buffered"
                    );
                    frame_len = n;
                    break;
                }
                Ok(Decoded::Frame { consumed, frame }) => {
                    assert!(
                        (2..=len).contains(&consumed),
                        "consumed {consumed} of {len}"
                    );
                    let owned = Owned::from(&frame);
                    check_frame(&owned, &mut open, limits);
                    frames.push(owned);
                    consumed
                }
            };
            buf.drain(..consumed);
        }
    }
    assert_eq!(decoder.in_message(), open.is_some());
    Outcome {
        frames,
        end: Ok((buf, frame_len)),
    }
}

/// Checks one delivered frame against the message assembled so far.
fn check_frame(f: &Owned, open: &mut Option<(bool, Vec<u8>)>, limits: &Limits) {
    let max_frame = limits.max_frame as usize;
    let max_message = limits.max_message as usize;
    match f {
        // Unfragmented messages only arrive between messages, within limits.
        Owned::Text(s) => assert!(open.is_none() && s.len() <= max_frame.min(max_message)),
        Owned::Binary(b) => assert!(open.is_none() && b.len() <= max_frame.min(max_message)),
        Owned::Fragment {
            text,
            first,
            fin,
            payload,
        } => {
            assert!(payload.len() <= max_frame);
            // `first` is exactly "no message was open"; a first frame with
            // FIN would have been Text/Binary.
            assert_eq!(*first, open.is_none());
            assert!(!(*first && *fin));
            let (is_text, body) = open.get_or_insert_with(|| (*text, Vec::new()));
            assert_eq!(*is_text, *text, "fragment type changed mid-message");
            body.extend_from_slice(payload);
            assert!(body.len() <= max_message, "message over max_message");
            if *text {
                // Fail-fast (§8.1): what was delivered is a prefix of valid
                // UTF-8, and a whole message at FIN is valid UTF-8.
                match std::str::from_utf8(body) {
                    Ok(_) => {}
                    Err(e) => assert!(!*fin && e.error_len().is_none(), "bad UTF-8 delivered"),
                }
            }
            if *fin {
                *open = None;
            }
        }
        // Control frames (§5.5): at most 125 bytes; allowed inside messages.
        Owned::Ping(p) | Owned::Pong(p) => assert!(p.len() <= 125),
        Owned::Close(code, reason) => {
            assert!(code.map_or(reason.is_empty(), sendable));
            assert!(reason.len() <= 123);
        }
    }
}
