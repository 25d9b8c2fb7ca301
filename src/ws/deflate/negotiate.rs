//! Negotiation of permessage-deflate: RFC 7692 §5 (offers and answers)
//! and §7.1 (the four parameters).

use crate::http::extensions::{Element, Offer};

/// The extension's registered name (§7).
pub const NAME: &str = "permessage-deflate";

/// How the server negotiates and uses permessage-deflate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Accept clients' offers at all.
    pub enabled: bool,
    /// Let the server keep its compression context between messages
    /// (better ratio on small similar messages; ~370 KiB per connection).
    pub server_context_takeover: bool,
    /// Let clients keep theirs (~40 KiB per connection on our side).
    pub client_context_takeover: bool,
    /// Largest LZ77 window the server compresses with (8–15).
    pub server_max_window_bits: u8,
    /// Window asked of clients that allow it (9–15; 8 is not asked for
    /// because zlib cannot compress raw DEFLATE with a 256-byte window).
    pub client_max_window_bits: u8,
    /// Compression level 0–9 for outgoing messages; 0 sends everything
    /// uncompressed (receiving compressed messages still works).
    pub level: u8,
    /// Outgoing messages shorter than this go uncompressed.
    pub min_size: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            enabled: true,
            server_context_takeover: false,
            client_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            level: 1,
            min_size: 64,
        }
    }
}

/// The parameters in force on one connection: the outcome of §7.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// §7.1.1.1: the server resets its context after every message.
    pub server_no_context_takeover: bool,
    /// §7.1.1.2: the client resets its context after every message.
    pub client_no_context_takeover: bool,
    /// §7.1.2.1: the window the server compresses with.
    pub server_max_window_bits: u8,
    /// Whether the response states `server_max_window_bits`.
    announce_server_bits: bool,
    /// §7.1.2.2: the `client_max_window_bits` answered, if any.
    pub client_max_window_bits: Option<u8>,
}

impl Params {
    /// The `Sec-WebSocket-Extensions` value of the 101 response.
    pub fn response(&self) -> String {
        let mut s = String::from(NAME);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.announce_server_bits {
            s.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        if let Some(bits) = self.client_max_window_bits {
            s.push_str(&format!("; client_max_window_bits={bits}"));
        }
        s
    }
}

/// What one permessage-deflate offer asks for, once validated.
#[derive(Default)]
struct Asked {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: the parameter without a value.
    client_max_window_bits: Option<Option<u8>>,
}

/// §7.1.2.1 / §7.1.2.2: "a decimal integer value without leading zeroes
/// between 8 to 15, inclusive".
fn window_bits(value: &str) -> Option<u8> {
    if value.len() > 2 || value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|b| (8..=15).contains(b))
}

