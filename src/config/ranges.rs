//! Numbers on the command line, checked against a documented range. `oneloop serve` and
//! `oneloop load` read every numeric flag through [`Range::parse`]; [`Range::check`] checks a
//! value built in code (a library user's [`Config`](crate::Config)) against the same range.
//!
//! Nothing is clamped or wrapped: a value outside the range, a negative count, a fraction
//! where only whole numbers make sense, a number too large for its type, NaN or infinity is
//! refused with a message naming the flag and the range:
//! `--rcvbuf: '4294967296' is out of range (1 to 1073741823 bytes)`.
//!
//! Below the machinery, the range of every numeric setting: the command line refuses anything
//! else with a usage error, and [`Config::validate`](crate::Config::validate) checks a
//! configuration built in code against the same ranges.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::MAX_LINE_LIMIT;

/// Why a text is not a value of a [`Number`] type.
#[derive(Debug, PartialEq, Eq)]
pub enum Misfit {
    /// It is not written as a number of this kind (`ten`, `1.5` for a count, `NaN`).
    NotANumber,
    /// It is a number, but one the type cannot hold (negative, too large, infinite).
    OutOfRange,
}

/// A type a numeric flag takes.
pub trait Number: Copy + PartialOrd {
    /// What a value is, for a message: `a whole number`.
    const KIND: &'static str;
    /// Reads `text` as a value.
    fn read(text: &str) -> Result<Self, Misfit>;
    /// The value as a message writes it.
    fn show(self) -> String;
}

/// A whole number: optional sign, then ASCII digits only. Anything else written with digits
/// (`1.5`, `1e3`, ` 7`) is not a whole number; a whole number the type cannot hold (`-1` for
/// an unsigned type, 2^64) is out of range.
fn whole<T: FromStr>(text: &str) -> Result<T, Misfit> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Misfit::NotANumber);
    }
    text.parse().map_err(|_| Misfit::OutOfRange)
}

macro_rules! whole_number {
    ($($t:ty),*) => {$(
        impl Number for $t {
            const KIND: &'static str = "a whole number";
            fn read(text: &str) -> Result<Self, Misfit> {
                whole(text)
            }
            fn show(self) -> String {
                self.to_string()
            }
        }
    )*};
}

whole_number!(u8, u16, u32, i32, usize);

/// A decimal number (`250`, `0.5`, `1e3`); NaN is not a number, an infinity is out of range.
impl Number for f64 {
    const KIND: &'static str = "a number";
    fn read(text: &str) -> Result<Self, Misfit> {
        match text.parse::<f64>() {
            Ok(x) if x.is_nan() => Err(Misfit::NotANumber),
            Ok(x) if x.is_infinite() => Err(Misfit::OutOfRange),
            Ok(x) => Ok(x),
            Err(_) => Err(Misfit::NotANumber),
        }
    }
    fn show(self) -> String {
        self.to_string()
    }
}

/// Seconds, whole or decimal (`30`, `0.5`), to the nanosecond.
impl Number for Duration {
    const KIND: &'static str = "a number of seconds";
    fn read(text: &str) -> Result<Self, Misfit> {
        Duration::try_from_secs_f64(f64::read(text)?).map_err(|_| Misfit::OutOfRange)
    }
    fn show(self) -> String {
        self.as_secs_f64().to_string()
    }
}

/// The values a flag accepts, `min` and `max` included; `unit` follows them in messages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range<T> {
    pub min: T,
    pub max: T,
    pub unit: &'static str,
}

impl<T: Number> Range<T> {
    pub fn contains(&self, value: T) -> bool {
        self.min <= value && value <= self.max
    }

    /// The value of `flag` written as `text`, when it is in the range.
    pub fn parse(&self, flag: &str, text: &str) -> Result<T, String> {
        match T::read(text) {
            Ok(value) if self.contains(value) => Ok(value),
            Ok(_) | Err(Misfit::OutOfRange) => {
                Err(format!("{flag}: '{text}' is out of range ({self})"))
            }
            Err(Misfit::NotANumber) => Err(format!("{flag}: '{text}' is not {} ({self})", T::KIND)),
        }
    }

