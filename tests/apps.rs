//! The application API end to end: panics contained, timers, chat, slow
//! consumers, graceful shutdown.

mod common;
use common::*;
use sprocket::app::{
    Aggregate, Application, Chat, ConnError, ConnId, Context, Echo, Message, Router, TimerId,
};
use sprocket::{Config, Request};
use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Echoes, except "panic" panics; records every event.
#[derive(Clone, Default)]
struct Recording {
    log: Arc<Mutex<Vec<String>>>,
}

impl Recording {
    fn push(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }
    fn has(&self, s: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l == s)
    }
}

impl Application for Recording {
    fn on_open(&mut self, _: &mut Context<'_>, conn: ConnId, req: &Request) {
        self.push(format!("open {} {}", conn.index(), req.path));
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        if msg.as_bytes() == b"panic" {
            panic!("deliberate test panic");
        }
        ctx.send(conn, msg);
    }
    fn on_close(&mut self, _: &mut Context<'_>, conn: ConnId, code: u16, _: &str) {
        self.push(format!("close {} {code}", conn.index()));
    }
    fn on_error(&mut self, _: &mut Context<'_>, conn: ConnId, error: &ConnError) {
        self.push(format!("error {} {error:?}", conn.index()));
    }
}

#[test]
fn panic_in_callback_closes_only_that_connection_with_1011() {
    let app = Recording::default();
    let srv = TestServer::start(Config::default(), {
        let app = app.clone();
        move || app
    });
    let mut a = srv.client("/");
    let mut b = srv.client("/");
    a.echo("before");
    b.send_text("panic");
    b.expect_close(1011);
    a.echo("after");
    let mut c = srv.client("/");
    c.echo("new connections still served");
    wait_until("on_close for the panicking connection", || {
        app.has("close 1 1011")
    });
    assert!(app.has("error 1 Panic"));
}

#[test]
fn on_close_codes() {
    let app = Recording::default();
    let srv = TestServer::start(Config::default(), {
        let app = app.clone();
        move || app
    });
    let mut a = srv.client("/");
    a.send_close(4321, "");
    a.expect_close(4321);
    wait_until("close 4321", || app.has("close 0 4321"));
    let b = srv.client("/");
    drop(b); // TCP gone without a close frame
    wait_until("close 1006", || {
        app.log.lock().unwrap().iter().any(|l| l.ends_with(" 1006"))
    });
}

/// Broadcasts a counter to every open connection from a periodic timer, and
/// stops after three ticks; a one-shot timer says "once".
#[derive(Default)]
struct Ticker {
    conns: Vec<ConnId>,
    periodic: Option<TimerId>,
    once: Option<TimerId>,
    ticks: u32,
}

impl Application for Ticker {
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: &Request) {
        self.conns.push(conn);
        if self.periodic.is_none() {
            self.periodic = Some(ctx.add_periodic_timer(Duration::from_millis(20)));
            self.once = Some(ctx.add_timer(Duration::from_millis(5)));
        }
    }
    fn on_message(&mut self, _: &mut Context<'_>, _: ConnId, _: Message<'_>) {}
    fn on_close(&mut self, _: &mut Context<'_>, conn: ConnId, _: u16, _: &str) {
        self.conns.retain(|c| *c != conn);
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        if Some(timer) == self.once {
            ctx.broadcast(self.conns.iter().copied(), Message::Text("once"));
        } else if Some(timer) == self.periodic {
            self.ticks += 1;
            ctx.broadcast(
                self.conns.iter().copied(),
                Message::Text(&format!("tick {}", self.ticks)),
            );
            if self.ticks == 3 {
                assert!(ctx.cancel_timer(timer));
            }
        }
    }
}

#[test]
fn timers_one_shot_periodic_and_cancel() {
    let srv = TestServer::start(Config::default(), Ticker::default);
    let mut c = srv.client("/");
    assert_eq!(c.read_text(), "once");
    for i in 1..=3 {
        assert_eq!(c.read_text(), format!("tick {i}"));
    }
    assert_eq!(
        c.read_timeout(Duration::from_millis(150)),
        Read_::Timeout,
        "cancelled timer stays quiet"
    );
}

#[test]
fn chat_relays_to_others_only() {
    let srv = TestServer::start(Config::default(), move || {
        Router::new().route("/chat", Chat::default())
    });
    let mut a = srv.client("/chat");
    let mut b = srv.client("/chat");
    let mut c = srv.client("/chat");
    a.send_text("from a");
    assert_eq!(b.read_text(), "from a");
    assert_eq!(c.read_text(), "from a");
    assert_eq!(
        a.read_timeout(Duration::from_millis(100)),
        Read_::Timeout,
        "sender gets no copy"
    );
    c.send_close(1000, "");
    c.expect_close(1000);
    b.send_binary(b"bin");
    let f = a.read_frame();
    assert_eq!((f.opcode, f.payload.as_slice()), (2, &b"bin"[..]));
}

