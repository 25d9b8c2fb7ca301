//! Where PHP keeps sessions and how sprocket names one: the store
//! (`files:DIR` or `redis://…`), the session cookie and PHP's rules for a
//! session id, a session as attached to a connection, and the changes an
//! app writes back.

use super::{PathError, SessionData, Value};
use crate::clients::redis::RedisUrl;
use std::fmt;
use std::path::{Path, PathBuf};

/// A session store, as `--session-store` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    /// PHP's `files` handler: `sess_<id>` files, `depth` directory levels
    /// named after the id's first characters (`session.save_path =
    /// "N;MODE;/path"`), locked with `flock` as PHP locks them.
    Files {
        /// `session.save_path`'s directory.
        dir: PathBuf,
        /// `N` of `N;MODE;/path` (0: files directly in `dir`).
        depth: usize,
    },
    /// phpredis's `redis` handler or Symfony's `RedisSessionHandler`: one
    /// string key per session with a TTL.
    Redis(RedisUrl),
}

impl StoreSpec {
    /// Parses `files:DIR`, `files:N;MODE;DIR` or a `redis://` URL.
    pub fn parse(s: &str) -> Result<StoreSpec, String> {
        if let Some(rest) = s.strip_prefix("files:") {
            return parse_save_path(rest);
        }
        if s.starts_with("redis://") {
            return RedisUrl::parse(s)
                .map(StoreSpec::Redis)
                .map_err(|e| format!("--session-store {s}: {e}"));
        }
        Err(format!(
            "--session-store {s}: expected files:DIR (PHP's files handler) or redis://[:password@]host:port/db"
        ))
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Files { dir, depth: 0 } => write!(f, "files:{}", dir.display()),
            StoreSpec::Files { dir, depth } => write!(f, "files:{depth};{}", dir.display()),
            StoreSpec::Redis(url) => write!(f, "{url}"),
        }
    }
}

/// PHP's `session.save_path` for the files handler: `DIR`, `N;DIR` or
/// `N;MODE;DIR` (the mode only matters to PHP creating files).
fn parse_save_path(s: &str) -> Result<StoreSpec, String> {
    let parts: Vec<&str> = s.split(';').collect();
    let (depth, dir) = match parts.as_slice() {
        [dir] => (0, *dir),
        [n, dir] | [n, _, dir] => {
            let depth = n.trim().parse::<usize>().map_err(|_| {
                format!("--session-store files:{s}: {n:?} is not a directory depth (N;MODE;/path)")
            })?;
            (depth, *dir)
        }
        _ => {
            return Err(format!(
                "--session-store files:{s}: expected DIR or N;MODE;DIR"
            ));
        }
    };
    if dir.is_empty() {
        return Err(format!("--session-store files:{s}: no directory given"));
    }
    if depth > 32 {
        return Err(format!(
            "--session-store files:{s}: depth {depth} is over 32"
        ));
    }
    Ok(StoreSpec::Files {
        dir: PathBuf::from(dir),
        depth,
    })
}

/// Whether `id` is a session id PHP could have issued: 22 to 256 bytes of
/// `[a-zA-Z0-9,-]` (what `session.sid_bits_per_character` can produce).
/// Anything else is treated as no session, so a hostile cookie never
/// reaches a file name or a Redis key.
pub fn valid_id(id: &str) -> bool {
    (22..=256).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b',' || b == b'-')
}

/// The value of cookie `name` in a request's `Cookie` header values (RFC
/// 6265 §5.4: `name=value` pairs separated by `;`), the first one if it
/// is given more than once, as PHP takes it. Surrounding double quotes
/// are dropped.
pub fn cookie<'a>(headers: impl IntoIterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    headers.into_iter().find_map(|line| {
        line.split(';').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| {
                let v = v.trim();
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v)
            })
        })
    })
}

/// Where PHP's files handler keeps session `id` under `dir` with `depth`
/// levels: `dir/a/b/sess_abc…` for depth 2. `id` must be [`valid_id`].
pub fn file_path(dir: &Path, depth: usize, id: &str) -> PathBuf {
    let mut path = dir.to_path_buf();
    for c in id.chars().take(depth) {
        path.push(c.to_string());
    }
    path.push(format!("sess_{id}"));
    path
}

/// A session attached to a connection: its id, its data as last read or
/// written, and the user it names (see `--session-user-key`).
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// The session id (the cookie's value).
    pub id: String,
    /// The decoded data.
    pub data: SessionData,
    /// The user id found at the user key, if any.
    pub user: Option<String>,
}

impl Session {
    /// The session, with the user found at `user_key` (a dotted path; an
    /// int or a string value names a user, anything else none).
    pub fn new(id: String, data: SessionData, user_key: Option<&str>) -> Session {
        let user = user_key.and_then(|key| user_of(data.get(key)?));
        Session { id, data, user }
    }

    /// The JSON view apps and backends see: `{"id", "user", "data"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "user": self.user,
            "data": self.data.to_json(),
        })
    }
}

/// A user id from a session value: ints and non-empty UTF-8 strings.
fn user_of(v: &Value) -> Option<String> {
    match v {
        Value::Int(n) => Some(n.to_string()),
        Value::Str(s) if !s.is_empty() => String::from_utf8(s.clone()).ok(),
        _ => None,
    }
}

