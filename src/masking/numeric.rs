//! The numeric pass: cards, SSNs, phone numbers and IPv4 addresses (and
//! the places where IBANs start), found from bitmasks.
//!
//! # How
//!
//! [`classify_text`] turns the text into [`Classes`]: one bit array per
//! class of byte (digits, `[ ().+-]` (the bytes of numeric runs), dots,
//! capitals, `+` and `(` (where only phone numbers start), and `2`-`6`),
//! 64 bytes per step with two nibble-table lookups. From those,
//! the site loop gets with a few shifts and ANDs per block the two kinds
//! of place that need work: runs of at least [`RUN_BYTES_MIN`] numeric
//! bytes (every card, SSN, phone number and IPv4 address lies inside one)
//! and digits after two capitals (IBAN check digits). Text outside those
//! (most of it, including the short runs of digits in hex strings, tokens
//! and words) costs a fraction of an instruction per byte.
//!
//! A run's bits are read at its first byte with one unaligned load and a
//! shift per class, one class at a time, and the run is dropped at the
//! first count that rules every detector out. For a run that stays, each
//! detector's necessary conditions are bit masks over all of its group
//! starts at once: the SSN and IPv4 digit layouts, the first digits of
//! card brands, and the digits left after a start (one `pdep`). Only the
//! starts that pass every mask are read byte by byte (in PII-dense rows,
//! about one start in ten). A North American number's first group is
//! checked per start (`nanp_may_start`: a lookup on the group's length
//! and first digit) once ten digits are known to follow: as a mask over
//! all starts it cost more than the few starts it spared. The detectors'
//! shapes are nearly deterministic from a start: one end for SSNs, IPv4
//! addresses and North American numbers, and for cards the group ends
//! holding 13 to 19 digits, whose Luhn sums are masked byte sums
//! ([`card_end_fast`]). Only `+` starts
//! (E.164 and international numbers, whose groups can end anywhere) try
//! every end. Every shortcut is a necessary condition of the definition in
//! [`super::detectors`], never a heuristic; the property tests in
//! `tests/masking_equivalence.rs` check the outcome against the reference
//! scanner, and the unit tests below each bit mask against a walk over its
//! bits.
//!
//! The vector build ([`Level::V3`]: AVX2 and BMI2; [`Level::V4`] adds an
//! AVX-512 classification) is chosen once per process (the anchor and IPv6
//! walks take it too, through [`super::anchors::Cpu::detect`]).
//! `SLUICE_SIMD_MAX=baseline` forces the portable paths and
//! `SLUICE_SIMD_MAX=v3` stops at AVX2; `make test` runs the equivalence
//! suite at each level this CPU has.

use super::detectors::Builtin;
use super::validate;
use super::{DetectorId, DetectorSet, Finding, CANDIDATES_MAX};

/// Bytes of the runs the numeric detectors live in.
const fn numeric_class() -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = b'0';
    while b <= b'9' {
        t[b as usize] = true;
        b += 1;
    }
    t[b' ' as usize] = true;
    t[b'(' as usize] = true;
    t[b')' as usize] = true;
    t[b'.' as usize] = true;
    t[b'+' as usize] = true;
    t[b'-' as usize] = true;
    t
}
static NUMERIC: [bool; 256] = numeric_class();

/// A maximal run of digits and `[ ().+-]` at least [`RUN_BYTES_MIN`]
/// bytes long that holds at least one digit: every card, SSN, phone number
/// and IPv4 address lies inside one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumericRun {
    pub start: usize,
    pub end: usize,
    pub digits: usize,
    pub dots: usize,
    /// For runs of at most [`RUN_BITS_BYTES_MAX`] bytes, bit `i` is set
    /// when byte `start + i` is a digit (zero for longer runs): the walk
    /// over the run then finds digit groups, their lengths and the digits
    /// left after a start with shifts and bit counts.
    pub digit_bits: u64,
    /// Bit `i`: byte `start + i` is `.` (same length limit).
    pub dot_bits: u64,
    /// Bit `i`: byte `start + i` is `+` or `(`, where only phone numbers
    /// start (same length limit).
    pub open_bits: u64,
    /// Bit `i`: byte `start + i` is `2` to `6`, what every card brand's
    /// number starts with (same length limit).
    pub card_first_bits: u64,
}

/// Longest run whose bytes are described by [`NumericRun::digit_bits`]
/// and friends; longer runs (rare: a long list of numbers) are walked a
/// byte at a time.
pub const RUN_BITS_BYTES_MAX: usize = WINDOW_BITS - 1;

/// Where the numeric pass has work to do, left to right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericSite {
    /// A run that may hold a card, SSN, phone number or IPv4 address.
    Run(NumericRun),
    /// Two digits after two capitals: where the check digits of an IBAN
    /// would start (the country code is the two bytes before).
    IbanDigits(usize),
}

/// The detectors found from the numeric sites: cards, SSNs, phone numbers,
/// IPv4 addresses and IBANs.
pub const NUMERIC_SITE_DETECTORS: DetectorSet = DetectorSet(
    1 << Builtin::Card as u8
        | 1 << Builtin::Ssn as u8
        | 1 << Builtin::Phone as u8
        | 1 << Builtin::Ipv4 as u8
        | 1 << Builtin::Iban as u8,
);

/// Fewest digits of a North American phone number: area code, exchange
/// and line (`[2-9]dd`, `[2-9]dd`, `dddd`), with an optional leading `1`.
const NANP_DIGITS_MIN: usize = 10;

/// Which numeric detectors a run can hold at all, by its digit and dot
/// counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Here {
    card: bool,
    ssn: bool,
    phone: bool,
    ipv4: bool,
}

impl Here {
    /// What a run with `digits` digits and `dots` dots can hold of the
    /// `wanted` detectors (none: `None`): cards have 13 to 19 digits, SSNs
    /// nine, phone numbers 8 to 15, IPv4 addresses three dots and four
    /// digits.
    #[inline(always)]
    fn of(wanted: Here, digits: usize, dots: usize) -> Option<Here> {
        let here = Here {
            card: wanted.card && digits >= 13,
            ssn: wanted.ssn && digits >= 9,
            phone: wanted.phone && digits >= 8,
            ipv4: wanted.ipv4 && dots >= 3 && digits >= 4,
        };
        (here.card || here.ssn || here.phone || here.ipv4).then_some(here)
    }
}

/// Digit bits of an SSN from its start: `ddd?dd?dddd`, then a non-digit.
const SSN_DIGIT_BITS: u64 = 0b0111_1011_0111;

/// Can a North American number (without `+`) start at a group of
/// `leading` digits whose first is `first`? With a leading `1`, the group
/// is the `1` alone (a separator or `(` follows) or runs on through the
/// area code (4), the exchange (7) or the whole number (11); without it,
/// the group is the area code (3), area code and exchange (6) or all ten
/// digits. A necessary condition of [`nanp_end`], which reads the rest.
#[inline(always)]
fn nanp_may_start(first: u8, leading: usize) -> bool {
    match first {
        b'1' => matches!(leading, 1 | 4 | 7 | 11),
        b'2'..=b'9' => matches!(leading, 3 | 6 | 10),
        _ => false,
    }
}

/// Shortest numeric candidate: an IPv4 address such as `1.2.3.4`. Shorter
/// runs (the digits inside hex strings, tokens and words) are never
/// looked at.
pub const RUN_BYTES_MIN: usize = 7;

/// Bytes classified at once by `classify_block`.
pub const BLOCK_BYTES: usize = 64;

/// Byte classes of one block, one bit per byte (bit `i` is byte `i`).
#[derive(Debug, Clone, Copy, Default)]
pub struct BlockClasses {
    /// Digits and `[ ().+-]`.
    numeric: u64,
    digit: u64,
    dot: u64,
    upper: u64,
    /// `+` and `(`.
    open: u64,
    /// `2` to `6`.
    card_first: u64,
}

/// Classifies 64 bytes with SSE2 (part of the x86-64 baseline, so no
/// run-time detection is needed): 16 bytes per compare instead of a table
/// load and a branch per byte.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify_block(block: &[u8; BLOCK_BYTES]) -> BlockClasses {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
        _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let mut out = BlockClasses::default();
    for lane in 0..BLOCK_BYTES / 16 {
        // SAFETY: SSE2 is always present on x86-64, and the unaligned load
        // reads 16 bytes inside `block` (lane < 4).
        let (numeric, digit, dot, upper, open, card_first) = unsafe {
            let v = _mm_loadu_si128(block.as_ptr().add(lane * 16).cast::<__m128i>());
            let eq = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
            // Signed compares: bytes of 0x80 and above are negative, so they
            // fall in neither range.
            let within = |lo: u8, hi: u8| {
                _mm_and_si128(
                    _mm_cmpgt_epi8(v, _mm_set1_epi8(lo as i8 - 1)),
                    _mm_cmplt_epi8(v, _mm_set1_epi8(hi as i8 + 1)),
                )
            };
            let digit = within(b'0', b'9');
            let upper = within(b'A', b'Z');
            let dot = eq(b'.');
            let punct = _mm_or_si128(
                _mm_or_si128(eq(b' '), eq(b'(')),
                _mm_or_si128(
                    _mm_or_si128(eq(b')'), eq(b'+')),
                    _mm_or_si128(eq(b'-'), dot),
                ),
            );
            let numeric = _mm_or_si128(digit, punct);
            let open = _mm_or_si128(eq(b'+'), eq(b'('));
            let card_first = within(b'2', b'6');
            (
                _mm_movemask_epi8(numeric) as u16,
                _mm_movemask_epi8(digit) as u16,
                _mm_movemask_epi8(dot) as u16,
                _mm_movemask_epi8(upper) as u16,
                _mm_movemask_epi8(open) as u16,
                _mm_movemask_epi8(card_first) as u16,
            )
        };
        let shift = lane * 16;
        out.numeric |= u64::from(numeric) << shift;
        out.digit |= u64::from(digit) << shift;
        out.dot |= u64::from(dot) << shift;
        out.upper |= u64::from(upper) << shift;
        out.open |= u64::from(open) << shift;
        out.card_first |= u64::from(card_first) << shift;
    }
    out
}

