//! The loop's life: serving, draining after a stop request (a signal or a `Shutdown` handle),
//! stopping; the signals that do not stop it (`SIGUSR1`'s counters, `SIGHUP`'s reload of the
//! access files, `SIGUSR2`); and the loop's own timers as they come due (the end of the grace
//! period, the retry of accepting, the watchdog, `--exit-idle`).

use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use log::{debug, info, trace, warn};
use mio::{Interest, Poll};
use signal_hook_mio::v1_0::Signals;

use super::bind::Socket;
use super::console::Console;
use super::counters::NO_METRICS;
use super::timers::LoopTimer;
use super::token::{Target, Tokens};
use super::Server;
use crate::clock::{after, Millis};

/// Where the loop is in its life; changed only by `Server::set_lifecycle`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    /// Accepting and serving.
    Serving,
    /// A stop was asked for: the listeners and UDP sockets are closed, and the connections
    /// still open have until the `DrainEnd` timer to finish.
    Draining,
    /// The loop ends after this pass.
    Stopping,
}

impl std::fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lifecycle::Serving => "serving",
            Lifecycle::Draining => "draining",
            Lifecycle::Stopping => "stopping",
        })
    }
}

/// Catches the signals the daemon acts on, as one more source in `poll`.
pub(crate) fn catch_signals(poll: &Poll, tokens: Tokens) -> io::Result<Signals> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
    // Each is caught, so none can end the daemon without its drain and summary: a closing
    // terminal (SIGHUP) or a stray `kill -USR2` must not stop a service.
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2])?;
    poll.registry().register(
        &mut signals,
        tokens.token(Target::Signals),
        Interest::READABLE,
    )?;
    Ok(signals)
}

/// When the daemon is to stop for lack of work (`--exit-idle`), seen at `now`: `exit_idle`
/// after now while it serves with nothing open, else never (`None`: the timer is disarmed).
/// The loop asks again whenever that may change: at start, when a connection arrives, when
/// the last one leaves, and when a datagram arrives (which restarts the wait).
fn idle_deadline(
    exit_idle: Duration,
    lifecycle: Lifecycle,
    open: usize,
    now: Millis,
) -> Option<Millis> {
    let idle = lifecycle == Lifecycle::Serving && open == 0;
    (idle && !exit_idle.is_zero()).then(|| after(now, exit_idle))
}

impl Server {
    /// Before the first wait: ready, and the timers that run from the start. A daemon that
    /// took sockets but cannot tell the old daemon it is ready (which gave up waiting, or
    /// died) does not serve: the old one serves on, or the sockets go with it.
    pub(super) fn start(&mut self) -> io::Result<()> {
        if let Some(takeover) = self.takeover.take() {
            let pid = takeover.pid();
            takeover.ready().map_err(|e| {
                io::Error::other(format!(
                    "handover: cannot tell the old daemon (pid {pid}) this one is ready: {}",
                    crate::os::sockets::reason(&e)
                ))
            })?;
        }
        self.notifier
            .ready(&format!("serving {} socket(s)", self.instances.len()));
        if self.notifier.watchdog_every.is_some() {
            self.loop_timers.arm(LoopTimer::Watchdog, self.clock.now());
        }
        self.rearm_exit_idle(self.clock.now());
        Ok(())
    }

    /// The one place the loop's lifecycle changes.
    pub(super) fn set_lifecycle(&mut self, to: Lifecycle, why: &str) {
        trace!("loop: {} -> {to}: {why}", self.lifecycle);
        self.lifecycle = to;
    }

    /// A `Shutdown` handle asked (once or more) since the last wake.
    pub(super) fn on_wake(&mut self, now: Millis) {
        let requests = self.shutdown.requests.load(Ordering::SeqCst);
        for _ in self.handled_requests..requests {
            self.request_stop("shutdown requested", now);
        }
        self.handled_requests = requests;
    }

    pub(super) fn on_signals(&mut self, now: Millis) {
        let received: Vec<i32> = match &mut self.signals {
            Some(signals) => signals.pending().collect(),
            None => Vec::new(),
        };
        for signal in received {
            self.on_signal(signal, now);
        }
    }

    fn on_signal(&mut self, signal: i32, now: Millis) {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
        match signal {
            SIGINT => self.request_stop("SIGINT", now),
            SIGTERM => self.request_stop("SIGTERM", now),
            SIGUSR1 => {
                info!(
                    "{}; connections open {}",
                    self.total(),
                    self.conns.counted()
                );
                let sizes = self.gate.sizes();
                debug!(
                    target: "oneloop::tables",
                    "tables: {} connection slots, {} deadlines armed, {} sources holding connections, {} sources in the connection rate table, {} in the UDP rate table",
                    self.conns.slots(),
                    self.conns.deadlines_armed(),
                    sizes.holding,
                    sizes.connection_rates,
                    sizes.datagram_rates
                );
            }
            SIGHUP => self.reload(),
            SIGUSR2 => debug!("SIGUSR2: ignored"),
            other => debug!("signal {other}: ignored"),
        }
    }

    /// `SIGHUP`: the access files read again. New connections and datagrams are judged by the
    /// new lists from the next event on; the connections held and the per-source tables are
    /// left alone. A file that cannot be used leaves every old entry in force.
    fn reload(&mut self) {
        if self.access_files.is_empty() {
            return info!("SIGHUP: no access file to read again (--allow-file, --deny-file)");
        }
        match self.access_files.load() {
            Ok(entries) => {
                self.gate.set_access(entries.list());
                self.reloads += 1;
                info!(
                    "SIGHUP: access files read again: {} entries in force",
                    entries.len()
                );
            }
            Err(why) => {
                self.reload_failures += 1;
                warn!("SIGHUP: {why}: the access lists in force are kept");
            }
        }
    }

