//! End-to-end: masking in the data path, through real clients (psql,
//! psycopg 3 with binary results and prepared statements, `\copy`) against
//! a real PostgreSQL. Sensitive values must never reach the agent, in rows,
//! COPY data, JSON, error and notice fields, notifications or parameter
//! statuses; an agent with the profile "none" sees the originals; a
//! length-changing redaction re-frames messages correctly; the ledger
//! records what was masked (detector, column, count) and only the masked
//! bytes; and the accuracy of masking measured from what the client
//! received (recall and precision over a labelled corpus).

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::*;

/// Sensitive values of the `people` table, as they are stored.
const ORIGINALS: &[&str] = &[
    "jane.doe@example.com",
    "j.smith+ai@mail.example.org",
    "(212) 555-0199",
    "+1 415-555-0134",
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "5555555555554444",
    "536-22-1234",
    "203.0.113.7",
    "AKIAIOSFODNN7EXAMPLE",
];

/// Names, which no detector finds; a column rule masks them.
const NAMES: &[&str] = &["Jane Doe", "John Smith"];

const PEOPLE_SQL: &str = "\
CREATE TABLE people (
    id integer PRIMARY KEY, name text, email text UNIQUE, phone text, card text,
    ssn text, notes text, doc json, docb jsonb, secret text, amount bigint);
INSERT INTO people VALUES
 (1, 'Jane Doe', 'jane.doe@example.com', '(212) 555-0199', '4111 1111 1111 1111',
  '536-22-1234', 'call (212) 555-0199 or mail jane.doe@example.com; card 4111-1111-1111-1111',
  '{\"email\": \"jane.doe@example.com\", \"ip\": \"203.0.113.7\", \"n\": 1}',
  '{\"contact\": {\"email\": \"jane.doe@example.com\"}, \"card\": \"5555555555554444\", \"n\": 1}',
  'AKIAIOSFODNN7EXAMPLE', 4111111111111111),
 (2, 'John Smith', 'j.smith+ai@mail.example.org', '+1 415-555-0134', '5555555555554444',
  NULL, 'no pii here, order 12345 shipped 2024-05-01', '[1, 2, 3]', '{\"tags\": [\"a\", \"b\"]}',
  NULL, 42);
ALTER TABLE people OWNER TO sluice_up;
";

fn prepare_people() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        env().admin("app", PEOPLE_SQL);
    });
}

/// The common test config plus `[masking]`: the agent "limited" gets the
/// profile "none", everyone else the default profile. `styles` is TOML for
/// the styles key; `rules` adds column rules (names masked whole, amounts
/// sent as NULL, and a rule for a table that does not exist); `ledger` adds
/// a `[ledger]` section.
/// A fresh ledger directory and signing key under the test environment:
/// returns the ledger directory and the key file.
fn new_ledger(name: &str) -> (PathBuf, PathBuf) {
    let dir = env().dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("ledger.key");
    let signer = sluice_ledger::SignerKey::generate("sluice.e2e").unwrap();
    sluice_ledger::keys::write_key_pair(&signer, &key, &dir.join("ledger.vkey")).unwrap();
    (dir.join("ledger"), key)
}

/// What the ledger says was delivered to agents (every server message's
/// bytes, concatenated) and its masking summaries (values masked, rules).
fn delivered_and_summaries(ledger: &Path) -> (String, Vec<(u64, String)>) {
    let storage = sluice_ledger::FsStorage::new(ledger.to_path_buf());
    let records = sluice_ledger::LedgerReader::new(&storage)
        .records()
        .expect("read ledger");
    let mut delivered = Vec::new();
    let mut summaries = Vec::new();
    for r in records {
        match r.body {
            Some(sluice_ledger::RecordBody::ServerMessage { bytes }) => {
                delivered.extend_from_slice(&bytes)
            }
            Some(sluice_ledger::RecordBody::MaskingSummary {
                values_masked,
                rules,
            }) => summaries.push((values_masked, rules)),
            _ => {}
        }
    }
    (String::from_utf8_lossy(&delivered).into_owned(), summaries)
}

fn masking_config(styles: &str, rules: bool, ledger: Option<(&Path, &Path)>) -> (PathBuf, u16) {
    let env = env();
    let port = free_port();
    let dir = env.unique_dir("mask-gw");
    let mut toml = config_toml(env, &GatewayOpts::default(), port).replace(
        "name = \"limited\"\n",
        "name = \"limited\"\nmasking_profile = \"none\"\n",
    );
    assert!(
        toml.contains("masking_profile"),
        "agent \"limited\" not found"
    );
    let _ = write!(toml, "\n[masking]\nstyles = {styles}\n\n");
    if rules {
        let _ = write!(
            toml,
            "[[masking.column_rules]]\ntable = \"public.people\"\ncolumn = \"name\"\naction = \"mask\"\n\n\
         [[masking.column_rules]]\ntable = \"people\"\ncolumn = \"amount\"\naction = \"null\"\n\n\
         [[masking.column_rules]]\ntable = \"ghost\"\ncolumn = \"id\"\n\n"
        );
    }
    if let Some((directory, key)) = ledger {
        let _ = write!(
            toml,
            "[ledger]\ndirectory = \"{}\"\nkey_file = \"{}\"\norigin = \"sluice.e2e/ledger\"\n\
             durability = \"strict\"\nserver_messages = \"full\"\n",
            directory.display(),
            key.display()
        );
    }
    let path = dir.join("sluice.toml");
    std::fs::write(&path, toml).unwrap();
    (path, port)
}

fn start(styles: &str, rules: bool) -> Gateway {
    prepare_people();
    let (config, port) = masking_config(styles, rules, None);
    Gateway::start_with_config(config, port)
}

fn assert_no_originals(gw: &Gateway, what: &str, text: &str) {
    for original in ORIGINALS {
        gw.check(
            !text.contains(original),
            &format!("{what}: the agent received {original:?}:\n{text}"),
        );
        // bytea's text form: the value's bytes in hex.
        let hex: String = original.bytes().map(|b| format!("{b:02x}")).collect();
        gw.check(
            !text.to_ascii_lowercase().contains(&hex),
            &format!("{what}: the agent received {original:?} in hex:\n{text}"),
        );
    }
}

