//! End-to-end: psql (Debian's libpq 15) through the real gateway to a real
//! PostgreSQL, plus the wire-level cases psql cannot express (direct TLS
//! with ALPN, CancelRequest across workers, cross-session notifications).

mod common;

use std::io::Read as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::pgwire::{self, read_message, Negotiation};
use common::*;

/// The harness itself against PostgreSQL directly: proves that failures in
/// the other tests are about the gateway, not the environment.
#[test]
fn harness_reaches_postgres_directly() {
    let env = env();
    let direct = env.direct("app");
    assert_eq!(
        direct.psql("SELECT count(*) FROM items").unwrap().trim(),
        "5000"
    );
    // SCRAM over TCP is enforced: a wrong password is refused.
    let err = direct
        .clone()
        .var("PGPASSWORD", "wrong")
        .psql("SELECT 1")
        .unwrap_err();
    assert!(err.contains("password authentication failed"), "{err}");
    // The wire client speaks to PostgreSQL too (plaintext, SCRAM).
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], env.pg_port));
    let mut c = pgwire::connect(
        addr,
        Negotiation::Plain,
        None,
        UPSTREAM_USER,
        "app",
        Some(&env.upstream_password),
    )
    .unwrap();
    assert_eq!(c.query_one("SELECT 6 * 7").unwrap().as_deref(), Some("42"));
    let e = c.simple_query("SELECT 1/0").unwrap_err();
    assert_eq!(e.sqlstate(), Some("22012"));
    // And over PostgreSQL's own TLS, verifying the test CA.
    let tls = TlsOpts::new(&env.certs.ca_cert);
    let mut c = pgwire::connect(
        addr,
        Negotiation::SslRequest,
        Some(&tls),
        UPSTREAM_USER,
        "app",
        Some(&env.upstream_password),
    )
    .unwrap();
    assert_eq!(
        c.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .unwrap()
            .as_deref(),
        Some("t")
    );
}

#[test]
fn psql_verify_full_queries() {
    let gw = Gateway::start(GatewayOpts::default());
    let agent = gw.agent("app");
    let out = agent
        .psql("SELECT id, name, price, tags, meta FROM items WHERE id IN (1, 2, 3) ORDER BY id")
        .unwrap_or_else(|e| panic!("psql through sluice failed: {e}\n{}", gw.log_tail()));
    assert_eq!(
        out,
        "1|item 1|1.25|{t1,x}|{\"n\": 1, \"even\": false}\n\
         2|item 2|2.50|{t2,x}|{\"n\": 2, \"even\": true}\n\
         3|item 3|3.75|{t3,x}|{\"n\": 3, \"even\": false}\n"
    );
    // The upstream session is sluice's role in the target's database; the
    // agent's own name never reaches PostgreSQL as a login.
    let who = agent
        .psql("SELECT current_user || ' ' || current_database()")
        .unwrap();
    assert_eq!(who.trim(), format!("{UPSTREAM_USER} app"));
    // Non-ASCII and NULLs come through unchanged.
    let out = agent
        .psql("SELECT coalesce(note, '<null>') FROM items WHERE id IN (2, 10) ORDER BY id")
        .unwrap();
    assert_eq!(out, "naïve café ✓ 2\n<null>\n");
    // Same result as direct, for a larger read.
    let q = "SELECT md5(string_agg(items::text, ',' ORDER BY id)) FROM items";
    assert_eq!(agent.psql(q).unwrap(), env().direct("app").psql(q).unwrap());
}

#[test]
fn psql_refuses_a_gateway_certificate_from_another_ca() {
    let gw = Gateway::start(GatewayOpts::default());
    let err = gw
        .agent("app")
        .var("PGSSLROOTCERT", &env().rogue.ca_cert.display().to_string())
        .psql("SELECT 1")
        .unwrap_err();
    assert!(err.contains("certificate verify failed"), "{err}");
    gw.assert_serves();
}

