//! Batched datagram I/O: one `recvmmsg` takes up to [`BATCH`] datagrams and one `sendmmsg`
//! answers them (up to two more for each reply the kernel refuses), so a busy UDP service
//! makes far fewer system calls than one `recvfrom`/`sendto` pair per datagram. `oneloop
//! load` receives its UDP replies the same way. All the unsafe code of the UDP path is here.
//!
//! Each datagram has its own 64 KiB slot, so the largest one (65,507 bytes over IPv4) arrives
//! whole. The slots are one zeroed allocation that the system maps lazily: a slot costs
//! memory only once a datagram has been written into it, and small datagrams touch one page.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

use crate::proto::datagram::Reply;

/// The most datagrams one call moves.
pub(crate) const BATCH: usize = 16;

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
    /// goes back to that sender, if anything. The answers leave without blocking, in one call
    /// when every one is taken; a reply the kernel refuses (a firewall rule, a broadcast or
    /// unroutable destination) is lost alone, and sending goes on with the replies after it.
    /// No room to send (a full send buffer) loses the rest of the batch, as UDP may.
    pub fn answer<'a>(
        &mut self,
        fd: RawFd,
        received: usize,
        mut decide: impl FnMut(&[u8], Option<SocketAddr>) -> Option<Reply<'a>>,
    ) -> Answered {
        let mut k = 0;
        for i in 0..received.min(BATCH) {
            let datagram = self.payload(i);
            let Some(payload) = decide(datagram, self.sender(i)) else {
                continue;
            };
            let (base, len) = match payload {
                Reply::Same => (datagram.as_ptr(), datagram.len()),
                Reply::Bytes(bytes) => (bytes.as_ptr(), bytes.len()),
            };
            self.send_iov[k].iov_base = base as *mut libc::c_void;
            self.send_iov[k].iov_len = len;
            let h = &mut self.send_hdrs[k].msg_hdr;
            h.msg_name = (&mut self.senders[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = self.sender_lens[i];
            k += 1;
        }
        let mut answered = Answered {
            replies: k,
            ..Answered::default()
        };
        let mut at = 0;
        while at < k {
            // SAFETY: at < k <= BATCH, so the headers from `at` on are the live ones; they
            // point at payloads (in the slots, or borrowed for 'a, which outlives this call)
            // and at senders' addresses; the kernel only reads them.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.send_hdrs.as_mut_ptr().add(at),
                    (k - at) as _,
                    libc::MSG_DONTWAIT as _,
                )
            };
            let result = if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            };
            let next = resume(at, k, &result);
            match result {
                Ok(n) => answered.sent += n,
                Err(e) if next != Some(at) => answered.error = Some(e),
                Err(_) => {}
            }
            match next {
                Some(next) => at = next,
                None => break,
            }
        }
        answered
    }
}

/// What came of answering a batch.
#[derive(Debug, Default)]
pub struct Answered {
    /// The replies there were to send.
    pub replies: usize,
    /// How many of them the kernel took.
    pub sent: usize,
    /// Why the last reply that did not go was refused, when one did not.
    pub error: Option<io::Error>,
}

/// Where sending goes on after a `sendmmsg` of replies `at..k` returned `result`, or `None`
/// when the batch is done.
///
/// `sendmmsg` stops at the first reply that fails and returns how many went before it, or
/// fails itself when the first one does (and then tells why). So a short count is followed by
/// a call that starts at the failed reply and learns its error. A refusal that concerns that
/// reply's destination alone (EPERM from a firewall rule, EACCES for a broadcast address,
/// an unreachable network) loses that reply only, and the next call starts after it. No room
/// to send (EAGAIN: the send buffer is full; ENOBUFS, ENOMEM: no memory for the packet) would
/// refuse the rest as well: they are lost, as UDP may lose datagrams, rather than retried
/// while the loop has other work. The normal case, a whole batch taken, costs one call.
fn resume(at: usize, k: usize, result: &io::Result<usize>) -> Option<usize> {
    match result {
        Ok(n) if *n > 0 && at + n < k => Some(at + n),
        Ok(_) => None,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Some(at),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::ENOMEM)) => None,
        Err(_) => Some(at + 1).filter(|&next| next < k),
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
        let answered = d.answer(server.as_raw_fd(), 2, |datagram, from| {
            shown.push((datagram.to_vec(), from));
            if datagram == b"again" {
                Some(Reply::Bytes(b"answer"))
            } else {
                Some(Reply::Same)
            }
        });
        assert_eq!((answered.replies, answered.sent), (2, 2));
        assert!(answered.error.is_none());
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

    #[test]
    fn a_refused_reply_is_lost_alone_and_the_rest_of_the_batch_goes() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        let clients: Vec<UdpSocket> = (0..4)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for (i, c) in clients.iter().enumerate() {
            c.send_to(&[b'0' + i as u8], to).unwrap();
        }
        let mut d = Datagrams::default();
        assert_eq!(d.receive(server.as_raw_fd()).unwrap(), 4);
        // The second sender, as if it had been forged: the limited broadcast address, which
        // the kernel refuses as a destination (EACCES: no SO_BROADCAST).
        let forged = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 9u16.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::MAX },
            sin_zero: [0; 8],
        };
        // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr_in.
        unsafe { *(&mut d.senders[1] as *mut libc::sockaddr_storage).cast() = forged };
        let answered = d.answer(server.as_raw_fd(), 4, |_, _| Some(Reply::Same));
        assert_eq!((answered.replies, answered.sent), (4, 3));
        let error = answered.error.expect("the refusal");
        assert_eq!(error.raw_os_error(), Some(libc::EACCES));
        let mut buf = [0u8; 4];
        for (i, c) in clients.iter().enumerate().filter(|(i, _)| *i != 1) {
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let (len, from) = c.recv_from(&mut buf).unwrap();
            assert_eq!(
                (&buf[..len], from),
                (&[b'0' + i as u8][..], to),
                "client {i}"
            );
        }
    }

    #[test]
    fn after_a_failure_sending_resumes_past_the_refused_reply_only() {
        let err = io::Error::from_raw_os_error;
        // All taken: done, in one call.
        assert_eq!(resume(0, 16, &Ok(16)), None);
        assert_eq!(resume(5, 16, &Ok(11)), None);
        // A short count: the next call starts at the reply that failed, to learn why.
        assert_eq!(resume(0, 16, &Ok(3)), Some(3));
        assert_eq!(resume(3, 16, &Ok(1)), Some(4));
        // That reply's destination refused: only it is lost.
        for refused in [
            libc::EPERM,
            libc::EACCES,
            libc::ENETUNREACH,
            libc::EHOSTUNREACH,
        ] {
            assert_eq!(
                resume(3, 16, &Err(err(refused))),
                Some(4),
                "errno {refused}"
            );
            assert_eq!(resume(0, 1, &Err(err(refused))), None, "errno {refused}");
        }
        assert_eq!(resume(15, 16, &Err(err(libc::EPERM))), None);
        // No room to send: the rest is lost.
        for full in [libc::EAGAIN, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(resume(3, 16, &Err(err(full))), None, "errno {full}");
        }
        // A signal: the same reply again.
        assert_eq!(resume(3, 16, &Err(err(libc::EINTR))), Some(3));
        // A count of none cannot tell where to go on.
        assert_eq!(resume(3, 16, &Ok(0)), None);
    }
}
