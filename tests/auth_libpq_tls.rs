//! libpq over TLS against our `ScramServer` with SCRAM-SHA-256-PLUS.
//!
//! libpq (version 14 and later) picks SCRAM-SHA-256-PLUS whenever the server
//! offers it over TLS, so this is the path most agents take. The test proves
//! that our `tls-server-end-point` handling interoperates with libpq's, that
//! a wrong certificate hash (a relaying man in the middle) is caught, and
//! that a client stripped of the PLUS offer is caught as a downgrade.
//!
//! Skipped, with a printed reason, only when `psql` is not installed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use sluice::auth::scram::{
    advertised_mechanisms, ChannelBinding, ScramError, ScramServer, SCRAM_SHA_256,
};
use sluice::auth::token::{generate_token, hash_token, ScramVerifier, DEFAULT_ITERATIONS};

const SSL_REQUEST_CODE: u32 = 80_877_103;

fn psql_path() -> Option<PathBuf> {
    let bin = PathBuf::from(
        std::env::var("SLUICE_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()),
    );
    Some(bin.join("psql")).filter(|p| p.is_file())
}

fn send(stream: &mut impl Write, tag: u8, body: &[u8]) {
    let mut msg = vec![tag];
    msg.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_be_bytes());
    msg.extend_from_slice(body);
    stream.write_all(&msg).expect("write");
    stream.flush().expect("flush");
}

fn recv(stream: &mut impl Read) -> (u8, Vec<u8>) {
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).expect("read header");
    let len = u32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
    assert!((4..1 << 20).contains(&len));
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body).expect("read body");
    (header[0], body)
}

fn accept_within(listener: &TcpListener, limit: Duration) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + limit;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "psql did not connect");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// How the fake server behaves for one connection.
struct Scenario {
    /// Mechanisms listed in AuthenticationSASL.
    advertise: &'static [&'static str],
    /// Channel binding data handed to ScramServer.
    binding: ChannelBinding,
}

/// Serves one TLS connection: SSLRequest, handshake, SCRAM via our server,
/// then either an ErrorResponse or AuthenticationOk and a one-row answer.
fn serve_one(
    listener: &TcpListener,
    tls: &Arc<rustls::ServerConfig>,
    verifier: &ScramVerifier,
    sc: &Scenario,
) -> Result<String, ScramError> {
    let mut tcp = accept_within(listener, Duration::from_secs(30));
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = [0u8; 8];
    tcp.read_exact(&mut req).unwrap();
    assert_eq!(
        req[4..],
        SSL_REQUEST_CODE.to_be_bytes(),
        "expected SSLRequest"
    );
    tcp.write_all(b"S").unwrap();
    let conn = rustls::ServerConnection::new(tls.clone()).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);

    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let mut startup = vec![0u8; u32::from_be_bytes(len) as usize - 4];
    stream.read_exact(&mut startup).unwrap();
    let params: Vec<&[u8]> = startup[4..].split(|&b| b == 0).collect();
    let user_at = params
        .iter()
        .position(|p| *p == b"user")
        .expect("user parameter");
    let user = String::from_utf8(params[user_at + 1].to_vec()).unwrap();

    let mut sasl = 10u32.to_be_bytes().to_vec();
    for m in sc.advertise {
        sasl.extend_from_slice(m.as_bytes());
        sasl.push(0);
    }
    sasl.push(0);
    send(&mut stream, b'R', &sasl);

    let mut chosen = String::new();
    let result: Result<(), ScramError> = (|| {
        let (tag, body) = recv(&mut stream);
        assert_eq!(tag, b'p');
        let nul = body.iter().position(|&b| b == 0).unwrap();
        chosen = String::from_utf8(body[..nul].to_vec()).unwrap();
        let mut server = ScramServer::new(verifier.clone(), &chosen, sc.binding.clone())?;
        let server_first = server.handle_client_first(&body[nul + 5..])?;
        send(
            &mut stream,
            b'R',
            &[&11u32.to_be_bytes()[..], &server_first].concat(),
        );
        let (tag, body) = recv(&mut stream);
        assert_eq!(tag, b'p');
        let server_final = server.handle_client_final(&body)?;
        send(
            &mut stream,
            b'R',
            &[&12u32.to_be_bytes()[..], &server_final].concat(),
        );
        Ok(())
    })();
    if let Err(e) = &result {
        let body = format!("SFATAL\0C{}\0Msluice: {e}\0\0", e.sqlstate());
        send(&mut stream, b'E', body.as_bytes());
        return Err(e.clone());
    }

    send(&mut stream, b'R', &0u32.to_be_bytes());
    for (k, v) in [
        ("server_version", "15.0"),
        ("client_encoding", "UTF8"),
        ("standard_conforming_strings", "on"),
    ] {
        send(&mut stream, b'S', format!("{k}\0{v}\0").as_bytes());
    }
    send(&mut stream, b'K', &[0, 0, 0, 1, 0, 0, 0, 2]);
    send(&mut stream, b'Z', b"I");
    let (tag, _) = recv(&mut stream);
    assert_eq!(tag, b'Q');
    let mut desc = 1u16.to_be_bytes().to_vec();
    desc.extend_from_slice(b"current_user\0");
    desc.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // table oid, column number
    desc.extend_from_slice(&25u32.to_be_bytes()); // text
    desc.extend_from_slice(&(-1i16).to_be_bytes());
    desc.extend_from_slice(&(-1i32).to_be_bytes());
    desc.extend_from_slice(&0u16.to_be_bytes());
    send(&mut stream, b'T', &desc);
    let mut row = 1u16.to_be_bytes().to_vec();
    row.extend_from_slice(&u32::try_from(user.len()).unwrap().to_be_bytes());
    row.extend_from_slice(user.as_bytes());
    send(&mut stream, b'D', &row);
    send(&mut stream, b'C', b"SELECT 1\0");
    send(&mut stream, b'Z', b"I");
    let _ = recv(&mut stream); // Terminate
    stream.conn.send_close_notify();
    let _ = stream.flush();
    Ok(chosen)
}

