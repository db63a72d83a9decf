//! The one-walk recognisers of the anchored detectors (tokens, e-mail,
//! IBAN, IPv6) give exactly what their definitions give: the naive
//! versions check every end from the longest down with the detector's
//! shape, boundaries and validator, as the engine used to.

use proptest::prelude::*;
use sluice::masking::anchors::Cpu;
use sluice::masking::corpus::{sensitive, Rng};
use sluice::masking::engine::{
    builtin_detectors, colon_dot_bits, colon_dot_bits_naive, email_around, email_around_naive,
    email_around_using, iban_end, iban_end_naive, ipv6_end, ipv6_end_naive, token_end,
    token_end_naive, Colons,
};
use sluice::masking::reference::Reference;
use sluice::masking::{validate, Builtin, DetectorSet, Engine};

/// Texts glued from `pieces` (each repeated 1 to 3 times), so that the
/// walks meet the pieces' edges: long runs, doubled separators, values
/// cut short or run into each other.
fn glued(pieces: Vec<&'static str>, count: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec((proptest::sample::select(pieces), 1usize..4), 0..count).prop_map(
        |parts| {
            let mut t = Vec::new();
            for (piece, n) in parts {
                for _ in 0..n {
                    t.extend_from_slice(piece.as_bytes());
                }
            }
            t
        },
    )
}

/// A generated sensitive value of `kind`, damaged `cut` times with bytes
/// from `alphabet` (removed, inserted or replaced), inside `before` and
/// `after`.
fn damaged(kind: Builtin, alphabet: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u64>(),
        0usize..4,
        any::<usize>(),
        0usize..6,
        0usize..6,
    )
        .prop_map(move |(seed, cut, pos, before, after)| {
            let mut rng = Rng::new(seed);
            let mut v = sensitive(&mut rng, kind).into_bytes();
            for _ in 0..cut {
                let i = pos % (v.len() + 1);
                match rng.below(3) {
                    0 if i < v.len() => {
                        v.remove(i);
                    }
                    1 => v.insert(i, *rng.pick(alphabet)),
                    _ if i < v.len() => v[i] = *rng.pick(alphabet),
                    _ => {}
                }
            }
            let mut t = rng.chars(alphabet, before).into_bytes();
            t.extend_from_slice(&v);
            t.extend_from_slice(rng.chars(alphabet, after).as_bytes());
            t
        })
}

