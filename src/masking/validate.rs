//! Checksums and range checks that turn "looks like" into "is".
//!
//! Both the fast engine and the reference scanner call these same
//! functions, so a difference between the two can only come from candidate
//! generation, which is what the property tests exercise.

/// True when the ASCII digits of `bytes` (other bytes ignored) pass the
/// Luhn check. Fewer than two digits never pass, so an empty or one-digit
/// string is not "valid" by accident.
pub fn luhn(bytes: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut count = 0u32;
    for &b in bytes.iter().rev() {
        if !b.is_ascii_digit() {
            continue;
        }
        let mut d = u32::from(b - b'0');
        if count % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        count += 1;
    }
    count >= 2 && sum.is_multiple_of(10)
}

/// True when the digits of `bytes` begin with the prefix of a major
/// payment card brand and have a length that brand issues. Brands and
/// ranges: Visa 4 (13, 16, 19), Mastercard 51-55 and 2221-2720 (16),
/// American Express 34/37 (15), Discover 6011, 644-649, 65 (16-19), JCB
/// 3528-3589 (16-19), Diners Club 300-305, 36, 38, 39 (14-19), UnionPay 62
/// (16-19). Maestro and other regional schemes are left out on purpose: their
/// prefixes would make one random 13-19 digit number in ten more look valid.
pub fn card_brand_ok(digits: &[u8], len: usize) -> bool {
    let [a, b, c, d, ..] = *digits else {
        return false;
    };
    // The prefixes of one to four digits, each from the one before.
    let p1 = u32::from(a.wrapping_sub(b'0'));
    let p2 = p1 * 10 + u32::from(b.wrapping_sub(b'0'));
    let p3 = p2 * 10 + u32::from(c.wrapping_sub(b'0'));
    let p4 = p3 * 10 + u32::from(d.wrapping_sub(b'0'));
    card_brand_issues([p1, p2, p3, p4], len)
}

/// The brand table of [`card_brand_ok`], given the number's prefixes of one
/// to four digits (as numbers) and its length.
#[inline]
fn card_brand_issues([p1, p2, p3, p4]: [u32; 4], len: usize) -> bool {
    match p1 {
        4 => matches!(len, 13 | 16 | 19),
        5 => (51..=55).contains(&p2) && len == 16,
        2 => (2221..=2720).contains(&p4) && len == 16,
        3 => {
            (matches!(p2, 34 | 37) && len == 15)
                || ((3528..=3589).contains(&p4) && (16..=19).contains(&len))
                || (((300..=305).contains(&p3) || matches!(p2, 36 | 38 | 39))
                    && (14..=19).contains(&len))
        }
        6 => {
            ((p4 == 6011 || (644..=649).contains(&p3) || p2 == 65) && (16..=19).contains(&len))
                || (p2 == 62 && (16..=19).contains(&len))
        }
        _ => false,
    }
}

/// Payment card: 13-19 digits of a known brand, one kind of separator at
/// most (no "4111 1111-1111 1111"), Luhn-valid.
pub fn card(candidate: &[u8]) -> bool {
    let mut digits = [0u8; 19];
    let mut n = 0usize;
    let mut sep = 0u8;
    for &b in candidate {
        if b.is_ascii_digit() {
            if n == digits.len() {
                return false;
            }
            digits[n] = b;
            n += 1;
        } else {
            if sep != 0 && sep != b {
                return false;
            }
            sep = b;
        }
    }
    (13..=19).contains(&n) && card_brand_ok(&digits[..n], n) && luhn(candidate)
}

/// US Social Security number ranges as issued: area not 000, 666 or
/// 900-999; group not 00; serial not 0000. `candidate` is `AAA?GG?SSSS`
/// with the same separator twice (the shape has been checked already).
pub fn ssn(candidate: &[u8]) -> bool {
    if candidate.len() != 11 || candidate[3] != candidate[6] {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> u32 {
        candidate[r]
            .iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d.wrapping_sub(b'0')))
    };
    let area = num(0..3);
    let group = num(4..6);
    let serial = num(7..11);
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// Phone numbers carry between 8 and 15 digits (E.164 allows at most 15;
/// fewer than 8 is an extension or a short code, not a phone number).
pub fn phone(candidate: &[u8]) -> bool {
    let digits = candidate.iter().filter(|b| b.is_ascii_digit()).count();
    (8..=15).contains(&digits)
}

