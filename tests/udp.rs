//! UDP `echo` and `time`, and the loop and reflection protection of every UDP service.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
use oneloop::proto::Epoch;

#[test]
fn udp_echo_returns_datagrams_up_to_65507_bytes_whole() {
    let d = start(&["udp:echo@127.0.0.1:0"]);
    let s = udp_client(d.addr(0));
    for size in [1, 100, 1472, 1473, 9000, 65_507] {
        let msg: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        assert!(udp_ask(&s, d.addr(0), &msg) == msg, "size {size}");
    }
}

#[test]
fn udp_echo_ignores_an_empty_datagram() {
    let d = start(&["udp:echo@127.0.0.1:0"]);
    let s = udp_client(d.addr(0));
    s.send_to(b"", d.addr(0)).unwrap();
    // The next datagram's answer is the first thing that arrives.
    assert_eq!(udp_ask(&s, d.addr(0), b"after"), b"after");
    let summary = d.stop();
    assert_eq!(summary.dropped, 1);
    assert!(summary.answered >= 1);
}

#[test]
fn udp_echo_over_ipv6() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    }
    let d = start(&["udp:echo@[::1]:0"]);
    let s = udp_client(d.addr(0));
    assert_eq!(udp_ask(&s, d.addr(0), b"six"), b"six");
}

/// A UDP time service's answer to `ask`.
fn udp_time(epoch: Epoch, ask: &[u8]) -> Vec<u8> {
    let d = start_with(&["udp:time@127.0.0.1:0"], |c| c.time_epoch = epoch);
    let s = udp_client(d.addr(0));
    udp_ask(&s, d.addr(0), ask)
}

#[test]
fn udp_time_answers_an_empty_datagram_with_unix_time() {
    assert_time_is_now(udp_time(Epoch::Unix, b""), Epoch::Unix);
}

#[test]
fn udp_time_answers_any_datagram_in_the_1900_epoch() {
    let reply = udp_time(Epoch::Rfc868, b"what time is it?");
    assert_time_is_now(reply, Epoch::Rfc868);
}

/// Sends from `from` to the daemon's UDP echo and reports whether an answer came.
fn answered_from(from: &UdpSocket, to: SocketAddr) -> bool {
    from.send_to(b"ping", to).unwrap();
    !udp_silent(from, Duration::from_millis(300))
}

#[test]
fn a_datagram_from_one_of_our_own_ports_is_dropped() {
    let d = start(&["udp:echo@127.0.0.1:0", "udp:time@127.0.0.1:0"]);
    // The same port numbers on another loopback address: to the daemon, a datagram from
    // an echo-style service like itself.
    for n in 0..2 {
        let port = d.addr(n).port();
        let mirror = UdpSocket::bind(("127.0.0.2", port)).unwrap();
        assert!(!answered_from(&mirror, d.addr(0)), "from our port {port}");
    }
    // An ordinary sender is answered; the drops were counted.
    let ok = udp_client(d.addr(0));
    assert!(answered_from(&ok, d.addr(0)));
    let summary = d.stop();
    assert_eq!(summary.dropped, 2);
    assert_eq!(summary.answered, 1);
}

#[test]
fn a_datagram_from_a_reflecting_service_port_is_dropped() {
    let d = start(&["udp:echo@127.0.0.1:0", "udp:time@127.0.0.1:0"]);
    let mut tried = 0;
    for port in [7, 9, 13, 19, 37] {
        // Binding a port below 1024 needs privilege; loopback 127.0.0.3 keeps clear of any
        // real service on the machine.
        let Ok(reflector) = UdpSocket::bind(("127.0.0.3", port)) else {
            continue;
        };
        tried += 1;
        for n in 0..2 {
            assert!(!answered_from(&reflector, d.addr(n)), "from port {port}");
        }
    }
    if tried == 0 {
        eprintln!("cannot bind ports below 1024 here: only the unit tests cover them");
        return;
    }
    assert_eq!(d.stop().dropped, 2 * tried);
}

#[test]
fn the_daemon_goes_on_answering_after_drops() {
    let d = start(&["udp:echo@127.0.0.1:0"]);
    let mirror = UdpSocket::bind(("127.0.0.2", d.addr(0).port())).unwrap();
    for _ in 0..100 {
        mirror.send_to(b"storm", d.addr(0)).unwrap();
    }
    let s = udp_client(d.addr(0));
    assert_eq!(udp_ask(&s, d.addr(0), b"still here"), b"still here");
    assert!(udp_silent(&mirror, Duration::from_millis(200)));
}

#[test]
fn no_other_socket_can_bind_the_daemons_udp_address() {
    let d = start(&["udp:echo@127.0.0.1:0"]);
    // SO_REUSEADDR on both sockets would let this one share the address and take datagrams.
    let thief = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    thief.set_reuse_address(true).unwrap();
    let err = thief.bind(&d.addr(0).into()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE), "{err}");
    let s = udp_client(d.addr(0));
    assert_eq!(udp_ask(&s, d.addr(0), b"mine"), b"mine");
}

#[test]
fn reuseport_still_shares_a_udp_port_between_daemons() {
    let reuse_port = |c: &mut oneloop::Config| c.sockets.reuse_port = true;
    let first = start_with(&["udp:echo@127.0.0.1:0"], reuse_port);
    let second = start_with(&[&format!("udp:echo@{}", first.addr(0))], reuse_port);
    assert_eq!(second.addr(0), first.addr(0));
    let s = udp_client(first.addr(0));
    assert_eq!(udp_ask(&s, first.addr(0), b"shared"), b"shared");
}
