//! systemd integration: sockets passed by socket activation, and state notifications
//! (`READY=1`, `STATUS=`, `STOPPING=1`, `WATCHDOG=1`).
//!
//! Socket activation: systemd (or `systemd-socket-activate`) binds the sockets and starts the
//! daemon with them as descriptors 3, 4, ... (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`).
//! Each passed socket needs a service: its name (`FileDescriptorName=count` in the unit) when
//! that is a service name, or a `--activated NAME=SERVICE` entry. The transport comes from
//! the socket itself. A passed socket is only ever closed, never shut down: systemd keeps its
//! own copy and hands it to the next instance.
//!
//! An inetd in "wait" mode (`--inetd tcp:count`) passes one socket the same way, as standard
//! input; the flag gives its service. It is checked like the others and served with them.
//!
//! Notifications go to `NOTIFY_SOCKET` when it is set, and nowhere otherwise, so the same
//! binary runs under systemd and without it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use log::{debug, warn};
use sd_notify::NotifyState;
use socket2::{Domain, Socket, Type};

use crate::config::Inetd;
use crate::os::sockets::reason;
use crate::proto::{Service, Transport};

/// A socket handed over by the service manager, with the name it was given.
#[derive(Debug)]
pub struct Passed {
    pub socket: Socket,
    pub name: String,
}

/// A passed socket with its service decided.
#[derive(Debug)]
pub struct Activated {
    pub socket: Socket,
    pub transport: Transport,
    pub service: Service,
    pub by: PassedBy,
}

/// Who passed a socket (the `listening on` line says so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassedBy {
    /// systemd's socket activation (`LISTEN_FDS`).
    ServiceManager,
    /// An inetd, on standard input (`--inetd`).
    Inetd,
}

impl std::fmt::Display for PassedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PassedBy::ServiceManager => "the service manager",
            PassedBy::Inetd => "the inetd",
        })
    }
}

/// What to tell the user of a passed TCP socket that does not listen.
const NOT_LISTENING_UNDER_SYSTEMD: &str = "use Accept=no in the socket unit";
const NOT_LISTENING_UNDER_INETD: &str =
    "the inetd passes a listening socket only to a wait service: use wait, not nowait";

/// Takes the sockets passed by socket activation, if any, and clears the variables that
/// announced them so that no child process inherits them.
///
/// Must be called while the process has one thread (it edits the environment): the daemon
/// calls it first thing. Crate-private for that reason: a library user's program may have
/// threads.
pub(crate) fn take_passed() -> io::Result<Vec<Passed>> {
    let passed = sd_notify::listen_fds_with_names()?;
    let passed = passed
        .map(|(fd, name)| Passed {
            // SAFETY: LISTEN_PID named this process, so descriptors 3.. are ours to own;
            // each is taken exactly once.
            socket: Socket::from(unsafe { OwnedFd::from_raw_fd(fd) }),
            name,
        })
        .collect();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // SAFETY: the daemon is single-threaded when this runs (see above).
        unsafe { std::env::remove_var(var) };
    }
    Ok(passed)
}

/// Decides each passed socket's service: `map` (from `--activated NAME=SERVICE`) first, else
/// the name itself. Each socket is checked first: it must be a TCP socket that listens
/// (`Accept=no`) or a bound UDP socket, over IPv4 or IPv6. The socket is made non-blocking.
pub fn assign(passed: Vec<Passed>, map: &[(String, Service)]) -> Result<Vec<Activated>, String> {
    passed
        .into_iter()
        .map(|p| {
            let what = format!("passed socket '{}' (fd {})", p.name, p.socket.as_raw_fd());
            let transport = transport_of(&p.socket, NOT_LISTENING_UNDER_SYSTEMD)
                .map_err(|why| format!("{what} {why}"))?;
            let service = map
                .iter()
                .find(|(name, _)| *name == p.name)
                .map(|(_, service)| *service)
                .or_else(|| Service::parse(&p.name))
                .ok_or_else(|| {
                    format!(
                        "{what} has no service: name it count, ack, echo or time \
                         (FileDescriptorName=) or map it with --activated {}=SERVICE",
                        p.name
                    )
                })?;
            if !service.runs_on(transport) {
                return Err(format!(
                    "{what} is a datagram (UDP) socket, and {service} runs on tcp only"
                ));
            }
            let by = PassedBy::ServiceManager;
            prepare(p.socket, &what, transport, service, by)
        })
        .collect()
}