/// IBAN lengths by country (ISO 13616 registry, 2024).
const IBAN_LENGTHS: &[(&[u8; 2], u8)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

/// IBAN length by country code, as a 26 x 26 table (0: no IBANs), so the
/// lookup on every run of digits after two capitals is one load.
const fn iban_table() -> [u8; 26 * 26] {
    let mut t = [0u8; 26 * 26];
    let mut i = 0;
    while i < IBAN_LENGTHS.len() {
        let (c, n) = IBAN_LENGTHS[i];
        t[(c[0] - b'A') as usize * 26 + (c[1] - b'A') as usize] = n;
        i += 1;
    }
    t
}
static IBAN_TABLE: [u8; 26 * 26] = iban_table();

/// The IBAN length of a country, if the country issues IBANs.
pub fn iban_length(country: &[u8]) -> Option<usize> {
    match country {
        [a @ b'A'..=b'Z', b @ b'A'..=b'Z'] => {
            let n = IBAN_TABLE[usize::from(a - b'A') * 26 + usize::from(b - b'A')];
            (n != 0).then_some(usize::from(n))
        }
        _ => None,
    }
}

/// Countries that issue IBANs, for the Hyperscan anchor of the detector.
pub fn iban_countries() -> impl Iterator<Item = &'static str> {
    IBAN_LENGTHS
        .iter()
        .map(|(c, _)| std::str::from_utf8(c.as_slice()).unwrap_or("XX"))
}

/// IBAN: known country, that country's length (spaces ignored), and the
/// ISO 7064 mod-97 check equal to 1.
pub fn iban(candidate: &[u8]) -> bool {
    let mut compact = [0u8; 34];
    let mut n = 0usize;
    for &b in candidate {
        if b == b' ' {
            continue;
        }
        if n == compact.len() {
            return false;
        }
        compact[n] = b;
        n += 1;
    }
    if n < 5 || iban_length(&compact[..2]) != Some(n) {
        return false;
    }
    mod97(&compact[..n]) == 1
}

/// ISO 7064 mod 97-10 over an IBAN: the first four characters move to the
/// end and letters count as two digits (A = 10 ... Z = 35).
pub fn mod97(iban: &[u8]) -> u32 {
    let (head, tail) = iban.split_at(4.min(iban.len()));
    // The remainder is taken only when the accumulator could overflow on
    // the next step (below 2^56, times 100 plus 35 stays below 2^63):
    // reducing modulo 97 commutes with the multiply-adds, so one reduction
    // per twelve digits or so gives the same remainder as one per digit.
    let mut acc = 0u64;
    for &b in tail.iter().chain(head) {
        acc = match b {
            b'0'..=b'9' => acc * 10 + u64::from(b - b'0'),
            b'A'..=b'Z' => acc * 100 + u64::from(b - b'A') + 10,
            _ => return u32::MAX,
        };
        if acc >= 1 << 56 {
            acc %= 97;
        }
    }
    (acc % 97) as u32
}

/// IPv6: what `std::net::Ipv6Addr` accepts, with at least one hex digit
/// (a bare `::` in prose or code is not an address worth masking).
///
/// The grammar is checked directly on the bytes ([`ipv6_address`]) rather
/// than through `str::parse`, which cost about 1,400 instructions per
/// address; [`ipv6_std`] is the same check through the standard library,
/// and a property test holds the two equal. Every group the grammar reads
/// holds a digit, so the only address without a hex digit is `::` itself,
/// which is refused by comparison instead of a second pass over the bytes.
pub fn ipv6(candidate: &[u8]) -> bool {
    ipv6_with_dots(candidate, candidate.contains(&b'.'))
}

