//! Latency histograms: one set per agent core, merged at the end; never a list of samples.
//!
//! HdrHistogram with 3 significant figures over 1 ns .. 60 s. Three views per run:
//! - `rtt`: round trip measured from the **intended** send time (open loop; coordinated
//!   omission corrected, as wrk2 does). In closed loop intended = actual, so it equals `rtt_raw`.
//! - `rtt_raw`: round trip from the actual send time.
//! - `one_way`: delivery latency of every request and reply, from its send timestamp
//!   (`CLOCK_MONOTONIC` is shared by every process on a host).

use hdrhistogram::Histogram;
use serde::Serialize;

/// Significant figures kept.
pub const SIGFIGS: u8 = 3;
/// Largest value recorded exactly (60 s); larger values are clamped and counted as such.
pub const HIGHEST_NS: u64 = 60_000_000_000;

/// An empty histogram with the generator's bounds.
pub fn histogram() -> Histogram<u64> {
    // 1 ns .. 60 s at 3 significant figures is a valid combination: construction cannot fail.
    Histogram::new_with_bounds(1, HIGHEST_NS, SIGFIGS).expect("valid histogram bounds")
}

/// The three latency views of one core (or, merged, of a whole run).
#[derive(Debug, Clone)]
pub struct Latencies {
    /// Round trip from the intended send time.
    pub rtt: Histogram<u64>,
    /// Round trip from the actual send time.
    pub rtt_raw: Histogram<u64>,
    /// One-way delivery latency.
    pub one_way: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies { rtt: histogram(), rtt_raw: histogram(), one_way: histogram() }
    }
}

impl Latencies {
    /// Records one round trip (both views).
    #[inline]
    pub fn record_rtt(&mut self, corrected_ns: u64, raw_ns: u64) {
        self.rtt.saturating_record(corrected_ns.max(1));
        self.rtt_raw.saturating_record(raw_ns.max(1));
    }

    /// Records one delivery.
    #[inline]
    pub fn record_one_way(&mut self, ns: u64) {
        self.one_way.saturating_record(ns.max(1));
    }

    /// Adds another core's histograms into these.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.rtt.add(&other.rtt);
        let _ = self.rtt_raw.add(&other.rtt_raw);
        let _ = self.one_way.add(&other.one_way);
    }
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Mean.
    pub avg_ms: f64,
    /// Smallest.
    pub min_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarizes `h` (all zeros when empty).
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        LatencySummary {
            count: h.len(),
            avg_ms: h.mean() / 1e6,
            min_ms: ms(h.min()),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_histograms_give_the_percentiles_of_all_samples() {
        // Proves per-core histograms merge into the distribution of the union of their samples.
        let mut a = Latencies::default();
        let mut b = Latencies::default();
        for v in 1..=500u64 {
            a.record_rtt(v * 1_000_000, v * 1_000);
        }
        for v in 501..=1000u64 {
            b.record_rtt(v * 1_000_000, v * 1_000);
        }
        a.merge(&b);
        let s = LatencySummary::of(&a.rtt);
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99_ms - 990.0).abs() < 1.0, "{s:?}");
        assert!((LatencySummary::of(&a.rtt_raw).p99_ms - 0.99).abs() < 0.01);
        a.record_one_way(u64::MAX);
        assert_eq!(a.one_way.len(), 1, "values past 60 s are clamped, not lost");
    }
}
