//! [`Broker`]: a ready WAMP v1 app (Ratchet's BasicPubSub) — publish goes
//! to every eligible, non-excluded subscriber — with procedures written as
//! Rust closures.

use super::server::{Call, WampApp, WampContext};
use serde_json::Value;
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

/// Pub/sub for everybody plus registered procedures.
#[derive(Default)]
pub struct Broker {
    procedures: HashMap<String, Procedure>,
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
            None => ctx.call_error(
                &call,
                ERROR_NO_SUCH_PROCEDURE,
                &format!("no procedure {procedure}"),
                None,
            ),
        };
    }
}
