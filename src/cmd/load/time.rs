//! The load loop's time: microseconds since the run began, and the queue of deadlines.
//!
//! Everything that decides *when* (the open-loop schedule, deadlines, latencies) takes the
//! time as a value (`now: Micros`), so it can be tested with made-up times. Only the loop
//! reads the clock, once per wake-up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Microseconds since the run began.
pub(super) type Micros = u64;

/// The deadline of something that has none.
pub(super) const NEVER: Micros = Micros::MAX;

/// One second, in the loop's unit.
pub(super) const SECOND: Micros = 1_000_000;

/// A span in the loop's unit, rounded down (a span that does not fit is `NEVER`).
pub(super) fn micros(span: Duration) -> Micros {
    Micros::try_from(span.as_micros()).unwrap_or(NEVER)
}

/// The run's monotonic clock.
#[derive(Clone, Copy, Debug)]
pub(super) struct RunClock {
    began: Instant,
}

impl RunClock {
    pub(super) fn start() -> RunClock {
        RunClock {
            began: Instant::now(),
        }
    }

    pub(super) fn now(&self) -> Micros {
        micros(self.began.elapsed())
    }
}

/// The deadlines of a run, earliest first, each for a slot (a slab key or a socket index).
///
/// Every deadline of a run is `now + --timeout`, one length for all, so deadlines are pushed
/// in the order they fall due and a FIFO serves as the priority queue. Entries are never
/// taken out early: a slot keeps its own `due` time, and an entry counts only while the slot's
/// `due` still equals it, so a disarmed deadline or a slot that was reused costs nothing.
#[derive(Debug, Default)]
pub(super) struct Expiry {
    queue: VecDeque<(Micros, usize)>,
}

impl Expiry {
    /// Queues `slot`'s deadline `due` (no earlier than any queued before it).
    pub(super) fn push(&mut self, due: Micros, slot: usize) {
        self.queue.push_back((due, slot));
    }

    /// When the earliest entry falls due.
    pub(super) fn next(&self) -> Option<Micros> {
        self.queue.front().map(|&(due, _)| due)
    }

    /// Takes the earliest entry if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: Micros) -> Option<(Micros, usize)> {
        match self.queue.front() {
            Some(&(due, _)) if due <= now => self.queue.pop_front(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_out_in_order_once_due() {
        let mut e = Expiry::default();
        e.push(100, 3);
        e.push(100, 4);
        e.push(250, 3);
        assert_eq!(e.next(), Some(100));
        assert_eq!(e.pop_due(99), None);
        assert_eq!(e.pop_due(100), Some((100, 3)));
        assert_eq!(e.pop_due(100), Some((100, 4)));
        assert_eq!(e.pop_due(100), None);
        assert_eq!(e.next(), Some(250));
        assert_eq!(e.pop_due(1000), Some((250, 3)));
        assert_eq!(e.next(), None);
    }

    #[test]
    fn spans_convert_to_microseconds() {
        assert_eq!(micros(Duration::from_millis(1500)), 1_500_000);
        assert_eq!(micros(Duration::MAX), NEVER);
    }
}