/// Nibble tables of the block classes (see [`classify_block_avx2`]): bit 0
/// digits, bit 1 `[ ().+-]`, bit 2 `.`, bits 3 and 4 the capitals `A`-`O`
/// and `P`-`Z` (which differ in their high nibble), bit 5 `+` and `(`
/// (both in the same high nibble), bit 7 `2` to `6` (bit 6 is free).
/// Each class is a product
/// of a set of high nibbles and a set of low nibbles, so the lookups are
/// exact.
const fn class_tables() -> ([u8; 16], [u8; 16]) {
    let mut low = [0u8; 16];
    let mut high = [0u8; 16];
    let mut b = 0usize;
    while b < 128 {
        let c = b as u8;
        let bits = (c.is_ascii_digit() as u8)
            | ((matches!(c, b' ' | b'(' | b')' | b'.' | b'+' | b'-') as u8) << 1)
            | (((c == b'.') as u8) << 2)
            | (((c >= b'A' && c <= b'O') as u8) << 3)
            | (((c >= b'P' && c <= b'Z') as u8) << 4)
            | ((matches!(c, b'+' | b'(') as u8) << 5)
            | ((matches!(c, b'2'..=b'6') as u8) << 7);
        low[b & 15] |= bits;
        high[b >> 4] |= bits;
        b += 1;
    }
    (low, high)
}
const CLASS_TABLES: ([u8; 16], [u8; 16]) = class_tables();
static CLASS_LOW: [u8; 16] = CLASS_TABLES.0;
static CLASS_HIGH: [u8; 16] = CLASS_TABLES.1;

/// [`classify_block`] with AVX2: two table lookups per 32 bytes give all
/// four classes.
///
/// # Safety
///
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn classify_block_avx2(block: &[u8; BLOCK_BYTES]) -> BlockClasses {
    use std::arch::x86_64::{
        __m128i, __m256i, _mm256_and_si256, _mm256_broadcastsi128_si256, _mm256_loadu_si256,
        _mm256_movemask_epi8, _mm256_set1_epi8, _mm256_shuffle_epi8, _mm256_srli_epi16,
        _mm_loadu_si128,
    };
    let mut out = BlockClasses::default();
    // SAFETY: the tables hold 16 bytes and the block 64, so every load
    // stays inside them.
    unsafe {
        let low_table =
            _mm256_broadcastsi128_si256(_mm_loadu_si128(CLASS_LOW.as_ptr().cast::<__m128i>()));
        let high_table =
            _mm256_broadcastsi128_si256(_mm_loadu_si128(CLASS_HIGH.as_ptr().cast::<__m128i>()));
        let nibble = _mm256_set1_epi8(0x0f);
        for half in 0..2 {
            let v = _mm256_loadu_si256(block.as_ptr().add(half * 32).cast::<__m256i>());
            let lo = _mm256_and_si256(v, nibble);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), nibble);
            let class = _mm256_and_si256(
                _mm256_shuffle_epi8(low_table, lo),
                _mm256_shuffle_epi8(high_table, hi),
            );
            // Bit k of every byte, moved to bit 7 by a 16-bit shift (the low
            // byte's higher bits land in the high byte's low bits, never in
            // its bit 7) and gathered by `movemask`: two instructions per
            // class instead of a compare.
            let bit = |m: i32| u64::from(_mm256_movemask_epi8(class_bit_to_top(class, m)) as u32);
            let shift = half * 32;
            let digit = bit(0);
            out.digit |= digit << shift;
            out.numeric |= (digit | bit(1)) << shift;
            out.dot |= bit(2) << shift;
            out.upper |= (bit(3) | bit(4)) << shift;
            out.open |= bit(5) << shift;
            out.card_first |= bit(7) << shift;
        }
    }
    out
}

/// `class` shifted left by `7 - k` in 16-bit lanes, which puts bit `k` of
/// every byte in its bit 7.
///
/// # Safety
///
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn class_bit_to_top(
    class: std::arch::x86_64::__m256i,
    k: i32,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::_mm256_slli_epi16;
    match k {
        0 => _mm256_slli_epi16::<7>(class),
        1 => _mm256_slli_epi16::<6>(class),
        2 => _mm256_slli_epi16::<5>(class),
        3 => _mm256_slli_epi16::<4>(class),
        4 => _mm256_slli_epi16::<3>(class),
        5 => _mm256_slli_epi16::<2>(class),
        6 => _mm256_slli_epi16::<1>(class),
        _ => class,
    }
}

/// The same classification, one byte at a time (other architectures).
#[cfg(not(target_arch = "x86_64"))]
fn classify_block(block: &[u8; BLOCK_BYTES]) -> BlockClasses {
    let mut out = BlockClasses::default();
    for (i, &b) in block.iter().enumerate() {
        out.numeric |= u64::from(NUMERIC[usize::from(b)]) << i;
        out.digit |= u64::from(b.is_ascii_digit()) << i;
        out.dot |= u64::from(b == b'.') << i;
        out.upper |= u64::from(b.is_ascii_uppercase()) << i;
        out.open |= u64::from(b == b'+' || b == b'(') << i;
        out.card_first |= u64::from((b'2'..=b'6').contains(&b)) << i;
    }
    out
}

/// The instruction set levels the numeric pass is built for, detected
/// once per process ([`Level::detect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// SSE2 on x86-64 (part of its baseline), bytes one at a time
    /// elsewhere.
    Baseline,
    /// x86-64-v3: AVX2, BMI1, BMI2, LZCNT and POPCNT.
    V3,
    /// x86-64-v3 with AVX-512F and AVX-512BW: the classification reads 64
    /// bytes per vector, gets each class as a 64-bit mask in one
    /// instruction, and reads a text's last partial block with a masked
    /// load (no shifted window, no copy of short texts).
    V4,
}

impl Level {
    /// The highest level this CPU supports. The standard library caches
    /// each feature, and `level` caches the outcome, so the data path
    /// pays one relaxed load per value.
    pub fn detect() -> Level {
        // `SLUICE_SIMD_MAX=baseline` turns every vector path of the engine
        // off and `SLUICE_SIMD_MAX=v3` the AVX-512 one (to compare the
        // builds side by side in one bench binary, and to test each build
        // end to end on one machine).
        let cap = match std::env::var("SLUICE_SIMD_MAX").as_deref() {
            Ok("baseline") => Level::Baseline,
            Ok("v3") => Level::V3,
            _ => Level::V4,
        };
        let mut detected = Level::Baseline;
        #[cfg(target_arch = "x86_64")]
        {
            let v3 = std::is_x86_feature_detected!("popcnt")
                && std::is_x86_feature_detected!("bmi1")
                && std::is_x86_feature_detected!("bmi2")
                && std::is_x86_feature_detected!("lzcnt")
                && std::is_x86_feature_detected!("avx2");
            let v4 = v3
                && std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw");
            if v4 {
                detected = Level::V4;
            } else if v3 {
                detected = Level::V3;
            }
        }
        detected.min(cap)
    }

    /// This level and every lower one (for the property tests, which
    /// compare each build with the byte-wise definitions).
    pub fn supported() -> Vec<Level> {
        let top = level();
        [Level::Baseline, Level::V3, Level::V4]
            .into_iter()
            .filter(|&l| l <= top)
            .collect()
    }
}

/// [`Level::detect`], cached.
#[inline(always)]
pub(crate) fn level() -> Level {
    use std::sync::atomic::{AtomicU8, Ordering};
    // 0: not detected yet; otherwise the level plus one.
    static LEVEL: AtomicU8 = AtomicU8::new(0);
    match LEVEL.load(Ordering::Relaxed) {
        1 => Level::Baseline,
        2 => Level::V3,
        3 => Level::V4,
        _ => {
            let detected = Level::detect();
            LEVEL.store(detected as u8 + 1, Ordering::Relaxed);
            detected
        }
    }
}

/// [`classify_block`] with the widest vectors `level` allows (detected
/// by the caller).
#[inline(always)]
fn classify(block: &[u8; BLOCK_BYTES], level: Level) -> BlockClasses {
    #[cfg(target_arch = "x86_64")]
    match level {
        // SAFETY: the caller detected the level's features (V4 includes
        // AVX2).
        Level::V3 | Level::V4 => return unsafe { classify_block_avx2(block) },
        Level::Baseline => {}
    }
    let _ = level;
    classify_block(block)
}

/// The byte classes of a whole text, one bit array per class (bit `p` of
/// a class is byte `p` of the text), made by [`classify_text`] and kept by
/// the scanner between values so that its memory is reused.
///
/// Storing each class as one array (rather than the classes of a block
/// side by side) lets the bits of a run be read at any byte offset with
/// one unaligned eight-byte load and one shift (`Classes::window`),
/// instead of joining two blocks in 128 bits.
#[derive(Debug, Default, Clone)]
pub struct Classes {
    /// Class `c` occupies `words[c * stride..(c + 1) * stride]`, one word
    /// per block, each stored little-endian so that the bytes of the
    /// array are the bits in text order on any target.
    words: Vec<u64>,
    /// Words per class: the text's blocks, then two empty words (one for
    /// the successor every block looks ahead into, one so that an
    /// eight-byte load at any byte of the text stays inside the class).
    stride: usize,
}

/// Class indices into [`Classes`].
mod class {
    pub const NUMERIC: usize = 0;
    pub const DIGIT: usize = 1;
    pub const DOT: usize = 2;
    pub const UPPER: usize = 3;
    pub const OPEN: usize = 4;
    pub const CARD_FIRST: usize = 5;
    pub const COUNT: usize = 6;
}

impl Classes {
    /// Room for texts of up to `blocks` blocks without reallocating.
    pub fn with_capacity(blocks: usize) -> Self {
        Classes {
            words: Vec::with_capacity(class::COUNT * (blocks + 2)),
            stride: 0,
        }
    }

    /// Blocks of text classified (the two empty words excluded).
    #[inline(always)]
    fn blocks(&self) -> usize {
        self.stride.saturating_sub(2)
    }

    /// Word `block` of class `c` (zero past the text).
    #[inline(always)]
    fn word(&self, c: usize, block: usize) -> u64 {
        u64::from_le(self.words[c * self.stride + block])
    }

    /// The bits of class `c` from byte `at` of the text on: bit 0 is byte
    /// `at`. At least [`WINDOW_BITS`] bits are valid; the ones above may
    /// be anything but what the class holds there.
    ///
    /// # Safety
    ///
    /// `at` must be a byte of the classified text (`at < 64 * blocks`)
    /// and `c < class::COUNT`: the eight bytes read then end within the
    /// class's padding word.
    #[inline(always)]
    unsafe fn window(&self, c: usize, at: usize) -> u64 {
        let from = c * self.stride * 8 + at / 8;
        debug_assert!(at < self.blocks() * BLOCK_BYTES && c < class::COUNT);
        // SAFETY: by the caller's promise, `from + 8 <= (c + 1) * stride *
        // 8`, at most the byte length of `words` (`COUNT * stride` words);
        // an unaligned read of a `u64` from initialised memory.
        let word = unsafe {
            self.words
                .as_ptr()
                .cast::<u8>()
                .add(from)
                .cast::<u64>()
                .read_unaligned()
        };
        u64::from_le(word) >> (at % 8)
    }

