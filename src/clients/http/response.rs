//! A response head: status, header fields, and how its body is delimited.

use super::{ClientError, Limits};

/// A complete final response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code: three digits, 200 or more.
    pub status: u16,
    /// Reason phrase as sent; empty if absent or not ASCII (obs-text).
    pub reason: String,
    /// Header fields in the order received, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body, transfer coding removed.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the body of a response ends (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body: HEAD, 204, 304 (rule 1).
    None,
    /// `Content-Length` bytes (rule 6).
    Length(u64),
    /// `Transfer-Encoding: chunked` (rule 4).
    Chunked,
    /// Until the server closes (rule 8).
    Close,
}

/// What a complete head says.
#[derive(Debug)]
pub(super) enum Head {
    /// A 1xx interim response, to skip (RFC 9110 §15.2).
    Interim,
    /// The final response, its body still empty.
    Final {
        response: Response,
        framing: Framing,
        /// The connection may carry another request afterwards (RFC 9112 §9.3).
        keep_alive: bool,
    },
}

/// Parses a complete head (as delimited by `HeadScanner`, so every line ends
/// in CRLF and there is no NUL) of the response to a `head_request` or not.
pub(super) fn parse(head: &[u8], limits: &Limits, head_request: bool) -> Result<Head, ClientError> {
    let mut fields = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut parsed = httparse::Response::new(&mut fields);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Err(httparse::Error::TooManyHeaders) => return Err(ClientError::TooManyHeaders),
        Err(httparse::Error::HeaderName | httparse::Error::HeaderValue) => {
            return Err(ClientError::BadHeader);
        }
        _ => return Err(ClientError::BadStatusLine),
    }
    let (Some(minor), Some(status)) = (parsed.version, parsed.code) else {
        return Err(ClientError::BadStatusLine);
    };
    match status {
        0..=99 => return Err(ClientError::BadStatusLine),
        101 => return Err(ClientError::UnexpectedSwitch),
        100..=199 => return Ok(Head::Interim),
        _ => {}
    }
    let mut headers = Vec::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| ClientError::BadHeader)?;
        headers.push((
            h.name.to_owned(),
            value.trim_matches([' ', '\t']).to_owned(),
        ));
    }
    let response = Response {
        status,
        reason: parsed.reason.unwrap_or("").to_owned(),
        headers,
        body: Vec::new(),
    };
    let framing = framing(&response, minor, head_request)?;
    let keep_alive = keep_alive(&response, minor) && framing != Framing::Close;
    Ok(Head::Final {
        response,
        framing,
        keep_alive,
    })
}

/// Every comma-separated element of every `name` field, trimmed, empty ones
/// skipped (RFC 9110 §5.6.1).
fn elements<'r>(r: &'r Response, name: &'r str) -> impl Iterator<Item = &'r str> + 'r {
    r.headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .map(|e| e.trim_matches([' ', '\t']))
        .filter(|e| !e.is_empty())
}

/// RFC 9112 §6.3, in its order.
fn framing(r: &Response, minor: u8, head_request: bool) -> Result<Framing, ClientError> {
    // Rule 1: these end at the head, whatever their fields say.
    if head_request || matches!(r.status, 204 | 304) {
        return Ok(Framing::None);
    }
    let has = |name| r.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let te = has("transfer-encoding");
    let cl = has("content-length");
    // Rule 3: both is what request smuggling and response splitting look
    // like; handled as an error.
    if te && cl {
        return Err(ClientError::LengthWithTransferEncoding);
    }
    if te {
        // §6.1: a Transfer-Encoding in an HTTP/1.0 message is faulty
        // framing; we sent no TE, so the only coding allowed is one
        // `chunked` (§7: applied once, last).
        let mut codings = elements(r, "transfer-encoding");
        let only_chunked = codings
            .next()
            .is_some_and(|c| c.eq_ignore_ascii_case("chunked"))
            && codings.next().is_none();
        if minor == 0 || !only_chunked {
            return Err(ClientError::UnsupportedTransferEncoding);
        }
        return Ok(Framing::Chunked);
    }
    if cl {
        return content_length(r).map(Framing::Length);
    }
    // Rule 8: neither; the body runs until the server closes.
    Ok(Framing::Close)
}

/// Rule 5: every value must be 1*DIGIT and all must be the same number
/// (a list of equal values is accepted, RFC 9110 §8.6).
fn content_length(r: &Response) -> Result<u64, ClientError> {
    let mut found = None;
    for v in r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .flat_map(|(_, v)| v.split(','))
    {
        let v = v.trim_matches([' ', '\t']);
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ClientError::BadContentLength);
        }
        let n: u64 = v.parse().map_err(|_| ClientError::BadContentLength)?;
        if found.is_some_and(|f| f != n) {
            return Err(ClientError::ConflictingContentLength);
        }
        found = Some(n);
    }
    found.ok_or(ClientError::BadContentLength)
}

