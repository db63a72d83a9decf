//! `sluice-ledger`: the command compliance runs against a ledger directory.

use sluice_ledger::error::Error;
use sluice_ledger::json;
use sluice_ledger::keys::{write_key_pair, SignerKey, VerifierKey};
use sluice_ledger::merkle::{consistency_proof, inclusion_proof};
use sluice_ledger::note::SignedCheckpoint;
use sluice_ledger::proof::{ConsistencyProof, TlogProof};
use sluice_ledger::reader::{LedgerReader, StoredRecord};
use sluice_ledger::record::{leaf_bytes, Record, RecordBody, SessionId};
use sluice_ledger::verify::verify_ledger;
use sluice_ledger::{FsStorage, LedgerWriter, WriterConfig};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
usage: sluice-ledger <command> [arguments]

commands:
  keygen --out PREFIX [--name NAME]
      write PREFIX.key (private, mode 0600) and PREFIX.vkey (signed-note verifier key)
  verify DIR --key VKEY [--key VKEY ...] [--trusted-checkpoint FILE] [--quiet]
      check everything; exit 0 only when the ledger is intact
  sessions DIR
      list sessions: id, agent, target, start, end, statements, values masked
  replay DIR --session ID [--json]
      one session's exchange in order, with timestamps
  export DIR --jsonl
      every record as one JSON object per line
  checkpoint DIR
      print the latest signed checkpoint
  prove DIR --index N [--leaf FILE]
      print the C2SP tlog-proof of record N; write its exact leaf bytes to FILE
  consistency DIR --old N
      print the consistency proof from tree size N to the latest checkpoint
  check-proof --key VKEY --proof FILE --leaf FILE
      verify a tlog-proof against leaf bytes
  check-consistency --key VKEY --proof FILE --old-checkpoint FILE
      verify a consistency proof against a checkpoint kept from before
  redact DIR --session ID --signing-key KEY --reason TEXT
      replace the session's payloads in sealed segments by signed tombstones (writer stopped)
  sample DIR --signing-key KEY [--sessions N] [--origin ORIGIN]
      append N sample sessions (for trying the tools)
";

/// Exit codes.
const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;

struct Arguments {
    positional: Vec<String>,
    options: BTreeMap<String, Vec<String>>,
    flags: Vec<String>,
}

const FLAGS: &[&str] = &["--json", "--jsonl", "--quiet", "--help", "-h"];

fn parse_arguments(raw: &[String]) -> Result<Arguments, Error> {
    let mut arguments = Arguments {
        positional: Vec::new(),
        options: BTreeMap::new(),
        flags: Vec::new(),
    };
    let mut iter = raw.iter();
    while let Some(item) = iter.next() {
        if FLAGS.contains(&item.as_str()) {
            arguments.flags.push(item.clone());
        } else if let Some(name) = item.strip_prefix("--") {
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => {
                    let value = iter.next().ok_or_else(|| Error::Usage {
                        reason: format!("option --{name} needs a value"),
                    })?;
                    (name.to_string(), value.clone())
                }
            };
            arguments.options.entry(name).or_default().push(value);
        } else {
            arguments.positional.push(item.clone());
        }
    }
    Ok(arguments)
}

