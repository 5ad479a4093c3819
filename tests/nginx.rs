//! A real nginx in front of the daemon: its stream module with `proxy_protocol on;` (a PROXY
//! version 1 header) and `proxy_half_close on;`, the directives docs/fleet.md gives. Clients
//! over IPv4 and IPv6 are seen as themselves (the `count` welcome names their own address and
//! port), and `count` and `ack` answer in full after the client's half-close, which nginx
//! passes on only with `proxy_half_close on;` (without it nginx closes both directions when
//! the client half-closes, and the reply is lost).
//!
//! nginx comes from Debian's packages `nginx` and `libnginx-mod-stream` (`.ci/run` installs
//! them); the test starts it itself in the foreground (`daemon off;`) with a configuration
//! file, error log and pid file in a directory of its own, on free loopback ports. Without
//! nginx the test skips, except under CI.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const NGINX: &str = "/usr/sbin/nginx";
/// Where Debian's libnginx-mod-stream puts the stream module.
const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// nginx, stopped (SIGTERM, then SIGKILL if it lingers) and its directory removed when
/// dropped.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its worker before it exits; killing the master alone
        // would leave the worker holding the ports.
        // SAFETY: kill with the child's pid and a valid signal number.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + WAIT;
        while self.child.try_wait().is_ok_and(|s| s.is_none()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port free now on `ip` (nginx binds it itself).
fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx's stream proxy from each of `fronts` (an address nginx listens on, the daemon's
/// address it relays to), with the PROXY header and half-close passed on; returns once its
/// listeners are bound (nginx writes its pid file after binding them).
fn nginx(fronts: &[(SocketAddr, SocketAddr)]) -> Nginx {
    let dir = std::env::temp_dir().join(format!("oneloop-nginx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (conf, pid, log) = (
        dir.join("nginx.conf"),
        dir.join("nginx.pid"),
        dir.join("error.log"),
    );
    let servers: String = fronts
        .iter()
        .map(|(listen, backend)| {
            format!(
                "    server {{\n        listen {listen};\n        proxy_pass {backend};\n        \
                 proxy_protocol on;\n        proxy_half_close on;\n    }}\n"
            )
        })
        .collect();
    std::fs::write(
        &conf,
        format!(
            "load_module {STREAM_MODULE};\ndaemon off;\nworker_processes 1;\npid {};\n\
             error_log {} notice;\nevents {{\n    worker_connections 64;\n}}\n\
             stream {{\n{servers}}}\n",
            pid.display(),
            log.display()
        ),
    )
    .unwrap();
    let child = Command::new(NGINX)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(&log)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn nginx");
    let mut proxy = Nginx { child, dir };
    let written = |path: &Path| std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
    wait_until("nginx's pid file", || {
        let exited = proxy.child.try_wait().is_ok_and(|s| s.is_some());
        assert!(
            !exited,
            "nginx exited: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        written(&pid)
    });
    proxy
}

/// Connects to `to` from `from`, sends `request`, half-closes and reads everything to EOF.
fn exchange(from: &str, to: SocketAddr, request: &[u8]) -> (TcpStream, String) {
    let mut s = connect_from(from, to);
    s.write_all(request).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    (s, String::from_utf8_lossy(&got).into_owned())
}

#[test]
fn behind_nginx_clients_over_ipv4_and_ipv6_are_themselves_and_half_close_gets_the_reply() {
    if !Path::new(NGINX).exists() || !Path::new(STREAM_MODULE).exists() {
        skip_for_want_of(
            "behind_nginx",
            "nginx and its stream module (Debian: apt-get install nginx libnginx-mod-stream)",
        );
        return;
    }
    let mut daemon = Proc::spawn_cmd(
        Command::new(env!("CARGO_BIN_EXE_oneloop"))
            .args(daemon_args(&[
                "--tcp",
                "count@127.0.0.1:0",
                "--tcp",
                "count@[::1]:0",
                "--tcp",
                "ack@127.0.0.1:0",
                "--tcp",
                "ack@[::1]:0",
                "--proxy-from",
                "127.0.0.1",
                "--proxy-from",
                "::1",
            ]))
            .env("RUST_LOG", "info"),
    );
    let backends = daemon.listening(4);
    // Each front relays to a backend of the other family: the address the daemon names is
    // the header's, whatever the proxy's connection to it.
    let front = |ip: &str| -> SocketAddr {
        let addr = format!("{ip}:{}", free_port(ip.trim_matches(['[', ']'])));
        addr.parse().unwrap()
    };
    let (count4, count6, ack4, ack6) = (
        front("127.0.0.1"),
        front("[::1]"),
        front("127.0.0.1"),
        front("[::1]"),
    );
    let _proxy = nginx(&[
        (count4, backends[1]),
        (count6, backends[0]),
        (ack4, backends[3]),
        (ack6, backends[2]),
    ]);

    // A client of its own address on loopback for IPv4; ::1 is the only one for IPv6. The
    // port in the welcome is the client's own too.
    for (from, count, ack) in [("127.0.0.2", count4, ack4), ("::1", count6, ack6)] {
        for round in 0..20 {
            let (s, reply) = exchange(from, count, b"hello\n");
            let welcome = String::from_utf8(welcome_for(&s)).unwrap();
            assert_eq!(
                reply,
                welcome + "You entered 5 characters.\n",
                "count from {from}, round {round}"
            );
            // An ack reply comes in pieces if the bytes do: each read is echoed, then
            // `I get it!`.
            let (_, reply) = exchange(from, ack, b"hello");
            assert!(
                reply.ends_with("\nI get it!\n") && reply.replace("\nI get it!\n", "") == "hello",
                "ack from {from}, round {round}: {reply:?}"
            );
        }
    }
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(), 0);
    let summary = daemon.wait_for("connections served");
    assert!(summary.contains("connections served 80,"), "{summary}");
}
