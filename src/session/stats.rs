//! The `stats` service: one HTTP/1.0 or 1.1 `GET` (any path), answered with the daemon's
//! counters in the Prometheus text exposition format (version 0.0.4), then a close.
//!
//! The request head is read as it streams past, in a few bytes of state, up to the blank line
//! that ends it (CRLF CRLF, or bare LFs), at most [`MAX_REQUEST`] bytes. The request line must
//! be `GET TARGET HTTP/1.0` or `HTTP/1.1`; header lines are not interpreted, and nothing after
//! the head is read. Anything else, a head over the limit, or an end of input before the
//! blank line gets `400 Bad Request`. The reply is always HTTP/1.0, the version whose
//! semantics the service keeps (one request, then close); an HTTP/1.1 client takes it, as
//! minor versions of HTTP/1 are compatible by design.

use std::io::Write;
use std::time::{Duration, SystemTime};

use super::{push_decimal, Step};
use crate::config::{Instance, Transport};

/// The longest request head, blank line included.
pub const MAX_REQUEST: usize = 4096;

/// One service instance's counters (the summary line's, per instance). A TCP instance has the
/// connection counters, a UDP one the datagram counters; the others stay 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections served (refused, denied, limited and health checks not included).
    pub served: u64,
    /// Connections refused with the busy message.
    pub refused: u64,
    /// Connections closed by their deadline.
    pub timed_out: u64,
    /// Connections from a denied source.
    pub denied: u64,
    /// Connections over `--max-per-source` or `--max-rate`.
    pub limited: u64,
    /// Connections whose PROXY header named no client (a balancer's health check).
    pub health_checks: u64,
    /// Connections from a listed proxy closed before their PROXY header was read: a bad
    /// header, or none complete (within 5 s, or before the connection ended).
    pub proxy_header_failures: u64,
    /// Datagrams answered.
    pub answered: u64,
    /// Datagrams dropped (loop guard, empty echo, reply not sent).
    pub dropped: u64,
    /// Datagrams from a denied source.
    pub datagrams_denied: u64,
    /// Datagrams over `--udp-rate`.
    pub datagrams_limited: u64,
}

/// The summary line (at exit and on `SIGUSR1`): `connections served N, refused N, timed out N,
/// denied N, limited N; datagrams answered N, dropped N, denied N, limited N`.
impl std::fmt::Display for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connections served {}, refused {}, timed out {}, denied {}, limited {}; \
             datagrams answered {}, dropped {}, denied {}, limited {}",
            self.served,
            self.refused,
            self.timed_out,
            self.denied,
            self.limited,
            self.answered,
            self.dropped,
            self.datagrams_denied,
            self.datagrams_limited
        )
    }
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, other: Counters) {
        self.served += other.served;
        self.refused += other.refused;
        self.timed_out += other.timed_out;
        self.denied += other.denied;
        self.limited += other.limited;
        self.health_checks += other.health_checks;
        self.proxy_header_failures += other.proxy_header_failures;
        self.answered += other.answered;
        self.dropped += other.dropped;
        self.datagrams_denied += other.datagrams_denied;
        self.datagrams_limited += other.datagrams_limited;
    }
}

/// An instance and its counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceCounters {
    pub instance: Instance,
    pub counters: Counters,
}

/// Everything `stats` reports, as it stands when a request is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot<'a> {
    pub instances: &'a [InstanceCounters],
    /// TCP connections held now.
    pub open: u64,
    /// How often accepting paused for lack of file descriptors.
    pub accept_pauses: u64,
    /// When the daemon started.
    pub start_time: SystemTime,
}

/// One per-instance counter of the exposition.
struct Metric {
    name: &'static str,
    help: &'static str,
    /// The instances it is reported for.
    transport: Transport,
    value: fn(&Counters) -> u64,
}

