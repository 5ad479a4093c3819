//! `--handover PATH` of the built binary when a takeover fails or is refused, as an attacker
//! or a crash would have it: a new daemon that dies or hangs before it is ready, that differs
//! in an option that cannot change after bind, or that comes while another takes over leaves
//! the old one serving, its sockets as they were; a peer of another user (on either side),
//! one that speaks another version or nonsense, a directory others may write to, a foreign
//! file at PATH and the options `--handover` cannot go with are refused.
//!
//! A new daemon is held between taking the sockets and saying ready by `strace`, which delays
//! that call (its second `sendmsg`; the first is its hello): a point no signal sent after a
//! log line reaches reliably. Tests that need root, `strace` or `systemd-socket-activate` are
//! skipped without them, except under CI (`CI=true`), where they fail.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::handover::*;
use common::tmp::{ReachableBinary, TempDir};
use common::users::{as_nobody, nobody, root};
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_oneloop");

/// Whether `tool ARG` runs (ARG only shows its version); when not, skips (fails under CI).
fn have(test: &str, tool: &str, arg: &str) -> bool {
    let found = Command::new(tool)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip_for_want_of(test, &format!("the `{tool}` command"));
    }
    found
}

/// A new daemon with `args` on `path`, held by `strace` after it took the sockets: its
/// `ready` (its second `sendmsg`, after the hello) waits `hold` before it is made.
fn held_before_ready(path: &str, args: &[&str], hold: &str) -> Proc {
    let mut cmd = Command::new("strace");
    cmd.args(["-qq", "-o", "/dev/null", "-e", "trace=sendmsg", "-e"])
        .arg(format!("inject=sendmsg:delay_enter={hold}:when=2"))
        .args([BIN, "--handover", path])
        .args(daemon_args(args))
        .env("RUST_LOG", "info");
    Proc::spawn_cmd(&mut cmd)
}

/// A daemon serving count on a path of its own, and a new one held before it is ready (see
/// [`held_before_ready`]), having taken the sockets.
struct Held {
    place: Place,
    old: Proc,
    addrs: Vec<SocketAddr>,
    new: Traced,
}

/// The daemon strace runs.
struct Traced {
    strace: Proc,
    /// The daemon's pid, as the old daemon saw it connect.
    pid: i32,
}

