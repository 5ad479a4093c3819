//! The teaching examples (examples/e1_blocking.rs ... e9_udp_time.rs, e4b_level_poll.rs), each
//! run as a process of its own and talked to over loopback with real sockets: each must show
//! what its comment says, and tell how to watch it. And the learner clients
//! (examples/clients.rs), each run once against a real server.
//!
//! `cargo test` builds the examples before it runs this file; `cargo test --test examples`
//! alone does not, so run `cargo build --examples` first (a missing or stale example binary
//! fails the test with that advice).

mod common;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use common::{
    assert_time_is_now, connect, count_client, cpu_ticks, read_exact, read_to_end, status_kb,
    udp_ask, udp_client, wait_asleep, welcome_for, WAIT,
};
use oneloop::proto::Epoch;

/// The built example `name`, beside this test's own executable (target/PROFILE/deps/..).
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/PROFILE");
    let built = profile_dir.join("examples").join(name);
    let advice = "`cargo test` builds the examples; before `cargo test --test examples`, run \
                  `cargo build --examples`";
    let Some(built_at) = modified(&built) else {
        panic!("{} is not built: {advice}", built.display());
    };
    // Cargo's dep-info beside it names every file it was built from.
    let deps = std::fs::read_to_string(built.with_extension("d")).unwrap_or_default();
    let sources = deps
        .lines()
        .next()
        .and_then(|l| l.split_once(": "))
        .map_or("", |(_, s)| s);
    for source in sources.split(' ').filter(|s| !s.is_empty()) {
        let newer = modified(Path::new(source)).is_some_and(|at| at > built_at);
        assert!(
            !newer,
            "{} is older than {source}: {advice}",
            built.display()
        );
    }
    built
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Starts example `name` with its output piped.
fn spawn(name: &str, args: &[&str], stdin: Stdio) -> Child {
    Command::new(binary(name))
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"))
}

