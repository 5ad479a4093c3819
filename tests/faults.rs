//! Faults at scale, through the daemon binary: lossy links, peers that vanish, a stop with
//! hundreds of requests in flight, too few descriptors, reset storms, thousands of slow
//! clients and clients that never read. Each scenario asserts what every client gets, the
//! summary line's counters, that the daemon's descriptors return to where they started, and
//! that the loop never spun: a spinning loop is always running or waiting to run, so the
//! daemon's time doing either (`/proc/PID/schedstat`) over a scenario must stay under half of
//! the wall time (a wide margin on a busy machine).
//!
//! The scenarios that need a network of their own (loss, a link that goes down) run the
//! daemon in a network namespace (`tests/common/netns.rs`): they need root, `ip` and
//! `iptables`, and are skipped without them except under CI. The others run on loopback.
//! docs/reliability.md lists the scenarios and their sizes.

mod common;

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use oneloop::server::counters::Counters;

use common::netns::{can_stage, Link, Netns};
use common::*;

/// Raises this process's soft open-file limit to its hard limit, which must allow `needed`:
/// the big scenarios hold thousands of client sockets.
fn allow_open_files(needed: u64) {
    let limit = oneloop::os::sockets::raise_fd_limit().expect("raise RLIMIT_NOFILE");
    assert!(
        limit >= needed,
        "the open-file limit is {limit}, {needed} are needed"
    );
}

/// The descriptors a process has open now numbered below `limit`: with `RLIMIT_NOFILE` at
/// `limit`, the ones it can have made (it may have inherited others above).
fn descriptors_below(pid: i32, limit: usize) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .filter(|e| {
            let name = e.as_ref().expect("an fd entry").file_name();
            name.to_str()
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n < limit)
        })
        .count()
}

/// Waits (bounded) until the daemon holds `base` descriptors again.
fn wait_descriptors(pid: i32, base: usize) {
    wait_until(
        &format!("the daemon's descriptors to return to {base}"),
        || open_descriptors(pid) == base,
    );
}

/// `oneloop ARGS` (one service, on loopback), logging at `info`: the process, the service's
/// address and the descriptors the daemon holds with no client.
fn loopback_daemon(args: &[&str]) -> (Proc, SocketAddr, usize) {
    let mut p = Proc::spawn(args, "info");
    let addr = p.listening(1)[0];
    let base = open_descriptors(p.pid());
    (p, addr, base)
}

/// How long a process has run or waited to run so far (/proc/PID/schedstat): a loop that
/// spins is always doing one or the other, however busy the machine is, while its CPU time
/// alone (`cpu_ticks`) is only what the other processes leave it.
fn busy(pid: i32) -> Duration {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).expect("schedstat");
    let ns: Vec<u64> = text
        .split_whitespace()
        .take(2)
        .map(|n| n.parse().expect("nanoseconds"))
        .collect();
    Duration::from_nanos(ns[0] + ns[1])
}

/// The daemon's busy time (see [`busy`]) from a start, against the wall time.
struct CpuWatch {
    pid: i32,
    busy: Duration,
    since: Instant,
}

impl CpuWatch {
    fn start(pid: i32) -> CpuWatch {
        CpuWatch {
            pid,
            busy: busy(pid),
            since: Instant::now(),
        }
    }

    /// Fails unless the daemon was busy for less than half of the wall time since the start.
    fn assert_never_spun(&self, what: &str) {
        let used = busy(self.pid) - self.busy;
        let wall = self.since.elapsed();
        assert!(
            used < wall / 2,
            "{what}: the daemon ran or waited to run for {used:?} of {wall:?}"
        );
    }
}

