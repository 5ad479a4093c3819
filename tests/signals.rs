//! Signals other than SIGINT and SIGTERM never end the daemon or disturb a connection.

mod common;

use std::io::Write;

use common::*;

#[test]
fn sighup_sigusr1_and_sigusr2_leave_the_daemon_serving() {
    let mut p = Proc::spawn(&["--tcp", "count@127.0.0.1:0"], "info");
    let addr = p.listening(1)[0];
    let mut held = count_client(addr);
    assert_eq!(count_reply(addr, b"one\n"), "You entered 3 characters.\n");
    p.signal(libc::SIGHUP);
    p.wait_for("SIGHUP: no access file to read again");
    p.signal(libc::SIGUSR2);
    p.signal(libc::SIGUSR1);
    let line = p.wait_for("connections open");
    assert!(
        line.contains("connections served 2, refused 0, timed out 0")
            && line.ends_with("connections open 1"),
        "{line}"
    );
    // The connection held across the signals is answered as if nothing happened.
    held.write_all(b"held\n").unwrap();
    assert_eq!(read_to_end(&mut held), b"You entered 4 characters.\n");
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
    assert!(p.seen.iter().any(|l| l.contains("connections served 2")));
}

#[test]
fn sigterm_serves_the_connections_already_in_the_listen_backlog() {
    let mut p = Proc::spawn(&["--tcp", "count@127.0.0.1:0"], "info");
    let addr = p.listening(1)[0];
    // Stopped, the daemon accepts nothing: the kernel completes the handshakes and queues the
    // connections in the listen backlog. SIGTERM then finds them there.
    p.signal(libc::SIGSTOP);
    wait_until("the daemon to stop", || stat_fields(p.pid())[0] == "T");
    let mut queued: Vec<_> = (0..20).map(|_| connect(addr)).collect();
    for s in &mut queued {
        s.write_all(b"queued\n").unwrap();
    }
    p.signal(libc::SIGTERM);
    p.signal(libc::SIGCONT);
    for s in &mut queued {
        let reply = read_to_end(s);
        assert!(
            reply.ends_with(b"You entered 6 characters.\n"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
    }
    assert_eq!(p.wait_exit(), 0);
    assert!(p.seen.iter().any(|l| l.contains("connections served 20")));
}
