//! Command-line options of the `sprocket` binary (part of the binary, not
//! of the library's API).
//!
//! Every option is defined once, as a field of one of the clap structs
//! below (one struct per `--help` heading): that definition gives the
//! command-line flag, its value's parser, its default, its `--help` line
//! and its key in the `--config` file. The file is flat: each key is the
//! long option name without `--` (`max-message-size = "16M"`), flags take
//! `true`/`false`, repeatable options take arrays. A file entry is checked
//! by the very parser of its option, and reported as `FILE:LINE:COLUMN`.
//! The command line wins over the file, option by option (a repeatable
//! option given on the command line replaces the file's list).

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches, Parser};
use sprocket::app::Cidr;
use sprocket::clients::http::Url;
use sprocket::config::Config;
use sprocket::proxy::ForwardedHeader;
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
    /// `sprocket check-config FILE`: the file is valid; print these
    /// effective settings (TOML) and exit 0.
    CheckConfig(String),
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
    /// Where the WAMP broker (v1 and v2) is mounted.
    pub wamp_path: String,
    /// `--realm`: the WAMP v2 realms served on the WAMP route.
    pub realms: Vec<String>,
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
    /// `--pusher-app`: Pusher apps served at `/app/{key}` and
    /// `/apps/{id}/...`, each with its webhook (its own or
    /// `--pusher-webhook`), limits and activity timeout (its own or
    /// `--pusher-activity-timeout`).
    pub pusher_apps: Vec<sprocket::app::PusherApp>,
    /// `--pusher-path-prefix`: what the Pusher paths start with (`""`:
    /// `/app/` and `/apps/`).
    pub pusher_path_prefix: String,
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
            realms: vec!["realm1".to_owned()],
            grip_routes: Vec::new(),
            pusher_apps: Vec::new(),
            pusher_path_prefix: String::new(),
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

/// A command-line or config-file mistake, printed as one line.
#[derive(Debug, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

// ---------------------------------------------------------------------------
// The definition: one struct per heading of --help.
// ---------------------------------------------------------------------------

/// What `sprocket` serves, printed before the options in `--help`.
const ABOUT: &str = "\
sprocket - a WebSocket server

Serves, on one thread:
    /          demo page (plain HTTP GET): a WAMP v1 chat and RPC in the browser
    /echo      echoes every message back to its sender
    /chat      relays every message to all other /chat clients
    /wamp      WAMP v1 (subprotocol wamp) and WAMP v2 (wamp.2.json, wamp.2.msgpack;
               realm realm1 unless --realm) on one broker: pub/sub for all, v2
               callees, and the procedures urn:sprocket:echo and urn:sprocket:add
    /health    plain HTTP GET, answers 200 ok        } on --admin-listen instead
    /metrics   plain HTTP GET, Prometheus metrics    } when it is given";

/// The usage lines of `--help`.
const USAGE: &str = "\
sprocket [OPTIONS]
       sprocket --config FILE [OPTIONS]
       sprocket check-config FILE [OPTIONS]
                  validate FILE (and OPTIONS), print the effective settings as TOML;
                  exit 0, or 2 with the error and its line
       sprocket probe URL [--text MSG] [--protocol P] [--timeout D]
                  check an endpoint and exit 0 or 1 (see sprocket probe --help)";

/// Printed after the options in `--help`.
const NOTES: &str = "\
SIZE is bytes with an optional K, M or G suffix (powers of 1024).
DURATION is a number with ms, s or m (seconds if no unit).

CONFIG FILE (--config FILE, TOML; see docs/operations.md and contrib/sprocket.toml):
    every option above has a key: its long name without --, e.g.
    max-message-size = \"16M\"; flags take true or false; repeatable options take
    an array. The command line overrides the file, option by option. Unknown keys
    and bad values are errors naming FILE:LINE:COLUMN.

Logging goes to stderr; set RUST_LOG (e.g. RUST_LOG=debug) to change the level
[default: info]. SIGINT or SIGTERM closes every connection with 1001 and exits 0;
SIGHUP reloads --tls-cert and --tls-key (open connections keep theirs; a bad pair is
logged and the old one kept; without TLS it is logged and ignored). At start the
open-files limit is raised to its hard limit, and logged.

With NOTIFY_SOCKET set (systemd's Type=notify), READY=1 is sent once every listener
serves and STOPPING=1 when a shutdown begins (contrib/systemd, docs/operations.md).";

/// The whole command line of a server run.
#[derive(Parser, Debug)]
#[command(
    name = "sprocket",
    version,
    about = ABOUT,
    override_usage = USAGE,
    after_help = NOTES,
    max_term_width = 100
)]
struct Cli {
    #[command(flatten)]
    general: GeneralArgs,
    #[command(flatten)]
    backends: BackendArgs,
    #[command(flatten)]
    grip: GripArgs,
    #[command(flatten)]
    pusher: PusherArgs,
    #[command(flatten)]
    bus: BusArgs,
    #[command(flatten)]
    deflate: DeflateArgs,
    #[command(flatten)]
    sessions: SessionArgs,
}

/// Listening, limits, pushes: the options without a heading of their own.
#[derive(Args, Debug)]
struct GeneralArgs {
    /// Read options from this TOML file; the command line overrides it
    /// (not a key of the file) [default: none]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on
    #[arg(short = 'l', long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080",
          value_parser = socket_addr)]
    listen: SocketAddr,
    /// Listen address only (with --port)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1", value_parser = ip_addr)]
    interface: IpAddr,
    /// Listen port only
    #[arg(short = 'p', long, value_name = "PORT", default_value = "8080", value_parser = num::<u16>)]
    port: u16,
    /// Serve /health and /metrics on this address instead of the public one (keep it
    /// private) [default: off]
    #[arg(long, value_name = "ADDR:PORT", value_parser = socket_addr)]
    admin_listen: Option<SocketAddr>,
    /// Speak TLS (1.2 and 1.3, ALPN http/1.1) on the public listener with this certificate
    /// chain; reloaded with --tls-key on SIGHUP [default: off]
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// TLS on --admin-listen too (same certificate)
    #[arg(long)]
    admin_tls: bool,
    /// Write the process id here; removed on clean exit
    #[arg(long, value_name = "PATH")]
    pid_file: Option<PathBuf>,
    /// Log lines as text, or as one JSON object each (ts, level, target, msg); levels from
    /// RUST_LOG
    #[arg(long, value_name = "text|json", default_value = "text", value_parser = log_format,
          action = ArgAction::Set)]
    log_format: bool,
    /// Allow browser pages from ORIGIN (a full origin such as https://app.example.com, or
    /// a host name); repeatable or comma-separated. When set, other origins, and requests
    /// without Origin, get 403 [default: any origin]
    #[arg(long = "allowed-origin", value_name = "ORIGIN", value_parser = string_list)]
    allowed_origins: Vec<Listed<String>>,
    /// Refuse clients from an address or CIDR block with 403; repeatable or
    /// comma-separated
    #[arg(long, value_name = "IP[/PREFIX]", value_parser = cidr_list)]
    block: Vec<Listed<Cidr>>,
    /// A proxy in front of sprocket: from these addresses the client address is read from
    /// the header of --forwarded-header, right to left, skipping trusted addresses;
    /// --block, --max-connections-per-ip, logs and apps then see that client. Elsewhere
    /// those headers are ignored. Repeatable or comma-separated
    #[arg(long = "trusted-proxy", value_name = "IP[/PREFIX]", value_parser = cidr_list)]
    trusted_proxies: Vec<Listed<Cidr>>,
    /// The one header a --trusted-proxy sets, and the only one read: x-forwarded-for (nginx
    /// $proxy_add_x_forwarded_for, HAProxy option forwardfor) or forwarded (RFC 7239). The
    /// other is ignored: proxies pass a client's own copy of it on
    #[arg(long, value_name = "x-forwarded-for|forwarded", default_value = "x-forwarded-for",
          value_parser = forwarded_header, action = ArgAction::Set)]
    forwarded_header: ForwardedHeader,
    /// Every connection to --listen starts with a PROXY protocol v1 or v2 header (HAProxy
    /// send-proxy / send-proxy-v2); without one it is closed. Needs --trusted-proxy: the
    /// address in a header from anywhere else is ignored
    #[arg(long)]
    proxy_protocol: bool,
    /// Largest message a client may send; larger: close 1009
    #[arg(long, value_name = "SIZE", default_value = "16M", value_parser = size)]
    max_message_size: usize,
    /// Largest frame a client may send; larger: close 1009
    #[arg(long, value_name = "SIZE", default_value = "16M", value_parser = size)]
    max_frame_size: usize,
    /// Unsent bytes per connection before it is dropped as a slow consumer
    #[arg(long, value_name = "SIZE", default_value = "16M", value_parser = size)]
    max_outbound: usize,
    /// Ping connections idle this long; drop them when another interval passes in
    /// silence; 0 disables
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    ping_interval: Duration,
    /// Time allowed for the opening handshake
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_duration)]
    handshake_timeout: Duration,
    /// Time allowed for the close handshake, and grace period at shutdown
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = positive_duration)]
    close_timeout: Duration,
    /// Connections held at once; more get 503
    #[arg(long, value_name = "N", default_value = "10000", value_parser = at_least_one)]
    max_connections: usize,
    /// Connections from one address; more get 429; 0 means no limit (keep 0 behind a
    /// proxy)
    #[arg(long, value_name = "N", default_value = "0", value_parser = num::<usize>)]
    max_connections_per_ip: usize,
    /// How long a broadcast to 32 or more connections may wait to share one write per
    /// connection with the next ones; 0 writes every loop turn; at most 1s
    #[arg(long, value_name = "DURATION", default_value = "1ms", value_parser = flush_delay)]
    fanout_flush_delay: Duration,
    /// Idle time before TCP keepalive probes; 0 disables
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    tcp_keepalive: Duration,
    /// Where to mount the WAMP broker (v1 and v2)
    #[arg(long, value_name = "PATH", default_value = "/wamp", value_parser = wamp_path)]
    wamp_path: String,
    /// A WAMP v2 realm served on the WAMP route (repeatable; no whitespace, at most 255
    /// bytes); the first shares its topics with WAMP v1, pushes and the bus
    #[arg(long = "realm", value_name = "NAME", default_value = "realm1", value_parser = realm)]
    realms: Vec<String>,
    /// Serve POST /publish (on --admin-listen when given) for pushes from the backend,
    /// guarded by the bearer secret in this file (or in SPROCKET_PUBLISH_SECRET)
    /// [default: off]
    #[arg(long, value_name = "PATH")]
    publish_secret_file: Option<PathBuf>,
    /// Largest push body; larger: 413
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = size)]
    max_push_size: usize,
    /// Take pushes from a Redis channel on this server
    #[arg(long, value_name = "URL", value_parser = redis_url)]
    push_redis: Option<String>,
    /// ...this channel (a pattern if it has *: PSUBSCRIBE)
    #[arg(long, value_name = "NAME", value_parser = non_empty)]
    push_channel: Option<String>,
    /// Bind a ZeroMQ PULL socket (ZMTP 3, NULL security) for pushes from PHP's
    /// ZMQ::SOCKET_PUSH
    #[arg(long, value_name = "tcp://IP:PORT", value_parser = zmq_addr)]
    push_zmq: Option<SocketAddr>,
    /// Raw pushes: the whole JSON object is the event and its field NAME names the topic
    /// (Ratchet's push tutorial)
    #[arg(long, value_name = "NAME", value_parser = non_empty)]
    push_topic_field: Option<String>,
}

