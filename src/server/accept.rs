//! Accepting: new connections taken from each listener until `WouldBlock`, judged by the gate,
//! counted, and entered in the connection table with their first words sent; and the same
//! judgement again for a connection whose PROXY header names its real client.
//!
//! Running out of descriptors (`EMFILE`, `ENFILE`) or memory pauses accepting until a
//! connection closes or a second has passed, so the loop never spins on an error it cannot
//! clear; the connections waiting meanwhile stay in the listen backlog.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use log::{debug, error, info, trace, warn};

use super::bind::Socket;
use super::conn::{Conn, State, Status};
use super::counters::NO_METRICS;
use super::timers::LoopTimer;
use super::token::Target;
use super::Server;
use crate::clock::{after, Millis};
use crate::config::Instance;
use crate::os::sockets;
use crate::policy::gate::Admission;
use crate::proto::proxy::Header;
use crate::proto::{display_peer, Ack, Service, Session, Step};

/// How long accepting stays paused after running out of file descriptors, unless a
/// connection closes first.
const ACCEPT_RETRY: Duration = Duration::from_secs(1);

impl Server {
    /// Takes every connection waiting on instance `i`'s listener.
    pub(super) fn accept_until_would_block(&mut self, i: usize, now: Millis) {
        if self.loop_timers.is_armed(LoopTimer::AcceptRetry) {
            return;
        }
        // Failures of single connections in a row. Each is skipped, but not without end: one
        // that takes nothing from the backlog (a security module's refusal) would come back
        // at once, for ever.
        let mut failed = 0;
        loop {
            let Socket::Listener(listener) = &self.instances[i].socket else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    failed = 0;
                    if std::mem::take(&mut self.starved) {
                        info!("accepting again");
                    }
                    self.admit(stream, peer, i, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    trace!("accept -> WouldBlock: the backlog is empty, back to the poll");
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if out_of_descriptors(&e) => {
                    self.accept_pauses += 1;
                    return self.pause_accepting(i, &e, now);
                }
                Err(e) if never_accepts_again(&e) => return self.retire(i, &e),
                // The connection died in the backlog, or was refused: skip it.
                Err(e) => {
                    debug!(
                        "{}: accept failed: {}",
                        self.instances[i].counted.instance,
                        sockets::reason(&e)
                    );
                    failed += 1;
                    if failed == super::ACCEPT_EVERY {
                        return self.pause_accepting(i, &e, now);
                    }
                }
            }
        }
    }

    /// Stops accepting for `ACCEPT_RETRY`, or until a connection closes, after `e` on
    /// instance `i`'s listener: accepting again at once would fail the same way.
    fn pause_accepting(&mut self, i: usize, e: &io::Error, now: Millis) {
        let instance = self.instances[i].counted.instance;
        let reason = sockets::reason(e);
        if std::mem::replace(&mut self.starved, true) {
            debug!("{instance}: still cannot accept: {reason}");
        } else {
            warn!("{instance}: cannot accept: {reason}; pausing accepts until a connection closes");
        }
        self.loop_timers
            .arm(LoopTimer::AcceptRetry, after(now, ACCEPT_RETRY));
    }

    /// Closes instance `i`'s listener, which can never accept again (`e` says why): it leaves
    /// the poll first, as another process (an inetd, the service manager) may hold the same
    /// socket, and closing this descriptor alone would leave it there.
    fn retire(&mut self, i: usize, e: &io::Error) {
        let instance = self.instances[i].counted.instance;
        let closed = std::mem::replace(&mut self.instances[i].socket, Socket::Closed);
        if let Socket::Listener(mut listener) = closed {
            if let Err(e) = self.poll.registry().deregister(&mut listener) {
                debug!("{instance}: leaving the poll: {}", sockets::reason(&e));
            }
        }
        error!(
            "{instance}: cannot accept: {}; the listener can never accept again and is closed",
            sockets::reason(e)
        );
        self.stop_if_deserted();
    }

    /// Accepts again on every listener after a pause (a descriptor was freed, or the retry
    /// time came). The backlog may hold connections no new event will announce.
    pub(super) fn resume_accepting(&mut self, now: Millis) {
        if self.loop_timers.disarm(LoopTimer::AcceptRetry) {
            trace!("trying to accept again");
            self.accept_on_every_listener(now);
        }
    }

