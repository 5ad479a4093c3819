//! One TCP connection: its socket, its session, the output it could not send yet, and its
//! deadline. [`Conn::pump`] moves bytes between the socket and the session until the socket
//! would block; it never blocks and never waits.
//!
//! The life of a connection is one [`State`], changed only by `Conn::set_state` (which traces
//! every change):
//! ```text
//!   Serving ── the session answers ──► Answered ── last words out ──┬─► closed (client's EOF read)
//!      │                                  │                         └─► Lingering ── EOF ──► closed
//!      │                                  └─ deadline: closed, unsent output dropped     │
//!      ├─ deadline, count/stats: words ──► TimedOut ── message out ──► Lingering     linger deadline
//!      │                                      └─ linger deadline ──► closed              ▼
//!      └─ deadline, echo/ack ──► closed (unsent output dropped)                        closed
//! ```
//! Every deadline moves the connection on: out of `Serving` for good, or closed. So a client
//! that stops reading cannot hold its slot, and one connection times out at most once.
//!
//! Lingering is the graceful close: after the reply the write side is shut down (the client
//! sees EOF after the reply) and whatever the client still sends is read and thrown away
//! until its EOF. Closing a socket with unread input would make the kernel answer with a
//! reset, which can destroy a reply the client has not read yet. What to do once the last
//! words are out, and what each read while lingering means, are the pure functions
//! [`after_last_words`] and [`linger_read`].
//!
//! Backpressure: the connection reads only while it holds no unsent output, so it holds at
//! most one read's answer (at most `--max-output` bytes, plus `ack`'s text). A client that
//! sends but never reads fills the kernel's buffers and then simply waits.
//!
//! The socket is anything that implements [`Io`]: the real `mio` stream, or a scripted one in
//! tests that returns `WouldBlock`, short reads and writes, and errors wherever it is told to.

mod socket;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::time::Duration;

use log::{debug, info, trace};
use mio::net::TcpStream;
use mio::Interest;

use socket::narrate_read;
pub(crate) use socket::{closed_by, Io};

use crate::clock::{after, Millis};
use crate::config::Config;
use crate::log::escape::Escaped;
use crate::proto::proxy::{self, Header};
use crate::proto::{Metrics, Session, Settings, Step};
use crate::server::timers::{Deadline, Kind};

/// What the client's half of the connection has said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// More may come.
    Open,
    /// The poll reported the client's FIN: what is queued before it is all that will come.
    FinReported,
    /// The client's EOF was read (or is known to follow what was read: see [`Got`]).
    Ended,
}

/// Where a connection is in its life (the diagram at the top of this file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// A PROXY protocol header must come first (the connection is from a listed proxy):
    /// nothing is said until it has been read, and none of what follows it is read with it.
    Header,
    /// The session is running: what the client sends goes to it, its answers go out.
    Serving,
    /// The answer goes on with the operator's line (`ack` under `--console`): nothing is read
    /// from the client and no deadline runs until the line comes (`Conn::on_operator`).
    Waiting,
    /// The session has said everything; its last words are going out. The deadline is still
    /// the session's.
    Answered,
    /// The deadline passed and the session said why (`count`'s message): the words have
    /// `--linger` to go out.
    TimedOut,
    /// The last words are out, and our FIN too when `fin_sent` (else the client's FIN was
    /// reported, and ours goes with the close). What the client still sends is read and
    /// thrown away until its EOF or the linger deadline.
    Lingering { fin_sent: bool },
    /// Finished: the socket closes when the entry leaves the slab after the event batch.
    Closed,
}

impl State {
    /// The state's name in [`TRANSITIONS`] and in the diagram drawn from it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            State::Header => "Header",
            State::Serving => "Serving",
            State::Waiting => "Waiting",
            State::Answered => "Answered",
            State::TimedOut => "TimedOut",
            State::Lingering { .. } => "Lingering",
            State::Closed => "Closed",
        }
    }
}

