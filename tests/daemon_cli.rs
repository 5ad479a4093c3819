//! The built `oneloop` binary run as a daemon: its `listening on` lines, usage and bind errors,
//! SIGTERM/SIGINT and the drain, SO_REUSEADDR and TIME_WAIT, SO_BINDTODEVICE, running out of
//! file descriptors, idleness without wake-ups, and what each log level shows.

use std::collections::HashSet;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::thread;
use std::time::Duration;

mod common;
use common::{
    connect, context_switches, count_client, count_reply, cpu_ticks, read_exact, read_to_end,
    status_kb, udp_ask, udp_client, wait_asleep, wait_until, welcome_for, Ended, Proc, WAIT,
};

/// A count line and the reply it gets.
const LINE: &[u8] = b"hello\n";
const REPLY: &str = "You entered 5 characters.\n";

/// Socket states as /proc/net/tcp writes them.
const TIME_WAIT: &str = "06";
const LISTEN: &str = "0A";

/// How many `--tcp`/`--udp` instances an argument list asks for.
fn instance_count(args: &[&str]) -> usize {
    args.iter()
        .filter(|a| matches!(**a, "--tcp" | "--udp"))
        .count()
}

/// Starts `oneloop ARGS` with `RUST_LOG=log`; returns it and the addresses of its
/// `listening on` lines.
fn daemon(args: &[&str], log: &str) -> (Proc, Vec<SocketAddr>) {
    let mut p = Proc::spawn(args, log);
    let addrs = p.listening(instance_count(args));
    (p, addrs)
}

/// Waits for the daemon's first log line: `Err(line)` when it is a bind failure, else the
/// addresses of its first `n` `listening on` lines.
fn started(p: &mut Proc, n: usize) -> Result<Vec<SocketAddr>, String> {
    let first = p.wait_for("");
    if first.contains("cannot bind") {
        Err(first)
    } else {
        Ok(p.listening(n))
    }
}

/// Sends SIGTERM and checks that the daemon exits 0.
fn stop(p: &mut Proc) {
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0, "stderr:\n{}", p.seen.join("\n"));
}

/// Runs `oneloop ARGS` until it exits (bounded).
fn run_to_end(args: &[&str]) -> Ended {
    Proc::spawn(args, "info").finish()
}

/// Checks that `oneloop ARGS` exits 1 saying `cannot bind WHAT: REASON`, having listened on
/// nothing.
fn assert_bind_fails(args: &[&str], what: &str, reason: &str) {
    let run = run_to_end(args);
    assert_eq!(run.code, 1, "{args:?}; stderr:\n{}", run.stderr);
    let want = format!("cannot bind {what}: {reason}");
    assert!(
        run.stderr.contains(&want),
        "no {want:?} in stderr:\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains("listening on"), "{}", run.stderr);
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Reads the count welcome on a connection made with [`connect`].
fn read_welcome(s: &mut TcpStream) {
    let want = welcome_for(s);
    let got = read_exact(s, want.len());
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
}

/// After the welcome: sends [`LINE`] and reads the reply up to the server's EOF, keeping the
/// write side open, so the server is the side that closes first.
fn send_line_and_read_reply(s: &mut TcpStream) {
    s.write_all(LINE).unwrap();
    assert_eq!(String::from_utf8_lossy(&read_to_end(s)), REPLY);
}

/// One row of /proc/net/tcp: local port, remote port, state.
type TcpRow = (u16, u16, String);

/// The IPv4 TCP sockets of this network namespace, from /proc/net/tcp.
fn tcp_sockets() -> Vec<TcpRow> {
    let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next().unwrap(), 16).unwrap();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (port(fields[1]), port(fields[2]), fields[3].to_string())
        })
        .collect()
}

/// A count daemon on loopback with `extra` options, one count client that has read its
/// welcome, and the drain begun by SIGTERM (its log line seen).
fn draining(extra: &[&str]) -> (Proc, SocketAddr, TcpStream) {
    let mut args = vec!["--tcp", "count@127.0.0.1:0"];
    args.extend_from_slice(extra);
    let (mut p, addrs) = daemon(&args, "info");
    let client = count_client(addrs[0]);
    p.signal(libc::SIGTERM);
    let line = p.wait_for("SIGTERM: no longer accepting;");
    assert!(line.contains("1 connection(s)"), "{line}");
    (p, addrs[0], client)
}

