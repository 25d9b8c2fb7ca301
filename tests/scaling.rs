//! Several sprocket processes on one host, as `docs/scaling.md` runs
//! them: `contrib/scaling/sprocket-cluster.sh` in both modes (one port
//! each behind the real nginx with `contrib/scaling/nginx-sprocket.conf`,
//! and one shared port with `--reuse-port`), topics shared through a real
//! `redis-server`.

mod common;
use common::services::{Group, RedisServer};
use common::*;
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sprocket");
const CONTRIB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/scaling");

/// `n` consecutive ports free on 127.0.0.1 (for the script's BASE+i).
fn free_ports(n: u16) -> u16 {
    for _ in 0..100 {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = first.local_addr().unwrap().port();
        if base > u16::MAX - n {
            continue;
        }
        drop(first);
        if (base..base + n).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no {n} consecutive free ports");
}

/// The cluster script, run in its own process group (killed with it).
fn cluster(redis: &RedisServer, n: u16, mode: &str, base: u16, admin: u16) -> Group {
    let mut cmd = Command::new("sh");
    cmd.arg(format!("{CONTRIB}/sprocket-cluster.sh"))
        .env("N", n.to_string())
        .env("MODE", mode)
        .env("BASE_PORT", base.to_string())
        .env("ADMIN_PORT", admin.to_string())
        .env("REDIS", redis.url("", 0))
        .env("SPROCKET", BIN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    let group = Group::spawn(&mut cmd).expect("sh runs the cluster script");
    for i in 0..n {
        wait_until_serving(SocketAddr::from(([127, 0, 0, 1], admin + i)));
    }
    group
}

/// Waits until `/health` answers on `admin`.
fn wait_until_serving(admin: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(admin).is_err() {
        assert!(Instant::now() < deadline, "nothing serves {admin}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn metric(admin: u16, name: &str) -> u64 {
    let text = http_exchange(
        SocketAddr::from(([127, 0, 0, 1], admin)),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    common::metric(&text, name).unwrap_or(0)
}

fn wamp(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr, "/wamp", &[("Sec-WebSocket-Protocol", "wamp")]);
    let welcome: Value = serde_json::from_str(&c.read_text()).unwrap();
    assert_eq!(welcome[0], 0);
    c
}

fn subscribe(c: &mut Client, topic: &str) {
    c.send_text(&json!([5, topic]).to_string());
    c.send_text(r#"[2, "sync", "urn:sprocket:echo", "sync"]"#);
    assert_eq!(c.read_text(), r#"[3,"sync","sync"]"#);
}

/// Every process has some of the clients, and a publish from one client
/// reaches every client, in whichever process, once.
fn check_spread_and_delivery(front: SocketAddr, admin: u16, n: u16, clients: usize) {
    let mut subs: Vec<Client> = (0..clients).map(|_| wamp(front)).collect();
    for c in &mut subs {
        subscribe(c, "lobby");
    }
    for i in 0..n {
        assert!(
            metric(admin + i, "sprocket_websockets_open") > 0,
            "process {i} got no client"
        );
    }
    // Publish until one comes back everywhere: each process is subscribed
    // on Redis by then.
    let mut publisher = wamp(front);
    let mut n_sent = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    'ready: loop {
        assert!(
            Instant::now() < deadline,
            "the processes never heard each other"
        );
        publisher.send_text(&json!([7, "lobby", {"hello": n_sent}]).to_string());
        n_sent += 1;
        std::thread::sleep(Duration::from_millis(50));
        for c in &mut subs {
            if matches!(c.read_timeout(Duration::from_millis(1)), Read_::Timeout) {
                continue 'ready;
            }
        }
        break;
    }
    // Drain the warm-up events, then the real one, once each.
    std::thread::sleep(Duration::from_millis(200));
    for c in &mut subs {
        while !matches!(c.read_timeout(Duration::from_millis(5)), Read_::Timeout) {}
    }
    publisher.send_text(r#"[7, "lobby", "everyone"]"#);
    for c in &mut subs {
        assert_eq!(c.read_text(), r#"[8,"lobby","everyone"]"#);
    }
    std::thread::sleep(Duration::from_millis(200));
    for c in &mut subs {
        assert!(matches!(
            c.read_timeout(Duration::from_millis(1)),
            Read_::Timeout
        ));
    }
}

/// nginx with the contrib snippet, its upstreams and port rewritten.
struct Nginx {
    _group: Group,
    dir: PathBuf,
    port: u16,
}

impl Nginx {
    fn start(upstreams: &[u16]) -> Nginx {
        let dir = std::env::temp_dir().join(format!("sprocket-nginx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_ports(1);
        let snippet = std::fs::read_to_string(format!("{CONTRIB}/nginx-sprocket.conf")).unwrap();
        let servers: String = upstreams
            .iter()
            .map(|p| format!("    server 127.0.0.1:{p};\n"))
            .collect();
        let snippet = snippet
            .replace(
                "    server 127.0.0.1:8081;\n    server 127.0.0.1:8082;\n",
                &servers,
            )
            .replace("listen 8080;", &format!("listen 127.0.0.1:{port};"));
        assert!(
            snippet.contains(&servers),
            "the snippet's upstream lines moved"
        );
        std::fs::write(dir.join("sprocket.conf"), snippet).unwrap();
        let d = dir.display();
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{}}\nhttp {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    \
             proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    \
             uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n    \
             include {d}/sprocket.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let nginx = nginx_binary();
        let conf = dir.join("nginx.conf");
        let test = Command::new(nginx)
            .args(["-t", "-q", "-p"])
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .output()
            .unwrap();
        assert!(
            test.status.success(),
            "nginx -t: {}",
            String::from_utf8_lossy(&test.stderr)
        );
        let group = Group::spawn(
            Command::new(nginx)
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(&conf)
                .args(["-g", "daemon off;"])
                .stderr(Stdio::inherit()),
        )
        .unwrap();
        wait_until_serving(SocketAddr::from(([127, 0, 0, 1], port)));
        Nginx {
            _group: group,
            dir,
            port,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx_binary() -> &'static Path {
    let path = Path::new("/usr/sbin/nginx");
    assert!(
        path.exists(),
        "nginx is not installed: the scaling tests run the real one (apt-get install -y nginx-light)"
    );
    path
}

#[test]
fn processes_behind_nginx_share_topics() {
    let redis = RedisServer::start(None);
    let (base, admin) = (free_ports(2), free_ports(2));
    let _cluster = cluster(&redis, 2, "ports", base, admin);
    let nginx = Nginx::start(&[base, base + 1]);
    let front = SocketAddr::from(([127, 0, 0, 1], nginx.port));
    check_spread_and_delivery(front, admin, 2, 6);
}

#[test]
fn processes_share_one_port_with_reuse_port() {
    let redis = RedisServer::start(None);
    let (port, admin) = (free_ports(1), free_ports(2));
    let _cluster = cluster(&redis, 2, "shared", port, admin);
    let front = SocketAddr::from(([127, 0, 0, 1], port));
    // 40 connections: the kernel hashes them over both listeners (all on
    // one would be a 1 in 2^39 chance).
    check_spread_and_delivery(front, admin, 2, 40);
    // Without --reuse-port, the port is taken: a clear error, exit 1.
    let out = Command::new(BIN)
        .args(["--listen", &front.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {front}")),
        "{stderr}"
    );
}
