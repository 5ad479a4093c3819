//! What the daemon is asked to do: the service instances and every limit, with their defaults.
//!
//! This file only describes and validates; it never opens a socket. `cli.rs` turns a command
//! line into a [`Config`]; the library user builds one in code.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// The default port of both default instances.
pub const DEFAULT_PORT: u16 = 51423;

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

/// The services of SPEC.md.
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
}

impl Service {
    /// The service called `name` (`count`, `ack`, `echo`, `time`).
    pub fn parse(name: &str) -> Option<Service> {
        match name {
            "count" => Some(Service::Count),
            "ack" => Some(Service::Ack),
            "echo" => Some(Service::Echo),
            "time" => Some(Service::Time),
            _ => None,
        }
    }

    /// Whether the service exists on `transport` (`count` and `ack` are TCP only).
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
        })
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
    /// interface; a name is resolved and its first address taken.
    pub fn parse(transport: Transport, spec: &str) -> Result<Instance, ConfigError> {
        let bad = |why: &str| ConfigError(format!("bad service '{spec}': {why}"));
        let (name, addr) = spec
            .split_once('@')
            .ok_or_else(|| bad("expected SERVICE@[HOST]:PORT"))?;
        let service =
            Service::parse(name).ok_or_else(|| bad("unknown service (count, ack, echo, time)"))?;
        if !service.runs_on(transport) {
            return Err(bad(&format!("{service} runs on tcp only")));
        }
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| bad("expected HOST:PORT after '@'"))?;
        let port: u16 = port.parse().map_err(|_| bad("port must be 0..65535"))?;
        let ip = if host.is_empty() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else if let Some(v6) = host.strip_prefix('[') {
            v6.strip_suffix(']')
                .and_then(|v6| v6.parse().ok())
                .ok_or_else(|| bad("bad IPv6 address"))?
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            ip
        } else {
            (host, port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut addrs| addrs.next())
                .map(|a| a.ip())
                .ok_or_else(|| bad("host name does not resolve"))?
        };
        Ok(Instance {
            transport,
            service,
            addr: SocketAddr::new(ip, port),
        })
    }
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

/// The epoch of the 4-byte time value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epoch {
    /// Seconds since 1970-01-01 UTC (the seed documents' server).
    Unix,
    /// Seconds since 1900-01-01 UTC (RFC 868, what `rdate` expects).
    Rfc868,
}

impl Epoch {
    /// Parses `unix` or `1900`.
    pub fn parse(s: &str) -> Option<Epoch> {
        match s {
            "unix" | "1970" => Some(Epoch::Unix),
            "1900" | "rfc868" => Some(Epoch::Rfc868),
            _ => None,
        }
    }
}

/// Socket options applied to every listener and UDP socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketOptions {
    /// `listen()` backlog.
    pub backlog: i32,
    /// SO_REUSEADDR (on unless `--no-reuseaddr`).
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
            backlog: 128,
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

    /// Checks the values that can be wrong whichever way the config was made.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |s: &str| Err(ConfigError(s.to_string()));
        if let Some(i) = self
            .instances
            .iter()
            .find(|i| !i.service.runs_on(i.transport))
        {
            return Err(ConfigError(format!("{} runs on tcp only", i.service)));
        }
        if self.max_line == 0 || self.max_line > MAX_LINE_LIMIT {
            return Err(ConfigError(format!(
                "--max-line must be from 1 to {MAX_LINE_LIMIT}"
            )));
        }
        if self.max_connections == 0 {
            return err("--max-connections must be at least 1");
        }
        if self.max_output < 4096 {
            return err("--max-output must be at least 4096");
        }
        if self.idle_timeout.is_zero() {
            return err("--idle-timeout must be more than 0");
        }
        if self.ack_reply.len() > MAX_ACK_REPLY {
            return Err(ConfigError(format!(
                "--ack-reply is limited to {MAX_ACK_REPLY} bytes"
            )));
        }
        if self.sockets.backlog < 1 {
            return err("--backlog must be at least 1");
        }
        Ok(())
    }
}

/// A configuration the daemon cannot run with; the text says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
            (Transport::Udp, "count@:1", "tcp only"),
            (Transport::Udp, "ack@:1", "tcp only"),
            (Transport::Tcp, "echo@127.0.0.1", "expected HOST:PORT"),
            (Transport::Tcp, "echo@:70000", "port"),
            (Transport::Tcp, "echo@[::1:7", "IPv6"),
            (Transport::Tcp, "echo@[zz]:7", "IPv6"),
        ] {
            let e = Instance::parse(transport, spec).unwrap_err();
            assert!(e.0.contains(why), "{spec}: {e}");
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
    fn validation_names_the_flag() {
        let c = Config {
            max_line: 0,
            ..Config::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .0
            .contains("--max-line must be from 1"));
        let c = Config {
            ack_reply: vec![b'x'; MAX_ACK_REPLY + 1],
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().0.contains("--ack-reply"));
    }
}
