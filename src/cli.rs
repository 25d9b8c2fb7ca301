//! Command-line options of the `sprocket` binary (part of the binary, not
//! of the library's API).

use sprocket::app::Cidr;
use sprocket::clients::http::Url;
use sprocket::config::Config;
use sprocket::session::SessionSettings;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Serve with these options.
    Run(Box<Options>),
    /// Print the help text.
    Help,
    /// Print the version.
    Version,
    /// `sprocket probe`: check a WebSocket endpoint and exit.
    Probe(crate::probe::ProbeOptions),
    /// `sprocket probe --help`.
    ProbeHelp,
}

/// Options for a server run.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// Reactor settings.
    pub config: Config,
    /// Where to write the process id.
    pub pid_file: Option<PathBuf>,
    /// Origins allowed to connect (empty: any).
    pub allowed_origins: Vec<String>,
    /// Addresses refused with 403.
    pub blocked: Vec<Cidr>,
    /// Where the WAMP v1 broker is mounted.
    pub wamp_path: String,
    /// A second listener for `/health` and `/metrics` (then no longer on
    /// the public one).
    pub admin_listen: Option<SocketAddr>,
    /// The PHP app's sessions (`--session-*`).
    pub sessions: SessionSettings,
    /// Pushes from the backend (`--publish-secret-file`, `--push-*`).
    pub push: PushOptions,
    /// Decisions asked of the backend over HTTP.
    pub backends: BackendOptions,
    /// The Redis bus (`--bus`, `--bus-*`).
    pub bus: BusOptions,
    /// Listen with SO_REUSEPORT.
    pub reuse_port: bool,
    /// `--tls-cert`/`--tls-key`: the public listener speaks TLS.
    pub tls: Option<sprocket::tls::TlsFiles>,
    /// `--admin-tls`: the admin listener speaks TLS too.
    pub admin_tls: bool,
    /// `--log-format json`: one JSON object a log line.
    pub log_json: bool,
    /// `--grip-route PATH=URL`: WebSocket routes driven by a backend over
    /// WebSocket-over-HTTP, in the order given.
    pub grip_routes: Vec<(String, Url)>,
    /// `--pusher-app ID:KEY:SECRET`: Pusher apps served at `/app/{key}`
    /// and `/apps/{id}/...`.
    pub pusher_apps: Vec<sprocket::app::PusherApp>,
    /// `--pusher-webhook URL`: where every Pusher app's webhooks go.
    pub pusher_webhook: Option<Url>,
}

/// `--bus` and friends: topics shared with other processes through Redis.
#[derive(Debug, PartialEq, Eq, Default)]
pub struct BusOptions {
    /// The Redis server (checked URL).
    pub url: Option<String>,
    /// Channel names, probe timing.
    pub settings: sprocket::bus::remote::Settings,
}

/// `--auth-backend`, `--rpc-backend`, `--subscribe-backend` and friends.
#[derive(Debug, PartialEq, Eq)]
pub struct BackendOptions {
    /// Connect authorisation.
    pub auth: Option<Url>,
    /// RPC calls without a local handler.
    pub rpc: Option<Url>,
    /// Only calls under this prefix go to the RPC backend.
    pub rpc_prefix: Option<String>,
    /// Subscription authorisation.
    pub subscribe: Option<Url>,
    /// Only subscriptions under this prefix are asked about.
    pub subscribe_prefix: Option<String>,
    /// Backend calls carry the client's cookies.
    pub forward_cookies: bool,
    /// Forwarded calls in flight per connection.
    pub max_calls_in_flight: usize,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            auth: None,
            rpc: None,
            rpc_prefix: None,
            subscribe: None,
            subscribe_prefix: None,
            forward_cookies: false,
            max_calls_in_flight: 64,
        }
    }
}

/// `PATH=URL` of `--grip-route`.
fn parse_grip_route(v: &str) -> Result<(String, Url), CliError> {
    let Some((path, url)) = v.split_once('=') else {
        return Err(CliError(format!(
            "--grip-route: expected PATH=URL (e.g. /api=http://127.0.0.1:8000/ws), not {v:?}"
        )));
    };
    if !path.starts_with('/') || path.contains(['?', ' ', '#']) {
        return Err(CliError(format!(
            "--grip-route: {path:?} is not a path like /api"
        )));
    }
    Ok((path.to_owned(), parse_backend_url("--grip-route", url)?))
}

fn parse_backend_url(name: &str, v: &str) -> Result<Url, CliError> {
    Url::parse(v).map_err(|e| CliError(format!("{name} {v}: {e}")))
}

