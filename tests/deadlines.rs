//! Deadlines always move a connection forward: a client that stops reading, with output the
//! daemon could not send, is closed at its deadline, counted once, and holds up no one else.

mod common;

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

/// Writes to `s` until the daemon closes the connection (the write fails: a reset, since
/// the daemon closes with input unread) and returns how much went in. Every write is bounded
/// by the socket's write timeout, so a daemon that never closes fails the test.
fn write_until_closed(s: &mut TcpStream) -> usize {
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    loop {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the daemon kept the stuck connection open ({sent} bytes in)")
            }
            Err(_) => return sent,
        }
    }
}

/// A client that sends without reading fills both directions' buffers; the daemon then holds
/// output it cannot send. At the deadline the connection must close (dropping that output).
fn a_stuck_client_is_closed_at_its_deadline(service: &str) {
    let d = start_with(
        &[
            &format!("tcp:{service}@127.0.0.1:0"),
            "tcp:count@127.0.0.1:0",
        ],
        |c| c.idle_timeout = Duration::from_millis(300),
    );
    let mut hog = connect(d.addr(0));
    let sent = write_until_closed(&mut hog);
    assert!(sent > 64 * 1024, "the buffers filled first ({sent} bytes)");
    // The loop is not wedged: others are served after the deadline.
    assert_eq!(
        count_reply(d.addr(1), b"still there\n"),
        "You entered 11 characters.\n"
    );
    let summary = d.stop();
    assert_eq!(summary.timed_out, 1, "{summary}");
    assert_eq!(summary.served, 2, "{summary}");
}

#[test]
fn a_stuck_echo_client_is_closed_at_its_deadline() {
    a_stuck_client_is_closed_at_its_deadline("echo");
}

#[test]
fn a_stuck_ack_client_is_closed_at_its_deadline() {
    a_stuck_client_is_closed_at_its_deadline("ack");
}

#[test]
fn many_stuck_clients_time_out_once_each() {
    let d = start_with(&["tcp:echo@127.0.0.1:0"], |c| {
        c.idle_timeout = Duration::from_millis(300);
        c.max_output = 4096;
    });
    let mut hogs: Vec<TcpStream> = (0..20).map(|_| connect(d.addr(0))).collect();
    for hog in &mut hogs {
        write_until_closed(hog);
    }
    assert_eq!(d.stop().timed_out, 20);
}

#[test]
fn sigterm_ends_the_daemon_while_a_client_is_stuck() {
    let mut p = Proc::spawn(
        &[
            "--tcp",
            "echo@127.0.0.1:0",
            "--idle-timeout",
            "0.3",
            "--shutdown-grace",
            "1",
        ],
        "info",
    );
    let addr = p.listening(1)[0];
    // One stuck client past its deadline, and one inside it when the signal comes; that one
    // goes quiet during the grace period and times out in it.
    let mut past = connect(addr);
    write_until_closed(&mut past);
    let mut inside = connect(addr);
    inside.write_all(b"abc").unwrap();
    assert_eq!(read_exact(&mut inside, 3), b"abc");
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
    let summary = p.wait_for("connections served");
    assert!(summary.contains("served 2"), "{summary}");
    assert!(summary.contains("timed out 2"), "{summary}");
}
