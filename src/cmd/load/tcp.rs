//! The TCP scenarios, `count` and `hold`: a slab of [`CountClient`]s, each with its socket,
//! the time its latency counts from, and its deadline.
//!
//! - `count`: connections are started by the [`Pacing`] (closed or open loop); each does one
//!   exchange and is replaced when it finishes.
//! - `hold`: N connections are opened, at most [`OPENING_AT_ONCE`] at a time, and kept at
//!   the prompt; once every one is welcomed (or failed) the run prints
//!   `holding N connections` on stderr, waits `--hold`, then sends every line at once and
//!   checks every reply. Its latencies are those of the final exchanges (line to EOF).
//!
//! Sockets are made with socket2 (non-blocking from the start, bound to a source address
//! with `--sources`), registered once for both directions, and never re-registered: the
//! client's state says what to do when either edge arrives. A connection that finishes
//! during a batch of events stays in the slab until the batch is over, so no later event of
//! the batch can reach a new connection that reused its key. Dropping the socket closes it,
//! which also takes it out of the poll.

use std::io::{self, Read};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::os::fd::AsRawFd;

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Token};
use slab::Slab;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::count::{CountClient, CountState, Exchange};
use super::engine::{Cx, Workload};
use super::pacing::Pacing;
use super::report::{Failure, Tally};
use super::time::{Expiry, Micros, NEVER};

/// The most `hold` connections connecting or waiting for their welcome at once: below 128, the
/// listen backlog of std's and tokio's listeners (oneloop's own is larger), so the backlog
/// of any server measured never overflows and no SYN has to be retried a second later.
const OPENING_AT_ONCE: usize = 100;

/// One connection.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    client: CountClient,
    /// When its latency counts from: its start, or its intended start on an open-loop
    /// schedule, or (`hold`) when its line was released.
    since: Micros,
    /// Its deadline (`NEVER` while held).
    due: Micros,
    /// The poll reported the server's EOF (data before it may still wait to be read).
    peer_fin: bool,
    /// Bytes (or an EOF, or an error) may wait to be read: the poll said so since the last
    /// read that came back short. Reading without it would only find `WouldBlock`.
    readable: bool,
}

/// Round robin over the source addresses `127.0.0.1 ..= 127.0.0.N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Sources {
    count: u8,
    next: u8,
}

impl Sources {
    /// `count` addresses, 1 to 254.
    pub(super) fn new(count: u8) -> Sources {
        Sources { count, next: 0 }
    }

    fn take(&mut self) -> Ipv4Addr {
        let ip = Ipv4Addr::new(127, 0, 0, 1 + self.next);
        self.next = (self.next + 1) % self.count;
        ip
    }
}

/// What drives the starts.
#[derive(Debug)]
pub(super) enum Mode {
    Count(Pacing),
    Hold(Hold),
}

/// The `hold` scenario's progress.
#[derive(Debug)]
pub(super) struct Hold {
    total: usize,
    started: usize,
    /// Connections connecting or reading their welcome.
    opening: usize,
    /// How long to hold.
    hold: Micros,
    phase: HoldPhase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HoldPhase {
    Opening,
    Holding { until: Micros },
    Completing,
}

impl Hold {
    /// Opens `total` connections, holds them for `hold`.
    pub(super) fn new(total: usize, hold: Micros) -> Hold {
        Hold {
            total,
            started: 0,
            opening: 0,
            hold,
            phase: HoldPhase::Opening,
        }
    }
}

/// The TCP scenarios' workload.
#[derive(Debug)]
pub(super) struct TcpLoad {
    target: SocketAddr,
    sources: Option<Sources>,
    exchange: Exchange,
    timeout: Micros,
    mode: Mode,
    conns: Slab<Conn>,
    expiry: Expiry,
    /// Keys finished during this batch, removed after it.
    finished: Vec<usize>,
}

impl TcpLoad {
    pub(super) fn new(
        target: SocketAddr,
        sources: Option<Sources>,
        exchange: Exchange,
        timeout: Micros,
        mode: Mode,
    ) -> TcpLoad {
        TcpLoad {
            target,
            sources,
            exchange,
            timeout,
            mode,
            conns: Slab::new(),
            expiry: Expiry::default(),
            finished: Vec::new(),
        }
    }

    fn holds(&self) -> bool {
        matches!(self.mode, Mode::Hold(_))
    }

    /// Starts a connection whose latency counts from `since`; returns whether it is under
    /// way. A socket that cannot even be made or connected is a failed request at once.
    fn start(&mut self, since: Micros, cx: &mut Cx<'_>) -> bool {
        match self.open(since, cx) {
            Ok(()) => true,
            Err(e) => {
                let failure = cx.tally.classify(&e);
                cx.tally.failure(failure);
                false
            }
        }
    }

