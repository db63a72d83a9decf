//! sluice: the enforcement point in the data path between AI agents and
//! infrastructure.
//!
//! The data path, in the order bytes travel (see `server` for the stack at
//! a glance):
//!
//! - [`protocol`]: sans-IO protocol codecs (no runtime imports), which frame
//!   and parse messages in place in the read buffers.
//! - [`session`]: the per-protocol session loops (negotiate, handshake,
//!   startup, authenticate, connect_upstream, proxy, close).
//! - [`transport`]: plain TCP or TLS over monoio's owned-buffer I/O.
//! - [`upstream`]: connecting and authenticating to the real database.
//! - [`server`]: the thread-per-core runtime, listeners and shutdown.

pub mod admin;
pub mod approvals;
pub mod auth;
pub mod cancel;
pub mod config;
pub mod demo;
pub mod devenv;
pub mod masking;
pub mod metrics;
pub mod policy;
pub mod protocol;
pub mod recording;
pub mod server;
pub mod session;
pub mod tls;
pub mod transport;
pub mod upstream;
