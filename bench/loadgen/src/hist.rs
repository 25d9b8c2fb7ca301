//! A log-linear latency histogram: exact below 128 ns, then 64 buckets per
//! power of two (under 1.6 % relative error), fixed size, no allocation
//! while recording.

const LINEAR: usize = 128;
const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = LINEAR + (64 - 7) * SUB;

/// Counts of nanosecond values.
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }

    fn bucket(v: u64) -> usize {
        if v < LINEAR as u64 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // >= 7
        let m = ((v >> (e - SUB_BITS)) as usize) & (SUB - 1);
        LINEAR + (e as usize - 7) * SUB + m
    }

    /// Smallest and largest value that fall into bucket `b`.
    fn range(b: usize) -> (u64, u64) {
        if b < LINEAR {
            return (b as u64, b as u64);
        }
        let e = ((b - LINEAR) / SUB) as u32 + 7;
        let m = ((b - LINEAR) % SUB) as u64;
        let lo = (1u64 << e) | (m << (e - SUB_BITS));
        let width = 1u64 << (e - SUB_BITS);
        (lo, lo + (width - 1))
    }

    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.counts[Self::bucket(ns)] += 1;
        self.total += 1;
        if ns > self.max {
            self.max = ns;
        }
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): the midpoint of its bucket, capped
    /// at the largest value seen. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = Self::range(b);
                return (lo + (hi - lo) / 2).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order() {
        let mut last = 0;
        for v in (0..200_000u64).chain([1 << 40, u64::MAX / 3]) {
            let b = Histogram::bucket(v);
            assert!(b >= last, "bucket order at {v}");
            last = b;
            let (lo, hi) = Histogram::range(b);
            assert!(lo <= v && v <= hi, "{v} not in [{lo}, {hi}]");
        }
    }

    #[test]
    fn quantiles_within_error() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        for (q, want) in [
            (0.5, 50_000_000.0),
            (0.99, 99_000_000.0),
            (0.999, 99_900_000.0),
        ] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.02, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.count(), 100_000);
        assert_eq!(h.max(), 100_000_000);
    }
}
