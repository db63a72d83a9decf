//! End-to-end: everything that must be refused, with the documented
//! SQLSTATE, and after each refusal the gateway still serves a good client.

mod common;

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use common::pgwire::{self, message, startup_message, Negotiation};
use common::*;

fn refused(r: Result<PgConn, ConnectError>, what: &str, gw: &Gateway) -> ConnectError {
    match r {
        Ok(_) => panic!("{what}: the connection was accepted\n{}", gw.log_tail()),
        Err(e) => e,
    }
}

#[test]
fn wrong_token_is_28p01_and_unknown_agent_is_indistinguishable() {
    let gw = Gateway::start(GatewayOpts::default());
    let wrong = refused(
        gw.login(
            Negotiation::SslRequest,
            "agent",
            Some("slt_not-the-token"),
            "app",
        ),
        "wrong token",
        &gw,
    );
    assert_eq!(
        wrong.sqlstate(),
        Some("28P01"),
        "{wrong}\n{}",
        gw.log_tail()
    );
    gw.assert_serves();

    let unknown = refused(
        gw.login(
            Negotiation::SslRequest,
            "nobody",
            Some("slt_not-the-token"),
            "app",
        ),
        "unknown agent",
        &gw,
    );
    assert_eq!(unknown.sqlstate(), Some("28P01"), "{unknown}");
    // Same words apart from the user name: nothing tells a prober which
    // agent names exist.
    let (ConnectError::Server(a), ConnectError::Server(b)) = (&wrong, &unknown) else {
        unreachable!()
    };
    assert_eq!(
        a.message().replace("agent", "X"),
        b.message().replace("nobody", "X")
    );
    gw.assert_serves();

    // psql shows PostgreSQL's usual words for it.
    let err = gw
        .conn("agent", "slt_wrong", "app")
        .psql("SELECT 1")
        .unwrap_err();
    assert!(err.contains("password authentication failed"), "{err}");
    gw.assert_serves();
}

#[test]
fn failed_authentication_is_delayed() {
    let gw = Gateway::start(GatewayOpts {
        auth_failure_delay_ms: 400,
        ..GatewayOpts::default()
    });
    let t0 = Instant::now();
    let e = refused(
        gw.login(Negotiation::SslRequest, "agent", Some("wrong"), "app"),
        "wrong token",
        &gw,
    );
    assert_eq!(e.sqlstate(), Some("28P01"));
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "answered after {:?}",
        t0.elapsed()
    );
    gw.assert_serves();
}

#[test]
fn plaintext_startup_gets_an_error_and_no_session() {
    let gw = Gateway::start(GatewayOpts::default());
    let mut io = pgwire::connect_transport(gw.addr, Negotiation::Plain, None).unwrap();
    let err = pgwire::expect_error_after(
        &mut io,
        &startup_message(&[("user", "agent"), ("database", "app")]),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    assert_eq!(err.severity(), "FATAL", "{err}");
    assert_eq!(err.code(), "28000", "{err}");
    assert!(err.message().contains("TLS"), "{err}");
    // And the connection is closed: no authentication request follows.
    let mut rest = Vec::new();
    let _ = io.read_to_end(&mut rest);
    assert!(rest.is_empty(), "more bytes after the error: {rest:?}");

    // psql with sslmode=disable sees the message.
    let out = gw
        .agent("app")
        .var("PGSSLMODE", "disable")
        .psql("SELECT 1")
        .unwrap_err();
    assert!(out.contains("TLS"), "{out}");
    gw.assert_serves();
}

#[test]
fn gssencrequest_is_declined_then_tls_works() {
    let gw = Gateway::start(GatewayOpts::default());
    // GSSENCRequest (80877104): PostgreSQL without GSSAPI answers 'N' and
    // the client may continue on the same connection with SSLRequest.
    let mut tcp = std::net::TcpStream::connect(gw.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30])
        .unwrap();
    let mut b = [0u8; 1];
    tcp.read_exact(&mut b).unwrap();
    assert_eq!(b[0], b'N', "{}", gw.log_tail());
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .unwrap();
    tcp.read_exact(&mut b).unwrap();
    assert_eq!(b[0], b'S', "{}", gw.log_tail());
    // libpq's gssencmode=prefer path (the default) against it.
    let out = gw
        .agent("app")
        .var("PGGSSENCMODE", "prefer")
        .psql("SELECT 7")
        .unwrap();
    assert_eq!(out.trim(), "7");
}

