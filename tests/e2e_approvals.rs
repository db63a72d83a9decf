//! End-to-end: statements held for human approval, through real clients
//! (psql and a raw protocol client here; psycopg in tests/python_approvals),
//! decided with the real `sluice approvals` CLI over the TLS admin listener.
//! The database side is checked after every outcome: a held statement runs
//! exactly once after approval and never after deny, timeout or cancel.

mod common;

use std::io::{Read, Write as _};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::pgwire::{message, read_message, ConnectError, Negotiation, PgConn, PgError};
use common::*;
use sluice::admin::client::{self, ClientTls, HttpUrl};
use sluice_ledger::{FsStorage, LedgerReader, RecordBody};

/// The test policy: like the demo's, plus a short timeout on target
/// "secret" and an approver group "ops" for UPDATEs on target "bench".
const POLICY: &str = r#"
[policy]
default = "allow"
unknown = "approve"
approver_group = "dba"
approval_timeout_ms = 60000

[[policy.rules]]
id = "block-destructive-ddl"
classes = ["drop", "truncate", "alter"]
action = "block"
message = "DROP, TRUNCATE and ALTER are not allowed through sluice."

[[policy.rules]]
id = "quick-timeout"
targets = ["secret"]
classes = ["update_no_where", "delete_no_where"]
action = "approve"
timeout_ms = 1500

[[policy.rules]]
id = "approve-unbounded-writes"
classes = ["update_no_where", "delete_no_where"]
action = "approve"
"#;

struct Approvals {
    gw: Gateway,
    admin_url: String,
    alice: String,
    bob: String,
    webhook: mpsc::Receiver<String>,
    ledger_dir: std::path::PathBuf,
}

/// A minimal HTTP receiver for the webhook: answers 200 to every POST and
/// hands the bodies to the test.
fn webhook_receiver() -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            let body = loop {
                let Ok(n) = stream.read(&mut buf) else {
                    break None;
                };
                if n == 0 {
                    break None;
                }
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        break Some(body[..length].to_string());
                    }
                }
            };
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            if let Some(body) = body {
                let _ = tx.send(body);
            }
        }
    });
    (port, rx)
}

fn start(workers: usize) -> Approvals {
    let env = env();
    let port = free_port();
    let admin_port = free_port();
    let dir = env.unique_dir("approvals");
    let (webhook_port, webhook) = webhook_receiver();
    let alice = sluice::auth::token::generate_token();
    let bob = sluice::auth::token::generate_token();
    let hash = |t: &str| sluice::auth::token::hash_token(t, 4096).to_string();
    let key = dir.join("ledger.key");
    let vkey = dir.join("ledger.vkey");
    let signer = sluice_ledger::SignerKey::generate("sluice.e2e").unwrap();
    sluice_ledger::keys::write_key_pair(&signer, &key, &vkey).unwrap();
    let ledger_dir = dir.join("ledger");
    let opts = GatewayOpts {
        workers,
        ..GatewayOpts::default()
    };
    let mut config = config_toml(env, &opts, port);
    config.push_str(&format!(
        "[ledger]\ndirectory = \"{}\"\nkey_file = \"{}\"\norigin = \"sluice.e2e/ledger\"\ndurability = \"strict\"\n\n\
         [admin]\nlisten = \"127.0.0.1:{admin_port}\"\nrequest_timeout_ms = 5000\n\n\
         [approvals]\npending_max = 16\nwait_ms_max = 120000\n\n\
         [approvals.webhook]\nurl = \"http://127.0.0.1:{webhook_port}/hooks/sluice\"\ntimeout_ms = 2000\nqueue_max = 8\n\n\
         [[approvers]]\nname = \"alice\"\ngroups = [\"dba\"]\ntoken_hash = \"{}\"\n\n\
         [[approvers]]\nname = \"bob\"\ngroups = [\"ops\"]\ntoken_hash = \"{}\"\n",
        ledger_dir.display(),
        key.display(),
        hash(&alice),
        hash(&bob),
    ));
    config.push_str(POLICY);
    let path = dir.join("sluice.toml");
    std::fs::write(&path, config).unwrap();
    let gw = Gateway::start_with_config(path, port);
    // The agent port accepts first; the admin listener binds a moment later.
    let admin_addr = std::net::SocketAddr::from(([127, 0, 0, 1], admin_port));
    wait_for(READY_TIMEOUT, || {
        std::net::TcpStream::connect_timeout(&admin_addr, Duration::from_millis(200)).ok()
    })
    .unwrap_or_else(|| panic!("admin listener not up\n{}", gw.log_tail()));
    Approvals {
        gw,
        admin_url: format!("https://localhost:{admin_port}"),
        alice,
        bob,
        webhook,
        ledger_dir,
    }
}

