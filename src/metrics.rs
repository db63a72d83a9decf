//! Prometheus metrics without locks or shared cache lines on the data path.
//!
//! Every worker owns one [`WorkerMetrics`] block, aligned to its own cache
//! lines, and is the only thread that writes it: an increment is a relaxed
//! load and store (a plain `mov` on x86, no locked instruction), so counting
//! costs the hot path no cross-core traffic. A scrape on the admin thread
//! reads every block with relaxed loads and sums them; a scrape may see one
//! counter a little ahead of another, which Prometheus tolerates.
//!
//! Counters touched off the data path (the admin listener, the webhook
//! thread) live in [`ServiceMetrics`] and use ordinary atomic adds.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
};

/// Upper bounds (seconds) of the approval wait histogram buckets.
pub const APPROVAL_WAIT_BUCKETS_SECONDS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// A counter written by exactly one thread (its worker).
#[derive(Default)]
pub struct OwnedCounter(AtomicU64);

impl OwnedCounter {
    /// Adds `n`. Only the owning worker may call this: two writers could
    /// lose increments, which is the price of not locking the bus.
    #[inline]
    pub fn add(&self, n: u64) {
        let value = self.0.load(Ordering::Relaxed);
        self.0.store(value.wrapping_add(n), Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// How a held statement ended, for the approvals counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalResult {
    Approved,
    Denied,
    TimedOut,
    Cancelled,
    Withdrawn,
}

impl ApprovalResult {
    pub const ALL: [ApprovalResult; 5] = [
        ApprovalResult::Approved,
        ApprovalResult::Denied,
        ApprovalResult::TimedOut,
        ApprovalResult::Cancelled,
        ApprovalResult::Withdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalResult::Approved => "approved",
            ApprovalResult::Denied => "denied",
            ApprovalResult::TimedOut => "timeout",
            ApprovalResult::Cancelled => "cancelled",
            ApprovalResult::Withdrawn => "withdrawn",
        }
    }
}

/// One worker's counters. Aligned so two workers never share a cache line.
#[repr(align(128))]
#[derive(Default)]
pub struct WorkerMetrics {
    pub connections_opened: OwnedCounter,
    pub connections_closed: OwnedCounter,
    pub statements_allowed: OwnedCounter,
    pub statements_blocked: OwnedCounter,
    pub statements_held: OwnedCounter,
    pub bytes_from_agents: OwnedCounter,
    pub bytes_to_agents: OwnedCounter,
    pub errors_downstream: OwnedCounter,
    pub errors_upstream: OwnedCounter,
    pub errors_internal: OwnedCounter,
    approvals: [OwnedCounter; 5],
    approval_wait_buckets: [OwnedCounter; APPROVAL_WAIT_BUCKETS_SECONDS.len()],
    approval_wait_count: OwnedCounter,
    approval_wait_sum_ms: OwnedCounter,
}

impl WorkerMetrics {
    pub fn error(&self, source: crate::session::ErrorSource) {
        use crate::session::ErrorSource;
        match source {
            ErrorSource::Downstream => self.errors_downstream.add(1),
            ErrorSource::Upstream => self.errors_upstream.add(1),
            ErrorSource::Internal => self.errors_internal.add(1),
        }
    }

    /// Records how a held statement ended and how long it waited.
    pub fn approval(&self, result: ApprovalResult, wait_ms: u64) {
        let index = ApprovalResult::ALL
            .iter()
            .position(|r| *r == result)
            .expect("every result is listed");
        self.approvals[index].add(1);
        // Buckets are stored non-cumulatively and summed on scrape.
        let seconds = wait_ms as f64 / 1000.0;
        if let Some(bucket) = APPROVAL_WAIT_BUCKETS_SECONDS
            .iter()
            .position(|bound| seconds <= *bound)
        {
            self.approval_wait_buckets[bucket].add(1);
        }
        self.approval_wait_count.add(1);
        self.approval_wait_sum_ms.add(wait_ms);
    }
}

/// Counters of the admin listener and the webhook sender.
#[derive(Default)]
pub struct ServiceMetrics {
    pub admin_requests: AtomicU64,
    pub admin_unauthorized: AtomicU64,
    pub admin_forbidden: AtomicU64,
    pub admin_rejected_connections: AtomicU64,
    pub webhook_sent: AtomicU64,
    pub webhook_failed: AtomicU64,
    pub webhook_dropped: AtomicU64,
}

impl ServiceMetrics {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// All metrics of the process.
pub struct Metrics {
    workers: Box<[WorkerMetrics]>,
    pub service: ServiceMetrics,
}

impl Metrics {
    pub fn new(workers: usize) -> Self {
        Metrics {
            workers: (0..workers).map(|_| WorkerMetrics::default()).collect(),
            service: ServiceMetrics::default(),
        }
    }

    /// The block owned by worker `index`.
    pub fn worker(&self, index: usize) -> &WorkerMetrics {
        &self.workers[index]
    }

    fn sum(&self, f: impl Fn(&WorkerMetrics) -> &OwnedCounter) -> u64 {
        self.workers
            .iter()
            .map(|w| f(w).get())
            .fold(0u64, u64::wrapping_add)
    }

