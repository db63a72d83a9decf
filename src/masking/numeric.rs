//! The numeric pass: cards, SSNs, phone numbers and IPv4 addresses (and
//! the places where IBANs start), found from bitmasks.
//!
//! # How
//!
//! [`classify_text`] turns the text into one [`BlockClasses`] per 64
//! bytes: a bit per byte for digits, `[ ().+-]` (the bytes of numeric
//! runs), dots, capitals and the bytes only phone numbers start with (`+`
//! and `(`). From those, [`for_each_site`] gets with a few shifts and ANDs
//! per block the two kinds of place that need work: runs of at least
//! [`RUN_BYTES_MIN`] numeric bytes holding a digit (every card, SSN, phone
//! number and IPv4 address lies inside one) and digits after two capitals
//! (IBAN check digits). Text outside those (most of it, including the
//! short runs of digits in hex strings, tokens and words) costs a fraction
//! of an instruction per byte.
//!
//! A run comes with its digits, dots and opening bytes as bits
//! ([`NumericRun::digit_bits`]), so the walk over it takes its starts (the
//! first digit of each group, each `+` and `(`), the group lengths, the
//! digits left after a start and the exact layout of an SSN or an IPv4
//! address from shifts and bit counts. The detectors' shapes are nearly
//! deterministic from a start: one end for SSNs, IPv4 addresses and North
//! American numbers, and for cards the group ends holding 13 to 19 digits,
//! whose Luhn sums come from one forward walk over the digits. Only `+`
//! starts (E.164 and international numbers, whose groups can end anywhere)
//! try every end. Every shortcut is a necessary condition of the
//! definition in [`super::detectors`], never a heuristic, and the property
//! tests in `tests/masking_equivalence.rs` check the outcome against the
//! reference scanner and each bitmask primitive against a byte-wise walk.

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
}

impl NumericRun {
    /// A run with the bits of its first bytes (`bits`: digits, dots and
    /// opening bytes from `start` on, possibly with bits past the end),
    /// kept only when the whole run fits ([`RUN_BITS_BYTES_MAX`]).
    #[inline(always)]
    fn new(start: usize, end: usize, digits: usize, dots: usize, bits: (u64, u64, u64)) -> Self {
        let len = end - start;
        let keep = if len > RUN_BITS_BYTES_MAX {
            0
        } else if len == 64 {
            u64::MAX
        } else {
            (1u64 << len) - 1
        };
        NumericRun {
            start,
            end,
            digits,
            dots,
            digit_bits: bits.0 & keep,
            dot_bits: bits.1 & keep,
            open_bits: bits.2 & keep,
        }
    }
}

/// Longest run whose bytes are described by [`NumericRun::digit_bits`]
/// and friends; longer runs (rare: a long list of numbers) are walked a
/// byte at a time.
pub const RUN_BITS_BYTES_MAX: usize = 64;

/// Where the numeric pass has work to do, left to right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericSite {
    /// A run that may hold a card, SSN, phone number or IPv4 address.
    Run(NumericRun),
    /// A digit after two capitals: where the check digits of an IBAN
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
#[derive(Debug, Clone, Copy)]
struct Here {
    card: bool,
    ssn: bool,
    phone: bool,
    ipv4: bool,
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

/// Bytes classified at once by [`classify_block`].
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
        let (numeric, digit, dot, upper, open) = unsafe {
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
            (
                _mm_movemask_epi8(numeric) as u16,
                _mm_movemask_epi8(digit) as u16,
                _mm_movemask_epi8(dot) as u16,
                _mm_movemask_epi8(upper) as u16,
                _mm_movemask_epi8(open) as u16,
            )
        };
        let shift = lane * 16;
        out.numeric |= u64::from(numeric) << shift;
        out.digit |= u64::from(digit) << shift;
        out.dot |= u64::from(dot) << shift;
        out.upper |= u64::from(upper) << shift;
        out.open |= u64::from(open) << shift;
    }
    out
}

/// Nibble tables of the block classes (see [`classify_block_avx2`]): bit 0
/// digits, bit 1 `[ ().+-]`, bit 2 `.`, bits 3 and 4 the capitals `A`-`O`
/// and `P`-`Z` (which differ in their high nibble), bit 5 `+` and `(`
/// (both in the same high nibble). Each class is a product
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
            | ((matches!(c, b'+' | b'(') as u8) << 5);
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
        _ => _mm256_slli_epi16::<2>(class),
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
    }
    out
}

/// [`classify_block`], with AVX2 when `avx2` (detected by the caller).
#[inline(always)]
fn classify(block: &[u8; BLOCK_BYTES], avx2: bool) -> BlockClasses {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: the caller detected AVX2.
        return unsafe { classify_block_avx2(block) };
    }
    let _ = avx2;
    classify_block(block)
}