/// What an app changes in a session: paths set or removed. Writing it
/// re-reads the stored session under the store's lock and applies only
/// these, so what PHP changed meanwhile under other keys stays.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Patch {
    changes: Vec<(String, Option<Value>)>,
}

impl Patch {
    /// No changes.
    pub fn new() -> Patch {
        Patch::default()
    }

    /// Sets the value at a dotted `path` (`visits`, `_sf2_attributes.color`).
    pub fn set(mut self, path: impl Into<String>, value: Value) -> Patch {
        self.changes.push((path.into(), Some(value)));
        self
    }

    /// Removes the value at `path`.
    pub fn remove(mut self, path: impl Into<String>) -> Patch {
        self.changes.push((path.into(), None));
        self
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Applies the changes in order.
    pub fn apply(&self, data: &mut SessionData) -> Result<(), PathError> {
        for (path, value) in &self.changes {
            match value {
                Some(v) => data.set(path, v.clone())?,
                None => {
                    data.remove(path);
                }
            }
        }
        Ok(())
    }
}

/// Why a session could not be read or written.
#[derive(Debug)]
pub enum StoreError {
    /// The store has no session with that id (never created, expired,
    /// destroyed).
    NotFound,
    /// The stored data is not in the configured format.
    Malformed(super::DecodeError),
    /// The changes cannot be applied or written in the configured format.
    Unwritable(String),
    /// PHP (or another writer) held the session's lock until the deadline.
    Locked,
    /// The store did not answer before the deadline.
    Timeout,
    /// The store failed (an I/O error, Redis down or refusing).
    Unavailable(String),
}

impl StoreError {
    /// A short label for logs and `/metrics`.
    pub fn outcome(&self) -> &'static str {
        match self {
            StoreError::NotFound => "not_found",
            StoreError::Malformed(_) => "malformed",
            StoreError::Unwritable(_) => "unwritable",
            StoreError::Locked => "locked",
            StoreError::Timeout => "timeout",
            StoreError::Unavailable(_) => "unavailable",
        }
    }

    /// Whether the store itself failed (down, slow, locked), rather than
    /// the session being absent or unreadable.
    pub fn is_store_fault(&self) -> bool {
        matches!(
            self,
            StoreError::Locked | StoreError::Timeout | StoreError::Unavailable(_)
        )
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound => f.write_str("no such session in the store"),
            StoreError::Malformed(e) => write!(f, "session data is malformed: {e}"),
            StoreError::Unwritable(e) => write!(f, "session cannot be written: {e}"),
            StoreError::Locked => f.write_str("the session stayed locked until the deadline"),
            StoreError::Timeout => f.write_str("the session store did not answer in time"),
            StoreError::Unavailable(e) => write!(f, "the session store failed: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_specs() {
        assert_eq!(
            StoreSpec::parse("files:/var/lib/php/sessions").unwrap(),
            StoreSpec::Files {
                dir: "/var/lib/php/sessions".into(),
                depth: 0
            }
        );
        assert_eq!(
            StoreSpec::parse("files:2;0600;/tmp/s").unwrap(),
            StoreSpec::Files {
                dir: "/tmp/s".into(),
                depth: 2
            }
        );
        assert_eq!(
            StoreSpec::parse("files:1;/tmp/s").unwrap(),
            StoreSpec::Files {
                dir: "/tmp/s".into(),
                depth: 1
            }
        );
        assert!(matches!(
            StoreSpec::parse("redis://:pw@127.0.0.1:6379/2"),
            Ok(StoreSpec::Redis(_))
        ));
        for bad in [
            "files:",
            "files:x;/tmp",
            "files:1;2;3;/tmp",
            "memcached://x",
            "/tmp",
        ] {
            assert!(StoreSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_as_php_issues_them() {
        assert!(valid_id("abcdefghijklmnopqrstuv"));
        assert!(valid_id("0123456789-,ABCDEFGHIJabcdef"));
        assert!(!valid_id("abcdefghijklmnopqrstu"), "21 bytes");
        assert!(!valid_id(&"a".repeat(257)));
        assert!(valid_id(&"a".repeat(256)));
        assert!(!valid_id("abcdefghijklmnopqrst/../x"));
        assert!(!valid_id("abcdefghijklmnopqrstuv\0"));
        assert!(!valid_id("abcdefghijklmnopqrstu.v"));
    }

    #[test]
    fn cookies() {
        let h = ["a=1; PHPSESSID=abc ; b=2", "PHPSESSID=second"];
        assert_eq!(cookie(h, "PHPSESSID"), Some("abc"));
        assert_eq!(cookie(["PHPSESSID=\"q\""], "PHPSESSID"), Some("q"));
        assert_eq!(cookie(["XPHPSESSID=1"], "PHPSESSID"), None);
        assert_eq!(cookie(["x", "y=2"], "PHPSESSID"), None);
        assert_eq!(cookie([], "PHPSESSID"), None);
    }

    #[test]
    fn file_paths_with_depth() {
        let d = Path::new("/s");
        assert_eq!(file_path(d, 0, "abc"), Path::new("/s/sess_abc"));
        assert_eq!(file_path(d, 2, "abc"), Path::new("/s/a/b/sess_abc"));
    }
}