/// The counters of a summary (or `SIGUSR1`) line.
fn counters_in(line: &str) -> Counters {
    let from = line.find("connections served").expect("a counters line");
    let n: Vec<u64> = line[from..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("a count"))
        .collect();
    Counters {
        served: n[0],
        refused: n[1],
        timed_out: n[2],
        denied: n[3],
        limited: n[4],
        answered: n[5],
        dropped: n[6],
        datagrams_denied: n[7],
        datagrams_limited: n[8],
        health_checks: 0,
        proxy_header_failures: 0,
    }
}

/// Sends SIGTERM, checks for exit status 0 and returns the summary line's counters.
fn stop(p: &mut Proc) -> Counters {
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0, "stderr:\n{}", p.seen.join("\n"));
    summary(p)
}

/// The counters of the summary line of a daemon that has exited.
fn summary(p: &Proc) -> Counters {
    let line = p
        .seen
        .iter()
        .rev()
        .find(|l| l.contains("connections served"));
    counters_in(line.expect("a summary line"))
}

/// What a TCP client read up to EOF, after the count welcome (which must be there).
fn after_welcome(s: &TcpStream, got: &[u8]) -> String {
    let welcome = welcome_for(s);
    match got.strip_prefix(&welcome[..]) {
        Some(rest) => String::from_utf8_lossy(rest).into_owned(),
        None => panic!("no welcome: {:?}", String::from_utf8_lossy(got)),
    }
}

/// Reads to EOF; a reset (or any error) fails the test, naming the client.
fn read_all(s: &mut TcpStream, who: &str) -> Vec<u8> {
    let mut got = Vec::new();
    if let Err(e) = s.read_to_end(&mut got) {
        panic!("{who}: {e} after {:?}", String::from_utf8_lossy(&got));
    }
    got
}

/// How long a client on a lossy link waits for any one step.
const LOSSY_WAIT: Duration = Duration::from_secs(30);

/// One segment or datagram in five, dropped at random.
const LOSS: &str = "-m statistic --mode random --probability 0.2";

/// A count exchange through loss: whether it got its reply (else the timeout message).
fn count_through_loss(to: SocketAddr, i: usize) -> bool {
    let who = format!("client {i}");
    let line = "x".repeat(i % 50);
    let mut s = TcpStream::connect_timeout(&to, LOSSY_WAIT)
        .unwrap_or_else(|e| panic!("{who}: connect: {e}"));
    s.set_read_timeout(Some(LOSSY_WAIT)).unwrap();
    s.set_write_timeout(Some(LOSSY_WAIT)).unwrap();
    s.write_all(format!("{line}\n").as_bytes())
        .and_then(|()| s.shutdown(Shutdown::Write))
        .unwrap_or_else(|e| panic!("{who}: send: {e}"));
    let got = read_all(&mut s, &who);
    let reply = after_welcome(&s, &got);
    if reply == format!("You entered {} characters.\n", line.len()) {
        return true;
    }
    assert_eq!(reply, "Error: timed out after 20 s\n", "{who}");
    false
}

/// The packets the DROP rules commented `tag` (in any chain) have dropped so far.
fn dropped_by(ns: &Netns, tag: &str) -> usize {
    let rules = ns.exec(&["iptables", "-L", "-v", "-x", "-n"]);
    rules
        .lines()
        .filter(|l| l.contains(&format!("/* {tag} */")))
        .map(|l| {
            let pkts = l.split_whitespace().next().expect("a packet count");
            pkts.parse::<usize>().expect("a packet count")
        })
        .sum()
}

/// The datagrams the UDP echo client sends through loss, in windows of this many.
const DATAGRAMS: usize = 2000;
const WINDOW: usize = 100;

