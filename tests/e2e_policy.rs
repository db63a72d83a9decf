//! End-to-end: the demo policy enforced on the wire, through psql and a raw
//! protocol client (simple and extended protocol, inside and outside
//! transactions, pipelined). Blocked statements must have no effect.

mod common;

use std::io::Write as _;
use std::time::Duration;

use common::pgwire::{message, read_message, ConnectError, Negotiation, PgConn, PgError};
use common::*;

fn gateway() -> Gateway {
    let env = env();
    let port = free_port();
    let dir = env.unique_dir("policy");
    let mut config = config_toml(env, &GatewayOpts::default(), port);
    let policy = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/policy.demo.toml"),
    )
    .unwrap();
    config.push_str(&policy);
    let path = dir.join("sluice.toml");
    std::fs::write(&path, config).unwrap();
    Gateway::start_with_config(path, port)
}

fn login(gw: &Gateway) -> PgConn {
    gw.login_agent("app")
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()))
}

fn server_error(result: Result<impl std::fmt::Debug, ConnectError>) -> PgError {
    match result {
        Err(ConnectError::Server(e)) => e,
        other => panic!("expected an ErrorResponse, got {other:?}"),
    }
}

/// A scratch table made directly on PostgreSQL, so the test can check
/// that blocked statements left it alone.
fn scratch_table(name: &str) {
    env()
        .direct("app")
        .psql(&format!(
            "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id int); INSERT INTO {name} SELECT generate_series(1, 10);"
        ))
        .unwrap();
}

