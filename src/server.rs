//! The service stack at a glance, and the thread-per-core runtime under it.
//!
//! ```text
//!  agent ──TLS──▶ worker N (own core, own SO_REUSEPORT listener, own monoio runtime)
//!                   └─ session (src/session): negotiate → handshake → startup →
//!                      authenticate → connect_upstream → proxy → close
//!                        proxy: frame (src/protocol/pg, sans-IO) → [policy]
//!                               → [masking] → [recording] → upstream PostgreSQL
//! ```
//!
//! Nothing mutable is shared between workers on the data path. The
//! cross-worker structures are the cancel-key registry (src/cancel.rs),
//! touched at session start and end and on a cancel, and the approval
//! registry (src/approvals), touched when a statement is held or decided;
//! neither is touched per message. Metrics (src/metrics.rs) are per-worker
//! blocks that only their worker writes.
//!
//! The admin listener (src/admin) runs on its own threads beside the
//! workers: approvals, `/metrics` and `/healthz` over TLS.

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    net::SocketAddr,
    os::fd::{AsRawFd, RawFd},
    rc::Rc,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use monoio::net::{ListenerOpts, TcpListener};

use crate::{
    cancel::{CancelRegistry, WORKERS_MAX},
    config::{Config, IoDriver},
    tls::{self, UpstreamTls},
    transport::{shutdown_fd, TransportWriter},
};

/// How often each worker looks at the process-wide shutdown flag and sweeps
/// idle sessions. A timer tick per worker, not per session.
const CONTROL_TICK: Duration = Duration::from_millis(100);
/// Bound on writing the final FATAL message to an agent being terminated.
const TERMINATE_WRITE_TIMEOUT: Duration = Duration::from_millis(200);
/// io_uring submission queue entries per worker.
const URING_ENTRIES: u32 = 1024;
/// Connections over the limit still get a protocol-correct 53300 answer, but
/// only this many at a time per worker; beyond that they are closed at once.
pub const OVERFLOW_SESSIONS_MAX: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("TLS setup: {0}")]
    Tls(#[from] tls::TlsSetupError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("io_uring was required (server.io_driver = \"io_uring\") but is not available")]
    IoUringUnavailable,
    #[error("{workers} workers requested; at most {max} are supported")]
    TooManyWorkers { workers: usize, max: usize },
    #[error("worker {index} failed to start: {reason}")]
    Worker { index: usize, reason: String },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("recording: {0}")]
    Recorder(#[from] crate::recording::RecorderError),
    #[error("{0}")]
    Admin(#[from] crate::admin::AdminError),
    #[error("approvals webhook: {0}")]
    Webhook(std::io::Error),
}

/// Everything the workers share read-only (plus the cancel registry).
pub struct Shared {
    pub config: Config,
    pub tls_server: Arc<rustls::ServerConfig>,
    /// tls-server-end-point of the agent-facing certificate, for
    /// SCRAM-SHA-256-PLUS; None when the certificate allows no binding.
    pub channel_binding: Option<Vec<u8>>,
    pub upstream_tls: HashMap<String, Option<UpstreamTls>>,
    pub cancel: CancelRegistry,
    pub shutdown: Arc<AtomicBool>,
    /// Per-process secret that derives fake SCRAM salts for unknown agents.
    pub mock_secret: [u8; 32],
    /// The ledger writer's shared side; None when recording is off.
    pub recorder: Option<Arc<crate::recording::RecorderShared>>,
    /// Per-worker counters, summed by the admin listener's /metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Held statements awaiting a human; None without an `[admin]` section.
    pub approvals: Option<Arc<crate::approvals::ApprovalRegistry>>,
}

/// A live session as its worker sees it, for idle sweeps and shutdown.
pub struct SessionControl {
    pub client: TransportWriter,
    pub upstream_fd: Cell<Option<RawFd>>,
    pub last_activity: Cell<Instant>,
    /// Set when the session is between transactions (last ReadyForQuery was 'I').
    pub idle_in_protocol: Cell<bool>,
}

impl SessionControl {
    pub fn abort(&self) {
        self.client.abort();
        if let Some(fd) = self.upstream_fd.get() {
            shutdown_fd(fd, libc::SHUT_RDWR);
        }
    }
}

/// Per-worker state; lives on one thread only.
pub struct Worker {
    pub shared: Arc<Shared>,
    pub index: usize,
    pub sessions: RefCell<HashMap<u64, Rc<SessionControl>>>,
    pub active: Cell<usize>,
    pub overflow: Cell<usize>,
    next_session: Cell<u64>,
    /// This worker's lock-free side of the recorder.
    pub recorder: Option<Rc<crate::recording::WorkerRecorder>>,
}

impl Worker {
    pub fn next_session_id(&self) -> u64 {
        let id = self.next_session.get() + 1;
        self.next_session.set(id);
        // Worker index in the top bits keeps session ids unique per process.
        ((self.index as u64) << 48) | id
    }

    pub fn shutting_down(&self) -> bool {
        self.shared.shutdown.load(Ordering::Relaxed)
    }
}

/// A running gateway.
pub struct ServerHandle {
    shutdown: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    local_addr: SocketAddr,
    recorder: Option<crate::recording::Recorder>,
    admin: Option<crate::admin::AdminHandle>,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin listener's address, when one runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.local_addr)
    }

    /// Begins a graceful shutdown: stop accepting, drain, then close.
    pub fn shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
    }

    /// Waits for every worker to finish.
    pub fn wait(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
        if let Some(admin) = self.admin {
            admin.wait();
        }
        // Workers are gone, so no record can arrive any more: flush, sign the
        // final checkpoint and close the ledger.
        if let Some(recorder) = self.recorder {
            recorder.stop();
        }
    }
}

