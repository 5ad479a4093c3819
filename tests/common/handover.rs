//! The daemon binary upgraded with `--handover PATH`: a path of a test's own, the first
//! daemon there, and a new daemon taking over from the running one, checked on both sides.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};

use super::tmp::TempDir;
use super::{count_reply, read_to_end, wait_asleep, Ended, Proc};

/// A count service on loopback, port 0: the one every test upgrades unless it says otherwise.
pub const COUNT: [&str; 2] = ["--tcp", "count@127.0.0.1:0"];

/// Count over TCP and echo over UDP on loopback, port 0.
pub const COUNT_AND_ECHO: [&str; 4] = ["--tcp", "count@127.0.0.1:0", "--udp", "echo@127.0.0.1:0"];

/// A handover path of a test's own: `handover.sock` in a fresh directory of mode 0755.
pub struct Place {
    pub dir: TempDir,
    pub path: String,
}

impl Place {
    pub fn new(name: &str) -> Place {
        let dir = TempDir::new(&format!("handover-{name}"));
        let path = dir.0.join("handover.sock").to_str().unwrap().to_string();
        Place { dir, path }
    }
}

/// `oneloop --handover PATH ARGS` (with `--sandbox` when the suite asks), logging at info.
pub fn daemon(path: &str, args: &[&str]) -> Proc {
    Proc::spawn(&[&["--handover", path], args].concat(), "info")
}

/// The first daemon on `path`, where none serves: it binds every socket. With the addresses
/// of its `n` instances.
pub fn first(path: &str, args: &[&str], n: usize) -> (Proc, Vec<SocketAddr>) {
    let mut p = daemon(path, args);
    p.wait_for(&format!(
        "handover: no daemon on {path}: binding every socket"
    ));
    let addrs = p.listening(n);
    // Asleep in its poll: the socket at `path` listens.
    wait_asleep(p.pid());
    (p, addrs)
}

/// The process id a log line names as `(pid P`.
pub fn pid_in(line: &str) -> i32 {
    line.split("(pid ")
        .nth(1)
        .and_then(|rest| rest.split([')', ',']).next()?.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line}"))
}

/// The new daemon `new` takes over from `current`, which serves `addrs`: the same addresses
/// (port 0 on the command line, taken over), each handed over by the old daemon; the old one
/// hears it is ready, drains (`while_draining` runs meanwhile, given the old daemon) and exits
/// 0. `current` becomes the new daemon; the old one, ended, is returned.
pub fn hand_over(
    current: &mut Proc,
    new: Proc,
    path: &str,
    addrs: &[SocketAddr],
    while_draining: impl FnOnce(&mut Proc),
) -> Proc {
    let mut old = std::mem::replace(current, new);
    let new = current;
    let old_pid = old.pid();
    // The old daemon checks who connected (under its sandbox too, where a call it may not
    // make ends it: its log says which).
    old.wait_for(&format!("handover: a new daemon (pid {}, user ", new.pid()));
    new.wait_for(&format!(
        "handover: took {} socket(s) from the daemon on {path} (pid {old_pid})",
        addrs.len() + 1
    ));
    assert_eq!(new.listening(addrs.len()), addrs, "the same addresses");
    let from = format!(", handed over by pid {old_pid}");
    for line in new.seen.iter().filter(|l| l.contains("listening on")) {
        assert!(line.ends_with(&from), "{line}");
    }
    new.wait_for(&format!(
        "handover: ready: the daemon on {path} (pid {old_pid}) stops serving"
    ));
    old.wait_for(&format!(
        "handover: the new daemon (pid {}) is ready: no longer accepting",
        new.pid()
    ));
    while_draining(&mut old);
    assert_eq!(old.wait_exit(), 0, "{}", old.seen.join("\n"));
    old
}

/// A new daemon with `args` takes over from `current` (see [`hand_over`]).
pub fn upgrade(current: &mut Proc, path: &str, args: &[&str], addrs: &[SocketAddr]) -> Proc {
    hand_over(current, daemon(path, args), path, addrs, |_| {})
}

/// Sends a line on count connection `s`, already welcomed, and checks the reply to EOF.
pub fn finish_count(mut s: TcpStream, line: &str) {
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let reply = String::from_utf8(read_to_end(&mut s)).unwrap();
    assert_eq!(reply, format!("You entered {} characters.\n", line.len()));
}

/// A number of the summary line a daemon logged as it exited (`connections served `,
/// `datagrams answered `).
pub fn at_exit(p: &Proc, what: &str) -> u64 {
    p.seen
        .iter()
        .rev()
        .find_map(|l| l.split(what).nth(1)?.split(',').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no '{what}' in\n{}", p.seen.join("\n")))
}

/// A count exchange with the daemon at `addr` succeeds.
pub fn assert_counts(addr: SocketAddr) {
    assert_eq!(count_reply(addr, b"still\n"), "You entered 5 characters.\n");
}

/// Stops daemon `p` with SIGTERM; it exits 0.
pub fn stop(mut p: Proc) {
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0, "{}", p.seen.join("\n"));
}

/// The last line of standard error.
pub fn last_line(ended: &Ended) -> &str {
    ended.stderr.lines().last().unwrap_or_default()
}

/// The daemon `current` serves on (count at `addrs[0]`); a new one with `args` takes over from
/// it as if nothing had happened, serves, and stops.
pub fn serves_on_then_hands_over(
    mut current: Proc,
    path: &str,
    args: &[&str],
    addrs: &[SocketAddr],
) {
    assert_counts(addrs[0]);
    upgrade(&mut current, path, args, addrs);
    assert_counts(addrs[0]);
    stop(current);
}
