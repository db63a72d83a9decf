//! Format tests: published vectors, round trips, and rejection of malformed input.

mod common;

use proptest::prelude::*;
use sluice_ledger::error::Error;
use sluice_ledger::keys::{key_id, SignerKey, VerifierKey};
use sluice_ledger::merkle::{
    consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash, root, verify_consistency,
    verify_inclusion, Frontier, Hash,
};
use sluice_ledger::note::{Checkpoint, SignedCheckpoint, SignedNote};
use sluice_ledger::proof::{ConsistencyProof, TlogProof};
use sluice_ledger::record::{Record, RecordBody};
use sluice_ledger::segment::{
    encode_frame, read_frame, FrameDefect, Seal, SealStatement, SegmentHeader, HEADER_BYTES,
};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- C2SP signed-note published test vector ----

const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

#[test]
fn c2sp_signed_note_test_vector_key_id_and_signature() {
    let key = VerifierKey::parse(SPEC_VKEY).unwrap();
    assert_eq!(key.name, "example.com/foo");
    assert_eq!(hex(&key.id), "530d903a");
    assert_eq!(key_id(&key.name, key.public.as_bytes()), key.id);
    assert_eq!(key.to_string(), SPEC_VKEY);
    let note = SignedNote::parse(SPEC_NOTE.as_bytes()).unwrap();
    assert_eq!(note.text, "This is an example message.\n");
    note.verify(&key).unwrap();
}

#[test]
fn c2sp_signed_note_test_vector_rejects_changes() {
    let key = VerifierKey::parse(SPEC_VKEY).unwrap();
    let changed = SPEC_NOTE.replace("example message", "example massage");
    let note = SignedNote::parse(changed.as_bytes()).unwrap();
    assert!(matches!(
        note.verify(&key),
        Err(Error::SignatureInvalid { .. })
    ));
    // A key with another name is unknown: its signatures are ignored, so none verifies.
    let other = SignerKey::from_seed("example.com/bar", [1; 32])
        .unwrap()
        .verifier();
    assert!(matches!(
        SignedNote::parse(SPEC_NOTE.as_bytes())
            .unwrap()
            .verify(&other),
        Err(Error::SignatureMissing { .. })
    ));
    // A wrong key ID in the verifier key string is refused.
    assert!(VerifierKey::parse(&SPEC_VKEY.replace("530d903a", "530d903b")).is_err());
}

#[test]
fn signed_note_round_trip_and_malformed_notes() {
    let key = common::key();
    let other = common::other_key();
    let text = "line one\nline two\n";
    let signed = SignedNote::sign(
        text,
        &[
            &key,
            &SignerKey::from_seed("witness.example", [5; 32]).unwrap(),
        ],
    )
    .unwrap();
    let note = SignedNote::parse(signed.as_bytes()).unwrap();
    assert_eq!(note.text, text);
    assert_eq!(note.signatures.len(), 2);
    note.verify(&key.verifier()).unwrap();
    // Same name, different key: the key ID differs, so no signature by it.
    assert!(matches!(
        note.verify(&other.verifier()),
        Err(Error::SignatureMissing { .. })
    ));
    for bad in [
        "no blank line\n\u{2014} a AAAA\n".to_string(),
        "text\n\n".to_string(),
        "text\n\n\u{2014} name notbase64!\n".to_string(),
        "text\n\n- name AAAAAAAA\n".to_string(),
        "text\n\n\u{2014} name AAAAAAAA".to_string(),
        "te\u{7}xt\n\n\u{2014} name AAAAAAAA\n".to_string(),
        "text\n\n\u{2014} na+me AAAAAAAA\n".to_string(),
        "text\n\n\u{2014} name AAAA\n".to_string(),
    ] {
        assert!(
            SignedNote::parse(bad.as_bytes()).is_err(),
            "accepted {bad:?}"
        );
    }
    assert!(SignedNote::parse(&[0xff, b'\n', b'\n']).is_err());
    assert!(SignedNote::sign("no newline", &[&key]).is_err());
    assert!(SignedNote::sign("blank\n\nline\n", &[&key]).is_err());
}

