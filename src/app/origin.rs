//! Refuses handshakes from origins not on an allow-list (cross-site
//! WebSocket hijacking protection), like Ratchet's `OriginCheck`.

use super::{
    Accept, Application, ConnError, ConnId, Context, Http, Message, Reject, Reply, Request, Ticket,
    TimerId, delegate_events,
};

/// Wraps an app; a handshake whose `Origin` is not allowed gets 403.
///
/// An entry is either a full origin (`https://app.example.com`, compared
/// whole) or a bare host name (`app.example.com`, compared with the host of
/// the request's origin, any scheme and port). With an empty list every
/// origin is allowed. With a non-empty list a request without `Origin` is
/// refused too: browsers always send it, so its absence proves nothing.
pub struct OriginCheck<A> {
    inner: A,
    allowed: Vec<String>,
}

impl<A> OriginCheck<A> {
    /// Wraps `inner`, allowing the listed origins.
    pub fn new(inner: A, allowed: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let allowed = allowed
            .into_iter()
            .map(|o| o.into().to_ascii_lowercase())
            .collect();
        OriginCheck { inner, allowed }
    }

    /// Whether `origin` (a header value) is allowed.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        origin_allowed(&self.allowed, origin)
    }
}

/// Whether `origin` (a header value) is on `allowed` (lowercased entries,
/// each a full origin or a bare host name, as [`OriginCheck`] reads them;
/// empty: every origin).
pub(crate) fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(origin) = origin else { return false };
    let origin = origin.to_ascii_lowercase();
    let host = host_of(&origin);
    allowed
        .iter()
        .any(|a| *a == origin || Some(a.as_str()) == host)
}

/// The host of `scheme://host[:port]`; IPv6 literals keep their brackets.
fn host_of(origin: &str) -> Option<&str> {
    let rest = origin.split_once("://")?.1;
    let rest = rest.split('/').next()?;
    if rest.starts_with('[') {
        return rest.find(']').map(|end| &rest[..=end]);
    }
    Some(rest.split(':').next().unwrap_or(rest))
}

impl<A: Application> Application for OriginCheck<A> {
    fn accept(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        req: &Request,
    ) -> Result<Accept, Reject> {
        if !self.allows(req.header("Origin")) {
            return Err(Reject::new(403, "origin not allowed"));
        }
        self.inner.accept(ctx, conn, req)
    }

    /// Plain HTTP passes: navigation requests carry no `Origin`, and
    /// endpoints that need the check make it themselves.
    fn http(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) -> Http {
        self.inner.http(ctx, conn, req)
    }
    delegate_events!(inner);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Echo;

    #[test]
    fn allow_list() {
        let check = OriginCheck::new(Echo, ["example.com", "https://app.example.org"]);
        assert!(check.allows(Some("http://example.com")));
        assert!(check.allows(Some("https://EXAMPLE.com:8443")));
        assert!(check.allows(Some("https://app.example.org")));
        assert!(
            !check.allows(Some("http://app.example.org")),
            "full origins compare scheme too"
        );
        assert!(!check.allows(Some("https://example.com.evil.net")));
        assert!(!check.allows(Some("null")));
        assert!(!check.allows(None));
        assert!(OriginCheck::new(Echo, Vec::<String>::new()).allows(None));
    }
}
