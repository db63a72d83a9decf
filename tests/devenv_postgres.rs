//! The dev-environment PostgreSQL runner itself (src/devenv/postgres.rs),
//! against the real server binaries.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use sluice::devenv::postgres::{Cluster, ClusterOptions, SslFiles};

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("sluice-e2e")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn settings_restart_reuse_and_runtime_ssl() {
    let dir = scratch("devenv-pg");
    let port = free_port();
    let options = ClusterOptions {
        settings: vec![("log_statement".into(), "all".into())],
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(&dir, port, options.clone()).unwrap();
    assert_eq!(
        cluster.psql_admin("SHOW log_statement").unwrap().trim(),
        "all"
    );
    assert_eq!(cluster.psql_admin("SHOW fsync").unwrap().trim(), "off");
    assert_eq!(
        cluster
            .psql_admin("SHOW password_encryption")
            .unwrap()
            .trim(),
        "scram-sha-256"
    );
    cluster
        .psql_admin("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42);")
        .unwrap();
    // Data directory private to the server's account.
    let mode = std::fs::metadata(cluster.data_dir())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode & 0o077, 0, "data directory mode {mode:o}");

    // TLS can be switched on in the running cluster.
    let certs = sluice::devenv::certs::generate(&dir.join("tls"), &["localhost"], &[]).unwrap();
    cluster
        .enable_ssl(&SslFiles {
            cert: certs.server_cert.clone(),
            key: certs.server_key.clone(),
        })
        .unwrap();
    assert_eq!(cluster.psql_admin("SHOW ssl").unwrap().trim(), "on");

    cluster.stop().unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening after stop"
    );
    // Restart on the same directory reuses the data.
    let cluster = Cluster::start(&dir, port, options).unwrap();
    assert_eq!(
        cluster.psql_admin("SELECT x FROM kept").unwrap().trim(),
        "42"
    );
    drop(cluster);
    std::thread::sleep(Duration::from_millis(50));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn falls_back_to_tmp_when_the_postgres_account_cannot_traverse() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: only relevant when running as root (server runs as postgres)");
        return;
    }
    // A directory like /root: mode 0700, owned by root.
    let outer = scratch("devenv-private");
    std::fs::set_permissions(&outer, std::fs::Permissions::from_mode(0o700)).unwrap();
    let dir = outer.join("demo");
    let cluster = Cluster::start(&dir, free_port(), ClusterOptions::default()).unwrap();
    assert!(
        cluster
            .data_dir()
            .to_string_lossy()
            .starts_with("/tmp/sluice-pg-"),
        "{}",
        cluster.data_dir().display()
    );
    let location = std::fs::read_to_string(dir.join("pg.location")).unwrap();
    assert!(location.contains(&cluster.base_dir().display().to_string()));
    assert_eq!(cluster.psql_admin("SELECT 1").unwrap().trim(), "1");
    let base = cluster.base_dir().to_path_buf();
    drop(cluster);
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&outer);
}
