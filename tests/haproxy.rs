//! A real HAProxy in front of two daemons, one sent PROXY v1 (`send-proxy`), the other v2
//! (`send-proxy-v2`), with health checks that carry the header too (`check-send-proxy`).
//! Clients bound to 127.0.0.2 and 127.0.0.3 are seen as themselves; `--deny` and
//! `--max-per-source` act on them; SIGTERM to one backend during a stream of requests loses
//! none. HAProxy comes from Debian's package (`.ci/run` installs it); without it the test
//! skips, except under CI.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;

use common::*;

/// A count exchange through the proxy from `from`: everything the daemon said.
fn count_via(from: &str, to: SocketAddr, line: &[u8]) -> std::io::Result<String> {
    let mut s = try_connect_from(from, to)?;
    s.write_all(line)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut got = Vec::new();
    s.read_to_end(&mut got)?;
    Ok(String::from_utf8_lossy(&got).into_owned())
}

/// A port free now (HAProxy binds it itself).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Haproxy {
    child: std::process::Child,
    config: PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

fn haproxy(frontend: u16, backends: [SocketAddr; 2]) -> Haproxy {
    let config = std::env::temp_dir().join(format!("oneloop-haproxy-{}.cfg", std::process::id()));
    std::fs::write(
        &config,
        format!(
            "global\n    maxconn 2000\n\
             defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 10s\n    \
             timeout server 10s\n    retries 3\n    option redispatch\n\
             frontend fe\n    bind 127.0.0.1:{frontend}\n    default_backend be\n\
             backend be\n    balance roundrobin\n    \
             server a {} send-proxy check check-send-proxy inter 100ms fall 1 rise 1\n    \
             server b {} send-proxy-v2 check check-send-proxy inter 100ms fall 1 rise 1\n",
            backends[0], backends[1]
        ),
    )
    .unwrap();
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("haproxy");
    Haproxy { child, config }
}

fn backend() -> (Proc, SocketAddr, SocketAddr) {
    let mut p = Proc::spawn(
        &[
            "--tcp",
            "count@127.0.0.1:0",
            "--tcp",
            "stats@127.0.0.1:0",
            "--proxy-from",
            "127.0.0.1",
            "--deny",
            "127.0.0.4",
            "--max-per-source",
            "2",
        ],
        "info",
    );
    let addrs = p.listening(2);
    (p, addrs[0], addrs[1])
}

/// One metric's value for the count instance, from a backend's stats (fetched directly:
/// stats is not behind the proxy).
fn metric(stats: SocketAddr, name: &str) -> u64 {
    let mut s = try_connect_from("127.0.0.9", stats).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .find(|l| l.starts_with(name) && l.contains("service=\"count\""))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {body}"))
}

#[test]
fn behind_haproxy_clients_are_themselves_and_a_drain_loses_nothing() {
    if Command::new("haproxy").arg("-v").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), ".ci/run installs haproxy");
        eprintln!("skipped: no haproxy");
        return;
    }
    let (mut a, a_count, _) = backend();
    let (_b, b_count, b_stats) = backend();
    let port = free_port();
    let _proxy = haproxy(port, [a_count, b_count]);
    let front: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_until("haproxy to accept", || {
        TcpStream::connect_timeout(&front, WAIT).is_ok()
    });
    // The health checks reach the backends with a header: v2 ones say LOCAL, and are
    // counted as health checks. (HAProxy's v1 checks name its own addresses instead of
    // UNKNOWN, so backend a counts its checks as connections from the proxy itself.)
    wait_until("a health check on backend b", || {
        metric(b_stats, "oneloop_health_checks_total") > 0
    });

    // Each client is itself, whichever backend serves it (v1 or v2): round robin sends the
    // requests to both.
    let served_b = metric(b_stats, "oneloop_connections_served_total");
    for from in ["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"] {
        let reply = count_via(from, front, b"hello\n").unwrap();
        assert!(reply.starts_with(&format!("Welcome, {from}:")), "{reply}");
        assert!(reply.ends_with("You entered 5 characters.\n"), "{reply}");
    }
    assert!(metric(b_stats, "oneloop_connections_served_total") > served_b);
    // --deny acts on the real client: the backend closes it without a word.
    assert_eq!(
        count_via("127.0.0.4", front, b"x\n").unwrap_or_default(),
        ""
    );
    // --max-per-source acts on the real client, not on the proxy.
    let held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = try_connect_from("127.0.0.5", front).unwrap();
            let mut welcome = [0u8; 9];
            s.read_exact(&mut welcome).unwrap();
            s
        })
        .collect();
    let over = count_via("127.0.0.5", front, b"x\n").unwrap();
    assert_eq!(
        over,
        "Error: too many connections from your address (limit 2)\n"
    );
    assert!(count_via("127.0.0.6", front, b"x\n")
        .unwrap()
        .ends_with("You entered 1 characters.\n"));
    drop(held);

    // A stream of requests while backend a drains: every one is answered.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let progress = done.clone();
    let stream = std::thread::spawn(move || {
        let mut failed = Vec::new();
        for i in 0..300 {
            match count_via("127.0.0.2", front, b"drain\n") {
                Ok(reply) if reply.ends_with("You entered 5 characters.\n") => {}
                other => failed.push(format!("request {i}: {other:?}")),
            }
            progress.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        failed
    });
    wait_until("a third of the stream", || {
        done.load(std::sync::atomic::Ordering::SeqCst) >= 100
    });
    let b_before = metric(b_stats, "oneloop_connections_served_total");
    a.signal(libc::SIGTERM);
    assert_eq!(a.wait_exit(), 0);
    let failed = stream.join().unwrap();
    assert!(failed.is_empty(), "{} lost: {failed:?}", failed.len());
    let b_after = metric(b_stats, "oneloop_connections_served_total");
    eprintln!(
        "drain: 300 requests, none lost; backend b served {} of the 200 after the SIGTERM to a",
        b_after - b_before
    );
}