#[test]
fn psql_rows_copy_json_errors_notices_and_notifications_never_leak() {
    let gw = start("{}", true);
    let agent = gw.agent("app");

    let rows = agent
        .psql("SELECT id, name, email, phone, card, ssn, notes, doc, docb, secret, amount FROM people ORDER BY id")
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    assert_no_originals(&gw, "psql rows", &rows);
    for name in NAMES {
        gw.check(
            !rows.contains(name),
            &format!("column rule missed {name}:\n{rows}"),
        );
    }
    // Same-length styles: stars keep punctuation; cards keep their last four
    // digits; the id column (an integer) is untouched; the column rules
    // mask names whole and turn the bigint into NULL.
    gw.check(
        rows.contains(
            "1|**** ***|****.***@*******.***|(***) ***-****|**** **** **** 1111|***-**-****|",
        ),
        &format!("unexpected masked row:\n{rows}"),
    );
    gw.check(
        rows.contains("|********************|\n") || rows.contains("|********************|"),
        &format!("AWS key not masked as expected:\n{rows}"),
    );
    gw.check(
        rows.contains("no pii here, order 12345 shipped 2024-05-01"),
        &format!("benign text was altered:\n{rows}"),
    );

    // The same rows directly from PostgreSQL are the originals.
    let direct = env()
        .direct("app")
        .psql("SELECT email, card, name FROM people WHERE id = 1")
        .unwrap();
    assert_eq!(
        direct.trim(),
        "jane.doe@example.com|4111 1111 1111 1111|Jane Doe"
    );

    // COPY TO STDOUT, text and CSV. COPY does not describe its columns, so
    // with column rules in the profile its data is masked whole (letters
    // and digits; separators stay).
    for format in ["", " WITH (FORMAT csv)"] {
        let copied = agent
            .psql_script(&format!(
                "\\copy (SELECT * FROM people ORDER BY id) TO STDOUT{format}\n"
            ))
            .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
        gw.check(
            copied.lines().count() == 2
                && !copied
                    .replace("\\N", "")
                    .bytes()
                    .any(|b| b.is_ascii_alphanumeric())
                && copied.contains("****.***@*******.***"),
            &format!("\\copy output unexpected:\n{copied}"),
        );
    }

    // JSON stays valid JSON after masking.
    let json = agent
        .psql("SELECT (docb->'contact'->>'email') || ' ' || (doc::jsonb->>'ip') FROM people WHERE id = 1")
        .unwrap();
    assert_no_originals(&gw, "json", &json);
    let valid = agent
        .psql("SELECT docb::text::jsonb IS NOT NULL FROM people WHERE id = 1")
        .unwrap();
    assert_eq!(valid.trim(), "t");

    // Errors echo input values: a unique violation (DETAIL) and an invalid
    // input (the message itself).
    let err = agent
        .psql("INSERT INTO people (id, email) VALUES (99, 'jane.doe@example.com')")
        .expect_err("the duplicate must fail");
    assert_no_originals(&gw, "unique violation", &err);
    gw.check(
        err.contains("duplicate key") && err.contains("(email)=(****.***@*******.***)"),
        &format!("unexpected error:\n{err}"),
    );
    let err = agent
        .psql("SELECT 'card 4111-1111-1111-1111'::integer")
        .expect_err("the cast must fail");
    // psql quotes the agent's own statement after "LINE 1:" (from its own
    // memory, not from the server): only the server's fields are checked.
    let err: String = err
        .lines()
        .filter(|l| !l.starts_with("LINE "))
        .collect::<Vec<_>>()
        .join("\n");
    assert_no_originals(&gw, "invalid input", &err);
    gw.check(
        err.contains("invalid input syntax") && err.contains("****-****-****-1111"),
        &format!("unexpected error:\n{err}"),
    );

    // NoticeResponse (RAISE NOTICE) and NotificationResponse (NOTIFY).
    let out = agent
        .command("psql")
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"])
        .output_with_stdin_within(
            b"DO $$ BEGIN RAISE NOTICE 'ssn %', (SELECT ssn FROM people WHERE id = 1); END $$;\n\
              LISTEN chan;\n\
              SELECT pg_notify('chan', 'mail ' || email) FROM people WHERE id = 1;\n\
              SELECT 1;\n",
            Duration::from_secs(60),
        )
        .unwrap();
    let both = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{both}\n{}", gw.log_tail());
    assert_no_originals(&gw, "notice/notify", &both);
    gw.check(
        both.contains("NOTICE:  ssn ***-**-****")
            && both.contains("with payload \"mail ****.***@*******.***\""),
        &format!("notice or notification missing:\n{both}"),
    );
    gw.assert_serves();
}

#[test]
fn profile_none_sees_originals() {
    let gw = start("{}", true);
    let limited = gw.conn("limited", &env().token("limited"), "app");
    let rows = limited
        .psql("SELECT name, email, card, amount FROM people WHERE id = 1")
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    assert_eq!(
        rows.trim(),
        "Jane Doe|jane.doe@example.com|4111 1111 1111 1111|4111111111111111"
    );
    let masked = gw
        .agent("app")
        .psql("SELECT name, email, card, amount FROM people WHERE id = 1")
        .unwrap();
    assert_eq!(
        masked.trim(),
        "**** ***|****.***@*******.***|**** **** **** 1111|"
    );
}

/// Runs the psycopg client `script` (in tests/python_masking) as `agent`
/// through `gw`, with the shared connection settings module on
/// PYTHONPATH, and returns the JSON document it prints.
fn run_masking_script(
    gw: &Gateway,
    script: &str,
    agent: &str,
    extra_env: &[(&str, &str)],
    timeout: Duration,
) -> serde_json::Value {
    let python = venv_python();
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut command = Command::new(&python);
    command
        .arg(tests.join("python_masking").join(script))
        .env("PYTHONPATH", tests.join("python_common"))
        .env("SLUICE_GW_PORT", gw.port.to_string())
        .env("SLUICE_AGENT", agent)
        .env("SLUICE_TOKEN", env().token(agent))
        .env("SLUICE_CA", &env().certs.ca_cert)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PGSSLMODE")
        .env_remove("PGHOST");
    for (name, value) in extra_env {
        command.env(name, value);
    }
    let out = command.output_within(timeout).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}\n--- sluice ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.log_tail()
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn run_python_client(gw: &Gateway, agent: &str) -> serde_json::Value {
    run_masking_script(gw, "masking_client.py", agent, &[], Duration::from_secs(60))
}

