//! Application timers (ReactPHP's addTimer / addPeriodicTimer /
//! cancelTimer): a min-heap of deadlines plus the set of live timers.
//! Cancelling is O(1); cancelled entries are skipped when they surface.

use crate::app::{Route, TimerId};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// Shortest period, so a zero-period timer cannot spin the loop.
const MIN_PERIOD: Duration = Duration::from_millis(1);

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Live timers: their period (None: one-shot) and the app that made them.
    live: HashMap<u64, (Option<Duration>, Route)>,
    next_id: u64,
}

impl Timers {
    pub fn add(
        &mut self,
        now: Instant,
        delay: Duration,
        period: Option<Duration>,
        route: Route,
    ) -> TimerId {
        self.next_id += 1;
        let id = self.next_id;
        self.live
            .insert(id, (period.map(|p| p.max(MIN_PERIOD)), route));
        self.heap.push(Reverse((now + delay, id)));
        TimerId::new(id, route)
    }

    pub fn cancel(&mut self, id: TimerId) -> bool {
        self.live.remove(&id.id()).is_some()
    }

    /// Earliest deadline (possibly of a cancelled timer: a harmless early wake).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// Pops a timer that is due at `now`, rescheduling periodic ones past
    /// `now` so each fires at most once per call site loop.
    pub fn pop_due(&mut self, now: Instant) -> Option<TimerId> {
        while let Some(&Reverse((deadline, id))) = self.heap.peek() {
            if deadline > now {
                return None;
            }
            self.heap.pop();
            let route = match self.live.get(&id) {
                None => continue,
                Some(&(None, route)) => {
                    self.live.remove(&id);
                    route
                }
                Some(&(Some(period), route)) => {
                    let mut next = deadline + period;
                    if next <= now {
                        next = now + period;
                    }
                    self.heap.push(Reverse((next, id)));
                    route
                }
            };
            return Some(TimerId::new(id, route));
        }
        None
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_periodic_and_cancel_on_virtual_time() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut t = Timers::default();
        let once = t.add(t0, ms(10), None, Route::ROOT);
        let every = t.add(t0, ms(5), Some(ms(5)), Route::ROOT);
        let dead = t.add(t0, ms(1), None, Route::ROOT);
        assert!(t.cancel(dead));
        assert!(!t.cancel(dead));
        assert_eq!(t.pop_due(t0 + ms(4)), None);
        assert_eq!(t.pop_due(t0 + ms(5)), Some(every));
        assert_eq!(
            t.pop_due(t0 + ms(5)),
            None,
            "periodic fires once per instant"
        );
        let at10: Vec<_> = std::iter::from_fn(|| t.pop_due(t0 + ms(10))).collect();
        assert_eq!(at10.len(), 2);
        assert!(at10.contains(&once) && at10.contains(&every));
        assert_eq!(t.len(), 1);
        // Far behind: the periodic timer fires once, not for every missed period.
        let late: Vec<_> = std::iter::from_fn(|| t.pop_due(t0 + ms(1000))).collect();
        assert_eq!(late, vec![every]);
        assert!(t.cancel(every));
        assert_eq!(t.pop_due(t0 + ms(5000)), None);
    }

    #[test]
    fn zero_period_does_not_spin() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.add(t0, Duration::ZERO, Some(Duration::ZERO), Route::ROOT);
        assert!(t.pop_due(t0).is_some());
        assert!(t.pop_due(t0).is_none());
    }
}
