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

fn run_python_client(gw: &Gateway, agent: &str) -> serde_json::Value {
    let python = venv_python();
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python_masking/masking_client.py"
    );
    let out = Command::new(&python)
        .arg(script)
        .env("SLUICE_GW_PORT", gw.port.to_string())
        .env("SLUICE_AGENT", agent)
        .env("SLUICE_TOKEN", env().token(agent))
        .env("SLUICE_CA", &env().certs.ca_cert)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PGSSLMODE")
        .env_remove("PGHOST")
        .output_within(Duration::from_secs(60))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "psycopg client failed:\n{stdout}\n{}\n--- sluice ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.log_tail()
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
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
    let dir = env().dir.join("mask-ledger");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("ledger.key");
    let vkey = dir.join("ledger.vkey");
    let signer = sluice_ledger::SignerKey::generate("sluice.e2e").unwrap();
    sluice_ledger::keys::write_key_pair(&signer, &key, &vkey).unwrap();
    let ledger = dir.join("ledger");
    let (config, port) = masking_config("{}", true, Some((&ledger, &key)));
    let mut gw = Gateway::start_with_config(config, port);
    gw.agent("app")
        .psql("SELECT name, email, card, notes FROM people ORDER BY id")
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(Duration::from_secs(20)).is_some());

    let storage = sluice_ledger::FsStorage::new(ledger.clone());
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
    let delivered = String::from_utf8_lossy(&delivered);
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
