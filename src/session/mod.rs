//! Per-protocol session loops. Each session runs on the worker that accepted
//! it, through these named phases (the same names appear in logs as `phase`):
//!
//! 1. `negotiate`: plaintext SSLRequest / GSSENCRequest / CancelRequest, or
//!    direct TLS detected from the first byte.
//! 2. `handshake`: TLS with the agent (rustls).
//! 3. `startup`: the StartupMessage inside TLS.
//! 4. `authenticate`: the agent's identity (SCRAM-SHA-256 token, mTLS, or both).
//! 5. `connect_upstream`: TCP/TLS to the target and authentication with
//!    sluice's own credential.
//! 6. `proxy`: both directions framed message by message.
//! 7. `close`.

pub mod masking;
pub mod pg;
pub mod policy;
pub mod refusal;

pub use pg::run;

/// Where an error came from, as pingora tags them: the agent side, the
/// database side, or sluice itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    Downstream,
    Upstream,
    Internal,
}

impl ErrorSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorSource::Downstream => "downstream",
            ErrorSource::Upstream => "upstream",
            ErrorSource::Internal => "internal",
        }
    }
}

/// The pipeline phases, named once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Negotiate,
    Handshake,
    Startup,
    Authenticate,
    ConnectUpstream,
    Proxy,
    Close,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Negotiate => "negotiate",
            Phase::Handshake => "handshake",
            Phase::Startup => "startup",
            Phase::Authenticate => "authenticate",
            Phase::ConnectUpstream => "connect_upstream",
            Phase::Proxy => "proxy",
            Phase::Close => "close",
        }
    }
}