    /// Bits of class `c` set in bytes `start..end` of the text.
    fn count(&self, c: usize, start: usize, end: usize) -> usize {
        let mut total = 0;
        let mut at = start;
        while at < end {
            let block = at / BLOCK_BYTES;
            let from = (at % BLOCK_BYTES) as u32;
            let to = (end - block * BLOCK_BYTES).min(BLOCK_BYTES) as u32;
            total += (self.word(c, block) & bits_from(from) & bits_below(to)).count_ones() as usize;
            at = (block + 1) * BLOCK_BYTES;
        }
        total
    }
}

/// Valid bits of a [`Classes::window`]: an eight-byte load shifted by up
/// to seven bits.
const WINDOW_BITS: usize = 57;

/// Classifies `text` into `out` (bytes past the end of the text belong to
/// no class). Inlined so that the AVX2 classifier is inlined in turn into
/// [`scan`]'s AVX2 build.
#[inline(always)]
pub fn classify_text(text: &[u8], level: Level, out: &mut Classes) {
    let full = text.len() / BLOCK_BYTES;
    let tail = text.len() % BLOCK_BYTES;
    let stride = full + usize::from(tail > 0) + 2;
    out.stride = stride;
    // Every word is written exactly once below (the text's blocks, then the
    // two zero padding words of each class) into reserved memory, and the
    // length set after: no zeroing pass first.
    out.words.clear();
    out.words.reserve(class::COUNT * stride);
    #[cfg(target_arch = "x86_64")]
    if level == Level::V4 {
        // SAFETY: the caller detected the level's features; `out` has room
        // for the `stride - 2` blocks of the text (reserved just above).
        unsafe { classify_blocks_avx512(text, out) };
        // SAFETY: as below.
        unsafe { out.finish_padding(stride) };
        return;
    }
    for (i, block) in text.chunks_exact(BLOCK_BYTES).enumerate() {
        if let Ok(block) = <&[u8; BLOCK_BYTES]>::try_from(block) {
            // SAFETY: `i < full < stride - 2`.
            unsafe { out.put(i, classify(block, level)) };
        }
    }
    if tail > 0 {
        let last = if let Some(from) = text.len().checked_sub(BLOCK_BYTES) {
            // The last 64 bytes of the text, shifted so that bit 0 is the
            // first byte of the partial block: no copy, and the bits the
            // shift brings in are zero.
            let block = <&[u8; BLOCK_BYTES]>::try_from(&text[from..]).ok();
            let classes = block.map(|b| classify(b, level)).unwrap_or_default();
            classes.shifted_right((BLOCK_BYTES - tail) as u32)
        } else {
            let mut block = [0u8; BLOCK_BYTES];
            block[..tail].copy_from_slice(text);
            classify(&block, level)
        };
        // SAFETY: `full < stride - 2` when there is a tail.
        unsafe { out.put(full, last) };
    }
    // SAFETY: blocks `0..stride - 2` were written above.
    unsafe { out.finish_padding(stride) };
}

/// The blocks of [`classify_text`] with AVX-512: each block is one 64-byte
/// load (the last one masked to the text, which reads nothing past it and
/// fills the rest with zero bytes, which are in no class), two table
/// lookups, and one bit test per class that yields the class's 64-bit word
/// directly.
///
/// # Safety
///
/// The CPU must support AVX-512F and AVX-512BW, and `out` must have room
/// for the text's blocks (`out.stride` set and `COUNT * stride` words
/// reserved, as [`classify_text`] does).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,bmi2")]
#[inline]
unsafe fn classify_blocks_avx512(text: &[u8], out: &mut Classes) {
    use std::arch::x86_64::{
        _bzhi_u64, _mm512_and_si512, _mm512_broadcast_i32x4, _mm512_maskz_loadu_epi8,
        _mm512_set1_epi8, _mm512_shuffle_epi8, _mm512_srli_epi16, _mm512_test_epi8_mask,
        _mm_loadu_si128,
    };
    let blocks = text.len().div_ceil(BLOCK_BYTES);
    debug_assert_eq!(out.stride, blocks + 2);
    // SAFETY: the tables hold 16 bytes; every full block's load reads 64
    // bytes inside the text, and the last block's masked load touches only
    // the bytes its mask selects, which are inside the text (masked-out
    // bytes are never accessed, so they cannot fault). The stores are
    // within the reserved capacity (`put`'s contract: `block < stride`,
    // by the caller's promise).
    unsafe {
        let low_table = _mm512_broadcast_i32x4(_mm_loadu_si128(CLASS_LOW.as_ptr().cast()));
        let high_table = _mm512_broadcast_i32x4(_mm_loadu_si128(CLASS_HIGH.as_ptr().cast()));
        let nibble = _mm512_set1_epi8(0x0f);
        for block in 0..blocks {
            let at = text.as_ptr().add(block * BLOCK_BYTES);
            let left = text.len() - block * BLOCK_BYTES;
            // Every block is a masked load, all ones but in the last one
            // (`bzhi` keeps all 64 bits when `left` is 64 or more): no
            // branch on which block is the last, which the predictor
            // misses once per row of varied lengths.
            let v =
                _mm512_maskz_loadu_epi8(_bzhi_u64(u64::MAX, left.min(64) as u32), at.cast::<i8>());
            let lo = _mm512_and_si512(v, nibble);
            let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(v), nibble);
            let class = _mm512_and_si512(
                _mm512_shuffle_epi8(low_table, lo),
                _mm512_shuffle_epi8(high_table, hi),
            );
            let test = |bits: u8| _mm512_test_epi8_mask(class, _mm512_set1_epi8(bits as i8));
            out.put(
                block,
                BlockClasses {
                    numeric: test(0b11),
                    digit: test(1),
                    dot: test(1 << 2),
                    upper: test(0b11 << 3),
                    open: test(1 << 5),
                    card_first: test(1 << 7),
                },
            );
        }
    }
}

impl Classes {
    /// Writes the two empty words after the text's blocks in every class
    /// and sets the length to cover them all.
    ///
    /// # Safety
    ///
    /// `stride` is `self.stride`, `COUNT * stride` words are reserved, and
    /// blocks `0..stride - 2` of every class were written with
    /// [`Classes::put`]: with the padding, every word is then initialised.
    #[inline(always)]
    unsafe fn finish_padding(&mut self, stride: usize) {
        debug_assert_eq!(stride, self.stride);
        // SAFETY: both blocks are below `stride` (the caller's promise
        // covers `put`'s), and every word is written once the padding is.
        unsafe {
            self.put(stride - 2, BlockClasses::default());
            self.put(stride - 1, BlockClasses::default());
            self.words.set_len(class::COUNT * stride);
        }
    }

    /// Stores the classes of block `block`.
    ///
    /// # Safety
    ///
    /// `block < stride` and `words` has room for `COUNT * stride` words
    /// (as [`classify_text`] reserves). Unchecked because the seven checked
    /// stores per block were a fifth of the classification's cost.
    #[inline(always)]
    unsafe fn put(&mut self, block: usize, classes: BlockClasses) {
        debug_assert!(block < self.stride && self.words.capacity() >= class::COUNT * self.stride);
        let base = self.words.as_mut_ptr();
        for (c, bits) in [
            (class::NUMERIC, classes.numeric),
            (class::DIGIT, classes.digit),
            (class::DOT, classes.dot),
            (class::UPPER, classes.upper),
            (class::OPEN, classes.open),
            (class::CARD_FIRST, classes.card_first),
        ] {
            // SAFETY: `c * stride + block < COUNT * stride`, within the
            // capacity, by the caller's promise.
            unsafe { base.add(c * self.stride + block).write(bits.to_le()) };
        }
    }
}

impl BlockClasses {
    #[inline(always)]
    fn shifted_right(self, by: u32) -> BlockClasses {
        BlockClasses {
            numeric: self.numeric >> by,
            digit: self.digit >> by,
            dot: self.dot >> by,
            upper: self.upper >> by,
            open: self.open >> by,
            card_first: self.card_first >> by,
        }
    }
}

/// Bits `from..` of a 64-bit mask (`from < 64`).
#[inline(always)]
fn bits_from(from: u32) -> u64 {
    u64::MAX << from
}

/// Bits `..to` of a 64-bit mask (`to <= 64`).
#[inline(always)]
pub(crate) fn bits_below(to: u32) -> u64 {
    if to >= 64 {
        u64::MAX
    } else {
        (1u64 << to) - 1
    }
}

/// Calls `visit` with the [`NumericSite`]s of a classified text, left to
/// right (an IBAN site before a run that starts at the same byte), until
/// `visit` returns false; returns false then. `classes` comes from
/// [`classify_text`].
#[inline(always)]
pub fn for_each_site(classes: &Classes, mut visit: impl FnMut(NumericSite) -> bool) -> bool {
    for_each_site_start(classes, |site| match site {
        SiteStart::IbanDigits(d) => visit(NumericSite::IbanDigits(d)),
        SiteStart::Run(start) => {
            let run = run_at(classes, start);
            run.digits == 0 || visit(NumericSite::Run(run))
        }
    })
}

/// Where a [`NumericSite`] starts, before its run is read: the scan reads
/// a run's bits one class at a time and stops at the first count that
/// rules every detector out.
#[derive(Clone, Copy)]
enum SiteStart {
    IbanDigits(usize),
    /// A run of at least [`RUN_BYTES_MIN`] numeric bytes starts here (it
    /// may hold no digit).
    Run(usize),
}