/// One count exchange with a daemon logging at `log`, then SIGTERM: every stderr line.
fn count_exchange_log(log: &str, line: &[u8]) -> Vec<String> {
    let (mut p, addrs) = daemon(&["--tcp", "count@127.0.0.1:0"], log);
    let reply = count_reply(addrs[0], line);
    assert!(reply.starts_with("You entered "), "{reply:?}");
    stop(&mut p);
    std::mem::take(&mut p.seen)
}

/// Runs a count daemon on 127.0.0.1:PORT, makes three exchanges that the server closes first,
/// stops it, and checks that the server's side of each is left in TIME_WAIT.
fn serve_and_leave_time_wait(port: u16) {
    let spec = format!("count@127.0.0.1:{port}");
    let (mut p, addrs) = daemon(&["--tcp", &spec], "info");
    let mut peers = Vec::new();
    for _ in 0..3 {
        let mut s = count_client(addrs[0]);
        send_line_and_read_reply(&mut s);
        peers.push(s.local_addr().unwrap().port());
    }
    stop(&mut p);
    let table = tcp_sockets();
    for peer in peers {
        let row = (port, peer, TIME_WAIT.to_string());
        assert!(
            table.contains(&row),
            "no server-side TIME_WAIT {row:?} in {table:?}"
        );
    }
}

#[test]
fn listening_lines_give_the_real_port_of_every_instance() {
    let args = [
        "--tcp",
        "count@127.0.0.1:0",
        "--tcp",
        "echo@127.0.0.1:0",
        "--udp",
        "time@127.0.0.1:0",
    ];
    let (mut p, addrs) = daemon(&args, "info");
    let asked = [("tcp", "count"), ("tcp", "echo"), ("udp", "time")];
    for (addr, (transport, service)) in addrs.iter().zip(asked) {
        assert_ne!(addr.port(), 0);
        let want = format!("listening on {transport} {addr} ({service})");
        assert!(
            p.seen.iter().any(|l| l.ends_with(&want)),
            "no {want:?} in {:?}",
            p.seen
        );
    }
    count_client(addrs[0]);
    let mut echo = connect(addrs[1]);
    echo.write_all(b"ping").unwrap();
    echo.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut echo), b"ping");
    assert_eq!(udp_ask(&udp_client(addrs[2]), addrs[2], b"").len(), 4);
    stop(&mut p);
}

#[test]
fn usage_errors_exit_2_with_a_hint() {
    for (args, says) in [
        (&["--bogus"][..], "unknown option '--bogus'"),
        (
            &["--max-line", "ten"],
            "--max-line: 'ten' is not a whole number",
        ),
        (&["--tcp", "bogus@:1"], "unknown service"),
        (&["--tcp", "count"], "expected SERVICE@[HOST]:PORT"),
        (&["--udp", "count@:1"], "count runs on tcp only"),
        (
            &["--tcp", "count@[127.0.0.1]:1"],
            "brackets are for IPv6 addresses only: count@127.0.0.1:1",
        ),
        (
            &["--tcp", "count@::1:1"],
            "IPv6 addresses go in brackets: count@[::1]:1",
        ),
        (&["--tcp", "count@:65536"], "port: '65536' is out of range"),
        (&["--activated", "=count"], "the NAME of '=count' is empty"),
        (&["--activated", "web="], "expected NAME=SERVICE"),
        (
            &["--backlog", "-1"],
            "--backlog: '-1' is out of range (1 to 65535)",
        ),
        (
            &["--idle-timeout", "nan"],
            "--idle-timeout: 'nan' is not a number of seconds",
        ),
        (
            &["--max-connections", "1.5"],
            "--max-connections: '1.5' is not a whole number (1 to 1000000 connections)",
        ),
    ] {
        let run = run_to_end(args);
        assert_eq!(run.code, 2, "{args:?}; stderr:\n{}", run.stderr);
        assert!(
            run.stderr.contains(says),
            "{args:?}: no {says:?} in\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("Try 'oneloop --help'"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("listening on"),
            "{args:?}: {}",
            run.stderr
        );
    }
}

