//! One TCP connection: its socket, its session, the output it could not send yet, and its
//! deadline. [`Conn::pump`] moves bytes between the socket and the session until the socket
//! would block; it never blocks and never waits.
//!
//! The life of a connection:
//! ```text
//!   Serving ── session finished, output sent ──► shutdown(Write) ──► Lingering ── EOF ──► closed
//!      │  │                                          ▲                    │
//!      │  └─ deadline: count's message ──► TimedOut ─┘ (message sent)     └─ linger deadline ──► closed
//!      │                                      └─ linger deadline, message unsent ──► closed
//!      ├── deadline: echo/ack, or last words still unsent ──► closed (unsent output dropped)
//!      └── client had already sent EOF: close at once ──► closed
//! ```
//! Every deadline moves the connection on: out of `Serving` for good, or closed. So a client
//! that stops reading cannot hold its slot, and one connection times out at most once.
//! Lingering is the graceful close: after the reply the write side is shut down (the client
//! sees EOF after the reply) and whatever the client still sends is read and thrown away
//! until its EOF. Closing a socket with unread input would make the kernel answer with a
//! reset, which can destroy a reply the client has not read yet. When the poll has already
//! reported the client's EOF (it half-closed after its request), the shutdown is skipped:
//! reading up to that EOF and closing sends the same FIN one system call sooner.
//!
//! Backpressure: the connection reads only while it holds no unsent output, so it holds at
//! most one read's answer (at most `--max-output` bytes, plus `ack`'s text). A client that
//! sends but never reads fills the kernel's buffers and then simply waits.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use log::trace;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use socket2::SockRef;

use crate::deadline::{after, Deadline, Kind, Millis};
use crate::logbytes::Escaped;
use crate::session::{Session, Settings, Step};

/// Where the connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The session is running (or its last words are being written).
    Serving,
    /// The deadline passed and the session said why (`count`'s timeout message): the words
    /// have `--linger` to go out, then the close is the lingering one.
    TimedOut,
    /// The write side is shut; unread input is drained until EOF or the linger deadline.
    Lingering,
}

/// What a pump left the connection as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Waiting for readiness or a deadline.
    Open,
    /// It still has work but used its turn; pump it again before sleeping.
    Yielded,
    /// Done: the connection should be closed, for this reason.
    Closed(&'static str),
}

/// How many reads or writes one pump may do before yielding, so a fast client cannot starve
/// the others.
const TURN: usize = 32;

/// The loop's shared buffers and settings, lent to a connection while it is pumped.
pub struct Cx<'a> {
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

/// One TCP connection.
#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    pub session: Session,
    /// When something must happen without an event, and what kind of wait that is.
    pub deadline: Option<Deadline>,
    /// Output the socket did not take yet; holds no allocation while empty.
    unsent: Vec<u8>,
    phase: Phase,
    /// The client sent EOF and it was read.
    read_eof: bool,
    /// The poll reported the client's EOF (input before it may still wait to be read).
    peer_fin: bool,
    /// Our write side is shut down.
    write_shut: bool,
    /// Whether the poll was asked for WRITABLE too (kept so that interest changes, which
    /// cost a system call, happen only when output starts or stops waiting).
    writable_registered: bool,
    /// Whether the connection counts toward `--max-connections` (a refused one does not).
    pub counted: bool,
    /// Closed, and waiting for the end of the event batch to leave the slab.
    pub closed: bool,
}

