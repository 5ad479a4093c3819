//! The command line of `oneloop load`: the scenario, its target and its options, checked.
//! Parsing only: nothing here resolves a name or opens a socket.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::Duration;

use super::pacing::MAX_RATE;
use crate::config::ranges::Range;
use crate::config::ranges::MAX_SECS;

/// The scenarios, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scenario {
    Count,
    Hold,
    UdpEcho,
    UdpTime,
}

impl Scenario {
    pub(super) const ALL: [Scenario; 4] = [
        Scenario::Count,
        Scenario::Hold,
        Scenario::UdpEcho,
        Scenario::UdpTime,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Scenario::Count => "count",
            Scenario::Hold => "hold",
            Scenario::UdpEcho => "udp-echo",
            Scenario::UdpTime => "udp-time",
        }
    }

    pub(super) fn is_udp(self) -> bool {
        matches!(self, Scenario::UdpEcho | Scenario::UdpTime)
    }

    /// The arguments after the name, and what the scenario does.
    fn synopsis(self) -> (&'static str, &'static str) {
        match self {
            Scenario::Count => (
                "ADDR",
                "count exchanges over TCP: connect, welcome, line, half-close, reply, EOF;\n      \
                 every reply is checked",
            ),
            Scenario::Hold => (
                "ADDR -n N",
                "open N count connections, wait for every welcome, print 'holding N\n      \
                 connections' on stderr, hold them, then send every line and check every reply",
            ),
            Scenario::UdpEcho => (
                "ADDR",
                "UDP echo requests, one outstanding per socket; each reply checked byte for byte",
            ),
            Scenario::UdpTime => (
                "ADDR",
                "UDP time requests, one outstanding per socket; each reply must be 4 bytes",
            ),
        }
    }
}

/// Everything a run needs from the command line.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Options {
    pub scenario: Scenario,
    /// `HOST:PORT`, not resolved yet.
    pub addr: String,
    /// Connections (UDP: sockets) in flight; with `rate`, the most in flight.
    pub connections: usize,
    /// Open-loop starts per second (`count`).
    pub rate: Option<f64>,
    pub duration: Duration,
    pub timeout: Duration,
    /// The line `count` and `hold` send (no LF).
    pub line: Vec<u8>,
    /// `hold`: connections to open.
    pub hold_count: usize,
    /// `hold`: how long to hold them.
    pub hold: Duration,
    /// `udp-echo`: payload bytes.
    pub size: usize,
    /// Source addresses `127.0.0.1 ..= 127.0.0.N` (`count`, `hold`).
    pub sources: Option<u8>,
    pub json: bool,
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub(super) enum Command {
    Help(Option<Scenario>),
    Run(Options),
}

const DEFAULT_CONNECTIONS: usize = 16;
const DEFAULT_DURATION: Duration = Duration::from_secs(5);
const DEFAULT_TCP_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_UDP_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_LINE: &str = "hello, world";
const DEFAULT_HOLD: Duration = Duration::from_secs(1);
const DEFAULT_SIZE: usize = 64;
/// The longest `--line`.
const MAX_LINE: usize = 1 << 20;

/// `--connections` and `-n`: each is a descriptor, and Linux's default ceiling per process
/// (`fs.nr_open`) is 1048576.
const CONNECTIONS: Range<usize> = Range {
    min: 1,
    max: 1_000_000,
    unit: "connections",
};
/// `--rate`.
const RATE: Range<f64> = Range {
    min: 0.001,
    max: MAX_RATE,
    unit: "per second",
};
/// `--duration` and `--timeout`: the loop's clock counts microseconds.
const SPAN: Range<Duration> = Range {
    min: Duration::from_micros(1),
    max: MAX_SECS,
    unit: "s",
};
/// `--hold` (0: complete them as soon as all are welcomed).
const HOLD: Range<Duration> = Range {
    min: Duration::ZERO,
    max: MAX_SECS,
    unit: "s",
};
/// `--size`: up to the largest UDP payload over IPv4.
const SIZE: Range<usize> = Range {
    min: 1,
    max: 65_507,
    unit: "bytes",
};
/// `--sources`: 127.0.0.1 to 127.0.0.254.
const SOURCES: Range<u8> = Range {
    min: 1,
    max: 254,
    unit: "addresses",
};

