//! `http://` URLs of backends: an origin to dial and a request target.

use std::fmt;
use std::net::Ipv6Addr;

/// Where a connection goes: one [`super::Pool`] key per origin.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    host: String,
    port: u16,
    authority: String,
}

impl Origin {
    /// An origin for `host` (a lower-case name, an IPv4 address, or an IPv6
    /// address without brackets) and `port`.
    pub fn new(host: &str, port: u16) -> Result<Self, UrlError> {
        let bracketed;
        let host = if host.contains(':') {
            bracketed = format!("[{host}]");
            &bracketed
        } else {
            host
        };
        let host = parse_host(host)?;
        Ok(Origin::from_parts(host, port))
    }

    fn from_parts(host: String, port: u16) -> Self {
        let shown = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        // RFC 9110 §7.2: Host is the authority, the port omitted when it is
        // the scheme's default.
        let authority = if port == 80 {
            shown
        } else {
            format!("{shown}:{port}")
        };
        Origin {
            host,
            port,
            authority,
        }
    }

    /// Host to connect to: a name, an IPv4 address, or an IPv6 address
    /// without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `Host` header value: `host[:port]`, IPv6 in brackets.
    pub fn authority(&self) -> &str {
        &self.authority
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

/// A parsed `http://host[:port]/path?query` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    origin: Origin,
    target: String,
}

/// What is wrong with a URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlError {
    /// `https://`.
    TlsUnsupported,
    /// A scheme other than `http`, or no `scheme://` at all.
    UnsupportedScheme,
    /// `user@` in the authority.
    Userinfo,
    /// An empty or malformed host.
    BadHost,
    /// A port that is not a number in 1..=65535.
    BadPort,
    /// A path or query with bytes other than visible ASCII.
    BadTarget,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::TlsUnsupported => "TLS to backends is not supported yet (https://)",
            UrlError::UnsupportedScheme => "only http:// URLs are supported",
            UrlError::Userinfo => "credentials in the URL are not supported",
            UrlError::BadHost => "missing or malformed host in URL",
            UrlError::BadPort => "URL port is not a number in 1..=65535",
            UrlError::BadTarget => "URL path or query holds spaces, controls or non-ASCII",
        })
    }
}

impl std::error::Error for UrlError {}

impl Url {
    /// Parses an absolute `http` URL (RFC 3986 §3 syntax, RFC 9110 §4.2.1).
    /// A fragment is dropped: it is never sent.
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        let (scheme, rest) = s.split_once("://").ok_or(UrlError::UnsupportedScheme)?;
        if scheme.eq_ignore_ascii_case("https") {
            return Err(UrlError::TlsUnsupported);
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(UrlError::UnsupportedScheme);
        }
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        if authority.contains('@') {
            return Err(UrlError::Userinfo);
        }
        let (host, port) = split_port(authority)?;
        let target = match target {
            "" => "/".to_owned(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_owned(),
        };
        // RFC 9112 §3.2: the origin-form goes on the request line as is.
        if !target.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(UrlError::BadTarget);
        }
        Ok(Url {
            origin: Origin::from_parts(parse_host(host)?, port),
            target,
        })
    }

    /// Host and port to dial.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The request target (origin-form, RFC 9112 §3.2.1): path and query.
    pub fn target(&self) -> &str {
        &self.target
    }
}

/// `http://authority/target`, as it was parsed.
impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.origin.authority(), self.target)
    }
}

/// Splits `host[:port]`; the port defaults to 80, an empty one too (RFC 3986 §3.2.3).
fn split_port(authority: &str) -> Result<(&str, u16), UrlError> {
    let colon = if authority.starts_with('[') {
        let close = authority.find(']').ok_or(UrlError::BadHost)?;
        match &authority[close + 1..] {
            "" => None,
            p if p.starts_with(':') => Some(close + 1),
            _ => return Err(UrlError::BadHost),
        }
    } else {
        authority.rfind(':')
    };
    let Some(colon) = colon else {
        return Ok((authority, 80));
    };
    let (host, port) = (&authority[..colon], &authority[colon + 1..]);
    if port.is_empty() {
        return Ok((host, 80));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UrlError::BadPort);
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok((host, p)),
        _ => Err(UrlError::BadPort),
    }
}

