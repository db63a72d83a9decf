//! Sans-IO HTTP/1.1 pieces: the request reader of the mock backend, the
//! response scanner of the client, and the chunked-body decoder both use.
//! Bodies are counted and skipped as they stream by, never buffered whole.

use memchr::memmem;

/// Longest chunk-size or trailer line accepted.
pub const CHUNK_LINE_BYTES_MAX: usize = 4096;

/// What is wrong with a request, as the status the backend answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("400 Bad Request: {0}")]
    BadRequest(&'static str),
    #[error("413 Content Too Large: the body exceeds {max} bytes")]
    BodyTooLarge { max: usize },
    #[error("431 Request Header Fields Too Large: the head exceeds {max} bytes")]
    HeadTooLarge { max: usize },
    #[error("501 Not Implemented: transfer-encoding {0:?}")]
    TransferEncoding(String),
    #[error("505 HTTP Version Not Supported")]
    Version,
}

impl HttpError {
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            HttpError::BadRequest(_) => (400, "Bad Request"),
            HttpError::BodyTooLarge { .. } => (413, "Content Too Large"),
            HttpError::HeadTooLarge { .. } => (431, "Request Header Fields Too Large"),
            HttpError::TransferEncoding(_) => (501, "Not Implemented"),
            HttpError::Version => (505, "HTTP Version Not Supported"),
        }
    }
}

/// Streaming decoder of a chunked body (RFC 9112 section 7.1).
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
    line: Vec<u8>,
    /// Body bytes seen so far.
    pub body_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(usize),
    DataEnd,
    Trailer,
    Done,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: ChunkState::Size,
            line: Vec::new(),
            body_bytes: 0,
        }
    }
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Takes one CRLF-terminated line into `self.line`; returns the bytes
    /// consumed and whether the line is complete.
    fn take_line(&mut self, input: &[u8]) -> Result<(usize, bool), &'static str> {
        match memchr::memchr(b'\n', input) {
            Some(end) => {
                self.line.extend_from_slice(&input[..end]);
                if self.line.pop() != Some(b'\r') {
                    return Err("chunked line without CRLF");
                }
                if self.line.len() > CHUNK_LINE_BYTES_MAX {
                    return Err("chunked line too long");
                }
                Ok((end + 1, true))
            }
            None => {
                self.line.extend_from_slice(input);
                if self.line.len() > CHUNK_LINE_BYTES_MAX {
                    return Err("chunked line too long");
                }
                Ok((input.len(), false))
            }
        }
    }

    /// Consumes body bytes; returns how many were part of the body (the
    /// rest of `input` belongs to the next message).
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, &'static str> {
        let mut used = 0;
        while used < input.len() && self.state != ChunkState::Done {
            let rest = &input[used..];
            match self.state {
                ChunkState::Size => {
                    let (n, complete) = self.take_line(rest)?;
                    used += n;
                    if complete {
                        let digits = self.line.split(|b| *b == b';').next().unwrap_or(&[]);
                        let text = std::str::from_utf8(digits)
                            .map_err(|_| "chunk size is not hexadecimal")?
                            .trim();
                        if text.is_empty() || text.len() > 15 {
                            return Err("chunk size is not hexadecimal");
                        }
                        let size = usize::from_str_radix(text, 16)
                            .map_err(|_| "chunk size is not hexadecimal")?;
                        self.line.clear();
                        self.state = if size == 0 {
                            ChunkState::Trailer
                        } else {
                            ChunkState::Data(size)
                        };
                    }
                }
                ChunkState::Data(remaining) => {
                    let take = remaining.min(rest.len());
                    used += take;
                    self.body_bytes = self.body_bytes.saturating_add(take);
                    self.state = if take == remaining {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(remaining - take)
                    };
                }
                ChunkState::DataEnd => {
                    let (n, complete) = self.take_line(rest)?;
                    used += n;
                    if complete {
                        if !self.line.is_empty() {
                            return Err("chunk data longer than its size");
                        }
                        self.state = ChunkState::Size;
                    }
                }
                ChunkState::Trailer => {
                    let (n, complete) = self.take_line(rest)?;
                    used += n;
                    if complete {
                        if self.line.is_empty() {
                            self.state = ChunkState::Done;
                        }
                        self.line.clear();
                    }
                }
                ChunkState::Done => {}
            }
        }
        Ok(used)
    }
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(usize),
    Chunked,
}

