//! The UDP drop log stays bounded whatever the number of sources, through the binary (the
//! log is the daemon's stderr). Kept apart from tests/udp.rs, whose in-process tests also run
//! under qemu for aarch64, where a spawned binary cannot start.

mod common;

use std::net::{Ipv4Addr, UdpSocket};

use common::*;

#[test]
fn drops_from_rotating_sources_log_a_bounded_number_of_lines() {
    let mut p = Proc::spawn(&["--udp", "echo@127.0.0.1:0"], "info");
    let to = p.listening(1)[0];
    let ok = udp_client(to);
    const SOURCES: u32 = 3000;
    let first = u32::from(Ipv4Addr::new(127, 1, 0, 1));
    for n in 0..SOURCES {
        // A new loopback address each time, sending from the daemon's own port.
        let s = UdpSocket::bind((Ipv4Addr::from(first + n), to.port())).unwrap();
        s.send_to(b"loop?", to).unwrap();
        if n % 100 == 99 {
            // Paced so the socket's buffer never overflows: the daemon answers in order, so
            // it has taken every datagram sent before this one.
            assert_eq!(udp_ask(&ok, to, b"paced"), b"paced");
        }
    }
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0, "stderr:\n{}", p.seen.join("\n"));
    p.wait_for(&format!("dropped {SOURCES}"));
    let logged = p
        .seen
        .iter()
        .filter(|l| l.contains("dropped datagram from"))
        .count() as u64;
    let held_back: Vec<u64> = p
        .seen
        .iter()
        .filter_map(|l| {
            l.split_once("dropped datagrams from ")?
                .1
                .split_once(" more new source")
        })
        .map(|(n, _)| n.parse().expect("a count of sources"))
        .collect();
    // Ten lines a window at most, and one line for what each window held back (a window is
    // a minute: this run takes one, unless the machine is very slow).
    assert!(!held_back.is_empty(), "no line for the drops held back");
    assert!(
        logged <= 10 * (held_back.len() as u64 + 1),
        "{logged} drop lines at info"
    );
    assert_eq!(logged + held_back.iter().sum::<u64>(), u64::from(SOURCES));
}