impl Approvals {
    /// The real CLI as approver `token`.
    fn cli(&self, token: &str, args: &[&str]) -> Output {
        Command::new(SLUICE)
            .arg("approvals")
            .args(args)
            .env_clear()
            .env("SLUICE_ADMIN_URL", &self.admin_url)
            .env("SLUICE_ADMIN_TOKEN", token)
            .env("SLUICE_ADMIN_CA", &env().certs.ca_cert)
            .output_within(Duration::from_secs(30))
            .unwrap()
    }

    fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(&self.alice, args);
        assert!(
            out.status.success(),
            "sluice approvals {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.gw.log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Pending approvals as JSON (through the CLI).
    fn pending(&self) -> Vec<serde_json::Value> {
        let text = self.cli_ok(&["list", "--json"]);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value["approvals"].as_array().cloned().unwrap_or_default()
    }

    /// Waits for a pending approval whose statement contains `needle`.
    fn wait_pending(&self, needle: &str) -> serde_json::Value {
        wait_for(Duration::from_secs(20), || {
            self.pending()
                .into_iter()
                .find(|v| v["statement"].as_str().is_some_and(|s| s.contains(needle)))
        })
        .unwrap_or_else(|| panic!("no pending approval for {needle:?}\n{}", self.gw.log_tail()))
    }

    /// One raw admin API request with the project's HTTP client over TLS.
    fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, serde_json::Value) {
        let url = HttpUrl::from_str(&format!("{}{path}", self.admin_url)).unwrap();
        let tls = ClientTls::new(Some(&env().certs.ca_cert)).unwrap();
        let authorization = token.map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(a) = &authorization {
            headers.push(("Authorization", a.as_str()));
        }
        let response = client::request(
            &url,
            method,
            &headers,
            body.as_bytes(),
            Duration::from_secs(10),
            Some(&tls),
            1 << 20,
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.gw.log_tail()));
        let value = serde_json::from_slice(&response.body).unwrap_or(serde_json::Value::Null);
        (response.status, value)
    }

    fn metrics(&self) -> String {
        let url = HttpUrl::from_str(&format!("{}/metrics", self.admin_url)).unwrap();
        let tls = ClientTls::new(Some(&env().certs.ca_cert)).unwrap();
        let authorization = format!("Bearer {}", self.alice);
        let response = client::request(
            &url,
            "GET",
            &[("Authorization", &authorization)],
            b"",
            Duration::from_secs(10),
            Some(&tls),
            1 << 20,
        )
        .unwrap();
        assert_eq!(response.status, 200);
        String::from_utf8(response.body).unwrap()
    }

    fn login(&self, db: &str) -> PgConn {
        self.gw
            .login_agent(db)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.gw.log_tail()))
    }
}

fn scratch_table(name: &str) {
    env()
        .direct("app")
        .psql(&format!(
            "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id int); INSERT INTO {name} SELECT generate_series(1, 10);"
        ))
        .unwrap();
}

fn direct(sql: &str) -> String {
    env().direct("app").psql(sql).unwrap().trim().to_string()
}

fn count(name: &str) -> String {
    direct(&format!("SELECT count(*) FROM {name}"))
}

/// Sends a simple Query and reads up to the NoticeResponse announcing the
/// hold; returns the approval id it names.
fn send_held_query(c: &mut PgConn, sql: &str) -> String {
    let mut q = sql.as_bytes().to_vec();
    q.push(0);
    c.io.write_all(&message(b'Q', &q)).unwrap();
    c.io.flush().unwrap();
    read_hold_notice(c)
}

