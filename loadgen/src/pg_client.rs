//! `sluice-loadgen pg`: statements and their parameters, the request
//! builders for the simple, extended and prepared protocols, and a sans-IO
//! response scanner that skips row data without buffering it.
//!
//! Connection set-up (TCP, SSLRequest, TLS with verification, SCRAM-SHA-256,
//! md5 or cleartext) is the appliance's own upstream client
//! (`sluice::upstream::connect`), so the load generator speaks exactly the
//! protocol sluice speaks to PostgreSQL.

use std::{sync::Arc, time::Duration};

use bytes::{Bytes, BytesMut};
use sluice::{
    config::{Secret, Target, UpstreamTlsMode},
    protocol::pg::{build, startup::PROTOCOL_VERSION_3_0, TargetKind},
    tls::UpstreamTls,
    upstream::UpstreamError,
};

use crate::{
    cli::{ParamSpec, PgPlan, QueryMode},
    driver::{Connection, Outcome, Requests, Responses},
    load::{self, Protocol, RunLabels},
    pg_url::{PgTarget, SslMode},
};

/// Per-connection read buffer.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// A statement split at its `$N` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub text: String,
    pieces: Vec<Piece>,
    /// The highest N of any `$N`.
    pub parameters_used: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// Zero-based parameter index.
    Parameter(usize),
}

impl Statement {
    /// Finds `$N` placeholders. Like PostgreSQL, a `$` inside an identifier
    /// (`a$1`) is not a placeholder. Quoted text is not recognised: a `$1`
    /// inside a string literal is substituted in simple mode.
    pub fn parse(text: &str) -> Statement {
        let bytes = text.as_bytes();
        let mut pieces = Vec::new();
        let mut literal_start = 0;
        let mut parameters_used = 0;
        let mut index = 0;
        while index < bytes.len() {
            let after_identifier = index > 0
                && bytes
                    .get(index - 1)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$');
            if bytes[index] == b'$' && !after_identifier {
                let digits = bytes[index + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits > 0 && digits <= 5 {
                    let number: usize = text[index + 1..index + 1 + digits].parse().unwrap_or(0);
                    if number > 0 {
                        if literal_start < index {
                            pieces.push(Piece::Text(text[literal_start..index].to_string()));
                        }
                        pieces.push(Piece::Parameter(number - 1));
                        parameters_used = parameters_used.max(number);
                        index += 1 + digits;
                        literal_start = index;
                        continue;
                    }
                }
            }
            index += 1;
        }
        if literal_start < bytes.len() {
            pieces.push(Piece::Text(text[literal_start..].to_string()));
        }
        Statement {
            text: text.to_string(),
            pieces,
            parameters_used,
        }
    }

    /// The statement with parameters substituted as SQL literals (simple mode).
    pub fn substitute(&self, values: &[String], specs: &[ParamSpec], out: &mut String) {
        out.clear();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Parameter(i) => match specs.get(*i) {
                    Some(ParamSpec::Int { .. }) => out.push_str(&values[*i]),
                    _ => {
                        out.push('\'');
                        out.push_str(&values[*i].replace('\'', "''"));
                        out.push('\'');
                    }
                },
            }
        }
    }
}

/// Deterministic per-connection random numbers (xorshift64*): parameter
/// values only need to be spread, not unpredictable.
#[derive(Debug, Clone)]
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Random {
        Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform over low..=high.
    pub fn between(&mut self, low: i64, high: i64) -> i64 {
        let span = (high as i128 - low as i128 + 1) as u128;
        (low as i128 + (self.next_u64() as u128 % span) as i128) as i64
    }
}

/// Builds the requests of one connection.
pub struct PgRequests {
    statements: Arc<Vec<Statement>>,
    specs: Arc<Vec<ParamSpec>>,
    mode: QueryMode,
    next: usize,
    random: Random,
    values: Vec<String>,
    text: String,
}

