//! Recording: every session becomes evidence in the ledger (`sluice-ledger`).
//!
//! Writer design (thread-per-core friendly, one coherent history):
//!
//! ```text
//!  worker 0 ─┐ per-worker batch (RefCell<Vec<Record>>, no lock), flushed once per
//!  worker 1 ─┤ event-loop turn by a local task ──▶ bounded channel ──▶ ledger
//!  worker N ─┘                                                     writer thread
//!                                                                  (one Merkle tree,
//!  ◀── outcomes in a per-worker mailbox, one wake per worker per group ─ group commit)
//! ```
//!
//! Sessions append records to their worker's batch without any lock. A local
//! flush task, scheduled when the batch becomes non-empty, runs after every
//! other ready task of that turn, so all sessions that produced records in
//! the same turn share one batch. The writer thread drains every queued batch,
//! appends them in arrival order, and issues one durability barrier (one
//! fsync) for all of them: group commit across sessions and workers.
//!
//! Durability modes:
//! - `strict`: a session forwards a statement only after the batch holding
//!   its record is durable.
//! - `batched`: sessions do not wait; the writer makes records durable at
//!   least every `batch_interval_ms`. A crash can lose up to that window of
//!   records for statements that were already forwarded.
//!
//! What a strict statement waits for, and how it is kept short: the batch's
//! trip to the writer thread, the append (hashing, zstd), one write and one
//! fdatasync, and the trip back. The ledger keeps zeros written ahead of the
//! open segment (`preallocate_bytes`), so fdatasync only flushes data and
//! never waits for a journal commit of a new file size (on ext4 that commit
//! also needs the jbd2 thread to be scheduled, which on busy cores costs
//! more than the flush). The writer thread runs at a raised priority
//! (`writer_nice`, -10 by default) because every strict statement waits on
//! it, while it needs little CPU: on busy cores a normal-priority writer
//! queues behind the database and the clients at every group commit.
//!
//! Fail closed: when the ledger cannot write (disk full, I/O error, fsync
//! error), the writer reports the fault to every waiting batch and marks the
//! ledger unavailable; sessions refuse new statements (53100 / 58030) until
//! the writer has reopened the ledger (which recovers its torn tail) and a
//! write succeeds again. No record is dropped meanwhile: the writer keeps
//! every record it took (those of the failed group commit, the responses
//! and refusals that follow) and appends what the reopened ledger lacks of
//! them, by each session's sequence numbers. The kept bytes count against
//! the workers' queues, so a long outage makes sessions wait instead of
//! growing memory.

use std::{
    cell::{Cell, RefCell},
    future::Future,
    path::PathBuf,
    pin::Pin,
    rc::Rc,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering},
        mpsc, Arc, Mutex,
    },
    task::{Context, Poll, Waker},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use sluice_ledger::{FsStorage, LedgerWriter, Record, SignerKey, WriterConfig};

use crate::protocol::pg::sqlstate;

/// Batches waiting in the channel to the writer thread, across all workers.
pub const CHANNEL_BATCHES_MAX: usize = 4096;
/// How often an unavailable ledger is reopened.
const REOPEN_INTERVAL: Duration = Duration::from_millis(500);
/// Upper bound on batches the writer takes into one group commit.
const GROUP_BATCHES_MAX: usize = CHANNEL_BATCHES_MAX;

/// How strictly statements wait for their records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    Strict,
    Batched,
}

/// What is kept of the data the agent received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerMessages {
    /// The bytes exactly as delivered.
    Full,
    /// A SHA-256 digest and byte count per delivered chunk.
    Digest,
}

/// What is kept of COPY FROM STDIN data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyData {
    Full,
    /// Only the COPY statement and a digest of the data.
    Statements,
}

/// The validated `[ledger]` settings.
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    pub directory: PathBuf,
    pub key_file: PathBuf,
    pub origin: String,
    pub durability: Durability,
    pub batch_interval_ms: u64,
    pub server_messages: ServerMessages,
    pub copy_data: CopyData,
    pub records_per_worker_max: usize,
    /// Record bytes a worker may have queued for the writer; beyond it the
    /// worker's sessions wait (backpressure) instead of growing memory.
    pub queued_bytes_per_worker_max: usize,
    pub segment_bytes_max: u64,
    pub segment_age_ms_max: u64,
    pub checkpoint_interval_ms: u64,
    /// Zeros kept written ahead of the segment's end (see the ledger's
    /// FORMAT.md): barriers then need no journal commit for a size change.
    pub preallocate_bytes: u64,
    /// Scheduling priority (nice) of the writer thread. Every strict
    /// statement waits for this thread; when the machine's cores are busy,
    /// a normal-priority writer queues behind them for each group commit.
    pub writer_nice: i32,
}