fn read_hold_notice(c: &mut PgConn) -> String {
    loop {
        let (kind, body) = read_message(&mut c.io).unwrap();
        if kind == b'N' {
            let notice = PgError::parse(&body);
            let message = notice.message().to_string();
            let id = message
                .split("approval id ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("no approval id in notice {message:?}"));
            return id.to_string();
        }
        assert!(
            kind != b'Z' && kind != b'E',
            "expected a hold notice, got {:?}",
            kind as char
        );
    }
}

/// Reads to ReadyForQuery: (message kinds, first error).
fn read_to_ready(c: &mut PgConn) -> (String, Option<PgError>) {
    let mut kinds = String::new();
    let mut error = None;
    loop {
        let (kind, body) = read_message(&mut c.io).unwrap();
        kinds.push(kind as char);
        if kind == b'E' && error.is_none() {
            error = Some(PgError::parse(&body));
        }
        if kind == b'Z' {
            return (kinds, error);
        }
    }
}

fn server_error(result: Result<impl std::fmt::Debug, ConnectError>) -> PgError {
    match result {
        Err(ConnectError::Server(e)) => e,
        other => panic!("expected an ErrorResponse, got {other:?}"),
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_child(child: &mut KillOnDrop, timeout: Duration) -> (bool, String, String) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            let mut out = String::new();
            let mut err = String::new();
            child
                .0
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            child
                .0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.success(), out, err);
        }
        assert!(Instant::now() < deadline, "psql did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The README's flow: psql runs `DELETE FROM t` and waits; the approver
/// lists and approves with the CLI; the DELETE runs exactly once. A second
/// approve is a conflict; `show` reports the decision; the webhook got the
/// request; the ledger holds the request and the decision.
#[test]
fn psql_statement_runs_once_after_cli_approve() {
    let a = start(2);
    scratch_table("apr_psql");
    let mut psql = KillOnDrop(
        a.gw.agent("app")
            .command("psql")
            .args(["-X", "-v", "ON_ERROR_STOP=1", "-c", "DELETE FROM apr_psql"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let view = a.wait_pending("DELETE FROM apr_psql");
    let id = view["id"].as_str().unwrap().to_string();
    assert_eq!(view["agent"], "agent");
    assert_eq!(view["target"], "app");
    assert_eq!(view["rule"], "approve-unbounded-writes");
    assert_eq!(view["approver_group"], "dba");
    assert_eq!(view["statement"], "DELETE FROM apr_psql");
    // Held: nothing ran, and psql is still waiting.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        psql.0.try_wait().unwrap().is_none(),
        "psql finished while held"
    );
    assert_eq!(count("apr_psql"), "10");
    let table = a.cli_ok(&["list"]);
    assert!(
        table.contains(&id) && table.contains("DELETE FROM apr_psql"),
        "{table}"
    );

    let out = a.cli_ok(&["approve", &id, "--reason", "cleanup ticket 42"]);
    assert!(out.contains("approved"), "{out}");
    let (ok, stdout, stderr) = wait_child(&mut psql, Duration::from_secs(20));
    assert!(ok, "psql failed: {stderr}\n{}", a.gw.log_tail());
    assert!(stdout.contains("DELETE 10"), "{stdout}");
    assert!(
        stderr.contains(&format!("approval id {id}")),
        "the notice names the id: {stderr}"
    );
    assert_eq!(count("apr_psql"), "0");

    // Exactly once: a second decision conflicts and nothing runs again.
    let again = a.cli(&a.alice, &["approve", &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("409"),
        "{again:?}"
    );
    let shown = a.cli_ok(&["show", &id]);
    assert!(
        shown.contains("approved")
            && shown.contains("alice")
            && shown.contains("cleanup ticket 42"),
        "{shown}"
    );

    // The webhook received a Slack-compatible notification.
    let body = a
        .webhook
        .recv_timeout(Duration::from_secs(10))
        .expect("webhook not called");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(json["text"].as_str().unwrap().contains(&id), "{body}");
    assert_eq!(json["approval"]["statement"], "DELETE FROM apr_psql");

    // The ledger: the request and the decision, with approver, rule, reason
    // and both times.
    let mut gw = a.gw;
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(Duration::from_secs(20)).is_some());
    let storage = FsStorage::new(a.ledger_dir.clone());
    let events: Vec<(String, String, String)> = LedgerReader::new(&storage)
        .records()
        .unwrap()
        .into_iter()
        .filter_map(|r| match r.body {
            Some(RecordBody::ApprovalEvent {
                approval_id,
                approver,
                outcome,
                detail,
            }) if approval_id == id => Some((approver, outcome, detail)),
            _ => None,
        })
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].1, "requested");
    assert!(
        events[0].2.contains("rule=approve-unbounded-writes"),
        "{events:?}"
    );
    let (approver, outcome, detail) = &events[1];
    assert_eq!((approver.as_str(), outcome.as_str()), ("alice", "approved"));
    assert!(
        detail.contains("reason=cleanup ticket 42")
            && detail.contains("requested_ns=")
            && detail.contains("decided_ns="),
        "{detail}"
    );
    // The verifier's replay of that session shows the decision too.
    let session = view["session"].as_str().unwrap();
    let replay = Command::new(ledger_bin())
        .args([
            "replay",
            &a.ledger_dir.display().to_string(),
            "--session",
            session,
        ])
        .output_within(Duration::from_secs(60))
        .unwrap();
    let replay = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.contains(&format!("approval {id} approved by alice")),
        "{replay}"
    );
}

/// Deny, timeout and cancel, outside and inside a transaction block:
/// 42501 naming the approver (and reason) or the timeout, 57014 for a
/// cancel, and the table is untouched each time.
#[test]
fn deny_timeout_and_cancel_never_run_the_statement() {
    let a = start(2);
    scratch_table("apr_deny");
    let mut c = a.login("app");

    // Deny, outside a transaction.
    let id = send_held_query(&mut c, "DELETE FROM apr_deny");
    assert!(a
        .cli_ok(&["deny", &id, "--reason", "not today"])
        .contains("denied"));
    let (_, error) = read_to_ready(&mut c);
    let error = error.expect("an error after deny");
    assert_eq!(error.code(), "42501", "{error}");
    assert!(
        error.message().contains("alice") && error.message().contains("not today"),
        "{error}"
    );
    assert_eq!(count("apr_deny"), "10");

    // Deny inside a transaction block: the block fails as PostgreSQL's own
    // errors fail it, and the earlier INSERT is rolled back.
    c.simple_query("BEGIN").unwrap();
    c.simple_query("INSERT INTO apr_deny VALUES (100)").unwrap();
    let id = send_held_query(&mut c, "UPDATE apr_deny SET id = 0");
    a.cli_ok(&["deny", &id]);
    let (_, error) = read_to_ready(&mut c);
    assert_eq!(error.unwrap().code(), "42501");
    let e = server_error(c.simple_query("SELECT 1"));
    assert_eq!(e.code(), "25P02", "{e}");
    c.simple_query("ROLLBACK").unwrap();
    assert_eq!(direct("SELECT count(*), sum(id) FROM apr_deny"), "10|55");

    // Cancel while held: 57014 like PostgreSQL, and the request is gone.
    let key = c.backend_key.expect("BackendKeyData");
    let id = send_held_query(&mut c, "DELETE FROM apr_deny");
    common::pgwire::cancel_request(a.gw.addr, Negotiation::SslRequest, Some(&a.gw.tls()), key)
        .unwrap();
    let (_, error) = read_to_ready(&mut c);
    let error = error.expect("an error after cancel");
    assert_eq!(error.code(), "57014", "{error}");
    assert!(a.pending().is_empty());
    let (status, view) = a.api("GET", &format!("/v1/approvals/{id}"), Some(&a.alice), "");
    assert_eq!((status, view["status"].as_str()), (200, Some("cancelled")));
    assert_eq!(count("apr_deny"), "10");
    // The session is still usable.
    assert_eq!(c.query_one("SELECT 5").unwrap().as_deref(), Some("5"));
    c.terminate();

    // Timeout (target "secret" waits 1.5 s).
    let mut s = a.login("secret");
    let started = Instant::now();
    let id = send_held_query(&mut s, "DELETE FROM apr_deny");
    let (_, error) = read_to_ready(&mut s);
    let error = error.expect("an error after the timeout");
    assert_eq!(error.code(), "42501", "{error}");
    assert!(
        error.message().contains("timeout of 1500 ms") && error.message().contains(&id),
        "{error}"
    );
    assert!(started.elapsed() >= Duration::from_millis(1400));
    // An approval after the timeout is a conflict and runs nothing.
    let late = a.cli(&a.alice, &["approve", &id]);
    assert_eq!(late.status.code(), Some(1), "{late:?}");
    s.terminate();
    assert_eq!(count("apr_deny"), "10");
}

/// An approval binds to the exact statement in its session: the same
/// statement again is held again, unless the approver granted a window for
/// that class; other classes are still held.
#[test]
fn approval_binds_to_the_statement_unless_a_window_is_granted() {
    let a = start(2);
    scratch_table("apr_bind");
    let mut c = a.login("app");
    let first = send_held_query(&mut c, "UPDATE apr_bind SET id = id + 100");
    let hash = a.wait_pending("apr_bind")["statement_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(hash.len(), 64);
    a.cli_ok(&["approve", &first]);
    let (kinds, error) = read_to_ready(&mut c);
    assert!(error.is_none() && kinds.contains('C'), "{kinds} {error:?}");
    assert_eq!(direct("SELECT sum(id) FROM apr_bind"), "1055");

    // The same statement again needs a new approval (same hash, new id).
    let second = send_held_query(&mut c, "UPDATE apr_bind SET id = id + 100");
    assert_ne!(first, second);
    assert_eq!(
        a.wait_pending("apr_bind")["statement_sha256"],
        hash.as_str()
    );
    a.cli_ok(&["approve", &second, "--window", "1m"]);
    read_to_ready(&mut c);
    assert_eq!(direct("SELECT sum(id) FROM apr_bind"), "2055");

    // Inside the window, the same class runs without a hold.
    assert!(c.simple_query("UPDATE apr_bind SET id = id - 1").is_ok());
    assert_eq!(direct("SELECT sum(id) FROM apr_bind"), "2045");
    assert!(a.pending().is_empty());
    // Another class (DELETE without WHERE) is still held.
    let third = send_held_query(&mut c, "DELETE FROM apr_bind");
    a.cli_ok(&["deny", &third]);
    let (_, error) = read_to_ready(&mut c);
    assert_eq!(error.unwrap().code(), "42501");
    c.terminate();
    assert_eq!(count("apr_bind"), "10");

    // The window belongs to that session only.
    let mut other = a.login("app");
    let fourth = send_held_query(&mut other, "UPDATE apr_bind SET id = id - 1");
    a.cli_ok(&["deny", &fourth]);
    read_to_ready(&mut other);
    other.terminate();
    assert_eq!(direct("SELECT sum(id) FROM apr_bind"), "2045");
}

fn parse_msg(sql: &str) -> Vec<u8> {
    let mut body = vec![0u8];
    body.extend_from_slice(sql.as_bytes());
    body.extend_from_slice(&[0, 0, 0]);
    message(b'P', &body)
}

fn bind_execute() -> Vec<u8> {
    let mut out = message(b'B', &[0; 8]);
    out.extend(message(b'E', &[0, 0, 0, 0, 0]));
    out
}

/// Extended protocol, pipelined in one Sync: [SELECT 41] [DELETE] [SELECT
/// 43]. The DELETE is held at Execute. Approved: all three run, in order.
/// Denied: SELECT 41 runs, the DELETE fails with 42501 and the server skips
/// SELECT 43, exactly as for its own error.
#[test]
fn extended_protocol_pipeline_holds_at_execute() {
    let a = start(2);
    scratch_table("apr_ext");
    let mut c = a.login("app");
    let pipeline = |c: &mut PgConn| {
        let mut out = Vec::new();
        for sql in ["SELECT 41", "DELETE FROM apr_ext", "SELECT 43"] {
            out.extend(parse_msg(sql));
            out.extend(bind_execute());
        }
        out.extend(message(b'S', &[]));
        c.io.write_all(&out).unwrap();
        c.io.flush().unwrap();
    };
    pipeline(&mut c);
    let id = read_hold_notice(&mut c);
    assert_eq!(count("apr_ext"), "10");
    a.cli_ok(&["deny", &id]);
    let (kinds, error) = read_to_ready(&mut c);
    assert_eq!(error.unwrap().code(), "42501");
    assert_eq!(
        kinds, "12DC12EZ",
        "the DELETE fails in place, SELECT 43 is skipped"
    );
    assert_eq!(count("apr_ext"), "10");

    pipeline(&mut c);
    let id = read_hold_notice(&mut c);
    a.cli_ok(&["approve", &id]);
    let (kinds, error) = read_to_ready(&mut c);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(kinds, "12DC12C12DCZ");
    assert_eq!(count("apr_ext"), "0");

    // A portal approved once may be continued after PortalSuspended without
    // a new approval (it is the same execution), then is done.
    scratch_table("apr_ext");
    let mut out = parse_msg("DELETE FROM apr_ext RETURNING id");
    out.extend(message(b'B', &[0; 8]));
    out.extend(message(b'E', &[0, 0, 0, 0, 4]));
    out.extend(message(b'H', &[]));
    c.io.write_all(&out).unwrap();
    c.io.flush().unwrap();
    let id = read_hold_notice(&mut c);
    a.cli_ok(&["approve", &id]);
    let mut kinds = String::new();
    while !kinds.ends_with('s') {
        kinds.push(read_message(&mut c.io).unwrap().0 as char);
    }
    assert_eq!(kinds, "12DDDDs");
    let mut out = message(b'E', &[0, 0, 0, 0, 0]);
    out.extend(message(b'S', &[]));
    c.io.write_all(&out).unwrap();
    c.io.flush().unwrap();
    let (kinds, error) = read_to_ready(&mut c);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(
        kinds, "DDDDDDCZ",
        "the rest of the same portal, no new hold"
    );
    assert!(a.pending().is_empty());
    assert_eq!(count("apr_ext"), "0");
    c.terminate();
}

/// With one worker, a second session makes progress while the first is
/// held (the held session awaits a future; it does not block its worker).
#[test]
fn other_sessions_on_the_same_worker_progress_while_one_is_held() {
    let a = start(1);
    scratch_table("apr_worker");
    let mut held = a.login("app");
    let id = send_held_query(&mut held, "DELETE FROM apr_worker");
    for round in 0..3 {
        let mut other = a.login("app");
        let started = Instant::now();
        assert_eq!(
            other
                .query_one("SELECT count(*) FROM apr_worker")
                .unwrap()
                .as_deref(),
            Some("10"),
            "round {round}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        other.terminate();
    }
    let metrics = a.metrics();
    assert!(
        metrics.contains("sluice_approvals_pending 1\n"),
        "{metrics}"
    );
    a.cli_ok(&["deny", &id]);
    let (_, error) = read_to_ready(&mut held);
    assert_eq!(error.unwrap().code(), "42501");
    held.terminate();
    assert_eq!(count("apr_worker"), "10");
}

/// Checks Prometheus text format 0.0.4: every sample line is `name[{labels}]
/// value` with a float value, and belongs to a family declared by # TYPE.
fn check_prometheus_text(text: &str) -> std::collections::HashMap<String, f64> {
    let mut families = std::collections::HashSet::new();
    let mut samples = std::collections::HashMap::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            assert!(valid_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            families.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(valid_name(name), "{line}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                for pair in labels[1..labels.len() - 1].split(',') {
                    let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("{line}"));
                    assert!(
                        valid_name(k) && v.starts_with('"') && v.ends_with('"'),
                        "{line}"
                    );
                }
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| families.contains(*f)))
            .unwrap_or(name);
        assert!(families.contains(family), "sample without # TYPE: {line}");
        samples.insert(series.to_string(), value);
    }
    samples
}

