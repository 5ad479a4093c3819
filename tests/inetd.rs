//! Under an inetd ("wait" mode): `--inetd TRANSPORT:SERVICE` serves the socket on standard
//! input, `--exit-idle SECS` ends the daemon once nothing is open, and the log goes to
//! syslog (`/dev/log`) when standard error is a socket, never to a client.
//!
//! The daemon binary runs with a socket the test made as its standard input, and under a
//! real inetd (Debian's openbsd-inetd, `/usr/sbin/inetd`). The syslog tests run the daemon
//! (or the inetd) in a mount namespace of its own where `/dev` is a directory of the test's
//! holding a datagram socket `log`: the daemon's real `/dev/log` path reaches the test, and
//! no syslog daemon of the machine sees a line. They need root, `unshare` and (for the
//! inetd) openbsd-inetd; without them they are skipped with a message, except under CI
//! (`CI=true`), where a skip would hide them: there they fail.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use oneloop::proto::Epoch;

const ONELOOP: &str = env!("CARGO_BIN_EXE_oneloop");
const INETD: &str = "/usr/sbin/inetd";

/// `oneloop ARGS` with `stdin` as its standard input, stderr read by the test.
fn spawn_with_stdin(args: &[&str], stdin: impl Into<OwnedFd>) -> Proc {
    Proc::spawn_cmd_stdin(
        Command::new(ONELOOP).args(args).env("RUST_LOG", "info"),
        Stdio::from(stdin.into()),
    )
}

fn loopback_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

fn loopback_udp() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// The summary line's start for these counts of connections served and datagrams answered.
fn summary(served: u64, answered: u64) -> String {
    format!(
        "connections served {served}, refused 0, timed out 0, denied 0, limited 0; \
         datagrams answered {answered}"
    )
}

/// Runs `--inetd SERVICE --exit-idle 1` with `stdin`, a socket bound to `addr`, as its
/// standard input; `exchange` talks to it; then it must exit 0 by itself, saying why, with
/// the summary line `summary` and no listener but that socket.
fn served_until_idle(
    service: &str,
    stdin: impl Into<OwnedFd>,
    addr: SocketAddr,
    exchange: impl FnOnce(),
    summary: String,
) {
    let mut p = spawn_with_stdin(&["--inetd", service, "--exit-idle", "1"], stdin);
    let (transport, name) = service.split_once(':').unwrap();
    p.wait_for(&format!(
        "listening on {transport} {addr} ({name}), passed by the inetd"
    ));
    exchange();
    assert_eq!(p.wait_exit(), 0, "{}", p.seen.join("\n"));
    let log = p.seen.join("\n");
    assert!(log.contains("nothing open for 1 s (--exit-idle)"), "{log}");
    assert!(log.contains(&summary), "{log}");
    assert_eq!(log.matches("listening on").count(), 1, "{log}");
}

#[test]
fn a_listening_socket_on_stdin_is_served_until_nothing_is_open_for_exit_idle() {
    let (listener, addr) = loopback_listener();
    let exchange = || assert_eq!(count_reply(addr, b"hello\n"), "You entered 5 characters.\n");
    served_until_idle("tcp:count", listener, addr, exchange, summary(1, 0));
}

#[test]
fn a_udp_socket_on_stdin_is_served_until_no_datagram_came_for_exit_idle() {
    let (socket, addr) = loopback_udp();
    let exchange = || assert_eq!(udp_ask(&udp_client(addr), addr, b"ping"), b"ping");
    served_until_idle("udp:echo", socket, addr, exchange, summary(0, 1));
}

#[test]
fn a_held_connection_and_datagrams_keep_the_daemon_serving() {
    // --exit-idle 2, and the test keeps the daemon busy for 3 s: a connection held all along,
    // then a datagram every 0.2 s. Each gap is a tenth of the idle time.
    let (listener, tcp) = loopback_listener();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_addr = udp.local_addr().unwrap();
    drop(udp);
    let mut p = spawn_with_stdin(
        &[
            "--inetd",
            "tcp:count",
            "--udp",
            &format!("time@{udp_addr}"),
            "--exit-idle",
            "2",
        ],
        listener,
    );
    p.wait_for(&format!("listening on udp {udp_addr} (time)"));
    let mut held = count_client(tcp);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        thread::sleep(Duration::from_millis(200));
        assert!(
            p.child.try_wait().unwrap().is_none(),
            "it exited while a connection was held"
        );
    }
    held.write_all(b"abc\n").unwrap();
    held.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut held), b"You entered 3 characters.\n");
    // Had the idle time passed, the drain would have closed the UDP socket: no answer.
    let client = udp_client(udp_addr);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_time_is_now(udp_ask(&client, udp_addr, b""), Epoch::Unix);
        assert!(
            p.child.try_wait().unwrap().is_none(),
            "it exited while datagrams came"
        );
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(p.wait_exit(), 0, "{}", p.seen.join("\n"));
    let log = p.seen.join("\n");
    assert!(log.contains("nothing open for 2 s (--exit-idle)"), "{log}");
    assert!(log.contains("connections served 1,"), "{log}");
}

