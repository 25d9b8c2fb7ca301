//! A JSON view of PHP values, and PHP values from JSON (what apps write).
//!
//! | PHP | JSON |
//! |---|---|
//! | `null`, `bool`, `int` | `null`, `true`/`false`, a number |
//! | finite `float` | a number (`1.0`, `-0.0`, `1e25`) |
//! | `INF`, `-INF`, `NAN` | `{"$float":"INF"}`, `{"$float":"-INF"}`, `{"$float":"NAN"}` |
//! | string, valid UTF-8 | a string |
//! | string, other bytes | `{"$bytes":"<standard base64>"}` |
//! | array with keys exactly `0..n-1` in order | an array |
//! | any other array | an object, in order; int keys as decimal strings, non-UTF-8 keys lossily |
//! | object (`O:`) | `{"$class":"Name", <properties>}`, properties by unmangled name |
//! | `Serializable` object (`C:`) | `{"$class":"Name","$serialized":"<payload>"}` (the payload as `$bytes` if not UTF-8) |
//! | enum case | `{"$enum":"Class:Case"}` |
//! | `R:`/`r:` reference | the view of its target (also one inside a `C:` payload); a ref back into a value being shown (a cycle) is `{"$ref":slot}` |
//!
//! Property names: private (`\0Class\0x`) and protected (`\0*\0x`)
//! properties show as `x`. When two properties would show under one name
//! (a parent's private `x` beside a public `x`, or a property called
//! `$class`), the first keeps the name and a later one shows under its
//! full mangled name (with its NUL bytes); if that is taken too it is left
//! out. Repeated array keys show once, in the first one's place, with the
//! last one's value (as PHP keeps them).
//!
//! A session's refs share one numbering, so a ref resolves only through
//! [`SessionData::to_json`] or [`SessionData::value_to_json`];
//! [`value_to_json`] numbers a lone value from 1 (as `unserialize()`
//! does). Expanding refs is bounded: past a million values shown, further
//! refs show as `{"$ref":slot}`.
//!
//! [`from_json`] is the inverse for what apps write: `null`, booleans,
//! integers that fit an `i64` (other numbers, including `1.0`, become
//! floats), strings, arrays (lists with keys `0..n-1`), objects (arrays with
//! string keys in order, a canonical decimal key such as `"7"` becoming
//! the int key 7), and `{"$bytes":…}` / `{"$float":…}` when they are the
//! only key (and well-formed).

use super::format::SessionData;
use super::path::unmangle;
use super::refs::{Loc, Slots, slot_value, value_at};
use super::serialize::canonical_int;
use super::value::{Key, Value};
use base64::Engine;
use serde_json::{Map, Value as Json};

/// How many values a view expands before refs stop being followed.
const BUDGET: usize = 1_000_000;

impl SessionData {
    /// The session as a JSON object of its top-level names.
    pub fn to_json(&self) -> Json {
        let mut r = Render::new(&self.entries);
        let mut map = Map::new();
        for (i, (k, v)) in self.entries.iter().enumerate() {
            r.stack.push(vec![i]);
            let j = r.value(v);
            r.stack.pop();
            map.insert(key_text(k), j);
        }
        Json::Object(map)
    }

    /// The JSON view of one value of this session (refs resolved in it).
    pub fn value_to_json(&self, v: &Value) -> Json {
        Render::new(&self.entries).value(v)
    }
}

/// The JSON view of a lone value, numbered from 1 as `unserialize()` does.
pub fn value_to_json(v: &Value) -> Json {
    let entries = [(Key::Int(0), v.clone())];
    let mut r = Render::new(&entries);
    r.stack.push(vec![0]);
    r.value(v)
}

struct Render<'a> {
    entries: &'a [(Key, Value)],
    slots: Slots,
    /// The paths of the containers being shown, outermost first.
    stack: Vec<Vec<usize>>,
    budget: usize,
}

impl<'a> Render<'a> {
    fn new(entries: &'a [(Key, Value)]) -> Self {
        Render {
            entries,
            slots: Slots::of(entries),
            stack: Vec::new(),
            budget: BUDGET,
        }
    }