/// Takes standard input as the socket an inetd passed (`--inetd`).
///
/// Crate-private, and called once: the socket then owns descriptor 0 and closes it.
pub(crate) fn take_inetd() -> Socket {
    // SAFETY: the daemon takes descriptor 0 once, with `--inetd` only, which rules out the
    // console (the only other reader of standard input).
    Socket::from(unsafe { OwnedFd::from_raw_fd(libc::STDIN_FILENO) })
}

/// Checks the socket an inetd passed for `asked`: a listening TCP socket (a "wait" stream
/// service) or a bound UDP socket, of the transport the flag names.
pub fn inetd(socket: Socket, asked: Inetd) -> Result<Activated, String> {
    let what = format!(
        "standard input (fd {}, --inetd {asked})",
        socket.as_raw_fd()
    );
    let transport =
        transport_of(&socket, NOT_LISTENING_UNDER_INETD).map_err(|why| format!("{what} {why}"))?;
    if transport != asked.transport {
        let kind = match transport {
            Transport::Tcp => "a stream (TCP)",
            Transport::Udp => "a datagram (UDP)",
        };
        return Err(format!(
            "{what} is {kind} socket: use --inetd {transport}:SERVICE, or a {} line in the \
             inetd's configuration",
            match asked.transport {
                Transport::Tcp => "stream tcp",
                Transport::Udp => "dgram udp",
            }
        ));
    }
    prepare(socket, &what, transport, asked.service, PassedBy::Inetd)
}

/// A checked passed socket, made non-blocking and close-on-exec (`what` names it in errors).
fn prepare(
    socket: Socket,
    what: &str,
    transport: Transport,
    service: Service,
    by: PassedBy,
) -> Result<Activated, String> {
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("{what} cannot be made non-blocking: {}", reason(&e)))?;
    socket
        .set_cloexec(true)
        .map_err(|e| format!("{what} cannot be made close-on-exec: {}", reason(&e)))?;
    Ok(Activated {
        socket,
        transport,
        service,
        by,
    })
}

/// The transport of a passed socket the daemon can serve; else what is wrong with it, as
/// the end of a sentence that names the socket. `not_listening` is the advice for a TCP
/// socket that does not listen.
fn transport_of(socket: &Socket, not_listening: &str) -> Result<Transport, String> {
    let cannot = |what: &str, e: io::Error| match e.raw_os_error() {
        Some(libc::ENOTSOCK) => "is not a socket".to_string(),
        _ => format!("cannot be inspected ({what}: {})", reason(&e)),
    };
    let domain = socket.domain().map_err(|e| cannot("SO_DOMAIN", e))?;
    if domain == Domain::UNIX {
        return Err(
            "is a Unix socket: only TCP and UDP sockets (IPv4 or IPv6) can be served".into(),
        );
    }
    if domain != Domain::IPV4 && domain != Domain::IPV6 {
        return Err(format!(
            "is not an IPv4 or IPv6 socket (address family {}): only TCP and UDP sockets \
             can be served",
            libc::c_int::from(domain)
        ));
    }
    let kind = socket.r#type().map_err(|e| cannot("SO_TYPE", e))?;
    let transport = if kind == Type::STREAM {
        Transport::Tcp
    } else if kind == Type::DGRAM {
        Transport::Udp
    } else {
        return Err("is neither a stream (TCP) nor a datagram (UDP) socket".into());
    };
    if transport == Transport::Tcp
        && !socket
            .is_listener()
            .map_err(|e| cannot("SO_ACCEPTCONN", e))?
    {
        return Err(format!(
            "is a TCP socket that is not listening ({not_listening})"
        ));
    }
    // A listening TCP socket always has a port; a UDP socket only once bound.
    if transport == Transport::Udp
        && socket
            .local_addr()
            .map_err(|e| cannot("getsockname", e))?
            .as_socket()
            .is_none_or(|addr| addr.port() == 0)
    {
        return Err("is a UDP socket bound to no port".into());
    }
    Ok(transport)
}