/// The parts of a head the load generator and the mock backend care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Request method, or empty for a response.
    pub method: String,
    /// Response status, or 0 for a request.
    pub status: u16,
    pub body: BodyKind,
    pub keep_alive: bool,
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses the header lines (everything after the start line), shared by
/// requests and responses.
fn parse_headers(lines: &[u8], http_1_1: bool) -> Result<(BodyKind, bool), HttpError> {
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut keep_alive = http_1_1;
    for line in lines.split(|b| *b == b'\n') {
        if line.is_empty() {
            // What follows the head's final line feed.
            continue;
        }
        let line = line
            .strip_suffix(b"\r")
            .ok_or(HttpError::BadRequest("header line without CRLF"))?;
        if line.is_empty() {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(HttpError::BadRequest("obsolete header line folding"));
        }
        let colon =
            memchr::memchr(b':', line).ok_or(HttpError::BadRequest("header without colon"))?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|b| is_token_byte(*b)) {
            return Err(HttpError::BadRequest("invalid header name"));
        }
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            let text = std::str::from_utf8(value)
                .map_err(|_| HttpError::BadRequest("invalid content-length"))?;
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 18 {
                return Err(HttpError::BadRequest("invalid content-length"));
            }
            let parsed: usize = text
                .parse()
                .map_err(|_| HttpError::BadRequest("invalid content-length"))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(HttpError::BadRequest("conflicting content-length headers"));
            }
            length = Some(parsed);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if value.eq_ignore_ascii_case(b"chunked") {
                chunked = true;
            } else {
                return Err(HttpError::TransferEncoding(
                    String::from_utf8_lossy(value).into_owned(),
                ));
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|b| *b == b',') {
                let option = option.trim_ascii();
                if option.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    if chunked && length.is_some() {
        // Both at once is how requests get smuggled past proxies.
        return Err(HttpError::BadRequest(
            "both content-length and transfer-encoding",
        ));
    }
    let body = match (chunked, length) {
        (true, _) => BodyKind::Chunked,
        (false, Some(0)) | (false, None) => BodyKind::None,
        (false, Some(n)) => BodyKind::Length(n),
    };
    Ok((body, keep_alive))
}

fn http_version(text: &[u8]) -> Result<bool, HttpError> {
    match text {
        b"HTTP/1.1" => Ok(true),
        b"HTTP/1.0" => Ok(false),
        v if v.starts_with(b"HTTP/") => Err(HttpError::Version),
        _ => Err(HttpError::BadRequest("malformed HTTP version")),
    }
}

/// Parses a complete request head (up to and including the blank line).
pub fn parse_request_head(head: &[u8]) -> Result<Head, HttpError> {
    let line_end = memchr::memchr(b'\n', head).ok_or(HttpError::BadRequest("no request line"))?;
    let line = head[..line_end]
        .strip_suffix(b"\r")
        .ok_or(HttpError::BadRequest("request line without CRLF"))?;
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequest("malformed request line"));
    };
    if method.is_empty() || !method.iter().all(|b| is_token_byte(*b)) {
        return Err(HttpError::BadRequest("invalid method"));
    }
    if target.is_empty() || target.iter().any(|b| *b <= b' ' || *b == 0x7f) {
        return Err(HttpError::BadRequest("invalid request target"));
    }
    let http_1_1 = http_version(version)?;
    let (body, keep_alive) = parse_headers(&head[line_end + 1..], http_1_1)?;
    Ok(Head {
        method: String::from_utf8_lossy(method).into_owned(),
        status: 0,
        body,
        keep_alive,
    })
}

/// A request the backend has read completely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestDone {
    pub keep_alive: bool,
    pub head_only: bool,
    pub body_bytes: usize,
}

