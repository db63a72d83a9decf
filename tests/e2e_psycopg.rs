//! End-to-end: psycopg 3 (tests/python/) through the real gateway. The
//! Python tests run under pytest from the project virtualenv that
//! scripts/setup.sh creates; this test starts PostgreSQL and sluice, hands
//! pytest the connection settings, and fails with pytest's report.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn psycopg3_through_the_gateway() {
    let python = venv_python();
    if !python.exists() {
        panic!(
            "{} is missing: run scripts/setup.sh (make test does) to create the \
             Python virtualenv with psycopg and pytest",
            python.display()
        );
    }
    let env = env();
    let gw = Gateway::start(GatewayOpts::default());
    let tests_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python");
    let out = Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-rfEs",
            "-p",
            "no:cacheprovider",
            tests_dir,
        ])
        .env("SLUICE_GW_PORT", gw.port.to_string())
        .env("SLUICE_AGENT", "agent")
        .env("SLUICE_TOKEN", env.token("agent"))
        .env("SLUICE_CA", &env.certs.ca_cert)
        .env("SLUICE_DIRECT_PORT", env.pg_port.to_string())
        .env("SLUICE_DIRECT_USER", UPSTREAM_USER)
        .env("SLUICE_DIRECT_PASSWORD", &env.upstream_password)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PGSSLMODE")
        .env_remove("PGHOST")
        .output_within(Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("pytest: {e}\n{}", gw.log_tail()));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{report}");
    assert!(
        out.status.success(),
        "psycopg tests failed ({}):\n{report}\n--- sluice ---\n{}",
        out.status,
        gw.log_tail()
    );
    assert!(report.contains(" passed"), "pytest ran no test:\n{report}");
}
