//! `fanout` mode: N subscribers and P publishers on a chat-style path.
//! Publishers send at a fixed total rate (open loop); every delivery to a
//! subscriber is checked against its publisher's sequence (lost, duplicated
//! or reordered) and timed from the send time embedded in the payload.
//!
//! Publishers are separate connections. On `/chat` they also receive each
//! other's messages: those are counted as server deliveries (the server did
//! the work) but not as subscriber deliveries.
//!
//! With several servers (`--addr A,B`), subscriber i connects to server
//! i mod n and publisher p to server p mod n: the servers must share the
//! topic (e.g. through a bus) for every subscriber to get every message.
//!
//! With `--publish-url`, publishers are HTTP keep-alive connections that
//! POST the messages to a publish endpoint (GRIP, `--flavour grip`) instead
//! of WebSocket connections: one request in flight per connection, the
//! messages that fall due meanwhile go together in the next request (at most
//! `--publish-batch` items), and each carries the time it was sent.
//!
//! `--search` looks for the highest rate with no loss and p99 under a bound:
//! doubling (or halving) from `--rate`, then bisecting.

use crate::conn::{Driver, Ev, Handler, Target, now_ns};
use crate::flavour::Flavour;
use crate::hist::Histogram;
use crate::httppub::{HttpPub, PubTarget};
use crate::payload::{parse_hex, put_hex};
use crate::procstat::{CpuUse, CpuWindow};
use crate::report::{Json, array};
use crate::ws::{self, Rng};
use crate::{Common, Outcome};
use std::time::{Duration, Instant};

/// pub id (4 hex) + sequence (12 hex) + send time in ns (16 hex).
const HEAD: usize = 32;

pub struct FanoutOpts {
    pub subs: usize,
    pub pubs: usize,
    pub rate: f64,
    pub size: usize,
    pub warmup: f64,
    pub duration: f64,
    pub search: bool,
    pub max_p99_ms: f64,
    pub max_steps: usize,
    pub min_rate: f64,
    pub concurrency: usize,
    /// Poll (and so read subscribers) at most once per this many ms.
    pub read_every_ms: f64,
    /// Publishing tick: messages due are sent together once per tick.
    pub tick_ms: f64,
    /// Publish over HTTP POST to this URL instead of WebSocket publishers.
    pub publish_url: Option<String>,
    /// Most messages in one HTTP publish request.
    pub publish_batch: usize,
}

struct Fanout {
    subs: usize,
    pubs: usize,
    flavour: Box<dyn Flavour>,
    hello_sub: Vec<Vec<u8>>,
    hello_pub: Vec<Vec<u8>>,
    rng: Rng,
    opened: usize,
    /// Next expected sequence number, per (subscriber, publisher).
    expected: Vec<u64>,
    /// Sum of `expected`: deliveries accounted for in order or skipped.
    advanced: u64,
    /// Sequence numbers skipped over (lost, or reordered).
    gaps: u64,
    /// Deliveries with a sequence number below the expected one.
    reordered: u64,
    /// Subscriber deliveries, whole run.
    delivered: u64,
    /// Deliveries to publishers (other publishers' messages), whole run.
    to_publishers: u64,
    /// Sent by each publisher (its next sequence number).
    published: Vec<u64>,
    published_total: u64,
    recording: bool,
    win_sub: u64,
    win_all: u64,
    hist: Histogram,
    /// Largest subscriber latency since the step began (warm-up included).
    step_max_ns: u64,
    scratch: Vec<u8>,
    size: usize,
    /// Messages that fell due (sent, or queued for an HTTP publisher).
    scheduled: u64,
    /// HTTP publishers (`--publish-url`), one per publisher.
    http: Vec<HttpPub>,
    http_target: Option<PubTarget>,
    publish_batch: usize,
    body: Vec<u8>,
}

impl Fanout {
    /// The next message of publisher `p`, wrapped by the flavour, in
    /// `scratch`.
    fn next_message(&mut self, p: usize, now: u64) {
        let seq = self.published[p];
        self.published[p] += 1;
        self.published_total += 1;
        let mut payload = [b'x'; 4096];
        let payload = &mut payload[..self.size.min(4096)];
        put_hex(&mut payload[0..4], p as u64);
        put_hex(&mut payload[4..16], seq);
        put_hex(&mut payload[16..32], now);
        self.scratch.clear();
        self.flavour.publish(payload, &mut self.scratch);
    }

    fn publish(&mut self, driver: &mut Driver, p: usize, now: u64) {
        self.next_message(p, now);
        if let Some(c) = driver.conns[self.subs + p].as_mut() {
            let msg = &self.scratch;
            ws::encode(
                &mut c.wbuf,
                ws::OP_TEXT,
                msg.len(),
                self.rng.next() as u32,
                |d| d.copy_from_slice(msg),
            );
        }
    }

