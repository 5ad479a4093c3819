//! The `echo` service (RFC 862): every byte goes back until the client half-closes.
//!
//! It keeps no state: what it says depends only on what just happened.

use super::Step;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Echo;

impl Echo {
    pub fn on_data(&mut self, data: &[u8], out: &mut Vec<u8>) -> Step {
        out.extend_from_slice(data);
        Step::NeedMore
    }

    /// End of input: what was echoed is all there is.
    pub fn on_eof(&mut self) -> Step {
        Step::Answered
    }

    /// Idle too long, or the daemon is stopping: end without a message (a message would
    /// corrupt the echoed stream), and what the client has not read need not reach it.
    pub fn on_timeout(&mut self) -> Step {
        Step::Quit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_until_eof() {
        let mut out = Vec::new();
        let mut e = Echo;
        assert_eq!(e.on_data(b"ab", &mut out), Step::NeedMore);
        assert_eq!(e.on_data(b"\0\xff", &mut out), Step::NeedMore);
        assert_eq!(e.on_eof(), Step::Answered);
        assert_eq!(out, b"ab\0\xff");
    }

    #[test]
    fn a_timeout_quits() {
        assert_eq!(Echo.on_timeout(), Step::Quit);
    }
}
