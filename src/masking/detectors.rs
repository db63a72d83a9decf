//! The built-in detectors: what each one matches, exactly.
//!
//! A detector is defined by four things, and both scanners (the fast
//! engine and the naive reference) use the same definition:
//!
//! 1. a *shape*: a regular language that the whole candidate must match.
//!    It is written twice: as a regular expression ([`Builtin::pattern`],
//!    used by the reference scanner and the regex baseline) and as a
//!    hand-written recogniser ([`Builtin::shape`], used by the fast engine).
//!    A property test checks that the two agree;
//! 2. *boundaries*: which bytes may sit immediately before and after a
//!    candidate ([`Builtin::left_ok`], [`Builtin::right_ok`]), so that a
//!    detector never fires on the middle of a longer token;
//! 3. a *validator* (checksum, ranges, context: [`Builtin::validate`]);
//! 4. a length range ([`Builtin::len_range`]), which bounds every search.
//!
//! The findings of a value are then: every (detector, start, end) whose
//! slice matches the shape, sits on boundaries and validates; of those, the
//! leftmost wins, then the longest, then the detector listed first; later
//! candidates that overlap a chosen one are dropped.

use super::validate;

/// Longest PEM private key block considered (an 8192-bit RSA key in PEM is
/// about 6.5 KB; anything longer is not a key block).
pub const PEM_BYTES_MAX: usize = 16 * 1024;
/// Longest JSON Web Token considered.
pub const JWT_BYTES_MAX: usize = 8 * 1024;
/// Longest e-mail address (RFC 5321 path limit).
pub const EMAIL_BYTES_MAX: usize = 254;

/// Built-in detectors, in priority order (earlier wins a tie between two
/// candidates with the same start and end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Builtin {
    PemPrivateKey,
    Jwt,
    AwsSecretKey,
    AwsAccessKeyId,
    GithubToken,
    SlackToken,
    StripeKey,
    GoogleApiKey,
    Email,
    Iban,
    Card,
    Ssn,
    Phone,
    Ipv6,
    Ipv4,
}

/// How bytes next to a candidate are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Boundary {
    /// Numbers: no letter, digit or `_` next to the candidate, and no
    /// `-`, `.` or `/` that continues into another digit (so a price, a
    /// version or a part number is never cut into a "phone number").
    Numeric,
    /// API tokens: no `[A-Za-z0-9_-]` next to the candidate.
    Token,
    /// JSON Web Tokens: like [`Boundary::Token`], and no `.` before (so the
    /// payload of a token is never taken for the start of another).
    Jwt,
    /// E-mail: no local-part character before; no domain character after,
    /// and no `.` followed by one (the domain would continue).
    Email,
    /// Base64 secrets: no `[A-Za-z0-9/+]` before and no `[A-Za-z0-9/+=]`
    /// after the candidate.
    Base64,
    /// IBAN: no `[A-Za-z0-9_]` next to the candidate.
    Word,
    /// IPv6: no `[A-Za-z0-9_:.]` before; no `[A-Za-z0-9_:]` after and no
    /// `.` followed by a letter or digit.
    Ipv6,
    /// PEM blocks carry their own delimiters.
    None,
}

pub(crate) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

pub(crate) fn is_token(b: u8) -> bool {
    is_word(b) || b == b'-'
}

pub(crate) fn is_email_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'/' | b'+' | b'=')
}

fn is_numeric_continuation(b: u8) -> bool {
    matches!(b, b'-' | b'.' | b'/')
}