#[test]
fn psycopg_binary_prepared_json_and_parameter_status_never_leak() {
    let gw = start("{}", true);
    let got = run_python_client(&gw, "agent");
    let text = got.to_string();
    assert_no_originals(&gw, "psycopg", &text);
    let binary = &got["binary"];
    // Binary rows decode (framing and jsonb version byte intact): ids are
    // integers, the masked text is what the text protocol shows.
    assert_eq!(binary[0][0], 1);
    assert_eq!(binary[1][0], 2);
    assert_eq!(binary[0][2], "****.***@*******.***");
    assert_eq!(binary[0][1], "**** ***");
    // A varchar in binary format is text-like: scanned.
    assert_eq!(binary[0][11], "****.***@*******.***");
    assert_eq!(binary[0][8]["contact"]["email"], "****.***@*******.***");
    assert_eq!(binary[0][10], serde_json::Value::Null);
    assert_eq!(binary[1][6], "no pii here, order 12345 shipped 2024-05-01");
    for rows in got["prepared"].as_array().unwrap() {
        assert_eq!(rows[0][0], 1);
        assert_eq!(rows[0][1], "****.***@*******.***");
        assert_eq!(rows[0][3], serde_json::Value::Null);
    }
    assert_eq!(got["text"][0][1], "****.***@*******.***");
    assert_eq!(got["application_name"], "****.***@*******.***");
    assert_eq!(got["notices"][0], "ssn on file: ***-**-****");
    assert_eq!(got["notifies"][0], "card **** **** **** 1111");
    let error = got["error"].as_str().unwrap_or_default();
    assert!(error.contains("****.***@*******.***"), "{error}");

    // The profile "none" gets the originals through the same client.
    let plain = run_python_client(&gw, "limited");
    assert_eq!(plain["binary"][0][2], "jane.doe@example.com");
    assert_eq!(plain["binary"][0][10], 4111111111111111u64);
    assert_eq!(plain["application_name"], "jane.doe@example.com");
}

#[test]
fn redaction_reframes_through_psql_and_psycopg() {
    let gw = start(
        "{ email = \"redact\", ssn = \"redact\", card = \"redact\" }",
        false,
    );
    let agent = gw.agent("app");
    let rows = agent
        .psql("SELECT id, email, ssn, card, notes, docb FROM people ORDER BY id")
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    assert_no_originals(&gw, "redacted psql rows", &rows);
    let first = rows.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(
            "1|[EMAIL]|[SSN]|[CARD]|call (***) ***-**** or mail [EMAIL]; card [CARD]|"
        ),
        "{rows}"
    );
    let copied = agent
        .psql_script("\\copy (SELECT id, email, notes FROM people ORDER BY id) TO STDOUT\n")
        .unwrap();
    assert_eq!(
        copied.lines().next(),
        Some("1\t[EMAIL]\tcall (***) ***-**** or mail [EMAIL]; card [CARD]")
    );
    let err = agent
        .psql("INSERT INTO people (id, email) VALUES (98, 'jane.doe@example.com')")
        .expect_err("duplicate");
    assert!(err.contains("(email)=([EMAIL])"), "{err}");
    // Binary COPY carries text values verbatim: they are masked too (with
    // same-length styles, so the binary framing stays valid).
    let out = agent
        .command("psql")
        .args([
            "-X",
            "-q",
            "-c",
            "\\copy (SELECT id, email, notes FROM people ORDER BY id) TO STDOUT WITH (FORMAT binary)",
        ])
        .output_within(Duration::from_secs(60))
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let binary = String::from_utf8_lossy(&out.stdout);
    assert!(binary.starts_with("PGCOPY\n"), "{binary:?}");
    assert_no_originals(&gw, "binary copy", &binary);
    let got = run_python_client(&gw, "agent");
    assert_no_originals(&gw, "redacted psycopg", &got.to_string());
    assert_eq!(got["binary"][0][2], "[EMAIL]");
    assert_eq!(got["binary"][0][5], "[SSN]");
    assert_eq!(got["binary"][0][8]["card"], "[CARD]");
    assert_eq!(got["binary"][1][0], 2);
    assert_eq!(got["prepared"][2][0][1], "[EMAIL]");
    assert_eq!(got["notifies"][0], "card [CARD]");
    gw.assert_serves();
}

#[test]
fn ledger_records_masked_bytes_and_a_summary_without_values() {
    prepare_people();
    let (ledger, key) = new_ledger("mask-ledger");
    let (config, port) = masking_config("{}", true, Some((&ledger, &key)));
    let mut gw = Gateway::start_with_config(config, port);
    gw.agent("app")
        .psql("SELECT name, email, card, notes FROM people ORDER BY id")
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(Duration::from_secs(20)).is_some());

    let (delivered, summaries) = delivered_and_summaries(&ledger);
    assert!(delivered.contains("****.***@*******.***"), "{delivered}");
    assert_no_originals(&gw, "ledger server messages", &delivered);
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    let (values, rules) = &summaries[0];
    // Row 1: name (rule), email, card, notes (phone, email, card); row 2:
    // name (rule), email, card.
    assert_eq!(*values, 9, "{rules}");
    assert!(rules.starts_with("profile=default"), "{rules}");
    for entry in [
        "email \"email\" 2",
        "card \"card\" 2",
        "whole_value \"name\" 2",
        "phone \"notes\" 1",
        "email \"notes\" 1",
        "card \"notes\" 1",
    ] {
        assert!(rules.contains(entry), "{entry} missing from {rules}");
    }
    assert_no_originals(&gw, "summary", rules);
    // `sluice-ledger sessions` counts masked values per session.
    let out = Command::new(ledger_bin())
        .args(["sessions"])
        .arg(&ledger)
        .output_within(Duration::from_secs(30))
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("masked"), "{listing}");
}

