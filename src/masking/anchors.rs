//! The literal anchors of the built-in token detectors, found without
//! Hyperscan.
//!
//! The built-in anchors are eleven short literals (`@`, `eyJ`, `AKIA`,
//! `ASIA`, `gh[opsur]_`, `github_pat_`, `xox[baprs]-`, `[sr]k_live_`,
//! `AIza`, `-----BEGIN ` and the case-insensitive AWS secret keywords,
//! which all end in `key`). Hyperscan finds them at gigabytes per second
//! on long texts, but each call costs about 540 instructions however short
//! the value is, which on row-sized values (about 160 bytes) was more than
//! the whole search. Here each 64-byte block is compared against one
//! *trigger* per anchor (a byte, or a pair of adjacent bytes, that every
//! occurrence of the anchor contains at a fixed offset) and the few
//! trigger positions are then checked byte by byte. The check is exact, so
//! the anchors reported are the same as Hyperscan's: every end of every
//! occurrence of every anchor literal.

/// One occurrence of a built-in anchor literal: which one, and the offset
/// just past its last byte (what Hyperscan reports as the match end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AnchorHit {
    pub end: usize,
    pub literal: Literal,
}

/// The built-in anchor literals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Literal {
    /// `@` (e-mail).
    At,
    /// `eyJ` (JSON Web Token).
    Jwt,
    /// `AKIA` or `ASIA` (AWS access key id).
    AwsAccessKeyId,
    /// `gh[opsur]_` (GitHub token).
    GithubShort,
    /// `github_pat_` (GitHub fine-grained token).
    GithubPat,
    /// `xox[baprs]-` (Slack token).
    Slack,
    /// `[sr]k_live_` (Stripe key).
    Stripe,
    /// `AIza` (Google API key).
    Google,
    /// `-----BEGIN ` (PEM block).
    PemBegin,
    /// `secret_?(?:access_?)?key`, any case (AWS secret access key).
    AwsSecretKeyword,
}

/// Bytes classified at once.
const BLOCK_BYTES: usize = 64;

/// Trigger bits of one 64-byte block, computed from `bytes` (at least 65
/// bytes: the pairs of the last byte look at the next one). Bit `i` is set
/// when byte `i` may be the trigger byte of an anchor:
///
/// - `@`;
/// - `y` before `J` (the `yJ` of `eyJ`);
/// - `I` before `A` (`AKIA`, `ASIA`) or `z` (`AIza`);
/// - `g` before `h` (`gh?_`);
/// - `b` before `_` (the `b_` of `github_pat_`: `gi` would fire on every
///   `login`);
/// - `x` before `o` (`xox?-`);
/// - `k` before `_` (`sk_live_`), and `k` or `K` before `e` or `E` (the
///   `key` that ends every AWS secret keyword);
/// - `-` before `B` (`-----BEGIN `).
///
/// The byte-by-byte definition, used on CPUs without AVX2 and as the
/// reference of the property test.
pub fn trigger_bits_portable(bytes: &[u8]) -> u64 {
    let mut mask = 0u64;
    for i in 0..BLOCK_BYTES.min(bytes.len()) {
        let b = bytes[i];
        let n = bytes.get(i + 1).copied().unwrap_or(0);
        let hit = match b {
            b'@' => true,
            b'y' => n == b'J',
            b'I' => n == b'A' || n == b'z',
            b'g' => n == b'h',
            b'b' => n == b'_',
            b'x' => n == b'o',
            b'k' => n == b'_' || n == b'e' || n == b'E',
            b'K' => n == b'e' || n == b'E',
            b'-' => n == b'B',
            _ => false,
        };
        mask |= u64::from(hit) << i;
    }
    mask
}

/// Nibble tables of the trigger classes. Each bit of a class byte stands
/// for one anchor: `first` holds the bytes an anchor's trigger may start
/// with and `second` the bytes that may follow. A byte's class is
/// `low[b & 15] & high[b >> 4]`, which is the product of a set of low
/// nibbles and a set of high nibbles: exact for the first bytes, a
/// superset for some second bytes (e.g. `A` or `z` also lets `J` and `q`
/// through), which only costs a byte-by-byte check that fails.
struct NibbleTables {
    first_low: [u8; 16],
    first_high: [u8; 16],
    second_low: [u8; 16],
    second_high: [u8; 16],
}

