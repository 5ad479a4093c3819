//! Child processes: servers and load runs, pinned to a CPU, read from /proc, and bounded in
//! time. Every child is killed when its handle is dropped, so no run outlives the bench.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::procfs;

/// The CPU the server under test runs on, when pinning is possible.
pub const SERVER_CPU: usize = 0;
/// The CPU the load runs on.
pub const LOAD_CPU: usize = 1;

/// Whether this process may run on both CPU 0 and CPU 1 (so servers and load can be pinned
/// apart).
pub fn can_pin() -> bool {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills the set given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0
            && libc::CPU_ISSET(SERVER_CPU, &set)
            && libc::CPU_ISSET(LOAD_CPU, &set)
    }
}

/// A command for `argv`, pinned to `cpu` when one is given, with stdout and stderr piped.
fn command(argv: &[OsString], cpu: Option<usize>) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cpu) = cpu {
        // SAFETY: the closure makes one system call and touches no shared state, which is
        // what is allowed between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
    }
    cmd
}

/// Sends every line of `from` to the returned channel; once nobody listens it goes on reading,
/// so the child never blocks on a full pipe.
fn lines(from: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    rx
}

/// User and system CPU time of a process, in microseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTime {
    pub user_us: f64,
    pub sys_us: f64,
}

impl std::ops::Sub for CpuTime {
    type Output = CpuTime;
    fn sub(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user_us: self.user_us - earlier.user_us,
            sys_us: self.sys_us - earlier.sys_us,
        }
    }
}

impl std::ops::Add for CpuTime {
    type Output = CpuTime;
    fn add(self, other: CpuTime) -> CpuTime {
        CpuTime {
            user_us: self.user_us + other.user_us,
            sys_us: self.sys_us + other.sys_us,
        }
    }
}

/// A server under test: a child process that has announced its TCP and UDP addresses, or an
/// external one (`sh -c COMMAND` leading a process group of its own) that listens on the ports
/// it was given.
pub struct Server {
    child: Child,
    /// What it writes on stderr after start-up (held so the pipe keeps draining).
    stderr: Receiver<String>,
    /// The same for stdout, for an external server.
    stdout: Option<Receiver<String>>,
    pub tcp: SocketAddr,
    pub udp: SocketAddr,
    /// Whether this is an external server: measured as a process tree, stopped as a group.
    external: bool,
}

/// How long an external server has, after SIGTERM to its process group, before SIGKILL.
const STOP_WITHIN: Duration = Duration::from_secs(2);
/// How often an external server's ports are looked at while it starts.
const START_POLL: Duration = Duration::from_millis(20);