#[test]
fn check_config_reports_masking_mistakes_with_key_paths() {
    prepare_people();
    let (good, _) = masking_config("{}", true, None);
    let text = std::fs::read_to_string(&good).unwrap();
    let out = Command::new(SLUICE)
        .args(["check-config"])
        .arg(&good)
        .output_within(Duration::from_secs(30))
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (broken, key) in [
        (
            text.replace("styles = {}", "styles = {}\nsurprise = 1"),
            "masking.surprise",
        ),
        (
            text.replace("styles = {}", "styles = { email = \"shout\" }"),
            "masking.styles.email",
        ),
        (
            text.replace(
                "styles = {}",
                "styles = {}\n[[masking.detectors]]\nname = \"emp\"\npattern = \"EMP-[0-9\"\n",
            ),
            "masking.detectors[0].pattern",
        ),
        (
            text.replace("masking_profile = \"none\"", "masking_profile = \"nobody\""),
            "agents[1].masking_profile",
        ),
        (
            text.replace("table = \"ghost\"", "table = \"gh'ost\""),
            "masking.column_rules[2].table",
        ),
        (
            text.replace("styles = {}", "styles = {}\npending_binds_max = 0"),
            "masking.pending_binds_max",
        ),
    ] {
        let p = good.with_file_name("broken.toml");
        std::fs::write(&p, &broken).unwrap();
        let out = Command::new(SLUICE)
            .args(["check-config"])
            .arg(&p)
            .output_within(Duration::from_secs(30))
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "accepted a bad {key}:\n{broken}");
        assert!(said.contains(key), "error does not name {key}: {said}");
    }
}

/// COPY text-format escaping of one value.
fn copy_escape(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[test]
fn accuracy_measured_from_what_psql_receives() {
    use sluice::masking::corpus::labelled;
    prepare_people();
    let samples = labelled(0x5eed_0006, 12_000);
    let mut data = String::new();
    for (i, s) in samples.iter().enumerate() {
        let _ = write!(data, "{i}\t");
        copy_escape(&s.text, &mut data);
        data.push('\n');
    }
    let file = scratch_file("accuracy.copy", data.as_bytes());
    let direct = env().direct("app");
    direct
        .psql(
            "DROP TABLE IF EXISTS accuracy; CREATE TABLE accuracy (id integer PRIMARY KEY, t text)",
        )
        .unwrap();
    direct
        .psql_script(&format!("\\copy accuracy FROM '{}'\n", file.display()))
        .unwrap();

    let gw = start("{}", false);
    // Unit and record separators that the corpus never contains, so that
    // psql's unaligned output can be split without escaping.
    let out = gw
        .agent("app")
        .command("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-q",
            "-F",
            "\u{1f}",
            "-R",
            "\u{1e}",
            "-c",
            "SELECT id, t FROM accuracy ORDER BY id",
        ])
        .output_within(Duration::from_secs(120))
        .unwrap();
    assert!(out.status.success(), "{}", gw.log_tail());
    let received = String::from_utf8(out.stdout).unwrap();
    let mut rows: Vec<&str> = received.trim_end_matches('\n').split('\u{1e}').collect();
    if rows.last() == Some(&"") {
        rows.pop();
    }
    assert_eq!(rows.len(), samples.len());

    let (mut labelled_total, mut covered) = (0usize, 0usize);
    let (mut true_positive, mut false_positive) = (0usize, 0usize);
    let mut missed = Vec::new();
    let mut false_examples = Vec::new();
    for (row, sample) in rows.iter().zip(&samples) {
        let (id, got) = row.split_once('\u{1f}').expect("two fields");
        let original = sample.text.as_bytes();
        let got = got.as_bytes();
        assert_eq!(
            got.len(),
            original.len(),
            "row {id}: same-length styles changed the length"
        );
        let changed: Vec<usize> = (0..got.len()).filter(|&i| got[i] != original[i]).collect();
        match &sample.label {
            Some((kind, range)) => {
                labelled_total += 1;
                let value = &sample.text[range.clone()];
                // Covered: the sensitive value no longer appears, and at
                // most the four digits a card keeps are left of it.
                let hidden = !String::from_utf8_lossy(got).contains(value);
                let left = got[range.clone()]
                    .iter()
                    .filter(|b| b.is_ascii_alphanumeric())
                    .count();
                if hidden && left <= 4 {
                    covered += 1;
                } else if missed.len() < 10 {
                    missed.push(format!(
                        "{kind:?}: {:?} -> {:?}",
                        sample.text,
                        String::from_utf8_lossy(got)
                    ));
                }
                if changed.iter().any(|&i| i < range.start || i >= range.end) {
                    false_positive += 1;
                    if false_examples.len() < 10 {
                        false_examples.push(String::from_utf8_lossy(got).into_owned());
                    }
                } else if !changed.is_empty() {
                    true_positive += 1;
                }
            }
            None => {
                if !changed.is_empty() {
                    false_positive += 1;
                    if false_examples.len() < 10 {
                        false_examples.push(String::from_utf8_lossy(got).into_owned());
                    }
                }
            }
        }
    }
    let recall = covered as f64 / labelled_total as f64;
    let precision = true_positive as f64 / (true_positive + false_positive) as f64;
    println!(
        "masking accuracy through sluice and psql over {} values ({labelled_total} sensitive, {} look-alikes)",
        samples.len(),
        samples.len() - labelled_total
    );
    println!(
        "recall    {:.3}% ({covered}/{labelled_total})",
        recall * 100.0
    );
    println!(
        "precision {:.3}% ({true_positive} values masked rightly, {false_positive} values masked wrongly)",
        precision * 100.0
    );
    for m in &missed {
        println!("missed: {m}");
    }
    for f in &false_examples {
        println!("false: {f}");
    }
    assert!(recall >= 0.995, "recall {recall}");
    assert!(precision >= 0.98, "precision {precision}");
}

/// Objects the attacker's queries use: the hstore and citext extensions, a
/// domain over text and an enum whose label is a stored e-mail (made from
/// the data with dynamic SQL, as an agent could).
const LEAK_OBJECTS_SQL: &str = "\
CREATE EXTENSION IF NOT EXISTS hstore;
CREATE EXTENSION IF NOT EXISTS citext;
CREATE DOMAIN leak_mail AS text;
DO $$ BEGIN EXECUTE format('CREATE TYPE leak_enum AS ENUM (%L)',
    (SELECT email FROM people WHERE id = 1)); END $$;
";

