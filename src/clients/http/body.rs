//! Response bodies: by length, chunked (RFC 9112 §7.1), or until close.
//!
//! A [`Body`] takes bytes as they come and appends the payload to the
//! response's body, never past `max_body`; the only bytes it keeps of its
//! own are an unfinished chunk-size or trailer line (bounded).

use super::ClientError;

/// Longest chunk-size line, extensions included, before its CRLF.
const MAX_CHUNK_LINE: usize = 4096;

/// The body decoder of one response.
#[derive(Debug)]
pub(super) enum Body {
    /// `remaining` bytes of a Content-Length body.
    Length { remaining: u64 },
    /// A chunked body.
    Chunked(Chunked),
    /// Everything until the server closes.
    Close,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In a chunk-size line.
    Size,
    /// In chunk data, `u64` bytes to go.
    Data(u64),
    /// At the CRLF after chunk data.
    DataEnd,
    /// In the trailer section, after the last chunk.
    Trailers,
}

/// A chunked body's state: where it is, and the line being read.
#[derive(Debug)]
pub(super) struct Chunked {
    at: Chunk,
    line: Vec<u8>,
    /// Trailer bytes read so far, against `max_trailers`.
    trailers: usize,
    max_trailers: usize,
}

impl Body {
    /// A chunked body whose trailer section may be up to `max_trailers` bytes.
    pub(super) fn chunked(max_trailers: usize) -> Self {
        Body::Chunked(Chunked {
            at: Chunk::Size,
            line: Vec::new(),
            trailers: 0,
            max_trailers,
        })
    }

    /// Takes what it can of `input`, appending payload to `out` (never past
    /// `max_body` bytes in all). Returns the bytes used and whether the body
    /// is complete; a complete body leaves the rest of `input` alone.
    pub(super) fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max_body: usize,
    ) -> Result<(usize, bool), ClientError> {
        match self {
            Body::Length { remaining } => {
                let n = take(input.len(), *remaining);
                out.extend_from_slice(&input[..n]);
                *remaining -= n as u64;
                Ok((n, *remaining == 0))
            }
            Body::Close => {
                if input.len() > max_body - out.len() {
                    return Err(ClientError::TooLarge);
                }
                out.extend_from_slice(input);
                Ok((input.len(), false))
            }
            Body::Chunked(c) => c.feed(input, out, max_body),
        }
    }
}

/// `min(available, remaining)` without truncating either.
fn take(available: usize, remaining: u64) -> usize {
    usize::try_from(remaining).map_or(available, |r| r.min(available))
}

impl Chunked {
    fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max_body: usize,
    ) -> Result<(usize, bool), ClientError> {
        let mut used = 0;
        while used < input.len() {
            let rest = &input[used..];
            match self.at {
                Chunk::Data(remaining) => {
                    let n = take(rest.len(), remaining);
                    out.extend_from_slice(&rest[..n]);
                    used += n;
                    self.at = match remaining - n as u64 {
                        0 => Chunk::DataEnd,
                        r => Chunk::Data(r),
                    };
                }
                _ => {
                    let max = self.line_limit();
                    let (n, done) = read_line(&mut self.line, rest, max)?;
                    used += n;
                    if done && self.end_line(out.len(), max_body)? {
                        return Ok((used, true));
                    }
                }
            }
        }
        Ok((used, false))
    }

    /// Longest line allowed where the decoder is.
    fn line_limit(&self) -> usize {
        match self.at {
            Chunk::Size => MAX_CHUNK_LINE,
            // The CRLF after data: the line must be empty.
            Chunk::DataEnd | Chunk::Data(_) => 0,
            Chunk::Trailers => self.max_trailers.saturating_sub(self.trailers),
        }
    }

    /// Acts on the complete line in `self.line`; true at the end of the body.
    fn end_line(&mut self, body_len: usize, max_body: usize) -> Result<bool, ClientError> {
        let line = std::mem::take(&mut self.line);
        match self.at {
            Chunk::Size => {
                let size = chunk_size(&line)?;
                // Known as soon as the size is: refuse before buffering any of it.
                if size > (max_body - body_len) as u64 {
                    return Err(ClientError::TooLarge);
                }
                self.at = if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                };
            }
            Chunk::DataEnd => self.at = Chunk::Size,
            // §7.1.2: trailer fields are read and dropped; an empty line ends them.
            Chunk::Trailers if line.is_empty() => return Ok(true),
            Chunk::Trailers => self.trailers += line.len() + 2,
            Chunk::Data(_) => {}
        }
        self.line = line;
        self.line.clear();
        Ok(false)
    }
}

/// Appends `input` up to and including the first LF to `line`. Returns the
/// bytes used and whether the line is complete; a complete line is left in
/// `line` without its CRLF. Lines must end in CRLF and hold no other CR, no
/// LF, NUL or other control but HTAB; longer than `max` (CRLF not counted)
/// is an error.
fn read_line(line: &mut Vec<u8>, input: &[u8], max: usize) -> Result<(usize, bool), ClientError> {
    let lf = input.iter().position(|&b| b == b'\n');
    let part = &input[..lf.unwrap_or(input.len())];
    // The CR of the CRLF is held in `line` until the LF comes.
    if line.len() + part.len() > max + 1 {
        return Err(ClientError::BadChunk);
    }
    line.extend_from_slice(part);
    let Some(lf) = lf else {
        return Ok((input.len(), false));
    };
    // RFC 9112 §2.2: strict, a bare LF is an error (as on the server side).
    if line.pop() != Some(b'\r') {
        return Err(ClientError::BadChunk);
    }
    if line.iter().any(|&b| b.is_ascii_control() && b != b'\t') {
        return Err(ClientError::BadChunk);
    }
    Ok((lf + 1, true))
}

