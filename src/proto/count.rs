//! The `count` service: welcome, one line, `You entered N characters.`, close.
//!
//! The line is never stored. [`LineCounter`] counts it as its bytes stream past, in a few bytes
//! of state, so a waiting connection costs the same whatever its client has sent so far.
//!
//! Counting rules (docs/protocol.md, "TCP `count`"): the line is the bytes before the first
//! LF; whitespace (`char::is_whitespace`) is trimmed at both ends; the rest is read as UTF-8
//! where every byte that is not part of a valid sequence is one character that is never
//! whitespace.

use std::io::Write;
use std::net::SocketAddr;

use super::{Settings, Step};

/// A streaming UTF-8 decoder that counts the characters of a trimmed line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineCounter {
    /// Characters up to and including the last non-whitespace one. (`u32`: a line is at most
    /// `MAX_LINE_LIMIT` bytes, so no count overflows, and an idle connection should cost as
    /// few bytes as it can.)
    kept: u32,
    /// Whitespace characters seen since the last non-whitespace one (kept if more text follows).
    trailing_space: u32,
    /// Whether a non-whitespace character has been seen (ends the leading whitespace).
    started: bool,
    /// The bytes of an unfinished multi-byte sequence.
    partial: [u8; 3],
    /// How many bytes of `partial` are in use.
    partial_len: u8,
    /// How many bytes the unfinished sequence needs in all (2, 3 or 4).
    partial_need: u8,
}

impl LineCounter {
    /// Feeds bytes of the line (no LF among them).
    pub fn push(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            if self.partial_len == 0 {
                let run = bytes[i..].iter().take_while(|b| b.is_ascii()).count();
                self.push_ascii(&bytes[i..i + run]);
                i += run;
                if i == bytes.len() {
                    break;
                }
            }
            self.push_byte(bytes[i]);
            i += 1;
        }
    }

    /// The common case, without the decoder: ASCII, whose whitespace is 9..=13 and 32.
    fn push_ascii(&mut self, run: &[u8]) {
        let (mut kept, mut trailing, mut started) = (self.kept, self.trailing_space, self.started);
        for &b in run {
            if matches!(b, b'\t'..=b'\r' | b' ') {
                trailing += u32::from(started);
            } else {
                kept += trailing + 1;
                trailing = 0;
                started = true;
            }
        }
        (self.kept, self.trailing_space, self.started) = (kept, trailing, started);
    }

    /// The character count of the trimmed line, once every byte has been pushed.
    pub fn finish(&mut self) -> u32 {
        self.flush_partial_as_invalid();
        self.kept
    }

    fn push_byte(&mut self, b: u8) {
        if self.partial_len > 0 {
            if continues(&self.partial[..usize::from(self.partial_len)], b) {
                if self.partial_len + 1 == self.partial_need {
                    self.finish_sequence(b);
                } else {
                    self.partial[usize::from(self.partial_len)] = b;
                    self.partial_len += 1;
                }
                return;
            }
            // The sequence broke off: each byte of it is one character of its own, and
            // `b` starts afresh.
            self.flush_partial_as_invalid();
        }
        match sequence_length(b) {
            1 => self.character(char::from(b).is_whitespace()),
            0 => self.character(false),
            need => {
                self.partial[0] = b;
                self.partial_len = 1;
                self.partial_need = need;
            }
        }
    }

    /// Completes a multi-byte sequence whose last byte is `last` (`partial` holds the rest).
    fn finish_sequence(&mut self, last: u8) {
        let n = usize::from(self.partial_need);
        let mut bytes = [0u8; 4];
        bytes[..n - 1].copy_from_slice(&self.partial[..n - 1]);
        bytes[n - 1] = last;
        self.partial_len = 0;
        // `continues` admitted only valid sequences, so this decodes; a failure would be
        // counted as one character per byte, which is never whitespace either.
        match std::str::from_utf8(&bytes[..n])
            .ok()
            .and_then(|s| s.chars().next())
        {
            Some(c) => self.character(c.is_whitespace()),
            None => (0..n).for_each(|_| self.character(false)),
        }
    }

    fn flush_partial_as_invalid(&mut self) {
        for _ in 0..self.partial_len {
            self.character(false);
        }
        self.partial_len = 0;
    }

    fn character(&mut self, whitespace: bool) {
        if whitespace {
            if self.started {
                self.trailing_space += 1;
            }
        } else {
            self.kept += self.trailing_space + 1;
            self.trailing_space = 0;
            self.started = true;
        }
    }
}

