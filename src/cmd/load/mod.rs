//! The load generator, `oneloop load SCENARIO ADDR [OPTIONS]`.
//!
//! Like the daemon it loads, it is one thread and one `mio` poll loop: every connection is a
//! small sans-IO client state machine, and the loop owns the sockets, the clock and the
//! deadlines. One core drives thousands of connections, so a benchmark measures the server,
//! not a generator's thread switches.
//!
//! | file | what it is for |
//! |---|---|
//! | `cli.rs` | the command line, checked (no I/O) |
//! | `count.rs` | one `count` exchange from the client's side (no I/O) |
//! | `pacing.rs` | when `count` starts connections: closed loop, or the open-loop schedule (no clock) |
//! | `tcp.rs` | the `count` and `hold` scenarios: sockets, source addresses, the `hold` phases |
//! | `udp.rs` | the `udp-echo` and `udp-time` scenarios |
//! | `engine.rs` | the poll loop every scenario runs in, and the progress line |
//! | `time.rs` | the run's microsecond clock and its deadline queue |
//! | `report.rs` | the tally, the text report and the JSON report |
//!
//! Exit codes: 0 no request failed, 1 some request failed, 2 usage error, 3 nothing could be
//! done (the target never answered, or the run could not be set up).

mod cli;
mod count;
mod engine;
mod pacing;
mod report;
mod tcp;
mod time;
mod udp;

use std::ffi::OsString;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use mio::Poll;

use cli::{Command, Options, Scenario};
use count::Exchange;
use pacing::{Pacing, Schedule};
use report::{Report, Tally};
use tcp::{Hold, Mode, Sources, TcpLoad};
use time::{micros, RunClock};
use udp::{Check, UdpLoad};

/// Why a run could not start, with its exit code.
enum Refusal {
    /// The command line is wrong (exit 2).
    Usage(String),
    /// The target cannot be resolved or the run cannot be set up (exit 3).
    Setup(String),
}

/// Runs `oneloop load ARGS`; returns the process exit code.
pub fn run_cli(args: Vec<OsString>) -> u8 {
    let options = match cli::parse(args) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help(scenario)) => {
            print!("{}", cli::help(scenario));
            return 0;
        }
        Err(why) => return refuse(Refusal::Usage(why)),
    };
    match run(&options) {
        Ok(code) => code,
        Err(refusal) => refuse(refusal),
    }
}

fn refuse(refusal: Refusal) -> u8 {
    match refusal {
        Refusal::Usage(why) => {
            eprintln!("oneloop load: {why}\nTry 'oneloop load --help'.");
            2
        }
        Refusal::Setup(why) => {
            eprintln!("oneloop load: {why}");
            3
        }
    }
}

/// Runs the scenario and prints its report; returns the exit code.
fn run(o: &Options) -> Result<u8, Refusal> {
    let target = resolve(&o.addr)?;
    if o.sources.is_some() && !is_ipv4_loopback(target) {
        return Err(Refusal::Usage(format!(
            "--sources is for IPv4 loopback targets only, not {target}"
        )));
    }
    if let Err(e) = crate::os::sockets::raise_fd_limit() {
        eprintln!(
            "oneloop load: cannot raise the open-file limit: {}",
            crate::os::sockets::reason(&e)
        );
    }
    let setup = |what: &str, e: io::Error| {
        Refusal::Setup(format!("cannot {what}: {}", crate::os::sockets::reason(&e)))
    };
    let mut poll = Poll::new().map_err(|e| setup("create the poll", e))?;
    let clock = RunClock::start();
    let start = clock.now();
    let timeout = micros(o.timeout);
    let end = start.saturating_add(micros(o.duration));
    let mut tally = Tally::default();
    let live = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let drove = match o.scenario {
        Scenario::Count | Scenario::Hold => {
            let mode = match (o.scenario, o.rate) {
                (Scenario::Hold, _) => Mode::Hold(Hold::new(o.hold_count, micros(o.hold))),
                (_, Some(rate)) => Mode::Count(Pacing::Open(Schedule::new(
                    rate,
                    start,
                    micros(o.duration),
                    timeout,
                    o.connections,
                ))),
                (_, None) => Mode::Count(Pacing::Closed {
                    connections: o.connections,
                    end,
                }),
            };
            let sources = o.sources.map(Sources::new);
            let mut work = TcpLoad::new(target, sources, Exchange::new(&o.line), timeout, mode);
            engine::drive(&mut poll, &mut work, &mut tally, clock, live)
        }
        Scenario::UdpEcho | Scenario::UdpTime => {
            let check = match o.scenario {
                Scenario::UdpEcho => Check::echo(o.size),
                _ => Check::Time,
            };
            let mut work =
                UdpLoad::new(poll.registry(), target, check, o.connections, timeout, end)
                    .map_err(|e| setup("open the UDP sockets", e))?;
            engine::drive(&mut poll, &mut work, &mut tally, clock, live)
        }
    };
    let elapsed = drove.map_err(|e| setup("poll", e))?;
    let report = Report {
        scenario: o.scenario.name(),
        target,
        connections: match o.scenario {
            Scenario::Hold => o.hold_count,
            _ => o.connections,
        },
        rate: o.rate,
        elapsed,
        udp: o.scenario.is_udp(),
        tally: &tally,
    };
    let text = if o.json {
        report.json() + "\n"
    } else {
        report.to_string()
    };
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| setup("write the report", e))?;
    Ok(report.exit_code())
}

/// The first address `HOST:PORT` resolves to.
fn resolve(addr: &str) -> Result<SocketAddr, Refusal> {
    let mut found = addr.to_socket_addrs().map_err(|e| match e.kind() {
        io::ErrorKind::InvalidInput => {
            Refusal::Usage(format!("ADDR must be HOST:PORT, not {addr:?}"))
        }
        _ => Refusal::Setup(format!(
            "cannot resolve {addr}: {}",
            crate::os::sockets::reason(&e)
        )),
    })?;
    found
        .next()
        .ok_or_else(|| Refusal::Setup(format!("{addr} resolves to no address")))
}

fn is_ipv4_loopback(addr: SocketAddr) -> bool {
    matches!(addr.ip(), IpAddr::V4(ip) if ip.is_loopback())
}
