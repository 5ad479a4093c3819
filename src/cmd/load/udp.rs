//! The UDP scenarios, `udp-echo` and `udp-time`: C connected UDP sockets, each with one
//! request outstanding, in a closed loop until the end of the run.
//!
//! ```text
//!   Ready ──send──► Waiting ──reply──► Ready (checked: success or bad reply)
//!     │                │
//!     │                └── --timeout ──► lost; the socket is replaced ──► Ready
//!     └── send would block ──► Blocked ──writable──► Ready
//!   Ready at or after the end of the run ──► Idle
//! ```
//! Each socket is connected to the target, so it receives only the target's datagrams and an
//! ICMP port unreachable comes back as a refused `recv`. When a request is lost, its socket is
//! replaced by a fresh one on a new port, so a late answer cannot be taken for the answer to
//! the next request (a `time` reply carries nothing that would tell them apart). A request
//! lost is counted as lost, not as an error: UDP may lose datagrams.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use mio::event::Event;
use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};

use super::engine::{Cx, Workload};
use super::report::Failure;
use super::time::{Expiry, Micros, NEVER};
use crate::os::mmsg::{Datagrams, BATCH};

/// What a request is and which replies are right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Check {
    /// `udp-echo`: the payload, to come back byte for byte.
    Echo(Vec<u8>),
    /// `udp-time`: an empty datagram, answered with 4 bytes.
    Time,
}

impl Check {
    /// An echo payload of `size` bytes: the printable ASCII characters over and over.
    pub(super) fn echo(size: usize) -> Check {
        Check::Echo((b' '..=b'~').cycle().take(size).collect())
    }

    fn request(&self) -> &[u8] {
        match self {
            Check::Echo(payload) => payload,
            Check::Time => &[],
        }
    }