#[test]
fn an_rcvbuf_past_what_the_kernel_takes_is_a_usage_error_not_the_minimum_buffer() {
    // The size reaches the kernel as an `int`: 2^32 would become 0, which Linux raises to its
    // smallest buffer.
    let run = run_to_end(&["--tcp", "count@127.0.0.1:0", "--rcvbuf", "4294967296"]);
    assert_eq!(run.code, 2, "stderr:\n{}", run.stderr);
    assert!(
        run.stderr.contains(
            "oneloop: --rcvbuf: '4294967296' is out of range (1 to 1073741823 bytes)\n\
             Try 'oneloop --help'."
        ),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("listening on"), "{}", run.stderr);
}

#[test]
fn help_exits_0_and_lists_every_flag() {
    for args in [&["--help"][..], &["-h"], &["serve", "--help"]] {
        let run = run_to_end(args);
        assert_eq!(run.code, 0, "{args:?}; stderr:\n{}", run.stderr);
        for flag in [
            "--tcp",
            "--udp",
            "--max-line",
            "--idle-timeout",
            "--max-connections",
            "--max-refusals",
            "--max-output",
            "--linger",
            "--shutdown-grace",
            "--ack-reply",
            "--time-epoch",
            "--backlog",
            "--no-reuseaddr",
            "--reuseport",
            "--keepalive",
            "--nodelay",
            "--rcvbuf",
            "--sndbuf",
            "--bind-device",
            "--ipv6-only",
            "--help",
            "--version",
        ] {
            assert!(
                run.stdout.contains(flag),
                "{args:?}: no {flag} in\n{}",
                run.stdout
            );
        }
    }
}

