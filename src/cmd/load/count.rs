//! One `count` exchange seen from the client, as a state machine that never touches a socket.
//!
//! ```text
//!   Connecting ──► ReadingWelcome ──► Welcomed ──release──► SendingLine ──► ReadingReply ──EOF──► Done
//!                  (Greeting, Peer,                          (line + LF,      (the exact
//!                   Prompt)                                   then half-close) reply)
//!   any state ──► Failed(kind): a reset, a deadline, or a byte the protocol does not allow
//! ```
//! The welcome is checked by shape, `Welcome, <peer>\nPlease enter a string: `, without
//! storing it; the reply must be exactly `You entered N characters.\n` (N counted by the
//! daemon's own rules from the line sent) followed by EOF. Anything the server says out of
//! turn (an `Error: ...` line instead of the welcome, text while the client holds or sends,
//! bytes after the reply) is a bad reply.
//!
//! The driver (`tcp.rs`) feeds it `on_connected`, `on_data`, `on_eof`, `on_failure` and
//! `on_deadline`, writes what `unsent` returns and reports it with `on_sent`, which says when
//! to shut the write side down. A client is 8 bytes: the line and the expected reply live
//! once, in the [`Exchange`] every client shares.

use super::report::Failure;
use crate::proto::LineCounter;

const GREETING: &[u8] = b"Welcome, ";
const PROMPT: &[u8] = b"Please enter a string: ";
/// The longest peer address a welcome may name (`[v6%scope]:port` fits).
const MAX_PEER: u32 = 64;

/// What every client of a run sends and expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Exchange {
    /// The line and its LF.
    request: Vec<u8>,
    /// `You entered N characters.\n`.
    reply: Vec<u8>,
}

impl Exchange {
    /// The exchange for `line` (without its LF; it must hold none).
    pub(super) fn new(line: &[u8]) -> Exchange {
        let mut counter = LineCounter::default();
        counter.push(line);
        let mut request = line.to_vec();
        request.push(b'\n');
        Exchange {
            request,
            reply: format!("You entered {} characters.\n", counter.finish()).into_bytes(),
        }
    }
}

/// The part of the welcome being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WelcomePart {
    /// `Welcome, `
    Greeting,
    /// The client's address as the server saw it, up to the LF.
    Peer,
    /// `Please enter a string: `
    Prompt,
}

/// Where an exchange is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CountState {
    /// The TCP handshake is under way.
    Connecting,
    ReadingWelcome(WelcomePart),
    /// The prompt is in; the line waits for `release` (`hold` keeps connections here).
    Welcomed,
    /// Writing the line and its LF.
    SendingLine,
    /// The write side is shut; reading the reply up to the server's EOF.
    ReadingReply,
    /// The reply was right and the server closed.
    Done,
    Failed(Failure),
}

/// One client's exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct CountClient {
    state: CountState,
    /// Bytes matched of the current part (reading states) or sent of the line (SendingLine).
    at: u32,
}

impl Default for CountClient {
    fn default() -> Self {
        CountClient {
            state: CountState::Connecting,
            at: 0,
        }
    }
}

impl CountClient {
    pub(super) fn state(&self) -> CountState {
        self.state
    }

    /// Done or failed: nothing more will happen.
    pub(super) fn is_finished(&self) -> bool {
        matches!(self.state, CountState::Done | CountState::Failed(_))
    }

    /// Connecting or reading the welcome (what `hold` limits the number of at once).
    pub(super) fn is_opening(&self) -> bool {
        matches!(
            self.state,
            CountState::Connecting | CountState::ReadingWelcome(_)
        )
    }

    /// The handshake completed.
    pub(super) fn on_connected(&mut self) {
        if self.state == CountState::Connecting {
            self.enter(CountState::ReadingWelcome(WelcomePart::Greeting));
        }
    }

