//! Reference slots over a session's entries: which value each `R:`/`r:`
//! slot names, and renumbering them after an edit.
//!
//! Slots count as in [`super::serialize`]: every value in order, except
//! `R:`, from 1 at the first entry's value; the values inside a `C:`
//! payload that parses count too. A slot is named by where its value is
//! ([`Loc`]), so an edit can say where each slot went.

use super::serialize::{encode_value, payload_value};
use super::value::{Key, Value};
use std::collections::HashMap;

/// Where a slot's value is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Loc {
    /// Member indices from the entries down (entry, then member, …).
    At(Vec<usize>),
    /// The `k`-th slot (from 1) inside the `C:` payload at this path.
    InPayload(Vec<usize>, u32),
}

/// Every slot of some entries, in order.
pub(crate) struct Slots {
    /// `locs[n - 1]` is slot `n`.
    locs: Vec<Loc>,
    /// `alias[n - 1]` is `Some(m)` if slot `n` is `r:m`.
    alias: Vec<Option<u32>>,
    /// How many `C:` payloads these entries are inside.
    nest: usize,
}

impl Slots {
    /// Numbers the values of `entries` as PHP does.
    pub(crate) fn of(entries: &[(Key, Value)]) -> Slots {
        Slots::nested(entries, 0)
    }

    /// The same for entries inside `nest` payloads.
    fn nested(entries: &[(Key, Value)], nest: usize) -> Slots {
        let mut s = Slots {
            locs: Vec::new(),
            alias: Vec::new(),
            nest,
        };
        let mut path = Vec::new();
        for (i, (_, v)) in entries.iter().enumerate() {
            path.push(i);
            s.walk(v, &mut path);
            path.pop();
        }
        s
    }

    fn walk(&mut self, v: &Value, path: &mut Vec<usize>) {
        match v {
            Value::Ref { object: false, .. } => {}
            Value::Ref { slot, object: true } => self.push(Loc::At(path.clone()), Some(*slot)),
            Value::Custom { data, .. } => {
                self.push(Loc::At(path.clone()), None);
                let n = payload_value(data, self.nest).map_or(0, |(_, n)| n);
                for k in 1..=n {
                    self.push(Loc::InPayload(path.clone(), k), None);
                }
            }
            Value::Array(items) => self.members(items, path),
            Value::Object(o) => self.members(&o.props, path),
            _ => self.push(Loc::At(path.clone()), None),
        }
    }

    fn members(&mut self, items: &[(Key, Value)], path: &mut Vec<usize>) {
        self.push(Loc::At(path.clone()), None);
        for (j, (_, c)) in items.iter().enumerate() {
            path.push(j);
            self.walk(c, path);
            path.pop();
        }
    }

    fn push(&mut self, loc: Loc, alias: Option<u32>) {
        self.locs.push(loc);
        self.alias.push(alias);
    }

    /// Where the value slot `n` names is, following `r:` aliases.
    pub(crate) fn target(&self, mut n: u32) -> Option<&Loc> {
        // Aliases point strictly backwards (decoding checks it); the bound
        // keeps hand-made data from looping.
        for _ in 0..=self.locs.len() {
            let i = usize::try_from(n).ok()?.checked_sub(1)?;
            match self.alias.get(i)? {
                Some(m) if *m < n => n = *m,
                Some(_) => return None,
                None => return self.locs.get(i),
            }
        }
        None
    }

    /// Slot numbers by location (aliases included).
    fn by_loc(&self) -> HashMap<&Loc, u32> {
        (1..).zip(&self.locs).map(|(n, l)| (l, n)).collect()
    }
}

/// The value at a path of member indices.
pub(crate) fn value_at<'a>(entries: &'a [(Key, Value)], path: &[usize]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut v = &entries.get(*first)?.1;
    for &j in rest {
        v = &children(v)?.get(j)?.1;
    }
    Some(v)
}

/// The members of an array or object.
pub(crate) fn children(v: &Value) -> Option<&Vec<(Key, Value)>> {
    match v {
        Value::Array(items) => Some(items),
        Value::Object(o) => Some(&o.props),
        _ => None,
    }
}

/// The members of an array or object, to change.
pub(crate) fn children_mut(v: &mut Value) -> Option<&mut Vec<(Key, Value)>> {
    match v {
        Value::Array(items) => Some(items),
        Value::Object(o) => Some(&mut o.props),
        _ => None,
    }
}

/// The mutable members at a path (`[]` = the entries).
pub(crate) fn members_at_mut<'a>(
    entries: &'a mut Vec<(Key, Value)>,
    path: &[usize],
) -> Option<&'a mut Vec<(Key, Value)>> {
    let mut m = entries;
    for &j in path {
        m = children_mut(&mut m.get_mut(j)?.1)?;
    }
    Some(m)
}

