//! Example 1 of 9: the blocking line-count server, one client at a time.
//!
//! Adds: the seed documents' line-count server in Rust's std. `TcpListener::bind` does their
//! four set-up steps in one call (socket, `SO_REUSEADDR`, bind, `listen` with a backlog of
//! 128; the daemon takes them one by one with socket2 in src/os/sockets.rs). `accept` waits for
//! a client; then blocking writes and reads: `Welcome, PEER`, one line, `You entered N
//! characters.`, and the close.
//!
//! Still wrong: one client at a time. While a client is connected and says nothing, the
//! server sits in `read` for it and never comes back to `accept`. The next client's connect
//! succeeds (the kernel completes it and keeps it in the listen backlog), but no welcome
//! comes until the first client is done:
//!
//! ```text
//! cargo run --example e1_blocking -- 127.0.0.1:51423
//! nc 127.0.0.1 51423      # terminal 2: the welcome; now type nothing
//! nc 127.0.0.1 51423      # terminal 3: connected, and silence
//! ```
//! Type a line in terminal 2 and terminal 3 gets its welcome at once. One slow or silent
//! client stops everyone. Next: e2_threads gives each client a thread of its own.
//!
//! Every example takes its listen address as its first argument (default `127.0.0.1:0`, any
//! free port), prints `listening on ADDR` with the real address as its first line, and then
//! the commands that watch it from another terminal (`cargo run --example clients` is in
//! clients.rs; `cargo run -- client ...` is the daemon's own client, `oneloop client` once
//! installed).

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};

use oneloop::proto::LineCounter;

#[path = "common/watch.rs"]
mod watch;

fn main() -> io::Result<()> {
    let listener = listen(&[
        "cargo run -q --example clients -- pair ADDR  # a silent client A, and B behind it",
        "nc HOST PORT  # or by hand: say nothing here,",
        "cargo run -q -- client count ADDR hello  # and this waits for its welcome",
    ])?;
    for stream in listener.incoming() {
        // An error belongs to one client (it reset, or went away mid-line): report it and go
        // on with the next. (The daemon also survives running out of descriptors, which
        // would make this loop spin: see src/server/accept.rs.)
        if let Err(e) = stream.and_then(serve) {
            eprintln!("client: {e}");
        }
    }
    Ok(())
}

/// Binds the address given as the first argument, says where it listens and how to watch
/// it (`commands`: see common/watch.rs).
pub fn listen(commands: &[&str]) -> io::Result<TcpListener> {
    let addr = std::env::args().nth(1);
    let listener = TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:0"))?;
    watch::say_listening(listener.local_addr()?, commands)?;
    Ok(listener)
}

/// The whole conversation with one client. Every call here may wait for as long as the
/// client likes.
pub fn serve(mut stream: TcpStream) -> io::Result<()> {
    let peer = stream.peer_addr()?;
    // Each message is formatted first and written whole: `write!` with arguments would make
    // one system call, and perhaps one TCP segment, for every piece of it.
    stream.write_all(format!("Welcome, {peer}\nPlease enter a string: ").as_bytes())?;
    let n = read_line_count(&mut stream)?;
    stream.write_all(format!("You entered {n} characters.\n").as_bytes())
    // Dropping the stream closes it. Input the client sent after its line is left unread,
    // and closing over unread input sends a reset: e7 shows what that does to the reply.
}

/// Reads up to the first LF (or EOF) and counts the line's characters. `LineCounter` is the
/// daemon's own rule (src/proto/count.rs): whitespace trimmed at both ends, UTF-8 read with
/// each invalid byte as one character. It counts as the bytes pass, so the line is never
/// stored and a long one costs no memory.
fn read_line_count(stream: &mut TcpStream) -> io::Result<u32> {
    let mut counter = LineCounter::default();
    let mut buf = [0; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        let line_end = buf[..n].iter().position(|&b| b == b'\n');
        counter.push(&buf[..line_end.unwrap_or(n)]);
        if n == 0 || line_end.is_some() {
            return Ok(counter.finish());
        }
    }
}
