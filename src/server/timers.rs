//! Every timer of the loop, in one place: the connections' deadlines, and the loop's own
//! timers (the end of the grace period, the retry of accepting, the watchdog, `--exit-idle`).
//! The loop sleeps until the earliest of them all ([`Due`] says what that is for), or without
//! a timeout when none is armed.
//!
//! The connections' deadlines:
//!
//! Every connection has at most one deadline that matters (its request deadline, its idle
//! limit, or its linger limit). Deadlines of one kind all have the same length, so a new one is
//! never earlier than the others of its kind: each kind is a list in order of due time, a new
//! deadline joins its tail, and the earliest of all is at the head of one of the lists. Setting,
//! moving and removing a deadline are a few writes each, whatever the number of connections,
//! and a connection that closes takes its deadline with it, so the timers hold exactly one
//! entry per connection that has a deadline: memory follows what is open now.
//!
//! The lists are threaded through one table indexed by slab key (the `nginx` and Linux kernel
//! timer lists work the same way); the loop sleeps until the earliest head, or without a
//! timeout when every list is empty.

use crate::clock::{Millis, NEVER};
/// The kinds of deadline; each has one length, so each is one list in order of due time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `count`'s request deadline or `echo`/`ack`'s idle limit (`--idle-timeout`).
    Request,
    /// The lingering close, and the last words after a deadline (`--linger`).
    Linger,
    /// The wait for a PROXY protocol header (5 s).
    Header,
}

const KINDS: usize = 3;

/// A connection's deadline: what kind, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Deadline {
    pub kind: Kind,
    pub due: Millis,
}

/// "No key": the end of a list.
const NIL: u32 = u32::MAX;

/// One slab key's place in the lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Link {
    /// When it is due; `NEVER` while the key is in no list.
    due: Millis,
    prev: u32,
    next: u32,
}

const UNLINKED: Link = Link {
    due: NEVER,
    prev: NIL,
    next: NIL,
};

/// Both ends of one list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ends {
    head: u32,
    tail: u32,
}

const EMPTY: Ends = Ends {
    head: NIL,
    tail: NIL,
};

/// The connections' deadlines, keyed by slab key.
#[derive(Debug)]
pub(crate) struct Timers {
    links: Vec<Link>,
    lists: [Ends; KINDS],
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            links: Vec::new(),
            lists: [EMPTY; KINDS],
        }
    }
}

impl Timers {
    /// Makes `key`'s entry say `wanted`: moves it to its new place, or removes it for `None`.
    /// Costs nothing when nothing changed.
    pub(crate) fn sync(&mut self, key: usize, wanted: Option<Deadline>) {
        let due = wanted.map_or(NEVER, |d| d.due);
        if self.links.get(key).map_or(NEVER, |l| l.due) == due {
            return;
        }
        self.unlink(key);
        if let Some(d) = wanted {
            self.link(key, d);
        }
    }

    /// Removes `key`'s entry, if it has one (its connection closed).
    pub(crate) fn cancel(&mut self, key: usize) {
        self.sync(key, None);
    }

    /// When the earliest entry is due, and its key.
    pub(crate) fn next(&self) -> Option<(Millis, usize)> {
        self.lists
            .iter()
            .filter(|ends| ends.head != NIL)
            .map(|ends| (self.links[ends.head as usize].due, ends.head as usize))
            .min()
    }

    /// Takes the earliest entry if it is due at `now`, and returns its key.
    pub(crate) fn pop_due(&mut self, now: Millis) -> Option<usize> {
        let (due, key) = self.next()?;
        if due > now {
            return None;
        }
        self.unlink(key);
        Some(key)
    }

    /// Gives back the table's room for keys from `slots` on (the slab shrank to `slots`;
    /// every key past it is free, so it is in no list).
    pub(crate) fn shrink_to(&mut self, slots: usize) {
        debug_assert!(self.links.iter().skip(slots).all(|l| l.due == NEVER));
        self.links.truncate(slots);
        self.links.shrink_to_fit();
    }