impl Conn {
    /// A new connection whose session has written its first words into `cx.out`; they are
    /// sent at once (a fresh socket has room), and only what does not fit is kept.
    pub fn open(
        stream: TcpStream,
        session: Session,
        counted: bool,
        cx: &mut Cx,
    ) -> io::Result<Conn> {
        let mut conn = Conn {
            stream,
            session,
            deadline: None,
            unsent: Vec::new(),
            phase: Phase::Serving,
            read_eof: false,
            peer_fin: false,
            write_shut: false,
            writable_registered: false,
            counted,
            closed: false,
        };
        conn.set_deadline(Kind::Request, after(cx.now, cx.idle_timeout));
        conn.send(cx.out, &mut false)?;
        Ok(conn)
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The poll says the client will send nothing more after what is queued.
    pub fn on_peer_fin(&mut self) {
        self.peer_fin = true;
    }

    /// Registers the socket: READABLE, and WRITABLE too while output waits.
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        self.writable_registered = !self.unsent.is_empty();
        let interest = self.interest();
        registry.register(&mut self.stream, token, interest)
    }

    /// Tells the poll about a change in whether output waits (rare: only when the socket's
    /// send buffer fills, and when it drains again).
    pub fn update_interest(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        if self.writable_registered == self.unsent.is_empty() {
            self.writable_registered = !self.unsent.is_empty();
            let interest = self.interest();
            trace!("{token:?}: interest now {interest:?}");
            registry.reregister(&mut self.stream, token, interest)?;
        }
        Ok(())
    }

    fn interest(&self) -> Interest {
        if self.writable_registered {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        }
    }

    /// Does all the I/O the connection can do now.
    pub fn pump(&mut self, key: usize, cx: &mut Cx) -> Status {
        let mut moved = false;
        let status = self.pump_turn(key, cx, &mut moved).unwrap_or_else(|e| {
            cx.out.clear();
            Status::Closed(closed_by(&e))
        });
        if moved && self.phase == Phase::Serving && self.session.activity_extends_deadline() {
            self.set_deadline(Kind::Request, after(cx.now, cx.idle_timeout));
        }
        status
    }

    /// The connection's deadline passed. It always moves the connection on: a `Serving`
    /// connection leaves `Serving` for good (so it times out once), any other one closes.
    pub fn on_deadline(&mut self, key: usize, cx: &mut Cx) -> Status {
        match self.phase {
            Phase::Lingering | Phase::TimedOut => Status::Closed("linger deadline passed"),
            // The last words were said but the client did not take them in time.
            Phase::Serving if self.session.is_finished() => {
                Status::Closed("deadline passed with output unsent")
            }
            Phase::Serving => {
                let step = self.session.on_deadline(&cx.settings, cx.out);
                self.note(key, step);
                if cx.out.is_empty() {
                    // `echo` and `ack` end quietly; what the client did not read is dropped.
                    return Status::Closed("idle timeout");
                }
                // `count` says why; the words get the linger time to go out.
                self.phase = Phase::TimedOut;
                self.set_deadline(Kind::Linger, after(cx.now, cx.linger));
                trace!("conn {key}: deadline passed, last words get the linger time");
                self.pump(key, cx)
            }
        }
    }

    fn set_deadline(&mut self, kind: Kind, due: Millis) {
        self.deadline = Some(Deadline { kind, due });
    }

    /// The daemon stops now: last words (if any) are written if the socket takes them, then
    /// the connection is to be closed.
    pub fn on_shutdown(&mut self, key: usize, cx: &mut Cx) {
        let step = self.session.on_shutdown(cx.out);
        self.note(key, step);
        if let Ok(true) = self.send(cx.out, &mut false) {
            let _ = self.shut_write();
        }
        cx.out.clear();
    }