#[test]
fn unknown_database_is_3d000() {
    let gw = Gateway::start(GatewayOpts::default());
    let e = refused(gw.login_agent("nope"), "unknown database", &gw);
    assert_eq!(e.sqlstate(), Some("3D000"), "{e}");
    gw.assert_serves();
}

#[test]
fn agent_not_allowed_on_target_is_42501() {
    let gw = Gateway::start(GatewayOpts::default());
    let token = env().token("limited");
    let e = refused(
        gw.login(Negotiation::SslRequest, "limited", Some(&token), "secret"),
        "limited agent on secret",
        &gw,
    );
    assert_eq!(e.sqlstate(), Some("42501"), "{e}");
    // The same agent on its own target works.
    let mut c = gw
        .login(Negotiation::SslRequest, "limited", Some(&token), "app")
        .unwrap();
    assert_eq!(
        c.query_one("SELECT 'mine'").unwrap().as_deref(),
        Some("mine")
    );
    c.terminate();
    gw.assert_serves();
}

#[test]
fn upstream_down_is_08006() {
    let gw = Gateway::start(GatewayOpts::default());
    let t0 = Instant::now();
    let e = refused(gw.login_agent("down"), "target down", &gw);
    assert_eq!(e.sqlstate(), Some("08006"), "{e}");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
    // No upstream secret in what the agent sees.
    let ConnectError::Server(err) = &e else {
        unreachable!()
    };
    let shown = format!("{:?}", err.fields);
    assert!(
        !shown.contains(&env().upstream_password),
        "upstream password leaked: {shown}"
    );
    assert!(
        !gw.log_tail().contains(&env().upstream_password),
        "upstream password in sluice's log"
    );
    gw.assert_serves();
}

#[test]
fn over_connections_per_worker_max_is_53300() {
    let gw = Gateway::start(GatewayOpts {
        workers: 1,
        connections_per_worker_max: Some(2),
        ..GatewayOpts::default()
    });
    let token = env().token("agent");
    let a = gw
        .login(Negotiation::SslRequest, "agent", Some(&token), "app")
        .unwrap();
    let b = gw
        .login(Negotiation::SslRequest, "agent", Some(&token), "app")
        .unwrap();
    let e = refused(
        gw.login(Negotiation::SslRequest, "agent", Some(&token), "app"),
        "third connection",
        &gw,
    );
    assert_eq!(e.sqlstate(), Some("53300"), "{e}");
    a.terminate();
    // Once a slot frees up, a new session is admitted again.
    let ok = wait_for(Duration::from_secs(5), || {
        gw.login(Negotiation::SslRequest, "agent", Some(&token), "app")
            .ok()
    });
    assert!(
        ok.is_some(),
        "no slot freed after Terminate\n{}",
        gw.log_tail()
    );
    drop(ok);
    b.terminate();
}

