//! RFC 6455 §5.2 base framing: header parsing, masking and frame encoding.
//!
//! The parser looks at a caller's buffer and either returns a complete header
//! or says it needs more bytes; it never consumes partial input.

/// Frame opcodes (RFC 6455 §5.2, §11.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: first frame of a text message.
    Text,
    /// 0x2: first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// Maps the 4-bit opcode field; reserved values (0x3–0x7, 0xB–0xF) give `None`.
    pub fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit wire value.
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Control frames have the high bit of the opcode set (§5.5).
    pub fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}

/// A parsed frame header. `opcode` is the raw 4-bit value so that the caller
/// decides what a reserved opcode means in its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN bit.
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits.
    pub rsv: u8,
    /// Raw opcode bits.
    pub opcode: u8,
    /// Masking key, when the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// Declared payload length.
    pub payload_len: u64,
    /// Bytes taken by the header itself (2 to 14).
    pub header_len: usize,
}

/// The one structural error a header can have on its own: §5.2 says the most
/// significant bit of a 64-bit length MUST be 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LengthOverflow;

/// Parses a frame header at the start of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of the header.
pub fn parse_header(buf: &[u8]) -> Result<Option<FrameHeader>, LengthOverflow> {
    let [b0, b1, rest @ ..] = buf else {
        return Ok(None);
    };
    let masked = b1 & 0x80 != 0;
    let (payload_len, len_bytes) = match b1 & 0x7F {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(l) => {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(l);
                let len = u64::from_be_bytes(bytes);
                // §5.2: "the most significant bit MUST be 0".
                if len >> 63 != 0 {
                    return Err(LengthOverflow);
                }
                (len, 8)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 0),
    };
    let mut header_len = 2 + len_bytes;
    let mask = if masked {
        let Some(k) = rest.get(len_bytes..len_bytes + 4) else {
            return Ok(None);
        };
        header_len += 4;
        Some([k[0], k[1], k[2], k[3]])
    } else {
        None
    };
    Ok(Some(FrameHeader {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 0x7,
        opcode: b0 & 0x0F,
        mask,
        payload_len,
        header_len,
    }))
}

/// XORs `data` with `mask` (§5.3), where `data` starts `offset` bytes into
/// the payload. Works eight bytes at a time with safe chunking.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = [0u8; 8];
    for (i, k) in key.iter_mut().enumerate() {
        *k = mask[(offset + i) % 4];
    }
    let word = u64::from_ne_bytes(key);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(w) ^ word).to_ne_bytes());
    }
    for (b, k) in chunks.into_remainder().iter_mut().zip(key) {
        *b ^= k;
    }
}

/// RSV1 in the first header byte: the "Per-Message Compressed" bit of
/// RFC 7692 §6.
pub const RSV1: u8 = 0x40;

/// Largest header a server (unmasked) frame needs.
pub const MAX_SERVER_HEADER: usize = 10;

