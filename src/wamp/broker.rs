//! [`Broker`]: a ready WAMP v1 app (Ratchet's BasicPubSub) — publish goes
//! to every eligible, non-excluded subscriber — with procedures written as
//! Rust closures.

use super::server::{Call, Subscribe, WampApp, WampContext};
use crate::app::{Backend, ConnId, ConnMap, Reply, Request, Ticket, Who, first_line};
use crate::clients::http::Response;
use crate::reactor::HttpError;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Error URI for a call to a procedure nobody registered.
pub const ERROR_NO_SUCH_PROCEDURE: &str = "urn:sprocket:error:no-such-procedure";

/// The error a procedure answers with: CALLERROR's URI, description and
/// optional details.
#[derive(Clone, Debug, PartialEq)]
pub struct CallError {
    /// Error URI.
    pub uri: String,
    /// Human-readable description.
    pub desc: String,
    /// Optional details.
    pub details: Option<Value>,
}

impl CallError {
    /// An error without details.
    pub fn new(uri: impl Into<String>, desc: impl Into<String>) -> Self {
        CallError {
            uri: uri.into(),
            desc: desc.into(),
            details: None,
        }
    }
}

type Procedure = Box<dyn FnMut(&[Value]) -> Result<Value, CallError>>;

/// CALLERROR URI of a forwarded call the backend did not answer usably.
pub const ERROR_BACKEND: &str = "urn:sprocket:error:backend";
/// CALLERROR URI of a call over the per-connection in-flight bound.
pub const ERROR_BUSY: &str = "urn:sprocket:error:busy";

/// Calls or subscriptions forwarded to a backend: every URI, or only
/// those under `prefix`.
#[derive(Clone, Debug)]
pub struct Forward {
    /// Where they go.
    pub backend: Backend,
    /// Only URIs starting with this.
    pub prefix: Option<String>,
}

impl Forward {
    fn covers(&self, uri: &str) -> bool {
        self.prefix.as_deref().is_none_or(|p| uri.starts_with(p))
    }
}

/// Pub/sub for everybody plus registered procedures.
#[derive(Default)]
pub struct Broker {
    procedures: HashMap<String, Procedure>,
    rpc: Option<Forward>,
    subscribe: Option<Forward>,
    max_calls: usize,
    /// Forwarded calls and subscriptions in flight, by ticket.
    calls: HashMap<Ticket, Call>,
    subscriptions: HashMap<Ticket, (ConnId, String)>,
    /// Subscriptions being asked about, so that a repeated SUBSCRIBE does
    /// not ask again.
    asking: std::collections::HashSet<(ConnId, String)>,
    in_flight: ConnMap<usize>,
    /// Each connection's `Cookie` header, kept when a backend forwards
    /// cookies.
    cookies: ConnMap<String>,
}

impl Broker {
    /// A broker without procedures.
    pub fn new() -> Self {
        Broker::default()
    }

    /// Registers `f` as the procedure at full URI `uri`.
    pub fn procedure(
        mut self,
        uri: impl Into<String>,
        f: impl FnMut(&[Value]) -> Result<Value, CallError> + 'static,
    ) -> Self {
        self.procedures.insert(uri.into(), Box::new(f));
        self
    }

    /// Forwards calls to procedures without a local handler (under the
    /// prefix, if any) to the RPC backend: POST `{"procedure", "args",
    /// "session_id", "user", "session", "data"}`; a 2xx JSON body is the
    /// CALLRESULT, a 4xx/5xx `{"error", "desc", "details"?}` the
    /// CALLERROR; anything else or a timeout is a CALLERROR
    /// [`ERROR_BACKEND`]. At most `max_in_flight` per connection; more
    /// get [`ERROR_BUSY`].
    pub fn rpc_backend(mut self, forward: Forward, max_in_flight: usize) -> Self {
        self.rpc = Some(forward);
        self.max_calls = max_in_flight.max(1);
        self
    }

    /// Asks the subscribe backend about every SUBSCRIBE (under the
    /// prefix, if any): POST `{"topic", "session_id", "user", "session",
    /// "data"}`; the subscription takes effect only on a 2xx.
    pub fn subscribe_backend(mut self, forward: Forward) -> Self {
        self.subscribe = Some(forward);
        self
    }

