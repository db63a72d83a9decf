//! Benign suite: statements that must pass the demo policy untouched and
//! classify exactly as intended — keywords inside strings, comments and
//! identifiers, ordinary application queries, and pgbench's own
//! statements (both `-M prepared`/`extended` and `-M simple` forms).

use serde::Deserialize;
use sluice::policy::{classify, Action, Class, CompiledPolicy, PolicyConfig, WhereClause};

fn demo_policy() -> CompiledPolicy {
    #[derive(Deserialize)]
    struct File {
        policy: PolicyConfig,
    }
    let file: File = toml::from_str(include_str!("../deploy/policy.demo.toml")).unwrap();
    let none: &[&str] = &[];
    file.policy.validate(none, none, none).unwrap()
}

use Class::*;

/// (statement, class, where clause)
const BENIGN: &[(&str, Class, WhereClause)] = &[
    // Keywords inside strings, comments and identifiers.
    ("SELECT 'DROP TABLE users; DELETE FROM x'", Read, WhereClause::NotApplicable),
    ("SELECT * FROM t -- DROP TABLE users", Read, WhereClause::NotApplicable),
    ("SELECT /* DELETE FROM users; */ 1", Read, WhereClause::NotApplicable),
    ("SELECT \"drop\", \"delete\" FROM \"update\"", Read, WhereClause::NotApplicable),
    ("SELECT drop_count, delete_flag, updated_at, grant_id FROM stats", Read, WhereClause::NotApplicable),
    ("SELECT $$ DROP TABLE x; $$ AS ddl", Read, WhereClause::NotApplicable),
    ("SELECT $body$ TRUNCATE t $body$", Read, WhereClause::NotApplicable),
    (r"SELECT E'it\'s; DROP TABLE t'", Read, WhereClause::NotApplicable),
    ("SELECT 1 AS \"DELETE\"", Read, WhereClause::NotApplicable),
    ("SELECT * FROM \"pg_terminate_backend\"", Read, WhereClause::NotApplicable),
    ("SELECT jsonb_build_object('drop', 1, 'grant', 2)", Read, WhereClause::NotApplicable),
    ("INSERT INTO logs (msg) VALUES ('DELETE FROM users')", Insert, WhereClause::NotApplicable),
    ("UPDATE notes SET body = 'WHERE 1=1' WHERE id = 3", UpdateWhere, WhereClause::Present),
    ("SELECT * FROM users WHERE name = 'O''Brien'", Read, WhereClause::NotApplicable),
    // Everyday application statements.
    ("SELECT count(*) FROM orders WHERE status = 'shipped'", Read, WhereClause::NotApplicable),
    ("SELECT now() - interval '1 day', x::text FROM t", Read, WhereClause::NotApplicable),
    ("WITH recent AS (SELECT * FROM orders) SELECT * FROM recent", Read, WhereClause::NotApplicable),
    ("(SELECT 1) UNION ALL (SELECT 2)", Read, WhereClause::NotApplicable),
    ("VALUES (1, 'a'), (2, 'b')", Read, WhereClause::NotApplicable),
    ("TABLE users", Read, WhereClause::NotApplicable),
    ("SHOW server_version", Read, WhereClause::NotApplicable),
    ("SELECT * FROM jobs WHERE id = 1 FOR UPDATE SKIP LOCKED", LockingRead, WhereClause::NotApplicable),
    ("SELECT * FROM jobs FOR NO KEY UPDATE LIMIT 1", LockingRead, WhereClause::NotApplicable),
    ("DELETE FROM sessions WHERE expires_at < now()", DeleteWhere, WhereClause::Present),
    ("DELETE FROM t USING u WHERE t.id = u.id", DeleteWhere, WhereClause::Present),
    ("UPDATE users SET last_seen = now() WHERE id = $1 RETURNING id", UpdateWhere, WhereClause::Present),
    ("UPDATE t SET a = 1 WHERE id IN (SELECT id FROM u WHERE u.x = 1)", UpdateWhere, WhereClause::Present),
    ("UPDATE t SET a = 1 WHERE b BETWEEN 1 AND 10", UpdateWhere, WhereClause::Present),
    ("INSERT INTO t (id, a) VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET a = EXCLUDED.a", UpdateWhere, WhereClause::Present),
    ("COPY users TO STDOUT WITH (FORMAT csv)", CopyTo, WhereClause::NotApplicable),
    ("COPY users (id, name) FROM STDIN", CopyFrom, WhereClause::NotApplicable),
    ("CREATE TABLE notes (id serial PRIMARY KEY, body text)", Create, WhereClause::NotApplicable),
    ("CREATE INDEX ON notes (body)", Create, WhereClause::NotApplicable),
    ("CREATE TABLE snapshot AS SELECT * FROM notes", Create, WhereClause::NotApplicable),
    ("COMMENT ON TABLE notes IS 'drop me later'", Comment, WhereClause::NotApplicable),
    ("ANALYZE notes", Maintenance, WhereClause::NotApplicable),
    ("SET search_path TO public", Session, WhereClause::NotApplicable),
    ("SET application_name = 'agent'", Session, WhereClause::NotApplicable),
    // asyncpg turns jit off around its type introspection, and back.
    (
        "SELECT current_setting('jit') AS cur, set_config('jit', 'off', false) AS new",
        Session,
        WhereClause::NotApplicable,
    ),
    ("SELECT set_config('jit', $1, false)", Session, WhereClause::NotApplicable),
    ("LISTEN events", ListenNotify, WhereClause::NotApplicable),
    ("NOTIFY events, 'drop'", ListenNotify, WhereClause::NotApplicable),
    ("SAVEPOINT s1", Transaction, WhereClause::NotApplicable),
    ("ROLLBACK TO SAVEPOINT s1", Transaction, WhereClause::NotApplicable),
    ("CALL refresh_stats()", Call, WhereClause::NotApplicable),
    ("EXPLAIN SELECT * FROM users", Read, WhereClause::NotApplicable),
    // pgbench, extended protocol (-M extended / prepared).
    ("SELECT abalance FROM pgbench_accounts WHERE aid = $1;", Read, WhereClause::NotApplicable),
    ("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;", UpdateWhere, WhereClause::Present),
    ("UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;", UpdateWhere, WhereClause::Present),
    ("UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;", UpdateWhere, WhereClause::Present),
    ("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);", Insert, WhereClause::NotApplicable),
    ("BEGIN;", Transaction, WhereClause::NotApplicable),
    ("END;", Transaction, WhereClause::NotApplicable),
    // pgbench -M simple interpolates the values.
    ("UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 12345;", UpdateWhere, WhereClause::Present),
    ("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;", Read, WhereClause::NotApplicable),
    ("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 12345, -4321, CURRENT_TIMESTAMP);", Insert, WhereClause::NotApplicable),
    ("select count(*) from pgbench_branches", Read, WhereClause::NotApplicable),
    ("vacuum pgbench_branches", Maintenance, WhereClause::NotApplicable),
];

