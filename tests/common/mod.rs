//! Shared harness for the end-to-end tests.
//!
//! Every test binary that uses it gets one real PostgreSQL (started on first
//! use, stopped when the binary exits), one generated PKI, a set of agents
//! with fresh tokens, and helpers to start the real `sluice` binary with a
//! generated config on a free loopback port and drive real clients (psql,
//! pgbench, psycopg) and a small wire-protocol client against it.
//!
//! Everything is bounded: each wait has a timeout, and every child process
//! is killed when its owner is dropped (including when a test panics), so a
//! failing test never leaves a server running. PostgreSQL additionally dies
//! with the test process (PR_SET_PDEATHSIG) if the process is killed.

#![allow(dead_code)]

pub mod pgwire;

use std::fmt::Write as _;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sluice::devenv::certs::{self, GeneratedCerts};
use sluice::devenv::postgres::{pg_bin_dir, Cluster, ClusterOptions, SslFiles};

pub use pgwire::{ConnectError, Negotiation, PgConn, TlsOpts};

/// The gateway binary under test.
pub const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// The `sluice-ledger` binary (another package of the workspace), built on
/// demand when a test runs alone (`cargo test --test NAME` builds only the
/// sluice package's binaries).
pub fn ledger_bin() -> std::path::PathBuf {
    let candidate = std::path::Path::new(SLUICE)
        .parent()
        .expect("the sluice binary sits in a directory")
        .join("sluice-ledger");
    if !candidate.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "sluice-ledger", "--bin", "sluice-ledger"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build -p sluice-ledger");
        assert!(status.success(), "building sluice-ledger failed");
    }
    candidate
}

/// Upstream role sluice logs in as; agents never see its password.
pub const UPSTREAM_USER: &str = "sluice_up";

/// How long the harness waits for the gateway to accept TCP connections.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// An agent in the generated config.
#[derive(Clone, Debug)]
pub struct Agent {
    pub name: &'static str,
    pub token: Option<String>,
    pub targets: &'static [&'static str],
    pub cert_identities: &'static [&'static str],
}

/// The per-test-binary environment: PostgreSQL, certificates, agents.
pub struct Env {
    /// Scratch directory of this test binary (removed at exit).
    pub dir: PathBuf,
    pub certs: GeneratedCerts,
    /// A second, unrelated CA with its own client certificate for the name
    /// "mtls-bot": presenting it must be refused.
    pub rogue: GeneratedCerts,
    cluster: Mutex<Option<Cluster>>,
    pub pg_port: u16,
    pub upstream_password: String,
    pub password_file: PathBuf,
    pub agents: Vec<Agent>,
    /// A loopback port with nothing listening (the "upstream down" target).
    pub down_port: u16,
    bench_ready: OnceLock<Result<(), String>>,
}

static ENV: OnceLock<Env> = OnceLock::new();

/// The shared environment, created on first use.
pub fn env() -> &'static Env {
    ENV.get_or_init(|| match Env::create() {
        Ok(env) => env,
        Err(e) => panic!("could not set up the end-to-end environment: {e}"),
    })
}

extern "C" fn cleanup_at_exit() {
    if let Some(env) = ENV.get() {
        if let Ok(mut guard) = env.cluster.lock() {
            if let Some(mut cluster) = guard.take() {
                let _ = cluster.stop();
                // When the postgres account could not traverse the scratch
                // directory, the cluster lives under /tmp instead.
                let base = cluster.base_dir().to_path_buf();
                if !base.starts_with(&env.dir) && std::env::var_os("SLUICE_E2E_KEEP").is_none() {
                    let _ = std::fs::remove_dir_all(base);
                }
            }
        }
        if std::env::var_os("SLUICE_E2E_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&env.dir);
        }
    }
}