/// Classifies `text` into `out`: one entry per [`BLOCK_BYTES`] bytes
/// (bit `i` of an entry is byte `i` of its block), then one empty entry,
/// so that every block has a successor to look ahead into. Bytes past the
/// end of the text belong to no class. Inlined so that the AVX2
/// classifier is inlined in turn into [`scan`]'s AVX2 build.
#[inline(always)]
pub fn classify_text(text: &[u8], avx2: bool, out: &mut Vec<BlockClasses>) {
    // Every entry is written below; sizing the vector first keeps the
    // capacity check out of the loop.
    let full = text.len() / BLOCK_BYTES;
    let tail = text.len() % BLOCK_BYTES;
    out.clear();
    out.resize(full + usize::from(tail > 0) + 1, BlockClasses::default());
    for (slot, block) in out.iter_mut().zip(text.chunks_exact(BLOCK_BYTES)) {
        if let Ok(block) = <&[u8; BLOCK_BYTES]>::try_from(block) {
            *slot = classify(block, avx2);
        }
    }
    if tail > 0 {
        let last = if let Some(from) = text.len().checked_sub(BLOCK_BYTES) {
            // The last 64 bytes of the text, shifted so that bit 0 is the
            // first byte of the partial block: no copy, and the bits the
            // shift brings in are zero.
            let block = <&[u8; BLOCK_BYTES]>::try_from(&text[from..]).ok();
            let classes = block.map(|b| classify(b, avx2)).unwrap_or_default();
            classes.shifted_right((BLOCK_BYTES - tail) as u32)
        } else {
            let mut block = [0u8; BLOCK_BYTES];
            block[..tail].copy_from_slice(text);
            classify(&block, avx2)
        };
        out[full] = last;
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
fn bits_below(to: u32) -> u64 {
    if to >= 64 {
        u64::MAX
    } else {
        (1u64 << to) - 1
    }
}

/// Calls `visit` with the [`NumericSite`]s of a classified text, left to
/// right (an IBAN site before a run that starts at the same byte), until
/// `visit` returns false; returns false then. `blocks` comes from
/// [`classify_text`].
#[inline(always)]
pub fn for_each_site(blocks: &[BlockClasses], mut visit: impl FnMut(NumericSite) -> bool) -> bool {
    let empty = BlockClasses::default();
    let mut previous = &empty;
    for (i, pair) in blocks.windows(2).enumerate() {
        let (current, following) = (&pair[0], &pair[1]);
        let at = i * BLOCK_BYTES;
        let n = current.numeric;
        // A run starts at a numeric byte after a byte that is not.
        let starts = n & !((n << 1) | (previous.numeric >> 63));
        // Bit p: bytes p..p+7 are all numeric (the following block supplies
        // the bytes past the end of this one), so the run starting at p is
        // long enough.
        let c = u128::from(n) | (u128::from(following.numeric) << 64);
        let two = c & (c >> 1);
        let four = two & (two >> 2);
        let seven = (four & (four >> 3)) as u64;
        let mut runs = starts & seven;
        let upper = current.upper;
        let upper_before = (upper << 1) | (previous.upper >> 63);
        let upper_two_before = (upper << 2) | (previous.upper >> 62);
        let mut ibans = current.digit & upper_before & upper_two_before;
        while runs | ibans != 0 {
            let r = runs.trailing_zeros();
            let k = ibans.trailing_zeros();
            let site = if k <= r {
                ibans &= ibans - 1;
                NumericSite::IbanDigits(at + k as usize)
            } else {
                runs &= runs - 1;
                let run = run_at(blocks, i, r);
                if run.digits == 0 {
                    continue;
                }
                NumericSite::Run(run)
            };
            if !visit(site) {
                return false;
            }
        }
        previous = current;
    }
    true
}

/// The run that starts at bit `bit` of block `i`.
#[inline(always)]
fn run_at(blocks: &[BlockClasses], i: usize, bit: u32) -> NumericRun {
    let current = &blocks[i];
    let following = &blocks[i + 1];
    let start = i * BLOCK_BYTES + bit as usize;
    // The end: the first byte that is not numeric (the empty block after
    // the last one guarantees there is one).
    let mut j = i;
    let mut outside = !current.numeric & bits_from(bit);
    while outside == 0 {
        j += 1;
        outside = !blocks[j].numeric;
    }
    let end_bit = outside.trailing_zeros();
    let end = j * BLOCK_BYTES + end_bit as usize;
    let (digits, dots) = if j == i {
        let part = bits_from(bit) & bits_below(end_bit);
        (
            (current.digit & part).count_ones(),
            (current.dot & part).count_ones(),
        )
    } else {
        let first = bits_from(bit);
        let mut digits = (current.digit & first).count_ones();
        let mut dots = (current.dot & first).count_ones();
        for block in &blocks[i + 1..j] {
            digits += block.digit.count_ones();
            dots += block.dot.count_ones();
        }
        let last = bits_below(end_bit);
        digits += (blocks[j].digit & last).count_ones();
        dots += (blocks[j].dot & last).count_ones();
        (digits, dots)
    };
    let window = |low: u64, high: u64| ((u128::from(low) | (u128::from(high) << 64)) >> bit) as u64;
    NumericRun::new(
        start,
        end,
        digits as usize,
        dots as usize,
        (
            window(current.digit, following.digit),
            window(current.dot, following.dot),
            window(current.open, following.open),
        ),
    )
}

/// The sites of `text`, classified with AVX2 only when `avx2` is true and
/// the CPU supports it (so that the property tests can run both
/// classifiers against [`numeric_sites_naive`]).
pub fn numeric_sites(text: &[u8], avx2: bool) -> Vec<NumericSite> {
    let mut blocks = Vec::new();
    classify_text(text, avx2 && has_avx2(), &mut blocks);
    let mut out = Vec::new();
    for_each_site(&blocks, |site| {
        out.push(site);
        true
    });
    out
}

/// Whether this CPU has AVX2 (detected once by the standard library and
/// cached there).
#[inline(always)]
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// The same sites found one byte at a time: the definition that
/// [`numeric_sites`] is property-tested against.
pub fn numeric_sites_naive(text: &[u8]) -> Vec<NumericSite> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i].is_ascii_digit()
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
            }));
        }
    }
    out
}

