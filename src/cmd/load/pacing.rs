//! When the `count` scenario starts connections: in a closed loop (a fixed number in flight,
//! each replaced as soon as it finishes) or an open loop (`--rate R` starts a second on a
//! fixed schedule, whatever the server does).
//!
//! Open loop and coordinated omission: each start has an *intended* time on the schedule
//! (`start + i / R`), and its latency is measured from that time, not from when it actually
//! went out. When the server stalls, connections pile up to the `--connections` cap and later
//! starts are held back; each still goes out as soon as a slot frees, and its latency includes
//! the wait. A stall therefore shows in the percentiles instead of pausing the measurement.
//! Starts still held back well after the run (one `--timeout` past its end) are given up and
//! counted as timed out: by then each has waited longer than the timeout.
//!
//! Nothing here reads a clock: the loop passes `now` in.

use super::time::{Micros, SECOND};

/// The fastest schedule: one start a microsecond, as closely as the loop's clock can space
/// them. Bounded so, a run of up to a year has at most 2^45 starts, which `u64` and the `f64`
/// arithmetic of the schedule hold exactly; an unbounded rate (`1e300`) would make the count
/// of starts saturate at `u64::MAX`, and every start not made be given up as timed out.
pub(super) const MAX_RATE: f64 = 1_000_000.0;

/// How connections are started.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Pacing {
    /// Keep `connections` in flight until `end`.
    Closed { connections: usize, end: Micros },
    /// Start on a schedule.
    Open(Schedule),
}

/// An open-loop schedule: start `i` is intended at `start + i * 1e6 / rate` µs.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Schedule {
    rate: f64,
    start: Micros,
    /// Starts in the run: those intended before its end.
    total: u64,
    /// The index of the next start.
    next: u64,
    /// The most connections in flight.
    cap: usize,
    /// When starts still held back are given up.
    give_up_at: Micros,
}

impl Schedule {
    /// `rate` starts a second (positive, at most [`MAX_RATE`]) from `start` for `duration`
    /// (at most a year), at most `cap` in flight; starts still held back at
    /// `duration + grace` are given up.
    pub(super) fn new(
        rate: f64,
        start: Micros,
        duration: Micros,
        grace: Micros,
        cap: usize,
    ) -> Schedule {
        let total = (duration as f64 * rate / SECOND as f64).ceil() as u64;
        Schedule {
            rate,
            start,
            total,
            next: 0,
            cap,
            give_up_at: start.saturating_add(duration).saturating_add(grace),
        }
    }

    /// The intended time of start `i`.
    fn intended(&self, i: u64) -> Micros {
        self.start + (i as f64 * SECOND as f64 / self.rate) as Micros
    }
}

impl Pacing {
    /// The next start allowed at `now` with `in_flight` connections running, as the time its
    /// latency is measured from; `None` when no start is due or there is no room.
    pub(super) fn next_start(&mut self, now: Micros, in_flight: usize) -> Option<Micros> {
        match self {
            Pacing::Closed { connections, end } => {
                (now < *end && in_flight < *connections).then_some(now)
            }
            Pacing::Open(s) => {
                if in_flight >= s.cap || s.next >= s.total {
                    return None;
                }
                let at = s.intended(s.next);
                if at > now {
                    return None;
                }
                s.next += 1;
                Some(at)
            }
        }
    }

    /// When the loop must wake to start more, though no connection finishes: the next
    /// intended start while there is room, or the give-up time while starts are held back.
    pub(super) fn wake_at(&self, now: Micros, in_flight: usize) -> Option<Micros> {
        match self {
            Pacing::Closed { connections, end } => {
                (now < *end && in_flight < *connections).then_some(now)
            }
            Pacing::Open(s) if s.next >= s.total => None,
            Pacing::Open(s) if in_flight < s.cap => Some(s.intended(s.next)),
            Pacing::Open(s) => Some(s.give_up_at),
        }
    }

    /// Gives up, at the give-up time, the starts still held back; returns how many.
    pub(super) fn give_up(&mut self, now: Micros) -> u64 {
        match self {
            Pacing::Open(s) if now >= s.give_up_at && s.next < s.total => {
                let left = s.total - s.next;
                s.next = s.total;
                left
            }
            _ => 0,
        }
    }

