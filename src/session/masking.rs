//! Masking in the session: the `masking` stage of the upstream → agent
//! direction, between framing and recording.
//!
//! Every chunk of complete backend messages that `upstream_to_client` is
//! about to deliver passes through [`SessionMasking::mask_chunk`] first, so
//! that the ledger records what the agent receives. Values are masked in
//! place in the read buffer (a `BytesMut` not yet frozen): with the default
//! same-length styles nothing is copied. Only a redaction that changes a
//! value's length re-frames its message, and then the chunk is rebuilt once.
//!
//! # Result shapes
//!
//! Which values are scanned follows the result's shape (column types and
//! formats, and the column rules that apply). RowDescription gives it for
//! simple queries and for a Describe of a portal (which libpq, and so psql,
//! pgbench and psycopg, sends before every Execute). A Describe of a
//! *statement* reports text for every column, since formats are chosen
//! later by Bind: the session therefore remembers, from the frontend side,
//! which statement each Describe and each Bind names and the result formats
//! of each Bind ([`SessionMasking::observe_frontend`]), and applies those
//! formats when the Bind's BindComplete arrives for the statement that was
//! described. Drivers that describe a statement once and bind it many
//! times without a Describe (asyncpg, every prepared statement) get the
//! shape the session kept for that statement name, until the statement is
//! parsed again or closed; and a portal keeps its shape for Executes in
//! later batches (asyncpg's cursors: Bind and Sync, then one Execute with a
//! row limit per batch) until it is closed or the transaction ends. Both
//! are bounded by `masking.statement_shapes_max`. Whenever the pairing is
//! not certain (rows without any RowDescription, a Bind of another
//! statement, rows of a portal the shape is not for, responses out of
//! step), the shape is dropped and every value is scanned as text. A
//! shape belongs to one portal (the one described, or the one bound from
//! a described statement) or to a simple Query, and the first row of each
//! Execute's answer is checked against it: rows of another portal (an
//! agent can describe one portal and execute another) never borrow its
//! column formats. An unknown shape costs speed and, for values in
//! binary format, may alter a non-text value whose bytes look like text;
//! column rules cannot find their columns in it either, so under column
//! rules such rows are masked whole (fail closed). Such rows only come
//! from a client that binds a statement it never described, or from a
//! session whose responses fell out of step.
//!
//! # Column rules and table OIDs
//!
//! RowDescription names a column's table by OID. Rules name tables, so a
//! session resolves those names with one catalog query on its own upstream
//! connection right after it is established, before the agent can send
//! anything. Per-session resolution (rather than a per-worker cache) is a
//! deliberate choice: a dropped and re-created table gets a new OID, and a
//! stale cache would silently stop masking it. It costs one round trip per
//! session, only when the agent's profile applies column rules that name
//! tables. If the query fails or times out, the session is refused (fail
//! closed).
//!
//! # The scanner
//!
//! The Hyperscan database is compiled once at start (`config::Config`) and
//! shared read-only; each worker thread lazily creates its own scanner
//! (scratch space) in a thread-local, used only between awaits.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sluice_ledger::RecordBody;

use crate::masking::message::{ColumnAction, ResultShape, RESULT_COLUMNS_MAX};
use crate::masking::setup::{MaskingSetup, SummaryText};
use crate::masking::{
    mask_backend_message, ColumnRule, MaskError, MaskingState, Outcome, Profile, Scanner,
};
use crate::protocol::pg::{
    build, frames, parse_backend, parse_frontend, sqlstate, BackendMessage, FormatCode, Frame,
    FrontendMessage, TargetKind,
};
use crate::transport::{ReadMessageError, TransportReader, TransportWriter};

use super::ErrorSource;

/// Largest message of the catalog query's answer (a row holds an OID and
/// two names).
const CATALOG_MESSAGE_BYTES_MAX: usize = 64 * 1024;
/// Most columns one catalog answer may list (every column of every table
/// the rules name); more means the rules match far more than any sane
/// configuration does.
const CATALOG_ROWS_MAX: usize = 64 * 1024;

/// A failure of the masking stage, tagged with where it came from.
#[derive(Debug)]
pub struct MaskFailure {
    pub source: ErrorSource,
    pub sqlstate: &'static str,
    pub message: String,
}

impl MaskFailure {
    fn new(source: ErrorSource, sqlstate: &'static str, message: impl Into<String>) -> Self {
        MaskFailure {
            source,
            sqlstate,
            message: message.into(),
        }
    }
}

thread_local! {
    /// This worker's scanner. Sessions of a worker run on its thread and
    /// never hold the borrow across an await.
    static SCANNER: RefCell<Option<Scanner>> = const { RefCell::new(None) };
}

fn with_scanner<T>(
    setup: &MaskingSetup,
    f: impl FnOnce(&mut Scanner) -> T,
) -> Result<T, MaskFailure> {
    SCANNER.with(|cell| {
        let mut slot = cell.borrow_mut();
        // A process normally has one engine; tests can start several
        // gateways with different ones on the same thread.
        let current = slot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s.engine(), &setup.engine));
        if !current {
            let scanner = setup.engine.scanner().map_err(|e| {
                MaskFailure::new(
                    ErrorSource::Internal,
                    sqlstate::INTERNAL_ERROR,
                    format!("cannot allocate the masking scanner: {e}"),
                )
            })?;
            *slot = Some(scanner);
        }
        Ok(f(slot.as_mut().expect("set above")))
    })
}

