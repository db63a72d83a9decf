//! End-to-end: `sluice demo`, the path README's first command takes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The variables an env file exports (`export A=1 B=2`).
fn read_env_file(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs psql with exactly the variables of an env file.
fn psql_with(vars: &[(String, String)], sql: &str) -> Result<String, String> {
    let mut cmd = Command::new(Env::pg_program("psql"));
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .env("PGCONNECT_TIMEOUT", "10");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd
        .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output_within(Duration::from_secs(60))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn demo_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("sluice-e2e")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The demo's set-up alone (no gateway): seed, files, permissions.
#[test]
fn demo_prepare_seeds_postgres_and_writes_private_files() {
    let dir = demo_dir("demo-prepare");
    let options = sluice::demo::DemoOptions {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], free_port())),
        pg_port: free_port(),
        admin_listen: None,
    };
    let prepared = sluice::demo::prepare(&dir, &options).unwrap();
    let direct = read_env_file(&prepared.direct_env);
    assert_eq!(
        psql_with(&direct, "SELECT count(*) FROM customers")
            .unwrap()
            .trim(),
        sluice::devenv::seed::CUSTOMERS.to_string()
    );
    assert_eq!(
        psql_with(&direct, "SELECT count(*) FROM orders")
            .unwrap()
            .trim(),
        sluice::devenv::seed::ORDERS.to_string()
    );
    // PII really is in there, including inside free text and JSON.
    let n = psql_with(
        &direct,
        "SELECT count(*) FROM customers WHERE notes ~ '\\d{3}-\\d{2}-\\d{4}' \
         AND profile ? 'date_of_birth' AND email LIKE '%@example.%'",
    )
    .unwrap();
    assert!(n.trim().parse::<u32>().unwrap() > 50, "{n}");
    // Secrets are private; the token is only in agent.env, never in the config.
    for f in [
        "agent.env",
        "direct.env",
        "admin.env",
        "upstream.password",
        "tls/server.key",
        "tls/ca.key",
    ] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    let config = std::fs::read_to_string(&prepared.config_file).unwrap();
    assert!(!config.contains(&prepared.token), "token in sluice.toml");
    let password = std::fs::read_to_string(dir.join("upstream.password")).unwrap();
    assert!(
        !config.contains(password.trim()),
        "upstream password in sluice.toml"
    );
    let agent = read_env_file(&prepared.agent_env);
    assert!(agent.contains(&("PGPASSWORD".to_string(), prepared.token.clone())));
    assert!(agent.contains(&("PGSSLMODE".to_string(), "verify-full".to_string())));
    assert!(agent.contains(&("PGUSER".to_string(), "demo-agent".to_string())));
    // The approver's settings for `sluice approvals`; its token is not in the
    // config either (only its hash).
    let admin = read_env_file(&prepared.admin_env);
    let admin_token = admin
        .iter()
        .find(|(k, _)| k == "SLUICE_ADMIN_TOKEN")
        .map(|(_, v)| v.clone())
        .expect("SLUICE_ADMIN_TOKEN in admin.env");
    assert!(admin_token.starts_with("slt_"));
    assert!(
        !config.contains(&admin_token),
        "approver token in sluice.toml"
    );
    assert!(admin.contains(&(
        "SLUICE_ADMIN_URL".to_string(),
        format!("https://localhost:{}", options.admin_address().port())
    )));
    assert!(config.contains("[admin]") && config.contains("name = \"demo-approver\""));
    // The generated config is valid for the real binary.
    let out = Command::new(SLUICE)
        .arg("check-config")
        .arg(&prepared.config_file)
        .output_within(Duration::from_secs(30))
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Seeding again is a no-op (idempotent) and keeps the data.
    let password = password.trim().to_string();
    sluice::devenv::seed::apply(&prepared.cluster, "sluice_upstream", &password).unwrap();
    assert_eq!(
        psql_with(&direct, "SELECT count(*) FROM customers")
            .unwrap()
            .trim(),
        sluice::devenv::seed::CUSTOMERS.to_string()
    );
    drop(prepared);
    let _ = std::fs::remove_dir_all(&dir);
}

struct Demo {
    child: Child,
    log: PathBuf,
}

impl Demo {
    fn start(dir: &Path, port: u16, pg_port: u16) -> Demo {
        std::fs::create_dir_all(dir).unwrap();
        let log = dir.with_extension("log");
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(SLUICE)
            .arg("demo")
            .arg("--dir")
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--pg-port", &pg_port.to_string()])
            .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        let mut demo = Demo { child, log };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let ready = wait_for(Duration::from_secs(120), || {
            if let Ok(Some(status)) = demo.child.try_wait() {
                panic!("sluice demo exited with {status}:\n{}", demo.log_tail());
            }
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                .ok()
                .map(|_| ())
        });
        assert!(
            ready.is_some(),
            "sluice demo not ready:\n{}",
            demo.log_tail()
        );
        demo
    }

