//! The `sprocket` binary: options, pid file, signals, default routes.

mod common;
use common::binary::{self, Running, spawn_command};
use common::*;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_sprocket");

fn spawn(args: &[&str]) -> Running {
    binary::spawn(BIN.as_ref(), args, &[])
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn help_lists_every_option() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--listen",
        "--interface",
        "--port",
        "--pid-file",
        "--allowed-origin",
        "--block",
        "--max-message-size",
        "--max-frame-size",
        "--max-outbound",
        "--ping-interval",
        "--handshake-timeout",
        "--close-timeout",
        "--max-connections",
        "--log-format",
        "--grip-route",
        "RUST_LOG",
    ] {
        assert!(help.contains(opt), "--help lacks {opt}");
    }
}

#[test]
fn bad_options_give_one_line_and_exit_2() {
    for args in [
        &["--bogus"][..],
        &["--port", "http"],
        &["--max-frame-size", "-1"],
        &["--block", "1.2.3.4/99"],
        &["--log-format", "yaml"],
        &["--grip-route", "/api"],
        &["--grip-route", "api=http://127.0.0.1:1/"],
        &["--grip-route", "/echo=http://127.0.0.1:1/"],
        &["--grip-route", "/api=ftp://127.0.0.1:1/"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("sprocket: "), "{err}");
    }
    let out = Command::new(BIN)
        .args(["--listen", "203.0.113.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "unbindable address fails");
}

#[test]
fn serves_echo_chat_health_then_sigterm_closes_1001_and_removes_pid_file() {
    let dir = std::env::temp_dir().join(format!("sprocket-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pid_file = dir.join("sprocket.pid");
    let mut srv = spawn(&["--pid-file", pid_file.to_str().unwrap()]);
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, srv.child.id());

    let resp = http_exchange(srv.addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&resp), 200);
    let mut e = Client::connect(srv.addr, "/echo", &[]);
    e.echo("hi");
    let mut a = Client::connect(srv.addr, "/chat", &[]);
    let mut b = Client::connect(srv.addr, "/chat", &[]);
    a.send_text("to b");
    assert_eq!(b.read_text(), "to b");

    signal(pid, "TERM");
    for c in [&mut e, &mut a, &mut b] {
        let f = c.read_frame();
        assert_eq!(f.close_code(), Some(1001));
        c.send_close(1001, "");
    }
    let status = srv.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!pid_file.exists(), "pid file removed on clean exit");
    let log: Vec<String> = srv.log.iter().collect(); // ends when stderr closes
    assert!(
        log.iter().any(|l| l.contains("shutdown complete")),
        "{log:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigint_without_clients_exits_zero() {
    let mut srv = spawn(&[]);
    signal(srv.child.id(), "INT");
    assert_eq!(srv.child.wait().unwrap().code(), Some(0));
}

#[test]
fn limits_from_the_command_line_apply() {
    let srv = spawn(&[
        "--max-message-size",
        "1K",
        "--allowed-origin",
        "app.example",
    ]);
    let mut c = Client::connect(srv.addr, "/echo", &[("Origin", "https://app.example")]);
    c.send_binary(&[0u8; 1025]);
    c.expect_close(1009);
    let c = Client::try_connect(srv.addr, "/echo", &[("Origin", "https://other.example")]);
    assert_eq!(status_of(&c.response), 403);
}

#[test]
fn wamp_broker_is_mounted_where_asked() {
    let srv = spawn(&["--wamp-path", "/pubsub"]);
    let mut c = Client::connect(srv.addr, "/pubsub", &[("Sec-WebSocket-Protocol", "wamp")]);
    assert_eq!(c.header("Sec-WebSocket-Protocol").as_deref(), Some("wamp"));
    assert!(c.read_text().starts_with("[0,\""), "WELCOME first");
    c.send_text(r#"[2,"c1","urn:sprocket:add",40,2]"#);
    assert_eq!(c.read_text(), r#"[3,"c1",42]"#);
    let other = Client::try_connect(srv.addr, "/wamp", &[("Sec-WebSocket-Protocol", "wamp")]);
    assert_eq!(status_of(&other.response), 404);
}

#[test]
fn sighup_is_logged_and_ignored() {
    let mut srv = spawn(&[]);
    signal(srv.child.id(), "HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let line = srv
            .log
            .recv_timeout(deadline - std::time::Instant::now())
            .expect("SIGHUP log line");
        if line.contains("SIGHUP ignored") {
            break;
        }
    }
    Client::connect(srv.addr, "/echo", &[]).echo("still serving");
    assert!(srv.child.try_wait().unwrap().is_none(), "still running");
}

#[test]
fn fd_limit_is_raised_and_logged() {
    // Start from a low soft limit so raising it is observable.
    let mut child = Command::new("bash")
        .args([
            "-c",
            &format!("ulimit -S -n 256 && exec {BIN} --listen 127.0.0.1:0"),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut limit = None;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if let Some(rest) = line.split("open-files limit: ").nth(1) {
            limit = rest.trim().parse::<u64>().ok();
        }
        if line.contains("listening on") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let hard: u64 = String::from_utf8(
        Command::new("bash")
            .args(["-c", "ulimit -H -n"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap_or(u64::MAX);
    let limit = limit.expect("limit logged");
    assert!(limit > 256, "raised from 256, got {limit}");
    assert!(limit <= hard);
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn out_of_file_descriptors_backs_off_and_keeps_serving() {
    // A hard limit of 40 descriptors: the server cannot raise it.
    let mut cmd = Command::new("bash");
    cmd.args([
        "-c",
        &format!("ulimit -n 40 && exec {BIN} --listen 127.0.0.1:0"),
    ]);
    let mut srv = spawn_command(cmd);
    let addr = srv.addr;
    let mut first = Client::connect(addr, "/echo", &[]);
    // Far more connections than descriptors: the kernel queues them in the
    // backlog, accept() fails with EMFILE.
    let extra: Vec<std::net::TcpStream> = (0..60)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let pid = srv.child.id();
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    assert!(
        used < 30,
        "server spun the CPU at EMFILE: {used} ticks in 1 s"
    );
    first.echo("existing connections keep working");
    let log: Vec<String> = srv.log.try_iter().collect();
    let warnings = log.iter().filter(|l| l.contains("accept failed")).count();
    assert!(
        (1..=3).contains(&warnings),
        "logged once per interval, got {warnings}: {log:?}"
    );
    drop(extra);
    // Descriptors come back; new clients are served again.
    wait_until("new clients served after descriptors free up", || {
        let mut c = Client::try_connect(addr, "/echo", &[]);
        if !c.response.starts_with("HTTP/1.1 101") {
            return false;
        }
        c.echo("back");
        true
    });
    let _ = srv.child.kill();
}

#[test]
fn demo_page_is_served_at_root_and_points_at_the_broker() {
    let srv = spawn(&[]);
    let resp = http_exchange(srv.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&resp), 200);
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"),
        "{head}"
    );
    assert!(body.contains("global.WampClient = "), "the page's client");
    assert!(body.contains(r#"<meta name="sprocket-wamp-path" content="/wamp">"#));
    assert!(body.trim_end().ends_with("</html>"), "whole page");
    let resp = http_exchange(srv.addr, b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&resp), 404);

    let srv = spawn(&["--wamp-path", "/ws/\"pub&sub\""]);
    let resp = http_exchange(srv.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        resp.contains(r#"<meta name="sprocket-wamp-path" content="/ws/&quot;pub&amp;sub&quot;">"#),
        "the page follows --wamp-path, HTML-escaped"
    );
}

/// Runs `sprocket probe ARGS`: (exit code, stdout, stderr).
fn probe(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).arg("probe").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn probe_succeeds_against_echo_and_wamp() {
    let srv = spawn(&["--max-message-size", "32"]);
    let url = |path: &str| format!("ws://{}{path}", srv.addr);
    let (code, out, err) = probe(&[&url("/echo")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("ok: {} answered with a reply in ", url("/echo"))),
        "{out}"
    );
    let (code, out, err) = probe(&[&url("/wamp"), "--protocol", "wamp"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("answered with WAMP WELCOME in"), "{out}");
    let call = r#"[2,"c","urn:sprocket:add",1,2]"#;
    let (code, out, _) = probe(&[&url("/wamp"), "--protocol=wamp", "--text", call]);
    assert_eq!(code, 0);
    assert!(out.contains("WAMP WELCOME and a reply"), "{out}");
    // A close with a code instead of a reply: 1009 for a message over 32 bytes.
    let (code, _, err) = probe(&[&url("/echo"), "--text", &"x".repeat(40)]);
    assert_eq!(code, 1);
    assert!(err.contains("closed the connection with 1009"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn probe_fails_with_one_line_saying_why() {
    let srv = spawn(&[]);
    let (code, _, err) = probe(&[&format!("ws://{}/nowhere", srv.addr)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("handshake refused: 404 Not Found (no application at /nowhere)"),
        "{err}"
    );
    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, _, err) = probe(&[&format!("ws://127.0.0.1:{port}/echo")]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect"), "{err}");
    // A server that accepts and never answers: the timeout holds.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let started = std::time::Instant::now();
    let (code, _, err) = probe(&[
        &format!("ws://{}/echo", mute.local_addr().unwrap()),
        "--timeout",
        "300ms",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("timed out waiting for the handshake response"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // A server that answers but never replies.
    let (code, _, err) = probe(&[&format!("ws://{}/chat", srv.addr), "--timeout", "300ms"]);
    assert_eq!(code, 1);
    assert!(err.contains("timed out waiting for a reply"), "{err}");
    for args in [
        &[][..],
        &["ws://h/", "--bogus"],
        &["ws://h/", "ws://i/"],
        &["ws://h/", "--timeout", "0"],
    ] {
        let (code, _, err) = probe(args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    let (code, _, err) = probe(&["wss://h/"]);
    assert_eq!((code, err.contains("TLS")), (1, true), "{err}");
    let (code, out, _) = probe(&["--help"]);
    assert_eq!(code, 0);
    for opt in ["--text", "--protocol", "--timeout"] {
        assert!(out.contains(opt), "{opt} in probe --help");
    }
}

#[test]
fn admin_listener_serves_health_and_metrics_and_the_public_port_does_not() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = format!("127.0.0.1:{port}");
    let srv = spawn(&["--admin-listen", &admin, "--block", "10.9.8.7"]);
    let line = srv.start_line();
    assert!(line.contains(&format!("admin on http://{admin}")), "{line}");
    let admin: SocketAddr = admin.parse().unwrap();
    let resp = http_exchange(admin, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        resp.starts_with("HTTP/1.1 200 OK\r\n") && resp.ends_with("ok\n"),
        "{resp}"
    );
    let resp = http_exchange(admin, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        resp.contains("sprocket_connections_accepted_total"),
        "{resp}"
    );
    // Counters are the whole server's: the public connection shows up.
    let mut e = Client::connect(srv.addr, "/echo", &[]);
    e.echo("counted");
    let resp = http_exchange(admin, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(resp.contains("sprocket_websockets_open 1\n"), "{resp}");
    // The router applies there as anywhere: unknown paths get 404, other
    // methods 405, WebSocket upgrades nothing.
    let resp = http_exchange(admin, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&resp), 404, "{resp}");
    let resp = http_exchange(
        admin,
        b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status_of(&resp), 405, "{resp}");
    let ws = Client::try_connect(admin, "/health", &[]);
    assert_eq!(status_of(&ws.response), 404, "{}", ws.response);
    // And the public port no longer serves them.
    let resp = http_exchange(srv.addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&resp), 404, "{resp}");
    let resp = http_exchange(srv.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&resp), 404, "{resp}");
}

#[test]
fn json_logs_are_one_object_a_line() {
    let srv = spawn(&["--log-format", "json"]);
    let pid = srv.child.id();
    // A refused handshake logs a line of its own.
    let raw = http_exchange(srv.addr, upgrade_request("/nowhere", &[]).as_bytes());
    assert_eq!(status_of(&raw), 404, "{raw}");
    signal(pid, "TERM");
    let mut lines = srv.startup.clone();
    while let Ok(line) = srv.log.recv_timeout(Duration::from_secs(5)) {
        lines.push(line);
    }
    assert!(lines.len() >= 3, "{lines:?}");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 4, "{line}");
        for key in ["ts", "level", "target", "msg"] {
            assert!(obj[key].is_string(), "{key} in {line}");
        }
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&obj["level"].as_str().unwrap()),
            "{line}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains("listening on ws://")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("shutting down")),
        "{lines:?}"
    );
}