#[test]
fn aggregate_children_all_see_events() {
    let rec = Recording::default();
    let child = rec.clone();
    let srv = TestServer::start(Config::default(), move || {
        Aggregate::new().with(child).with(Echo)
    });
    let mut c = srv.client("/x");
    c.send_text("twice");
    assert_eq!(c.read_text(), "twice");
    assert_eq!(c.read_text(), "twice");
    assert!(rec.has("open 0 /x"));
}

/// Sends 64 KiB to the first client on every tick: a client that never
/// reads must be cut off, and the other one keeps working.
#[derive(Default)]
struct Firehose {
    victim: Option<ConnId>,
    closed: Arc<Mutex<Option<u16>>>,
}

impl Application for Firehose {
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: &Request) {
        if self.victim.is_none() {
            self.victim = Some(conn);
            ctx.add_periodic_timer(Duration::from_millis(1));
        }
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        ctx.send(conn, msg);
    }
    fn on_close(&mut self, _: &mut Context<'_>, conn: ConnId, code: u16, _: &str) {
        if Some(conn) == self.victim {
            *self.closed.lock().unwrap() = Some(code);
        }
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, _: TimerId) {
        if let Some(v) = self.victim {
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..4 {
                ctx.send_binary(v, &chunk);
            }
        }
    }
}

#[test]
fn slow_consumer_is_disconnected_and_others_unaffected() {
    let app = Firehose::default();
    let closed = app.closed.clone();
    let cfg = Config {
        max_outbound: 1 << 20,
        ..Config::default()
    };
    let srv = TestServer::start(cfg, move || app);
    let victim = TcpStream::connect(srv.addr).unwrap();
    victim.set_nodelay(true).unwrap();
    (&victim)
        .write_all(upgrade_request("/", &[]).as_bytes())
        .unwrap();
    // The victim never reads.
    let mut healthy = srv.client("/");
    wait_until("slow consumer dropped", || {
        *closed.lock().unwrap() == Some(1006)
    });
    healthy.echo("still here");
    drop(victim);
}

#[test]
fn shutdown_sends_1001_to_everyone() {
    let mut srv = TestServer::start(Config::default(), move || Echo);
    let mut a = srv.client("/");
    let mut b = srv.client("/");
    a.echo("a");
    let closer = std::thread::spawn(move || {
        let f = b.read_frame();
        assert_eq!(f.close_code(), Some(1001));
        b.send_close(1001, "");
    });
    // `a` answers too, so the server can finish before its close timeout.
    let started = std::time::Instant::now();
    let stopper = std::thread::spawn(move || {
        srv.stop();
        started.elapsed()
    });
    let f = a.read_frame();
    assert_eq!(f.close_code(), Some(1001));
    a.send_close(1001, "");
    closer.join().unwrap();
    let took = stopper.join().unwrap();
    assert!(
        took < Duration::from_secs(4),
        "graceful shutdown waited for the close timeout: {took:?}"
    );
}

/// Closes any connection that says "bye", with 4001.
struct Closer(Arc<Mutex<Vec<u16>>>);

impl Application for Closer {
    fn on_open(&mut self, _: &mut Context<'_>, _: ConnId, _: &Request) {}
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        if msg.as_bytes() == b"bye" {
            ctx.close(conn, 4001, "see you");
            assert!(!ctx.is_open(conn));
            assert!(
                !ctx.send_text(conn, "after close"),
                "no data after our close frame"
            );
        }
    }
    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, code: u16, _: &str) {
        self.0.lock().unwrap().push(code);
    }
}

#[test]
fn server_close_then_close_timeout_drops_silent_peer() {
    let codes = Arc::new(Mutex::new(Vec::new()));
    let cfg = Config {
        close_timeout: Duration::from_millis(200),
        ..Config::default()
    };
    let srv = TestServer::start(cfg, {
        let codes = codes.clone();
        move || Closer(codes)
    });
    // A polite peer answers and the close completes with its code.
    let mut polite = srv.client("/");
    polite.send_text("bye");
    let f = polite.read_frame();
    assert_eq!(
        (f.close_code(), &f.payload[2..]),
        (Some(4001), &b"see you"[..])
    );
    polite.send_close(4001, "");
    assert_eq!(polite.read_timeout(Duration::from_secs(5)), Read_::Eof);
    // A silent peer never answers: dropped after the close timeout.
    let mut silent = srv.client("/");
    silent.send_text("bye");
    assert_eq!(silent.read_frame().close_code(), Some(4001));
    let started = std::time::Instant::now();
    assert_eq!(silent.read_timeout(Duration::from_secs(5)), Read_::Eof);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "not before the timeout"
    );
    wait_until("both closes reported", || codes.lock().unwrap().len() == 2);
    assert_eq!(*codes.lock().unwrap(), vec![4001, 1006]);
}

