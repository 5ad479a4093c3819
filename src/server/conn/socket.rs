//! The connection's side of the socket: the operations it makes ([`Io`], so tests can script
//! them), sending with what does not fit kept for later, and the poll's interest, which
//! follows whether output waits.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use log::trace;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use socket2::SockRef;

use super::{Conn, Got, State};
use crate::log::escape::Escaped;

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

impl<S: Io> Conn<S> {
    /// Sends what the session said (`out`, which this empties) after any output held from
    /// before, and keeps what the socket does not take. Returns whether nothing is left
    /// unsent. With nothing held, it writes straight from the shared buffer: no copy, no
    /// allocation.
    pub(super) fn send(
        &mut self,
        key: usize,
        out: &mut Vec<u8>,
        moved: &mut bool,
    ) -> io::Result<bool> {
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

    pub(super) fn shutdown(&mut self, key: usize) -> io::Result<()> {
        trace!("conn {key}: shutdown(Write): the client reads EOF after the reply");
        self.io.shutdown_write()
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

/// Tells what a read brought, in words.
pub(super) fn narrate_read(key: usize, got: Got, buf: &[u8]) {
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
