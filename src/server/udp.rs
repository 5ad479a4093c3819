//! UDP serving: each socket's datagrams taken in batches until `WouldBlock`, judged (the loop
//! guard of `proto::datagram`, the access lists, `--udp-rate`), answered in one `sendmmsg`,
//! and counted; the drops logged without letting a flood fill the log.
//!
//! Datagrams come and go in batches (`os::mmsg`): one system call receives up to 16, one
//! sends their answers (more only when the kernel refuses some of them).

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime};

use log::{debug, info, trace};

use super::bind::Socket;
use super::table::AgainList;
use super::Server;
use crate::clock::{after, Clock, Millis, NEVER};
use crate::config::Instance;
use crate::log::escape::Escaped;
use crate::os::mmsg::{Datagrams, BATCH};
use crate::policy::gate::Gate;
use crate::proto::datagram::{reply, Guard};
use crate::proto::time_value;
use crate::proto::{Epoch, Service};

/// How many datagrams one `serve` call answered and dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) answered: u64,
    pub(crate) dropped: u64,
    /// From a source `--allow`/`--deny` does not serve (not counted as dropped).
    pub(crate) denied: u64,
    /// Over `--udp-rate` (not counted as dropped).
    pub(crate) limited: u64,
}

/// The drop lines at `info`: the first drop from each source is logged there (the table of
/// sources is bounded: past `LIMIT` it forgets them all and starts again), the rest at
/// `debug`. The `info` lines are bounded as well, to `BUDGET` a window of `WINDOW` from the
/// first of them: past that, first drops are logged at `debug` and counted, and when the
/// window ends one `info` line says how many there were. So a flood from rotating sources
/// costs a handful of lines a minute, and the daemon wakes up for that line only when
/// something was held back.
#[derive(Debug, Default)]
pub(crate) struct DropLog {
    seen: HashSet<SocketAddr>,
    window: Option<Window>,
}

/// The current window of `info` drop lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    ends: Millis,
    logged: u32,
    held_back: u64,
}

impl DropLog {
    const LIMIT: usize = 1024;
    const BUDGET: u32 = 10;
    const WINDOW: Duration = Duration::from_secs(60);

    /// Logs a drop from `src`. `now` is asked for only when the drop may be logged at `info`
    /// (its source is new, and the window holds nothing back yet), so neither a storm from
    /// sources already logged nor one from rotating sources reads the clock for each drop.
    fn log(
        &mut self,
        src: SocketAddr,
        why: &str,
        instance: &Instance,
        now: impl FnOnce() -> Millis,
    ) {
        if self.seen.len() >= Self::LIMIT {
            self.seen.clear();
        }
        if self.seen.insert(src) && self.admit(now) {
            info!(
                "{instance}: dropped datagram from {src}: {why} (further drops from it at debug)"
            );
            return;
        }
        debug!("{instance}: dropped datagram from {src}: {why}");
    }

    /// Counts the first drop from a new source into the window (opening one if none is
    /// open): whether it may be logged at `info`.
    fn admit(&mut self, now: impl FnOnce() -> Millis) -> bool {
        if let Some(window) = self.window.as_mut().filter(|w| w.held_back > 0) {
            // Open until the loop flushes it at its end (`due`): the time is not needed.
            window.held_back += 1;
            return false;
        }
        let now = now();
        // One that has ended held nothing back: it closes without a line.
        self.window = self.window.filter(|w| w.ends > now);
        let window = self.window.get_or_insert(Window {
            ends: after(now, Self::WINDOW),
            logged: 0,
            held_back: 0,
        });
        if window.logged < Self::BUDGET {
            window.logged += 1;
            true
        } else {
            window.held_back += 1;
            false
        }
    }

    /// When the loop must call [`DropLog::flush`]: the end of a window in which lines were
    /// held back; `None` otherwise, so an idle daemon has no timer for it.
    pub(crate) fn due(&self) -> Option<Millis> {
        self.window.filter(|w| w.held_back > 0).map(|w| w.ends)
    }

    /// Closes the window if it has ended by `now`, with one `info` line for what it held back.
    /// The loop calls it when [`DropLog::due`] comes.
    pub(crate) fn flush(&mut self, now: Millis) {
        if let Some(held_back) = self.close_window(now) {
            let (secs, budget) = (Self::WINDOW.as_secs(), Self::BUDGET);
            info!(
                "dropped datagrams from {held_back} more new source(s) in the last {secs} s: not \
                 logged one by one (at most {budget} such lines in {secs} s; all at debug)"
            );
        }
    }

    /// Closes the window whatever its time, as the daemon stops.
    pub(crate) fn finish(&mut self) {
        self.flush(NEVER);
    }

    /// Closes the window if it has ended by `now`: how many lines it held back, if any.
    fn close_window(&mut self, now: Millis) -> Option<u64> {
        let window = self.window.filter(|w| w.ends <= now)?;
        self.window = None;
        Some(window.held_back).filter(|&n| n > 0)
    }
}

