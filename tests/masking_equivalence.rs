//! The fast engine gives exactly the reference scanner's findings, and each
//! hand-written shape recogniser accepts exactly its regular expression.

use std::sync::Arc;

use proptest::prelude::*;
use regex::bytes::Regex;
use sluice::masking::corpus::{benign, sensitive, Rng};
use sluice::masking::engine::{
    builtin_detectors, CustomDetector, CustomValidator, DetectorDef, DetectorKind,
};
use sluice::masking::numeric::{numeric_sites, numeric_sites_naive, Level};
use sluice::masking::reference::Reference;
use sluice::masking::{anchors, validate};
use sluice::masking::{Builtin, DetectorSet, Engine, Style};

fn detectors_with_custom() -> Vec<DetectorDef> {
    let mut defs = builtin_detectors();
    defs.push(DetectorDef {
        name: "employee_id".into(),
        kind: DetectorKind::Custom(CustomDetector::new("EMP-[0-9]{4,6}", None).unwrap()),
        style: Style::Stars,
        label: "[EMP]".into(),
    });
    defs.push(DetectorDef {
        name: "luhn_ref".into(),
        kind: DetectorKind::Custom(
            CustomDetector::new("REF[0-9]{6,10}", Some(CustomValidator::Luhn)).unwrap(),
        ),
        style: Style::Stars,
        label: "[REF]".into(),
    });
    defs
}

/// Pieces that text is built from: sensitive values, look-alikes, and
/// fragments that sit on the edges of the detectors' languages.
fn piece() -> impl Strategy<Value = String> {
    (any::<u64>(), 0usize..40).prop_map(|(seed, k)| {
        let mut rng = Rng::new(seed);
        match k {
            0..=14 => sensitive(&mut rng, Builtin::ALL[k]),
            15..=22 => benign(&mut rng),
            23 => format!(
                "aws_secret_access_key = {}",
                sensitive(&mut rng, Builtin::AwsSecretKey)
            ),
            24 => format!("EMP-{}", rng.digits_in(3, 7)),
            25 => format!("REF{}", rng.digits_in(5, 11)),
            26 => rng.chars_in(b"0123456789 -.()+", 1, 24),
            27 => rng.chars_in(b"0123456789abcdefABCDEF:.", 1, 30),
            28 => rng.chars_in(b"abcXYZ09._%+-@", 1, 20),
            29 => rng.chars_in(b"AKIASIgh_pxobeyJ.-0123ABC", 1, 30),
            30 => format!(
                "{}{}",
                rng.pick(&["DE", "GB", "NL", "XX"]),
                rng.chars_in(b"0123456789 ABC", 2, 30)
            ),
            31 => format!("+{}", rng.chars_in(b"0123456789 -.", 1, 20)),
            32 => {
                // Two sensitive values glued together.
                let a = {
                    let k = Builtin::ALL[rng.below(15)];
                    sensitive(&mut rng, k)
                };
                let b = {
                    let k = Builtin::ALL[rng.below(15)];
                    sensitive(&mut rng, k)
                };
                format!("{a}{b}")
            }
            33 => rng.chars_in(b"-----BEGIN PRIVATE KEY END\nAB", 1, 40),
            _ => rng.chars_in(b" ,;:\t\n\"'=/", 0, 3),
        }
    })
}

fn text() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        (
            piece(),
            proptest::sample::select(vec!["", " ", ", ", "\t", ":", "-", ".", "\n", "/", "="]),
        ),
        1..8,
    )
    .prop_map(|parts| {
        let mut out = String::new();
        for (p, sep) in parts {
            out.push_str(&p);
            out.push_str(sep);
        }
        out.into_bytes()
    })
}

/// Cases per property: `default` in the suite, more when `PROPTEST_CASES`
/// asks for them (a longer hunt after changing the engine).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn setup() -> (Arc<Engine>, Reference) {
    let defs = detectors_with_custom();
    let reference = Reference::new(&defs);
    (Arc::new(Engine::new(defs).unwrap()), reference)
}