/// Total length of the UTF-8 sequence that `lead` starts: 1 for ASCII, 2–4 for a lead byte,
/// 0 for a byte that cannot start one.
fn sequence_length(lead: u8) -> u8 {
    match lead {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

/// Whether `b` may follow `so_far` in a valid sequence (the table of RFC 3629 section 4).
fn continues(so_far: &[u8], b: u8) -> bool {
    let range = match (so_far.len(), so_far[0]) {
        (1, 0xE0) => 0xA0..=0xBF,
        (1, 0xED) => 0x80..=0x9F,
        (1, 0xF0) => 0x90..=0xBF,
        (1, 0xF4) => 0x80..=0x8F,
        _ => 0x80..=0xBF,
    };
    range.contains(&b)
}

/// Where a `count` connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountState {
    /// Waiting for the rest of the line.
    ReadingLine,
    /// The reply (or an error) is written; nothing more will be read or said.
    Answered,
}

/// The `count` protocol for one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Count {
    state: CountState,
    /// Bytes of the line seen so far (for the length limit).
    line_bytes: u32,
    counter: LineCounter,
}

impl Count {
    /// Starts a session and writes the welcome for `peer`.
    pub fn open(peer: SocketAddr, out: &mut Vec<u8>) -> Count {
        // Writing into a Vec cannot fail.
        out.extend_from_slice(b"Welcome, ");
        super::push_peer(out, peer);
        out.extend_from_slice(b"\nPlease enter a string: ");
        Count {
            state: CountState::ReadingLine,
            line_bytes: 0,
            counter: LineCounter::default(),
        }
    }

    pub fn state(&self) -> CountState {
        self.state
    }

    pub fn on_data(&mut self, data: &[u8], settings: &Settings, out: &mut Vec<u8>) -> Step {
        if self.state != CountState::ReadingLine {
            return Step::Answered;
        }
        let (line_part, newline) = match data.iter().position(|&b| b == b'\n') {
            Some(lf) => (&data[..lf], true),
            None => (data, false),
        };
        let part = u32::try_from(line_part.len()).unwrap_or(u32::MAX);
        self.line_bytes = self.line_bytes.saturating_add(part);
        if self.line_bytes as usize > settings.max_line {
            let _ = writeln!(
                out,
                "Error: line too long (limit {} bytes)",
                settings.max_line
            );
            self.state = CountState::Answered;
            return Step::Refused("line too long");
        }
        self.counter.push(line_part);
        if newline {
            self.answer(out)
        } else {
            Step::NeedMore
        }
    }

    pub fn on_eof(&mut self, out: &mut Vec<u8>) -> Step {
        match self.state {
            CountState::ReadingLine => self.answer(out),
            CountState::Answered => Step::Answered,
        }
    }

    pub fn on_deadline(&mut self, settings: &Settings, out: &mut Vec<u8>) -> Step {
        self.refuse(
            out,
            format_args!(
                "Error: timed out after {} s",
                settings.idle_timeout.as_secs_f64()
            ),
            "timed out",
        )
    }

    pub fn on_shutdown(&mut self, out: &mut Vec<u8>) -> Step {
        self.refuse(
            out,
            format_args!("Error: server shutting down"),
            "shutting down",
        )
    }

    fn refuse(&mut self, out: &mut Vec<u8>, msg: std::fmt::Arguments, why: &'static str) -> Step {
        if self.state != CountState::ReadingLine {
            return Step::Answered;
        }
        let _ = writeln!(out, "{msg}");
        self.state = CountState::Answered;
        Step::Refused(why)
    }

