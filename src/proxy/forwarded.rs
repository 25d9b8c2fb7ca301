//! The client address from `Forwarded` (RFC 7239) or `X-Forwarded-For`,
//! read right to left against the trusted proxies.
//!
//! Only one of the two headers is read, the one the operator's proxy sets
//! ([`ForwardedHeader`], `--forwarded-header`). A proxy that sets one
//! usually passes the other on as the client wrote it (nginx does, unless
//! told otherwise), so reading whichever is present would let a client
//! name any address.
//!
//! Each proxy appends the address it got the request from, so the list
//! reads `client, proxy1, proxy2` and the immediate peer is the last
//! proxy. Only entries added by trusted proxies can be believed: walking
//! from the right, every address inside a trusted block is skipped and the
//! first one outside is the client. Whatever a client prepends itself lies
//! to the left of that and is never reached. A request whose immediate
//! peer is not trusted keeps the peer's address; its headers are ignored.

use crate::cidr::Cidr;
use std::net::{IpAddr, SocketAddr};

/// What the forwarding headers of one request decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// No forwarding header, or none that names an address: the peer is
    /// the client.
    Direct,
    /// Forwarding headers from a peer that is not trusted: ignored.
    Ignored,
    /// The client's address (port 0 when the header gave none).
    Client(SocketAddr),
}

/// The forwarding header a trusted proxy sets, the only one read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For`: nginx's `$proxy_add_x_forwarded_for`, HAProxy's
    /// `option forwardfor`.
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239), `for=` parameters.
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name, lower case (also the `--forwarded-header` value).
    pub fn name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }

    /// The header that is not read.
    pub fn other(self) -> ForwardedHeader {
        match self {
            ForwardedHeader::XForwardedFor => ForwardedHeader::Forwarded,
            ForwardedHeader::Forwarded => ForwardedHeader::XForwardedFor,
        }
    }

    /// Whether `headers` hold at least one line of this header.
    pub fn is_in(self, headers: &[(&str, &str)]) -> bool {
        headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(self.name()))
    }
}

impl std::str::FromStr for ForwardedHeader {
    type Err = String;

    /// `x-forwarded-for` or `forwarded`, in any case.
    fn from_str(s: &str) -> Result<Self, String> {
        [ForwardedHeader::XForwardedFor, ForwardedHeader::Forwarded]
            .into_iter()
            .find(|h| s.trim().eq_ignore_ascii_case(h.name()))
            .ok_or_else(|| format!("expected x-forwarded-for or forwarded, not {s:?}"))
    }
}

impl std::fmt::Display for ForwardedHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One hop named in a header: an address, or something that is not one
/// (`unknown`, an obfuscated `_name`, a malformed entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Ip(IpAddr, u16),
    Opaque,
}

/// The client behind `peer` from `X-Forwarded-For` alone (the default
/// of [`ForwardedHeader`]); see [`client_address_from`].
pub fn client_address(peer: SocketAddr, headers: &[(&str, &str)], trusted: &[Cidr]) -> Resolved {
    client_address_from(peer, headers, trusted, ForwardedHeader::default())
}

/// The client behind `peer`, from the request's `headers` of kind `read`;
/// the other forwarding header is never read (the caller may want to know
/// it was there: [`ForwardedHeader::is_in`]). A peer that is not trusted
/// gets [`Resolved::Ignored`] when it sent either header.
pub fn client_address_from(
    peer: SocketAddr,
    headers: &[(&str, &str)],
    trusted: &[Cidr],
    read: ForwardedHeader,
) -> Resolved {
    if !read.is_in(headers) && !read.other().is_in(headers) {
        return Resolved::Direct;
    }
    if !Cidr::any_contains(trusted, peer.ip()) {
        return Resolved::Ignored;
    }
    let mut nodes = Vec::new();
    for (_, value) in headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(read.name()))
    {
        match read {
            ForwardedHeader::Forwarded => forwarded_nodes(value, &mut nodes),
            ForwardedHeader::XForwardedFor => {
                nodes.extend(value.split(',').map(|e| node(e.trim())));
            }
        }
    }
    let mut client = None;
    for hop in nodes.iter().rev() {
        match *hop {
            Node::Ip(ip, port) => {
                client = Some(SocketAddr::new(ip, port));
                if !Cidr::any_contains(trusted, ip) {
                    break;
                }
            }
            // The hop cannot be identified: the last trusted one stands.
            Node::Opaque => break,
        }
    }
    client.map_or(Resolved::Direct, Resolved::Client)
}

