//! Parsing of `Sec-WebSocket-Extensions` (RFC 6455 §9.1), free of I/O.
//!
//! ```text
//! Sec-WebSocket-Extensions = extension-list
//! extension-list = 1#extension
//! extension = extension-token *( ";" extension-param )
//! extension-param = token [ "=" (token | quoted-string) ]
//! ```
//!
//! A client may send several offers, on one header line or several; they
//! are returned in the order received, which is the client's order of
//! preference (RFC 7692 §5). An element that does not follow the grammar is
//! returned as [`Element::Malformed`] and parsing carries on after the next
//! comma outside a quoted string: one bad offer never hides the others, and
//! the caller decides what declining it means (sprocket declines, it never
//! answers 400 for this header; see `ws::deflate`).

use super::head::is_token;
use std::borrow::Cow;

/// One extension offer: a name and its parameters, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer<'a> {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: &'a str,
    /// Parameters in the order sent, duplicates included.
    pub params: Vec<Param<'a>>,
}

/// One extension parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    /// Parameter name (a token).
    pub name: &'a str,
    /// The value, unquoted and unescaped; `None` when there was no `=`.
    pub value: Option<Cow<'a, str>>,
}

/// One element of the extension list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Element<'a> {
    /// A well-formed offer.
    Offer(Offer<'a>),
    /// An element that breaks the §9.1 grammar, and why.
    Malformed(&'static str),
}

/// Parses every value of the header, in order. Empty list elements (`a,,b`)
/// are skipped, as RFC 9110 §5.6.1 asks of a recipient.
pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Element<'a>> {
    let mut out = Vec::new();
    for value in values {
        let mut p = Parser {
            s: value,
            pos: 0,
            quoted: false,
        };
        loop {
            p.skip_ows();
            match p.peek() {
                None => break,
                Some(b',') => {
                    p.pos += 1;
                    continue;
                }
                Some(_) => {}
            }
            match p.element() {
                Ok(offer) => out.push(Element::Offer(offer)),
                Err(why) => {
                    out.push(Element::Malformed(why));
                    p.skip_element();
                }
            }
        }
    }
    out
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    /// Inside a quoted string (when an error interrupts one).
    quoted: bool,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.s[start..self.pos])
    }

    /// `extension-token *( ";" extension-param )`, up to a comma or the end.
    fn element(&mut self) -> Result<Offer<'a>, &'static str> {
        let name = self.token().ok_or("extension name is not a token")?;
        let mut params = Vec::new();
        loop {
            self.skip_ows();
            match self.peek() {
                None | Some(b',') => return Ok(Offer { name, params }),
                Some(b';') => self.pos += 1,
                Some(_) => return Err("unexpected character after extension or parameter"),
            }
            self.skip_ows();
            let name = self.token().ok_or("parameter name is not a token")?;
            self.skip_ows();
            let value = if self.peek() == Some(b'=') {
                self.pos += 1;
                self.skip_ows();
                Some(self.value()?)
            } else {
                None
            };
            params.push(Param { name, value });
        }
    }

    /// `token | quoted-string`; a quoted value must be a token once
    /// unescaped (RFC 6455 §9.1).
    fn value(&mut self) -> Result<Cow<'a, str>, &'static str> {
        if self.peek() != Some(b'"') {
            return self
                .token()
                .map(Cow::Borrowed)
                .ok_or("parameter value is not a token");
        }
        self.pos += 1;
        self.quoted = true;
        let start = self.pos;
        let mut unescaped: Option<String> = None;
        loop {
            match self.peek() {
                None => return Err("unterminated quoted string"),
                Some(b'"') => break,
                Some(b'\\') => {
                    let owned = unescaped.get_or_insert_with(|| self.s[start..self.pos].to_owned());
                    // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ); the
                    // result must be a token anyway, so only tchars pass.
                    let Some(b) = self.s.as_bytes().get(self.pos + 1).copied() else {
                        return Err("unterminated quoted string");
                    };
                    self.pos += 2;
                    if !is_tchar(b) {
                        return Err("quoted value is not a token");
                    }
                    owned.push(char::from(b));
                }
                Some(b) => {
                    if !is_tchar(b) {
                        return Err("quoted value is not a token");
                    }
                    if let Some(owned) = &mut unescaped {
                        owned.push(char::from(b));
                    }
                    self.pos += 1;
                }
            }
        }
        let raw = &self.s[start..self.pos];
        self.pos += 1; // closing quote
        self.quoted = false;
        let value = unescaped.map_or(Cow::Borrowed(raw), Cow::Owned);
        if is_token(&value) {
            Ok(value)
        } else {
            Err("quoted value is not a token")
        }
    }

    /// After an error: skip to just past the next comma outside quotes.
    fn skip_element(&mut self) {
        let bytes = self.s.as_bytes();
        let mut quoted = std::mem::take(&mut self.quoted);
        while let Some(&b) = bytes.get(self.pos) {
            self.pos += 1;
            match b {
                b'\\' if quoted => self.pos += 1,
                b'"' => quoted = !quoted,
                b',' if !quoted => return,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer<'a>(name: &'a str, params: &[(&'a str, Option<&'a str>)]) -> Element<'a> {
        Element::Offer(Offer {
            name,
            params: params
                .iter()
                .map(|(n, v)| Param {
                    name: n,
                    value: v.map(Cow::Borrowed),
                })
                .collect(),
        })
    }

    #[test]
    fn chromium_offer() {
        assert_eq!(
            parse(["permessage-deflate; client_max_window_bits"]),
            [offer(
                "permessage-deflate",
                &[("client_max_window_bits", None)]
            )]
        );
    }

    #[test]
    fn several_offers_and_lines_keep_their_order() {
        let got = parse([
            "permessage-deflate; server_max_window_bits=10 ; client_no_context_takeover, x-foo",
            "",
            " , permessage-deflate;server_max_window_bits = \"9\"",
        ]);
        assert_eq!(
            got,
            [
                offer(
                    "permessage-deflate",
                    &[
                        ("server_max_window_bits", Some("10")),
                        ("client_no_context_takeover", None)
                    ]
                ),
                offer("x-foo", &[]),
                offer(
                    "permessage-deflate",
                    &[("server_max_window_bits", Some("9"))]
                ),
            ]
        );
    }

    #[test]
    fn quoted_values_are_unescaped() {
        let got = parse([r#"e; a="1\0"; b="""#]);
        assert_eq!(got[0], Element::Malformed("quoted value is not a token"));
        let got = parse([r#"e; a="1\0""#]);
        let Element::Offer(o) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(o.params[0].value.as_deref(), Some("10"));
    }

    #[test]
    fn a_malformed_element_does_not_hide_the_next() {
        let cases: &[(&str, &str)] = &[
            ("; a, ok", "extension name is not a token"),
            ("e; =1, ok", "parameter name is not a token"),
            ("e; a=, ok", "parameter value is not a token"),
            ("e; a=\"x y\", ok", "quoted value is not a token"),
            ("e; a=\"x,y\", ok", "quoted value is not a token"),
            (
                "e a, ok",
                "unexpected character after extension or parameter",
            ),
            (
                "e; a=1 2, ok",
                "unexpected character after extension or parameter",
            ),
        ];
        for (header, why) in cases {
            let got = parse([*header]);
            assert_eq!(got, [Element::Malformed(why), offer("ok", &[])], "{header}");
        }
        assert_eq!(
            parse(["e; a=\"open"]),
            [Element::Malformed("unterminated quoted string")]
        );
        // The comma is inside the (never closed) quotes: nothing follows.
        assert_eq!(
            parse(["e; a=\"open, ok"]),
            [Element::Malformed("quoted value is not a token")]
        );
        // An escaped quote does not close the string: the rest is inside it.
        assert_eq!(
            parse(["e; a=\"x\\\", ok"]),
            [Element::Malformed("quoted value is not a token")]
        );
    }
}