/// The signature that starts a binary COPY file.
const BINARY_COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Masks every field value of binary COPY data in place (letters and
/// digits become `*`), leaving the file header, the field counts, the
/// lengths and the trailer intact. `header_pending` says whether the data
/// starts with the file header (PostgreSQL sends it with the first row),
/// and is cleared once the header is seen. Returns false, having changed
/// nothing, when the data does not hold whole, well-formed tuples.
fn fill_binary_copy_values(data: &mut [u8], header_pending: &mut bool) -> bool {
    let mut pos = 0usize;
    if *header_pending {
        if !data.starts_with(BINARY_COPY_SIGNATURE) {
            return false;
        }
        // Signature, flags field, header extension length, extension.
        pos = BINARY_COPY_SIGNATURE.len() + 4;
        let Some(extension) = data.get(pos..pos + 4) else {
            return false;
        };
        let extension =
            u32::from_be_bytes([extension[0], extension[1], extension[2], extension[3]]);
        pos = match pos.checked_add(4 + extension as usize) {
            Some(end) if end <= data.len() => end,
            _ => return false,
        };
    }
    // First pass: check the framing, collecting the value ranges.
    let mut values: Vec<(usize, usize)> = Vec::new();
    while pos < data.len() {
        let Some(count) = data.get(pos..pos + 2) else {
            return false;
        };
        let count = i16::from_be_bytes([count[0], count[1]]);
        pos += 2;
        if count == -1 {
            // The trailer ends the data.
            if pos != data.len() {
                return false;
            }
            break;
        }
        for _ in 0..count.max(0) {
            let Some(length) = data.get(pos..pos + 4) else {
                return false;
            };
            let length = i32::from_be_bytes([length[0], length[1], length[2], length[3]]);
            pos += 4;
            if length < 0 {
                continue;
            }
            let end = match pos.checked_add(length as usize) {
                Some(end) if end <= data.len() => end,
                _ => return false,
            };
            values.push((pos, end));
            pos = end;
        }
    }
    for (start, end) in values {
        crate::masking::style::fill(&mut data[start..end]);
    }
    *header_pending = false;
    true
}

/// What the session expects back from the server, in order, for the
/// frontend messages that matter to result shapes.
#[derive(Debug)]
enum Pending {
    /// A Describe of this statement: answered by ParameterDescription and
    /// RowDescription (or NoData).
    DescribeStatement(Box<[u8]>),
    /// A Describe of this portal: answered by RowDescription or NoData.
    DescribePortal(Box<[u8]>),
    /// `count` Binds in a row of this portal and statement with these
    /// result formats (None when the Bind listed more codes than a result
    /// can have columns). A pipelined executemany binds the same statement
    /// once per row: it costs one entry.
    Bind {
        portal: Box<[u8]>,
        statement: Box<[u8]>,
        formats: Option<Vec<FormatCode>>,
        count: u32,
    },
    /// Sync, Query or FunctionCall: answered by one ReadyForQuery, before
    /// which the server skips what an error left unanswered.
    ReadyForQuery,
}

/// Executes in flight, in order, with the batch boundaries between them
/// (kept apart from [`Pending`] and run-length encoded, so that a
/// pipelined executemany of many rows costs one entry).
#[derive(Debug)]
enum InFlight {
    /// `count` Executes of `portal` in a row.
    Execute { portal: Box<[u8]>, count: u32 },
    /// `count` Syncs, Queries or FunctionCalls in a row.
    Barrier { count: u32 },
}

/// Whose rows the current result shape describes.
#[derive(Debug, PartialEq, Eq)]
enum ShapeOwner {
    /// The statement of a simple Query (its RowDescription comes with it).
    Query,
    /// This portal (described, or bound from a described statement).
    Portal(Box<[u8]>),
}

/// One session's masking: profile, resolved rules, result-shape tracking
/// and the running summary.
pub struct SessionMasking {
    setup: Arc<MaskingSetup>,
    profile: Profile,
    rules: Vec<ColumnRule>,
    state: MaskingState,
    out: BytesMut,
    pending: VecDeque<Pending>,
    pending_max: usize,
    /// The statement whose Describe was answered last (ParameterDescription
    /// seen), while its RowDescription is the current shape.
    described: Option<Box<[u8]>>,
    /// The previous backend message was a ParameterDescription.
    after_parameter_description: bool,
    /// Whose rows the current shape describes (None: not known, and the
    /// shape is not used for rows).
    shape_owner: Option<ShapeOwner>,
    /// The rows now arriving were checked against `shape_owner`.
    rows_owner_checked: bool,
    summary: SummaryText,
    server_message_bytes_max: usize,
    /// A COPY TO STDOUT in progress, and whether it is binary.
    copy_out: Option<FormatCode>,
    /// A binary COPY TO STDOUT whose file header has not been seen yet.
    copy_header_pending: bool,
    /// The shape of each described prepared statement (formats as the
    /// Describe reported them), for Binds that come without a Describe.
    statement_shapes: HashMap<Box<[u8]>, ResultShape>,
    /// The shape (with the Bind's formats) of each open portal, for the
    /// Executes of later batches that run or continue it.
    portal_shapes: HashMap<Box<[u8]>, ResultShape>,
    shapes_max: usize,
    /// Executes whose responses have not ended yet, and batch boundaries.
    in_flight: VecDeque<InFlight>,
}

impl SessionMasking {
    /// Sets up masking for `agent_profile` (None: the default profile),
    /// resolving the column rules' table names on the upstream connection
    /// when the profile applies column rules.
    pub async fn start(
        setup: &Arc<MaskingSetup>,
        agent_profile: Option<&str>,
        upstream_reader: &mut TransportReader,
        upstream_writer: &TransportWriter,
        upstream_buffer: &mut BytesMut,
        server_message_bytes_max: usize,
    ) -> Result<Self, MaskFailure> {
        let profile = setup.profile(agent_profile);
        let rules = if profile.column_rules && !setup.config.column_rules.is_empty() {
            let tables = setup.rule_tables();
            let oids = if tables.is_empty() {
                Vec::new()
            } else {
                let timeout = Duration::from_millis(setup.config.catalog_timeout_ms);
                match monoio::time::timeout(
                    timeout,
                    resolve_tables(&tables, upstream_reader, upstream_writer, upstream_buffer),
                )
                .await
                {
                    Ok(result) => result?,
                    Err(_) => {
                        return Err(MaskFailure::new(
                            ErrorSource::Upstream,
                            sqlstate::CONNECTION_FAILURE,
                            "resolving the tables of masking column rules took longer than masking.catalog_timeout_ms",
                        ))
                    }
                }
            };
            rules_for(setup, &oids)
        } else {
            Vec::new()
        };
        Ok(Self::new(setup, profile, rules, server_message_bytes_max))
    }

    /// A session's masking with its profile and resolved rules.
    pub fn new(
        setup: &Arc<MaskingSetup>,
        profile: Profile,
        rules: Vec<ColumnRule>,
        server_message_bytes_max: usize,
    ) -> Self {
        SessionMasking {
            setup: setup.clone(),
            profile,
            rules,
            state: MaskingState::default(),
            out: BytesMut::new(),
            pending: VecDeque::new(),
            pending_max: setup.config.pending_binds_max,
            described: None,
            after_parameter_description: false,
            shape_owner: None,
            rows_owner_checked: false,
            summary: SummaryText::default(),
            server_message_bytes_max,
            copy_out: None,
            copy_header_pending: false,
            statement_shapes: HashMap::new(),
            portal_shapes: HashMap::new(),
            shapes_max: setup.config.statement_shapes_max,
            in_flight: VecDeque::new(),
        }
    }

    /// Notes, from the frontend messages about to be forwarded, what the
    /// server will answer that matters to result shapes.
    pub fn observe_frontend(&mut self, outgoing: &[u8]) -> Result<(), MaskFailure> {
        if self.profile.detectors.is_empty() && self.rules.is_empty() {
            return Ok(());
        }
        for frame in frames(outgoing, usize::MAX).flatten() {
            let pending = match frame.tag {
                b'S' | b'Q' | b'F' => {
                    self.note_in_flight(None)?;
                    Pending::ReadyForQuery
                }
                b'B' | b'D' | b'P' | b'C' | b'E' => match parse_frontend(frame) {
                    Ok(FrontendMessage::Bind {
                        portal,
                        statement,
                        result_formats,
                        ..
                    }) => Pending::Bind {
                        portal: portal.into(),
                        statement: statement.into(),
                        formats: (result_formats.len() <= RESULT_COLUMNS_MAX)
                            .then(|| result_formats.iter().collect()),
                        count: 1,
                    },
                    Ok(FrontendMessage::Describe {
                        kind: TargetKind::Statement,
                        name,
                    }) => Pending::DescribeStatement(name.into()),
                    Ok(FrontendMessage::Describe {
                        kind: TargetKind::Portal,
                        name,
                    }) => Pending::DescribePortal(name.into()),
                    // A statement parsed again or closed has no known shape
                    // any more (forgotten early: an unknown shape is
                    // scanned as text, never trusted).
                    Ok(FrontendMessage::Parse { statement, .. }) => {
                        self.statement_shapes.remove(statement);
                        continue;
                    }
                    Ok(FrontendMessage::Close {
                        kind: TargetKind::Statement,
                        name,
                    }) => {
                        self.statement_shapes.remove(name);
                        continue;
                    }
                    Ok(FrontendMessage::Close {
                        kind: TargetKind::Portal,
                        name,
                    }) => {
                        self.portal_shapes.remove(name);
                        continue;
                    }
                    Ok(FrontendMessage::Execute { portal, .. }) => {
                        self.note_in_flight(Some(portal))?;
                        continue;
                    }
                    _ => continue,
                },
                _ => continue,
            };
            if let (
                Some(Pending::Bind {
                    portal,
                    statement,
                    formats,
                    count,
                }),
                Pending::Bind {
                    portal: next_portal,
                    statement: next_statement,
                    formats: next_formats,
                    ..
                },
            ) = (self.pending.back_mut(), &pending)
            {
                if portal == next_portal
                    && statement == next_statement
                    && formats == next_formats
                    && *count < u32::MAX
                {
                    *count += 1;
                    continue;
                }
            }
            if self.pending.len() >= self.pending_max {
                return Err(MaskFailure::new(
                    ErrorSource::Downstream,
                    sqlstate::PROGRAM_LIMIT_EXCEEDED,
                    format!(
                        "more than masking.pending_binds_max ({}) Bind, Describe, Execute and Sync messages await their responses",
                        self.pending_max
                    ),
                ));
            }
            self.pending.push_back(pending);
        }
        Ok(())
    }

    /// Appends an Execute of `portal` (or, for None, a batch boundary) to
    /// the messages in flight, merging it with the last entry when that is
    /// the same.
    fn note_in_flight(&mut self, portal: Option<&[u8]>) -> Result<(), MaskFailure> {
        match (self.in_flight.back_mut(), portal) {
            (
                Some(InFlight::Execute {
                    portal: last,
                    count,
                }),
                Some(portal),
            ) if &**last == portal && *count < u32::MAX => {
                *count += 1;
                return Ok(());
            }
            (Some(InFlight::Barrier { count }), None) if *count < u32::MAX => {
                *count += 1;
                return Ok(());
            }
            _ => {}
        }
        if self.in_flight.len() >= self.pending_max {
            return Err(MaskFailure::new(
                ErrorSource::Downstream,
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "more than masking.pending_binds_max ({}) Execute and Sync messages await their responses",
                    self.pending_max
                ),
            ));
        }
        self.in_flight.push_back(match portal {
            Some(portal) => InFlight::Execute {
                portal: portal.into(),
                count: 1,
            },
            None => InFlight::Barrier { count: 1 },
        });
        Ok(())
    }

    /// One Execute's response ended (CommandComplete, EmptyQueryResponse
    /// or PortalSuspended). A CommandComplete of a simple Query finds a
    /// batch boundary first and changes nothing.
    fn execute_ended(&mut self) {
        if let Some(InFlight::Execute { count, .. }) = self.in_flight.front_mut() {
            *count -= 1;
            if *count == 0 {
                self.in_flight.pop_front();
            }
        }
    }

    /// ReadyForQuery: everything up to the oldest batch boundary is
    /// answered (or was skipped by the server after an error).
    fn batch_ended(&mut self) {
        while let Some(entry) = self.in_flight.front_mut() {
            if let InFlight::Barrier { count } = entry {
                *count -= 1;
                if *count == 0 {
                    self.in_flight.pop_front();
                }
                return;
            }
            self.in_flight.pop_front();
        }
    }

    fn shapes_full(&self) -> MaskFailure {
        MaskFailure::new(
            ErrorSource::Downstream,
            sqlstate::PROGRAM_LIMIT_EXCEEDED,
            format!(
                "more than masking.statement_shapes_max ({}) described prepared statements or open portals",
                self.shapes_max
            ),
        )
    }

    /// Masks the startup messages relayed to the agent (ParameterStatus
    /// values and any NoticeResponse).
    pub fn mask_startup(&mut self, relay: BytesMut) -> Result<BytesMut, MaskFailure> {
        self.mask_chunk(relay)
    }

    /// Masks a chunk of complete, already framed backend messages. Returns
    /// the chunk itself (masked in place) unless a message was re-framed.
    pub fn mask_chunk(&mut self, mut chunk: BytesMut) -> Result<BytesMut, MaskFailure> {
        if self.profile.detectors.is_empty() && self.rules.is_empty() {
            // A profile that masks nothing (e.g. "none") costs nothing.
            return Ok(chunk);
        }
        let mut rebuilt: Option<BytesMut> = None;
        let mut copied_to = 0usize;
        let mut pos = 0usize;
        while pos + 5 <= chunk.len() {
            let declared = u32::from_be_bytes([
                chunk[pos + 1],
                chunk[pos + 2],
                chunk[pos + 3],
                chunk[pos + 4],
            ]) as usize;
            let end = pos + 1 + declared;
            if declared < 4 || end > chunk.len() {
                return Err(MaskFailure::new(
                    ErrorSource::Internal,
                    sqlstate::INTERNAL_ERROR,
                    "masking was handed an incomplete backend message",
                ));
            }
            let tag = chunk[pos];
            self.track_before(tag, &chunk[pos..end])?;
            match tag {
                b'E' | b'N' => {
                    if tag == b'E' {
                        self.copy_out = None;
                    }
                    if !self.rules.is_empty() {
                        self.mask_ruled_table_detail(&mut chunk[pos..end]);
                    }
                }
                b'S' => self.mask_parameter_status(&mut chunk[pos..end])?,
                b'V' => self.mask_function_result(&mut chunk[pos..end])?,
                b'H' => {
                    self.copy_header_pending = chunk.get(pos + 5) != Some(&0);
                    self.copy_out = Some(match chunk.get(pos + 5) {
                        Some(0) => FormatCode::Text,
                        _ => FormatCode::Binary,
                    })
                }
                b'c' | b'C' | b'Z' => self.copy_out = None,
                b'd' if self.mask_copy_data(&mut chunk[pos + 5..end])? => {
                    pos = end;
                    continue;
                }
                _ => {}
            }
            self.out.clear();
            let outcome = with_scanner(&self.setup, |scanner| {
                mask_backend_message(
                    scanner,
                    &mut chunk[pos..end],
                    &mut self.state,
                    &self.rules,
                    &self.profile,
                    &mut self.out,
                )
            })?
            .map_err(|e| match e {
                MaskError::Parse(e) => MaskFailure::new(
                    ErrorSource::Upstream,
                    sqlstate::PROTOCOL_VIOLATION,
                    format!("invalid message from upstream: {e}"),
                ),
                other => MaskFailure::new(
                    ErrorSource::Internal,
                    sqlstate::INTERNAL_ERROR,
                    format!("masking: {other}"),
                ),
            })?;
            self.track_after(tag)?;
            if outcome == Outcome::Reframed {
                if self.out.len() > self.server_message_bytes_max.saturating_add(1) {
                    return Err(MaskFailure::new(
                        ErrorSource::Internal,
                        sqlstate::PROGRAM_LIMIT_EXCEEDED,
                        format!(
                            "a redacted message of {} bytes would exceed limits.server_message_bytes_max",
                            self.out.len()
                        ),
                    ));
                }
                let r = rebuilt.get_or_insert_with(|| BytesMut::with_capacity(chunk.len()));
                r.extend_from_slice(&chunk[copied_to..pos]);
                r.extend_from_slice(&self.out);
                copied_to = end;
            }
            pos = end;
        }
        Ok(match rebuilt {
            None => chunk,
            Some(mut r) => {
                r.extend_from_slice(&chunk[copied_to..]);
                r
            }
        })
    }

    /// Shape bookkeeping before the message is masked: folds the summary of
    /// a result that ends, and pairs responses with what the agent sent.
    fn track_before(&mut self, tag: u8, message: &[u8]) -> Result<(), MaskFailure> {
        if matches!(tag, b'C' | b'I' | b'Z' | b'E' | b'T' | b's' | b'H') {
            self.fold_summary();
        }
        match tag {
            b't' => {
                // ParameterDescription answers the oldest pending Describe
                // of a statement; anything before it is out of step.
                self.described = None;
                while let Some(p) = self.pending.pop_front() {
                    if let Pending::DescribeStatement(name) = p {
                        self.described = Some(name);
                        break;
                    }
                }
            }
            b'T' => {
                self.rows_owner_checked = false;
                // A RowDescription after a ParameterDescription is a
                // statement's: it belongs to a portal only once a Bind of
                // that statement completes. Otherwise it answers the
                // oldest Describe of a portal, or a simple Query.
                self.shape_owner = if self.after_parameter_description {
                    None
                } else {
                    match self.pending.front() {
                        Some(Pending::DescribePortal(_)) => match self.pending.pop_front() {
                            Some(Pending::DescribePortal(name)) => Some(ShapeOwner::Portal(name)),
                            _ => None,
                        },
                        Some(Pending::ReadyForQuery) => Some(ShapeOwner::Query),
                        _ => None,
                    }
                };
            }
            // NoData answers a Describe of a portal, or (right after a
            // ParameterDescription) of a statement.
            b'n' if !self.after_parameter_description
                && matches!(self.pending.front(), Some(Pending::DescribePortal(_))) =>
            {
                self.pending.pop_front();
            }
            b'D' if !self.rows_owner_checked => {
                self.rows_owner_checked = true;
                // Rows answer the oldest Execute in flight (or a simple
                // Query). A shape that is not that portal's must not be
                // used for its rows: another portal's columns can be binary
                // integers where these rows hold text. The portal's own
                // shape may have been kept since its Bind in an earlier
                // batch or since a suspension (asyncpg's cursors); without
                // one, the rows are scanned as text.
                match self.in_flight.front() {
                    Some(InFlight::Execute { portal, .. }) => {
                        let owned = self.state.shape.is_some()
                            && matches!(&self.shape_owner, Some(ShapeOwner::Portal(owner)) if owner == portal);
                        if !owned {
                            self.state.shape = self.portal_shapes.remove(portal);
                            self.shape_owner = self
                                .state
                                .shape
                                .as_ref()
                                .map(|_| ShapeOwner::Portal(portal.clone()));
                        }
                    }
                    Some(InFlight::Barrier { .. }) => {
                        if self.shape_owner != Some(ShapeOwner::Query) {
                            self.state.shape = None;
                        }
                    }
                    None => self.state.shape = None,
                }
            }
            b'E' => self.rows_owner_checked = false,
            b'2' => {
                self.rows_owner_checked = false;
                let bind = loop {
                    if let Some(Pending::Bind {
                        portal,
                        statement,
                        formats,
                        count,
                    }) = self.pending.front_mut()
                    {
                        if *count > 1 {
                            *count -= 1;
                            break Some((portal.clone(), statement.clone(), formats.clone()));
                        }
                    }
                    match self.pending.pop_front() {
                        Some(Pending::Bind {
                            portal,
                            statement,
                            formats,
                            ..
                        }) => break Some((portal, statement, formats)),
                        Some(Pending::DescribeStatement(_)) => continue,
                        Some(Pending::ReadyForQuery | Pending::DescribePortal(_)) | None => {
                            // Out of step: start afresh at the next Sync.
                            self.pending.clear();
                            break None;
                        }
                    }
                };
                let matches_described = match (&bind, &self.described) {
                    (Some((_, statement, _)), Some(described)) => statement == described,
                    _ => false,
                };
                let portal = bind.as_ref().map(|(portal, _, _)| portal.clone());
                match (bind, &mut self.state.shape) {
                    (Some((portal, _, Some(formats))), Some(shape)) if matches_described => {
                        shape.set_result_formats(&formats);
                        self.shape_owner = Some(ShapeOwner::Portal(portal));
                    }
                    // A statement described in an earlier batch (asyncpg
                    // describes once, then binds without a Describe).
                    (Some((portal, statement, Some(formats))), _) if !matches_described => {
                        self.state.shape = self.statement_shapes.get(&statement).map(|described| {
                            let mut shape = described.clone();
                            shape.set_result_formats(&formats);
                            shape
                        });
                        self.shape_owner = self
                            .state
                            .shape
                            .as_ref()
                            .map(|_| ShapeOwner::Portal(portal));
                    }
                    // A shape that is not this portal's must not be used
                    // for its rows: unknown shapes are scanned as text.
                    _ => {
                        self.state.shape = None;
                        self.shape_owner = None;
                    }
                }
                self.described = None;
                // The portal keeps this shape for Executes in later batches
                // (asyncpg's cursors Bind, Sync, then Execute with a row
                // limit); a portal of unknown shape forgets an older one.
                // Not needed when the portal's Execute is the next answer
                // (Bind and Execute in one batch): a suspension keeps the
                // shape then, and a completed portal needs none.
                let executes_next = matches!(
                    (self.in_flight.front(), &portal),
                    (Some(InFlight::Execute { portal: next, .. }), Some(bound)) if next == bound
                );
                if let Some(portal) = portal {
                    match &self.state.shape {
                        // An older shape of the same portal name is stale
                        // either way.
                        _ if executes_next => {
                            self.portal_shapes.remove(&portal);
                        }
                        Some(shape) => {
                            if self.portal_shapes.len() >= self.shapes_max
                                && !self.portal_shapes.contains_key(&portal)
                            {
                                return Err(self.shapes_full());
                            }
                            self.portal_shapes.insert(portal, shape.clone());
                        }
                        None => {
                            self.portal_shapes.remove(&portal);
                        }
                    }
                }
            }
            b's' => {
                self.rows_owner_checked = false;
                // The portal stays open for the next Execute; the current
                // shape is this portal's (checked at its first row) and no
                // other result's.
                if let (Some(InFlight::Execute { portal, .. }), Some(shape)) =
                    (self.in_flight.front(), self.state.shape.take())
                {
                    if self.portal_shapes.len() >= self.shapes_max
                        && !self.portal_shapes.contains_key(portal)
                    {
                        return Err(self.shapes_full());
                    }
                    self.portal_shapes.insert(portal.clone(), shape);
                }
                self.execute_ended();
            }
            b'C' | b'I' => {
                self.rows_owner_checked = false;
                self.execute_ended();
            }
            b'Z' => {
                // Everything up to the oldest Sync is answered now (or was
                // skipped by the server after an error).
                while let Some(p) = self.pending.pop_front() {
                    if matches!(p, Pending::ReadyForQuery) {
                        break;
                    }
                }
                self.batch_ended();
                self.described = None;
                // Outside a transaction block no portal survives.
                if message.get(5) == Some(&b'I') {
                    self.portal_shapes.clear();
                }
                self.shape_owner = None;
                self.rows_owner_checked = false;
            }
            _ => {}
        }
        Ok(())
    }

    fn track_after(&mut self, tag: u8) -> Result<(), MaskFailure> {
        match (tag, self.after_parameter_description, &self.described) {
            // A RowDescription answering a statement Describe: that
            // statement's shape, for later Binds without a Describe.
            (b'T', true, Some(name)) => {
                if let Some(shape) = &self.state.shape {
                    if self.statement_shapes.len() >= self.shapes_max
                        && !self.statement_shapes.contains_key(name)
                    {
                        return Err(self.shapes_full());
                    }
                    self.statement_shapes.insert(name.clone(), shape.clone());
                }
            }
            (b'n', true, Some(name)) => {
                self.statement_shapes.remove(name);
            }
            // A RowDescription of a portal or simple query carries the real
            // formats; it is not a statement's.
            (b'T', false, _) => self.described = None,
            _ => {}
        }
        self.after_parameter_description = tag == b't';
        if tag != b'D' {
            self.fold_summary();
        }
        Ok(())
    }

    /// COPY TO STDOUT data the message layer cannot mask rightly: returns
    /// true when it was handled here.
    ///
    /// The COPY protocol does not describe columns, so column rules cannot
    /// pick their column out of COPY rows: when the agent's profile has
    /// column rules, COPY data is masked whole (fail closed; a SELECT gets
    /// the precise masking). Binary COPY data is not text as a whole, but
    /// text values sit in it verbatim: its tuples' fields are walked and
    /// scanned with the same-length styles, so that its framing (and the
    /// framing of arrays and records inside fields) stays intact.
    fn mask_copy_data(&mut self, data: &mut [u8]) -> Result<bool, MaskFailure> {
        let Some(format) = self.copy_out else {
            return Ok(false);
        };
        if !self.rules.is_empty() {
            // Binary COPY keeps its framing (file header, field counts and
            // lengths) so that the agent can still read the stream; every
            // value is masked whole. Data that is not well-formed binary
            // COPY is masked whole, framing included.
            if format == FormatCode::Binary
                && fill_binary_copy_values(data, &mut self.copy_header_pending)
            {
                self.state.summary.record_whole(None);
                return Ok(true);
            }
            crate::masking::style::fill(data);
            self.state.summary.record_whole(None);
            return Ok(true);
        }
        if format == FormatCode::Binary && !self.profile.detectors.is_empty() {
            let set = self.profile.detectors;
            let summary = &mut self.state.summary;
            with_scanner(&self.setup, |scanner| {
                crate::masking::message::mask_binary_copy_data(scanner, set, data, summary)
            })?;
            return Ok(true);
        }
        Ok(false)
    }

    /// An error or notice about a row of a table that a column rule
    /// covers echoes that row in its DETAIL (`Failing row contains (...)`
    /// for NOT NULL, CHECK and partition constraints; `Key (...)=(...)`
    /// for unique, foreign-key and exclusion constraints), with nothing
    /// saying which value is which column: the DETAIL is masked whole in
    /// place (fail closed, as COPY data is), unless it is a key violation
    /// whose key has none of the rules' columns. The table comes from the
    /// message's schema and table fields; a rule without a table covers
    /// every table. Other fields are scanned as usual afterwards.
    fn mask_ruled_table_detail(&mut self, message: &mut [u8]) {
        let mut schema: Option<std::ops::Range<usize>> = None;
        let mut table: Option<std::ops::Range<usize>> = None;
        let mut detail: Option<std::ops::Range<usize>> = None;
        let mut pos = 5usize;
        while pos < message.len() && message[pos] != 0 {
            let code = message[pos];
            let start = pos + 1;
            let Some(length) = message[start..].iter().position(|&b| b == 0) else {
                break;
            };
            let range = start..start + length;
            pos = range.end + 1;
            match code {
                b's' => schema = Some(range),
                b't' => table = Some(range),
                b'D' => detail = Some(range),
                _ => {}
            }
        }
        let (Some(table), Some(detail)) = (table, detail) else {
            return;
        };
        let table_name = &message[table];
        let schema_name = schema.map(|r| &message[r]);
        let text = &message[detail.clone()];
        // A key violation names its key's columns before the last `)=(`
        // (values come after it; a value holding `)=(` only lengthens the
        // part searched): the DETAIL is left to content detection when
        // no ruled column is among them. Every other DETAIL is masked.
        let key_columns = text
            .strip_prefix(b"Key (")
            .and_then(|rest| memchr::memmem::rfind(rest, b")=(").map(|at| &rest[..at]));
        let covered = self.setup.config.column_rules.iter().any(|r| {
            let table_matches = match r.table.as_deref() {
                None => true,
                Some(name) => match name.split_once('.') {
                    Some((s, t)) => t.as_bytes() == table_name && schema_name == Some(s.as_bytes()),
                    None => name.as_bytes() == table_name,
                },
            };
            table_matches
                && key_columns
                    .is_none_or(|k| memchr::memmem::find(k, r.column.as_bytes()).is_some())
        });
        if covered {
            crate::masking::style::fill(&mut message[detail]);
            self.state.summary.record_whole(None);
        }
    }

    /// A FunctionCallResponse carries a function's result (the fast-path
    /// FunctionCall): scanned like a text value, whatever its format, with
    /// the same-length styles.
    fn mask_function_result(&mut self, message: &mut [u8]) -> Result<(), MaskFailure> {
        if self.profile.detectors.is_empty() || message.len() < 9 {
            return Ok(());
        }
        let declared = i32::from_be_bytes([message[5], message[6], message[7], message[8]]);
        let Ok(len) = usize::try_from(declared) else {
            return Ok(());
        };
        let Some(value) = message.get_mut(9..9 + len) else {
            return Ok(());
        };
        let set = self.profile.detectors;
        let summary = &mut self.state.summary;
        with_scanner(&self.setup, |scanner| {
            scanner.mask_value(value, set, None, summary)
        })?;
        Ok(())
    }

    /// ParameterStatus values can echo data (`set_config('application_name',
    /// email, false)`): masked in place with the same-length styles.
    fn mask_parameter_status(&mut self, message: &mut [u8]) -> Result<(), MaskFailure> {
        if self.profile.detectors.is_empty() {
            return Ok(());
        }
        let body = &mut message[5..];
        let Some(name_end) = body.iter().position(|&b| b == 0) else {
            return Ok(());
        };
        let value = &mut body[name_end + 1..];
        let value_len = value.iter().position(|&b| b == 0).unwrap_or(value.len());
        let set = self.profile.detectors;
        let summary = &mut self.state.summary;
        with_scanner(&self.setup, |scanner| {
            scanner.mask_value(&mut value[..value_len], set, None, summary)
        })?;
        Ok(())
    }

    /// Moves the per-message summary into the session's, naming columns by
    /// the current result shape.
    fn fold_summary(&mut self) {
        if self.state.summary.is_empty() && self.state.summary.reframed_messages == 0 {
            return;
        }
        let shape = self.state.shape.as_ref();
        self.summary.absorb(&self.setup, &self.state.summary, |c| {
            shape
                .and_then(|s| s.column_name(usize::from(c)))
                .map(|n| String::from_utf8_lossy(n).into_owned())
        });
        self.state.summary.clear();
    }

    /// The ledger record of what this session masked: detector, column and
    /// count, never a value.
    pub fn summary_record(&mut self) -> RecordBody {
        self.fold_summary();
        RecordBody::MaskingSummary {
            values_masked: self.summary.values_masked,
            rules: self.summary.render(&self.profile.name),
        }
    }

    pub fn values_masked(&self) -> u64 {
        self.summary.values_masked + self.state.summary.total()
    }

    pub fn profile_name(&self) -> &str {
        &self.profile.name
    }
}

