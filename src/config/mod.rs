//! What the daemon is asked to do: the service instances and every limit, with their defaults
//! and the range of every number (`ranges`).
//!
//! This layer only describes and validates; it never opens a socket. `cmd::serve` turns a command
//! line into a [`Config`]; the library user builds one in code.

pub mod ranges;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::policy::access::Cidr;
use crate::proto::{Epoch, Service, Transport};

/// The default port of both default instances.
pub const DEFAULT_PORT: u16 = 51423;

/// The service of the socket an inetd passes on standard input in "wait" mode:
/// `--inetd tcp:count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inetd {
    pub transport: Transport,
    pub service: Service,
}

impl Inetd {
    /// Parses `TRANSPORT:SERVICE`: `tcp:count`, `udp:time`, ...
    pub fn parse(spec: &str) -> Result<Inetd, String> {
        let expected = || {
            format!(
                "--inetd: expected tcp:SERVICE (count, ack, echo, time, stats) or udp:SERVICE \
                 (echo, time), got '{spec}'"
            )
        };
        let (transport, service) = spec.split_once(':').ok_or_else(expected)?;
        let transport = match transport {
            "tcp" => Transport::Tcp,
            "udp" => Transport::Udp,
            _ => return Err(expected()),
        };
        let service = Service::parse(service).ok_or_else(expected)?;
        if !service.runs_on(transport) {
            return Err(format!("--inetd: {service} runs on tcp only, got '{spec}'"));
        }
        Ok(Inetd { transport, service })
    }
}

impl fmt::Display for Inetd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.service)
    }
}

/// One service on one transport at one address: `--tcp count@:51423`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instance {
    pub transport: Transport,
    pub service: Service,
    pub addr: SocketAddr,
}

impl Instance {
    /// Parses `SERVICE@[HOST]:PORT`. An empty HOST is `0.0.0.0`; `[::]` is every IPv6
    /// interface (an IPv6 address always goes in brackets, an IPv4 address or a name never);
    /// a name is resolved and its first address taken. PORT is 0 to 65535 (0: any free port).
    pub fn parse(transport: Transport, spec: &str) -> Result<Instance, ConfigError> {
        let bad = |why: &str| ConfigError::Spec {
            spec: spec.to_string(),
            why: why.to_string(),
        };
        let (name, addr) = spec
            .split_once('@')
            .ok_or_else(|| bad("expected SERVICE@[HOST]:PORT"))?;
        let service = Service::parse(name)
            .ok_or_else(|| bad("unknown service (count, ack, echo, time, stats)"))?;
        if !service.runs_on(transport) {
            return Err(bad(&format!("{service} runs on tcp only")));
        }
        let (host, port) = if let Some(bracketed) = addr.strip_prefix('[') {
            let (inside, after) = bracketed
                .split_once(']')
                .ok_or_else(|| bad("no ']' after the IPv6 address"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| bad("expected ':PORT' after ']'"))?;
            if let Ok(v4) = inside.parse::<Ipv4Addr>() {
                return Err(bad(&format!(
                    "brackets are for IPv6 addresses only: {name}@{v4}:{port}"
                )));
            }
            let v6 = inside
                .parse::<Ipv6Addr>()
                .map_err(|_| bad(&format!("'{inside}' is not an IPv6 address")))?;
            (Host::Ip(IpAddr::V6(v6)), port)
        } else {
            let (host, port) = addr
                .rsplit_once(':')
                .ok_or_else(|| bad("expected [HOST]:PORT after '@'"))?;
            if host.contains(':') {
                let hint = if host.parse::<Ipv6Addr>().is_ok() {
                    format!("{name}@[{host}]:{port}")
                } else {
                    format!("{name}@[{addr}]:PORT")
                };
                return Err(bad(&format!("IPv6 addresses go in brackets: {hint}")));
            }
            let host = if host.is_empty() {
                Host::Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            } else if let Ok(v4) = host.parse::<Ipv4Addr>() {
                Host::Ip(IpAddr::V4(v4))
            } else if is_host_name(host) {
                Host::Name(host)
            } else {
                return Err(bad(&format!(
                    "'{host}' is neither an IPv4 address nor a host name"
                )));
            };
            (host, port)
        };
        if port.is_empty() {
            return Err(bad(&format!("no port after ':' ({})", ranges::PORT)));
        }
        let port = ranges::PORT.parse("port", port).map_err(|e| bad(&e))?;
        let ip = match host {
            Host::Ip(ip) => ip,
            Host::Name(host) => (host, port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut addrs| addrs.next())
                .map(|a| a.ip())
                .ok_or_else(|| bad(&format!("host name '{host}' does not resolve")))?,
        };
        Ok(Instance {
            transport,
            service,
            addr: SocketAddr::new(ip, port),
        })
    }
}

/// The HOST of `SERVICE@[HOST]:PORT`: an address, or a name to resolve.
enum Host<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

/// Whether `host` is written as a DNS name: dot-separated labels of letters, digits, `-` and
/// `_`, none empty or longer than 63, 253 bytes at most (a final dot allowed).
fn is_host_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl Instance {
    /// What the daemon serves when given no service: TCP `count` and UDP `echo` on
    /// `0.0.0.0:51423`.
    pub fn defaults() -> Vec<Instance> {
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_PORT);
        vec![
            Instance {
                transport: Transport::Tcp,
                service: Service::Count,
                addr: any,
            },
            Instance {
                transport: Transport::Udp,
                service: Service::Echo,
                addr: any,
            },
        ]
    }
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.transport, self.addr, self.service)
    }
}

