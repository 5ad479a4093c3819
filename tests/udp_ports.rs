//! The loop guard's port rule on real sockets: a datagram from any source port below 1024 is
//! dropped (the reflectors and amplifiers live there), one from 1024 up is answered.
//!
//! Binding a port below 1024 needs root. Without it the test is skipped with a message,
//! except under CI (`CI=true`), where a skip would hide it: there it fails.

mod common;

use std::io::ErrorKind;
use std::net::UdpSocket;

use common::*;

#[test]
fn every_source_port_below_1024_is_dropped_and_1024_is_answered() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "binding ports below 1024 needs root, which CI must have"
        );
        eprintln!("skipped: binding ports below 1024 needs root");
        return;
    }
    let d = start(&["udp:echo@127.0.0.1:0", "udp:time@127.0.0.1:0"]);
    // 127.0.0.81 keeps clear of real services on the machine (a resolver on 127.0.0.53:53).
    let low = [1, 53, 67, 123, 161, 389, 1023];
    for port in low {
        let from = UdpSocket::bind(("127.0.0.81", port)).unwrap();
        from.set_nonblocking(true).unwrap();
        for n in 0..2 {
            from.send_to(b"ping", d.addr(n)).unwrap();
        }
        // Each socket's datagrams are taken in order: once a later one is answered on both,
        // the daemon has dealt with these, and an answer to them would be waiting.
        let ok = udp_client(d.addr(0));
        assert_eq!(udp_ask(&ok, d.addr(0), b"later"), b"later");
        assert_eq!(udp_ask(&ok, d.addr(1), b"").len(), 4);
        let mut buf = [0; 64];
        let got = from.recv_from(&mut buf);
        assert!(
            matches!(&got, Err(e) if e.kind() == ErrorKind::WouldBlock),
            "port {port}: {got:?}"
        );
    }
    let high = UdpSocket::bind(("127.0.0.81", 1024)).unwrap();
    high.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(udp_ask(&high, d.addr(0), b"from 1024"), b"from 1024");
    let summary = d.stop();
    assert_eq!(summary.dropped, 2 * low.len() as u64);
    assert_eq!(summary.answered, 2 * low.len() as u64 + 1);
}
