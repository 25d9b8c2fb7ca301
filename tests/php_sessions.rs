//! The PHP app's own sessions, written and read by real PHP (Debian's
//! php-cli with its session extension, phpredis, Symfony's
//! HttpFoundation), read and written back by sprocket: the example
//! `examples/php_session.rs` and the binary, against the files handler
//! and a real redis-server, under PHP's real locks.

mod common;
use common::services::RedisServer;
use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const NATIVE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/php/native.php");
const SYMFONY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/php/symfony.php");
const SERIALIZERS: [&str; 3] = ["php", "php_serialize", "php_binary"];

/// A session id PHP could issue, unique in this test run.
fn new_id() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "t{}x{nanos:x}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("sprocket-sessions-{}", new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where PHP keeps sessions in a test, and the matching sprocket options.
enum Store<'a> {
    Files(&'a Path),
    Redis(&'a RedisServer),
}

impl Store<'_> {
    /// `-d` settings for PHP's session extension.
    fn ini(&self, serializer: &str) -> Vec<String> {
        let mut ini = vec![format!("session.serialize_handler={serializer}")];
        match self {
            Store::Files(dir) => {
                ini.push("session.save_handler=files".into());
                ini.push(format!("session.save_path={}", dir.display()));
            }
            Store::Redis(redis) => {
                ini.push("session.save_handler=redis".into());
                ini.push(format!("session.save_path=tcp://127.0.0.1:{}", redis.port));
                ini.push("redis.session.locking_enabled=1".into());
                // Wait up to 5 s for a lock sprocket holds for milliseconds.
                ini.push("redis.session.lock_retries=1000".into());
                ini.push("redis.session.lock_wait_time=5000".into());
            }
        }
        ini
    }

    fn option(&self) -> String {
        match self {
            Store::Files(dir) => format!("files:{}", dir.display()),
            Store::Redis(redis) => redis.url("", 0),
        }
    }
}

fn php_command(ini: &[String], script: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("php");
    cmd.arg("-d").arg("display_errors=stderr");
    for setting in ini {
        cmd.arg("-d").arg(setting);
    }
    cmd.arg(script).args(args);
    cmd
}

/// Runs a PHP script to completion; its stdout.
fn php(ini: &[String], script: &str, args: &[&str]) -> String {
    let out = match php_command(ini, script, args).output() {
        Ok(out) => out,
        Err(e) => panic!(
            "php is not runnable ({e}): these tests need apt-get install php-cli php-redis php-symfony-http-foundation"
        ),
    };
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "php {script} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The example binary, built once if `cargo test` has not built it.
fn example_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap();
        let bin = profile_dir.join("examples").join("php_session");
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--example", "php_session"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            build.arg("--release");
        }
        let status = build.status().expect("cargo to build the example");
        assert!(status.success(), "building examples/php_session.rs failed");
        assert!(bin.exists(), "{} is missing after the build", bin.display());
        bin
    })
}

