//! The operator console (`--console`): the response server of the Python socket tutorials, whose operator
//! types each reply. Standard input is one more source in the loop's poll, so the loop still
//! never blocks: typed lines are read when the poll says there are some.
//!
//! An `ack` connection that has said `I get it!` waits for the operator ([`crate::proto::Step::AskOperator`]).
//! The next line typed goes to the connection that has waited longest; `@N TEXT` sends TEXT to
//! connection N. Connections are numbered as they are accepted, and a number is never used
//! again. At the end of input the console closes, and the connections still waiting get the
//! `--ack-reply` text. A standard input that cannot be polled (a regular file, `/dev/null`:
//! epoll refuses them) counts as the end of input at once.
//!
//! Standard input gets a turn like any socket: at most [`TURN_LINES`] lines and [`TURN_READS`]
//! reads a wake-up, the rest of a read kept for the next turn, which comes before the loop
//! sleeps. So a flood of input (`yes | oneloop --console`) costs the clients a turn now and
//! then, never a stall, and the console holds at most one read and one line between turns.
//!
//! Standard input is opened again (`/proc/self/fd/0`) to be read non-blocking: `O_NONBLOCK`
//! belongs to the open file, which a terminal shares with the shell that started the daemon,
//! and set on descriptor 0 itself it would leave that shell a non-blocking terminal.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use log::{info, trace, warn};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use super::conn::State;
use super::Server;
use crate::clock::Millis;
use crate::log::escape::Escaped;

/// The longest line the console keeps; the rest of a longer line is dropped (with a warning).
const MAX_LINE: usize = 4096;

/// The most one read takes from standard input.
const READ_SIZE: usize = 4096;

/// The most lines the console hands the loop in one turn.
pub(crate) const TURN_LINES: usize = 32;

/// The most reads in one turn (a long line may take several without finishing).
const TURN_READS: usize = 32;

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
    /// The last read, of which `read_buf[cut_from..read_len]` is not cut into lines yet (a
    /// turn may end inside a read).
    read_buf: Box<[u8; READ_SIZE]>,
    cut_from: usize,
    read_len: usize,
    /// The line still being typed.
    typing: Typing,
    /// Connections waiting for a line, longest first: (console number, slab key). An entry
    /// whose connection has gone or stopped waiting is skipped when it comes up.
    waiting: VecDeque<(u64, usize)>,
    next_number: u64,
    /// Lines dropped in a row, with no connection waiting for them (see `Console::dropped`).
    dropped_run: u64,
}

/// A line being typed.
#[derive(Debug, Default)]
struct Typing {
    /// Its bytes so far, at most `MAX_LINE`.
    partial: Vec<u8>,
    /// Whether it passed `MAX_LINE` (the rest of it is dropped).
    overlong: bool,
}

impl Typing {
    /// Takes `bytes` up to and including the first LF; returns how many it took, and the
    /// line, when that LF finished one.
    fn take(&mut self, bytes: &[u8]) -> (usize, Option<Typed>) {
        let Some(lf) = bytes.iter().position(|&b| b == b'\n') else {
            self.keep(bytes);
            return (bytes.len(), None);
        };
        self.keep(&bytes[..lf]);
        let line = std::mem::take(&mut self.partial);
        if std::mem::take(&mut self.overlong) {
            warn!("console: a line over {MAX_LINE} bytes was cut short");
        }
        let (to, text) = addressee(line.strip_suffix(b"\r").unwrap_or(&line));
        let mut text = text.to_vec();
        text.push(b'\n');
        (lf + 1, Some(Typed::Line { to, text }))
    }

