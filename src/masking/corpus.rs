//! Deterministic generators of sensitive values, benign look-alikes and
//! log-like rows, shared by the accuracy test, the property tests and the
//! bench (so that all three measure the same kinds of text).

use super::detectors::Builtin;
use super::validate;

/// SplitMix64: tiny, fast and deterministic across platforms.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn range(&mut self, lo: usize, hi_inclusive: usize) -> usize {
        lo + self.below(hi_inclusive - lo + 1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn digit(&mut self) -> char {
        char::from(b'0' + self.below(10) as u8)
    }

    pub fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| self.digit()).collect()
    }

    pub fn chars_in(&mut self, alphabet: &[u8], lo: usize, hi_inclusive: usize) -> String {
        let n = self.range(lo, hi_inclusive);
        self.chars(alphabet, n)
    }

    pub fn digits_in(&mut self, lo: usize, hi_inclusive: usize) -> String {
        let n = self.range(lo, hi_inclusive);
        self.digits(n)
    }

    pub fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n).map(|_| char::from(*self.pick(alphabet))).collect()
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_DIGIT: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+";
const HEX: &[u8] = b"0123456789abcdef";
const FIRST: &[&str] = &[
    "jane",
    "john",
    "maria",
    "li",
    "ahmed",
    "olga",
    "k",
    "sam",
    "anne-marie",
    "o.brien",
];
const LAST: &[&str] = &[
    "doe", "smith", "garcia", "wang", "khan", "ivanova", "lee", "mueller", "rossi", "nguyen",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "corp.acme.co.uk",
    "gmail.com",
    "uni-hamburg.de",
    "x.io",
    "sub.domain.example.museum",
];

/// Replaces the last digit of `digits` so that the Luhn check passes.
fn luhn_complete(mut digits: Vec<u8>) -> Vec<u8> {
    let n = digits.len();
    for d in b'0'..=b'9' {
        digits[n - 1] = d;
        if validate::luhn(&digits) {
            break;
        }
    }
    digits
}

fn card_digits(rng: &mut Rng) -> Vec<u8> {
    let (prefix, len): (&str, usize) = *rng.pick(&[
        ("4", 16),
        ("4", 13),
        ("51", 16),
        ("55", 16),
        ("2221", 16),
        ("2720", 16),
        ("34", 15),
        ("37", 15),
        ("6011", 16),
        ("65", 16),
        ("3530", 16),
        ("36", 14),
        ("62", 16),
        ("4", 19),
    ]);
    let mut d: Vec<u8> = prefix.bytes().collect();
    while d.len() < len {
        d.push(b'0' + rng.below(10) as u8);
    }
    luhn_complete(d)
}

fn group(digits: &[u8], sizes: &[usize], sep: char) -> String {
    let mut out = String::new();
    let mut at = 0;
    for (i, &s) in sizes.iter().enumerate() {
        if at >= digits.len() {
            break;
        }
        if i > 0 {
            out.push(sep);
        }
        let end = (at + s).min(digits.len());
        out.push_str(std::str::from_utf8(&digits[at..end]).unwrap_or(""));
        at = end;
    }
    if at < digits.len() {
        out.push(sep);
        out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or(""));
    }
    out
}

fn card(rng: &mut Rng) -> String {
    let d = card_digits(rng);
    match rng.below(3) {
        0 => String::from_utf8(d).unwrap_or_default(),
        _ => {
            let sep = if rng.below(2) == 0 { ' ' } else { '-' };
            let sizes: &[usize] = if d.len() == 15 {
                &[4, 6, 5]
            } else {
                &[4, 4, 4, 4]
            };
            group(&d, sizes, sep)
        }
    }
}

fn ssn(rng: &mut Rng) -> String {
    let area = loop {
        let a = rng.range(1, 899);
        if a != 666 {
            break a;
        }
    };
    let sep = if rng.below(3) == 0 { ' ' } else { '-' };
    format!(
        "{area:03}{sep}{:02}{sep}{:04}",
        rng.range(1, 99),
        rng.range(1, 9999)
    )
}

