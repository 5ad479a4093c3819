//! Helpers shared by the integration tests: a daemon in-process on port 0, clients with
//! bounded waits, and the built binary as a child process.
#![allow(dead_code)] // each test file uses its own share of these

pub mod handover;
pub mod inetd;
pub mod netns;
pub mod tmp;
pub mod users;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::process::{Child, ChildStderr, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use oneloop::config::Instance;
use oneloop::proto::Transport;
use oneloop::{Config, Server, Summary};

/// The longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// The daemon's arguments for a test that runs the binary beside a real peer (an inetd's
/// line, nginx's or xinetd's backend): `args`, then `--sandbox` when [`sandboxed`].
pub fn daemon_args(args: &[&str]) -> Vec<String> {
    let sandbox = sandboxed().then_some("--sandbox");
    args.iter()
        .copied()
        .chain(sandbox)
        .map(String::from)
        .collect()
}

/// A daemon running on its own thread.
pub struct Daemon {
    pub instances: Vec<Instance>,
    stop: oneloop::Shutdown,
    thread: Option<JoinHandle<io::Result<Summary>>>,
}

impl Daemon {
    /// The address of the `n`th instance.
    pub fn addr(&self, n: usize) -> SocketAddr {
        self.instances[n].addr
    }

    /// Drains and stops the daemon; returns its summary.
    pub fn stop(mut self) -> Summary {
        self.stop.shutdown();
        self.join()
    }

    /// Asks for a drain without waiting for it.
    pub fn request_stop(&self) {
        self.stop.shutdown();
    }

    /// Waits (bounded) for the loop to return.
    pub fn join(&mut self) -> Summary {
        let thread = self.thread.take().expect("joined once");
        let deadline = Instant::now() + WAIT;
        while !thread.is_finished() {
            assert!(Instant::now() < deadline, "the daemon did not stop");
            thread::sleep(Duration::from_millis(5));
        }
        thread.join().expect("loop thread").expect("loop result")
    }
}

impl Drop for Daemon {
    /// Stops the loop at once; a loop that does not stop (a failing test) is left behind
    /// rather than hanging the test run.
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.shutdown();
            self.stop.shutdown();
            let deadline = Instant::now() + WAIT;
            while !thread.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

/// Parses `tcp:count@127.0.0.1:0` style specs.
pub fn instance(spec: &str) -> Instance {
    let (transport, rest) = spec.split_once(':').expect("transport:spec");
    let transport = match transport {
        "tcp" => Transport::Tcp,
        "udp" => Transport::Udp,
        other => panic!("transport {other}"),
    };
    Instance::parse(transport, rest).expect("instance spec")
}

/// Starts a daemon with these instances and the defaults changed by `tweak`.
pub fn start_with(specs: &[&str], tweak: impl FnOnce(&mut Config)) -> Daemon {
    let mut config = Config::with_instances(specs.iter().map(|s| instance(s)).collect());
    tweak(&mut config);
    let server = Server::bind(config).expect("bind");
    let instances = server.instances().to_vec();
    let stop = server.shutdown_handle();
    let thread = Some(thread::spawn(move || server.run()));
    Daemon {
        instances,
        stop,
        thread,
    }
}

/// Starts a daemon with these instances and every default.
pub fn start(specs: &[&str]) -> Daemon {
    start_with(specs, |_| {})
}

/// A TCP connection with bounded reads and writes.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// A TCP connection from the address `from` (port 0) to `to`, with bounded waits: on
/// loopback every 127.x.y.z is a source of its own.
pub fn try_connect_from(from: &str, to: SocketAddr) -> io::Result<TcpStream> {
    let from: std::net::IpAddr = from.parse().expect("a source address");
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        None,
    )?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect_timeout(&to.into(), WAIT)?;
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(WAIT))?;
    s.set_write_timeout(Some(WAIT))?;
    Ok(s)
}

/// [`try_connect_from`], failing the test when the connection cannot be made.
pub fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    try_connect_from(from, to).expect("connect")
}

/// Closes `s` with a reset (linger 0: the close sends RST instead of FIN).
pub fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