    /// HTTP publishers: reads answers, and sends what is queued on every
    /// connection with no request out.
    fn pump(&mut self) -> Result<(), String> {
        let Some(target) = self.http_target.take() else {
            return Ok(());
        };
        let r = (|| {
            for p in 0..self.http.len() {
                self.http[p].poll()?;
                if self.http[p].in_flight || self.http[p].queued == 0 {
                    continue;
                }
                let k = self.http[p].queued.min(self.publish_batch.max(1) as u64);
                self.http[p].queued -= k;
                let now = now_ns();
                let mut body = std::mem::take(&mut self.body);
                body.clear();
                body.extend_from_slice(b"{\"items\":[");
                for i in 0..k {
                    if i > 0 {
                        body.push(b',');
                    }
                    self.next_message(p, now);
                    body.extend_from_slice(&self.scratch);
                }
                body.extend_from_slice(b"]}");
                let sent = self.http[p].send(&target, &body);
                self.body = body;
                sent?;
            }
            Ok(())
        })();
        self.http_target = Some(target);
        r
    }

    /// Subscriber deliveries not yet seen (valid once publishing stopped).
    fn outstanding(&self) -> u64 {
        (self.published_total * self.subs as u64).saturating_sub(self.advanced)
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
        match ev {
            Ev::Open => {
                self.opened += 1;
                let hello = if idx < self.subs {
                    &self.hello_sub
                } else {
                    &self.hello_pub
                };
                for m in hello {
                    ws::encode(out, ws::OP_TEXT, m.len(), self.rng.next() as u32, |d| {
                        d.copy_from_slice(m)
                    });
                }
                Ok(0)
            }
            Ev::Raw(_) => Err("raw bytes in fanout mode".into()),
            Ev::Message { opcode, data } => {
                let Some(payload) = self.flavour.delivery(data) else {
                    return Ok(0);
                };
                if opcode != ws::OP_TEXT || payload.len() < HEAD {
                    return Err(format!(
                        "conn {idx}: unexpected message of {} bytes",
                        data.len()
                    ));
                }
                let (Some(p), Some(seq), Some(ts)) = (
                    parse_hex(&payload[0..4]),
                    parse_hex(&payload[4..16]),
                    parse_hex(&payload[16..32]),
                ) else {
                    return Err(format!("conn {idx}: corrupt delivery"));
                };
                let p = p as usize;
                if p >= self.pubs || seq >= self.published[p] {
                    return Err(format!(
                        "conn {idx}: delivery of a message never sent ({p}/{seq})"
                    ));
                }
                if idx >= self.subs {
                    self.to_publishers += 1;
                    if self.recording {
                        self.win_all += 1;
                    }
                    return Ok(0);
                }
                let e = &mut self.expected[idx * self.pubs + p];
                if seq == *e {
                    *e += 1;
                    self.advanced += 1;
                } else if seq > *e {
                    self.gaps += seq - *e;
                    self.advanced += seq + 1 - *e;
                    *e = seq + 1;
                } else {
                    self.reordered += 1;
                }
                self.delivered += 1;
                let lat = now.saturating_sub(ts);
                self.step_max_ns = self.step_max_ns.max(lat);
                if self.recording {
                    self.win_sub += 1;
                    self.win_all += 1;
                    self.hist.record(lat);
                }
                Ok(0)
            }
        }
    }
}

struct Step {
    rate: f64,
    wall: f64,
    pub_rate: f64,
    deliveries_per_s: f64,
    win_sub: u64,
    win_all: u64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    lost: u64,
    reordered: u64,
    drain_s: f64,
    cpu: CpuUse,
    pass: bool,
    why: String,
}

impl Step {
    fn json(&self) -> Json {
        let mut j = Json::new();
        j.num("rate", self.rate)
            .num("publish_per_s", self.pub_rate)
            .num("deliveries_per_s", self.deliveries_per_s)
            .int("deliveries", self.win_sub)
            .int("server_deliveries", self.win_all)
            .num("lat_p50_us", self.p50)
            .num("lat_p99_us", self.p99)
            .num("lat_p999_us", self.p999)
            .num("lat_max_us", self.max)
            .int("lost", self.lost)
            .int("reordered", self.reordered)
            .num("drain_s", self.drain_s)
            .num("seconds", self.wall)
            .opt(
                "server_cpu_us_per_delivery",
                self.cpu
                    .server_s
                    .map(|s| s * 1e6 / self.win_all.max(1) as f64),
            )
            .opt(
                "server_cpu_util",
                self.cpu.server_s.map(|s| s / self.cpu.wall_s),
            )
            .num("loadgen_cpu_util", self.cpu.own_s / self.cpu.wall_s);
        if let Some(a) = self.cpu.aux_s {
            j.num(
                "aux_cpu_us_per_delivery",
                a * 1e6 / self.win_all.max(1) as f64,
            );
        }
        j.bool("pass", self.pass).str("why", &self.why);
        j
    }
}

