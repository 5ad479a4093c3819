//! `oneloop load`, the built binary, against the daemon (in-process, on port 0) and against
//! small `std::net` servers written here to misbehave in one particular way each.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// The JSON report on a run's stdout.
fn json(run: &Ended) -> Value {
    serde_json::from_str(run.stdout.trim_end())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {:?}", run.stdout))
}

/// Runs `oneloop load ARGS` to its end (bounded wait).
fn load(args: &[&str]) -> Ended {
    Proc::spawn(&[&["load"], args].concat(), "info").finish()
}

/// A short JSON run: `SCENARIO ADDR --duration 0.2 --json EXTRA...`, 16 connections.
fn short_run(scenario: &str, addr: SocketAddr, extra: &[&str]) -> Ended {
    let addr = addr.to_string();
    let base = [scenario, &addr, "--duration", "0.2", "--json"];
    load(&[&base[..], extra].concat())
}

/// A short run in which nothing may complete: checks its exit code; returns its report.
fn failed_run(scenario: &str, addr: SocketAddr, extra: &[&str], code: i32) -> Value {
    let run = short_run(scenario, addr, extra);
    assert_eq!(run.code, code, "{scenario}: {}", run.stderr);
    let report = json(&run);
    assert_eq!(report["completed"], 0, "{report}");
    report
}

/// The error counter `kind` of a JSON report.
fn errors(report: &Value, kind: &str) -> u64 {
    report["errors"][kind].as_u64().expect("error count")
}

/// Checks the report has exactly the schema's keys, with values of the right types.
fn assert_schema(report: &Value) {
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
        k.sort();
        k
    };
    let mut want = vec![
        "scenario",
        "target",
        "connections",
        "rate",
        "duration_s",
        "completed",
        "errors",
        "lost",
        "rate_per_s",
        "latency_us",
    ];
    want.sort();
    assert_eq!(keys(report), want);
    assert_eq!(
        keys(&report["errors"]),
        ["bad_reply", "other", "refused", "reset", "timed_out"]
    );
    assert_eq!(
        keys(&report["latency_us"]),
        ["max", "p50", "p90", "p99", "p999", "p9999"]
    );
    assert!(report["scenario"].is_string() && report["target"].is_string());
    assert!(report["rate"].is_null() || report["rate"].is_f64());
    assert!(report["duration_s"].as_f64().is_some_and(|s| s > 0.0));
    for key in ["connections", "completed", "lost"] {
        assert!(report[key].is_u64(), "{key}");
    }
    let l = &report["latency_us"];
    let p: Vec<u64> = ["p50", "p90", "p99", "p999", "p9999", "max"]
        .iter()
        .map(|k| l[k].as_u64().expect("latency"))
        .collect();
    assert!(
        p.windows(2).all(|w| w[0] <= w[1]),
        "percentiles in order: {p:?}"
    );
}

fn assert_no_errors(report: &Value) {
    for kind in ["refused", "reset", "timed_out", "bad_reply", "other"] {
        assert_eq!(errors(report, kind), 0, "{kind} in {report}");
    }
}

