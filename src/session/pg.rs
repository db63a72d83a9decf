//! The PostgreSQL session loop: from an accepted TCP connection to a framed,
//! authenticated, two-way proxy.

use std::{
    cell::{Cell, RefCell},
    net::SocketAddr,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::{Buf, Bytes, BytesMut};
use monoio::net::TcpStream;

use sha2::{Digest, Sha256};
use sluice_ledger::{Record, RecordBody, SessionId};

use super::{
    masking::{MaskFailure, SessionMasking},
    policy::{HoldRequest, PolicySession, Verdict},
    refusal::{Refusal, Refusals},
    ErrorSource, Phase,
};
use crate::{
    approvals::hold::{self, HoldContext},
    auth::{
        scram::{advertised_mechanisms, ChannelBinding, ScramError, ScramServer},
        token::{mock_verifier, ScramVerifier},
    },
    cancel::CancelTarget,
    config::{Agent, Target},
    metrics::Metrics,
    protocol::pg::{
        build::{self, Severity},
        frames, looks_like_tls_client_hello, needed_bytes, next_startup_packet, parse_frontend,
        parse_sasl_initial_response, sqlstate, Frame, StartupPacket, HEADER_BYTES,
    },
    recording::{CopyData, Fault, ServerMessages, WorkerRecorder},
    server::{SessionControl, Worker, OVERFLOW_SESSIONS_MAX},
    tls::ALPN_POSTGRESQL,
    transport::{self, ReadMessageError, TransportReader, TransportWriter},
    upstream::{self, UpstreamError},
};

/// Authentication messages from an agent are small; a bigger one is hostile.
const AUTH_MESSAGE_BYTES_MAX: usize = 8 * 1024;
/// Time allowed to forward a cancel to the upstream server.
const CANCEL_FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on writing a session's final error to the agent.
const FINAL_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// After the agent leaves, how long the upstream gets to close its side.
const UPSTREAM_CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Startup parameters passed on to the upstream server. Everything else is
/// not forwarded: `user` and `database` are sluice's to choose, `options`
/// could set arbitrary server settings (including `session_authorization`)
/// behind policy's back, and `replication` would open a replication session.
const FORWARDED_PARAMETERS: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "datestyle",
    "TimeZone",
    "timezone",
    "extra_float_digits",
    "IntervalStyle",
    "intervalstyle",
    "search_path",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "default_transaction_isolation",
    "default_transaction_read_only",
    "bytea_output",
    "standard_conforming_strings",
    "geqo",
];

/// A session-ending problem: what the agent is told, and where it came from.
struct Failure {
    source: ErrorSource,
    phase: Phase,
    /// SQLSTATE and message for the agent; None when the connection is
    /// already unusable (the peer left, TLS failed) and nothing can be sent.
    reply: Option<(&'static str, String)>,
    hint: Option<&'static str>,
    /// Fuller text for the operator's log (never secrets).
    log: String,
}

impl Failure {
    fn new(
        source: ErrorSource,
        phase: Phase,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        let message = message.into();
        Failure {
            source,
            phase,
            log: message.clone(),
            reply: Some((code, message)),
            hint: None,
        }
    }

    fn silent(source: ErrorSource, phase: Phase, log: impl Into<String>) -> Self {
        Failure {
            source,
            phase,
            reply: None,
            hint: None,
            log: log.into(),
        }
    }

    fn hint(mut self, hint: &'static str) -> Self {
        self.hint = Some(hint);
        self
    }
}

fn from_read(error: ReadMessageError, phase: Phase) -> Failure {
    match error {
        ReadMessageError::Closed => Failure::silent(
            ErrorSource::Downstream,
            phase,
            "agent closed the connection",
        ),
        ReadMessageError::Io(e) => {
            Failure::silent(ErrorSource::Downstream, phase, format!("read failed: {e}"))
        }
        ReadMessageError::Frame(e) => Failure::new(
            ErrorSource::Downstream,
            phase,
            sqlstate::PROTOCOL_VIOLATION,
            format!("invalid message: {e}"),
        ),
    }
}

/// How the agent proved who it is (recorded with the session later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Token,
    Certificate,
    CertificateAndToken,
}

/// Result of the phases before the upstream exists.
struct Admitted {
    agent: Agent,
    target: Target,
    forwarded: Vec<(String, String)>,
    auth_method: AuthMethod,
}

/// Keeps a worker's counters right however the session ends.
struct SlotGuard {
    worker: Rc<Worker>,
    overflow: bool,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.worker
            .shared
            .metrics
            .worker(self.worker.index)
            .connections_closed
            .add(1);
        if self.overflow {
            self.worker.overflow.set(self.worker.overflow.get() - 1);
        } else {
            self.worker.active.set(self.worker.active.get() - 1);
        }
    }
}

/// Runs one agent connection to completion.
pub async fn run(worker: Rc<Worker>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let limits = worker.shared.config.limits.clone();
    let overflow = worker.active.get() >= limits.connections_per_worker_max;
    if overflow {
        if worker.overflow.get() >= OVERFLOW_SESSIONS_MAX {
            tracing::warn!(worker = worker.index, %peer, phase = "negotiate", "connection limit and overflow limit reached: closing without reply");
            return;
        }
        worker.overflow.set(worker.overflow.get() + 1);
    } else {
        worker.active.set(worker.active.get() + 1);
    }
    worker
        .shared
        .metrics
        .worker(worker.index)
        .connections_opened
        .add(1);
    let _slot = SlotGuard {
        worker: worker.clone(),
        overflow,
    };
    let session_id = worker.next_session_id();
    let (mut reader, writer) = transport::plain(stream, limits.read_buffer_bytes);
    let mut buffer = BytesMut::with_capacity(1024);

    let startup_timeout = Duration::from_millis(limits.startup_timeout_ms);
    let admitted = monoio::time::timeout(
        startup_timeout,
        admit(&worker, &mut reader, &writer, &mut buffer, overflow, peer),
    )
    .await;
    let admitted = match admitted {
        Err(_) => {
            tracing::info!(session = session_id, %peer, phase = "startup", source = "downstream", "startup_timeout_ms elapsed before authentication completed");
            if reader.is_tls() {
                reply_fatal(
                    &writer,
                    sqlstate::PROTOCOL_VIOLATION,
                    "startup did not complete within startup_timeout_ms",
                    None,
                )
                .await;
            }
            writer.abort();
            return;
        }
        Ok(Err(failure)) => {
            count_error(&worker, &failure);
            finish_with(&writer, session_id, peer, failure).await;
            return;
        }
        Ok(Ok(None)) => {
            writer.close().await;
            return;
        }
        Ok(Ok(Some(admitted))) => admitted,
    };
    if let Err(failure) = serve(&worker, session_id, peer, reader, &writer, buffer, admitted).await
    {
        count_error(&worker, &failure);
        finish_with(&writer, session_id, peer, failure).await;
        return;
    }
    writer.close().await;
}

/// Counts a session-ending failure by source, except an agent that simply
/// left (not an error).
fn count_error(worker: &Worker, failure: &Failure) {
    if failure.reply.is_some() || failure.source != ErrorSource::Downstream {
        worker
            .shared
            .metrics
            .worker(worker.index)
            .error(failure.source);
    }
}

