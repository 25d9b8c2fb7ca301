//! The `sprocket` binary as tests run it: started on port 0 (and an admin
//! port when asked), its log read for the addresses, killed on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// A running binary.
pub struct Running {
    /// The process (signals, exit status).
    pub child: Child,
    /// The public listener.
    pub addr: SocketAddr,
    /// The admin listener, when `--admin-listen` was given.
    pub admin: Option<SocketAddr>,
    /// Log lines after the one that said where it listens.
    pub log: Receiver<String>,
    /// The log lines up to and with that one.
    pub startup: Vec<String>,
}

impl Running {
    /// The line that said where it listens.
    pub fn start_line(&self) -> &str {
        self.startup.last().map_or("", String::as_str)
    }

    /// The first word after `marker` in the startup log.
    pub fn logged_after(&self, marker: &str) -> Option<String> {
        self.startup.iter().find_map(|line| {
            let rest = line.split(marker).nth(1)?;
            rest.split_whitespace().next().map(str::to_owned)
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bin` with `--listen 127.0.0.1:0`, `args` and `envs`.
pub fn spawn(bin: &Path, args: &[&str], envs: &[(&str, &str)]) -> Running {
    let mut cmd = Command::new(bin);
    cmd.args(["--listen", "127.0.0.1:0"]).args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    spawn_command(cmd)
}

/// Starts `cmd` (which runs the binary on port 0, perhaps through a
/// shell) and waits for the line that says where it listens.
pub fn spawn_command(mut cmd: Command) -> Running {
    let mut child = cmd
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut startup = Vec::new();
    let found = loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) else {
            break None;
        };
        startup.push(line.clone());
        let rest = line
            .split("listening on ws://")
            .nth(1)
            .or_else(|| line.split("listening on wss://").nth(1));
        if let Some(rest) = rest {
            let addr: SocketAddr = rest.split_whitespace().next().unwrap().parse().unwrap();
            let admin = line
                .split("admin on http://")
                .nth(1)
                .or_else(|| line.split("admin on https://").nth(1))
                .and_then(|r| r.split_whitespace().next())
                .map(|a| a.parse().unwrap());
            break Some((addr, admin));
        }
    };
    let Some((addr, admin)) = found else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{cmd:?} did not say where it listens");
    };
    Running {
        child,
        addr,
        admin,
        log: rx,
        startup,
    }
}