/// One column of a table named by a column rule, from the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CatalogColumn {
    table_oid: u32,
    schema: String,
    table: String,
    column: String,
    attribute: i16,
}

/// The column rules with their table names replaced by OIDs and their
/// columns by attribute numbers. A name without a schema matches every
/// schema's table of that name; a rule whose table does not exist (yet)
/// is left out, since no result can come from it.
fn rules_for(setup: &MaskingSetup, columns: &[CatalogColumn]) -> Vec<ColumnRule> {
    let mut rules = Vec::new();
    for r in &setup.config.column_rules {
        let action = match r.action.as_deref() {
            Some("null") => ColumnAction::Null,
            _ => ColumnAction::Mask,
        };
        match r.table.as_deref() {
            None => rules.push(ColumnRule {
                table_oid: None,
                column: r.column.clone(),
                column_attribute: None,
                action,
            }),
            Some(table) => {
                let (schema, name) = match table.split_once('.') {
                    Some((s, n)) => (Some(s), n),
                    None => (None, table),
                };
                let mut tables: Vec<u32> = Vec::new();
                for c in columns {
                    if c.table != name || schema.is_some_and(|s| s != c.schema) {
                        continue;
                    }
                    if !tables.contains(&c.table_oid) {
                        tables.push(c.table_oid);
                    }
                    if c.column == r.column {
                        rules.push(ColumnRule {
                            table_oid: Some(c.table_oid),
                            column: r.column.clone(),
                            column_attribute: Some(c.attribute),
                            action,
                        });
                    }
                }
                // A table without the rule's column still gets the rule by
                // name (it masks an alias of that name; nothing leaks).
                for table_oid in tables {
                    if !rules
                        .iter()
                        .any(|x| x.table_oid == Some(table_oid) && x.column == r.column)
                    {
                        rules.push(ColumnRule {
                            table_oid: Some(table_oid),
                            column: r.column.clone(),
                            column_attribute: None,
                            action,
                        });
                    }
                }
            }
        }
    }
    rules
}

