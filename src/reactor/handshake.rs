//! A connection before it is a WebSocket: the request head, the upgrade
//! decision (now or later), plain HTTP requests with their bodies and
//! keep-alive, and the answers apps give later through their context.
//! No I/O.

use super::core::{Conn, Core, Op, Pending, Phase};
use super::dispatch::{call_for, fail};
use crate::app::{Accept, Application, ConnError, Http, Page, Reject, Request};
use crate::http::{HeadScanner, Upgrade, head, response, upgrade};
use crate::metrics::Metrics;
use crate::ws::{self, Connection, close, deflate};

/// Handles input while a request head is being read; returns the bytes
/// consumed (0: head incomplete, keep the bytes).
pub(crate) fn head<A: Application + ?Sized>(
    core: &mut Core,
    app: &mut A,
    key: usize,
    buf: &mut [u8],
) -> usize {
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
    let head = match head::parse_head(&buf[..len], &limits) {
        Ok(h) => h,
        Err(e) => {
            refuse(core, key, &Reject::new(e.status(), e.to_string()));
            return buf.len();
        }
    };
    if let Err(reject) = super::proxy::resolve_client(core, key, &head) {
        refuse(core, key, &reject);
        return buf.len();
    }
    let peer = core.conns[key].peer;
    match upgrade::check(&head) {
        Err(reject) => refuse(core, key, &reject),
        Ok(Upgrade::Plain { body, keep_alive }) => {
            let req = Request::new(&head, peer, &[]);
            plain(core, app, key, req, body, keep_alive);
        }
        Ok(Upgrade::WebSocket {
            key: ws_key,
            protocols,
            extensions,
        }) => {
            let (params, declined) = deflate::negotiate(&core.cfg.deflate, &extensions);
            for why in declined {
                log::debug!("{peer}: declined a permessage-deflate offer: {why}");
            }
            let pending = Pending {
                req: Request::new(&head, peer, &protocols),
                accept_key: ws::accept_key(ws_key.as_bytes()),
                extensions: params.map(|p| p.response()),
                deflate: params,
                protocol: None,
                keep_alive: false,
                need: 0,
            };
            decide(core, app, key, pending);
        }
    }
    len
}

/// Asks the app about a WebSocket handshake; a panic counts as 500.
fn decide<A: Application + ?Sized>(core: &mut Core, app: &mut A, key: usize, mut pending: Pending) {
    let id = core.conns[key].id;
    let mut decision = Err(Reject::new(500, "internal error"));
    let ok = call_for(core, app, key, "accept", |a, ctx| {
        decision = a.accept(ctx, id, &pending.req);
    });
    if !ok {
        decision = Err(Reject::new(500, "internal error"));
    }
    match decision {
        Err(reject) => refuse(core, key, &reject),
        Ok(Accept::Now(protocol)) => open(core, app, key, pending, protocol),
        Ok(Accept::Later(protocol)) => {
            pending.protocol = protocol;
            let now = core.now;
            let conn = &mut core.conns[key];
            conn.set_phase(Phase::Deciding(Box::new(pending)), now);
            log::debug!("{id} {}: handshake waits for the app", conn.peer);
        }
    }
}