#[test]
fn protocol_garbage_is_08p01() {
    let gw = Gateway::start(GatewayOpts::default());
    // A message whose length field is below the minimum of 4.
    let mut c = gw.login_agent("app").unwrap();
    c.io.write_all(&[b'Q', 0, 0, 0, 2]).unwrap();
    c.io.flush().unwrap();
    let (err, closed) = c
        .read_until_error()
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    assert_eq!(err.code(), "08P01", "{err}");
    assert!(closed, "session not closed after a protocol violation");
    gw.assert_serves();

    // A startup packet with an absurd length, inside TLS.
    let tls = gw.tls();
    let mut io = pgwire::connect_transport(gw.addr, Negotiation::SslRequest, Some(&tls)).unwrap();
    let err = pgwire::expect_error_after(&mut io, &[0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0])
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    assert_eq!(err.code(), "08P01", "{err}");
    gw.assert_serves();

    // Plain HTTP at the gateway: refused, connection closed, nothing hangs.
    let mut tcp = std::net::TcpStream::connect(gw.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut rest = Vec::new();
    let r = tcp.read_to_end(&mut rest);
    assert!(r.is_ok(), "connection not closed within 10 s: {r:?}");
    if !rest.is_empty() {
        assert_eq!(rest[0], b'E', "unexpected answer to HTTP: {rest:?}");
    }
    gw.assert_serves();

    // Random bytes after login, many times over: each session ends with an
    // error or a close, never a crash.
    let mut seed: u64 = 0x1234_5678;
    for _ in 0..20 {
        let mut c = gw.login_agent("app").unwrap();
        let junk: Vec<u8> = (0..64)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = c.io.write_all(&junk);
        let _ = c.io.write_all(&message(b'S', &[]));
        let _ = c.io.flush();
        let _ = c.read_until_error();
    }
    gw.assert_serves();
}

#[test]
fn tls_1_2_is_refused_by_default() {
    let gw = Gateway::start(GatewayOpts::default());
    let mut store = rustls::RootCertStore::empty();
    let pem = std::fs::read(&env().certs.ca_cert).unwrap();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        store.add(c.unwrap()).unwrap();
    }
    // A client that speaks only TLS 1.2.
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    let mut tcp = std::net::TcpStream::connect(gw.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .unwrap();
    let mut b = [0u8; 1];
    tcp.read_exact(&mut b).unwrap();
    assert_eq!(b[0], b'S');
    let mut conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), "localhost".try_into().unwrap())
            .unwrap();
    let mut failed = false;
    while conn.is_handshaking() {
        if conn.complete_io(&mut tcp).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "a TLS 1.2 handshake succeeded with min_version 1.3");
    gw.assert_serves();
}

fn mtls_gateway(required: bool) -> Gateway {
    Gateway::start(GatewayOpts {
        mtls: true,
        client_cert_required: required,
        ..GatewayOpts::default()
    })
}

fn with_client_cert(
    gw: &Gateway,
    ca_set: &sluice::devenv::certs::GeneratedCerts,
    name: &str,
) -> TlsOpts {
    let c = ca_set.client(name).expect("client cert");
    let mut tls = gw.tls();
    tls.client_cert = Some((c.cert.clone(), c.key.clone()));
    tls
}

#[test]
fn mtls_certificate_maps_to_agent() {
    let env = env();
    let gw = mtls_gateway(false);
    // psql with the certificate of mtls-bot plus the agent's token.
    let cert = env.certs.client("mtls-bot").unwrap();
    let out = gw
        .conn("mtls-agent", &env.token("mtls-agent"), "app")
        .var("PGSSLCERT", &cert.cert.display().to_string())
        .var("PGSSLKEY", &cert.key.display().to_string())
        .psql("SELECT 'cert+token'")
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    assert_eq!(out.trim(), "cert+token");
    // The same agent without its certificate is refused (the agent is bound
    // to the certificate identity).
    let e = refused(
        gw.login(
            Negotiation::SslRequest,
            "mtls-agent",
            Some(&env.token("mtls-agent")),
            "app",
        ),
        "mtls-agent without certificate",
        &gw,
    );
    assert!(matches!(e.sqlstate(), Some("28000")), "{e}");
    // Someone else's (valid) certificate does not map to this agent.
    let tls = with_client_cert(&gw, &env.certs, "stranger-bot");
    let e = refused(
        pgwire::connect(
            gw.addr,
            Negotiation::SslRequest,
            Some(&tls),
            "mtls-agent",
            "app",
            Some(&env.token("mtls-agent")),
        ),
        "stranger's certificate",
        &gw,
    );
    assert_eq!(e.sqlstate(), Some("28000"), "{e}");
    // Token-only agents still work on an mTLS-enabled gateway.
    gw.assert_serves();
}