/// Which first bytes may be followed by which second bytes, one class bit
/// per entry. `@` needs no second byte: every byte is allowed after it,
/// including the zero padding past the end.
const PAIRS: [(&[u8], &[u8]); 8] = [
    (b"@", b""),
    (b"y", b"J"),
    (b"I", b"Az"),
    (b"g", b"h"),
    (b"x", b"o"),
    // `sk_live_` and `github_pat_` share a class: `b` and `k` are exactly
    // the bytes of low nibble 2 or 11 and high nibble 6.
    (b"bk", b"_"),
    (b"kK", b"eE"),
    (b"-", b"B"),
];

const fn nibble_tables() -> NibbleTables {
    let mut t = NibbleTables {
        first_low: [0; 16],
        first_high: [0; 16],
        second_low: [0; 16],
        second_high: [0; 16],
    };
    let mut bit = 0;
    while bit < PAIRS.len() {
        let (first, second) = PAIRS[bit];
        let m = 1u8 << bit;
        let mut i = 0;
        while i < first.len() {
            t.first_low[(first[i] & 15) as usize] |= m;
            t.first_high[(first[i] >> 4) as usize] |= m;
            i += 1;
        }
        if second.is_empty() {
            let mut n = 0;
            while n < 16 {
                t.second_low[n] |= m;
                t.second_high[n] |= m;
                n += 1;
            }
        }
        let mut i = 0;
        while i < second.len() {
            t.second_low[(second[i] & 15) as usize] |= m;
            t.second_high[(second[i] >> 4) as usize] |= m;
            i += 1;
        }
        bit += 1;
    }
    t
}
static TABLES: NibbleTables = nibble_tables();

/// Trigger bits of 64 positions with AVX2: two table lookups (`vpshufb`)
/// per byte class and 32 bytes at a time. A superset of
/// [`trigger_bits_portable`] (property-tested); every bit is checked byte
/// by byte afterwards.
///
/// # Safety
///
/// The CPU must support AVX2, and `bytes` must hold at least 65 bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn trigger_bits_avx2(bytes: &[u8]) -> u64 {
    // SAFETY: the caller's guarantees are those of the two halves.
    unsafe { trigger_halves_avx2::<2>(bytes) }
}

/// [`trigger_bits_avx2`] of the first `HALVES` times 32 positions (one or
/// two).
///
/// # Safety
///
/// The CPU must support AVX2, and `bytes` must hold at least `32 HALVES +
/// 1` bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn trigger_halves_avx2<const HALVES: usize>(bytes: &[u8]) -> u64 {
    use std::arch::x86_64::{
        __m128i, __m256i, _mm256_and_si256, _mm256_broadcastsi128_si256, _mm256_cmpeq_epi8,
        _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8, _mm256_setzero_si256,
        _mm256_shuffle_epi8, _mm256_srli_epi16, _mm_loadu_si128,
    };
    debug_assert!(bytes.len() > HALVES * 32);
    let mut mask = 0u64;
    // SAFETY: the tables are 16 bytes each; `bytes` holds at least
    // `32 HALVES + 1` bytes, so both loads of each half (32 bytes from
    // offset 0 or 32, and from one byte further) stay inside it.
    unsafe {
        let table = |t: &[u8; 16]| {
            _mm256_broadcastsi128_si256(_mm_loadu_si128(t.as_ptr().cast::<__m128i>()))
        };
        let first_low = table(&TABLES.first_low);
        let first_high = table(&TABLES.first_high);
        let second_low = table(&TABLES.second_low);
        let second_high = table(&TABLES.second_high);
        let nibble = _mm256_set1_epi8(0x0f);
        let class = |v: __m256i, low: __m256i, high: __m256i| {
            let lo = _mm256_and_si256(v, nibble);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), nibble);
            _mm256_and_si256(_mm256_shuffle_epi8(low, lo), _mm256_shuffle_epi8(high, hi))
        };
        for half in 0..HALVES {
            let at = bytes.as_ptr().add(half * 32);
            let v = _mm256_loadu_si256(at.cast::<__m256i>());
            let next = _mm256_loadu_si256(at.add(1).cast::<__m256i>());
            let both = _mm256_and_si256(
                class(v, first_low, first_high),
                class(next, second_low, second_high),
            );
            let none = _mm256_cmpeq_epi8(both, _mm256_setzero_si256());
            let bits = !(_mm256_movemask_epi8(none) as u32);
            mask |= u64::from(bits) << (half * 32);
        }
    }
    mask
}

