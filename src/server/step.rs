//! Stepping through the loop (`--step`), for learners: before each wait in the poll the loop
//! shows what it holds (connections and their states, the again-list, the nearest deadline
//! and so the timeout it is about to use), and after each wake the events and what it will do
//! with each; each time it waits for a line on standard input. `c` runs freely until the next
//! line typed. While it waits nothing is served: the kernel keeps queuing (connections in the
//! listen backlog, bytes in socket buffers) and the loop finds it all at the next step.
//!
//! The pause waits on standard input and on `SIGINT`/`SIGTERM` together, in a poll of its own:
//! a signal ends the stepping, so the loop runs on to handle it (drain and stop) as always. A
//! standard input that is neither a terminal nor a pipe (`/dev/null`, a file), or that ends,
//! makes the loop run freely, with a warning.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};

use log::warn;
use mio::event::Event;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use signal_hook_mio::v1_0::Signals;

use super::timers::Due;
use super::token::Target;
use super::Server;
use crate::clock::Millis;
use crate::proto::Transport;

/// The pause poll's tokens.
const INPUT: Token = Token(0);
const SIGNALS: Token = Token(1);

/// Whether the loop stops at each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// It waits for a line before each wait and after each wake.
    Stepping,
    /// It runs freely until the next line typed (`c`).
    Running,
    /// It runs freely for good (standard input ended, or a signal came).
    Free,
}

/// Standard input as the learner's step key, and the poll a pause waits in.
pub(crate) struct Stepper {
    /// Standard input, opened again non-blocking.
    input: File,
    /// Bytes read that are not a whole line yet.
    partial: Vec<u8>,
    mode: Mode,
    pause: Poll,
    signals: Signals,
}

impl std::fmt::Debug for Stepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stepper")
            .field("mode", &self.mode)
            .field("partial", &self.partial.len())
            .finish_non_exhaustive()
    }
}

impl Stepper {
    /// Opens standard input for stepping, watched in the loop's poll under `token` too (so
    /// a line typed while the loop runs freely brings the stepping back). `None`, with a
    /// warning, when standard input cannot be used: the loop then runs freely.
    pub(crate) fn open(registry: &Registry, token: Token) -> Option<Stepper> {
        Stepper::try_open(registry, token)
            .map_err(|e| warn!("--step: {e}: running freely"))
            .ok()
    }

    fn try_open(registry: &Registry, token: Token) -> Result<Stepper, String> {
        let input = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/proc/self/fd/0")
            .map_err(|e| format!("standard input cannot be opened ({e})"))?;
        let kind = input
            .metadata()
            .map_err(|e| format!("standard input cannot be read ({e})"))?
            .file_type();
        if !(kind.is_char_device() && is_terminal(&input) || kind.is_fifo()) {
            return Err("standard input is neither a terminal nor a pipe".into());
        }
        let fd = input.as_raw_fd();
        let pause = Poll::new().map_err(|e| e.to_string())?;
        let mut signals = Signals::new([libc::SIGINT, libc::SIGTERM]).map_err(|e| e.to_string())?;
        let mut setup = || -> io::Result<()> {
            registry.register(&mut SourceFd(&fd), token, Interest::READABLE)?;
            let own = pause.registry();
            own.register(&mut SourceFd(&fd), INPUT, Interest::READABLE)?;
            own.register(&mut signals, SIGNALS, Interest::READABLE)
        };
        setup().map_err(|e| e.to_string())?;
        Ok(Stepper {
            input,
            partial: Vec::new(),
            mode: Mode::Stepping,
            pause,
            signals,
        })
    }

    fn stepping(&self) -> bool {
        self.mode == Mode::Stepping
    }

    /// Shows `what`, then waits for a line (or a signal).
    fn pause(&mut self, what: &str) {
        if !self.stepping() {
            return;
        }
        let mut err = io::stderr().lock();
        let _ = write!(err, "{what}step: Enter to go on, c to run freely > ");
        let _ = err.flush();
        let mut events = Events::with_capacity(4);
        loop {
            if let Some(line) = self.take_line() {
                if line.trim() == "c" {
                    self.mode = Mode::Running;
                    eprintln!("step: running freely; type a line to step again");
                }
                return;
            }
            if self.mode == Mode::Free {
                return;
            }
            match self.pause.poll(&mut events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.run_freely(&format!("the pause failed ({e})")),
            }
            if events.iter().any(|e| e.token() == SIGNALS) {
                // The loop's own signal pipe has the signal too: it stops as always.
                let _ = self.signals.pending().count();
                eprintln!();
                return self.run_freely("a signal came; the loop runs on to handle it");
            }
            self.read_input();
        }
    }

