//! The protocols, sans-IO: one state machine per TCP service (count, ack, echo, time, stats),
//! the UDP reply and loop guard (`datagram`), the PROXY header parser (`proxy`), and the
//! exchange that hands the sockets to a new daemon (`handover`). Bytes in,
//! bytes out and a [`Step`] saying what became of the request.
//!
//! This layer owns what the services say and when they are done. It never touches a socket,
//! a clock (the time is passed in), the log or the configuration, and it imports nothing of
//! the crate outside this folder, so every protocol can be tested exhaustively without a
//! network, and read on one screen.
//!
//! A session never touches a socket or a clock. The connection (`server::conn`) feeds it what it
//! read (`on_data`, `on_eof`) and what happened (`on_deadline`, `on_shutdown`); the session
//! appends what the client should receive to `out` and says, with [`Step`], what became of the
//! request. The connection acts on that `Step` alone: it is the one answer to "what next?",
//! and once a session has answered, the connection feeds it nothing more.

mod ack;
mod count;
pub mod datagram;
mod echo;
pub mod handover;
pub mod proxy;
pub mod stats;
mod time;

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

pub use ack::Ack;
pub use count::{Count, CountState, LineCounter};
pub use echo::Echo;
pub use stats::{Metrics, Stats, MAX_REQUEST};
pub use time::{time_value, Epoch, SECONDS_1900_TO_1970};

/// TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        })
    }
}

/// The services (docs/protocol.md describes each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// The line-count service (TCP only).
    Count,
    /// The "I get it!" response service (TCP only).
    Ack,
    /// RFC 862 echo (TCP and UDP).
    Echo,
    /// RFC 868 time, 4 bytes (TCP and UDP).
    Time,
    /// The counters in the Prometheus text format, over HTTP (TCP only).
    Stats,
}

impl Service {
    /// The service called `name` (`count`, `ack`, `echo`, `time`, `stats`).
    pub fn parse(name: &str) -> Option<Service> {
        match name {
            "count" => Some(Service::Count),
            "ack" => Some(Service::Ack),
            "echo" => Some(Service::Echo),
            "time" => Some(Service::Time),
            "stats" => Some(Service::Stats),
            _ => None,
        }
    }

    /// Whether the service exists on `transport` (`count`, `ack` and `stats` are TCP only).
    pub fn runs_on(self, transport: Transport) -> bool {
        transport == Transport::Tcp || matches!(self, Service::Echo | Service::Time)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Count => "count",
            Service::Ack => "ack",
            Service::Echo => "echo",
            Service::Time => "time",
            Service::Stats => "stats",
        })
    }
}

/// The parts of the configuration sessions read.
#[derive(Clone, Copy, Debug)]
pub struct Settings<'a> {
    /// Longest `count` line in bytes.
    pub max_line: usize,
    /// The `count` deadline, named in its message.
    pub idle_timeout: Duration,
    /// Text `ack` adds after each `I get it!`.
    pub ack_reply: &'a [u8],
    /// Whether the operator console is open: `ack` then waits for the operator's line.
    pub console: bool,
    /// What `stats` reports, as it stands now.
    pub metrics: &'a dyn Metrics,
}

/// What one input did to the request, and so what the connection does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Still going: more input is wanted.
    NeedMore,
    /// The request is complete and its answer written (or it already was): nothing more will
    /// be said. The connection sends it and closes gracefully.
    Answered,
    /// The request was refused with a one-line `Error:` message (the reason names why); the
    /// connection sends it and closes gracefully.
    Refused(&'static str),
    /// Nothing more to say, and what the client has not taken need not reach it (`echo` and
    /// `ack` at their idle limit or at shutdown): the connection closes at once.
    Quit,
    /// The answer goes on with the operator's line (`ack` under `--console`): the connection
    /// reads nothing more from its client, and runs no deadline, until the line comes.
    AskOperator,
}

/// One TCP connection's protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Session {
    Count(Count),
    Ack(Ack),
    Echo(Echo),
    /// `time`: the four bytes were said at open.
    Time,
    /// `stats`: an HTTP request for the counters.
    Stats(Stats),
    /// No protocol yet: a PROXY header comes first, and says who the client is. The parser
    /// holds what was read of a header too large to be queued whole (read in pieces).
    Unopened(Option<Box<proxy::Parser>>),
    /// A connection turned away (over `--max-connections`, or over a per-source limit): its
    /// one-line message was said at open.
    Refusal,
}