fn prepare_leak_objects() {
    static DONE: OnceLock<()> = OnceLock::new();
    prepare_people();
    DONE.get_or_init(|| {
        env().admin("app", LEAK_OBJECTS_SQL);
    });
}

fn run_leak_hunt_client(
    gw: &Gateway,
    agent: &str,
    skip: &[&str],
) -> serde_json::Map<String, serde_json::Value> {
    let skip = skip.join(",");
    match run_masking_script(
        gw,
        "leak_hunt_client.py",
        agent,
        &[("LEAK_HUNT_SKIP", &skip)],
        Duration::from_secs(120),
    ) {
        serde_json::Value::Object(map) => map,
        other => panic!("not a JSON object: {other}"),
    }
}

/// Every attempt of the attacker whose outcome holds an original value.
fn leaks(outcomes: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
    let mut found = Vec::new();
    for (attempt, outcome) in outcomes {
        let text = outcome.as_str().unwrap_or_default();
        for original in ORIGINALS {
            if text.contains(original) {
                let shown: String = text.chars().take(300).collect();
                found.push(format!("{attempt}: {original:?} in {shown:?}"));
            }
        }
    }
    found
}

/// Attempts whose values reach the agent by the detectors' design, not by
/// a gap in the data path: numbers glued to other digits or joined to
/// them by `-`, `.` or `/` are not cut out of the longer number (the
/// numeric boundary rule in `src/masking/detectors.rs`, which keeps
/// prices, versions and part numbers intact).
const BY_DESIGN: &[&str] = &[
    "text format_concat",
    "binary format_concat",
    "text string_agg_glued",
    "binary string_agg_glued",
];

#[test]
fn psycopg_attacker_gets_no_sensitive_value_out() {
    prepare_leak_objects();
    let gw = start("{}", false);
    let mut outcomes = run_leak_hunt_client(&gw, "agent", &[]);
    for (attempt, outcome) in &outcomes {
        let text: String = outcome
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(400)
            .collect();
        println!("{attempt}: {text}");
    }
    for attempt in BY_DESIGN {
        // The glued values really are what the detectors leave alone:
        // everything else in the same rows is masked.
        let outcome = outcomes.remove(*attempt).unwrap_or_default();
        assert!(
            outcome
                .as_str()
                .unwrap_or_default()
                .contains("****.***@*******.***"),
            "{attempt}: {outcome}"
        );
    }
    let found = leaks(&outcomes);
    assert!(found.is_empty(), "leaks:\n{}", found.join("\n"));
    let got = |attempt: &str| outcomes[attempt].as_str().unwrap_or_default().to_owned();
    // Binary arrays, records and hstore values still decode, with their
    // text masked where it sits.
    let emails = "****.***@*******.***, *.*****+**@****.*******.***";
    assert_eq!(
        got("binary text_array"),
        format!("columns [array_agg] rows [[[{emails}]]]")
    );
    assert_eq!(got("binary varchar_array"), got("text varchar_array"));
    assert_eq!(got("binary nested_array"), got("text nested_array"));
    assert_eq!(got("binary row_constructor"), got("text row_constructor"));
    assert_eq!(got("binary array_of_records"), got("text array_of_records"));
    assert_eq!(
        got("binary record_with_array"),
        "columns [row] rows [[[1, [****.***@*******.***, **** **** **** 1111]]]]"
    );
    assert_eq!(got("binary jsonb_array"), got("text jsonb_array"));
    assert!(
        got("binary hstore").ends_with(
            "card\0\0\0\u{13}**** **** **** 1111\0\0\0\u{5}email\0\0\0\u{14}****.***@*******.***]]"
        ),
        "{}",
        got("binary hstore")
    );
    // bytea, in hex (text results) and raw (binary results), decodes to
    // the masked bytes.
    let bytea = "columns [email, secret] rows [[****.***@*******.***, ********************]]";
    assert_eq!(got("text bytea_cast"), bytea);
    assert_eq!(got("binary bytea_cast"), bytea);
    // Pipelined Bind/Execute pairs stay within masking.pending_binds_max.
    assert_eq!(got("executemany"), "[[5000, **@*******.**]]");
    // A column named after a stored value, and a channel named after one.
    assert_eq!(
        got("column name from data select"),
        "columns [****.***@*******.***] rows [[1]]"
    );
    assert!(
        got("notifications").contains("****.***@*******.***: from the channel name"),
        "{}",
        got("notifications")
    );
    gw.assert_serves();
}

/// Frontend messages of the extended protocol, built by hand: the attacks
/// below send sequences no driver would, and only a raw client can.
mod wire {
    use super::common::pgwire::message;