/// The byte classes of the masking engine, as bits of [`BYTE_CLASS`]: the
/// boundaries here and the engine's walks over candidates test a byte's
/// class with one table load instead of a chain of range compares and
/// branches (they run at every candidate start, end and body byte).
pub(crate) mod byte_class {
    /// `[A-Za-z0-9_]`: word bytes.
    pub const WORD: u16 = 1;
    /// `[A-Za-z0-9_-]`: API tokens and JWT parts.
    pub const TOKEN: u16 = 1 << 1;
    /// `[A-Za-z0-9._%+-]`: e-mail local parts.
    pub const EMAIL_LOCAL: u16 = 1 << 2;
    /// `[A-Za-z0-9/+=]`.
    pub const BASE64: u16 = 1 << 3;
    /// `-`, `.` and `/`: a number going on into another.
    pub const NUMERIC_CONTINUATION: u16 = 1 << 4;
    /// `[0-9]`.
    pub const DIGIT: u16 = 1 << 5;
    /// `[A-Za-z0-9]`.
    pub const ALNUM: u16 = 1 << 6;
    /// `[A-Za-z0-9-]`: e-mail domain labels.
    pub const LABEL: u16 = 1 << 7;
    /// `[A-Za-z]`: e-mail top-level domains.
    pub const ALPHA: u16 = 1 << 8;
    /// `[0-9A-Fa-f:.]`: IPv6 candidates.
    pub const IPV6: u16 = 1 << 9;
    /// `[A-Z0-9]`: IBAN characters after the check digits, AWS access key
    /// ids.
    pub const UPPER_DIGIT: u16 = 1 << 10;
}

const fn byte_classes() -> [u16; 256] {
    use byte_class::*;
    let mut t = [0u16; 256];
    let mut i = 0usize;
    while i < 256 {
        let b = i as u8;
        let alnum = b.is_ascii_alphanumeric();
        let mut bits = 0u16;
        if alnum || b == b'_' {
            bits |= WORD;
        }
        if alnum || b == b'_' || b == b'-' {
            bits |= TOKEN;
        }
        if alnum || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-') {
            bits |= EMAIL_LOCAL;
        }
        if alnum || matches!(b, b'/' | b'+' | b'=') {
            bits |= BASE64;
        }
        if matches!(b, b'-' | b'.' | b'/') {
            bits |= NUMERIC_CONTINUATION;
        }
        if b.is_ascii_digit() {
            bits |= DIGIT;
        }
        if alnum {
            bits |= ALNUM;
        }
        if alnum || b == b'-' {
            bits |= LABEL;
        }
        if b.is_ascii_alphabetic() {
            bits |= ALPHA;
        }
        if b.is_ascii_hexdigit() || b == b':' || b == b'.' {
            bits |= IPV6;
        }
        if b.is_ascii_uppercase() || b.is_ascii_digit() {
            bits |= UPPER_DIGIT;
        }
        t[i] = bits;
        i += 1;
    }
    t
}
pub(crate) static BYTE_CLASS: [u16; 256] = byte_classes();

/// Does byte `b` belong to `class` (one of the [`byte_class`] bits, or a
/// union of them)?
#[inline(always)]
pub(crate) fn in_class(b: u8, class: u16) -> bool {
    BYTE_CLASS[usize::from(b)] & class != 0
}

impl Boundary {
    #[inline]
    fn left_ok(self, text: &[u8], s: usize) -> bool {
        use byte_class::*;
        if s == 0 {
            return true;
        }
        let p = text[s - 1];
        match self {
            Boundary::Numeric => {
                !(in_class(p, WORD)
                    || (in_class(p, NUMERIC_CONTINUATION)
                        && s >= 2
                        && in_class(text[s - 2], DIGIT)))
            }
            Boundary::Token => !in_class(p, TOKEN),
            Boundary::Jwt => !in_class(p, TOKEN) && p != b'.',
            Boundary::Email => !in_class(p, EMAIL_LOCAL),
            // `=` is padding: it can follow a key but not precede one
            // (`KEY=value` is the usual way to write it).
            Boundary::Base64 => !(in_class(p, BASE64) && p != b'='),
            Boundary::Word => !in_class(p, WORD),
            Boundary::Ipv6 => !(in_class(p, WORD) || p == b':' || p == b'.'),
            Boundary::None => true,
        }
    }

