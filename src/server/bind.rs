//! Binding: every configured instance's socket (taken from a running daemon with
//! `--handover`, or bound here, and those a service manager passed), each
//! registered with the poll under its token and logged as `listening on ...`, and the parts
//! of the [`Server`] made once, before the loop runs.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::SystemTime;

use log::{debug, info, warn};
use mio::net::{TcpListener, UdpSocket};
use mio::unix::SourceFd;
use mio::{Interest, Poll, Waker};
use socket2::Socket as UnixSocket;

use super::access_files::AccessFiles;
use super::conn::Shared;
use super::console::Console;
use super::counters::{Counters, InstanceCounters};
use super::handover::Handover;
use super::lifecycle::Lifecycle;
use super::step::Stepper;
use super::table::Table;
use super::takeover::{self, Takeover};
use super::timers::LoopTimers;
use super::token::{Target, Tokens};
use super::udp::Udp;
use super::{Server, Shutdown};
use crate::clock::Clock;
use crate::config::{ranges, Config, ConfigError, Instance};
use crate::os::privileges::Plan;
use crate::os::sockets;
use crate::os::systemd::{Activated, Notifier};
use crate::policy::gate::{Gate, Rules};
use crate::proto::Transport;

/// Why `Server::bind` failed.
#[derive(Debug)]
pub enum BindError {
    /// The configuration is not usable.
    Config(ConfigError),
    /// An address could not be bound (the text names it and the reason).
    Bind(String, io::Error),
    /// The poll, waker or signal handlers could not be set up.
    Setup(io::Error),
    /// An access file cannot be used (the text names it, and its line when one is bad).
    Access(String),
    /// The sockets cannot be taken from the daemon on the handover path (the text says why).
    Handover(String),
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::Config(e) => write!(f, "{e}"),
            BindError::Access(why) | BindError::Handover(why) => f.write_str(why),
            BindError::Bind(what, e) => write!(f, "cannot bind {what}: {}", sockets::reason(e)),
            BindError::Setup(e) => write!(f, "cannot start the event loop: {}", sockets::reason(e)),
        }
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BindError::Config(e) => Some(e),
            BindError::Bind(_, e) | BindError::Setup(e) => Some(e),
            BindError::Access(_) | BindError::Handover(_) => None,
        }
    }
}

/// A bound instance's socket.
#[derive(Debug)]
pub(crate) enum Socket {
    Listener(TcpListener),
    Udp(UdpSocket),
    /// Closed when the drain began.
    Closed,
}

/// One bound instance: what it serves where, its socket, and its counters.
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) counted: InstanceCounters,
    pub(crate) socket: Socket,
}

impl AsRef<InstanceCounters> for Bound {
    fn as_ref(&self) -> &InstanceCounters {
        &self.counted
    }
}

/// The listen backlog when none is asked for, and where the number comes from: the kernel's
/// maximum (`net.core.somaxconn`, as it is, up to `i32::MAX`), so that a burst of connections
/// waits in the queue instead of being dropped and sent again a second later; when it cannot be
/// read, [`ranges::BACKLOG_FALLBACK`].
pub fn default_backlog() -> (i32, String) {
    match sockets::somaxconn() {
        Ok(max) => (max, "net.core.somaxconn".to_string()),
        Err(e) => (
            ranges::BACKLOG_FALLBACK,
            format!("net.core.somaxconn cannot be read: {}", sockets::reason(&e)),
        ),
    }
}

/// The backlog the listeners get: `--backlog` when asked, with a warning when the kernel caps
/// it lower, else [`default_backlog`].
fn listen_backlog(asked: Option<i32>) -> i32 {
    let (backlog, from) = match asked {
        Some(asked) => {
            if let Ok(max) = sockets::somaxconn() {
                if max < asked {
                    warn!(
                        "--backlog {asked} is more than net.core.somaxconn {max}: the kernel uses {max}"
                    );
                }
            }
            (asked, "--backlog".to_string())
        }
        None => default_backlog(),
    };
    debug!("listen backlog {backlog} ({from})");
    backlog
}

