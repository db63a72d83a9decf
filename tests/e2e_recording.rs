//! End-to-end: every session through sluice becomes verifiable evidence.
//!
//! Real PostgreSQL (with statement logging, to see what reached it), the real
//! gateway with a `[ledger]`, real psql and pgbench, and the real
//! `sluice-ledger` command for verification.

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use sluice::devenv::postgres::{Cluster, ClusterOptions};
use sluice_ledger::{FsStorage, LedgerReader, RecordBody};

const KEY_NAME: &str = "sluice.e2e";

struct Fixture {
    dir: PathBuf,
    cluster: Cluster,
    key: PathBuf,
    vkey: PathBuf,
    password_file: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir = env().dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let cluster = Cluster::start(
            &dir,
            free_port(),
            ClusterOptions {
                settings: vec![
                    ("log_statement".into(), "all".into()),
                    ("log_line_prefix".into(), "%a|".into()),
                ],
                ..ClusterOptions::default()
            },
        )
        .expect("start PostgreSQL");
        let password = sluice::devenv::random_alphanumeric(20);
        cluster
            .psql_admin(&format!(
                "CREATE ROLE rec LOGIN PASSWORD '{password}';\nCREATE DATABASE recdb OWNER rec;\n"
            ))
            .unwrap();
        let password_file = dir.join("password");
        sluice::devenv::write_secret_file(&password_file, password.as_bytes()).unwrap();
        let key = dir.join("ledger.key");
        let vkey = dir.join("ledger.vkey");
        let signer = sluice_ledger::SignerKey::generate(KEY_NAME).unwrap();
        sluice_ledger::keys::write_key_pair(&signer, &key, &vkey).unwrap();
        // pgbench tables are created directly, under another application name
        // so that the statement log can tell them apart.
        let init = cluster
            .command("pgbench")
            .args(["-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p"])
            .arg(cluster.port().to_string())
            .args(["-U", "rec", "recdb"])
            .env("PGPASSWORD", &password)
            .env("PGAPPNAME", "direct-init")
            .output_within(Duration::from_secs(120))
            .unwrap();
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        Fixture {
            dir,
            cluster,
            key,
            vkey,
            password_file,
        }
    }

    /// Writes a gateway config with the ledger in `ledger_dir`.
    fn config(&self, port: u16, ledger_dir: &Path, durability: &str) -> PathBuf {
        let env = env();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "[server]\nlisten = \"127.0.0.1:{port}\"\nworkers = 2\npin_workers = false\n\
             shutdown_drain_timeout_ms = 2000\n\n\
             [tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\n\
             [limits]\nauth_failure_delay_ms = 10\n\n\
             [[agents]]\nname = \"agent\"\ntoken_hash = \"{}\"\ntargets = [\"*\"]\n\n\
             [[targets]]\nname = \"recdb\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"recdb\"\n\
             user = \"rec\"\npassword_file = \"{}\"\ntls = \"disable\"\n\n\
             [ledger]\ndirectory = \"{}\"\nkey_file = \"{}\"\norigin = \"sluice.e2e/ledger\"\n\
             durability = \"{durability}\"\n",
            env.certs.server_cert.display(),
            env.certs.server_key.display(),
            sluice::auth::token::hash_token(&env.token("agent"), 4096),
            self.cluster.port(),
            self.password_file.display(),
            ledger_dir.display(),
            self.key.display(),
        );
        let path = self.dir.join(format!("sluice-{port}.toml"));
        std::fs::write(&path, s).unwrap();
        path
    }

    /// Statements the server logged for sessions whose application_name is `app`.
    fn logged_statements(&self, app: &str) -> Vec<String> {
        let log = std::fs::read_to_string(self.cluster.log_file()).unwrap();
        let prefix = format!("{app}|LOG:  statement: ");
        log.lines()
            .filter_map(|line| line.strip_prefix(&prefix))
            .map(str::to_string)
            .collect()
    }
}

