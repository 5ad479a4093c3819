//! What a UDP service answers: the reply to a datagram, and the loop guard that keeps a
//! datagram with a forged or looping source from being answered at all.
//!
//! Two echo-style servers pointed at each other bounce one datagram forever (CERT
//! CA-1996-01), and a forged source turns any UDP service into a reflector. A datagram is
//! dropped, never answered, when its source port is below 1024 (0 included: every well-known
//! service lives there, the reflectors echo, discard, daytime, chargen and time and the
//! amplifiers DNS, NTP and SNMP among them, while real clients send from ephemeral ports) or
//! is one of this daemon's own UDP ports, or when its source address cannot be a single
//! honest sender (unspecified, multicast, the limited broadcast address or the broadcast
//! address of one of the host's interfaces). The models are OpenBSD's `dg_badinput`, NetBSD's
//! `port_good_dg` and FreeBSD inetd's `check_loop`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::Service;

/// The bytes of a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// The datagram itself (an echo).
    Same,
    /// Other bytes.
    Bytes(&'a [u8]),
}

/// What the loop guard knows of this daemon: the ports of its UDP services, and the
/// broadcast addresses of the host's IPv4 interfaces (sorted, from
/// the interfaces the daemon looks up).
#[derive(Clone, Copy, Debug)]
pub struct Guard<'a> {
    pub own_ports: &'a [u16],
    pub broadcasts: &'a [Ipv4Addr],
}

impl Guard<'_> {
    /// Why a datagram from `src` must not be answered, or `None` when it may be.
    pub fn reflection_risk(&self, src: SocketAddr) -> Option<&'static str> {
        let port = src.port();
        if port < 1024 {
            return Some("source port below 1024");
        }
        if self.own_ports.contains(&port) {
            return Some("source port of one of our own services");
        }
        match src.ip().to_canonical() {
            IpAddr::V4(ip) if ip.is_unspecified() => Some("unspecified source address"),
            IpAddr::V4(ip) if ip.is_multicast() => Some("multicast source address"),
            IpAddr::V4(ip)
                if ip == Ipv4Addr::BROADCAST || self.broadcasts.binary_search(&ip).is_ok() =>
            {
                Some("broadcast source address")
            }
            IpAddr::V6(ip) if ip.is_unspecified() => Some("unspecified source address"),
            IpAddr::V6(ip) if ip.is_multicast() => Some("multicast source address"),
            _ => None,
        }
    }
}

/// The answer of `service` to `datagram`, or `None` when there is none (an empty datagram to
/// `echo`). `time` is the 4-byte time value, used by `time` only.
pub fn reply<'a>(service: Service, datagram: &[u8], time: &'a [u8; 4]) -> Option<Reply<'a>> {
    match service {
        Service::Echo if datagram.is_empty() => None,
        Service::Time => Some(Reply::Bytes(time)),
        _ => Some(Reply::Same),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn reflection_risk(src: SocketAddr, own_ports: &[u16]) -> Option<&'static str> {
        let broadcasts = [];
        let guard = Guard {
            own_ports,
            broadcasts: &broadcasts,
        };
        guard.reflection_risk(src)
    }

    #[test]
    fn ordinary_senders_are_answered() {
        assert_eq!(reflection_risk(from("127.0.0.1:40000"), &[51423]), None);
        assert_eq!(reflection_risk(from("[::1]:40000"), &[51423]), None);
    }

    #[test]
    fn the_broadcast_addresses_of_the_interfaces_are_dropped() {
        let broadcasts = [
            "10.77.0.255".parse().unwrap(),
            "192.0.2.127".parse().unwrap(),
        ];
        let guard = Guard {
            own_ports: &[],
            broadcasts: &broadcasts,
        };
        for src in [
            "10.77.0.255:4000",
            "192.0.2.127:4000",
            "[::ffff:10.77.0.255]:4000",
        ] {
            assert_eq!(
                guard.reflection_risk(from(src)),
                Some("broadcast source address"),
                "{src}"
            );
        }
        for src in ["10.77.0.254:4000", "10.77.1.255:4000", "192.0.2.255:4000"] {
            assert_eq!(guard.reflection_risk(from(src)), None, "{src}");
        }
    }

    #[test]
    fn source_ports_below_1024_are_dropped() {
        for port in [0, 1, 7, 9, 13, 19, 37, 53, 123, 161, 389, 1023] {
            for ip in ["10.0.0.1", "::1", "::ffff:10.0.0.1"] {
                let src = SocketAddr::new(ip.parse().unwrap(), port);
                assert_eq!(
                    reflection_risk(src, &[51423]),
                    Some("source port below 1024"),
                    "{src}"
                );
            }
        }
        for port in [1024, 1025, 32768, 60999, 65535] {
            let src = SocketAddr::new("10.0.0.1".parse().unwrap(), port);
            assert_eq!(reflection_risk(src, &[51423]), None, "port {port}");
        }
    }

    #[test]
    fn our_own_ports_are_dropped() {
        for port in [1024, 51423, 65535] {
            let src = SocketAddr::new("10.0.0.1".parse().unwrap(), port);
            assert_eq!(
                reflection_risk(src, &[1024, 51423, 65535]),
                Some("source port of one of our own services"),
                "port {port}"
            );
        }
        let src = SocketAddr::new("10.0.0.1".parse().unwrap(), 51424);
        assert_eq!(reflection_risk(src, &[1024, 51423, 65535]), None);
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
        assert!(matches!(reply(Service::Echo, b"ab", &t), Some(Reply::Same)));
        assert!(matches!(reply(Service::Time, b"", &t), Some(Reply::Bytes(b)) if b == t));
        assert!(matches!(reply(Service::Time, b"any", &t), Some(Reply::Bytes(b)) if b == t));
    }
}