    #[inline]
    fn right_ok(self, text: &[u8], e: usize) -> bool {
        use byte_class::*;
        if e >= text.len() {
            return true;
        }
        let n = text[e];
        let next_in = |class: u16| text.get(e + 1).is_some_and(|&b| in_class(b, class));
        match self {
            Boundary::Numeric => {
                !(in_class(n, WORD) || (in_class(n, NUMERIC_CONTINUATION) && next_in(DIGIT)))
            }
            Boundary::Token | Boundary::Jwt => !in_class(n, TOKEN),
            Boundary::Email => !(in_class(n, TOKEN) || (n == b'.' && next_in(LABEL))),
            Boundary::Base64 => !in_class(n, BASE64),
            Boundary::Word => !in_class(n, WORD),
            Boundary::Ipv6 => !(in_class(n, WORD) || n == b':' || (n == b'.' && next_in(ALNUM))),
            Boundary::None => true,
        }
    }

    /// [`Boundary::left_ok`] by the byte predicates: the definition that
    /// the table version is property-tested against.
    pub(crate) fn left_ok_naive(self, text: &[u8], s: usize) -> bool {
        if s == 0 {
            return true;
        }
        let p = text[s - 1];
        match self {
            Boundary::Numeric => {
                !(is_word(p)
                    || (is_numeric_continuation(p) && s >= 2 && text[s - 2].is_ascii_digit()))
            }
            Boundary::Token => !is_token(p),
            Boundary::Jwt => !is_token(p) && p != b'.',
            Boundary::Email => !is_email_local(p),
            Boundary::Base64 => !(is_base64(p) && p != b'='),
            Boundary::Word => !is_word(p),
            Boundary::Ipv6 => !(is_word(p) || p == b':' || p == b'.'),
            Boundary::None => true,
        }
    }

    /// [`Boundary::right_ok`] by the byte predicates (the definition).
    pub(crate) fn right_ok_naive(self, text: &[u8], e: usize) -> bool {
        if e >= text.len() {
            return true;
        }
        let n = text[e];
        let next2 = text.get(e + 1).copied();
        match self {
            Boundary::Numeric => {
                !(is_word(n)
                    || (is_numeric_continuation(n) && next2.is_some_and(|b| b.is_ascii_digit())))
            }
            Boundary::Token | Boundary::Jwt => !is_token(n),
            Boundary::Email => {
                !(is_token(n)
                    || (n == b'.' && next2.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-')))
            }
            Boundary::Base64 => !is_base64(n),
            Boundary::Word => !is_word(n),
            Boundary::Ipv6 => {
                !(is_word(n)
                    || n == b':'
                    || (n == b'.' && next2.is_some_and(|b| b.is_ascii_alphanumeric())))
            }
            Boundary::None => true,
        }
    }
}

impl Builtin {
    pub const ALL: [Builtin; 15] = [
        Builtin::PemPrivateKey,
        Builtin::Jwt,
        Builtin::AwsSecretKey,
        Builtin::AwsAccessKeyId,
        Builtin::GithubToken,
        Builtin::SlackToken,
        Builtin::StripeKey,
        Builtin::GoogleApiKey,
        Builtin::Email,
        Builtin::Iban,
        Builtin::Card,
        Builtin::Ssn,
        Builtin::Phone,
        Builtin::Ipv6,
        Builtin::Ipv4,
    ];

    /// The detector's name in configuration, summaries and the ledger.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::PemPrivateKey => "pem_private_key",
            Builtin::Jwt => "jwt",
            Builtin::AwsSecretKey => "aws_secret_key",
            Builtin::AwsAccessKeyId => "aws_access_key_id",
            Builtin::GithubToken => "github_token",
            Builtin::SlackToken => "slack_token",
            Builtin::StripeKey => "stripe_key",
            Builtin::GoogleApiKey => "google_api_key",
            Builtin::Email => "email",
            Builtin::Iban => "iban",
            Builtin::Card => "card",
            Builtin::Ssn => "ssn",
            Builtin::Phone => "phone",
            Builtin::Ipv6 => "ipv6",
            Builtin::Ipv4 => "ipv4",
        }
    }