/// `--auth-backend` and friends.
#[derive(Args, Debug)]
#[command(next_help_heading = "DECISIONS IN THE BACKEND (JSON over HTTP POST; see docs/php.md)")]
struct BackendArgs {
    /// Ask before every WebSocket handshake: 2xx accepts (and may set the user), 4xx
    /// refuses with that status, else 503
    #[arg(long, value_name = "URL", value_parser = http_url)]
    auth_backend: Option<Url>,
    /// Forward WAMP calls without a local procedure
    #[arg(long, value_name = "URL", value_parser = http_url)]
    rpc_backend: Option<Url>,
    /// ...only those whose URI starts with PREFIX
    #[arg(long, value_name = "PREFIX")]
    rpc_prefix: Option<String>,
    /// Ask before each WAMP subscription; 2xx allows
    #[arg(long, value_name = "URL", value_parser = http_url)]
    subscribe_backend: Option<Url>,
    /// ...only for topics starting with PREFIX
    #[arg(long, value_name = "PREFIX")]
    subscribe_prefix: Option<String>,
    /// Backend calls carry the client's Cookie header
    #[arg(long)]
    forward_cookies: bool,
    /// Longest wait for a backend's response
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = positive_duration)]
    backend_timeout: Duration,
    /// Most connections to one backend (host:port) at once; more requests wait their turn
    #[arg(long, value_name = "N", default_value = "32", value_parser = at_least_one)]
    backend_connections: usize,
    /// Forwarded calls per connection; more get urn:sprocket:error:busy
    #[arg(long, value_name = "N", default_value = "64", value_parser = at_least_one)]
    max_calls_in_flight: usize,
}

/// `--grip-route`.
#[derive(Args, Debug)]
#[command(
    next_help_heading = "WEBSOCKET APPS IN THE BACKEND (Pushpin's WebSocket-over-HTTP and GRIP; see docs/grip.md)"
)]
struct GripArgs {
    /// WebSocket connections to PATH are run by the backend at URL: their events are
    /// POSTed to it as application/websocket-events and its answers applied
    /// (repeatable). GRIP publishes go to POST /publish/ on --admin-listen
    #[arg(long = "grip-route", value_name = "PATH=URL", value_parser = grip_route)]
    grip_routes: Vec<(String, Url)>,
}

/// `--pusher-*`.
#[derive(Args, Debug)]
#[command(
    next_help_heading = "THE PUSHER PROTOCOL (Laravel Echo, pusher-js, the Pusher server SDKs; see docs/pusher.md)"
)]
struct PusherArgs {
    /// Serve this Pusher app (repeatable): clients connect to /app/KEY, the HTTP API is
    /// /apps/ID/... on the same port, client events are on. Or an inline table with
    /// origins, webhook and limits: '{ id = "1", key = "k", secret = "s", max-connections =
    /// 1000 }' (the keys of a [[pusher-app]] table, docs/pusher.md)
    #[arg(long = "pusher-app", value_name = "ID:KEY:SECRET", value_parser = pusher_app)]
    pusher_apps: Vec<AppArg>,
    /// POST the apps' webhooks here (http://...): channel_occupied, channel_vacated,
    /// member_added, member_removed, client_event, cache_miss; signed, batched, retried
    /// for 5 minutes
    #[arg(long, value_name = "URL", value_parser = http_url)]
    pusher_webhook: Option<Url>,
    /// Serve the Pusher apps under this path: clients at PREFIX/app/KEY (pusher-js's
    /// wsPath), the HTTP API at PREFIX/apps/ID/... (the PHP SDK's path option)
    #[arg(long, value_name = "PREFIX", value_parser = pusher_path_prefix)]
    pusher_path_prefix: Option<String>,
    /// Seconds of silence before the server pings a client (told to clients as
    /// activity_timeout); whole seconds, at least 1s
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = whole_seconds)]
    pusher_activity_timeout: Duration,
}

/// `--bus` and friends, `--reuse-port`.
#[derive(Args, Debug)]
#[command(
    next_help_heading = "SCALING OUT (several processes sharing every topic through Redis; see docs/scaling.md)"
)]
struct BusArgs {
    /// Share topics with every process using this Redis server
    /// (redis://[:password@]host[:port][/db]): WAMP publishes and pushes from every
    /// ingress reach subscribers of all of them [default: this process only]
    #[arg(long, value_name = "URL", value_parser = redis_url)]
    bus: Option<String>,
    /// Prefix of the bus's Redis channels, so that applications can share a Redis
    #[arg(long, value_name = "PREFIX", default_value = sprocket::bus::remote::DEFAULT_PREFIX,
          value_parser = bus_prefix)]
    bus_prefix: String,
    /// Probe the bus's subscription when it was quiet this long
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = positive_duration)]
    bus_probe_interval: Duration,
    /// Replace the subscription connection when nothing came back this long after a probe
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = positive_duration)]
    bus_probe_timeout: Duration,
    /// Topics starting with PREFIX (repeatable or comma-separated) are durable: also kept
    /// in a Redis stream each, from which a process repairs what it missed (exactly once,
    /// in order)
    #[arg(long, value_name = "PREFIX", value_parser = string_list)]
    durable_topics: Vec<Listed<String>>,
    /// About how many events each durable topic's stream keeps
    #[arg(long, value_name = "N", default_value = "10000", value_parser = at_least_one)]
    durable_maxlen: usize,
    /// Listen with SO_REUSEPORT: several processes on one port, the kernel spreads
    /// connections among them; a restart that refuses nobody: start the new process
    /// beside the old, then SIGTERM the old (docs/operations.md)
    #[arg(long)]
    reuse_port: bool,
}

