//! Every numeric flag parser (`Range::parse`): the ranges of `oneloop::config::ranges`, and
//! ranges of the other types flags take (`u8`, `f64`) with bounds from the input. Never
//! panics; a value it accepts is in the range, passes `Range::check`, and is the number the
//! text says; a refusal names the flag.
//!
//! Input: byte 0 and 1 give the bounds of the extra ranges, the rest is the text.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use oneloop::config::ranges::{self, Number, Range};

/// Parses `text` against `range` and checks what comes back; returns the value.
fn parse<T: Number + std::fmt::Debug>(range: Range<T>, text: &str) -> Option<T> {
    match range.parse("--flag", text) {
        Ok(value) => {
            assert!(
                range.contains(value),
                "{text:?} read as {value:?}, out of {range}"
            );
            assert_eq!(range.check("--flag", value), Ok(()));
            Some(value)
        }
        Err(message) => {
            assert!(message.starts_with("--flag: '"), "{message}");
            assert!(message.ends_with(&format!("({range})")), "{message}");
            None
        }
    }
}

/// A whole-number range: what it accepts is what the text says, in Rust's own reading.
fn whole<T>(range: Range<T>, text: &str)
where
    T: Number + std::fmt::Debug + std::str::FromStr + PartialEq,
{
    if let Some(value) = parse(range, text) {
        assert!(
            text.parse::<T>().ok() == Some(value),
            "{text:?} read as {value:?}"
        );
    }
}

/// A range of seconds: what it accepts is the number of seconds the text says.
fn seconds(range: Range<Duration>, text: &str) {
    if let Some(value) = parse(range, text) {
        let secs: f64 = text.parse().expect("a number of seconds");
        assert_eq!(Duration::try_from_secs_f64(secs).ok(), Some(value));
    }
}

fuzz_target!(|data: &[u8]| {
    let [a, b, text @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    whole(ranges::PORT, text);
    whole(ranges::BACKLOG, text);
    for range in [
        ranges::MAX_LINE,
        ranges::MAX_CONNECTIONS,
        ranges::MAX_REFUSALS,
        ranges::MAX_OUTPUT,
        ranges::MAX_PER_SOURCE,
        ranges::SOCKET_BUFFER,
    ] {
        whole(range, text);
    }
    for range in [ranges::MAX_RATE, ranges::UDP_RATE] {
        whole(range, text);
    }
    for range in [ranges::IDLE_TIMEOUT, ranges::WAIT] {
        seconds(range, text);
    }
    let (lo, hi) = (*a.min(b), *a.max(b));
    whole(
        Range {
            min: lo,
            max: hi,
            unit: "",
        },
        text,
    );
    if let Some(value) = parse(
        Range {
            min: f64::from(lo) / 8.0,
            max: f64::from(hi) * 1e3,
            unit: "per second",
        },
        text,
    ) {
        assert_eq!(text.parse::<f64>().ok(), Some(value));
    }
});
