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

use std::fmt;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use log::{debug, info, trace};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use socket2::SockRef;

use crate::deadline::{after, Deadline, Kind, Millis};
use crate::logbytes::Escaped;
use crate::proxy::{self, Header};
use crate::session::{Session, Settings, Step};

/// The socket operations a connection makes.
pub(crate) trait Io {
    /// One read into `buf`; `Ok(0)` is the client's EOF.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// One write of `buf`. With `more`, the kernel may hold the bytes back for what follows at
    /// once (our FIN), so both leave in one segment.
    fn write(&mut self, buf: &[u8], more: bool) -> io::Result<usize>;
    /// Shuts down the write side: the client reads EOF after what was sent.
    fn shutdown_write(&mut self) -> io::Result<()>;
    /// Copies what is queued into `buf` without taking it (MSG_PEEK).
    fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize>;
}

impl Io for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Read::read(self, buf)
    }

    fn write(&mut self, buf: &[u8], more: bool) -> io::Result<usize> {
        if more {
            SockRef::from(&*self).send_with_flags(buf, libc::MSG_MORE | libc::MSG_NOSIGNAL)
        } else {
            Write::write(self, buf)
        }
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        TcpStream::peek(self, buf)
    }
}

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
/// the others. (This is one of the places that stop before `WouldBlock`: see `server.rs`.)
const TURN: usize = 32;

/// The loop's shared buffers and settings, lent to a connection while it is pumped.
pub(crate) struct Cx<'a> {
    /// Where reads land (shared by every connection: a connection owns no read buffer).
    pub read_buf: &'a mut [u8],
    /// Where sessions write their output before it goes to the socket.
    pub out: &'a mut Vec<u8>,
    pub settings: Settings<'a>,
    /// The most bytes one read may take (`--max-output`).
    pub max_output: usize,
    pub idle_timeout: Duration,
    pub linger: Duration,
    pub now: Millis,
}

