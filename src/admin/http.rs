//! The admin plane's HTTP, sans-IO: the bytes of a request in, the bytes of
//! the answer out. httparse reads the request line and headers; nothing
//! here can panic on what a client sends.
//!
//! One request per connection: every answer says `Connection: close`, which
//! is all a scraper needs and keeps the listener free of keep-alive state.

use std::fmt::Write;

/// The most a request (line and headers) may take. A scrape's request is a
/// few hundred bytes.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Headers a request may carry.
const MAX_HEADERS: usize = 32;

/// What the admin plane serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics`.
    Metrics,
}

/// What a request asks for, once its head is whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// More bytes are needed (and there is room for them).
    Partial,
    Route(Route),
    /// A path that is not served: 404.
    NotFound,
    /// A path served, but not with this method: 405.
    MethodNotAllowed,
    /// Not HTTP, or broken HTTP: 400, with why.
    Malformed(String),
    /// Line and headers longer than `MAX_REQUEST`, or too many headers: 431.
    TooLarge,
}

/// Reads what the client sent so far.
pub fn parse(bytes: &[u8]) -> Request {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Partial) if bytes.len() >= MAX_REQUEST => Request::TooLarge,
        Ok(httparse::Status::Partial) => Request::Partial,
        Ok(httparse::Status::Complete(_)) => {
            // A complete parse always has both; an empty one is no route.
            let method = request.method.unwrap_or("");
            let path = request.path.unwrap_or("");
            let path = path.split_once('?').map_or(path, |(p, _query)| p);
            match path {
                "/metrics" if method == "GET" => Request::Route(Route::Metrics),
                "/metrics" => Request::MethodNotAllowed,
                _ => Request::NotFound,
            }
        }
        Err(httparse::Error::TooManyHeaders) => Request::TooLarge,
        Err(e) => Request::Malformed(e.to_string()),
    }
}

/// A whole HTTP/1.1 answer; the connection closes after it.
pub fn response(status: u16, reason: &str, content_type: &str, body: &str) -> Vec<u8> {
    let mut head = String::with_capacity(160);
    // Writing to a String cannot fail.
    let _ = write!(
        head,
        "HTTP/1.1 {status} {reason}\r\n\
         Content-Type: {content_type}\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    );
    if status == 405 {
        head.push_str("Allow: GET\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// The answer to a request that is not served (`None` for a route or a
/// partial request): a status and a one-line text saying why.
pub fn refusal(request: &Request) -> Option<Vec<u8>> {
    let (status, reason, body) = match request {
        Request::Partial | Request::Route(_) => return None,
        Request::NotFound => (
            404,
            "Not Found",
            "not found: the admin plane serves GET /metrics\n".to_string(),
        ),
        Request::MethodNotAllowed => (
            405,
            "Method Not Allowed",
            "only GET is served here\n".to_string(),
        ),
        Request::Malformed(why) => (400, "Bad Request", format!("bad request: {why}\n")),
        Request::TooLarge => (
            431,
            "Request Header Fields Too Large",
            format!(
                "the request's head must fit in {MAX_REQUEST} bytes and {MAX_HEADERS} headers\n"
            ),
        ),
    };
    Some(response(status, reason, "text/plain; charset=utf-8", &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_once_whole() {
        let get = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n";
        for cut in 0..get.len() {
            assert_eq!(parse(&get[..cut]), Request::Partial, "{cut}");
        }
        assert_eq!(parse(get), Request::Route(Route::Metrics));
        assert_eq!(
            parse(b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n"),
            Request::Route(Route::Metrics)
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(parse(b"GET /metricsx HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(
            parse(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Request::MethodNotAllowed
        );
    }

    #[test]
    fn broken_or_huge_requests_are_refused() {
        assert!(matches!(
            parse(b"\x16\x03\x01\x02\x00\x01\x00"),
            Request::Malformed(_)
        ));
        assert!(matches!(
            parse(b"GET /metrics HTTP/9.9\r\n\r\n"),
            Request::Malformed(_)
        ));
        assert!(matches!(
            parse(b"GET /metrics HTTP/1.1\r\nbad header\r\n\r\n"),
            Request::Malformed(_)
        ));
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_REQUEST));
        assert_eq!(parse(long.as_bytes()), Request::TooLarge);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
        let request = format!("GET /metrics HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse(request.as_bytes()), Request::TooLarge);
    }

    #[test]
    fn every_byte_is_an_answer_or_a_wait_never_a_panic() {
        // A cheap sweep: every single byte, and every byte after a valid
        // request line start.
        for b in 0..=255u8 {
            let _ = parse(&[b]);
            let _ = parse(&[b"GET /metrics HTTP/1.1\r\n".as_slice(), &[b, b'\r', b'\n']].concat());
        }
    }

    #[test]
    fn answers_carry_their_length_and_close() {
        let bytes = response(200, "OK", "text/plain", "hello");
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\
             Connection: close\r\n\r\nhello"
        );
        let not_found = String::from_utf8(refusal(&Request::NotFound).unwrap()).unwrap();
        assert!(
            not_found.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{not_found}"
        );
        let wrong = String::from_utf8(refusal(&Request::MethodNotAllowed).unwrap()).unwrap();
        assert!(wrong.contains("\r\nAllow: GET\r\n"), "{wrong}");
        assert!(refusal(&Request::Partial).is_none());
    }
}