fn uring_available() -> bool {
    monoio::utils::detect_uring()
}

/// Connections the kernel queues on each worker's listener before accept.
const LISTEN_BACKLOG: i32 = 1024;

fn bind_listener(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    bind_reuse_port(address, LISTEN_BACKLOG)
}

/// A non-blocking TCP listener with SO_REUSEPORT, one per thread-per-core
/// worker (also used by sluice-loadgen's mock backends).
pub fn bind_reuse_port(
    address: SocketAddr,
    backlog: i32,
) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nodelay(true)?;
    // The legacy (epoll) driver needs a non-blocking socket; io_uring does
    // not care either way.
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// The secret behind fake SCRAM salts for unknown agents. It must be stable
/// across restarts (a per-process random value would change an unknown
/// name's salt on every restart while a real agent's stays, telling them
/// apart), and secret, so it is derived from the TLS private key.
fn mock_secret(config: &Config) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let key = std::fs::read(&config.tls.key_file).unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(b"sluice mock SCRAM verifier secret v1\0");
    hasher.update(&key);
    hasher.finalize().into()
}

/// Starts the workers. Returns once every worker listens.
pub fn start(config: Config) -> Result<ServerHandle, ServerError> {
    start_with_flag(config, Arc::new(AtomicBool::new(false)))
}

