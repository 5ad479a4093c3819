//! Example 7 of 9: closing without destroying the reply.
//!
//! Adds: the lingering close. A client may send more than its line (a paste, a pipelined
//! request). Closing a socket with input unread makes Linux send a reset (RST), not a FIN,
//! and drop what it had not sent yet (RFC 1122: the reset tells the peer data was lost). The
//! client's connection ends in an error instead of EOF. Linux still lets it read what came
//! before the reset, other systems may not (Windows drops it), and most clients give up on
//! an error, reply and all.
//!
//! So after its last words the server shuts down only its write side (the client reads the
//! reply, then EOF), reads and discards until the client's EOF, then closes: nothing unread,
//! no reset. A linger deadline (2 s) bounds the wait; it takes over from e6's request
//! deadline (30 s here), so one deadline per connection is enough. The daemon: src/server/conn/mod.rs.
//!
//! The demo client sends the line `hello` and a paste, 8 KiB in one write (the server's one
//! read takes 4 KiB). `abrupt` closes at once: the client shows the reply, then `Connection
//! reset by peer`; `linger` (the default) shows the reply, then EOF:
//! ```text
//! cargo run --example e7_lingering_close -- 127.0.0.1:51423 abrupt   # or: linger
//! cargo run --example e7_lingering_close -- --client 127.0.0.1:51423  # another terminal
//! ```
//! Still missing: the seed's ack server also reads the lines its operator types. e8_console.

use std::error::Error;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Poll, Token};
use slab::Slab;

#[path = "e4_poll.rs"]
#[allow(dead_code)] // e4's own `main` is not used here
mod e4;

const IDLE: Duration = Duration::from_secs(30);
const LINGER: Duration = Duration::from_secs(2);

struct Closing {
    conn: e4::Conn,
    due: Instant,
    /// Lingering: answered, write side shut, reading only to discard until EOF or `due`.
    linger: bool,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map_or("", String::as_str);
    if arg(1) == "--client" {
        return demo_client(arg(2));
    }
    let abrupt = match arg(2) {
        "" | "linger" => false,
        "abrupt" => true,
        other => return Err(format!("closing is `abrupt` or `linger`, not {other}").into()),
    };
    let mut poll = Poll::new()?;
    let listener = e4::listen(
        &poll,
        &["cargo run -q --example e7_lingering_close -- --client ADDR  # the reply, then?"],
    )?;
    let mut conns: Slab<Closing> = Slab::new();
    let mut events = Events::with_capacity(256);
    loop {
        let nearest = conns.iter().map(|(_, c)| c.due).min();
        let timeout = nearest.map(|due| due.saturating_duration_since(Instant::now()));
        e4::wait(&mut poll, &mut events, timeout)?;
        for event in &events {
            let key = match event.token() {
                e4::LISTENER => {
                    let (due, linger) = (Instant::now() + IDLE, false);
                    let closing = |stream, peer| {
                        let conn = e4::welcome(stream, peer)?;
                        Ok(Closing { conn, due, linger })
                    };
                    e4::accept_all(&listener, poll.registry(), &mut conns, closing);
                    continue;
                }
                Token(key) => key,
            };
            let Some(c) = conns.get_mut(key) else {
                continue;
            };
            if e4::finished(key, advance(c, key, abrupt, false)) {
                conns.remove(key);
            }
        }
        // Keeps every connection whose deadline has not come, or did not finish it.
        let now = Instant::now();
        conns.retain(|key, c| c.due > now || !e4::finished(key, advance(c, key, abrupt, true)));
    }
}

/// Moves the connection on: its socket is ready, or (`late`) its deadline passed. Ok(true): close.
fn advance(c: &mut Closing, key: usize, abrupt: bool, late: bool) -> io::Result<bool> {
    if c.linger && late {
        eprintln!("conn {key}: linger deadline passed, closing");
        return Ok(true);
    } else if late {
        let why = format!("Error: timed out after {} s\n", IDLE.as_secs());
        c.conn.stream.write_all(why.as_bytes())?;
    } else if !c.linger && !e4::serve(&mut c.conn)? {
        return Ok(false);
    }
    // Everything is said.
    if abrupt {
        eprintln!("conn {key}: answered, closing at once");
        return Ok(true);
    }
    if !c.linger {
        eprintln!("conn {key}: answered, lingering until the client's EOF");
        c.conn.stream.shutdown(Shutdown::Write)?;
        (c.linger, c.due) = (true, Instant::now() + LINGER);
    }
    // What the client sent after its line is already here, and no new event will say so.
    discard_until_eof(&mut c.conn.stream)
}

/// Reads and throws away input: `true` at EOF (nothing is left unread), else `false`.
fn discard_until_eof(stream: &mut TcpStream) -> io::Result<bool> {
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads the welcome, sends the line and a paste in one write, then reads to the end and
/// says how the connection ended.
fn demo_client(addr: &str) -> Result<(), Box<dyn Error>> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    // The welcome first: the paste then acknowledges it, and Nagle holds no reply back.
    let mut got = vec![0; 256];
    let n = stream.read(&mut got)?;
    got.truncate(n);
    let mut paste = b"hello\n".to_vec();
    paste.resize(8 * 1024, b'.');
    stream.write_all(&paste)?;
    // `read_to_end` keeps the bytes it read before an error.
    let end = stream.read_to_end(&mut got);
    println!("received: {:?}", String::from_utf8_lossy(&got));
    let end = end.map_or_else(|e| e.to_string(), |_| "EOF".to_string());
    println!("then: {end}");
    Ok(())
}