    /// The shape as a regular expression over bytes, without anchors (the
    /// reference wraps it in `^(?:…)$`).
    pub fn pattern(self) -> &'static str {
        match self {
            Builtin::PemPrivateKey => {
                r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----(?:[^-]|-[^-])*-----END [A-Z ]{0,40}PRIVATE KEY-----"
            }
            Builtin::Jwt => r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{8,}",
            Builtin::AwsSecretKey => r"[A-Za-z0-9/+]{40}",
            Builtin::AwsAccessKeyId => r"(?:AKIA|ASIA)[A-Z0-9]{16}",
            Builtin::GithubToken => r"gh[opsur]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82}",
            Builtin::SlackToken => r"xox[baprs]-[A-Za-z0-9-]{10,100}",
            Builtin::StripeKey => r"[sr]k_live_[A-Za-z0-9]{16,100}",
            Builtin::GoogleApiKey => r"AIza[A-Za-z0-9_-]{35}",
            Builtin::Email => r"[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}",
            Builtin::Iban => {
                r"[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)"
            }
            Builtin::Card => r"[0-9](?:[ -]?[0-9]){12,18}",
            Builtin::Ssn => r"[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4}",
            Builtin::Phone => concat!(
                r"(?:\+?1[ .-]?)?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .-]?)[2-9][0-9]{2}[ .-]?[0-9]{4}",
                r"|\+[1-9][0-9]{7,14}",
                r"|\+[1-9][0-9]{0,2}(?:[ .-][0-9]{1,8}){1,6}"
            ),
            Builtin::Ipv6 => r"[0-9A-Fa-f:.]{2,45}",
            Builtin::Ipv4 => {
                r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}"
            }
        }
    }

    /// Shortest and longest candidate in bytes.
    pub fn len_range(self) -> (usize, usize) {
        match self {
            Builtin::PemPrivateKey => (52, PEM_BYTES_MAX),
            Builtin::Jwt => (3 + 5 + 1 + 3 + 5 + 1 + 8, JWT_BYTES_MAX),
            Builtin::AwsSecretKey => (40, 40),
            Builtin::AwsAccessKeyId => (20, 20),
            Builtin::GithubToken => (40, 93),
            Builtin::SlackToken => (15, 105),
            Builtin::StripeKey => (24, 108),
            Builtin::GoogleApiKey => (39, 39),
            Builtin::Email => (6, EMAIL_BYTES_MAX),
            Builtin::Iban => (15, 34 + 8),
            Builtin::Card => (13, 19 + 18),
            Builtin::Ssn => (11, 11),
            Builtin::Phone => (9, 22),
            Builtin::Ipv6 => (2, 45),
            Builtin::Ipv4 => (7, 15),
        }
    }

    fn boundary(self) -> Boundary {
        match self {
            Builtin::PemPrivateKey => Boundary::None,
            Builtin::Jwt => Boundary::Jwt,
            Builtin::AwsAccessKeyId
            | Builtin::GithubToken
            | Builtin::SlackToken
            | Builtin::StripeKey
            | Builtin::GoogleApiKey => Boundary::Token,
            Builtin::AwsSecretKey => Boundary::Base64,
            Builtin::Email => Boundary::Email,
            Builtin::Iban => Boundary::Word,
            Builtin::Card | Builtin::Ssn | Builtin::Phone | Builtin::Ipv4 => Boundary::Numeric,
            Builtin::Ipv6 => Boundary::Ipv6,
        }
    }

    /// May a candidate start at `s` of `text`?
    #[inline]
    pub fn left_ok(self, text: &[u8], s: usize) -> bool {
        self.boundary().left_ok(text, s)
    }

    /// May a candidate end at `e` (exclusive) of `text`?
    #[inline]
    pub fn right_ok(self, text: &[u8], e: usize) -> bool {
        self.boundary().right_ok(text, e)
    }

    /// [`Builtin::left_ok`] by the byte predicates instead of the class
    /// table: the definition, for the property test.
    pub fn left_ok_naive(self, text: &[u8], s: usize) -> bool {
        self.boundary().left_ok_naive(text, s)
    }

    /// [`Builtin::right_ok`] by the byte predicates (see
    /// [`Builtin::left_ok_naive`]).
    pub fn right_ok_naive(self, text: &[u8], e: usize) -> bool {
        self.boundary().right_ok_naive(text, e)
    }

    /// Does the whole of `c` match the detector's shape? Equivalent to
    /// `^(?:pattern)$` (property-tested).
    pub fn shape(self, c: &[u8]) -> bool {
        match self {
            Builtin::PemPrivateKey => shape_pem(c),
            Builtin::Jwt => shape_jwt(c),
            Builtin::AwsSecretKey => {
                c.len() == 40
                    && c.iter()
                        .all(|&b| b.is_ascii_alphanumeric() || b == b'/' || b == b'+')
            }
            Builtin::AwsAccessKeyId => {
                c.len() == 20
                    && (c.starts_with(b"AKIA") || c.starts_with(b"ASIA"))
                    && c[4..]
                        .iter()
                        .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit())
            }
            Builtin::GithubToken => {
                (c.len() == 40
                    && c.starts_with(b"gh")
                    && matches!(c[2], b'o' | b'p' | b's' | b'u' | b'r')
                    && c[3] == b'_'
                    && c[4..].iter().all(u8::is_ascii_alphanumeric))
                    || (c.len() == 93
                        && c.starts_with(b"github_pat_")
                        && c[11..].iter().all(|&b| is_word(b)))
            }
            Builtin::SlackToken => {
                (15..=105).contains(&c.len())
                    && c.starts_with(b"xox")
                    && matches!(c[3], b'b' | b'a' | b'p' | b'r' | b's')
                    && c[4] == b'-'
                    && c[5..]
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
            }
            Builtin::StripeKey => {
                (24..=108).contains(&c.len())
                    && (c.starts_with(b"sk_live_") || c.starts_with(b"rk_live_"))
                    && c[8..].iter().all(u8::is_ascii_alphanumeric)
            }
            Builtin::GoogleApiKey => {
                c.len() == 39 && c.starts_with(b"AIza") && c[4..].iter().all(|&b| is_token(b))
            }
            Builtin::Email => shape_email(c),
            Builtin::Iban => shape_iban(c),
            Builtin::Card => shape_card(c),
            Builtin::Ssn => {
                c.len() == 11
                    && (c[3] == b'-' || c[3] == b' ')
                    && c[6] == c[3]
                    && c.iter()
                        .enumerate()
                        .all(|(i, &b)| i == 3 || i == 6 || b.is_ascii_digit())
            }
            Builtin::Phone => shape_nanp(c) || shape_e164(c) || shape_intl(c),
            Builtin::Ipv6 => {
                (2..=45).contains(&c.len())
                    && c.iter()
                        .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            }
            Builtin::Ipv4 => shape_ipv4(c),
        }
    }

    /// Checksums, ranges and context. `text[s..e]` has the right shape.
    pub fn validate(self, text: &[u8], s: usize, e: usize) -> bool {
        let c = &text[s..e];
        match self {
            Builtin::Card => validate::card(c),
            Builtin::Ssn => validate::ssn(c),
            Builtin::Phone => validate::phone(c),
            Builtin::Iban => validate::iban(c),
            Builtin::Ipv6 => validate::ipv6(c),
            Builtin::AwsSecretKey => validate::aws_secret_context(text, s),
            _ => true,
        }
    }

    /// Can this detector's candidate lie inside a run of digits and
    /// `[ ().+-]` (the numeric clusters the engine walks itself)?
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Builtin::Card | Builtin::Ssn | Builtin::Phone | Builtin::Ipv4
        )
    }

    /// Default same-length style: cards keep their last four digits.
    pub fn default_style(self) -> super::Style {
        match self {
            Builtin::Card => super::Style::KeepLast4,
            _ => super::Style::Stars,
        }
    }

    /// Default redaction label: the name in capitals, in brackets.
    pub fn default_label(self) -> String {
        format!("[{}]", self.name().to_ascii_uppercase())
    }
}

