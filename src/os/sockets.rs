//! The four set-up steps of a server socket (create, set options, bind, listen), with socket2.
//!
//! Options that a connection inherits from its listener on Linux (SO_KEEPALIVE, TCP_NODELAY,
//! SO_RCVBUF, SO_SNDBUF) are set once on the listener, so accepting costs no extra system
//! calls.
//!
//! Also two things asked of the host: its interfaces' broadcast addresses, and a higher
//! open-file limit.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use log::debug;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::SocketOptions;
use crate::proto::Transport;

/// A non-blocking TCP listener on `addr`, listening with `backlog`.
pub fn tcp_listener(
    addr: SocketAddr,
    opts: &SocketOptions,
    backlog: i32,
) -> io::Result<mio::net::TcpListener> {
    let socket = configured(addr, Type::STREAM, Protocol::TCP, opts)?;
    socket.set_reuse_address(opts.reuse_address)?;
    if opts.keepalive {
        socket.set_keepalive(true)?;
    }
    if opts.nodelay {
        socket.set_tcp_nodelay(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// The options that may change on a socket another daemon bound (`--handover`), set again as
/// `opts` asks; a listener listens again, with `backlog`. The buffer sizes are set only when
/// asked for (the system's default cannot be asked for again).
pub fn set_again(
    socket: &Socket,
    transport: Transport,
    opts: &SocketOptions,
    backlog: i32,
) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    if let Some(size) = opts.recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    if let Some(size) = opts.send_buffer {
        socket.set_send_buffer_size(size)?;
    }
    if transport == Transport::Tcp {
        socket.set_reuse_address(opts.reuse_address)?;
        socket.set_keepalive(opts.keepalive)?;
        socket.set_tcp_nodelay(opts.nodelay)?;
        socket.listen(backlog)?;
    }
    Ok(())
}

/// `net.core.somaxconn`, the kernel's cap on a listen backlog (up to `i32::MAX`).
pub fn somaxconn() -> io::Result<i32> {
    let text = std::fs::read_to_string("/proc/sys/net/core/somaxconn")?;
    let max: i64 = text
        .trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("'{}'", text.trim())))?;
    Ok(max.clamp(1, i64::from(i32::MAX)) as i32)
}

/// A non-blocking UDP socket bound to `addr`, without SO_REUSEADDR: UDP has no TIME_WAIT for
/// it to help with, and on Linux it would let any local user bind the same address and port
/// and take the daemon's datagrams. SO_REUSEPORT (`--reuseport`) shares a port only between
/// sockets of one user.
pub fn udp_socket(addr: SocketAddr, opts: &SocketOptions) -> io::Result<mio::net::UdpSocket> {
    let socket = configured(addr, Type::DGRAM, Protocol::UDP, opts)?;
    socket.bind(&addr.into())?;
    Ok(mio::net::UdpSocket::from_std(socket.into()))
}

/// Steps one and two: a non-blocking, close-on-exec socket with the options both kinds share.
/// SO_REUSEADDR is not among them: TCP listeners only.
fn configured(
    addr: SocketAddr,
    ty: Type,
    protocol: Protocol,
    opts: &SocketOptions,
) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(protocol))?;
    socket.set_nonblocking(true)?;
    if opts.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        // Set either way: the system default (net.ipv6.bindv6only) may be either.
        socket.set_only_v6(opts.ipv6_only)?;
    }
    if let Some(device) = &opts.bind_device {
        socket.bind_device(Some(device.as_bytes()))?;
    }
    if let Some(size) = opts.recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    if let Some(size) = opts.send_buffer {
        socket.set_send_buffer_size(size)?;
    }
    Ok(socket)
}

