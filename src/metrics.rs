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
///
/// While every round trip's two views agree (closed loop: intended = actual), only `rtt` is
/// recorded and `rtt_raw` is read as a copy of it; the first sample where they differ makes
/// `rtt_raw` a real histogram from then on. A round trip costs three records, not four.
#[derive(Debug, Clone)]
pub struct Latencies {
    /// Round trip from the intended send time.
    pub rtt: Histogram<u64>,
    /// Round trip from the actual send time, except the samples still mirrored by `rtt`.
    rtt_raw: Histogram<u64>,
    /// Whether every round trip recorded so far had equal views (`rtt_raw` is then empty).
    mirrored: bool,
    /// One-way delivery latency.
    pub one_way: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies { rtt: histogram(), rtt_raw: histogram(), mirrored: true, one_way: histogram() }
    }
}

impl Latencies {
    /// The three views, as decoded from a report part.
    pub fn from_parts(
        rtt: Histogram<u64>,
        rtt_raw: Histogram<u64>,
        one_way: Histogram<u64>,
    ) -> Self {
        Latencies { rtt, rtt_raw, mirrored: false, one_way }
    }

    /// Round trip from the actual send time.
    pub fn rtt_raw(&self) -> &Histogram<u64> {
        if self.mirrored {
            &self.rtt
        } else {
            &self.rtt_raw
        }
    }

    /// Stops mirroring: `rtt_raw` gets every sample so far (all equal to `rtt`'s).
    fn unmirror(&mut self) {
        if self.mirrored {
            // `rtt_raw` is empty with the same bounds: adding cannot fail.
            let _ = self.rtt_raw.add(&self.rtt);
            self.mirrored = false;
        }
    }

    /// Records one round trip (both views).
    #[inline]
    pub fn record_rtt(&mut self, corrected_ns: u64, raw_ns: u64) {
        let (corrected, raw) = (corrected_ns.max(1), raw_ns.max(1));
        if self.mirrored {
            if corrected == raw {
                self.rtt.saturating_record(corrected);
                return;
            }
            self.unmirror();
        }
        self.rtt.saturating_record(corrected);
        self.rtt_raw.saturating_record(raw);
    }

    /// Records one delivery.
    #[inline]
    pub fn record_one_way(&mut self, ns: u64) {
        self.one_way.saturating_record(ns.max(1));
    }

    /// Adds another core's histograms into these.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so adding cannot fail.
        if !(self.mirrored && other.mirrored) {
            self.unmirror();
            let _ = self.rtt_raw.add(other.rtt_raw());
        }
        let _ = self.rtt.add(&other.rtt);
        let _ = self.one_way.add(&other.one_way);
    }
}

/// Adds `other`'s histograms into `into`'s of the same index, growing `into` to as many.
pub fn merge_each(into: &mut Vec<Histogram<u64>>, other: &[Histogram<u64>]) {
    for (i, h) in other.iter().enumerate() {
        match into.get_mut(i) {
            // Same bounds on both sides: adding cannot fail.
            Some(mine) => {
                let _ = mine.add(h);
            }
            None => into.push(h.clone()),
        }
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
        assert!((LatencySummary::of(a.rtt_raw()).p99_ms - 0.99).abs() < 0.01);
        a.record_one_way(u64::MAX);
        assert_eq!(a.one_way.len(), 1, "values past 60 s are clamped, not lost");
    }

    #[test]
    fn the_raw_view_is_exact_whether_or_not_it_was_mirrored() {
        // Proves recording the raw view only once the views differ loses nothing: against
        // two histograms fed every sample, for closed-loop cores (views always equal), an
        // open-loop core that diverges part-way, and every way of merging them.
        let closed: Vec<(u64, u64)> = (1..=300u64).map(|v| (v * 977, v * 977)).collect();
        let mut open = closed.clone();
        open.extend((1..=200u64).map(|v| (v * 5_000 + 40_000, v * 5_000)));
        open.extend((1..=50u64).map(|v| (v * 3, v * 3)));
        let fill = |samples: &[(u64, u64)]| {
            let mut l = Latencies::default();
            let (mut rtt, mut raw) = (histogram(), histogram());
            for &(c, r) in samples {
                l.record_rtt(c, r);
                rtt.record(c).unwrap();
                raw.record(r).unwrap();
            }
            (l, rtt, raw)
        };
        for (a, b) in [(&closed, &closed), (&closed, &open), (&open, &closed), (&open, &open)] {
            let (mut la, mut rtt, mut raw) = fill(a);
            let (lb, rtt_b, raw_b) = fill(b);
            assert_eq!(la.rtt_raw(), &raw);
            assert_eq!(lb.rtt_raw(), &raw_b);
            la.merge(&lb);
            rtt.add(&rtt_b).unwrap();
            raw.add(&raw_b).unwrap();
            assert_eq!(la.rtt, rtt);
            assert_eq!(la.rtt_raw(), &raw, "{} + {} samples", a.len(), b.len());
        }
        let (l, _, raw) = fill(&open);
        let back = Latencies::from_parts(l.rtt.clone(), l.rtt_raw().clone(), l.one_way.clone());
        assert_eq!(back.rtt_raw(), &raw);
    }
}
