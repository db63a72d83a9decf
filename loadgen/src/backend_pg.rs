//! `sluice-loadgen backend pg`: a PostgreSQL-protocol responder that
//! isolates the cost of a proxy from the cost of a real database.
//!
//! It speaks protocol 3.0 with trust authentication (any user, any
//! database; SSLRequest and GSSENCRequest are declined with `N`), and every
//! statement, simple or extended, returns the same result: one text column
//! `v` and `--rows` rows of `--row-bytes` bytes. Malformed input gets a
//! FATAL ErrorResponse 08P01 and the connection is closed; what the mock
//! does not implement (COPY, function calls) gets ERROR 0A000.

use std::{collections::HashMap, rc::Rc, sync::Arc};

use bytes::{Buf, Bytes, BytesMut};
use monoio::{
    io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt},
    net::{TcpListener, TcpStream},
};
use sluice::protocol::pg::{
    build, next_frame, next_startup_packet, parse_frontend, sqlstate, FieldDescription, FormatCode,
    FrontendMessage, Severity, StartupPacket, TargetKind, TransactionStatus,
};

use crate::{cli::PgBackendSettings, runtime};

/// Largest frontend message accepted.
pub const MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Named prepared statements kept per connection.
pub const PREPARED_STATEMENTS_MAX: usize = 10_000;
/// Result rows are streamed in blocks of about this many bytes.
const ROW_BLOCK_BYTES: usize = 64 * 1024;
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// The fixed result every statement returns, prebuilt once.
pub struct ResultSet {
    row_description: Bytes,
    /// As many DataRows as fit in ROW_BLOCK_BYTES (at least one).
    block: Bytes,
    rows_per_block: u64,
    row_wire_bytes: usize,
    rows: u64,
    command_complete: Bytes,
}

impl ResultSet {
    pub fn new(rows: u64, row_bytes: usize) -> ResultSet {
        let mut out = BytesMut::new();
        build::row_description(
            &mut out,
            &[FieldDescription {
                name: b"v",
                table_oid: 0,
                column_attribute: 0,
                type_oid: 25,
                type_size: -1,
                type_modifier: -1,
                format: FormatCode::Text,
            }],
        );
        let row_description = out.split().freeze();
        let value = vec![b'x'; row_bytes];
        build::data_row(&mut out, &[Some(&value)]);
        let row_wire_bytes = out.len();
        let rows_per_block = (ROW_BLOCK_BYTES / row_wire_bytes).max(1) as u64;
        let one = out.split().freeze();
        for _ in 0..rows_per_block.min(rows.max(1)) {
            out.extend_from_slice(&one);
        }
        let block = out.split().freeze();
        build::command_complete(&mut out, format!("SELECT {rows}"));
        ResultSet {
            row_description,
            rows_per_block: block.len() as u64 / row_wire_bytes as u64,
            block,
            row_wire_bytes,
            rows,
            command_complete: out.freeze(),
        }
    }
}

/// What the session asks the I/O loop to write, in order.
#[derive(Debug)]
pub enum Piece {
    Bytes(Bytes),
    /// The same bytes this many times (row blocks of a large result).
    Repeat(Bytes, u64),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Startup,
    Ready,
    /// After an error in an extended-protocol batch: skip to Sync.
    SkipToSync,
}

/// One connection's protocol state, sans-IO.
pub struct MockSession {
    result: Arc<ResultSet>,
    phase: Phase,
    statements: HashMap<Vec<u8>, u16>,
    process_id: u32,
}

fn parameter_count(sql: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(sql);
    crate::pg_client::Statement::parse(&text)
        .parameters_used
        .min(u16::MAX as usize) as u16
}

impl MockSession {
    pub fn new(result: Arc<ResultSet>, process_id: u32) -> MockSession {
        MockSession {
            result,
            phase: Phase::Startup,
            statements: HashMap::new(),
            process_id,
        }
    }

    fn rows(&self, out: &mut BytesMut, pieces: &mut Vec<Piece>) {
        let result = &self.result;
        let small = result.rows * result.row_wire_bytes as u64 <= ROW_BLOCK_BYTES as u64;
        if small {
            let bytes = result.rows as usize * result.row_wire_bytes;
            out.extend_from_slice(&result.block[..bytes]);
        } else {
            pieces.push(Piece::Bytes(out.split().freeze()));
            let full = result.rows / result.rows_per_block;
            let rest = (result.rows % result.rows_per_block) as usize * result.row_wire_bytes;
            pieces.push(Piece::Repeat(result.block.clone(), full));
            out.extend_from_slice(&result.block[..rest]);
        }
        out.extend_from_slice(&result.command_complete);
    }