/// RFC 7239 §4: `Forwarded: for=192.0.2.43;proto=https, for="[2001:db8::1]:4711"`.
/// An element without a usable `for` is opaque.
fn forwarded_nodes(value: &str, out: &mut Vec<Node>) {
    for element in split_outside_quotes(value, ',') {
        let mut hop = Node::Opaque;
        for pair in split_outside_quotes(element, ';') {
            let Some((name, v)) = pair.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("for") {
                let v = v.trim();
                // §6: a quoted string, or a token (IPv4, unknown, _obf).
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                hop = node(v);
            }
        }
        out.push(hop);
    }
}

/// Splits at `sep`, except inside double quotes (with `\` escapes).
fn split_outside_quotes(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    let mut cuts = Vec::new();
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                cuts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    cuts.push(&s[start..]);
    cuts.into_iter()
}

/// RFC 7239 §6 node: `1.2.3.4`, `1.2.3.4:80`, `[2001:db8::1]`,
/// `[2001:db8::1]:80`; in `X-Forwarded-For` also a bare IPv6 address.
fn node(s: &str) -> Node {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Node::Ip(ip, 0);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Node::Ip(sa.ip(), sa.port());
    }
    if let Some(v6) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'))
        && let Ok(ip) = v6.parse::<std::net::Ipv6Addr>()
    {
        return Node::Ip(IpAddr::V6(ip), 0);
    }
    Node::Opaque
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted() -> Vec<Cidr> {
        vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()]
    }

    fn resolve(peer: &str, headers: &[(&str, &str)]) -> Resolved {
        client_address(peer.parse().unwrap(), headers, &trusted())
    }

    fn resolve_fwd(peer: &str, headers: &[(&str, &str)]) -> Resolved {
        let read = ForwardedHeader::Forwarded;
        client_address_from(peer.parse().unwrap(), headers, &trusted(), read)
    }

    fn client(s: &str) -> Resolved {
        Resolved::Client(s.parse().unwrap())
    }

    #[test]
    fn x_forwarded_for_right_to_left() {
        let p = "127.0.0.1:5555";
        assert_eq!(resolve(p, &[]), Resolved::Direct);
        assert_eq!(
            resolve(p, &[("X-Forwarded-For", "203.0.113.7")]),
            client("203.0.113.7:0")
        );
        // A client prepending a fake address does not get past its own.
        let spoof = [("x-forwarded-for", "127.0.0.6, 203.0.113.7, 10.1.1.1")];
        assert_eq!(resolve(p, &spoof), client("203.0.113.7:0"));
        // Several lines are one list, in order.
        let lines = [
            ("X-Forwarded-For", "198.51.100.1"),
            ("X-Forwarded-For", "10.0.0.2"),
        ];
        assert_eq!(resolve(p, &lines), client("198.51.100.1:0"));
        // All trusted: the leftmost.
        assert_eq!(
            resolve(p, &[("X-Forwarded-For", "10.0.0.3, 10.0.0.2")]),
            client("10.0.0.3:0")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            resolve(p, &[("X-Forwarded-For", "1.1.1.1, nonsense")]),
            Resolved::Direct
        );
        assert_eq!(
            resolve(p, &[("X-Forwarded-For", "2001:db8::9")]),
            client("[2001:db8::9]:0")
        );
        // An untrusted peer: ignored, whatever it says.
        assert_eq!(
            resolve("127.0.0.9:1", &[("X-Forwarded-For", "127.0.0.6")]),
            Resolved::Ignored
        );
    }

    #[test]
    fn forwarded_elements() {
        let p = "127.0.0.1:5555";
        // RFC 7239 §4 examples.
        let h = [("Forwarded", "for=\"_gazonk\"")];
        assert_eq!(resolve_fwd(p, &h), Resolved::Direct);
        let h = [("Forwarded", "For=\"[2001:db8:cafe::17]:4711\"")];
        assert_eq!(resolve_fwd(p, &h), client("[2001:db8:cafe::17]:4711"));
        let h = [("Forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")];
        assert_eq!(resolve_fwd(p, &h), client("192.0.2.60:0"));
        let h = [("Forwarded", "for=192.0.2.43, for=198.51.100.17")];
        assert_eq!(resolve_fwd(p, &h), client("198.51.100.17:0"));
        // Several lines, quoted commas and semicolons, a trusted hop.
        let h = [
            ("Forwarded", "for=192.0.2.43;by=\"a,b;c\""),
            ("forwarded", "for=10.0.0.7"),
        ];
        assert_eq!(resolve_fwd(p, &h), client("192.0.2.43:0"));
        // unknown stops the walk: the last trusted hop stands.
        let h = [("Forwarded", "for=1.2.3.4, for=unknown, for=10.0.0.7")];
        assert_eq!(resolve_fwd(p, &h), client("10.0.0.7:0"));
    }

    #[test]
    fn only_the_chosen_header_is_read() {
        let p = "127.0.0.1:5555";
        let both = [
            ("X-Forwarded-For", "6.6.6.6"),
            ("Forwarded", "for=\"192.0.2.1:80\""),
        ];
        assert_eq!(resolve(p, &both), client("6.6.6.6:0"));
        assert_eq!(resolve_fwd(p, &both), client("192.0.2.1:80"));
        // The spoof behind nginx setting X-Forwarded-For only: the
        // client's own Forwarded reaches sprocket untouched.
        let forged = [
            ("Forwarded", "for=1.2.3.4"),
            ("X-Forwarded-For", "203.0.113.7"),
        ];
        assert_eq!(resolve(p, &forged), client("203.0.113.7:0"));
        // The other header alone from a trusted proxy: the peer stands.
        assert_eq!(
            resolve(p, &[("forwarded", "for=1.2.3.4")]),
            Resolved::Direct
        );
        assert_eq!(
            resolve_fwd(p, &[("x-forwarded-for", "1.2.3.4")]),
            Resolved::Direct
        );
        // From an untrusted peer either header is ignored, whichever is read.
        for h in [&both[..], &both[..1], &both[1..]] {
            assert_eq!(resolve("192.0.2.9:1", h), Resolved::Ignored);
            assert_eq!(resolve_fwd("192.0.2.9:1", h), Resolved::Ignored);
        }
    }

    #[test]
    fn header_names() {
        for h in [ForwardedHeader::XForwardedFor, ForwardedHeader::Forwarded] {
            assert_eq!(h.name().parse::<ForwardedHeader>(), Ok(h));
            assert_eq!(h.to_string(), h.name());
            assert_ne!(h.other(), h);
            assert_eq!(h.other().other(), h);
        }
        assert_eq!(
            "X-Forwarded-For".parse(),
            Ok(ForwardedHeader::XForwardedFor)
        );
        assert_eq!(ForwardedHeader::default(), ForwardedHeader::XForwardedFor);
        assert!("x-real-ip".parse::<ForwardedHeader>().is_err());
        assert!(ForwardedHeader::Forwarded.is_in(&[("FORWARDED", "for=a")]));
        assert!(!ForwardedHeader::Forwarded.is_in(&[("X-Forwarded-For", "a")]));
    }
}
