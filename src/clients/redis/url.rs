//! `redis://` URLs: `redis://[[user]:password@]host[:port][/db]`.
//!
//! The shape is the IANA provisional `redis` URI scheme (the one
//! redis-cli's `-u` and most clients take), parsed with RFC 3986's rules for
//! the parts it uses: a case-insensitive scheme (§3.1), userinfo up to the
//! last `@` with percent-encoding (§2.1, §3.2.1), an IP-literal host in
//! brackets (§3.2.2) and a decimal port (§3.2.3).

use std::fmt;
use std::net::Ipv6Addr;

/// Where and how to reach one Redis server.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or IP address; an IPv6 address without its brackets.
    pub host: String,
    /// TCP port (default 6379).
    pub port: u16,
    /// ACL user name for `AUTH user password` (Redis 6+), if given.
    pub user: Option<String>,
    /// Password for `AUTH`, percent-decoded. `None` (or an empty one): no AUTH.
    pub password: Option<Vec<u8>>,
    /// Logical database for `SELECT` (default 0).
    pub db: u32,
}

/// Why a string is not a usable `redis://` URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlError {
    /// `rediss://`: Redis over TLS.
    TlsUnsupported,
    /// A scheme other than `redis://` (e.g. `unix://`, `http://`, none).
    BadScheme,
    /// No host (`redis://`, `redis://:pw@`, `redis://:6379`).
    MissingHost,
    /// A host with characters a host name can't have, or a bad `[IPv6]`.
    BadHost,
    /// A port that is not a decimal in 1..=65535.
    BadPort,
    /// A path that is not `/` followed by a decimal database number.
    BadDb,
    /// A `%` not followed by two hex digits, or a user name that is not UTF-8.
    BadEncoding,
    /// `user@host` with no `:password`: AUTH needs a password.
    UserWithoutPassword,
    /// A `?query` or `#fragment`, which this client does not interpret.
    QueryNotSupported,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::TlsUnsupported => "TLS to Redis is not supported yet (rediss://)",
            UrlError::BadScheme => "a Redis URL starts with redis://",
            UrlError::MissingHost => "the Redis URL has no host",
            UrlError::BadHost => "the Redis URL's host is not a host name or IP address",
            UrlError::BadPort => "the Redis URL's port is not a number from 1 to 65535",
            UrlError::BadDb => "the Redis URL's path is not /<database number>",
            UrlError::BadEncoding => "bad percent-encoding in the Redis URL's user or password",
            UrlError::UserWithoutPassword => {
                "the Redis URL has a user but no password (use user:password@)"
            }
            UrlError::QueryNotSupported => {
                "the Redis URL has a ?query or #fragment (not supported)"
            }
        })
    }
}

impl std::error::Error for UrlError {}

impl RedisUrl {
    /// Parses `redis://[[user]:password@]host[:port][/db]`.
    pub fn parse(s: &str) -> Result<RedisUrl, UrlError> {
        let rest = strip_scheme(s)?;
        if rest.contains(['?', '#']) {
            return Err(UrlError::QueryNotSupported);
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let db = match path {
            "" | "/" => 0,
            p => parse_decimal(&p[1..]).ok_or(UrlError::BadDb)?,
        };
        // §3.2.1: userinfo ends at the last `@` (lenient with a raw `@` in a
        // password).
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => parse_userinfo(info)?,
        };
        let (host, port) = parse_hostport(hostport)?;
        Ok(RedisUrl {
            host,
            port,
            user,
            password,
            db,
        })
    }

    /// `host:port` for `ToSocketAddrs`, brackets around an IPv6 address.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The URL with the password masked, for log lines.
impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("redis://")?;
        match (&self.user, &self.password) {
            (Some(user), Some(_)) => write!(f, "{user}:***@")?,
            (None, Some(_)) => f.write_str(":***@")?,
            _ => {}
        }
        write!(f, "{}/{}", self.addr(), self.db)
    }
}

/// Debug masks the password too: URLs end up in `{:?}` of configs.
impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

fn strip_scheme(s: &str) -> Result<&str, UrlError> {
    let (scheme, rest) = s.split_once("://").ok_or(UrlError::BadScheme)?;
    // RFC 3986 §3.1: schemes are case-insensitive.
    if scheme.eq_ignore_ascii_case("redis") {
        Ok(rest)
    } else if scheme.eq_ignore_ascii_case("rediss") {
        Err(UrlError::TlsUnsupported)
    } else {
        Err(UrlError::BadScheme)
    }
}

type Credentials = (Option<String>, Option<Vec<u8>>);

fn parse_userinfo(info: &str) -> Result<Credentials, UrlError> {
    let Some((user, password)) = info.split_once(':') else {
        return if info.is_empty() {
            Ok((None, None))
        } else {
            Err(UrlError::UserWithoutPassword)
        };
    };
    let user = match percent_decode(user)? {
        u if u.is_empty() => None,
        u => Some(String::from_utf8(u).map_err(|_| UrlError::BadEncoding)?),
    };
    let password = Some(percent_decode(password)?).filter(|p| !p.is_empty());
    if user.is_some() && password.is_none() {
        return Err(UrlError::UserWithoutPassword);
    }
    Ok((user, password))
}