#[test]
fn benign_statements_classify_exactly_and_are_allowed() {
    let policy = demo_policy();
    let none: &[&str] = &[];
    let mut failures = Vec::new();
    for &(sql, class, where_clause) in BENIGN {
        let statements = classify(sql);
        let d = policy.decide("agent", none, "target", &statements);
        let got: Vec<_> = statements
            .iter()
            .map(|s| (s.class, s.where_clause))
            .collect();
        if got != [(class, where_clause)] || d.action != Action::Allow {
            failures.push(format!(
                "{sql:?}: expected [({class:?}, {where_clause:?})] allowed, got {got:?} {:?} ({:?})",
                d.action, statements
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_pgbench_transaction_in_one_query_is_allowed() {
    let sql = "BEGIN;\
        UPDATE pgbench_accounts SET abalance = abalance + -10 WHERE aid = 1;\
        SELECT abalance FROM pgbench_accounts WHERE aid = 1;\
        UPDATE pgbench_tellers SET tbalance = tbalance + -10 WHERE tid = 1;\
        UPDATE pgbench_branches SET bbalance = bbalance + -10 WHERE bid = 1;\
        INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, -10, CURRENT_TIMESTAMP);\
        END;";
    let statements = classify(sql);
    let classes: Vec<Class> = statements.iter().map(|s| s.class).collect();
    assert_eq!(
        classes,
        [
            Transaction,
            UpdateWhere,
            Read,
            UpdateWhere,
            UpdateWhere,
            Insert,
            Transaction
        ]
    );
    let none: &[&str] = &[];
    assert_eq!(
        demo_policy().decide("agent", none, "t", &statements).action,
        Action::Allow
    );
    let relations: Vec<&str> = statements[1]
        .relations
        .iter()
        .map(|r| &sql[r.clone()])
        .collect();
    assert_eq!(relations, ["pgbench_accounts"]);
}
