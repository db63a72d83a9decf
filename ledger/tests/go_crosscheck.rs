//! Cross-check with an implementation not written here: Go's
//! golang.org/x/mod/sumdb/note and sumdb/tlog (Debian packages golang-1.19-go
//! and golang-golang-x-mod-dev, built in GOPATH mode). Skipped, with a
//! printed message, only when Go or those sources are absent.

mod common;

use sluice_ledger::keys::{SignerKey, VerifierKey};
use sluice_ledger::merkle::{consistency_proof, inclusion_proof};
use sluice_ledger::note::{Checkpoint, SignedCheckpoint};
use sluice_ledger::proof::{ConsistencyProof, TlogProof};
use sluice_ledger::reader::LedgerReader;
use sluice_ledger::record::leaf_bytes;
use sluice_ledger::{FsStorage, LedgerWriter};
use std::path::PathBuf;
use std::process::Command;

const GOPATH: &str = "/usr/share/gocode";

fn find_go() -> Option<PathBuf> {
    let sources = PathBuf::from(GOPATH).join("src/golang.org/x/mod/sumdb/tlog");
    if !sources.is_dir() {
        return None;
    }
    for candidate in [
        "/usr/lib/go-1.19/bin/go",
        "/usr/lib/go/bin/go",
        "/usr/bin/go",
    ] {
        if PathBuf::from(candidate).is_file() {
            return Some(candidate.into());
        }
    }
    Command::new("go")
        .arg("version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "go".into())
}

#[test]
fn go_sumdb_note_and_tlog_verify_our_checkpoints_and_proofs() {
    let Some(go) = find_go() else {
        println!("SKIPPED go_crosscheck: Go or golang.org/x/mod is not installed (apt-get install golang-1.19-go golang-golang-x-mod-dev)");
        eprintln!("SKIPPED go_crosscheck: Go or golang.org/x/mod is not installed (apt-get install golang-1.19-go golang-golang-x-mod-dev)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    std::fs::create_dir(&ledger).unwrap();
    let exchange = dir.path().join("exchange");
    std::fs::create_dir(&exchange).unwrap();
    let key = SignerKey::from_seed("crosscheck.example/log", [3; 32]).unwrap();
    let mut config = common::small_config();
    config.origin = key.name.clone();

    // Several checkpoints at different sizes; keep each as an "old" checkpoint.
    let mut old_checkpoints = Vec::new();
    {
        let (mut writer, _) = LedgerWriter::open(
            Box::new(FsStorage::new(&ledger)),
            SignerKey::from_seed(&key.name, [3; 32]).unwrap(),
            config,
        )
        .unwrap();
        for round in 0..9u8 {
            for record in common::every_kind(round, 0, 10 + round as usize * 50) {
                writer.append(&record).unwrap();
            }
            writer
                .append(&common::every_kind(round, 8, 0)[(round % 8) as usize])
                .unwrap();
            old_checkpoints.push(writer.checkpoint().unwrap());
        }
        writer.close().unwrap();
    }
    let storage = FsStorage::new(&ledger);
    let reader = LedgerReader::new(&storage);
    let mut leaves_bytes = Vec::new();
    let scanned = reader
        .for_each_record_with_leaves(&mut |r| {
            leaves_bytes.push(leaf_bytes(&r.descriptor, &r.payload_hash).to_vec());
            Ok(())
        })
        .unwrap();
    let latest = reader.latest_checkpoint(&scanned).unwrap();
    let size = latest.checkpoint.size as usize;
    assert_eq!(size, leaves_bytes.len());
    std::fs::write(exchange.join("vkey"), format!("{}\n", key.verifier())).unwrap();
    let indices: Vec<usize> = vec![0, 1, 2, 7, 8, 31, size / 2, size - 2, size - 1];
    for (i, &index) in indices.iter().enumerate() {
        let proof = TlogProof {
            extra: None,
            index: index as u64,
            hashes: inclusion_proof(index as u64, &scanned.leaves[..size]).unwrap(),
            checkpoint: latest.note.clone().into_bytes(),
        };
        std::fs::write(exchange.join(format!("proof-{i}.txt")), proof.encode()).unwrap();
        std::fs::write(exchange.join(format!("leaf-{i}.bin")), &leaves_bytes[index]).unwrap();
        let old = &old_checkpoints[i % old_checkpoints.len()];
        let consistency = ConsistencyProof {
            old_size: old.checkpoint.size,
            hashes: consistency_proof(old.checkpoint.size, &scanned.leaves[..size]).unwrap(),
            checkpoint: latest.note.clone().into_bytes(),
        };
        std::fs::write(
            exchange.join(format!("consistency-{i}.txt")),
            consistency.encode(),
        )
        .unwrap();
        std::fs::write(exchange.join(format!("old-{i}.checkpoint")), &old.note).unwrap();
    }
    std::fs::write(exchange.join("count"), indices.len().to_string()).unwrap();

    let program = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/go/crosscheck.go");
    let output = Command::new(&go)
        .arg("run")
        .arg(&program)
        .arg(&exchange)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", dir.path().join("gocache"))
        .env("GOFLAGS", "")
        .output()
        .expect("running go");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "Go cross-check failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("GO-OK {} checks", 2 * indices.len())),
        "{stdout}"
    );

    // The other direction: a checkpoint signed by Go verifies here, and Go's private key format parses.
    let go_vkey =
        VerifierKey::parse(&std::fs::read_to_string(exchange.join("go-vkey")).unwrap()).unwrap();
    let go_note = std::fs::read(exchange.join("go-note")).unwrap();
    let opened = SignedCheckpoint::open(&go_note, &go_vkey).unwrap();
    assert_eq!(
        opened.checkpoint,
        Checkpoint {
            origin: "go.example/log".into(),
            size: 3,
            root: [0; 32],
            extensions: vec![]
        }
    );
    let go_skey =
        SignerKey::parse_private(&std::fs::read_to_string(exchange.join("go-skey")).unwrap())
            .unwrap();
    assert_eq!(go_skey.verifier(), go_vkey);
    assert!(SignedCheckpoint::open(&go_note, &key.verifier()).is_err());
}