    fn pump_turn(&mut self, key: usize, cx: &mut Cx, moved: &mut bool) -> io::Result<Status> {
        for _ in 0..TURN {
            // What the session said last (if anything) goes out before anything is read.
            if !self.send(cx.out, moved)? {
                return Ok(Status::Open);
            }
            if self.phase != Phase::Lingering && self.session.is_finished() {
                if self.read_eof {
                    return Ok(Status::Closed("done"));
                }
                if !self.peer_fin {
                    self.shut_write()?;
                }
                self.phase = Phase::Lingering;
                self.set_deadline(Kind::Linger, after(cx.now, cx.linger));
                trace!("conn {key}: answered, lingering until the client's EOF");
            }
            let limit = match self.phase {
                // A timed-out session is finished, so it never gets here.
                Phase::Serving | Phase::TimedOut => cx
                    .read_buf
                    .len()
                    .min(cx.max_output)
                    .min(self.session.max_read()),
                Phase::Lingering => cx.read_buf.len(),
            };
            let n = match self.stream.read(&mut cx.read_buf[..limit]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.phase == Phase::Lingering && !self.write_shut {
                        // The client's EOF is not here after all: say ours and wait.
                        self.shut_write()?;
                    }
                    return Ok(Status::Open);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let data = &cx.read_buf[..n];
            // The poll reported the client's EOF before this read began, and the read came
            // back short: it took everything before that EOF, so there is no need for one
            // more read to see it.
            let eof_follows = self.peer_fin && n < limit;
            if self.phase == Phase::Lingering {
                if n == 0 || eof_follows {
                    return Ok(Status::Closed("done"));
                }
                trace!("conn {key}: discarded {n} bytes while lingering");
                continue;
            }
            if n > 0 {
                trace!("conn {key}: read {n} bytes: {}", Escaped(data));
                *moved = true;
                let step = self.session.on_data(data, &cx.settings, cx.out);
                self.note(key, step);
            }
            if n == 0 || eof_follows {
                trace!("conn {key}: read EOF");
                self.read_eof = true;
                let step = self.session.on_eof(cx.out);
                self.note(key, step);
            }
        }
        // Turn over: the last answer goes out (or is kept) before yielding.
        if !self.send(cx.out, moved)? {
            return Ok(Status::Open);
        }
        Ok(Status::Yielded)
    }

    /// Sends what the session said (`out`, which this empties) after any output held from
    /// before, and keeps what the socket does not take. Returns whether nothing is left
    /// unsent. With nothing held, it writes straight from the shared buffer: no copy, no
    /// allocation.
    fn send(&mut self, out: &mut Vec<u8>, moved: &mut bool) -> io::Result<bool> {
        if !self.unsent.is_empty() {
            self.unsent.extend_from_slice(out);
            out.clear();
        }
        // The session's last words: the FIN (shutdown or close) follows at once, and MSG_MORE
        // lets it ride in the same segment as the words instead of a segment of its own.
        let last_words = self.session.is_finished() && self.phase != Phase::Lingering;
        let direct = self.unsent.is_empty();
        let pending: &[u8] = if direct { out } else { &self.unsent };
        let mut sent = 0;
        let result = loop {
            if sent == pending.len() {
                break Ok(true);
            }
            match write_part(&self.stream, &pending[sent..], last_words) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(false),
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

    fn shut_write(&mut self) -> io::Result<()> {
        self.write_shut = true;
        self.stream.shutdown(Shutdown::Write)
    }

    fn note(&self, key: usize, step: Step) {
        if step != Step::NeedMore && step != Step::Ignored {
            trace!(
                "conn {key}: {step:?}, session {}",
                self.session.state_name()
            );
        }
    }
}

/// One write of `buf`. With `more`, the kernel may hold the bytes back for what follows (here
/// the FIN, which the caller sends at once), so both leave in one segment.
fn write_part(stream: &TcpStream, buf: &[u8], more: bool) -> io::Result<usize> {
    if more {
        SockRef::from(stream).send_with_flags(buf, libc::MSG_MORE | libc::MSG_NOSIGNAL)
    } else {
        (&*stream).write(buf)
    }
}

/// A short reason for a connection that ended with an error.
pub fn closed_by(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::ConnectionReset => "reset by peer",
        io::ErrorKind::BrokenPipe => "peer went away",
        io::ErrorKind::ConnectionAborted => "aborted",
        io::ErrorKind::TimedOut => "timed out (keepalive)",
        _ => "socket error",
    }
}
