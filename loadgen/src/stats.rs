//! Measurements: per-thread HDR histograms and counters, the live progress
//! line, and the summary (a table for people, `--json` for machines).

use std::{
    io::{IsTerminal, Write},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histograms track (longer ones are clamped to it).
pub const LATENCY_MAX: Duration = Duration::from_secs(3600);
/// Significant decimal digits of the histograms (0.1% resolution).
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// Distinct error messages kept for the summary.
pub const ERROR_SAMPLES_MAX: usize = 5;

/// A latency histogram in nanoseconds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX.as_nanos() as u64, LATENCY_SIGNIFICANT_DIGITS)
        .expect("static histogram bounds are valid")
}

/// Counters one thread publishes for the progress line. Each thread owns
/// its own (cache-line aligned) block, so publishing never contends.
#[derive(Default, Debug)]
#[repr(align(128))]
pub struct LiveCounters {
    pub completed: AtomicU64,
    pub errors: AtomicU64,
    pub bytes_received: AtomicU64,
}

/// What one thread measured.
#[derive(Debug)]
pub struct ThreadReport {
    pub histogram: Histogram<u64>,
    /// Requests completed inside the measured window.
    pub completed: u64,
    /// Of those, how many failed (ErrorResponse, HTTP status >= 400).
    pub errors: u64,
    /// Requests lost: connection failures, requests unanswered at the end.
    pub failed: u64,
    pub bytes_received: u64,
    pub error_samples: Vec<String>,
}

impl ThreadReport {
    pub fn new() -> ThreadReport {
        ThreadReport {
            histogram: new_histogram(),
            completed: 0,
            errors: 0,
            failed: 0,
            bytes_received: 0,
            error_samples: Vec::new(),
        }
    }

    pub fn sample_error(&mut self, message: String) {
        if self.error_samples.len() < ERROR_SAMPLES_MAX && !self.error_samples.contains(&message) {
            self.error_samples.push(message);
        }
    }

    pub fn merge(&mut self, other: ThreadReport) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
        self.completed += other.completed;
        self.errors += other.errors;
        self.failed += other.failed;
        self.bytes_received += other.bytes_received;
        for sample in other.error_samples {
            self.sample_error(sample);
        }
    }
}

impl Default for ThreadReport {
    fn default() -> Self {
        ThreadReport::new()
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Serialize, Clone, PartialEq)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

/// The summary of a run.
#[derive(Debug, Serialize, Clone)]
pub struct Summary {
    pub protocol: &'static str,
    pub target: String,
    pub workload: String,
    /// "closed" or "open".
    pub loop_kind: &'static str,
    pub rate_target: Option<f64>,
    pub threads: usize,
    pub connections: usize,
    pub pipeline: usize,
    pub io_driver: &'static str,
    pub duration_s: f64,
    pub requests: u64,
    pub errors: u64,
    pub failed: u64,
    pub requests_per_second: f64,
    pub bytes_received: u64,
    pub bytes_per_second: f64,
    pub latency_us: Latency,
    pub error_samples: Vec<String>,
}

fn micros(nanos: u64) -> f64 {
    nanos as f64 / 1000.0
}

impl Latency {
    pub fn from_histogram(histogram: &Histogram<u64>) -> Latency {
        if histogram.is_empty() {
            return Latency {
                mean: 0.0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p99_9: 0.0,
                max: 0.0,
            };
        }
        Latency {
            mean: histogram.mean() / 1000.0,
            p50: micros(histogram.value_at_quantile(0.50)),
            p90: micros(histogram.value_at_quantile(0.90)),
            p99: micros(histogram.value_at_quantile(0.99)),
            p99_9: micros(histogram.value_at_quantile(0.999)),
            max: micros(histogram.max()),
        }
    }
}

/// A latency in a readable unit.
pub fn format_micros(value: f64) -> String {
    if value >= 1_000_000.0 {
        format!("{:.2} s", value / 1_000_000.0)
    } else if value >= 1000.0 {
        format!("{:.2} ms", value / 1000.0)
    } else {
        format!("{value:.0} us")
    }
}

fn format_bytes(value: f64) -> String {
    if value >= 1e9 {
        format!("{:.2} GB", value / 1e9)
    } else if value >= 1e6 {
        format!("{:.1} MB", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1} kB", value / 1e3)
    } else {
        format!("{value:.0} B")
    }
}

impl Summary {
    /// The human-readable summary table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let rate = match self.rate_target {
            Some(rate) => format!("open loop at {rate}/s"),
            None => "closed loop".to_string(),
        };
        out.push_str(&format!(
            "{} {}  [{}]\n{}, {} threads, {} connections, pipeline {}, {} s, io {}\n\n",
            self.protocol,
            self.target,
            self.workload,
            rate,
            self.threads,
            self.connections,
            self.pipeline,
            self.duration_s,
            self.io_driver
        ));
        out.push_str(
            "| requests | req/s | received/s | errors | failed | p50 | p90 | p99 | p99.9 | max |\n",
        );
        out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        let l = &self.latency_us;
        out.push_str(&format!(
            "| {} | {:.0} | {}/s | {} | {} | {} | {} | {} | {} | {} |\n",
            self.requests,
            self.requests_per_second,
            format_bytes(self.bytes_per_second),
            self.errors,
            self.failed,
            format_micros(l.p50),
            format_micros(l.p90),
            format_micros(l.p99),
            format_micros(l.p99_9),
            format_micros(l.max)
        ));
        for sample in &self.error_samples {
            out.push_str(&format!("error: {sample}\n"));
        }
        out
    }
}

