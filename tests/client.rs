//! `oneloop client ...` against small servers written here with plain `std::net`, so each
//! client is shown to speak its protocol (and not only to agree with our daemon), and against
//! the daemon itself on port 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use oneloop::proto::Epoch;

mod common;
use common::{Daemon, WAIT};

/// What a finished `oneloop client` run left behind.
struct Run {
    code: i32,
    /// The first [`KEPT`] bytes of stdout.
    stdout: String,
    /// How many bytes the client wrote to stdout in all.
    stdout_len: usize,
    stderr: String,
}

/// The longest a client run may take: past it the test kills the client and fails.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// How much of a client's stdout or stderr a test keeps; it counts the rest.
const KEPT: usize = 1 << 20;

/// Reads `from` to its end, keeping the first [`KEPT`] bytes; returns them and the length.
fn read_capped(mut from: impl Read) -> (Vec<u8>, usize) {
    let (mut kept, mut len, mut buf) = (Vec::new(), 0, vec![0; 64 * 1024]);
    while let Ok(n @ 1..) = from.read(&mut buf) {
        kept.extend_from_slice(&buf[..n.min(KEPT - kept.len())]);
        len += n;
    }
    (kept, len)
}

/// Runs `oneloop client ARGS` with `stdin` as its standard input. A run that outlasts
/// [`RUN_LIMIT`] is killed and fails the test, so a client that reads forever is a failure,
/// not a hung test.
fn client(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oneloop"))
        .arg("client")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn oneloop");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    // Each pipe reaches its end when the client exits; each reader says when it has.
    let (ended, reader_ended) = mpsc::channel();
    let readers = [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ]
    .map(|pipe| {
        let ended = ended.clone();
        thread::spawn(move || {
            let read = read_capped(pipe);
            let _ = ended.send(());
            read
        })
    });
    let limit = Instant::now() + RUN_LIMIT;
    for _ in &readers {
        let left = limit.saturating_duration_since(Instant::now());
        if reader_ended.recv_timeout(left).is_err() {
            child.kill().expect("kill oneloop");
            child.wait().expect("wait for oneloop");
            panic!("oneloop client {args:?} still ran after {RUN_LIMIT:?}");
        }
    }
    let status = child.wait().expect("wait for oneloop");
    let [(stdout, stdout_len), (stderr, _)] = readers.map(|r| r.join().expect("pipe reader"));
    let run = Run {
        code: status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stdout_len,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    let shown = |text: &str| text.chars().take(2000).collect::<String>();
    eprintln!(
        "oneloop client {args:?}: exit {}\nstdout ({} bytes): {:?}\nstderr: {:?}",
        run.code,
        run.stdout_len,
        shown(&run.stdout),
        shown(&run.stderr)
    );
    run
}

/// A TCP server on loopback port 0 that serves one connection with `serve`.
fn tcp_server<T: Send + 'static>(
    serve: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (String, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        serve(stream)
    });
    (addr, server)
}

/// A UDP socket on loopback port 0, handed to `serve` on a thread.
fn udp_server<T: Send + 'static>(
    serve: impl FnOnce(UdpSocket) -> T + Send + 'static,
) -> (String, JoinHandle<T>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    (addr, thread::spawn(move || serve(socket)))
}

fn read_to_eof(mut stream: &TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    bytes
}

/// Asserts that a client run succeeded and printed exactly `stdout`.
fn assert_success(run: &Run, stdout: &str) {
    assert_eq!((run.code, run.stdout.as_str()), (0, stdout));
}

/// Asserts that a client run failed with exit code `code` and said `why` on stderr.
fn assert_failure(run: &Run, code: i32, why: &str) {
    assert_eq!(run.code, code);
    assert!(run.stderr.contains(why), "{}", run.stderr);
}

/// Asserts that a client run succeeded and printed `start`, then anything, then `end`.
fn assert_printed(run: &Run, start: &str, end: &str) {
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.starts_with(start) && run.stdout.ends_with(end),
        "{}",
        run.stdout
    );
}

