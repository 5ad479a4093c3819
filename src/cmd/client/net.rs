//! Socket plumbing for the clients: `HOST:PORT` resolution, a TCP connection whose every wait is
//! bounded (by a timeout each, and by a deadline for them all), a UDP request with retries, and
//! error messages a person can act on.
//!
//! Nothing here knows a protocol; `clients.rs` does.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use super::Failure;

/// How long a client may wait: `timeout` for each operation (the connect, a read, a write, a
/// UDP try), and, with a deadline, all of them together until it passes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Waits {
    timeout: Duration,
    /// When the deadline passes, and how long it was.
    deadline: Option<(Instant, Duration)>,
}

/// The wait for one operation, and the deadline when it is what set the wait.
#[derive(Clone, Copy)]
struct Wait {
    time: Duration,
    cut_by: Option<Duration>,
}

impl Waits {
    /// `timeout` for each operation; `deadline` for all of them, counted from now.
    pub(super) fn starting_now(timeout: Duration, deadline: Option<Duration>) -> Self {
        Waits {
            timeout,
            deadline: deadline.map(|length| (Instant::now() + length, length)),
        }
    }

    /// The wait for the next operation (`what` with `peer`): the timeout, or what is left of
    /// the deadline when that is shorter. A deadline that has passed is a failure.
    fn next(&self, what: &str, peer: SocketAddr) -> Result<Wait, Failure> {
        let Some((end, length)) = self.deadline else {
            return Ok(self.whole());
        };
        let left = end.saturating_duration_since(Instant::now());
        let cut = Wait {
            time: left,
            cut_by: Some(length),
        };
        if left.is_zero() {
            let e = io::Error::from(io::ErrorKind::TimedOut);
            return Err(io_failure(what, peer, &e, cut));
        }
        Ok(if left < self.timeout {
            cut
        } else {
            self.whole()
        })
    }

    /// The wait of one operation that the deadline does not cut short.
    fn whole(&self) -> Wait {
        Wait {
            time: self.timeout,
            cut_by: None,
        }
    }

    /// Moves the deadline on by `pause`: a wait that is not the server's does not count.
    fn extend(&mut self, pause: Duration) {
        if let Some((end, _)) = &mut self.deadline {
            *end += pause;
        }
    }
}

/// A TCP connection whose connect, reads and writes are each bounded by [`Waits`].
pub(super) struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    waits: Waits,
    /// The socket's read and write timeouts as last set, so an unchanged one is not set again.
    read_timeout: Duration,
    write_timeout: Duration,
}

/// Why [`Connection::relay`] returned.
pub(super) enum Relayed {
    /// The server closed.
    Eof,
    /// The inspector said it had seen enough.
    Stopped,
    /// The server sent more than the limit; the bytes up to it were printed, no more was read.
    OverLimit,
}

impl Connection {
    /// Connects to the first address of `addr` that accepts.
    pub(super) fn open(addr: &str, waits: Waits) -> Result<Self, Failure> {
        each_address(addr, |peer| {
            let wait = waits.next("cannot connect to", peer)?;
            let fail = |e: io::Error| io_failure("cannot connect to", peer, &e, wait);
            let stream = TcpStream::connect_timeout(&peer, wait.time).map_err(fail)?;
            Ok(Connection {
                stream,
                peer,
                waits,
                read_timeout: Duration::ZERO,
                write_timeout: Duration::ZERO,
            })
        })
    }