    fn forwards_cookies(&self) -> bool {
        [&self.rpc, &self.subscribe]
            .iter()
            .any(|f| f.as_ref().is_some_and(|f| f.backend.forward_cookies))
    }

    /// POSTs `body` (plus who `conn` is) to `forward`'s backend.
    fn post(
        &self,
        ctx: &mut WampContext<'_, '_>,
        forward: &Forward,
        conn: ConnId,
        mut body: Map<String, Value>,
    ) -> Option<Ticket> {
        body.insert(
            "session_id".into(),
            ctx.session_id(conn).map_or(Value::Null, Value::from),
        );
        let raw = ctx.context();
        Who::add(raw, conn, &mut body);
        let cookie = self.cookies.get(conn).map(String::as_str);
        let request = forward.backend.post(&Value::Object(body), cookie)?;
        raw.http_request(&forward.backend.url, request)
    }

    fn forward_call(
        &mut self,
        ctx: &mut WampContext<'_, '_>,
        call: Call,
        procedure: &str,
        args: &[Value],
    ) {
        let Some(forward) = self.rpc.clone() else {
            return;
        };
        let busy = self.in_flight.get(call.conn).copied().unwrap_or(0) >= self.max_calls;
        if busy {
            ctx.context().count("backend_rpc", "busy");
            ctx.call_error(
                &call,
                ERROR_BUSY,
                &format!("more than {} calls in flight", self.max_calls),
                None,
            );
            return;
        }
        let mut body = Map::new();
        body.insert("procedure".into(), Value::from(procedure));
        body.insert("args".into(), Value::from(args.to_vec()));
        match self.post(ctx, &forward, call.conn, body) {
            Some(ticket) => {
                match self.in_flight.get_mut(call.conn) {
                    Some(n) => *n += 1,
                    None => {
                        self.in_flight.insert(call.conn, 1);
                    }
                }
                self.calls.insert(ticket, call);
            }
            None => {
                ctx.context().count("backend_rpc", "failed");
                ctx.call_error(&call, ERROR_BACKEND, "the RPC backend is unavailable", None);
            }
        }
    }

    fn call_answered(
        &mut self,
        ctx: &mut WampContext<'_, '_>,
        call: Call,
        result: Result<Response, HttpError>,
    ) {
        if let Some(n) = self.in_flight.get_mut(call.conn) {
            *n = n.saturating_sub(1);
        }
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                log::warn!("{}: RPC backend call failed: {e}", call.conn);
                ctx.context().count("backend_rpc", "failed");
                ctx.call_error(
                    &call,
                    ERROR_BACKEND,
                    &format!("the RPC backend failed: {e}"),
                    None,
                );
                return;
            }
        };
        let body: Option<Value> = serde_json::from_slice(&resp.body).ok();
        match (resp.status, body) {
            (200..=299, Some(result)) => {
                ctx.context().count("backend_rpc", "result");
                ctx.call_result(&call, &result);
            }
            (400..=599, Some(Value::Object(e))) if e.get("error").is_some_and(Value::is_string) => {
                ctx.context().count("backend_rpc", "error");
                let uri = e
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or(ERROR_BACKEND);
                let desc = e.get("desc").and_then(Value::as_str).unwrap_or("");
                ctx.call_error(&call, uri, desc, e.get("details"));
            }
            (status, _) => {
                ctx.context().count("backend_rpc", "failed");
                log::warn!(
                    "{}: RPC backend answered {status} without a usable JSON body: {}",
                    call.conn,
                    first_line(&resp)
                );
                ctx.call_error(
                    &call,
                    ERROR_BACKEND,
                    &format!("the RPC backend answered {status}"),
                    None,
                );
            }
        }
    }

    /// The demo procedures the `sprocket` binary registers:
    /// `urn:sprocket:echo` returns its argument (or the list of them) and
    /// `urn:sprocket:add` sums numbers.
    pub fn with_demo_procedures(self) -> Self {
        self.procedure("urn:sprocket:echo", |args| {
            Ok(match args {
                [one] => one.clone(),
                many => Value::from(many.to_vec()),
            })
        })
        .procedure("urn:sprocket:add", add)
    }
}

