//! Example 8 of 9: the operator console, standard input as one more source in the poll.
//!
//! Adds: the seed's response server and its operator. Each read of client data (up to 4096
//! bytes) is written back with `\nI get it!\n`; then the connection waits, reading nothing
//! more, until the operator types a line, which goes to the connection that has waited
//! longest. Its client's EOF does not end the wait (the seed's client half-closes, then reads).
//! The seed's server waits in `raw_input`, serving no one. Here standard input is one more
//! source in the poll (`SourceFd` registers a bare descriptor), as it is in the daemon's
//! console (`--console`, src/server/console.rs). Two catches:
//!
//! - `O_NONBLOCK` belongs to the open file, which a terminal shares with the shell that
//!   started us: set on descriptor 0, it would leave the shell a non-blocking terminal. So
//!   the console opens /proc/self/fd/0 again, non-blocking: a file of its own, same input.
//! - epoll cannot watch a regular file or /dev/null (`epoll_ctl` fails with `EPERM`: such a
//!   file is always ready). That counts as end of input at once, with a message.
//!
//! At end of input waiting connections go on without a line, and later ones do not wait.
//! Left out, to keep the console in view: e5's unsent buffer (a reply the socket does not
//! take at once closes the connection) and e6's deadlines. A connection closes only after its
//! client's EOF, so nothing is left unread (e7).
//!
//! Watch it: a client sends and half-closes, and this terminal is the operator's.
//! ```text
//! cargo run --example e8_console -- 127.0.0.1:51423    # then type a reply here
//! cargo run -q -- client ack 127.0.0.1:51423 hello      # terminal 2: waits for your line
//! nc -N 127.0.0.1 51423                                 # or by hand: type, then Ctrl-D
//! ```
//! (`nc -N`, which half-closes at the end of input, is OpenBSD's netcat: Debian's package
//! `netcat-openbsd`.) Next: e9_udp_time.

use std::collections::VecDeque;
use std::error::Error;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

#[path = "e4_poll.rs"]
#[allow(dead_code)] // only e4's set-up is used here
mod e4;

const STDIN: Token = Token(usize::MAX - 1);

struct Console {
    /// Standard input, opened again; `None` once it has ended.
    input: Option<File>,
    /// What was typed after the last LF.
    typed: Vec<u8>,
    /// The keys of the connections that wait for a line, longest waiting first.
    waiting: VecDeque<usize>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut poll = Poll::new()?;
    let listener = e4::listen(
        &poll,
        &[
            "cargo run -q -- client ack ADDR hello  # then type a reply in this terminal",
            "nc -N HOST PORT  # or by hand (OpenBSD netcat): type, then Ctrl-D",
        ],
    )?;
    let mut console = Console {
        input: open_stdin(poll.registry()),
        typed: Vec::new(),
        waiting: VecDeque::new(),
    };
    let mut conns: Slab<TcpStream> = Slab::new();
    let mut events = Events::with_capacity(256);
    loop {
        e4::wait(&mut poll, &mut events, None)?;
        for event in &events {
            match event.token() {
                e4::LISTENER => {
                    e4::accept_all(&listener, poll.registry(), &mut conns, |s, _| Ok(s));
                }
                STDIN => on_typed(&mut console, &mut conns),
                Token(key) => resume(&mut conns, key, b"", &mut console),
            }
        }
    }
}

/// Standard input, opened again as a non-blocking file of our own and registered; `None`
/// (end of input) when it cannot be.
fn open_stdin(registry: &Registry) -> Option<File> {
    let mut options = OpenOptions::new();
    let file = options.read(true).custom_flags(libc::O_NONBLOCK);
    let opened = file.open("/proc/self/fd/0").and_then(|file| {
        registry.register(&mut SourceFd(&file.as_raw_fd()), STDIN, Interest::READABLE)?;
        Ok(file)
    });
    // A regular file or /dev/null: `Operation not permitted` (EPERM).
    let end = |e: &io::Error| eprintln!("console: cannot poll standard input: {e}: end of input");
    opened.inspect_err(end).ok()
}

/// Reads what the operator typed; each whole line goes to the connection that has waited
/// longest. At end of input, every waiting connection goes on.
fn on_typed(console: &mut Console, conns: &mut Slab<TcpStream>) {
    let Some(input) = console.input.as_mut() else {
        return;
    };
    // Reads until the input would block (keeping what it read), or to EOF or an error.
    let read = input.read_to_end(&mut console.typed);
    let ended = !matches!(read, Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    while let Some(end) = console.typed.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = console.typed.drain(..=end).collect();
        match console.waiting.pop_front() {
            Some(key) => resume(conns, key, &line, console),
            None => eprintln!("console: no connection is waiting; line dropped"),
        }
    }
    if ended {
        eprintln!("console: end of input; connections no longer wait");
        console.input = None; // closing the file takes it out of the poll
        for key in std::mem::take(&mut console.waiting) {
            resume(conns, key, b"", console);
        }
    }
}

/// Writes `line` (the operator's, or nothing), then serves the connection as far as its
/// socket allows (input may be queued, and no new event will say so); closes it when done.
fn resume(conns: &mut Slab<TcpStream>, key: usize, line: &[u8], console: &mut Console) {
    let Some(stream) = conns.get_mut(key) else {
        return;
    };
    let result = stream.write_all(line);
    if e4::finished(key, result.and_then(|()| serve(stream, key, console))) {
        conns.remove(key);
    }
}

/// Echoes a read with `I get it!`, then waits for the operator while there is one. Returns
/// whether the connection is done (its client's EOF: nothing is left unread).
fn serve(stream: &mut TcpStream, key: usize, console: &mut Console) -> io::Result<bool> {
    // A scan, but only of the waiting connections: a console has few.
    if console.waiting.contains(&key) {
        return Ok(false);
    }
    let mut buf = [0; 4096];
    loop {
        let said = match stream.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => &buf[..n],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.write_all(&[said, b"\nI get it!\n"].concat())?;
        if console.input.is_some() {
            let said = String::from_utf8_lossy(said);
            eprintln!("conn {key}: waits for the operator; its client said {said:?}");
            console.waiting.push_back(key);
            return Ok(false);
        }
    }
}