/// Every change of state a connection may make, with what makes it: `set_state` checks each
/// change against this table, and `docs/learn/conn-states.svg` is drawn from it (the test
/// `the_state_diagram_is_drawn_from_the_transitions` fails when the two differ), so the
/// picture cannot drift from what runs. A connection begins `Serving`, or `Header` when it
/// comes from a listed proxy.
pub(crate) const TRANSITIONS: &[(&str, &str, &str)] = &[
    ("Header", "Serving", "its PROXY header is read"),
    ("Header", "Closed", "a bad or missing header; a reset"),
    (
        "Serving",
        "Answered",
        "the session answered or refused;\nthe grace period ended",
    ),
    ("Serving", "Waiting", "ack asks the operator (--console)"),
    ("Serving", "TimedOut", "count's deadline: its message"),
    (
        "Serving",
        "Closed",
        "echo/ack idle limit; a reset;\nthe session quits",
    ),
    ("Waiting", "Serving", "the operator's line"),
    ("Waiting", "Answered", "the grace period ended"),
    ("Waiting", "Closed", "a reset"),
    ("Answered", "Lingering", "the last words are out"),
    (
        "Answered",
        "Closed",
        "the client's EOF was read;\nthe deadline; a reset",
    ),
    ("TimedOut", "Lingering", "the message is out"),
    ("TimedOut", "Closed", "the linger deadline; a reset"),
    ("Lingering", "Lingering", "our FIN after all"),
    (
        "Lingering",
        "Closed",
        "the client's EOF;\nthe linger deadline",
    ),
];

/// Whether [`TRANSITIONS`] has `from -> to`.
fn allowed(from: State, to: State) -> bool {
    TRANSITIONS
        .iter()
        .any(|&(f, t, _)| f == from.name() && t == to.name())
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Header => "waiting for the PROXY header",
            State::Serving => "serving",
            State::Waiting => "waiting for the operator",
            State::Answered => "answered",
            State::TimedOut => "timed out",
            State::Lingering { fin_sent: true } => "lingering (our FIN sent)",
            State::Lingering { fin_sent: false } => "lingering (reading up to the client's FIN)",
            State::Closed => "closed",
        })
    }
}

/// What one read brought, with the poll's report of the client's FIN taken into account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Got {
    /// Bytes; more may follow.
    Data(usize),
    /// Bytes, and then the client's EOF: the poll had reported its FIN before the read began
    /// and the read came back short, so it took everything before the FIN. One more read
    /// would only return 0.
    DataThenEof(usize),
    /// The read returned 0: the client's EOF.
    Eof,
    /// `WouldBlock`: nothing until the poll reports more.
    Nothing,
}

/// What a read of `n` bytes into room for `limit` means, given what the client has said.
pub(crate) fn got(n: usize, limit: usize, input: Input) -> Got {
    match n {
        0 => Got::Eof,
        n if input == Input::FinReported && n < limit => Got::DataThenEof(n),
        n => Got::Data(n),
    }
}

/// How the connection closes once its last words are out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    /// The client's EOF was read: nothing is left unread, so the close cannot cost the
    /// client its reply. Close now; the close sends our FIN.
    CloseNow,
    /// Linger: read and drop the client's input until its EOF, shutting down our write side
    /// first when `shutdown` (so the client sees EOF after the reply). When the client's FIN
    /// was already reported, the shutdown is skipped: the reads reach its EOF at once, and
    /// the close that follows sends our FIN, one system call sooner.
    Linger { shutdown: bool },
}

/// The close decision once the last words are out.
pub(crate) fn after_last_words(input: Input) -> Finish {
    match input {
        Input::Ended => Finish::CloseNow,
        Input::FinReported => Finish::Linger { shutdown: false },
        Input::Open => Finish::Linger { shutdown: true },
    }
}

/// What a lingering connection does after a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Linger {
    /// The client's EOF came: close.
    Close,
    /// Input was thrown away; read again.
    Drain,
    /// Nothing to read, and the client's FIN was reported but is not here after all: shut
    /// down our write side now, then wait.
    SendFin,
    /// Nothing to read: wait for the poll.
    Wait,
}