/// A TCP server on a thread: it hands each accepted connection to `serve` and records the
/// address each came from. Stopped (and joined) when dropped.
struct TestServer {
    addr: SocketAddr,
    peers: Arc<Mutex<Vec<IpAddr>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    fn start(bind: &str, mut serve: impl FnMut(TcpStream) + Send + 'static) -> TestServer {
        let listener = TcpListener::bind(bind).expect("bind the test server");
        let port = listener.local_addr().unwrap().port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let peers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peers, stop) = (peers.clone(), stop.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    if let Ok(peer) = conn.peer_addr() {
                        peers.lock().unwrap().push(peer.ip());
                    }
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                    serve(conn);
                }
            })
        };
        TestServer {
            addr,
            peers,
            stop,
            thread: Some(thread),
        }
    }

    /// A count server that answers every line with `reply`.
    fn count(bind: &str, reply: &'static str) -> TestServer {
        TestServer::start(bind, move |mut conn| {
            let _ = conn.write_all(b"Welcome, 127.0.0.1:1\nPlease enter a string: ");
            let mut line = Vec::new();
            if conn.read_to_end(&mut line).is_ok() {
                let _ = conn.write_all(reply.as_bytes());
            }
        })
    }

    fn peers(&self) -> BTreeSet<IpAddr> {
        self.peers.lock().unwrap().iter().copied().collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept; the loop sees the flag and ends.
        let _ = TcpStream::connect_timeout(&self.addr, WAIT);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A UDP server on a thread that answers every datagram with `answer(datagram)`, sent
/// `copies` times (no answer when it returns `None`). Stopped when dropped.
struct TestUdpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestUdpServer {
    fn start(answer: fn(&[u8]) -> Option<Vec<u8>>, copies: usize) -> TestUdpServer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut buf = vec![0; 65536];
                while !stop.load(Ordering::SeqCst) {
                    if let Ok((n, from)) = socket.recv_from(&mut buf) {
                        if let Some(reply) = answer(&buf[..n]) {
                            for _ in 0..copies {
                                let _ = socket.send_to(&reply, from);
                            }
                        }
                    }
                }
            })
        };
        TestUdpServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TestUdpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn count_closed_loop_against_the_daemon_completes_and_reports_json() {
    let d = start(&["tcp:count@127.0.0.1:0"]);
    let addr = d.addr(0).to_string();
    let run = load(&[
        "count",
        &addr,
        "--connections",
        "8",
        "--duration",
        "1",
        "--json",
    ]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let r = json(&run);
    assert_schema(&r);
    assert_eq!(r["scenario"], "count");
    assert_eq!(r["target"], addr.as_str());
    assert_eq!(r["connections"], 8);
    assert!(r["rate"].is_null());
    assert!(r["completed"].as_u64().unwrap() > 0);
    assert!(r["rate_per_s"].as_f64().unwrap() > 0.0);
    assert!(r["latency_us"]["max"].as_u64().unwrap() > 0);
    assert_eq!(r["lost"], 0);
    assert_no_errors(&r);
}

#[test]
fn count_open_loop_makes_every_scheduled_start() {
    let d = start(&["tcp:count@127.0.0.1:0"]);
    let addr = d.addr(0).to_string();
    let run = load(&[
        "count",
        &addr,
        "--rate",
        "200",
        "--duration",
        "0.5",
        "--connections",
        "4",
        "--json",
    ]);
    let r = json(&run);
    assert_schema(&r);
    assert_eq!(r["rate"], 200.0);
    assert_eq!(r["connections"], 4);
    // 200 a second for half a second: 100 starts, each completed or counted as an error.
    let failed: u64 = ["refused", "reset", "timed_out", "bad_reply", "other"]
        .iter()
        .map(|k| errors(&r, k))
        .sum();
    assert_eq!(r["completed"].as_u64().unwrap() + failed, 100);
    assert_eq!(run.code, if failed == 0 { 0 } else { 1 });
}

#[test]
fn the_text_report_names_the_run_and_every_error_kind() {
    let d = start(&["tcp:count@127.0.0.1:0"]);
    let addr = d.addr(0).to_string();
    let run = load(&["count", &addr, "--connections", "2", "--duration", "0.2"]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let out = &run.stdout;
    assert!(
        out.starts_with(&format!("count {addr}: closed loop, 2 in flight, ")),
        "{out}"
    );
    assert!(out.contains("\n  completed  "), "{out}");
    assert!(
        out.contains("errors     0 (refused 0, reset 0, timed out 0, bad reply 0, other 0)"),
        "{out}"
    );
    assert!(out.contains("latency µs p50 "), "{out}");
    assert!(!out.contains("lost"), "{out}");
    assert!(
        !run.stderr.contains('\r'),
        "no progress line when stderr is not a terminal"
    );
}

#[test]
fn a_wrong_count_is_a_bad_reply_and_exits_1() {
    let server = TestServer::count("127.0.0.1:0", "You entered 13 characters.\n");
    let r = failed_run("count", server.addr, &[], 1);
    assert!(errors(&r, "bad_reply") > 0, "{r}");
}

#[test]
fn the_right_count_from_a_foreign_server_completes() {
    // "hello, world" is 12 characters.
    let server = TestServer::count("127.0.0.1:0", "You entered 12 characters.\n");
    let run = short_run("count", server.addr, &[]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(json(&run)["completed"].as_u64().unwrap() > 0);
}

#[test]
fn connections_to_a_closed_port_are_refused_and_exit_3() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = failed_run(
        "count",
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        &[],
        3,
    );
    assert!(errors(&r, "refused") > 0, "{r}");
}

#[test]
fn a_server_that_resets_is_counted_as_reset() {
    let server = TestServer::start("127.0.0.1:0", |conn| {
        let _ = socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO));
    });
    let r = failed_run("count", server.addr, &[], 1);
    assert!(errors(&r, "reset") > 0, "{r}");
}

#[test]
fn a_server_that_never_speaks_times_out() {
    let mut held = Vec::new();
    let server = TestServer::start("127.0.0.1:0", move |conn| held.push(conn));
    // The first 16 connections wait out their 0.3 s deadline; by then no new one starts.
    let r = failed_run("count", server.addr, &["--timeout", "0.3"], 1);
    assert_eq!(errors(&r, "timed_out"), 16, "{r}");
}

#[test]
fn hold_announces_every_connection_then_completes_them_all() {
    let d = start(&["tcp:count@127.0.0.1:0"]);
    let addr = d.addr(0).to_string();
    let mut p = Proc::spawn(
        &[
            "load", "hold", &addr, "-n", "300", "--hold", "0.2", "--json",
        ],
        "info",
    );
    p.wait_for("holding 300 connections");
    let run = p.finish();
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let r = json(&run);
    assert_schema(&r);
    assert_eq!(r["scenario"], "hold");
    assert_eq!(r["connections"], 300);
    assert_eq!(r["completed"], 300);
    assert_no_errors(&r);
}

