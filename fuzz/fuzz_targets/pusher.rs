//! The Pusher protocol codecs (`sprocket::pusher`): the same bytes go to
//! the client message decoder, the trigger and batch parsers, the member
//! and user parsers, the channel name check and the API signature check;
//! none panics. What they accept keeps its promises: a parsed trigger's
//! channels are valid names within the limits and its data within the
//! size limit; a channel name that parses is at most 200 bytes; an API
//! request signed here with the fuzzed query verifies, and one with its
//! body changed does not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::pusher::api::{self, Limits};
use sprocket::pusher::auth::{self, ApiRequest};
use sprocket::pusher::channel::{Channel, MAX_NAME};
use sprocket::pusher::protocol::{self, ClientMessage, Member};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    for t in api::parse_trigger(data, &limits)
        .into_iter()
        .chain(api::parse_batch(data, &limits).into_iter().flatten())
    {
        assert!(!t.channels.is_empty() && t.channels.len() <= limits.max_channels);
        assert!(t.data.len() <= limits.max_data);
        for c in &t.channels {
            assert!(Channel::parse(c).is_ok(), "{c:?}");
        }
        if let Some(s) = &t.socket_id {
            assert!(protocol::is_socket_id(s));
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ClientMessage::Subscribe { channel, channel_data, .. }) = ClientMessage::decode(text)
    {
        let _ = Channel::parse(&channel);
        if let Some(d) = channel_data {
            let _ = Member::parse(&d);
        }
    }
    let _ = Member::parse(text);
    let _ = protocol::signed_in_user(text);
    if let Ok(c) = Channel::parse(text) {
        assert!(c.name.len() <= MAX_NAME);
        let _ = (c.needs_auth(), c.allows_client_events(), c.user());
    }
    // The text as a query string: checking never panics, and a request
    // signed over its own parameters verifies.
    let req = ApiRequest { method: "POST", path: "/apps/1/events", query: text, body: b"" };
    let _ = auth::check_api(&req, "key", "secret", 0, 600);
    if let Ok(params) = auth::query_params(text) {
        if params.iter().any(|(k, _)| k.starts_with("auth_") || k == "body_md5") {
            return;
        }
        let body = b"{}";
        let mut all = params.clone();
        all.extend([
            ("auth_key".to_owned(), "key".to_owned()),
            ("auth_timestamp".to_owned(), "1000".to_owned()),
            ("auth_version".to_owned(), "1.0".to_owned()),
            ("body_md5".to_owned(), auth::body_md5(body)),
        ]);
        all.sort();
        let joined: Vec<String> = all.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let sig = auth::sign("secret", &[format!("POST\n/p\n{}", joined.join("&")).as_bytes()]);
        let encode = |s: &str| {
            s.bytes()
                .map(|b| format!("%{b:02X}"))
                .collect::<String>()
        };
        let query: Vec<String> = all
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let query = format!("{}&auth_signature={sig}", query.join("&"));
        let signed = ApiRequest { method: "POST", path: "/p", query: &query, body };
        assert!(auth::check_api(&signed, "key", "secret", 1000, 600).is_ok(), "{query}");
        let tampered = ApiRequest { body: b"{ }", ..signed };
        assert!(auth::check_api(&tampered, "key", "secret", 1000, 600).is_err());
    }
});
