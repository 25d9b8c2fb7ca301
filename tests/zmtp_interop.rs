//! `clients::zmtp::ZmtpConn` against real libzmq PUSH peers: PHP's php-zmq
//! (Debian, libzmq 4.3.4) as a PHP app writes it, and pyzmq (PyPI, with the
//! libzmq 4.3.5 its wheel bundles) with heartbeats, wrong socket types and
//! other mechanisms.
//!
//! The test is the I/O: it binds a `std::net::TcpListener` on 127.0.0.1:0,
//! starts the peer, accepts with blocking std I/O and drives the codec (read,
//! `handle_input`, write `transmit`, `poll_event`). Peer scripts are in
//! `tests/zmq/`. A missing `php`/php-zmq or pyzmq fails the test with what
//! to install; nothing is skipped.

use sprocket::clients::zmtp::{Event, Message, Settings, SocketType, ZmtpConn, ZmtpError};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// How long anything here may take before it counts as a failure.
const DEADLINE: Duration = Duration::from_secs(20);

/// A peer process, killed on drop.
struct Peer {
    name: String,
    child: Child,
}

impl Peer {
    fn spawn(name: &str, program: &str, args: &[&str], install: &str) -> Peer {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/zmq");
        let child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| match e.kind() {
                ErrorKind::NotFound => panic!("{program} is not installed: {install}"),
                _ => panic!("could not start {program}: {e}"),
            });
        Peer {
            name: name.into(),
            child,
        }
    }

    /// `php push.php PORT` (php-zmq).
    fn php(port: u16) -> Peer {
        const INSTALL: &str = "apt-get install -y php-cli php-zmq";
        let probe = Command::new("php")
            .args(["-r", "exit(extension_loaded('zmq') ? 0 : 3);"])
            .status()
            .unwrap_or_else(|_| panic!("php is not installed: {INSTALL}"));
        assert!(probe.success(), "PHP's zmq extension is missing: {INSTALL}");
        Peer::spawn(
            "php push.php",
            "php",
            &["push.php", &port.to_string()],
            INSTALL,
        )
    }

    /// `python3 peer.py ARGS... PORT` (pyzmq).
    fn python(args: &[&str], port: u16) -> Peer {
        const INSTALL: &str = "pip install pyzmq==27.3.0 (as .ci/run does)";
        let probe = Command::new("python3")
            .args(["-c", "import zmq"])
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|_| panic!("python3 is not installed: apt-get install -y python3"));
        assert!(probe.success(), "pyzmq is missing: {INSTALL}");
        let port = port.to_string();
        let mut all = vec!["peer.py"];
        all.extend_from_slice(args);
        all.push(&port);
        Peer::spawn(
            &format!("peer.py {}", args.join(" ")),
            "python3",
            &all,
            INSTALL,
        )
    }

    fn stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("stdin piped")
    }

    /// Panics with the peer's stderr if it has already exited.
    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let mut err = String::new();
            if let Some(e) = self.child.stderr.as_mut() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("{} exited early ({status}): {err}", self.name);
        }
    }

    /// Waits (with the deadline) for a successful exit; returns stdout.
    fn finish(mut self) -> String {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "{} did not exit", self.name);
            std::thread::sleep(Duration::from_millis(10));
        };
        let (mut out, mut err) = (String::new(), String::new());
        if let Some(o) = self.child.stdout.as_mut() {
            o.read_to_string(&mut out).expect("stdout");
        }
        if let Some(e) = self.child.stderr.as_mut() {
            e.read_to_string(&mut err).expect("stderr");
        }
        assert!(status.success(), "{} failed ({status}): {err}", self.name);
        out
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listen() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local addr").port();
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    (listener, port)
}

