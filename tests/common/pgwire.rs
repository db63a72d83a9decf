//! A deliberately small PostgreSQL wire-protocol client for the tests.
//!
//! Real clients (psql, pgbench, psycopg) cover the happy paths, but they
//! hide what the tests must assert on: the exact SQLSTATE of a refused
//! connection, what arrives on a plaintext socket, direct TLS with ALPN
//! (which Debian 12's libpq 15 cannot do), raw protocol garbage. This client
//! exposes all of that. Every read and write has a timeout.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Timeout for every socket read and write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How a connection starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Negotiation {
    /// No TLS at all: the startup packet goes out in plaintext.
    Plain,
    /// libpq's classic way: SSLRequest, 'S', then TLS.
    SslRequest,
    /// PostgreSQL 17's `sslnegotiation=direct`: TLS immediately, ALPN
    /// "postgresql".
    Direct,
}

/// TLS client settings.
#[derive(Clone, Debug)]
pub struct TlsOpts {
    pub ca: PathBuf,
    pub server_name: String,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// ALPN protocols offered; `Direct` always offers "postgresql" when this
    /// is empty.
    pub alpn: Vec<Vec<u8>>,
}

impl TlsOpts {
    pub fn new(ca: impl Into<PathBuf>) -> Self {
        TlsOpts {
            ca: ca.into(),
            server_name: "localhost".into(),
            client_cert: None,
            alpn: Vec::new(),
        }
    }
}

/// The byte stream under the protocol: plain TCP or TLS over TCP.
pub enum Transport {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Transport {
    /// The ALPN protocol the server selected, if TLS.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        match self {
            Transport::Plain(_) => None,
            Transport::Tls(s) => s.conn.alpn_protocol().map(|p| p.to_vec()),
        }
    }

    /// The negotiated TLS version, if TLS.
    pub fn tls_version(&self) -> Option<rustls::ProtocolVersion> {
        match self {
            Transport::Plain(_) => None,
            Transport::Tls(s) => s.conn.protocol_version(),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

/// An ErrorResponse (or NoticeResponse) as a map of field code to value.
#[derive(Clone, Debug, Default)]
pub struct PgError {
    pub fields: BTreeMap<u8, String>,
}

impl PgError {
    pub fn code(&self) -> &str {
        self.fields.get(&b'C').map(String::as_str).unwrap_or("")
    }
    pub fn message(&self) -> &str {
        self.fields.get(&b'M').map(String::as_str).unwrap_or("")
    }
    pub fn severity(&self) -> &str {
        self.fields
            .get(&b'V')
            .or_else(|| self.fields.get(&b'S'))
            .map(String::as_str)
            .unwrap_or("")
    }
    pub fn parse(body: &[u8]) -> PgError {
        let mut fields = BTreeMap::new();
        let mut rest = body;
        while let Some((&code, tail)) = rest.split_first() {
            if code == 0 {
                break;
            }
            let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
            fields.insert(code, String::from_utf8_lossy(&tail[..end]).into_owned());
            rest = tail.get(end + 1..).unwrap_or(&[]);
        }
        PgError { fields }
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.severity(), self.code(), self.message())
    }
}

/// Why a connection attempt ended without a session.
#[derive(Debug)]
pub enum ConnectError {
    Io(io::Error),
    /// The server answered with an ErrorResponse.
    Server(PgError),
    Protocol(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Io(e) => write!(f, "I/O error: {e}"),
            ConnectError::Server(e) => write!(f, "server error: {e}"),
            ConnectError::Protocol(s) => write!(f, "protocol error: {s}"),
        }
    }
}

impl From<io::Error> for ConnectError {
    fn from(e: io::Error) -> Self {
        ConnectError::Io(e)
    }
}

impl ConnectError {
    /// The SQLSTATE if the server sent an ErrorResponse.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            ConnectError::Server(e) => Some(e.code()),
            _ => None,
        }
    }
}

fn load_certs(path: &PathBuf) -> io::Result<Vec<CertificateDer<'static>>> {
    let mut r = io::BufReader::new(std::fs::File::open(path)?);
    rustls_pemfile::certs(&mut r).collect()
}