/// Parses `oneloop load ARGS` (without `load`). The error is a usage message.
pub(super) fn parse(args: Vec<OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;

    let mut parser = lexopt::Parser::from_args(args);
    let scenario = match parser.next().map_err(|e| e.to_string())? {
        Some(Short('h') | Long("help")) => return Ok(Command::Help(None)),
        Some(Value(name)) => Scenario::ALL
            .into_iter()
            .find(|s| name == s.name())
            .ok_or_else(|| format!("unknown scenario {name:?}"))?,
        Some(other) => return Err(other.unexpected().to_string()),
        None => return Err("which scenario? count, hold, udp-echo or udp-time".into()),
    };
    let tcp = !scenario.is_udp();
    let mut o = Options {
        scenario,
        addr: String::new(),
        connections: DEFAULT_CONNECTIONS,
        rate: None,
        duration: DEFAULT_DURATION,
        timeout: if tcp {
            DEFAULT_TCP_TIMEOUT
        } else {
            DEFAULT_UDP_TIMEOUT
        },
        line: DEFAULT_LINE.into(),
        hold_count: 0,
        hold: DEFAULT_HOLD,
        size: DEFAULT_SIZE,
        sources: None,
        json: false,
    };
    let mut addr = None;
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        let flag = match arg {
            Long(name) => format!("--{name}"),
            Short(c) => format!("-{c}"),
            Value(v) if addr.is_none() => {
                let v = v.into_string().map_err(|_| "ADDR is not valid UTF-8")?;
                addr = Some(v);
                continue;
            }
            Value(v) => {
                let v = v.to_string_lossy();
                return Err(format!("{}: unexpected argument {v:?}", scenario.name()));
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help(Some(scenario))),
            "--json" => o.json = true,
            "--timeout" => o.timeout = SPAN.parse(&flag, &text(&mut parser, &flag)?)?,
            "--connections" if scenario != Scenario::Hold => {
                o.connections = CONNECTIONS.parse(&flag, &text(&mut parser, &flag)?)?
            }
            "--duration" if scenario != Scenario::Hold => {
                o.duration = SPAN.parse(&flag, &text(&mut parser, &flag)?)?
            }
            "--rate" if scenario == Scenario::Count => {
                o.rate = Some(RATE.parse(&flag, &text(&mut parser, &flag)?)?)
            }
            "--line" if tcp => {
                let line = parser.value().map_err(|e| e.to_string())?.into_vec();
                if line.contains(&b'\n') || line.len() > MAX_LINE {
                    return Err(format!(
                        "--line must hold no newline and at most {MAX_LINE} bytes"
                    ));
                }
                o.line = line;
            }
            "-n" if scenario == Scenario::Hold => {
                o.hold_count = CONNECTIONS.parse(&flag, &text(&mut parser, &flag)?)?
            }
            "--hold" if scenario == Scenario::Hold => {
                o.hold = HOLD.parse(&flag, &text(&mut parser, &flag)?)?
            }
            "--size" if scenario == Scenario::UdpEcho => {
                o.size = SIZE.parse(&flag, &text(&mut parser, &flag)?)?
            }
            "--sources" if tcp => {
                o.sources = Some(SOURCES.parse(&flag, &text(&mut parser, &flag)?)?)
            }
            _ => return Err(format!("{}: unknown option '{flag}'", scenario.name())),
        }
    }
    o.addr = addr.ok_or_else(|| format!("{}: missing ADDR", scenario.name()))?;
    if scenario == Scenario::Hold && o.hold_count == 0 {
        return Err("hold: -n N is required".into());
    }
    Ok(Command::Run(o))
}