/// The decision after a read while lingering (`fin_sent`: our write side is shut down).
pub(crate) fn linger_read(got: Got, fin_sent: bool) -> Linger {
    match got {
        Got::Eof | Got::DataThenEof(_) => Linger::Close,
        Got::Data(_) => Linger::Drain,
        Got::Nothing if fin_sent => Linger::Wait,
        Got::Nothing => Linger::SendFin,
    }
}

/// What a pump left the connection as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Waiting for readiness or a deadline.
    Open,
    /// It still has work but used its turn; pump it again before sleeping.
    Yielded,
    /// It waits for the operator's line, as the console's connection number this.
    Awaits(u64),
    /// Its PROXY header has been read (and nothing after it): it names the client.
    Proxied(Header),
    /// Done: the connection should be closed, for this reason.
    Closed(&'static str),
}

/// How long a connection from a listed proxy may take to send its PROXY header.
const HEADER_WAIT: Duration = Duration::from_secs(5);

/// How many reads or writes one pump may do before yielding, so a fast client cannot starve
/// the others. (This is one of the places that stop before `WouldBlock`: see `server/mod.rs`.)
const TURN: usize = 32;

/// The loop's buffers and the settings every connection reads: made once, when the server
/// binds, and lent to one connection at a time ([`Shared::lend`]).
#[derive(Debug)]
pub(crate) struct Shared {
    /// Where reads land (shared by every connection: a connection owns no read buffer). As
    /// large as the largest `--max-output`, which is the most one read may take.
    read_buf: Vec<u8>,
    /// Where sessions write their output before it goes to the socket.
    pub(crate) out: Vec<u8>,
    max_line: usize,
    idle_timeout: Duration,
    ack_reply: Vec<u8>,
    max_output: usize,
    linger: Duration,
}

impl Shared {
    pub(crate) fn new(config: &Config) -> Shared {
        let read_buf = crate::config::ranges::MAX_OUTPUT.max;
        Shared {
            read_buf: vec![0; read_buf],
            out: Vec::with_capacity(read_buf + crate::config::MAX_ACK_REPLY + 64),
            max_line: config.max_line,
            idle_timeout: config.idle_timeout,
            ack_reply: config.ack_reply.clone(),
            max_output: config.max_output,
            linger: config.linger,
        }
    }

    /// The context for one connection's turn at `now`: the buffers, and the settings with
    /// what changes while the loop runs (whether the console is open, the metrics).
    pub(crate) fn lend<'a>(
        &'a mut self,
        console: bool,
        metrics: &'a dyn Metrics,
        now: Millis,
    ) -> Cx<'a> {
        Cx {
            read_buf: &mut self.read_buf,
            out: &mut self.out,
            settings: Settings {
                max_line: self.max_line,
                idle_timeout: self.idle_timeout,
                ack_reply: &self.ack_reply,
                console,
                metrics,
            },
            max_output: self.max_output,
            linger: self.linger,
            now,
        }
    }
}

/// What a connection is lent while it is pumped.
pub(crate) struct Cx<'a> {
    pub read_buf: &'a mut [u8],
    pub out: &'a mut Vec<u8>,
    pub settings: Settings<'a>,
    /// The most bytes one read may take (`--max-output`).
    pub max_output: usize,
    pub linger: Duration,
    pub now: Millis,
}

/// What a deadline did to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Expired {
    pub status: Status,
    /// Its request deadline or idle limit passed (counted once: the connection has left
    /// that deadline for good).
    pub timed_out: bool,
}

/// One TCP connection over a socket `S`.
#[derive(Debug)]
pub(crate) struct Conn<S = TcpStream> {
    io: S,
    session: Session,
    /// When something must happen without an event, and what kind of wait that is.
    deadline: Option<Deadline>,
    /// Output the socket did not take yet; holds no allocation while empty.
    unsent: Vec<u8>,
    state: State,
    input: Input,
    /// What the poll was last told to report (WRITABLE only while output waits, so a
    /// change costs a system call only when output starts or stops waiting).
    interest: Interest,
}