/// Does `text[at..]` start with `literal`?
#[inline(always)]
fn has(text: &[u8], at: usize, literal: &[u8]) -> bool {
    text.get(at..at + literal.len()) == Some(literal)
}

/// The AWS secret keywords without their final `key`, compared without
/// case: `secret_?(?:access_?)?` spelled out.
const SECRET_STEMS: [&[u8]; 6] = [
    b"secret",
    b"secret_",
    b"secretaccess",
    b"secretaccess_",
    b"secret_access",
    b"secret_access_",
];

/// Does an AWS secret keyword stem (any case) end just before `key_at`,
/// where the caller has found `key`?
#[inline]
fn secret_keyword_before(text: &[u8], key_at: usize) -> bool {
    let before = &text[..key_at];
    SECRET_STEMS.iter().any(|stem| {
        before.len() >= stem.len() && before[before.len() - stem.len()..].eq_ignore_ascii_case(stem)
    })
}

/// Reports the anchors whose trigger byte is `text[p]` to `hit`. Inlined
/// into the search, so that each literal's branch calls `hit` with a
/// literal known at compile time (see the engine's `literal_anchor`).
#[inline(always)]
fn check_trigger(text: &[u8], p: usize, sink: &mut impl AnchorSink) {
    let mut report = |end: usize, literal: Literal| sink.hit(AnchorHit { end, literal });
    match text[p] {
        b'@' => report(p + 1, Literal::At),
        b'y' if p >= 1 && text[p - 1] == b'e' && has(text, p + 1, b"J") => {
            report(p + 2, Literal::Jwt);
        }
        b'I' => {
            // `AKIA`/`ASIA`: the `I` is the third byte.
            if p >= 2
                && text[p - 2] == b'A'
                && matches!(text[p - 1], b'K' | b'S')
                && has(text, p + 1, b"A")
            {
                report(p + 2, Literal::AwsAccessKeyId);
            }
            // `AIza`: the `I` is the second byte.
            if p >= 1 && text[p - 1] == b'A' && has(text, p + 1, b"za") {
                report(p + 3, Literal::Google);
            }
        }
        // `gh[opsur]_`.
        b'g' if has(text, p, b"gh")
            && text
                .get(p + 2)
                .is_some_and(|b| matches!(b, b'o' | b'p' | b's' | b'u' | b'r'))
            && has(text, p + 3, b"_") =>
        {
            report(p + 4, Literal::GithubShort);
        }
        // `github_pat_`: the `b` is the sixth byte.
        b'b' if p >= 5 && has(text, p - 5, b"github_pat_") => {
            report(p + 6, Literal::GithubPat);
        }
        b'x' if has(text, p, b"xox")
            && text
                .get(p + 3)
                .is_some_and(|b| matches!(b, b'b' | b'a' | b'p' | b'r' | b's'))
            && has(text, p + 4, b"-") =>
        {
            report(p + 5, Literal::Slack);
        }
        b'k' | b'K' => {
            if text[p] == b'k'
                && p >= 1
                && matches!(text[p - 1], b's' | b'r')
                && has(text, p + 1, b"_live_")
            {
                report(p + 7, Literal::Stripe);
            }
            if text
                .get(p + 1..p + 3)
                .is_some_and(|ey| ey.eq_ignore_ascii_case(b"ey"))
                && secret_keyword_before(text, p)
            {
                report(p + 3, Literal::AwsSecretKeyword);
            }
        }
        b'-' if p >= 4 && has(text, p - 4, b"-----BEGIN ") => {
            report(p + 7, Literal::PemBegin);
        }
        _ => {}
    }
}