/// RFC 9112 §9.3: HTTP/1.1 persists unless `close`; HTTP/1.0 only with
/// `keep-alive`.
fn keep_alive(r: &Response, minor: u8) -> bool {
    let has = |token: &str| elements(r, "connection").any(|e| e.eq_ignore_ascii_case(token));
    if has("close") {
        return false;
    }
    minor >= 1 || has("keep-alive")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> Result<Head, ClientError> {
        parse(s.as_bytes(), &Limits::default(), false)
    }

    fn final_of(s: &str) -> (Response, Framing, bool) {
        match head(s) {
            Ok(Head::Final {
                response,
                framing,
                keep_alive,
            }) => (response, framing, keep_alive),
            other => panic!("{s:?}: {other:?}"),
        }
    }

    #[test]
    fn status_headers_and_lookup() {
        let (r, f, k) = final_of(
            "HTTP/1.1 201 Created Now\r\nContent-Type: text/plain\r\nX-A:  1 \r\nx-a: 2\r\n\
             Content-Length: 3\r\n\r\n",
        );
        assert_eq!((r.status, r.reason.as_str()), (201, "Created Now"));
        assert_eq!(r.header("CONTENT-TYPE"), Some("text/plain"));
        assert_eq!(r.header("X-a"), Some("1"));
        assert_eq!(r.header("missing"), None);
        assert_eq!(r.headers.len(), 4);
        assert_eq!((f, k), (Framing::Length(3), true));
    }

    #[test]
    fn framing_rules() {
        let f = |s: &str| {
            head(s).map(|h| match h {
                Head::Final { framing, .. } => Some(framing),
                Head::Interim => None,
            })
        };
        use ClientError::*;
        assert_eq!(f("HTTP/1.1 200 OK\r\n\r\n"), Ok(Some(Framing::Close)));
        assert_eq!(
            f("HTTP/1.1 204 No\r\nContent-Length: 5\r\n\r\n"),
            Ok(Some(Framing::None))
        );
        assert_eq!(
            f("HTTP/1.1 304 NM\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Ok(Some(Framing::None))
        );
        assert_eq!(f("HTTP/1.1 100 Continue\r\n\r\n"), Ok(None));
        assert_eq!(
            f("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"),
            Ok(None)
        );
        assert_eq!(f("HTTP/1.1 101 Switching\r\n\r\n"), Err(UnexpectedSwitch));
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            Ok(Some(Framing::Chunked))
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 007\r\n\r\n"),
            Ok(Some(Framing::Length(7)))
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n"),
            Ok(Some(Framing::Length(5)))
        );
        // Smuggling shapes (RFC 9112 §6.3 rules 3 and 5, §6.1).
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(LengthWithTransferEncoding)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            Err(ConflictingContentLength)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n"),
            Err(ConflictingContentLength)
        );
        for v in ["-1", "+5", "5 5", "0x10", "", "18446744073709551616", "1e3"] {
            let s = format!("HTTP/1.1 200 OK\r\nContent-Length: {v}\r\n\r\n");
            assert_eq!(f(&s), Err(BadContentLength), "{v:?}");
        }
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n"),
            Ok(Some(Framing::Length(u64::MAX)))
        );
        for te in [
            "gzip",
            "gzip, chunked",
            "chunked, chunked",
            "chunked, gzip",
            "identity",
        ] {
            let s = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n");
            assert_eq!(f(&s), Err(UnsupportedTransferEncoding), "{te:?}");
        }
        assert_eq!(
            f(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            Err(UnsupportedTransferEncoding)
        );
        assert_eq!(
            f("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(UnsupportedTransferEncoding)
        );
        // A HEAD response has no body whatever it declares.
        let h = parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
            &Limits::default(),
            true,
        );
        assert!(matches!(
            h,
            Ok(Head::Final {
                framing: Framing::None,
                ..
            })
        ));
    }

    #[test]
    fn keep_alive_rules() {
        let k = |s: &str| final_of(s).2;
        assert!(k("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(!k(
            "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!k(
            "HTTP/1.1 200 OK\r\nConnection: x, close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!k("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(k(
            "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"
        ));
        // Close-delimited bodies end the connection.
        assert!(!k("HTTP/1.1 200 OK\r\n\r\n"));
        assert!(!k("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn syntax_errors() {
        use ClientError::*;
        assert_eq!(head("HTTP/2 200 OK\r\n\r\n").err(), Some(BadStatusLine));
        assert_eq!(head("HTTP/1.1 20 OK\r\n\r\n").err(), Some(BadStatusLine));
        assert_eq!(head("HTTP/1.1 OK\r\n\r\n").err(), Some(BadStatusLine));
        assert_eq!(head("http/1.1 200 OK\r\n\r\n").err(), Some(BadStatusLine));
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n").err(),
            Some(BadHeader)
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\n: 1\r\n\r\n").err(),
            Some(BadHeader)
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nA: 1\r\n folded\r\n\r\n").err(),
            Some(BadHeader)
        );
        assert_eq!(
            parse(
                b"HTTP/1.1 200 OK\r\nA: \xff\r\n\r\n",
                &Limits::default(),
                false
            )
            .err(),
            Some(BadHeader)
        );
        let two = Limits {
            max_headers: 2,
            ..Limits::default()
        };
        let three = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(parse(three, &two, false).err(), Some(TooManyHeaders));
        let two_fields = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
        assert!(parse(two_fields, &two, false).is_ok());
        assert_eq!(head("HTTP/1.1 099 Low\r\n\r\n").err(), Some(BadStatusLine));
        // obs-text in the reason phrase is allowed (RFC 9112 §4); httparse
        // hands the reason out only when it is ASCII.
        let latin1 = parse(
            b"HTTP/1.1 200 Gr\xfcn\r\nContent-Length: 0\r\n\r\n",
            &Limits::default(),
            false,
        );
        assert!(
            matches!(latin1, Ok(Head::Final { ref response, .. }) if response.reason.is_empty())
        );
        let (r, _, _) = final_of("HTTP/1.1 200 Gr\u{fc}n\r\nContent-Length: 0\r\n\r\n");
        assert_eq!((r.status, r.reason.as_str()), (200, ""));
        assert_eq!(
            final_of("HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n")
                .0
                .reason,
            ""
        );
    }
}