/// [`for_each_site`] without reading the runs.
#[inline(always)]
fn for_each_site_start(classes: &Classes, mut visit: impl FnMut(SiteStart) -> bool) -> bool {
    let blocks = classes.blocks();
    // The three classes read here, each sliced to its blocks and the empty
    // word after them, so that the indexing below needs no checks.
    let class_words = |c: usize| &classes.words[c * classes.stride..][..blocks + 1];
    let (numeric, digit, upper) = (
        class_words(class::NUMERIC),
        class_words(class::DIGIT),
        class_words(class::UPPER),
    );
    let (mut previous_numeric, mut previous_upper) = (0u64, 0u64);
    for i in 0..blocks {
        let at = i * BLOCK_BYTES;
        let n = u64::from_le(numeric[i]);
        // A run starts at a numeric byte after a byte that is not.
        let starts = n & !((n << 1) | (previous_numeric >> 63));
        // Bit p: bytes p..p+7 are all numeric (the following block supplies
        // the bytes past the end of this one), so the run starting at p is
        // long enough.
        let c = u128::from(n) | (u128::from(u64::from_le(numeric[i + 1])) << 64);
        let two = c & (c >> 1);
        let four = two & (two >> 2);
        let seven = (four & (four >> 3)) as u64;
        let mut runs = starts & seven;
        let upper = u64::from_le(upper[i]);
        let upper_before = (upper << 1) | (previous_upper >> 63);
        let upper_two_before = (upper << 2) | (previous_upper >> 62);
        // Both check digits: a digit after two capitals and before another
        // digit (the next block supplies the byte after this one's last).
        // The second digit alone drops about five in six of the sites in
        // random tokens, where two capitals and a digit are common.
        let d = u64::from_le(digit[i]);
        let digit_after = (d >> 1) | (u64::from_le(digit[i + 1]) << 63);
        let mut ibans = d & digit_after & upper_before & upper_two_before;
        while runs | ibans != 0 {
            let r = runs.trailing_zeros();
            let k = ibans.trailing_zeros();
            let site = if k <= r {
                ibans &= ibans - 1;
                SiteStart::IbanDigits(at + k as usize)
            } else {
                runs &= runs - 1;
                SiteStart::Run(at + r as usize)
            };
            if !visit(site) {
                return false;
            }
        }
        previous_numeric = n;
        previous_upper = upper;
    }
    true
}

/// The run that starts at byte `start`, with every class read.
#[inline(always)]
fn run_at(classes: &Classes, start: usize) -> NumericRun {
    match RunReader::open(classes, start) {
        RunReader::Short(run) => {
            let digit_bits = run.bits(class::DIGIT);
            let dot_bits = run.bits(class::DOT);
            run.finish(digit_bits, dot_bits)
        }
        RunReader::Long(run) => run,
    }
}

/// A run being read. Almost every run is at most [`RUN_BITS_BYTES_MAX`]
/// bytes long, and its bits come from one [`Classes::window`] per class,
/// read one class at a time so that the scan can drop the run at the first
/// count that rules every detector out; longer runs are read whole.
enum RunReader<'a> {
    Short(ShortRun<'a>),
    Long(NumericRun),
}

/// A run of at most [`RUN_BITS_BYTES_MAX`] bytes whose classes are read on
/// demand.
struct ShortRun<'a> {
    classes: &'a Classes,
    start: usize,
    len: usize,
}

impl<'a> RunReader<'a> {
    /// The run starting at byte `start` of the text (a numeric byte).
    #[inline(always)]
    fn open(classes: &'a Classes, start: usize) -> Self {
        // Checked once here for every window read through `ShortRun::bits`.
        assert!(start < classes.blocks() * BLOCK_BYTES);
        // SAFETY: `start` is a byte of the text (just asserted).
        let len = unsafe { classes.window(class::NUMERIC, start) }.trailing_ones() as usize;
        if len > RUN_BITS_BYTES_MAX {
            return RunReader::Long(run_at_long(classes, start));
        }
        RunReader::Short(ShortRun {
            classes,
            start,
            len,
        })
    }
}

impl ShortRun<'_> {
    /// The run's bits of class `c` (a constant of `class`).
    #[inline(always)]
    fn bits(&self, c: usize) -> u64 {
        debug_assert!(c < class::COUNT);
        // SAFETY: `RunReader::open` asserted that `start` is a byte of the
        // text, and `c` is a class index.
        unsafe { self.classes.window(c, self.start) & ((1u64 << self.len) - 1) }
    }

    /// The whole run, given the digit and dot bits already read.
    #[inline(always)]
    fn finish(self, digit_bits: u64, dot_bits: u64) -> NumericRun {
        NumericRun {
            start: self.start,
            end: self.start + self.len,
            digits: digit_bits.count_ones() as usize,
            dots: dot_bits.count_ones() as usize,
            digit_bits,
            dot_bits,
            open_bits: self.bits(class::OPEN),
            card_first_bits: self.bits(class::CARD_FIRST),
        }
    }
}

/// [`run_at`] for runs longer than [`RUN_BITS_BYTES_MAX`] bytes (a long
/// list of numbers), which may span any number of blocks; their bytes are
/// walked one at a time, so they carry no bits.
#[cold]
#[inline(never)]
fn run_at_long(classes: &Classes, start: usize) -> NumericRun {
    // The end: the first byte that is not numeric (the empty word after
    // the last block guarantees there is one).
    let mut block = start / BLOCK_BYTES;
    let mut outside =
        !classes.word(class::NUMERIC, block) & bits_from((start % BLOCK_BYTES) as u32);
    while outside == 0 {
        block += 1;
        outside = !classes.word(class::NUMERIC, block);
    }
    let end = block * BLOCK_BYTES + outside.trailing_zeros() as usize;
    NumericRun {
        start,
        end,
        digits: classes.count(class::DIGIT, start, end),
        dots: classes.count(class::DOT, start, end),
        digit_bits: 0,
        dot_bits: 0,
        open_bits: 0,
        card_first_bits: 0,
    }
}

/// The sites of `text`, classified at `level` (at most what the CPU
/// supports, so that the property tests can run every classifier against
/// [`numeric_sites_naive`]).
pub fn numeric_sites(text: &[u8], level: Level) -> Vec<NumericSite> {
    let mut classes = Classes::default();
    classify_text(text, level.min(self::level()), &mut classes);
    let mut out = Vec::new();
    for_each_site(&classes, |site| {
        out.push(site);
        true
    });
    out
}

/// The same sites found one byte at a time: the definition that
/// [`numeric_sites`] is property-tested against.
pub fn numeric_sites_naive(text: &[u8]) -> Vec<NumericSite> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i].is_ascii_digit()
            && text.get(i + 1).is_some_and(u8::is_ascii_digit)
            && i >= 2
            && text[i - 1].is_ascii_uppercase()
            && text[i - 2].is_ascii_uppercase()
        {
            out.push(NumericSite::IbanDigits(i));
        }
        if !NUMERIC[usize::from(text[i])] {
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && NUMERIC[usize::from(text[i])] {
            i += 1;
        }
        let run = &text[start..i];
        let digits = run.iter().filter(|b| b.is_ascii_digit()).count();
        if digits > 0 && run.len() >= RUN_BYTES_MIN {
            let bits = |class: fn(u8) -> bool| -> u64 {
                if run.len() > RUN_BITS_BYTES_MAX {
                    return 0;
                }
                run.iter()
                    .enumerate()
                    .fold(0, |m, (k, &b)| m | (u64::from(class(b)) << k))
            };
            out.push(NumericSite::Run(NumericRun {
                start,
                end: i,
                digits,
                dots: run.iter().filter(|&&b| b == b'.').count(),
                digit_bits: bits(|b| b.is_ascii_digit()),
                dot_bits: bits(|b| b == b'.'),
                open_bits: bits(|b| b == b'+' || b == b'('),
                card_first_bits: bits(|b| (b'2'..=b'6').contains(&b)),
            }));
        }
    }
    out
}

/// Finds the numeric candidates of `text` for the detectors in `set`,
/// pushing them onto `out`; `classes` is scratch space for the
/// classification. IBAN sites are handed to `iban` (which owns that
/// detector). Returns false when [`CANDIDATES_MAX`] stopped the scan.
pub fn scan(
    text: &[u8],
    set: DetectorSet,
    classes: &mut Classes,
    out: &mut Vec<Finding>,
    iban: impl FnMut(&[u8], usize, &mut Vec<Finding>),
) -> bool {
    // Every numeric candidate lies in a run of at least `RUN_BYTES_MIN`
    // bytes, and an IBAN is longer still: most column values (ids, flags,
    // short names) are done here without being classified.
    if text.len() < RUN_BYTES_MIN {
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: the features each function is compiled for were detected
        // on this CPU.
        Level::V4 => return unsafe { scan_x86_64_v4(text, set, classes, out, iban) },
        Level::V3 => return unsafe { scan_x86_64_v3(text, set, classes, out, iban) },
        Level::Baseline => {}
    }
    scan_portable(text, set, classes, out, iban, Level::Baseline)
}

/// [`scan`] compiled for CPUs with `popcnt`, `tzcnt`, `lzcnt`, BMI2 and AVX2
/// (x86-64-v3): the bit counts are then single instructions instead of
/// bit-twiddling sequences.
///
/// # Safety
///
/// The CPU must support those features.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt,bmi1,bmi2,lzcnt,avx2")]
unsafe fn scan_x86_64_v3(
    text: &[u8],
    set: DetectorSet,
    classes: &mut Classes,
    out: &mut Vec<Finding>,
    iban: impl FnMut(&[u8], usize, &mut Vec<Finding>),
) -> bool {
    scan_portable(text, set, classes, out, iban, Level::V3)
}

/// [`scan`] compiled for x86-64-v3 CPUs with AVX-512F and AVX-512BW (the
/// classification uses them; the walk is the same as
/// [`scan_x86_64_v3`]'s).
///
/// # Safety
///
/// The CPU must support those features.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt,bmi1,bmi2,lzcnt,avx2,avx512f,avx512bw")]
unsafe fn scan_x86_64_v4(
    text: &[u8],
    set: DetectorSet,
    classes: &mut Classes,
    out: &mut Vec<Finding>,
    iban: impl FnMut(&[u8], usize, &mut Vec<Finding>),
) -> bool {
    scan_portable(text, set, classes, out, iban, Level::V4)
}

#[inline(always)]
fn scan_portable(
    text: &[u8],
    set: DetectorSet,
    classes: &mut Classes,
    out: &mut Vec<Finding>,
    iban: impl FnMut(&[u8], usize, &mut Vec<Finding>),
    level: Level,
) -> bool {
    let wanted = Here {
        card: set.contains(Builtin::Card as DetectorId),
        ssn: set.contains(Builtin::Ssn as DetectorId),
        phone: set.contains(Builtin::Phone as DetectorId),
        ipv4: set.contains(Builtin::Ipv4 as DetectorId),
    };
    let iban_wanted = set.contains(Builtin::Iban as DetectorId);
    classify_text(text, level, classes);
    // Every numeric detector is wanted almost always (content detection
    // applies to every value by default): that case gets its own copy of
    // the walk, with the detector choices folded in as constants instead of
    // flags tested (and kept on the stack) at every run.
    let all = Here {
        card: true,
        ssn: true,
        phone: true,
        ipv4: true,
    };
    if wanted == all && iban_wanted {
        walk(text, classes, out, iban, level, all, true)
    } else {
        walk(text, classes, out, iban, level, wanted, iban_wanted)
    }
}

