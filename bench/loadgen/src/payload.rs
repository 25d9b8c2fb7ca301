//! Echo payloads that carry their own sequence number, so every echo can be
//! checked for content and order without keeping copies of what was sent.
//!
//! Layout: 16 lowercase hex digits of the sequence number, then a slice of a
//! fixed pattern whose offset depends on connection and sequence number.
//! Text payloads use an ASCII pattern (valid UTF-8), binary ones all bytes.

use crate::ws::Rng;

pub const SEQ_LEN: usize = 16;
const OFFSETS: usize = 61;

pub struct Payloads {
    size: usize,
    pattern: Vec<u8>,
}

#[inline]
pub fn put_hex(dst: &mut [u8], mut v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in dst.iter_mut().rev() {
        *b = HEX[(v & 15) as usize];
        v >>= 4;
    }
}

/// Parses lowercase hex digits; None on anything else.
#[inline]
pub fn parse_hex(src: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &b in src {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u64;
    }
    Some(v)
}

impl Payloads {
    pub fn new(size: usize, binary: bool, rng: &mut Rng) -> Result<Self, String> {
        if size < SEQ_LEN {
            return Err(format!("--size must be at least {SEQ_LEN} bytes"));
        }
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
        let pattern = (0..size + OFFSETS)
            .map(|_| {
                let r = rng.next();
                if binary {
                    (r >> 24) as u8
                } else {
                    ALPHABET[(r >> 40) as usize % ALPHABET.len()]
                }
            })
            .collect();
        Ok(Payloads { size, pattern })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    #[inline]
    fn tail(&self, conn: usize, seq: u64) -> &[u8] {
        let off = (seq.wrapping_mul(7).wrapping_add(conn as u64 * 13) % OFFSETS as u64) as usize;
        &self.pattern[off..off + self.size - SEQ_LEN]
    }

    /// Writes the payload for (`conn`, `seq`) into `dst` (exactly `size` bytes).
    #[inline]
    pub fn fill(&self, conn: usize, seq: u64, dst: &mut [u8]) {
        put_hex(&mut dst[..SEQ_LEN], seq);
        dst[SEQ_LEN..].copy_from_slice(self.tail(conn, seq));
    }

    /// Checks that `got` is exactly the payload for (`conn`, `seq`).
    #[inline]
    pub fn check(&self, conn: usize, seq: u64, got: &[u8]) -> Result<(), String> {
        if got.len() != self.size {
            return Err(format!(
                "echo of seq {seq}: {} bytes, sent {}",
                got.len(),
                self.size
            ));
        }
        match parse_hex(&got[..SEQ_LEN]) {
            Some(s) if s == seq => {}
            Some(s) => return Err(format!("echo out of order: got seq {s}, expected {seq}")),
            None => return Err(format!("echo of seq {seq}: corrupt sequence field")),
        }
        if &got[SEQ_LEN..] != self.tail(conn, seq) {
            return Err(format!(
                "echo of seq {seq}: payload differs from what was sent"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_detection() {
        let mut rng = Rng::new(7);
        for binary in [false, true] {
            let p = Payloads::new(40, binary, &mut rng).unwrap();
            let mut buf = vec![0; 40];
            p.fill(3, 12345, &mut buf);
            if !binary {
                assert!(std::str::from_utf8(&buf).is_ok());
            }
            p.check(3, 12345, &buf).unwrap();
            assert!(
                p.check(3, 12346, &buf)
                    .unwrap_err()
                    .contains("out of order")
            );
            assert!(p.check(3, 12345, &buf[..39]).is_err());
            let mut bad = buf.clone();
            bad[30] ^= 1;
            assert!(p.check(3, 12345, &bad).unwrap_err().contains("differs"));
        }
        assert!(Payloads::new(8, false, &mut rng).is_err());
        assert_eq!(parse_hex(b"00ff"), Some(255));
        assert_eq!(parse_hex(b"0g"), None);
    }
}
