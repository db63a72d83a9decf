#![allow(dead_code)]

use sluice_ledger::record::{Record, RecordBody, SessionId};
use sluice_ledger::writer::Clock;
use sluice_ledger::{SignerKey, WriterConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub const ORIGIN: &str = "test.sluice.example/ledger";

/// Deriving an Ed25519 public key takes ~10 ms in debug builds: derive each test key once.
pub fn key() -> SignerKey {
    static KEY: std::sync::OnceLock<SignerKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| SignerKey::from_seed(ORIGIN, [42u8; 32]).unwrap())
        .clone()
}

pub fn other_key() -> SignerKey {
    static KEY: std::sync::OnceLock<SignerKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| SignerKey::from_seed(ORIGIN, [43u8; 32]).unwrap())
        .clone()
}

/// A clock the test moves by hand.
#[derive(Clone)]
pub struct ManualClock(pub Arc<AtomicU64>);

impl ManualClock {
    pub fn new() -> Self {
        ManualClock(Arc::new(AtomicU64::new(1_700_000_000_000_000_000)))
    }
    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms * 1_000_000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub fn small_config() -> WriterConfig {
    let mut config = WriterConfig::new(ORIGIN);
    config.segment_bytes_max = 1024;
    config.block_bytes_target = 512;
    config.checkpoint_interval_records = 10;
    // Small enough that crash and tamper states cover the zeros the writer
    // keeps ahead of its frames.
    config.preallocate_bytes = 200;
    config
}

pub fn session(n: u8) -> SessionId {
    SessionId([n; 16])
}

/// One record of every kind, for session `s`, with sequence numbers from `first`.
pub fn every_kind(s: u8, first: u64, message_bytes: usize) -> Vec<Record> {
    let bodies = vec![
        RecordBody::SessionOpened {
            agent_identity: "agent:reporting-bot".into(),
            auth_method: "scram-sha-256".into(),
            client_address: "127.0.0.1:5555".into(),
            tls_version: "TLSv1.3".into(),
            tls_cipher: "TLS_AES_128_GCM_SHA256".into(),
            client_certificate_fingerprint: "ab".repeat(32),
            target: "postgres://db/prod".into(),
        },
        RecordBody::ClientMessage {
            bytes: (0..message_bytes).map(|i| (i % 251) as u8).collect(),
        },
        RecordBody::PolicyDecision {
            statement: "SELECT * FROM users WHERE \"x\" = '\u{e9}'\n".into(),
            decision: "allow".into(),
            rule: "read-only".into(),
            reason: "".into(),
        },
        RecordBody::MaskingSummary {
            values_masked: 3,
            rules: "email,ssn".into(),
        },
        RecordBody::ServerMessage {
            bytes: b"DataRow ...".to_vec(),
        },
        RecordBody::ServerMessageDigest {
            length_bytes: 1 << 20,
            sha256: [9u8; 32],
        },
        RecordBody::ApprovalEvent {
            approval_id: "ap-1".into(),
            approver: "alice".into(),
            outcome: "approved".into(),
            detail: "ok".into(),
        },
        RecordBody::SessionClosed {
            statements: 1,
            client_messages: 1,
            server_messages: 2,
            client_bytes: message_bytes as u64,
            server_bytes: 11,
            denied_statements: 0,
            reason: "client terminated".into(),
        },
    ];
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| Record {
            session: session(s),
            sequence: first + i as u64,
            timestamp_ns: 1_700_000_000_000_000_000 + i as u64 * 1000,
            body,
        })
        .collect()
}