/// The value of `flag`, as UTF-8 text.
fn text(parser: &mut lexopt::Parser, flag: &str) -> Result<String, String> {
    parser
        .value()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|_| format!("{flag}: the value is not valid UTF-8"))
}

/// One option of the help text: the scenarios it is for, and its line.
struct Flag {
    for_scenario: fn(Scenario) -> bool,
    text: &'static str,
}

const FLAGS: [Flag; 11] = [
    Flag {
        for_scenario: |s| s != Scenario::Hold,
        text: "--connections C   connections (UDP: sockets) in flight, each replaced when\n                    \
               it finishes; with --rate, the most in flight; 1 to 1000000  [16]",
    },
    Flag {
        for_scenario: |s| s != Scenario::Hold,
        text: "--duration SECS   how long new requests start                                [5]",
    },
    Flag {
        for_scenario: |_| true,
        text: "--timeout SECS    deadline of each request (hold: of the welcome, then of\n                    \
               the reply); later is timed out (UDP: lost)      [TCP 5, UDP 1]",
    },
    Flag {
        for_scenario: |s| s == Scenario::Count,
        text: "--rate R          count: open loop, R connections started a second, each\n                    \
               one's latency counted from its scheduled start; R is\n                    \
               0.001 to 1000000 (one start a microsecond)       [closed loop]",
    },
    Flag {
        for_scenario: |s| !s.is_udp(),
        text: "--line TEXT       count, hold: the line sent (no newline)         [hello, world]",
    },
    Flag {
        for_scenario: |s| s == Scenario::Hold,
        text: "-n N              hold: connections to open and hold, 1 to 1000000   (required)",
    },
    Flag {
        for_scenario: |s| s == Scenario::Hold,
        text: "--hold SECS       hold: how long to hold them once all are welcomed          [1]",
    },
    Flag {
        for_scenario: |s| s == Scenario::UdpEcho,
        text: "--size BYTES      udp-echo: payload size, 1 to 65507                        [64]",
    },
    Flag {
        for_scenario: |s| !s.is_udp(),
        text: "--sources N       count, hold: connect from 127.0.0.1 .. 127.0.0.N in turn\n                    \
               (N 1 to 254), past one address's ephemeral ports (IPv4\n                    \
               loopback only)                                              [1]",
    },
    Flag {
        for_scenario: |_| true,
        text: "--json            print the report as one JSON object on stdout",
    },
    Flag {
        for_scenario: |_| true,
        text: "-h, --help        this text",
    },
];

