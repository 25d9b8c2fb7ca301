//! WAMP v2 modes over the JSON serializer (subprotocol `wamp.2.json`):
//! `wamp2-rpc` (one callee echoing, C callers with P calls in flight each),
//! `wamp2-fanout` (N subscribers on one topic, one publisher with a bounded
//! lag) and `wamp2-idle` (N sessions held open; server RSS per session).
//!
//! Every session sends HELLO on open and waits for WELCOME; an ABORT, an
//! ERROR or a message the mode does not expect fails the connection. The
//! payload is one string argument `"WHO.SEQ.SENT_NS.xxx…"`, padded to
//! `--size` bytes: RESULTs and EVENTs are checked against it.

use crate::conn::{Driver, Ev, Handler, Target, now_ns};
use crate::hist::Histogram;
use crate::json::{self, excerpt};
use crate::procstat::{CpuWindow, rss_sum};
use crate::report::{Json, quote};
use crate::{Common, Outcome};
use std::time::{Duration, Instant};

// Message types (WAMP v2 basic and advanced profile numbers).
const HELLO: u64 = 1;
const WELCOME: u64 = 2;
const ABORT: u64 = 3;
const GOODBYE: u64 = 6;
const ERROR: u64 = 8;
const PUBLISH: u64 = 16;
const SUBSCRIBE: u64 = 32;
const SUBSCRIBED: u64 = 33;
const EVENT: u64 = 36;
const CALL: u64 = 48;
const RESULT: u64 = 50;
const REGISTER: u64 = 64;
const REGISTERED: u64 = 65;
const INVOCATION: u64 = 68;
const YIELD: u64 = 70;

/// The most elements a message handled here has (EVENT with kwargs: 6).
const MAX_ELEMS: usize = 7;

/// Options of the three WAMP v2 modes (each uses its part).
pub struct Wamp2Opts {
    pub path: String,
    pub realm: String,
    /// Payload string length in bytes (at least what the header needs).
    pub size: usize,
    pub warmup: f64,
    pub duration: f64,
    /// Sessions opening at a time.
    pub concurrency: usize,
    /// rpc: caller sessions and calls in flight on each.
    pub callers: usize,
    pub inflight: usize,
    pub procedure: String,
    /// fanout: subscriber sessions, the topic, the publish rate (events/s;
    /// 0: as fast as the lag bound allows) and that bound (events published
    /// but not yet received by the slowest subscriber).
    pub subs: usize,
    pub topic: String,
    pub rate: f64,
    pub max_lag: u64,
    /// idle: sessions to open and how long to hold them.
    pub sessions: usize,
    pub hold: f64,
}

