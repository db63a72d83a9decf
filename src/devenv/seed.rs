//! The demo data set: a `demo` database with `customers` (full of PII, some
//! of it hidden in free text and JSON) and `orders`.
//!
//! The rows are generated here, deterministically from a fixed seed, so
//! that every machine gets the same data with no network access and no
//! downloaded data set. Everything is fictitious: e-mail addresses use the
//! reserved `example.*` domains, phone numbers the 555-01xx range, IP
//! addresses the documentation ranges; card numbers are Luhn-valid (so
//! that masking, in a later issue, has something realistic to find) but use
//! well-known test prefixes.

use std::io;

use super::postgres::Cluster;

/// Number of customers generated.
pub const CUSTOMERS: usize = 1_000;
/// Number of orders generated.
pub const ORDERS: usize = 5_000;

/// Tables of the demo database. Safe to run repeatedly.
pub const SCHEMA_SQL: &str = "\
CREATE TABLE IF NOT EXISTS customers (
    id          integer PRIMARY KEY,
    name        text NOT NULL,
    email       text NOT NULL,
    phone       text,
    ssn         text,
    card_number text,
    notes       text,
    profile     jsonb,
    created_at  timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    id               integer PRIMARY KEY,
    customer_id      integer NOT NULL REFERENCES customers (id),
    ordered_at       timestamptz NOT NULL,
    status           text NOT NULL,
    item             text NOT NULL,
    quantity         integer NOT NULL,
    total            numeric(10, 2) NOT NULL,
    shipping_address text
);
CREATE INDEX IF NOT EXISTS orders_customer_id_idx ON orders (customer_id);
";

/// SplitMix64: tiny, fast and good enough for fake data; fixed seed so the
/// data set is identical everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

const FIRST: &[&str] = &[
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Amelia",
    "Oliver",
    "Ava",
    "Elijah",
    "Sophia",
    "Mateo",
    "Isabella",
    "Lucas",
    "Mia",
    "Levi",
    "Charlotte",
    "Ezra",
    "Harper",
    "Asher",
    "Luna",
    "James",
    "Aisha",
    "Wei",
    "Priya",
    "Kenji",
    "Fatima",
    "Diego",
    "Ingrid",
    "Sven",
    "Chloé",
    "José",
    "Zoë",
    "Björn",
    "Amara",
    "Tomasz",
    "Leila",
    "Nikolai",
    "Yuki",
    "Kwame",
    "Siobhan",
    "Rafael",
];
const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Nakamura",
    "Okafor",
    "Kowalski",
    "Müller",
    "Novak",
    "Haddad",
    "Singh",
    "Chen",
    "O'Brien",
    "Van der Berg",
    "Rossi",
    "Dubois",
    "Andersson",
];
const DOMAINS: &[&str] = &["example.com", "example.org", "example.net"];
const STREETS: &[&str] = &[
    "Maple Ave",
    "Oak St",
    "Pine Rd",
    "Cedar Ln",
    "Elm St",
    "Birch Way",
    "Harbor Blvd",
    "Sunset Dr",
    "Mill Rd",
    "Lakeview Ter",
    "Church St",
    "Station Rd",
];
const CITIES: &[(&str, &str)] = &[
    ("Springfield", "IL"),
    ("Riverton", "WY"),
    ("Fairview", "TN"),
    ("Greenville", "SC"),
    ("Madison", "WI"),
    ("Georgetown", "TX"),
    ("Salem", "OR"),
    ("Franklin", "MA"),
    ("Clinton", "IA"),
    ("Arlington", "VA"),
];
const TIERS: &[&str] = &["bronze", "silver", "gold", "platinum"];
const ITEMS: &[(&str, u64)] = &[
    ("USB-C cable 2m", 1299),
    ("Mechanical keyboard", 8999),
    ("27\" monitor", 27900),
    ("Noise-cancelling headphones", 19900),
    ("Laptop stand", 3450),
    ("Webcam 1080p", 5999),
    ("Desk lamp", 2475),
    ("Ergonomic mouse", 4599),
    ("Portable SSD 1TB", 10900),
    ("Office chair", 32900),
    ("Coffee beans 1kg", 2199),
    ("Notebook (pack of 3)", 1150),
];
const STATUSES: &[&str] = &[
    "delivered",
    "delivered",
    "delivered",
    "shipped",
    "processing",
    "cancelled",
    "refunded",
];

