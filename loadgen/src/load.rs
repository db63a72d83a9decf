//! A load run, protocol-independent: connect every connection, start all
//! threads at once, run the exchanges, merge the threads' reports into a
//! [`Summary`].

use std::{
    rc::Rc,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};

use crate::{
    cli::LoadSettings,
    driver::{
        connections_of_thread, exchange, Connection, Outcome, Pacing, Requests, Responses,
        StartGate, ThreadState, Timing,
    },
    runtime,
    schedule::Schedule,
    stats::{spawn_progress, Latency, LiveCounters, Summary, ThreadReport},
};

/// What a protocol contributes to a run.
#[allow(async_fn_in_trait)]
pub trait Protocol: Send + Sync + 'static {
    type Requests: Requests + 'static;
    type Responses: Responses + 'static;

    /// Opens and sets up connection `index` (TLS, authentication, prepared
    /// statements), ready for requests.
    async fn connect(&self, index: usize) -> Result<Connection, String>;
    fn requests(&self, index: usize) -> Self::Requests;
    fn responses(&self) -> Self::Responses;
    /// Sent before a connection is closed.
    fn goodbye(&self) -> Option<Bytes>;
    /// Every request opens a new connection (set-up cost is the measurement).
    fn reconnect(&self) -> bool {
        false
    }
}

/// Labels of the summary.
pub struct RunLabels {
    pub protocol: &'static str,
    pub target: String,
    pub workload: String,
}