impl PgRequests {
    pub fn new(
        statements: Arc<Vec<Statement>>,
        specs: Arc<Vec<ParamSpec>>,
        mode: QueryMode,
        seed: u64,
    ) -> PgRequests {
        let values = vec![String::new(); specs.len()];
        PgRequests {
            statements,
            specs,
            mode,
            next: 0,
            random: Random::new(seed),
            values,
            text: String::new(),
        }
    }

    fn draw_values(&mut self) {
        for (value, spec) in self.values.iter_mut().zip(self.specs.iter()) {
            match spec {
                ParamSpec::Int { low, high } => {
                    value.clear();
                    use std::fmt::Write;
                    let _ = write!(value, "{}", self.random.between(*low, *high));
                }
                ParamSpec::Text(text) => {
                    if value != text {
                        value.clone_from(text);
                    }
                }
            }
        }
    }

    /// The Parse messages (and a Sync) that prepare every statement of a
    /// connection for `--mode prepared`.
    pub fn prepare_all(statements: &[Statement]) -> Bytes {
        let mut out = BytesMut::new();
        for (index, statement) in statements.iter().enumerate() {
            build::parse(&mut out, statement_name(index), &statement.text, &[]);
        }
        build::sync(&mut out);
        out.freeze()
    }
}

fn statement_name(index: usize) -> String {
    format!("loadgen_{index}")
}

impl Requests for PgRequests {
    fn append(&mut self, out: &mut BytesMut) {
        let index = self.next;
        self.next = (self.next + 1) % self.statements.len();
        self.draw_values();
        let statement = &self.statements[index];
        let used = &self.values[..statement.parameters_used];
        match self.mode {
            QueryMode::Simple => {
                statement.substitute(&self.values, &self.specs, &mut self.text);
                build::query(out, &self.text);
            }
            QueryMode::Extended | QueryMode::Prepared => {
                let values: Vec<Option<&[u8]>> = used.iter().map(|v| Some(v.as_bytes())).collect();
                let name = if self.mode == QueryMode::Extended {
                    build::parse(out, "", &statement.text, &[]);
                    String::new()
                } else {
                    statement_name(index)
                };
                build::bind(out, "", name, &[], &values, &[]);
                build::describe(out, TargetKind::Portal, "");
                build::execute(out, "", 0);
                build::sync(out);
            }
        }
    }
}

/// Backend message tags (protocol 3.x).
const BACKEND_TAGS: &[u8] = b"123ACDEGHIKNRSTVWZcdnstv";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScanError {
    #[error("message {tag:#04x} declares length {length}, below the minimum of 4")]
    LengthBelowMinimum { tag: u8, length: i32 },
    #[error("unknown backend message tag {tag:#04x}")]
    UnknownTag { tag: u8 },
    #[error("ErrorResponse of {length} bytes exceeds the maximum of {max}")]
    ErrorTooLarge { length: usize, max: usize },
    #[error("ReadyForQuery with a body of {length} bytes (expected 1)")]
    ReadyForQueryLength { length: usize },
    #[error("the server started COPY FROM STDIN, which the load generator does not send")]
    CopyInUnsupported,
}

/// Scans backend messages: row data is skipped as it streams by (never
/// buffered whole); only ErrorResponse and ReadyForQuery bodies are kept.
/// A request completes at ReadyForQuery, failed if an ErrorResponse came
/// before it.
#[derive(Debug)]
pub struct PgResponseScanner {
    header: [u8; 5],
    header_len: usize,
    /// Body bytes of the current message still to skip or collect.
    remaining: usize,
    collecting: Option<u8>,
    body: Vec<u8>,
    error: Option<String>,
    error_message_bytes_max: usize,
}

impl PgResponseScanner {
    pub fn new(error_message_bytes_max: usize) -> PgResponseScanner {
        PgResponseScanner {
            header: [0; 5],
            header_len: 0,
            remaining: 0,
            collecting: None,
            body: Vec::new(),
            error: None,
            error_message_bytes_max,
        }
    }

