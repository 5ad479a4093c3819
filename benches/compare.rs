//! oneloop against the same protocol in other designs: one blocking connection at a time
//! (`serial`), a thread per connection (`threads`), a fixed pool of blocking workers (`pool`),
//! and tokio on one thread (`tokio-ct`) and on its default workers (`tokio-mt`).
//!
//! `cargo bench --bench compare` runs every scenario, three rounds each (about 17 minutes on
//! 2 CPUs); `cargo bench --bench compare -- --quick` runs one short round (about 80 s). Options
//! after `--`: `--quick`, `--rounds N`, `--duration SECS` (per load run), and
//! `--scenario NAME` (repeatable) to run only some of: concurrency, open-loop, idle-holders,
//! rss, udp-echo, reuseport, syscalls. docs/performance.md explains the figures.
//!
//! Every design runs in a process of its own: oneloop is the binary cargo built beside this
//! bench, and the variants are this bench executable started again as
//! `compare --serve VARIANT`. The load is `oneloop load`. The server runs on CPU 0 and the load
//! on CPU 1 where the machine allows. Tables go to stdout, progress to stderr, and `report.md`,
//! `results.json` and SVG charts to `compare/` in the cargo target directory.

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

use scenarios::{Plan, SCENARIOS};

const USAGE: &str = "usage: compare [--quick] [--rounds N] [--duration SECS] [--scenario NAME]...";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut quick = false;
    let mut rounds = None;
    let mut duration = None;
    let mut only = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--serve" => {
                let variant = args.next().unwrap_or_default();
                return match variants::serve(&variant) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("compare --serve {variant}: {e}");
                        ExitCode::FAILURE
                    }
                };
            }
            "--quick" => quick = true,
            "--rounds" => rounds = args.next().and_then(|n| n.parse().ok()),
            "--duration" => duration = args.next().and_then(|s| s.parse().ok()),
            "--scenario" => only.push(args.next().unwrap_or_default()),
            // cargo bench passes --bench.
            "--bench" => {}
            _ => {
                eprintln!("compare: unknown argument {arg}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(bad) = only.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
        eprintln!("compare: unknown scenario {bad:?}; the scenarios: {SCENARIOS:?}");
        return ExitCode::from(2);
    }
    let mut plan = Plan::new(quick);
    plan.rounds = rounds.unwrap_or(plan.rounds).max(1);
    plan.duration = duration.unwrap_or(plan.duration);
    plan.only = only;
    if let Err(e) = scenarios::check_protocol(&plan) {
        eprintln!("compare: {e}");
        return ExitCode::FAILURE;
    }
    let machine = report::Machine::detect(plan.pin);
    let command = format!(
        "cargo bench --bench compare{}",
        std::env::args()
            .skip(1)
            .filter(|a| a != "--bench")
            .fold(String::from(" --"), |all, a| all + " " + &a)
            .trim_end_matches(" --")
    );
    println!(
        "# oneloop against threaded and async designs\n\n{}\n",
        machine.describe()
    );
    let mut tables = Vec::new();
    let runs = scenarios::run_all(&plan, |scenario, runs| {
        let rows = report::rows(runs);
        println!("{}", report::table(scenario, &rows));
        tables.push((scenario, rows));
    });
    let dir = target_dir().join("compare");
    match report::write(&dir, &machine, &command, &tables, &runs) {
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