/// A running example or binary, killed on drop.
struct Running {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `examples/php_session.rs` with `args`.
fn example(args: &[&str]) -> Running {
    let mut child = Command::new(example_bin())
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().expect("a line from the example").unwrap();
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    Running { child, addr }
}

fn cookie(id: &str) -> String {
    format!("theme=dark; PHPSESSID={id}")
}

/// Opens `/session` with the session cookie: the client and the view it
/// was sent on open.
fn open(addr: SocketAddr, id: &str) -> (Client, Value) {
    let cookie = cookie(id);
    let mut c = Client::connect(addr, "/session", &[("Cookie", &cookie)]);
    let view = serde_json::from_str(&c.read_text()).unwrap();
    (c, view)
}

fn ask(c: &mut Client, text: &str) -> Value {
    c.send_text(text);
    serde_json::from_str(&c.read_text()).unwrap()
}

/// The fixture of tests/php/native.php, as the JSON view shows it.
fn check_fixture_view(view: &Value, id: &str, what: &str) {
    assert_eq!(view["id"], id, "{what}: {view}");
    assert_eq!(view["user"], "42", "{what}: {view}");
    let d = &view["data"];
    assert_eq!(d["user_id"], 42, "{what}");
    assert_eq!(d["visits"], 1, "{what}");
    assert_eq!(d["name"], "Zoë", "{what}");
    assert_eq!(d["ratio"], 0.1, "{what}");
    assert_eq!(d["big"], 1.0e25, "{what}");
    assert_eq!(d["half"], 1.5, "{what}");
    assert_eq!(d["inf"], json!({"$float": "INF"}), "{what}");
    assert_eq!(d["ninf"], json!({"$float": "-INF"}), "{what}");
    assert_eq!(d["nan"], json!({"$float": "NAN"}), "{what}");
    assert_eq!(d["max"], i64::MAX, "{what}");
    assert_eq!(d["min"], i64::MIN, "{what}");
    assert_eq!(d["flag"], true, "{what}");
    assert_eq!(d["nothing"], Value::Null, "{what}");
    assert_eq!(d["empty"], "", "{what}");
    assert!(d["bytes"]["$bytes"].is_string(), "{what}: {}", d["bytes"]);
    assert_eq!(
        d["nested"],
        json!({"a": {"b": {"1": "one", "x": 2.5, "7": []}}}),
        "{what}"
    );
    assert_eq!(d["list"], json!([1, 2, 3]), "{what}");
    assert_eq!(
        d["alias"],
        json!([1, 2, 3]),
        "{what}: a reference shows its target"
    );
    assert_eq!(d["account"]["$class"], "Account", "{what}");
    assert_eq!(d["account"]["name"], "ann", "{what}");
    assert_eq!(d["account"]["role"], "admin", "{what}: protected property");
    assert_eq!(
        d["account"]["secret"], "s\u{0}x",
        "{what}: private property"
    );
    assert_eq!(
        d["same_account"]["name"], "ann",
        "{what}: the same object again"
    );
    assert_eq!(d["token"]["$class"], "Token", "{what}");
    assert_eq!(d["legacy"]["$class"], "Legacy", "{what}");
    assert_eq!(d["legacy"]["$serialized"], "v=old", "{what}");
    assert_eq!(d["suit"], json!({"$enum": "Suit:Hearts"}), "{what}");
}

/// PHP writes, sprocket reads equal; sprocket writes, PHP reads back
/// exactly what PHP itself would have written (serialize() compared, so
/// references, objects, floats and bytes all count).
fn round_trip(store: Store<'_>, serializer: &str) {
    let what = format!("{} {serializer}", store.option());
    let ini = store.ini(serializer);
    let id = new_id();
    php(&ini, NATIVE, &["write", &id]);
    let opt = store.option();
    let srv = example(&[
        "--session-store",
        &opt,
        "--session-serializer",
        serializer,
        "--session-user-key",
        "user_id",
    ]);
    let (mut c, view) = open(srv.addr, &id);
    check_fixture_view(&view, &id, &what);

    let expected = php(&ini, NATIVE, &["expect", &id, "visits", "2"]);
    let view = ask(&mut c, "set visits 2");
    assert_eq!(view["data"]["visits"], 2, "{what}: {view}");
    assert_eq!(php(&ini, NATIVE, &["dump", &id]), expected, "{what}");

    let view = ask(&mut c, r#"set nested.a.c {"deep": [true, null, "x"]}"#);
    assert_eq!(
        view["data"]["nested"]["a"]["c"]["deep"],
        json!([true, null, "x"])
    );
    let nested = php(&ini, NATIVE, &["get", &id, "nested"]);
    assert!(
        nested.contains("'c' => \n    array (\n      'deep' => \n      array (\n        0 => true,\n        1 => NULL,\n        2 => 'x',"),
        "{what}: {nested}"
    );
    assert!(
        nested.contains("'x' => 2.5"),
        "{what}: the rest kept: {nested}"
    );

    // PHP changes the session between requests; reload sees it.
    php(&ini, NATIVE, &["hold", &id, "visits", "5", "0"]);
    let view = ask(&mut c, "reload");
    assert_eq!(view["data"]["visits"], 5, "{what}: {view}");
    assert_eq!(view["data"]["nested"]["a"]["c"]["deep"][2], "x", "{what}");
    let view = ask(&mut c, "unset nested.a.c");
    assert!(
        view["data"]["nested"]["a"].get("c").is_none(),
        "{what}: {view}"
    );
    assert_eq!(php(&ini, NATIVE, &["get", &id, "visits"]), "5");
}

#[test]
fn files_handler_every_serializer() {
    let dir = TempDir::new();
    for serializer in SERIALIZERS {
        round_trip(Store::Files(&dir.0), serializer);
    }
}

#[test]
fn redis_handler_every_serializer() {
    let redis = RedisServer::start(None);
    for serializer in SERIALIZERS {
        round_trip(Store::Redis(&redis), serializer);
    }
}

#[test]
fn files_in_php_subdirectory_levels() {
    // session.save_path = "2;0600;DIR": DIR/a/b/sess_ab…, created by hand as
    // PHP asks (mod_files.sh) .
    let dir = TempDir::new();
    let id = new_id();
    let sub = dir.0.join(&id[..1]).join(&id[1..2]);
    std::fs::create_dir_all(&sub).unwrap();
    let save_path = format!("2;0600;{}", dir.0.display());
    let ini = vec![
        "session.save_handler=files".to_owned(),
        // Quoted: `;` starts a comment in ini syntax.
        format!("session.save_path=\"{save_path}\""),
    ];
    php(&ini, NATIVE, &["write", &id]);
    assert!(sub.join(format!("sess_{id}")).exists());
    let opt = format!("files:{save_path}");
    let srv = example(&["--session-store", &opt, "--session-user-key", "user_id"]);
    let (mut c, view) = open(srv.addr, &id);
    check_fixture_view(&view, &id, "depth 2");
    ask(&mut c, "set visits 3");
    assert_eq!(php(&ini, NATIVE, &["get", &id, "visits"]), "3");
}

/// A PHP request that holds the session (and its lock) while sprocket
/// writes another key: sprocket waits for the lock, re-reads, and neither
/// change is lost.
fn concurrent_writes(store: Store<'_>) {
    let ini = store.ini("php");
    let id = new_id();
    php(&ini, NATIVE, &["write", &id]);
    let opt = store.option();
    let srv = example(&["--session-store", &opt, "--session-timeout", "5s"]);
    let (mut c, _) = open(srv.addr, &id);

    let mut holder = php_command(&ini, NATIVE, &["hold", &id, "a", "\"from php\"", "700"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out: BufReader<ChildStdout> = BufReader::new(holder.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "locked\n");
    let started = Instant::now();
    let view = ask(&mut c, r#"set b "from sprocket""#);
    let waited = started.elapsed();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(holder.wait().unwrap().success());
    assert_eq!(rest, "done\n");
    assert!(
        waited >= Duration::from_millis(400),
        "the write must wait for PHP's lock, it took {waited:?}"
    );
    assert_eq!(view["data"]["a"], "from php", "{view}");
    assert_eq!(view["data"]["b"], "from sprocket", "{view}");
    assert_eq!(php(&ini, NATIVE, &["get", &id, "a"]), "'from php'");
    assert_eq!(php(&ini, NATIVE, &["get", &id, "b"]), "'from sprocket'");
    assert_eq!(php(&ini, NATIVE, &["get", &id, "visits"]), "1");
}

#[test]
fn concurrent_writes_under_flock() {
    let dir = TempDir::new();
    concurrent_writes(Store::Files(&dir.0));
}

#[test]
fn concurrent_writes_under_the_phpredis_lock() {
    let redis = RedisServer::start(None);
    concurrent_writes(Store::Redis(&redis));
}

/// The whole answer to a handshake (head and body, where refusals give
/// their reason).
fn status(addr: SocketAddr, cookie: Option<&str>) -> String {
    let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", *c)).collect();
    http_exchange(addr, upgrade_request("/session", &headers).as_bytes())
}

#[test]
fn required_sessions_missing_malformed_and_a_redis_outage() {
    let mut redis = RedisServer::start(None);
    let port = redis.port;
    let store = Store::Redis(&redis);
    let ini = store.ini("php");
    let opt = store.option();
    let id = new_id();
    php(&ini, NATIVE, &["write", &id]);
    let args = ["--session-store", &opt, "--session-timeout", "300ms"];
    let required = example(&[&args[..], &["--session-required"]].concat());
    let optional = example(&args);
    let good = cookie(&id);

    let r = status(required.addr, None);
    assert_eq!(status_of(&r), 401, "{r}");
    assert!(r.contains("PHPSESSID cookie is missing"), "{r}");
    let r = status(required.addr, Some("PHPSESSID=short"));
    assert_eq!(status_of(&r), 401, "{r}");
    let r = status(
        required.addr,
        Some("PHPSESSID=abcdefghijklmnopqrstuv/../../etc"),
    );
    assert_eq!(status_of(&r), 401, "{r}");
    let r = status(required.addr, Some(&cookie(&new_id())));
    assert_eq!(status_of(&r), 401, "an unknown session: {r}");
    assert!(r.contains("no readable session"), "{r}");
    assert_eq!(status_of(&status(required.addr, Some(&good))), 101);

    // Malformed data: a logged reason and no session, never a panic.
    let bad = new_id();
    let mut cli = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::Write;
    let key = format!("PHPREDIS_SESSION:{bad}");
    let set = format!(
        "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$16\r\nvisits|i:1;oops|\r\n",
        key.len()
    );
    cli.write_all(set.as_bytes()).unwrap();
    let mut ok = [0u8; 5];
    cli.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    let r = status(required.addr, Some(&cookie(&bad)));
    assert_eq!(status_of(&r), 401, "malformed: {r}");
    let (_c, view) = open(optional.addr, &bad);
    assert_eq!(view["id"], Value::Null, "malformed: no session: {view}");

    // Redis goes away: 503 when required (after the timeout), a
    // connection without a session otherwise; the example keeps serving.
    redis.kill();
    let started = Instant::now();
    let r = status(required.addr, Some(&good));
    assert_eq!(status_of(&r), 503, "{r}");
    assert!(r.contains("session store is unavailable"), "{r}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    let (_c, view) = open(optional.addr, &id);
    assert_eq!(view["data"], Value::Null, "{view}");

    // Back on the same port (empty: PHP writes the session again):
    // reads work again without restarting sprocket.
    let redis = RedisServer::start_on(port, None);
    php(&Store::Redis(&redis).ini("php"), NATIVE, &["write", &id]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = status(required.addr, Some(&good));
        if status_of(&r) == 101 {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {r}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_c, view) = open(optional.addr, &id);
    assert_eq!(view["data"]["visits"], 1, "{view}");
}

fn symfony(store: &[&str], where_: &str, extra: &[&str]) {
    let id = new_id();
    php(&[], SYMFONY, &[store[0], where_, "write", &id]);
    let args = [
        &[
            "--session-store",
            store[1],
            "--session-user-key",
            "_sf2_attributes.user_id",
        ][..],
        extra,
    ]
    .concat();
    let srv = example(&args);
    let (mut c, view) = open(srv.addr, &id);
    assert_eq!(view["user"], "7", "{view}");
    let d = &view["data"];
    assert_eq!(
        d["_sf2_attributes"]["cart"],
        json!({"apple": 2, "pear": 1}),
        "{view}"
    );
    assert_eq!(d["_symfony_flashes"]["notice"], json!(["Saved!"]), "{view}");
    assert!(d["_sf2_meta"]["c"].is_i64(), "{view}");
    let view = ask(&mut c, r#"set _sf2_attributes.color "blue""#);
    assert_eq!(view["data"]["_sf2_attributes"]["color"], "blue", "{view}");
    let got = php(&[], SYMFONY, &[store[0], where_, "get", &id, "color"]);
    assert_eq!(got, "'blue'");
    let got = php(&[], SYMFONY, &[store[0], where_, "get", &id, "cart"]);
    assert!(got.contains("'apple' => 2"), "{got}");
    let flashes = php(&[], SYMFONY, &[store[0], where_, "flashes", &id]);
    assert!(flashes.contains("'Saved!'"), "{flashes}");
}

#[test]
fn symfony_native_file_handler() {
    let dir = TempDir::new();
    let opt = format!("files:{}", dir.0.display());
    symfony(&["files", &opt], &dir.0.display().to_string(), &[]);
}

#[test]
fn symfony_redis_handler() {
    let redis = RedisServer::start(None);
    let url = redis.url("", 0);
    symfony(
        &["redis", &url],
        &redis.port.to_string(),
        &["--session-prefix", "sf_s"],
    );
}

/// The binary: sessions in front of every route, counted in /metrics.
#[test]
fn the_binary_requires_and_counts_sessions() {
    let dir = TempDir::new();
    let ini = Store::Files(&dir.0).ini("php");
    let id = new_id();
    php(&ini, NATIVE, &["write", &id]);
    std::fs::write(dir.0.join("sess_malformedmalformedmalformed"), "x|y").unwrap();
    let opt = format!("files:{}", dir.0.display());
    let srv = common::binary::spawn(
        env!("CARGO_BIN_EXE_sprocket").as_ref(),
        &[
            "--session-store",
            &opt,
            "--session-required",
            "--session-user-key",
            "user_id",
        ],
        &[],
    );
    let addr = srv.addr;
    let on = |cookie: Option<&str>| {
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", *c)).collect();
        Client::try_connect(addr, "/echo", &headers).response
    };
    assert_eq!(status_of(&on(None)), 401);
    assert_eq!(
        status_of(&on(Some("PHPSESSID=malformedmalformedmalformed"))),
        401
    );
    let good = cookie(&id);
    let mut c = Client::connect(addr, "/echo", &[("Cookie", &good)]);
    c.echo("with a session");
    let metrics = http_exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    for line in [
        "sprocket_session_reads_total{outcome=\"ok\"} 1\n",
        "sprocket_session_reads_total{outcome=\"no_cookie\"} 1\n",
        "sprocket_session_reads_total{outcome=\"malformed\"} 1\n",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

/// A WAMP app behind the session provider, in-process: it sees the PHP
/// session and its user. Subscribing is allowed only to one's own user
/// topic; `urn:whoami` answers the user and a session value.
struct UserTopics;

impl sprocket::wamp::WampApp for UserTopics {
    fn on_call(
        &mut self,
        ctx: &mut sprocket::wamp::WampContext<'_, '_>,
        call: sprocket::wamp::Call,
        _procedure: &str,
        _args: &[Value],
    ) {
        let user = ctx.user(call.conn).map(|u| u.to_string());
        let visits = ctx
            .php_session(call.conn)
            .map(|s| s.to_json()["data"]["visits"].clone());
        ctx.call_result(&call, &json!({"user": user, "visits": visits}));
    }

    fn on_subscribe(
        &mut self,
        ctx: &mut sprocket::wamp::WampContext<'_, '_>,
        conn: sprocket::ConnId,
        topic: &str,
    ) -> sprocket::wamp::Subscribe {
        ctx.user(conn)
            .is_some_and(|u| topic == format!("urn:user:{u}"))
            .into()
    }
}

#[test]
fn a_wamp_app_sees_the_session_and_its_user() {
    use sprocket::app::{SessionOptions, SessionProvider, SessionStore};
    use sprocket::session::Serializer;
    let dir = TempDir::new();
    let ini = Store::Files(&dir.0).ini("php");
    let id = new_id();
    php(&ini, NATIVE, &["write", &id]);
    let path = dir.0.clone();
    let srv = TestServer::start(sprocket::Config::default(), move || {
        let store = SessionStore::files(
            path,
            0,
            Serializer::Php,
            Duration::from_secs(1440),
            Duration::from_secs(2),
        )
        .unwrap();
        let options = SessionOptions {
            user_key: Some("user_id".into()),
            ..SessionOptions::default()
        };
        let router =
            sprocket::Router::new().route("/wamp", sprocket::wamp::WampServer::new(UserTopics));
        SessionProvider::new(store, options, router)
    });
    let good = cookie(&id);
    let mut signed_in = Client::connect(
        srv.addr,
        "/wamp",
        &[("Sec-WebSocket-Protocol", "wamp"), ("Cookie", &good)],
    );
    let welcome: Value = serde_json::from_str(&signed_in.read_text()).unwrap();
    assert_eq!(welcome[0], 0);
    signed_in.send_text(r#"[2, "c1", "urn:whoami"]"#);
    let result: Value = serde_json::from_str(&signed_in.read_text()).unwrap();
    assert_eq!(result, json!([3, "c1", {"user": "42", "visits": 1}]));

    let mut anonymous = Client::connect(srv.addr, "/wamp", &[("Sec-WebSocket-Protocol", "wamp")]);
    anonymous.read_text();
    anonymous.send_text(r#"[2, "c2", "urn:whoami"]"#);
    let result: Value = serde_json::from_str(&anonymous.read_text()).unwrap();
    assert_eq!(result, json!([3, "c2", {"user": null, "visits": null}]));

    // Only the signed-in user may subscribe to their topic.
    signed_in.send_text(r#"[5, "urn:user:42"]"#);
    anonymous.send_text(r#"[5, "urn:user:42"]"#);
    signed_in.send_text(r#"[2, "sync", "urn:whoami"]"#);
    signed_in.read_text();
    anonymous.send_text(r#"[7, "urn:user:42", "for 42"]"#);
    let event: Value = serde_json::from_str(&signed_in.read_text()).unwrap();
    assert_eq!(event, json!([8, "urn:user:42", "for 42"]));
    assert_eq!(
        anonymous.read_timeout(Duration::from_millis(200)),
        Read_::Timeout
    );
}

/// Asks for nothing, so it must be handed no reply and no timer: counts
/// any it gets, and answers on open whether it sees a session.
struct Strict(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl sprocket::Application for Strict {
    fn on_open(
        &mut self,
        ctx: &mut sprocket::Context<'_>,
        conn: sprocket::ConnId,
        _: &sprocket::Request,
    ) {
        let has = ctx.session(conn).is_some();
        ctx.send_text(conn, if has { "session" } else { "none" });
    }
    fn on_message(
        &mut self,
        _: &mut sprocket::Context<'_>,
        _: sprocket::ConnId,
        _: sprocket::Message<'_>,
    ) {
    }
    fn on_close(&mut self, _: &mut sprocket::Context<'_>, _: sprocket::ConnId, _: u16, _: &str) {}
    fn on_timer(&mut self, _: &mut sprocket::Context<'_>, _: sprocket::TimerId) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn on_reply(
        &mut self,
        _: &mut sprocket::Context<'_>,
        _: sprocket::app::Ticket,
        _: sprocket::app::Reply<'_>,
    ) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn late_store_replies_never_reach_the_inner_app() {
    use sprocket::app::{SessionOptions, SessionProvider, SessionStore};
    use sprocket::session::Serializer;
    let mut redis = RedisServer::start(None);
    let port = redis.port;
    let id = new_id();
    php(&Store::Redis(&redis).ini("php"), NATIVE, &["write", &id]);
    let url = redis.url("", 0);
    let foreign = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = foreign.clone();
    let srv = TestServer::start_with(sprocket::Config::default(), move |server| {
        let redis = server.add_redis(&url).unwrap();
        let store = SessionStore::redis(
            redis,
            "PHPREDIS_SESSION:",
            Serializer::Php,
            Duration::from_secs(1440),
            Duration::from_millis(200),
        );
        SessionProvider::new(store, SessionOptions::default(), Strict(seen))
    });
    let good = cookie(&id);
    let hello = |expect: &str| {
        let mut c = Client::connect(srv.addr, "/", &[("Cookie", &good)]);
        let got = c.read_text();
        got == expect
    };
    assert!(hello("session"));
    // Redis goes: reads time out (no session), their GETs wait for it.
    redis.kill();
    assert!(hello("none"));
    assert!(hello("none"));
    // Back: the waiting GETs are answered now, to nobody who still asks.
    let redis = RedisServer::start_on(port, None);
    php(&Store::Redis(&redis).ini("php"), NATIVE, &["write", &id]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hello("session") {
        assert!(Instant::now() < deadline, "reads never worked again");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(hello("session"));
    assert_eq!(
        foreign.load(Ordering::SeqCst),
        0,
        "replies or timers leaked to the inner app"
    );
}
