//! The per-message transform of RFC 7692 §7.2 over a DEFLATE codec
//! (`zlib-rs`): compress with a sync flush and drop its tail, put the tail
//! back and inflate.

use crate::ws::utf8::Utf8Validator;
use std::fmt;
use zlib_rs::{Deflate, DeflateFlush, Inflate, InflateFlush, Status};

/// §7.2.1 / §7.2.2: the empty stored block that ends a sync flush; the
/// sender strips it, the receiver puts it back.
pub(crate) const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Why a compressed message could not be decompressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflateError {
    /// The decompressed message outgrew the limit (close 1009).
    TooBig,
    /// The payload is not valid DEFLATE data (close 1007).
    Corrupt,
    /// A text message that is not UTF-8 once decompressed (close 1007).
    Utf8,
}

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InflateError::TooBig => "decompressed message too big",
            InflateError::Corrupt => "invalid DEFLATE data",
            InflateError::Utf8 => "invalid UTF-8 in decompressed text message",
        })
    }
}

impl std::error::Error for InflateError {}

/// A DEFLATE decompressor for one direction of one connection (§7.2.2).
pub struct Inflater {
    z: Inflate,
    /// A block with BFINAL set ended the stream (§7.2.3.4): whatever
    /// follows in the message is ignored, and the next message starts a
    /// new stream.
    ended: bool,
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater::new()
    }
}

impl Inflater {
    /// A raw DEFLATE decompressor with a 32 KiB window, which decodes
    /// streams made with any smaller window too.
    pub fn new() -> Self {
        Inflater {
            z: Inflate::new(false, 15),
            ended: false,
        }
    }

    /// Forgets the context: the next message starts from an empty window.
    pub fn reset(&mut self) {
        self.z.reset(false);
        self.ended = false;
    }

    /// Decompresses one frame's payload, appending to `out`. On the last
    /// frame (`fin`) the four octets §7.2.2 removed are put back first.
    /// `out` never grows past `limit` (+1 byte, to tell): the check runs
    /// as the output grows, so a small bomb costs no more than the limit.
    /// Text is validated as it is produced when `utf8` is given.
    pub fn inflate(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        limit: usize,
        mut utf8: Option<&mut Utf8Validator>,
    ) -> Result<(), InflateError> {
        let tail: &[u8] = if fin { &TAIL } else { &[] };
        for mut rest in [input, tail] {
            while !self.ended {
                let len = out.len();
                if len > limit {
                    return Err(InflateError::TooBig);
                }
                let room = (rest.len().saturating_mul(4))
                    .clamp(4096, 256 * 1024)
                    .min(limit.saturating_add(1) - len);
                out.resize(len + room, 0);
                let (in0, out0) = (self.z.total_in(), self.z.total_out());
                let status = self
                    .z
                    .decompress(rest, &mut out[len..], InflateFlush::NoFlush);
                let consumed = (self.z.total_in() - in0) as usize;
                let produced = (self.z.total_out() - out0) as usize;
                out.truncate(len + produced);
                rest = &rest[consumed..];
                match status {
                    Ok(Status::StreamEnd) => self.ended = true,
                    Ok(Status::Ok | Status::BufError) => {}
                    Err(_) => return Err(InflateError::Corrupt),
                }
                if out.len() > limit {
                    return Err(InflateError::TooBig);
                }
                if let Some(v) = utf8.as_deref_mut() {
                    v.feed(&out[len..]).map_err(|_| InflateError::Utf8)?;
                }
                // Room left over means the input is used up (or waits
                // for more); a full buffer may hide more output.
                if produced < room {
                    break;
                }
            }
        }
        if fin && utf8.is_some_and(|v| !v.is_complete()) {
            return Err(InflateError::Utf8);
        }
        Ok(())
    }

    /// Whether the stream ended with a final block: the context is gone.
    pub(crate) fn needs_reset(&self) -> bool {
        self.ended
    }
}

/// Memory level of the compressor (zlib's `memLevel`): 8, the default,
/// keeps blocks long enough for a good ratio.
const MEM_LEVEL: i32 = 8;

/// A DEFLATE compressor for messages (§7.2.1).
pub struct Compressor {
    z: Deflate,
}

