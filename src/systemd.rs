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
//! Notifications go to `NOTIFY_SOCKET` when it is set, and nowhere otherwise, so the same
//! binary runs under systemd and without it.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use log::{debug, warn};
use sd_notify::NotifyState;
use socket2::{Socket, Type};

use crate::config::{Service, Transport};

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
}

/// Takes the sockets passed by socket activation, if any, and clears the variables that
/// announced them so that no child process inherits them.
///
/// Must be called while the process has one thread (it edits the environment): the daemon
/// calls it first thing.
pub fn take_passed() -> io::Result<Vec<Passed>> {
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
/// the name itself. The socket is made non-blocking.
pub fn assign(passed: Vec<Passed>, map: &[(String, Service)]) -> Result<Vec<Activated>, String> {
    passed
        .into_iter()
        .map(|p| {
            let service = map
                .iter()
                .find(|(name, _)| *name == p.name)
                .map(|(_, service)| *service)
                .or_else(|| Service::parse(&p.name))
                .ok_or_else(|| {
                    format!(
                        "passed socket '{}' has no service: name it count, ack, echo or time \
                         (FileDescriptorName=) or map it with --activated {}=SERVICE",
                        p.name, p.name
                    )
                })?;
            let kind = p.socket.r#type().map_err(|e| e.to_string())?;
            let transport = if kind == Type::STREAM {
                Transport::Tcp
            } else if kind == Type::DGRAM {
                Transport::Udp
            } else {
                return Err(format!("passed socket '{}' is neither TCP nor UDP", p.name));
            };
            if transport == Transport::Tcp && !p.socket.is_listener().unwrap_or(false) {
                return Err(format!(
                    "passed socket '{}' is not listening (use Accept=no in the socket unit)",
                    p.name
                ));
            }
            if !service.runs_on(transport) {
                return Err(format!(
                    "passed socket '{}': {service} runs on tcp only",
                    p.name
                ));
            }
            p.socket.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(Activated {
                socket: p.socket,
                transport,
                service,
            })
        })
        .collect()
}

/// Tells the service manager how the daemon is doing (when there is one listening).
#[derive(Debug)]
pub struct Notifier {
    /// Whether `NOTIFY_SOCKET` is set.
    listening: bool,
    /// How often to send `WATCHDOG=1` (half of `WatchdogSec=`), when the watchdog is on.
    pub watchdog_every: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC`/`WATCHDOG_PID` from the environment.
    pub fn from_env() -> Notifier {
        let listening = std::env::var_os("NOTIFY_SOCKET").is_some();
        Notifier {
            listening,
            watchdog_every: sd_notify::watchdog_enabled()
                .filter(|_| listening)
                .map(|limit| limit / 2),
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

    fn send(&self, states: &[NotifyState]) {
        if !self.listening {
            return;
        }
        match sd_notify::notify(states) {
            Ok(()) => debug!("told the service manager: {states:?}"),
            Err(e) => warn!("cannot notify the service manager: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Protocol};

    fn passed(name: &str, ty: Type, listen: bool) -> Passed {
        let socket = Socket::new(Domain::IPV4, ty, None).unwrap();
        socket
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        if listen {
            socket.listen(8).unwrap();
        }
        Passed {
            socket,
            name: name.to_string(),
        }
    }

    #[test]
    fn the_name_is_the_service_and_the_socket_the_transport() {
        let got = assign(
            vec![
                passed("count", Type::STREAM, true),
                passed("time", Type::DGRAM, false),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            (got[0].transport, got[0].service),
            (Transport::Tcp, Service::Count)
        );
        assert_eq!(
            (got[1].transport, got[1].service),
            (Transport::Udp, Service::Time)
        );
        assert!(got.iter().all(|a| a.socket.nonblocking().unwrap()));
    }

    #[test]
    fn the_map_names_the_service_of_other_names() {
        let map = [("web".to_string(), Service::Echo)];
        let got = assign(vec![passed("web", Type::STREAM, true)], &map).unwrap();
        assert_eq!(got[0].service, Service::Echo);
    }

    #[test]
    fn unusable_sockets_are_refused_with_the_reason() {
        for (p, says) in [
            (passed("unknown", Type::STREAM, true), "has no service"),
            (passed("count", Type::DGRAM, false), "tcp only"),
            (passed("echo", Type::STREAM, false), "not listening"),
        ] {
            let e = assign(vec![p], &[]).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4));
        if let Ok(socket) = raw {
            let e = assign(
                vec![Passed {
                    socket,
                    name: "echo".into(),
                }],
                &[],
            )
            .unwrap_err();
            assert!(e.contains("neither TCP nor UDP"), "{e}");
        }
    }
}