#[test]
fn checkpoint_round_trip_and_malformed_checkpoints() {
    let key = common::key();
    let checkpoint = Checkpoint {
        origin: common::ORIGIN.into(),
        size: 12345,
        root: [7; 32],
        extensions: vec![],
    };
    let signed = SignedCheckpoint::create(checkpoint.clone(), &key).unwrap();
    let opened = SignedCheckpoint::open(signed.note.as_bytes(), &key.verifier()).unwrap();
    assert_eq!(opened.checkpoint, checkpoint);
    assert_eq!(
        Checkpoint::parse(&checkpoint.to_text()).unwrap(),
        checkpoint
    );
    assert!(matches!(
        SignedCheckpoint::open(signed.note.as_bytes(), &common::other_key().verifier()),
        Err(Error::SignatureMissing { .. })
    ));
    let root = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    for bad in [
        format!("o\n012\n{root}\n"),
        format!("o\n-1\n{root}\n"),
        format!("o\n1\n{root}"),
        format!("\n1\n{root}\n"),
        "o\n1\nAAAA\n".to_string(),
        "o\n1\n".to_string(),
        format!("o\n18446744073709551616\n{root}\n"),
        format!("o\n1\n{root}\n\n"),
    ] {
        assert!(Checkpoint::parse(&bad).is_err(), "accepted {bad:?}");
    }
    assert_eq!(
        Checkpoint::parse(&format!("o\n0\n{root}\next\n"))
            .unwrap()
            .extensions,
        vec!["ext".to_string()]
    );
}

#[test]
fn private_key_round_trip_and_go_format() {
    let key = SignerKey::from_seed("example.org/log", [9; 32]).unwrap();
    let text = key.to_private_string();
    assert!(text.starts_with("PRIVATE+KEY+example.org/log+"));
    let parsed = SignerKey::parse_private(&text).unwrap();
    assert_eq!(parsed.verifier(), key.verifier());
    assert!(SignerKey::parse_private(&text.replace("PRIVATE+KEY", "PUBLIC+KEY")).is_err());
    // The spec key's verifier string round-trips through our parser.
    assert_eq!(
        VerifierKey::parse(&format!("{}\n", key.verifier())).unwrap(),
        key.verifier()
    );
}

#[cfg(unix)]
#[test]
fn private_keys_readable_by_others_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("k.key");
    let public = dir.path().join("k.vkey");
    let key = SignerKey::generate("perm.example").unwrap();
    sluice_ledger::keys::write_key_pair(&key, &private, &public).unwrap();
    assert_eq!(
        std::fs::metadata(&private).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        SignerKey::load(&private).unwrap().verifier(),
        key.verifier()
    );
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(mode)).unwrap();
        assert!(
            matches!(SignerKey::load(&private), Err(Error::KeyPermissions { .. })),
            "mode {mode:o} accepted"
        );
    }
    // keygen never overwrites.
    assert!(sluice_ledger::keys::write_key_pair(&key, &private, &public).is_err());
}

// ---- RFC 6962 ----

fn rfc6962_leaves() -> Vec<Vec<u8>> {
    vec![
        vec![],
        vec![0x00],
        vec![0x10],
        vec![0x20, 0x21],
        vec![0x30, 0x31],
        vec![0x40, 0x41, 0x42, 0x43],
        vec![0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        (0x60..=0x6f).collect(),
    ]
}

#[test]
fn rfc6962_reference_roots() {
    // Roots of the first n of the eight reference inputs (certificate-transparency test data).
    let expected = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let leaves: Vec<Hash> = rfc6962_leaves().iter().map(|l| leaf_hash(l)).collect();
    let mut frontier = Frontier::new();
    for (n, want) in expected.iter().enumerate() {
        frontier.push(leaves[n]);
        assert_eq!(hex(&root(&leaves[..=n])), *want, "root of {} leaves", n + 1);
        assert_eq!(
            hex(&frontier.root()),
            *want,
            "frontier root of {} leaves",
            n + 1
        );
    }
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(empty_root()),
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    );
    assert_eq!(root(&[]), empty_root());
}

