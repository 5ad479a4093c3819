//! Example 4b, beside e4: the same count server with a level-triggered `poll(2)`, by contrast.
//!
//! Adds nothing to e4; it changes the kind of readiness, to show what e4's rule is for. mio
//! (and so e4 and the daemon) registers every socket edge-triggered: an event says "this
//! socket *became* ready", once, so a handler must read until `WouldBlock`, or the bytes it
//! left are never reported again. `poll(2)`, called here through the `libc` crate, is
//! level-triggered: it reports a socket on every call for as long as it *is* ready. So this
//! server may do what e4 must not: one `accept` and one `read` (of at most 4096 bytes) per
//! event. It is e3's loop with `poll(2)` in front: e3's one-read `step` for each ready
//! client, and a sleep instead of asking every socket all the time. A line of 6000 bytes that arrives at
//! once takes two passes of the loop: the first read takes 4096 bytes, and the next `poll`
//! reports the socket again because 1904 bytes (and the LF) are still there. Standard error
//! shows each pass:
//!
//! ```text
//! poll: 1 of 2 descriptors ready: conn 0
//! conn 0: read 4096 bytes (one read per event: poll reports the socket again while more waits)
//! poll: 1 of 2 descriptors ready: conn 0
//! conn 0: read 1905 bytes (one read per event: poll reports the socket again while more waits)
//! ```
//! Run e4 with one read per event and the same line hangs: no second event comes
//! (docs/learn/exercises.md, exercise 4, breaks the daemon that way).
//!
//! What level-triggering costs instead: `poll(2)` keeps nothing between calls. Every pass
//! builds the whole list of descriptors again, and the kernel looks at each of them, ready or
//! not: work that grows with the number of connections, however few are active (epoll
//! registers each socket once, and returns only the ready ones). And a socket with room to
//! write is "ready" all the time: asking for `POLLOUT` while there is nothing to send would
//! make every `poll` return at once. This server writes its short replies with `write_all`
//! and never asks for it; e5 shows the daemon's way, WRITABLE only while output waits.
//!
//! Next: e5_echo_backpressure, back on mio.

use std::io;
use std::os::fd::AsRawFd;

#[path = "e3_busy_loop.rs"]
#[allow(dead_code)] // e3's own `main` is not used here
mod e3;

fn main() -> io::Result<()> {
    let listener = e3::listen(&[
        "cargo run -q --example clients -- trickle ADDR  # a line in pieces",
        "cargo run -q -- client count ADDR \"$(printf '%06000d' 0)\"  # a 6000-byte line",
    ])?;
    // Each client with its number in the trace (descriptors are used again; these are not).
    let mut clients: Vec<(usize, e3::Client)> = Vec::new();
    let mut accepted = 0;
    loop {
        // The listener first, then every client: the whole list, on every pass.
        let mut fds: Vec<libc::pollfd> = std::iter::once(listener.as_raw_fd())
            .chain(clients.iter().map(|(_, c)| c.stream.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        wait(&mut fds)?;
        let ready: Vec<bool> = fds.iter().map(|p| p.revents != 0).collect();
        let names: Vec<String> = clients
            .iter()
            .zip(&ready[1..])
            .filter(|(_, &r)| r)
            .map(|((n, _), _)| format!("conn {n}"))
            .chain(ready[0].then(|| "the listener".to_string()))
            .collect();
        let count = names.len();
        eprintln!(
            "poll: {count} of {} descriptors ready: {}",
            fds.len(),
            names.join(", ")
        );
        // One read for each ready client (e3's step); those that are done leave the list.
        let mut i = 0;
        clients.retain_mut(|(n, client)| {
            i += 1;
            !ready[i] || !serve_once(*n, client)
        });
        // One accept: if more connections wait, the next poll says so again.
        if ready[0] {
            match listener.accept() {
                Ok((stream, peer)) => match e3::welcome(stream, peer) {
                    Ok(client) => {
                        eprintln!("accept -> conn {accepted} from {peer}");
                        clients.push((accepted, client));
                        accepted += 1;
                    }
                    Err(e) => eprintln!("{peer}: {e}"),
                },
                // Ready, and yet nothing: the readiness was stale. Not an error.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => eprintln!("accept: {e}"),
            }
        }
    }
}

/// Sleeps in `poll(2)` until a descriptor of `fds` is ready. A signal that cuts the wait
/// short is no error: the loop goes round.
fn wait(fds: &mut [libc::pollfd]) -> io::Result<()> {
    let len = libc::nfds_t::try_from(fds.len()).map_err(io::Error::other)?;
    // SAFETY: `fds` is a valid, writable slice of `len` pollfd structures, borrowed for the
    // whole call; poll(2) writes only their `revents` fields. -1: no timeout.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), len, -1) };
    if ready < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
        fds.iter_mut().for_each(|p| p.revents = 0);
    }
    Ok(())
}

/// One read, as the event allows (e3's step), said on standard error. Returns whether the
/// client is done (answered, or failed).
fn serve_once(n: usize, client: &mut e3::Client) -> bool {
    match e3::step(client) {
        Ok((read, done)) => {
            eprintln!(
                "conn {n}: read {read} bytes (one read per event: poll reports the socket \
                 again while more waits)"
            );
            done
        }
        Err(e) => {
            eprintln!("conn {n}: {e}");
            true
        }
    }
}