impl Compressor {
    /// A raw DEFLATE compressor at `level` (1–9) whose back-references stay
    /// within `2^window_bits` bytes. zlib has no 256-byte window for raw
    /// streams and turns 8 into 9; its matches reach at most the window
    /// less 262 bytes (`MAX_DIST`), 250 with 9 bits, so the output still
    /// honours a limit of 8 (a unit test checks this).
    pub fn new(level: u8, window_bits: u8) -> Self {
        let config = zlib_rs::DeflateConfig {
            level: i32::from(level.clamp(1, 9)),
            window_bits: -i32::from(window_bits.clamp(9, 15)),
            mem_level: MEM_LEVEL,
            ..zlib_rs::DeflateConfig::default()
        };
        Compressor {
            z: Deflate::new_with_config(config),
        }
    }

    /// Compresses a whole message into `buf` and returns how many bytes of
    /// it hold the result: §7.2.1's DEFLATE data flushed with an empty
    /// stored block, whose four octets `00 00 ff ff` are left out. `buf`
    /// is scratch space whose length only grows, so steady use neither
    /// allocates nor zero-fills. `input` must not be empty (send an empty
    /// message uncompressed).
    pub fn compress(&mut self, input: &[u8], buf: &mut Vec<u8>) -> usize {
        debug_assert!(!input.is_empty());
        let mut rest = input;
        let mut n = 0;
        loop {
            // Stored blocks cost 5 bytes per 64 KiB; flushing adds a few.
            let want = n + rest.len() + rest.len() / 1024 + 64;
            if buf.len() < want {
                buf.resize(want, 0);
            }
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let room = buf.len() - n;
            let result = self
                .z
                .compress(rest, &mut buf[n..], DeflateFlush::SyncFlush);
            let consumed = (self.z.total_in() - in0) as usize;
            let produced = (self.z.total_out() - out0) as usize;
            rest = &rest[consumed..];
            n += produced;
            // Only a misuse of the stream can fail; none happens here.
            debug_assert!(result.is_ok(), "deflate: {result:?}");
            if rest.is_empty() && produced < room {
                break;
            }
            if result.is_err() {
                break;
            }
        }
        // §7.2.1 step 3. A sync flush always ends with the empty stored
        // block, so the data "ends with an empty DEFLATE block with no
        // compression" and step 2 adds nothing.
        debug_assert!(buf[..n].ends_with(&TAIL), "sync flush without its tail");
        if buf[..n].ends_with(&TAIL) {
            n -= TAIL.len();
        }
        n
    }

