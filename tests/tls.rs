//! TLS on the public listener, end to end: certificates made by the test
//! with the openssl CLI (a CA, server certificates for 127.0.0.1, an
//! expired one, a mismatched key), the built binary with --tls-cert and
//! --tls-key, and Python's `websockets` over wss:// trusting the CA.

mod common;

use common::binary::{Running, spawn};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sprocket"))
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What `openssl ARGS` printed.
fn openssl_out(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl CLI");
    assert!(out.status.success(), "openssl {args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A temporary directory with `ca.pem`, and server certificates
/// `srv1.pem`/`srv1.key`, `srv2.pem`/`srv2.key` (another subject and
/// serial, same CA), `expired.pem` (for srv1.key) and `other.key`.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("sprocket-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=sprocket test CA",
        ]);
        openssl(&dir, &args);
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        for (name, serial) in [("srv1", "0x1001"), ("srv2", "0x2002")] {
            let mut args = vec!["req"];
            args.extend(ec);
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let subj = format!("/CN=sprocket {name}");
            args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            openssl(&dir, &args);
            let pem = format!("{name}.pem");
            openssl(
                &dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-set_serial",
                    serial,
                    "-days",
                    "2",
                    "-extfile",
                    "san.ext",
                    "-out",
                    &pem,
                ],
            );
        }
        openssl(
            &dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "other.key",
            ],
        );
        // An expired certificate for srv1.key, through `openssl ca`, which
        // takes explicit dates.
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\n\
             default_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n",
        )
        .unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "3003\n").unwrap();
        openssl(
            &dir,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-keyfile",
                "ca.key",
                "-cert",
                "ca.pem",
                "-in",
                "srv1.csr",
                "-out",
                "expired.pem",
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20210101000000Z",
                "-notext",
            ],
        );
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(pki: &Pki, extra: &[&str]) -> Running {
    let (cert, key) = (pki.path("cert.pem"), pki.path("key.pem"));
    if !Path::new(&cert).exists() {
        std::fs::copy(pki.dir.join("srv1.pem"), &cert).unwrap();
        std::fs::copy(pki.dir.join("srv1.key"), &key).unwrap();
    }
    let mut args = vec!["--tls-cert", &cert, "--tls-key", &key];
    args.extend(extra);
    spawn(&bin(), &args, &[])
}

/// The wss:// client: for each line on stdin, `open`, `send`, or `quit`.
/// `open` connects (a new connection becomes the current one) and prints
/// `open <tls version> <alpn> <serial>`; `send TEXT` prints the echo.
const CLIENT: &str = r#"
import asyncio, ssl, sys, websockets
url, ca, version = sys.argv[1], sys.argv[2], sys.argv[3]
def ctx():
    c = ssl.create_default_context(cafile=ca)
    if version != "any":
        v = ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3
        c.minimum_version = c.maximum_version = v
    c.set_alpn_protocols(["http/1.1"])
    return c
async def main():
    loop = asyncio.get_running_loop()
    conns = []
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if not line or line == "quit":
            return
        cmd, _, arg = line.partition(" ")
        try:
            if cmd == "open":
                ws = await websockets.connect(url, ssl=ctx())
                conns.insert(0, ws)
                so = ws.transport.get_extra_info("ssl_object")
                print("open", so.version(), so.selected_alpn_protocol(), so.getpeercert()["serialNumber"], flush=True)
            elif cmd == "send":
                await conns[int(arg.split()[0])].send(arg)
                print("echo", await conns[int(arg.split()[0])].recv(), flush=True)
        except Exception as e:
            print("error", type(e).__name__, e, flush=True)
asyncio.run(main())
"#;

struct Client {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Client {
    fn new(url: &str, ca: &str, version: &str) -> Client {
        let mut child = Command::new("python3")
            .args(["-c", CLIENT, url, ca, version])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Client { child, out }
    }