#[test]
fn multi_statement_simple_query() {
    let gw = Gateway::start(GatewayOpts::default());
    // psql -c sends the whole string as one Query message; psql 15 prints
    // the result of every statement.
    let out = gw
        .agent("app")
        .psql(
            "SELECT 1; SELECT 'two'; CREATE TEMP TABLE t (x int); \
             INSERT INTO t VALUES (1), (2), (3); SELECT sum(x) FROM t",
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    assert_eq!(out, "1\ntwo\n6\n");
    // At the wire level: every statement's rows arrive, and an error stops
    // the rest of the message (one implicit transaction), as in PostgreSQL.
    let mut c = gw.login_agent("app").unwrap();
    let rows = c
        .simple_query("SELECT 1; SELECT 2, 'b'; SELECT NULL")
        .unwrap();
    assert_eq!(
        rows,
        vec![
            vec![Some("1".to_string())],
            vec![Some("2".to_string()), Some("b".to_string())],
            vec![None]
        ]
    );
    let e = c
        .simple_query("CREATE TEMP TABLE u (x int); INSERT INTO u VALUES (1); SELECT 1/0; INSERT INTO u VALUES (2)")
        .unwrap_err();
    assert_eq!(e.sqlstate(), Some("22012"));
    // The implicit transaction rolled back: u does not exist.
    let e = c.simple_query("SELECT count(*) FROM u").unwrap_err();
    assert_eq!(e.sqlstate(), Some("42P01"));
    // The session is still usable.
    assert_eq!(
        c.query_one("SELECT 'alive'").unwrap().as_deref(),
        Some("alive")
    );
    c.terminate();
}

#[test]
fn copy_both_ways_is_byte_identical_to_direct() {
    let env = env();
    let gw = Gateway::start(GatewayOpts::default());
    let agent = gw.agent("app");
    let direct = env.direct("app");
    for (label, options) in [
        ("text", "(FORMAT text)"),
        ("csv", "(FORMAT csv, HEADER true)"),
        ("binary", "(FORMAT binary)"),
    ] {
        let via = env.dir.join(format!("copy-{label}-gw-{}", gw.port));
        let dir = env.dir.join(format!("copy-{label}-direct-{}", gw.port));
        let query = "(SELECT * FROM items ORDER BY id)";
        agent
            .psql_script(&format!(
                "\\copy {query} TO '{}' WITH {options}\n",
                via.display()
            ))
            .unwrap_or_else(|e| {
                panic!(
                    "\\copy out through sluice ({label}): {e}\n{}",
                    gw.log_tail()
                )
            });
        direct
            .psql_script(&format!(
                "\\copy {query} TO '{}' WITH {options}\n",
                dir.display()
            ))
            .unwrap();
        let a = std::fs::read(&via).unwrap();
        let b = std::fs::read(&dir).unwrap();
        assert!(
            b.len() > 100_000,
            "{label}: direct copy is only {} bytes",
            b.len()
        );
        assert!(
            a == b,
            "{label}: COPY TO through sluice differs from direct ({} vs {} bytes)",
            a.len(),
            b.len()
        );

        // COPY FROM through sluice, then read the table back directly.
        direct.psql("TRUNCATE items_in").unwrap();
        agent
            .psql_script(&format!(
                "\\copy items_in FROM '{}' WITH {options}\n",
                via.display()
            ))
            .unwrap_or_else(|e| {
                panic!("\\copy in through sluice ({label}): {e}\n{}", gw.log_tail())
            });
        let back = env.dir.join(format!("copy-{label}-back-{}", gw.port));
        direct
            .psql_script(&format!(
                "\\copy (SELECT * FROM items_in ORDER BY id) TO '{}' WITH {options}\n",
                back.display()
            ))
            .unwrap();
        assert!(
            std::fs::read(&back).unwrap() == b,
            "{label}: rows copied in through sluice differ from the source"
        );
    }
    // A COPY FROM that fails midway reports PostgreSQL's error and leaves
    // the session usable.
    let bad = scratch_file(
        &format!("copy-bad-{}", gw.port),
        b"1\tok\n2\tnot-a-number-here\n",
    );
    let err = agent
        .psql_script(&format!(
            "CREATE TEMP TABLE t (a int, b int);\n\\copy t FROM '{}'\n",
            bad.display()
        ))
        .unwrap_err();
    assert!(
        err.contains("invalid input syntax for type integer"),
        "{err}"
    );
    gw.assert_serves();
}

/// Waits until PostgreSQL shows a running statement containing `marker`.
fn wait_active(marker: &str) -> bool {
    wait_for(Duration::from_secs(10), || {
        let n = env().admin(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
                 AND query LIKE '%{marker}%' AND pid <> pg_backend_pid()"
            ),
        );
        (n.trim() != "0").then_some(())
    })
    .is_some()
}