/// Accepts the peer's connection (with the deadline).
fn accept(listener: &TcpListener, peer: &mut Peer) -> TcpStream {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking stream");
                stream
                    .set_read_timeout(Some(Duration::from_millis(20)))
                    .expect("read timeout");
                return stream;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept: {e}"),
        }
        peer.check_alive();
        assert!(Instant::now() < deadline, "{} never connected", peer.name);
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One accepted connection and its codec: the reactor's job in miniature.
struct Conn {
    stream: TcpStream,
    zmtp: ZmtpConn,
    events: Vec<Event>,
    eof: bool,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            zmtp: ZmtpConn::server(Settings::default()),
            events: Vec::new(),
            eof: false,
        }
    }

    fn flush(&mut self) {
        while !self.zmtp.transmit().is_empty() {
            match self.stream.write(self.zmtp.transmit()) {
                Ok(n) => self.zmtp.advance_transmit(n),
                // The peer may close first once it has an ERROR.
                Err(_) if self.zmtp.is_failed() => return,
                Err(e) => panic!("write: {e}"),
            }
        }
    }

    /// Reads, feeds and writes until `done`, EOF or an error event.
    fn drive(&mut self, mut done: impl FnMut(&Conn) -> bool) {
        // 4 KiB reads: the 300 KB frame arrives in many pieces.
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + DEADLINE;
        loop {
            self.flush();
            self.events
                .extend(std::iter::from_fn(|| self.zmtp.poll_event()));
            if done(self) || self.eof || self.zmtp.is_failed() {
                return;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.zmtp.handle_input(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => self.eof = true,
                Err(e) => panic!("read: {e}"),
            }
            assert!(
                Instant::now() < deadline,
                "no end within {DEADLINE:?}: {:?}",
                self.summary()
            );
        }
    }

    /// After our last write: how long until the peer closes its end.
    fn wait_for_peer_close(&mut self, within: Duration) -> Duration {
        let start = Instant::now();
        let mut buf = [0u8; 256];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return start.elapsed(),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return start.elapsed(),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("read: {e}"),
            }
            assert!(
                start.elapsed() < within,
                "the peer did not close within {within:?}"
            );
        }
    }

    fn messages(&self) -> Vec<Message> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    fn error(&self) -> Option<ZmtpError> {
        self.events.iter().find_map(|e| match e {
            Event::Error(e) => Some(e.clone()),
            _ => None,
        })
    }

    /// The events, with big messages shortened, for failure messages.
    fn summary(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| match e {
                Event::Message(m) => {
                    format!("message of {} parts, {} bytes", m.part_count(), m.size())
                }
                other => format!("{other:?}"),
            })
            .collect()
    }

    /// Asserts the first event is a handshake with a PUSH peer of this version.
    fn assert_ready(&self, version: (u8, u8)) {
        match self.events.first() {
            Some(Event::Ready {
                peer_socket_type,
                peer_version,
                metadata,
            }) => {
                assert_eq!(*peer_socket_type, SocketType::Push);
                assert_eq!(*peer_version, version);
                assert_eq!(metadata.get("Socket-Type"), Some(&b"PUSH"[..]));
            }
            _ => panic!("expected Ready first: {:?}", self.summary()),
        }
    }
}

fn message(parts: &[&str]) -> Message {
    Message::from_parts(parts)
}

