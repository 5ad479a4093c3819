//! Under an inetd ("wait" mode): `--inetd TRANSPORT:SERVICE` serves the socket on standard
//! input, `--exit-idle SECS` ends the daemon once nothing is open, and the log goes to
//! syslog (`/dev/log`) unless standard error is the journal: never to a client (openbsd-inetd
//! and xinetd make standard error the socket), never lost (BusyBox inetd leaves standard error
//! its own, `/dev/null` once it runs in the background).
//!
//! The daemon binary runs with a socket the test made as its standard input, and under a
//! real inetd (Debian's openbsd-inetd, `/usr/sbin/inetd`; xinetd in tests/xinetd.rs). The
//! syslog tests run the daemon (or the inetd) in a mount namespace with a `/dev/log` of the
//! test's own (`common::inetd`). They need root, `unshare` and (for the inetd)
//! openbsd-inetd; without them they are skipped with a message, except under CI
//! (`CI=true`), where a skip would hide them: there they fail.

mod common;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::inetd::*;
use common::*;
use oneloop::proto::Epoch;

const INETD: &str = "/usr/sbin/inetd";

/// `oneloop ARGS` with `stdin` as its standard input, as systemd runs an inetd-style service
/// (`StandardInput=socket`): standard error is the journal (`JOURNAL_STREAM` names it), so
/// the daemon logs there, and the test reads it.
fn spawn_with_stdin(args: &[&str], stdin: impl Into<OwnedFd>) -> Proc {
    Proc::spawn_cmd_journal(
        Command::new(ONELOOP).args(args).env("RUST_LOG", "info"),
        Stdio::from(stdin.into()),
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

/// `oneloop --inetd tcp:count --exit-idle 1` at `RUST_LOG=log` in the namespace of
/// `dev_log`, as an inetd starts it: a listening socket on `addr` on standard input and
/// output, and as standard error `stderr` (`None`: the socket as well).
fn started_as_by_an_inetd(
    dev_log: &DevLog,
    log: &str,
    stderr: Option<Stdio>,
) -> (Killed, SocketAddr) {
    let (listener, addr) = loopback_listener();
    let fd: OwnedFd = listener.into();
    let stderr = stderr.unwrap_or_else(|| Stdio::from(fd.try_clone().unwrap()));
    let args = daemon_args(&["--inetd", "tcp:count", "--exit-idle", "1"]);
    let daemon = dev_log
        .in_namespace(ONELOOP, &args)
        .env("RUST_LOG", log)
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::from(fd.try_clone().unwrap()))
        .stdout(Stdio::from(fd))
        .stderr(stderr)
        .spawn()
        .expect("spawn unshare");
    (Killed(daemon), addr)
}

#[test]
fn with_every_standard_stream_the_socket_the_log_goes_to_syslog_and_clients_get_the_protocol() {
    // openbsd-inetd and xinetd put the socket on standard error too.
    let test = "inetd_streams";
    if !can_stage(test, &[]) {
        return;
    }
    let mut dev_log = DevLog::new(test);
    let (mut daemon, addr) = started_as_by_an_inetd(&dev_log, "debug", None);
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

#[test]
fn with_standard_error_the_inetds_own_as_busybox_leaves_it_the_log_goes_to_syslog() {
    // BusyBox inetd puts the socket on standard input and output only; standard error stays
    // its own: /dev/null once it runs in the background.
    let test = "inetd_stderr_null";
    if !can_stage(test, &[]) {
        return;
    }
    let mut dev_log = DevLog::new(test);
    let (mut daemon, addr) = started_as_by_an_inetd(&dev_log, "info", Some(Stdio::null()));
    let pid = daemon.0.id().to_string();
    dev_log.wait_for_n(&format!("<30>oneloop[{pid}]: listening on tcp {addr}"), 1);
    assert_eq!(count_reply(addr, b"hello\n"), "You entered 5 characters.\n");
    assert_eq!(
        daemon.wait_exit(),
        0,
        "syslog:\n{}",
        dev_log.seen.join("\n")
    );
    dev_log.wait_for_run(&pid, &format!("tcp {addr} (count)"), &summary(1, 0));
}

#[test]
fn under_an_inetd_a_standard_error_that_is_the_journal_keeps_the_log() {
    // systemd's inetd-style services: the socket on standard input, standard error the
    // journal. A /dev/log of the test's own shows that nothing goes to syslog.
    let test = "inetd_stderr_journal";
    if !can_stage(test, &[]) {
        return;
    }
    let mut dev_log = DevLog::new(test);
    let (listener, addr) = loopback_listener();
    let args = daemon_args(&["--inetd", "tcp:count", "--exit-idle", "1"]);
    let mut p = Proc::spawn_cmd_journal(
        dev_log.in_namespace(ONELOOP, &args).env("RUST_LOG", "info"),
        Stdio::from(OwnedFd::from(listener)),
    );
    p.wait_for(&format!(
        "<6>INFO  listening on tcp {addr} (count), passed by the inetd"
    ));
    assert_eq!(count_reply(addr, b"hello\n"), "You entered 5 characters.\n");
    assert_eq!(p.wait_exit(), 0, "{}", p.seen.join("\n"));
    p.wait_for(&format!("<6>INFO  {}", summary(1, 0)));
    // Each datagram is queued as it is sent: those of a daemon that has exited are all here.
    let seen = dev_log.drain();
    assert!(seen.is_empty(), "{seen:?}");
}

/// openbsd-inetd in the foreground (`-d`, which logs each start and reaping to stderr),
/// serving `tcp:count` and `udp:time` through the daemon with `--exit-idle 1`, inside the
/// namespace of `dev_log`; its TCP and UDP addresses.
fn start_openbsd_inetd(dev_log: &DevLog) -> (Proc, SocketAddr, SocketAddr) {
    start_inetd(|tcp, udp| {
        let conf = dev_log.dir.join("inetd.conf");
        let line = |port: u16, kind: &str, service: &str| {
            let args = daemon_args(&["--inetd", service, "--exit-idle", "1"]).join(" ");
            format!("127.0.0.1:{port} {kind} wait root {ONELOOP} oneloop {args}\n")
        };
        let text = line(tcp, "stream tcp", "tcp:count") + &line(udp, "dgram udp", "udp:time");
        std::fs::write(&conf, text).unwrap();
        dev_log.in_namespace(INETD, &["-d", conf.to_str().unwrap()])
    })
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
    if !can_stage(test, &[(INETD, "Debian: apt-get install openbsd-inetd")]) {
        return;
    }
    let mut dev_log = DevLog::new(test);
    let (mut inetd, tcp, udp) = start_openbsd_inetd(&dev_log);

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
        dev_log.wait_for_run(pid, &format!("tcp {tcp} (count)"), &summary(1, 0));
    }

    // UDP time: a 4-byte answer, then the same idle exit.
    let client = udp_client(udp);
    assert_time_is_now(udp_ask(&client, udp, b""), Epoch::Unix);
    inetd.wait_for_nth("reaped, status 0", 3);
    let all = starts(&inetd);
    assert_eq!(all.len(), 3, "{}", inetd.seen.join("\n"));
    dev_log.wait_for_run(&all[2], &format!("udp {udp} (time)"), &summary(0, 1));
    // The inetd goes when `inetd` is dropped; it held the sockets all along.
    assert!(holds(inetd.child.id(), "tcp", tcp.port()));
}

/// Shuts down the listening socket `ours` shares with the daemon, as an inetd that gives
/// up a service may: the daemon's `accept` then fails with `EINVAL`, for ever.
fn shut_down_the_shared_listener(ours: &TcpListener) {
    socket2::SockRef::from(ours)
        .shutdown(Shutdown::Both)
        .expect("shutdown of the test's copy of the listener");
}

/// The CPU time (clock ticks) a process whose standard input was shut down as a listener
/// uses until it ends by itself; fails (naming the ticks) when it does not end within
/// `WAIT`.
fn ticks_until_it_ends(p: &mut Proc) -> u64 {
    let (pid, start) = (p.pid(), Instant::now());
    let before = cpu_ticks(pid);
    // A process that ended is a zombie until it is waited for: its times are still there.
    while stat_fields(pid)[0] != "Z" {
        assert!(
            start.elapsed() < WAIT,
            "still running {WAIT:?} after the shutdown, {} clock ticks of CPU used since; stderr:\n{}",
            cpu_ticks(pid) - before,
            p.seen.join("\n")
        );
        thread::sleep(Duration::from_millis(10));
    }
    cpu_ticks(pid) - before
}

#[test]
fn a_listener_shut_down_by_its_other_holder_is_retired_and_the_daemon_exits_1() {
    let (listener, addr) = loopback_listener();
    let ours = listener.try_clone().unwrap();
    let mut p = spawn_with_stdin(&["--inetd", "tcp:count"], listener);
    p.wait_for(&format!(
        "listening on tcp {addr} (count), passed by the inetd"
    ));
    shut_down_the_shared_listener(&ours);
    // A loop that retried the accept would spin a core for the whole wait: 0.5 s of CPU is
    // a twentieth of it, and ending takes a few milliseconds.
    let ticks = ticks_until_it_ends(&mut p);
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    assert!(ticks < per_second / 2, "{ticks} clock ticks of CPU");
    assert_eq!(p.wait_exit(), 1, "{}", p.seen.join("\n"));
    let log = p.seen.join("\n");
    assert!(
        log.contains(&format!(
            "ERROR tcp {addr} (count): cannot accept: invalid argument; the listener can never \
             accept again and is closed"
        )),
        "{log}"
    );
    assert!(log.contains("ERROR nothing left to serve"), "{log}");
    assert!(log.contains(&summary(0, 0)), "{log}");
}

#[test]
fn when_one_listener_is_retired_the_others_go_on_serving() {
    let (listener, passed) = loopback_listener();
    let ours = listener.try_clone().unwrap();
    let mut p = spawn_with_stdin(
        &["--inetd", "tcp:count", "--tcp", "echo@127.0.0.1:0"],
        listener,
    );
    let echo = p.listening(2)[0];
    p.wait_for(&format!(
        "listening on tcp {passed} (count), passed by the inetd"
    ));
    shut_down_the_shared_listener(&ours);
    p.wait_for(&format!(
        "tcp {passed} (count): cannot accept: invalid argument"
    ));
    let before = cpu_ticks(p.pid());
    let mut s = connect(echo);
    s.write_all(b"still here\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut s), b"still here\n");
    wait_asleep(p.pid());
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let ticks = cpu_ticks(p.pid()) - before;
    assert!(ticks < per_second / 2, "{ticks} clock ticks of CPU");
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0, "{}", p.seen.join("\n"));
    let log = p.seen.join("\n");
    assert!(log.contains(&summary(1, 0)), "{log}");
    assert!(!log.contains("nothing left to serve"), "{log}");
}
