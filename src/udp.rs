//! The UDP services: which datagrams deserve an answer (pure functions), and the receive loop
//! that answers them.
//!
//! Two echo-style servers pointed at each other bounce one datagram forever (CERT
//! CA-1996-01). A datagram is dropped, never answered, when its source port is 0, a classic
//! reflecting service, or one of this daemon's own UDP ports, or when its source address
//! cannot be a single honest sender (unspecified, multicast, broadcast). The models are
//! FreeBSD inetd's `check_loop`, NetBSD's `port_good_dg` and OpenBSD's `dg_badinput`.
//!
//! Datagrams come and go in batches (`mmsg.rs`): one system call receives up to 16, one
//! sends their answers.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::SystemTime;

use log::{debug, info, trace};

use crate::config::{Epoch, Instance, Service};
use crate::logbytes::Escaped;
use crate::mmsg::{Datagrams, Payload, BATCH};
use crate::session::time_value;

/// Why a datagram from `src` must not be answered, or `None` when it may be.
/// `own_ports` are the ports of this daemon's UDP services.
pub fn reflection_risk(src: SocketAddr, own_ports: &[u16]) -> Option<&'static str> {
    let port = src.port();
    if port == 0 {
        return Some("source port 0");
    }
    // Services that answer whatever they receive: echo, discard, daytime, chargen, time.
    if matches!(port, 7 | 9 | 13 | 19 | 37) {
        return Some("source port of a reflecting service");
    }
    if own_ports.contains(&port) {
        return Some("source port of one of our own services");
    }
    match src.ip().to_canonical() {
        IpAddr::V4(ip) if ip.is_unspecified() => Some("unspecified source address"),
        IpAddr::V4(ip) if ip.is_multicast() => Some("multicast source address"),
        IpAddr::V4(ip) if ip == Ipv4Addr::BROADCAST => Some("broadcast source address"),
        IpAddr::V6(ip) if ip.is_unspecified() => Some("unspecified source address"),
        IpAddr::V6(ip) if ip.is_multicast() => Some("multicast source address"),
        _ => None,
    }
}

/// The answer of `service` to `datagram`, or `None` when there is none (an empty datagram to
/// `echo`). `time` is the 4-byte time value, used by `time` only.
pub fn reply<'a>(service: Service, datagram: &[u8], time: &'a [u8; 4]) -> Option<Payload<'a>> {
    match service {
        Service::Echo if datagram.is_empty() => None,
        Service::Time => Some(Payload::Bytes(time)),
        _ => Some(Payload::Same),
    }
}

/// How many datagrams one `serve` call answered and dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub answered: u64,
    pub dropped: u64,
}

/// Remembers which sources already had a drop logged at `info`, so a storm logs once.
/// Bounded: past `LIMIT` sources it forgets them all and starts again.
#[derive(Debug, Default)]
pub struct DropLog {
    seen: HashSet<SocketAddr>,
}

impl DropLog {
    const LIMIT: usize = 1024;

    fn log(&mut self, src: SocketAddr, why: &str, instance: &Instance) {
        if self.seen.len() >= Self::LIMIT {
            self.seen.clear();
        }
        if self.seen.insert(src) {
            info!(
                "{instance}: dropped datagram from {src}: {why} (further drops from it at debug)"
            );
        } else {
            debug!("{instance}: dropped datagram from {src}: {why}");
        }
    }
}

/// How many batches one call may take before it lets the loop serve others.
const TURN: usize = 8;

/// Receives on one UDP service's socket until it would block (or its turn is over),
/// answering what deserves an answer, a batch at a time. Returns the tally and whether the
/// socket is drained (when not, the loop must call again before it sleeps).
pub fn serve(
    socket: &mio::net::UdpSocket,
    instance: &Instance,
    batch: &mut Datagrams,
    epoch: Epoch,
    own_ports: &[u16],
    drops: &mut DropLog,
) -> (Tally, bool) {
    let fd = socket.as_raw_fd();
    let mut tally = Tally::default();
    for _ in 0..TURN {
        let n = match batch.receive(fd) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (tally, true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // An error queued on the socket (such as an ICMP report) is consumed by
                // reading it; the next event brings the rest.
                debug!("{instance}: receive failed: {e}");
                return (tally, true);
            }
        };
        let time = match instance.service {
            Service::Time => time_value(SystemTime::now(), epoch).to_be_bytes(),
            _ => [0; 4],
        };
        let (k, sent) = batch.answer(fd, n, |datagram, src| {
            let Some(src) = src else {
                tally.dropped += 1;
                return None;
            };
            trace!(
                "{instance}: {} bytes from {src}: {}",
                datagram.len(),
                Escaped(datagram)
            );
            if let Some(why) = reflection_risk(src, own_ports) {
                drops.log(src, why, instance);
                tally.dropped += 1;
                return None;
            }
            let payload = reply(instance.service, datagram, &time);
            if payload.is_none() {
                debug!("{instance}: empty datagram from {src}: no reply");
                tally.dropped += 1;
            }
            payload
        });
        let sent = sent.unwrap_or_else(|e| {
            // A full send buffer or an unreachable sender: UDP may lose a reply.
            debug!("{instance}: replies not sent: {e}");
            0
        });
        tally.answered += sent as u64;
        tally.dropped += (k - sent) as u64;
        if n < BATCH {
            // A short batch took everything that was waiting; a datagram that comes later
            // raises a new event.
            return (tally, true);
        }
    }
    (tally, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ordinary_senders_are_answered() {
        assert_eq!(reflection_risk(from("127.0.0.1:40000"), &[51423]), None);
        assert_eq!(reflection_risk(from("[::1]:40000"), &[51423]), None);
    }

    #[test]
    fn loop_prone_ports_are_dropped() {
        for port in [0, 7, 9, 13, 19, 37, 51423] {
            let src = SocketAddr::new("10.0.0.1".parse().unwrap(), port);
            assert!(reflection_risk(src, &[51423]).is_some(), "port {port}");
        }
    }

    #[test]
    fn addresses_that_are_not_one_sender_are_dropped() {
        for src in [
            "0.0.0.0:4000",
            "224.0.0.1:4000",
            "255.255.255.255:4000",
            "[::]:4000",
            "[ff02::1]:4000",
            "[::ffff:255.255.255.255]:4000",
            "[::ffff:224.0.0.5]:4000",
        ] {
            assert!(reflection_risk(from(src), &[]).is_some(), "{src}");
        }
    }

    #[test]
    fn replies() {
        let t = [0, 0, 0, 9];
        assert!(reply(Service::Echo, b"", &t).is_none());
        assert!(matches!(
            reply(Service::Echo, b"ab", &t),
            Some(Payload::Same)
        ));
        assert!(matches!(reply(Service::Time, b"", &t), Some(Payload::Bytes(b)) if b == t));
        assert!(matches!(reply(Service::Time, b"any", &t), Some(Payload::Bytes(b)) if b == t));
    }
}
