//! How log lines look and where they go: standard error, the journal, or syslog under an
//! inetd; repeats folded in the trace (`narrate`); client bytes escaped (`escape`). This layer
//! decides nothing about serving; it only writes what the others log.
//!
//! The log: `log` records through `env_logger` to standard error, one line each,
//! `LEVEL message`. `RUST_LOG` sets the level (default `info`). No timestamps: journald and
//! syslog add their own.
//!
//! When standard error is the journal, each line starts with its syslog priority as well
//! (`<3>` error, `<4>` warn, `<6>` info, `<7>` debug and trace: sd-daemon(3)), so journald
//! files it at its level: `<6>INFO  listening on tcp 0.0.0.0:51423 (count)`. systemd tells a
//! service that its standard error is the journal with `JOURNAL_STREAM=DEVICE:INODE`, the
//! device and inode numbers of that stream; a variable inherited from a parent whose
//! standard error was the journal names another file, so the numbers are compared with
//! fstat(2) of standard error, and the prefixes are only written when they match.
//!
//! Under an inetd (`--inetd`), standard error is no place for the log unless it is the
//! journal: openbsd-inetd and xinetd make it the socket they pass (a listening socket loses
//! what is written to it; the connection a `nowait` line passes by mistake is a client's),
//! BusyBox inetd leaves it its own (a terminal, or `/dev/null` once it runs in the
//! background). So with `--inetd` the lines go to syslog (`crate::log::syslog`), never to standard
//! error, as `<PRI>oneloop[PID]: message` with the facility `daemon` (RFC 3164 without the
//! timestamp and host name, which the local syslog daemon adds):
//! `<30>oneloop[812]: listening on tcp 0.0.0.0:51423 (count), passed by the inetd`.
//!
//! At `trace`, repeats collapse (`crate::log::narrate`), and the `mio` crate's own trace lines are
//! left out unless `RUST_LOG` names `mio` (`RUST_LOG=trace,mio=trace`): the daemon's trace
//! tells what mio does in its own words.

pub(crate) mod escape;
pub(crate) mod narrate;
mod syslog;

use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Write};
use std::os::fd::{IntoRawFd, RawFd};
use std::sync::Mutex;

use log::Level;

use crate::log::narrate::{Collapse, Verdict};
use crate::log::syslog::Syslog;

/// Where the lines go, and so how each starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    /// Standard error: `LEVEL message`.
    Plain,
    /// Standard error, which is the journal: `<6>LEVEL message`.
    Journal,
    /// Syslog: `<30>oneloop[PID]: message`.
    Syslog { pid: u32 },
}

/// The syslog facility `daemon` (RFC 3164), times 8 as a priority holds it.
const FACILITY_DAEMON: u8 = 3 << 3;

/// Sets up the log as the module documentation describes; `inetd`: the daemon serves the
/// socket an inetd passed (`--inetd`). A second call changes nothing.
pub fn init_logging(inetd: bool) {
    let style = style_for(inetd, stderr_is_journal(), std::process::id());
    let collapse = Mutex::new(Collapse::default());
    let env = env_logger::Env::default().default_filter_or("info");
    let mut builder = env_logger::Builder::new();
    if matches!(style, Style::Syslog { .. }) {
        builder.target(env_logger::Target::Pipe(Box::new(Syslog::open())));
    }
    let _ = builder
        .filter_module("mio", log::LevelFilter::Info)
        .parse_env(env)
        .format(move |buf, record| {
            if !log::log_enabled!(Level::Trace) {
                return write_line(buf, style, record.level(), *record.args());
            }
            // Only while trace is on: each line is compared with the last ones.
            let text = record.args().to_string();
            let verdict = collapse
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .line(record.level() == Level::Trace, &text);
            match verdict {
                Verdict::Skip => Ok(()),
                Verdict::Show { summary } => {
                    if let Some(summary) = summary {
                        write_line(buf, style, Level::Trace, format_args!("{summary}"))?;
                    }
                    write_line(buf, style, record.level(), format_args!("{text}"))
                }
            }
        })
        .try_init();
}

/// Where the lines go: to the journal when standard error is the journal; else, under an
/// inetd, to syslog (as process `pid`); else to standard error.
fn style_for(inetd: bool, journal: bool, pid: u32) -> Style {
    match (journal, inetd) {
        (true, _) => Style::Journal,
        (false, true) => Style::Syslog { pid },
        (false, false) => Style::Plain,
    }
}

/// Where an error line written without the logger goes (a signal handler's), and how it
/// starts: standard error with `ERROR ` (`<3>ERROR ` for the journal), or, when the log is
/// syslog (`inetd`: under `--inetd`), a socket of its own connected to `/dev/log` (open for
/// the rest of the process; -1 when syslog cannot be reached) with `<27>oneloop[PID]: `.
pub fn error_sink(inetd: bool) -> (RawFd, Vec<u8>) {
    let style = style_for(inetd, stderr_is_journal(), std::process::id());
    let mut prefix = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = write_line(&mut prefix, style, Level::Error, format_args!(""));
    prefix.pop(); // the line's \n
    let fd = match style {
        Style::Syslog { .. } => syslog::connect().map_or(-1, IntoRawFd::into_raw_fd),
        Style::Plain | Style::Journal => libc::STDERR_FILENO,
    };
    (fd, prefix)
}

