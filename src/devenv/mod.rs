//! Development and test environment: everything `sluice demo` and the
//! end-to-end tests need to stand up real components on one machine.
//!
//! * [`certs`] generates a throw-away CA, a server certificate and mTLS
//!   client certificates with rcgen.
//! * [`postgres`] runs Debian's PostgreSQL as a child process under the
//!   unprivileged `postgres` account (PostgreSQL refuses to run as root).
//! * [`seed`] produces the deterministic demo data set (no network access).
//!
//! None of this is on the data path; it exists so that a fresh machine can go
//! from nothing to a working gateway with one command.

pub mod certs;
pub mod postgres;
pub mod seed;

use std::io;
use std::path::Path;

/// Writes `contents` to `path` with permissions 0600, replacing any existing
/// file. The mode is set at creation time (not afterwards) so that a secret
/// is never readable by others, not even for an instant.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // Remove first: an existing file keeps its old mode on open.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)?;
    f.sync_all()?;
    // The process umask cannot widen the mode, but be explicit anyway.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// A random string of `len` characters from `[A-Za-z0-9]`, from the OS
/// random source. Used for upstream passwords in the demo and tests.
pub fn random_alphanumeric(len: usize) -> String {
    use rand::distributions::Alphanumeric;
    use rand::Rng;
    rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Runs `cmd` to completion with `stdin` as its standard input, capturing
/// stdout and stderr, and kills it if it is still running after `timeout`.
/// Every external command the dev environment runs goes through here so
/// that no wait is unbounded.
pub fn run_with_timeout(
    cmd: &mut std::process::Command,
    stdin: &[u8],
    timeout: std::time::Duration,
) -> io::Result<std::process::Output> {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Feed stdin and drain both pipes on their own threads: a child that
    // fills one pipe while we block on another would otherwise deadlock.
    let mut child_in = child.stdin.take();
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        if let Some(w) = child_in.as_mut() {
            let _ = w.write_all(&input);
        }
        drop(child_in);
    });
    let mut out_pipe = child.stdout.take();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(r) = out_pipe.as_mut() {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    });
    let mut err_pipe = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(r) = err_pipe.as_mut() {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let _ = writer.join();
            let stderr = err_reader.join().unwrap_or_default();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{:?} did not finish within {:?}; stderr: {}",
                    cmd.get_program(),
                    timeout,
                    String::from_utf8_lossy(&stderr)
                ),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let _ = writer.join();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(std::process::Output {
        status,
        stdout,
        stderr,
    })
}