async fn finish_with(
    writer: &TransportWriter,
    session_id: u64,
    peer: SocketAddr,
    failure: Failure,
) {
    tracing::info!(
        session = session_id,
        %peer,
        phase = failure.phase.as_str(),
        source = failure.source.as_str(),
        sqlstate = failure.reply.as_ref().map(|r| r.0).unwrap_or(""),
        "session ended: {}",
        failure.log
    );
    if let Some((code, message)) = &failure.reply {
        reply_fatal(writer, code, message, failure.hint).await;
        writer.close().await;
    } else {
        writer.abort();
    }
}

async fn reply_fatal(writer: &TransportWriter, code: &str, message: &str, hint: Option<&str>) {
    let mut out = BytesMut::new();
    build::error_response(&mut out, Severity::Fatal, code, message, None, hint);
    // An agent that stopped reading must not keep the session alive.
    let _ = monoio::time::timeout(FINAL_WRITE_TIMEOUT, writer.write(out.freeze())).await;
}

async fn write_all(writer: &TransportWriter, out: BytesMut, phase: Phase) -> Result<(), Failure> {
    writer
        .write(out.freeze())
        .await
        .map_err(|e| Failure::silent(ErrorSource::Downstream, phase, format!("write failed: {e}")))
}

/// Phases negotiate → handshake → startup → authenticate. Returns None when
/// the connection was a cancel request or the agent left politely.
async fn admit(
    worker: &Rc<Worker>,
    reader: &mut TransportReader,
    writer: &TransportWriter,
    buffer: &mut BytesMut,
    overflow: bool,
    peer: SocketAddr,
) -> Result<Option<Admitted>, Failure> {
    // negotiate
    let direct = loop {
        if buffer.is_empty() && !read_more(reader, buffer, Phase::Negotiate).await? {
            return Ok(None);
        }
        if looks_like_tls_client_hello(buffer) {
            break true;
        }
        let (packet_kind, consumed) = match next_startup_packet(buffer) {
            Ok(Some((packet, consumed))) => (classify(&packet), consumed),
            Ok(None) => {
                if !read_more(reader, buffer, Phase::Negotiate).await? {
                    return Ok(None);
                }
                continue;
            }
            Err(e) => {
                return Err(Failure::new(
                    ErrorSource::Downstream,
                    Phase::Negotiate,
                    sqlstate::PROTOCOL_VIOLATION,
                    format!("invalid startup packet: {e}"),
                ))
            }
        };
        match packet_kind {
            Early::Ssl => {
                if buffer.len() > consumed {
                    // Plaintext bytes sent before the TLS handshake could be
                    // injected by a man in the middle (CVE-2021-23214).
                    return Err(Failure::silent(
                        ErrorSource::Downstream,
                        Phase::Negotiate,
                        "data received after SSLRequest before the TLS handshake",
                    ));
                }
                buffer.clear();
                let mut out = BytesMut::new();
                out.extend_from_slice(b"S");
                write_all(writer, out, Phase::Negotiate).await?;
                break false;
            }
            Early::Gss => {
                // Decline GSS encryption exactly as a server without it does;
                // the client then usually tries SSLRequest.
                buffer.advance(consumed);
                let mut out = BytesMut::new();
                out.extend_from_slice(b"N");
                write_all(writer, out, Phase::Negotiate).await?;
            }
            Early::Cancel(process_id, secret) => {
                forward_cancel(worker, process_id, &secret, peer).await;
                return Ok(None);
            }
            Early::Startup => {
                return Err(Failure::new(
                    ErrorSource::Downstream,
                    Phase::Negotiate,
                    sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                    "sluice accepts only TLS connections",
                )
                .hint("connect with sslmode=require or stronger (verify-full recommended)"));
            }
        }
    };

    // handshake
    let connection =
        rustls::ServerConnection::new(worker.shared.tls_server.clone()).map_err(|e| {
            Failure::silent(
                ErrorSource::Internal,
                Phase::Handshake,
                format!("TLS setup: {e}"),
            )
        })?;
    let initial = std::mem::take(buffer);
    reader
        .handshake(writer, connection.into(), &initial)
        .await
        .map_err(|e| {
            Failure::silent(
                ErrorSource::Downstream,
                Phase::Handshake,
                format!("TLS handshake failed: {e}"),
            )
        })?;
    if direct {
        let alpn_ok = reader
            .with_tls(|tls| tls.alpn_protocol() == Some(ALPN_POSTGRESQL))
            .unwrap_or(false);
        if !alpn_ok {
            // PostgreSQL 17 requires ALPN on direct TLS so that a TLS
            // connection meant for another protocol cannot be replayed here.
            return Err(Failure::new(
                ErrorSource::Downstream,
                Phase::Handshake,
                sqlstate::PROTOCOL_VIOLATION,
                "direct TLS connection without ALPN protocol \"postgresql\"",
            ));
        }
    }

    // startup
    let startup = loop {
        match next_startup_packet(buffer) {
            Ok(Some((packet, consumed))) => match packet {
                StartupPacket::Startup {
                    protocol_version,
                    parameters,
                } => {
                    let parsed = StartupInfo {
                        protocol_minor: protocol_version & 0xffff,
                        parameters: parameters
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    };
                    buffer.advance(consumed);
                    break parsed;
                }
                StartupPacket::CancelRequest {
                    process_id,
                    secret_key,
                } => {
                    let secret = secret_key.to_vec();
                    forward_cancel(worker, process_id, &secret, peer).await;
                    return Ok(None);
                }
                StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                    return Err(Failure::new(
                        ErrorSource::Downstream,
                        Phase::Startup,
                        sqlstate::PROTOCOL_VIOLATION,
                        "encryption request inside an encrypted connection",
                    ))
                }
            },
            Ok(None) => {
                if !read_more(reader, buffer, Phase::Startup).await? {
                    return Ok(None);
                }
            }
            Err(e) => {
                return Err(Failure::new(
                    ErrorSource::Downstream,
                    Phase::Startup,
                    sqlstate::PROTOCOL_VIOLATION,
                    format!("invalid startup packet: {e}"),
                ))
            }
        }
    };

    if overflow {
        return Err(Failure::new(
            ErrorSource::Internal,
            Phase::Startup,
            sqlstate::TOO_MANY_CONNECTIONS,
            "sorry, too many clients already",
        )
        .hint("raise limits.connections_per_worker_max or add workers"));
    }

    let get = |name: &str| {
        startup
            .parameters
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(user) = get("user").filter(|u| !u.is_empty()) else {
        return Err(Failure::new(
            ErrorSource::Downstream,
            Phase::Startup,
            sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
            "no PostgreSQL user name specified in startup packet",
        ));
    };
    let user = user.to_string();
    let database = get("database")
        .filter(|d| !d.is_empty())
        .unwrap_or(&user)
        .to_string();
    if let Some(replication) = get("replication") {
        if !matches!(replication, "false" | "off" | "no" | "0") {
            return Err(Failure::new(
                ErrorSource::Downstream,
                Phase::Startup,
                sqlstate::INSUFFICIENT_PRIVILEGE,
                "replication connections are not allowed through sluice",
            ));
        }
    }
    if get("options").is_some_and(|o| !o.trim().is_empty()) {
        return Err(Failure::new(
            ErrorSource::Downstream,
            Phase::Startup,
            sqlstate::FEATURE_NOT_SUPPORTED,
            "the startup option \"options\" is not supported by sluice",
        )
        .hint("unset PGOPTIONS and use SET after connecting"));
    }
    let protocol_options: Vec<&str> = startup
        .parameters
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("_pq_."))
        .collect();
    if startup.protocol_minor > 0 || !protocol_options.is_empty() {
        // sluice speaks protocol 3.0 to both sides.
        let mut out = BytesMut::new();
        build::negotiate_protocol_version(&mut out, 0, &protocol_options);
        write_all(writer, out, Phase::Startup).await?;
    }
    if let Some(encoding) = get("client_encoding") {
        if !super::policy::client_encoding_is_safe(encoding) {
            return Err(Failure::new(
                ErrorSource::Downstream,
                Phase::Startup,
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!("client_encoding {encoding:?} is not supported through sluice"),
            )
            .hint("use UTF8: in this encoding a multibyte character can contain a quote or backslash byte, so sluice could not read statements as the server does"));
        }
    }
    let forwarded: Vec<(String, String)> = startup
        .parameters
        .iter()
        .filter(|(k, _)| FORWARDED_PARAMETERS.contains(&k.as_str()))
        .cloned()
        .collect();

    // authenticate
    let config = &worker.shared.config;
    let agent = config.agent(&user).cloned();
    let delay = Duration::from_millis(config.limits.auth_failure_delay_ms);
    let certificate = reader
        .with_tls(|tls| tls.peer_certificates().and_then(|c| c.first().cloned()))
        .flatten();
    let auth_method = match &agent {
        Some(agent) if !agent.cert_identities.is_empty() => {
            let matched = certificate.as_ref().is_some_and(|cert| {
                agent
                    .cert_identities
                    .iter()
                    .any(|identity| crate::tls::certificate_names(cert, identity))
            });
            if !matched {
                monoio::time::sleep(delay).await;
                return Err(Failure::new(
                    ErrorSource::Downstream,
                    Phase::Authenticate,
                    sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                    format!("certificate authentication failed for user \"{user}\""),
                ));
            }
            match &agent.token {
                None => AuthMethod::Certificate,
                Some(verifier) => {
                    scram_exchange(
                        reader,
                        writer,
                        buffer,
                        verifier.clone(),
                        &user,
                        delay,
                        &worker.shared.channel_binding,
                    )
                    .await?;
                    AuthMethod::CertificateAndToken
                }
            }
        }
        Some(agent) => {
            let verifier = agent
                .token
                .clone()
                .expect("validated: an agent without certificates has a token");
            scram_exchange(
                reader,
                writer,
                buffer,
                verifier,
                &user,
                delay,
                &worker.shared.channel_binding,
            )
            .await?;
            AuthMethod::Token
        }
        None => {
            // Unknown agents run the same exchange against a fake verifier
            // so that they are indistinguishable from a wrong token.
            let verifier = mock_verifier(&worker.shared.mock_secret, &user);
            scram_exchange(
                reader,
                writer,
                buffer,
                verifier,
                &user,
                delay,
                &worker.shared.channel_binding,
            )
            .await?;
            // A mock verifier cannot verify; reaching here would be a bug.
            return Err(Failure::new(
                ErrorSource::Internal,
                Phase::Authenticate,
                sqlstate::INVALID_PASSWORD,
                format!("password authentication failed for user \"{user}\""),
            ));
        }
    };
    let agent = agent.expect("unknown agents returned above");
    let mut out = BytesMut::new();
    build::authentication_ok(&mut out);
    write_all(writer, out, Phase::Authenticate).await?;

    // Target selection happens after authentication, as PostgreSQL checks the
    // database only after the password, so that target names do not leak to
    // unauthenticated peers.
    let Some(target) = config.target(&database).cloned() else {
        return Err(Failure::new(
            ErrorSource::Downstream,
            Phase::Startup,
            sqlstate::INVALID_CATALOG_NAME,
            format!("target \"{database}\" does not exist"),
        )
        .hint("the database name selects a sluice target; ask the operator for the target list"));
    };
    if !agent.may_use(&target.name) {
        return Err(Failure::new(
            ErrorSource::Downstream,
            Phase::Startup,
            sqlstate::INSUFFICIENT_PRIVILEGE,
            format!(
                "agent \"{}\" may not use target \"{}\"",
                agent.name, target.name
            ),
        ));
    }
    Ok(Some(Admitted {
        agent,
        target,
        forwarded,
        auth_method,
    }))
}