    /// The Prometheus text exposition (format 0.0.4). `pending_approvals`
    /// comes from the approval registry.
    pub fn render(&self, pending_approvals: usize) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, value) in samples {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            }
        };
        let opened = self.sum(|w| &w.connections_opened);
        let closed = self.sum(|w| &w.connections_closed);
        counter(
            &mut out,
            "sluice_connections_total",
            "Agent connections accepted.",
            &[("", opened)],
        );
        let _ = writeln!(
            out,
            "# HELP sluice_connections_active Agent connections open now.\n# TYPE sluice_connections_active gauge\nsluice_connections_active {}",
            opened.saturating_sub(closed)
        );
        counter(
            &mut out,
            "sluice_statements_total",
            "Statements (Query, Execute, FunctionCall) by policy decision.",
            &[
                ("decision=\"allow\"", self.sum(|w| &w.statements_allowed)),
                ("decision=\"block\"", self.sum(|w| &w.statements_blocked)),
                ("decision=\"approve\"", self.sum(|w| &w.statements_held)),
            ],
        );
        let results: Vec<(String, u64)> = ApprovalResult::ALL
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    format!("result=\"{}\"", r.as_str()),
                    self.sum(|w| &w.approvals[i]),
                )
            })
            .collect();
        let results: Vec<(&str, u64)> = results.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        counter(
            &mut out,
            "sluice_approvals_total",
            "Held statements by how they ended.",
            &results,
        );
        let _ = writeln!(
            out,
            "# HELP sluice_approvals_pending Statements waiting for a human decision now.\n# TYPE sluice_approvals_pending gauge\nsluice_approvals_pending {pending_approvals}"
        );
        let _ = writeln!(
            out,
            "# HELP sluice_approval_wait_seconds Time held statements waited for their outcome.\n# TYPE sluice_approval_wait_seconds histogram"
        );
        let mut cumulative = 0u64;
        for (i, bound) in APPROVAL_WAIT_BUCKETS_SECONDS.iter().enumerate() {
            cumulative += self.sum(|w| &w.approval_wait_buckets[i]);
            let _ = writeln!(
                out,
                "sluice_approval_wait_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.sum(|w| &w.approval_wait_count);
        let _ = writeln!(
            out,
            "sluice_approval_wait_seconds_bucket{{le=\"+Inf\"}} {count}\nsluice_approval_wait_seconds_sum {}\nsluice_approval_wait_seconds_count {count}",
            self.sum(|w| &w.approval_wait_sum_ms) as f64 / 1000.0
        );
        counter(
            &mut out,
            "sluice_bytes_total",
            "Protocol bytes relayed, by direction.",
            &[
                (
                    "direction=\"from_agents\"",
                    self.sum(|w| &w.bytes_from_agents),
                ),
                ("direction=\"to_agents\"", self.sum(|w| &w.bytes_to_agents)),
            ],
        );
        counter(
            &mut out,
            "sluice_errors_total",
            "Sessions ended by an error, by where it came from.",
            &[
                ("source=\"downstream\"", self.sum(|w| &w.errors_downstream)),
                ("source=\"upstream\"", self.sum(|w| &w.errors_upstream)),
                ("source=\"internal\"", self.sum(|w| &w.errors_internal)),
            ],
        );
        let service = &self.service;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            &mut out,
            "sluice_admin_requests_total",
            "Admin API requests, and those refused for authentication (401) or group (403).",
            &[
                ("outcome=\"all\"", load(&service.admin_requests)),
                (
                    "outcome=\"unauthorized\"",
                    load(&service.admin_unauthorized),
                ),
                ("outcome=\"forbidden\"", load(&service.admin_forbidden)),
            ],
        );
        counter(
            &mut out,
            "sluice_admin_rejected_connections_total",
            "Admin connections closed because admin.connections_max were open.",
            &[("", load(&service.admin_rejected_connections))],
        );
        counter(
            &mut out,
            "sluice_webhook_notifications_total",
            "Webhook notifications of new approvals, by outcome.",
            &[
                ("outcome=\"sent\"", load(&service.webhook_sent)),
                ("outcome=\"failed\"", load(&service.webhook_failed)),
                ("outcome=\"dropped\"", load(&service.webhook_dropped)),
            ],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_workers_and_renders_a_cumulative_histogram() {
        let metrics = Metrics::new(2);
        metrics.worker(0).statements_allowed.add(3);
        metrics.worker(1).statements_allowed.add(4);
        metrics.worker(0).approval(ApprovalResult::Approved, 2_000);
        metrics.worker(1).approval(ApprovalResult::Denied, 400);
        metrics
            .worker(1)
            .approval(ApprovalResult::TimedOut, 10_000_000);
        let text = metrics.render(1);
        assert!(text.contains("sluice_statements_total{decision=\"allow\"} 7\n"));
        assert!(text.contains("sluice_approval_wait_seconds_bucket{le=\"1\"} 1\n"));
        assert!(text.contains("sluice_approval_wait_seconds_bucket{le=\"5\"} 2\n"));
        assert!(text.contains("sluice_approval_wait_seconds_bucket{le=\"3600\"} 2\n"));
        assert!(text.contains("sluice_approval_wait_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("sluice_approval_wait_seconds_count 3\n"));
        assert!(text.contains("sluice_approvals_total{result=\"timeout\"} 1\n"));
        assert!(text.contains("sluice_approvals_pending 1\n"));
    }
}