const PER_INSTANCE: [Metric; 11] = [
    Metric {
        name: "oneloop_connections_served_total",
        help: "TCP connections served (refused, denied, limited and health checks not included).",
        transport: Transport::Tcp,
        value: |c| c.served,
    },
    Metric {
        name: "oneloop_connections_refused_total",
        help: "TCP connections refused because the server was busy.",
        transport: Transport::Tcp,
        value: |c| c.refused,
    },
    Metric {
        name: "oneloop_connections_timed_out_total",
        help: "TCP connections closed by their deadline.",
        transport: Transport::Tcp,
        value: |c| c.timed_out,
    },
    Metric {
        name: "oneloop_connections_denied_total",
        help: "TCP connections from a denied source.",
        transport: Transport::Tcp,
        value: |c| c.denied,
    },
    Metric {
        name: "oneloop_connections_limited_total",
        help: "TCP connections over the per-source limits.",
        transport: Transport::Tcp,
        value: |c| c.limited,
    },
    Metric {
        name: "oneloop_health_checks_total",
        help: "TCP connections whose PROXY header named no client (health checks).",
        transport: Transport::Tcp,
        value: |c| c.health_checks,
    },
    Metric {
        name: "oneloop_proxy_header_failures_total",
        help: "TCP connections from a listed proxy closed for a bad or missing PROXY header.",
        transport: Transport::Tcp,
        value: |c| c.proxy_header_failures,
    },
    Metric {
        name: "oneloop_datagrams_answered_total",
        help: "UDP datagrams answered.",
        transport: Transport::Udp,
        value: |c| c.answered,
    },
    Metric {
        name: "oneloop_datagrams_dropped_total",
        help: "UDP datagrams dropped (loop guard, empty echo, reply not sent).",
        transport: Transport::Udp,
        value: |c| c.dropped,
    },
    Metric {
        name: "oneloop_datagrams_denied_total",
        help: "UDP datagrams from a denied source.",
        transport: Transport::Udp,
        value: |c| c.datagrams_denied,
    },
    Metric {
        name: "oneloop_datagrams_limited_total",
        help: "UDP datagrams over the per-source rate.",
        transport: Transport::Udp,
        value: |c| c.datagrams_limited,
    },
];

impl Default for Snapshot<'_> {
    /// A daemon with no instance and no history.
    fn default() -> Self {
        Snapshot {
            instances: &[],
            open: 0,
            accept_pauses: 0,
            start_time: SystemTime::UNIX_EPOCH,
        }
    }
}

/// Writes the whole `200 OK` response for `snapshot`.
pub fn stats_response(snapshot: &Snapshot, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(2048);
    for metric in &PER_INSTANCE {
        family(&mut body, metric.name, metric.help, "counter");
        for i in snapshot.instances {
            if i.instance.transport == metric.transport {
                body.extend_from_slice(metric.name.as_bytes());
                labels(&mut body, &i.instance);
                sample_value(&mut body, (metric.value)(&i.counters));
            }
        }
    }
    let start = snapshot
        .start_time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for (name, help, kind, value) in [
        (
            "oneloop_connections_open",
            "TCP connections held now.",
            "gauge",
            snapshot.open,
        ),
        (
            "oneloop_accept_pauses_total",
            "Times accepting paused for lack of file descriptors.",
            "counter",
            snapshot.accept_pauses,
        ),
        (
            "oneloop_start_time_seconds",
            "Start time of the daemon since the Unix epoch, in seconds.",
            "gauge",
            start,
        ),
    ] {
        family(&mut body, name, help, kind);
        body.extend_from_slice(name.as_bytes());
        sample_value(&mut body, value);
    }
    response(out, "200 OK", "text/plain; version=0.0.4", &body);
}

/// The `# HELP` and `# TYPE` lines of a metric family.
fn family(out: &mut Vec<u8>, name: &str, help: &str, kind: &str) {
    for line in [["# HELP ", name, " ", help], ["# TYPE ", name, " ", kind]] {
        line.iter()
            .for_each(|part| out.extend_from_slice(part.as_bytes()));
        out.push(b'\n');
    }
}

/// `{service="count",transport="tcp",addr="0.0.0.0:51423"}`
fn labels(out: &mut Vec<u8>, instance: &Instance) {
    let values = [
        instance.service.to_string(),
        instance.transport.to_string(),
        instance.addr.to_string(),
    ];
    out.push(b'{');
    for (i, (name, value)) in ["service", "transport", "addr"]
        .iter()
        .zip(&values)
        .enumerate()
    {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_label(out, value);
        out.push(b'"');
    }
    out.push(b'}');
}

/// ` VALUE\n` after a sample's name and labels.
fn sample_value(out: &mut Vec<u8>, value: u64) {
    out.push(b' ');
    push_decimal(out, value);
    out.push(b'\n');
}

