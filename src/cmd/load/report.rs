//! What a run found: the tally kept while it runs (completions, failures by kind, UDP losses,
//! latencies in an HDR histogram), and the final report as text or as one JSON object.
//!
//! The JSON is written by hand (the library has no serde) and its keys are a contract: a
//! benchmark script parses them.
//! ```text
//! {"scenario":"count","target":"127.0.0.1:51423","connections":64,"rate":null,
//!  "duration_s":5.002,"completed":12345,
//!  "errors":{"refused":0,"reset":0,"timed_out":0,"bad_reply":0,"other":0},
//!  "lost":0,"rate_per_s":2468.1,
//!  "latency_us":{"p50":101,"p90":180,"p99":350,"p999":900,"p9999":1500,"max":2100}}
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::time::Micros;

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// The connection was refused (TCP RST to the SYN; ICMP port unreachable for UDP).
    Refused,
    /// The connection was reset or broken after it was established.
    Reset,
    /// The request was not answered within `--timeout`.
    TimedOut,
    /// The server answered, but not as the protocol says.
    BadReply,
    /// Anything else (out of ports or descriptors, unreachable network, ...).
    Other,
}

impl Failure {
    pub(super) const ALL: [Failure; 5] = [
        Failure::Refused,
        Failure::Reset,
        Failure::TimedOut,
        Failure::BadReply,
        Failure::Other,
    ];

    /// The kind of failure an I/O error stands for.
    pub(super) fn of(e: &io::Error) -> Failure {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Failure::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Failure::Reset,
            io::ErrorKind::TimedOut => Failure::TimedOut,
            _ => Failure::Other,
        }
    }

    /// The name in the JSON report.
    fn key(self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Reset => "reset",
            Failure::TimedOut => "timed_out",
            Failure::BadReply => "bad_reply",
            Failure::Other => "other",
        }
    }

    /// The name in the text report.
    fn label(self) -> &'static str {
        match self {
            Failure::TimedOut => "timed out",
            Failure::BadReply => "bad reply",
            other => other.key(),
        }
    }
}

/// The highest latency the histogram holds exactly (an hour); longer ones count as an hour.
const LATENCY_CEILING: Micros = 3_600 * 1_000_000;

/// The counters of a run, updated as requests finish.
#[derive(Debug)]
pub(super) struct Tally {
    completed: u64,
    errors: [u64; Failure::ALL.len()],
    lost: u64,
    /// Whether the target ever answered: a TCP connection was established, or a datagram came
    /// back.
    reached: bool,
    /// The text of the first `Other` error, to name it in the text report.
    first_other: Option<String>,
    latency: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            completed: 0,
            errors: [0; Failure::ALL.len()],
            lost: 0,
            reached: false,
            first_other: None,
            // Three significant digits: values below 2048 µs are exact, the rest within 0.1%.
            latency: Histogram::new_with_bounds(1, LATENCY_CEILING, 3)
                .expect("constant histogram bounds are valid"),
        }
    }
}

impl Tally {
    /// A request completed correctly after `latency` microseconds.
    pub(super) fn success(&mut self, latency: Micros) {
        self.completed += 1;
        self.latency.saturating_record(latency.max(1));
    }

    pub(super) fn failure(&mut self, failure: Failure) {
        self.errors[failure as usize] += 1;
    }

    /// The kind of failure `e` stands for; the text of the first unexpected one (`Other`) is
    /// kept for the report.
    pub(super) fn classify(&mut self, e: &io::Error) -> Failure {
        let failure = Failure::of(e);
        if failure == Failure::Other && self.first_other.is_none() {
            self.first_other = Some(crate::os::sockets::reason(e));
        }
        failure
    }

    /// `n` requests failed the same way.
    pub(super) fn failures(&mut self, failure: Failure, n: u64) {
        self.errors[failure as usize] += n;
    }

    /// A UDP request went unanswered within the timeout.
    pub(super) fn lost(&mut self) {
        self.lost += 1;
    }