/// How many batches one call may take before it lets the loop serve others.
const TURN: usize = 8;

/// What the loop keeps for its UDP services.
#[derive(Debug, Default)]
pub(crate) struct Udp {
    /// The ports of this daemon's UDP services (the loop guard drops datagrams from them).
    own_ports: Vec<u16>,
    /// The interfaces' broadcast addresses (read when the first datagram arrives).
    broadcasts: Option<Vec<std::net::Ipv4Addr>>,
    /// Slots for batches of datagrams (made when the first datagram arrives).
    batch: Option<Box<Datagrams>>,
    pub(crate) drops: DropLog,
    /// Sockets, by instance, that used their turn and want another before the loop sleeps.
    pub(crate) again: AgainList,
}

impl Udp {
    pub(crate) fn new(own_ports: Vec<u16>) -> Udp {
        Udp {
            own_ports,
            ..Udp::default()
        }
    }

    /// Reads the interfaces' broadcast addresses now rather than when the first datagram
    /// arrives (a sandbox installed after this forbids the netlink socket it takes).
    pub(crate) fn read_interfaces_now(&mut self) {
        if !self.own_ports.is_empty() {
            self.broadcasts
                .get_or_insert_with(crate::os::sockets::interface_broadcasts);
        }
    }

    /// Receives on one UDP service's socket until it would block (or its turn is over),
    /// answering what deserves an answer, a batch at a time. Returns the tally and whether
    /// the socket is drained (when not, the loop must call again before it sleeps).
    pub(crate) fn serve(
        &mut self,
        socket: &mio::net::UdpSocket,
        instance: &Instance,
        epoch: Epoch,
        gate: &mut Gate,
        clock: Clock,
    ) -> (Tally, bool) {
        let guard = Guard {
            own_ports: &self.own_ports,
            broadcasts: self
                .broadcasts
                .get_or_insert_with(crate::os::sockets::interface_broadcasts),
        };
        let batch = self.batch.get_or_insert_with(Box::default);
        serve(
            socket,
            instance,
            batch,
            epoch,
            guard,
            gate,
            &mut self.drops,
            clock,
        )
    }
}

/// [`Udp::serve`], with its parts borrowed apart.
#[allow(clippy::too_many_arguments)]
fn serve(
    socket: &mio::net::UdpSocket,
    instance: &Instance,
    batch: &mut Datagrams,
    epoch: Epoch,
    guard: Guard<'_>,
    gate: &mut Gate,
    drops: &mut DropLog,
    clock: Clock,
) -> (Tally, bool) {
    let fd = socket.as_raw_fd();
    let mut tally = Tally::default();
    for _ in 0..TURN {
        let n = match batch.receive(fd) {
            Ok(n) => {
                trace!("{instance}: recvmmsg -> {n} datagram(s)");
                n
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                trace!("{instance}: recvmmsg -> WouldBlock: the queue is empty, back to the poll");
                return (tally, true);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // An error queued on the socket (such as an ICMP report) is consumed by
                // reading it; the next event brings the rest.
                debug!("{instance}: receive failed: {e}");
                return (tally, true);
            }
        };
        let time = match instance.service {
            Service::Time => time_value(SystemTime::now(), epoch).to_be_bytes(),
            _ => [0; 4],
        };
        // The clock, for the rate limit only, read once a batch.
        let now = gate.limits_replies().then(|| clock.now());
        let answered = batch.answer(fd, n, |datagram, src| {
            let Some(src) = src else {
                tally.dropped += 1;
                return None;
            };
            trace!(
                "{instance}: {} bytes from {src}: {}",
                datagram.len(),
                Escaped(datagram)
            );
            let ip = src.ip().to_canonical();
            if !gate.permits(ip) {
                trace!("{instance}: {src} is not served (--allow/--deny): dropped");
                tally.denied += 1;
                return None;
            }
            if let Some(why) = guard.reflection_risk(src) {
                drops.log(src, why, instance, || clock.now());
                tally.dropped += 1;
                return None;
            }
            let Some(payload) = reply(instance.service, datagram, &time) else {
                debug!("{instance}: empty datagram from {src}: no reply");
                tally.dropped += 1;
                return None;
            };
            if let Some(now) = now {
                if !gate.admit_reply(ip, now) {
                    trace!("{instance}: {src} is over --udp-rate: no reply");
                    tally.limited += 1;
                    return None;
                }
            }
            Some(payload)
        });
        let lost = answered.replies - answered.sent;
        if let Some(e) = &answered.error {
            // Refused destinations, or a full send buffer: UDP may lose a reply.
            debug!(
                "{instance}: {lost} of {} replies not sent (the last: {})",
                answered.replies,
                crate::os::sockets::reason(e)
            );
        }
        if answered.replies > 0 {
            trace!(
                "{instance}: sendmmsg: {} of {} replies sent",
                answered.sent,
                answered.replies
            );
        }
        tally.answered += answered.sent as u64;
        tally.dropped += lost as u64;
        if n < BATCH {
            // A short batch took everything that was waiting; a datagram that comes later
            // raises a new event.
            trace!("{instance}: a short batch: it took all that was queued (no read needed to see WouldBlock)");
            return (tally, true);
        }
    }
    (tally, false)
}