/// A label value as the text format writes it: backslash, double quote and newline escaped.
fn escape_label(out: &mut Vec<u8>, value: &str) {
    for &b in value.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

/// A whole HTTP/1.0 response that ends the connection.
fn response(out: &mut Vec<u8>, status: &str, content_type: &str, body: &[u8]) {
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(body);
}

/// Where the request head has got to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Matching `GET ` (how many of its bytes have come).
    Method(u8),
    /// The request target: whether a byte of it has come.
    Target { started: bool },
    /// Matching `HTTP/1.` (how many of its bytes have come), then the minor version, 0 or 1.
    Version(u8),
    /// After the version: the request line's end; whether its CR has come.
    LineEnd { cr: bool },
    /// At the start of a header line, or of the blank line that ends the head; whether a CR
    /// has come.
    LineStart { cr: bool },
    /// Inside a header line.
    Field,
    /// The head is complete, or was refused: the answer is written.
    Over,
}

/// What one byte did to the head.
enum Next {
    Phase(Phase),
    Complete,
    Bad,
}

const METHOD: &[u8] = b"GET ";
const VERSION: &[u8] = b"HTTP/1.";
const BAD_REQUEST: &str = "only GET TARGET HTTP/1.0 or HTTP/1.1 is served\n";

/// One `stats` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    phase: Phase,
    /// Bytes of the head so far (at most [`MAX_REQUEST`]).
    seen: u16,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            phase: Phase::Method(0),
            seen: 0,
        }
    }
}

impl Stats {
    /// Reads request bytes; once the head is complete, answers with `snapshot`.
    pub fn on_data(&mut self, data: &[u8], snapshot: &Snapshot, out: &mut Vec<u8>) -> Step {
        if self.phase == Phase::Over {
            return Step::Answered;
        }
        for &b in data {
            if usize::from(self.seen) == MAX_REQUEST {
                return self.refuse("request too long", "request head over 4096 bytes\n", out);
            }
            self.seen += 1;
            match step(self.phase, b) {
                Next::Phase(phase) => self.phase = phase,
                Next::Complete => {
                    self.phase = Phase::Over;
                    stats_response(snapshot, out);
                    return Step::Answered;
                }
                Next::Bad => return self.refuse("bad request", BAD_REQUEST, out),
            }
        }
        Step::NeedMore
    }

    /// End of input: a head that is not complete by now never will be.
    pub fn on_eof(&mut self, out: &mut Vec<u8>) -> Step {
        if self.phase == Phase::Over {
            Step::Answered
        } else {
            self.refuse("request incomplete", "request head incomplete\n", out)
        }
    }

    /// The request deadline (`--idle-timeout`, `limit`) passed before the head was complete:
    /// `408 Request Timeout`.
    pub fn on_deadline(&mut self, limit: Duration, out: &mut Vec<u8>) -> Step {
        let body = format!(
            "request head not complete within {} s\n",
            limit.as_secs_f64()
        );
        self.fail("408 Request Timeout", "request timed out", &body, out)
    }

    /// Writes the `400` response, `body` telling the client why.
    fn refuse(&mut self, why: &'static str, body: &str, out: &mut Vec<u8>) -> Step {
        self.fail("400 Bad Request", why, body, out)
    }

    /// Ends the request with the error response `status`, `body` telling the client why.
    fn fail(&mut self, status: &str, why: &'static str, body: &str, out: &mut Vec<u8>) -> Step {
        self.phase = Phase::Over;
        response(out, status, "text/plain", body.as_bytes());
        Step::Refused(why)
    }
}

