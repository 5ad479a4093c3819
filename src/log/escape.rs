//! Client bytes made safe for a log line: escaped, and cut short when long.

use std::fmt;

/// Displays bytes with `\n`, `\xff` style escapes, at most [`Escaped::SHOWN`] of them.
pub(crate) struct Escaped<'a>(pub &'a [u8]);

impl Escaped<'_> {
    /// How many bytes a log line shows.
    pub(crate) const SHOWN: usize = 64;
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.0[..self.0.len().min(Self::SHOWN)];
        write!(f, "\"{}\"", shown.escape_ascii())?;
        if self.0.len() > shown.len() {
            write!(f, "... (+{} bytes)", self.0.len() - shown.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_are_escaped() {
        assert_eq!(
            Escaped(b"a\x1b[31m\n\xff").to_string(),
            "\"a\\x1b[31m\\n\\xff\""
        );
    }

    #[test]
    fn long_input_is_cut() {
        let s = Escaped(&[b'x'; 100]).to_string();
        assert!(s.ends_with("\"... (+36 bytes)"), "{s}");
    }
}
