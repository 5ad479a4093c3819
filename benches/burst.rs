//! How long a burst of connects takes to be welcomed, with the daemon's default listen backlog
//! (the kernel's maximum, `net.core.somaxconn`) and with the old `--backlog 128`.
//!
//! `cargo bench --bench burst` (options after `--`: `--connects N`, default 10000, from four
//! loopback sources; `--backlog N` measures that backlog only). It runs the release build of
//! `oneloop` as a child process on loopback port 0, makes every connect at once (non-blocking),
//! then waits in one poll for every welcome. A connect the kernel drops from a full accept
//! queue is retried by the client's kernel a second later (then 3 s, 7 s, ...), so the time to
//! welcome them all, and how many waited a second or more, show a backlog that is too small.
//! `ListenOverflows` is read from `/proc/net/netstat` before and after: it counts the whole
//! network namespace, so other traffic on the machine adds to it.
//!
//! Needs an open-file limit above the number of connects (the bench raises its soft limit to
//! the hard one).

use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Socket, Type};

const BIN: &str = env!("CARGO_BIN_EXE_oneloop");
const SOURCES: usize = 4;
/// The longest the bench waits for the last welcome: past the client's SYN retries at 1, 3, 7
/// and 15 s. A connect whose handshake the client saw complete but whose final ACK the
/// server dropped (its queue full) is never welcomed: the client sends nothing, so nothing
/// tells it.
const GIVE_UP: Duration = Duration::from_secs(40);

fn main() {
    let mut connects = 10_000usize;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--connects" => connects = number(args.next()),
            "--backlog" => only = Some(number(args.next()).to_string()),
            // cargo bench passes --bench; anything else is not ours.
            _ => {}
        }
    }
    let limit = oneloop::os::sockets::raise_fd_limit().expect("the open-file limit");
    assert!(
        limit as usize > connects + 100,
        "open-file limit {limit}: too low for {connects} connects"
    );
    let (backlog, from) = oneloop::server::default_backlog();
    println!("oneloop burst: {connects} connects at once from {SOURCES} loopback sources ({BIN})");
    let runs = match only {
        Some(n) => vec![n],
        None => vec![String::new(), "128".to_string()],
    };
    for asked in runs {
        let label = match asked.as_str() {
            "" => format!("default backlog {backlog} ({from})"),
            n => format!("--backlog {n}"),
        };
        let r = burst(&asked, connects);
        let last = match r.lost {
            0 => format!("all welcomed in {:.1} ms", ms(r.last)),
            lost => format!(
                "{lost} never welcomed (given up after {} s)",
                GIVE_UP.as_secs()
            ),
        };
        println!(
            "{label}: {last}; median {:.1} ms, p99 {:.1} ms; {} waited 1 s or more; \
             ListenOverflows +{}",
            ms(r.median),
            ms(r.p99),
            r.slow,
            r.overflows
        );
    }
}

/// What one burst measured; times from the first connect.
struct Burst {
    /// When the last welcome came.
    last: Duration,
    median: Duration,
    /// The 99th percentile, counting the connections never welcomed as the slowest.
    p99: Duration,
    /// Connections not welcomed (reset, timed out, or never told).
    lost: usize,
    /// Connections welcomed a second or more after the burst began.
    slow: usize,
    overflows: u64,
}

/// Starts the daemon (with `--backlog BACKLOG` unless empty), makes `connects` connects at
/// once, and waits for every welcome.
fn burst(backlog: &str, connects: usize) -> Burst {
    let mut cmd = Command::new(BIN);
    // Every connection is held until the last is welcomed: a request deadline longer than the
    // longest wait (SYN retries back off to 31 s and more).
    cmd.args(["--tcp", "count@127.0.0.1:0", "--max-connections", "20000"]);
    cmd.args(["--idle-timeout", "300"]);
    if !backlog.is_empty() {
        cmd.args(["--backlog", backlog]);
    }
    let mut child = cmd
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start oneloop");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let to: SocketAddr = loop {
        let line = lines.next().expect("a listening line").unwrap();
        if let Some(rest) = line.split("listening on tcp ").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    // The rest of the log is not read: keep it from filling the pipe.
    std::thread::spawn(move || lines.for_each(drop));

    let overflows = listen_overflows();
    let mut poll = Poll::new().unwrap();
    let start = Instant::now();
    let mut conns: Vec<TcpStream> = (0..connects)
        .map(|i| {
            let from = Ipv4Addr::new(127, 0, 0, 1 + (i % SOURCES) as u8);
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            s.set_nonblocking(true).unwrap();
            s.bind(&SocketAddr::from((from, 0)).into()).unwrap();
            match s.connect(&to.into()) {
                Err(e) if e.raw_os_error() != Some(libc::EINPROGRESS) => panic!("connect: {e}"),
                _ => {}
            }
            let mut stream = TcpStream::from_std(s.into());
            poll.registry()
                .register(&mut stream, Token(i), Interest::READABLE)
                .unwrap();
            stream
        })
        .collect();
    let mut welcomed = Vec::with_capacity(connects);
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 128];
    let mut failed = 0;
    while welcomed.len() + failed < connects && start.elapsed() < GIVE_UP {
        poll.poll(&mut events, Some(Duration::from_secs(1)))
            .unwrap();
        for event in &events {
            let stream = &mut conns[event.token().0];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => panic!("a connection closed before its welcome"),
                    Err(e) if e.kind() != ErrorKind::WouldBlock => {
                        failed += 1;
                        break;
                    }
                    // The welcome comes in one write: its end is the end of a read.
                    Ok(n) if buf[..n].ends_with(b"string: ") => welcomed.push(start.elapsed()),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
    }
    let overflows = listen_overflows() - overflows;
    drop(conns);
    // SAFETY: kill with the child's pid and a valid signal.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    welcomed.sort_unstable();
    let at = |i: usize| welcomed.get(i).copied().unwrap_or(GIVE_UP);
    Burst {
        last: welcomed.last().copied().unwrap_or(GIVE_UP),
        median: at(connects / 2),
        p99: at(connects * 99 / 100),
        lost: connects - welcomed.len(),
        slow: welcomed
            .iter()
            .filter(|t| **t >= Duration::from_secs(1))
            .count(),
        overflows,
    }
}

/// `ListenOverflows` of the `TcpExt` lines of `/proc/net/netstat`.
fn listen_overflows() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").expect("/proc/net/netstat");
    let mut tcp_ext = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (tcp_ext.next().unwrap(), tcp_ext.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|name| name == "ListenOverflows")
        .unwrap();
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn number(arg: Option<String>) -> usize {
    arg.and_then(|a| a.parse().ok())
        .expect("a whole number after the option")
}
