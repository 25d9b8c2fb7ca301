//! A small app written against the sprocket library: a live visitor
//! counter with a periodic heartbeat, mounted beside the stock echo app,
//! with a logger running alongside through an `Aggregate`.
//!
//! Run: `cargo run --example live_counter [ADDR:PORT]` (127.0.0.1:8090 by
//! default; port 0 picks a free one, and the log says which) and open a
//! WebSocket to `ws://127.0.0.1:8090/counter` (e.g. `websocat`, or the
//! browser console:
//! `new WebSocket("ws://127.0.0.1:8090/counter").onmessage = e => console.log(e.data)`).
//! Send `reset` to set the click counter back to zero; anything else counts a click.

use sprocket::app::{Aggregate, Application, ConnId, Context, Echo, Message, Router, TimerId};
use sprocket::{Config, Request, Server};
use std::time::Duration;

/// Tracks who is connected and a shared click counter; tells everyone.
#[derive(Default)]
struct Counter {
    visitors: Vec<ConnId>,
    clicks: u64,
    heartbeat: Option<TimerId>,
}

impl Counter {
    fn announce(&self, ctx: &mut Context<'_>) {
        let text = format!(
            "{{\"visitors\":{},\"clicks\":{}}}",
            self.visitors.len(),
            self.clicks
        );
        ctx.broadcast(self.visitors.iter().copied(), Message::Text(&text));
    }
}

impl Application for Counter {
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, _req: &Request) {
        self.visitors.push(conn);
        if self.heartbeat.is_none() {
            self.heartbeat = Some(ctx.add_periodic_timer(Duration::from_secs(5)));
        }
        self.announce(ctx);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, _conn: ConnId, msg: Message<'_>) {
        match msg {
            Message::Text("reset") => self.clicks = 0,
            _ => self.clicks += 1,
        }
        self.announce(ctx);
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, _code: u16, _reason: &str) {
        self.visitors.retain(|c| *c != conn);
        if self.visitors.is_empty()
            && let Some(timer) = self.heartbeat.take()
        {
            ctx.cancel_timer(timer);
        }
        self.announce(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        if Some(timer) == self.heartbeat {
            self.announce(ctx);
        }
    }
}

/// Logs every connection; runs beside `Counter` in an `Aggregate`.
struct Logger;

impl Application for Logger {
    fn on_open(&mut self, _: &mut Context<'_>, conn: ConnId, req: &Request) {
        log::info!("{conn} joined from {}", req.peer);
    }
    fn on_message(&mut self, _: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        log::info!("{conn} sent {} bytes", msg.as_bytes().len());
    }
    fn on_close(&mut self, _: &mut Context<'_>, conn: ConnId, code: u16, _: &str) {
        log::info!("{conn} left with {code}");
    }
}

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let app = Router::new()
        .route(
            "/counter",
            Aggregate::new().with(Logger).with(Counter::default()),
        )
        .route("/echo", Echo);
    let listen = match std::env::args().nth(1) {
        Some(addr) => addr.parse().map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{addr:?} is not an ADDR:PORT: {e}"),
            )
        })?,
        None => "127.0.0.1:8090".parse().unwrap(),
    };
    let config = Config {
        listen,
        ..Config::default()
    };
    let mut server = Server::bind(config, app)?;
    server.handle_signals()?;
    log::info!("listening on ws://{}/counter", server.local_addr());
    server.run()
}
