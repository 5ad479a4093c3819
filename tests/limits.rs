//! The connection limit, resets and vanishing clients over real sockets.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// Connects until the daemon says welcome rather than busy (bounded): slots free up when the
/// daemon has seen the other connections close, which the client cannot observe directly.
fn eventually_welcomed(addr: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut s = connect(addr);
        let want = welcome_for(&s);
        let got = read_exact(&mut s, 9);
        if got == want[..9] {
            assert_eq!(read_exact(&mut s, want.len() - 9), want[9..]);
            return s;
        }
        assert!(Instant::now() < deadline, "never welcomed again");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn over_the_limit_a_client_is_told_busy_and_the_held_ones_keep_working() {
    let d = start_with(&["tcp:count@127.0.0.1:0"], |c| c.max_connections = 3);
    let mut held: Vec<TcpStream> = (0..3).map(|_| count_client(d.addr(0))).collect();
    for _ in 0..5 {
        let mut refused = connect(d.addr(0));
        assert_eq!(
            String::from_utf8(read_to_end(&mut refused)).unwrap(),
            "Error: server busy (3 connections)\n"
        );
    }
    for (i, s) in held.iter_mut().enumerate() {
        s.write_all(format!("{}\n", "y".repeat(i)).as_bytes())
            .unwrap();
        assert_eq!(
            String::from_utf8(read_to_end(s)).unwrap(),
            format!("You entered {i} characters.\n")
        );
    }
    drop(held);
    let mut again = eventually_welcomed(d.addr(0));
    again.write_all(b"back\n").unwrap();
    assert_eq!(read_to_end(&mut again), b"You entered 4 characters.\n");
    let summary = d.stop();
    assert_eq!(summary.refused, 5);
}

#[test]
fn refused_connections_do_not_count_toward_the_limit() {
    let d = start_with(&["tcp:count@127.0.0.1:0"], |c| c.max_connections = 1);
    let mut held = count_client(d.addr(0));
    // Refused clients that never read their message (so they linger in the daemon).
    let refused: Vec<TcpStream> = (0..20).map(|_| connect(d.addr(0))).collect();
    held.write_all(b"z\n").unwrap();
    assert_eq!(read_to_end(&mut held), b"You entered 1 characters.\n");
    drop(held);
    eventually_welcomed(d.addr(0));
    drop(refused);
}

#[test]
fn reset_clients_free_their_slots_at_once() {
    let d = start_with(&["tcp:count@127.0.0.1:0", "tcp:echo@127.0.0.1:0"], |c| {
        c.max_connections = 2
    });
    for _ in 0..5 {
        // The last round's clients may still hold their slots for a moment.
        let a = eventually_welcomed(d.addr(0));
        let mut b = connect(d.addr(1));
        b.write_all(b"half an echo").unwrap();
        reset(a);
        reset(b);
        // Both slots come back: two clients are welcomed.
        let x = eventually_welcomed(d.addr(0));
        let y = eventually_welcomed(d.addr(0));
        drop((x, y));
    }
}

#[test]
fn clients_that_vanish_without_reading_free_their_slots() {
    let d = start_with(&["tcp:count@127.0.0.1:0"], |c| c.max_connections = 2);
    for _ in 0..20 {
        // Connect and close at once, the welcome unread (the client's kernel resets).
        drop(connect(d.addr(0)));
    }
    let a = eventually_welcomed(d.addr(0));
    let mut b = eventually_welcomed(d.addr(0));
    b.write_all(b"still fine\n").unwrap();
    assert_eq!(read_to_end(&mut b), b"You entered 10 characters.\n");
    drop(a);
}

#[test]
fn a_reset_in_the_middle_of_an_echo_stream_harms_no_one_else() {
    let d = start(&["tcp:echo@127.0.0.1:0"]);
    let mut other = connect(d.addr(0));
    for _ in 0..20 {
        let mut s = connect(d.addr(0));
        s.write_all(&[b'e'; 100_000]).unwrap();
        reset(s);
    }
    other.write_all(b"ping").unwrap();
    assert_eq!(read_exact(&mut other, 4), b"ping");
}