/// Why a record could not be made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    DiskFull,
    Io,
    /// Too many records queued on this worker: the writer is behind.
    Overloaded,
}

impl Fault {
    /// The SQLSTATE an agent receives for a statement refused because of this fault.
    pub fn sqlstate(&self) -> &'static str {
        match self.kind {
            FaultKind::DiskFull => sqlstate::DISK_FULL,
            FaultKind::Io => sqlstate::IO_ERROR,
            FaultKind::Overloaded => sqlstate::CONFIGURATION_LIMIT_EXCEEDED,
        }
    }
}

const STATUS_AVAILABLE: u8 = 0;
const STATUS_DISK_FULL: u8 = 1;
const STATUS_IO: u8 = 2;

fn classify(error: &sluice_ledger::Error) -> FaultKind {
    let source = match error {
        sluice_ledger::Error::Io { source, .. }
        | sluice_ledger::Error::SyncFailed { source, .. } => Some(source),
        _ => None,
    };
    match source.and_then(|s| s.raw_os_error()) {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => FaultKind::DiskFull,
        _ => FaultKind::Io,
    }
}

struct Batch {
    records: Vec<Record>,
    /// The submitting worker and the bytes the batch holds (for its
    /// mailbox's queued-bytes account).
    worker: usize,
    bytes: usize,
    /// Who waits for this batch: (worker index, batch sequence), or None.
    waiter: Option<(usize, u64)>,
}

/// Where the writer thread leaves outcomes for one worker. One wake per
/// worker per group commit, however many batches that worker had in it:
/// cross-thread wakes are system calls, and they add up under load.
#[derive(Default)]
struct Mailbox {
    outcomes: Mutex<Vec<(u64, Result<(), Fault>)>>,
    waker: futures_util::task::AtomicWaker,
    /// Record bytes submitted by the worker and not yet taken by the writer.
    queued_bytes: std::sync::atomic::AtomicUsize,
}

/// Approximate bytes a record holds in memory (payload plus overhead).
fn record_bytes(record: &Record) -> usize {
    const OVERHEAD_BYTES: usize = 96;
    OVERHEAD_BYTES
        + match &record.body {
            sluice_ledger::RecordBody::ClientMessage { bytes }
            | sluice_ledger::RecordBody::ServerMessage { bytes } => bytes.len(),
            sluice_ledger::RecordBody::PolicyDecision { statement, .. } => statement.len(),
            _ => 0,
        }
}

/// Tells the sessions waiting on `batches` how their batch ended (the
/// batches stay; their waiters are cleared).
fn notify_waiters(shared: &RecorderShared, batches: &mut [Batch], outcome: &Result<(), Fault>) {
    let mut touched = vec![false; shared.mailboxes.len()];
    for batch in batches.iter_mut() {
        if let Some((worker, sequence)) = batch.waiter.take() {
            if let Some(mailbox) = shared.mailboxes.get(worker) {
                mailbox
                    .outcomes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((sequence, outcome.clone()));
                touched[worker] = true;
            }
        }
    }
    for (worker, touched) in touched.into_iter().enumerate() {
        if touched {
            shared.mailboxes[worker].waker.wake();
        }
    }
}

/// Batches whose records are durable in the ledger: their bytes no longer
/// count against their workers' queues.
fn release(shared: &RecorderShared, batches: &mut Vec<Batch>) {
    for batch in batches.drain(..) {
        if let Some(mailbox) = shared.mailboxes.get(batch.worker) {
            mailbox
                .queued_bytes
                .fetch_sub(batch.bytes, Ordering::AcqRel);
        }
    }
}