/// The seed document's line-count server: `welcome, ...` and a prompt without a trailing blank.
fn seed_count_server(stream: TcpStream) -> String {
    let mut writer = &stream;
    let peer = stream.peer_addr().unwrap();
    write!(writer, "welcome, {peer}\nPlease enter a string :").unwrap();
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).unwrap();
    writeln!(
        writer,
        "You entered {} characters.",
        line.trim().chars().count()
    )
    .unwrap();
    line
}

#[test]
fn count_prints_the_dialogue_and_succeeds_on_the_count_reply() {
    let (addr, server) = tcp_server(seed_count_server);
    let run = client(&["count", &addr, "  hello world "], b"");
    assert_printed(
        &run,
        "welcome, 127.0.0.1:",
        "\nPlease enter a string :You entered 11 characters.\n",
    );
    assert_eq!(server.join().unwrap(), "  hello world \n");
}

#[test]
fn count_reads_the_line_from_stdin_when_none_is_given() {
    let (addr, server) = tcp_server(seed_count_server);
    let run = client(&["count", &addr], "héllo\nnot this\n".as_bytes());
    assert_eq!(run.code, 0);
    assert!(run.stdout.ends_with(":You entered 5 characters.\n"));
    assert_eq!(server.join().unwrap(), "héllo\n");
}

#[test]
fn count_fails_with_the_servers_error_message() {
    let (addr, server) = tcp_server(|stream| {
        (&stream)
            .write_all(b"Error: server busy (10000 connections)\n")
            .unwrap();
    });
    let run = client(&["count", &addr, "hello"], b"");
    assert_failure(&run, 1, "Error: server busy (10000 connections)");
    assert_eq!(run.stdout, "Error: server busy (10000 connections)\n");
    server.join().unwrap();
}

/// The seed's response server: the bytes, `\nI get it!\n`, then a typed word.
fn ack_server(reply: &'static [u8]) -> impl FnOnce(TcpStream) -> Vec<u8> + Send {
    move |stream| {
        // Reading to EOF shows that the client half-closed.
        let received = read_to_eof(&stream);
        (&stream).write_all(reply).unwrap();
        received
    }
}

#[test]
fn ack_sends_half_closes_and_prints_the_reply_until_eof() {
    let (addr, server) = tcp_server(ack_server(b"hello\nI get it!\nOK"));
    let run = client(&["ack", &addr, "hello"], b"");
    assert_success(&run, "hello\nI get it!\nOK");
    assert_eq!(server.join().unwrap(), b"hello");
}

#[test]
fn ack_fails_when_the_reply_does_not_acknowledge() {
    let (addr, server) = tcp_server(ack_server(b"hello\n"));
    let run = client(&["ack", &addr, "hello"], b"");
    assert_failure(&run, 1, "I get it!");
    server.join().unwrap();
}

/// A TCP echo server that passes every byte through `change`.
fn tcp_echo_server(change: fn(u8) -> u8) -> impl FnOnce(TcpStream) -> Vec<u8> + Send {
    move |stream| {
        let received = read_to_eof(&stream);
        let echo: Vec<u8> = received.iter().copied().map(change).collect();
        (&stream).write_all(&echo).unwrap();
        received
    }
}

#[test]
fn echo_over_tcp_checks_that_the_bytes_come_back() {
    let (addr, server) = tcp_server(tcp_echo_server(|b| b));
    let run = client(&["echo", &addr, "hello, echo"], b"");
    assert_success(&run, "hello, echo");
    assert_eq!(server.join().unwrap(), b"hello, echo");
}

#[test]
fn echo_reports_an_echo_that_differs() {
    let (addr, server) = tcp_server(tcp_echo_server(|b| b.to_ascii_uppercase()));
    let run = client(&["echo", &addr, "HELLO, echo"], b"");
    assert_failure(&run, 1, "differs from byte 7");
    server.join().unwrap();
}

#[test]
fn echo_over_udp_checks_that_the_datagram_comes_back() {
    let (addr, server) = udp_server(|socket| {
        let mut buf = [0; 2048];
        let (n, from) = socket.recv_from(&mut buf).unwrap();
        socket.send_to(&buf[..n], from).unwrap();
        buf[..n].to_vec()
    });
    let run = client(&["echo", &addr, "hello, udp", "--udp"], b"");
    assert_success(&run, "hello, udp");
    assert_eq!(server.join().unwrap(), b"hello, udp");
}

