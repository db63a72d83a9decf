//! Entry points for the fuzz targets (`fuzz/fuzz_targets/ledger_*.rs`).
//! Each must return without panicking on any input.

use crate::keys::{SignerKey, VerifierKey};
use crate::note::{Checkpoint, SignedCheckpoint, SignedNote};
use crate::proof::{ConsistencyProof, TlogProof};
use crate::reader::{scan, ScanOptions, StoredRecord};
use crate::segment::segment_file_name;
use crate::storage::SimStorage;

/// The key the fuzz entry points trust (so seeds can carry valid signatures).
pub fn fixed_key() -> SignerKey {
    SignerKey::from_seed(FUZZ_ORIGIN, [7u8; 32]).expect("valid fuzz key")
}

/// The verifier of `fixed_key()`, derived once (key derivation is slow).
fn fixed_verifier() -> &'static VerifierKey {
    static VERIFIER: std::sync::OnceLock<VerifierKey> = std::sync::OnceLock::new();
    VERIFIER.get_or_init(|| fixed_key().verifier())
}

/// Seed inputs for the three targets: (target, file name, bytes). Built from a
/// small ledger written with `fixed_key()`.
pub fn seed_corpus() -> Vec<(&'static str, String, Vec<u8>)> {
    use crate::merkle::{consistency_proof, inclusion_proof};
    use crate::reader::LedgerReader;
    use crate::record::{Record, RecordBody, SessionId};
    use crate::storage::Storage;
    use crate::writer::{LedgerWriter, WriterConfig};
    let storage = SimStorage::new();
    let mut config = WriterConfig::new(FUZZ_ORIGIN);
    config.block_bytes_target = 200;
    config.segment_bytes_max = 1024;
    let (mut writer, _) = LedgerWriter::open(Box::new(storage.clone()), fixed_key(), config)
        .expect("fuzz ledger opens");
    for i in 0..12u64 {
        let body = match i % 4 {
            0 => RecordBody::SessionOpened {
                agent_identity: "agent".into(),
                auth_method: "scram".into(),
                client_address: "127.0.0.1:1".into(),
                tls_version: "TLSv1.3".into(),
                tls_cipher: "AES".into(),
                client_certificate_fingerprint: String::new(),
                target: "db".into(),
            },
            1 => RecordBody::ClientMessage {
                bytes: b"QSELECT 1\0".to_vec(),
            },
            2 => RecordBody::PolicyDecision {
                statement: "SELECT 1".into(),
                decision: "allow".into(),
                rule: "r".into(),
                reason: String::new(),
            },
            _ => RecordBody::SessionClosed {
                statements: 1,
                client_messages: 1,
                server_messages: 1,
                client_bytes: 1,
                server_bytes: 1,
                denied_statements: 0,
                reason: "done".into(),
            },
        };
        writer
            .append(&Record {
                session: SessionId([i as u8 / 4 + 1; 16]),
                sequence: i % 4,
                timestamp_ns: i,
                body,
            })
            .expect("append");
        writer.barrier().expect("barrier");
    }
    writer.close().expect("close");
    let mut seeds = Vec::new();
    for name in storage.list("").expect("list") {
        let bytes = storage.read(&name).expect("read");
        if name.starts_with("segment-00000000000000000001") {
            seeds.push(("ledger_segment", "segment-1".to_string(), bytes));
        } else if name == crate::reader::CHECKPOINT_FILE {
            seeds.push(("ledger_signed_note", "checkpoint".to_string(), bytes));
        }
    }
    let reader = LedgerReader::new(&storage);
    let scanned = reader.leaves().expect("scan");
    let latest = reader.latest_checkpoint(&scanned).expect("checkpoint");
    let size = latest.checkpoint.size as usize;
    let proof = TlogProof {
        extra: None,
        index: 3,
        hashes: inclusion_proof(3, &scanned.leaves[..size]).expect("proof"),
        checkpoint: latest.note.clone().into_bytes(),
    };
    seeds.push((
        "ledger_tlog_proof",
        "inclusion".to_string(),
        proof.encode().into_bytes(),
    ));
    let consistency = ConsistencyProof {
        old_size: 5,
        hashes: consistency_proof(5, &scanned.leaves[..size]).expect("proof"),
        checkpoint: latest.note.into_bytes(),
    };
    seeds.push((
        "ledger_tlog_proof",
        "consistency".to_string(),
        consistency.encode().into_bytes(),
    ));
    // A framed-mode seed: the first segment's frames re-expressed as [kind][length][body].
    if let Some((_, _, segment)) = seeds
        .iter()
        .find(|(t, _, _)| *t == "ledger_segment")
        .cloned()
    {
        let mut framed = FRAMED_MODE_MARKER.to_vec();
        let mut offset = crate::segment::HEADER_BYTES;
        while let Ok((kind, body)) = crate::segment::read_frame(&segment, 1, offset) {
            if body.len() > u16::MAX as usize {
                break;
            }
            framed.push(kind);
            framed.extend_from_slice(&(body.len() as u16).to_le_bytes());
            framed.extend_from_slice(body);
            offset += crate::segment::FRAME_HEADER_BYTES + body.len();
        }
        seeds.push(("ledger_segment", "framed".to_string(), framed));
    }
    seeds.push(("ledger_signed_note", "spec-vector".to_string(), "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n".as_bytes().to_vec()));
    seeds
}