    fn cstr(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    pub fn parse(statement: &str, sql: &str) -> Vec<u8> {
        let mut b = Vec::new();
        cstr(&mut b, statement);
        cstr(&mut b, sql);
        b.extend_from_slice(&0u16.to_be_bytes());
        message(b'P', &b)
    }

    /// Bind without parameters; `binary` asks for every column in binary.
    pub fn bind(portal: &str, statement: &str, binary: bool) -> Vec<u8> {
        bind_formats(portal, statement, if binary { &[1] } else { &[] })
    }

    /// Bind without parameters, with these result format codes (none:
    /// all text; one: all columns; otherwise one per column).
    pub fn bind_formats(portal: &str, statement: &str, formats: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        cstr(&mut b, portal);
        cstr(&mut b, statement);
        b.extend_from_slice(&0u16.to_be_bytes());
        b.extend_from_slice(&0u16.to_be_bytes());
        b.extend_from_slice(&(formats.len() as u16).to_be_bytes());
        for f in formats {
            b.extend_from_slice(&f.to_be_bytes());
        }
        message(b'B', &b)
    }

    pub fn describe(kind: u8, name: &str) -> Vec<u8> {
        let mut b = vec![kind];
        cstr(&mut b, name);
        message(b'D', &b)
    }

    pub fn execute(portal: &str, rows_max: i32) -> Vec<u8> {
        let mut b = Vec::new();
        cstr(&mut b, portal);
        b.extend_from_slice(&rows_max.to_be_bytes());
        message(b'E', &b)
    }

    pub fn sync() -> Vec<u8> {
        message(b'S', &[])
    }
}

/// Sends `messages` and returns every backend message up to the next
/// ReadyForQuery, as (type, body).
fn exchange(conn: &mut PgConn, messages: &[Vec<u8>]) -> Vec<(u8, Vec<u8>)> {
    use std::io::Write as _;
    let all: Vec<u8> = messages.concat();
    conn.io.write_all(&all).unwrap();
    conn.io.flush().unwrap();
    let mut got = Vec::new();
    loop {
        let (kind, body) = common::pgwire::read_message(&mut conn.io).unwrap();
        got.push((kind, body));
        if kind == b'Z' {
            return got;
        }
    }
}

fn assert_no_originals_in_messages(gw: &Gateway, what: &str, got: &[(u8, Vec<u8>)]) {
    let text: String = got
        .iter()
        .map(|(kind, body)| format!("{}:{} ", *kind as char, String::from_utf8_lossy(body)))
        .collect();
    gw.check(
        got.iter().any(|(kind, _)| *kind == b'D'),
        &format!("{what}: no rows came back: {text}"),
    );
    assert_no_originals(gw, what, &text);
}

/// The rows of one portal must be masked by that portal's shape, not by
/// the shape of another portal that happened to be described last.
#[test]
fn raw_protocol_portals_cannot_borrow_another_portals_shape() {
    prepare_people();
    let gw = start("{}", false);
    let mut conn = gw
        .login_agent("app")
        .unwrap_or_else(|e| panic!("{e:?}\n{}", gw.log_tail()));

    // A portal of integers in binary is described, and the rows of a
    // portal of e-mails are fetched.
    let got = exchange(
        &mut conn,
        &[
            wire::parse("ints", "SELECT 1::int8 AS n"),
            wire::parse("mails", "SELECT email FROM people ORDER BY id"),
            wire::bind("p_ints", "ints", true),
            wire::bind("p_mails", "mails", false),
            wire::describe(b'P', "p_ints"),
            wire::execute("p_mails", 0),
            wire::sync(),
        ],
    );
    assert_no_originals_in_messages(&gw, "rows of a portal that was not described", &got);

    // In a transaction, a portal bound in text format is fetched after a
    // described statement was bound again in binary: the int8 column of
    // the text portal holds a card number.
    conn.simple_query("BEGIN").unwrap();
    let got = exchange(
        &mut conn,
        &[
            wire::parse("cards", "SELECT amount, email FROM people WHERE id = 1"),
            wire::bind("p_text", "cards", false),
            wire::sync(),
        ],
    );
    assert!(got.iter().all(|(k, _)| *k != b'E'), "{got:?}");
    let got = exchange(
        &mut conn,
        &[
            wire::describe(b'S', "cards"),
            wire::bind("p_binary", "cards", true),
            wire::execute("p_text", 0),
            wire::sync(),
        ],
    );
    assert_no_originals_in_messages(&gw, "rows under a later Bind's formats", &got);
    // The card number stored as a bigint arrives as text here, where
    // content detection finds it (in binary it would be eight bytes).
    let text: String = got
        .iter()
        .map(|(_, body)| String::from_utf8_lossy(body).into_owned())
        .collect();
    gw.check(
        !text.contains("4111111111111111") && text.contains("************1111"),
        &format!("the text portal's bigint card number was not masked: {text:?}"),
    );

    // A portal fetched in batches keeps its own shape between Executes.
    let got = exchange(
        &mut conn,
        &[
            wire::parse("both", "SELECT id, email FROM people ORDER BY id"),
            wire::bind("p_batches", "both", true),
            wire::describe(b'P', "p_batches"),
            wire::execute("p_batches", 1),
            wire::execute("p_batches", 1),
            wire::sync(),
        ],
    );
    assert_no_originals_in_messages(&gw, "rows fetched in batches", &got);
    let rows: Vec<&Vec<u8>> = got
        .iter()
        .filter(|(k, _)| *k == b'D')
        .map(|(_, b)| b)
        .collect();
    assert_eq!(rows.len(), 2, "{got:?}");
    // The binary int4 ids are untouched: 1 and 2.
    assert_eq!(&rows[0][2..10], &[0, 0, 0, 4, 0, 0, 0, 1]);
    assert_eq!(&rows[1][2..10], &[0, 0, 0, 4, 0, 0, 0, 2]);
    conn.simple_query("COMMIT").unwrap();

    // Result formats chosen per column: text, binary text[], binary
    // record, text; a statement described first, as libpq's
    // PQprepare/PQdescribePrepared/PQexecPrepared do.
    let got = exchange(
        &mut conn,
        &[
            wire::parse(
                "mixed",
                "SELECT email, array[email, card], row(ssn, phone), notes FROM people ORDER BY id",
            ),
            wire::describe(b'S', "mixed"),
            wire::sync(),
        ],
    );
    assert!(got.iter().all(|(k, _)| *k != b'E'), "{got:?}");
    let got = exchange(
        &mut conn,
        &[
            wire::bind_formats("", "mixed", &[0, 1, 1, 0]),
            wire::execute("", 0),
            wire::sync(),
        ],
    );
    assert_no_originals_in_messages(&gw, "per-column result formats", &got);
    let got = exchange(
        &mut conn,
        &[
            wire::describe(b'S', "mixed"),
            wire::bind_formats("", "mixed", &[0, 1, 1, 0]),
            wire::execute("", 0),
            wire::sync(),
        ],
    );
    assert_no_originals_in_messages(&gw, "per-column result formats, described", &got);
    conn.terminate();
    gw.assert_serves();
}

/// psql as the attacker: COPY TO STDOUT in text, CSV and binary of values
/// in many shapes (bytea, arrays, records, citext, hstore), values inside
/// text made from bytea, EXPLAIN, SHOW and a value as large as a message
/// may be. Content detection only (no column rules), so COPY data is
/// scanned rather than masked whole.
#[test]
fn psql_attacker_copy_and_encodings_get_no_sensitive_value_out() {
    prepare_leak_objects();
    let gw = start("{}", false);
    let agent = gw.agent("app");
    let shapes = "SELECT id, convert_to(email, 'UTF8'), array[email, card], row(email, ssn), \
                  email::citext, hstore('phone', phone), secret::bytea FROM people ORDER BY id";
    for format in ["text", "csv", "binary"] {
        let out = agent
            .command("psql")
            .args([
                "-X",
                "-q",
                "-c",
                &format!("\\copy ({shapes}) TO STDOUT WITH (FORMAT {format})"),
            ])
            .output_within(Duration::from_secs(60))
            .unwrap();
        let copied = String::from_utf8_lossy(&out.stdout);
        gw.check(
            out.status.success(),
            &format!("{}", String::from_utf8_lossy(&out.stderr)),
        );
        assert_no_originals(&gw, &format!("\\copy {format}"), &copied);
        gw.check(
            copied.contains("****.***@*******.***"),
            &format!("\\copy {format}: nothing masked?\n{copied}"),
        );
        if format != "binary" {
            // The bytea's hex still decodes: to the masked e-mail.
            let masked: String = "****.***@*******.***"
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect();
            gw.check(
                copied.contains(&format!("\\x{masked}")),
                &format!("\\copy {format}: bytea not masked as hex:\n{copied}"),
            );
        }
    }
    // bytea's text form inside other values: records, arrays, JSON.
    for (what, sql) in [
        (
            "bytea in a record",
            "SELECT row(convert_to(email, 'UTF8'), convert_to(card, 'UTF8')) FROM people WHERE id = 1",
        ),
        (
            "bytea in an array",
            "SELECT array[convert_to(email, 'UTF8'), secret::bytea] FROM people WHERE id = 1",
        ),
        (
            "bytea in JSON",
            "SELECT to_json(convert_to(notes, 'UTF8')) FROM people WHERE id = 1",
        ),
        (
            "EXPLAIN",
            "EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM people WHERE email = (SELECT 'jane.doe@example.com')",
        ),
        (
            "SHOW",
            "SET application_name = 'jane.doe@example.com'; SHOW application_name",
        ),
    ] {
        let out = agent
            .psql(sql)
            .unwrap_or_else(|e| panic!("{what}: {e}\n{}", gw.log_tail()));
        assert_no_originals(&gw, what, &out);
    }
    gw.assert_serves();
}

/// Column rules follow the column's origin (table and attribute number in
/// RowDescription), not the name the query gives it: an alias must not
/// take a column out of its rule.
#[test]
fn column_rules_follow_the_column_through_an_alias() {
    prepare_people();
    let gw = start("{}", true);
    let agent = gw.agent("app");
    let rows = agent
        .psql("SELECT name AS n, amount AS a, p.name AS \"Name\" FROM people p WHERE id = 1")
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    assert_eq!(rows.trim(), "**** ***||**** ***", "{}", gw.log_tail());
    // A sub-select's column keeps its origin too.
    let names = agent
        .psql("SELECT n FROM (SELECT name AS n FROM people) s ORDER BY 1")
        .unwrap();
    for name in NAMES {
        gw.check(
            !names.contains(name),
            &format!("a sub-select's alias let {name:?} through:\n{names}"),
        );
    }
    // A raw client executes a statement it never described: its rows come
    // without a RowDescription, so the rule cannot find its column, and
    // the rows are masked whole rather than let through.
    let mut conn = gw
        .login_agent("app")
        .unwrap_or_else(|e| panic!("{e:?}\n{}", gw.log_tail()));
    let got = exchange(
        &mut conn,
        &[
            wire::parse("names", "SELECT name FROM people ORDER BY id"),
            wire::bind("", "names", false),
            wire::execute("", 0),
            wire::sync(),
        ],
    );
    let rows: Vec<String> = got
        .iter()
        .filter(|(kind, _)| *kind == b'D')
        .map(|(_, body)| String::from_utf8_lossy(body).into_owned())
        .collect();
    gw.check(
        rows.len() == NAMES.len(),
        &format!("expected a row per name, got {got:?}"),
    );
    for name in NAMES {
        gw.check(
            rows.iter().all(|row| !row.contains(name)),
            &format!("an undescribed statement's rows let {name:?} through: {rows:?}"),
        );
    }
    gw.assert_serves();
}

/// The attacker again, with length-changing redaction for e-mails, cards
/// and SSNs and a ledger: nothing leaks to the agent, and the ledger holds
/// the masked bytes that were delivered and a summary without values.
#[test]
fn ledger_of_the_attacker_session_holds_only_masked_values() {
    prepare_leak_objects();
    let (ledger, key) = new_ledger("leak-hunt-ledger");
    let (config, port) = masking_config(
        "{ email = \"redact\", card = \"redact\", ssn = \"redact\" }",
        false,
        Some((&ledger, &key)),
    );
    let mut gw = Gateway::start_with_config(config, port);
    let outcomes = run_leak_hunt_client(&gw, "agent", BY_DESIGN);
    let found = leaks(&outcomes);
    assert!(found.is_empty(), "leaks:\n{}", found.join("\n"));
    let got = |attempt: &str| outcomes[attempt].as_str().unwrap_or_default().to_owned();
    // Redaction re-frames top-level text values; inside binary structures
    // (where lengths are part of the structure) the same-length form is
    // used.
    assert_eq!(
        got("text text_array"),
        "columns [array_agg] rows [[[[EMAIL], [EMAIL]]]]"
    );
    assert_eq!(
        got("binary text_array"),
        "columns [array_agg] rows [[[****.***@*******.***, *.*****+**@****.*******.***]]]"
    );
    assert_eq!(
        got("binary citext"),
        "columns [email, card] rows [[[EMAIL], [CARD]]]"
    );
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(Duration::from_secs(20)).is_some());