    /// How many entries the lists hold: one per connection with a deadline. (A walk over the
    /// table, for `SIGUSR1` at debug level and tests, not for every pass.)
    pub(crate) fn armed(&self) -> usize {
        self.links.iter().filter(|l| l.due != NEVER).count()
    }

    /// Adds `key` to its kind's list, in order of due time. A new deadline is almost always
    /// the latest of its kind, so the walk from the tail stops at once.
    fn link(&mut self, key: usize, d: Deadline) {
        if key >= self.links.len() {
            self.links.resize(key + 1, UNLINKED);
        }
        let k = key_u32(key);
        let ends = self.lists[d.kind as usize];
        let mut after = ends.tail;
        while after != NIL && self.links[after as usize].due > d.due {
            after = self.links[after as usize].prev;
        }
        let before = match after {
            NIL => ends.head,
            a => self.links[a as usize].next,
        };
        self.links[key] = Link {
            due: d.due,
            prev: after,
            next: before,
        };
        let list = &mut self.lists[d.kind as usize];
        match after {
            NIL => list.head = k,
            a => self.links[a as usize].next = k,
        }
        match before {
            NIL => list.tail = k,
            b => self.links[b as usize].prev = k,
        }
    }

    /// Takes `key` out of whichever list holds it.
    fn unlink(&mut self, key: usize) {
        let Some(&link) = self.links.get(key) else {
            return;
        };
        if link.due == NEVER {
            return;
        }
        let k = key_u32(key);
        // A key at an end of a list is that list's head or tail; the others know only their
        // neighbours, so which list holds the key matters only at the ends.
        match link.prev {
            NIL => {
                if let Some(list) = self.lists.iter_mut().find(|e| e.head == k) {
                    list.head = link.next;
                }
            }
            p => self.links[p as usize].next = link.next,
        }
        match link.next {
            NIL => {
                if let Some(list) = self.lists.iter_mut().find(|e| e.tail == k) {
                    list.tail = link.prev;
                }
            }
            n => self.links[n as usize].prev = link.prev,
        }
        self.links[key] = UNLINKED;
    }
}

/// A slab key as the lists store it. Keys stay far below `u32::MAX`: the slab holds at most
/// `--max-connections` plus `--max-refusals` connections, and both are bounded.
fn key_u32(key: usize) -> u32 {
    debug_assert!(key < NIL as usize);
    key as u32
}

/// The loop's own timers (the connections' deadlines are in [`Timers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoopTimer {
    /// The grace period is over: every connection still open closes.
    DrainEnd,
    /// Accepting resumes after a pause (no descriptors, or a transient error).
    AcceptRetry,
    /// `WATCHDOG=1` is due (only when the service manager asked for it).
    Watchdog,
    /// Nothing has been open for `--exit-idle`: the daemon stops.
    ExitIdle,
    /// The new daemon taking over (`--handover`) was not ready in time.
    Handover,
}

impl LoopTimer {
    const ALL: [LoopTimer; 5] = [
        LoopTimer::DrainEnd,
        LoopTimer::AcceptRetry,
        LoopTimer::Watchdog,
        LoopTimer::ExitIdle,
        LoopTimer::Handover,
    ];
}

/// When each loop timer is due, indexed by [`LoopTimer`]; `None` while it is not armed.
#[derive(Debug, Default)]
pub(crate) struct LoopTimers {
    due: [Option<Millis>; LoopTimer::ALL.len()],
}

impl LoopTimers {
    /// Arms `timer` for `at`, or disarms it with `None`.
    pub(crate) fn set(&mut self, timer: LoopTimer, at: Option<Millis>) {
        self.due[timer as usize] = at;
    }

    pub(crate) fn arm(&mut self, timer: LoopTimer, at: Millis) {
        self.set(timer, Some(at));
    }

    /// Disarms `timer`; returns whether it was armed.
    pub(crate) fn disarm(&mut self, timer: LoopTimer) -> bool {
        self.due[timer as usize].take().is_some()
    }

    pub(crate) fn is_armed(&self, timer: LoopTimer) -> bool {
        self.due[timer as usize].is_some()
    }