    fn log_tail(&self) -> String {
        sluice::devenv::postgres::tail_of_file(&self.log, 40)
    }

    fn stop(&mut self, signal: i32) -> Duration {
        let t0 = Instant::now();
        // SAFETY: signalling our own child, which has not been reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
        let status = wait_for(Duration::from_secs(30), || {
            self.child.try_wait().ok().flatten()
        });
        let status = status.unwrap_or_else(|| panic!("demo did not stop:\n{}", self.log_tail()));
        assert!(
            status.success(),
            "demo exited with {status}:\n{}",
            self.log_tail()
        );
        t0.elapsed()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `sluice demo` as a user runs it: start, `. agent.env && psql`, Ctrl-C,
/// start again (data kept, new token), SIGTERM.
#[test]
fn sluice_demo_runs_and_stops_cleanly() {
    let dir = demo_dir("demo-run");
    let (port, pg_port) = (free_port(), free_port());
    let mut demo = Demo::start(&dir, port, pg_port);
    let agent = read_env_file(&dir.join("agent.env"));
    let out = psql_with(&agent, "SELECT count(*) FROM customers")
        .unwrap_or_else(|e| panic!("{e}\n{}", demo.log_tail()));
    assert_eq!(out.trim(), "1000");
    let out = psql_with(
        &agent,
        "SELECT current_user, count(*) FROM orders GROUP BY 1",
    )
    .unwrap();
    assert_eq!(out.trim(), "sluice_upstream|5000");
    // Comparison path: the same database directly.
    let direct = read_env_file(&dir.join("direct.env"));
    assert_eq!(
        psql_with(&direct, "SELECT count(*) FROM orders")
            .unwrap()
            .trim(),
        "5000"
    );
    // Masking: the agent gets customers masked, direct.env the originals.
    let query = "SELECT email, phone, ssn, card_number, notes FROM customers \
                 WHERE ssn IS NOT NULL AND phone IS NOT NULL ORDER BY id LIMIT 1";
    let masked = psql_with(&agent, query).unwrap();
    let original = psql_with(&direct, query).unwrap();
    let (m, o): (Vec<&str>, Vec<&str>) = (
        masked.trim().split('|').collect(),
        original.trim().split('|').collect(),
    );
    assert_eq!(m.len(), 5, "{masked}");
    assert!(o[0].contains('@') && o[0].bytes().any(|b| b.is_ascii_alphabetic()));
    for (i, column) in ["email", "phone", "ssn"].iter().enumerate() {
        assert_ne!(m[i], o[i], "{column} not masked");
        assert!(
            !m[i].bytes().any(|b| b.is_ascii_alphanumeric()),
            "{column} not fully masked: {}",
            m[i]
        );
    }
    if !o[3].is_empty() {
        // Cards keep their last four digits.
        assert_ne!(m[3], o[3]);
        assert!(
            o[3].ends_with(&m[3][m[3].len() - 4..]),
            "{} / {}",
            m[3],
            o[3]
        );
    }
    for value in &o[..3] {
        assert!(
            !masked.contains(value),
            "{value} reached the agent: {masked}"
        );
    }
    // The approver's CLI reaches the demo's admin listener with admin.env.
    let admin = read_env_file(&dir.join("admin.env"));
    let out = Command::new(SLUICE)
        .args(["approvals", "list"])
        .env_clear()
        .envs(admin.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output_within(Duration::from_secs(30))
        .unwrap();
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("no pending approvals"),
        "{out:?}\n{}",
        demo.log_tail()
    );
    // A wrong token is refused.
    let mut wrong = agent.clone();
    wrong.retain(|(k, _)| k != "PGPASSWORD");
    wrong.push(("PGPASSWORD".into(), "slt_wrong".into()));
    assert!(psql_with(&wrong, "SELECT 1").is_err());
    // Leave a mark that must survive a restart.
    psql_with(
        &agent,
        "UPDATE customers SET notes = 'kept across restarts' WHERE id = 1",
    )
    .unwrap();

    let took = demo.stop(libc::SIGINT);
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", pg_port)).is_err(),
        "PostgreSQL still running after the demo stopped"
    );
    drop(demo);

    let mut demo = Demo::start(&dir, port, pg_port);
    let agent2 = read_env_file(&dir.join("agent.env"));
    let token =
        |v: &[(String, String)]| v.iter().find(|(k, _)| k == "PGPASSWORD").unwrap().1.clone();
    assert_ne!(
        token(&agent),
        token(&agent2),
        "token not rotated on restart"
    );
    assert!(
        psql_with(&agent, "SELECT 1").is_err(),
        "old token still accepted"
    );
    let out = psql_with(&agent2, "SELECT notes FROM customers WHERE id = 1").unwrap();
    assert_eq!(out.trim(), "kept across restarts");
    demo.stop(libc::SIGTERM);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(dir.with_extension("log"));
}