const EMAIL_BYTES: &[u8] = b"aZ9._%+-@ ,_\xe9";

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// The e-mail walk finds the candidate the definition finds around
    /// every `@`, on texts of e-mail fragments: long local parts and
    /// labels (at and past 63 and 64 bytes), many labels, dots doubled or
    /// at the end, digits and dashes in the top-level domain.
    #[test]
    fn email_walk_matches_definition(t in glued(vec![
        "@", "a", "Z", "9", ".", "-", "_", "%", "+", " ", ",", "\u{e9}", "example", "co",
        "abcdefghijklmnopqrstuvwxyz0123456789", "x.y.z.", "user@example.com", ".org",
        "..", "@@", "-.", "a1", "com_",
    ], 60)) {
        for at in (0..t.len()).filter(|&i| t[i] == b'@') {
            let expected = email_around_naive(&t, at);
            prop_assert_eq!(email_around(&t, at), expected,
                "@ at {} in {:?}", at, String::from_utf8_lossy(&t));
            for cpu in [Cpu::detect(), Cpu::portable()] {
                prop_assert_eq!(email_around_using(&t, at, cpu), expected,
                    "{:?}, @ at {} in {:?}", cpu, at, String::from_utf8_lossy(&t));
            }
        }
    }

    #[test]
    fn email_walk_matches_definition_on_generated_values(t in damaged(Builtin::Email, EMAIL_BYTES)) {
        for at in (0..t.len()).filter(|&i| t[i] == b'@') {
            let expected = email_around_naive(&t, at);
            prop_assert_eq!(email_around(&t, at), expected,
                "@ at {} in {:?}", at, String::from_utf8_lossy(&t));
            for cpu in [Cpu::detect(), Cpu::portable()] {
                prop_assert_eq!(email_around_using(&t, at, cpu), expected,
                    "{:?}, @ at {} in {:?}", cpu, at, String::from_utf8_lossy(&t));
            }
        }
    }

    /// The token walk finds the end the definition finds from every
    /// occurrence of a token literal, with and without AVX2, on runs of
    /// token bytes shorter than, as long as and longer than each shape.
    #[test]
    fn token_walk_matches_definition(t in glued(vec![
        "AKIA", "ASIA", "ghp_", "github_pat_", "xoxb-", "sk_live_", "rk_live_", "AIza",
        "ABCDEFGHIJ", "0123456789", "abcdefghij", "_", "-", " ", ".", "\u{e9}",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz",
    ], 30)) {
        check_tokens(&t)?;
    }

    #[test]
    fn token_walk_matches_definition_on_generated_values(
        k in 0usize..5,
        seed in any::<u64>(),
    ) {
        let kind = [
            Builtin::AwsAccessKeyId,
            Builtin::GithubToken,
            Builtin::SlackToken,
            Builtin::StripeKey,
            Builtin::GoogleApiKey,
        ][k];
        let mut rng = Rng::new(seed);
        let head = rng.below(4);
        let mut t = rng.chars(b"aZ9_- ", head).into_bytes();
        t.extend_from_slice(sensitive(&mut rng, kind).as_bytes());
        let tail = rng.below(5);
        t.extend_from_slice(rng.chars(b"aZ9_- .", tail).as_bytes());
        check_tokens(&t)?;
    }
}

/// Compares [`token_end`] with its definition from every occurrence of
/// every token literal in `t`.
fn check_tokens(t: &[u8]) -> Result<(), TestCaseError> {
    let literals: [(&[u8], Builtin); 14] = [
        (b"AKIA", Builtin::AwsAccessKeyId),
        (b"ASIA", Builtin::AwsAccessKeyId),
        (b"ghp_", Builtin::GithubToken),
        (b"gho_", Builtin::GithubToken),
        (b"github_pat_", Builtin::GithubToken),
        (b"xoxb-", Builtin::SlackToken),
        (b"xoxa-", Builtin::SlackToken),
        (b"xoxp-", Builtin::SlackToken),
        (b"xoxr-", Builtin::SlackToken),
        (b"xoxs-", Builtin::SlackToken),
        (b"sk_live_", Builtin::StripeKey),
        (b"rk_live_", Builtin::StripeKey),
        (b"AIza", Builtin::GoogleApiKey),
        (b"ghu_", Builtin::GithubToken),
    ];
    for (literal, kind) in literals {
        for s in (0..t.len()).filter(|&s| t[s..].starts_with(literal)) {
            let expected = token_end_naive(t, s, kind);
            for cpu in [Cpu::detect(), Cpu::portable()] {
                prop_assert_eq!(
                    token_end(t, s, s + literal.len(), kind, cpu),
                    expected,
                    "{:?} at {} in {:?}",
                    kind,
                    s,
                    String::from_utf8_lossy(t)
                );
            }
        }
    }
    Ok(())
}

