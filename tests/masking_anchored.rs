//! The one-walk recognisers of the anchored detectors (tokens, e-mail,
//! IBAN, IPv6) give exactly what their definitions give: the naive
//! versions check every end from the longest down with the detector's
//! shape, boundaries and validator, as the engine used to.

use proptest::prelude::*;
use sluice::masking::anchors::Cpu;
use sluice::masking::corpus::{sensitive, Rng};
use sluice::masking::engine::{email_around, email_around_naive, token_end, token_end_naive};
use sluice::masking::Builtin;

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
fn damaged(
    kind: Builtin,
    alphabet: &'static [u8],
) -> impl Strategy<Value = Vec<u8>> {
    (any::<u64>(), 0usize..4, any::<usize>(), 0usize..6, 0usize..6).prop_map(
        move |(seed, cut, pos, before, after)| {
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
        },
    )
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
            prop_assert_eq!(email_around(&t, at), email_around_naive(&t, at),
                "@ at {} in {:?}", at, String::from_utf8_lossy(&t));
        }
    }

    #[test]
    fn email_walk_matches_definition_on_generated_values(t in damaged(Builtin::Email, EMAIL_BYTES)) {
        for at in (0..t.len()).filter(|&i| t[i] == b'@') {
            prop_assert_eq!(email_around(&t, at), email_around_naive(&t, at),
                "@ at {} in {:?}", at, String::from_utf8_lossy(&t));
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