impl<S: Io> Conn<S> {
    /// A new connection whose session has written its first words into `cx.out` (`opened`
    /// is what the session said its state is); they are sent at once (a fresh socket has
    /// room), and only what does not fit is kept.
    pub(crate) fn open(
        key: usize,
        io: S,
        session: Session,
        opened: Step,
        cx: &mut Cx,
    ) -> io::Result<Self> {
        let mut conn = Conn {
            io,
            session,
            deadline: None,
            unsent: Vec::new(),
            state: State::Serving,
            input: Input::Open,
            interest: Interest::READABLE,
        };
        conn.set_deadline(Kind::Request, after(cx.now, cx.settings.idle_timeout));
        conn.take_opening(key, opened);
        conn.send(key, cx.out, &mut false)?;
        Ok(conn)
    }

    /// A connection from a listed proxy: its PROXY header comes first, within 5 s.
    pub(crate) fn awaiting_header(key: usize, io: S, cx: &mut Cx) -> Self {
        let mut conn = Conn {
            io,
            session: Session::Unopened(None),
            deadline: None,
            unsent: Vec::new(),
            state: State::Header,
            input: Input::Open,
            interest: Interest::READABLE,
        };
        trace!(
            "conn {key}: begins {}: the connection is from a listed proxy",
            conn.state
        );
        conn.set_deadline(Kind::Header, after(cx.now, HEADER_WAIT));
        conn
    }

    /// The PROXY header was read: `session` begins (its first words are in `cx.out`), with
    /// its request deadline counted from now.
    pub(crate) fn begin(
        &mut self,
        key: usize,
        session: Session,
        opened: Step,
        cx: &mut Cx,
    ) -> Status {
        self.session = session;
        self.set_state(
            key,
            State::Serving,
            "the PROXY header is read: the session begins",
        );
        self.set_deadline(Kind::Request, after(cx.now, cx.settings.idle_timeout));
        self.take_opening(key, opened);
        self.pump(key, cx)
    }

