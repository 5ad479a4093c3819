//! A burst of connects against the built binary with its default listen backlog, in a network
//! namespace of the test's own (so the kernel's counters are the test's alone): the listener's
//! backlog is the namespace's `net.core.somaxconn` as `ss` reports it, and 10,000 connects
//! made at once are all queued, none dropped (`ListenOverflows` in `/proc/net/netstat` does not
//! move), and all welcomed. And on this machine's own network: the backlog in use is logged at
//! `debug`, and a `--backlog` larger than `net.core.somaxconn` is warned of.
//!
//! The burst needs root, `ip` and `ss` (iproute2). Without them it is skipped with a message, except
//! under CI (`CI=true`), where a skip would hide it: there it fails.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};

use common::netns::{can_stage, Netns};
use common::*;
use socket2::{Domain, Socket, Type};

/// The connects of the burst, spread over this many loopback sources (127.0.0.1, .2, ...).
const CONNECTS: usize = 10_000;
const SOURCES: usize = 4;

/// The namespace's `net.core.somaxconn`: above the burst, and unlike any default (128, 4096),
/// so the backlog `ss` shows can only have come from it.
const SOMAXCONN: usize = 16_384;

/// `ListenOverflows` of the `TcpExt` lines of `/proc/net/netstat` inside `ns`.
fn listen_overflows(ns: &Netns) -> u64 {
    let text = ns.exec(&["cat", "/proc/net/netstat"]);
    let mut tcp_ext = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (tcp_ext.next().unwrap(), tcp_ext.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|name| name == "ListenOverflows")
        .expect("ListenOverflows in TcpExt");
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

/// The backlog `ss` shows for the listener at `addr` inside `ns` (Send-Q of a LISTEN socket).
fn listen_backlog(ns: &Netns, addr: SocketAddr) -> usize {
    let table = ns.exec(&["ss", "-ltnH"]);
    let line = table
        .lines()
        .find(|l| l.split_whitespace().nth(3) == Some(&addr.to_string()))
        .unwrap_or_else(|| panic!("no listener {addr} in\n{table}"));
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// `CONNECTS` non-blocking connects to `to`, one right after the other, from `SOURCES`
/// loopback addresses; the connections, still being made.
fn connect_all(to: SocketAddr) -> Vec<TcpStream> {
    (0..CONNECTS)
        .map(|i| {
            let from = Ipv4Addr::new(127, 0, 0, 1 + (i % SOURCES) as u8);
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
            s.set_nonblocking(true).unwrap();
            s.bind(&SocketAddr::from((from, 0)).into())
                .expect("bind a source");
            match s.connect(&to.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => panic!("connect {i}: {e}"),
            }
            s.into()
        })
        .collect()
}

#[test]
fn ten_thousand_connects_at_once_are_queued_not_dropped() {
    let test = "ten_thousand_connects_at_once_are_queued_not_dropped";
    if !can_stage(test, &[("ip", "-V"), ("ss", "-V")]) {
        return;
    }
    let limit = oneloop::os::sockets::raise_fd_limit().expect("the open-file limit");
    assert!(limit as usize > CONNECTS + 100, "open-file limit {limit}");
    let ns = Netns::new("burst");
    ns.exec(&[
        "sh",
        "-c",
        &format!("echo {SOMAXCONN} > /proc/sys/net/core/somaxconn"),
    ]);
    let (mut p, addrs) = ns.daemon(&["--tcp", "count@127.0.0.1:0", "--max-connections", "20000"]);
    let to = addrs[0];
    assert_eq!(listen_backlog(&ns, to), SOMAXCONN);
    let overflows = listen_overflows(&ns);

    let mut burst = ns.enter(|| connect_all(to));
    for (i, s) in burst.iter_mut().enumerate() {
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let welcome = welcome_for(s);
        assert_eq!(read_exact(s, welcome.len()), welcome, "connection {i}");
    }
    assert_eq!(
        listen_overflows(&ns),
        overflows,
        "connections were dropped from the accept queue"
    );
    drop(burst);
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
}

#[test]
fn the_default_backlog_is_logged_and_a_larger_one_is_warned_of() {
    let max: i64 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut p = Proc::spawn(&["--tcp", "count@127.0.0.1:0"], "debug");
    p.wait_for(&format!("listen backlog {max} (net.core.somaxconn)"));
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
    if max >= 65535 {
        return eprintln!("net.core.somaxconn is {max}: no --backlog is larger");
    }
    let mut p = Proc::spawn(
        &["--tcp", "count@127.0.0.1:0", "--backlog", "65535"],
        "info",
    );
    let warning = p.wait_for("--backlog 65535");
    assert!(
        warning.contains(&format!(
            "WARN  --backlog 65535 is more than net.core.somaxconn {max}: the kernel uses {max}"
        )),
        "{warning}"
    );
    p.listening(1);
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
}
