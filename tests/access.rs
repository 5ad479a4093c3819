//! Who may connect, and fair shares per source: `--allow`/`--deny`, `--max-per-source`,
//! `--max-rate` and `--udp-rate`, over real sockets. Sources are told apart by binding the
//! clients to 127.0.0.2, 127.0.0.3, ... (every 127.x.y.z is a distinct source) and ::1.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};

use common::*;
use oneloop::policy::access::Cidr;

/// Everything the daemon says to a count client from `from` that sends `line`.
fn count_from(from: &str, to: SocketAddr, line: &[u8]) -> String {
    let mut s = connect_from(from, to);
    // The write may fail once the daemon has closed a denied connection; what it said
    // (nothing, then) is what the test looks at.
    let _ = s.write_all(line);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

fn cidrs(list: &[&str]) -> Vec<Cidr> {
    list.iter().map(|c| Cidr::parse(c).unwrap()).collect()
}

#[test]
fn deny_wins_over_allow_and_a_denied_host_learns_nothing() {
    let d = start_with(&["tcp:count@127.0.0.1:0", "udp:echo@127.0.0.1:0"], |c| {
        c.allow = cidrs(&["127.0.0.0/24"]);
        c.deny = cidrs(&["127.0.0.3", "127.0.0.4/31"]);
    });
    let served = count_from("127.0.0.2", d.addr(0), b"hi\n");
    assert!(served.ends_with("You entered 2 characters.\n"), "{served}");
    for denied in ["127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.1.1"] {
        assert_eq!(count_from(denied, d.addr(0), b"hi\n"), "", "{denied}");
    }
    // UDP alike: a denied source gets no reply, an allowed one does.
    let denied = UdpSocket::bind("127.0.0.3:0").unwrap();
    denied.send_to(b"ping", d.addr(1)).unwrap();
    let allowed = UdpSocket::bind("127.0.0.2:0").unwrap();
    allowed.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(udp_ask(&allowed, d.addr(1), b"pong"), b"pong");
    assert!(udp_silent(&denied, std::time::Duration::from_millis(200)));
    let s = d.stop();
    assert_eq!((s.served, s.denied), (1, 4), "{s}");
    assert_eq!(
        (s.answered, s.datagrams_denied, s.dropped),
        (1, 1, 0),
        "{s}"
    );
}

#[test]
fn ipv4_mapped_sources_are_judged_as_ipv4() {
    let d = start_with(&["tcp:count@[::]:0"], |c| c.deny = cidrs(&["127.0.0.3"]));
    let port = d.addr(0).port();
    let v4: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(count_from("127.0.0.3", v4, b"x\n"), "");
    let served = count_from("127.0.0.2", v4, b"x\n");
    assert!(served.starts_with("Welcome, 127.0.0.2:"), "{served}");
    let v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    assert!(count_from("::1", v6, b"x\n").starts_with("Welcome, [::1]:"));
    assert_eq!(d.stop().denied, 1);
}

#[test]
fn one_source_at_its_limit_leaves_the_others_served() {
    let d = start_with(&["tcp:count@127.0.0.1:0"], |c| c.max_per_source = 2);
    let held: Vec<TcpStream> = (0..2)
        .map(|_| connect_from("127.0.0.2", d.addr(0)))
        .collect();
    for s in &held {
        let mut s = s;
        let mut welcome = [0u8; 9];
        s.read_exact(&mut welcome).unwrap();
    }
    assert_eq!(
        count_from("127.0.0.2", d.addr(0), b"x\n"),
        "Error: too many connections from your address (limit 2)\n"
    );
    let other = count_from("127.0.0.3", d.addr(0), b"x\n");
    assert!(other.ends_with("You entered 1 characters.\n"), "{other}");
    // A place comes free when a connection of that source closes.
    drop(held);
    wait_until("a place for 127.0.0.2 again", || {
        count_from("127.0.0.2", d.addr(0), b"x\n").ends_with("You entered 1 characters.\n")
    });
    let s = d.stop();
    assert!(s.limited >= 1, "{s}");
}

#[test]
fn new_connections_a_second_per_source_stop_at_the_burst() {
    let d = start_with(&["tcp:count@127.0.0.1:0"], |c| c.max_rate = 3);
    let replies: Vec<String> = (0..5)
        .map(|_| count_from("127.0.0.2", d.addr(0), b"x\n"))
        .collect();
    let served = replies
        .iter()
        .filter(|r| r.ends_with("characters.\n"))
        .count();
    let limited = replies
        .iter()
        .filter(|r| *r == "Error: too many new connections from your address\n")
        .count();
    // Three at once (the burst); the refill of 3 a second may let one more through.
    assert!(
        (3..=4).contains(&served) && served + limited == 5,
        "{replies:?}"
    );
    assert!(count_from("127.0.0.3", d.addr(0), b"x\n").ends_with("characters.\n"));
    assert_eq!(d.stop().limited, limited as u64);
}

#[test]
fn udp_replies_a_second_per_source_are_capped() {
    let d = start_with(&["udp:echo@127.0.0.1:0"], |c| c.udp_rate = 5);
    let flooder = UdpSocket::bind("127.0.0.2:0").unwrap();
    for i in 0..50u8 {
        flooder.send_to(&[i], d.addr(0)).unwrap();
    }
    // Another source is answered meanwhile (and, being answered after the flood, shows the
    // flood's datagrams have all been handled).
    let other = udp_client(d.addr(0));
    assert_eq!(udp_ask(&other, d.addr(0), b"me"), b"me");
    let s = d.stop();
    assert_eq!(s.answered + s.datagrams_limited, 51, "{s}");
    assert!((5..=7).contains(&(s.answered - 1)), "{s}");
}

#[test]
fn thousands_of_sources_leave_the_tables_bounded() {
    let mut p = Proc::spawn(
        &[
            "--tcp",
            "count@127.0.0.1:0",
            "--max-rate",
            "100",
            "--max-per-source",
            "4",
        ],
        "info,oneloop::tables=debug",
    );
    let addr = p.listening(1)[0];
    // 5,000 distinct sources, each connecting once and going away at once.
    for i in 0..5000u32 {
        let from = format!("127.1.{}.{}", i / 254, i % 254 + 1);
        drop(connect_from(&from, addr));
    }
    let mut held = count_client(addr);
    p.signal(libc::SIGUSR1);
    let line = p.wait_for("tables:");
    let n: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    // slots, deadlines, sources holding, rate entries, UDP rate entries
    assert!(n[3] <= 4096, "the rate table is capped: {line}");
    assert!(n[2] <= 1, "only live holders stay in the table: {line}");
    held.write_all(b"ok\n").unwrap();
    assert_eq!(read_to_end(&mut held), b"You entered 2 characters.\n");
}