#[test]
fn psql_cancel_with_sigint() {
    let gw = Gateway::start(GatewayOpts::default());
    let marker = format!("cancel_psql_{}", gw.port);
    let mut child = gw
        .agent("app")
        .command("psql")
        .args(["-X", "-c", &format!("SELECT pg_sleep(30) AS {marker}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill psql if anything below panics.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    assert!(
        wait_active(&marker),
        "the query never started\n{}",
        gw.log_tail()
    );
    let t0 = Instant::now();
    // SAFETY: signalling our own child, which has not been reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let mut stderr = child.stderr.take().unwrap();
    let mut guard = KillOnDrop(child);
    let status = wait_for(Duration::from_secs(10), || {
        guard.0.try_wait().ok().flatten()
    });
    let elapsed = t0.elapsed();
    let mut err = String::new();
    let _ = stderr.read_to_string(&mut err);
    assert!(
        status.is_some(),
        "psql still running 10 s after SIGINT\n{}",
        gw.log_tail()
    );
    assert!(
        err.contains("canceling statement due to user request"),
        "psql stderr: {err}\n--- sluice ---\n{}",
        gw.log_tail()
    );
    assert!(elapsed < Duration::from_secs(1), "cancel took {elapsed:?}");
    eprintln!("psql cancel through sluice answered in {elapsed:?}");
    gw.assert_serves();
}

#[test]
fn cancel_request_reaches_the_right_session_from_any_worker() {
    let env = env();
    let gw = Gateway::start(GatewayOpts::default());
    let token = env.token("agent");
    // Several rounds so that, with two SO_REUSEPORT workers, cancel
    // connections land on the session's worker and on the other one; both
    // TLS (libpq 17) and plaintext (libpq before 17) cancel connections.
    for round in 0..4 {
        let mut victim = gw
            .login(Negotiation::SslRequest, "agent", Some(&token), "app")
            .unwrap();
        // A bystander session that must not be affected.
        let mut bystander = gw
            .login(Negotiation::SslRequest, "agent", Some(&token), "app")
            .unwrap();
        let key = victim.backend_key.expect("no BackendKeyData from sluice");
        let marker = format!("cancel_wire_{}_{round}", gw.port);
        let sql = format!("SELECT pg_sleep(30) AS {marker}");
        let handle = std::thread::spawn(move || {
            let t = Instant::now();
            let r = victim.simple_query(&sql);
            (r, t.elapsed())
        });
        assert!(
            wait_active(&marker),
            "query never started\n{}",
            gw.log_tail()
        );
        let tls = gw.tls();
        let negotiation = if round % 2 == 0 {
            Negotiation::SslRequest
        } else {
            Negotiation::Plain
        };
        pgwire::cancel_request(gw.addr, negotiation, Some(&tls), key)
            .unwrap_or_else(|e| panic!("cancel connection failed: {e}\n{}", gw.log_tail()));
        let (result, took) = handle.join().unwrap();
        let e = result.expect_err("query was not cancelled");
        assert_eq!(
            e.sqlstate(),
            Some("57014"),
            "round {round} ({negotiation:?}): {e}\n{}",
            gw.log_tail()
        );
        assert!(took < Duration::from_secs(5), "cancel took {took:?}");
        assert_eq!(
            bystander.query_one("SELECT 1").unwrap().as_deref(),
            Some("1")
        );
        bystander.terminate();
    }
    // A cancel with a made-up key does nothing (and does not crash anything).
    let tls = gw.tls();
    let _ = pgwire::cancel_request(gw.addr, Negotiation::SslRequest, Some(&tls), (12345, 67890));
    gw.assert_serves();
}

#[test]
fn listen_notify() {
    let env = env();
    let gw = Gateway::start(GatewayOpts::default());
    let channel = format!("ch_{}", gw.port);
    // Same session, through psql.
    let out = gw
        .agent("app")
        .command("psql")
        .args([
            "-X",
            "-c",
            &format!("LISTEN {channel}"),
            "-c",
            &format!("NOTIFY {channel}, 'hello'"),
            "-c",
            "SELECT 1",
        ])
        .output_within(Duration::from_secs(30))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "Asynchronous notification \"{channel}\" with payload \"hello\""
        )),
        "{stdout}"
    );
    // Across sessions: a NOTIFY sent directly to PostgreSQL reaches an agent
    // listening through sluice while it is idle.
    let mut c = gw.login_agent("app").unwrap();
    c.simple_query(&format!("LISTEN {channel}")).unwrap();
    env.direct("app")
        .psql(&format!("NOTIFY {channel}, 'from outside'"))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            Instant::now() < deadline,
            "no notification\n{}",
            gw.log_tail()
        );
        let (kind, body) = read_message(&mut c.io).expect("connection broke");
        if kind == b'A' {
            let text = String::from_utf8_lossy(&body[4..]).into_owned();
            assert!(
                text.starts_with(&format!("{channel}\0from outside\0")),
                "{text:?}"
            );
            break;
        }
    }
    c.terminate();
}

