//! Example 4 of 9: one `mio::Poll`, a listener and a slab of connections.
//!
//! Adds: readiness from the kernel. Every socket is registered with one `Poll` (epoll on
//! Linux) under a `Token`; `poll` sleeps until some of them are ready and says which. An
//! idle server now uses no CPU at all, however many clients wait. The connections live in a
//! `Slab`, whose key is their token: a lookup is an index, and a closed connection's slot is
//! used again by the next one.
//!
//! The rule that comes with it: mio's readiness is *edge-triggered*. An event says "this
//! socket became ready", once, not "it is ready now". So every handler repeats its call until
//! `WouldBlock`: `accept` until the backlog is empty, `read` until nothing is left. Reading
//! once per event would hang a client whose line is longer than one read: the rest is
//! already here, and no new event comes for it. A `WouldBlock` after an event is normal too
//! (events can be stale), as is an event for a connection closed earlier in the batch
//! reaching the one that took its slot: each handler takes `WouldBlock` as "nothing yet".
//! (The daemon's src/server/table.rs removes closed connections only after the batch.)
//!
//! Watch it (it prints these with its real address):
//! ```text
//! cargo run --example e4_poll -- 127.0.0.1:51423
//! cargo run -q --example clients -- trickle 127.0.0.1:51423   # a line in pieces
//! cargo run -q --example clients -- many 127.0.0.1:51423      # 200 clients, one thread
//! ```
//! e4b_level_poll is the same server on a level-triggered poll(2), for contrast.
//!
//! Still wrong: `write_all` assumes the socket takes the reply whole, which a long answer to
//! a slow reader would not. e5_echo_backpressure keeps the rest and asks for WRITABLE.

use std::error::Error;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};
use oneloop::proto::LineCounter;
use slab::Slab;

#[path = "common/watch.rs"]
mod watch;

/// The listener's token; connections use their slab key.
pub const LISTENER: Token = Token(usize::MAX);

/// A count connection: its socket, and how far its line has been counted.
pub struct Conn {
    pub stream: TcpStream,
    pub counter: LineCounter,
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut poll = Poll::new()?;
    let listener = listen(
        &poll,
        &[
            "cargo run -q --example clients -- trickle ADDR  # a line in pieces",
            "cargo run -q --example clients -- many ADDR  # 200 clients at once",
            "cargo run -q -- client count ADDR hello",
        ],
    )?;
    let mut conns = Slab::new();
    let mut events = Events::with_capacity(256);
    loop {
        // Sleeps until something is ready: no timeout, nothing to do until then.
        wait(&mut poll, &mut events, None)?;
        for event in &events {
            match event.token() {
                LISTENER => accept_all(&listener, poll.registry(), &mut conns, welcome),
                Token(key) => {
                    let Some(conn) = conns.get_mut(key) else {
                        continue;
                    };
                    if finished(key, serve(conn)) {
                        // Dropping the stream closes it, and that takes it out of the poll.
                        conns.remove(key);
                    }
                }
            }
        }
    }
}

/// Binds the address given as the first argument, says where it listens and how to watch it
/// (`commands`: see common/watch.rs), and registers the listener with the poll.
pub fn listen(poll: &Poll, commands: &[&str]) -> Result<TcpListener, Box<dyn Error>> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:0".into());
    let mut listener = TcpListener::bind(addr.parse()?)?;
    watch::say_listening(listener.local_addr()?, commands)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    Ok(listener)
}

/// Waits for events, for at most `timeout`. A signal that cuts the wait short is no error:
/// the loop goes round with no events.
pub fn wait(poll: &mut Poll, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
    match poll.poll(events, timeout) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        result => result,
    }
}

/// Accepts every connection waiting in the backlog and registers it; `make` turns it into
/// its slab entry (here `welcome`; the later examples make theirs).
pub fn accept_all<T>(
    listener: &TcpListener,
    registry: &Registry,
    conns: &mut Slab<T>,
    mut make: impl FnMut(TcpStream, SocketAddr) -> io::Result<T>,
) {
    loop {
        let (mut stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            // Out of descriptors, every accept fails alike and retrying at once would spin:
            // stop; the next connection's event retries (the daemon also uses a timer).
            Err(e) => {
                eprintln!("accept: {e}");
                return;
            }
        };
        let token = Token(conns.vacant_key());
        let registered = registry.register(&mut stream, token, Interest::READABLE);
        match registered.and_then(|()| make(stream, peer)) {
            Ok(entry) => drop(conns.insert(entry)),
            Err(e) => eprintln!("{peer}: {e}"),
        }
    }
}

/// Greets a new client of the count service.
pub fn welcome(mut stream: TcpStream, peer: SocketAddr) -> io::Result<Conn> {
    let welcome = format!("Welcome, {peer}\nPlease enter a string: ");
    stream.write_all(welcome.as_bytes())?;
    let counter = LineCounter::default();
    Ok(Conn { stream, counter })
}

/// Whether `result` says the connection is finished: done, or failed (said on stderr).
pub fn finished(key: usize, result: io::Result<bool>) -> bool {
    result.unwrap_or_else(|e| {
        eprintln!("conn {key}: {e}");
        true
    })
}

/// Reads until the socket has nothing more. Returns whether the connection is done.
pub fn serve(conn: &mut Conn) -> io::Result<bool> {
    let mut buf = [0; 4096];
    loop {
        let n = match conn.stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let line_end = buf[..n].iter().position(|&b| b == b'\n');
        conn.counter.push(&buf[..line_end.unwrap_or(n)]);
        if n == 0 || line_end.is_some() {
            let n = conn.counter.finish();
            let reply = format!("You entered {n} characters.\n");
            conn.stream.write_all(reply.as_bytes())?;
            return Ok(true);
        }
    }
}
