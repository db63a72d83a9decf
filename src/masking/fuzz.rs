//! Fuzzing entry point for the masking rewrite, kept in the library so the
//! cargo-fuzz target stays three lines and this code is type-checked (and
//! unit-tested) with the crate.
//!
//! Invariant: whatever the input and whatever the match set, a masked
//! message keeps valid framing. Same-length masking keeps every length;
//! a re-framed message parses with the codec as the same kind of message
//! with the same number of values or fields.

use std::sync::{Arc, OnceLock};

use bytes::BytesMut;

use super::engine::{builtin_detectors, Engine, Scanner};
use super::message::{mask_backend_message, ColumnAction, ColumnRule, MaskingState, Outcome};
use super::style::{self, Style};
use super::{DetectorSet, Finding, Profile};
use crate::protocol::pg::{
    build, next_frame, parse_backend, BackendMessage, FieldDescription, FormatCode, Frame,
};

fn engines() -> &'static [Arc<Engine>; 2] {
    static ENGINES: OnceLock<[Arc<Engine>; 2]> = OnceLock::new();
    ENGINES.get_or_init(|| {
        let stars = Engine::builtin().expect("built-in engine compiles");
        let mut defs = builtin_detectors();
        for (i, d) in defs.iter_mut().enumerate() {
            // Alternate styles so that one message mixes in-place masks and
            // redactions.
            d.style = match i % 3 {
                0 => Style::Redact,
                1 => Style::KeepLast4,
                _ => Style::Stars,
            };
        }
        let mixed = Engine::new(defs).expect("mixed engine compiles");
        [Arc::new(stars), Arc::new(mixed)]
    })
}

thread_local! {
    static SCANNERS: std::cell::RefCell<Option<[Scanner; 2]>> = const { std::cell::RefCell::new(None) };
}

/// Splits `data` into pieces at 0xFF bytes (at most 32 pieces).
fn pieces(data: &[u8]) -> Vec<&[u8]> {
    data.split(|&b| b == 0xFF).take(32).collect()
}

fn message_values(msg: &BackendMessage<'_>) -> usize {
    match msg {
        BackendMessage::DataRow { values } => values.len(),
        BackendMessage::ErrorResponse(f) | BackendMessage::NoticeResponse(f) => f.iter().count(),
        _ => 1,
    }
}

