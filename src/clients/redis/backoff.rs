//! Reconnect delays: capped exponential back-off with "equal jitter".
//!
//! Attempt `n` (from 0) has a ceiling `c = min(cap, base * 2^n)` and waits
//! `c/2 + r` with `r` uniform in `0..=c/2` (the "equal jitter" of AWS's
//! "Exponential Backoff And Jitter"). Half the ceiling is always waited, so a
//! fleet of sprocket processes losing the same Redis never hammers it with
//! near-zero retries, and the random half spreads their reconnects out. The
//! randomness is an input, so the sequence is testable.

use std::time::Duration;

/// Back-off state for one outbound connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Ceiling of the first delay.
    pub base: Duration,
    /// Largest ceiling, reached after a few failures.
    pub cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// A back-off whose next delay is its first.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// How long to wait before the next connection attempt; `random` is any
    /// uniformly random `u64` (the caller's RNG).
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let ceiling = self.ceiling().as_nanos();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        // `random % (half + 1)`: uniform in 0..=half up to a bias of
        // half / 2^64, nothing at these magnitudes.
        let jitter = u128::from(random) % (half + 1);
        let nanos = (ceiling - half) + jitter;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Call once a connection is up and working: the next delay is the first.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failures since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_to_the_cap_with_equal_jitter() {
        let mut b = Backoff::new(100 * MS, 2000 * MS);
        // random 0: always half the ceiling.
        let lows: Vec<_> = (0..8).map(|_| b.next_delay(0)).collect();
        assert_eq!(
            lows,
            [50, 100, 200, 400, 800, 1000, 1000, 1000].map(|n| n * MS)
        );
        b.reset();
        // random u64::MAX: some point in the upper half, never above it.
        for ceiling in [100, 200, 400, 800, 1600, 2000, 2000].map(|n| n * MS) {
            let d = b.next_delay(u64::MAX);
            assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} for {ceiling:?}");
        }
    }

    #[test]
    fn fixed_random_inputs_give_fixed_delays() {
        let mut b = Backoff::new(100 * MS, 10_000 * MS);
        // ceiling 100 ms: half = 50_000_000 ns; 123_456_789 % 50_000_001.
        assert_eq!(
            b.next_delay(123_456_789),
            Duration::from_nanos(50_000_000 + 23_456_787)
        );
        // ceiling 200 ms: the top of the range is reachable.
        assert_eq!(b.next_delay(100_000_000), 200 * MS);
        assert_eq!(b.attempts(), 2);
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert_eq!(b.next_delay(0), 50 * MS);
    }

    #[test]
    fn many_failures_never_overflow() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..1000 {
            let d = b.next_delay(u64::MAX);
            assert!(d <= Duration::from_secs(30));
        }
        assert!(b.next_delay(0) >= Duration::from_secs(15));
        let mut huge = Backoff::new(Duration::MAX, Duration::MAX);
        huge.next_delay(7);
        huge.next_delay(u64::MAX);
    }
}