    pub(super) fn accept_on_every_listener(&mut self, now: Millis) {
        for i in 0..self.instances.len() {
            if matches!(self.instances[i].socket, Socket::Listener(_)) {
                self.accept_until_would_block(i, now);
            }
        }
    }

    /// A new connection from `peer` on instance `i`: judged, counted, and (unless denied)
    /// entered in the table with its first words sent.
    fn admit(&mut self, stream: mio::net::TcpStream, peer: SocketAddr, i: usize, now: Millis) {
        let instance = self.instances[i].counted.instance;
        let peer = display_peer(peer);
        let proxy = self.gate.expects_header(peer.ip());
        let busy = self.conns.counted() >= self.config.max_connections;
        // A listed proxy is judged by `--allow`/`--deny` now, and its client when the header
        // names it; the per-source limits are the client's, not the proxy's.
        let admission = self.gate.admit(peer.ip(), now, proxy, busy);
        if !self.count_admission(i, peer, admission) {
            return;
        }
        // The key the connection will have: nothing else enters the table until it does.
        let key = self.conns.vacant_key();
        trace!(
            "accept -> conn {key} from {peer} (fd {}) on {instance}",
            std::os::fd::AsRawFd::as_raw_fd(&stream)
        );
        let waits_for_header = proxy && admission.serves();
        let opening =
            (!waits_for_header).then(|| self.open_session(key, instance, peer, admission));
        let mut cx = self.shared.lend(false, &NO_METRICS, now);
        let opened = match opening {
            None => Ok(Conn::awaiting_header(key, stream, &mut cx)),
            Some((session, opened)) => Conn::open(key, stream, session, opened, &mut cx),
        }
        .and_then(|mut conn| {
            conn.register(self.poll.registry(), self.tokens.token(Target::Conn(key)))?;
            Ok(conn)
        });
        let conn = match opened {
            Ok(conn) => conn,
            Err(e) => {
                debug!("{peer}: gone at once: {}", sockets::reason(&e));
                if let Admission::Serve(Some(source)) = admission {
                    self.gate.release(source);
                }
                return;
            }
        };
        trace!("conn {key}: registered with the poll, edge-triggered: it reports each change of readiness once");
        let answered = conn.state() == State::Answered;
        // Instances are numbered by u16: `Server::bind` refuses more.
        let inserted = self
            .conns
            .insert(conn, i as u16, waits_for_header.then_some(peer));
        debug_assert_eq!(inserted, key);
        match admission {
            Admission::Serve(_) if waits_for_header => {
                debug!("conn {key}: from the proxy {peer} on {instance}: its PROXY header first")
            }
            Admission::Serve(holds) => {
                self.serve(i, key, holds);
                debug!("conn {key}: accepted from {peer} on {instance}");
            }
            _ => debug!(
                "conn {key}: turned away {peer} ({admission:?}): {} connections held",
                self.conns.counted()
            ),
        }
        self.rearm_exit_idle(now);
        if answered {
            // Everything was said at open (`time`, or a refusal): go on to the graceful close.
            self.pump(key, now);
        } else {
            // The poll reports input that is already there when the socket is added.
            self.after_pump(key, Status::Open, now);
        }
    }

    /// Counts what `admission` did to a connection from `peer` on instance `i`; returns
    /// whether it goes on (a denied one, and a refusal past `--max-refusals`, end here).
    fn count_admission(&mut self, i: usize, peer: SocketAddr, admission: Admission) -> bool {
        let instance = self.instances[i].counted.instance;
        let counters = &mut self.instances[i].counted.counters;
        match admission {
            Admission::Serve(_) => return true,
            Admission::Denied => {
                // A denied host learns nothing: the close is all it gets.
                counters.denied += 1;
                debug!("{peer}: denied on {instance}: closed with no message");
                return false;
            }
            Admission::Limited(_) => counters.limited += 1,
            Admission::Busy => counters.refused += 1,
        }
        if self.conns.refusing() >= self.config.max_refusals {
            // Lingering refusals hold descriptors too: past their cap, a refusal is a close.
            debug!(
                "{peer}: turned away silently ({admission:?}): {} connections held and {} refusals lingering",
                self.conns.counted(),
                self.conns.refusing()
            );
            return false;
        }
        true
    }

