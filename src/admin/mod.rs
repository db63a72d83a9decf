//! The admin listener: approvers' HTTP/1.1 API over TLS, health and
//! Prometheus metrics, separate from the agent listener.
//!
//! It runs on its own threads, off the data path: one accept thread, and
//! one short-lived thread per connection, at most `admin.connections_max`
//! at a time (more are closed at accept and counted). Each connection
//! serves one request (`Connection: close`) within
//! `admin.request_timeout_ms`, bounded by `admin.request_bytes_max` and
//! `admin.headers_max`.
//!
//! Endpoints:
//!
//! - `GET /healthz` (no authentication)
//! - `GET /metrics` (Prometheus text format)
//! - `GET /v1/approvals`, `GET /v1/approvals/{id}`
//! - `POST /v1/approvals/{id}/approve`, `POST /v1/approvals/{id}/deny` with
//!   an optional JSON body `{"reason": "...", "window_ms": 600000}`
//!
//! Everything except `/healthz` needs `Authorization: Bearer <token>` with
//! an approver's token (stored hashed as `[[approvers]].token_hash`). A
//! missing or wrong token gets 401; an approver outside a request's
//! approver group gets 403. Every error has a JSON body.

pub mod cli;
pub mod client;
pub mod fuzz;
pub mod http;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::{
    approvals::{config::AdminConfig, ApprovalRegistry, Approver, DecideError, Verdict},
    auth::token::ScramVerifier,
    metrics::{Metrics, ServiceMetrics},
};
use http::{HttpError, Request, RequestLimits};

/// How often the accept loop looks at the shutdown flag.
const ACCEPT_POLL_MS: i32 = 100;

/// What the admin threads share.
pub struct AdminState {
    pub config: AdminConfig,
    pub registry: Arc<ApprovalRegistry>,
    pub metrics: Arc<Metrics>,
    pub shutdown: Arc<AtomicBool>,
    connections: AtomicUsize,
    verified_tokens: VerifiedTokens,
}

/// Verified tokens remembered; the map is emptied when it fills up.
const VERIFIED_TOKENS_MAX: usize = 1024;

/// Tokens that verified before, by SHA-256 digest, with their approver's
/// index. Without it every request paid one PBKDF2 derivation per
/// configured approver (4,096 rounds each). Only tokens that verified are
/// remembered, so a fast answer needs a valid token; any other token takes
/// the full check ([`authenticate`]).
#[derive(Default)]
struct VerifiedTokens(std::sync::Mutex<std::collections::HashMap<[u8; 32], usize>>);

impl VerifiedTokens {
    fn approver<'a>(&self, token: &str, approvers: &'a [Approver]) -> Option<&'a Approver> {
        use sha2::Digest as _;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let remembered = self.lock().get(&digest).copied();
        if let Some(index) = remembered {
            return approvers.get(index);
        }
        let approver = authenticate(token, approvers)?;
        let index = approvers
            .iter()
            .position(|a| std::ptr::eq(a, approver))
            .expect("the approver comes from this list");
        let mut verified = self.lock();
        if verified.len() >= VERIFIED_TOKENS_MAX {
            verified.clear();
        }
        verified.insert(digest, index);
        Some(approver)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<[u8; 32], usize>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running admin listener.
