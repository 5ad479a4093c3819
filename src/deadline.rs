//! Deadlines: the connections' timers and the loop's clock.
//!
//! Every connection has at most one deadline that matters (its request deadline, its idle
//! limit, or its linger limit). The loop keeps one min-heap of `(when, key)` entries and sleeps
//! until the earliest; with nothing in the heap it sleeps without a timeout.
//!
//! Entries are removed lazily. Moving a deadline later (an `echo` connection that moved bytes)
//! is a field write, not a heap operation: when the old entry comes due, the connection is found
//! not yet due and one new entry is pushed. Moving it earlier pushes a new entry and leaves the
//! old one to be skipped. An entry counts only while it is the connection's `queued` one, so a
//! closed connection's entries (or those of an earlier owner of a reused slab key) do nothing.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Milliseconds since the loop started (`u64`: it does not wrap in any lifetime).
pub type Millis = u64;

/// The deadline of something that has none.
pub const NEVER: Millis = Millis::MAX;

/// The loop's monotonic clock, in whole milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> Millis {
        Millis::try_from(self.start.elapsed().as_millis()).unwrap_or(NEVER - 1)
    }
}

/// The time of one pass of the loop, read from the clock the first time something asks for
/// it: a pass that only moves datagrams (which have no deadlines) never reads the clock.
#[derive(Debug)]
pub struct PassTime {
    clock: Clock,
    read: Option<Millis>,
}

impl PassTime {
    pub fn new(clock: Clock) -> PassTime {
        PassTime { clock, read: None }
    }

    /// The pass's time: the same value every time it is asked for within the pass.
    pub fn get(&mut self) -> Millis {
        *self.read.get_or_insert_with(|| self.clock.now())
    }
}

/// `now + span`, in milliseconds, rounded up so a deadline is never early.
pub fn after(now: Millis, span: Duration) -> Millis {
    let ms = span.as_nanos().div_ceil(1_000_000);
    now.saturating_add(Millis::try_from(ms).unwrap_or(NEVER))
}

/// One connection's deadline and the heap entry that stands for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    due: Millis,
    queued: Millis,
}

impl Default for Deadline {
    fn default() -> Self {
        Deadline {
            due: NEVER,
            queued: NEVER,
        }
    }
}

/// What a due heap entry means for its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fire {
    /// The deadline has passed.
    Expired,
    /// Not this entry's business: stale, or the deadline moved (it was queued again).
    Nothing,
}

impl Deadline {
    /// Sets the deadline to `at` (`NEVER` disarms it). Call [`Timers::sync`] afterwards.
    pub fn set(&mut self, at: Millis) {
        self.due = at;
    }
}

/// The heap of deadline entries for connections, keyed by slab key.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Millis, usize)>>,
}

impl Timers {
    /// Makes sure the heap has an entry no later than `d`'s deadline.
    pub fn sync(&mut self, key: usize, d: &mut Deadline) {
        if d.due < d.queued {
            self.heap.push(Reverse((d.due, key)));
            d.queued = d.due;
        }
    }

    /// When the earliest entry is due.
    pub fn next(&self) -> Option<Millis> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Forgets every entry: for when no connection is left, so stale entries cannot wake an
    /// idle loop.
    pub fn clear(&mut self) {
        self.heap.clear();
    }

    /// Takes the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Millis) -> Option<(Millis, usize)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Handles an entry `(at, key)` taken by `pop_due`, for the connection now at `key`.
    pub fn fire(&mut self, (at, key): (Millis, usize), d: &mut Deadline, now: Millis) -> Fire {
        if d.queued != at {
            return Fire::Nothing;
        }
        d.queued = NEVER;
        if d.due <= now {
            return Fire::Expired;
        }
        self.sync(key, d);
        Fire::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expire_all(t: &mut Timers, d: &mut Deadline, now: Millis) -> Vec<Fire> {
        let mut fired = Vec::new();
        while let Some(e) = t.pop_due(now) {
            fired.push(t.fire(e, d, now));
        }
        fired
    }

    #[test]
    fn a_deadline_fires_once_when_due() {
        let mut t = Timers::default();
        let mut d = Deadline::default();
        d.set(100);
        t.sync(3, &mut d);
        assert_eq!(t.next(), Some(100));
        assert!(expire_all(&mut t, &mut d, 99).is_empty());
        assert_eq!(expire_all(&mut t, &mut d, 100), vec![Fire::Expired]);
        assert!(t.heap.is_empty());
    }

    #[test]
    fn moving_later_costs_no_entry_until_the_old_one_is_due() {
        let mut t = Timers::default();
        let mut d = Deadline::default();
        d.set(100);
        t.sync(3, &mut d);
        d.set(150);
        t.sync(3, &mut d);
        assert_eq!(t.heap.len(), 1);
        assert_eq!(expire_all(&mut t, &mut d, 120), vec![Fire::Nothing]);
        assert_eq!(t.next(), Some(150));
        assert_eq!(expire_all(&mut t, &mut d, 150), vec![Fire::Expired]);
    }

    #[test]
    fn moving_earlier_pushes_and_the_old_entry_is_skipped() {
        let mut t = Timers::default();
        let mut d = Deadline::default();
        d.set(100);
        t.sync(3, &mut d);
        d.set(20);
        t.sync(3, &mut d);
        assert_eq!(t.next(), Some(20));
        assert_eq!(expire_all(&mut t, &mut d, 20), vec![Fire::Expired]);
        // The connection now has no deadline; the entry at 100 is stale.
        d.set(NEVER);
        assert_eq!(expire_all(&mut t, &mut d, 1000), vec![Fire::Nothing]);
        assert!(t.heap.is_empty());
    }

    #[test]
    fn entries_of_a_previous_owner_of_the_key_do_nothing() {
        let mut t = Timers::default();
        let mut old = Deadline::default();
        old.set(50);
        t.sync(7, &mut old);
        // Key 7 is reused by a new connection with a later deadline.
        let mut new = Deadline::default();
        new.set(500);
        t.sync(7, &mut new);
        assert_eq!(expire_all(&mut t, &mut new, 60), vec![Fire::Nothing]);
        assert_eq!(expire_all(&mut t, &mut new, 500), vec![Fire::Expired]);
    }

    #[test]
    fn after_rounds_up_and_saturates() {
        assert_eq!(after(10, Duration::from_micros(1)), 11);
        assert_eq!(after(10, Duration::from_millis(5)), 15);
        assert_eq!(after(10, Duration::MAX), NEVER);
    }
}
