//! Dotted paths into a session (`visits`, `_sf2_attributes.color`,
//! `a.b.0`), for reading values and for merged write-back.
//!
//! Each `.`-separated segment names a member: a segment that is a
//! canonical decimal integer (`0`, `-3`, not `03`) names an int key (as
//! PHP canonicalises array keys) or the same string; inside an object a
//! segment names a property by its unmangled name (`\0Class\0x`,
//! `\0*\0x` and `x` are all `x`). Where names repeat, the last one is the
//! one PHP sees, and the one used here. References are followed: a path
//! through `R:`/`r:` walks the value it points at (except a ref to a value
//! inside a `C:` payload, which `get` returns as the ref itself and `set`
//! refuses to walk through: the payload belongs to its class).
//!
//! After [`SessionData::set`] and [`SessionData::remove`] every remaining
//! ref still points at the same value, renumbered; a ref whose target was
//! removed or replaced becomes a copy of the old target's value (the first
//! such ref in order; later refs to the same target point at that copy).
//! Refs inside a value given to `set` count in the numbering before the
//! call.

use super::format::SessionData;
use super::refs::{Change, Loc, Slots, children, fix_refs, members_at_mut, value_at};
use super::serialize::{MAX_DEPTH, canonical_int};
use super::value::{Key, Value};
use std::fmt;

/// Why a path cannot be set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The value before `segment` is a scalar (or string, enum, `C:`
    /// object), which has no members.
    NotAContainer {
        /// The segment that could not be looked up.
        segment: String,
    },
    /// A ref on the path points into a `C:` payload, which is opaque.
    IntoPayload {
        /// The segment whose value is the ref.
        segment: String,
    },
    /// More segments than values may nest ([`MAX_DEPTH`]).
    TooDeep,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::NotAContainer { segment } => {
                write!(
                    f,
                    "cannot look up {segment:?}: the value before it has no members"
                )
            }
            PathError::IntoPayload { segment } => {
                write!(f, "{segment:?} refers into a Serializable payload")
            }
            PathError::TooDeep => write!(f, "path deeper than {MAX_DEPTH}"),
        }
    }
}

impl std::error::Error for PathError {}

/// Whether `key` is named by `seg`.
fn key_matches(key: &Key, seg: &str, object: bool) -> bool {
    match key {
        Key::Int(n) => canonical_int(seg.as_bytes()) == Some(*n),
        Key::Str(s) if object => unmangle(s) == seg.as_bytes(),
        Key::Str(s) => s == seg.as_bytes(),
    }
}

/// A property name without PHP's `\0Class\0` / `\0*\0` prefix.
pub fn unmangle(name: &[u8]) -> &[u8] {
    match name.strip_prefix(b"\0") {
        Some(rest) => match rest.iter().position(|&c| c == 0) {
            Some(i) => rest.get(i + 1..).unwrap_or_default(),
            None => name,
        },
        None => name,
    }
}

/// The index of the member `seg` names (the last that matches).
fn find(items: &[(Key, Value)], seg: &str, object: bool) -> Option<usize> {
    items.iter().rposition(|(k, _)| key_matches(k, seg, object))
}

/// Where a path leads.
enum Found {
    /// An existing member at this index path.
    At(Vec<usize>),
    /// Missing from here: the container's index path (`None` for the
    /// entries themselves), the first missing segment's position.
    Missing(Option<Vec<usize>>, usize),
    /// A `null` on the way (PHP turns it into an array on write), and the
    /// position of the segment after it.
    Null(Vec<usize>, usize),
}