/// Socket options applied to every listener and UDP socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketOptions {
    /// `listen()` backlog (`--backlog`); `None`: the kernel's maximum, `net.core.somaxconn`,
    /// read when the listeners are made.
    pub backlog: Option<i32>,
    /// SO_REUSEADDR on TCP listeners (on unless `--no-reuseaddr`); UDP sockets never get it.
    pub reuse_address: bool,
    /// SO_REUSEPORT.
    pub reuse_port: bool,
    /// SO_KEEPALIVE on accepted connections.
    pub keepalive: bool,
    /// TCP_NODELAY on accepted connections.
    pub nodelay: bool,
    /// SO_RCVBUF in bytes.
    pub recv_buffer: Option<usize>,
    /// SO_SNDBUF in bytes.
    pub send_buffer: Option<usize>,
    /// SO_BINDTODEVICE interface name.
    pub bind_device: Option<String>,
    /// IPV6_V6ONLY for IPv6 sockets (dual-stack when false).
    pub ipv6_only: bool,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            backlog: None,
            reuse_address: true,
            reuse_port: false,
            keepalive: false,
            nodelay: false,
            recv_buffer: None,
            send_buffer: None,
            bind_device: None,
            ipv6_only: false,
        }
    }
}

/// Who the daemon serves as once every socket is bound (`--user`, `--group`, `--chroot`);
/// [`crate::os::privileges::Plan`] carries it out. All `None`: it stays who it was started as.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Privileges {
    /// The user to serve as (`--user`).
    pub user: Option<String>,
    /// The group to serve as (`--group`; only with a user): by default the user's primary
    /// group.
    pub group: Option<String>,
    /// The directory to change root to (`--chroot`; only with a user: root can leave a
    /// chroot), an absolute path.
    pub chroot: Option<PathBuf>,
}

impl Privileges {
    /// Checks the combinations: a group or a chroot only with a user, no empty name, an
    /// absolute chroot directory.
    fn validate(&self) -> Result<(), String> {
        for (flag, name) in [("--user", &self.user), ("--group", &self.group)] {
            if name
                .as_deref()
                .is_some_and(|n| n.is_empty() || n.contains('\0'))
            {
                return Err(format!("{flag}: the name is empty or holds a NUL byte"));
            }
        }
        if self.user.is_none() {
            if self.group.is_some() {
                return Err("--group needs --user".into());
            }
            if self.chroot.is_some() {
                return Err("--chroot needs --user (root can leave a chroot)".into());
            }
        }
        match &self.chroot {
            Some(dir) if !dir.is_absolute() => Err(format!(
                "--chroot: '{}' is not an absolute path",
                dir.display()
            )),
            _ => Ok(()),
        }
    }
}

