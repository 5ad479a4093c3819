//! What the daemon costs: its memory idle and per idle connection, and the system calls it
//! makes per served `count` connection.
//!
//! `cargo bench --bench footprint` (options after `--`: `--hold N` idle connections to hold,
//! default 5000; `--exchanges N` count exchanges under strace, default 3000). It runs the
//! release build of `oneloop` as a child process on loopback port 0. The syscall count needs
//! `strace` on the PATH; without it that part says so and is skipped. Exchanges run one at a
//! time (every connection pays a poll wake-up and an accept that finds nothing more) and from
//! 16 clients at once (those costs are shared, as under real load).
//!
//! Syscalls per connection are measured as a difference, so start-up and shutdown do not
//! count: (calls with N exchanges - calls with none) / N, per system call and in all.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_oneloop");
const WAIT: Duration = Duration::from_secs(10);

fn main() {
    let mut hold = 5000usize;
    let mut exchanges = 3000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--hold" => hold = number(args.next()),
            "--exchanges" => exchanges = number(args.next()),
            // cargo bench passes --bench; anything else is not ours.
            _ => {}
        }
    }
    println!("oneloop footprint ({})", BIN);
    memory(hold);
    for clients in [1, 16] {
        for half_close in [false, true] {
            let client = if half_close {
                "client half-closes after its line"
            } else {
                "client waits for the daemon's EOF"
            };
            let what = format!("count connection ({client}, {clients} at once)");
            syscalls(&what, exchanges, clients, move |t| {
                exchange(t.tcp, half_close)
            });
        }
    }
    for clients in [1, 16] {
        segments(exchanges, clients);
    }
    let what = "answered UDP echo datagram (8 clients at once)";
    syscalls(what, exchanges * 4, 8, |t| udp_exchanges(t.udp));
}

fn number(arg: Option<String>) -> usize {
    arg.and_then(|a| a.parse().ok())
        .expect("a whole number after the flag")
}

/// A daemon child (perhaps under a wrapper such as strace) serving TCP `count` and UDP
/// `echo` on 127.0.0.1, ports chosen by the system.
struct Daemon {
    child: Child,
    /// The daemon's own pid (the child's, or the wrapper's child's).
    pid: u32,
    tcp: SocketAddr,
    udp: SocketAddr,
}