    fn value(&mut self, v: &Value) -> Json {
        self.budget = self.budget.saturating_sub(1);
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(n) => Json::from(*n),
            Value::Float(f) => float(*f),
            Value::Str(s) => bytes(s),
            Value::Array(items) => self.array(items),
            Value::Object(o) => {
                let mut map = Map::new();
                map.insert("$class".into(), text(&o.class));
                for (j, (k, c)) in o.props.iter().enumerate() {
                    let shown = self.child(j, c);
                    let (short, full) = match k {
                        Key::Int(n) => (n.to_string(), n.to_string()),
                        Key::Str(s) => (text_lossy(unmangle(s)), text_lossy(s)),
                    };
                    if !map.contains_key(&short) {
                        map.insert(short, shown);
                    } else if !map.contains_key(&full) {
                        map.insert(full, shown);
                    }
                }
                Json::Object(map)
            }
            Value::Custom { class, data } => {
                let mut map = Map::new();
                map.insert("$class".into(), text(class));
                map.insert("$serialized".into(), bytes(data));
                Json::Object(map)
            }
            Value::Enum { class, case } => {
                let mut s = text_lossy(class);
                s.push(':');
                s.push_str(&text_lossy(case));
                single("$enum", Json::String(s))
            }
            Value::Ref { slot, .. } => self.reference(*slot, v),
        }
    }

    fn array(&mut self, items: &[(Key, Value)]) -> Json {
        let list = items
            .iter()
            .zip(0i64..)
            .all(|((k, _), n)| *k == Key::Int(n));
        if list {
            return Json::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(j, (_, c))| self.child(j, c))
                    .collect(),
            );
        }
        let mut map = Map::new();
        for (j, (k, c)) in items.iter().enumerate() {
            let shown = self.child(j, c);
            map.insert(key_text(k), shown);
        }
        Json::Object(map)
    }

    /// Member `j` of the container on top of the stack.
    fn child(&mut self, j: usize, c: &Value) -> Json {
        let mut path = self.stack.last().cloned().unwrap_or_default();
        path.push(j);
        self.stack.push(path);
        let shown = self.value(c);
        self.stack.pop();
        shown
    }

    fn reference(&mut self, slot: u32, v: &Value) -> Json {
        let cycle = || single("$ref", Json::from(slot));
        let path = match self.slots.target(slot) {
            Some(Loc::At(p)) => p.clone(),
            Some(Loc::InPayload(p, _)) if self.budget > 0 => {
                // Inside a `C:` payload: shown from a parsed copy.
                let Some(copy) = slot_value(self.entries, &self.slots, slot) else {
                    return cycle();
                };
                if self.stack.iter().any(|q| q == p) {
                    return cycle();
                }
                self.stack.push(p.clone());
                let shown = self.value(&copy);
                self.stack.pop();
                return shown;
            }
            _ => return cycle(),
        };
        // The stack's top is the ref itself; a target at or above it is a cycle.
        let below = self.stack.len().saturating_sub(1);
        if self.budget == 0 || self.stack.iter().take(below).any(|p| *p == path) {
            return cycle();
        }
        let Some(target) = value_at(self.entries, &path) else {
            return cycle();
        };
        if std::ptr::eq(target, v) {
            return cycle();
        }
        self.stack.push(path);
        let shown = self.value(target);
        self.stack.pop();
        shown
    }
}

fn single(key: &str, v: Json) -> Json {
    let mut map = Map::new();
    map.insert(key.into(), v);
    Json::Object(map)
}

fn float(f: f64) -> Json {
    match serde_json::Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None => single("$float", Json::String(super::serialize::format_float(f))),
    }
}

fn bytes(s: &[u8]) -> Json {
    match std::str::from_utf8(s) {
        Ok(t) => Json::String(t.to_string()),
        Err(_) => single(
            "$bytes",
            Json::String(base64::engine::general_purpose::STANDARD.encode(s)),
        ),
    }
}

fn text(s: &[u8]) -> Json {
    Json::String(text_lossy(s))
}

fn text_lossy(s: &[u8]) -> String {
    String::from_utf8_lossy(s).into_owned()
}

fn key_text(k: &Key) -> String {
    match k {
        Key::Int(n) => n.to_string(),
        Key::Str(s) => text_lossy(s),
    }
}

/// A PHP value from JSON an app wrote (see the module docs).
pub fn from_json(j: &Json) -> Value {
    match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::Str(s.as_bytes().to_vec()),
        Json::Array(items) => Value::Array(
            (0i64..)
                .zip(items)
                .map(|(n, c)| (Key::Int(n), from_json(c)))
                .collect(),
        ),
        Json::Object(map) => {
            if let Some(v) = tagged(map) {
                return v;
            }
            Value::Array(
                map.iter()
                    .map(|(k, c)| {
                        let key = match canonical_int(k.as_bytes()) {
                            Some(n) => Key::Int(n),
                            None => Key::Str(k.as_bytes().to_vec()),
                        };
                        (key, from_json(c))
                    })
                    .collect(),
            )
        }
    }
}