/// UDP echo through loss, in windows of datagrams: after each, every datagram sent is either
/// one the request rule dropped, or one the daemon counts (`SIGUSR1`) as answered (and then
/// received) or as dropped (its reply refused by the reply rule). A reply the rule refuses is
/// sent again once, to learn why it did not go (see `mmsg::resume`), so the rule counts at
/// least the replies lost. Returns the replies received.
fn echo_through_loss(p: &mut Proc, server: &Netns, to: SocketAddr) -> usize {
    let s = UdpSocket::bind("0.0.0.0:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let mut got = HashSet::new();
    let mut buf = [0u8; 64];
    let mut sent = 0;
    let mut asked = 0;
    for _ in 0..DATAGRAMS / WINDOW {
        for _ in 0..WINDOW {
            s.send_to(format!("datagram {sent}").as_bytes(), to)
                .unwrap();
            sent += 1;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                assert_eq!(from, to);
                let text = String::from_utf8_lossy(&buf[..n]);
                let seq: usize = text
                    .strip_prefix("datagram ")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("a reply not sent: {text:?}"));
                assert!(seq < sent && got.insert(seq), "a reply twice: {text:?}");
            }
            let requests_lost = dropped_by(server, "udp-requests");
            p.signal(libc::SIGUSR1);
            asked += 1;
            let daemon = counters_in(&p.wait_for_nth("connections open", asked));
            let (answered, dropped) = (daemon.answered as usize, daemon.dropped as usize);
            if got.len() == answered && requests_lost + answered + dropped == sent {
                assert!(dropped <= dropped_by(server, "udp-replies"));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{sent} datagrams sent, {requests_lost} dropped by the request rule; the \
                 daemon answered {answered} and dropped {dropped}; {} replies received",
                got.len()
            );
        }
    }
    got.len()
}

/// Scenario 1: random loss of one packet in five each way on the daemon's side. Hundreds of
/// concurrent count clients each get their exact reply (or the timeout message), never a
/// reset; UDP echo loses no reply the firewall's counters do not account for.
#[test]
fn random_loss_costs_retransmits_never_a_reply() {
    let test = "random_loss_costs_retransmits_never_a_reply";
    if !can_stage(test, &[("ip", "-V"), ("iptables", "--version")]) {
        return;
    }
    const CLIENTS: usize = 300;
    let link = Link::new("loss");
    let (mut p, addrs) = link.server.daemon(&[
        "--tcp",
        "count@0.0.0.0:0",
        "--udp",
        "echo@0.0.0.0:0",
        "--idle-timeout",
        "20",
        "--backlog",
        "1024",
    ]);
    let (tcp, udp) = (addrs[0].port(), addrs[1].port());
    // TCP loses segments but not handshakes: a lost SYN is sent again after 1, 2, 4, 8 s,
    // which would make the slowest of hundreds of clients take a minute; what the daemon must
    // live with is the loss of the segments of a connection it holds.
    for (chain, port, udp_tag) in [
        ("INPUT", "--dport", "udp-requests"),
        ("OUTPUT", "--sport", "udp-replies"),
    ] {
        link.server.sh(&format!(
            "iptables -A {chain} -p tcp {port} {tcp} ! --tcp-flags SYN SYN {LOSS} \
             -m comment --comment tcp-loss -j DROP"
        ));
        link.server.sh(&format!(
            "iptables -A {chain} -p udp {port} {udp} {LOSS} -m comment --comment {udp_tag} -j DROP"
        ));
    }
    let watch = CpuWatch::start(p.pid());
    let tcp_to = SocketAddr::from((Link::SERVER_IP, tcp));
    let udp_to = SocketAddr::from((Link::SERVER_IP, udp));
    let (answered, received) = link.peer.enter(|| {
        thread::scope(|s| {
            let echo = s.spawn(|| echo_through_loss(&mut p, &link.server, udp_to));
            let clients: Vec<_> = (0..CLIENTS)
                .map(|i| s.spawn(move || count_through_loss(tcp_to, i)))
                .collect();
            let answered = clients
                .into_iter()
                .map(|c| c.join().expect("a count client"))
                .filter(|&answered| answered)
                .count();
            (answered, echo.join().expect("the echo client"))
        })
    });
    watch.assert_never_spun(test);
    assert!(
        dropped_by(&link.server, "tcp-loss") > 0,
        "no segment was lost"
    );
    assert!(
        dropped_by(&link.server, "udp-replies") > 0,
        "no reply was refused"
    );
    let summary = stop(&mut p);
    let requests_lost = dropped_by(&link.server, "udp-requests");
    assert_eq!(
        summary,
        Counters {
            served: CLIENTS as u64,
            timed_out: (CLIENTS - answered) as u64,
            answered: received as u64,
            dropped: (DATAGRAMS - requests_lost - received) as u64,
            ..Counters::default()
        }
    );
}

