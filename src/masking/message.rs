//! Masking PostgreSQL backend messages.
//!
//! [`mask_backend_message`] takes one complete backend message (tag,
//! length word, body) in a mutable buffer. With same-length styles it
//! rewrites values in place and the framing never changes
//! ([`Outcome::MaskedInPlace`]). When a redaction label or a NULL replaces
//! a value, the message is rebuilt with the codec's builders into `out`
//! ([`Outcome::Reframed`]); the caller then sends `out` instead of the
//! original bytes.
//!
//! Which values are scanned follows the result shape
//! ([`ResultShape`], built from RowDescription): text-format values of any
//! type that can hold text (bytea's hex form decoded first), binary-format
//! values of text-like types (text, varchar, bpchar, name, char, json,
//! jsonb after its version byte, xml, unknown), binary arrays and records
//! walked to their elements, binary values of every other type that is
//! not known to be a number, a date or the like (bytea, citext, hstore,
//! enums, ...) scanned as they are, every ErrorResponse/NoticeResponse
//! field that can echo data (all but severity, SQLSTATE, file, line,
//! routine and positions), NotificationResponse channels and payloads,
//! RowDescription column names, text/CSV COPY data and, field by field,
//! binary COPY data ([`mask_binary_copy_data`]).

use bytes::BytesMut;

use super::engine::Scanner;
use super::style::{self, Style};
use super::{DetectorSet, Profile};
use crate::protocol::pg::{
    build, parse_backend, BackendMessage, FieldDescription, FormatCode, Frame, ParseError,
};

/// Most columns a result can have (PostgreSQL's own limit on a target
/// list is 1664).
pub const RESULT_COLUMNS_MAX: usize = 1664;

/// What a column rule does to every value of its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColumnAction {
    /// Letters and digits become `*` (text-like types); a value of a type
    /// whose text form would no longer parse (numbers, dates, json)
    /// becomes NULL instead.
    #[default]
    Mask,
    /// The value becomes NULL.
    Null,
}

/// A whole-column rule: the column named `column`, from the table with
/// OID `table_oid` (any table when `None`). Table names from the
/// configuration are resolved to OIDs by the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRule {
    pub table_oid: Option<u32>,
    pub column: String,
    /// The column's attribute number in that table, when the session
    /// resolved it: then the rule also applies to the column under any
    /// other name (an alias, a sub-select's column), since RowDescription
    /// names the origin of a plain column reference by table OID and
    /// attribute number whatever the query calls it.
    pub column_attribute: Option<i16>,
    pub action: ColumnAction,
}

impl ColumnRule {
    /// Whether the rule applies to the described column.
    pub fn applies_to(&self, field: &FieldDescription<'_>) -> bool {
        let Some(table) = self.table_oid else {
            return self.column.as_bytes() == field.name;
        };
        table == field.table_oid
            && (self.column.as_bytes() == field.name
                || self.column_attribute == Some(field.column_attribute))
    }
}

/// How one column's values are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnPlan {
    /// Not scanned: the type cannot hold text (or no detector applies).
    Skip,
    /// Scanned with the profile's detectors, from byte `offset` (1 for
    /// binary jsonb, whose first byte is a format version).
    Scan { offset: u8 },
    /// A binary-format value of a type that is not text itself but can
    /// carry text: arrays, composites (records), and types sluice knows
    /// only by a dynamic OID (enums, domains inside containers, citext,
    /// hstore, ...). Arrays and records describe their own element types
    /// and are walked to their text leaves ([`mask_binary_value`]); other
    /// values are scanned as they are with the same-length styles.
    Walk { type_oid: u32 },
    /// bytea in text format: the hex form (`\x6a61...`) is decoded, the
    /// bytes are scanned, and masked bytes are encoded back in place.
    HexBytes,
    /// Masked whole in place (letters and digits become `*`).
    Fill,
    /// Replaced by NULL (the message is re-framed).
    Null,
}

/// Type OIDs whose values hold text in either format.
fn text_like(type_oid: u32) -> bool {
    // char, name, text, json, xml, bpchar, varchar, unknown, jsonb
    matches!(
        type_oid,
        18 | 19 | 25 | 114 | 142 | 705 | 1042 | 1043 | 3802
    )
}

/// Type OIDs whose text form cannot hold a sensitive value: booleans,
/// bytea (hex-encoded), int2 (five digits at most), oid, float4 (seven
/// significant digits), dates and times, intervals and UUIDs. Every other
/// type, including unknown ones (enums, domains, composites, arrays), is
/// scanned in text format.
fn never_text(type_oid: u32) -> bool {
    matches!(
        type_oid,
        16 | 17 | 21 | 26 | 700 | 1082 | 1083 | 1114 | 1184 | 1186 | 1266 | 2950
    )
}

