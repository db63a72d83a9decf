//! The `sluice-ledger` command end to end: what is written is what `replay`
//! and `export` read back; bad input gets a clear message and a nonzero exit,
//! never a panic.

use std::path::Path;
use std::process::{Command, Output};

fn run(arguments: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice-ledger"))
        .args(arguments)
        .output()
        .expect("run sluice-ledger");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked"),
        "panic for {arguments:?}: {stderr}"
    );
    output
}

fn ok(arguments: &[&str]) -> String {
    let output = run(arguments);
    assert!(
        output.status.success(),
        "{arguments:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn fails(arguments: &[&str], code: i32, needle: &str) -> String {
    let output = run(arguments);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(code), "{arguments:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{arguments:?}: expected {needle:?} in {stderr}"
    );
    stderr
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn keygen_sample_verify_list_replay_export_prove() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("k");
    let ledger = dir.path().join("ledger");
    let out = ok(&["keygen", "--out", s(&prefix), "--name", "audit.example/log"]);
    assert!(out.contains("audit.example/log+"));
    let private = dir.path().join("k.key");
    let vkey = dir.path().join("k.vkey");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&private).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    fails(&["keygen", "--out", s(&prefix)], 1, "creating");

    ok(&[
        "sample",
        s(&ledger),
        "--signing-key",
        s(&private),
        "--sessions",
        "3",
    ]);
    let verified = ok(&["verify", s(&ledger), "--key", s(&vkey)]);
    assert!(verified.contains("records:     18"), "{verified}");
    assert!(verified.contains("sessions:    3"), "{verified}");
    assert!(verified.contains("time span:"), "{verified}");

    let sessions = ok(&["sessions", s(&ledger)]);
    let lines: Vec<&str> = sessions.lines().collect();
    assert_eq!(lines.len(), 4, "{sessions}");
    assert!(
        lines[1].contains("agent:sample-0") && lines[1].contains("postgres://127.0.0.1:5432/app")
    );
    let id = &lines[1][..32];
    // The last column counts the values masked in the session.
    assert!(lines[0].ends_with("masked"), "{sessions}");
    assert!(lines[1].ends_with(" 1"), "{sessions}");

    let replay = ok(&["replay", s(&ledger), "--session", id]);
    let kinds: Vec<&str> = replay
        .lines()
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "session_opened",
            "client_message",
            "policy_decision",
            "masking_summary",
            "server_message",
            "session_closed"
        ]
    );
    assert!(replay.contains("SELECT id, email FROM customers WHERE id = 0"));
    assert!(
        replay.contains("1 values masked (profile=default; email \"email\" 1)"),
        "{replay}"
    );
    let json = ok(&["replay", s(&ledger), "--session", id, "--json"]);
    assert_eq!(json.lines().count(), 6);
    assert!(json
        .lines()
        .all(|l| l.starts_with("{\"index\":") && l.ends_with('}')));

    let export = ok(&["export", s(&ledger), "--jsonl"]);
    assert_eq!(export.lines().count(), 18);

    let checkpoint = ok(&["checkpoint", s(&ledger)]);
    assert!(
        checkpoint.starts_with("audit.example/log\n18\n"),
        "{checkpoint}"
    );
    let old = dir.path().join("old.checkpoint");
    std::fs::write(&old, &checkpoint).unwrap();

    let leaf = dir.path().join("leaf.bin");
    let proof = ok(&["prove", s(&ledger), "--index", "7", "--leaf", s(&leaf)]);
    assert!(proof.starts_with("c2sp.org/tlog-proof@v1\nindex 7\n"));
    assert_eq!(std::fs::read(&leaf).unwrap().len(), 70);
    let proof_file = dir.path().join("proof.txt");
    std::fs::write(&proof_file, &proof).unwrap();
    ok(&[
        "check-proof",
        "--key",
        s(&vkey),
        "--proof",
        s(&proof_file),
        "--leaf",
        s(&leaf),
    ]);
    let mut wrong_leaf = std::fs::read(&leaf).unwrap();
    wrong_leaf[5] ^= 1;
    std::fs::write(&leaf, &wrong_leaf).unwrap();
    fails(
        &[
            "check-proof",
            "--key",
            s(&vkey),
            "--proof",
            s(&proof_file),
            "--leaf",
            s(&leaf),
        ],
        1,
        "proof",
    );

    // Grow the ledger; the old checkpoint stays consistent.
    ok(&[
        "sample",
        s(&ledger),
        "--signing-key",
        s(&private),
        "--sessions",
        "2",
    ]);
    let consistency = ok(&["consistency", s(&ledger), "--old", "18"]);
    let consistency_file = dir.path().join("consistency.txt");
    std::fs::write(&consistency_file, consistency).unwrap();
    ok(&[
        "check-consistency",
        "--key",
        s(&vkey),
        "--proof",
        s(&consistency_file),
        "--old-checkpoint",
        s(&old),
    ]);
    let verified = ok(&[
        "verify",
        s(&ledger),
        "--key",
        s(&vkey),
        "--trusted-checkpoint",
        s(&old),
    ]);
    assert!(verified.contains("consistent with the trusted checkpoint at size 18"));
}