fn count(name: &str) -> String {
    env()
        .direct("app")
        .psql(&format!("SELECT count(*) FROM {name}"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn psql_blocked_statements_have_no_effect() {
    let gw = gateway();
    scratch_table("pol_psql");
    for sql in [
        "DROP TABLE pol_psql",
        "truncate pol_psql",
        "/* harmless */ ALTER TABLE pol_psql ADD COLUMN x int",
        "SELECT 1; DROP TABLE pol_psql",
        "GRANT ALL ON pol_psql TO PUBLIC",
    ] {
        let out = gw
            .agent("app")
            .command("psql")
            .args(["-X", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output_within(Duration::from_secs(30))
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{sql:?} was not refused");
        assert!(
            stderr.contains("not allowed through sluice"),
            "{sql:?}: {stderr}"
        );
    }
    assert_eq!(count("pol_psql"), "10");
    // Allowed statements still run.
    let out = gw
        .agent("app")
        .psql("UPDATE pol_psql SET id = id WHERE id = 3; SELECT count(*) FROM pol_psql")
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    assert_eq!(out.trim(), "10");
}

#[test]
fn block_inside_a_transaction_fails_the_block_like_postgresql() {
    let gw = gateway();
    scratch_table("pol_tx");
    let mut c = login(&gw);
    c.simple_query("BEGIN").unwrap();
    c.simple_query("INSERT INTO pol_tx VALUES (100)").unwrap();
    let e = server_error(c.simple_query("DROP TABLE pol_tx"));
    assert_eq!(e.code(), "42501", "{e}");
    // The server itself now holds the transaction as failed.
    let e = server_error(c.simple_query("SELECT 1"));
    assert_eq!(e.code(), "25P02", "{e}");
    c.simple_query("ROLLBACK").unwrap();
    assert_eq!(c.query_one("SELECT 1").unwrap().as_deref(), Some("1"));
    c.terminate();
    assert_eq!(
        count("pol_tx"),
        "10",
        "the INSERT must have been rolled back"
    );
}

/// Extended protocol, pipelined: [SELECT] [DROP] [SELECT] in one Sync. The
/// first runs, the DROP is refused with 42501 at Execute, and the server
/// skips the rest up to Sync, exactly as for an error of its own.
#[test]
fn extended_protocol_pipeline_is_refused_in_place() {
    let gw = gateway();
    scratch_table("pol_ext");
    let mut c = login(&gw);
    let mut out = Vec::new();
    for sql in ["SELECT 41", "DROP TABLE pol_ext", "SELECT 43"] {
        let mut parse = b"\0".to_vec(); // unnamed statement
        parse.extend_from_slice(sql.as_bytes());
        parse.extend_from_slice(&[0, 0, 0]);
        out.extend(message(b'P', &parse));
        out.extend(message(b'B', &[0; 8]));
        out.extend(message(b'E', &[0, 0, 0, 0, 0]));
    }
    out.extend(message(b'S', &[]));
    c.io.write_all(&out).unwrap();
    c.io.flush().unwrap();
    let mut kinds = Vec::new();
    let mut error = None;
    loop {
        let (kind, body) = read_message(&mut c.io).unwrap();
        kinds.push(kind as char);
        if kind == b'E' {
            error = Some(PgError::parse(&body));
        }
        if kind == b'Z' {
            assert_eq!(body, b"I");
            break;
        }
    }
    let error = error.expect("an ErrorResponse");
    assert_eq!(error.code(), "42501", "{error}");
    // Parse, Bind, DataRow, CommandComplete for SELECT 41; ParseComplete and
    // BindComplete for the DROP, then its error; nothing for SELECT 43.
    assert_eq!(kinds.iter().collect::<String>(), "12DC12EZ", "{kinds:?}");
    // The session goes on, and the table is intact.
    assert_eq!(c.query_one("SELECT 7").unwrap().as_deref(), Some("7"));
    c.terminate();
    assert_eq!(count("pol_ext"), "10");
}

#[test]
fn approval_class_is_refused_without_an_approval_service() {
    let gw = gateway();
    scratch_table("pol_approve");
    let mut c = login(&gw);
    for sql in [
        "DELETE FROM pol_approve",
        "UPDATE pol_approve SET id = 0 WHERE 1 = 1",
        "DO $$ BEGIN DELETE FROM pol_approve; END $$",
    ] {
        let e = server_error(c.simple_query(sql));
        assert_eq!(e.code(), "42501", "{sql}: {e}");
        assert!(e.message().contains("approval"), "{sql}: {e}");
    }
    // A WHERE that restricts is allowed.
    c.simple_query("DELETE FROM pol_approve WHERE id = 1")
        .unwrap();
    c.terminate();
    assert_eq!(count("pol_approve"), "9");
}

/// `PREPARE name AS <statement>` is decided by the statement it prepares,
/// and so is a later `EXECUTE name` of an allowed one.
#[test]
fn prepared_statements_are_decided_by_their_text() {
    let gw = gateway();
    scratch_table("pol_prep");
    let mut c = login(&gw);
    let e = server_error(c.simple_query("PREPARE p1 AS TRUNCATE pol_prep"));
    assert_eq!(e.code(), "42501", "{e}");
    // sluice still knows what p1 would be and refuses its EXECUTE too.
    let e = server_error(c.simple_query("EXECUTE p1"));
    assert_eq!(e.code(), "42501", "{e}");
    c.simple_query("PREPARE p2 AS SELECT count(*) FROM pol_prep")
        .unwrap();
    assert_eq!(c.query_one("EXECUTE p2").unwrap().as_deref(), Some("10"));
    c.terminate();
    assert_eq!(count("pol_prep"), "10");
}

fn parse_msg(name: &str, sql: &str) -> Vec<u8> {
    let mut body = name.as_bytes().to_vec();
    body.push(0);
    body.extend_from_slice(sql.as_bytes());
    body.extend_from_slice(&[0, 0, 0]);
    message(b'P', &body)
}

fn bind_msg(portal: &str, statement: &str) -> Vec<u8> {
    let mut body = portal.as_bytes().to_vec();
    body.push(0);
    body.extend_from_slice(statement.as_bytes());
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
    message(b'B', &body)
}

fn execute_msg(portal: &str) -> Vec<u8> {
    let mut body = portal.as_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 0, 0, 0]);
    message(b'E', &body)
}

fn close_statement_msg(name: &str) -> Vec<u8> {
    let mut body = vec![b'S'];
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    message(b'C', &body)
}

/// Sends `bytes` and reads `ready` ReadyForQuery messages; returns the
/// SQLSTATEs of the errors seen, in order.
fn exchange(c: &mut PgConn, bytes: &[u8], ready: usize) -> Vec<String> {
    c.io.write_all(bytes).unwrap();
    c.io.flush().unwrap();
    let mut codes = Vec::new();
    let mut seen = 0;
    while seen < ready {
        let (kind, body) = read_message(&mut c.io).unwrap();
        match kind {
            b'E' => codes.push(PgError::parse(&body).code().to_string()),
            b'Z' => seen += 1,
            _ => {}
        }
    }
    codes
}

/// Review finding: a named statement re-Parsed (which the server rejects
/// with "already exists") must not launder the original.
#[test]
fn reparsing_a_blocked_statement_does_not_launder_it() {
    let gw = gateway();
    scratch_table("pol_reparse");
    let mut c = login(&gw);
    let mut first = parse_msg("s1", "DROP TABLE pol_reparse");
    first.extend(message(b'S', &[]));
    assert!(exchange(&mut c, &first, 1).is_empty());
    let mut second = parse_msg("s1", "SELECT 1");
    second.extend(message(b'S', &[]));
    assert_eq!(exchange(&mut c, &second, 1), vec!["42P05"]);
    let mut run = bind_msg("", "s1");
    run.extend(execute_msg(""));
    run.extend(message(b'S', &[]));
    assert_eq!(exchange(&mut c, &run, 1), vec!["42501"]);
    c.terminate();
    assert_eq!(count("pol_reparse"), "10");
}

/// Review finding: a Close that the server skips (after an error in the
/// same batch) must not make sluice forget the statement.
#[test]
fn a_skipped_close_does_not_forget_a_blocked_statement() {
    let gw = gateway();
    scratch_table("pol_close");
    let mut c = login(&gw);
    let mut first = parse_msg("s1", "TRUNCATE pol_close");
    first.extend(message(b'S', &[]));
    assert!(exchange(&mut c, &first, 1).is_empty());
    // An error, then a Close the server skips, then Sync.
    let mut second = parse_msg("", "SELEC broken");
    second.extend(close_statement_msg("s1"));
    second.extend(message(b'S', &[]));
    assert_eq!(exchange(&mut c, &second, 1), vec!["42601"]);
    let mut run = bind_msg("", "s1");
    run.extend(execute_msg(""));
    run.extend(message(b'S', &[]));
    assert_eq!(exchange(&mut c, &run, 1), vec!["42501"]);
    c.terminate();
    assert_eq!(count("pol_close"), "10");
}

/// Review finding: `SET standard_conforming_strings = off` pipelined with a
/// statement that lexes differently under it.
#[test]
fn pipelined_lexing_change_cannot_hide_a_statement() {
    let gw = gateway();
    scratch_table("pol_scs");
    let mut c = login(&gw);
    let mut bytes = message(b'Q', b"SET standard_conforming_strings = off\0");
    bytes.extend(message(b'Q', b"SELECT '\\''; DROP TABLE pol_scs; --'\0"));
    let codes = exchange(&mut c, &bytes, 2);
    assert_eq!(codes, vec!["42501"], "the hidden DROP must be refused");
    c.terminate();
    assert_eq!(count("pol_scs"), "10");
}

/// Review finding: client encodings whose characters can contain ASCII
/// quote or backslash bytes are refused, at startup and by SET.
#[test]
fn unsafe_client_encodings_are_refused() {
    let gw = gateway();
    let tls = gw.tls();
    let io =
        common::pgwire::connect_transport(gw.addr, Negotiation::SslRequest, Some(&tls)).unwrap();
    let mut io = io;
    let startup = common::pgwire::startup_message(&[
        ("user", "agent"),
        ("database", "app"),
        ("client_encoding", "SJIS"),
    ]);
    let err = common::pgwire::expect_error_after(&mut io, &startup).unwrap();
    assert_eq!(err.code(), "0A000", "{err}");
    let mut c = login(&gw);
    for sql in [
        "SET client_encoding = 'SJIS'",
        "SET NAMES 'BIG5'",
        "SELECT set_config('client_encoding', 'GBK', false)",
    ] {
        let e = server_error(c.simple_query(sql));
        assert_eq!(e.code(), "42501", "{sql}: {e}");
    }
    assert_eq!(
        c.query_one("SHOW client_encoding").unwrap().as_deref(),
        Some("UTF8")
    );
    c.terminate();
}

/// asyncpg's copy_records_to_table: Parse, Describe and Flush (no Sync),
/// and once they are answered, COPY FROM STDIN as a simple Query. The
/// batch can no longer fail, so the server runs the Query and its
/// ReadyForQuery ends the batch: sluice accepts it. A Query sent before
/// the batch's answers arrived could be skipped by the server (if the
/// batch failed), which would make batches uncountable: that stays a
/// protocol violation, and a blocked statement cannot ride on it.
#[test]
fn a_query_after_an_answered_extended_batch_runs_and_an_unanswered_one_is_refused() {
    let gw = gateway();
    scratch_table("pol_after_flush");
    let mut c = login(&gw);
    let mut describe = parse_msg("s1", "SELECT id FROM pol_after_flush LIMIT 0");
    describe.extend(message(b'D', b"Ss1\0"));
    describe.extend(message(b'H', &[]));
    c.io.write_all(&describe).unwrap();
    c.io.flush().unwrap();
    let mut kinds = String::new();
    while !kinds.ends_with('T') {
        let (kind, _) = read_message(&mut c.io).unwrap();
        kinds.push(kind as char);
    }
    assert_eq!(kinds, "1tT");
    let rows = c
        .simple_query("INSERT INTO pol_after_flush VALUES (11) RETURNING id")
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    assert_eq!(rows, vec![vec![Some("11".to_string())]]);
    assert_eq!(
        c.query_one("SELECT count(*) FROM pol_after_flush")
            .unwrap()
            .as_deref(),
        Some("11")
    );
    c.terminate();

    // Sent together: the Parse is not answered when the Query arrives (and
    // it fails on the server, so the server would skip the Query).
    let mut c = login(&gw);
    let mut bytes = parse_msg("", "SELEC 1");
    bytes.extend(message(b'Q', b"DROP TABLE pol_after_flush\0"));
    c.io.write_all(&bytes).unwrap();
    c.io.flush().unwrap();
    let mut codes = Vec::new();
    while let Ok((kind, body)) = read_message(&mut c.io) {
        if kind == b'E' {
            codes.push(PgError::parse(&body).code().to_string());
        }
    }
    assert!(
        codes.iter().any(|c| c == "08P01"),
        "{codes:?}\n{}",
        gw.log_tail()
    );
    assert_eq!(count("pol_after_flush"), "11");
    gw.assert_serves();
}
