//! What the runs come to: medians per scenario, parameter and design, ratios to oneloop,
//! markdown tables, SVG charts, and `report.md` and `results.json` in one directory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use serde_json::{json, Value};

use crate::curves::{self, PERCENTILES};
use crate::designs::{Kind, Verdict};
use crate::procs::{LOAD_CPU, SERVER_CPU};
use crate::scenarios::{Capacities, Plan, Run};
use crate::svg::{self, Curve, Series};

/// The version of `results.json`'s layout (docs/performance/results-schema.md).
pub const SCHEMA: &str = "oneloop-compare/1";
/// A run whose load process used at least this share of its CPU (%) may have been bound by the
/// load rather than by the server.
pub const LOAD_BOUND_PCT: f64 = 90.0;

/// The machine the figures come from.
pub struct Machine {
    pub cpus: usize,
    pub model: String,
    pub kernel: String,
    pub pinned: bool,
    /// /proc/loadavg when the bench started: other work on the machine skews every figure.
    pub load_average: String,
}

impl Machine {
    pub fn detect(pinned: bool) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
            .map_or("unknown".into(), |(_, m)| m.trim().to_string());
        let version = std::fs::read_to_string("/proc/version").unwrap_or_default();
        let kernel = version.split_whitespace().nth(2).unwrap_or("unknown");
        let load_average = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        Machine {
            load_average: load_average
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            model,
            kernel: kernel.to_string(),
            pinned,
        }
    }

    pub fn describe(&self) -> String {
        let pinning = if self.pinned {
            "the server under test pinned to CPU 0 and the load to CPU 1 (sched_setaffinity \
             before exec); the reuseport runs are not pinned"
        } else {
            "not pinned: this process may not run on both CPU 0 and CPU 1, so servers and load \
             share whatever CPUs the scheduler gives them"
        };
        format!(
            "{} CPUs ({}), Linux {}, loopback; {pinning}. Load average when the bench \
             started: {}.",
            self.cpus, self.model, self.kernel, self.load_average
        )
    }
}

/// The medians of one scenario's runs for one parameter and design, over the runs whose
/// verdict is ok.
pub struct Row {
    pub param: String,
    pub design: String,
    /// `ok` when every run was, else the verdict of the first run that was not.
    pub verdict: Verdict,
    /// The runs, and those among them that were ok.
    pub runs: usize,
    pub ok_runs: usize,
    /// The ok runs whose load used at least [`LOAD_BOUND_PCT`] of its CPU.
    pub load_bound_runs: usize,
    pub medians: BTreeMap<&'static str, f64>,
    /// The lowest and highest value of each figure over the rounds.
    pub ranges: BTreeMap<&'static str, (f64, f64)>,
    /// Distinct notes, each with how many of the runs gave it.
    pub notes: String,
}

/// Groups `runs` by parameter and design (in the order they first ran) and takes medians.
pub fn rows(runs: &[Run]) -> Vec<Row> {
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for r in runs {
        if !keys.contains(&(&r.param, &r.design)) {
            keys.push((&r.param, &r.design));
        }
    }
    keys.into_iter()
        .map(|(param, design)| {
            let group: Vec<&Run> = runs
                .iter()
                .filter(|r| r.param == param && r.design == design)
                .collect();
            let mut values: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
            let ok: Vec<&&Run> = group.iter().filter(|r| r.verdict.is_ok()).collect();
            for r in &ok {
                for (&k, &v) in &r.metrics {
                    values.entry(k).or_default().push(v);
                }
            }
            let mut notes: Vec<(String, usize)> = Vec::new();
            for r in group.iter().filter(|r| !r.note.is_empty()) {
                match notes.iter_mut().find(|(n, _)| *n == r.note) {
                    Some((_, count)) => *count += 1,
                    None => notes.push((r.note.clone(), 1)),
                }
            }
            let notes: Vec<String> = notes
                .into_iter()
                .map(|(n, count)| match group.len() {
                    1 => n,
                    all => format!("{count}/{all} runs: {n}"),
                })
                .collect();
            let bad = group.iter().find(|r| !r.verdict.is_ok());
            Row {
                param: param.to_string(),
                design: design.to_string(),
                verdict: bad.map_or(Verdict::Ok, |r| r.verdict.clone()),
                runs: group.len(),
                ok_runs: ok.len(),
                load_bound_runs: ok.iter().filter(|r| load_bound(r)).count(),
                ranges: values
                    .iter()
                    .map(|(&k, v)| {
                        let low = v.iter().copied().fold(f64::INFINITY, f64::min);
                        (k, (low, v.iter().copied().fold(low, f64::max)))
                    })
                    .collect(),
                medians: values.into_iter().map(|(k, v)| (k, median(v))).collect(),
                notes: notes.join("; "),
            }
        })
        .collect()
}

