//! `bench-certs DIR`: a throw-away CA and a server certificate for
//! `localhost` and `127.0.0.1` (the appliance's own development PKI,
//! src/devenv/certs.rs), for the comparison harness (bench/compare).
//! Writes DIR/ca.crt, DIR/server.crt (chain) and DIR/server.key.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut arguments = std::env::args().skip(1);
    let (Some(dir), None) = (arguments.next(), arguments.next()) else {
        eprintln!("usage: bench-certs DIR");
        return ExitCode::from(2);
    };
    match sluice::devenv::certs::generate(
        std::path::Path::new(&dir),
        &["localhost", "127.0.0.1"],
        &[],
    ) {
        Ok(generated) => {
            println!("ca_cert={}", generated.ca_cert.display());
            println!("server_cert={}", generated.server_cert.display());
            println!("server_key={}", generated.server_key.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-certs: cannot generate certificates in {dir}: {e}");
            ExitCode::FAILURE
        }
    }
}
