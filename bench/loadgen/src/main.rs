//! loadgen: a single-threaded load generator for WebSocket servers (and a
//! raw TCP echo), built to be pinned to one core. See `--help`.

mod args;
mod conn;
mod connect;
mod echo;
mod fanout;
mod flavour;
mod hist;
mod httppub;
mod json;
mod payload;
mod procstat;
mod pusher;
mod report;
mod tls;
mod wamp2;
mod ws;

use procstat::CpuUse;
use report::Json;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

const HELP: &str = "\
loadgen - load generator for WebSocket servers (one thread, one mio loop)

USAGE:
    loadgen echo    --addr HOST:PORT [--path /echo] [--conns 100] [--window 16]
                    [--size 32] [--binary] [--raw] [--warmup 1] [--duration 5]
    loadgen fanout  --addr HOST:PORT[,HOST:PORT...] [--path /chat] [--subs 1000] [--pubs 1]
                    [--rate 1000] [--size 32] [--warmup 1] [--duration 3]
                    [--search [--max-p99-ms 50] [--max-steps 10] [--min-rate 10]]
                    [--flavour chat|wamp1] [--topic URI] [--concurrency 100]
                    [--read-every-ms 4] [--tick-ms 1]
                    [--flavour grip --channel NAME --publish-url URL [--publish-batch 1]]
    loadgen connect --addr HOST:PORT [--path /echo] [--conns 10000]
                    [--concurrency 100] [--hold 1]
    loadgen wamp2-rpc    --addr HOST:PORT [--path /wamp] [--realm realm1] [--callers 10]
                    [--inflight 16] [--procedure bench.echo] [--size 32] [--warmup 1] [--duration 5]
    loadgen wamp2-fanout --addr HOST:PORT [--path /wamp] [--realm realm1] [--subs 1000]
                    [--topic bench.topic] [--rate 0] [--max-lag 100] [--size 32]
                    [--concurrency 100] [--warmup 1] [--duration 3]
    loadgen wamp2-idle   --addr HOST:PORT [--path /wamp] [--realm realm1] [--sessions 1000]
                    [--concurrency 100] [--hold 1]
    loadgen pusher-fanout  --addr HOST:PORT [--app-id 1] [--key key] [--secret secret]
                    [--api-addr HOST:PORT] [--channel bench] [--event bench] [--subs 1000]
                    [--pubs 10] [--rate 0] [--max-lag 10] [--size 32] [--concurrency 100]
                    [--warmup 1] [--duration 3]
    loadgen pusher-connect --addr HOST:PORT [--key key] [--conns 5000] [--concurrency 100] [--hold 1]
    loadgen pusher-idle    --addr HOST:PORT [--key key] [--conns 1000] [--channel bench]
                    [--channels 1] [--concurrency 100] [--hold 1]

