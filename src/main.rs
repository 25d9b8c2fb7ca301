//! The `sprocket` binary: echo, chat and a WAMP v1 broker on one reactor.

use sprocket::Server;
use sprocket::app::{Chat, Echo, IpBlocklist, OriginCheck, Router};
use sprocket::cli::{self, Command, Options};
use sprocket::wamp::{Broker, WampServer};
use std::process::ExitCode;

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
    let router = Router::new()
        .route("/echo", Echo)
        .route("/chat", Chat::default())
        .route(
            opts.wamp_path.clone(),
            WampServer::new(Broker::new().with_demo_procedures()),
        );
    let app = IpBlocklist::new(OriginCheck::new(router, opts.allowed_origins), opts.blocked);
    let mut server =
        Server::bind(opts.config, app).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    server
        .handle_signals()
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    if let Some(path) = &opts.pid_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("cannot write pid file {}: {e}", path.display()))?;
    }
    let addr = server.local_addr();
    log::info!(
        "sprocket {} listening on ws://{addr} (/echo, /chat, {} for WAMP v1; GET /health)",
        env!("CARGO_PKG_VERSION"),
        opts.wamp_path
    );
    let result = server.run().map_err(|e| format!("reactor failed: {e}"));
    if let Some(path) = &opts.pid_file
        && let Err(e) = std::fs::remove_file(path)
    {
        log::warn!("cannot remove pid file {}: {e}", path.display());
    }
    result
}
