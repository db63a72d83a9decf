//! End-to-end: the operator surface of the `sluice` binary (help,
//! check-config, hash-token, gen-token), run as a user would run it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::pgwire::Negotiation;
use common::*;

fn sluice(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let out = Command::new(SLUICE)
        .args(args)
        .output_with_stdin_within(stdin, Duration::from_secs(30))
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A minimal valid config with freshly generated certificates.
fn valid_config(dir: &std::path::Path) -> String {
    let certs = sluice::devenv::certs::generate(&dir.join("tls"), &["localhost"], &[]).unwrap();
    let hash = sluice::auth::token::hash_token("slt_test", 4096);
    sluice::devenv::write_secret_file(&dir.join("pw"), b"secret").unwrap();
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\n\
         [[agents]]\nname = \"bot\"\ntoken_hash = \"{hash}\"\ntargets = [\"db\"]\n\n\
         [[targets]]\nname = \"db\"\nhost = \"127.0.0.1\"\nport = 5432\ndatabase = \"db\"\n\
         user = \"u\"\npassword_file = \"pw\"\ntls = \"disable\"\n",
        certs.server_cert.display(),
        certs.server_key.display()
    )
}

#[test]
fn help_lists_the_commands() {
    let (code, out, _) = sluice(&["--help"], b"");
    assert_eq!(code, 0);
    for cmd in ["serve", "check-config", "hash-token", "gen-token", "demo"] {
        assert!(out.contains(cmd), "--help does not mention {cmd}:\n{out}");
    }
}

#[test]
fn check_config_accepts_a_valid_file_and_names_the_key_of_an_invalid_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = valid_config(dir.path());
    let path = dir.path().join("good.toml");
    std::fs::write(&path, &good).unwrap();
    let (code, out, err) = sluice(&["check-config", path.to_str().unwrap()], b"");
    assert_eq!(code, 0, "valid config rejected: {out}{err}");
    let approver = sluice::auth::token::hash_token("slt_approver", 4096).to_string();
    // The approval service's sections are validated too.
    let with_admin = format!(
        "{good}\n[admin]\nlisten = \"127.0.0.1:0\"\n[approvals]\npending_max = 8\n[[approvers]]\nname = \"alice\"\ngroups = [\"dba\"]\ntoken_hash = \"{approver}\"\n"
    );
    std::fs::write(&path, &with_admin).unwrap();
    let (code, out, err) = sluice(&["check-config", path.to_str().unwrap()], b"");
    assert_eq!(code, 0, "valid admin config rejected: {out}{err}");
    assert!(
        out.contains("approvals on (admin 127.0.0.1:0, 1 approvers)"),
        "{out}"
    );

    // The example config shipped in deploy/ parses (its files do not exist
    // on this machine, so only the file-reading step may fail).
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/sluice.example.toml");
    let (code, _, err) = sluice(&["check-config", example], b"");
    assert!(code == 0 || err.contains("tls.cert_file"), "{err}");

    for (broken, key) in [
        (
            good.replace("[server]\n", "[server]\nlisen = \"x\"\n"),
            "server.lisen",
        ),
        (
            format!("{good}\n[limits]\nidle_timeout_ms = \"soon\"\n"),
            "limits.idle_timeout_ms",
        ),
        (
            good.replace("targets = [\"db\"]", "targets = [\"nope\"]"),
            "agents[0].targets",
        ),
        (
            good.replace("tls = \"disable\"", "tls = \"maybe\""),
            "targets[0].tls",
        ),
        (
            format!("{good}\n[[approvers]]\nname = \"a\"\ntoken_hash = \"{approver}\"\n"),
            "approvers",
        ),
        (
            format!("{good}\n[admin]\nlisten = \"nowhere\"\n"),
            "admin.listen",
        ),
        (
            format!("{good}\n[admin]\nlisten = \"127.0.0.1:0\"\nconnections_max = 0\n[[approvers]]\nname = \"a\"\ntoken_hash = \"{approver}\"\n"),
            "admin.connections_max",
        ),
        (
            format!("{good}\n[admin]\nlisten = \"127.0.0.1:0\"\n[[approvers]]\nname = \"a\"\ntoken_hash = \"not-a-hash\"\n"),
            "approvers[0].token_hash",
        ),
        (
            format!("{good}\n[admin]\nlisten = \"127.0.0.1:0\"\n[approvals.webhook]\nurl = \"ftp://x\"\n[[approvers]]\nname = \"a\"\ntoken_hash = \"{approver}\"\n"),
            "approvals.webhook.url",
        ),
        (
            format!("{good}\n[admin]\nlisten = \"127.0.0.1:0\"\n[[approvers]]\nname = \"a\"\ngroups = [\"ops\"]\ntoken_hash = \"{approver}\"\n[policy]\nunknown = \"approve\"\napprover_group = \"dba\"\n"),
            "approvers",
        ),
    ] {
        let p = dir.path().join("broken.toml");
        std::fs::write(&p, &broken).unwrap();
        let (code, out, err) = sluice(&["check-config", p.to_str().unwrap()], b"");
        assert_ne!(code, 0, "accepted a config with a bad {key}:\n{broken}");
        assert!(
            format!("{out}{err}").contains(key),
            "error does not name {key}: {out}{err}"
        );
    }
    let (code, _, _) = sluice(&["check-config", "/nonexistent/sluice.toml"], b"");
    assert_ne!(code, 0);
}

#[test]
fn gen_token_gives_distinct_tokens_with_matching_verifiers() {
    let (code, a, _) = sluice(&["gen-token"], b"");
    assert_eq!(code, 0);
    let (_, b, _) = sluice(&["gen-token"], b"");
    assert_ne!(a, b);
    assert!(a.contains("slt_"), "{a}");
    assert!(a.contains("SCRAM-SHA-256$4096:"), "{a}");
}

#[test]
fn hash_token_output_authenticates_through_the_gateway() {
    // The operator's path: generate a token, hash it with the CLI, put the
    // hash in the config, and connect with the token as the password.
    let env = env();
    let token = "slt_operator-chosen-token-123";
    let (code, verifier, err) = sluice(&["hash-token"], format!("{token}\n").as_bytes());
    assert_eq!(code, 0, "{err}");
    let verifier = verifier.trim();
    assert!(verifier.starts_with("SCRAM-SHA-256$4096:"), "{verifier}");
    assert!(!verifier.contains(token));

    let port = free_port();
    let dir = env.unique_dir("cli");
    let mut config = config_toml(env, &GatewayOpts::default(), port);
    config.push_str(&format!(
        "[[agents]]\nname = \"operator-bot\"\ntoken_hash = \"{verifier}\"\ntargets = [\"app\"]\n"
    ));
    // [[agents]] tables may come after [[targets]] in TOML.
    let path = dir.join("sluice.toml");
    std::fs::write(&path, config).unwrap();
    let (code, out, err) = sluice(&["check-config", path.to_str().unwrap()], b"");
    assert_eq!(code, 0, "{out}{err}");
    let gw = Gateway::start_with_config(path, port);
    let mut c = gw
        .login(Negotiation::SslRequest, "operator-bot", Some(token), "app")
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_tail()));
    assert_eq!(
        c.query_one("SELECT 'hashed'").unwrap().as_deref(),
        Some("hashed")
    );
    let e = gw
        .login(
            Negotiation::SslRequest,
            "operator-bot",
            Some("slt_other"),
            "app",
        )
        .err()
        .expect("wrong token accepted");
    assert_eq!(e.sqlstate(), Some("28P01"));
}
