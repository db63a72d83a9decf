//! sluice-loadgen: a thread-per-core load generator for PostgreSQL and
//! HTTP/1.1, with minimal mock backends for both protocols.
//!
//! The pieces, in the order a run uses them:
//!
//! - [`cli`]: arguments, their bounds and validation (bad arguments exit 2).
//! - [`pg_url`] and [`http_url`]: where the load goes.
//! - [`runtime`]: one monoio runtime per thread (io_uring, or the legacy
//!   epoll driver where io_uring is unavailable), optional CPU pinning.
//! - [`schedule`]: closed loop (as fast as responses come back) or open
//!   loop (a fixed rate, latency measured from each request's intended
//!   start time so that coordinated omission cannot hide stalls).
//! - [`driver`]: one connection's request/response exchange with
//!   pipelining, shared by both protocols.
//! - [`pg_client`] and [`http_client`]: the protocol halves: request
//!   builders and sans-IO response scanners.
//! - [`stats`]: HDR histograms, the live progress line, the summary table
//!   and `--json`.
//! - [`backend_pg`] and [`backend_http`]: mock servers that isolate the
//!   cost of a proxy from the cost of a real database.
//! - [`fuzz`]: fuzzing entry points for every parser in this crate.

pub mod backend_http;
pub mod backend_pg;
pub mod cli;
pub mod driver;
pub mod fuzz;
pub mod http_client;
pub mod http_url;
pub mod http_wire;
pub mod load;
pub mod pg_client;
pub mod pg_url;
pub mod runtime;
pub mod schedule;
pub mod stats;