/// The value slot `n` names (a copy), also inside a `C:` payload.
pub(crate) fn slot_value(entries: &[(Key, Value)], slots: &Slots, n: u32) -> Option<Value> {
    match slots.target(n)? {
        Loc::At(p) => value_at(entries, p).cloned(),
        Loc::InPayload(p, k) => match value_at(entries, p)? {
            Value::Custom { data, .. } => {
                let (v, _) = payload_value(data, slots.nest)?;
                let inner = [(Key::Int(0), v)];
                let inner_slots = Slots::nested(&inner, slots.nest + 1);
                slot_value(&inner, &inner_slots, *k)
            }
            _ => None,
        },
    }
}

/// What an edit did to the member paths that were there before it.
pub(crate) enum Change {
    /// The value at this path was replaced (or a member appended: `None`).
    Replaced(Option<Vec<usize>>),
    /// The member at this path was removed; later siblings moved up.
    Removed(Vec<usize>),
}

impl Change {
    /// Where a path from before the edit is now, if it is still there.
    fn map(&self, p: &[usize]) -> Option<Vec<usize>> {
        match self {
            Change::Replaced(None) => Some(p.to_vec()),
            Change::Replaced(Some(at)) => (!p.starts_with(at)).then(|| p.to_vec()),
            Change::Removed(at) => {
                if p.starts_with(at) {
                    return None;
                }
                let mut p = p.to_vec();
                if let Some((&i, parent)) = at.split_last()
                    && p.len() > parent.len()
                    && p.starts_with(parent)
                    && p[parent.len()] > i
                {
                    p[parent.len()] -= 1;
                }
                Some(p)
            }
        }
    }
}

/// Where old locations are after an edit: moved by the change, or into
/// the copies made for refs whose target went away.
struct Moves<'c> {
    change: &'c Change,
    held: HashMap<Loc, Vec<usize>>,
}

impl Moves<'_> {
    fn map(&self, loc: &Loc) -> Option<Loc> {
        if let Some(h) = self.held.get(loc) {
            return Some(Loc::At(h.clone()));
        }
        match loc {
            Loc::At(p) => {
                // The longest held prefix: inside a copy.
                let held = (0..p.len()).rev().find_map(|n| {
                    let key = Loc::At(p[..n].to_vec());
                    self.held.get(&key).map(|h| (n, h))
                });
                if let Some((n, h)) = held {
                    let mut q = h.clone();
                    q.extend_from_slice(&p[n..]);
                    return Some(Loc::At(q));
                }
                self.change.map(p).map(Loc::At)
            }
            Loc::InPayload(c, k) => self.change.map(c).map(|c| Loc::InPayload(c, *k)),
        }
    }
}

/// After `change` turned `old` into `entries`, keeps every ref pointing at
/// the same value: a ref whose target is gone becomes a copy of it (the
/// first such ref; later ones point at that copy), then all slots are
/// renumbered for the new layout.
///
/// A ref that still points forward afterwards (only possible when a copy
/// comes out of a `C:` payload whose refs PHP never checked) becomes
/// `null`, and the numbering is fixed again.
pub(crate) fn fix_refs(old: &[(Key, Value)], entries: &mut [(Key, Value)], change: &Change) {
    renumber(old, entries, change);
    while let Some(p) = first_bad_ref(entries) {
        let before = entries.to_vec();
        let (last, parent) = match p.split_last() {
            Some(x) => x,
            None => return,
        };
        match members_at_mut_slice(entries, parent).and_then(|m| m.get_mut(*last)) {
            Some(m) => m.1 = Value::Null,
            None => return,
        }
        renumber(&before, entries, &Change::Replaced(Some(p)));
    }
}

/// The path of the first ref (outside payloads) to a slot not numbered
/// before it.
fn first_bad_ref(entries: &[(Key, Value)]) -> Option<Vec<usize>> {
    fn walk(v: &Value, path: &mut Vec<usize>, count: &mut u32) -> bool {
        match v {
            Value::Ref { slot, object } => {
                if *slot == 0 || *slot > *count {
                    return true;
                }
                *count = count.saturating_add(u32::from(*object));
            }
            Value::Custom { data, .. } => {
                *count = count
                    .saturating_add(1)
                    .saturating_add(payload_value(data, 0).map_or(0, |(_, n)| n));
            }
            _ => {
                *count = count.saturating_add(1);
                if let Some(items) = children(v) {
                    for (j, (_, c)) in items.iter().enumerate() {
                        path.push(j);
                        if walk(c, path, count) {
                            return true;
                        }
                        path.pop();
                    }
                }
            }
        }
        false
    }
    let mut count = 0;
    let mut path = Vec::new();
    for (i, (_, v)) in entries.iter().enumerate() {
        path.push(i);
        if walk(v, &mut path, &mut count) {
            return Some(path);
        }
        path.pop();
    }
    None
}

fn members_at_mut_slice<'a>(
    entries: &'a mut [(Key, Value)],
    path: &[usize],
) -> Option<&'a mut [(Key, Value)]> {
    let mut m = entries;
    for &j in path {
        m = children_mut(&mut m.get_mut(j)?.1)?;
    }
    Some(m)
}