struct StartupInfo {
    protocol_minor: u32,
    parameters: Vec<(String, String)>,
}

enum Early {
    Ssl,
    Gss,
    Cancel(u32, Vec<u8>),
    Startup,
}

fn classify(packet: &StartupPacket<'_>) -> Early {
    match packet {
        StartupPacket::SslRequest => Early::Ssl,
        StartupPacket::GssEncRequest => Early::Gss,
        StartupPacket::CancelRequest {
            process_id,
            secret_key,
        } => Early::Cancel(*process_id, secret_key.to_vec()),
        StartupPacket::Startup { .. } => Early::Startup,
    }
}

async fn read_more(
    reader: &mut TransportReader,
    buffer: &mut BytesMut,
    phase: Phase,
) -> Result<bool, Failure> {
    match reader.read_into(buffer).await {
        Ok(0) => Ok(false),
        Ok(_) => Ok(true),
        Err(e) => Err(Failure::silent(
            ErrorSource::Downstream,
            phase,
            format!("read failed: {e}"),
        )),
    }
}

/// Reads one authentication message ('p'); None if the agent hung up, which
/// libpq does on purpose when it needs to prompt for a password.
async fn read_password_message(
    reader: &mut TransportReader,
    buffer: &mut BytesMut,
) -> Result<Option<Bytes>, Failure> {
    match reader.read_message(buffer, AUTH_MESSAGE_BYTES_MAX).await {
        Ok(message) if message[0] == b'p' => Ok(Some(message)),
        Ok(message) if message[0] == b'X' => Ok(None),
        Ok(message) => Err(Failure::new(
            ErrorSource::Downstream,
            Phase::Authenticate,
            sqlstate::PROTOCOL_VIOLATION,
            format!(
                "expected a password message, got message type {:?}",
                message[0] as char
            ),
        )),
        Err(ReadMessageError::Closed) => Ok(None),
        Err(e) => Err(from_read(e, Phase::Authenticate)),
    }
}

fn agent_left() -> Failure {
    Failure::silent(
        ErrorSource::Downstream,
        Phase::Authenticate,
        "agent closed the connection during authentication",
    )
}

