//! Bytes in, application events out: runs the handshake and the frame
//! decoder over a connection's input and calls the application. No I/O.
//!
//! Every application call is wrapped in `catch_unwind`: a panic closes only
//! the connection concerned (1011) and is logged.

use super::core::{Core, Phase, ensure_out};
use crate::app::{Application, ConnError, Context, Message};
use crate::http::extensions::Element;
use crate::http::{Page, Reject, Request, Upgrade, head, response, upgrade};
use crate::metrics::Metrics;
use crate::ws::{self, Connection, Event, ProtocolError, close, deflate};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f` with a context; false if it panicked (logged).
pub(crate) fn call<A: Application>(
    core: &mut Core,
    app: &mut A,
    what: &str,
    f: impl FnOnce(&mut A, &mut Context<'_>),
) -> bool {
    let mut ctx = Context::new(core);
    let result = catch_unwind(AssertUnwindSafe(|| f(app, &mut ctx)));
    match result {
        Ok(()) => true,
        Err(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(non-string panic)");
            log::error!("application panicked in {what}: {text}");
            core.metrics.panics += 1;
            false
        }
    }
}

/// New bytes arrived in the shared read buffer for a connection without
/// partial input: process them, and keep whatever incomplete frame or head
/// is left (the one copy made on this path).
pub(crate) fn ingest_shared<A: Application>(
    core: &mut Core,
    app: &mut A,
    key: usize,
    buf: &mut [u8],
) {
    let (used, want) = feed(core, app, key, buf);
    if used < buf.len() {
        let conn = &mut core.conns[key];
        conn.input.stash(&buf[used..], want, &mut core.in_pool);
    }
}

/// `n` new bytes were read into the connection's own buffer (its
/// `InBuf::spare`): process what is there now.
pub(crate) fn ingest_own<A: Application>(core: &mut Core, app: &mut A, key: usize, n: usize) {
    let conn = &mut core.conns[key];
    conn.input.filled(n);
    let mut input = std::mem::take(&mut conn.input);
    let (used, want) = feed(core, app, key, input.bytes_mut());
    input.consume(used, want);
    core.conns[key].input = input;
}

/// Processes `buf` (the connection's unprocessed input, starting at a frame
/// or head boundary). Returns the bytes consumed and, if the next frame is
/// incomplete, its full size (0 when unknown).
pub(crate) fn feed<A: Application>(
    core: &mut Core,
    app: &mut A,
    key: usize,
    buf: &mut [u8],
) -> (usize, usize) {
    let mut pos = 0;
    while pos < buf.len() {
        match core.conns[key].phase {
            Phase::Handshake(_) => match handshake(core, app, key, &mut buf[pos..]) {
                0 => return (pos, 0),
                n => pos += n,
            },
            Phase::Done { .. } => return (buf.len(), 0),
            Phase::WebSocket => {
                let Core {
                    conns,
                    shared,
                    ws_settings,
                    now,
                    ..
                } = &mut *core;
                let conn = &mut conns[key];
                let before = conn.out.len();
                let (used, event) =
                    conn.ws
                        .handle_input(&mut buf[pos..], *now, ws_settings, shared, &mut conn.out);
                let wrote = conn.out.len() != before;
                if wrote {
                    core.mark_dirty(key);
                }
                match event {
                    Some(event) => {
                        pos += used;
                        on_event(core, app, key, event);
                    }
                    None => {
                        pos += used;
                        let conn = &mut core.conns[key];
                        conn.sync_phase(core.now);
                        let want = conn.ws.frame_len(&buf[pos..]);
                        return (pos, want);
                    }
                }
            }
        }
    }
    (pos, 0)
}

/// Handles input during the opening handshake; returns bytes consumed
/// (0: head incomplete, keep the bytes).
fn handshake<A: Application>(core: &mut Core, app: &mut A, key: usize, buf: &mut [u8]) -> usize {
    let limits = core.head_limits;
    let Phase::Handshake(scanner) = &mut core.conns[key].phase else {
        return 0;
    };
    let len = match scanner.scan(buf, &limits) {
        Ok(None) => return 0,
        Ok(Some(len)) => len,
        Err(e) => {
            refuse(core, key, &Reject::new(e.status(), e.to_string()));
            return buf.len();
        }
    };
    let parsed = head::parse_head(&buf[..len], &limits);
    let head = match parsed {
        Ok(h) => h,
        Err(e) => {
            refuse(core, key, &Reject::new(e.status(), e.to_string()));
            return buf.len();
        }
    };
    let peer = core.conns[key].peer;
    match upgrade::check(&head) {
        Err(reject) => refuse(core, key, &reject),
        Ok(Upgrade::Plain) => plain_request(core, app, key, Request::new(&head, peer, &[])),
        Ok(Upgrade::WebSocket {
            key: ws_key,
            protocols,
            extensions,
        }) => {
            let accept = ws::accept_key(ws_key.as_bytes());
            let req = Request::new(&head, peer, &protocols);
            open(core, app, key, req, &accept, &extensions);
        }
    }
    len
}

/// Answers a plain HTTP GET: `/health`, or a hint that this is a WebSocket
/// endpoint (426), or the app's refusal (e.g. 404 for an unknown path).
fn plain_request<A: Application>(core: &mut Core, app: &mut A, key: usize, req: Request) {
    match req.path.as_str() {
        "/health" => {
            let mut out = Vec::new();
            response::write_plain(&mut out, 200, &[], "ok\n");
            return finish_http(core, key, 200, &out);
        }
        "/metrics" => {
            let text = core.metrics.render(core.gauges());
            let page = Page::ok(
                "text/plain; version=0.0.4; charset=utf-8",
                text.into_bytes(),
            );
            let mut out = Vec::with_capacity(page.body.len() + 160);
            page.write_to(&mut out);
            return finish_http(core, key, 200, &out);
        }
        _ => {}
    }
    let page = catch_unwind(AssertUnwindSafe(|| app.http(&req))).unwrap_or_else(|_| {
        log::error!("application panicked serving {}", req.path);
        core.metrics.panics += 1;
        Some(Page {
            status: 500,
            content_type: "text/plain; charset=utf-8",
            body: (&b"internal error\n"[..]).into(),
        })
    });
    if let Some(page) = page {
        let mut out = Vec::with_capacity(page.body.len() + 160);
        page.write_to(&mut out);
        return finish_http(core, key, page.status, &out);
    }
    let reject = match accept(core, app, &req) {
        Err(r) => r,
        Ok(_) => Reject::new(426, "this is a WebSocket endpoint; upgrade required")
            .header("Upgrade", "websocket"),
    };
    refuse(core, key, &reject);
}

/// Asks the app whether to accept; a panic counts as 500.
fn accept<A: Application>(
    core: &mut Core,
    app: &mut A,
    req: &Request,
) -> Result<Option<String>, Reject> {
    catch_unwind(AssertUnwindSafe(|| app.accept(req))).unwrap_or_else(|_| {
        log::error!("application panicked in accept for {}", req.path);
        core.metrics.panics += 1;
        Err(Reject::new(500, "internal error"))
    })
}

fn open<A: Application>(
    core: &mut Core,
    app: &mut A,
    key: usize,
    mut req: Request,
    accept_key: &str,
    extensions: &[Element<'_>],
) {
    let protocol = match accept(core, app, &req) {
        Ok(p) => p,
        Err(reject) => return refuse(core, key, &reject),
    };
    let (params, declined) = deflate::negotiate(&core.cfg.deflate, extensions);
    for why in declined {
        log::debug!(
            "{}: declined a permessage-deflate offer: {why}",
            core.conns[key].peer
        );
    }
    let answer = params.map(|p| p.response());
    let mut out = Vec::with_capacity(160);
    response::write_switching(&mut out, accept_key, protocol.as_deref(), answer.as_deref());
    core.push_out(key, &out);
    req.protocol = protocol;
    let now = core.now;
    let conn = &mut core.conns[key];
    conn.set_phase(Phase::WebSocket, now);
    conn.ws = Connection::server(now, params);
    conn.app_open = true;
    core.metrics.handshakes_ok += 1;
    let id = conn.id;
    log::debug!(
        "{id} {} open at {} ({})",
        conn.peer,
        req.path,
        answer.as_deref().unwrap_or("no compression")
    );
    if !call(core, app, "on_open", |a, ctx| a.on_open(ctx, id, &req)) {
        fail(
            core,
            app,
            key,
            ConnError::Panic,
            close::INTERNAL_ERROR,
            "internal error",
        );
    }
}

/// Sends an HTTP refusal and closes.
fn refuse(core: &mut Core, key: usize, reject: &Reject) {
    let conn = &core.conns[key];
    log::info!(
        "{} refused {}: {} {}",
        conn.peer,
        conn.id,
        reject.status,
        reject.reason
    );
    let mut out = Vec::new();
    reject.write_to(&mut out);
    finish_http(core, key, reject.status, &out);
}

fn finish_http(core: &mut Core, key: usize, status: u16, response: &[u8]) {
    Metrics::bump(&mut core.metrics.http_responses, status);
    core.push_out(key, response);
    let now = core.now;
    core.conns[key].set_phase(Phase::Done { complete: false }, now);
}

/// Hands an event of the WebSocket to the app.
fn on_event<A: Application>(core: &mut Core, app: &mut A, key: usize, event: Event<'_>) {
    match event {
        Event::Text(text) => deliver(core, app, key, Message::Text(text)),
        Event::Binary(data) => deliver(core, app, key, Message::Binary(data)),
        Event::Assembled(a) => deliver_assembled(core, app, key, a.text),
        Event::Closed { code, reason } => {
            let now = core.now;
            core.conns[key].sync_phase(now);
            core.mark_dirty(key);
            notify_close(core, app, key, code, reason);
        }
        Event::Failed(e) => {
            let now = core.now;
            core.conns[key].sync_phase(now);
            core.mark_dirty(key);
            failed(
                core,
                app,
                key,
                ConnError::Protocol(e),
                e.close_code(),
                &e.to_string(),
            );
        }
    }
}

/// Hands the message assembled in the connection to the app and returns
/// the buffer to the pool.
fn deliver_assembled<A: Application>(core: &mut Core, app: &mut A, key: usize, text: bool) {
    let assembled = core.conns[key].ws.take_message();
    if text {
        // Validated as it came (the decoder, or the inflater for a
        // compressed message); checking again costs one pass and keeps a
        // broken invariant from reaching the app as a `str`.
        match std::str::from_utf8(&assembled) {
            Ok(s) => deliver(core, app, key, Message::Text(s)),
            Err(_) => fail_protocol(core, app, key, ProtocolError::InvalidUtf8),
        }
    } else {
        deliver(core, app, key, Message::Binary(&assembled));
    }
    let mut assembled = assembled;
    assembled.clear();
    core.shared.buffers.give(assembled);
}

fn deliver<A: Application>(core: &mut Core, app: &mut A, key: usize, msg: Message<'_>) {
    let conn = &core.conns[key];
    if !conn.ws_open() {
        return; // §5.5.1: data after our close frame is discarded
    }
    let id = conn.id;
    core.metrics.messages_in += 1;
    core.metrics.message_bytes_in += msg.as_bytes().len() as u64;
    if !call(core, app, "on_message", |a, ctx| a.on_message(ctx, id, msg)) {
        fail(
            core,
            app,
            key,
            ConnError::Panic,
            close::INTERNAL_ERROR,
            "internal error",
        );
    }
}

/// Fails the connection from our side (§7.1.7; an app panicked): tell the
/// app, send a close frame with `code` unless one went out already, and
/// stop reading frames.
pub(crate) fn fail<A: Application>(
    core: &mut Core,
    app: &mut A,
    key: usize,
    error: ConnError,
    code: u16,
    reason: &str,
) {
    let now = core.now;
    let conn = &mut core.conns[key];
    if matches!(conn.phase, Phase::Done { .. }) {
        return;
    }
    ensure_out(&mut conn.out, &mut core.shared.buffers);
    conn.ws.abort(code, reason, &mut conn.out);
    conn.sync_phase(now);
    core.mark_dirty(key);
    failed(core, app, key, error, code, reason);
}

/// The connection has failed and its close frame is queued: log, and tell
/// the app (`on_error`, then `on_close`).
fn failed<A: Application>(
    core: &mut Core,
    app: &mut A,
    key: usize,
    error: ConnError,
    code: u16,
    reason: &str,
) {
    let conn = &core.conns[key];
    let id = conn.id;
    log::info!("{id} {}: closing with {code}: {error}", conn.peer);
    if conn.app_open {
        call(core, app, "on_error", |a, ctx| a.on_error(ctx, id, &error));
    }
    notify_close(core, app, key, code, reason);
}

/// Takes the next connection marked for removal (slow consumer, timeout),
/// tells the app (`on_error`, `on_close` with 1006) and returns its key for
/// the caller to drop.
pub(crate) fn next_doomed<A: Application>(core: &mut Core, app: &mut A) -> Option<usize> {
    loop {
        let (key, why) = core.doomed.pop()?;
        let Some(conn) = core.conns.get(key) else {
            continue;
        };
        let id = conn.id;
        log::info!("{id} {}: dropping connection: {why}", conn.peer);
        if conn.app_open {
            call(core, app, "on_error", |a, ctx| a.on_error(ctx, id, &why));
        }
        notify_close(core, app, key, close::ABNORMAL, &why.to_string());
        return Some(key);
    }
}

/// Fails the connection for a peer's protocol error, with its close code.
fn fail_protocol<A: Application>(core: &mut Core, app: &mut A, key: usize, e: ProtocolError) {
    fail(
        core,
        app,
        key,
        ConnError::Protocol(e),
        e.close_code(),
        &e.to_string(),
    );
}

/// Calls `on_close` once for a connection the app saw open.
pub(crate) fn notify_close<A: Application>(
    core: &mut Core,
    app: &mut A,
    key: usize,
    code: u16,
    reason: &str,
) {
    let conn = &mut core.conns[key];
    if !conn.app_open {
        return;
    }
    conn.app_open = false;
    let id = conn.id;
    Metrics::bump(&mut core.metrics.closes, code);
    match conn.ws.deflate() {
        Some(s) => log::debug!(
            "{id} {} closed with {code} (permessage-deflate: {} compressed messages in, {} out)",
            conn.peer,
            s.stats.messages_in,
            s.stats.messages_out
        ),
        None => log::debug!("{id} {} closed with {code}", conn.peer),
    }
    call(core, app, "on_close", |a, ctx| {
        a.on_close(ctx, id, code, reason)
    });
}
