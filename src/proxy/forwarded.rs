//! The client address from `Forwarded` (RFC 7239) and `X-Forwarded-For`,
//! read right to left against the trusted proxies.
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

/// One hop named in a header: an address, or something that is not one
/// (`unknown`, an obfuscated `_name`, a malformed entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Ip(IpAddr, u16),
    Opaque,
}

/// The client behind `peer`, from the request's `headers`. `Forwarded`
/// is preferred: with any `Forwarded` field, `X-Forwarded-For` is not read.
pub fn client_address(peer: SocketAddr, headers: &[(&str, &str)], trusted: &[Cidr]) -> Resolved {
    let named = |n: &'static str| {
        headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| *v)
    };
    let mut nodes = Vec::new();
    for value in named("forwarded") {
        forwarded_nodes(value, &mut nodes);
    }
    let had_forwarded = named("forwarded").next().is_some();
    if !had_forwarded {
        for value in named("x-forwarded-for") {
            nodes.extend(value.split(',').map(|e| node(e.trim())));
        }
    }
    if !had_forwarded && named("x-forwarded-for").next().is_none() {
        return Resolved::Direct;
    }
    if !Cidr::any_contains(trusted, peer.ip()) {
        return Resolved::Ignored;
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
        assert_eq!(resolve(p, &h), Resolved::Direct);
        let h = [("Forwarded", "For=\"[2001:db8:cafe::17]:4711\"")];
        assert_eq!(resolve(p, &h), client("[2001:db8:cafe::17]:4711"));
        let h = [("Forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")];
        assert_eq!(resolve(p, &h), client("192.0.2.60:0"));
        let h = [("Forwarded", "for=192.0.2.43, for=198.51.100.17")];
        assert_eq!(resolve(p, &h), client("198.51.100.17:0"));
        // Several lines, quoted commas and semicolons, a trusted hop.
        let h = [
            ("Forwarded", "for=192.0.2.43;by=\"a,b;c\""),
            ("forwarded", "for=10.0.0.7"),
        ];
        assert_eq!(resolve(p, &h), client("192.0.2.43:0"));
        // unknown stops the walk: the last trusted hop stands.
        let h = [("Forwarded", "for=1.2.3.4, for=unknown, for=10.0.0.7")];
        assert_eq!(resolve(p, &h), client("10.0.0.7:0"));
        // Forwarded wins over X-Forwarded-For.
        let h = [
            ("X-Forwarded-For", "6.6.6.6"),
            ("Forwarded", "for=\"192.0.2.1:80\""),
        ];
        assert_eq!(resolve(p, &h), client("192.0.2.1:80"));
        assert_eq!(resolve("192.0.2.9:1", &h), Resolved::Ignored);
    }
}