/// Checks the masking rewrite on one input (panics on a violation).
pub fn rewrite(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let kind = control % 5;
    let engine_ix = usize::from(control >> 3 & 1);
    let binary = control & 0x10 != 0;
    let rules_on = control & 0x20 != 0;
    let parts = pieces(rest);

    // Build one message of the chosen kind from the pieces.
    let mut msg = BytesMut::new();
    let strip_nul =
        |p: &[u8]| -> Vec<u8> { p.iter().map(|&b| if b == 0 { b'0' } else { b }).collect() };
    match kind {
        0 => {
            let values: Vec<Option<&[u8]>> = parts
                .iter()
                .map(|p| (p.first() != Some(&0xFE)).then_some(*p))
                .collect();
            build::data_row(&mut msg, &values);
        }
        1 => build::copy_data(&mut msg, rest),
        2 | 3 => {
            let owned: Vec<Vec<u8>> = parts.iter().map(|p| strip_nul(p)).collect();
            let codes = [b'S', b'C', b'M', b'D', b'H', b'W', b'q', b'P', b't'];
            let fields: Vec<(u8, &[u8])> = owned
                .iter()
                .enumerate()
                .map(|(i, v)| (codes[i % codes.len()], v.as_slice()))
                .collect();
            build::fields_message(&mut msg, if kind == 2 { b'E' } else { b'N' }, &fields);
        }
        _ => build::notification_response(&mut msg, 7, b"chan".as_slice(), strip_nul(rest)),
    }

    // A RowDescription for DataRows: text-like, jsonb, int and unknown
    // types, in text or binary format, some under a column rule.
    let types = [25u32, 3802, 23, 1043, 114, 17, 2950, 999_999];
    let names: Vec<String> = (0..parts.len()).map(|i| format!("c{i}")).collect();
    let fields: Vec<FieldDescription<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| FieldDescription {
            name: n.as_bytes(),
            table_oid: 1,
            column_attribute: i as i16,
            type_oid: types[(i + usize::from(control)) % types.len()],
            type_size: -1,
            type_modifier: -1,
            format: if binary && i % 2 == 0 {
                FormatCode::Binary
            } else {
                FormatCode::Text
            },
        })
        .collect();
    let mut row_description = BytesMut::new();
    build::row_description(&mut row_description, &fields);
    let rules = if rules_on {
        vec![
            ColumnRule {
                table_oid: Some(1),
                column_attribute: None,
                column: "c1".into(),
                action: ColumnAction::Mask,
            },
            ColumnRule {
                table_oid: None,
                column_attribute: None,
                column: "c2".into(),
                action: ColumnAction::Null,
            },
        ]
    } else {
        Vec::new()
    };

    SCANNERS.with(|cell| {
        let mut slot = cell.borrow_mut();
        let scanners = slot.get_or_insert_with(|| {
            let [a, b] = engines();
            [a.scanner().expect("scratch"), b.scanner().expect("scratch")]
        });
        let scanner = &mut scanners[engine_ix];
        let profile = Profile::all();
        let mut state = MaskingState::default();
        let mut out = BytesMut::new();
        if kind == 0 {
            let mut rd = row_description.clone();
            let o = mask_backend_message(scanner, &mut rd, &mut state, &rules, &profile, &mut out)
                .expect("RowDescription is valid");
            assert_eq!(o, Outcome::Unchanged);
        }
        let mut buf = msg.clone();
        let before_len = buf.len();
        let outcome =
            mask_backend_message(scanner, &mut buf, &mut state, &rules, &profile, &mut out)
                .expect("a message built by the codec is accepted");
        let original = parse_backend(Frame {
            tag: msg[0],
            body: &msg[5..],
        })
        .expect("built message parses");
        let (check, label) = match outcome {
            Outcome::Unchanged => {
                assert_eq!(&buf[..], &msg[..], "Unchanged must leave bytes alone");
                (&buf[..], "unchanged")
            }
            Outcome::MaskedInPlace => {
                assert_eq!(buf.len(), before_len);
                (&buf[..], "in place")
            }
            Outcome::Reframed => (&out[..], "reframed"),
        };
        let frame = next_frame(check, usize::MAX)
            .expect("header valid")
            .expect("complete message");
        assert_eq!(
            frame.wire_len(),
            check.len(),
            "{label}: exactly one message"
        );
        assert_eq!(frame.tag, msg[0], "{label}: same tag");
        let parsed = parse_backend(frame).expect("masked message parses");
        assert_eq!(
            message_values(&parsed),
            message_values(&original),
            "{label}: same value count"
        );
        if let (BackendMessage::DataRow { values: a }, BackendMessage::DataRow { values: b }) =
            (&parsed, &original)
        {
            for (x, y) in a.zip(*b) {
                // Same-length styles keep each value's length; only NULLs and
                // redactions may differ, and only when re-framed.
                if outcome != Outcome::Reframed {
                    assert_eq!(x.map(<[u8]>::len), y.map(<[u8]>::len));
                }
            }
        }

        // Arbitrary match sets: same-length styles never change a length
        // and never introduce NUL; redaction output re-frames cleanly.
        let mut findings: Vec<Finding> = Vec::new();
        let value = rest;
        for pair in data.chunks(3).take(16) {
            if let [a, b, d] = *pair {
                let (a, b) = (usize::from(a), usize::from(b));
                let (s, e) = (a.min(b).min(value.len()), a.max(b).min(value.len()));
                findings.push(Finding {
                    start: s,
                    end: e,
                    detector: u16::from(d % 15),
                });
            }
        }
        findings.sort();
        let mut cursor = 0;
        findings.retain(|f| {
            let keep = f.start >= cursor && f.end > f.start;
            if keep {
                cursor = f.end;
            }
            keep
        });
        for st in [Style::Stars, Style::KeepLast4] {
            let mut v = value.to_vec();
            for f in &findings {
                style::mask_span(&mut v, f.start, f.end, st);
            }
            assert_eq!(v.len(), value.len());
            assert_eq!(
                v.iter().filter(|&&b| b == 0).count(),
                value.iter().filter(|&&b| b == 0).count()
            );
            if std::str::from_utf8(value).is_ok() {
                assert!(std::str::from_utf8(&v).is_ok(), "masking keeps UTF-8 valid");
            }
        }
        let mut redacted = Vec::new();
        let engine = &engines()[1];
        style::redact_into(
            value,
            &findings,
            |_| Style::Redact,
            |d| engine.detectors()[usize::from(d)].label.as_bytes(),
            &mut redacted,
        );
        let mut m = BytesMut::new();
        build::copy_data(&mut m, &redacted);
        let f = next_frame(&m, usize::MAX)
            .expect("header")
            .expect("complete");
        assert!(matches!(
            parse_backend(f),
            Ok(BackendMessage::CopyData { .. })
        ));
        let _ = DetectorSet::ALL;
    });
}

