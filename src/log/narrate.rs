//! Repeats collapsed in the trace: a client that floods a connection the daemon holds back
//! makes the same few steps over and over (read, write, read, write...), and a learner wants
//! a line per change, not a screenful of identical ones.
//!
//! Lines are compared with their numbers masked (`read 65536 bytes` and `read 1024 bytes`
//! are the same step). When the last lines form a cycle that has just repeated (one to
//! [`MAX_PERIOD`] lines long), the lines that continue it are left out, and when the cycle
//! breaks, one line says how many were. Only `trace` lines collapse: a line at any other level
//! is always shown, and ends a run.

use std::collections::hash_map::DefaultHasher;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

/// The longest cycle of lines recognised.
pub(crate) const MAX_PERIOD: usize = 4;

/// What to do with a line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Show it, after `summary` when a run of left-out lines just ended.
    Show { summary: Option<String> },
    /// Leave it out: it continues a cycle already shown twice.
    Skip,
}

/// The memory of the last lines.
#[derive(Debug, Default)]
pub(crate) struct Collapse {
    /// Masked hashes of the last lines, newest last (at most `2 * MAX_PERIOD`).
    recent: VecDeque<u64>,
    /// The length of the cycle being left out, while one is.
    period: Option<usize>,
    /// How many lines were left out in this run.
    left_out: u64,
}

impl Collapse {
    /// Decides about a line; `trace` says whether it is a trace line (the only ones that
    /// collapse).
    pub(crate) fn line(&mut self, trace: bool, text: &str) -> Verdict {
        if !trace {
            let summary = self.end_run();
            self.recent.clear();
            return Verdict::Show { summary };
        }
        let h = masked_hash(text);
        if let Some(period) = self.period {
            if self.recent.len() >= period && self.recent[self.recent.len() - period] == h {
                self.left_out += 1;
                self.remember(h);
                return Verdict::Skip;
            }
        }
        let summary = self.end_run();
        self.remember(h);
        self.period = (1..=MAX_PERIOD).find(|&p| self.repeats(p));
        Verdict::Show { summary }
    }

    /// Whether the last `2 * period` lines are one cycle shown twice.
    fn repeats(&self, period: usize) -> bool {
        let n = self.recent.len();
        n >= 2 * period
            && (0..period).all(|i| self.recent[n - 1 - i] == self.recent[n - 1 - period - i])
    }

    fn remember(&mut self, h: u64) {
        if self.recent.len() == 2 * MAX_PERIOD {
            self.recent.pop_front();
        }
        self.recent.push_back(h);
    }

    /// Ends a run of left-out lines; returns the line that says so.
    fn end_run(&mut self) -> Option<String> {
        let period = self.period.take()?;
        let n = std::mem::take(&mut self.left_out);
        (n > 0).then(|| match period {
            1 => format!("(the line above, {n} more times, numbers aside)"),
            p => format!("(the {p} lines above, {n} more lines in the same cycle, numbers aside)"),
        })
    }
}

/// A hash of `text` with every number (digits, and points between them: `29.998`,
/// `127.0.0.1`) counted as one `#`.
fn masked_hash(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    let mut in_number = false;
    for c in text.chars() {
        if c.is_ascii_digit() || (in_number && c == '.') {
            if !in_number {
                '#'.hash(&mut hasher);
            }
            in_number = true;
        } else {
            c.hash(&mut hasher);
            in_number = false;
        }
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(c: &mut Collapse, lines: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for line in lines {
            if let Verdict::Show { summary } = c.line(true, line) {
                out.extend(summary);
                out.push(line.to_string());
            }
        }
        out
    }

    #[test]
    fn a_cycle_is_shown_twice_then_counted() {
        let mut c = Collapse::default();
        let mut lines = vec!["accept -> conn 0"];
        for i in 0..50 {
            lines.push(if i % 2 == 0 {
                "read 65536 bytes"
            } else {
                "write 65536/65536 bytes"
            });
        }
        lines.push("interest now READABLE | WRITABLE");
        let out = shown(&mut c, &lines);
        assert_eq!(
            out,
            [
                "accept -> conn 0",
                "read 65536 bytes",
                "write 65536/65536 bytes",
                "read 65536 bytes",
                "write 65536/65536 bytes",
                "(the 2 lines above, 46 more lines in the same cycle, numbers aside)",
                "interest now READABLE | WRITABLE",
            ]
        );
    }

    #[test]
    fn numbers_do_not_make_lines_different() {
        let mut c = Collapse::default();
        let out = shown(
            &mut c,
            &[
                "poll: timeout 29.998 s",
                "poll: timeout 29.5 s",
                "poll: timeout 1 s",
                "done",
            ],
        );
        assert_eq!(
            out,
            [
                "poll: timeout 29.998 s",
                "poll: timeout 29.5 s",
                "(the line above, 1 more times, numbers aside)",
                "done"
            ]
        );
    }

    #[test]
    fn lines_at_other_levels_always_show_and_end_a_run() {
        let mut c = Collapse::default();
        for _ in 0..5 {
            c.line(true, "same");
        }
        assert_eq!(
            c.line(false, "an info line"),
            Verdict::Show {
                summary: Some("(the line above, 3 more times, numbers aside)".into())
            }
        );
        assert_eq!(c.line(true, "same"), Verdict::Show { summary: None });
    }

    #[test]
    fn different_lines_all_show() {
        let mut c = Collapse::default();
        let lines = ["a", "b", "c", "d", "e", "a", "b", "c", "d", "e"];
        assert_eq!(shown(&mut c, &lines).len(), lines.len());
    }
}