/// One TCP connection over a socket `S`.
#[derive(Debug)]
pub(crate) struct Conn<S = TcpStream> {
    io: S,
    pub session: Session,
    /// When something must happen without an event, and what kind of wait that is.
    pub deadline: Option<Deadline>,
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
        conn.set_deadline(Kind::Request, after(cx.now, cx.idle_timeout));
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
            state: State::Serving,
            input: Input::Open,
            interest: Interest::READABLE,
        };
        conn.set_state(key, State::Header, "the connection is from a listed proxy");
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
        self.set_deadline(Kind::Request, after(cx.now, cx.idle_timeout));
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
            trace!("conn {key}: {}", crate::sockets::reason(&e));
            Status::Closed(closed_by(&e))
        });
        if moved && self.state == State::Serving && self.session.activity_extends_deadline() {
            self.set_deadline(Kind::Request, after(cx.now, cx.idle_timeout));
        }
        status
    }

    /// The connection's deadline passed. It always moves the connection on: a `Serving`
    /// connection leaves `Serving` for good (so it times out once), any other one closes.
    pub(crate) fn on_deadline(&mut self, key: usize, cx: &mut Cx) -> Status {
        match self.state {
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
        }
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
        self.set_deadline(Kind::Request, after(cx.now, cx.idle_timeout));
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
    /// Sends what the session said (`out`, which this empties) after any output held from
    /// before, and keeps what the socket does not take. Returns whether nothing is left
    /// unsent. With nothing held, it writes straight from the shared buffer: no copy, no
    /// allocation.
    fn send(&mut self, key: usize, out: &mut Vec<u8>, moved: &mut bool) -> io::Result<bool> {
        if !self.unsent.is_empty() {
            self.unsent.extend_from_slice(out);
            out.clear();
        }
        // The session's last words: the FIN (shutdown or close) follows at once, and MSG_MORE
        // lets it ride in the same segment as the words instead of a segment of its own.
        let last_words = matches!(self.state, State::Answered | State::TimedOut);
        let direct = self.unsent.is_empty();
        let pending: &[u8] = if direct { out } else { &self.unsent };
        let mut sent = 0;
        let result = loop {
            if sent == pending.len() {
                break Ok(true);
            }
            match self.io.write(&pending[sent..], last_words) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    trace!(
                        "conn {key}: write {n}/{} bytes {}{}",
                        pending.len() - sent,
                        Escaped(&pending[sent..sent + n]),
                        if last_words {
                            " (MSG_MORE: the FIN rides along)"
                        } else {
                            ""
                        }
                    );
                    sent += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Said once when output starts to wait, not at every event while it does.
                    if direct || sent > 0 {
                        trace!(
                            "conn {key}: write -> WouldBlock: {} bytes wait until the client reads",
                            pending.len() - sent
                        );
                    }
                    break Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        if sent > 0 {
            *moved = true;
        }
        if direct {
            self.unsent.extend_from_slice(&out[sent..]);
            out.clear();
        } else {
            self.unsent.drain(..sent);
            if self.unsent.is_empty() {
                // Free the buffer: an idle connection holds none.
                self.unsent = Vec::new();
            }
        }
        result
    }

    fn shutdown(&mut self, key: usize) -> io::Result<()> {
        trace!("conn {key}: shutdown(Write): the client reads EOF after the reply");
        self.io.shutdown_write()
    }

    /// The one place the state changes. The close is logged at `debug`, the rest at `trace`.
    fn set_state(&mut self, key: usize, to: State, why: &str) {
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

impl Conn<TcpStream> {
    /// Registers the socket: READABLE, and WRITABLE too while output waits.
    pub(crate) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        self.interest = self.wanted_interest();
        registry.register(&mut self.io, token, self.interest)
    }

    /// Tells the poll when output starts or stops waiting (rare: only when the socket's send
    /// buffer fills, and when it drains again). While output waits, nothing is read: that is
    /// the backpressure.
    pub(crate) fn update_interest(
        &mut self,
        key: usize,
        registry: &Registry,
        token: Token,
    ) -> io::Result<()> {
        let wanted = self.wanted_interest();
        if wanted != self.interest {
            if wanted.is_writable() {
                trace!(
                    "conn {key}: interest now READABLE | WRITABLE: {} bytes wait; nothing more is read until they are out (backpressure)",
                    self.unsent.len()
                );
            } else {
                trace!("conn {key}: interest now READABLE: the output is out, reading again");
            }
            self.interest = wanted;
            registry.reregister(&mut self.io, token, wanted)?;
        }
        Ok(())
    }

    fn wanted_interest(&self) -> Interest {
        if self.unsent.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        }
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

/// Tells what a read brought, in words.
fn narrate_read(key: usize, got: Got, buf: &[u8]) {
    match got {
        Got::Data(n) => trace!("conn {key}: read {n} bytes {}", Escaped(&buf[..n])),
        Got::DataThenEof(n) => trace!(
            "conn {key}: read {n} bytes {}, short, and the poll had reported the client's FIN: that is its EOF (no read needed to see it)",
            Escaped(&buf[..n])
        ),
        Got::Eof => trace!("conn {key}: read 0 bytes: the client's EOF"),
        Got::Nothing => trace!("conn {key}: read -> WouldBlock: nothing more until the poll says so"),
    }
}

/// A short reason for a connection that ended with an error.
pub(crate) fn closed_by(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::ConnectionReset => "reset by peer",
        io::ErrorKind::BrokenPipe => "peer went away",
        io::ErrorKind::ConnectionAborted => "aborted",
        io::ErrorKind::TimedOut => "timed out (keepalive)",
        _ => "socket error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Epoch, Service};
    use crate::session::{display_peer, LineCounter};
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use std::net::SocketAddr;
    use std::time::SystemTime;

    #[test]
    fn after_the_last_words_a_read_eof_closes_at_once_else_it_lingers() {
        assert_eq!(after_last_words(Input::Ended), Finish::CloseNow);
        assert_eq!(
            after_last_words(Input::FinReported),
            Finish::Linger { shutdown: false }
        );
        assert_eq!(
            after_last_words(Input::Open),
            Finish::Linger { shutdown: true }
        );
    }

    #[test]
    fn a_short_read_after_a_reported_fin_is_the_eof() {
        assert_eq!(got(0, 10, Input::Open), Got::Eof);
        assert_eq!(got(4, 10, Input::Open), Got::Data(4));
        assert_eq!(got(4, 10, Input::FinReported), Got::DataThenEof(4));
        // A full read may have more behind it, FIN or not.
        assert_eq!(got(10, 10, Input::FinReported), Got::Data(10));
    }

    #[test]
    fn lingering_reads_drain_until_the_eof_and_send_a_missing_fin() {
        for fin_sent in [true, false] {
            assert_eq!(linger_read(Got::Eof, fin_sent), Linger::Close);
            assert_eq!(linger_read(Got::DataThenEof(3), fin_sent), Linger::Close);
            assert_eq!(linger_read(Got::Data(3), fin_sent), Linger::Drain);
        }
        assert_eq!(linger_read(Got::Nothing, true), Linger::Wait);
        assert_eq!(linger_read(Got::Nothing, false), Linger::SendFin);
    }

    /// What a scripted socket does on each call.
    #[derive(Clone, Debug)]
    enum Act {
        /// A read returns these bytes (empty: EOF).
        Read(Vec<u8>),
        /// A write takes at most this many bytes.
        Take(usize),
        /// A write takes everything.
        All,
        Block,
        Fail(io::ErrorKind),
    }

    /// A socket that follows a script; past its end every read would block, and every write
    /// too unless `drained`. It records what the connection did with it, faults included.
    #[derive(Debug, Default)]
    struct Script {
        reads: VecDeque<Act>,
        writes: VecDeque<Act>,
        /// Past the write script, writes take everything (the client reads at last).
        drained: bool,
        written: Vec<u8>,
        shut: bool,
        /// What each read returned, in order.
        delivered: Vec<Vec<u8>>,
        /// The EOF was read: every read from now on returns 0, as a socket's do.
        eof: bool,
        /// The last write did not take all it was offered, so the connection holds output.
        held: bool,
        /// Reads and peeks made while the connection held output.
        read_while_held: usize,
        /// Reads made after the EOF was read.
        read_after_eof: usize,
        /// Writes made after the write side was shut down.
        written_after_shut: usize,
    }

    fn next(acts: &mut VecDeque<Act>) -> Act {
        acts.pop_front().unwrap_or(Act::Block)
    }

    /// Whether an act is bytes for a read (not the EOF).
    fn is_data(act: &Act) -> bool {
        matches!(act, Act::Read(bytes) if !bytes.is_empty())
    }

    impl Io for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.read_while_held += usize::from(self.held);
            if self.eof {
                self.read_after_eof += 1;
                return Ok(0);
            }
            match next(&mut self.reads) {
                Act::Read(mut bytes) => {
                    let n = bytes.len().min(buf.len());
                    buf[..n].copy_from_slice(&bytes[..n]);
                    if bytes.is_empty() {
                        self.eof = true;
                    } else {
                        let rest = bytes.split_off(n);
                        if !rest.is_empty() {
                            self.reads.push_front(Act::Read(rest));
                        }
                        self.delivered.push(bytes);
                    }
                    Ok(n)
                }
                Act::Fail(kind) => Err(kind.into()),
                Act::Take(_) | Act::All | Act::Block => Err(io::ErrorKind::WouldBlock.into()),
            }
        }

        fn write(&mut self, buf: &[u8], _more: bool) -> io::Result<usize> {
            self.written_after_shut += usize::from(self.shut);
            let act = match self.writes.pop_front() {
                Some(act) => act,
                None if self.drained => Act::All,
                None => Act::Block,
            };
            let n = match act {
                Act::Take(n) => n.min(buf.len()),
                Act::All | Act::Read(_) => buf.len(),
                Act::Fail(kind) => return Err(kind.into()),
                Act::Block => {
                    self.held = true;
                    return Err(io::ErrorKind::WouldBlock.into());
                }
            };
            if n == buf.len() {
                self.held = false;
            }
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn shutdown_write(&mut self) -> io::Result<()> {
            self.shut = true;
            Ok(())
        }

        /// Everything queued up to the first act that is not data. A `WouldBlock` or an
        /// `Interrupted` there stands for time passing (or a signal) and is used up, so the
        /// next peek sees what arrived after it.
        fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.read_while_held += usize::from(self.held);
            if self.eof {
                return Ok(0);
            }
            let mut n = 0;
            for act in self.reads.iter().take_while(|act| is_data(act)) {
                if let Act::Read(bytes) = act {
                    let k = bytes.len().min(buf.len() - n);
                    buf[n..n + k].copy_from_slice(&bytes[..k]);
                    n += k;
                }
            }
            let boundary = self.reads.iter().position(|act| !is_data(act));
            let passing = boundary.filter(|&at| {
                matches!(
                    self.reads[at],
                    Act::Block | Act::Fail(io::ErrorKind::Interrupted)
                )
            });
            if n > 0 {
                if let Some(at) = passing {
                    self.reads.remove(at);
                }
                return Ok(n);
            }
            match self.reads.front() {
                Some(Act::Read(_)) => Ok(0),
                Some(Act::Fail(kind)) if passing.is_none() => Err((*kind).into()),
                Some(Act::Fail(kind)) => {
                    let kind = *kind;
                    self.reads.pop_front();
                    Err(kind.into())
                }
                Some(Act::Block) => {
                    self.reads.pop_front();
                    Err(io::ErrorKind::WouldBlock.into())
                }
                _ => Err(io::ErrorKind::WouldBlock.into()),
            }
        }
    }

    /// The client's address in these tests.
    fn peer() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    /// The wall clock these tests' sessions see: `time` says 01 02 03 04.
    fn clock() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(0x0102_0304)
    }

    struct Loop {
        read_buf: Vec<u8>,
        out: Vec<u8>,
        now: Millis,
        ack_reply: &'static [u8],
    }

    impl Loop {
        fn new() -> Loop {
            Loop {
                read_buf: vec![0; 4096],
                out: Vec::new(),
                now: 0,
                ack_reply: b"",
            }
        }

        fn cx(&mut self) -> Cx<'_> {
            Cx {
                read_buf: &mut self.read_buf,
                out: &mut self.out,
                settings: Settings {
                    max_line: 100,
                    idle_timeout: Duration::from_secs(30),
                    ack_reply: self.ack_reply,
                    console: false,
                    stats: Default::default(),
                },
                max_output: 4096,
                idle_timeout: Duration::from_secs(30),
                linger: Duration::from_secs(2),
                now: self.now,
            }
        }

        /// A connection whose session was just opened (its first words in `self.out`).
        fn start(&mut self, opened: (Session, Step), script: Script) -> io::Result<Conn<Script>> {
            let (session, step) = opened;
            Conn::open(0, script, session, step, &mut self.cx())
        }

        fn open(&mut self, service: Service, script: Script) -> Conn<Script> {
            let opened = Session::open(service, peer(), clock(), Epoch::Unix, &mut self.out);
            self.start(opened, script).unwrap()
        }
    }

    /// Every write takes everything.
    fn writes_all() -> VecDeque<Act> {
        (0..64).map(|_| Act::All).collect()
    }

    const WELCOME: &[u8] = b"Welcome, 127.0.0.1:9\nPlease enter a string: ";

    #[test]
    fn count_answers_then_closes_at_once_after_the_clients_eof() {
        let mut l = Loop::new();
        let script = Script {
            reads: VecDeque::from([Act::Read(b"hi\n".into())]),
            writes: writes_all(),
            ..Script::default()
        };
        let mut c = l.open(Service::Count, script);
        assert_eq!(c.pump(0, &mut l.cx()), Status::Open);
        assert_eq!(c.state(), State::Lingering { fin_sent: true });
        assert!(c.io.shut);
        assert_eq!(c.deadline.map(|d| d.kind), Some(Kind::Linger));
        // The client's EOF, after the reply.
        c.io.reads.push_back(Act::Read(b"".into()));
        assert!(matches!(c.pump(0, &mut l.cx()), Status::Closed(_)));
        assert_eq!(
            c.io.written,
            [WELCOME, b"You entered 2 characters.\n"].concat()
        );
    }

    #[test]
    fn a_reported_fin_skips_the_shutdown() {
        let mut l = Loop::new();
        let script = Script {
            reads: VecDeque::from([Act::Read(b"abc".into())]),
            writes: writes_all(),
            ..Script::default()
        };
        let mut c = l.open(Service::Count, script);
        c.on_peer_fin();
        // A short read after the FIN was reported: the EOF, without another read.
        assert!(matches!(c.pump(0, &mut l.cx()), Status::Closed(_)));
        assert!(!c.io.shut);
        assert!(c.io.written.ends_with(b"You entered 3 characters.\n"));
    }

    #[test]
    fn output_that_waits_stops_the_reading_and_a_deadline_then_closes() {
        let mut l = Loop::new();
        let script = Script {
            reads: VecDeque::from([Act::Read(b"0123456789".into()), Act::Read(b"more".into())]),
            writes: VecDeque::from([Act::Take(4), Act::Block]),
            ..Script::default()
        };
        let mut c = l.open(Service::Echo, script);
        assert_eq!(c.pump(0, &mut l.cx()), Status::Open);
        assert_eq!(c.unsent, b"456789");
        // The second read was never made: nothing is read while output waits.
        assert_eq!(c.io.reads.len(), 1);
        l.now = 31_000;
        let status = c.on_deadline(0, &mut l.cx());
        assert!(matches!(status, Status::Closed(_)), "{status:?}");
        assert!(c.unsent.is_empty());
    }

    #[test]
    fn counts_timeout_message_gets_the_linger_time_then_the_connection_closes() {
        let mut l = Loop::new();
        let script = Script {
            writes: VecDeque::from([Act::All, Act::Take(3), Act::Block]),
            ..Script::default()
        };
        let mut c = l.open(Service::Count, script);
        l.now = 30_000;
        assert_eq!(c.on_deadline(0, &mut l.cx()), Status::Open);
        assert_eq!(c.state(), State::TimedOut);
        assert_eq!(
            c.deadline,
            Some(Deadline {
                kind: Kind::Linger,
                due: 32_000
            })
        );
        l.now = 32_000;
        assert!(matches!(c.on_deadline(0, &mut l.cx()), Status::Closed(_)));
    }

    /// A `count` session begins for `source` on a connection whose PROXY header was read.
    fn begin_count(l: &mut Loop, c: &mut Conn<Script>, source: SocketAddr) {
        let (session, step) = Session::open(
            Service::Count,
            source,
            SystemTime::now(),
            Epoch::Unix,
            &mut l.out,
        );
        c.begin(0, session, step, &mut l.cx());
    }

    #[test]
    fn a_proxy_header_is_read_and_not_a_byte_past_it() {
        let mut l = Loop::new();
        let script = Script {
            reads: VecDeque::from([Act::Read(
                b"PROXY TCP4 10.1.2.3 10.0.0.1 4000 51423\r\nhi\n".into(),
            )]),
            writes: writes_all(),
            ..Script::default()
        };
        let mut c = Conn::awaiting_header(0, script, &mut l.cx());
        assert_eq!(c.state(), State::Header);
        let Status::Proxied(header) = c.pump(0, &mut l.cx()) else {
            panic!("no header")
        };
        let source = "10.1.2.3:4000".parse().unwrap();
        assert_eq!(
            header,
            Header::Proxied {
                source,
                destination: "10.0.0.1:51423".parse().unwrap()
            }
        );
        // What follows the header is the client's, still queued for the session.
        begin_count(&mut l, &mut c, source);
        assert_eq!(
            c.io.written,
            [
                &b"Welcome, 10.1.2.3:4000\nPlease enter a string: "[..],
                b"You entered 2 characters.\n"
            ]
            .concat()
        );
    }

    #[test]
    fn a_proxy_header_not_queued_whole_is_read_in_pieces_and_not_a_byte_past_it() {
        let mut l = Loop::new();
        // A version 2 header for 10.1.2.3:4000 with a 2,000-byte extension (type 0x04).
        let mut body = vec![
            10, 1, 2, 3, 10, 0, 0, 1, 0x0f, 0xa0, 0xc8, 0xdf, 0x04, 0x07, 0xd0,
        ];
        body.resize(body.len() + 2000, 0xaa);
        let len = (body.len() as u16).to_be_bytes();
        let header = [&b"\r\n\r\n\0\r\nQUIT\n\x21\x11"[..], &len, &body].concat();
        // It comes in three parts; the client's line follows the last one at once. (The
        // scripted peek sees the first part alone, and takes the first pause as time gone by:
        // the first pump reads two parts.)
        let script = Script {
            reads: VecDeque::from([
                Act::Read(header[..1000].to_vec()),
                Act::Block,
                Act::Read(header[1000..1500].to_vec()),
                Act::Block,
                Act::Read([&header[1500..], b"hi\n"].concat()),
            ]),
            writes: writes_all(),
            ..Script::default()
        };
        let mut c = Conn::awaiting_header(0, script, &mut l.cx());
        assert_eq!(c.pump(0, &mut l.cx()), Status::Open);
        assert!(matches!(c.session, Session::Unopened(Some(_))));
        let Status::Proxied(header) = c.pump(0, &mut l.cx()) else {
            panic!("no header")
        };
        let source = "10.1.2.3:4000".parse().unwrap();
        assert!(matches!(header, Header::Proxied { source: s, .. } if s == source));
        // Not a byte of the client's line was read with the header.
        assert_eq!(c.io.reads.len(), 1);
        begin_count(&mut l, &mut c, source);
        assert!(c.io.written.ends_with(b"You entered 2 characters.\n"));
    }

    #[test]
    fn a_bad_or_missing_proxy_header_closes_without_a_word() {
        let mut l = Loop::new();
        let script = Script {
            reads: VecDeque::from([Act::Read(b"GET / HTTP/1.0\r\n\r\n".into())]),
            ..Script::default()
        };
        let mut c = Conn::awaiting_header(0, script, &mut l.cx());
        assert!(matches!(c.pump(0, &mut l.cx()), Status::Closed(_)));
        let mut c = Conn::awaiting_header(0, Script::default(), &mut l.cx());
        assert_eq!(c.pump(0, &mut l.cx()), Status::Open);
        l.now = 5_000;
        assert!(matches!(c.on_deadline(0, &mut l.cx()), Status::Closed(_)));
        assert!(c.io.written.is_empty());
    }

    #[test]
    fn a_reset_closes_and_drops_the_output() {
        let mut l = Loop::new();
        let script = Script {
            reads: VecDeque::from([Act::Fail(io::ErrorKind::ConnectionReset)]),
            writes: writes_all(),
            ..Script::default()
        };
        let mut c = l.open(Service::Ack, script);
        assert_eq!(c.pump(0, &mut l.cx()), Status::Closed("reset by peer"));
    }

    // The model: a connection driven the way the loop drives it (`pump` on readiness,
    // `on_peer_fin` then `pump` when the poll reports the client's FIN, `on_deadline` when
    // the deadline is due), over a socket whose every call is scripted by proptest. Run
    // longer with `PROPTEST_CASES=100000 cargo test --lib conn::tests::model`.

    /// How many pumps in a row may yield before the model calls it a spin.
    const MAX_TURNS: usize = 1000;

    /// How many deadlines an open connection may need to close once nothing else happens:
    /// the request deadline, then at most two linger deadlines (count's message, then the
    /// linger after our FIN).
    const DRAIN_DEADLINES: usize = 3;

    /// `ack`'s text after each read, in the model.
    const ACK_REPLY: &[u8] = b"ok\n";

    /// The most output a connection may hold: one read's answer.
    const HELD_MAX: usize = 4096 + b"\nI get it!\n".len() + ACK_REPLY.len();

    /// The reasons for a close once the last words are out: the client's EOF was read
    /// before they were, or while the connection lingered.
    const CLOSE_NOW: &str = "the client already sent EOF, so no shutdown or linger is needed";
    const LINGER_DONE: &str = "the client's EOF came";

    /// The session a model connection serves (after a PROXY header or not: `model`'s
    /// `proxied`).
    #[derive(Clone, Copy, Debug)]
    enum Opening {
        Service(Service),
        /// The busy refusal.
        Busy,
    }

    /// What happens to the connection between pumps.
    #[derive(Clone, Copy, Debug)]
    enum Event {
        /// The poll reports readiness.
        Ready,
        /// The poll reports the client's FIN (and readiness).
        Fin,
        /// The deadline fires, `late` ms after it was due.
        Deadline { late: u8 },
    }

    /// The session `opening` begins for `peer`, its first words in `out`.
    fn open_session(opening: Opening, peer: SocketAddr, out: &mut Vec<u8>) -> (Session, Step) {
        match opening {
            Opening::Service(service) => Session::open(service, peer, clock(), Epoch::Unix, out),
            Opening::Busy => Session::busy(7, out),
        }
    }

    /// One connection's life under the model, and what it showed so far.
    struct Run {
        conn: Conn<Script>,
        opening: Opening,
        /// The client the session serves (the one a PROXY header names).
        peer: SocketAddr,
        /// Where the session's input begins among the reads: past the PROXY header, if any.
        /// `None` while the header is awaited.
        first_read: Option<usize>,
        /// Why it closed, once it has.
        closed: Option<&'static str>,
        /// A deadline fired while serving (so `count` may say it timed out).
        timed_out: bool,
        /// A deadline has fired: from then on the connection never serves.
        after_deadline: bool,
        /// It lingered, so its last words were all out.
        lingered: bool,
    }

    impl Run {
        fn event(&mut self, l: &mut Loop, event: Event) -> Result<(), TestCaseError> {
            let status = match event {
                Event::Ready => self.conn.pump(0, &mut l.cx()),
                Event::Fin => {
                    self.conn.on_peer_fin();
                    self.conn.pump(0, &mut l.cx())
                }
                Event::Deadline { late } => {
                    let due = self.conn.deadline.map(|d| d.due);
                    let Some(due) = due else {
                        return Err(TestCaseError::fail("an open connection has no deadline"));
                    };
                    l.now = l.now.max(due) + Millis::from(late);
                    let before = (self.conn.state(), self.conn.deadline);
                    self.timed_out |= before.0 == State::Serving;
                    let status = self.conn.on_deadline(0, &mut l.cx());
                    prop_assert!(
                        matches!(status, Status::Closed(_))
                            || (self.conn.state(), self.conn.deadline) != before,
                        "a deadline left the connection as it was: {:?}",
                        before
                    );
                    self.after_deadline = true;
                    status
                }
            };
            self.settle(l, status)
        }

        /// Acts on a status as the loop does: pumps again after a yield, begins the session
        /// after the PROXY header.
        fn settle(&mut self, l: &mut Loop, mut status: Status) -> Result<(), TestCaseError> {
            for _ in 0..MAX_TURNS {
                match status {
                    Status::Open => return self.check(l),
                    Status::Closed(why) => {
                        self.closed = Some(why);
                        return self.check(l);
                    }
                    Status::Yielded => {
                        self.check(l)?;
                        status = self.conn.pump(0, &mut l.cx());
                    }
                    Status::Proxied(header) => {
                        self.check(l)?;
                        // Exactly the header was read: not a byte past it.
                        let taken = self.conn.io.delivered.concat();
                        prop_assert_eq!(
                            proxy::scan(&taken),
                            proxy::Scan::Header {
                                header,
                                len: taken.len()
                            }
                        );
                        self.first_read = Some(self.conn.io.delivered.len());
                        if let Header::Proxied { source, .. } = header {
                            self.peer = display_peer(source);
                        }
                        let (session, step) = open_session(self.opening, self.peer, &mut l.out);
                        status = self.conn.begin(0, session, step, &mut l.cx());
                    }
                    Status::Awaits(_) => {
                        return Err(TestCaseError::fail("waits for an operator it has not"))
                    }
                }
            }
            Err(TestCaseError::fail("yielded without end"))
        }

        /// The invariants that hold after every call.
        fn check(&mut self, l: &Loop) -> Result<(), TestCaseError> {
            let (conn, io) = (&self.conn, &self.conn.io);
            prop_assert!(
                l.out.is_empty(),
                "the loop's output buffer is left with bytes"
            );
            prop_assert_eq!(io.read_while_held, 0, "read while output was held");
            prop_assert_eq!(io.read_after_eof, 0, "read after the EOF");
            prop_assert_eq!(io.written_after_shut, 0, "wrote after the shutdown");
            prop_assert!(
                conn.unsent.len() <= HELD_MAX,
                "{} bytes held",
                conn.unsent.len()
            );
            if self.closed.is_none() {
                prop_assert_eq!(io.held, !conn.unsent.is_empty());
                prop_assert!(conn.deadline.is_some(), "open without a deadline");
                prop_assert!(
                    !(self.after_deadline && conn.state() == State::Serving),
                    "serving again after a deadline"
                );
                self.lingered |= matches!(conn.state(), State::Lingering { .. });
            }
            Ok(())
        }

        /// What the client may have received: every reply the protocol allows for the input
        /// the session was given. The bytes written are a prefix of one of them.
        fn replies(&self) -> Vec<Vec<u8>> {
            let Some(first) = self.first_read else {
                // No session began: nothing is said.
                return vec![Vec::new()];
            };
            let input = &self.conn.io.delivered[first..];
            let Opening::Service(service) = self.opening else {
                return vec![b"Error: server busy (7 connections)\n".to_vec()];
            };
            match service {
                Service::Count => {
                    let welcome = format!("Welcome, {}\nPlease enter a string: ", self.peer);
                    let all = input.concat();
                    let line = all.split(|&b| b == b'\n').next().unwrap_or_default();
                    let mut replies = vec![if line.len() > 100 {
                        "Error: line too long (limit 100 bytes)\n".to_string()
                    } else {
                        let mut counter = LineCounter::default();
                        counter.push(line);
                        format!("You entered {} characters.\n", counter.finish())
                    }];
                    if self.timed_out {
                        replies.push("Error: timed out after 30 s\n".to_string());
                    }
                    replies
                        .into_iter()
                        .map(|reply| (welcome.clone() + &reply).into_bytes())
                        .collect()
                }
                Service::Echo => vec![input.concat()],
                Service::Ack => vec![input
                    .iter()
                    .flat_map(|read| [&read[..], b"\nI get it!\n", ACK_REPLY].concat())
                    .collect()],
                Service::Time => vec![vec![1, 2, 3, 4]],
                Service::Stats => unreachable!("the model does not serve stats"),
            }
        }
    }

    /// Runs a connection through `events`, then keeps pumping it and firing its deadlines:
    /// it must close, and the bytes it wrote must be the protocol's.
    fn model(
        opening: Opening,
        proxied: bool,
        script: Script,
        events: Vec<Event>,
    ) -> Result<(), TestCaseError> {
        let mut l = Loop::new();
        l.ack_reply = ACK_REPLY;
        let conn = if proxied {
            Conn::awaiting_header(0, script, &mut l.cx())
        } else {
            let opened = open_session(opening, peer(), &mut l.out);
            match l.start(opened, script) {
                Ok(conn) => conn,
                Err(_) => {
                    // Gone at once (the first write failed): the loop drops it.
                    prop_assert!(l.out.is_empty());
                    return Ok(());
                }
            }
        };
        let mut run = Run {
            conn,
            opening,
            peer: peer(),
            first_read: (!proxied).then_some(0),
            closed: None,
            timed_out: false,
            after_deadline: false,
            lingered: false,
        };
        run.check(&l)?;
        if run.conn.state() == State::Answered {
            // Everything was said at open: the loop goes on to the close at once.
            let status = run.conn.pump(0, &mut l.cx());
            run.settle(&mut l, status)?;
        }
        for event in events {
            if run.closed.is_some() {
                break;
            }
            run.event(&mut l, event)?;
        }
        for _ in 0..DRAIN_DEADLINES {
            if run.closed.is_none() {
                run.event(&mut l, Event::Ready)?;
            }
            if run.closed.is_none() {
                run.event(&mut l, Event::Deadline { late: 0 })?;
            }
        }
        prop_assert!(
            run.closed.is_some(),
            "still open ({}) after {} deadlines",
            run.conn.state(),
            DRAIN_DEADLINES
        );
        let written = &run.conn.io.written;
        let replies = run.replies();
        prop_assert!(
            replies.iter().any(|reply| reply.starts_with(written)),
            "wrote {:?}, not a beginning of any of {:?}",
            Escaped(written).to_string(),
            replies
                .iter()
                .map(|r| Escaped(r).to_string())
                .collect::<Vec<_>>()
        );
        if run.lingered || matches!(run.closed, Some(CLOSE_NOW | LINGER_DONE)) {
            prop_assert!(
                replies.iter().any(|reply| reply == written),
                "closed gracefully after {:?}",
                Escaped(written).to_string()
            );
        }
        Ok(())
    }

    /// PROXY headers, valid and not.
    const HEADERS: [&[u8]; 7] = [
        b"PROXY TCP4 10.1.2.3 10.0.0.1 4000 51423\r\n",
        b"PROXY TCP6 2001:db8::1 ::1 40000 7\r\n",
        b"PROXY UNKNOWN\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x0a\x01\x02\x03\x0a\x00\x00\x01\x0f\xa0\xc8\xdf",
        b"PROXY TCP4 10.1.2.3 10.0.0.1 4000\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
    ];

    /// What a read may bring.
    fn chunk() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => "[a-z \t]{0,12}\n?".prop_map(String::into_bytes),
            2 => proptest::collection::vec(any::<u8>(), 1..64),
            1 => (90usize..130).prop_map(|n| vec![b'x'; n]),
            // More than one read takes.
            1 => Just(vec![b'y'; 5000]),
            1 => proptest::sample::select(&HEADERS[..]).prop_map(<[u8]>::to_vec),
        ]
    }

    fn read_act() -> impl Strategy<Value = Act> {
        prop_oneof![
            10 => chunk().prop_map(Act::Read),
            3 => Just(Act::Block),
            1 => Just(Act::Fail(io::ErrorKind::Interrupted)),
            1 => Just(Act::Fail(io::ErrorKind::ConnectionReset)),
            1 => Just(Act::Read(Vec::new())),
        ]
    }

    fn write_act() -> impl Strategy<Value = Act> {
        prop_oneof![
            4 => Just(Act::All),
            3 => (1usize..40).prop_map(Act::Take),
            3 => Just(Act::Block),
            1 => Just(Act::Fail(io::ErrorKind::Interrupted)),
            1 => Just(Act::Fail(io::ErrorKind::ConnectionReset)),
            1 => Just(Act::Fail(io::ErrorKind::BrokenPipe)),
        ]
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            5 => Just(Event::Ready),
            1 => Just(Event::Fin),
            1 => any::<u8>().prop_map(|late| Event::Deadline { late }),
        ]
    }

    /// A scripted socket; when `proxied`, its reads mostly begin with a PROXY header, whole
    /// or in two parts with time between them, the client's first bytes maybe in the same
    /// read as its end.
    fn script(proxied: bool) -> impl Strategy<Value = Script> {
        let header = if proxied {
            proptest::option::weighted(
                0.8,
                (
                    proptest::sample::select(&HEADERS[..]),
                    any::<prop::sample::Index>(),
                    prop_oneof![Just(Vec::new()), chunk()],
                ),
            )
            .boxed()
        } else {
            Just(None).boxed()
        };
        (
            header,
            proptest::collection::vec(read_act(), 0..10),
            proptest::collection::vec(write_act(), 0..12),
            any::<bool>(),
        )
            .prop_map(|(header, reads, writes, drained)| {
                let mut first = Vec::new();
                if let Some((header, cut, after)) = header {
                    let (a, b) = header.split_at(cut.index(header.len()));
                    first.extend([
                        Act::Read(a.to_vec()),
                        Act::Block,
                        Act::Read([b, &after].concat()),
                    ]);
                    first.retain(|act| !matches!(act, Act::Read(bytes) if bytes.is_empty()));
                }
                Script {
                    reads: first.into_iter().chain(reads).collect(),
                    writes: writes.into(),
                    drained,
                    ..Script::default()
                }
            })
    }

    /// A model case: how the connection begins, its socket, and what happens to it.
    fn case(opening: Opening) -> impl Strategy<Value = (Opening, bool, Script, Vec<Event>)> {
        any::<bool>().prop_flat_map(move |proxied| {
            (
                Just(opening),
                Just(proxied),
                script(proxied),
                proptest::collection::vec(event(), 0..16),
            )
        })
    }

    proptest! {
        #[test]
        fn model_count((opening, proxied, script, events) in case(Opening::Service(Service::Count))) {
            model(opening, proxied, script, events)?;
        }

        #[test]
        fn model_echo((opening, proxied, script, events) in case(Opening::Service(Service::Echo))) {
            model(opening, proxied, script, events)?;
        }

        #[test]
        fn model_ack((opening, proxied, script, events) in case(Opening::Service(Service::Ack))) {
            model(opening, proxied, script, events)?;
        }

        #[test]
        fn model_time((opening, proxied, script, events) in case(Opening::Service(Service::Time))) {
            model(opening, proxied, script, events)?;
        }

        #[test]
        fn model_busy((opening, proxied, script, events) in case(Opening::Busy)) {
            model(opening, proxied, script, events)?;
        }
    }
}