/// The fast engine's findings on `t` (one scanner and reference per test
/// thread, built once) equal the reference scanner's, and the scan ran to
/// completion.
fn assert_matches_reference(t: &[u8], set: DetectorSet) -> Result<(), TestCaseError> {
    thread_local! {
        static S: (std::cell::RefCell<sluice::masking::Scanner>, Reference) = {
            let (e, r) = setup();
            (std::cell::RefCell::new(e.scanner().unwrap()), r)
        };
    }
    S.with(|(scanner, reference)| {
        let mut scanner = scanner.borrow_mut();
        let fast = scanner.scan(t, set);
        prop_assert!(fast.complete);
        let expected = reference.scan(t, set);
        prop_assert_eq!(
            fast.findings,
            expected.as_slice(),
            "text {:?}",
            String::from_utf8_lossy(t)
        );
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2000), ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_reference(t in text(), mask in any::<u64>()) {
        for set in [DetectorSet::ALL, DetectorSet(mask)] {
            assert_matches_reference(&t, set)?;
        }
    }

    /// The block-wise site finder returns exactly the runs and IBAN sites
    /// a byte-by-byte walk finds, including runs that cross 64-byte blocks,
    /// runs just at the length limit, digit-free runs, IBAN sites whose
    /// capitals sit in the previous block, and runs spanning several blocks.
    #[test]
    fn numeric_sites_match_naive_walk(
        parts in proptest::collection::vec(
            (proptest::sample::select(vec![
                "0123456789", "0123456789 -.()+", " ", "ab", "a1.", "\u{e9}9", "-- ", "....",
                "DEGB0123", "Z9 ", "1234567", "123456", "AOPZ@[`{/:", "\u{c9}\u{d0}\u{f0}",
            ]), 0usize..150),
            0..12,
        ),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let mut t = Vec::new();
        for (alphabet, n) in parts {
            t.extend_from_slice(rng.chars(alphabet.as_bytes(), n).as_bytes());
        }
        let naive = numeric_sites_naive(&t);
        // Every classifier the CPU supports: SSE2 compares, AVX2 table
        // lookups, AVX-512 mask tests.
        for level in Level::supported() {
            let fast = numeric_sites(&t, level);
            prop_assert_eq!(&fast, &naive, "level {:?} text {:?}", level, String::from_utf8_lossy(&t));
        }
    }

    #[test]
    fn shapes_match_patterns(k in 0usize..15, s in "[0-9 ().+\\-]{0,24}|[0-9A-Fa-f:.]{0,24}|[A-Za-z0-9._%+\\-@]{0,30}|[A-Z0-9 ]{0,40}|[A-Za-z0-9_.\\-]{0,60}") {
        let b = Builtin::ALL[k];
        let re = Regex::new(&format!("(?-u)^(?:{})$", b.pattern())).unwrap();
        prop_assert_eq!(b.shape(s.as_bytes()), re.is_match(s.as_bytes()), "{:?} on {:?}", b, s);
    }

    #[test]
    fn shapes_match_patterns_on_generated_values(k in 0usize..15, seed in any::<u64>(), cut in 0usize..8, pos in any::<usize>()) {
        let b = Builtin::ALL[k];
        let mut rng = Rng::new(seed);
        let mut v = { let k = Builtin::ALL[rng.below(15)]; sensitive(&mut rng, k) }.into_bytes();
        // Damage the value a little so both sides see near misses too.
        for _ in 0..cut {
            if v.is_empty() { break; }
            let i = pos % v.len();
            match rng.below(3) {
                0 => { v.remove(i); }
                1 => v.insert(i, *rng.pick(b" -.()+:@_AZaz09")),
                _ => v[i] = *rng.pick(b" -.()+:@_AZaz09"),
            }
        }
        let re = Regex::new(&format!("(?-u)^(?:{})$", b.pattern())).unwrap();
        prop_assert_eq!(b.shape(&v), re.is_match(&v), "{:?} on {:?}", b, String::from_utf8_lossy(&v));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(3000), ..ProptestConfig::default() })]

    /// The block-wise anchor finder reports exactly the occurrences of the
    /// built-in anchor literals that comparing every literal at every
    /// offset finds (texts of anchor fragments, any length, so literals
    /// cross 64-byte blocks and sit at the very end).
    #[test]
    fn anchors_match_naive_search(
        parts in proptest::collection::vec(
            (proptest::sample::select(vec![
                "@", "eyJ", "AKIA", "ASIA", "AIza", "ghp_", "ghx_", "github_pat_", "xoxb-",
                "xoxz-", "sk_live_", "rk_live_", "-----BEGIN ", "----BEGIN", "secret", "Secret_",
                "ACCESS", "access_", "KEY", "key", "kEy", "yJ", "IA", "Iz", "k_", "x", "a", " ",
                "\u{e9}", "0123",
            ]), 1usize..4),
            0..40,
        ),
    ) {
        let mut t = Vec::new();
        for (piece, n) in parts {
            for _ in 0..n {
                t.extend_from_slice(piece.as_bytes());
            }
        }
        let mut fast = Vec::new();
        anchors::find(&t, |h| fast.push(h));
        fast.sort();
        prop_assert_eq!(fast, anchors::find_naive(&t), "text {:?}", String::from_utf8_lossy(&t));
    }

    /// The AVX2 trigger bits hold every bit of the byte-by-byte definition
    /// (they may hold more: each bit is checked exactly afterwards).
    #[test]
    fn avx2_trigger_bits_cover_portable(bytes in proptest::collection::vec(
        proptest::sample::select(b"@yJIAzghixo_keEK-B\x00\xc9a".to_vec()), 65..66)) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            let portable = anchors::trigger_bits_portable(&bytes);
            // SAFETY: AVX2 was just detected and `bytes` holds 65 bytes.
            let fast = unsafe { anchors::trigger_bits_avx2(&bytes) };
            prop_assert_eq!(fast & portable, portable);
        }
    }

    /// The byte-level IPv6 grammar accepts exactly what the standard
    /// library's `Ipv6Addr` parser accepts.
    #[test]
    fn ipv6_grammar_matches_std(
        s in "[0-9a-fA-F:.]{0,45}|([0-9a-f]{0,5}[:.]{1,2}){1,10}[0-9a-f]{0,5}|([0-9a-f]{0,4}:){0,7}(:|[0-9]{1,4}(\\.[0-9]{1,4}){0,4})"
    ) {
        prop_assert_eq!(validate::ipv6(s.as_bytes()), validate::ipv6_std(s.as_bytes()), "{:?}", s);
    }

    #[test]
    fn ipv6_grammar_matches_std_on_generated_values(seed in any::<u64>(), cut in 0usize..4, pos in any::<usize>()) {
        let mut rng = Rng::new(seed);
        let mut v = sensitive(&mut rng, Builtin::Ipv6).into_bytes();
        for _ in 0..cut {
            let i = pos % (v.len() + 1);
            match rng.below(3) {
                0 if i < v.len() => { v.remove(i); }
                1 => v.insert(i, *rng.pick(b":.0f9")),
                _ if i < v.len() => v[i] = *rng.pick(b":.0f9"),
                _ => {}
            }
        }
        prop_assert_eq!(validate::ipv6(&v), validate::ipv6_std(&v), "{:?}", String::from_utf8_lossy(&v));
    }

    /// The chunked mod-97 equals the digit-by-digit definition.
    #[test]
    fn mod97_matches_digit_by_digit(s in "[A-Z0-9]{0,40}") {
        let b = s.as_bytes();
        let (head, tail) = b.split_at(4.min(b.len()));
        let mut rem = 0u32;
        for &c in tail.iter().chain(head) {
            rem = if c.is_ascii_digit() {
                (rem * 10 + u32::from(c - b'0')) % 97
            } else {
                (rem * 100 + u32::from(c - b'A') + 10) % 97
            };
        }
        prop_assert_eq!(validate::mod97(b), rem);
    }
}

