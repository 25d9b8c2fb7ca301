//! Restarts that drop nobody: with `--reuse-port`, a new process listens
//! beside the old one, the old one gets SIGTERM, accepts what its queue
//! still holds, closes every client with 1001 "server restarting,
//! reconnect now", and exits 0 once they have gone; the clients reconnect
//! at once and land on the new process. (New connections that reach the
//! old listener while it drains are dropped SYNs: their clients send them
//! again a second later, to the new process.) Meanwhile four threads opening
//! connections in a tight loop is never refused nor reset.

mod common;

use common::binary::{self, Running};
use common::fallible::{Echo, Ws, close_of};
use sprocket::reactor::SHUTDOWN_REASON;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sprocket");
const CLIENTS: usize = 200;
/// Threads opening new connections in a tight loop.
const HAMMERS: usize = 4;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(addr: SocketAddr, notify: Option<&std::path::Path>) -> Running {
    let mut cmd = Command::new(BIN);
    cmd.args(["--listen", &addr.to_string(), "--reuse-port"]);
    if let Some(path) = notify {
        cmd.env("NOTIFY_SOCKET", path);
    }
    binary::spawn_command(cmd)
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// What one long-lived client saw.
struct Seen {
    close: (u16, String),
    /// From the close frame to a working session on the new process.
    back_in: Duration,
}

#[test]
fn a_restart_with_reuse_port_refuses_nobody_and_everyone_is_back_within_a_second() {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut old = start(addr, None);

    // The long-lived clients, all on the old process.
    let connected = Arc::new(Barrier::new(CLIENTS + 1));
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let connected = connected.clone();
        clients.push(std::thread::spawn(move || -> Result<Seen, String> {
            let opened = Ws::open(addr, "/echo");
            let mut ws = opened.and_then(|mut ws| {
                assert_eq!(ws.echo(&format!("hello {i}"))?, Echo::Ok);
                Ok(ws)
            });
            connected.wait();
            let ws = ws.as_mut().map_err(|e| format!("first session: {e}"))?;
            let frame = ws.next(Duration::from_secs(30))?;
            let closed_at = Instant::now();
            if frame.opcode != 8 {
                return Err(format!("expected a close, got {frame:?}"));
            }
            let close = close_of(&frame);
            let _ = ws.close(close.0);
            // One attempt, no retry: it must work.
            let mut again = Ws::open(addr, "/echo").map_err(|e| format!("reconnect: {e}"))?;
            match again.echo(&format!("back {i}"))? {
                Echo::Ok => {}
                other => return Err(format!("reconnected session: {other:?}")),
            }
            Ok(Seen {
                close,
                back_in: closed_at.elapsed(),
            })
        }));
    }
    connected.wait();

    // New connections in a tight loop through the whole switch.
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let drained = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    // Attempts that took over half a second (a SYN the draining listener
    // dropped, sent again a second later), and the slowest.
    let slow = Arc::new(AtomicUsize::new(0));
    let slowest_attempt = Arc::new(Mutex::new(Duration::ZERO));
    let hammers: Vec<_> = (0..HAMMERS)
        .map(|_| {
            let (stop, attempts, drained, failures) = (
                stop.clone(),
                attempts.clone(),
                drained.clone(),
                failures.clone(),
            );
            let (slow, slowest_attempt) = (slow.clone(), slowest_attempt.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let n = attempts.fetch_add(1, Ordering::SeqCst);
                    let began = Instant::now();
                    let outcome =
                        Ws::open(addr, "/echo").and_then(|mut ws| ws.echo(&format!("probe {n}")));
                    let took = began.elapsed();
                    if took > Duration::from_millis(500) {
                        slow.fetch_add(1, Ordering::SeqCst);
                    }
                    let mut worst = slowest_attempt.lock().unwrap();
                    *worst = (*worst).max(took);
                    drop(worst);
                    match outcome {
                        Ok(Echo::Ok) => {}
                        // Landed on the old process as it drained: told to
                        // come back, which is no refusal.
                        Ok(Echo::Closed(1001, reason)) if reason == SHUTDOWN_REASON => {
                            drained.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(other) => failures.lock().unwrap().push(format!("{n}: {other:?}")),
                        Err(e) => failures.lock().unwrap().push(format!("{n}: {e}")),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    // The new process; ready when it says so.
    let dir = std::env::temp_dir().join(format!("sprocket-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let notify = dir.join("notify.sock");
    let manager = UnixDatagram::bind(&notify).unwrap();
    manager
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut new = start(addr, Some(&notify));
    let mut buf = [0u8; 512];
    let n = manager
        .recv(&mut buf)
        .expect("READY=1 from the new process");
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(
        ready.contains(&format!("MAINPID={}", new.child.id())),
        "{ready}"
    );
    std::thread::sleep(Duration::from_millis(200));

    let before = attempts.load(Ordering::SeqCst);
    let term_at = Instant::now();
    signal(old.child.id(), "TERM");
    let status = loop {
        if let Some(status) = old.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            term_at.elapsed() < Duration::from_secs(10),
            "the old process is still draining after 10 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let drain_took = term_at.elapsed();
    assert!(status.success(), "old process exited with {status:?}");

    let mut seen = Vec::new();
    for c in clients {
        seen.push(c.join().unwrap().unwrap());
    }
    // Long enough for a SYN dropped during the drain to be sent again.
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    for h in hammers {
        h.join().unwrap();
    }

    for s in &seen {
        assert_eq!(s.close, (1001, SHUTDOWN_REASON.to_owned()));
        assert!(
            s.back_in < Duration::from_secs(1),
            "back in {:?}",
            s.back_in
        );
    }
    let slowest = seen.iter().map(|s| s.back_in).max().unwrap();
    let total = attempts.load(Ordering::SeqCst);
    let failures = failures.lock().unwrap();
    println!(
        "restart: {CLIENTS} clients closed 1001 and back within {slowest:?}; \
         old process drained in {drain_took:?}; {total} connection attempts \
         ({} from SIGTERM on), {} told to reconnect by the draining process, \
         {} slower than 0.5 s (slowest {:?}), {} failed",
        total - before,
        drained.load(Ordering::SeqCst),
        slow.load(Ordering::SeqCst),
        slowest_attempt.lock().unwrap(),
        failures.len()
    );
    assert!(failures.is_empty(), "refused or reset: {failures:?}");
    // A dropped SYN costs its client one retransmission, no more.
    assert!(*slowest_attempt.lock().unwrap() < Duration::from_secs(2));
    assert!(
        total - before > 50,
        "the loop made too few attempts: {total}"
    );

    // Everybody is on the new process now.
    let mut ws = Ws::open(addr, "/echo").unwrap();
    assert_eq!(ws.echo("still here").unwrap(), Echo::Ok);
    drop(ws);
    signal(new.child.id(), "TERM");
    assert!(new.child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}
