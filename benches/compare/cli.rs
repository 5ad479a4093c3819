//! The bench's command line (the arguments after `cargo bench --bench compare --`), checked in
//! full before anything runs, and the placeholders of an external server's command.

use crate::designs::{Design, Kind, BUILT_IN};

/// Every scenario's name, in the order they run.
pub const SCENARIOS: [&str; 7] = [
    "concurrency",
    "open-loop",
    "idle-holders",
    "rss",
    "udp-echo",
    "reuseport",
    "syscalls",
];

pub const USAGE: &str = "\
usage: cargo bench --bench compare -- [OPTIONS]
  --quick                  one short round (what CI runs)
  --rounds N               rounds, 1 to 100                          [3; quick 1]
  --duration SECS          seconds per load run, 0.1 to 600          [5; quick 1]
  --scenarios A,B,...      run only these scenarios (--scenario A, repeatable, too)
  --only NAME,...          run only these designs (built-in or --server)
  --server NAME=COMMAND    also measure COMMAND (run by sh -c; {tcp}, {udp} and {host}
                           become the ports and host it is to serve), repeatable
  --tcp-only NAME          the --server design NAME serves no UDP: UDP scenarios skip it
  -h, --help               this text
scenarios: concurrency, open-loop, idle-holders, rss, udp-echo, reuseport, syscalls
built-in designs: oneloop, serial, threads, pool, tokio-ct, tokio-mt";

/// Bounds of `--rounds`.
const ROUNDS: (usize, usize) = (1, 100);
/// Bounds of `--duration`, in seconds.
const DURATION: (f64, f64) = (0.1, 600.0);

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// Measure.
    Run(Options),
    /// Serve a variant (the bench starting itself again).
    Serve(String),
    Help,
}

/// The options of a measuring run.
#[derive(Debug, Default, PartialEq)]
pub struct Options {
    pub quick: bool,
    pub rounds: Option<usize>,
    pub duration: Option<f64>,
    /// The scenarios to run, in the order of [`SCENARIOS`] (all when none were named).
    pub scenarios: Vec<&'static str>,
    /// The designs to run: the built-in ones in their order, then the external ones in the
    /// order given.
    pub designs: Vec<Design>,
}

/// Reads the arguments; `Err` is a usage error, worded for the user.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut args = args.into_iter();
    let mut opts = Options::default();
    let (mut scenarios, mut only, mut tcp_only) = (Vec::new(), Vec::new(), Vec::new());
    let mut externals: Vec<Design> = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--serve" => return Ok(Parsed::Serve(value("--serve")?)),
            "-h" | "--help" => return Ok(Parsed::Help),
            "--quick" => opts.quick = true,
            "--rounds" => opts.rounds = Some(bounded("--rounds", &value("--rounds")?, ROUNDS)?),
            "--duration" => {
                let secs = bounded("--duration", &value("--duration")?, DURATION)?;
                opts.duration = Some(secs);
            }
            "--scenario" => scenarios.push(value("--scenario")?),
            "--scenarios" => scenarios.extend(list(&value("--scenarios")?)),
            "--only" => only.extend(list(&value("--only")?)),
            "--server" => {
                let design = server(&value("--server")?)?;
                if externals.iter().any(|d| d.name == design.name) {
                    return Err(format!("--server {}: the name is given twice", design.name));
                }
                externals.push(design);
            }
            "--tcp-only" => tcp_only.push(value("--tcp-only")?),
            // cargo bench passes --bench.
            "--bench" => {}
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    for name in tcp_only {
        let design = externals.iter_mut().find(|d| d.name == name);
        match design.map(|d| &mut d.kind) {
            Some(Kind::External { tcp_only, .. }) => *tcp_only = true,
            _ => {
                let named: Vec<&str> = externals.iter().map(|d| d.name.as_str()).collect();
                return Err(format!(
                    "--tcp-only {name:?}: not a --server design (those given: {named:?})"
                ));
            }
        }
    }
    for s in &scenarios {
        if !SCENARIOS.contains(&s.as_str()) {
            return Err(format!(
                "unknown scenario {s:?}; the scenarios: {SCENARIOS:?}"
            ));
        }
    }
    opts.scenarios = SCENARIOS
        .into_iter()
        .filter(|s| scenarios.is_empty() || scenarios.iter().any(|n| n == s))
        .collect();
    let all: Vec<Design> = BUILT_IN
        .iter()
        .map(|n| Design::built_in(n))
        .chain(externals)
        .collect();
    if let Some(bad) = only.iter().find(|n| !all.iter().any(|d| &d.name == *n)) {
        let names: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
        return Err(format!(
            "--only: unknown design {bad:?}; the designs: {names:?}"
        ));
    }
    opts.designs = all
        .into_iter()
        .filter(|d| only.is_empty() || only.contains(&d.name))
        .collect();
    Ok(Parsed::Run(opts))
}

/// The comma-separated names of `text`, blanks dropped.
fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// `text` as a number within `(low, high)`, both included.
fn bounded<T>(name: &str, text: &str, (low, high): (T, T)) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match text.parse::<T>() {
        Ok(v) if v >= low && v <= high => Ok(v),
        _ => Err(format!(
            "{name}: {text:?} is not a number from {low} to {high}"
        )),
    }
}

/// `NAME=COMMAND` as an external design. A name is letters, digits, `.`, `_` and `-`, and is
/// none of the built-in designs'.
fn server(spec: &str) -> Result<Design, String> {
    let Some((name, command)) = spec.split_once('=') else {
        return Err(format!("--server {spec:?}: want NAME=COMMAND"));
    };
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !name_ok {
        return Err(format!(
            "--server {spec:?}: the name {name:?} must be letters, digits, '.', '_' or '-'"
        ));
    }
    if BUILT_IN.contains(&name) {
        return Err(format!("--server {name}: a built-in design has that name"));
    }
    if command.trim().is_empty() {
        return Err(format!("--server {name}: the command is empty"));
    }
    Ok(Design {
        name: name.to_string(),
        kind: Kind::External {
            command: command.to_string(),
            tcp_only: false,
        },
    })
}

/// `command` with `{tcp}`, `{udp}` and `{host}` replaced; any other braces stay as they are,
/// for the shell.
pub fn substitute(command: &str, tcp: u16, udp: u16, host: &str) -> String {
    command
        .replace("{tcp}", &tcp.to_string())
        .replace("{udp}", &udp.to_string())
        .replace("{host}", host)
}