    fn finish_message(&mut self, done: &mut dyn FnMut(Outcome)) -> Result<(), ScanError> {
        match self.collecting.take() {
            Some(b'E') if self.error.is_none() => {
                self.error = Some(describe_error(&self.body));
            }
            Some(b'Z') => {
                if self.body.len() != 1 {
                    return Err(ScanError::ReadyForQueryLength {
                        length: self.body.len(),
                    });
                }
                done(match self.error.take() {
                    Some(message) => Outcome::Failure(message),
                    None => Outcome::Success,
                });
            }
            _ => {}
        }
        self.body.clear();
        Ok(())
    }

    pub fn scan(
        &mut self,
        mut input: &[u8],
        done: &mut dyn FnMut(Outcome),
    ) -> Result<(), ScanError> {
        loop {
            if self.header_len == 5 {
                let take = self.remaining.min(input.len());
                if self.collecting.is_some() {
                    self.body.extend_from_slice(&input[..take]);
                }
                self.remaining -= take;
                input = &input[take..];
                if self.remaining > 0 {
                    return Ok(());
                }
                self.header_len = 0;
                self.finish_message(done)?;
            }
            if input.is_empty() {
                return Ok(());
            }
            let take = (5 - self.header_len).min(input.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&input[..take]);
            self.header_len += take;
            input = &input[take..];
            if self.header_len < 5 {
                return Ok(());
            }
            let tag = self.header[0];
            let length = i32::from_be_bytes([
                self.header[1],
                self.header[2],
                self.header[3],
                self.header[4],
            ]);
            if length < 4 {
                return Err(ScanError::LengthBelowMinimum { tag, length });
            }
            if !BACKEND_TAGS.contains(&tag) {
                return Err(ScanError::UnknownTag { tag });
            }
            self.remaining = (length - 4) as usize;
            match tag {
                b'E' | b'Z' => {
                    if self.remaining > self.error_message_bytes_max {
                        return Err(ScanError::ErrorTooLarge {
                            length: self.remaining,
                            max: self.error_message_bytes_max,
                        });
                    }
                    self.collecting = Some(tag);
                }
                b'G' => return Err(ScanError::CopyInUnsupported),
                _ => self.collecting = None,
            }
        }
    }
}

/// "SQLSTATE: message" from an ErrorResponse body.
fn describe_error(body: &[u8]) -> String {
    let mut sqlstate = "?????".to_string();
    let mut message = String::new();
    for field in body.split(|b| *b == 0) {
        match field.split_first() {
            Some((b'C', value)) => sqlstate = String::from_utf8_lossy(value).into_owned(),
            Some((b'M', value)) => message = String::from_utf8_lossy(value).into_owned(),
            _ => {}
        }
    }
    format!("{sqlstate}: {message}")
}

impl Responses for PgResponseScanner {
    fn feed(&mut self, input: &[u8], done: &mut dyn FnMut(Outcome)) -> Result<(), String> {
        self.scan(input, done).map_err(|e| e.to_string())
    }
}

/// The PostgreSQL side of a run.
pub struct PgProtocol {
    target: Target,
    tls: Option<UpstreamTls>,
    /// sslmode=prefer: also try plaintext if the server refuses TLS.
    fallback_plain: bool,
    /// sslnegotiation=direct: the TLS configuration with ALPN "postgresql".
    direct: Option<UpstreamTls>,
    application_name: String,
    connect_timeout: Duration,
    statements: Arc<Vec<Statement>>,
    specs: Arc<Vec<ParamSpec>>,
    mode: QueryMode,
    reconnect: bool,
    error_message_bytes_max: usize,
}