#[test]
fn libpq_scram_sha_256_plus_over_tls() {
    let Some(psql) = psql_path() else {
        eprintln!("SKIPPED libpq_scram_sha_256_plus_over_tls: psql not found");
        return;
    };
    // rcgen signs with ECDSA P-256/SHA-256, so RFC 5929 says the binding
    // hash is SHA-256 over the certificate's DER encoding.
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_der: CertificateDer<'static> = certified.cert.der().clone();
    let cert_hash = Sha256::digest(cert_der.as_ref()).to_vec();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let tls = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key)
        .unwrap(),
    );

    let token = generate_token();
    let verifier = hash_token(&token, DEFAULT_ITERATIONS);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    let good = ChannelBinding::TlsServerEndPoint(cert_hash.clone());
    let scenarios = [
        // Normal: PLUS offered and chosen, hashes agree.
        Scenario {
            advertise: advertised_mechanisms(&good),
            binding: good.clone(),
        },
        // Relay: the hash the server binds to is not the client's view.
        Scenario {
            advertise: advertised_mechanisms(&good),
            binding: ChannelBinding::TlsServerEndPoint(vec![0u8; 32]),
        },
        // Downgrade: PLUS removed from the offer although the server can bind.
        Scenario {
            advertise: &[SCRAM_SHA_256],
            binding: good.clone(),
        },
    ];
    let server = std::thread::spawn(move || {
        scenarios
            .iter()
            .map(|sc| serve_one(&listener, &tls, &verifier, sc))
            .collect::<Vec<_>>()
    });

    let run = |extra: &str| -> Output {
        let conninfo =
            format!("host=127.0.0.1 port={port} user=agent dbname=x sslmode=require {extra}");
        Command::new(&psql)
            .args(["-X", "-At", "-w", &conninfo, "-c", "select current_user"])
            .env("PGPASSWORD", &token)
            .env("PGPASSFILE", "/dev/null")
            .output()
            .expect("run psql")
    };
    let ok = run("channel_binding=require");
    let relay = run("channel_binding=require");
    let downgrade = run("channel_binding=prefer");
    let results = server.join().unwrap();

    assert!(
        ok.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "agent");
    assert_eq!(results[0].as_deref(), Ok("SCRAM-SHA-256-PLUS"));

    assert_eq!(results[1], Err(ScramError::ChannelBindingMismatch));
    assert!(!relay.status.success());

    assert_eq!(results[2], Err(ScramError::ClientRequiresChannelBinding));
    assert!(!downgrade.status.success());
}
