//! Soak: does the daemon stay the same through millions of connections and datagrams? Its
//! memory (VmRSS) and its descriptors after the run must be what they were after a warm-up.
//!
//! `cargo bench --bench soak` (options after `--`): `--connections N` `count` connections to
//! churn (default 2000000; the bench's `echo` exchanges come on top), or `--duration SECS` of
//! churn; `--quick` is `--duration 20` with shorter rounds, for CI; `--holders N` idle
//! connections held through the whole run (default 100, half `count`, half `echo`);
//! `--rss-slack KIB` how far the RSS may grow (default 1024). Within one run the RSS does not
//! move at all once warm (not by one page over two million connections), so the slack only
//! allows for a later peak of connections in flight growing the connection table; a leak of
//! one byte a connection passes it over a million connections, ten bytes over `--quick`.
//!
//! The daemon is the release build cargo built beside this bench, serving `count` and `echo`
//! on TCP and `time` and `echo` on UDP on loopback port 0. The load comes in rounds (10 s, 5 s
//! with `--quick`) of four at once: `oneloop load count` from 64 source addresses
//! (127.0.0.1 to 127.0.0.64), `oneloop load udp-echo`, `oneloop load udp-time`, and this
//! bench's own `echo` exchanges (connect, a line, its echo, half-close, EOF). Every few
//! seconds the daemon is sent SIGUSR1 and a row is printed: the counters it logs, its RSS and
//! its open descriptors. A first round of 5 s is the warm-up; its end is the baseline.
//!
//! It fails (exit status 1) when the daemon dies, a load run reports an error, the RSS at the
//! end is more than the slack above the baseline, the descriptors at the end are not the
//! baseline's, or the daemon's summary at SIGTERM does not count what the clients completed:
//! connections served must equal the exchanges completed (with the holders), datagrams
//! answered must lie between the replies received and those plus the datagrams lost.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_oneloop");
/// The bound on every wait for the daemon: a log line, a reply, an exit.
const WAIT: Duration = Duration::from_secs(10);
/// Source addresses of the count load (127.0.0.1 ..= 127.0.0.SOURCES).
const SOURCES: &str = "64";
const LINE: &[u8] = b"hello, world\n";
const COUNT_REPLY: &[u8] = b"You entered 12 characters.\n";

