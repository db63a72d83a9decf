//! One connection's exchange, shared by both protocols: a writer that
//! sends requests (as fast as pipeline slots free up, or on an open-loop
//! timetable) and a reader task that feeds responses to a sans-IO scanner
//! and records each completion against its request's intended start.
//!
//! The two halves share a queue of intended start times: the writer pushes
//! one per request sent, the reader pops one per response completed.
//! Responses come back in request order on one connection (PostgreSQL and
//! HTTP/1.1 both guarantee that), so the queue pairs them exactly.

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    rc::Rc,
    sync::{atomic::Ordering, Arc, Condvar, Mutex},
    task::{Poll, Waker},
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use sluice::transport::{TransportReader, TransportWriter};

use crate::{
    schedule::{latency, Schedule},
    stats::{LiveCounters, ThreadReport},
};

/// Appends the next request's wire bytes.
pub trait Requests {
    fn append(&mut self, out: &mut BytesMut);
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The server answered with an error (ErrorResponse, HTTP >= 400).
    Failure(String),
}

/// A sans-IO response scanner: consumes bytes, reports completions in order.
pub trait Responses {
    fn feed(&mut self, input: &[u8], done: &mut dyn FnMut(Outcome)) -> Result<(), String>;
}

/// An established connection, plus bytes that arrived after its set-up.
pub struct Connection {
    pub reader: TransportReader,
    pub writer: TransportWriter,
    pub leftover: BytesMut,
}

/// The measured window of a thread.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub start: Instant,
    /// Requests intended before this are warmup and not recorded.
    pub measure_from: Instant,
    /// No request is sent at or after this; completions after it do not
    /// count towards throughput.
    pub deadline: Instant,
    /// Requests still unanswered at this point are counted as failed.
    pub drain_until: Instant,
}

impl Timing {
    pub fn new(start: Instant, warmup: Duration, duration: Duration, drain: Duration) -> Timing {
        let measure_from = start + warmup;
        let deadline = measure_from + duration;
        Timing {
            start,
            measure_from,
            deadline,
            drain_until: deadline + drain,
        }
    }
}

/// Per-thread measurement state shared by the thread's connections.
pub struct ThreadState {
    pub report: RefCell<ThreadReport>,
    pub live: Arc<LiveCounters>,
    pub timing: Timing,
}

impl ThreadState {
    pub fn new(live: Arc<LiveCounters>, timing: Timing) -> ThreadState {
        ThreadState {
            report: RefCell::new(ThreadReport::new()),
            live,
            timing,
        }
    }

    /// Records one completed request.
    pub fn record(&self, intended: Instant, completed: Instant, outcome: &Outcome) {
        let timing = &self.timing;
        if intended < timing.measure_from || intended >= timing.deadline {
            return;
        }
        let mut report = self.report.borrow_mut();
        report
            .histogram
            .saturating_record(latency(intended, completed).as_nanos() as u64);
        // Throughput counts only what completed inside the window; late
        // completions still count in the histogram so a stall at the end
        // is not hidden.
        if completed <= timing.deadline {
            report.completed += 1;
            if let Outcome::Failure(message) = outcome {
                report.errors += 1;
                report.sample_error(message.clone());
            }
        }
    }

    /// Records requests that never completed, and why.
    pub fn record_failure(&self, count: u64, message: String) {
        let mut report = self.report.borrow_mut();
        report.failed += count;
        report.sample_error(message);
        self.live.errors.fetch_add(count, Ordering::Relaxed);
    }
}