/// The handover socket at `path`: the one the old daemon hands over, else a new one.
fn handover_listener(
    path: &Path,
    takeover: Option<&mut Takeover>,
) -> Result<UnixSocket, BindError> {
    if let Some(fd) = takeover.and_then(|t| t.take(takeover::HANDOVER_NAME)) {
        let socket = UnixSocket::from(fd);
        socket.set_nonblocking(true).map_err(BindError::Setup)?;
        return Ok(socket);
    }
    crate::os::handover::listen(path).map_err(|e| {
        BindError::Handover(format!(
            "--handover {}: cannot listen there: {}",
            path.display(),
            sockets::reason(&e)
        ))
    })
}

impl Server {
    /// Sets up signal handling, binds every instance and logs `listening on ...` for each,
    /// with the real port when port 0 was asked for.
    pub fn bind(config: Config) -> Result<Server, BindError> {
        Server::bind_with(config, Vec::new())
    }

    /// As [`Server::bind`], and serves the sockets passed by socket activation as well.
    pub fn bind_with(config: Config, activated: Vec<Activated>) -> Result<Server, BindError> {
        config.validate().map_err(BindError::Config)?;
        if config.instances.is_empty() && activated.is_empty() {
            return Err(BindError::Config(ConfigError::NoService));
        }
        if config.handover.is_some() && !activated.is_empty() {
            return Err(BindError::Config(ConfigError::HandoverWithPassedSockets));
        }
        let count = config.instances.len() + activated.len();
        if count > usize::from(u16::MAX) {
            return Err(BindError::Config(ConfigError::TooManyInstances(count)));
        }
        match sockets::raise_fd_limit() {
            Ok(limit) => debug!("open-file limit: {limit}"),
            Err(e) => warn!("cannot raise the open-file limit: {}", sockets::reason(&e)),
        }
        let tokens = Tokens::new(count);
        let poll = Poll::new().map_err(BindError::Setup)?;
        let waker =
            Waker::new(poll.registry(), tokens.token(Target::Waker)).map_err(BindError::Setup)?;
        let signals = if config.handle_signals {
            Some(super::lifecycle::catch_signals(&poll, tokens).map_err(BindError::Setup)?)
        } else {
            None
        };

        let access_files = AccessFiles::open(
            &config.allow,
            &config.deny,
            &config.allow_files,
            &config.deny_files,
        )
        .map_err(BindError::Access)?;
        let access = access_files.load().map_err(BindError::Access)?;
        if !access_files.is_empty() {
            info!("access lists: {} entries in force", access.len());
        }

        // The sockets a running daemon hands over, when it does.
        let handover_uid = match &config.handover {
            Some(_) => Some(
                Plan::serving_uid(&config.privileges)
                    .map_err(|e| BindError::Handover(e.to_string()))?,
            ),
            None => None,
        };
        let mut takeover = match (&config.handover, handover_uid) {
            (Some(path), Some(uid)) => {
                let takeover = Takeover::connect(path, uid).map_err(BindError::Handover)?;
                if takeover.is_none() {
                    info!(
                        "handover: no daemon on {}: binding every socket",
                        path.display()
                    );
                }
                takeover
            }
            _ => None,
        };

        // The configured instances' sockets (taken or bound), then the passed ones.
        let tcp = config
            .instances
            .iter()
            .any(|i| i.transport == Transport::Tcp);
        let backlog = if tcp {
            listen_backlog(config.sockets.backlog)
        } else {
            0
        };
        let mut opened = Vec::with_capacity(count);
        let mut taken = Vec::new();
        for asked in &config.instances {
            if let Some(t) = &mut takeover {
                if let Some(fd) = t.take(&takeover::name(asked)) {
                    let socket =
                        takeover::adopt(fd, asked, &config.sockets).map_err(BindError::Handover)?;
                    taken.push(opened.len());
                    let socket = match asked.transport {
                        Transport::Tcp => Socket::Listener(TcpListener::from_std(socket.into())),
                        Transport::Udp => Socket::Udp(UdpSocket::from_std(socket.into())),
                    };
                    opened.push((
                        asked.service,
                        socket,
                        Some(format!("handed over by pid {}", t.pid())),
                    ));
                    continue;
                }
            }
            let cannot = |e| BindError::Bind(format!("{} {}", asked.transport, asked.addr), e);
            let socket = match asked.transport {
                Transport::Tcp => Socket::Listener(
                    sockets::tcp_listener(asked.addr, &config.sockets, backlog).map_err(cannot)?,
                ),
                Transport::Udp => {
                    Socket::Udp(sockets::udp_socket(asked.addr, &config.sockets).map_err(cannot)?)
                }
            };
            opened.push((asked.service, socket, None));
        }
        for a in activated {
            let socket = match a.transport {
                Transport::Tcp => Socket::Listener(TcpListener::from_std(a.socket.into())),
                Transport::Udp => Socket::Udp(UdpSocket::from_std(a.socket.into())),
            };
            opened.push((a.service, socket, Some(format!("passed by {}", a.by))));
        }
        let mut instances = Vec::with_capacity(count);
        for (i, (service, mut socket, origin)) in opened.into_iter().enumerate() {
            let token = tokens.token(Target::Instance(i));
            let registry = poll.registry();
            let (transport, addr) = match &mut socket {
                Socket::Listener(s) => (
                    Transport::Tcp,
                    registry
                        .register(s, token, Interest::READABLE)
                        .and_then(|()| s.local_addr()),
                ),
                Socket::Udp(s) => (
                    Transport::Udp,
                    registry
                        .register(s, token, Interest::READABLE)
                        .and_then(|()| s.local_addr()),
                ),
                Socket::Closed => (Transport::Tcp, Err(io::ErrorKind::NotConnected.into())),
            };
            let instance = Instance {
                transport,
                service,
                addr: addr.map_err(BindError::Setup)?,
            };
            match origin {
                Some(origin) => info!("listening on {instance}, {origin}"),
                None => info!("listening on {instance}"),
            }
            instances.push(Bound {
                counted: InstanceCounters {
                    instance,
                    counters: Counters::default(),
                },
                socket,
            });
        }
        let handover = match (&config.handover, handover_uid) {
            (Some(path), Some(uid)) => {
                let socket = handover_listener(path, takeover.as_mut())?;
                let token = tokens.token(Target::Handover);
                poll.registry()
                    .register(
                        &mut SourceFd(&socket.as_raw_fd()),
                        token,
                        Interest::READABLE,
                    )
                    .map_err(BindError::Setup)?;
                debug!("handover: serving {} for the next upgrade", path.display());
                Some(Handover::new(path.clone(), socket, uid))
            }
            _ => None,
        };
        // Every socket is taken or bound: only now do the taken ones get this daemon's
        // options, so that one that failed before left them as the running daemon has them.
        for &i in &taken {
            let socket = match &instances[i].socket {
                Socket::Listener(s) => socket2::SockRef::from(s),
                Socket::Udp(s) => socket2::SockRef::from(s),
                Socket::Closed => continue,
            };
            takeover::set_again(&socket, &config.instances[i], &config.sockets, backlog)
                .map_err(BindError::Handover)?;
        }
        let udp_ports = instances
            .iter()
            .map(|b| b.counted.instance)
            .filter(|i| i.transport == Transport::Udp)
            .map(|i| i.addr.port())
            .collect();
        let console = config
            .console
            .then(|| Console::open(poll.registry(), tokens.token(Target::Console)));
        let stepper = config
            .step
            .then(|| Stepper::open(poll.registry(), tokens.token(Target::Console)))
            .flatten();
        let gate = Gate::new(&Rules {
            allow: &access.allow,
            deny: &access.deny,
            proxy_from: &config.proxy_from,
            proxy_all: config.proxy_protocol,
            max_per_source: config.max_per_source,
            max_rate: config.max_rate,
            udp_rate: config.udp_rate,
        });
        Ok(Server {
            poll,
            tokens,
            instances,
            conns: Table::new(),
            gate,
            shared: Shared::new(&config),
            udp: Udp::new(udp_ports),
            loop_timers: LoopTimers::default(),
            clock: Clock::new(),
            signals,
            shutdown: Shutdown {
                waker: Arc::new(waker),
                requests: Arc::new(AtomicUsize::new(0)),
            },
            handled_requests: 0,
            lifecycle: Lifecycle::Serving,
            starved: false,
            accept_pauses: 0,
            reloads: 0,
            reload_failures: 0,
            access_files,
            start_time: SystemTime::now(),
            notifier: Notifier::from_env(),
            console,
            console_again: false,
            deserted: false,
            stepper,
            handover,
            takeover,
            config,
        })
    }
}
