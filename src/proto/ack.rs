//! The `ack` service, the response server of the Python socket tutorials: each read comes back followed by
//! `\nI get it!\n` and the configured reply text, until the client half-closes.
//!
//! With the operator console (`--console`), each read's `I get it!` is followed instead by a
//! line the operator types: the session asks for it ([`Step::AskOperator`]) and reads
//! nothing more from its client until it comes ([`Ack::on_operator`]).

use super::echo::Echo;
use super::Step;

/// The most bytes one read may take: each read of up to this many gets its own acknowledgement.
pub(super) const MAX_READ: usize = 4096;

const ACK: &[u8] = b"\nI get it!\n";

/// An echo that acknowledges every read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ack {
    echo: Echo,
    /// The console's number for this connection, when the daemon has a console.
    number: Option<u64>,
}

impl Ack {
    /// An `ack` session the operator console knows as connection `number`.
    pub fn numbered(number: u64) -> Ack {
        Ack {
            echo: Echo,
            number: Some(number),
        }
    }

    /// The console's number for this connection, if it has one.
    pub fn number(&self) -> Option<u64> {
        self.number
    }

    /// Answers one read: the bytes, `I get it!`, then the reply text, or, while the console
    /// is open (`console`) and knows this connection, a request for the operator's line.
    pub fn on_data(&mut self, data: &[u8], reply: &[u8], console: bool, out: &mut Vec<u8>) -> Step {
        let step = self.echo.on_data(data, out);
        out.extend_from_slice(ACK);
        if console && self.number.is_some() {
            return Step::AskOperator;
        }
        out.extend_from_slice(reply);
        step
    }

    /// What the operator said (or, when the console closed, the reply text) goes out; the
    /// session reads again.
    pub fn on_operator(&mut self, text: &[u8], out: &mut Vec<u8>) -> Step {
        out.extend_from_slice(text);
        Step::NeedMore
    }

    pub fn on_eof(&mut self) -> Step {
        self.echo.on_eof()
    }

    pub fn on_timeout(&mut self) -> Step {
        self.echo.on_timeout()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_read_is_acknowledged_with_the_reply_text() {
        let mut out = Vec::new();
        let mut a = Ack::default();
        a.on_data(b"hello", b"", false, &mut out);
        assert_eq!(out, b"hello\nI get it!\n");
        out.clear();
        a.on_data(b"x", b"ok\n", false, &mut out);
        assert_eq!(out, b"x\nI get it!\nok\n");
        assert_eq!(a.on_eof(), Step::Answered);
        assert_eq!(a.on_timeout(), Step::Quit);
    }

    #[test]
    fn with_the_console_each_read_waits_for_the_operators_line() {
        let mut out = Vec::new();
        let mut a = Ack::numbered(7);
        assert_eq!(
            a.on_data(b"hello", b"ok\n", true, &mut out),
            Step::AskOperator
        );
        assert_eq!(out, b"hello\nI get it!\n");
        assert_eq!(a.on_operator(b"fine\n", &mut out), Step::NeedMore);
        assert_eq!(out, b"hello\nI get it!\nfine\n");
        // Once the console has closed, the reply text follows at once again.
        out.clear();
        assert_eq!(a.on_data(b"x", b"ok\n", false, &mut out), Step::NeedMore);
        assert_eq!(out, b"x\nI get it!\nok\n");
        assert_eq!(a.number(), Some(7));
    }
}