/// Reopens the ledger after a fault and appends the records kept meanwhile
/// that it lacks, then makes them durable. A session's records reach the
/// ledger in sequence order, so after the reopen (which recovers the torn
/// tail) the ledger holds a prefix of each session: a kept record is
/// missing exactly when its sequence number is above the highest one the
/// ledger has for its session.
fn reopen(
    settings: &LedgerSettings,
    key_text: &str,
    kept: &[Batch],
) -> Result<LedgerWriter, sluice_ledger::Error> {
    let sessions: std::collections::HashSet<_> = kept
        .iter()
        .flat_map(|b| b.records.iter().map(|r| r.session))
        .collect();
    // The highest sequence number the ledger holds for each session with
    // kept records, gathered during the recovery scan itself so that the
    // log is read once.
    let mut high = std::collections::HashMap::new();
    let mut writer = open_writer_observing(settings, key_text, &mut |record| {
        let descriptor = &record.descriptor;
        if sessions.contains(&descriptor.session) {
            let entry = high.entry(descriptor.session).or_insert(0);
            *entry = u64::max(*entry, descriptor.sequence);
        }
    })?;
    let mut appended = 0usize;
    for record in kept.iter().flat_map(|b| b.records.iter()) {
        let present = high
            .get(&record.session)
            .is_some_and(|&highest| record.sequence <= highest);
        if !present {
            writer.append(record)?;
            appended += 1;
        }
    }
    writer.barrier()?;
    if !kept.is_empty() {
        tracing::info!(
            phase = "recording",
            records_appended = appended,
            "records kept while the ledger was unavailable are in the ledger"
        );
    }
    Ok(writer)
}

/// State shared by the workers and the writer thread.
pub struct RecorderShared {
    pub settings: LedgerSettings,
    sender: Mutex<Option<mpsc::SyncSender<Batch>>>,
    status: AtomicU8,
    mailboxes: Vec<Mailbox>,
    /// Set by `Recorder::stop` once the workers are gone. The writer cannot
    /// rely on every sender being dropped: a task left unfinished when a
    /// worker's runtime shuts down keeps its clone alive.
    stopping: AtomicBool,
    /// Records made durable so far (for logs and tests).
    pub durable_records: AtomicU64,
}

impl RecorderShared {
    /// The current fault, if the ledger is unavailable.
    pub fn fault(&self) -> Option<Fault> {
        match self.status.load(Ordering::Acquire) {
            STATUS_AVAILABLE => None,
            STATUS_DISK_FULL => Some(Fault {
                kind: FaultKind::DiskFull,
                message: "the ledger's disk is full".into(),
            }),
            _ => Some(Fault {
                kind: FaultKind::Io,
                message: "the ledger cannot be written".into(),
            }),
        }
    }
}

