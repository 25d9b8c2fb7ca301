//! Refuses handshakes from blocked addresses, like Ratchet's `IpBlackList`.

use super::{
    Accept, Application, ConnError, ConnId, Context, Http, Message, Reject, Reply, Request, Ticket,
    TimerId, delegate_events,
};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or a single address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside the block. IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`) match IPv4 blocks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(
                u128::from(u32::from(n)) << 96,
                u128::from(u32::from(a)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(u128::from(n), u128::from(a), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    prefix == 0 || (a ^ b) >> (128 - u32::from(prefix)) == 0
}

/// Why a block list entry didn't parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadCidr(pub String);

impl fmt::Display for BadCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not an IP address or CIDR block: {:?}", self.0)
    }
}

impl std::error::Error for BadCidr {}

impl FromStr for Cidr {
    type Err = BadCidr;
    fn from_str(s: &str) -> Result<Self, BadCidr> {
        let bad = || BadCidr(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// Wraps an app; handshakes from a blocked address get 403.
pub struct IpBlocklist<A> {
    inner: A,
    blocked: Vec<Cidr>,
}

impl<A> IpBlocklist<A> {
    /// Wraps `inner`, refusing the given blocks.
    pub fn new(inner: A, blocked: impl IntoIterator<Item = Cidr>) -> Self {
        IpBlocklist {
            inner,
            blocked: blocked.into_iter().collect(),
        }
    }

    /// Whether `ip` is blocked.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.blocked.iter().any(|c| c.contains(ip))
    }
}

impl<A: Application> Application for IpBlocklist<A> {
    fn accept(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        req: &Request,
    ) -> Result<Accept, Reject> {
        if self.is_blocked(req.peer.ip()) {
            return Err(Reject::new(403, "address blocked"));
        }
        self.inner.accept(ctx, conn, req)
    }

    /// Plain HTTP from a blocked address gets 403 too.
    fn http(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) -> Http {
        if self.is_blocked(req.peer.ip()) {
            return Http::Respond(crate::http::Page::text(403, "address blocked\n"));
        }
        self.inner.http(ctx, conn, req)
    }
    delegate_events!(inner);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Echo;

    #[test]
    fn cidr_matching() {
        let list = IpBlocklist::new(
            Echo,
            ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]
                .iter()
                .map(|s| s.parse().unwrap()),
        );
        assert!(list.is_blocked("10.200.3.4".parse().unwrap()));
        assert!(list.is_blocked("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!list.is_blocked("11.0.0.1".parse().unwrap()));
        assert!(list.is_blocked("192.168.1.7".parse().unwrap()));
        assert!(!list.is_blocked("192.168.1.8".parse().unwrap()));
        assert!(list.is_blocked("2001:db8:ffff::1".parse().unwrap()));
        assert!(!list.is_blocked("2001:db9::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
        assert!("::/129".parse::<Cidr>().is_err());
    }
}