#[test]
fn mtls_certificate_only_agent() {
    let env = env();
    let gw = mtls_gateway(false);
    let tls = with_client_cert(&gw, &env.certs, "cert-only-bot");
    let mut c = pgwire::connect(
        gw.addr,
        Negotiation::SslRequest,
        Some(&tls),
        "cert-only",
        "app",
        None,
    )
    .unwrap_or_else(|e| panic!("certificate-only login failed: {e}\n{}", gw.log_tail()));
    assert_eq!(
        c.query_one("SELECT 'by cert'").unwrap().as_deref(),
        Some("by cert")
    );
    c.terminate();
    // psql too, with no password at all.
    let cert = env.certs.client("cert-only-bot").unwrap();
    let out = gw
        .conn("cert-only", "", "app")
        .var("PGSSLCERT", &cert.cert.display().to_string())
        .var("PGSSLKEY", &cert.key.display().to_string())
        .psql("SELECT current_user")
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    assert_eq!(out.trim(), UPSTREAM_USER);
    // Without the certificate: refused.
    let e = refused(
        gw.login(Negotiation::SslRequest, "cert-only", None, "app"),
        "cert-only without certificate",
        &gw,
    );
    assert_eq!(e.sqlstate(), Some("28000"), "{e}");
    gw.assert_serves();
}

#[test]
fn mtls_wrong_certificate_is_refused() {
    let env = env();
    let gw = mtls_gateway(false);
    // Same name, but issued by a CA the gateway does not trust: the TLS
    // handshake itself fails.
    let tls = with_client_cert(&gw, &env.rogue, "mtls-bot");
    let r = pgwire::connect(
        gw.addr,
        Negotiation::SslRequest,
        Some(&tls),
        "mtls-agent",
        "app",
        Some(&env.token("mtls-agent")),
    );
    assert!(
        matches!(r, Err(ConnectError::Io(_))),
        "rogue certificate not refused in the handshake: {:?}",
        r.err()
    );
    gw.assert_serves();

    // With client_cert_required, no certificate means no handshake.
    let gw = mtls_gateway(true);
    let r = gw.login_agent("app");
    assert!(
        matches!(r, Err(ConnectError::Io(_))),
        "no-certificate handshake accepted"
    );
    let tls = with_client_cert(&gw, &env.certs, "cert-only-bot");
    let mut c = pgwire::connect(
        gw.addr,
        Negotiation::SslRequest,
        Some(&tls),
        "cert-only",
        "app",
        None,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    assert_eq!(c.query_one("SELECT 1").unwrap().as_deref(), Some("1"));
}

/// limits.idle_timeout_ms: a silent session is told why (57P05, as
/// PostgreSQL's idle_session_timeout does) and closed.
#[test]
fn idle_session_is_closed_with_57p05() {
    let gw = Gateway::start(GatewayOpts {
        extra_limits: "idle_timeout_ms = 1500".into(),
        ..GatewayOpts::default()
    });
    let mut c = gw.login_agent("app").unwrap();
    let started = Instant::now();
    let (err, closed) = c
        .read_until_error()
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    assert_eq!(err.code(), "57P05", "{err}");
    assert!(closed, "session not closed after the idle timeout");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_secs(6),
        "closed after {waited:?}, expected about 1.5 s"
    );
    gw.assert_serves();
}

/// limits.message_bytes_max: a message declaring more is refused as soon as
/// its header arrives (nothing is buffered), with 08P01 naming the bound.
#[test]
fn oversized_message_is_refused_before_buffering() {
    let gw = Gateway::start(GatewayOpts {
        extra_limits: "message_bytes_max = 65536".into(),
        ..GatewayOpts::default()
    });
    let mut c = gw.login_agent("app").unwrap();
    // A Query header declaring 100 MB, and no body.
    c.io.write_all(&[b'Q', 0x05, 0xf5, 0xe1, 0x00]).unwrap();
    c.io.flush().unwrap();
    let (err, closed) = c
        .read_until_error()
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    assert_eq!(err.code(), "08P01", "{err}");
    assert!(
        err.message().contains("65536"),
        "the error should name the bound: {err}"
    );
    assert!(closed);
    // A query just under the bound still works on a new session.
    let mut c = gw.login_agent("app").unwrap();
    let padding = "x".repeat(60_000);
    let got = c
        .query_one(&format!("SELECT length('{padding}')"))
        .unwrap_or_else(|e| panic!("{e:?}\n{}", gw.log_tail()));
    assert_eq!(got.as_deref(), Some("60000"));
}
