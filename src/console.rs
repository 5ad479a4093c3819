//! The operator console (`--console`): the seed documents' response server, whose operator
//! types each reply. Standard input is one more source in the loop's poll, so the loop still
//! never blocks: typed lines are read when the poll says there are some.
//!
//! An `ack` connection that has said `I get it!` waits for the operator ([`crate::session::Step::AskOperator`]).
//! The next line typed goes to the connection that has waited longest; `@N TEXT` sends TEXT to
//! connection N. Connections are numbered as they are accepted, and a number is never used
//! again. At the end of input the console closes, and the connections still waiting get the
//! `--ack-reply` text. A standard input that cannot be polled (a regular file, `/dev/null`:
//! epoll refuses them) counts as the end of input at once.
//!
//! Standard input is opened again (`/proc/self/fd/0`) to be read non-blocking: `O_NONBLOCK`
//! belongs to the open file, which a terminal shares with the shell that started the daemon,
//! and set on descriptor 0 itself it would leave that shell a non-blocking terminal.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use log::{trace, warn};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::logbytes::Escaped;

/// The longest line the console keeps; the rest of a longer line is dropped (with a warning).
const MAX_LINE: usize = 4096;

/// What the operator typed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Typed {
    /// A line for connection `to` (or the one that has waited longest), its LF included.
    Line { to: Option<u64>, text: Vec<u8> },
    /// The end of input: the console is closed.
    End,
}

/// Splits an operator's line (without its LF) into its addressee and its text: `@N TEXT`
/// is for connection N, anything else for the connection that has waited longest.
pub(crate) fn addressee(line: &[u8]) -> (Option<u64>, &[u8]) {
    let Some(rest) = line.strip_prefix(b"@") else {
        return (None, line);
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let number = std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|d| d.parse().ok());
    match (number, rest.get(digits)) {
        (Some(n), None) => (Some(n), b""),
        (Some(n), Some(b' ')) => (Some(n), &rest[digits + 1..]),
        _ => (None, line),
    }
}

/// Standard input as a source of operator lines, and the connections waiting for them.
#[derive(Debug)]
pub(crate) struct Console {
    /// Standard input, opened again non-blocking; `None` once the console is closed.
    input: Option<File>,
    /// A line still being typed.
    partial: Vec<u8>,
    /// Whether the partial line passed `MAX_LINE` (the rest of it is dropped).
    overlong: bool,
    /// Connections waiting for a line, longest first: (console number, slab key). An entry
    /// whose connection has gone or stopped waiting is skipped when it comes up.
    waiting: VecDeque<(u64, usize)>,
    next_number: u64,
}

impl Console {
    /// Puts standard input into the poll under `token`. One that cannot be polled makes a
    /// console that is closed at once.
    pub(crate) fn open(registry: &Registry, token: Token) -> Console {
        let input = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/proc/self/fd/0")
            .and_then(|file| {
                let fd = file.as_raw_fd();
                registry.register(&mut SourceFd(&fd), token, Interest::READABLE)?;
                Ok(file)
            })
            .map_err(|e| {
                warn!(
                    "console: standard input cannot be polled ({}): the console ends at once",
                    crate::sockets::reason(&e)
                )
            })
            .ok();
        Console {
            input,
            partial: Vec::new(),
            overlong: false,
            waiting: VecDeque::new(),
            next_number: 1,
        }
    }

    /// Whether lines may still come.
    pub(crate) fn is_open(&self) -> bool {
        self.input.is_some()
    }

    /// The number for a newly accepted connection.
    pub(crate) fn next_number(&mut self) -> u64 {
        let n = self.next_number;
        self.next_number += 1;
        n
    }

    /// Connection `number` (slab key `key`) waits for a line.
    pub(crate) fn wait(&mut self, number: u64, key: usize) {
        self.waiting.push_back((number, key));
    }

    /// Takes the waiting entry for `to` (or the longest waiting one).
    pub(crate) fn take_waiting(&mut self, to: Option<u64>) -> Option<(u64, usize)> {
        let at = match to {
            Some(n) => self.waiting.iter().position(|&(m, _)| m == n)?,
            None if self.waiting.is_empty() => return None,
            None => 0,
        };
        self.waiting.remove(at)
    }

    /// Forgets connection `number`, which stopped waiting without a line (its client went).
    pub(crate) fn forget(&mut self, number: u64) {
        self.waiting.retain(|&(n, _)| n != number);
    }

