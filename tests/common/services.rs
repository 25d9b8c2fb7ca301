//! Real servers the tests start: redis-server, and the Python HTTP
//! backend (tests/http-backend/server.py). Each binds a free port on
//! 127.0.0.1 and is killed on drop. Missing programs fail the test loudly.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long anything in these tests may take before it counts as a failure.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A redis-server child process, killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Child,
}

impl RedisServer {
    pub fn start(password: Option<&str>) -> Self {
        // Port 0 would disable TCP in redis: take a free port from the OS.
        RedisServer::start_on(free_port(), password)
    }

    pub fn start_on(port: u16, password: Option<&str>) -> Self {
        RedisServer::start_with(port, password, &[])
    }

    /// A Redis that keeps everything on disk in `dir` (append-only file,
    /// fsync on every write): killed and restarted on the same port and
    /// dir, it comes back with every acknowledged write.
    pub fn start_persistent(port: u16, dir: &std::path::Path) -> Self {
        let dir = dir.to_str().expect("a UTF-8 temp dir");
        let args = [
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            dir,
        ];
        RedisServer::start_with(port, None, &args)
    }

    fn start_with(port: u16, password: Option<&str>, extra: &[&str]) -> Self {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            // DEBUG SLEEP, for the chaos tests of the Redis bus.
            .args(["--enable-debug-command", "local"]);
        if let Some(pw) = password {
            cmd.args(["--requirepass", pw]);
        }
        // Later arguments win: `extra` may turn persistence on.
        cmd.args(extra);
        let child = match cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "redis-server is not installed: these tests need a real Redis \
                 (apt-get install -y redis-server)"
            ),
            Err(e) => panic!("could not start redis-server: {e}"),
        };
        let mut server = RedisServer { port, child };
        server.wait_until_accepting();
        server
    }

    /// Polls with a deadline until the server accepts connections.
    fn wait_until_accepting(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("redis-server on port {} exited: {status}", self.port);
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not accept within {DEADLINE:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL: the server vanishes mid-stream, as in a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn url(&self, userinfo: &str, db: u32) -> String {
        format!("redis://{userinfo}127.0.0.1:{}/{db}", self.port)
    }

    /// Runs one command with `redis-cli` (what an operator would type) and
    /// returns its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli (it comes with redis-server)");
        assert!(out.status.success(), "redis-cli {args:?} failed");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The Python backend, killed on drop.
pub struct Backend {
    child: Child,
    pub port: u16,
}

impl Backend {
    pub fn start() -> Backend {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/http-backend/server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let port = lines
                .next()
                .and_then(Result::ok)
                .and_then(|l| l.strip_prefix("PORT ")?.trim().parse::<u16>().ok());
            let _ = tx.send(port);
            // Keep reading so the server never blocks on a full pipe.
            lines.for_each(drop);
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .ok()
            .flatten()
            .expect("the backend printed its port within 20 s");
        Backend { child, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child started as the leader of its own process group, and killed
/// with the whole group on drop: `php -S` with `PHP_CLI_SERVER_WORKERS`
/// forks workers that would outlive a killed parent.
pub struct Group(Child);

impl Group {
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Group> {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0).spawn().map(Group)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // kill(1) on the negative pid signals the group: no unsafe here.
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes a PHP session `id` in `dir` with PHP's own files handler: `code`
/// is PHP run between `session_start()` and `session_write_close()`,
/// e.g. `$_SESSION['user_id'] = 42;`.
pub fn write_php_session(dir: &std::path::Path, id: &str, code: &str) {
    let php = format!("session_id('{id}'); session_start(); {code} session_write_close();");
    let out = Command::new("php")
        .args(["-d", "display_errors=stderr", "-d", "session.use_cookies=0"])
        .arg("-d")
        .arg(format!("session.save_path={}", dir.display()))
        .args(["-r", &php])
        .output()
        .expect("php (apt-get install -y php-cli)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "php failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A port the OS says is free on 127.0.0.1, for servers that cannot bind
/// port 0 and report it (redis-server, `php -S`).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// Waits (up to [`DEADLINE`]) until something accepts on `port`; `what`
/// names it in the failure.
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + DEADLINE;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `php -S 127.0.0.1:PORT SCRIPT` with a few workers (a slow request must
/// not hold the others up) and `envs`, killed with its workers on drop.
pub struct PhpServer {
    _group: Group,
    pub port: u16,
}

impl PhpServer {
    pub fn start(script: &str, envs: &[(&str, &std::ffi::OsStr)]) -> PhpServer {
        Self::start_on(free_port(), script, envs)
    }

    /// On a port chosen beforehand (free_port), for a proxy configured
    /// before the backend starts.
    pub fn start_on(port: u16, script: &str, envs: &[(&str, &std::ffi::OsStr)]) -> PhpServer {
        let mut cmd = Command::new("php");
        cmd.args([
            "-d",
            "display_errors=stderr",
            "-S",
            &format!("127.0.0.1:{port}"),
            script,
        ])
        .env("PHP_CLI_SERVER_WORKERS", "4")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let group = Group::spawn(&mut cmd).expect("php (apt-get install -y php-cli) runs");
        wait_for_port(port, "php -S");
        PhpServer {
            _group: group,
            port,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// A directory of its own under the temp dir, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sprocket-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
