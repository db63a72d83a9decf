//! The upstream side of a session: connect to the target database, negotiate
//! TLS, and authenticate with the credential sluice holds (SCRAM-SHA-256,
//! md5, cleartext or trust). The agent never sees that credential, and no
//! error produced here contains it.

use std::{net::SocketAddr, time::Duration};

use bytes::{Bytes, BytesMut};
use monoio::net::TcpStream;

use crate::{
    auth::{
        md5::md5_password,
        scram::{ChannelBinding, ScramClient, SCRAM_SHA_256},
    },
    cancel::CancelTarget,
    config::Target,
    protocol::pg::{
        backend::{parse_backend, Authentication, BackendMessage},
        build,
        frame::Frame,
        startup::PROTOCOL_VERSION_3_0,
    },
    tls::UpstreamTls,
    transport::{self, ReadMessageError, TransportReader, TransportWriter},
};

/// Addresses tried for one target host name.
const RESOLVED_ADDRESSES_MAX: usize = 8;
/// Startup-phase messages from the server are small; anything larger is a
/// misbehaving upstream.
const STARTUP_MESSAGE_BYTES_MAX: usize = 64 * 1024;
/// Bound on ParameterStatus/Notice messages relayed during startup.
const STARTUP_RELAY_BYTES_MAX: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("timed out after {timeout_ms} ms connecting and authenticating to {address}")]
    Timeout { address: String, timeout_ms: u64 },
    #[error("the server at {address} does not accept TLS, but the target requires it")]
    TlsRefused { address: SocketAddr },
    #[error("TLS with {address} failed: {source}")]
    Tls {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("upstream authentication failed ({sqlstate}): {message}")]
    AuthenticationRejected { sqlstate: String, message: String },
    #[error("upstream asks for a password but the target has none configured")]
    PasswordMissing,
    #[error("upstream asks for an unsupported authentication method ({method})")]
    UnsupportedAuthentication { method: &'static str },
    #[error("upstream SCRAM exchange failed: {0}")]
    Scram(#[from] crate::auth::scram::ScramError),
    #[error("upstream refused the session ({sqlstate}): {message}")]
    Refused { sqlstate: String, message: String },
    #[error("upstream protocol violation: {0}")]
    Protocol(String),
    #[error("upstream I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("upstream closed the connection during startup")]
    Closed,
}

impl From<ReadMessageError> for UpstreamError {
    fn from(e: ReadMessageError) -> Self {
        match e {
            ReadMessageError::Io(e) => UpstreamError::Io(e),
            ReadMessageError::Frame(e) => UpstreamError::Protocol(e.to_string()),
            ReadMessageError::Closed => UpstreamError::Closed,
        }
    }
}

/// An authenticated upstream connection, ready for the proxy phase.
pub struct Upstream {
    pub reader: TransportReader,
    pub writer: TransportWriter,
    pub address: SocketAddr,
    pub process_id: u32,
    pub secret_key: Vec<u8>,
    /// ParameterStatus and NoticeResponse messages to relay to the agent, as received.
    pub relay: BytesMut,
    /// The server's first ReadyForQuery, as received.
    pub ready_for_query: Bytes,
    /// Bytes that arrived after ReadyForQuery (normally none).
    pub leftover: BytesMut,
}

async fn resolve(target: &Target) -> Result<Vec<SocketAddr>, UpstreamError> {
    let host = target.host.clone();
    let port = target.port;
    // A literal needs no resolver.
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    // getaddrinfo blocks: run it on its own thread so the worker's other
    // sessions keep going, and poll for the answer on a timer. The caller's
    // connect timeout bounds the wait.
    let (sender, receiver) = std::sync::mpsc::channel();
    let lookup_host = host.clone();
    std::thread::Builder::new()
        .name("sluice-resolve".into())
        .spawn(move || {
            use std::net::ToSocketAddrs;
            let answer = (lookup_host.as_str(), port)
                .to_socket_addrs()
                .map(|addresses| addresses.take(RESOLVED_ADDRESSES_MAX).collect::<Vec<_>>());
            let _ = sender.send(answer);
        })
        .map_err(|e| UpstreamError::Resolve {
            host: host.clone(),
            reason: format!("cannot start a resolver thread: {e}"),
        })?;
    loop {
        match receiver.try_recv() {
            Ok(Ok(addresses)) if !addresses.is_empty() => return Ok(addresses),
            Ok(Ok(_)) => {
                return Err(UpstreamError::Resolve {
                    host,
                    reason: "no addresses".into(),
                })
            }
            Ok(Err(e)) => {
                return Err(UpstreamError::Resolve {
                    host,
                    reason: e.to_string(),
                })
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                monoio::time::sleep(Duration::from_millis(1)).await
            }
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                return Err(UpstreamError::Resolve {
                    host,
                    reason: "the resolver thread failed".into(),
                })
            }
        }
    }
}