    /// The loop's poll says standard input has something: while the loop runs freely, a line
    /// brings the stepping back.
    pub(crate) fn on_input(&mut self) {
        if self.mode != Mode::Running {
            return;
        }
        self.read_input();
        if self.take_line().is_some() {
            self.mode = Mode::Stepping;
            eprintln!("step: stepping again");
        }
    }

    /// Reads what standard input holds, until it would block or ends.
    fn read_input(&mut self) {
        let mut buf = [0u8; 256];
        loop {
            match self.input.read(&mut buf) {
                Ok(0) => return self.run_freely("standard input ended"),
                // A learner types a few bytes a line: more than a page unread is dropped.
                Ok(n) if self.partial.len() < 4096 => self.partial.extend_from_slice(&buf[..n]),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => return self.run_freely(&format!("standard input failed ({e})")),
            }
        }
    }

    /// The first whole line typed, without its LF.
    fn take_line(&mut self) -> Option<String> {
        let end = self.partial.iter().position(|&b| b == b'\n')?;
        let line: Vec<u8> = self.partial.drain(..=end).collect();
        Some(String::from_utf8_lossy(&line[..end]).into_owned())
    }

    fn run_freely(&mut self, why: &str) {
        if self.mode != Mode::Free {
            warn!("--step: {why}: running freely");
            self.mode = Mode::Free;
        }
    }
}

/// Whether `file` is a terminal.
fn is_terminal(file: &File) -> bool {
    std::io::IsTerminal::is_terminal(file)
}

impl Server {
    /// Whether the loop stops at each step now.
    pub(super) fn stepping(&self) -> bool {
        self.stepper.as_ref().is_some_and(Stepper::stepping)
    }

    /// Before the wait: what the loop holds, and how long it will wait.
    pub(super) fn step_before_wait(&mut self, nearest: Option<(Millis, Due)>) {
        let now = self.clock.now();
        let mut text = format!(
            "\nstep: about to wait in the poll; {} connection(s) open\n",
            self.conns.open()
        );
        for (key, conn) in self.conns.iter() {
            let instance = self.instances[self.conns.instance(key)].counted.instance;
            let deadline = match conn.deadline() {
                Some(d) => format!(", deadline in {:.3} s", seconds(d.due, now)),
                None => String::new(),
            };
            text += &format!(
                "  conn {key} ({}): {}{deadline}\n",
                instance.service,
                conn.state()
            );
        }
        let again = self.conns.again.list();
        let udp_again = self.udp.again.list();
        if again.is_empty() && udp_again.is_empty() {
            text += "  again-list: empty\n";
        } else {
            text += &format!("  again-list: conns {again:?}, UDP sockets {udp_again:?}: the poll will not sleep (timeout 0)\n");
        }
        text += &match nearest {
            Some((at, due)) => format!(
                "  nearest deadline: {due}, in {:.3} s: that is the poll's timeout\n",
                seconds(at, now)
            ),
            None => "  no deadline armed: the poll may sleep for ever\n".to_string(),
        };
        if let Some(stepper) = &mut self.stepper {
            stepper.pause(&text);
        }
    }

    /// After the wake: the events, and what the loop will do with each.
    pub(super) fn step_after_wake(&mut self, events: &Events) {
        let mut text = format!("\nstep: woke with {} event(s)\n", events.iter().count());
        for event in events.iter() {
            text += &format!(
                "  {} {}: {}\n",
                self.name(event.token()),
                super::trace::readiness(event),
                self.plan(event)
            );
        }
        if events.is_empty() {
            text += "  none: the timeout passed; what is due is handled now\n";
        }
        if let Some(stepper) = &mut self.stepper {
            stepper.pause(&text);
        }
    }

    /// What the loop will do with `event`.
    fn plan(&self, event: &Event) -> String {
        match self.tokens.target(event.token()) {
            Target::Waker => "a stop request: drain".into(),
            Target::Signals => "read the signals and act on them".into(),
            Target::Console => "read the line you typed".into(),
            Target::Instance(i) => match self.instances[i].counted.instance.transport {
                Transport::Tcp => {
                    "accept until WouldBlock, each new connection judged and greeted".into()
                }
                Transport::Udp => "receive datagrams in batches and answer them".into(),
            },
            Target::Handover | Target::Successor => "the handover exchange".into(),
            Target::Conn(key) => {
                let fin = if event.is_read_closed() {
                    " (the client's FIN came: its EOF follows what is queued)"
                } else {
                    ""
                };
                match self.conns.get(key) {
                    Some(conn) => format!(
                        "pump it ({}): read, answer, write until WouldBlock{fin}",
                        conn.state()
                    ),
                    None => "nothing: it is gone".into(),
                }
            }
        }
    }
}

/// Seconds from `now` to `at` (0 when past).
fn seconds(at: Millis, now: Millis) -> f64 {
    at.saturating_sub(now) as f64 / 1000.0
}