/// Where pushes from the backend come in.
#[derive(Debug, PartialEq, Eq)]
pub struct PushOptions {
    /// The file holding the bearer secret of `POST /publish`.
    pub secret_file: Option<PathBuf>,
    /// The largest push body.
    pub max_size: usize,
    /// A Redis server whose channel carries pushes.
    pub redis: Option<String>,
    /// That channel (a pattern with `*`).
    pub channel: Option<String>,
    /// Raw mode: the field naming the topic.
    pub topic_field: Option<String>,
    /// Where to bind a ZeroMQ PULL socket for pushes.
    pub zmq: Option<SocketAddr>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            secret_file: None,
            max_size: 1 << 20,
            redis: None,
            channel: None,
            topic_field: None,
            zmq: None,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: Config::default(),
            pid_file: None,
            allowed_origins: Vec::new(),
            blocked: Vec::new(),
            wamp_path: "/wamp".to_owned(),
            grip_routes: Vec::new(),
            pusher_apps: Vec::new(),
            pusher_webhook: None,
            log_json: false,
            admin_listen: None,
            sessions: SessionSettings::default(),
            push: PushOptions::default(),
            backends: BackendOptions::default(),
            bus: BusOptions::default(),
            reuse_port: false,
            tls: None,
            admin_tls: false,
        }
    }
}

/// A command-line mistake, printed as one line.
#[derive(Debug, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

/// The `--help` text.
pub fn help() -> String {
    HELP.replace("%SESSIONS%", sprocket::session::OPTIONS_HELP)
}

/// The `--help` text, with a marker where the session options go.
const HELP: &str = "\
sprocket - a WebSocket server

USAGE:
    sprocket [OPTIONS]
    sprocket probe URL [--text MSG] [--protocol P] [--timeout D]
                               check an endpoint and exit 0 or 1 (see sprocket probe --help)

Serves, on one thread:
    /          demo page (plain HTTP GET): a WAMP v1 chat and RPC in the browser
    /echo      echoes every message back to its sender
    /chat      relays every message to all other /chat clients
    /wamp      WAMP v1 broker (subprotocol wamp): pub/sub for all, plus the
               procedures urn:sprocket:echo and urn:sprocket:add
    /health    plain HTTP GET, answers 200 ok        } on --admin-listen instead
    /metrics   plain HTTP GET, Prometheus metrics    } when it is given