#[test]
fn every_generated_sensitive_value_is_found_alone() {
    let (engine, reference) = setup();
    let mut scanner = engine.scanner().unwrap();
    let mut rng = Rng::new(7);
    for i in 0..3000 {
        let kind = Builtin::ALL[i % 15];
        let mut v = sensitive(&mut rng, kind);
        if kind == Builtin::AwsSecretKey {
            v = format!("secret_key={v}");
        }
        let f = scanner.scan(v.as_bytes(), DetectorSet::ALL);
        assert!(
            f.findings.iter().any(|f| f.detector == kind as u16),
            "{kind:?} not found in {v:?}: {:?}",
            f.findings
        );
        assert_eq!(
            f.findings,
            reference.scan(v.as_bytes(), DetectorSet::ALL).as_slice()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1500), ..ProptestConfig::default() })]

    /// Numeric runs longer than a block's worth of bits
    /// (`RUN_BITS_BYTES_MAX`) are walked a byte at a time, and shorter ones
    /// from their bits: both walks give the reference's findings, including
    /// runs that straddle 64-byte blocks. The runs here are numbers
    /// (sensitive and look-alike) glued by the separators numeric runs
    /// allow, so they grow well past 64 bytes.
    #[test]
    fn long_numeric_runs_match_reference(
        parts in proptest::collection::vec(
            (any::<u64>(), 0usize..7, proptest::sample::select(vec![" ", "-", ".", " (", ") ", "+", "  "])),
            2..16,
        ),
        lead in "[a-z ]{0,70}",
    ) {
        let mut t = lead.into_bytes();
        for (seed, kind, sep) in parts {
            let mut rng = Rng::new(seed);
            let piece = match kind {
                0 => sensitive(&mut rng, Builtin::Card),
                1 => sensitive(&mut rng, Builtin::Ssn),
                2 => sensitive(&mut rng, Builtin::Phone),
                3 => sensitive(&mut rng, Builtin::Ipv4),
                4 => benign(&mut rng),
                5 => rng.digits_in(1, 20),
                _ => rng.chars_in(b"0123456789 -.()+", 1, 24),
            };
            t.extend_from_slice(piece.as_bytes());
            t.extend_from_slice(sep.as_bytes());
        }
        assert_matches_reference(&t, DetectorSet::ALL)?;
    }
}

