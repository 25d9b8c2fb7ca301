//! The `--session-*` options, defined once for the binary and the
//! examples: their names, defaults, parsing and help text.

use super::{Serializer, StoreSpec};
use std::time::Duration;

/// phpredis's default key prefix (Symfony's `RedisSessionHandler` uses
/// `sf_s`).
pub const DEFAULT_PREFIX: &str = "PHPREDIS_SESSION:";

/// How the PHP app's sessions are found, read and written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSettings {
    /// `--session-store`: none means sessions are off.
    pub store: Option<StoreSpec>,
    /// `--session-prefix`: Redis key prefix.
    pub prefix: String,
    /// `--session-cookie`: the cookie naming the session (`session.name`).
    pub cookie: String,
    /// `--session-serializer`: PHP's `session.serialize_handler`.
    pub serializer: Serializer,
    /// `--session-required`: refuse handshakes without a readable session.
    pub required: bool,
    /// `--session-user-key`: dotted path to the user id in the session.
    pub user_key: Option<String>,
    /// `--session-lifetime`: the TTL kept on write (`session.gc_maxlifetime`).
    pub lifetime: Duration,
    /// `--session-timeout`: how long a read or write may take.
    pub timeout: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            store: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            cookie: "PHPSESSID".to_owned(),
            serializer: Serializer::Php,
            required: false,
            user_key: None,
            lifetime: Duration::from_secs(1440),
            timeout: Duration::from_secs(2),
        }
    }
}

/// The options' help text, for `--help`.
pub const HELP: &str = "\
SESSIONS (the PHP app's own sessions; see docs/php.md):
        --session-store <STORE>     files:DIR (PHP's files handler; DIR may be N;MODE;/path as
                                    in session.save_path) or redis://[:password@]host:port/db
                                    (phpredis, Symfony's RedisSessionHandler) [default: off]
        --session-prefix <STR>      Redis key prefix [default: PHPREDIS_SESSION:] (Symfony: sf_s)
        --session-cookie <NAME>     Cookie with the session id [default: PHPSESSID]
        --session-serializer <php|php_serialize|php_binary>
                                    PHP's session.serialize_handler [default: php]
        --session-required          Refuse handshakes without a readable session (401), or
                                    with 503 while the store is down or slow
        --session-user-key <PATH>   Dotted path to the user id in the session, e.g. user_id
                                    or _sf2_attributes.user_id
        --session-lifetime <DURATION>
                                    TTL kept when writing (session.gc_maxlifetime); older
                                    session files count as gone [default: 1440s]
        --session-timeout <DURATION>
                                    Longest a read or write may take, waiting for PHP's lock
                                    included [default: 2s]
";

impl SessionSettings {
    /// Takes option `name` if it is one of the `--session-*` options,
    /// reading its value with `value` when it has one. `Ok(false)`: not a
    /// session option.
    pub fn take(
        &mut self,
        name: &str,
        value: impl FnOnce() -> Result<String, String>,
    ) -> Result<bool, String> {
        let duration = |v: String| {
            crate::config::parse_duration(&v)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    format!("{name}: not a positive duration: {v:?} (e.g. 500ms, 2s, 24m)")
                })
        };
        match name {
            "--session-store" => self.store = Some(StoreSpec::parse(&value()?)?),
            "--session-prefix" => {
                let v = value()?;
                if v.len() > 256 || v.contains(['\r', '\n']) {
                    return Err(format!("{name}: at most 256 bytes, no line breaks"));
                }
                self.prefix = v;
            }
            "--session-cookie" => {
                let v = value()?;
                let token = !v.is_empty()
                    && v.bytes()
                        .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
                if !token {
                    return Err(format!("{name}: {v:?} is not a cookie name"));
                }
                self.cookie = v;
            }
            "--session-serializer" => {
                let v = value()?;
                self.serializer = v.parse().map_err(|_| {
                    format!("{name}: expected php, php_serialize or php_binary, not {v:?}")
                })?;
            }
            "--session-required" => self.required = true,
            "--session-user-key" => {
                let v = value()?;
                if v.is_empty() || v.split('.').any(str::is_empty) {
                    return Err(format!("{name}: {v:?} is not a dotted path like user_id"));
                }
                self.user_key = Some(v);
            }
            "--session-lifetime" => self.lifetime = duration(value()?)?,
            "--session-timeout" => self.timeout = duration(value()?)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks that the options make sense together.
    pub fn validate(&self) -> Result<(), String> {
        if self.store.is_none() {
            let given = self.required || self.user_key.is_some();
            if given {
                return Err(
                    "--session-required and --session-user-key need --session-store".to_owned(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(args: &[&str]) -> Result<SessionSettings, String> {
        let mut s = SessionSettings::default();
        let mut it = args.iter().map(|a| a.to_string());
        while let Some(name) = it.next() {
            let taken = s.take(&name, || {
                it.next().ok_or_else(|| format!("{name} needs a value"))
            })?;
            assert!(taken, "{name}");
        }
        s.validate()?;
        Ok(s)
    }

    #[test]
    fn options() {
        let s = take(&[
            "--session-store",
            "redis://127.0.0.1:6379/1",
            "--session-prefix",
            "sf_s",
            "--session-serializer",
            "php_serialize",
            "--session-required",
            "--session-user-key",
            "_sf2_attributes.user_id",
            "--session-lifetime",
            "30m",
            "--session-cookie",
            "MOCKSESSID",
        ])
        .unwrap();
        assert_eq!(s.prefix, "sf_s");
        assert_eq!(s.serializer, Serializer::PhpSerialize);
        assert!(s.required);
        assert_eq!(s.user_key.as_deref(), Some("_sf2_attributes.user_id"));
        assert_eq!(s.lifetime, Duration::from_secs(1800));
        assert_eq!(s.cookie, "MOCKSESSID");
        assert_eq!(
            SessionSettings::default().lifetime,
            Duration::from_secs(1440)
        );
    }

    #[test]
    fn mistakes() {
        for bad in [
            &["--session-serializer", "json"][..],
            &["--session-store", "mysql://x"],
            &["--session-cookie", "a=b"],
            &["--session-user-key", "a..b"],
            &["--session-lifetime", "0"],
            &["--session-required"],
        ] {
            assert!(take(bad).is_err(), "{bad:?}");
        }
        let mut s = SessionSettings::default();
        assert_eq!(s.take("--listen", || unreachable!()), Ok(false));
    }
}