/// The process-wide recorder: the writer thread and its channel.
pub struct Recorder {
    pub shared: Arc<RecorderShared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("ledger signing key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("cannot open the ledger in {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("cannot start the ledger writer thread: {0}")]
    Thread(std::io::Error),
}

fn open_writer(
    settings: &LedgerSettings,
    key_text: &str,
) -> Result<LedgerWriter, sluice_ledger::Error> {
    open_writer_observing(settings, key_text, &mut |_| {})
}

/// [`open_writer`], showing `observe` every record the ledger holds (see
/// [`LedgerWriter::open_observing`]).
fn open_writer_observing(
    settings: &LedgerSettings,
    key_text: &str,
    observe: &mut dyn FnMut(&sluice_ledger::reader::ScannedRecord),
) -> Result<LedgerWriter, sluice_ledger::Error> {
    let key = SignerKey::parse_private(key_text)?;
    let mut config = WriterConfig::new(settings.origin.clone());
    config.segment_bytes_max = settings.segment_bytes_max;
    config.segment_age_ms_max = settings.segment_age_ms_max;
    config.checkpoint_interval_ms = settings.checkpoint_interval_ms;
    config.preallocate_bytes = settings.preallocate_bytes;
    let storage = FsStorage::new(settings.directory.clone());
    let (writer, report) = LedgerWriter::open_observing(
        Box::new(storage),
        key,
        config,
        Box::new(sluice_ledger::writer::SystemClock),
        observe,
    )?;
    tracing::info!(phase = "recording", report = ?report, tree_size = writer.tree_size(), "ledger opened");
    Ok(writer)
}

impl Recorder {
    /// Loads the key (refusing one readable by others), opens the ledger and
    /// starts the writer thread.
    pub fn start(settings: LedgerSettings, workers: usize) -> Result<Recorder, RecorderError> {
        let key = SignerKey::load(&settings.key_file).map_err(|e| RecorderError::Key {
            path: settings.key_file.display().to_string(),
            reason: e.to_string(),
        })?;
        let key_text = key.to_private_string();
        drop(key);
        let writer = open_writer(&settings, &key_text).map_err(|e| RecorderError::Open {
            path: settings.directory.display().to_string(),
            reason: e.to_string(),
        })?;
        let (sender, receiver) = mpsc::sync_channel(CHANNEL_BATCHES_MAX);
        let shared = Arc::new(RecorderShared {
            settings,
            sender: Mutex::new(Some(sender)),
            status: AtomicU8::new(STATUS_AVAILABLE),
            mailboxes: (0..workers).map(|_| Mailbox::default()).collect(),
            stopping: AtomicBool::new(false),
            durable_records: AtomicU64::new(0),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-ledger".into())
            .spawn(move || writer_thread(thread_shared, writer, key_text, receiver))
            .map_err(RecorderError::Thread)?;
        Ok(Recorder {
            shared,
            thread: Some(thread),
        })
    }

    /// Stops the writer after the workers are gone: flushes, signs a final
    /// checkpoint and closes the ledger.
    pub fn stop(mut self) {
        self.shared
            .sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.shared.stopping.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn writer_thread(
    shared: Arc<RecorderShared>,
    writer: LedgerWriter,
    key_text: String,
    receiver: mpsc::Receiver<Batch>,
) {
    let settings = shared.settings.clone();
    set_thread_nice(settings.writer_nice);
    let tick = Duration::from_millis(settings.batch_interval_ms.clamp(1, 1000));
    let mut writer = Some(writer);
    let mut last_reopen = Instant::now();
    let mut last_barrier = Instant::now();
    let mut unsynced = false;
    let mut group: Vec<Batch> = Vec::new();
    // Records taken while the ledger was unavailable (or in the group that
    // failed), kept until a reopened ledger has them: no record of what an
    // agent sent or received is dropped because the disk filled up. Their
    // bytes stay counted in their workers' queues, so sessions wait
    // (`wait_for_room`) instead of this growing without bound.
    let mut kept: Vec<Batch> = Vec::new();
    loop {
        let first = if settings.durability == Durability::Batched {
            // Nobody waits on a batched ledger: sleep for the interval and
            // take everything at once, so senders never have to wake this
            // thread (a system call and a context switch per batch).
            std::thread::sleep(tick);
            match receiver.try_recv() {
                Ok(batch) => Some(batch),
                Err(mpsc::TryRecvError::Empty) if shared.stopping.load(Ordering::Acquire) => break,
                Err(mpsc::TryRecvError::Empty) => None,
                Err(mpsc::TryRecvError::Disconnected) => break,
            }
        } else {
            match receiver.recv_timeout(tick) {
                Ok(batch) => Some(batch),
                // Stopping and nothing queued: every record has been taken.
                Err(mpsc::RecvTimeoutError::Timeout) if shared.stopping.load(Ordering::Acquire) => {
                    break
                }
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        };
        group.extend(first);
        while group.len() < GROUP_BATCHES_MAX {
            match receiver.try_recv() {
                Ok(batch) => group.push(batch),
                Err(_) => break,
            }
        }
        if writer.is_none() && last_reopen.elapsed() >= REOPEN_INTERVAL {
            last_reopen = Instant::now();
            match reopen(&settings, &key_text, &kept) {
                Ok(reopened) => {
                    writer = Some(reopened);
                    release(&shared, &mut kept);
                    shared.status.store(STATUS_AVAILABLE, Ordering::Release);
                    tracing::warn!(
                        phase = "recording",
                        "ledger available again: statements are accepted"
                    );
                }
                Err(e) => {
                    tracing::debug!(phase = "recording", error = %e, "ledger still unavailable");
                }
            }
        }
        let Some(active) = writer.as_mut() else {
            let fault = shared.fault().unwrap_or(Fault {
                kind: FaultKind::Io,
                message: "the ledger is unavailable".into(),
            });
            notify_waiters(&shared, &mut group, &Err(fault));
            kept.append(&mut group);
            continue;
        };
        let mut failure = None;
        let mut appended = 0u64;
        let mut waiting = false;
        'append: for batch in &group {
            waiting |= batch.waiter.is_some();
            for record in &batch.records {
                if let Err(e) = active.append(record) {
                    failure = Some(e);
                    break 'append;
                }
                appended += 1;
            }
        }
        unsynced |= appended > 0;
        let barrier_due = waiting
            || (unsynced
                && last_barrier.elapsed() >= Duration::from_millis(settings.batch_interval_ms));
        if failure.is_none() && barrier_due {
            match active.barrier() {
                Ok(durable) => {
                    unsynced = false;
                    last_barrier = Instant::now();
                    shared.durable_records.store(durable, Ordering::Release);
                }
                Err(e) => failure = Some(e),
            }
        } else if failure.is_none() {
            if let Err(e) = active.tick() {
                failure = Some(e);
            }
        }
        match failure {
            None => {
                notify_waiters(&shared, &mut group, &Ok(()));
                release(&shared, &mut group);
            }
            Some(error) => {
                let kind = classify(&error);
                shared.status.store(
                    if kind == FaultKind::DiskFull {
                        STATUS_DISK_FULL
                    } else {
                        STATUS_IO
                    },
                    Ordering::Release,
                );
                tracing::error!(
                    phase = "recording",
                    source = "internal",
                    error = %error,
                    "ledger write failed: refusing statements until it recovers"
                );
                let fault = Fault {
                    kind,
                    message: error.to_string(),
                };
                notify_waiters(&shared, &mut group, &Err(fault));
                kept.append(&mut group);
                // Never retry on the same writer: after a failed fsync the
                // page cache cannot be trusted. Reopening rereads the disk,
                // recovers the torn tail and appends what it lacks of the
                // kept records; the statements whose records failed were
                // refused and never forwarded.
                writer = None;
                unsynced = false;
                last_reopen = Instant::now();
            }
        }
    }
    if writer.is_none() && !kept.is_empty() {
        // Stopping while the ledger is unavailable: one last attempt.
        match reopen(&settings, &key_text, &kept) {
            Ok(reopened) => {
                writer = Some(reopened);
                release(&shared, &mut kept);
            }
            Err(e) => tracing::error!(
                phase = "recording",
                source = "internal",
                error = %e,
                records = kept.iter().map(|b| b.records.len()).sum::<usize>(),
                "stopping with records the unavailable ledger could not take: they are lost"
            ),
        }
    }
    if let Some(writer) = writer {
        match writer.close() {
            Ok(checkpoint) => tracing::info!(
                phase = "recording",
                tree_size = checkpoint.checkpoint.size,
                "ledger closed with a signed checkpoint"
            ),
            Err(e) => tracing::error!(phase = "recording", error = %e, "closing the ledger failed"),
        }
    }
}

/// Sets the calling thread's nice value. Raising priority needs root or
/// CAP_SYS_NICE; without it the writer runs at normal priority, which is
/// correct but slower under CPU contention, and says so once.
fn set_thread_nice(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: gettid has no preconditions; setpriority only reads its
    // arguments. PRIO_PROCESS with a thread id applies to that one thread
    // on Linux.
    let result = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
    };
    if result == 0 {
        tracing::info!(
            phase = "recording",
            nice,
            "ledger writer thread priority set"
        );
    } else {
        tracing::warn!(
            phase = "recording",
            nice,
            error = %std::io::Error::last_os_error(),
            "cannot raise the ledger writer thread's priority (needs CAP_SYS_NICE): strict mode waits longer when the cores are busy"
        );
    }
}

/// Where a submitted batch stands, awaited by the sessions that added to it.
pub struct BatchSlot {
    outcome: RefCell<Option<Result<(), Fault>>>,
    wakers: RefCell<Vec<Waker>>,
    on_resolve: RefCell<Option<Box<dyn FnOnce()>>>,
}

impl BatchSlot {
    fn new() -> Rc<Self> {
        Rc::new(BatchSlot {
            outcome: RefCell::new(None),
            wakers: RefCell::new(Vec::new()),
            on_resolve: RefCell::new(None),
        })
    }

    fn on_resolve(&self, callback: impl FnOnce() + 'static) {
        *self.on_resolve.borrow_mut() = Some(Box::new(callback));
    }

    fn resolve(&self, outcome: Result<(), Fault>) {
        if let Some(callback) = self.on_resolve.borrow_mut().take() {
            callback();
        }
        *self.outcome.borrow_mut() = Some(outcome);
        for waker in self.wakers.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// Resolves when the batch is durable (Ok) or failed (Err).
    pub fn wait(self: &Rc<Self>) -> SlotWait {
        SlotWait { slot: self.clone() }
    }
}

pub struct SlotWait {
    slot: Rc<BatchSlot>,
}

impl Future for SlotWait {
    type Output = Result<(), Fault>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(outcome) = self.slot.outcome.borrow().as_ref() {
            return Poll::Ready(outcome.clone());
        }
        self.slot.wakers.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}

/// A worker's side of the recorder: lock-free batching on the worker thread.
pub struct WorkerRecorder {
    pub shared: Arc<RecorderShared>,
    index: usize,
    next_sequence: Cell<u64>,
    /// Slots waiting for the writer, by batch sequence.
    waiting: RefCell<std::collections::HashMap<u64, Rc<BatchSlot>>>,
    listener_started: Cell<bool>,
    /// Bytes of the batch being filled.
    pending_bytes: Cell<usize>,
    /// Filled batches not yet in the writer's channel, oldest first.
    outbox: RefCell<std::collections::VecDeque<Outgoing>>,
    /// Whether a flush task is draining the outbox.
    sending: Cell<bool>,
    sender: mpsc::SyncSender<Batch>,
    pending: RefCell<Vec<Record>>,
    slot: RefCell<Rc<BatchSlot>>,
    flush_scheduled: Cell<bool>,
    /// Whether some session will wait on the batch being filled. Batches
    /// nobody waits on (responses, session close) ride along with the next
    /// group commit instead of forcing one of their own.
    waited: Cell<bool>,
    /// Records handed to the writer whose outcome is not yet known.
    in_flight: Rc<Cell<usize>>,
}

impl WorkerRecorder {
    pub fn new(shared: Arc<RecorderShared>, index: usize) -> Option<Rc<WorkerRecorder>> {
        if index >= shared.mailboxes.len() {
            return None;
        }
        let sender = shared
            .sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        Some(Rc::new(WorkerRecorder {
            shared,
            index,
            next_sequence: Cell::new(1),
            waiting: RefCell::new(std::collections::HashMap::new()),
            listener_started: Cell::new(false),
            pending_bytes: Cell::new(0),
            outbox: RefCell::new(std::collections::VecDeque::new()),
            sending: Cell::new(false),
            sender,
            pending: RefCell::new(Vec::new()),
            slot: RefCell::new(BatchSlot::new()),
            flush_scheduled: Cell::new(false),
            waited: Cell::new(false),
            in_flight: Rc::new(Cell::new(0)),
        }))
    }

    pub fn strict(&self) -> bool {
        self.shared.settings.durability == Durability::Strict
    }

    /// Waits (on a timer, costing no CPU) while this worker has more record
    /// bytes queued than `queued_bytes_per_worker_max`. The writer always
    /// drains its queue, failing batches at once when the ledger is
    /// unavailable, so the wait ends.
    pub async fn wait_for_room(&self) {
        let mailbox = &self.shared.mailboxes[self.index];
        while mailbox.queued_bytes.load(Ordering::Acquire)
            > self.shared.settings.queued_bytes_per_worker_max
        {
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Adds records to this turn's batch and returns the slot that resolves
    /// when they are durable (`wait`: the caller will await it; otherwise the
    /// records become durable with the next group commit or interval). Fails
    /// at once when this worker already has too many records outstanding
    /// (the records are not taken), and, for a batch someone waits for,
    /// when the ledger is unavailable (the records are taken).
    pub fn submit(
        self: &Rc<Self>,
        records: impl IntoIterator<Item = Record>,
        wait: bool,
    ) -> Result<Rc<BatchSlot>, Fault> {
        // While the ledger is unavailable, records are still taken: the
        // writer keeps them until it recovers, so the ledger shows what the
        // agent received and also what it attempted. A batch someone waits
        // for guards a statement that is not forwarded yet: its records are
        // taken as evidence of the attempt, and the call fails at once so
        // that the statement is refused.
        let refusal = if wait { self.shared.fault() } else { None };
        let outstanding = self.pending.borrow().len() + self.in_flight.get();
        if outstanding >= self.shared.settings.records_per_worker_max {
            return Err(Fault {
                kind: FaultKind::Overloaded,
                message: format!(
                    "more than {} records are waiting for the ledger on this worker",
                    self.shared.settings.records_per_worker_max
                ),
            });
        }
        let mut pending = self.pending.borrow_mut();
        let before = pending.len();
        pending.extend(records);
        let bytes: usize = pending[before..].iter().map(record_bytes).sum();
        drop(pending);
        self.pending_bytes.set(self.pending_bytes.get() + bytes);
        self.shared.mailboxes[self.index]
            .queued_bytes
            .fetch_add(bytes, Ordering::AcqRel);
        if wait && self.strict() && refusal.is_none() {
            self.waited.set(true);
        }
        if !self.flush_scheduled.replace(true) {
            monoio::spawn(flush(self.clone()));
        }
        match refusal {
            Some(fault) => Err(fault),
            None => Ok(self.slot.borrow().clone()),
        }
    }
}

/// Sends the worker's batch to the writer thread and resolves its slot.
async fn flush(recorder: Rc<WorkerRecorder>) {
    // Let every other ready task of this turn add its records first.
    YieldNow(false).await;
    recorder.flush_scheduled.set(false);
    let records = std::mem::take(&mut *recorder.pending.borrow_mut());
    let slot = std::mem::replace(&mut *recorder.slot.borrow_mut(), BatchSlot::new());
    if records.is_empty() {
        recorder.waited.set(false);
        slot.resolve(Ok(()));
        return;
    }
    let count = records.len();
    let waiter = if recorder.waited.replace(false) {
        let sequence = recorder.next_sequence.get();
        recorder.next_sequence.set(sequence + 1);
        recorder.waiting.borrow_mut().insert(sequence, slot.clone());
        if !recorder.listener_started.replace(true) {
            monoio::spawn(listen(recorder.clone()));
        }
        Some((recorder.index, sequence))
    } else {
        None
    };
    let bytes = recorder.pending_bytes.replace(0);
    let batch = Batch {
        records,
        worker: recorder.index,
        bytes,
        waiter,
    };
    recorder.in_flight.set(recorder.in_flight.get() + count);
    if waiter.is_some() {
        // The listener resolves the slot; in-flight accounting follows it.
        let in_flight = recorder.in_flight.clone();
        slot.on_resolve(move || in_flight.set(in_flight.get() - count));
    }
    // Batches leave the worker in the order they were filled, so a
    // session's records reach the ledger in sequence even when the channel
    // is full and several flushes wait: one sender drains the outbox.
    recorder
        .outbox
        .borrow_mut()
        .push_back(Outgoing { batch, slot, count });
    if !recorder.sending.replace(true) {
        send_outbox(&recorder).await;
        recorder.sending.set(false);
    }
}

/// A filled batch waiting to enter the writer's channel.
struct Outgoing {
    batch: Batch,
    slot: Rc<BatchSlot>,
    count: usize,
}

async fn send_outbox(recorder: &Rc<WorkerRecorder>) {
    loop {
        let Some(Outgoing { batch, slot, count }) = recorder.outbox.borrow_mut().pop_front() else {
            return;
        };
        let waited = batch.waiter.is_some();
        match recorder.sender.try_send(batch) {
            Ok(()) => {
                if !waited {
                    // Batched mode or nobody waits: the writer reports
                    // failures through the status; the records are handed over.
                    recorder.in_flight.set(recorder.in_flight.get() - count);
                    slot.resolve(Ok(()));
                }
            }
            Err(mpsc::TrySendError::Full(batch)) => {
                // The channel is bounded; when the writer is behind, wait in
                // short steps (a timer, not a spin) instead of growing memory.
                recorder
                    .outbox
                    .borrow_mut()
                    .push_front(Outgoing { batch, slot, count });
                monoio::time::sleep(Duration::from_micros(200)).await;
            }
            Err(mpsc::TrySendError::Disconnected(batch)) => {
                if let Some((_, sequence)) = batch.waiter {
                    recorder.waiting.borrow_mut().remove(&sequence);
                } else {
                    recorder.in_flight.set(recorder.in_flight.get() - count);
                }
                slot.resolve(Err(Fault {
                    kind: FaultKind::Io,
                    message: "the ledger writer has stopped".into(),
                }));
            }
        }
    }
}

/// The worker's one listener for outcomes from the writer thread.
async fn listen(recorder: Rc<WorkerRecorder>) {
    let mailbox = &recorder.shared.mailboxes[recorder.index];
    loop {
        let outcomes = std::future::poll_fn(|cx| {
            mailbox.waker.register(cx.waker());
            let taken =
                std::mem::take(&mut *mailbox.outcomes.lock().unwrap_or_else(|e| e.into_inner()));
            if taken.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(taken)
            }
        })
        .await;
        for (sequence, outcome) in outcomes {
            let slot = recorder.waiting.borrow_mut().remove(&sequence);
            if let Some(slot) = slot {
                slot.resolve(outcome);
            }
        }
    }
}

/// Yields once to the worker's run queue, so tasks already ready run first.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
