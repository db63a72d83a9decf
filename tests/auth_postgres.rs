//! Cross-checks sluice's authentication code against a real PostgreSQL 15.
//!
//! It proves interoperability in both directions, which the RFC vectors alone
//! cannot: verifiers PostgreSQL stores are understood by our `FromStr` and
//! `ScramServer`; verifiers from our `hash_token` are accepted by PostgreSQL
//! and let `psql` (libpq) log in with the token; and our `ScramClient` and
//! `md5_password` authenticate to PostgreSQL the way the upstream side of the
//! gateway will, including verification of PostgreSQL's server signature.
//!
//! The test starts a throw-away cluster under /tmp. It is skipped, with a
//! printed reason, only when the PostgreSQL binaries are not installed. Set
//! `SLUICE_PG_BIN` to use binaries other than /usr/lib/postgresql/15/bin.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use sluice::auth::md5::md5_password;
use sluice::auth::scram::{
    select_mechanism, ChannelBinding, ScramClient, ScramError, ScramServer, SCRAM_SHA_256,
};
use sluice::auth::token::{generate_token, hash_token, ScramVerifier, DEFAULT_ITERATIONS};

const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A running throw-away PostgreSQL cluster, stopped when dropped.
struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// PostgreSQL refuses to run as root, so when the tests run as root every
    /// server-side command goes through `runuser -u postgres`.
    as_postgres_user: bool,
}