/// A Luhn-valid card number with a well-known test prefix.
fn card_number(rng: &mut Rng) -> String {
    let (prefix, len) = match rng.below(3) {
        0 => ("4", 16),  // Visa
        1 => ("51", 16), // Mastercard
        _ => ("37", 15), // American Express
    };
    let mut digits: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
    while digits.len() < len - 1 {
        digits.push(rng.below(10) as u8);
    }
    // Luhn check digit over the digits so far.
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let dd = d * 2;
                if dd > 9 {
                    dd - 9
                } else {
                    dd
                }
            } else {
                d
            }
        })
        .sum();
    digits.push(((10 - sum % 10) % 10) as u8);
    let s: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
    // Group in fours the way people type them.
    s.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ssn(rng: &mut Rng) -> String {
    // Area 001-665 or 667-899 (000, 666 and 9xx are never issued).
    let mut area = 1 + rng.below(898);
    if area == 666 {
        area = 667;
    }
    format!(
        "{area:03}-{:02}-{:04}",
        1 + rng.below(99),
        1 + rng.below(9999)
    )
}

fn phone(rng: &mut Rng) -> String {
    let area = ["212", "312", "415", "503", "617", "702", "808", "919"];
    format!("+1 ({}) 555-01{}", rng.pick(&area), rng.digits(2))
}

fn timestamp(rng: &mut Rng, from_year: u64) -> String {
    // Days are capped at 28 so that every month is valid.
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}+00",
        from_year + rng.below(3),
        1 + rng.below(12),
        1 + rng.below(28),
        rng.below(24),
        rng.below(60),
        rng.below(60)
    )
}

/// Escapes a value for COPY's text format.
fn copy_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The generated rows, as COPY text-format data for `customers` and
/// `orders` (each ending with a newline, without the `\.` terminator).
pub fn generate() -> (String, String) {
    let mut rng = Rng(SEED);
    let mut customers = String::with_capacity(CUSTOMERS * 400);
    let mut addresses = Vec::with_capacity(CUSTOMERS);
    for id in 1..=CUSTOMERS {
        let first = rng.pick(FIRST);
        let last = rng.pick(LAST);
        let name = format!("{first} {last}");
        let local: String = format!("{first}.{last}")
            .to_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect();
        let email = format!("{local}{}@{}", rng.below(100), rng.pick(DOMAINS));
        let phone = phone(&mut rng);
        let ssn = ssn(&mut rng);
        let card = card_number(&mut rng);
        let (city, state) = CITIES[rng.below(CITIES.len() as u64) as usize];
        let street = format!("{} {}", 1 + rng.below(9899), rng.pick(STREETS));
        let zip = format!("{:05}", 10000 + rng.below(89999));
        let address = format!("{street}, {city}, {state} {zip}");
        // Free text that hides PII the structured columns also hold, plus
        // some that only appears here, the way support notes really look.
        let notes = match rng.below(6) {
            0 => format!(
                "Called from {phone} about a late delivery; verified identity with SSN {ssn}."
            ),
            1 => format!(
                "Asked to update the card on file to {}. Confirmation sent to {email}.",
                card_number(&mut rng)
            ),
            2 => format!(
                "Prefers contact by e-mail ({email}); alternate number +1 (646) 555-01{}.",
                rng.digits(2)
            ),
            3 => format!(
                "VIP customer. Spouse {} may call on their behalf.",
                rng.pick(FIRST)
            ),
            4 => String::from("No notes."),
            _ => format!(
                "Disputed charge on card ending {}; refund issued.",
                &card[card.len() - 4..]
            ),
        };
        let profile = format!(
            "{{\"tier\": {}, \"marketing_opt_in\": {}, \"date_of_birth\": \"{}-{:02}-{:02}\", \
             \"address\": {{\"street\": {}, \"city\": {}, \"state\": \"{state}\", \"zip\": \"{zip}\"}}, \
             \"last_login_ip\": \"203.0.113.{}\"}}",
            json_string(rng.pick(TIERS)),
            rng.below(2) == 1,
            1950 + rng.below(55),
            1 + rng.below(12),
            1 + rng.below(28),
            json_string(&street),
            json_string(city),
            1 + rng.below(254)
        );
        let created = timestamp(&mut rng, 2021);
        let fields = [
            id.to_string(),
            name,
            email,
            phone,
            ssn,
            card,
            notes,
            profile,
            created,
        ];
        let row: Vec<String> = fields.iter().map(|f| copy_escape(f)).collect();
        customers.push_str(&row.join("\t"));
        customers.push('\n');
        addresses.push(address);
    }

    let mut orders = String::with_capacity(ORDERS * 120);
    for id in 1..=ORDERS {
        let customer = 1 + rng.below(CUSTOMERS as u64) as usize;
        let (item, price) = ITEMS[rng.below(ITEMS.len() as u64) as usize];
        let quantity = 1 + rng.below(4);
        let cents = price * quantity;
        let fields = [
            id.to_string(),
            customer.to_string(),
            timestamp(&mut rng, 2023),
            rng.pick(STATUSES).to_string(),
            item.to_string(),
            quantity.to_string(),
            format!("{}.{:02}", cents / 100, cents % 100),
            addresses[customer - 1].clone(),
        ];
        let row: Vec<String> = fields.iter().map(|f| copy_escape(f)).collect();
        orders.push_str(&row.join("\t"));
        orders.push('\n');
    }
    (customers, orders)
}

