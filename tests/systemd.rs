//! systemd integration of the built binary: socket activation through the real
//! `systemd-socket-activate`, and READY/STATUS/STOPPING/WATCHDOG notifications read from a
//! notify socket of the test's own.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{count_reply, udp_ask, udp_client, Proc, WAIT};

const BIN: &str = env!("CARGO_BIN_EXE_oneloop");

/// Whether `systemd-socket-activate` is installed (Debian's `systemd` package); `.ci/run`
/// installs it.
fn have_socket_activate() -> bool {
    let found = Command::new("systemd-socket-activate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("systemd-socket-activate is not installed: skipped");
    }
    found
}

/// A loopback address whose port was free a moment ago (TCP and UDP are asked for it on the
/// same number).
fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Runs `systemd-socket-activate` (twice nested, so that one stream and one datagram socket
/// are passed) in front of `oneloop ARGS`. The daemon starts on the first connection.
fn activate(addr: SocketAddr, names: &str, args: &[&str]) -> Proc {
    let listen = format!("--listen={addr}");
    let fdnames = format!("--fdname={names}");
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args([
        &listen,
        "--",
        "systemd-socket-activate",
        "--datagram",
        &listen,
    ])
    .arg(&fdnames)
    .args(["--", BIN])
    .args(args)
    .env("RUST_LOG", "info");
    let mut p = Proc::spawn_cmd(&mut cmd);
    p.wait_for("Listening on");
    p
}

#[test]
fn passed_tcp_and_udp_sockets_serve_the_services_they_are_named_for() {
    if !have_socket_activate() {
        return;
    }
    let addr = free_addr();
    let mut p = activate(addr, "count:time", &[]);
    // The first connection starts the daemon, which accepts it from the backlog.
    assert_eq!(count_reply(addr, b"hello\n"), "You entered 5 characters.\n");
    p.wait_for(&format!(
        "listening on tcp {addr} (count), passed by the service manager"
    ));
    p.wait_for(&format!(
        "listening on udp {addr} (time), passed by the service manager"
    ));
    let s = udp_client(addr);
    assert_eq!(udp_ask(&s, addr, b"").len(), 4);
    // Only the passed sockets: no default pair on 51423.
    assert!(!p.seen.iter().any(|l| l.contains(":51423")));
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
}

#[test]
fn activated_maps_other_names_to_services() {
    if !have_socket_activate() {
        return;
    }
    let addr = free_addr();
    let mut p = activate(
        addr,
        "web:clock",
        &["--activated", "web=count", "--activated", "clock=time"],
    );
    assert_eq!(count_reply(addr, b"abc\n"), "You entered 3 characters.\n");
    p.wait_for("(count), passed by the service manager");
    p.wait_for("(time), passed by the service manager");
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
}

#[test]
fn a_passed_socket_without_a_service_is_a_clear_start_failure() {
    if !have_socket_activate() {
        return;
    }
    let addr = free_addr();
    let mut p = activate(addr, "web:clock", &[]);
    // Starting it takes a connection; the daemon refuses to run and exits 1.
    let _ = std::net::TcpStream::connect_timeout(&addr, WAIT);
    assert_eq!(p.wait_exit(), 1);
    assert!(
        p.seen
            .iter()
            .any(|l| l.contains("passed socket 'web' (fd 3) has no service")),
        "{:?}",
        p.seen
    );
}

#[test]
fn a_passed_unix_socket_is_a_start_failure_naming_it() {
    if !have_socket_activate() {
        return;
    }
    let path = std::env::temp_dir().join(format!("oneloop-unix-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listen = format!("--listen={}", path.display());
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args([&listen, "--fdname=count", "--", BIN])
        .env("RUST_LOG", "info");
    let mut p = Proc::spawn_cmd(&mut cmd);
    p.wait_for("Listening on");
    // Starting it takes a connection; the daemon refuses to run and exits 1.
    let _ = std::os::unix::net::UnixStream::connect(&path);
    assert_eq!(p.wait_exit(), 1, "{:?}", p.seen);
    let _ = std::fs::remove_file(&path);
    let want = "passed socket 'count' (fd 3) is a Unix socket: \
                only TCP and UDP sockets (IPv4 or IPv6) can be served";
    assert!(p.seen.iter().any(|l| l.contains(want)), "{:?}", p.seen);
    assert!(
        !p.seen.iter().any(|l| l.contains("event loop")),
        "{:?}",
        p.seen
    );
}

/// A notify socket of the test's own, as systemd's would be.
struct NotifySocket {
    path: PathBuf,
    socket: UnixDatagram,
}

impl NotifySocket {
    fn new(tag: &str) -> NotifySocket {
        let path =
            std::env::temp_dir().join(format!("oneloop-notify-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        NotifySocket { path, socket }
    }

    /// The next notification (bounded wait).
    fn next(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn daemon_with_env(env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(["--tcp", "count@127.0.0.1:0"])
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc::spawn_cmd(&mut cmd)
}

#[test]
fn ready_status_and_stopping_reach_the_notify_socket() {
    let notify = NotifySocket::new("ready");
    let mut p = daemon_with_env(&[("NOTIFY_SOCKET", notify.path.to_str().unwrap())]);
    let ready = notify.next();
    assert!(ready.contains("READY=1\n"), "{ready:?}");
    assert!(ready.contains("STATUS=serving 1 socket(s)\n"), "{ready:?}");
    // READY comes after every socket is bound.
    let addr = p.listening(1)[0];
    assert_eq!(count_reply(addr, b"x\n"), "You entered 1 characters.\n");
    p.signal(libc::SIGTERM);
    let stopping = notify.next();
    assert!(stopping.contains("STOPPING=1\n"), "{stopping:?}");
    assert!(
        stopping.contains("STATUS=SIGTERM: no longer accepting"),
        "{stopping:?}"
    );
    assert_eq!(p.wait_exit(), 0);
}

#[test]
fn the_watchdog_is_fed_at_half_its_interval() {
    let notify = NotifySocket::new("watchdog");
    let mut p = daemon_with_env(&[
        ("NOTIFY_SOCKET", notify.path.to_str().unwrap()),
        ("WATCHDOG_USEC", "200000"),
    ]);
    assert!(notify.next().contains("READY=1"));
    let start = Instant::now();
    let mut fed = 0;
    while fed < 3 {
        let msg = notify.next();
        assert_eq!(msg, "WATCHDOG=1\n");
        fed += 1;
    }
    // Three feeds at 100 ms: no assertion on the speed, only that they keep coming.
    assert!(start.elapsed() < WAIT);
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
}

#[test]
fn no_watchdog_without_a_notify_socket() {
    // WATCHDOG_USEC alone (no one to tell) arms no timer: the daemon stays asleep.
    let mut p = daemon_with_env(&[("WATCHDOG_USEC", "100000")]);
    p.listening(1);
    common::wait_asleep(p.pid());
    let before = common::context_switches(p.pid());
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        common::context_switches(p.pid()),
        before,
        "the daemon woke up"
    );
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
}

#[test]
fn an_abstract_notify_socket_is_reached_too() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("oneloop-notify-abstract-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let _p = daemon_with_env(&[("NOTIFY_SOCKET", &format!("@{name}"))]);
    let mut buf = [0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .expect("READY=1 on the abstract socket");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1\n"));
}

#[test]
fn the_watchdog_keeps_reaching_systemd_from_inside_a_chroot() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("skipped: dropping privileges needs root");
        return;
    }
    let notify = NotifySocket::new("chroot");
    let root = std::env::temp_dir().join(format!("oneloop-empty-root-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["--tcp", "count@127.0.0.1:0", "--user", "nobody", "--chroot"])
        .arg(&root)
        .env("RUST_LOG", "info")
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "200000");
    let mut p = Proc::spawn_cmd(&mut cmd);
    p.wait_for("serving as user nobody");
    assert!(notify.next().contains("READY=1"));
    for _ in 0..3 {
        assert_eq!(notify.next(), "WATCHDOG=1\n");
    }
    p.signal(libc::SIGTERM);
    assert!(notify.next().contains("STOPPING=1"));
    assert_eq!(p.wait_exit(), 0);
    let _ = std::fs::remove_dir(&root);
}