    /// The target answered something.
    pub(super) fn reached(&mut self) {
        self.reached = true;
    }

    pub(super) fn completed(&self) -> u64 {
        self.completed
    }

    pub(super) fn errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// The latency percentiles so far.
    fn latency(&self) -> Percentiles {
        let h = &self.latency;
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
        }
    }
}

/// Latency percentiles in microseconds (all 0 when nothing completed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Percentiles {
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    /// In the JSON report only (the text report stops at p99.9).
    p9999: u64,
    max: u64,
}

/// The final report of a run.
#[derive(Debug)]
pub(super) struct Report<'a> {
    /// `count`, `hold`, `udp-echo` or `udp-time`.
    pub scenario: &'static str,
    pub target: SocketAddr,
    /// Connections (UDP: sockets) in flight, or the most in flight with a rate; `hold`: N.
    pub connections: usize,
    /// The open-loop target rate, in starts per second.
    pub rate: Option<f64>,
    pub elapsed: Duration,
    /// Whether losses are part of the scenario (UDP).
    pub udp: bool,
    pub tally: &'a Tally,
}

impl Report<'_> {
    /// Completions per second of the whole run.
    fn rate_per_s(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.tally.completed as f64 / secs
        } else {
            0.0
        }
    }

    /// The process exit code: 3 when the target never answered and nothing completed, 1 when
    /// any request failed, else 0. (UDP losses are not failures: they are reported apart.)
    pub(super) fn exit_code(&self) -> u8 {
        if self.tally.completed == 0 && !self.tally.reached {
            3
        } else if self.tally.errors() > 0 {
            1
        } else {
            0
        }
    }

    /// The report as one line of JSON. Every string in it is a scenario name or a socket
    /// address, neither of which holds a character JSON would need escaped.
    pub(super) fn json(&self) -> String {
        let t = self.tally;
        let rate = match self.rate {
            Some(r) => format!("{r:?}"),
            None => "null".into(),
        };
        let errors = Failure::ALL
            .iter()
            .map(|f| format!("\"{}\":{}", f.key(), t.errors[*f as usize]))
            .collect::<Vec<_>>()
            .join(",");
        let l = t.latency();
        format!(
            "{{\"scenario\":\"{}\",\"target\":\"{}\",\"connections\":{},\"rate\":{rate},\
             \"duration_s\":{:.3},\"completed\":{},\"errors\":{{{errors}}},\"lost\":{},\
             \"rate_per_s\":{:.1},\"latency_us\":{{\"p50\":{},\"p90\":{},\"p99\":{},\
             \"p999\":{},\"p9999\":{},\"max\":{}}}}}",
            self.scenario,
            self.target,
            self.connections,
            self.elapsed.as_secs_f64(),
            t.completed,
            t.lost,
            self.rate_per_s(),
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.p9999,
            l.max
        )
    }
}