    /// Bytes from the server.
    pub(super) fn on_data(&mut self, data: &[u8], exchange: &Exchange) {
        match self.state {
            CountState::ReadingWelcome(_) => {
                for (i, &b) in data.iter().enumerate() {
                    self.welcome_byte(b);
                    if !matches!(self.state, CountState::ReadingWelcome(_)) {
                        if i + 1 < data.len() {
                            self.fail(Failure::BadReply);
                        }
                        return;
                    }
                }
            }
            CountState::ReadingReply => {
                let rest = &exchange.reply[self.at as usize..];
                if rest.starts_with(data) {
                    self.at += data.len() as u32;
                } else {
                    self.fail(Failure::BadReply);
                }
            }
            CountState::Welcomed | CountState::SendingLine => self.fail(Failure::BadReply),
            CountState::Connecting | CountState::Done | CountState::Failed(_) => {}
        }
    }

    /// The server closed its side: the end of a complete reply, or too early.
    pub(super) fn on_eof(&mut self, exchange: &Exchange) {
        if self.state == CountState::ReadingReply && self.at as usize == exchange.reply.len() {
            self.enter(CountState::Done);
        } else {
            self.fail(Failure::BadReply);
        }
    }

    /// The socket failed this way.
    pub(super) fn on_failure(&mut self, failure: Failure) {
        self.fail(failure);
    }

    /// The exchange's deadline passed.
    pub(super) fn on_deadline(&mut self) {
        self.fail(Failure::TimedOut);
    }

    /// Sends the line now (from `Welcomed`).
    pub(super) fn release(&mut self) {
        if self.state == CountState::Welcomed {
            self.enter(CountState::SendingLine);
        }
    }