/// Lines read from `from` on a thread of their own, so that waits for them can be bounded.
fn lines_of(from: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A running example, killed when dropped.
struct Example {
    child: Child,
    addr: SocketAddr,
    stderr: Receiver<String>,
    /// Standard error lines so far, and how many of them `wait_for` has passed.
    seen: Vec<String>,
    passed: usize,
    /// Standard output after the first line: the banner (its reader thread, and the pipe,
    /// live as long as the example).
    stdout: Receiver<String>,
}

impl Example {
    fn start(name: &str, args: &[&str]) -> Example {
        Example::start_with(name, args, Stdio::null())
    }

    /// Starts it and reads its first line, `listening on ADDR` (bounded wait).
    fn start_with(name: &str, args: &[&str], stdin: Stdio) -> Example {
        let mut child = spawn(name, args, stdin);
        let stdout = lines_of(child.stdout.take().expect("piped stdout"));
        let stderr = lines_of(child.stderr.take().expect("piped stderr"));
        let first = stdout.recv_timeout(WAIT).expect("a first line on stdout");
        let addr = first
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok());
        let addr = addr.unwrap_or_else(|| panic!("{name}: first line {first:?}"));
        Example {
            child,
            addr,
            stderr,
            seen: Vec::new(),
            passed: 0,
            stdout,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits (bounded) for the next standard error line, after those already passed, that
    /// contains `needle`, and returns it.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.seen[self.passed..]
                .iter()
                .position(|l| l.contains(needle))
            {
                self.passed += i + 1;
                return self.seen[self.passed - 1].clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no {needle:?} on stderr; so far:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// The banner's lines after `listening on`, up to the empty line that ends it.
    fn banner(&self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.stdout.recv_timeout(WAIT) {
                Ok(line) if line.is_empty() => return lines,
                Ok(line) => lines.push(line),
                Err(_) => panic!("no end of the banner; so far:\n{}", lines.join("\n")),
            }
        }
    }

    fn stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("piped stdin")
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs an example that ends by itself (bounded wait); returns what it left.
fn run(name: &str, args: &[&str]) -> Output {
    run_within(WAIT, name, args)
}

/// [`run`], with a wait of `limit`.
fn run_within(limit: Duration, name: &str, args: &[&str]) -> Output {
    let child = spawn(name, args, Stdio::null());
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("output"),
        Err(_) => {
            // SAFETY: kill with the child's pid (it has not been reaped: no output came).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{name} {args:?} did not end");
        }
    }
}

/// A whole count exchange on a client that has its welcome: `line`, then the reply to EOF.
fn count_line(mut s: TcpStream, line: &[u8]) -> String {
    s.write_all(line).unwrap();
    String::from_utf8(read_to_end(&mut s)).unwrap()
}

/// A client's whole exchange with a count example at `addr`, which goes on serving.
fn assert_still_counts(addr: SocketAddr) {
    let reply = count_line(count_client(addr), b"still here\n");
    assert_eq!(reply, "You entered 10 characters.\n");
}

#[test]
fn e1_a_silent_client_keeps_the_next_one_from_its_welcome() {
    let ex = Example::start("e1_blocking", &[]);
    let first = count_client(ex.addr);
    let mut second = connect(ex.addr);
    // The one bounded wait for silence: the second client is connected, and nothing comes.
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let err = second
        .read(&mut [0; 1])
        .expect_err("no welcome while the first is served");
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    // The first client's line frees the server, and the second gets its welcome.
    assert_eq!(
        count_line(first, "  héllo \t\r\n".as_bytes()),
        "You entered 5 characters.\n"
    );
    second.set_read_timeout(Some(WAIT)).unwrap();
    let want = welcome_for(&second);
    assert_eq!(read_exact(&mut second, want.len()), want);
    assert_eq!(
        count_line(second, b"\xff\xfeab\n"),
        "You entered 4 characters.\n"
    );
}

#[test]
fn e2_serves_two_clients_at_once() {
    let ex = Example::start("e2_threads", &[]);
    let first = count_client(ex.addr);
    // The first is silent; the second gets its welcome all the same.
    let second = count_client(ex.addr);
    assert_eq!(
        count_line(second, "日本語\n".as_bytes()),
        "You entered 3 characters.\n"
    );
    assert_eq!(count_line(first, b"hello\n"), "You entered 5 characters.\n");
}

#[test]
fn e2_each_idle_client_holds_a_thread() {
    const CLIENTS: u64 = 100;
    let ex = Example::start("e2_threads", &[]);
    let pid = ex.pid();
    let fields = || ["Threads", "VmRSS", "VmSize"].map(|f| status_kb(pid, f));
    let before = fields();
    // Each welcome is written by the client's own thread, so when it has come the thread
    // exists (and now waits in `read`).
    let clients: Vec<TcpStream> = (0..CLIENTS).map(|_| count_client(ex.addr)).collect();
    let after = fields();
    assert_eq!(
        after[0],
        before[0] + CLIENTS,
        "one thread per connected client"
    );
    eprintln!(
        "e2_threads, {CLIENTS} idle clients: VmRSS {} KiB more ({} KiB each), VmSize {} KiB \
         more ({} KiB each)",
        after[1] - before[1],
        (after[1] - before[1]) / CLIENTS,
        after[2] - before[2],
        (after[2] - before[2]) / CLIENTS,
    );
    drop(clients);
}

#[test]
fn e3_serves_but_burns_cpu_while_idle() {
    let busy = Example::start("e3_busy_loop", &[]);
    let polled = Example::start("e4_poll", &[]);
    wait_asleep(polled.pid());
    let (busy_start, polled_start) = (cpu_ticks(busy.pid()), cpu_ticks(polled.pid()));
    let start = Instant::now();
    // With no client at all, the busy loop spends CPU time; the polled server sleeps. Wait
    // (bounded) for 20 ticks (0.2 s of CPU) of the busy loop rather than for a set time.
    let mut used = 0;
    while used < 20 {
        assert!(
            start.elapsed() < WAIT,
            "the busy loop used only {used} ticks of CPU"
        );
        thread::sleep(Duration::from_millis(20));
        used = cpu_ticks(busy.pid()) - busy_start;
    }
    let polled_used = cpu_ticks(polled.pid()) - polled_start;
    let wall_ticks = start.elapsed().as_millis() / 10;
    eprintln!(
        "idle: e3_busy_loop used {used} ticks of CPU in {wall_ticks} ticks of time ({}% of a \
         core); e4_poll used {polled_used}",
        u128::from(used) * 100 / wall_ticks.max(1)
    );
    assert!(polled_used < used, "the polled server sleeps while idle");
    // And it serves, several clients at a time.
    let (first, second) = (count_client(busy.addr), count_client(busy.addr));
    assert_eq!(count_line(second, b"two\n"), "You entered 3 characters.\n");
    assert_eq!(
        count_line(first, b"one more\n"),
        "You entered 8 characters.\n"
    );
}

#[test]
fn e4_serves_many_clients_and_lines_in_pieces() {
    let ex = Example::start("e4_poll", &[]);
    let mut clients: Vec<TcpStream> = (0..4).map(|_| count_client(ex.addr)).collect();
    // A line in two writes, then one that half-closes without a LF: all of it is the line.
    clients[3].write_all("héllo ".as_bytes()).unwrap();
    let reply = count_line(clients.pop().unwrap(), "wörld\n".as_bytes());
    assert_eq!(reply, "You entered 11 characters.\n");
    let mut last = clients.pop().unwrap();
    last.write_all(b"abc").unwrap();
    last.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut last), b"You entered 3 characters.\n");
    // A line longer than one read (4096 bytes), all there at once: one event announces it,
    // so only reading until `WouldBlock` finds its end.
    let long = [vec![b'x'; 6000], b"\n".to_vec()].concat();
    let reply = count_line(clients.pop().unwrap(), &long);
    assert_eq!(reply, "You entered 6000 characters.\n");
    let reply = count_line(clients.pop().unwrap(), b"\n");
    assert_eq!(reply, "You entered 0 characters.\n");
    // Nothing left to do: it sleeps in its poll.
    wait_asleep(ex.pid());
}

