//! The event loop: one thread, one `mio::Poll`, every socket of every service.
//!
//! ```text
//!   Poll ── events ──► dispatch by token (token.rs)
//!     │                  ├─ listener   → accept until WouldBlock, admit (accept.rs)
//!     │                  ├─ udp socket → recvmmsg batches until WouldBlock → sendmmsg (udp.rs)
//!     │                  ├─ conn       → Conn::pump: read ⇄ session ⇄ write (conn/)
//!     │                  ├─ signals    → drain (a second one: stop now); SIGUSR1: counters
//!     │                  ├─ waker      → the same, from a Shutdown handle (lifecycle.rs)
//!     │                  ├─ stdin      → the operator's lines (console.rs)
//!     │                  └─ handover   → a new daemon takes the sockets over; drain (handover.rs)
//!     ├── again-list: sockets that used their turn go again before the loop sleeps
//!     ├── deadlines due: connections' and the loop's own (timers.rs)
//!     ├── closed connections leave the table (table.rs), and their sockets close
//!     └── timeout = the nearest due time; none at all when nothing is armed
//! ```
//! This file is the loop and nothing else; each step lives in the file named beside it.
//! [`Server`] is split the way its borrows split: the connection table, the bound instances
//! with their counters, the gate that admits, the buffers and settings lent to a connection
//! ([`Shared`]), and the loop's own timers, so that a step borrows only the parts it uses.
//!
//! Readiness is edge-triggered: the poll reports a change once, so a handler must take all
//! that a readiness allows before the loop sleeps, or nothing will report it again. Handlers
//! repeat their call until `WouldBlock`, except in three places, each safe:
//! - a read that comes back short after the poll reported the client's FIN: everything before
//!   the FIN was taken, so another read could only return 0 (`conn::got`);
//! - a UDP batch that comes back short: `recvmmsg` took everything queued, and a datagram that
//!   arrives later raises a new event (`udp.rs`);
//! - a connection that used its turn (32 reads or writes) or a UDP socket that used its own
//!   (8 batches): it goes on the again-list and is served again before the loop sleeps (the
//!   poll's timeout is then 0), so a fast client cannot starve the others and nothing waits
//!   for an event that will not come.
//!
//! A connection is registered for READABLE, and for WRITABLE too only while output waits
//! (`Conn::update_interest`): the interest changes, at the cost of an `epoll_ctl`, only when
//! a client stops reading and when it catches up.

mod accept;
mod access_files;
mod bind;
mod conn;
mod console;
pub mod counters;
mod handover;
mod lifecycle;
mod step;
mod table;
mod takeover;
mod timers;
mod token;
mod trace;
mod udp;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use log::info;
use mio::{Events, Poll, Waker};

use bind::Bound;
pub use bind::{default_backlog, BindError};
use conn::{Cx, Shared, State, Status};
use console::Console;
use counters::{Counters, Snapshot};
use lifecycle::Lifecycle;
use step::Stepper;
use table::Table;
use timers::{Due, LoopTimers};
use token::{Target, Tokens};
use udp::Udp;

use crate::clock::{Clock, Millis, PassTime};
use crate::config::{Config, Instance};
use crate::os::systemd::Notifier;
use crate::policy::gate::Gate;
use crate::proto::Transport;

/// A long batch of events, and the closing of the connections it finished, stop for an accept
/// pass every this many events or closes. Connections that arrive meanwhile wait in the listen
/// backlog; a batch of hundreds of ready connections takes milliseconds, long enough for a
/// busy client to fill a small backlog, and each connection the kernel then drops waits a
/// second for its SYN to be sent again.
const ACCEPT_EVERY: usize = 32;

/// The counters of the summary line logged at exit (and on `SIGUSR1`), summed over the
/// service instances; `stats` reports them per instance.
pub type Summary = Counters;

/// Why [`Server::run`] ended with an error although the loop itself worked: every listener
/// was retired (each named in an `error` line: it could never accept again) and nothing else
/// was left to serve, no UDP socket and no connection. It holds the counters, which were
/// logged as at any exit, and comes inside the `io::Error` that `run` returns
/// (`error.get_ref()`, then `downcast_ref::<NothingLeft>()`).
#[derive(Debug)]
pub struct NothingLeft(pub Summary);