#[test]
fn rfc6962_reference_proofs() {
    let leaves: Vec<Hash> = rfc6962_leaves().iter().map(|l| leaf_hash(l)).collect();
    // Inclusion of leaf 0 in the 8-leaf tree: its sibling, then the two right subtree roots.
    let proof = inclusion_proof(0, &leaves).unwrap();
    assert_eq!(
        proof,
        vec![
            leaves[1],
            node_hash(&leaves[2], &leaves[3]),
            root(&leaves[4..8])
        ]
    );
    // Consistency from 6 to 8 (RFC 6962 §2.1.3 example shape: 3 hashes).
    let proof = consistency_proof(6, &leaves).unwrap();
    assert_eq!(
        proof,
        vec![
            node_hash(&leaves[4], &leaves[5]),
            node_hash(&leaves[6], &leaves[7]),
            root(&leaves[..4])
        ]
    );
    verify_consistency(6, 8, &root(&leaves[..6]), &root(&leaves), &proof).unwrap();
    // Consistency from 4 to 8: a single hash.
    assert_eq!(
        consistency_proof(4, &leaves).unwrap(),
        vec![root(&leaves[4..8])]
    );
}

/// Naive reference: recompute everything from the definition.
fn naive_root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return empty_root();
    }
    if leaves.len() == 1 {
        return leaves[0];
    }
    let mut k = 1;
    while k * 2 < leaves.len() {
        k *= 2;
    }
    node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
}

fn leaves_of(n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(&(i as u64).to_le_bytes()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn inclusion_proofs_verify_and_reject_wrong_inputs(n in 1usize..300, index_seed in any::<u64>(), flip in any::<(usize, u8)>()) {
        let leaves = leaves_of(n);
        let index = (index_seed % n as u64) as usize;
        let expected_root = naive_root(&leaves);
        let proof = inclusion_proof(index as u64, &leaves).unwrap();
        prop_assert!(verify_inclusion(index as u64, n as u64, &leaves[index], &proof, &expected_root).is_ok());
        // Wrong leaf, wrong index, wrong size, damaged proof: all rejected.
        let wrong_leaf = leaf_hash(b"not in the tree");
        prop_assert!(verify_inclusion(index as u64, n as u64, &wrong_leaf, &proof, &expected_root).is_err());
        if n > 1 {
            let other = (index + 1) % n;
            prop_assert!(verify_inclusion(other as u64, n as u64, &leaves[index], &proof, &expected_root).is_err());
        }
        let bigger_root = naive_root(&leaves_of(n + 1));
        prop_assert!(verify_inclusion(index as u64, n as u64 + 1, &leaves[index], &proof, &bigger_root).is_err());
        prop_assert!(verify_inclusion(n as u64, n as u64, &leaves[index], &proof, &expected_root).is_err());
        if !proof.is_empty() {
            let mut damaged = proof.clone();
            let (which, bit) = flip;
            damaged[which % proof.len()][(bit % 32) as usize] ^= 1;
            prop_assert!(verify_inclusion(index as u64, n as u64, &leaves[index], &damaged, &expected_root).is_err());
            let mut shorter = proof.clone();
            shorter.pop();
            prop_assert!(verify_inclusion(index as u64, n as u64, &leaves[index], &shorter, &expected_root).is_err());
        }
    }

    #[test]
    fn consistency_proofs_verify_and_reject_wrong_inputs(n in 1usize..300, m_seed in any::<u64>(), flip in any::<(usize, u8)>()) {
        let leaves = leaves_of(n);
        let m = (m_seed % (n as u64 + 1)) as usize;
        let old_root = naive_root(&leaves[..m]);
        let new_root = naive_root(&leaves);
        let proof = consistency_proof(m as u64, &leaves).unwrap();
        prop_assert!(verify_consistency(m as u64, n as u64, &old_root, &new_root, &proof).is_ok());
        // A forked old tree (different last leaf) is not a prefix.
        if m > 0 && m < n {
            let mut forked = leaves[..m].to_vec();
            forked[m - 1] = leaf_hash(b"fork");
            prop_assert!(verify_consistency(m as u64, n as u64, &naive_root(&forked), &new_root, &proof).is_err());
            let mut damaged = proof.clone();
            let (which, bit) = flip;
            let position = which % proof.len();
            damaged[position][(bit % 32) as usize] ^= 1;
            prop_assert!(verify_consistency(m as u64, n as u64, &old_root, &new_root, &damaged).is_err());
            prop_assert!(verify_consistency(n as u64, m as u64, &new_root, &old_root, &proof).is_err());
        }
    }

    #[test]
    fn frontier_matches_naive_root(n in 0usize..600) {
        let leaves = leaves_of(n);
        let mut frontier = Frontier::new();
        for leaf in &leaves {
            frontier.push(*leaf);
        }
        prop_assert_eq!(frontier.root(), naive_root(&leaves));
        prop_assert_eq!(root(&leaves), naive_root(&leaves));
    }

    #[test]
    fn record_payloads_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..2000), text in ".{0,40}", number in any::<u64>()) {
        let bodies = vec![
            RecordBody::ClientMessage { bytes: bytes.clone() },
            RecordBody::ServerMessage { bytes },
            RecordBody::PolicyDecision { statement: text.clone(), decision: "deny".into(), rule: text.clone(), reason: text.clone() },
            RecordBody::MaskingSummary { values_masked: number, rules: text.clone() },
            RecordBody::Recovery { segment_sequence: number, truncated_at_offset: 1, quarantined_bytes: 2, quarantine_file: text.clone(), reason: text },
        ];
        for body in bodies {
            let mut out = Vec::new();
            body.encode_payload(&mut out).unwrap();
            prop_assert_eq!(RecordBody::decode_payload(body.kind(), &out).unwrap(), body.clone());
            // Every strict prefix of a structured payload is rejected (messages are raw bytes).
            if !matches!(body, RecordBody::ClientMessage { .. } | RecordBody::ServerMessage { .. }) && !out.is_empty() {
                prop_assert!(RecordBody::decode_payload(body.kind(), &out[..out.len() - 1]).is_err());
                let mut longer = out.clone();
                longer.push(0);
                prop_assert!(RecordBody::decode_payload(body.kind(), &longer).is_err());
            }
        }
    }
}