/// Whether standard error is the journal: `JOURNAL_STREAM` names its device and inode.
pub fn stderr_is_journal() -> bool {
    names_stream(
        std::env::var_os("JOURNAL_STREAM").as_deref(),
        crate::os::raw::stderr_file_id(),
    )
}

/// Whether `journal_stream`, the value of `JOURNAL_STREAM`, names the file `stderr` (its
/// device and inode numbers). A value that is not two decimal numbers joined by `:` names
/// nothing.
fn names_stream(journal_stream: Option<&OsStr>, stderr: Option<(u64, u64)>) -> bool {
    let Some((device, inode)) = journal_stream
        .and_then(OsStr::to_str)
        .and_then(|value| value.split_once(':'))
    else {
        return false;
    };
    let number = |text: &str| {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse::<u64>().ok()
    };
    match (number(device), number(inode), stderr) {
        (Some(device), Some(inode), Some(file)) => (device, inode) == file,
        _ => false,
    }
}

/// The syslog severity of a level (sd-daemon(3), RFC 3164).
fn severity(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Writes one log line in `style`, `\n` included.
fn write_line(
    out: &mut impl Write,
    style: Style,
    level: Level,
    message: fmt::Arguments<'_>,
) -> io::Result<()> {
    match style {
        Style::Plain => writeln!(out, "{level:<5} {message}"),
        Style::Journal => writeln!(out, "<{}>{level:<5} {message}", severity(level)),
        Style::Syslog { pid } => {
            let priority = FACILITY_DAEMON + severity(level);
            writeln!(out, "<{priority}>oneloop[{pid}]: {message}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(style: Style, level: Level, message: fmt::Arguments<'_>) -> String {
        let mut out = Vec::new();
        write_line(&mut out, style, level, message).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lines_are_level_and_message() {
        assert_eq!(
            line(
                Style::Plain,
                Level::Info,
                format_args!("listening on {}", 7)
            ),
            "INFO  listening on 7\n"
        );
        assert_eq!(
            line(Style::Plain, Level::Error, format_args!("x")),
            "ERROR x\n"
        );
        assert_eq!(
            line(Style::Plain, Level::Trace, format_args!("x")),
            "TRACE x\n"
        );
    }

    #[test]
    fn journal_lines_start_with_their_priority_and_syslog_lines_with_the_daemons() {
        let syslog = Style::Syslog { pid: 812 };
        for (level, journal, daemon) in [
            (Level::Error, "<3>ERROR x\n", "<27>oneloop[812]: x\n"),
            (Level::Warn, "<4>WARN  x\n", "<28>oneloop[812]: x\n"),
            (Level::Info, "<6>INFO  x\n", "<30>oneloop[812]: x\n"),
            (Level::Debug, "<7>DEBUG x\n", "<31>oneloop[812]: x\n"),
            (Level::Trace, "<7>TRACE x\n", "<31>oneloop[812]: x\n"),
        ] {
            assert_eq!(line(Style::Journal, level, format_args!("x")), journal);
            assert_eq!(line(syslog, level, format_args!("x")), daemon);
        }
        assert_eq!(
            line(syslog, Level::Info, format_args!("listening on {}", 7)),
            "<30>oneloop[812]: listening on 7\n"
        );
    }

    #[test]
    fn under_an_inetd_the_log_goes_to_syslog_unless_standard_error_is_the_journal() {
        assert_eq!(style_for(true, false, 812), Style::Syslog { pid: 812 });
        assert_eq!(style_for(true, true, 812), Style::Journal);
        assert_eq!(style_for(false, true, 812), Style::Journal);
        assert_eq!(style_for(false, false, 812), Style::Plain);
    }

    #[test]
    fn journal_stream_must_name_standard_error() {
        fn stream(value: &str) -> Option<&OsStr> {
            Some(OsStr::new(value))
        }
        let file = Some((64769, 123456));
        assert!(names_stream(stream("64769:123456"), file));
        for (value, stderr) in [
            ("64769:123457", file),
            ("64770:123456", file),
            ("64769:123456", None),
            ("", file),
            (":", file),
            ("64769", file),
            ("64769:", file),
            (":123456", file),
            ("64769:123456:1", file),
            (" 64769:123456", file),
            ("+64769:123456", file),
            ("64769:0x1e240", file),
            ("18446744073709551616:123456", file),
        ] {
            assert!(!names_stream(stream(value), stderr), "{value:?} {stderr:?}");
        }
        assert!(!names_stream(None, file));
        assert!(names_stream(stream("0:0"), Some((0, 0))));
        assert!(names_stream(
            stream("18446744073709551615:1"),
            Some((u64::MAX, 1))
        ));
    }
}