impl std::fmt::Display for NothingLeft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("nothing left to serve: every listener was retired")
    }
}

impl std::error::Error for NothingLeft {}

/// Stops a running server from another thread: the first call drains like SIGTERM, a second
/// one stops at once.
#[derive(Clone, Debug)]
pub struct Shutdown {
    waker: Arc<Waker>,
    requests: Arc<AtomicUsize>,
}

impl Shutdown {
    pub fn shutdown(&self) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        // A failed wake leaves the request counted; there is nothing better to do with it.
        let _ = self.waker.wake();
    }
}

/// The daemon: bound sockets and the loop that serves them.
pub struct Server {
    poll: Poll,
    config: Config,
    tokens: Tokens,
    /// The bound instances in configuration order, each with its socket and counters.
    instances: Vec<Bound>,
    conns: Table,
    gate: Gate,
    shared: Shared,
    udp: Udp,
    loop_timers: LoopTimers,
    clock: Clock,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    shutdown: Shutdown,
    /// Shutdown requests from handles already acted on.
    handled_requests: usize,
    lifecycle: Lifecycle,
    /// Whether the lack of descriptors was reported and no accept has succeeded since (so a
    /// long shortage is one warning, not one a second).
    starved: bool,
    /// How often accepting paused for lack of descriptors (for `stats`).
    accept_pauses: u64,
    /// `SIGHUP` reloads of the access files that took effect, and those that failed (for
    /// `stats`).
    reloads: u64,
    reload_failures: u64,
    /// The access files, read again on `SIGHUP`.
    access_files: access_files::AccessFiles,
    /// When the daemon started (for `stats`).
    start_time: SystemTime,
    notifier: Notifier,
    /// Standard input as the operator's console (`--console`).
    console: Option<Console>,
    /// Standard input was reported readable, or used its turn: the console reads after the
    /// batch of events (so a connection whose client reset in the same batch is gone by
    /// then), and again before the loop sleeps while it uses its turns.
    console_again: bool,
    /// The loop is stopping because every listener was retired and nothing is left to serve.
    deserted: bool,
    /// Standard input as the learner's step key (`--step`).
    stepper: Option<Stepper>,
    /// The handover socket, served for the next upgrade (`--handover`).
    handover: Option<handover::Handover>,
    /// The sockets taken from the daemon this one replaces, until it is told this one is
    /// ready (when the loop starts).
    takeover: Option<takeover::Takeover>,
}

impl Server {
    /// The instances as bound, in configuration order, with their real addresses.
    pub fn instances(&self) -> Vec<Instance> {
        self.instances.iter().map(|b| b.counted.instance).collect()
    }