fn shape_pem(c: &[u8]) -> bool {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const END: &[u8] = b"-----END ";
    const TAIL: &[u8] = b"PRIVATE KEY-----";
    let label_ok =
        |l: &[u8]| l.len() <= 40 && l.iter().all(|&b| b.is_ascii_uppercase() || b == b' ');
    let Some(rest) = c.strip_prefix(BEGIN) else {
        return false;
    };
    // The label is `[A-Z ]*`, so the first dash ends it.
    let Some(dash) = rest.iter().position(|&b| b == b'-') else {
        return false;
    };
    let Some(label) = rest[..dash].strip_suffix(b"PRIVATE KEY") else {
        return false;
    };
    if !label_ok(label) || !rest[dash..].starts_with(b"-----") {
        return false;
    }
    let body = &rest[dash + 5..];
    // The body holds no "--", so the end marker starts at the first one.
    let Some(p) = body.windows(2).position(|w| w == b"--") else {
        return false;
    };
    let Some(end) = body[p..].strip_prefix(END) else {
        return false;
    };
    let Some(label2) = end.strip_suffix(TAIL) else {
        return false;
    };
    label_ok(label2)
}

fn shape_jwt(c: &[u8]) -> bool {
    let mut parts = c.split(|&b| b == b'.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let b64 = |x: &[u8]| x.iter().all(|&b| is_token(b));
    h.len() >= 8
        && h.starts_with(b"eyJ")
        && b64(h)
        && p.len() >= 8
        && p.starts_with(b"eyJ")
        && b64(p)
        && s.len() >= 8
        && b64(s)
}

fn shape_email(c: &[u8]) -> bool {
    let Some(at) = c.iter().position(|&b| b == b'@') else {
        return false;
    };
    let (local, domain) = (&c[..at], &c[at + 1..]);
    if local.is_empty() || local.len() > 64 || !local.iter().all(|&b| is_email_local(b)) {
        return false;
    }
    let mut labels = domain.split(|&b| b == b'.');
    let Some(tld) = labels.next_back() else {
        return false;
    };
    if !(2..=24).contains(&tld.len()) || !tld.iter().all(u8::is_ascii_alphabetic) {
        return false;
    }
    let mut n = 0;
    for label in labels {
        n += 1;
        if label.is_empty()
            || label.len() > 63
            || !label
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return false;
        }
    }
    (1..=8).contains(&n)
}

