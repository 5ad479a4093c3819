//! Example 5 of 9: echo, with partial writes and backpressure.
//!
//! Adds: output that does not fit. A non-blocking `write` takes what the socket's send buffer
//! has room for, possibly less than asked, possibly nothing (`WouldBlock`). Echo (RFC 862)
//! sends back everything it reads, so a client that sends faster than it reads fills that
//! buffer, and the rest must wait in ours: `unsent`.
//!
//! - While `unsent` holds bytes the connection asks the poll for WRITABLE as well, to hear
//!   when the client has read and there is room again; once `unsent` is empty it asks for
//!   READABLE only. So a WRITABLE event always has work behind it. (A level-triggered poll,
//!   `select` or `poll(2)`, reports a socket with room as writable on every pass: asking for
//!   it always would spin.) The interest follows from the state.
//! - Backpressure: while `unsent` is over `CAP` the connection stops reading. Its client's
//!   bytes then wait in the kernel's buffers, which fill, and the client's own writes block:
//!   the slow reader slows itself, and `unsent` never holds more than `CAP` plus one read.
//!   Reading resumes from the WRITABLE event, not a READABLE one: the bytes that wait were
//!   announced long ago, and no new edge will come for them.
//!
//! Standard error shows each pause and resume. The daemon does the same in src/server/conn/ (it
//! stops reading as soon as any output waits, and writes straight from a shared buffer, so an
//! idle connection holds no buffer at all). docs/learn/backpressure.svg draws the buffers.
//!
//! Watch it with a client that sends and never reads. A blocking one (Python's `sendall`)
//! would hang in its own send once its send buffer is full, which is the backpressure
//! working, and could not say how far it got; the learner client writes non-blocking, says
//! where it stalled, then reads everything back:
//! ```text
//! cargo run --example e5_echo_backpressure -- 127.0.0.1:51423
//! cargo run -q --example clients -- flood 127.0.0.1:51423   # terminal 2: `reading paused` here
//! ```
//!
//! Still wrong: a client that stops reading (or vanishes without a word) keeps its slot and
//! its buffer for ever. e6_deadlines gives every connection a deadline.

use std::error::Error;
use std::io::{self, Read, Write};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

#[path = "e4_poll.rs"]
#[allow(dead_code)] // only e4's set-up is used here
mod e4;

/// Past this many unsent bytes a connection stops reading.
const CAP: usize = 64 * 1024;

/// What an echo connection owes its client.
#[derive(Default)]
struct Output {
    unsent: Vec<u8>,
    /// The client half-closed: once `unsent` is empty the connection is done.
    eof: bool,
    /// Reading stopped because `unsent` is over `CAP`.
    paused: bool,
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut poll = Poll::new()?;
    let listener = e4::listen(
        &poll,
        &[
            "cargo run -q --example clients -- flood ADDR  # never reads: see `reading paused`",
            "cargo run -q -- client echo ADDR hello",
        ],
    )?;
    let mut conns: Slab<(TcpStream, Output)> = Slab::new();
    let mut events = Events::with_capacity(256);
    loop {
        e4::wait(&mut poll, &mut events, None)?;
        for event in &events {
            let key = match event.token() {
                e4::LISTENER => {
                    let echo = |stream, _| Ok((stream, Output::default()));
                    e4::accept_all(&listener, poll.registry(), &mut conns, echo);
                    continue;
                }
                Token(key) => key,
            };
            let Some((stream, out)) = conns.get_mut(key) else {
                continue;
            };
            let was_waiting = !out.unsent.is_empty();
            let result = pump(stream, out, key)
                .and_then(|()| update_interest(poll.registry(), stream, key, was_waiting, out))
                .map(|()| out.eof && out.unsent.is_empty());
            if e4::finished(key, result) {
                conns.remove(key);
            }
        }
    }
}

/// Writes what waits, reads while there is room, and repeats until the socket would block
/// (or the client has said everything).
fn pump(stream: &mut TcpStream, out: &mut Output, key: usize) -> io::Result<()> {
    let mut buf = [0; 16 * 1024];
    loop {
        while !out.unsent.is_empty() {
            match stream.write(&out.unsent) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => drop(out.unsent.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let full = out.unsent.len() >= CAP;
        if full != out.paused {
            out.paused = full;
            let (what, n) = (if full { "paused" } else { "resumed" }, out.unsent.len());
            eprintln!("conn {key}: reading {what}, {n} bytes unsent");
        }
        if out.eof || full {
            return Ok(());
        }
        match stream.read(&mut buf) {
            Ok(0) => out.eof = true,
            Ok(n) => out.unsent.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Asks for WRITABLE exactly while output waits (one `epoll_ctl` when that changes).
fn update_interest(
    registry: &Registry,
    stream: &mut TcpStream,
    key: usize,
    was_waiting: bool,
    out: &Output,
) -> io::Result<()> {
    let waiting = !out.unsent.is_empty();
    if waiting == was_waiting {
        return Ok(());
    }
    let interest = if waiting {
        Interest::READABLE | Interest::WRITABLE
    } else {
        Interest::READABLE
    };
    registry.reregister(stream, Token(key), interest)
}
