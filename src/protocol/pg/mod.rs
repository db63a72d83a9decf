//! PostgreSQL frontend/backend protocol 3.x codec.
//!
//! The codec is split the way the session uses it:
//!
//! * [`frame`] cuts a byte stream into tagged messages (and, through
//!   [`startup`], into the untagged packets of the startup phase) without
//!   copying anything.
//! * [`frontend`] and [`backend`] turn one frame into a typed, borrowing view
//!   of the message. Parsing validates the whole message up front, so the
//!   iterators handed out afterwards never meet malformed data.
//! * [`build`] appends complete wire messages to a caller's `BytesMut`.
//! * [`sqlstate`] names the SQLSTATE codes sluice reports itself.
//! * [`fuzz`] holds the fuzzing entry points, kept in the library so the
//!   cargo-fuzz targets stay trivial and the invariants are compiled (and
//!   type-checked) with the rest of the crate.
//!
//! Nothing here performs I/O or allocates per message on the hot path.

// The parsers read attacker-controlled bytes, so indexing, unwrapping and
// explicit panics are denied there mechanically rather than by review alone.
// (Unit tests may still unwrap; the builders document their only panics; the
// fuzz harness panics on purpose.)
#[cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]
pub mod backend;
pub mod build;
#[cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]
mod cursor;
pub mod error;
#[cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]
pub mod frame;
#[cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]
pub mod frontend;
pub mod fuzz;
pub mod sqlstate;
#[cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]
pub mod startup;
#[cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]
pub mod types;

pub use backend::{
    parse_backend, Authentication, BackendMessage, FieldDescription, Fields, RowFields,
};
pub use build::Severity;
pub use error::ParseError;
pub use frame::{frames, needed_bytes, next_frame, Frame, FrameError, Frames, HEADER_BYTES};
pub use frontend::{parse_frontend, parse_sasl_initial_response, FrontendMessage};
pub use startup::{
    looks_like_tls_client_hello, next_startup_packet, StartupError, StartupPacket,
    StartupParameters, STARTUP_PACKET_BYTES_MAX,
};
pub use types::{FormatCode, FormatCodes, Oids, StrList, TargetKind, TransactionStatus, Values};