#[test]
fn echo_over_udp_refuses_an_empty_message() {
    let run = client(&["echo", "127.0.0.1:7", "", "--udp"], b"");
    assert_failure(&run, 2, "empty datagram");
}

/// A UDP time server that answers the first datagram with `reply` and returns its length.
fn udp_time_server(reply: Vec<u8>) -> (String, JoinHandle<usize>) {
    udp_server(move |socket| {
        let mut buf = [0; 2048];
        let (n, from) = socket.recv_from(&mut buf).unwrap();
        socket.send_to(&reply, from).unwrap();
        n
    })
}

/// 2026-11-21T05:49:47Z in seconds since 1970.
const NOW_UNIX: u32 = 1_795_240_187;

#[test]
fn time_over_udp_sends_an_empty_datagram_and_prints_utc() {
    let (addr, server) = udp_time_server(NOW_UNIX.to_be_bytes().to_vec());
    let run = client(&["time", &addr], b"");
    assert_success(&run, "2026-11-21T05:49:47Z (1795240187 s since 1970)\n");
    assert_eq!(
        server.join().unwrap(),
        0,
        "the request is an empty datagram"
    );
}

#[test]
fn time_reads_rfc868_seconds_with_epoch_1900() {
    let rfc868 = NOW_UNIX.wrapping_add(2_208_988_800);
    let (addr, server) = udp_time_server(rfc868.to_be_bytes().to_vec());
    let run = client(&["time", &addr, "--epoch", "1900"], b"");
    assert_success(&run, "2026-11-21T05:49:47Z (4004228987 s since 1900)\n");
    server.join().unwrap();
}

#[test]
fn time_with_epoch_1900_past_the_2036_wrap_prints_the_real_seconds() {
    // The 1900 count wrapped to 0 at 2036-02-07T06:28:16Z; 4 is four seconds later.
    let (addr, server) = udp_time_server(4u32.to_be_bytes().to_vec());
    let run = client(&["time", &addr, "--epoch", "1900"], b"");
    assert_success(&run, "2036-02-07T06:28:20Z (4294967300 s since 1900)\n");
    server.join().unwrap();
}

#[test]
fn time_over_tcp_reads_four_bytes_until_eof() {
    let (addr, server) = tcp_server(|stream| {
        (&stream).write_all(&NOW_UNIX.to_be_bytes()).unwrap();
    });
    let run = client(&["time", &addr, "--tcp"], b"");
    assert_success(&run, "2026-11-21T05:49:47Z (1795240187 s since 1970)\n");
    server.join().unwrap();
}

#[test]
fn time_rejects_a_three_byte_reply_with_reply_error_3() {
    let (addr, server) = udp_time_server(b"abc".to_vec());
    let run = client(&["time", &addr], b"");
    assert_failure(&run, 1, "reply error 3");
    assert_eq!(run.stdout, "");
    server.join().unwrap();
}

#[test]
fn time_gives_up_after_its_tries_when_no_reply_comes() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let run = client(&["time", &addr, "--timeout", "0.2"], b"");
    assert_failure(&run, 3, "after 3 tries");
    // Every try was a datagram, all queued by now.
    silent.set_nonblocking(true).unwrap();
    let mut buf = [0; 16];
    let tries = std::iter::from_fn(|| silent.recv(&mut buf).ok()).count();
    assert_eq!(tries, 3);
}

#[test]
fn raw_sends_a_gopher_selector_and_prints_until_eof() {
    const MENU: &str = "iWelcome to gopher\tfake\t(NULL)\t0\r\n.\r\n";
    let (addr, server) = tcp_server(|stream| {
        let mut selector = String::new();
        BufReader::new(&stream).read_line(&mut selector).unwrap();
        (&stream).write_all(MENU.as_bytes()).unwrap();
        selector
    });
    let run = client(&["raw", &addr, "--send", r"/\r\n"], b"");
    assert_success(&run, MENU);
    assert_eq!(server.join().unwrap(), "/\r\n");
}

