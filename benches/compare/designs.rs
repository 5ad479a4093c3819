//! The designs a run compares: oneloop, the variants this bench serves itself, and external
//! servers given on the command line (`--server NAME=COMMAND`). Also what became of a design
//! in a scenario: its verdict.

/// The built-in designs, in the order the tables list them: oneloop (the real binary), then
/// the variants of `variants.rs`.
pub const BUILT_IN: [&str; 6] = [
    "oneloop", "serial", "threads", "pool", "tokio-ct", "tokio-mt",
];

/// How a design is started.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// The oneloop binary cargo built beside the bench.
    Oneloop,
    /// This bench executable run again as `compare --serve NAME`.
    Variant,
    /// `sh -c COMMAND`, with `{tcp}`, `{udp}` and `{host}` replaced by the ports and host the
    /// bench picked.
    External { command: String, tcp_only: bool },
}

/// A design under test.
#[derive(Clone, Debug, PartialEq)]
pub struct Design {
    pub name: String,
    pub kind: Kind,
}

impl Design {
    /// The built-in design called `name` (one of [`BUILT_IN`]).
    pub fn built_in(name: &str) -> Design {
        let kind = if name == "oneloop" {
            Kind::Oneloop
        } else {
            Kind::Variant
        };
        Design {
            name: name.to_string(),
            kind,
        }
    }

    pub fn is_external(&self) -> bool {
        matches!(self.kind, Kind::External { .. })
    }

    /// Why `scenario` is not run for this design, or `None` when it is.
    pub fn skip(&self, scenario: &str) -> Option<Verdict> {
        match &self.kind {
            Kind::External { .. } if ["reuseport", "syscalls"].contains(&scenario) => {
                Some(Verdict::NotApplicable)
            }
            Kind::External { tcp_only: true, .. } if scenario == "udp-echo" => {
                Some(Verdict::TcpOnly)
            }
            _ => None,
        }
    }
}

/// What became of one run (or of every run of a design in a scenario).
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Measured; its figures count.
    Ok,
    /// A reply was not what the protocol says (the bench's check before the runs, or the
    /// load's check of every reply).
    WrongReply(String),
    /// The server exited, or stopped listening, during the run.
    Died(String),
    /// The server did not start, or did not listen in time.
    NoStart(String),
    /// The run gave no figures (the load could not run or report).
    Failed(String),
    /// The scenario needs options of oneloop's own binary.
    NotApplicable,
    /// The design serves no UDP.
    TcpOnly,
}

impl Verdict {
    /// The verdict's name in the tables and in `results.json`.
    pub fn code(&self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::WrongReply(_) => "wrong reply",
            Verdict::Died(_) => "died",
            Verdict::NoStart(_) => "did not start",
            Verdict::Failed(_) => "failed",
            Verdict::NotApplicable => "not applicable to external designs",
            Verdict::TcpOnly => "skipped: TCP only",
        }
    }

    /// What happened, in words (empty for the verdicts that say it all).
    pub fn detail(&self) -> &str {
        match self {
            Verdict::WrongReply(d)
            | Verdict::Died(d)
            | Verdict::NoStart(d)
            | Verdict::Failed(d) => d,
            _ => "",
        }
    }

    pub fn is_ok(&self) -> bool {
        *self == Verdict::Ok
    }
}