impl PgProtocol {
    pub fn new(plan: &PgPlan) -> Result<PgProtocol, String> {
        let t = &plan.target;
        let tls_mode = match t.sslmode {
            SslMode::Disable => UpstreamTlsMode::Disable,
            SslMode::Prefer | SslMode::Require => UpstreamTlsMode::Require,
            SslMode::VerifyCa => UpstreamTlsMode::VerifyCa,
            SslMode::VerifyFull => UpstreamTlsMode::VerifyFull,
        };
        let target = Target {
            name: "loadgen".into(),
            host: t.host.clone(),
            port: t.port,
            database: t.database.clone(),
            user: t.user.clone(),
            password: t.password.clone().map(Secret::new),
            tls: tls_mode,
            tls_ca_file: t.sslrootcert.clone(),
            tls_server_name: t.host.clone(),
        };
        let tls = sluice::tls::upstream_config(&target).map_err(|e| format!("TLS set-up: {e}"))?;
        let direct = match (&tls, t.direct_tls) {
            (Some(tls), true) => {
                let mut config = (*tls.config).clone();
                config.alpn_protocols = vec![sluice::tls::ALPN_POSTGRESQL.to_vec()];
                Some(UpstreamTls {
                    config: Arc::new(config),
                    server_name: tls.server_name.clone(),
                })
            }
            _ => None,
        };
        Ok(PgProtocol {
            target,
            tls,
            direct,
            fallback_plain: t.sslmode == SslMode::Prefer,
            application_name: t.application_name.clone(),
            connect_timeout: plan.load.connect_timeout,
            statements: Arc::new(plan.statements.clone()),
            specs: Arc::new(plan.params.clone()),
            mode: plan.mode,
            reconnect: plan.reconnect,
            error_message_bytes_max: plan.error_message_bytes_max,
        })
    }

    /// Direct TLS: handshake first, then the startup message and the
    /// appliance's own authentication exchange over the encrypted stream.
    async fn open_direct(&self, tls: &UpstreamTls) -> Result<Connection, String> {
        use std::net::ToSocketAddrs;
        let address = (self.target.host.as_str(), self.target.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.target.host))?
            .next()
            .ok_or_else(|| format!("cannot resolve {}: no addresses", self.target.host))?;
        let stream = monoio::net::TcpStream::connect_addr(address)
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        let (mut reader, writer) = sluice::transport::plain(stream, READ_BUFFER_BYTES);
        let connection = rustls::ClientConnection::new(tls.config.clone(), tls.server_name.clone())
            .map_err(|e| format!("TLS: {e}"))?;
        reader
            .handshake(&writer, connection.into(), &[])
            .await
            .map_err(|e| format!("TLS with {address} failed: {e}"))?;
        let mut out = BytesMut::new();
        build::startup_message(
            &mut out,
            PROTOCOL_VERSION_3_0,
            &[
                ("user", self.target.user.as_str()),
                ("database", self.target.database.as_str()),
                ("application_name", self.application_name.as_str()),
            ],
        );
        writer
            .write(out.freeze())
            .await
            .map_err(|e| format!("write failed: {e}"))?;
        let mut buffer = BytesMut::new();
        sluice::upstream::authenticate(&self.target, &mut reader, &writer, &mut buffer)
            .await
            .map_err(|e| e.to_string())?;
        let upstream = sluice::upstream::finish_startup(reader, writer, buffer, address)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Connection {
            reader: upstream.reader,
            writer: upstream.writer,
            leftover: upstream.leftover,
        })
    }

    async fn open(&self) -> Result<Connection, String> {
        if let Some(direct) = &self.direct {
            return self.open_direct(direct).await;
        }
        let parameters = [("application_name", self.application_name.as_str())];
        let attempt = sluice::upstream::connect(
            &self.target,
            self.tls.as_ref(),
            &parameters,
            self.connect_timeout,
            READ_BUFFER_BYTES,
        )
        .await;
        let upstream = match attempt {
            Err(UpstreamError::TlsRefused { .. }) if self.fallback_plain => {
                sluice::upstream::connect(
                    &self.target,
                    None,
                    &parameters,
                    self.connect_timeout,
                    READ_BUFFER_BYTES,
                )
                .await
            }
            other => other,
        }
        .map_err(|e| e.to_string())?;
        Ok(Connection {
            reader: upstream.reader,
            writer: upstream.writer,
            leftover: upstream.leftover,
        })
    }
}

