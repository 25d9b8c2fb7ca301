//! Operations: the counters at GET /metrics follow what happened.

mod common;
use common::*;
use sprocket::Config;
use sprocket::app::{Echo, Router};

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
}

#[test]
fn metrics_count_connections_messages_refusals_and_closes() {
    let srv = TestServer::start(Config::default(), || Router::new().route("/echo", Echo));
    let scrape = || {
        let resp = http_exchange(srv.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        assert!(resp.contains("Content-Type: text/plain; version=0.0.4"));
        resp.split_once("\r\n\r\n").unwrap().1.to_owned()
    };
    let mut a = srv.client("/echo");
    for _ in 0..5 {
        a.echo("12345");
    }
    a.send_close(1000, "");
    a.expect_close(1000);
    let refused = Client::try_connect(srv.addr, "/nope", &[]);
    assert_eq!(status_of(&refused.response), 404);
    let mut bad = srv.client("/echo");
    bad.send_raw(&[0x81, 0x00]); // unmasked
    bad.expect_close(1002);
    let open = srv.client("/echo");

    wait_until("close of the failed connection counted", || {
        scrape().contains("sprocket_closes_total{code=\"1002\"} 1")
    });
    let text = scrape();
    assert_eq!(metric(&text, "sprocket_messages_received_total"), 5);
    assert_eq!(metric(&text, "sprocket_message_bytes_received_total"), 25);
    assert_eq!(metric(&text, "sprocket_messages_sent_total"), 5);
    assert_eq!(metric(&text, "sprocket_handshakes_total"), 3);
    assert_eq!(metric(&text, "sprocket_websockets_open"), 1);
    assert!(
        text.contains("sprocket_closes_total{code=\"1000\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("sprocket_http_responses_total{status=\"404\"} 1\n"),
        "{text}"
    );
    assert!(metric(&text, "sprocket_connections_accepted_total") >= 5);
    assert!(metric(&text, "sprocket_socket_bytes_read_total") > 25);
    drop(open);
}
