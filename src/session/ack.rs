//! The `ack` service, the seed documents' response server: each read comes back followed by
//! `\nI get it!\n` and the configured reply text, until the client half-closes.

use super::echo::Echo;
use super::Step;

/// The most bytes one read may take: each read of up to this many gets its own acknowledgement.
pub(super) const MAX_READ: usize = 4096;

const ACK: &[u8] = b"\nI get it!\n";

/// An echo that acknowledges every read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ack {
    echo: Echo,
}

impl Ack {
    pub fn on_data(&mut self, data: &[u8], reply: &[u8], out: &mut Vec<u8>) -> Step {
        let step = self.echo.on_data(data, out);
        out.extend_from_slice(ACK);
        out.extend_from_slice(reply);
        step
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
        a.on_data(b"hello", b"", &mut out);
        assert_eq!(out, b"hello\nI get it!\n");
        out.clear();
        a.on_data(b"x", b"ok\n", &mut out);
        assert_eq!(out, b"x\nI get it!\nok\n");
        assert_eq!(a.on_eof(), Step::Answered);
        assert_eq!(a.on_timeout(), Step::Quit);
    }
}