/// Whether the run's load used at least [`LOAD_BOUND_PCT`] of its CPU.
fn load_bound(run: &Run) -> bool {
    run.metrics
        .get("load_cpu_pct")
        .is_some_and(|&p| p >= LOAD_BOUND_PCT)
}

/// The verdict of a row in words: `ok`, or the verdict with how many runs had it and what
/// happened.
fn verdict_text(row: &Row) -> String {
    let v = &row.verdict;
    if v.is_ok() {
        return "ok".into();
    }
    let mut text = v.code().to_string();
    if row.runs > 1 {
        let _ = write!(
            text,
            " ({}/{} runs not ok)",
            row.runs - row.ok_runs,
            row.runs
        );
    }
    if !v.detail().is_empty() {
        let _ = write!(text, ": {}", v.detail());
    }
    text
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

/// A column of a scenario's table: its header, the figure, and its decimals.
type Column = (&'static str, &'static str, usize);

/// How a scenario is shown: title, columns, the figure compared with oneloop, and its chart
/// (figure, axis label, logarithmic).
struct Layout {
    title: &'static str,
    columns: Vec<Column>,
    ratio: &'static str,
    chart: (&'static str, &'static str, bool),
}

fn layout(scenario: &str) -> Layout {
    let latency = [("p50 µs", "p50_us", 0), ("p99 µs", "p99_us", 0)];
    // A datagram costs a tenth of a connection: its CPU figures get one more decimal.
    let cpu = |decimals| {
        [
            ("errors", "errors", 0),
            ("server CPU %", "server_cpu_pct", 0),
            ("load CPU %", "load_cpu_pct", 0),
            ("user µs/req", "user_us_per_req", decimals),
            ("sys µs/req", "sys_us_per_req", decimals),
        ]
    };
    let rate = ("req/s", "rate_per_s", 0);
    let requests = [&[rate][..], &latency, &cpu(1)].concat();
    let rate_chart = ("rate_per_s", "completed requests per second", false);
    match scenario {
        "concurrency" => Layout {
            title: "count, closed loop: requests per second by clients in flight",
            columns: requests,
            ratio: "rate_per_s",
            chart: rate_chart,
        },
        "open-loop" => Layout {
            title: "count, open loop at a fixed rate: latency from each request's intended start",
            columns: [
                &[("offered/s", "offered_per_s", 0), rate][..],
                &latency,
                &[("p99.9 µs", "p999_us", 0)],
                &cpu(1),
            ]
            .concat(),
            ratio: "p99_us",
            chart: ("p99_us", "p99 latency (µs, log scale)", true),
        },
        "idle-holders" => Layout {
            title: "count: 16 active clients while idle clients are held open",
            columns: requests,
            ratio: "rate_per_s",
            chart: ("rate_per_s", "active requests per second", false),
        },
        "rss" => Layout {
            title: "memory per idle count connection (VmRSS holding - idle)",
            columns: vec![
                ("idle KiB", "idle_kib", 0),
                ("holding KiB", "holding_kib", 0),
                ("bytes/conn", "rss_bytes_per_conn", 0),
            ],
            ratio: "rss_bytes_per_conn",
            chart: ("rss_bytes_per_conn", "bytes per idle connection", false),
        },
        "udp-echo" => Layout {
            title: "UDP echo: replies per second",
            columns: [
                &[("replies/s", "rate_per_s", 0), ("lost", "lost", 0)][..],
                &latency,
                &cpu(2),
            ]
            .concat(),
            ratio: "rate_per_s",
            chart: ("rate_per_s", "replies per second", false),
        },
        "reuseport" => Layout {
            title: "one oneloop, two on one port (SO_REUSEPORT), and tokio-mt; nothing pinned",
            columns: requests,
            ratio: "rate_per_s",
            chart: rate_chart,
        },
        _ => Layout {
            title: "system calls per count request (strace -c -f)",
            columns: vec![("calls/req", "syscalls_per_req", 1)],
            ratio: "syscalls_per_req",
            chart: ("syscalls_per_req", "system calls per request", false),
        },
    }
}

fn format_value(v: Option<f64>, decimals: usize) -> String {
    v.map_or("—".into(), |v| format!("{v:.decimals$}"))
}

/// A scenario's markdown table: a row per parameter and design, with the ratio of its main
/// figure to oneloop's for the same parameter.
pub fn table(scenario: &str, rows: &[Row]) -> String {
    let layout = layout(scenario);
    let mut headers = vec!["", "design"];
    headers.extend(layout.columns.iter().map(|c| c.0));
    headers.extend(["÷ oneloop", "range", "verdict", "notes"]);
    let mut out = format!("### {scenario}: {}\n\n", layout.title);
    let _ = writeln!(out, "| {} |", headers.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(headers.len()));
    for row in rows {
        let base = rows
            .iter()
            .find(|r| r.param == row.param && r.design == "oneloop")
            .and_then(|r| r.medians.get(layout.ratio));
        let ratio = match (row.medians.get(layout.ratio), base) {
            (Some(v), Some(b)) if *b != 0.0 => format!("{:.2}", v / b),
            _ => "—".into(),
        };
        let decimals = layout
            .columns
            .iter()
            .find(|c| c.1 == layout.ratio)
            .map_or(0, |c| c.2);
        let range = match row.ranges.get(layout.ratio) {
            Some((low, high)) if low != high => format!("{low:.decimals$}–{high:.decimals$}"),
            _ => String::new(),
        };
        let mut cells = vec![row.param.clone(), row.design.clone()];
        cells.extend(layout.columns.iter().map(|&(_, metric, decimals)| {
            format_value(row.medians.get(metric).copied(), decimals)
        }));
        let mut notes = row.notes.clone();
        if row.load_bound_runs > 0 {
            let flag = format!(
                "load ≥ {LOAD_BOUND_PCT} % of its CPU in {}/{} runs",
                row.load_bound_runs, row.ok_runs
            );
            notes = if notes.is_empty() {
                flag
            } else {
                format!("{flag}; {notes}")
            };
        }
        let verdict = verdict_text(row).replace('\n', " ");
        cells.extend([
            ratio,
            range,
            verdict.replace('|', "/"),
            notes.replace('|', "/"),
        ]);
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    let _ = writeln!(
        out,
        "\n÷ oneloop: this design's {} over oneloop's (medians); range: its lowest and highest \
         over the rounds. Figures are the medians of the runs whose verdict is ok.",
        layout
            .columns
            .iter()
            .find(|c| c.1 == layout.ratio)
            .map_or("", |c| c.0)
    );
    out
}

/// The scenario's chart: lines over its parameters when it has several, else a bar per design.
fn chart(scenario: &str, rows: &[Row]) -> String {
    let layout = layout(scenario);
    let (metric, label, log) = layout.chart;
    let mut params: Vec<String> = Vec::new();
    let mut designs: Vec<String> = Vec::new();
    for r in rows {
        if !params.contains(&r.param) {
            params.push(r.param.clone());
        }
        if !designs.contains(&r.design) {
            designs.push(r.design.clone());
        }
    }
    let value = |param: &str, design: &str| {
        rows.iter()
            .find(|r| r.param == param && r.design == design)
            .and_then(|r| r.medians.get(metric).copied())
    };
    if params.len() > 1 {
        let title = format!("{scenario}: {}", layout.title);
        let series: Vec<Series> = designs
            .iter()
            .map(|d| Series {
                name: d.clone(),
                values: params.iter().map(|p| value(p, d)).collect(),
            })
            .collect();
        svg::line_chart(&title, label, &params, &series, log)
    } else {
        let title = format!("{scenario}, {}: {}", params[0], layout.title);
        let bars: Vec<(String, Option<f64>)> = designs
            .iter()
            .map(|d| (d.clone(), value(&params[0], d)))
            .collect();
        svg::bar_chart(&title, label, &bars, log)
    }
}

/// What a bench run comes to, for [`write`].
pub struct Results<'a> {
    pub machine: &'a Machine,
    pub command: &'a str,
    pub plan: &'a Plan,
    /// Each scenario's rows, in the order the scenarios ran.
    pub scenarios: &'a [(&'static str, Vec<Row>)],
    pub runs: &'a [Run],
    pub capacities: &'a Capacities,
}