impl Server {
    /// Serves instance `i`'s UDP socket for one turn, counting what became of its datagrams.
    pub(super) fn serve_datagrams(&mut self, i: usize) {
        let bound = &mut self.instances[i];
        let Socket::Udp(socket) = &bound.socket else {
            return;
        };
        let instance = bound.counted.instance;
        let (tally, drained) = self.udp.serve(
            socket,
            &instance,
            self.config.time_epoch,
            &mut self.gate,
            self.clock,
        );
        let c = &mut bound.counted.counters;
        c.answered += tally.answered;
        c.dropped += tally.dropped;
        c.datagrams_denied += tally.denied;
        c.datagrams_limited += tally.limited;
        if !drained {
            self.udp.again.push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn from(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn instance() -> Instance {
        Instance {
            transport: crate::proto::Transport::Udp,
            service: Service::Echo,
            addr: from("127.0.0.1:7777"),
        }
    }

    /// A time for `log` that must not be read.
    fn unread() -> Millis {
        panic!("the clock was read for a source already logged")
    }

    #[test]
    fn drop_lines_are_bounded_per_window_and_what_was_held_back_is_told() {
        let mut log = DropLog::default();
        let at = instance();
        assert_eq!(log.due(), None);
        let src = |n: u32| SocketAddr::from((Ipv4Addr::from(0x7f00_0000 + n), 7));
        for n in 0..DropLog::BUDGET {
            log.log(src(n), "why", &at, || 1_000);
            // A source already logged never reads the clock.
            log.log(src(n), "why", &at, unread);
        }
        // Within the budget nothing is held back: no timer.
        assert_eq!(log.due(), None);
        assert_eq!(log.window.map(|w| w.logged), Some(DropLog::BUDGET));
        for n in 100..130 {
            log.log(src(n), "why", &at, || 5_000);
        }
        let ends = 1_000 + 60_000;
        assert_eq!(log.due(), Some(ends));
        assert_eq!(log.window.map(|w| w.held_back), Some(30));
        // Not before the window ends.
        assert_eq!(log.close_window(ends - 1), None);
        assert_eq!(log.close_window(ends), Some(30));
        assert_eq!((log.window, log.due()), (None, None));
        // The next new source opens a window of its own, and is logged.
        log.log(src(500), "why", &at, || ends + 10);
        assert_eq!(
            log.window.map(|w| (w.ends, w.logged)),
            Some((ends + 10 + 60_000, 1))
        );
    }

    #[test]
    fn a_window_that_held_nothing_back_ends_quietly() {
        let mut log = DropLog::default();
        log.log(from("127.0.0.9:7"), "why", &instance(), || 0);
        assert_eq!(log.due(), None);
        // Past its end, the next new source opens a window of its own.
        log.log(from("127.0.0.10:7"), "why", &instance(), || 70_000);
        assert_eq!(log.window.map(|w| (w.ends, w.logged)), Some((130_000, 1)));
        assert_eq!(log.close_window(130_000), None);
        assert_eq!(log.window, None);
    }

    #[test]
    fn a_window_that_holds_lines_back_waits_for_its_flush_without_reading_the_clock() {
        let mut log = DropLog::default();
        let at = instance();
        for n in 0..=DropLog::BUDGET {
            log.log(
                SocketAddr::from(([127, 1, 0, n as u8], 7)),
                "why",
                &at,
                || 0,
            );
        }
        assert_eq!(log.due(), Some(60_000));
        // New sources past the budget are counted without the time, even once the window's
        // end has passed: the loop's flush at `due` closes it.
        for n in 0..50 {
            log.log(SocketAddr::from(([127, 2, 0, n], 7)), "why", &at, unread);
        }
        assert_eq!(log.window.map(|w| (w.logged, w.held_back)), Some((10, 51)));
        log.flush(60_000);
        assert_eq!((log.window, log.due()), (None, None));
        // The next one opens a new window.
        log.log(from("127.3.0.1:7"), "why", &at, || 60_500);
        assert_eq!(log.window.map(|w| (w.logged, w.held_back)), Some((1, 0)));
    }

    #[test]
    fn the_source_table_stays_bounded() {
        let mut log = DropLog::default();
        for n in 0..5_000u32 {
            let src = SocketAddr::from((Ipv4Addr::from(0x7f00_0000 + n), 7));
            log.log(src, "why", &instance(), || 0);
            assert!(log.seen.len() <= DropLog::LIMIT);
        }
        assert_eq!(log.window.map(|w| w.logged), Some(DropLog::BUDGET));
        assert_eq!(log.window.map(|w| w.held_back), Some(5_000 - 10));
    }
}
