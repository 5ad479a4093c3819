//! Example 3 of 9: non-blocking sockets, and a loop that never sleeps.
//!
//! Adds: `set_nonblocking(true)`. An `accept`, `read` or `write` that would have to wait
//! returns `WouldBlock` at once instead, so one thread can keep many clients: each is a
//! socket and a few bytes of counting state in a `Vec`, and the loop asks every socket in
//! turn whether it has something. No client can hold up another, and no thread is made.
//!
//! Still wrong: nothing tells the loop *which* socket is ready, so it asks all of them, all
//! the time. With no client at all it still burns a whole CPU core asking. See it in `top`,
//! or read the process's CPU time (fields 14 and 15 of /proc/PID/stat, in clock ticks):
//!
//! ```text
//! cargo run --example e3_busy_loop -- 127.0.0.1:51423 &
//! pid=$(pidof e3_busy_loop); t() { awk '{print $14 + $15}' /proc/$pid/stat; }
//! a=$(t); sleep 5; b=$(t); echo "$(( (b - a) / 5 ))% of a core"   # ticks are 1/100 s
//! ```
//! Measured so on one Linux machine: 99% of a core, with no client connected (tests/examples.rs
//! measures it too; `--nocapture` shows its figure, lower when other tests share the CPUs).
//! The more clients, the longer each pass, and most of it goes to system calls that find
//! nothing.
//!
//! It also writes each reply with `write_all` and drops the client if the socket will not
//! take it all at once. A fresh socket has room for these short replies; e5 keeps what the
//! socket does not take.
//!
//! Next: e4_poll lets the kernel say which sockets are ready, and sleeps until one is.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use oneloop::proto::LineCounter;

#[path = "common/watch.rs"]
mod watch;

/// One client: its socket and how far its line has been counted.
pub struct Client {
    pub stream: TcpStream,
    counter: LineCounter,
}

fn main() -> io::Result<()> {
    let listener = listen(&[
        "top -p PID  # a whole core, and no client at all",
        "cargo run -q --example clients -- pair ADDR  # it serves two at once, though",
    ])?;
    let mut clients: Vec<Client> = Vec::new();
    loop {
        match listener.accept() {
            Ok((stream, peer)) => match welcome(stream, peer) {
                Ok(client) => clients.push(client),
                Err(e) => eprintln!("{peer}: {e}"),
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => eprintln!("accept: {e}"),
        }
        // Ask every client once; keep those still waiting for their line.
        clients.retain_mut(|client| match step(client) {
            Ok((_, done)) => !done,
            Err(e) => {
                eprintln!("client: {e}");
                false
            }
        });
        // ... and round again at once: there is no way to know when to come back.
    }
}

/// Binds the address given as the first argument, non-blocking, and says where it listens
/// and how to watch it (`commands`: see common/watch.rs).
pub fn listen(commands: &[&str]) -> io::Result<TcpListener> {
    let addr = std::env::args().nth(1);
    let listener = TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:0"))?;
    listener.set_nonblocking(true)?;
    watch::say_listening(listener.local_addr()?, commands)?;
    Ok(listener)
}

pub fn welcome(stream: TcpStream, peer: SocketAddr) -> io::Result<Client> {
    // On Linux an accepted socket does not inherit the listener's non-blocking mode.
    stream.set_nonblocking(true)?;
    (&stream).write_all(format!("Welcome, {peer}\nPlease enter a string: ").as_bytes())?;
    let counter = LineCounter::default();
    Ok(Client { stream, counter })
}

/// Does one read (of at most 4096 bytes), if the socket has anything, and answers when the
/// line has ended. Returns how many bytes it read (0 for nothing yet, or EOF), and whether
/// the client is done.
pub fn step(client: &mut Client) -> io::Result<(usize, bool)> {
    let mut buf = [0; 4096];
    let n = match client.stream.read(&mut buf) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((0, false)),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok((0, false)),
        Err(e) => return Err(e),
    };
    let line_end = buf[..n].iter().position(|&b| b == b'\n');
    client.counter.push(&buf[..line_end.unwrap_or(n)]);
    if n > 0 && line_end.is_none() {
        return Ok((n, false));
    }
    let reply = format!("You entered {} characters.\n", client.counter.finish());
    client.stream.write_all(reply.as_bytes())?;
    Ok((n, true))
}