/// The site loop of [`scan`] over a classified text, for the `wanted`
/// numeric detectors (and IBANs if `iban_wanted`). Inlined into each of
/// [`scan_portable`]'s calls, so that constant arguments fold.
#[inline(always)]
fn walk(
    text: &[u8],
    classes: &Classes,
    out: &mut Vec<Finding>,
    mut iban: impl FnMut(&[u8], usize, &mut Vec<Finding>),
    level: Level,
    wanted: Here,
    iban_wanted: bool,
) -> bool {
    let any_numeric = wanted.card || wanted.ssn || wanted.phone || wanted.ipv4;
    // Inlined, so that the walk is compiled with the caller's CPU features
    // (a closure does not take them over by itself).
    for_each_site_start(
        classes,
        #[inline(always)]
        |site| {
            let start = match site {
                SiteStart::IbanDigits(d) => {
                    if iban_wanted && validate::iban_length(&text[d - 2..d]).is_some() {
                        iban(text, d - 2, out);
                    }
                    return out.len() < CANDIDATES_MAX;
                }
                SiteStart::Run(start) => start,
            };
            if !any_numeric {
                return true;
            }
            let run = match RunReader::open(classes, start) {
                RunReader::Short(run) => run,
                RunReader::Long(run) => {
                    return match Here::of(wanted, run.digits, run.dots) {
                        Some(here) => scan_run_bytes(text, &run, here, out),
                        None => true,
                    };
                }
            };
            // Every detector needs four digits or more.
            let digit_bits = run.bits(class::DIGIT);
            let digits = digit_bits.count_ones() as usize;
            if digits < 4 {
                return true;
            }
            let dot_bits = run.bits(class::DOT);
            let dots = dot_bits.count_ones() as usize;
            let Some(here) = Here::of(wanted, digits, dots) else {
                return true;
            };
            let run = run.finish(digit_bits, dot_bits);
            scan_run_bits(text, &run, here, out, level >= Level::V3)
        },
    )
}

#[inline(always)]
fn push(out: &mut Vec<Finding>, start: usize, end: usize, b: Builtin) {
    out.push(Finding {
        start,
        end,
        detector: b as DetectorId,
    });
}

/// The phone number from a `+` or `(` at `s`, if any.
#[inline]
fn phone_from_open(text: &[u8], s: usize, ce: usize) -> Option<usize> {
    if text[s] == b'+' {
        phone_end_plus(text, s, ce)
    } else {
        nanp_end(text, s, ce).filter(|&e| nanp_confirmed(text, s, e))
    }
}

/// Whether the North American number `text[s..e]` that [`nanp_end`]
/// found sits on its right boundary. Its shape holds ten digits, eleven
/// with the leading `1`, always within the 8 to 15 that
/// [`validate::phone`] wants, so the validator is not run (a debug build
/// checks it).
#[inline(always)]
fn nanp_confirmed(text: &[u8], s: usize, e: usize) -> bool {
    debug_assert!(Builtin::Phone.validate(text, s, e));
    Builtin::Phone.right_ok(text, e)
}

/// [`phone_from_open`] from the run's digit bits (`w`: bit 0 is the byte
/// at `s`, bits past the run are zero). A phone number ends with a digit
/// and its right boundary excludes a digit after it, so from a `+` the
/// only ends to try are the ends of digit groups, and only those closing 8
/// to 15 digits (what [`validate::phone`] wants, so the validator itself is
/// not run), longest first.
///
/// The shape is decided without reading it byte by byte: the North
/// American form from a `+` has one possible end, which [`nanp_end`]
/// finds once, and the other two forms (`\+[1-9][0-9]{7,14}` and
/// `\+[1-9][0-9]{0,2}(?:[ .-][0-9]{1,8}){1,6}`) are told by the
/// separator bits ([`plus_shape_bits`]).
#[inline]
fn phone_from_open_bits(text: &[u8], s: usize, ce: usize, w: u64) -> Option<usize> {
    if text[s] != b'+' {
        return phone_from_open(text, s, ce);
    }
    let b = Builtin::Phone;
    let (min_len, max_len) = b.len_range();
    let span = (ce - s).min(max_len) as u32;
    // Bit p: the byte at p is the last digit of a group, and an end at
    // p + 1 is within the length range.
    let mut ends = w & !(w >> 1) & bits_below(span) & bits_from(min_len as u32 - 1);
    if ends == 0 {
        return None;
    }
    let nanp = if text.get(s + 1) == Some(&b'1') {
        nanp_end(text, s, ce)
    } else {
        None
    };
    while ends != 0 {
        let p = 63 - ends.leading_zeros();
        ends &= !(1u64 << p);
        let digits = (w & bits_below(p + 1)).count_ones();
        let e = s + p as usize + 1;
        if (8..=15).contains(&digits)
            && b.right_ok(text, e)
            && (nanp == Some(e) || plus_shape_bits(text, s, e, w))
        {
            debug_assert!(b.shape(&text[s..e]) && b.validate(text, s, e));
            return Some(e);
        }
    }
    None
}

/// Whether `text[s..e]` (a `+` at `s`, then bytes of a numeric run whose
/// digits are the bits of `w`, bit 0 at `s`; `e - s` is 9 to 22) has the
/// shape `\+[1-9][0-9]{7,14}` or `\+[1-9][0-9]{0,2}(?:[ .-][0-9]{1,8}){1,6}`:
/// the non-digits after the `+` are the separators, which must stand
/// alone, number one to six, come after a country code of one to three
/// digits and be `' '`, `.` or `-`; every group after the country code
/// holds at most eight digits. [`Builtin::shape`] is the definition
/// (property-tested through [`phone_from_open_bits`]).
#[inline(always)]
fn plus_shape_bits(text: &[u8], s: usize, e: usize, w: u64) -> bool {
    let len = (e - s) as u32;
    if !(b'1'..=b'9').contains(&text[s + 1]) {
        return false;
    }
    let inside = bits_below(len) & !1;
    let separators = !w & inside;
    if separators == 0 {
        // All digits: the E.164 form, 8 to 15 of them.
        return (9..=16).contains(&len);
    }
    // The first separator ends a country code of one to three digits
    // (the byte after the `+` is a digit).
    if separators.trailing_zeros() > 4
        || separators & (separators >> 1) != 0
        || separators.count_ones() > 6
        || (separators >> (len - 1)) & 1 != 0
    {
        return false;
    }
    // Nine digits in a row after the country code are one too many.
    let groups = w & inside & !bits_below(separators.trailing_zeros());
    let two = groups & (groups >> 1);
    let four = two & (two >> 2);
    let eight = four & (four >> 4);
    if eight & (groups >> 8) != 0 {
        return false;
    }
    let mut rest = separators;
    while rest != 0 {
        let q = rest.trailing_zeros() as usize;
        rest &= rest - 1;
        if !matches!(text[s + q], b' ' | b'.' | b'-') {
            return false;
        }
    }
    true
}

/// The North American number from a digit at `s`, if any.
///
/// Kept out of line: inlined, it made the run walk that calls it spill
/// registers on every run (about 150 K more instructions over the
/// PII-free corpus, which has hardly any numbers to confirm).
#[inline(never)]
fn phone_from_digit(text: &[u8], s: usize, ce: usize) -> Option<usize> {
    nanp_end(text, s, ce).filter(|&e| nanp_confirmed(text, s, e))
}

/// The numeric detectors over one run whose bytes are described by its
/// bits (see [`NumericRun::digit_bits`]): the starts (the first digit of
/// each group of digits, and each `+` or `(`) come from the bits, and so
/// do the group lengths, the digits left after each start and the exact
/// layout an SSN or an IPv4 address needs.
#[inline(always)]
fn scan_run_bits(
    text: &[u8],
    run: &NumericRun,
    here: Here,
    out: &mut Vec<Finding>,
    bmi2: bool,
) -> bool {
    let (cs, ce) = (run.start, run.end);
    let d = run.digit_bits;
    if here.phone {
        let mut opens = run.open_bits;
        while opens != 0 {
            let g = opens.trailing_zeros();
            opens &= opens - 1;
            let s = cs + g as usize;
            let left = (d >> g).count_ones() as usize;
            let needed = if text[s] == b'(' { NANP_DIGITS_MIN } else { 8 };
            if left < needed || !Builtin::Phone.left_ok(text, s) {
                continue;
            }
            if let Some(e) = phone_from_open_bits(text, s, ce, d >> g) {
                push(out, s, e, Builtin::Phone);
                if out.len() >= CANDIDATES_MAX {
                    return false;
                }
            }
        }
    }
    // The first digit of each group: a byte after a digit never starts a
    // candidate (the left boundary excludes it). Each detector's own
    // necessary conditions are then applied to all the starts at once, so
    // that the walk below visits only the few starts that survive (in
    // PII-dense rows about one in ten).
    let starts = d & !(d << 1);
    let card_starts = if here.card {
        starts & run.card_first_bits & digits_at_least(d, 13, bmi2)
    } else {
        0
    };
    let ssn_starts = if here.ssn { starts & ssn_layout(d) } else { 0 };
    let ipv4_starts = if here.ipv4 {
        starts & ipv4_layout(d, run.dot_bits)
    } else {
        0
    };
    // The first group's length is checked per start in the loop below
    // (`nanp_may_start`): the starts with ten digits left are few, and a
    // mask of the group lengths for every start cost more (16.05 against
    // 15.53 instructions per byte on PII-dense rows).
    let nanp_starts = if here.phone {
        starts & digits_at_least(d, NANP_DIGITS_MIN as u32, bmi2)
    } else {
        0
    };
    let mut todo = card_starts | ssn_starts | ipv4_starts | nanp_starts;
    while todo != 0 {
        let g = todo.trailing_zeros();
        todo &= todo - 1;
        let s = cs + g as usize;
        if !Builtin::Card.left_ok(text, s) {
            continue;
        }
        let at = 1u64 << g;
        // Digits from this start on, bit 0 first.
        let w = d >> g;
        let first = text[s];
        // Card brands all start with 2 to 6 (see `validate::card_brand_ok`),
        // which `card_starts` took from the class bits.
        if card_starts & at != 0 {
            if let Some(e) = card_end_fast(text, s, ce, w, bmi2) {
                push(out, s, e, Builtin::Card);
            }
        }
        // The digit layout is right (`ssn_layout`); the separators must be
        // the same `-` or space.
        if ssn_starts & at != 0 {
            debug_assert_eq!(w & 0xFFF, SSN_DIGIT_BITS);
            let e = s + 11;
            let separator = text[s + 3];
            if (separator == b'-' || separator == b' ')
                && text[s + 6] == separator
                && Builtin::Ssn.right_ok(text, e)
                && Builtin::Ssn.validate(text, s, e)
            {
                push(out, s, e, Builtin::Ssn);
            }
        }
        if ipv4_starts & at != 0 {
            if let Some(e) = ipv4_end_bits(text, s, w, run.dot_bits >> g) {
                push(out, s, e, Builtin::Ipv4);
            }
        }
        if nanp_starts & at != 0 && nanp_may_start(first, (!w).trailing_zeros() as usize) {
            if let Some(e) = phone_from_digit(text, s, ce) {
                push(out, s, e, Builtin::Phone);
            }
        }
        if out.len() >= CANDIDATES_MAX {
            return false;
        }
    }
    true
}