struct Options {
    /// Count connections to churn, when the budget is a number of connections.
    connections: Option<u64>,
    /// Seconds of churn, when the budget is a time.
    duration: Option<f64>,
    round_secs: f64,
    sample_secs: f64,
    holders: usize,
    rss_slack_kib: u64,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        connections: None,
        duration: None,
        round_secs: 10.0,
        sample_secs: 5.0,
        holders: 100,
        rss_slack_kib: 1024,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--connections" => o.connections = Some(number(&value()?)?),
            "--duration" => o.duration = Some(number(&value()?)?),
            "--holders" => o.holders = number(&value()?)?,
            "--rss-slack" => o.rss_slack_kib = number(&value()?)?,
            "--quick" => {
                o.duration = Some(20.0);
                o.round_secs = 5.0;
                o.sample_secs = 2.0;
            }
            // cargo bench passes --bench.
            "--bench" => {}
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    if o.connections.is_none() && o.duration.is_none() {
        o.connections = Some(2_000_000);
    }
    Ok(o)
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    println!("command: cargo bench --bench soak -- {}", args.join(" "));
    println!("daemon:  {BIN}");
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    match soak(&o) {
        Ok(failures) if failures.is_empty() => ExitCode::SUCCESS,
        Ok(failures) => {
            for f in failures {
                println!("FAIL: {f}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("FAIL: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The daemon under test and the lines it logs.
struct Daemon {
    child: Child,
    pid: u32,
    log: Receiver<String>,
    count: SocketAddr,
    echo: SocketAddr,
    udp_time: SocketAddr,
    udp_echo: SocketAddr,
    /// Lines logged at warn or error, kept for the report.
    complaints: Vec<String>,
}

impl Daemon {
    fn start() -> Result<Daemon, String> {
        let mut child = Command::new(BIN)
            .args(["--tcp", "count@127.0.0.1:0", "--tcp", "echo@127.0.0.1:0"])
            .args(["--udp", "time@127.0.0.1:0", "--udp", "echo@127.0.0.1:0"])
            // The holders stay idle the whole run: no deadline may close them.
            .args(["--idle-timeout", "31536000", "--max-connections", "20000"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {BIN}: {e}"))?;
        let log = log_lines(child.stderr.take().expect("piped stderr"));
        let pid = child.id();
        let mut d = Daemon {
            child,
            pid,
            log,
            count: SocketAddr::from(([0, 0, 0, 0], 0)),
            echo: SocketAddr::from(([0, 0, 0, 0], 0)),
            udp_time: SocketAddr::from(([0, 0, 0, 0], 0)),
            udp_echo: SocketAddr::from(([0, 0, 0, 0], 0)),
            complaints: Vec::new(),
        };
        for _ in 0..4 {
            // "INFO  listening on tcp 127.0.0.1:40000 (count)"
            let line = d.next_line("listening on ")?;
            let mut words = line.split("listening on ").nth(1).unwrap_or("").split(' ');
            let (proto, addr, service) = (words.next(), words.next(), words.next());
            let addr: SocketAddr = addr
                .and_then(|a| a.parse().ok())
                .ok_or(format!("no address in {line:?}"))?;
            match (proto, service) {
                (Some("tcp"), Some("(count)")) => d.count = addr,
                (Some("tcp"), Some("(echo)")) => d.echo = addr,
                (Some("udp"), Some("(time)")) => d.udp_time = addr,
                (Some("udp"), Some("(echo)")) => d.udp_echo = addr,
                _ => return Err(format!("unexpected listener: {line:?}")),
            }
        }
        Ok(d)
    }

    /// The next line that contains `needle`, within WAIT; warnings and errors on the way are
    /// kept.
    fn next_line(&mut self, needle: &str) -> Result<String, String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .log
                .recv_timeout(left)
                .map_err(|_| format!("the daemon logged no {needle:?} within {WAIT:?}"))?;
            if line.starts_with("WARN") || line.starts_with("ERROR") {
                self.complaints.push(line.clone());
            }
            if line.contains(needle) {
                return Ok(line);
            }
        }
    }

    fn alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("the daemon died: {status}")),
            Err(e) => Err(format!("cannot wait for the daemon: {e}")),
        }
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: a signal to the process this bench started and has not yet reaped.
        unsafe { libc::kill(self.pid as libc::pid_t, sig) };
    }

    /// Its counters now (SIGUSR1), memory and descriptors.
    fn sample(&mut self) -> Result<Sample, String> {
        self.alive()?;
        self.signal(libc::SIGUSR1);
        let line = self.next_line("; connections open ")?;
        Ok(Sample {
            counters: Counters::parse(&line)?,
            open: counter(&line, "connections open ")?,
            rss_kib: rss_kib(self.pid)?,
            fds: fds(self.pid)?,
        })
    }

    /// SIGTERM, the exit and the summary line.
    fn stop(mut self) -> Result<(Counters, Vec<String>), String> {
        self.signal(libc::SIGTERM);
        let summary = loop {
            let line = self.next_line("connections served ")?;
            if !line.contains("connections open") {
                break line;
            }
        };
        let deadline = Instant::now() + WAIT;
        while self.alive().is_ok() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "the daemon did not exit within {WAIT:?} of SIGTERM"
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
        Ok((
            Counters::parse(&summary)?,
            std::mem::take(&mut self.complaints),
        ))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of the daemon's log this bench reads: its listeners, its counters, and warnings
/// and errors. The thread drains the pipe to the end, so the daemon never blocks on it.
fn log_lines(from: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let wanted = |l: &str| {
            l.contains("listening on ")
                || l.contains("connections served ")
                || l.starts_with("WARN")
                || l.starts_with("ERROR")
        };
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if wanted(&line) {
                let _ = tx.send(line);
            }
        }
    });
    rx
}

/// The daemon's counters, as its summary and SIGUSR1 lines give them.
#[derive(Clone, Copy, Default)]
struct Counters {
    served: u64,
    refused: u64,
    timed_out: u64,
    answered: u64,
    dropped: u64,
}

impl Counters {
    /// From "connections served N, refused N, timed out N; datagrams answered N, dropped N".
    fn parse(line: &str) -> Result<Counters, String> {
        Ok(Counters {
            served: counter(line, "connections served ")?,
            refused: counter(line, "refused ")?,
            timed_out: counter(line, "timed out ")?,
            answered: counter(line, "datagrams answered ")?,
            dropped: counter(line, "dropped ")?,
        })
    }
}

/// The number after `key` in `line`.
fn counter(line: &str, key: &str) -> Result<u64, String> {
    let after = line
        .split(key)
        .nth(1)
        .ok_or(format!("no {key:?} in {line:?}"))?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    number(&digits)
}

struct Sample {
    counters: Counters,
    open: u64,
    rss_kib: u64,
    fds: usize,
}

fn rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or(format!("no VmRSS in /proc/{pid}/status"))
}