/// The text report.
impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.tally;
        let pacing = match self.rate {
            Some(r) => format!("open loop at {r}/s, at most {} in flight", self.connections),
            None if self.scenario == "hold" => format!("{} connections", self.connections),
            None => format!("closed loop, {} in flight", self.connections),
        };
        writeln!(
            f,
            "{} {}: {pacing}, {:.3} s",
            self.scenario,
            self.target,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "  completed  {} ({:.1}/s)",
            t.completed,
            self.rate_per_s()
        )?;
        let kinds = Failure::ALL
            .iter()
            .map(|k| format!("{} {}", k.label(), t.errors[*k as usize]))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(f, "  errors     {} ({kinds})", t.errors())?;
        if let Some(other) = &t.first_other {
            writeln!(f, "             first other error: {other}")?;
        }
        if self.udp {
            writeln!(f, "  lost       {}", t.lost)?;
        }
        let l = t.latency();
        writeln!(
            f,
            "  latency µs p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            l.p50, l.p90, l.p99, l.p999, l.max
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tally of 1000 completions at 1..=1000 µs, two resets and one bad reply.
    fn known() -> Tally {
        let mut t = Tally::default();
        for us in 1..=1000 {
            t.success(us);
        }
        t.failure(Failure::Reset);
        let reset = t.classify(&io::Error::from_raw_os_error(libc::ECONNRESET));
        t.failure(reset);
        t.failure(Failure::BadReply);
        t.reached();
        t
    }

    fn report(tally: &Tally) -> Report<'_> {
        Report {
            scenario: "count",
            target: "127.0.0.1:51423".parse().unwrap(),
            connections: 64,
            rate: None,
            elapsed: Duration::from_millis(2500),
            udp: false,
            tally,
        }
    }

    #[test]
    fn percentiles_of_known_samples() {
        let l = known().latency();
        assert_eq!(
            l,
            Percentiles {
                p50: 500,
                p90: 900,
                p99: 990,
                p999: 999,
                p9999: 1000,
                max: 1000
            }
        );
        assert_eq!(Tally::default().latency(), Percentiles::default());
    }

    #[test]
    fn json_has_the_schema_keys_and_values() {
        let t = known();
        assert_eq!(
            report(&t).json(),
            "{\"scenario\":\"count\",\"target\":\"127.0.0.1:51423\",\"connections\":64,\
             \"rate\":null,\"duration_s\":2.500,\"completed\":1000,\"errors\":{\"refused\":0,\
             \"reset\":2,\"timed_out\":0,\"bad_reply\":1,\"other\":0},\"lost\":0,\
             \"rate_per_s\":400.0,\"latency_us\":{\"p50\":500,\"p90\":900,\"p99\":990,\
             \"p999\":999,\"p9999\":1000,\"max\":1000}}"
        );
        let open = Report {
            rate: Some(1000.0),
            ..report(&t)
        };
        assert!(open.json().contains("\"rate\":1000.0,"));
    }

    #[test]
    fn text_report_names_every_error_kind_and_the_first_other_error() {
        let mut t = known();
        let other = t.classify(&io::Error::from_raw_os_error(libc::EADDRNOTAVAIL));
        t.failure(other);
        t.lost();
        let text = report(&t).to_string();
        assert!(text.starts_with("count 127.0.0.1:51423: closed loop, 64 in flight, 2.500 s\n"));
        assert!(text.contains("completed  1000 (400.0/s)"));
        assert!(
            text.contains("errors     4 (refused 0, reset 2, timed out 0, bad reply 1, other 1)")
        );
        assert!(text.contains("first other error: cannot assign requested address"));
        assert!(!text.contains("lost"), "TCP reports no losses");
        assert!(text.contains("p50 500  p90 900  p99 990  p99.9 999  max 1000"));
        let udp = Report {
            udp: true,
            ..report(&t)
        };
        assert!(udp.to_string().contains("lost       1\n"));
    }

    #[test]
    fn exit_code_says_whether_anything_failed_or_nothing_was_reached() {
        let t = known();
        assert_eq!(report(&t).exit_code(), 1);
        let mut clean = Tally::default();
        clean.success(10);
        clean.lost();
        assert_eq!(report(&clean).exit_code(), 0, "losses are not failures");
        let mut refused = Tally::default();
        refused.failures(Failure::Refused, 5);
        assert_eq!(report(&refused).exit_code(), 3);
        let mut silent = Tally::default();
        silent.reached();
        silent.failure(Failure::TimedOut);
        assert_eq!(report(&silent).exit_code(), 1, "connected, then timed out");
    }

    #[test]
    fn io_errors_map_to_their_kinds() {
        let kind = |errno| Failure::of(&io::Error::from_raw_os_error(errno));
        assert_eq!(kind(libc::ECONNREFUSED), Failure::Refused);
        assert_eq!(kind(libc::ECONNRESET), Failure::Reset);
        assert_eq!(kind(libc::EPIPE), Failure::Reset);
        assert_eq!(kind(libc::ETIMEDOUT), Failure::TimedOut);
        assert_eq!(kind(libc::EMFILE), Failure::Other);
    }
}
