//! `--sandbox`: the daemon's own filter in a process of the test's making (the test binary
//! run again as a child, which installs it and makes one call), and the daemon binary with
//! `--sandbox` serving, seen from `/proc`.
mod common;

use std::io::Write;
use std::net::Shutdown;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Output};

use common::*;
use oneloop::config::Sandbox;

const BIN: &str = env!("CARGO_BIN_EXE_oneloop");

/// The variable that makes [`child`] act, naming what it does.
const ACT: &str = "ONELOOP_SANDBOX_CHILD";

/// The child's side of the tests below: with `ONELOOP_SANDBOX_CHILD` set, installs the
/// daemon's sandbox (or only Landlock) and makes the call it names; without, nothing.
#[test]
fn child() {
    let Ok(act) = std::env::var(ACT) else {
        return;
    };
    let mode = if act.starts_with("log ") {
        Sandbox::Log
    } else {
        Sandbox::Enforce
    };
    if act == "landlock" {
        landlock_child();
    }
    oneloop::os::sandbox::install(mode, libc::STDERR_FILENO, b"ERROR ", &[]).expect("install");
    let done = match act.trim_start_matches("log ") {
        "execve" => raw(libc::SYS_execve, [c"/bin/true".as_ptr() as i64, 0, 0]),
        "open" => raw(
            libc::SYS_openat,
            [libc::AT_FDCWD as i64, c"/etc/hostname".as_ptr() as i64, 0],
        ),
        "open for writing" => raw(
            libc::SYS_openat,
            [
                libc::AT_FDCWD as i64,
                c"x".as_ptr() as i64,
                (libc::O_WRONLY | libc::O_CREAT) as i64,
            ],
        ),
        "netlink" => raw(
            libc::SYS_socket,
            [libc::AF_NETLINK as i64, libc::SOCK_RAW as i64, 0],
        ),
        "tcp socket" => raw(
            libc::SYS_socket,
            [libc::AF_INET as i64, libc::SOCK_STREAM as i64, 0],
        ),
        "statx" => raw(libc::SYS_statx, [libc::AT_FDCWD as i64, 0, 0]),
        "clone3" => raw(libc::SYS_clone3, [0, 0, 0]),
        other => panic!("unknown act {other}"),
    };
    // Still alive: the call's result, as the exit status (0 success, else its errno).
    let code = if done >= 0 {
        0
    } else {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(255)
    };
    // SAFETY: ends the process at once, making no call outside the filter.
    unsafe { libc::_exit(code) }
}

/// A raw system call with three arguments.
fn raw(nr: libc::c_long, args: [i64; 3]) -> libc::c_long {
    // SAFETY: the arguments are valid for each call made here (or refused before the kernel
    // reads them).
    unsafe { libc::syscall(nr, args[0], args[1], args[2]) }
}

/// Landlock only (the seccomp filter would refuse `openat` first): the ruleset the daemon
/// applies, then an open of a file that exists. Exits 0 when refused with EACCES, 2 when the
/// kernel has no Landlock, 1 when the file opened.
fn landlock_child() -> ! {
    // SAFETY: prctl with integer arguments.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
        0
    );
    let code = match oneloop::os::sandbox::landlock::restrict(&[]) {
        Err(e) => {
            eprintln!("no Landlock: {e}");
            2
        }
        Ok(_) => match std::fs::File::open("/etc/hostname") {
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => 0,
            other => {
                eprintln!("open: {other:?}");
                1
            }
        },
    };
    std::process::exit(code)
}

/// Runs [`child`] in a process of its own with `act`.
fn in_child(act: &str) -> Output {
    Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(ACT, act)
        .output()
        .expect("run the child")
}

#[test]
fn a_call_outside_the_filter_ends_the_process_with_one_line() {
    for (act, nr) in [
        ("execve", libc::SYS_execve),
        ("open", libc::SYS_openat),
        ("open for writing", libc::SYS_openat),
        ("netlink", libc::SYS_socket),
        ("tcp socket", libc::SYS_socket),
    ] {
        let out = in_child(act);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{act}: {stderr}");
        let line = format!(
            "ERROR sandbox: system call {nr} ({}) is not allowed: the process ends (SIGSYS)\n",
            std::env::consts::ARCH
        );
        assert_eq!(stderr.matches(&line).count(), 1, "{act}: {stderr}");
    }
}