/// `--deflate-*`.
#[derive(Args, Debug)]
#[command(next_help_heading = "COMPRESSION (permessage-deflate, RFC 7692; see docs/deflate.md)")]
struct DeflateArgs {
    /// Accept clients' permessage-deflate offers [default: on]
    #[arg(long, overrides_with = "no_deflate")]
    deflate: bool,
    /// Never negotiate compression
    #[arg(long, overrides_with = "deflate")]
    no_deflate: bool,
    /// Which side may keep its compression context between messages. Better ratio on
    /// small messages, but costs ~310 KiB (server) / ~23 KiB (client) of memory per
    /// connection that uses it
    #[arg(long, value_name = "none|server|client|both", default_value = "none",
          value_parser = takeover)]
    deflate_context_takeover: (bool, bool),
    /// Largest window the server compresses with
    #[arg(long, value_name = "8-15", default_value = "15", value_parser = range::<8, 15>)]
    deflate_server_window_bits: u8,
    /// Window asked of clients that let the server choose
    #[arg(long, value_name = "9-15", default_value = "15", value_parser = range::<9, 15>)]
    deflate_client_window_bits: u8,
    /// Compression level; 0 sends everything uncompressed (compressed input is still
    /// accepted)
    #[arg(long, value_name = "0-9", default_value = "1", value_parser = range::<0, 9>)]
    deflate_level: u8,
    /// Messages shorter than this are sent uncompressed
    #[arg(long, value_name = "SIZE", default_value = "64", value_parser = size_or_zero)]
    deflate_min_size: usize,
}

/// `--session-*`: each value is checked, and applied, by
/// [`SessionSettings::take`], the rules the examples use too.
#[derive(Args, Debug)]
#[command(next_help_heading = "SESSIONS (the PHP app's own sessions; see docs/php.md)")]
struct SessionArgs {
    /// files:DIR (PHP's files handler; DIR may be N;MODE;/path as in session.save_path)
    /// or redis://[:password@]host:port/db (phpredis, Symfony's RedisSessionHandler)
    /// [default: off]
    #[arg(long, value_name = "STORE", value_parser = session("--session-store"))]
    session_store: Option<String>,
    /// Redis key prefix (Symfony: sf_s)
    #[arg(long, value_name = "STR", default_value = sprocket::session::DEFAULT_PREFIX,
          value_parser = session("--session-prefix"))]
    session_prefix: String,
    /// Cookie with the session id
    #[arg(long, value_name = "NAME", default_value = "PHPSESSID",
          value_parser = session("--session-cookie"))]
    session_cookie: String,
    /// PHP's session.serialize_handler
    #[arg(long, value_name = "php|php_serialize|php_binary", default_value = "php",
          value_parser = session("--session-serializer"))]
    session_serializer: String,
    /// Refuse handshakes without a readable session (401), or with 503 while the store is
    /// down or slow
    #[arg(long)]
    session_required: bool,
    /// Dotted path to the user id in the session, e.g. user_id or _sf2_attributes.user_id
    #[arg(long, value_name = "PATH", value_parser = session("--session-user-key"))]
    session_user_key: Option<String>,
    /// TTL kept when writing (session.gc_maxlifetime); older session files count as gone
    #[arg(long, value_name = "DURATION", default_value = "1440s",
          value_parser = session("--session-lifetime"))]
    session_lifetime: String,
    /// Longest a read or write may take, waiting for PHP's lock included
    #[arg(long, value_name = "DURATION", default_value = "2s",
          value_parser = session("--session-timeout"))]
    session_timeout: String,
}

// ---------------------------------------------------------------------------
// Value parsers: each returns what is wrong with the value; the option's
// name (or the file's key and line) is put in front by the caller.
// ---------------------------------------------------------------------------

/// One occurrence of a comma-separated option (`--block a,b`).
#[derive(Clone, Debug)]
struct Listed<T>(Vec<T>);

fn split_list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn string_list(v: &str) -> Result<Listed<String>, String> {
    Ok(Listed(split_list(v).map(str::to_owned).collect()))
}

fn cidr_list(v: &str) -> Result<Listed<Cidr>, String> {
    split_list(v)
        .map(|item| item.parse().map_err(|e| format!("{e}")))
        .collect::<Result<_, _>>()
        .map(Listed)
}

fn socket_addr(v: &str) -> Result<SocketAddr, String> {
    v.parse().map_err(|_| format!("not an address:port: {v:?}"))
}

fn ip_addr(v: &str) -> Result<IpAddr, String> {
    v.parse().map_err(|_| format!("not an IP address: {v:?}"))
}

fn num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("not a valid number: {v:?}"))
}

fn at_least_one(v: &str) -> Result<usize, String> {
    match num::<usize>(v)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

fn range<const MIN: u8, const MAX: u8>(v: &str) -> Result<u8, String> {
    let n = num::<u8>(v)?;
    if (MIN..=MAX).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be between {MIN} and {MAX}"))
    }
}

/// `65536`, `64K`, `16M`, `1G` (powers of 1024; `KiB` etc. also accepted);
/// never 0.
fn size(v: &str) -> Result<usize, String> {
    let bad = || format!("not a size: {v:?} (e.g. 65536, 64K, 16M)");
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
        return Err("must be more than 0".into());
    }
    Ok(size)
}

fn size_or_zero(v: &str) -> Result<usize, String> {
    if v.trim() == "0" { Ok(0) } else { size(v) }
}

/// `250ms`, `10s`, `2m`, `1h`, or a bare number of seconds.
fn duration(v: &str) -> Result<Duration, String> {
    sprocket::config::parse_duration(v)
        .ok_or_else(|| format!("not a duration: {v:?} (e.g. 500ms, 10s, 2m)"))
}

fn positive_duration(v: &str) -> Result<Duration, String> {
    match duration(v)? {
        d if d.is_zero() => Err("must be more than 0".into()),
        d => Ok(d),
    }
}

fn flush_delay(v: &str) -> Result<Duration, String> {
    match duration(v)? {
        d if d > Duration::from_secs(1) => Err("must be at most 1s".into()),
        d => Ok(d),
    }
}

fn whole_seconds(v: &str) -> Result<Duration, String> {
    let d = duration(v)?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    if d.subsec_nanos() != 0 {
        return Err(format!("must be whole seconds, not {v:?}"));
    }
    Ok(d)
}

fn forwarded_header(v: &str) -> Result<ForwardedHeader, String> {
    v.parse()
}

fn log_format(v: &str) -> Result<bool, String> {
    match v {
        "text" => Ok(false),
        "json" => Ok(true),
        other => Err(format!("expected text or json, not {other:?}")),
    }
}

fn takeover(v: &str) -> Result<(bool, bool), String> {
    match v {
        "none" => Ok((false, false)),
        "server" => Ok((true, false)),
        "client" => Ok((false, true)),
        "both" => Ok((true, true)),
        other => Err(format!(
            "expected none, server, client or both, not {other:?}"
        )),
    }
}

fn non_empty(v: &str) -> Result<String, String> {
    if v.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(v.to_owned())
    }
}

fn redis_url(v: &str) -> Result<String, String> {
    sprocket::clients::redis::RedisUrl::parse(v).map_err(|e| format!("{v}: {e}"))?;
    Ok(v.to_owned())
}

fn http_url(v: &str) -> Result<Url, String> {
    Url::parse(v).map_err(|e| format!("{v}: {e}"))
}

fn zmq_addr(v: &str) -> Result<SocketAddr, String> {
    v.strip_prefix("tcp://")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("expected tcp://IP:PORT (the address to bind), not {v:?}"))
}

fn bus_prefix(v: &str) -> Result<String, String> {
    if v.contains(['*', '?', '[']) {
        return Err(format!("must not hold glob characters (* ? [): {v:?}"));
    }
    Ok(v.to_owned())
}

fn pusher_path_prefix(v: &str) -> Result<String, String> {
    let plain = v.len() > 1
        && v.starts_with('/')
        && !v.ends_with('/')
        && !v.contains("//")
        && !v.contains(['?', '#', ' ', '%']);
    if !plain {
        return Err(format!(
            "must be a path like /ws (not / nor ending in /): {v:?}"
        ));
    }
    Ok(v.to_owned())
}

fn wamp_path(v: &str) -> Result<String, String> {
    if !v.starts_with('/') || v.contains(['?', ' ']) {
        return Err(format!("must be a path like /wamp: {v:?}"));
    }
    if ["/echo", "/chat", "/health", "/metrics"].contains(&v) {
        return Err(format!("{v} is taken by a built-in route"));
    }
    Ok(v.to_owned())
}

/// A WAMP v2 realm: not empty, no whitespace, at most 255 bytes.
fn realm(v: &str) -> Result<String, String> {
    if v.is_empty() || v.len() > 255 || v.chars().any(char::is_whitespace) {
        return Err(format!(
            "a realm is 1 to 255 bytes without whitespace, not {v:?}"
        ));
    }
    Ok(v.to_owned())
}