    fn ask(&mut self, line: &str) -> String {
        writeln!(self.child.stdin.as_mut().unwrap(), "{line}").unwrap();
        let mut answer = String::new();
        self.out.read_line(&mut answer).unwrap();
        answer.trim().to_owned()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn wss_echo_over_tls12_and_tls13_with_alpn() {
    let pki = Pki::new("echo");
    let server = start(&pki, &[]);
    assert!(
        server.start_line().contains("listening on wss://"),
        "{}",
        server.start_line()
    );
    let url = format!("wss://127.0.0.1:{}/echo", server.addr.port());
    for (version, name) in [("1.2", "TLSv1.2"), ("1.3", "TLSv1.3")] {
        let mut client = Client::new(&url, &pki.path("ca.pem"), version);
        assert_eq!(client.ask("open"), format!("open {name} http/1.1 1001"));
        assert_eq!(client.ask("send 0 hello over tls"), "echo 0 hello over tls");
        // A large message in both directions (many TLS records).
        let big = "x".repeat(300_000);
        assert_eq!(
            client.ask(&format!("send 0 {big}")),
            format!("echo 0 {big}")
        );
    }
}

#[test]
fn sighup_swaps_the_certificate_and_open_connections_stay() {
    let pki = Pki::new("reload");
    let server = start(&pki, &[]);
    let url = format!("wss://127.0.0.1:{}/echo", server.addr.port());
    let mut client = Client::new(&url, &pki.path("ca.pem"), "any");
    assert_eq!(client.ask("open"), "open TLSv1.3 http/1.1 1001");
    std::fs::copy(pki.dir.join("srv2.pem"), pki.dir.join("cert.pem")).unwrap();
    std::fs::copy(pki.dir.join("srv2.key"), pki.dir.join("key.pem")).unwrap();
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    // The log names the new certificate: its subject and notAfter, as
    // openssl reads them.
    let line = wait_log(&server, "cert.pem: subject ");
    let end = openssl_out(
        &pki.dir,
        &[
            "x509", "-in", "srv2.pem", "-noout", "-enddate", "-dateopt", "iso_8601",
        ],
    );
    let end = end
        .trim()
        .strip_prefix("notAfter=")
        .unwrap()
        .replace('Z', " UTC");
    assert!(
        line.ends_with(&format!("subject CN=sprocket srv2, notAfter {end}")),
        "{line} (openssl: {end})"
    );
    wait_log(&server, "TLS certificate reloaded");
    // The old connection (now index 1 after the new one opens) goes on.
    assert_eq!(client.ask("open"), "open TLSv1.3 http/1.1 2002");
    assert_eq!(client.ask("send 1 old"), "echo 1 old");
    assert_eq!(client.ask("send 0 new"), "echo 0 new");
    // A broken pair on reload: the old certificate stays.
    std::fs::copy(pki.dir.join("other.key"), pki.dir.join("key.pem")).unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_log(&server, "TLS reload failed, keeping the old certificate");
    assert_eq!(client.ask("open"), "open TLSv1.3 http/1.1 2002");
}

fn wait_log(server: &Running, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match server.log.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no log line with {needle:?} in {seen:#?}");
}

#[test]
fn plain_http_on_the_tls_port_gets_400_with_a_hint() {
    let pki = Pki::new("plain");
    let server = start(&pki, &[]);
    let mut sock = TcpStream::connect(server.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    sock.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("this port speaks TLS: use https:// or wss://"),
        "{answer}"
    );
    wait_log(&server, "plain HTTP on the TLS port");
}

#[test]
fn an_untrusting_client_fails_and_others_are_served() {
    let pki = Pki::new("untrusted");
    let server = start(&pki, &[]);
    let url = format!("wss://127.0.0.1:{}/echo", server.addr.port());
    // Trusts another certificate only: the server's CA is unknown to it.
    // Python's blocking ssl sends its alert (unknown CA) before it gives up.
    let stranger = Command::new("python3")
        .args([
            "-c",
            "import ssl, socket, sys\n\
             c = ssl.create_default_context(cafile=sys.argv[2])\n\
             s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n\
             try:\n    c.wrap_socket(s, server_hostname='127.0.0.1')\n\
             except ssl.SSLCertVerificationError as e:\n    print('refused', e.verify_message)\n",
            &server.addr.port().to_string(),
            &pki.path("srv2.pem"),
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&stranger.stdout);
    assert!(
        said.starts_with("refused"),
        "{said} {}",
        String::from_utf8_lossy(&stranger.stderr)
    );
    let line = wait_log(&server, "TLS failed");
    assert!(line.contains("UnknownCA"), "{line}");
    // Python websockets (asyncio) refuses the certificate too (it closes
    // without an alert: counted, logged at debug).
    let mut asyncio_stranger = Client::new(&url, &pki.path("srv2.pem"), "any");
    let answer = asyncio_stranger.ask("open");
    assert!(
        answer.starts_with("error SSLCertVerificationError"),
        "{answer}"
    );
    let metrics = https_get(&server, &pki, "/metrics");
    assert!(
        metrics.contains("sprocket_tls_handshake_failures_total 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sprocket_tls_handshakes_total 1\n"),
        "{metrics}"
    );
    let mut client = Client::new(&url, &pki.path("ca.pem"), "any");
    assert_eq!(client.ask("open"), "open TLSv1.3 http/1.1 1001");
    assert_eq!(client.ask("send 0 still here"), "echo 0 still here");
}

#[test]
fn a_stalled_tls_handshake_is_closed_after_the_handshake_timeout() {
    let pki = Pki::new("stall");
    let server = start(&pki, &["--handshake-timeout", "1s"]);
    for first in [
        &b""[..],
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
    ] {
        let mut sock = TcpStream::connect(server.addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock.write_all(first).unwrap();
        let begun = Instant::now();
        let mut rest = Vec::new();
        let _ = sock.read_to_end(&mut rest);
        let took = begun.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(4),
            "closed after {took:?}"
        );
        // No HTTP answer in plaintext inside a TLS connection.
        assert!(!rest.starts_with(b"HTTP/"), "{rest:?}");
    }
}

/// GET over https:// with Python's urllib, trusting the test CA.
fn https_get(server: &Running, pki: &Pki, path: &str) -> String {
    let url = format!("https://127.0.0.1:{}{path}", server.addr.port());
    let out = Command::new("python3")
        .args([
            "-c",
            "import ssl, sys, urllib.request\n\
             c = ssl.create_default_context(cafile=sys.argv[2])\n\
             print(urllib.request.urlopen(sys.argv[1], context=c).read().decode(), end='')\n",
            &url,
            &pki.path("ca.pem"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails_to_start(args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_files_stop_the_start_with_a_clear_message() {
    let pki = Pki::new("bad");
    let (srv1, key1) = (pki.path("srv1.pem"), pki.path("srv1.key"));
    let err = fails_to_start(&["--tls-cert", &srv1, "--tls-key", &pki.path("other.key")]);
    assert!(err.contains("does not fit --tls-cert"), "{err}");
    assert!(err.contains("other.key"), "{err}");
    let err = fails_to_start(&["--tls-cert", &pki.path("expired.pem"), "--tls-key", &key1]);
    assert!(
        err.contains("expired.pem: the certificate expired (notAfter 2021-01-01 00:00:00 UTC)"),
        "{err}"
    );
    let err = fails_to_start(&["--tls-cert", &pki.path("missing.pem"), "--tls-key", &key1]);
    assert!(
        err.contains("missing.pem: cannot read: No such file"),
        "{err}"
    );
    let err = fails_to_start(&["--tls-cert", &key1, "--tls-key", &key1]);
    assert!(err.contains("no certificate"), "{err}");
    let err = fails_to_start(&["--tls-cert", &srv1, "--tls-key", &srv1]);
    assert!(err.contains("no private key found"), "{err}");
    let err = fails_to_start(&["--tls-cert", &srv1]);
    assert!(err.contains("--tls-cert needs --tls-key"), "{err}");
}

/// GET `path` on `addr` over https://, trusting the test CA: (status, body)
/// or the error Python gave.
fn https_get_at(
    addr: std::net::SocketAddr,
    pki: &Pki,
    path: &str,
) -> Result<(u16, String), String> {
    let url = format!("https://{addr}{path}");
    let out = Command::new("python3")
        .args([
            "-c",
            "import ssl, sys, urllib.request\n\
             c = ssl.create_default_context(cafile=sys.argv[2])\n\
             r = urllib.request.urlopen(sys.argv[1], context=c, timeout=5)\n\
             print(r.status, r.read().decode(), end='')\n",
            &url,
            &pki.path("ca.pem"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let (status, body) = stdout.split_once(' ').unwrap_or((&stdout, ""));
    Ok((status.parse().unwrap_or(0), body.to_owned()))
}

/// A plain-HTTP GET on `addr`: the whole answer as text.
fn plain_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // One write: a TLS port answers the first bytes and closes.
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    sock.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn admin_tls_serves_health_and_metrics_over_https_only() {
    let pki = Pki::new("admin");
    let server = start(&pki, &["--admin-listen", "127.0.0.1:0", "--admin-tls"]);
    assert!(
        server.start_line().contains("admin on https://"),
        "{}",
        server.start_line()
    );
    let admin = server.admin.expect("the admin address");
    let (status, body) = https_get_at(admin, &pki, "/health").unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, metrics) = https_get_at(admin, &pki, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("sprocket_tls_handshakes_total "),
        "{metrics}"
    );
    // Plain HTTP on the admin port gets the hint, not the page.
    let answer = plain_get(admin, "/health");
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("this port speaks TLS: use https:// or wss://"),
        "{answer}"
    );
}

#[test]
fn without_admin_tls_the_admin_listener_stays_plain() {
    let pki = Pki::new("admin-plain");
    let server = start(&pki, &["--admin-listen", "127.0.0.1:0"]);
    assert!(
        server.start_line().contains("admin on http://"),
        "{}",
        server.start_line()
    );
    let admin = server.admin.expect("the admin address");
    let answer = plain_get(admin, "/health");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let metrics = plain_get(admin, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200 "), "{metrics}");
    assert!(
        metrics.contains("sprocket_tls_handshakes_total "),
        "{metrics}"
    );
    // No TLS there: an https client fails its handshake.
    let err = https_get_at(admin, &pki, "/health").unwrap_err();
    assert!(err.contains("SSL"), "{err}");
    // The public port still speaks TLS (its demo page).
    let (status, page) = https_get_at(server.addr, &pki, "/").unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("<html"), "{page}");
}
