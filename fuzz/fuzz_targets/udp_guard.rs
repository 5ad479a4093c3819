//! The UDP loop guard (`udp::Guard::reflection_risk`): never panics; a source port below
//! 1024 or one of our own ports is always refused, and so are unspecified, multicast and
//! broadcast sources; an IPv4-mapped IPv6 source is judged as its IPv4 address.
//!
//! Input: bytes 0-1 the source port, byte 2 the address form, then the address bytes, then
//! our own ports (two bytes each, the first byte of the rest saying how many) and the
//! broadcast addresses (four bytes each).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use oneloop::proto::datagram::Guard;

/// Takes `n` bytes off the front of `data`, when it has them.
fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if data.len() < n {
        return None;
    }
    let (head, rest) = data.split_at(n);
    *data = rest;
    Some(head)
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let Some(&[p0, p1, form]) = take(&mut data, 3) else {
        return;
    };
    let port = u16::from_be_bytes([p0, p1]);
    let ip: IpAddr = if form & 1 == 0 {
        let Some(b) = take(&mut data, 4) else { return };
        Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()
    } else {
        let Some(b) = take(&mut data, 16) else { return };
        Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap()).into()
    };
    let own_count = data.first().map_or(0, |&n| usize::from(n % 8));
    let own_ports: Vec<u16> = data
        .get(1..)
        .unwrap_or_default()
        .chunks_exact(2)
        .take(own_count)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .collect();
    let rest = data.get(1 + 2 * own_ports.len()..).unwrap_or_default();
    let mut broadcasts: Vec<Ipv4Addr> = rest
        .chunks_exact(4)
        .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        .collect();
    broadcasts.sort_unstable();
    let guard = Guard {
        own_ports: &own_ports,
        broadcasts: &broadcasts,
    };
    let src = SocketAddr::new(ip, port);
    let risk = guard.reflection_risk(src);
    if port < 1024 || own_ports.contains(&port) {
        assert!(risk.is_some(), "{src} answered");
    }
    if let IpAddr::V4(v4) = ip.to_canonical() {
        if v4.is_unspecified()
            || v4.is_multicast()
            || v4 == Ipv4Addr::BROADCAST
            || broadcasts.contains(&v4)
        {
            assert!(risk.is_some(), "{src} answered");
        }
        let mapped = SocketAddr::new(v4.to_ipv6_mapped().into(), port);
        assert_eq!(
            guard.reflection_risk(mapped),
            guard.reflection_risk(SocketAddr::new(v4.into(), port))
        );
    } else if ip.is_unspecified() || ip.is_multicast() {
        assert!(risk.is_some(), "{src} answered");
    }
});