#[test]
fn every_kind_of_record_payload_round_trips() {
    for record in common::every_kind(1, 0, 77) {
        let Record { body, .. } = record;
        let mut out = Vec::new();
        body.encode_payload(&mut out).unwrap();
        assert_eq!(RecordBody::decode_payload(body.kind(), &out).unwrap(), body);
    }
    assert!(RecordBody::decode_payload(99, &[]).is_err());
    // Oversized text fields are refused on encode.
    let huge = RecordBody::PolicyDecision {
        statement: "x".repeat(70_000),
        decision: String::new(),
        rule: String::new(),
        reason: String::new(),
    };
    assert!(matches!(
        huge.encode_payload(&mut Vec::new()),
        Err(Error::LimitExceeded { .. })
    ));
}

// ---- Segment pieces ----

#[test]
fn segment_header_round_trip_and_every_bit_flip_is_caught() {
    let header = SegmentHeader {
        sequence: 3,
        first_index: 1000,
        created_at_ns: 42,
        previous_link: [5; 32],
        origin: "o.example/log".into(),
    };
    let bytes = header.encode();
    assert_eq!(SegmentHeader::decode(&bytes, "f").unwrap(), header);
    for bit in 0..HEADER_BYTES * 8 {
        let mut damaged = bytes;
        damaged[bit / 8] ^= 1 << (bit % 8);
        assert!(
            SegmentHeader::decode(&damaged, "f").is_err(),
            "bit {bit} flip accepted"
        );
    }
    for length in 0..HEADER_BYTES {
        assert!(SegmentHeader::decode(&bytes[..length], "f").is_err());
    }
}

#[test]
fn frames_round_trip_and_damage_is_named() {
    let mut segment = vec![0u8; 100];
    encode_frame(&mut segment, 7, 100, 2, b"hello frame");
    let (kind, body) = read_frame(&segment, 7, 100).unwrap();
    assert_eq!((kind, body), (2, &b"hello frame"[..]));
    // The CRCs bind the frame to its segment and offset (misdirected or copied frames fail).
    assert!(matches!(
        read_frame(&segment, 8, 100),
        Err(FrameDefect::HeaderCrc { .. })
    ));
    let mut moved = vec![0u8; 50];
    moved.extend_from_slice(&segment[100..]);
    assert!(read_frame(&moved, 7, 50).is_err());
    for bit in 0..(segment.len() - 100) * 8 {
        let mut damaged = segment.clone();
        damaged[100 + bit / 8] ^= 1 << (bit % 8);
        assert!(
            read_frame(&damaged, 7, 100).is_err(),
            "bit {bit} flip accepted"
        );
    }
    for length in 100..segment.len() {
        assert!(read_frame(&segment[..length], 7, 100).is_err());
    }
}

