//! `--handover PATH` of the built binary, upgrade after upgrade, while clients use the
//! sockets: a steady `oneloop load`, a UDP echo client and connects queued behind a stopped
//! daemon, none of which fails; a connection held is finished by the old daemon as it drains,
//! and the sockets it handed over no longer wake it; each old daemon exits 0. Descriptors and
//! memory stay flat over 200 upgrades; daemons under `--user`/`--chroot` and `--sandbox`
//! hand over too. What a takeover refuses, and what a failed one leaves, is in
//! `handover_failures.rs`.
//!
//! The tests that need root are skipped without it, except under CI (`CI=true`), where they
//! fail.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::handover::*;
use common::tmp::TempDir;
use common::users::{assert_nobody, root};
use common::*;

/// Waits (bounded) until daemon `p` has served a connection, asking with `SIGUSR1`.
fn wait_served(p: &mut Proc) {
    let deadline = Instant::now() + WAIT;
    let answer = "; connections open";
    loop {
        let asked = p.seen.iter().filter(|l| l.contains(answer)).count() + 1;
        p.signal(libc::SIGUSR1);
        let line = p.wait_for_nth(answer, asked);
        if !line.contains("connections served 0,") {
            return;
        }
        assert!(Instant::now() < deadline, "nothing served: {line}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ten_upgrades_under_a_steady_load_fail_no_request() {
    let place = Place::new("load");
    let (mut d, addrs) = first(&place.path, &COUNT, 1);
    let target = addrs[0].to_string();
    let load_args = ["load", "count", &target, "--rate", "300", "--duration", "4"];
    let mut load = Proc::spawn(&[&load_args[..], &["--json"]].concat(), "info");
    for generation in 1..=10 {
        // Each generation serves some of the load before the next takes over.
        wait_served(&mut d);
        // Welcomed by this generation, finished by it as it drains.
        let held = count_client(addrs[0]);
        let new = daemon(&place.path, &COUNT);
        let old = hand_over(&mut d, new, &place.path, &addrs, |_| {
            finish_count(held, "held over")
        });
        assert!(at_exit(&old, "connections served ") > 1);
        assert!(
            load.child.try_wait().unwrap().is_none(),
            "the load ended before upgrade {generation}: give it a longer --duration"
        );
    }
    let run = load.finish();
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim_end())
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    assert_eq!(run.code, 0, "{report}");
    assert!(report["completed"].as_u64().unwrap() > 0, "{report}");
    for (kind, count) in report["errors"].as_object().unwrap() {
        assert_eq!(count, 0, "{kind} in {report}");
    }
    stop(d);
}

/// A UDP client on a thread of its own: bursts of [`BURST`] datagrams, each burst answered
/// in full, in any order, within 2 s, or the client stops with an error (no retries: a
/// datagram lost is a failure).
struct Pinger {
    bursts: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<u64, String>>,
}

/// Datagrams in flight at once: some of them wait in the socket's buffer as it changes hands.
const BURST: u64 = 8;

impl Pinger {
    fn start(to: SocketAddr) -> Pinger {
        let bursts = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, done) = (bursts.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 64];
            let mut sent = 0;
            while !done.load(Ordering::SeqCst) {
                let mut waiting: Vec<String> = (sent + 1..=sent + BURST)
                    .map(|seq| format!("datagram {seq}"))
                    .collect();
                sent += BURST;
                for d in &waiting {
                    s.send_to(d.as_bytes(), to).map_err(|e| e.to_string())?;
                }
                while !waiting.is_empty() {
                    let (n, from) = s
                        .recv_from(&mut buf)
                        .map_err(|e| format!("no answer to {waiting:?}: {e}"))?;
                    let got = String::from_utf8_lossy(&buf[..n]);
                    match waiting.iter().position(|d| *d == got) {
                        Some(i) if from == to => {
                            waiting.swap_remove(i);
                        }
                        _ => return Err(format!("{got:?} from {from}: not awaited")),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                // A paced client, not a flood.
                thread::sleep(Duration::from_millis(1));
            }
            Ok(sent)
        });
        Pinger {
            bursts,
            stop,
            thread,
        }
    }

    /// Waits (bounded) until a burst sent from now on is answered.
    fn wait_for_answers(&self) {
        let since = self.bursts.load(Ordering::SeqCst);
        wait_until("an answered burst", || {
            self.bursts.load(Ordering::SeqCst) > since + 1 || self.thread.is_finished()
        });
    }

    /// Stops the client: how many datagrams were answered, or what went wrong.
    fn stop(self) -> Result<u64, String> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

#[test]
fn udp_echo_is_answered_across_upgrades() {
    let place = Place::new("udp");
    let args = ["--udp", "echo@127.0.0.1:0"];
    let (mut d, addrs) = first(&place.path, &args, 1);
    let pinger = Pinger::start(addrs[0]);
    for _ in 0..5 {
        pinger.wait_for_answers();
        let old = upgrade(&mut d, &place.path, &args, &addrs);
        assert!(at_exit(&old, "datagrams answered ") > 0);
    }
    // The last generation answers too.
    pinger.wait_for_answers();
    let answered = pinger.stop().expect("every datagram answered");
    assert!(answered > 6 * BURST, "{answered}");
    stop(d);
}

#[test]
fn connects_queued_while_the_old_daemon_is_stopped_are_all_welcomed() {
    let place = Place::new("queued");
    let args = [&COUNT[..], &["--shutdown-grace", "30"]].concat();
    let (mut a, addrs) = first(&place.path, &args, 1);
    a.signal(libc::SIGSTOP);
    let mut b = daemon(&place.path, &args);
    b.wait_for(&format!(
        "handover: connected to the daemon on {}",
        place.path
    ));
    // The kernel completes each handshake into the listen backlog.
    let mut queued: Vec<_> = (0..1000).map(|_| connect(addrs[0])).collect();
    a.signal(libc::SIGCONT);
    for (i, s) in queued.iter_mut().enumerate() {
        let want = welcome_for(s);
        let mut got = vec![0; want.len()];
        s.read_exact(&mut got)
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        assert_eq!(got, want, "connection {i}");
        s.write_all(b"queued\n").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply)
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        assert_eq!(reply, "You entered 6 characters.\n", "connection {i}");
    }
    let old = hand_over(&mut a, b, &place.path, &addrs, |_| {});
    a.signal(libc::SIGTERM);
    assert_eq!(a.wait_exit(), 0);
    // Each connection was served once, by one daemon or the other.
    let served = |p: &Proc| at_exit(p, "connections served ");
    assert_eq!(served(&old) + served(&a), 1000);
}

