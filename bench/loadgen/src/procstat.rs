//! Reading another process's CPU time and resident memory from /proc.

use std::time::Instant;

/// CPU time (user + system, all threads) of a process, in microseconds.
pub fn cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: fields
    // after it start at "state" (field 3); utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_ascii_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let tck = if tck > 0 { tck as u64 } else { 100 };
    Some((utime + stime) * 1_000_000 / tck)
}

/// Resident set size of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time of this process (all threads), in microseconds.
pub fn own_cpu_us() -> u64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU use of the server (if a pid was given) and of this tool over a window.
pub struct CpuWindow {
    pid: Option<u32>,
    start: Instant,
    server0: Option<u64>,
    own0: u64,
}

/// What a [`CpuWindow`] measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuUse {
    pub wall_s: f64,
    /// Server CPU seconds over the window (None without a pid).
    pub server_s: Option<f64>,
    pub own_s: f64,
}

impl CpuWindow {
    pub fn start(pid: Option<u32>) -> Self {
        CpuWindow {
            pid,
            start: Instant::now(),
            server0: pid.and_then(cpu_us),
            own0: own_cpu_us(),
        }
    }

    pub fn stop(&self) -> CpuUse {
        let server1 = self.pid.and_then(cpu_us);
        CpuUse {
            wall_s: self.start.elapsed().as_secs_f64(),
            server_s: match (self.server0, server1) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e6),
                _ => None,
            },
            own_s: own_cpu_us().saturating_sub(self.own0) as f64 / 1e6,
        }
    }
}

/// Raises this process's open-file soft limit to its hard limit.
pub fn raise_nofile() -> u64 {
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        rl.rlim_cur = rl.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
    }
    rl.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_us(pid).is_some());
        assert!(rss_bytes(pid).unwrap() > 100_000);
        assert!(cpu_us(u32::MAX).is_none());
    }
}