/// The CPU features the masking walks use, detected once (a scanner
/// does when it is made) instead of on every call: a detection is an
/// atomic load and a branch, paid per row otherwise. The fields are
/// private, so a value claiming AVX2 can only come from [`Cpu::detect`],
/// which is what makes calling the AVX2 code through it safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu {
    /// AVX2 together with the bit instructions that every AVX2 CPU has
    /// and the AVX2 code paths are compiled with (`bmi1`, `popcnt`).
    avx2: bool,
}

impl Cpu {
    /// The features of the running CPU: the x86-64-v3 level that the
    /// numeric pass detects once per process (a superset of what the AVX2
    /// walks here need), so that one detection, and one
    /// `SLUICE_SIMD_MAX=baseline`, governs every vector path of the engine.
    pub fn detect() -> Self {
        Cpu {
            avx2: super::numeric::level() >= super::numeric::Level::V3,
        }
    }

    /// No optional feature: the portable code paths (for property tests
    /// that compare them with the vector ones).
    pub fn portable() -> Self {
        Cpu { avx2: false }
    }

    /// AVX2, `bmi1` and `popcnt` are present (and were detected).
    #[inline(always)]
    pub fn avx2(self) -> bool {
        self.avx2
    }
}

/// Where the anchor search reports its hits. The engine's sink is a
/// type whose `hit` is always inlined: a closure's body stays one function
/// called from every literal's branch of the search, and each call then
/// dispatched on the literal again; inlined, each branch gets its own copy
/// with the literal known.
pub trait AnchorSink {
    fn hit(&mut self, hit: AnchorHit);
}

/// An [`AnchorSink`] that calls a closure (tests and other callers for
/// whom the dispatch does not matter).
pub struct ForEach<F>(pub F);

impl<F: FnMut(AnchorHit)> AnchorSink for ForEach<F> {
    #[inline]
    fn hit(&mut self, hit: AnchorHit) {
        (self.0)(hit)
    }
}

/// Calls `hit` for every occurrence of every built-in anchor literal in
/// `text`, in order of trigger position.
#[inline]
pub fn find(text: &[u8], hit: impl FnMut(AnchorHit)) {
    find_using(text, Cpu::detect(), hit);
}

/// [`find`] with the features in `cpu`.
#[inline]
pub fn find_using(text: &[u8], cpu: Cpu, hit: impl FnMut(AnchorHit)) {
    find_and_count_colons(text, cpu, hit);
}

/// [`find_using`], also telling whether `text` holds `::` or at least six
/// colons ([`colons_may_hold_ipv6_naive`]), which every valid IPv6 address
/// does. Most rows hold a colon or two (times of day, `host:port`) but no
/// address: counting the colons here costs a compare per 32 bytes that are
/// loaded for the triggers anyway, and spares those rows the IPv6 search's
/// own pass over the text.
#[inline]
pub fn find_and_count_colons(text: &[u8], cpu: Cpu, hit: impl FnMut(AnchorHit)) -> bool {
    find_into(text, cpu, &mut ForEach(hit))
}

/// [`find_and_count_colons`] reporting to an [`AnchorSink`].
#[inline]
pub fn find_into(text: &[u8], cpu: Cpu, sink: &mut impl AnchorSink) -> bool {
    #[cfg(target_arch = "x86_64")]
    if cpu.avx2 {
        // SAFETY: a `Cpu` with `avx2` set comes from `Cpu::detect` only,
        // which also detected `bmi1` and `popcnt`.
        return unsafe { find_avx2(text, sink) };
    }
    let _ = cpu;
    find_with(text, sink, block_bits_portable)
}

/// Whether `text` holds `::` or at least six colons, byte by byte: the
/// definition that [`find_and_count_colons`] is property-tested against.
pub fn colons_may_hold_ipv6_naive(text: &[u8]) -> bool {
    text.windows(2).any(|w| w == b"::") || text.iter().filter(|&&b| b == b':').count() >= 6
}