fn load_key(path: &PathBuf) -> io::Result<PrivateKeyDer<'static>> {
    let mut r = io::BufReader::new(std::fs::File::open(path)?);
    rustls_pemfile::private_key(&mut r)?
        .ok_or_else(|| io::Error::other(format!("no private key in {}", path.display())))
}

/// A rustls client configuration trusting only `opts.ca`.
pub fn tls_config(
    opts: &TlsOpts,
    negotiation: Negotiation,
) -> io::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(&opts.ca)? {
        roots.add(c).map_err(io::Error::other)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(io::Error::other)?
    .with_root_certificates(roots);
    let mut config = match &opts.client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(io::Error::other)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = if opts.alpn.is_empty() && negotiation == Negotiation::Direct {
        vec![b"postgresql".to_vec()]
    } else {
        opts.alpn.clone()
    };
    Ok(Arc::new(config))
}

/// Opens TCP to `addr` and negotiates the transport. With `SslRequest`, a
/// server answering 'N' or with an error is reported as an error.
pub fn connect_transport(
    addr: SocketAddr,
    negotiation: Negotiation,
    tls: Option<&TlsOpts>,
) -> Result<Transport, ConnectError> {
    let mut tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    match negotiation {
        Negotiation::Plain => return Ok(Transport::Plain(tcp)),
        Negotiation::SslRequest => {
            tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])?;
            let mut answer = [0u8; 1];
            tcp.read_exact(&mut answer)?;
            match answer[0] {
                b'S' => {}
                // A server may refuse before TLS (PostgreSQL does this for
                // "too many connections"): read the ErrorResponse.
                b'E' => {
                    let mut len = [0u8; 4];
                    tcp.read_exact(&mut len)?;
                    let len = u32::from_be_bytes(len) as usize;
                    if !(4..=1 << 20).contains(&len) {
                        return Err(ConnectError::Protocol(format!("bad error length {len}")));
                    }
                    let mut body = vec![0u8; len - 4];
                    tcp.read_exact(&mut body)?;
                    return Err(ConnectError::Server(PgError::parse(&body)));
                }
                other => {
                    return Err(ConnectError::Protocol(format!(
                        "server answered SSLRequest with {:?}",
                        other as char
                    )))
                }
            }
        }
        Negotiation::Direct => {}
    }
    let opts = tls.ok_or_else(|| ConnectError::Protocol("TLS options required".into()))?;
    let config = tls_config(opts, negotiation)?;
    let name = ServerName::try_from(opts.server_name.clone())
        .map_err(|e| ConnectError::Protocol(e.to_string()))?;
    let conn = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
    // complete_io reports TLS alerts (handshake refused, unknown CA,
    // missing client certificate) as I/O errors.
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(Transport::Tls(Box::new(stream)))
}

/// Reads one backend message: (type, body).
pub fn read_message(io: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 5];
    io.read_exact(&mut header)?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if !(4..=64 << 20).contains(&len) {
        return Err(io::Error::other(format!(
            "implausible message length {len} for type {:?}",
            header[0] as char
        )));
    }
    let mut body = vec![0u8; len - 4];
    io.read_exact(&mut body)?;
    Ok((header[0], body))
}

/// A frontend message with a type byte.
pub fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + 5);
    m.push(kind);
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A StartupMessage (protocol 3.0) with the given parameters.
pub fn startup_message(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196608u32.to_be_bytes());
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    m.extend_from_slice(&body);
    m
}

/// An authenticated session.
pub struct PgConn {
    pub io: Transport,
    pub backend_key: Option<(i32, i32)>,
    pub params: BTreeMap<String, String>,
}

