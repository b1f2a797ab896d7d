//! `--payload-mix`: request payload sizes drawn by weight, one run, figures per size.
//!
//! Real agents do not send one size: a capacity plan asks what a box does with, say, nine
//! small messages to one big one, and what the big ones do to the small ones' tail. Each
//! request's size is drawn from its sender and sequence number (a hash, not a random stream:
//! the same run sends the same sizes), so the shares hold on every core and every worker
//! without coordination. Replies echo the request's payload, so a reply's length names its
//! class on the way back, where its round trip is recorded.

use hdrhistogram::Histogram;

/// Most sizes in one mix.
pub const MIX_MAX: usize = 8;

/// Sizes and their weights, as `--payload-mix` names them (`64:90,64K:10`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadMix {
    sizes: [u32; MIX_MAX],
    /// Cumulative weights: class `i` takes draws below `upto[i]` and at or past `upto[i - 1]`.
    upto: [u32; MIX_MAX],
    len: u8,
}

impl PayloadMix {
    /// The mix of `(bytes, weight)` in that order: sizes between `min` and `max` bytes, each
    /// named once; weights at least 1. The error names what is wrong, without the flag.
    pub fn new(items: &[(usize, u32)], (min, max): (usize, usize)) -> Result<PayloadMix, String> {
        let mut mix = PayloadMix { sizes: [0; MIX_MAX], upto: [0; MIX_MAX], len: 0 };
        let mut total: u64 = 0;
        for &(bytes, weight) in items {
            if !(min..=max).contains(&bytes) {
                return Err(format!("size {bytes} is not between {min} and {max} bytes"));
            }
            if weight == 0 {
                return Err(format!("size {bytes} has weight 0 (at least 1)"));
            }
            let n = usize::from(mix.len);
            if mix.sizes[..n].contains(&(bytes as u32)) {
                return Err(format!("size {bytes} is named twice"));
            }
            if n == MIX_MAX {
                return Err(format!("more than {MIX_MAX} sizes"));
            }
            total += u64::from(weight);
            if total > u64::from(u32::MAX) {
                return Err("the weights add up past 4294967295".into());
            }
            mix.sizes[n] = bytes as u32;
            mix.upto[n] = total as u32;
            mix.len += 1;
        }
        if mix.len < 2 {
            return Err("a mix takes at least two sizes (one size: --payload-size)".into());
        }
        Ok(mix)
    }

    /// The sizes and their weights, in the order named.
    pub fn classes(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        let n = usize::from(self.len);
        (0..n).map(|i| {
            let below = if i == 0 { 0 } else { self.upto[i - 1] };
            (self.sizes[i] as usize, self.upto[i] - below)
        })
    }

    /// How many sizes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Never: a mix has two sizes or more.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The largest size.
    pub fn largest(&self) -> usize {
        self.sizes[..self.len()].iter().copied().max().unwrap_or(0) as usize
    }

    /// The mean size the weights ask for.
    pub fn mean(&self) -> f64 {
        let total = f64::from(self.upto[self.len() - 1]);
        self.classes().map(|(b, w)| b as f64 * f64::from(w)).sum::<f64>() / total
    }

    /// Size `class`'s bytes.
    #[inline]
    pub fn bytes(&self, class: usize) -> usize {
        self.sizes[class] as usize
    }

    /// The class of the request agent `from` sends as its `seq`-th.
    #[inline]
    pub fn pick(&self, from: u32, seq: u64) -> usize {
        let total = u64::from(self.upto[self.len() - 1]);
        let draw = (draw(from, seq) % total) as u32;
        // At most eight classes: a scan beats a search.
        self.upto[..self.len()].iter().position(|&u| draw < u).unwrap_or(0)
    }

    /// The class of a payload of `bytes`, if the mix has that size.
    #[inline]
    pub fn class_of(&self, bytes: usize) -> Option<usize> {
        self.sizes[..self.len()].iter().position(|&s| s as usize == bytes)
    }
}

/// A number drawn for agent `from`'s `seq`-th request: the same on every core and worker, with
/// no state, unrelated from one request to the next.
#[inline]
pub fn draw(from: u32, seq: u64) -> u64 {
    mix64((u64::from(from) << 40) ^ seq)
}

/// A 64-bit finalizer (splitmix64's): consecutive inputs give unrelated outputs.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One size's figures on one core (requests sent in the measured window).
#[derive(Debug, Clone)]
pub struct SizeStats {
    /// Payload bytes.
    pub bytes: usize,
    /// Its weight in the mix.
    pub weight: u32,
    /// Measured requests sent.
    pub sent: u64,
    /// Of those, the ones that ended in an error the adapter could tell the size of (an error
    /// answer, a connection or a timeout that took it down); requests the loop gives up on
    /// as a whole (a lost connection's, in the native protocol; those unanswered at the drain's
    /// end) are in the run's errors only.
    pub errors: u64,
    /// Round trips of its measured requests, from the intended send time.
    pub rtt: Histogram<u64>,
}