    /// The real address of the first instance on `transport`.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.instances()
            .into_iter()
            .find(|i| i.transport == transport)
            .map(|i| i.addr)
    }

    /// Reads now what serving would read later from the host (the interfaces' broadcast
    /// addresses, when there is a UDP service): for a sandbox installed before `run`.
    /// The descriptors of the access files' directories (`--allow-file`, `--deny-file`): the
    /// sandbox lets a reload read files beneath these, and nothing else.
    pub fn access_dirs(&self) -> Vec<std::os::fd::RawFd> {
        self.access_files.dir_fds()
    }

    pub fn read_host_now(&mut self) {
        self.udp.read_interfaces_now();
    }

    /// A handle that stops `run` from another thread.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves until stopped by a signal or a `Shutdown` handle; returns the counters, which
    /// it has also logged.
    pub fn run(mut self) -> io::Result<Summary> {
        let mut events = Events::with_capacity(1024);
        self.start()?;
        while self.lifecycle != Lifecycle::Stopping {
            // The nearest due time, once a pass: it sets the poll's timeout, and after the
            // events it says whether anything is due (a pass with nothing armed, such as one
            // that only moves datagrams, never reads the clock).
            let nearest = self.next_due();
            if self.stepping() {
                self.step_before_wait(nearest);
            }
            // After a pause, a deadline that passed meanwhile makes the timeout 0.
            let timeout = self.poll_timeout(nearest);
            self.narrate_sleep(nearest, timeout);
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    log::trace!(
                        "poll: interrupted by a signal (EINTR): the signal pipe has it, poll again"
                    );
                    continue;
                }
                Err(e) => return Err(e),
            }
            self.narrate_wake(&events);
            if self.stepping() {
                self.step_after_wake(&events);
            }
            let mut pass = PassTime::new(self.clock);
            for (i, event) in events.iter().enumerate() {
                if i > 0 && i % ACCEPT_EVERY == 0 {
                    self.accept_on_every_listener(pass.get());
                }
                self.dispatch(event, &mut pass);
            }
            for key in self.conns.again.take() {
                self.pump(key, pass.get());
            }
            for i in self.udp.again.take() {
                self.serve_datagrams(i);
            }
            if std::mem::take(&mut self.console_again) {
                self.on_console(pass.get());
            }
            if let Some((at, _)) = nearest {
                let now = pass.get();
                if at <= now {
                    self.expire(now);
                }
            }
            self.remove_closed();
            if self.lifecycle == Lifecycle::Draining && self.conns.is_empty() {
                self.set_lifecycle(Lifecycle::Stopping, "every connection has finished");
            }
        }
        self.udp.drops.finish();
        let summary = self.total();
        info!("{summary}");
        if self.deserted {
            return Err(io::Error::other(NothingLeft(summary)));
        }
        Ok(summary)
    }

    /// The counters of every instance added up.
    fn total(&self) -> Counters {
        let mut total = Counters::default();
        for b in &self.instances {
            total += b.counted.counters;
        }
        total
    }

    fn dispatch(&mut self, event: &mio::event::Event, pass: &mut PassTime) {
        match self.tokens.target(event.token()) {
            Target::Waker => self.on_wake(pass.get()),
            Target::Signals => self.on_signals(pass.get()),
            Target::Console => match &mut self.stepper {
                Some(stepper) => stepper.on_input(),
                None => self.console_again = true,
            },
            Target::Instance(i) => match self.instances[i].counted.instance.transport {
                Transport::Tcp => self.accept_until_would_block(i, pass.get()),
                Transport::Udp => {
                    self.serve_datagrams(i);
                    if !self.config.exit_idle.is_zero() {
                        // A datagram is work: the idle time starts again.
                        self.rearm_exit_idle(pass.get());
                    }
                }
            },
            Target::Handover => self.on_handover_listener(pass.get()),
            Target::Successor => self.on_successor(pass.get()),
            Target::Conn(key) => {
                if event.is_read_closed() {
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.on_peer_fin();
                    }
                }
                // A connection waiting for the operator reads nothing, so only the poll can
                // tell that its client reset or vanished (its FIN alone does not end the wait).
                if (event.is_error() || event.is_write_closed())
                    && self
                        .conns
                        .get(key)
                        .is_some_and(|c| c.state() == State::Waiting)
                {
                    return self
                        .close(key, "its client went away while it waited for the operator");
                }
                self.pump(key, pass.get());
            }
        }
    }

    fn pump(&mut self, key: usize, now: Millis) {
        if self.conns.open_mut(key).is_some() {
            self.drive(key, now, |conn, cx| conn.pump(key, cx));
        }
    }

    /// Runs `step` on the connection at `key` with the shared buffers and settings lent to
    /// it, then acts on what it left the connection as.
    fn drive(
        &mut self,
        key: usize,
        now: Millis,
        step: impl FnOnce(&mut conn::Conn, &mut Cx) -> Status,
    ) {
        let metrics = Snapshot {
            instances: &self.instances,
            open: self.conns.counted() as u64,
            accept_pauses: self.accept_pauses,
            reloads: self.reloads,
            reload_failures: self.reload_failures,
            start_time: self.start_time,
        };
        let console = self.console.as_ref().is_some_and(Console::is_open);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut cx = self.shared.lend(console, &metrics, now);
        let status = step(conn, &mut cx);
        self.after_pump(key, status, now);
    }

    /// Acts on what a pump (or a deadline) left the connection as: closes it, or brings its
    /// interest and deadline up to date.
    fn after_pump(&mut self, key: usize, status: Status, now: Millis) {
        match status {
            Status::Open => {}
            Status::Yielded => self.conns.again.push(key),
            Status::Awaits(number) => {
                if let Some(console) = &mut self.console {
                    console.wait(number, key);
                }
            }
            Status::Closed(reason) => {
                if self.conns.get(key).map(conn::Conn::state) == Some(State::Header) {
                    // Closed before its PROXY header was read: a bad header, or none.
                    let i = self.conns.instance(key);
                    self.instances[i].counted.counters.proxy_header_failures += 1;
                }
                return self.close(key, reason);
            }
            Status::Proxied(header) => return self.on_header(key, header, now),
        }
        let token = self.tokens.token(Target::Conn(key));
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Err(e) = conn.update_interest(key, self.poll.registry(), token) {
            return self.close(key, conn::closed_by(&e));
        }
        self.conns.sync_deadline(key);
    }

    /// Closes connection `key` (its socket goes after the batch), giving back the place it
    /// held for its source, and its place in the console's queue.
    fn close(&mut self, key: usize, reason: &str) {
        if let (Some(console), Some(conn)) = (&mut self.console, self.conns.get(key)) {
            if let (State::Waiting, Some(number)) = (conn.state(), conn.console_number()) {
                console.forget(number);
            }
        }
        if let Some(closed) = self.conns.close(key, reason) {
            if let Some(source) = closed.holds {
                self.gate.release(source);
            }
        }
    }

    fn remove_closed(&mut self) {
        if !self.conns.has_closed() {
            return;
        }
        let now = self.clock.now();
        let mut removed = 0;
        while self.conns.remove_one_closed() {
            removed += 1;
            if removed % ACCEPT_EVERY == 0 {
                self.accept_on_every_listener(now);
            }
        }
        if self.conns.give_back_memory() {
            crate::os::trim_heap();
        }
        self.resume_accepting(now);
        self.rearm_exit_idle(now);
        self.stop_if_deserted();
    }

    /// Acts on everything due at `now`: connections' deadlines, the loop's timers, the drop
    /// log's summary, the rate tables' clean-up.
    fn expire(&mut self, now: Millis) {
        // Each deadline moves its connection on (`Conn::on_deadline`), so this ends: a
        // connection is in here at most once per state it can leave by a deadline.
        while let Some(key) = self.conns.pop_due(now) {
            log::trace!("conn {key}: its deadline passed");
            let mut timed_out = false;
            self.drive(key, now, |conn, cx| {
                let expired = conn.on_deadline(key, cx);
                timed_out = expired.timed_out;
                expired.status
            });
            if timed_out {
                let i = self.conns.instance(key);
                self.instances[i].counted.counters.timed_out += 1;
            }
        }
        while let Some(timer) = self.loop_timers.pop_due(now) {
            log::trace!("loop: {} has come", Due::Loop(timer));
            self.on_loop_timer(timer, now);
        }
        self.udp.drops.flush(now);
        self.gate.expire(now);
    }

    /// The nearest time at which the loop has something to do without an event, and what it
    /// is for.
    fn next_due(&self) -> Option<(Millis, Due)> {
        Due::earliest([
            self.conns
                .next_deadline()
                .map(|(at, key)| (at, Due::Conn(key))),
            self.loop_timers.next().map(|(at, t)| (at, Due::Loop(t))),
            self.udp.drops.due().map(|at| (at, Due::DropLog)),
            self.gate.due().map(|at| (at, Due::RateTables)),
        ])
    }

    /// How long the loop may sleep: not at all while some socket used its turn, else until
    /// the nearest due time, or for ever.
    fn poll_timeout(&self, nearest: Option<(Millis, Due)>) -> Option<Duration> {
        if self.wants_again() {
            return Some(Duration::ZERO);
        }
        let (at, _) = nearest?;
        Some(Duration::from_millis(at.saturating_sub(self.clock.now())))
    }

    /// Whether some socket, or standard input, used its turn and goes again before the loop
    /// sleeps.
    fn wants_again(&self) -> bool {
        !self.conns.again.is_empty() || !self.udp.again.is_empty() || self.console_again
    }
}