/// `PATH=URL` of `--grip-route`.
fn grip_route(v: &str) -> Result<(String, Url), String> {
    let Some((path, url)) = v.split_once('=') else {
        return Err(format!(
            "expected PATH=URL (e.g. /api=http://127.0.0.1:8000/ws), not {v:?}"
        ));
    };
    if !path.starts_with('/') || path.contains(['?', ' ', '#']) {
        return Err(format!("{path:?} is not a path like /api"));
    }
    Ok((path.to_owned(), http_url(url)?))
}

/// A `--pusher-app` as given: the app, and whether it sets its own
/// activity timeout (else `--pusher-activity-timeout` is its).
#[derive(Clone, Debug)]
struct AppArg {
    app: sprocket::app::PusherApp,
    own_activity_timeout: bool,
}

/// The keys of a `[[pusher-app]]` table.
const PUSHER_APP_KEYS: [&str; 14] = [
    "id",
    "key",
    "secret",
    "client-events",
    "allowed-origins",
    "webhook",
    "max-connections",
    "max-channels-per-connection",
    "max-presence-members",
    "max-user-info",
    "max-client-event",
    "client-events-per-second",
    "max-event-data",
    "activity-timeout",
];

/// `ID:KEY:SECRET`, or an inline TOML table with the keys of a
/// `[[pusher-app]]` table of the config file (`{ id = "1", key = "k",
/// secret = "s", client-events = false, allowed-origins = ["a.com"],
/// webhook = "http://...", max-connections = 1000, ... }`).
fn pusher_app(v: &str) -> Result<AppArg, String> {
    if !v.trim_start().starts_with('{') {
        return sprocket::app::PusherApp::parse(v).map(|app| AppArg {
            app,
            own_activity_timeout: false,
        });
    }
    let doc: toml::Table = toml::from_str(&format!("app = {v}")).map_err(|e| {
        let m = e.message().lines().next().unwrap_or("").trim().to_owned();
        format!("a Pusher app table: {m}")
    })?;
    let Some(toml::Value::Table(t)) = doc.get("app") else {
        return Err("a Pusher app table: expected { id = .., key = .., secret = .. }".into());
    };
    let text = |name: &str| match t.get(name) {
        Some(toml::Value::String(s)) => Ok(Some(s.as_str())),
        None => Ok(None),
        Some(other) => Err(format!(
            "{name}: expected a string, not {}",
            other.type_str()
        )),
    };
    let needed = |name: &str| text(name)?.ok_or_else(|| format!("the Pusher app has no {name}"));
    if let Some(name) = t.keys().find(|k| !PUSHER_APP_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "unknown Pusher app key {name:?} (known: {})",
            PUSHER_APP_KEYS.join(", ")
        ));
    }
    let mut app = sprocket::app::PusherApp::new(needed("id")?, needed("key")?, needed("secret")?)?;
    match t.get("client-events") {
        None => {}
        Some(toml::Value::Boolean(b)) => app.client_events = *b,
        Some(other) => {
            return Err(format!(
                "client-events: expected true or false, not {}",
                other.type_str()
            ));
        }
    }
    match t.get("allowed-origins") {
        None => {}
        Some(toml::Value::Array(items)) => {
            for item in items {
                match item {
                    toml::Value::String(o) if !o.trim().is_empty() => {
                        app.allowed_origins.push(o.trim().to_ascii_lowercase())
                    }
                    _ => return Err("allowed-origins: expected non-empty strings".into()),
                }
            }
        }
        Some(_) => return Err("allowed-origins: expected an array of strings".into()),
    }
    app.webhook = text("webhook")?.map(http_url).transpose()?;
    // Limits: counts are positive integers; sizes integers of bytes or
    // strings as the size options take them ("10K"); the activity timeout
    // whole seconds or a duration string.
    let count = |name: &str| -> Result<Option<usize>, String> {
        match t.get(name) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if *n > 0 => Ok(usize::try_from(*n).ok()),
            Some(other) => Err(format!("{name}: expected a positive integer, not {other}")),
        }
    };
    let bytes = |name: &str| -> Result<Option<usize>, String> {
        match t.get(name) {
            Some(toml::Value::String(v)) => size(v).map(Some).map_err(|e| format!("{name}: {e}")),
            _ => count(name),
        }
    };
    let l = &mut app.limits;
    l.max_connections = count("max-connections")?.or(l.max_connections);
    l.max_channels = count("max-channels-per-connection")?.unwrap_or(l.max_channels);
    l.max_presence_members = count("max-presence-members")?.unwrap_or(l.max_presence_members);
    l.max_user_info = bytes("max-user-info")?.unwrap_or(l.max_user_info);
    l.max_client_event = bytes("max-client-event")?.unwrap_or(l.max_client_event);
    if let Some(n) = count("client-events-per-second")? {
        l.client_events_per_second =
            u32::try_from(n).map_err(|_| format!("client-events-per-second: {n} is too many"))?;
    }
    l.api.max_data = bytes("max-event-data")?.unwrap_or(l.api.max_data);
    let activity = match t.get("activity-timeout") {
        None => None,
        Some(toml::Value::Integer(n)) if *n > 0 => Some(Duration::from_secs(n.unsigned_abs())),
        Some(toml::Value::String(v)) => {
            Some(whole_seconds(v).map_err(|e| format!("activity-timeout: {e}"))?)
        }
        Some(other) => {
            return Err(format!(
                "activity-timeout: expected seconds or a duration such as \"2m\", not {other}"
            ));
        }
    };
    if let Some(d) = activity {
        l.activity_timeout = d.as_secs();
    }
    Ok(AppArg {
        app,
        own_activity_timeout: activity.is_some(),
    })
}

/// The parser of a `--session-*` option: [`SessionSettings::take`] says
/// whether the value is good (its messages name the option).
fn session(
    name: &'static str,
) -> impl Fn(&str) -> Result<String, String> + Clone + Send + Sync + 'static {
    move |v: &str| {
        SessionSettings::default().take(name, || Ok(v.to_owned()))?;
        Ok(v.to_owned())
    }
}

// ---------------------------------------------------------------------------
// From the parsed definition to `Options`: the rules between options.
// ---------------------------------------------------------------------------