/// Type OIDs whose *binary* form holds no text: booleans, integers,
/// oid/xid/cid/tid, floats, numeric (base-10000 digits), money, dates and
/// times, intervals, UUIDs, geometric types, network addresses (inet and
/// cidr are address bytes) and macaddr. Every other binary value can
/// carry text (bytea, arrays, records, enums, citext, hstore, ...) and is
/// walked or scanned.
fn binary_never_text(type_oid: u32) -> bool {
    matches!(
        type_oid,
        16 | 20
            | 21
            | 23
            | 26
            | 27
            | 28
            | 29
            | 600
            | 601
            | 602
            | 603
            | 604
            | 628
            | 650
            | 700
            | 701
            | 718
            | 774
            | 790
            | 829
            | 869
            | 1082
            | 1083
            | 1114
            | 1184
            | 1186
            | 1266
            | 1700
            | 2950
    )
}

/// The `bytea` type.
const BYTEA_OID: u32 = 17;
/// The `jsonb` type, whose binary form starts with a version byte.
const JSONB_OID: u32 = 3802;
/// Deepest nesting of arrays and records walked inside one binary value.
/// PostgreSQL's arrays have at most 6 dimensions, but records and arrays
/// can nest each other; deeper values are scanned as they are instead
/// (no text escapes the scan, only the structure is not followed).
pub const BINARY_NESTING_MAX: usize = 16;
/// Most dimensions of a binary array (PostgreSQL's MAXDIM).
const ARRAY_DIMENSIONS_MAX: i32 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ColumnInfo {
    type_oid: u32,
    format: FormatCode,
    rule: Option<ColumnAction>,
}

/// The shape of one result: per column, its type, format and whether a
/// column rule applies. Built from RowDescription; the formats can be
/// replaced by those of the Bind that created the portal (a statement
/// Describe reports text for every column).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResultShape {
    columns: Vec<ColumnInfo>,
    /// Column names, concatenated, for summaries (`names[i]` is a range).
    name_bytes: Vec<u8>,
    names: Vec<(u32, u32)>,
}

impl ResultShape {
    /// Builds the shape of a RowDescription. `rules` are only consulted
    /// when the profile applies column rules.
    pub fn from_fields<'a>(
        fields: impl Iterator<Item = FieldDescription<'a>>,
        rules: &[ColumnRule],
        profile: &Profile,
    ) -> Self {
        let mut shape = ResultShape::default();
        for f in fields.take(RESULT_COLUMNS_MAX) {
            let rule = if profile.column_rules {
                rules.iter().find(|r| r.applies_to(&f)).map(|r| r.action)
            } else {
                None
            };
            shape.columns.push(ColumnInfo {
                type_oid: f.type_oid,
                format: f.format,
                rule,
            });
            let from = shape.name_bytes.len() as u32;
            shape.name_bytes.extend_from_slice(f.name);
            shape.names.push((from, shape.name_bytes.len() as u32));
        }
        shape
    }

    /// Replaces the column names (for summaries) by those of `fields`,
    /// the same RowDescription after its names were masked.
    pub fn set_names<'a>(&mut self, fields: impl Iterator<Item = FieldDescription<'a>>) {
        self.name_bytes.clear();
        self.names.clear();
        for f in fields.take(RESULT_COLUMNS_MAX) {
            let from = self.name_bytes.len() as u32;
            self.name_bytes.extend_from_slice(f.name);
            self.names.push((from, self.name_bytes.len() as u32));
        }
    }

    /// Applies the result format codes of a Bind: none means all text, one
    /// applies to every column, otherwise one per column.
    pub fn set_result_formats(&mut self, formats: &[FormatCode]) {
        for (i, c) in self.columns.iter_mut().enumerate() {
            c.format = match formats.len() {
                0 => FormatCode::Text,
                1 => formats[0],
                _ => formats.get(i).copied().unwrap_or(FormatCode::Text),
            };
        }
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// The column's name as RowDescription sent it.
    pub fn column_name(&self, i: usize) -> Option<&[u8]> {
        self.names
            .get(i)
            .map(|&(a, b)| &self.name_bytes[a as usize..b as usize])
    }

    /// How values of column `i` are treated under `profile`.
    pub fn plan(&self, i: usize, profile: &Profile) -> ColumnPlan {
        let Some(c) = self.columns.get(i) else {
            return unknown_plan(profile);
        };
        if let Some(action) = c.rule {
            let fill_ok = text_like(c.type_oid) && !matches!(c.type_oid, 114 | 3802);
            return match action {
                ColumnAction::Mask if fill_ok => ColumnPlan::Fill,
                _ => ColumnPlan::Null,
            };
        }
        if profile.detectors.is_empty() {
            return ColumnPlan::Skip;
        }
        match c.format {
            FormatCode::Text if c.type_oid == BYTEA_OID => ColumnPlan::HexBytes,
            FormatCode::Text if never_text(c.type_oid) => ColumnPlan::Skip,
            FormatCode::Text => ColumnPlan::Scan { offset: 0 },
            FormatCode::Binary if c.type_oid == JSONB_OID => ColumnPlan::Scan { offset: 1 },
            FormatCode::Binary if text_like(c.type_oid) => ColumnPlan::Scan { offset: 0 },
            FormatCode::Binary if binary_never_text(c.type_oid) => ColumnPlan::Skip,
            FormatCode::Binary => ColumnPlan::Walk {
                type_oid: c.type_oid,
            },
        }
    }
}

