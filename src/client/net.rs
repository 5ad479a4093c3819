//! Socket plumbing for the clients: `HOST:PORT` resolution, a TCP connection whose every wait is
//! bounded, a UDP request with retries, and error messages a person can act on.
//!
//! Nothing here knows a protocol; `clients.rs` does.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use super::Failure;

/// A TCP connection whose connect, reads and writes each wait at most `timeout`.
pub(super) struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    timeout: Duration,
}

impl Connection {
    /// Connects to the first address of `addr` that accepts.
    pub(super) fn open(addr: &str, timeout: Duration) -> Result<Self, Failure> {
        each_address(addr, |peer| {
            let fail = |e: io::Error| io_failure("cannot connect to", peer, &e, timeout);
            let stream = TcpStream::connect_timeout(&peer, timeout).map_err(fail)?;
            stream.set_read_timeout(Some(timeout)).map_err(fail)?;
            stream.set_write_timeout(Some(timeout)).map_err(fail)?;
            Ok(Connection {
                stream,
                peer,
                timeout,
            })
        })
    }

    /// Sends all of `bytes`.
    pub(super) fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.stream
            .write_all(bytes)
            .map_err(|e| self.failure("cannot send to", &e))
    }

    /// Shuts down the sending side: the server reads EOF, and can still answer.
    pub(super) fn half_close(&self) -> Result<(), Failure> {
        self.stream
            .shutdown(Shutdown::Write)
            .map_err(|e| self.failure("cannot half-close the connection to", &e))
    }

    /// Reads what arrives next into `buf`; 0 means the server closed.
    pub(super) fn receive(&mut self, buf: &mut [u8]) -> Result<usize, Failure> {
        self.stream
            .read(buf)
            .map_err(|e| self.failure("cannot receive from", &e))
    }

    /// Reads until EOF, keeping at most `limit` bytes (and stopping there).
    pub(super) fn receive_until_eof(&mut self, limit: u64) -> Result<Vec<u8>, Failure> {
        let mut bytes = Vec::new();
        (&mut self.stream)
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| self.failure("cannot receive from", &e))?;
        Ok(bytes)
    }

    /// Copies everything the server sends to `out` until EOF, showing each piece to `inspect`.
    pub(super) fn relay_until_eof(
        &mut self,
        out: &mut dyn Write,
        mut inspect: impl FnMut(&[u8]),
    ) -> Result<(), Failure> {
        let mut buf = [0; 4096];
        loop {
            let n = self.receive(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            write_out(out, &buf[..n])?;
            inspect(&buf[..n]);
        }
    }

    fn failure(&self, what: &str, e: &io::Error) -> Failure {
        io_failure(what, self.peer, e, self.timeout)
    }
}

/// Sends `request` to `addr` over UDP and returns the length of the reply put in `reply`.
///
/// A datagram or its answer may be lost, so the request is sent up to `tries` times, waiting
/// `timeout` for an answer after each. The socket is connected, so the kernel only passes on
/// datagrams from the server, and reports a closed port (ICMP port unreachable) as "refused".
pub(super) fn udp_request(
    addr: &str,
    request: &[u8],
    reply: &mut [u8],
    timeout: Duration,
    tries: u32,
) -> Result<usize, Failure> {
    each_address(addr, |peer| {
        let fail = |what, e: io::Error| io_failure(what, peer, &e, timeout);
        let local: SocketAddr = match peer {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).map_err(|e| fail("cannot open a socket for", e))?;
        socket
            .connect(peer)
            .and_then(|()| socket.set_read_timeout(Some(timeout)))
            .map_err(|e| fail("cannot set up a socket for", e))?;
        for _ in 0..tries {
            socket
                .send(request)
                .map_err(|e| fail("cannot send to", e))?;
            match socket.recv(reply) {
                Ok(n) => return Ok(n),
                Err(e) if is_timeout(&e) => continue,
                Err(e) => return Err(fail("no reply from", e)),
            }
        }
        Err(Failure::Io(format!(
            "no reply from {peer} after {tries} tries, {} each",
            seconds(timeout)
        )))
    })
}

/// Writes to the client's own output (stdout) and flushes, so a prompt shows at once.
pub(super) fn write_out(out: &mut dyn Write, bytes: &[u8]) -> Result<(), Failure> {
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Io(format!("cannot write to stdout: {e}")))
}

/// Runs `attempt` on each address `addr` resolves to, in order, until one succeeds; the error
/// of the last one otherwise.
fn each_address<T>(
    addr: &str,
    mut attempt: impl FnMut(SocketAddr) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let (host, port) = split_host_port(addr)
        .ok_or_else(|| Failure::Usage(format!("ADDR must be HOST:PORT, not {addr:?}")))?;
    let addresses = (host, port)
        .to_socket_addrs()
        .map_err(|e| Failure::Io(format!("cannot resolve {host:?}: {e}")))?;
    let mut failure = Failure::Io(format!("cannot resolve {host:?}: no addresses"));
    for peer in addresses {
        match attempt(peer) {
            Ok(done) => return Ok(done),
            Err(f) => failure = f,
        }
    }
    Err(failure)
}

/// Splits `host:port`, `[v6 address]:port`; `None` when it is neither.
fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    if host.is_empty() {
        return None;
    }
    Some((host, port.parse().ok()?))
}

fn is_timeout(e: &io::Error) -> bool {
    // A socket read timeout shows as EAGAIN (WouldBlock) on Unix; connect_timeout as TimedOut.
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// `"{what} {peer}: {reason}"`, with the reason in words for the common network errors.
fn io_failure(what: &str, peer: SocketAddr, e: &io::Error, timeout: Duration) -> Failure {
    let reason = match e.kind() {
        _ if is_timeout(e) => format!("timed out after {}", seconds(timeout)),
        io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        io::ErrorKind::ConnectionReset => "connection reset by peer".to_string(),
        _ => e.to_string(),
    };
    Failure::Io(format!("{what} {peer}: {reason}"))
}

fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn host_port_forms_that_split() {
        assert_eq!(
            split_host_port("localhost:51423"),
            Some(("localhost", 51423))
        );
        assert_eq!(split_host_port("127.0.0.1:7"), Some(("127.0.0.1", 7)));
        assert_eq!(split_host_port("[::1]:7"), Some(("::1", 7)));
        assert_eq!(split_host_port("[fe80::1%lo]:7"), Some(("fe80::1%lo", 7)));
    }

    #[test]
    fn addresses_without_a_usable_port_or_host_are_refused() {
        for bad in [
            "localhost",
            "localhost:",
            ":7",
            "::1:7",
            "[::1]",
            "host:70000",
            "[::1:7",
        ] {
            assert_eq!(split_host_port(bad), None, "{bad}");
        }
    }
}