    /// What to write next (nothing unless sending the line).
    pub(super) fn unsent<'a>(&self, exchange: &'a Exchange) -> &'a [u8] {
        match self.state {
            CountState::SendingLine => &exchange.request[self.at as usize..],
            _ => &[],
        }
    }

    /// `n` bytes of `unsent` were written. Returns true when the line is complete: the
    /// driver shuts the write side down now.
    pub(super) fn on_sent(&mut self, n: usize, exchange: &Exchange) -> bool {
        if self.state != CountState::SendingLine {
            return false;
        }
        self.at += n as u32;
        if self.at as usize >= exchange.request.len() {
            self.enter(CountState::ReadingReply);
            return true;
        }
        false
    }

    fn welcome_byte(&mut self, b: u8) {
        let CountState::ReadingWelcome(part) = self.state else {
            return;
        };
        match part {
            WelcomePart::Peer if b == b'\n' && self.at > 0 => {
                self.enter(CountState::ReadingWelcome(WelcomePart::Prompt))
            }
            WelcomePart::Peer if b != b'\n' && self.at < MAX_PEER => self.at += 1,
            WelcomePart::Peer => self.fail(Failure::BadReply),
            WelcomePart::Greeting | WelcomePart::Prompt => {
                let (text, then) = match part {
                    WelcomePart::Greeting => {
                        (GREETING, CountState::ReadingWelcome(WelcomePart::Peer))
                    }
                    _ => (PROMPT, CountState::Welcomed),
                };
                if text.get(self.at as usize) != Some(&b) {
                    self.fail(Failure::BadReply);
                } else if self.at as usize + 1 == text.len() {
                    self.enter(then);
                } else {
                    self.at += 1;
                }
            }
        }
    }

    fn enter(&mut self, state: CountState) {
        self.state = state;
        self.at = 0;
    }

    fn fail(&mut self, failure: Failure) {
        if !self.is_finished() {
            self.enter(CountState::Failed(failure));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WELCOME: &[u8] = b"Welcome, 127.0.0.1:40512\nPlease enter a string: ";

    fn welcomed(ex: &Exchange) -> CountClient {
        let mut c = CountClient::default();
        c.on_connected();
        c.on_data(WELCOME, ex);
        assert_eq!(c.state(), CountState::Welcomed);
        c
    }

    /// A client that has sent the whole line.
    fn replying(ex: &Exchange) -> CountClient {
        let mut c = welcomed(ex);
        c.release();
        let n = c.unsent(ex).len();
        assert!(c.on_sent(n, ex));
        c
    }

    #[test]
    fn a_whole_exchange_completes() {
        let ex = Exchange::new(b"hello, world");
        let mut c = CountClient::default();
        assert!(c.is_opening());
        c.on_connected();
        c.on_data(WELCOME, &ex);
        assert!(!c.is_opening());
        assert_eq!(c.unsent(&ex), b"", "nothing is sent before the release");
        c.release();
        assert_eq!(c.unsent(&ex), b"hello, world\n");
        assert!(!c.on_sent(5, &ex));
        assert_eq!(c.unsent(&ex), b", world\n");
        assert!(c.on_sent(8, &ex), "the last byte asks for the half-close");
        assert_eq!(c.state(), CountState::ReadingReply);
        c.on_data(b"You entered 12 ", &ex);
        c.on_data(b"characters.\n", &ex);
        assert!(!c.is_finished());
        c.on_eof(&ex);
        assert_eq!(c.state(), CountState::Done);
    }

    #[test]
    fn the_welcome_may_arrive_a_byte_at_a_time() {
        let ex = Exchange::new(b"x");
        let mut c = CountClient::default();
        c.on_connected();
        for b in b"Welcome, [::1]:40512\nPlease enter a string: " {
            c.on_data(std::slice::from_ref(b), &ex);
        }
        assert_eq!(c.state(), CountState::Welcomed);
    }

    #[test]
    fn the_expected_count_follows_the_servers_rules() {
        assert_eq!(
            Exchange::new("  héllo \t".as_bytes()).reply,
            b"You entered 5 characters.\n"
        );
        assert_eq!(
            Exchange::new(b"\xff\xfeab").reply,
            b"You entered 4 characters.\n"
        );
        assert_eq!(Exchange::new(b"").reply, b"You entered 0 characters.\n");
    }

    #[test]
    fn a_wrong_count_bytes_after_the_reply_or_an_early_eof_are_bad_replies() {
        let ex = Exchange::new(b"hello, world");
        for (reply, then_eof) in [
            (&b"You entered 13 characters.\n"[..], false),
            (b"You entered 12 characters.\nmore", false),
            (b"You entered 12", true),
        ] {
            let mut c = replying(&ex);
            c.on_data(reply, &ex);
            if then_eof {
                c.on_eof(&ex);
            }
            assert_eq!(c.state(), CountState::Failed(Failure::BadReply));
        }
    }

    #[test]
    fn a_busy_message_instead_of_the_welcome_is_a_bad_reply() {
        let ex = Exchange::new(b"x");
        let mut c = CountClient::default();
        c.on_connected();
        c.on_data(b"Error: server busy (10000 connections)\n", &ex);
        assert_eq!(c.state(), CountState::Failed(Failure::BadReply));
    }

    #[test]
    fn a_welcome_without_a_peer_or_with_text_after_the_prompt_is_a_bad_reply() {
        let ex = Exchange::new(b"x");
        for welcome in [
            &b"Welcome, \nPlease enter a string: "[..],
            b"Welcome, 127.0.0.1:1\nPlease enter a string: extra",
            &[b"Welcome, ".as_slice(), &[b'9'; 65]].concat(),
        ] {
            let mut c = CountClient::default();
            c.on_connected();
            c.on_data(welcome, &ex);
            assert_eq!(c.state(), CountState::Failed(Failure::BadReply));
        }
    }

    #[test]
    fn a_held_connection_that_hears_anything_fails() {
        let ex = Exchange::new(b"x");
        let mut c = welcomed(&ex);
        c.on_data(b"Error: timed out after 30 s\n", &ex);
        assert_eq!(c.state(), CountState::Failed(Failure::BadReply));
        let mut c = welcomed(&ex);
        c.on_eof(&ex);
        assert_eq!(c.state(), CountState::Failed(Failure::BadReply));
    }

    #[test]
    fn the_first_failure_sticks() {
        let ex = Exchange::new(b"x");
        let mut c = replying(&ex);
        c.on_deadline();
        c.on_failure(Failure::Reset);
        c.on_eof(&ex);
        assert_eq!(c.state(), CountState::Failed(Failure::TimedOut));
        let mut done = replying(&ex);
        done.on_data(b"You entered 1 characters.\n", &ex);
        done.on_eof(&ex);
        done.on_deadline();
        assert_eq!(done.state(), CountState::Done);
    }
}
