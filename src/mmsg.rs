//! Batched datagram I/O: one `recvmmsg` takes up to [`BATCH`] datagrams and one `sendmmsg`
//! answers them, so a busy UDP service makes far fewer system calls than one
//! `recvfrom`/`sendto` pair per datagram. `oneloop load` receives its UDP replies the same
//! way. All the unsafe code of the UDP path is here.
//!
//! Each datagram has its own 64 KiB slot, so the largest one (65,507 bytes over IPv4) arrives
//! whole. The slots are one zeroed allocation that the system maps lazily: a slot costs
//! memory only once a datagram has been written into it, and small datagrams touch one page.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// The most datagrams one call moves.
pub const BATCH: usize = 16;

/// Room for one datagram: any UDP payload fits.
const SLOT: usize = 64 * 1024;

/// Received datagrams and their senders, with the kernel's message headers for both
/// directions set up once: a call fills in only what changes.
///
/// The headers point into the other buffers, which are heap allocations that never grow or
/// move, so the pointers stay valid wherever the struct itself goes.
pub struct Datagrams {
    slots: Vec<u8>,
    senders: Vec<libc::sockaddr_storage>,
    lens: [usize; BATCH],
    sender_lens: [libc::socklen_t; BATCH],
    recv_iov: Vec<libc::iovec>,
    recv_hdrs: Vec<libc::mmsghdr>,
    send_iov: Vec<libc::iovec>,
    send_hdrs: Vec<libc::mmsghdr>,
}

impl std::fmt::Debug for Datagrams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datagrams").finish_non_exhaustive()
    }
}

// SAFETY: the raw pointers in the headers point only into this struct's own heap buffers, so
// moving the struct to another thread moves everything they point at with it.
unsafe impl Send for Datagrams {}

impl Default for Datagrams {
    fn default() -> Self {
        // SAFETY (all zeroed values here): sockaddr_storage, iovec and mmsghdr are plain C
        // structs for which all zeroes is a valid, empty value.
        let mut d = Datagrams {
            slots: vec![0; BATCH * SLOT],
            senders: vec![unsafe { mem::zeroed() }; BATCH],
            lens: [0; BATCH],
            sender_lens: [0; BATCH],
            recv_iov: vec![unsafe { mem::zeroed() }; BATCH],
            recv_hdrs: vec![unsafe { mem::zeroed() }; BATCH],
            send_iov: vec![unsafe { mem::zeroed() }; BATCH],
            send_hdrs: vec![unsafe { mem::zeroed() }; BATCH],
        };
        let base = d.slots.as_mut_ptr();
        for i in 0..BATCH {
            d.recv_iov[i] = libc::iovec {
                // SAFETY: i * SLOT + SLOT <= slots.len(): each slot lies inside the buffer.
                iov_base: unsafe { base.add(i * SLOT) }.cast(),
                iov_len: SLOT,
            };
            let h = &mut d.recv_hdrs[i].msg_hdr;
            h.msg_name = (&mut d.senders[i] as *mut libc::sockaddr_storage).cast();
            h.msg_iov = &mut d.recv_iov[i];
            h.msg_iovlen = 1;
            let h = &mut d.send_hdrs[i].msg_hdr;
            h.msg_iov = &mut d.send_iov[i];
            h.msg_iovlen = 1;
        }
        d
    }
}

/// The bytes of a reply.
#[derive(Clone, Copy, Debug)]
pub enum Payload<'a> {
    /// The datagram itself (an echo).
    Same,
    /// Other bytes.
    Bytes(&'a [u8]),
}

impl Datagrams {
    /// Receives up to [`BATCH`] waiting datagrams without blocking; returns how many came.
    pub fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        for h in &mut self.recv_hdrs {
            // The kernel writes the sender's length here; each call starts from the room.
            h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        // SAFETY: every header points at a live slot and sender buffer of the stated sizes,
        // which outlive the call; no timeout pointer.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.recv_hdrs.as_mut_ptr(),
                BATCH as _,
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (i, hdr) in self.recv_hdrs.iter().enumerate().take(n) {
            self.lens[i] = hdr.msg_len as usize;
            self.sender_lens[i] = hdr.msg_hdr.msg_namelen;
        }
        Ok(n)
    }