/// Reads exactly `n` bytes.
pub fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).expect("read");
    buf
}

/// Reads until EOF; a reset or timeout fails the test.
pub fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read to EOF");
    buf
}

/// The welcome a count client at `s` gets.
pub fn welcome_for(s: &TcpStream) -> Vec<u8> {
    format!(
        "Welcome, {}\nPlease enter a string: ",
        s.local_addr().unwrap()
    )
    .into_bytes()
}

/// Connects to a count service and reads the welcome.
pub fn count_client(addr: SocketAddr) -> TcpStream {
    let mut s = connect(addr);
    let want = welcome_for(&s);
    assert_eq!(
        String::from_utf8_lossy(&read_exact(&mut s, want.len())),
        String::from_utf8_lossy(&want)
    );
    s
}

/// A whole count exchange: welcome, `line` as sent (LF included or not), then half-close and
/// read the reply to EOF.
pub fn count_reply(addr: SocketAddr, line: &[u8]) -> String {
    let mut s = count_client(addr);
    s.write_all(line).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    String::from_utf8(read_to_end(&mut s)).unwrap()
}

/// The value of the sample line of a `stats` body that starts with `name{labels}`.
pub fn sample(body: &str, series: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{body}"))
}

/// Checks a time service's reply: exactly 4 bytes, within 5 s of the clock in `epoch`.
pub fn assert_time_is_now(reply: Vec<u8>, epoch: oneloop::proto::Epoch) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let want = match epoch {
        oneloop::proto::Epoch::Unix => now,
        oneloop::proto::Epoch::Rfc868 => now + 2_208_988_800,
    } as u32;
    let bytes: [u8; 4] = reply.try_into().expect("a 4-byte reply");
    let value = u32::from_be_bytes(bytes);
    assert!(want.wrapping_sub(value) <= 5, "{value} vs {want}");
}

/// A UDP socket on loopback matching `to`'s family, with a bounded read timeout.
pub fn udp_client(to: SocketAddr) -> UdpSocket {
    let local = if to.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    };
    let s = UdpSocket::bind(local).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s
}