impl Cli {
    /// Checks the options against each other and builds the [`Options`];
    /// `m` tells which options were given (on the command line or in the
    /// file) rather than left at their defaults.
    fn into_options(self, m: &ArgMatches) -> Result<Options, CliError> {
        let given = |id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
        let err = |s: &str| Err(CliError(s.to_owned()));
        let (g, b, d, s) = (self.general, self.backends, self.deflate, self.sessions);
        let mut opts = Options::default();
        let cfg = &mut opts.config;
        if given("listen") && (given("interface") || given("port")) {
            return err("use either --listen or --interface/--port, not both");
        }
        cfg.listen = if given("listen") {
            g.listen
        } else {
            SocketAddr::new(g.interface, g.port)
        };
        cfg.trusted_proxies = g.trusted_proxies.into_iter().flat_map(|l| l.0).collect();
        cfg.proxy_protocol = g.proxy_protocol;
        cfg.forwarded_header = g.forwarded_header;
        cfg.max_message_size = g.max_message_size;
        cfg.max_frame_size = g.max_frame_size.min(g.max_message_size);
        cfg.max_outbound = g.max_outbound;
        cfg.ping_interval = (!g.ping_interval.is_zero()).then_some(g.ping_interval);
        cfg.handshake_timeout = g.handshake_timeout;
        cfg.close_timeout = g.close_timeout;
        cfg.max_connections = g.max_connections;
        cfg.max_connections_per_ip = g.max_connections_per_ip;
        cfg.fanout_flush_delay = g.fanout_flush_delay;
        cfg.tcp_keepalive = (!g.tcp_keepalive.is_zero()).then_some(g.tcp_keepalive);
        cfg.backend_timeout = b.backend_timeout;
        cfg.backend_connections = b.backend_connections;
        cfg.deflate.enabled = !d.no_deflate;
        (
            cfg.deflate.server_context_takeover,
            cfg.deflate.client_context_takeover,
        ) = d.deflate_context_takeover;
        cfg.deflate.server_max_window_bits = d.deflate_server_window_bits;
        cfg.deflate.client_max_window_bits = d.deflate_client_window_bits;
        cfg.deflate.level = d.deflate_level;
        cfg.deflate.min_size = d.deflate_min_size;
        if cfg.proxy_protocol && cfg.trusted_proxies.is_empty() {
            return err(
                "--proxy-protocol needs --trusted-proxy: the addresses allowed to send PROXY headers",
            );
        }
        if cfg.forwarded_header != ForwardedHeader::default() && cfg.trusted_proxies.is_empty() {
            return err(
                "--forwarded-header forwarded needs --trusted-proxy: the proxies whose header is read",
            );
        }

        opts.pid_file = g.pid_file;
        opts.admin_listen = g.admin_listen;
        opts.log_json = g.log_format;
        opts.allowed_origins = g.allowed_origins.into_iter().flat_map(|l| l.0).collect();
        opts.blocked = g.block.into_iter().flat_map(|l| l.0).collect();
        opts.wamp_path = g.wamp_path;
        opts.realms = g.realms;
        for (i, realm) in opts.realms.iter().enumerate() {
            if opts.realms[..i].contains(realm) {
                return Err(CliError(format!("--realm {realm} is given twice")));
            }
        }
        opts.reuse_port = self.bus.reuse_port;
        opts.admin_tls = g.admin_tls;
        opts.tls = match (g.tls_cert, g.tls_key) {
            (Some(cert), Some(key)) => Some(sprocket::tls::TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => return err("--tls-cert needs --tls-key"),
            (None, Some(_)) => return err("--tls-key needs --tls-cert"),
        };
        if opts.admin_tls && (opts.tls.is_none() || opts.admin_listen.is_none()) {
            return err("--admin-tls needs --tls-cert, --tls-key and --admin-listen");
        }

        opts.push = PushOptions {
            secret_file: g.publish_secret_file,
            max_size: g.max_push_size,
            redis: g.push_redis,
            channel: g.push_channel,
            topic_field: g.push_topic_field,
            zmq: g.push_zmq,
        };
        if opts.push.redis.is_some() != opts.push.channel.is_some() {
            return err("--push-redis and --push-channel go together");
        }

        opts.backends = BackendOptions {
            auth: b.auth_backend,
            rpc: b.rpc_backend,
            rpc_prefix: b.rpc_prefix,
            subscribe: b.subscribe_backend,
            subscribe_prefix: b.subscribe_prefix,
            forward_cookies: b.forward_cookies,
            max_calls_in_flight: b.max_calls_in_flight,
        };
        if opts.backends.rpc_prefix.is_some() && opts.backends.rpc.is_none() {
            return err("--rpc-prefix needs --rpc-backend");
        }
        if opts.backends.subscribe_prefix.is_some() && opts.backends.subscribe.is_none() {
            return err("--subscribe-prefix needs --subscribe-backend");
        }

        opts.bus.url = self.bus.bus;
        let settings = &mut opts.bus.settings;
        settings.prefix = self.bus.bus_prefix;
        settings.probe_interval = self.bus.bus_probe_interval;
        settings.probe_timeout = self.bus.bus_probe_timeout;
        settings.durable = self
            .bus
            .durable_topics
            .into_iter()
            .flat_map(|l| l.0)
            .collect();
        settings.durable_maxlen = self.bus.durable_maxlen;
        if opts.bus.url.is_none() && opts.bus.settings != sprocket::bus::remote::Settings::default()
        {
            return err("--bus-prefix and --bus-probe-* need --bus");
        }

        for (i, (path, _)) in self.grip.grip_routes.iter().enumerate() {
            if self.grip.grip_routes[..i].iter().any(|(p, _)| p == path) {
                return Err(CliError(format!("--grip-route: {path} is given twice")));
            }
            if ["/", "/echo", "/chat", "/health", "/metrics", "/publish"].contains(&path.as_str())
                || *path == opts.wamp_path
            {
                return Err(CliError(format!(
                    "--grip-route {path} is taken by a built-in route"
                )));
            }
        }
        opts.grip_routes = self.grip.grip_routes;

        let p = self.pusher;
        for (i, AppArg { app, .. }) in p.pusher_apps.iter().enumerate() {
            if p.pusher_apps[..i]
                .iter()
                .any(|a| a.app.id == app.id || a.app.key == app.key)
            {
                return Err(CliError(format!(
                    "--pusher-app: app id {} or key {} is given twice",
                    app.id, app.key
                )));
            }
        }
        if p.pusher_webhook.is_some() && p.pusher_apps.is_empty() {
            return err("--pusher-webhook needs --pusher-app");
        }
        if p.pusher_path_prefix.is_some() && p.pusher_apps.is_empty() {
            return err("--pusher-path-prefix needs --pusher-app");
        }
        opts.pusher_path_prefix = p.pusher_path_prefix.unwrap_or_default();
        for AppArg {
            mut app,
            own_activity_timeout,
        } in p.pusher_apps
        {
            if app.webhook.is_none() {
                app.webhook = p.pusher_webhook.clone();
            }
            if !own_activity_timeout {
                app.limits.activity_timeout = p.pusher_activity_timeout.as_secs();
            }
            opts.pusher_apps.push(app);
        }

        let sessions = &mut opts.sessions;
        let mut take = |name: &str, value: Option<String>| match value {
            Some(v) => sessions.take(name, || Ok(v)).map(drop).map_err(CliError),
            None => Ok(()),
        };
        take("--session-store", s.session_store)?;
        take("--session-prefix", Some(s.session_prefix))?;
        take("--session-cookie", Some(s.session_cookie))?;
        take("--session-serializer", Some(s.session_serializer))?;
        take("--session-user-key", s.session_user_key)?;
        take("--session-lifetime", Some(s.session_lifetime))?;
        take("--session-timeout", Some(s.session_timeout))?;
        if s.session_required {
            take("--session-required", Some(String::new()))?;
        }
        opts.sessions.validate().map_err(CliError)?;
        Ok(opts)
    }
}

// ---------------------------------------------------------------------------
// Parsing: the command line, then the file it names.
// ---------------------------------------------------------------------------

/// The command of a server run, ready to parse: every option that takes a
/// value takes the next argument whatever it is (`--max-frame-size -1` is
/// a bad size, not an unknown option), and the last of a repeated
/// single-valued option wins.
fn command() -> clap::Command {
    let mut cmd = Cli::command().args_override_self(true).mut_args(|a| {
        if a.get_action().takes_values() {
            a.allow_hyphen_values(true)
        } else {
            a
        }
    });
    cmd.build();
    cmd
}

/// The `--help` text.
pub fn help() -> String {
    command().render_help().to_string()
}

/// Parses the arguments after the program name (reading the `--config`
/// file, if any).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, CliError> {
    parse_with(args, |path| std::fs::read_to_string(path))
}

/// [`parse`], with the file read by `read`.
fn parse_with<I: IntoIterator<Item = String>>(
    args: I,
    read: impl Fn(&std::path::Path) -> std::io::Result<String>,
) -> Result<Command, CliError> {
    let mut args: Vec<String> = args.into_iter().collect();
    if args.first().map(String::as_str) == Some("probe") {
        return parse_probe(args.into_iter().skip(1));
    }
    let mut check = None;
    if args.first().map(String::as_str) == Some("check-config") {
        args.remove(0);
        match args.first() {
            Some(file) if !file.starts_with('-') => check = Some(PathBuf::from(args.remove(0))),
            _ => {
                return Err(CliError(
                    "check-config needs a FILE, e.g. sprocket check-config /etc/sprocket.toml"
                        .into(),
                ));
            }
        }
    }
    let mut cmd = command();
    let argv = std::iter::once("sprocket".to_owned()).chain(args.iter().cloned());
    let cli = match cmd.try_get_matches_from_mut(argv) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::DisplayHelp => return Ok(Command::Help),
        Err(e) if e.kind() == ErrorKind::DisplayVersion => return Ok(Command::Version),
        Err(e) => return Err(CliError(clap_message(&e))),
    };
    let named = cli.get_one::<PathBuf>("config").cloned();
    if check.is_some() && named.is_some() {
        return Err(CliError(
            "check-config FILE takes no --config: FILE is the file".into(),
        ));
    }
    let mut all = vec!["sprocket".to_owned()];
    if let Some(path) = check.as_ref().or(named.as_ref()) {
        let text = read(path)
            .map_err(|e| CliError(format!("--config {}: cannot read: {e}", path.display())))?;
        all.extend(file_args(&cmd, &path.display().to_string(), &text, &cli)?);
    }
    all.extend(args);
    let m = cmd
        .try_get_matches_from_mut(all)
        .map_err(|e| CliError(clap_message(&e)))?;
    let opts = Cli::from_arg_matches(&m)
        .map_err(|e| CliError(clap_message(&e)))?
        .into_options(&m)?;
    if check.is_some() {
        return Ok(Command::CheckConfig(effective(&cmd, &m, &opts)));
    }
    Ok(Command::Run(Box::new(opts)))
}