/// [`ipv6`] for a caller that already knows whether `candidate` may hold
/// a `.` (the engine learns it while walking the run around a colon).
/// `dotted` must be true when `candidate` holds a `.`; when it is false
/// the embedded IPv4 forms, which need dots, are not tried.
pub fn ipv6_with_dots(candidate: &[u8], dotted: bool) -> bool {
    candidate != b"::" && ipv6_address_with_dots(candidate, dotted)
}

/// [`ipv6`] through `std::net::Ipv6Addr`: the definition that [`ipv6`] is
/// property-tested against.
pub fn ipv6_std(candidate: &[u8]) -> bool {
    candidate.iter().any(u8::is_ascii_hexdigit)
        && std::str::from_utf8(candidate)
            .ok()
            .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
            .is_some()
}

/// The value of each hex digit, and 255 for every other byte.
const fn hex_values() -> [u8; 256] {
    let mut t = [u8::MAX; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        t[b] = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => u8::MAX,
        };
        b += 1;
    }
    t
}
static HEX_VALUE: [u8; 256] = hex_values();

/// Reads one number at `at`: the longest run of digits of `radix` (10 or
/// 16). Fails, like the standard library's parser, on no digit, on more
/// than `max_digits`, on a value above `max`, and (when `zero_prefix` is
/// false) on a leading zero followed by more digits. Returns the offset
/// after the number.
#[inline]
fn ip_number(
    c: &[u8],
    at: usize,
    radix: u8,
    max_digits: usize,
    max: u32,
    zero_prefix: bool,
) -> Option<usize> {
    let mut i = at;
    let mut value = 0u32;
    while let Some(&b) = c.get(i) {
        // Hex digits above 9 are not below 10, so one comparison with the
        // radix serves both radixes.
        let digit = HEX_VALUE[usize::from(b)];
        if digit >= radix {
            break;
        }
        value = value * u32::from(radix) + u32::from(digit);
        i += 1;
        if i - at > max_digits || value > max {
            return None;
        }
    }
    let count = i - at;
    if count == 0 || (!zero_prefix && count > 1 && c[at] == b'0') {
        return None;
    }
    Some(i)
}

