//! Fuzzing entry points for every parser of this crate; each cargo-fuzz
//! target is one call. They check invariants, not just absence of panics.

use std::sync::Arc;

use bytes::BytesMut;

/// The PostgreSQL response scanner, fed the input in two arbitrary pieces:
/// the outcome must not depend on where the input was split.
pub fn pg_response_scanner(data: &[u8]) {
    let split = data.first().copied().unwrap_or(0) as usize % (data.len() + 1);
    let mut whole = crate::pg_client::PgResponseScanner::new(4096);
    let mut whole_outcomes = Vec::new();
    let whole_result = whole.scan(data, &mut |o| whole_outcomes.push(o));
    let mut pieces = crate::pg_client::PgResponseScanner::new(4096);
    let mut piece_outcomes = Vec::new();
    let first = pieces.scan(&data[..split], &mut |o| piece_outcomes.push(o));
    let piece_result =
        first.and_then(|()| pieces.scan(&data[split..], &mut |o| piece_outcomes.push(o)));
    assert_eq!(whole_result.is_ok(), piece_result.is_ok());
    if whole_result.is_ok() {
        assert_eq!(whole_outcomes, piece_outcomes);
    }
}

/// The HTTP response scanner, split the same way.
pub fn http_response_scanner(data: &[u8]) {
    let split = data.first().copied().unwrap_or(0) as usize % (data.len() + 1);
    let mut whole = crate::http_wire::ResponseScanner::new(4096, false);
    let mut whole_statuses = Vec::new();
    let whole_result = whole.scan(data, &mut |s| whole_statuses.push(s));
    let mut pieces = crate::http_wire::ResponseScanner::new(4096, false);
    let mut piece_statuses = Vec::new();
    let first = pieces.scan(&data[..split], &mut |s| piece_statuses.push(s));
    let piece_result =
        first.and_then(|()| pieces.scan(&data[split..], &mut |s| piece_statuses.push(s)));
    assert_eq!(whole_result.is_ok(), piece_result.is_ok());
    if whole_result.is_ok() {
        assert_eq!(whole_statuses, piece_statuses);
    }
}

/// The mock backend's request reader: it must always make progress or stop.
pub fn http_request_reader(data: &[u8]) {
    let mut reader = crate::http_wire::RequestReader::new(4096, 65536);
    let mut rest = data;
    while let Ok((used, request)) = reader.next(rest) {
        assert!(used <= rest.len());
        rest = &rest[used..];
        if used == 0 && request.is_none() {
            break;
        }
    }
}

/// The mock PostgreSQL backend's session: any input yields a bounded
/// answer or a close, never a panic.
pub fn pg_mock_session(data: &[u8]) {
    let result = Arc::new(crate::backend_pg::ResultSet::new(2, 16));
    let mut session = crate::backend_pg::MockSession::new(result, 1);
    let mut input = BytesMut::from(data);
    let mut out = BytesMut::new();
    let mut pieces = Vec::new();
    let _ = session.handle(&mut input, &mut out, &mut pieces);
}

/// URL parsing of both schemes.
pub fn urls(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::pg_url::PgTarget::resolve(Some(text), &|_| None);
        let _ = crate::http_url::HttpUrl::parse(text);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn entry_points_accept_arbitrary_bytes() {
        let samples: [&[u8]; 5] = [
            b"",
            b"Z\x00\x00\x00\x05I",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
            b"GET / HTTP/1.1\r\n\r\n",
            b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
        ];
        for sample in samples {
            super::pg_response_scanner(sample);
            super::http_response_scanner(sample);
            super::http_request_reader(sample);
            super::pg_mock_session(sample);
            super::urls(sample);
        }
    }
}
