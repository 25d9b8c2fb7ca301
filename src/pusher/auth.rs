//! The signatures of the Pusher protocol: HMAC-SHA256 with the app's
//! secret, hex-encoded, over
//!
//! - `socket_id:channel` (private and encrypted channels) or
//!   `socket_id:channel:channel_data` (presence), sent by the client as
//!   `auth: "key:signature"` when it subscribes;
//! - `socket_id::user::user_data` for user sign-in;
//! - `METHOD\nPATH\nQUERY` for the HTTP API, the query sorted by key,
//!   without `auth_signature`, with `body_md5` the MD5 of the body;
//! - the body of a webhook (`X-Pusher-Signature`).
//!
//! Every check compares MACs in constant time.

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// The auth version the HTTP API signs with.
pub const API_VERSION: &str = "1.0";

/// How far an API request's `auth_timestamp` may be from our clock, in
/// seconds, by default.
pub const API_WINDOW: u64 = 600;

fn mac(secret: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// The hex HMAC-SHA256 of the concatenation of `parts` under `secret`.
pub fn sign(secret: &str, parts: &[&[u8]]) -> String {
    hex(&mac(secret.as_bytes(), parts).finalize().into_bytes())
}

/// Whether `signature` (hex) is the HMAC of `parts` under `secret`,
/// compared in constant time.
pub fn verify(secret: &str, parts: &[&[u8]], signature: &str) -> bool {
    unhex(signature).is_some_and(|tag| mac(secret.as_bytes(), parts).verify_slice(&tag).is_ok())
}

/// What a client's `auth` signs for a subscription.
fn channel_parts<'a>(
    socket_id: &'a str,
    channel: &'a str,
    channel_data: Option<&'a str>,
) -> Vec<&'a [u8]> {
    let mut parts = vec![socket_id.as_bytes(), b":", channel.as_bytes()];
    if let Some(data) = channel_data {
        parts.extend([b":".as_slice(), data.as_bytes()]);
    }
    parts
}

/// The `auth` value an app's authoriser gives a client for `channel`
/// (`key:signature`), with `channel_data` on presence channels.
pub fn channel_auth(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> String {
    let sig = sign(secret, &channel_parts(socket_id, channel, channel_data));
    format!("{key}:{sig}")
}

/// The `auth` value of a user sign-in (`key:signature`).
pub fn user_auth(key: &str, secret: &str, socket_id: &str, user_data: &str) -> String {
    let sig = sign(
        secret,
        &[socket_id.as_bytes(), b"::user::", user_data.as_bytes()],
    );
    format!("{key}:{sig}")
}

/// Why an `auth` value is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// Not `key:signature`.
    Malformed,
    /// Signed for another app's key.
    WrongKey,
    /// The signature does not match.
    BadSignature,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthError::Malformed => "auth is not of the form key:signature",
            AuthError::WrongKey => "auth is signed for another app key",
            AuthError::BadSignature => "invalid signature",
        })
    }
}

impl std::error::Error for AuthError {}

fn split_auth<'a>(key: &str, auth: &'a str) -> Result<&'a str, AuthError> {
    let (k, sig) = auth.split_once(':').ok_or(AuthError::Malformed)?;
    if k != key {
        return Err(AuthError::WrongKey);
    }
    Ok(sig)
}

/// Checks a subscription's `auth` for `channel`.
pub fn check_channel(
    key: &str,
    secret: &str,
    auth: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> Result<(), AuthError> {
    let sig = split_auth(key, auth)?;
    if verify(
        secret,
        &channel_parts(socket_id, channel, channel_data),
        sig,
    ) {
        Ok(())
    } else {
        Err(AuthError::BadSignature)
    }
}

/// Checks a sign-in's `auth` for `user_data`.
pub fn check_user(
    key: &str,
    secret: &str,
    auth: &str,
    socket_id: &str,
    user_data: &str,
) -> Result<(), AuthError> {
    let sig = split_auth(key, auth)?;
    let parts = [socket_id.as_bytes(), b"::user::", user_data.as_bytes()];
    if verify(secret, &parts, sig) {
        Ok(())
    } else {
        Err(AuthError::BadSignature)
    }
}

/// The MD5 of `body`, hex (an API request's `body_md5`).
pub fn body_md5(body: &[u8]) -> String {
    hex(&Md5::digest(body))
}

/// An HTTP API request as far as its signature goes.
#[derive(Clone, Copy, Debug)]
pub struct ApiRequest<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The path, e.g. `/apps/1/events`.
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// The body.
    pub body: &'a [u8],
}

