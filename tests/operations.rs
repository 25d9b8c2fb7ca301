//! Operations: the counters at GET /metrics follow what happened.

mod common;
use common::*;
use sprocket::Config;
use sprocket::app::{Admin, Echo, Router};

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
}

#[test]
fn metrics_count_connections_messages_refusals_and_closes() {
    let srv = TestServer::start(Config::default(), || {
        Router::new().route("/echo", Echo).route("/metrics", Admin)
    });
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

/// Panics in `accept` and in `http`, for the panic counter.
struct Explosive;

impl sprocket::Application for Explosive {
    fn accept(
        &mut self,
        _: &mut sprocket::Context<'_>,
        _: sprocket::ConnId,
        _: &sprocket::Request,
    ) -> Result<sprocket::app::Accept, sprocket::Reject> {
        panic!("deliberate panic in accept");
    }
    fn http(
        &mut self,
        _: &mut sprocket::Context<'_>,
        _: sprocket::ConnId,
        _: &sprocket::Request,
    ) -> sprocket::app::Http {
        panic!("deliberate panic in http");
    }
    fn on_open(
        &mut self,
        _: &mut sprocket::Context<'_>,
        _: sprocket::ConnId,
        _: &sprocket::Request,
    ) {
    }
    fn on_message(
        &mut self,
        _: &mut sprocket::Context<'_>,
        _: sprocket::ConnId,
        _: sprocket::Message<'_>,
    ) {
    }
    fn on_close(&mut self, _: &mut sprocket::Context<'_>, _: sprocket::ConnId, _: u16, _: &str) {}
}

#[test]
fn panics_in_accept_and_http_and_refusals_at_admission_are_counted() {
    let cfg = Config {
        max_connections_per_ip: 2,
        ..Config::default()
    };
    let srv = TestServer::start(cfg, || {
        Router::new()
            .route("/echo", Echo)
            .route("/boom", Explosive)
            .route("/metrics", Admin)
    });
    // A scrape is refused with 429 while the address has its two slots.
    let scrape = || {
        let resp = http_exchange(srv.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        if status_of(&resp) == 200 {
            body.to_owned()
        } else {
            String::new()
        }
    };
    let refused = Client::try_connect(srv.addr, "/boom", &[]);
    assert_eq!(status_of(&refused.response), 500, "{}", refused.response);
    drop(refused);
    let page = http_exchange(srv.addr, b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&page), 500, "{page}");
    // The refused connections free their slots once the server sees them go.
    let admitted = || {
        let mut c = None;
        wait_until("an echo client admitted", || {
            let t = Client::try_connect(srv.addr, "/echo", &[]);
            let ok = status_of(&t.response) == 101;
            c = ok.then_some(t);
            ok
        });
        c
    };
    let (a, b) = (admitted(), admitted());
    let over = Client::try_connect(srv.addr, "/echo", &[]);
    assert_eq!(status_of(&over.response), 429, "{}", over.response);
    drop((a, b));
    let mut text = String::new();
    wait_until("a scrape after the two echo clients left", || {
        text = scrape();
        !text.is_empty()
    });
    assert_eq!(metric(&text, "sprocket_panics_total"), 2, "{text}");
    assert!(
        text.contains("sprocket_http_responses_total{status=\"500\"} 2\n"),
        "{text}"
    );
    // The waits above met refusals too; each one is counted.
    assert!(metric(&text, "sprocket_http_responses_total{status=\"429\"}") >= 1);
}
