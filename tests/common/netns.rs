//! Networks of a test's own: network namespaces made and removed by the test (even when it
//! fails), veth pairs between them, and the daemon binary run inside one with `ip netns exec`.
//!
//! They need root and the `ip` command (and `iptables` for firewall rules). Without them a
//! test is skipped with a message ([`can_stage`]), except under CI (`CI=true`), where a skip
//! would hide it: there it fails.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Proc;

/// Whether this machine can stage the test's network with these commands (each with an
/// argument that only shows its version); when it cannot, says why, and fails under CI.
pub fn can_stage(test: &str, tools: &[(&str, &str)]) -> bool {
    // SAFETY: geteuid has no preconditions.
    let missing = if unsafe { libc::geteuid() } != 0 {
        Some("root".to_string())
    } else {
        tools
            .iter()
            .find(|(tool, arg)| {
                !Command::new(tool)
                    .arg(arg)
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .map(|(tool, _)| format!("the `{tool}` command"))
    };
    let Some(missing) = missing else {
        return true;
    };
    super::skip_for_want_of(test, &missing);
    false
}

/// Runs a command to success, or fails the test with its output; returns its stdout.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace of the test's own, with its loopback up; removed when dropped.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("oneloop-{}-{tag}", std::process::id());
        // One left by an earlier run that was killed.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace, to success; returns its stdout.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Runs a command line (words split at spaces) inside the namespace, to success.
    pub fn sh(&self, line: &str) -> String {
        self.exec(&line.split(' ').collect::<Vec<_>>())
    }

    /// `oneloop ARGS` inside the namespace, logging at `info`; and the addresses of its
    /// services. `ip netns exec` execs the daemon, so the process is the daemon itself.
    pub fn daemon(&self, args: &[&str]) -> (Proc, Vec<SocketAddr>) {
        let mut p = Proc::spawn_cmd(
            Command::new("ip")
                .args(["netns", "exec", &self.name, env!("CARGO_BIN_EXE_oneloop")])
                .args(args)
                .env("RUST_LOG", "info"),
        );
        let services = args.iter().filter(|a| ["--tcp", "--udp"].contains(a));
        let addrs = p.listening(services.count());
        (p, addrs)
    }

    /// Runs `f` on a thread that has entered the namespace: the sockets it makes belong to
    /// the namespace, wherever they are used afterwards, and the threads it starts are in the
    /// namespace too.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        let ns = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns with an open namespace file; it moves this thread only.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("thread in the namespace")
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Two namespaces joined by a veth pair: the daemon's side at 10.77.0.1/24 and a peer at
/// 10.77.0.2/24, each knowing the other's link address (static neighbour entries, so no
/// datagram waits for, or is lost to, address resolution).
pub struct Link {
    pub server: Netns,
    pub peer: Netns,
    /// The veth device in the daemon's namespace.
    pub server_dev: String,
    /// The veth device in the peer's namespace.
    pub peer_dev: String,
}

impl Link {
    pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

    pub fn new(tag: &str) -> Link {
        static PAIRS: AtomicUsize = AtomicUsize::new(0);
        let server = Netns::new(&format!("{tag}-a"));
        let peer = Netns::new(&format!("{tag}-b"));
        let n = PAIRS.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let (server_dev, peer_dev) = (format!("olv{pid}a{n}"), format!("olv{pid}b{n}"));
        let (server_mac, peer_mac) = ("02:00:0a:4d:00:01", "02:00:0a:4d:00:02");
        run(&[
            "ip",
            "link",
            "add",
            &server_dev,
            "address",
            server_mac,
            "netns",
            &server.name,
            "type",
            "veth",
            "peer",
            "name",
            &peer_dev,
            "address",
            peer_mac,
            "netns",
            &peer.name,
        ]);
        for (ns, dev, ip, other_ip, other_mac) in [
            (
                &server,
                &server_dev,
                Self::SERVER_IP,
                Self::PEER_IP,
                peer_mac,
            ),
            (&peer, &peer_dev, Self::PEER_IP, Self::SERVER_IP, server_mac),
        ] {
            ns.sh(&format!("ip addr add {ip}/24 brd + dev {dev}"));
            ns.sh(&format!("ip link set {dev} up"));
            ns.sh(&format!(
                "ip neigh replace {other_ip} lladdr {other_mac} dev {dev} nud permanent"
            ));
        }
        Link {
            server,
            peer,
            server_dev,
            peer_dev,
        }
    }
}