impl Drop for Traced {
    /// Kills the daemon while strace still holds it (strace outlives it): strace, killed
    /// alone, would let it go on.
    fn drop(&mut self) {
        if let Ok(None) = self.strace.child.try_wait() {
            // SAFETY: kill with the pid of a process strace has not seen end.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

/// [`Held`], in a place named `name`, the new daemon held for `hold`; `None` (the test skipped)
/// without strace.
fn held(name: &str, hold: &str) -> Option<Held> {
    if !have(name, "strace", "-V") {
        return None;
    }
    let place = Place::new(name);
    let (mut old, addrs) = first(&place.path, &COUNT, 1);
    let mut strace = held_before_ready(&place.path, &COUNT, hold);
    strace.wait_for("handover: took 2 socket(s)");
    let pid = pid_in(&old.wait_for("handover: a new daemon (pid "));
    Some(Held {
        place,
        old,
        addrs,
        new: Traced { strace, pid },
    })
}

/// `second`, a new daemon that came while another takes over from `old`, exits 1 naming the
/// refusal; `old` logs it.
fn assert_refused_as_second(second: Proc, old: &mut Proc) {
    let pid = second.pid();
    let ended = second.finish();
    let why = "another takeover is under way";
    assert_eq!(ended.code, 1, "{}", ended.stderr);
    assert_eq!(
        last_line(&ended),
        format!("ERROR handover: the running daemon refused: {why}")
    );
    old.wait_for(&format!("handover: refused pid {pid}: {why}"));
}

#[test]
fn a_new_daemon_killed_before_it_is_ready_leaves_the_old_one_serving() {
    let Some(mut h) = held("killed-before-ready", "60s") else {
        return;
    };
    // Meanwhile another one is refused: one takeover at a time.
    assert_refused_as_second(daemon(&h.place.path, &COUNT), &mut h.old);
    // SAFETY: kill with a pid the old daemon saw connect and a valid signal.
    assert_eq!(unsafe { libc::kill(h.new.pid, libc::SIGKILL) }, 0);
    // Killed, it skips the call held; strace holds its exit too, until strace goes.
    h.new.strace.signal(libc::SIGKILL);
    h.new.strace.wait_exit();
    h.old.wait_for(&format!(
        "handover: the new daemon (pid {}) failed before it was ready: it closed the \
         connection before it was ready; serving on",
        h.new.pid
    ));
    serves_on_then_hands_over(h.old, &h.place.path, &COUNT, &h.addrs);
}

#[test]
fn a_new_daemon_silent_for_10_s_is_given_up_and_exits_when_it_wakes() {
    // Held past the old daemon's 10 s wait, which began before the hold.
    let Some(mut h) = held("silent-for-10-s", "12s") else {
        return;
    };
    h.old.wait_for_within(
        &format!(
            "handover: the new daemon (pid {}) failed before it was ready: it was not ready \
             in time; serving on",
            h.new.pid
        ),
        Duration::from_secs(20),
    );
    let old_pid = h.old.pid();
    serves_on_then_hands_over(h.old, &h.place.path, &COUNT, &h.addrs);
    // The late one wakes to find nobody to tell: it leaves the sockets rather than serve
    // beside the daemon in charge.
    let late = &mut h.new.strace;
    assert_eq!(late.wait_exit(), 1, "{}", late.seen.join("\n"));
    late.wait_for(&format!(
        "handover: cannot tell the old daemon (pid {old_pid}) this one is ready"
    ));
}

#[test]
fn a_second_takeover_while_one_is_under_way_is_refused() {
    let place = Place::new("second");
    let (mut a, addrs) = first(&place.path, &COUNT, 1);
    // Both connect while the old daemon is stopped: it accepts them in that order.
    a.signal(libc::SIGSTOP);
    let connected = format!("handover: connected to the daemon on {}", place.path);
    let mut b = daemon(&place.path, &COUNT);
    b.wait_for(&connected);
    let mut c = daemon(&place.path, &COUNT);
    c.wait_for(&connected);
    a.signal(libc::SIGCONT);
    assert_refused_as_second(c, &mut a);
    hand_over(&mut a, b, &place.path, &addrs, |_| {});
    assert_counts(addrs[0]);
    stop(a);
}

#[test]
fn another_users_daemon_is_refused_on_either_side() {
    let test = "another_users_daemon_is_refused_on_either_side";
    if !root(test) {
        return;
    }
    let (uid, gid, _) = nobody();
    let bin = ReachableBinary::new("handover-nobody");
    let as_nobody = |args: &[&str]| Proc::spawn_cmd(&mut as_nobody(&bin, args));
    // A root daemon whose socket anybody may connect to: nobody's daemon is refused.
    let place = Place::new("other-user");
    let (mut a, addrs) = first(&place.path, &COUNT, 1);
    std::fs::set_permissions(&place.path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let intruder = as_nobody(&[&["--handover", &place.path], &COUNT[..]].concat());
    let intruder_pid = intruder.pid();
    let ended = intruder.finish();
    let why = format!("user {uid} is neither root nor this daemon's user (0)");
    assert_eq!(ended.code, 1, "{}", ended.stderr);
    assert_eq!(
        last_line(&ended),
        format!("ERROR handover: the running daemon refused: {why}")
    );
    a.wait_for(&format!("handover: refused pid {intruder_pid}: {why}"));
    serves_on_then_hands_over(a, &place.path, &COUNT, &addrs);

    // Nobody's daemon, its socket put where root's daemon looks: root's is not taken in.
    let own = TempDir::new("handover-nobody-dir");
    std::os::unix::fs::chown(&own.0, Some(uid), Some(gid)).unwrap();
    let planted = own.0.join("handover.sock");
    let mut theirs = as_nobody(&[
        "--handover",
        planted.to_str().unwrap(),
        "--tcp",
        "count@127.0.0.1:0",
    ]);
    theirs.listening(1);
    wait_asleep(theirs.pid());
    let place = Place::new("planted");
    std::fs::rename(&planted, &place.path).unwrap();
    let ended = daemon(&place.path, &COUNT).finish();
    assert_eq!(ended.code, 1, "{}", ended.stderr);
    assert_eq!(
        last_line(&ended),
        format!(
            "ERROR --handover {}: the daemon there runs as user {uid}, neither root nor this \
             daemon's user (0)",
            place.path
        )
    );
    stop(theirs);
}

#[test]
fn a_path_in_a_directory_others_may_write_to_is_refused() {
    let place = Place::new("writable");
    for mode in [0o777, 0o775] {
        std::fs::set_permissions(&place.dir.0, std::fs::Permissions::from_mode(mode)).unwrap();
        let ended = daemon(&place.path, &COUNT).finish();
        assert_eq!(ended.code, 1, "{}", ended.stderr);
        assert_eq!(
            last_line(&ended),
            format!(
                "ERROR --handover {}: others may write to {} (mode {mode:o})",
                place.path,
                place.dir.0.display()
            )
        );
        assert!(!ended.stderr.contains("listening on"), "{}", ended.stderr);
    }
}

#[test]
fn an_option_that_cannot_change_after_bind_is_refused_and_the_old_daemon_serves_on() {
    for (flag, addr) in [
        ("--reuseport", "count@127.0.0.1:0"),
        ("--ipv6-only", "count@[::1]:0"),
    ] {
        let place = Place::new("fixed");
        let with = [flag, "--tcp", addr];
        let (mut a, addrs) = first(&place.path, &with, 1);
        let without = daemon(&place.path, &with[1..]);
        let pid = without.pid();
        let ended = without.finish();
        assert_eq!(ended.code, 1, "{}", ended.stderr);
        let name = format!("tcp {}", addr.replacen('@', " ", 1));
        assert_eq!(
            last_line(&ended),
            format!(
                "ERROR --handover: the socket of {name} has {flag} on, this daemon asks for off: \
                 it cannot change after bind (stop the old daemon to change it)"
            )
        );
        a.wait_for(&format!(
            "handover: the new daemon (pid {pid}) failed before it was ready"
        ));
        // With the same option, it takes over.
        serves_on_then_hands_over(a, &place.path, &with, &addrs);
    }
}

#[test]
fn a_new_daemon_that_fails_leaves_the_old_sockets_as_they_were() {
    let place = Place::new("untouched");
    let both = ["--tcp", "count@127.0.0.1:0", "--tcp", "count@[::1]:0"];
    let (mut a, addrs) = first(
        &place.path,
        &[&["--ipv6-only", "--backlog", "64"][..], &both].concat(),
        2,
    );
    // It would listen on the IPv4 socket with a backlog of 1, but the IPv6 one differs.
    let ended = daemon(&place.path, &[&["--backlog", "1"][..], &both].concat()).finish();
    assert_eq!(ended.code, 1, "{}", ended.stderr);
    assert!(
        last_line(&ended).contains("has --ipv6-only on"),
        "{}",
        ended.stderr
    );
    a.wait_for("failed before it was ready");
    // Stopped, the old daemon accepts nothing: its backlog of 64 holds a burst of connects.
    a.signal(libc::SIGSTOP);
    let queued: Vec<_> = (0..20)
        .map(|i| {
            std::net::TcpStream::connect_timeout(&addrs[0], Duration::from_secs(2))
                .unwrap_or_else(|e| panic!("connect {i} to a backlog of 64: {e}"))
        })
        .collect();
    a.signal(libc::SIGCONT);
    for mut s in queued {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let want = welcome_for(&s);
        assert_eq!(read_exact(&mut s, want.len()), want);
        finish_count(s, "queued");
    }
    // A daemon that takes over sets it: its backlog of 1 holds two connects, not three.
    let tight = [&["--ipv6-only", "--backlog", "1"][..], &both].concat();
    upgrade(&mut a, &place.path, &tight, &addrs);
    a.signal(libc::SIGSTOP);
    let connect = || std::net::TcpStream::connect_timeout(&addrs[0], Duration::from_secs(1));
    let held = [connect().unwrap(), connect().unwrap()];
    assert!(connect().is_err(), "a third connect in a backlog of 1");
    a.signal(libc::SIGCONT);
    drop(held);
    stop(a);
}

#[test]
fn a_stale_socket_file_is_replaced_and_any_other_file_is_refused() {
    let place = Place::new("stale");
    // A socket file nobody listens on, as a daemon killed with SIGKILL leaves it.
    drop(std::os::unix::net::UnixListener::bind(&place.path).unwrap());
    let (a, addrs) = first(&place.path, &COUNT, 1);
    // The path is the new daemon's own now: the next upgrade goes through it.
    serves_on_then_hands_over(a, &place.path, &COUNT, &addrs);

    let place = Place::new("regular");
    std::fs::write(&place.path, "not a socket\n").unwrap();
    let ended = daemon(&place.path, &COUNT).finish();
    assert_eq!(ended.code, 1, "{}", ended.stderr);
    assert_eq!(
        last_line(&ended),
        format!("ERROR --handover {}: it is not a socket", place.path)
    );
    assert_eq!(
        std::fs::read_to_string(&place.path).unwrap(),
        "not a socket\n"
    );
}

#[test]
fn a_peer_that_speaks_another_version_or_nonsense_is_refused() {
    let place = Place::new("nonsense");
    let (mut a, addrs) = first(&place.path, &COUNT, 1);
    let version = "it speaks version 2 of the exchange, this daemon 1";
    for (said, why, answer) in [
        (
            &b"hello oneloop-handover 2"[..],
            version,
            format!("refuse {version}"),
        ),
        (
            b"GET / HTTP/1.0",
            "it sent an unknown record 'GET'",
            String::new(),
        ),
    ] {
        let peer =
            socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None).unwrap();
        peer.set_read_timeout(Some(WAIT)).unwrap();
        peer.connect(&socket2::SockAddr::unix(&place.path).unwrap())
            .unwrap();
        peer.send(said).unwrap();
        // Told why, or closed without a word.
        let mut buf = [0u8; 512];
        let n = (&peer).read(&mut buf).unwrap();
        assert_eq!(String::from_utf8_lossy(&buf[..n]), answer);
        a.wait_for(&format!(
            "handover: the new daemon (pid {}) failed before it was ready: {why}; serving on",
            std::process::id()
        ));
    }
    serves_on_then_hands_over(a, &place.path, &COUNT, &addrs);
}

#[test]
fn handover_is_a_usage_error_with_standard_input_or_passed_sockets() {
    let place = Place::new("usage");
    for (other, named) in [
        (&["--inetd", "tcp:count"][..], "--inetd"),
        (&["--console"], "--console"),
        (&["--step"], "--step"),
    ] {
        let ended = daemon(&place.path, other).finish();
        assert_eq!(ended.code, 2, "{other:?}: {}", ended.stderr);
        assert_eq!(
            ended.stderr,
            format!(
                "oneloop: --handover cannot go with {named}: standard input cannot be handed \
                 over\nTry 'oneloop --help'."
            )
        );
    }
    let test = "handover_is_a_usage_error_with_standard_input_or_passed_sockets";
    if !have(test, "systemd-socket-activate", "--version") {
        return;
    }
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg(format!("--listen={addr}"))
        .arg("--fdname=count")
        .args(["--", BIN, "--handover", &place.path])
        .env("RUST_LOG", "info");
    let mut p = Proc::spawn_cmd(&mut cmd);
    p.wait_for("Listening on");
    // The first connection starts the daemon, which is handed the socket (LISTEN_FDS); as it
    // exits, the connection may be reset before this side sees it made.
    let _first = std::net::TcpStream::connect_timeout(&addr, WAIT);
    let ended = p.finish();
    assert_eq!(ended.code, 2, "{}", ended.stderr);
    assert!(
        ended.stderr.ends_with(
            "oneloop: --handover cannot go with sockets passed by the service manager: its \
             socket units keep them across a restart\nTry 'oneloop --help'."
        ),
        "{}",
        ended.stderr
    );
    assert!(!Path::new(&place.path).exists());
}
