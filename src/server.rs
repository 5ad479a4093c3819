//! The event loop: one thread, one `mio::Poll`, every socket of every service.
//!
//! ```text
//!   Poll ── events ──► dispatch by Token
//!     │                  ├─ listener   → accept until WouldBlock → slab.insert(Conn)
//!     │                  ├─ udp socket → recvmmsg batches until WouldBlock → sendmmsg replies
//!     │                  ├─ conn       → Conn::pump: read ⇄ session ⇄ write
//!     │                  ├─ signals    → drain (a second one: stop now); SIGUSR1: counters
//!     │                  └─ waker      → the same, from a Shutdown handle
//!     ├── again-list: sockets (and the console) that used their turn go again before the loop sleeps
//!     ├── deadlines due: connections' (`Timers`), the loop's own (`LoopTimers`)
//!     ├── closed connections leave the slab (and their sockets close)
//!     └── timeout = the nearest due time; none at all when nothing is armed
//! ```
//! Tokens: 0 is the waker, 1 the signals, 2 the console's standard input (`--console`), then
//! one per listener and UDP socket, then one per
//! connection (`first_conn() + slab key`). A connection that closes during a batch of events
//! stays in the slab until the batch is done, so a later event of that batch cannot reach a
//! new connection that reused its key.
//!
//! Readiness is edge-triggered: the poll reports a change once, so a handler must take all
//! that a readiness allows before the loop sleeps, or nothing will report it again. Handlers
//! repeat their call until `WouldBlock`, except in four places, each safe:
//! - a read that comes back short after the poll reported the client's FIN: everything before
//!   the FIN was taken, so another read could only return 0 (`conn::got`);
//! - a UDP batch that comes back short: `recvmmsg` took everything queued, and a datagram that
//!   arrives later raises a new event (`udp::serve`);
//! - a connection that used its turn (32 reads or writes), a UDP socket that used its own
//!   (8 batches), or the console (32 lines or reads): it goes on the again-list and is served
//!   again before the loop sleeps (the poll's timeout is then 0), so a fast client (or a
//!   flooded standard input) cannot starve the others and nothing waits for an event that
//!   will not come;
//! - an accept that fails: out of descriptors or memory, or 32 times in a row for single
//!   connections, accepting pauses until a connection closes or the `AcceptRetry` timer;
//!   a listener that can never accept again is retired (`Server::retire`).
//!
//! A connection is registered for READABLE, and for WRITABLE too only while output waits
//! (`Conn::update_interest`): the interest changes, at the cost of an `epoll_ctl`, only when
//! a client stops reading and when it catches up.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use log::{debug, error, info, trace, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::access::{AccessList, CidrSet};
use crate::config::{Config, Instance, Service, Transport};
use crate::conn::{Conn, Cx, State, Status};
use crate::console::{Console, Typed};
use crate::deadline::{after, Clock, Kind, Millis, PassTime, Timers};
use crate::fairness::{HeldTable, RateTable, SourceKey};
use crate::mmsg::Datagrams;
use crate::proxy::Header;
use crate::session::{
    display_peer, Ack, Counters, InstanceCounters, Session, Settings, Snapshot, Step,
};
use crate::sockets;
use crate::systemd::{Activated, Notifier};
use crate::udp::{self, DropLog};

const WAKER: Token = Token(0);
const SIGNALS: Token = Token(1);
const CONSOLE: Token = Token(2);
const FIRST_SOURCE: usize = 3;

/// The shared read buffer of TCP connections: as large as the largest `--max-output`, which
/// is the most one read may take.
const READ_BUF: usize = crate::config::ranges::MAX_OUTPUT.max;

/// How long accepting stays paused after running out of file descriptors, unless a
/// connection closes first.
const ACCEPT_RETRY: Duration = Duration::from_secs(1);

/// A long batch of events, and the closing of the connections it finished, stop for an accept
/// pass every this many events or closes. Connections that arrive meanwhile wait in the listen
/// backlog (128 by default); a batch of hundreds of ready connections takes milliseconds, long
/// enough for a busy client to fill the backlog, and each connection the kernel then drops
/// waits a second for its SYN to be sent again.
const ACCEPT_EVERY: usize = 32;

/// Why `Server::bind` failed.
#[derive(Debug)]
pub enum BindError {
    /// The configuration is not usable.
    Config(crate::config::ConfigError),
    /// An address could not be bound (the text names it and the reason).
    Bind(String, io::Error),
    /// The poll, waker or signal handlers could not be set up.
    Setup(io::Error),
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::Config(e) => write!(f, "{e}"),
            BindError::Bind(what, e) => write!(f, "cannot bind {what}: {}", sockets::reason(e)),
            BindError::Setup(e) => write!(f, "cannot start the event loop: {}", sockets::reason(e)),
        }
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BindError::Config(e) => Some(e),
            BindError::Bind(_, e) | BindError::Setup(e) => Some(e),
        }
    }
}

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

/// The socket of one service instance (index `i` has token `FIRST_SOURCE + i`).
enum Source {
    Listener(TcpListener),
    Udp(mio::net::UdpSocket),
    /// Closed when the drain began, or retired (it could never accept again).
    Closed,
}

/// The daemon: bound sockets and the loop that serves them.
pub struct Server {
    poll: Poll,
    config: Config,
    /// The service instances as bound (real addresses), in configuration order, each with
    /// its counters; index `i` is the socket `sources[i]`.
    instances: Vec<InstanceCounters>,
    sources: Vec<Source>,
    udp_ports: Vec<u16>,
    /// The interfaces' broadcast addresses (read when the first datagram arrives).
    broadcasts: Option<Vec<std::net::Ipv4Addr>>,
    drops: DropLog,
    conns: Slab<Conn>,
    /// Connections that count toward `--max-connections`.
    held: usize,
    /// Busy refusals lingering now (at most `--max-refusals`).
    refusing: usize,
    /// After the slab last tried to give memory back, it tries again only once no more than
    /// this many connections are open (half as many as then), or after it grew: a slot that
    /// stays in use high in the slab cannot make every close pay for a failed attempt.
    shrink_below: usize,
    /// Keys closed during the current batch, removed after it (each is marked `closed`).
    closed: Vec<usize>,
    /// Connections that used their turn and want another before the loop sleeps.
    again: Vec<usize>,
    /// UDP sources likewise.
    udp_again: Vec<usize>,
    /// Slots for batches of datagrams (made when the first datagram arrives).
    datagrams: Option<Box<Datagrams>>,
    timers: Timers,
    clock: Clock,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    shutdown: Shutdown,
    /// Shutdown requests from handles already acted on.
    handled_requests: usize,
    lifecycle: Lifecycle,
    loop_timers: LoopTimers,
    /// Whether the lack of descriptors was reported and no accept has succeeded since (so a
    /// long shortage is one warning, not one a second).
    starved: bool,
    /// How often accepting paused for lack of descriptors (for `stats`).
    accept_pauses: u64,
    /// Listeners closed because they can never accept again; when every source is one of
    /// them and no connection is left, the loop ends with [`NothingLeft`].
    retired: usize,
    /// When the daemon started (for `stats`).
    start_time: SystemTime,
    read_buf: Vec<u8>,
    out: Vec<u8>,
    /// The instance of each slab key's connection (a side table, so a connection costs two
    /// bytes for it, and only while its slot exists).
    instance_of: Vec<u16>,
    /// Who may connect (`--allow`, `--deny`); `None`: everyone.
    access: Option<AccessList>,
    /// The proxies whose connections begin with a PROXY header (`--proxy-from`).
    proxies: Option<CidrSet>,
    /// The proxy's address of each connection still waiting for its header, by slab key.
    proxied: HashMap<usize, SocketAddr>,
    /// The per-source limits of TCP connections.
    per_source: PerSource,
    /// Replies a second per UDP source (`--udp-rate`).
    udp_rates: Option<RateTable>,
    notifier: Notifier,
    /// Standard input as the operator's console (`--console`).
    console: Option<Console>,
    /// Standard input was reported readable, or used its turn: the console reads after the
    /// batch of events (so a connection whose client reset in the same batch is gone by
    /// then), and again before the loop sleeps while it uses its turns.
    console_again: bool,
}