/// The trigger bits ([`trigger_bits_portable`]) and the colon bits of one
/// 64-byte block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockBits {
    pub trigger: u64,
    pub colon: u64,
}

/// [`BlockBits`] byte by byte (`bytes` holds at least 65 bytes): the
/// portable path and the reference of the property test.
pub fn block_bits_portable(bytes: &[u8]) -> BlockBits {
    let colon = bytes
        .iter()
        .take(BLOCK_BYTES)
        .enumerate()
        .fold(0u64, |m, (i, &b)| m | (u64::from(b == b':') << i));
    BlockBits {
        trigger: trigger_bits_portable(bytes),
        colon,
    }
}

/// [`BlockBits`] with AVX2: [`trigger_bits_avx2`] plus one compare per 32
/// bytes for the colons. The triggers are a superset of the portable ones
/// (checked exactly afterwards); the colons are exact.
///
/// # Safety
///
/// The CPU must support AVX2, and `bytes` must hold at least 65 bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn block_bits_avx2(bytes: &[u8]) -> BlockBits {
    // SAFETY: the caller's guarantees are those of the two halves.
    unsafe { block_halves_avx2::<2>(bytes) }
}

/// [`block_bits_avx2`] of the first `HALVES` times 32 positions (one or
/// two): the partial last block of a text needs one half when at most 32
/// bytes are left.
///
/// # Safety
///
/// The CPU must support AVX2, and `bytes` must hold at least `32 HALVES +
/// 1` bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn block_halves_avx2<const HALVES: usize>(bytes: &[u8]) -> BlockBits {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
    };
    debug_assert!(bytes.len() > HALVES * 32);
    // SAFETY: `bytes` holds at least `32 HALVES + 1` bytes, so the 32-byte
    // load of each half stays inside it; the caller guarantees AVX2. The
    // loads repeat those of `trigger_halves_avx2`, which the compiler
    // merges once both are inlined.
    unsafe {
        let colon = _mm256_set1_epi8(b':' as i8);
        let mut colons = 0u64;
        for half in 0..HALVES {
            let v = _mm256_loadu_si256(bytes.as_ptr().add(half * 32).cast::<__m256i>());
            let bits = _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, colon)) as u32;
            colons |= u64::from(bits) << (half * 32);
        }
        BlockBits {
            trigger: trigger_halves_avx2::<HALVES>(bytes),
            colon: colons,
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,popcnt")]
unsafe fn find_avx2(text: &[u8], hit: &mut impl AnchorSink) -> bool {
    // SAFETY: `find_with` passes at least 65 bytes, and AVX2 is enabled in
    // this function (detected by the caller).
    find_with(text, hit, |b| unsafe { block_halves_avx2::<2>(b) })
}

/// Most trigger positions gathered before they are checked: a block adds
/// at most 64, and positions are checked once more than
/// `POSITIONS_FLUSH` are waiting, so the list never holds more than
/// `POSITIONS_FLUSH + 64`, plus the slots written ahead
/// ([`POSITIONS_AHEAD`]).
const POSITIONS_FLUSH: usize = 8;
/// Positions written for every block whatever its trigger count (see
/// [`Positions::gather`]).
const POSITIONS_AHEAD: usize = 2;
const POSITIONS_MAX: usize = POSITIONS_FLUSH + BLOCK_BYTES + POSITIONS_AHEAD;

/// Trigger positions waiting for their check, in text order. The slots
/// are not initialised: zeroing them cost a `memset` call per scan, and
/// only the first `count`, all written, are ever read.
struct Positions {
    slots: [std::mem::MaybeUninit<u32>; POSITIONS_MAX],
    count: usize,
}

impl Positions {
    #[inline(always)]
    fn new() -> Self {
        Positions {
            slots: [std::mem::MaybeUninit::uninit(); POSITIONS_MAX],
            count: 0,
        }
    }

    /// Appends the positions of the set bits of `mask` (bit `i` is
    /// `at + i`; a scanned value is far shorter than 4 GiB, see
    /// `VALUE_SCAN_BYTES_MAX`, so a position fits in a `u32`). At most
    /// `POSITIONS_FLUSH` positions may be waiting.
    ///
    /// Most blocks hold no trigger or one, and whether a block holds one
    /// depends on the text alone: a loop per block that stopped when its
    /// mask was empty mispredicted its exit about every other block. So the
    /// first [`POSITIONS_AHEAD`] slots are written whatever the mask holds
    /// (slots past the count are overwritten later or never read) and the
    /// count grows by the number of bits; only a block with more triggers
    /// than that loops, which is rare enough to be predicted.
    #[inline(always)]
    fn gather(&mut self, at: usize, mask: u64) {
        let base = self.count;
        let mut left = mask;
        for slot in 0..POSITIONS_AHEAD {
            // `trailing_zeros` of an empty mask is 64: a position past the
            // block, in a slot that the count leaves out.
            self.slots[base + slot].write((at + left.trailing_zeros() as usize) as u32);
            left &= left.wrapping_sub(1);
        }
        let mut slot = base + POSITIONS_AHEAD;
        while left != 0 {
            self.slots[slot].write((at + left.trailing_zeros() as usize) as u32);
            left &= left - 1;
            slot += 1;
        }
        self.count = base + mask.count_ones() as usize;
    }

    /// The waiting positions, in text order; none wait afterwards.
    #[inline(always)]
    fn take(&mut self) -> impl Iterator<Item = usize> + '_ {
        let count = std::mem::take(&mut self.count);
        // SAFETY: `gather` wrote every slot below the count it left.
        self.slots[..count]
            .iter()
            .map(|slot| unsafe { slot.assume_init() } as usize)
    }
}

