//! `Forwarded` / `X-Forwarded-For` resolution on arbitrary header values.
//!
//! Input: lines of `name:value`. Invariants: no panic; an untrusted peer is
//! never given another address; a trusted peer's headers are never ignored.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sprocket::cidr::Cidr;
use sprocket::proxy::{Resolved, client_address};

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let headers: Vec<(&str, &str)> = text
        .split('\n')
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim(), v.trim()))
        .collect();
    let trusted: Vec<Cidr> = vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
    let outsider = "192.0.2.1:1".parse().unwrap();
    assert!(matches!(
        client_address(outsider, &headers, &trusted),
        Resolved::Direct | Resolved::Ignored
    ));
    let proxy = "127.0.0.1:1".parse().unwrap();
    match client_address(proxy, &headers, &trusted) {
        Resolved::Ignored => panic!("a trusted peer's headers ignored"),
        Resolved::Direct => {}
        Resolved::Client(_) => {}
    }
});
