//! Linux calls that decide nothing: setting up sockets, batched datagram calls, what a
//! service manager or an inetd passes and is told, and giving up privileges. Each function
//! does what it is asked and reports the error; what to do about it is decided above. All of
//! the crate's `unsafe` is in this folder.

pub mod mmsg;
pub mod privileges;
pub mod sockets;
pub mod systemd;