/// Runs `sluice-ledger verify` and fails the test (saying `when`) unless it passes.
fn assert_verifies(ledger: &Path, vkey: &Path, when: &str) {
    let verify = ledger_cli(&[
        "verify",
        &ledger.display().to_string(),
        "--key",
        &vkey.display().to_string(),
    ]);
    assert!(
        verify.status.success(),
        "verify failed {when}: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

fn ledger_cli(args: &[&str]) -> Output {
    Command::new(ledger_bin())
        .args(args)
        .output_within(Duration::from_secs(120))
        .unwrap()
}

/// Query texts the ledger holds, in ledger order, per session.
fn recorded_queries(ledger: &Path) -> Vec<(String, String)> {
    let storage = FsStorage::new(ledger.to_path_buf());
    let records = LedgerReader::new(&storage).records().expect("read ledger");
    let mut out = Vec::new();
    for record in records {
        if let Some(RecordBody::ClientMessage { bytes }) = record.body {
            if bytes.first() == Some(&b'Q') && bytes.len() > 6 {
                let sql = String::from_utf8_lossy(&bytes[5..bytes.len() - 1]).into_owned();
                out.push((record.descriptor.session.to_string(), sql));
            }
        }
    }
    out
}

fn stop(gw: &mut Gateway) {
    gw.signal(libc::SIGTERM);
    assert!(
        gw.wait_exit(Duration::from_secs(20)).is_some(),
        "gateway did not stop\n{}",
        gw.log_tail()
    );
}

#[test]
fn sessions_verify_list_and_replay_exactly() {
    let fx = Fixture::new("rec-replay");
    let ledger = fx.dir.join("ledger");
    let port = free_port();
    let mut gw = Gateway::start_with_config(fx.config(port, &ledger, "strict"), port);
    let statements = [
        "SELECT 1 AS one",
        "CREATE TABLE notes (id int, body text)",
        "INSERT INTO notes VALUES (1, 'naïve ''quoted'' text'); SELECT count(*) FROM notes",
    ];
    for sql in statements {
        let out = gw
            .agent("recdb")
            .command("psql")
            .args(["-X", "-c", sql])
            .output_within(Duration::from_secs(30))
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            gw.log_tail()
        );
    }
    let bench = gw
        .agent("recdb")
        .command("pgbench")
        .args(["-M", "extended", "-c", "2", "-t", "20", "-n"])
        .output_within(Duration::from_secs(120))
        .unwrap();
    let bench_out = String::from_utf8_lossy(&bench.stdout);
    assert!(
        bench.status.success() && bench_out.contains("number of failed transactions: 0"),
        "{bench_out}"
    );
    stop(&mut gw);

    let ledger_arg = ledger.display().to_string();
    assert_verifies(&ledger, &fx.vkey, "after psql and pgbench sessions");
    let sessions = ledger_cli(&["sessions", &ledger_arg]);
    let listing = String::from_utf8_lossy(&sessions.stdout).into_owned();
    assert!(sessions.status.success(), "{listing}");
    // 3 psql sessions, 2 pgbench clients and pgbench's own set-up
    // connection, all by the agent.
    let rows: Vec<&str> = listing
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(rows.len(), 6, "{listing}");
    assert!(
        rows.iter()
            .all(|r| r.split_whitespace().nth(1) == Some("agent")),
        "{listing}"
    );

    // Each psql statement is recorded exactly as sent, in order.
    let queries = recorded_queries(&ledger);
    let texts: Vec<&str> = queries.iter().map(|(_, q)| q.as_str()).collect();
    let positions: Vec<usize> = statements
        .iter()
        .map(|s| {
            texts
                .iter()
                .position(|t| t == s)
                .unwrap_or_else(|| panic!("{s:?} not recorded: {texts:?}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "out of order: {positions:?}"
    );
    // And the replay of that session shows it.
    let (session, _) = &queries[positions[2]];
    let replay = ledger_cli(&["replay", &ledger_arg, "--session", session]);
    let replay_text = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.status.success());
    assert!(
        replay_text.contains("session_opened") && replay_text.contains("session_closed"),
        "{replay_text}"
    );
    assert!(
        replay_text.contains("INSERT INTO notes VALUES (1, "),
        "{replay_text}"
    );
    // Extended protocol: pgbench's Parse messages carry its statements.
    let storage = FsStorage::new(ledger.clone());
    let parses = LedgerReader::new(&storage)
        .records()
        .unwrap()
        .into_iter()
        .filter(|r| matches!(&r.body, Some(RecordBody::ClientMessage { bytes }) if bytes.first() == Some(&b'P')))
        .count();
    assert!(
        parses >= 40,
        "expected pgbench's Parse messages in the ledger, found {parses}"
    );
}

/// `kill -9` during a pgbench run in strict mode, three times: every
/// statement PostgreSQL logged for the agent's sessions is in the ledger,
/// and the ledger verifies after each restart.
#[test]
fn crash_during_pgbench_loses_no_forwarded_statement() {
    let fx = Fixture::new("rec-crash");
    let ledger = fx.dir.join("ledger");
    for round in 0..3 {
        let port = free_port();
        let mut gw = Gateway::start_with_config(fx.config(port, &ledger, "strict"), port);
        let mut bench = gw
            .agent("recdb")
            .command("pgbench")
            .args(["-M", "simple", "-c", "4", "-T", "30", "-n"])
            .env("PGAPPNAME", format!("crash{round}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Let it run, then kill the gateway without warning.
        let deadline = Instant::now() + Duration::from_secs(20);
        while fx.logged_statements(&format!("crash{round}")).len() < 200 {
            assert!(
                Instant::now() < deadline,
                "pgbench made no progress\n{}",
                gw.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        gw.signal(libc::SIGKILL);
        gw.wait_exit(Duration::from_secs(10))
            .expect("killed gateway exits");
        let _ = bench.kill();
        let _ = bench.wait();

        // Restart (recovers the torn tail), then stop cleanly and verify.
        let port = free_port();
        let mut gw = Gateway::start_with_config(fx.config(port, &ledger, "strict"), port);
        stop(&mut gw);
        assert_verifies(
            &ledger,
            &fx.vkey,
            &format!("in round {round}, after kill -9"),
        );
        let mut recorded: HashMap<String, usize> = HashMap::new();
        for (_, q) in recorded_queries(&ledger) {
            *recorded.entry(q).or_default() += 1;
        }
        let mut logged: HashMap<String, usize> = HashMap::new();
        for q in fx.logged_statements(&format!("crash{round}")) {
            *logged.entry(q).or_default() += 1;
        }
        assert!(logged.values().sum::<usize>() >= 200);
        for (statement, count) in &logged {
            let have = recorded.get(statement).copied().unwrap_or(0);
            assert!(
                have >= *count,
                "round {round}: {statement:?} reached PostgreSQL {count} times but is recorded {have} times"
            );
        }
    }
}

/// The ledger on a small tmpfs: once it is full, statements are refused with
/// 53100 and none reaches PostgreSQL; after space is freed, service resumes
/// on the same session.
#[test]
fn disk_full_refuses_statements_and_recovers() {
    let fx = Fixture::new("rec-full");
    let mount = fx.dir.join("small");
    std::fs::create_dir_all(&mount).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(&mount)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.clone());
    let ledger = mount.join("ledger");
    let port = free_port();
    let gw = Gateway::start_with_config(fx.config(port, &ledger, "strict"), port);
    let mut c = gw
        .login(
            common::pgwire::Negotiation::SslRequest,
            "agent",
            Some(&env().token("agent")),
            "recdb",
        )
        .unwrap();
    assert_eq!(
        c.query_one("SELECT 'before'").unwrap().as_deref(),
        Some("before")
    );

    // Fill the file system, leaving no room for another ledger block.
    let filler = mount.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .output();
    let marker = "full_marker_7731";
    // Incompressible padding, so every statement needs new blocks on disk
    // (a few small records would still fit in the last partly used page).
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let padding: String = (0..32 * 1024)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            char::from(b"0123456789abcdef"[(seed % 16) as usize])
        })
        .collect();
    // The ledger keeps zeros written ahead of its segment (preallocated
    // space), so statements still fit until that space is used up too:
    // send until the first refusal, then check that it stays refused.
    let statements_max = 400;
    let mut first_refused = None;
    let mut refused = Vec::new();
    for i in 0..statements_max {
        match c.simple_query(&format!("SELECT '{marker}_{i}_', '{padding}'")) {
            Ok(_) => assert!(
                first_refused.is_none(),
                "statement {i} ran after the disk was full\n{}",
                gw.log_tail()
            ),
            Err(e) => {
                let text = format!("{e:?}");
                assert!(
                    text.contains("53100"),
                    "expected 53100, got {text}\n{}",
                    gw.log_tail()
                );
                first_refused.get_or_insert(i);
                refused.push(i);
                if refused.len() == 5 {
                    break;
                }
            }
        }
    }
    assert_eq!(
        refused.len(),
        5,
        "statements were not refused on a full disk\n{}",
        gw.log_tail()
    );
    // None of the refused statements reached PostgreSQL.
    let log = std::fs::read_to_string(fx.cluster.log_file()).unwrap();
    for i in &refused {
        let needle = format!("{marker}_{i}_");
        assert!(
            !log.contains(&needle),
            "refused statement {i} reached PostgreSQL"
        );
    }

    // Free the space: the ledger reopens and the same session works again.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match c.query_one("SELECT 'after'") {
            Ok(v) => {
                assert_eq!(v.as_deref(), Some("after"));
                break;
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "service did not resume: {e:?}\n{}",
                    gw.log_tail()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    c.terminate();
    let mut gw = gw;
    stop(&mut gw);

    // Nothing the agent sent or received while the disk was full is
    // missing: the refused statements (what the agent attempted) and the
    // refusals it received are in the ledger, in order, and it verifies.
    assert_verifies(&ledger, &fx.vkey, "after the disk-full episode");
    let queries: Vec<String> = recorded_queries(&ledger)
        .into_iter()
        .map(|(_, sql)| sql)
        .collect();
    let attempted_last = refused.last().copied().expect("five refusals");
    let markers: Vec<usize> = queries
        .iter()
        .filter_map(|sql| {
            let rest = sql.strip_prefix(&format!("SELECT '{marker}_"))?;
            rest.split('_').next()?.parse().ok()
        })
        .collect();
    assert_eq!(
        markers,
        (0..=attempted_last).collect::<Vec<_>>(),
        "every statement sent, refused or not, is recorded once, in order"
    );
    assert!(queries.iter().any(|q| q == "SELECT 'after'"));
    let storage = FsStorage::new(ledger.clone());
    let refusals_recorded = LedgerReader::new(&storage)
        .records()
        .unwrap()
        .into_iter()
        .filter(|r| match &r.body {
            Some(RecordBody::ServerMessage { bytes }) => bytes.windows(5).any(|w| w == b"53100"),
            _ => false,
        })
        .count();
    assert!(
        refusals_recorded >= refused.len(),
        "the refusals the agent received are recorded ({refusals_recorded} of {})",
        refused.len()
    );
}
