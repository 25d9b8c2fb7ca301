//! The real Pushpin (Debian's 1.36, with condure and zurl) in front of a
//! backend on 127.0.0.1: the reference for WebSocket-over-HTTP and GRIP.
//! Everything lives in a temp dir of its own (configs, ZeroMQ ipc sockets,
//! logs), every port is a free ephemeral one, and zurl and the Pushpin
//! runner (with the condure, pushpin-proxy and pushpin-handler it starts)
//! are killed as process groups on drop. A missing Pushpin fails the test.
#![allow(dead_code)]

use super::services::{DEADLINE, Group, free_port, wait_for_port};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Debian's shared settings, included by every Pushpin config.
const INTERNAL_CONF: &str = "/usr/lib/pushpin/internal.conf";

const INSTALL: &str = "Pushpin is not installed: the GRIP tests compare sprocket with the real \
                       Pushpin (apt-get install -y pushpin; it brings condure and zurl)";

/// How long zurl (Pushpin's HTTP client) waits for a backend answer, in
/// seconds; past it the WebSocket is dropped. Debian's default is 600;
/// 3 is short for a test and long enough for a loaded 2-core machine.
pub const BACKEND_TIMEOUT_SECS: u64 = 3;

/// A running Pushpin and its zurl, killed on drop.
pub struct Pushpin {
    /// The WebSocket/HTTP listener clients connect to.
    pub port: u16,
    /// The handler's HTTP control port (`POST /publish/`).
    pub publish_port: u16,
    dir: PathBuf,
    // Fields drop in order: both process groups are killed, then the dir
    // (configs, ipc sockets, logs) is removed.
    _pushpin: Group,
    _zurl: Group,
    _dir: DirGuard,
}

impl Pushpin {
    /// Starts zurl and Pushpin routing every path to
    /// `127.0.0.1:backend_port` as WebSocket-over-HTTP (`over_http`), and
    /// waits until all of Pushpin's parts said they started and both
    /// listeners accept. The backend need not be up yet.
    pub fn start(backend_port: u16) -> Pushpin {
        let internal = match std::fs::read_to_string(INTERNAL_CONF) {
            Ok(s) => s,
            Err(_) => panic!("{INSTALL} ({INTERNAL_CONF} is missing)"),
        };
        let dir = temp_dir();
        let guard = DirGuard(dir.clone());
        let run = dir.join("run");
        std::fs::create_dir_all(&run).expect("pushpin run dir");
        std::fs::create_dir_all(dir.join("log")).expect("pushpin log dir");
        let (port, publish_port) = (free_port(), free_port());

        // Debian's internal.conf points the proxy at a system zurl in
        // /var/run/zurl: point it at ours.
        let zurl_ipc = format!("ipc://{}", run.display());
        let internal = internal.replace("ipc:///var/run/zurl", &zurl_ipc);
        write(&dir.join("internal.conf"), &internal);
        write(&dir.join("zurl.conf"), &zurl_conf(&zurl_ipc));
        write(
            &dir.join("routes"),
            &format!("* 127.0.0.1:{backend_port},over_http\n"),
        );
        write(
            &dir.join("pushpin.conf"),
            &pushpin_conf(&dir, port, publish_port),
        );

        let zurl = spawn_logged(
            Command::new("zurl").arg(format!("--config={}", dir.join("zurl.conf").display())),
            &dir.join("zurl.out"),
            "zurl",
        );
        let pushpin = spawn_logged(
            Command::new("pushpin")
                .arg("--config")
                .arg(dir.join("pushpin.conf"))
                .args(["--port", &format!("127.0.0.1:{port}"), "-m"]),
            &dir.join("pushpin.out"),
            "pushpin",
        );
        let pp = Pushpin {
            port,
            publish_port,
            dir: dir.clone(),
            _pushpin: pushpin,
            _zurl: zurl,
            _dir: guard,
        };
        pp.wait_started();
        wait_for_port(port, "pushpin (condure)");
        wait_for_port(publish_port, "pushpin-handler's HTTP control port");
        pp
    }

    pub fn ws_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn publish_url(&self) -> String {
        format!("http://127.0.0.1:{}/publish/", self.publish_port)
    }

