//! The `echo` service (RFC 862): every byte goes back until the client half-closes.

use super::Step;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Echo {
    finished: bool,
}

impl Echo {
    pub fn on_data(&mut self, data: &[u8], out: &mut Vec<u8>) -> Step {
        if self.finished {
            return Step::Ignored;
        }
        out.extend_from_slice(data);
        Step::NeedMore
    }

    /// End of input: what was echoed is all there is.
    pub fn on_eof(&mut self) -> Step {
        self.finish()
    }

    /// Idle too long, or the daemon is stopping: end without a message (a message would
    /// corrupt the echoed stream).
    pub fn on_timeout(&mut self) -> Step {
        self.finish()
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn finish(&mut self) -> Step {
        if std::mem::replace(&mut self.finished, true) {
            Step::Ignored
        } else {
            Step::Answered
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_until_eof_then_ignores() {
        let mut out = Vec::new();
        let mut e = Echo::default();
        assert_eq!(e.on_data(b"ab", &mut out), Step::NeedMore);
        assert_eq!(e.on_data(b"\0\xff", &mut out), Step::NeedMore);
        assert_eq!(e.on_eof(), Step::Answered);
        assert_eq!(e.on_data(b"late", &mut out), Step::Ignored);
        assert_eq!(out, b"ab\0\xff");
        assert!(e.is_finished());
    }
}
