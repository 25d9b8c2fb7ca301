//! Per-connection state keyed by [`ConnId`]: [`ConnMap`] (a value per
//! connection) and [`ConnSet`] (the members of a group, e.g. a chat room or
//! a topic).
//!
//! Both store by [`ConnId::index`], which is small and dense (bounded by the
//! peak number of connections open at once), so a lookup is one bounds
//! check and one generation compare: no hashing. Both check the generation
//! (the "ABA guard"): once a connection closes and its index is reused, the
//! stale id can neither see nor remove what belongs to the newer connection.

use super::ConnId;

/// A map from [`ConnId`] to `V`, stored densely by [`ConnId::index`].
///
/// Every operation is O(1) except iteration, which walks every slot ever
/// used. Lookups with a stale id (one whose connection closed and whose
/// index now belongs to a newer connection) find nothing.
///
/// Memory: one `Option<(u32, V)>` slot (the generation and the value) per
/// index ever used. Removing leaves the slot empty for the next connection
/// to reuse and never shrinks the vector; since indexes are dense, that is
/// bounded by the peak number of concurrent connections.
#[derive(Clone, Debug)]
pub struct ConnMap<V> {
    /// By [`ConnId::index`]: the generation of the id stored and its value.
    slots: Vec<Option<(u32, V)>>,
    /// Occupied slots.
    len: usize,
}

impl<V> Default for ConnMap<V> {
    fn default() -> Self {
        ConnMap {
            slots: Vec::new(),
            len: 0,
        }
    }
}

impl<V> ConnMap<V> {
    /// An empty map; allocates nothing until the first insert.
    pub fn new() -> Self {
        ConnMap::default()
    }

    /// Stores `v` for `id`, returning the value previously stored for this
    /// same `id` (same index and generation).
    ///
    /// `id` should be live, e.g. the id given to `on_open`. A value of a
    /// different generation in the slot belongs to a connection that has
    /// since closed (it was never removed); it is replaced and dropped, and
    /// `None` is returned: the caller never sees another connection's value.
    /// Grows the map to `id.index() + 1` slots if needed.
    pub fn insert(&mut self, id: ConnId, v: V) -> Option<V> {
        let i = id.index();
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        match self.slots[i].replace((id.generation(), v)) {
            Some((g, old)) if g == id.generation() => Some(old),
            Some(_) => None,
            None => {
                self.len += 1;
                None
            }
        }
    }

    /// The value stored for `id`, if any (never one of another generation).
    pub fn get(&self, id: ConnId) -> Option<&V> {
        match self.slots.get(id.index())? {
            Some((g, v)) if *g == id.generation() => Some(v),
            _ => None,
        }
    }

    /// The value stored for `id`, mutably (never one of another generation).
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut V> {
        match self.slots.get_mut(id.index())? {
            Some((g, v)) if *g == id.generation() => Some(v),
            _ => None,
        }
    }

    /// True if a value is stored for `id` (this generation).
    pub fn contains(&self, id: ConnId) -> bool {
        self.get(id).is_some()
    }

    /// Removes and returns the value stored for `id`. A stale id removes
    /// nothing, even when its slot holds a newer connection's value. The
    /// slot stays allocated for reuse.
    pub fn remove(&mut self, id: ConnId) -> Option<V> {
        let slot = self.slots.get_mut(id.index())?;
        if !matches!(slot, Some((g, _)) if *g == id.generation()) {
            return None;
        }
        self.len -= 1;
        slot.take().map(|(_, v)| v)
    }

    /// Number of values stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no value is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries, in increasing order of [`ConnId::index`]. Walks every
    /// slot ever used, so it costs the peak connection count, not `len()`.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &V)> {
        self.slots.iter().enumerate().filter_map(|(i, slot)| {
            let (g, v) = slot.as_ref()?;
            Some((ConnId::new(i as u32, *g), v))
        })
    }

    /// The entries with mutable values, in increasing order of
    /// [`ConnId::index`] (see [`Self::iter`] for the cost).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (ConnId, &mut V)> {
        self.slots.iter_mut().enumerate().filter_map(|(i, slot)| {
            let (g, v) = slot.as_mut()?;
            Some((ConnId::new(i as u32, *g), v))
        })
    }

    /// The ids present, in increasing order of [`ConnId::index`] (see
    /// [`Self::iter`] for the cost).
    pub fn keys(&self) -> impl Iterator<Item = ConnId> {
        self.iter().map(|(id, _)| id)
    }
}

