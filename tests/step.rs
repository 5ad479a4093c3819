//! `--step`: the real daemon pauses before each wait and after each wake, shows what the
//! loop holds, and waits for a line; nothing is served meanwhile. Driven through the binary,
//! with standard input a pipe and a pseudo-terminal.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Proc;

/// Enter, for the daemon's pause.
fn step(stdin: &mut impl Write) {
    stdin.write_all(b"\n").expect("write a step");
    stdin.flush().expect("flush");
}

/// Whether `s` gets nothing within a short wait (the loop is paused, so nothing can come).
fn gets_nothing(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 1];
    let quiet = matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    quiet
}

#[test]
fn each_step_waits_for_a_line_and_nothing_is_served_meanwhile() {
    let (mut p, mut stdin) = Proc::spawn_piped(&["--step", "--tcp", "count@127.0.0.1:0"], "info");
    let addr = p.listening(1)[0];
    p.wait_for("step: about to wait in the poll; 0 connection(s) open");
    p.wait_for("no deadline armed: the poll may sleep for ever");
    // The kernel completes the handshake and queues the line; the paused loop says nothing.
    let mut client = common::connect(addr);
    client.write_all(b"hello\n").unwrap();
    assert!(gets_nothing(&mut client), "served while paused");
    step(&mut stdin);
    p.wait_for_nth("step: woke with 1 event(s)", 1);
    p.wait_for("(count) readable: accept until WouldBlock");
    assert!(gets_nothing(&mut client), "served before the step");
    step(&mut stdin);
    // Accepted and greeted; its line waits for the poll to report it.
    p.wait_for_nth("step: about to wait in the poll; 1 connection(s) open", 1);
    p.wait_for("conn 0 (count): serving, deadline in");
    step(&mut stdin);
    p.wait_for("conn 0 readable: pump it (serving)");
    step(&mut stdin);
    let reply = common::read_to_end(&mut client);
    assert!(
        String::from_utf8_lossy(&reply).ends_with("You entered 5 characters.\n"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    // `c` runs freely: the next client is served with no step.
    stdin.write_all(b"c\n").unwrap();
    p.wait_for("step: running freely; type a line to step again");
    assert_eq!(
        common::count_reply(addr, b"abc\n"),
        "You entered 3 characters.\n"
    );
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
    p.wait_for("connections served 2");
}

#[test]
fn a_deadline_that_passed_while_paused_is_handled_at_the_next_step() {
    let (mut p, mut stdin) = Proc::spawn_piped(
        &[
            "--step",
            "--tcp",
            "count@127.0.0.1:0",
            "--idle-timeout",
            "0.2",
        ],
        "info",
    );
    let addr = p.listening(1)[0];
    p.wait_for("step: about to wait in the poll; 0 connection(s) open");
    let mut client = common::connect(addr);
    step(&mut stdin);
    p.wait_for("accept until WouldBlock");
    step(&mut stdin);
    p.wait_for("conn 0 (count): serving, deadline in");
    p.wait_for("nearest deadline: conn 0's deadline");
    // The lesson: the deadline passes while the loop is paused ...
    std::thread::sleep(Duration::from_millis(400));
    step(&mut stdin);
    // ... and the poll returns at once, the deadline late, handled now.
    p.wait_for("none: the timeout passed; what is due is handled now");
    step(&mut stdin);
    let reply = String::from_utf8_lossy(&common::read_to_end(&mut client)).into_owned();
    assert!(
        reply.ends_with("Error: timed out after 0.2 s\n"),
        "{reply:?}"
    );
    p.signal(libc::SIGTERM);
    // A signal during the pause ends the stepping: no further line is needed.
    assert_eq!(p.wait_exit(), 0);
    p.wait_for("timed out 1");
}

#[test]
fn sigint_during_a_pause_stops_the_daemon() {
    let (mut p, _stdin) = Proc::spawn_piped(&["--step", "--tcp", "count@127.0.0.1:0"], "info");
    p.listening(1);
    p.wait_for("step: about to wait in the poll");
    p.signal(libc::SIGINT);
    p.wait_for("--step: a signal came; the loop runs on to handle it: running freely");
    assert_eq!(p.wait_exit(), 0);
    p.wait_for("connections served 0");
}

#[test]
fn a_standard_input_that_is_no_terminal_or_pipe_runs_freely() {
    let mut p = Proc::spawn(&["--step", "--tcp", "count@127.0.0.1:0"], "info");
    let addr = p.listening(1)[0];
    p.wait_for("--step: standard input is neither a terminal nor a pipe: running freely");
    serves_freely(&mut p, addr);
}

/// A daemon that runs freely serves a client with no step, and stops on SIGTERM.
fn serves_freely(p: &mut Proc, addr: std::net::SocketAddr) {
    assert_eq!(
        common::count_reply(addr, b"hi\n"),
        "You entered 2 characters.\n"
    );
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
}

#[test]
fn the_end_of_standard_input_runs_freely() {
    let (mut p, stdin) = Proc::spawn_piped(&["--step", "--tcp", "count@127.0.0.1:0"], "info");
    let addr = p.listening(1)[0];
    p.wait_for("step: about to wait in the poll");
    drop(stdin);
    p.wait_for("--step: standard input ended: running freely");
    serves_freely(&mut p, addr);
}

#[test]
fn step_on_a_terminal_and_sigint_there() {
    let (mut master, slave) = pty();
    let mut p = Proc::spawn_cmd_stdin(
        Command::new(env!("CARGO_BIN_EXE_oneloop"))
            .args(["--step", "--tcp", "count@127.0.0.1:0"])
            .env("RUST_LOG", "info"),
        Stdio::from(slave),
    );
    let addr = p.listening(1)[0];
    p.wait_for("step: about to wait in the poll; 0 connection(s) open");
    let mut client = common::connect(addr);
    client.write_all(b"hey\n").unwrap();
    // A terminal in its usual (canonical) mode hands over a line at Enter.
    master.write_all(b"\n").unwrap();
    p.wait_for("accept until WouldBlock");
    master.write_all(b"\n").unwrap();
    p.wait_for("conn 0 (count): serving, deadline in");
    master.write_all(b"\n").unwrap();
    p.wait_for("conn 0 readable: pump it (serving)");
    master.write_all(b"\n").unwrap();
    let reply = String::from_utf8_lossy(&common::read_to_end(&mut client)).into_owned();
    assert!(reply.ends_with("You entered 3 characters.\n"), "{reply:?}");
    p.signal(libc::SIGINT);
    assert_eq!(p.wait_exit(), 0);
}

#[test]
fn step_cannot_share_standard_input() {
    for (other, said) in [
        (&["--console"][..], "--step cannot go with --console"),
        (
            &["--inetd", "tcp:count"][..],
            "--step cannot go with --inetd",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_oneloop"))
            .arg("--step")
            .args(other)
            .output()
            .expect("run oneloop");
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains(said));
    }
}

/// A pseudo-terminal: its master side for the test, its slave side for the daemon.
fn pty() -> (File, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors it opened; null name, termios and winsize.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both were just opened and are owned here alone.
    unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}