/// Everything the daemon needs to know. `Config::default()` is the daemon with no flags.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The service instances, in the order they are bound.
    pub instances: Vec<Instance>,
    /// Longest `count` line in bytes, LF excluded (`--max-line`).
    pub max_line: usize,
    /// `count` request deadline, and `echo`/`ack` inactivity limit (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// TCP connections held at once, lingering ones included (`--max-connections`).
    pub max_connections: usize,
    /// Busy refusals that may linger at once (`--max-refusals`); past it a connection over
    /// `max_connections` is closed at once, without the busy message.
    pub max_refusals: usize,
    /// Bytes of unsent output an `echo`/`ack` connection may hold before the daemon stops
    /// reading from it (`--max-output`).
    pub max_output: usize,
    /// How long a closing connection's unread input is drained after the reply (`--linger`).
    pub linger: Duration,
    /// How long in-flight requests may finish after SIGINT/SIGTERM (`--shutdown-grace`).
    pub shutdown_grace: Duration,
    /// Text the `ack` service adds after each `I get it!` (`--ack-reply`).
    pub ack_reply: Vec<u8>,
    /// Epoch of the time services (`--time-epoch`).
    pub time_epoch: Epoch,
    /// Socket options for every socket.
    pub sockets: SocketOptions,
    /// Whether `Server::bind` installs the SIGINT/SIGTERM handlers.
    pub handle_signals: bool,
    /// Services of sockets passed by socket activation, by their names (`--activated`).
    pub activated: Vec<(String, Service)>,
    /// Standard input is the operator's console for `ack` (`--console`).
    pub console: bool,
    /// The loop pauses before each wait and after each wake, for a line on standard input
    /// (`--step`).
    pub step: bool,
    /// The unix socket through which a running daemon hands its sockets to this one at
    /// start-up, and this one to the next (`--handover`).
    pub handover: Option<PathBuf>,
    /// The load balancers whose TCP connections begin with a PROXY protocol header
    /// (`--proxy-from`); a connection from any other address is a direct client.
    pub proxy_from: Vec<Cidr>,
    /// Every TCP connection begins with a PROXY header (`--proxy-protocol`: a listener only
    /// the proxy can reach).
    pub proxy_protocol: bool,
    /// The sources served (`--allow`): when any is given, only these. Empty: every source.
    pub allow: Vec<Cidr>,
    /// The sources never served (`--deny`); deny wins over allow.
    pub deny: Vec<Cidr>,
    /// Files of more sources to serve (`--allow-file`), added to `allow`; read at start and
    /// again on `SIGHUP`.
    pub allow_files: Vec<PathBuf>,
    /// Files of more sources never to serve (`--deny-file`), added to `deny`.
    pub deny_files: Vec<PathBuf>,
    /// TCP connections one source may hold at once (`--max-per-source`); 0: no limit. An
    /// IPv6 source counts as its /64.
    pub max_per_source: usize,
    /// New TCP connections a second per source, with a burst of as many (`--max-rate`); 0: no
    /// limit.
    pub max_rate: u32,
    /// UDP replies a second per source, with a burst of as many (`--udp-rate`); 0: no limit.
    pub udp_rate: u32,
    /// Who to serve as after binding (`--user`, `--group`, `--chroot`).
    pub privileges: Privileges,
    /// Standard input is a socket an inetd passes, with this service (`--inetd`).
    pub inetd: Option<Inetd>,
    /// The daemon stops after this long with nothing open (`--exit-idle`); zero: never.
    pub exit_idle: Duration,
    /// The system calls are limited once the daemon serves (`--sandbox`); `None`: not.
    pub sandbox: Option<Sandbox>,
}