/// Scenario 2: clients connect, send half a line, and their link goes down. The daemon
/// times each out at `--idle-timeout 1`, frees its descriptors, does not spin while they
/// hang, and serves a fresh client from another source afterwards.
#[test]
fn peers_that_vanish_mid_request_are_timed_out_and_freed() {
    let test = "peers_that_vanish_mid_request_are_timed_out_and_freed";
    if !can_stage(test, &[("ip", "-V")]) {
        return;
    }
    const CLIENTS: usize = 200;
    let link = Link::new("vanish");
    let (mut p, addrs) = link.server.daemon(&[
        "--tcp",
        "count@0.0.0.0:0",
        "--idle-timeout",
        "1",
        "--backlog",
        "1024",
    ]);
    let pid = p.pid();
    let base = open_descriptors(pid);
    let to = SocketAddr::from((Link::SERVER_IP, addrs[0].port()));
    let clients: Vec<TcpStream> = link.peer.enter(|| {
        (0..CLIENTS)
            .map(|_| {
                let mut s = count_client(to);
                s.write_all(b"half a li").unwrap();
                s
            })
            .collect()
    });
    assert_eq!(open_descriptors(pid), base + CLIENTS);
    let watch = CpuWatch::start(pid);
    link.peer.sh(&format!("ip link set {} down", link.peer_dev));
    wait_descriptors(pid, base);
    watch.assert_never_spun(test);
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, to.port()));
    let fresh = link.server.enter(|| count_reply(local, b"fresh\n"));
    assert_eq!(fresh, "You entered 5 characters.\n");
    drop(clients);
    assert_eq!(
        stop(&mut p),
        Counters {
            served: CLIENTS as u64 + 1,
            timed_out: CLIENTS as u64,
            ..Counters::default()
        }
    );
}

/// Scenario 4: SIGTERM with 300 count requests in flight. A third had sent the first part of
/// their line, a third nothing; both complete it after the signal and get their reply. The
/// last third had sent a first part and stay silent: at the end of the grace they get the
/// shutting-down message. No client meets a reset; the daemon exits 0.
#[test]
fn sigterm_with_hundreds_in_flight_answers_every_one() {
    const CLIENTS: usize = 300;
    allow_open_files(CLIENTS as u64 + 100);
    let (mut p, addr, _) = loopback_daemon(&[
        "--tcp",
        "count@127.0.0.1:0",
        "--shutdown-grace",
        "2",
        "--backlog",
        "1024",
    ]);
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| count_client(addr)).collect();
    for (_, s) in clients.iter_mut().enumerate().filter(|(i, _)| i % 3 != 0) {
        s.write_all(b"first ").unwrap();
    }
    let watch = CpuWatch::start(p.pid());
    p.signal(libc::SIGTERM);
    p.wait_for(&format!(
        "no longer accepting; {CLIENTS} connection(s) have 2 s to finish"
    ));
    for (_, s) in clients.iter_mut().enumerate().filter(|(i, _)| i % 3 != 2) {
        s.write_all(b"second\n").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
    }
    for (i, s) in clients.iter_mut().enumerate() {
        let want = match i % 3 {
            0 => "You entered 6 characters.\n",
            1 => "You entered 12 characters.\n",
            _ => "Error: server shutting down\n",
        };
        let got = read_all(s, &format!("client {i}"));
        assert_eq!(String::from_utf8_lossy(&got), want, "client {i}");
    }
    // An exited process's times stay readable until it is reaped.
    wait_until("the daemon to exit", || stat_fields(p.pid())[0] == "Z");
    watch.assert_never_spun("the drain");
    assert_eq!(p.wait_exit(), 0, "stderr:\n{}", p.seen.join("\n"));
    assert_eq!(
        summary(&p),
        Counters {
            served: CLIENTS as u64,
            ..Counters::default()
        }
    );
}