/// Reads `data` as segment 1 of a ledger, with and without torn-tail tolerance.
///
/// If `data` starts with `FRAMED_MODE_MARKER`, the rest is read as
/// `[kind u8][length u16 LE][body]...` and framed with valid CRCs behind a
/// valid header, so the fuzzer reaches block, entry, checkpoint and seal
/// decoding without having to solve CRCs.
pub fn parse_segment(data: &[u8]) {
    if let Some(rest) = data.strip_prefix(FRAMED_MODE_MARKER) {
        scan_segment_bytes(&framed_segment(rest));
    } else {
        scan_segment_bytes(data);
    }
}

/// Marks fuzz input to be framed with valid CRCs (see `parse_segment`).
pub const FRAMED_MODE_MARKER: &[u8] = b"FRAMED:";

/// Origin of the fuzz ledger.
pub const FUZZ_ORIGIN: &str = "fuzz.example/log";

fn framed_segment(mut rest: &[u8]) -> Vec<u8> {
    use crate::segment::{encode_frame, SegmentHeader};
    let header = SegmentHeader {
        sequence: 1,
        first_index: 0,
        created_at_ns: 0,
        previous_link: [0; 32],
        origin: FUZZ_ORIGIN.into(),
    };
    let mut out = header.encode().to_vec();
    while rest.len() >= 3 {
        let kind = rest[0];
        let length = (u16::from_le_bytes([rest[1], rest[2]]) as usize).min(rest.len() - 3);
        let body = &rest[3..3 + length];
        let offset = out.len() as u64;
        encode_frame(&mut out, 1, offset, kind, body);
        rest = &rest[3 + length..];
    }
    out
}

fn scan_segment_bytes(data: &[u8]) {
    let storage = SimStorage::new();
    storage.tamper_replace(&segment_file_name(1), data.to_vec());
    let verifier = [fixed_verifier().clone()];
    for allow_torn_tail in [false, true] {
        let options = ScanOptions {
            verifiers: Some(&verifier),
            allow_torn_tail,
            keep_leaves: true,
            ..ScanOptions::default()
        };
        let _ = scan(
            &storage,
            &options,
            &mut |r| StoredRecord::from_scanned(r).map(|_| ()),
            &mut |_, _| {},
        );
    }
}

/// Parses `data` as a signed note, a checkpoint and a verifier key.
pub fn parse_signed_note(data: &[u8]) {
    let verifier = fixed_verifier();
    if let Ok(note) = SignedNote::parse(data) {
        let _ = note.verify(verifier);
        let _ = Checkpoint::parse(&note.text);
    }
    let _ = SignedCheckpoint::open(data, verifier);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Checkpoint::parse(text);
        let _ = VerifierKey::parse(text);
        let _ = SignerKey::parse_private(text);
    }
}

/// Parses `data` as a tlog-proof and a consistency proof, and verifies them.
pub fn parse_tlog_proof(data: &[u8]) {
    let verifier = fixed_verifier();
    if let Ok(proof) = TlogProof::parse(data) {
        let _ = proof.verify(verifier, b"leaf");
        let _ = TlogProof::parse(proof.encode().as_bytes());
    }
    if let Ok(proof) = ConsistencyProof::parse(data) {
        if let Ok(old) = SignedCheckpoint::parse_unverified(&proof.checkpoint) {
            let _ = proof.verify(verifier, &old);
        }
    }
}
