//! `sluice demo`: a complete local setup in one command.
//!
//! It starts a real PostgreSQL (Debian's, as the `postgres` account) with
//! its data under `DIR/pg/`, seeds the `demo` database, generates a CA and a
//! server certificate, creates the agent `demo-agent` and the approver
//! `demo-approver` with fresh tokens, writes `DIR/sluice.toml`,
//! `DIR/agent.env`, `DIR/admin.env` and `DIR/direct.env`, and then
//! runs the gateway until SIGINT/SIGTERM, after which it stops PostgreSQL.
//!
//! Restarting reuses the database (the seed is idempotent), the upstream
//! password and the certificates; the agent token is new on every start, so
//! source `agent.env` again after a restart.

use std::error::Error;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::devenv::postgres::{Cluster, ClusterOptions};
use crate::devenv::{certs, seed, write_secret_file};

/// Name of the demo agent (the PostgreSQL user name it connects as).
pub const AGENT_NAME: &str = "demo-agent";
/// Upstream login role sluice uses; agents never see its password.
pub const UPSTREAM_ROLE: &str = "sluice_upstream";
/// Name of the demo approver (group `dba`, which the demo policy names).
pub const APPROVER_NAME: &str = "demo-approver";
/// Database (and target) name.
pub const DATABASE: &str = "demo";
/// The demo ledger's origin line and signing key name.
pub const LEDGER_ORIGIN: &str = "sluice.demo/ledger";
pub const LEDGER_KEY_NAME: &str = "sluice.demo";

/// Options of `sluice demo`.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Where agents connect (`--listen`).
    pub listen: SocketAddr,
    /// PostgreSQL's port on 127.0.0.1 (`--pg-port`).
    pub pg_port: u16,
    /// The admin listener (`--admin-listen`); None: the agent listener's
    /// address with the next port.
    pub admin_listen: Option<SocketAddr>,
}

impl DemoOptions {
    /// Where the admin listener (approvals, /metrics) listens.
    pub fn admin_address(&self) -> SocketAddr {
        self.admin_listen.unwrap_or_else(|| {
            SocketAddr::new(self.listen.ip(), self.listen.port().wrapping_add(1))
        })
    }
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 6432)),
            pg_port: 55432,
            admin_listen: None,
        }
    }
}

/// Everything [`prepare`] set up: the running cluster and the files.
#[derive(Debug)]
pub struct Prepared {
    pub cluster: Cluster,
    pub config_file: PathBuf,
    pub agent_env: PathBuf,
    pub direct_env: PathBuf,
    /// SLUICE_ADMIN_URL, SLUICE_ADMIN_TOKEN and SLUICE_ADMIN_CA for
    /// `sluice approvals`.
    pub admin_env: PathBuf,
    /// The agent's token (also in agent.env). Kept so tests can use it.
    pub token: String,
    pub ca_cert: PathBuf,
}

/// Runs the demo until SIGINT/SIGTERM (see the module documentation).
pub fn run(dir: &Path, options: DemoOptions) -> Result<(), Box<dyn Error>> {
    let mut prepared = prepare(dir, &options)?;
    print_banner(dir, &options, &prepared);
    let served = serve(&prepared.config_file);
    // Stop PostgreSQL whether the gateway ended cleanly or not; reporting
    // the gateway's error matters more than a shutdown error.
    let stopped = prepared.cluster.stop();
    served?;
    stopped?;
    eprintln!(
        "sluice demo: stopped (PostgreSQL shut down; data kept in {})",
        dir.display()
    );
    Ok(())
}