impl SizeStats {
    /// Each size of `mix`, nothing measured yet.
    pub fn of(mix: &PayloadMix) -> Vec<SizeStats> {
        mix.classes()
            .map(|(bytes, weight)| SizeStats {
                bytes,
                weight,
                sent: 0,
                errors: 0,
                rtt: crate::metrics::histogram(),
            })
            .collect()
    }

    /// Adds another core's (or worker's) figures into `into`, size by size.
    pub fn merge(into: &mut Vec<SizeStats>, other: &[SizeStats]) {
        for o in other {
            match into.iter_mut().find(|s| s.bytes == o.bytes) {
                Some(s) => {
                    s.sent += o.sent;
                    s.errors += o.errors;
                    // Same bounds on both sides: adding cannot fail.
                    let _ = s.rtt.add(&o.rtt);
                }
                None => into.push(o.clone()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: (usize, usize) = (16, 4 << 20);

    #[test]
    fn a_mix_keeps_its_sizes_and_weights_and_says_what_is_wrong() {
        let m = PayloadMix::new(&[(64, 90), (64 << 10, 9), (1 << 20, 1)], SIZES).unwrap();
        assert_eq!(m.classes().collect::<Vec<_>>(), vec![(64, 90), (64 << 10, 9), (1 << 20, 1)]);
        assert_eq!((m.largest(), m.len(), m.bytes(2)), (1 << 20, 3, 1 << 20));
        assert_eq!(m.class_of(64 << 10), Some(1));
        assert_eq!(m.class_of(65), None);
        assert!((m.mean() - (64.0 * 90.0 + 65536.0 * 9.0 + 1048576.0) / 100.0).abs() < 1e-6);
        let nine: Vec<(usize, u32)> = (1..=9).map(|k| (k << 10, 1)).collect();
        for (bad, says) in [
            (&[(64, 1)][..], "at least two"),
            (&[(64, 1), (8, 1)][..], "between 16"),
            (&[(64, 1), (128, 0)][..], "weight 0"),
            (&[(64, 1), (64, 2)][..], "named twice"),
            (&nine[..], "more than 8"),
            (&[(64, 4_000_000_000), (128, 4_000_000_000)][..], "add up"),
        ] {
            let e = PayloadMix::new(bad, SIZES).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn draws_follow_the_weights_on_every_sender() {
        // Proves the per-request draw gives each size its share, for every sender alone (a
        // core or a worker runs a slice of the agents) and for consecutive sequence numbers.
        let m = PayloadMix::new(&[(64, 90), (64 << 10, 9), (1 << 20, 1)], SIZES).unwrap();
        for from in [1u32, 2, 1 << 21, (7 << 21) + 99] {
            let mut n = [0u64; 3];
            for seq in 0..100_000u64 {
                n[m.pick(from, seq)] += 1;
            }
            let share = |i: usize| n[i] as f64 / 1e5;
            assert!((share(0) - 0.90).abs() < 0.01, "{from}: {n:?}");
            assert!((share(1) - 0.09).abs() < 0.005, "{from}: {n:?}");
            assert!((share(2) - 0.01).abs() < 0.002, "{from}: {n:?}");
        }
        // Not a pattern a window of sends could beat: each agent's first 10 sends mix too.
        let bigs = (0..1000u32).filter(|&a| (0..10).any(|s| m.pick(a, s) != 0)).count();
        assert!((550..=750).contains(&bigs), "{bigs} of 1000 agents drew a big one in 10 sends");
    }

    #[test]
    fn merged_sizes_add_up_size_by_size() {
        let m = PayloadMix::new(&[(64, 3), (1 << 10, 1)], SIZES).unwrap();
        let mut a = SizeStats::of(&m);
        let mut b = SizeStats::of(&m);
        a[0].sent = 5;
        a[0].rtt.record(1000).unwrap();
        b[0].sent = 7;
        b[1].sent = 2;
        (a[1].errors, b[1].errors) = (1, 1);
        b[1].rtt.record(9000).unwrap();
        SizeStats::merge(&mut a, &b);
        assert_eq!((a[0].sent, a[0].rtt.len(), a[1].sent, a[1].rtt.len()), (12, 1, 2, 1));
        assert_eq!((a[0].errors, a[1].errors), (0, 2));
        let mut none = Vec::new();
        SizeStats::merge(&mut none, &a);
        assert_eq!(none.len(), 2);
    }
}
