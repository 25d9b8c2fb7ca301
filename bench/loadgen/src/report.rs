//! One JSON object per run, written by hand (no serde needed).

use crate::hist::Histogram;
use std::fmt::Write;

#[derive(Default)]
pub struct Json {
    s: String,
}

pub enum V<'a> {
    Num(f64),
    Int(i64),
    Str(&'a str),
    Bool(bool),
    Null,
    /// Already-encoded JSON.
    Raw(String),
}

impl Json {
    pub fn new() -> Self {
        Json::default()
    }

    pub fn put(&mut self, key: &str, v: V<'_>) -> &mut Self {
        self.s.push(if self.s.is_empty() { '{' } else { ',' });
        quote(&mut self.s, key);
        self.s.push(':');
        match v {
            V::Num(x) if x.is_finite() => {
                // Enough digits for any figure reported here.
                let _ = write!(self.s, "{}", (x * 1e4).round() / 1e4);
            }
            V::Num(_) | V::Null => self.s.push_str("null"),
            V::Int(i) => {
                let _ = write!(self.s, "{i}");
            }
            V::Str(t) => quote(&mut self.s, t),
            V::Bool(b) => self.s.push_str(if b { "true" } else { "false" }),
            V::Raw(r) => self.s.push_str(&r),
        }
        self
    }

    pub fn num(&mut self, key: &str, x: f64) -> &mut Self {
        self.put(key, V::Num(x))
    }

    pub fn opt(&mut self, key: &str, x: Option<f64>) -> &mut Self {
        self.put(key, x.map_or(V::Null, V::Num))
    }

    pub fn int(&mut self, key: &str, i: u64) -> &mut Self {
        self.put(key, V::Int(i as i64))
    }

    pub fn str(&mut self, key: &str, t: &str) -> &mut Self {
        self.put(key, V::Str(t))
    }

    pub fn bool(&mut self, key: &str, b: bool) -> &mut Self {
        self.put(key, V::Bool(b))
    }

    /// Latency percentiles in microseconds under `prefix` (p50, p99, p999, max).
    pub fn latency(&mut self, prefix: &str, h: &Histogram) -> &mut Self {
        for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
            self.num(&format!("{prefix}_{name}_us"), h.quantile(q) as f64 / 1e3);
        }
        self.num(&format!("{prefix}_max_us"), h.max() as f64 / 1e3)
    }

    pub fn finish(&self) -> String {
        if self.s.is_empty() {
            "{}".into()
        } else {
            format!("{}}}", self.s)
        }
    }
}

pub fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON array of already-encoded values.
pub fn array(items: &[String]) -> String {
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes() {
        let mut j = Json::new();
        j.str("a", "x\"y\n")
            .int("b", 3)
            .num("c", 1.23456789)
            .opt("d", None)
            .bool("e", true);
        assert_eq!(
            j.finish(),
            r#"{"a":"x\"y\u000a","b":3,"c":1.2346,"d":null,"e":true}"#
        );
    }
}