    /// The earliest armed timer (the first in [`LoopTimer::ALL`] on a tie).
    pub(crate) fn next(&self) -> Option<(Millis, LoopTimer)> {
        LoopTimer::ALL
            .into_iter()
            .filter_map(|t| Some((self.due[t as usize]?, t)))
            .min_by_key(|&(at, _)| at)
    }

    /// Takes the earliest timer if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Millis) -> Option<LoopTimer> {
        let (at, timer) = self.next()?;
        (at <= now).then(|| {
            self.disarm(timer);
            timer
        })
    }
}

/// What the loop's nearest due time is for (the poll's timeout says so in the trace).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    Conn(usize),
    Loop(LoopTimer),
    /// The line for drops the UDP drop log held back.
    DropLog,
    /// Forgetting the rate tables' sources that have not been seen for a while.
    RateTables,
}

impl Due {
    /// The earliest of the due times given (the first on a tie), and what it is for.
    pub(crate) fn earliest(
        candidates: impl IntoIterator<Item = Option<(Millis, Due)>>,
    ) -> Option<(Millis, Due)> {
        candidates.into_iter().flatten().min_by_key(|&(at, _)| at)
    }
}

impl std::fmt::Display for Due {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Due::Conn(key) => write!(f, "conn {key}'s deadline"),
            Due::Loop(LoopTimer::DrainEnd) => f.write_str("the end of the grace period"),
            Due::Loop(LoopTimer::AcceptRetry) => f.write_str("the time to try accepting again"),
            Due::Loop(LoopTimer::Watchdog) => f.write_str("the next watchdog ping"),
            Due::Loop(LoopTimer::ExitIdle) => f.write_str("the end of the idle time (--exit-idle)"),
            Due::Loop(LoopTimer::Handover) => {
                f.write_str("the new daemon's time to be ready (--handover)")
            }
            Due::DropLog => f.write_str("the drop log's summary line"),
            Due::RateTables => f.write_str("the rate tables' clean-up"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request(due: Millis) -> Option<Deadline> {
        Some(Deadline {
            kind: Kind::Request,
            due,
        })
    }

    fn linger(due: Millis) -> Option<Deadline> {
        Some(Deadline {
            kind: Kind::Linger,
            due,
        })
    }

    fn all_due(t: &mut Timers, now: Millis) -> Vec<usize> {
        std::iter::from_fn(|| t.pop_due(now)).collect()
    }

    #[test]
    fn a_deadline_fires_once_when_due() {
        let mut t = Timers::default();
        t.sync(3, request(100));
        assert_eq!(t.next().map(|(at, _)| at), Some(100));
        assert!(all_due(&mut t, 99).is_empty());
        assert_eq!(all_due(&mut t, 100), [3]);
        assert_eq!((t.next(), t.armed()), (None, 0));
    }

    #[test]
    fn the_earliest_of_both_kinds_comes_first() {
        let mut t = Timers::default();
        t.sync(0, request(300));
        t.sync(1, linger(120));
        t.sync(2, request(310));
        t.sync(3, linger(130));
        assert_eq!(t.next().map(|(at, _)| at), Some(120));
        assert_eq!(all_due(&mut t, 1000), [1, 3, 0, 2]);
    }

    #[test]
    fn moving_a_deadline_later_moves_it_to_the_tail() {
        let mut t = Timers::default();
        t.sync(0, request(100));
        t.sync(1, request(110));
        t.sync(0, request(150));
        assert_eq!(t.armed(), 2);
        assert_eq!(all_due(&mut t, 120), [1]);
        assert_eq!(t.next().map(|(at, _)| at), Some(150));
        assert_eq!(all_due(&mut t, 150), [0]);
    }

    #[test]
    fn a_cancelled_deadline_is_gone_and_costs_nothing() {
        let mut t = Timers::default();
        for key in 0..5 {
            t.sync(key, request(100 + key as Millis));
        }
        // Head, middle and tail.
        t.cancel(0);
        t.cancel(2);
        t.cancel(4);
        t.cancel(4);
        assert_eq!(t.armed(), 2);
        assert_eq!(all_due(&mut t, 1000), [1, 3]);
    }

    #[test]
    fn changing_kind_moves_the_entry_between_lists() {
        let mut t = Timers::default();
        t.sync(7, request(500));
        t.sync(7, linger(50));
        assert_eq!(t.next().map(|(at, _)| at), Some(50));
        assert_eq!(all_due(&mut t, 60), [7]);
        assert_eq!(t.next(), None);
    }

    #[test]
    fn a_reused_key_starts_with_no_entry() {
        let mut t = Timers::default();
        t.sync(7, request(50));
        t.cancel(7);
        t.sync(7, request(500));
        assert!(all_due(&mut t, 60).is_empty());
        assert_eq!(all_due(&mut t, 500), [7]);
    }

    #[test]
    fn shrinking_gives_back_the_room_of_free_keys() {
        let mut t = Timers::default();
        t.sync(1000, request(5));
        t.cancel(1000);
        t.sync(2, request(9));
        t.shrink_to(3);
        assert!(t.links.capacity() < 1000);
        assert_eq!(all_due(&mut t, 10), [2]);
    }

    proptest! {
        /// Against a plain model (a map from key to deadline): the timers fire the same keys
        /// in order of due time, whatever the sequence of sets, moves and cancels.
        #[test]
        fn behaves_like_a_sorted_map(ops in proptest::collection::vec((0usize..16, 0u8..3, 0u64..50), 0..200)) {
            let mut t = Timers::default();
            let mut model = std::collections::BTreeMap::new();
            let mut now = 0;
            for (key, op, delta) in ops {
                now += delta / 10;
                let wanted = match op {
                    0 => request(now + 100 + delta),
                    1 => linger(now + delta),
                    _ => None,
                };
                t.sync(key, wanted);
                match wanted {
                    Some(d) => model.insert(key, d.due),
                    None => model.remove(&key),
                };
                prop_assert_eq!(t.next().map(|(at, _)| at), model.values().min().copied());
                prop_assert_eq!(t.armed(), model.len());
            }
            while let Some(key) = t.pop_due(NEVER - 1) {
                let due = model.remove(&key).expect("a key the model holds");
                prop_assert!(model.values().all(|&other| other >= due));
            }
            prop_assert!(model.is_empty());
        }
    }

    #[test]
    fn the_loops_timers_come_due_earliest_first_and_once() {
        let mut t = LoopTimers::default();
        assert_eq!(t.next(), None);
        t.arm(LoopTimer::Watchdog, 300);
        t.arm(LoopTimer::DrainEnd, 100);
        t.arm(LoopTimer::AcceptRetry, 200);
        assert_eq!(t.next(), Some((100, LoopTimer::DrainEnd)));
        assert_eq!(t.pop_due(99), None);
        assert_eq!(t.pop_due(250), Some(LoopTimer::DrainEnd));
        assert_eq!(t.pop_due(250), Some(LoopTimer::AcceptRetry));
        assert_eq!(t.pop_due(250), None);
        assert!(t.disarm(LoopTimer::Watchdog));
        assert!(!t.disarm(LoopTimer::Watchdog));
        assert!(!t.is_armed(LoopTimer::Watchdog));
        assert_eq!(t.next(), None);
    }

    #[test]
    fn the_idle_timer_is_one_of_the_loops_timers() {
        let mut t = LoopTimers::default();
        t.arm(LoopTimer::ExitIdle, 50);
        t.arm(LoopTimer::Watchdog, 60);
        assert_eq!(t.next(), Some((50, LoopTimer::ExitIdle)));
        assert!(t.is_armed(LoopTimer::ExitIdle));
        assert_eq!(t.pop_due(55), Some(LoopTimer::ExitIdle));
        assert!(!t.is_armed(LoopTimer::ExitIdle));
        assert_eq!(t.next(), Some((60, LoopTimer::Watchdog)));
    }

    #[test]
    fn the_nearest_due_time_prefers_the_first_on_a_tie() {
        let a = Some((5, Due::DropLog));
        let b = Some((5, Due::RateTables));
        assert_eq!(Due::earliest([a, b]), a);
        assert_eq!(Due::earliest([Some((7, Due::DropLog)), b]), b);
        assert_eq!(Due::earliest([None, b]), b);
        assert_eq!(Due::earliest([None, None]), None);
    }
}