#[test]
fn hold_counts_a_connection_the_server_drops_while_held() {
    // The daemon's request deadline passes during the hold: each held connection hears
    // `Error: timed out` and fails as a bad reply.
    let d = start_with(&["tcp:count@127.0.0.1:0"], |c| {
        c.idle_timeout = Duration::from_millis(100)
    });
    let run = load(&[
        "hold",
        &d.addr(0).to_string(),
        "-n",
        "5",
        "--hold",
        "0.5",
        "--json",
    ]);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let r = json(&run);
    assert_eq!(errors(&r, "bad_reply"), 5, "{r}");
}

#[test]
fn udp_echo_against_the_daemon_checks_every_reply() {
    let d = start(&["udp:echo@127.0.0.1:0"]);
    let addr = d.addr(0).to_string();
    let run = load(&[
        "udp-echo",
        &addr,
        "--connections",
        "4",
        "--duration",
        "0.5",
        "--size",
        "1000",
        "--json",
    ]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let r = json(&run);
    assert_schema(&r);
    assert_eq!(r["scenario"], "udp-echo");
    assert_eq!(r["connections"], 4);
    assert!(r["completed"].as_u64().unwrap() > 0);
    assert_no_errors(&r);
}

#[test]
fn udp_time_against_the_daemon_checks_every_reply() {
    let d = start(&["udp:time@127.0.0.1:0"]);
    let run = load(&[
        "udp-time",
        &d.addr(0).to_string(),
        "--duration",
        "0.5",
        "--json",
    ]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let r = json(&run);
    assert_eq!(r["scenario"], "udp-time");
    assert!(r["completed"].as_u64().unwrap() > 0);
    assert_no_errors(&r);
    let text = load(&["udp-time", &d.addr(0).to_string(), "--duration", "0.2"]);
    assert!(text.stdout.contains("\n  lost       "), "{}", text.stdout);
}

#[test]
fn udp_replies_that_break_the_protocol_are_bad_replies() {
    let server = TestUdpServer::start(|_| Some(b"abc".to_vec()), 1);
    for scenario in ["udp-time", "udp-echo"] {
        let r = failed_run(scenario, server.addr, &[], 1);
        assert!(errors(&r, "bad_reply") > 0, "{scenario}: {r}");
    }
}

#[test]
fn duplicate_udp_replies_are_not_errors() {
    let server = TestUdpServer::start(|datagram| Some(datagram.to_vec()), 2);
    let r = json(&short_run("udp-echo", server.addr, &[]));
    // The one-threaded server may drop requests it cannot keep up with (counted as lost); a
    // second copy of an answer is never an error.
    assert!(r["completed"].as_u64().unwrap() > 0, "{r}");
    assert_no_errors(&r);
}

#[test]
fn unanswered_udp_requests_are_lost_and_a_silent_target_exits_3() {
    let server = TestUdpServer::start(|_| None, 1);
    let r = failed_run("udp-echo", server.addr, &["--timeout", "0.1"], 3);
    // Each of the 16 sockets sends again after a loss, so each loses at least two in 0.2 s.
    assert!(r["lost"].as_u64().unwrap() >= 32, "{r}");
    assert_no_errors(&r);
}

#[test]
fn sources_spread_connections_over_loopback_addresses() {
    let server = TestServer::count("0.0.0.0:0", "You entered 12 characters.\n");
    let run = short_run("count", server.addr, &["--sources", "3"]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let want: BTreeSet<IpAddr> = (1..=3)
        .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .collect();
    assert_eq!(server.peers(), want);
}

#[test]
fn sources_are_refused_for_a_target_that_is_not_ipv4_loopback() {
    for target in ["192.0.2.1:7", "[::1]:7"] {
        let run = load(&["count", target, "--sources", "2"]);
        assert_eq!(run.code, 2, "{target}");
        assert!(
            run.stderr.contains("--sources is for IPv4 loopback"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    for args in [
        &[][..],
        &["nope", "127.0.0.1:1"],
        &["count"],
        &["count", "127.0.0.1:1", "--connections", "0"],
        &["hold", "127.0.0.1:1"],
        &["udp-echo", "127.0.0.1:1", "--rate", "5"],
        &["count", "localhost"],
    ] {
        let run = load(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("oneloop load --help"), "{}", run.stderr);
    }
    let run = load(&["--help"]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("Usage: oneloop load SCENARIO ADDR"));
    for scenario in ["count", "hold", "udp-echo", "udp-time"] {
        let run = load(&[scenario, "--help"]);
        assert_eq!(run.code, 0);
        assert!(run
            .stdout
            .contains(&format!("oneloop load {scenario} ADDR")));
    }
}