/// Prints a progress line to stderr once a second until `stop` is set:
/// in place on a terminal, one line per second otherwise.
pub fn spawn_progress(
    counters: Vec<Arc<LiveCounters>>,
    stop: Arc<AtomicBool>,
    start: Instant,
    total: Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let terminal = std::io::stderr().is_terminal();
        let mut last = (0u64, Instant::now());
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if last.1.elapsed() < Duration::from_secs(1) || stop.load(Ordering::Relaxed) {
                continue;
            }
            let completed: u64 = counters
                .iter()
                .map(|c| c.completed.load(Ordering::Relaxed))
                .sum();
            let errors: u64 = counters
                .iter()
                .map(|c| c.errors.load(Ordering::Relaxed))
                .sum();
            let now = Instant::now();
            let rate = (completed - last.0) as f64 / now.duration_since(last.1).as_secs_f64();
            last = (completed, now);
            let line = format!(
                "{:>5.1}/{:.0} s  {completed} requests  {rate:.0}/s  {errors} errors",
                start.elapsed().as_secs_f64(),
                total.as_secs_f64()
            );
            let mut stderr = std::io::stderr().lock();
            if terminal {
                let _ = write!(stderr, "\r\x1b[2K{line}");
            } else {
                let _ = writeln!(stderr, "{line}");
            }
            let _ = stderr.flush();
        }
        if terminal {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut report = ThreadReport::new();
        for micros in 1..=1000u64 {
            report.histogram.record(micros * 1000).unwrap();
        }
        let mut other = ThreadReport::new();
        other.histogram.record(50_000_000).unwrap();
        other.sample_error("boom".into());
        other.sample_error("boom".into());
        report.merge(other);
        let latency = Latency::from_histogram(&report.histogram);
        // Three significant digits: within 0.5% of the exact values.
        let close = |value: f64, exact: f64| (value - exact).abs() <= exact * 0.005;
        assert!(close(latency.p50, 500.0), "{latency:?}");
        assert!(close(latency.p99, 990.0), "{latency:?}");
        assert!(close(latency.max, 50_000.0), "{latency:?}");
        assert_eq!(report.error_samples, vec!["boom".to_string()]);
    }

    #[test]
    fn units_are_readable() {
        assert_eq!(format_micros(12.0), "12 us");
        assert_eq!(format_micros(1500.0), "1.50 ms");
        assert_eq!(format_micros(2_500_000.0), "2.50 s");
    }
}