fn start_with_flag(config: Config, shutdown: Arc<AtomicBool>) -> Result<ServerHandle, ServerError> {
    let workers = config.worker_count();
    if workers > WORKERS_MAX {
        return Err(ServerError::TooManyWorkers {
            workers,
            max: WORKERS_MAX,
        });
    }
    let use_uring = match config.server.io_driver {
        IoDriver::Legacy => {
            tracing::info!(phase = "start", "io driver: legacy (epoll), as configured");
            false
        }
        IoDriver::IoUring if !uring_available() => return Err(ServerError::IoUringUnavailable),
        IoDriver::IoUring => {
            tracing::info!(phase = "start", "io driver: io_uring");
            true
        }
        IoDriver::Auto => {
            let available = uring_available();
            if available {
                tracing::info!(phase = "start", "io driver: io_uring");
            } else {
                tracing::warn!(
                    phase = "start",
                    "io_uring is unavailable (kernel, seccomp or io_uring_disabled); falling back to the legacy epoll driver"
                );
            }
            available
        }
    };
    let tls_server = tls::server_config(&config)?;
    let channel_binding = tls::load_certificates(&config.tls.cert_file)?
        .first()
        .and_then(|cert| tls::server_end_point(cert.as_ref()));
    let mut upstream_tls = HashMap::new();
    for target in &config.targets {
        upstream_tls.insert(target.name.clone(), tls::upstream_config(target)?);
    }
    // Bind every listener up front so address errors surface before any
    // thread starts, and so port 0 resolves to one port shared by all.
    let first = bind_listener(config.listen).map_err(|source| ServerError::Listen {
        address: config.listen,
        source,
    })?;
    let local_addr = first.local_addr().map_err(|source| ServerError::Listen {
        address: config.listen,
        source,
    })?;
    let mut listeners = vec![first];
    for _ in 1..workers {
        listeners.push(
            bind_listener(local_addr).map_err(|source| ServerError::Listen {
                address: local_addr,
                source,
            })?,
        );
    }
    let mock_secret = mock_secret(&config);
    let recorder = match &config.ledger {
        Some(settings) => Some(crate::recording::Recorder::start(
            settings.clone(),
            workers,
        )?),
        None => {
            tracing::warn!(
                phase = "start",
                "recording is OFF: no [ledger] section in the configuration"
            );
            None
        }
    };
    let pin = config.server.pin_workers;
    let metrics = Arc::new(crate::metrics::Metrics::new(workers));
    let approvals = match &config.admin {
        None => None,
        Some(admin) => {
            let webhook = match &admin.approvals.webhook {
                Some(settings) => Some(
                    crate::approvals::webhook::WebhookSender::start(
                        settings.clone(),
                        metrics.clone(),
                    )
                    .map_err(ServerError::Webhook)?,
                ),
                None => None,
            };
            Some(Arc::new(crate::approvals::ApprovalRegistry::new(
                admin.approvals.pending_max,
                admin.approvals.wait_ms_max,
                webhook,
            )))
        }
    };
    let admin = match (&config.admin, &approvals) {
        (Some(admin), Some(registry)) => Some(crate::admin::start(
            admin.clone(),
            registry.clone(),
            metrics.clone(),
            shutdown.clone(),
        )?),
        _ => None,
    };
    let shared = Arc::new(Shared {
        config,
        tls_server,
        channel_binding,
        upstream_tls,
        cancel: CancelRegistry::new(workers),
        shutdown: shutdown.clone(),
        mock_secret,
        recorder: recorder.as_ref().map(|r| r.shared.clone()),
        metrics,
        approvals,
    });
    let cores = if pin {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<usize, (usize, String)>>();
    let mut threads = Vec::with_capacity(workers);
    for (index, listener) in listeners.into_iter().enumerate() {
        let shared = shared.clone();
        let ready = ready_tx.clone();
        let core = if cores.is_empty() {
            None
        } else {
            Some(cores[index % cores.len()])
        };
        let thread = std::thread::Builder::new()
            .name(format!("sluice-worker-{index}"))
            .spawn(move || {
                if let Some(core) = core {
                    if !core_affinity::set_for_current(core) {
                        tracing::warn!(worker = index, "could not pin worker to its core");
                    }
                }
                let worker_recorder = shared
                    .recorder
                    .clone()
                    .and_then(|shared| crate::recording::WorkerRecorder::new(shared, index));
                let worker = Rc::new(Worker {
                    shared,
                    index,
                    sessions: RefCell::new(HashMap::new()),
                    active: Cell::new(0),
                    overflow: Cell::new(0),
                    next_session: Cell::new(0),
                    recorder: worker_recorder,
                });
                let outcome = if use_uring {
                    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                        .with_entries(URING_ENTRIES)
                        .enable_timer()
                        .build()
                        .map(|mut runtime| {
                            runtime.block_on(run_worker(worker, listener, ready.clone()))
                        })
                } else {
                    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                        .enable_timer()
                        .build()
                        .map(|mut runtime| {
                            runtime.block_on(run_worker(worker, listener, ready.clone()))
                        })
                };
                if let Err(e) = outcome {
                    let _ = ready.send(Err((index, format!("runtime: {e}"))));
                }
            })
            .map_err(|e| ServerError::Worker {
                index,
                reason: e.to_string(),
            })?;
        threads.push(thread);
    }
    drop(ready_tx);
    for _ in 0..workers {
        match ready_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err((index, reason))) => {
                shutdown.store(true, Ordering::SeqCst);
                return Err(ServerError::Worker { index, reason });
            }
            Err(_) => {
                shutdown.store(true, Ordering::SeqCst);
                return Err(ServerError::Worker {
                    index: 0,
                    reason: "a worker exited during start-up".into(),
                });
            }
        }
    }
    tracing::info!(
        phase = "start",
        address = %local_addr,
        workers,
        "sluice listening"
    );
    Ok(ServerHandle {
        shutdown,
        threads,
        local_addr,
        recorder,
        admin,
    })
}

/// Serves until SIGINT or SIGTERM, then shuts down gracefully. A second
/// signal during the drain exits at once.
pub fn serve_until_signal(config: Config) -> Result<(), ServerError> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, flag.clone())
            .map_err(ServerError::Signals)?;
        signal_hook::flag::register(signal, flag.clone()).map_err(ServerError::Signals)?;
    }
    let drain_ms = config.server.shutdown_drain_timeout_ms;
    let handle = start_with_flag(config, flag.clone())?;
    while !flag.load(Ordering::SeqCst) {
        std::thread::sleep(CONTROL_TICK);
    }
    tracing::info!(
        phase = "shutdown",
        drain_timeout_ms = drain_ms,
        "signal received: no longer accepting; draining sessions"
    );
    handle.wait();
    tracing::info!(phase = "shutdown", "all workers stopped");
    Ok(())
}