#[test]
fn idle_connections_are_pinged_and_dead_ones_dropped() {
    let app = Recording::default();
    // Generous for a loaded CI machine: the live client must answer in time.
    let cfg = Config {
        ping_interval: Some(Duration::from_millis(300)),
        ..Config::default()
    };
    let srv = TestServer::start(cfg, {
        let app = app.clone();
        move || app
    });
    // A live client answers pings (here: by hand) and stays.
    let mut live = srv.client("/");
    let mut dead = srv.client("/");
    for _ in 0..3 {
        let ping = live.read_frame();
        assert_eq!(ping.opcode, 9, "idle connection gets a ping");
        live.send_frame(0x8A, &ping.payload);
    }
    live.echo("still open");
    // The dead one never answered: it is gone, with on_error + on_close(1006).
    let first = dead.read_frame();
    assert_eq!(first.opcode, 9);
    assert_eq!(dead.read_timeout(Duration::from_secs(5)), Read_::Eof);
    wait_until("ping timeout reported", || {
        app.has("error 1 PingTimeout") && app.has("close 1 1006")
    });
}

#[test]
fn slow_chat_member_never_stalls_the_publisher_or_the_others() {
    let cfg = Config {
        max_outbound: 256 * 1024,
        ..Config::default()
    };
    let srv = TestServer::start(cfg, || {
        Router::new()
            .route("/chat", Chat::default())
            .route("/metrics", sprocket::app::Admin)
    });
    // The slow member completes its handshake, then never reads again.
    let slow = Client::connect(srv.addr, "/chat", &[]);
    let mut fast = srv.client("/chat");
    let mut publisher = srv.client("/chat");
    let payload = vec![b'm'; 4096];
    // The publisher keeps at most 16 messages (64 KiB) ahead of the fast
    // member, so that a fast member starved of CPU on a busy machine is not
    // itself a slow consumer; the slow one gets everything and reads none.
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let reader = std::thread::spawn({
        let read = read.clone();
        move || {
            for i in 0..2000u32 {
                let f = fast.read_frame();
                assert_eq!(f.opcode, 2);
                assert_eq!(&f.payload[..4], &i.to_be_bytes(), "in order, none lost");
                read.store(i + 1, std::sync::atomic::Ordering::Release);
            }
        }
    });
    for i in 0..2000u32 {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while i >= read.load(std::sync::atomic::Ordering::Acquire) + 16 {
            assert!(
                std::time::Instant::now() < deadline,
                "the fast member stalled at {i}"
            );
            std::thread::yield_now();
        }
        let mut msg = payload.clone();
        msg[..4].copy_from_slice(&i.to_be_bytes());
        publisher.send_binary(&msg);
    }
    reader
        .join()
        .expect("the fast member got all 2000 messages");
    let metrics = http_exchange(srv.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        metrics.contains("sprocket_slow_consumers_total 1\n"),
        "{metrics}"
    );
    drop(slow);
}

/// A timer that panics on its first firing; another timer keeps ticking.
#[derive(Default)]
struct PanickyTimers {
    bad: Option<TimerId>,
    good: Option<TimerId>,
    conn: Option<ConnId>,
    bad_fired: u32,
}

impl Application for PanickyTimers {
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: &Request) {
        self.conn = Some(conn);
        self.bad = Some(ctx.add_periodic_timer(Duration::from_millis(5)));
        self.good = Some(ctx.add_periodic_timer(Duration::from_millis(20)));
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: Message<'_>) {
        let text = format!("bad timer fired {} time(s)", self.bad_fired);
        ctx.send_text(conn, &text);
    }
    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, _: u16, _: &str) {}
    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        if Some(timer) == self.bad {
            self.bad_fired += 1;
            panic!("timer bug");
        }
        if let Some(c) = self.conn {
            ctx.send_text(c, "tick");
        }
    }
}

#[test]
fn panicking_timer_is_dropped_and_the_rest_keeps_running() {
    let srv = TestServer::start(Config::default(), PanickyTimers::default);
    let mut c = srv.client("/");
    for _ in 0..3 {
        assert_eq!(c.read_text(), "tick");
    }
    c.send_text("status?");
    loop {
        let t = c.read_text();
        if t != "tick" {
            assert_eq!(
                t, "bad timer fired 1 time(s)",
                "the panicking periodic timer was cancelled"
            );
            break;
        }
    }
}

/// A broadcast to many connections may wait up to the fan-out flush delay
/// to share a write with the next ones; one to a few goes out at once.
#[test]
fn fanout_flush_delay_holds_big_broadcasts_only() {
    let cfg = Config {
        fanout_flush_delay: Duration::from_millis(300),
        ..Config::default()
    };
    let srv = TestServer::start(cfg, || Router::new().route("/chat", Chat::default()));
    let mut few: Vec<Client> = (0..4).map(|_| srv.client("/chat")).collect();
    let started = std::time::Instant::now();
    few[0].send_text("to three");
    for c in &mut few[1..] {
        assert_eq!(c.read_text(), "to three");
    }
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    let mut many: Vec<Client> = (0..36).map(|_| srv.client("/chat")).collect();
    let started = std::time::Instant::now();
    many[0].send_text("to thirty-nine");
    assert_eq!(many[1].read_text(), "to thirty-nine");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // Everybody got it, once.
    for c in many.iter_mut().skip(2).chain(few.iter_mut()) {
        assert_eq!(c.read_text(), "to thirty-nine");
    }
}