/// What a system call outside the sandbox's list does (`--sandbox`, `--sandbox=log`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sandbox {
    /// It ends the process (`--sandbox`).
    Enforce,
    /// It goes through, and the kernel logs it (`--sandbox=log`).
    Log,
}

/// Largest `--max-line`: a `count` connection keeps its counters in 32 bits.
pub const MAX_LINE_LIMIT: usize = 1 << 30;

/// Largest `--ack-reply`, so that one read's answer stays small.
pub const MAX_ACK_REPLY: usize = 4096;

impl Default for Config {
    fn default() -> Self {
        Config {
            instances: Instance::defaults(),
            max_line: 4096,
            idle_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_refusals: 64,
            max_output: 64 * 1024,
            linger: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(5),
            ack_reply: Vec::new(),
            time_epoch: Epoch::Unix,
            sockets: SocketOptions::default(),
            handle_signals: true,
            activated: Vec::new(),
            console: false,
            step: false,
            proxy_from: Vec::new(),
            proxy_protocol: false,
            allow: Vec::new(),
            deny: Vec::new(),
            allow_files: Vec::new(),
            deny_files: Vec::new(),
            max_per_source: 0,
            max_rate: 0,
            udp_rate: 0,
            privileges: Privileges::default(),
            inetd: None,
            exit_idle: Duration::ZERO,
            sandbox: None,
            handover: None,
        }
    }
}

impl Config {
    /// A configuration with these instances and every default; signals left alone, as a
    /// library user in a larger program (or a test) wants.
    pub fn with_instances(instances: Vec<Instance>) -> Config {
        Config {
            instances,
            handle_signals: false,
            ..Config::default()
        }
    }

    /// Checks the values that can be wrong whichever way the config was made: every number
    /// against its range in [`ranges`], and the combinations of [`Privileges`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(i) = self
            .instances
            .iter()
            .find(|i| !i.service.runs_on(i.transport))
        {
            return Err(ConfigError::TcpOnly(i.service));
        }
        if self.ack_reply.len() > MAX_ACK_REPLY {
            return Err(ConfigError::AckReplyTooLong);
        }
        let s = &self.sockets;
        ranges::MAX_LINE
            .check("--max-line", self.max_line)
            .and(ranges::IDLE_TIMEOUT.check("--idle-timeout", self.idle_timeout))
            .and(ranges::MAX_CONNECTIONS.check("--max-connections", self.max_connections))
            .and(ranges::MAX_REFUSALS.check("--max-refusals", self.max_refusals))
            .and(ranges::MAX_OUTPUT.check("--max-output", self.max_output))
            .and(ranges::WAIT.check("--linger", self.linger))
            .and(ranges::WAIT.check("--shutdown-grace", self.shutdown_grace))
            .and(s.backlog.map_or(Ok(()), |backlog| {
                ranges::BACKLOG.check("--backlog", backlog)
            }))
            .and(
                s.recv_buffer
                    .map_or(Ok(()), |size| ranges::SOCKET_BUFFER.check("--rcvbuf", size)),
            )
            .and(
                s.send_buffer
                    .map_or(Ok(()), |size| ranges::SOCKET_BUFFER.check("--sndbuf", size)),
            )
            .and(ranges::MAX_PER_SOURCE.check("--max-per-source", self.max_per_source))
            .and(ranges::MAX_RATE.check("--max-rate", self.max_rate))
            .and(ranges::UDP_RATE.check("--udp-rate", self.udp_rate))
            .and(ranges::EXIT_IDLE.check("--exit-idle", self.exit_idle))
            .map_err(ConfigError::OutOfRange)?;
        if self.console && self.inetd.is_some() {
            return Err(ConfigError::ConsoleWithInetd);
        }
        if self.step && (self.console || self.inetd.is_some()) {
            return Err(ConfigError::StepWith(if self.console {
                "--console"
            } else {
                "--inetd"
            }));
        }
        if self.handover.is_some() && (self.step || self.console || self.inetd.is_some()) {
            return Err(ConfigError::HandoverWith(if self.step {
                "--step"
            } else if self.console {
                "--console"
            } else {
                "--inetd"
            }));
        }
        if let Some(path) = &self.handover {
            if path.as_os_str().is_empty() || path.as_os_str().len() >= MAX_SOCKET_PATH {
                return Err(ConfigError::HandoverPath);
            }
        }
        self.privileges.validate().map_err(ConfigError::Privileges)
    }
}