/// Values of a result whose shape is unknown are scanned as text: that is
/// the safe side for privacy (a binary value could be altered, but the
/// framing never is). A value that starts with a NUL byte cannot be text
/// and may be a binary array or record: it is walked like one
/// ([`ColumnPlan::Walk`] with no type), so that masking does not touch
/// the length words between its elements.
fn unknown_plan(profile: &Profile) -> ColumnPlan {
    if profile.detectors.is_empty() {
        ColumnPlan::Skip
    } else {
        ColumnPlan::Walk {
            type_oid: UNKNOWN_TYPE_OID,
        }
    }
}

/// The type of a value whose type is not known (not a real OID).
const UNKNOWN_TYPE_OID: u32 = 0;

/// Whether a [`ColumnPlan::Walk`] value is walked as binary structure
/// (true) or scanned as text, where a redaction may re-frame it (false).
/// Text never holds a NUL byte, and every binary array or record starts
/// with one (their first word is a small count). Masking never writes a
/// NUL, so both passes over a row decide alike.
fn walked_as_structure(value: &[u8]) -> bool {
    value.first() == Some(&0)
}

/// Masks the text inside one binary value of type `type_oid`, in place
/// and with the same-length styles (the value's inner length words must
/// not change). Arrays and records name the types of their elements, so
/// they are walked to their leaves: text-like leaves are scanned, leaves
/// whose binary form holds no text are skipped, and anything else
/// (bytea, enums, citext, hstore, ...) is scanned as it is. A value that
/// does not parse as the structure it claims is scanned whole: the walk
/// can only narrow what is scanned when the structure is certain.
/// Returns whether anything was masked.
pub fn mask_binary_value(
    scanner: &mut Scanner,
    set: DetectorSet,
    value: &mut [u8],
    type_oid: u32,
    column: Option<u16>,
    summary: &mut super::MaskSummary,
    depth: usize,
) -> bool {
    if set.is_empty() || value.is_empty() {
        return false;
    }
    if type_oid == JSONB_OID {
        return scanner.mask_value(&mut value[1..], set, column, summary) > 0;
    }
    if binary_never_text(type_oid) {
        return false;
    }
    if text_like(type_oid) || !walked_as_structure(value) || depth >= BINARY_NESTING_MAX {
        return scanner.mask_value(value, set, column, summary) > 0;
    }
    if let Some(elements) = binary_array_elements(value) {
        let element_type = u32::from_be_bytes([value[8], value[9], value[10], value[11]]);
        let mut changed = false;
        for range in elements {
            changed |= mask_binary_value(
                scanner,
                set,
                &mut value[range],
                element_type,
                column,
                summary,
                depth + 1,
            );
        }
        return changed;
    }
    if let Some(fields) = binary_record_fields(value) {
        let mut changed = false;
        for (field_type, range) in fields {
            changed |= mask_binary_value(
                scanner,
                set,
                &mut value[range],
                field_type,
                column,
                summary,
                depth + 1,
            );
        }
        return changed;
    }
    scanner.mask_value(value, set, column, summary) > 0
}

fn be_i32(bytes: &[u8], at: usize) -> Option<i32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(i32::from_be_bytes([word[0], word[1], word[2], word[3]]))
}

/// Reads `count` length-prefixed items starting at `pos` (a length of -1
/// is NULL and has no bytes); `type_before` tells whether each length is
/// preceded by a type OID (records). Returns the items' types and ranges
/// when they end exactly at the end of `value`.
fn length_prefixed_items(
    value: &[u8],
    mut pos: usize,
    count: usize,
    type_before: bool,
) -> Option<Vec<(u32, std::ops::Range<usize>)>> {
    // Every item takes at least four bytes, so a count beyond what the
    // value can hold is refused before anything is allocated.
    if count > value.len() / 4 {
        return None;
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let item_type = if type_before {
            let t = be_i32(value, pos)? as u32;
            pos += 4;
            t
        } else {
            UNKNOWN_TYPE_OID
        };
        let len = be_i32(value, pos)?;
        pos += 4;
        if len == -1 {
            continue;
        }
        let len = usize::try_from(len).ok()?;
        let end = pos.checked_add(len).filter(|&e| e <= value.len())?;
        items.push((item_type, pos..end));
        pos = end;
    }
    (pos == value.len()).then_some(items)
}

/// The element ranges of a binary array (`array_send`: dimensions, a
/// has-nulls flag, the element type, per dimension its size and lower
/// bound, then each element as a length and bytes), or None when `value`
/// is not exactly one well-formed array.
pub(crate) fn binary_array_elements(value: &[u8]) -> Option<Vec<std::ops::Range<usize>>> {
    let dimensions = be_i32(value, 0)?;
    let flags = be_i32(value, 4)?;
    be_i32(value, 8)?;
    if !(0..=ARRAY_DIMENSIONS_MAX).contains(&dimensions) || !(0..=1).contains(&flags) {
        return None;
    }
    let mut count: usize = if dimensions == 0 { 0 } else { 1 };
    let mut pos = 12usize;
    for _ in 0..dimensions {
        let size = usize::try_from(be_i32(value, pos)?).ok()?;
        be_i32(value, pos + 4)?;
        count = count.checked_mul(size)?;
        pos += 8;
    }
    let items = length_prefixed_items(value, pos, count, false)?;
    Some(items.into_iter().map(|(_, r)| r).collect())
}

