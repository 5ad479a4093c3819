//! The calls behind `--handover PATH`: the unix socket the exchange runs on (`SOCK_SEQPACKET`,
//! so each record keeps its bounds and its sockets), sending and receiving descriptors with a
//! record (`SCM_RIGHTS`), the peer's credentials (`SO_PEERCRED`), and whether others may
//! write to the directory PATH is in. What is said, and who is trusted, is decided elsewhere.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

/// A listening `SOCK_SEQPACKET` socket at `path`, non-blocking and close-on-exec, its file
/// readable and writable by its owner only.
pub fn listen(path: &Path) -> io::Result<Socket> {
    let socket = Socket::new(Domain::UNIX, Type::SEQPACKET.cloexec(), None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    socket.listen(8)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Connects to the `SOCK_SEQPACKET` socket at `path`: a blocking socket whose every send and
/// receive gives up after `wait`.
pub fn connect(path: &Path, wait: Duration) -> io::Result<Socket> {
    let socket = Socket::new(Domain::UNIX, Type::SEQPACKET.cloexec(), None)?;
    socket.set_read_timeout(Some(wait))?;
    socket.set_write_timeout(Some(wait))?;
    socket.connect(&SockAddr::unix(path)?)?;
    Ok(socket)
}

/// The peer's user id and process id, as the kernel recorded them when the connection was
/// made (for the connecting side: when the listening socket began to listen).
pub fn peer_cred(fd: RawFd) -> io::Result<(u32, i32)> {
    let empty = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let cred = super::raw::getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERCRED, empty)?;
    Ok((cred.uid, cred.pid))
}

/// The space a control message with `BATCH` descriptors needs, in `cmsghdr`-aligned words.
const CONTROL_WORDS: usize = 16 + crate::proto::handover::BATCH;

/// Sends `record` with `fds` attached (at most `BATCH`). A full socket is an error: a record
/// of the exchange is never retried.
pub fn send(socket: &Socket, record: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: record.as_ptr() as *mut libc::c_void,
        iov_len: record.len(),
    };
    let mut control = [0u64; CONTROL_WORDS];
    let fd_bytes = std::mem::size_of_val(fds);
    // SAFETY: a zeroed msghdr is valid; every pointer set below outlives the sendmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        // SAFETY: CMSG_SPACE is arithmetic.
        let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
        if space > std::mem::size_of_val(&control) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: the control buffer holds `space` bytes, aligned for cmsghdr (u64 words), so
        // the first header and its data (`fd_bytes` bytes) fit in it.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(&msg);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(header),
                fd_bytes,
            );
        }
    }
    // SAFETY: `msg` points at live buffers of the lengths it states.
    let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    match sent {
        n if n < 0 => Err(io::Error::last_os_error()),
        n if n as usize != record.len() => Err(io::Error::from(io::ErrorKind::WriteZero)),
        _ => Ok(()),
    }
}

/// Receives one record into `buf`: its length (0 when the peer closed) and the descriptors
/// that came with it, close-on-exec. A record longer than `buf`, or with more descriptors
/// than a batch, is an error (the descriptors that did come are closed).
pub fn recv(socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [MaybeUninit::<u64>::uninit(); CONTROL_WORDS];
    // SAFETY: a zeroed msghdr is valid; every pointer set below outlives the recvmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at live, writable buffers of the lengths it states.
    let got = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel wrote `msg_controllen` bytes of control messages; CMSG_FIRSTHDR and
    // CMSG_NXTHDR stay within them, and an SCM_RIGHTS message's data is that many descriptors
    // the kernel just installed in this process, each ours to own.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header);
                let bytes = (*header).cmsg_len as usize - (data as usize - header as usize);
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            header = libc::CMSG_NXTHDR(&msg, header);
        }
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a record or its sockets did not fit",
        ));
    }
    Ok((got as usize, fds))
}

/// Why the directory of `path` cannot hold a handover socket: it is not a directory, it
/// belongs to a user other than root or `uid`, or its group or others may write to it (and so
/// put a socket of their own at PATH). `None` when it may.
pub fn unsafe_directory(path: &Path, uid: u32) -> io::Result<Option<String>> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let meta = std::fs::metadata(dir)?;
    let shown = dir.display();
    Ok(if !meta.is_dir() {
        Some(format!("{shown} is not a directory"))
    } else if meta.uid() != 0 && meta.uid() != uid {
        Some(format!("{shown} belongs to user {}", meta.uid()))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "others may write to {shown} (mode {:o})",
            meta.mode() & 0o7777
        ))
    } else {
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    fn pair() -> (Socket, Socket) {
        Socket::pair(Domain::UNIX, Type::SEQPACKET, None).unwrap()
    }

    #[test]
    fn a_record_carries_its_descriptors_to_the_other_side() {
        let (a, b) = pair();
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        send(&a, b"offer\nx", &[theirs.as_raw_fd()]).unwrap();
        drop(theirs);
        let mut buf = [0u8; 64];
        let (n, fds) = recv(&b, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"offer\nx");
        let [fd] = <[OwnedFd; 1]>::try_from(fds).unwrap();
        // The descriptor received is the same socket: what is written to it comes out here.
        UnixStream::from(fd).write_all(b"hi").unwrap();
        let mut got = [0u8; 2];
        ours.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi");
    }

    #[test]
    fn records_keep_their_bounds_and_a_close_reads_as_zero() {
        let (a, b) = pair();
        send(&a, b"hello", &[]).unwrap();
        send(&a, b"end 0 1", &[]).unwrap();
        drop(a);
        let mut buf = [0u8; 64];
        assert_eq!(recv(&b, &mut buf).unwrap().0, 5);
        assert_eq!(recv(&b, &mut buf).unwrap().0, 7);
        assert_eq!(recv(&b, &mut buf).unwrap().0, 0);
    }

    #[test]
    fn a_record_too_long_for_the_buffer_is_an_error() {
        let (a, b) = pair();
        send(&a, &[b'x'; 100], &[]).unwrap();
        let err = recv(&b, &mut [0u8; 10]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn the_peer_is_this_process() {
        let (a, _b) = pair();
        let (uid, pid) = peer_cred(a.as_raw_fd()).unwrap();
        // SAFETY: geteuid cannot fail.
        assert_eq!(uid, unsafe { libc::geteuid() });
        assert_eq!(pid as u32, std::process::id());
    }

    #[test]
    fn a_directory_others_may_write_to_is_named() {
        let dir = std::env::temp_dir().join(format!("oneloop-handover-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // SAFETY: geteuid cannot fail.
        let uid = unsafe { libc::geteuid() };
        let path = dir.join("s");
        let mode = |m| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(m));
        mode(0o755).unwrap();
        assert_eq!(unsafe_directory(&path, uid).unwrap(), None);
        mode(0o775).unwrap();
        let why = unsafe_directory(&path, uid).unwrap().unwrap();
        assert!(
            why.contains("others may write") && why.contains("775"),
            "{why}"
        );
        mode(0o1777).unwrap();
        assert!(unsafe_directory(&path, uid).unwrap().is_some());
        mode(0o700).unwrap();
        std::fs::write(&path, "").unwrap();
        let why = unsafe_directory(&path.join("s"), uid).unwrap().unwrap();
        assert!(why.contains("not a directory"), "{why}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