/// Finds the numeric candidates of `text` for the detectors in `set`,
/// pushing them onto `out`; `blocks` is scratch space for the
/// classification. IBAN sites are handed to `iban` (which owns that
/// detector). Returns false when [`CANDIDATES_MAX`] stopped the scan.
pub fn scan(
    text: &[u8],
    set: DetectorSet,
    blocks: &mut Vec<BlockClasses>,
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
    if std::is_x86_feature_detected!("popcnt")
        && std::is_x86_feature_detected!("bmi1")
        && std::is_x86_feature_detected!("lzcnt")
        && std::is_x86_feature_detected!("avx2")
    {
        // SAFETY: the features the function is compiled for were just
        // detected on this CPU.
        return unsafe { scan_x86_64_v3(text, set, blocks, out, iban) };
    }
    scan_portable(text, set, blocks, out, iban, false)
}

/// [`scan`] compiled for CPUs with `popcnt`, `tzcnt`, `lzcnt` and AVX2
/// (x86-64-v3): the bit counts are then single instructions instead of
/// bit-twiddling sequences.
///
/// # Safety
///
/// The CPU must support those features.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt,bmi1,lzcnt,avx2")]
unsafe fn scan_x86_64_v3(
    text: &[u8],
    set: DetectorSet,
    blocks: &mut Vec<BlockClasses>,
    out: &mut Vec<Finding>,
    iban: impl FnMut(&[u8], usize, &mut Vec<Finding>),
) -> bool {
    scan_portable(text, set, blocks, out, iban, true)
}

#[inline(always)]
fn scan_portable(
    text: &[u8],
    set: DetectorSet,
    blocks: &mut Vec<BlockClasses>,
    out: &mut Vec<Finding>,
    mut iban: impl FnMut(&[u8], usize, &mut Vec<Finding>),
    avx2: bool,
) -> bool {
    let card = set.contains(Builtin::Card as DetectorId);
    let ssn = set.contains(Builtin::Ssn as DetectorId);
    let phone = set.contains(Builtin::Phone as DetectorId);
    let ipv4 = set.contains(Builtin::Ipv4 as DetectorId);
    let any_numeric = card || ssn || phone || ipv4;
    let iban_wanted = set.contains(Builtin::Iban as DetectorId);
    classify_text(text, avx2, blocks);
    // Inlined, so that the walk is compiled with the caller's CPU features
    // (a closure does not take them over by itself).
    for_each_site(
        blocks,
        #[inline(always)]
        |site| {
            let run = match site {
                NumericSite::IbanDigits(d) => {
                    if iban_wanted && validate::iban_length(&text[d - 2..d]).is_some() {
                        iban(text, d - 2, out);
                    }
                    return out.len() < CANDIDATES_MAX;
                }
                NumericSite::Run(run) => run,
            };
            if !any_numeric {
                return true;
            }
            // What the run can hold at all, by its counts: cards have 13 to 19
            // digits, SSNs nine, phone numbers 8 to 15, IPv4 addresses three
            // dots and four digits.
            let here = Here {
                card: card && run.digits >= 13,
                ssn: ssn && run.digits >= 9,
                phone: phone && run.digits >= 8,
                ipv4: ipv4 && run.dots >= 3 && run.digits >= 4,
            };
            if !(here.card || here.ssn || here.phone || here.ipv4) {
                return true;
            }
            if run.digit_bits != 0 {
                scan_run_bits(text, &run, here, out)
            } else {
                scan_run_bytes(text, &run, here, out)
            }
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
        nanp_end(text, s, ce)
            .filter(|&e| Builtin::Phone.right_ok(text, e) && Builtin::Phone.validate(text, s, e))
    }
}

/// [`phone_from_open`] from the run's digit bits (`w`: bit 0 is the byte
/// at `s`, bits past the run are zero). A phone number ends with a digit
/// and its right boundary excludes a digit after it, so from a `+` the
/// only ends to try are the ends of digit groups, and only those closing 8
/// to 15 digits (what [`validate::phone`] wants), longest first.
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
    while ends != 0 {
        let p = 63 - ends.leading_zeros();
        ends &= !(1u64 << p);
        let digits = (w & bits_below(p + 1)).count_ones();
        let e = s + p as usize + 1;
        if (8..=15).contains(&digits)
            && b.right_ok(text, e)
            && b.shape(&text[s..e])
            && b.validate(text, s, e)
        {
            return Some(e);
        }
    }
    None
}

