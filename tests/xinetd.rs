//! Under a real xinetd: `wait = yes` services run the daemon with `--inetd tcp:count` and
//! `--inetd udp:time` and `--exit-idle 1`; it serves, exits when idle, and xinetd starts it
//! again for the next client. xinetd puts the socket on standard error too, so the daemon
//! logs to syslog.
//!
//! xinetd conflicts with openbsd-inetd as a Debian package, so it is not installed: `.ci/run`
//! installs its libraries with apt and unpacks Debian's package alone into `/opt/xinetd`
//! (`apt-get download xinetd`, `dpkg-deb -x`). xinetd runs in the foreground (`-dontfork`)
//! with a configuration file of the test's own, in a mount namespace whose `/dev/log` is the
//! test's (`common::inetd`): its own syslog lines (`START:`, `EXIT:` with the daemon's pid
//! and status) and the daemon's arrive there. Without root, `unshare` or xinetd the test is
//! skipped with a message, except under CI (`CI=true`), where it fails.

mod common;

use std::io::Write;
use std::net::Shutdown;

use common::inetd::*;
use common::*;
use oneloop::proto::Epoch;

const XINETD: &str = "/opt/xinetd/usr/sbin/xinetd";

/// A `wait = yes` service on 127.0.0.1:`port` running the daemon with `--inetd SERVICE`.
fn service(name: &str, transport: &str, port: u16, inetd: &str) -> String {
    let socket_type = if transport == "tcp" {
        "stream"
    } else {
        "dgram"
    };
    let args = daemon_args(&["--inetd", inetd, "--exit-idle", "1"]).join(" ");
    format!(
        "service {name}\n{{\n    type = UNLISTED\n    socket_type = {socket_type}\n    \
         protocol = {transport}\n    wait = yes\n    user = root\n    bind = 127.0.0.1\n    \
         port = {port}\n    server = {ONELOOP}\n    server_args = {args}\n}}\n"
    )
}

/// The pid in each of xinetd's syslog lines `WHAT: SERVICE ... pid=PID` (`START: SERVICE`,
/// `EXIT: SERVICE status=0`), once `n` have come.
fn pids(dev_log: &mut DevLog, what: &str, n: usize) -> Vec<String> {
    dev_log
        .wait_for_n(&format!("{what} pid="), n)
        .iter()
        .map(|line| {
            let pid = line.split("pid=").nth(1).unwrap_or_default();
            pid.chars().take_while(char::is_ascii_digit).collect()
        })
        .collect()
}

#[test]
fn under_xinetd_the_daemon_serves_exits_when_idle_and_is_started_again() {
    let test = "under_xinetd";
    if !can_stage(test, &[(XINETD, ".ci/run unpacks Debian's xinetd there")]) {
        return;
    }
    let mut dev_log = DevLog::new(test);
    let (_xinetd, tcp, udp) = start_inetd(|tcp, udp| {
        let conf = dev_log.dir.join("xinetd.conf");
        let defaults = "defaults\n{\n    log_type = SYSLOG daemon info\n    \
                        log_on_success = PID EXIT\n    log_on_failure = HOST\n}\n";
        let text = defaults.to_string()
            + &service("oneloop-count", "tcp", tcp, "tcp:count")
            + &service("oneloop-time", "udp", udp, "udp:time");
        std::fs::write(&conf, text).unwrap();
        let pidfile = dev_log.dir.join("xinetd.pid");
        let (conf, pidfile) = (conf.to_str().unwrap(), pidfile.to_str().unwrap());
        dev_log.in_namespace(XINETD, &["-f", conf, "-dontfork", "-pidfile", pidfile])
    });

    // First client: xinetd starts the daemon with its listening socket, on standard input,
    // output and error alike.
    let mut client = count_client(tcp);
    let pid = pids(&mut dev_log, "START: oneloop-count", 1).remove(0);
    let stdin = socket_of(&pid, 0);
    assert!(stdin.is_some(), "pid {pid}: {:?}", dev_log.seen);
    assert_eq!(socket_of(&pid, 1), stdin);
    assert_eq!(socket_of(&pid, 2), stdin);
    client.write_all(b"hello\n").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut client), b"You entered 5 characters.\n");
    // Nothing open for 1 s: the daemon exits 0, and xinetd watches the socket again.
    pids(&mut dev_log, "EXIT: oneloop-count status=0", 1);
    // Second client: a new daemon.
    assert_eq!(count_reply(tcp, b"again\n"), "You entered 5 characters.\n");
    let tcp_starts = pids(&mut dev_log, "EXIT: oneloop-count status=0", 2);
    assert_ne!(tcp_starts[0], tcp_starts[1]);
    assert_eq!(tcp_starts[0], pid);
    // Each one said so in syslog: its start, then its summary on its way out.
    for pid in &tcp_starts {
        dev_log.wait_for_run(pid, &format!("tcp {tcp} (count)"), &summary(1, 0));
    }

    // UDP time: a 4-byte answer, then the same idle exit.
    assert_time_is_now(udp_ask(&udp_client(udp), udp, b""), Epoch::Unix);
    let udp_start = pids(&mut dev_log, "EXIT: oneloop-time status=0", 1);
    dev_log.wait_for_run(&udp_start[0], &format!("udp {udp} (time)"), &summary(0, 1));
}
