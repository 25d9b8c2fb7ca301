//! The PHP app's sessions, read and written from a WebSocket.
//!
//! ```text
//! cargo run --release --example php_session -- --listen 127.0.0.1:8090 \
//!     --session-store files:/var/lib/php/sessions --session-user-key user_id
//! ```
//!
//! Serves `/session`. A connection whose `PHPSESSID` cookie names a
//! session gets, on open, `{"id": …, "user": …, "data": {…}}` (the JSON
//! view, see docs/php.md); then
//! - `set PATH JSON` writes the value at the dotted `PATH` (`visits`,
//!   `_sf2_attributes.color`) into the session, merged under PHP's lock,
//!   and answers the new view;
//! - `unset PATH` removes it, and answers the new view;
//! - `reload` re-reads the session (PHP changes it between requests) and
//!   answers the view.
//!
//! Failures answer `{"error": "…"}`. Prints `listening on ADDR` once
//! ready (`--listen 127.0.0.1:0` picks a free port).

use sprocket::app::{
    Application, ConnId, Context, Message, Reply, Request, SessionClient, SessionDone,
    SessionProvider, SessionStore, Ticket, TimerId,
};
use sprocket::session::{Patch, Session, SessionSettings, from_json};
use sprocket::{Config, Router, Server};
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "usage: php_session [--listen ADDR:PORT] --session-store STORE [--session-* …]";

/// The `/session` app.
struct SessionApp {
    client: SessionClient,
    user_key: Option<String>,
}

fn tag_of(conn: ConnId) -> u64 {
    (u64::from(conn.generation()) << 32) | conn.index() as u64
}

fn conn_of(tag: u64) -> ConnId {
    ConnId::new(tag as u32, (tag >> 32) as u32)
}

fn view(session: Option<&Session>) -> String {
    match session {
        Some(s) => s.to_json().to_string(),
        None => r#"{"id":null,"user":null,"data":null}"#.to_owned(),
    }
}

fn error(why: impl std::fmt::Display) -> String {
    serde_json::json!({ "error": why.to_string() }).to_string()
}

impl SessionApp {
    fn finished(&mut self, ctx: &mut Context<'_>, done: SessionDone) {
        let conn = conn_of(done.tag);
        match done.result {
            Ok(data) => {
                let session = Session::new(done.id, data, self.user_key.as_deref());
                ctx.set_user(conn, session.user.as_deref().map(Arc::from));
                ctx.send_text(conn, &view(Some(&session)));
                ctx.set_session(conn, Some(Arc::new(session)));
            }
            Err(e) => {
                ctx.send_text(conn, &error(e));
            }
        }
    }

    fn write(&mut self, ctx: &mut Context<'_>, conn: ConnId, patch: Patch) {
        let Some(session) = ctx.session(conn) else {
            ctx.send_text(conn, &error("this connection has no session"));
            return;
        };
        if let Some(done) = self.client.write(ctx, &session.id, patch, tag_of(conn)) {
            self.finished(ctx, done);
        }
    }
}

impl Application for SessionApp {
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId, _req: &Request) {
        let text = view(ctx.session(conn).as_deref());
        ctx.send_text(conn, &text);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, msg: Message<'_>) {
        let Message::Text(text) = msg else {
            ctx.send_text(
                conn,
                &error("send text: set PATH JSON, unset PATH or reload"),
            );
            return;
        };
        let mut words = text.trim().splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("reload"), None, None) => {
                let Some(session) = ctx.session(conn) else {
                    ctx.send_text(conn, &error("this connection has no session"));
                    return;
                };
                if let Some(done) = self.client.read(ctx, &session.id, tag_of(conn)) {
                    self.finished(ctx, done);
                }
            }
            (Some("set"), Some(path), Some(json)) => match serde_json::from_str(json) {
                Ok(value) => self.write(ctx, conn, Patch::new().set(path, from_json(&value))),
                Err(e) => {
                    ctx.send_text(conn, &error(format!("not JSON: {e}")));
                }
            },
            (Some("unset"), Some(path), None) => self.write(ctx, conn, Patch::new().remove(path)),
            _ => {
                ctx.send_text(conn, &error("expected set PATH JSON, unset PATH or reload"));
            }
        }
    }

    fn on_close(&mut self, _: &mut Context<'_>, _: ConnId, _: u16, _: &str) {}

    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        if let Some(done) = self.client.on_timer(ctx, timer) {
            self.finished(ctx, done);
        }
    }

    fn on_reply(&mut self, ctx: &mut Context<'_>, ticket: Ticket, reply: Reply<'_>) {
        if let Some(done) = self.client.on_reply(ctx, ticket, reply) {
            self.finished(ctx, done);
        }
    }
}

fn run() -> Result<(), String> {
    let mut config = Config::default();
    let mut settings = SessionSettings::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}\n\n{}", sprocket::session::OPTIONS_HELP);
                return Ok(());
            }
            "--listen" => {
                let v = value()?;
                config.listen = v
                    .parse()
                    .map_err(|_| format!("--listen: not an address:port: {v:?}"))?;
            }
            _ => {
                if !settings.take(&name, value)? {
                    return Err(format!("unknown option {name}\n{USAGE}"));
                }
            }
        }
    }
    settings.validate()?;
    let listen = config.listen;
    let mut server = Server::new(config).map_err(|e| e.to_string())?;
    let (store, options): (SessionStore, _) = SessionStore::from_settings(&settings, &mut server)?
        .ok_or_else(|| format!("--session-store is required\n{USAGE}"))?;
    let app = SessionApp {
        client: SessionClient::new(store.clone()),
        user_key: options.user_key.clone(),
    };
    let router = Router::new().route("/session", app);
    server
        .listen(listen, SessionProvider::new(store, options, router))
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    println!("listening on {}", server.local_addr());
    server.run().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    env_logger::init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("php_session: {e}");
            ExitCode::from(2)
        }
    }
}
