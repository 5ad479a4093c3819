//! The scenarios. Each run starts fresh servers, drives them with `oneloop load`, and records
//! what the load reports beside what the servers spent (CPU time, memory, system calls). Runs
//! go round by round, and within a round through every design in turn, so drift on the machine
//! touches every design alike. A run's verdict says whether its figures count: a server that
//! died, did not start or answered wrongly gives none to the medians.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::curves;
use crate::designs::{Design, Kind, Verdict};
use crate::procs::{self, CpuTime, Load, LoadEnd, Server, LOAD_CPU, SERVER_CPU};

/// The oneloop binary: the daemon under test and the load generator.
const ONELOOP: &str = env!("CARGO_BIN_EXE_oneloop");
/// How long a server has to announce its addresses (an external one: to listen).
const START_WITHIN: Duration = Duration::from_secs(10);
/// What a load run may take beyond the time it was asked to run.
const LOAD_MARGIN: Duration = Duration::from_secs(15);
/// Clients in flight while idle connections are held.
const ACTIVE_CLIENTS: usize = 16;
/// Sockets in flight for UDP echo.
const UDP_SOCKETS: usize = 8;
/// Connections in flight at most in the open-loop runs.
const OPEN_LOOP_CONNECTIONS: usize = 256;
/// Source addresses of the TCP load (127.0.0.1..127.0.0.N). One address's ephemeral ports,
/// each reusable only about a second after its TIME_WAIT begins, cap the load from one address
/// near 14,000 connections a second on Linux 6.18 loopback.
const SOURCES: usize = 4;
/// Clients in flight while system calls are counted.
const STRACE_CLIENTS: usize = 16;

/// Clients in flight in the closed-loop run that measures a design's capacity when the
/// concurrency scenario did not.
const PROBE_CLIENTS: usize = 16;

/// How much to run.
pub struct Plan {
    pub rounds: usize,
    /// Seconds per load run.
    pub duration: f64,
    pub concurrency: Vec<usize>,
    /// The open loop's fixed rates, offered to every design.
    pub rates: Vec<f64>,
    /// The open loop's rates as fractions of each design's capacity (its best closed-loop
    /// rate).
    pub fractions: Vec<f64>,
    /// Idle connections held while active clients run.
    pub holders: usize,
    /// Idle connections for the memory figure.
    pub rss_hold: usize,
    /// How long to wait for every held connection's prompt.
    pub hold_wait: Duration,
    /// Whether the server and the load are pinned to CPUs 0 and 1.
    pub pin: bool,
    /// The scenarios to run, in order.
    pub scenarios: Vec<&'static str>,
    /// The designs to run.
    pub designs: Vec<Design>,
}

impl Plan {
    /// The full run, or with `quick` one short round that CI can afford.
    pub fn new(quick: bool) -> Plan {
        Plan {
            rounds: if quick { 1 } else { 3 },
            duration: if quick { 1.0 } else { 5.0 },
            concurrency: if quick {
                vec![1, 16]
            } else {
                vec![1, 16, 64, 256, 2048]
            },
            rates: vec![1000.0, 5000.0],
            fractions: if quick {
                vec![0.5, 0.9]
            } else {
                vec![0.25, 0.5, 0.75, 0.9]
            },
            holders: if quick { 500 } else { 2000 },
            rss_hold: if quick { 500 } else { 10_000 },
            hold_wait: Duration::from_secs(if quick { 4 } else { 15 }),
            pin: procs::can_pin(),
            scenarios: Vec::new(),
            designs: Vec::new(),
        }
    }

    /// The plan's designs among `names`, then its external designs (which the scenario will
    /// report as not applicable).
    fn among(&self, names: &[&str]) -> Vec<Design> {
        let built_in = names.iter().filter_map(|n| {
            let base = n.split(' ').next().unwrap_or(n);
            self.designs.iter().any(|d| d.name == base).then(|| Design {
                name: n.to_string(),
                ..Design::built_in(base)
            })
        });
        let external = self.designs.iter().filter(|d| d.is_external()).cloned();
        built_in.chain(external).collect()
    }

    fn server_cpu(&self) -> Option<usize> {
        self.pin.then_some(SERVER_CPU)
    }

    fn load_cpu(&self) -> Option<usize> {
        self.pin.then_some(LOAD_CPU)
    }
}