/// One design's latency curve: (offered rate, median p50, p99, p99.9) per open-loop rate it
/// ran at with an ok verdict, by offered rate.
fn curve(rows: &[Row], design: &str) -> Vec<[f64; 4]> {
    let mut points: Vec<[f64; 4]> = rows
        .iter()
        .filter(|r| r.design == design)
        .filter_map(|r| {
            let m = |k: &str| r.medians.get(k).copied();
            Some([
                m("offered_per_s")?,
                m("p50_us")?,
                m("p99_us")?,
                m("p999_us")?,
            ])
        })
        .collect();
    points.sort_by(|a, b| a[0].total_cmp(&b[0]));
    points
}

/// The designs of `rows`, in the order they first appear.
fn designs_of(rows: &[Row]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        if !names.contains(&r.design.as_str()) {
            names.push(&r.design);
        }
    }
    names
}

/// The open loop's charts: p99 against the offered rate, a line per design; and latency
/// against percentile on a nines axis at the first fixed rate (`param`).
fn latency_charts(rows: &[Row], param: &str) -> (String, String) {
    let names = designs_of(rows);
    let by_rate: Vec<Curve> = names
        .iter()
        .map(|d| Curve {
            name: d.to_string(),
            points: curve(rows, d).iter().map(|p| (p[0], p[2])).collect(),
        })
        .collect();
    let rate_chart = svg::xy_chart(
        "open loop: p99 latency against the offered rate",
        "offered requests per second",
        "p99 latency (µs, log scale)",
        None,
        &by_rate,
    );
    let ticks: Vec<(f64, String)> = PERCENTILES
        .iter()
        .map(|&(p, _)| (curves::nines(p), format!("{p}")))
        .collect();
    let at_rate: Vec<Curve> = names
        .iter()
        .map(|d| {
            let row = rows.iter().find(|r| r.param == param && r.design == *d);
            let points = PERCENTILES
                .iter()
                .filter_map(|&(p, metric)| {
                    let v = row?.medians.get(metric)?;
                    Some((curves::nines(p), *v))
                })
                .collect();
            Curve {
                name: d.to_string(),
                points,
            }
        })
        .collect();
    let percentile_chart = svg::xy_chart(
        &format!("open loop at {param}: latency by percentile"),
        "percentile (nines)",
        "latency (µs, log scale)",
        Some(&ticks),
        &at_rate,
    );
    (rate_chart, percentile_chart)
}