#[derive(Debug, Clone)]
enum ReadState {
    Head,
    Body {
        head: Head,
        remaining: usize,
        seen: usize,
    },
    Chunked {
        head: Head,
        decoder: ChunkedDecoder,
    },
}

/// The backend's request reader: call [`RequestReader::next`] with the
/// unconsumed input until it consumes nothing.
#[derive(Debug, Clone)]
pub struct RequestReader {
    state: ReadState,
    head_bytes_max: usize,
    body_bytes_max: usize,
}

impl RequestReader {
    pub fn new(head_bytes_max: usize, body_bytes_max: usize) -> RequestReader {
        RequestReader {
            state: ReadState::Head,
            head_bytes_max,
            body_bytes_max,
        }
    }

    /// Consumes from the front of `input`; returns the bytes consumed and
    /// the request completed by them, if any.
    pub fn next(&mut self, input: &[u8]) -> Result<(usize, Option<RequestDone>), HttpError> {
        match &mut self.state {
            ReadState::Head => {
                let Some(end) = memmem::find(input, b"\r\n\r\n") else {
                    if input.len() > self.head_bytes_max {
                        return Err(HttpError::HeadTooLarge {
                            max: self.head_bytes_max,
                        });
                    }
                    return Ok((0, None));
                };
                let head_len = end + 4;
                if head_len > self.head_bytes_max {
                    return Err(HttpError::HeadTooLarge {
                        max: self.head_bytes_max,
                    });
                }
                let head = parse_request_head(&input[..head_len])?;
                match head.body {
                    BodyKind::None => Ok((head_len, Some(done(&head, 0)))),
                    BodyKind::Length(n) if n > self.body_bytes_max => {
                        Err(HttpError::BodyTooLarge {
                            max: self.body_bytes_max,
                        })
                    }
                    BodyKind::Length(n) => {
                        self.state = ReadState::Body {
                            head,
                            remaining: n,
                            seen: 0,
                        };
                        Ok((head_len, None))
                    }
                    BodyKind::Chunked => {
                        self.state = ReadState::Chunked {
                            head,
                            decoder: ChunkedDecoder::default(),
                        };
                        Ok((head_len, None))
                    }
                }
            }
            ReadState::Body {
                head,
                remaining,
                seen,
            } => {
                let take = (*remaining).min(input.len());
                *remaining -= take;
                *seen += take;
                if *remaining == 0 {
                    let finished = done(head, *seen);
                    self.state = ReadState::Head;
                    Ok((take, Some(finished)))
                } else {
                    Ok((take, None))
                }
            }
            ReadState::Chunked { head, decoder } => {
                let used = decoder.feed(input).map_err(HttpError::BadRequest)?;
                if decoder.body_bytes > self.body_bytes_max {
                    return Err(HttpError::BodyTooLarge {
                        max: self.body_bytes_max,
                    });
                }
                if decoder.is_done() {
                    let finished = done(head, decoder.body_bytes);
                    self.state = ReadState::Head;
                    Ok((used, Some(finished)))
                } else {
                    Ok((used, None))
                }
            }
        }
    }
}