/// The service manager's notify socket (`NOTIFY_SOCKET`), opened once at start-up: the
/// daemon connects a datagram socket to it before it drops privileges, so `WATCHDOG=1` and
/// `STOPPING=1` still reach the service manager from inside a `--chroot`, where the socket's
/// path does not exist. An abstract name (`@name`) works too.
#[derive(Debug)]
pub struct Notifier {
    /// Connected to the notify socket, when there is one.
    socket: Option<UnixDatagram>,
    /// How often to send `WATCHDOG=1` (half of `WatchdogSec=`), when the watchdog is on.
    pub watchdog_every: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC`/`WATCHDOG_PID` from the environment, and
    /// connects to the notify socket.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            connect(&path)
                .map_err(|e| {
                    warn!(
                        "cannot connect to the service manager's notify socket {}: {}",
                        path.to_string_lossy(),
                        reason(&e)
                    )
                })
                .ok()
        });
        let watchdog_every = sd_notify::watchdog_enabled()
            .filter(|_| socket.is_some())
            .map(|limit| limit / 2);
        Notifier {
            socket,
            watchdog_every,
        }
    }

    /// Start-up is done: every socket is bound.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// The drain has begun.
    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    /// The loop is alive.
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// One datagram, a `STATE=value` line per state.
    fn send(&self, states: &[NotifyState]) {
        let Some(socket) = &self.socket else {
            return;
        };
        let message: String = states.iter().map(|state| format!("{state}\n")).collect();
        match socket.send(message.as_bytes()) {
            Ok(_) => debug!("told the service manager: {states:?}"),
            Err(e) => warn!("cannot notify the service manager: {}", reason(&e)),
        }
    }
}

/// A datagram socket connected to `path`: a file system path, or `@name` for an abstract one.
fn connect(path: &std::ffi::OsStr) -> io::Result<UnixDatagram> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_bytes();
    match bytes.strip_prefix(b"@") {
        Some(name) => {
            socket.connect_addr(&std::os::unix::net::SocketAddr::from_abstract_name(name)?)?
        }
        None => socket.connect(path)?,
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn passed_as(name: &str, fd: impl Into<OwnedFd>) -> Passed {
        Passed {
            socket: Socket::from(fd.into()),
            name: name.to_string(),
        }
    }

    /// An IPv4 or IPv6 socket on loopback: bound when `bind`, listening when `listen`.
    fn inet(name: &str, addr: &str, ty: Type, bind: bool, listen: bool) -> Passed {
        let addr: SocketAddr = addr.parse().unwrap();
        let socket = Socket::new(Domain::for_address(addr), ty, None).unwrap();
        if bind {
            socket.bind(&addr.into()).unwrap();
        }
        if listen {
            socket.listen(8).unwrap();
        }
        passed_as(name, socket)
    }

    fn passed(name: &str, ty: Type, listen: bool) -> Passed {
        inet(name, "127.0.0.1:0", ty, true, listen)
    }

    /// What `assign` says of one socket, with its descriptor number.
    fn refusal(p: Passed) -> (String, i32) {
        let fd = p.socket.as_raw_fd();
        (assign(vec![p], &[]).unwrap_err(), fd)
    }

    #[test]
    fn the_name_is_the_service_and_the_socket_the_transport() {
        let got = assign(
            vec![
                passed("count", Type::STREAM, true),
                passed("time", Type::DGRAM, false),
                inet("echo", "[::1]:0", Type::DGRAM, true, false),
            ],
            &[],
        )
        .unwrap();
        let got: Vec<_> = got.iter().map(|a| (a.transport, a.service)).collect();
        assert_eq!(
            got,
            [
                (Transport::Tcp, Service::Count),
                (Transport::Udp, Service::Time),
                (Transport::Udp, Service::Echo),
            ]
        );
    }

    #[test]
    fn passed_sockets_are_made_non_blocking() {
        let got = assign(vec![passed("count", Type::STREAM, true)], &[]).unwrap();
        assert!(got[0].socket.nonblocking().unwrap());
    }

    #[test]
    fn the_map_names_the_service_of_other_names() {
        let map = [("web".to_string(), Service::Echo)];
        let got = assign(vec![passed("web", Type::STREAM, true)], &map).unwrap();
        assert_eq!(got[0].service, Service::Echo);
    }

    #[test]
    fn unusable_inet_sockets_are_refused_naming_the_socket_and_the_reason() {
        for (p, says) in [
            (
                passed("unknown", Type::STREAM, true),
                "has no service: name it count, ack, echo or time",
            ),
            (
                passed("count", Type::DGRAM, false),
                "is a datagram (UDP) socket, and count runs on tcp only",
            ),
            (
                passed("echo", Type::STREAM, false),
                "is a TCP socket that is not listening (use Accept=no in the socket unit)",
            ),
            (
                inet("echo", "127.0.0.1:0", Type::DGRAM, false, false),
                "is a UDP socket bound to no port",
            ),
        ] {
            let name = p.name.clone();
            let (e, fd) = refusal(p);
            assert!(
                e.starts_with(&format!("passed socket '{name}' (fd {fd}) {says}")),
                "{e}"
            );
        }
    }

    #[test]
    fn unix_sockets_and_other_descriptors_are_refused_naming_the_socket() {
        let dir = std::env::temp_dir().join(format!("oneloop-systemd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let listener = std::os::unix::net::UnixListener::bind(dir.join("s")).unwrap();
        let datagram = std::os::unix::net::UnixDatagram::unbound().unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        let unix = "is a Unix socket: only TCP and UDP sockets (IPv4 or IPv6) can be served";
        for (p, says) in [
            (passed_as("count", listener), unix),
            (passed_as("echo", datagram), unix),
            (passed_as("time", file), "is not a socket"),
        ] {
            let name = p.name.clone();
            let (e, fd) = refusal(p);
            assert_eq!(e, format!("passed socket '{name}' (fd {fd}) {says}"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sockets_of_other_types_and_families_are_refused() {
        // Both need CAP_NET_RAW: where it is missing there is nothing to check.
        let raw = Socket::new(Domain::IPV4, Type::RAW, Some(socket2::Protocol::ICMPV4));
        if let Ok(socket) = raw {
            let (e, _) = refusal(passed_as("echo", socket));
            assert!(
                e.ends_with("is neither a stream (TCP) nor a datagram (UDP) socket"),
                "{e}"
            );
        }
        if let Ok(socket) = Socket::new(Domain::PACKET, Type::DGRAM, None) {
            let (e, _) = refusal(passed_as("echo", socket));
            assert!(
                e.contains("is not an IPv4 or IPv6 socket (address family 17)"),
                "{e}"
            );
        }
    }

    #[test]
    fn an_inetd_socket_takes_the_flags_service_and_is_prepared() {
        let asked = Inetd::parse("udp:time").unwrap();
        // As an inetd passes it: inherited, so without close-on-exec.
        let socket = passed("", Type::DGRAM, false).socket;
        socket.set_cloexec(false).unwrap();
        let got = inetd(socket, asked).unwrap();
        assert_eq!(
            (got.transport, got.service, got.by),
            (Transport::Udp, Service::Time, PassedBy::Inetd)
        );
        assert!(got.socket.nonblocking().unwrap());
        // SAFETY: F_GETFD on a descriptor the socket owns.
        let flags = unsafe { libc::fcntl(got.socket.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        let asked = Inetd::parse("tcp:count").unwrap();
        let got = inetd(passed("", Type::STREAM, true).socket, asked).unwrap();
        assert_eq!(
            (got.transport, got.service),
            (Transport::Tcp, Service::Count)
        );
    }

    #[test]
    fn an_inetd_socket_of_the_wrong_kind_is_refused_naming_the_flag() {
        let count = Inetd::parse("tcp:count").unwrap();
        let echo = Inetd::parse("udp:echo").unwrap();
        for (p, asked, says) in [
            (
                passed("", Type::DGRAM, false),
                count,
                "is a datagram (UDP) socket: use --inetd udp:SERVICE, or a stream tcp line",
            ),
            (
                passed("", Type::STREAM, true),
                echo,
                "is a stream (TCP) socket: use --inetd tcp:SERVICE, or a dgram udp line",
            ),
            (
                passed("", Type::STREAM, false),
                count,
                "is a TCP socket that is not listening (the inetd passes a listening socket \
                 only to a wait service: use wait, not nowait)",
            ),
        ] {
            let fd = p.socket.as_raw_fd();
            let e = inetd(p.socket, asked).unwrap_err();
            let what = format!("standard input (fd {fd}, --inetd {asked})");
            assert!(e.starts_with(&format!("{what} {says}")), "{e}");
        }
    }
}
