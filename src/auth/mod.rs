//! Sans-IO authentication primitives.
//!
//! Nothing in this module performs I/O: the session loop feeds the bytes it
//! received from a SASL/password message into these state machines and sends
//! whatever they return. That keeps the cryptography unit-testable and lets
//! the same code serve both the agent-facing side (sluice as SCRAM server,
//! verifying agent tokens) and the upstream side (sluice as SCRAM or md5
//! client, proving the real PostgreSQL credentials the agent never sees).

pub mod md5;
pub mod scram;
pub mod token;