#[test]
fn a_standard_input_that_is_not_the_socket_asked_for_exits_1_naming_fd_0() {
    let (tcp, _) = loopback_listener();
    let (udp, _) = loopback_udp();
    let unlistened =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    unlistened
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let cases: [(&str, OwnedFd, &str); 4] = [
        (
            "tcp:count",
            udp.into(),
            "is a datagram (UDP) socket: use --inetd udp:SERVICE",
        ),
        (
            "udp:time",
            tcp.into(),
            "is a stream (TCP) socket: use --inetd tcp:SERVICE",
        ),
        (
            "tcp:echo",
            unlistened.into(),
            "is a TCP socket that is not listening (the inetd passes a listening socket \
             only to a wait service: use wait, not nowait)",
        ),
        ("tcp:count", null.into(), "is not a socket"),
    ];
    for (service, stdin, says) in cases {
        let ended = spawn_with_stdin(&["--inetd", service], stdin).finish();
        assert_eq!(ended.code, 1, "{service}: {}", ended.stderr);
        let want = format!("ERROR standard input (fd 0, --inetd {service}) {says}");
        assert!(ended.stderr.contains(&want), "{service}: {}", ended.stderr);
        assert!(!ended.stderr.contains("listening on"), "{}", ended.stderr);
    }
}

#[test]
fn usage_errors_of_inetd_and_exit_idle_exit_2_with_a_hint() {
    for (args, says) in [
        (
            &["--console", "--inetd", "tcp:ack"][..],
            "--console cannot go with --inetd: standard input is the inetd's socket",
        ),
        (
            &["--inetd", "tcp:ack", "--console"],
            "--console cannot go with --inetd",
        ),
        (&["--inetd", "udp:count"], "--inetd: count runs on tcp only"),
        (&["--inetd", "count"], "--inetd: expected tcp:SERVICE"),
        (
            &["--inetd", "tcp:count", "--inetd", "udp:time"],
            "--inetd: given twice",
        ),
        (
            &["--exit-idle", "-1"],
            "--exit-idle: '-1' is out of range (0 to 31536000 s)",
        ),
        (
            &["--exit-idle", "31536001"],
            "--exit-idle: '31536001' is out of range (0 to 31536000 s)",
        ),
        (
            &["--exit-idle", "soon"],
            "--exit-idle: 'soon' is not a number of seconds",
        ),
    ] {
        let ended = Proc::spawn(args, "info").finish();
        assert_eq!(ended.code, 2, "{args:?}: {}", ended.stderr);
        assert!(
            ended.stderr.contains(&format!("oneloop: {says}")),
            "{args:?}: {}",
            ended.stderr
        );
        assert!(
            ended.stderr.contains("Try 'oneloop --help'."),
            "{}",
            ended.stderr
        );
    }
}

/// Whether this machine can run the namespaced tests (root, `unshare`, and the programs in
/// `need`); when it cannot, says why, and fails under CI.
fn can_stage(test: &str, need: &[&str]) -> bool {
    // SAFETY: geteuid has no preconditions.
    let missing = if unsafe { libc::geteuid() } != 0 {
        Some("root".to_string())
    } else if !Command::new("unshare")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        Some("the `unshare` command (util-linux)".to_string())
    } else {
        need.iter()
            .find(|path| !Path::new(path).exists())
            .map(|path| format!("{path} (Debian: apt-get install openbsd-inetd)"))
    };
    match missing {
        None => true,
        Some(missing) => {
            skip_for_want_of(test, &missing);
            false
        }
    }
}

/// A directory of the test's holding the datagram socket `log`; in the namespace of
/// [`in_namespace`] it is `/dev`, so what goes to `/dev/log` arrives here.
struct DevLog {
    dir: PathBuf,
    socket: UnixDatagram,
    /// Every datagram received so far.
    seen: Vec<String>,
}