/// The North American number from a digit at `s`, if any.
#[inline]
fn phone_from_digit(text: &[u8], s: usize, ce: usize) -> Option<usize> {
    nanp_end(text, s, ce)
        .filter(|&e| Builtin::Phone.right_ok(text, e) && Builtin::Phone.validate(text, s, e))
}

/// The numeric detectors over one run whose bytes are described by its
/// bits (see [`NumericRun::digit_bits`]): the starts (the first digit of
/// each group of digits, and each `+` or `(`) come from the bits, and so
/// do the group lengths, the digits left after each start and the exact
/// layout an SSN or an IPv4 address needs.
#[inline(always)]
fn scan_run_bits(text: &[u8], run: &NumericRun, here: Here, out: &mut Vec<Finding>) -> bool {
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
    // candidate (the left boundary excludes it).
    let mut starts = d & !(d << 1);
    while starts != 0 {
        let g = starts.trailing_zeros();
        starts &= starts - 1;
        // Digits from this start on, bit 0 first.
        let w = d >> g;
        let left = w.count_ones() as usize;
        if left < 4 {
            // Later starts have fewer still, and every detector here needs
            // at least four.
            break;
        }
        let s = cs + g as usize;
        if !Builtin::Card.left_ok(text, s) {
            continue;
        }
        let leading = (!w).trailing_zeros() as usize;
        let first = text[s];
        // Card brands all start with 2 to 6 (see `validate::card_brand_ok`).
        if here.card && left >= 13 && (b'2'..=b'6').contains(&first) {
            if let Some(e) = card_end_bits(text, s, ce, w) {
                push(out, s, e, Builtin::Card);
            }
        }
        // An SSN is three digits, a separator, two digits, the same
        // separator and four digits, then no digit: twelve bits of `w` say
        // all of that but which separator.
        if here.ssn && w & 0xFFF == SSN_DIGIT_BITS {
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
        // An IPv4 address starts with one to three digits and a dot.
        if here.ipv4 && leading <= 3 {
            if let Some(e) = ipv4_end_bits(text, s, w, run.dot_bits >> g) {
                push(out, s, e, Builtin::Ipv4);
            }
        }
        if here.phone && left >= NANP_DIGITS_MIN && nanp_may_start(first, leading) {
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
    if digits.count_ones() < 13 {
        return None;
    }
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

/// [`ipv4_end`] from the run's digit and dot bits (bit 0 is the byte at
/// `s`): four groups of one to three digits joined by single dots, each a
/// valid octet, and a right boundary.
#[inline]
fn ipv4_end_bits(text: &[u8], s: usize, w: u64, dots: u64) -> Option<usize> {
    let mut p = 0u32;
    for octet in 0..4 {
        let n = (!(w >> p)).trailing_zeros();
        if n == 0 || n > 3 || !octet_ok(&text[s + p as usize..s + (p + n) as usize]) {
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

/// One to three digits without a leading zero (unless alone) and at most
/// 255: an octet of the IPv4 shape.
#[inline(always)]
fn octet_ok(o: &[u8]) -> bool {
    match *o {
        [_] => true,
        [a, _] => a != b'0',
        [a, b, c] => {
            a != b'0'
                && u32::from(a - b'0') * 100 + u32::from(b - b'0') * 10 + u32::from(c - b'0') <= 255
        }
        _ => false,
    }
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
