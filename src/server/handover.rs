//! Handing over (`--handover PATH`), the running daemon's side, in the loop: the PATH
//! listener, the one new daemon being served at a time (`proto::handover::Giver`), its
//! 10-second wait, and what happens once it is ready: the sockets it took leave this poll
//! without being closed here first (so nothing queued on them is lost), and the daemon drains
//! as on `SIGTERM`. The new daemon's side is `takeover.rs`.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;

use log::{debug, info, warn};
use mio::unix::SourceFd;
use mio::Interest;
use socket2::Socket as UnixSocket;

use super::bind::Socket;
use super::takeover::{self, HANDOVER_NAME, WAIT};
use super::timers::LoopTimer;
use super::token::Target;
use super::Server;
use crate::clock::{after, Millis};
use crate::os::handover as unix;
use crate::os::sockets::reason;
use crate::proto::handover::{Giver, Input, Message, MAX_RECORD};

/// A socket this daemon offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Offered {
    /// A bound instance's listener or UDP socket, by its index.
    Instance(usize),
    /// The PATH listener itself.
    Handover,
}

/// The new daemon being served.
#[derive(Debug)]
struct Successor {
    conn: UnixSocket,
    pid: i32,
    giver: Giver,
    /// What is offered, in order, and under which names (fixed when it connected).
    offered: Vec<Offered>,
    names: Vec<String>,
}

/// The PATH listener and the exchange under way, if any.
#[derive(Debug)]
pub(crate) struct Handover {
    path: PathBuf,
    listener: Option<UnixSocket>,
    successor: Option<Successor>,
    /// The user this daemon serves as: with root, the one trusted to take over.
    uid: u32,
}

impl Handover {
    /// Serves `listener` (bound at `path`) for the next upgrade.
    pub(crate) fn new(path: PathBuf, listener: UnixSocket, uid: u32) -> Handover {
        Handover {
            path,
            listener: Some(listener),
            successor: None,
            uid,
        }
    }

    pub(crate) fn listener_fd(&self) -> Option<RawFd> {
        self.listener.as_ref().map(AsRawFd::as_raw_fd)
    }
}

