//! The loop's clock: whole milliseconds since the loop started, read once a pass.
//!
//! Every layer that is handed the time (the connection's deadlines, the per-source rate
//! tables, the UDP drop log) takes it as a [`Millis`] value from here; none reads a clock of
//! its own, so the time is a value a test can choose.

use std::time::{Duration, Instant};

/// Milliseconds since the loop started (`u64`: it does not wrap in any lifetime).
pub(crate) type Millis = u64;

/// The deadline of something that has none.
pub(crate) const NEVER: Millis = Millis::MAX;

/// The loop's monotonic clock, in whole milliseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    start: Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> Millis {
        Millis::try_from(self.start.elapsed().as_millis()).unwrap_or(NEVER - 1)
    }
}

/// The time of one pass of the loop, read from the clock the first time something asks for
/// it: a pass that only moves datagrams (which have no deadlines) never reads the clock.
#[derive(Debug)]
pub(crate) struct PassTime {
    clock: Clock,
    read: Option<Millis>,
}

impl PassTime {
    pub(crate) fn new(clock: Clock) -> PassTime {
        PassTime { clock, read: None }
    }

    /// The pass's time: the same value every time it is asked for within the pass.
    pub(crate) fn get(&mut self) -> Millis {
        *self.read.get_or_insert_with(|| self.clock.now())
    }
}

/// `now + span`, in milliseconds, rounded up so a deadline is never early.
pub(crate) fn after(now: Millis, span: Duration) -> Millis {
    let ms = span.as_nanos().div_ceil(1_000_000);
    now.saturating_add(Millis::try_from(ms).unwrap_or(NEVER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_rounds_up_and_saturates() {
        assert_eq!(after(10, Duration::from_micros(1)), 11);
        assert_eq!(after(10, Duration::from_millis(5)), 15);
        assert_eq!(after(10, Duration::MAX), NEVER);
    }
}
