//! Linux calls that decide nothing: setting up sockets, batched datagram calls, what a
//! service manager or an inetd passes and is told, giving up privileges, reading a file through its
//! directory's descriptor, handing sockets to another process, and the sandbox. Each function
//! does what it is asked and reports the error; what to do about it is decided above. All of
//! the crate's `unsafe` is in this folder.

pub mod files;
pub mod handover;
pub mod mmsg;
pub mod privileges;
pub mod raw;
pub mod sandbox;
pub mod sockets;
pub mod systemd;

/// Returns the allocator's free memory to the system (glibc keeps it otherwise; musl's
/// allocator gives it back by itself).
pub(crate) fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
