//! The frame decoder on structured input: mostly valid client traffic
//! (fragmented messages split anywhere, even inside a UTF-8 sequence, with
//! control frames interleaved), plus the odd arbitrary frame. A small
//! reference model of RFC 6455 predicts every frame and the error, if any;
//! the decoder must match it exactly, fed whole and fed in chunks.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sprocket::ws::{Limits, ProtocolError};
use sprocket_fuzz::{Outcome, Owned, chunks, decode_stream, sendable};

// Fragments cut by a u8 fit in a frame; a few of them overflow a message.
const LIMITS: Limits = Limits {
    max_frame: 256,
    max_message: 512,
};

#[derive(Arbitrary, Debug)]
struct Input {
    chunk_sizes: Vec<u8>,
    /// Masking keys, used in turn, one per frame.
    keys: Vec<[u8; 4]>,
    items: Vec<Item>,
}

#[derive(Arbitrary, Debug)]
enum Item {
    /// A data message cut into fragments of the given sizes (the rest is the
    /// last fragment), with `controls[i]` sent after fragment `i`.
    Message {
        body: Body,
        cuts: Vec<u8>,
        controls: Vec<Option<Control>>,
    },
    Control(Control),
    /// Any masked frame: FIN/RSV/opcode from `b0`, often invalid.
    Raw {
        b0: u8,
        payload: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
enum Body {
    Text(String),
    /// Text rich in multi-byte characters, for cuts inside a character.
    Chars(Vec<char>),
    Binary(Vec<u8>),
    /// A text message that is likely not UTF-8.
    BadText(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Control {
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

/// A frame to put on the wire: first header byte and unmasked payload.
struct Spec {
    b0: u8,
    payload: Vec<u8>,
}

const FIN: u8 = 0x80;

fn control(c: Control) -> Spec {
    let (op, payload) = match c {
        Control::Ping(p) => (0x9, p),
        Control::Pong(p) => (0xA, p),
        Control::Close(None) => (0x8, vec![]),
        Control::Close(Some((code, reason))) => {
            (0x8, [&code.to_be_bytes()[..], reason.as_bytes()].concat())
        }
    };
    Spec {
        b0: FIN | op,
        payload,
    }
}

fn specs(items: Vec<Item>) -> Vec<Spec> {
    let mut out = Vec::new();
    for item in items {
        match item {
            Item::Control(c) => out.push(control(c)),
            Item::Raw { b0, payload } => out.push(Spec { b0, payload }),
            Item::Message {
                body,
                cuts,
                mut controls,
            } => {
                let (mut op, body) = match body {
                    Body::Text(s) => (0x1, s.into_bytes()),
                    Body::Chars(c) => (0x1, String::from_iter(c).into_bytes()),
                    Body::Binary(b) => (0x2, b),
                    Body::BadText(b) => (0x1, b),
                };
                let mut rest = &body[..];
                controls.resize_with(cuts.len(), || None);
                for (cut, ctl) in cuts.into_iter().zip(controls) {
                    let (frag, tail) = rest.split_at(usize::from(cut).min(rest.len()));
                    out.push(Spec {
                        b0: op,
                        payload: frag.to_vec(),
                    });
                    out.extend(ctl.map(control));
                    rest = tail;
                    op = 0x0;
                }
                out.push(Spec {
                    b0: FIN | op,
                    payload: rest.to_vec(),
                });
            }
        }
    }
    out
}

/// Masked client frame; bits of the key also pick a (possibly non-minimal)
/// length encoding, which §5.2 asks of senders but receivers accept.
fn encode(spec: &Spec, key: [u8; 4], wire: &mut Vec<u8>) {
    let len = spec.payload.len();
    wire.push(spec.b0);
    match key[3] % 3 {
        0 if len < 126 => wire.push(0x80 | len as u8),
        0 | 1 if len <= 0xFFFF => {
            wire.push(0x80 | 126);
            wire.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            wire.push(0x80 | 127);
            wire.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    wire.extend_from_slice(&key);
    wire.extend(spec.payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
}

/// Reference model: what a receiver must do with each frame (RFC 6455 §5,
/// §8.1), checks in the decoder's documented order.
#[derive(Default)]
struct Model {
    open: Option<(bool, Vec<u8>)>,
    frames: Vec<Owned>,
}

impl Model {
    fn step(&mut self, Spec { b0, payload }: Spec) -> Result<(), ProtocolError> {
        let (fin, rsv, op) = (b0 & FIN != 0, (b0 >> 4) & 7, b0 & 0xF);
        if rsv != 0 {
            return Err(ProtocolError::ReservedBits);
        }
        if matches!(op, 0x3..=0x7 | 0xB..=0xF) {
            return Err(ProtocolError::ReservedOpcode(op));
        }
        if op >= 0x8 {
            if !fin {
                return Err(ProtocolError::ControlFragmented);
            }
            if payload.len() > 125 {
                return Err(ProtocolError::ControlTooLong);
            }
            let frame = match (op, &payload[..]) {
                (0x9, _) => Owned::Ping(payload),
                (0xA, _) => Owned::Pong(payload),
                (_, []) => Owned::Close(None, String::new()),
                (_, [hi, lo, reason @ ..]) if sendable(u16::from_be_bytes([*hi, *lo])) => {
                    let reason =
                        std::str::from_utf8(reason).map_err(|_| ProtocolError::CloseReasonUtf8)?;
                    Owned::Close(Some(u16::from_be_bytes([*hi, *lo])), reason.to_owned())
                }
                _ => return Err(ProtocolError::BadCloseCode),
            };
            self.frames.push(frame);
            return Ok(());
        }
        let (text, mut body) = match (op, self.open.take()) {
            (0x0, None) => return Err(ProtocolError::UnexpectedContinuation),
            (0x0, Some(open)) => open,
            (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            (_, None) => (op == 0x1, Vec::new()),
        };
        if payload.len() as u64 > LIMITS.max_frame {
            return Err(ProtocolError::FrameTooBig);
        }
        if (body.len() + payload.len()) as u64 > LIMITS.max_message {
            return Err(ProtocolError::MessageTooBig);
        }
        let first = op != 0x0;
        body.extend_from_slice(&payload);
        if text {
            match std::str::from_utf8(&body) {
                Ok(_) => {}
                Err(e) if !fin && e.error_len().is_none() => {} // may still complete
                Err(_) => return Err(ProtocolError::InvalidUtf8),
            }
        }
        self.frames.push(match (first, fin) {
            (true, true) if text => Owned::Text(String::from_utf8(payload).unwrap()),
            (true, true) => Owned::Binary(payload),
            _ => Owned::Fragment {
                text,
                first,
                fin,
                payload,
            },
        });
        if !fin {
            self.open = Some((text, body));
        }
        Ok(())
    }
}

fuzz_target!(|input: Input| {
    let Input {
        chunk_sizes,
        keys,
        items,
    } = input;
    let mut wire = Vec::new();
    let mut model = Model::default();
    let mut error = None;
    for (i, spec) in specs(items).into_iter().enumerate() {
        encode(
            &spec,
            keys.get(i % keys.len().max(1)).copied().unwrap_or([0; 4]),
            &mut wire,
        );
        // Frames after the first error are sent but never looked at.
        if error.is_none() {
            error = model.step(spec).err();
        }
    }
    let expected = Outcome {
        frames: model.frames,
        // Without an error every frame is consumed and the buffer is empty.
        end: error.map_or(Ok((Vec::new(), 0)), Err),
    };
    assert_eq!(decode_stream([&wire[..]], &LIMITS), expected, "whole");
    assert_eq!(
        decode_stream(chunks(&chunk_sizes, &wire), &LIMITS),
        expected,
        "chunked"
    );
});
