//! Soak test (not part of the default `cargo test`; run with
//! `cargo test --release --test soak -- --ignored --nocapture`):
//! tens of thousands of connection open/close cycles and millions of
//! messages against one server process, then its resident memory must be
//! back within a small bound of its warmed-up baseline and its open file
//! descriptors exactly back to baseline.
//!
//! Sizes can be scaled with SOAK_CYCLES and SOAK_MESSAGES.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Open/upgrade/close `cycles` connections, half closing politely, half
/// just dropping the socket, from 4 threads.
fn churn(addr: SocketAddr, cycles: usize) {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..cycles / 4 {
                    let mut c =
                        Client::connect(addr, if i % 3 == 0 { "/chat" } else { "/echo" }, &[]);
                    if (i + t) % 2 == 0 {
                        c.send_close(1000, "");
                        c.expect_close(1000);
                    }
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
}

/// Echo `messages` messages over 8 connections, 64 in flight each.
fn traffic(addr: SocketAddr, messages: usize) {
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr, "/echo", &[]);
                let batch: Vec<u8> = (0..64)
                    .flat_map(|i| masked_frame(0x82, &[(i + t) as u8; 100]))
                    .collect();
                for _ in 0..messages / 8 / 64 {
                    c.send_raw(&batch);
                    for i in 0..64 {
                        let f = c.read_frame();
                        assert_eq!(f.payload, [(i + t) as u8; 100]);
                    }
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
}

#[test]
#[ignore = "long: run explicitly (see the module docs)"]
fn rss_and_fds_return_to_baseline() {
    let cycles = env_or("SOAK_CYCLES", 40_000);
    let messages = env_or("SOAK_MESSAGES", 2_000_000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sprocket"))
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn,sprocket=info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(rest) = line.split("listening on ws://").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || lines.for_each(drop)); // keep draining the log
    let pid = child.id();

    // Warm up (pools, allocator arenas), then take the baseline.
    churn(addr, 2_000);
    traffic(addr, 100_000);
    std::thread::sleep(Duration::from_millis(300));
    let (rss0, fds0) = (rss_kib(pid), fds(pid));

    let started = Instant::now();
    for round in 0..4 {
        churn(addr, cycles / 4);
        traffic(addr, messages / 4);
        eprintln!("round {round}: rss {} KiB, fds {}", rss_kib(pid), fds(pid));
    }
    let elapsed = started.elapsed();
    // Connections that were dropped without a close are gone once the
    // server has read their EOF; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fds(pid) != fds0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (rss1, fds1) = (rss_kib(pid), fds(pid));
    eprintln!(
        "soak: {cycles} connection cycles and {messages} messages in {:.1} s; \
         RSS {rss0} KiB -> {rss1} KiB; fds {fds0} -> {fds1}",
        elapsed.as_secs_f64()
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(fds1, fds0, "file descriptors leaked");
    assert!(
        rss1 <= rss0 + 2048,
        "RSS grew from {rss0} KiB to {rss1} KiB"
    );
}
