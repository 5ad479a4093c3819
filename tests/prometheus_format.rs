//! The `stats` exposition read by a real Prometheus text-format parser: the official Python
//! client's (`prometheus_client`), installed in a virtual environment under Cargo's
//! test scratch directory and kept there for the next run. Without Python's `venv` or the
//! package index the test is skipped with a message, except under `CI=true`, where it fails.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime};

use oneloop::config::Instance;
use oneloop::proto::{Service, Stats, Step, Transport};
use oneloop::server::counters::{Counters, InstanceCounters, Snapshot};
use serde_json::Value;

/// Runs `cmd` with `input` on its standard input, for at most `limit`; its standard output,
/// or why it failed.
fn run(cmd: &mut Command, input: &[u8], limit: Duration) -> Result<Vec<u8>, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = thread::spawn(move || stdin.write_all(&input));
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(limit) {
        Ok(output) => output.map_err(|e| format!("{what}: {e}"))?,
        Err(_) => {
            // The waiting thread still holds the child, so its pid is not reused yet.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            let _ = rx.recv();
            return Err(format!("{what}: no exit within {limit:?}"));
        }
    };
    let _ = writer.join();
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(format!(
            "{what}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The virtual environment's Python, with `prometheus_client` installed: made once for all
/// the tests of this file, which run at the same time.
fn python_with_prometheus_client() -> Result<PathBuf, String> {
    static PYTHON: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(make_python_with_prometheus_client)
        .clone()
}

fn make_python_with_prometheus_client() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("prometheus-venv");
    let python = dir.join("bin").join("python");
    let ready = |python: &Path| {
        run(
            Command::new(python).args(["-c", "import prometheus_client"]),
            b"",
            Duration::from_secs(60),
        )
    };
    if ready(&python).is_ok() {
        return Ok(python);
    }
    run(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&dir),
        b"",
        Duration::from_secs(120),
    )?;
    run(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "prometheus_client",
        ]),
        b"",
        Duration::from_secs(300),
    )?;
    ready(&python)?;
    Ok(python)
}

/// Every family the parser found: its name, type, help and samples (name, labels, value).
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = [
    {
        "name": f.name,
        "type": f.type,
        "help": f.documentation,
        "samples": [[s.name, s.labels, s.value] for s in f.samples],
    }
    for f in text_string_to_metric_families(sys.stdin.read())
]
print(json.dumps(families))
"#;

fn instance(transport: Transport, service: Service, addr: &str) -> Instance {
    Instance {
        transport,
        service,
        addr: addr.parse::<SocketAddr>().unwrap(),
    }
}