    /// Whether every start has been made (or given up).
    pub(super) fn is_done(&self, now: Micros) -> bool {
        match self {
            Pacing::Closed { end, .. } => now >= *end,
            Pacing::Open(s) => s.next >= s.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every start `pacing` allows at `now` with `in_flight` running.
    fn starts(pacing: &mut Pacing, now: Micros, in_flight: usize) -> Vec<Micros> {
        let mut made = Vec::new();
        while let Some(at) = pacing.next_start(now, in_flight + made.len()) {
            made.push(at);
        }
        made
    }

    #[test]
    fn open_loop_starts_follow_the_schedule() {
        // 1000/s for 10 ms: ten starts, one a millisecond, from t = 5000 µs.
        let mut p = Pacing::Open(Schedule::new(1000.0, 5_000, 10_000, 1_000_000, 100));
        assert_eq!(starts(&mut p, 4_999, 0), Vec::<Micros>::new());
        assert_eq!(p.wake_at(4_999, 0), Some(5_000));
        assert_eq!(starts(&mut p, 7_500, 0), vec![5_000, 6_000, 7_000]);
        assert_eq!(p.wake_at(7_500, 3), Some(8_000));
        assert_eq!(
            starts(&mut p, 20_000, 3),
            (8..15).map(|ms| ms * 1000).collect::<Vec<_>>()
        );
        assert!(p.is_done(20_000));
        assert_eq!(p.wake_at(20_000, 0), None);
    }

    #[test]
    fn a_start_held_back_by_the_cap_keeps_its_intended_time() {
        // 100/s, at most 2 in flight; the server stalls and both slots stay busy.
        let mut p = Pacing::Open(Schedule::new(100.0, 0, SECOND, SECOND, 2));
        assert_eq!(starts(&mut p, 0, 0), vec![0]);
        assert_eq!(starts(&mut p, 10_000, 1), vec![10_000]);
        assert_eq!(starts(&mut p, 500_000, 2), Vec::<Micros>::new());
        // Held back: the loop need not wake for the schedule, only to give up in the end.
        assert_eq!(p.wake_at(500_000, 2), Some(2 * SECOND));
        // One slot frees at 0.5 s: the next start goes out now, but its latency counts from
        // 20 ms, where the schedule put it.
        assert_eq!(starts(&mut p, 500_000, 1), vec![20_000]);
        assert!(!p.is_done(500_000));
    }

    #[test]
    fn starts_still_held_back_after_the_grace_are_given_up() {
        let mut p = Pacing::Open(Schedule::new(100.0, 0, SECOND, 300_000, 1));
        assert_eq!(starts(&mut p, 0, 0), vec![0]);
        assert_eq!(p.give_up(1_299_999), 0);
        assert_eq!(p.give_up(1_300_000), 99);
        assert!(p.is_done(1_300_000));
        assert_eq!(p.give_up(1_400_000), 0);
    }

    #[test]
    fn the_schedule_has_every_start_intended_before_the_end() {
        let s = Schedule::new(3.0, 0, SECOND, 0, 1);
        assert_eq!(s.total, 3);
        assert!(s.intended(s.total - 1) < SECOND);
        // Fewer than one start a run still makes one.
        assert_eq!(Schedule::new(0.5, 0, SECOND, 0, 1).total, 1);
    }

    #[test]
    fn the_fastest_schedule_over_the_longest_run_counts_every_start_exactly() {
        let year = super::super::time::micros(crate::config::ranges::MAX_SECS);
        let mut p = Pacing::Open(Schedule::new(MAX_RATE, 0, year, 0, 1));
        assert_eq!(starts(&mut p, 0, 0), vec![0]);
        assert_eq!(starts(&mut p, 1, 0), vec![1]);
        assert_eq!(p.wake_at(1, 0), Some(2));
        // Nothing else could start: every other start of the year is given up, one each.
        assert_eq!(p.give_up(year), year - 2);
        assert!(p.is_done(year));
    }

    #[test]
    fn closed_loop_keeps_its_connections_in_flight_until_the_end() {
        let mut p = Pacing::Closed {
            connections: 3,
            end: SECOND,
        };
        assert_eq!(starts(&mut p, 0, 0), vec![0, 0, 0]);
        assert_eq!(p.wake_at(10, 3), None);
        assert_eq!(starts(&mut p, 400, 2), vec![400]);
        assert_eq!(p.wake_at(500, 2), Some(500));
        assert!(!p.is_done(SECOND - 1));
        assert_eq!(starts(&mut p, SECOND, 0), Vec::<Micros>::new());
        assert!(p.is_done(SECOND));
        assert_eq!(p.give_up(10 * SECOND), 0);
    }
}