    let (delivered, summaries) = delivered_and_summaries(&ledger);
    assert!(delivered.contains("[EMAIL]"), "{delivered}");
    assert_no_originals(&gw, "ledger server messages", &delivered);
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert_no_originals(&gw, "ledger summary", &summaries[0].1);
}

/// Binary COPY keeps its framing: a field's length word whose last byte
/// is a letter (a 100-byte field: 0x64, `d`) sits right before an e-mail
/// and must not be taken into the match and masked.
#[test]
fn binary_copy_fields_keep_their_lengths() {
    prepare_people();
    let gw = start("{}", false);
    let out = gw
        .agent("app")
        .command("psql")
        .args([
            "-X",
            "-q",
            "-c",
            "\\copy (SELECT rpad(email, 100), array[rpad(card, 100)] FROM people WHERE id = 1) TO STDOUT WITH (FORMAT binary)",
        ])
        .output_within(Duration::from_secs(60))
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = out.stdout;
    assert!(data.starts_with(b"PGCOPY\n\xff\r\n\0"), "{data:?}");
    // Header: signature (11), flags (4), extension length (4, zero).
    let mut pos = 19;
    let word = |at: usize| i32::from_be_bytes(data[at..at + 4].try_into().unwrap());
    assert_eq!(
        i16::from_be_bytes([data[pos], data[pos + 1]]),
        2,
        "{data:?}"
    );
    pos += 2;
    assert_eq!(word(pos), 100, "the text field's length changed: {data:?}");
    let field = &data[pos + 4..pos + 104];
    assert!(
        field.starts_with(b"****.***@*******.*** "),
        "{:?}",
        String::from_utf8_lossy(field)
    );
    pos += 104;
    // The array field: its element's length word is 100 as well.
    let array_len = usize::try_from(word(pos)).unwrap();
    let array = &data[pos + 4..pos + 4 + array_len];
    assert_eq!(
        i32::from_be_bytes(array[20..24].try_into().unwrap()),
        100,
        "{array:?}"
    );
    assert!(
        array[24..].starts_with(b"**** **** **** 1111 "),
        "{:?}",
        String::from_utf8_lossy(array)
    );
    pos += 4 + array_len;
    // The trailer.
    assert_eq!(&data[pos..], &[0xff, 0xff]);
    gw.assert_serves();
}

