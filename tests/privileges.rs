//! `--user`, `--group` and `--chroot` of the built binary: it binds port 7 as root, then
//! serves as `nobody` (the ids read from `/proc/PID/status`), in a chroot (`/proc/PID/root`),
//! behind socket activation too; a drop that fails exits 1 naming its step. A daemon started
//! as `nobody` runs from a copy of the binary under `/tmp` (`tests/common/tmp.rs`), since the
//! checkout may sit under a directory that `nobody` cannot enter.
//!
//! Most need root. Without it they are skipped with a message, except under CI (`CI=true`),
//! where a skip would hide them: there they fail.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use common::tmp::{ReachableBinary, TempDir};
use common::users::{as_nobody, assert_nobody, nobody, root};
use common::{count_reply, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_oneloop");

/// Checks that the daemon `p` serves `count` at `addr` (a line of `line`), then stops on
/// SIGTERM.
fn serves_then_stops(mut p: Proc, addr: SocketAddr, line: &str) {
    let reply = count_reply(addr, format!("{line}\n").as_bytes());
    assert_eq!(
        reply,
        format!("You entered {} characters.\n", line.chars().count())
    );
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
}

#[test]
fn binds_port_7_as_root_then_serves_as_nobody() {
    if !root("binds_port_7_as_root_then_serves_as_nobody") {
        return;
    }
    let (uid, gid, _) = nobody();
    let mut p = Proc::spawn(&["--user", "nobody", "--tcp", "count@127.0.0.71:7"], "info");
    let addr = p.listening(1)[0];
    assert_eq!(addr.port(), 7);
    p.wait_for(&format!(
        "serving as user nobody (uid {uid}), gid {gid}, no supplementary groups"
    ));
    assert_nobody(p.pid());
    serves_then_stops(p, addr, "hello");
}

#[test]
fn a_chroot_and_a_group_after_binding() {
    if !root("a_chroot_and_a_group_after_binding") {
        return;
    }
    let (_, gid, group) = nobody();
    let dir = TempDir::new("chroot");
    let root_dir = dir.0.to_str().unwrap();
    let mut p = Proc::spawn(
        &[
            "--user",
            "nobody",
            "--group",
            &group,
            "--chroot",
            root_dir,
            "--tcp",
            "count@127.0.0.72:7",
        ],
        "info",
    );
    let addr = p.listening(1)[0];
    p.wait_for(&format!(
        "group {group} (gid {gid}), no supplementary groups, root {root_dir}"
    ));
    let link = |name: &str| std::fs::read_link(format!("/proc/{}/{name}", p.pid())).unwrap();
    assert_eq!(link("root"), dir.0);
    assert_eq!(link("cwd"), dir.0, "the directory is the chroot's /");
    assert_nobody(p.pid());
    // It needs no file to serve.
    serves_then_stops(p, addr, "in a jail");
}

/// Runs the daemon with `args` and checks that it exits 1 with `says`, having served
/// nothing.
fn assert_fails(args: &[&str], says: &str) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("RUST_LOG", "info");
    assert_fails_with(&mut cmd, says);
}

fn assert_fails_with(cmd: &mut Command, says: &str) {
    let ended = Proc::spawn_cmd(cmd).finish();
    assert_eq!(ended.code, 1, "{}", ended.stderr);
    let last = ended.stderr.lines().last().unwrap_or_default();
    assert_eq!(last, format!("ERROR {says}"), "{}", ended.stderr);
}

#[test]
fn an_unknown_user_or_group_exits_1_naming_the_lookup() {
    assert_fails(
        &[
            "--user",
            "no-such-user-oneloop",
            "--tcp",
            "count@127.0.0.1:0",
        ],
        "cannot drop privileges: look up user 'no-such-user-oneloop': no such user",
    );
    assert_fails(
        &[
            "--user",
            "nobody",
            "--group",
            "no-such-group-oneloop",
            "--udp",
            "echo@127.0.0.1:0",
        ],
        "cannot drop privileges: look up group 'no-such-group-oneloop': no such group",
    );
    assert_fails(
        &["--user", "root", "--tcp", "count@127.0.0.1:0"],
        "cannot drop privileges: switch to user 'root': it is uid 0: serving as root would \
         drop nothing",
    );
}

#[test]
fn a_chroot_that_fails_exits_1_naming_it() {
    if !root("a_chroot_that_fails_exits_1_naming_it") {
        return;
    }
    let dir = TempDir::new("not-a-dir");
    let file = dir.0.join("file");
    std::fs::write(&file, "").unwrap();
    for (missing, why) in [
        (
            Path::new("/nonexistent-oneloop"),
            "no such file or directory",
        ),
        (file.as_path(), "not a directory"),
    ] {
        let missing = missing.to_str().unwrap();
        assert_fails(
            &[
                "--user",
                "nobody",
                "--chroot",
                missing,
                "--tcp",
                "count@127.0.0.1:0",
            ],
            &format!("cannot drop privileges: chroot to {missing}: {why}"),
        );
    }
}

#[test]
fn without_root_only_the_current_user_may_be_asked_for() {
    if !root("without_root_only_the_current_user_may_be_asked_for") {
        return;
    }
    let (uid, _, _) = nobody();
    // Where cargo built it, nobody may not reach the binary.
    let bin = ReachableBinary::new("as-nobody");
    let as_nobody = |args: &[&str]| as_nobody(&bin, args);
    let running = format!("running as uid {uid} without root privileges");
    assert_fails_with(
        &mut as_nobody(&[
            "--user",
            "nobody",
            "--chroot",
            "/",
            "--tcp",
            "count@127.0.0.1:0",
        ]),
        &format!(
            "cannot drop privileges: switch to user 'nobody': {running}, --chroot is not possible"
        ),
    );
    assert_fails_with(
        &mut as_nobody(&[
            "--user",
            "no-such-user-oneloop",
            "--tcp",
            "count@127.0.0.1:0",
        ]),
        "cannot drop privileges: look up user 'no-such-user-oneloop': no such user",
    );
    // Its own user: nothing to do, and it serves.
    let mut p = Proc::spawn_cmd(&mut as_nobody(&[
        "--user",
        "nobody",
        "--tcp",
        "count@127.0.0.1:0",
    ]));
    let addr = p.listening(1)[0];
    p.wait_for(&format!("running as user nobody (uid {uid}) already"));
    serves_then_stops(p, addr, "me");
}

#[test]
fn passed_sockets_are_taken_before_the_drop() {
    if !root("passed_sockets_are_taken_before_the_drop") {
        return;
    }
    let found = Command::new("systemd-socket-activate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must have systemd-socket-activate"
        );
        eprintln!("systemd-socket-activate is not installed: skipped");
        return;
    }
    // systemd-socket-activate binds port 7 and, on the first connection, executes the daemon
    // in its place (the same process).
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args(["--listen=127.0.0.75:7", "--fdname=count", "--", BIN])
        .args(["--user", "nobody"])
        .env("RUST_LOG", "info");
    let mut p = Proc::spawn_cmd(&mut cmd);
    p.wait_for("Listening on");
    let addr = "127.0.0.75:7".parse().unwrap();
    assert_eq!(
        count_reply(addr, b"passed\n"),
        "You entered 6 characters.\n"
    );
    p.wait_for("listening on tcp 127.0.0.75:7 (count), passed by the service manager");
    p.wait_for("serving as user nobody");
    assert_nobody(p.pid());
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
}