/// Opens a TCP (and if configured TLS) connection to `address`.
async fn open(
    address: SocketAddr,
    tls: Option<&UpstreamTls>,
    read_buffer_bytes: usize,
) -> Result<(TransportReader, TransportWriter, BytesMut), UpstreamError> {
    let stream = TcpStream::connect_addr(address)
        .await
        .map_err(|source| UpstreamError::Connect { address, source })?;
    stream.set_nodelay(true)?;
    let (mut reader, writer) = transport::plain(stream, read_buffer_bytes);
    let mut buffer = BytesMut::with_capacity(1024);
    if let Some(tls) = tls {
        let mut request = BytesMut::new();
        build::ssl_request(&mut request);
        writer.write(request.freeze()).await?;
        if !reader.read_at_least(&mut buffer, 1).await? {
            return Err(UpstreamError::Closed);
        }
        match buffer[0] {
            b'S' => {}
            b'N' => return Err(UpstreamError::TlsRefused { address }),
            other => {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected byte {other:#04x} in answer to SSLRequest"
                )))
            }
        }
        if buffer.len() > 1 {
            // Bytes after 'S' before the handshake would be injected plaintext
            // (CVE-2021-23222); refuse them.
            return Err(UpstreamError::Protocol(
                "data after the SSLRequest answer, before the TLS handshake".into(),
            ));
        }
        buffer.clear();
        let connection = rustls::ClientConnection::new(tls.config.clone(), tls.server_name.clone())
            .map_err(|e| UpstreamError::Tls {
                address,
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            })?;
        reader
            .handshake(&writer, connection.into(), &[])
            .await
            .map_err(|source| UpstreamError::Tls { address, source })?;
    }
    Ok((reader, writer, buffer))
}

/// Connects and authenticates to a target within `timeout`.
pub async fn connect(
    target: &Target,
    tls: Option<&UpstreamTls>,
    parameters: &[(&str, &str)],
    timeout: Duration,
    read_buffer_bytes: usize,
) -> Result<Upstream, UpstreamError> {
    let attempt = async {
        // Like libpq, try every address the name resolves to, in order.
        let mut last_error = None;
        let mut opened = None;
        for address in resolve(target).await? {
            match open(address, tls, read_buffer_bytes).await {
                Ok(connection) => {
                    opened = Some((address, connection));
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        let Some((address, (mut reader, writer, mut buffer))) = opened else {
            return Err(last_error.unwrap_or(UpstreamError::Closed));
        };
        let mut startup_parameters: Vec<(&str, &str)> = vec![
            ("user", target.user.as_str()),
            ("database", target.database.as_str()),
        ];
        startup_parameters.extend_from_slice(parameters);
        let mut out = BytesMut::new();
        build::startup_message(&mut out, PROTOCOL_VERSION_3_0, &startup_parameters);
        writer.write(out.split().freeze()).await?;
        authenticate(target, &mut reader, &writer, &mut buffer).await?;
        finish_startup(reader, writer, buffer, address).await
    };
    match monoio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(UpstreamError::Timeout {
            address: format!("{}:{}", target.host, target.port),
            timeout_ms: timeout.as_millis() as u64,
        }),
    }
}

fn parse(message: &Bytes) -> Result<BackendMessage<'_>, UpstreamError> {
    let frame = Frame {
        tag: message[0],
        body: &message[5..],
    };
    parse_backend(frame).map_err(|e| UpstreamError::Protocol(e.to_string()))
}

fn error_fields(message: &BackendMessage<'_>) -> (String, String) {
    match message {
        BackendMessage::ErrorResponse(fields) => (
            fields.sqlstate().unwrap_or("XX000").to_string(),
            String::from_utf8_lossy(fields.message().unwrap_or(b"")).into_owned(),
        ),
        _ => ("XX000".into(), "unexpected message".into()),
    }
}

pub async fn authenticate(
    target: &Target,
    reader: &mut TransportReader,
    writer: &TransportWriter,
    buffer: &mut BytesMut,
) -> Result<(), UpstreamError> {
    let mut scram: Option<ScramClient> = None;
    loop {
        let message = reader
            .read_message(buffer, STARTUP_MESSAGE_BYTES_MAX)
            .await?;
        let parsed = parse(&message)?;
        let mut out = BytesMut::new();
        match parsed {
            BackendMessage::Authentication(Authentication::Ok) => {
                // Once SCRAM started, the server must have proven that it
                // knows the verifier (SASLFinal) before it is trusted.
                if scram.as_ref().is_some_and(|c| !c.is_authenticated()) {
                    return Err(UpstreamError::Protocol(
                        "AuthenticationOk before the SCRAM exchange completed".into(),
                    ));
                }
                return Ok(());
            }
            BackendMessage::Authentication(Authentication::CleartextPassword) => {
                let password = target
                    .password
                    .as_ref()
                    .ok_or(UpstreamError::PasswordMissing)?;
                build::password_message(&mut out, password.expose().as_bytes());
            }
            BackendMessage::Authentication(Authentication::Md5Password { salt }) => {
                let password = target
                    .password
                    .as_ref()
                    .ok_or(UpstreamError::PasswordMissing)?;
                let hashed = md5_password(&target.user, password.expose().as_bytes(), salt);
                build::password_message(&mut out, hashed.as_bytes());
            }
            BackendMessage::Authentication(Authentication::Sasl { mechanisms }) => {
                let password = target
                    .password
                    .as_ref()
                    .ok_or(UpstreamError::PasswordMissing)?;
                let mut offered = mechanisms;
                if !offered.any(|m| m == SCRAM_SHA_256) {
                    return Err(UpstreamError::UnsupportedAuthentication {
                        method: "SASL without SCRAM-SHA-256",
                    });
                }
                // Plain SCRAM-SHA-256 without channel binding: the upstream
                // TLS session (when configured) is already verified by
                // certificate, which is what channel binding would add.
                let mut client =
                    ScramClient::new(password.expose(), SCRAM_SHA_256, ChannelBinding::None)?;
                let first = client.client_first();
                build::sasl_initial_response(&mut out, SCRAM_SHA_256, Some(&first));
                scram = Some(client);
            }
            BackendMessage::Authentication(Authentication::SaslContinue { data }) => {
                let client = scram
                    .as_mut()
                    .ok_or_else(|| UpstreamError::Protocol("SASLContinue without SASL".into()))?;
                let response = client.handle_server_first(data)?;
                build::sasl_response(&mut out, &response);
            }
            BackendMessage::Authentication(Authentication::SaslFinal { data }) => {
                let client = scram
                    .as_mut()
                    .ok_or_else(|| UpstreamError::Protocol("SASLFinal without SASL".into()))?;
                // The server must prove it knows the verifier before the
                // session is trusted.
                client.handle_server_final(data)?;
                continue;
            }
            BackendMessage::Authentication(Authentication::KerberosV5) => {
                return Err(UpstreamError::UnsupportedAuthentication {
                    method: "Kerberos V5",
                })
            }
            BackendMessage::Authentication(
                Authentication::Gss | Authentication::GssContinue { .. },
            ) => return Err(UpstreamError::UnsupportedAuthentication { method: "GSSAPI" }),
            BackendMessage::Authentication(Authentication::Sspi) => {
                return Err(UpstreamError::UnsupportedAuthentication { method: "SSPI" })
            }
            BackendMessage::ErrorResponse(_) => {
                let (sqlstate, message) = error_fields(&parsed);
                return Err(if sqlstate.starts_with("28") {
                    UpstreamError::AuthenticationRejected { sqlstate, message }
                } else {
                    UpstreamError::Refused { sqlstate, message }
                });
            }
            BackendMessage::NegotiateProtocolVersion { .. } | BackendMessage::NoticeResponse(_) => {
                continue
            }
            _ => {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected message {:?} during authentication",
                    message[0] as char
                )))
            }
        }
        writer.write(out.freeze()).await?;
    }
}