/// Values near and beyond limits.server_message_bytes_max: a row larger
/// than the limit and a redaction that would grow a message past it are
/// refused with an error the agent can read, never forwarded unmasked.
#[test]
fn messages_near_the_size_limit_are_refused_not_leaked() {
    prepare_people();
    let (config, port) = masking_config(
        "{ email = \"redact\" }\nlabels = { email = \"[REDACTED-ELECTRONIC-MAIL-ADDR]\" }",
        false,
        None,
    );
    let text = std::fs::read_to_string(&config).unwrap();
    let limited = text.replacen(
        "[limits]\n",
        "[limits]\nserver_message_bytes_max = 1048576\n",
        1,
    );
    assert_ne!(text, limited, "no [limits] section to extend");
    std::fs::write(&config, limited).unwrap();
    let gw = Gateway::start_with_config(config, port);
    let agent = gw.agent("app");
    let run = |sql: &str| {
        let out = agent
            .command("psql")
            .args(["-X", "-A", "-t", "-v", "VERBOSITY=verbose", "-c", sql])
            .output_within(Duration::from_secs(60))
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Just under the limit: masked and delivered.
    let (ok, rows, err) = run("SELECT repeat('a ', 500000) || email FROM people WHERE id = 1");
    assert!(ok, "{err}\n{}", gw.log_tail());
    assert_no_originals(&gw, "a value near the limit", &rows);
    assert!(rows
        .trim_end()
        .ends_with("a [REDACTED-ELECTRONIC-MAIL-ADDR]"));
    // Over the limit: refused.
    let (ok, rows, err) = run("SELECT repeat('a ', 600000) || email FROM people WHERE id = 1");
    assert!(!ok, "a 1.2 MB row passed a 1 MiB limit");
    assert_no_originals(&gw, "a row over the limit", &format!("{rows}{err}"));
    // More findings in one value than masking::FINDINGS_MAX: masked whole.
    let (ok, rows, err) =
        run("SELECT string_agg('x' || g || '@example.io', ' ') FROM generate_series(1, 45000) g");
    assert!(ok, "{err}");
    assert!(
        !rows.contains("example") && rows.contains("***@*******.**"),
        "{}",
        &rows[..200.min(rows.len())]
    );
    // A redaction that grows a message beyond the limit (988,000 bytes
    // with 4,000 six-byte e-mails, 1,088,000 redacted): 54000.
    let (ok, rows, err) = run(
        "SELECT repeat('a ', 480000) || string_agg('a@b.io', ' ') FROM generate_series(1, 4000)",
    );
    assert!(
        !ok,
        "a redaction grew a message past the limit: {} bytes",
        rows.len()
    );
    assert!(
        err.contains("54000") && err.contains("limits.server_message_bytes_max"),
        "{err}"
    );
    assert!(!rows.contains("a@b.io"), "{rows}");
    gw.assert_serves();
}

/// Errors about a row of a table that column rules cover echo the row
/// ("Failing row contains (...)", "Key (...)=(...)") in DETAIL, where no
/// RowDescription says which value is which column: the DETAIL is masked
/// whole (fail closed), as COPY data is.
#[test]
fn error_details_about_a_ruled_table_do_not_echo_ruled_columns() {
    prepare_people();
    let gw = start("{}", true);
    let agent = gw.agent("app");
    let err = agent
        .psql("UPDATE people SET id = NULL WHERE id = 1")
        .expect_err("the NOT NULL violation must fail");
    for name in NAMES {
        gw.check(
            !err.contains(name),
            &format!("the error's DETAIL echoed {name:?}:\n{err}"),
        );
    }
    assert_no_originals(&gw, "not-null violation", &err);
    gw.check(
        err.contains("violates not-null constraint")
            && err.contains("DETAIL:  ******* *** ******** (****, **** ***, "),
        &format!("unexpected error:\n{err}"),
    );
    // A key violation on the ruled table whose key has no ruled column
    // keeps its DETAIL (content detection still applies to it).
    let err = agent
        .psql("INSERT INTO people (id, name) VALUES (1, 'x')")
        .expect_err("the duplicate must fail");
    gw.check(
        err.contains("Key (id)=(1) already exists"),
        &format!("unexpected error:\n{err}"),
    );
    // An error about another table keeps its DETAIL (content detection
    // still applies to it).
    let err = agent
        .psql(
            "CREATE TEMP TABLE other (id int PRIMARY KEY, name text); \
             INSERT INTO other VALUES (1, 'Jane Doe'); INSERT INTO other VALUES (1, 'x')",
        )
        .expect_err("the duplicate must fail");
    gw.check(
        err.contains("Key (id)=(1) already exists"),
        &format!("unexpected error:\n{err}"),
    );
    gw.assert_serves();
}