fn renumber(old: &[(Key, Value)], entries: &mut [(Key, Value)], change: &Change) {
    let old_slots = Slots::of(old);
    let mut moves = Moves {
        change,
        held: HashMap::new(),
    };
    let mut path = Vec::new();
    for (i, (_, v)) in entries.iter_mut().enumerate() {
        path.push(i);
        hold(v, &mut path, old, &old_slots, &mut moves);
        path.pop();
    }
    let new_slots = Slots::of(entries);
    let by_loc = new_slots.by_loc();
    let renumber = |n: u32| -> Option<u32> {
        let loc = moves.map(old_slots.target(n)?)?;
        by_loc.get(&loc).copied()
    };
    for (_, v) in entries.iter_mut() {
        let _ = rewrite(v, &mut |slot| {
            Ok::<u32, std::convert::Infallible>(renumber(slot).unwrap_or(slot))
        });
    }
}

/// Phase one of [`fix_refs`]: replaces each ref whose target is gone by a
/// copy of the old target, in slot order.
fn hold(
    v: &mut Value,
    path: &mut Vec<usize>,
    old: &[(Key, Value)],
    old_slots: &Slots,
    moves: &mut Moves<'_>,
) {
    if let Value::Ref { slot, .. } = *v {
        match old_slots.target(slot) {
            Some(target) if moves.map(target).is_some() => {}
            Some(target) => {
                // A target PHP itself could not resolve (a payload's ref
                // to itself) leaves nothing to copy: null.
                *v = slot_value(old, old_slots, slot).unwrap_or(Value::Null);
                moves.held.insert(target.clone(), path.clone());
            }
            // Dangling from before the edit (only hand-made data): null.
            None => *v = Value::Null,
        }
    }
    match v {
        Value::Array(items) => hold_members(items, path, old, old_slots, moves),
        Value::Object(o) => hold_members(&mut o.props, path, old, old_slots, moves),
        Value::Custom { data, .. } => {
            // Refs inside a payload to gone targets become copies there.
            let Some((mut inner, _)) = payload_value(data, 0) else {
                return;
            };
            let mut changed = false;
            copy_gone(&mut inner, old, old_slots, moves, &mut changed, 0);
            if changed {
                data.clear();
                encode_value(&inner, data);
            }
        }
        _ => {}
    }
}

fn hold_members(
    items: &mut [(Key, Value)],
    path: &mut Vec<usize>,
    old: &[(Key, Value)],
    old_slots: &Slots,
    moves: &mut Moves<'_>,
) {
    for (j, (_, c)) in items.iter_mut().enumerate() {
        path.push(j);
        hold(c, path, old, old_slots, moves);
        path.pop();
    }
}

/// Inside a payload: refs to gone targets become copies (no one else can
/// point at these copies, so they are not remembered).
fn copy_gone(
    v: &mut Value,
    old: &[(Key, Value)],
    old_slots: &Slots,
    moves: &Moves<'_>,
    changed: &mut bool,
    depth: usize,
) {
    if let Value::Ref { slot, .. } = *v
        && let Some(target) = old_slots.target(slot)
        && moves.map(target).is_none()
        && depth < super::serialize::MAX_DEPTH
    {
        *v = slot_value(old, old_slots, slot).unwrap_or(Value::Null);
        *changed = true;
    }
    if let Some(items) = children_mut(v) {
        for (_, c) in items {
            copy_gone(c, old, old_slots, moves, changed, depth + 1);
        }
    }
}

/// Applies `f` to every ref slot in `v`, also inside `C:` payloads that
/// parse (re-encoded only if a slot changed). Stops at `f`'s first error.
pub(crate) fn rewrite<E>(
    v: &mut Value,
    f: &mut dyn FnMut(u32) -> Result<u32, E>,
) -> Result<bool, E> {
    rewrite_in(v, f, 0)
}

fn rewrite_in<E>(
    v: &mut Value,
    f: &mut dyn FnMut(u32) -> Result<u32, E>,
    nest: usize,
) -> Result<bool, E> {
    match v {
        Value::Ref { slot, .. } => {
            let n = f(*slot)?;
            let changed = n != *slot;
            *slot = n;
            Ok(changed)
        }
        Value::Array(items) => rewrite_members(items, f, nest),
        Value::Object(o) => rewrite_members(&mut o.props, f, nest),
        Value::Custom { data, .. } => {
            let Some((mut inner, _)) = payload_value(data, nest) else {
                return Ok(false);
            };
            if rewrite_in(&mut inner, f, nest + 1)? {
                data.clear();
                encode_value(&inner, data);
                return Ok(true);
            }
            Ok(false)
        }
        _ => Ok(false),
    }
}

fn rewrite_members<E>(
    items: &mut [(Key, Value)],
    f: &mut dyn FnMut(u32) -> Result<u32, E>,
    nest: usize,
) -> Result<bool, E> {
    let mut changed = false;
    for (_, c) in items {
        changed |= rewrite_in(c, f, nest)?;
    }
    Ok(changed)
}