impl Server {
    /// Starts `argv` and waits (at most `within`) for its addresses: `tcp PORT udp PORT` on
    /// stdout (the variants) or oneloop's `listening on tcp ADDR (count)` and
    /// `listening on udp ADDR (echo)` on stderr.
    pub fn start(argv: &[OsString], cpu: Option<usize>, within: Duration) -> io::Result<Server> {
        let mut child = command(argv, cpu).spawn()?;
        let out = lines(child.stdout.take().expect("piped stdout"));
        let err = lines(child.stderr.take().expect("piped stderr"));
        let deadline = Instant::now() + within;
        let (mut tcp, mut udp) = (None, None);
        let mut said = Vec::new();
        while tcp.is_none() || udp.is_none() {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(format!(
                    "{:?} gave no addresses within {within:?}: {}",
                    argv[0],
                    said.join(" / ")
                )));
            }
            let line = out
                .recv_timeout(Duration::from_millis(10))
                .or_else(|_| err.recv_timeout(Duration::from_millis(10)));
            if let Ok(line) = line {
                let (t, u) = announced(&line);
                tcp = tcp.or(t);
                udp = udp.or(u);
                said.push(line);
            }
        }
        Ok(Server {
            child,
            stderr: err,
            stdout: None,
            tcp: tcp.expect("tcp address"),
            udp: udp.expect("udp address"),
            external: false,
        })
    }

    /// Runs `sh -c COMMAND` (with `{tcp}`, `{udp}` and `{host}` replaced, and the same in
    /// `ONELOOP_TCP_PORT`, `ONELOOP_UDP_PORT` and `ONELOOP_HOST`) in a process group of its
    /// own, on free ports this picks, and waits (at most `within`) until it listens on the TCP
    /// port and, unless `tcp_only`, has bound the UDP one.
    pub fn external(
        command: &str,
        tcp_only: bool,
        cpu: Option<usize>,
        within: Duration,
    ) -> io::Result<Server> {
        let host = "127.0.0.1";
        let (tcp, udp) = (free_port(true)?, free_port(false)?);
        let script = crate::cli::substitute(command, tcp, udp, host);
        let argv = ["sh", "-c", &script].map(OsString::from);
        let mut cmd = self::command(&argv, cpu);
        cmd.env("ONELOOP_TCP_PORT", tcp.to_string())
            .env("ONELOOP_UDP_PORT", udp.to_string())
            .env("ONELOOP_HOST", host)
            .process_group(0);
        let mut child = cmd.spawn()?;
        let out = lines(child.stdout.take().expect("piped stdout"));
        let err = lines(child.stderr.take().expect("piped stderr"));
        let mut server = Server {
            child,
            stderr: err,
            stdout: Some(out),
            tcp: SocketAddr::from(([127, 0, 0, 1], tcp)),
            udp: SocketAddr::from(([127, 0, 0, 1], udp)),
            external: true,
        };
        let deadline = Instant::now() + within;
        loop {
            if let Some(why) = server.exited() {
                return Err(io::Error::other(format!(
                    "{why} before listening on tcp {tcp}{}",
                    server.said()
                )));
            }
            if procfs::tcp_listening(tcp) && (tcp_only || procfs::udp_bound(udp)) {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                let what = if procfs::tcp_listening(tcp) {
                    format!("did not bind udp {udp}")
                } else {
                    format!("did not start listening on tcp {tcp}")
                };
                return Err(io::Error::other(format!(
                    "{what} within {} s{}",
                    within.as_secs_f64(),
                    server.said()
                )));
            }
            thread::sleep(START_POLL);
        }
    }

    /// What an external server wrote so far, as ` (said: ...)`, or nothing.
    fn said(&self) -> String {
        let said: Vec<String> = (self.stdout.iter().chain([&self.stderr]))
            .flat_map(|rx| rx.try_iter().collect::<Vec<_>>())
            .collect();
        if said.is_empty() {
            String::new()
        } else {
            format!(" (it said: {})", said.join(" / "))
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Why the server is gone: its first process exited, or (external) nothing listens on its
    /// TCP port any more. None while it serves.
    pub fn ended(&mut self) -> Option<String> {
        if let Some(why) = self.exited() {
            return Some(why);
        }
        let port = self.tcp.port();
        (self.external && !procfs::tcp_listening(port))
            .then(|| format!("stopped listening on tcp {port}"))
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("exited ({status})")),
            _ => None,
        }
    }

    /// CPU time the server has used: the process with its threads, or for an external server
    /// its whole tree (see [`procfs::tree_ticks`]).
    pub fn cpu(&self) -> CpuTime {
        if !self.external {
            return cpu_time(self.pid());
        }
        let (user, sys) = procfs::tree_ticks(&procfs::all_stats(), self.pid());
        CpuTime {
            user_us: user as f64 * tick_us(),
            sys_us: sys as f64 * tick_us(),
        }
    }

    /// Resident memory in KiB: the process's, or the sum over an external server's tree.
    pub fn rss_kib(&self) -> Option<u64> {
        if !self.external {
            return rss_kib(self.pid());
        }
        let tree = procfs::tree(&procfs::all_stats(), self.pid());
        tree.iter().map(|p| rss_kib(p.pid)).sum()
    }

    /// Sends SIGTERM to process `pid` (this server or a process under it) and waits, at most
    /// `within`, for this server to exit.
    pub fn terminate(mut self, pid: u32, within: Duration) {
        // SAFETY: a signal to a process this bench started.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    /// Kills a built-in server; stops an external one with SIGTERM to its process group, then
    /// SIGKILL to what is left of the group after [`STOP_WITHIN`].
    fn drop(&mut self) {
        if self.external {
            let group = -(self.pid() as libc::pid_t);
            // SAFETY: signals to the process group this bench started.
            unsafe { libc::kill(group, libc::SIGTERM) };
            let deadline = Instant::now() + STOP_WITHIN;
            while Instant::now() < deadline && self.exited().is_none() {
                thread::sleep(Duration::from_millis(10));
            }
            // SAFETY: as above.
            unsafe { libc::kill(group, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free on 127.0.0.1 a moment ago (bound to port 0 and let go).
fn free_port(tcp: bool) -> io::Result<u16> {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let addr = if tcp {
        std::net::TcpListener::bind(any)?.local_addr()?
    } else {
        std::net::UdpSocket::bind(any)?.local_addr()?
    };
    Ok(addr.port())
}

/// The addresses a server's line announces.
fn announced(line: &str) -> (Option<SocketAddr>, Option<SocketAddr>) {
    let mut words = line.split_whitespace();
    if let (Some("tcp"), Some(t), Some("udp"), Some(u)) =
        (words.next(), words.next(), words.next(), words.next())
    {
        let port = |p: &str| {
            p.parse()
                .ok()
                .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        };
        return (port(t), port(u));
    }
    let after = |key: &str| {
        line.split(key)
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    (after("listening on tcp "), after("listening on udp "))
}

/// The first child of process `pid` (the program a wrapper such as strace started).
pub fn first_child(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Microseconds per clock tick, the unit of /proc/PID/stat's times.
fn tick_us() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    1e6 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// User and system CPU time of `pid` with all its threads, from /proc/PID/stat.
pub fn cpu_time(pid: u32) -> CpuTime {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) start with the state, field 3;
    // utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let tick_us = tick_us();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    CpuTime {
        user_us: ticks(11) * tick_us,
        sys_us: ticks(12) * tick_us,
    }
}

/// CPU time of this process's children that have ended and been waited for.
pub fn ended_children_cpu() -> CpuTime {
    // SAFETY: rusage is plain data; getrusage fills the struct given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    CpuTime {
        user_us: us(usage.ru_utime),
        sys_us: us(usage.ru_stime),
    }
}

/// Resident memory of `pid` in KiB, from /proc/PID/status.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// A run of the load generator.
pub struct Load {
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Receiver<String>,
    deadline: Instant,
}

/// How a load run ended.
pub struct LoadEnd {
    /// Its JSON report, when it finished in time and printed one.
    pub report: Option<serde_json::Value>,
    /// Why there is no report, or an empty string.
    pub problem: String,
}

impl Load {
    /// Starts `argv`; it is killed if it has not ended within `timeout`.
    pub fn start(argv: &[OsString], cpu: Option<usize>, timeout: Duration) -> io::Result<Load> {
        let mut child = command(argv, cpu).spawn()?;
        let mut out = child.stdout.take().expect("piped stdout");
        let stdout = thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        });
        let stderr = lines(child.stderr.take().expect("piped stderr"));
        Ok(Load {
            child,
            stdout: Some(stdout),
            stderr,
            deadline: Instant::now() + timeout,
        })
    }

    /// Waits, at most `within` (and never past the run's deadline), for a stderr line that
    /// starts with `prefix`.
    pub fn wait_for(&self, prefix: &str, within: Duration) -> bool {
        let deadline = self.deadline.min(Instant::now() + within);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// Waits for the run to end (killing it at its deadline) and reads its report.
    pub fn finish(mut self) -> LoadEnd {
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < self.deadline => {
                    thread::sleep(Duration::from_millis(10));
                }
                _ => break None,
            }
        };
        let Some(status) = status else {
            return LoadEnd {
                report: None,
                problem: "load killed at its time limit".into(),
            };
        };
        let text = self
            .stdout
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        match serde_json::from_str(&text) {
            Ok(report) => LoadEnd {
                report: Some(report),
                problem: String::new(),
            },
            Err(_) => {
                let said: Vec<String> = self.stderr.try_iter().collect();
                LoadEnd {
                    report: None,
                    problem: format!("load {status}: {}", said.join(" / ")),
                }
            }
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