#[test]
fn an_ipv6_address_goes_in_brackets() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here: nothing to test");
        return;
    };
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        tcp_echo_server(|b| b)(stream)
    });
    let run = client(&["echo", &format!("[::1]:{port}"), "six"], b"");
    assert_eq!(run.code, 0);
    assert_eq!(server.join().unwrap(), b"six");
}

#[test]
fn a_refused_connection_is_a_network_error() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let run = client(&["raw", &addr.to_string()], b"");
    assert_failure(&run, 3, "connection refused");
}

#[test]
fn a_reset_connection_is_a_network_error() {
    let (addr, server) = tcp_server(|stream| {
        // Linger 0: close() sends RST instead of FIN.
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    });
    let run = client(&["count", &addr, "hello"], b"");
    assert_failure(&run, 3, "connection reset");
    server.join().unwrap();
}

#[test]
fn a_silent_server_times_out() {
    // The kernel completes the handshake from the backlog; nobody ever accepts or writes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let run = client(&["count", &addr, "hello", "--timeout", "0.2"], b"");
    assert_failure(&run, 3, "timed out after 0.2 s");
    drop(listener);
}

#[test]
fn help_prints_usage_and_exits_0() {
    for args in [&["--help"][..], &["count", "--help"], &["time", "-h"]] {
        let run = client(args, b"");
        assert_eq!(run.code, 0);
        assert!(run.stdout.starts_with("usage:"));
        assert!(run.stdout.contains("exit codes"));
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["telnet", "127.0.0.1:7"],
        &["count"],
        &["count", "127.0.0.1:7", "a", "b"],
        &["ack", "127.0.0.1:7"],
        &["echo", "127.0.0.1:7", "x", "--bogus"],
        &["echo", "127.0.0.1:7", "x", "--tcp"],
        &["time", "127.0.0.1:7", "--epoch", "2000"],
        &["time", "127.0.0.1:7", "--timeout", "0"],
        &["time", "127.0.0.1:7", "--tries", "0"],
        &["raw", "127.0.0.1:7", "--send", r"\q"],
        &["raw", "localhost"],
        &["raw", "::1:7"],
    ] {
        let run = client(args, b"");
        assert_eq!(run.code, 2, "{args:?}");
        assert!(run.stderr.contains("--help"), "{args:?}: a hint");
    }
}

#[test]
fn numeric_flags_out_of_range_are_usage_errors_naming_the_flag_and_range() {
    let seconds = [
        "0", "-1", "0.0001", "86400.5", "1e400", "nan", "inf", "-inf", "", "5s", "0x10",
    ];
    for flag in ["--timeout", "--deadline"] {
        for bad in seconds {
            let run = client(&["time", "127.0.0.1:7", flag, bad], b"");
            assert_failure(&run, 2, &format!("{flag}: '{bad}' is "));
            assert!(run.stderr.contains("(0.001 to 86400 s)"), "{}", run.stderr);
        }
    }
    for bad in ["0", "-1", "1.5", "101", "4294967296", "nan", ""] {
        let run = client(&["time", "127.0.0.1:7", "--tries", bad], b"");
        assert_failure(&run, 2, &format!("--tries: '{bad}' is "));
        assert!(run.stderr.contains("(1 to 100)"), "{}", run.stderr);
    }
    // The ends of the ranges are allowed: parsing goes on to the --help at the end.
    let edges = [
        "--timeout",
        "0.001",
        "--deadline",
        "86400",
        "--tries",
        "100",
        "--help",
    ];
    let run = client(&[&["time", "127.0.0.1:7"][..], &edges].concat(), b"");
    assert_eq!(run.code, 0);
}

/// Writes `byte` to `stream` until the client goes away; returns how many bytes went out.
fn send_forever(stream: &TcpStream, byte: u8) -> usize {
    let chunk = [byte; 16 * 1024];
    let mut sent = 0;
    while (&*stream).write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    sent
}

/// The bound on what a `count` or `time` server may send, and the error past it.
const BOUND: usize = 64 * 1024;
const TOO_MUCH: &str = "the server sent more than 65536 bytes";