#[test]
fn php_zmq_push_as_a_php_app_writes_it() {
    let (listener, port) = listen();
    let mut peer = Peer::php(port);
    let mut conn = Conn::new(accept(&listener, &mut peer));
    // Until the PHP process is done and its libzmq closes the connection.
    conn.drive(|_| false);
    assert!(conn.eof, "{:?}", conn.summary());
    assert_eq!(conn.error(), None);
    conn.assert_ready((3, 1));
    let blob = format!(r#"{{"blob":"{}"}}"#, "0123456789".repeat(30_000));
    let expected = vec![
        message(&[r#"{"topic":"news","event":"hello","n":1}"#]),
        message(&["news", r#"{"n":2}"#, "third part"]),
        message(&[&blob]),
        message(&[""]),
        message(&[r#"{"topic":"news","n":5,"text":"é ✓"}"#]),
    ];
    let got = conn.messages();
    assert_eq!(got.len(), expected.len(), "{:?}", conn.summary());
    for (i, (got, want)) in got.iter().zip(&expected).enumerate() {
        assert!(
            got == want,
            "message {i}: {} bytes in {} parts",
            got.size(),
            got.part_count()
        );
    }
    assert_eq!(got[1].last(), b"third part");
    peer.finish();
}

#[test]
fn pyzmq_push_with_heartbeats_gets_its_pongs() {
    let (listener, port) = listen();
    let mut peer = Peer::python(&["heartbeat"], port);
    let mut go = peer.stdin();
    let mut conn = Conn::new(accept(&listener, &mut peer));
    // Ten PINGs at 50 ms take 500 ms, beyond the peer's 300 ms heartbeat
    // timeout: were they not answered, libzmq would drop the connection
    // and send the rest on a new one.
    conn.drive(|c| c.zmtp.pings() >= 10 && !c.messages().is_empty());
    assert_eq!(conn.error(), None, "{:?}", conn.summary());
    assert!(
        !conn.eof,
        "the peer dropped the connection: {:?}",
        conn.summary()
    );
    assert_eq!(conn.zmtp.heartbeat_ttl(), Some(Duration::from_secs(2)));
    go.write_all(b"go\n").expect("tell the peer to go on");
    conn.drive(|_| false);
    assert!(conn.eof);
    conn.assert_ready((3, 1));
    assert_eq!(
        conn.messages(),
        vec![
            message(&["first"]),
            message(&["part one", "", "part three"]),
            message(&["last"]),
        ]
    );
    assert_eq!(conn.error(), None);
    let out = peer.finish();
    assert!(out.contains("disconnects 0"), "{out}");
}

#[test]
fn pyzmq_pub_and_req_are_refused_with_an_error_command() {
    for (kind, expected) in [("PUB", SocketType::Pub), ("REQ", SocketType::Req)] {
        let (listener, port) = listen();
        let mut peer = Peer::python(&["wrong", kind], port);
        let mut conn = Conn::new(accept(&listener, &mut peer));
        conn.drive(|_| false);
        assert_eq!(
            conn.error(),
            Some(ZmtpError::IncompatibleSocketType(expected)),
            "{:?}",
            conn.summary()
        );
        assert!(conn.messages().is_empty());
        conn.flush();
        assert!(conn.zmtp.transmit().is_empty(), "our ERROR was written");
        // libzmq treats ERROR as fatal and closes at once; had it not seen
        // it, it would wait for READY until its 30 s handshake timeout.
        let waited = conn.wait_for_peer_close(Duration::from_secs(5));
        let out = peer.finish();
        eprintln!(
            "{kind}: closed by libzmq {waited:?} after our ERROR; {}",
            out.replace('\n', "; ")
        );
        assert!(out.contains("EVENT_DISCONNECTED"), "{kind}: {out}");
        assert!(!out.contains("EVENT_HANDSHAKE_SUCCEEDED"), "{kind}: {out}");
    }
}

#[test]
fn pyzmq_plain_and_curve_are_refused() {
    for mechanism in ["PLAIN", "CURVE"] {
        let (listener, port) = listen();
        let mut peer = Peer::python(&["mechanism", mechanism], port);
        let mut conn = Conn::new(accept(&listener, &mut peer));
        conn.drive(|_| false);
        // Both sides see the mismatch. libzmq, having our whole greeting
        // first, may hang up before the rest of its own is out: then we
        // see the connection end inside the greeting, with no event.
        match conn.error() {
            Some(ZmtpError::WrongMechanism(m)) => {
                assert!(m.starts_with(mechanism.as_bytes()), "{m:?}");
                eprintln!(
                    "{mechanism}: refused by us, {}",
                    ZmtpError::WrongMechanism(m)
                );
            }
            None if conn.eof && conn.events.is_empty() => {
                eprintln!("{mechanism}: libzmq hung up first");
            }
            other => panic!("{mechanism}: {other:?} in {:?}", conn.summary()),
        }
        assert!(conn.messages().is_empty());
        drop(conn);
        let out = peer.finish();
        assert!(out.contains("EVENT_HANDSHAKE_FAILED"), "{mechanism}: {out}");
        assert!(
            !out.contains("EVENT_HANDSHAKE_SUCCEEDED"),
            "{mechanism}: {out}"
        );
    }
}