    pub(super) fn request_stop(&mut self, why: &str, now: Millis) {
        if self.lifecycle != Lifecycle::Serving {
            info!("{why} again: stopping at once");
            return self.set_lifecycle(Lifecycle::Stopping, "a second stop request");
        }
        // The kernel completed the handshakes of the connections in the listen backlog:
        // closing a listener would reset them, so they are accepted (and served) first.
        self.accept_on_every_listener(now);
        // Closing the listeners refuses new connections; closing the UDP sockets ends
        // their service; no new daemon can take over.
        for i in 0..self.instances.len() {
            self.leave_poll(i);
        }
        self.close_handover_listener();
        self.loop_timers.disarm(LoopTimer::AcceptRetry);
        self.loop_timers.disarm(LoopTimer::ExitIdle);
        self.loop_timers
            .arm(LoopTimer::DrainEnd, after(now, self.config.shutdown_grace));
        let status = format!(
            "{why}: no longer accepting; {} connection(s) have {} s to finish",
            self.conns.open(),
            self.config.shutdown_grace.as_secs_f64()
        );
        info!("{status}");
        self.notifier.stopping(&status);
        self.set_lifecycle(Lifecycle::Draining, why);
    }

    /// Instance `i`'s socket leaves the poll, then its descriptor here closes. It leaves the
    /// poll first: the socket may be open in another process (an inetd's, the service
    /// manager's, or a new daemon's that took it over), and the poll watches the socket, not
    /// the descriptor, so closing the descriptor alone would leave it watched.
    pub(super) fn leave_poll(&mut self, i: usize) {
        let bound = &mut self.instances[i];
        let registry = self.poll.registry();
        let left = match &mut bound.socket {
            Socket::Listener(s) => registry.deregister(s),
            Socket::Udp(s) => registry.deregister(s),
            Socket::Closed => Ok(()),
        };
        if let Err(e) = left {
            debug!("{}: leaving the poll: {e}", bound.counted.instance);
        }
        bound.socket = Socket::Closed;
    }

    /// The grace period is over: every connection still open gets its last words and closes.
    fn end_grace(&mut self, now: Millis) {
        let console = self.console.as_ref().is_some_and(Console::is_open);
        let mut cx = self.shared.lend(console, &NO_METRICS, now);
        for (key, conn) in self.conns.iter_open_mut() {
            conn.on_shutdown(key, &mut cx);
        }
        self.conns.clear();
        self.set_lifecycle(Lifecycle::Stopping, "the grace period is over");
    }

    /// Stops the loop when every listener was retired (none can accept again), no UDP socket
    /// serves and no connection is open: nothing is left to serve.
    pub(super) fn stop_if_deserted(&mut self) {
        let deserted = self.lifecycle == Lifecycle::Serving
            && self.conns.is_empty()
            && self
                .instances
                .iter()
                .all(|b| matches!(b.socket, Socket::Closed));
        if deserted {
            log::error!(
                "nothing left to serve: every listener was retired and no connection is open"
            );
            self.deserted = true;
            self.set_lifecycle(Lifecycle::Stopping, "nothing is left to serve");
        }
    }

    /// Arms the `--exit-idle` timer while nothing is open, and disarms it otherwise.
    pub(super) fn rearm_exit_idle(&mut self, now: Millis) {
        let at = idle_deadline(self.config.exit_idle, self.lifecycle, self.conns.len(), now);
        self.loop_timers.set(LoopTimer::ExitIdle, at);
    }

    /// One of the loop's own timers came due at `now`.
    pub(super) fn on_loop_timer(&mut self, timer: LoopTimer, now: Millis) {
        match timer {
            LoopTimer::DrainEnd => self.end_grace(now),
            LoopTimer::AcceptRetry => self.accept_on_every_listener(now),
            LoopTimer::Watchdog => {
                self.notifier.watchdog();
                if let Some(every) = self.notifier.watchdog_every {
                    self.loop_timers.arm(LoopTimer::Watchdog, after(now, every));
                }
            }
            LoopTimer::Handover => self.successor_timed_out(now),
            LoopTimer::ExitIdle => {
                // A client that connected since the poll woke is served in full, not only
                // for the grace period.
                self.accept_on_every_listener(now);
                if self.conns.is_empty() {
                    let idle = self.config.exit_idle.as_secs_f64();
                    self.request_stop(&format!("nothing open for {idle} s (--exit-idle)"), now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idle_timer_comes_with_exit_idle_only_while_nothing_is_open() {
        let secs = Duration::from_secs(2);
        assert_eq!(idle_deadline(secs, Lifecycle::Serving, 0, 1000), Some(3000));
        // A connection held, or lingering, is work.
        assert_eq!(idle_deadline(secs, Lifecycle::Serving, 1, 1000), None);
        // Off: never armed.
        assert_eq!(
            idle_deadline(Duration::ZERO, Lifecycle::Serving, 0, 1000),
            None
        );
        // Stopping already: the grace period's timer governs.
        assert_eq!(idle_deadline(secs, Lifecycle::Draining, 0, 1000), None);
        assert_eq!(idle_deadline(secs, Lifecycle::Stopping, 0, 1000), None);
        // Whole milliseconds, and a fraction of a second is kept.
        let ms = Duration::from_millis(1500);
        assert_eq!(idle_deadline(ms, Lifecycle::Serving, 0, 0), Some(1500));
    }
}