/// The fields of a binary record (`record_send`: a field count, then per
/// field its type OID, a length and bytes), or None when `value` is not
/// exactly one well-formed record.
pub(crate) fn binary_record_fields(value: &[u8]) -> Option<Vec<(u32, std::ops::Range<usize>)>> {
    let count = usize::try_from(be_i32(value, 0)?).ok()?;
    if count > RESULT_COLUMNS_MAX {
        return None;
    }
    length_prefixed_items(value, 4, count, true)
}

/// Masks a bytea value in text format. The hex form (`\x` and two hex
/// digits per byte, PostgreSQL's default output) is decoded into
/// `scratch`, scanned, and the masked bytes are written back as hex in
/// place, so the length never changes and the client still decodes a
/// valid bytea. The escape form keeps printable bytes as they are and is
/// scanned as text. Returns whether anything was masked.
pub fn mask_bytea_text(
    scanner: &mut Scanner,
    set: DetectorSet,
    value: &mut [u8],
    scratch: &mut Vec<u8>,
    column: Option<u16>,
    summary: &mut super::MaskSummary,
) -> bool {
    if set.is_empty() {
        return false;
    }
    let hex = value.starts_with(b"\\x") && value.len().is_multiple_of(2);
    let decoded = hex && {
        scratch.clear();
        value[2..]
            .chunks_exact(2)
            .all(|pair| match (hex_digit(pair[0]), hex_digit(pair[1])) {
                (Some(high), Some(low)) => {
                    scratch.push(high << 4 | low);
                    true
                }
                _ => false,
            })
    };
    if !decoded {
        return scanner.mask_value(value, set, column, summary) > 0;
    }
    if scanner.mask_value(scratch, set, column, summary) == 0 {
        return false;
    }
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, &byte) in value[2..].chunks_exact_mut(2).zip(scratch.iter()) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
    true
}

