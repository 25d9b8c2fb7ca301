//! The PROXY protocol (HAProxy's "PROXY protocol" specification, versions 1
//! and 2): a header a proxy writes on a fresh TCP connection before any of
//! the client's bytes, naming the client's address.
//!
//! [`decode`] takes the first bytes of a connection and returns the header
//! and how many bytes it used, `None` while more bytes are needed, or an
//! error that names what is wrong. It never asks for more than
//! [`MAX_HEADER`] bytes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest header accepted (version 2 with its TLVs); longer is an
/// error. A version 1 line is at most 107 bytes by the specification.
pub const MAX_HEADER: usize = 4096;

/// Spec §2.1: a version 1 line is at most 107 bytes with its CRLF.
const V1_MAX: usize = 107;

/// Spec §2.2: the 12-byte signature that opens a version 2 header.
const V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// What a PROXY header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The proxy speaks for a client: its address and the address it
    /// connected to.
    Proxied {
        /// The client.
        source: SocketAddr,
        /// Where the client connected (the proxy's listener).
        destination: SocketAddr,
    },
    /// Version 2 `LOCAL`: the proxy's own connection (a health check);
    /// the socket's peer address stands.
    Local,
    /// A client whose address the proxy cannot tell (v1 `UNKNOWN`, v2
    /// `AF_UNSPEC` or `AF_UNIX`); the socket's peer address stands.
    Unknown,
}

impl ProxyHeader {
    /// The client address the header names, if any.
    pub fn source(&self) -> Option<SocketAddr> {
        match self {
            ProxyHeader::Proxied { source, .. } => Some(*source),
            _ => None,
        }
    }
}

/// Why a PROXY header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The connection starts with neither `PROXY ` nor the v2 signature.
    NotProxyProtocol,
    /// A v1 line without its CRLF within 107 bytes.
    V1TooLong,
    /// A v1 protocol other than `TCP4`, `TCP6` or `UNKNOWN`.
    V1Protocol,
    /// A v1 line whose fields are not `src dst sport dport`, or whose
    /// addresses do not match the protocol.
    V1Fields,
    /// A v2 version nibble other than 2.
    V2Version,
    /// A v2 command other than `LOCAL` (0) or `PROXY` (1).
    V2Command,
    /// A v2 address family or transport that is not known, or a datagram
    /// transport (this is a TCP server).
    V2Family,
    /// A v2 length too short for its address family.
    V2Length,
    /// A v2 header longer than [`MAX_HEADER`].
    V2TooLong,
    /// A v2 TLV that runs past the end of the header.
    V2Tlv,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderError::NotProxyProtocol => "not a PROXY protocol header",
            HeaderError::V1TooLong => "PROXY v1 line without CRLF in 107 bytes",
            HeaderError::V1Protocol => "PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN",
            HeaderError::V1Fields => "PROXY v1 addresses or ports malformed",
            HeaderError::V2Version => "PROXY v2 version is not 2",
            HeaderError::V2Command => "PROXY v2 command is not LOCAL or PROXY",
            HeaderError::V2Family => "PROXY v2 address family or transport not supported",
            HeaderError::V2Length => "PROXY v2 length too short for its addresses",
            HeaderError::V2TooLong => "PROXY v2 header over 4096 bytes",
            HeaderError::V2Tlv => "PROXY v2 TLV runs past the header",
        })
    }
}

impl std::error::Error for HeaderError {}