/// The anchor search over 64-byte blocks; returns whether the text holds
/// `::` or at least six colons.
///
/// The search has three phases: the block bits of every block (the blocks
/// before the last read whole, the last one from a window of the text's
/// last 65 bytes), the trigger positions gathered from them
/// ([`Positions::gather`]), and the exact check of each position
/// ([`check_trigger`]). Gathering the positions of several blocks before
/// checking them makes the checks one loop per row instead of one per
/// block, which halves the loop exits whose outcome depends on the text.
#[inline(always)]
fn find_with(text: &[u8], hit: &mut impl AnchorSink, bits: impl Fn(&[u8]) -> BlockBits) -> bool {
    let n = text.len();
    if n == 0 {
        return false;
    }
    let mut positions = Positions::new();
    let mut colons = 0u32;
    // `::` seen so far, and the colon bit of the previous block's last byte
    // (a `::` may straddle two blocks).
    let mut double = 0u64;
    let mut carry = 0u64;
    let mut take = |block: BlockBits, at: usize, positions: &mut Positions| {
        colons += block.colon.count_ones();
        double |= block.colon & ((block.colon << 1) | carry);
        carry = block.colon >> 63;
        positions.gather(at, block.trigger);
    };
    // The blocks before the last: block `k` is read whole when its window
    // (64 bytes and the next one) fits, i.e. for `k < (n - 1) / 64`.
    let whole = (n - 1) / BLOCK_BYTES;
    for k in 0..whole {
        let at = k * BLOCK_BYTES;
        take(bits(&text[at..at + BLOCK_BYTES + 1]), at, &mut positions);
        if positions.count > POSITIONS_FLUSH {
            for p in positions.take() {
                check_trigger(text, p, hit);
            }
        }
    }
    // The last block, holding 1 to 64 positions from `at` to `n - 1`.
    let at = whole * BLOCK_BYTES;
    let last = text[n - 1];
    let last_bit = (n - 1 - at) as u32;
    let block = if n > BLOCK_BYTES {
        // The window of the last 65 bytes gives the bits of every position
        // but the last (which has no next byte) and repeats some positions
        // of the block before, which the shift drops: `at` is past
        // `n - 65`, so the shift is 1 to 64.
        let from = n - BLOCK_BYTES - 1;
        let shift = (at - from) as u32;
        let window = bits(&text[from..]);
        BlockBits {
            trigger: window.trigger.checked_shr(shift).unwrap_or(0),
            colon: window.colon.checked_shr(shift).unwrap_or(0),
        }
    } else {
        // A text of at most a block: padded with zero bytes, which start
        // no trigger, complete only `@`'s and are no colon.
        let mut padded = [0u8; BLOCK_BYTES + 1];
        padded[..n].copy_from_slice(text);
        bits(&padded)
    };
    // The last byte has no next byte: of the triggers only `@` is complete
    // there.
    let block = BlockBits {
        trigger: block.trigger | (u64::from(last == b'@') << last_bit),
        colon: block.colon | (u64::from(last == b':') << last_bit),
    };
    take(block, at, &mut positions);
    for p in positions.take() {
        check_trigger(text, p, hit);
    }
    double != 0 || colons >= 6
}