OPTIONS:
    -l, --listen <ADDR:PORT>        Address to listen on [default: 127.0.0.1:8080]
        --interface <ADDR>          Listen address only (with --port) [default: 127.0.0.1]
    -p, --port <PORT>               Listen port only [default: 8080]
        --admin-listen <ADDR:PORT>  Serve /health and /metrics on this address instead of
                                    the public one (keep it private) [default: off]
        --tls-cert <PEM>            Speak TLS (1.2 and 1.3, ALPN http/1.1) on the public
                                    listener with this certificate chain; reloaded with
                                    --tls-key on SIGHUP [default: off]
        --tls-key <PEM>             The private key of --tls-cert
        --admin-tls                 TLS on --admin-listen too (same certificate)
        --pid-file <PATH>           Write the process id here; removed on clean exit
        --log-format <text|json>    Log lines as text, or as one JSON object each (ts, level,
                                    target, msg); levels from RUST_LOG [default: text]
        --allowed-origin <ORIGIN>   Allow browser pages from ORIGIN (a full origin such as
                                    https://app.example.com, or a host name); repeatable or
                                    comma-separated. When set, other origins, and requests
                                    without Origin, get 403 [default: any origin]
        --block <IP[/PREFIX]>       Refuse clients from an address or CIDR block with 403;
                                    repeatable or comma-separated
        --trusted-proxy <IP[/PREFIX]>
                                    A proxy in front of sprocket: from these addresses the
                                    client address is read from Forwarded (RFC 7239) or
                                    X-Forwarded-For, right to left, skipping trusted
                                    addresses; --block, --max-connections-per-ip, logs and
                                    apps then see that client. Elsewhere those headers are
                                    ignored. Repeatable or comma-separated
        --proxy-protocol            Every connection to --listen starts with a PROXY protocol
                                    v1 or v2 header (HAProxy send-proxy / send-proxy-v2);
                                    without one it is closed. Needs --trusted-proxy: the
                                    address in a header from anywhere else is ignored
        --max-message-size <SIZE>   Largest message a client may send; larger: close 1009
                                    [default: 16M]
        --max-frame-size <SIZE>     Largest frame a client may send; larger: close 1009
                                    [default: 16M]
        --max-outbound <SIZE>       Unsent bytes per connection before it is dropped as a
                                    slow consumer [default: 16M]
        --ping-interval <DURATION>  Ping connections idle this long; drop them when another
                                    interval passes in silence; 0 disables [default: 30s]
        --handshake-timeout <DURATION>
                                    Time allowed for the opening handshake [default: 10s]
        --close-timeout <DURATION>  Time allowed for the close handshake, and grace period
                                    at shutdown [default: 5s]
        --max-connections <N>       Connections held at once; more get 503 [default: 10000]
        --max-connections-per-ip <N>
                                    Connections from one address; more get 429; 0 means
                                    no limit (keep 0 behind a proxy) [default: 0]
        --fanout-flush-delay <DURATION>
                                    How long a broadcast to 32 or more connections may
                                    wait to share one write per connection with the next
                                    ones; 0 writes every loop turn [default: 1ms]
        --tcp-keepalive <DURATION>  Idle time before TCP keepalive probes; 0 disables
                                    [default: 60s]
        --wamp-path <PATH>          Where to mount the WAMP v1 broker [default: /wamp]
        --publish-secret-file <PATH>
                                    Serve POST /publish (on --admin-listen when given) for
                                    pushes from the backend, guarded by the bearer secret in
                                    this file (or in SPROCKET_PUBLISH_SECRET) [default: off]
        --max-push-size <SIZE>      Largest push body; larger: 413 [default: 1M]
        --push-redis <URL>          Take pushes from a Redis channel on this server
        --push-channel <NAME>       ...this channel (a pattern if it has *: PSUBSCRIBE)
        --push-zmq <tcp://IP:PORT>  Bind a ZeroMQ PULL socket (ZMTP 3, NULL security) for pushes
                                    from PHP's ZMQ::SOCKET_PUSH
        --push-topic-field <NAME>   Raw pushes: the whole JSON object is the event and its
                                    field NAME names the topic (Ratchet's push tutorial)

DECISIONS IN THE BACKEND (JSON over HTTP POST; see docs/php.md):
        --auth-backend <URL>        Ask before every WebSocket handshake: 2xx accepts (and may
                                    set the user), 4xx refuses with that status, else 503
        --rpc-backend <URL>         Forward WAMP calls without a local procedure
        --rpc-prefix <PREFIX>       ...only those whose URI starts with PREFIX
        --subscribe-backend <URL>   Ask before each WAMP subscription; 2xx allows
        --subscribe-prefix <PREFIX> ...only for topics starting with PREFIX
        --forward-cookies           Backend calls carry the client's Cookie header
        --backend-timeout <DURATION>
                                    Longest wait for a backend's response [default: 5s]
        --backend-connections <N>   Most connections to one backend (host:port) at once; more
                                    requests wait their turn [default: 32]
        --max-calls-in-flight <N>   Forwarded calls per connection; more get
                                    urn:sprocket:error:busy [default: 64]

WEBSOCKET APPS IN THE BACKEND (Pushpin's WebSocket-over-HTTP and GRIP; see docs/grip.md):
        --grip-route <PATH=URL>     WebSocket connections to PATH are run by the backend at URL:
                                    their events are POSTed to it as application/websocket-events
                                    and its answers applied (repeatable). GRIP publishes go to
                                    POST /publish/ on --admin-listen

THE PUSHER PROTOCOL (Laravel Echo, pusher-js, the Pusher server SDKs; see docs/pusher.md):
        --pusher-app <ID:KEY:SECRET>
                                    Serve this Pusher app (repeatable): clients connect to
                                    /app/KEY, the HTTP API is /apps/ID/... on the same port,
                                    client events are on
        --pusher-webhook <URL>      POST the apps' webhooks here (http://...): channel_occupied,
                                    channel_vacated, member_added, member_removed, client_event,
                                    cache_miss; signed, batched, retried for 5 minutes
    -h, --help                      Print this help
    -V, --version                   Print the version

SCALING OUT (several processes sharing every topic through Redis; see docs/scaling.md):
        --bus <URL>                 Share topics with every process using this Redis server
                                    (redis://[:password@]host[:port][/db]): WAMP publishes and
                                    pushes from every ingress reach subscribers of all of them
                                    [default: this process only]
        --bus-prefix <PREFIX>       Prefix of the bus's Redis channels, so that applications
                                    can share a Redis [default: sprocket:]
        --bus-probe-interval <DURATION>
                                    Probe the bus's subscription when it was quiet this long
                                    [default: 1s]
        --bus-probe-timeout <DURATION>
                                    Replace the subscription connection when nothing came
                                    back this long after a probe [default: 5s]
        --durable-topics <PREFIX>   Topics starting with PREFIX (repeatable or comma-separated)
                                    are durable: also kept in a Redis stream each, from which
                                    a process repairs what it missed (exactly once, in order)
        --durable-maxlen <N>        About how many events each durable topic's stream keeps
                                    [default: 10000]
        --reuse-port                Listen with SO_REUSEPORT: several processes on one port,
                                    the kernel spreads connections among them; a restart
                                    that refuses nobody: start the new process beside the
                                    old, then SIGTERM the old (docs/operations.md)

COMPRESSION (permessage-deflate, RFC 7692; see docs/deflate.md):
        --deflate                   Accept clients' permessage-deflate offers [default: on]
        --no-deflate                Never negotiate compression
        --deflate-context-takeover <none|server|client|both>
                                    Which side may keep its compression context between
                                    messages. Better ratio on small messages, but costs
                                    ~310 KiB (server) / ~23 KiB (client) of memory per
                                    connection that uses it [default: none]
        --deflate-server-window-bits <8-15>
                                    Largest window the server compresses with [default: 15]
        --deflate-client-window-bits <9-15>
                                    Window asked of clients that let the server choose
                                    [default: 15]
        --deflate-level <0-9>       Compression level; 0 sends everything uncompressed
                                    (compressed input is still accepted) [default: 1]
        --deflate-min-size <SIZE>   Messages shorter than this are sent uncompressed
                                    [default: 64]

%SESSIONS%
SIZE is bytes with an optional K, M or G suffix (powers of 1024).
DURATION is a number with ms, s or m (seconds if no unit).

Logging goes to stderr; set RUST_LOG (e.g. RUST_LOG=debug) to change the level
[default: info]. SIGINT or SIGTERM closes every connection with 1001 and exits 0; SIGHUP is
logged and ignored (nothing is reloaded). At start the open-files limit is raised
to its hard limit, and logged.

With NOTIFY_SOCKET set (systemd's Type=notify), READY=1 is sent once every listener
serves and STOPPING=1 when a shutdown begins (contrib/systemd, docs/operations.md).
";

/// The `probe --help` text.
pub const PROBE_HELP: &str = "\
sprocket probe - check a WebSocket endpoint, for monitors and process managers

USAGE:
    sprocket probe URL [--text MSG] [--protocol P] [--timeout D]

Connects to URL (ws://host:port/path), completes the opening handshake,
sends MSG and waits for a reply. With --protocol wamp it first waits for
WAMP v1's WELCOME (and sends MSG only if given). Then it closes with 1000.

Exits 0 and prints one line (\"ok: ... answered with a reply in 1.2 ms\")
on success; exits 1 with one line on stderr saying what failed (refused,
handshake status, no reply within the timeout, closed with a code ...);
exits 2 on a usage error.

OPTIONS:
        --text <MSG>        Message to send [default: \"sprocket probe\", none with wamp]
        --protocol <P>      Subprotocol to ask for, e.g. wamp
        --timeout <DURATION>
                            Limit for the whole check [default: 5s]
    -h, --help              Print this help
";

/// Parses the arguments of `sprocket probe`.
fn parse_probe(args: impl Iterator<Item = String>) -> Result<Command, CliError> {
    let mut url = None;
    let mut opts = crate::probe::ProbeOptions {
        url: String::new(),
        text: None,
        protocol: None,
        timeout: Duration::from_secs(5),
    };
    let mut args = args;
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || -> Result<String, CliError> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| CliError(format!("probe {name} needs a value")))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::ProbeHelp),
            "--text" => opts.text = Some(value()?),
            "--protocol" => opts.protocol = Some(value()?),
            "--timeout" => opts.timeout = positive(&name, parse_duration(&name, &value()?)?)?,
            other if other.starts_with('-') => {
                return Err(CliError(format!("probe: unknown option {other}")));
            }
            _ if url.is_some() => {
                return Err(CliError(format!("probe: one URL only, not also {arg:?}")));
            }
            _ => url = Some(arg),
        }
    }
    opts.url =
        url.ok_or_else(|| CliError("probe needs a URL, e.g. ws://127.0.0.1:8080/echo".into()))?;
    Ok(Command::Probe(opts))
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, CliError> {
    let mut args = args.into_iter().peekable();
    if args.peek().map(String::as_str) == Some("probe") {
        args.next();
        return parse_probe(args);
    }
    let mut opts = Options::default();
    let (mut tls_cert, mut tls_key) = (None::<PathBuf>, None::<PathBuf>);
    let (mut listen, mut interface, mut port) = (None, None, None);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || -> Result<String, CliError> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| CliError(format!("{name} needs a value")))
        };
        let cfg = &mut opts.config;
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "-l" | "--listen" => listen = Some(parse_addr(&value()?)?),
            "--interface" => interface = Some(parse_ip(&value()?)?),
            "-p" | "--port" => port = Some(parse_num::<u16>("--port", &value()?)?),
            "--pid-file" => opts.pid_file = Some(PathBuf::from(value()?)),
            "--admin-listen" => {
                let v = value()?;
                let addr = v
                    .parse()
                    .map_err(|_| CliError(format!("--admin-listen: not an address:port: {v:?}")))?;
                opts.admin_listen = Some(addr);
            }
            "--allowed-origin" => opts.allowed_origins.extend(split_list(&value()?)),
            "--block" => {
                for item in split_list(&value()?) {
                    opts.blocked.push(
                        item.parse()
                            .map_err(|e| CliError(format!("--block: {e}")))?,
                    );
                }
            }
            "--trusted-proxy" => {
                for item in split_list(&value()?) {
                    cfg.trusted_proxies.push(
                        item.parse()
                            .map_err(|e| CliError(format!("--trusted-proxy: {e}")))?,
                    );
                }
            }
            "--proxy-protocol" => cfg.proxy_protocol = true,
            "--max-message-size" => cfg.max_message_size = parse_size(&name, &value()?)?,
            "--max-frame-size" => cfg.max_frame_size = parse_size(&name, &value()?)?,
            "--max-outbound" => cfg.max_outbound = parse_size(&name, &value()?)?,
            "--ping-interval" => {
                let d = parse_duration(&name, &value()?)?;
                cfg.ping_interval = (!d.is_zero()).then_some(d);
            }
            "--handshake-timeout" => {
                cfg.handshake_timeout = positive(&name, parse_duration(&name, &value()?)?)?
            }
            "--close-timeout" => {
                cfg.close_timeout = positive(&name, parse_duration(&name, &value()?)?)?
            }
            "--deflate" => cfg.deflate.enabled = true,
            "--no-deflate" => cfg.deflate.enabled = false,
            "--deflate-context-takeover" => {
                let (server, client) = match value()?.as_str() {
                    "none" => (false, false),
                    "server" => (true, false),
                    "client" => (false, true),
                    "both" => (true, true),
                    other => {
                        return Err(CliError(format!(
                            "{name}: expected none, server, client or both, not {other:?}"
                        )));
                    }
                };
                cfg.deflate.server_context_takeover = server;
                cfg.deflate.client_context_takeover = client;
            }
            "--deflate-server-window-bits" => {
                cfg.deflate.server_max_window_bits = parse_range(&name, &value()?, 8, 15)?
            }
            "--deflate-client-window-bits" => {
                cfg.deflate.client_max_window_bits = parse_range(&name, &value()?, 9, 15)?
            }
            "--deflate-level" => cfg.deflate.level = parse_range(&name, &value()?, 0, 9)?,
            "--deflate-min-size" => {
                let v = value()?;
                cfg.deflate.min_size = if v.trim() == "0" {
                    0
                } else {
                    parse_size(&name, &v)?
                };
            }
            "--max-connections" => {
                cfg.max_connections = parse_num::<usize>(&name, &value()?)?;
                if cfg.max_connections == 0 {
                    return Err(CliError("--max-connections must be at least 1".into()));
                }
            }
            "--max-connections-per-ip" => {
                cfg.max_connections_per_ip = parse_num::<usize>(&name, &value()?)?
            }
            "--fanout-flush-delay" => {
                cfg.fanout_flush_delay = parse_duration(&name, &value()?)?;
                if cfg.fanout_flush_delay > Duration::from_secs(1) {
                    return Err(CliError(format!("{name} must be at most 1s")));
                }
            }
            "--tcp-keepalive" => {
                let d = parse_duration(&name, &value()?)?;
                cfg.tcp_keepalive = (!d.is_zero()).then_some(d);
            }
            "--publish-secret-file" => opts.push.secret_file = Some(PathBuf::from(value()?)),
            "--max-push-size" => opts.push.max_size = parse_size(&name, &value()?)?,
            "--push-redis" => {
                let v = value()?;
                sprocket::clients::redis::RedisUrl::parse(&v)
                    .map_err(|e| CliError(format!("--push-redis {v}: {e}")))?;
                opts.push.redis = Some(v);
            }
            "--push-channel" => {
                let v = value()?;
                if v.is_empty() {
                    return Err(CliError("--push-channel must not be empty".into()));
                }
                opts.push.channel = Some(v);
            }
            "--push-zmq" => {
                let v = value()?;
                let addr = v
                    .strip_prefix("tcp://")
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| {
                        CliError(format!(
                            "--push-zmq: expected tcp://IP:PORT (the address to bind), not {v:?}"
                        ))
                    })?;
                opts.push.zmq = Some(addr);
            }
            "--push-topic-field" => {
                let v = value()?;
                if v.is_empty() {
                    return Err(CliError("--push-topic-field must not be empty".into()));
                }
                opts.push.topic_field = Some(v);
            }
            "--auth-backend" => opts.backends.auth = Some(parse_backend_url(&name, &value()?)?),
            "--rpc-backend" => opts.backends.rpc = Some(parse_backend_url(&name, &value()?)?),
            "--rpc-prefix" => opts.backends.rpc_prefix = Some(value()?),
            "--subscribe-backend" => {
                opts.backends.subscribe = Some(parse_backend_url(&name, &value()?)?)
            }
            "--subscribe-prefix" => opts.backends.subscribe_prefix = Some(value()?),
            "--forward-cookies" => opts.backends.forward_cookies = true,
            "--backend-timeout" => {
                cfg.backend_timeout = positive(&name, parse_duration(&name, &value()?)?)?
            }
            "--backend-connections" => {
                cfg.backend_connections = parse_num::<usize>(&name, &value()?)?;
                if cfg.backend_connections == 0 {
                    return Err(CliError("--backend-connections must be at least 1".into()));
                }
            }
            "--max-calls-in-flight" => {
                opts.backends.max_calls_in_flight = parse_num::<usize>(&name, &value()?)?;
                if opts.backends.max_calls_in_flight == 0 {
                    return Err(CliError(format!("{name} must be at least 1")));
                }
            }
            "--bus" => {
                let v = value()?;
                sprocket::clients::redis::RedisUrl::parse(&v)
                    .map_err(|e| CliError(format!("--bus {v}: {e}")))?;
                opts.bus.url = Some(v);
            }
            "--bus-prefix" => {
                let v = value()?;
                if v.contains(['*', '?', '[']) {
                    return Err(CliError(format!(
                        "--bus-prefix must not hold glob characters (* ? [): {v:?}"
                    )));
                }
                opts.bus.settings.prefix = v;
            }
            "--bus-probe-interval" => {
                opts.bus.settings.probe_interval =
                    positive(&name, parse_duration(&name, &value()?)?)?
            }
            "--bus-probe-timeout" => {
                opts.bus.settings.probe_timeout =
                    positive(&name, parse_duration(&name, &value()?)?)?
            }
            "--durable-topics" => {
                for prefix in split_list(&value()?) {
                    opts.bus.settings.durable.push(prefix);
                }
            }
            "--durable-maxlen" => {
                opts.bus.settings.durable_maxlen = parse_num::<usize>(&name, &value()?)?;
                if opts.bus.settings.durable_maxlen == 0 {
                    return Err(CliError(format!("{name} must be at least 1")));
                }
            }
            "--reuse-port" => opts.reuse_port = true,
            "--tls-cert" => tls_cert = Some(PathBuf::from(value()?)),
            "--tls-key" => tls_key = Some(PathBuf::from(value()?)),
            "--admin-tls" => opts.admin_tls = true,
            "--log-format" => {
                opts.log_json = match value()?.as_str() {
                    "text" => false,
                    "json" => true,
                    other => {
                        return Err(CliError(format!(
                            "--log-format: expected text or json, not {other:?}"
                        )));
                    }
                }
            }
            "--grip-route" => {
                let v = value()?;
                let route = parse_grip_route(&v)?;
                if opts.grip_routes.iter().any(|(p, _)| *p == route.0) {
                    return Err(CliError(format!(
                        "--grip-route: {} is given twice",
                        route.0
                    )));
                }
                opts.grip_routes.push(route);
            }
            "--pusher-app" => {
                let app = sprocket::app::PusherApp::parse(&value()?)
                    .map_err(|e| CliError(format!("--pusher-app: {e}")))?;
                if opts
                    .pusher_apps
                    .iter()
                    .any(|a| a.id == app.id || a.key == app.key)
                {
                    return Err(CliError(format!(
                        "--pusher-app: app id {} or key {} is given twice",
                        app.id, app.key
                    )));
                }
                opts.pusher_apps.push(app);
            }
            "--pusher-webhook" => {
                opts.pusher_webhook = Some(parse_backend_url(&name, &value()?)?);
            }
            "--wamp-path" => {
                opts.wamp_path = value()?;
                if !opts.wamp_path.starts_with('/') || opts.wamp_path.contains(['?', ' ']) {
                    return Err(CliError(format!(
                        "--wamp-path must be a path like /wamp: {:?}",
                        opts.wamp_path
                    )));
                }
                if ["/echo", "/chat", "/health", "/metrics"].contains(&opts.wamp_path.as_str()) {
                    return Err(CliError(format!(
                        "--wamp-path {} is taken by a built-in route",
                        opts.wamp_path
                    )));
                }
            }
            other => {
                let taken = opts
                    .sessions
                    .take(other, || value().map_err(|e| e.0))
                    .map_err(CliError)?;
                if !taken {
                    return Err(CliError(format!("unknown option {other}")));
                }
            }
        }
    }
    opts.sessions.validate().map_err(CliError)?;
    if opts.pusher_webhook.is_some() && opts.pusher_apps.is_empty() {
        return Err(CliError("--pusher-webhook needs --pusher-app".into()));
    }
    for app in &mut opts.pusher_apps {
        app.webhook = opts.pusher_webhook.clone();
    }
    if opts.bus.url.is_none() && opts.bus.settings != sprocket::bus::remote::Settings::default() {
        return Err(CliError("--bus-prefix and --bus-probe-* need --bus".into()));
    }
    for (path, _) in &opts.grip_routes {
        if ["/", "/echo", "/chat", "/health", "/metrics", "/publish"].contains(&path.as_str())
            || *path == opts.wamp_path
        {
            return Err(CliError(format!(
                "--grip-route {path} is taken by a built-in route"
            )));
        }
    }
    if opts.backends.rpc_prefix.is_some() && opts.backends.rpc.is_none() {
        return Err(CliError("--rpc-prefix needs --rpc-backend".into()));
    }
    if opts.backends.subscribe_prefix.is_some() && opts.backends.subscribe.is_none() {
        return Err(CliError(
            "--subscribe-prefix needs --subscribe-backend".into(),
        ));
    }
    if opts.push.redis.is_some() != opts.push.channel.is_some() {
        return Err(CliError(
            "--push-redis and --push-channel go together".into(),
        ));
    }
    opts.tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some(sprocket::tls::TlsFiles { cert, key }),
        (None, None) => None,
        (Some(_), None) => return Err(CliError("--tls-cert needs --tls-key".into())),
        (None, Some(_)) => return Err(CliError("--tls-key needs --tls-cert".into())),
    };
    if opts.admin_tls && (opts.tls.is_none() || opts.admin_listen.is_none()) {
        return Err(CliError(
            "--admin-tls needs --tls-cert, --tls-key and --admin-listen".into(),
        ));
    }
    if listen.is_some() && (interface.is_some() || port.is_some()) {
        return Err(CliError(
            "use either --listen or --interface/--port, not both".into(),
        ));
    }
    let default = opts.config.listen;
    opts.config.listen = listen.unwrap_or_else(|| {
        SocketAddr::new(
            interface.unwrap_or(default.ip()),
            port.unwrap_or(default.port()),
        )
    });
    if opts.config.proxy_protocol && opts.config.trusted_proxies.is_empty() {
        return Err(CliError(
            "--proxy-protocol needs --trusted-proxy: the addresses allowed to send PROXY headers"
                .into(),
        ));
    }
    if opts.config.max_frame_size > opts.config.max_message_size {
        opts.config.max_frame_size = opts.config.max_message_size;
    }
    Ok(Command::Run(Box::new(opts)))
}

