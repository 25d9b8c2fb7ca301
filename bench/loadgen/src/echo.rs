//! `echo` mode: C connections, W messages in flight on each, every echo
//! checked for content and order, RTT recorded over the measured window.
//! `--raw` does the same over plain TCP with fixed-size records.

use crate::conn::{Driver, Ev, Handler, Target, now_ns};
use crate::hist::Histogram;
use crate::payload::Payloads;
use crate::procstat::CpuWindow;
use crate::report::Json;
use crate::ws::{self, Rng};
use crate::{Common, Outcome};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub struct EchoOpts {
    pub conns: usize,
    pub window: usize,
    pub size: usize,
    pub binary: bool,
    pub raw: bool,
    pub path: String,
    pub warmup: f64,
    pub duration: f64,
}

struct PerConn {
    next_send: u64,
    next_recv: u64,
    /// Send times of the messages in flight, oldest first.
    inflight: VecDeque<u64>,
}

struct Echo {
    payloads: Payloads,
    opcode: u8,
    raw: bool,
    window: usize,
    conns: Vec<PerConn>,
    rng: Rng,
    opened: usize,
    sending: bool,
    recording: bool,
    /// Echoes checked (whole run).
    validated: u64,
    /// Echoes that did not match (the connection is dropped at the first).
    mismatches: u64,
    /// Measured window.
    msgs: u64,
    hist: Histogram,
}

impl Echo {
    fn send_one(&mut self, idx: usize, out: &mut Vec<u8>, now: u64) {
        let c = &mut self.conns[idx];
        let seq = c.next_send;
        c.next_send += 1;
        c.inflight.push_back(now);
        let p = &self.payloads;
        if self.raw {
            let start = out.len();
            out.resize(start + p.size(), 0);
            p.fill(idx, seq, &mut out[start..]);
        } else {
            let key = self.rng.next() as u32;
            ws::encode(out, self.opcode, p.size(), key, |d| p.fill(idx, seq, d));
        }
    }

    fn received(
        &mut self,
        idx: usize,
        out: &mut Vec<u8>,
        data: &[u8],
        now: u64,
    ) -> Result<(), String> {
        let c = &mut self.conns[idx];
        let seq = c.next_recv;
        let Some(sent) = c.inflight.pop_front() else {
            self.mismatches += 1;
            return Err(format!("conn {idx}: echo with nothing in flight"));
        };
        if let Err(e) = self.payloads.check(idx, seq, data) {
            self.mismatches += 1;
            return Err(format!("conn {idx}: {e}"));
        }
        c.next_recv += 1;
        self.validated += 1;
        if self.recording {
            self.msgs += 1;
            self.hist.record(now.saturating_sub(sent));
        }
        if self.sending {
            self.send_one(idx, out, now);
        }
        Ok(())
    }

    fn in_flight(&self) -> usize {
        self.conns.iter().map(|c| c.inflight.len()).sum()
    }
}

impl Handler for Echo {
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
                for _ in 0..self.window {
                    self.send_one(idx, out, now);
                }
                Ok(0)
            }
            Ev::Message { opcode, data } => {
                if opcode != self.opcode {
                    self.mismatches += 1;
                    return Err(format!(
                        "conn {idx}: echo has opcode {opcode}, sent {}",
                        self.opcode
                    ));
                }
                self.received(idx, out, data, now)?;
                Ok(0)
            }
            Ev::Raw(bytes) => {
                let size = self.payloads.size();
                let mut used = 0;
                while bytes.len() - used >= size {
                    self.received(idx, out, &bytes[used..used + size], now)?;
                    used += size;
                }
                Ok(used)
            }
        }
    }
}