#[test]
fn count_stops_at_an_endless_welcome_and_prints_only_up_to_the_bound() {
    let (addr, server) = tcp_server(|stream| send_forever(&stream, b'w'));
    let run = client(&["count", &addr, "hello"], b"");
    assert_failure(&run, 1, &format!("{TOO_MUCH} and no prompt"));
    assert_eq!(run.stdout_len, BOUND);
    assert!(server.join().unwrap() > BOUND);
}

#[test]
fn count_stops_at_an_endless_reply_and_prints_only_up_to_the_bound() {
    const WELCOME: &str = "Welcome, you\nPlease enter a string: ";
    let (addr, server) = tcp_server(|stream| {
        (&stream).write_all(WELCOME.as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        send_forever(&stream, b'r');
        line
    });
    let run = client(&["count", &addr, "hello"], b"");
    assert_failure(&run, 1, &format!("reply error: {TOO_MUCH}"));
    assert_eq!(run.stdout_len, WELCOME.len() + BOUND);
    assert!(run.stdout.starts_with(WELCOME));
    assert_eq!(server.join().unwrap(), "hello\n");
}

#[test]
fn time_over_tcp_stops_reading_a_server_that_sends_forever() {
    let (addr, server) = tcp_server(|stream| send_forever(&stream, b't'));
    let run = client(&["time", &addr, "--tcp"], b"");
    let start = "t".repeat(64);
    assert_failure(
        &run,
        1,
        &format!("reply error: {TOO_MUCH}, starting \"{start}\"\n"),
    );
    assert!(run.stderr.len() < 1000, "a short error");
    assert_eq!(run.stdout, "");
    server.join().unwrap();
}

#[test]
fn time_over_udp_shows_at_most_64_bytes_of_a_long_reply_escaped() {
    let mut reply = b"\x1b[31m".to_vec();
    reply.resize(1000, b'z');
    let (addr, server) = udp_time_server(reply);
    let run = client(&["time", &addr], b"");
    let shown = format!("reply error 1000: \"\\x1b[31m{}\"", "z".repeat(64 - 5));
    assert_failure(&run, 1, &format!("{shown}... (+936 bytes)\n"));
    assert!(!run.stderr.contains('\x1b'), "the escape byte is escaped");
    assert_eq!(run.stdout, "");
    server.join().unwrap();
}

/// Sends one byte every 200 ms, never tripping a per-read timeout, until the client goes.
fn trickle(stream: TcpStream) {
    while (&stream).write_all(b".").is_ok() {
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_deadline_cuts_off_a_server_that_trickles_forever_whatever_the_client() {
    let long = "x".repeat(100); // echo would wait for 101 bytes: 20 s of trickle
    let clients: [&[&str]; 5] = [
        &["raw"],
        &["ack", "hello"],
        &["echo", &long],
        &["count", "hello"],
        &["time", "--tcp"],
    ];
    for args in clients {
        let (addr, server) = tcp_server(trickle);
        let (name, rest) = args.split_first().unwrap();
        let run = client(
            &[&[*name, addr.as_str(), "--deadline", "1"][..], rest].concat(),
            b"",
        );
        assert_failure(&run, 3, &format!("{addr}: deadline of 1 s passed"));
        server.join().unwrap();
    }
}

#[test]
fn a_deadline_cuts_the_udp_retries_short() {
    // Three tries of 20 s each would take a minute, longer than a client run may.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let run = client(
        &["time", &addr, "--timeout", "20", "--deadline", "0.5"],
        b"",
    );
    assert_failure(&run, 3, "deadline of 0.5 s passed");
    drop(silent);
}

/// Every service of the daemon: TCP count, ack, echo and time, then UDP echo and time.
const DAEMON: [&str; 6] = [
    "tcp:count@127.0.0.1:0",
    "tcp:ack@127.0.0.1:0",
    "tcp:echo@127.0.0.1:0",
    "tcp:time@127.0.0.1:0",
    "udp:echo@127.0.0.1:0",
    "udp:time@127.0.0.1:0",
];

/// The daemon serving [`DAEMON`], its time counted from `epoch`.
fn daemon(epoch: Epoch) -> Daemon {
    common::start_with(&DAEMON, |config| config.time_epoch = epoch)
}

/// Runs `oneloop client NAME ADDR REST...` where ADDR is the daemon's instance for `spec`
/// (one of [`DAEMON`]).
fn client_at(daemon: &Daemon, spec: &str, name: &str, rest: &[&str], stdin: &[u8]) -> Run {
    let n = DAEMON
        .iter()
        .position(|s| *s == spec)
        .expect("a DAEMON spec");
    let addr = daemon.addr(n).to_string();
    client(&[&[name, addr.as_str()][..], rest].concat(), stdin)
}

#[test]
fn count_client_against_the_daemon() {
    let daemon = daemon(Epoch::Unix);
    let count = "tcp:count@127.0.0.1:0";
    let run = client_at(&daemon, count, "count", &["  héllo \t"], b"");
    assert_printed(
        &run,
        "Welcome, 127.0.0.1:",
        "\nPlease enter a string: You entered 5 characters.\n",
    );

    let run = client_at(&daemon, count, "count", &[], b"from stdin\n");
    assert_printed(&run, "Welcome, ", ": You entered 10 characters.\n");

    let run = client_at(&daemon, count, "count", &[&"x".repeat(5000)], b"");
    assert_failure(&run, 1, "line too long");
    assert!(run
        .stdout
        .ends_with("Error: line too long (limit 4096 bytes)\n"));
}

#[test]
fn ack_client_against_the_daemon() {
    let daemon = daemon(Epoch::Unix);
    let run = client_at(&daemon, "tcp:ack@127.0.0.1:0", "ack", &["hello"], b"");
    assert_success(&run, "hello\nI get it!\n");
}

#[test]
fn echo_clients_against_the_daemon() {
    let daemon = daemon(Epoch::Unix);
    let run = client_at(
        &daemon,
        "tcp:echo@127.0.0.1:0",
        "echo",
        &["echo, echo\n"],
        b"",
    );
    assert_success(&run, "echo, echo\n");
    let udp = ["echo, echo\n", "--udp"];
    let run = client_at(&daemon, "udp:echo@127.0.0.1:0", "echo", &udp, b"");
    assert_success(&run, "echo, echo\n");
}

/// The seconds in `2026-11-21T05:49:47Z (1795240187 s since 1970)\n`, checking the shape.
fn time_output_seconds(run: &Run, epoch_year: &str) -> u64 {
    assert_eq!(run.code, 0);
    let (date, rest) = run.stdout.split_once(" (").expect("date (seconds)");
    assert_eq!(date.len(), "2026-11-21T05:49:47Z".len(), "{date}");
    assert!(date.starts_with("20") && date.ends_with('Z') && date.as_bytes()[10] == b'T');
    let seconds = rest
        .strip_suffix(&format!(" s since {epoch_year})\n"))
        .expect("epoch");
    seconds.parse().unwrap()
}

#[test]
fn time_clients_against_the_daemon() {
    let daemon = daemon(Epoch::Unix);
    let udp = client_at(&daemon, "udp:time@127.0.0.1:0", "time", &[], b"");
    let tcp = client_at(&daemon, "tcp:time@127.0.0.1:0", "time", &["--tcp"], b"");
    for run in [udp, tcp] {
        // Any time after this code was written.
        assert!(time_output_seconds(&run, "1970") > u64::from(NOW_UNIX));
    }
}

#[test]
fn time_client_reads_the_daemons_rfc868_time() {
    let daemon = daemon(Epoch::Rfc868);
    let epoch = ["--epoch", "1900"];
    let run = client_at(&daemon, "udp:time@127.0.0.1:0", "time", &epoch, b"");
    time_output_seconds(&run, "1900");
}

#[test]
fn raw_client_against_the_daemon() {
    let daemon = daemon(Epoch::Unix);
    let send = ["--send", r"hi\r\n"];
    let run = client_at(&daemon, "tcp:count@127.0.0.1:0", "raw", &send, b"");
    assert_printed(
        &run,
        "Welcome, 127.0.0.1:",
        "Please enter a string: You entered 2 characters.\n",
    );
}