impl Arguments {
    fn allow(&self, options: &[&str], flags: &[&str], positional: usize) -> Result<(), Error> {
        for name in self.options.keys() {
            if !options.contains(&name.as_str()) {
                return Err(Error::Usage {
                    reason: format!("unknown option --{name}"),
                });
            }
        }
        for flag in &self.flags {
            if !flags.contains(&flag.as_str()) {
                return Err(Error::Usage {
                    reason: format!("unknown flag {flag}"),
                });
            }
        }
        if self.positional.len() != positional {
            return Err(Error::Usage {
                reason: format!(
                    "expected {positional} positional argument(s), got {}",
                    self.positional.len()
                ),
            });
        }
        Ok(())
    }
    fn one(&self, name: &str) -> Result<Option<&str>, Error> {
        match self.options.get(name).map(Vec::as_slice) {
            None => Ok(None),
            Some([value]) => Ok(Some(value)),
            Some(_) => Err(Error::Usage {
                reason: format!("--{name} given more than once"),
            }),
        }
    }
    fn required(&self, name: &str) -> Result<&str, Error> {
        self.one(name)?.ok_or_else(|| Error::Usage {
            reason: format!("--{name} is required"),
        })
    }
    fn number(&self, name: &str) -> Result<Option<u64>, Error> {
        match self.one(name)? {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| Error::Usage {
                reason: format!("--{name} must be a non-negative integer, got {text:?}"),
            }),
        }
    }
    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.is_empty() || raw[0] == "--help" || raw[0] == "-h" || raw[0] == "help" {
        print!("{USAGE}");
        return if raw.is_empty() {
            ExitCode::from(EXIT_USAGE)
        } else {
            ExitCode::SUCCESS
        };
    }
    let command = raw[0].clone();
    let result = parse_arguments(&raw[1..]).and_then(|arguments| run(&command, &arguments));
    match result {
        Ok(code) => code,
        Err(Error::Usage { reason }) => {
            eprintln!("sluice-ledger: {reason}\n\n{USAGE}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(error) => {
            eprintln!("sluice-ledger: error: {error}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn run(command: &str, arguments: &Arguments) -> Result<ExitCode, Error> {
    // Output errors (a closed pipe) are not failures of the ledger.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let code = match command {
        "keygen" => keygen(arguments, &mut out),
        "verify" => verify(arguments, &mut out),
        "sessions" => sessions(arguments, &mut out),
        "replay" => replay(arguments, &mut out),
        "export" => export(arguments, &mut out),
        "checkpoint" => checkpoint(arguments, &mut out),
        "prove" => prove(arguments, &mut out),
        "consistency" => consistency(arguments, &mut out),
        "check-proof" => check_proof(arguments, &mut out),
        "check-consistency" => check_consistency(arguments, &mut out),
        "sample" => sample(arguments, &mut out),
        "redact" => redact(arguments, &mut out),
        other => Err(Error::Usage {
            reason: format!("unknown command {other:?}"),
        }),
    }?;
    let _ = out.flush();
    Ok(code)
}

type Out<'a> = std::io::BufWriter<std::io::StdoutLock<'a>>;

fn ledger_directory(arguments: &Arguments) -> Result<FsStorage, Error> {
    let path = PathBuf::from(&arguments.positional[0]);
    if !path.is_dir() {
        return Err(Error::NotALedger {
            reason: format!("{} is not a directory", path.display()),
        });
    }
    Ok(FsStorage::new(path))
}

fn read_file(path: &str, what: &str, bytes_max: u64) -> Result<Vec<u8>, Error> {
    let metadata =
        std::fs::metadata(path).map_err(|e| Error::io(format!("reading {what} {path}"), e))?;
    if metadata.len() > bytes_max {
        return Err(Error::Usage {
            reason: format!("{what} {path} is larger than {bytes_max} bytes"),
        });
    }
    std::fs::read(path).map_err(|e| Error::io(format!("reading {what} {path}"), e))
}

fn keygen(arguments: &Arguments, out: &mut Out) -> Result<ExitCode, Error> {
    arguments.allow(&["out", "name"], &[], 0)?;
    let prefix = arguments.required("out")?;
    let name = arguments.one("name")?.unwrap_or("sluice-ledger");
    let key = SignerKey::generate(name)?;
    let private = PathBuf::from(format!("{prefix}.key"));
    let public = PathBuf::from(format!("{prefix}.vkey"));
    write_key_pair(&key, &private, &public)?;
    let _ = writeln!(
        out,
        "private key:  {} (mode 0600)\nverifier key: {}\n{}",
        private.display(),
        public.display(),
        key.verifier()
    );
    Ok(ExitCode::SUCCESS)
}

fn load_keys(arguments: &Arguments) -> Result<Vec<VerifierKey>, Error> {
    let paths = arguments.options.get("key").ok_or_else(|| Error::Usage {
        reason: "--key is required".into(),
    })?;
    paths
        .iter()
        .map(|p| VerifierKey::load(Path::new(p)))
        .collect()
}

fn format_time(timestamp_ns: u64) -> String {
    let seconds = timestamp_ns / 1_000_000_000;
    let millis = (timestamp_ns / 1_000_000) % 1000;
    let days = (seconds / 86_400) as i64;
    let rem = seconds % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn verify(arguments: &Arguments, out: &mut Out) -> Result<ExitCode, Error> {
    arguments.allow(&["key", "trusted-checkpoint"], &["--quiet"], 1)?;
    let storage = ledger_directory(arguments)?;
    let keys = load_keys(arguments)?;
    let trusted = match arguments.one("trusted-checkpoint")? {
        Some(path) => Some(read_file(
            path,
            "trusted checkpoint",
            sluice_ledger::limits::CHECKPOINT_FILE_BYTES_MAX,
        )?),
        None => None,
    };
    let show_progress = !arguments.flag("--quiet") && std::io::stderr().is_terminal();
    let mut last_percent = u64::MAX;
    let mut progress = |done: u64, total: u64| {
        if !show_progress || total == 0 {
            return;
        }
        let percent = done.min(total) * 100 / total;
        if percent != last_percent {
            last_percent = percent;
            let filled = (percent / 5) as usize;
            eprint!(
                "\rverifying [{}{}] {percent:3}% of {}",
                "#".repeat(filled),
                " ".repeat(20 - filled),
                human_bytes(total)
            );
        }
    };
    let result = verify_ledger(&storage, &keys, trusted.as_deref(), &mut progress);
    if show_progress {
        eprintln!();
    }
    match result {
        Ok(summary) => {
            let span = match (summary.first_timestamp_ns, summary.last_timestamp_ns) {
                (Some(first), Some(last)) => {
                    format!("{} .. {}", format_time(first), format_time(last))
                }
                _ => "(no records)".into(),
            };
            let _ = writeln!(out, "ledger intact: {}", storage.root().display());
            let _ = writeln!(out, "  origin:      {}", summary.origin);
            let _ = writeln!(out, "  records:     {}", summary.records);
            let _ = writeln!(out, "  sessions:    {}", summary.sessions);
            let _ = writeln!(out, "  segments:    {}", summary.segments);
            let _ = writeln!(
                out,
                "  bytes:       {} ({})",
                summary.bytes,
                human_bytes(summary.bytes)
            );
            let _ = writeln!(out, "  time span:   {span}");
            let _ = writeln!(
                out,
                "  checkpoints: {} (latest signed size {})",
                summary.checkpoints, summary.signed_size
            );
            if let Some(size) = summary.trusted_size {
                let _ = writeln!(
                    out,
                    "  consistent with the trusted checkpoint at size {size}"
                );
            }
            if summary.unsigned_records > 0 {
                let _ = writeln!(
                    out,
                    "  note: the last {} records are not yet covered by a signed checkpoint",
                    summary.unsigned_records
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error @ (Error::Usage { .. } | Error::Io { .. })) => Err(error),
        Err(error) => {
            let _ = out.flush();
            match error.location() {
                Some(location) => eprintln!(
                    "LEDGER DAMAGED: first bad segment {}, offset {}: {error}",
                    location.file, location.offset
                ),
                None => eprintln!("LEDGER DAMAGED: {error}"),
            }
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}

struct SessionSummary {
    agent: String,
    target: String,
    start_ns: u64,
    end_ns: Option<u64>,
    statements_closed: Option<u64>,
    decisions: u64,
    records: u64,
    masked: u64,
}

fn sessions(arguments: &Arguments, out: &mut Out) -> Result<ExitCode, Error> {
    arguments.allow(&[], &[], 1)?;
    let storage = ledger_directory(arguments)?;
    let mut sessions: BTreeMap<SessionId, SessionSummary> = BTreeMap::new();
    let mut order: Vec<SessionId> = Vec::new();
    LedgerReader::new(&storage).for_each_record(&mut |record| {
        let d = record.descriptor;
        if d.session.0 == [0u8; 16] {
            return Ok(());
        }
        let entry = sessions.entry(d.session).or_insert_with(|| {
            order.push(d.session);
            SessionSummary {
                agent: "?".into(),
                target: "?".into(),
                start_ns: d.timestamp_ns,
                end_ns: None,
                statements_closed: None,
                decisions: 0,
                records: 0,
                masked: 0,
            }
        });
        entry.records += 1;
        entry.start_ns = entry.start_ns.min(d.timestamp_ns);
        match record.body {
            Some(RecordBody::SessionOpened {
                agent_identity,
                target,
                ..
            }) => {
                entry.agent = agent_identity;
                entry.target = target;
            }
            Some(RecordBody::PolicyDecision { .. }) => entry.decisions += 1,
            Some(RecordBody::MaskingSummary { values_masked, .. }) => entry.masked += values_masked,
            Some(RecordBody::SessionClosed { statements, .. }) => {
                entry.statements_closed = Some(statements);
                entry.end_ns = Some(d.timestamp_ns);
            }
            _ => {}
        }
        Ok(())
    })?;
    let _ = writeln!(
        out,
        "{:<32}  {:<24}  {:<24}  {:<24}  {:<24}  {:>10}  {:>10}",
        "session", "agent", "target", "start", "end", "statements", "masked"
    );
    for id in order {
        let s = &sessions[&id];
        let end = s.end_ns.map_or("(open)".to_string(), format_time);
        let statements = s.statements_closed.unwrap_or(s.decisions);
        let _ = writeln!(
            out,
            "{id}  {:<24}  {:<24}  {:<24}  {end:<24}  {statements:>10}  {:>10}",
            s.agent,
            s.target,
            format_time(s.start_ns),
            s.masked
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Printable text of message bytes: UTF-8 kept, other bytes escaped.
fn printable(bytes: &[u8]) -> String {
    let mut text = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                text.push_str(&format!("\\x{:02x}", c as u32));
            } else {
                text.push(c);
            }
        }
        for b in chunk.invalid() {
            text.push_str(&format!("\\x{b:02x}"));
        }
    }
    text
}

fn describe(record: &StoredRecord) -> String {
    let Some(body) = &record.body else {
        let tombstone = record
            .tombstone
            .as_ref()
            .expect("redacted records have a tombstone");
        return format!(
            "[redacted at {}: {}]",
            format_time(tombstone.redacted_at_ns),
            tombstone.reason
        );
    };
    match body {
        RecordBody::SessionOpened { agent_identity, auth_method, client_address, tls_version, tls_cipher, client_certificate_fingerprint, target } => format!(
            "agent {agent_identity} via {auth_method} from {client_address} ({tls_version} {tls_cipher}{}) to {target}",
            if client_certificate_fingerprint.is_empty() { String::new() } else { format!(", client cert {client_certificate_fingerprint}") }
        ),
        RecordBody::ClientMessage { bytes } => format!("{} bytes: {}", bytes.len(), printable(bytes)),
        RecordBody::ServerMessage { bytes } => format!("{} bytes: {}", bytes.len(), printable(bytes)),
        RecordBody::ServerMessageDigest { length_bytes, sha256 } => format!("{length_bytes} bytes, sha256 {}", json::hex(sha256)),
        RecordBody::PolicyDecision { statement, decision, rule, reason } => format!("{decision} by rule {rule:?}{}: {}", if reason.is_empty() { String::new() } else { format!(" ({reason})") }, printable(statement.as_bytes())),
        RecordBody::ApprovalEvent { approval_id, approver, outcome, detail } => format!("approval {approval_id} {outcome}{}: {detail}", if approver.is_empty() { String::new() } else { format!(" by {approver}") }),
        RecordBody::MaskingSummary { values_masked, rules } => format!("{values_masked} values masked ({rules})"),
        RecordBody::SessionClosed { statements, client_messages, server_messages, client_bytes, server_bytes, denied_statements, reason } => format!(
            "{reason}: {statements} statements ({denied_statements} denied), {client_messages} client messages ({client_bytes} bytes), {server_messages} server messages ({server_bytes} bytes)"
        ),
        RecordBody::KeyRotation { previous_key, next_key } => format!("signing key {previous_key} -> {next_key}"),
        RecordBody::Recovery { segment_sequence, truncated_at_offset, quarantined_bytes, quarantine_file, reason } => {
            format!("segment {segment_sequence} truncated at {truncated_at_offset}, {quarantined_bytes} bytes kept in {quarantine_file}: {reason}")
        }
    }
}

fn replay(arguments: &Arguments, out: &mut Out) -> Result<ExitCode, Error> {
    arguments.allow(&["session"], &["--json"], 1)?;
    let storage = ledger_directory(arguments)?;
    let session = SessionId::parse(arguments.required("session")?).map_err(|e| Error::Usage {
        reason: e.to_string(),
    })?;
    let as_json = arguments.flag("--json");
    let mut found = 0u64;
    LedgerReader::new(&storage).for_each_record(&mut |record| {
        if record.descriptor.session != session {
            return Ok(());
        }
        found += 1;
        let _ = if as_json {
            writeln!(out, "{}", json::record(&record))
        } else {
            writeln!(
                out,
                "{}  #{:<6} {:<22} {}",
                format_time(record.descriptor.timestamp_ns),
                record.descriptor.sequence,
                RecordBody::kind_name(record.descriptor.kind),
                describe(&record)
            )
        };
        Ok(())
    })?;
    if found == 0 {
        return Err(Error::NotFound {
            what: format!("session {session}"),
        });
    }
    Ok(ExitCode::SUCCESS)
}

fn export(arguments: &Arguments, out: &mut Out) -> Result<ExitCode, Error> {
    arguments.allow(&[], &["--jsonl"], 1)?;
    if !arguments.flag("--jsonl") {
        return Err(Error::Usage {
            reason: "export needs --jsonl (the only format)".into(),
        });
    }
    let storage = ledger_directory(arguments)?;
    LedgerReader::new(&storage).for_each_record(&mut |record| {
        let _ = writeln!(out, "{}", json::record(&record));
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn checkpoint(arguments: &Arguments, out: &mut Out) -> Result<ExitCode, Error> {
    arguments.allow(&[], &[], 1)?;
    let storage = ledger_directory(arguments)?;
    let reader = LedgerReader::new(&storage);
    let scanned = reader.leaves()?;
    let latest = reader.latest_checkpoint(&scanned)?;
    let _ = write!(out, "{}", latest.note);
    Ok(ExitCode::SUCCESS)
}

fn prove(arguments: &Arguments, out: &mut Out) -> Result<ExitCode, Error> {
    arguments.allow(&["index", "leaf"], &[], 1)?;
    let storage = ledger_directory(arguments)?;
    let index = arguments.number("index")?.ok_or_else(|| Error::Usage {
        reason: "--index is required".into(),
    })?;
    let reader = LedgerReader::new(&storage);
    let mut leaf = None;
    let scanned = reader.for_each_record_with_leaves(&mut |record| {
        if record.index == index {
            leaf = Some(leaf_bytes(&record.descriptor, &record.payload_hash));
        }
        Ok(())
    })?;
    let checkpoint = reader.latest_checkpoint(&scanned)?;
    let size = checkpoint.checkpoint.size;
    if index >= size {
        return Err(Error::NotFound {
            what: format!(
                "record {index} in the latest signed checkpoint (it covers {size} records)"
            ),
        });
    }
    let leaf = leaf.ok_or_else(|| Error::NotFound {
        what: format!("record {index}"),
    })?;
    let hashes = inclusion_proof(index, &scanned.leaves[..size as usize])?;
    let proof = TlogProof {
        extra: None,
        index,
        hashes,
        checkpoint: checkpoint.note.into_bytes(),
    };
    if let Some(path) = arguments.one("leaf")? {
        std::fs::write(path, leaf).map_err(|e| Error::io(format!("writing {path}"), e))?;
    }
    let _ = write!(out, "{}", proof.encode());
    Ok(ExitCode::SUCCESS)
}

fn consistency(arguments: &Arguments, out: &mut Out) -> Result<ExitCode, Error> {
    arguments.allow(&["old"], &[], 1)?;
    let storage = ledger_directory(arguments)?;
    let old = arguments.number("old")?.ok_or_else(|| Error::Usage {
        reason: "--old is required".into(),
    })?;
    let reader = LedgerReader::new(&storage);
    let scanned = reader.leaves()?;
    let checkpoint = reader.latest_checkpoint(&scanned)?;
    let size = checkpoint.checkpoint.size;
    if old > size {
        return Err(Error::Proof {
            reason: format!("--old {old} is above the latest checkpoint's size {size}"),
        });
    }
    let hashes = consistency_proof(old, &scanned.leaves[..size as usize])?;
    let proof = ConsistencyProof {
        old_size: old,
        hashes,
        checkpoint: checkpoint.note.into_bytes(),
    };
    let _ = write!(out, "{}", proof.encode());
    Ok(ExitCode::SUCCESS)
}

fn check_proof(arguments: &Arguments, out: &mut Out) -> Result<ExitCode, Error> {
    arguments.allow(&["key", "proof", "leaf"], &[], 0)?;
    let key = VerifierKey::load(Path::new(arguments.required("key")?))?;
    let proof = TlogProof::parse(&read_file(
        arguments.required("proof")?,
        "proof",
        sluice_ledger::limits::PROOF_BYTES_MAX as u64,
    )?)?;
    let leaf = read_file(arguments.required("leaf")?, "leaf", 4096)?;
    let checkpoint = proof.verify(&key, &leaf)?;
    let _ = writeln!(
        out,
        "proof valid: leaf {} is in {} at tree size {}",
        proof.index, checkpoint.checkpoint.origin, checkpoint.checkpoint.size
    );
    Ok(ExitCode::SUCCESS)
}

fn check_consistency(arguments: &Arguments, out: &mut Out) -> Result<ExitCode, Error> {
    arguments.allow(&["key", "proof", "old-checkpoint"], &[], 0)?;
    let key = VerifierKey::load(Path::new(arguments.required("key")?))?;
    let proof = ConsistencyProof::parse(&read_file(
        arguments.required("proof")?,
        "proof",
        sluice_ledger::limits::PROOF_BYTES_MAX as u64,
    )?)?;
    let old_bytes = read_file(
        arguments.required("old-checkpoint")?,
        "old checkpoint",
        sluice_ledger::limits::CHECKPOINT_FILE_BYTES_MAX,
    )?;
    let old = SignedCheckpoint::open(&old_bytes, &key)?;
    let new = proof.verify(&key, &old)?;
    let _ = writeln!(
        out,
        "consistent: tree size {} is a prefix of tree size {}",
        old.checkpoint.size, new.checkpoint.size
    );
    Ok(ExitCode::SUCCESS)
}

fn sample(arguments: &Arguments, out: &mut Out) -> Result<ExitCode, Error> {
    arguments.allow(&["signing-key", "sessions", "origin"], &[], 1)?;
    let directory = PathBuf::from(&arguments.positional[0]);
    std::fs::create_dir_all(&directory)
        .map_err(|e| Error::io(format!("creating {}", directory.display()), e))?;
    let key = SignerKey::load(Path::new(arguments.required("signing-key")?))?;
    let origin = arguments.one("origin")?.unwrap_or(&key.name).to_string();
    let count = arguments.number("sessions")?.unwrap_or(3);
    let (mut writer, report) = LedgerWriter::open(
        Box::new(FsStorage::new(&directory)),
        key,
        WriterConfig::new(origin),
    )?;
    if let Some(recovery) = &report.recovery {
        let _ = writeln!(
            out,
            "recovered: {} truncated at {}, {} bytes quarantined in {}",
            recovery.file,
            recovery.truncated_at_offset,
            recovery.quarantined_bytes,
            recovery.quarantine_file
        );
    }
    let mut seed = [0u8; 16];
    getrandom::getrandom(&mut seed)
        .map_err(|e| Error::io("random", std::io::Error::other(e.to_string())))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    for n in 0..count {
        let mut id = seed;
        id[8..].copy_from_slice(&n.to_be_bytes());
        let session = SessionId(id);
        let statement = format!("SELECT id, email FROM customers WHERE id = {n}");
        let bodies = vec![
            RecordBody::SessionOpened {
                agent_identity: format!("agent:sample-{n}"),
                auth_method: "scram-sha-256".into(),
                client_address: "127.0.0.1:40000".into(),
                tls_version: "TLSv1.3".into(),
                tls_cipher: "TLS_AES_256_GCM_SHA384".into(),
                client_certificate_fingerprint: String::new(),
                target: "postgres://127.0.0.1:5432/app".into(),
            },
            RecordBody::ClientMessage { bytes: format!("Q{statement}\0").into_bytes() },
            RecordBody::PolicyDecision { statement: statement.clone(), decision: "allow".into(), rule: "read-only-customers".into(), reason: String::new() },
            RecordBody::MaskingSummary { values_masked: 1, rules: "profile=default; email \"email\" 1".into() },
            RecordBody::ServerMessage { bytes: b"T\0\0\0\x1b\0\x02id\0email\0D\0\0\0\x10\0\x02\0\0\0\x011\0\0\0\x03***C\0\0\0\x0dSELECT 1\0Z\0\0\0\x05I".to_vec() },
            RecordBody::SessionClosed { statements: 1, client_messages: 1, server_messages: 1, client_bytes: statement.len() as u64 + 2, server_bytes: 60, denied_statements: 0, reason: "client terminated".into() },
        ];
        for (i, body) in bodies.into_iter().enumerate() {
            writer.append(&Record {
                session,
                sequence: i as u64,
                timestamp_ns: now + n * 1_000_000_000 + i as u64 * 1_000_000,
                body,
            })?;
        }
        writer.barrier()?;
    }
    let checkpoint = writer.close()?;
    let _ = writeln!(
        out,
        "appended {count} sessions; tree size {}",
        checkpoint.checkpoint.size
    );
    Ok(ExitCode::SUCCESS)
}

fn redact(arguments: &Arguments, out: &mut Out) -> Result<ExitCode, Error> {
    arguments.allow(&["session", "signing-key", "reason"], &[], 1)?;
    let storage = ledger_directory(arguments)?;
    let session = SessionId::parse(arguments.required("session")?).map_err(|e| Error::Usage {
        reason: e.to_string(),
    })?;
    let key = SignerKey::load(Path::new(arguments.required("signing-key")?))?;
    let reason = arguments.required("reason")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let report = sluice_ledger::redact::redact_session(&storage, &key, session, reason, now)?;
    let _ = writeln!(
        out,
        "redacted {} records in {} sealed segments",
        report.records_redacted, report.segments_rewritten
    );
    if report.records_left_in_open_segment > 0 {
        let _ = writeln!(
            out,
            "{} records are in the open segment: redact again after it is sealed",
            report.records_left_in_open_segment
        );
    }
    Ok(ExitCode::SUCCESS)
}