/// Scenario 5: the daemon runs with 64 descriptors (soft and hard limit) and more clients
/// than that connect. It warns, does not spin, serves the clients it holds, and serves the
/// others as descriptors come free.
#[test]
fn out_of_descriptors_the_daemon_pauses_and_serves_the_rest_later() {
    const LIMIT: usize = 64;
    const CLIENTS: usize = 100;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oneloop"));
    cmd.args(["--tcp", "count@127.0.0.1:0"])
        .env("RUST_LOG", "info");
    // SAFETY: setrlimit is async-signal-safe, and the closure touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: LIMIT as libc::rlim_t,
                rlim_max: LIMIT as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
    let mut p = Proc::spawn_cmd(&mut cmd);
    let addr = p.listening(1)[0];
    let pid = p.pid();
    let base = descriptors_below(pid, LIMIT);
    let watch = CpuWatch::start(pid);
    // The kernel completes every handshake: the connections the daemon cannot take wait in
    // the listen backlog.
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| connect(addr)).collect();
    p.wait_for("pausing accepts until a connection closes");
    assert_eq!(descriptors_below(pid, LIMIT), LIMIT);
    // The starved daemon, watched for a while: it retries now and then, never in a loop.
    thread::sleep(Duration::from_secs(2));
    watch.assert_never_spun("out of descriptors");
    let held: Vec<usize> = (0..CLIENTS).filter(|&i| readable(&clients[i])).collect();
    assert_eq!(held.len(), LIMIT - base, "clients held: {held:?}");
    // Those it holds are served; then, as they leave, every other one.
    let rest = (0..CLIENTS).filter(|i| !held.contains(i));
    for i in held.iter().copied().chain(rest) {
        let s = &mut clients[i];
        s.write_all(b"served\n").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let got = read_all(s, &format!("client {i}"));
        assert_eq!(after_welcome(s, &got), "You entered 6 characters.\n");
    }
    p.wait_for("accepting again");
    assert_eq!(
        stop(&mut p),
        Counters {
            served: CLIENTS as u64,
            ..Counters::default()
        }
    );
}

/// Whether a socket has bytes to read now.
fn readable(s: &TcpStream) -> bool {
    let mut fd = libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll with one valid pollfd and no wait.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n == 1 && fd.revents & libc::POLLIN != 0
}

/// Scenario 6: thousands of connections reset at once (SO_LINGER 0, then close): some before
/// the welcome, some after it, some with half a line sent. The daemon frees them all, its
/// memory stays small, and the next client is served.
#[test]
fn a_reset_storm_frees_everything_and_the_daemon_goes_on() {
    const THREADS: usize = 10;
    const PER_THREAD: usize = 300;
    allow_open_files((THREADS * PER_THREAD) as u64 + 100);
    let (mut p, addr, base) = loopback_daemon(&["--tcp", "count@127.0.0.1:0", "--backlog", "4096"]);
    let pid = p.pid();
    let ready = AtomicUsize::new(0);
    let welcomed: usize = thread::scope(|s| {
        let threads: Vec<_> = (0..THREADS)
            .map(|_| s.spawn(|| connect_then_reset(addr, PER_THREAD, &ready, THREADS)))
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a storm thread"))
            .sum()
    });
    wait_descriptors(pid, base);
    // The storm is work from end to end; after it, the loop must be asleep in its poll.
    wait_asleep(pid);
    let watch = CpuWatch::start(pid);
    thread::sleep(Duration::from_millis(500));
    watch.assert_never_spun("after the reset storm");
    p.signal(libc::SIGUSR1);
    let line = p.wait_for("connections open");
    assert!(line.ends_with("connections open 0"), "{line}");
    assert_eq!(count_reply(addr, b"after\n"), "You entered 5 characters.\n");
    let rss = status_kb(pid, "VmHWM");
    assert!(rss < 64 * 1024, "peak resident memory {rss} kB");
    let summary = stop(&mut p);
    // Every welcomed connection was served; the others may have died in the backlog.
    let total = (THREADS * PER_THREAD) as u64 + 1;
    assert!(
        (welcomed as u64 + 1..=total).contains(&summary.served),
        "{summary}"
    );
    assert_eq!(
        summary,
        Counters {
            served: summary.served,
            ..Counters::default()
        }
    );
}