/// Sends the startup packet on `io` and authenticates (SCRAM-SHA-256,
/// cleartext, or none), up to ReadyForQuery.
pub fn startup(
    mut io: Transport,
    user: &str,
    database: &str,
    password: Option<&str>,
) -> Result<PgConn, ConnectError> {
    use sluice::auth::scram::{ChannelBinding, ScramClient, SCRAM_SHA_256};
    io.write_all(&startup_message(&[
        ("user", user),
        ("database", database),
        ("application_name", "sluice-e2e"),
    ]))?;
    let mut scram: Option<ScramClient> = None;
    let mut conn_params = BTreeMap::new();
    let mut backend_key = None;
    loop {
        let (kind, body) = read_message(&mut io)?;
        match kind {
            b'R' => {
                let code = i32::from_be_bytes(body[..4].try_into().unwrap());
                let data = &body[4..];
                match code {
                    0 => {}
                    3 => {
                        let pw = password.ok_or_else(|| {
                            ConnectError::Protocol("server wants a password".into())
                        })?;
                        let mut b = pw.as_bytes().to_vec();
                        b.push(0);
                        io.write_all(&message(b'p', &b))?;
                    }
                    10 => {
                        let mechs: Vec<&[u8]> =
                            data.split(|&b| b == 0).filter(|m| !m.is_empty()).collect();
                        if !mechs.contains(&SCRAM_SHA_256.as_bytes()) {
                            return Err(ConnectError::Protocol(format!(
                                "no SCRAM-SHA-256 in {mechs:?}"
                            )));
                        }
                        let pw = password.ok_or_else(|| {
                            ConnectError::Protocol("server wants a password".into())
                        })?;
                        let mut client = ScramClient::new(pw, SCRAM_SHA_256, ChannelBinding::None)
                            .map_err(|e| ConnectError::Protocol(format!("{e:?}")))?;
                        let first = client.client_first();
                        let mut b = SCRAM_SHA_256.as_bytes().to_vec();
                        b.push(0);
                        b.extend_from_slice(&(first.len() as i32).to_be_bytes());
                        b.extend_from_slice(&first);
                        io.write_all(&message(b'p', &b))?;
                        scram = Some(client);
                    }
                    11 => {
                        let client = scram
                            .as_mut()
                            .ok_or_else(|| ConnectError::Protocol("SASLContinue first".into()))?;
                        let fin = client
                            .handle_server_first(data)
                            .map_err(|e| ConnectError::Protocol(format!("{e:?}")))?;
                        io.write_all(&message(b'p', &fin))?;
                    }
                    12 => {
                        let client = scram
                            .as_mut()
                            .ok_or_else(|| ConnectError::Protocol("SASLFinal first".into()))?;
                        client
                            .handle_server_final(data)
                            .map_err(|e| ConnectError::Protocol(format!("server proof: {e:?}")))?;
                    }
                    other => {
                        return Err(ConnectError::Protocol(format!(
                            "unsupported authentication request {other}"
                        )))
                    }
                }
            }
            b'S' => {
                let mut parts = body.split(|&b| b == 0);
                let k = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
                let v = String::from_utf8_lossy(parts.next().unwrap_or(&[])).into_owned();
                conn_params.insert(k, v);
            }
            b'K' => {
                let pid = i32::from_be_bytes(body[..4].try_into().unwrap());
                let key = i32::from_be_bytes(body[4..8].try_into().unwrap());
                backend_key = Some((pid, key));
            }
            b'E' => return Err(ConnectError::Server(PgError::parse(&body))),
            b'N' => {}
            b'Z' => {
                return Ok(PgConn {
                    io,
                    backend_key,
                    params: conn_params,
                })
            }
            other => {
                return Err(ConnectError::Protocol(format!(
                    "unexpected message {:?} during startup",
                    other as char
                )))
            }
        }
    }
}

/// Connects to `addr` and logs in, in one step.
pub fn connect(
    addr: SocketAddr,
    negotiation: Negotiation,
    tls: Option<&TlsOpts>,
    user: &str,
    database: &str,
    password: Option<&str>,
) -> Result<PgConn, ConnectError> {
    let io = connect_transport(addr, negotiation, tls)?;
    startup(io, user, database, password)
}

/// Rows of a simple query: every DataRow of every statement, as text.
pub type Rows = Vec<Vec<Option<String>>>;