fn done(head: &Head, body_bytes: usize) -> RequestDone {
    RequestDone {
        keep_alive: head.keep_alive,
        head_only: head.method == "HEAD",
        body_bytes,
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ResponseError {
    #[error("response head exceeds {max} bytes")]
    HeadTooLarge { max: usize },
    #[error("malformed status line")]
    StatusLine,
    #[error("malformed response headers: {0}")]
    Headers(String),
    #[error("response without Content-Length or chunked encoding cannot be used on a keep-alive connection")]
    UndelimitedBody,
    #[error("malformed chunked body: {0}")]
    Chunked(&'static str),
}

#[derive(Debug, Clone)]
enum ScanState {
    Head,
    Body(usize),
    Chunked(ChunkedDecoder),
}

/// The client's streaming response scanner.
#[derive(Debug, Clone)]
pub struct ResponseScanner {
    state: ScanState,
    head: Vec<u8>,
    status: u16,
    head_bytes_max: usize,
    /// Responses to HEAD carry no body whatever their headers say.
    head_requests: bool,
}

impl ResponseScanner {
    pub fn new(head_bytes_max: usize, head_requests: bool) -> ResponseScanner {
        ResponseScanner {
            state: ScanState::Head,
            head: Vec::new(),
            status: 0,
            head_bytes_max,
            head_requests,
        }
    }

    /// Consumes `input`, calling `done(status)` for each complete response.
    pub fn scan(
        &mut self,
        mut input: &[u8],
        done: &mut dyn FnMut(u16),
    ) -> Result<(), ResponseError> {
        while !input.is_empty() {
            match &mut self.state {
                ScanState::Head => {
                    // The blank line may straddle two reads: search from a
                    // little before the end of what was buffered already.
                    let from = self.head.len().saturating_sub(3);
                    let before = self.head.len();
                    let window = (self.head_bytes_max + 1 - before.min(self.head_bytes_max))
                        .min(input.len());
                    self.head.extend_from_slice(&input[..window]);
                    let Some(end) = memmem::find(&self.head[from..], b"\r\n\r\n") else {
                        if self.head.len() > self.head_bytes_max {
                            return Err(ResponseError::HeadTooLarge {
                                max: self.head_bytes_max,
                            });
                        }
                        input = &input[window..];
                        continue;
                    };
                    let head_len = from + end + 4;
                    if head_len > self.head_bytes_max {
                        return Err(ResponseError::HeadTooLarge {
                            max: self.head_bytes_max,
                        });
                    }
                    input = &input[head_len - before..];
                    let (status, body, delimited) = parse_response_head(&self.head[..head_len])?;
                    self.head.clear();
                    if (100..200).contains(&status) {
                        // Informational: the real response follows.
                        continue;
                    }
                    self.status = status;
                    let body = if self.head_requests || status == 204 || status == 304 {
                        BodyKind::None
                    } else if !delimited {
                        // Read-until-close bodies cannot share a connection.
                        return Err(ResponseError::UndelimitedBody);
                    } else {
                        body
                    };
                    match body {
                        BodyKind::None => done(status),
                        BodyKind::Length(n) => self.state = ScanState::Body(n),
                        BodyKind::Chunked => {
                            self.state = ScanState::Chunked(ChunkedDecoder::default())
                        }
                    }
                }
                ScanState::Body(remaining) => {
                    let take = (*remaining).min(input.len());
                    *remaining -= take;
                    input = &input[take..];
                    if *remaining == 0 {
                        self.state = ScanState::Head;
                        done(self.status);
                    }
                }
                ScanState::Chunked(decoder) => {
                    let used = decoder.feed(input).map_err(ResponseError::Chunked)?;
                    input = &input[used..];
                    if decoder.is_done() {
                        self.state = ScanState::Head;
                        done(self.status);
                    }
                }
            }
        }
        Ok(())
    }
}

fn parse_response_head(head: &[u8]) -> Result<(u16, BodyKind, bool), ResponseError> {
    let line_end = memchr::memchr(b'\n', head).ok_or(ResponseError::StatusLine)?;
    let line = head[..line_end]
        .strip_suffix(b"\r")
        .ok_or(ResponseError::StatusLine)?;
    let mut parts = line.splitn(3, |b| *b == b' ');
    let version = parts.next().ok_or(ResponseError::StatusLine)?;
    let http_1_1 = http_version(version).map_err(|_| ResponseError::StatusLine)?;
    let code = parts.next().ok_or(ResponseError::StatusLine)?;
    if code.len() != 3 || !code.iter().all(|b| b.is_ascii_digit()) {
        return Err(ResponseError::StatusLine);
    }
    let status =
        (code[0] - b'0') as u16 * 100 + (code[1] - b'0') as u16 * 10 + (code[2] - b'0') as u16;
    let (body, _keep_alive) = parse_headers(&head[line_end + 1..], http_1_1)
        .map_err(|e| ResponseError::Headers(e.to_string()))?;
    Ok((status, body, has_length_or_chunked(&head[line_end + 1..])))
}

fn has_length_or_chunked(lines: &[u8]) -> bool {
    lines.split(|b| *b == b'\n').any(|line| {
        let lower = line.to_ascii_lowercase();
        lower.starts_with(b"content-length:") || lower.starts_with(b"transfer-encoding:")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(
        reader: &mut RequestReader,
        input: &[u8],
        step: usize,
    ) -> Result<Vec<RequestDone>, HttpError> {
        let mut pending: Vec<u8> = Vec::new();
        let mut requests = Vec::new();
        for chunk in input.chunks(step) {
            pending.extend_from_slice(chunk);
            loop {
                let (used, request) = reader.next(&pending)?;
                pending.drain(..used);
                if let Some(r) = request {
                    requests.push(r);
                }
                if used == 0 {
                    break;
                }
            }
        }
        Ok(requests)
    }

    #[test]
    fn pipelined_requests_in_any_chunking() {
        let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\
POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
PUT /y HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n\
HEAD /z HTTP/1.0\r\n\r\n";
        for step in [1, 2, 5, 13, input.len()] {
            let mut reader = RequestReader::new(1024, 1024);
            let requests = read_all(&mut reader, input, step).unwrap();
            let summary: Vec<(bool, bool, usize)> = requests
                .iter()
                .map(|r| (r.keep_alive, r.head_only, r.body_bytes))
                .collect();
            assert_eq!(
                summary,
                vec![
                    (true, false, 0),
                    (true, false, 5),
                    (true, false, 5),
                    (false, true, 0)
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn bad_requests_get_the_right_status() {
        let cases: &[(&[u8], u16)] = &[
            (b"GET /\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\n\r\n", 505),
            (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n folded\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n", 413),
            (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                400,
            ),
        ];
        for (input, status) in cases {
            let mut reader = RequestReader::new(1024, 1024);
            let error = read_all(&mut reader, input, input.len()).unwrap_err();
            assert_eq!(
                error.status().0,
                *status,
                "{:?}: {error}",
                String::from_utf8_lossy(input)
            );
        }
        let mut reader = RequestReader::new(1024, 1024);
        let huge = vec![b'a'; 2000];
        assert_eq!(reader.next(&huge).unwrap_err().status().0, 431);
    }

    fn scan_all(
        scanner: &mut ResponseScanner,
        input: &[u8],
        step: usize,
    ) -> Result<Vec<u16>, ResponseError> {
        let mut statuses = Vec::new();
        for chunk in input.chunks(step) {
            scanner.scan(chunk, &mut |s| statuses.push(s))?;
        }
        Ok(statuses)
    }

    #[test]
    fn responses_in_any_chunking() {
        let input = b"HTTP/1.1 100 Continue\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc\
HTTP/1.1 204 No Content\r\n\r\n\
HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbusy\r\n0\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        for step in [1, 3, 7, input.len()] {
            let mut scanner = ResponseScanner::new(1024, false);
            assert_eq!(
                scan_all(&mut scanner, input, step).unwrap(),
                vec![200, 204, 503, 200],
                "step {step}"
            );
        }
    }

    #[test]
    fn bad_responses_are_named() {
        let mut scanner = ResponseScanner::new(64, false);
        assert_eq!(
            scan_all(&mut scanner, &[b'x'; 100], 10),
            Err(ResponseError::HeadTooLarge { max: 64 })
        );
        let mut scanner = ResponseScanner::new(1024, false);
        assert_eq!(
            scan_all(&mut scanner, b"HTTP/1.1 2x0 OK\r\n\r\n", 100),
            Err(ResponseError::StatusLine)
        );
        let mut scanner = ResponseScanner::new(1024, false);
        assert_eq!(
            scan_all(
                &mut scanner,
                b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
                100
            ),
            Err(ResponseError::UndelimitedBody)
        );
        let mut scanner = ResponseScanner::new(1024, false);
        assert!(matches!(
            scan_all(
                &mut scanner,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n",
                100
            ),
            Err(ResponseError::Chunked(_))
        ));
    }
}
