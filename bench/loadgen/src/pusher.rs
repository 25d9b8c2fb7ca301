//! Pusher Channels modes (protocol 7, what pusher-js and Laravel Echo
//! speak): `pusher-fanout` (N subscribers of one public channel, events
//! triggered through the HTTP API `POST /apps/{id}/events`, signed as the
//! Pusher server SDKs sign), `pusher-connect` (connections/s up to
//! `pusher:connection_established`) and `pusher-idle` (N subscribed
//! connections held; server RSS per connection).
//!
//! Every connection goes to `/app/{key}?protocol=7&client=loadgen&version=1`
//! and waits for `pusher:connection_established`; subscribers then send
//! `pusher:subscribe` and wait for `pusher_internal:subscription_succeeded`.
//! `pusher:error`, `pusher:subscription_error` or a message the mode does
//! not expect fails the connection; `pusher:ping` is answered. An event's
//! `data` is the string `"WHO.SEQ.SENT_NS.xxx…"` padded to `--size` bytes
//! (WHO: the publishing HTTP connection): every delivery is checked
//! against it, in order per publisher.

use crate::conn::{Driver, Ev, Handler, Target, now_ns};
use crate::hist::Histogram;
use crate::httppub::{HttpPub, PubTarget};
use crate::json::{self, excerpt};
use crate::procstat::{CpuWindow, rss_sum};
use crate::report::{Json, quote};
use crate::{Common, Outcome};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Options of the three Pusher modes (each uses its part).
pub struct PusherOpts {
    pub app_id: String,
    pub key: String,
    pub secret: String,
    /// Where the HTTP API is (default: the WebSocket server itself).
    pub api: Option<SocketAddr>,
    pub channel: String,
    /// Event name the publishers trigger.
    pub event: String,
    pub size: usize,
    pub warmup: f64,
    pub duration: f64,
    /// Connections opening at a time.
    pub concurrency: usize,
    /// fanout: subscribers, HTTP publishing connections (one request in
    /// flight each), events/s (0: as fast as the lag bound allows) and that
    /// bound (events triggered but not yet received by the slowest
    /// subscriber).
    pub subs: usize,
    pub pubs: usize,
    pub rate: f64,
    pub max_lag: u64,
    /// connect / idle: connections to open, how long to hold them, and over
    /// how many channels idle spreads its subscriptions (1: all on
    /// `channel`; more: `channel-0`, `channel-1`, ...).
    pub conns: usize,
    pub hold: f64,
    pub channels: usize,
}

// ---------------------------------------------------------------- JSON

/// The members of a Pusher message this tool reads, as raw JSON values.
#[derive(Default, Debug, PartialEq)]
struct Msg<'a> {
    event: Option<&'a [u8]>,
    channel: Option<&'a [u8]>,
    data: Option<&'a [u8]>,
}

