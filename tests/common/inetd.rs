//! The daemon under an inetd: the sockets an inetd would pass, a `/dev/log` of the test's own
//! in a mount namespace, and a real inetd (openbsd-inetd, xinetd) started on loopback ports.
//!
//! The syslog tests run the daemon (or the inetd) in a mount namespace of its own where `/dev`
//! is a directory of the test's holding a datagram socket `log` (and `null`, the machine's
//! `/dev/null`, which xinetd opens): the daemon's real `/dev/log` path reaches the test, and
//! no syslog daemon of the machine sees a line. They need root and
//! `unshare` (util-linux); without them they are skipped with a message ([`can_stage`]),
//! except under CI (`CI=true`), where a skip would hide them: there they fail.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use super::{Proc, WAIT};

/// The daemon binary.
pub const ONELOOP: &str = env!("CARGO_BIN_EXE_oneloop");

/// A listening TCP socket on a free loopback port, as an inetd passes it.
pub fn loopback_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// A UDP socket on a free loopback port, as an inetd passes it.
pub fn loopback_udp() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// The summary line's start for these counts of connections served and datagrams answered.
pub fn summary(served: u64, answered: u64) -> String {
    format!(
        "connections served {served}, refused 0, timed out 0, denied 0, limited 0; \
         datagrams answered {answered}"
    )
}

/// Whether this machine can run the namespaced tests: root, `unshare`, and each program of
/// `need` (its path, and where it comes from); when it cannot, says why, and fails under CI.
pub fn can_stage(test: &str, need: &[(&str, &str)]) -> bool {
    // SAFETY: geteuid has no preconditions.
    let missing = if unsafe { libc::geteuid() } != 0 {
        Some("root".to_string())
    } else if !Command::new("unshare")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        Some("the `unshare` command (util-linux)".to_string())
    } else {
        need.iter()
            .find(|(path, _)| !Path::new(path).exists())
            .map(|(path, from)| format!("{path} ({from})"))
    };
    match missing {
        None => true,
        Some(missing) => {
            super::skip_for_want_of(test, &missing);
            false
        }
    }
}

/// A directory of the test's holding the datagram socket `log` and an empty file `null`; in
/// the namespace of [`DevLog::in_namespace`] it is `/dev`, with `/dev/null` bound over `null`,
/// so what goes to `/dev/log` arrives here.
pub struct DevLog {
    pub dir: PathBuf,
    socket: UnixDatagram,
    /// Every datagram received so far.
    pub seen: Vec<String>,
}

impl DevLog {
    pub fn new(test: &str) -> DevLog {
        let dir = std::env::temp_dir().join(format!("oneloop-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("null"), "").unwrap();
        let socket = UnixDatagram::bind(dir.join("log")).unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        DevLog {
            dir,
            socket,
            seen: Vec::new(),
        }
    }

    /// `program ARGS` in a mount namespace of its own whose `/dev` is this directory.
    pub fn in_namespace(&self, program: &str, args: &[impl AsRef<std::ffi::OsStr>]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "sh",
            "-c",
            "mount --bind /dev/null \"$1/null\" && mount --rbind \"$1\" /dev && shift && \
             exec \"$@\"",
        ])
        .arg("sh")
        .arg(&self.dir)
        .arg(program)
        .args(args);
        cmd
    }