/// The fixed seed: any value works, it only has to stay the same so that
/// every machine generates identical data.
const SEED: u64 = 0x5111_ce00_de5c_a7a1;

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Brings `cluster` to the demo state, idempotently: the login role `role`
/// with `password` (SCRAM; reset on every call so it always matches the
/// password file), the `demo` database owned by it, the tables, and the
/// rows (loaded only when `customers` is empty, so a restarted demo keeps
/// whatever the user changed).
pub fn apply(cluster: &Cluster, role: &str, password: &str) -> io::Result<()> {
    let role_ident = format!("\"{}\"", role.replace('"', "\"\""));
    cluster.psql_admin(&format!(
        "SELECT 'CREATE ROLE {role_ident} LOGIN' \
           WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {role_lit}) \\gexec\n\
         ALTER ROLE {role_ident} WITH LOGIN PASSWORD {pw};\n\
         SELECT 'CREATE DATABASE demo OWNER {role_ident}' \
           WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'demo') \\gexec\n",
        role_lit = quote_literal(role),
        pw = quote_literal(password),
    ))?;
    cluster.psql_admin_db("demo", SCHEMA_SQL)?;
    let count = cluster.psql_admin_db("demo", "SELECT count(*) FROM customers;")?;
    if count.trim() == "0" {
        let (customers, orders) = generate();
        let script = format!(
            "BEGIN;\n\
             COPY customers (id, name, email, phone, ssn, card_number, notes, profile, created_at) FROM stdin;\n\
             {customers}\\.\n\
             COPY orders (id, customer_id, ordered_at, status, item, quantity, total, shipping_address) FROM stdin;\n\
             {orders}\\.\n\
             COMMIT;\n\
             ANALYZE customers;\n\
             ANALYZE orders;\n"
        );
        cluster.psql_admin_db("demo", &script)?;
    }
    // Ownership last, so the tables belong to the role whether they were
    // just created or came from an earlier run.
    cluster.psql_admin_db(
        "demo",
        &format!(
            "ALTER TABLE customers OWNER TO {role_ident};\n\
             ALTER TABLE orders OWNER TO {role_ident};\n"
        ),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_well_formed() {
        let (c1, o1) = generate();
        let (c2, o2) = generate();
        assert_eq!(c1, c2);
        assert_eq!(o1, o2);
        assert_eq!(c1.lines().count(), CUSTOMERS);
        assert_eq!(o1.lines().count(), ORDERS);
        for line in c1.lines() {
            assert_eq!(line.split('\t').count(), 9, "{line}");
        }
        for line in o1.lines() {
            assert_eq!(line.split('\t').count(), 8, "{line}");
        }
    }

    #[test]
    fn card_numbers_pass_luhn() {
        let mut rng = Rng(7);
        for _ in 0..1000 {
            let card: Vec<u32> = card_number(&mut rng)
                .chars()
                .filter_map(|c| c.to_digit(10))
                .collect();
            let sum: u32 = card
                .iter()
                .rev()
                .enumerate()
                .map(|(i, &d)| match (i % 2 == 1, d * 2) {
                    (true, dd) if dd > 9 => dd - 9,
                    (true, dd) => dd,
                    (false, _) => d,
                })
                .sum();
            assert_eq!(sum % 10, 0, "{card:?}");
        }
    }
}
