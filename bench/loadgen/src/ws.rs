//! Client side of RFC 6455, just what a load tool needs: the opening
//! handshake, masked frames out, unmasked frames in.

use base64::Engine;

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A small, fast PRNG (xorshift64*) for mask keys and handshake keys.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn seeded() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng::new(t ^ ((std::process::id() as u64) << 32))
    }

    #[inline]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A fresh `Sec-WebSocket-Key` and the `Sec-WebSocket-Accept` it calls for.
pub fn new_key(rng: &mut Rng) -> (String, String) {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&rng.next().to_le_bytes());
    raw[8..].copy_from_slice(&rng.next().to_le_bytes());
    let key = base64::engine::general_purpose::STANDARD.encode(raw);
    let accept = accept_for(&key);
    (key, accept)
}

pub fn accept_for(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

/// The opening handshake request.
pub fn request(host: &str, path: &str, key: &str, subprotocol: Option<&str>) -> Vec<u8> {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(p) = subprotocol {
        r.push_str("Sec-WebSocket-Protocol: ");
        r.push_str(p);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// Checks a handshake response at the start of `buf`. `Ok(None)`: the head
/// is not complete yet; `Ok(Some(n))`: a valid `101` head of `n` bytes.
pub fn check_response(buf: &[u8], accept: &str) -> Result<Option<usize>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > 16 * 1024 {
            return Err("handshake response head over 16 KiB".into());
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "handshake response not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 101") {
        return Err(format!("handshake refused: {status:?}"));
    }
    let mut got = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("sec-websocket-accept")
        {
            got = Some(value.trim());
        }
    }
    match got {
        Some(v) if v == accept => Ok(Some(end + 4)),
        Some(v) => Err(format!("wrong Sec-WebSocket-Accept {v:?}")),
        None => Err("no Sec-WebSocket-Accept".into()),
    }
}

/// XORs `data` with the 4-byte mask `key`, as if `data` started at offset 0.
#[inline]
pub fn mask(data: &mut [u8], key: [u8; 4]) {
    let k4 = u32::from_ne_bytes(key);
    let k8 = (k4 as u64) | ((k4 as u64) << 32);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes(c.try_into().unwrap()) ^ k8;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Appends one masked, final frame of `len` payload bytes to `out`; `fill`
/// writes the (unmasked) payload into the slice it is given.
#[inline]
pub fn encode(out: &mut Vec<u8>, opcode: u8, len: usize, key: u32, fill: impl FnOnce(&mut [u8])) {
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let key = key.to_ne_bytes();
    out.extend_from_slice(&key);
    let start = out.len();
    out.resize(start + len, 0);
    let payload = &mut out[start..];
    fill(payload);
    mask(payload, key);
}

/// A frame header from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: u8,
    pub header_len: usize,
    pub payload_len: usize,
}

/// Parses a server frame header at the start of `buf`. `Ok(None)`: need
/// more bytes.
pub fn parse_header(buf: &[u8]) -> Result<Option<Header>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(format!("reserved bits set in frame byte {b0:#04x}"));
    }
    if b1 & 0x80 != 0 {
        return Err("masked frame from the server".into());
    }
    let (header_len, payload_len) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (4, u16::from_be_bytes([buf[2], buf[3]]) as usize)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let n = u64::from_be_bytes(buf[2..10].try_into().unwrap());
            if n > 1 << 31 {
                return Err(format!("frame of {n} bytes"));
            }
            (10, n as usize)
        }
        n => (2, n as usize),
    };
    let opcode = b0 & 0x0F;
    if !matches!(
        opcode,
        OP_CONT | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(format!("unknown opcode {opcode}"));
    }
    Ok(Some(Header {
        fin: b0 & 0x80 != 0,
        opcode,
        header_len,
        payload_len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_matches_rfc_example() {
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn encode_masks_and_sizes() {
        for len in [0usize, 5, 125, 126, 1000, 65535, 65536, 70000] {
            let mut out = Vec::new();
            encode(&mut out, OP_BINARY, len, 0xA1B2C3D4, |p| {
                for (i, b) in p.iter_mut().enumerate() {
                    *b = i as u8;
                }
            });
            assert_eq!(out[0], 0x82);
            assert!(out[1] & 0x80 != 0);
            let (hl, n) = match out[1] & 0x7F {
                126 => (4, u16::from_be_bytes([out[2], out[3]]) as usize),
                127 => (
                    10,
                    u64::from_be_bytes(out[2..10].try_into().unwrap()) as usize,
                ),
                n => (2, n as usize),
            };
            assert_eq!(n, len);
            let key: [u8; 4] = out[hl..hl + 4].try_into().unwrap();
            let body = &out[hl + 4..];
            assert_eq!(body.len(), len);
            for (i, b) in body.iter().enumerate() {
                assert_eq!(b ^ key[i % 4], i as u8);
            }
        }
    }

    #[test]
    fn parses_server_headers() {
        assert_eq!(parse_header(&[0x81]).unwrap(), None);
        let h = parse_header(&[0x81, 5, b'h']).unwrap().unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.header_len, h.payload_len),
            (true, 1, 2, 5)
        );
        let h = parse_header(&[0x02, 126, 1, 0]).unwrap().unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.header_len, h.payload_len),
            (false, 2, 4, 256)
        );
        assert!(parse_header(&[0x81, 0x85]).is_err());
        assert!(parse_header(&[0xC1, 0x05]).is_err());
        assert!(parse_header(&[0x83, 0x00]).is_err());
    }

    #[test]
    fn checks_handshake_response() {
        let acc = accept_for("dGhlIHNhbXBsZSBub25jZQ==");
        let ok = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             sec-websocket-accept: {acc}\r\n\r\n\x01\x00"
        );
        let n = check_response(ok.as_bytes(), &acc).unwrap().unwrap();
        assert_eq!(&ok.as_bytes()[n..], b"\x01\x00");
        assert_eq!(check_response(&ok.as_bytes()[..20], &acc).unwrap(), None);
        assert!(check_response(b"HTTP/1.1 404 Not Found\r\n\r\n", &acc).is_err());
        let wrong = ok.replace(&acc, "AAAA");
        assert!(check_response(wrong.as_bytes(), &acc).is_err());
    }
}