impl Daemon {
    fn start(wrapper: &[&str]) -> Daemon {
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let mut child = cmd
            .args(["--tcp", "count@127.0.0.1:0", "--udp", "echo@127.0.0.1:0"])
            .args(["--max-connections", "20000"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start oneloop");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        let mut addrs = Vec::new();
        while addrs.len() < 2 {
            line.clear();
            if stderr.read_line(&mut line).expect("read stderr") == 0 {
                panic!("oneloop exited before listening");
            }
            // "INFO  listening on tcp 127.0.0.1:40000 (count)"
            if let Some(rest) = line.split("listening on ").nth(1) {
                let addr = rest.split_whitespace().nth(1).expect("address");
                addrs.push(addr.parse::<SocketAddr>().expect("socket address"));
            }
        }
        let (tcp, udp) = (addrs[0], addrs[1]);
        // Keep draining stderr so the daemon never blocks on it.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let pid = if wrapper.is_empty() {
            child.id()
        } else {
            let children = format!("/proc/{0}/task/{0}/children", child.id());
            let text = std::fs::read_to_string(children).expect("the wrapper's children");
            text.split_whitespace()
                .next()
                .expect("a child")
                .parse()
                .expect("pid")
        };
        Daemon {
            child,
            pid,
            tcp,
            udp,
        }
    }

    fn pid(&self) -> u32 {
        self.pid
    }

    /// SIGTERM to the daemon itself; a wrapper ends when it does.
    fn stop(mut self) {
        // SAFETY: a signal to a process we started.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s
}

/// Reads the welcome (it ends with the prompt's ": ").
fn read_welcome(s: &mut TcpStream) {
    let mut got = Vec::new();
    let mut buf = [0u8; 128];
    while !got.ends_with(b": ") {
        let n = s.read(&mut buf).expect("welcome");
        assert!(n > 0, "closed before the welcome");
        got.extend_from_slice(&buf[..n]);
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

fn memory(hold: usize) {
    let d = Daemon::start(&[]);
    // One exchange first, so the loop's buffers exist before the idle reading.
    exchange(d.tcp, false);
    let idle = rss_kib(d.pid());
    let mut held = Vec::with_capacity(hold);
    for _ in 0..hold {
        let mut s = connect(d.tcp);
        read_welcome(&mut s);
        held.push(s);
    }
    let holding = rss_kib(d.pid());
    let per = (holding.saturating_sub(idle) * 1024) as f64 / hold as f64;
    println!("RSS idle:                      {idle} KiB");
    println!(
        "RSS with {hold} idle count connections: {holding} KiB ({per:.0} bytes per connection)"
    );
    drop(held);
    d.stop();
}

/// One count exchange: welcome, a line, the reply, EOF. With `half_close` the client shuts its
/// write side after the line (as `nc -N` does); without, it waits for the daemon's EOF.
fn exchange(addr: SocketAddr, half_close: bool) {
    let mut s = connect(addr);
    read_welcome(&mut s);
    s.write_all(b"hello, world\n").expect("send");
    if half_close {
        s.shutdown(Shutdown::Write).expect("half-close");
    }
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("reply");
    assert_eq!(reply, b"You entered 12 characters.\n");
}

/// Where a client thread sends its requests.
#[derive(Clone, Copy)]
struct Target {
    tcp: SocketAddr,
    udp: SocketAddr,
}

/// One UDP echo request and its answer, retried if a datagram is lost.
fn udp_exchanges(to: SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("udp socket");
    s.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    s.connect(to).expect("connect");
    let mut buf = [0u8; 64];
    for _ in 0..5 {
        s.send(b"ping").expect("send");
        if let Ok(4) = s.recv(&mut buf) {
            return;
        }
    }
    panic!("no UDP echo from {to}");
}

/// `n` exchanges with `d` in all, from `clients` threads at once.
fn run_clients(
    d: &Daemon,
    n: usize,
    clients: usize,
    exchange: impl Fn(&Target) + Copy + Send + 'static,
) {
    let (tcp, udp) = (d.tcp, d.udp);
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let share = n / clients + usize::from(c < n % clients);
            std::thread::spawn(move || {
                let target = Target { tcp, udp };
                (0..share).for_each(|_| exchange(&target))
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
}

/// The kernel's count of TCP segments sent (`Tcp: OutSegs` in /proc/net/snmp), by every
/// socket on the machine; on loopback both ends of a connection count.
fn tcp_out_segments() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next()?, tcp.next()?);
    let at = names.split_whitespace().position(|n| n == "OutSegs")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// Prints the TCP segments, both directions, that a count connection costs (the client
/// half-closes after its line): SYN, SYN-ACK, ACK, the welcome, the line and the FIN, the
/// reply and the FIN, and whatever acknowledgements are not carried by data. Other traffic
/// on the machine during the run counts too, so the figure is for a quiet machine.
fn segments(n: usize, clients: usize) {
    let d = Daemon::start(&[]);
    let before = tcp_out_segments();
    run_clients(&d, n, clients, |t| exchange(t.tcp, true));
    let after = tcp_out_segments();
    d.stop();
    match before.zip(after) {
        Some((before, after)) => println!(
            "TCP segments per count connection ({clients} at once, {n} exchanges): {:.2}",
            after.saturating_sub(before) as f64 / n as f64
        ),
        None => println!("TCP segments per count connection: skipped (no /proc/net/snmp)"),
    }
}

/// Calls per system call of a daemon run under strace while `clients` threads do `n`
/// exchanges in all.
fn strace_counts(
    n: usize,
    clients: usize,
    exchange: impl Fn(&Target) + Copy + Send + 'static,
) -> Option<BTreeMap<String, u64>> {
    let out = std::env::temp_dir().join(format!("oneloop-strace-{}-{n}", std::process::id()));
    let out_arg = out.to_str()?.to_string();
    let d = Daemon::start(&["strace", "-c", "-f", "-o", &out_arg]);
    run_clients(&d, n, clients, exchange);
    d.stop();
    let text = std::fs::read_to_string(&out).ok()?;
    let _ = std::fs::remove_file(&out);
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "% time seconds usecs/call calls [errors] syscall"
        if fields.len() >= 5 && fields[0].parse::<f64>().is_ok() {
            let name = fields[fields.len() - 1];
            if let Ok(calls) = fields[3].parse::<u64>() {
                if name != "total" {
                    counts.insert(name.to_string(), calls);
                }
            }
        }
    }
    Some(counts)
}

/// Prints the system calls the daemon makes per exchange, by call and in all.
fn syscalls(
    what: &str,
    n: usize,
    clients: usize,
    exchange: impl Fn(&Target) + Copy + Send + 'static,
) {
    let have_strace = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have_strace {
        println!("syscalls per {what}: skipped (no strace on the PATH)");
        return;
    }
    let (Some(base), Some(run)) = (
        strace_counts(0, clients, exchange),
        strace_counts(n, clients, exchange),
    ) else {
        println!("syscalls per {what}: strace gave no summary");
        return;
    };
    let mut total = 0.0;
    let mut parts = Vec::new();
    for (name, calls) in &run {
        let per = calls.saturating_sub(base.get(name).copied().unwrap_or(0)) as f64 / n as f64;
        if per >= 0.005 {
            parts.push(format!("{name} {per:.2}"));
            total += per;
        }
    }
    println!(
        "syscalls per {what}, {n} exchanges: {total:.2} ({})",
        parts.join(", ")
    );
}