impl Session {
    /// Starts `service` for `peer`, writing whatever it says first; the step says whether
    /// that was all (`time`).
    pub fn open(
        service: Service,
        peer: SocketAddr,
        now: SystemTime,
        epoch: Epoch,
        out: &mut Vec<u8>,
    ) -> (Session, Step) {
        match service {
            Service::Count => (Session::Count(Count::open(peer, out)), Step::NeedMore),
            Service::Ack => (Session::Ack(Ack::default()), Step::NeedMore),
            Service::Echo => (Session::Echo(Echo), Step::NeedMore),
            Service::Stats => (Session::Stats(Stats::default()), Step::NeedMore),
            Service::Time => {
                out.extend_from_slice(&time_value(now, epoch).to_be_bytes());
                (Session::Time, Step::Answered)
            }
        }
    }

    /// A connection over `--max-connections`: the busy message, and nothing more.
    pub fn busy(max_connections: usize, out: &mut Vec<u8>) -> (Session, Step) {
        let _ = writeln!(out, "Error: server busy ({max_connections} connections)");
        (Session::Refusal, Step::Refused("busy"))
    }

    /// A connection over `--max-per-source` (`held` is the limit) or `--max-rate` (`None`):
    /// its message, and nothing more.
    pub fn limited(held: Option<usize>, out: &mut Vec<u8>) -> (Session, Step) {
        match held {
            Some(limit) => {
                let _ = writeln!(
                    out,
                    "Error: too many connections from your address (limit {limit})"
                );
                (
                    Session::Refusal,
                    Step::Refused("too many connections from one source"),
                )
            }
            None => {
                out.extend_from_slice(b"Error: too many new connections from your address\n");
                (
                    Session::Refusal,
                    Step::Refused("too many new connections from one source"),
                )
            }
        }
    }

    /// Whether this is a refusal (it does not count toward `--max-connections`).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Session::Refusal)
    }

    pub fn on_data(&mut self, data: &[u8], settings: &Settings, out: &mut Vec<u8>) -> Step {
        match self {
            Session::Count(s) => s.on_data(data, settings, out),
            Session::Ack(s) => s.on_data(data, settings.ack_reply, settings.console, out),
            Session::Echo(s) => s.on_data(data, out),
            Session::Stats(s) => s.on_data(data, settings.metrics, out),
            Session::Time | Session::Refusal | Session::Unopened(_) => Step::Answered,
        }
    }

    /// The operator's line (or the reply text, once the console has closed) for a session
    /// that asked for it.
    pub fn on_operator(&mut self, text: &[u8], out: &mut Vec<u8>) -> Step {
        match self {
            Session::Ack(s) => s.on_operator(text, out),
            _ => Step::Answered,
        }
    }

    /// The console's number for this connection (`ack` sessions under `--console`).
    pub fn console_number(&self) -> Option<u64> {
        match self {
            Session::Ack(s) => s.number(),
            _ => None,
        }
    }

    /// The client half-closed (or closed): no more input will come.
    pub fn on_eof(&mut self, out: &mut Vec<u8>) -> Step {
        match self {
            Session::Count(s) => s.on_eof(out),
            Session::Ack(s) => s.on_eof(),
            Session::Echo(s) => s.on_eof(),
            Session::Stats(s) => s.on_eof(out),
            Session::Time | Session::Refusal | Session::Unopened(_) => Step::Answered,
        }
    }

    /// The connection's deadline passed: `count` and `stats` say so, `echo` and `ack` end
    /// quietly.
    pub fn on_deadline(&mut self, settings: &Settings, out: &mut Vec<u8>) -> Step {
        match self {
            Session::Count(s) => s.on_deadline(settings, out),
            Session::Ack(s) => s.on_timeout(),
            Session::Echo(s) => s.on_timeout(),
            Session::Stats(s) => s.on_deadline(settings.idle_timeout, out),
            Session::Time | Session::Refusal | Session::Unopened(_) => Step::Answered,
        }
    }

    /// The daemon is stopping and the grace period is over.
    pub fn on_shutdown(&mut self, out: &mut Vec<u8>) -> Step {
        match self {
            Session::Count(s) => s.on_shutdown(out),
            Session::Ack(s) => s.on_timeout(),
            Session::Echo(s) => s.on_timeout(),
            // A request that did not come in time gets no answer.
            Session::Stats(_) => Step::Quit,
            Session::Time | Session::Refusal | Session::Unopened(_) => Step::Answered,
        }
    }

    /// Whether traffic in either direction postpones the deadline (`echo`, `ack`), or the
    /// deadline is fixed at accept (`count`: trickling bytes must not extend it).
    pub fn activity_extends_deadline(&self) -> bool {
        matches!(self, Session::Ack(_) | Session::Echo(_))
    }

    /// The most bytes one read may hand to `on_data` (`ack` answers each read of up to 4096).
    pub fn max_read(&self) -> usize {
        match self {
            Session::Ack(_) => ack::MAX_READ,
            _ => usize::MAX,
        }
    }
}