fn shape_iban(c: &[u8]) -> bool {
    let upper_or_digit = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    if c.len() < 4
        || !c[0].is_ascii_uppercase()
        || !c[1].is_ascii_uppercase()
        || !c[2].is_ascii_digit()
        || !c[3].is_ascii_digit()
    {
        return false;
    }
    let rest = &c[4..];
    if rest.first() != Some(&b' ') {
        return (11..=30).contains(&rest.len()) && rest.iter().all(|&b| upper_or_digit(b));
    }
    let groups = rest[1..].split(|&b| b == b' ');
    let mut full = 0usize;
    let mut short_last = false;
    for g in groups {
        if short_last || g.is_empty() || !g.iter().all(|&b| upper_or_digit(b)) {
            return false;
        }
        match g.len() {
            4 => full += 1,
            1..=3 => short_last = true,
            _ => return false,
        }
    }
    (2..=7).contains(&full)
}

fn shape_card(c: &[u8]) -> bool {
    // `[0-9](?:[ -]?[0-9]){12,18}`: digits with single optional separators.
    let mut digits = 0usize;
    let mut prev_digit = false;
    for &b in c {
        if b.is_ascii_digit() {
            digits += 1;
            prev_digit = true;
        } else if (b == b' ' || b == b'-') && prev_digit {
            prev_digit = false;
        } else {
            return false;
        }
    }
    prev_digit && (13..=19).contains(&digits)
}