    fn fatal(out: &mut BytesMut, message: &str) -> Flow {
        build::error_response(
            out,
            Severity::Fatal,
            sqlstate::PROTOCOL_VIOLATION,
            message,
            None,
            None,
        );
        Flow::Close
    }

    fn error(&mut self, out: &mut BytesMut, code: &str, message: &str) {
        build::error_response(out, Severity::Error, code, message, None, None);
        self.phase = Phase::SkipToSync;
    }

    /// Consumes complete messages from `input`, appending the answers.
    pub fn handle(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        pieces: &mut Vec<Piece>,
    ) -> Flow {
        loop {
            if self.phase == Phase::Startup {
                let (packet_len, reply) = match next_startup_packet(input) {
                    Ok(None) => return Flow::Continue,
                    Err(e) => return Self::fatal(out, &format!("invalid startup packet: {e}")),
                    Ok(Some((packet, used))) => (used, self.startup(packet, out)),
                };
                input.advance(packet_len);
                if reply == Flow::Close {
                    return Flow::Close;
                }
                continue;
            }
            let frame = match next_frame(input, MESSAGE_BYTES_MAX) {
                Ok(None) => return Flow::Continue,
                Err(e) => return Self::fatal(out, &format!("invalid message: {e}")),
                Ok(Some(frame)) => frame,
            };
            let length = frame.wire_len();
            let flow = match parse_frontend(frame) {
                Err(e) => Self::fatal(out, &format!("invalid message: {e}")),
                Ok(message) => self.message(message, out, pieces),
            };
            input.advance(length);
            if flow == Flow::Close {
                return Flow::Close;
            }
        }
    }

    fn startup(&mut self, packet: StartupPacket<'_>, out: &mut BytesMut) -> Flow {
        match packet {
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                out.extend_from_slice(b"N");
                Flow::Continue
            }
            StartupPacket::CancelRequest { .. } => Flow::Close,
            StartupPacket::Startup { .. } => {
                build::authentication_ok(out);
                for (name, value) in [
                    ("server_version", "15.0 (sluice-loadgen mock)"),
                    ("server_encoding", "UTF8"),
                    ("client_encoding", "UTF8"),
                    ("DateStyle", "ISO, MDY"),
                    ("TimeZone", "UTC"),
                    ("integer_datetimes", "on"),
                    ("standard_conforming_strings", "on"),
                    ("is_superuser", "off"),
                    ("IntervalStyle", "postgres"),
                    ("application_name", ""),
                ] {
                    build::parameter_status(out, name, value);
                }
                build::backend_key_data(out, self.process_id, &self.process_id.to_be_bytes());
                build::ready_for_query(out, TransactionStatus::Idle);
                self.phase = Phase::Ready;
                Flow::Continue
            }
        }
    }

    fn message(
        &mut self,
        message: FrontendMessage<'_>,
        out: &mut BytesMut,
        pieces: &mut Vec<Piece>,
    ) -> Flow {
        if self.phase == Phase::SkipToSync {
            match message {
                FrontendMessage::Sync => {
                    self.phase = Phase::Ready;
                    build::ready_for_query(out, TransactionStatus::Idle);
                }
                FrontendMessage::Terminate => return Flow::Close,
                _ => {}
            }
            return Flow::Continue;
        }
        match message {
            FrontendMessage::Query { sql } => {
                if sql.iter().all(|b| b.is_ascii_whitespace() || *b == b';') {
                    build::empty_query_response(out);
                } else {
                    out.extend_from_slice(&self.result.row_description);
                    self.rows(out, pieces);
                }
                build::ready_for_query(out, TransactionStatus::Idle);
            }
            FrontendMessage::Parse { statement, sql, .. } => {
                if !statement.is_empty() {
                    if self.statements.len() >= PREPARED_STATEMENTS_MAX
                        && !self.statements.contains_key(statement)
                    {
                        self.error(
                            out,
                            sqlstate::CONFIGURATION_LIMIT_EXCEEDED,
                            &format!("more than {PREPARED_STATEMENTS_MAX} prepared statements"),
                        );
                        return Flow::Continue;
                    }
                    self.statements
                        .insert(statement.to_vec(), parameter_count(sql));
                }
                build::parse_complete(out);
            }
            FrontendMessage::Bind { statement, .. } => {
                if !statement.is_empty() && !self.statements.contains_key(statement) {
                    self.error(
                        out,
                        "26000",
                        &format!(
                            "prepared statement \"{}\" does not exist",
                            String::from_utf8_lossy(statement)
                        ),
                    );
                    return Flow::Continue;
                }
                build::bind_complete(out);
            }
            FrontendMessage::Describe { kind, name } => {
                if kind == TargetKind::Statement {
                    let count = self.statements.get(name).copied().unwrap_or(0);
                    build::parameter_description(out, &vec![25; count as usize]);
                }
                out.extend_from_slice(&self.result.row_description);
            }
            FrontendMessage::Execute { .. } => self.rows(out, pieces),
            FrontendMessage::Close { kind, name } => {
                if kind == TargetKind::Statement {
                    self.statements.remove(name);
                }
                build::close_complete(out);
            }
            FrontendMessage::Sync => build::ready_for_query(out, TransactionStatus::Idle),
            FrontendMessage::Flush => {}
            FrontendMessage::Terminate => return Flow::Close,
            FrontendMessage::CopyData { .. }
            | FrontendMessage::CopyDone
            | FrontendMessage::CopyFail { .. } => {
                // Outside COPY these are ignored, as PostgreSQL does.
            }
            FrontendMessage::FunctionCall { .. } => {
                build::error_response(
                    out,
                    Severity::Error,
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    "the mock backend does not implement function calls",
                    None,
                    None,
                );
                build::ready_for_query(out, TransactionStatus::Idle);
            }
            FrontendMessage::Password { .. } => {
                return Self::fatal(out, "unexpected password message after authentication");
            }
        }
        Flow::Continue
    }
}