    /// Sends all of `bytes`.
    pub(super) fn send(&mut self, mut bytes: &[u8]) -> Result<(), Failure> {
        while !bytes.is_empty() {
            let n = self.bounded("cannot send to", false, |stream| stream.write(bytes))?;
            if n == 0 {
                let e = io::Error::from(io::ErrorKind::WriteZero);
                return Err(self.failure("cannot send to", &e));
            }
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Shuts down the sending side: the server reads EOF, and can still answer.
    pub(super) fn half_close(&self) -> Result<(), Failure> {
        self.stream
            .shutdown(Shutdown::Write)
            .map_err(|e| self.failure("cannot half-close the connection to", &e))
    }

    /// Reads what arrives next into `buf`; 0 means the server closed.
    fn receive(&mut self, buf: &mut [u8]) -> Result<usize, Failure> {
        self.bounded("cannot receive from", true, |stream| stream.read(buf))
    }

    /// Reads until EOF, keeping at most `limit` bytes (and stopping there).
    pub(super) fn receive_until_eof(&mut self, limit: usize) -> Result<Vec<u8>, Failure> {
        let mut bytes = Vec::new();
        let mut buf = [0; 4096];
        while bytes.len() < limit {
            let room = buf.len().min(limit - bytes.len());
            match self.receive(&mut buf[..room])? {
                0 => break,
                n => bytes.extend_from_slice(&buf[..n]),
            }
        }
        Ok(bytes)
    }

    /// Copies what the server sends to `out` until EOF, or until `inspect`, shown each piece
    /// as it is printed, breaks. With a `limit`, reading stops at the first byte past it: the
    /// bytes up to the limit are printed, that one is not.
    pub(super) fn relay(
        &mut self,
        out: &mut dyn Write,
        limit: Option<usize>,
        mut inspect: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> Result<Relayed, Failure> {
        let mut buf = [0; 4096];
        let mut room = limit.unwrap_or(usize::MAX);
        loop {
            // One byte more than the room left is enough to know the limit is passed.
            let want = buf.len().min(room.saturating_add(1));
            let n = self.receive(&mut buf[..want])?;
            if n == 0 {
                return Ok(Relayed::Eof);
            }
            let piece = &buf[..n.min(room)];
            write_out(out, piece)?;
            if inspect(piece).is_break() {
                return Ok(Relayed::Stopped);
            }
            if n > room {
                return Ok(Relayed::OverLimit);
            }
            if limit.is_some() {
                room -= n;
            }
        }
    }

    /// Runs `wait_for`, which does not count against the deadline (it is not the server's
    /// wait, as reading a line that a person types is not).
    pub(super) fn off_the_clock<T>(&mut self, wait_for: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let done = wait_for();
        self.waits.extend(start.elapsed());
        done
    }

    /// Runs one read (`read`) or write of the socket, its timeout set to the wait that
    /// [`Waits`] allows; an interrupted call is tried again.
    fn bounded<T>(
        &mut self,
        what: &str,
        read: bool,
        mut op: impl FnMut(&mut TcpStream) -> io::Result<T>,
    ) -> Result<T, Failure> {
        loop {
            let wait = self.waits.next(what, self.peer)?;
            let fail = |e: io::Error| io_failure(what, self.peer, &e, wait);
            type SetTimeout = fn(&TcpStream, Option<Duration>) -> io::Result<()>;
            let (timeout, set): (&mut Duration, SetTimeout) = if read {
                (&mut self.read_timeout, TcpStream::set_read_timeout)
            } else {
                (&mut self.write_timeout, TcpStream::set_write_timeout)
            };
            if *timeout != wait.time {
                set(&self.stream, Some(wait.time)).map_err(fail)?;
                *timeout = wait.time;
            }
            match op(&mut self.stream) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                done => return done.map_err(fail),
            }
        }
    }

    fn failure(&self, what: &str, e: &io::Error) -> Failure {
        io_failure(what, self.peer, e, self.waits.whole())
    }
}

/// Sends `request` to `addr` over UDP and returns the length of the reply put in `reply`.
///
/// A datagram or its answer may be lost, so the request is sent up to `tries` times, waiting
/// for an answer after each as long as `waits` allows. The socket is connected, so the kernel
/// only passes on datagrams from the server, and reports a closed port (ICMP port
/// unreachable) as "refused".
pub(super) fn udp_request(
    addr: &str,
    request: &[u8],
    reply: &mut [u8],
    waits: Waits,
    tries: u32,
) -> Result<usize, Failure> {
    each_address(addr, |peer| {
        let whole = waits.whole();
        let fail = |what, e: io::Error, wait| io_failure(what, peer, &e, wait);
        let local: SocketAddr = match peer {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket =
            UdpSocket::bind(local).map_err(|e| fail("cannot open a socket for", e, whole))?;
        socket
            .connect(peer)
            .map_err(|e| fail("cannot set up a socket for", e, whole))?;
        for _ in 0..tries {
            let wait = waits.next("no reply from", peer)?;
            socket
                .set_read_timeout(Some(wait.time))
                .map_err(|e| fail("cannot set up a socket for", e, wait))?;
            socket
                .send(request)
                .map_err(|e| fail("cannot send to", e, wait))?;
            match socket.recv(reply) {
                Ok(n) => return Ok(n),
                Err(e) if is_timeout(&e) && wait.cut_by.is_none() => continue,
                Err(e) => return Err(fail("no reply from", e, wait)),
            }
        }
        Err(Failure::Io(format!(
            "no reply from {peer} after {tries} tries, {} each",
            seconds(waits.timeout)
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

/// `"{what} {peer}: {reason}"`, with the reason in words for the common network errors. A
/// timeout is the deadline's when the deadline set the wait.
fn io_failure(what: &str, peer: SocketAddr, e: &io::Error, wait: Wait) -> Failure {
    let reason = match (e.kind(), wait.cut_by) {
        (_, Some(deadline)) if is_timeout(e) => {
            format!("deadline of {} passed", seconds(deadline))
        }
        _ if is_timeout(e) => format!("timed out after {}", seconds(wait.time)),
        (io::ErrorKind::ConnectionRefused, _) => "connection refused".to_string(),
        (io::ErrorKind::ConnectionReset, _) => "connection reset by peer".to_string(),
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
