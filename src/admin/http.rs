//! HTTP/1.1 for the admin listener, sans-IO: parsing one bounded request
//! (head by `httparse`, body by Content-Length) and writing responses whose
//! errors always carry a status and a JSON body.

use serde::Deserialize;

/// Bounds on one request, from `[admin]`.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub request_bytes_max: usize,
    pub headers_max: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The credentials of an `Authorization: Bearer` header.
    pub bearer: Option<String>,
    /// Whether an Authorization header was present at all.
    pub authorization_present: bool,
    pub body: Vec<u8>,
}

/// A request that cannot be served, as an HTTP status and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct HttpError {
    pub status: u16,
    pub message: String,
}

impl HttpError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        HttpError {
            status,
            message: message.into(),
        }
    }
}

/// Parses one request from the start of `data`. `Ok(None)`: more bytes are
/// needed (and may arrive within the bounds). On success also returns the
/// number of bytes the request used.
pub fn parse_request(
    data: &[u8],
    limits: RequestLimits,
) -> Result<Option<(Request, usize)>, HttpError> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.headers_max];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(data) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if data.len() >= limits.request_bytes_max {
                return Err(HttpError::new(
                    431,
                    format!(
                        "the request head exceeds admin.request_bytes_max ({} bytes)",
                        limits.request_bytes_max
                    ),
                ));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::new(
                431,
                format!(
                    "more than admin.headers_max ({}) header fields",
                    limits.headers_max
                ),
            ))
        }
        Err(e) => return Err(HttpError::new(400, format!("malformed request: {e}"))),
    };
    if request.version != Some(1) {
        return Err(HttpError::new(505, "only HTTP/1.1 is supported"));
    }
    let method = request.method.unwrap_or_default().to_string();
    let path = request.path.unwrap_or_default().to_string();
    let mut content_length: Option<usize> = None;
    let mut bearer = None;
    let mut authorization_present = false;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| HttpError::new(400, "invalid Content-Length"))?;
            if content_length.is_some_and(|existing| existing != value) {
                return Err(HttpError::new(400, "conflicting Content-Length headers"));
            }
            content_length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::new(
                501,
                "Transfer-Encoding is not supported; send Content-Length",
            ));
        } else if header.name.eq_ignore_ascii_case("authorization") {
            if authorization_present {
                return Err(HttpError::new(400, "more than one Authorization header"));
            }
            authorization_present = true;
            let value = std::str::from_utf8(header.value)
                .map_err(|_| HttpError::new(400, "the Authorization header is not UTF-8"))?;
            if let Some((scheme, credentials)) = value.split_once(' ') {
                if scheme.eq_ignore_ascii_case("bearer") && !credentials.trim().is_empty() {
                    bearer = Some(credentials.trim().to_string());
                }
            }
        }
    }
    let body_len = content_length.unwrap_or(0);
    if head_len.saturating_add(body_len) > limits.request_bytes_max {
        return Err(HttpError::new(
            413,
            format!(
                "the request exceeds admin.request_bytes_max ({} bytes)",
                limits.request_bytes_max
            ),
        ));
    }
    if data.len() < head_len + body_len {
        return Ok(None);
    }
    Ok(Some((
        Request {
            method,
            path,
            bearer,
            authorization_present,
            body: data[head_len..head_len + body_len].to_vec(),
        },
        head_len + body_len,
    )))
}

/// The JSON body of `POST .../approve` and `.../deny`. Every field is
/// optional; an empty body is an empty object.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub reason: Option<String>,
    /// Approve only: also allow statements of the same class in the same
    /// session for this many milliseconds.
    pub window_ms: Option<u64>,
}

pub fn parse_decision_body(body: &[u8]) -> Result<DecisionBody, HttpError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecisionBody::default());
    }
    serde_json::from_slice(body).map_err(|e| HttpError::new(400, format!("invalid JSON body: {e}")))
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A complete response with `Connection: close`.
pub fn response(
    status: u16,
    content_type: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
        reason_phrase(status),
        body.len()
    );
    for (name, value) in extra_headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// An error response: the status and `{"error": {"status", "message"}}`.
pub fn error_response(error: &HttpError, extra_headers: &[(&str, &str)]) -> Vec<u8> {
    let body = serde_json::json!({
        "error": { "status": error.status, "message": error.message }
    })
    .to_string();
    response(
        error.status,
        "application/json",
        extra_headers,
        body.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: RequestLimits = RequestLimits {
        request_bytes_max: 1024,
        headers_max: 8,
    };

    #[test]
    fn parses_a_request_with_a_body_and_bearer_token() {
        let raw = b"POST /v1/approvals/ab/approve HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer slt_abc\r\nContent-Length: 15\r\n\r\n{\"reason\":\"ok\"}";
        let (request, used) = parse_request(raw, LIMITS).unwrap().unwrap();
        assert_eq!(used, raw.len());
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/v1/approvals/ab/approve");
        assert_eq!(request.bearer.as_deref(), Some("slt_abc"));
        assert_eq!(
            parse_decision_body(&request.body)
                .unwrap()
                .reason
                .as_deref(),
            Some("ok")
        );
        // Every strict prefix is incomplete, never an error.
        for cut in 0..raw.len() {
            assert_eq!(parse_request(&raw[..cut], LIMITS), Ok(None), "cut {cut}");
        }
    }

    #[test]
    fn bounds_and_malformed_input_get_statuses() {
        let status = |raw: &[u8]| parse_request(raw, LIMITS).unwrap_err().status;
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n"),
            413
        );
        let many: String = (0..9).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            status(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            431
        );
        assert_eq!(status(b"GET / XTTP/1.1\r\n\r\n"), 400);
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(2000));
        assert_eq!(status(long.as_bytes()), 431);
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            501
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET / HTTP/1.0\r\n\r\n"), 505);
        assert_eq!(status(b"G\0T / HTTP/1.1\r\n\r\n"), 400);
    }

    #[test]
    fn decision_bodies() {
        assert_eq!(parse_decision_body(b"").unwrap(), DecisionBody::default());
        assert_eq!(
            parse_decision_body(b"{\"window_ms\": 600000}")
                .unwrap()
                .window_ms,
            Some(600_000)
        );
        assert_eq!(parse_decision_body(b"{\"x\":1}").unwrap_err().status, 400);
        assert_eq!(parse_decision_body(b"{").unwrap_err().status, 400);
        assert_eq!(
            parse_decision_body(b"{\"window_ms\": -5}")
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn error_responses_carry_json() {
        let bytes = error_response(&HttpError::new(404, "no approval \"x\""), &[]);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["status"], 404);
    }
}