/// One measured run.
pub struct Run {
    pub scenario: &'static str,
    /// The scenario's parameter for this run (`c=16`, `1000/s`, ...).
    pub param: String,
    pub design: String,
    pub round: usize,
    /// Whether the figures count, and if not why.
    pub verdict: Verdict,
    /// Figures by name: `rate_per_s`, `p50_us`, `p99_us`, `errors`, `user_us_per_req`, ...
    pub metrics: BTreeMap<&'static str, f64>,
    /// What went wrong or is worth knowing, or an empty string.
    pub note: String,
    /// The load's own JSON reports.
    pub load: Vec<Value>,
}

/// What one run measured.
#[derive(Default)]
struct Measured {
    metrics: BTreeMap<&'static str, f64>,
    note: String,
    load: Vec<Value>,
    /// Set when the server did not start or died; otherwise the figures decide.
    verdict: Option<Verdict>,
}

impl Measured {
    fn failed(why: impl Into<String>) -> Measured {
        Measured {
            note: why.into(),
            ..Measured::default()
        }
    }

    fn note(&mut self, what: impl AsRef<str>) {
        if !self.note.is_empty() {
            self.note.push_str("; ");
        }
        self.note.push_str(what.as_ref());
    }

    /// The run's verdict: what the server did, else whether the load found wrong replies or
    /// there are no figures.
    fn verdict(&self) -> Verdict {
        if let Some(v) = &self.verdict {
            return v.clone();
        }
        match self.metrics.get("bad_reply") {
            Some(&n) if n > 0.0 => {
                return Verdict::WrongReply(format!("{n} replies failed the load's check"));
            }
            _ => {}
        }
        if self.metrics.is_empty() {
            let why = if self.note.is_empty() {
                "no figures"
            } else {
                &self.note
            };
            return Verdict::Failed(why.to_string());
        }
        Verdict::Ok
    }
}

/// Each design's capacity for the latency curves: its best closed-loop rate, and where that
/// came from.
pub type Capacities = BTreeMap<String, (f64, String)>;

