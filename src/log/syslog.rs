//! The log's way to syslog under an inetd (`--inetd`) when standard error is not the
//! journal (`crate::log` says why): each line is one datagram to `/dev/log`, the local
//! syslog daemon's socket, and a line that cannot be sent is dropped, never written
//! anywhere else. The lines are made in `crate::log` (`<PRI>oneloop[PID]: message`).
//!
//! The socket is connected once, at start-up (so the log still reaches syslog from inside a
//! `--chroot`), and made non-blocking: a syslog daemon that falls behind costs lines, never
//! the loop's time. When a send finds the syslog daemon gone (it was restarted, and its
//! socket is a new one), the socket is connected again once for that line.

use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;

/// The local syslog daemon's socket.
const DEV_LOG: &str = "/dev/log";

/// A `Write` that sends each complete line to syslog, without its `\n`.
#[derive(Debug, Default)]
pub(crate) struct Syslog {
    /// Connected to `/dev/log`, while it can be.
    socket: Option<UnixDatagram>,
    /// The start of a line whose `\n` has not been written yet.
    pending: Vec<u8>,
}

impl Syslog {
    /// Connects to `/dev/log`; when it cannot, lines are dropped until it can.
    pub(crate) fn open() -> Syslog {
        Syslog {
            socket: connect(),
            pending: Vec::new(),
        }
    }

    /// Sends one line, connecting again once if the syslog daemon has gone; a line that
    /// still cannot go is dropped.
    fn send(&mut self, line: &[u8]) {
        if let Some(socket) = &self.socket {
            match socket.send(line) {
                Ok(_) => return,
                // The syslog daemon's queue is full: the line is lost, the socket is fine.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {}
            }
        }
        self.socket = connect();
        if let Some(socket) = &self.socket {
            let _ = socket.send(line);
        }
    }
}

/// A non-blocking datagram socket connected to `/dev/log`.
pub(crate) fn connect() -> Option<UnixDatagram> {
    let socket = UnixDatagram::unbound().ok()?;
    socket.connect(DEV_LOG).ok()?;
    socket.set_nonblocking(true).ok()?;
    Some(socket)
}

impl Write for Syslog {
    /// Takes any part of a line; sends each line once its `\n` has come.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(buf);
        let mut sent = 0;
        while let Some(end) = pending[sent..].iter().position(|&b| b == b'\n') {
            self.send(&pending[sent..sent + end]);
            sent += end + 1;
        }
        pending.drain(..sent);
        self.pending = pending;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Syslog` sending to a socket the test reads.
    fn pair() -> (Syslog, UnixDatagram) {
        let (ours, theirs) = UnixDatagram::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        theirs.set_nonblocking(true).unwrap();
        let syslog = Syslog {
            socket: Some(ours),
            pending: Vec::new(),
        };
        (syslog, theirs)
    }

    fn received(socket: &UnixDatagram) -> Vec<String> {
        let mut got = Vec::new();
        let mut buf = [0; 256];
        while let Ok(n) = socket.recv(&mut buf) {
            got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
        }
        got
    }

    #[test]
    fn each_line_is_one_datagram_without_its_newline() {
        let (mut syslog, theirs) = pair();
        syslog
            .write_all(b"<30>oneloop[7]: one\n<31>oneloop[7]: tw")
            .unwrap();
        assert_eq!(received(&theirs), ["<30>oneloop[7]: one"]);
        syslog.write_all(b"o\n\n").unwrap();
        assert_eq!(received(&theirs), ["<31>oneloop[7]: two", ""]);
        assert!(syslog.pending.is_empty());
    }

    #[test]
    fn lines_a_full_queue_cannot_take_are_dropped_without_an_error() {
        let (mut syslog, theirs) = pair();
        let line = [b'x'; 100];
        let mut written = 0;
        // Far more than a Unix datagram queue holds: the writer never blocks or fails.
        for _ in 0..10_000 {
            syslog.write_all(&line).unwrap();
            syslog.write_all(b"\n").unwrap();
            written += 1;
        }
        let got = received(&theirs);
        assert!(!got.is_empty() && got.len() < written, "{}", got.len());
        assert!(got.iter().all(|l| l.len() == 100));
        // A full queue is not a syslog daemon gone: the socket is kept.
        assert!(syslog.socket.is_some());
    }
}