/// Reads the top-level members `event`, `channel` and `data` of a JSON
/// object (raw, trimmed slices; other members are skipped whole).
fn parse(msg: &[u8]) -> Result<Msg<'_>, String> {
    let bad = |why: &str| format!("not a Pusher message ({why}): {}", excerpt(msg));
    let ws = |i: &mut usize| {
        while *i < msg.len() && msg[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let mut out = Msg::default();
    let mut i = 0;
    ws(&mut i);
    if msg.get(i) != Some(&b'{') {
        return Err(bad("no object"));
    }
    i += 1;
    ws(&mut i);
    if msg.get(i) == Some(&b'}') {
        return Ok(out);
    }
    loop {
        ws(&mut i);
        // The key: a string without escapes is all Pusher sends.
        if msg.get(i) != Some(&b'"') {
            return Err(bad("no key"));
        }
        let k0 = i + 1;
        let k1 = k0
            + msg[k0..]
                .iter()
                .position(|&b| b == b'"')
                .ok_or_else(|| bad("unterminated key"))?;
        let key = &msg[k0..k1];
        i = k1 + 1;
        ws(&mut i);
        if msg.get(i) != Some(&b':') {
            return Err(bad("no colon"));
        }
        i += 1;
        ws(&mut i);
        let start = i;
        let Some((sep, end)) = json::value_end(msg, start, b'}') else {
            return Err(bad("truncated or empty value"));
        };
        i = sep;
        let v = &msg[start..end];
        match key {
            b"event" => out.event = Some(v),
            b"channel" => out.channel = Some(v),
            b"data" => out.data = Some(v),
            _ => {}
        }
        if msg[i] == b'}' {
            return Ok(out);
        }
        i += 1;
    }
}

/// A JSON string value decoded (borrowed when it has no escapes).
fn unquote(v: &[u8]) -> Result<Cow<'_, str>, String> {
    let bad = || format!("not a JSON string: {}", excerpt(v));
    let inner = v
        .strip_prefix(b"\"")
        .and_then(|s| s.strip_suffix(b"\""))
        .ok_or_else(bad)?;
    if !inner.contains(&b'\\') {
        return std::str::from_utf8(inner)
            .map(Cow::Borrowed)
            .map_err(|_| bad());
    }
    let s = std::str::from_utf8(inner).map_err(|_| bad())?;
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    let hex4 = |it: &mut std::str::Chars<'_>| -> Option<u32> {
        let h: String = it.by_ref().take(4).collect();
        if h.len() == 4 {
            u32::from_str_radix(&h, 16).ok()
        } else {
            None
        }
    };
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = it.next().ok_or_else(bad)?;
        out.push(match e {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hi = hex4(&mut it).ok_or_else(bad)?;
                let cp = if (0xD800..0xDC00).contains(&hi) {
                    if it.next() != Some('\\') || it.next() != Some('u') {
                        return Err(bad());
                    }
                    let lo = hex4(&mut it).ok_or_else(bad)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(bad());
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                char::from_u32(cp).ok_or_else(bad)?
            }
            _ => return Err(bad()),
        });
    }
    Ok(Cow::Owned(out))
}

/// The event name of a message (a message without one is an error).
fn event_name<'a>(m: &Msg<'a>, raw: &[u8]) -> Result<Cow<'a, str>, String> {
    unquote(
        m.event
            .ok_or_else(|| format!("no event: {}", excerpt(raw)))?,
    )
}

