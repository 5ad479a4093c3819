//! `--allow-file` and `--deny-file` of the built binary, read again on `SIGHUP`: a file
//! replaced by a rename is judged from the next connection or datagram on, a bad file keeps
//! every old entry and is named with its line, a connection held is never disturbed, `stats`
//! counts reloads and failures, and a bad file at start-up exits 1. Sources are distinct
//! loopback addresses (127.0.0.x).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::tmp::{ReachableBinary, TempDir};
use common::*;

/// Writes `text` as `dir/name` by an atomic rename, as an operator's tools replace a file.
fn replace(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.new"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// Whether a count client from `from` is welcomed (a denied one is closed without a word).
fn served(from: &str, to: SocketAddr) -> bool {
    let mut s = connect_from(from, to);
    let welcome = welcome_for(&s);
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    // A denied connection ends with EOF, or a reset when the close beat the read.
    while got.len() < welcome.len() {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    assert!(got.is_empty() || got == welcome, "{from}: {got:?}");
    got == welcome
}

/// The first sample of the `stats` body at `stats` whose line starts with `series` (asked from
/// 127.0.0.1).
fn metric(stats: SocketAddr, series: &str) -> u64 {
    let mut s = connect_from("127.0.0.1", stats);
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let body = String::from_utf8(read_to_end(&mut s)).unwrap();
    body.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("no {series} in\n{body}"))
        .parse()
        .unwrap()
}

/// Sends SIGHUP and waits for the `n`th reload's line (good or bad) to return it.
fn reload(p: &mut Proc, n: usize) -> String {
    p.signal(libc::SIGHUP);
    p.wait_for_nth("SIGHUP: ", n)
}

/// A daemon serving count and stats on loopback with these extra flags; its two addresses.
fn daemon(extra: &[&str]) -> (Proc, SocketAddr, SocketAddr) {
    let mut args = vec!["--tcp", "count@127.0.0.1:0", "--tcp", "stats@127.0.0.1:0"];
    args.extend(extra);
    let mut p = Proc::spawn(&args, "info");
    let addrs = p.listening(2);
    (p, addrs[0], addrs[1])
}

#[test]
fn a_renamed_file_and_sighup_turn_a_denied_source_into_a_served_one_and_back() {
    let dir = TempDir::new("reload-rename");
    replace(&dir.0, "allow", "# loopback\n127.0.0.0/8\r\n");
    replace(&dir.0, "deny", "127.0.0.2   # the lab\n");
    let allow = dir.0.join("allow");
    let deny = dir.0.join("deny");
    let (mut p, count, stats) = daemon(&[
        "--allow-file",
        allow.to_str().unwrap(),
        "--deny-file",
        deny.to_str().unwrap(),
    ]);
    p.wait_for("access lists: 2 entries in force");
    assert!(!served("127.0.0.2", count));
    assert!(served("127.0.0.3", count));

    replace(&dir.0, "deny", "\n127.0.0.3\n\n");
    let line = reload(&mut p, 1);
    assert!(
        line.contains("INFO") && line.ends_with("access files read again: 2 entries in force"),
        "{line}"
    );
    assert!(served("127.0.0.2", count));
    assert!(!served("127.0.0.3", count));

    // The flags' entries stay with the files'.
    replace(&dir.0, "deny", "");
    reload(&mut p, 2);
    assert!(served("127.0.0.3", count));
    assert_eq!(metric(stats, "oneloop_reloads_total"), 2);
    assert_eq!(metric(stats, "oneloop_reload_failures_total"), 0);
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
}

#[test]
fn a_bad_line_or_a_missing_file_keeps_every_old_entry() {
    let dir = TempDir::new("reload-bad");
    replace(&dir.0, "deny", "127.0.0.2\n");
    let deny = dir.0.join("deny");
    let (mut p, count, stats) =
        daemon(&["--deny", "127.0.0.9", "--deny-file", deny.to_str().unwrap()]);
    p.wait_for("access lists: 2 entries in force");
    assert!(!served("127.0.0.2", count));

    replace(&dir.0, "deny", "127.0.0.3\n# fine so far\n10.0.0.1/8\n");
    let line = reload(&mut p, 1);
    let named = format!(
        "--deny-file {}, line 3: bad network '10.0.0.1/8'",
        deny.display()
    );
    assert!(line.contains("WARN") && line.contains(&named), "{line}");
    assert!(
        line.ends_with("the access lists in force are kept"),
        "{line}"
    );
    assert!(!served("127.0.0.2", count), "the old entry is kept");
    assert!(
        served("127.0.0.3", count),
        "no entry of the bad file is used"
    );
    assert!(!served("127.0.0.9", count));

    std::fs::remove_file(&deny).unwrap();
    let line = reload(&mut p, 2);
    assert!(
        line.contains("cannot read: no such file or directory"),
        "{line}"
    );
    assert!(!served("127.0.0.2", count));
    assert_eq!(metric(stats, "oneloop_reload_failures_total"), 2);
    assert_eq!(metric(stats, "oneloop_reloads_total"), 0);

    replace(&dir.0, "deny", "127.0.0.3\n");
    assert!(reload(&mut p, 3).ends_with(": 2 entries in force"));
    assert!(served("127.0.0.2", count));
    assert!(!served("127.0.0.3", count));
    assert_eq!(metric(stats, "oneloop_reloads_total"), 1);
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
}

#[test]
fn a_held_connection_survives_a_reload_that_denies_its_source() {
    let dir = TempDir::new("reload-held");
    replace(&dir.0, "deny", "");
    let deny = dir.0.join("deny");
    let (mut p, count, _) = daemon(&["--deny-file", deny.to_str().unwrap()]);
    let mut held = connect_from("127.0.0.4", count);
    let welcome = welcome_for(&held);
    assert_eq!(read_exact(&mut held, welcome.len()), welcome);

    replace(&dir.0, "deny", "127.0.0.4\n");
    reload(&mut p, 1);
    assert!(!served("127.0.0.4", count));
    held.write_all(b"still here\n").unwrap();
    assert_eq!(read_to_end(&mut held), b"You entered 10 characters.\n");
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
}

#[test]
fn a_denied_datagram_source_is_answered_after_a_reload() {
    let dir = TempDir::new("reload-udp");
    replace(&dir.0, "deny", "127.0.0.5\n");
    let deny = dir.0.join("deny");
    let mut p = Proc::spawn(
        &[
            "--udp",
            "echo@127.0.0.1:0",
            "--tcp",
            "stats@127.0.0.1:0",
            "--deny-file",
            deny.to_str().unwrap(),
        ],
        "info",
    );
    let addrs = p.listening(2);
    let (echo, stats) = (addrs[0], addrs[1]);
    let from = UdpSocket::bind("127.0.0.5:0").unwrap();
    from.set_read_timeout(Some(WAIT)).unwrap();
    from.send_to(b"ping", echo).unwrap();
    wait_until("the datagram denied", || {
        metric(stats, "oneloop_datagrams_denied_total{service=\"echo\"") >= 1
    });

    replace(&dir.0, "deny", "# nobody\n");
    assert!(reload(&mut p, 1).ends_with(": 0 entries in force"));
    assert_eq!(udp_ask(&from, echo, b"pong"), b"pong");
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
}

#[test]
fn a_bad_or_unreadable_file_at_start_exits_1_naming_it() {
    let dir = TempDir::new("reload-start");
    replace(&dir.0, "allow", "127.0.0.1\n\n::1/129\n");
    let allow = dir.0.join("allow");
    let missing = dir.0.join("missing");
    let nowhere = dir.0.join("nowhere/deny");
    for (flag, path, says) in [
        (
            "--allow-file",
            &allow,
            format!(
                "--allow-file {}, line 3: bad network '::1/129': prefix",
                allow.display()
            ),
        ),
        (
            "--deny-file",
            &missing,
            format!(
                "--deny-file {}: cannot read: no such file or directory",
                missing.display()
            ),
        ),
        (
            "--deny-file",
            &nowhere,
            format!(
                "--deny-file {}: cannot open its directory",
                nowhere.display()
            ),
        ),
    ] {
        let mut p = Proc::spawn(
            &["--tcp", "count@127.0.0.1:0", flag, path.to_str().unwrap()],
            "info",
        );
        assert_eq!(p.wait_exit(), 1, "{flag} {}", path.display());
        let error = p.seen.iter().find(|l| l.contains("ERROR"));
        assert!(
            error.is_some_and(|l| l.contains(&says)),
            "{says}: {:?}",
            p.seen
        );
        assert!(!p.seen.iter().any(|l| l.contains("listening on")));
    }
}

#[test]
fn a_reload_works_as_nobody_in_a_chroot() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return skip_for_want_of("a_reload_works_as_nobody_in_a_chroot", "root");
    }
    let bin = ReachableBinary::new("reload-bin");
    let root = TempDir::new("reload-chroot");
    let lists = TempDir::new("reload-lists");
    replace(&lists.0, "deny", "127.0.0.6\n");
    let deny = lists.0.join("deny");
    let mut p = Proc::spawn_cmd(
        Command::new(&bin.path)
            .args(["--tcp", "count@127.0.0.1:0", "--tcp", "stats@127.0.0.1:0"])
            .args(["--user", "nobody", "--chroot", root.0.to_str().unwrap()])
            .args(["--deny-file", deny.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .current_dir("/"),
    );
    let addrs = p.listening(2);
    p.wait_for("serving as user nobody");
    assert!(!served("127.0.0.6", addrs[0]));

    // Outside the chroot, reached through the directory opened before it.
    replace(&lists.0, "deny", "127.0.0.7\n");
    assert!(reload(&mut p, 1).ends_with(": 1 entries in force"));
    assert!(served("127.0.0.6", addrs[0]));
    assert!(!served("127.0.0.7", addrs[0]));

    // A file the user cannot read is a failed reload.
    replace(&lists.0, "deny", "127.0.0.8\n");
    std::fs::set_permissions(&deny, std::fs::Permissions::from_mode(0o600)).unwrap();
    let line = reload(&mut p, 2);
    assert!(line.contains("cannot read: permission denied"), "{line}");
    assert!(!served("127.0.0.7", addrs[0]));
    assert_eq!(metric(addrs[1], "oneloop_reload_failures_total"), 1);
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
}