/// Runs the plan's scenarios; `done` hears of each scenario as it ends, with its runs. The
/// designs in `blocked` (those that failed the protocol check) are not run: each scenario
/// reports them with their verdict.
pub fn run_all(
    plan: &Plan,
    blocked: &BTreeMap<String, Verdict>,
    mut done: impl FnMut(&'static str, &[Run]),
) -> (Vec<Run>, Capacities) {
    let mut runs = Vec::new();
    let mut capacities = Capacities::new();
    for &scenario in &plan.scenarios {
        let first = runs.len();
        let mut sweep = Sweep {
            scenario,
            rounds: plan.rounds,
            runs: &mut runs,
            blocked,
        };
        let designs = &plan.designs;
        match scenario {
            "concurrency" => {
                let params = plan.concurrency.iter().map(|&c| (format!("c={c}"), c));
                sweep.run(params.collect(), designs, |d, &c| {
                    with_server(plan, d, |s| count_run(plan, s, c, None))
                });
                for row in crate::report::rows(&runs[first..]) {
                    let Some(&rate) = row.medians.get("rate_per_s") else {
                        continue;
                    };
                    let best = capacities.entry(row.design).or_insert((0.0, String::new()));
                    if rate > best.0 {
                        *best = (rate, format!("concurrency {}", row.param));
                    }
                }
            }
            "open-loop" => {
                probe_capacities(plan, blocked, &mut capacities);
                let fixed = plan
                    .rates
                    .iter()
                    .map(|&r| (format!("{r}/s"), Offer::Fixed(r)));
                let shares = (plan.fractions.iter()).map(|&f| (curves::label(f), Offer::Share(f)));
                sweep.run(fixed.chain(shares).collect(), designs, |d, offer| {
                    let rate = match *offer {
                        Offer::Fixed(r) => r,
                        Offer::Share(f) => {
                            let capacity = capacities.get(&d.name).map_or(0.0, |c| c.0);
                            match curves::ladder(capacity, &[f]) {
                                Some(rates) => rates[0],
                                None => return Measured::failed("no capacity measured"),
                            }
                        }
                    };
                    let mut m = with_server(plan, d, |s| {
                        count_run(plan, s, OPEN_LOOP_CONNECTIONS, Some(rate))
                    });
                    m.metrics.insert("offered_per_s", rate);
                    m
                });
            }
            "idle-holders" => {
                let params = vec![(format!("{} held", plan.holders), plan.holders)];
                sweep.run(params, designs, |d, &n| {
                    with_server(plan, d, |s| holders_run(plan, s, n))
                });
            }
            "rss" => {
                let params = vec![(format!("{} idle", plan.rss_hold), plan.rss_hold)];
                sweep.run(params, designs, |d, &n| {
                    with_server(plan, d, |s| rss_run(plan, s, n))
                });
            }
            "udp-echo" => {
                let params = vec![(format!("{UDP_SOCKETS} sockets"), ())];
                sweep.run(params, designs, |d, _| {
                    with_server(plan, d, |s| {
                        let load = Loader::new(plan.load_cpu(), plan.duration);
                        measured_load(&[s], || load.run("udp-echo", s.udp, UDP_SOCKETS, None))
                    })
                });
            }
            "reuseport" => {
                let c = plan.concurrency.iter().copied().filter(|&c| c <= 256).max();
                let c = c.unwrap_or(ACTIVE_CLIENTS);
                sweep.run(
                    vec![(format!("c={c}"), c)],
                    &plan.among(&MULTI_CORE),
                    |d, &c| reuseport_run(plan, &d.name, c),
                );
            }
            _ => {
                // One pass: the counts barely move from run to run, and strace is slow.
                sweep.rounds = 1;
                let params = vec![(format!("c={STRACE_CLIENTS}"), ())];
                sweep.run(params, &plan.among(&["oneloop", "tokio-ct"]), |d, _| {
                    syscalls_run(plan, d)
                });
            }
        }
        done(scenario, &runs[first..]);
    }
    (runs, capacities)
}

/// A rate of the open loop: the same for every design, or a fraction of each one's capacity.
enum Offer {
    Fixed(f64),
    Share(f64),
}

/// Measures, with a closed-loop run of [`PROBE_CLIENTS`], the capacity of every design of the
/// plan that has none yet (the concurrency scenario did not run, or gave it no figure).
fn probe_capacities(plan: &Plan, blocked: &BTreeMap<String, Verdict>, capacities: &mut Capacities) {
    for d in &plan.designs {
        if capacities.contains_key(&d.name) || blocked.contains_key(&d.name) {
            continue;
        }
        let m = with_server(plan, d, |s| count_run(plan, s, PROBE_CLIENTS, None));
        let rate = m.metrics.get("rate_per_s").copied();
        eprintln!("  capacity of {}: {rate:?}/s {}", d.name, m.note);
        if let (Verdict::Ok, Some(rate)) = (m.verdict(), rate) {
            let from = format!("closed-loop probe c={PROBE_CLIENTS}");
            capacities.insert(d.name.clone(), (rate, from));
        }
    }
}

/// One scenario's runs: every round, parameter and design, in that nesting.
struct Sweep<'a> {
    scenario: &'static str,
    rounds: usize,
    runs: &'a mut Vec<Run>,
    blocked: &'a BTreeMap<String, Verdict>,
}

impl Sweep<'_> {
    /// Measures every design for every parameter in every round; a design that the scenario
    /// skips, or that failed the protocol check, gets its verdict once per parameter instead.
    fn run<P>(
        &mut self,
        params: Vec<(String, P)>,
        designs: &[Design],
        mut measure: impl FnMut(&Design, &P) -> Measured,
    ) {
        for round in 1..=self.rounds {
            for (param, p) in &params {
                for design in designs {
                    let unrun = design
                        .skip(self.scenario)
                        .or_else(|| self.blocked.get(&design.name).cloned());
                    let (m, verdict) = match unrun {
                        Some(_) if round > 1 => continue,
                        Some(v) => (Measured::default(), v),
                        None => {
                            let m = measure(design, p);
                            let v = m.verdict();
                            (m, v)
                        }
                    };
                    let rate = m.metrics.get("rate_per_s").map(|r| format!(" {r:.0}/s"));
                    eprintln!(
                        "  {} {param} {} round {round}: {}{} {}",
                        self.scenario,
                        design.name,
                        verdict.code(),
                        rate.unwrap_or_default(),
                        m.note
                    );
                    self.runs.push(Run {
                        scenario: self.scenario,
                        param: param.clone(),
                        design: design.name.clone(),
                        round,
                        verdict,
                        metrics: m.metrics,
                        note: m.note,
                        load: m.load,
                    });
                }
            }
        }
    }
}