/// `{"$bytes": base64}` and `{"$float": "INF"|"-INF"|"NAN"}`.
fn tagged(map: &Map<String, Json>) -> Option<Value> {
    if map.len() != 1 {
        return None;
    }
    let (k, v) = map.iter().next()?;
    let s = v.as_str()?;
    match k.as_str() {
        "$bytes" => base64::engine::general_purpose::STANDARD
            .decode(s)
            .ok()
            .map(Value::Str),
        "$float" => match s {
            "INF" => Some(Value::Float(f64::INFINITY)),
            "-INF" => Some(Value::Float(f64::NEG_INFINITY)),
            "NAN" => Some(Value::Float(f64::NAN)),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Serializer, decode};
    use serde_json::json;

    fn view(s: &[u8]) -> Json {
        decode(s, Serializer::Php).expect("decodes").to_json()
    }

    #[test]
    fn the_mapping() {
        let j = view(b"n|N;b|b:1;i|i:-3;f|d:0.5;z|d:-0;inf|d:-INF;nan|d:NAN;s|s:2:\"h\xc3\";t|s:3:\"h\xc3\xa9\";l|a:2:{i:0;i:1;i:1;i:2;}m|a:2:{i:1;i:1;s:1:\"k\";i:2;}");
        assert_eq!(
            j,
            json!({
                "n": null, "b": true, "i": -3, "f": 0.5, "z": -0.0,
                "inf": {"$float": "-INF"}, "nan": {"$float": "NAN"},
                "s": {"$bytes": "aMM="}, "t": "hé",
                "l": [1, 2], "m": {"1": 1, "k": 2}
            })
        );
        // Order is kept.
        let keys: Vec<&String> = j["m"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["1", "k"]);
        let j = view(b"o|O:1:\"P\":4:{s:1:\"a\";i:1;s:4:\"\0*\0b\";i:2;s:4:\"\0P\0a\";i:3;s:6:\"$class\";i:4;}c|C:2:\"CS\":4:{i:1;}e|E:6:\"Suit:A\";");
        assert_eq!(
            j,
            json!({
                "o": {"$class": "P", "a": 1, "b": 2, "\u{0}P\u{0}a": 3},
                "c": {"$class": "CS", "$serialized": "i:1;"},
                "e": {"$enum": "Suit:A"}
            })
        );
    }

    #[test]
    fn refs_and_cycles() {
        let j = view(b"a|a:1:{s:1:\"k\";i:1;}b|R:1;c|a:1:{s:4:\"self\";R:3;}");
        assert_eq!(
            j,
            json!({"a": {"k": 1}, "b": {"k": 1}, "c": {"self": {"$ref": 3}}})
        );
        // A lone value numbers from 1.
        let (v, _) = crate::session::decode_value(b"a:2:{i:0;s:1:\"x\";i:1;R:2;}").unwrap();
        assert_eq!(value_to_json(&v), json!(["x", "x"]));
        // Refs expanding to exponential size stay bounded.
        let mut s = b"l0|a:0:{}".to_vec();
        for n in 1..40 {
            let prev = n;
            s.extend_from_slice(format!("l{n}|a:2:{{i:0;R:{prev};i:1;R:{prev};}}").as_bytes());
        }
        let d = decode(&s, Serializer::Php).unwrap();
        assert!(d.to_json().to_string().len() < 100_000_000);
    }

    #[test]
    fn from_json_is_the_inverse() {
        let j = json!({
            "n": null, "b": false, "i": 5, "big": 18446744073709551615u64, "f": 1.5, "one": 1.0,
            "s": "x", "l": [1, "a"], "7": {"x": 1, "-2": 2, "07": 3},
            "bytes": {"$bytes": "AP8="}, "inf": {"$float": "INF"},
            "notbytes": {"$bytes": "AP8=", "other": 1}
        });
        let Value::Array(v) = from_json(&j) else {
            panic!()
        };
        let get = |k: &[u8]| {
            v.iter()
                .find(|(key, _)| {
                    *key == Key::Str(k.to_vec())
                        || matches!(key, Key::Int(n) if n.to_string().as_bytes() == k)
                })
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get(b"n"), Some(Value::Null));
        assert_eq!(get(b"i"), Some(Value::Int(5)));
        assert_eq!(get(b"big"), Some(Value::Float(18446744073709551615.0)));
        assert_eq!(get(b"one"), Some(Value::Float(1.0)));
        assert_eq!(get(b"bytes"), Some(Value::Str(vec![0, 255])));
        assert_eq!(get(b"inf"), Some(Value::Float(f64::INFINITY)));
        assert_eq!(v[8].0, Key::Int(7));
        assert_eq!(
            v[8].1,
            Value::Array(vec![
                (Key::Str(b"x".to_vec()), Value::Int(1)),
                (Key::Int(-2), Value::Int(2)),
                (Key::Str(b"07".to_vec()), Value::Int(3)),
            ])
        );
        assert!(matches!(get(b"notbytes"), Some(Value::Array(a)) if a.len() == 2));
        // And back: the view of what from_json made is the JSON again
        // (keys canonicalised).
        let back = value_to_json(&from_json(&j));
        assert_eq!(back["bytes"], j["bytes"]);
        assert_eq!(back["7"], j["7"]);
        assert_eq!(back["l"], j["l"]);
    }
}