    fn open(&mut self, since: Micros, cx: &mut Cx<'_>) -> io::Result<()> {
        let source = self.sources.as_mut().map(Sources::take);
        let mut stream = connect(self.target, source)?;
        let entry = self.conns.vacant_entry();
        cx.registry.register(
            &mut stream,
            Token(entry.key()),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let due = cx.now.saturating_add(self.timeout);
        self.expiry.push(due, entry.key());
        entry.insert(Conn {
            stream,
            client: CountClient::default(),
            since,
            due,
            peer_fin: false,
            readable: false,
        });
        Ok(())
    }

    /// Bookkeeping after a connection's client moved: the `hold` counters, and the outcome
    /// of a finished exchange. `was_opening` is whether it was opening before.
    fn settle(&mut self, key: usize, was_opening: bool, cx: &mut Cx<'_>) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Mode::Hold(hold) = &mut self.mode {
            if was_opening && !conn.client.is_opening() {
                hold.opening -= 1;
                conn.due = NEVER;
            }
        }
        match conn.client.state() {
            CountState::Done => cx.tally.success(cx.now.saturating_sub(conn.since)),
            CountState::Failed(failure) => cx.tally.failure(failure),
            _ => return,
        }
        self.finished.push(key);
    }

    /// Expires the deadlines due at `now`.
    fn expire(&mut self, cx: &mut Cx<'_>) {
        while let Some((due, key)) = self.expiry.pop_due(cx.now) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if conn.due != due || conn.client.is_finished() {
                continue;
            }
            let was_opening = conn.client.is_opening();
            conn.client.on_deadline();
            self.settle(key, was_opening, cx);
        }
    }

    /// The `hold` phases: open (a bounded number at a time), announce and hold, release
    /// every line.
    fn advance_hold(&mut self, cx: &mut Cx<'_>) {
        let Mode::Hold(hold) = &mut self.mode else {
            return;
        };
        match hold.phase {
            HoldPhase::Opening => {
                let room = OPENING_AT_ONCE
                    .saturating_sub(hold.opening)
                    .min(hold.total - hold.started);
                hold.started += room;
                let mut opened = 0;
                for _ in 0..room {
                    if self.start(cx.now, cx) {
                        opened += 1;
                    }
                }
                let Mode::Hold(hold) = &mut self.mode else {
                    return;
                };
                hold.opening += opened;
                if hold.started == hold.total && hold.opening == 0 {
                    hold.phase = HoldPhase::Holding {
                        until: cx.now.saturating_add(hold.hold),
                    };
                    let held = self.conns.len() - self.finished.len();
                    cx.note(&format!("holding {held} connections"));
                }
            }
            HoldPhase::Holding { until } if cx.now >= until => {
                hold.phase = HoldPhase::Completing;
                self.release_all(cx);
            }
            HoldPhase::Holding { .. } | HoldPhase::Completing => {}
        }
    }

    /// Sends every held connection's line, each with a fresh deadline.
    fn release_all(&mut self, cx: &mut Cx<'_>) {
        let due = cx.now.saturating_add(self.timeout);
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if conn.client.state() != CountState::Welcomed {
                continue;
            }
            conn.client.release();
            conn.since = cx.now;
            conn.due = due;
            self.expiry.push(due, key);
            pump(conn, cx, &self.exchange, true);
            self.settle(key, false, cx);
        }
    }
}

impl Workload for TcpLoad {
    fn on_event(&mut self, event: &Event, cx: &mut Cx<'_>) {
        let key = event.token().0;
        let holds = self.holds();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.client.is_finished() {
            return;
        }
        let was_opening = conn.client.is_opening();
        if conn.client.state() == CountState::Connecting {
            check_connected(conn, event, cx.tally);
        }
        if event.is_read_closed() {
            conn.peer_fin = true;
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            conn.readable = true;
        }
        pump(conn, cx, &self.exchange, holds);
        self.settle(key, was_opening, cx);
    }

    fn after_batch(&mut self, cx: &mut Cx<'_>) {
        self.expire(cx);
        self.advance_hold(cx);
        for key in self.finished.drain(..) {
            self.conns.remove(key);
        }
        let Mode::Count(pacing) = &mut self.mode else {
            return;
        };
        let given_up = pacing.give_up(cx.now);
        if given_up > 0 {
            cx.tally.failures(Failure::TimedOut, given_up);
        }
        // A start that fails at once keeps its slot until the next wake-up, so a target that
        // refuses every connection cannot keep this loop from polling.
        let mut failed_at_once = 0;
        loop {
            let Mode::Count(pacing) = &mut self.mode else {
                return;
            };
            let Some(since) = pacing.next_start(cx.now, self.conns.len() + failed_at_once) else {
                return;
            };
            if !self.start(since, cx) {
                failed_at_once += 1;
            }
        }
    }

    fn wake_at(&self, now: Micros) -> Option<Micros> {
        let starts = match &self.mode {
            Mode::Count(pacing) => pacing.wake_at(now, self.conns.len()),
            Mode::Hold(hold) => match hold.phase {
                HoldPhase::Opening
                    if hold.started < hold.total && hold.opening < OPENING_AT_ONCE =>
                {
                    Some(now)
                }
                HoldPhase::Holding { until } => Some(until),
                HoldPhase::Opening | HoldPhase::Completing => None,
            },
        };
        [starts, self.expiry.next()].into_iter().flatten().min()
    }

