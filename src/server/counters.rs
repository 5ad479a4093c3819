//! The daemon's counters: what the summary line, the `SIGUSR1` line and `stats` report, kept
//! per service instance, and their Prometheus exposition (the body `stats` answers with).

use std::time::SystemTime;

use crate::config::Instance;
use crate::proto::stats::Metrics;
use crate::proto::{push_decimal, Transport};

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

impl AsRef<InstanceCounters> for InstanceCounters {
    fn as_ref(&self) -> &InstanceCounters {
        self
    }
}

/// Everything `stats` reports, as it stands when a request is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot<'a, I = InstanceCounters> {
    /// The instances and their counters (anything that holds an [`InstanceCounters`]).
    pub instances: &'a [I],
    /// TCP connections held now.
    pub open: u64,
    /// How often accepting paused for lack of file descriptors.
    pub accept_pauses: u64,
    /// `SIGHUP` reloads of the access files that took effect.
    pub reloads: u64,
    /// `SIGHUP` reloads that failed and left the old access lists in force.
    pub reload_failures: u64,
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

/// The snapshot of a daemon with no instance and no history, lent where no `stats` request
/// can be answered (a connection's opening, the end of the grace period).
pub const NO_METRICS: Snapshot<'static> = Snapshot {
    instances: &[],
    open: 0,
    accept_pauses: 0,
    reloads: 0,
    reload_failures: 0,
    start_time: SystemTime::UNIX_EPOCH,
};

/// The exposition: every per-instance counter, then the gauges of the whole daemon.
impl<I: AsRef<InstanceCounters> + std::fmt::Debug> Metrics for Snapshot<'_, I> {
    fn write(&self, body: &mut Vec<u8>) {
        let snapshot = self;
        for metric in &PER_INSTANCE {
            family(body, metric.name, metric.help, "counter");
            for i in snapshot.instances.iter().map(AsRef::as_ref) {
                if i.instance.transport == metric.transport {
                    body.extend_from_slice(metric.name.as_bytes());
                    labels(body, &i.instance);
                    sample_value(body, (metric.value)(&i.counters));
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
                "oneloop_reloads_total",
                "Reloads of the access files on SIGHUP that took effect.",
                "counter",
                snapshot.reloads,
            ),
            (
                "oneloop_reload_failures_total",
                "Reloads of the access files on SIGHUP that failed and kept the old lists.",
                "counter",
                snapshot.reload_failures,
            ),
            (
                "oneloop_start_time_seconds",
                "Start time of the daemon since the Unix epoch, in seconds.",
                "gauge",
                start,
            ),
        ] {
            family(body, name, help, kind);
            body.extend_from_slice(name.as_bytes());
            sample_value(body, value);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Service;
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
            reloads: 2,
            reload_failures: 3,
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
# HELP oneloop_reloads_total Reloads of the access files on SIGHUP that took effect.
# TYPE oneloop_reloads_total counter
oneloop_reloads_total 2
# HELP oneloop_reload_failures_total Reloads of the access files on SIGHUP that failed and kept the old lists.
# TYPE oneloop_reload_failures_total counter
oneloop_reload_failures_total 3
# HELP oneloop_start_time_seconds Start time of the daemon since the Unix epoch, in seconds.
# TYPE oneloop_start_time_seconds gauge
oneloop_start_time_seconds 1700000000
";

    #[test]
    fn the_whole_exposition_for_a_small_snapshot() {
        let instances = instances();
        let mut body = Vec::new();
        snapshot(&instances).write(&mut body);
        assert_eq!(String::from_utf8(body).unwrap(), GOLDEN_BODY);
    }

    #[test]
    fn a_daemon_with_no_instance_still_reports_its_gauges() {
        let mut out = Vec::new();
        snapshot(&[]).write(&mut out);
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
    fn summary_line() {
        let s = Counters {
            served: 3,
            refused: 1,
            timed_out: 2,
            denied: 6,
            limited: 7,
            health_checks: 9,
            proxy_header_failures: 11,
            answered: 5,
            dropped: 4,
            datagrams_denied: 8,
            datagrams_limited: 10,
        };
        assert_eq!(
            s.to_string(),
            "connections served 3, refused 1, timed out 2, denied 6, limited 7; \
             datagrams answered 5, dropped 4, denied 8, limited 10"
        );
    }
}