/// The per-source limits of TCP connections, each `None` when its flag is off (and then costs
/// nothing).
#[derive(Debug, Default)]
struct PerSource {
    /// Connections held per source (`--max-per-source`).
    held: Option<HeldTable>,
    /// The source each counted connection holds a place for, by slab key (only with `held`).
    holders: HashMap<usize, SourceKey>,
    /// New connections a second per source (`--max-rate`).
    rates: Option<RateTable>,
}

/// What a new TCP connection gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admission {
    Serve,
    /// Its source is not served (`--allow`, `--deny`): closed with no message.
    Denied,
    /// Over `--max-per-source` (its limit) or `--max-rate` (`None`): a message, then the close.
    Limited(Option<usize>),
    /// Over `--max-connections`: the busy message, then the close.
    Busy,
}

/// Where the loop is in its life; changed only by `Server::set_lifecycle`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lifecycle {
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

/// The loop's own timers (the connections' deadlines are in `Timers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LoopTimer {
    /// The grace period is over: every connection still open closes.
    DrainEnd,
    /// Accepting resumes after a lack of descriptors.
    AcceptRetry,
    /// `WATCHDOG=1` is due (only when the service manager asked for it).
    Watchdog,
    /// Nothing has been open for `--exit-idle`: the daemon stops.
    ExitIdle,
}

/// When each loop timer is due; `None` while it is not armed.
#[derive(Debug, Default)]
struct LoopTimers {
    drain_end: Option<Millis>,
    accept_retry: Option<Millis>,
    watchdog: Option<Millis>,
    exit_idle: Option<Millis>,
}

impl LoopTimers {
    fn slot(&mut self, timer: LoopTimer) -> &mut Option<Millis> {
        match timer {
            LoopTimer::DrainEnd => &mut self.drain_end,
            LoopTimer::AcceptRetry => &mut self.accept_retry,
            LoopTimer::Watchdog => &mut self.watchdog,
            LoopTimer::ExitIdle => &mut self.exit_idle,
        }
    }

    fn arm(&mut self, timer: LoopTimer, at: Millis) {
        *self.slot(timer) = Some(at);
    }

    /// Disarms `timer`; returns whether it was armed.
    fn disarm(&mut self, timer: LoopTimer) -> bool {
        self.slot(timer).take().is_some()
    }

    fn is_armed(&self, timer: LoopTimer) -> bool {
        match timer {
            LoopTimer::DrainEnd => self.drain_end.is_some(),
            LoopTimer::AcceptRetry => self.accept_retry.is_some(),
            LoopTimer::Watchdog => self.watchdog.is_some(),
            LoopTimer::ExitIdle => self.exit_idle.is_some(),
        }
    }

    /// The earliest armed timer. Pairwise compares, not a loop over an array: the loop asks
    /// every pass, and this stays a handful of compares.
    fn next(&self) -> Option<(Millis, LoopTimer)> {
        let drain = self.drain_end.map(|at| (at, LoopTimer::DrainEnd));
        let accept = self.accept_retry.map(|at| (at, LoopTimer::AcceptRetry));
        let watchdog = self.watchdog.map(|at| (at, LoopTimer::Watchdog));
        let idle = self.exit_idle.map(|at| (at, LoopTimer::ExitIdle));
        earlier(earlier(drain, accept), earlier(watchdog, idle))
    }

    /// Takes the earliest timer if it is due at `now`.
    fn pop_due(&mut self, now: Millis) -> Option<LoopTimer> {
        let (at, timer) = self.next()?;
        (at <= now).then(|| {
            self.disarm(timer);
            timer
        })
    }
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

/// The earlier of two optional due times (the first on a tie).
fn earlier<T>(a: Option<(Millis, T)>, b: Option<(Millis, T)>) -> Option<(Millis, T)> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.0 < x.0 { y } else { x }),
        (x, y) => x.or(y),
    }
}

/// What the loop's nearest due time is for (the poll's timeout says so in the trace).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Due {
    Conn(usize),
    Loop(LoopTimer),
    /// The line for drops the UDP drop log held back.
    DropLog,
    /// Forgetting the rate tables' sources that have not been seen for a while.
    RateTables,
}

impl std::fmt::Display for Due {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Due::Conn(key) => write!(f, "conn {key}'s deadline"),
            Due::Loop(LoopTimer::DrainEnd) => f.write_str("the end of the grace period"),
            Due::Loop(LoopTimer::AcceptRetry) => f.write_str("the time to try accepting again"),
            Due::Loop(LoopTimer::Watchdog) => f.write_str("the next watchdog ping"),
            Due::Loop(LoopTimer::ExitIdle) => f.write_str("the end of the idle time (--exit-idle)"),
            Due::DropLog => f.write_str("the drop log's summary line"),
            Due::RateTables => f.write_str("the rate tables' clean-up"),
        }
    }
}

impl Server {
    /// Sets up signal handling, binds every instance and logs `listening on ...` for each,
    /// with the real port when port 0 was asked for.
    pub fn bind(config: Config) -> Result<Server, BindError> {
        Server::bind_with(config, Vec::new())
    }