/// Applies §7's rules for declining to one offer.
fn check(offer: &Offer<'_>) -> Result<Asked, &'static str> {
    let mut asked = Asked::default();
    let mut seen = [false; 4];
    for p in &offer.params {
        let slot = match p.name {
            "server_no_context_takeover" => 0,
            "client_no_context_takeover" => 1,
            "server_max_window_bits" => 2,
            "client_max_window_bits" => 3,
            // §7: "an extension parameter not defined for use in an offer".
            _ => return Err("unknown parameter"),
        };
        // §7: "multiple extension parameters with the same name".
        if std::mem::replace(&mut seen[slot], true) {
            return Err("repeated parameter");
        }
        let value = p.value.as_deref();
        match (slot, value) {
            // §7.1.1.1 / §7.1.1.2: "This extension parameter has no value."
            (0, None) => asked.server_no_context_takeover = true,
            (1, None) => asked.client_no_context_takeover = true,
            (0 | 1, Some(_)) => return Err("context takeover parameter with a value"),
            // §7.1.2.1: server_max_window_bits always has a value.
            (2, Some(v)) => {
                asked.server_max_window_bits =
                    Some(window_bits(v).ok_or("invalid server_max_window_bits")?);
            }
            (2, None) => return Err("server_max_window_bits without a value"),
            // §7.1.2.2: client_max_window_bits may come without one.
            (_, v) => {
                let bits = v
                    .map(|v| window_bits(v).ok_or("invalid client_max_window_bits"))
                    .transpose()?;
                asked.client_max_window_bits = Some(bits);
            }
        }
    }
    Ok(asked)
}

/// Accepts the first acceptable permessage-deflate offer (§5: the client
/// lists offers in its order of preference). Returns the parameters in
/// force, if any, and why each offer before it was declined.
pub fn negotiate(
    cfg: &DeflateConfig,
    elements: &[Element<'_>],
) -> (Option<Params>, Vec<&'static str>) {
    let mut declined = Vec::new();
    if !cfg.enabled {
        return (None, declined);
    }
    for element in elements {
        let offer = match element {
            Element::Offer(o) if o.name == NAME => o,
            // Another extension: not ours to accept.
            Element::Offer(_) => continue,
            Element::Malformed(why) => {
                declined.push(*why);
                continue;
            }
        };
        match check(offer) {
            Ok(asked) => return (Some(accept(cfg, &asked)), declined),
            Err(why) => declined.push(why),
        }
    }
    (None, declined)
}

fn accept(cfg: &DeflateConfig, asked: &Asked) -> Params {
    let ours = cfg.server_max_window_bits.clamp(8, 15);
    // §7.1.2.1: answer "with the same or smaller value as the offer"; a
    // server "MAY include" it unasked, which tells the client it can keep
    // a smaller window.
    let server_bits = asked.server_max_window_bits.map_or(ours, |b| b.min(ours));
    // §7.1.2.2: only if offered; "equal to or smaller than the received
    // value". Our inflater always keeps a 32 KiB window, so a smaller one
    // only spares the client's memory; say nothing when it would be 15.
    let client_bits = asked.client_max_window_bits.and_then(|v| {
        let bits = v.unwrap_or(15).min(cfg.client_max_window_bits.clamp(9, 15));
        (bits < 15).then_some(bits)
    });
    Params {
        // §7.1.1.1: if offered, the response MUST include it; the server
        // MAY include it anyway.
        server_no_context_takeover: asked.server_no_context_takeover
            || !cfg.server_context_takeover,
        // §7.1.1.2: the server MAY include it; a client that offered it
        // said it would not keep its context anyway, so take it at its word.
        client_no_context_takeover: asked.client_no_context_takeover
            || !cfg.client_context_takeover,
        server_max_window_bits: server_bits,
        announce_server_bits: asked.server_max_window_bits.is_some() || server_bits < 15,
        client_max_window_bits: client_bits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::extensions;

    fn answer(cfg: &DeflateConfig, header: &str) -> (Option<String>, Vec<&'static str>) {
        let elements = extensions::parse([header]);
        let (params, declined) = negotiate(cfg, &elements);
        (params.map(|p| p.response()), declined)
    }

    #[test]
    fn negotiation_answers() {
        let d = DeflateConfig::default();
        let both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        let cases: &[(&str, Option<String>)] = &[
            ("permessage-deflate", Some(both.into())),
            (
                "permessage-deflate; client_max_window_bits",
                Some(both.into()),
            ),
            (
                "permessage-deflate; server_max_window_bits=10",
                Some(format!("{both}; server_max_window_bits=10")),
            ),
            (
                "permessage-deflate; server_max_window_bits=\"8\"",
                Some(format!("{both}; server_max_window_bits=8")),
            ),
            (
                "permessage-deflate; client_max_window_bits=9",
                Some(format!("{both}; client_max_window_bits=9")),
            ),
            ("x-webkit-deflate-frame", None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(&answer(&d, header).0, want, "{header}");
        }
    }

    #[test]
    fn negotiation_with_context_takeover_and_small_windows() {
        let cfg = DeflateConfig {
            server_context_takeover: true,
            client_context_takeover: true,
            server_max_window_bits: 11,
            client_max_window_bits: 10,
            ..DeflateConfig::default()
        };
        let got = |h| answer(&cfg, h).0.unwrap();
        // Our smaller window is announced unasked (§7.1.2.1 allows it);
        // client_max_window_bits only when offered (§7.1.2.2).
        assert_eq!(
            got("permessage-deflate"),
            "permessage-deflate; server_max_window_bits=11"
        );
        assert_eq!(
            got("permessage-deflate; client_max_window_bits"),
            "permessage-deflate; server_max_window_bits=11; client_max_window_bits=10"
        );
        assert_eq!(
            got("permessage-deflate; client_max_window_bits=12; server_max_window_bits=9"),
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=10"
        );
        // A client's no-context-takeover request binds us (§7.1.1.1); its
        // hint about itself is taken (§7.1.1.2).
        assert_eq!(
            got("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=11"
        );
        let off = DeflateConfig {
            enabled: false,
            ..cfg
        };
        assert_eq!(answer(&off, "permessage-deflate").0, None);
    }

    #[test]
    fn invalid_offers_are_declined_and_the_next_one_taken() {
        let d = DeflateConfig::default();
        let bad: &[(&str, &str)] = &[
            ("permessage-deflate; foo", "unknown parameter"),
            (
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                "repeated parameter",
            ),
            (
                "permessage-deflate; server_no_context_takeover=1",
                "context takeover parameter with a value",
            ),
            (
                "permessage-deflate; client_no_context_takeover=\"x\"",
                "context takeover parameter with a value",
            ),
            (
                "permessage-deflate; server_max_window_bits",
                "server_max_window_bits without a value",
            ),
            (
                "permessage-deflate; server_max_window_bits=7",
                "invalid server_max_window_bits",
            ),
            (
                "permessage-deflate; server_max_window_bits=010",
                "invalid server_max_window_bits",
            ),
            (
                "permessage-deflate; server_max_window_bits=16",
                "invalid server_max_window_bits",
            ),
            (
                "permessage-deflate; client_max_window_bits=0x9",
                "invalid client_max_window_bits",
            ),
            (
                "permessage-deflate; client_max_window_bits=+9",
                "invalid client_max_window_bits",
            ),
            (
                "permessage-deflate; a=\"b c\"",
                "quoted value is not a token",
            ),
        ];
        for (offer, why) in bad {
            assert_eq!(answer(&d, offer), (None, vec![*why]), "{offer}");
            // With a valid offer after it, that one is accepted.
            let header = format!("{offer}, x-other, permessage-deflate; server_max_window_bits=12");
            let (got, declined) = answer(&d, &header);
            assert_eq!(declined, [*why], "{header}");
            assert!(
                got.unwrap().ends_with("server_max_window_bits=12"),
                "{header}"
            );
        }
    }
}
