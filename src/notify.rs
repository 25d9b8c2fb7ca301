//! The service manager's readiness protocol (systemd's `sd_notify`): one
//! datagram of `KEY=value` lines sent to the Unix socket named by
//! `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).
//!
//! Best effort by design: the socket is non-blocking, and a manager that
//! is gone or a full queue costs a log line, never the server.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

/// Where the service manager listens for notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notifier {
    /// A socket at a filesystem path.
    Path(PathBuf),
    /// A socket in Linux's abstract namespace (`@name`), name without `@`.
    Abstract(Vec<u8>),
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names, if it is set and not empty.
    pub fn from_env() -> Option<Notifier> {
        let value = std::env::var_os("NOTIFY_SOCKET")?;
        Notifier::parse(value.as_encoded_bytes())
    }

    /// Reads a `$NOTIFY_SOCKET` value: `@name` is abstract, anything
    /// else a path. Empty is none.
    pub fn parse(value: &[u8]) -> Option<Notifier> {
        match value {
            [] => None,
            [b'@', name @ ..] => Some(Notifier::Abstract(name.to_vec())),
            path => Some(Notifier::Path(PathBuf::from(
                String::from_utf8_lossy(path).into_owned(),
            ))),
        }
    }

    /// Sends `state` (newline-separated `KEY=value` assignments) as one
    /// datagram. Failures are logged and otherwise ignored.
    pub fn notify(&self, state: &str) {
        if let Err(e) = self.send(state.as_bytes()) {
            log::warn!("cannot notify the service manager ({self:?}): {e}");
        }
    }

    fn send(&self, state: &[u8]) -> std::io::Result<()> {
        let sock = UnixDatagram::unbound()?;
        sock.set_nonblocking(true)?;
        match self {
            Notifier::Path(path) => sock.send_to(state, path)?,
            Notifier::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                sock.send_to_addr(state, &addr)?
            }
        };
        Ok(())
    }
}

/// `READY=1` with the main PID and a status line.
pub fn ready(status: &str) -> String {
    format!(
        "READY=1\nMAINPID={}\nSTATUS={}",
        std::process::id(),
        one_line(status)
    )
}

/// `STOPPING=1` with a status line.
pub fn stopping(status: &str) -> String {
    format!("STOPPING=1\nSTATUS={}", one_line(status))
}

/// A status value cannot span lines: a newline would start another
/// assignment.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_and_abstract_names() {
        assert_eq!(Notifier::parse(b""), None);
        assert_eq!(
            Notifier::parse(b"/run/systemd/notify"),
            Some(Notifier::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            Notifier::parse(b"@sd-notify"),
            Some(Notifier::Abstract(b"sd-notify".to_vec()))
        );
    }

    #[test]
    fn sends_to_a_path_and_to_an_abstract_socket() {
        let dir = std::env::temp_dir().join(format!("sprocket-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        Notifier::Path(path.clone()).notify(&ready("up\nstill up"));
        let mut buf = [0u8; 256];
        let n = rx.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(
            got,
            format!(
                "READY=1\nMAINPID={}\nSTATUS=up still up",
                std::process::id()
            )
        );
        let _ = std::fs::remove_dir_all(&dir);

        use std::os::linux::net::SocketAddrExt;
        let name = format!("sprocket-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        Notifier::parse(format!("@{name}").as_bytes())
            .unwrap()
            .notify(&stopping("bye"));
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1\nSTATUS=bye");
    }

    #[test]
    fn a_missing_manager_is_not_an_error() {
        // Logged, not raised, not blocking.
        Notifier::Path("/nonexistent/sprocket/notify.sock".into()).notify("READY=1");
    }
}