/// Every occurrence of every built-in anchor literal, found by comparing
/// each literal at each offset: the definition that [`find`] is
/// property-tested against. Sorted by end, then literal.
pub fn find_naive(text: &[u8]) -> Vec<AnchorHit> {
    let mut out = Vec::new();
    let literal_at = |i: usize, l: &[u8]| text.get(i..i + l.len()) == Some(l);
    for (i, &byte) in text.iter().enumerate() {
        let mut push = |len: usize, literal: Literal| {
            out.push(AnchorHit {
                end: i + len,
                literal,
            })
        };
        if byte == b'@' {
            push(1, Literal::At);
        }
        if literal_at(i, b"eyJ") {
            push(3, Literal::Jwt);
        }
        if literal_at(i, b"AKIA") || literal_at(i, b"ASIA") {
            push(4, Literal::AwsAccessKeyId);
        }
        for c in *b"opsur" {
            if literal_at(i, &[b'g', b'h', c, b'_']) {
                push(4, Literal::GithubShort);
            }
        }
        if literal_at(i, b"github_pat_") {
            push(11, Literal::GithubPat);
        }
        for c in *b"baprs" {
            if literal_at(i, &[b'x', b'o', b'x', c, b'-']) {
                push(5, Literal::Slack);
            }
        }
        if literal_at(i, b"sk_live_") || literal_at(i, b"rk_live_") {
            push(8, Literal::Stripe);
        }
        if literal_at(i, b"AIza") {
            push(4, Literal::Google);
        }
        if literal_at(i, b"-----BEGIN ") {
            push(11, Literal::PemBegin);
        }
    }
    // The keyword regex reports each end once, whichever start matched.
    for e in 0..=text.len() {
        let matched = [
            &b"secretkey"[..],
            b"secret_key",
            b"secretaccesskey",
            b"secret_accesskey",
            b"secretaccess_key",
            b"secret_access_key",
        ]
        .iter()
        .any(|k| e >= k.len() && text[e - k.len()..e].eq_ignore_ascii_case(k));
        if matched {
            out.push(AnchorHit {
                end: e,
                literal: Literal::AwsSecretKeyword,
            });
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &[u8]) -> Vec<AnchorHit> {
        let mut out = Vec::new();
        find(text, |h| out.push(h));
        out.sort();
        out
    }

    #[test]
    fn every_literal_is_found_at_its_end() {
        let text = b"a@b eyJx AKIA ASIA ghp_ github_pat_ xoxb- sk_live_ rk_live_ AIza -----BEGIN SECRET_Access_KEY";
        let hits = found(text);
        assert_eq!(hits, find_naive(text));
        assert_eq!(hits.len(), 12, "{hits:?}");
        assert_eq!(hits.last().map(|h| h.end), Some(text.len()));
    }

    #[test]
    fn literals_across_block_edges_and_at_the_end() {
        for pad in 55..70 {
            let mut text = vec![b'.'; pad];
            text.extend_from_slice(b"-----BEGIN eyJ secretkey");
            assert_eq!(found(&text), find_naive(&text), "pad {pad}");
            assert_eq!(found(&text).len(), 3);
        }
    }
}