fn step(
    driver: &mut Driver,
    h: &mut Fanout,
    common: &Common,
    o: &FanoutOpts,
    rate: f64,
) -> Result<Step, String> {
    let gaps0 = h.gaps;
    let reordered0 = h.reordered;
    let failures0 = driver.failures.len();
    let start = Instant::now();
    let sent0 = h.scheduled;
    let total = o.warmup + o.duration;
    let mut cpu: Option<CpuWindow> = None;
    let mut pub0 = 0;
    let mut t_rec = start;
    let mut touched = vec![false; o.pubs];
    h.step_max_ns = 0;
    h.win_sub = 0;
    h.win_all = 0;
    h.hist = Histogram::new();
    // A step that is clearly overloaded stops early, so the backlog it
    // leaves in the server stays small and drains quickly.
    let abort_ns = (o.max_p99_ms * 4e6) as u64;
    let mut aborted = false;
    let pace = o.read_every_ms / 1e3;
    let tick = (o.tick_ms / 1e3).max(1e-4);
    let mut last_poll = Instant::now();
    loop {
        let now = Instant::now();
        let el = (now - start).as_secs_f64();
        if el >= total {
            break;
        }
        if cpu.is_none() && el >= o.warmup {
            h.recording = true;
            h.win_sub = 0;
            h.win_all = 0;
            h.hist = Histogram::new();
            pub0 = h.published_total;
            t_rec = now;
            cpu = Some(CpuWindow::start(&common.server_pids, &common.aux_pids));
        }
        // Messages go out in ticks: all those due by the current tick at once.
        let el_tick = (el / tick).floor() * tick;
        let due = ((rate * el_tick) as u64).saturating_sub(h.scheduled - sent0);
        // Catch up at most 20 ms (or one tick) of sends at once.
        let due = due.min((rate * tick.max(0.02)) as u64 + 1);
        if due > 0 {
            let ts = now_ns();
            for _ in 0..due {
                let p = (h.scheduled % o.pubs as u64) as usize;
                h.scheduled += 1;
                if h.http.is_empty() {
                    h.publish(driver, p, ts);
                    touched[p] = true;
                } else {
                    h.http[p].queued += 1;
                }
            }
            for (p, t) in touched.iter_mut().enumerate() {
                if *t {
                    driver.flush(o.subs + p);
                    *t = false;
                }
            }
        }
        let wait = (el_tick + tick - el).clamp(0.0, 0.001);
        // Reading each subscriber at most once per `read_every_ms` lets
        // deliveries pile up in the socket, so one read takes several: the
        // tool's cost per delivery stays low when a server writes each
        // delivery separately, at the price of up to that much latency.
        let since = last_poll.elapsed().as_secs_f64();
        if since < pace {
            std::thread::sleep(Duration::from_secs_f64(pace - since));
        }
        last_poll = Instant::now();
        h.pump()?;
        driver.turn(h, Duration::from_secs_f64(wait))?;
        h.pump()?;
        if driver.failures.len() > failures0 {
            break;
        }
        if h.step_max_ns > abort_ns {
            aborted = true;
            break;
        }
    }
    h.recording = false;
    // Messages due but never sent are not published (the rate check
    // below shows the shortfall).
    for hp in &mut h.http {
        hp.queued = 0;
    }
    let cpu = cpu.map(|c| c.stop()).unwrap_or_default();
    let wall = t_rec.elapsed().as_secs_f64();
    let pub_rate = (h.published_total - pub0) as f64 / wall;
    let drain = Instant::now();
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        h.pump()?;
        let idle = h.http.iter().all(|p| !p.in_flight);
        if (h.outstanding() == 0 && idle)
            || driver.failures.len() > failures0
            || Instant::now() >= end
        {
            break;
        }
        driver.turn(h, Duration::from_millis(if idle { 5 } else { 1 }))?;
    }
    let drain_s = drain.elapsed().as_secs_f64();
    let lost = (h.gaps - gaps0) + h.outstanding();
    let reordered = h.reordered - reordered0;
    let p = |q| h.hist.quantile(q) as f64 / 1e3;
    let (p50, p99, p999) = (p(0.5), p(0.99), p(0.999));
    let mut why = Vec::new();
    if driver.failures.len() > failures0 {
        why.push(format!(
            "{} connections failed: {}",
            driver.failures.len() - failures0,
            driver.failures[failures0].1
        ));
    }
    if aborted {
        why.push(format!(
            "stopped early: a delivery took {:.0} ms",
            h.step_max_ns as f64 / 1e6
        ));
    }
    if lost > 0 {
        why.push(format!("{lost} deliveries lost"));
    }
    if reordered > 0 {
        why.push(format!("{reordered} deliveries duplicated or out of order"));
    }
    if p99 > o.max_p99_ms * 1e3 {
        why.push(format!("p99 {:.1} ms over {} ms", p99 / 1e3, o.max_p99_ms));
    }
    if pub_rate < 0.97 * rate {
        why.push(format!(
            "published only {pub_rate:.0}/s (load tool or server backpressure)"
        ));
    }
    if h.win_sub == 0 {
        why.push("no delivery in the measured window".into());
    }
    Ok(Step {
        rate,
        wall,
        pub_rate,
        deliveries_per_s: h.win_sub as f64 / wall,
        win_sub: h.win_sub,
        win_all: h.win_all,
        p50,
        p99,
        p999,
        max: h.hist.max() as f64 / 1e3,
        lost,
        reordered,
        drain_s,
        cpu,
        pass: why.is_empty(),
        why: why.join("; "),
    })
}

