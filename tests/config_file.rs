//! The real binary with `--config FILE` and `sprocket check-config FILE`:
//! the file's settings apply, the command line overrides them, mistakes
//! name the file's line.

mod common;
use common::binary::{Running, spawn_command};
use common::*;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sprocket");

/// A directory of its own for each test, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("sprocket-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nobody listens on at the moment.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn serve(config: &Path, args: &[&str]) -> Running {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config").arg(config).args(args);
    spawn_command(cmd)
}

fn good_file(port: u16) -> String {
    format!(
        r#"# sprocket's settings for the test
listen = "127.0.0.1:{port}"
wamp-path = "/pubsub"
realm = ["realm1", "com.example"]
block = ["192.0.2.0/24"]
pusher-app = [
  "1:test-key:test-secret",
  {{ id = "2", key = "k2", secret = "s2", max-connections = 1, activity-timeout = "9s" }},
]
pusher-activity-timeout = "7s"
deflate = false
"#
    )
}

#[test]
fn check_config_prints_the_effective_settings() {
    let dir = Dir::new("check");
    let good = dir.write("good.toml", &good_file(9));
    let (code, out, err) = run(&["check-config", good.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    for line in [
        "listen = \"127.0.0.1:9\"",
        "wamp-path = \"/pubsub\"",
        "realm = [\"realm1\", \"com.example\"]",
        "pusher-activity-timeout = \"7s\"",
        "deflate = false",
        "max-message-size = \"16M\"",
        "max-connections = 10000",
        "# tls-cert = (not set)",
    ] {
        assert!(out.lines().any(|l| l == line), "{line:?} not in\n{out}");
    }
    // The output is a config file giving the same settings.
    let again = dir.write("again.toml", &out);
    let (code, out2, err) = run(&["check-config", again.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, out2);
    // Options after FILE override it.
    let (code, out, _) = run(&["check-config", good.to_str().unwrap(), "-p", "10"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("listen = \"127.0.0.1:10\""), "{out}");
}

#[test]
fn a_bad_file_names_the_line_and_exits_2() {
    let dir = Dir::new("bad");
    for (text, expect) in [
        (
            "listen = \"127.0.0.1:1\"\n\nmax-mesage-size = \"1M\"\n",
            ":3:1: unknown key \"max-mesage-size\" (did you mean max-message-size?)",
        ),
        (
            "# x\n# y\nping-interval = \"5d\"\n",
            ":3:17: ping-interval: not a duration: \"5d\"",
        ),
        ("port = 1\nport = 2\n", ":2:"),
        ("realm = [\"a b\"]\n", ":1:9: realm: "),
    ] {
        let bad = dir.write("bad.toml", text);
        let path = bad.to_str().unwrap();
        for args in [&["check-config", path][..], &["--config", path]] {
            let (code, out, err) = run(args);
            assert_eq!(code, Some(2), "{args:?}: {err}");
            assert!(out.is_empty(), "{out}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(
                err.starts_with(&format!("sprocket: {path}{expect}")),
                "{text:?}: {err}"
            );
        }
    }
    let (code, _, err) = run(&["--config", "/nonexistent/sprocket.toml"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("/nonexistent/sprocket.toml: cannot read"),
        "{err}"
    );
}

#[test]
fn serves_as_the_file_says_and_the_command_line_wins() {
    let dir = Dir::new("serve");
    let port = free_port();
    let file = dir.write("sprocket.toml", &good_file(port));

    let srv = serve(&file, &[]);
    assert_eq!(srv.addr, SocketAddr::from(([127, 0, 0, 1], port)));
    assert!(
        srv.start_line().contains("/pubsub for WAMP v1"),
        "{}",
        srv.start_line()
    );
    let resp = http_exchange(srv.addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&resp), 200);
    let mut echo = Client::connect(srv.addr, "/echo", &[]);
    echo.echo("from the file's port");
    // --pusher-activity-timeout reaches the Pusher server: it tells clients.
    let mut pusher = Client::connect(srv.addr, "/app/test-key?protocol=7", &[]);
    let hello = pusher.read_text();
    assert!(hello.contains("pusher:connection_established"), "{hello}");
    assert!(hello.contains(r#"\"activity_timeout\":7"#), "{hello}");
    // The second app, an inline table: its own timeout, and its quota of
    // one connection (a second gets 4004).
    let mut own = Client::connect(srv.addr, "/app/k2?protocol=7", &[]);
    let hello = own.read_text();
    assert!(hello.contains(r#"\"activity_timeout\":9"#), "{hello}");
    let mut over = Client::connect(srv.addr, "/app/k2?protocol=7", &[]);
    let refused = over.read_text();
    assert!(refused.contains("\"code\":4004"), "{refused}");
    over.answer_close(4004);
    drop((echo, pusher, own, srv));

    // --listen on the command line overrides the file's listen; the rest
    // of the file still applies.
    let srv = serve(&file, &["--listen", "127.0.0.1:0"]);
    assert_ne!(srv.addr.port(), port);
    assert!(
        srv.start_line().contains("/pubsub for WAMP v1"),
        "{}",
        srv.start_line()
    );
    let mut echo = Client::connect(srv.addr, "/echo", &[]);
    echo.echo("from the command line's port");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on the file's port"
    );
}

#[test]
fn the_contrib_example_is_valid_and_names_every_option() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/sprocket.toml");
    let (code, _, err) = run(&["check-config", example]);
    assert_eq!(code, Some(0), "{err}");
    // Every option check-config knows is in the example, set or commented.
    let dir = Dir::new("contrib");
    let empty = dir.write("empty.toml", "");
    let (code, defaults, err) = run(&["check-config", empty.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let text = std::fs::read_to_string(example).unwrap();
    let key_of = |line: &str| {
        let line = line.trim_start_matches('#').trim_start();
        let (key, _) = line.split_once(" = ")?;
        key.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            .then(|| key.to_owned())
    };
    let keys: Vec<String> = defaults.lines().filter_map(key_of).collect();
    assert!(keys.len() >= 65, "{keys:?}");
    for key in &keys {
        assert!(
            text.lines().any(|l| key_of(l).as_deref() == Some(key)),
            "contrib/sprocket.toml lacks {key}"
        );
    }
    // Every commented example value is good too (interface and port aside:
    // they go instead of listen). The tables at the end (an app in full)
    // go instead of their list, so they are checked on their own.
    let (plain, tables) = text.split_at(text.find("# [[").expect("a table example"));
    let tables: String = tables
        .lines()
        .map(|l| format!("{}\n", l.trim_start_matches('#').trim_start()))
        .collect();
    let checked = |name: &str, text: &str, holds: &str| {
        let file = dir.write(name, text);
        let (code, out, err) = run(&["check-config", file.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{name}: {err}");
        assert!(out.contains(holds), "{name}: {holds} in\n{out}");
    };
    checked(
        "tables.toml",
        &tables,
        "allowed-origins = [\"https://app.example.com\"]",
    );
    let uncommented: String = plain
        .lines()
        .map(|l| match key_of(l) {
            Some(k) if l.starts_with('#') && k != "interface" && k != "port" => {
                l.trim_start_matches('#').trim_start()
            }
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    checked(
        "all.toml",
        &uncommented,
        "session-store = \"redis://127.0.0.1:6379/0\"",
    );
}
