//! Refuses handshakes from blocked addresses, like Ratchet's `IpBlackList`.

use super::{
    Accept, Application, ConnError, ConnId, Context, Http, Message, Reject, Reply, Request, Ticket,
    TimerId, delegate_events,
};
pub use crate::cidr::Cidr;
use std::net::IpAddr;

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