impl Server {
    /// The PATH listener is readable: each new daemon that connects is checked, and the first
    /// one trusted is served; the others are refused.
    pub(super) fn on_handover_listener(&mut self, now: Millis) {
        loop {
            let Some(handover) = &self.handover else {
                return;
            };
            let Some(listener) = &handover.listener else {
                return;
            };
            let conn = match listener.accept() {
                Ok((conn, _)) => conn,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return warn!(
                        "handover: cannot accept on {}: {}",
                        handover.path.display(),
                        reason(&e)
                    )
                }
            };
            let (uid, pid) = match unix::peer_cred(conn.as_raw_fd()) {
                Ok(cred) => cred,
                Err(e) => {
                    warn!("handover: cannot tell who connected: {}", reason(&e));
                    continue;
                }
            };
            let refusal = if !takeover::trusted(uid, handover.uid) {
                Some(format!(
                    "user {uid} is neither root nor this daemon's user ({})",
                    handover.uid
                ))
            } else if handover.successor.is_some() {
                Some(Giver::BUSY.to_string())
            } else {
                None
            };
            if let Some(why) = refusal {
                warn!("handover: refused pid {pid}: {why}");
                // Told why, if it listens; it is closed either way.
                let _ = unix::send(&conn, &Message::Refuse(why).encode(), &[]);
                continue;
            }
            self.serve_successor(conn, uid, pid, now);
        }
    }

    /// Starts the exchange with the new daemon on `conn`.
    fn serve_successor(&mut self, conn: UnixSocket, uid: u32, pid: i32, now: Millis) {
        let token = self.tokens.token(Target::Successor);
        let registered = conn.set_nonblocking(true).and_then(|()| {
            self.poll.registry().register(
                &mut SourceFd(&conn.as_raw_fd()),
                token,
                Interest::READABLE,
            )
        });
        if let Err(e) = registered {
            return warn!("handover: cannot serve pid {pid}: {}", reason(&e));
        }
        // Configured instances only (a daemon with `--handover` has no passed sockets).
        let mut offered: Vec<Offered> = (0..self.config.instances.len())
            .filter(|&i| !matches!(self.instances[i].socket, Socket::Closed))
            .map(Offered::Instance)
            .collect();
        offered.push(Offered::Handover);
        let names = offered
            .iter()
            .map(|o| match o {
                Offered::Instance(i) => takeover::name(&self.config.instances[*i]),
                Offered::Handover => HANDOVER_NAME.to_string(),
            })
            .collect();
        info!("handover: a new daemon (pid {pid}, user {uid}) connected");
        self.loop_timers.arm(LoopTimer::Handover, after(now, WAIT));
        if let Some(handover) = &mut self.handover {
            handover.successor = Some(Successor {
                conn,
                pid,
                giver: Giver::AwaitingHello,
                offered,
                names,
            });
        }
    }

    /// The new daemon's connection is readable: its records, until it would block or the
    /// exchange ends.
    pub(super) fn on_successor(&mut self, now: Millis) {
        let mut buf = [0u8; MAX_RECORD];
        while let Some(successor) = self.successor_mut() {
            let got = unix::recv(&successor.conn, &mut buf);
            let input = match &got {
                Ok((0, _)) => Input::Closed,
                Ok((n, fds)) => Input::Record(&buf[..*n], fds.len()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => Input::Closed,
            };
            self.step_successor(input, now);
        }
    }

    /// The new daemon was not ready in time.
    pub(super) fn successor_timed_out(&mut self, now: Millis) {
        self.step_successor(Input::TimedOut, now);
    }

    fn successor_mut(&mut self) -> Option<&mut Successor> {
        self.handover.as_mut()?.successor.as_mut()
    }

    /// Feeds the exchange one input, sends what it says to, and acts on its end.
    fn step_successor(&mut self, input: Input<'_>, now: Millis) {
        let pid = std::process::id();
        let fds: Vec<Option<RawFd>> =
            match self.handover.as_ref().and_then(|h| h.successor.as_ref()) {
                Some(s) => s.offered.iter().map(|o| self.offered_fd(*o)).collect(),
                None => return,
            };
        let Some(successor) = self.successor_mut() else {
            return;
        };
        for out in successor.giver.on(input, &successor.names, pid) {
            let batch: Option<Vec<RawFd>> = fds[out.sockets.clone()].iter().copied().collect();
            let sent = match batch {
                Some(batch) => unix::send(&successor.conn, &out.message.encode(), &batch),
                None => Err(io::Error::other("a socket offered was retired meanwhile")),
            };
            if let Err(e) = sent {
                successor.giver = Giver::Failed(format!("cannot send to it: {}", reason(&e)));
                break;
            }
        }
        match &successor.giver {
            Giver::AwaitingHello | Giver::AwaitingReady { .. } => {}
            Giver::Failed(why) => {
                warn!(
                    "handover: the new daemon (pid {}) failed before it was ready: {why}; serving on",
                    successor.pid
                );
                self.end_successor();
            }
            Giver::Ready(taken) => {
                let taken: Vec<Offered> = taken.iter().map(|&i| successor.offered[i]).collect();
                let why = format!("handover: the new daemon (pid {}) is ready", successor.pid);
                self.end_successor();
                self.hand_over(&taken, &why, now);
            }
        }
    }

    /// The descriptor of a socket offered, while it is open.
    fn offered_fd(&self, offered: Offered) -> Option<RawFd> {
        match offered {
            Offered::Instance(i) => match &self.instances[i].socket {
                Socket::Listener(s) => Some(s.as_raw_fd()),
                Socket::Udp(s) => Some(s.as_raw_fd()),
                Socket::Closed => None,
            },
            Offered::Handover => self.handover.as_ref()?.listener_fd(),
        }
    }

    /// The exchange is over: its connection leaves the poll and closes.
    fn end_successor(&mut self) {
        self.loop_timers.disarm(LoopTimer::Handover);
        let Some(successor) = self.handover.as_mut().and_then(|h| h.successor.take()) else {
            return;
        };
        if let Err(e) = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&successor.conn.as_raw_fd()))
        {
            debug!("handover: leaving the poll: {e}");
        }
    }

    /// The new daemon is ready with the sockets `taken`: they leave this poll, and their
    /// descriptors here close (the new daemon holds the sockets, so nothing queued on them
    /// goes); then the drain, as on `SIGTERM`, accepts what waits on the sockets not taken
    /// and closes them.
    fn hand_over(&mut self, taken: &[Offered], why: &str, now: Millis) {
        for offered in taken {
            match offered {
                Offered::Instance(i) => self.leave_poll(*i),
                Offered::Handover => self.close_handover_listener(),
            }
        }
        self.request_stop(why, now);
    }

    /// The PATH listener leaves the poll and its descriptor closes; an exchange under way
    /// ends (the new daemon sees its connection close).
    pub(super) fn close_handover_listener(&mut self) {
        self.end_successor();
        let Some(listener) = self.handover.as_mut().and_then(|h| h.listener.take()) else {
            return;
        };
        if let Err(e) = self
            .poll
            .registry()
            .deregister(&mut SourceFd(&listener.as_raw_fd()))
        {
            debug!("handover: leaving the poll: {e}");
        }
    }
}