impl Protocol for PgProtocol {
    type Requests = PgRequests;
    type Responses = PgResponseScanner;

    async fn connect(&self, _index: usize) -> Result<Connection, String> {
        let mut connection = self.open().await?;
        if self.mode == QueryMode::Prepared && !self.reconnect {
            let mut scanner = self.responses();
            let prepare = PgRequests::prepare_all(&self.statements);
            match load::round_trip(&mut connection, prepare, &mut scanner).await? {
                Outcome::Success => {}
                Outcome::Failure(message) => return Err(format!("cannot prepare: {message}")),
            }
        }
        Ok(connection)
    }

    fn requests(&self, index: usize) -> PgRequests {
        // In reconnect mode nothing is prepared, so the statements travel
        // with the extended protocol instead.
        let mode = if self.reconnect && self.mode == QueryMode::Prepared {
            QueryMode::Extended
        } else {
            self.mode
        };
        PgRequests::new(
            self.statements.clone(),
            self.specs.clone(),
            mode,
            index as u64 + 1,
        )
    }

    fn responses(&self) -> PgResponseScanner {
        PgResponseScanner::new(self.error_message_bytes_max)
    }

    fn goodbye(&self) -> Option<Bytes> {
        let mut out = BytesMut::new();
        build::terminate(&mut out);
        Some(out.freeze())
    }

    fn reconnect(&self) -> bool {
        self.reconnect
    }
}

/// Describes the workload for the summary.
fn workload(plan: &PgPlan) -> String {
    let statements = if plan.statements.len() == 1 {
        plan.statements[0].text.clone()
    } else {
        format!("{} statements", plan.statements.len())
    };
    let mut text = format!("{} {statements:?}", plan.mode.name());
    if plan.reconnect {
        text.push_str(", new connection per request");
    }
    text
}

/// `sluice-loadgen pg`.
pub fn run(plan: PgPlan) -> Result<(), String> {
    let protocol = Arc::new(PgProtocol::new(&plan)?);
    let labels = RunLabels {
        protocol: "pg",
        target: plan.target.display(),
        workload: workload(&plan),
    };
    let summary = load::run_load(protocol, &plan.load, labels)?;
    load::finish(&summary, plan.load.json)
}