/// A bracketed IPv6 literal, or a name / IPv4 address of unreserved
/// characters (RFC 3986 §3.2.2; percent-encoding is not accepted).
fn parse_host(host: &str) -> Result<String, UrlError> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(UrlError::BadHost)?;
        let addr: Ipv6Addr = inner.parse().map_err(|_| UrlError::BadHost)?;
        return Ok(addr.to_string());
    }
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    if host.is_empty() || !host.bytes().all(ok) {
        return Err(UrlError::BadHost);
    }
    Ok(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> (String, u16, String, String) {
        let u = Url::parse(s).unwrap();
        let o = u.origin();
        (
            o.host().to_owned(),
            o.port(),
            o.authority().to_owned(),
            u.target().to_owned(),
        )
    }

    #[test]
    fn parses_origin_and_target() {
        let p = |h: &str, port, a: &str, t: &str| (h.to_owned(), port, a.to_owned(), t.to_owned());
        assert_eq!(
            parts("http://Backend.Local:8080/auth?x=1"),
            p("backend.local", 8080, "backend.local:8080", "/auth?x=1")
        );
        assert_eq!(parts("HTTP://a"), p("a", 80, "a", "/"));
        assert_eq!(parts("http://a:80/"), p("a", 80, "a", "/"));
        assert_eq!(parts("http://a:/x"), p("a", 80, "a", "/x"));
        assert_eq!(parts("http://a?q"), p("a", 80, "a", "/?q"));
        assert_eq!(parts("http://a/p#frag"), p("a", 80, "a", "/p"));
        assert_eq!(
            parts("http://127.0.0.1:9000/rpc"),
            p("127.0.0.1", 9000, "127.0.0.1:9000", "/rpc")
        );
        assert_eq!(parts("http://[::1]:81/"), p("::1", 81, "[::1]:81", "/"));
        assert_eq!(parts("http://[::1]"), p("::1", 80, "[::1]", "/"));
        assert_eq!(
            Origin::new("::1", 81).unwrap(),
            Url::parse("http://[::1]:81").unwrap().origin().clone()
        );
        assert_eq!(
            Url::parse("http://a:1/").unwrap().origin().to_string(),
            "http://a:1"
        );
    }

    #[test]
    fn errors() {
        let e = |s| Url::parse(s).unwrap_err();
        assert_eq!(e("https://a/"), UrlError::TlsUnsupported);
        assert!(
            e("HTTPS://a/")
                .to_string()
                .contains("TLS to backends is not supported yet")
        );
        assert_eq!(e("ftp://a/"), UrlError::UnsupportedScheme);
        assert_eq!(e("a/b"), UrlError::UnsupportedScheme);
        assert_eq!(e("http://u:p@a/"), UrlError::Userinfo);
        assert_eq!(e("http:///x"), UrlError::BadHost);
        assert_eq!(e("http://a b/"), UrlError::BadHost);
        assert_eq!(e("http://a%20/"), UrlError::BadHost);
        assert_eq!(e("http://[::1/"), UrlError::BadHost);
        assert_eq!(e("http://[zz]/"), UrlError::BadHost);
        assert_eq!(e("http://[::1]x/"), UrlError::BadHost);
        assert_eq!(e("http://a:0/"), UrlError::BadPort);
        assert_eq!(e("http://a:65536/"), UrlError::BadPort);
        assert_eq!(e("http://a:+8/"), UrlError::BadPort);
        assert_eq!(e("http://a:8x/"), UrlError::BadPort);
        assert_eq!(e("http://a/b c"), UrlError::BadTarget);
        assert_eq!(e("http://a/\u{e9}"), UrlError::BadTarget);
        assert_eq!(e("http://a/\r\nX: y"), UrlError::BadTarget);
        assert_eq!(Origin::new("a b", 1), Err(UrlError::BadHost));
    }
}