    /// Datagram `i` of the last batch.
    pub fn payload(&self, i: usize) -> &[u8] {
        &self.slots[i * SLOT..i * SLOT + self.lens[i].min(SLOT)]
    }
    /// The sender of datagram `i`, if its address is IPv4 or IPv6.
    pub fn sender(&self, i: usize) -> Option<SocketAddr> {
        let storage = &self.senders[i];
        let len = self.sender_lens[i] as usize;
        match i32::from(storage.ss_family) {
            libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the storage holds a sockaddr_in, and it is large
                // and aligned enough for one.
                let a = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
                let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddrV4::new(ip, u16::from_be(a.sin_port)).into())
            }
            libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for sockaddr_in6.
                let a = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
                let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                let port = u16::from_be(a.sin6_port);
                Some(SocketAddrV6::new(ip, port, a.sin6_flowinfo, a.sin6_scope_id).into())
            }
            _ => None,
        }
    }

    /// Answers the last batch: `decide` is shown each datagram with its sender and says what
    /// goes back to that sender, if anything. The answers leave in one call, without blocking.
    /// Returns how many answers there were and how many went (the rest found the send buffer
    /// full, and are lost as UDP may lose them).
    pub fn answer<'a>(
        &mut self,
        fd: RawFd,
        received: usize,
        mut decide: impl FnMut(&[u8], Option<SocketAddr>) -> Option<Payload<'a>>,
    ) -> (usize, io::Result<usize>) {
        let mut k = 0;
        for i in 0..received.min(BATCH) {
            let datagram = self.payload(i);
            let Some(payload) = decide(datagram, self.sender(i)) else {
                continue;
            };
            let (base, len) = match payload {
                Payload::Same => (datagram.as_ptr(), datagram.len()),
                Payload::Bytes(bytes) => (bytes.as_ptr(), bytes.len()),
            };
            self.send_iov[k].iov_base = base as *mut libc::c_void;
            self.send_iov[k].iov_len = len;
            let h = &mut self.send_hdrs[k].msg_hdr;
            h.msg_name = (&mut self.senders[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = self.sender_lens[i];
            k += 1;
        }
        if k == 0 {
            return (0, Ok(0));
        }
        // SAFETY: the first k headers point at payloads (in the slots, or borrowed for 'a,
        // which outlives this call) and at senders' addresses; the kernel only reads them.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                self.send_hdrs.as_mut_ptr(),
                k as _,
                libc::MSG_DONTWAIT as _,
            )
        };
        if n < 0 {
            return (k, Err(io::Error::last_os_error()));
        }
        (k, Ok(n as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    #[test]
    fn a_batch_comes_in_with_its_senders_and_goes_back() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.send_to(b"first", to).unwrap();
        b.send_to(&[7u8; 65_507], to).unwrap();
        a.send_to(b"", to).unwrap();
        let mut d = Datagrams::default();
        let n = d.receive(server.as_raw_fd()).unwrap();
        assert_eq!(n, 3);
        assert_eq!(d.payload(0), b"first");
        assert_eq!(d.payload(1), &[7u8; 65_507][..]);
        assert_eq!(d.payload(2), b"");
        assert_eq!(d.sender(0), Some(a.local_addr().unwrap()));
        assert_eq!(d.sender(1), Some(b.local_addr().unwrap()));
        // Nothing more waits.
        let e = d.receive(server.as_raw_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);

        let mut d = Datagrams::default();
        a.send_to(b"again", to).unwrap();
        b.send_to(b"more", to).unwrap();
        assert_eq!(d.receive(server.as_raw_fd()).unwrap(), 2);
        let mut shown = Vec::new();
        let (k, sent) = d.answer(server.as_raw_fd(), 2, |datagram, from| {
            shown.push((datagram.to_vec(), from));
            if datagram == b"again" {
                Some(Payload::Bytes(b"answer"))
            } else {
                Some(Payload::Same)
            }
        });
        assert_eq!((k, sent.unwrap()), (2, 2));
        let (a_at, b_at) = (Some(a.local_addr().unwrap()), Some(b.local_addr().unwrap()));
        assert_eq!(shown, [(b"again".to_vec(), a_at), (b"more".to_vec(), b_at)]);
        let mut buf = [0u8; 16];
        for (sock, want) in [(&a, &b"answer"[..]), (&b, &b"more"[..])] {
            sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let (len, from) = sock.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..len], from), (want, to));
        }
    }

    #[test]
    fn ipv6_senders_are_read_back() {
        let Ok(server) = UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 here
        };
        let c = UdpSocket::bind("[::1]:0").unwrap();
        c.send_to(b"6", server.local_addr().unwrap()).unwrap();
        let mut d = Datagrams::default();
        assert_eq!(d.receive(server.as_raw_fd()).unwrap(), 1);
        assert_eq!(d.sender(0), Some(c.local_addr().unwrap()));
    }
}