/// A single-waiter wake-up between the two tasks of one connection.
#[derive(Default)]
pub struct Notify {
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    pub fn notify(&self) {
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    pub async fn wait_until(&self, mut ready: impl FnMut() -> bool) {
        std::future::poll_fn(|cx| {
            if ready() {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

struct Shared {
    in_flight: RefCell<VecDeque<Instant>>,
    pipeline: usize,
    /// When the pipeline last went from full to not full.
    slot_freed_at: Cell<Instant>,
    notify: Notify,
    reader_done: Cell<bool>,
    stopping: Cell<bool>,
}

/// How requests are paced.
pub enum Pacing {
    Closed,
    Open(Schedule),
}

/// Runs one connection until the deadline (plus drain), recording into
/// `thread`. `goodbye` is sent before closing (PostgreSQL's Terminate).
pub async fn exchange<Q, R>(
    connection: Connection,
    mut requests: Q,
    responses: R,
    pipeline: usize,
    mut pacing: Pacing,
    thread: Rc<ThreadState>,
    goodbye: Option<Bytes>,
) where
    Q: Requests,
    R: Responses + 'static,
{
    let Connection {
        reader,
        writer,
        leftover,
    } = connection;
    let shared = Rc::new(Shared {
        in_flight: RefCell::new(VecDeque::with_capacity(pipeline)),
        pipeline,
        slot_freed_at: Cell::new(Instant::now()),
        notify: Notify::default(),
        reader_done: Cell::new(false),
        stopping: Cell::new(false),
    });
    let reading = monoio::spawn(read_loop(
        reader,
        leftover,
        responses,
        shared.clone(),
        thread.clone(),
    ));
    let timing = thread.timing;
    let mut out = BytesMut::with_capacity(4096);
    'sending: loop {
        if shared.reader_done.get() {
            break;
        }
        match &mut pacing {
            Pacing::Closed => {
                shared
                    .notify
                    .wait_until(|| {
                        shared.reader_done.get() || shared.in_flight.borrow().len() < pipeline
                    })
                    .await;
                let now = Instant::now();
                if shared.reader_done.get() || now >= timing.deadline {
                    break 'sending;
                }
                // Fill every free slot in one write.
                let mut queue = shared.in_flight.borrow_mut();
                while queue.len() < pipeline {
                    requests.append(&mut out);
                    queue.push_back(now);
                }
            }
            Pacing::Open(schedule) => {
                let due = schedule.next_intended();
                if due >= timing.deadline {
                    break 'sending;
                }
                let now = Instant::now();
                let mut start = due;
                if due > now {
                    monoio::time::sleep(due - now).await;
                    // The timer wheel has millisecond granularity, so the
                    // wake-up is late by up to a few milliseconds. That
                    // lateness is the generator's, not the server's: when
                    // a slot is free at wake-up, it is excluded by moving
                    // the start forward by the time slept past the moment
                    // the request could have gone (its due time, or when
                    // the server freed the slot if that was later; the
                    // server's part stays charged).
                    let woke = Instant::now();
                    if shared.in_flight.borrow().len() < pipeline {
                        let could_send = due.max(shared.slot_freed_at.get()).min(woke);
                        start = due + (woke - could_send);
                    }
                }
                // Waiting for a slot is the server's doing: charged in full
                // (coordinated omission correction).
                shared
                    .notify
                    .wait_until(|| {
                        shared.reader_done.get() || shared.in_flight.borrow().len() < pipeline
                    })
                    .await;
                if shared.reader_done.get() {
                    break 'sending;
                }
                requests.append(&mut out);
                shared.in_flight.borrow_mut().push_back(start);
            }
        }
        if let Err(e) = writer.write(out.split().freeze()).await {
            let unanswered = shared.in_flight.borrow().len() as u64;
            thread.record_failure(unanswered.max(1), format!("write failed: {e}"));
            shared.in_flight.borrow_mut().clear();
            break;
        }
    }
    // Drain: let requests in flight complete, up to drain_until.
    shared.stopping.set(true);
    shared.notify.notify();
    let remaining = timing.drain_until.saturating_duration_since(Instant::now());
    let _ = monoio::time::timeout(
        remaining,
        shared
            .notify
            .wait_until(|| shared.reader_done.get() || shared.in_flight.borrow().is_empty()),
    )
    .await;
    let unanswered = shared.in_flight.borrow().len() as u64;
    if unanswered > 0 && !shared.reader_done.get() {
        thread.record_failure(
            unanswered,
            format!(
                "{unanswered} requests unanswered {} ms after the end of the run",
                (timing.drain_until - timing.deadline).as_millis()
            ),
        );
    }
    shared.in_flight.borrow_mut().clear();
    if let Some(goodbye) = goodbye {
        let _ = monoio::time::timeout(Duration::from_millis(200), writer.write(goodbye)).await;
    }
    // shutdown(2) rather than close: the reader's pending read returns at
    // once, and the server sees an orderly FIN.
    writer.abort();
    reading.await;
}

async fn read_loop<R: Responses>(
    mut reader: TransportReader,
    mut buffer: BytesMut,
    mut responses: R,
    shared: Rc<Shared>,
    thread: Rc<ThreadState>,
) {
    loop {
        if !buffer.is_empty() {
            let now = Instant::now();
            let mut completed = 0u64;
            let mut failed = 0u64;
            let mut orphan = false;
            let result = responses.feed(&buffer, &mut |outcome| {
                let mut queue = shared.in_flight.borrow_mut();
                if queue.len() == shared.pipeline {
                    shared.slot_freed_at.set(now);
                }
                let Some(intended) = queue.pop_front() else {
                    orphan = true;
                    return;
                };
                drop(queue);
                completed += 1;
                if outcome != Outcome::Success {
                    failed += 1;
                }
                thread.record(intended, now, &outcome);
            });
            buffer.clear();
            if completed > 0 {
                thread
                    .live
                    .completed
                    .fetch_add(completed, Ordering::Relaxed);
                if failed > 0 {
                    thread.live.errors.fetch_add(failed, Ordering::Relaxed);
                }
                shared.notify.notify();
            }
            let problem = match result {
                Err(e) => Some(format!("protocol error from the server: {e}")),
                Ok(()) if orphan => Some("the server answered a request that was not sent".into()),
                Ok(()) => None,
            };
            if let Some(problem) = problem {
                let unanswered = shared.in_flight.borrow().len() as u64;
                thread.record_failure(unanswered.max(1), problem);
                shared.in_flight.borrow_mut().clear();
                break;
            }
        }
        if shared.stopping.get() && shared.in_flight.borrow().is_empty() {
            break;
        }
        match reader.read_into(&mut buffer).await {
            Ok(0) => {
                if !shared.stopping.get() || !shared.in_flight.borrow().is_empty() {
                    let unanswered = shared.in_flight.borrow().len() as u64;
                    thread.record_failure(
                        unanswered.max(1),
                        "the server closed the connection".to_string(),
                    );
                    shared.in_flight.borrow_mut().clear();
                }
                break;
            }
            Ok(n) => {
                // Bytes count towards throughput only inside the window.
                let now = Instant::now();
                if now >= thread.timing.measure_from && now <= thread.timing.deadline {
                    thread.report.borrow_mut().bytes_received += n as u64;
                }
                thread
                    .live
                    .bytes_received
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) => {
                if !shared.stopping.get() {
                    let unanswered = shared.in_flight.borrow().len() as u64;
                    thread.record_failure(unanswered.max(1), format!("read failed: {e}"));
                    shared.in_flight.borrow_mut().clear();
                }
                break;
            }
        }
    }
    shared.reader_done.set(true);
    shared.notify.notify();
}

/// Makes every thread start measuring at the same moment, after all
/// connections are set up; gives up after `timeout` so that a thread that
/// failed to start cannot hang the others.
#[derive(Clone)]
pub struct StartGate {
    state: Arc<(Mutex<usize>, Condvar)>,
    parties: usize,
}

impl StartGate {
    pub fn new(parties: usize) -> StartGate {
        StartGate {
            state: Arc::new((Mutex::new(0), Condvar::new())),
            parties,
        }
    }

    /// Blocks this thread until every party arrived or `timeout` passed.
    pub fn wait(&self, timeout: Duration) {
        let (lock, condvar) = &*self.state;
        let mut arrived = lock.lock().unwrap_or_else(|e| e.into_inner());
        *arrived += 1;
        if *arrived >= self.parties {
            condvar.notify_all();
            return;
        }
        let deadline = Instant::now() + timeout;
        while *arrived < self.parties {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            arrived = condvar
                .wait_timeout(arrived, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

/// Spreads `connections` over `threads`: the indices thread `thread` owns.
pub fn connections_of_thread(connections: usize, threads: usize, thread: usize) -> Vec<usize> {
    (0..connections).filter(|i| i % threads == thread).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_spread_evenly() {
        assert_eq!(connections_of_thread(5, 2, 0), vec![0, 2, 4]);
        assert_eq!(connections_of_thread(5, 2, 1), vec![1, 3]);
    }

    #[test]
    fn only_the_window_is_recorded() {
        let start = Instant::now();
        let timing = Timing::new(
            start,
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(1),
        );
        let thread = ThreadState::new(Arc::new(LiveCounters::default()), timing);
        let at = |ms: u64| start + Duration::from_millis(ms);
        // Warmup: not recorded.
        thread.record(at(500), at(600), &Outcome::Success);
        // Inside: recorded and counted.
        thread.record(at(1500), at(1510), &Outcome::Success);
        thread.record(at(1600), at(1700), &Outcome::Failure("42P01".into()));
        // Intended inside, completed in the drain: in the histogram only.
        thread.record(at(2990), at(3200), &Outcome::Success);
        // Intended after the deadline: nothing.
        thread.record(at(3100), at(3150), &Outcome::Success);
        let report = thread.report.borrow();
        assert_eq!(report.histogram.len(), 3);
        assert_eq!(report.completed, 2);
        assert_eq!(report.errors, 1);
        assert_eq!(report.error_samples, vec!["42P01".to_string()]);
        assert!(report.histogram.max() >= 209_000_000);
    }

    #[test]
    fn the_start_gate_opens_for_all_or_after_its_timeout() {
        let gate = StartGate::new(2);
        let other = gate.clone();
        let handle = std::thread::spawn(move || other.wait(Duration::from_secs(10)));
        gate.wait(Duration::from_secs(10));
        handle.join().unwrap();
        let lonely = StartGate::new(2);
        let before = Instant::now();
        lonely.wait(Duration::from_millis(50));
        assert!(before.elapsed() >= Duration::from_millis(50));
    }
}
