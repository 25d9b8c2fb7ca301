//! The `sprocket` binary: echo, chat and a WAMP v1 broker on one reactor.

mod cli;
mod probe;

use cli::{Command, Options};
use sprocket::Server;
use sprocket::app::{
    Admin, Application, AuthBackend, Backend, Chat, Echo, GripPublish, GripRoute, IpBlocklist,
    OriginCheck, Page, PushEndpoint, PusherServer, RedisPush, Router, SessionProvider,
    SessionStore, ZmqPush,
};
use sprocket::wamp::{Broker, Forward, WampServer, push};
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
            print!("{}", cli::help());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("sprocket {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Command::CheckConfig(settings)) => {
            print!("{settings}");
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
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if opts.log_json {
        logger.format(|buf, record| {
            use std::io::Write;
            let line = serde_json::json!({
                "ts": buf.timestamp_millis().to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "msg": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    logger.init();
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

/// The bearer secret of `POST /publish`: `--publish-secret-file`, else
/// `SPROCKET_PUBLISH_SECRET`; `None` when neither is given.
fn publish_secret(opts: &Options) -> Result<Option<String>, String> {
    let secret = match &opts.push.secret_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("--publish-secret-file {}: {e}", path.display()))?,
        None => match std::env::var("SPROCKET_PUBLISH_SECRET") {
            Ok(s) => s,
            Err(_) => return Ok(None),
        },
    };
    let secret = secret.trim().to_owned();
    if secret.is_empty() {
        return Err("the publish secret is empty".into());
    }
    Ok(Some(secret))
}

fn serve(mut opts: Options) -> Result<(), String> {
    raise_fd_limit(opts.config.max_connections);
    let secret = publish_secret(&opts)?;
    let format = match &opts.push.topic_field {
        Some(field) => push::Format::Raw(field.clone()),
        None => push::Format::Envelope,
    };
    opts.config.max_http_body = opts.config.max_http_body.max(opts.push.max_size);
    let listen = opts.config.listen;
    let b = &opts.backends;
    let forward = |url: &Option<sprocket::clients::http::Url>, prefix: &Option<String>| {
        url.clone().map(|url| Forward {
            backend: Backend {
                url,
                forward_cookies: b.forward_cookies,
            },
            prefix: prefix.clone(),
        })
    };
    let mut broker = Broker::new().with_demo_procedures();
    if let Some(f) = forward(&b.rpc, &b.rpc_prefix) {
        log::info!("RPC backend: {}{}", f.backend.url, prefix_note(&f.prefix));
        broker = broker.rpc_backend(f, b.max_calls_in_flight);
    }
    if let Some(f) = forward(&b.subscribe, &b.subscribe_prefix) {
        log::info!(
            "subscribe backend: {}{}",
            f.backend.url,
            prefix_note(&f.prefix)
        );
        broker = broker.subscribe_backend(f);
    }
    let max_grip_publish = opts.config.max_http_body;
    let mut server =
        Server::new(opts.config).map_err(|e| format!("cannot start the reactor: {e}"))?;
    let mut router = Router::new()
        .page("/", demo_page(&opts.wamp_path))
        .route("/echo", Echo)
        .route("/chat", Chat::default())
        .route(
            opts.wamp_path.clone(),
            WampServer::new(broker).realms(opts.realms.clone()),
        );
    for (path, url) in &opts.grip_routes {
        log::info!("GRIP route: WebSocket connections to {path} are run by {url}");
        router = router.route(path.clone(), GripRoute::new(url.clone()));
    }
    if !opts.pusher_apps.is_empty() {
        for app in &opts.pusher_apps {
            let prefix = &opts.pusher_path_prefix;
            log::info!(
                "Pusher app {}: clients at {prefix}/app/{}, HTTP API at {prefix}/apps/{}/",
                app.id,
                app.key,
                app.id
            );
        }
        for app in &opts.pusher_apps {
            if let Some(url) = &app.webhook {
                log::info!("Pusher app {} webhooks: POST {url}", app.id);
            }
        }
        let mut pusher =
            PusherServer::new(opts.pusher_apps.clone()).path_prefix(&opts.pusher_path_prefix);
        if let Some(url) = &opts.bus.url {
            // Presence members across processes live on the bus's Redis.
            let parsed = sprocket::clients::redis::RedisUrl::parse(url)
                .map_err(|e| format!("--bus {url}: {e}"))?;
            let redis = server
                .add_redis_url(parsed)
                .map_err(|e| format!("--bus {url}: {e}"))?;
            pusher = pusher.cluster(redis, &opts.bus.settings.prefix);
        }
        let [ws, api] = pusher.paths();
        router = router.prefixes(&[&ws, &api], pusher);
    }
    let mut publish = secret
        .as_ref()
        .map(|s| PushEndpoint::new(s.as_bytes(), opts.push.max_size, format.clone()));
    if opts.admin_listen.is_none() {
        router = router.route("/health", Admin).route("/metrics", Admin);
        if let Some(endpoint) = publish.take() {
            router = router.route("/publish", endpoint);
        }
    }
    let blocked = opts.blocked.clone();
    if !opts.grip_routes.is_empty() && opts.admin_listen.is_none() {
        log::warn!(
            "GRIP publishing (POST /publish/) is served on --admin-listen only, and none is given"
        );
    }
    if let Some(files) = &opts.tls {
        server.use_tls(files.clone())?;
        log::info!(
            "TLS: certificate {}, key {}",
            files.cert.display(),
            files.key.display()
        );
    }
    let sessions = SessionStore::from_settings(&opts.sessions, &mut server)?;
    let backend_urls = [
        &opts.backends.auth,
        &opts.backends.rpc,
        &opts.backends.subscribe,
    ];
    let grip_urls = opts.grip_routes.iter().map(|(_, url)| url);
    // Every app's webhook (the apps without their own carry --pusher-webhook).
    let hook_url = opts.pusher_apps.iter().filter_map(|a| a.webhook.as_ref());
    for url in backend_urls
        .into_iter()
        .flatten()
        .chain(grip_urls)
        .chain(hook_url)
    {
        let addr = server
            .resolve_http(url)
            .map_err(|e| format!("cannot resolve the host of {url}: {e}"))?;
        log::debug!("{url}: dialling {addr}");
    }
    let routes: Box<dyn Application> = match &opts.backends.auth {
        Some(url) => {
            log::info!("connect authorisation: {url}");
            let backend = Backend {
                url: url.clone(),
                forward_cookies: opts.backends.forward_cookies,
            };
            Box::new(AuthBackend::new(backend, router))
        }
        None => Box::new(router),
    };
    let public: Box<dyn Application> = match sessions {
        Some((store, options)) => {
            log::info!(
                "sessions: {} ({} format, cookie {}{}{})",
                opts.sessions
                    .store
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                opts.sessions.serializer,
                options.cookie,
                if options.required { ", required" } else { "" },
                options
                    .user_key
                    .as_deref()
                    .map(|k| format!(", user at {k}"))
                    .unwrap_or_default()
            );
            Box::new(SessionProvider::new(store, options, routes))
        }
        None => routes,
    };
    let app = IpBlocklist::new(OriginCheck::new(public, opts.allowed_origins), opts.blocked);
    let listening = if opts.reuse_port {
        server.listen_reuse_port(listen, app)
    } else {
        server.listen(listen, app)
    };
    let public_addr = listening.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    if opts.tls.is_some() {
        server
            .serve_tls(public_addr)
            .map_err(|e| format!("TLS on {public_addr}: {e}"))?;
    }
    if let Some(url) = &opts.bus.url {
        server
            .use_redis_bus(url, opts.bus.settings.clone())
            .map_err(|e| format!("--bus {url}: {e}"))?;
    }
    let admin = match opts.admin_listen {
        Some(addr) => {
            let mut admin = Router::new()
                .route("/health", Admin)
                .route("/metrics", Admin);
            if let Some(endpoint) = publish.take() {
                admin = admin.route("/publish", endpoint);
            }
            if !opts.grip_routes.is_empty() {
                admin = admin.route("/publish/", GripPublish::new(max_grip_publish));
            }
            let bound = server
                .listen(addr, IpBlocklist::new(admin, blocked))
                .map_err(|e| format!("cannot listen on {addr} (--admin-listen): {e}"))?;
            if opts.admin_tls {
                server
                    .serve_tls(bound)
                    .map_err(|e| format!("TLS on {bound}: {e}"))?;
            }
            Some(bound)
        }
        None => None,
    };
    if let (Some(url), Some(channel)) = (&opts.push.redis, &opts.push.channel) {
        let id = server
            .add_redis(url)
            .map_err(|e| format!("--push-redis {url}: {e}"))?;
        server
            .add_service(RedisPush::new(id, channel.clone(), format.clone()))
            .map_err(|e| e.to_string())?;
        log::info!("pushes from Redis channel {channel}");
    }
    if let Some(addr) = opts.push.zmq {
        let settings = sprocket::clients::zmtp::Settings {
            max_frame: opts.push.max_size,
            max_message: opts.push.max_size,
            ..Default::default()
        };
        let (id, bound) = server
            .listen_zmq(addr, settings)
            .map_err(|e| format!("cannot listen on tcp://{addr} (--push-zmq): {e}"))?;
        server
            .add_service(ZmqPush::new(id, format.clone()))
            .map_err(|e| e.to_string())?;
        log::info!("pushes over ZeroMQ: PULL on tcp://{bound}");
    }
    if secret.is_some() {
        log::info!("pushes over HTTP: POST /publish (bearer secret)");
    }
    if !opts.grip_routes.is_empty() && opts.admin_listen.is_some() {
        log::info!("GRIP publishing: POST /publish/ on the admin listener");
    }
    server
        .handle_signals()
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    if let Some(path) = &opts.pid_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("cannot write pid file {}: {e}", path.display()))?;
    }
    if let Some(notifier) = sprocket::notify::Notifier::from_env() {
        server.notify_service_manager(notifier);
    }
    let addr = server.local_addr();
    let (ws, http) = if opts.tls.is_some() {
        ("wss", if opts.admin_tls { "https" } else { "http" })
    } else {
        ("ws", "http")
    };
    match admin {
        Some(admin) => log::info!(
            "sprocket {} listening on {ws}://{addr} (/echo, /chat, {} for WAMP v1; GET / for the demo page); admin on {http}://{admin} (GET /health, GET /metrics)",
            env!("CARGO_PKG_VERSION"),
            opts.wamp_path
        ),
        None => log::info!(
            "sprocket {} listening on {ws}://{addr} (/echo, /chat, {} for WAMP v1; GET / for the demo page, GET /health, GET /metrics)",
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

fn prefix_note(prefix: &Option<String>) -> String {
    prefix
        .as_deref()
        .map(|p| format!(" (URIs under {p})"))
        .unwrap_or_default()
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
