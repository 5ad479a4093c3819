//! The few libc calls that neither the standard library nor socket2 offers safely, each
//! wrapped once: which file standard error is, reading any socket option by number, and
//! `IP_BIND_ADDRESS_NO_PORT` for the load generator's many outgoing connections.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

/// The device and inode numbers of standard error (fstat(2)), or `None` when it is not open.
pub fn stderr_file_id() -> Option<(u64, u64)> {
    let mut stat = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills in `stat` when it returns 0.
    if unsafe { libc::fstat(libc::STDERR_FILENO, stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: filled in by the successful fstat.
    let stat = unsafe { stat.assume_init() };
    #[allow(clippy::unnecessary_cast)] // dev_t and ino_t are not u64 everywhere
    Some((stat.st_dev as u64, stat.st_ino as u64))
}

/// Types for which every byte pattern is a valid value, so the kernel may fill them.
///
/// # Safety
/// Only for plain C integers and structs of them, and byte arrays.
pub unsafe trait AnyBits {}
// SAFETY: integers, structs of integers and byte arrays have no invalid bit patterns.
unsafe impl AnyBits for libc::c_int {}
// SAFETY: as above.
unsafe impl AnyBits for libc::linger {}
// SAFETY: as above.
unsafe impl AnyBits for libc::timeval {}
// SAFETY: as above.
unsafe impl AnyBits for libc::ucred {}
// SAFETY: as above.
unsafe impl<const N: usize> AnyBits for [u8; N] {}

/// `getsockopt(fd, level, opt, &mut value, sizeof value)`: the value as the kernel sets it.
pub fn getsockopt<T: AnyBits>(fd: RawFd, level: i32, opt: i32, mut value: T) -> io::Result<T> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is a live, writable T of `len` bytes; the kernel writes at most `len`
    // bytes into it, and any bytes it writes make a valid T (`AnyBits`).
    let rc = unsafe { libc::getsockopt(fd, level, opt, (&mut value as *mut T).cast(), &mut len) };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `IP_BIND_ADDRESS_NO_PORT` on `fd`: a bind to port 0 leaves the port to `connect`, which
/// may then reuse one port for different destinations.
pub fn bind_address_no_port(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: the descriptor is open for the call, and the option value is a c_int we own
    // whose size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_error_has_a_device_and_inode() {
        // The test harness leaves standard error open.
        assert!(stderr_file_id().is_some());
    }
}
