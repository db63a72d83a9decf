//! End-to-end tests of the `sluice-loadgen` binary: the clients against the
//! mock backends and against a real PostgreSQL (started by the appliance's
//! devenv harness), unreachable targets and bad arguments. Runs are bounded
//! to about a second each, on loopback.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use sluice::devenv::postgres::{Cluster, ClusterOptions, SslFiles};

const BINARY: &str = env!("CARGO_BIN_EXE_sluice-loadgen");

/// A mock backend child, killed (by its own id) when dropped.
struct Backend {
    child: Child,
    address: String,
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn backend(arguments: &[&str]) -> Backend {
    let mut child = Command::new(BINARY)
        .arg("backend")
        .args(arguments)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the mock backend");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .rsplit(' ')
        .next()
        .expect("listening line")
        .to_string();
    assert!(
        line.contains("listening on"),
        "unexpected first line {line:?}"
    );
    Backend { child, address }
}

fn loadgen(arguments: &[&str]) -> Output {
    Command::new(BINARY)
        .args(arguments)
        .env_remove("PGHOST")
        .env_remove("PGPORT")
        .env_remove("PGUSER")
        .env_remove("PGPASSWORD")
        .env_remove("PGDATABASE")
        .env_remove("PGSSLMODE")
        .env_remove("PGSSLROOTCERT")
        .output()
        .expect("run sluice-loadgen")
}

fn summary(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "sluice-loadgen failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).expect("--json prints one JSON object")
}

fn number(value: &serde_json::Value, field: &str) -> f64 {
    value[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} missing in {value}"))
}

/// A run that made more than `requests_more_than` requests, none of them
/// answered with an error and none failed; `context` names the run in the
/// failure message.
fn assert_clean(run: &serde_json::Value, requests_more_than: f64, context: &str) {
    assert!(
        number(run, "requests") > requests_more_than,
        "{context}: {run}"
    );
    assert_eq!(number(run, "errors"), 0.0, "{context}: {run}");
    assert_eq!(number(run, "failed"), 0.0, "{context}: {run}");
}

#[test]
fn pg_against_the_mock_backend_in_every_mode() {
    let mock = backend(&["pg", "--rows", "3", "--row-bytes", "10"]);
    let url = format!("postgresql://tester@{}/db?sslmode=disable", mock.address);
    for mode in ["simple", "extended", "prepared"] {
        let output = loadgen(&[
            "pg",
            "--url",
            &url,
            "--sql",
            "select $1",
            "--param",
            "int:1:9",
            "--mode",
            mode,
            "--duration",
            "1s",
            "-c",
            "4",
            "--pipeline",
            "4",
            "--threads",
            "2",
            "--json",
        ]);
        let run = summary(&output);
        assert_clean(&run, 100.0, mode);
        // Every answer carries three rows of ten bytes: at least 3 * 15
        // bytes of DataRow per request.
        assert!(
            number(&run, "bytes_received") >= number(&run, "requests") * 45.0,
            "{mode}: {run}"
        );
        assert!(
            run["latency_us"]["p50"].as_f64().unwrap() > 0.0,
            "{mode}: {run}"
        );
    }
}

#[test]
fn open_loop_holds_the_rate() {
    let mock = backend(&["pg"]);
    let url = format!("postgresql://tester@{}/db?sslmode=disable", mock.address);
    let run = summary(&loadgen(&[
        "pg",
        "--url",
        &url,
        "--sql",
        "select 1",
        "--rate",
        "400",
        "-c",
        "4",
        "--duration",
        "1s",
        "--json",
    ]));
    let requests = number(&run, "requests");
    // 400 are due in the window; the last few may still be in flight at
    // the deadline.
    assert!((360.0..=401.0).contains(&requests), "{run}");
    assert_eq!(run["loop_kind"], "open");
}

#[test]
fn pg_against_a_real_postgresql_with_scram_and_tls() {
    let dir = tempfile::Builder::new()
        .prefix("loadgen-pg-")
        .tempdir_in(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .unwrap();
    let certs =
        sluice::devenv::certs::generate(&dir.path().join("tls"), &["localhost", "127.0.0.1"], &[])
            .unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut cluster = Cluster::start(
        dir.path(),
        port,
        ClusterOptions {
            ssl: Some(SslFiles {
                cert: certs.server_cert.clone(),
                key: certs.server_key.clone(),
            }),
            ..ClusterOptions::default()
        },
    )
    .expect("PostgreSQL");
    cluster
        .psql_admin("SET password_encryption = 'scram-sha-256'; CREATE ROLE loader LOGIN PASSWORD 'p@ss word';")
        .unwrap();
    // SCRAM over TLS, verified; the password is percent-encoded in the URL.
    let url = format!(
        "postgresql://loader:p%40ss%20word@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={}",
        certs.ca_cert.display()
    );
    for mode in ["simple", "prepared"] {
        let run = summary(&loadgen(&[
            "pg",
            "--url",
            &url,
            "--sql",
            "select $1::int + 1",
            "--param",
            "int:1:1000",
            "--mode",
            mode,
            "--duration",
            "1s",
            "-c",
            "2",
            "--json",
        ]));
        assert_clean(&run, 10.0, mode);
    }
    // A new connection per request (scenario 4 of bench/compare).
    let run = summary(&loadgen(&[
        "pg",
        "--url",
        &url,
        "--sql",
        "select 1",
        "--reconnect",
        "--duration",
        "1s",
        "--json",
    ]));
    assert_clean(&run, 1.0, "a connection per request");
    // The PG* environment variables are used when there is no URL.
    let output = Command::new(BINARY)
        .args(["pg", "--sql", "select 1", "--duration", "300ms", "--json"])
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", port.to_string())
        .env("PGUSER", "loader")
        .env("PGPASSWORD", "p@ss word")
        .env("PGDATABASE", "postgres")
        .env("PGSSLMODE", "require")
        .output()
        .unwrap();
    assert!(number(&summary(&output), "requests") > 0.0);
    // Statements that fail are counted as errors with their SQLSTATE, and a
    // run in which nothing succeeds exits 1.
    let output = loadgen(&[
        "pg",
        "--url",
        &url,
        "--sql",
        "select * from no_such_table",
        "--duration",
        "300ms",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no request succeeded") && stderr.contains("42P01"),
        "{stderr}"
    );
    assert!(stdout.contains("42P01"), "{stdout}");
    // A wrong password is refused with PostgreSQL's own SQLSTATE.
    let bad = url.replace("p%40ss%20word", "wrong");
    let output = loadgen(&[
        "pg",
        "--url",
        &bad,
        "--sql",
        "select 1",
        "--duration",
        "300ms",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("28P01"));
    // verify-full with the wrong CA fails the handshake.
    let other =
        sluice::devenv::certs::generate(&dir.path().join("other"), &["127.0.0.1"], &[]).unwrap();
    let wrong_ca = url.replace(
        &certs.ca_cert.display().to_string(),
        &other.ca_cert.display().to_string(),
    );
    let output = loadgen(&[
        "pg",
        "--url",
        &wrong_ca,
        "--sql",
        "select 1",
        "--duration",
        "300ms",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("TLS"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    cluster.stop().unwrap();
}

#[test]
fn http_against_the_mock_backend() {
    let mock = backend(&["http", "--body-bytes", "100"]);
    let url = format!("http://{}/path?q=1", mock.address);
    let run = summary(&loadgen(&[
        "http",
        "--url",
        &url,
        "-c",
        "4",
        "--pipeline",
        "8",
        "--duration",
        "1s",
        "--json",
    ]));
    assert_clean(&run, 100.0, "GET, pipelined");
    assert!(
        number(&run, "bytes_received") >= number(&run, "requests") * 100.0,
        "{run}"
    );
    let run = summary(&loadgen(&[
        "http",
        "--url",
        &url,
        "-X",
        "POST",
        "--body-size",
        "5000",
        "-H",
        "X-Test: 1",
        "--duration",
        "500ms",
        "--json",
    ]));
    assert_clean(&run, 10.0, "POST with a body and a header");
}

#[test]
fn mock_backends_answer_bad_input_with_protocol_errors() {
    let http = backend(&["http"]);
    let mut stream = TcpStream::connect(&http.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(b"GET / HTTP/9.9\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 505 "), "{answer}");
    assert!(answer.contains("Connection: close"));

    let pg = backend(&["pg"]);
    let mut stream = TcpStream::connect(&pg.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // A startup packet claiming protocol 9.0.
    stream
        .write_all(b"\x00\x00\x00\x08\x00\x09\x00\x00")
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    assert_eq!(answer.first(), Some(&b'E'));
    assert!(String::from_utf8_lossy(&answer).contains("08P01"));
}

#[test]
fn unreachable_targets_are_clear_errors() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("postgresql://u@127.0.0.1:{closed}/db?sslmode=disable");
    let output = loadgen(&["pg", "--url", &url, "--sql", "select 1", "--duration", "1s"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot connect to postgresql://u@127.0.0.1:{closed}/db"
        )) && stderr.contains("refused"),
        "{stderr}"
    );
    let url = format!("http://127.0.0.1:{closed}/");
    let output = loadgen(&["http", "--url", &url, "--duration", "1s"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("refused"));
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    for (arguments, expected) in [
        (
            &["pg", "--sql", "select 1", "--pipeline", "0"][..],
            "--pipeline must be between 1 and 1024",
        ),
        (
            &["pg", "--url", "mysql://x/y", "--sql", "select 1"][..],
            "unsupported scheme",
        ),
        (
            &["http", "--url", "http://h/", "--threads", "999"][..],
            "--threads must be between",
        ),
        (&["pg", "--no-such-flag"][..], "unexpected argument"),
        (
            &["backend", "pg", "--listen", "not-an-address"][..],
            "invalid value",
        ),
    ] {
        let output = loadgen(arguments);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{arguments:?}: {stderr}");
    }
}