    /// As [`Server::bind`], and serves the sockets passed by socket activation as well.
    pub fn bind_with(config: Config, activated: Vec<Activated>) -> Result<Server, BindError> {
        config.validate().map_err(BindError::Config)?;
        if config.instances.is_empty() && activated.is_empty() {
            return Err(BindError::Config(crate::config::ConfigError::NoService));
        }
        match sockets::raise_fd_limit() {
            Ok(limit) => debug!("open-file limit: {limit}"),
            Err(e) => warn!("cannot raise the open-file limit: {}", sockets::reason(&e)),
        }
        let poll = Poll::new().map_err(BindError::Setup)?;
        let waker = Waker::new(poll.registry(), WAKER).map_err(BindError::Setup)?;
        let signals = if config.handle_signals {
            use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
            // Each is caught, so none can end the daemon without its drain and summary: a
            // closing terminal (SIGHUP) or a stray `kill -USR2` must not stop a service.
            let mut signals =
                signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2])
                    .map_err(BindError::Setup)?;
            poll.registry()
                .register(&mut signals, SIGNALS, Interest::READABLE)
                .map_err(BindError::Setup)?;
            Some(signals)
        } else {
            None
        };

        // The configured instances' sockets, then the passed ones.
        let mut opened = Vec::with_capacity(config.instances.len() + activated.len());
        for asked in &config.instances {
            let cannot = |e| BindError::Bind(format!("{} {}", asked.transport, asked.addr), e);
            let source = match asked.transport {
                Transport::Tcp => Source::Listener(
                    sockets::tcp_listener(asked.addr, &config.sockets).map_err(cannot)?,
                ),
                Transport::Udp => {
                    Source::Udp(sockets::udp_socket(asked.addr, &config.sockets).map_err(cannot)?)
                }
            };
            opened.push((asked.transport, asked.service, source, None));
        }
        for a in activated {
            let source = match a.transport {
                Transport::Tcp => Source::Listener(TcpListener::from_std(a.socket.into())),
                Transport::Udp => Source::Udp(mio::net::UdpSocket::from_std(a.socket.into())),
            };
            opened.push((a.transport, a.service, source, Some(a.by)));
        }
        let mut instances = Vec::with_capacity(opened.len());
        let mut sources = Vec::with_capacity(opened.len());
        for (i, (transport, service, mut source, origin)) in opened.into_iter().enumerate() {
            let token = Token(FIRST_SOURCE + i);
            let registry = poll.registry();
            let addr = match &mut source {
                Source::Listener(socket) => {
                    registry
                        .register(socket, token, Interest::READABLE)
                        .map_err(BindError::Setup)?;
                    socket.local_addr()
                }
                Source::Udp(socket) => {
                    registry
                        .register(socket, token, Interest::READABLE)
                        .map_err(BindError::Setup)?;
                    socket.local_addr()
                }
                Source::Closed => Err(io::ErrorKind::NotConnected.into()),
            }
            .map_err(BindError::Setup)?;
            let instance = Instance {
                transport,
                service,
                addr,
            };
            match origin {
                Some(by) => info!("listening on {instance}, passed by {by}"),
                None => info!("listening on {instance}"),
            }
            instances.push(instance);
            sources.push(source);
        }
        if instances.len() > usize::from(u16::MAX) {
            let many = crate::config::ConfigError::TooManyInstances(instances.len());
            return Err(BindError::Config(many));
        }
        let udp_ports = instances
            .iter()
            .filter(|i| i.transport == Transport::Udp)
            .map(|i| i.addr.port())
            .collect();
        let console = config
            .console
            .then(|| Console::open(poll.registry(), CONSOLE));
        Ok(Server {
            poll,
            instances: instances
                .into_iter()
                .map(|instance| InstanceCounters {
                    instance,
                    counters: Counters::default(),
                })
                .collect(),
            sources,
            udp_ports,
            broadcasts: None,
            drops: DropLog::default(),
            conns: Slab::new(),
            held: 0,
            refusing: 0,
            shrink_below: usize::MAX,
            closed: Vec::new(),
            again: Vec::new(),
            udp_again: Vec::new(),
            datagrams: None,
            timers: Timers::default(),
            clock: Clock::new(),
            signals,
            shutdown: Shutdown {
                waker: Arc::new(waker),
                requests: Arc::new(AtomicUsize::new(0)),
            },
            handled_requests: 0,
            lifecycle: Lifecycle::Serving,
            loop_timers: LoopTimers::default(),
            starved: false,
            accept_pauses: 0,
            retired: 0,
            start_time: SystemTime::now(),
            read_buf: vec![0; READ_BUF],
            out: Vec::with_capacity(READ_BUF + crate::config::MAX_ACK_REPLY + 64),
            instance_of: Vec::new(),
            access: AccessList::new(&config.allow, &config.deny),
            proxies: (!config.proxy_from.is_empty()).then(|| CidrSet::new(&config.proxy_from)),
            proxied: HashMap::new(),
            per_source: PerSource {
                held: HeldTable::new(config.max_per_source),
                holders: HashMap::new(),
                rates: RateTable::new(config.max_rate),
            },
            udp_rates: RateTable::new(config.udp_rate),
            notifier: Notifier::from_env(),
            console,
            console_again: false,
            config,
        })
    }

    /// The instances as bound, in configuration order, with their real addresses.
    pub fn instances(&self) -> Vec<Instance> {
        self.instances.iter().map(|i| i.instance).collect()
    }

    /// The real address of the first instance on `transport`.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.instances
            .iter()
            .find(|i| i.instance.transport == transport)
            .map(|i| i.instance.addr)
    }

    /// A handle that stops `run` from another thread.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves until stopped by a signal or a `Shutdown` handle; returns the counters, which
    /// it has also logged.
    pub fn run(mut self) -> io::Result<Summary> {
        let mut events = Events::with_capacity(1024);
        self.notifier
            .ready(&format!("serving {} socket(s)", self.instances.len()));
        if self.notifier.watchdog_every.is_some() {
            self.loop_timers.arm(LoopTimer::Watchdog, self.clock.now());
        }
        self.rearm_exit_idle(self.clock.now());
        while self.lifecycle != Lifecycle::Stopping {
            // The nearest due time, once a pass: it sets the poll's timeout, and after the
            // events it says whether anything is due (a pass with nothing armed, such as one
            // that only moves datagrams, never reads the clock).
            let nearest = self.next_due();
            let timeout = self.poll_timeout(nearest);
            self.narrate_sleep(nearest, timeout);
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    trace!(
                        "poll: interrupted by a signal (EINTR): the signal pipe has it, poll again"
                    );
                    continue;
                }
                Err(e) => return Err(e),
            }
            self.narrate_wake(&events);
            let mut pass = PassTime::new(self.clock);
            for (i, event) in events.iter().enumerate() {
                if i > 0 && i % ACCEPT_EVERY == 0 {
                    self.accept_on_every_listener(pass.get());
                }
                self.dispatch(event, &mut pass);
            }
            for key in std::mem::take(&mut self.again) {
                self.pump(key, pass.get());
            }
            for source in std::mem::take(&mut self.udp_again) {
                self.serve_datagrams(source);
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
            if self.nothing_left() && self.lifecycle == Lifecycle::Serving {
                error!(
                    "nothing left to serve: every listener was retired and no connection is open"
                );
                self.set_lifecycle(Lifecycle::Stopping, "nothing is left to serve");
            }
        }
        self.drops.finish();
        let summary = self.total();
        info!("{summary}");
        if self.nothing_left() {
            return Err(io::Error::other(NothingLeft(summary)));
        }
        Ok(summary)
    }

    /// Whether every source was retired (a UDP socket never is) and no connection is open.
    fn nothing_left(&self) -> bool {
        self.retired == self.sources.len() && self.conns.is_empty()
    }

    /// The counters of every instance added up.
    fn total(&self) -> Counters {
        let mut total = Counters::default();
        for i in &self.instances {
            total += i.counters;
        }
        total
    }

    /// The one place the loop's lifecycle changes.
    fn set_lifecycle(&mut self, to: Lifecycle, why: &str) {
        trace!("loop: {} -> {to}: {why}", self.lifecycle);
        self.lifecycle = to;
    }

    fn dispatch(&mut self, event: &mio::event::Event, pass: &mut PassTime) {
        match event.token() {
            WAKER => {
                let requests = self.shutdown.requests.load(Ordering::SeqCst);
                for _ in self.handled_requests..requests {
                    self.request_stop("shutdown requested", pass.get());
                }
                self.handled_requests = requests;
            }
            SIGNALS => {
                let received: Vec<i32> = match &mut self.signals {
                    Some(signals) => signals.pending().collect(),
                    None => Vec::new(),
                };
                for signal in received {
                    self.on_signal(signal, pass.get());
                }
            }
            CONSOLE => self.console_again = true,
            Token(t) if t < self.first_conn() => {
                let source = t - FIRST_SOURCE;
                match self.sources.get(source) {
                    Some(Source::Listener(_)) => self.accept_until_would_block(source, pass.get()),
                    Some(Source::Udp(_)) => {
                        self.serve_datagrams(source);
                        if !self.config.exit_idle.is_zero() {
                            // A datagram is work: the idle time starts again.
                            self.rearm_exit_idle(pass.get());
                        }
                    }
                    _ => {}
                }
            }
            Token(t) => {
                let key = t - self.first_conn();
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

    fn serve_datagrams(&mut self, source: usize) {
        let Some(Source::Udp(socket)) = self.sources.get(source) else {
            return;
        };
        let batch = self.datagrams.get_or_insert_with(Box::default);
        let policy = udp::Policy {
            guard: udp::Guard {
                own_ports: &self.udp_ports,
                broadcasts: self
                    .broadcasts
                    .get_or_insert_with(sockets::interface_broadcasts),
            },
            access: self.access.as_ref(),
            rates: self.udp_rates.as_mut(),
        };
        let (tally, drained) = udp::serve(
            socket,
            &self.instances[source].instance,
            batch,
            self.config.time_epoch,
            policy,
            &mut self.drops,
            self.clock,
        );
        let c = &mut self.instances[source].counters;
        c.answered += tally.answered;
        c.dropped += tally.dropped;
        c.datagrams_denied += tally.denied;
        c.datagrams_limited += tally.limited;
        if !drained {
            self.udp_again.push(source);
        }
    }

    /// The token of the connection with slab key 0.
    fn first_conn(&self) -> usize {
        FIRST_SOURCE + self.instances.len()
    }

    fn accept_until_would_block(&mut self, source: usize, now: Millis) {
        if self.loop_timers.is_armed(LoopTimer::AcceptRetry) {
            return;
        }
        // Failures of single connections in a row. Each is skipped, but not without end: one
        // that takes nothing from the backlog (a security module's refusal) would come back
        // at once, for ever.
        let mut failed = 0;
        loop {
            let Some(Source::Listener(listener)) = self.sources.get(source) else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    failed = 0;
                    if std::mem::take(&mut self.starved) {
                        info!("accepting again");
                    }
                    self.admit(stream, peer, source, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    trace!("accept -> WouldBlock: the backlog is empty, back to the poll");
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if out_of_descriptors(&e) => {
                    self.accept_pauses += 1;
                    return self.pause_accepting(source, &e, now);
                }
                Err(e) if never_accepts_again(&e) => return self.retire(source, &e),
                // The connection died in the backlog, or was refused: skip it.
                Err(e) => {
                    debug!(
                        "{}: accept failed: {}",
                        self.instances[source].instance,
                        sockets::reason(&e)
                    );
                    failed += 1;
                    if failed == ACCEPT_EVERY {
                        return self.pause_accepting(source, &e, now);
                    }
                }
            }
        }
    }

    /// Stops accepting for `ACCEPT_RETRY`, or until a connection closes, after `e` on
    /// listener `source`: accepting again at once would fail the same way.
    fn pause_accepting(&mut self, source: usize, e: &io::Error, now: Millis) {
        let instance = self.instances[source].instance;
        let reason = sockets::reason(e);
        if std::mem::replace(&mut self.starved, true) {
            debug!("{instance}: still cannot accept: {reason}");
        } else {
            warn!("{instance}: cannot accept: {reason}; pausing accepts until a connection closes");
        }
        self.loop_timers
            .arm(LoopTimer::AcceptRetry, after(now, ACCEPT_RETRY));
    }

    /// Closes listener `source`, which can never accept again (`e` says why): it leaves the
    /// poll first, as another process (an inetd, the service manager) may hold the same
    /// socket, and closing this descriptor alone would leave it there.
    fn retire(&mut self, source: usize, e: &io::Error) {
        let instance = self.instances[source].instance;
        let closed = std::mem::replace(&mut self.sources[source], Source::Closed);
        if let Source::Listener(mut listener) = closed {
            if let Err(e) = self.poll.registry().deregister(&mut listener) {
                debug!("{instance}: leaving the poll: {}", sockets::reason(&e));
            }
        }
        self.retired += 1;
        error!(
            "{instance}: cannot accept: {}; the listener can never accept again and is closed",
            sockets::reason(e)
        );
    }

    /// Accepts again on every listener after a pause (a descriptor was freed, or the retry
    /// time came). The backlog may hold connections no new event will announce.
    fn resume_accepting(&mut self, now: Millis) {
        if self.loop_timers.disarm(LoopTimer::AcceptRetry) {
            trace!("trying to accept again");
            self.accept_on_every_listener(now);
        }
    }

    fn accept_on_every_listener(&mut self, now: Millis) {
        for source in 0..self.sources.len() {
            if matches!(self.sources[source], Source::Listener(_)) {
                self.accept_until_would_block(source, now);
            }
        }
    }

    /// What a connection from `ip` gets: served, or turned away (denied, over a per-source
    /// limit, or `busy`). `exempt` spares it the per-source limits (a listed proxy's own
    /// connection, a health check). One to be served holds its place in the per-source table
    /// from here on.
    fn admission(&mut self, ip: IpAddr, now: Millis, exempt: bool, busy: bool) -> Admission {
        if self.access.as_ref().is_some_and(|a| !a.permits(ip)) {
            return Admission::Denied;
        }
        let key = SourceKey::of(ip);
        if let (Some(rates), false) = (&mut self.per_source.rates, exempt) {
            if !rates.admit(key, now) {
                return Admission::Limited(None);
            }
        }
        if busy {
            return Admission::Busy;
        }
        match (&mut self.per_source.held, exempt) {
            (Some(held), false) => match held.try_hold(key) {
                true => Admission::Serve,
                false => Admission::Limited(Some(held.limit())),
            },
            _ => Admission::Serve,
        }
    }

    /// Whether a connection from `ip` must begin with a PROXY header (`--proxy-from`,
    /// `--proxy-protocol`).
    fn expects_header(&self, ip: IpAddr) -> bool {
        self.config.proxy_protocol || self.proxies.as_ref().is_some_and(|p| p.contains(ip))
    }

    fn admit(&mut self, stream: mio::net::TcpStream, peer: SocketAddr, source: usize, now: Millis) {
        let instance = self.instances[source].instance;
        let peer = display_peer(peer);
        let proxy = self.expects_header(peer.ip());
        let busy = self.held >= self.config.max_connections;
        // A listed proxy is judged by `--allow`/`--deny` now, and its client when the header
        // names it; the per-source limits are the client's, not the proxy's.
        let admission = self.admission(peer.ip(), now, proxy, busy);
        if !self.count_admission(source, peer, admission) {
            return;
        }
        if self.conns.len() == self.conns.capacity() {
            // The slab grows: a later fall in connections may give memory back again.
            self.shrink_below = usize::MAX;
        }
        // The key the connection will have: nothing else enters the slab until it does.
        let key = self.conns.vacant_key();
        trace!(
            "accept -> conn {key} from {peer} (fd {}) on {instance}",
            std::os::fd::AsRawFd::as_raw_fd(&stream)
        );
        let (session, opened) = if proxy && admission == Admission::Serve {
            (Session::Unopened(None), Step::NeedMore)
        } else {
            self.open_session(key, instance, peer, admission)
        };
        let mut cx = cx(
            &self.config,
            self.console.as_ref(),
            Snapshot::default(),
            &mut self.read_buf,
            &mut self.out,
            now,
        );
        let opened = match session {
            Session::Unopened(_) => Ok(Conn::awaiting_header(key, stream, &mut cx)),
            session => Conn::open(key, stream, session, opened, &mut cx),
        }
        .and_then(|mut conn| {
            let token = Token(FIRST_SOURCE + self.instances.len() + key);
            conn.register(self.poll.registry(), token)?;
            Ok(conn)
        });
        let conn = match opened {
            Ok(conn) => conn,
            Err(e) => {
                debug!("{peer}: gone at once: {}", sockets::reason(&e));
                if admission == Admission::Serve && !proxy {
                    if let Some(held) = &mut self.per_source.held {
                        held.release(SourceKey::of(peer.ip()));
                    }
                }
                return;
            }
        };
        trace!("conn {key}: registered with the poll, edge-triggered: it reports each change of readiness once");
        if admission == Admission::Serve {
            self.held += 1;
            if proxy {
                self.proxied.insert(key, peer);
                debug!("conn {key}: from the proxy {peer} on {instance}: its PROXY header first");
            } else {
                self.serve(source, key, peer);
                debug!("conn {key}: accepted from {peer} on {instance}");
            }
        } else {
            self.refusing += 1;
            debug!(
                "conn {key}: turned away {peer} ({admission:?}): {} connections held",
                self.held
            );
        }
        if key >= self.instance_of.len() {
            self.instance_of.resize(key + 1, 0);
        }
        // Instances are numbered by u16: `Server::bind` refuses more.
        self.instance_of[key] = source as u16;
        let answered = conn.state() == State::Answered;
        let inserted = self.conns.insert(conn);
        debug_assert_eq!(inserted, key);
        self.rearm_exit_idle(now);
        if answered {
            // Everything was said at open (`time`, or a refusal): go on to the graceful close.
            self.pump(key, now);
        } else {
            // The poll reports input that is already there when the socket is added.
            self.after_pump(key, Status::Open, now);
        }
    }

    /// Counts what `admission` did to a connection from `peer` on instance `source`; returns
    /// whether it goes on (a denied one, and a refusal past `--max-refusals`, end here).
    fn count_admission(&mut self, source: usize, peer: SocketAddr, admission: Admission) -> bool {
        let instance = self.instances[source].instance;
        let counters = &mut self.instances[source].counters;
        match admission {
            Admission::Serve => return true,
            Admission::Denied => {
                // A denied host learns nothing: the close is all it gets.
                counters.denied += 1;
                debug!("{peer}: denied on {instance}: closed with no message");
                return false;
            }
            Admission::Limited(_) => counters.limited += 1,
            Admission::Busy => counters.refused += 1,
        }
        if self.refusing >= self.config.max_refusals {
            // Lingering refusals hold descriptors too: past their cap, a refusal is a close.
            debug!(
                "{peer}: turned away silently ({admission:?}): {} connections held and {} refusals lingering",
                self.held, self.refusing
            );
            return false;
        }
        true
    }

    /// Counts connection `key` from `peer` as served, holding its place for its source.
    fn serve(&mut self, source: usize, key: usize, peer: SocketAddr) {
        self.instances[source].counters.served += 1;
        if self.per_source.held.is_some() {
            self.per_source
                .holders
                .insert(key, SourceKey::of(peer.ip()));
        }
    }

    /// The session for a connection of `instance` from `peer`, after `admission`, with its
    /// first words in `self.out`.
    fn open_session(
        &mut self,
        key: usize,
        instance: Instance,
        peer: SocketAddr,
        admission: Admission,
    ) -> (Session, Step) {
        match admission {
            Admission::Busy => Session::busy(self.config.max_connections, &mut self.out),
            Admission::Limited(held) => Session::limited(held, &mut self.out),
            Admission::Serve | Admission::Denied => match &mut self.console {
                Some(console) if instance.service == Service::Ack && console.is_open() => {
                    let number = console.next_number();
                    trace!("conn {key}: the console's connection {number}");
                    (Session::Ack(Ack::numbered(number)), Step::NeedMore)
                }
                _ => Session::open(
                    instance.service,
                    peer,
                    SystemTime::now(),
                    self.config.time_epoch,
                    &mut self.out,
                ),
            },
        }
    }

    /// Connection `key` read its PROXY header: the client it names (or, for a health check,
    /// the proxy itself) is judged and served as if it had connected directly.
    fn on_header(&mut self, key: usize, header: Header, now: Millis) {
        let Some(proxy) = self.proxied.remove(&key) else {
            return self.close(key, "a PROXY header from no known proxy");
        };
        let source = usize::from(self.instance_of[key]);
        let instance = self.instances[source].instance;
        let (peer, health_check) = match header {
            Header::Proxied { source, .. } => (display_peer(source), false),
            Header::Local => (proxy, true),
        };
        debug!(
            "conn {key}: the PROXY header from {proxy} {}",
            if health_check {
                "is a health check".to_string()
            } else {
                format!("names {peer}")
            }
        );
        let admission = self.admission(peer.ip(), now, health_check, false);
        if admission != Admission::Serve {
            if !self.count_admission(source, peer, admission) {
                return self.close(key, "turned away after its PROXY header");
            }
            // A refusal, no longer a connection served.
            self.held -= 1;
            self.refusing += 1;
        } else if health_check {
            self.instances[source].counters.health_checks += 1;
        } else {
            self.serve(source, key, peer);
        }
        let (session, opened) = self.open_session(key, instance, peer, admission);
        self.drive(key, now, |conn, cx| conn.begin(key, session, opened, cx));
    }

    fn pump(&mut self, key: usize, now: Millis) {
        if self
            .conns
            .get(key)
            .is_some_and(|c| c.state() != State::Closed)
        {
            self.drive(key, now, |conn, cx| conn.pump(key, cx));
        }
    }

    /// Runs `step` on the connection at `key` with the loop's buffers lent to it, then acts
    /// on what it left the connection as.
    fn drive(&mut self, key: usize, now: Millis, step: impl FnOnce(&mut Conn, &mut Cx) -> Status) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let stats = Snapshot {
            instances: &self.instances,
            open: self.held as u64,
            accept_pauses: self.accept_pauses,
            start_time: self.start_time,
        };
        let mut cx = cx(
            &self.config,
            self.console.as_ref(),
            stats,
            &mut self.read_buf,
            &mut self.out,
            now,
        );
        let status = step(conn, &mut cx);
        self.after_pump(key, status, now);
    }

    /// Acts on what a pump (or a deadline) left the connection as: closes it, or brings its
    /// interest and deadline up to date.
    fn after_pump(&mut self, key: usize, status: Status, now: Millis) {
        match status {
            Status::Open => {}
            Status::Yielded => self.again.push(key),
            Status::Awaits(number) => {
                if let Some(console) = &mut self.console {
                    console.wait(number, key);
                }
            }
            Status::Closed(reason) => {
                if self.conns.get(key).map(Conn::state) == Some(State::Header) {
                    // Closed before its PROXY header was read: a bad header, or none.
                    let source = usize::from(self.instance_of[key]);
                    self.instances[source].counters.proxy_header_failures += 1;
                }
                return self.close(key, reason);
            }
            Status::Proxied(header) => return self.on_header(key, header, now),
        }
        let token = Token(self.first_conn() + key);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Err(e) = conn.update_interest(key, self.poll.registry(), token) {
            return self.close(key, crate::conn::closed_by(&e));
        }
        self.timers.sync(key, conn.deadline);
    }

    /// Marks a connection closed; its slab entry (and so its socket) goes after the batch.
    fn close(&mut self, key: usize, reason: &str) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.state() == State::Closed {
            return;
        }
        if conn.state() == State::Waiting {
            if let (Some(console), Some(number)) =
                (&mut self.console, conn.session.console_number())
            {
                console.forget(number);
            }
        }
        // No deregister: the socket is never duplicated, so closing it (when the entry
        // leaves the slab) removes it from the poll, one system call fewer per connection.
        // Until then the `Closed` state makes the loop skip its events.
        conn.close(key, reason);
        if conn.is_refusal() {
            self.refusing -= 1;
        } else {
            self.held -= 1;
            if let Some(source) = self.per_source.holders.remove(&key) {
                if let Some(held) = &mut self.per_source.held {
                    held.release(source);
                }
            }
        }
        self.proxied.remove(&key);
        self.timers.cancel(key);
        self.closed.push(key);
    }

    fn remove_closed(&mut self) {
        if self.closed.is_empty() {
            return;
        }
        let now = self.clock.now();
        let mut removed = 0;
        while let Some(key) = self.closed.pop() {
            // Dropping the connection closes its socket, which sends whatever the kernel
            // still holds for it: each close can cost as much as serving a request.
            self.conns.try_remove(key);
            removed += 1;
            if removed % ACCEPT_EVERY == 0 {
                self.accept_on_every_listener(now);
            }
        }
        self.give_back_memory();
        self.resume_accepting(now);
        self.rearm_exit_idle(now);
    }

    /// Arms the `--exit-idle` timer while nothing is open, and disarms it otherwise.
    fn rearm_exit_idle(&mut self, now: Millis) {
        let open = self.conns.len();
        let at = idle_deadline(self.config.exit_idle, self.lifecycle, open, now);
        *self.loop_timers.slot(LoopTimer::ExitIdle) = at;
    }

    /// After a peak, gives back the memory of slots no connection uses: once fewer than a
    /// quarter of the slab's slots hold a connection, the slab drops its free slots past the
    /// highest one in use, and the deadline table with it. Below `KEEP_SLOTS` nothing is
    /// given back, so a daemon serving a few connections at a time does not reallocate.
    fn give_back_memory(&mut self) {
        const KEEP_SLOTS: usize = 256;
        let open = self.conns.len();
        let slots = self.conns.capacity();
        if slots <= KEEP_SLOTS || open * 4 >= slots || open > self.shrink_below {
            return;
        }
        self.conns.shrink_to_fit();
        self.timers.shrink_to(self.conns.capacity());
        self.instance_of.truncate(self.conns.capacity());
        self.instance_of.shrink_to_fit();
        for list in [&mut self.closed, &mut self.again] {
            list.shrink_to(KEEP_SLOTS);
        }
        self.shrink_below = open / 2;
        trim_heap();
        debug!(
            "gave back memory: {} connection slots (of {slots}) kept for {open} open",
            self.conns.capacity()
        );
    }

    /// Acts on everything due at `now`: connections' deadlines, the loop's timers, the drop
    /// log's summary.
    fn expire(&mut self, now: Millis) {
        // Each deadline moves its connection on (`Conn::on_deadline`), so this ends: a
        // connection is in here at most once per state it can leave by a deadline.
        while let Some(key) = self.timers.pop_due(now) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            trace!("conn {key}: its deadline passed");
            // A request deadline or idle limit that passes times the connection out; the
            // connection then leaves it for a linger deadline or closes, so this counts once.
            if conn.deadline.is_some_and(|d| d.kind == Kind::Request) && !conn.is_refusal() {
                let instance = usize::from(self.instance_of[key]);
                self.instances[instance].counters.timed_out += 1;
            }
            self.drive(key, now, |conn, cx| conn.on_deadline(key, cx));
        }
        while let Some(timer) = self.loop_timers.pop_due(now) {
            trace!("loop: {} has come", Due::Loop(timer));
            match timer {
                LoopTimer::DrainEnd => self.end_grace(now),
                LoopTimer::AcceptRetry => self.accept_on_every_listener(now),
                LoopTimer::Watchdog => {
                    self.notifier.watchdog();
                    if let Some(every) = self.notifier.watchdog_every {
                        self.loop_timers.arm(LoopTimer::Watchdog, after(now, every));
                    }
                }
                LoopTimer::ExitIdle => {
                    // A client that connected since the poll woke is served in full, not
                    // only for the grace period.
                    self.accept_on_every_listener(now);
                    if self.conns.is_empty() {
                        let idle = self.config.exit_idle.as_secs_f64();
                        self.request_stop(&format!("nothing open for {idle} s (--exit-idle)"), now);
                    }
                }
            }
        }
        self.drops.flush(now);
        for table in [&mut self.per_source.rates, &mut self.udp_rates]
            .into_iter()
            .flatten()
        {
            table.expire(now);
        }
    }

    /// Lines from the operator go to the connections waiting for them; at the end of input
    /// the waiting ones get the `--ack-reply` text. One turn of standard input at a time.
    fn on_console(&mut self, now: Millis) {
        let Some(console) = &mut self.console else {
            return;
        };
        let (typed, turn_used) = console.read();
        self.console_again = turn_used;
        for t in typed {
            match t {
                Typed::Line { to, text } => match self.take_waiting(to) {
                    Some(key) => {
                        self.end_of_drops();
                        self.answer_operator(key, &text, now);
                    }
                    None => {
                        // The first of a run of dropped lines is named; the rest are counted.
                        if self.console.as_mut().is_some_and(Console::dropped) {
                            match to {
                                Some(n) => {
                                    warn!("console: connection {n} is not waiting; line dropped")
                                }
                                None => warn!("console: no connection is waiting; line dropped"),
                            }
                        }
                    }
                },
                Typed::End => {
                    self.end_of_drops();
                    info!("console: end of input; connections waiting get the --ack-reply text");
                    let waiting = match &mut self.console {
                        Some(console) => console.take_all_waiting(),
                        None => Default::default(),
                    };
                    let reply = self.config.ack_reply.clone();
                    for (number, key) in waiting {
                        if self.is_waiting(number, key) {
                            self.answer_operator(key, &reply, now);
                        }
                    }
                }
            }
        }
        if !turn_used {
            self.end_of_drops();
        }
    }

    /// Ends a run of lines dropped by the console, saying how many there were past the one
    /// already named.
    fn end_of_drops(&mut self) {
        let more = self.console.as_mut().map_or(0, Console::end_of_drops);
        if more > 0 {
            warn!("console: {more} more line(s) dropped: no connection was waiting for them");
        }
    }

    /// The key of the waiting connection a line `to` connection N (or to whoever waited
    /// longest) is for. Entries of connections that closed meanwhile are dropped on the way.
    fn take_waiting(&mut self, to: Option<u64>) -> Option<usize> {
        loop {
            let (number, key) = self.console.as_mut()?.take_waiting(to)?;
            if self.is_waiting(number, key) {
                return Some(key);
            }
        }
    }

    /// Whether the connection at `key` is console connection `number`, waiting.
    fn is_waiting(&self, number: u64, key: usize) -> bool {
        self.conns.get(key).is_some_and(|c| {
            c.state() == State::Waiting && c.session.console_number() == Some(number)
        })
    }

    fn answer_operator(&mut self, key: usize, text: &[u8], now: Millis) {
        self.drive(key, now, |conn, cx| conn.on_operator(key, text, cx));
    }

    fn on_signal(&mut self, signal: i32, now: Millis) {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
        match signal {
            SIGINT => self.request_stop("SIGINT", now),
            SIGTERM => self.request_stop("SIGTERM", now),
            SIGUSR1 => {
                info!("{}; connections open {}", self.total(), self.held);
                debug!(
                    target: "oneloop::tables",
                    "tables: {} connection slots, {} deadlines armed, {} sources holding connections, {} sources in the connection rate table, {} in the UDP rate table",
                    self.conns.capacity(),
                    self.timers.armed(),
                    self.per_source.held.as_ref().map_or(0, HeldTable::len),
                    self.per_source.rates.as_ref().map_or(0, RateTable::len),
                    self.udp_rates.as_ref().map_or(0, RateTable::len)
                );
            }
            SIGHUP => info!("SIGHUP: ignored (there is no configuration file to read again)"),
            SIGUSR2 => debug!("SIGUSR2: ignored"),
            other => debug!("signal {other}: ignored"),
        }
    }

    fn request_stop(&mut self, why: &str, now: Millis) {
        if self.lifecycle != Lifecycle::Serving {
            info!("{why} again: stopping at once");
            return self.set_lifecycle(Lifecycle::Stopping, "a second stop request");
        }
        // The kernel completed the handshakes of the connections in the listen backlog:
        // closing a listener would reset them, so they are accepted (and served) first.
        self.accept_on_every_listener(now);
        // Closing the listeners refuses new connections; closing the UDP sockets ends
        // their service. Each leaves the poll as it closes.
        self.sources.fill_with(|| Source::Closed);
        self.loop_timers.disarm(LoopTimer::AcceptRetry);
        self.loop_timers.disarm(LoopTimer::ExitIdle);
        self.loop_timers
            .arm(LoopTimer::DrainEnd, after(now, self.config.shutdown_grace));
        let status = format!(
            "{why}: no longer accepting; {} connection(s) have {} s to finish",
            self.conns.len() - self.closed.len(),
            self.config.shutdown_grace.as_secs_f64()
        );
        info!("{status}");
        self.notifier.stopping(&status);
        self.set_lifecycle(Lifecycle::Draining, why);
    }

    /// The grace period is over: every connection still open gets its last words and closes.
    fn end_grace(&mut self, now: Millis) {
        let mut cx = cx(
            &self.config,
            self.console.as_ref(),
            Snapshot::default(),
            &mut self.read_buf,
            &mut self.out,
            now,
        );
        for (key, conn) in self
            .conns
            .iter_mut()
            .filter(|(_, c)| c.state() != State::Closed)
        {
            conn.on_shutdown(key, &mut cx);
        }
        self.conns.clear();
        self.set_lifecycle(Lifecycle::Stopping, "the grace period is over");
    }

    /// The nearest time at which the loop has something to do without an event, and what it
    /// is: a connection's deadline, one of the loop's timers, or the drop log's summary.
    fn next_due(&self) -> Option<(Millis, Due)> {
        let conn = self.timers.next().map(|(at, key)| (at, Due::Conn(key)));
        let own = self.loop_timers.next().map(|(at, t)| (at, Due::Loop(t)));
        let drops = self.drops.due().map(|at| (at, Due::DropLog));
        let rates = [&self.per_source.rates, &self.udp_rates]
            .into_iter()
            .filter_map(|table| table.as_ref()?.due())
            .min()
            .map(|at| (at, Due::RateTables));
        earlier(earlier(conn, own), earlier(drops, rates))
    }

    /// How long the loop may sleep: not at all while some socket used its turn, else until
    /// the nearest due time, or for ever.
    fn poll_timeout(&self, nearest: Option<(Millis, Due)>) -> Option<Duration> {
        if self.goes_again() {
            return Some(Duration::ZERO);
        }
        let (at, _) = nearest?;
        Some(Duration::from_millis(at.saturating_sub(self.clock.now())))
    }

    /// Whether a socket, or standard input, used its turn and goes again before the loop
    /// sleeps.
    fn goes_again(&self) -> bool {
        !self.again.is_empty() || !self.udp_again.is_empty() || self.console_again
    }

    /// Says why the poll sleeps as long as it does.
    fn narrate_sleep(&self, nearest: Option<(Millis, Due)>, timeout: Option<Duration>) {
        if !log::log_enabled!(log::Level::Trace) {
            return;
        }
        match (nearest, timeout) {
            (_, Some(Duration::ZERO)) if self.goes_again() => {
                trace!("poll: not sleeping: a socket used its turn and goes again (timeout 0)")
            }
            (Some((_, due)), Some(t)) => {
                trace!(
                    "poll: sleeping until {due} (timeout {:.3} s)",
                    t.as_secs_f64()
                )
            }
            _ => trace!("poll: sleeping, no deadline armed (timeout none)"),
        }
    }

    /// Says what the poll woke up for, naming each socket.
    fn narrate_wake(&self, events: &Events) {
        if !log::log_enabled!(log::Level::Trace) {
            return;
        }
        const SHOWN: usize = 8;
        let mut n = 0;
        let mut text = String::new();
        for event in events.iter() {
            n += 1;
            if n <= SHOWN {
                let sep = if n == 1 { "" } else { "; " };
                text += &format!("{sep}{} {}", self.name(event.token()), readiness(event));
            }
        }
        match n {
            0 => trace!("poll: woke with no event: the timeout passed"),
            1 => trace!("poll: woke with 1 event: {text}"),
            n if n <= SHOWN => trace!("poll: woke with {n} events: {text}"),
            n => trace!("poll: woke with {n} events: {text}; and {} more", n - SHOWN),
        }
    }

    /// The name of the socket behind `token`, as the trace calls it.
    fn name(&self, token: Token) -> String {
        match token {
            WAKER => "the shutdown waker".to_string(),
            SIGNALS => "the signal pipe".to_string(),
            CONSOLE => "standard input (the console)".to_string(),
            Token(t) if t < self.first_conn() => {
                let i = t - FIRST_SOURCE;
                let instance = self.instances[i].instance;
                match instance.transport {
                    Transport::Tcp => format!("listener {instance}"),
                    Transport::Udp => format!("socket {instance}"),
                }
            }
            Token(t) => format!("conn {}", t - self.first_conn()),
        }
    }
}

