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

/// CPU time of each of several processes; None if any cannot be read.
fn cpu_each_us(pids: &[u32]) -> Option<Vec<u64>> {
    pids.iter().map(|&p| cpu_us(p)).collect()
}

/// Resident set size summed over several processes.
pub fn rss_sum(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| rss_bytes(p)).sum()
}

/// CPU use of the server (if pids were given: several servers are summed),
/// of other processes sampled apart (`aux`, e.g. a Redis the servers use),
/// and of this tool over a window.
pub struct CpuWindow {
    start: Instant,
    pids: Vec<u32>,
    aux: Vec<u32>,
    server0: Option<Vec<u64>>,
    aux0: Option<Vec<u64>>,
    own0: u64,
}

/// What a [`CpuWindow`] measured.
#[derive(Clone, Debug, Default)]
pub struct CpuUse {
    pub wall_s: f64,
    /// Server CPU seconds over the window, all server pids together (None
    /// without a pid, or if one could not be read).
    pub server_s: Option<f64>,
    /// The same per server pid, in the order given.
    pub server_each_s: Vec<f64>,
    /// CPU seconds of the `aux` processes together (None without any).
    pub aux_s: Option<f64>,
    pub own_s: f64,
}

/// CPU seconds of each of `pids` since `before` (None: none given, or one
/// unreadable then or now).
fn window(pids: &[u32], before: &Option<Vec<u64>>) -> Option<Vec<f64>> {
    if pids.is_empty() {
        return None;
    }
    let after = cpu_each_us(pids)?;
    let before = before.as_ref()?;
    Some(
        before
            .iter()
            .zip(&after)
            .map(|(a, b)| b.saturating_sub(*a) as f64 / 1e6)
            .collect(),
    )
}

impl CpuWindow {
    pub fn start(pids: &[u32], aux: &[u32]) -> Self {
        CpuWindow {
            start: Instant::now(),
            pids: pids.to_vec(),
            aux: aux.to_vec(),
            server0: cpu_each_us(pids),
            aux0: cpu_each_us(aux),
            own0: own_cpu_us(),
        }
    }

    pub fn stop(&self) -> CpuUse {
        let each = window(&self.pids, &self.server0);
        let aux = window(&self.aux, &self.aux0);
        CpuUse {
            wall_s: self.start.elapsed().as_secs_f64(),
            server_s: each.as_ref().map(|e| e.iter().sum()),
            server_each_s: each.unwrap_or_default(),
            aux_s: aux.map(|a| a.iter().sum()),
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
        // Several pids are summed; one unreadable pid makes the sum unknown.
        let w = CpuWindow::start(&[pid, pid], &[pid]);
        let u = w.stop();
        assert_eq!(u.server_each_s.len(), 2);
        assert_eq!(u.server_s, Some(u.server_each_s[0] + u.server_each_s[1]));
        assert!(u.aux_s.is_some());
        assert!(
            CpuWindow::start(&[pid, u32::MAX], &[])
                .stop()
                .server_s
                .is_none()
        );
        assert!(CpuWindow::start(&[], &[]).stop().server_s.is_none());
        assert!(rss_sum(&[pid, pid]).unwrap() > 200_000);
        assert!(rss_sum(&[]).is_none() && rss_sum(&[pid, u32::MAX]).is_none());
    }
}
