//! The loop's own lines in the trace (`RUST_LOG=trace`): why the poll sleeps as long as it
//! does, and what it woke up for, naming each socket. The connections narrate themselves
//! (`conn/`).

use std::time::Duration;

use log::trace;
use mio::event::Event;
use mio::{Events, Token};

use super::timers::Due;
use super::token::Target;
use super::Server;
use crate::clock::Millis;
use crate::proto::Transport;

impl Server {
    /// Says why the poll sleeps as long as it does.
    pub(super) fn narrate_sleep(&self, nearest: Option<(Millis, Due)>, timeout: Option<Duration>) {
        if !log::log_enabled!(log::Level::Trace) {
            return;
        }
        match (nearest, timeout) {
            (_, Some(Duration::ZERO)) if self.wants_again() => {
                trace!("poll: not sleeping: a socket used its turn and goes again (timeout 0)")
            }
            (Some((_, due)), Some(t)) => {
                trace!(
                    "poll: sleeping until {due} (timeout {:.3} s)",
                    t.as_secs_f64()
                )
            }
            _ => trace!("poll: sleeping, no deadline armed (timeout none)"),
        }
    }

    /// Says what the poll woke up for, naming each socket.
    pub(super) fn narrate_wake(&self, events: &Events) {
        if !log::log_enabled!(log::Level::Trace) {
            return;
        }
        const SHOWN: usize = 8;
        let mut n = 0;
        let mut text = String::new();
        for event in events.iter() {
            n += 1;
            if n <= SHOWN {
                let sep = if n == 1 { "" } else { "; " };
                text += &format!("{sep}{} {}", self.name(event.token()), readiness(event));
            }
        }
        match n {
            0 => trace!("poll: woke with no event: the timeout passed"),
            1 => trace!("poll: woke with 1 event: {text}"),
            n if n <= SHOWN => trace!("poll: woke with {n} events: {text}"),
            n => trace!("poll: woke with {n} events: {text}; and {} more", n - SHOWN),
        }
    }

    /// The name of the socket behind `token`, as the trace calls it.
    pub(super) fn name(&self, token: Token) -> String {
        match self.tokens.target(token) {
            Target::Waker => "the shutdown waker".to_string(),
            Target::Signals => "the signal pipe".to_string(),
            Target::Console if self.stepper.is_some() => {
                "standard input (the step key)".to_string()
            }
            Target::Console => "standard input (the console)".to_string(),
            Target::Instance(i) => {
                let instance = self.instances[i].counted.instance;
                match instance.transport {
                    Transport::Tcp => format!("listener {instance}"),
                    Transport::Udp => format!("socket {instance}"),
                }
            }
            Target::Conn(key) => format!("conn {key}"),
            Target::Handover => "the handover socket".to_string(),
            Target::Successor => "the new daemon taking over".to_string(),
        }
    }
}

/// What an event reports, in words.
pub(super) fn readiness(event: &Event) -> String {
    let mut words = Vec::new();
    if event.is_readable() {
        words.push("readable");
    }
    if event.is_writable() {
        words.push("writable");
    }
    // Closed for reading: the peer's FIN came (or both sides are shut). Closed for
    // writing: the peer can take nothing more (a hang-up, or our own shutdown).
    if event.is_read_closed() {
        words.push("closed for reading");
    }
    if event.is_write_closed() {
        words.push("closed for writing");
    }
    if event.is_error() {
        words.push("error");
    }
    words.join(", ")
}
