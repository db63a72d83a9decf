//! The per-value shortcuts of the scanner against their definitions: the
//! in-place overlap resolution against [`resolve`], and the colon count
//! that the anchor search reports against a byte-by-byte count, with AVX2
//! and without.

use proptest::prelude::*;
use sluice::masking::anchors::{self, Cpu};
use sluice::masking::engine::{
    ipv6_run_end, ipv6_run_end_naive, token_bytes_present, token_bytes_present_naive,
    token_bytes_present_words,
};
use sluice::masking::{resolve, resolve_in_place, Finding, FINDINGS_MAX};

/// Candidates as the scan passes produce them: some in order and
/// disjoint, some overlapping, some repeated, some empty.
fn candidates() -> impl Strategy<Value = Vec<Finding>> {
    let one = (0usize..200, 0usize..40, 0u16..4).prop_map(|(start, len, detector)| Finding {
        start,
        end: start + len,
        detector,
    });
    prop_oneof![
        // Arbitrary lists.
        proptest::collection::vec(one, 0..12),
        // Lists in order without overlap (the common case of the fast
        // path), sometimes touching.
        proptest::collection::vec((0usize..6, 1usize..20, 0u16..4), 0..12).prop_map(|gaps| {
            let mut at = 0;
            gaps.into_iter()
                .map(|(gap, len, detector)| {
                    let f = Finding {
                        start: at + gap,
                        end: at + gap + len,
                        detector,
                    };
                    at = f.end;
                    f
                })
                .collect()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// Resolving in place keeps exactly the findings of [`resolve`].
    #[test]
    fn resolve_in_place_matches_resolve(c in candidates()) {
        let mut sorted = c.clone();
        let mut expected = Vec::new();
        let expected_complete = resolve(&mut sorted, &mut expected);
        let mut in_place = c;
        let complete = resolve_in_place(&mut in_place);
        prop_assert_eq!(complete, expected_complete);
        prop_assert_eq!(in_place, expected);
    }

    /// The anchor search reports the same anchors with AVX2 and without,
    /// and whether the text holds `::` or six colons exactly as the
    /// byte-by-byte count does, on texts of any length (shorter than a
    /// block, partial last blocks, colons at block edges).
    #[test]
    fn anchor_search_counts_colons_both_ways(t in proptest::collection::vec(
        proptest::sample::select(b"::::a1. @eyJ-Bk_\xff".to_vec()), 0..300)) {
        let expected = anchors::colons_may_hold_ipv6_naive(&t);
        let naive = anchors::find_naive(&t);
        for cpu in [Cpu::detect(), Cpu::portable()] {
            let mut hits = Vec::new();
            let may_hold = anchors::find_and_count_colons(&t, cpu, |h| hits.push(h));
            hits.sort();
            prop_assert_eq!(may_hold, expected, "{:?} {:?}", cpu, String::from_utf8_lossy(&t));
            prop_assert_eq!(&hits, &naive, "{:?}", cpu);
        }
    }

    /// The AVX2 block bits hold exactly the colons of the byte-by-byte
    /// definition, and every trigger of it.
    #[test]
    fn avx2_block_bits_match_portable(bytes in proptest::collection::vec(
        proptest::sample::select(b":@yJIAzghixo_keEK-B\x00\xc9a".to_vec()), 65..80)) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            let portable = anchors::block_bits_portable(&bytes);
            // SAFETY: AVX2 was just detected and `bytes` holds at least 65
            // bytes.
            let fast = unsafe { anchors::block_bits_avx2(&bytes) };
            prop_assert_eq!(fast.colon, portable.colon);
            prop_assert_eq!(fast.trigger & portable.trigger, portable.trigger);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// The word-at-a-time scan of a token body finds `_`, `-` and
    /// lowercase letters exactly where the byte-by-byte definition does,
    /// at every length (shorter than a word, multiples of eight and not).
    #[test]
    fn token_bytes_present_matches_naive(body in proptest::collection::vec(
        proptest::sample::select(b"AZaz09_-MNmn".to_vec()), 0..120)) {
        prop_assert_eq!(token_bytes_present(&body), token_bytes_present_naive(&body));
        prop_assert_eq!(token_bytes_present_words(&body), token_bytes_present_naive(&body));
    }

    /// Bodies of one repeated byte with a single different byte anywhere
    /// (the different byte alone must be found, wherever the overlapping
    /// last word falls).
    #[test]
    fn token_bytes_present_finds_a_single_byte(
        len in 1usize..100, at in any::<proptest::sample::Index>(),
        fill in proptest::sample::select(b"AZ09".to_vec()),
        odd in proptest::sample::select(b"_-az".to_vec()),
    ) {
        let mut body = vec![fill; len];
        body[at.index(len)] = odd;
        prop_assert_eq!(token_bytes_present(&body), token_bytes_present_naive(&body));
        prop_assert_eq!(token_bytes_present_words(&body), token_bytes_present_naive(&body));
        prop_assert_ne!(token_bytes_present(&body), 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// The 16-byte walk over a run of hex digits, `:` and `.` ends where
    /// the byte-by-byte walk does and sees the same dots, from every
    /// start (runs shorter and longer than 16 bytes, ends at the end of
    /// the text, bytes just outside the class: `/`, `;`, `@`, `G`, `g`,
    /// `` ` ``, 0xff).
    #[test]
    fn ipv6_run_end_matches_naive(t in proptest::collection::vec(
        proptest::sample::select(b"09:.afAF/;@Gg`\xff ".to_vec()), 0..80)) {
        for from in 0..=t.len() {
            prop_assert_eq!(ipv6_run_end(&t, from), ipv6_run_end_naive(&t, from), "from {}", from);
        }
    }
}

/// A text of exactly `FINDINGS_MAX + 1` disjoint candidates in order is
/// refused by the fast path as by [`resolve`]; one fewer is accepted.
#[test]
fn resolve_in_place_keeps_the_findings_bound() {
    for count in [FINDINGS_MAX, FINDINGS_MAX + 1] {
        let c: Vec<Finding> = (0..count)
            .map(|i| Finding {
                start: 2 * i,
                end: 2 * i + 1,
                detector: 0,
            })
            .collect();
        let mut expected = Vec::new();
        let expected_complete = resolve(&mut c.clone(), &mut expected);
        let mut in_place = c;
        assert_eq!(resolve_in_place(&mut in_place), expected_complete);
        assert_eq!(expected_complete, count == FINDINGS_MAX);
    }
}