#[test]
fn a_prometheus_parser_reads_the_stats_body() {
    let python = match python_with_prometheus_client() {
        Ok(python) => python,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("no Python with prometheus_client under CI: {why}")
        }
        Err(why) => {
            eprintln!("skipped: no Python with prometheus_client ({why})");
            return;
        }
    };

    let count = instance(Transport::Tcp, Service::Count, "127.0.0.1:51423");
    let time = instance(Transport::Tcp, Service::Time, "[fe80::1%2]:37");
    let echo = instance(Transport::Udp, Service::Echo, "0.0.0.0:51423");
    let instances = [
        InstanceCounters {
            instance: count,
            counters: Counters {
                served: 11,
                refused: 12,
                timed_out: 13,
                denied: 14,
                limited: 15,
                health_checks: 16,
                proxy_header_failures: 17,
                ..Counters::default()
            },
        },
        InstanceCounters {
            instance: time,
            counters: Counters {
                served: 21,
                ..Counters::default()
            },
        },
        InstanceCounters {
            instance: echo,
            counters: Counters {
                answered: 31,
                dropped: 32,
                datagrams_denied: 33,
                datagrams_limited: 34,
                ..Counters::default()
            },
        },
    ];
    let snapshot = Snapshot {
        instances: &instances,
        open: 5,
        accept_pauses: 6,
        reloads: 7,
        reload_failures: 8,
        start_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000),
    };
    let mut response = Vec::new();
    let step = Stats::default().on_data(
        b"GET /metrics HTTP/1.1\r\nHost: oneloop\r\n\r\n",
        &snapshot,
        &mut response,
    );
    assert_eq!(step, Step::Answered);
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head");
    let head = String::from_utf8(response[..split].to_vec()).unwrap();
    let body = &response[split + 4..];
    assert!(head.contains("\r\nContent-Type: text/plain; version=0.0.4\r\n"));
    assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));

    let parsed = run(
        Command::new(&python).args(["-c", PARSE]),
        body,
        Duration::from_secs(60),
    )
    .unwrap_or_else(|why| panic!("the parser rejected the body: {why}"));
    let parsed = String::from_utf8(parsed).unwrap();
    let families: Vec<Value> = serde_json::from_str(&parsed).unwrap();

    let labels = |i: &Instance| {
        serde_json::json!({
            "service": i.service.to_string(),
            "transport": i.transport.to_string(),
            "addr": i.addr.to_string(),
        })
    };
    // Counter families are named without `_total`; their samples keep it.
    let per_tcp = |name: &str, values: [f64; 2]| {
        (
            name.to_string(),
            "counter",
            vec![
                (format!("{name}_total"), labels(&count), values[0]),
                (format!("{name}_total"), labels(&time), values[1]),
            ],
        )
    };
    let per_udp = |name: &str, value: f64| {
        (
            name.to_string(),
            "counter",
            vec![(format!("{name}_total"), labels(&echo), value)],
        )
    };
    let global = |name: &str, kind, sample: &str, value: f64| {
        (
            name.to_string(),
            kind,
            vec![(sample.to_string(), serde_json::json!({}), value)],
        )
    };
    let expected = vec![
        per_tcp("oneloop_connections_served", [11.0, 21.0]),
        per_tcp("oneloop_connections_refused", [12.0, 0.0]),
        per_tcp("oneloop_connections_timed_out", [13.0, 0.0]),
        per_tcp("oneloop_connections_denied", [14.0, 0.0]),
        per_tcp("oneloop_connections_limited", [15.0, 0.0]),
        per_tcp("oneloop_health_checks", [16.0, 0.0]),
        per_tcp("oneloop_proxy_header_failures", [17.0, 0.0]),
        per_udp("oneloop_datagrams_answered", 31.0),
        per_udp("oneloop_datagrams_dropped", 32.0),
        per_udp("oneloop_datagrams_denied", 33.0),
        per_udp("oneloop_datagrams_limited", 34.0),
        global(
            "oneloop_connections_open",
            "gauge",
            "oneloop_connections_open",
            5.0,
        ),
        global(
            "oneloop_accept_pauses",
            "counter",
            "oneloop_accept_pauses_total",
            6.0,
        ),
        global("oneloop_reloads", "counter", "oneloop_reloads_total", 7.0),
        global(
            "oneloop_reload_failures",
            "counter",
            "oneloop_reload_failures_total",
            8.0,
        ),
        global(
            "oneloop_start_time_seconds",
            "gauge",
            "oneloop_start_time_seconds",
            1_750_000_000.0,
        ),
    ];
    assert_eq!(families.len(), expected.len(), "{parsed}");
    for (family, (name, kind, samples)) in families.iter().zip(&expected) {
        assert_eq!(family["name"], name.as_str(), "{family}");
        assert_eq!(family["type"], *kind, "{family}");
        assert!(
            !family["help"].as_str().unwrap_or_default().is_empty(),
            "{family}"
        );
        let got = family["samples"].as_array().unwrap();
        assert_eq!(got.len(), samples.len(), "{family}");
        for (sample, (sample_name, labels, value)) in got.iter().zip(samples) {
            assert_eq!(sample[0], sample_name.as_str(), "{family}");
            assert_eq!(&sample[1], labels, "{family}");
            assert_eq!(sample[2].as_f64(), Some(*value), "{family}");
        }
    }
}

/// A live daemon scraped with curl, and its body read by the real parser: counters that match
/// a known run, health checks and served connections apart.
#[test]
fn a_live_daemons_stats_scraped_with_curl_parse() {
    let python = match python_with_prometheus_client() {
        Ok(python) => python,
        Err(why) => {
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("skipped: no Python with prometheus_client ({why})");
            return;
        }
    };
    let d = common::start(&["tcp:stats@127.0.0.1:0", "tcp:count@127.0.0.1:0"]);
    for line in [&b"one\n"[..], b"two\n"] {
        assert!(common::count_reply(d.addr(1), line).ends_with("characters.\n"));
    }
    let body = run(
        Command::new("curl")
            .args(["--silent", "--show-error", "--fail", "--max-time", "10"])
            .arg(format!("http://{}/metrics", d.addr(0))),
        b"",
        Duration::from_secs(30),
    )
    .unwrap_or_else(|why| panic!("curl: {why}"));
    let parsed = run(
        Command::new(&python).args(["-c", PARSE]),
        &body,
        Duration::from_secs(60),
    )
    .unwrap_or_else(|why| panic!("the parser rejected the body: {why}"));
    let families: Vec<Value> = serde_json::from_slice(&parsed).unwrap();
    let value = |family: &str, service: &str| {
        families
            .iter()
            .find(|f| f["name"] == family)
            .and_then(|f| f["samples"].as_array())
            .and_then(|samples| samples.iter().find(|s| s[1]["service"] == service))
            .and_then(|s| s[2].as_f64())
            .unwrap_or_else(|| {
                panic!(
                    "{family} for {service}: {}",
                    String::from_utf8_lossy(&parsed)
                )
            })
    };
    assert_eq!(value("oneloop_connections_served", "count"), 2.0);
    assert_eq!(value("oneloop_health_checks", "count"), 0.0);
    assert_eq!(value("oneloop_connections_served", "stats"), 1.0);
}