/// Sends the 101 and opens the connection as a WebSocket.
fn open<A: Application + ?Sized>(
    core: &mut Core,
    app: &mut A,
    key: usize,
    pending: Pending,
    protocol: Option<String>,
) {
    let Pending {
        mut req,
        accept_key,
        deflate,
        extensions,
        ..
    } = pending;
    let mut out = Vec::with_capacity(160);
    response::write_switching(
        &mut out,
        &accept_key,
        protocol.as_deref(),
        extensions.as_deref(),
    );
    core.push_out(key, &out);
    req.protocol = protocol;
    let now = core.now;
    let conn = &mut core.conns[key];
    conn.set_phase(Phase::WebSocket, now);
    conn.ws = Connection::server(now, deflate);
    conn.app_open = true;
    core.metrics.handshakes_ok += 1;
    let id = conn.id;
    log::debug!(
        "{id} {} open at {} ({})",
        conn.peer,
        req.path,
        extensions.as_deref().unwrap_or("no compression")
    );
    if !call_for(core, app, key, "on_open", |a, ctx| a.on_open(ctx, id, &req)) {
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

/// A plain HTTP request head: read its body, or serve it.
fn plain<A: Application + ?Sized>(
    core: &mut Core,
    app: &mut A,
    key: usize,
    req: Request,
    body: usize,
    keep_alive: bool,
) {
    let limit = core.cfg.max_http_body;
    if body > limit {
        let reject = Reject::new(413, format!("request body over {limit} bytes"));
        return refuse(core, key, &reject);
    }
    let mut pending = Box::new(Pending {
        req,
        accept_key: String::new(),
        deflate: None,
        extensions: None,
        protocol: None,
        keep_alive,
        need: body,
    });
    if body == 0 {
        return serve(core, app, key, pending);
    }
    pending.req.body.reserve_exact(body);
    let now = core.now;
    core.conns[key].set_phase(Phase::HttpBody(pending), now);
}

/// Body bytes of a plain request; returns how many belonged to it.
pub(crate) fn body<A: Application + ?Sized>(
    core: &mut Core,
    app: &mut A,
    key: usize,
    buf: &[u8],
) -> usize {
    let conn = &mut core.conns[key];
    let Phase::HttpBody(pending) = &mut conn.phase else {
        return 0;
    };
    let take = pending.need.min(buf.len());
    pending.req.body.extend_from_slice(&buf[..take]);
    pending.need -= take;
    if pending.need > 0 {
        return take;
    }
    let done = std::mem::replace(&mut conn.phase, Phase::Done { complete: false });
    if let Phase::HttpBody(pending) = done {
        serve(core, app, key, pending);
    }
    take
}

/// Hands a complete plain request to the app.
fn serve<A: Application + ?Sized>(core: &mut Core, app: &mut A, key: usize, pending: Box<Pending>) {
    let id = core.conns[key].id;
    let mut answer = Http::Pass;
    let ok = call_for(core, app, key, "http", |a, ctx| {
        answer = a.http(ctx, id, &pending.req);
    });
    if !ok {
        answer = Http::Respond(Page::text(500, "internal error\n"));
    }
    match answer {
        Http::Respond(page) => respond(core, key, &page, pending.keep_alive),
        Http::Later => {
            let now = core.now;
            core.conns[key].set_phase(Phase::HttpWaiting(pending), now);
        }
        // Not an HTTP endpoint: a WebSocket one (426) for GET.
        Http::Pass if matches!(pending.req.method.as_str(), "GET" | "HEAD") => {
            let reject = Reject::new(426, "this is a WebSocket endpoint; upgrade required")
                .header("Upgrade", "websocket");
            refuse(core, key, &reject);
        }
        Http::Pass => {
            let reject = Reject::new(405, format!("{} is not served here", pending.req.method))
                .header("Allow", "GET");
            refuse(core, key, &reject);
        }
    }
}

/// Writes an answer to a plain request; with keep-alive the connection
/// waits for the next request, otherwise it closes after the answer.
fn respond(core: &mut Core, key: usize, page: &Page, keep_alive: bool) {
    Metrics::bump(&mut core.metrics.http_responses, page.status);
    let mut out = Vec::with_capacity(page.body.len() + 200);
    page.write_to(&mut out, keep_alive);
    core.push_out(key, &out);
    let now = core.now;
    let conn = &mut core.conns[key];
    conn.served = true;
    if keep_alive {
        conn.set_phase(Phase::Handshake(HeadScanner::default()), now);
    } else {
        conn.set_phase(Phase::Done { complete: false }, now);
    }
}

/// Sends an HTTP refusal and closes.
pub(crate) fn refuse(core: &mut Core, key: usize, reject: &Reject) {
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
    Metrics::bump(&mut core.metrics.http_responses, reject.status);
    core.push_out(key, &out);
    let now = core.now;
    core.conns[key].set_phase(Phase::Done { complete: false }, now);
}

/// Applies a decision an app made through its context. Returns the
/// connection's key when it may now process the input it held.
pub(crate) fn apply<A: Application + ?Sized>(
    core: &mut Core,
    app: &mut A,
    op: Op,
) -> Option<usize> {
    let key = core.key_of(op.conn())?;
    let conn = &mut core.conns[key];
    if !op.awaited_in(&conn.phase) {
        return None;
    }
    let phase = std::mem::replace(&mut conn.phase, Phase::Done { complete: false });
    let (Phase::Deciding(pending) | Phase::HttpWaiting(pending)) = phase else {
        return None;
    };
    match op {
        Op::Accept(_, protocol) => {
            let protocol = protocol.or_else(|| pending.protocol.clone());
            open(core, app, key, *pending, protocol);
        }
        Op::Reject(_, reject) => refuse(core, key, &reject),
        Op::Respond(_, page) => respond(core, key, &page, pending.keep_alive),
    }
    Some(key)
}

/// The answer to a connection whose app did not decide within the
/// handshake timeout.
pub(crate) fn too_late(core: &mut Core, key: usize) {
    core.metrics.decision_timeouts += 1;
    let conn: &Conn = &core.conns[key];
    log::warn!(
        "{} {}: the application did not decide in time",
        conn.id,
        conn.peer
    );
    let reject =
        Reject::new(503, "the application did not answer in time").header("Retry-After", "1");
    refuse(core, key, &reject);
}