/// A dotted-quad IPv4 address at `at` (as embedded in an IPv6 address):
/// four decimal octets without leading zeros. Returns the offset after it.
#[inline]
fn ip_v4_at(c: &[u8], at: usize) -> Option<usize> {
    let mut i = at;
    for octet in 0..4 {
        if octet > 0 {
            if c.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        i = ip_number(c, i, 10, 3, 255, false)?;
    }
    Some(i)
}

/// Reads up to `limit` groups from `at` the way the standard library does:
/// each group after the first is preceded by `:`; a group may instead be an
/// embedded IPv4 address (two groups' worth) when at least two groups are
/// left, which ends the list. Returns the offset after the last group
/// read, the number of groups, and whether an IPv4 address ended the list.
///
/// An embedded IPv4 address holds dots, so when `dotted` is false (`c`
/// holds no `.`) the attempt to read one at every group is skipped.
#[inline]
fn ip_groups(c: &[u8], at: usize, limit: usize, dotted: bool) -> (usize, usize, bool) {
    let mut i = at;
    for g in 0..limit {
        let start = if g > 0 {
            if c.get(i) != Some(&b':') {
                return (i, g, false);
            }
            i + 1
        } else {
            i
        };
        if dotted && g + 1 < limit {
            if let Some(e) = ip_v4_at(c, start) {
                return (e, g + 2, true);
            }
        }
        match ip_number(c, start, 16, 4, 0xffff, true) {
            Some(e) => i = e,
            None => return (i, g, false),
        }
    }
    (i, limit, false)
}

/// Does all of `c` spell an IPv6 address in the grammar of the standard
/// library's `Ipv6Addr` parser? Eight groups, or a head and a tail of at
/// most seven groups together around `::`; an embedded IPv4 address may
/// only end the address.
pub fn ipv6_address(c: &[u8]) -> bool {
    ipv6_address_with_dots(c, c.contains(&b'.'))
}

/// [`ipv6_address`], told whether `c` may hold a `.` (see
/// [`ipv6_with_dots`]).
fn ipv6_address_with_dots(c: &[u8], dotted: bool) -> bool {
    let (i, head, head_v4) = ip_groups(c, 0, 8, dotted);
    if head == 8 {
        return i == c.len();
    }
    if head_v4 || c.get(i..i + 2) != Some(b"::") {
        return false;
    }
    let (e, _, _) = ip_groups(c, i + 2, 8 - (head + 1), dotted);
    e == c.len()
}

/// [`ipv6`] for a candidate that the caller has classified already: `c`
/// holds only hex digits, `:` and `.` (the engine takes it from a run of
/// those bytes), is at most 63 bytes long, and bit `i` of `colons` (of
/// `dots`) is set when `c[i]` is `:` (`.`); bits at and past `c.len()` are
/// ignored. The grammar of [`ipv6_address`] then reduces to a few bit
/// operations on the colon positions, instead of a branch per byte:
///
/// - the dots, if any, all lie after the last colon, and the bytes after it
///   spell an IPv4 address (which counts as two groups and must end the
///   address);
/// - before that, every byte that is not a colon is a hex digit, so the
///   groups are the runs of non-colons, and none may be longer than four;
/// - without `::`, there is no colon at either end and there are exactly
///   eight groups; with one `::` (two adjacent colons; a second one, or
///   `:::`, is refused), a colon at an end must belong to it, and there
///   are one to seven groups (none is `::` alone).
///
/// [`ipv6_in_run_agrees_with_grammar`](../../tests/masking_anchored.rs)
/// holds it equal to [`ipv6`] on such candidates.
#[inline(always)]
pub fn ipv6_in_run(c: &[u8], colons: u64, dots: u64) -> bool {
    let len = c.len();
    if !(2..64).contains(&len) {
        return false;
    }
    debug_assert!(c
        .iter()
        .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.'));
    let inside = (1u64 << len) - 1;
    let (colons, dots) = (colons & inside, dots & inside);
    // The bytes read as hex groups: all of them, or those up to and
    // including the last colon when an IPv4 address ends the candidate.
    let (hex_part, ipv4_groups) = if dots == 0 {
        (inside, 0)
    } else {
        if colons == 0 {
            return false;
        }
        let last_colon = 63 - colons.leading_zeros();
        let hex_part = (1u64 << (last_colon + 1)) - 1;
        if dots & hex_part != 0
            || !dotted_quad(&c[last_colon as usize + 1..], dots >> (last_colon + 1))
        {
            return false;
        }
        (hex_part, 2)
    };
    let hex = !colons & hex_part;
    if hex & (hex >> 1) & (hex >> 2) & (hex >> 3) & (hex >> 4) != 0 {
        return false;
    }
    let groups = (hex & !(hex << 1)).count_ones() + ipv4_groups;
    let double = colons & (colons >> 1);
    let leading = colons & 1 != 0;
    // A candidate that ends in an IPv4 address ends in a digit.
    let trailing = (colons >> (len - 1)) & 1 != 0;
    if double == 0 {
        !leading && !trailing && groups == 8
    } else {
        double & (double - 1) == 0
            && (!leading || double & 1 != 0)
            && (!trailing || (double >> (len - 2)) & 1 != 0)
            && (1..=7).contains(&groups)
    }
}

/// Does all of `q` spell an IPv4 address as `ip_v4_at` reads one (four
/// decimal octets without leading zeros, at most 255, joined by single
/// dots), told the positions of its dots as bits (`dots`, bit 0 is
/// `q[0]`; bits past `q.len()` are ignored)? The dots fix the octets, so
/// each is judged by its length instead of digit by digit.
#[inline(always)]
pub fn dotted_quad(q: &[u8], dots: u64) -> bool {
    let len = q.len();
    if !(7..=15).contains(&len) {
        return false;
    }
    let dots = dots & ((1u64 << len) - 1);
    // Three dots, none at either end and no two adjacent: four octets, each
    // at least one byte long.
    if dots.count_ones() != 3 || dots & 1 != 0 || dots >> (len - 1) != 0 || dots & (dots >> 1) != 0
    {
        return false;
    }
    let mut from = 0usize;
    // The end of the last octet as a fourth "dot".
    let mut ends = dots | (1u64 << len);
    for _ in 0..4 {
        let to = ends.trailing_zeros() as usize;
        ends &= ends - 1;
        if !ipv4_octet(&q[from..to]) {
            return false;
        }
        from = to + 1;
    }
    true
}

/// One to three decimal digits without a leading zero (unless alone) and
/// at most 255.
#[inline(always)]
pub fn ipv4_octet(o: &[u8]) -> bool {
    o.iter().all(u8::is_ascii_digit) && ipv4_octet_digits(o)
}

/// [`ipv4_octet`] of bytes already known to be digits (the numeric pass
/// reads them from its digit bits, so it does not test them again). Three
/// digits are at most 255 exactly when they are at most `255` as text
/// (same length), which one comparison of the bytes as a big-endian number
/// decides.
#[inline(always)]
pub fn ipv4_octet_digits(o: &[u8]) -> bool {
    debug_assert!(o.iter().all(u8::is_ascii_digit));
    match *o {
        [_] => true,
        [a, _] => a != b'0',
        [a, b, c] => {
            a != b'0'
                && u32::from_be_bytes([0, a, b, c]) <= u32::from_be_bytes([0, b'2', b'5', b'5'])
        }
        _ => false,
    }
}

/// Keywords that introduce an AWS secret access key, compared without case.
const AWS_SECRET_KEYWORDS: &[&[u8]] = &[
    b"secretaccesskey",
    b"secret_access_key",
    b"secret_accesskey",
    b"secretaccess_key",
    b"secretkey",
    b"secret_key",
];

/// Bytes at most between the end of an AWS secret keyword and the key:
/// quote, three blanks, `:` or `=`, three blanks, quote.
pub const AWS_SECRET_GAP_MAX: usize = 9;

/// An AWS secret access key is 40 characters of base64 with no checksum, so
/// on its own it is indistinguishable from any other 40-character token
/// (git hashes are 40 hex characters). sluice therefore only reports one
/// that follows a keyword naming it: `aws_secret_access_key = "…"`,
/// `SecretAccessKey: …`, `secret_key='…'` (case-insensitive; an optional
/// quote, up to three blanks, `:` or `=`, up to three blanks, an optional
/// quote). This function checks the bytes before `start`.
pub fn aws_secret_context(text: &[u8], start: usize) -> bool {
    let mut i = start;
    let is_quote = |b: u8| b == b'"' || b == b'\'';
    let is_blank = |b: u8| b == b' ' || b == b'\t';
    if i > 0 && is_quote(text[i - 1]) {
        i -= 1;
    }
    let mut blanks = 0;
    while i > 0 && blanks < 3 && is_blank(text[i - 1]) {
        i -= 1;
        blanks += 1;
    }
    if i == 0 || !(text[i - 1] == b':' || text[i - 1] == b'=') {
        return false;
    }
    i -= 1;
    let mut blanks = 0;
    while i > 0 && blanks < 3 && is_blank(text[i - 1]) {
        i -= 1;
        blanks += 1;
    }
    if i > 0 && is_quote(text[i - 1]) {
        i -= 1;
    }
    let before = &text[..i];
    AWS_SECRET_KEYWORDS.iter().any(|k| {
        before.len() >= k.len() && before[before.len() - k.len()..].eq_ignore_ascii_case(k)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known_values() {
        assert!(luhn(b"4111111111111111"));
        assert!(luhn(b"4111 1111 1111 1111"));
        assert!(!luhn(b"4111111111111112"));
        assert!(!luhn(b"0"));
    }

    #[test]
    fn cards() {
        assert!(card(b"4111111111111111"));
        assert!(card(b"4111-1111-1111-1111"));
        assert!(!card(b"4111-1111 1111-1111"));
        assert!(card(b"378282246310005"));
        assert!(card(b"5555555555554444"));
        assert!(card(b"6011111111111117"));
        assert!(!card(b"1234567812345670"));
    }

    #[test]
    fn ssns() {
        assert!(ssn(b"123-45-6789"));
        assert!(ssn(b"123 45 6789"));
        assert!(!ssn(b"123-45 6789"));
        assert!(!ssn(b"000-45-6789"));
        assert!(!ssn(b"666-45-6789"));
        assert!(!ssn(b"900-45-6789"));
        assert!(!ssn(b"123-00-6789"));
        assert!(!ssn(b"123-45-0000"));
    }

    #[test]
    fn ibans() {
        assert!(iban(b"DE89370400440532013000"));
        assert!(iban(b"DE89 3704 0044 0532 0130 00"));
        assert!(iban(b"GB29NWBK60161331926819"));
        assert!(!iban(b"DE89370400440532013001"));
        assert!(!iban(b"XX89370400440532013000"));
    }

    #[test]
    fn dotted_quads() {
        let dots = |q: &[u8]| {
            q.iter()
                .enumerate()
                .fold(0u64, |m, (i, &b)| m | (u64::from(b == b'.') << i))
        };
        for q in [
            &b"1.2.3.4"[..],
            b"255.255.255.255",
            b"0.10.100.249",
            b"200.0.0.9",
        ] {
            assert!(dotted_quad(q, dots(q)), "{q:?}");
        }
        for q in [
            &b"256.1.1.1"[..],
            b"01.1.1.1",
            b"1.2.3",
            b"1.2.3.4.5",
            b"1..2.3",
            b"1.2.3.a",
            b"1.2.3.4.",
            b".1.2.3.4",
            b"300.1.1.1",
            b"1.2.3.1000",
        ] {
            assert!(!dotted_quad(q, dots(q)), "{q:?}");
        }
    }

    /// [`card_brand_ok`] with its prefixes folded digit by digit (the
    /// definition it is property-tested against).
    fn card_brand_ok_naive(digits: &[u8], len: usize) -> bool {
        if digits.len() < 4 {
            return false;
        }
        let prefix = |n: usize| -> u32 {
            digits
                .iter()
                .take(n)
                .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'))
        };
        card_brand_issues([prefix(1), prefix(2), prefix(3), prefix(4)], len)
    }

    proptest::proptest! {
        #[test]
        fn card_brand_ok_matches_prefix_fold(digits in "[0-9]{0,6}|(2[27]|3[0-9]|5[0-9]|6[0-9])[0-9]{2}", len in 12usize..21) {
            let digits = digits.as_bytes();
            proptest::prop_assert_eq!(card_brand_ok(digits, len), card_brand_ok_naive(digits, len), "{:?}", digits);
        }

        /// The dot-driven IPv4 check accepts exactly what the byte-wise
        /// reader of embedded IPv4 addresses reads whole.
        #[test]
        fn dotted_quad_matches_byte_reader(
            q in "[0-9a-f.]{0,16}|(25[0-7]|2[0-4][0-9]|1?[0-9]{1,2}|0[0-9]{1,3})(\\.(25[0-7]|2[0-4][0-9]|1?[0-9]{1,2}|0[0-9])){2,4}"
        ) {
            let q = q.as_bytes();
            let dots = q
                .iter()
                .enumerate()
                .fold(0u64, |m, (i, &b)| m | (u64::from(b == b'.') << i));
            proptest::prop_assert_eq!(dotted_quad(q, dots), ip_v4_at(q, 0) == Some(q.len()), "{:?}", q);
        }
    }

    #[test]
    fn aws_context() {
        let t = b"aws_secret_access_key = 'ABC";
        assert!(aws_secret_context(t, t.len() - 3));
        let t = b"SecretAccessKey:ABC";
        assert!(aws_secret_context(t, t.len() - 3));
        let t = b"password = ABC";
        assert!(!aws_secret_context(t, t.len() - 3));
    }
}