async fn scram_exchange(
    reader: &mut TransportReader,
    writer: &TransportWriter,
    buffer: &mut BytesMut,
    verifier: ScramVerifier,
    user: &str,
    delay: Duration,
    channel_binding: &Option<Vec<u8>>,
) -> Result<(), Failure> {
    // With tls-server-end-point data, SCRAM-SHA-256-PLUS is offered too:
    // a client that binds proves the TLS session it authenticated in is the
    // one it talks to (no relaying through a man in the middle).
    let binding = match channel_binding {
        Some(hash) => ChannelBinding::TlsServerEndPoint(hash.clone()),
        None => ChannelBinding::None,
    };
    let mut out = BytesMut::new();
    build::authentication_sasl(&mut out, advertised_mechanisms(&binding));
    write_all(writer, out, Phase::Authenticate).await?;
    let Some(first) = read_password_message(reader, buffer).await? else {
        return Err(agent_left());
    };
    let violation = |what: String| {
        Failure::new(
            ErrorSource::Downstream,
            Phase::Authenticate,
            sqlstate::PROTOCOL_VIOLATION,
            what,
        )
    };
    let (mechanism, data) = parse_sasl_initial_response(&first[5..])
        .map_err(|e| violation(format!("malformed SASLInitialResponse: {e}")))?;
    let Some(data) = data else {
        return Err(violation("SASLInitialResponse without data".into()));
    };
    let scram_failure = |e: ScramError| {
        if e == ScramError::InvalidProof {
            Failure::new(
                ErrorSource::Downstream,
                Phase::Authenticate,
                sqlstate::INVALID_PASSWORD,
                format!("password authentication failed for user \"{user}\""),
            )
        } else {
            Failure::new(
                ErrorSource::Downstream,
                Phase::Authenticate,
                e.sqlstate(),
                format!("SCRAM authentication failed: {e}"),
            )
        }
    };
    let mut server = ScramServer::new(verifier, mechanism, binding).map_err(scram_failure)?;
    let server_first = server.handle_client_first(data).map_err(scram_failure)?;
    let mut out = BytesMut::new();
    build::authentication_sasl_continue(&mut out, &server_first);
    write_all(writer, out, Phase::Authenticate).await?;
    let Some(client_final) = read_password_message(reader, buffer).await? else {
        return Err(agent_left());
    };
    match server.handle_client_final(&client_final[5..]) {
        Ok(server_final) => {
            let mut out = BytesMut::new();
            build::authentication_sasl_final(&mut out, &server_final);
            write_all(writer, out, Phase::Authenticate).await?;
            Ok(())
        }
        Err(e) => {
            // The delay is a timer: it slows guessing without costing CPU or
            // blocking the worker.
            monoio::time::sleep(delay).await;
            Err(scram_failure(e))
        }
    }
}

async fn forward_cancel(worker: &Rc<Worker>, process_id: u32, secret: &[u8], peer: SocketAddr) {
    match worker.shared.cancel.lookup(process_id, secret) {
        // A session holding a statement for approval has nothing running
        // upstream: the cancel withdraws the request instead.
        Some(_)
            if worker
                .shared
                .approvals
                .as_ref()
                .is_some_and(|approvals| approvals.cancel_process(process_id)) =>
        {
            tracing::info!(%peer, phase = "negotiate", process_id, "cancel withdrew a held statement's approval request");
        }
        Some(target) => {
            if let Err(e) = upstream::send_cancel(&target, CANCEL_FORWARD_TIMEOUT).await {
                tracing::warn!(%peer, phase = "negotiate", source = "upstream", "cancel forwarding failed: {e}");
            } else {
                tracing::info!(%peer, phase = "negotiate", process_id, "cancel forwarded upstream");
            }
        }
        None => {
            // PostgreSQL answers nothing either way; so does sluice.
            tracing::info!(%peer, phase = "negotiate", process_id, "cancel request matches no session");
        }
    }
}

fn upstream_failure(target: &Target, error: UpstreamError) -> Failure {
    let source = ErrorSource::Upstream;
    let phase = Phase::ConnectUpstream;
    match error {
        UpstreamError::AuthenticationRejected {
            sqlstate: code,
            message,
        } => Failure {
            source,
            phase,
            reply: Some((
                sqlstate::CONNECTION_FAILURE,
                format!(
                    "upstream for target \"{}\" rejected sluice's credential",
                    target.name
                ),
            )),
            hint: Some("the operator must check the target's user and password_file"),
            log: format!("upstream authentication rejected ({code}): {message}"),
        },
        UpstreamError::Refused {
            sqlstate: code,
            message,
        } => {
            let code: &'static str = match code.as_str() {
                "3D000" => sqlstate::INVALID_CATALOG_NAME,
                "53300" => sqlstate::TOO_MANY_CONNECTIONS,
                "57P03" => sqlstate::CANNOT_CONNECT_NOW,
                "57P01" => sqlstate::ADMIN_SHUTDOWN,
                _ => sqlstate::CONNECTION_FAILURE,
            };
            Failure::new(
                source,
                phase,
                code,
                format!("upstream for target \"{}\": {message}", target.name),
            )
        }
        other => Failure::new(
            source,
            phase,
            sqlstate::CONNECTION_FAILURE,
            format!(
                "could not connect to upstream for target \"{}\": {other}",
                target.name
            ),
        ),
    }
}

