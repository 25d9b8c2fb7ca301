//! Dotted paths into a session (`visits`, `_sf2_attributes.color`,
//! `a.b.0`), for reading values and for merged write-back.
//!
//! Each `.`-separated segment names a member: a segment that is a
//! canonical decimal integer (`0`, `-3`, not `03`) names an int key (as
//! PHP canonicalises array keys) or the same string; inside an object a
//! segment names a property by its unmangled name (`\0Class\0x`,
//! `\0*\0x` and `x` are all `x`). Where names repeat, the last one is the
//! one PHP sees, and the one used here. References are followed: a path
//! through `R:`/`r:` walks the value it points at.
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
                Change::Replaced(Some(p))
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