    /// Everything still waiting, longest first (the console closed).
    pub(crate) fn take_all_waiting(&mut self) -> VecDeque<(u64, usize)> {
        std::mem::take(&mut self.waiting)
    }

    /// Reads what standard input has until it would block; returns what was typed.
    pub(crate) fn read(&mut self) -> Vec<Typed> {
        let mut typed = Vec::new();
        let mut buf = [0u8; 4096];
        while let Some(input) = &mut self.input {
            match input.read(&mut buf) {
                Ok(0) => {
                    trace!("console: read 0 bytes: the end of input");
                    if !self.partial.is_empty() {
                        // A last line without its LF is a line all the same.
                        self.split(b"\n", &mut typed);
                    }
                    self.input = None;
                    typed.push(Typed::End);
                }
                Ok(n) => {
                    trace!("console: read {n} bytes {}", Escaped(&buf[..n]));
                    self.split(&buf[..n], &mut typed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!(
                        "console: cannot read standard input ({}): the console ends",
                        crate::sockets::reason(&e)
                    );
                    self.input = None;
                    typed.push(Typed::End);
                }
            }
        }
        typed
    }

    /// Cuts `bytes` into lines, adding each finished one to `typed`.
    fn split(&mut self, mut bytes: &[u8], typed: &mut Vec<Typed>) {
        while let Some(lf) = bytes.iter().position(|&b| b == b'\n') {
            self.keep(&bytes[..lf]);
            let line = std::mem::take(&mut self.partial);
            if std::mem::take(&mut self.overlong) {
                warn!("console: a line over {MAX_LINE} bytes was cut short");
            }
            let (to, text) = addressee(line.strip_suffix(b"\r").unwrap_or(&line));
            let mut text = text.to_vec();
            text.push(b'\n');
            typed.push(Typed::Line { to, text });
            bytes = &bytes[lf + 1..];
        }
        self.keep(bytes);
    }

    fn keep(&mut self, part: &[u8]) {
        let room = MAX_LINE - self.partial.len();
        self.overlong |= part.len() > room;
        self.partial
            .extend_from_slice(&part[..part.len().min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_n_addresses_a_connection_and_anything_else_the_longest_waiting() {
        assert_eq!(addressee(b"@12 hello"), (Some(12), &b"hello"[..]));
        assert_eq!(addressee(b"@3"), (Some(3), &b""[..]));
        assert_eq!(addressee(b"hello"), (None, &b"hello"[..]));
        assert_eq!(addressee(b"@x hi"), (None, &b"@x hi"[..]));
        assert_eq!(addressee(b"@12hi"), (None, &b"@12hi"[..]));
        assert_eq!(
            addressee(b"@99999999999999999999999 hi"),
            (None, &b"@99999999999999999999999 hi"[..])
        );
    }

    fn closed_console() -> Console {
        Console {
            input: None,
            partial: Vec::new(),
            overlong: false,
            waiting: VecDeque::new(),
            next_number: 1,
        }
    }

    #[test]
    fn lines_in_pieces_and_long_lines() {
        let mut c = closed_console();
        let mut typed = Vec::new();
        c.split(b"he", &mut typed);
        c.split(b"llo\r\n@2 x\nrest", &mut typed);
        assert_eq!(
            typed,
            [
                Typed::Line {
                    to: None,
                    text: b"hello\n".to_vec()
                },
                Typed::Line {
                    to: Some(2),
                    text: b"x\n".to_vec()
                }
            ]
        );
        typed.clear();
        c.split(&[b'y'; 10_000], &mut typed);
        c.split(b"\n", &mut typed);
        let [Typed::Line { text, .. }] = &typed[..] else {
            panic!("{typed:?}")
        };
        assert_eq!(text.len(), MAX_LINE + 1);
    }

    #[test]
    fn waiting_connections_are_taken_longest_first_or_by_number() {
        let mut c = closed_console();
        let (a, b, d) = (c.next_number(), c.next_number(), c.next_number());
        c.wait(a, 10);
        c.wait(b, 11);
        c.wait(d, 12);
        assert_eq!(c.take_waiting(Some(b)), Some((b, 11)));
        assert_eq!(c.take_waiting(Some(b)), None);
        assert_eq!(c.take_waiting(None), Some((a, 10)));
        assert_eq!(c.take_all_waiting(), [(d, 12)]);
        assert_eq!(c.take_waiting(None), None);
        // One whose client went is forgotten, wherever it is in the queue.
        c.wait(a, 10);
        c.wait(b, 11);
        c.forget(a);
        assert_eq!(c.take_waiting(None), Some((b, 11)));
    }
}