/// Connects `n` clients, a quarter each: reset at once; reset after the welcome; half a line
/// after the welcome, then reset; half a line without waiting, then reset. The `threads`
/// threads reset together, once each has counted itself `ready`. Returns how many read their
/// welcome.
fn connect_then_reset(addr: SocketAddr, n: usize, ready: &AtomicUsize, threads: usize) -> usize {
    let mut welcomed = 0;
    let clients: Vec<TcpStream> = (0..n)
        .map(|i| {
            let mut s = connect(addr);
            if i % 4 == 1 || i % 4 == 2 {
                let want = welcome_for(&s);
                assert_eq!(read_exact(&mut s, want.len()), want);
                welcomed += 1;
            }
            if i % 4 >= 2 {
                s.write_all(b"half a li").unwrap();
            }
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            s
        })
        .collect();
    ready.fetch_add(1, Ordering::SeqCst);
    wait_until("every storm thread to connect", || {
        ready.load(Ordering::SeqCst) == threads
    });
    drop(clients);
    welcomed
}

/// Scenario 7: slowloris at thousands. 3000 count clients from as many loopback addresses
/// trickle a byte every 700 ms with `--idle-timeout 2`; trickling does not extend count's
/// deadline, so each gets the timeout message, and the loop does not spin.
#[test]
fn slowloris_at_thousands_times_every_one_out() {
    const THREADS: usize = 6;
    const PER_THREAD: usize = 500;
    const CLIENTS: usize = THREADS * PER_THREAD;
    allow_open_files(CLIENTS as u64 + 100);
    let (mut p, addr, base) = loopback_daemon(&[
        "--tcp",
        "count@127.0.0.1:0",
        "--idle-timeout",
        "2",
        "--backlog",
        "4096",
    ]);
    let pid = p.pid();
    let watch = CpuWatch::start(pid);
    thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || trickle(addr, t, PER_THREAD));
        }
    });
    wait_descriptors(pid, base);
    watch.assert_never_spun("slowloris");
    assert_eq!(
        stop(&mut p),
        Counters {
            served: CLIENTS as u64,
            timed_out: CLIENTS as u64,
            ..Counters::default()
        }
    );
}