impl SessionData {
    /// Follows a ref to the value it names (a value that is not a ref is
    /// itself; a ref into a `C:` payload or to an unknown slot stays the ref).
    pub fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        resolve_with(&self.entries, &Slots::of(&self.entries), v)
    }

    /// The value at `path`, refs resolved.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let slots = Slots::of(&self.entries);
        let mut segs = path.split('.');
        let first = segs.next()?;
        let i = find(&self.entries, first, false)?;
        let mut v = resolve_with(&self.entries, &slots, &self.entries.get(i)?.1);
        for seg in segs {
            let object = matches!(v, Value::Object(_));
            let items = children(v)?;
            let j = find(items, seg, object)?;
            v = resolve_with(&self.entries, &slots, &items.get(j)?.1);
        }
        Some(v)
    }

    /// Sets the value at `path`, creating missing arrays on the way (and
    /// turning a `null` on the way into one, as PHP does).
    pub fn set(&mut self, path: &str, v: Value) -> Result<(), PathError> {
        let segs: Vec<&str> = path.split('.').collect();
        if segs.len() >= MAX_DEPTH {
            return Err(PathError::TooDeep);
        }
        let old = self.entries.clone();
        let change = match self.locate(&segs)? {
            Found::At(p) => {
                let (last, parent) = p.split_last().ok_or(PathError::TooDeep)?;
                if let Some(m) =
                    members_at_mut(&mut self.entries, parent).and_then(|m| m.get_mut(*last))
                {
                    m.1 = v;
                }
                Change::Replaced(Some(p))
            }
            Found::Null(p, from) => {
                let (last, parent) = p.split_last().ok_or(PathError::TooDeep)?;
                if let Some(m) =
                    members_at_mut(&mut self.entries, parent).and_then(|m| m.get_mut(*last))
                {
                    m.1 = Value::Array(vec![build(&segs[from..], v)]);
                }
                // The null keeps its place (refs to it now see the array).
                Change::Replaced(None)
            }
            Found::Missing(container, from) => {
                let (key, member) = build(&segs[from..], v);
                // Top-level names and properties stay strings.
                let string_key = match &container {
                    None => true,
                    Some(p) => matches!(value_at(&self.entries, p), Some(Value::Object(_))),
                };
                let key = match key {
                    Key::Int(n) if string_key => Key::Str(n.to_string().into_bytes()),
                    k => k,
                };
                let path = container.unwrap_or_default();
                if let Some(m) = members_at_mut(&mut self.entries, &path) {
                    m.push((key, member));
                }
                Change::Replaced(None)
            }
        };
        fix_refs(&old, &mut self.entries, &change);
        Ok(())
    }

    /// Removes the value at `path` (every member of that name) and returns
    /// it (a ref there is returned as a copy of its target).
    pub fn remove(&mut self, path: &str) -> Option<Value> {
        let segs: Vec<&str> = path.split('.').collect();
        let mut removed = None;
        while let Ok(Found::At(p)) = self.locate(&segs) {
            let old = self.entries.clone();
            let (last, parent) = p.split_last()?;
            let members = members_at_mut(&mut self.entries, parent)?;
            if *last >= members.len() {
                return removed;
            }
            let (_, v) = members.remove(*last);
            if removed.is_none() {
                removed = Some(match &v {
                    Value::Ref { .. } => resolve_with(&old, &Slots::of(&old), &v).clone(),
                    _ => v,
                });
            }
            fix_refs(&old, &mut self.entries, &Change::Removed(p));
        }
        removed
    }

    /// Where `segs` lead, following refs between segments.
    fn locate(&self, segs: &[&str]) -> Result<Found, PathError> {
        let slots = Slots::of(&self.entries);
        let Some(i) = segs.first().and_then(|s| find(&self.entries, s, false)) else {
            return Ok(Found::Missing(None, 0));
        };
        let mut at = vec![i];
        for (n, seg) in segs.iter().enumerate().skip(1) {
            at = follow(&self.entries, &slots, at, segs[n - 1])?;
            let v = value_at(&self.entries, &at).unwrap_or(&Value::Null);
            let object = matches!(v, Value::Object(_));
            match children(v) {
                Some(items) => match find(items, seg, object) {
                    Some(j) => at.push(j),
                    None => return Ok(Found::Missing(Some(at), n)),
                },
                None if *v == Value::Null => return Ok(Found::Null(at, n)),
                None => {
                    return Err(PathError::NotAContainer {
                        segment: seg.to_string(),
                    });
                }
            }
        }
        Ok(Found::At(at))
    }
}

/// The path of the value a member's ref points at (the member's own path
/// if it is no ref).
fn follow(
    entries: &[(Key, Value)],
    slots: &Slots,
    at: Vec<usize>,
    seg: &str,
) -> Result<Vec<usize>, PathError> {
    match value_at(entries, &at) {
        Some(Value::Ref { slot, .. }) => match slots.target(*slot) {
            Some(Loc::At(p)) => Ok(p.clone()),
            Some(Loc::InPayload(..)) => Err(PathError::IntoPayload {
                segment: seg.to_string(),
            }),
            None => Err(PathError::NotAContainer {
                segment: seg.to_string(),
            }),
        },
        _ => Ok(at),
    }
}