/// Runs the catalog query for `tables` on the fresh upstream connection
/// and returns every column of every table of those names (with its
/// table's OID and schema, and its attribute number).
async fn resolve_tables(
    tables: &[&str],
    reader: &mut TransportReader,
    writer: &TransportWriter,
    buffer: &mut BytesMut,
) -> Result<Vec<CatalogColumn>, MaskFailure> {
    let names: Vec<String> = tables
        .iter()
        .map(|t| t.rsplit('.').next().unwrap_or(t))
        // Validated: no quotes, backslashes or control characters.
        .map(|n| format!("'{n}'"))
        .collect();
    // Every column of those tables, not only the rules' columns: column
    // names are not restricted like table names, and so never go into
    // the query text.
    let sql = format!(
        "SELECT c.oid, n.nspname, c.relname, a.attname, a.attnum FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         WHERE c.relname IN ({})",
        names.join(", ")
    );
    let mut out = BytesMut::new();
    build::query(&mut out, sql);
    let upstream = |message: String| {
        MaskFailure::new(
            ErrorSource::Upstream,
            sqlstate::CONNECTION_FAILURE,
            format!("resolving the tables of masking column rules: {message}"),
        )
    };
    writer
        .write(out.freeze())
        .await
        .map_err(|e| upstream(format!("write failed: {e}")))?;
    let mut found = Vec::new();
    let mut failed: Option<String> = None;
    loop {
        let message: Bytes = match reader.read_message(buffer, CATALOG_MESSAGE_BYTES_MAX).await {
            Ok(m) => m,
            Err(ReadMessageError::Closed) => return Err(upstream("the upstream closed".into())),
            Err(e) => return Err(upstream(e.to_string())),
        };
        let frame = Frame {
            tag: message[0],
            body: &message[5..],
        };
        match parse_backend(frame) {
            Ok(BackendMessage::DataRow { values }) => {
                let v: Vec<Option<&[u8]>> = values.collect();
                let text = |i: usize| {
                    v.get(i)
                        .copied()
                        .flatten()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                };
                let (Some(oid), Some(schema), Some(table), Some(column), Some(attribute)) =
                    (text(0), text(1), text(2), text(3), text(4))
                else {
                    return Err(upstream("unexpected catalog row".into()));
                };
                let table_oid: u32 = oid
                    .parse()
                    .map_err(|_| upstream(format!("unexpected OID {oid:?}")))?;
                let attribute: i16 = attribute
                    .parse()
                    .map_err(|_| upstream(format!("unexpected attribute number {attribute:?}")))?;
                if found.len() >= CATALOG_ROWS_MAX {
                    return Err(upstream("too many columns in the rules' tables".into()));
                }
                found.push(CatalogColumn {
                    table_oid,
                    schema,
                    table,
                    column,
                    attribute,
                });
            }
            Ok(BackendMessage::ErrorResponse(fields)) => {
                failed = Some(
                    fields
                        .get(b'M')
                        .map(|m| String::from_utf8_lossy(m).into_owned())
                        .unwrap_or_default(),
                );
            }
            Ok(BackendMessage::ReadyForQuery { .. }) => break,
            Ok(_) => {}
            Err(e) => return Err(upstream(format!("invalid message: {e}"))),
        }
    }
    match failed {
        Some(message) => Err(upstream(format!("the catalog query failed: {message}"))),
        None => Ok(found),
    }
}