#[test]
fn a_draining_daemon_is_not_woken_by_the_sockets_it_handed_over() {
    let place = Place::new("asleep");
    let args = [&COUNT_AND_ECHO[..], &["--shutdown-grace", "30"]].concat();
    let (mut d, addrs) = first(&place.path, &args, 2);
    // The old daemon drains this one for as long as the test needs.
    let held = count_client(addrs[0]);
    let new = daemon(&place.path, &args);
    hand_over(&mut d, new, &place.path, &addrs, |old| {
        let woken = || context_switches(old.pid()).0;
        let before = woken();
        let udp = udp_client(addrs[1]);
        for _ in 0..200 {
            assert_counts(addrs[0]);
            assert_eq!(udp_ask(&udp, addrs[1], b"new"), b"new");
        }
        // Asleep, it wakes for nothing the new daemon serves (a poll still watching the
        // sockets would wake it for each of these 400 clients).
        let woken = woken() - before;
        assert!(woken < 40, "the old daemon woke {woken} times");
        finish_count(held, "the last one");
    });
    stop(d);
}

#[test]
fn two_hundred_upgrades_keep_descriptors_and_memory_flat() {
    let place = Place::new("flat");
    let args = [&COUNT_AND_ECHO[..], &["--shutdown-grace", "1"]].concat();
    let (mut d, addrs) = first(&place.path, &args, 2);
    // Asleep in its poll with nothing open: every descriptor it keeps, and only those.
    let (fds, rss) = (open_descriptors(d.pid()), status_kb(d.pid(), "VmRSS"));
    let udp = udp_client(addrs[1]);
    let started = Instant::now();
    for generation in 1..=200 {
        assert_counts(addrs[0]);
        assert_eq!(udp_ask(&udp, addrs[1], b"ping"), b"ping");
        upgrade(&mut d, &place.path, &args, &addrs);
        // Its connection to the old daemon closes just after its ready line; a descriptor
        // leaked stays.
        let pid = d.pid();
        wait_until(
            &format!("{fds} descriptors in generation {generation}"),
            || open_descriptors(pid) == fds,
        );
    }
    let last = status_kb(d.pid(), "VmRSS");
    eprintln!(
        "200 upgrades in {:.1} s; VmRSS {rss} kB first, {last} kB last; {fds} descriptors",
        started.elapsed().as_secs_f64()
    );
    assert!(last < 2 * rss + 1024, "VmRSS {rss} kB, then {last} kB");
    stop(d);
}

#[test]
fn a_daemon_serving_as_nobody_in_a_chroot_is_taken_over_by_one_started_as_root() {
    let test = "a_daemon_serving_as_nobody_in_a_chroot_is_taken_over_by_one_started_as_root";
    if !root(test) {
        return;
    }
    let jail = TempDir::new("handover-jail");
    let place = Place::new("jailed");
    let args = [
        "--user",
        "nobody",
        "--chroot",
        jail.0.to_str().unwrap(),
        "--tcp",
        "count@127.0.0.1:0",
    ];
    let (mut d, addrs) = first(&place.path, &args, 1);
    for _ in 0..2 {
        d.wait_for("serving as user nobody");
        assert_nobody(d.pid());
        assert_eq!(
            std::fs::read_link(format!("/proc/{}/root", d.pid())).unwrap(),
            jail.0
        );
        assert_counts(addrs[0]);
        // Started as root, it resolves the user before it takes over, then drops to it.
        upgrade(&mut d, &place.path, &args, &addrs);
    }
    assert_counts(addrs[0]);
    stop(d);
}

#[test]
fn sandboxed_daemons_hand_over_to_each_other() {
    let place = Place::new("sandboxed");
    let args = [&["--sandbox"][..], &COUNT_AND_ECHO].concat();
    let (mut d, addrs) = first(&place.path, &args, 2);
    let udp = udp_client(addrs[1]);
    for _ in 0..2 {
        d.wait_for("sandbox: ");
        assert_eq!(status_kb(d.pid(), "Seccomp"), 2);
        assert_counts(addrs[0]);
        assert_eq!(udp_ask(&udp, addrs[1], b"in the box"), b"in the box");
        // The old daemon's side runs under its filter; the new one says ready under its own.
        upgrade(&mut d, &place.path, &args, &addrs);
    }
    assert_counts(addrs[0]);
    stop(d);
}