/// Encodes an unmasked header (servers never mask, §5.1) into `out`, returning
/// its length.
pub fn encode_header(
    out: &mut [u8; MAX_SERVER_HEADER],
    fin: bool,
    opcode: OpCode,
    len: usize,
) -> usize {
    out[0] = (u8::from(fin) << 7) | opcode.bits();
    if len < 126 {
        out[1] = len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        out[1] = 126;
        out[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// Appends a complete masked frame, as a client sends it (§5.3): the
/// header with the MASK bit and `mask`, then `payload` XORed with it.
/// `first` is the whole first header byte (FIN, RSV, opcode).
pub fn write_masked_frame(out: &mut Vec<u8>, first: u8, payload: &[u8], mask: [u8; 4]) {
    let mut hdr = [0u8; MAX_SERVER_HEADER];
    let n = encode_header(&mut hdr, true, OpCode::Continuation, payload.len());
    hdr[0] = first;
    hdr[1] |= 0x80;
    out.reserve(n + 4 + payload.len());
    out.extend_from_slice(&hdr[..n]);
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask, 0);
}

/// Appends a complete unmasked frame to `out`.
pub fn write_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    let mut hdr = [0u8; MAX_SERVER_HEADER];
    let n = encode_header(&mut hdr, true, opcode, payload.len());
    out.reserve(n + payload.len());
    out.extend_from_slice(&hdr[..n]);
    out.extend_from_slice(payload);
}

/// Appends a close frame with `code` and `reason` (§5.5.1). The reason is
/// cut at a character boundary so the payload stays within 125 bytes.
pub fn write_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut payload = [0u8; 125];
    let n = super::close::write_payload(&mut payload, code, reason);
    write_frame(out, OpCode::Close, &payload[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6455 §5.7 examples.
    const HELLO_UNMASKED: [u8; 7] = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    const HELLO_MASKED: [u8; 11] = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];

    #[test]
    fn rfc_single_frame_unmasked() {
        let h = parse_header(&HELLO_UNMASKED).unwrap().unwrap();
        assert!(h.fin);
        assert_eq!(h.opcode, 1);
        assert_eq!(h.mask, None);
        assert_eq!(h.payload_len, 5);
        assert_eq!(h.header_len, 2);
        let mut out = Vec::new();
        write_frame(&mut out, OpCode::Text, b"Hello");
        assert_eq!(out, HELLO_UNMASKED);
    }

    #[test]
    fn rfc_single_frame_masked() {
        let mut buf = HELLO_MASKED;
        let h = parse_header(&buf).unwrap().unwrap();
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(h.header_len, 6);
        apply_mask(&mut buf[6..], h.mask.unwrap(), 0);
        assert_eq!(&buf[6..], b"Hello");
    }

    #[test]
    fn rfc_masked_frame_encoding() {
        let mut out = Vec::new();
        write_masked_frame(&mut out, 0x81, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(out, HELLO_MASKED);
        out.clear();
        write_masked_frame(&mut out, 0x82, &[7; 300], [1, 2, 3, 4]);
        let h = parse_header(&out).unwrap().unwrap();
        assert_eq!(
            (h.payload_len, h.header_len, h.mask),
            (300, 8, Some([1, 2, 3, 4]))
        );
        apply_mask(&mut out[8..], [1, 2, 3, 4], 0);
        assert!(out[8..].iter().all(|&b| b == 7));
    }

    #[test]
    fn mask_at_any_offset_matches_bytewise() {
        let mask = [1, 2, 3, 4];
        let orig: Vec<u8> = (0..100u8).collect();
        for split in 0..orig.len() {
            let mut a = orig.clone();
            apply_mask(&mut a[..split], mask, 0);
            apply_mask(&mut a[split..], mask, split);
            let expect: Vec<u8> = orig
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(a, expect, "split at {split}");
        }
    }

    #[test]
    fn rfc_fragmented_and_control_examples() {
        // Unmasked ping with "Hello" and a fragmented "Hel"+"lo".
        let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let h = parse_header(&ping).unwrap().unwrap();
        assert_eq!(OpCode::from_bits(h.opcode), Some(OpCode::Ping));
        let first = [0x01, 0x03, 0x48, 0x65, 0x6c];
        let h = parse_header(&first).unwrap().unwrap();
        assert!(!h.fin);
        let cont = [0x80, 0x02, 0x6c, 0x6f];
        let h = parse_header(&cont).unwrap().unwrap();
        assert!(h.fin);
        assert_eq!(h.opcode, 0);
    }

    #[test]
    fn rfc_length_encodings() {
        // 256 bytes binary: 0x82 0x7E 0x0100; 64 KiB: 0x82 0x7F 0x0000000000010000.
        let h = parse_header(&[0x82, 0x7E, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.payload_len, h.header_len), (256, 4));
        let h = parse_header(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, h.header_len), (65536, 10));
        let mut out = Vec::new();
        write_frame(&mut out, OpCode::Binary, &[0u8; 256]);
        assert_eq!(&out[..4], &[0x82, 0x7E, 0x01, 0x00]);
        out.clear();
        write_frame(&mut out, OpCode::Binary, &vec![0u8; 65536]);
        assert_eq!(&out[..10], &[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let full = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9];
        for n in 0..full.len() {
            assert_eq!(parse_header(&full[..n]), Ok(None), "prefix {n}");
        }
        assert!(parse_header(&full).unwrap().is_some());
    }

    #[test]
    fn top_bit_of_64_bit_length_is_an_error() {
        let buf = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(parse_header(&buf), Err(LengthOverflow));
    }

    #[test]
    fn close_reason_is_truncated_on_char_boundary() {
        let reason = "é".repeat(100);
        let mut out = Vec::new();
        write_close(&mut out, 1000, &reason);
        assert_eq!(out[1] as usize, out.len() - 2);
        assert!(out.len() - 2 <= 125);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
    }
}
