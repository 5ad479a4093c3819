//! Example 6 of 9: deadlines, and the poll's timeout.
//!
//! Adds: time. The count server of e4 (its conversation is e4's `serve`, unchanged), where
//! each connection must send its line within the
//! idle timeout (the second argument, in seconds; 30 by default), counted from accept, so a
//! client that trickles a byte now and then cannot stretch it. When the deadline passes the
//! client gets `Error: timed out after N s` and is closed.
//!
//! No timer thread and no signal: the loop sleeps in `poll` for no longer than the time left
//! to the nearest deadline, and for ever (no timeout at all) when no deadline is armed, so an
//! idle server does not wake up to find nothing to do. After `poll` returns, the clock says
//! which deadlines have passed: `poll` returning is no proof that one did (it returns for
//! events too, and may wake early). Standard error shows each timeout the loop sleeps with.
//!
//! Here the nearest deadline is found by looking at every connection on each pass, which
//! costs a little per connection. The daemon's timeouts all have one length, so each new
//! deadline is the latest: src/server/timers.rs keeps them in order and finds the nearest at once.
//!
//! Watch it: a silent client beside a normal one; the silent one is told why and closed.
//! ```text
//! cargo run --example e6_deadlines -- 127.0.0.1:51423 3
//! cargo run -q --example clients -- pair 127.0.0.1:51423 --wait 5   # terminal 2
//! ```
//!
//! Still wrong: the reply (or the timeout message) is followed by a plain close. A client
//! that sent more than its line gets a reset, which can destroy the reply. e7_lingering_close.

use std::error::Error;
use std::io::Write;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use slab::Slab;

#[path = "e4_poll.rs"]
#[allow(dead_code)] // e4's own `main` is not used here
mod e4;

/// A connection of e4, and when its line must have come.
struct Timed {
    conn: e4::Conn,
    due: Instant,
}

fn main() -> Result<(), Box<dyn Error>> {
    let secs = std::env::args().nth(2).unwrap_or("30".into());
    // Checked for range: a deadline past what `Instant` can hold would panic.
    let idle = match secs.parse() {
        Ok(n @ 1..=86_400) => Duration::from_secs(n),
        _ => return Err(format!("the idle timeout is 1 to 86400 seconds, not {secs}").into()),
    };
    let mut poll = Poll::new()?;
    let pair = format!(
        "cargo run -q --example clients -- pair ADDR --wait {}  # A times out",
        idle.as_secs() + 2
    );
    let listener = e4::listen(&poll, &[&pair, "nc HOST PORT  # or say nothing, and wait"])?;
    let mut conns: Slab<Timed> = Slab::new();
    let mut events = Events::with_capacity(256);
    loop {
        let nearest = conns.iter().map(|(_, timed)| timed.due).min();
        let timeout = nearest.map(|due| due.saturating_duration_since(Instant::now()));
        match timeout {
            None => eprintln!("poll: no deadline armed, no timeout"),
            Some(t) => eprintln!("poll: timeout {} ms", t.as_millis()),
        }
        e4::wait(&mut poll, &mut events, timeout)?;
        for event in &events {
            let key = match event.token() {
                e4::LISTENER => {
                    let due = Instant::now() + idle;
                    let timed = |stream, peer| {
                        let conn = e4::welcome(stream, peer)?;
                        Ok(Timed { conn, due })
                    };
                    e4::accept_all(&listener, poll.registry(), &mut conns, timed);
                    continue;
                }
                Token(key) => key,
            };
            let Some(timed) = conns.get_mut(key) else {
                continue;
            };
            if e4::finished(key, e4::serve(&mut timed.conn)) {
                conns.remove(key);
            }
        }
        time_out(&mut conns, Instant::now(), idle);
    }
}

/// Says why to every connection whose deadline has passed, and closes it. A deadline must
/// move its connection on (here: out of the slab), or it would fire again at once.
fn time_out(conns: &mut Slab<Timed>, now: Instant, idle: Duration) {
    let late: Vec<usize> = conns
        .iter()
        .filter(|(_, timed)| timed.due <= now)
        .map(|(key, _)| key)
        .collect();
    for key in late {
        let mut timed = conns.remove(key);
        // The socket has room for one short line; if it had not, the client is gone anyway.
        let why = format!("Error: timed out after {} s\n", idle.as_secs());
        let _ = timed.conn.stream.write_all(why.as_bytes());
    }
}
