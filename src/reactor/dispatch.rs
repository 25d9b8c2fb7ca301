//! Bytes in, application events out: runs the handshake and the frame
//! decoder over a connection's input and calls the application. No I/O.
//!
//! Every application call is wrapped in `catch_unwind`: a panic closes only
//! the connection concerned (1011) and is logged.

use super::core::{Core, Phase, ensure_out};
use super::handshake;
use crate::app::{Application, ConnError, Context, Message, Route};
use crate::metrics::Metrics;
use crate::ws::{Event, ProtocolError, close};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f` with a context for the root app `root`; false if it
/// panicked (logged and counted).
pub(crate) fn call<A: Application + ?Sized>(
    core: &mut Core,
    app: &mut A,
    root: usize,
    what: &str,
    f: impl FnOnce(&mut A, &mut Context<'_>),
) -> bool {
    let mut ctx = Context::at(core, Route::root(root));
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

/// [`call`] for the app serving connection `key`.
pub(crate) fn call_for<A: Application + ?Sized>(
    core: &mut Core,
    app: &mut A,
    key: usize,
    what: &str,
    f: impl FnOnce(&mut A, &mut Context<'_>),
) -> bool {
    let root = core.conns[key].app();
    call(core, app, root, what, f)
}

/// New bytes arrived in the shared read buffer for a connection without
/// partial input: process them, and keep whatever incomplete frame or head
/// is left (the one copy made on this path).
pub(crate) fn ingest_shared<A: Application + ?Sized>(
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
pub(crate) fn ingest_own<A: Application + ?Sized>(
    core: &mut Core,
    app: &mut A,
    key: usize,
    n: usize,
) {
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
pub(crate) fn feed<A: Application + ?Sized>(
    core: &mut Core,
    app: &mut A,
    key: usize,
    buf: &mut [u8],
) -> (usize, usize) {
    let mut pos = 0;
    while pos < buf.len() {
        match core.conns[key].phase {
            Phase::Handshake(_) => match handshake::head(core, app, key, &mut buf[pos..]) {
                0 => return (pos, 0),
                n => pos += n,
            },
            // The app decides: the rest waits, unread.
            Phase::Deciding(_) | Phase::HttpWaiting(_) => return (pos, 0),
            Phase::HttpBody(_) => pos += handshake::body(core, app, key, &buf[pos..]),
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

/// Hands an event of the WebSocket to the app.
fn on_event<A: Application + ?Sized>(core: &mut Core, app: &mut A, key: usize, event: Event<'_>) {
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
fn deliver_assembled<A: Application + ?Sized>(
    core: &mut Core,
    app: &mut A,
    key: usize,
    text: bool,
) {
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

fn deliver<A: Application + ?Sized>(core: &mut Core, app: &mut A, key: usize, msg: Message<'_>) {
    let conn = &core.conns[key];
    if !conn.ws_open() {
        return; // §5.5.1: data after our close frame is discarded
    }
    let id = conn.id;
    core.metrics.messages_in += 1;
    core.metrics.message_bytes_in += msg.as_bytes().len() as u64;
    if !call_for(core, app, key, "on_message", |a, ctx| {
        a.on_message(ctx, id, msg)
    }) {
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
pub(crate) fn fail<A: Application + ?Sized>(
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
fn failed<A: Application + ?Sized>(
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
        call_for(core, app, key, "on_error", |a, ctx| {
            a.on_error(ctx, id, &error)
        });
    }
    notify_close(core, app, key, code, reason);
}

/// A connection marked for removal (slow consumer, timeout): tells the
/// app (`on_error`, `on_close` with 1006); the caller drops it.
pub(crate) fn doomed<A: Application + ?Sized>(
    core: &mut Core,
    app: &mut A,
    key: usize,
    why: ConnError,
) {
    let Some(conn) = core.conns.get(key) else {
        return;
    };
    let id = conn.id;
    log::info!("{id} {}: dropping connection: {why}", conn.peer);
    if conn.app_open {
        call_for(core, app, key, "on_error", |a, ctx| {
            a.on_error(ctx, id, &why)
        });
    }
    notify_close(core, app, key, close::ABNORMAL, &why.to_string());
}

/// Fails the connection for a peer's protocol error, with its close code.
fn fail_protocol<A: Application + ?Sized>(
    core: &mut Core,
    app: &mut A,
    key: usize,
    e: ProtocolError,
) {
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
pub(crate) fn notify_close<A: Application + ?Sized>(
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
    call_for(core, app, key, "on_close", |a, ctx| {
        a.on_close(ctx, id, code, reason)
    });
}