#[test]
fn calls_c_libraries_probe_for_fail_with_enosys() {
    for act in ["statx", "clone3"] {
        let out = in_child(act);
        assert_eq!(
            out.status.code(),
            Some(libc::ENOSYS),
            "{act}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_log_mode_lets_a_refused_call_through() {
    let out = in_child("log netlink");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn landlock_leaves_no_file_to_open() {
    let out = in_child("landlock");
    match out.status.code() {
        Some(0) => {}
        Some(2) => eprintln!(
            "landlock_leaves_no_file_to_open: skipped: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        _ => panic!("{out:?}"),
    }
}

/// The `Seccomp:` and `NoNewPrivs:` lines of /proc/PID/status.
fn seccomp_status(pid: i32) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{name} in the status"))
    };
    (field("NoNewPrivs:"), field("Seccomp:"))
}

#[test]
fn a_sandboxed_daemon_has_no_new_privs_and_a_filter_and_serves_all_the_same() {
    for flag in ["--sandbox", "--sandbox=log"] {
        let mut p = Proc::spawn(
            &[
                "--tcp",
                "count@127.0.0.1:0",
                "--tcp",
                "echo@127.0.0.1:0",
                "--udp",
                "time@127.0.0.1:0",
                flag,
            ],
            "info",
        );
        let addrs = p.listening(3);
        p.wait_for("sandbox: ");
        assert_eq!(
            seccomp_status(p.pid()),
            ("1".to_string(), "2".to_string()),
            "{flag}"
        );
        assert_eq!(
            count_reply(addrs[0], b"abc\n"),
            "You entered 3 characters.\n"
        );
        let mut echo = connect(addrs[1]);
        echo.write_all(b"ping").unwrap();
        echo.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_end(&mut echo), b"ping");
        let udp = udp_client(addrs[2]);
        assert_time_is_now(udp_ask(&udp, addrs[2], b""), oneloop::proto::Epoch::Unix);
        p.signal(libc::SIGUSR1);
        p.wait_for("connections open");
        p.signal(libc::SIGTERM);
        assert_eq!(p.wait_exit(), 0, "{flag}: {:?}", p.seen);
    }
}

/// An upgrade (`--handover`) from one sandboxed daemon to another: the running one hands its
/// sockets over from its loop, under its filter (it accepts the new daemon, reads its
/// credentials with `SO_PEERCRED`, makes the connection non-blocking, reads its records and
/// sends the sockets with `SCM_RIGHTS`), serves its open connection to the end and exits 0;
/// the new one, which says it is ready under its own filter, serves the same addresses.
#[test]
fn a_sandboxed_daemon_hands_its_sockets_over_to_a_sandboxed_one() {
    let dir = tmp::TempDir::new("sandbox-handover");
    let path = dir.0.join("handover");
    let args = [
        "--tcp",
        "count@127.0.0.1:0",
        "--udp",
        "echo@127.0.0.1:0",
        "--handover",
        path.to_str().expect("a path in UTF-8"),
        "--sandbox",
    ];
    let mut old = Proc::spawn(&args, "info");
    let addrs = old.listening(2);
    old.wait_for("sandbox: ");
    let mut held = count_client(addrs[0]);
    let mut new = Proc::spawn(&args, "info");
    assert_eq!(new.listening(2), addrs, "{:?}", new.seen);
    new.wait_for("handover: ready");
    old.wait_for("is ready");
    held.write_all(b"held\n").unwrap();
    held.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut held), b"You entered 4 characters.\n");
    assert_eq!(old.wait_exit(), 0, "{:?}", old.seen);
    assert_eq!(
        seccomp_status(new.pid()),
        ("1".to_string(), "2".to_string())
    );
    assert_eq!(
        count_reply(addrs[0], b"after\n"),
        "You entered 5 characters.\n"
    );
    let udp = udp_client(addrs[1]);
    assert_eq!(udp_ask(&udp, addrs[1], b"ping"), b"ping");
    new.signal(libc::SIGTERM);
    assert_eq!(new.wait_exit(), 0, "{:?}", new.seen);
}

/// A kernel (or an emulator) that takes no filter: the daemon does not serve without it.
#[test]
fn without_a_filter_the_daemon_exits_1_naming_why() {
    // Before the daemon runs: a filter that answers seccomp(2) and prctl(PR_SET_SECCOMP)
    // with EINVAL, as qemu-user does, and allows everything else.
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let filter = [
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        jeq(libc::SYS_seccomp as u32, 3, 0),
        jeq(libc::SYS_prctl as u32, 0, 3),
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 16),
        jeq(libc::PR_SET_SECCOMP as u32, 0, 1),
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::EINVAL as u32,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    let mut cmd = Command::new(BIN);
    cmd.args(["--tcp", "count@127.0.0.1:0", "--sandbox"])
        .env("RUST_LOG", "info");
    // SAFETY: only prctl between fork and exec, with a program made before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr().cast_mut(),
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let ended = Proc::spawn_cmd(&mut cmd).finish();
    assert_eq!(ended.code, 1, "{}", ended.stderr);
    assert!(
        ended.stderr.contains(
            "ERROR cannot install the sandbox: install the seccomp filter: invalid argument \
             (the kernel, or an emulator such as qemu-user, takes no seccomp filter)"
        ),
        "{}",
        ended.stderr
    );
    assert!(
        !ended.stderr.contains("system calls allowed"),
        "{}",
        ended.stderr
    );
}
