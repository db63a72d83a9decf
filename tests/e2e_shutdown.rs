//! End-to-end: graceful shutdown of the real gateway on SIGTERM/SIGINT.

mod common;

use std::time::{Duration, Instant};

use common::pgwire::Negotiation;
use common::*;

const DRAIN_MS: u64 = 1500;

fn gateway() -> Gateway {
    Gateway::start(GatewayOpts {
        drain_ms: DRAIN_MS,
        ..GatewayOpts::default()
    })
}

/// New connections are refused once shutdown has begun: either the
/// listener is gone (connection refused) or no session is admitted.
fn refuses_new_sessions(gw: &Gateway) -> bool {
    gw.login_agent("app").is_err()
}

#[test]
fn sigterm_with_an_idle_session_exits_within_the_drain_timeout() {
    let mut gw = gateway();
    let token = env().token("agent");
    let mut idle = gw
        .login(Negotiation::SslRequest, "agent", Some(&token), "app")
        .unwrap();
    assert_eq!(idle.query_one("SELECT 1").unwrap().as_deref(), Some("1"));
    let t0 = Instant::now();
    gw.signal(libc::SIGTERM);
    let refused = wait_for(Duration::from_secs(2), || {
        refuses_new_sessions(&gw).then_some(())
    });
    gw.check(
        refused.is_some(),
        "new sessions still admitted 2 s after SIGTERM",
    );
    let status = gw.wait_exit(Duration::from_millis(DRAIN_MS + 3000));
    let elapsed = t0.elapsed();
    gw.check(
        status.is_some(),
        &format!("sluice still running {elapsed:?} after SIGTERM"),
    );
    gw.check(
        status.unwrap().success(),
        &format!("sluice exited with {status:?} after SIGTERM"),
    );
    gw.check(
        elapsed < Duration::from_millis(DRAIN_MS + 2000),
        &format!("exit took {elapsed:?} with a {DRAIN_MS} ms drain timeout"),
    );
    // The idle session was closed: an ErrorResponse (57P01, like
    // PostgreSQL's own shutdown) or just the end of the stream.
    if let Ok((e, _)) = idle.read_until_error() {
        assert_eq!(e.code(), "57P01", "{e}");
    }
    assert!(
        std::net::TcpStream::connect_timeout(&gw.addr, Duration::from_millis(500)).is_err(),
        "port still open after exit"
    );
}

#[test]
fn sigterm_lets_a_running_query_finish() {
    let mut gw = gateway();
    let token = env().token("agent");
    let mut busy = gw
        .login(Negotiation::SslRequest, "agent", Some(&token), "app")
        .unwrap();
    let worker = std::thread::spawn(move || {
        let r = busy.simple_query("SELECT pg_sleep(0.5), 'finished'");
        (r, busy)
    });
    // Let the query reach PostgreSQL before the signal.
    std::thread::sleep(Duration::from_millis(150));
    gw.signal(libc::SIGTERM);
    let (r, _busy) = worker.join().unwrap();
    let rows = r.unwrap_or_else(|e| panic!("query cut off by shutdown: {e}\n{}", gw.log_tail()));
    assert_eq!(rows[0][1].as_deref(), Some("finished"));
    let status = gw.wait_exit(Duration::from_millis(DRAIN_MS + 3000));
    gw.check(status.is_some(), "sluice did not exit");
}

#[test]
fn sigint_without_sessions_exits_promptly() {
    let mut gw = gateway();
    gw.assert_serves();
    let t0 = Instant::now();
    gw.signal(libc::SIGINT);
    let status = gw.wait_exit(Duration::from_secs(5));
    gw.check(status.is_some(), "sluice did not exit on SIGINT");
    gw.check(
        t0.elapsed() < Duration::from_millis(DRAIN_MS),
        &format!("idle shutdown took {:?}", t0.elapsed()),
    );
}