#[test]
fn e5_echo_stops_reading_from_a_client_that_does_not_read() {
    let mut ex = Example::start("e5_echo_backpressure", &[]);
    // A small receive buffer (fixed, not grown by the kernel) so that the server's writes
    // soon find no room while this client is not reading.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.connect_timeout(&ex.addr.into(), WAIT).unwrap();
    let mut reader: TcpStream = socket.into();
    reader.set_read_timeout(Some(WAIT)).unwrap();
    let mut writer = reader.try_clone().unwrap();
    writer.set_write_timeout(Some(WAIT)).unwrap();
    let sent: Vec<u8> = (0..16 << 20).map(|i: u32| (i % 251) as u8).collect();
    let expected = sent.clone();
    let writing = thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    // Nothing is read until the server says it stopped reading: backpressure, not memory.
    let paused = ex.wait_for("reading paused");
    let unsent: usize = paused
        .split_whitespace()
        .rev()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert!((64 * 1024..(64 + 16) * 1024).contains(&unsent), "{paused}");
    let echoed = read_to_end(&mut reader);
    assert!(
        echoed == expected,
        "echoed {} bytes of {}, or not the same",
        echoed.len(),
        expected.len()
    );
    writing.join().unwrap();
    ex.wait_for("reading resumed");
}

#[test]
fn e6_a_silent_client_times_out_and_the_loop_sleeps_without_a_deadline() {
    let mut ex = Example::start("e6_deadlines", &["127.0.0.1:0", "1"]);
    ex.wait_for("no deadline armed, no timeout");
    let mut silent = count_client(ex.addr);
    silent.write_all(b"no line end").unwrap();
    assert_eq!(read_to_end(&mut silent), b"Error: timed out after 1 s\n");
    // The connection's deadline was the only one: after it, the poll has no timeout at all.
    ex.wait_for("poll: timeout");
    ex.wait_for("no deadline armed, no timeout");
    // A client that sends its line in time is answered as in e4.
    assert_still_counts(ex.addr);
}

#[test]
fn e6_refuses_an_idle_timeout_out_of_range() {
    for bad in ["0", "-1", "soon", "86401", "99999999999999999999"] {
        let out = run("e6_deadlines", &["127.0.0.1:0", bad]);
        assert!(!out.status.success(), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("not {bad}")), "{bad}: {stderr}");
    }
}

