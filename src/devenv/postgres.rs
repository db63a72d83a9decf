//! A real PostgreSQL cluster run as a child process, for the demo and the
//! end-to-end tests.
//!
//! PostgreSQL refuses to run as root, so when sluice's process is root the
//! server (and `initdb`, and the admin `psql`) run under the unprivileged
//! `postgres` account that Debian's `postgresql` package creates. When the
//! process is not root they simply run as the current user.
//!
//! # Where the files go
//!
//! `Cluster::start(dir, ..)` keeps everything in `dir/pg/` (`data/`,
//! `sock/`, `ssl/`, `postgres.log`), owned by the account the server runs
//! as. That needs the account to be able to traverse every directory above
//! `dir`; a repository under a world-traversable path such as `/work/main`
//! is fine. When it cannot (for example a checkout under `/root`, which is
//! mode 0700), the cluster lives in `/tmp/sluice-pg-<hash of dir>/` instead
//! and `dir/pg.location` records that path, so a restart finds the same
//! data again.
//!
//! # Process handling
//!
//! The postmaster is started directly (not through `pg_ctl`) so that it is
//! our child: a keeper thread waits for it, and with `die_with_parent` the
//! kernel sends it SIGINT (PostgreSQL's "fast shutdown") if our process
//! dies, so a crashed test never leaves a server behind. It runs in its own
//! process group so that a Ctrl-C in the terminal reaches sluice, which then
//! shuts PostgreSQL down in order. [`Cluster::stop`] and `Drop` do a fast
//! shutdown, escalating to SIGQUIT and SIGKILL if it hangs.

use std::ffi::CString;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::run_with_timeout;

/// Server settings and behaviour of a [`Cluster`].
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Extra `postgresql.conf` settings, passed as `-c name=value`
    /// (for example `("log_statement", "all")`).
    pub settings: Vec<(String, String)>,
    /// When false (tests), fsync, synchronous_commit and full_page_writes
    /// are off: a crash may lose data, which tests do not care about.
    pub durable: bool,
    /// `pg_hba.conf` lines placed before the default rules, e.g.
    /// `host all md5_user 127.0.0.1/32 md5` to test other upstream
    /// authentication methods.
    pub hba_extra: Vec<String>,
    /// Serve TLS with this certificate and key (ssl=on).
    pub ssl: Option<SslFiles>,
    /// Ask the kernel to fast-shutdown the server when this process dies.
    pub die_with_parent: bool,
    /// How long to wait for the server to accept connections.
    pub start_timeout: Duration,
    /// Directory holding initdb/postgres/psql; defaults to [`pg_bin_dir`].
    pub bin_dir: Option<PathBuf>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            settings: Vec::new(),
            durable: false,
            hba_extra: Vec::new(),
            ssl: None,
            die_with_parent: true,
            start_timeout: Duration::from_secs(60),
            bin_dir: None,
        }
    }
}

/// A PEM certificate (chain) and key for PostgreSQL's own TLS.
#[derive(Clone, Debug)]
pub struct SslFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The PostgreSQL binaries to use: `$SLUICE_PG_BIN` if set, else the newest
/// of Debian's `/usr/lib/postgresql/<major>/bin` (15 on Debian 12).
pub fn pg_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLUICE_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for e in entries.flatten() {
            let Some(major) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let bin = e.path().join("bin");
            let newer = match &best {
                Some((m, _)) => major > *m,
                None => true,
            };
            if newer && bin.join("postgres").exists() {
                best = Some((major, bin));
            }
        }
    }
    best.map(|(_, p)| p)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

/// The Unix account the server runs as (only when we are root).
#[derive(Clone, Debug)]
struct Account {
    uid: u32,
    gid: u32,
}

fn postgres_account() -> io::Result<Option<Account>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = CString::new("postgres").expect("static name");
    // SAFETY: getpwnam returns a pointer into static storage or null; we
    // copy the two integers out immediately and nothing else in this
    // process calls getpwnam concurrently in a way that matters here.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "running as root, but there is no `postgres` account to run PostgreSQL as \
             (PostgreSQL refuses to run as root); install Debian's postgresql package \
             (scripts/setup.sh does)",
        ));
    }
    // SAFETY: pw is non-null and points to a valid passwd struct.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some(Account { uid, gid }))
}