/// Keys of the file that are no options.
const NOT_KEYS: [&str; 3] = ["help", "version", "config"];

/// Turns the file `name` (holding `text`) into arguments, each checked by
/// its option's parser; leaves out those the command line `cli` gives
/// (`--listen` there drops the file's `interface` and `port` too, and
/// `--interface` or `--port` its `listen`; `--deflate` and `--no-deflate`
/// drop both keys).
fn file_args(
    cmd: &clap::Command,
    name: &str,
    text: &str,
    cli: &ArgMatches,
) -> Result<Vec<String>, CliError> {
    use std::collections::BTreeMap;
    use toml::{Spanned, Value};
    let at = |offset: usize, msg: &str| {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        let msg = msg.lines().next().unwrap_or("").trim();
        CliError(format!("{name}:{line}:{column}: {msg}"))
    };
    let table: BTreeMap<Spanned<String>, Spanned<Value>> = toml::from_str(text)
        .map_err(|e| at(e.span().map(|s| s.start).unwrap_or(0), e.message()))?;
    let mut entries: Vec<_> = table.into_iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let on_cli = |long: &str| {
        let linked: Vec<&str> = match long {
            "listen" => vec!["listen", "interface", "port"],
            "interface" | "port" => vec!["listen", long],
            "deflate" | "no-deflate" => vec!["deflate", "no-deflate"],
            _ => vec![long],
        };
        linked.iter().any(|l| {
            cmd.get_arguments()
                .find(|a| a.get_long() == Some(l))
                .is_some_and(|a| {
                    cli.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine)
                })
        })
    };
    let mut out = Vec::new();
    for (key, value) in entries {
        let k = key.get_ref().as_str();
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(k) && !NOT_KEYS.contains(&k));
        let Some(arg) = arg else {
            let hint = if k == "config" {
                " (a config file cannot name another)".to_owned()
            } else {
                suggest(cmd, k)
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default()
            };
            return Err(at(key.span().start, &format!("unknown key {k:?}{hint}")));
        };
        let bad = |msg: String| at(value.span().start, &format!("{k}: {msg}"));
        let scalar = |v: &Value| match v {
            Value::String(s) => Ok(format!("--{k}={s}")),
            Value::Integer(n) => Ok(format!("--{k}={n}")),
            Value::Table(_) if k == "pusher-app" => Ok(format!("--{k}={v}")),
            other => Err(bad(format!(
                "expected a string or a number, not {}",
                other.type_str()
            ))),
        };
        let args = match (arg.get_action(), value.get_ref()) {
            (ArgAction::SetTrue, Value::Boolean(true)) => vec![format!("--{k}")],
            (ArgAction::SetTrue, Value::Boolean(false)) if k == "deflate" => {
                vec!["--no-deflate".to_owned()]
            }
            (ArgAction::SetTrue, Value::Boolean(false)) => Vec::new(),
            (ArgAction::SetTrue, other) => {
                return Err(bad(format!(
                    "expected true or false, not {}",
                    other.type_str()
                )));
            }
            (ArgAction::Append, Value::Array(items)) => {
                items.iter().map(scalar).collect::<Result<_, _>>()?
            }
            (_, Value::Array(_)) => {
                return Err(bad("takes one value, not an array".into()));
            }
            (_, v) => vec![scalar(v)?],
        };
        for a in &args {
            cmd.clone()
                .try_get_matches_from(["sprocket", a])
                .map_err(|e| bad(value_message(&e)))?;
        }
        if !on_cli(k) {
            out.extend(args);
        }
    }
    Ok(out)
}

/// The long option nearest to a misspelt key, if one is near.
fn suggest(cmd: &clap::Command, key: &str) -> Option<String> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let next = (row[j + 1] + 1)
                    .min(row[j] + 1)
                    .min(prev + usize::from(ca != *cb));
                prev = row[j + 1];
                row[j + 1] = next;
            }
        }
        row[b.len()]
    }
    cmd.get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !NOT_KEYS.contains(l))
        .map(|l| (distance(key, l), l))
        .filter(|(d, l)| *d <= 3 && *d * 3 <= l.len())
        .min()
        .map(|(_, l)| l.to_owned())
}

/// What is wrong with a value, from clap's error about `--name=value`.
fn value_message(e: &clap::Error) -> String {
    match e.kind() {
        ErrorKind::ValueValidation => std::error::Error::source(e)
            .map(|s| s.to_string())
            .unwrap_or_else(|| first_line(e)),
        _ => first_line(e),
    }
}

/// A clap error as one line that names the option.
fn clap_message(e: &clap::Error) -> String {
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.split([' ', '=']).next().unwrap_or(s).to_owned(),
        _ => String::new(),
    };
    match e.kind() {
        ErrorKind::ValueValidation => {
            let why = value_message(e);
            if why.starts_with("--") {
                why
            } else {
                format!("{arg}: {why}")
            }
        }
        ErrorKind::UnknownArgument => match e.get(ContextKind::SuggestedArg) {
            Some(ContextValue::String(s)) => format!("unknown option {arg} (did you mean {s}?)"),
            _ => format!("unknown option {arg}"),
        },
        ErrorKind::InvalidValue if !arg.is_empty() => format!("{arg} needs a value"),
        _ => first_line(e),
    }
}

fn first_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or("").trim();
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