/// oneloop's options in every run: room for the biggest scenario, and the listen backlog std
/// and tokio listeners use, 128, rather than oneloop's own default (`net.core.somaxconn`), so
/// that every design queues the same number of connections.
const ONELOOP_OPTIONS: [&str; 4] = ["--max-connections", "20000", "--backlog", "128"];

/// The command line of the built-in design `design`'s server; `extra` arguments go to oneloop.
fn server_argv(design: &str, extra: &[&str]) -> Vec<OsString> {
    if design == "oneloop" {
        let base = [
            ONELOOP,
            "--tcp",
            "count@127.0.0.1:0",
            "--udp",
            "echo@127.0.0.1:0",
        ];
        base.iter()
            .chain(&ONELOOP_OPTIONS)
            .chain(extra)
            .map(OsString::from)
            .collect()
    } else {
        let me = std::env::current_exe().expect("the bench's own path");
        vec![me.into(), "--serve".into(), design.into()]
    }
}

/// Starts `design`'s server, pinned when `cpu` is given.
fn start(design: &Design, cpu: Option<usize>) -> std::io::Result<Server> {
    match &design.kind {
        Kind::External { command, tcp_only } => {
            Server::external(command, *tcp_only, cpu, START_WITHIN)
        }
        _ => Server::start(&server_argv(&design.name, &[]), cpu, START_WITHIN),
    }
}

/// Starts `design` (pinned when the plan pins) and measures it with `f`; a server that is gone
/// once `f` is done died during the run.
fn with_server(plan: &Plan, design: &Design, f: impl FnOnce(&Server) -> Measured) -> Measured {
    match start(design, plan.server_cpu()) {
        Ok(mut server) => {
            let mut m = f(&server);
            if let Some(why) = server.ended() {
                m.verdict = Some(Verdict::Died(why));
            }
            m
        }
        Err(e) => Measured {
            verdict: Some(Verdict::NoStart(e.to_string())),
            ..Measured::failed(format!("server did not start: {e}"))
        },
    }
}

/// `oneloop load ARGS` as a command line.
fn load_argv(args: &[String]) -> Vec<OsString> {
    let head = [ONELOOP, "load"].map(OsString::from);
    head.into_iter()
        .chain(args.iter().map(OsString::from))
        .collect()
}

/// Runs of `oneloop load` on one CPU (or any), each for the same time.
struct Loader {
    cpu: Option<usize>,
    duration: f64,
}

impl Loader {
    fn new(cpu: Option<usize>, duration: f64) -> Loader {
        Loader { cpu, duration }
    }

    /// `oneloop load KIND ADDR --connections C [--rate R] --duration D --json`, waited for.
    fn run(&self, kind: &str, addr: SocketAddr, connections: usize, rate: Option<f64>) -> LoadEnd {
        let mut args = vec![
            kind.to_string(),
            addr.to_string(),
            "--connections".into(),
            connections.to_string(),
            "--duration".into(),
            self.duration.to_string(),
            "--json".into(),
        ];
        if let Some(rate) = rate {
            args.extend(["--rate".into(), rate.to_string()]);
        }
        if kind == "count" {
            args.extend(["--sources".into(), SOURCES.to_string()]);
        }
        let timeout = Duration::from_secs_f64(self.duration) + LOAD_MARGIN;
        match Load::start(&load_argv(&args), self.cpu, timeout) {
            Ok(load) => load.finish(),
            Err(e) => LoadEnd {
                report: None,
                problem: format!("load did not start: {e}"),
            },
        }
    }
}