/// A running PostgreSQL server.
pub struct Cluster {
    base: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_file: PathBuf,
    port: u16,
    bin_dir: PathBuf,
    account: Option<Account>,
    pid: u32,
    keeper: Option<JoinHandle<io::Result<ExitStatus>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("data_dir", &self.data_dir)
            .field("port", &self.port)
            .field("pid", &self.pid)
            .finish()
    }
}

impl Cluster {
    /// Starts PostgreSQL on `127.0.0.1:port` with its files under `dir`
    /// (see the module documentation), running `initdb` first if the data
    /// directory does not exist yet. An existing cluster is reused as is.
    pub fn start(dir: &Path, port: u16, options: ClusterOptions) -> io::Result<Cluster> {
        let bin_dir = options.bin_dir.clone().unwrap_or_else(pg_bin_dir);
        if !bin_dir.join("postgres").exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no PostgreSQL server binaries in {} (run scripts/setup.sh, or set SLUICE_PG_BIN)",
                    bin_dir.display()
                ),
            ));
        }
        let account = postgres_account()?;
        std::fs::create_dir_all(dir)?;
        let base = choose_base(dir, account.as_ref())?;
        let data_dir = base.join("data");
        let socket_dir = base.join("sock");
        let ssl_dir = base.join("ssl");
        let log_file = base.join("postgres.log");
        for d in [&socket_dir, &ssl_dir] {
            make_private_dir(d, account.as_ref())?;
        }

        let mut cluster = Cluster {
            base,
            data_dir,
            socket_dir,
            log_file,
            port,
            bin_dir,
            account,
            pid: 0,
            keeper: None,
        };

        if !cluster.data_dir.join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        cluster.write_hba(&options.hba_extra)?;

        let mut args: Vec<String> = vec![
            "-D".into(),
            cluster.data_dir.display().to_string(),
            "-p".into(),
            port.to_string(),
            "-k".into(),
            cluster.socket_dir.display().to_string(),
        ];
        let mut settings: Vec<(String, String)> = vec![
            ("listen_addresses".into(), "127.0.0.1".into()),
            ("password_encryption".into(), "scram-sha-256".into()),
            ("unix_socket_permissions".into(), "0700".into()),
            ("logging_collector".into(), "off".into()),
            ("max_connections".into(), "200".into()),
        ];
        if !options.durable {
            for (k, v) in [
                ("fsync", "off"),
                ("synchronous_commit", "off"),
                ("full_page_writes", "off"),
            ] {
                settings.push((k.into(), v.into()));
            }
        }
        if let Some(ssl) = &options.ssl {
            let (cert, key) = cluster.install_ssl_files(ssl)?;
            settings.push(("ssl".into(), "on".into()));
            settings.push(("ssl_cert_file".into(), cert.display().to_string()));
            settings.push(("ssl_key_file".into(), key.display().to_string()));
        }
        settings.extend(options.settings.iter().cloned());
        for (k, v) in settings {
            args.push("-c".into());
            args.push(format!("{k}={v}"));
        }
        cluster.spawn_postmaster(&args, options.die_with_parent)?;
        if let Err(e) = cluster.wait_ready(options.start_timeout) {
            let tail = cluster.log_tail(30);
            let _ = cluster.stop();
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "PostgreSQL did not become ready on port {port}: {e}\n--- {} (tail) ---\n{tail}",
                    cluster.log_file.display()
                ),
            ));
        }
        Ok(cluster)
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory (`PGDATA`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Directory holding the Unix socket (only the server's account can use it).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// Directory holding data/, sock/, ssl/ and the log.
    pub fn base_dir(&self) -> &Path {
        &self.base
    }

    /// The server's log file (stdout and stderr of the postmaster).
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// Directory of the PostgreSQL binaries in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The last `lines` lines of the server log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_of_file(&self.log_file, lines)
    }

    /// Runs `sql` (any number of statements) with psql as the `postgres`
    /// superuser over the Unix socket, in the `postgres` database, and
    /// returns psql's unaligned, tuples-only output. Fails on the first
    /// SQL error.
    pub fn psql_admin(&self, sql: &str) -> io::Result<String> {
        self.psql_admin_db("postgres", sql)
    }

    /// Like [`Cluster::psql_admin`] in database `db`.
    pub fn psql_admin_db(&self, db: &str, sql: &str) -> io::Result<String> {
        let mut cmd = self.command("psql");
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-f",
                "-",
            ])
            .env("PGCLIENTENCODING", "UTF8");
        let out = run_with_timeout(&mut cmd, sql.as_bytes(), Duration::from_secs(120))?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "psql (admin, database {db}) failed with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A `Command` for one of the PostgreSQL binaries (psql, pgbench,
    /// pg_dump, ...) that runs as the server's account with a clean PG*
    /// environment, so it can use the Unix socket.
    pub fn command(&self, program: &str) -> Command {
        let path = self.bin_dir.join(program);
        let mut cmd = Command::new(if path.exists() {
            path
        } else {
            PathBuf::from(program)
        });
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .current_dir(&self.base);
        if let Some(a) = &self.account {
            cmd.uid(a.uid).gid(a.gid);
        }
        cmd
    }

    /// Turns on TLS in a running cluster (ssl=on, reloaded without a
    /// restart) with the given certificate chain and key.
    pub fn enable_ssl(&self, ssl: &SslFiles) -> io::Result<()> {
        let (cert, key) = self.install_ssl_files(ssl)?;
        self.psql_admin(&format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}';\n\
             ALTER SYSTEM SET ssl_key_file = '{}';\n\
             ALTER SYSTEM SET ssl = on;\n\
             SELECT pg_reload_conf();",
            cert.display(),
            key.display()
        ))?;
        // The reload is asynchronous; wait until the server reports ssl=on.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.psql_admin("SHOW ssl")?.trim() == "on" {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("ssl did not turn on after reload:\n{}", self.log_tail(20)),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fast shutdown (SIGINT: roll back open transactions, disconnect
    /// clients), escalating to SIGQUIT after 20 s and SIGKILL after 5 s
    /// more. Idempotent.
    pub fn stop(&mut self) -> io::Result<()> {
        let Some(keeper) = self.keeper.take() else {
            return Ok(());
        };
        let pid = self.pid as libc::pid_t;
        let steps = [
            (libc::SIGINT, Duration::from_secs(20)),
            (libc::SIGQUIT, Duration::from_secs(5)),
            (libc::SIGKILL, Duration::from_secs(5)),
        ];
        for (sig, wait) in steps {
            if keeper.is_finished() {
                break;
            }
            // SAFETY: kill has no memory-safety preconditions. The keeper
            // thread has not reaped the child yet (it is still running), so
            // the pid cannot have been reused.
            unsafe {
                libc::kill(pid, sig);
            }
            let deadline = Instant::now() + wait;
            while !keeper.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if !keeper.is_finished() {
            return Err(io::Error::other(format!(
                "PostgreSQL (pid {pid}) did not exit even after SIGKILL"
            )));
        }
        match keeper.join() {
            Ok(Ok(_status)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("PostgreSQL keeper thread panicked")),
        }
    }

    /// Whether the postmaster is still running.
    pub fn is_running(&self) -> bool {
        self.keeper.as_ref().is_some_and(|k| !k.is_finished())
    }

    fn initdb(&self) -> io::Result<()> {
        let mut cmd = self.command("initdb");
        cmd.arg("-D").arg(&self.data_dir).args([
            "--no-sync",
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-locale",
        ]);
        let out = run_with_timeout(&mut cmd, b"", Duration::from_secs(180))?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "initdb into {} failed with {}: {}{}",
                self.data_dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    fn write_hba(&self, extra: &[String]) -> io::Result<()> {
        let mut hba = String::from(
            "# Written by sluice's devenv on every start; edits are overwritten.\n\
             # The Unix socket (private to the server's account) is for administration.\n\
             local all all trust\n",
        );
        for line in extra {
            hba.push_str(line);
            hba.push('\n');
        }
        hba.push_str(
            "# Everything over TCP must present a SCRAM-SHA-256 password.\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        );
        let path = self.data_dir.join("pg_hba.conf");
        std::fs::write(&path, hba)?;
        self.chown(&path)?;
        Ok(())
    }

    /// Copies the certificate and key into `ssl/`, owned by the server's
    /// account with the key at 0600: PostgreSQL refuses a key file that
    /// others can read.
    fn install_ssl_files(&self, ssl: &SslFiles) -> io::Result<(PathBuf, PathBuf)> {
        let dir = self.base.join("ssl");
        let cert = dir.join("server.crt");
        let key = dir.join("server.key");
        std::fs::copy(&ssl.cert, &cert)?;
        super::write_secret_file(&key, &std::fs::read(&ssl.key)?)?;
        for p in [&cert, &key] {
            self.chown(p)?;
        }
        Ok((cert, key))
    }

    fn chown(&self, path: &Path) -> io::Result<()> {
        if let Some(a) = &self.account {
            std::os::unix::fs::chown(path, Some(a.uid), Some(a.gid))?;
        }
        Ok(())
    }

    fn spawn_postmaster(&mut self, args: &[String], die_with_parent: bool) -> io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)?;
        self.chown(&self.log_file)?;
        let mut cmd = self.command("postgres");
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        if die_with_parent {
            // SAFETY: the closure runs in the forked child before exec and
            // only calls prctl, which is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT as libc::c_ulong) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        // The keeper thread spawns the child and then waits for it. It must
        // be the spawning thread: PR_SET_PDEATHSIG fires when the thread
        // that forked the child exits, and this thread lives exactly as long
        // as the server does.
        let (tx, rx) = std::sync::mpsc::channel::<io::Result<u32>>();
        let keeper = std::thread::Builder::new()
            .name(format!("postgres-{}", self.port))
            .spawn(move || -> io::Result<ExitStatus> {
                let mut child = match cmd.spawn() {
                    Ok(c) => c,
                    Err(e) => {
                        let kind = e.kind();
                        let _ = tx.send(Err(e));
                        return Err(io::Error::new(kind, "spawn failed"));
                    }
                };
                let _ = tx.send(Ok(child.id()));
                child.wait()
            })?;
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(pid)) => {
                self.pid = pid;
                self.keeper = Some(keeper);
                Ok(())
            }
            Ok(Err(e)) => {
                let _ = keeper.join();
                Err(io::Error::new(
                    e.kind(),
                    format!("could not start postgres: {e}"),
                ))
            }
            Err(_) => Err(io::Error::other("postgres keeper thread did not report")),
        }
    }

    fn wait_ready(&self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.is_running() {
                return Err(io::Error::other("the postmaster exited during startup"));
            }
            // pg_isready needs no credentials; exit 0 means accepting.
            let mut cmd = self.command("pg_isready");
            cmd.arg("-h")
                .arg(&self.socket_dir)
                .args(["-p", &self.port.to_string(), "-t", "2"]);
            let last_err = match run_with_timeout(&mut cmd, b"", Duration::from_secs(5)) {
                Ok(out) if out.status.success() => return Ok(()),
                Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_string(),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("not ready after {timeout:?} (last: {last_err})"),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Picks the cluster's base directory: `dir/pg` if the server's account can
/// reach it, otherwise `/tmp/sluice-pg-<hash>` (recorded in
/// `dir/pg.location`). Creates it, owned by the account, mode 0700.
fn choose_base(dir: &Path, account: Option<&Account>) -> io::Result<PathBuf> {
    let preferred = dir.join("pg");
    make_private_dir(&preferred, account)?;
    if account.is_none() || can_account_use(&preferred, account) {
        return Ok(preferred);
    }
    // The account cannot traverse some directory above `dir`.
    let canonical = std::fs::canonicalize(dir)?;
    let fallback = PathBuf::from(format!(
        "/tmp/sluice-pg-{:016x}",
        fnv1a(canonical.as_os_str().as_encoded_bytes())
    ));
    make_private_dir(&fallback, account)?;
    std::fs::write(
        dir.join("pg.location"),
        format!(
            "# The postgres account cannot traverse {}, so this cluster lives in:\n{}\n",
            dir.display(),
            fallback.display()
        ),
    )?;
    let _ = std::fs::remove_dir(&preferred);
    Ok(fallback)
}

/// Whether `account` can write into `path`, checked by asking the kernel
/// (running `test -w` as that account) rather than re-implementing the
/// permission rules for every ancestor.
fn can_account_use(path: &Path, account: Option<&Account>) -> bool {
    let mut cmd = Command::new("/usr/bin/test");
    cmd.arg("-w").arg(path).env_clear().current_dir("/");
    if let Some(a) = account {
        cmd.uid(a.uid).gid(a.gid);
    }
    run_with_timeout(&mut cmd, b"", Duration::from_secs(10))
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn make_private_dir(path: &Path, account: Option<&Account>) -> io::Result<()> {
    std::fs::create_dir_all(path)?;
    if let Some(a) = account {
        std::os::unix::fs::chown(path, Some(a.uid), Some(a.gid))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The last `lines` lines of a text file (empty if unreadable).
pub fn tail_of_file(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