pub fn run(common: &Common, o: &EchoOpts) -> Result<Outcome, String> {
    let mut driver = Driver::new().map_err(|e| e.to_string())?;
    let target = Target {
        addr: common.addr,
        path: o.path.clone(),
        subprotocol: None,
        raw: o.raw,
        raw_record: o.size,
        read_buf: (o.size + 14).max(16 * 1024),
        tls: common.tls.clone(),
    };
    let mut h = Echo {
        payloads: Payloads::new(o.size, o.binary, &mut driver.rng)?,
        opcode: if o.binary { ws::OP_BINARY } else { ws::OP_TEXT },
        raw: o.raw,
        window: o.window.max(1),
        conns: (0..o.conns)
            .map(|_| PerConn {
                next_send: 0,
                next_recv: 0,
                inflight: VecDeque::with_capacity(o.window),
            })
            .collect(),
        rng: Rng::seeded(),
        opened: 0,
        sending: true,
        recording: false,
        validated: 0,
        mismatches: 0,
        msgs: 0,
        hist: Histogram::new(),
    };
    for _ in 0..o.conns {
        driver.connect(&target)?;
    }
    let all_open = driver.run_until(&mut h, Duration::from_secs(30), |d, h| {
        h.opened == o.conns || !d.failures.is_empty()
    })?;
    if !all_open || !driver.failures.is_empty() {
        return Err(format!(
            "only {} of {} connections opened: {}",
            h.opened,
            o.conns,
            driver.failures.first().map_or("timeout", |f| f.1.as_str())
        ));
    }
    let no_failure = |d: &Driver, _: &Echo| !d.failures.is_empty();
    driver.run_until(&mut h, Duration::from_secs_f64(o.warmup), no_failure)?;
    h.recording = true;
    let cpu = CpuWindow::start(&common.server_pids, &common.aux_pids);
    let t0 = now_ns();
    driver.run_until(&mut h, Duration::from_secs_f64(o.duration), no_failure)?;
    h.recording = false;
    let used = cpu.stop();
    let wall = (now_ns() - t0) as f64 / 1e9;
    // Drain what is in flight (still validated), then close.
    h.sending = false;
    let drained = driver.run_until(&mut h, Duration::from_secs(5), |d, h| {
        h.in_flight() == 0 || !d.failures.is_empty()
    })?;
    let lost_in_flight = h.in_flight();
    let closing = Instant::now();
    driver.close_all(1000);
    driver.run_until(&mut h, Duration::from_secs(3), |d, _| d.live() == 0)?;
    let close_s = closing.elapsed().as_secs_f64();

    let rate = h.msgs as f64 / wall;
    let mb_s = rate * o.size as f64 / 1e6;
    let mut j = Json::new();
    j.str("mode", "echo")
        .bool("raw", o.raw)
        .int("conns", o.conns as u64)
        .int("window", o.window as u64)
        .int("size", o.size as u64)
        .bool("binary", o.binary)
        .num("seconds", wall)
        .int("msgs", h.msgs)
        .num("msgs_per_s", rate)
        .num("mb_per_s", mb_s)
        .latency("rtt", &h.hist)
        .int("validated", h.validated)
        .int("mismatches", h.mismatches)
        .int("unanswered", lost_in_flight as u64)
        .int("failed_conns", driver.failures.len() as u64)
        .num("close_s", close_s);
    let mut out = Outcome::new(j, used);
    out.per_op("msg", h.msgs as f64);
    out.per_op("mb", h.msgs as f64 * o.size as f64 / 1e6);
    let mut problems: Vec<String> = driver.failures.iter().map(|f| f.1.clone()).collect();
    if !drained {
        problems.push(format!("{lost_in_flight} messages never echoed"));
    }
    if h.msgs == 0 {
        problems.push("no message echoed in the measured window".into());
    }
    out.problems = problems;
    out.summary = format!(
        "echo{}: {} conns x window {}, {} B {}: {:.0} msgs/s, {:.1} MB/s, RTT p50 {:.0} µs p99 {:.0} µs p99.9 {:.0} µs; {} echoes validated, {} mismatches",
        if o.raw { " (raw TCP)" } else { "" },
        o.conns,
        o.window,
        o.size,
        if o.binary { "binary" } else { "text" },
        rate,
        mb_s,
        h.hist.quantile(0.5) as f64 / 1e3,
        h.hist.quantile(0.99) as f64 / 1e3,
        h.hist.quantile(0.999) as f64 / 1e3,
        h.validated,
        h.mismatches,
    );
    Ok(out)
}
