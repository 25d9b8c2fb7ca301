//! `connect` mode: open C idle connections (a bounded number of handshakes
//! at a time), report handshakes/s and the server's resident memory per idle
//! connection, hold them a moment, then close them all cleanly.

use crate::conn::{Driver, Ev, Handler, Target};
use crate::procstat::{CpuWindow, rss_sum};
use crate::report::Json;
use crate::{Common, Outcome};
use std::time::{Duration, Instant};

pub struct ConnectOpts {
    pub conns: usize,
    pub concurrency: usize,
    pub hold: f64,
    pub path: String,
}

struct Idle {
    opened: usize,
    messages: u64,
}

impl Handler for Idle {
    fn event(&mut self, _: usize, _: &mut Vec<u8>, ev: Ev<'_>, _: u64) -> Result<usize, String> {
        match ev {
            Ev::Open => self.opened += 1,
            Ev::Message { .. } => self.messages += 1,
            Ev::Raw(_) => return Err("raw bytes in connect mode".into()),
        }
        Ok(0)
    }
}

pub fn run(common: &Common, o: &ConnectOpts) -> Result<Outcome, String> {
    let limit = crate::procstat::raise_nofile() as usize;
    if o.conns + 64 > limit {
        return Err(format!(
            "{} connections need more than the open-file limit {limit}",
            o.conns
        ));
    }
    let mut driver = Driver::new().map_err(|e| e.to_string())?;
    let target = Target {
        addr: common.addr,
        path: o.path.clone(),
        subprotocol: None,
        raw: false,
        raw_record: 0,
        read_buf: 1024,
        tls: common.tls.clone(),
    };
    let mut h = Idle {
        opened: 0,
        messages: 0,
    };
    let rss0 = rss_sum(&common.server_pids);
    let cpu = CpuWindow::start(&common.server_pids, &common.aux_pids);
    let t0 = Instant::now();
    while h.opened < o.conns && driver.failures.is_empty() {
        while driver.conns.len() < o.conns && driver.conns.len() - h.opened < o.concurrency {
            driver.connect(&target)?;
        }
        driver.turn(&mut h, Duration::from_millis(5))?;
        if t0.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    let connect_s = t0.elapsed().as_secs_f64();
    let used = cpu.stop();
    let opened = h.opened;
    // Hold them (answering pings, if any), then read the server's memory.
    driver.run_until(&mut h, Duration::from_secs_f64(o.hold), |_, _| false)?;
    let rss1 = rss_sum(&common.server_pids);
    let closing = Instant::now();
    driver.close_all(1000);
    driver.run_until(&mut h, Duration::from_secs(10), |d, _| d.live() == 0)?;
    let close_s = closing.elapsed().as_secs_f64();
    let clean = driver.closed;
    let failed = driver.failures.len();
    let failures = driver.first_failures();
    drop(driver);
    std::thread::sleep(Duration::from_millis(300));
    let rss2 = rss_sum(&common.server_pids);

    let hs = opened as f64 / connect_s;
    let per_conn = match (rss0, rss1) {
        (Some(a), Some(b)) if opened > 0 => Some((b as f64 - a as f64) / opened as f64),
        _ => None,
    };
    let mut j = Json::new();
    j.str("mode", "connect")
        .int("conns", o.conns as u64)
        .int("opened", opened as u64)
        .int("concurrency", o.concurrency as u64)
        .num("connect_s", connect_s)
        .num("handshakes_per_s", hs)
        .opt("rss_before", rss0.map(|v| v as f64))
        .opt("rss_open", rss1.map(|v| v as f64))
        .opt("rss_after_close", rss2.map(|v| v as f64))
        .opt("rss_per_conn", per_conn)
        .int("closed_cleanly", clean as u64)
        .int("failed_conns", failed as u64)
        .num("close_s", close_s)
        .int("messages_while_idle", h.messages);
    let mut out = Outcome::new(j, used);
    out.per_op("handshake", opened as f64);
    if opened < o.conns {
        out.problems
            .push(format!("only {opened} of {} connections opened", o.conns));
    }
    out.problems.extend(failures);
    out.summary = format!(
        "connect: {opened} connections in {connect_s:.2} s = {hs:.0} handshakes/s; server RSS {} -> {} ({}/conn); {clean} closed cleanly",
        rss0.map_or("?".into(), mib),
        rss1.map_or("?".into(), mib),
        per_conn.map_or("?".into(), |b| format!("{b:.0} B")),
    );
    Ok(out)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}