fn split_list(v: &str) -> impl Iterator<Item = String> + '_ {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn parse_addr(v: &str) -> Result<SocketAddr, CliError> {
    v.parse()
        .map_err(|_| CliError(format!("--listen: not an address:port: {v:?}")))
}

fn parse_ip(v: &str) -> Result<IpAddr, CliError> {
    v.parse()
        .map_err(|_| CliError(format!("--interface: not an IP address: {v:?}")))
}

fn parse_num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, CliError> {
    v.parse()
        .map_err(|_| CliError(format!("{name}: not a valid number: {v:?}")))
}

fn parse_range(name: &str, v: &str, min: u8, max: u8) -> Result<u8, CliError> {
    let n = parse_num::<u8>(name, v)?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(CliError(format!("{name} must be between {min} and {max}")))
    }
}

fn positive(name: &str, d: Duration) -> Result<Duration, CliError> {
    if d.is_zero() {
        Err(CliError(format!("{name} must be more than 0")))
    } else {
        Ok(d)
    }
}

/// `65536`, `64K`, `16M`, `1G` (powers of 1024; `KiB` etc. also accepted).
pub fn parse_size(name: &str, v: &str) -> Result<usize, CliError> {
    let bad = || CliError(format!("{name}: not a size: {v:?} (e.g. 65536, 64K, 16M)"));
    let upper = v.trim().to_ascii_uppercase();
    let digits_end = upper
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(upper.len());
    let (num, unit) = upper.split_at(digits_end);
    let n: usize = num.parse().map_err(|_| bad())?;
    let shift = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(bad()),
    };
    let size = n.checked_mul(1 << shift).ok_or_else(bad)?;
    if size == 0 {
        return Err(CliError(format!("{name} must be more than 0")));
    }
    Ok(size)
}