/// `urn:sprocket:add`: integers in, an integer out (PHP's clients decode
/// `3.0` as `float(3)`); any float, or an integer sum past `i64`, makes the
/// sum a float.
fn add(args: &[Value]) -> Result<Value, CallError> {
    let not_numbers = || {
        CallError::new(
            "urn:sprocket:error:invalid-argument",
            "arguments must be numbers",
        )
    };
    let mut int_sum = Some(0i64);
    let mut sum = 0.0;
    for a in args {
        sum += a.as_f64().ok_or_else(not_numbers)?;
        int_sum = int_sum.and_then(|s| a.as_i64().and_then(|n| s.checked_add(n)));
    }
    Ok(match int_sum {
        Some(n) => Value::from(n),
        None => serde_json::Number::from_f64(sum).map_or(Value::Null, Value::Number),
    })
}

impl WampApp for Broker {
    fn on_call(
        &mut self,
        ctx: &mut WampContext<'_, '_>,
        call: Call,
        procedure: &str,
        args: &[Value],
    ) {
        match self.procedures.get_mut(procedure) {
            Some(f) => match f(args) {
                Ok(result) => ctx.call_result(&call, &result),
                Err(e) => ctx.call_error(&call, &e.uri, &e.desc, e.details.as_ref()),
            },
            None if self.rpc.as_ref().is_some_and(|f| f.covers(procedure)) => {
                self.forward_call(ctx, call, procedure, args);
                true
            }
            None => ctx.call_error(
                &call,
                ERROR_NO_SUCH_PROCEDURE,
                &format!("no procedure {procedure}"),
                None,
            ),
        };
    }

    fn on_open(&mut self, _ctx: &mut WampContext<'_, '_>, conn: ConnId, req: &Request) {
        if self.forwards_cookies()
            && let Some(cookie) = req.header("cookie")
        {
            self.cookies.insert(conn, cookie.to_owned());
        }
    }

    fn on_close(&mut self, _ctx: &mut WampContext<'_, '_>, conn: ConnId) {
        self.cookies.remove(conn);
        self.in_flight.remove(conn);
        // Calls in flight stay until their answers come; those find the
        // connection gone and are dropped.
    }

    fn guards_subscriptions(&self) -> bool {
        self.subscribe.is_some()
    }

    fn on_subscribe(
        &mut self,
        ctx: &mut WampContext<'_, '_>,
        conn: ConnId,
        topic: &str,
    ) -> Subscribe {
        let Some(forward) = self.subscribe.clone().filter(|f| f.covers(topic)) else {
            return Subscribe::Allow;
        };
        if self.asking.contains(&(conn, topic.to_owned())) {
            return Subscribe::Later; // already asked; the answer covers both
        }
        let mut body = Map::new();
        body.insert("topic".into(), Value::from(topic));
        match self.post(ctx, &forward, conn, body) {
            Some(ticket) => {
                self.subscriptions.insert(ticket, (conn, topic.to_owned()));
                self.asking.insert((conn, topic.to_owned()));
                Subscribe::Later
            }
            None => {
                ctx.context().count("backend_subscribe", "failed");
                log::warn!(
                    "{conn}: subscription to {topic} refused: the subscribe backend is unavailable"
                );
                Subscribe::Refuse
            }
        }
    }

    fn on_reply(&mut self, ctx: &mut WampContext<'_, '_>, ticket: Ticket, reply: Reply<'_>) {
        let Reply::Http(result) = reply else {
            return;
        };
        if let Some(call) = self.calls.remove(&ticket) {
            return self.call_answered(ctx, call, result);
        }
        let Some((conn, topic)) = self.subscriptions.remove(&ticket) else {
            return;
        };
        let topic = match self.asking.take(&(conn, topic)) {
            Some((_, topic)) => topic,
            None => return,
        };
        match result {
            Ok(resp) if (200..300).contains(&resp.status) => {
                ctx.context().count("backend_subscribe", "allowed");
                ctx.subscribe(conn, &topic);
            }
            Ok(resp) => {
                ctx.context().count("backend_subscribe", "refused");
                log::info!(
                    "{conn}: subscription to {topic} refused by the backend: {} {}",
                    resp.status,
                    first_line(&resp)
                );
                ctx.refuse_subscription(conn, &topic, "refused by the backend");
            }
            Err(e) => {
                ctx.context().count("backend_subscribe", "failed");
                log::warn!(
                    "{conn}: subscription to {topic} refused: the subscribe backend failed: {e}"
                );
                ctx.refuse_subscription(conn, &topic, "the subscribe backend failed");
            }
        }
    }
}
