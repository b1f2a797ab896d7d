//! `--hlog DIR`: each run's time series as an HdrHistogram interval log (the V2 format of
//! HdrHistogram's `HistogramLogWriter`, compressed histograms), readable by `HistogramLogProcessor`
//! and the other HdrHistogram tools. Values are round trips from the intended send time in
//! nanoseconds (tag `rtt`); the max column is in milliseconds.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use crate::loadgen::Interval;

/// Writes `intervals` to `path`; `window_start` is the wall-clock time the measured window
/// began (the log's StartTime and BaseTime: interval timestamps are seconds after it).
pub fn write(
    path: &Path,
    intervals: &[Interval],
    window_start: SystemTime,
    comment: &str,
) -> anyhow::Result<()> {
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let mut builder = IntervalLogWriterBuilder::new();
    builder
        .add_comment(comment)
        .add_comment("values: round trip from the intended send time, ns; max column: ms")
        .with_start_time(window_start)
        .with_base_time(window_start)
        .with_max_value_divisor(1e6);
    let mut log = builder.begin_log_with(&mut out, &mut serializer)?;
    let tag = Tag::new("rtt");
    for iv in intervals {
        log.write_histogram(
            &iv.rtt,
            Duration::from_nanos(iv.start_ns),
            Duration::from_nanos(iv.end_ns.saturating_sub(iv.start_ns)),
            tag,
        )
        .map_err(|e| anyhow::anyhow!("encoding an interval histogram: {e}"))?;
    }
    std::fs::write(path, out).with_context(|| format!("--hlog: writing {}", path.display()))
}

/// One interval read back from a log.
#[derive(Debug, Clone)]
pub struct LoggedInterval {
    /// Seconds after the base time.
    pub start: Duration,
    /// Its length.
    pub duration: Duration,
    /// Its histogram.
    pub histogram: Histogram<u64>,
}

/// Reads every interval of the log at `path`.
pub fn read(path: &Path) -> anyhow::Result<Vec<LoggedInterval>> {
    use base64::Engine;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut d = Deserializer::new();
    let mut out = Vec::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|e| anyhow::anyhow!("{}: {e:?}", path.display()))?;
        if let LogEntry::Interval(iv) = entry {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(iv.encoded_histogram())
                .context("an interval's histogram is not base64")?;
            let histogram: Histogram<u64> = d
                .deserialize(&mut raw.as_slice())
                .map_err(|e| anyhow::anyhow!("decoding an interval's histogram: {e:?}"))?;
            out.push(LoggedInterval {
                start: iv.start_timestamp(),
                duration: iv.duration(),
                histogram,
            });
        }
    }
    Ok(out)
}