/// connect_upstream → proxy → close.
async fn serve(
    worker: &Rc<Worker>,
    session_id: u64,
    peer: SocketAddr,
    mut client_reader: TransportReader,
    client_writer: &TransportWriter,
    client_buffer: BytesMut,
    admitted: Admitted,
) -> Result<(), Failure> {
    let Admitted {
        agent,
        target,
        forwarded,
        auth_method,
    } = admitted;
    let limits = &worker.shared.config.limits;
    let upstream_tls = worker
        .shared
        .upstream_tls
        .get(&target.name)
        .cloned()
        .flatten();
    let parameters: Vec<(&str, &str)> = forwarded
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut upstream = upstream::connect(
        &target,
        upstream_tls.as_ref(),
        &parameters,
        Duration::from_millis(limits.upstream_connect_timeout_ms),
        limits.read_buffer_bytes,
    )
    .await
    .map_err(|e| upstream_failure(&target, e))?;

    let mut secret_key = [0u8; 4];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret_key);
    let process_id = worker
        .shared
        .cancel
        .register(
            worker.index,
            CancelTarget {
                secret_key,
                upstream_address: upstream.address,
                upstream_tls,
                upstream_process_id: upstream.process_id,
                upstream_secret_key: upstream.secret_key.clone(),
            },
        )
        .ok_or_else(|| {
            Failure::new(
                ErrorSource::Internal,
                Phase::ConnectUpstream,
                sqlstate::TOO_MANY_CONNECTIONS,
                "no free cancel key on this worker",
            )
        })?;
    let _cancel_guard = CancelGuard {
        worker: worker.clone(),
        process_id,
    };

    let mut masking = match &worker.shared.config.masking {
        None => None,
        Some(setup) => Some(
            SessionMasking::start(
                setup,
                agent.masking_profile.as_deref(),
                &mut upstream.reader,
                &upstream.writer,
                &mut upstream.leftover,
                limits.server_message_bytes_max,
            )
            .await
            .map_err(|f| masking_failure(f, Phase::ConnectUpstream))?,
        ),
    };

    // The agent sees the upstream's parameters, sluice's own cancel key, and
    // the upstream's ReadyForQuery, in PostgreSQL's order.
    let mut out = match &mut masking {
        None => upstream.relay.clone(),
        Some(m) => m
            .mask_startup(upstream.relay.clone())
            .map_err(|f| masking_failure(f, Phase::ConnectUpstream))?,
    };
    build::backend_key_data(&mut out, process_id, &secret_key);
    out.extend_from_slice(&upstream.ready_for_query);
    write_all(client_writer, out, Phase::ConnectUpstream).await?;

    tracing::info!(
        session = session_id,
        worker = worker.index,
        %peer,
        agent = %agent.name,
        target = %target.name,
        auth = ?auth_method,
        tls = ?client_reader.with_tls(|t| t.protocol_version()).flatten(),
        upstream = %upstream.address,
        phase = "proxy",
        "session established"
    );

    let control = Rc::new(SessionControl {
        client: client_writer.clone(),
        upstream_fd: Cell::new(Some(upstream.writer.raw_fd())),
        last_activity: Cell::new(Instant::now()),
        idle_in_protocol: Cell::new(true),
    });
    worker
        .sessions
        .borrow_mut()
        .insert(session_id, control.clone());
    let _registration = SessionRegistration {
        worker: worker.clone(),
        session_id,
    };

    let mut ledger_session = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut ledger_session);
    let context = Rc::new(ProxyContext {
        control: control.clone(),
        refusals: RefCell::new(Refusals::new(u64::from_le_bytes(
            ledger_session[..8].try_into().expect("8 bytes"),
        ))),
        recording: worker.recorder.clone().map(|recorder| SessionRecording {
            recorder,
            session: SessionId(ledger_session),
            sequence: Cell::new(0),
        }),
        counters: SessionCounters::default(),
        message_bytes_max: limits.message_bytes_max,
        server_message_bytes_max: limits.server_message_bytes_max,
        metrics: worker.shared.metrics.clone(),
        worker_index: worker.index,
        hold: worker.shared.approvals.clone().map(|registry| HoldContext {
            registry,
            agent: agent.name.clone(),
            target: target.name.clone(),
            session: hex(&ledger_session),
            process_id,
            worker: worker.index,
        }),
        client_fd: client_reader.raw_fd(),
        policy: worker.shared.config.policy.clone().map(|policy| {
            let session = PolicySession::new(policy, &agent.name, &agent.groups, &target.name)
                .with_approvals(worker.shared.approvals.is_some());
            // The server's startup ParameterStatus (client_encoding) counts too.
            for frame in frames(&upstream.relay, usize::MAX).flatten() {
                session.observe_backend(frame.tag, frame.body);
            }
            session
        }),
        masking: masking.map(RefCell::new),
    });
    if let Some(recording) = &context.recording {
        let tls = client_reader.with_tls(|t| {
            (
                t.protocol_version()
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default(),
                t.negotiated_cipher_suite()
                    .map(|c| format!("{:?}", c.suite()))
                    .unwrap_or_default(),
                t.peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| hex(&Sha256::digest(c.as_ref())))
                    .unwrap_or_default(),
            )
        });
        let (tls_version, tls_cipher, fingerprint) = tls.unwrap_or_default();
        let opened = RecordBody::SessionOpened {
            agent_identity: agent.name.clone(),
            auth_method: format!("{auth_method:?}"),
            client_address: peer.to_string(),
            tls_version,
            tls_cipher,
            client_certificate_fingerprint: fingerprint,
            target: format!(
                "{} ({} {}/{})",
                target.name, upstream.address, target.database, target.user
            ),
        };
        // The session starts only once its opening is recorded: a session
        // that cannot be recorded is not served.
        let durable = match recording.recorder.submit([recording.record(opened)], true) {
            Ok(slot) if recording.recorder.strict() => slot.wait().await,
            Ok(_) => Ok(()),
            Err(fault) => Err(fault),
        };
        if let Err(fault) = durable {
            let reason = format!("sluice cannot record this session: {}", fault.message);
            // The opening is kept until the ledger recovers (the agent did
            // connect): close it there too, so the ledger holds no session
            // that looks cut off by a crash.
            let closed = RecordBody::SessionClosed {
                statements: 0,
                client_messages: 0,
                server_messages: 0,
                client_bytes: 0,
                server_bytes: 0,
                denied_statements: 0,
                reason: reason.clone(),
            };
            let _ = recording.recorder.submit([recording.record(closed)], false);
            return Err(Failure::new(
                ErrorSource::Internal,
                Phase::ConnectUpstream,
                fault.sqlstate(),
                reason,
            ));
        }
    }

    let downstream_task = monoio::spawn(upstream_to_client(
        upstream.reader,
        upstream.leftover,
        client_writer.clone(),
        context.clone(),
    ));
    let outcome = client_to_upstream(
        &mut client_reader,
        client_buffer,
        &upstream.writer,
        &context,
    )
    .await;
    // A failure on the agent's side is answered before anything is torn down,
    // so the ErrorResponse reaches the agent ahead of the close.
    let (outcome, close_reason) = match outcome {
        Err(failure) => {
            let reason = failure.log.clone();
            count_error(worker, &failure);
            finish_with(client_writer, session_id, peer, failure).await;
            (Ok(()), reason)
        }
        Ok(()) => (Ok(()), "agent closed the session".to_string()),
    };
    // Let the upstream finish its side, but never wait on it unboundedly.
    upstream.writer.close().await;
    let upstream_outcome = match monoio::time::timeout(UPSTREAM_CLOSE_GRACE, downstream_task).await
    {
        Ok(result) => result,
        Err(_) => {
            if let Some(fd) = control.upstream_fd.get() {
                transport::shutdown_fd(fd, libc::SHUT_RDWR);
            }
            Ok(())
        }
    };
    if let Some(recording) = &context.recording {
        let counters = &context.counters;
        if let Some(masking) = &context.masking {
            let summary = masking.borrow_mut().summary_record();
            let _ = recording
                .recorder
                .submit([recording.record(summary)], false);
        }
        let closed = RecordBody::SessionClosed {
            statements: counters.statements.get(),
            client_messages: counters.client_messages.get(),
            server_messages: counters.server_chunks.get(),
            client_bytes: counters.client_bytes.get(),
            server_bytes: counters.server_bytes.get(),
            denied_statements: context.refusals.borrow().refused_messages,
            reason: match &upstream_outcome {
                Err(failure) => failure.log.clone(),
                Ok(()) => close_reason,
            },
        };
        // Best effort and not awaited: the session is over, and a failure
        // here is already reported by the recorder.
        let _ = recording.recorder.submit([recording.record(closed)], false);
    }
    tracing::info!(
        session = session_id,
        phase = "close",
        agent = %agent.name,
        target = %target.name,
        statements = context.counters.statements.get(),
        refused = context.refusals.borrow().refused_messages,
        masked = context.masking.as_ref().map_or(0, |m| m.borrow().values_masked()),
        "session closed"
    );
    match (outcome, upstream_outcome) {
        (Err(failure), _) | (_, Err(failure)) => Err(failure),
        _ => Ok(()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a session's two directions share.
struct ProxyContext {
    control: Rc<SessionControl>,
    refusals: RefCell<Refusals>,
    policy: Option<PolicySession>,
    recording: Option<SessionRecording>,
    counters: SessionCounters,
    message_bytes_max: usize,
    server_message_bytes_max: usize,
    /// The masking stage of the upstream → agent direction; None when
    /// masking is off.
    masking: Option<RefCell<SessionMasking>>,
    metrics: Arc<Metrics>,
    worker_index: usize,
    /// Holding statements for approval; None without an approval service.
    hold: Option<HoldContext>,
    /// The agent's socket, to notice it leaving while a statement is held.
    client_fd: std::os::fd::RawFd,
}

/// A masking failure ends the session with a protocol-correct error.
fn masking_failure(failure: MaskFailure, phase: Phase) -> Failure {
    Failure::new(failure.source, phase, failure.sqlstate, failure.message)
}

#[derive(Default)]
struct SessionCounters {
    statements: Cell<u64>,
    client_messages: Cell<u64>,
    client_bytes: Cell<u64>,
    server_chunks: Cell<u64>,
    server_bytes: Cell<u64>,
}

struct SessionRecording {
    recorder: Rc<WorkerRecorder>,
    session: SessionId,
    sequence: Cell<u64>,
}

impl SessionRecording {
    fn record(&self, body: RecordBody) -> Record {
        let sequence = self.sequence.get();
        self.sequence.set(sequence + 1);
        Record {
            session: self.session,
            sequence,
            timestamp_ns: now_ns(),
            body,
        }
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

struct CancelGuard {
    worker: Rc<Worker>,
    process_id: u32,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        self.worker
            .shared
            .cancel
            .unregister(self.worker.index, self.process_id);
    }
}

struct SessionRegistration {
    worker: Rc<Worker>,
    session_id: u64,
}

impl Drop for SessionRegistration {
    fn drop(&mut self) {
        self.worker.sessions.borrow_mut().remove(&self.session_id);
    }
}

/// The refusal an agent gets when its statement cannot be recorded.
fn ledger_refusal(fault: &Fault) -> Refusal {
    Refusal {
        sqlstate: fault.sqlstate(),
        message: format!(
            "sluice did not run the statement because it cannot be recorded: {}",
            fault.message
        ),
        hint: Some("the session stays open; retry once the ledger is writable again".into()),
    }
}

/// Records the frontend messages of one chunk (and the policy decisions
/// taken on them) and waits for durability when the ledger is strict. Ok
/// means the chunk may be forwarded.
async fn record_chunk(
    context: &ProxyContext,
    chunk: &[u8],
    decisions: Vec<RecordBody>,
) -> Result<(), Fault> {
    let Some(recording) = &context.recording else {
        return Ok(());
    };
    let copy_full = recording.recorder.shared.settings.copy_data == CopyData::Full;
    let mut records = Vec::new();
    for frame in frames(chunk, context.message_bytes_max).flatten() {
        if frame.tag == b'd' && !copy_full {
            continue;
        }
        records.push(recording.record(RecordBody::ClientMessage {
            bytes: frame.to_wire(),
        }));
    }
    records.extend(decisions.into_iter().map(|d| recording.record(d)));
    if records.is_empty() {
        return Ok(());
    }
    recording.recorder.wait_for_room().await;
    let slot = recording.recorder.submit(records, true)?;
    if recording.recorder.strict() {
        slot.wait().await
    } else {
        Ok(())
    }
}

/// What happens to one frontend message of a chunk.
enum Planned {
    Forward,
    /// Dropped: an earlier refusal makes the server skip it anyway.
    Drop,
    Refuse(Refusal),
}

/// Agent → upstream. Every frontend message is framed and validated in
/// place, decided by policy, recorded, and forwarded as one write of the
/// same bytes; refused messages are replaced (see `refusal`).
async fn client_to_upstream(
    reader: &mut TransportReader,
    mut buffer: BytesMut,
    upstream: &TransportWriter,
    context: &ProxyContext,
) -> Result<(), Failure> {
    let control = &context.control;
    loop {
        let mut framed = frames(&buffer, context.message_bytes_max);
        let mut terminated = false;
        let mut violation = None;
        let mut messages = 0u64;
        let mut statements = 0u64;
        let mut plan: Vec<Planned> = Vec::new();
        let mut decisions: Vec<RecordBody> = Vec::new();
        // A message held for approval ends the chunk: nothing after it is
        // planned until its outcome is known.
        let mut held: Option<(usize, HoldRequest)> = None;
        let mut tally = DecisionTally::default();
        let mut resumed = false;
        let saved_flags = context.refusals.borrow().discard_flags();
        let mut consumed = 0usize;
        for frame in framed.by_ref() {
            let frame = match frame {
                Ok(frame) => frame,
                Err(e) => {
                    violation = Some(format!("{e}"));
                    break;
                }
            };
            let message = match parse_frontend(frame) {
                Ok(message) => message,
                Err(e) => {
                    // The malformed frame is neither recorded nor forwarded.
                    violation = Some(e.to_string());
                    break;
                }
            };
            consumed += frame.wire_len();
            messages += 1;
            if matches!(frame.tag, b'Q' | b'E' | b'F') {
                statements += 1;
            }
            // Planning advances the discard state as forwarding will; a
            // dropped message changes no policy state (the server never
            // sees it).
            let admitted = context.refusals.borrow_mut().admit(frame);
            let planned = if !admitted {
                Planned::Drop
            } else {
                match &context.policy {
                    None => Planned::Forward,
                    Some(policy) => match policy.verdict(&message, &mut decisions) {
                        Verdict::Forward => Planned::Forward,
                        Verdict::Refuse(refusal)
                            if refusal.sqlstate == sqlstate::PROTOCOL_VIOLATION =>
                        {
                            violation = Some(refusal.message);
                            consumed -= frame.wire_len();
                            messages -= 1;
                            break;
                        }
                        Verdict::Refuse(refusal) => {
                            context.refusals.borrow_mut().plan_refusal(frame.tag);
                            Planned::Refuse(refusal)
                        }
                        Verdict::Hold(request) => {
                            held = Some((frame.wire_len(), request));
                            Planned::Forward
                        }
                    },
                }
            };
            if matches!(frame.tag, b'Q' | b'E' | b'F') {
                tally.count(&planned, held.is_some());
            }
            if let (Some(policy), false) = (&context.policy, matches!(planned, Planned::Drop)) {
                // A refused Query or FunctionCall becomes a probe Query:
                // either way one batch is sent.
                policy.sent(frame.tag);
            }
            if held.is_some() {
                break;
            }
            plan.push(planned);
            if frame.tag == b'X' {
                terminated = true;
                break;
            }
        }
        tally.flush(context);
        if consumed > 0 {
            let chunk = buffer.split_to(consumed).freeze();
            let counters = &context.counters;
            counters
                .client_messages
                .set(counters.client_messages.get() + messages);
            counters
                .statements
                .set(counters.statements.get() + statements);
            counters
                .client_bytes
                .set(counters.client_bytes.get() + consumed as u64);
            context
                .metrics
                .worker(context.worker_index)
                .bytes_from_agents
                .add(consumed as u64);
            // Something is in flight until the server's next ReadyForQuery.
            control.idle_in_protocol.set(false);
            let forward_all = plan.iter().all(|p| matches!(p, Planned::Forward));
            let recorded = record_chunk(context, &chunk, decisions).await;
            // The held message is the chunk's last; it is resolved after
            // everything before it has been sent.
            let (chunk, held) = match (held, &recorded) {
                (Some((length, request)), Ok(())) => {
                    let split = chunk.len() - length;
                    (chunk.slice(..split), Some((chunk.slice(split..), request)))
                }
                _ => (chunk, None),
            };
            let outgoing = match recorded {
                Ok(()) if forward_all => chunk,
                Ok(()) => {
                    let mut refusals = context.refusals.borrow_mut();
                    let mut out = BytesMut::with_capacity(chunk.len());
                    for (frame, planned) in frames(&chunk, context.message_bytes_max)
                        .flatten()
                        .zip(&plan)
                    {
                        match planned {
                            Planned::Forward => out.extend_from_slice(&chunk_slice(&chunk, frame)),
                            Planned::Drop => {}
                            Planned::Refuse(refusal) => {
                                tracing::info!(
                                    phase = "policy",
                                    sqlstate = refusal.sqlstate,
                                    "statement refused: {}",
                                    refusal.message
                                );
                                refusals.emit_probe(frame, refusal, &mut out);
                            }
                        }
                    }
                    out.freeze()
                }
                Err(fault) => {
                    tracing::warn!(
                        phase = "recording",
                        source = "internal",
                        sqlstate = fault.sqlstate(),
                        "refusing statements: {}",
                        fault.message
                    );
                    // Nothing of this chunk may run: replan it from the
                    // state before it, refusing every message.
                    let refusal = ledger_refusal(&fault);
                    let mut refusals = context.refusals.borrow_mut();
                    refusals.restore_discard_flags(saved_flags);
                    let mut out = BytesMut::new();
                    for frame in frames(&chunk, context.message_bytes_max).flatten() {
                        refusals.refuse(frame, &refusal, &mut out);
                    }
                    out.freeze()
                }
            };
            if let Some(masking) = &context.masking {
                masking
                    .borrow_mut()
                    .observe_frontend(&outgoing)
                    .map_err(|f| masking_failure(f, Phase::Proxy))?;
            }
            if !outgoing.is_empty() {
                if let Err(e) = upstream.write(outgoing).await {
                    return Err(lost_upstream(e));
                }
            }
            if let Some((message, request)) = held {
                resumed = true;
                let outgoing = match resolve_hold(context, request).await {
                    None => message,
                    Some(refusal) => {
                        let mut refusals = context.refusals.borrow_mut();
                        let mut out = BytesMut::new();
                        if let Some(Ok(frame)) = frames(&message, usize::MAX).next() {
                            refusals.plan_refusal(frame.tag);
                            refusals.emit_probe(frame, &refusal, &mut out);
                        }
                        out.freeze()
                    }
                };
                if let Err(e) = upstream.write(outgoing).await {
                    return Err(lost_upstream(e));
                }
            }
        }
        if let Some(violation) = violation {
            return Err(Failure::new(
                ErrorSource::Downstream,
                Phase::Proxy,
                sqlstate::PROTOCOL_VIOLATION,
                format!("invalid frontend message: {violation}"),
            ));
        }
        if terminated {
            return Ok(());
        }
        // After a hold, the agent's next messages may already be buffered
        // (a pipeline): frame them before waiting for more.
        if resumed {
            continue;
        }
        if !read_more_proxied(reader, &mut buffer, control, ErrorSource::Downstream).await? {
            return Ok(());
        }
    }
}

fn lost_upstream(e: std::io::Error) -> Failure {
    Failure::new(
        ErrorSource::Upstream,
        Phase::Proxy,
        sqlstate::CONNECTION_FAILURE,
        format!("lost the upstream connection: {e}"),
    )
}

/// Statement decisions of one chunk, added to the worker's metrics once.
#[derive(Default)]
struct DecisionTally {
    allowed: u64,
    blocked: u64,
    held: u64,
}

impl DecisionTally {
    fn count(&mut self, planned: &Planned, held: bool) {
        match planned {
            _ if held => self.held += 1,
            Planned::Forward => self.allowed += 1,
            Planned::Refuse(_) => self.blocked += 1,
            Planned::Drop => {}
        }
    }

    fn flush(&self, context: &ProxyContext) {
        let metrics = context.metrics.worker(context.worker_index);
        if self.allowed > 0 {
            metrics.statements_allowed.add(self.allowed);
        }
        if self.blocked > 0 {
            metrics.statements_blocked.add(self.blocked);
        }
        if self.held > 0 {
            metrics.statements_held.add(self.held);
        }
    }
}

/// Holds a statement until its approval's outcome. None: forward it (it was
/// approved and the approval is recorded); Some: refuse it with this.
async fn resolve_hold(context: &ProxyContext, request: HoldRequest) -> Option<Refusal> {
    let Some(hold_context) = &context.hold else {
        return Some(Refusal {
            sqlstate: sqlstate::INTERNAL_ERROR,
            message: "sluice has no approval service for this session".into(),
            hint: None,
        });
    };
    let (ticket, wait_ms) = match hold_context.submit(&request) {
        Ok(submitted) => submitted,
        Err(refusal) => return Some(refusal),
    };
    let id = ticket.id.clone();
    let requested_ns = now_ns();
    tracing::info!(
        phase = "approval",
        approval = %id,
        rule = %request.rule,
        agent = %hold_context.agent,
        target = %hold_context.target,
        wait_ms,
        "statement held for approval"
    );
    if let Some(recording) = &context.recording {
        let record = recording.record(hold::requested_record(&id, &request, wait_ms));
        if let Err(fault) = recording.recorder.submit([record], false) {
            tracing::warn!(
                phase = "recording",
                source = "internal",
                "approval request not recorded: {}",
                fault.message
            );
        }
    }
    let notice = hold::notice(&id, &request, wait_ms);
    let outcome = match context.control.client.write(notice.freeze()).await {
        Ok(()) => hold::wait(&hold_context.registry, ticket, wait_ms, context.client_fd).await,
        Err(_) => hold_context.registry.withdraw(
            &ticket,
            crate::approvals::Outcome::Withdrawn {
                why: "the agent's connection failed".into(),
            },
        ),
    };
    let decided_ns = now_ns();
    context.metrics.worker(context.worker_index).approval(
        outcome.result(),
        decided_ns.saturating_sub(requested_ns) / 1_000_000,
    );
    tracing::info!(
        phase = "approval",
        approval = %id,
        outcome = outcome.result().as_str(),
        approver = outcome.approver().unwrap_or(""),
        "approval resolved"
    );
    let refusal = hold::refusal(&id, &request, &outcome, wait_ms);
    if let Some(recording) = &context.recording {
        let record = recording.record(hold::decided_record(
            &id,
            &request,
            &outcome,
            requested_ns,
            decided_ns,
        ));
        // An approved statement runs only once its approval is recorded
        // (in strict mode: durable).
        let must_wait = recording.recorder.strict() && refusal.is_none();
        let durable = match recording.recorder.submit([record], must_wait) {
            Ok(slot) if must_wait => slot.wait().await,
            Ok(_) => Ok(()),
            Err(fault) => Err(fault),
        };
        if let Err(fault) = durable {
            if refusal.is_none() {
                return Some(ledger_refusal(&fault));
            }
        }
    }
    if refusal.is_none() {
        request.approved();
    }
    if let (
        None,
        crate::approvals::Outcome::Approved {
            window_ms: Some(window_ms),
            ..
        },
    ) = (&refusal, &outcome)
    {
        if let Some(policy) = &context.policy {
            policy.grant_window(request.class, Duration::from_millis(*window_ms));
        }
    }
    refusal
}

/// Reads more of one direction's stream into `buffer` (growing it first to
/// hold a large message whose header has arrived). Ok(false) at end of stream.
async fn read_more_proxied(
    reader: &mut TransportReader,
    buffer: &mut BytesMut,
    control: &SessionControl,
    source: ErrorSource,
) -> Result<bool, Failure> {
    if let Some(needed) = needed_bytes(buffer) {
        if needed > buffer.capacity() {
            buffer.reserve(needed - buffer.len());
        }
    }
    match reader.read_into(buffer).await {
        Ok(0) => Ok(false),
        Ok(_) => {
            control.last_activity.set(Instant::now());
            Ok(true)
        }
        Err(e) => Err(Failure::silent(
            source,
            Phase::Proxy,
            format!("{} read failed: {e}", source.as_str()),
        )),
    }
}

/// The bytes of `frame`, which borrows from `chunk`, as a zero-copy slice.
fn chunk_slice(chunk: &Bytes, frame: Frame<'_>) -> Bytes {
    let start = frame.body.as_ptr() as usize - chunk.as_ptr() as usize - HEADER_BYTES;
    chunk.slice(start..start + frame.wire_len())
}

/// Records what the agent is about to receive (never awaited: responses are
/// not held back for the ledger; statements are).
async fn record_delivery(context: &ProxyContext, chunk: &[u8]) {
    let Some(recording) = &context.recording else {
        return;
    };
    // Backpressure: a fast upstream cannot outrun the ledger's disk.
    recording.recorder.wait_for_room().await;
    let body = match recording.recorder.shared.settings.server_messages {
        ServerMessages::Full => RecordBody::ServerMessage {
            bytes: chunk.to_vec(),
        },
        ServerMessages::Digest => RecordBody::ServerMessageDigest {
            length_bytes: chunk.len() as u64,
            sha256: Sha256::digest(chunk).into(),
        },
    };
    if let Err(fault) = recording.recorder.submit([recording.record(body)], false) {
        tracing::debug!(
            phase = "recording",
            "server data not recorded: {}",
            fault.message
        );
    }
}

/// Upstream → agent: framed in place, ReadyForQuery tracked, probe errors
/// rewritten, recorded, same bytes out.
async fn upstream_to_client(
    mut reader: TransportReader,
    mut buffer: BytesMut,
    client: TransportWriter,
    context: Rc<ProxyContext>,
) -> Result<(), Failure> {
    let control = context.control.clone();
    let result = async {
        loop {
            let mut framed = frames(&buffer, context.server_message_bytes_max);
            let mut violation = None;
            let mut rewrites: Vec<(usize, usize, BytesMut)> = Vec::new();
            let check_errors = context.refusals.borrow().has_pending();
            let base = buffer.as_ptr() as usize;
            for frame in framed.by_ref() {
                match frame {
                    Ok(frame) => {
                        if let Some(policy) = &context.policy {
                            if matches!(
                                frame.tag,
                                b'E' | b'Z'
                                    | b'S'
                                    | b'1'
                                    | b'2'
                                    | b'3'
                                    | b'T'
                                    | b'n'
                                    | b'C'
                                    | b's'
                                    | b'I'
                            ) {
                                policy.observe_backend(frame.tag, frame.body);
                            }
                        }
                        if frame.tag == b'Z' {
                            control
                                .idle_in_protocol
                                .set(frame.body.first() == Some(&b'I'));
                        } else if check_errors && frame.tag == b'E' {
                            if let Some(replacement) =
                                context.refusals.borrow_mut().rewrite_error(frame)
                            {
                                let start = frame.body.as_ptr() as usize - base - HEADER_BYTES;
                                rewrites.push((start, start + frame.wire_len(), replacement));
                            }
                        }
                    }
                    Err(e) => {
                        violation = Some(e);
                        break;
                    }
                }
            }
            let consumed = framed.consumed();
            if consumed > 0 {
                let raw = buffer.split_to(consumed);
                let chunk = if rewrites.is_empty() {
                    raw
                } else {
                    let mut out = BytesMut::with_capacity(raw.len());
                    let mut at = 0;
                    for (start, end, replacement) in rewrites {
                        out.extend_from_slice(&raw[at..start]);
                        out.extend_from_slice(&replacement);
                        at = end;
                    }
                    out.extend_from_slice(&raw[at..]);
                    out
                };
                // masking: what the agent receives (and the ledger records)
                // is the masked chunk.
                let chunk = match &context.masking {
                    None => chunk,
                    Some(masking) => masking
                        .borrow_mut()
                        .mask_chunk(chunk)
                        .map_err(|f| masking_failure(f, Phase::Proxy))?,
                }
                .freeze();
                let counters = &context.counters;
                counters.server_chunks.set(counters.server_chunks.get() + 1);
                counters
                    .server_bytes
                    .set(counters.server_bytes.get() + chunk.len() as u64);
                context
                    .metrics
                    .worker(context.worker_index)
                    .bytes_to_agents
                    .add(chunk.len() as u64);
                record_delivery(&context, &chunk).await;
                if let Err(e) = client.write(chunk).await {
                    return Err(Failure::silent(
                        ErrorSource::Downstream,
                        Phase::Proxy,
                        format!("agent write failed: {e}"),
                    ));
                }
            }
            if let Some(e) = violation {
                return Err(Failure::new(
                    ErrorSource::Upstream,
                    Phase::Proxy,
                    sqlstate::PROTOCOL_VIOLATION,
                    format!("invalid message from upstream: {e}"),
                ));
            }
            if !read_more_proxied(&mut reader, &mut buffer, &control, ErrorSource::Upstream).await?
            {
                return Ok(());
            }
        }
    }
    .await;
    control.upstream_fd.set(None);
    // The upstream is gone (or misbehaved): the agent's reader must wake up.
    if let Err(failure) = &result {
        if let Some((code, message)) = &failure.reply {
            reply_fatal(&client, code, message, failure.hint).await;
        }
    }
    client.close().await;
    client.abort();
    result
}