impl Postgres {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn server_cmd(bin: &Path, as_postgres_user: bool, tool: &str) -> Command {
        if as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
            c
        } else {
            Command::new(bin.join(tool))
        }
    }

    fn start(bin: PathBuf) -> Postgres {
        let as_postgres_user = run(Command::new("id").arg("-u")).trim() == "0";
        let dir = tempfile::Builder::new()
            .prefix("sluice-auth-pg-")
            .tempdir_in("/tmp")
            .expect("create temp dir");
        if as_postgres_user {
            run(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let data = dir.path().join("data");
        run(Self::server_cmd(&bin, as_postgres_user, "initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "--locale=C",
                "-E",
                "UTF8",
            ]));

        // Local admin access stays trust; TCP logins get the methods under test.
        let hba = data.join("pg_hba.conf");
        std::fs::write(
            &hba,
            "local all all trust\n\
             host all md5user 127.0.0.1/32 md5\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("write pg_hba.conf");
        if as_postgres_user {
            run(Command::new("chown").arg("postgres:").arg(&hba));
        }

        // A port picked by the kernel can be taken by someone else before the
        // postmaster binds it, so retry a few times.
        for attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("pick a free port")
                .port();
            let opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1",
                dir.path().display()
            );
            let out = Self::server_cmd(&bin, as_postgres_user, "pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.path().join("log"))
                .args(["-o", &opts, "-w", "start"])
                .output()
                .expect("run pg_ctl");
            if out.status.success() {
                return Postgres {
                    bin,
                    dir,
                    port,
                    as_postgres_user,
                };
            }
            eprintln!(
                "pg_ctl start attempt {attempt} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
        panic!("PostgreSQL did not start; server log:\n{log}");
    }

    /// Runs SQL as the superuser over the Unix socket and returns the output
    /// of the last statement, unaligned and without headers. Quiet mode drops
    /// command tags such as "SET"; psql 15 prints every statement's result,
    /// so only the last line is kept.
    fn sql(&self, sql: &str) -> String {
        let out = run(Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-Atq",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .arg("-h")
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-c", sql]));
        out.trim_end().lines().last().unwrap_or("").to_owned()
    }

    /// Logs in with `psql` (libpq) over TCP and returns its output.
    fn psql_login(&self, user: &str, password: &str) -> Output {
        let conninfo = format!(
            "host=127.0.0.1 port={} user={user} dbname=postgres sslmode=disable",
            self.port
        );
        Command::new(self.bin.join("psql"))
            .args(["-X", "-At", "-w", &conninfo, "-c", "select current_user"])
            .env("PGPASSWORD", password)
            .env("PGPASSFILE", "/dev/null")
            .env_remove("PGSERVICE")
            .env_remove("PGSERVICEFILE")
            .output()
            .expect("run psql")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Self::server_cmd(&self.bin, self.as_postgres_user, "pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// How a wire-level login attempt ended, when it did not succeed. The
/// payloads are only read through `Debug` in assertion messages.
#[derive(Debug)]
#[allow(dead_code)]
enum LoginError {
    /// Our SCRAM client rejected the exchange.
    Scram(ScramError),
    /// PostgreSQL sent an ErrorResponse with this SQLSTATE.
    Server {
        sqlstate: String,
        message: String,
    },
    Protocol(String),
}

fn send(stream: &mut TcpStream, tag: u8, body: &[u8]) {
    let mut msg = vec![tag];
    msg.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_be_bytes());
    msg.extend_from_slice(body);
    stream.write_all(&msg).expect("write to PostgreSQL");
}

fn recv(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).expect("read message header");
    let len = u32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
    assert!(
        (4..1 << 20).contains(&len),
        "implausible message length {len}"
    );
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body).expect("read message body");
    (header[0], body)
}

/// A minimal PostgreSQL frontend that only authenticates, the way sluice's
/// upstream side will: SCRAM via `ScramClient`, md5 via `md5_password`.
fn wire_login(port: u16, user: &str, password: &str) -> Result<(), LoginError> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to PostgreSQL");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();

    let mut startup = 196_608u32.to_be_bytes().to_vec();
    for (k, v) in [("user", user), ("database", "postgres")] {
        startup.extend_from_slice(k.as_bytes());
        startup.push(0);
        startup.extend_from_slice(v.as_bytes());
        startup.push(0);
    }
    startup.push(0);
    let mut msg = u32::try_from(startup.len() + 4)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    msg.extend_from_slice(&startup);
    stream.write_all(&msg).unwrap();

    let mut scram: Option<ScramClient> = None;
    loop {
        let (tag, body) = recv(&mut stream);
        match tag {
            b'R' => {
                let code = u32::from_be_bytes(body[..4].try_into().unwrap());
                let data = &body[4..];
                match code {
                    0 => {
                        // AuthenticationOk must not arrive before we have
                        // verified the server's signature.
                        if scram.as_ref().is_some_and(|c| !c.is_authenticated()) {
                            return Err(LoginError::Protocol(
                                "AuthenticationOk before SCRAM completed".into(),
                            ));
                        }
                        send(&mut stream, b'X', &[]);
                        return Ok(());
                    }
                    5 => {
                        let salt: [u8; 4] = data.try_into().unwrap();
                        let mut resp = md5_password(user, password.as_bytes(), salt).into_bytes();
                        resp.push(0);
                        send(&mut stream, b'p', &resp);
                    }
                    10 => {
                        let offered = data
                            .split(|&b| b == 0)
                            .filter(|m| !m.is_empty())
                            .map(|m| std::str::from_utf8(m).unwrap());
                        let mech =
                            select_mechanism(offered, &ChannelBinding::None).ok_or_else(|| {
                                LoginError::Protocol("no usable SASL mechanism".into())
                            })?;
                        let mut client = ScramClient::new(password, mech, ChannelBinding::None)
                            .map_err(LoginError::Scram)?;
                        let first = client.client_first();
                        let mut resp = mech.as_bytes().to_vec();
                        resp.push(0);
                        resp.extend_from_slice(&u32::try_from(first.len()).unwrap().to_be_bytes());
                        resp.extend_from_slice(&first);
                        send(&mut stream, b'p', &resp);
                        scram = Some(client);
                    }
                    11 => {
                        let client = scram
                            .as_mut()
                            .ok_or(LoginError::Protocol("SASLContinue without SASL".into()))?;
                        let fin = client
                            .handle_server_first(data)
                            .map_err(LoginError::Scram)?;
                        send(&mut stream, b'p', &fin);
                    }
                    12 => {
                        let client = scram
                            .as_mut()
                            .ok_or(LoginError::Protocol("SASLFinal without SASL".into()))?;
                        client
                            .handle_server_final(data)
                            .map_err(LoginError::Scram)?;
                    }
                    other => {
                        return Err(LoginError::Protocol(format!(
                            "unexpected auth request {other}"
                        )))
                    }
                }
            }
            b'E' => {
                let (mut sqlstate, mut message) = (String::new(), String::new());
                for field in body.split(|&b| b == 0).filter(|f| !f.is_empty()) {
                    let text = String::from_utf8_lossy(&field[1..]).into_owned();
                    match field[0] {
                        b'C' => sqlstate = text,
                        b'M' => message = text,
                        _ => {}
                    }
                }
                return Err(LoginError::Server { sqlstate, message });
            }
            b'N' => {} // NoticeResponse: irrelevant here.
            other => {
                return Err(LoginError::Protocol(format!(
                    "unexpected message {:?}",
                    other as char
                )))
            }
        }
    }
}

fn pg_bin() -> Option<PathBuf> {
    let bin =
        PathBuf::from(std::env::var("SLUICE_PG_BIN").unwrap_or_else(|_| DEFAULT_PG_BIN.to_owned()));
    ["initdb", "pg_ctl", "psql", "postgres"]
        .iter()
        .all(|tool| bin.join(tool).is_file())
        .then_some(bin)
}

fn our_exchange(verifier: &ScramVerifier, password: &str) -> Result<(), ScramError> {
    let mut server = ScramServer::new(verifier.clone(), SCRAM_SHA_256, ChannelBinding::None)?;
    let mut client = ScramClient::new(password, SCRAM_SHA_256, ChannelBinding::None)?;
    let sf = server.handle_client_first(&client.client_first())?;
    let cf = client.handle_server_first(&sf)?;
    let fin = server.handle_client_final(&cf)?;
    client.handle_server_final(&fin)
}

#[test]
fn postgres_cross_check() {
    let Some(bin) = pg_bin() else {
        eprintln!(
            "SKIPPED postgres_cross_check: PostgreSQL binaries not found in {} (set SLUICE_PG_BIN)",
            std::env::var("SLUICE_PG_BIN").unwrap_or_else(|_| DEFAULT_PG_BIN.to_owned())
        );
        return;
    };
    let pg = Postgres::start(bin);

    // (a) A verifier PostgreSQL computed parses, prints back byte for byte,
    // and drives our ScramServer: right password in, wrong password out.
    let stored = pg.sql(
        "SET password_encryption = 'scram-sha-256'; \
         CREATE ROLE pgmade LOGIN PASSWORD 'tok'; \
         SELECT rolpassword FROM pg_authid WHERE rolname = 'pgmade'",
    );
    let verifier: ScramVerifier = stored.parse().expect("PostgreSQL's verifier parses");
    assert_eq!(verifier.to_string(), stored);
    assert_eq!(verifier.iterations, 4096);
    our_exchange(&verifier, "tok").expect("ScramServer accepts the right password");
    assert_eq!(
        our_exchange(&verifier, "tok2"),
        Err(ScramError::InvalidProof)
    );

    // (b) A verifier from hash_token, installed as a pre-hashed secret, is
    // stored verbatim and lets libpq log in with the token.
    let token = generate_token();
    let ours = hash_token(&token, DEFAULT_ITERATIONS).to_string();
    pg.sql(&format!(
        "CREATE ROLE sluicemade LOGIN; ALTER ROLE sluicemade PASSWORD '{ours}'"
    ));
    assert_eq!(
        pg.sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'sluicemade'"),
        ours,
        "PostgreSQL must store our verifier as is, not hash it again"
    );
    let ok = pg.psql_login("sluicemade", &token);
    assert!(
        ok.status.success(),
        "psql login failed: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "sluicemade");
    let bad = pg.psql_login("sluicemade", &generate_token());
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("password authentication failed"),
        "unexpected psql error: {}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // (c) Our ScramClient authenticates to PostgreSQL (which checks our
    // proof, and whose signature we check), for both kinds of verifier.
    wire_login(pg.port, "pgmade", "tok").expect("SCRAM login with PostgreSQL's verifier");
    wire_login(pg.port, "sluicemade", &token).expect("SCRAM login with our verifier");
    match wire_login(pg.port, "pgmade", "tok2") {
        Err(LoginError::Server { sqlstate, .. }) => assert_eq!(sqlstate, "28P01"),
        other => panic!("wrong password: expected 28P01, got {other:?}"),
    }

    // (d) md5_password answers PostgreSQL's md5 challenge.
    pg.sql("SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN PASSWORD 'md5pw'");
    wire_login(pg.port, "md5user", "md5pw").expect("md5 login");
    match wire_login(pg.port, "md5user", "nope") {
        Err(LoginError::Server { sqlstate, message }) => {
            assert_eq!(sqlstate, "28P01", "{message}");
        }
        other => panic!("wrong md5 password: expected 28P01, got {other:?}"),
    }
}

/// Accepts one connection, panicking after `limit` so that a psql that never
/// connects fails the test instead of hanging it.
fn accept_within(listener: &TcpListener, limit: Duration) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = std::time::Instant::now() + limit;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(std::time::Instant::now() < deadline, "psql did not connect");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Serves one connection as a fake PostgreSQL whose only real part is our
/// `ScramServer`: enough protocol for `psql -c "select current_user"`.
fn serve_one(listener: &TcpListener, verifier: &ScramVerifier) -> Result<(), ScramError> {
    let mut stream = accept_within(listener, Duration::from_secs(30));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();

    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let mut startup = vec![0u8; u32::from_be_bytes(len) as usize - 4];
    stream.read_exact(&mut startup).unwrap();
    assert_eq!(
        startup[..4],
        196_608u32.to_be_bytes(),
        "sslmode=disable sends no SSLRequest"
    );
    let params: Vec<&[u8]> = startup[4..].split(|&b| b == 0).collect();
    let user_at = params
        .iter()
        .position(|p| *p == b"user")
        .expect("user parameter");
    let user = String::from_utf8(params[user_at + 1].to_vec()).unwrap();

    let mut sasl = 10u32.to_be_bytes().to_vec();
    sasl.extend_from_slice(b"SCRAM-SHA-256\0\0");
    send(&mut stream, b'R', &sasl);

    let result = (|| {
        let (tag, body) = recv(&mut stream);
        assert_eq!(tag, b'p');
        let nul = body.iter().position(|&b| b == 0).unwrap();
        let mech = std::str::from_utf8(&body[..nul]).unwrap();
        let mut server = ScramServer::new(verifier.clone(), mech, ChannelBinding::None)?;
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
        // Mirror PostgreSQL's wording so psql's message is familiar.
        let msg = match e {
            ScramError::InvalidProof => {
                format!("password authentication failed for user \"{user}\"")
            }
            other => other.to_string(),
        };
        let body = format!("SFATAL\0C{}\0M{msg}\0\0", e.sqlstate());
        send(&mut stream, b'E', body.as_bytes());
        return result;
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
    // One text column named current_user, then the single row.
    let mut desc = 1u16.to_be_bytes().to_vec();
    desc.extend_from_slice(b"current_user\0");
    desc.extend_from_slice(&0u32.to_be_bytes()); // table oid
    desc.extend_from_slice(&0u16.to_be_bytes()); // column number
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
    Ok(())
}

/// libpq, the client most agents use, against our ScramServer: proves our
/// server-first and server-final messages are accepted by libpq (which
/// verifies our server signature) and that libpq's proofs verify.
#[test]
fn libpq_against_scram_server() {
    let Some(bin) = pg_bin() else {
        eprintln!("SKIPPED libpq_against_scram_server: PostgreSQL binaries not found");
        return;
    };
    let token = generate_token();
    let verifier = hash_token(&token, DEFAULT_ITERATIONS);
    let mock = sluice::auth::token::mock_verifier(&[9; 32], "ghost");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    let psql = |user: &str, password: &str| {
        let conninfo = format!("host=127.0.0.1 port={port} user={user} dbname=x sslmode=disable");
        Command::new(bin.join("psql"))
            .args(["-X", "-At", "-w", &conninfo, "-c", "select current_user"])
            .env("PGPASSWORD", password)
            .env("PGPASSFILE", "/dev/null")
            .output()
            .expect("run psql")
    };

    let server = std::thread::spawn(move || {
        [
            serve_one(&listener, &verifier),
            serve_one(&listener, &verifier),
            serve_one(&listener, &mock),
        ]
    });
    let ok = psql("agent", &token);
    let wrong = psql("agent", "slt_wrong");
    let unknown = psql("ghost", &token);
    let results = server.join().unwrap();

    assert!(
        ok.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "agent");
    assert_eq!(results[0], Ok(()));

    assert_eq!(results[1], Err(ScramError::InvalidProof));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("password authentication failed"));
    // An unknown agent is indistinguishable from a wrong token.
    assert_eq!(results[2], Err(ScramError::InvalidProof));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("password authentication failed"));
}