/// Measures one load run against `servers`: the load's figures, the servers' CPU time per
/// completed request, and how busy the servers and the load were (100 % is one CPU's worth; a
/// load near 100 % bounds the rate itself).
fn measured_load(servers: &[&Server], run: impl FnOnce() -> LoadEnd) -> Measured {
    let cpu = || {
        let each = servers.iter().map(|s| s.cpu());
        each.fold(CpuTime::default(), |a, b| a + b)
    };
    let (before, load_before, started) = (cpu(), procs::ended_children_cpu(), Instant::now());
    let end = run();
    let (spent, wall) = (cpu() - before, started.elapsed().as_secs_f64());
    // The load is the only child that ends meanwhile.
    let load = procs::ended_children_cpu() - load_before;
    let mut m = Measured::failed(end.problem);
    if let Some(report) = end.report {
        m.metrics = load_metrics(&report);
        let busy = |t: CpuTime| 100.0 * (t.user_us + t.sys_us) / 1e6 / wall;
        m.metrics.insert("server_cpu_pct", busy(spent));
        m.metrics.insert("load_cpu_pct", busy(load));
        m.metrics
            .insert("load_cpu_s", (load.user_us + load.sys_us) / 1e6);
        let completed = m.metrics.get("completed").copied().unwrap_or(0.0);
        if completed > 0.0 {
            m.metrics
                .insert("user_us_per_req", spent.user_us / completed);
            m.metrics.insert("sys_us_per_req", spent.sys_us / completed);
        }
        m.load.push(report);
    }
    m
}

/// The figures of a load report.
fn load_metrics(report: &Value) -> BTreeMap<&'static str, f64> {
    let errors = report["errors"]
        .as_object()
        .map(|e| e.values().filter_map(Value::as_f64).sum());
    let bad_reply = report["errors"]["bad_reply"].as_f64();
    let completed = report["completed"].as_f64();
    // With no request completed there is no latency to speak of.
    let latency = |p: &str| {
        let value = report["latency_us"][p].as_f64();
        value.filter(|_| completed.is_some_and(|c| c > 0.0))
    };
    [
        ("completed", completed),
        ("rate_per_s", report["rate_per_s"].as_f64()),
        ("lost", report["lost"].as_f64()),
        ("errors", errors),
        ("bad_reply", bad_reply),
        ("p50_us", latency("p50")),
        ("p90_us", latency("p90")),
        ("p99_us", latency("p99")),
        ("p999_us", latency("p999")),
        ("p9999_us", latency("p9999")),
        ("max_us", latency("max")),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name, value?)))
    .collect()
}

/// A closed-loop (`rate` none) or open-loop count run against `server`.
fn count_run(plan: &Plan, server: &Server, connections: usize, rate: Option<f64>) -> Measured {
    let load = Loader::new(plan.load_cpu(), plan.duration);
    measured_load(&[server], || {
        load.run("count", server.tcp, connections, rate)
    })
}

/// Starts `oneloop load hold ADDR -n N --hold SECS --json EXTRA` and waits (at most the plan's
/// `hold_wait`) for its `holding` line; says whether it came.
fn hold(plan: &Plan, server: &Server, n: usize, hold_s: f64, extra: &[&str]) -> (Load, bool) {
    let (addr, n_arg, hold_arg) = (server.tcp.to_string(), n.to_string(), hold_s.to_string());
    let base = ["hold", &addr, "-n", &n_arg, "--hold", &hold_arg, "--json"];
    let args: Vec<String> = base.iter().chain(extra).map(|s| s.to_string()).collect();
    let timeout = plan.hold_wait + Duration::from_secs_f64(hold_s) + LOAD_MARGIN;
    let load = Load::start(&load_argv(&args), plan.load_cpu(), timeout).expect("start load hold");
    let held = load.wait_for("holding", plan.hold_wait);
    (load, held)
}

/// Active count clients while `n` idle connections are held.
fn holders_run(plan: &Plan, server: &Server, n: usize) -> Measured {
    let (holding, held) = hold(plan, server, n, plan.duration + 2.0, &[]);
    let mut m = count_run(plan, server, ACTIVE_CLIENTS, None);
    if !held {
        m.note(format!(
            "the {n} idle clients did not all get a prompt within {:?}",
            plan.hold_wait
        ));
        return m;
    }
    let end = holding.finish();
    match end.report {
        Some(report) => {
            if let Some(done) = report["completed"].as_f64() {
                m.metrics.insert("holders_completed", done);
            }
            m.load.push(report);
        }
        None => m.note(format!("idle clients: {}", end.problem)),
    }
    m
}