/// Serves until the process is killed.
pub fn serve(settings: PgBackendSettings) -> Result<(), String> {
    let (address, listeners) = runtime::bind_listeners(settings.listen, settings.threads)
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    println!("sluice-loadgen backend pg listening on {address}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let result = Arc::new(ResultSet::new(settings.rows, settings.row_bytes));
    let listeners = Arc::new(std::sync::Mutex::new(
        listeners.into_iter().map(Some).collect::<Vec<_>>(),
    ));
    let cpus = settings.cpus.clone();
    runtime::run_on_threads(settings.threads, &cpus, "backend-pg", move |thread| {
        let listener = listeners.lock().ok().and_then(|mut l| l[thread].take());
        let result = result.clone();
        async move {
            let Some(listener) = listener else { return };
            let listener = match TcpListener::from_std(listener) {
                Ok(listener) => listener,
                Err(e) => {
                    eprintln!("sluice-loadgen backend pg: thread {thread}: {e}");
                    return;
                }
            };
            let next_id = Rc::new(std::cell::Cell::new((thread as u32) << 24));
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        next_id.set(next_id.get().wrapping_add(1));
                        let session = MockSession::new(result.clone(), next_id.get());
                        monoio::spawn(serve_connection(stream, session));
                    }
                    Err(e) => {
                        eprintln!("sluice-loadgen backend pg: accept: {e}");
                        monoio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
        }
    })?;
    Ok(())
}

async fn write_pieces(stream: &mut TcpStream, pieces: &mut Vec<Piece>) -> bool {
    for piece in pieces.drain(..) {
        match piece {
            Piece::Bytes(bytes) => {
                if bytes.is_empty() {
                    continue;
                }
                if stream.write_all(bytes).await.0.is_err() {
                    return false;
                }
            }
            Piece::Repeat(bytes, count) => {
                for _ in 0..count {
                    if stream.write_all(bytes.clone()).await.0.is_err() {
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// Appends what the peer sends next to `input`, keeping at least a quarter
/// of the read size free. False at end of stream or on a read error: the
/// mock backends then simply close the connection. Shared by both mocks.
pub(crate) async fn read_more(stream: &mut TcpStream, input: &mut BytesMut) -> bool {
    if input.capacity() - input.len() < READ_BUFFER_BYTES / 4 {
        input.reserve(READ_BUFFER_BYTES);
    }
    let owned = std::mem::take(input);
    let start = owned.len();
    let end = owned.capacity();
    let (result, slice) = stream
        .read(monoio::buf::IoBufMut::slice_mut(owned, start..end))
        .await;
    *input = slice.into_inner();
    matches!(result, Ok(n) if n > 0)
}

async fn serve_connection(mut stream: TcpStream, mut session: MockSession) {
    let mut input = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let mut out = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let mut pieces = Vec::new();
    loop {
        let flow = session.handle(&mut input, &mut out, &mut pieces);
        if !out.is_empty() {
            pieces.push(Piece::Bytes(out.split().freeze()));
        }
        if !write_pieces(&mut stream, &mut pieces).await || flow == Flow::Close {
            let _ = stream.shutdown().await;
            return;
        }
        if !read_more(&mut stream, &mut input).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Outcome;
    use crate::pg_client::PgResponseScanner;

    fn startup() -> BytesMut {
        let mut out = BytesMut::new();
        build::startup_message(&mut out, 3 << 16, &[("user", "u"), ("database", "d")]);
        out
    }

    fn flatten(pieces: Vec<Piece>) -> Vec<u8> {
        let mut all = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Bytes(b) => all.extend_from_slice(&b),
                Piece::Repeat(b, n) => {
                    for _ in 0..n {
                        all.extend_from_slice(&b)
                    }
                }
            }
        }
        all
    }

    fn exchange(session: &mut MockSession, input: &[u8]) -> (Vec<u8>, Flow) {
        let mut input = BytesMut::from(input);
        let mut out = BytesMut::new();
        let mut pieces = Vec::new();
        let flow = session.handle(&mut input, &mut out, &mut pieces);
        pieces.push(Piece::Bytes(out.freeze()));
        (flatten(pieces), flow)
    }

    #[test]
    fn startup_then_simple_and_extended_results() {
        for (rows, row_bytes) in [(1u64, 8usize), (0, 8), (3000, 100), (5, 0)] {
            let mut session = MockSession::new(Arc::new(ResultSet::new(rows, row_bytes)), 7);
            let mut request = BytesMut::new();
            build::ssl_request(&mut request);
            let (answer, _) = exchange(&mut session, &request);
            assert_eq!(answer, b"N");
            let (answer, _) = exchange(&mut session, &startup());
            let mut scanner = PgResponseScanner::new(1024);
            let mut outcomes = Vec::new();
            scanner.scan(&answer, &mut |o| outcomes.push(o)).unwrap();
            assert_eq!(outcomes, vec![Outcome::Success]);
            let mut request = BytesMut::new();
            build::query(&mut request, "select 1");
            build::parse(&mut request, "s1", "select $1", &[]);
            build::sync(&mut request);
            build::bind(&mut request, "", "s1", &[], &[Some(b"1".as_slice())], &[]);
            build::describe(&mut request, TargetKind::Portal, "");
            build::execute(&mut request, "", 0);
            build::sync(&mut request);
            let (answer, flow) = exchange(&mut session, &request);
            assert_eq!(flow, Flow::Continue);
            let rows_seen = sluice::protocol::pg::frames(&answer, 1 << 20)
                .filter(|f| f.as_ref().unwrap().tag == b'D')
                .count();
            assert_eq!(
                rows_seen as u64,
                rows * 2,
                "rows {rows} row_bytes {row_bytes}"
            );
            outcomes.clear();
            scanner.scan(&answer, &mut |o| outcomes.push(o)).unwrap();
            assert_eq!(outcomes, vec![Outcome::Success; 3]);
        }
    }

    #[test]
    fn errors_skip_to_sync_and_garbage_is_fatal() {
        let mut session = MockSession::new(Arc::new(ResultSet::new(1, 1)), 7);
        exchange(&mut session, &startup());
        let mut request = BytesMut::new();
        build::bind(&mut request, "", "missing", &[], &[], &[]);
        build::execute(&mut request, "", 0);
        build::sync(&mut request);
        let (answer, _) = exchange(&mut session, &request);
        let mut scanner = PgResponseScanner::new(1024);
        let mut outcomes = Vec::new();
        scanner.scan(&answer, &mut |o| outcomes.push(o)).unwrap();
        assert_eq!(
            outcomes,
            vec![Outcome::Failure(
                "26000: prepared statement \"missing\" does not exist".into()
            )]
        );
        let (answer, flow) = exchange(&mut session, b"Q\x00\x00\x00\x02");
        assert_eq!(flow, Flow::Close);
        assert_eq!(answer[0], b'E');
        assert!(String::from_utf8_lossy(&answer).contains("08P01"));
        let mut session = MockSession::new(Arc::new(ResultSet::new(1, 1)), 7);
        let (answer, flow) = exchange(&mut session, b"\x00\x00\x00\x08\x00\x09\x00\x00");
        assert_eq!(flow, Flow::Close);
        assert!(String::from_utf8_lossy(&answer).contains("unsupported frontend protocol"));
    }
}