/// The signature that opens binary COPY data.
const BINARY_COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Masks one CopyData message of a binary COPY TO STDOUT in place, with
/// the same-length styles. PostgreSQL sends one tuple per message (the
/// first after the header): each field is a length and bytes, without a
/// type, and goes through [`mask_binary_value`] as a value of unknown
/// type, so the length words of tuples and of arrays and records inside
/// fields are never touched by a match that runs into them. Data that
/// does not parse as whole tuples (another server's chunking) is scanned
/// as it is from where parsing stopped: nothing is left unscanned.
/// Returns whether anything was masked.
pub fn mask_binary_copy_data(
    scanner: &mut Scanner,
    set: DetectorSet,
    data: &mut [u8],
    summary: &mut super::MaskSummary,
) -> bool {
    if set.is_empty() {
        return false;
    }
    let mut pos = 0usize;
    if data.starts_with(BINARY_COPY_SIGNATURE) {
        // Signature, flags word, header extension length and extension.
        let extension =
            be_i32(data, BINARY_COPY_SIGNATURE.len() + 4).and_then(|n| usize::try_from(n).ok());
        match extension {
            Some(n) if BINARY_COPY_SIGNATURE.len() + 8 + n <= data.len() => {
                pos = BINARY_COPY_SIGNATURE.len() + 8 + n;
            }
            _ => return scanner.mask_value(data, set, None, summary) > 0,
        }
    }
    // First the whole message is checked to be whole tuples, so that a
    // chunk that is not is scanned as one piece rather than in part.
    let mut fields: Vec<std::ops::Range<usize>> = Vec::new();
    let mut cursor = pos;
    let whole = loop {
        if cursor == data.len() {
            break true;
        }
        let Some(count) = data
            .get(cursor..cursor + 2)
            .map(|w| i16::from_be_bytes([w[0], w[1]]))
        else {
            break false;
        };
        cursor += 2;
        if count == -1 {
            // The trailer ends the data.
            break cursor == data.len();
        }
        let Ok(count) = usize::try_from(count) else {
            break false;
        };
        let mut ok = true;
        for _ in 0..count {
            let Some(len) = be_i32(data, cursor) else {
                ok = false;
                break;
            };
            cursor += 4;
            if len == -1 {
                continue;
            }
            match usize::try_from(len)
                .ok()
                .and_then(|l| cursor.checked_add(l))
                .filter(|&e| e <= data.len())
            {
                Some(end) => {
                    fields.push(cursor..end);
                    cursor = end;
                }
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            break false;
        }
    };
    if !whole {
        return scanner.mask_value(&mut data[pos..], set, None, summary) > 0;
    }
    let mut changed = false;
    for range in fields {
        changed |= mask_binary_value(
            scanner,
            set,
            &mut data[range],
            UNKNOWN_TYPE_OID,
            None,
            summary,
            0,
        );
    }
    changed
}

/// Fewest bytes a hex run must encode to be decoded and scanned: the
/// shortest value a detector finds (an IPv4 address such as `1.2.3.4`)
/// has seven.
const HEX_RUN_BYTES_MIN: usize = 7;

/// Masks sensitive values inside the hex runs of a text value: bytea's
/// text form (`\x` and hex digits) reaches the agent inside records,
/// arrays, JSON, COPY rows and error messages, where the column's type
/// does not say so. Each run after a `\x` is decoded into `scratch`,
/// scanned, and the bytes that masking changed are written back as hex
/// in place, so the length never changes and the bytea still decodes.
/// Returns whether anything was masked.
pub fn mask_hex_runs(
    scanner: &mut Scanner,
    set: DetectorSet,
    value: &mut [u8],
    scratch: &mut Vec<u8>,
    column: Option<u16>,
    summary: &mut super::MaskSummary,
) -> bool {
    if set.is_empty() {
        return false;
    }
    let mut changed = false;
    let mut from = 0usize;
    while let Some(found) = memchr::memchr(b'\\', &value[from..]) {
        let start = from + found + 2;
        from += found + 1;
        if value.get(start - 1) != Some(&b'x') {
            continue;
        }
        let digits = value[start..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        let end = start + (digits & !1);
        from = from.max(start + digits);
        if end - start < 2 * HEX_RUN_BYTES_MIN {
            continue;
        }
        scratch.clear();
        scratch.extend(
            value[start..end]
                .chunks_exact(2)
                .map(|pair| hex_pair(pair[0], pair[1])),
        );
        if scanner.mask_value(scratch, set, column, summary) == 0 {
            continue;
        }
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for (pair, &byte) in value[start..end].chunks_exact_mut(2).zip(scratch.iter()) {
            if hex_pair(pair[0], pair[1]) != byte {
                pair[0] = DIGITS[usize::from(byte >> 4)];
                pair[1] = DIGITS[usize::from(byte & 0xf)];
            }
        }
        changed = true;
    }
    changed
}

/// The byte of two hex digits (both already checked to be hex digits).
fn hex_pair(high: u8, low: u8) -> u8 {
    hex_digit(high).unwrap_or(0) << 4 | hex_digit(low).unwrap_or(0)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Per-session masking state: the current result shape, whether a COPY
/// in progress is binary, and what has been masked so far.
#[derive(Debug, Clone, Default)]
pub struct MaskingState {
    /// Shape of the rows being received; set from RowDescription and
    /// cleared when the result ends. The session may replace it (e.g. with
    /// a prepared statement's shape and its Bind formats) before rows
    /// arrive without a RowDescription of their own.
    pub shape: Option<ResultShape>,
    /// A binary COPY (or a CopyBoth stream) is in progress; its data is
    /// not text and is not scanned.
    pub copy_binary: bool,
    /// Everything masked in this session.
    pub summary: super::MaskSummary,
    /// Reused buffers for re-framing (allocated once they are needed).
    values: Vec<Option<(usize, usize)>>,
    bytes: Vec<u8>,
    /// Decoded bytes of a hex-encoded bytea value being scanned.
    hex_scratch: Vec<u8>,
}

/// What happened to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to mask; the bytes are untouched.
    Unchanged,
    /// Values were masked in place; the length is unchanged.
    MaskedInPlace,
    /// The message was rebuilt into `out`; send that instead.
    Reframed,
}

/// Violations found in a message handed to the masking layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    #[error("message of {len} bytes is shorter than the 5-byte header")]
    ShorterThanHeader { len: usize },
    #[error("message {tag:#04x} declares length {declared} but the buffer holds {actual} bytes after the tag")]
    LengthMismatch {
        tag: u8,
        declared: i64,
        actual: usize,
    },
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// ErrorResponse/NoticeResponse field codes never scanned: severity
/// (`S`, `V`), SQLSTATE (`C`), source file, line and routine (`F`, `L`,
/// `R`) and positions (`P`, `p`). Every other field can echo data.
fn field_scanned(code: u8) -> bool {
    !matches!(code, b'S' | b'V' | b'C' | b'F' | b'L' | b'R' | b'P' | b'p')
}

/// Masks one complete backend message in place, or re-frames it into
/// `out` when a redaction or a NULL changes its length.
///
/// RowDescription, CopyOutResponse/CopyBothResponse and the ends of results
/// (CommandComplete, EmptyQueryResponse, ErrorResponse, ReadyForQuery,
/// CopyDone) update `state`; DataRow, CopyData, ErrorResponse,
/// NoticeResponse and NotificationResponse are masked; everything else is
/// left alone without being parsed.
pub fn mask_backend_message(
    scanner: &mut Scanner,
    frame: &mut [u8],
    state: &mut MaskingState,
    rules: &[ColumnRule],
    profile: &Profile,
    out: &mut BytesMut,
) -> Result<Outcome, MaskError> {
    if frame.len() < 5 {
        return Err(MaskError::ShorterThanHeader { len: frame.len() });
    }
    let tag = frame[0];
    let declared = i32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]);
    if i64::from(declared) != frame.len() as i64 - 1 {
        return Err(MaskError::LengthMismatch {
            tag,
            declared: i64::from(declared),
            actual: frame.len() - 1,
        });
    }
    match tag {
        b'T' => {
            let msg = parse_backend(Frame {
                tag,
                body: &frame[5..],
            })?;
            if let BackendMessage::RowDescription { fields } = msg {
                state.shape = Some(ResultShape::from_fields(fields, rules, profile));
            }
            // Column names can carry data too (a view made by dynamic SQL
            // can name a column after a stored value): they are masked in
            // place with the same-length styles, after the column rules
            // were matched against them, and the shape keeps the masked
            // names for the session's summary.
            if mask_column_names(scanner, frame, profile.detectors, &mut state.summary) {
                if let (Some(shape), Ok(BackendMessage::RowDescription { fields })) = (
                    state.shape.as_mut(),
                    parse_backend(Frame {
                        tag,
                        body: &frame[5..],
                    }),
                ) {
                    shape.set_names(fields);
                }
                return Ok(Outcome::MaskedInPlace);
            }
            Ok(Outcome::Unchanged)
        }
        b'H' | b'W' => {
            let msg = parse_backend(Frame {
                tag,
                body: &frame[5..],
            })?;
            state.copy_binary = match msg {
                BackendMessage::CopyOutResponse { overall_format, .. } => {
                    overall_format == FormatCode::Binary
                }
                _ => true,
            };
            Ok(Outcome::Unchanged)
        }
        b'C' | b'I' | b'Z' | b'c' => {
            state.shape = None;
            state.copy_binary = false;
            Ok(Outcome::Unchanged)
        }
        b'D' => {
            parse_backend(Frame {
                tag,
                body: &frame[5..],
            })?;
            mask_data_row(scanner, frame, state, !rules.is_empty(), profile, out)
        }
        b'd' => {
            parse_backend(Frame {
                tag,
                body: &frame[5..],
            })?;
            if state.copy_binary || profile.detectors.is_empty() {
                return Ok(Outcome::Unchanged);
            }
            let mut m = Masker::new(scanner, profile.detectors);
            let range = 5..frame.len();
            let r = m.value(frame, range.clone(), None, &mut state.summary);
            if r == ValueResult::NeedsReframe {
                state.bytes.clear();
                m.redacted(&frame[range], &mut state.bytes);
                build::copy_data(out, &state.bytes);
                state.summary.reframed_messages += 1;
                return Ok(Outcome::Reframed);
            }
            Ok(m.outcome())
        }
        b'E' | b'N' => {
            parse_backend(Frame {
                tag,
                body: &frame[5..],
            })?;
            if tag == b'E' {
                state.shape = None;
                state.copy_binary = false;
            }
            mask_fields(scanner, frame, state, profile, out)
        }
        b'A' => {
            parse_backend(Frame {
                tag,
                body: &frame[5..],
            })?;
            if profile.detectors.is_empty() {
                return Ok(Outcome::Unchanged);
            }
            // Int32 process id, channel, payload (both NUL-terminated).
            let channel_end = 9 + frame[9..].iter().position(|&b| b == 0).unwrap_or(0);
            let payload = channel_end + 1..frame.len() - 1;
            // The channel is a name the sender chose, and can be a stored
            // value (`pg_notify(email, ...)`): masked in place with the
            // same-length styles, like column names.
            let channel_masked = scanner.mask_value(
                &mut frame[9..channel_end],
                profile.detectors,
                None,
                &mut state.summary,
            ) > 0;
            let mut m = Masker::new(scanner, profile.detectors);
            m.changed = channel_masked;
            if m.value(frame, payload.clone(), None, &mut state.summary)
                == ValueResult::NeedsReframe
            {
                state.bytes.clear();
                m.redacted(&frame[payload], &mut state.bytes);
                let pid = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]);
                build::notification_response(out, pid, &frame[9..channel_end], &state.bytes);
                state.summary.reframed_messages += 1;
                return Ok(Outcome::Reframed);
            }
            Ok(m.outcome())
        }
        _ => Ok(Outcome::Unchanged),
    }
}

