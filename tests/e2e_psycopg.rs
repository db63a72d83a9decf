//! End-to-end: psycopg 3 (tests/python/) through the real gateway. The
//! Python tests run under pytest from the project virtualenv that
//! scripts/setup.sh creates; this test starts PostgreSQL and sluice, hands
//! pytest the connection settings, and fails with pytest's report.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn psycopg3_through_the_gateway() {
    let gw = Gateway::start(GatewayOpts::default());
    run_pytest("python", &gw, &[], Duration::from_secs(180));
}