/// Memory per idle connection: the server's RSS with `n` held, minus its idle RSS.
fn rss_run(plan: &Plan, server: &Server, n: usize) -> Measured {
    // A short run first, so what every connection shares exists before the idle reading.
    let _ = Loader::new(plan.load_cpu(), 0.2).run("count", server.tcp, 1, None);
    let Some(idle) = server.rss_kib() else {
        return Measured::failed("no VmRSS");
    };
    let sources = SOURCES.to_string();
    let (_holding, held) = hold(plan, server, n, 1.0, &["--sources", &sources]);
    let mut m = Measured::default();
    m.metrics.insert("idle_kib", idle as f64);
    match server.rss_kib() {
        Some(now) if held => {
            m.metrics.insert("holding_kib", now as f64);
            let per = now.saturating_sub(idle) as f64 * 1024.0 / n as f64;
            m.metrics.insert("rss_bytes_per_conn", per);
        }
        _ => m.note(format!(
            "did not hold {n} connections within {:?}",
            plan.hold_wait
        )),
    }
    m
}

/// The designs of the reuseport scenario: oneloop, two oneloops sharing its port, and tokio's
/// multi-thread runtime with a worker per CPU.
const MULTI_CORE: [&str; 3] = ["oneloop", "oneloop x2 reuseport", "tokio-mt"];

/// One server of `design` from [`MULTI_CORE`] (two for the reuseport pair). Nothing is pinned:
/// the servers may use both CPUs, and so may the load.
fn reuseport_run(plan: &Plan, design: &str, connections: usize) -> Measured {
    let pair = design == MULTI_CORE[1];
    let first = if pair { "oneloop" } else { design };
    let first = match Server::start(&server_argv(first, &["--reuseport"]), None, START_WITHIN) {
        Ok(s) => s,
        Err(e) => return Measured::failed(format!("server did not start: {e}")),
    };
    let mut servers = vec![first];
    if pair {
        let tcp = format!("count@{}", servers[0].tcp);
        let udp = format!("echo@{}", servers[0].udp);
        let same_port = ["--tcp", &tcp, "--udp", &udp];
        let argv: Vec<OsString> = std::iter::once(ONELOOP)
            .chain(same_port)
            .chain(ONELOOP_OPTIONS)
            .chain(["--reuseport"])
            .map(OsString::from)
            .collect();
        match Server::start(&argv, None, START_WITHIN) {
            Ok(s) => servers.push(s),
            Err(e) => return Measured::failed(format!("second server did not start: {e}")),
        }
    }
    let each: Vec<&Server> = servers.iter().collect();
    let load = Loader::new(None, plan.duration);
    measured_load(&each, || {
        load.run("count", servers[0].tcp, connections, None)
    })
}

/// System calls per completed request: the server under `strace -c -f`, once with a count run
/// and once with none; the difference divided by the requests completed.
fn syscalls_run(plan: &Plan, design: &Design) -> Measured {
    let design = design.name.as_str();
    let Some((idle, _)) = traced_calls(plan, design, false) else {
        return Measured::failed("skipped: no strace on the PATH, or it gave no summary");
    };
    let Some((busy, completed)) = traced_calls(plan, design, true) else {
        return Measured::failed("strace gave no summary");
    };
    if completed == 0.0 {
        return Measured::failed("no request completed under strace");
    }
    let mut per: Vec<(String, f64)> = busy
        .into_iter()
        .map(|(name, calls)| {
            let base = idle.get(&name).copied().unwrap_or(0.0);
            (name, (calls - base).max(0.0) / completed)
        })
        .filter(|(_, p)| *p >= 0.005)
        .collect();
    per.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut m = Measured::default();
    m.metrics.insert("completed", completed);
    m.metrics
        .insert("syscalls_per_req", per.iter().map(|(_, p)| p).sum());
    let parts: Vec<String> = per.iter().map(|(n, p)| format!("{n} {p:.2}")).collect();
    m.note(parts.join(", "));
    m
}