/// Sends `request` and reads until exactly one response completed.
pub async fn round_trip<R: Responses>(
    connection: &mut Connection,
    request: Bytes,
    responses: &mut R,
) -> Result<Outcome, String> {
    connection
        .writer
        .write(request)
        .await
        .map_err(|e| format!("write failed: {e}"))?;
    let mut buffer = std::mem::take(&mut connection.leftover);
    loop {
        let mut outcome = None;
        let mut extra = false;
        if !buffer.is_empty() {
            responses.feed(&buffer, &mut |o| {
                if outcome.is_none() {
                    outcome = Some(o);
                } else {
                    extra = true;
                }
            })?;
            buffer.clear();
        }
        if extra {
            return Err("the server answered more than was asked".into());
        }
        if let Some(outcome) = outcome {
            return Ok(outcome);
        }
        match connection.reader.read_into(&mut buffer).await {
            Ok(0) => return Err("the server closed the connection".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
}

/// Runs the load and returns the merged summary.
pub fn run_load<P: Protocol>(
    protocol: Arc<P>,
    load: &LoadSettings,
    labels: RunLabels,
) -> Result<Summary, String> {
    let uring = runtime::uring_available();
    // Preflight: one connection from this thread, so that an unreachable
    // target or bad credentials fail at once with a clear message.
    if !protocol.reconnect() {
        let preflight = protocol.clone();
        let timeout = load.connect_timeout;
        let outcome = runtime::block_on(uring, async move {
            match monoio::time::timeout(timeout, preflight.connect(usize::MAX)).await {
                Ok(Ok(connection)) => {
                    if let Some(goodbye) = preflight.goodbye() {
                        let _ = connection.writer.write(goodbye).await;
                    }
                    connection.writer.abort();
                    Ok(())
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("timed out after {} ms", timeout.as_millis())),
            }
        })
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
        outcome.map_err(|e| format!("cannot connect to {}: {e}", labels.target))?;
    }
    let live: Vec<Arc<LiveCounters>> = (0..load.threads)
        .map(|_| Arc::new(LiveCounters::default()))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let progress = (!load.quiet && !load.json).then(|| {
        spawn_progress(
            live.clone(),
            stop.clone(),
            Instant::now(),
            load.warmup + load.duration,
        )
    });
    let gate = StartGate::new(load.threads);
    let settings = load.clone();
    let thread_live = live.clone();
    let results = runtime::run_on_threads(load.threads, &load.cpus, "loadgen", move |thread| {
        run_thread(
            protocol.clone(),
            settings.clone(),
            thread,
            gate.clone(),
            thread_live[thread].clone(),
        )
    });
    stop.store(true, Ordering::Relaxed);
    if let Some(progress) = progress {
        let _ = progress.join();
    }
    let mut report = ThreadReport::new();
    for thread_report in results? {
        report.merge(thread_report);
    }
    let seconds = load.duration.as_secs_f64();
    let summary = Summary {
        protocol: labels.protocol,
        target: labels.target,
        workload: labels.workload,
        loop_kind: if load.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        rate_target: load.rate,
        threads: load.threads,
        connections: load.connections,
        pipeline: load.pipeline,
        io_driver: runtime::driver_name(uring),
        duration_s: seconds,
        requests: report.completed,
        errors: report.errors,
        failed: report.failed,
        requests_per_second: report.completed as f64 / seconds,
        bytes_received: report.bytes_received,
        bytes_per_second: report.bytes_received as f64 / seconds,
        latency_us: Latency::from_histogram(&report.histogram),
        error_samples: report.error_samples,
    };
    Ok(summary)
}

/// Prints the summary, and turns a run in which nothing succeeded into an error.
pub fn finish(summary: &Summary, json: bool) -> Result<(), String> {
    if json {
        println!(
            "{}",
            serde_json::to_string(summary).map_err(|e| format!("cannot encode JSON: {e}"))?
        );
    } else {
        print!("{}", summary.table());
    }
    if summary.requests == summary.errors && (summary.errors > 0 || summary.failed > 0) {
        return Err(format!(
            "no request succeeded: {}",
            summary.error_samples.join("; ")
        ));
    }
    if summary.requests == 0 {
        return Err("no request completed within the run".to_string());
    }
    Ok(())
}

async fn run_thread<P: Protocol>(
    protocol: Arc<P>,
    load: LoadSettings,
    thread: usize,
    gate: StartGate,
    live: Arc<LiveCounters>,
) -> ThreadReport {
    let mine = connections_of_thread(load.connections, load.threads, thread);
    let mut connections = Vec::with_capacity(mine.len());
    if !protocol.reconnect() {
        let handles: Vec<_> = mine
            .iter()
            .map(|&index| {
                let protocol = protocol.clone();
                let timeout = load.connect_timeout;
                monoio::spawn(async move {
                    match monoio::time::timeout(timeout, protocol.connect(index)).await {
                        Ok(result) => result,
                        Err(_) => Err(format!(
                            "connect timed out after {} ms",
                            timeout.as_millis()
                        )),
                    }
                })
            })
            .collect();
        for handle in handles {
            connections.push(Some(handle.await));
        }
    } else {
        connections.resize_with(mine.len(), || None);
    }
    // Every thread starts measuring at the same moment, after set-up.
    gate.wait(load.connect_timeout + Duration::from_secs(5));
    let timing = Timing::new(Instant::now(), load.warmup, load.duration, load.drain);
    let state = Rc::new(ThreadState::new(live, timing));
    let mut tasks = Vec::with_capacity(mine.len());
    for (&index, connection) in mine.iter().zip(connections) {
        let pacing = match load.rate {
            Some(rate) => Pacing::Open(Schedule::open(timing.start, rate, load.connections, index)),
            None => Pacing::Closed,
        };
        let state = state.clone();
        let protocol = protocol.clone();
        let pipeline = load.pipeline;
        let connect_timeout = load.connect_timeout;
        match connection {
            Some(Ok(connection)) => tasks.push(monoio::spawn(async move {
                exchange(
                    connection,
                    protocol.requests(index),
                    protocol.responses(),
                    pipeline,
                    pacing,
                    state,
                    protocol.goodbye(),
                )
                .await
            })),
            Some(Err(e)) => state.record_failure(1, format!("connect: {e}")),
            None => tasks.push(monoio::spawn(async move {
                reconnect_loop(protocol, index, pacing, state, connect_timeout).await
            })),
        }
    }
    for task in tasks {
        task.await;
    }
    match Rc::try_unwrap(state) {
        Ok(state) => state.report.into_inner(),
        // Unreachable once every task finished; an empty report is the
        // honest answer if it ever happened.
        Err(_) => ThreadReport::new(),
    }
}

/// `--reconnect`: each request opens its own connection, runs one request
/// and closes. The latency is the whole set-up plus the request.
async fn reconnect_loop<P: Protocol>(
    protocol: Arc<P>,
    index: usize,
    mut pacing: Pacing,
    state: Rc<ThreadState>,
    connect_timeout: Duration,
) {
    let timing = state.timing;
    let mut requests = protocol.requests(index);
    loop {
        let intended = match &mut pacing {
            Pacing::Closed => Instant::now(),
            Pacing::Open(schedule) => {
                let due = schedule.next_intended();
                let now = Instant::now();
                if due > now && due < timing.deadline {
                    monoio::time::sleep(due - now).await;
                }
                due
            }
        };
        if intended >= timing.deadline {
            break;
        }
        let attempt = async {
            let mut connection = protocol.connect(index).await?;
            let mut out = BytesMut::new();
            requests.append(&mut out);
            let mut responses = protocol.responses();
            let outcome = round_trip(&mut connection, out.freeze(), &mut responses).await?;
            if let Some(goodbye) = protocol.goodbye() {
                let _ = connection.writer.write(goodbye).await;
            }
            connection.writer.abort();
            Ok::<Outcome, String>(outcome)
        };
        match monoio::time::timeout(connect_timeout, attempt).await {
            Ok(Ok(outcome)) => {
                let now = Instant::now();
                state.record(intended, now, &outcome);
                state.live.completed.fetch_add(1, Ordering::Relaxed);
                if outcome != Outcome::Success {
                    state.live.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Err(e)) => state.record_failure(1, e),
            Err(_) => state.record_failure(
                1,
                format!(
                    "connection set-up timed out after {} ms",
                    connect_timeout.as_millis()
                ),
            ),
        }
    }
}
