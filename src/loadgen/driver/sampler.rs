//! The measured window's time series: counters and CPU sampled per interval on each core.

use super::*;

/// One core's part of one interval.
pub(super) struct Sample {
    pub(super) index: u32,
    pub(super) start_ns: u64,
    pub(super) end_ns: u64,
    pub(super) deliveries: u64,
    pub(super) requests_sent: u64,
    pub(super) round_trips: u64,
    pub(super) errors: u64,
    pub(super) cpu_busy: f64,
    /// Of `cpu_busy`, the share spent watching for input that had not come.
    pub(super) cpu_watch: f64,
    pub(super) rtt: hdrhistogram::Histogram<u64>,
}

/// Cuts one core's measured window into intervals: at each boundary, what changed since the
/// last one (counters, the round-trip histogram, the thread's CPU time).
pub(super) struct Sampler {
    pub(super) every_ns: u64,
    pub(super) index: u32,
    pub(super) start_ns: u64,
    pub(super) measure_ns: u64,
    pub(super) counters: [u64; 4],
    pub(super) rtt: hdrhistogram::Histogram<u64>,
    pub(super) cpu_ns: u64,
    pub(super) watch_ns: u64,
}

pub(super) fn counts(c: &GroupCounters) -> [u64; 4] {
    [c.window_deliveries, c.requests_sent_in_window, c.round_trips_measured, c.error_total()]
}

impl Sampler {
    pub(super) fn new<A: Adapter>(every: Duration, measure_ns: u64, g: &Group<A>) -> Sampler {
        Sampler {
            every_ns: (every.as_nanos() as u64).max(1_000_000),
            index: 0,
            start_ns: measure_ns,
            measure_ns,
            // What counts for the window is counted only from its start (deliveries, requests
            // sent) or only for requests meant to leave in it (round trips): none belongs to
            // the warm-up, though some may be in already if this task woke late. Errors count
            // from the first send: those before now were the warm-up's.
            counters: [0, 0, 0, g.counters().error_total()],
            rtt: {
                let mut none = g.latencies().rtt.clone();
                none.reset();
                none
            },
            cpu_ns: clock::thread_cpu_ns(),
            watch_ns: clock::thread_watch_ns(),
        }
    }

    /// When the current interval ends.
    pub(super) fn due_ns(&self) -> u64 {
        self.start_ns + self.every_ns
    }

    /// Closes the current interval at `now`.
    pub(super) fn take<A: Adapter>(&mut self, g: &Group<A>, now: u64) -> Sample {
        let c = counts(g.counters());
        let mut rtt = g.latencies().rtt.clone();
        // The cumulative histogram only grows: the difference is this interval's samples.
        let _ = rtt.subtract(&self.rtt);
        let _ = self.rtt.add(&rtt);
        let (cpu, watch) = thread_times();
        let wall = now.saturating_sub(self.start_ns).max(1);
        let busy = (cpu.saturating_sub(self.cpu_ns) as f64 / wall as f64).min(1.0);
        let d = |i: usize| c[i].saturating_sub(self.counters[i]);
        let sample = Sample {
            index: self.index,
            start_ns: self.start_ns - self.measure_ns,
            end_ns: now.max(self.start_ns) - self.measure_ns,
            deliveries: d(0),
            requests_sent: d(1),
            round_trips: d(2),
            errors: d(3),
            cpu_busy: busy,
            cpu_watch: (watch.saturating_sub(self.watch_ns) as f64 / wall as f64).min(busy),
            rtt,
        };
        self.index += 1;
        self.start_ns = now.max(self.start_ns);
        self.counters = c;
        self.cpu_ns = cpu;
        self.watch_ns = watch;
        sample
    }
}

/// The coordinating thread's merge of the cores' samples into intervals.
pub(super) struct Series {
    pub(super) cores: usize,
    pub(super) open: std::collections::BTreeMap<u32, (usize, Interval)>,
    pub(super) done: Vec<Interval>,
    pub(super) router: Probe,
}

impl Series {
    pub(super) fn add(&mut self, core: usize, s: Sample) -> Option<u32> {
        let cores = self.cores;
        let (seen, iv) = self.open.entry(s.index).or_insert_with(|| {
            (
                0,
                Interval {
                    index: s.index,
                    start_ns: s.start_ns,
                    end_ns: s.end_ns,
                    deliveries: 0,
                    requests_sent: 0,
                    round_trips: 0,
                    errors: 0,
                    rtt: crate::metrics::Latencies::default().rtt,
                    agent_cpu: vec![0.0; cores],
                    agent_watch: vec![0.0; cores],
                    router_cpu: None,
                    router_watch: None,
                },
            )
        });
        *seen += 1;
        let counts = [s.deliveries, s.requests_sent, s.round_trips, s.errors];
        iv.absorb((s.start_ns, s.end_ns), counts, &s.rtt);
        if let (Some(busy), Some(watch)) =
            (iv.agent_cpu.get_mut(core), iv.agent_watch.get_mut(core))
        {
            (*busy, *watch) = (s.cpu_busy, s.cpu_watch);
        }
        (*seen == cores).then_some(s.index)
    }

    /// Moves interval `index` to the finished list, with the router's CPU use since the last.
    pub(super) fn finish(
        &mut self,
        index: u32,
        probe: Option<&dyn crate::loadgen::RouterProbe>,
    ) -> Option<&Interval> {
        let (_, mut iv) = self.open.remove(&index)?;
        if let Some(p) = probe {
            let now = read_probe(p);
            (iv.router_cpu, iv.router_watch) =
                router_cpu(self.router.take(), Some(now.clone())).unzip();
            self.router = Some(now);
        }
        self.done.push(iv);
        self.done.last()
    }
}