/// The longest path a unix socket's address holds, with its terminating zero byte.
const MAX_SOCKET_PATH: usize = 108;

/// Why a configuration cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A `SERVICE@[HOST]:PORT` that does not parse: the spec, and why.
    Spec { spec: String, why: String },
    /// A TCP-only service asked for on UDP.
    TcpOnly(Service),
    /// `ack_reply` is longer than [`MAX_ACK_REPLY`] bytes.
    AckReplyTooLong,
    /// A number outside its range (the text names the setting and the range).
    OutOfRange(String),
    /// `privileges` that do not go together (the text says which).
    Privileges(String),
    /// No service instance and no passed socket.
    NoService,
    /// `console` and `inetd` both want standard input.
    ConsoleWithInetd,
    /// `step` wants standard input, which the option named has too.
    StepWith(&'static str),
    /// `handover` with an option that serves standard input, which no new daemon can take.
    HandoverWith(&'static str),
    /// `handover` with sockets passed by the service manager, which holds them itself.
    HandoverWithPassedSockets,
    /// A `handover` path that is empty or too long for a unix socket.
    HandoverPath,
    /// More service instances than one daemon runs (the loop numbers them in 16 bits).
    TooManyInstances(usize),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Spec { spec, why } => write!(f, "bad service '{spec}': {why}"),
            ConfigError::TcpOnly(service) => write!(f, "{service} runs on tcp only"),
            ConfigError::AckReplyTooLong => {
                write!(f, "--ack-reply is limited to {MAX_ACK_REPLY} bytes")
            }
            ConfigError::OutOfRange(why) | ConfigError::Privileges(why) => f.write_str(why),
            ConfigError::NoService => f.write_str("no service to run"),
            ConfigError::ConsoleWithInetd => f.write_str(
                "--console cannot go with --inetd: standard input is the inetd's socket",
            ),
            ConfigError::StepWith(other) => {
                write!(f, "--step cannot go with {other}: both read standard input")
            }
            ConfigError::HandoverWith(other) => write!(
                f,
                "--handover cannot go with {other}: standard input cannot be handed over"
            ),
            ConfigError::HandoverWithPassedSockets => f.write_str(
                "--handover cannot go with sockets passed by the service manager: its socket \
                 units keep them across a restart",
            ),
            ConfigError::HandoverPath => write!(
                f,
                "--handover: the path must be 1 to {} bytes long (a unix socket's address)",
                MAX_SOCKET_PATH - 1
            ),
            ConfigError::TooManyInstances(n) => write!(
                f,
                "{n} service instances: at most {} can run in one daemon",
                u16::MAX
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_host_means_every_ipv4_interface() {
        let i = Instance::parse(Transport::Tcp, "count@:51423").unwrap();
        assert_eq!(i.addr, "0.0.0.0:51423".parse().unwrap());
        assert_eq!(i.service, Service::Count);
    }

    #[test]
    fn bracketed_ipv6_host() {
        let i = Instance::parse(Transport::Udp, "echo@[::]:7").unwrap();
        assert_eq!(i.addr, "[::]:7".parse().unwrap());
        let i = Instance::parse(Transport::Tcp, "time@[::1]:0").unwrap();
        assert_eq!(i.addr, "[::1]:0".parse().unwrap());
    }

    #[test]
    fn names_are_resolved() {
        let i = Instance::parse(Transport::Tcp, "ack@localhost:9000").unwrap();
        assert!(i.addr.ip().is_loopback());
        assert_eq!(i.addr.port(), 9000);
    }

    #[test]
    fn malformed_specs_are_refused_with_a_reason() {
        for (transport, spec, why) in [
            (Transport::Tcp, "count", "expected SERVICE@"),
            (Transport::Tcp, "bogus@:1", "unknown service"),
            (Transport::Tcp, "@:1", "unknown service"),
            (Transport::Udp, "count@:1", "tcp only"),
            (Transport::Udp, "ack@:1", "tcp only"),
            (
                Transport::Tcp,
                "echo@127.0.0.1",
                "expected [HOST]:PORT after '@'",
            ),
            (Transport::Tcp, "echo@", "expected [HOST]:PORT after '@'"),
            (
                Transport::Tcp,
                "echo@[::1:7",
                "no ']' after the IPv6 address",
            ),
            (Transport::Tcp, "echo@[::1]", "expected ':PORT' after ']'"),
            (Transport::Tcp, "echo@[::1]7", "expected ':PORT' after ']'"),
            (Transport::Tcp, "echo@[zz]:7", "'zz' is not an IPv6 address"),
            (Transport::Tcp, "echo@[]:7", "'' is not an IPv6 address"),
            (
                Transport::Tcp,
                "echo@[fe80::1%lo]:7",
                "is not an IPv6 address",
            ),
            (Transport::Tcp, "echo@bad host:7", "'bad host' is neither"),
            (Transport::Tcp, "echo@a..b:7", "'a..b' is neither"),
            (
                Transport::Tcp,
                "echo@[::1]:",
                "no port after ':' (0 to 65535)",
            ),
            (Transport::Tcp, "echo@:", "no port after ':' (0 to 65535)"),
            (Transport::Tcp, "echo@h:", "no port after ':' (0 to 65535)"),
        ] {
            let e = Instance::parse(transport, spec).unwrap_err();
            assert!(e.to_string().contains(why), "{spec}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("bad service '{spec}': ")),
                "{e}"
            );
        }
    }

    #[test]
    fn ports_are_whole_numbers_from_0_to_65535() {
        let port = |spec: &str| Instance::parse(Transport::Tcp, spec).map(|i| i.addr.port());
        assert_eq!(port("echo@:0"), Ok(0));
        assert_eq!(port("echo@:65535"), Ok(65535));
        assert_eq!(port("echo@[::1]:65535"), Ok(65535));
        for (p, why) in [
            ("65536", "is out of range (0 to 65535)"),
            ("-1", "is out of range (0 to 65535)"),
            ("99999999999999999999", "is out of range (0 to 65535)"),
            ("7.5", "is not a whole number (0 to 65535)"),
            ("http", "is not a whole number (0 to 65535)"),
            ("7 ", "is not a whole number (0 to 65535)"),
        ] {
            for spec in [format!("echo@:{p}"), format!("echo@[::1]:{p}")] {
                let e = Instance::parse(Transport::Tcp, &spec).unwrap_err();
                assert_eq!(
                    e.to_string(),
                    format!("bad service '{spec}': port: '{p}' {why}")
                );
            }
        }
    }

    #[test]
    fn brackets_go_around_ipv6_addresses_and_nothing_else() {
        for (spec, hint) in [
            (
                "count@[127.0.0.1]:5000",
                "brackets are for IPv6 addresses only: count@127.0.0.1:5000",
            ),
            (
                "count@::1:5000",
                "IPv6 addresses go in brackets: count@[::1]:5000",
            ),
            (
                "echo@fe80::1:7",
                "IPv6 addresses go in brackets: echo@[fe80::1]:7",
            ),
            (
                "count@:::51423",
                "IPv6 addresses go in brackets: count@[::]:51423",
            ),
            (
                "count@::1",
                "IPv6 addresses go in brackets: count@[::1]:PORT",
            ),
            (
                "echo@:7:8",
                "IPv6 addresses go in brackets: echo@[:7:8]:PORT",
            ),
        ] {
            let e = Instance::parse(Transport::Tcp, spec).unwrap_err();
            assert_eq!(e.to_string(), format!("bad service '{spec}': {hint}"));
        }
    }

    #[test]
    fn ipv4_literals_and_names_need_no_brackets() {
        let i = Instance::parse(Transport::Tcp, "count@127.0.0.1:7").unwrap();
        assert_eq!(i.addr, "127.0.0.1:7".parse().unwrap());
    }

    #[test]
    fn host_names_are_dns_labels() {
        let label63 = "a".repeat(63);
        for name in [
            "localhost",
            "localhost.",
            "board-7.lan",
            "_srv.example",
            &label63,
        ] {
            assert!(is_host_name(name), "{name}");
        }
        let label64 = "a".repeat(64);
        let long = ["abcdefg"; 32].join(".");
        for name in [
            "", ".", "a..b", ".a", "bad host", "a/b", "é.lan", &label64, &long,
        ] {
            assert!(!is_host_name(name), "{name}");
        }
    }

    #[test]
    fn the_default_is_count_and_udp_echo_on_one_port() {
        let c = Config::default();
        assert_eq!(c.instances.len(), 2);
        assert_eq!(c.instances[0].to_string(), "tcp 0.0.0.0:51423 (count)");
        assert_eq!(c.instances[1].to_string(), "udp 0.0.0.0:51423 (echo)");
        c.validate().unwrap();
    }

    #[test]
    fn validation_checks_every_number_against_its_range() {
        type Tweak = fn(&mut Config);
        let cases: [(Tweak, String); 14] = [
            (
                |c| c.max_line = 0,
                "--max-line: 0 is out of range (1 to 1073741824 bytes)".into(),
            ),
            (
                |c| c.max_connections = 1_000_001,
                "--max-connections: 1000001 is out of range (1 to 1000000 connections)".into(),
            ),
            (
                |c| c.max_refusals = usize::MAX,
                format!(
                    "--max-refusals: {} is out of range (0 to 10000 refusals)",
                    usize::MAX
                ),
            ),
            (
                |c| c.max_output = 65537,
                "--max-output: 65537 is out of range (4096 to 65536 bytes)".into(),
            ),
            (
                |c| c.idle_timeout = Duration::ZERO,
                "--idle-timeout: 0 is out of range (0.001 to 31536000 s)".into(),
            ),
            (
                |c| c.linger = Duration::MAX,
                format!(
                    "--linger: {} is out of range (0 to 31536000 s)",
                    Duration::MAX.as_secs_f64()
                ),
            ),
            (
                |c| c.shutdown_grace = Duration::from_millis(31_536_000_001),
                "--shutdown-grace: 31536000.001 is out of range (0 to 31536000 s)".into(),
            ),
            (
                |c| c.sockets.backlog = Some(-1),
                "--backlog: -1 is out of range (1 to 65535)".into(),
            ),
            (
                |c| c.sockets.recv_buffer = Some(1 << 30),
                "--rcvbuf: 1073741824 is out of range (1 to 1073741823 bytes)".into(),
            ),
            (
                |c| c.sockets.send_buffer = Some(0),
                "--sndbuf: 0 is out of range (1 to 1073741823 bytes)".into(),
            ),
            (
                |c| c.ack_reply = vec![b'x'; MAX_ACK_REPLY + 1],
                "--ack-reply is limited to 4096 bytes".into(),
            ),
            (
                |c| c.max_per_source = 1_000_001,
                "--max-per-source: 1000001 is out of range (0 to 1000000 connections)".into(),
            ),
            (
                |c| c.max_rate = u32::MAX,
                format!(
                    "--max-rate: {} is out of range (0 to 1000000 connections per second)",
                    u32::MAX
                ),
            ),
            (
                |c| c.udp_rate = 1_000_001,
                "--udp-rate: 1000001 is out of range (0 to 1000000 replies per second)".into(),
            ),
        ];
        for (tweak, says) in cases {
            let mut c = Config::default();
            tweak(&mut c);
            assert_eq!(c.validate().map_err(|e| e.to_string()), Err(says));
        }
        let at_the_ends = Config {
            max_per_source: 1_000_000,
            max_rate: 1_000_000,
            udp_rate: 1_000_000,
            max_refusals: 0,
            linger: Duration::ZERO,
            max_connections: 1_000_000,
            sockets: SocketOptions {
                recv_buffer: Some(1_073_741_823),
                ..SocketOptions::default()
            },
            ..Config::default()
        };
        at_the_ends.validate().unwrap();
    }

    #[test]
    fn a_group_or_a_chroot_needs_a_user() {
        let with = |user: Option<&str>, group: Option<&str>, chroot: Option<&str>| {
            Config {
                privileges: Privileges {
                    user: user.map(str::to_string),
                    group: group.map(str::to_string),
                    chroot: chroot.map(PathBuf::from),
                },
                ..Config::default()
            }
            .validate()
        };
        assert_eq!(with(None, None, None), Ok(()));
        assert_eq!(with(Some("nobody"), None, None), Ok(()));
        assert_eq!(
            with(Some("nobody"), Some("nogroup"), Some("/var/empty")),
            Ok(())
        );
        for (user, group, chroot, says) in [
            (None, Some("nogroup"), None, "--group needs --user"),
            (
                None,
                None,
                Some("/var/empty"),
                "--chroot needs --user (root can leave a chroot)",
            ),
            (None, Some("g"), Some("/x"), "--group needs --user"),
            (
                Some("nobody"),
                None,
                Some("var/empty"),
                "--chroot: 'var/empty' is not an absolute path",
            ),
            (
                Some(""),
                None,
                None,
                "--user: the name is empty or holds a NUL byte",
            ),
            (
                Some("a\0b"),
                None,
                None,
                "--user: the name is empty or holds a NUL byte",
            ),
            (
                Some("nobody"),
                Some(""),
                None,
                "--group: the name is empty or holds a NUL byte",
            ),
        ] {
            assert_eq!(
                with(user, group, chroot).map_err(|e| e.to_string()),
                Err(says.to_string()),
                "{user:?} {group:?} {chroot:?}"
            );
        }
    }

    #[test]
    fn inetd_services_are_a_transport_and_a_service() {
        for (spec, transport, service) in [
            ("tcp:count", Transport::Tcp, Service::Count),
            ("tcp:stats", Transport::Tcp, Service::Stats),
            ("udp:echo", Transport::Udp, Service::Echo),
            ("udp:time", Transport::Udp, Service::Time),
        ] {
            let inetd = Inetd::parse(spec).unwrap();
            assert_eq!((inetd.transport, inetd.service), (transport, service));
            assert_eq!(inetd.to_string(), spec);
        }
        for spec in [
            "count",
            "tcp",
            "tcp:",
            ":count",
            "sctp:count",
            "tcp:dns",
            "TCP:count",
        ] {
            let e = Inetd::parse(spec).unwrap_err();
            assert!(
                e.starts_with("--inetd: expected tcp:SERVICE"),
                "{spec}: {e}"
            );
            assert!(e.ends_with(&format!("got '{spec}'")), "{spec}: {e}");
        }
        assert_eq!(
            Inetd::parse("udp:count"),
            Err("--inetd: count runs on tcp only, got 'udp:count'".to_string())
        );
    }

    #[test]
    fn the_console_and_an_inetd_cannot_share_standard_input() {
        let both = Config {
            console: true,
            inetd: Some(Inetd::parse("tcp:ack").unwrap()),
            ..Config::default()
        };
        assert_eq!(both.validate(), Err(ConfigError::ConsoleWithInetd));
    }
}