/// Bits `p` of `d` (digit bits, zero past the run) from which at least
/// `n` digits (`n >= 1`) are left: every position up to the `n`-th digit
/// counted from the end.
#[inline(always)]
fn digits_at_least(d: u64, n: u32, bmi2: bool) -> u64 {
    let total = d.count_ones();
    if total < n {
        return 0;
    }
    let last = select_bit(d, total - n, bmi2);
    u64::MAX >> (63 - last)
}

/// The position of the set bit of `d` with `k` set bits below it
/// (`k < d.count_ones()`). One `pdep` when `bmi2` (the x86-64-v3 build of
/// [`scan`], which detected it), else `k` steps clearing the lowest bit.
#[inline(always)]
fn select_bit(d: u64, k: u32, bmi2: bool) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if bmi2 {
        // SAFETY: the caller passes `bmi2` only from the build of `scan`
        // that runs after BMI2 was detected.
        return unsafe { std::arch::x86_64::_pdep_u64(1u64 << k, d) }.trailing_zeros();
    }
    let _ = bmi2;
    select_bit_portable(d, k)
}

/// `select_bit` by clearing the lowest set bit `k` times; the reference
/// of the property test.
#[inline(always)]
pub fn select_bit_portable(mut d: u64, k: u32) -> u32 {
    for _ in 0..k {
        d &= d.wrapping_sub(1);
    }
    d.trailing_zeros()
}

/// Bits `p` of `d` where the digit layout of an SSN starts: three digits,
/// a non-digit, two digits, a non-digit, four digits and a non-digit
/// ([`SSN_DIGIT_BITS`] in the twelve bits from `p`). Bits past the run are
/// zero, so a layout cut short by the run's end is never reported.
#[inline(always)]
fn ssn_layout(d: u64) -> u64 {
    let g = Groups::new(d);
    g.exactly(3) & (g.exactly(2) >> 4) & (g.exactly(4) >> 7)
}

/// Bits `p` of `d` where a group of exactly `n` digits starts, for each
/// `n` a caller asks for: bit `p` of `exactly(n)` is set when bytes `p` to
/// `p + n - 1` are digits and byte `p + n` is not (`!(d >> n)` brings in
/// ones past bit 63, which are non-digits too, as is every byte past the
/// run).
#[derive(Clone, Copy)]
struct Groups {
    d: u64,
    two: u64,
    three: u64,
    four: u64,
}

impl Groups {
    #[inline(always)]
    fn new(d: u64) -> Self {
        let two = d & (d >> 1);
        Groups {
            d,
            two,
            three: two & (d >> 2),
            four: two & (two >> 2),
        }
    }

    /// Bits `p` where at least `n` digits start (`n` in 1 to 11). Longer
    /// runs are shorter ones back to back; no recursion, so that every
    /// call inlines to a few shifts and ANDs.
    #[inline(always)]
    fn at_least(self, n: u32) -> u64 {
        let eight = self.four & (self.four >> 4);
        match n {
            0 | 1 => self.d,
            2 => self.two,
            3 => self.three,
            4 => self.four,
            5 => self.four & (self.d >> 4),
            6 => self.four & (self.two >> 4),
            7 => self.four & (self.three >> 4),
            8 => eight,
            9 => eight & (self.d >> 8),
            10 => eight & (self.two >> 8),
            _ => eight & (self.three >> 8),
        }
    }

    #[inline(always)]
    fn exactly(self, n: u32) -> u64 {
        self.at_least(n) & !(self.d >> n)
    }
}

/// Bits `p` of `d` where the digit and dot layout of an IPv4 address
/// starts: four groups of one to three digits joined by single dots, the
/// last followed by a non-digit (`dots`: the run's dot bits). What
/// [`ipv4_end_bits`] then reads, but the octet values.
#[inline(always)]
fn ipv4_layout(d: u64, dots: u64) -> u64 {
    let g = Groups::new(d);
    // An octet and its dot, from the octet's first digit.
    let (one, two, three) = (d & (dots >> 1), g.two & (dots >> 2), g.three & (dots >> 3));
    // Where such an octet is followed by `next` (which starts right after
    // the dot).
    let then = |next: u64| (one & (next >> 2)) | (two & (next >> 3)) | (three & (next >> 4));
    let last = g.exactly(1) | g.exactly(2) | g.exactly(3);
    then(then(then(last)))
}

/// The same walk a byte at a time, for runs longer than
/// [`RUN_BITS_BYTES_MAX`] (a long list of numbers), and the definition
/// that the bit walk follows.
fn scan_run_bytes(text: &[u8], run: &NumericRun, here: Here, out: &mut Vec<Finding>) -> bool {
    let (cs, ce) = (run.start, run.end);
    // Digits from the current start to the end of the run: a candidate
    // holds no more than these, which rules detectors out long before the
    // run ends.
    let mut digits_from = run.digits;
    let mut s = cs;
    while s < ce && digits_from >= 4 {
        let first = text[s];
        if !first.is_ascii_digit() {
            // Only phone numbers start with `+` or `(`.
            if (first == b'+' || first == b'(')
                && here.phone
                && digits_from >= if first == b'(' { NANP_DIGITS_MIN } else { 8 }
                && Builtin::Phone.left_ok(text, s)
            {
                if let Some(e) = phone_from_open(text, s, ce) {
                    push(out, s, e, Builtin::Phone);
                    if out.len() >= CANDIDATES_MAX {
                        return false;
                    }
                }
            }
            s += 1;
            continue;
        }
        // `s` starts a group of digits (a byte after a digit never starts a
        // candidate: the left boundary excludes it), so the rest of that
        // group is skipped below.
        let left = digits_from;
        let mut digits_end = s + 1;
        while digits_end < ce && text[digits_end].is_ascii_digit() {
            digits_end += 1;
        }
        digits_from -= digits_end - s;
        let leading = digits_end - s;
        if Builtin::Card.left_ok(text, s) {
            if here.card && left >= 13 && (b'2'..=b'6').contains(&first) {
                if let Some(e) = card_end(text, s, ce) {
                    push(out, s, e, Builtin::Card);
                }
            }
            if here.ssn && left >= 9 && leading == 3 {
                let e = s + 11;
                if e <= ce
                    && text[s + 3] == text[s + 6]
                    && Builtin::Ssn.shape(&text[s..e])
                    && Builtin::Ssn.right_ok(text, e)
                    && Builtin::Ssn.validate(text, s, e)
                {
                    push(out, s, e, Builtin::Ssn);
                }
            }
            if here.ipv4 && leading <= 3 && text.get(digits_end) == Some(&b'.') {
                if let Some(e) = ipv4_end(text, s, ce) {
                    push(out, s, e, Builtin::Ipv4);
                }
            }
            if here.phone && left >= NANP_DIGITS_MIN && first != b'0' {
                if let Some(e) = phone_from_digit(text, s, ce) {
                    push(out, s, e, Builtin::Phone);
                }
            }
            if out.len() >= CANDIDATES_MAX {
                return false;
            }
        }
        s = digits_end;
    }
    true
}

/// The digits a card from `s` (a digit) can span, as bits of `w` (the
/// run's digit bits from `s`, zero past the run's end at `ce`), if there
/// are at least 13. The chain of digit groups ends at the first non-digit
/// that is not followed by a digit (two separators in a row, or the run's
/// end), or at the first separator that is not `' '`/`'-'` or differs
/// from the first one.
#[inline(always)]
fn card_chain(text: &[u8], s: usize, ce: usize, w: u64) -> Option<u64> {
    let len = (ce - s) as u32;
    // Non-digits, with every bit past the run set.
    let other = !w | !bits_below(len);
    // A non-digit followed by a non-digit: the chain ends before it.
    let mut stop = (other & (other >> 1)).trailing_zeros();
    // The separators inside the chain must all be the same `' '` or `'-'`.
    let mut separators = other & bits_below(stop);
    if separators != 0 {
        let first = text[s + separators.trailing_zeros() as usize];
        if first != b' ' && first != b'-' {
            stop = separators.trailing_zeros();
        } else {
            separators &= separators - 1;
            while separators != 0 {
                let q = separators.trailing_zeros();
                if text[s + q as usize] != first {
                    stop = q;
                    break;
                }
                separators &= separators - 1;
            }
        }
    }
    let digits = w & bits_below(stop);
    (digits.count_ones() >= 13).then_some(digits)
}

/// Luhn's doubled digit, digit sum taken: 2d, minus 9 above 9.
const LUHN_DOUBLED: [u32; 10] = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];

/// [`card_end`] from the run's digit bits (`w`: bit 0 is the byte at `s`,
/// bits past the run's end are zero). The chain of digit groups a card can
/// span ends at the first non-digit that is not followed by a digit (two
/// separators in a row, or the run's end), or at the first separator that
/// is not `' '`/`'-'` or differs from the first one; candidate ends are the
/// group ends inside the chain that hold 13 to 19 digits, and each one's
/// Luhn sum comes from one walk over the digits.
#[inline]
fn card_end_bits(text: &[u8], s: usize, ce: usize, w: u64) -> Option<usize> {
    let digits = card_chain(text, s, ce, w)?;
    // Group ends: the last digit of each group of the chain.
    let group_ends = digits & !(digits >> 1);
    // One walk over the first 19 digits gives the Luhn sum of every prefix.
    // With n digits the check doubles the digits at the positions of n's
    // parity (counting from 0), so two running sums are kept, `doubling`
    // (which doubles the digits of the coming position's parity) and
    // `plain`, and swapped after each digit: after n digits `doubling` is
    // the sum the check of an n-digit candidate wants. The prefixes that end
    // a group with 13 to 19 digits are the candidates.
    let mut candidates = [(0usize, 0usize, 0u32); 7];
    let mut found = 0usize;
    let mut first4 = [0u8; 4];
    let (mut doubling, mut plain) = (0u32, 0u32);
    let mut rest = digits;
    let mut count = 0usize;
    while rest != 0 && count < 19 {
        let p = rest.trailing_zeros();
        rest &= rest - 1;
        let b = text[s + p as usize];
        if count < 4 {
            first4[count] = b;
        }
        let digit = usize::from(b - b'0');
        doubling += LUHN_DOUBLED[digit];
        plain += digit as u32;
        std::mem::swap(&mut doubling, &mut plain);
        count += 1;
        if count >= 13 && (group_ends >> p) & 1 == 1 {
            candidates[found] = (s + p as usize + 1, count, doubling);
            found += 1;
        }
    }
    // Longest first.
    candidates[..found].iter().rev().find_map(|&(e, n, sum)| {
        (sum % 10 == 0 && Builtin::Card.right_ok(text, e) && validate::card_brand_ok(&first4, n))
            .then_some(e)
    })
}