impl PgConn {
    /// Runs a simple Query and collects all DataRows (of all statements in
    /// it) up to ReadyForQuery. The first ErrorResponse is returned as Err.
    pub fn simple_query(&mut self, sql: &str) -> Result<Rows, ConnectError> {
        let mut q = sql.as_bytes().to_vec();
        q.push(0);
        self.io.write_all(&message(b'Q', &q))?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let (kind, body) = read_message(&mut self.io)?;
            match kind {
                b'D' => rows.push(parse_data_row(&body)),
                // Keep the first error: later ones are consequences.
                b'E' if error.is_none() => error = Some(PgError::parse(&body)),
                b'Z' => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(ConnectError::Server(e)),
            None => Ok(rows),
        }
    }

    /// The single value of a one-row, one-column query.
    pub fn query_one(&mut self, sql: &str) -> Result<Option<String>, ConnectError> {
        let rows = self.simple_query(sql)?;
        match rows.as_slice() {
            [row] if row.len() == 1 => Ok(row[0].clone()),
            _ => Err(ConnectError::Protocol(format!(
                "expected one value from {sql:?}, got {rows:?}"
            ))),
        }
    }

    /// Reads messages until an ErrorResponse; returns it and whether the
    /// stream ended right after it. Err describes what came instead.
    pub fn read_until_error(&mut self) -> Result<(PgError, bool), String> {
        let mut seen = Vec::new();
        loop {
            match read_message(&mut self.io) {
                Ok((b'E', body)) => {
                    let err = PgError::parse(&body);
                    let closed = read_message(&mut self.io).is_err();
                    return Ok((err, closed));
                }
                Ok((kind, _)) => seen.push(kind as char),
                Err(e) => {
                    return Err(format!(
                        "no ErrorResponse (messages seen: {seen:?}), then: {e}"
                    ))
                }
            }
        }
    }

    /// Sends Terminate and closes.
    pub fn terminate(mut self) {
        let _ = self.io.write_all(&message(b'X', &[]));
        let _ = self.io.flush();
    }
}

fn parse_data_row(body: &[u8]) -> Vec<Option<String>> {
    let n = u16::from_be_bytes([body[0], body[1]]) as usize;
    let mut out = Vec::with_capacity(n);
    let mut pos = 2;
    for _ in 0..n {
        let len = i32::from_be_bytes(body[pos..pos + 4].try_into().unwrap());
        pos += 4;
        if len < 0 {
            out.push(None);
        } else {
            let len = len as usize;
            out.push(Some(
                String::from_utf8_lossy(&body[pos..pos + len]).into_owned(),
            ));
            pos += len;
        }
    }
    out
}

/// Reads the first message the server sends on `io` after `first_bytes`
/// and returns it if it is an ErrorResponse.
pub fn expect_error_after(io: &mut Transport, first_bytes: &[u8]) -> Result<PgError, String> {
    io.write_all(first_bytes)
        .map_err(|e| format!("write: {e}"))?;
    loop {
        match read_message(io) {
            Ok((b'E', body)) => return Ok(PgError::parse(&body)),
            Ok((b'N', _)) => continue,
            Ok((kind, _)) => return Err(format!("expected ErrorResponse, got {:?}", kind as char)),
            Err(e) => return Err(format!("expected ErrorResponse, got {e}")),
        }
    }
}

/// Sends a CancelRequest for (pid, key) over a fresh connection.
pub fn cancel_request(
    addr: SocketAddr,
    negotiation: Negotiation,
    tls: Option<&TlsOpts>,
    key: (i32, i32),
) -> Result<(), ConnectError> {
    let mut io = connect_transport(addr, negotiation, tls)?;
    let mut m = Vec::with_capacity(16);
    m.extend_from_slice(&16u32.to_be_bytes());
    m.extend_from_slice(&80877102u32.to_be_bytes());
    m.extend_from_slice(&key.0.to_be_bytes());
    m.extend_from_slice(&key.1.to_be_bytes());
    io.write_all(&m)?;
    io.flush()?;
    // The server closes the connection without answering.
    let mut buf = [0u8; 1];
    let _ = io.read(&mut buf);
    Ok(())
}