    /// Starts a fresh context (no context takeover, §7.1.1.1).
    pub fn reset(&mut self) {
        self.z.reset();
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn inflate_all(inf: &mut Inflater, frames: &[&[u8]]) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            inf.inflate(f, i + 1 == frames.len(), &mut out, 1 << 20, None)?;
        }
        Ok(out)
    }

    fn compress(c: &mut Compressor, msg: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        let n = c.compress(msg, &mut buf);
        buf.truncate(n);
        buf
    }

    // RFC 7692 §7.2.3.1: "Hello" in one compressed DEFLATE block, as one
    // frame and as two fragments.
    const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

    #[test]
    fn rfc_7_2_3_1_one_block_whole_and_fragmented() {
        let mut inf = Inflater::new();
        assert_eq!(inflate_all(&mut inf, &[&HELLO]).unwrap(), b"Hello");
        inf.reset();
        let got = inflate_all(&mut inf, &[&[0xf2, 0x48, 0xcd], &[0xc9, 0xc9, 0x07, 0x00]]);
        assert_eq!(got.unwrap(), b"Hello");
        // No limit at all does not overflow.
        let mut out = Vec::new();
        Inflater::new()
            .inflate(&HELLO, true, &mut out, usize::MAX, None)
            .unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn rfc_7_2_3_1_compressor_output() {
        for level in 1..=9 {
            let mut c = Compressor::new(level, 15);
            assert_eq!(compress(&mut c, b"Hello"), HELLO, "level {level}");
        }
    }

    // §7.2.3.2: the second "Hello" refers back into the first message.
    #[test]
    fn rfc_7_2_3_2_sharing_the_window() {
        let second = [0xf2, 0x00, 0x11, 0x00, 0x00];
        let mut inf = Inflater::new();
        assert_eq!(inflate_all(&mut inf, &[&HELLO]).unwrap(), b"Hello");
        assert_eq!(inflate_all(&mut inf, &[&second]).unwrap(), b"Hello");
        // Without the first message's context the reference is invalid.
        let mut fresh = Inflater::new();
        assert_eq!(
            inflate_all(&mut fresh, &[&second]),
            Err(InflateError::Corrupt)
        );
        // Our compressor with context takeover refers back too, and
        // without it (reset) starts over.
        let mut c = Compressor::new(6, 15);
        assert_eq!(compress(&mut c, b"Hello"), HELLO);
        let taken_over = compress(&mut c, b"Hello");
        assert!(taken_over.len() < HELLO.len(), "{taken_over:x?}");
        let mut inf = Inflater::new();
        assert_eq!(inflate_all(&mut inf, &[&HELLO]).unwrap(), b"Hello");
        assert_eq!(inflate_all(&mut inf, &[&taken_over]).unwrap(), b"Hello");
        c.reset();
        assert_eq!(compress(&mut c, b"Hello"), HELLO);
    }

    // §7.2.3.3: a stored ("no compression") block.
    #[test]
    fn rfc_7_2_3_3_no_compression_block() {
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(
            inflate_all(&mut Inflater::new(), &[&stored]).unwrap(),
            b"Hello"
        );
    }

    // §7.2.3.4: a block with BFINAL set; the appended tail is ignored and
    // the next message starts a new stream.
    #[test]
    fn rfc_7_2_3_4_bfinal() {
        let last = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        let mut inf = Inflater::new();
        assert_eq!(inflate_all(&mut inf, &[&last]).unwrap(), b"Hello");
        assert!(inf.needs_reset());
        inf.reset();
        assert_eq!(inflate_all(&mut inf, &[&HELLO]).unwrap(), b"Hello");
    }

    // §7.2.3.5: two DEFLATE blocks in one message.
    #[test]
    fn rfc_7_2_3_5_two_blocks() {
        let two = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        assert_eq!(
            inflate_all(&mut Inflater::new(), &[&two]).unwrap(),
            b"Hello"
        );
    }

    // §7.2.3.6: an empty last fragment is the empty stored block, 0x00.
    #[test]
    fn rfc_7_2_3_6_empty_fragment() {
        let mut first = HELLO.to_vec();
        first.extend_from_slice(&TAIL);
        let got = inflate_all(&mut Inflater::new(), &[&first, &[0x00]]);
        assert_eq!(got.unwrap(), b"Hello");
        // An empty message is the same block alone.
        assert_eq!(inflate_all(&mut Inflater::new(), &[&[0x00]]).unwrap(), b"");
    }

    #[test]
    fn corrupt_data() {
        // BTYPE 11 is reserved (RFC 1951 §3.2.3).
        let got = inflate_all(&mut Inflater::new(), &[&[0xff, 0xff, 0xff]]);
        assert_eq!(got, Err(InflateError::Corrupt));
        // A stored block whose NLEN is not the complement of LEN.
        let got = inflate_all(&mut Inflater::new(), &[&[0x00, 0x05, 0x00, 0x00, 0x00]]);
        assert_eq!(got, Err(InflateError::Corrupt));
    }

    pub(crate) fn sample(len: usize, seed: u32) -> Vec<u8> {
        // Compressible text-like bytes mixed with pseudo-random runs.
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        let words: [&[u8]; 6] = [
            b"sprocket ",
            b"deflate ",
            b"window ",
            b"{\"id\":",
            b"42,",
            b"\n",
        ];
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if x.is_multiple_of(7) {
                out.push((x >> 8) as u8);
            } else {
                out.extend_from_slice(words[(x % 6) as usize]);
            }
        }
        out.truncate(len);
        out
    }

    #[test]
    fn round_trips_at_every_level_window_and_split() {
        for bits in 8..=15 {
            for level in [1, 6, 9] {
                let mut c = Compressor::new(level, bits);
                let mut inf = Inflater::new();
                for (i, len) in [1usize, 100, 5000, 70_000].into_iter().enumerate() {
                    let msg = sample(len, bits as u32 * 100 + i as u32);
                    let packed = compress(&mut c, &msg);
                    assert!(!packed.ends_with(&TAIL));
                    // Cut the payload into fragments at arbitrary points.
                    let cut = [packed.len() / 3, packed.len() / 2];
                    let frames = [
                        &packed[..cut[0]],
                        &packed[cut[0]..cut[1]],
                        &packed[cut[1]..],
                    ];
                    let got = inflate_all(&mut inf, &frames).unwrap();
                    assert!(got == msg, "bits {bits} level {level} len {len}");
                }
            }
        }
    }

    /// A plain RFC 1951 decoder for tests: decodes `data` (a sync-flushed
    /// stream, tail included) and reports the longest back-reference
    /// distance it met, which zlib's inflater does not tell.
    mod rfc1951 {
        struct Bits<'a> {
            data: &'a [u8],
            pos: usize,
        }

        impl Bits<'_> {
            fn bits(&mut self, n: u32) -> Option<u32> {
                let mut v = 0;
                for i in 0..n {
                    let byte = *self.data.get(self.pos / 8)?;
                    v |= u32::from((byte >> (self.pos % 8)) & 1) << i;
                    self.pos += 1;
                }
                Some(v)
            }

            fn decode(&mut self, h: &Huffman) -> Option<usize> {
                // Canonical codes are read most significant bit first.
                let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
                for len in 1..16 {
                    code |= self.bits(1)? as i32;
                    let count = i32::from(h.counts[len]);
                    if code - first < count {
                        return Some(h.symbols[(index + code - first) as usize]);
                    }
                    index += count;
                    first = (first + count) << 1;
                    code <<= 1;
                }
                None
            }
        }

        struct Huffman {
            counts: [u16; 16],
            symbols: Vec<usize>,
        }

        fn huffman(lengths: &[u8]) -> Huffman {
            let mut counts = [0u16; 16];
            for &l in lengths {
                counts[usize::from(l)] += 1;
            }
            counts[0] = 0;
            let mut symbols = Vec::new();
            for len in 1..16 {
                for (sym, &l) in lengths.iter().enumerate() {
                    if usize::from(l) == len {
                        symbols.push(sym);
                    }
                }
            }
            Huffman { counts, symbols }
        }

        const LEN_BASE: [usize; 29] = [
            3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
            115, 131, 163, 195, 227, 258,
        ];
        const LEN_EXTRA: [u32; 29] = [
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
        ];
        const DIST_BASE: [usize; 30] = [
            1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
            1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
        ];
        const DIST_EXTRA: [u32; 30] = [
            0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12,
            12, 13, 13,
        ];

        /// (output, longest distance), or None if the data is not DEFLATE.
        pub fn decode(data: &[u8]) -> Option<(Vec<u8>, usize)> {
            let mut b = Bits { data, pos: 0 };
            let (mut out, mut max_dist) = (Vec::new(), 0);
            loop {
                let Some(last) = b.bits(1) else {
                    return Some((out, max_dist));
                };
                match b.bits(2)? {
                    0 => {
                        b.pos = b.pos.next_multiple_of(8);
                        let len = b.bits(16)? as usize;
                        if b.bits(16)? as usize != !len & 0xffff {
                            return None;
                        }
                        for _ in 0..len {
                            out.push(b.bits(8)? as u8);
                        }
                    }
                    kind @ (1 | 2) => {
                        let (lit, dist) = if kind == 1 {
                            let mut l = [8u8; 288];
                            l[144..256].fill(9);
                            l[256..280].fill(7);
                            (huffman(&l), huffman(&[5u8; 30]))
                        } else {
                            dynamic_tables(&mut b)?
                        };
                        loop {
                            let sym = b.decode(&lit)?;
                            if sym < 256 {
                                out.push(sym as u8);
                                continue;
                            }
                            if sym == 256 {
                                break;
                            }
                            let i = sym - 257;
                            let len = LEN_BASE.get(i)? + b.bits(LEN_EXTRA[i])? as usize;
                            let d = b.decode(&dist)?;
                            let d = DIST_BASE.get(d)? + b.bits(DIST_EXTRA[d])? as usize;
                            if d > out.len() {
                                return None;
                            }
                            max_dist = max_dist.max(d);
                            for _ in 0..len {
                                out.push(out[out.len() - d]);
                            }
                        }
                    }
                    _ => return None,
                }
                if last == 1 {
                    return Some((out, max_dist));
                }
            }
        }

        fn dynamic_tables(b: &mut Bits<'_>) -> Option<(Huffman, Huffman)> {
            const ORDER: [usize; 19] = [
                16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
            ];
            let nlen = b.bits(5)? as usize + 257;
            let ndist = b.bits(5)? as usize + 1;
            let ncode = b.bits(4)? as usize + 4;
            let mut code_lengths = [0u8; 19];
            for &i in &ORDER[..ncode] {
                code_lengths[i] = b.bits(3)? as u8;
            }
            let codes = huffman(&code_lengths);
            let mut lengths = Vec::new();
            while lengths.len() < nlen + ndist {
                let (value, repeat) = match b.decode(&codes)? {
                    sym @ 0..=15 => (sym as u8, 1),
                    16 => (*lengths.last()?, 3 + b.bits(2)?),
                    17 => (0, 3 + b.bits(3)?),
                    _ => (0, 11 + b.bits(7)?),
                };
                lengths.extend(std::iter::repeat_n(value, repeat as usize));
            }
            Some((
                huffman(&lengths[..nlen]),
                huffman(&lengths[nlen..nlen + ndist]),
            ))
        }
    }

    #[test]
    fn test_decoder_agrees_with_zlib() {
        let msg = sample(50_000, 5);
        for level in [1, 6, 9] {
            let mut packed = compress(&mut Compressor::new(level, 15), &msg);
            packed.extend_from_slice(&TAIL);
            let (out, max_dist) = rfc1951::decode(&packed).unwrap();
            assert!(out == msg, "level {level}");
            assert!(max_dist > 256, "level {level}: {max_dist}");
        }
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, b'H', b'e', b'l', b'l', b'o', 0x00,
        ];
        for rfc in [&HELLO[..], &stored] {
            let mut data = rfc.to_vec();
            data.extend_from_slice(&TAIL);
            assert_eq!(rfc1951::decode(&data).unwrap().0, b"Hello");
        }
    }

    #[test]
    fn output_honours_the_negotiated_window_even_at_8_bits() {
        // Long repeats at every distance up to 40 KiB.
        let mut msg = sample(40_000, 9);
        msg.extend_from_within(..40_000);
        for bits in 8..=15 {
            for level in 1..=9 {
                let mut packed = compress(&mut Compressor::new(level, bits), &msg);
                packed.extend_from_slice(&TAIL);
                let (out, max_dist) = rfc1951::decode(&packed).unwrap();
                assert!(out == msg, "bits {bits} level {level}");
                assert!(
                    max_dist <= 1 << bits,
                    "bits {bits} level {level}: distance {max_dist}"
                );
            }
        }
    }

    #[test]
    fn bomb_is_stopped_at_the_limit_while_inflating() {
        let zeros = vec![0u8; 16 << 20];
        let packed = compress(&mut Compressor::new(9, 15), &zeros);
        assert!(packed.len() < 32 * 1024, "{}", packed.len());
        let limit = 1 << 20;
        let mut out = Vec::new();
        let got = Inflater::new().inflate(&packed, true, &mut out, limit, None);
        assert_eq!(got, Err(InflateError::TooBig));
        assert!(out.len() <= limit + 1, "{}", out.len());
        assert!(out.capacity() <= 2 * limit + 4096, "{}", out.capacity());
        // The same message fits a limit of its own size exactly.
        let mut out = Vec::new();
        let got = Inflater::new().inflate(&packed, true, &mut out, zeros.len(), None);
        assert_eq!(got, Ok(()));
        assert_eq!(out.len(), zeros.len());
        // Across fragments the limit covers the whole message.
        let mut inf = Inflater::new();
        let mut out = Vec::new();
        let half = packed.len() / 2;
        let first = inf.inflate(&packed[..half], false, &mut out, limit, None);
        let rest = first.and_then(|()| inf.inflate(&packed[half..], true, &mut out, limit, None));
        assert_eq!(rest, Err(InflateError::TooBig));
    }

    #[test]
    fn utf8_is_checked_on_the_decompressed_text() {
        let mut c = Compressor::new(6, 15);
        let good = "κόσμε, κόσμε, κόσμε".as_bytes();
        let mut v = Utf8Validator::new();
        let mut out = Vec::new();
        let packed = compress(&mut c, good);
        // Split inside a character: still fine.
        let mut inf = Inflater::new();
        inf.inflate(&packed[..3], false, &mut out, 1000, Some(&mut v))
            .unwrap();
        inf.inflate(&packed[3..], true, &mut out, 1000, Some(&mut v))
            .unwrap();
        assert_eq!(out, good);
        // A surrogate fails; a truncated character fails at the end.
        for bad in [&b"ab\xed\xa0\x80cd"[..], b"abc\xce"] {
            let packed = compress(&mut Compressor::new(6, 15), bad);
            let mut v = Utf8Validator::new();
            let mut out = Vec::new();
            let got = Inflater::new().inflate(&packed, true, &mut out, 1000, Some(&mut v));
            assert_eq!(got, Err(InflateError::Utf8), "{bad:x?}");
        }
    }
}