/// Fails on the server's error events; answers `pusher:ping`. Ok(true):
/// the message was one of those handled here (ping), so the mode skips it.
fn common_events(
    name: &str,
    raw: &[u8],
    out: &mut Vec<u8>,
    rng: &mut crate::ws::Rng,
) -> Result<bool, String> {
    match name {
        "pusher:error" | "pusher:subscription_error" => {
            Err(format!("server sent {name}: {}", excerpt(raw)))
        }
        "pusher:ping" => {
            send(out, br#"{"event":"pusher:pong","data":{}}"#, rng);
            Ok(true)
        }
        "pusher:pong" => Ok(true),
        _ => Ok(false),
    }
}

/// Frames one text message into a connection's output.
fn send(out: &mut Vec<u8>, msg: &[u8], rng: &mut crate::ws::Rng) {
    crate::ws::encode(out, crate::ws::OP_TEXT, msg.len(), rng.next() as u32, |d| {
        d.copy_from_slice(msg)
    });
}

fn subscribe(out: &mut Vec<u8>, channel: &str, rng: &mut crate::ws::Rng) {
    let mut c = String::new();
    quote(&mut c, channel);
    let m = format!(r#"{{"event":"pusher:subscribe","data":{{"channel":{c}}}}}"#);
    send(out, m.as_bytes(), rng);
}

fn target(common: &Common, o: &PusherOpts) -> Target {
    Target {
        addr: common.addr,
        path: format!("/app/{}?protocol=7&client=loadgen&version=1", o.key),
        subprotocol: None,
        raw: false,
        raw_record: 0,
        read_buf: 16 * 1024,
        tls: common.tls.clone(),
    }
}

// ---------------------------------------------------------------- signing

/// MD5 (RFC 1321), for the API's `body_md5`.
pub fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    // K[i] = floor(|sin(i + 1)| * 2^32); f64 has the precision for it (the
    // RFC's test vectors below check every entry's use).
    let k: [u32; 64] =
        std::array::from_fn(|i| (((i + 1) as f64).sin().abs() * 4_294_967_296.0) as u32);
    let mut h: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
    for chunk in msg.chunks_exact(64) {
        let m: [u32; 16] = std::array::from_fn(|j| {
            u32::from_le_bytes(chunk[j * 4..j * 4 + 4].try_into().unwrap())
        });
        let [mut a, mut b, mut c, mut d] = h;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (i, w) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The path and signed query of `POST {path}` with `body`, as the Pusher
/// SDKs sign it: `auth_key`, `auth_timestamp`, `auth_version=1.0`,
/// `body_md5`, sorted by key, then `auth_signature` = hex HMAC-SHA256 of
/// `POST\n{path}\n{query}` with the secret.
pub fn signed_path(path: &str, key: &str, secret: &str, timestamp: u64, body: &[u8]) -> String {
    let query = format!(
        "auth_key={key}&auth_timestamp={timestamp}&auth_version=1.0&body_md5={}",
        hex(&md5(body))
    );
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let sig = ring::hmac::sign(&k, format!("POST\n{path}\n{query}").as_bytes());
    format!("{path}?{query}&auth_signature={}", hex(sig.as_ref()))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------- payload

/// The event data string `WHO.SEQ.SENT.xxx`, `size` bytes (at least the
/// header), as a JSON string.
fn payload(who: usize, seq: u64, sent: u64, size: usize) -> String {
    let mut s = format!("{who}.{seq}.{sent}.");
    while s.len() < size {
        s.push('x');
    }
    s
}

/// Reads `WHO.SEQ.SENT.xxx` back: (who, seq, sent).
fn read_payload(s: &str, size: usize) -> Result<(usize, u64, u64), String> {
    let bad = || format!("event data not as sent: {:?}", &s[..s.len().min(120)]);
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

// ---------------------------------------------------------------- fanout

struct Fanout {
    channel: String,
    event: String,
    size: usize,
    pubs: usize,
    rng: crate::ws::Rng,
    established: usize,
    subscribed: usize,
    /// Per subscriber: events received; per (subscriber, publisher): the
    /// last sequence number seen.
    got: Vec<u64>,
    last: Vec<u64>,
    /// Events triggered (requests sent), over all publishers.
    published: u64,
    lost: u64,
    reordered: u64,
    recording: bool,
    deliveries: u64,
    hist: Histogram,
}

impl Fanout {
    /// Events triggered but not yet received by the slowest subscriber.
    fn lag(&self) -> u64 {
        let slowest = self.got.iter().copied().min().unwrap_or(0);
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
        let raw = match ev {
            Ev::Open => return Ok(0),
            Ev::Message { data, .. } => data,
            Ev::Raw(_) => return Err("raw bytes in a Pusher mode".into()),
        };
        let m = parse(raw)?;
        let name = event_name(&m, raw)?;
        if common_events(&name, raw, out, &mut self.rng)? {
            return Ok(0);
        }
        match &*name {
            "pusher:connection_established" => {
                self.established += 1;
                subscribe(out, &self.channel, &mut self.rng);
            }
            "pusher_internal:subscription_succeeded" => self.subscribed += 1,
            n if n == self.event => {
                let ch = m.channel.map(unquote).transpose()?;
                if ch.as_deref() != Some(self.channel.as_str()) {
                    return Err(format!("event on another channel: {}", excerpt(raw)));
                }
                let data = unquote(m.data.ok_or("event without data")?)?;
                let (who, seq, sent) = read_payload(&data, self.size)?;
                if who >= self.pubs {
                    return Err(format!("event from publisher {who}, not one of ours"));
                }
                let last = &mut self.last[idx * self.pubs + who];
                if seq <= *last {
                    self.reordered += 1;
                } else {
                    self.lost += seq - *last - 1;
                    *last = seq;
                }
                self.got[idx] += 1;
                if self.recording {
                    self.deliveries += 1;
                    self.hist.record(now.saturating_sub(sent));
                }
            }
            _ => return Err(format!("unexpected message: {}", excerpt(raw))),
        }
        Ok(0)
    }
}

/// `pusher-fanout`.
pub fn run_fanout(common: &Common, o: &PusherOpts) -> Result<Outcome, String> {
    let limit = crate::procstat::raise_nofile() as usize;
    if o.subs + o.pubs + 64 > limit {
        return Err(format!(
            "{} subscribers need more than the open-file limit {limit}",
            o.subs
        ));
    }
    let pubs = o.pubs.max(1);
    let mut driver = Driver::new().map_err(|e| e.to_string())?;
    let t = target(common, o);
    let max_lag = o.max_lag.max(1);
    let mut h = Fanout {
        channel: o.channel.clone(),
        event: o.event.clone(),
        size: o.size,
        pubs,
        rng: crate::ws::Rng::seeded(),
        established: 0,
        subscribed: 0,
        got: vec![0; o.subs],
        last: vec![0; o.subs * pubs],
        published: 0,
        lost: 0,
        reordered: 0,
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

    // The publishers: keep-alive HTTP/1.1 connections to the API, one
    // request in flight each.
    let api = o.api.unwrap_or(common.addr);
    let events_path = format!("/apps/{}/events", o.app_id);
    let url = |p: &str| format!("http://{api}{p}");
    let base = PubTarget::parse(&url(&events_path))?;
    let mut http: Vec<HttpPub> = (0..pubs)
        .map(|_| HttpPub::connect(&base))
        .collect::<Result<_, _>>()?;
    let mut seq = vec![0u64; pubs];
    let mut ev_name = String::new();
    quote(&mut ev_name, &o.event);
    let mut ch_name = String::new();
    quote(&mut ch_name, &o.channel);
    let mut requests = 0u64;
    // Triggers what is due (open loop at --rate, or as many as the lag
    // bound and the idle publishers allow when the rate is 0), reads the
    // answers, then turns the loop once (at most 1 ms).
    let mut lag_waits = 0u64;
    let mut pub_waits = 0u64;
    let mut pump = |driver: &mut Driver,
                    h: &mut Fanout,
                    http: &mut Vec<HttpPub>,
                    until: Instant,
                    start: Instant|
     -> Result<(), String> {
        let mut base_n = h.published;
        let mut t_base = start;
        while Instant::now() < until && driver.failures.is_empty() {
            for p in http.iter_mut() {
                p.poll()?;
            }
            let room = max_lag.saturating_sub(h.lag());
            let due = if o.rate > 0.0 {
                let want = (t_base.elapsed().as_secs_f64() * o.rate) as u64 + base_n;
                want.saturating_sub(h.published)
            } else {
                u64::MAX
            };
            let idle = http.iter().filter(|p| !p.in_flight).count() as u64;
            let n = due.min(room).min(idle);
            if n < due && due > 0 {
                if idle < room.min(due) {
                    pub_waits += 1;
                } else {
                    lag_waits += 1;
                }
                if o.rate > 0.0 {
                    // Held back: the open-loop schedule restarts from here.
                    base_n = h.published + n;
                    t_base = Instant::now();
                }
            }
            let mut left = n;
            if left > 0 {
                let ts = unix_now();
                for (who, p) in http.iter_mut().enumerate() {
                    if left == 0 {
                        break;
                    }
                    if p.in_flight {
                        continue;
                    }
                    left -= 1;
                    seq[who] += 1;
                    h.published += 1;
                    requests += 1;
                    let mut data = String::new();
                    quote(&mut data, &payload(who, seq[who], now_ns(), o.size));
                    let body =
                        format!(r#"{{"name":{ev_name},"channels":[{ch_name}],"data":{data}}}"#);
                    let path = signed_path(&events_path, &o.key, &o.secret, ts, body.as_bytes());
                    p.send(&PubTarget::parse(&url(&path))?, body.as_bytes())?;
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            driver.turn(h, left.min(Duration::from_millis(1)))?;
        }
        Ok(())
    };
    let t_warm = Instant::now();
    pump(
        &mut driver,
        &mut h,
        &mut http,
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
        &mut http,
        start + Duration::from_secs_f64(o.duration),
        start,
    )?;
    h.recording = false;
    let used = cpu.stop();
    let wall = (now_ns() - t0) as f64 / 1e9;
    let published = h.published - published0;
    // Drain: every request answered, every subscriber at the last event.
    let end = Instant::now() + Duration::from_secs(10);
    let mut drained = false;
    while Instant::now() < end && driver.failures.is_empty() {
        for p in http.iter_mut() {
            p.poll()?;
        }
        if h.lag() == 0 && http.iter().all(|p| !p.in_flight) {
            drained = true;
            break;
        }
        driver.turn(&mut h, Duration::from_millis(1))?;
    }
    let answered: u64 = http.iter().map(|p| p.answered).sum();
    let reconnects: u64 = http.iter().map(|p| p.reconnects).sum();
    let missing: u64 = h.got.iter().map(|&g| h.published.saturating_sub(g)).sum();
    driver.close_all(1000);
    driver.run_until(&mut h, Duration::from_secs(5), |d, _| d.live() == 0)?;

    let rate = h.deliveries as f64 / wall;
    let mut j = Json::new();
    j.str("mode", "pusher-fanout")
        .int("subs", o.subs as u64)
        .int("pubs", pubs as u64)
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
        .int("received", h.got.iter().sum())
        .int("lost", h.lost + missing)
        .int("reordered", h.reordered)
        .int("requests", requests)
        .int("answered", answered)
        .int("http_reconnects", reconnects)
        .int("lag_waits", lag_waits)
        .int("publisher_waits", pub_waits)
        .int("failed_conns", driver.failures.len() as u64);
    let mut out = Outcome::new(j, used);
    out.per_op("delivery", h.deliveries as f64);
    out.per_op("publish", published as f64);
    out.problems = driver.first_failures();
    if h.lost + missing > 0 || !drained {
        out.problems.push(format!(
            "{} deliveries lost ({} skipped, {} never arrived){}",
            h.lost + missing,
            h.lost,
            missing,
            if drained { "" } else { "; not drained in 10 s" }
        ));
    }
    if answered != requests {
        out.problems
            .push(format!("{answered} of {requests} API requests answered"));
    }
    if h.reordered > 0 {
        out.problems
            .push(format!("{} deliveries out of order", h.reordered));
    }
    if h.deliveries == 0 {
        out.problems
            .push("no event delivered in the measured window".into());
    }
    out.summary = format!(
        "pusher-fanout: {} subscribers, {} events/s triggered by {pubs} HTTP publishers ({}), lag bound {max_lag}: {rate:.0} deliveries/s, latency p50 {:.0} µs p99 {:.0} µs p99.9 {:.0} µs; {} lost, {} reordered",
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

// ---------------------------------------------------------------- connect / idle

struct Opener {
    /// Channel per connection (empty: do not subscribe).
    channels: Vec<String>,
    rng: crate::ws::Rng,
    established: usize,
    subscribed: usize,
    /// Messages other than the handshake's and pings while held.
    messages: u64,
}

impl Opener {
    fn done(&self) -> usize {
        if self.channels.is_empty() {
            self.established
        } else {
            self.subscribed
        }
    }
}

impl Handler for Opener {
    fn event(
        &mut self,
        idx: usize,
        out: &mut Vec<u8>,
        ev: Ev<'_>,
        _: u64,
    ) -> Result<usize, String> {
        let raw = match ev {
            Ev::Open => return Ok(0),
            Ev::Message { data, .. } => data,
            Ev::Raw(_) => return Err("raw bytes in a Pusher mode".into()),
        };
        let m = parse(raw)?;
        let name = event_name(&m, raw)?;
        if common_events(&name, raw, out, &mut self.rng)? {
            return Ok(0);
        }
        match &*name {
            "pusher:connection_established" => {
                let data = unquote(m.data.ok_or("connection_established without data")?)?;
                if !data.contains("\"socket_id\"") {
                    return Err(format!("no socket_id: {}", excerpt(raw)));
                }
                self.established += 1;
                if !self.channels.is_empty() {
                    let n = self.channels.len();
                    let ch = std::mem::take(&mut self.channels[idx % n]);
                    subscribe(out, &ch, &mut self.rng);
                    self.channels[idx % n] = ch;
                }
            }
            "pusher_internal:subscription_succeeded" if !self.channels.is_empty() => {
                self.subscribed += 1
            }
            _ => self.messages += 1,
        }
        Ok(0)
    }
}

/// `pusher-connect` (`subscribe` false) and `pusher-idle` (true).
pub fn run_open(common: &Common, o: &PusherOpts, subscribe: bool) -> Result<Outcome, String> {
    let mode = if subscribe {
        "pusher-idle"
    } else {
        "pusher-connect"
    };
    let limit = crate::procstat::raise_nofile() as usize;
    if o.conns + 64 > limit {
        return Err(format!(
            "{} connections need more than the open-file limit {limit}",
            o.conns
        ));
    }
    let mut driver = Driver::new().map_err(|e| e.to_string())?;
    let mut t = target(common, o);
    t.read_buf = 1024;
    let channels = match (subscribe, o.channels) {
        (false, _) => Vec::new(),
        (true, 0 | 1) => vec![o.channel.clone()],
        (true, n) => (0..n).map(|i| format!("{}-{i}", o.channel)).collect(),
    };
    let mut h = Opener {
        channels,
        rng: crate::ws::Rng::seeded(),
        established: 0,
        subscribed: 0,
        messages: 0,
    };
    let rss0 = rss_sum(&common.server_pids);
    let cpu = CpuWindow::start(&common.server_pids, &common.aux_pids);
    let t0 = Instant::now();
    while h.done() < o.conns && driver.failures.is_empty() {
        while driver.conns.len() < o.conns && driver.conns.len() - h.done() < o.concurrency {
            driver.connect(&t)?;
        }
        driver.turn(&mut h, Duration::from_millis(5))?;
        if t0.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    let open_s = t0.elapsed().as_secs_f64();
    let used = cpu.stop();
    let (established, subscribed, done) = (h.established, h.subscribed, h.done());
    driver.run_until(&mut h, Duration::from_secs_f64(o.hold), |d, _| {
        !d.failures.is_empty()
    })?;
    let rss1 = rss_sum(&common.server_pids);
    let closing = Instant::now();
    driver.close_all(1000);
    driver.run_until(&mut h, Duration::from_secs(10), |d, _| d.live() == 0)?;
    let close_s = closing.elapsed().as_secs_f64();
    let per_conn = match (rss0, rss1) {
        (Some(a), Some(b)) if done > 0 => Some((b as f64 - a as f64) / done as f64),
        _ => None,
    };
    let rate = done as f64 / open_s;
    let mut j = Json::new();
    j.str("mode", mode)
        .int("conns", o.conns as u64)
        .int("concurrency", o.concurrency as u64)
        .int(
            "channels",
            if subscribe { o.channels.max(1) } else { 0 } as u64,
        )
        .int("established", established as u64)
        .int("subscribed", subscribed as u64)
        .num("open_s", open_s)
        .num("conns_per_s", rate)
        .opt("rss_before", rss0.map(|v| v as f64))
        .opt("rss_open", rss1.map(|v| v as f64))
        .opt("rss_per_conn", per_conn)
        .int("closed_cleanly", driver.closed as u64)
        .num("close_s", close_s)
        .int("messages_while_idle", h.messages)
        .int("failed_conns", driver.failures.len() as u64);
    let mut out = Outcome::new(j, used);
    out.per_op("conn", done as f64);
    out.problems = driver.first_failures();
    if done < o.conns {
        out.problems.push(format!(
            "only {done} of {} connections {}",
            o.conns,
            if subscribe {
                "subscribed"
            } else {
                "established"
            }
        ));
    }
    out.summary = format!(
        "{mode}: {done} connections{} in {open_s:.2} s = {rate:.0}/s; server RSS {} -> {} ({}/conn); {} closed cleanly",
        if subscribe { " subscribed" } else { "" },
        rss0.map_or("?".into(), mib),
        rss1.map_or("?".into(), mib),
        per_conn.map_or("?".into(), |b| format!("{b:.0} B")),
        driver.closed,
    );
    Ok(out)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_rfc1321_vectors() {
        let cases: &[(&str, &str)] = &[
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(hex(&md5(input.as_bytes())), *want, "md5({input:?})");
        }
    }

    #[test]
    fn signs_as_the_pusher_docs_example() {
        // The worked example of Pusher's HTTP API reference ("Generating
        // authentication signatures").
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(hex(&md5(body)), "ec365a775a4cd0599faeb73354201b6f");
        let p = signed_path(
            "/apps/3/events",
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            1353088179,
            body,
        );
        assert_eq!(
            p,
            "/apps/3/events?auth_key=278d425bdf160c739803&auth_timestamp=1353088179\
             &auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f\
             &auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
    }

    #[test]
    fn parses_pusher_messages() {
        let m = br#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":120}"}"#;
        let p = parse(m).unwrap();
        assert_eq!(p.event, Some(&br#""pusher:connection_established""#[..]));
        assert_eq!(p.channel, None);
        let d = unquote(p.data.unwrap()).unwrap();
        assert_eq!(d, r#"{"socket_id":"1.2","activity_timeout":120}"#);
        // Any member order; nested values skipped whole.
        let m = br#" { "data" : "0.1.2.xx" , "x": {"event": "no", "a":[1,"}"]}, "channel":"bench", "event":"bench" } "#;
        let p = parse(m).unwrap();
        assert_eq!(p.event, Some(&br#""bench""#[..]));
        assert_eq!(p.channel, Some(&br#""bench""#[..]));
        assert_eq!(p.data, Some(&br#""0.1.2.xx""#[..]));
        assert_eq!(parse(b"{}").unwrap(), Msg::default());
        assert!(parse(b"[1]").is_err());
        assert!(parse(br#"{"event":"a""#).is_err());
        assert!(parse(br#"{"event":}"#).is_err());
        assert_eq!(unquote(br#""a\u00e9\ud83d\ude00\n""#).unwrap(), "aé😀\n");
        assert!(unquote(b"12").is_err());
        assert!(unquote(br#""\ud83d""#).is_err());
    }

    #[test]
    fn payload_round_trip() {
        let p = payload(3, 17, 123456, 32);
        assert_eq!(p.len(), 32);
        assert_eq!(read_payload(&p, 32).unwrap(), (3, 17, 123456));
        assert!(read_payload("3.17.1.y", 0).is_err());
        assert!(read_payload("3.17.1.xx", 32).is_err());
        assert!(read_payload("3", 0).is_err());
    }
}