/// Masks the column names of a RowDescription (`frame`, already parsed
/// and so well-formed) in place with the same-length styles. Returns
/// whether a name was masked.
fn mask_column_names(
    scanner: &mut Scanner,
    frame: &mut [u8],
    set: DetectorSet,
    summary: &mut super::MaskSummary,
) -> bool {
    if set.is_empty() || frame.len() < 7 {
        return false;
    }
    let count = usize::from(u16::from_be_bytes([frame[5], frame[6]]));
    let mut pos = 7usize;
    let mut changed = false;
    for _ in 0..count {
        let Some(length) = frame
            .get(pos..)
            .and_then(|rest| rest.iter().position(|&b| b == 0))
        else {
            break;
        };
        changed |= scanner.mask_value(&mut frame[pos..pos + length], set, None, summary) > 0;
        // The name's NUL, then table OID, attribute number, type OID, type
        // size, type modifier and format code (18 bytes).
        pos += length + 1 + 18;
    }
    changed
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueResult {
    Untouched,
    Masked,
    NeedsReframe,
}

/// Scans values and masks them in place, remembering whether anything
/// changed.
struct Masker<'s> {
    scanner: &'s mut Scanner,
    set: DetectorSet,
    changed: bool,
    /// Decoded bytes of a hex run (allocated only when one is found).
    hex_scratch: Vec<u8>,
    /// Whether the values may hold a hex run (a backslash): a DataRow is
    /// checked once as a whole, so that rows without one (nearly all)
    /// cost one search instead of one per value.
    hex_possible: bool,
}