/// An error's text the way a log line wants it: `address already in use`, without the
/// `(os error 98)` tail. The errors a daemon meets when it starts have fixed texts (the C
/// libraries word them differently: musl says `address in use`); others take the C library's.
pub fn reason(err: &io::Error) -> String {
    let fixed = match err.raw_os_error() {
        Some(libc::EADDRINUSE) => "address already in use",
        Some(libc::EADDRNOTAVAIL) => "cannot assign requested address",
        Some(libc::EACCES) => "permission denied",
        Some(libc::EPERM) => "operation not permitted",
        Some(libc::ENODEV) => "no such device",
        Some(libc::EMFILE) => "too many open files",
        Some(libc::ENFILE) => "too many open files in system",
        Some(libc::ECONNREFUSED) => "connection refused",
        _ => "",
    };
    if !fixed.is_empty() {
        return fixed.to_string();
    }
    let text = err.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The broadcast addresses of the host's IPv4 interfaces, sorted; empty when the system
/// cannot list them. The daemon reads them once, when the first datagram arrives: interfaces
/// set up later are not seen. A datagram from the broadcast address of one of those is still
/// not answered, as the kernel refuses to send to a broadcast address without SO_BROADCAST,
/// which the daemon never sets; it is counted as dropped, only without the loop guard's log
/// line.
pub fn interface_broadcasts() -> Vec<Ipv4Addr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list it allocated into `list`, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        debug!(
            "cannot list the interfaces' broadcast addresses: {}",
            reason(&io::Error::last_os_error())
        );
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut at = list;
    // SAFETY: each entry is valid until freeifaddrs; `ifa_next` is null after the last.
    while let Some(ifa) = unsafe { at.as_ref() } {
        at = ifa.ifa_next;
        // With IFF_BROADCAST set, `ifa_ifu` is the broadcast address (else the peer's).
        let (addr, brd) = (ifa.ifa_addr, ifa.ifa_ifu);
        if ifa.ifa_flags & libc::IFF_BROADCAST as libc::c_uint == 0
            || addr.is_null()
            || brd.is_null()
        {
            continue;
        }
        // SAFETY: both point at sockaddrs, valid until freeifaddrs.
        let families = unsafe { [(*addr).sa_family, (*brd).sa_family] };
        if families.iter().any(|&f| i32::from(f) != libc::AF_INET) {
            continue;
        }
        // SAFETY: an AF_INET sockaddr is a sockaddr_in.
        let sin = unsafe { &*(brd as *const libc::sockaddr_in) };
        found.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found.sort_unstable();
    found.dedup();
    debug!("interfaces' broadcast addresses: {found:?}");
    found
}

/// Raises the soft open-file limit to the hard limit, so the daemon can hold as many
/// connections as the system allows it. Returns the limit now in force.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        lim.rlim_cur = lim.rlim_max;
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is 32 bits on some targets
    Ok(lim.rlim_cur as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_the_plain_lowercase_text() {
        let e = io::Error::from_raw_os_error(libc::EADDRINUSE);
        assert_eq!(reason(&e), "address already in use");
        let e = io::Error::from_raw_os_error(libc::ENODEV);
        assert_eq!(reason(&e), "no such device");
        // Others: the C library's words, lower-cased, without the errno tail.
        let text = reason(&io::Error::from_raw_os_error(libc::ETIMEDOUT));
        assert!(
            text.contains("timed out") && !text.contains("os error"),
            "{text}"
        );
        assert!(text.starts_with(char::is_lowercase), "{text}");
        let e = io::Error::other("Custom thing");
        assert_eq!(reason(&e), "custom thing");
    }

    #[test]
    fn listener_has_reuseaddr_by_default_and_not_when_asked() {
        let on = tcp_listener(
            "127.0.0.1:0".parse().unwrap(),
            &SocketOptions::default(),
            128,
        )
        .unwrap();
        assert!(socket2::SockRef::from(&on).reuse_address().unwrap());
        let opts = SocketOptions {
            reuse_address: false,
            ..SocketOptions::default()
        };
        let off = tcp_listener("127.0.0.1:0".parse().unwrap(), &opts, 128).unwrap();
        assert!(!socket2::SockRef::from(&off).reuse_address().unwrap());
    }

    #[test]
    fn udp_sockets_never_have_reuseaddr_and_keep_reuseport() {
        let addr = "127.0.0.1:0".parse().unwrap();
        let opts = SocketOptions::default();
        assert!(opts.reuse_address, "on by default, for TCP listeners");
        let plain = udp_socket(addr, &opts).unwrap();
        assert!(!socket2::SockRef::from(&plain).reuse_address().unwrap());
        let opts = SocketOptions {
            reuse_port: true,
            ..opts
        };
        let shared = udp_socket(addr, &opts).unwrap();
        let s = socket2::SockRef::from(&shared);
        assert!(!s.reuse_address().unwrap());
        assert!(s.reuse_port().unwrap());
    }

    #[test]
    fn ipv6_any_is_dual_stack_unless_ipv6_only() {
        let opts = SocketOptions::default();
        let Ok(dual) = udp_socket("[::]:0".parse().unwrap(), &opts) else {
            return; // no IPv6 on this machine
        };
        assert!(!socket2::SockRef::from(&dual).only_v6().unwrap());
        let opts = SocketOptions {
            ipv6_only: true,
            ..opts
        };
        let only = udp_socket("[::]:0".parse().unwrap(), &opts).unwrap();
        assert!(socket2::SockRef::from(&only).only_v6().unwrap());
    }

    #[test]
    fn options_reach_the_socket() {
        let opts = SocketOptions {
            keepalive: true,
            nodelay: true,
            recv_buffer: Some(65536),
            reuse_port: true,
            ..SocketOptions::default()
        };
        let l = tcp_listener("127.0.0.1:0".parse().unwrap(), &opts, 128).unwrap();
        let s = socket2::SockRef::from(&l);
        assert!(s.keepalive().unwrap());
        assert!(s.tcp_nodelay().unwrap());
        assert!(s.reuse_port().unwrap());
        // Linux doubles the value it is given.
        assert!(s.recv_buffer_size().unwrap() >= 65536);
    }

    #[test]
    fn the_interfaces_broadcast_addresses_are_listed_sorted() {
        let found = interface_broadcasts();
        assert!(found.windows(2).all(|w| w[0] < w[1]), "{found:?}");
        // Loopback has no broadcast address.
        assert!(!found.iter().any(|a| a.is_loopback()), "{found:?}");
    }

    #[test]
    fn the_fd_limit_is_raised_to_the_hard_limit() {
        let now = raise_fd_limit().unwrap();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
        assert_eq!(lim.rlim_cur, lim.rlim_max);
        #[allow(clippy::unnecessary_cast)]
        let cur = lim.rlim_cur as u64;
        assert_eq!(now, cur);
    }
}