    /// What the session's first words were: the whole answer (`time`, a refusal), or not.
    fn take_opening(&mut self, key: usize, opened: Step) {
        match opened {
            Step::NeedMore => {}
            Step::Refused(why) => self.set_state(key, State::Answered, why),
            Step::Answered | Step::Quit | Step::AskOperator => {
                self.set_state(key, State::Answered, "everything is said at once")
            }
        }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// When something must happen without an event, and what kind of wait that is.
    pub(crate) fn deadline(&self) -> Option<Deadline> {
        self.deadline
    }

    /// The console's number for this connection (`ack` under `--console`).
    pub(crate) fn console_number(&self) -> Option<u64> {
        self.session.console_number()
    }

    /// Whether this is a busy refusal rather than a served connection.
    pub(crate) fn is_refusal(&self) -> bool {
        self.session.is_refusal()
    }

    /// The poll says the client will send nothing more after what is queued.
    pub(crate) fn on_peer_fin(&mut self) {
        if self.input == Input::Open {
            self.input = Input::FinReported;
        }
    }

    /// Marks the connection closed, for `why`.
    pub(crate) fn close(&mut self, key: usize, why: &str) {
        self.set_state(key, State::Closed, why);
    }

    /// Does all the I/O the connection can do now.
    pub(crate) fn pump(&mut self, key: usize, cx: &mut Cx) -> Status {
        let mut moved = false;
        let status = self.pump_turn(key, cx, &mut moved).unwrap_or_else(|e| {
            cx.out.clear();
            trace!("conn {key}: {}", crate::os::sockets::reason(&e));
            Status::Closed(closed_by(&e))
        });
        if moved && self.state == State::Serving && self.session.activity_extends_deadline() {
            self.set_deadline(Kind::Request, after(cx.now, cx.settings.idle_timeout));
        }
        status
    }

    /// The connection's deadline passed. It always moves the connection on: a `Serving`
    /// connection leaves `Serving` for good (so it times out once), any other one closes. It
    /// says whether this was the connection's timeout (its request deadline or idle limit).
    pub(crate) fn on_deadline(&mut self, key: usize, cx: &mut Cx) -> Expired {
        let timed_out =
            self.deadline.is_some_and(|d| d.kind == Kind::Request) && !self.is_refusal();
        let status = match self.state {
            State::Header => Status::Closed("no PROXY header within 5 s"),
            State::Serving => match self.session.on_deadline(&cx.settings, cx.out) {
                Step::Quit => {
                    self.drop_output(cx);
                    Status::Closed("idle too long: closed, unsent output dropped")
                }
                _ => {
                    self.set_state(
                        key,
                        State::TimedOut,
                        "the deadline passed; the message gets the linger time to go out",
                    );
                    self.set_deadline(Kind::Linger, after(cx.now, cx.linger));
                    self.pump(key, cx)
                }
            },
            State::Answered => {
                self.drop_output(cx);
                Status::Closed(
                    "the deadline passed before the client took the reply: unsent output dropped",
                )
            }
            State::TimedOut | State::Lingering { .. } => Status::Closed("linger deadline passed"),
            // A waiting connection has no deadline; were one to come, it ends the wait.
            State::Waiting | State::Closed => Status::Closed("deadline passed"),
        };
        Expired { status, timed_out }
    }

    /// The daemon stops now: last words (if any) are written if the socket takes them, then
    /// the connection is to be closed.
    pub(crate) fn on_shutdown(&mut self, key: usize, cx: &mut Cx) {
        if matches!(self.state, State::Serving | State::Waiting) {
            let step = self.session.on_shutdown(cx.out);
            trace!("conn {key}: the grace period is over: {step:?}");
            if step != Step::Quit {
                self.set_state(key, State::Answered, "the daemon is stopping");
            }
        }
        if let Ok(true) = self.send(key, cx.out, &mut false) {
            let _ = self.io.shutdown_write();
        }
        cx.out.clear();
    }

    /// The operator's line (`text`, with its LF) for a connection that waits for it: it goes
    /// out, and the connection reads again, with its idle limit restarted in full.
    pub(crate) fn on_operator(&mut self, key: usize, text: &[u8], cx: &mut Cx) -> Status {
        if self.state != State::Waiting {
            return Status::Open;
        }
        let step = self.session.on_operator(text, cx.out);
        trace!("conn {key}: the operator says {}: {step:?}", Escaped(text));
        self.set_state(key, State::Serving, "the operator replied");
        self.set_deadline(Kind::Request, after(cx.now, cx.settings.idle_timeout));
        self.pump(key, cx)
    }

    /// Reads the PROXY header, and not a byte past it. A header queued whole (the usual case)
    /// is peeked at, then exactly its bytes are read. A version 2 header that is not queued
    /// whole once its fixed start is (one larger than the socket's receive buffer never is)
    /// is read in pieces: what was peeked, then at each read at most what its declared
    /// length still wants, each piece fed to a parser the session keeps meanwhile.
    fn read_header(&mut self, key: usize, cx: &mut Cx) -> io::Result<Status> {
        if let Session::Unopened(Some(parser)) = &mut self.session {
            return read_header_pieces(key, &mut self.io, parser, cx.read_buf);
        }
        let buf = &mut cx.read_buf[..proxy::MAX_HEADER];
        let n = loop {
            match self.io.peek(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Status::Open),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        trace!("conn {key}: peek {n} bytes {}", Escaped(&buf[..n]));
        match proxy::scan(&buf[..n]) {
            proxy::Scan::Header { header, len } => {
                if !take_peeked(&mut self.io, &mut buf[..len])? {
                    return Ok(Status::Closed("EOF inside the PROXY header"));
                }
                trace!("conn {key}: read the {len}-byte PROXY header: {header:?}");
                Ok(Status::Proxied(header))
            }
            proxy::Scan::Invalid(why) => Ok(Status::Closed(why)),
            proxy::Scan::NeedMore if n == 0 || self.input != Input::Open => {
                Ok(Status::Closed("EOF before the PROXY header was complete"))
            }
            proxy::Scan::NeedMore => {
                let mut parser = proxy::Parser::new();
                // Needs more, as the scan of the same bytes said.
                parser.feed(&buf[..n]);
                if parser.wanted().is_none() {
                    // A version 1 line (at most 107 bytes: it is queued whole), or a version
                    // 2 fixed start still incomplete: the poll says when more comes.
                    return Ok(Status::Open);
                }
                if !take_peeked(&mut self.io, &mut buf[..n])? {
                    return Ok(Status::Closed("EOF inside the PROXY header"));
                }
                trace!("conn {key}: read {n} bytes of a PROXY header not queued whole: the rest comes in pieces");
                let mut parser = Box::new(parser);
                let status = read_header_pieces(key, &mut self.io, &mut parser, cx.read_buf)?;
                self.session = Session::Unopened(Some(parser));
                Ok(status)
            }
        }
    }

    fn pump_turn(&mut self, key: usize, cx: &mut Cx, moved: &mut bool) -> io::Result<Status> {
        if self.state == State::Header {
            return self.read_header(key, cx);
        }
        for _ in 0..TURN {
            // What the session said last (if anything) goes out before anything is read.
            if !self.send(key, cx.out, moved)? || self.state == State::Waiting {
                return Ok(Status::Open);
            }
            if matches!(self.state, State::Answered | State::TimedOut) {
                match after_last_words(self.input) {
                    Finish::CloseNow => {
                        return Ok(Status::Closed(
                            "the client already sent EOF, so no shutdown or linger is needed",
                        ))
                    }
                    Finish::Linger { shutdown } => {
                        if shutdown {
                            self.shutdown(key)?;
                        }
                        self.set_state(
                            key,
                            State::Lingering { fin_sent: shutdown },
                            "the reply is out",
                        );
                        self.set_deadline(Kind::Linger, after(cx.now, cx.linger));
                    }
                }
            }
            let limit = match self.state {
                State::Lingering { .. } => cx.read_buf.len(),
                _ => cx
                    .read_buf
                    .len()
                    .min(cx.max_output)
                    .min(self.session.max_read()),
            };
            let got = match self.io.read(&mut cx.read_buf[..limit]) {
                Ok(n) => got(n, limit, self.input),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Got::Nothing,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            narrate_read(key, got, &cx.read_buf[..limit]);
            if let State::Lingering { fin_sent } = self.state {
                match linger_read(got, fin_sent) {
                    Linger::Close => return Ok(Status::Closed("the client's EOF came")),
                    Linger::Drain => continue,
                    Linger::Wait => return Ok(Status::Open),
                    Linger::SendFin => {
                        self.shutdown(key)?;
                        self.set_state(
                            key,
                            State::Lingering { fin_sent: true },
                            "the client's EOF is not here after all",
                        );
                        return Ok(Status::Open);
                    }
                }
            }
            if let Got::Data(n) | Got::DataThenEof(n) = got {
                *moved = true;
                let step = self
                    .session
                    .on_data(&cx.read_buf[..n], &cx.settings, cx.out);
                if let (Step::AskOperator, Some(number)) = (step, self.session.console_number()) {
                    info!(
                        "console: connection {number} waits for your reply (type a line, or @{number} TEXT); its client said {}",
                        Escaped(&cx.read_buf[..n])
                    );
                }
                if let Some(status) = self.take_step(key, step, cx) {
                    return Ok(status);
                }
            }
            match got {
                Got::Nothing => return Ok(Status::Open),
                Got::Data(_) => {}
                Got::Eof | Got::DataThenEof(_) => {
                    self.input = Input::Ended;
                    if self.state == State::Serving {
                        let step = self.session.on_eof(cx.out);
                        if let Some(status) = self.take_step(key, step, cx) {
                            return Ok(status);
                        }
                    }
                }
            }
        }
        // Turn over: the last answer goes out (or is kept) before yielding.
        if !self.send(key, cx.out, moved)? {
            return Ok(Status::Open);
        }
        Ok(Status::Yielded)
    }

    /// Acts on what the session said: it goes on, it answered (the last words go out), or it
    /// quits (close now). Returns the status when the pump must stop.
    fn take_step(&mut self, key: usize, step: Step, cx: &mut Cx) -> Option<Status> {
        match step {
            Step::NeedMore => None,
            Step::Answered | Step::Refused(_) => {
                let why = match step {
                    Step::Refused(why) => why,
                    _ => "the request is complete",
                };
                self.set_state(key, State::Answered, why);
                None
            }
            Step::Quit => {
                self.drop_output(cx);
                Some(Status::Closed("the session quit"))
            }
            Step::AskOperator => {
                self.set_state(key, State::Waiting, "its answer needs the operator's line");
                self.deadline = None;
                // What it said so far goes out while it waits (kept if the socket is full).
                if let Err(e) = self.send(key, cx.out, &mut false) {
                    return Some(Status::Closed(closed_by(&e)));
                }
                let number = self.session.console_number().unwrap_or_default();
                Some(Status::Awaits(number))
            }
        }
    }
}

impl<S: Io> Conn<S> {
    /// The one place the state changes, always along [`TRANSITIONS`]. The close is logged
    /// at `debug`, the rest at `trace`.
    fn set_state(&mut self, key: usize, to: State, why: &str) {
        debug_assert!(
            allowed(self.state, to),
            "conn {key}: {} -> {} is not in TRANSITIONS",
            self.state.name(),
            to.name()
        );
        if to == State::Closed {
            debug!("conn {key}: {} -> {to}: {why}", self.state);
        } else {
            trace!("conn {key}: {} -> {to}: {why}", self.state);
        }
        self.state = to;
    }

    fn set_deadline(&mut self, kind: Kind, due: Millis) {
        self.deadline = Some(Deadline { kind, due });
    }

    /// Forgets what the client will not get: the output held and what the session just said.
    fn drop_output(&mut self, cx: &mut Cx) {
        cx.out.clear();
        self.unsent = Vec::new();
    }
}

/// Reads the `buf.len()` bytes a peek saw; returns `false` at an EOF (a peer that reset
/// between the peek and the read).
fn take_peeked<S: Io>(io: &mut S, buf: &mut [u8]) -> io::Result<bool> {
    let mut taken = 0;
    while taken < buf.len() {
        match io.read(&mut buf[taken..]) {
            Ok(0) => return Ok(false),
            Ok(got) => taken += got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads more of a PROXY header that was not queued whole, until it would block: at each
/// read at most what `parser` wants, the rest of the header's declared length, so nothing of
/// what follows is taken.
fn read_header_pieces<S: Io>(
    key: usize,
    io: &mut S,
    parser: &mut proxy::Parser,
    buf: &mut [u8],
) -> io::Result<Status> {
    while let Some(wanted) = parser.wanted() {
        let most = wanted.min(buf.len());
        let piece = &mut buf[..most];
        let n = match io.read(piece) {
            Ok(0) => return Ok(Status::Closed("EOF inside the PROXY header")),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Status::Open),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        trace!(
            "conn {key}: read {n} bytes of the PROXY header, {} to come",
            wanted - n
        );
        match parser.feed(&piece[..n]) {
            proxy::Progress::NeedMore => {}
            proxy::Progress::Done { header, .. } => return Ok(Status::Proxied(header)),
            proxy::Progress::Invalid(why) => return Ok(Status::Closed(why)),
        }
    }
    // A parser is kept only for a version 2 header whose length it knows, and wants the rest
    // of it until it is complete.
    Ok(Status::Closed("a PROXY header of unknown length"))
}