impl Env {
    /// A new scratch directory under this environment's, unique within
    /// the process. Tests run in parallel threads, and a name derived from
    /// a port alone is not unique: a released port can be handed out again
    /// to the next test that asks.
    pub fn unique_dir(&self, prefix: &str) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.dir.join(format!("{prefix}-{n}"));
        std::fs::create_dir_all(&dir).expect("creating a scratch directory");
        dir
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

fn scratch_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sluice-e2e")
}

/// Removes scratch directories of earlier test processes that are gone
/// (for example killed by a timeout), so they do not pile up.
fn remove_stale_scratch_dirs() {
    let Ok(entries) = std::fs::read_dir(scratch_root()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.rsplit('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks for existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Env {
    fn create() -> Result<Env, String> {
        remove_stale_scratch_dirs();
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let stem = exe
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Test binaries are named NAME-HASH; keep NAME.
        let name = stem.split('-').next().unwrap_or("e2e").to_string();
        let dir = scratch_root().join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // SAFETY: registering a plain extern "C" function is always sound.
        unsafe {
            libc::atexit(cleanup_at_exit);
        }

        let certs = certs::generate(
            &dir.join("tls"),
            &["localhost", "127.0.0.1"],
            &["mtls-bot", "cert-only-bot", "stranger-bot"],
        )
        .map_err(|e| format!("certificates: {e}"))?;
        let rogue = certs::generate(&dir.join("rogue-tls"), &["localhost"], &["mtls-bot"])
            .map_err(|e| format!("rogue certificates: {e}"))?;

        let pg_port = free_port();
        let cluster = Cluster::start(
            &dir,
            pg_port,
            ClusterOptions {
                ssl: Some(SslFiles {
                    cert: certs.server_cert.clone(),
                    key: certs.server_key.clone(),
                }),
                ..ClusterOptions::default()
            },
        )
        .map_err(|e| format!("PostgreSQL: {e}"))?;

        let upstream_password = sluice::devenv::random_alphanumeric(24);
        let password_file = dir.join("upstream.password");
        sluice::devenv::write_secret_file(&password_file, upstream_password.as_bytes())
            .map_err(|e| e.to_string())?;
        cluster
            .psql_admin(&format!(
                "CREATE ROLE {UPSTREAM_USER} LOGIN PASSWORD '{upstream_password}';\n\
                 CREATE DATABASE app OWNER {UPSTREAM_USER};\n\
                 CREATE DATABASE bench OWNER {UPSTREAM_USER};\n"
            ))
            .map_err(|e| e.to_string())?;
        // The app database: a table with enough varied rows (NULLs, tabs,
        // quotes, backslashes, non-ASCII) to make byte comparisons of COPY
        // meaningful.
        cluster
            .psql_admin_db(
                "app",
                &format!(
                    "CREATE TABLE items (id integer PRIMARY KEY, name text, price numeric(10,2),\n\
                       tags text[], meta jsonb, note text);\n\
                     INSERT INTO items\n\
                       SELECT g, 'item ' || g, (g * 1.25)::numeric(10,2),\n\
                              ARRAY['t' || (g % 7), 'x'],\n\
                              jsonb_build_object('n', g, 'even', g % 2 = 0),\n\
                              CASE WHEN g % 10 = 0 THEN NULL\n\
                                   WHEN g % 10 = 1 THEN E'tab\\there \"quoted\" back\\\\slash'\n\
                                   WHEN g % 10 = 2 THEN 'naïve café ✓ ' || g\n\
                                   ELSE repeat('z', g % 50) END\n\
                       FROM generate_series(1, 5000) g;\n\
                     CREATE TABLE items_in (LIKE items);\n\
                     ALTER TABLE items OWNER TO {UPSTREAM_USER};\n\
                     ALTER TABLE items_in OWNER TO {UPSTREAM_USER};\n"
                ),
            )
            .map_err(|e| e.to_string())?;

        let token = |_: &str| Some(sluice::auth::token::generate_token());
        let agents = vec![
            Agent {
                name: "agent",
                token: token("agent"),
                targets: &["*"],
                cert_identities: &[],
            },
            Agent {
                name: "limited",
                token: token("limited"),
                targets: &["app"],
                cert_identities: &[],
            },
            Agent {
                name: "mtls-agent",
                token: token("mtls-agent"),
                targets: &["*"],
                cert_identities: &["mtls-bot"],
            },
            Agent {
                name: "cert-only",
                token: None,
                targets: &["app"],
                cert_identities: &["cert-only-bot"],
            },
        ];

        Ok(Env {
            dir,
            certs,
            rogue,
            cluster: Mutex::new(Some(cluster)),
            pg_port,
            upstream_password,
            password_file,
            agents,
            down_port: free_port(),
            bench_ready: OnceLock::new(),
        })
    }

    /// Runs `f` with the cluster.
    pub fn with_cluster<T>(&self, f: impl FnOnce(&Cluster) -> T) -> T {
        let guard = self.cluster.lock().unwrap_or_else(|e| e.into_inner());
        f(guard.as_ref().expect("cluster already stopped"))
    }

    /// psql as superuser over the Unix socket; panics on failure.
    pub fn admin(&self, db: &str, sql: &str) -> String {
        self.with_cluster(|c| c.psql_admin_db(db, sql))
            .unwrap_or_else(|e| panic!("admin SQL failed: {e}\nSQL: {sql}"))
    }

    /// The token of agent `name`.
    pub fn token(&self, name: &str) -> String {
        self.agents
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.token.clone())
            .unwrap_or_else(|| panic!("no token for agent {name}"))
    }

    /// Connection settings for PostgreSQL directly (no sluice), as the
    /// upstream role, for comparisons.
    pub fn direct(&self, db: &str) -> Conn {
        Conn::new(self)
            .var("PGHOST", "127.0.0.1")
            .var("PGPORT", &self.pg_port.to_string())
            .var("PGDATABASE", db)
            .var("PGUSER", UPSTREAM_USER)
            .var("PGPASSWORD", &self.upstream_password)
            .var("PGSSLMODE", "disable")
    }

    /// Creates the pgbench tables in `bench`, directly against PostgreSQL
    /// (once per test binary).
    pub fn ensure_bench(&self) {
        let result = self.bench_ready.get_or_init(|| {
            let out = self
                .direct("bench")
                .command("pgbench")
                .args(["-i", "-s", "1", "-q", "--no-vacuum"])
                .output_within(Duration::from_secs(120));
            match out {
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => Err(format!(
                    "pgbench -i failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                )),
                Err(e) => Err(e),
            }
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    }

    /// Path of a PostgreSQL client program (psql, pgbench, ...).
    pub fn pg_program(program: &str) -> PathBuf {
        let p = pg_bin_dir().join(program);
        if p.exists() {
            p
        } else {
            PathBuf::from(program)
        }
    }
}

/// Environment variables for a libpq client, and helpers to run one.
#[derive(Clone, Debug)]
pub struct Conn {
    pub vars: Vec<(String, String)>,
    home: PathBuf,
}

impl Conn {
    fn new(env: &Env) -> Conn {
        Conn {
            vars: vec![("PGCONNECT_TIMEOUT".into(), "10".into())],
            home: env.dir.clone(),
        }
    }

    /// Sets (or replaces) one variable.
    pub fn var(mut self, k: &str, v: &str) -> Conn {
        self.vars.retain(|(key, _)| key != k);
        self.vars.push((k.into(), v.into()));
        self
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// A command for a PostgreSQL client program with exactly these
    /// variables (nothing inherited that could change libpq's behaviour).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(Env::pg_program(program));
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("LC_ALL", "C.UTF-8")
            .env("PGCLIENTENCODING", "UTF8");
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs SQL with psql (-X -A -t -q, stop on error). Ok(stdout) or
    /// Err(stderr).
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        let out = self
            .command("psql")
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output_within(Duration::from_secs(60))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs psql with a script on stdin (-f -), for meta-commands like \copy.
    pub fn psql_script(&self, script: &str) -> Result<String, String> {
        let out = self
            .command("psql")
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"])
            .output_with_stdin_within(script.as_bytes(), Duration::from_secs(60))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

/// Bounded execution of a prepared `Command`.
pub trait CommandExt2 {
    fn output_within(&mut self, timeout: Duration) -> Result<Output, String>;
    fn output_with_stdin_within(
        &mut self,
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<Output, String>;
}

impl CommandExt2 for Command {
    fn output_within(&mut self, timeout: Duration) -> Result<Output, String> {
        self.output_with_stdin_within(b"", timeout)
    }
    fn output_with_stdin_within(
        &mut self,
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<Output, String> {
        sluice::devenv::run_with_timeout(self, stdin, timeout).map_err(|e| e.to_string())
    }
}

/// Settings of one gateway instance.
#[derive(Clone, Debug)]
pub struct GatewayOpts {
    pub workers: usize,
    pub connections_per_worker_max: Option<u32>,
    /// Verify client certificates against the test CA (mTLS).
    pub mtls: bool,
    pub client_cert_required: bool,
    pub drain_ms: u64,
    pub auth_failure_delay_ms: u64,
    /// Extra lines appended to [limits].
    pub extra_limits: String,
    /// `server.io_driver`: "auto", "io_uring" or "legacy".
    pub io_driver: &'static str,
}

impl Default for GatewayOpts {
    fn default() -> Self {
        GatewayOpts {
            workers: 2,
            connections_per_worker_max: None,
            mtls: false,
            client_cert_required: false,
            drain_ms: 3000,
            // Short, so negative tests stay fast; still non-zero so the
            // delay path is exercised.
            auth_failure_delay_ms: 50,
            extra_limits: String::new(),
            io_driver: "auto",
        }
    }
}

/// A running `sluice serve` child process, killed on drop.
pub struct Gateway {
    child: Option<Child>,
    pub port: u16,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Gateway {
    /// Writes a config for `opts` and starts the gateway; waits until it
    /// accepts TCP connections. Panics (with its stderr) if it does not.
    pub fn start(opts: GatewayOpts) -> Gateway {
        let env = env();
        let port = free_port();
        let dir = env.unique_dir("gw");
        let config = dir.join("sluice.toml");
        std::fs::write(&config, config_toml(env, &opts, port)).unwrap();
        Gateway::start_with_config(config, port)
    }

    /// Starts `sluice serve --config FILE` for a config listening on
    /// 127.0.0.1:port and waits until it accepts connections.
    pub fn start_with_config(config: PathBuf, port: u16) -> Gateway {
        let dir = config.parent().unwrap().to_path_buf();
        let log = dir.join("sluice.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(SLUICE)
            .args(["serve", "--config"])
            .arg(&config)
            .env(
                "RUST_LOG",
                std::env::var("SLUICE_E2E_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {SLUICE}: {e}"));
        let mut gw = Gateway {
            child: Some(child),
            port,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
            config,
            log,
        };
        gw.wait_ready();
        gw
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "sluice exited during startup with {status}\n--- config ---\n{}\n--- sluice stderr ---\n{}",
                    std::fs::read_to_string(&self.config).unwrap_or_default(),
                    self.log_tail()
                );
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "sluice did not accept connections on {} within {READY_TIMEOUT:?}\n--- sluice stderr ---\n{}",
                    self.addr,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The last 60 lines sluice wrote to stderr.
    pub fn log_tail(&self) -> String {
        sluice::devenv::postgres::tail_of_file(&self.log, 60)
    }

    /// libpq settings for agent `user` with `password` through this gateway
    /// (verify-full against the test CA, host name "localhost").
    pub fn conn(&self, user: &str, password: &str, db: &str) -> Conn {
        let env = env();
        Conn::new(env)
            .var("PGHOST", "localhost")
            .var("PGPORT", &self.port.to_string())
            .var("PGDATABASE", db)
            .var("PGUSER", user)
            .var("PGPASSWORD", password)
            .var("PGSSLMODE", "verify-full")
            .var("PGSSLROOTCERT", &env.certs.ca_cert.display().to_string())
    }

    /// The standard agent ("agent", all targets) for database `db`.
    pub fn agent(&self, db: &str) -> Conn {
        self.conn("agent", &env().token("agent"), db)
    }

    /// TLS options trusting the test CA.
    pub fn tls(&self) -> TlsOpts {
        TlsOpts::new(&env().certs.ca_cert)
    }

    /// Logs in with the wire client.
    pub fn login(
        &self,
        negotiation: Negotiation,
        user: &str,
        password: Option<&str>,
        db: &str,
    ) -> Result<PgConn, ConnectError> {
        let tls = self.tls();
        pgwire::connect(self.addr, negotiation, Some(&tls), user, db, password)
    }

    /// The standard agent's wire-protocol session on `db` (SSLRequest, token).
    pub fn login_agent(&self, db: &str) -> Result<PgConn, ConnectError> {
        self.login(
            Negotiation::SslRequest,
            "agent",
            Some(&env().token("agent")),
            db,
        )
    }

    /// Asserts that a well-behaved client still gets a working session
    /// (used after every negative case: the gateway must stay up).
    pub fn assert_serves(&self) {
        let mut c = self
            .login(
                Negotiation::SslRequest,
                "agent",
                Some(&env().token("agent")),
                "app",
            )
            .unwrap_or_else(|e| {
                panic!(
                    "a good client was refused after a bad one: {e}\n--- sluice stderr ---\n{}",
                    self.log_tail()
                )
            });
        let v = c
            .query_one("SELECT count(*) FROM items")
            .unwrap_or_else(|e| panic!("query failed: {e}\n{}", self.log_tail()));
        assert_eq!(v.as_deref(), Some("5000"));
        c.terminate();
    }

    /// Sends `signal` to the gateway process.
    pub fn signal(&self, signal: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill has no memory-safety preconditions; the child has
            // not been reaped (we hold it), so the pid is still ours.
            unsafe {
                libc::kill(c.id() as libc::pid_t, signal);
            }
        }
    }

    /// Waits up to `timeout` for the gateway to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Panics with context unless `cond` holds.
    pub fn check(&self, cond: bool, what: &str) {
        if !cond {
            panic!("{what}\n--- sluice stderr ---\n{}", self.log_tail());
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn toml_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The gateway config for `opts`, in the format of deploy/sluice.example.toml.
pub fn config_toml(env: &Env, opts: &GatewayOpts, port: u16) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "[server]\nlisten = \"127.0.0.1:{port}\"\nworkers = {}\npin_workers = false\n\
         shutdown_drain_timeout_ms = {}\nio_driver = \"{}\"\n",
        opts.workers, opts.drain_ms, opts.io_driver
    );
    let _ = writeln!(
        w,
        "[tls]\ncert_file = {}\nkey_file = {}",
        toml_str(&env.certs.server_cert.display().to_string()),
        toml_str(&env.certs.server_key.display().to_string())
    );
    if opts.mtls {
        let _ = writeln!(
            w,
            "client_ca_file = {}\nclient_cert_required = {}",
            toml_str(&env.certs.ca_cert.display().to_string()),
            opts.client_cert_required
        );
    }
    let _ = writeln!(
        w,
        "\n[limits]\nauth_failure_delay_ms = {}\nstartup_timeout_ms = 5000\nupstream_connect_timeout_ms = 3000",
        opts.auth_failure_delay_ms
    );
    if let Some(max) = opts.connections_per_worker_max {
        let _ = writeln!(w, "connections_per_worker_max = {max}");
    }
    let _ = writeln!(w, "{}", opts.extra_limits);
    for a in &env.agents {
        // A certificate-only agent cannot authenticate without mTLS, and
        // check-config rightly rejects it there.
        if a.token.is_none() && !opts.mtls {
            continue;
        }
        let _ = writeln!(w, "[[agents]]\nname = {}", toml_str(a.name));
        if let Some(t) = &a.token {
            let hash = sluice::auth::token::hash_token(t, sluice::auth::token::DEFAULT_ITERATIONS);
            let _ = writeln!(w, "token_hash = {}", toml_str(&hash.to_string()));
        }
        let _ = writeln!(w, "targets = {}", toml_list(a.targets));
        if opts.mtls && !a.cert_identities.is_empty() {
            let _ = writeln!(w, "cert_identities = {}", toml_list(a.cert_identities));
        }
        let _ = writeln!(w);
    }
    let password_file = toml_str(&env.password_file.display().to_string());
    let ca = toml_str(&env.certs.ca_cert.display().to_string());
    for (name, db, port, tls) in [
        ("app", "app", env.pg_port, "tls = \"disable\"".to_string()),
        (
            "bench",
            "bench",
            env.pg_port,
            "tls = \"disable\"".to_string(),
        ),
        (
            "secret",
            "app",
            env.pg_port,
            "tls = \"disable\"".to_string(),
        ),
        (
            "down",
            "app",
            env.down_port,
            "tls = \"disable\"".to_string(),
        ),
        (
            "app_tls",
            "app",
            env.pg_port,
            format!("tls = \"verify-full\"\ntls_ca_file = {ca}\ntls_server_name = \"localhost\""),
        ),
    ] {
        let _ = writeln!(
            w,
            "[[targets]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\ndatabase = \"{db}\"\n\
             user = \"{UPSTREAM_USER}\"\npassword_file = {password_file}\n{tls}\n"
        );
    }
    s
}

/// Python of the project virtualenv (created by scripts/setup.sh).
pub fn venv_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("var/venv/bin/python")
}

/// Runs the pytest suite in `tests/<suite>` from the project virtualenv
/// against `gw`, with the agent's and the direct connection settings plus
/// `extra_env` (`tests/python_common` on `PYTHONPATH`), and fails with pytest's report unless every test passed
/// (and at least one ran).
pub fn run_pytest(
    suite: &str,
    gw: &Gateway,
    extra_env: &[(&str, &std::ffi::OsStr)],
    timeout: Duration,
) {
    let python = venv_python();
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh (make test does) to create the \
         Python virtualenv with psycopg and pytest",
        python.display()
    );
    let env = env();
    let tests_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(suite);
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider"])
        .arg(&tests_dir)
        .env("SLUICE_GW_PORT", gw.port.to_string())
        .env("SLUICE_AGENT", "agent")
        .env("SLUICE_TOKEN", env.token("agent"))
        .env("SLUICE_CA", &env.certs.ca_cert)
        .env("SLUICE_DIRECT_PORT", env.pg_port.to_string())
        .env("SLUICE_DIRECT_USER", UPSTREAM_USER)
        .env("SLUICE_DIRECT_PASSWORD", &env.upstream_password)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // The suites' shared connection settings (sluice_settings.py).
        .env(
            "PYTHONPATH",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python_common"),
        )
        .envs(extra_env.iter().copied())
        .env_remove("PGSSLMODE")
        .env_remove("PGHOST")
        .output_within(timeout)
        .unwrap_or_else(|e| panic!("pytest: {e}\n{}", gw.log_tail()));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{report}");
    assert!(
        out.status.success(),
        "pytest suite {suite} failed ({}):\n{report}\n--- sluice ---\n{}",
        out.status,
        gw.log_tail()
    );
    assert!(report.contains(" passed"), "pytest ran no test:\n{report}");
}

/// Writes `contents` to a new file in the scratch directory.
pub fn scratch_file(name: &str, contents: &[u8]) -> PathBuf {
    let p = env().dir.join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(contents).unwrap();
    p
}

/// Polls `f` every 20 ms until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
