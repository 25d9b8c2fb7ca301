//! Where an answer that comes later must go: the path from the root
//! application down to the app that asked, and the tickets that carry it.
//!
//! Composite apps ([`super::Router`], [`super::Aggregate`]) call their
//! children through [`super::Context::child`], which pushes the child's
//! index onto the context's route. Whatever a child starts there (a timer,
//! an outbound request, a subscription) is stamped with that route; its
//! completion comes back down the same path, each composite handing it to
//! exactly the child named at its depth, never to all of them.

use std::fmt;

/// Deepest nesting of composite apps a route records.
pub const MAX_DEPTH: usize = 7;

/// A path of child indices from a root app (the app of one listener), at
/// most 7 hops long.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    root: u16,
    len: u8,
    hops: [u16; MAX_DEPTH],
}

impl Route {
    /// The root app of the first listener.
    pub const ROOT: Route = Route {
        root: 0,
        len: 0,
        hops: [0; MAX_DEPTH],
    };

    /// The reactor's own tickets (the Redis bus's commands and messages):
    /// no app holds them.
    pub(crate) const BUS: Route = Route {
        root: u16::MAX,
        len: 0,
        hops: [0; MAX_DEPTH],
    };

    /// The root app of listener `index` (in the order they were added).
    pub fn root(index: usize) -> Route {
        Route {
            root: u16::try_from(index).unwrap_or(u16::MAX),
            ..Route::ROOT
        }
    }

    /// Which root app (listener) the route starts from.
    pub fn root_index(&self) -> usize {
        usize::from(self.root)
    }

    /// Number of hops (the depth of the app this route names).
    pub fn depth(&self) -> usize {
        usize::from(self.len)
    }

    /// The child index at `depth`, if the route goes that deep.
    pub fn hop(&self, depth: usize) -> Option<usize> {
        (depth < self.depth()).then(|| usize::from(self.hops[depth]))
    }

    /// The route one level deeper, through child `index`. Past
    /// 7 hops (or 65,535 children) the route stops growing:
    /// completions then reach the deepest composite recorded, which drops
    /// them (logged), rather than the wrong app.
    pub(crate) fn push(&mut self, index: usize) -> bool {
        let Ok(hop) = u16::try_from(index) else {
            return false;
        };
        if self.depth() == MAX_DEPTH {
            return false;
        }
        self.hops[self.depth()] = hop;
        self.len += 1;
        true
    }

    pub(crate) fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "app {}:/", self.root)?;
        for (i, hop) in self.hops[..self.depth()].iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            write!(f, "{hop}")?;
        }
        Ok(())
    }
}

/// Identifies a timer created through [`super::Context::add_timer`] or
/// [`super::Context::add_periodic_timer`], and the app that created it.
/// Unique for the life of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId {
    id: u64,
    route: Route,
}

impl TimerId {
    /// A timer id; made by the reactor (and by test sinks).
    pub fn new(id: u64, route: Route) -> Self {
        TimerId { id, route }
    }

    /// The number, unique among timers.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The app that created the timer.
    pub fn route(&self) -> Route {
        self.route
    }
}

/// Identifies something an app started that answers later (an outbound
/// request, a subscription), and the app that started it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket {
    id: u64,
    route: Route,
}

impl Ticket {
    /// A ticket; made by the reactor (and by test sinks).
    pub fn new(id: u64, route: Route) -> Self {
        Ticket { id, route }
    }

    /// The number, unique among tickets.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The app that holds the ticket.
    pub fn route(&self) -> Route {
        self.route
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ticket {} for app {:?}", self.id, self.route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_pop_and_limits() {
        let mut r = Route::ROOT;
        assert_eq!((r.depth(), r.hop(0)), (0, None));
        assert!(r.push(3));
        assert!(!r.push(70_000), "more children than a hop holds");
        assert!(r.push(1));
        assert_eq!(
            (r.depth(), r.hop(0), r.hop(1), r.hop(2)),
            (2, Some(3), Some(1), None)
        );
        assert_eq!(format!("{r:?}"), "app 0:/3/1");
        assert_eq!(Route::root(2).root_index(), 2);
        r.pop();
        assert_eq!(r.depth(), 1);
        for i in 0..10 {
            r.push(i);
        }
        assert_eq!(r.depth(), MAX_DEPTH);
        let mut root = Route::ROOT;
        root.pop();
        assert_eq!(root, Route::ROOT);
    }
}