/// Position of a non-member in [`ConnSet::pos`].
const NOT_MEMBER: u32 = u32::MAX;

/// A set of connections, e.g. the members of a chat room or a topic:
/// O(1) insert, remove and contains, and the members as one contiguous
/// slice for fast fan-out.
///
/// Members are kept densely in a `Vec<ConnId>`; removal swaps the last
/// member into the hole, so the order is insertion order until a removal
/// moves the last member. A second vector holds each member's position by
/// [`ConnId::index`]; a lookup confirms the whole id (generation included)
/// at that position, so a stale id is never a member.
///
/// Memory: the members (8 bytes each) plus one `u32` per index ever used,
/// bounded by the peak number of concurrent connections. Removing never
/// shrinks either vector.
#[derive(Clone, Debug, Default)]
pub struct ConnSet {
    members: Vec<ConnId>,
    /// Position in `members` by [`ConnId::index`], or [`NOT_MEMBER`].
    pos: Vec<u32>,
}

impl ConnSet {
    /// An empty set; allocates nothing until the first insert.
    pub fn new() -> Self {
        ConnSet::default()
    }

    /// The position of `id` in the members, if it is one.
    fn position(&self, id: ConnId) -> Option<usize> {
        let p = *self.pos.get(id.index())? as usize;
        (self.members.get(p) == Some(&id)).then_some(p)
    }

    /// Adds `id`; false if it was already a member.
    ///
    /// `id` should be live, e.g. the id given to `on_open`. A member of a
    /// different generation at the same index belongs to a connection that
    /// has since closed (it was never removed); `id` replaces it in place
    /// and counts as newly added.
    pub fn insert(&mut self, id: ConnId) -> bool {
        let i = id.index();
        if self.pos.len() <= i {
            self.pos.resize(i + 1, NOT_MEMBER);
        }
        let p = self.pos[i] as usize;
        match self.members.get_mut(p) {
            Some(m) if *m == id => false,
            Some(m) if m.index() == i => {
                *m = id;
                true
            }
            _ => {
                self.pos[i] = self.members.len() as u32;
                self.members.push(id);
                true
            }
        }
    }

    /// Removes `id`; false if it was not a member (a stale id never is).
    /// The last member moves into the hole.
    pub fn remove(&mut self, id: ConnId) -> bool {
        let Some(p) = self.position(id) else {
            return false;
        };
        self.members.swap_remove(p);
        if let Some(moved) = self.members.get(p) {
            self.pos[moved.index()] = p as u32;
        }
        self.pos[id.index()] = NOT_MEMBER;
        true
    }