    fn answer(&mut self, out: &mut Vec<u8>) -> Step {
        // The hot path of the service, so no formatting machinery: plain bytes and digits.
        out.extend_from_slice(b"You entered ");
        super::push_decimal(out, u64::from(self.counter.finish()));
        out.extend_from_slice(b" characters.\n");
        self.state = CountState::Answered;
        Step::Answered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Metrics;
    use proptest::prelude::*;
    use std::time::Duration;

    /// `count` reads no metrics.
    #[derive(Debug)]
    struct NoMetrics;

    impl Metrics for NoMetrics {
        fn write(&self, _: &mut Vec<u8>) {}
    }

    /// The rule of docs/protocol.md ("TCP `count`") written the plain way: split into valid
    /// text and invalid bytes, trim, count.
    fn reference_count(line: &[u8]) -> u32 {
        enum Unit {
            Char(char),
            Invalid,
        }
        let mut units = Vec::new();
        for chunk in line.utf8_chunks() {
            units.extend(chunk.valid().chars().map(Unit::Char));
            units.extend(chunk.invalid().iter().map(|_| Unit::Invalid));
        }
        let space = |u: &Unit| matches!(u, Unit::Char(c) if c.is_whitespace());
        let first = units.iter().position(|u| !space(u));
        let last = units.iter().rposition(|u| !space(u));
        match (first, last) {
            (Some(a), Some(b)) => (b - a + 1) as u32,
            _ => 0,
        }
    }

    fn count_of(line: &[u8]) -> u32 {
        let mut c = LineCounter::default();
        c.push(line);
        c.finish()
    }

    fn settings() -> Settings<'static> {
        Settings {
            max_line: 16,
            idle_timeout: Duration::from_secs(30),
            ack_reply: b"",
            console: false,
            metrics: &NoMetrics,
        }
    }

    #[test]
    fn spec_examples() {
        assert_eq!(count_of(b"hello\r"), 5);
        assert_eq!(count_of("  h\u{e9}llo \t".as_bytes()), 5);
        assert_eq!(count_of("日本語".as_bytes()), 3);
        assert_eq!(count_of(b"\xff\xfeab"), 4);
        assert_eq!(count_of(b""), 0);
    }

    #[test]
    fn unicode_whitespace_is_trimmed_but_kept_inside() {
        assert_eq!(count_of("\u{a0}a\u{2028}b\u{3000}".as_bytes()), 3);
        assert_eq!(count_of(" \t\r\u{85} ".as_bytes()), 0);
    }

    #[test]
    fn a_broken_sequence_counts_each_byte_and_restarts() {
        // E6 97 is the start of a three-byte character; 'a' breaks it off.
        assert_eq!(count_of(b"\xe6\x97a"), 3);
        // A lone continuation byte, an overlong lead, a surrogate, a too-large code point.
        assert_eq!(count_of(b"\x80"), 1);
        assert_eq!(count_of(b"\xc0\xaf"), 2);
        assert_eq!(count_of(b"\xed\xa0\x80"), 3);
        assert_eq!(count_of(b"\xf4\x90\x80\x80"), 4);
        // Unfinished at the end of the line.
        assert_eq!(count_of(b"ab\xf0\x9f"), 4);
    }

    #[test]
    fn invalid_bytes_are_never_whitespace() {
        assert_eq!(count_of(b" \xff "), 1);
    }

    #[test]
    fn welcome_names_the_peer_and_ipv4_mapped_shows_as_ipv4() {
        let mut out = Vec::new();
        Count::open("127.0.0.1:40512".parse().unwrap(), &mut out);
        assert_eq!(out, b"Welcome, 127.0.0.1:40512\nPlease enter a string: ");
        out.clear();
        Count::open("[::1]:40512".parse().unwrap(), &mut out);
        assert_eq!(out, b"Welcome, [::1]:40512\nPlease enter a string: ");
        out.clear();
        Count::open("[::ffff:10.1.2.3]:9".parse().unwrap(), &mut out);
        assert_eq!(out, b"Welcome, 10.1.2.3:9\nPlease enter a string: ");
    }