/// Longest input [`engine_matches_reference`] scans: the reference scanner
/// tries every start and end, so its cost grows with the square of the
/// length.
pub const REFERENCE_INPUT_BYTES_MAX: usize = 512;

/// Checks the fast engine against the naive reference scanner on one input
/// (panics when their findings differ). The first byte picks the detector
/// set (all of them, or one leaving a detector out), the rest is the text.
/// The property tests draw text from generators of sensitive values; this
/// entry point lets coverage-guided fuzzing find the byte patterns those
/// generators never write (block edges of the bitmask passes, runs of
/// separators, truncated shapes).
pub fn engine_matches_reference(data: &[u8]) {
    static REFERENCE: OnceLock<super::reference::Reference> = OnceLock::new();
    thread_local! {
        static SCANNER: std::cell::RefCell<Option<Scanner>> = const { std::cell::RefCell::new(None) };
    }
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    let text = &text[..text.len().min(REFERENCE_INPUT_BYTES_MAX)];
    let engine = &engines()[0];
    let reference = REFERENCE.get_or_init(|| super::reference::Reference::new(engine.detectors()));
    let set = if usize::from(selector) < super::detectors::Builtin::ALL.len() {
        DetectorSet(DetectorSet::ALL.0 & !(1u64 << selector))
    } else {
        DetectorSet::ALL
    };
    SCANNER.with(|cell| {
        let mut cell = cell.borrow_mut();
        let scanner = cell.get_or_insert_with(|| engine.scanner().expect("scanner"));
        let fast = scanner.scan(text, set);
        assert!(fast.complete, "scan of {} bytes stopped early", text.len());
        let expected = reference.scan(text, set);
        assert_eq!(
            fast.findings,
            expected.as_slice(),
            "engine and reference disagree on {:?}",
            String::from_utf8_lossy(text)
        );
    });
}

/// Longest input [`anchored_walks`] checks: the definitions it compares
/// with read every end of every candidate, so longer inputs only slow the
/// fuzzer down.
const ANCHORED_WALK_BYTES_MAX: usize = 4096;

/// Checks the one-walk recognisers of the anchored detectors against
/// their definitions on arbitrary bytes (panics on a difference): e-mail
/// around every `@`, IBAN from every pair of capitals, IPv6 from the start
/// of every run of hex digits, `:` and `.`, and each token detector from
/// every occurrence of its literals, with and without AVX2.
pub fn anchored_walks(data: &[u8]) {
    use super::anchors::Cpu;
    use super::engine::{
        email_around, email_around_naive, email_around_using, iban_end, iban_end_naive, ipv6_end,
        ipv6_end_naive, token_end, token_end_naive,
    };
    use super::Builtin;
    let t = &data[..data.len().min(ANCHORED_WALK_BYTES_MAX)];
    for at in (0..t.len()).filter(|&i| t[i] == b'@') {
        let expected = email_around_naive(t, at);
        assert_eq!(email_around(t, at), expected, "e-mail at {at}");
        // The vector walk, with AVX2 where the machine has it.
        assert_eq!(
            email_around_using(t, at, Cpu::detect()),
            expected,
            "e-mail (vector walk) at {at}"
        );
    }
    for s in 0..t.len().saturating_sub(1) {
        if t[s].is_ascii_uppercase() && t[s + 1].is_ascii_uppercase() {
            assert_eq!(iban_end(t, s), iban_end_naive(t, s), "IBAN at {s}");
        }
    }
    let in_run = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
    let mut s = 0;
    while s < t.len() {
        if !in_run(t[s]) {
            s += 1;
            continue;
        }
        let end = s + t[s..].iter().take_while(|&&b| in_run(b)).count();
        let dotted = t[s..end].contains(&b'.');
        assert_eq!(
            ipv6_end(t, s, end, dotted),
            ipv6_end_naive(t, s, end),
            "IPv6 run {s}..{end}"
        );
        s = end;
    }
    let literals: [(&[u8], Builtin); 8] = [
        (b"AKIA", Builtin::AwsAccessKeyId),
        (b"ASIA", Builtin::AwsAccessKeyId),
        (b"gh", Builtin::GithubToken),
        (b"github_pat_", Builtin::GithubToken),
        (b"xox", Builtin::SlackToken),
        (b"sk_live_", Builtin::StripeKey),
        (b"rk_live_", Builtin::StripeKey),
        (b"AIza", Builtin::GoogleApiKey),
    ];
    for (literal, kind) in literals {
        // `gh?_` and `xox?-` are completed below.
        let length = match literal {
            b"gh" => 4,
            b"xox" => 5,
            _ => literal.len(),
        };
        for s in (0..t.len()).filter(|&s| t[s..].starts_with(literal)) {
            let full = match length {
                4 if literal == b"gh" => t.get(s + 2..s + 4).is_some_and(|r| {
                    matches!(r[0], b'o' | b'p' | b's' | b'u' | b'r') && r[1] == b'_'
                }),
                5 => t.get(s + 3..s + 5).is_some_and(|r| {
                    matches!(r[0], b'b' | b'a' | b'p' | b'r' | b's') && r[1] == b'-'
                }),
                _ => true,
            };
            if !full {
                continue;
            }
            let expected = token_end_naive(t, s, kind);
            for cpu in [Cpu::detect(), Cpu::portable()] {
                assert_eq!(
                    token_end(t, s, s + length, kind, cpu),
                    expected,
                    "{kind:?} at {s}"
                );
            }
        }
    }
}