/// The `--help` text: for one scenario, or for all of them.
pub(super) fn help(scenario: Option<Scenario>) -> String {
    let mut text = String::from(
        "Usage: oneloop load SCENARIO ADDR [OPTIONS]\n\n\
         Load for a count/echo/time server from one thread and one poll loop.\n\nScenarios:\n",
    );
    let wanted = |s: Scenario| scenario.is_none_or(|x| x == s);
    for s in Scenario::ALL.into_iter().filter(|s| wanted(*s)) {
        let (args, what) = s.synopsis();
        text += &format!("  oneloop load {} {args}\n      {what}\n", s.name());
    }
    text += "\nOptions";
    if scenario.is_none() {
        text += " (oneloop load SCENARIO --help lists one scenario's)";
    }
    text += ":\n";
    for flag in FLAGS.iter().filter(|f| {
        Scenario::ALL
            .iter()
            .any(|s| wanted(*s) && (f.for_scenario)(*s))
    }) {
        text += &format!("  {}\n", flag.text);
    }
    text += "\nSECS may have a fraction: --duration and --timeout take 0.000001 to 31536000 (a\n\
             year), --hold 0 to 31536000.\n\
             ADDR is HOST:PORT. Latencies are in microseconds. A progress line shows on stderr\n\
             once a second when stderr is a terminal.\n\
             Exit status: 0 no request failed, 1 some failed (UDP losses do not count), 2 usage\n\
             error, 3 nothing could be done (the target never answered).\n";
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, String> {
        match parse(args.iter().map(OsString::from).collect())? {
            Command::Run(o) => Ok(o),
            Command::Help(s) => Err(format!("help {s:?}")),
        }
    }

    #[test]
    fn defaults_per_scenario() {
        let o = run(&["count", "127.0.0.1:51423"]).unwrap();
        assert_eq!(o.connections, 16);
        assert_eq!(o.duration, Duration::from_secs(5));
        assert_eq!(o.timeout, Duration::from_secs(5));
        assert_eq!(o.line, b"hello, world");
        assert_eq!((o.rate, o.sources, o.json), (None, None, false));
        let o = run(&["udp-echo", "h:7"]).unwrap();
        assert_eq!((o.timeout, o.size), (Duration::from_secs(1), 64));
        let o = run(&["hold", "h:1", "-n", "10"]).unwrap();
        assert_eq!((o.hold_count, o.hold), (10, Duration::from_secs(1)));
    }

    #[test]
    fn every_option_is_read() {
        let o = run(&[
            "count",
            "--connections",
            "8",
            "h:1",
            "--rate",
            "250.5",
            "--duration",
            "0.5",
            "--timeout",
            "2",
            "--line",
            "héllo",
            "--sources",
            "3",
            "--json",
        ])
        .unwrap();
        assert_eq!(o.addr, "h:1");
        assert_eq!(o.connections, 8);
        assert_eq!(o.rate, Some(250.5));
        assert_eq!(o.duration, Duration::from_millis(500));
        assert_eq!(o.timeout, Duration::from_secs(2));
        assert_eq!(o.line, "héllo".as_bytes());
        assert_eq!(o.sources, Some(3));
        assert!(o.json);
        let o = run(&["hold", "h:1", "-n", "3", "--hold", "0"]).unwrap();
        assert_eq!(o.hold, Duration::ZERO);
    }

    #[test]
    fn options_of_other_scenarios_are_refused() {
        for args in [
            &["udp-echo", "h:1", "--rate", "10"][..],
            &["udp-time", "h:1", "--size", "10"],
            &["udp-echo", "h:1", "--sources", "2"],
            &["count", "h:1", "-n", "2"],
            &["hold", "h:1", "-n", "2", "--connections", "3"],
            &["count", "h:1", "h:2"],
        ] {
            assert!(run(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["count"][..],
            &["nope", "h:1"],
            &["count", "h:1", "--connections", "0"],
            &["count", "h:1", "--duration", "0"],
            &["count", "h:1", "--timeout", "-1"],
            &["count", "h:1", "--rate", "0"],
            &["count", "h:1", "--rate", "inf"],
            &["count", "h:1", "--sources", "255"],
            &["count", "h:1", "--line", "two\nlines"],
            &["udp-echo", "h:1", "--size", "65508"],
            &["hold", "h:1"],
        ] {
            assert!(run(args).is_err(), "{args:?}");
        }
    }

    /// A scenario that takes the flag, the flag, its range, values just inside it, and values
    /// just outside it.
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        [&'static str; 2],
        [&'static str; 2],
    );
    const NUMERIC: [Case; 8] = [
        (
            "count",
            "--connections",
            "1 to 1000000 connections",
            ["1", "1000000"],
            ["0", "1000001"],
        ),
        (
            "hold",
            "-n",
            "1 to 1000000 connections",
            ["1", "1000000"],
            ["0", "1000001"],
        ),
        (
            "udp-echo",
            "--size",
            "1 to 65507 bytes",
            ["1", "65507"],
            ["0", "65508"],
        ),
        (
            "count",
            "--sources",
            "1 to 254 addresses",
            ["1", "254"],
            ["0", "255"],
        ),
        (
            "count",
            "--rate",
            "0.001 to 1000000 per second",
            ["0.001", "1000000"],
            ["0.0009", "1000000.1"],
        ),
        (
            "count",
            "--duration",
            "0.000001 to 31536000 s",
            ["0.000001", "31536000"],
            ["0.0000009", "31536000.001"],
        ),
        (
            "udp-time",
            "--timeout",
            "0.000001 to 31536000 s",
            ["0.000001", "31536000"],
            ["0", "31536000.001"],
        ),
        (
            "hold",
            "--hold",
            "0 to 31536000 s",
            ["0", "31536000"],
            ["-0.001", "31536000.001"],
        ),
    ];

    /// `SCENARIO h:1 FLAG VALUE` (with `-n 1` for hold, unless the flag is `-n`).
    fn with(scenario: &str, flag: &str, value: &str) -> Result<Options, String> {
        let mut args = vec![scenario, "h:1", flag, value];
        if scenario == "hold" && flag != "-n" {
            args.extend(["-n", "1"]);
        }
        run(&args)
    }

    #[test]
    fn numbers_at_both_ends_of_their_range_are_taken() {
        for (scenario, flag, _, inside, _) in NUMERIC {
            for value in inside {
                with(scenario, flag, value).unwrap_or_else(|e| panic!("{flag} {value}: {e}"));
            }
        }
        assert_eq!(with("count", "--rate", "1000000").unwrap().rate, Some(1e6));
        assert_eq!(
            with("count", "--sources", "254").unwrap().sources,
            Some(254)
        );
        let o = with("count", "--duration", "0.000001").unwrap();
        assert_eq!(o.duration, Duration::from_micros(1));
        assert_eq!(with("hold", "-n", "1000000").unwrap().hold_count, 1_000_000);
    }

    /// Checks that `SCENARIO h:1 FLAG VALUE` is refused with `FLAG: 'VALUE' WHY` for each of
    /// `values`.
    fn assert_refused(scenario: &str, flag: &str, values: &[&str], why: &str) {
        for value in values {
            assert_eq!(
                with(scenario, flag, value),
                Err(format!("{flag}: '{value}' {why}"))
            );
        }
    }

    #[test]
    fn numbers_outside_their_range_are_usage_errors_naming_it() {
        for (scenario, flag, range, _, outside) in NUMERIC {
            let mut values = vec!["-1", "18446744073709551616"];
            values.extend(outside);
            if range.ends_with(" s") || range.ends_with("per second") {
                values.extend(["1e300", "inf", "-inf"]);
            }
            assert_refused(
                scenario,
                flag,
                &values,
                &format!("is out of range ({range})"),
            );
        }
    }

    #[test]
    fn fractions_words_and_nan_are_not_numbers() {
        for (scenario, flag, range, _, _) in NUMERIC {
            let (kind, values) = if range.ends_with(" s") {
                ("a number of seconds", &["NaN", "soon", "", "1s"][..])
            } else if range.ends_with("per second") {
                ("a number", &["NaN", "fast", ""][..])
            } else {
                ("a whole number", &["1.5", "2.0", "1e3", "ten", ""][..])
            };
            assert_refused(scenario, flag, values, &format!("is not {kind} ({range})"));
        }
    }

    #[test]
    fn help_lists_the_options_of_the_scenario_asked_about() {
        let args = |a: &[&str]| parse(a.iter().map(OsString::from).collect()).unwrap();
        assert_eq!(args(&["--help"]), Command::Help(None));
        assert_eq!(
            args(&["hold", "--help"]),
            Command::Help(Some(Scenario::Hold))
        );
        let all = help(None);
        assert!(all.contains("--rate R") && all.contains("--size BYTES"));
        for range in [
            CONNECTIONS.ends(),
            RATE.ends(),
            SPAN.ends(),
            HOLD.ends(),
            SIZE.ends(),
            SOURCES.ends(),
        ] {
            assert!(all.contains(&range), "the help does not say {range}");
        }
        let hold = help(Some(Scenario::Hold));
        assert!(hold.contains("-n N") && hold.contains("--sources N"));
        assert!(!hold.contains("--rate") && !hold.contains("--size") && !hold.contains("udp-echo"));
    }
}