#[test]
fn direct_tls_with_alpn() {
    let env = env();
    let gw = Gateway::start(GatewayOpts::default());
    // sslnegotiation=direct exists from libpq 17; Debian 12 ships 15.
    let version = std::process::Command::new(Env::pg_program("psql"))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let major: u32 = version
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if major >= 17 {
        let out = gw
            .agent("app")
            .var("PGSSLNEGOTIATION", "direct")
            .psql("SELECT 'direct'")
            .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
        assert_eq!(out.trim(), "direct");
    } else {
        eprintln!(
            "skipping psql sslnegotiation=direct: installed psql is {} (needs libpq 17); \
             direct TLS is tested with the wire client here and with psycopg's libpq",
            version.trim()
        );
    }
    let mut c = gw
        .login(
            Negotiation::Direct,
            "agent",
            Some(&env.token("agent")),
            "app",
        )
        .unwrap_or_else(|e| panic!("direct TLS login failed: {e}\n{}", gw.log_tail()));
    assert_eq!(c.io.alpn().as_deref(), Some(&b"postgresql"[..]));
    assert_eq!(c.io.tls_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(
        c.query_one("SELECT 'direct ok'").unwrap().as_deref(),
        Some("direct ok")
    );
    c.terminate();
    // Direct TLS offering another protocol is refused, as PostgreSQL 17
    // does (it protects against cross-protocol attacks).
    let mut tls = gw.tls();
    tls.alpn = vec![b"http/1.1".to_vec()];
    let r = pgwire::connect(
        gw.addr,
        Negotiation::Direct,
        Some(&tls),
        "agent",
        "app",
        Some(&env.token("agent")),
    );
    assert!(r.is_err(), "direct TLS with ALPN http/1.1 was accepted");
    gw.assert_serves();
}

#[test]
fn upstream_tls_verify_full() {
    let env = env();
    let gw = Gateway::start(GatewayOpts::default());
    let out = gw
        .agent("app_tls")
        .psql("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    assert!(
        out.starts_with("t|TLSv1."),
        "upstream connection not TLS: {out}"
    );
    // The plain target really is plaintext (so the check above means something).
    let out = gw
        .agent("app")
        .psql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .unwrap();
    assert_eq!(out.trim(), "f");
    let _ = env;
}

/// FunctionCall ('F', the fast-path interface) passes through: libpq's
/// large-object functions behind psql's \lo_import and \lo_export use it.
#[test]
fn function_call_via_large_objects() {
    let gw = Gateway::start(GatewayOpts::default());
    let dir = gw.dir.join("lo");
    std::fs::create_dir_all(&dir).unwrap();
    let original = dir.join("in.bin");
    let exported = dir.join("out.bin");
    // Every byte value, several times, so that text-mode mangling would show.
    let payload: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&original, &payload).unwrap();
    let script = format!(
        "\\lo_import '{}'\n\\lo_export :LASTOID '{}'\n\\lo_unlink :LASTOID\n",
        original.display(),
        exported.display()
    );
    // A script file: psql runs only one backslash command per -c.
    let script_file = dir.join("lo.sql");
    std::fs::write(&script_file, script).unwrap();
    let out = gw
        .agent("app")
        .command("psql")
        .arg("-X")
        .args(["-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&script_file)
        .output_within(Duration::from_secs(30))
        .unwrap();
    assert!(
        out.status.success(),
        "psql failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.log_tail()
    );
    assert_eq!(std::fs::read(&exported).unwrap(), payload);
}

/// With the legacy (epoll) driver forced, the same session works: this is
/// the path taken where seccomp blocks io_uring.
#[test]
fn legacy_driver_serves_sessions() {
    let gw = Gateway::start(GatewayOpts {
        io_driver: "legacy",
        ..GatewayOpts::default()
    });
    let out = gw
        .agent("app")
        .command("psql")
        .args(["-X", "-At", "-c", "SELECT 40 + 2"])
        .output_within(Duration::from_secs(30))
        .unwrap();
    assert!(out.status.success(), "{}", gw.log_tail());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    assert!(
        gw.log_tail().contains("io driver: legacy"),
        "the driver choice must be logged\n{}",
        gw.log_tail()
    );
}

/// Agents authenticate with SCRAM-SHA-256-PLUS when they can: libpq with
/// channel_binding=require only succeeds if sluice binds the SCRAM exchange
/// to the TLS session (tls-server-end-point).
#[test]
fn scram_channel_binding_is_offered_and_verified() {
    let gw = Gateway::start(GatewayOpts::default());
    let out = gw
        .agent("app")
        .var("PGCHANNELBINDING", "require")
        .psql("SELECT 'bound'")
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    assert_eq!(out.trim(), "bound");
}
