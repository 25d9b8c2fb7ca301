//! WAMP v2 URIs: the spec's rules for which strings are URIs, and the
//! matching of pattern-based subscriptions and registrations.
//!
//! A URI is dot-separated components. Under the *loose* rules a component
//! is any non-empty run of characters other than whitespace, `.` and `#`;
//! under the *strict* rules, of `0-9`, `a-z` and `_`. How a URI is used
//! decides whether empty components are allowed:
//! - [`Policy::Exact`]: none (`com.myapp.topic`);
//! - [`Policy::Prefix`]: only the last one, so a prefix may end in a dot
//!   (`com.myapp.`), but may not be empty (it would match everything);
//! - [`Policy::Wildcard`]: any, an empty component standing for any one
//!   component (`com..update`).

/// The longest URI accepted, in bytes.
pub const MAX_LEN: usize = 2048;

/// Which characters a URI component may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    /// Anything but whitespace, `.` and `#`.
    Loose,
    /// Only `0-9`, `a-z` and `_`.
    Strict,
}

/// How the URI is used, which decides where empty components may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// A plain URI: no empty component.
    Exact,
    /// A prefix pattern: the last component may be empty, the URI not.
    Prefix,
    /// A wildcard pattern: any component may be empty.
    Wildcard,
}

/// Checks `uri` against the spec's URI rules for its use; the error is a
/// short reason.
pub fn check(uri: &str, rules: Rules, policy: Policy) -> Result<(), &'static str> {
    if uri.len() > MAX_LEN {
        return Err("URI longer than 2048 bytes");
    }
    if uri.is_empty() && policy != Policy::Wildcard {
        return Err("empty URI");
    }
    let valid = |c: char| match rules {
        Rules::Loose => !(c.is_whitespace() || c == '.' || c == '#'),
        Rules::Strict => c.is_ascii_digit() || c.is_ascii_lowercase() || c == '_',
    };
    let mut components = uri.split('.').peekable();
    while let Some(c) = components.next() {
        let last = components.peek().is_none();
        if c.is_empty() {
            let allowed = match policy {
                Policy::Exact => false,
                Policy::Prefix => last,
                Policy::Wildcard => true,
            };
            if !allowed {
                return Err("empty URI component");
            }
        } else if !c.chars().all(valid) {
            return Err(match rules {
                Rules::Loose => "URI component with whitespace or '#'",
                Rules::Strict => "URI component with a character other than 0-9, a-z, _",
            });
        }
    }
    Ok(())
}

/// Whether `uri` matches the wildcard `pattern`: as many components, and
/// each of the pattern's either empty (any component) or the same.
pub fn wildcard_matches(pattern: &str, uri: &str) -> bool {
    let mut p = pattern.split('.');
    let mut u = uri.split('.');
    loop {
        match (p.next(), u.next()) {
            (None, None) => return true,
            (Some(pc), Some(uc)) if pc.is_empty() || pc == uc => {}
            _ => return false,
        }
    }
}

/// Whether `uri` matches the prefix pattern `prefix`: it starts with it,
/// as strings (`com.myapp.topic.emergency` matches
/// `com.myapp.topic.emergency.11` and `com.myapp.topic.emergency-low`).
pub fn prefix_matches(prefix: &str, uri: &str) -> bool {
    uri.starts_with(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Policy::*;
    use Rules::*;

    #[test]
    fn exact_uris() {
        for ok in [
            "com.myapp.topic1",
            "a",
            "wamp.error.no_such_realm",
            "a_1.b_2",
        ] {
            assert_eq!(check(ok, Strict, Exact), Ok(()), "{ok}");
            assert_eq!(check(ok, Loose, Exact), Ok(()), "{ok}");
        }
        for ok in ["com.MyApp.topic-1", "http://example.com/x", "é.ü", "a/b"] {
            assert_eq!(check(ok, Loose, Exact), Ok(()), "{ok}");
            assert_eq!(
                check(ok, Strict, Exact),
                Err("URI component with a character other than 0-9, a-z, _"),
                "{ok}"
            );
        }
        for (bad, why) in [
            ("", "empty URI"),
            ("com..topic", "empty URI component"),
            (".com", "empty URI component"),
            ("com.", "empty URI component"),
            (".", "empty URI component"),
        ] {
            assert_eq!(check(bad, Loose, Exact), Err(why), "{bad}");
            assert_eq!(check(bad, Strict, Exact), Err(why), "{bad}");
        }
        for bad in ["com.my app", "com.a#b", "a\tb", "a\u{a0}b", "a\nb"] {
            assert_eq!(
                check(bad, Loose, Exact),
                Err("URI component with whitespace or '#'"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn prefix_uris() {
        for ok in ["com.myapp.", "com.myapp", "a."] {
            assert_eq!(check(ok, Strict, Prefix), Ok(()), "{ok}");
        }
        assert_eq!(check("", Strict, Prefix), Err("empty URI"));
        assert_eq!(check(".", Loose, Prefix), Err("empty URI component"));
        assert_eq!(check("com..x", Loose, Prefix), Err("empty URI component"));
        assert_eq!(check("com.x..", Loose, Prefix), Err("empty URI component"));
        assert!(check("Com.", Strict, Prefix).is_err());
        assert_eq!(check("Com.", Loose, Prefix), Ok(()));
    }

    #[test]
    fn wildcard_uris() {
        for ok in ["com..update", ".myapp.x", "com.myapp.", "..", "", "a"] {
            assert_eq!(check(ok, Strict, Wildcard), Ok(()), "{ok:?}");
            assert_eq!(check(ok, Loose, Wildcard), Ok(()), "{ok:?}");
        }
        assert!(check("com..Up", Strict, Wildcard).is_err());
        assert!(check("com.. x", Loose, Wildcard).is_err());
        assert_eq!(check("com..Up-x", Loose, Wildcard), Ok(()));
    }

    #[test]
    fn long_uris_are_refused() {
        let at = "a".repeat(MAX_LEN);
        assert_eq!(check(&at, Strict, Exact), Ok(()));
        let over = "a".repeat(MAX_LEN + 1);
        for p in [Exact, Prefix, Wildcard] {
            assert_eq!(check(&over, Loose, p), Err("URI longer than 2048 bytes"));
        }
    }

    #[test]
    fn wildcard_matching() {
        assert!(wildcard_matches("com..update", "com.myapp.update"));
        assert!(wildcard_matches("com..update", "com.x.update"));
        assert!(!wildcard_matches("com..update", "com.myapp.delete"));
        assert!(!wildcard_matches("com..update", "com.a.b.update"));
        assert!(!wildcard_matches("com..update", "com.update"));
        assert!(wildcard_matches(".myapp.", "com.myapp.x"));
        assert!(!wildcard_matches(".myapp.", "com.myapp"));
        assert!(wildcard_matches("a.b", "a.b"));
        assert!(!wildcard_matches("a.b", "a.bc"));
        assert!(wildcard_matches("", "anything"));
        assert!(!wildcard_matches("", "any.thing"));
    }

    #[test]
    fn prefix_matching() {
        let p = "com.myapp.topic.emergency";
        assert!(prefix_matches(p, "com.myapp.topic.emergency.11"));
        assert!(prefix_matches(p, "com.myapp.topic.emergency-low"));
        assert!(prefix_matches(p, "com.myapp.topic.emergency"));
        assert!(!prefix_matches(p, "com.myapp.topic.emerge"));
        assert!(!prefix_matches(p, "com.myapp.topic"));
        assert!(prefix_matches("com.myapp.", "com.myapp.x"));
        assert!(!prefix_matches("com.myapp.", "com.myapp"));
    }
}