/// Sends a datagram and waits (bounded, with retries: UDP may lose one) for the answer.
pub fn udp_ask(s: &UdpSocket, to: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut buf = vec![0; 65536];
    for _ in 0..5 {
        s.send_to(msg, to).unwrap();
        match s.recv_from(&mut buf) {
            Ok((n, from)) => {
                assert_eq!(from, to);
                buf.truncate(n);
                return buf;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    panic!("no answer from {to}");
}

/// Whether a datagram arrives on `s` within `wait`.
pub fn udp_silent(s: &UdpSocket, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0; 64];
    s.recv_from(&mut buf).is_err()
}

/// The built `oneloop` binary, its stderr read line by line on a thread.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    /// Starts `oneloop ARGS` with `RUST_LOG` set to `log`.
    pub fn spawn(args: &[&str], log: &str) -> Proc {
        Proc::spawn_cmd(
            Command::new(env!("CARGO_BIN_EXE_oneloop"))
                .args(args)
                .env("RUST_LOG", log),
        )
    }

    pub fn spawn_cmd(cmd: &mut Command) -> Proc {
        Proc::spawn_cmd_stdin(cmd, Stdio::null())
    }

    /// Starts `oneloop ARGS` (`RUST_LOG` = `log`) with its standard input a pipe the test
    /// writes to.
    pub fn spawn_piped(args: &[&str], log: &str) -> (Proc, ChildStdin) {
        let mut p = Proc::spawn_cmd_stdin(
            Command::new(env!("CARGO_BIN_EXE_oneloop"))
                .args(args)
                .env("RUST_LOG", log),
            Stdio::piped(),
        );
        let stdin = p.child.stdin.take().expect("piped stdin");
        (p, stdin)
    }

    pub fn spawn_cmd_stdin(cmd: &mut Command, stdin: Stdio) -> Proc {
        sandbox_if_asked(cmd);
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn oneloop");
        let stderr: ChildStderr = child.stderr.take().unwrap();
        Proc {
            child,
            lines: lines_of(stderr),
            seen: Vec::new(),
        }
    }

    /// Starts `cmd` with `stdin`, its standard error a pipe that `JOURNAL_STREAM` names, as
    /// systemd names the journal's stream: the daemon logs there whatever else it is told.
    pub fn spawn_cmd_journal(cmd: &mut Command, stdin: Stdio) -> Proc {
        let (reader, writer) = io::pipe().expect("pipe");
        let writer = std::fs::File::from(std::os::fd::OwnedFd::from(writer));
        let meta = writer.metadata().expect("fstat of the pipe");
        let child = cmd
            .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(writer)
            .spawn()
            .expect("spawn oneloop");
        Proc {
            child,
            lines: lines_of(reader),
            seen: Vec::new(),
        }
    }

    /// Reads stderr lines (bounded wait) until `enough` holds for the lines seen so far.
    fn read_until(&mut self, what: &str, enough: impl Fn(&[String]) -> bool) {
        self.read_until_within(what, WAIT, enough);
    }

    /// [`Proc::read_until`], waiting at most `within`.
    fn read_until_within(
        &mut self,
        what: &str,
        within: Duration,
        enough: impl Fn(&[String]) -> bool,
    ) {
        let deadline = Instant::now() + within;
        while !enough(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no {what}; stderr so far:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Waits for a stderr line containing `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        self.wait_for_within(needle, WAIT)
    }

    /// [`Proc::wait_for`], waiting at most `within`: for a line that comes after a wait of
    /// the daemon's own.
    pub fn wait_for_within(&mut self, needle: &str, within: Duration) -> String {
        self.read_until_within(needle, within, |seen| {
            seen.iter().any(|l| l.contains(needle))
        });
        self.seen
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
            .unwrap()
    }

    /// Waits for each of `steps` in turn, each on a stderr line after the last one's (the
    /// trace telling a story in order); returns the index of the last line matched.
    pub fn wait_in_order(&mut self, steps: &[&str]) -> usize {
        let mut from = 0;
        for step in steps {
            let found = |seen: &[String]| seen.iter().skip(from).position(|l| l.contains(step));
            self.read_until(step, |seen| found(seen).is_some());
            from += found(&self.seen).unwrap() + 1;
        }
        from - 1
    }

    /// Waits for the `n`th stderr line (counting from 1) containing `needle`; returns it.
    pub fn wait_for_nth(&mut self, needle: &str, n: usize) -> String {
        let matching = |seen: &[String]| seen.iter().filter(|l| l.contains(needle)).count();
        self.read_until(needle, |seen| matching(seen) >= n);
        self.seen
            .iter()
            .filter(|l| l.contains(needle))
            .nth(n - 1)
            .cloned()
            .unwrap()
    }

    /// The addresses of the first `n` `listening on` lines.
    pub fn listening(&mut self, n: usize) -> Vec<SocketAddr> {
        let is_listening = |l: &&String| l.contains("listening on");
        self.read_until("listening lines", |seen| {
            seen.iter().filter(is_listening).count() >= n
        });
        self.seen
            .iter()
            .filter(is_listening)
            .take(n)
            .map(|l| {
                let addr = l
                    .split_whitespace()
                    .nth(4)
                    .expect("address in listening line");
                addr.parse().expect("socket address")
            })
            .collect()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill with the child's pid and a valid signal number.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// Waits (bounded) for the exit status code; collects the rest of stderr.
    pub fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
                    self.seen.push(line);
                }
                assert_not_killed_by_the_sandbox(status, &self.seen);
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "oneloop did not exit; stderr:\n{}",
                self.seen.join("\n")
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The lines read from `stream` on a thread of their own, until it ends.
fn lines_of(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// Whether the suite runs every daemon it starts from the binary with `--sandbox`
/// (`ONELOOP_TEST_SANDBOX=1`); daemons run in-process by the library never are.
pub fn sandboxed() -> bool {
    std::env::var("ONELOOP_TEST_SANDBOX").as_deref() == Ok("1")
}

/// The daemon's last words in an inetd's configuration line or a shell command: ` --sandbox`
/// when [`sandboxed`], else nothing.
pub fn sandbox_suffix() -> &'static str {
    if sandboxed() {
        " --sandbox"
    } else {
        ""
    }
}

/// Adds `--sandbox` to `cmd` when [`sandboxed`] and `cmd` runs the daemon: the binary
/// itself, or a command (systemd-socket-activate, unshare) whose last part runs it, with no
/// other subcommand than `serve` and no `--sandbox` of its own.
pub fn sandbox_if_asked(cmd: &mut Command) {
    if !sandboxed() {
        return;
    }
    let bin = std::ffi::OsStr::new(env!("CARGO_BIN_EXE_oneloop"));
    let bin_name = std::path::Path::new(bin).file_name();
    let is_bin = |s: &std::ffi::OsStr| s == bin || std::path::Path::new(s).file_name() == bin_name;
    let words: Vec<&std::ffi::OsStr> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .collect();
    let launcher = std::path::Path::new(cmd.get_program())
        .file_name()
        .is_some_and(|p| p == "systemd-socket-activate" || p == "unshare");
    let Some(at) = words.iter().rposition(|w| is_bin(w)) else {
        return;
    };
    if at > 0 && !launcher {
        return;
    }
    let own = &words[at + 1..];
    let other_command = own
        .first()
        .is_some_and(|w| ["client", "sockopts", "load"].iter().any(|c| w == c));
    let has_it = own
        .iter()
        .any(|w| w.to_str().is_some_and(|w| w.starts_with("--sandbox")));
    if !other_command && !has_it {
        cmd.arg("--sandbox");
    }
}

/// Fails the test when the daemon died of `SIGSYS`: a call the sandbox does not allow.
pub fn assert_not_killed_by_the_sandbox(status: std::process::ExitStatus, stderr: &[String]) {
    use std::os::unix::process::ExitStatusExt;
    assert_ne!(
        status.signal(),
        Some(libc::SIGSYS),
        "the daemon died of SIGSYS (a system call outside the sandbox); stderr:\n{}",
        stderr.join("\n")
    );
}

/// What a run of the binary that ended by itself left behind.
pub struct Ended {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Proc {
    /// Waits (bounded) for the exit; returns its code, stdout and stderr.
    pub fn finish(mut self) -> Ended {
        let code = self.wait_exit();
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .expect("piped stdout")
            .read_to_string(&mut stdout)
            .expect("read stdout");
        Ended {
            code,
            stdout,
            stderr: self.seen.join("\n"),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            if !thread::panicking() {
                assert_not_killed_by_the_sandbox(status, &self.seen);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field (in kB) of /proc/PID/status.
pub fn status_kb(pid: i32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// The fields of /proc/PID/stat from the state on (index 0 is field 3, the state).
pub fn stat_fields(pid: i32) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &text[text.rfind(')').expect("comm in stat") + 1..];
    after_name.split_whitespace().map(String::from).collect()
}

/// User plus system CPU time of a process, in clock ticks (stat fields 14 and 15).
pub fn cpu_ticks(pid: i32) -> u64 {
    let fields = stat_fields(pid);
    let ticks = |i: usize| fields[i].parse::<u64>().expect("tick count");
    ticks(11) + ticks(12)
}

/// Voluntary and involuntary context switches of a (single-threaded) process so far.
pub fn context_switches(pid: i32) -> (u64, u64) {
    (
        status_kb(pid, "voluntary_ctxt_switches"),
        status_kb(pid, "nonvoluntary_ctxt_switches"),
    )
}

/// How many descriptors process `pid` has open now.
pub fn open_descriptors(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count()
}

/// Says that `test` is skipped for want of `missing` (root, a command); under CI
/// (`CI=true`), where a skip would hide the test, fails it instead.
pub fn skip_for_want_of(test: &str, missing: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} needs {missing}, which CI must have"
    );
    eprintln!("{test}: skipped: needs {missing}");
}

/// Polls `cond` (bounded) until it holds.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

/// Waits (bounded) until the process sleeps (state S: in its poll, with nothing to do).
pub fn wait_asleep(pid: i32) {
    wait_until("the daemon to sleep in its poll", || {
        stat_fields(pid)[0] == "S"
    });
}