Every mode: --server-pid PID samples the server's CPU time (utime+stime from
/proc/PID/stat) over the measured window and reports server CPU per
operation; connect mode also reads its RSS (/proc/PID/status) before and
after. --server-pid PID,PID... sums several server processes (and gives
each one's share); --aux-pid PID,... samples other processes (e.g. a Redis
the servers share) over the same window, reported apart as aux_cpu_*.
--label NAME is copied into the output. --tls-ca FILE: connect with TLS
(wss://; ALPN http/1.1, no session resumption), trusting the PEM
certificates in FILE; the server's certificate must name the IP address.

echo      C connections keep W messages of S bytes in flight each; every echo
          is checked (content and order). Reports msgs/s, MB/s, RTT
          percentiles. --raw: plain TCP, fixed-size records, no WebSocket.
fanout    N subscribers and P publishing connections on a chat-style path;
          publishers send R msgs/s in total (open loop), each payload carries
          publisher id, sequence number and send time. Reports deliveries/s,
          latency percentiles, lost / reordered deliveries. --search finds the
          highest rate with no loss and p99 under --max-p99-ms. The tool
          polls at most every --read-every-ms, so deliveries batch per read
          (latency floor: that interval). Publishers send what is due once
          per --tick-ms, all at once. Several --addr (comma-separated):
          subscribers and publishers are spread over the servers round robin
          (connection i to server i mod n), for servers that share topics.
          --publish-url http://HOST:PORT/PATH: the P publishers are HTTP
          keep-alive connections POSTing GRIP publish requests
          (an items array, one request in flight each, at most
          --publish-batch items per request) instead of WebSocket clients;
          with --flavour grip the subscribers only connect (their backend
          subscribes them to --channel) and a delivery is the content as is.
connect   Opens C idle connections; handshakes/s, server RSS per connection.
wamp2-*   WAMP v2, JSON serializer (subprotocol wamp.2.json); every session
          sends HELLO and waits for WELCOME; ABORT or ERROR fails it.
          wamp2-rpc: one callee registers --procedure and YIELDs every
          INVOCATION's args back; C callers keep P CALLs in flight each; every
          RESULT is checked. Reports calls/s and RTT percentiles.
          wamp2-fanout: N subscribers on --topic, one publisher (PUBLISH
          without acknowledge) at --rate events/s, or as fast as allowed
          with --rate 0; either way never more than --max-lag events ahead
          of the slowest subscriber. The send time is in the event's args.
          Reports deliveries/s, delivery latency, lost / reordered events.
          wamp2-idle: N sessions opened and held; server RSS per session
          (with --server-pid), then GOODBYE (answered) and close.
pusher-*  Pusher Channels protocol 7: every connection opens
          /app/KEY?protocol=7&client=loadgen&version=1 and waits for
          pusher:connection_established; pusher:error or
          pusher:subscription_error fails it; pusher:ping is answered.
          pusher-fanout: N subscribers of --channel (pusher:subscribe, wait
          for pusher_internal:subscription_succeeded); P keep-alive HTTP/1.1
          connections to the HTTP API (--api-addr, default --addr) trigger
          --event with POST /apps/ID/events, signed with --key/--secret as
          the Pusher SDKs sign (body_md5, HMAC-SHA256), one request in
          flight each, at --rate events/s or as fast as allowed with
          --rate 0; never more than --max-lag events ahead of the slowest
          subscriber. The send time is in the event's data. Reports
          deliveries/s, delivery latency, lost / reordered deliveries.
          pusher-connect: C connections (handshake + connection_established);
          connections/s, server CPU and RSS per connection.
          pusher-idle: C connections, each subscribed (to --channel, or
          spread over --channels N: CHANNEL-0...), held; server RSS per
          connection; then closed.

Output: one JSON line on stdout, a human summary on stderr (--quiet: none).
Exit status: 0 valid run, 1 run with errors (JSON has ok=false), 2 usage.
";

/// Options every mode has.
pub struct Common {
    /// The first (or only) server.
    pub addr: SocketAddr,
    /// Every server given (fanout spreads its connections over them).
    pub addrs: Vec<SocketAddr>,
    /// Server processes whose CPU is summed (empty: not sampled).
    pub server_pids: Vec<u32>,
    /// Other processes whose CPU is sampled over the same window, apart.
    pub aux_pids: Vec<u32>,
    pub label: Option<String>,
    /// wss:// (`--tls-ca FILE`): trust the certificates in FILE.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// A comma-separated list of `T`, empty when the option is absent.
fn list<T: std::str::FromStr>(a: &args::Args, name: &str) -> Result<Vec<T>, String> {
    let Some(v) = a.opt::<String>(name)? else {
        return Ok(Vec::new());
    };
    v.split(',')
        .map(|item| {
            item.trim()
                .parse()
                .map_err(|_| format!("--{name}: cannot parse {item:?}"))
        })
        .collect()
}

/// What a mode measured, before the common fields are added.
pub struct Outcome {
    json: Json,
    cpu: CpuUse,
    per_ops: Vec<(&'static str, f64)>,
    pub problems: Vec<String>,
    pub summary: String,
}

impl Outcome {
    pub fn new(json: Json, cpu: CpuUse) -> Self {
        Outcome {
            json,
            cpu,
            per_ops: Vec::new(),
            problems: Vec::new(),
            summary: String::new(),
        }
    }

    /// Reports server CPU per `name` given how many were done in the window.
    pub fn per_op(&mut self, name: &'static str, count: f64) {
        self.per_ops.push((name, count));
    }
}

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let mode = argv.next().unwrap_or_default();
    if matches!(mode.as_str(), "" | "-h" | "--help" | "help") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    match run(&mode, argv) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(mode: &str, argv: impl Iterator<Item = String>) -> Result<ExitCode, String> {
    let a = args::Args::parse(argv)?;
    let addr_s: String = a.opt("addr")?.ok_or("--addr HOST:PORT is required")?;
    let mut addrs = Vec::new();
    for one in addr_s.split(',') {
        let one = one.trim();
        addrs.push(
            one.to_socket_addrs()
                .map_err(|e| format!("--addr {one}: {e}"))?
                .next()
                .ok_or_else(|| format!("--addr {one} resolves to nothing"))?,
        );
    }
    if addrs.len() > 1 && mode != "fanout" {
        return Err("several --addr: only fanout mode spreads over servers".into());
    }
    let common = Common {
        addr: addrs[0],
        addrs,
        server_pids: list(&a, "server-pid")?,
        aux_pids: list(&a, "aux-pid")?,
        label: a.opt("label")?,
        tls: match a.opt::<String>("tls-ca")? {
            Some(file) => Some(tls::client_config(&file)?),
            None => None,
        },
    };
    let quiet = a.flag("quiet");
    let outcome = match mode {
        "echo" => {
            let o = echo::EchoOpts {
                conns: a.get("conns", 100)?,
                window: a.get("window", 16)?,
                size: a.size("size", 32)?,
                binary: a.flag("binary"),
                raw: a.flag("raw"),
                path: a.get("path", "/echo".to_string())?,
                warmup: a.get("warmup", 1.0)?,
                duration: a.get("duration", 5.0)?,
            };
            a.check_unused()?;
            echo::run(&common, &o)
        }
        "fanout" => {
            let o = fanout::FanoutOpts {
                subs: a.get("subs", 1000)?,
                pubs: a.get("pubs", 1)?,
                rate: a.get("rate", 1000.0)?,
                size: a.size("size", 32)?,
                warmup: a.get("warmup", 1.0)?,
                duration: a.get("duration", 3.0)?,
                search: a.flag("search"),
                max_p99_ms: a.get("max-p99-ms", 50.0)?,
                max_steps: a.get("max-steps", 10)?,
                min_rate: a.get("min-rate", 10.0)?,
                concurrency: a.get("concurrency", 100)?,
                read_every_ms: a.get("read-every-ms", 4.0)?,
                tick_ms: a.get("tick-ms", 1.0)?,
                publish_url: a.opt("publish-url")?,
                publish_batch: a.get("publish-batch", 1)?,
            };
            let path: String = a.get("path", "/chat".to_string())?;
            let flavour: Box<dyn flavour::Flavour> =
                match a.get("flavour", "chat".to_string())?.as_str() {
                    "chat" => Box::new(flavour::Chat { path }),
                    "wamp1" => Box::new(flavour::WampV1 {
                        path,
                        topic: a.get("topic", "http://example.com/bench".to_string())?,
                    }),
                    "grip" => Box::new(flavour::Grip {
                        path,
                        channel: a.get("channel", "bench".to_string())?,
                    }),
                    other => return Err(format!("unknown --flavour {other}")),
                };
            a.check_unused()?;
            fanout::run(&common, &o, flavour)
        }
        "connect" => {
            let o = connect::ConnectOpts {
                conns: a.get("conns", 10_000)?,
                concurrency: a.get("concurrency", 100)?,
                hold: a.get("hold", 1.0)?,
                path: a.get("path", "/echo".to_string())?,
            };
            a.check_unused()?;
            connect::run(&common, &o)
        }
        "wamp2-rpc" | "wamp2-fanout" | "wamp2-idle" => {
            let o = wamp2::Wamp2Opts {
                path: a.get("path", "/wamp".to_string())?,
                realm: a.get("realm", "realm1".to_string())?,
                size: a.size("size", 32)?,
                warmup: a.get("warmup", 1.0)?,
                duration: a.get("duration", if mode == "wamp2-rpc" { 5.0 } else { 3.0 })?,
                concurrency: a.get("concurrency", 100)?,
                callers: a.get("callers", 10)?,
                inflight: a.get("inflight", 16)?,
                procedure: a.get("procedure", "bench.echo".to_string())?,
                subs: a.get("subs", 1000)?,
                topic: a.get("topic", "bench.topic".to_string())?,
                rate: a.get("rate", 0.0)?,
                max_lag: a.get("max-lag", 100)?,
                sessions: a.get("sessions", 1000)?,
                hold: a.get("hold", 1.0)?,
            };
            a.check_unused()?;
            match mode {
                "wamp2-rpc" => wamp2::run_rpc(&common, &o),
                "wamp2-fanout" => wamp2::run_fanout(&common, &o),
                _ => wamp2::run_idle(&common, &o),
            }
        }
        "pusher-fanout" | "pusher-connect" | "pusher-idle" => {
            let api: Option<String> = a.opt("api-addr")?;
            let o = pusher::PusherOpts {
                app_id: a.get("app-id", "1".to_string())?,
                key: a.get("key", "key".to_string())?,
                secret: a.get("secret", "secret".to_string())?,
                api: match api {
                    Some(s) => Some(
                        s.to_socket_addrs()
                            .map_err(|e| format!("--api-addr {s}: {e}"))?
                            .next()
                            .ok_or_else(|| format!("--api-addr {s} resolves to nothing"))?,
                    ),
                    None => None,
                },
                channel: a.get("channel", "bench".to_string())?,
                event: a.get("event", "bench".to_string())?,
                size: a.size("size", 32)?,
                warmup: a.get("warmup", 1.0)?,
                duration: a.get("duration", 3.0)?,
                concurrency: a.get("concurrency", 100)?,
                subs: a.get("subs", 1000)?,
                pubs: a.get("pubs", 10)?,
                rate: a.get("rate", 0.0)?,
                max_lag: a.get("max-lag", 10)?,
                conns: a.get("conns", if mode == "pusher-connect" { 5000 } else { 1000 })?,
                hold: a.get("hold", 1.0)?,
                channels: a.get("channels", 1)?,
            };
            a.check_unused()?;
            match mode {
                "pusher-fanout" => pusher::run_fanout(&common, &o),
                "pusher-connect" => pusher::run_open(&common, &o, false),
                _ => pusher::run_open(&common, &o, true),
            }
        }
        other => {
            return Err(format!(
                "unknown mode {other:?} (echo, fanout, connect, wamp2-rpc, wamp2-fanout, wamp2-idle, \
                 pusher-fanout, pusher-connect, pusher-idle)"
            ));
        }
    };
    let mut out = match outcome {
        Ok(o) => o,
        Err(e) => {
            // Could not even run: still one JSON line, marked invalid.
            let mut j = Json::new();
            j.str("mode", mode).bool("ok", false).str("error", &e);
            if let Some(l) = &common.label {
                j.str("label", l);
            }
            println!("{}", j.finish());
            eprintln!("loadgen {mode}: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let j = &mut out.json;
    if let Some(l) = &common.label {
        j.str("label", l);
    }
    if let Some(pid) = common.server_pids.first() {
        j.int("server_pid", *pid as u64);
    }
    let nums = |xs: &[String]| report::V::Raw(report::array(xs));
    if common.server_pids.len() > 1 {
        let pids: Vec<String> = common.server_pids.iter().map(u32::to_string).collect();
        j.put("server_pids", nums(&pids));
        let each: Vec<String> = out
            .cpu
            .server_each_s
            .iter()
            .map(|s| format!("{}", (s * 1e4).round() / 1e4))
            .collect();
        j.put("server_cpu_s_each", nums(&each));
    }
    j.num("window_s", out.cpu.wall_s)
        .opt("server_cpu_s", out.cpu.server_s)
        .opt(
            "server_cpu_util",
            out.cpu.server_s.map(|s| s / out.cpu.wall_s),
        )
        .num("loadgen_cpu_util", out.cpu.own_s / out.cpu.wall_s.max(1e-9));
    if !common.aux_pids.is_empty() {
        let pids: Vec<String> = common.aux_pids.iter().map(u32::to_string).collect();
        j.put("aux_pids", nums(&pids))
            .opt("aux_cpu_s", out.cpu.aux_s)
            .opt("aux_cpu_util", out.cpu.aux_s.map(|s| s / out.cpu.wall_s));
    }
    for (name, count) in &out.per_ops {
        let per = |cpu: Option<f64>| cpu.filter(|_| *count > 0.0).map(|s| s * 1e6 / count);
        j.opt(&format!("server_cpu_us_per_{name}"), per(out.cpu.server_s));
        if !common.aux_pids.is_empty() {
            j.opt(&format!("aux_cpu_us_per_{name}"), per(out.cpu.aux_s));
        }
    }
    let ok = out.problems.is_empty();
    j.bool("ok", ok);
    let probs: Vec<String> = out
        .problems
        .iter()
        .map(|p| {
            let mut s = String::new();
            report::quote(&mut s, p);
            s
        })
        .collect();
    j.put("problems", report::V::Raw(report::array(&probs)));
    println!("{}", j.finish());
    if !quiet {
        eprintln!("{}", out.summary);
        if let Some(s) = out.cpu.server_s {
            let mut per: Vec<String> = Vec::new();
            for (name, count) in &out.per_ops {
                if *count > 0.0 {
                    per.push(format!("{:.3} µs/{name}", s * 1e6 / count));
                }
            }
            eprintln!(
                "  server CPU {:.2} s over {:.2} s ({:.0} %): {}; loadgen CPU {:.0} %",
                s,
                out.cpu.wall_s,
                100.0 * s / out.cpu.wall_s,
                per.join(", "),
                100.0 * out.cpu.own_s / out.cpu.wall_s
            );
        }
        if let Some(s) = out.cpu.aux_s {
            eprintln!("  aux CPU {:.2} s ({:.0} %)", s, 100.0 * s / out.cpu.wall_s);
        }
        for p in &out.problems {
            eprintln!("  PROBLEM: {p}");
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