#[test]
fn seal_round_trip() {
    let seal = Seal {
        statement: SealStatement {
            segment_sequence: 1,
            first_index: 0,
            record_count: 5,
            tree_size: 5,
            root: [1; 32],
            header_hash: [2; 32],
            sealed_at_ns: 9,
        },
        key_id: [1, 2, 3, 4],
        signature: [3; 64],
        checkpoint_note: b"note".to_vec(),
    };
    let bytes = seal.encode();
    assert_eq!(Seal::decode(&bytes).unwrap(), seal);
    for length in 0..bytes.len() {
        assert!(Seal::decode(&bytes[..length]).is_err());
    }
}

// ---- Proof files ----

#[test]
fn tlog_proof_round_trip_verify_and_malformed() {
    let key = common::key();
    let leaves = leaves_of(13);
    let checkpoint = SignedCheckpoint::create(
        Checkpoint {
            origin: common::ORIGIN.into(),
            size: 13,
            root: root(&leaves),
            extensions: vec![],
        },
        &key,
    )
    .unwrap();
    let leaf_data = 5u64.to_le_bytes();
    let proof = TlogProof {
        extra: Some(b"x".to_vec()),
        index: 5,
        hashes: inclusion_proof(5, &leaves).unwrap(),
        checkpoint: checkpoint.note.clone().into_bytes(),
    };
    let text = proof.encode();
    let parsed = TlogProof::parse(text.as_bytes()).unwrap();
    assert_eq!(parsed, proof);
    parsed.verify(&key.verifier(), &leaf_data).unwrap();
    assert!(parsed.verify(&key.verifier(), &6u64.to_le_bytes()).is_err());
    assert!(parsed
        .verify(&common::other_key().verifier(), &leaf_data)
        .is_err());
    let without_extra = TlogProof {
        extra: None,
        ..proof.clone()
    };
    assert_eq!(
        TlogProof::parse(without_extra.encode().as_bytes()).unwrap(),
        without_extra
    );
    for bad in [
        text.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2"),
        text.replace("index 5", "index 05"),
        text.replace("index 5", "index -5"),
        text.replace("index 5\n", "index 5\nnot-base64!\n"),
        text.replace("index 5\n", "index 5\nAAAA\n"),
        text.split("\n\n").next().unwrap().to_string(),
    ] {
        assert!(
            TlogProof::parse(bad.as_bytes()).is_err(),
            "accepted {bad:?}"
        );
    }
    for length in 0..text.len() {
        // Every truncation either fails to parse or fails to verify.
        if let Ok(p) = TlogProof::parse(&text.as_bytes()[..length]) {
            assert!(p.verify(&key.verifier(), &leaf_data).is_err());
        }
    }
}

#[test]
fn consistency_proof_round_trip_verify_and_malformed() {
    let key = common::key();
    let leaves = leaves_of(20);
    let old = SignedCheckpoint::create(
        Checkpoint {
            origin: common::ORIGIN.into(),
            size: 7,
            root: root(&leaves[..7]),
            extensions: vec![],
        },
        &key,
    )
    .unwrap();
    let new = SignedCheckpoint::create(
        Checkpoint {
            origin: common::ORIGIN.into(),
            size: 20,
            root: root(&leaves),
            extensions: vec![],
        },
        &key,
    )
    .unwrap();
    let proof = ConsistencyProof {
        old_size: 7,
        hashes: consistency_proof(7, &leaves).unwrap(),
        checkpoint: new.note.clone().into_bytes(),
    };
    let text = proof.encode();
    let parsed = ConsistencyProof::parse(text.as_bytes()).unwrap();
    assert_eq!(parsed, proof);
    parsed.verify(&key.verifier(), &old).unwrap();
    let mut forked_leaves = leaves.clone();
    forked_leaves[3] = leaf_hash(b"rewritten");
    let forked_old = SignedCheckpoint::create(
        Checkpoint {
            origin: common::ORIGIN.into(),
            size: 7,
            root: root(&forked_leaves[..7]),
            extensions: vec![],
        },
        &key,
    )
    .unwrap();
    assert!(parsed.verify(&key.verifier(), &forked_old).is_err());
    assert!(ConsistencyProof::parse(text.replace("old 7", "old x").as_bytes()).is_err());
    for length in 0..text.len() {
        if let Ok(p) = ConsistencyProof::parse(&text.as_bytes()[..length]) {
            assert!(p.verify(&key.verifier(), &old).is_err());
        }
    }
}