/// The request head's grammar, one byte at a time.
fn step(phase: Phase, b: u8) -> Next {
    use Phase::*;
    let next = match phase {
        Method(i) if METHOD[usize::from(i)] == b => {
            if usize::from(i) + 1 == METHOD.len() {
                Target { started: false }
            } else {
                Method(i + 1)
            }
        }
        Target { .. } if b.is_ascii_graphic() => Target { started: true },
        Target { started: true } if b == b' ' => Version(0),
        Version(i) if usize::from(i) < VERSION.len() && VERSION[usize::from(i)] == b => {
            Version(i + 1)
        }
        Version(i) if usize::from(i) == VERSION.len() && matches!(b, b'0' | b'1') => {
            LineEnd { cr: false }
        }
        LineEnd { cr: false } if b == b'\r' => LineEnd { cr: true },
        LineEnd { .. } if b == b'\n' => LineStart { cr: false },
        LineStart { .. } if b == b'\n' => return Next::Complete,
        LineStart { cr: false } if b == b'\r' => LineStart { cr: true },
        LineStart { cr: false } => Field,
        Field if b == b'\n' => LineStart { cr: false },
        Field => Field,
        _ => return Next::Bad,
    };
    Next::Phase(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Service;
    use proptest::prelude::*;
    use std::time::Duration;

    fn instances() -> [InstanceCounters; 2] {
        [
            InstanceCounters {
                instance: Instance {
                    transport: Transport::Tcp,
                    service: Service::Count,
                    addr: "127.0.0.1:51423".parse().unwrap(),
                },
                counters: Counters {
                    served: 3,
                    refused: 1,
                    timed_out: 2,
                    denied: 4,
                    limited: 5,
                    health_checks: 6,
                    proxy_header_failures: 10,
                    ..Counters::default()
                },
            },
            InstanceCounters {
                instance: Instance {
                    transport: Transport::Udp,
                    service: Service::Echo,
                    addr: "[::1]:7".parse().unwrap(),
                },
                counters: Counters {
                    answered: 7,
                    dropped: 8,
                    datagrams_denied: 9,
                    datagrams_limited: u64::MAX,
                    ..Counters::default()
                },
            },
        ]
    }

    fn snapshot(instances: &[InstanceCounters]) -> Snapshot<'_> {
        Snapshot {
            instances,
            open: 2,
            accept_pauses: 1,
            start_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    const GOLDEN_BODY: &str = "\
# HELP oneloop_connections_served_total TCP connections served (refused, denied, limited and health checks not included).
# TYPE oneloop_connections_served_total counter
oneloop_connections_served_total{service=\"count\",transport=\"tcp\",addr=\"127.0.0.1:51423\"} 3
# HELP oneloop_connections_refused_total TCP connections refused because the server was busy.
# TYPE oneloop_connections_refused_total counter
oneloop_connections_refused_total{service=\"count\",transport=\"tcp\",addr=\"127.0.0.1:51423\"} 1
# HELP oneloop_connections_timed_out_total TCP connections closed by their deadline.
# TYPE oneloop_connections_timed_out_total counter
oneloop_connections_timed_out_total{service=\"count\",transport=\"tcp\",addr=\"127.0.0.1:51423\"} 2
# HELP oneloop_connections_denied_total TCP connections from a denied source.
# TYPE oneloop_connections_denied_total counter
oneloop_connections_denied_total{service=\"count\",transport=\"tcp\",addr=\"127.0.0.1:51423\"} 4
# HELP oneloop_connections_limited_total TCP connections over the per-source limits.
# TYPE oneloop_connections_limited_total counter
oneloop_connections_limited_total{service=\"count\",transport=\"tcp\",addr=\"127.0.0.1:51423\"} 5
# HELP oneloop_health_checks_total TCP connections whose PROXY header named no client (health checks).
# TYPE oneloop_health_checks_total counter
oneloop_health_checks_total{service=\"count\",transport=\"tcp\",addr=\"127.0.0.1:51423\"} 6
# HELP oneloop_proxy_header_failures_total TCP connections from a listed proxy closed for a bad or missing PROXY header.
# TYPE oneloop_proxy_header_failures_total counter
oneloop_proxy_header_failures_total{service=\"count\",transport=\"tcp\",addr=\"127.0.0.1:51423\"} 10
# HELP oneloop_datagrams_answered_total UDP datagrams answered.
# TYPE oneloop_datagrams_answered_total counter
oneloop_datagrams_answered_total{service=\"echo\",transport=\"udp\",addr=\"[::1]:7\"} 7
# HELP oneloop_datagrams_dropped_total UDP datagrams dropped (loop guard, empty echo, reply not sent).
# TYPE oneloop_datagrams_dropped_total counter
oneloop_datagrams_dropped_total{service=\"echo\",transport=\"udp\",addr=\"[::1]:7\"} 8
# HELP oneloop_datagrams_denied_total UDP datagrams from a denied source.
# TYPE oneloop_datagrams_denied_total counter
oneloop_datagrams_denied_total{service=\"echo\",transport=\"udp\",addr=\"[::1]:7\"} 9
# HELP oneloop_datagrams_limited_total UDP datagrams over the per-source rate.
# TYPE oneloop_datagrams_limited_total counter
oneloop_datagrams_limited_total{service=\"echo\",transport=\"udp\",addr=\"[::1]:7\"} 18446744073709551615
# HELP oneloop_connections_open TCP connections held now.
# TYPE oneloop_connections_open gauge
oneloop_connections_open 2
# HELP oneloop_accept_pauses_total Times accepting paused for lack of file descriptors.
# TYPE oneloop_accept_pauses_total counter
oneloop_accept_pauses_total 1
# HELP oneloop_start_time_seconds Start time of the daemon since the Unix epoch, in seconds.
# TYPE oneloop_start_time_seconds gauge
oneloop_start_time_seconds 1700000000
";

    fn ask(stats: &mut Stats, request: &[u8]) -> (Step, String) {
        let instances = instances();
        let mut out = Vec::new();
        let step = stats.on_data(request, &snapshot(&instances), &mut out);
        (step, String::from_utf8(out).unwrap())
    }

    fn bad_request(body: &str) -> String {
        format!(
            "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn the_whole_response_for_a_small_snapshot() {
        let (step, out) = ask(
            &mut Stats::default(),
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert_eq!(step, Step::Answered);
        let head = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            GOLDEN_BODY.len()
        );
        assert_eq!(out, head + GOLDEN_BODY);
    }

    #[test]
    fn a_daemon_with_no_instance_still_reports_its_gauges() {
        let mut out = Vec::new();
        stats_response(&snapshot(&[]), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("# TYPE oneloop_connections_served_total counter\n# HELP"));
        assert!(text.ends_with("\noneloop_start_time_seconds 1700000000\n"));
        assert!(!text.contains('{'));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = Vec::new();
        escape_label(&mut out, "a\\b\"c\nd[::1]:7");
        assert_eq!(out, b"a\\\\b\\\"c\\nd[::1]:7");
    }

    #[test]
    fn get_with_any_path_and_either_version() {
        for request in [
            &b"GET / HTTP/1.0\r\n\r\n"[..],
            b"GET /metrics HTTP/1.1\r\nHost: h:1\r\nAccept: text/plain;version=0.0.4\r\n\r\n",
            b"GET * HTTP/1.1\n\n",
            b"GET http://h/x?y=%20z HTTP/1.0\r\nUser-Agent: a b\r\n\n",
            b"GET / HTTP/1.1\r\nX: \r in a field\r\n\r\nand a body",
        ] {
            let (step, out) = ask(&mut Stats::default(), request);
            assert_eq!(
                step,
                Step::Answered,
                "{:?}",
                String::from_utf8_lossy(request)
            );
            assert!(out.starts_with("HTTP/1.0 200 OK\r\n"));
            assert!(out.ends_with(GOLDEN_BODY));
        }
    }

    #[test]
    fn anything_else_is_a_bad_request() {
        for request in [
            &b"POST / HTTP/1.1\r\n\r\n"[..],
            b"HEAD / HTTP/1.1\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 \r\n\r\n",
            b"GET /\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.2\r\n\r\n",
            b"GET / http/1.1\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\r\n\r\n",
            b"GET / HTTP/1.1\r\n\rX\n",
            b"\r\nGET / HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ] {
            let mut stats = Stats::default();
            let (step, out) = ask(&mut stats, request);
            assert_eq!(
                step,
                Step::Refused("bad request"),
                "{:?}",
                String::from_utf8_lossy(request)
            );
            assert_eq!(out, bad_request(BAD_REQUEST));
            // Refused once: nothing more is said.
            assert_eq!(
                ask(&mut stats, b"GET / HTTP/1.0\r\n\r\n"),
                (Step::Answered, String::new())
            );
            assert_eq!(stats.on_eof(&mut Vec::new()), Step::Answered);
        }
    }

    #[test]
    fn a_head_arriving_in_pieces() {
        let request = b"GET /metrics HTTP/1.1\r\nHost: localhost:9100\r\n\r\n";
        for cut in 1..request.len() {
            let mut stats = Stats::default();
            assert_eq!(
                ask(&mut stats, &request[..cut]),
                (Step::NeedMore, String::new())
            );
            let (step, out) = ask(&mut stats, &request[cut..]);
            assert_eq!(step, Step::Answered, "cut at {cut}");
            assert!(out.ends_with(GOLDEN_BODY));
        }
        let mut stats = Stats::default();
        for &b in &request[..request.len() - 1] {
            assert_eq!(ask(&mut stats, &[b]).0, Step::NeedMore);
        }
        assert_eq!(ask(&mut stats, b"\n").0, Step::Answered);
    }

    #[test]
    fn the_head_may_take_4096_bytes_and_no_more() {
        let head = |len: usize| {
            let mut h = b"GET / HTTP/1.1\r\nX: ".to_vec();
            h.resize(len - 4, b'x');
            h.extend_from_slice(b"\r\n\r\n");
            h
        };
        let (step, _) = ask(&mut Stats::default(), &head(MAX_REQUEST));
        assert_eq!(step, Step::Answered);

        let long = head(MAX_REQUEST + 1);
        let mut stats = Stats::default();
        assert_eq!(
            ask(&mut stats, &long[..MAX_REQUEST]),
            (Step::NeedMore, String::new())
        );
        let (step, out) = ask(&mut stats, &long[MAX_REQUEST..]);
        assert_eq!(step, Step::Refused("request too long"));
        assert_eq!(out, bad_request("request head over 4096 bytes\n"));
        // However it comes: one read far over the limit.
        let mut flood = b"GET / HTTP/1.0\r\n".to_vec();
        flood.resize(5000, b'x');
        let (step, _) = ask(&mut Stats::default(), &flood);
        assert_eq!(step, Step::Refused("request too long"));
    }

    #[test]
    fn a_head_not_complete_in_time_gets_408() {
        let mut s = Stats::default();
        assert_eq!(ask(&mut s, b"GET / HTTP/1.0\r\nHost: x").0, Step::NeedMore);
        let mut out = Vec::new();
        let step = s.on_deadline(Duration::from_millis(1500), &mut out);
        assert_eq!(step, Step::Refused("request timed out"));
        let body = "request head not complete within 1.5 s\n";
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "HTTP/1.0 408 Request Timeout\r\nContent-Type: text/plain\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        );
        // Nothing more is read or said.
        assert_eq!(ask(&mut s, b"\r\n\r\n"), (Step::Answered, String::new()));
    }

    #[test]
    fn end_of_input_before_the_blank_line() {
        for sent in [
            &b""[..],
            b"GET / HTTP/1.1\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r",
        ] {
            let mut stats = Stats::default();
            assert_eq!(ask(&mut stats, sent).0, Step::NeedMore);
            let mut out = Vec::new();
            assert_eq!(stats.on_eof(&mut out), Step::Refused("request incomplete"));
            assert_eq!(
                String::from_utf8(out).unwrap(),
                bad_request("request head incomplete\n")
            );
        }
        // After the answer, the end of input changes nothing.
        let mut stats = Stats::default();
        assert_eq!(ask(&mut stats, b"GET / HTTP/1.0\n\n").0, Step::Answered);
        let mut out = Vec::new();
        assert_eq!(stats.on_eof(&mut out), Step::Answered);
        assert!(out.is_empty());
    }

    proptest! {
        #[test]
        fn any_chunking_gets_the_same_answer(
            request in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..64),
                (
                    prop_oneof![
                        Just(b"GET / HTTP/1.1".to_vec()),
                        Just(b"GET /x HTTP/1.0\r\n".to_vec()),
                    ],
                    proptest::collection::vec(
                        prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a'), Just(b' ')],
                        0..32,
                    ),
                )
                    .prop_map(|(line, rest)| [line, rest].concat()),
            ],
            cut in any::<usize>(),
        ) {
            let whole = {
                let mut stats = Stats::default();
                let (step, mut out) = ask(&mut stats, &request);
                let mut tail = Vec::new();
                let step = if step == Step::NeedMore { stats.on_eof(&mut tail) } else { step };
                out.push_str(std::str::from_utf8(&tail).unwrap());
                (step, out)
            };
            let cut = cut % (request.len() + 1);
            let mut stats = Stats::default();
            let (first, mut out) = ask(&mut stats, &request[..cut]);
            let (step, more) = ask(&mut stats, &request[cut..]);
            out.push_str(&more);
            let mut tail = Vec::new();
            let step = match (first, step) {
                (Step::NeedMore, Step::NeedMore) => stats.on_eof(&mut tail),
                (Step::NeedMore, step) => step,
                (first, _) => first,
            };
            out.push_str(std::str::from_utf8(&tail).unwrap());
            prop_assert_eq!((step, out), whole);
        }
    }
}
