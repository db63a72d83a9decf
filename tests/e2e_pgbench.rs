//! End-to-end: pgbench through the real gateway in every query mode, with
//! the tables created directly against PostgreSQL (`pgbench -i`).
//! Transaction counts are bounded (-t) so each run takes a second or two.

mod common;

use std::time::Duration;

use common::*;

struct BenchResult {
    processed: u64,
    expected: u64,
    failed: u64,
    output: String,
}

fn pgbench(gw: &Gateway, args: &[&str]) -> BenchResult {
    env().ensure_bench();
    let out = gw
        .agent("bench")
        .command("pgbench")
        .arg("-n")
        .args(args)
        .output_within(Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("pgbench: {e}\n{}", gw.log_tail()));
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "pgbench {args:?} failed ({}):\n{output}\n--- sluice ---\n{}",
        out.status,
        gw.log_tail()
    );
    // "number of transactions actually processed: 400/400"
    let processed_line = output
        .lines()
        .find(|l| l.starts_with("number of transactions actually processed:"))
        .unwrap_or_else(|| panic!("no processed line in:\n{output}"));
    let counts = processed_line.rsplit(' ').next().unwrap();
    let (p, e) = counts.split_once('/').unwrap();
    // "number of failed transactions: 0 (0.000%)" (pgbench 15+).
    let failed = output
        .lines()
        .find(|l| l.starts_with("number of failed transactions:"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    BenchResult {
        processed: p.parse().unwrap(),
        expected: e.parse().unwrap(),
        failed,
        output,
    }
}

fn assert_clean(r: &BenchResult, want: u64) {
    assert_eq!(r.failed, 0, "failed transactions:\n{}", r.output);
    assert_eq!(r.expected, want, "{}", r.output);
    assert_eq!(r.processed, want, "{}", r.output);
}

#[test]
fn pgbench_simple() {
    let gw = Gateway::start(GatewayOpts::default());
    let r = pgbench(&gw, &["-M", "simple", "-c", "4", "-j", "2", "-t", "100"]);
    assert_clean(&r, 400);
}

#[test]
fn pgbench_extended() {
    let gw = Gateway::start(GatewayOpts::default());
    let r = pgbench(&gw, &["-M", "extended", "-c", "4", "-j", "2", "-t", "100"]);
    assert_clean(&r, 400);
}

#[test]
fn pgbench_prepared() {
    let gw = Gateway::start(GatewayOpts::default());
    let r = pgbench(&gw, &["-M", "prepared", "-c", "4", "-j", "2", "-t", "100"]);
    assert_clean(&r, 400);
    // Read-only, more clients than workers, many prepared executions.
    let r = pgbench(
        &gw,
        &["-S", "-M", "prepared", "-c", "8", "-j", "2", "-t", "250"],
    );
    assert_clean(&r, 2000);
}

#[test]
fn pgbench_new_connection_per_transaction() {
    let gw = Gateway::start(GatewayOpts::default());
    // -C: a full TLS handshake and SCRAM exchange for every transaction.
    let r = pgbench(
        &gw,
        &["-C", "-M", "simple", "-c", "2", "-j", "2", "-t", "40"],
    );
    assert_clean(&r, 80);
    let r = pgbench(
        &gw,
        &[
            "-C", "-S", "-M", "prepared", "-c", "2", "-j", "2", "-t", "40",
        ],
    );
    assert_clean(&r, 80);
}

/// pgbench straight to PostgreSQL: proves the harness and the expected
/// output format, independently of the gateway.
#[test]
fn pgbench_direct_baseline() {
    let env = env();
    env.ensure_bench();
    let out = env
        .direct("bench")
        .command("pgbench")
        .args(["-n", "-S", "-M", "prepared", "-c", "2", "-t", "50"])
        .output_within(Duration::from_secs(60))
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("number of transactions actually processed: 100/100"),
        "{text}"
    );
    assert!(text.contains("number of failed transactions: 0"), "{text}");
}