/// Writes `report.md`, `results.json` and the charts into `dir`: one per scenario, and for the
/// open loop `latency-vs-rate.svg` and `percentiles.svg`.
pub fn write(dir: &Path, r: &Results) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut md = format!(
        "# oneloop against threaded and async designs\n\n\
         `{}`\n\n\
         Machine: {}\n\n\
         Each figure is the median over the rounds whose verdict is ok; every run had a fresh \
         server. CPU time is the server's (user and system, from /proc/PID/stat; an external \
         server's whole process tree) divided by the requests the load completed. `load CPU %` \
         is the load process's own CPU time over the run's wall time; a run where it reached \
         {LOAD_BOUND_PCT} % is flagged, since the load may then have been the bound. On \
         loopback the kernel's work bounds the rate, so CPU per request says more than the \
         rate alone.\n\n",
        r.command,
        r.machine.describe()
    );
    let fixed = format!("{}/s", r.plan.rates.first().copied().unwrap_or_default());
    for (scenario, rows) in r.scenarios {
        let file = format!("{scenario}.svg");
        std::fs::write(dir.join(&file), chart(scenario, rows))?;
        let _ = writeln!(md, "{}\n![{scenario}]({file})\n", table(scenario, rows));
        if *scenario == "open-loop" {
            let (by_rate, by_percentile) = latency_charts(rows, &fixed);
            std::fs::write(dir.join("latency-vs-rate.svg"), by_rate)?;
            std::fs::write(dir.join("percentiles.svg"), by_percentile)?;
            let _ = writeln!(
                md,
                "Latency against the offered rate (p99; the rates are the fixed ones and \
                 fractions of each design's capacity):\n\n\
                 ![latency against offered rate](latency-vs-rate.svg)\n\n\
                 Latency by percentile at {fixed}:\n\n\
                 ![latency by percentile](percentiles.svg)\n"
            );
        }
    }
    std::fs::write(dir.join("report.md"), md)?;
    let text = serde_json::to_string_pretty(&results_json(r)).map_err(io::Error::other)?;
    std::fs::write(dir.join("results.json"), text + "\n")
}