fn parse_hostport(hostport: &str) -> Result<(String, u16), UrlError> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        // §3.2.2: IP-literal = "[" IPv6address "]".
        let (addr, after) = v6.split_once(']').ok_or(UrlError::BadHost)?;
        addr.parse::<Ipv6Addr>().map_err(|_| UrlError::BadHost)?;
        match after {
            "" => (addr, None),
            p => (addr, Some(p.strip_prefix(':').ok_or(UrlError::BadHost)?)),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':');
    if !host.chars().all(name_char) {
        return Err(UrlError::BadHost);
    }
    let port = match port {
        None => 6379,
        Some(p) => parse_decimal(p)
            .and_then(|n| u16::try_from(n).ok())
            .filter(|&n| n != 0)
            .ok_or(UrlError::BadPort)?,
    };
    Ok((host.to_owned(), port))
}

/// 1 to 10 ASCII digits as a `u32`.
fn parse_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// RFC 3986 §2.1 percent-decoding.
fn percent_decode(s: &str) -> Result<Vec<u8>, UrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(UrlError::BadEncoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| UrlError::BadEncoding)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(UrlError::BadEncoding);
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UrlError::BadEncoding)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> RedisUrl {
        RedisUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn defaults() {
        let u = url("redis://localhost");
        assert_eq!((u.host.as_str(), u.port, u.db), ("localhost", 6379, 0));
        assert_eq!((u.user, u.password), (None, None));
        assert_eq!(url("REDIS://h/").db, 0);
    }

    #[test]
    fn every_part() {
        let u = url("redis://alice:p%40ss%3Aw0rd%25@redis.example.com:6380/3");
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some(&b"p@ss:w0rd%"[..]));
        assert_eq!(
            (u.host.as_str(), u.port, u.db),
            ("redis.example.com", 6380, 3)
        );
        let u = url("redis://:secret@10.0.0.1:7000");
        assert_eq!(
            (u.user, u.password.as_deref()),
            (None, Some(&b"secret"[..]))
        );
        // A raw `@` in a password: userinfo runs to the last `@`.
        assert_eq!(url("redis://:a@b@h").password.as_deref(), Some(&b"a@b"[..]));
        // Binary passwords survive percent-decoding.
        assert_eq!(
            url("redis://:%FF%00@h").password.as_deref(),
            Some(&[0xff, 0][..])
        );
        assert_eq!(url("redis://:@h").password, None);
    }

    #[test]
    fn ipv6() {
        let u = url("redis://[::1]:6390/2");
        assert_eq!((u.host.as_str(), u.port, u.db), ("::1", 6390, 2));
        assert_eq!(u.addr(), "[::1]:6390");
        assert_eq!(url("redis://[fe80::1]").port, 6379);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        use UrlError::*;
        for (s, e) in [
            ("rediss://h", TlsUnsupported),
            ("RedisS://h", TlsUnsupported),
            ("unix:///tmp/redis.sock", BadScheme),
            ("localhost:6379", BadScheme),
            ("redis://", MissingHost),
            ("redis://:pw@", MissingHost),
            ("redis://:6379", MissingHost),
            ("redis://h:0", BadPort),
            ("redis://h:65536", BadPort),
            ("redis://h:", BadPort),
            ("redis://h:x", BadPort),
            ("redis://h/x", BadDb),
            ("redis://h/1/2", BadDb),
            ("redis://h/-1", BadDb),
            ("redis://[::1", BadHost),
            ("redis://[nothex]:1", BadHost),
            ("redis://[::1]x", BadHost),
            ("redis://ho st", BadHost),
            ("redis://:%zz@h", BadEncoding),
            ("redis://:%4@h", BadEncoding),
            ("redis://%FF:pw@h", BadEncoding),
            ("redis://alice@h", UserWithoutPassword),
            ("redis://alice:@h", UserWithoutPassword),
            ("redis://h/0?timeout=1", QueryNotSupported),
        ] {
            assert_eq!(RedisUrl::parse(s), Err(e), "{s}");
        }
        assert_eq!(
            TlsUnsupported.to_string(),
            "TLS to Redis is not supported yet (rediss://)"
        );
    }

    #[test]
    fn display_and_debug_mask_the_password() {
        let u = url("redis://alice:hunter2@h:1/4");
        assert_eq!(u.to_string(), "redis://alice:***@h:1/4");
        assert_eq!(format!("{u:?}"), "RedisUrl(redis://alice:***@h:1/4)");
        assert_eq!(
            url("redis://:hunter2@[::1]").to_string(),
            "redis://:***@[::1]:6379/0"
        );
        assert_eq!(url("redis://h").to_string(), "redis://h:6379/0");
    }
}