    /// True if `id` (this generation) is a member.
    pub fn contains(&self, id: ConnId) -> bool {
        self.position(id).is_some()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True with no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The members, contiguous, in the order described on [`ConnSet`].
    pub fn as_slice(&self) -> &[ConnId] {
        &self.members
    }

    /// The members, in the order of [`Self::as_slice`].
    pub fn iter(&self) -> std::iter::Copied<std::slice::Iter<'_, ConnId>> {
        self.members.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn map_insert_get_remove() {
        let mut m = ConnMap::new();
        assert!(m.is_empty());
        let (a, b) = (ConnId::new(3, 1), ConnId::new(0, 2));
        assert_eq!(m.insert(a, "a"), None);
        assert_eq!(m.insert(b, "b"), None);
        assert_eq!(m.len(), 2);
        assert_eq!(m.get(a), Some(&"a"));
        assert_eq!(m.insert(a, "a2"), Some("a"), "same id: previous value back");
        assert_eq!(m.len(), 2);
        *m.get_mut(b).unwrap() = "b2";
        assert_eq!(m.get(b), Some(&"b2"));
        assert!(m.contains(a));
        assert_eq!(m.remove(a), Some("a2"));
        assert_eq!(m.remove(a), None);
        assert!(!m.contains(a));
        assert_eq!(m.get(ConnId::new(99, 1)), None, "beyond the end");
        assert_eq!(m.len(), 1);
        assert_eq!(m.remove(b), Some("b2"));
        assert!(m.is_empty());
    }

    #[test]
    fn map_stale_generation_is_blind() {
        let mut m = ConnMap::new();
        let (old, new) = (ConnId::new(1, 7), ConnId::new(1, 8));
        m.insert(old, String::from("old"));
        // The old connection closed without removal; its slot is reused.
        assert_eq!(
            m.insert(new, "new".into()),
            None,
            "older value not returned"
        );
        assert_eq!(m.len(), 1, "replaced, not added");
        assert_eq!(m.get(old), None);
        assert!(m.get_mut(old).is_none());
        assert!(!m.contains(old));
        assert_eq!(m.remove(old), None, "stale id cannot remove");
        assert_eq!(m.get(new).map(String::as_str), Some("new"));
        assert_eq!(m.remove(new).as_deref(), Some("new"));
        assert!(m.is_empty());
    }

    #[test]
    fn map_iterates_by_index() {
        let mut m = ConnMap::new();
        let ids = [ConnId::new(5, 1), ConnId::new(0, 2), ConnId::new(2, 3)];
        for (n, id) in ids.iter().enumerate() {
            m.insert(*id, n);
        }
        m.remove(ConnId::new(0, 2));
        let keys: Vec<_> = m.keys().collect();
        assert_eq!(keys, [ConnId::new(2, 3), ConnId::new(5, 1)]);
        for (_, v) in m.iter_mut() {
            *v *= 10;
        }
        let all: Vec<_> = m.iter().map(|(id, v)| (id, *v)).collect();
        assert_eq!(all, [(ConnId::new(2, 3), 20), (ConnId::new(5, 1), 0)]);
    }

    #[test]
    fn set_basics_and_stale_ids() {
        let mut s = ConnSet::new();
        let (a, b) = (ConnId::new(0, 1), ConnId::new(4, 2));
        assert!(s.insert(a) && s.insert(b));
        assert!(!s.insert(a), "already a member");
        assert_eq!(s.as_slice(), [a, b]);
        let newer_a = ConnId::new(0, 9);
        assert!(!s.contains(newer_a) && !s.remove(newer_a));
        assert!(s.insert(newer_a), "replaces the older generation in place");
        assert_eq!(s.as_slice(), [newer_a, b]);
        assert!(!s.contains(a) && !s.remove(a), "stale id is not a member");
        assert!(s.remove(newer_a));
        assert_eq!(s.iter().collect::<Vec<_>>(), [b]);
        assert_eq!(s.len(), 1);
    }

    /// Random inserts and removes against a `BTreeSet`, checking every
    /// position after each step.
    #[test]
    fn set_matches_model_under_random_ops() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut set = ConnSet::new();
        let mut model = BTreeSet::new();
        for _ in 0..20_000 {
            let r = next();
            let id = ConnId::new((r % 64) as u32, ((r >> 8) % 3) as u32);
            if (r >> 32) & 1 == 0 {
                // The model of "older generation replaced": drop any id
                // at the same index before adding.
                let same_index = model.iter().find(|m: &&ConnId| m.index() == id.index());
                let expect = same_index != Some(&id);
                if let Some(&old) = same_index {
                    model.remove(&old);
                }
                model.insert(id);
                assert_eq!(set.insert(id), expect);
            } else {
                assert_eq!(set.remove(id), model.remove(&id));
            }
            assert_eq!(set.len(), model.len());
            for (p, m) in set.as_slice().iter().enumerate() {
                assert_eq!(set.pos[m.index()] as usize, p);
            }
            let members: BTreeSet<_> = set.iter().collect();
            assert_eq!(members, model);
            assert_eq!(set.contains(id), model.contains(&id));
        }
    }
}