/// [`card_end_bits`] with AVX2 and BMI2: the candidate ends (group ends
/// holding 13 to 19 digits) come from two `pdep`s, and the Luhn sum of
/// each is one masked byte sum over the chain's 64 bytes instead of a walk
/// with a branch per digit. Which digits a candidate doubles is a parity:
/// with `n` digits, those whose count of digits before them has the
/// parity of `n`, and that count's parity for every byte at once is a
/// prefix XOR of the digit bits.
///
/// # Safety
///
/// The CPU must support AVX2, BMI1, BMI2 and POPCNT.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt")]
unsafe fn card_end_avx2(text: &[u8], s: usize, ce: usize, w: u64) -> Option<usize> {
    use std::arch::x86_64::{
        __m256i, _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_extracti128_si256, _mm256_loadu_si256,
        _mm256_or_si256, _mm256_sad_epu8, _mm256_set1_epi32, _mm256_set1_epi64x, _mm256_set1_epi8,
        _mm256_setr_epi8, _mm256_setzero_si256, _mm256_shuffle_epi8, _mm256_sub_epi8,
        _mm_add_epi64, _mm_cvtsi128_si64, _mm_unpackhi_epi64, _pdep_u64,
    };
    let digits = card_chain(text, s, ce, w)?;
    let group_ends = digits & !(digits >> 1);
    // The 13th digit and the 19th (or the chain's last) bound the ends.
    let total = digits.count_ones();
    let thirteenth = _pdep_u64(1 << 12, digits).trailing_zeros();
    let last = if total > 19 {
        _pdep_u64(1 << 18, digits).trailing_zeros()
    } else {
        63 - digits.leading_zeros()
    };
    let mut ends = group_ends & bits_from(thirteenth) & bits_below(last + 1);
    if ends == 0 {
        return None;
    }
    // The chain's bytes (its last digit is within 37 bytes of `s`), padded
    // with zeros when the text ends sooner.
    // The padding is zeroed only when it is used (near the end of the
    // text), not on every call.
    let padded: [u8; 64];
    let bytes: &[u8] = match text.get(s..s + 64) {
        Some(b) => b,
        None => {
            let rest = &text[s..];
            let mut block = [0u8; 64];
            block[..rest.len()].copy_from_slice(rest);
            padded = block;
            &padded
        }
    };
    // SAFETY: `bytes` holds 64 bytes, so both loads stay inside it.
    let (plain, doubled) = unsafe {
        let load = |at: usize| _mm256_loadu_si256(bytes.as_ptr().add(at).cast::<__m256i>());
        // Digit values; other bytes get junk that the masks below drop.
        let nibble = _mm256_set1_epi8(0x0f);
        let value =
            |v: __m256i| _mm256_and_si256(_mm256_sub_epi8(v, _mm256_set1_epi8(b'0' as i8)), nibble);
        let table = _mm256_setr_epi8(
            0, 2, 4, 6, 8, 1, 3, 5, 7, 9, 0, 0, 0, 0, 0, 0, 0, 2, 4, 6, 8, 1, 3, 5, 7, 9, 0, 0, 0,
            0, 0, 0,
        );
        let (low, high) = (value(load(0)), value(load(32)));
        (
            [low, high],
            [
                _mm256_shuffle_epi8(table, low),
                _mm256_shuffle_epi8(table, high),
            ],
        )
    };
    // Bit `i`: the count of chain digits before byte `i` is odd.
    let mut parity = digits;
    for shift in [1, 2, 4, 8, 16, 32] {
        parity ^= parity << shift;
    }
    let odd_before = parity ^ digits;
    // 32 mask bits as 32 bytes of all ones or zeros.
    let expand = |m: u32| {
        let spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(m as i32),
            _mm256_setr_epi8(
                0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3,
                3, 3, 3, 3,
            ),
        );
        let select = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
        _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select)
    };
    while ends != 0 {
        // Longest first.
        let p = 63 - ends.leading_zeros();
        ends &= !(1u64 << p);
        let chain = digits & bits_below(p + 1);
        let n = chain.count_ones();
        let twice = chain
            & if n.is_multiple_of(2) {
                !odd_before
            } else {
                odd_before
            };
        let once = chain & !twice;
        let mut sums = _mm256_setzero_si256();
        for half in 0..2 {
            let shift = 32 * half as u32;
            let picked = _mm256_or_si256(
                _mm256_and_si256(plain[half], expand((once >> shift) as u32)),
                _mm256_and_si256(doubled[half], expand((twice >> shift) as u32)),
            );
            sums = std::arch::x86_64::_mm256_add_epi64(
                sums,
                _mm256_sad_epu8(picked, _mm256_setzero_si256()),
            );
        }
        let folded = _mm_add_epi64(
            _mm256_extracti128_si256::<0>(sums),
            _mm256_extracti128_si256::<1>(sums),
        );
        let sum = _mm_cvtsi128_si64(_mm_add_epi64(folded, _mm_unpackhi_epi64(folded, folded)));
        let e = s + p as usize + 1;
        if sum % 10 == 0 && Builtin::Card.right_ok(text, e) {
            let mut first4 = [0u8; 4];
            let mut rest = digits;
            for b in &mut first4 {
                *b = text[s + rest.trailing_zeros() as usize];
                rest &= rest - 1;
            }
            if validate::card_brand_ok(&first4, n as usize) {
                return Some(e);
            }
        }
    }
    None
}

/// `card_end_bits` with AVX2 when `v3` (detected by the caller); the
/// property tests compare the two.
#[inline(always)]
pub fn card_end_fast(text: &[u8], s: usize, ce: usize, w: u64, v3: bool) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if v3 {
        // SAFETY: the caller detected the x86-64-v3 features.
        return unsafe { card_end_avx2(text, s, ce, w) };
    }
    let _ = v3;
    card_end_bits(text, s, ce, w)
}

/// [`ipv4_end`] from the run's digit and dot bits (bit 0 is the byte at
/// `s`): four groups of one to three digits joined by single dots, each a
/// valid octet, and a right boundary.
#[inline]
fn ipv4_end_bits(text: &[u8], s: usize, w: u64, dots: u64) -> Option<usize> {
    let mut p = 0u32;
    for octet in 0..4 {
        let n = (!(w >> p)).trailing_zeros();
        if n == 0
            || n > 3
            || !validate::ipv4_octet_digits(&text[s + p as usize..s + (p + n) as usize])
        {
            return None;
        }
        p += n;
        if octet < 3 {
            // A group of at most three digits and its dot lie within the
            // first 16 bits, so the shift stays below 64.
            if (dots >> p) & 1 == 0 {
                return None;
            }
            p += 1;
        }
    }
    let e = s + p as usize;
    (Builtin::Ipv4.right_ok(text, e) && Builtin::Ipv4.validate(text, s, e)).then_some(e)
}

/// The longest card candidate from `s` (a digit) within the cluster ending
/// at `ce`: the shape `[0-9](?:[ -]?[0-9]){12,18}` allows an end after
/// each digit from the 13th to the 19th as long as separators stay single;
/// the longest end that sits on a boundary and validates wins.
///
/// Everything [`validate::card`] checks is gathered in the one forward
/// walk instead of re-reading each candidate: the walk stops at a second
/// kind of separator (no longer candidate can validate), and the Luhn sum
/// of every end comes from two running sums, one doubling the digits at
/// even positions and one the digits at odd positions (which digits the
/// check doubles depends on the parity of the candidate's digit count).
#[inline]
fn card_end(text: &[u8], s: usize, ce: usize) -> Option<usize> {
    /// Luhn's doubled digit, digit sum taken: 2d, minus 9 above 9.
    const DOUBLED: [u32; 10] = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];
    let mut ends = [0usize; 7];
    // Luhn sums of the candidates with 13 to 19 digits.
    let mut sums = [0u32; 7];
    let mut first4 = [0u8; 4];
    let mut count = 0usize;
    let mut digits = 0usize;
    let mut prev_digit = false;
    let mut separator = 0u8;
    // Sums over the digits so far: `even_doubled` doubles the digits at
    // even positions (0, 2, ...), `odd_doubled` those at odd positions.
    let mut even_doubled = 0u32;
    let mut odd_doubled = 0u32;
    for (j, &b) in text[s..ce].iter().enumerate() {
        let d = b.wrapping_sub(b'0');
        if d < 10 {
            if digits == 19 {
                break;
            }
            if digits < 4 {
                first4[digits] = b;
            }
            let (plain, doubled) = (u32::from(d), DOUBLED[usize::from(d)]);
            if digits.is_multiple_of(2) {
                even_doubled += doubled;
                odd_doubled += plain;
            } else {
                even_doubled += plain;
                odd_doubled += doubled;
            }
            digits += 1;
            prev_digit = true;
            if digits >= 13 {
                ends[count] = s + j + 1;
                // With `digits` digits the check doubles every second digit
                // from the last one backwards: the positions of the other
                // parity than the last position `digits - 1`.
                sums[count] = if digits.is_multiple_of(2) {
                    even_doubled
                } else {
                    odd_doubled
                };
                count += 1;
            }
        } else if (b == b' ' || b == b'-') && prev_digit {
            if separator != 0 && separator != b {
                break;
            }
            separator = b;
            prev_digit = false;
        } else {
            break;
        }
    }
    (0..count).rev().find_map(|k| {
        let e = ends[k];
        (sums[k] % 10 == 0
            && Builtin::Card.right_ok(text, e)
            && validate::card_brand_ok(&first4, k + 13))
        .then_some(e)
    })
}

/// The IPv4 candidate from `s` (a digit), if any. The shape allows one end
/// at most: the first three octets are whole runs of digits followed by a
/// dot, and the right boundary excludes a digit after the last one.
#[inline]
fn ipv4_end(text: &[u8], s: usize, ce: usize) -> Option<usize> {
    let mut j = s;
    for octet in 0..4 {
        let run = text[j..ce]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if run == 0 || run > 3 {
            return None;
        }
        j += run;
        if octet < 3 {
            if j >= ce || text[j] != b'.' {
                return None;
            }
            j += 1;
        }
    }
    let b = Builtin::Ipv4;
    (b.shape(&text[s..j]) && b.right_ok(text, j) && b.validate(text, s, j)).then_some(j)
}