/// What an event reports, in words.
fn readiness(event: &mio::event::Event) -> String {
    let mut words = Vec::new();
    if event.is_readable() {
        words.push("readable");
    }
    if event.is_writable() {
        words.push("writable");
    }
    // Closed for reading: the peer's FIN came (or both sides are shut). Closed for
    // writing: the peer can take nothing more (a hang-up, or our own shutdown).
    if event.is_read_closed() {
        words.push("closed for reading");
    }
    if event.is_write_closed() {
        words.push("closed for writing");
    }
    if event.is_error() {
        words.push("error");
    }
    words.join(", ")
}

fn cx<'a>(
    config: &'a Config,
    console: Option<&Console>,
    stats: Snapshot<'a>,
    read_buf: &'a mut [u8],
    out: &'a mut Vec<u8>,
    now: Millis,
) -> Cx<'a> {
    Cx {
        read_buf,
        out,
        settings: Settings {
            max_line: config.max_line,
            idle_timeout: config.idle_timeout,
            ack_reply: &config.ack_reply,
            console: console.is_some_and(Console::is_open),
            stats,
        },
        max_output: config.max_output,
        idle_timeout: config.idle_timeout,
        linger: config.linger,
        now,
    }
}

/// Returns the allocator's free memory to the system (glibc keeps it otherwise; musl's
/// allocator gives it back by itself).
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Whether an accept error means the process or system is out of descriptors or memory, so
/// that accepting again at once would fail the same way.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Whether an accept error is the listener's own, for good: it no longer listens (`EINVAL`:
/// shut down by another holder of the socket), or it is no listening stream socket at all
/// (`EBADF`, `ENOTSOCK`, `EOPNOTSUPP`, `EFAULT`). On Linux none of these concerns a single
/// connection.
fn never_accepts_again(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EBADF | libc::ENOTSOCK | libc::EOPNOTSUPP | libc::EFAULT)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_exhaustion_is_recognised() {
        assert!(out_of_descriptors(&io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(out_of_descriptors(&io::Error::from_raw_os_error(
            libc::ENFILE
        )));
        assert!(!out_of_descriptors(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
    }

    #[test]
    fn a_listener_that_no_longer_listens_is_told_from_a_failed_connection() {
        let error = io::Error::from_raw_os_error;
        for broken in [libc::EINVAL, libc::EBADF, libc::ENOTSOCK, libc::EOPNOTSUPP] {
            assert!(never_accepts_again(&error(broken)), "{broken}");
            assert!(!out_of_descriptors(&error(broken)), "{broken}");
        }
        for one in [libc::ECONNABORTED, libc::EPERM, libc::EPROTO, libc::EMFILE] {
            assert!(!never_accepts_again(&error(one)), "{one}");
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
        let a = Some((5, "a"));
        let b = Some((5, "b"));
        assert_eq!(earlier(a, b), a);
        assert_eq!(earlier(Some((7, "a")), b), b);
        assert_eq!(earlier(None, b), b);
        assert_eq!(earlier::<&str>(None, None), None);
    }

    #[test]
    fn summary_line() {
        let s = Summary {
            served: 3,
            refused: 1,
            timed_out: 2,
            denied: 6,
            limited: 7,
            health_checks: 9,
            proxy_header_failures: 11,
            answered: 5,
            dropped: 4,
            datagrams_denied: 8,
            datagrams_limited: 10,
        };
        assert_eq!(
            s.to_string(),
            "connections served 3, refused 1, timed out 2, denied 6, limited 7; \
             datagrams answered 5, dropped 4, denied 8, limited 10"
        );
    }
}