fn fds(pid: u32) -> Result<usize, String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .map_err(|e| format!("/proc/{pid}/fd: {e}"))
}

/// What the clients of one or more rounds completed.
#[derive(Default)]
struct Done {
    count: u64,
    echo: u64,
    datagrams: u64,
    lost: u64,
    errors: Vec<String>,
}

/// One `oneloop load` run in the background.
struct Load {
    what: String,
    child: Child,
}

impl Load {
    fn start(scenario: &str, addr: SocketAddr, secs: f64, extra: &[&str]) -> Result<Load, String> {
        let child = Command::new(BIN)
            .args(["load", scenario, &addr.to_string(), "--json"])
            .args(["--duration", &secs.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start oneloop load: {e}"))?;
        Ok(Load {
            what: format!("load {scenario}"),
            child,
        })
    }

    /// Its report, added to `done`.
    fn finish(self, done: &mut Done) {
        let what = self.what;
        let out = match self.child.wait_with_output() {
            Ok(out) => out,
            Err(e) => return done.errors.push(format!("{what}: {e}")),
        };
        let report: serde_json::Value = match serde_json::from_slice(&out.stdout) {
            Ok(r) => r,
            Err(_) => {
                let err = String::from_utf8_lossy(&out.stderr);
                return done.errors.push(format!("{what}: {} {err}", out.status));
            }
        };
        let field = |name: &str| report[name].as_u64().unwrap_or(0);
        let errors: u64 = report["errors"]
            .as_object()
            .map(|e| e.values().filter_map(|v| v.as_u64()).sum())
            .unwrap_or(0);
        if !out.status.success() || errors > 0 {
            done.errors
                .push(format!("{what}: {} {}", out.status, report["errors"]));
        }
        if what == "load count" {
            done.count += field("completed");
        } else {
            done.datagrams += field("completed");
            done.lost += field("lost");
        }
    }
}

/// Echo exchanges one after another until `until`: connect, a line, its echo, half-close,
/// EOF. Returns how many completed and the errors.
fn echo_churn(addr: SocketAddr, until: Instant) -> (u64, Vec<String>) {
    let mut completed = 0;
    let mut errors = Vec::new();
    while Instant::now() < until && errors.len() < 10 {
        match echo_exchange(addr) {
            Ok(()) => completed += 1,
            Err(e) => errors.push(format!("echo exchange: {e}")),
        }
    }
    (completed, errors)
}

fn echo_exchange(addr: SocketAddr) -> Result<(), String> {
    let mut s = open(addr)?;
    echo_line(&mut s)?;
    finish(s, b"")
}

fn open(addr: SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, WAIT).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
    Ok(s)
}

/// Sends LINE and reads its echo.
fn echo_line(s: &mut TcpStream) -> Result<(), String> {
    s.write_all(LINE).map_err(|e| format!("send: {e}"))?;
    let mut back = [0u8; LINE.len()];
    s.read_exact(&mut back).map_err(|e| format!("echo: {e}"))?;
    if back != LINE {
        return Err(format!("echoed {:?}", String::from_utf8_lossy(&back)));
    }
    Ok(())
}

/// Half-closes `s` and checks that what comes back until EOF is `expect`.
fn finish(mut s: TcpStream, expect: &[u8]) -> Result<(), String> {
    s.shutdown(Shutdown::Write)
        .map_err(|e| format!("half-close: {e}"))?;
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .map_err(|e| format!("to EOF: {e}"))?;
    if rest != expect {
        return Err(format!("got {:?}", String::from_utf8_lossy(&rest)));
    }
    Ok(())
}

/// Idle connections held through the run: `count` ones welcomed, `echo` ones that have had
/// one line echoed. At the end each finishes its exchange.
struct Holders {
    count: Vec<TcpStream>,
    echo: Vec<TcpStream>,
}

impl Holders {
    fn open(d: &Daemon, n: usize) -> Result<Holders, String> {
        let mut h = Holders {
            count: Vec::new(),
            echo: Vec::new(),
        };
        for _ in 0..n / 2 {
            let mut s = open(d.count)?;
            let mut welcome = Vec::new();
            let mut buf = [0u8; 256];
            // The welcome ends with the prompt's ": ".
            while !welcome.ends_with(b": ") {
                let n = s.read(&mut buf).map_err(|e| format!("welcome: {e}"))?;
                if n == 0 {
                    return Err("a holder was closed before its welcome".into());
                }
                welcome.extend_from_slice(&buf[..n]);
            }
            h.count.push(s);
        }
        for _ in n / 2..n {
            let mut s = open(d.echo)?;
            echo_line(&mut s)?;
            h.echo.push(s);
        }
        Ok(h)
    }