/// Everything except serving: start and seed PostgreSQL, write
/// certificates, config and env files. Separate from [`run`] so the demo
/// set-up can be tested without a gateway.
pub fn prepare(dir: &Path, options: &DemoOptions) -> Result<Prepared, Box<dyn Error>> {
    std::fs::create_dir_all(dir)?;
    // Absolute paths everywhere below, so the generated files work from any
    // working directory.
    let dir = std::fs::canonicalize(dir)?;

    // Certificates: reuse them across restarts so that a terminal which
    // already trusts ca.crt keeps working.
    let tls_dir = dir.join("tls");
    let ca_cert = tls_dir.join("ca.crt");
    let server_cert = tls_dir.join("server.crt");
    let server_key = tls_dir.join("server.key");
    let listen_ip = options.listen.ip().to_string();
    if !(ca_cert.exists() && server_cert.exists() && server_key.exists()) {
        let mut names = vec!["localhost", "127.0.0.1"];
        if !names.contains(&listen_ip.as_str()) && !options.listen.ip().is_unspecified() {
            names.push(&listen_ip);
        }
        certs::generate(&tls_dir, &names, &[])?;
    }

    // The upstream password: generated once, kept in a 0600 file that the
    // gateway's config points at.
    let password_file = dir.join("upstream.password");
    let password = match std::fs::read_to_string(&password_file) {
        Ok(p) if !p.trim().is_empty() => p.trim().to_string(),
        _ => {
            let p = crate::devenv::random_alphanumeric(32);
            write_secret_file(&password_file, p.as_bytes())?;
            p
        }
    };

    let cluster = Cluster::start(
        &dir,
        options.pg_port,
        ClusterOptions {
            durable: true,
            die_with_parent: true,
            ..ClusterOptions::default()
        },
    )
    .map_err(|e| {
        format!(
            "could not start PostgreSQL on 127.0.0.1:{} ({e}); is another demo running? \
             Try `--pg-port`",
            options.pg_port
        )
    })?;
    seed::apply(&cluster, UPSTREAM_ROLE, &password)?;

    // A fresh token on every start: only its SCRAM verifier goes into the
    // config, the token itself only into agent.env (0600).
    let token = crate::auth::token::generate_token();
    let token_hash =
        crate::auth::token::hash_token(&token, crate::auth::token::DEFAULT_ITERATIONS).to_string();

    // The ledger's signing key is made once and kept: the ledger must keep
    // verifying with the same verifier key across restarts.
    let ledger_key = dir.join("ledger.key");
    let ledger_vkey = dir.join("ledger.vkey");
    if !ledger_key.exists() {
        let key = sluice_ledger::SignerKey::generate(LEDGER_KEY_NAME)?;
        let _ = std::fs::remove_file(&ledger_vkey);
        sluice_ledger::keys::write_key_pair(&key, &ledger_key, &ledger_vkey)?;
    }

    // The approver's token, like the agent's, is new on every start.
    let approver_token = crate::auth::token::generate_token();
    let approver_hash =
        crate::auth::token::hash_token(&approver_token, crate::auth::token::DEFAULT_ITERATIONS)
            .to_string();

    let config_file = dir.join("sluice.toml");
    let mut config_text = demo_config(options, &dir, &tls_dir, &password_file, &token_hash);
    config_text.push_str(&admin_config(options, &approver_hash));
    std::fs::write(&config_file, config_text)?;

    let connect_host = if options.listen.ip().is_loopback() || options.listen.ip().is_unspecified()
    {
        "localhost".to_string()
    } else {
        listen_ip.clone()
    };
    let agent_env = dir.join("agent.env");
    write_secret_file(
        &agent_env,
        format!(
            "# Generated by `sluice demo`: connect through sluice as {AGENT_NAME}.\n\
             # Usage: . {} && psql\n\
             export PGHOST={connect_host} PGPORT={} PGDATABASE={DATABASE} PGUSER={AGENT_NAME} \
             PGPASSWORD={token} PGSSLMODE=verify-full PGSSLROOTCERT={}\n",
            agent_env.display(),
            options.listen.port(),
            ca_cert.display()
        )
        .as_bytes(),
    )?;
    let direct_env = dir.join("direct.env");
    write_secret_file(
        &direct_env,
        format!(
            "# Generated by `sluice demo`: the same database WITHOUT sluice, for comparisons.\n\
             # This uses the upstream credential that agents never see.\n\
             export PGHOST=127.0.0.1 PGPORT={} PGDATABASE={DATABASE} PGUSER={UPSTREAM_ROLE} \
             PGPASSWORD={password} PGSSLMODE=disable\n",
            options.pg_port
        )
        .as_bytes(),
    )?;

    let admin_env = dir.join("admin.env");
    write_secret_file(
        &admin_env,
        format!(
            "# Generated by `sluice demo`: decide held statements as {APPROVER_NAME}.\n\
             # Usage: . {} && sluice approvals list\n\
             export SLUICE_ADMIN_URL=https://{connect_host}:{} SLUICE_ADMIN_TOKEN={approver_token} \
             SLUICE_ADMIN_CA={}\n",
            admin_env.display(),
            options.admin_address().port(),
            ca_cert.display()
        )
        .as_bytes(),
    )?;

    Ok(Prepared {
        cluster,
        config_file,
        agent_env,
        direct_env,
        admin_env,
        token,
        ca_cert,
    })
}

/// The demo's sluice.toml, following deploy/sluice.example.toml.
fn demo_config(
    options: &DemoOptions,
    dir: &Path,
    tls_dir: &Path,
    password_file: &Path,
    token_hash: &str,
) -> String {
    format!(
        "# Generated by `sluice demo` on every start; edits are overwritten.\n\
         # See deploy/sluice.example.toml for every key.\n\
         \n\
         [server]\n\
         listen = \"{listen}\"\n\
         # The demo shares the machine with PostgreSQL: do not pin workers.\n\
         pin_workers = false\n\
         shutdown_drain_timeout_ms = 5000\n\
         \n\
         [tls]\n\
         cert_file = \"{cert}\"\n\
         key_file = \"{key}\"\n\
         \n\
         [[agents]]\n\
         name = \"{AGENT_NAME}\"\n\
         token_hash = \"{token_hash}\"\n\
         targets = [\"{DATABASE}\"]\n\
         \n\
         [[targets]]\n\
         name = \"{DATABASE}\"\n\
         host = \"127.0.0.1\"\n\
         port = {pg_port}\n\
         database = \"{DATABASE}\"\n\
         user = \"{UPSTREAM_ROLE}\"\n\
         password_file = \"{password_file}\"\n\
         # PostgreSQL listens on loopback only, so upstream TLS adds nothing here.\n\
         tls = \"disable\"\n\
         # Data directory: {data}\n\
         \n\
         [ledger]\n\
         directory = \"{ledger_dir}\"\n\
         key_file = \"{ledger_key}\"\n\
         origin = \"{LEDGER_ORIGIN}\"\n\
         # A statement reaches PostgreSQL only after its record is on disk.\n\
         durability = \"strict\"\n\
         server_messages = \"full\"\n\
         \n\
         {masking}\n\
         {policy}",
        listen = options.listen,
        cert = tls_dir.join("server.crt").display(),
        key = tls_dir.join("server.key").display(),
        pg_port = options.pg_port,
        password_file = password_file.display(),
        data = dir.join("pg").display(),
        ledger_dir = dir.join("ledger").display(),
        ledger_key = dir.join("ledger.key").display(),
        masking = DEMO_MASKING,
        policy = DEMO_POLICY,
    )
}

