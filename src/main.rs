//! The `sprocket` binary: echo, chat and a WAMP v1 broker on one reactor.

mod cli;
mod probe;

use cli::{Command, Options};
use sprocket::Server;
use sprocket::app::{Admin, Chat, Echo, IpBlocklist, OriginCheck, Page, Router};
use sprocket::wamp::{Broker, WampServer};
use std::borrow::Cow;
use std::process::ExitCode;

/// The demo page served at `/`: a WAMP v1 browser client and a chat.
const DEMO_PAGE: &str = include_str!("../assets/demo.html");
/// The element of [`DEMO_PAGE`] that tells its script where the broker is.
const DEMO_WAMP_PATH: &str = r#"<meta name="sprocket-wamp-path" content="/wamp">"#;

fn main() -> ExitCode {
    let opts = match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Run(opts)) => opts,
        Ok(Command::Help) => {
            print!("{}", cli::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("sprocket {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Command::ProbeHelp) => {
            print!("{}", cli::PROBE_HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Probe(opts)) => {
            return match probe::run(&opts) {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(line) => {
                    eprintln!("sprocket probe: {line}");
                    ExitCode::FAILURE
                }
            };
        }
        Err(e) => {
            eprintln!("sprocket: {e} (see sprocket --help)");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match serve(*opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the open-files limit to its hard limit: each connection is a
/// descriptor, and the usual soft limit of 1,024 is far below what one
/// reactor can hold.
fn raise_fd_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            log::info!("open-files limit: {limit}");
            if limit < max_connections as u64 + 32 {
                log::warn!(
                    "open-files limit {limit} is below --max-connections {max_connections}; \
                     accepts will fail with EMFILE before the connection limit is reached"
                );
            }
        }
        Err(e) => log::warn!("cannot raise the open-files limit: {e}"),
    }
}

fn serve(opts: Options) -> Result<(), String> {
    raise_fd_limit(opts.config.max_connections);
    let listen = opts.config.listen;
    let mut router = Router::new()
        .page("/", demo_page(&opts.wamp_path))
        .route("/echo", Echo)
        .route("/chat", Chat::default())
        .route(
            opts.wamp_path.clone(),
            WampServer::new(Broker::new().with_demo_procedures()),
        );
    if opts.admin_listen.is_none() {
        router = router.route("/health", Admin).route("/metrics", Admin);
    }
    let blocked = opts.blocked.clone();
    let app = IpBlocklist::new(OriginCheck::new(router, opts.allowed_origins), opts.blocked);
    let mut server =
        Server::bind(opts.config, app).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let admin = match opts.admin_listen {
        Some(addr) => {
            let admin = Router::new()
                .route("/health", Admin)
                .route("/metrics", Admin);
            let bound = server
                .listen(addr, IpBlocklist::new(admin, blocked))
                .map_err(|e| format!("cannot listen on {addr} (--admin-listen): {e}"))?;
            Some(bound)
        }
        None => None,
    };
    server
        .handle_signals()
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    if let Some(path) = &opts.pid_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("cannot write pid file {}: {e}", path.display()))?;
    }
    let addr = server.local_addr();
    match admin {
        Some(admin) => log::info!(
            "sprocket {} listening on ws://{addr} (/echo, /chat, {} for WAMP v1; GET / for the demo page); admin on http://{admin} (GET /health, GET /metrics)",
            env!("CARGO_PKG_VERSION"),
            opts.wamp_path
        ),
        None => log::info!(
            "sprocket {} listening on ws://{addr} (/echo, /chat, {} for WAMP v1; GET / for the demo page, GET /health, GET /metrics)",
            env!("CARGO_PKG_VERSION"),
            opts.wamp_path
        ),
    }
    let result = server.run().map_err(|e| format!("reactor failed: {e}"));
    if let Some(path) = &opts.pid_file
        && let Err(e) = std::fs::remove_file(path)
    {
        log::warn!("cannot remove pid file {}: {e}", path.display());
    }
    result
}

/// The demo page, its script pointed at `wamp_path`.
fn demo_page(wamp_path: &str) -> Page {
    let body: Cow<'static, [u8]> = if wamp_path == "/wamp" {
        Cow::Borrowed(DEMO_PAGE.as_bytes())
    } else {
        let escaped = wamp_path
            .replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let meta = DEMO_WAMP_PATH.replace("/wamp", &escaped);
        Cow::Owned(DEMO_PAGE.replacen(DEMO_WAMP_PATH, &meta, 1).into_bytes())
    };
    Page::ok("text/html; charset=utf-8", body)
}
