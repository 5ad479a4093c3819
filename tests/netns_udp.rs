//! UDP faults that only a network of its own can stage: destinations the kernel refuses, and
//! forged broadcast sources. Each test makes its network namespaces (and removes them, even
//! when it fails), runs the daemon binary inside one with `ip netns exec`, and sends only to
//! addresses in the namespaces it made.
//!
//! They need root and the `ip` command (and `iptables`, for the firewall rule). Without them
//! they are skipped with a message, except under CI (`CI=true`), where a skip would hide
//! them: there they fail.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

use common::netns::{can_stage, Link, Netns};
use common::*;

/// Sends SIGTERM and waits for the summary line, which must be `want`.
fn stop_expecting(p: &mut Proc, want: &str) {
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0, "stderr:\n{}", p.seen.join("\n"));
    p.wait_for(want);
}

#[test]
fn a_refused_destination_costs_the_other_senders_nothing() {
    let tools = [("ip", "-V"), ("iptables", "--version")];
    if !can_stage(
        "a_refused_destination_costs_the_other_senders_nothing",
        &tools,
    ) {
        return;
    }
    let ns = Netns::new("refused");
    // The kernel refuses to send to 127.0.0.9 (EPERM): a firewall rule, as a spoofed or
    // blocked source would meet.
    ns.sh("iptables -A OUTPUT -p udp -d 127.0.0.9 -j DROP");
    let (mut p, addrs) = ns.daemon(&["--udp", "echo@127.0.0.1:0"]);
    let to = addrs[0];
    let (blocked, honest) = ns.enter(|| {
        let blocked = UdpSocket::bind("127.0.0.9:0").unwrap();
        let honest: Vec<UdpSocket> = (10..25)
            .map(|last| UdpSocket::bind((Ipv4Addr::new(127, 0, 0, last), 0)).unwrap())
            .collect();
        (blocked, honest)
    });
    // Every datagram waits while the daemon is stopped, so each batch it reads holds the
    // blocked sender's datagram first and fifteen honest ones after it.
    const ROUNDS: usize = 6;
    p.signal(libc::SIGSTOP);
    wait_until("the daemon to stop", || stat_fields(p.pid())[0] == "T");
    for round in 0..ROUNDS {
        blocked
            .send_to(format!("blocked {round}").as_bytes(), to)
            .unwrap();
        for (i, s) in honest.iter().enumerate() {
            s.send_to(format!("honest {i} {round}").as_bytes(), to)
                .unwrap();
        }
    }
    p.signal(libc::SIGCONT);
    let mut buf = [0u8; 64];
    for (i, s) in honest.iter().enumerate() {
        s.set_read_timeout(Some(WAIT)).unwrap();
        for round in 0..ROUNDS {
            let got = s
                .recv_from(&mut buf)
                .map(|(n, from)| (buf[..n].to_vec(), from));
            let want = (format!("honest {i} {round}").into_bytes(), to);
            assert_eq!(got.ok(), Some(want), "honest sender {i}, round {round}");
        }
    }
    let honest_sent = ROUNDS * honest.len();
    stop_expecting(
        &mut p,
        &format!("datagrams answered {honest_sent}, dropped {ROUNDS}"),
    );
}

/// A UDP datagram with a forged source, as raw IPv4 (checksums: the kernel fills in the IP
/// header's; the UDP one is left out, as IPv4 allows).
fn forged_datagram(from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut p = vec![
        0x45,
        0,
        0,
        0,
        0,
        0,
        0x40,
        0,
        64,
        libc::IPPROTO_UDP as u8,
        0,
        0,
    ];
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&from.ip().octets());
    p.extend_from_slice(&to.ip().octets());
    p.extend_from_slice(&from.port().to_be_bytes());
    p.extend_from_slice(&to.port().to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

#[test]
fn a_datagram_from_a_subnet_broadcast_address_is_dropped_and_counted() {
    let test = "a_datagram_from_a_subnet_broadcast_address_is_dropped_and_counted";
    if !can_stage(test, &[("ip", "-V")]) {
        return;
    }
    // The daemon's side, 10.77.0.1/24, and a peer, 10.77.0.2/24, joined by a veth pair.
    let link = Link::new("brd");
    let (server, peer) = (&link.server, &link.peer);
    // Let the forged source in: no reverse-path filter in the daemon's namespace.
    for conf in ["all", "default", link.server_dev.as_str()] {
        let knob = format!("/proc/sys/net/ipv4/conf/{conf}/rp_filter");
        server.exec(&["sh", "-c", &format!("echo 0 > {knob}")]);
    }

    let (mut p, addrs) = server.daemon(&["--udp", "echo@10.77.0.1:0"]);
    let SocketAddr::V4(to) = addrs[0] else {
        panic!("an IPv4 address: {}", addrs[0]);
    };
    let (raw, listener) = peer.enter(|| {
        let raw = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(libc::IPPROTO_RAW)),
        )
        .expect("raw socket");
        // Gets what is sent to port 40000 on the peer, broadcasts to its subnet included.
        let listener = UdpSocket::bind("0.0.0.0:40000").unwrap();
        listener.set_broadcast(true).unwrap();
        (raw, listener)
    });
    // An honest exchange first: the peer's neighbour discovery holds it until it is done,
    // so the forged datagram after it goes straight out.
    listener.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 64];
    for ask in [&b"honest"[..], b"again"] {
        listener.send_to(ask, to).unwrap();
        let (n, from) = listener.recv_from(&mut buf).expect("an answer to the peer");
        assert_eq!((&buf[..n], from), (ask, SocketAddr::V4(to)));
    }
    let forged_from = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 255), 40000);
    let packet = forged_datagram(forged_from, to, b"forged");
    let dest = socket2::SockAddr::from(SocketAddr::V4(to));
    assert_eq!(raw.send_to(&packet, &dest).unwrap(), packet.len());
    p.wait_for(&format!(
        "dropped datagram from {forged_from}: broadcast source address"
    ));
    // Nothing went back for it: the answer to the next datagram is the first to arrive.
    listener.send_to(b"after", to).unwrap();
    let (n, _) = listener.recv_from(&mut buf).expect("the answer after");
    assert_eq!(&buf[..n], b"after", "the first datagram back");
    stop_expecting(&mut p, "datagrams answered 3, dropped 1");
}