fn phone(rng: &mut Rng) -> String {
    let area = rng.range(200, 999);
    let exch = rng.range(200, 999);
    let line = rng.range(0, 9999);
    match rng.below(9) {
        0 => format!("({area}) {exch}-{line:04}"),
        1 => format!("{area}-{exch}-{line:04}"),
        2 => format!("{area}.{exch}.{line:04}"),
        3 => format!("+1 {area} {exch} {line:04}"),
        4 => format!("+1{area}{exch}{line:04}"),
        5 => format!("1-{area}-{exch}-{line:04}"),
        6 => format!("+44 20 {} {}", rng.digits(4), rng.digits(4)),
        7 => format!("+49 30 {}", rng.digits(8)),
        _ => format!(
            "+33 {} {} {} {} {}",
            rng.range(1, 9),
            rng.digits(2),
            rng.digits(2),
            rng.digits(2),
            rng.digits(2)
        ),
    }
}

fn iban(rng: &mut Rng) -> String {
    let (cc, bban_len, letters): (&str, usize, usize) = *rng.pick(&[
        ("DE", 18, 0),
        ("GB", 18, 4),
        ("FR", 23, 0),
        ("NL", 14, 4),
        ("ES", 20, 0),
        ("IT", 23, 1),
        ("CH", 17, 0),
        ("BE", 12, 0),
    ]);
    let mut bban = String::new();
    for i in 0..bban_len {
        if i < letters {
            bban.push(char::from(b'A' + rng.below(26) as u8));
        } else {
            bban.push(rng.digit());
        }
    }
    let mut check = 2;
    for c in 2..=98u32 {
        let candidate = format!("{cc}{c:02}{bban}");
        if validate::mod97(candidate.as_bytes()) == 1 {
            check = c;
            break;
        }
    }
    let compact = format!("{cc}{check:02}{bban}");
    if rng.below(2) == 0 {
        compact
    } else {
        let b = compact.as_bytes();
        b.chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn email(rng: &mut Rng) -> String {
    let first = rng.pick(FIRST);
    let last = rng.pick(LAST);
    let domain = rng.pick(DOMAINS);
    match rng.below(4) {
        0 => format!("{first}.{last}@{domain}"),
        1 => format!("{first}{}@{domain}", rng.range(1, 999)),
        2 => format!("{first}+{}@{domain}", rng.chars(b"abcdefgh", 4)),
        _ => format!("{}_{last}@{domain}", &first[..1]),
    }
}

fn ipv4(rng: &mut Rng) -> String {
    format!(
        "{}.{}.{}.{}",
        rng.range(1, 223),
        rng.range(0, 255),
        rng.range(0, 255),
        rng.range(1, 254)
    )
}

fn ipv6(rng: &mut Rng) -> String {
    let g = |rng: &mut Rng| format!("{:x}", rng.range(1, 0xffff));
    match rng.below(4) {
        0 => (0..8).map(|_| g(rng)).collect::<Vec<_>>().join(":"),
        1 => format!("2001:db8::{}:{}", g(rng), g(rng)),
        2 => format!("fe80::{}:{}:{}", g(rng), g(rng), g(rng)),
        _ => format!("::ffff:{}", ipv4(rng)),
    }
}

fn jwt(rng: &mut Rng) -> String {
    format!(
        "eyJ{}.eyJ{}.{}",
        rng.chars_in(B64URL, 10, 40),
        rng.chars_in(B64URL, 20, 120),
        rng.chars_in(B64URL, 20, 86)
    )
}

fn pem(rng: &mut Rng) -> String {
    let label = rng.pick(&["", "RSA ", "EC ", "ENCRYPTED ", "OPENSSH "]);
    let mut body = String::new();
    for _ in 0..rng.range(2, 6) {
        body.push_str(&rng.chars(B64, 64));
        body.push('\n');
    }
    format!("-----BEGIN {label}PRIVATE KEY-----\n{body}-----END {label}PRIVATE KEY-----")
}

/// One sensitive value of `kind`, in one of the formats it is found in.
pub fn sensitive(rng: &mut Rng, kind: Builtin) -> String {
    match kind {
        Builtin::PemPrivateKey => pem(rng),
        Builtin::Jwt => jwt(rng),
        Builtin::AwsSecretKey => rng.chars(B64, 40),
        Builtin::AwsAccessKeyId => format!(
            "{}{}",
            rng.pick(&["AKIA", "ASIA"]),
            rng.chars(UPPER_DIGIT, 16)
        ),
        Builtin::GithubToken => match rng.below(2) {
            0 => format!(
                "gh{}_{}",
                char::from(*rng.pick(b"opsur")),
                rng.chars(ALNUM, 36)
            ),
            _ => format!(
                "github_pat_{}",
                rng.chars(b"ABCDEFGHabcdefgh0123456789_", 82)
            ),
        },
        Builtin::SlackToken => format!(
            "xox{}-{}-{}-{}",
            char::from(*rng.pick(b"baprs")),
            rng.digits(12),
            rng.digits(13),
            rng.chars(ALNUM, 24)
        ),
        Builtin::StripeKey => format!(
            "{}_live_{}",
            rng.pick(&["sk", "rk"]),
            rng.chars_in(ALNUM, 24, 99)
        ),
        Builtin::GoogleApiKey => format!("AIza{}", rng.chars(B64URL, 35)),
        Builtin::Email => email(rng),
        Builtin::Iban => iban(rng),
        Builtin::Card => card(rng),
        Builtin::Ssn => ssn(rng),
        Builtin::Phone => phone(rng),
        Builtin::Ipv6 => ipv6(rng),
        Builtin::Ipv4 => ipv4(rng),
    }
}

/// Text around a sensitive value, as it appears in columns and logs.
/// Returns the full text and the byte range of the value.
pub fn in_context(rng: &mut Rng, kind: Builtin, value: &str) -> (String, std::ops::Range<usize>) {
    let prefix = match kind {
        Builtin::AwsSecretKey => rng
            .pick(&[
                "aws_secret_access_key = ",
                "AWS_SECRET_ACCESS_KEY=",
                "\"SecretAccessKey\": \"",
                "secret_key: '",
            ])
            .to_string(),
        _ => rng
            .pick(&[
                "", "", "value: ", "contact ", "(", "\"", "note=", "id ", "x, ",
            ])
            .to_string(),
    };
    let suffix = rng
        .pick(&["", "", ".", ",", ")", "\"", " ok", "\n", ";"])
        .to_string();
    let start = prefix.len();
    (
        format!("{prefix}{value}{suffix}"),
        start..start + value.len(),
    )
}

/// One benign look-alike: text that resembles sensitive values but is not
/// one (and must not be masked).
pub fn benign(rng: &mut Rng) -> String {
    match rng.below(16) {
        // UUID
        0 => format!(
            "{}-{}-{}-{}-{}",
            rng.chars(HEX, 8),
            rng.chars(HEX, 4),
            rng.chars(HEX, 4),
            rng.chars(HEX, 4),
            rng.chars(HEX, 12)
        ),
        // ISO timestamp
        1 => format!(
            "2024-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            rng.range(1, 12),
            rng.range(1, 28),
            rng.range(0, 23),
            rng.range(0, 59),
            rng.range(0, 59),
            rng.range(0, 999)
        ),
        // order number
        2 => format!("ORD-{}-{}", rng.range(2019, 2025), rng.digits(6)),
        // price
        3 => format!("${}.{:02}", rng.range(1, 99_999), rng.range(0, 99)),
        // version
        4 => format!(
            "v{}.{}.{}",
            rng.range(0, 20),
            rng.range(0, 40),
            rng.range(0, 200)
        ),
        // date
        5 => format!(
            "{:02}/{:02}/{}",
            rng.range(1, 12),
            rng.range(1, 28),
            rng.range(1990, 2030)
        ),
        // ISBN-13
        6 => format!(
            "978-{}-{}-{}-{}",
            rng.digit(),
            rng.digits(3),
            rng.digits(5),
            rng.digit()
        ),
        // phone-like but invalid (area or exchange starting 0/1, or too short)
        7 => match rng.below(3) {
            0 => format!(
                "({}{}) {}-{}",
                rng.range(0, 1),
                rng.digits(2),
                rng.digits(3),
                rng.digits(4)
            ),
            1 => format!(
                "{}-{}{}-{}",
                rng.range(200, 999),
                rng.range(0, 1),
                rng.digits(2),
                rng.digits(4)
            ),
            _ => format!("{}-{}", rng.digits(3), rng.digits(4)),
        },
        // Luhn-invalid card-like number
        8 => {
            let mut d = card_digits(rng);
            let last = d.len() - 1;
            d[last] = b'0' + (d[last] - b'0' + 1 + rng.below(9) as u8) % 10;
            let s = String::from_utf8(d).unwrap_or_default();
            if rng.below(2) == 0 {
                s
            } else {
                group(s.as_bytes(), &[4, 4, 4, 4], ' ')
            }
        }
        // invalid SSNs
        9 => {
            let (a, g, s) = match rng.below(4) {
                0 => (0, rng.range(1, 99), rng.range(1, 9999)),
                1 => (666, rng.range(1, 99), rng.range(1, 9999)),
                2 => (rng.range(900, 999), rng.range(1, 99), rng.range(1, 9999)),
                _ => (rng.range(1, 665), 0, rng.range(1, 9999)),
            };
            format!("{a:03}-{g:02}-{s:04}")
        }
        // hex digest (git sha)
        10 => rng.chars(HEX, 40),
        // epoch milliseconds
        11 => format!(
            "{}",
            1_600_000_000_000u64 + rng.next_u64() % 200_000_000_000
        ),
        // software version with four parts and a large build number
        12 => format!(
            "{}.{}.{}.{}",
            rng.range(1, 20),
            rng.range(0, 9),
            rng.range(1000, 30000),
            rng.range(0, 9)
        ),
        // quantity with unit, percentages
        13 => format!("{} units at {}%", rng.range(1, 5000), rng.range(1, 99)),
        // time with zone and duration
        14 => format!(
            "{:02}:{:02}:{:02} +0{}:00 took {}ms",
            rng.range(0, 23),
            rng.range(0, 59),
            rng.range(0, 59),
            rng.range(0, 9),
            rng.range(1, 9999)
        ),
        // user handle or not-an-email
        _ => format!(
            "@{}_{} at {}",
            rng.pick(FIRST),
            rng.digits(3),
            rng.pick(DOMAINS)
        ),
    }
}

/// One labelled sample of the accuracy corpus.
#[derive(Debug, Clone)]
pub struct Sample {
    pub text: String,
    /// The sensitive value and its range, or `None` for a look-alike.
    pub label: Option<(Builtin, std::ops::Range<usize>)>,
}

/// `n` sensitive samples (evenly over the detectors) and `n` look-alikes.
pub fn labelled(seed: u64, n: usize) -> Vec<Sample> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(2 * n);
    for i in 0..n {
        let kind = Builtin::ALL[i % Builtin::ALL.len()];
        let v = sensitive(&mut rng, kind);
        let (text, range) = in_context(&mut rng, kind, &v);
        out.push(Sample {
            text,
            label: Some((kind, range)),
        });
        let b = benign(&mut rng);
        let (text, _) = in_context(&mut rng, Builtin::Email, &b);
        out.push(Sample { text, label: None });
    }
    out
}

/// Kinds that appear in PII-dense rows, weighted toward the common ones.
const DENSE_KINDS: &[Builtin] = &[
    Builtin::Email,
    Builtin::Email,
    Builtin::Phone,
    Builtin::Phone,
    Builtin::Card,
    Builtin::Ssn,
    Builtin::Ipv4,
    Builtin::Ipv4,
    Builtin::Iban,
    Builtin::Ipv6,
    Builtin::Jwt,
    Builtin::AwsAccessKeyId,
    Builtin::GithubToken,
];

const WORDS: &[&str] = &[
    "user",
    "login",
    "ok",
    "status",
    "request",
    "from",
    "order",
    "shipped",
    "payment",
    "updated",
    "customer",
    "address",
    "the",
    "session",
    "GET",
    "/api/v2/orders",
    "latency",
    "bytes",
    "retry",
];

/// Log-like rows (one per line) of at least `bytes` bytes. With
/// `pii_dense`, every row carries two sensitive values among timestamps,
/// ids, prices and words; without, the same kinds of rows carry only
/// look-alikes.
pub fn rows(seed: u64, bytes: usize, pii_dense: bool) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(bytes + 512);
    while out.len() < bytes {
        let ts = format!(
            "2024-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
            rng.range(1, 12),
            rng.range(1, 28),
            rng.range(0, 23),
            rng.range(0, 59),
            rng.range(0, 59),
            rng.range(0, 999)
        );
        out.extend_from_slice(ts.as_bytes());
        out.push(b' ');
        for i in 0..6 {
            if pii_dense && (i == 1 || i == 4) {
                let kind = *rng.pick(DENSE_KINDS);
                out.extend_from_slice(sensitive(&mut rng, kind).as_bytes());
            } else if i % 2 == 0 {
                out.extend_from_slice(rng.pick(WORDS).as_bytes());
                out.push(b' ');
                out.extend_from_slice(rng.pick(WORDS).as_bytes());
            } else {
                out.extend_from_slice(benign(&mut rng).as_bytes());
            }
            out.push(if rng.below(4) == 0 { b',' } else { b' ' });
        }
        out.push(b'\n');
    }
    out
}
