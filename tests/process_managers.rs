//! Process managers: systemd's readiness protocol spoken to a socket the
//! test binds, the units in contrib/systemd checked by the real
//! `systemd-analyze verify`, and the program in contrib/supervisor run
//! under Debian's real supervisord (killed with SIGKILL, restarted, the
//! clients back; `supervisorctl stop` gives them 1001).

mod common;

use common::binary;
use common::fallible::{Echo, Ws, close_of};
use sprocket::reactor::SHUTDOWN_REASON;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sprocket");
const CONTRIB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sprocket-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 1024];
    let n = sock.recv(&mut buf).expect("a notification within 10 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn readiness_is_told_once_listening_and_stopping_on_sigterm() {
    let dir = temp_dir("notify");
    let path = dir.join("notify.sock");
    let manager = UnixDatagram::bind(&path).unwrap();
    manager
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["--listen", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &path);
    let mut running = binary::spawn_command(cmd);

    // The first thing told is READY=1, and by then the port serves.
    let ready = recv(&manager);
    let expected = format!(
        "READY=1\nMAINPID={}\nSTATUS=listening on {}",
        running.child.id(),
        running.addr
    );
    assert_eq!(ready, expected);
    let mut ws = Ws::open(running.addr, "/echo").expect("serving once READY=1 is told");
    assert_eq!(ws.echo("ready").unwrap(), Echo::Ok);

    signal(running.child.id(), "TERM");
    assert_eq!(recv(&manager), "STOPPING=1\nSTATUS=draining connections");
    let frame = ws.next(Duration::from_secs(5)).unwrap();
    assert_eq!(close_of(&frame), (1001, SHUTDOWN_REASON.to_owned()));
    ws.close(1001).unwrap();
    assert!(running.child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `systemd-analyze verify` on a unit, its ExecStart pointed at the
/// binary built: no error and no warning.
fn verify_unit(dir: &Path, name: &str) {
    let text = std::fs::read_to_string(format!("{CONTRIB}/systemd/{name}")).unwrap();
    assert!(text.contains("/usr/local/bin/sprocket "), "{name}");
    let path = dir.join(name);
    std::fs::write(
        &path,
        text.replace("/usr/local/bin/sprocket ", &format!("{BIN} ")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{name}: {stderr}"
    );
}

#[test]
fn the_systemd_units_verify() {
    let dir = temp_dir("units");
    verify_unit(&dir, "sprocket.service");
    verify_unit(&dir, "sprocket@.service");
    // The check is real: a misspelt setting is reported.
    let bad = dir.join("bad.service");
    let text = std::fs::read_to_string(dir.join("sprocket.service")).unwrap();
    std::fs::write(&bad, text.replace("Type=notify", "Type=notifyy")).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("notifyy"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// supervisord in the foreground with its own socket, logs and pid file;
/// stopped (and with it sprocket) on drop, also when the test fails.
struct Supervisord {
    child: Child,
    conf: PathBuf,
    dir: PathBuf,
}

impl Supervisord {
    fn start(dir: &Path, port: u16) -> Supervisord {
        let program = std::fs::read_to_string(format!("{CONTRIB}/supervisor/sprocket.conf"))
            .unwrap()
            .lines()
            .map(|line| {
                if let Some(args) = line.strip_prefix("command=/usr/local/bin/sprocket ") {
                    let args = args
                        .replace("0.0.0.0:8080", &format!("127.0.0.1:{port}"))
                        .replace(" --admin-listen 127.0.0.1:9101", "");
                    format!("command={BIN} {args}")
                } else if line.starts_with("stdout_logfile=") {
                    format!("stdout_logfile={}/sprocket.log", dir.display())
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(program.contains(&format!("command={BIN} ")), "{program}");
        std::fs::write(dir.join("sprocket.conf"), program).unwrap();
        let d = dir.display();
        let conf = dir.join("supervisord.conf");
        std::fs::write(
            &conf,
            format!(
                "[unix_http_server]\nfile={d}/supervisor.sock\n\n\
                 [supervisord]\nlogfile={d}/supervisord.log\npidfile={d}/supervisord.pid\n\
                 childlogdir={d}\nnodaemon=true\n\n\
                 [rpcinterface:supervisor]\n\
                 supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
                 [supervisorctl]\nserverurl=unix://{d}/supervisor.sock\n\n\
                 [include]\nfiles = {d}/sprocket.conf\n"
            ),
        )
        .unwrap();
        let child = Command::new("supervisord")
            .arg("-n")
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("supervisord (Debian's supervisor package)");
        Supervisord {
            child,
            conf,
            dir: dir.to_owned(),
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new("supervisorctl")
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .output()
            .unwrap()
    }

    /// sprocket's pid as supervisord knows it (0 when not running).
    fn pid(&self) -> u32 {
        let out = self.ctl(&["pid", "sprocket"]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }
}

impl Drop for Supervisord {
    fn drop(&mut self) {
        // SIGTERM: supervisord stops its programs, then exits.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens a working session on `addr`, retrying until `within` has passed.
fn reconnect(addr: SocketAddr, within: Duration) -> (Ws, Duration) {
    let start = Instant::now();
    loop {
        let attempt = Ws::open(addr, "/echo").and_then(|mut ws| match ws.echo("again")? {
            Echo::Ok => Ok(ws),
            other => Err(format!("{other:?}")),
        });
        match attempt {
            Ok(ws) => return (ws, start.elapsed()),
            Err(e) if start.elapsed() >= within => panic!("not back within {within:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[test]
fn supervisord_restarts_a_killed_sprocket_and_the_clients_come_back() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let dir = temp_dir("supervisord");
    let sup = Supervisord::start(&dir, port);

    let first: Vec<Ws> = (0..20)
        .map(|_| reconnect(addr, Duration::from_secs(15)).0)
        .collect();
    let pid = sup.pid();
    assert_ne!(pid, 0);
    let log = std::fs::read_to_string(dir.join("sprocket.log")).unwrap();
    assert!(log.contains(&format!("listening on ws://{addr}")), "{log}");

    signal(pid, "KILL");
    let killed_at = Instant::now();
    let mut back = Vec::new();
    let mut slowest = Duration::ZERO;
    for mut old in first {
        // The old session is gone with the process.
        assert!(old.echo("dead?").is_err());
        let (ws, _) = reconnect(addr, Duration::from_secs(5));
        slowest = slowest.max(killed_at.elapsed());
        back.push(ws);
    }
    let new_pid = sup.pid();
    assert!(new_pid != 0 && new_pid != pid, "{pid} → {new_pid}");
    println!(
        "supervisord: sprocket killed (pid {pid}), restarted as {new_pid}; 20 clients back within {slowest:?}"
    );
    assert!(slowest < Duration::from_secs(5));

    // A stop is graceful: every client gets 1001 and the reason.
    let stopper = {
        let conf = sup.conf.clone();
        std::thread::spawn(move || {
            Command::new("supervisorctl")
                .arg("-c")
                .arg(&conf)
                .args(["stop", "sprocket"])
                .output()
                .unwrap()
        })
    };
    for ws in &mut back {
        let frame = ws.next(Duration::from_secs(10)).unwrap();
        assert_eq!(close_of(&frame), (1001, SHUTDOWN_REASON.to_owned()));
        ws.close(1001).unwrap();
    }
    let stopped = stopper.join().unwrap();
    assert!(stopped.status.success(), "{stopped:?}");
    let status = String::from_utf8_lossy(&sup.ctl(&["status", "sprocket"]).stdout).into_owned();
    assert!(status.contains("STOPPED"), "{status}");
    // It exited by itself on SIGTERM, not killed after stopwaitsecs.
    let log = std::fs::read_to_string(dir.join("supervisord.log")).unwrap();
    assert!(log.contains("stopped: sprocket (exit status 0)"), "{log}");
}
