//! Memory follows what is open now, not what has passed: finished connections leave nothing
//! behind in the daemon's tables, and a peak of connections is given back after it.
//! The daemon reports its table sizes on SIGUSR1 at debug level (log target
//! `oneloop::tables`), so these tests count entries instead of measuring RSS.

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::*;

/// Asks for the table sizes and returns (connection slots, deadlines armed).
fn tables(p: &mut Proc) -> (usize, usize) {
    let before = p.seen.iter().filter(|l| l.contains("tables:")).count();
    p.signal(libc::SIGUSR1);
    let line = p.wait_for_nth("tables:", before + 1);
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

fn spawn() -> (Proc, std::net::SocketAddr) {
    let mut p = Proc::spawn(
        &["--tcp", "count@127.0.0.1:0", "--idle-timeout", "60"],
        "info,oneloop::tables=debug",
    );
    let addr = p.listening(1)[0];
    (p, addr)
}

#[test]
fn finished_connections_leave_no_deadline_behind() {
    let (mut p, addr) = spawn();
    let mut held = count_client(addr);
    // Thousands of connections come and go while one stays open; each had a deadline a
    // minute away when it finished.
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..500 {
                    assert_eq!(count_reply(addr, b"x\n"), "You entered 1 characters.\n");
                }
            });
        }
    });
    let (_, deadlines) = tables(&mut p);
    assert_eq!(deadlines, 1, "only the held connection has a deadline");
    held.write_all(b"held\n").unwrap();
    assert_eq!(read_to_end(&mut held), b"You entered 4 characters.\n");
}

#[test]
fn a_peak_of_connections_is_given_back() {
    let (mut p, addr) = spawn();
    let mut held = count_client(addr);
    let peak: Vec<TcpStream> = (0..3000).map(|_| count_client(addr)).collect();
    let (slots, deadlines) = tables(&mut p);
    assert!(slots >= 3001, "{slots} slots at the peak");
    assert_eq!(deadlines, 3001);
    for mut s in peak {
        s.write_all(b"\n").unwrap();
        assert_eq!(read_to_end(&mut s), b"You entered 0 characters.\n");
    }
    // The last replies were read, but the daemon may not have closed their sockets yet: the
    // table shrinks once the connections are gone, so ask until it has.
    wait_until("the slots to be given back", || tables(&mut p).0 < 300);
    assert_eq!(tables(&mut p).1, 1);
    held.write_all(b"held\n").unwrap();
    assert_eq!(read_to_end(&mut held), b"You entered 4 characters.\n");
}