/// `make test` runs this suite again with `SLUICE_SIMD_MAX` set, so that
/// the lower builds of the engine are checked end to end on a CPU that has
/// the higher ones; those runs only mean something if the cap took effect.
#[test]
fn detected_level_is_the_one_the_cpu_has() {
    // `make test` runs this suite once more on an emulated CPU without AVX
    // (`qemu-x86_64 -cpu Nehalem`) with `SLUICE_SIMD_EXPECT=baseline`, so
    // that the portable paths are tested as a CPU without AVX2 chooses
    // them, not only as `SLUICE_SIMD_MAX` forces them. Elsewhere the level
    // depends on the machine and there is nothing to expect.
    let Ok(expected) = std::env::var("SLUICE_SIMD_EXPECT") else {
        return;
    };
    let detected = match Level::detect() {
        Level::Baseline => "baseline",
        Level::V3 => "v3",
        Level::V4 => "v4",
    };
    assert_eq!(detected, expected, "SIMD level detected on this CPU");
}

#[test]
fn simd_cap_from_the_environment_takes_effect() {
    let cap = match std::env::var("SLUICE_SIMD_MAX").as_deref() {
        Ok("baseline") => Level::Baseline,
        Ok("v3") => Level::V3,
        _ => Level::V4,
    };
    assert!(Level::detect() <= cap);
    let top = Level::supported().into_iter().max();
    assert!(
        top.is_some_and(|level| level <= cap),
        "{top:?} above {cap:?}"
    );
}