    /// Checks a value that did not come from text.
    pub fn check(&self, flag: &str, value: T) -> Result<(), String> {
        if self.contains(value) {
            Ok(())
        } else {
            Err(format!("{flag}: {} is out of range ({self})", value.show()))
        }
    }
}

impl<T: Number> Range<T> {
    /// `MIN to MAX`, as help texts write a range.
    pub fn ends(&self) -> String {
        format!("{} to {}", self.min.show(), self.max.show())
    }
}

/// `MIN to MAX UNIT`, as messages write a range.
impl<T: Number> fmt::Display for Range<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.ends())?;
        if !self.unit.is_empty() {
            write!(f, " {}", self.unit)?;
        }
        Ok(())
    }
}

// The values each numeric setting accepts, as `oneloop --help` and the man page state them.

/// The longest span any SECS setting takes: a year.
pub const MAX_SECS: Duration = Duration::from_secs(365 * 24 * 3600);

/// A port of `SERVICE@[HOST]:PORT` (0: any free port).
pub const PORT: Range<u16> = Range {
    min: 0,
    max: u16::MAX,
    unit: "",
};

/// `--max-line`.
pub const MAX_LINE: Range<usize> = Range {
    min: 1,
    max: MAX_LINE_LIMIT,
    unit: "bytes",
};

/// `--idle-timeout`: deadlines are kept in whole milliseconds, so at least one.
pub const IDLE_TIMEOUT: Range<Duration> = Range {
    min: Duration::from_millis(1),
    max: MAX_SECS,
    unit: "s",
};

/// `--linger` and `--shutdown-grace` (0: no wait at all).
pub const WAIT: Range<Duration> = Range {
    min: Duration::ZERO,
    max: MAX_SECS,
    unit: "s",
};

/// `--exit-idle` (0: never).
pub const EXIT_IDLE: Range<Duration> = Range {
    min: Duration::ZERO,
    max: MAX_SECS,
    unit: "s",
};

/// `--max-connections`. With [`MAX_REFUSALS`] and the listeners, the most descriptors
/// the daemon holds stay below 1048576, Linux's default ceiling per process
/// (`fs.nr_open`).
pub const MAX_CONNECTIONS: Range<usize> = Range {
    min: 1,
    max: 1_000_000,
    unit: "connections",
};

/// `--max-refusals` (0: every busy refusal is closed at once, without the message).
pub const MAX_REFUSALS: Range<usize> = Range {
    min: 0,
    max: 10_000,
    unit: "refusals",
};

/// `--max-output`: one read is at most 64 KiB, the daemon's read buffer, so a larger
/// value would change nothing.
pub const MAX_OUTPUT: Range<usize> = Range {
    min: 4096,
    max: 64 * 1024,
    unit: "bytes",
};

/// `--max-per-source` (0: no limit); a limit above `--max-connections` never bites.
pub const MAX_PER_SOURCE: Range<usize> = Range {
    min: 0,
    max: MAX_CONNECTIONS.max,
    unit: "connections",
};

/// `--max-rate` (0: no limit).
pub const MAX_RATE: Range<u32> = Range {
    min: 0,
    max: 1_000_000,
    unit: "connections per second",
};

/// `--udp-rate` (0: no limit).
pub const UDP_RATE: Range<u32> = Range {
    min: 0,
    max: 1_000_000,
    unit: "replies per second",
};

/// `--backlog` (Linux caps it at `net.core.somaxconn`).
pub const BACKLOG: Range<i32> = Range {
    min: 1,
    max: 65535,
    unit: "",
};

/// The listen backlog with no `--backlog` when `net.core.somaxconn` cannot be read: the
/// kernel's own default for it since Linux 5.4.
pub const BACKLOG_FALLBACK: i32 = 4096;

/// `--rcvbuf` and `--sndbuf`: Linux takes an `int` and doubles it, so half of
/// `i32::MAX` is the largest size it can honour (it caps it at `net.core.rmem_max` or
/// `net.core.wmem_max` as well).
pub const SOCKET_BUFFER: Range<usize> = Range {
    min: 1,
    max: (i32::MAX / 2) as usize,
    unit: "bytes",
};