/// The effective settings as a config file: every option in `--help`'s
/// order, with its value (given or default); those without one are
/// comments. Read back, it gives the same [`Options`].
fn effective(cmd: &clap::Command, m: &ArgMatches, opts: &Options) -> String {
    let scalar = |s: &str| match s.parse::<i64>() {
        Ok(n) if n.to_string() == s => n.to_string(),
        _ => toml::Value::String(s.to_owned()).to_string(),
    };
    let mut out = String::from(
        "# The effective settings of sprocket (sprocket check-config): every option,\n\
         # given or default. Usable as a --config file.\n",
    );
    let mut heading = Some("");
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if NOT_KEYS.contains(&long) || long == "no-deflate" {
            continue;
        }
        if arg.get_help_heading() != heading {
            heading = arg.get_help_heading();
            out.push_str(&format!("\n# {}\n", heading.unwrap_or("OPTIONS")));
        }
        let id = arg.get_id().as_str();
        let raw: Vec<String> = m
            .get_raw(id)
            .map(|vals| vals.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let line = match (long, arg.get_action()) {
            ("listen", _) => format!("listen = {}", scalar(&opts.config.listen.to_string())),
            ("interface" | "port", _) => format!("# {long} = (in listen)"),
            ("deflate", _) => format!("deflate = {}", opts.config.deflate.enabled),
            (_, ArgAction::SetTrue) => format!("{long} = {}", m.get_flag(id)),
            (_, ArgAction::Append) => {
                let items: Vec<String> = raw.iter().map(|v| scalar(v)).collect();
                format!("{long} = [{}]", items.join(", "))
            }
            _ => match raw.first() {
                Some(v) => format!("{long} = {}", scalar(v)),
                None => format!("# {long} = (not set)"),
            },
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------
// `sprocket probe`, hand-parsed: four options.
// ---------------------------------------------------------------------------

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
            "--timeout" => {
                opts.timeout =
                    positive_duration(&value()?).map_err(|e| CliError(format!("{name}: {e}")))?
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, CliError> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Command::Run(o) => Ok(*o),
            other => panic!("{other:?}"),
        }
    }

    /// Parses `args` with `file` as the text of the file `f.toml`.
    fn with_file(file: &str, args: &[&str]) -> Result<Command, CliError> {
        let file = file.to_owned();
        parse_with(args.iter().map(|s| s.to_string()), move |p| {
            assert_eq!(p, std::path::Path::new("f.toml"));
            Ok(file.clone())
        })
    }

    fn run_file(file: &str, args: &[&str]) -> Result<Options, CliError> {
        let mut all = vec!["--config", "f.toml"];
        all.extend_from_slice(args);
        match with_file(file, &all)? {
            Command::Run(o) => Ok(*o),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_options() {
        let o = run(&[]).unwrap();
        assert_eq!(o.config, Config::default());
        assert_eq!(o, Options::default());
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
        // The last of a repeated option wins; -l is --listen.
        let o = run(&["-l", "127.0.0.1:1", "--listen", "127.0.0.1:2"]).unwrap();
        assert_eq!(o.config.listen.port(), 2);
        // A frame is never larger than a message.
        let o = run(&["--max-message-size", "1K"]).unwrap();
        assert_eq!(o.config.max_frame_size, 1024);
        assert!(
            run(&["--no-deflate", "--deflate"])
                .unwrap()
                .config
                .deflate
                .enabled
        );
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
            &["--max-frame-size", "-1"],
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
            &["--realm", ""],
            &["--realm", "a b"],
            &["--realm", "x", "--realm", "x"],
            &["--pusher-activity-timeout", "0"],
            &["--pusher-activity-timeout", "1500ms"],
            &["--pusher-app", "1:k:s", "--pusher-path-prefix", "/"],
            &["--pusher-app", "1:k:s", "--pusher-path-prefix", "ws"],
            &["--pusher-app", "1:k:s", "--pusher-path-prefix", "/ws/"],
            &["--pusher-app", "1:k:s", "--pusher-path-prefix", "/a b"],
            &["stray"],
        ] {
            let e = run(bad).unwrap_err();
            assert!(!e.0.contains('\n') && !e.0.is_empty(), "{bad:?}: {e}");
        }
        assert_eq!(parse(["--help".to_string()]), Ok(Command::Help));
        assert_eq!(parse(["-h".to_string()]), Ok(Command::Help));
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
        assert_eq!(parse(["--version".to_string()]), Ok(Command::Version));
    }

    #[test]
    fn messages_keep_their_substance() {
        let e = |args: &[&str]| run(args).unwrap_err().0;
        assert_eq!(
            e(&["--max-message-size", "12Q"]),
            "--max-message-size: not a size: \"12Q\" (e.g. 65536, 64K, 16M)"
        );
        assert_eq!(
            e(&["--port", "http"]),
            "--port: not a valid number: \"http\""
        );
        assert_eq!(e(&["--nope"]), "unknown option --nope");
        assert!(e(&["--max-mesage-size", "1"]).contains("did you mean --max-message-size"));
        assert_eq!(
            e(&["--listen", "1.2.3.4:5", "--port", "6"]),
            "use either --listen or --interface/--port, not both"
        );
        assert_eq!(e(&["--tls-cert", "c.pem"]), "--tls-cert needs --tls-key");
        assert_eq!(
            e(&["--session-cookie", "a=b"]),
            "--session-cookie: \"a=b\" is not a cookie name"
        );
        assert_eq!(e(&["--port"]), "--port needs a value");
        assert_eq!(
            e(&["--grip-route", "/chat=http://127.0.0.1:1/"]),
            "--grip-route /chat is taken by a built-in route"
        );
        assert_eq!(
            e(&["--pusher-webhook", "http://127.0.0.1:1/"]),
            "--pusher-webhook needs --pusher-app"
        );
        assert_eq!(
            e(&["--pusher-path-prefix", "/ws"]),
            "--pusher-path-prefix needs --pusher-app"
        );
        let o = run(&["--pusher-app", "1:k:s", "--pusher-path-prefix", "/ws/v1"]).unwrap();
        assert_eq!(o.pusher_path_prefix, "/ws/v1");
        assert_eq!(
            run(&["--pusher-app", "1:k:s"]).unwrap().pusher_path_prefix,
            ""
        );
        assert_eq!(
            e(&["--bus-prefix", "x:"]),
            "--bus-prefix and --bus-probe-* need --bus"
        );
        assert_eq!(
            e(&["--fanout-flush-delay", "2s"]),
            "--fanout-flush-delay: must be at most 1s"
        );
    }

    #[test]
    fn new_options_realm_and_pusher_activity_timeout() {
        let o = run(&["--pusher-app", "1:k:s"]).unwrap();
        assert_eq!(o.realms, ["realm1"]);
        assert_eq!(o.pusher_apps[0].limits.activity_timeout, 120);
        let o = run(&[
            "--realm",
            "a",
            "--realm=com.example",
            "--pusher-activity-timeout",
            "3m",
            "--pusher-app",
            "1:k:s",
        ])
        .unwrap();
        assert_eq!(o.realms, ["a", "com.example"]);
        assert_eq!(o.pusher_apps[0].limits.activity_timeout, 180);
        assert!(run(&["--realm", &"r".repeat(256)]).is_err());
        assert!(run(&["--realm", &"r".repeat(255)]).is_ok());
        assert!(run(&["--pusher-activity-timeout", "1s"]).is_ok());
        let h = help();
        assert!(h.contains("--realm <NAME>") && h.contains("--pusher-activity-timeout"));
        assert!(h.contains("SIGHUP reloads --tls-cert"), "{h}");
        assert!(!h.contains("nothing is reloaded"));
    }

    #[test]
    fn every_session_option_is_defined() {
        let h = help();
        for line in sprocket::session::OPTIONS_HELP.lines() {
            if let Some(name) = line.trim().strip_prefix("--") {
                let name = name.split(' ').next().unwrap();
                assert!(
                    h.contains(&format!("--{name}")),
                    "--{name} missing from --help"
                );
            }
        }
        // The clap defaults are SessionSettings' defaults.
        assert_eq!(run(&[]).unwrap().sessions, SessionSettings::default());
    }

    #[test]
    fn the_file_sets_and_the_command_line_overrides() {
        let file = r#"
# a comment
listen = "127.0.0.1:9001"
max-message-size = "1M"
max-connections = 50
block = ["10.0.0.0/8", "192.168.0.1,::1"]
allowed-origin = "a.com,b.org"
realm = ["one", "two"]
proxy-protocol = false
forward-cookies = true
deflate = false
session-store = "files:/tmp"
session-required = true
"#;
        let o = run_file(file, &[]).unwrap();
        assert_eq!(o.config.listen, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(o.config.max_message_size, 1 << 20);
        assert_eq!(o.config.max_connections, 50);
        assert_eq!(o.blocked.len(), 3);
        assert_eq!(o.allowed_origins, ["a.com", "b.org"]);
        assert_eq!(o.realms, ["one", "two"]);
        assert!(o.backends.forward_cookies);
        assert!(!o.config.deflate.enabled);
        assert!(o.sessions.required);
        // The command line wins, option by option; a list given there
        // replaces the file's list.
        let o = run_file(
            file,
            &[
                "--listen",
                "127.0.0.1:9002",
                "--block",
                "1.2.3.4",
                "--realm",
                "three",
                "--deflate",
            ],
        )
        .unwrap();
        assert_eq!(o.config.listen.port(), 9002);
        assert_eq!(o.blocked.len(), 1);
        assert_eq!(o.realms, ["three"]);
        assert!(o.config.deflate.enabled);
        assert_eq!(o.config.max_connections, 50);
        // --port on the command line replaces the file's listen.
        let o = run_file(file, &["-p", "9003"]).unwrap();
        assert_eq!(o.config.listen, "127.0.0.1:9003".parse().unwrap());
        // Rules between options see both sources.
        let e = run_file("tls-cert = \"c.pem\"\n", &[]).unwrap_err();
        assert_eq!(e.0, "--tls-cert needs --tls-key");
        assert!(run_file("tls-cert = \"c.pem\"\n", &["--tls-key", "k.pem"]).is_ok());
    }

    #[test]
    fn file_mistakes_name_the_line() {
        let e = |file: &str| run_file(file, &[]).unwrap_err().0;
        assert_eq!(
            e("listen = \"127.0.0.1:1\"\n\nmax-mesage-size = \"1M\"\n"),
            "f.toml:3:1: unknown key \"max-mesage-size\" (did you mean max-message-size?)"
        );
        assert_eq!(
            e("# x\nmax-message-size = \"12Q\"\n"),
            "f.toml:2:20: max-message-size: not a size: \"12Q\" (e.g. 65536, 64K, 16M)"
        );
        assert_eq!(
            e("port = 1\nlisten = true\n"),
            "f.toml:2:10: listen: expected a string or a number, not boolean"
        );
        assert_eq!(
            e("admin-tls = \"yes\"\n"),
            "f.toml:1:13: admin-tls: expected true or false, not string"
        );
        assert_eq!(
            e("\n\n  listen = [\"127.0.0.1:1\"]\n"),
            "f.toml:3:12: listen: takes one value, not an array"
        );
        assert_eq!(
            e("realm = [\"ok\", \"not ok\"]\n"),
            "f.toml:1:9: realm: a realm is 1 to 255 bytes without whitespace, not \"not ok\""
        );
        assert_eq!(
            e("x = 1\nsession-cookie = \"a=b\"\n"),
            "f.toml:1:1: unknown key \"x\""
        );
        assert_eq!(
            e("session-cookie = \"a=b\"\n"),
            "f.toml:1:18: session-cookie: --session-cookie: \"a=b\" is not a cookie name"
        );
        assert!(e("config = \"other.toml\"\n").starts_with("f.toml:1:1: unknown key \"config\""));
        assert!(
            e("[tls]\ncert = \"x\"\n").starts_with("f.toml:1:"),
            "a table"
        );
        // TOML syntax errors and duplicate keys carry the line too.
        assert!(e("port = 1\nport = 2\n").starts_with("f.toml:2:"));
        assert!(e("a\n").starts_with("f.toml:1:"));
        for msg in [e("port = 1\nport = 2\n"), e("max-connections = 1.5\n")] {
            assert!(!msg.contains('\n'), "{msg}");
        }
        let missing = parse_with(["--config".to_owned(), "nope.toml".to_owned()], |_| {
            Err(std::io::Error::from(std::io::ErrorKind::NotFound))
        })
        .unwrap_err();
        assert!(
            missing.0.starts_with("--config nope.toml: cannot read"),
            "{missing}"
        );
    }

    #[test]
    fn check_config_prints_every_option_and_reads_back_the_same() {
        let file = r#"
port = 9001
interface = "0.0.0.0"
block = ["10.0.0.0/8"]
pid-file = "0123"
ping-interval = 0
deflate = false
session-store = "files:/tmp"
grip-route = ["/api=http://127.0.0.1:1/ws"]
pusher-app = ["1:key:secret"]
pusher-webhook = "http://127.0.0.1:1/hook"
"#;
        let Command::CheckConfig(printed) = with_file(file, &["check-config", "f.toml"]).unwrap()
        else {
            panic!("not check-config")
        };
        for line in [
            "listen = \"0.0.0.0:9001\"",
            "max-message-size = \"16M\"",
            "max-connections = 10000",
            "realm = [\"realm1\"]",
            "deflate = false",
            "pid-file = \"0123\"",
            "reuse-port = false",
            "# tls-cert = (not set)",
            "pusher-activity-timeout = \"120s\"",
            "session-prefix = \"PHPREDIS_SESSION:\"",
        ] {
            assert!(printed.lines().any(|l| l == line), "{line} in\n{printed}");
        }
        let cmd = command();
        for arg in cmd.get_arguments() {
            let long = arg.get_long().unwrap();
            if !NOT_KEYS.contains(&long) && long != "no-deflate" {
                assert!(
                    printed.contains(&format!("{long} ")),
                    "{long} in\n{printed}"
                );
            }
        }
        let first = run_file(file, &[]).unwrap();
        let again = run_file(&printed, &[]).unwrap();
        assert_eq!(first, again);
        // With the defaults alone, too.
        let Command::CheckConfig(defaults) = with_file("", &["check-config", "f.toml"]).unwrap()
        else {
            panic!("not check-config")
        };
        assert_eq!(run_file(&defaults, &[]).unwrap(), Options::default());
        // Command-line options after FILE apply; a bad file is an error.
        let Command::CheckConfig(p) =
            with_file(file, &["check-config", "f.toml", "-p", "9"]).unwrap()
        else {
            panic!("not check-config")
        };
        assert!(p.contains("listen = \"0.0.0.0:9\""), "{p}");
        assert!(with_file("nope = 1", &["check-config", "f.toml"]).is_err());
        assert!(parse(["check-config".to_owned()]).is_err());
    }

    #[test]
    fn pusher_apps_in_full_from_tables_of_the_file() {
        let file = r#"
pusher-webhook = "http://127.0.0.1:1/all"

[[pusher-app]]
id = "1"
key = "k1"
secret = "s:1"
client-events = false
allowed-origins = ["https://App.example.com", "b.org"]
webhook = "http://127.0.0.1:2/one"
max-connections = 500
max-channels-per-connection = 20
max-presence-members = 50
max-user-info = "2K"
max-client-event = 512
client-events-per-second = 3
max-event-data = "64KiB"
activity-timeout = "30s"

[[pusher-app]]
id = "2"
key = "k2"
secret = "s2"
"#;
        let o = run_file(file, &[]).unwrap();
        let [a, b] = &o.pusher_apps[..] else {
            panic!("{:?}", o.pusher_apps)
        };
        assert_eq!(
            (a.id.as_str(), a.key.as_str(), a.secret.as_str()),
            ("1", "k1", "s:1")
        );
        assert!(!a.client_events);
        assert_eq!(a.allowed_origins, ["https://app.example.com", "b.org"]);
        assert_eq!(
            a.webhook.as_ref().unwrap().to_string(),
            "http://127.0.0.1:2/one"
        );
        let l = &a.limits;
        assert_eq!(
            (l.max_connections, l.max_channels, l.max_presence_members),
            (Some(500), 20, 50)
        );
        assert_eq!(
            (
                l.max_user_info,
                l.max_client_event,
                l.client_events_per_second
            ),
            (2048, 512, 3)
        );
        assert_eq!((l.api.max_data, l.activity_timeout), (64 * 1024, 30));
        // The other app has the defaults, and the global activity timeout.
        assert!(b.client_events && b.allowed_origins.is_empty());
        assert_eq!(b.limits, sprocket::app::PusherLimits::default());
        assert_eq!(
            b.webhook.as_ref().unwrap().to_string(),
            "http://127.0.0.1:1/all"
        );
        // check-config prints them so that they read back the same.
        let Command::CheckConfig(printed) = with_file(file, &["check-config", "f.toml"]).unwrap()
        else {
            panic!("not check-config")
        };
        assert_eq!(run_file(&printed, &[]).unwrap(), o);
        // The same table on the command line; --pusher-activity-timeout is
        // the timeout of the apps without their own.
        let c = run(&[
            "--pusher-app",
            r#"{ id = "3", key = "k3", secret = "s3", client-events = false }"#,
            "--pusher-app",
            r#"{ id = "4", key = "k4", secret = "s4", activity-timeout = 5 }"#,
            "--pusher-activity-timeout",
            "60s",
        ])
        .unwrap();
        assert!(!c.pusher_apps[0].client_events);
        let timeouts: Vec<u64> = c
            .pusher_apps
            .iter()
            .map(|a| a.limits.activity_timeout)
            .collect();
        assert_eq!(timeouts, [60, 5]);
        // Mistakes name the line and the key.
        for (bad, want) in [
            (
                "[[pusher-app]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\norigins = []\n",
                "unknown Pusher app key \"origins\"",
            ),
            (
                "[[pusher-app]]\nid = \"1\"\nkey = \"k\"\n",
                "the Pusher app has no secret",
            ),
            (
                "[[pusher-app]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nclient-events = \"no\"\n",
                "client-events: expected true or false",
            ),
            (
                "[[pusher-app]]\nid = \"a b\"\nkey = \"k\"\nsecret = \"s\"\n",
                "letters, digits",
            ),
            (
                "[[pusher-app]]\nid = \"1:x\"\nkey = \"k\"\nsecret = \"s\"\n",
                "letters, digits",
            ),
            (
                "[[pusher-app]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nmax-connections = 0\n",
                "max-connections: expected a positive integer, not 0",
            ),
            (
                "[[pusher-app]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nmax-user-info = \"lots\"\n",
                "max-user-info: not a size",
            ),
            (
                "[[pusher-app]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nactivity-timeout = \"1500ms\"\n",
                "activity-timeout: must be whole seconds",
            ),
        ] {
            let e = run_file(bad, &[]).unwrap_err().0;
            assert!(e.starts_with("f.toml:") && e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn forwarded_header_names_the_one_header_read() {
        let cfg = |args: &[&str]| run(args).map(|o| o.config.forwarded_header);
        let trusted = ["--trusted-proxy", "127.0.0.1"];
        assert_eq!(cfg(&trusted).unwrap(), ForwardedHeader::XForwardedFor);
        let with = |v: &'static str| [trusted[0], trusted[1], "--forwarded-header", v];
        assert_eq!(cfg(&with("forwarded")).unwrap(), ForwardedHeader::Forwarded);
        assert_eq!(
            cfg(&with("x-forwarded-for")).unwrap(),
            ForwardedHeader::XForwardedFor
        );
        let bad = cfg(&with("x-real-ip")).unwrap_err().0;
        assert!(
            bad.contains("--forwarded-header") && bad.contains("x-real-ip"),
            "{bad}"
        );
        // Without a trusted proxy no header is read: asking for one is a mistake.
        let lone = cfg(&["--forwarded-header", "forwarded"]).unwrap_err().0;
        assert!(lone.contains("needs --trusted-proxy"), "{lone}");
        // The file's key is the option's name.
        let file = "trusted-proxy = [\"10.0.0.0/8\"]\nforwarded-header = \"forwarded\"\n";
        let o = run_file(file, &[]).unwrap();
        assert_eq!(o.config.forwarded_header, ForwardedHeader::Forwarded);
        let Command::CheckConfig(printed) = with_file(file, &["check-config", "f.toml"]).unwrap()
        else {
            panic!("not check-config")
        };
        assert!(
            printed
                .lines()
                .any(|l| l == "forwarded-header = \"forwarded\""),
            "{printed}"
        );
    }
}