/// Decodes the PROXY header at the start of `buf`: `Ok(None)` while it is
/// incomplete (nothing is consumed), `Ok(Some((header, used)))` once whole.
pub fn decode(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, HeaderError> {
    if is_prefix(buf, &V2_SIG) {
        if buf.len() < V2_SIG.len() {
            return Ok(None);
        }
        return decode_v2(buf);
    }
    if is_prefix(buf, b"PROXY ") {
        if buf.len() < 6 {
            return Ok(None);
        }
        return decode_v1(buf);
    }
    Err(HeaderError::NotProxyProtocol)
}

/// Whether `buf` and `sig` agree on their common length.
fn is_prefix(buf: &[u8], sig: &[u8]) -> bool {
    let n = buf.len().min(sig.len());
    buf[..n] == sig[..n]
}

/// Spec §2.1: `PROXY TCP4 src dst sport dport\r\n`, single spaces.
fn decode_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, HeaderError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(cr) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(HeaderError::V1TooLong)
        } else {
            Ok(None)
        };
    };
    let used = cr + 2;
    let line = std::str::from_utf8(&buf[6..cr]).map_err(|_| HeaderError::V1Fields)?;
    let mut fields = line.split(' ');
    let proto = fields.next().unwrap_or("");
    let v6 = match proto {
        "TCP4" => false,
        "TCP6" => true,
        // §2.1: after UNKNOWN the receiver ignores the rest of the line.
        "UNKNOWN" => return Ok(Some((ProxyHeader::Unknown, used))),
        _ => return Err(HeaderError::V1Protocol),
    };
    let parts: Vec<&str> = fields.collect();
    let [src, dst, sport, dport] = parts[..] else {
        return Err(HeaderError::V1Fields);
    };
    let ip = |s: &str| -> Result<IpAddr, HeaderError> {
        let ip = if v6 {
            s.parse::<Ipv6Addr>().map(IpAddr::V6)
        } else {
            s.parse::<Ipv4Addr>().map(IpAddr::V4)
        };
        ip.map_err(|_| HeaderError::V1Fields)
    };
    let port = |s: &str| -> Result<u16, HeaderError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HeaderError::V1Fields);
        }
        s.parse().map_err(|_| HeaderError::V1Fields)
    };
    let header = ProxyHeader::Proxied {
        source: SocketAddr::new(ip(src)?, port(sport)?),
        destination: SocketAddr::new(ip(dst)?, port(dport)?),
    };
    Ok(Some((header, used)))
}

/// Spec §2.2: signature, version/command, family/transport, length, the
/// address block, then TLVs to the end of `length`.
fn decode_v2(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, HeaderError> {
    let Some(fixed) = buf.get(..16) else {
        // Check what is there already, so garbage fails early.
        if let Some(&vc) = buf.get(12) {
            check_version_command(vc)?;
        }
        return Ok(None);
    };
    let command = check_version_command(fixed[12])?;
    let (family, transport) = (fixed[13] >> 4, fixed[13] & 0x0f);
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let used = 16 + len;
    if used > MAX_HEADER {
        return Err(HeaderError::V2TooLong);
    }
    let addr_len = match (family, transport) {
        (0, 0) => 0,
        (1, 1) => 12,
        (2, 1) => 36,
        (3, 1) => 216,
        _ if command == 0 => 0,
        _ => return Err(HeaderError::V2Family),
    };
    if len < addr_len {
        return Err(HeaderError::V2Length);
    }
    let Some(body) = buf.get(16..used) else {
        return Ok(None);
    };
    check_tlvs(&body[addr_len..])?;
    // §2.2: with LOCAL the receiver uses the real connection endpoints and
    // ignores the address block.
    if command == 0 {
        return Ok(Some((ProxyHeader::Local, used)));
    }
    let header = match family {
        1 => {
            let a = |i: usize| Ipv4Addr::new(body[i], body[i + 1], body[i + 2], body[i + 3]);
            let p = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]);
            ProxyHeader::Proxied {
                source: SocketAddr::new(IpAddr::V4(a(0)), p(8)),
                destination: SocketAddr::new(IpAddr::V4(a(4)), p(10)),
            }
        }
        2 => {
            let a = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&body[i..i + 16]);
                Ipv6Addr::from(o)
            };
            let p = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]);
            ProxyHeader::Proxied {
                source: SocketAddr::new(IpAddr::V6(a(0)), p(32)),
                destination: SocketAddr::new(IpAddr::V6(a(16)), p(34)),
            }
        }
        // AF_UNSPEC and AF_UNIX carry no IP address.
        _ => ProxyHeader::Unknown,
    };
    Ok(Some((header, used)))
}

/// The version must be 2; returns the command (0 LOCAL, 1 PROXY).
fn check_version_command(byte: u8) -> Result<u8, HeaderError> {
    if byte >> 4 != 2 {
        return Err(HeaderError::V2Version);
    }
    match byte & 0x0f {
        c @ (0 | 1) => Ok(c),
        _ => Err(HeaderError::V2Command),
    }
}