    /// Finishes every held exchange; returns the errors.
    fn close(self) -> Vec<String> {
        let count = self.count.into_iter().map(|mut s| {
            s.write_all(LINE).map_err(|e| format!("send: {e}"))?;
            finish(s, COUNT_REPLY)
        });
        let echo = self.echo.into_iter().map(|mut s| {
            echo_line(&mut s)?;
            finish(s, b"")
        });
        count
            .chain(echo)
            .filter_map(|r| r.err().map(|e| format!("holder: {e}")))
            .collect()
    }
}

/// One round of load, `secs` long, sampled every `o.sample_secs` (each row printed).
fn round(
    d: &mut Daemon,
    o: &Options,
    secs: f64,
    start: Instant,
    done: &mut Done,
) -> Result<(), String> {
    let mut loads = vec![
        Load::start(
            "count",
            d.count,
            secs,
            &["--connections", "32", "--sources", SOURCES],
        )?,
        Load::start("udp-echo", d.udp_echo, secs, &["--connections", "8"])?,
        Load::start("udp-time", d.udp_time, secs, &["--connections", "8"])?,
    ];
    let echo = d.echo;
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let churn = thread::spawn(move || echo_churn(echo, until));
    // Every run ends within its duration and its requests' deadlines (5 s).
    let deadline = until + WAIT;
    let mut next = Instant::now() + Duration::from_secs_f64(o.sample_secs);
    while !loads.is_empty() {
        if Instant::now() >= deadline {
            return Err(format!("load runs still going {WAIT:?} after their end"));
        }
        if Instant::now() >= next {
            print_row(start, &d.sample()?);
            next += Duration::from_secs_f64(o.sample_secs);
        }
        let mut i = 0;
        while i < loads.len() {
            match loads[i].child.try_wait() {
                Ok(None) => i += 1,
                _ => loads.swap_remove(i).finish(done),
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    let (echoed, errors) = churn.join().map_err(|_| "the echo thread panicked")?;
    done.echo += echoed;
    done.errors.extend(errors);
    d.alive()
}

fn print_row(start: Instant, s: &Sample) {
    println!(
        "{:>8.1} {:>12} {:>12} {:>6} {:>8} {:>5}",
        start.elapsed().as_secs_f64(),
        s.counters.served,
        s.counters.answered,
        s.open,
        s.rss_kib,
        s.fds
    );
}

/// The descriptors once they are back to `want` (closes may trail the clients' EOF by a
/// moment), or what they are after WAIT.
fn settled_fds(d: &mut Daemon, want: usize) -> Result<usize, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = fds(d.pid)?;
        if now == want || Instant::now() >= deadline {
            return Ok(now);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn soak(o: &Options) -> Result<Vec<String>, String> {
    let start = Instant::now();
    let mut d = Daemon::start()?;
    let at_start = d.sample()?;
    let holders = Holders::open(&d, o.holders)?;
    println!(
        "{:>8} {:>12} {:>12} {:>6} {:>8} {:>5}",
        "elapsed", "served", "datagrams", "open", "RSS KiB", "fds"
    );
    print_row(start, &at_start);
    let mut warm = Done::default();
    round(&mut d, o, o.round_secs.min(5.0), start, &mut warm)?;
    let warm_fds = settled_fds(&mut d, o.holders + at_start.fds)?;
    let warm_up = d.sample()?;
    print_row(start, &warm_up);
    println!("-- warm-up done: the rows below must come back to this RSS and these fds");

    let churn_start = Instant::now();
    let mut done = Done::default();
    loop {
        let elapsed = churn_start.elapsed().as_secs_f64();
        let enough = match (o.connections, o.duration) {
            (Some(n), _) => done.count >= n,
            (None, Some(secs)) => elapsed >= secs,
            (None, None) => true,
        };
        if enough {
            break;
        }
        let secs = match o.duration {
            Some(total) => o.round_secs.min(total - elapsed),
            None => o.round_secs,
        };
        round(&mut d, o, secs, start, &mut done)?;
    }
    let churn_secs = churn_start.elapsed().as_secs_f64();
    let end_fds = settled_fds(&mut d, warm_fds)?;
    let end = d.sample()?;
    print_row(start, &end);

    let mut failures = warm.errors;
    failures.append(&mut done.errors);
    failures.extend(holders.close());
    let held = o.holders as u64;
    let (summary, complaints) = d.stop()?;
    let clients = warm.count + warm.echo + done.count + done.echo + held;
    let replies = warm.datagrams + done.datagrams;
    let lost = warm.lost + done.lost;
    let grown = end.rss_kib.saturating_sub(warm_up.rss_kib);

    println!(
        "churned {} count and {} echo connections and {} datagrams ({} lost) in {churn_secs:.0} s \
         ({:.0} connections/s, {:.0} datagrams/s), {held} connections held throughout",
        done.count,
        done.echo,
        done.datagrams,
        done.lost,
        (done.count + done.echo) as f64 / churn_secs,
        done.datagrams as f64 / churn_secs,
    );
    println!(
        "RSS KiB: start {}, after warm-up {}, end {} (+{grown}, slack {}); fds: start {}, \
         after warm-up {warm_fds}, end {end_fds}",
        at_start.rss_kib, warm_up.rss_kib, end.rss_kib, o.rss_slack_kib, at_start.fds,
    );
    println!(
        "daemon at SIGTERM: connections served {}, refused {}, timed out {}; datagrams \
         answered {}, dropped {} (clients completed {clients} connections, {replies} replies)",
        summary.served, summary.refused, summary.timed_out, summary.answered, summary.dropped
    );
    for c in &complaints {
        println!("daemon logged: {c}");
    }
    if grown > o.rss_slack_kib {
        failures.push(format!(
            "RSS grew {grown} KiB over the run, more than {} KiB",
            o.rss_slack_kib
        ));
    }
    if end_fds != warm_fds {
        failures.push(format!(
            "{end_fds} descriptors at the end, {warm_fds} after warm-up"
        ));
    }
    if summary.served != clients {
        failures.push(format!(
            "the daemon served {} connections, the clients completed {clients}",
            summary.served
        ));
    }
    if summary.refused + summary.timed_out > 0 {
        failures.push("the daemon refused or timed out connections".into());
    }
    if summary.answered < replies || summary.answered > replies + lost {
        failures.push(format!(
            "the daemon answered {} datagrams, the clients got {replies} and lost {lost}",
            summary.answered
        ));
    }
    let verdict = if failures.is_empty() { "PASS" } else { "FAIL" };
    println!(
        "soak {verdict}: {} connections, {} datagrams, {churn_secs:.0} s; RSS KiB {} -> {}; \
         fds {warm_fds} -> {end_fds}",
        done.count + done.echo,
        done.datagrams,
        warm_up.rss_kib,
        end.rss_kib
    );
    Ok(failures)
}