/// Why an API request's signature is refused: each is a 401.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiAuthError {
    /// A parameter the signature needs is absent.
    Missing(&'static str),
    /// `auth_key` is not this app's key.
    UnknownKey,
    /// `auth_version` is not 1.0.
    Version,
    /// `auth_timestamp` is not a number, or too far from our clock.
    Timestamp,
    /// `body_md5` does not match the body.
    BodyMd5,
    /// The signature does not match.
    BadSignature,
    /// A parameter is given twice, or badly percent-encoded.
    BadQuery,
}

impl fmt::Display for ApiAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiAuthError::Missing(p) => write!(f, "the {p} parameter is required"),
            ApiAuthError::UnknownKey => f.write_str("unknown auth_key"),
            ApiAuthError::Version => f.write_str("auth_version must be 1.0"),
            ApiAuthError::Timestamp => write!(
                f,
                "auth_timestamp is not within {API_WINDOW} seconds of the server's clock"
            ),
            ApiAuthError::BodyMd5 => f.write_str("body_md5 does not match the body"),
            ApiAuthError::BadSignature => f.write_str("invalid signature"),
            ApiAuthError::BadQuery => {
                f.write_str("the query string is malformed or repeats a parameter")
            }
        }
    }
}

impl std::error::Error for ApiAuthError {}

/// Decodes one `application/x-www-form-urlencoded` component.
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let pair = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(pair, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The decoded query parameters, sorted by (lower-cased) key; a repeated
/// key is an error.
pub fn query_params(query: &str) -> Result<Vec<(String, String)>, ApiAuthError> {
    let mut params = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = form_decode(k).ok_or(ApiAuthError::BadQuery)?;
        let v = form_decode(v).ok_or(ApiAuthError::BadQuery)?;
        params.push((k.to_ascii_lowercase(), v));
    }
    params.sort();
    if params.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(ApiAuthError::BadQuery);
    }
    Ok(params)
}

/// Checks an HTTP API request signed with `key` and `secret`, `now` being
/// our clock in Unix seconds and `window` the largest distance allowed
/// from `auth_timestamp`. Returns the request's parameters.
pub fn check_api(
    req: &ApiRequest<'_>,
    key: &str,
    secret: &str,
    now: u64,
    window: u64,
) -> Result<Vec<(String, String)>, ApiAuthError> {
    let params = query_params(req.query)?;
    let get = |name: &'static str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or(ApiAuthError::Missing(name))
    };
    if get("auth_key")? != key {
        return Err(ApiAuthError::UnknownKey);
    }
    let signature = get("auth_signature")?;
    if get("auth_version")? != API_VERSION {
        return Err(ApiAuthError::Version);
    }
    let ts: u64 = get("auth_timestamp")?
        .parse()
        .map_err(|_| ApiAuthError::Timestamp)?;
    if ts.abs_diff(now) > window {
        return Err(ApiAuthError::Timestamp);
    }
    if !req.body.is_empty() {
        let md5 = get("body_md5")?;
        if !md5.eq_ignore_ascii_case(&body_md5(req.body)) {
            return Err(ApiAuthError::BodyMd5);
        }
    }
    let mut to_sign = String::with_capacity(req.query.len() + req.path.len() + 8);
    to_sign.push_str(req.method);
    to_sign.push('\n');
    to_sign.push_str(req.path);
    to_sign.push('\n');
    let mut first = true;
    for (k, v) in params.iter().filter(|(k, _)| k != "auth_signature") {
        if !first {
            to_sign.push('&');
        }
        first = false;
        to_sign.push_str(k);
        to_sign.push('=');
        to_sign.push_str(v);
    }
    if !verify(secret, &[to_sign.as_bytes()], signature) {
        return Err(ApiAuthError::BadSignature);
    }
    Ok(params)
}

