//! End-to-end: asyncpg (tests/python_asyncpg/) through the real gateway,
//! with the demo policy and masking with column rules. asyncpg behaves
//! unlike libpq on the wire: extended protocol only, every statement
//! prepared and described once then bound without a Describe, binary
//! result formats, pipelined executemany, portals with row limits, binary
//! COPY in both directions, and CancelRequests on timeouts. This test
//! starts PostgreSQL and sluice, hands pytest the connection settings
//! (tests/python_common/sluice_settings.py), and fails with pytest's report.

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::*;

/// The table the masking tests read: detector-found values (emails, cards,
/// phones), a name only the column rule masks, and a jsonb document.
const PEOPLE_SQL: &str = "\
CREATE TABLE asyncpg_people (
    id integer PRIMARY KEY, name text, email text, card text, notes text,
    docb jsonb, amount bigint);
INSERT INTO asyncpg_people VALUES
 (1, 'Jane Doe', 'jane.doe@example.com', '4111 1111 1111 1111',
  'call (212) 555-0199 or mail jane.doe@example.com',
  '{\"contact\": {\"email\": \"jane.doe@example.com\"}, \"card\": \"5555555555554444\"}', 4111111111111111),
 (2, 'John Smith', 'j.smith+ai@mail.example.org', '5555555555554444',
  'no pii here, order 12345 shipped 2024-05-01', '{\"tags\": [\"a\", \"b\"]}', 42);
ALTER TABLE asyncpg_people OWNER TO sluice_up;
CREATE TYPE asyncpg_mood AS ENUM ('sad', 'happy');
";

/// A rule put before the demo policy's own: on the target "secret" (the
/// same database), server administration functions are allowed, so that
/// the cancellation tests can run `pg_sleep`, which the demo policy holds
/// for approval (and, with no approval service here, refuses). Everything
/// else runs on "app" under the demo policy as shipped.
const SLEEP_RULE: &str = r#"
[[policy.rules]]
id = "allow-admin-on-secret"
targets = ["secret"]
classes = ["admin"]
action = "allow"
"#;

/// The common test config, deploy/policy.demo.toml with [`SLEEP_RULE`]
/// first, and masking: every detector for the agent, plus a column rule
/// that masks `asyncpg_people.name` (no detector finds names) and one that
/// sends `amount` as NULL.
fn gateway() -> Gateway {
    let env = env();
    env.admin("app", PEOPLE_SQL);
    let port = free_port();
    let dir = env.unique_dir("asyncpg-gw");
    let mut config = config_toml(env, &GatewayOpts::default(), port);
    let demo = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/policy.demo.toml"),
    )
    .expect("deploy/policy.demo.toml");
    let first_rule = demo
        .find("[[policy.rules]]")
        .expect("the demo policy has rules");
    config.push_str(&demo[..first_rule]);
    config.push_str(SLEEP_RULE.trim_start());
    config.push('\n');
    config.push_str(&demo[first_rule..]);
    // A small pending bound: the pipelined executemany of 20000 rows must
    // fit in it (identical Binds share one entry).
    let _ = write!(
        config,
        "\n[masking]\nstyles = {{}}\npending_binds_max = 64\n\n\
         [[masking.column_rules]]\ntable = \"public.asyncpg_people\"\ncolumn = \"name\"\naction = \"mask\"\n\n\
         [[masking.column_rules]]\ntable = \"asyncpg_people\"\ncolumn = \"amount\"\naction = \"null\"\n"
    );
    let path = dir.join("sluice.toml");
    std::fs::write(&path, config).unwrap();
    Gateway::start_with_config(path, port)
}

#[test]
fn asyncpg_through_the_gateway() {
    let gw = gateway();
    run_pytest("python_asyncpg", &gw, &[], Duration::from_secs(120));
}
