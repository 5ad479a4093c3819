//! oneloop against the same protocol in other designs: one blocking connection at a time
//! (`serial`), a thread per connection (`threads`), a fixed pool of blocking workers (`pool`),
//! and tokio on one thread (`tokio-ct`) and on its default workers (`tokio-mt`).
//!
//! `cargo bench --bench compare` runs every scenario, three rounds each (about 30 minutes on
//! 2 CPUs); `cargo bench --bench compare -- --quick` runs one short round (about 2 minutes).
//! `--server NAME=COMMAND` adds any program that serves the same protocol; `--only` and
//! `--scenarios` pick designs and scenarios (`--help` lists every option).
//! docs/performance.md explains the figures and the schema of `results.json`.
//!
//! Every design runs in a process of its own: oneloop is the binary cargo built beside this
//! bench, the variants are this bench executable started again as `compare --serve VARIANT`,
//! and an external design is `sh -c COMMAND` in a process group of its own. The load is
//! `oneloop load`. The server runs on CPU 0 and the load on CPU 1 where the machine allows.
//! Tables go to stdout, progress to stderr, and `report.md`,
//! `results.json` and SVG charts to `compare/` in the cargo target directory.

#[path = "compare/cli.rs"]
mod cli;
#[path = "compare/curves.rs"]
mod curves;
#[path = "compare/designs.rs"]
mod designs;
#[path = "compare/procfs.rs"]
mod procfs;
#[path = "compare/procs.rs"]
mod procs;
#[path = "compare/protocol.rs"]
mod protocol;
#[path = "compare/report.rs"]
mod report;
#[path = "compare/scenarios.rs"]
mod scenarios;
#[path = "compare/svg.rs"]
mod svg;
#[path = "compare/variants.rs"]
mod variants;

use std::path::PathBuf;
use std::process::ExitCode;

use cli::Parsed;
use scenarios::Plan;

fn main() -> ExitCode {
    let opts = match cli::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(opts)) => opts,
        Ok(Parsed::Serve(variant)) => {
            return match variants::serve(&variant) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("compare --serve {variant}: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Ok(Parsed::Help) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("compare: {e}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let mut plan = Plan::new(opts.quick);
    plan.rounds = opts.rounds.unwrap_or(plan.rounds);
    plan.duration = opts.duration.unwrap_or(plan.duration);
    plan.scenarios = opts.scenarios;
    plan.designs = opts.designs;
    let blocked = match scenarios::check_protocol(&plan) {
        Ok(blocked) => blocked,
        Err(e) => {
            eprintln!("compare: {e}");
            return ExitCode::FAILURE;
        }
    };
    let machine = report::Machine::detect(plan.pin);
    let command = format!(
        "cargo bench --bench compare{}",
        std::env::args()
            .skip(1)
            .filter(|a| a != "--bench")
            .map(|a| shell_word(&a))
            .fold(String::from(" --"), |all, a| all + " " + &a)
            .trim_end_matches(" --")
    );
    println!(
        "# oneloop against threaded and async designs\n\n{}\n",
        machine.describe()
    );
    let mut tables = Vec::new();
    let (runs, capacities) = scenarios::run_all(&plan, &blocked, |scenario, runs| {
        let rows = report::rows(runs);
        println!("{}", report::table(scenario, &rows));
        tables.push((scenario, rows));
    });
    let dir = target_dir().join("compare");
    let results = report::Results {
        machine: &machine,
        command: &command,
        plan: &plan,
        scenarios: &tables,
        runs: &runs,
        capacities: &capacities,
    };
    match report::write(&dir, &results) {
        Ok(()) => {
            println!("report, results and charts in {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("compare: cannot write {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

/// `word` as the shell would need it to read it back: quoted when it holds anything but
/// letters, digits and `-_./=,:{}`.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:{}".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The cargo target directory: `CARGO_TARGET_DIR`, or the one this executable was built in
/// (`TARGET/PROFILE/deps/compare-HASH`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return dir.into();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
}