    fn in_flight(&self) -> usize {
        self.conns.len()
    }

    fn is_over(&self, now: Micros) -> bool {
        let starts_done = match &self.mode {
            Mode::Count(pacing) => pacing.is_done(now),
            Mode::Hold(hold) => hold.phase == HoldPhase::Completing,
        };
        starts_done && self.conns.is_empty()
    }
}

/// A non-blocking connect to `target`, from `source` (port chosen at connect time) when
/// given.
fn connect(target: SocketAddr, source: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    if let Some(ip) = source {
        // Without it every bound socket would hold an ephemeral port of its own, and a run
        // would stop at ~28,000 connections per source.
        crate::os::raw::bind_address_no_port(socket.as_raw_fd())?;
        socket.bind(&SocketAddr::from((ip, 0)).into())?;
    }
    match socket.connect(&target.into()) {
        Err(e) if e.raw_os_error() != Some(libc::EINPROGRESS) => return Err(e),
        _ => {}
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// The first event of a connecting socket: the handshake completed or failed. A plain
/// writable event means connected; anything else is asked of the socket (the pending error
/// says which; `NotConnected` from `peer_addr` means the event came early).
fn check_connected(conn: &mut Conn, event: &Event, tally: &mut Tally) {
    if event.is_writable() && !event.is_error() && !event.is_write_closed() {
        tally.reached();
        conn.client.on_connected();
        return;
    }
    let outcome = conn
        .stream
        .take_error()
        .and_then(|pending| pending.map_or(Ok(()), Err))
        .and_then(|()| conn.stream.peer_addr());
    match outcome {
        Ok(_) => {
            tally.reached();
            conn.client.on_connected();
        }
        Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
        Err(e) => fail(conn, &e, tally),
    }
}

/// Moves bytes between the socket and the client until the socket would block or the
/// exchange is over. `holds`: keep a welcomed client at the prompt (else its line goes at
/// once).
fn pump(conn: &mut Conn, cx: &mut Cx<'_>, exchange: &Exchange, holds: bool) {
    loop {
        match conn.client.state() {
            CountState::Connecting | CountState::Done | CountState::Failed(_) => return,
            CountState::Welcomed if !holds => conn.client.release(),
            // The half-close follows the line at once; MSG_MORE lets the FIN ride in the
            // line's segment.
            CountState::SendingLine => match SockRef::from(&conn.stream).send_with_flags(
                conn.client.unsent(exchange),
                libc::MSG_MORE | libc::MSG_NOSIGNAL,
            ) {
                Ok(0) => fail(conn, &io::ErrorKind::WriteZero.into(), cx.tally),
                Ok(n) => {
                    if conn.client.on_sent(n, exchange) {
                        if let Err(e) = conn.stream.shutdown(Shutdown::Write) {
                            fail(conn, &e, cx.tally);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => fail(conn, &e, cx.tally),
            },
            // Reading the welcome or the reply, or listening for trouble while held. The
            // poll is edge-triggered: after a short read, whatever comes next raises a new
            // readable event, so there is no read that would only find `WouldBlock`.
            _ if !conn.readable => return,
            _ => match conn.stream.read(cx.buf) {
                Ok(0) => conn.client.on_eof(exchange),
                Ok(n) => {
                    conn.readable = n == cx.buf.len();
                    conn.client.on_data(&cx.buf[..n], exchange);
                    // The poll reported the server's EOF before this read, and the read came
                    // back short: it took everything before that EOF.
                    if conn.peer_fin && n < cx.buf.len() && !conn.client.is_finished() {
                        conn.client.on_eof(exchange);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.readable = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => fail(conn, &e, cx.tally),
            },
        }
    }
}

/// The connection failed with `e`: its kind goes to the client, and so to the tally when the
/// connection settles.
fn fail(conn: &mut Conn, e: &io::Error, tally: &mut Tally) {
    conn.client.on_failure(tally.classify(e));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_go_round_robin() {
        let mut s = Sources::new(3);
        let ips: Vec<_> = (0..4).map(|_| s.take()).collect();
        assert_eq!(
            ips,
            [
                Ipv4Addr::new(127, 0, 0, 1),
                Ipv4Addr::new(127, 0, 0, 2),
                Ipv4Addr::new(127, 0, 0, 3),
                Ipv4Addr::new(127, 0, 0, 1)
            ]
        );
    }

    #[test]
    fn a_bound_source_keeps_its_port_for_connect() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap();
        let stream = connect(target, Some(Ipv4Addr::new(127, 0, 0, 2))).unwrap();
        let (_peer, from) = listener.accept().unwrap();
        assert_eq!(from.ip(), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(stream.local_addr().unwrap().ip(), from.ip());
    }
}