/// `n` count clients from 127.(10 + t).x.y, each writing a byte every 700 ms until it reads
/// the timeout message; then each half-closes and must read EOF with nothing more.
fn trickle(addr: SocketAddr, t: usize, n: usize) {
    const TIMED_OUT: &[u8] = b"Error: timed out after 2 s\n";
    let mut clients: Vec<(TcpStream, Vec<u8>, bool)> = (0..n)
        .map(|i| {
            let from = format!("127.{}.{}.{}", 10 + t, i / 200, i % 200 + 1);
            let s = count_client_from(&from, addr);
            s.set_nonblocking(true).unwrap();
            (s, Vec::new(), false)
        })
        .collect();
    let deadline = Instant::now() + 2 * WAIT;
    while !clients.iter().all(|(_, _, eof)| *eof) {
        assert!(Instant::now() < deadline, "slow clients still open");
        for (s, got, eof) in clients.iter_mut().filter(|(_, _, eof)| !*eof) {
            let answered = got.len() >= TIMED_OUT.len();
            let mut buf = [0u8; 64];
            match s.read(&mut buf) {
                Ok(0) => {
                    assert_eq!(String::from_utf8_lossy(got), "Error: timed out after 2 s\n");
                    *eof = true;
                }
                Ok(k) => {
                    got.extend_from_slice(&buf[..k]);
                    if got.len() >= TIMED_OUT.len() {
                        s.shutdown(Shutdown::Write).unwrap();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !answered => {
                    if let Err(e) = s.write_all(b"x") {
                        panic!("a slow client from {:?}: {e}", s.local_addr());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("a slow client from {:?}: {e}", s.local_addr()),
            }
        }
        thread::sleep(Duration::from_millis(700));
    }
}

/// A count client from `from` whose welcome has been read.
fn count_client_from(from: &str, to: SocketAddr) -> TcpStream {
    let mut s = connect_from(from, to);
    let want = welcome_for(&s);
    assert_eq!(read_exact(&mut s, want.len()), want);
    s
}

/// Scenario 8: echo clients with small buffers that write until their send blocks and never
/// read. The daemon stops reading from them (backpressure: each could write only a bounded
/// amount), times them out after `--idle-timeout 2` of no progress, keeps its memory small and
/// serves fresh clients meanwhile.
#[test]
fn clients_that_fill_the_buffers_and_go_quiet_are_timed_out() {
    const THREADS: usize = 20;
    const PER_THREAD: usize = 10;
    const CLIENTS: usize = THREADS * PER_THREAD;
    const FRESH: usize = 5;
    allow_open_files(CLIENTS as u64 + 100);
    let (mut p, addr, base) = loopback_daemon(&[
        "--tcp",
        "echo@127.0.0.1:0",
        "--idle-timeout",
        "2",
        "--sndbuf",
        "4096",
        "--rcvbuf",
        "4096",
        "--backlog",
        "1024",
    ]);
    let pid = p.pid();
    let watch = CpuWatch::start(pid);
    let stuck: Vec<TcpStream> = thread::scope(|s| {
        let threads: Vec<_> = (0..THREADS)
            .map(|_| s.spawn(|| (0..PER_THREAD).map(|_| fill(addr)).collect::<Vec<_>>()))
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("a filling thread"))
            .collect()
    });
    for i in 0..FRESH {
        let mut s = connect(addr);
        let msg = format!("fresh {i}");
        s.write_all(msg.as_bytes()).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_all(&mut s, "a fresh client"), msg.as_bytes());
    }
    wait_descriptors(pid, base);
    watch.assert_never_spun("clients that never read");
    let rss = status_kb(pid, "VmHWM");
    assert!(rss < 64 * 1024, "peak resident memory {rss} kB");
    drop(stuck);
    assert_eq!(
        stop(&mut p),
        Counters {
            served: (CLIENTS + FRESH) as u64,
            timed_out: CLIENTS as u64,
            ..Counters::default()
        }
    );
}

/// An echo client with 4 KiB buffers that writes until a write blocks for 200 ms, and never
/// reads. Without backpressure it would never block; it gives up at 4 MiB.
fn fill(addr: SocketAddr) -> TcpStream {
    const NO_BACKPRESSURE: usize = 4 << 20;
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.set_send_buffer_size(4096).unwrap();
    socket.connect_timeout(&addr.into(), WAIT).expect("connect");
    let mut s: TcpStream = socket.into();
    s.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let chunk = [b'z'; 16 * 1024];
    let mut written = 0;
    loop {
        match s.write(&chunk) {
            Ok(n) => written += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return s;
            }
            Err(e) => panic!("a filling client, after {written} bytes: {e}"),
        }
        assert!(
            written < NO_BACKPRESSURE,
            "{written} bytes written and the daemon still reads"
        );
    }
}