    /// Waits (bounded) until `n` datagrams seen contain `needle`; returns them.
    pub fn wait_for_n(&mut self, needle: &str, n: usize) -> Vec<String> {
        let matching = |seen: &[String]| -> Vec<String> {
            seen.iter()
                .filter(|l| l.contains(needle))
                .cloned()
                .collect()
        };
        let deadline = Instant::now() + WAIT;
        let mut buf = vec![0; 4096];
        while matching(&self.seen).len() < n {
            assert!(
                Instant::now() < deadline,
                "no {n} syslog lines with {needle:?}; seen:\n{}",
                self.seen.join("\n")
            );
            match self.socket.recv(&mut buf) {
                Ok(len) => self
                    .seen
                    .push(String::from_utf8_lossy(&buf[..len]).into_owned()),
                Err(e) => panic!(
                    "no syslog line with {needle:?} ({e}); seen:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
        matching(&self.seen)
    }

    /// Waits (bounded) for the lines of one run of the daemon, process `pid`, under an inetd
    /// with `--exit-idle 1`: `listening on INSTANCE, passed by the inetd` (INSTANCE:
    /// `tcp 127.0.0.1:PORT (count)`), the idle exit, and the summary line `summary`.
    pub fn wait_for_run(&mut self, pid: &str, instance: &str, summary: &str) {
        for what in [
            &format!("listening on {instance}, passed by the inetd"),
            "nothing open for 1 s (--exit-idle)",
            summary,
        ] {
            self.wait_for_n(&format!("oneloop[{pid}]: {what}"), 1);
        }
    }

    /// Takes every datagram already queued, without waiting; returns all seen so far.
    pub fn drain(&mut self) -> &[String] {
        let mut buf = vec![0; 4096];
        self.socket.set_nonblocking(true).unwrap();
        while let Ok(len) = self.socket.recv(&mut buf) {
            self.seen
                .push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
        self.socket.set_nonblocking(false).unwrap();
        &self.seen
    }
}

impl Drop for DevLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A child process killed (and reaped) when dropped, so a failing test leaves none behind.
pub struct Killed(pub Child);

impl Killed {
    /// Waits (bounded) for the exit status code.
    pub fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "the process did not exit");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Port numbers of loopback sockets that were free a moment ago, one a transport.
pub fn free_ports() -> (u16, u16) {
    let (tcp, tcp_addr) = loopback_listener();
    let (udp, udp_addr) = loopback_udp();
    drop((tcp, udp));
    (tcp_addr.port(), udp_addr.port())
}

/// The socket inode the descriptor `fd` (a `/proc/PID/fd/N` path) is, if it is a socket.
fn socket_inode(fd: &Path) -> Option<String> {
    let target = std::fs::read_link(fd).ok()?;
    let target = target.to_str()?;
    Some(
        target
            .strip_prefix("socket:[")?
            .strip_suffix(']')?
            .to_string(),
    )
}

/// The socket inode descriptor `fd` of process `pid` is, if it is a socket.
pub fn socket_of(pid: &str, fd: u32) -> Option<String> {
    socket_inode(Path::new(&format!("/proc/{pid}/fd/{fd}")))
}

/// The socket inodes process `pid` holds.
fn socket_inodes(pid: u32) -> HashSet<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    fds.filter_map(|fd| socket_inode(&fd.ok()?.path()))
        .collect()
}

/// Whether process `pid` holds the socket bound to 127.0.0.1:`port` in `/proc/net/TABLE`
/// (`tcp`: listening; `udp`: bound).
pub fn holds(pid: u32, table: &str, port: u16) -> bool {
    let inodes = socket_inodes(pid);
    let local = format!("0100007F:{port:04X}");
    let state = if table == "tcp" { "0A" } else { "07" };
    std::fs::read_to_string(format!("/proc/net/{table}"))
        .unwrap_or_default()
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .any(|f| f.len() > 9 && f[1] == local && f[3] == state && inodes.contains(f[9]))
}

/// Starts an inetd on a TCP and a UDP loopback port: `command` makes its command line for
/// those ports (writing its configuration). Returns the inetd, its stderr read by the test,
/// once it holds both sockets, and their addresses.
pub fn start_inetd(command: impl Fn(u16, u16) -> Command) -> (Proc, SocketAddr, SocketAddr) {
    // The ports were free when picked; the inetd is known to hold them only once its
    // sockets show in /proc/net, and another try takes other ports if it does not.
    for _ in 0..3 {
        let (tcp, udp) = free_ports();
        let inetd = Proc::spawn_cmd(&mut command(tcp, udp));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let pid = inetd.child.id();
            if holds(pid, "tcp", tcp) && holds(pid, "udp", udp) {
                let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
                return (inetd, addr(tcp), addr(udp));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("the inetd did not come to listen on the ports picked, three times");
}