/// The end of the North American phone number shape from `s`, if the
/// bytes from `s` (bounded by the cluster end `ce`) spell one. The shape
/// `(?:\+?1[ .-]?)?(?:\([2-9]dd\) ?|[2-9]dd[ .-]?)[2-9]dd[ .-]?dddd` is
/// deterministic: every optional part is decided by the next byte (an area
/// code never starts with `1` or a separator), so there is one end at most.
fn nanp_end(text: &[u8], s: usize, ce: usize) -> Option<usize> {
    let c = &text[s..ce.min(s + Builtin::Phone.len_range().1)];
    let at = |i: usize| c.get(i).copied();
    let sep = |i: usize| at(i).is_some_and(|b| matches!(b, b' ' | b'.' | b'-'));
    let lead = |i: usize| at(i).is_some_and(|b| (b'2'..=b'9').contains(&b));
    let digits =
        |i: usize, k: usize| c.len() >= i + k && c[i..i + k].iter().all(u8::is_ascii_digit);
    let mut i = 0;
    if at(0) == Some(b'+') {
        if at(1) != Some(b'1') {
            return None;
        }
        i = 2;
        if sep(i) {
            i += 1;
        }
    } else if at(0) == Some(b'1') {
        i = 1;
        if sep(i) {
            i += 1;
        }
    }
    if at(i) == Some(b'(') {
        if !lead(i + 1) || !digits(i + 2, 2) || at(i + 4) != Some(b')') {
            return None;
        }
        i += 5;
        if at(i) == Some(b' ') {
            i += 1;
        }
    } else {
        if !lead(i) || !digits(i + 1, 2) {
            return None;
        }
        i += 3;
        if sep(i) {
            i += 1;
        }
    }
    if !lead(i) || !digits(i + 1, 2) {
        return None;
    }
    i += 3;
    if sep(i) {
        i += 1;
    }
    digits(i, 4).then_some(s + i + 4)
}

/// The longest phone candidate from `s` (a `+`): E.164 and international
/// numbers have groups that can end after any digit, so every end in the
/// length range that sits on a boundary is tried, longest first, against
/// the full shape. Starts with `+` are rare, so this stays cheap.
fn phone_end_plus(text: &[u8], s: usize, ce: usize) -> Option<usize> {
    let b = Builtin::Phone;
    let (min_len, max_len) = b.len_range();
    let hi = ce.min(s + max_len);
    let lo = s + min_len;
    // Digits before each end: the validator wants 8 to 15 of them, which
    // rules out most ends before the shape is read.
    let mut digits_before = [0u8; 32];
    let mut count = 0u8;
    for (k, &c) in text[s..hi].iter().enumerate() {
        count += u8::from(c.is_ascii_digit());
        digits_before[k + 1] = count;
    }
    (lo..=hi).rev().find(|&e| {
        text[e - 1].is_ascii_digit()
            && (8..=15).contains(&digits_before[e - s])
            && b.right_ok(text, e)
            && b.shape(&text[s..e])
            && b.validate(text, s, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Digit bits of a run drawn from a few layouts that hit the masks
    /// (groups of one to eleven digits between single separators) as well
    /// as any 64 bits.
    fn digit_bits() -> impl Strategy<Value = u64> {
        prop_oneof![
            any::<u64>(),
            proptest::collection::vec(1u32..12, 1..8).prop_map(|groups| {
                let (mut bits, mut at) = (0u64, 0u32);
                for g in groups {
                    if at + g > 64 {
                        break;
                    }
                    bits |= (u64::MAX >> (64 - g)) << at;
                    at += g + 1;
                }
                bits
            }),
        ]
    }

    /// Digits from bit `p` on, as the walk over a run reads them.
    fn leading(d: u64, p: u32) -> u32 {
        (!(d >> p)).trailing_zeros()
    }

    /// Texts of digit groups and card separators, with Luhn-valid cards
    /// mixed in so that the sums matter.
    fn card_texts() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                "[0-9]{1,6}",
                "[ -]",
                "[ -]{2}",
                "[.+()a]",
                Just("4111 1111 1111 1111".to_string()),
                Just("5500-0000-0000-0004".to_string()),
                Just("378282246310005".to_string()),
                Just("6011000990139424".to_string()),
            ],
            1..12,
        )
        .prop_map(|parts| parts.concat().into_bytes())
    }

    /// Texts of phone fragments: `+` and `(` starts, country codes, digit
    /// groups of every length up to past the limits, every separator of
    /// the numeric runs, doubled or not.
    fn phone_texts() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                "[0-9]{1,10}",
                "[ .()+-]",
                "[ .-]{2}",
                "\\+[0-9]{1,3}",
                "[a,]",
                Just("+1 555 555 5555".to_string()),
                Just("+1 (555) 555-5555".to_string()),
                Just("+15555555555".to_string()),
                Just("+44 20 1234 5678".to_string()),
                Just("+33 1 23 45 67 89".to_string()),
            ],
            1..10,
        )
        .prop_map(|parts| parts.concat().into_bytes())
    }

    /// Texts of IPv4 fragments: octets of every length and value around
    /// the limits (leading zeros, 255 and 256), dots single and doubled,
    /// other run bytes and letters between.
    fn ipv4_texts() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                "[0-9]{1,4}",
                "(25[0-9]|2[0-9]{2}|0[0-9]{1,2})",
                "\\.",
                "\\.\\.",
                "[ +()a/-]",
                Just("192.168.0.1".to_string()),
                Just("255.255.255.255".to_string()),
            ],
            1..12,
        )
        .prop_map(|parts| parts.concat().into_bytes())
    }

    proptest! {
        #[test]
        fn card_end_bits_match_byte_walk(text in card_texts(), tail in 0usize..70) {
            // Text after the run, so that the padded and the direct loads
            // of the vector build both happen.
            let mut text = text;
            text.extend(std::iter::repeat_n(b'x', tail));
            for s in 0..text.len() {
                if !text[s].is_ascii_digit() || (s > 0 && text[s - 1].is_ascii_digit()) {
                    continue;
                }
                let mut ce = s;
                while ce < text.len() && NUMERIC[usize::from(text[ce])] {
                    ce += 1;
                }
                if ce - s > RUN_BITS_BYTES_MAX {
                    continue;
                }
                let w = text[s..ce]
                    .iter()
                    .enumerate()
                    .fold(0u64, |m, (k, b)| m | (u64::from(b.is_ascii_digit()) << k));
                let want = card_end(&text, s, ce);
                prop_assert_eq!(card_end_bits(&text, s, ce, w), want, "bits, s {}", s);
                if Level::supported().contains(&Level::V3) {
                    prop_assert_eq!(card_end_fast(&text, s, ce, w, true), want, "avx2, s {}", s);
                }
            }
        }

        #[test]
        fn phone_from_open_bits_match_byte_walk(text in phone_texts()) {
            for s in 0..text.len() {
                if !matches!(text[s], b'+' | b'(') {
                    continue;
                }
                let mut ce = s;
                while ce < text.len() && NUMERIC[usize::from(text[ce])] {
                    ce += 1;
                }
                if ce - s > RUN_BITS_BYTES_MAX {
                    continue;
                }
                let w = text[s..ce]
                    .iter()
                    .enumerate()
                    .fold(0u64, |m, (k, b)| m | (u64::from(b.is_ascii_digit()) << k));
                prop_assert_eq!(
                    phone_from_open_bits(&text, s, ce, w),
                    phone_from_open(&text, s, ce),
                    "s {} in {:?}", s, String::from_utf8_lossy(&text)
                );
            }
        }

        #[test]
        fn ipv4_end_bits_match_byte_walk(text in ipv4_texts()) {
            for s in 0..text.len() {
                if !text[s].is_ascii_digit() || (s > 0 && text[s - 1].is_ascii_digit()) {
                    continue;
                }
                let mut ce = s;
                while ce < text.len() && NUMERIC[usize::from(text[ce])] {
                    ce += 1;
                }
                if ce - s > RUN_BITS_BYTES_MAX {
                    continue;
                }
                let bits = |f: fn(&u8) -> bool| text[s..ce]
                    .iter()
                    .enumerate()
                    .fold(0u64, |m, (k, b)| m | (u64::from(f(b)) << k));
                let (w, dots) = (bits(u8::is_ascii_digit), bits(|&b| b == b'.'));
                prop_assert_eq!(
                    ipv4_end_bits(&text, s, w, dots),
                    ipv4_end(&text, s, ce),
                    "s {} in {:?}", s, String::from_utf8_lossy(&text)
                );
            }
        }

        #[test]
        fn select_bit_matches_portable(d in any::<u64>().prop_filter("a set bit", |d| *d != 0), k in any::<u32>()) {
            // `k` is folded into the bits that are set (rather than
            // rejected when too large), so that no case is thrown away.
            let k = k % d.count_ones();
            let want = select_bit_portable(d, k);
            prop_assert_eq!((d >> want) & 1, 1);
            prop_assert_eq!((d & ((1u64 << want) - 1)).count_ones(), k);
            if Level::supported().contains(&Level::V3) {
                prop_assert_eq!(select_bit(d, k, true), want);
            }
        }

        #[test]
        fn digits_at_least_matches_counts(d in digit_bits(), n in 1u32..20) {
            let mask = digits_at_least(d, n, false);
            for p in 0..64 {
                prop_assert_eq!((mask >> p) & 1 == 1, (d >> p).count_ones() >= n, "p {}", p);
            }
        }

        #[test]
        fn ssn_layout_matches_twelve_bits(d in digit_bits()) {
            let mask = ssn_layout(d);
            for p in 0..64 {
                prop_assert_eq!((mask >> p) & 1 == 1, (d >> p) & 0xFFF == SSN_DIGIT_BITS, "p {}", p);
            }
        }

        #[test]
        fn ipv4_layout_matches_group_walk(d in digit_bits(), dots_seed in any::<u64>()) {
            // Dots only where there is no digit, as in a real run; every
            // separator a dot half of the time.
            let dots = !d & (dots_seed | (dots_seed >> 1));
            let mask = ipv4_layout(d, dots);
            for p in 0..64u32 {
                let mut at = p;
                let mut ok = true;
                for octet in 0..4 {
                    let n = if at < 64 { leading(d, at) } else { 0 };
                    if !(1..=3).contains(&n) {
                        ok = false;
                        break;
                    }
                    at += n;
                    if octet < 3 {
                        if at >= 64 || (dots >> at) & 1 == 0 {
                            ok = false;
                            break;
                        }
                        at += 1;
                    }
                }
                prop_assert_eq!((mask >> p) & 1 == 1, ok, "p {}", p);
            }
        }
    }
}
