//! Who the test runs as, and the user `nobody` that tests run daemons as.

use std::ffi::CStr;
use std::os::unix::process::CommandExt;
use std::process::Command;

use super::skip_for_want_of;
use super::tmp::ReachableBinary;

/// Whether the test runs as root; when not, says so, and fails under CI.
pub fn root(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip_for_want_of(test, "root");
    false
}

/// The uid and gid of `nobody`, and the name of its group, from the user database.
pub fn nobody() -> (u32, u32, String) {
    // SAFETY: the tests call these from one thread at a time per process only for reading
    // entries that exist; the strings are copied before the next call.
    unsafe {
        let pw = libc::getpwnam(c"nobody".as_ptr());
        assert!(!pw.is_null(), "no user nobody");
        let (uid, gid) = ((*pw).pw_uid, (*pw).pw_gid);
        let gr = libc::getgrgid(gid);
        assert!(!gr.is_null(), "no group {gid}");
        let group = CStr::from_ptr((*gr).gr_name).to_string_lossy().into_owned();
        (uid, gid, group)
    }
}

/// The ids of a line of /proc/PID/status (`Uid:`, `Gid:`, `Groups:`).
pub fn ids(pid: i32, field: &str) -> Vec<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    line.split_whitespace()
        .map(|id| id.parse().unwrap())
        .collect()
}

/// Checks that process `pid` runs as `nobody`, real, effective, saved and filesystem ids,
/// with no supplementary group.
pub fn assert_nobody(pid: i32) {
    let (uid, gid, _) = nobody();
    assert_eq!(ids(pid, "Uid"), [uid; 4]);
    assert_eq!(ids(pid, "Gid"), [gid; 4]);
    assert_eq!(ids(pid, "Groups"), Vec::<u32>::new());
}

/// `oneloop ARGS` (`RUST_LOG=info`) to be run as `nobody`, from `bin`, a copy of the binary
/// that `nobody` can reach.
pub fn as_nobody(bin: &ReachableBinary, args: &[&str]) -> Command {
    let (uid, gid, _) = nobody();
    let mut cmd = Command::new(&bin.path);
    cmd.args(args).env("RUST_LOG", "info").uid(uid).gid(gid);
    cmd
}
