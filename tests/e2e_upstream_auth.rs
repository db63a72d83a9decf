//! End-to-end: sluice authenticates upstream with every method PostgreSQL
//! offers for passwords (SCRAM-SHA-256, md5, cleartext) and with trust, with
//! the credential read from a file or from the environment. psql connects
//! through the gateway with its agent token only.

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::*;
use sluice::devenv::postgres::{Cluster, ClusterOptions};

/// One upstream role per method, each allowed only by its pg_hba line.
const ROLES: &[(&str, &str)] = &[
    ("up_scram", "scram-sha-256"),
    ("up_md5", "md5"),
    ("up_clear", "password"),
    ("up_trust", "trust"),
];

#[test]
fn every_upstream_authentication_method() {
    let env = env();
    let dir = env.dir.join("upstream-auth");
    std::fs::create_dir_all(&dir).unwrap();
    let pg_port = free_port();
    let hba_extra = ROLES
        .iter()
        .map(|(role, method)| format!("host all {role} 127.0.0.1/32 {method}"))
        .collect();
    let cluster = Cluster::start(
        &dir,
        pg_port,
        ClusterOptions {
            hba_extra,
            ..ClusterOptions::default()
        },
    )
    .expect("start PostgreSQL");
    let password = sluice::devenv::random_alphanumeric(20);
    // md5 roles must store an md5 hash, so the encryption setting changes
    // per role.
    cluster
        .psql_admin(&format!(
            "SET password_encryption = 'scram-sha-256';\n\
             CREATE ROLE up_scram LOGIN PASSWORD '{password}';\n\
             CREATE ROLE up_clear LOGIN PASSWORD '{password}';\n\
             SET password_encryption = 'md5';\n\
             CREATE ROLE up_md5 LOGIN PASSWORD '{password}';\n\
             CREATE ROLE up_trust LOGIN;\n\
             CREATE DATABASE authdb;\n"
        ))
        .expect("create roles");
    let password_file = dir.join("password");
    sluice::devenv::write_secret_file(&password_file, password.as_bytes()).unwrap();
    // Checks the precondition the md5 case depends on.
    let stored = cluster
        .psql_admin("SELECT rolpassword FROM pg_authid WHERE rolname = 'up_md5'")
        .unwrap();
    assert!(stored.trim().starts_with("md5"), "{stored}");

    let port = free_port();
    let mut config = String::new();
    let _ = writeln!(
        config,
        "[server]\nlisten = \"127.0.0.1:{port}\"\nworkers = 1\npin_workers = false\n\n\
         [tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\n\
         [limits]\nauth_failure_delay_ms = 10\n\n\
         [[agents]]\nname = \"agent\"\ntoken_hash = \"{}\"\ntargets = [\"*\"]\n",
        env.certs.server_cert.display(),
        env.certs.server_key.display(),
        sluice::auth::token::hash_token(&env.token("agent"), 4096)
    );
    for (role, _) in ROLES {
        // One target by host name, so name resolution is exercised too.
        let host = if *role == "up_trust" {
            "localhost"
        } else {
            "127.0.0.1"
        };
        let credential = match *role {
            "up_trust" => String::new(),
            // The clear-text role takes its password from the environment,
            // the others from the file.
            "up_clear" => "password_env = \"SLUICE_TEST_UPSTREAM_PASSWORD\"\n".to_string(),
            _ => format!("password_file = \"{}\"\n", password_file.display()),
        };
        let _ = writeln!(
            config,
            "[[targets]]\nname = \"{role}\"\nhost = \"{host}\"\nport = {pg_port}\n\
             database = \"authdb\"\nuser = \"{role}\"\ntls = \"disable\"\n{credential}"
        );
    }
    let config_file = dir.join("sluice.toml");
    std::fs::write(&config_file, &config).unwrap();
    // password_env is read when the config loads, in the gateway process.
    std::env::set_var("SLUICE_TEST_UPSTREAM_PASSWORD", &password);
    let gw = Gateway::start_with_config(config_file, port);

    for (role, method) in ROLES {
        let out = gw
            .agent(role)
            .command("psql")
            .args(["-X", "-A", "-t", "-c", "SELECT current_user"])
            .output_within(Duration::from_secs(30))
            .unwrap();
        assert!(
            out.status.success(),
            "{method} upstream failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            gw.log_tail()
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), *role);
    }
    // The upstream password never reaches the gateway's log.
    let log = std::fs::read_to_string(&gw.log).unwrap();
    assert!(!log.contains(&password), "upstream password in the log");
}