/// `250ms`, `10s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(name: &str, v: &str) -> Result<Duration, CliError> {
    sprocket::config::parse_duration(v).ok_or_else(|| {
        CliError(format!(
            "{name}: not a duration: {v:?} (e.g. 500ms, 10s, 2m)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, CliError> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Command::Run(o) => Ok(*o),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_options() {
        let o = run(&[]).unwrap();
        assert_eq!(o.config, Config::default());
        let o = run(&[
            "--listen",
            "0.0.0.0:9000",
            "--pid-file=/tmp/x.pid",
            "--allowed-origin",
            "a.com,https://b.org",
            "--block",
            "10.0.0.0/8",
            "--block=::1",
            "--max-message-size",
            "1M",
            "--max-frame-size",
            "64K",
            "--max-outbound",
            "2MiB",
            "--ping-interval",
            "0",
            "--handshake-timeout",
            "500ms",
            "--close-timeout",
            "2s",
            "--max-connections",
            "5",
            "--wamp-path",
            "/ws/pubsub",
            "--no-deflate",
            "--deflate-context-takeover",
            "server",
            "--deflate-server-window-bits=10",
            "--deflate-client-window-bits",
            "12",
            "--deflate-level",
            "6",
            "--deflate-min-size",
            "1K",
        ])
        .unwrap();
        assert_eq!(o.config.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(o.pid_file, Some(PathBuf::from("/tmp/x.pid")));
        assert_eq!(o.allowed_origins, ["a.com", "https://b.org"]);
        assert_eq!(o.blocked.len(), 2);
        assert_eq!(o.config.max_message_size, 1 << 20);
        assert_eq!(o.config.max_frame_size, 64 << 10);
        assert_eq!(o.config.max_outbound, 2 << 20);
        assert_eq!(o.config.ping_interval, None);
        assert_eq!(o.config.handshake_timeout, Duration::from_millis(500));
        assert_eq!(o.config.close_timeout, Duration::from_secs(2));
        assert_eq!(o.config.max_connections, 5);
        assert_eq!(o.wamp_path, "/ws/pubsub");
        let d = o.config.deflate;
        assert!(!d.enabled);
        assert!(d.server_context_takeover && !d.client_context_takeover);
        assert_eq!(
            (d.server_max_window_bits, d.client_max_window_bits),
            (10, 12)
        );
        assert_eq!((d.level, d.min_size), (6, 1024));
        let d = run(&[
            "--deflate-min-size",
            "0",
            "--deflate-context-takeover",
            "both",
        ])
        .unwrap()
        .config
        .deflate;
        assert!(d.enabled && d.server_context_takeover && d.client_context_takeover);
        assert_eq!(d.min_size, 0);
        let o = run(&["--interface", "0.0.0.0", "-p", "7000"]).unwrap();
        assert_eq!(o.config.listen, "0.0.0.0:7000".parse().unwrap());
    }

    #[test]
    fn errors_are_one_line() {
        for bad in [
            &["--nope"][..],
            &["--port"],
            &["--port", "99999"],
            &["--listen", "localhost"],
            &["--listen", "1.2.3.4:5", "--port", "6"],
            &["--block", "10.0.0.0/40"],
            &["--max-message-size", "12Q"],
            &["--max-message-size", "0"],
            &["--ping-interval", "5d"],
            &["--session-serializer", "json"],
            &["--session-required"],
            &["--session-store", "memcached://x"],
            &["--session-timeout"],
            &["--handshake-timeout", "0"],
            &["--max-connections", "0"],
            &["--wamp-path", "wamp"],
            &["--wamp-path", "/chat"],
            &["--deflate-context-takeover", "always"],
            &["--deflate-server-window-bits", "7"],
            &["--deflate-client-window-bits", "8"],
            &["--deflate-level", "10"],
        ] {
            let e = run(bad).unwrap_err();
            assert!(!e.0.contains('\n') && !e.0.is_empty(), "{bad:?}: {e}");
        }
        assert_eq!(parse(["--help".to_string()]), Ok(Command::Help));
        let o = run(&[
            "--session-store",
            "files:/tmp",
            "--session-user-key",
            "user_id",
        ])
        .unwrap();
        assert_eq!(o.sessions.user_key.as_deref(), Some("user_id"));
        assert!(help().contains("--session-store <STORE>"));
        assert_eq!(parse(["-V".to_string()]), Ok(Command::Version));
    }
}