    /// Counts connection `key` on instance `i` as served, holding a place for `holds`.
    fn serve(&mut self, i: usize, key: usize, holds: Option<crate::policy::sources::SourceKey>) {
        self.instances[i].counted.counters.served += 1;
        self.conns.hold(key, holds);
    }

    /// The session for connection `key` of `instance` from `peer`, after `admission`, with
    /// its first words in the shared output buffer.
    fn open_session(
        &mut self,
        key: usize,
        instance: Instance,
        peer: SocketAddr,
        admission: Admission,
    ) -> (Session, Step) {
        let out = &mut self.shared.out;
        match admission {
            Admission::Busy => Session::busy(self.config.max_connections, out),
            Admission::Limited(held) => Session::limited(held, out),
            Admission::Serve(_) | Admission::Denied => match &mut self.console {
                Some(console) if instance.service == Service::Ack && console.is_open() => {
                    let number = console.next_number();
                    trace!("conn {key}: the console's connection {number}");
                    (Session::Ack(Ack::numbered(number)), Step::NeedMore)
                }
                _ => Session::open(
                    instance.service,
                    peer,
                    SystemTime::now(),
                    self.config.time_epoch,
                    out,
                ),
            },
        }
    }

    /// Connection `key` read its PROXY header: the client it names (or, for a health check,
    /// the proxy itself) is judged and served as if it had connected directly.
    pub(super) fn on_header(&mut self, key: usize, header: Header, now: Millis) {
        let Some(proxy) = self.conns.take_proxy(key) else {
            return self.close(key, "a PROXY header from no known proxy");
        };
        let i = self.conns.instance(key);
        let instance = self.instances[i].counted.instance;
        let (peer, health_check) = match header {
            Header::Proxied { source, .. } => (display_peer(source), false),
            Header::Local => (proxy, true),
        };
        debug!(
            "conn {key}: the PROXY header from {proxy} {}",
            if health_check {
                "is a health check".to_string()
            } else {
                format!("names {peer}")
            }
        );
        let admission = self.gate.admit(peer.ip(), now, health_check, false);
        match admission {
            Admission::Serve(_) if health_check => {
                self.instances[i].counted.counters.health_checks += 1
            }
            Admission::Serve(holds) => self.serve(i, key, holds),
            _ => {
                if !self.count_admission(i, peer, admission) {
                    return self.close(key, "turned away after its PROXY header");
                }
                // A refusal, no longer a connection served.
                self.conns.now_refusing();
            }
        }
        let (session, opened) = self.open_session(key, instance, peer, admission);
        self.drive(key, now, |conn, cx| conn.begin(key, session, opened, cx));
    }
}

/// Whether an accept error means the process or system is out of descriptors or memory, so
/// that accepting again at once would fail the same way.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Whether an accept error is the listener's own, for good: it no longer listens (`EINVAL`:
/// shut down by another holder of the socket), or it is no listening stream socket at all
/// (`EBADF`, `ENOTSOCK`, `EOPNOTSUPP`, `EFAULT`). On Linux none of these concerns a single
/// connection.
fn never_accepts_again(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EBADF | libc::ENOTSOCK | libc::EOPNOTSUPP | libc::EFAULT)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_that_no_longer_listens_is_told_from_a_failed_connection() {
        let error = io::Error::from_raw_os_error;
        for broken in [libc::EINVAL, libc::EBADF, libc::ENOTSOCK, libc::EOPNOTSUPP] {
            assert!(never_accepts_again(&error(broken)), "{broken}");
            assert!(!out_of_descriptors(&error(broken)), "{broken}");
        }
        for one in [libc::ECONNABORTED, libc::EPERM, libc::EPROTO, libc::EMFILE] {
            assert!(!never_accepts_again(&error(one)), "{one}");
        }
    }

    #[test]
    fn descriptor_exhaustion_is_recognised() {
        assert!(out_of_descriptors(&io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(out_of_descriptors(&io::Error::from_raw_os_error(
            libc::ENFILE
        )));
        assert!(!out_of_descriptors(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
    }
}
