//! The loop every scenario runs in: one `mio::Poll`, one shared read buffer, one clock read
//! per wake-up, and the live progress line.
//!
//! ```text
//!   loop ─► after_batch(now): expire deadlines, drop finished connections, start new ones
//!     │     over? ─► return the elapsed time
//!     ├─► poll, timeout = the earliest of the workload's wake-up and the next progress tick
//!     └─► on_event for each event (sockets are edge-triggered: each handler works until
//!         WouldBlock)
//! ```
//! A workload (TCP `count`/`hold`, the UDP scenarios) owns its sockets and state machines;
//! the loop owns time and the poll.

use std::io::{self, Write};
use std::time::Duration;

use mio::event::Event;
use mio::{Events, Poll, Registry};

use super::report::Tally;
use super::time::{Micros, RunClock, SECOND};

/// What one wake-up lends a workload.
pub(super) struct Cx<'a> {
    pub registry: &'a Registry,
    pub now: Micros,
    /// Where every read lands (64 KiB: the largest datagram fits).
    pub buf: &'a mut [u8],
    pub tally: &'a mut Tally,
    /// Whether the progress line is on the terminal (a note must clear it first).
    live: bool,
}

impl Cx<'_> {
    /// Prints a line on stderr, on a line of its own even while the progress line shows.
    pub(super) fn note(&self, line: &str) {
        let clear = if self.live { "\r\x1b[K" } else { "" };
        eprintln!("{clear}{line}");
    }
}

/// A scenario as the loop drives it.
pub(super) trait Workload {
    /// Handles one readiness event.
    fn on_event(&mut self, event: &Event, cx: &mut Cx<'_>);
    /// The work between batches of events: deadlines, finished connections, new starts.
    fn after_batch(&mut self, cx: &mut Cx<'_>);
    /// When the loop must wake even without an event.
    fn wake_at(&self, now: Micros) -> Option<Micros>;
    /// Requests under way (for the progress line).
    fn in_flight(&self) -> usize;
    /// Whether the run is complete.
    fn is_over(&self, now: Micros) -> bool;
}

const READ_BUF: usize = 64 * 1024;
const EVENTS: usize = 1024;

/// Runs `work` to its end; returns how long the run took from `clock`'s start.
pub(super) fn drive(
    poll: &mut Poll,
    work: &mut impl Workload,
    tally: &mut Tally,
    clock: RunClock,
    live: bool,
) -> io::Result<Duration> {
    let mut events = Events::with_capacity(EVENTS);
    let mut buf = vec![0; READ_BUF];
    let mut progress = Progress::new(live);
    loop {
        let now = clock.now();
        let mut cx = Cx {
            registry: poll.registry(),
            now,
            buf: &mut buf,
            tally,
            live,
        };
        work.after_batch(&mut cx);
        if work.is_over(now) {
            progress.clear();
            return Ok(Duration::from_micros(clock.now()));
        }
        progress.tick(now, tally, work.in_flight());
        let wake = [work.wake_at(now), progress.next_at()]
            .into_iter()
            .flatten()
            .min();
        let timeout = wake.map(|at| Duration::from_micros(at.saturating_sub(now)));
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let mut cx = Cx {
            registry: poll.registry(),
            now: clock.now(),
            buf: &mut buf,
            tally,
            live,
        };
        for event in events.iter() {
            work.on_event(event, &mut cx);
        }
    }
}

/// The progress line: once a second on a terminal, rewritten in place.
struct Progress {
    /// When the next line is due (`None`: stderr is not a terminal).
    next: Option<Micros>,
    /// Completions at the last line, for the rate over the last second.
    last_completed: u64,
    shown: bool,
}

impl Progress {
    fn new(live: bool) -> Progress {
        Progress {
            next: live.then_some(SECOND),
            last_completed: 0,
            shown: false,
        }
    }

    fn next_at(&self) -> Option<Micros> {
        self.next
    }

    fn tick(&mut self, now: Micros, tally: &Tally, in_flight: usize) {
        let Some(next) = self.next.filter(|&next| now >= next) else {
            return;
        };
        let completed = tally.completed();
        eprint!(
            "\r{:>4} s  completed {completed}  errors {}  in flight {in_flight}  {}/s\x1b[K",
            now / SECOND,
            tally.errors(),
            completed - self.last_completed
        );
        let _ = io::stderr().flush();
        self.last_completed = completed;
        self.shown = true;
        self.next = Some(next.max(now - now % SECOND) + SECOND);
    }

    /// Removes the line before the report.
    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
        }
    }
}
