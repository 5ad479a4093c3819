//! `RUST_LOG=trace` tells each connection's story in order, in words: the poll's sleeps and
//! wake-ups, every system call's outcome, every state change. One scenario per service and
//! per limit, through the binary.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;

use common::*;

fn spawn(args: &[&str]) -> (Proc, std::net::SocketAddr) {
    let mut p = Proc::spawn(args, "info,oneloop=trace");
    let addr = p.listening(1)[0];
    (p, addr)
}

#[test]
fn a_count_connection_from_accept_to_close() {
    let (mut p, addr) = spawn(&["--tcp", "count@127.0.0.1:0"]);
    p.wait_for("poll: sleeping, no deadline armed (timeout none)");
    assert_eq!(
        count_reply(addr, b"hello, world\n"),
        "You entered 12 characters.\n"
    );
    p.wait_in_order(&[
        "poll: woke with 1 event: listener tcp 127.0.0.1:",
        "accept -> conn 0 from 127.0.0.1:",
        "conn 0: write 48/48 bytes \"Welcome, 127.0.0.1:",
        "conn 0: registered with the poll, edge-triggered",
        "accept -> WouldBlock: the backlog is empty, back to the poll",
        "poll: sleeping until conn 0's deadline (timeout ",
        "conn 0 readable",
        "conn 0: read 13 bytes \"hello, world\\n\"",
        "conn 0: serving -> answered: the request is complete",
        "conn 0: write 27/27 bytes \"You entered 12 characters.\\n\" (MSG_MORE: the FIN rides along)",
        "conn 0: answered -> closed",
        "poll: sleeping, no deadline armed (timeout none)",
    ]);
    // The idle timeout (30 s) less the milliseconds since the accept.
    let timeout = p
        .seen
        .iter()
        .find_map(|l| l.split("conn 0's deadline (timeout ").nth(1))
        .and_then(|rest| rest.trim_end_matches(" s)").parse::<f64>().ok());
    assert!(
        timeout.is_some_and(|t| (29.0..=30.0).contains(&t)),
        "{timeout:?}"
    );
}

#[test]
fn a_line_in_pieces_and_the_lingering_close() {
    let (mut p, addr) = spawn(&["--tcp", "count@127.0.0.1:0", "--linger", "0.3"]);
    let mut s = count_client(addr);
    s.write_all(b"hel").unwrap();
    p.wait_for("conn 0: read 3 bytes \"hel\"");
    // The rest of the line and more after it, and no half-close: the daemon shuts down its
    // write side, drains what follows, and closes at the linger deadline.
    s.write_all(b"lo\nextra").unwrap();
    assert_eq!(read_to_end(&mut s), b"You entered 5 characters.\n");
    p.wait_in_order(&[
        "conn 0: read 8 bytes \"lo\\nextra\"",
        "conn 0: serving -> answered",
        "conn 0: shutdown(Write): the client reads EOF after the reply",
        "conn 0: answered -> lingering (our FIN sent): the reply is out",
        "poll: sleeping until conn 0's deadline",
        "conn 0: its deadline passed",
        "conn 0: lingering (our FIN sent) -> closed: linger deadline passed",
    ]);
}

#[test]
fn an_echo_client_that_never_reads_shows_backpressure_once() {
    let (mut p, addr) = spawn(&["--tcp", "echo@127.0.0.1:0", "--idle-timeout", "0.5"]);
    let mut hog = connect(addr);
    let chunk = vec![b'e'; 64 * 1024];
    // Write until the daemon closes the connection at its idle limit.
    while hog.write_all(&chunk).is_ok() {}
    p.wait_in_order(&[
        "conn 0: write -> WouldBlock",
        "nothing more is read until they are out (backpressure)",
        "conn 0: its deadline passed",
        "conn 0: serving -> closed: idle too long: closed, unsent output dropped",
    ]);
    let waits = p
        .seen
        .iter()
        .filter(|l| l.contains("write -> WouldBlock"))
        .count();
    assert!(
        waits <= 3,
        "{waits} WouldBlock lines: said at each event, not once"
    );
}

#[test]
fn a_count_deadline_and_its_message() {
    let (mut p, addr) = spawn(&["--tcp", "count@127.0.0.1:0", "--idle-timeout", "0.3"]);
    let mut s = count_client(addr);
    assert_eq!(read_to_end(&mut s), b"Error: timed out after 0.3 s\n");
    p.wait_in_order(&[
        // 0.3 s less the milliseconds since the accept.
        "poll: sleeping until conn 0's deadline (timeout 0.",
        "poll: woke with no event: the timeout passed",
        "conn 0: its deadline passed",
        "conn 0: serving -> timed out",
        "conn 0: write 29/29 bytes \"Error: timed out after 0.3 s\\n\"",
        "conn 0: timed out -> lingering (our FIN sent)",
    ]);
}

#[test]
fn the_busy_message() {
    let (mut p, addr) = spawn(&["--tcp", "count@127.0.0.1:0", "--max-connections", "1"]);
    let _held = count_client(addr);
    let mut refused = connect(addr);
    assert_eq!(
        read_to_end(&mut refused),
        b"Error: server busy (1 connections)\n"
    );
    p.wait_in_order(&[
        "accept -> conn 1 from",
        "conn 1: serving -> answered: busy",
        "conn 1: write 35/35 bytes \"Error: server busy (1 connections)\\n\"",
    ]);
}

#[test]
fn tcp_time_says_everything_at_once() {
    let (mut p, addr) = spawn(&["--tcp", "time@127.0.0.1:0"]);
    let mut s = connect(addr);
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut s).len(), 4);
    p.wait_in_order(&[
        "accept -> conn 0 from",
        "conn 0: serving -> answered: everything is said at once",
        "conn 0: write 4/4 bytes",
    ]);
}

#[test]
fn sigterm_with_a_request_in_flight() {
    let (mut p, addr) = spawn(&["--tcp", "count@127.0.0.1:0", "--shutdown-grace", "0.3"]);
    let mut s = count_client(addr);
    p.wait_for("conn 0: registered with the poll");
    p.signal(libc::SIGTERM);
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"Error: server shutting down\n");
    assert_eq!(p.wait_exit(), 0);
    p.wait_in_order(&[
        "poll: woke with 1 event: the signal pipe readable",
        "SIGTERM: no longer accepting; 1 connection(s) have 0.3 s to finish",
        "loop: serving -> draining: SIGTERM",
        "poll: sleeping until the end of the grace period",
        "loop: the end of the grace period has come",
        "conn 0: the grace period is over",
        "loop: draining -> stopping: the grace period is over",
    ]);
}

#[test]
fn udp_echo_and_time_datagrams() {
    let mut p = Proc::spawn(
        &["--udp", "echo@127.0.0.1:0", "--udp", "time@127.0.0.1:0"],
        "info,oneloop=trace",
    );
    let addrs = p.listening(2);
    let client = udp_client(addrs[0]);
    assert_eq!(udp_ask(&client, addrs[0], b"ping"), b"ping");
    assert_eq!(udp_ask(&client, addrs[1], b"").len(), 4);
    p.wait_in_order(&[
        "poll: woke with 1 event: socket udp 127.0.0.1:",
        "recvmmsg -> 1 datagram(s)",
        "4 bytes from 127.0.0.1:",
        "sendmmsg: 1 of 1 replies sent",
        "a short batch: it took all that was queued",
        "(time): recvmmsg -> 1 datagram(s)",
        "0 bytes from 127.0.0.1:",
        "sendmmsg: 1 of 1 replies sent",
    ]);
}