const IBAN_BYTES: &[u8] = b"AZ09 _a-";
const IPV6_BYTES: &[u8] = b"0aF:.g ";

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// The IBAN walk (shape and mod-97 in one pass) finds the end the
    /// definition finds from every pair of capitals.
    #[test]
    fn iban_walk_matches_definition(t in glued(vec![
        "DE", "GB", "NL", "NO", "LC", "XX", "89", "0", "1234", "ABCD", " ", "  ", "_", "a",
        "DE89370400440532013000", "DE89 3704 0044 0532 0130 00", "GB29NWBK60161331926819",
        "NO9386011117947", "3704 ",
    ], 20)) {
        check_ibans(&t)?;
    }

    #[test]
    fn iban_walk_matches_definition_on_generated_values(t in damaged(Builtin::Iban, IBAN_BYTES)) {
        check_ibans(&t)?;
    }

    /// The IPv6 end search (the end of the run, then its dots) finds the
    /// end the definition finds from the start of every run of hex digits,
    /// `:` and `.`: runs longer than an address, trailing dots, embedded
    /// IPv4 addresses, `::` anywhere.
    #[test]
    fn ipv6_end_matches_definition(t in glued(vec![
        ":", "::", ".", "..", "0", "a", "F", "ffff", "2001", "db8", "1.2.3.4", "fe80::1",
        "::ffff:10.0.0.1", "1:2:3:4:5:6:7:8", " ", "g", "_", ".a", ". ",
    ], 24)) {
        check_ipv6(&t)?;
    }

    #[test]
    fn ipv6_end_matches_definition_on_generated_values(t in damaged(Builtin::Ipv6, IPV6_BYTES)) {
        check_ipv6(&t)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// Telling the IPv6 grammar that a candidate may hold dots when it
    /// holds none (the engine knows it per run, not per candidate) changes
    /// nothing; telling it the truth agrees with the standard library.
    #[test]
    fn ipv6_grammar_with_dots_matches_std(
        s in "[0-9a-fA-F:.]{0,45}|([0-9a-f]{0,5}[:.]{1,2}){1,10}[0-9a-f]{0,5}|([0-9a-f]{0,4}:){0,7}(:|[0-9]{1,4}(\\.[0-9]{1,4}){0,4})"
    ) {
        let c = s.as_bytes();
        let expected = validate::ipv6_std(c);
        prop_assert_eq!(validate::ipv6_with_dots(c, true), expected, "{:?}", s);
        prop_assert_eq!(validate::ipv6_with_dots(c, c.contains(&b'.')), expected, "{:?}", s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// The IPv6 grammar on colon and dot bits agrees with the byte-wise
    /// grammar (and so with the standard library) on every candidate the
    /// engine can hand it: hex digits, `:` and `.` only, up to 63 bytes,
    /// with bits set past the candidate's end (the engine's bits cover the
    /// 64 bytes from the start).
    #[test]
    fn ipv6_in_run_agrees_with_grammar(
        s in "[0-9a-fA-F:.]{0,63}|([0-9a-f]{0,5}[:.]{1,2}){1,10}[0-9a-f]{0,5}|([0-9a-f]{0,4}:){0,7}(:|[0-9]{1,4}(\\.[0-9]{1,4}){0,4})|(([0-9a-f]{1,4}:){0,6}|::)(25[0-6]|1?[0-9]{1,2}|0[0-9])(\\.(25[0-6]|1?[0-9]{1,2}|0[0-9])){3}",
        junk in any::<u64>(),
    ) {
        let c = s.as_bytes();
        prop_assume!(c.len() < 64);
        let bits = |byte: u8| c.iter().enumerate().fold(0u64, |m, (i, &b)| m | (u64::from(b == byte) << i));
        let past_end = junk & !((1u64 << c.len()) - 1);
        prop_assert_eq!(
            validate::ipv6_in_run(c, bits(b':') | past_end, bits(b'.') | (past_end << 1)),
            validate::ipv6(c),
            "{:?}", s
        );
    }

    /// The colon and dot bits of the 64 bytes from every position agree
    /// with a byte-by-byte walk, on texts shorter and longer than 64 bytes.
    #[test]
    fn colon_dot_bits_match_naive(t in proptest::collection::vec(
        proptest::sample::select(b":.a1 ".to_vec()), 0..200)) {
        for s in 0..=t.len() {
            prop_assert_eq!(colon_dot_bits(&t, s), colon_dot_bits_naive(&t, s), "s {}", s);
        }
    }

    /// The colon finder returns every `:` position in order, with AVX2
    /// and with the SSE2 compares, on texts of any length (partial last
    /// blocks, texts shorter than a block).
    #[test]
    fn colons_match_naive_walk_both_ways(t in proptest::collection::vec(
        proptest::sample::select(b":a1.: \xff".to_vec()), 0..300)) {
        let naive: Vec<usize> = (0..t.len()).filter(|&i| t[i] == b':').collect();
        for cpu in [Cpu::detect(), Cpu::portable()] {
            let fast: Vec<usize> = Colons::with_cpu(&t, cpu).collect();
            prop_assert_eq!(&fast, &naive, "{:?}", cpu);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// On texts longer than the colon masks the IPv6 search keeps on the
    /// stack (eight blocks of 64 bytes), it searches the colons twice; the
    /// findings are still the reference's.
    #[test]
    fn ipv6_in_long_texts_matches_reference(t in glued(vec![
        "2001:db8::1", "fe80::1:2:3", "::ffff:1.2.3.4", "12:34:56", "host:5432", "1:2:3:4:5:6:7:8",
        " ", ", ", ".", "abc", "::", ":",
    ], 120)) {
        thread_local! {
            static R: Reference = Reference::new(&builtin_detectors());
            static S: std::cell::RefCell<sluice::masking::Scanner> = std::cell::RefCell::new(
                std::sync::Arc::new(Engine::builtin().unwrap()).scanner().unwrap(),
            );
        }
        let set = DetectorSet::builtin(Builtin::Ipv6);
        let expected = R.with(|r| r.scan(&t, set));
        S.with(|s| {
            let mut s = s.borrow_mut();
            let fast = s.scan(&t, set);
            prop_assert!(fast.complete);
            prop_assert_eq!(fast.findings, expected.as_slice(), "{} bytes", t.len());
            Ok(())
        })?;
    }
}

/// Compares [`iban_end`] with its definition from every pair of capitals
/// in `t`.
fn check_ibans(t: &[u8]) -> Result<(), TestCaseError> {
    for s in 0..t.len().saturating_sub(1) {
        if t[s].is_ascii_uppercase() && t[s + 1].is_ascii_uppercase() {
            prop_assert_eq!(
                iban_end(t, s),
                iban_end_naive(t, s),
                "at {} in {:?}",
                s,
                String::from_utf8_lossy(t)
            );
        }
    }
    Ok(())
}

/// Compares [`ipv6_end`] with its definition from the start of every
/// maximal run of hex digits, `:` and `.` in `t`.
fn check_ipv6(t: &[u8]) -> Result<(), TestCaseError> {
    let in_run = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
    let mut s = 0;
    while s < t.len() {
        if !in_run(t[s]) {
            s += 1;
            continue;
        }
        let mut end = s;
        while end < t.len() && in_run(t[end]) {
            end += 1;
        }
        let dotted = t[s..end].contains(&b'.');
        let expected = ipv6_end_naive(t, s, end);
        prop_assert_eq!(
            ipv6_end(t, s, end, dotted),
            expected,
            "run {}..{} in {:?}",
            s,
            end,
            String::from_utf8_lossy(t)
        );
        s = end;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// The table-driven boundaries agree with the byte predicates that
    /// define them, for every detector, at every start and end of texts
    /// of the bytes they tell apart (and bytes above 0x7f).
    #[test]
    fn boundaries_match_byte_predicates(t in proptest::collection::vec(
        proptest::sample::select(b"aZ09_-./+=%:@ ,\xe9\x80".to_vec()), 0..24)) {
        for b in Builtin::ALL {
            for i in 0..=t.len() {
                prop_assert_eq!(b.left_ok(&t, i), b.left_ok_naive(&t, i), "{:?} left {} {:?}", b, i, t);
                prop_assert_eq!(b.right_ok(&t, i), b.right_ok_naive(&t, i), "{:?} right {} {:?}", b, i, t);
            }
        }
    }
}