async fn run_worker(
    worker: Rc<Worker>,
    listener: std::net::TcpListener,
    ready: std::sync::mpsc::Sender<Result<usize, (usize, String)>>,
) {
    let index = worker.index;
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            let _ = ready.send(Err((index, format!("listener: {e}"))));
            return;
        }
    };
    let _ = ListenerOpts::new();
    let listener_fd = listener.as_raw_fd();
    let _ = ready.send(Ok(index));
    drop(ready);

    monoio::spawn(control_loop(worker.clone(), listener_fd));

    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if worker.shutting_down() {
                    break;
                }
                monoio::spawn(crate::session::run(worker.clone(), stream, peer));
            }
            Err(e) => {
                if worker.shutting_down() {
                    break;
                }
                // EMFILE/ENFILE and friends: back off briefly instead of spinning.
                tracing::warn!(worker = index, phase = "accept", error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    drain(&worker).await;
}

/// Watches the shutdown flag and sweeps idle sessions.
async fn control_loop(worker: Rc<Worker>, listener_fd: RawFd) {
    let idle_timeout = Duration::from_millis(worker.shared.config.limits.idle_timeout_ms);
    let mut last_sweep = Instant::now();
    loop {
        monoio::time::sleep(CONTROL_TICK).await;
        if worker.shutting_down() {
            // Wakes the pending accept with an error; the accept loop sees the flag.
            shutdown_fd(listener_fd, libc::SHUT_RDWR);
            return;
        }
        let now = Instant::now();
        if now.duration_since(last_sweep) >= Duration::from_secs(1) {
            last_sweep = now;
            let idle: Vec<Rc<SessionControl>> = worker
                .sessions
                .borrow()
                .values()
                .filter(|c| {
                    // Only sessions waiting between transactions: a long
                    // query or a transaction left open is the server's
                    // business (statement_timeout,
                    // idle_in_transaction_session_timeout).
                    c.idle_in_protocol.get()
                        && now.duration_since(c.last_activity.get()) >= idle_timeout
                })
                .cloned()
                .collect();
            for control in idle {
                // Mark it active again so the next sweep does not repeat this.
                control.last_activity.set(now);
                tracing::info!(
                    worker = worker.index,
                    phase = "proxy",
                    idle_timeout_ms = worker.shared.config.limits.idle_timeout_ms,
                    "idle timeout: closing session"
                );
                monoio::spawn(terminate_session(
                    control,
                    crate::protocol::pg::sqlstate::IDLE_SESSION_TIMEOUT,
                    "terminating connection due to idle-session timeout",
                ));
            }
        }
    }
}

/// Tells an agent why its session ends (a FATAL ErrorResponse, as
/// PostgreSQL sends for the same reasons) and closes both sides. The write
/// is bounded so a stalled agent cannot hold up the worker's shutdown.
async fn terminate_session(control: Rc<SessionControl>, code: &str, message: &str) {
    let mut out = bytes::BytesMut::new();
    crate::protocol::pg::build::error_response(
        &mut out,
        crate::protocol::pg::build::Severity::Fatal,
        code,
        message,
        None,
        None,
    );
    let _ =
        monoio::time::timeout(TERMINATE_WRITE_TIMEOUT, control.client.write(out.freeze())).await;
    control.abort();
}

/// Lets sessions finish up to the drain timeout, then tells the rest that the
/// administrator is shutting down (57P01, as PostgreSQL does) and closes them.
async fn drain(worker: &Rc<Worker>) {
    let deadline = Instant::now()
        + Duration::from_millis(worker.shared.config.server.shutdown_drain_timeout_ms);
    while worker.active.get() > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(50)).await;
    }
    let remaining: Vec<Rc<SessionControl>> = worker.sessions.borrow().values().cloned().collect();
    if !remaining.is_empty() {
        tracing::info!(
            worker = worker.index,
            phase = "shutdown",
            sessions = remaining.len(),
            "drain timeout reached: terminating remaining sessions"
        );
    }
    // All at once: a stalled agent must not delay the others' termination.
    for control in remaining {
        monoio::spawn(terminate_session(
            control,
            crate::protocol::pg::sqlstate::ADMIN_SHUTDOWN,
            "terminating connection due to administrator command",
        ));
    }
    // Give aborted sessions a moment to unwind and release their resources.
    let grace = Instant::now() + Duration::from_secs(2);
    while worker.active.get() > 0 && Instant::now() < grace {
        monoio::time::sleep(Duration::from_millis(20)).await;
    }
}