/// Spec §2.2.7: TLVs are type (1), length (2, big-endian), value. They are
/// skipped, but each must end within the header.
fn check_tlvs(mut rest: &[u8]) -> Result<(), HeaderError> {
    while !rest.is_empty() {
        let [_, hi, lo, ..] = *rest else {
            return Err(HeaderError::V2Tlv);
        };
        let end = 3 + usize::from(u16::from_be_bytes([hi, lo]));
        rest = rest.get(end..).ok_or(HeaderError::V2Tlv)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, fam: u8, addrs: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut out = V2_SIG.to_vec();
        out.push(0x20 | command);
        out.push(fam);
        let len = (addrs.len() + tlvs.len()) as u16;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(addrs);
        out.extend_from_slice(tlvs);
        out
    }

    #[test]
    fn v1_lines() {
        let line = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 8443\r\nGET /";
        let (h, used) = decode(line).unwrap().unwrap();
        assert_eq!(used, line.len() - 5);
        assert_eq!(h.source(), Some("203.0.113.7:5555".parse().unwrap()));
        let six = b"PROXY TCP6 2001:db8::1 ::1 4711 443\r\n";
        let (h, _) = decode(six).unwrap().unwrap();
        assert_eq!(h.source(), Some("[2001:db8::1]:4711".parse().unwrap()));
        assert_eq!(
            decode(b"PROXY UNKNOWN whatever\r\n").unwrap(),
            Some((ProxyHeader::Unknown, 24))
        );
        // Every prefix asks for more.
        for n in 0..line.len() - 7 {
            assert_eq!(decode(&line[..n]), Ok(None), "prefix {n}");
        }
        for bad in [
            &b"PROXY TCP4 ::1 ::1 1 2\r\n"[..],
            b"PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 99999\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n",
        ] {
            assert_eq!(decode(bad), Err(HeaderError::V1Fields), "{bad:?}");
        }
        assert_eq!(decode(b"PROXY UDP4 x\r\n"), Err(HeaderError::V1Protocol));
        assert_eq!(decode(&[b'P'; 1][..]), Ok(None));
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(200, b'x');
        assert_eq!(decode(&long), Err(HeaderError::V1TooLong));
        assert_eq!(
            decode(b"GET / HTTP/1.1\r\n"),
            Err(HeaderError::NotProxyProtocol)
        );
    }

    #[test]
    fn v2_headers() {
        let addrs = [203, 0, 113, 7, 127, 0, 0, 1, 0x15, 0xb3, 0x20, 0xfb];
        let tlv = [0x04, 0x00, 0x02, 0xaa, 0xbb]; // a NOOP TLV
        let wire = v2(1, 0x11, &addrs, &tlv);
        let (h, used) = decode(&wire).unwrap().unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(h.source(), Some("203.0.113.7:5555".parse().unwrap()));
        for n in 0..wire.len() {
            assert_eq!(decode(&wire[..n]), Ok(None), "prefix {n}");
        }
        let mut six = [0u8; 36];
        six[15] = 1;
        six[31] = 1;
        six[32..34].copy_from_slice(&4711u16.to_be_bytes());
        let (h, _) = decode(&v2(1, 0x21, &six, &[])).unwrap().unwrap();
        assert_eq!(h.source(), Some("[::1]:4711".parse().unwrap()));
        assert_eq!(
            decode(&v2(0, 0x00, &[], &[])).unwrap(),
            Some((ProxyHeader::Local, 16))
        );
        let unix = v2(1, 0x31, &[0; 216], &[]);
        assert_eq!(decode(&unix).unwrap().unwrap().0, ProxyHeader::Unknown);
        assert_eq!(
            decode(&v2(1, 0x12, &addrs, &[])),
            Err(HeaderError::V2Family)
        );
        assert_eq!(
            decode(&v2(1, 0x11, &addrs[..8], &[])),
            Err(HeaderError::V2Length)
        );
        assert_eq!(
            decode(&v2(1, 0x11, &addrs, &[4, 0, 9, 1])),
            Err(HeaderError::V2Tlv)
        );
        assert_eq!(
            decode(&v2(1, 0x11, &addrs, &[4, 0])),
            Err(HeaderError::V2Tlv)
        );
        assert_eq!(
            decode(&v2(2, 0x11, &addrs, &[])),
            Err(HeaderError::V2Command)
        );
        let mut v3 = wire.clone();
        v3[12] = 0x31;
        assert_eq!(decode(&v3[..13]), Err(HeaderError::V2Version));
        let mut huge = wire.clone();
        huge[14..16].copy_from_slice(&5000u16.to_be_bytes());
        assert_eq!(decode(&huge[..16]), Err(HeaderError::V2TooLong));
    }
}