#[test]
fn damaged_ledgers_and_bad_input_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("k");
    let ledger = dir.path().join("ledger");
    ok(&["keygen", "--out", s(&prefix)]);
    let private = dir.path().join("k.key");
    let vkey = dir.path().join("k.vkey");
    ok(&[
        "sample",
        s(&ledger),
        "--signing-key",
        s(&private),
        "--sessions",
        "2",
    ]);
    let new_checkpoint = dir.path().join("new.checkpoint");
    let snapshot = dir.path().join("snapshot");
    std::fs::create_dir(&snapshot).unwrap();
    for entry in std::fs::read_dir(&ledger).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), snapshot.join(entry.file_name())).unwrap();
        }
    }
    ok(&[
        "sample",
        s(&ledger),
        "--signing-key",
        s(&private),
        "--sessions",
        "1",
    ]);
    std::fs::write(&new_checkpoint, ok(&["checkpoint", s(&ledger)])).unwrap();

    // Usage errors: exit 2.
    assert_eq!(run(&[]).status.code(), Some(2));
    fails(&["frobnicate"], 2, "unknown command");
    fails(&["verify", s(&ledger)], 2, "--key is required");
    fails(
        &["verify", s(&ledger), "--key", s(&vkey), "--bogus", "1"],
        2,
        "unknown option --bogus",
    );
    fails(
        &["prove", s(&ledger), "--index", "abc"],
        2,
        "non-negative integer",
    );
    fails(
        &["replay", s(&ledger), "--session", "xyz"],
        2,
        "32 hexadecimal digits",
    );
    fails(&["export", s(&ledger)], 2, "--jsonl");
    // Failures: exit 1 with a sentence.
    fails(
        &["verify", s(&dir.path().join("missing")), "--key", s(&vkey)],
        1,
        "not a directory",
    );
    fails(
        &["verify", s(&ledger), "--key", s(&private)],
        1,
        "verifier key",
    );
    fails(
        &[
            "replay",
            s(&ledger),
            "--session",
            "00112233445566778899aabbccddeeff",
        ],
        1,
        "not found",
    );
    fails(&["prove", s(&ledger), "--index", "100000"], 1, "not found");
    fails(
        &["consistency", s(&ledger), "--old", "100000"],
        1,
        "above the latest checkpoint",
    );
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, b"\xff\xfe not a proof").unwrap();
    fails(
        &[
            "check-proof",
            "--key",
            s(&vkey),
            "--proof",
            s(&garbage),
            "--leaf",
            s(&garbage),
        ],
        1,
        "malformed",
    );

    // Rollback: the snapshot alone verifies, not against the newer checkpoint.
    ok(&["verify", s(&snapshot), "--key", s(&vkey)]);
    fails(
        &[
            "verify",
            s(&snapshot),
            "--key",
            s(&vkey),
            "--trusted-checkpoint",
            s(&new_checkpoint),
        ],
        1,
        "rollback",
    );

    // Wrong key.
    let other = dir.path().join("other");
    ok(&["keygen", "--out", s(&other)]);
    fails(
        &[
            "verify",
            s(&ledger),
            "--key",
            s(&dir.path().join("other.vkey")),
        ],
        1,
        "LEDGER DAMAGED",
    );

    // A flipped bit: named segment and offset.
    let segment = ledger.join("segment-00000000000000000001.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[600] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();
    let stderr = fails(
        &["verify", s(&ledger), "--key", s(&vkey)],
        1,
        "first bad segment segment-00000000000000000001.log, offset",
    );
    assert!(stderr.contains("LEDGER DAMAGED"));
    fails(
        &["sessions", s(&ledger)],
        1,
        "segment-00000000000000000001.log",
    );
    fails(
        &["export", s(&ledger), "--jsonl"],
        1,
        "segment-00000000000000000001.log",
    );

    // A private key readable by others is refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
        fails(
            &[
                "sample",
                s(&dir.path().join("l2")),
                "--signing-key",
                s(&private),
            ],
            1,
            "chmod 600",
        );
    }
}