/// Runs `design` under strace (with a count run when `busy`); returns its calls by name and
/// the requests completed.
fn traced_calls(plan: &Plan, design: &str, busy: bool) -> Option<(BTreeMap<String, f64>, f64)> {
    let file = std::env::temp_dir().join(format!(
        "compare-strace-{}-{design}-{busy}",
        std::process::id()
    ));
    let mut argv: Vec<OsString> = ["strace", "-c", "-f", "-o"].map(OsString::from).into();
    argv.push(file.clone().into());
    argv.extend(server_argv(design, &[]));
    let server = Server::start(&argv, plan.server_cpu(), START_WITHIN).ok()?;
    let mut completed = 0.0;
    if busy {
        let load = Loader::new(plan.load_cpu(), plan.duration);
        let end = load.run("count", server.tcp, STRACE_CLIENTS, None);
        completed = end.report?["completed"].as_f64()?;
    }
    let traced = procs::first_child(server.pid())?;
    server.terminate(traced, Duration::from_secs(10));
    let text = std::fs::read_to_string(&file).ok()?;
    let _ = std::fs::remove_file(&file);
    // Rows are "% time  seconds  usecs/call  calls  [errors]  syscall"; the total is skipped.
    let calls = text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.first()?.parse::<f64>().ok()?;
            let name = *fields.last()?;
            let calls = fields.get(3)?.parse::<f64>().ok()?;
            (name != "total").then(|| (name.to_string(), calls))
        })
        .collect();
    Some((calls, completed))
}

/// Checks, before anything is measured, that the load generator is built and that every
/// design answers the examples of docs/protocol.md ("TCP `count`") alike (through
/// `oneloop client raw`). A built-in design that fails is an error of the bench itself; an
/// external one that fails is returned with its verdict, and is not run.
pub fn check_protocol(plan: &Plan) -> Result<BTreeMap<String, Verdict>, String> {
    let help = std::process::Command::new(ONELOOP)
        .args(["load", "count", "--help"])
        .output()
        .map_err(|e| format!("cannot run {ONELOOP}: {e}"))?;
    if !help.status.success() {
        return Err(format!(
            "`oneloop load` is not usable: {}",
            String::from_utf8_lossy(&help.stderr).trim()
        ));
    }
    let long = "a".repeat(5000);
    let cases = [
        ("hello\\r\\n", "You entered 5 characters.\n"),
        ("  h\u{e9}llo \\t\\n", "You entered 5 characters.\n"),
        ("\u{65e5}\u{672c}\u{8a9e}\\n", "You entered 3 characters.\n"),
        ("\\xff\\xfeab\\n", "You entered 4 characters.\n"),
        (
            "\\xe2\\x82 a\u{a0}\u{2028}\\n",
            "You entered 4 characters.\n",
        ),
        ("abc\\nignored", "You entered 3 characters.\n"),
        ("", "You entered 0 characters.\n"),
        (&long, "Error: line too long (limit 4096 bytes)\n"),
    ];
    let mut blocked = BTreeMap::new();
    for design in &plan.designs {
        let failed = match start(design, plan.server_cpu()) {
            Err(e) => Some(Verdict::NoStart(e.to_string())),
            Ok(server) => first_wrong_answer(&server, &cases)?.map(Verdict::WrongReply),
        };
        match failed {
            Some(v) if design.is_external() => {
                eprintln!("  {}: {}: {}", design.name, v.code(), v.detail());
                blocked.insert(design.name.clone(), v);
            }
            Some(v) => return Err(format!("{} {}: {}", design.name, v.code(), v.detail())),
            None => {}
        }
    }
    Ok(blocked)
}

/// The first of `cases` (what to send, the answer wanted) that `server` answers otherwise, in
/// words; `Err` when `oneloop client` cannot run.
fn first_wrong_answer(server: &Server, cases: &[(&str, &str)]) -> Result<Option<String>, String> {
    for &(send, want) in cases {
        let out = std::process::Command::new(ONELOOP)
            .args(["client", "raw", &server.tcp.to_string(), "--deadline", "10"])
            .args(["--send", send])
            .output()
            .map_err(|e| format!("cannot run oneloop client: {e}"))?;
        let got = String::from_utf8_lossy(&out.stdout);
        match got.split_once("\nPlease enter a string: ") {
            Some((welcome, answer))
                if welcome.starts_with("Welcome, 127.0.0.1:") && answer == want => {}
            _ => {
                let shown: String = send.chars().take(40).collect();
                return Ok(Some(format!(
                    "answered {got:?} to {shown:?}; want {want:?}"
                )));
            }
        }
    }
    Ok(None)
}