/// Type OIDs the binary-value fuzzer picks from: none (unknown shape),
/// text, bytea, int8, text[], record, a dynamic OID (an extension's type)
/// and jsonb.
const FUZZ_TYPES: [u32; 8] = [0, 25, 17, 20, 1009, 2249, 16385, 3802];

/// Appends one length-prefixed item (a length of -1 when `value` is None).
fn push_item(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => {
            out.extend_from_slice(&(v.len() as i32).to_be_bytes());
            out.extend_from_slice(v);
        }
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

/// A one-dimensional binary array (`array_send`) of `element_type`.
pub fn binary_array(element_type: u32, elements: &[Option<&[u8]>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&i32::from(elements.iter().any(|e| e.is_none())).to_be_bytes());
    out.extend_from_slice(&element_type.to_be_bytes());
    out.extend_from_slice(&(elements.len() as i32).to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    for e in elements {
        push_item(&mut out, *e);
    }
    out
}

/// A binary record (`record_send`) of typed fields.
pub fn binary_record(fields: &[(u32, Option<&[u8]>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(fields.len() as i32).to_be_bytes());
    for (t, v) in fields {
        out.extend_from_slice(&t.to_be_bytes());
        push_item(&mut out, *v);
    }
    out
}

/// Checks the walk of binary values, binary COPY data and the hex-run
/// masking on one input
/// (panics on a violation). The first byte chooses the type and whether
/// the rest is taken as it is or built into an array, a record, or a
/// record holding an array, from the pieces between 0xFF bytes.
///
/// Invariants: the length never changes; a changed byte was a letter or
/// digit and became `*` (so the length words of arrays and records, and
/// every NUL, stay as they were); a value that parsed as an array or a
/// record parses to the same element ranges after masking; a hex run
/// stays hex digits.
pub fn binary_values(data: &[u8]) {
    use super::message::{
        binary_array_elements, binary_record_fields, mask_binary_copy_data, mask_binary_value,
        mask_hex_runs,
    };
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let parts = pieces(rest);
    let items: Vec<Option<&[u8]>> = parts
        .iter()
        .map(|p| (p.first() != Some(&0xFE)).then_some(*p))
        .collect();
    let (type_oid, original) = match control >> 3 & 3 {
        0 => (FUZZ_TYPES[usize::from(control & 7)], rest.to_vec()),
        1 => (1009, binary_array(25, &items)),
        2 => {
            let fields: Vec<(u32, Option<&[u8]>)> = items
                .iter()
                .enumerate()
                .map(|(i, v)| (FUZZ_TYPES[i % FUZZ_TYPES.len()], *v))
                .collect();
            (2249, binary_record(&fields))
        }
        _ => {
            let inner = binary_array(16385, &items);
            (
                2249,
                binary_record(&[(1009, Some(&inner)), (25, items.first().copied().flatten())]),
            )
        }
    };
    SCANNERS.with(|cell| {
        let mut slot = cell.borrow_mut();
        let scanners = slot.get_or_insert_with(|| {
            let [a, b] = engines();
            [a.scanner().expect("scratch"), b.scanner().expect("scratch")]
        });
        // Both engines: walks use the same-length form of every style.
        let scanner = &mut scanners[usize::from(control >> 5 & 1)];
        let mut summary = super::MaskSummary::default();
        let mut value = original.clone();
        mask_binary_value(
            scanner,
            DetectorSet::ALL,
            &mut value,
            type_oid,
            None,
            &mut summary,
            0,
        );
        assert_eq!(value.len(), original.len(), "a binary value changed length");
        for (before, after) in original.iter().zip(&value) {
            assert!(
                before == after || (before.is_ascii_alphanumeric() && *after == b'*'),
                "masking wrote {after:#04x} over {before:#04x}"
            );
        }
        assert_eq!(
            binary_array_elements(&original),
            binary_array_elements(&value),
            "an array's structure changed"
        );
        assert_eq!(
            binary_record_fields(&original),
            binary_record_fields(&value),
            "a record's structure changed"
        );

        // The same bytes as one CopyData message of a binary COPY.
        let mut copy = original.clone();
        mask_binary_copy_data(scanner, DetectorSet::ALL, &mut copy, &mut summary);
        assert_eq!(copy.len(), original.len(), "COPY data changed length");
        for (before, after) in original.iter().zip(&copy) {
            assert!(
                before == after || (before.is_ascii_alphanumeric() && *after == b'*'),
                "COPY masking wrote {after:#04x} over {before:#04x}"
            );
        }

        let mut text = original.clone();
        let mut scratch = Vec::new();
        mask_hex_runs(
            scanner,
            DetectorSet::ALL,
            &mut text,
            &mut scratch,
            None,
            &mut summary,
        );
        assert_eq!(text.len(), original.len(), "a hex run changed length");
        for (before, after) in original.iter().zip(&text) {
            assert!(
                before == after || (before.is_ascii_hexdigit() && after.is_ascii_hexdigit()),
                "hex masking wrote {after:#04x} over {before:#04x}"
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::{binary_array, binary_record};
    use crate::masking::message::{
        binary_array_elements, binary_record_fields, mask_binary_value, mask_bytea_text,
        mask_hex_runs,
    };
    use crate::masking::{DetectorSet, Engine, MaskSummary};

    fn scanner() -> crate::masking::Scanner {
        std::sync::Arc::new(Engine::builtin().unwrap())
            .scanner()
            .unwrap()
    }

    #[test]
    fn binary_values_smoke() {
        for control in 0u8..64 {
            let mut d = vec![control];
            d.extend_from_slice(
                b"mail jane@example.com\xffcard 4111 1111 1111 1111\xff\xfe\xff\\x6a616e65406578616d706c652e636f6d",
            );
            super::binary_values(&d);
        }
    }

    /// Round trip: arrays and records (nested) keep their structure and
    /// get their text masked where it sits.
    #[test]
    fn binary_arrays_and_records_round_trip_masked() {
        let mut scanner = scanner();
        let mut summary = MaskSummary::default();
        let array = binary_array(25, &[Some(b"jane@example.com"), None, Some(b"ok")]);
        let record = binary_record(&[
            (23, Some(&[0, 0, 0, 0x40])),
            (1009, Some(&array)),
            (16385, Some(b"536-22-1234")),
        ]);
        let mut value = record.clone();
        assert!(mask_binary_value(
            &mut scanner,
            DetectorSet::ALL,
            &mut value,
            2249,
            None,
            &mut summary,
            0
        ));
        assert_eq!(binary_record_fields(&value), binary_record_fields(&record));
        let expected = binary_record(&[
            (23, Some(&[0, 0, 0, 0x40])),
            (
                1009,
                Some(&binary_array(
                    25,
                    &[Some(b"****@*******.***"), None, Some(b"ok")],
                )),
            ),
            (16385, Some(b"***-**-****")),
        ]);
        assert_eq!(value, expected);
        assert_eq!(summary.total(), 2);
    }

    /// Corruption: a value that claims to be an array or record but is
    /// cut short, overlong, or has impossible counts is not walked; it is
    /// scanned whole, so its text is still masked.
    #[test]
    fn malformed_binary_structures_are_scanned_whole() {
        let mut scanner = scanner();
        let good = binary_array(25, &[Some(b"jane@example.com")]);
        assert!(binary_array_elements(&good).is_some());
        let mut cases: Vec<Vec<u8>> = vec![
            good[..good.len() - 1].to_vec(),
            [good.as_slice(), b"x"].concat(),
        ];
        let mut dims = good.clone();
        dims[3] = 7; // more dimensions than PostgreSQL allows
        cases.push(dims);
        let mut size = good.clone();
        size[12..16].copy_from_slice(&i32::MAX.to_be_bytes());
        cases.push(size);
        let mut negative = good.clone();
        negative[20..24].copy_from_slice(&(-2i32).to_be_bytes());
        cases.push(negative);
        for case in cases {
            assert_eq!(binary_array_elements(&case), None, "{case:?}");
            assert_eq!(binary_record_fields(&case), None, "{case:?}");
            let mut value = case.clone();
            let mut summary = MaskSummary::default();
            mask_binary_value(
                &mut scanner,
                DetectorSet::ALL,
                &mut value,
                1009,
                None,
                &mut summary,
                0,
            );
            assert!(
                !String::from_utf8_lossy(&value).contains("jane@example.com"),
                "{value:?}"
            );
            assert_eq!(value.len(), case.len());
        }
    }

    #[test]
    fn bytea_hex_is_masked_as_hex_of_the_masked_bytes() {
        let mut scanner = scanner();
        let mut summary = MaskSummary::default();
        let hex = |s: &[u8]| -> String { s.iter().map(|b| format!("{b:02x}")).collect() };
        let mut value = format!("\\x{}", hex(b"mail jane@example.com")).into_bytes();
        let mut scratch = Vec::new();
        assert!(mask_bytea_text(
            &mut scanner,
            DetectorSet::ALL,
            &mut value,
            &mut scratch,
            None,
            &mut summary
        ));
        assert_eq!(
            String::from_utf8(value).unwrap(),
            format!("\\x{}", hex(b"mail ****@*******.***"))
        );
        // Inside a record's text and a COPY row, with upper-case digits
        // left as they were where nothing was masked.
        let mut text =
            format!("(\"\\\\x{}\",\\xABCD)", hex(b"card 4111 1111 1111 1111")).into_bytes();
        assert!(mask_hex_runs(
            &mut scanner,
            DetectorSet::ALL,
            &mut text,
            &mut scratch,
            None,
            &mut summary
        ));
        assert_eq!(
            String::from_utf8(text).unwrap(),
            format!("(\"\\\\x{}\",\\xABCD)", hex(b"card **** **** **** 1111"))
        );
        // Short runs and odd digits are left alone.
        let mut short = b"\\x6162 \\x616".to_vec();
        assert!(!mask_hex_runs(
            &mut scanner,
            DetectorSet::ALL,
            &mut short,
            &mut scratch,
            None,
            &mut summary
        ));
    }

    #[test]
    fn rewrite_smoke() {
        for control in 0u8..64 {
            let mut d = vec![control];
            d.extend_from_slice(
                b"mail jane@example.com\xffcard 4111 1111 1111 1111\xff\xfe\xffssn 123-45-6789",
            );
            super::rewrite(&d);
        }
    }

    #[test]
    fn engine_matches_reference_smoke() {
        for selector in [0u8, 10, 11, 12, 14, 200] {
            let mut d = vec![selector];
            d.extend_from_slice(
                b"card 4111-1111-1111-1111, ssn 123 45 6789, +1 (212) 555-0100 at 10.0.0.1; DE89370400440532013000",
            );
            super::engine_matches_reference(&d);
        }
    }

    #[test]
    fn anchored_walks_smoke() {
        super::anchored_walks(
            b"a.b@example.co.uk. DE89 3704 0044 0532 0130 00 fe80::1:2. ::ffff:1.2.3.4 \
              AKIAABCDEFGHIJKLMNOP ghp_0123456789abcdefghijABCDEFGHIJ012345 xoxb-12-ab \
              sk_live_0123456789abcdef AIza0123456789012345678901234567890123x@y",
        );
    }
}