pub fn run(common: &Common, o: &FanoutOpts, flavour: Box<dyn Flavour>) -> Result<Outcome, String> {
    if o.size < HEAD || o.size > 4096 {
        return Err(format!("fanout --size must be {HEAD}..4096"));
    }
    if o.pubs == 0 || o.pubs > 0xFFFF || o.rate <= 0.0 {
        return Err("fanout needs 1..65535 publishers and a positive --rate".into());
    }
    let mut driver = Driver::new().map_err(|e| e.to_string())?;
    let targets: Vec<Target> = common
        .addrs
        .iter()
        .map(|&addr| Target {
            addr,
            path: flavour.path().to_owned(),
            subprotocol: flavour.subprotocol().map(str::to_owned),
            raw: false,
            raw_record: 0,
            read_buf: 16 * 1024,
            tls: common.tls.clone(),
        })
        .collect();
    // Subscriber i and publisher p go to server i (p) mod n.
    let target_of = |idx: usize| {
        let k = if idx < o.subs { idx } else { idx - o.subs };
        &targets[k % targets.len()]
    };
    let (mut hello_sub, mut hello_pub) = (Vec::new(), Vec::new());
    flavour.subscribe(&mut hello_sub);
    flavour.publisher_hello(&mut hello_pub);
    let mut h = Fanout {
        subs: o.subs,
        pubs: o.pubs,
        flavour,
        hello_sub,
        hello_pub,
        rng: Rng::seeded(),
        opened: 0,
        expected: vec![0; o.subs * o.pubs],
        advanced: 0,
        gaps: 0,
        reordered: 0,
        delivered: 0,
        to_publishers: 0,
        published: vec![0; o.pubs],
        published_total: 0,
        recording: false,
        win_sub: 0,
        win_all: 0,
        hist: Histogram::new(),
        step_max_ns: 0,
        scratch: Vec::new(),
        size: o.size,
        scheduled: 0,
        http: Vec::new(),
        http_target: match &o.publish_url {
            Some(u) => Some(PubTarget::parse(u)?),
            None => None,
        },
        publish_batch: o.publish_batch,
        body: Vec::new(),
    };
    // Subscribers first (indices 0..subs), then publishers, a bounded
    // number of handshakes at a time.
    let n = if h.http_target.is_some() {
        o.subs
    } else {
        o.subs + o.pubs
    };
    let connect_t = Instant::now();
    while driver.conns.len() < n {
        while driver.conns.len() < n && driver.conns.len() - h.opened < o.concurrency {
            driver.connect(target_of(driver.conns.len()))?;
        }
        driver.turn(&mut h, Duration::from_millis(5))?;
        if !driver.failures.is_empty() || connect_t.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    driver.run_until(&mut h, Duration::from_secs(30), |d, h| {
        h.opened == n || !d.failures.is_empty()
    })?;
    if h.opened < n || !driver.failures.is_empty() {
        return Err(format!(
            "only {} of {n} connections opened: {}",
            h.opened,
            driver.failures.first().map_or("timeout", |f| f.1.as_str())
        ));
    }
    if let Some(t) = &h.http_target {
        for _ in 0..o.pubs {
            h.http.push(HttpPub::connect(t)?);
        }
    }
    // Let subscriptions settle before the first publish.
    driver.run_until(&mut h, Duration::from_millis(200), |_, _| false)?;

    let mut steps: Vec<Step> = Vec::new();
    let mut best: Option<usize> = None;
    let mut fail_rate: Option<f64> = None;
    let mut rate = o.rate;
    let max_steps = if o.search { o.max_steps.max(1) } else { 1 };
    while steps.len() < max_steps {
        let s = step(&mut driver, &mut h, common, o, rate)?;
        let pass = s.pass;
        let drained = h.outstanding() == 0;
        eprintln!(
            "  fanout step {:>2}: rate {:>9.0}/s -> {:>10.0} deliveries/s, p99 {:>8.2} ms, lost {}, {}",
            steps.len() + 1,
            s.rate,
            s.deliveries_per_s,
            s.p99 / 1e3,
            s.lost,
            if pass {
                "pass".to_string()
            } else {
                format!("FAIL ({})", s.why)
            }
        );
        steps.push(s);
        if !o.search || driver.live() < n || !drained {
            break;
        }
        if pass {
            best = Some(steps.len() - 1);
        } else {
            fail_rate = Some(rate);
        }
        rate = match (best.map(|b| steps[b].rate), fail_rate) {
            (Some(lo), None) => lo * 2.0,
            (None, Some(hi)) => {
                if hi / 2.0 < o.min_rate {
                    break;
                }
                hi / 2.0
            }
            (Some(lo), Some(hi)) => {
                if hi / lo <= 1.15 {
                    break;
                }
                (lo + hi) / 2.0
            }
            (None, None) => unreachable!(),
        };
    }
    if !o.search && steps[0].pass {
        best = Some(0);
    }
    driver.close_all(1000);
    driver.run_until(&mut h, Duration::from_secs(3), |d, _| d.live() == 0)?;

    let mut j = Json::new();
    j.str("mode", "fanout")
        .str("flavour", h.flavour.name())
        .int("servers", common.addrs.len() as u64)
        .int("subs", o.subs as u64)
        .int("pubs", o.pubs as u64)
        .int("size", o.size as u64)
        .bool("search", o.search)
        .num("max_p99_ms", o.max_p99_ms)
        .int("delivered_total", h.delivered)
        .int("to_publishers_total", h.to_publishers)
        .int("failed_conns", driver.failures.len() as u64);
    if let Some(u) = &o.publish_url {
        j.str("publish_url", u)
            .int("publish_batch", o.publish_batch as u64)
            .int(
                "publish_requests",
                h.http.iter().map(|p| p.answered).sum::<u64>(),
            )
            .int(
                "publish_reconnects",
                h.http.iter().map(|p| p.reconnects).sum::<u64>(),
            );
    }
    let shown = best.unwrap_or(steps.len() - 1);
    let s = &steps[shown];
    j.bool("found", best.is_some())
        .num("max_rate", if best.is_some() { s.rate } else { 0.0 })
        .num(
            "deliveries_per_s",
            if best.is_some() {
                s.deliveries_per_s
            } else {
                0.0
            },
        )
        .num("lat_p50_us", s.p50)
        .num("lat_p99_us", s.p99)
        .num("lat_p999_us", s.p999)
        .int("lost", steps.iter().map(|s| s.lost).sum())
        .int("reordered", steps.iter().map(|s| s.reordered).sum());
    let items: Vec<String> = steps.iter().map(|s| s.json().finish()).collect();
    j.put("steps", crate::report::V::Raw(array(&items)));
    let mut out = Outcome::new(j, s.cpu.clone());
    out.per_op("delivery", s.win_all as f64);
    if o.search {
        // Losing messages above the found rate is what the search is for;
        // a run is invalid only if nothing passed or connections broke.
        if best.is_none() {
            out.problems
                .push(format!("no rate passed: {}", steps[shown].why));
        }
    } else if !s.pass {
        out.problems.push(s.why.clone());
    }
    out.problems.extend(driver.first_failures());
    out.summary = format!(
        "fanout ({}): {} subscribers, {} publishers, {} B: {} {:.0} msgs/s -> {:.0} deliveries/s, latency p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms",
        h.flavour.name(),
        o.subs,
        o.pubs,
        o.size,
        if o.search {
            "highest passing rate"
        } else {
            "rate"
        },
        if best.is_some() || !o.search {
            s.rate
        } else {
            0.0
        },
        s.deliveries_per_s,
        s.p50 / 1e3,
        s.p99 / 1e3,
        s.p999 / 1e3,
    );
    Ok(out)
}
