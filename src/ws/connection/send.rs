//! The send side of a connection: data messages (compressed when
//! negotiated, masked in the client role), frames encoded once for many,
//! and control frames.

use super::{Connection, Shared};
use crate::ws::close;
use crate::ws::frame::{self, OpCode};

impl Connection {
    /// Appends `payload` as one message (compressed when negotiated and
    /// worth it); false if the connection is not open.
    pub fn send(
        &mut self,
        text: bool,
        payload: &[u8],
        shared: &mut Shared,
        out: &mut Vec<u8>,
    ) -> bool {
        if !self.is_open() {
            return false;
        }
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        if let Some(session) = self.deflate.as_deref_mut()
            && let Some(n) = session.compress(&mut shared.deflate, payload, &mut shared.compressed)
        {
            push_frame(out, opcode, true, shared.compressed(n));
            shared.trim();
            return true;
        }
        if self.mask_state != 0 {
            let mask = self.next_mask();
            frame::write_masked_frame(out, 0x80 | opcode.bits(), payload, mask);
        } else {
            push_frame(out, opcode, false, payload);
        }
        true
    }

    /// Appends a frame encoded once for many recipients (a broadcast);
    /// false if not open. Server role only: client frames need their own mask.
    pub fn send_encoded(&mut self, frame: &[u8], compressed: bool, out: &mut Vec<u8>) -> bool {
        if !self.is_open() || self.mask_state != 0 {
            return false;
        }
        if compressed && let Some(s) = self.deflate.as_deref_mut() {
            s.stats.messages_out += 1;
        }
        out.extend_from_slice(frame);
        true
    }

    pub(super) fn push_close(&mut self, code: Option<u16>, reason: &str, out: &mut Vec<u8>) {
        let mut payload = [0u8; 125];
        let n = match code {
            Some(code) => close::write_payload(&mut payload, code, reason),
            None => 0,
        };
        self.push_control(OpCode::Close, &payload[..n], out);
    }

    /// Appends a control frame (payload at most 125 bytes, §5.5).
    pub(super) fn push_control(&mut self, opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) {
        if self.mask_state != 0 {
            let mask = self.next_mask();
            frame::write_masked_frame(out, 0x80 | opcode.bits(), payload, mask);
        } else {
            frame::write_frame(out, opcode, payload);
        }
    }

    /// xorshift64*: a fresh key per frame from the seed.
    fn next_mask(&mut self) -> [u8; 4] {
        let mut x = self.mask_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.mask_state = x;
        let word = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32;
        (word as u32).to_ne_bytes()
    }
}

/// Appends an unmasked frame, with RSV1 when `compressed` (RFC 7692 §6).
fn push_frame(out: &mut Vec<u8>, opcode: OpCode, compressed: bool, payload: &[u8]) {
    let mut hdr = [0u8; frame::MAX_SERVER_HEADER];
    let n = frame::encode_header(&mut hdr, true, opcode, payload.len());
    if compressed {
        hdr[0] |= frame::RSV1;
    }
    out.extend_from_slice(&hdr[..n]);
    out.extend_from_slice(payload);
}
