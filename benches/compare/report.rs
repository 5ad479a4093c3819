//! What the runs come to: medians per scenario, parameter and design, ratios to oneloop,
//! markdown tables, SVG charts, and `report.md` and `results.json` in one directory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use serde_json::{json, Value};

use crate::scenarios::Run;
use crate::svg::{self, Series};

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

/// The medians of one scenario's runs for one parameter and design.
pub struct Row {
    pub param: String,
    pub design: String,
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
            for r in &group {
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
            Row {
                param: param.to_string(),
                design: design.to_string(),
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 0 {
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
            columns: requests,
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
    headers.extend(["÷ oneloop", "range", "notes"]);
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
        cells.extend([ratio, range, row.notes.replace('|', "/")]);
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    let _ = writeln!(
        out,
        "\n÷ oneloop: this design's {} over oneloop's (medians); range: its lowest and highest \
         over the rounds.",
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

/// Writes `report.md`, `results.json` and a chart per scenario into `dir`.
pub fn write(
    dir: &Path,
    machine: &Machine,
    command: &str,
    scenarios: &[(&'static str, Vec<Row>)],
    runs: &[Run],
) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut md = format!(
        "# oneloop against threaded and async designs\n\n\
         `{command}`\n\n\
         Machine: {}\n\n\
         Each figure is the median over the rounds; every run had a fresh server. CPU time is \
         the server's (user and system, from /proc/PID/stat) divided by the requests the load \
         completed. On loopback the kernel's work bounds the rate, so CPU per request says more \
         than the rate alone.\n\n",
        machine.describe()
    );
    for (scenario, rows) in scenarios {
        let file = format!("{scenario}.svg");
        std::fs::write(dir.join(&file), chart(scenario, rows))?;
        let _ = writeln!(md, "{}\n![{scenario}]({file})\n", table(scenario, rows));
    }
    std::fs::write(dir.join("report.md"), md)?;
    let results = json!({
        "command": command,
        "machine": {
            "cpus": machine.cpus,
            "model": machine.model,
            "kernel": machine.kernel,
            "pinned": machine.pinned,
            "load_average": machine.load_average,
        },
        "medians": scenarios.iter().flat_map(|(scenario, rows)| rows.iter().map(move |r| json!({
            "scenario": scenario,
            "param": r.param,
            "design": r.design,
            "metrics": r.medians,
            "ranges": r.ranges,
            "notes": r.notes,
        }))).collect::<Vec<Value>>(),
        "runs": runs.iter().map(|r| json!({
            "scenario": r.scenario,
            "param": r.param,
            "design": r.design,
            "round": r.round,
            "metrics": r.metrics,
            "note": r.note,
            "load": r.load,
        })).collect::<Vec<Value>>(),
    });
    let text = serde_json::to_string_pretty(&results).map_err(io::Error::other)?;
    std::fs::write(dir.join("results.json"), text + "\n")
}