    fn accepts(&self, reply: &[u8]) -> bool {
        match self {
            Check::Echo(payload) => reply == payload.as_slice(),
            Check::Time => reply.len() == 4,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProbeState {
    /// Its next request goes out after this batch.
    Ready,
    /// A send would have blocked: waiting for the socket to be writable.
    Blocked,
    /// A request is out since `sent_at`.
    Waiting,
    /// The run is over for it.
    Idle,
}

/// One socket and its outstanding request.
#[derive(Debug)]
struct Probe {
    socket: UdpSocket,
    state: ProbeState,
    sent_at: Micros,
    /// The request's deadline (`NEVER` while none is out).
    due: Micros,
}

/// The UDP scenarios' workload.
#[derive(Debug)]
pub(super) struct UdpLoad {
    target: SocketAddr,
    check: Check,
    timeout: Micros,
    end: Micros,
    probes: Vec<Probe>,
    /// Probes to send for after this batch (each listed once: it is `Ready`).
    ready: Vec<usize>,
    /// Probes `Waiting` or `Blocked`.
    busy: usize,
    expiry: Expiry,
    /// Where replies are received, a batch at a time.
    received: Box<Datagrams>,
}

impl UdpLoad {
    /// `sockets` connected sockets, registered with `registry`, sending until `end`.
    pub(super) fn new(
        registry: &Registry,
        target: SocketAddr,
        check: Check,
        sockets: usize,
        timeout: Micros,
        end: Micros,
    ) -> io::Result<UdpLoad> {
        let probes = (0..sockets)
            .map(|i| {
                Ok(Probe {
                    socket: fresh_socket(registry, target, i)?,
                    state: ProbeState::Ready,
                    sent_at: 0,
                    due: NEVER,
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(UdpLoad {
            target,
            check,
            timeout,
            end,
            probes,
            ready: (0..sockets).collect(),
            busy: 0,
            expiry: Expiry::default(),
            received: Box::default(),
        })
    }

    /// Sends probe `i`'s next request, unless the run is over.
    fn send(&mut self, i: usize, cx: &mut Cx<'_>) {
        let probe = &mut self.probes[i];
        if cx.now >= self.end {
            probe.state = ProbeState::Idle;
            return;
        }
        match probe.socket.send(self.check.request()) {
            Ok(_) => {
                probe.state = ProbeState::Waiting;
                probe.sent_at = cx.now;
                probe.due = cx.now.saturating_add(self.timeout);
                self.expiry.push(probe.due, i);
                self.busy += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                probe.state = ProbeState::Blocked;
                self.busy += 1;
            }
            Err(e) => {
                // Counted, and tried again after the next poll (which does not wait).
                let failure = cx.tally.classify(&e);
                cx.tally.failure(failure);
                self.ready.push(i);
            }
        }
    }

    /// Probe `i`'s request is over (answered, failed or lost): it sends again after the batch.
    fn finish(&mut self, i: usize) {
        let probe = &mut self.probes[i];
        probe.state = ProbeState::Ready;
        probe.due = NEVER;
        self.busy -= 1;
        self.ready.push(i);
    }

    /// Reads every datagram waiting on probe `i`. One `recvmmsg` takes them all; when it
    /// brings fewer than a full batch the queue is empty, and the next datagram raises a new
    /// event, so no read is made only to find `WouldBlock`.
    fn receive(&mut self, i: usize, cx: &mut Cx<'_>) {
        loop {
            let fd = self.probes[i].socket.as_raw_fd();
            match self.received.receive(fd) {
                Ok(n) => {
                    for k in 0..n {
                        cx.tally.reached();
                        // A datagram with no request out (a duplicate) is ignored.
                        if self.probes[i].state != ProbeState::Waiting {
                            continue;
                        }
                        if self.check.accepts(self.received.payload(k)) {
                            let sent_at = self.probes[i].sent_at;
                            cx.tally.success(cx.now.saturating_sub(sent_at));
                        } else {
                            cx.tally.failure(Failure::BadReply);
                        }
                        self.finish(i);
                    }
                    if n < BATCH {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // An ICMP error for the request out (refused, unreachable). Reading it
                    // cleared it, but stop here in case the socket keeps failing.
                    if self.probes[i].state == ProbeState::Waiting {
                        let failure = cx.tally.classify(&e);
                        cx.tally.failure(failure);
                        self.finish(i);
                    }
                    return;
                }
            }
        }
    }

    /// Counts the requests whose deadline passed as lost, each socket replaced by a fresh one
    /// (kept when no fresh one can be made).
    fn expire(&mut self, cx: &mut Cx<'_>) {
        while let Some((due, i)) = self.expiry.pop_due(cx.now) {
            let probe = &mut self.probes[i];
            if probe.due != due || probe.state != ProbeState::Waiting {
                continue;
            }
            cx.tally.lost();
            match fresh_socket(cx.registry, self.target, i) {
                Ok(socket) => probe.socket = socket,
                Err(e) => {
                    let failure = cx.tally.classify(&e);
                    cx.tally.failure(failure);
                }
            }
            self.finish(i);
        }
    }
}

impl Workload for UdpLoad {
    fn on_event(&mut self, event: &Event, cx: &mut Cx<'_>) {
        let i = event.token().0;
        let Some(probe) = self.probes.get_mut(i) else {
            return;
        };
        if event.is_writable() && probe.state == ProbeState::Blocked {
            probe.state = ProbeState::Ready;
            self.busy -= 1;
            self.ready.push(i);
        }
        if event.is_readable() || event.is_error() {
            self.receive(i, cx);
        }
    }

    fn after_batch(&mut self, cx: &mut Cx<'_>) {
        self.expire(cx);
        // Sends that fail go back on the list for the next batch.
        let due = self.ready.len();
        for n in 0..due {
            let i = self.ready[n];
            self.send(i, cx);
        }
        self.ready.drain(..due);
    }

    fn wake_at(&self, now: Micros) -> Option<Micros> {
        if self.ready.is_empty() {
            self.expiry.next()
        } else {
            Some(now)
        }
    }

    fn in_flight(&self) -> usize {
        self.busy
    }

    fn is_over(&self, now: Micros) -> bool {
        now >= self.end && self.busy == 0 && self.ready.is_empty()
    }
}

/// A UDP socket on an ephemeral port, connected to `target` and registered as probe `i`.
fn fresh_socket(registry: &Registry, target: SocketAddr, i: usize) -> io::Result<UdpSocket> {
    let any = match target {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let mut socket = UdpSocket::bind(any)?;
    socket.connect(target)?;
    registry.register(
        &mut socket,
        Token(i),
        Interest::READABLE | Interest::WRITABLE,
    )?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_replies_must_match_byte_for_byte() {
        let check = Check::echo(100);
        let Check::Echo(payload) = &check else {
            panic!("an echo check");
        };
        assert_eq!(payload.len(), 100);
        assert_eq!(&payload[..3], b" !\"");
        assert!(check.accepts(payload));
        assert!(!check.accepts(&payload[..99]));
        let mut changed = payload.clone();
        changed[50] ^= 1;
        assert!(!check.accepts(&changed));
    }

    #[test]
    fn time_replies_must_be_four_bytes() {
        assert_eq!(Check::Time.request(), b"");
        assert!(Check::Time.accepts(&[1, 2, 3, 4]));
        assert!(!Check::Time.accepts(&[1, 2, 3]));
        assert!(!Check::Time.accepts(&[0; 5]));
    }
}