/// `results.json`, laid out as docs/performance/results-schema.md describes.
fn results_json(r: &Results) -> Value {
    let m = r.machine;
    let open_loop = r.scenarios.iter().find(|(s, _)| *s == "open-loop");
    let verdicts: Vec<Value> = r
        .scenarios
        .iter()
        .flat_map(|(scenario, rows)| {
            designs_of(rows).into_iter().map(move |design| {
                let bad = rows
                    .iter()
                    .find(|row| row.design == design && !row.verdict.is_ok());
                let v = bad.map_or(&Verdict::Ok, |row| &row.verdict);
                json!({
                    "scenario": scenario,
                    "design": design,
                    "verdict": v.code(),
                    "detail": v.detail(),
                })
            })
        })
        .collect();
    json!({
        "schema": SCHEMA,
        "command": r.command,
        "machine": {
            "cpus": m.cpus,
            "model": m.model,
            "kernel": m.kernel,
            "pinned": m.pinned,
            "server_cpu": m.pinned.then_some(SERVER_CPU),
            "load_cpu": m.pinned.then_some(LOAD_CPU),
            "load_average": m.load_average,
        },
        "plan": {
            "rounds": r.plan.rounds,
            "duration_s": r.plan.duration,
            "scenarios": r.plan.scenarios,
            "open_loop_rates": r.plan.rates,
            "open_loop_fractions": r.plan.fractions,
            "load_bound_pct": LOAD_BOUND_PCT,
        },
        "designs": r.plan.designs.iter().map(|d| {
            let (kind, command, tcp_only) = match &d.kind {
                Kind::Oneloop => ("oneloop", None, false),
                Kind::Variant => ("variant", None, false),
                Kind::External { command, tcp_only } => ("external", Some(command), *tcp_only),
            };
            json!({"name": d.name, "kind": kind, "command": command, "tcp_only": tcp_only})
        }).collect::<Vec<Value>>(),
        "verdicts": verdicts,
        "medians": r.scenarios.iter().flat_map(|(scenario, rows)| rows.iter().map(move |row| json!({
            "scenario": scenario,
            "param": row.param,
            "design": row.design,
            "verdict": row.verdict.code(),
            "detail": row.verdict.detail(),
            "runs": row.runs,
            "ok_runs": row.ok_runs,
            "load_bound_runs": row.load_bound_runs,
            "metrics": row.medians,
            "ranges": row.ranges,
            "notes": row.notes,
        }))).collect::<Vec<Value>>(),
        "curves": open_loop.map_or(vec![], |(_, rows)| designs_of(rows).into_iter().map(|d| {
            let capacity = r.capacities.get(d);
            json!({
                "design": d,
                "capacity_per_s": capacity.map(|c| c.0),
                "capacity_from": capacity.map(|c| &c.1),
                "points": curve(rows, d).iter().map(|p| json!({
                    "offered_per_s": p[0], "p50_us": p[1], "p99_us": p[2], "p999_us": p[3],
                })).collect::<Vec<Value>>(),
            })
        }).collect::<Vec<Value>>()),
        "runs": r.runs.iter().map(|run| json!({
            "scenario": run.scenario,
            "param": run.param,
            "design": run.design,
            "round": run.round,
            "verdict": run.verdict.code(),
            "detail": run.verdict.detail(),
            "load_bound": load_bound(run),
            "metrics": run.metrics,
            "note": run.note,
            "load": run.load,
        })).collect::<Vec<Value>>(),
    })
}
