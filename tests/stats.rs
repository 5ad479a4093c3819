//! The `stats` service over real sockets: an HTTP GET gets the counters in the Prometheus
//! text format, anything else a 400; scraped with a real HTTP client (curl) when there is one.

mod common;

use std::io::Write;
use std::net::Shutdown;

use common::*;

/// The response to `request` from the stats instance at `addr`.
fn ask(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = connect(addr);
    s.write_all(request).unwrap();
    let _ = s.shutdown(Shutdown::Write);
    String::from_utf8(read_to_end(&mut s)).unwrap()
}

#[test]
fn the_counters_of_a_known_run() {
    let d = start(&[
        "tcp:stats@127.0.0.1:0",
        "tcp:count@127.0.0.1:0",
        "udp:echo@127.0.0.1:0",
    ]);
    for line in [&b"a\n"[..], b"bb\n", b"ccc\n"] {
        assert!(count_reply(d.addr(1), line).ends_with("characters.\n"));
    }
    let udp = udp_client(d.addr(2));
    assert_eq!(udp_ask(&udp, d.addr(2), b"x"), b"x");
    let response = ask(d.addr(0), b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let count = format!(
        "{{service=\"count\",transport=\"tcp\",addr=\"{}\"}}",
        d.addr(1)
    );
    let echo = format!(
        "{{service=\"echo\",transport=\"udp\",addr=\"{}\"}}",
        d.addr(2)
    );
    assert_eq!(
        sample(body, &format!("oneloop_connections_served_total{count}")),
        3
    );
    assert_eq!(
        sample(body, &format!("oneloop_datagrams_answered_total{echo}")),
        1
    );
    // The stats connection itself is open while it is answered.
    assert_eq!(sample(body, "oneloop_connections_open"), 1);
    assert!(sample(body, "oneloop_start_time_seconds") > 1_700_000_000);
    assert!(!body.contains("instance=") && !body.contains("job="));
}

#[test]
fn anything_but_a_get_is_a_400() {
    let d = start(&["tcp:stats@127.0.0.1:0"]);
    for request in [
        &b"POST / HTTP/1.1\r\n\r\n"[..],
        b"garbage\r\n\r\n",
        b"GET / HTTP/1.1\r\n",
        &[b'x'; 5000],
    ] {
        let response = ask(d.addr(0), request);
        assert!(response.starts_with("HTTP/1.0 400 "), "{response}");
    }
    // The daemon goes on.
    assert!(ask(d.addr(0), b"GET / HTTP/1.0\r\n\r\n").starts_with("HTTP/1.0 200 OK"));
}

#[test]
fn curl_scrapes_it() {
    let Ok(out) = std::process::Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .arg("--version")
        .output()
    else {
        assert!(std::env::var_os("CI").is_none(), ".ci/run installs curl");
        eprintln!("skipped: no curl");
        return;
    };
    assert!(out.status.success());
    let d = start(&["tcp:stats@127.0.0.1:0", "tcp:count@127.0.0.1:0"]);
    assert!(count_reply(d.addr(1), b"x\n").ends_with("characters.\n"));
    let out = std::process::Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "10"])
        .arg(format!("http://{}/metrics", d.addr(0)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = String::from_utf8(out.stdout).unwrap();
    let series = format!(
        "oneloop_connections_served_total{{service=\"count\",transport=\"tcp\",addr=\"{}\"}}",
        d.addr(1)
    );
    assert_eq!(sample(&body, &series), 1);
}

#[test]
fn a_request_that_trickles_past_the_idle_timeout_gets_408_and_counts_as_timed_out() {
    let mut p = Proc::spawn(
        &["--tcp", "stats@127.0.0.1:0", "--idle-timeout", "0.5"],
        "info",
    );
    let addr = p.listening(1)[0];
    let mut s = connect(addr);
    // A byte every 0.1 s for 0.8 s: the deadline runs from the accept, whatever arrives.
    for byte in b"GET / HT" {
        s.write_all(&[*byte]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    s.shutdown(Shutdown::Write).unwrap();
    let response = String::from_utf8(read_to_end(&mut s)).unwrap();
    let body = "request head not complete within 0.5 s\n";
    assert_eq!(
        response,
        format!(
            "HTTP/1.0 408 Request Timeout\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    );
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
    let log = p.seen.join("\n");
    assert!(
        log.contains("connections served 1, refused 0, timed out 1,"),
        "{log}"
    );
}