impl<'s> Masker<'s> {
    fn new(scanner: &'s mut Scanner, set: DetectorSet) -> Self {
        Masker {
            scanner,
            set,
            changed: false,
            hex_scratch: Vec::new(),
            hex_possible: true,
        }
    }

    fn outcome(&self) -> Outcome {
        if self.changed {
            Outcome::MaskedInPlace
        } else {
            Outcome::Unchanged
        }
    }

    /// Scans `buf[range]`, records its findings, and masks it in place
    /// unless a finding's style is a redaction (then the caller re-frames
    /// and calls [`Masker::redacted`] on the untouched value).
    fn value(
        &mut self,
        buf: &mut [u8],
        range: std::ops::Range<usize>,
        column: Option<u16>,
        summary: &mut super::MaskSummary,
    ) -> ValueResult {
        let value = &mut buf[range];
        if self.hex_possible {
            self.changed |= mask_hex_runs(
                self.scanner,
                self.set,
                value,
                &mut self.hex_scratch,
                column,
                summary,
            );
        }
        let engine = std::sync::Arc::clone(self.scanner.engine());
        let scan = self.scanner.scan(value, self.set);
        if !scan.complete {
            style::fill(value);
            summary.record_whole(column);
            self.changed = true;
            return ValueResult::Masked;
        }
        if scan.findings.is_empty() {
            return ValueResult::Untouched;
        }
        let mut redact = false;
        for f in scan.findings {
            summary.record(f.detector, column);
            redact |= engine.detectors()[usize::from(f.detector)].style == Style::Redact;
        }
        if redact {
            return ValueResult::NeedsReframe;
        }
        for f in scan.findings {
            let s = engine.detectors()[usize::from(f.detector)].style;
            style::mask_span(value, f.start, f.end, s);
        }
        self.changed = true;
        ValueResult::Masked
    }

    /// Appends the redacted form of `value` (not yet masked) to `out`.
    fn redacted(&mut self, value: &[u8], out: &mut Vec<u8>) {
        let engine = std::sync::Arc::clone(self.scanner.engine());
        let scan = self.scanner.scan(value, self.set);
        if !scan.complete {
            let from = out.len();
            out.extend_from_slice(value);
            let to = out.len();
            style::mask_span(out, from, to, Style::Stars);
            return;
        }
        let dets = engine.detectors();
        style::redact_into(
            value,
            scan.findings,
            |d| dets[usize::from(d)].style,
            |d| dets[usize::from(d)].label.as_bytes(),
            out,
        );
    }
}