pub struct AdminHandle {
    pub local_addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl AdminHandle {
    /// Waits for the accept thread (after the shutdown flag is set).
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin TLS: {0}")]
    Tls(#[from] crate::tls::TlsSetupError),
    #[error("cannot listen on {address} (admin.listen): {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the admin thread: {0}")]
    Thread(std::io::Error),
}

fn server_tls(config: &AdminConfig) -> Result<Arc<ServerConfig>, crate::tls::TlsSetupError> {
    let certs = crate::tls::load_certificates(&config.admin.cert_file)?;
    let key = crate::tls::load_private_key(&config.admin.key_file)?;
    let mut server = ServerConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

/// Loads the admin certificate and key as `start` would (for check-config).
pub fn check_tls(config: &AdminConfig) -> Result<(), crate::tls::TlsSetupError> {
    server_tls(config).map(|_| ())
}

/// Binds the admin listener and starts its accept thread.
pub fn start(
    config: AdminConfig,
    registry: Arc<ApprovalRegistry>,
    metrics: Arc<Metrics>,
    shutdown: Arc<AtomicBool>,
) -> Result<AdminHandle, AdminError> {
    let tls = server_tls(&config)?;
    let address = config.admin.listen;
    let listener =
        TcpListener::bind(address).map_err(|source| AdminError::Listen { address, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| AdminError::Listen { address, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| AdminError::Listen { address, source })?;
    let state = Arc::new(AdminState {
        config,
        registry,
        metrics,
        shutdown,
        connections: AtomicUsize::new(0),
        verified_tokens: VerifiedTokens::default(),
    });
    let thread = std::thread::Builder::new()
        .name("sluice-admin".into())
        .spawn(move || accept_loop(listener, tls, state))
        .map_err(AdminError::Thread)?;
    tracing::info!(phase = "start", address = %local_addr, "admin listener (approvals, /metrics, /healthz) over TLS");
    Ok(AdminHandle {
        local_addr,
        thread: Some(thread),
    })
}

fn wait_readable(listener: &TcpListener, timeout_ms: i32) {
    let mut poll = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe {
        libc::poll(&mut poll, 1, timeout_ms);
    }
}

struct ConnectionSlot(Arc<AdminState>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(listener: TcpListener, tls: Arc<ServerConfig>, state: Arc<AdminState>) {
    while !state.shutdown.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if state.connections.fetch_add(1, Ordering::SeqCst)
                    >= state.config.admin.connections_max
                {
                    state.connections.fetch_sub(1, Ordering::SeqCst);
                    ServiceMetrics::bump(&state.metrics.service.admin_rejected_connections);
                    tracing::warn!(phase = "admin", %peer, "admin.connections_max reached: connection closed");
                    drop(stream);
                    continue;
                }
                let slot = ConnectionSlot(state.clone());
                let tls = tls.clone();
                let spawned = std::thread::Builder::new()
                    .name("sluice-admin-conn".into())
                    .spawn(move || {
                        let state = slot.0.clone();
                        serve_connection(stream, peer, tls, &state);
                        drop(slot);
                    });
                if let Err(e) = spawned {
                    tracing::warn!(
                        phase = "admin",
                        source = "internal",
                        "cannot start a connection thread: {e}"
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                wait_readable(&listener, ACCEPT_POLL_MS);
            }
            Err(e) => {
                tracing::warn!(phase = "admin", error = %e, "admin accept failed");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A stream whose reads stop at an overall deadline.
fn set_deadline(stream: &TcpStream, deadline: Instant) -> std::io::Result<()> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "admin.request_timeout_ms elapsed",
        ));
    }
    stream.set_read_timeout(Some(remaining))?;
    stream.set_write_timeout(Some(remaining))
}

fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Arc<ServerConfig>,
    state: &AdminState,
) {
    let settings = &state.config.admin;
    let deadline = Instant::now() + Duration::from_millis(settings.request_timeout_ms);
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    if set_deadline(&stream, deadline).is_err() {
        return;
    }
    let Ok(connection) = ServerConnection::new(tls) else {
        return;
    };
    let mut tls_stream = StreamOwned::new(connection, stream);
    let limits = RequestLimits {
        request_bytes_max: settings.request_bytes_max,
        headers_max: settings.headers_max,
    };
    let mut data = Vec::with_capacity(2048);
    let mut chunk = [0u8; 8192];
    let parsed = loop {
        match http::parse_request(&data, limits) {
            Ok(Some((request, _))) => break Ok(request),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        if set_deadline(&tls_stream.sock, deadline).is_err() {
            break Err(HttpError::new(
                408,
                "the request did not arrive within admin.request_timeout_ms",
            ));
        }
        match tls_stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                let room =
                    settings.request_bytes_max + 1 - data.len().min(settings.request_bytes_max);
                data.extend_from_slice(&chunk[..n.min(room)]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break Err(HttpError::new(
                    408,
                    "the request did not arrive within admin.request_timeout_ms",
                ));
            }
            // TLS handshake failures and resets: nothing can be answered.
            Err(e) => {
                tracing::debug!(phase = "admin", %peer, source = "downstream", "admin connection: {e}");
                return;
            }
        }
    };
    ServiceMetrics::bump(&state.metrics.service.admin_requests);
    let response = match parsed {
        Ok(request) => {
            let response = route(&request, state);
            tracing::info!(phase = "admin", %peer, method = %request.method, path = %request.path, status = response_status(&response), "admin request");
            response
        }
        Err(e) => {
            tracing::info!(phase = "admin", %peer, source = "downstream", status = e.status, "admin request refused: {}", e.message);
            http::error_response(&e, &[])
        }
    };
    if set_deadline(&tls_stream.sock, deadline + Duration::from_secs(1)).is_ok() {
        let _ = tls_stream.write_all(&response);
        let _ = tls_stream.flush();
        tls_stream.conn.send_close_notify();
        let _ = tls_stream.flush();
    }
}

fn response_status(response: &[u8]) -> u16 {
    std::str::from_utf8(&response[..response.len().min(12)])
        .ok()
        .and_then(|s| s.get(9..12))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn json(status: u16, value: &impl serde::Serialize) -> Vec<u8> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
    http::response(status, "application/json", &[], &body)
}

/// The approver whose token this is. Every approver's verifier is checked
/// (no early exit), so timing does not tell which approvers exist.
fn authenticate<'a>(token: &str, approvers: &'a [Approver]) -> Option<&'a Approver> {
    let mut found = None;
    for approver in approvers {
        let candidate =
            ScramVerifier::derive(token, &approver.token.salt, approver.token.iterations);
        if candidate.is_ok_and(|c| c == approver.token) && found.is_none() {
            found = Some(approver);
        }
    }
    found
}

/// Dispatches one request to its endpoint.
pub fn route(request: &Request, state: &AdminState) -> Vec<u8> {
    let path = request.path.split('?').next().unwrap_or("");
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = request.method.as_str();
    let allow = |methods: &'static str| -> Result<(), Vec<u8>> {
        if methods.split(", ").any(|m| m == method) {
            Ok(())
        } else {
            Err(http::error_response(
                &HttpError::new(405, format!("{method} is not allowed here; use {methods}")),
                &[("Allow", methods)],
            ))
        }
    };
    // Known endpoints only; anything else is 404 before authentication.
    let endpoint = match segments.as_slice() {
        ["healthz"] => Endpoint::Health,
        ["metrics"] => Endpoint::Metrics,
        ["v1", "approvals"] => Endpoint::List,
        ["v1", "approvals", id] if !id.is_empty() => Endpoint::Show(id),
        ["v1", "approvals", id, "approve"] if !id.is_empty() => Endpoint::Decide(id, true),
        ["v1", "approvals", id, "deny"] if !id.is_empty() => Endpoint::Decide(id, false),
        _ => return http::error_response(&HttpError::new(404, format!("no endpoint {path}")), &[]),
    };
    let methods = match endpoint {
        Endpoint::Decide(..) => "POST",
        _ => "GET",
    };
    if let Err(response) = allow(methods) {
        return response;
    }
    if let Endpoint::Health = endpoint {
        return json(200, &serde_json::json!({ "status": "ok" }));
    }
    let approver = match &request.bearer {
        Some(token) => state
            .verified_tokens
            .approver(token, &state.config.approvals.approvers),
        None => None,
    };
    let Some(approver) = approver else {
        ServiceMetrics::bump(&state.metrics.service.admin_unauthorized);
        let message = if request.authorization_present {
            "invalid bearer token"
        } else {
            "authentication required: send Authorization: Bearer <approver token>"
        };
        return http::error_response(
            &HttpError::new(401, message),
            &[("WWW-Authenticate", "Bearer realm=\"sluice-admin\"")],
        );
    };
    match endpoint {
        Endpoint::Health => unreachable!("answered above"),
        Endpoint::Metrics => http::response(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            &[],
            state
                .metrics
                .render(state.registry.pending_count())
                .as_bytes(),
        ),
        Endpoint::List => json(
            200,
            &serde_json::json!({ "approvals": state.registry.list() }),
        ),
        Endpoint::Show(id) => match state.registry.get(id) {
            Some(view) => json(200, &view),
            None => http::error_response(
                &HttpError::new(404, format!("no approval with id {id:?}")),
                &[],
            ),
        },
        Endpoint::Decide(id, approve) => {
            let body = match http::parse_decision_body(&request.body) {
                Ok(body) => body,
                Err(e) => return http::error_response(&e, &[]),
            };
            let verdict = if approve {
                Verdict::Approve {
                    reason: body.reason,
                    window_ms: body.window_ms.filter(|w| *w > 0),
                }
            } else {
                if body.window_ms.is_some() {
                    return http::error_response(
                        &HttpError::new(400, "window_ms applies to approve only"),
                        &[],
                    );
                }
                Verdict::Deny {
                    reason: body.reason,
                }
            };
            match state.registry.decide(id, approver, verdict) {
                Ok(view) => {
                    tracing::info!(phase = "approval", approval = %id, approver = %approver.name, outcome = %view.status, "approval decided");
                    json(200, &view)
                }
                Err(e) => {
                    let status = match &e {
                        DecideError::NotFound(_) => 404,
                        DecideError::AlreadyDecided(_) => 409,
                        DecideError::NotInApproverGroup { .. } => {
                            ServiceMetrics::bump(&state.metrics.service.admin_forbidden);
                            403
                        }
                        DecideError::ReasonTooLong | DecideError::WindowTooLong(..) => 400,
                    };
                    http::error_response(&HttpError::new(status, e.to_string()), &[])
                }
            }
        }
    }
}

enum Endpoint<'a> {
    Health,
    Metrics,
    List,
    Show(&'a str),
    Decide(&'a str, bool),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approver(name: &str, token: &str) -> Approver {
        Approver {
            name: name.into(),
            groups: Vec::new(),
            token: crate::auth::token::hash_token(token, 4096),
        }
    }

    #[test]
    fn verified_tokens_are_remembered_and_others_are_not() {
        let approvers = vec![approver("alice", "token-a"), approver("bob", "token-b")];
        let verified = VerifiedTokens::default();
        assert_eq!(
            verified.approver("token-b", &approvers).unwrap().name,
            "bob"
        );
        assert_eq!(verified.lock().len(), 1);
        // The second time comes from the map, and still names bob.
        assert_eq!(
            verified.approver("token-b", &approvers).unwrap().name,
            "bob"
        );
        assert_eq!(verified.lock().len(), 1);
        assert!(verified.approver("token-c", &approvers).is_none());
        assert!(verified.approver("", &approvers).is_none());
        assert_eq!(verified.lock().len(), 1, "wrong tokens are not remembered");
        assert_eq!(
            verified.approver("token-a", &approvers).unwrap().name,
            "alice"
        );
        assert_eq!(verified.lock().len(), 2);
    }
}