/// The admin API's errors and the metrics endpoint.
#[test]
fn admin_api_auth_errors_and_metrics() {
    let a = start(2);
    scratch_table("apr_api");
    // Health needs no token.
    let (status, body) = a.api("GET", "/healthz", None, "");
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    // 401: no token, a wrong token, the agent's token.
    for token in [None, Some("slt_wrong"), Some(env().token("agent").as_str())] {
        let (status, body) = a.api("GET", "/v1/approvals", token, "");
        assert_eq!(status, 401, "{token:?}");
        assert_eq!(body["error"]["status"], 401);
    }
    let out = a.cli("slt_wrong", &["list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    // 404: unknown id and unknown endpoint; 405: wrong method.
    let (status, body) = a.api(
        "POST",
        "/v1/approvals/0123456789ab/approve",
        Some(&a.alice),
        "{}",
    );
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("0123456789ab"));
    assert_eq!(a.api("GET", "/v1/nothing", Some(&a.alice), "").0, 404);
    // 431: more header fields than admin.headers_max (32 by default).
    {
        let url = HttpUrl::from_str(&format!("{}/v1/approvals", a.admin_url)).unwrap();
        let tls = ClientTls::new(Some(&env().certs.ca_cert)).unwrap();
        let names: Vec<String> = (0..40).map(|i| format!("X-Filler-{i}")).collect();
        let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "y")).collect();
        let response = client::request(
            &url,
            "GET",
            &headers,
            b"",
            Duration::from_secs(10),
            Some(&tls),
            1 << 20,
        )
        .unwrap();
        assert_eq!(response.status, 431);
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("headers_max"));
    }
    assert_eq!(
        a.api("GET", "/v1/approvals/x/approve", Some(&a.alice), "")
            .0,
        405
    );
    // 400: a body that is not the decision object.
    let mut c = a.login("app");
    let id = send_held_query(&mut c, "DELETE FROM apr_api");
    let path = format!("/v1/approvals/{id}/approve");
    assert_eq!(a.api("POST", &path, Some(&a.alice), "{\"when\": 1}").0, 400);
    assert_eq!(
        a.api(
            "POST",
            &format!("/v1/approvals/{id}/deny"),
            Some(&a.alice),
            "{\"window_ms\": 5}"
        )
        .0,
        400
    );
    // 403: bob is not in group dba.
    let (status, body) = a.api("POST", &path, Some(&a.bob), "{}");
    assert_eq!(status, 403, "{body}");
    let out = a.cli(&a.bob, &["approve", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"));
    // The GET shows everything an approver needs.
    let (status, view) = a.api("GET", &format!("/v1/approvals/{id}"), Some(&a.bob), "");
    assert_eq!(status, 200);
    for field in [
        "agent",
        "target",
        "session",
        "statement",
        "rule",
        "age_ms",
        "statement_sha256",
    ] {
        assert!(!view[field].is_null(), "{field} missing: {view}");
    }
    // Approve, then 409 on a second decision.
    assert_eq!(
        a.api("POST", &path, Some(&a.alice), "{\"reason\": \"ok\"}")
            .0,
        200
    );
    let (kinds, error) = read_to_ready(&mut c);
    assert!(error.is_none() && kinds.contains('C'), "{kinds}");
    assert_eq!(a.api("POST", &path, Some(&a.alice), "").0, 409);
    assert_eq!(
        a.api(
            "POST",
            &format!("/v1/approvals/{id}/deny"),
            Some(&a.alice),
            ""
        )
        .0,
        409
    );
    // An allowed and a blocked statement, for the decision counters.
    assert_eq!(c.query_one("SELECT 1").unwrap().as_deref(), Some("1"));
    assert_eq!(
        server_error(c.simple_query("DROP TABLE apr_api")).code(),
        "42501"
    );
    c.terminate();
    assert_eq!(count("apr_api"), "0");

    let text = a.metrics();
    let samples = check_prometheus_text(&text);
    let get = |k: &str| {
        *samples
            .get(k)
            .unwrap_or_else(|| panic!("{k} missing:\n{text}"))
    };
    assert!(get("sluice_connections_total") >= 1.0);
    assert!(get("sluice_statements_total{decision=\"allow\"}") >= 1.0);
    assert!(get("sluice_statements_total{decision=\"block\"}") >= 1.0);
    assert!(get("sluice_statements_total{decision=\"approve\"}") >= 1.0);
    assert_eq!(get("sluice_approvals_total{result=\"approved\"}"), 1.0);
    assert_eq!(get("sluice_approval_wait_seconds_count"), 1.0);
    assert!(get("sluice_bytes_total{direction=\"from_agents\"}") > 0.0);
    assert!(get("sluice_admin_requests_total{outcome=\"unauthorized\"}") >= 3.0);
    assert!(get("sluice_admin_requests_total{outcome=\"forbidden\"}") >= 1.0);
    // /metrics needs a token too.
    assert_eq!(a.api("GET", "/metrics", None, "").0, 401);
}

/// psycopg 3 (extended protocol, pipeline mode, transactions, cancel)
/// against the held-statement flow; see tests/python_approvals/.
#[test]
fn psycopg_pipeline_and_transactions() {
    let a = start(2);
    let ca = env().certs.ca_cert.clone();
    run_pytest(
        "python_approvals",
        &a.gw,
        &[
            ("SLUICE_BIN", SLUICE.as_ref()),
            ("SLUICE_ADMIN_URL", a.admin_url.as_ref()),
            ("SLUICE_ADMIN_TOKEN", a.alice.as_ref()),
            ("SLUICE_ADMIN_CA", ca.as_os_str()),
        ],
        Duration::from_secs(240),
    );
}