/// The target of a plan, for callers that only need to display it.
pub fn target_display(target: &PgTarget) -> String {
    target.display()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice::protocol::pg::TransactionStatus;

    #[test]
    fn placeholders_are_found_outside_identifiers() {
        let statement = Statement::parse("select a$1, $1, $12 from t where x = $2");
        assert_eq!(statement.parameters_used, 12);
        let specs = vec![ParamSpec::Int { low: 0, high: 0 }; 12];
        let values: Vec<String> = (1..=12).map(|i| (i * 100).to_string()).collect();
        let mut out = String::new();
        statement.substitute(&values, &specs, &mut out);
        assert_eq!(out, "select a$1, 100, 1200 from t where x = 200");
    }

    #[test]
    fn text_parameters_are_quoted_in_simple_mode() {
        let statement = Statement::parse("select $1");
        let mut out = String::new();
        statement.substitute(
            &["it's".to_string()],
            &[ParamSpec::Text("it's".into())],
            &mut out,
        );
        assert_eq!(out, "select 'it''s'");
    }

    #[test]
    fn random_values_stay_in_range_and_cover_it() {
        let mut random = Random::new(7);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let v = random.between(10, 14);
            assert!((10..=14).contains(&v));
            seen[(v - 10) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(
            Random::new(1).between(i64::MIN, i64::MAX),
            Random::new(1).between(i64::MIN, i64::MAX)
        );
    }

    fn scan_all(
        scanner: &mut PgResponseScanner,
        input: &[u8],
        step: usize,
    ) -> Result<Vec<Outcome>, ScanError> {
        let mut outcomes = Vec::new();
        for chunk in input.chunks(step.max(1)) {
            scanner.scan(chunk, &mut |o| outcomes.push(o))?;
        }
        Ok(outcomes)
    }

    fn result_set(out: &mut BytesMut, rows: usize) {
        build::row_description(out, &[]);
        for _ in 0..rows {
            build::data_row(out, &[Some(b"some value".as_slice()), None]);
        }
        build::command_complete(out, format!("SELECT {rows}"));
        build::ready_for_query(out, TransactionStatus::Idle);
    }

    #[test]
    fn the_scanner_completes_at_ready_for_query_in_any_chunking() {
        let mut input = BytesMut::new();
        result_set(&mut input, 3);
        build::error_response(
            &mut input,
            sluice::protocol::pg::Severity::Error,
            "42P01",
            "relation \"nope\" does not exist",
            None,
            None,
        );
        build::ready_for_query(&mut input, TransactionStatus::Idle);
        result_set(&mut input, 0);
        for step in [1, 2, 3, 7, 64, input.len()] {
            let mut scanner = PgResponseScanner::new(1024);
            let outcomes = scan_all(&mut scanner, &input, step).unwrap();
            assert_eq!(
                outcomes,
                vec![
                    Outcome::Success,
                    Outcome::Failure("42P01: relation \"nope\" does not exist".into()),
                    Outcome::Success
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn the_scanner_rejects_corrupt_streams() {
        let mut scanner = PgResponseScanner::new(1024);
        assert_eq!(
            scan_all(&mut scanner, b"Z\x00\x00\x00\x02", 5),
            Err(ScanError::LengthBelowMinimum {
                tag: b'Z',
                length: 2
            })
        );
        let mut scanner = PgResponseScanner::new(1024);
        assert_eq!(
            scan_all(&mut scanner, b"?\x00\x00\x00\x04", 5),
            Err(ScanError::UnknownTag { tag: b'?' })
        );
        let mut scanner = PgResponseScanner::new(1024);
        assert_eq!(
            scan_all(&mut scanner, b"Z\x00\x00\x00\x06II", 8),
            Err(ScanError::ReadyForQueryLength { length: 2 })
        );
        let mut scanner = PgResponseScanner::new(1024);
        assert_eq!(
            scan_all(&mut scanner, b"E\x00\x10\x00\x00", 5),
            Err(ScanError::ErrorTooLarge {
                length: 0x10_0000 - 4,
                max: 1024
            })
        );
    }

    #[test]
    fn requests_follow_the_mode() {
        let statements = Arc::new(vec![Statement::parse("select $1::int")]);
        let specs = Arc::new(vec![ParamSpec::Int { low: 5, high: 5 }]);
        let mut out = BytesMut::new();
        PgRequests::new(statements.clone(), specs.clone(), QueryMode::Simple, 1).append(&mut out);
        let mut expected = BytesMut::new();
        build::query(&mut expected, "select 5::int");
        assert_eq!(out, expected);
        out.clear();
        PgRequests::new(statements.clone(), specs.clone(), QueryMode::Prepared, 1).append(&mut out);
        let tags: Vec<u8> = sluice::protocol::pg::frames(&out, 1 << 20)
            .map(|f| f.unwrap().tag)
            .collect();
        assert_eq!(tags, b"BDES".to_vec());
        out.clear();
        PgRequests::new(statements, specs, QueryMode::Extended, 1).append(&mut out);
        let tags: Vec<u8> = sluice::protocol::pg::frames(&out, 1 << 20)
            .map(|f| f.unwrap().tag)
            .collect();
        assert_eq!(tags, b"PBDES".to_vec());
    }
}