    fn keep(&mut self, part: &[u8]) {
        let room = MAX_LINE - self.partial.len();
        self.overlong |= part.len() > room;
        self.partial
            .extend_from_slice(&part[..part.len().min(room)]);
    }
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
                    crate::os::sockets::reason(&e)
                )
            })
            .ok();
        Console::new(input)
    }

    fn new(input: Option<File>) -> Console {
        Console {
            input,
            read_buf: Box::new([0; READ_SIZE]),
            cut_from: 0,
            read_len: 0,
            typing: Typing::default(),
            waiting: VecDeque::new(),
            next_number: 1,
            dropped_run: 0,
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

    /// Reads standard input for one turn: until it would block, or until the turn's lines
    /// or reads are used up. Returns what was typed, and whether the turn was used up: then
    /// more may be there that no new readiness will announce, and the loop must come back.
    pub(crate) fn read(&mut self) -> (Vec<Typed>, bool) {
        let mut typed = Vec::new();
        let mut reads = 0;
        loop {
            while self.cut_from < self.read_len {
                if typed.len() == TURN_LINES {
                    return (typed, true);
                }
                let rest = &self.read_buf[self.cut_from..self.read_len];
                let (took, line) = self.typing.take(rest);
                self.cut_from += took;
                typed.extend(line);
            }
            let Some(input) = &mut self.input else {
                return (typed, false);
            };
            if reads == TURN_READS {
                return (typed, true);
            }
            reads += 1;
            match input.read(&mut self.read_buf[..]) {
                Ok(0) => {
                    trace!("console: read 0 bytes: the end of input");
                    if !self.typing.partial.is_empty() {
                        // A last line without its LF is a line all the same.
                        self.split(b"\n", &mut typed);
                    }
                    self.input = None;
                    typed.push(Typed::End);
                }
                Ok(n) => {
                    trace!("console: read {n} bytes {}", Escaped(&self.read_buf[..n]));
                    (self.cut_from, self.read_len) = (0, n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (typed, false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!(
                        "console: cannot read standard input ({}): the console ends",
                        crate::os::sockets::reason(&e)
                    );
                    self.input = None;
                    typed.push(Typed::End);
                }
            }
        }
    }

    /// Cuts `bytes` into lines, adding each finished one to `typed`.
    fn split(&mut self, mut bytes: &[u8], typed: &mut Vec<Typed>) {
        while !bytes.is_empty() {
            let (took, line) = self.typing.take(bytes);
            typed.extend(line);
            bytes = &bytes[took..];
        }
    }

    /// Counts a line dropped for want of a connection waiting for it; returns whether it is
    /// the first of a run, the one a warning names. A run lasts until a line goes to a
    /// connection or standard input has nothing more for now (`Console::end_of_drops`), so
    /// a flood of lines is one warning and a count, and each line typed by hand its own.
    pub(crate) fn dropped(&mut self) -> bool {
        self.dropped_run += 1;
        self.dropped_run == 1
    }

    /// Ends a run of dropped lines; returns how many followed the one a warning named.
    pub(crate) fn end_of_drops(&mut self) -> u64 {
        std::mem::take(&mut self.dropped_run).saturating_sub(1)
    }
}

/// The loop's side of the console: typed lines delivered to the connections that wait.
impl Server {
    /// Lines from the operator go to the connections waiting for them; at the end of input
    /// the waiting ones get the `--ack-reply` text. One turn of standard input at a time.
    pub(super) fn on_console(&mut self, now: Millis) {
        let Some(console) = &mut self.console else {
            return;
        };
        let (typed, turn_used) = console.read();
        self.console_again = turn_used;
        for t in typed {
            match t {
                Typed::Line { to, text } => match self.take_waiting(to) {
                    Some(key) => {
                        self.end_of_drops();
                        self.answer_operator(key, &text, now);
                    }
                    None => {
                        // The first of a run of dropped lines is named; the rest are counted.
                        if self.console.as_mut().is_some_and(Console::dropped) {
                            match to {
                                Some(n) => {
                                    warn!("console: connection {n} is not waiting; line dropped")
                                }
                                None => warn!("console: no connection is waiting; line dropped"),
                            }
                        }
                    }
                },
                Typed::End => {
                    self.end_of_drops();
                    info!("console: end of input; connections waiting get the --ack-reply text");
                    let waiting = match &mut self.console {
                        Some(console) => console.take_all_waiting(),
                        None => Default::default(),
                    };
                    let reply = self.config.ack_reply.clone();
                    for (number, key) in waiting {
                        if self.is_waiting(number, key) {
                            self.answer_operator(key, &reply, now);
                        }
                    }
                }
            }
        }
        if !turn_used {
            self.end_of_drops();
        }
    }

    /// Ends a run of lines dropped by the console, saying how many there were past the one
    /// already named.
    fn end_of_drops(&mut self) {
        let more = self.console.as_mut().map_or(0, Console::end_of_drops);
        if more > 0 {
            warn!("console: {more} more line(s) dropped: no connection was waiting for them");
        }
    }

    /// The key of the waiting connection a line `to` connection N (or to whoever waited
    /// longest) is for. Entries of connections that closed meanwhile are dropped on the way.
    fn take_waiting(&mut self, to: Option<u64>) -> Option<usize> {
        loop {
            let (number, key) = self.console.as_mut()?.take_waiting(to)?;
            if self.is_waiting(number, key) {
                return Some(key);
            }
        }
    }

    /// Whether the connection at `key` is console connection `number`, waiting.
    fn is_waiting(&self, number: u64, key: usize) -> bool {
        self.conns
            .get(key)
            .is_some_and(|c| c.state() == State::Waiting && c.console_number() == Some(number))
    }

    fn answer_operator(&mut self, key: usize, text: &[u8], now: Millis) {
        self.drive(key, now, |conn, cx| conn.on_operator(key, text, cx));
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
        Console::new(None)
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

    /// A console reading the non-blocking read end of a pipe, and the (blocking) write end.
    fn piped_console() -> (Console, File) {
        use std::os::fd::FromRawFd;
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two descriptors of the array it is given; fcntl sets a flag
        // of the first.
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
            assert_eq!(libc::fcntl(fds[0], libc::F_SETFL, libc::O_NONBLOCK), 0);
        }
        // SAFETY: both descriptors are new, and owned here alone.
        let (read, write) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
        (Console::new(Some(read)), write)
    }

    fn line(text: &str) -> Typed {
        Typed::Line {
            to: None,
            text: format!("{text}\n").into_bytes(),
        }
    }

    #[test]
    fn a_turn_takes_its_share_of_lines_and_the_next_goes_on_where_it_stopped() {
        use std::io::Write;
        let (mut c, mut w) = piped_console();
        let text: String = (0..100).map(|i| format!("{i}\n")).collect();
        w.write_all(text.as_bytes()).unwrap();
        let mut turns = Vec::new();
        loop {
            let (typed, used) = c.read();
            turns.push(typed);
            if !used {
                break;
            }
        }
        let sizes: Vec<usize> = turns.iter().map(Vec::len).collect();
        assert_eq!(
            sizes,
            [TURN_LINES, TURN_LINES, TURN_LINES, 100 - 3 * TURN_LINES]
        );
        let want: Vec<Typed> = (0..100).map(|i| line(&i.to_string())).collect();
        assert_eq!(turns.into_iter().flatten().collect::<Vec<_>>(), want);
        // Nothing more until the end of input.
        assert_eq!(c.read(), (Vec::new(), false));
        w.write_all(b"last").unwrap();
        drop(w);
        assert_eq!(c.read(), (vec![line("last"), Typed::End], false));
        assert!(!c.is_open());
    }

    #[test]
    fn a_turn_ends_after_its_share_of_reads_holding_one_line_at_most() {
        use std::io::Write;
        let (mut c, mut w) = piped_console();
        // Longer than a turn's reads, with no LF: the turn ends with nothing to show.
        let long = [&vec![b'y'; (TURN_READS + 2) * READ_SIZE][..], b"\n"].concat();
        // SAFETY: fcntl sets the size of the pipe behind a descriptor of ours.
        let room = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 2 * long.len()) };
        assert!(room >= long.len() as i32, "pipe size {room}");
        w.write_all(&long).unwrap();
        let (typed, used) = c.read();
        assert!(typed.is_empty() && used, "{typed:?}");
        assert_eq!(c.typing.partial.len(), MAX_LINE);
        let (lines, used) = c.read();
        assert!(!used);
        let [Typed::Line { text, .. }] = &lines[..] else {
            panic!("{lines:?}")
        };
        assert_eq!(text.len(), MAX_LINE + 1);
    }

    #[test]
    fn a_run_of_dropped_lines_is_named_once_and_counted() {
        let mut c = closed_console();
        assert_eq!(c.end_of_drops(), 0);
        assert!(c.dropped());
        assert!(!c.dropped());
        assert!(!c.dropped());
        assert_eq!(c.end_of_drops(), 2);
        assert!(c.dropped());
        assert_eq!(c.end_of_drops(), 0);
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