#[cfg(test)]
mod tests {
    use super::*;

    const BYTES: Range<usize> = Range {
        min: 1,
        max: 1000,
        unit: "bytes",
    };
    const SECS: Range<Duration> = Range {
        min: Duration::from_millis(1),
        max: Duration::from_secs(60),
        unit: "s",
    };
    const RATE: Range<f64> = Range {
        min: 0.5,
        max: 100.0,
        unit: "per second",
    };

    #[test]
    fn whole_numbers_in_range_are_read_at_both_ends() {
        assert_eq!(BYTES.parse("--b", "1"), Ok(1));
        assert_eq!(BYTES.parse("--b", "1000"), Ok(1000));
        assert_eq!(BYTES.parse("--b", "+7"), Ok(7));
        assert_eq!(BYTES.parse("--b", "007"), Ok(7));
    }

    #[test]
    fn whole_numbers_outside_the_range_or_the_type_are_out_of_range() {
        for text in [
            "0",
            "1001",
            "-1",
            "-0",
            "18446744073709551616",
            "99999999999999999999999999",
        ] {
            assert_eq!(
                BYTES.parse("--b", text),
                Err(format!("--b: '{text}' is out of range (1 to 1000 bytes)")),
            );
        }
        let signed = Range {
            min: 1,
            max: 65535,
            unit: "",
        };
        assert_eq!(
            signed.parse("--backlog", "-5"),
            Err("--backlog: '-5' is out of range (1 to 65535)".to_string())
        );
        assert_eq!(
            signed.parse("--backlog", "2147483648"),
            Err("--backlog: '2147483648' is out of range (1 to 65535)".to_string())
        );
    }

    #[test]
    fn fractions_and_words_are_not_whole_numbers() {
        for text in [
            "1.5", "1e3", "ten", "", "-", " 7", "7 ", "0x10", "1_000", "inf",
        ] {
            assert_eq!(
                BYTES.parse("--b", text),
                Err(format!(
                    "--b: '{text}' is not a whole number (1 to 1000 bytes)"
                )),
            );
        }
    }

    #[test]
    fn seconds_take_fractions_within_the_range() {
        assert_eq!(SECS.parse("--s", "0.001"), Ok(Duration::from_millis(1)));
        assert_eq!(SECS.parse("--s", "60"), Ok(Duration::from_secs(60)));
        assert_eq!(SECS.parse("--s", "1.5"), Ok(Duration::from_millis(1500)));
        for text in [
            "0", "0.0009", "60.001", "-1", "1e300", "inf", "-inf", "1e-300",
        ] {
            assert_eq!(
                SECS.parse("--s", text),
                Err(format!("--s: '{text}' is out of range (0.001 to 60 s)")),
            );
        }
        for text in ["NaN", "nan", "soon", "1s", ""] {
            assert_eq!(
                SECS.parse("--s", text),
                Err(format!(
                    "--s: '{text}' is not a number of seconds (0.001 to 60 s)"
                )),
            );
        }
    }

    #[test]
    fn decimals_refuse_nan_and_infinities() {
        assert_eq!(RATE.parse("--rate", "0.5"), Ok(0.5));
        assert_eq!(RATE.parse("--rate", "1e2"), Ok(100.0));
        for text in ["0.49", "100.01", "1e300", "inf", "-1", "0"] {
            assert_eq!(
                RATE.parse("--rate", text),
                Err(format!(
                    "--rate: '{text}' is out of range (0.5 to 100 per second)"
                )),
            );
        }
        assert_eq!(
            RATE.parse("--rate", "NaN"),
            Err("--rate: 'NaN' is not a number (0.5 to 100 per second)".to_string())
        );
    }

    #[test]
    fn a_value_from_code_is_checked_against_the_same_range() {
        assert_eq!(BYTES.check("--b", 1000), Ok(()));
        assert_eq!(
            BYTES.check("--b", 0),
            Err("--b: 0 is out of range (1 to 1000 bytes)".to_string())
        );
        assert_eq!(
            SECS.check("--s", Duration::ZERO),
            Err("--s: 0 is out of range (0.001 to 60 s)".to_string())
        );
    }
}