/// RFC 9112 §7.1: `chunk-size [ chunk-ext ]`, size in hex; extensions
/// (`BWS ";" …`) are ignored (§7.1.1).
fn chunk_size(line: &[u8]) -> Result<u64, ClientError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ClientError::BadChunk);
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let d = u64::from((b as char).to_digit(16).unwrap_or(0));
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(d))
            .ok_or(ClientError::BadChunk)?;
    }
    let rest = &line[digits..];
    let ext = rest.iter().position(|&b| b != b' ' && b != b'\t');
    match ext.map(|i| rest[i]) {
        None if rest.is_empty() => Ok(size),
        Some(b';') => Ok(size),
        // Whitespace with no extension after it, or anything else.
        _ => Err(ClientError::BadChunk),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` in pieces of `step` bytes; the body, or the error, and
    /// what was left over.
    fn decode(
        data: &[u8],
        step: usize,
        max_body: usize,
    ) -> Result<(Vec<u8>, Vec<u8>), ClientError> {
        let mut body = Body::chunked(64);
        let mut out = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let piece = &data[at..(at + step).min(data.len())];
            let (n, done) = body.feed(piece, &mut out, max_body)?;
            assert!(out.len() <= max_body);
            at += n;
            if done {
                return Ok((out, data[at..].to_vec()));
            }
            assert_eq!(n, piece.len(), "an unfinished body takes everything");
        }
        Err(ClientError::Closed {
            response_bytes_seen: true,
        })
    }

    fn every_split(data: &[u8], max_body: usize) -> Result<(Vec<u8>, Vec<u8>), ClientError> {
        let whole = decode(data, data.len().max(1), max_body);
        for step in 1..data.len() {
            assert_eq!(decode(data, step, max_body), whole, "step {step}");
        }
        whole
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let data =
            b"4;name=value;q=\"x;y\"\r\nWiki\r\n5 ;ext\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n\
0\r\nExpires: never\r\nX-T: 1\r\n\r\nNEXT";
        let (body, rest) = every_split(data, 1 << 20).unwrap();
        assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(rest, b"NEXT");
        assert_eq!(every_split(b"0\r\n\r\n", 0).unwrap().0, b"");
        assert_eq!(
            every_split(b"000a\r\n0123456789\r\n0\r\n\r\n", 10)
                .unwrap()
                .0,
            b"0123456789"
        );
    }

    #[test]
    fn bad_chunks() {
        use ClientError::*;
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"-1\r\n",
            b"0x5\r\n",
            b"4 \r\nWiki\r\n",
            b"4 x\r\nWiki\r\n",
            b"4\nWiki\r\n",
            b"4\r\nWiki\n0\r\n\r\n",
            b"4\r\nWikiX\r\n",
            b"4\r\nWiki\r\n0\r\n\n",
            b"4\r\nWiki\r\n0\r\nA: 1\n\r\n",
            b"4\r\nWi\rki\r\n",
            b"4;a\rb\r\nWiki\r\n",
            b"4;a\0\r\nWiki\r\n",
            b"10000000000000000\r\n",
        ] {
            assert_eq!(
                every_split(bad, 1 << 20),
                Err(BadChunk),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // u64::MAX is a valid size; the cap refuses it before any data.
        assert_eq!(every_split(b"ffffffffffffffff\r\n", 1 << 20), Err(TooLarge));
        assert_eq!(
            every_split(b"000000000000000000001\r\nx\r\n0\r\n\r\n", 9)
                .unwrap()
                .0,
            b"x"
        );
        // Size lines and trailers are bounded.
        let long_ext = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(MAX_CHUNK_LINE));
        assert_eq!(every_split(long_ext.as_bytes(), 9), Err(BadChunk));
        let ok_ext = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(MAX_CHUNK_LINE - 2));
        assert_eq!(every_split(ok_ext.as_bytes(), 9).unwrap().0, b"x");
        let trailers = format!("0\r\nX: {}\r\n\r\n", "t".repeat(64));
        assert_eq!(every_split(trailers.as_bytes(), 9), Err(BadChunk));
    }

    #[test]
    fn chunked_cap_is_exact() {
        let data = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(every_split(data, 5).unwrap().0, b"abcde");
        assert_eq!(every_split(data, 4), Err(ClientError::TooLarge));
    }

    #[test]
    fn length_and_close() {
        let mut b = Body::Length { remaining: 3 };
        let mut out = Vec::new();
        assert_eq!(b.feed(b"ab", &mut out, 3), Ok((2, false)));
        assert_eq!(b.feed(b"cde", &mut out, 3), Ok((1, true)));
        assert_eq!(out, b"abc");
        let mut c = Body::Close;
        let mut out = Vec::new();
        assert_eq!(c.feed(b"abc", &mut out, 4), Ok((3, false)));
        assert_eq!(c.feed(b"d", &mut out, 4), Ok((1, false)));
        assert_eq!(c.feed(b"e", &mut out, 4), Err(ClientError::TooLarge));
        assert_eq!(out, b"abcd");
    }
}