#[test]
fn version_exits_0_and_prints_the_version() {
    for flag in ["--version", "-V"] {
        let run = run_to_end(&[flag]);
        assert_eq!(run.code, 0, "{flag}; stderr:\n{}", run.stderr);
        assert_eq!(
            run.stdout,
            format!("oneloop {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn a_port_in_use_is_a_bind_failure_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let spec = format!("count@{addr}");
    assert_bind_fails(
        &["--tcp", &spec],
        &format!("tcp {addr}"),
        "address already in use",
    );
}

#[test]
fn sigterm_lets_the_request_in_flight_finish() {
    let (mut p, _, mut client) = draining(&[]);
    send_line_and_read_reply(&mut client);
    drop(client);
    assert_eq!(p.wait_exit(), 0, "stderr:\n{}", p.seen.join("\n"));
    p.wait_for("connections served 1, refused 0, timed out 0, denied 0, limited 0; datagrams answered 0, dropped 0, denied 0, limited 0");
}

#[test]
fn new_connections_are_refused_once_the_drain_began() {
    // A long grace: on a loaded machine the checks below may take seconds, and the drain
    // must not end before the reply is asked for.
    let (mut p, addr, mut client) = draining(&["--shutdown-grace", "60"]);
    wait_until("the listener to close", || {
        !tcp_sockets()
            .iter()
            .any(|(local, _, state)| *local == addr.port() && state == LISTEN)
    });
    let refused = TcpStream::connect_timeout(&addr, WAIT).expect_err("connected while draining");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    send_line_and_read_reply(&mut client);
    drop(client);
    assert_eq!(p.wait_exit(), 0, "stderr:\n{}", p.seen.join("\n"));
}

#[test]
fn sigterm_tells_a_request_unfinished_after_the_grace_period_that_the_server_is_shutting_down() {
    let (mut p, _, mut client) = draining(&["--shutdown-grace", "0.5"]);
    let got = read_to_end(&mut client);
    assert_eq!(
        String::from_utf8_lossy(&got),
        "Error: server shutting down\n"
    );
    assert_eq!(p.wait_exit(), 0, "stderr:\n{}", p.seen.join("\n"));
}

#[test]
fn a_second_signal_stops_at_once() {
    let (mut p, _, _client) = draining(&["--shutdown-grace", "30"]);
    p.signal(libc::SIGINT);
    assert_eq!(p.wait_exit(), 0, "stderr:\n{}", p.seen.join("\n"));
    p.wait_for("SIGINT again: stopping at once");
    p.wait_for("connections served 1, refused 0");
}

#[test]
fn a_restarted_daemon_binds_its_port_despite_time_wait() {
    let port = free_port();
    serve_and_leave_time_wait(port);
    let spec = format!("count@127.0.0.1:{port}");
    let (mut p, addrs) = daemon(&["--tcp", &spec], "info");
    assert_eq!(addrs[0].port(), port);
    send_line_and_read_reply(&mut count_client(addrs[0]));
    stop(&mut p);
}

#[test]
fn without_reuseaddr_a_restart_fails_while_time_wait_lasts() {
    let port = free_port();
    serve_and_leave_time_wait(port);
    let spec = format!("count@127.0.0.1:{port}");
    assert_bind_fails(
        &["--no-reuseaddr", "--tcp", &spec],
        &format!("tcp 127.0.0.1:{port}"),
        "address already in use",
    );
}

#[test]
fn an_idle_daemon_makes_no_wake_ups() {
    // Short deadlines: a timer left armed after the exchange would fire within the wait.
    let args = [
        "--tcp",
        "count@127.0.0.1:0",
        "--idle-timeout",
        "1",
        "--linger",
        "1",
    ];
    let (mut p, addrs) = daemon(&args, "debug");
    count_reply(addrs[0], LINE);
    p.wait_for("-> closed: ");
    let pid = p.pid();
    wait_asleep(pid);
    let before = context_switches(pid);
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        context_switches(pid),
        before,
        "(voluntary, involuntary) switches while idle"
    );
    stop(&mut p);
}

#[test]
fn out_of_descriptors_pauses_accepting_without_spinning() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oneloop"));
    cmd.args(["--tcp", "count@127.0.0.1:0"])
        .env("RUST_LOG", "debug");
    // SAFETY: the closure only calls setrlimit, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 32,
                rlim_max: 32,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut p = Proc::spawn_cmd(&mut cmd);
    let addr = p.listening(1)[0];
    let clients: Vec<TcpStream> = (0..40).map(|_| connect(addr)).collect();
    p.wait_for("cannot accept: too many open files");

    // The peers the daemon accepted before it ran out, from its `accepted from` lines.
    let accepted: HashSet<&str> = p
        .seen
        .iter()
        .filter_map(|l| l.split("accepted from ").nth(1)?.split_whitespace().next())
        .collect();
    let (mut held, mut waiting): (Vec<TcpStream>, Vec<TcpStream>) = clients
        .into_iter()
        .partition(|s| accepted.contains(s.local_addr().unwrap().to_string().as_str()));
    assert!(
        held.len() >= 4 && waiting.len() >= 4,
        "{} held, {} waiting",
        held.len(),
        waiting.len()
    );

    // A connection already held is still served.
    let mut first = held.remove(0);
    read_welcome(&mut first);
    send_line_and_read_reply(&mut first);
    drop(first);

    // Paused, not spinning: far less than the second's worth of CPU time a busy loop uses.
    let pid = p.pid();
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap();
    let before = cpu_ticks(pid);
    thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    assert!(
        used < ticks_per_second / 2,
        "{used} ticks of CPU in one second while out of descriptors"
    );

    // Each freed descriptor lets one waiting connection in, in the order they came.
    for mut s in held.drain(..3) {
        read_welcome(&mut s);
        send_line_and_read_reply(&mut s);
    }
    p.wait_for("accepting again");
    for s in waiting.iter_mut().take(4) {
        read_welcome(s);
    }
}

#[test]
fn client_bytes_are_escaped_in_trace_logs() {
    let lines = count_exchange_log("trace", b"\x1b[31mred\n");
    assert!(
        lines.iter().any(|l| l.contains(r"\x1b[31mred")),
        "no escaped line in\n{}",
        lines.join("\n")
    );
    assert!(
        !lines.iter().any(|l| l.contains('\x1b')),
        "a raw ESC byte in\n{}",
        lines.join("\n")
    );
}

#[test]
fn bind_device_lo_serves_loopback_clients() {
    let mut p = Proc::spawn(
        &["--tcp", "count@127.0.0.1:0", "--bind-device", "lo"],
        "info",
    );
    match started(&mut p, 1) {
        Ok(addrs) => {
            send_line_and_read_reply(&mut count_client(addrs[0]));
            stop(&mut p);
        }
        Err(line) if line.contains("operation not permitted") => {
            eprintln!("note: SO_BINDTODEVICE not permitted here, not checked: {line}");
        }
        Err(line) => panic!("{line}"),
    }
}

#[test]
fn bind_device_that_does_not_exist_fails_naming_the_address() {
    assert_bind_fails(
        &["--tcp", "count@127.0.0.1:0", "--bind-device", "nosuchdev0"],
        "tcp 127.0.0.1:0",
        "no such device",
    );
}

#[test]
fn no_service_flags_run_tcp_count_and_udp_echo_on_port_51423() {
    let mut p = Proc::spawn(&[], "info");
    match started(&mut p, 2) {
        Ok(addrs) => {
            let any: SocketAddr = "0.0.0.0:51423".parse().unwrap();
            assert_eq!(addrs, [any, any]);
            for want in [
                "listening on tcp 0.0.0.0:51423 (count)",
                "listening on udp 0.0.0.0:51423 (echo)",
            ] {
                assert!(
                    p.seen.iter().any(|l| l.ends_with(want)),
                    "no {want:?} in {:?}",
                    p.seen
                );
            }
            let local: SocketAddr = "127.0.0.1:51423".parse().unwrap();
            count_client(local);
            assert_eq!(udp_ask(&udp_client(local), local, b"ping"), b"ping");
            stop(&mut p);
        }
        Err(line) => {
            assert!(
                line.contains("0.0.0.0:51423: address already in use"),
                "{line}"
            );
            assert_eq!(p.wait_exit(), 1);
            eprintln!("note: port 51423 is taken on this machine: {line}");
        }
    }
}

#[test]
fn debug_logs_each_connection_and_info_does_not() {
    let debug = count_exchange_log("debug", LINE);
    let info = count_exchange_log("info", LINE);
    for needle in ["accepted from 127.0.0.1:", "-> closed: "] {
        assert!(
            debug.iter().any(|l| l.contains(needle)),
            "no {needle:?} in {debug:?}"
        );
        assert!(
            !info.iter().any(|l| l.contains(needle)),
            "{needle:?} in {info:?}"
        );
    }
}

/// Writes `total` bytes of `byte` to `s`, ignoring the error the daemon's close may cause.
fn flood(mut s: TcpStream, byte: u8, total: usize) {
    let chunk = vec![byte; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => return,
        }
    }
    let _ = s.shutdown(Shutdown::Write);
}

#[test]
fn floods_leave_the_daemons_memory_bounded() {
    let (mut p, addrs) = daemon(
        &["--tcp", "count@127.0.0.1:0", "--tcp", "echo@127.0.0.1:0"],
        "info",
    );
    let before = status_kb(p.pid(), "VmRSS");
    // 32 MiB with no newline at count, and 32 MiB at echo from a client that never reads.
    let line_hog = count_client(addrs[0]);
    let count_flood = thread::spawn(move || flood(line_hog, b'a', 32 << 20));
    let echo_hog = connect(addrs[1]);
    echo_hog
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let reader = echo_hog.try_clone().unwrap();
    let echo_flood = thread::spawn(move || flood(echo_hog, b'e', 32 << 20));
    count_flood.join().unwrap();
    // The echo writer stops when every buffer on the way is full (its write times out).
    echo_flood.join().unwrap();
    // The daemon still serves, and its peak memory grew by far less than what was sent.
    assert_eq!(count_reply(addrs[0], LINE), REPLY);
    let peak = status_kb(p.pid(), "VmHWM");
    assert!(
        peak < before + 8 * 1024,
        "peak RSS {peak} KiB, {before} KiB before 64 MiB of floods"
    );
    drop(reader);
    stop(&mut p);
}