fn digits_at(c: &[u8], i: usize, n: usize) -> bool {
    c.len() >= i + n && c[i..i + n].iter().all(u8::is_ascii_digit)
}

fn is_phone_sep(b: u8) -> bool {
    matches!(b, b' ' | b'.' | b'-')
}

fn shape_nanp(c: &[u8]) -> bool {
    // (?:\+?1[ .-]?)?(?:\([2-9]dd\) ?|[2-9]dd[ .-]?)[2-9]dd[ .-]?dddd
    let mut i = 0;
    if c.first() == Some(&b'+') {
        if c.get(1) != Some(&b'1') {
            return false;
        }
        i = 2;
        if c.get(i).is_some_and(|&b| is_phone_sep(b)) {
            i += 1;
        }
    } else if c.first() == Some(&b'1') {
        i = 1;
        if c.get(i).is_some_and(|&b| is_phone_sep(b)) {
            i += 1;
        }
    }
    let lead = |i: usize| c.get(i).is_some_and(|&b| (b'2'..=b'9').contains(&b));
    if c.get(i) == Some(&b'(') {
        if !lead(i + 1) || !digits_at(c, i + 2, 2) || c.get(i + 4) != Some(&b')') {
            return false;
        }
        i += 5;
        if c.get(i) == Some(&b' ') {
            i += 1;
        }
    } else {
        if !lead(i) || !digits_at(c, i + 1, 2) {
            return false;
        }
        i += 3;
        if c.get(i).is_some_and(|&b| is_phone_sep(b)) {
            i += 1;
        }
    }
    if !lead(i) || !digits_at(c, i + 1, 2) {
        return false;
    }
    i += 3;
    if c.get(i).is_some_and(|&b| is_phone_sep(b)) {
        i += 1;
    }
    digits_at(c, i, 4) && c.len() == i + 4
}

fn shape_e164(c: &[u8]) -> bool {
    // \+[1-9][0-9]{7,14}
    c.len() >= 9
        && c.len() <= 16
        && c[0] == b'+'
        && (b'1'..=b'9').contains(&c[1])
        && c[2..].iter().all(u8::is_ascii_digit)
}

fn shape_intl(c: &[u8]) -> bool {
    // \+[1-9][0-9]{0,2}(?:[ .-][0-9]{1,8}){1,6}
    if c.len() < 4 || c[0] != b'+' || !(b'1'..=b'9').contains(&c[1]) {
        return false;
    }
    let mut groups = c[1..].split(|&b| is_phone_sep(b));
    let Some(cc) = groups.next() else {
        return false;
    };
    if cc.len() > 3 || !cc.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut n = 0;
    for g in groups {
        n += 1;
        if g.is_empty() || g.len() > 8 || !g.iter().all(u8::is_ascii_digit) {
            return false;
        }
    }
    (1..=6).contains(&n)
}

fn shape_ipv4(c: &[u8]) -> bool {
    let mut n = 0;
    for octet in c.split(|&b| b == b'.') {
        n += 1;
        let ok = match octet.len() {
            1 => octet[0].is_ascii_digit(),
            2 => (b'1'..=b'9').contains(&octet[0]) && octet[1].is_ascii_digit(),
            3 => {
                octet.iter().all(u8::is_ascii_digit)
                    && octet[0] != b'0'
                    && u32::from(octet[0] - b'0') * 100
                        + u32::from(octet[1] - b'0') * 10
                        + u32::from(octet[2] - b'0')
                        <= 255
            }
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    n == 4
}
