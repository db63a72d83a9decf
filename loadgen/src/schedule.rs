//! When each request is meant to start.
//!
//! Closed loop: a request starts as soon as a pipeline slot is free, so its
//! intended start is the moment it is sent. Open loop: requests are due at
//! a fixed rate whether or not earlier ones were answered; the n-th due
//! time depends only on n, never on how late the previous requests were.
//! Latency is then measured from the due time, so a stall that delays the
//! sends behind it shows up in the histogram instead of being hidden
//! ("coordinated omission").

use std::time::{Duration, Instant};

/// The open-loop timetable of one connection.
#[derive(Debug, Clone)]
pub struct Schedule {
    first: Instant,
    interval_ns: f64,
    issued: u64,
}

impl Schedule {
    /// A connection's share of `rate` (requests per second over all
    /// `connections`). Connection `index` is offset by `index / connections`
    /// of an interval so that the connections do not all fire at once.
    pub fn open(start: Instant, rate: f64, connections: usize, index: usize) -> Schedule {
        let interval_ns = 1e9 * connections as f64 / rate;
        let offset_ns = interval_ns * index as f64 / connections as f64;
        Schedule {
            first: start + Duration::from_nanos(offset_ns as u64),
            interval_ns,
            issued: 0,
        }
    }

    /// The due time of request `n` (counting from 0).
    pub fn intended(&self, n: u64) -> Instant {
        self.first + Duration::from_nanos((n as f64 * self.interval_ns) as u64)
    }

    /// The due time of the next request; advances the timetable.
    pub fn next_intended(&mut self) -> Instant {
        let at = self.intended(self.issued);
        self.issued += 1;
        at
    }

    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns as u64)
    }
}

/// Latency of a request: from its intended start to its completion. A
/// completion that is somehow earlier (clock granularity) counts as zero.
pub fn latency(intended: Instant, completed: Instant) -> Duration {
    completed.saturating_duration_since(intended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_follow_the_rate_and_offsets_spread_connections() {
        let start = Instant::now();
        // 1000/s over 4 connections: each connection every 4 ms, offset by 1 ms.
        let mut first = Schedule::open(start, 1000.0, 4, 0);
        let mut second = Schedule::open(start, 1000.0, 4, 1);
        assert_eq!(first.interval(), Duration::from_millis(4));
        assert_eq!(first.next_intended(), start);
        assert_eq!(first.next_intended(), start + Duration::from_millis(4));
        assert_eq!(second.next_intended(), start + Duration::from_millis(1));
        assert_eq!(second.next_intended(), start + Duration::from_millis(5));
    }

    #[test]
    fn a_stall_is_charged_to_every_request_queued_behind_it() {
        // 100/s on one connection: due at 0, 10, 20, 30 ms. The server
        // stalls for 35 ms on the first request; the next three are sent
        // late, all answered at once at 36 ms. Measured from the due times,
        // the latencies are 35, 26, 16 and 6 ms; measured from the moment
        // they were actually sent (35 ms), the last three would look like
        // 1 ms and the stall would vanish from the percentiles.
        let start = Instant::now();
        let mut schedule = Schedule::open(start, 100.0, 1, 0);
        let due: Vec<Instant> = (0..4).map(|_| schedule.next_intended()).collect();
        let first_answer = start + Duration::from_millis(35);
        let rest_answered = start + Duration::from_millis(36);
        assert_eq!(latency(due[0], first_answer), Duration::from_millis(35));
        let rest: Vec<Duration> = due[1..]
            .iter()
            .map(|&at| latency(at, rest_answered))
            .collect();
        assert_eq!(
            rest,
            vec![
                Duration::from_millis(26),
                Duration::from_millis(16),
                Duration::from_millis(6)
            ]
        );
        // The timetable did not slip because of the stall.
        assert_eq!(schedule.next_intended(), start + Duration::from_millis(40));
    }

    #[test]
    fn early_completion_counts_as_zero() {
        let now = Instant::now();
        assert_eq!(latency(now + Duration::from_millis(1), now), Duration::ZERO);
    }
}