/// Masks one DataRow. `ruled`: the session applies column rules, which
/// need the row's shape to know which value is which column.
fn mask_data_row(
    scanner: &mut Scanner,
    frame: &mut [u8],
    state: &mut MaskingState,
    ruled: bool,
    profile: &Profile,
    out: &mut BytesMut,
) -> Result<Outcome, MaskError> {
    let count = usize::from(u16::from_be_bytes([frame[5], frame[6]]));
    let shape = state.shape.take();
    let shape_fits = shape.as_ref().is_some_and(|s| s.len() == count);
    // Without a shape, a column rule cannot find its column, and a ruled
    // column (a name, say) holds nothing content detection would find: the
    // row is masked whole, as COPY data is under column rules (fail
    // closed). Drivers describe what they execute, so only a client that
    // executes statements it never described (or a session whose answers
    // fell out of step) gets such rows.
    let plan = |i: usize| match &shape {
        Some(s) if shape_fits => s.plan(i, profile),
        _ if ruled => ColumnPlan::Fill,
        _ => unknown_plan(profile),
    };
    let mut m = Masker::new(scanner, profile.detectors);
    m.hex_possible = memchr::memchr(b'\\', &frame[7..]).is_some();
    let mut reframe = false;
    let mut pos = 7usize;
    // First pass: mask in place what can be, note what cannot.
    for i in 0..count {
        let len = i32::from_be_bytes([frame[pos], frame[pos + 1], frame[pos + 2], frame[pos + 3]]);
        pos += 4;
        let Ok(len) = usize::try_from(len) else {
            continue;
        };
        let (start, end) = (pos, pos + len);
        pos = end;
        let column = u16::try_from(i).ok();
        match plan(i) {
            ColumnPlan::Skip => {}
            ColumnPlan::Fill => {
                style::fill(&mut frame[start..end]);
                state.summary.record_whole(column);
                m.changed = true;
            }
            ColumnPlan::Null => {
                state.summary.record_whole(column);
                reframe = true;
            }
            ColumnPlan::Scan { offset } => {
                let from = (start + usize::from(offset)).min(end);
                if m.value(frame, from..end, column, &mut state.summary)
                    == ValueResult::NeedsReframe
                {
                    reframe = true;
                }
            }
            ColumnPlan::Walk { type_oid } if walked_as_structure(&frame[start..end]) => {
                m.changed |= mask_binary_value(
                    m.scanner,
                    m.set,
                    &mut frame[start..end],
                    type_oid,
                    column,
                    &mut state.summary,
                    0,
                );
            }
            ColumnPlan::Walk { .. } => {
                if m.value(frame, start..end, column, &mut state.summary)
                    == ValueResult::NeedsReframe
                {
                    reframe = true;
                }
            }
            ColumnPlan::HexBytes => {
                m.changed |= mask_bytea_text(
                    m.scanner,
                    m.set,
                    &mut frame[start..end],
                    &mut state.hex_scratch,
                    column,
                    &mut state.summary,
                );
            }
        }
    }
    if !reframe {
        state.shape = shape;
        return Ok(m.outcome());
    }
    // Second pass: rebuild the row. Values masked in place are copied as
    // they are now; redacted values are rescanned (they were left intact)
    // and NULLs replace values of columns masked that way.
    state.values.clear();
    state.bytes.clear();
    let mut pos = 7usize;
    for i in 0..count {
        let len = i32::from_be_bytes([frame[pos], frame[pos + 1], frame[pos + 2], frame[pos + 3]]);
        pos += 4;
        let Ok(len) = usize::try_from(len) else {
            state.values.push(None);
            continue;
        };
        let (start, end) = (pos, pos + len);
        pos = end;
        let from = state.bytes.len();
        match plan(i) {
            ColumnPlan::Null => {
                state.values.push(None);
                continue;
            }
            ColumnPlan::Scan { offset } => {
                let split = (start + usize::from(offset)).min(end);
                state.bytes.extend_from_slice(&frame[start..split]);
                m.redacted(&frame[split..end], &mut state.bytes);
            }
            ColumnPlan::Walk { .. } if !walked_as_structure(&frame[start..end]) => {
                m.redacted(&frame[start..end], &mut state.bytes);
            }
            // Masked in place by the first pass.
            ColumnPlan::Skip
            | ColumnPlan::Fill
            | ColumnPlan::Walk { .. }
            | ColumnPlan::HexBytes => state.bytes.extend_from_slice(&frame[start..end]),
        }
        state.values.push(Some((from, state.bytes.len())));
    }
    let values: Vec<Option<&[u8]>> = state
        .values
        .iter()
        .map(|v| v.map(|(a, b)| &state.bytes[a..b]))
        .collect();
    build::data_row(out, &values);
    state.summary.reframed_messages += 1;
    state.shape = shape;
    Ok(Outcome::Reframed)
}

fn mask_fields(
    scanner: &mut Scanner,
    frame: &mut [u8],
    state: &mut MaskingState,
    profile: &Profile,
    out: &mut BytesMut,
) -> Result<Outcome, MaskError> {
    if profile.detectors.is_empty() {
        return Ok(Outcome::Unchanged);
    }
    let tag = frame[0];
    let mut m = Masker::new(scanner, profile.detectors);
    let mut reframe = false;
    let mut pos = 5usize;
    while pos < frame.len() && frame[pos] != 0 {
        let code = frame[pos];
        let start = pos + 1;
        let end = start + frame[start..].iter().position(|&b| b == 0).unwrap_or(0);
        pos = end + 1;
        if field_scanned(code)
            && m.value(frame, start..end, None, &mut state.summary) == ValueResult::NeedsReframe
        {
            reframe = true;
        }
    }
    if !reframe {
        return Ok(m.outcome());
    }
    state.values.clear();
    state.bytes.clear();
    let mut codes: Vec<u8> = Vec::new();
    let mut pos = 5usize;
    while pos < frame.len() && frame[pos] != 0 {
        let code = frame[pos];
        let start = pos + 1;
        let end = start + frame[start..].iter().position(|&b| b == 0).unwrap_or(0);
        pos = end + 1;
        let from = state.bytes.len();
        if field_scanned(code) {
            m.redacted(&frame[start..end], &mut state.bytes);
        } else {
            state.bytes.extend_from_slice(&frame[start..end]);
        }
        codes.push(code);
        state.values.push(Some((from, state.bytes.len())));
    }
    let fields: Vec<(u8, &[u8])> = codes
        .iter()
        .zip(state.values.iter())
        .map(|(&c, v)| {
            let (a, b) = v.unwrap_or((0, 0));
            (c, &state.bytes[a..b])
        })
        .collect();
    build::fields_message(out, tag, &fields);
    state.summary.reframed_messages += 1;
    Ok(Outcome::Reframed)
}