/// The top-level elements of a JSON array message, as raw (trimmed)
/// slices, into `out`; returns how many. Strings, nested arrays and objects
/// are skipped over whole; no value is decoded.
pub fn split<'a>(msg: &'a [u8], out: &mut [&'a [u8]; MAX_ELEMS]) -> Result<usize, String> {
    let bad = |why: &str| format!("not a WAMP message ({why}): {}", excerpt(msg));
    let ws = |i: &mut usize| {
        while *i < msg.len() && msg[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let mut i = 0;
    ws(&mut i);
    if msg.get(i) != Some(&b'[') {
        return Err(bad("no array"));
    }
    i += 1;
    ws(&mut i);
    if msg.get(i) == Some(&b']') {
        return Err(bad("empty array"));
    }
    let mut n = 0;
    loop {
        ws(&mut i);
        let start = i;
        let Some((sep, end)) = json::value_end(msg, start, b']') else {
            return Err(bad("truncated or empty element"));
        };
        i = sep;
        if n == MAX_ELEMS {
            return Err(bad("too many elements"));
        }
        out[n] = &msg[start..end];
        n += 1;
        if msg[i] == b']' {
            return Ok(n);
        }
        i += 1;
    }
}

/// A JSON unsigned integer element.
fn int(e: &[u8]) -> Option<u64> {
    std::str::from_utf8(e).ok()?.parse().ok()
}

/// The message type and elements of `msg`, failing on ABORT and ERROR.
fn parse<'a>(msg: &'a [u8], elems: &mut [&'a [u8]; MAX_ELEMS]) -> Result<(u64, usize), String> {
    let n = split(msg, elems)?;
    let ty = int(elems[0]).ok_or_else(|| format!("no message type: {}", excerpt(msg)))?;
    match ty {
        ABORT => Err(format!("router sent ABORT: {}", excerpt(msg))),
        ERROR => Err(format!("router sent ERROR: {}", excerpt(msg))),
        GOODBYE => Err(format!("router sent GOODBYE: {}", excerpt(msg))),
        _ => Ok((ty, n)),
    }
}

/// `[1,"realm",{"roles":{...}}]`: every client role, no features.
fn hello(out: &mut Vec<Vec<u8>>, realm: &str) {
    let mut r = String::new();
    quote(&mut r, realm);
    out.push(
        format!(
            "[{HELLO},{r},{{\"roles\":{{\"caller\":{{}},\"callee\":{{}},\"publisher\":{{}},\"subscriber\":{{}}}}}}]"
        )
        .into_bytes(),
    );
}

/// The payload argument list `["WHO.SEQ.SENT.xxx"]`, `size` bytes of string.
fn payload(msg: &mut Vec<u8>, who: usize, seq: u64, sent: u64, size: usize) {
    let head = format!("{who}.{seq}.{sent}.");
    msg.extend_from_slice(b"[\"");
    msg.extend_from_slice(head.as_bytes());
    for _ in head.len()..size {
        msg.push(b'x');
    }
    msg.extend_from_slice(b"\"]");
}

/// Reads `["WHO.SEQ.SENT.xxx"]` back: (who, seq, sent).
fn read_payload(args: &[u8], size: usize) -> Result<(usize, u64, u64), String> {
    let bad = || format!("payload not as sent: {}", excerpt(args));
    let s = args
        .strip_prefix(b"[\"")
        .and_then(|s| s.strip_suffix(b"\"]"))
        .ok_or_else(bad)?;
    let s = std::str::from_utf8(s).map_err(|_| bad())?;
    let mut parts = s.splitn(4, '.');
    let who = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let seq = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let sent = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let pad = parts.next().ok_or_else(bad)?;
    if !pad.bytes().all(|b| b == b'x') || s.len() < size {
        return Err(bad());
    }
    Ok((who, seq, sent))
}

/// Frames text messages into a connection's output.
fn send_all(out: &mut Vec<u8>, msgs: &[Vec<u8>], key: &mut crate::ws::Rng) {
    for m in msgs {
        crate::ws::encode(out, crate::ws::OP_TEXT, m.len(), key.next() as u32, |d| {
            d.copy_from_slice(m)
        });
    }
}

fn target(common: &Common, o: &Wamp2Opts) -> Target {
    Target {
        addr: common.addr,
        path: o.path.clone(),
        subprotocol: Some("wamp.2.json".into()),
        raw: false,
        raw_record: 0,
        read_buf: 16 * 1024,
        tls: common.tls.clone(),
    }
}

// ---------------------------------------------------------------- rpc

struct Rpc {
    realm: String,
    procedure: String,
    size: usize,
    inflight: usize,
    rng: crate::ws::Rng,
    registered: bool,
    /// Callers that got their WELCOME.
    welcomed: usize,
    /// Per caller (index = connection - 1): next request id, ids in flight.
    next_req: Vec<u64>,
    pending: Vec<Vec<u64>>,
    sending: bool,
    recording: bool,
    /// Results checked (whole run), invocations answered by the callee.
    validated: u64,
    invocations: u64,
    calls: u64,
    hist: Histogram,
}

impl Rpc {
    fn call(&mut self, idx: usize, out: &mut Vec<u8>, now: u64) {
        let c = idx - 1;
        let req = self.next_req[c];
        self.next_req[c] += 1;
        self.pending[c].push(req);
        let mut m = Vec::with_capacity(self.size + 64);
        m.extend_from_slice(format!("[{CALL},{req},{{}},").as_bytes());
        let mut p = String::new();
        quote(&mut p, &self.procedure);
        m.extend_from_slice(p.as_bytes());
        m.push(b',');
        payload(&mut m, idx, req, now, self.size);
        m.push(b']');
        send_all(out, &[m], &mut self.rng);
    }

    fn in_flight(&self) -> usize {
        self.pending.iter().map(Vec::len).sum()
    }
}

impl Handler for Rpc {
    fn event(
        &mut self,
        idx: usize,
        out: &mut Vec<u8>,
        ev: Ev<'_>,
        now: u64,
    ) -> Result<usize, String> {
        let data = match ev {
            Ev::Open => {
                let mut m = Vec::new();
                hello(&mut m, &self.realm);
                send_all(out, &m, &mut self.rng);
                return Ok(0);
            }
            Ev::Message { data, .. } => data,
            Ev::Raw(_) => return Err("raw bytes in a WAMP mode".into()),
        };
        let mut e = [&[][..]; MAX_ELEMS];
        let (ty, n) = parse(data, &mut e)?;
        match (idx, ty) {
            (0, WELCOME) => {
                let mut p = String::new();
                quote(&mut p, &self.procedure);
                let m = format!("[{REGISTER},1,{{}},{p}]").into_bytes();
                send_all(out, &[m], &mut self.rng);
            }
            (0, REGISTERED) => self.registered = true,
            (0, INVOCATION) if n >= 5 => {
                // [68, req, reg, details, args]: YIELD the same args.
                let mut m = Vec::with_capacity(e[4].len() + 32);
                m.extend_from_slice(format!("[{YIELD},").as_bytes());
                m.extend_from_slice(e[1]);
                m.extend_from_slice(b",{},");
                m.extend_from_slice(e[4]);
                m.push(b']');
                send_all(out, &[m], &mut self.rng);
                self.invocations += 1;
            }
            (_, WELCOME) if idx > 0 => {
                self.welcomed += 1;
                for _ in 0..self.inflight {
                    self.call(idx, out, now);
                }
            }
            (_, RESULT) if idx > 0 && n >= 4 => {
                let req = int(e[1]).ok_or("RESULT without a request id")?;
                let c = idx - 1;
                let pos = self.pending[c]
                    .iter()
                    .position(|&r| r == req)
                    .ok_or_else(|| format!("RESULT for request {req}, not in flight"))?;
                self.pending[c].swap_remove(pos);
                let (who, seq, sent) = read_payload(e[3], self.size)?;
                if who != idx || seq != req {
                    return Err(format!(
                        "RESULT {req} carries the arguments of caller {who} call {seq}"
                    ));
                }
                self.validated += 1;
                if self.recording {
                    self.calls += 1;
                    self.hist.record(now.saturating_sub(sent));
                }
                if self.sending {
                    self.call(idx, out, now);
                }
            }
            _ => return Err(format!("unexpected message: {}", excerpt(data))),
        }
        Ok(0)
    }
}

/// `wamp2-rpc`.
pub fn run_rpc(common: &Common, o: &Wamp2Opts) -> Result<Outcome, String> {
    crate::procstat::raise_nofile();
    let mut driver = Driver::new().map_err(|e| e.to_string())?;
    let t = target(common, o);
    let mut h = Rpc {
        realm: o.realm.clone(),
        procedure: o.procedure.clone(),
        size: o.size,
        inflight: o.inflight.max(1),
        rng: crate::ws::Rng::seeded(),
        registered: false,
        welcomed: 0,
        next_req: vec![1; o.callers],
        pending: vec![Vec::new(); o.callers],
        sending: true,
        recording: false,
        validated: 0,
        invocations: 0,
        calls: 0,
        hist: Histogram::new(),
    };
    let fail = |d: &Driver, what: &str| {
        format!(
            "{what}: {}",
            d.failures.first().map_or("timeout", |f| f.1.as_str())
        )
    };
    driver.connect(&t)?;
    let ok = driver.run_until(&mut h, Duration::from_secs(30), |d, h| {
        h.registered || !d.failures.is_empty()
    })?;
    if !ok || !driver.failures.is_empty() {
        return Err(fail(&driver, "callee did not register"));
    }
    for _ in 0..o.callers {
        driver.connect(&t)?;
    }
    let ok = driver.run_until(&mut h, Duration::from_secs(30), |d, h| {
        h.welcomed == o.callers || !d.failures.is_empty()
    })?;
    if !ok || !driver.failures.is_empty() {
        return Err(fail(
            &driver,
            &format!("{} of {} callers welcomed", h.welcomed, o.callers),
        ));
    }
    let no_failure = |d: &Driver, _: &Rpc| !d.failures.is_empty();
    driver.run_until(&mut h, Duration::from_secs_f64(o.warmup), no_failure)?;
    h.recording = true;
    let cpu = CpuWindow::start(&common.server_pids, &common.aux_pids);
    let t0 = now_ns();
    driver.run_until(&mut h, Duration::from_secs_f64(o.duration), no_failure)?;
    h.recording = false;
    let used = cpu.stop();
    let wall = (now_ns() - t0) as f64 / 1e9;
    h.sending = false;
    let drained = driver.run_until(&mut h, Duration::from_secs(5), |d, h| {
        h.in_flight() == 0 || !d.failures.is_empty()
    })?;
    let unanswered = h.in_flight();
    driver.close_all(1000);
    driver.run_until(&mut h, Duration::from_secs(3), |d, _| d.live() == 0)?;

    let rate = h.calls as f64 / wall;
    let mut j = Json::new();
    j.str("mode", "wamp2-rpc")
        .int("callers", o.callers as u64)
        .int("inflight", h.inflight as u64)
        .int("size", o.size as u64)
        .num("seconds", wall)
        .int("calls", h.calls)
        .num("calls_per_s", rate)
        .latency("rtt", &h.hist)
        .int("validated", h.validated)
        .int("invocations", h.invocations)
        .int("unanswered", unanswered as u64)
        .int("failed_conns", driver.failures.len() as u64);
    let mut out = Outcome::new(j, used);
    out.per_op("call", h.calls as f64);
    out.problems = driver.first_failures();
    if !drained {
        out.problems
            .push(format!("{unanswered} calls never answered"));
    }
    if h.calls == 0 {
        out.problems
            .push("no call answered in the measured window".into());
    }
    out.summary = format!(
        "wamp2-rpc: {} callers x {} in flight, {} B: {:.0} calls/s, RTT p50 {:.0} µs p99 {:.0} µs p99.9 {:.0} µs; {} results validated",
        o.callers,
        h.inflight,
        o.size,
        rate,
        h.hist.quantile(0.5) as f64 / 1e3,
        h.hist.quantile(0.99) as f64 / 1e3,
        h.hist.quantile(0.999) as f64 / 1e3,
        h.validated,
    );
    Ok(out)
}

// ---------------------------------------------------------------- fanout

struct Fanout {
    realm: String,
    topic: String,
    size: usize,
    subs: usize,
    rng: crate::ws::Rng,
    subscribed: usize,
    publisher_ready: bool,
    /// Per subscriber: the highest sequence number received (0: none).
    last: Vec<u64>,
    /// Events published (their sequence numbers are 1..=published).
    published: u64,
    /// Gaps (events a subscriber skipped) and events out of order.
    lost: u64,
    reordered: u64,
    /// Whole run, measured window.
    received: u64,
    recording: bool,
    deliveries: u64,
    hist: Histogram,
}

impl Fanout {
    /// Events published that the slowest subscriber has not received.
    fn lag(&self) -> u64 {
        let slowest = self.last.iter().copied().min().unwrap_or(0);
        self.published.saturating_sub(slowest)
    }
}

impl Handler for Fanout {
    fn event(
        &mut self,
        idx: usize,
        out: &mut Vec<u8>,
        ev: Ev<'_>,
        now: u64,
    ) -> Result<usize, String> {
        let data = match ev {
            Ev::Open => {
                let mut m = Vec::new();
                hello(&mut m, &self.realm);
                send_all(out, &m, &mut self.rng);
                return Ok(0);
            }
            Ev::Message { data, .. } => data,
            Ev::Raw(_) => return Err("raw bytes in a WAMP mode".into()),
        };
        let mut e = [&[][..]; MAX_ELEMS];
        let (ty, n) = parse(data, &mut e)?;
        let publisher = idx == self.subs;
        match ty {
            WELCOME if publisher => self.publisher_ready = true,
            WELCOME => {
                let mut t = String::new();
                quote(&mut t, &self.topic);
                let m = format!("[{SUBSCRIBE},1,{{}},{t}]").into_bytes();
                send_all(out, &[m], &mut self.rng);
            }
            SUBSCRIBED if !publisher => self.subscribed += 1,
            EVENT if !publisher && n >= 5 => {
                let (_, seq, sent) = read_payload(e[4], self.size)?;
                let last = &mut self.last[idx];
                if seq <= *last {
                    self.reordered += 1;
                } else {
                    self.lost += seq - *last - 1;
                    *last = seq;
                }
                self.received += 1;
                if self.recording {
                    self.deliveries += 1;
                    self.hist.record(now.saturating_sub(sent));
                }
            }
            _ => return Err(format!("unexpected message: {}", excerpt(data))),
        }
        Ok(0)
    }
}

/// `wamp2-fanout`.
pub fn run_fanout(common: &Common, o: &Wamp2Opts) -> Result<Outcome, String> {
    let limit = crate::procstat::raise_nofile() as usize;
    if o.subs + 64 > limit {
        return Err(format!(
            "{} subscribers need more than the open-file limit {limit}",
            o.subs
        ));
    }
    let mut driver = Driver::new().map_err(|e| e.to_string())?;
    let t = target(common, o);
    let max_lag = o.max_lag.max(1);
    let mut h = Fanout {
        realm: o.realm.clone(),
        topic: o.topic.clone(),
        size: o.size,
        subs: o.subs,
        rng: crate::ws::Rng::seeded(),
        subscribed: 0,
        publisher_ready: false,
        last: vec![0; o.subs],
        published: 0,
        lost: 0,
        reordered: 0,
        received: 0,
        recording: false,
        deliveries: 0,
        hist: Histogram::new(),
    };
    let t_open = Instant::now();
    while h.subscribed < o.subs && driver.failures.is_empty() {
        while driver.conns.len() < o.subs && driver.conns.len() - h.subscribed < o.concurrency {
            driver.connect(&t)?;
        }
        driver.turn(&mut h, Duration::from_millis(5))?;
        if t_open.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    if h.subscribed < o.subs || !driver.failures.is_empty() {
        return Err(format!(
            "{} of {} subscribers subscribed: {}",
            h.subscribed,
            o.subs,
            driver.failures.first().map_or("timeout", |f| f.1.as_str())
        ));
    }
    let open_s = t_open.elapsed().as_secs_f64();
    let pub_idx = driver.connect(&t)?;
    let ok = driver.run_until(&mut h, Duration::from_secs(10), |d, h| {
        h.publisher_ready || !d.failures.is_empty()
    })?;
    if !ok || !driver.failures.is_empty() {
        return Err("the publisher was not welcomed".into());
    }
    let mut topic = String::new();
    quote(&mut topic, &o.topic);
    // Publishes what is due (open loop at --rate, or as much as the lag
    // bound allows when the rate is 0), then turns the loop once.
    let mut lag_waits = 0u64;
    let mut pump = |driver: &mut Driver, h: &mut Fanout, until: Instant, start: Instant| {
        let mut base = h.published;
        let mut t_base = start;
        while Instant::now() < until && driver.failures.is_empty() {
            let room = max_lag.saturating_sub(h.lag());
            let due = if o.rate > 0.0 {
                let want = (t_base.elapsed().as_secs_f64() * o.rate) as u64 + base;
                want.saturating_sub(h.published)
            } else {
                u64::MAX
            };
            let n = due.min(room);
            if n < due && due > 0 {
                lag_waits += 1;
                if o.rate > 0.0 {
                    // Held back: the open-loop schedule restarts from here.
                    base = h.published + n;
                    t_base = Instant::now();
                }
            }
            if n > 0 {
                let now = now_ns();
                let mut msgs = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    h.published += 1;
                    let seq = h.published;
                    let mut m = Vec::with_capacity(o.size + 64);
                    m.extend_from_slice(format!("[{PUBLISH},{seq},{{}},{topic},").as_bytes());
                    payload(&mut m, pub_idx, seq, now, o.size);
                    m.push(b']');
                    msgs.push(m);
                }
                if let Some(c) = driver.conns[pub_idx].as_mut() {
                    send_all(&mut c.wbuf, &msgs, &mut h.rng);
                }
                driver.flush(pub_idx);
            }
            let left = until.saturating_duration_since(Instant::now());
            driver.turn(h, left.min(Duration::from_millis(1)))?;
        }
        Ok::<(), String>(())
    };
    let t_warm = Instant::now();
    pump(
        &mut driver,
        &mut h,
        t_warm + Duration::from_secs_f64(o.warmup),
        t_warm,
    )?;
    h.recording = true;
    let published0 = h.published;
    let cpu = CpuWindow::start(&common.server_pids, &common.aux_pids);
    let t0 = now_ns();
    let start = Instant::now();
    pump(
        &mut driver,
        &mut h,
        start + Duration::from_secs_f64(o.duration),
        start,
    )?;
    h.recording = false;
    let used = cpu.stop();
    let wall = (now_ns() - t0) as f64 / 1e9;
    let published = h.published - published0;
    // Drain: every subscriber should reach the last event.
    let drained = driver.run_until(&mut h, Duration::from_secs(10), |d, h| {
        h.lag() == 0 || !d.failures.is_empty()
    })?;
    let missing: u64 = h.last.iter().map(|&l| h.published - l).sum();
    driver.close_all(1000);
    driver.run_until(&mut h, Duration::from_secs(5), |d, _| d.live() == 0)?;

    let rate = h.deliveries as f64 / wall;
    let mut j = Json::new();
    j.str("mode", "wamp2-fanout")
        .int("subs", o.subs as u64)
        .num("rate", o.rate)
        .int("max_lag", max_lag)
        .int("size", o.size as u64)
        .num("open_s", open_s)
        .num("seconds", wall)
        .int("published", published)
        .num("publishes_per_s", published as f64 / wall)
        .int("deliveries", h.deliveries)
        .num("deliveries_per_s", rate)
        .latency("lat", &h.hist)
        .int("received", h.received)
        .int("lost", h.lost + missing)
        .int("reordered", h.reordered)
        .int("lag_waits", lag_waits)
        .int("failed_conns", driver.failures.len() as u64);
    let mut out = Outcome::new(j, used);
    out.per_op("delivery", h.deliveries as f64);
    out.problems = driver.first_failures();
    if h.lost + missing > 0 || !drained {
        out.problems.push(format!(
            "{} events lost ({} skipped, {} never arrived)",
            h.lost + missing,
            h.lost,
            missing
        ));
    }
    if h.reordered > 0 {
        out.problems
            .push(format!("{} events out of order", h.reordered));
    }
    if h.deliveries == 0 {
        out.problems
            .push("no event delivered in the measured window".into());
    }
    out.summary = format!(
        "wamp2-fanout: {} subscribers, {} events/s published ({}), lag bound {max_lag}: {rate:.0} deliveries/s, latency p50 {:.0} µs p99 {:.0} µs p99.9 {:.0} µs; {} lost, {} reordered",
        o.subs,
        (published as f64 / wall).round(),
        if o.rate > 0.0 {
            format!("asked {}", o.rate)
        } else {
            "as fast as allowed".into()
        },
        h.hist.quantile(0.5) as f64 / 1e3,
        h.hist.quantile(0.99) as f64 / 1e3,
        h.hist.quantile(0.999) as f64 / 1e3,
        h.lost + missing,
        h.reordered,
    );
    Ok(out)
}

// ---------------------------------------------------------------- idle

struct Idle {
    realm: String,
    rng: crate::ws::Rng,
    welcomed: usize,
    /// GOODBYEs the router answered.
    goodbyes: usize,
    leaving: bool,
    messages: u64,
}

impl Handler for Idle {
    fn event(&mut self, _: usize, out: &mut Vec<u8>, ev: Ev<'_>, _: u64) -> Result<usize, String> {
        let data = match ev {
            Ev::Open => {
                let mut m = Vec::new();
                hello(&mut m, &self.realm);
                send_all(out, &m, &mut self.rng);
                return Ok(0);
            }
            Ev::Message { data, .. } => data,
            Ev::Raw(_) => return Err("raw bytes in a WAMP mode".into()),
        };
        let mut e = [&[][..]; MAX_ELEMS];
        let n = split(data, &mut e)?;
        match int(e[0]) {
            Some(WELCOME) if n >= 3 => self.welcomed += 1,
            Some(GOODBYE) if self.leaving => self.goodbyes += 1,
            _ => {
                parse(data, &mut e)?;
                self.messages += 1;
            }
        }
        Ok(0)
    }
}

/// `wamp2-idle`.
pub fn run_idle(common: &Common, o: &Wamp2Opts) -> Result<Outcome, String> {
    let limit = crate::procstat::raise_nofile() as usize;
    if o.sessions + 64 > limit {
        return Err(format!(
            "{} sessions need more than the open-file limit {limit}",
            o.sessions
        ));
    }
    let mut driver = Driver::new().map_err(|e| e.to_string())?;
    let t = target(common, o);
    let mut h = Idle {
        realm: o.realm.clone(),
        rng: crate::ws::Rng::seeded(),
        welcomed: 0,
        goodbyes: 0,
        leaving: false,
        messages: 0,
    };
    let rss0 = rss_sum(&common.server_pids);
    let cpu = CpuWindow::start(&common.server_pids, &common.aux_pids);
    let t0 = Instant::now();
    while h.welcomed < o.sessions && driver.failures.is_empty() {
        while driver.conns.len() < o.sessions && driver.conns.len() - h.welcomed < o.concurrency {
            driver.connect(&t)?;
        }
        driver.turn(&mut h, Duration::from_millis(5))?;
        if t0.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    let open_s = t0.elapsed().as_secs_f64();
    let used = cpu.stop();
    let welcomed = h.welcomed;
    driver.run_until(&mut h, Duration::from_secs_f64(o.hold), |d, _| {
        !d.failures.is_empty()
    })?;
    let rss1 = rss_sum(&common.server_pids);
    // Leave politely: GOODBYE, wait for the router's, then close.
    h.leaving = true;
    let failed_before = driver.failures.len();
    let bye = format!("[{GOODBYE},{{}},\"wamp.close.system_shutdown\"]").into_bytes();
    for idx in 0..driver.conns.len() {
        if let Some(c) = driver.conns[idx].as_mut() {
            send_all(&mut c.wbuf, std::slice::from_ref(&bye), &mut h.rng);
        }
        driver.flush(idx);
    }
    driver.run_until(&mut h, Duration::from_secs(10), |d, h| {
        h.goodbyes >= d.live()
    })?;
    // Routers close the WebSocket (1000) after their GOODBYE (Crossbar and
    // sprocket both do): that is the polite end, not a failure.
    let mut i = failed_before;
    while i < driver.failures.len() {
        if driver.failures[i]
            .1
            .starts_with("server closed the connection: 1000")
        {
            driver.failures.remove(i);
        } else {
            i += 1;
        }
    }
    driver.close_all(1000);
    driver.run_until(&mut h, Duration::from_secs(10), |d, _| d.live() == 0)?;
    let per_session = match (rss0, rss1) {
        (Some(a), Some(b)) if welcomed > 0 => Some((b as f64 - a as f64) / welcomed as f64),
        _ => None,
    };
    let mut j = Json::new();
    j.str("mode", "wamp2-idle")
        .int("sessions", o.sessions as u64)
        .int("welcomed", welcomed as u64)
        .num("open_s", open_s)
        .num("sessions_per_s", welcomed as f64 / open_s)
        .opt("rss_before", rss0.map(|v| v as f64))
        .opt("rss_open", rss1.map(|v| v as f64))
        .opt("rss_per_session", per_session)
        .int("goodbyes_answered", h.goodbyes as u64)
        .int("messages_while_idle", h.messages)
        .int("failed_conns", driver.failures.len() as u64);
    let mut out = Outcome::new(j, used);
    out.per_op("session", welcomed as f64);
    out.problems = driver.first_failures();
    if welcomed < o.sessions {
        out.problems.push(format!(
            "only {welcomed} of {} sessions welcomed",
            o.sessions
        ));
    }
    if h.goodbyes < welcomed {
        out.problems
            .push(format!("{} of {welcomed} GOODBYEs answered", h.goodbyes));
    }
    out.summary = format!(
        "wamp2-idle: {welcomed} sessions in {open_s:.2} s; server RSS per session {}; {} GOODBYEs answered",
        per_session.map_or("?".into(), |b| format!("{b:.0} B")),
        h.goodbyes
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_messages() {
        let mut e = [&[][..]; MAX_ELEMS];
        let m = br#"[36, 5, 9, {"a":[1,"]"]}, ["0.1.2.x\"]"], {}]"#;
        assert_eq!(split(m, &mut e).unwrap(), 6);
        assert_eq!(e[0], b"36");
        assert_eq!(e[3], br#"{"a":[1,"]"]}"#);
        assert_eq!(e[4], br#"["0.1.2.x\"]"]"#);
        assert_eq!(e[5], b"{}");
        assert!(split(b"[1,2", &mut e).is_err());
        assert!(split(b"[]", &mut e).is_err());
        assert!(split(b"{}", &mut e).is_err());
        assert!(split(b"[1,,2]", &mut e).is_err());
        assert!(split(b"[1,2,3,4,5,6,7,8]", &mut e).is_err());
    }

    #[test]
    fn payload_round_trip() {
        let mut m = Vec::new();
        payload(&mut m, 3, 17, 123456, 32);
        assert_eq!(m.len(), 32 + 4);
        assert_eq!(read_payload(&m, 32).unwrap(), (3, 17, 123456));
        assert!(read_payload(br#"["3.17.1.y"]"#, 0).is_err());
        assert!(read_payload(br#"["3.17.1.xx"]"#, 32).is_err());
        assert!(read_payload(br#"[3]"#, 0).is_err());
    }

    #[test]
    fn abort_and_error_fail() {
        let mut e = [&[][..]; MAX_ELEMS];
        assert!(parse(br#"[3,{},"wamp.error.no_such_realm"]"#, &mut e).is_err());
        assert!(parse(br#"[8,48,1,{},"wamp.error.no_such_procedure"]"#, &mut e).is_err());
        assert_eq!(parse(br#"[50,1,{},["a"]]"#, &mut e).unwrap(), (RESULT, 4));
    }
}