/// The demo's masking (issue 6): every built-in detector on every response
/// for the demo agent (e-mails, phones, cards keeping their last four
/// digits, SSNs, and PII inside `notes` and the `profile` JSON), and the
/// `ssn` column of `customers` masked whole whatever it holds.
const DEMO_MASKING: &str = "\
[masking]
# On for every agent: the demo agent has no masking_profile, so it gets
# default_profile (\"default\" masks with every detector).
default_profile = \"default\"

[[masking.column_rules]]
table = \"public.customers\"
column = \"ssn\"
action = \"mask\"
";
/// The demo's admin listener and approver (appended to the config).
fn admin_config(options: &DemoOptions, approver_hash: &str) -> String {
    format!(
        "\n\
         # Approvers decide held statements here (`sluice approvals`, admin.env).\n\
         [admin]\n\
         listen = \"{admin}\"\n\
         \n\
         [[approvers]]\n\
         name = \"{APPROVER_NAME}\"\n\
         groups = [\"dba\"]\n\
         token_hash = \"{approver_hash}\"\n",
        admin = options.admin_address(),
    )
}

/// The demo's statement policy (issue 5): block destructive DDL, privilege
/// changes and COPY PROGRAM; approval for unbounded writes, code and
/// administration; allow the rest.
const DEMO_POLICY: &str = include_str!("../deploy/policy.demo.toml");

fn print_banner(dir: &Path, options: &DemoOptions, p: &Prepared) {
    let d = dir.display();
    eprintln!(
        "\n\
         sluice demo is up.\n\
         \n\
         \x20 gateway     {listen}  (TLS; agents verify it with {ca})\n\
         \x20 PostgreSQL  127.0.0.1:{pg}  (data in {data})\n\
         \x20 admin       https://{admin}  (approvals and /metrics; see admin.env)\n\
         \x20 config      {config}\n\
         \n\
         In another terminal, from this directory:\n\
         \n\
         \x20 . {d}/agent.env && psql                      # as {AGENT_NAME}, through sluice\n\
         \x20 . {d}/agent.env && psql -c 'select name, email, notes from customers limit 5'  # masked\n\
         \x20 . {d}/direct.env && psql -c 'select name, email, notes from customers limit 5' # originals\n\
         \x20 . {d}/agent.env && psql -c 'select status, count(*), sum(total) from orders group by 1'\n\
         \x20 . {d}/agent.env && PGPASSWORD=wrong psql     # refused: 28P01\n\
         \x20 . {d}/agent.env && PGSSLMODE=disable psql    # refused: TLS only\n\
         \x20 . {d}/direct.env && psql                     # same database without sluice\n\
         \x20 . {d}/agent.env && psql -c 'drop table orders'  # blocked by policy: 42501\n\
         \x20 . {d}/agent.env && psql -c 'delete from orders' # held until an approver decides\n\
         \x20 . {d}/admin.env && sluice approvals list        # in a third terminal, as {APPROVER_NAME}\n\
         \x20 . {d}/admin.env && sluice approvals approve ID  # or: deny ID --reason '...'\n\
         \n\
         Every session is recorded in {d}/ledger (verifier key {d}/ledger.vkey):\n\
         \n\
         \x20 target/release/sluice-ledger verify {d}/ledger --key {d}/ledger.vkey\n\
         \x20 target/release/sluice-ledger sessions {d}/ledger\n\
         \x20 target/release/sluice-ledger replay {d}/ledger --session ID\n\
         \n\
         The agent token changes on every start: source agent.env again after a restart.\n\
         Press Ctrl-C to stop sluice and PostgreSQL.\n",
        listen = options.listen,
        ca = p.ca_cert.display(),
        pg = options.pg_port,
        data = p.cluster.data_dir().display(),
        config = p.config_file.display(),
        admin = options.admin_address(),
    );
}

/// Loads the generated config and runs the gateway until SIGINT/SIGTERM.
fn serve(config_file: &Path) -> Result<(), Box<dyn Error>> {
    let config = crate::config::Config::load(config_file)?;
    crate::server::serve_until_signal(config)?;
    Ok(())
}