pub async fn finish_startup(
    mut reader: TransportReader,
    writer: TransportWriter,
    mut buffer: BytesMut,
    address: SocketAddr,
) -> Result<Upstream, UpstreamError> {
    let mut relay = BytesMut::new();
    let mut key: Option<(u32, Vec<u8>)> = None;
    loop {
        let message = reader
            .read_message(&mut buffer, STARTUP_MESSAGE_BYTES_MAX)
            .await?;
        let parsed = parse(&message)?;
        match parsed {
            BackendMessage::ParameterStatus { .. } | BackendMessage::NoticeResponse(_) => {
                if relay.len() + message.len() > STARTUP_RELAY_BYTES_MAX {
                    return Err(UpstreamError::Protocol(
                        "too many startup parameter messages".into(),
                    ));
                }
                relay.extend_from_slice(&message);
            }
            BackendMessage::BackendKeyData {
                process_id,
                secret_key,
            } => key = Some((process_id, secret_key.to_vec())),
            BackendMessage::ReadyForQuery { .. } => {
                let (process_id, secret_key) = key.ok_or_else(|| {
                    UpstreamError::Protocol("ReadyForQuery before BackendKeyData".into())
                })?;
                return Ok(Upstream {
                    reader,
                    writer,
                    address,
                    process_id,
                    secret_key,
                    relay,
                    ready_for_query: message,
                    leftover: buffer,
                });
            }
            BackendMessage::ErrorResponse(_) => {
                let (sqlstate, message) = error_fields(&parsed);
                return Err(UpstreamError::Refused { sqlstate, message });
            }
            _ => {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected message {:?} after authentication",
                    message[0] as char
                )))
            }
        }
    }
}

/// Forwards a cancel request to the upstream session behind `target`.
pub async fn send_cancel(target: &CancelTarget, timeout: Duration) -> Result<(), UpstreamError> {
    let attempt = async {
        let (_reader, writer, _) =
            open(target.upstream_address, target.upstream_tls.as_ref(), 4096).await?;
        let mut out = BytesMut::new();
        build::cancel_request(
            &mut out,
            target.upstream_process_id,
            &target.upstream_secret_key,
        );
        writer.write(out.freeze()).await?;
        writer.close().await;
        Ok(())
    };
    match monoio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(UpstreamError::Timeout {
            address: target.upstream_address.to_string(),
            timeout_ms: timeout.as_millis() as u64,
        }),
    }
}
