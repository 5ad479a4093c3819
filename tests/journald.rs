//! The log of the built binary when standard error is the journal: with `JOURNAL_STREAM`
//! naming standard error's device and inode, each line starts with its syslog priority;
//! with a variable naming another file, or none, the lines are as always.
//!
//! Standard error is a file of the test's own, so the test knows its device and inode.

mod common;

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::wait_until;

const BIN: &str = env!("CARGO_BIN_EXE_oneloop");

/// The daemon, its standard error the file `log`.
struct Logged {
    child: Child,
    log: PathBuf,
}

impl Logged {
    /// Starts the daemon with `args` and `env`; `journal` makes the value of `JOURNAL_STREAM`
    /// from the log file's device and inode (`None`: the variable is unset).
    fn spawn(
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
        journal: impl Fn(u64, u64) -> Option<String>,
    ) -> Logged {
        let log = std::env::temp_dir().join(format!("oneloop-{name}-{}.log", std::process::id()));
        let file = File::create(&log).unwrap();
        let meta = file.metadata().unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("RUST_LOG", "trace")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .envs(env.iter().copied());
        if let Some(value) = journal(meta.dev(), meta.ino()) {
            cmd.env("JOURNAL_STREAM", value);
        }
        common::sandbox_if_asked(&mut cmd);
        Logged {
            child: cmd.spawn().unwrap(),
            log,
        }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// Waits (bounded) for the exit; its code, and the log.
    fn finish(mut self) -> (i32, String) {
        let mut code = None;
        wait_until("the daemon to exit", || {
            code = self
                .child
                .try_wait()
                .unwrap()
                .map(|s| s.code().unwrap_or(-1));
            code.is_some()
        });
        (code.unwrap(), self.text())
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Runs a daemon whose bind fails (the port is taken): an `error` line, `debug` lines before
/// it. Returns the log.
fn failing_bind(name: &str, journal: impl Fn(u64, u64) -> Option<String>) -> String {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let spec = format!("count@{}", taken.local_addr().unwrap());
    let (code, log) = Logged::spawn(name, &["--tcp", &spec], &[], journal).finish();
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("cannot bind tcp"), "{log}");
    log
}

/// The priority each level's lines must start with.
fn priority_of(level: &str) -> &'static str {
    match level {
        "ERROR" => "<3>",
        "WARN" => "<4>",
        "INFO" => "<6>",
        "DEBUG" | "TRACE" => "<7>",
        other => panic!("level {other}"),
    }
}

/// Checks that every line is `<N>LEVEL message` with the priority of its level; returns the
/// priorities seen.
fn assert_prefixed(log: &str) -> Vec<&'static str> {
    let mut seen = Vec::new();
    for line in log.lines() {
        let (prefix, rest) = line.split_at(line.find('>').map_or(0, |i| i + 1));
        let level = rest.split_whitespace().next().unwrap_or_default();
        let want = priority_of(level);
        assert_eq!(prefix, want, "{line}");
        if !seen.contains(&want) {
            seen.push(want);
        }
    }
    seen.sort_unstable();
    seen
}

/// Checks that no line has a prefix: each starts with its level.
fn assert_plain(log: &str) {
    assert!(!log.is_empty());
    for line in log.lines() {
        let level = line.split_whitespace().next().unwrap_or_default();
        priority_of(level);
    }
}

#[test]
fn with_journal_stream_naming_stderr_each_line_has_its_priority() {
    // A notify socket that is not there: a warning once the daemon is up.
    let d = Logged::spawn(
        "journal-run",
        &["--tcp", "count@127.0.0.1:0"],
        &[("NOTIFY_SOCKET", "/nonexistent-oneloop/notify")],
        |dev, ino| Some(format!("{dev}:{ino}")),
    );
    wait_until("the warning of the notify socket", || {
        d.text()
            .contains("cannot connect to the service manager's notify socket")
    });
    // SAFETY: kill with the child's pid and a valid signal number.
    assert_eq!(unsafe { libc::kill(d.child.id() as i32, libc::SIGTERM) }, 0);
    let (code, log) = d.finish();
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("<6>INFO  listening on tcp 127.0.0.1:"),
        "{log}"
    );
    assert_eq!(assert_prefixed(&log), ["<4>", "<6>", "<7>"], "{log}");

    let log = failing_bind("journal-error", |dev, ino| Some(format!("{dev}:{ino}")));
    assert!(log.contains("<3>ERROR cannot bind tcp 127.0.0.1:"), "{log}");
    assert_eq!(assert_prefixed(&log), ["<3>", "<7>"], "{log}");
}

#[test]
fn with_journal_stream_naming_another_file_the_lines_are_plain() {
    for (name, value) in [
        (
            "other-inode",
            (|dev, ino| Some(format!("{dev}:{}", ino + 1))) as fn(u64, u64) -> _,
        ),
        ("other-device", |dev, ino| {
            Some(format!("{}:{ino}", dev + 1))
        }),
        ("malformed", |_, _| Some("journal".to_string())),
        ("unset", |_, _| None),
    ] {
        let log = failing_bind(name, value);
        assert!(
            log.contains("\nERROR cannot bind tcp 127.0.0.1:"),
            "{name}: {log}"
        );
        assert_plain(&log);
    }
}