/// A peer address as clients see it: an IPv4-mapped IPv6 address is shown as plain IPv4.
pub fn display_peer(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => peer,
        },
        v4 => v4,
    }
}

/// Appends `peer` as `SocketAddr` displays it (`127.0.0.1:40512`, `[::1]:40512`), IPv4-mapped
/// shown as IPv4. IPv4, the common case, is written by hand: it is on every connection's path.
fn push_peer(out: &mut Vec<u8>, peer: SocketAddr) {
    match display_peer(peer) {
        SocketAddr::V4(v4) => {
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_decimal(out, u64::from(octet));
            }
            out.push(b':');
            push_decimal(out, u64::from(v4.port()));
        }
        v6 => {
            // Writing into a Vec cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

/// Appends `n` in decimal.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_written_as_socket_addr_displays_them() {
        for peer in [
            "127.0.0.1:40512",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.0.100.9:7",
            "[::1]:40512",
            "[fe80::1%2]:9",
            "[2001:db8::ff00:42:8329]:1",
        ] {
            let mut out = Vec::new();
            push_peer(&mut out, peer.parse().unwrap());
            assert_eq!(String::from_utf8(out).unwrap(), peer);
        }
        let mut out = Vec::new();
        push_peer(&mut out, "[::ffff:192.0.2.1]:80".parse().unwrap());
        assert_eq!(out, b"192.0.2.1:80");
    }

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 99, 100, 4096, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn busy_message_names_the_limit() {
        let mut out = Vec::new();
        let (s, step) = Session::busy(10_000, &mut out);
        assert_eq!(out, b"Error: server busy (10000 connections)\n");
        assert_eq!(step, Step::Refused("busy"));
        assert!(s.is_refusal());
    }

    #[test]
    fn limit_messages_name_what_was_exceeded() {
        let mut out = Vec::new();
        let (s, step) = Session::limited(Some(4), &mut out);
        assert_eq!(
            out,
            b"Error: too many connections from your address (limit 4)\n"
        );
        assert!(s.is_refusal() && matches!(step, Step::Refused(_)));
        out.clear();
        Session::limited(None, &mut out);
        assert_eq!(out, b"Error: too many new connections from your address\n");
    }

    #[test]
    fn time_says_four_bytes_at_open() {
        let mut out = Vec::new();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(0x0102_0304);
        let (_, step) = Session::open(
            Service::Time,
            "127.0.0.1:1".parse().unwrap(),
            at,
            Epoch::Unix,
            &mut out,
        );
        assert_eq!(out, [1, 2, 3, 4]);
        assert_eq!(step, Step::Answered);
    }

    #[test]
    fn only_streaming_services_extend_their_deadline() {
        let mut out = Vec::new();
        let peer = "127.0.0.1:1".parse().unwrap();
        let now = SystemTime::now();
        let open = |svc, out: &mut Vec<u8>| Session::open(svc, peer, now, Epoch::Unix, out).0;
        assert!(!open(Service::Count, &mut out).activity_extends_deadline());
        assert!(open(Service::Echo, &mut out).activity_extends_deadline());
        assert!(open(Service::Ack, &mut out).activity_extends_deadline());
    }
}