/// What e7's demo client said about a server closing as `mode` says.
fn e7_demo(mode: &str) -> String {
    let server = Example::start("e7_lingering_close", &["127.0.0.1:0", mode]);
    let out = run(
        "e7_lingering_close",
        &["--client", &server.addr.to_string()],
    );
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn e7_an_abrupt_close_ends_the_reply_with_a_reset() {
    let said = e7_demo("abrupt");
    assert!(said.contains("You entered 5 characters.\\n\"\n"), "{said}");
    assert!(
        said.ends_with("then: Connection reset by peer (os error 104)\n"),
        "{said}"
    );
}

#[test]
fn e7_a_lingering_close_ends_the_reply_with_eof() {
    let said = e7_demo("linger");
    assert!(said.contains("You entered 5 characters.\\n\"\n"), "{said}");
    assert!(said.ends_with("then: EOF\n"), "{said}");
}

#[test]
fn e7_the_linger_deadline_closes_a_client_that_never_closes() {
    let mut ex = Example::start("e7_lingering_close", &[]);
    let mut stays = count_client(ex.addr);
    stays.write_all(b"hi\nmore after the line").unwrap();
    // The reply, then the server's FIN (its write side is shut): EOF while still connected.
    assert_eq!(read_to_end(&mut stays), b"You entered 2 characters.\n");
    ex.wait_for("lingering until the client's EOF");
    ex.wait_for("linger deadline passed, closing");
    assert_still_counts(ex.addr);
}

#[test]
fn e8_operator_lines_go_to_the_longest_waiting_connection() {
    let mut ex = Example::start_with("e8_console", &[], Stdio::piped());
    let mut operator = ex.stdin();
    // The seed's client: its message, a half-close, then it reads.
    let mut first = connect(ex.addr);
    first.write_all(b"hello").unwrap();
    first.shutdown(Shutdown::Write).unwrap();
    ex.wait_for("waits for the operator; its client said \"hello\"");
    let mut second = connect(ex.addr);
    second.write_all(b"world").unwrap();
    ex.wait_for("waits for the operator; its client said \"world\"");
    assert_eq!(read_exact(&mut second, 16), b"world\nI get it!\n");
    operator.write_all(b"first\n").unwrap();
    assert_eq!(read_to_end(&mut first), b"hello\nI get it!\nfirst\n");
    operator.write_all(b"second\n").unwrap();
    assert_eq!(read_exact(&mut second, 7), b"second\n");
    // End of input: the console closes and connections no longer wait.
    drop(operator);
    ex.wait_for("end of input");
    second.write_all(b"again").unwrap();
    assert_eq!(read_exact(&mut second, 16), b"again\nI get it!\n");
    second.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut second), b"");
}

#[test]
fn e8_a_standard_input_that_cannot_be_polled_is_end_of_input() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let regular_file = File::open(manifest).unwrap();
    for stdin in [Stdio::null(), Stdio::from(regular_file)] {
        let mut ex = Example::start_with("e8_console", &[], stdin);
        let said = ex.wait_for("cannot poll standard input");
        assert!(said.contains("Operation not permitted"), "{said}");
        let mut client = connect(ex.addr);
        client.write_all(b"hi").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_end(&mut client), b"hi\nI get it!\n");
    }
}

#[test]
fn e9_answers_any_datagram_with_the_time() {
    let ex = Example::start("e9_udp_time", &[]);
    let client = udp_client(ex.addr);
    assert_time_is_now(udp_ask(&client, ex.addr, b""), Epoch::Unix);
    assert_time_is_now(udp_ask(&client, ex.addr, &[7; 1500]), Epoch::Unix);
}

#[test]
fn e9_drops_datagrams_from_ports_below_1024() {
    let mut ex = Example::start("e9_udp_time", &[]);
    // Binding port 7 needs privilege; 127.0.0.3 keeps clear of any real echo service.
    let Ok(echo_port) = UdpSocket::bind(("127.0.0.3", 7)) else {
        eprintln!("cannot bind a port below 1024 here: the drop is not tested");
        return;
    };
    echo_port.send_to(b"loop?", ex.addr).unwrap();
    ex.wait_for("dropped a datagram from 127.0.0.3:7");
    // The server goes on. It answers in order, so by the time this answer has come, one to
    // port 7 would have been sent before it.
    let client = udp_client(ex.addr);
    assert_time_is_now(udp_ask(&client, ex.addr, b"time?"), Epoch::Unix);
    echo_port.set_nonblocking(true).unwrap();
    let err = echo_port
        .recv_from(&mut [0; 16])
        .expect_err("no answer to port 7");
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
}

#[test]
fn every_example_says_how_to_watch_it_with_its_real_address() {
    let examples = [
        "e1_blocking",
        "e2_threads",
        "e3_busy_loop",
        "e4_poll",
        "e4b_level_poll",
        "e5_echo_backpressure",
        "e6_deadlines",
        "e7_lingering_close",
        "e8_console",
        "e9_udp_time",
    ];
    for name in examples {
        let ex = Example::start(name, &[]);
        let banner = ex.banner();
        let (first, commands) = banner.split_first().expect("a banner");
        assert!(first.starts_with("watch it:"), "{name}: {first}");
        assert!(!commands.is_empty(), "{name}: no command");
        let (addr, port) = (ex.addr.to_string(), ex.addr.port().to_string());
        for command in commands {
            assert!(command.starts_with("  "), "{name}: {command:?}");
            for placeholder in ["ADDR", "HOST", "PORT", "PID"] {
                assert!(!command.contains(placeholder), "{name}: {command:?}");
            }
        }
        // Each names the example's own address (or, for `top`, its process).
        let names_it = |c: &String| {
            c.contains(&addr)
                || c.contains(&format!(" {port}"))
                || c.contains(&ex.pid().to_string())
        };
        assert!(commands.iter().all(names_it), "{name}: {commands:?}");
    }
}