/// The `X-Pusher-Signature` of a webhook body.
pub fn webhook_signature(secret: &str, body: &[u8]) -> String {
    sign(secret, &[body])
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example of the protocol's documentation: app key
    // 278d425bdf160c739803, secret 7ad3773142a6692b25b8, socket 1234.1234.
    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";

    #[test]
    fn private_channel_signature_matches_the_documented_example() {
        let auth = channel_auth(KEY, SECRET, "1234.1234", "private-foobar", None);
        assert_eq!(
            auth,
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
        assert_eq!(
            check_channel(KEY, SECRET, &auth, "1234.1234", "private-foobar", None),
            Ok(())
        );
    }

    #[test]
    fn presence_signature_covers_channel_data() {
        let data = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
        let auth = channel_auth(KEY, SECRET, "1234.1234", "presence-foobar", Some(data));
        assert_eq!(
            check_channel(
                KEY,
                SECRET,
                &auth,
                "1234.1234",
                "presence-foobar",
                Some(data)
            ),
            Ok(())
        );
        let other = r#"{"user_id":11,"user_info":{"name":"Mr. Channels"}}"#;
        assert_eq!(
            check_channel(
                KEY,
                SECRET,
                &auth,
                "1234.1234",
                "presence-foobar",
                Some(other)
            ),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn refusals() {
        let auth = channel_auth(KEY, SECRET, "1.2", "private-a", None);
        let check = |auth: &str, socket: &str, channel: &str| {
            check_channel(KEY, SECRET, auth, socket, channel, None)
        };
        assert_eq!(
            check(&auth, "1.3", "private-a"),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            check(&auth, "1.2", "private-b"),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            check("nocolon", "1.2", "private-a"),
            Err(AuthError::Malformed)
        );
        let foreign = auth.replacen(KEY, "otherkey", 1);
        assert_eq!(
            check(&foreign, "1.2", "private-a"),
            Err(AuthError::WrongKey)
        );
        let (k, sig) = auth.split_once(':').unwrap();
        for bad in [&sig[..10], "zz", &format!("{sig}00")] {
            assert_eq!(
                check(&format!("{k}:{bad}"), "1.2", "private-a"),
                Err(AuthError::BadSignature)
            );
        }
        // Upper-case hex is the same signature.
        assert_eq!(
            check(&format!("{k}:{}", sig.to_uppercase()), "1.2", "private-a"),
            Ok(())
        );
    }

    #[test]
    fn user_sign_in() {
        let data = r#"{"id":"7","name":"Ann"}"#;
        let auth = user_auth(KEY, SECRET, "5.6", data);
        assert_eq!(check_user(KEY, SECRET, &auth, "5.6", data), Ok(()));
        assert_eq!(
            check_user(KEY, SECRET, &auth, "5.7", data),
            Err(AuthError::BadSignature)
        );
        // Not interchangeable with a channel signature for a channel
        // named like the user data.
        assert_ne!(auth, channel_auth(KEY, SECRET, "5.6", data, None));
    }

    /// Signs as the server SDKs do: sorted parameters, raw values.
    fn signed_query(method: &str, path: &str, params: &[(&str, &str)], body: &[u8]) -> String {
        let mut all: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !body.is_empty() {
            all.push(("body_md5".into(), body_md5(body)));
        }
        all.sort();
        let joined: Vec<String> = all.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let joined = joined.join("&");
        let sig = sign(SECRET, &[format!("{method}\n{path}\n{joined}").as_bytes()]);
        let encoded: Vec<String> = all
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(',', "%2C").replace(' ', "+")))
            .collect();
        format!("{}&auth_signature={sig}", encoded.join("&"))
    }

    #[test]
    fn api_requests() {
        let body = br#"{"name":"e","channels":["a"],"data":"{}"}"#;
        let base = [
            ("auth_key", KEY),
            ("auth_timestamp", "1700000000"),
            ("auth_version", "1.0"),
        ];
        let q = signed_query("POST", "/apps/3/events", &base, body);
        let req = ApiRequest {
            method: "POST",
            path: "/apps/3/events",
            query: &q,
            body,
        };
        assert!(check_api(&req, KEY, SECRET, 1_700_000_100, API_WINDOW).is_ok());
        // Clock too far either way.
        assert_eq!(
            check_api(&req, KEY, SECRET, 1_700_000_601, API_WINDOW).unwrap_err(),
            ApiAuthError::Timestamp
        );
        assert_eq!(
            check_api(&req, KEY, SECRET, 1_699_999_399, API_WINDOW).unwrap_err(),
            ApiAuthError::Timestamp
        );
        // Another body, another path, another method, another key.
        let other = ApiRequest { body: b"{}", ..req };
        assert_eq!(
            check_api(&other, KEY, SECRET, 1_700_000_000, 600).unwrap_err(),
            ApiAuthError::BodyMd5
        );
        let other = ApiRequest {
            path: "/apps/4/events",
            ..req
        };
        assert_eq!(
            check_api(&other, KEY, SECRET, 1_700_000_000, 600).unwrap_err(),
            ApiAuthError::BadSignature
        );
        let other = ApiRequest {
            method: "GET",
            ..req
        };
        assert_eq!(
            check_api(&other, KEY, SECRET, 1_700_000_000, 600).unwrap_err(),
            ApiAuthError::BadSignature
        );
        assert_eq!(
            check_api(&req, "k2", SECRET, 1_700_000_000, 600).unwrap_err(),
            ApiAuthError::UnknownKey
        );
        assert_eq!(
            check_api(&req, KEY, "s2", 1_700_000_000, 600).unwrap_err(),
            ApiAuthError::BadSignature
        );
        // A GET with encoded values (a comma, a space) signs the decoded ones.
        let params = [
            ("auth_key", KEY),
            ("auth_timestamp", "1700000000"),
            ("auth_version", "1.0"),
            ("info", "user_count,subscription_count"),
            ("filter_by_prefix", "presence- x"),
        ];
        let q = signed_query("GET", "/apps/3/channels", &params, b"");
        assert!(q.contains("%2C") && q.contains('+'));
        let req = ApiRequest {
            method: "GET",
            path: "/apps/3/channels",
            query: &q,
            body: b"",
        };
        let got = check_api(&req, KEY, SECRET, 1_700_000_000, 600).unwrap();
        assert!(got.contains(&("info".into(), "user_count,subscription_count".into())));
        // Missing and repeated parameters.
        let req2 = ApiRequest {
            query: "auth_key=x",
            ..req
        };
        assert_eq!(
            check_api(&req2, "x", SECRET, 0, 600).unwrap_err(),
            ApiAuthError::Missing("auth_signature")
        );
        let dup = format!("{q}&info=x");
        let req3 = ApiRequest { query: &dup, ..req };
        assert_eq!(
            check_api(&req3, KEY, SECRET, 1_700_000_000, 600).unwrap_err(),
            ApiAuthError::BadQuery
        );
        let bad = format!("{q}&x=%zz");
        let req4 = ApiRequest { query: &bad, ..req };
        assert_eq!(
            check_api(&req4, KEY, SECRET, 1_700_000_000, 600).unwrap_err(),
            ApiAuthError::BadQuery
        );
    }

    #[test]
    fn md5_and_webhook() {
        assert_eq!(body_md5(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(body_md5(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        let sig = webhook_signature(SECRET, b"{}");
        assert!(verify(SECRET, &[b"{}"], &sig));
        assert_eq!(sig.len(), 64);
    }
}