pub(crate) fn resolve_with<'a>(
    entries: &'a [(Key, Value)],
    slots: &Slots,
    v: &'a Value,
) -> &'a Value {
    match v {
        Value::Ref { slot, .. } => match slots.target(*slot) {
            Some(Loc::At(p)) => value_at(entries, p).unwrap_or(v),
            _ => v,
        },
        _ => v,
    }
}

/// `segs[0] => [segs[1] => [… => v]]`.
fn build(segs: &[&str], v: Value) -> (Key, Value) {
    let key = |s: &str| match canonical_int(s.as_bytes()) {
        Some(n) => Key::Int(n),
        None => Key::Str(s.as_bytes().to_vec()),
    };
    let mut value = v;
    for seg in segs.iter().skip(1).rev() {
        value = Value::Array(vec![(key(seg), value)]);
    }
    (key(segs.first().copied().unwrap_or_default()), value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Serializer, decode, encode};

    fn php(s: &[u8]) -> SessionData {
        decode(s, Serializer::Php).unwrap_or_else(|e| panic!("{e}"))
    }

    fn out(d: &SessionData) -> String {
        String::from_utf8_lossy(&encode(d, Serializer::Php).expect("encodes")).into_owned()
    }

    fn str(s: &str) -> Value {
        Value::Str(s.as_bytes().to_vec())
    }

    #[test]
    fn get_follows_paths_and_refs() {
        let d = php(b"_sf2_attributes|a:2:{s:5:\"color\";s:3:\"red\";s:4:\"list\";a:1:{i:0;s:1:\"x\";}}o|O:1:\"P\":2:{s:4:\"\0P\0c\";i:3;s:4:\"\0*\0b\";i:2;}r|R:1;");
        assert_eq!(d.get("_sf2_attributes.color"), Some(&str("red")));
        assert_eq!(d.get("_sf2_attributes.list.0"), Some(&str("x")));
        assert_eq!(d.get("o.c"), Some(&Value::Int(3)));
        assert_eq!(d.get("o.b"), Some(&Value::Int(2)));
        assert_eq!(d.get("r.list.0"), Some(&str("x")), "through R:1");
        assert_eq!(d.get("r"), d.get("_sf2_attributes"));
        assert_eq!(d.get("nope"), None);
        assert_eq!(d.get("_sf2_attributes.color.x"), None);
        assert_eq!(d.get("_sf2_attributes.list.00"), None);
    }

    #[test]
    fn set_creates_and_replaces() {
        let mut d = php(b"visits|i:1;");
        d.set("visits", Value::Int(2)).unwrap();
        d.set("a.b.0", str("x")).unwrap();
        d.set("a.b.1", str("y")).unwrap();
        d.set("7", Value::Null).unwrap();
        d.set("7.k", Value::Bool(true)).unwrap();
        assert_eq!(
            out(&d),
            "visits|i:2;a|a:1:{s:1:\"b\";a:2:{i:0;s:1:\"x\";i:1;s:1:\"y\";}}7|a:1:{s:1:\"k\";b:1;}"
        );
        assert_eq!(
            d.set("visits.x", Value::Null),
            Err(PathError::NotAContainer {
                segment: "x".into()
            })
        );
        let deep = vec!["a"; MAX_DEPTH].join(".");
        assert_eq!(d.set(&deep, Value::Null), Err(PathError::TooDeep));
        // Objects: by unmangled name; new properties are public strings.
        let mut d = php(b"o|O:1:\"P\":1:{s:4:\"\0P\0c\";i:3;}");
        d.set("o.c", Value::Int(4)).unwrap();
        d.set("o.5", Value::Int(5)).unwrap();
        assert_eq!(out(&d), "o|O:1:\"P\":2:{s:4:\"\0P\0c\";i:4;s:1:\"5\";i:5;}");
    }

    #[test]
    fn refs_renumber_after_remove() {
        // a = $o; b = [$o, 1]; c = 5; d = &c
        let mut d = php(b"a|O:8:\"stdClass\":0:{}b|a:2:{i:0;r:1;i:1;i:1;}c|i:5;d|R:5;");
        d.set("x", Value::Int(0)).unwrap();
        assert_eq!(
            d.remove("b"),
            Some(
                php(b"b|a:2:{i:0;O:8:\"stdClass\":0:{}i:1;i:1;}").entries[0]
                    .1
                    .clone()
            )
            .map(|v| match v {
                // The removed value keeps its own refs as they were.
                Value::Array(mut items) => {
                    items[0].1 = Value::Ref {
                        slot: 1,
                        object: true,
                    };
                    Value::Array(items)
                }
                v => v,
            })
        );
        assert_eq!(out(&d), "a|O:8:\"stdClass\":0:{}c|i:5;d|R:2;x|i:0;");
        // Removing the target: the ref becomes a copy.
        assert_eq!(d.remove("c"), Some(Value::Int(5)));
        assert_eq!(out(&d), "a|O:8:\"stdClass\":0:{}d|i:5;x|i:0;");
        // Removing the object: the first r: becomes the object, later ones
        // point at it.
        let mut d = php(b"a|O:8:\"stdClass\":0:{}b|a:3:{i:0;r:1;i:1;i:1;i:2;r:1;}");
        d.remove("a");
        assert_eq!(out(&d), "b|a:3:{i:0;O:8:\"stdClass\":0:{}i:1;i:1;i:2;r:2;}");
    }

    #[test]
    fn refs_renumber_after_set() {
        // $a['x'] = &$a['y'] in php_serialize numbering is R:2; here R:1.
        let mut d = php(b"pad|a:1:{i:0;i:0;}x|i:2;y|R:3;z|R:3;");
        // Growing a value before the target moves it.
        d.set("pad.1", Value::Int(1)).unwrap();
        assert_eq!(out(&d), "pad|a:2:{i:0;i:0;i:1;i:1;}x|i:2;y|R:4;z|R:4;");
        // Replacing the target: the first ref holds the old value.
        d.set("x", str("new")).unwrap();
        assert_eq!(
            out(&d),
            "pad|a:2:{i:0;i:0;i:1;i:1;}x|s:3:\"new\";y|i:2;z|R:5;"
        );
        // Replacing a ref itself leaves the others alone.
        d.set("y", Value::Null).unwrap();
        assert_eq!(
            out(&d),
            "pad|a:2:{i:0;i:0;i:1;i:1;}x|s:3:\"new\";y|N;z|i:2;"
        );
        // Setting through a ref to an array changes the array.
        let mut d = php(b"a|a:0:{}b|R:1;");
        d.set("b.k", Value::Int(1)).unwrap();
        assert_eq!(out(&d), "a|a:1:{s:1:\"k\";i:1;}b|R:1;");
        // Through a ref to null: the null becomes the array, the ref stays.
        let mut d = php(b"n|N;r|R:1;");
        d.set("r.k", Value::Int(1)).unwrap();
        assert_eq!(out(&d), "n|a:1:{s:1:\"k\";i:1;}r|R:1;");
        // A cycle survives a shift: $a['self'] = &$a (as PHP writes it).
        let mut d = php(b"p|i:0;a|a:1:{s:4:\"self\";R:2;}");
        d.remove("p");
        assert_eq!(out(&d), "a|a:1:{s:4:\"self\";R:1;}");
        assert_eq!(d.get("a.self.self.self"), d.get("a"));
    }

    #[test]
    fn refs_into_payloads_move_with_them() {
        let mut d = php(
            b"p|i:0;c|C:2:\"CS\":45:{a:2:{s:1:\"p\";O:8:\"stdClass\":0:{}s:1:\"q\";r:4;}}o|r:4;",
        );
        d.remove("p");
        assert_eq!(
            out(&d),
            "c|C:2:\"CS\":45:{a:2:{s:1:\"p\";O:8:\"stdClass\":0:{}s:1:\"q\";r:3;}}o|r:3;"
        );
        assert_eq!(
            d.set("o.x", Value::Null),
            Err(PathError::IntoPayload {
                segment: "o".into()
            })
        );
        d.remove("c");
        assert_eq!(out(&d), "o|O:8:\"stdClass\":0:{}");
    }

    #[test]
    fn unmangled() {
        assert_eq!(unmangle(b"\0P\0c"), b"c");
        assert_eq!(unmangle(b"\0*\0b"), b"b");
        assert_eq!(unmangle(b"a"), b"a");
        assert_eq!(unmangle(b"\0odd"), b"\0odd");
    }
}