#[test]
fn e4b_reads_once_per_event_and_poll_reports_what_is_left() {
    let mut ex = Example::start("e4b_level_poll", &[]);
    // Two clients at once: one accept per event, and the listener is reported again.
    let (first, second) = (count_client(ex.addr), count_client(ex.addr));
    assert_eq!(count_line(second, b"two\n"), "You entered 3 characters.\n");
    // A line of 6000 bytes in one write: more than one read of 4096 takes.
    let long = [vec![b'x'; 6000], b"\n".to_vec()].concat();
    assert_eq!(count_line(first, &long), "You entered 6000 characters.\n");
    let mut read = 0;
    while read < long.len() {
        let line = ex.wait_for("conn 0: read ");
        let n: usize = line.split_whitespace().nth(3).unwrap().parse().unwrap();
        read += n;
    }
    // Each read of that line came from a poll of its own: level-triggered, the socket was
    // reported again while bytes were left.
    let reads: Vec<usize> = (0..ex.seen.len())
        .filter(|&i| ex.seen[i].starts_with("conn 0: read "))
        .collect();
    assert!(reads.len() >= 2, "{:?}", ex.seen);
    for pair in reads.windows(2) {
        let between = &ex.seen[pair[0]..pair[1]];
        assert!(
            between
                .iter()
                .any(|l| l.starts_with("poll:") && l.contains("conn 0")),
            "two reads in one pass: {between:?}"
        );
    }
    wait_asleep(ex.pid());
}

/// What a learner client printed (`args`: its mode, the server's address, options); it must
/// succeed within `limit`.
fn clients(limit: Duration, args: &[&str]) -> String {
    let out = run_within(limit, "clients", args);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {said}{errors}");
    said
}

#[test]
fn clients_flood_stalls_on_e5s_backpressure_and_gets_everything_back() {
    let mut ex = Example::start("e5_echo_backpressure", &[]);
    let said = clients(3 * WAIT, &["flood", &ex.addr.to_string()]);
    assert!(said.contains("my send buffer is full"), "{said}");
    assert!(said.contains("The server stopped reading"), "{said}");
    assert!(said.contains("flood: read back all"), "{said}");
    ex.wait_for("reading paused");
}

#[test]
fn clients_trickle_sends_a_line_in_pieces_that_the_daemon_counts_whole() {
    let daemon = common::start(&["tcp:count@127.0.0.1:0"]);
    let said = clients(
        WAIT,
        &["trickle", &daemon.addr(0).to_string(), "--pause", "20"],
    );
    assert_eq!(said.matches("sent \"").count(), 4, "{said}");
    assert!(
        said.ends_with("EOF: \"You entered 12 characters.\\n\"\n"),
        "{said}"
    );
}

#[test]
fn clients_pair_shows_e1_serving_one_client_at_a_time() {
    let ex = Example::start("e1_blocking", &[]);
    let said = clients(WAIT, &["pair", &ex.addr.to_string()]);
    assert!(said.contains("B has no welcome after 2 s"), "{said}");
    assert!(
        said.contains("B welcomed") && said.contains("after A left"),
        "{said}"
    );
    assert!(said.contains("You entered 5 characters."), "{said}");
}

#[test]
fn clients_pair_shows_e6_timing_out_the_silent_client() {
    let ex = Example::start("e6_deadlines", &["127.0.0.1:0", "1"]);
    let said = clients(WAIT, &["pair", &ex.addr.to_string(), "--wait", "5"]);
    assert!(said.contains("while A stays silent"), "{said}");
    assert!(said.contains("Error: timed out after 1 s"), "{said}");
    assert!(said.contains("then EOF: the server closed it"), "{said}");
}

#[test]
fn clients_many_holds_hundreds_of_connections_on_one_thread() {
    let ex = Example::start("e4_poll", &[]);
    let said = clients(3 * WAIT, &["many", &ex.addr.to_string(), "--count", "300"]);
    assert!(said.contains("300 welcomes read"), "{said}");
    assert!(said.contains("300 of 300 answered"), "{said}");
    assert_eq!(status_kb(ex.pid(), "Threads"), 1);
}
