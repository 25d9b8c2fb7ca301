//! Decisions kept in PHP, asked over plain HTTP (JSON in, JSON out) on the
//! reactor's own client: [`AuthBackend`] decides handshakes (connect
//! authorisation); [`Who`] is what every backend call says about the
//! connection (its session, user and attached data).

use super::{Accept, Application, ConnError, ConnId, Context, Http, Message, Reject, Reply};
use super::{Request, Ticket, TimerId, delegate_connection_events, negotiate};
use crate::clients::http::{Request as HttpRequest, Response, Url};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// A backend endpoint: where calls go and whether they carry the
/// client's cookies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// The URL calls are POSTed to.
    pub url: Url,
    /// Send the client's `Cookie` header along (`--forward-cookies`), so
    /// the backend's own `session_start()` works as in a page request.
    pub forward_cookies: bool,
}

impl Backend {
    /// A JSON POST of `body` to the backend, with `cookie` when cookies
    /// are forwarded.
    pub fn post(&self, body: &Value, cookie: Option<&str>) -> Option<HttpRequest> {
        let mut req = HttpRequest::new("POST", self.url.target())
            .ok()?
            .header("Content-Type", "application/json")
            .ok()?
            .header("Accept", "application/json")
            .ok()?;
        if self.forward_cookies
            && let Some(cookie) = cookie
        {
            req = req.header("Cookie", cookie).ok()?;
        }
        Some(req.body(body.to_string().into_bytes()))
    }
}

/// What backend calls say about a connection: `"session"` (the JSON view
/// of its PHP session, or null), `"user"` (or null), `"data"` (what
/// connect authorisation attached, or null).
pub struct Who;

impl Who {
    /// Adds `session`, `user` and `data` of `conn` to `body`.
    pub fn add(ctx: &Context<'_>, conn: ConnId, body: &mut Map<String, Value>) {
        let session = ctx.session(conn).map_or(Value::Null, |s| s.to_json());
        let user = ctx.user(conn).map_or(Value::Null, |u| Value::from(&*u));
        let data = ctx.data(conn).map_or(Value::Null, |d| (*d).clone());
        body.insert("session".into(), session);
        body.insert("user".into(), user);
        body.insert("data".into(), data);
    }
}

/// The first line of a response body, for a refusal's reason (bounded).
pub fn first_line(resp: &Response) -> String {
    let text = String::from_utf8_lossy(&resp.body);
    let line = text.lines().next().unwrap_or("").trim();
    let line = if line.is_empty() {
        resp.reason.as_str()
    } else {
        line
    };
    line.chars().take(200).collect()
}

/// Asks the backend before every WebSocket handshake: POSTs
/// `{"path", "query", "headers": {lower-case name: value}, "peer",
/// "session", "user"}` and decides by the answer:
/// - 2xx accepts; a JSON object body may set `"user"` (a string or an
///   integer) and attach `"data"` (anything) to the connection;
/// - 401, 403 or another 4xx refuses with that status and the body's
///   first line as the reason;
/// - 5xx, any other status, a failed connection or a timeout: 503, logged.
///
/// `Cookie` is left out of `headers` unless cookies are forwarded (then
/// it goes as the request's own `Cookie` header too).
pub struct AuthBackend<A> {
    inner: A,
    backend: Backend,
    waiting: HashMap<Ticket, (ConnId, Request)>,
}

impl<A: Application> AuthBackend<A> {
    /// Wraps `inner`.
    pub fn new(backend: Backend, inner: A) -> Self {
        AuthBackend {
            inner,
            backend,
            waiting: HashMap::new(),
        }
    }

    fn body(&self, ctx: &Context<'_>, conn: ConnId, req: &Request) -> Value {
        let mut headers = Map::new();
        for (name, value) in &req.headers {
            let name = name.to_ascii_lowercase();
            if name == "cookie" && !self.backend.forward_cookies {
                continue;
            }
            match headers.get_mut(&name) {
                Some(Value::String(prev)) => {
                    prev.push_str(", ");
                    prev.push_str(value);
                }
                _ => {
                    headers.insert(name, Value::from(value.as_str()));
                }
            }
        }
        let mut body = Map::new();
        body.insert("path".into(), Value::from(req.path.as_str()));
        body.insert("query".into(), Value::from(req.query.as_str()));
        body.insert("headers".into(), Value::Object(headers));
        body.insert("peer".into(), Value::from(req.peer.to_string()));
        Who::add(ctx, conn, &mut body);
        body.remove("data");
        Value::Object(body)
    }

    /// The decision the backend's answer makes.
    fn judge(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        req: &Request,
        result: Result<Response, crate::reactor::HttpError>,
    ) -> Result<Accept, Reject> {
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                log::warn!("{conn}: connect authorisation failed: {e}");
                ctx.count("backend_auth", "failed");
                return Err(Reject::new(503, "the authorisation backend is unavailable"));
            }
        };
        match resp.status {
            200..=299 => {
                if let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(&resp.body) {
                    match answer.get("user") {
                        Some(Value::String(u)) if !u.is_empty() => {
                            ctx.set_user(conn, Some(Arc::from(u.as_str())));
                        }
                        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {
                            ctx.set_user(conn, Some(Arc::from(n.to_string())));
                        }
                        None | Some(Value::Null) => {}
                        Some(other) => log::warn!(
                            "{conn}: connect authorisation gave a user that is not a string or an integer: {other}"
                        ),
                    }
                    if let Some(data) = answer.get("data") {
                        ctx.set_data(conn, Some(Arc::new(data.clone())));
                    }
                }
                ctx.count("backend_auth", "accepted");
                self.inner.accept(ctx, conn, req)
            }
            status @ 400..=499 => {
                ctx.count("backend_auth", "refused");
                let reason = first_line(&resp);
                log::info!("{conn}: connect refused by the backend: {status} {reason}");
                Err(Reject::new(status, reason))
            }
            status => {
                ctx.count("backend_auth", "failed");
                log::warn!(
                    "{conn}: connect authorisation answered {status}: {}",
                    first_line(&resp)
                );
                Err(Reject::new(503, "the authorisation backend failed"))
            }
        }
    }
}

impl<A: Application> Application for AuthBackend<A> {
    delegate_connection_events!(inner);

    fn accept(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        req: &Request,
    ) -> Result<Accept, Reject> {
        let body = self.body(ctx, conn, req);
        let cookie = req.header("cookie");
        let ticket = self
            .backend
            .post(&body, cookie)
            .and_then(|r| ctx.http_request(&self.backend.url, r));
        let Some(ticket) = ticket else {
            ctx.count("backend_auth", "failed");
            return Err(Reject::new(503, "the authorisation backend is unavailable"));
        };
        self.waiting.insert(ticket, (conn, req.clone()));
        Ok(Accept::Later(negotiate(
            self.inner.protocols(),
            &req.offered_protocols,
        )))
    }

    fn http(&mut self, ctx: &mut Context<'_>, conn: ConnId, req: &Request) -> Http {
        self.inner.http(ctx, conn, req)
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        self.inner.on_timer(ctx, timer)
    }
    fn on_reply(&mut self, ctx: &mut Context<'_>, ticket: Ticket, reply: Reply<'_>) {
        let Some((conn, req)) = self.waiting.remove(&ticket) else {
            return self.inner.on_reply(ctx, ticket, reply);
        };
        let Reply::Http(result) = reply else {
            return;
        };
        if !ctx.is_deciding(conn) {
            return; // timed out (503 sent) or gone
        }
        let decision = self.judge(ctx, conn, &req, result);
        ctx.decide(conn, decision);
    }
}