impl DevLog {
    fn new(test: &str) -> DevLog {
        let dir = std::env::temp_dir().join(format!("oneloop-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = UnixDatagram::bind(dir.join("log")).unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        DevLog {
            dir,
            socket,
            seen: Vec::new(),
        }
    }

    /// `program ARGS` in a mount namespace of its own whose `/dev` is this directory.
    fn in_namespace(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "sh",
            "-c",
            "mount --bind \"$1\" /dev && shift && exec \"$@\"",
        ])
        .arg("sh")
        .arg(&self.dir)
        .arg(program)
        .args(args);
        sandbox_if_asked(&mut cmd);
        cmd
    }

    /// Waits (bounded) until `n` datagrams seen contain `needle`; returns them.
    fn wait_for_n(&mut self, needle: &str, n: usize) -> Vec<String> {
        let matching = |seen: &[String]| -> Vec<String> {
            seen.iter()
                .filter(|l| l.contains(needle))
                .cloned()
                .collect()
        };
        let deadline = Instant::now() + WAIT;
        let mut buf = vec![0; 4096];
        while matching(&self.seen).len() < n {
            assert!(
                Instant::now() < deadline,
                "no {n} syslog lines with {needle:?}; seen:\n{}",
                self.seen.join("\n")
            );
            match self.socket.recv(&mut buf) {
                Ok(len) => self
                    .seen
                    .push(String::from_utf8_lossy(&buf[..len]).into_owned()),
                Err(e) => panic!(
                    "no syslog line with {needle:?} ({e}); seen:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
        matching(&self.seen)
    }
}

impl Drop for DevLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A child process killed (and reaped) when dropped, so a failing test leaves none behind.
struct Killed(Child);

impl Killed {
    /// Waits (bounded) for the exit status code.
    fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "the process did not exit");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn with_every_standard_stream_the_socket_the_log_goes_to_syslog_and_clients_get_the_protocol() {
    let test = "inetd_streams";
    if !can_stage(test, &[]) {
        return;
    }
    let mut dev_log = DevLog::new(test);
    let (listener, addr) = loopback_listener();
    let fd: OwnedFd = listener.into();
    let mut daemon = Killed(
        dev_log
            .in_namespace(ONELOOP, &["--inetd", "tcp:count", "--exit-idle", "1"])
            .env("RUST_LOG", "debug")
            .stdin(Stdio::from(fd.try_clone().unwrap()))
            .stdout(Stdio::from(fd.try_clone().unwrap()))
            .stderr(Stdio::from(fd))
            .spawn()
            .expect("spawn unshare"),
    );
    let pid = daemon.0.id();
    let listening =
        format!("<30>oneloop[{pid}]: listening on tcp {addr} (count), passed by the inetd");
    dev_log.wait_for_n(&listening, 1);
    // The client gets the protocol's bytes and nothing else, while the daemon logs (at
    // debug) every step of its connection.
    let mut client = connect(addr);
    let mut want = welcome_for(&client);
    client.write_all(b"hello\n").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    want.extend_from_slice(b"You entered 5 characters.\n");
    assert_eq!(
        String::from_utf8_lossy(&read_to_end(&mut client)),
        String::from_utf8_lossy(&want)
    );
    dev_log.wait_for_n(&format!("<31>oneloop[{pid}]: conn 0: accepted from"), 1);
    assert_eq!(
        daemon.wait_exit(),
        0,
        "syslog:\n{}",
        dev_log.seen.join("\n")
    );
    dev_log.wait_for_n(&format!("<30>oneloop[{pid}]: {}", summary(1, 0)), 1);
    // Every line the daemon logged went to syslog, one datagram each.
    for line in &dev_log.seen {
        assert!(line.starts_with('<') && !line.ends_with('\n'), "{line:?}");
    }
}

/// Port numbers of loopback sockets that were free a moment ago, one a transport.
fn free_ports() -> (u16, u16) {
    let (tcp, tcp_addr) = loopback_listener();
    let (udp, udp_addr) = loopback_udp();
    drop((tcp, udp));
    (tcp_addr.port(), udp_addr.port())
}

/// The socket inodes process `pid` holds.
fn socket_inodes(pid: u32) -> HashSet<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect()
}

/// Whether process `pid` holds the socket bound to 127.0.0.1:`port` in `/proc/net/TABLE`
/// (`tcp`: listening; `udp`: bound).
fn holds(pid: u32, table: &str, port: u16) -> bool {
    let inodes = socket_inodes(pid);
    let local = format!("0100007F:{port:04X}");
    let state = if table == "tcp" { "0A" } else { "07" };
    std::fs::read_to_string(format!("/proc/net/{table}"))
        .unwrap_or_default()
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .any(|f| f.len() > 9 && f[1] == local && f[3] == state && inodes.contains(f[9]))
}

/// openbsd-inetd in the foreground (`-d`, which logs each start and reaping to stderr),
/// serving `tcp:count` and `udp:time` through the daemon with `--exit-idle 1`, inside the
/// namespace of `dev_log`; its TCP and UDP addresses.
fn start_inetd(dev_log: &DevLog) -> (Proc, SocketAddr, SocketAddr) {
    // The ports were free when picked; the inetd is known to hold them only once its
    // sockets show in /proc/net, and another try takes other ports if it does not.
    for _ in 0..3 {
        let (tcp, udp) = free_ports();
        let conf = dev_log.dir.join("inetd.conf");
        let line = |port: u16, kind: &str, service: &str| {
            format!(
                "127.0.0.1:{port} {kind} wait root {ONELOOP} oneloop --inetd {service} \
                 --exit-idle 1{}\n",
                common::sandbox_suffix()
            )
        };
        let text = line(tcp, "stream tcp", "tcp:count") + &line(udp, "dgram udp", "udp:time");
        std::fs::write(&conf, text).unwrap();
        let mut cmd = dev_log.in_namespace(INETD, &["-d", conf.to_str().unwrap()]);
        let inetd = Proc::spawn_cmd(&mut cmd);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let pid = inetd.child.id();
            if holds(pid, "tcp", tcp) && holds(pid, "udp", udp) {
                let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
                return (inetd, addr(tcp), addr(udp));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("the inetd did not come to listen on the ports picked, three times");
}

/// The pid of each start of the daemon the inetd's debug output told, in order.
fn starts(inetd: &Proc) -> Vec<String> {
    inetd
        .seen
        .iter()
        .filter_map(|line| line.strip_suffix(&format!(" execv {ONELOOP}")))
        .map(str::to_string)
        .collect()
}

#[test]
fn under_openbsd_inetd_the_daemon_serves_exits_when_idle_and_is_started_again() {
    let test = "under_openbsd_inetd";
    if !can_stage(test, &[INETD]) {
        return;
    }
    let mut dev_log = DevLog::new(test);
    let (mut inetd, tcp, udp) = start_inetd(&dev_log);

    // First client: the inetd starts the daemon with its listening socket.
    assert_eq!(count_reply(tcp, b"hello\n"), "You entered 5 characters.\n");
    // Nothing open for 1 s: the daemon exits 0, and the inetd takes the socket back.
    inetd.wait_for_nth("reaped, status 0", 1);
    inetd.wait_for_nth(&format!("restored {}", tcp.port()), 1);
    // Second client: a new daemon.
    assert_eq!(count_reply(tcp, b"again\n"), "You entered 5 characters.\n");
    inetd.wait_for_nth("reaped, status 0", 2);
    let tcp_starts = starts(&inetd);
    assert_eq!(tcp_starts.len(), 2, "{}", inetd.seen.join("\n"));
    assert_ne!(tcp_starts[0], tcp_starts[1]);
    // Each one said so in syslog: its start, then its summary on its way out.
    for pid in &tcp_starts {
        let said = |what: &str| format!("oneloop[{pid}]: {what}");
        dev_log.wait_for_n(
            &said(&format!(
                "listening on tcp {tcp} (count), passed by the inetd"
            )),
            1,
        );
        dev_log.wait_for_n(&said("nothing open for 1 s (--exit-idle)"), 1);
        dev_log.wait_for_n(&said(&summary(1, 0)), 1);
    }

    // UDP time: a 4-byte answer, then the same idle exit.
    let client = udp_client(udp);
    assert_time_is_now(udp_ask(&client, udp, b""), Epoch::Unix);
    inetd.wait_for_nth("reaped, status 0", 3);
    let all = starts(&inetd);
    assert_eq!(all.len(), 3, "{}", inetd.seen.join("\n"));
    let said = |what: &str| format!("oneloop[{}]: {what}", all[2]);
    dev_log.wait_for_n(
        &said(&format!(
            "listening on udp {udp} (time), passed by the inetd"
        )),
        1,
    );
    dev_log.wait_for_n(&said(&summary(0, 1)), 1);
    // The inetd goes when `inetd` is dropped; it held the sockets all along.
    assert!(holds(inetd.child.id(), "tcp", tcp.port()));
}