    /// Pushpin's merged log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pushpin.out")).unwrap_or_default()
    }

    /// Polls the merged log until the runner, handler, proxy and condure
    /// each logged "started" (and zurl did too).
    fn wait_started(&self) {
        let deadline = Instant::now() + DEADLINE;
        let wanted = ["[handler] started", "[proxy] started", "[condure] started"];
        loop {
            let log = self.log();
            let zurl = std::fs::read_to_string(self.dir.join("zurl.out")).unwrap_or_default();
            if wanted.iter().all(|w| log.contains(w)) && zurl.contains(" started") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pushpin did not start within {DEADLINE:?}:\n{log}\nzurl:\n{zurl}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pushpin {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What Pushpin logged, for the failure at hand.
            let keep = std::env::temp_dir().join(format!("spp-failed-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&keep);
            let name = self.dir.file_name().unwrap();
            let _ = std::fs::copy(
                self.dir.join("pushpin.out"),
                keep.join(name).with_extension("pushpin.log"),
            );
            let _ = std::fs::copy(
                self.dir.join("zurl.out"),
                keep.join(name).with_extension("zurl.log"),
            );
            eprintln!("--- pushpin logs kept in {}", keep.display());
        }
        // The runner starts condure, pushpin-proxy and pushpin-handler in
        // process groups of their own, so killing its group misses them:
        // kill each by the pid it wrote in the run dir. (The groups and
        // the dir go after this, with the fields.)
        let Ok(entries) = std::fs::read_dir(self.dir.join("run")) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "pid")
                && let Ok(pid) = std::fs::read_to_string(&path)
                && pid.trim().parse::<u32>().is_ok()
            {
                let _ = Command::new("kill")
                    .args(["-KILL", pid.trim()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// Removes the temp dir when dropped (after both groups are gone).
struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    // ZeroMQ ipc paths must fit a unix socket address (108 bytes): keep
    // the dir short.
    let dir = std::env::temp_dir().join(format!(
        "spp-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn spawn_logged(cmd: &mut Command, log: &Path, what: &str) -> Group {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    match Group::spawn(cmd) {
        Ok(g) => g,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL} ({what}: {e})"),
        Err(e) => panic!("could not start {what}: {e}"),
    }
}

fn zurl_conf(ipc: &str) -> String {
    // `deny=` empty: Debian's default denies 127.*, i.e. our backend.
    format!(
        "[General]\n\
         instance_id=zurl-sprocket-test\n\
         in_spec={ipc}/zurl-in\n\
         in_stream_spec={ipc}/zurl-in-stream\n\
         out_spec={ipc}/zurl-out\n\
         in_req_spec={ipc}/zurl-req\n\
         ipc_file_mode=600\n\
         defpolicy=allow\n\
         allow=\n\
         deny=\n\
         max_open_requests=2000\n\
         buffer_size=200000\n\
         timeout={BACKEND_TIMEOUT_SECS}\n\
         in_hwm=1000\n\
         out_hwm=1000\n"
    )
}

fn pushpin_conf(dir: &Path, port: u16, publish_port: u16) -> String {
    let d = dir.display();
    let mut s = String::new();
    // Debian's pushpin.conf with every port and path moved into `dir`.
    writeln!(s, "[global]").unwrap();
    writeln!(s, "include={d}/internal.conf").unwrap();
    writeln!(s, "rundir={d}/run").unwrap();
    writeln!(s, "ipc_prefix=pushpin-").unwrap();
    writeln!(s, "port_offset=0").unwrap();
    writeln!(s, "stats_connection_ttl=120").unwrap();
    writeln!(s, "[runner]").unwrap();
    writeln!(s, "services=condure,pushpin-proxy,pushpin-handler").unwrap();
    writeln!(s, "http_port={port}").unwrap();
    writeln!(s, "logdir={d}/log").unwrap();
    writeln!(s, "log_level=2").unwrap();
    writeln!(s, "client_buffer_size=8192").unwrap();
    writeln!(s, "client_maxconn=1000").unwrap();
    writeln!(s, "condure_bin=condure").unwrap();
    writeln!(s, "zurl_bin=zurl").unwrap();
    writeln!(s, "[proxy]").unwrap();
    writeln!(s, "routesfile={d}/routes").unwrap();
    writeln!(s, "debug=false").unwrap();
    writeln!(s, "auto_cross_origin=false").unwrap();
    writeln!(s, "accept_x_forwarded_protocol=false").unwrap();
    writeln!(s, "set_x_forwarded_protocol=proto-only").unwrap();
    writeln!(s, "x_forwarded_for=").unwrap();
    writeln!(s, "x_forwarded_for_trusted=").unwrap();
    writeln!(s, "orig_headers_need_mark=").unwrap();
    writeln!(s, "accept_pushpin_route=false").unwrap();
    writeln!(s, "log_from=false").unwrap();
    writeln!(s, "log_user_agent=false").unwrap();
    writeln!(s, "sig_iss=pushpin").unwrap();
    writeln!(s, "sig_key=changeme").unwrap();
    writeln!(s, "upstream_key=").unwrap();
    writeln!(s, "updates_check=off").unwrap();
    writeln!(s, "organization_name=").unwrap();
    writeln!(s, "[handler]").unwrap();
    writeln!(s, "push_in_spec=tcp://127.0.0.1:{}", free_port()).unwrap();
    writeln!(s, "push_in_sub_specs=tcp://127.0.0.1:{}", free_port()).unwrap();
    writeln!(s, "push_in_sub_connect=false").unwrap();
    writeln!(s, "push_in_http_addr=127.0.0.1").unwrap();
    writeln!(s, "push_in_http_port={publish_port}").unwrap();
    writeln!(s, "push_in_http_max_headers_size=10000").unwrap();
    writeln!(s, "push_in_http_max_body_size=1000000").unwrap();
    writeln!(s, "stats_spec=ipc://{d}/run/pushpin-stats").unwrap();
    writeln!(s, "command_spec=tcp://127.0.0.1:{}", free_port()).unwrap();
    writeln!(s, "message_rate=2500").unwrap();
    writeln!(s, "message_hwm=25000").unwrap();
    writeln!(s, "message_wait=5000").unwrap();
    writeln!(s, "id_cache_ttl=60").unwrap();
    writeln!(s, "connection_subscription_max=20").unwrap();
    writeln!(s, "subscription_linger=60").unwrap();
    writeln!(s, "stats_subscription_ttl=60").unwrap();
    writeln!(s, "stats_report_interval=10").unwrap();
    writeln!(s, "stats_format=tnetstring").unwrap();
    s
}