/// Fuzzing entry point of the masking stage (`fuzz/fuzz_targets/
/// session_masking.rs`): any sequence of frontend messages observed and of
/// well-framed backend messages masked keeps every backend message one
/// well-framed message of the same type, in the same order, or fails with
/// an upstream protocol error; never a panic.
///
/// The input is split at 0xFF bytes; each piece's first byte chooses a
/// message built from the rest, so that the fuzzer reaches the shape
/// tracking rather than spending its time on framing.
pub fn fuzz_stage(data: &[u8]) {
    use std::sync::OnceLock;

    use crate::protocol::pg::FieldDescription;

    static SETUPS: OnceLock<[Arc<MaskingSetup>; 2]> = OnceLock::new();
    let setups = SETUPS.get_or_init(|| {
        let make = |text: &str| {
            let config: crate::masking::MaskingConfig =
                toml::from_str(text).expect("fuzz config parses");
            Arc::new(MaskingSetup::new(config).expect("fuzz config is valid"))
        };
        [
            make("pending_binds_max = 8"),
            make("styles = { email = \"redact\", card = \"redact\", phone = \"redact\" }"),
        ]
    });
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let setup = &setups[usize::from(control & 1)];
    let rules = if control & 2 != 0 {
        vec![ColumnRule {
            table_oid: Some(7),
            column: "c1".into(),
            // The fuzzer's RowDescriptions give column `ci` attribute i.
            column_attribute: Some(1),
            action: if control & 4 != 0 {
                ColumnAction::Null
            } else {
                ColumnAction::Mask
            },
        }]
    } else {
        Vec::new()
    };
    let profile = if control & 8 != 0 {
        Profile::none()
    } else {
        Profile::all()
    };
    let mut stage = SessionMasking::new(setup, profile, rules, 1 << 20);
    let mut frontend = BytesMut::new();
    let mut backend = BytesMut::new();
    let types = [25u32, 3802, 23, 1043, 114, 20];
    for piece in rest.split(|&b| b == 0xFF).take(64) {
        let Some((&kind, body)) = piece.split_first() else {
            continue;
        };
        let text: Vec<u8> = body
            .iter()
            .map(|&b| if b == 0 { b'0' } else { b })
            .collect();
        match kind % 16 {
            0 => {
                let names: Vec<String> = (0..usize::from(kind >> 4) + 1)
                    .map(|i| format!("c{i}"))
                    .collect();
                let fields: Vec<FieldDescription<'_>> = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| FieldDescription {
                        name: n.as_bytes(),
                        table_oid: 7,
                        column_attribute: i as i16,
                        type_oid: types[(i + usize::from(kind)) % types.len()],
                        type_size: -1,
                        type_modifier: -1,
                        format: if (kind >> (i % 4)) & 1 == 1 {
                            FormatCode::Binary
                        } else {
                            FormatCode::Text
                        },
                    })
                    .collect();
                build::row_description(&mut backend, &fields);
            }
            1 => {
                let values: Vec<Option<&[u8]>> = body
                    .split(|&b| b == 0xFE)
                    .map(|v| (v.first() != Some(&0xFD)).then_some(v))
                    .collect();
                build::data_row(&mut backend, &values);
            }
            2 => build::parameter_description(&mut backend, &[25]),
            3 => build::bind_complete(&mut backend),
            4 => build::ready_for_query(&mut backend, crate::protocol::pg::TransactionStatus::Idle),
            5 => build::command_complete(&mut backend, "SELECT 1"),
            6 => build::copy_out_response(
                &mut backend,
                if kind & 0x10 != 0 {
                    FormatCode::Binary
                } else {
                    FormatCode::Text
                },
                &[],
            ),
            7 => build::copy_data(&mut backend, body),
            8 => build::copy_done(&mut backend),
            9 => build::fields_message(
                &mut backend,
                if kind & 0x10 != 0 { b'E' } else { b'N' },
                &[(b'S', b"ERROR".as_slice()), (b'M', text.as_slice())],
            ),
            10 => build::notification_response(&mut backend, 1, b"c".as_slice(), text.as_slice()),
            11 => build::parameter_status(
                &mut backend,
                "application_name",
                &String::from_utf8_lossy(&text),
            ),
            12 => {
                let formats: Vec<FormatCode> = body
                    .iter()
                    .map(|&b| {
                        if b & 1 == 1 {
                            FormatCode::Binary
                        } else {
                            FormatCode::Text
                        }
                    })
                    .collect();
                build::bind(
                    &mut frontend,
                    if kind & 0x20 != 0 {
                        b"c1".as_slice()
                    } else {
                        b"".as_slice()
                    },
                    if kind & 0x10 != 0 {
                        b"s1".as_slice()
                    } else {
                        b"".as_slice()
                    },
                    &[],
                    &[],
                    &formats,
                );
            }
            13 => build::describe(
                &mut frontend,
                if kind & 0x20 != 0 {
                    TargetKind::Portal
                } else {
                    TargetKind::Statement
                },
                if kind & 0x10 != 0 {
                    b"s1".as_slice()
                } else {
                    b"".as_slice()
                },
            ),
            14 => {
                let name = match (kind >> 6) % 3 {
                    0 => b"c1".as_slice(),
                    1 => b"s1".as_slice(),
                    _ => b"".as_slice(),
                };
                match (kind >> 4) % 4 {
                    0 => build::sync(&mut frontend),
                    1 => build::execute(&mut frontend, name, i32::from(kind >> 7)),
                    2 => build::parse(&mut frontend, name, "SELECT 1", &[]),
                    _ => build::close(
                        &mut frontend,
                        if kind & 0x80 != 0 {
                            TargetKind::Portal
                        } else {
                            TargetKind::Statement
                        },
                        name,
                    ),
                }
            }
            _ => {
                // A raw message of any tag, framed correctly.
                let tag = body.first().copied().unwrap_or(b'D');
                let payload = body.get(1..).unwrap_or_default();
                backend.extend_from_slice(&[tag]);
                backend.extend_from_slice(&((payload.len() + 4) as u32).to_be_bytes());
                backend.extend_from_slice(payload);
            }
        }
    }
    if stage.observe_frontend(&frontend).is_err() {
        return;
    }
    let tags: Vec<u8> = frames(&backend, usize::MAX)
        .map(|f| f.expect("built messages are framed").tag)
        .collect();
    match stage.mask_chunk(backend) {
        Ok(out) => {
            let mut seen = Vec::new();
            for frame in frames(&out, usize::MAX) {
                let frame = frame.expect("masked output stays framed");
                seen.push(frame.tag);
            }
            assert_eq!(seen, tags, "messages lost, added or reordered");
            let consumed: usize = frames(&out, usize::MAX)
                .map(|f| f.map(|f| f.wire_len()).unwrap_or(0))
                .sum();
            assert_eq!(consumed, out.len(), "trailing bytes after masking");
        }
        Err(failure) => assert!(
            matches!(failure.source, ErrorSource::Upstream),
            "internal masking failure: {}",
            failure.message
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic inputs through the fuzz entry point, so that it is
    /// exercised by `cargo test` as well.
    #[test]
    fn stage_keeps_framing_for_generated_sequences() {
        let mut seed = 0x5eed_u64;
        for _ in 0..3000 {
            let mut data = Vec::new();
            let len = 1 + (seed % 300) as usize;
            for _ in 0..len {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let b = (seed >> 33) as u8;
                // Bias towards separators and useful text.
                data.push(match b % 11 {
                    0 => 0xFF,
                    1 => b'@',
                    2 => b'0' + (b % 10),
                    _ => {
                        b"jane.doe@example.com 4111 1111 1111 1111 (212) 555-0199 "
                            [usize::from(b) % 56]
                    }
                });
            }
            fuzz_stage(&data);
        }
    }

    /// One int8 column named `n`, described in text format.
    fn int8_column() -> crate::protocol::pg::FieldDescription<'static> {
        crate::protocol::pg::FieldDescription {
            name: b"n",
            table_oid: 0,
            column_attribute: 0,
            type_oid: 20,
            type_size: 8,
            type_modifier: -1,
            format: FormatCode::Text,
        }
    }

    #[test]
    fn describe_statement_then_bind_applies_formats_only_to_that_statement() {
        let config: crate::masking::MaskingConfig = toml::from_str("").unwrap();
        let setup = Arc::new(MaskingSetup::new(config).unwrap());
        let mut stage = SessionMasking::new(&setup, Profile::all(), Vec::new(), 1 << 20);
        let mut frontend = BytesMut::new();
        build::describe(&mut frontend, TargetKind::Statement, "s1");
        build::bind(&mut frontend, b"", b"s1", &[], &[], &[FormatCode::Binary]);
        build::sync(&mut frontend);
        stage.observe_frontend(&frontend).unwrap();
        let mut backend = BytesMut::new();
        build::parameter_description(&mut backend, &[]);
        build::row_description(&mut backend, &[int8_column()]);
        build::bind_complete(&mut backend);
        stage.mask_chunk(backend).unwrap();
        let shape = stage.state.shape.as_ref().expect("shape kept for s1");
        // int8 in binary (from the Bind) is not scanned.
        assert_eq!(
            shape.plan(0, &Profile::all()),
            crate::masking::ColumnPlan::Skip
        );

        // A Bind of another statement drops the described shape: its rows
        // are scanned as text whatever they are.
        let mut frontend = BytesMut::new();
        build::describe(&mut frontend, TargetKind::Statement, "s1");
        build::bind(&mut frontend, b"", b"s2", &[], &[], &[FormatCode::Binary]);
        build::sync(&mut frontend);
        stage.observe_frontend(&frontend).unwrap();
        let mut backend = BytesMut::new();
        build::ready_for_query(&mut backend, crate::protocol::pg::TransactionStatus::Idle);
        build::parameter_description(&mut backend, &[]);
        build::row_description(&mut backend, &[int8_column()]);
        build::bind_complete(&mut backend);
        stage.mask_chunk(backend).unwrap();
        assert!(stage.state.shape.is_none());
    }

    /// A text column `name` of table 7 (a column rule masks it) and an
    /// int8 column `n`, as a statement Describe reports them (text).
    fn asyncpg_columns() -> [crate::protocol::pg::FieldDescription<'static>; 2] {
        [
            crate::protocol::pg::FieldDescription {
                name: b"name",
                table_oid: 7,
                column_attribute: 1,
                type_oid: 25,
                type_size: -1,
                type_modifier: -1,
                format: FormatCode::Text,
            },
            int8_column(),
        ]
    }

    fn name_rule() -> Vec<ColumnRule> {
        vec![ColumnRule {
            table_oid: Some(7),
            column: "name".into(),
            column_attribute: Some(1),
            action: ColumnAction::Mask,
        }]
    }

    /// One DataRow of ("Jane Doe", int8 spelling "10.0.0.1" in binary),
    /// masked by `stage`; returns the two values as received.
    fn masked_row(stage: &mut SessionMasking, before: impl FnOnce(&mut BytesMut)) -> Vec<Vec<u8>> {
        let mut backend = BytesMut::new();
        before(&mut backend);
        build::data_row(&mut backend, &[Some(b"Jane Doe"), Some(b"10.0.0.1")]);
        let out = stage.mask_chunk(backend).unwrap();
        let row = frames(&out, usize::MAX)
            .flatten()
            .find(|f| f.tag == b'D')
            .expect("a DataRow");
        match parse_backend(row).unwrap() {
            BackendMessage::DataRow { values } => {
                values.map(|v| v.expect("no NULL").to_vec()).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    /// asyncpg prepares a statement with Parse, Describe and Flush, then
    /// binds it (binary results) without a Describe, once per execution,
    /// each in its own Sync batch; cursors Bind a portal and Sync, then
    /// Execute it with a row limit, batch after batch. Every row must get the
    /// statement's shape: the column rule applies and binary non-text
    /// values are left alone.
    #[test]
    fn statements_bound_without_describe_and_portals_executed_later_keep_their_shape() {
        let config: crate::masking::MaskingConfig = toml::from_str("").unwrap();
        let setup = Arc::new(MaskingSetup::new(config).unwrap());
        let mut stage = SessionMasking::new(&setup, Profile::all(), name_rule(), 1 << 20);
        let expected = vec![b"**** ***".to_vec(), b"10.0.0.1".to_vec()];

        let mut frontend = BytesMut::new();
        build::parse(
            &mut frontend,
            "__asyncpg_stmt_1__",
            "SELECT name, n FROM t",
            &[],
        );
        build::describe(&mut frontend, TargetKind::Statement, "__asyncpg_stmt_1__");
        build::flush(&mut frontend);
        stage.observe_frontend(&frontend).unwrap();
        let mut backend = BytesMut::new();
        build::parse_complete(&mut backend);
        build::parameter_description(&mut backend, &[]);
        build::row_description(&mut backend, &asyncpg_columns());
        stage.mask_chunk(backend).unwrap();

        let binary = [FormatCode::Binary, FormatCode::Binary];
        for round in 0..3 {
            let mut frontend = BytesMut::new();
            build::bind(&mut frontend, b"", b"__asyncpg_stmt_1__", &[], &[], &binary);
            build::execute(&mut frontend, b"", 0);
            build::sync(&mut frontend);
            stage.observe_frontend(&frontend).unwrap();
            let row = masked_row(&mut stage, build::bind_complete);
            assert_eq!(row, expected, "execution {round}");
            let mut backend = BytesMut::new();
            build::command_complete(&mut backend, "SELECT 1");
            build::ready_for_query(&mut backend, crate::protocol::pg::TransactionStatus::Idle);
            stage.mask_chunk(backend).unwrap();
        }

        // A cursor: Bind a named portal and Sync; then Execute one row at
        // a time, each in its own batch, inside the transaction. Another
        // portal of unknown shape in between must not lend it its shape.
        let mut frontend = BytesMut::new();
        build::bind(
            &mut frontend,
            b"c1",
            b"__asyncpg_stmt_1__",
            &[],
            &[],
            &binary,
        );
        build::sync(&mut frontend);
        build::bind(&mut frontend, b"c2", b"never described", &[], &[], &binary);
        build::sync(&mut frontend);
        stage.observe_frontend(&frontend).unwrap();
        let mut backend = BytesMut::new();
        build::bind_complete(&mut backend);
        build::ready_for_query(
            &mut backend,
            crate::protocol::pg::TransactionStatus::InTransaction,
        );
        build::bind_complete(&mut backend);
        build::ready_for_query(
            &mut backend,
            crate::protocol::pg::TransactionStatus::InTransaction,
        );
        stage.mask_chunk(backend).unwrap();
        for round in 0..3 {
            let mut frontend = BytesMut::new();
            build::execute(&mut frontend, b"c1", 1);
            build::sync(&mut frontend);
            build::execute(&mut frontend, b"c2", 1);
            build::sync(&mut frontend);
            stage.observe_frontend(&frontend).unwrap();
            assert_eq!(
                masked_row(&mut stage, |_| ()),
                expected,
                "c1, round {round}"
            );
            let mut backend = BytesMut::new();
            build::portal_suspended(&mut backend);
            build::ready_for_query(
                &mut backend,
                crate::protocol::pg::TransactionStatus::InTransaction,
            );
            stage.mask_chunk(backend).unwrap();
            // c2's shape is unknown, so the rule cannot find its column:
            // under column rules such a row is masked whole (fail closed),
            // the name and the int8 alike (the fill keeps punctuation).
            let row = masked_row(&mut stage, |_| ());
            assert_eq!(
                row,
                vec![b"**** ***".to_vec(), b"**.*.*.*".to_vec()],
                "c2, round {round}"
            );
            let mut backend = BytesMut::new();
            build::portal_suspended(&mut backend);
            build::ready_for_query(
                &mut backend,
                crate::protocol::pg::TransactionStatus::InTransaction,
            );
            stage.mask_chunk(backend).unwrap();
        }
        // The transaction ends: no portal survives it.
        let mut backend = BytesMut::new();
        build::ready_for_query(&mut backend, crate::protocol::pg::TransactionStatus::Idle);
        let mut frontend = BytesMut::new();
        build::sync(&mut frontend);
        stage.observe_frontend(&frontend).unwrap();
        stage.mask_chunk(backend).unwrap();
        assert!(stage.portal_shapes.is_empty());
        assert_eq!(stage.statement_shapes.len(), 1);
    }

    /// A portal name bound again, to a statement of unknown shape, with its
    /// Execute in the same batch: the older shape of that name is not used.
    #[test]
    fn a_rebound_portal_forgets_its_older_shape() {
        let config: crate::masking::MaskingConfig = toml::from_str("").unwrap();
        let setup = Arc::new(MaskingSetup::new(config).unwrap());
        let mut stage = SessionMasking::new(&setup, Profile::all(), name_rule(), 1 << 20);
        let binary = [FormatCode::Binary, FormatCode::Binary];
        let mut frontend = BytesMut::new();
        build::describe(&mut frontend, TargetKind::Statement, "known");
        build::bind(&mut frontend, b"c1", b"known", &[], &[], &binary);
        build::sync(&mut frontend);
        stage.observe_frontend(&frontend).unwrap();
        let mut backend = BytesMut::new();
        build::parameter_description(&mut backend, &[]);
        build::row_description(&mut backend, &asyncpg_columns());
        build::bind_complete(&mut backend);
        build::ready_for_query(
            &mut backend,
            crate::protocol::pg::TransactionStatus::InTransaction,
        );
        stage.mask_chunk(backend).unwrap();
        assert_eq!(stage.portal_shapes.len(), 1);

        let mut frontend = BytesMut::new();
        build::bind(&mut frontend, b"c1", b"unknown", &[], &[], &binary);
        build::execute(&mut frontend, b"c1", 0);
        build::sync(&mut frontend);
        stage.observe_frontend(&frontend).unwrap();
        // The older shape would have let the int8 through and masked the
        // name by its rule; with no shape under column rules the whole row
        // is masked.
        let row = masked_row(&mut stage, build::bind_complete);
        assert_eq!(row, vec![b"**** ***".to_vec(), b"**.*.*.*".to_vec()]);
        assert!(stage.portal_shapes.is_empty());
    }

    /// A pipelined executemany (Bind and Execute of one statement per row,
    /// one Sync) costs one pending entry, however many rows it has; Binds
    /// that differ still count one each against the bound.
    #[test]
    fn pipelined_executemany_stays_within_a_small_pending_bound() {
        let config: crate::masking::MaskingConfig =
            toml::from_str("pending_binds_max = 4").unwrap();
        let setup = Arc::new(MaskingSetup::new(config).unwrap());
        let mut stage = SessionMasking::new(&setup, Profile::all(), name_rule(), 1 << 20);
        let mut frontend = BytesMut::new();
        for _ in 0..10_000 {
            build::bind(&mut frontend, b"", b"ins", &[], &[], &[FormatCode::Binary]);
            build::execute(&mut frontend, b"", 0);
        }
        build::sync(&mut frontend);
        stage.observe_frontend(&frontend).unwrap();
        assert_eq!(stage.pending.len(), 2);
        assert_eq!(stage.in_flight.len(), 2);
        let mut backend = BytesMut::new();
        for _ in 0..10_000 {
            build::bind_complete(&mut backend);
            build::command_complete(&mut backend, "INSERT 0 1");
        }
        build::ready_for_query(&mut backend, crate::protocol::pg::TransactionStatus::Idle);
        stage.mask_chunk(backend).unwrap();
        assert!(stage.pending.is_empty() && stage.in_flight.is_empty());

        let mut frontend = BytesMut::new();
        for statement in ["a", "b", "c", "d", "e"] {
            build::bind(&mut frontend, b"", statement, &[], &[], &[]);
        }
        let failure = stage.observe_frontend(&frontend).unwrap_err();
        assert_eq!(failure.sqlstate, sqlstate::PROGRAM_LIMIT_EXCEEDED);
        assert!(failure.message.contains("masking.pending_binds_max"));
    }

    /// Open statement shapes are bounded by masking.statement_shapes_max.
    #[test]
    fn too_many_described_statements_is_refused_as_a_named_bound() {
        let config: crate::masking::MaskingConfig =
            toml::from_str("statement_shapes_max = 2").unwrap();
        let setup = Arc::new(MaskingSetup::new(config).unwrap());
        let mut stage = SessionMasking::new(&setup, Profile::all(), Vec::new(), 1 << 20);
        let mut result = Ok(BytesMut::new());
        for name in ["s1", "s2", "s3"] {
            let mut frontend = BytesMut::new();
            build::describe(&mut frontend, TargetKind::Statement, name);
            build::flush(&mut frontend);
            stage.observe_frontend(&frontend).unwrap();
            let mut backend = BytesMut::new();
            build::parameter_description(&mut backend, &[]);
            build::row_description(&mut backend, &[int8_column()]);
            result = stage.mask_chunk(backend);
        }
        let failure = result.unwrap_err();
        assert_eq!(failure.sqlstate, sqlstate::PROGRAM_LIMIT_EXCEEDED);
        assert!(failure.message.contains("masking.statement_shapes_max"));
        // Closing one makes room again.
        let mut frontend = BytesMut::new();
        build::close(&mut frontend, TargetKind::Statement, "s1");
        build::describe(&mut frontend, TargetKind::Statement, "s4");
        stage.observe_frontend(&frontend).unwrap();
        let mut backend = BytesMut::new();
        build::close_complete(&mut backend);
        build::parameter_description(&mut backend, &[]);
        build::row_description(&mut backend, &[int8_column()]);
        stage.mask_chunk(backend).unwrap();
    }

    /// Binary COPY keeps its framing when column rules mask it whole.
    #[test]
    fn binary_copy_with_column_rules_keeps_its_framing() {
        let mut data = BINARY_COPY_SIGNATURE.to_vec();
        data.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // flags, no extension
        data.extend_from_slice(&2i16.to_be_bytes());
        data.extend_from_slice(&8i32.to_be_bytes());
        data.extend_from_slice(b"Jane Doe");
        data.extend_from_slice(&(-1i32).to_be_bytes());
        let mut pending = true;
        assert!(fill_binary_copy_values(&mut data, &mut pending));
        assert!(!pending);
        assert!(data.starts_with(BINARY_COPY_SIGNATURE));
        assert!(data.ends_with(b"\0\0\0\x08**** ***\xff\xff\xff\xff"));
        let mut trailer = (-1i16).to_be_bytes().to_vec();
        assert!(fill_binary_copy_values(&mut trailer, &mut pending));
        // Truncated or malformed data is refused unchanged (the caller
        // then masks it whole).
        for bad in [
            &b"PGCOPY"[..],
            &[0, 1, 0, 0, 0, 9, b'x'][..],
            &[0xff, 0xff, 0][..],
        ] {
            let mut copy = bad.to_vec();
            let mut pending = bad.starts_with(b"PG");
            assert!(!fill_binary_copy_values(&mut copy, &mut pending));
            assert_eq!(copy, bad);
        }
    }

    #[test]
    fn function_results_and_parameter_statuses_are_masked_in_place() {
        let config: crate::masking::MaskingConfig = toml::from_str("").unwrap();
        let setup = Arc::new(MaskingSetup::new(config).unwrap());
        let mut stage = SessionMasking::new(&setup, Profile::all(), Vec::new(), 1 << 20);
        let mut backend = BytesMut::new();
        build::function_call_response(&mut backend, Some(b"mail jane.doe@example.com"));
        build::parameter_status(&mut backend, "application_name", "jane.doe@example.com");
        let length = backend.len();
        let out = stage.mask_chunk(backend).unwrap();
        assert_eq!(out.len(), length);
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("jane.doe@example.com"), "{text:?}");
        assert!(text.contains("mail ****.***@*******.***"), "{text:?}");
        assert_eq!(stage.values_masked(), 2);
        // The profile "none" leaves both alone.
        let mut stage = SessionMasking::new(&setup, Profile::none(), Vec::new(), 1 << 20);
        let mut backend = BytesMut::new();
        build::function_call_response(&mut backend, Some(b"jane.doe@example.com"));
        let out = stage.mask_chunk(backend).unwrap();
        assert!(String::from_utf8_lossy(&out).contains("jane.doe@example.com"));
    }

    #[test]
    fn too_many_pending_binds_is_refused_as_a_named_bound() {
        let config: crate::masking::MaskingConfig =
            toml::from_str("pending_binds_max = 2").unwrap();
        let setup = Arc::new(MaskingSetup::new(config).unwrap());
        let mut stage = SessionMasking::new(&setup, Profile::all(), Vec::new(), 1 << 20);
        let mut frontend = BytesMut::new();
        for _ in 0..3 {
            build::sync(&mut frontend);
        }
        let failure = stage.observe_frontend(&frontend).unwrap_err();
        assert_eq!(failure.sqlstate, sqlstate::PROGRAM_LIMIT_EXCEEDED);
        assert!(failure.message.contains("masking.pending_binds_max"));
    }
}