    #[test]
    fn a_line_in_pieces_counts_the_same() {
        let mut out = Vec::new();
        let mut s = Count::open("127.0.0.1:1".parse().unwrap(), &mut out);
        out.clear();
        let line = " 日本\u{a0}語 x\r\n".as_bytes();
        for b in line {
            let step = s.on_data(std::slice::from_ref(b), &settings(), &mut out);
            if *b != b'\n' {
                assert_eq!(step, Step::NeedMore);
            }
        }
        assert_eq!(out, b"You entered 6 characters.\n");
        assert_eq!(s.state(), CountState::Answered);
    }

    #[test]
    fn bytes_after_the_newline_are_ignored() {
        let mut out = Vec::new();
        let mut s = Count::open("127.0.0.1:1".parse().unwrap(), &mut out);
        out.clear();
        s.on_data(b"abc\ndef\n", &settings(), &mut out);
        assert_eq!(s.on_data(b"more", &settings(), &mut out), Step::Answered);
        assert_eq!(s.on_eof(&mut out), Step::Answered);
        assert_eq!(out, b"You entered 3 characters.\n");
    }

    #[test]
    fn eof_before_newline_counts_what_came() {
        let mut out = Vec::new();
        let mut s = Count::open("127.0.0.1:1".parse().unwrap(), &mut out);
        out.clear();
        s.on_data(b" hi", &settings(), &mut out);
        assert_eq!(s.on_eof(&mut out), Step::Answered);
        assert_eq!(out, b"You entered 2 characters.\n");
    }

    #[test]
    fn the_limit_admits_a_full_line_and_refuses_one_byte_more() {
        let mut out = Vec::new();
        let mut s = Count::open("127.0.0.1:1".parse().unwrap(), &mut out);
        out.clear();
        assert_eq!(
            s.on_data(&[b'x'; 16], &settings(), &mut out),
            Step::NeedMore
        );
        assert_eq!(s.on_data(b"\n", &settings(), &mut out), Step::Answered);
        assert_eq!(out, b"You entered 16 characters.\n");

        let mut s = Count::open("127.0.0.1:1".parse().unwrap(), &mut out);
        out.clear();
        s.on_data(&[b'x'; 16], &settings(), &mut out);
        assert_eq!(
            s.on_data(b"y", &settings(), &mut out),
            Step::Refused("line too long")
        );
        assert_eq!(out, b"Error: line too long (limit 16 bytes)\n");
        // Over the limit with the newline in the same read: refused all the same.
        let mut s = Count::open("127.0.0.1:1".parse().unwrap(), &mut out);
        out.clear();
        s.on_data(&[b'x'; 17], &settings(), &mut out);
        assert_eq!(out, b"Error: line too long (limit 16 bytes)\n");
    }

    #[test]
    fn deadline_and_shutdown_messages() {
        let mut out = Vec::new();
        let mut s = Count::open("127.0.0.1:1".parse().unwrap(), &mut out);
        out.clear();
        assert_eq!(
            s.on_deadline(&settings(), &mut out),
            Step::Refused("timed out")
        );
        assert_eq!(out, b"Error: timed out after 30 s\n");
        assert_eq!(s.on_shutdown(&mut out), Step::Answered);

        let mut s = Count::open("127.0.0.1:1".parse().unwrap(), &mut out);
        out.clear();
        s.on_shutdown(&mut out);
        assert_eq!(out, b"Error: server shutting down\n");
    }

    proptest! {
        #[test]
        fn streaming_count_matches_the_reference(
            line in proptest::collection::vec(
                prop_oneof![
                    any::<u8>(),
                    Just(b' '), Just(b'\t'), Just(0xC2), Just(0xA0), Just(0xE3), Just(0x80),
                ],
                0..64,
            ),
            cut in 0usize..64,
        ) {
            let line: Vec<u8> = line.into_iter().filter(|&b| b != b'\n').collect();
            let cut = cut.min(line.len());
            let mut c = LineCounter::default();
            c.push(&line[..cut]);
            c.push(&line[cut..]);
            prop_assert_eq!(c.finish(), reference_count(&line));
        }

        #[test]
        fn valid_text_counts_as_trimmed_chars(text in "\\PC{0,40}") {
            let text: String = text.chars().filter(|&c| c != '\n').collect();
            prop_assert_eq!(count_of(text.as_bytes()) as usize, text.trim().chars().count());
        }
    }
}
