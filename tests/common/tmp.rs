//! Directories of a test's own under `/tmp`, and the built binary copied where every user can
//! run it.
//!
//! A test that runs the daemon as another user (`nobody`) cannot run it where cargo built it:
//! the checkout may sit under a directory only its owner can enter (a `mktemp -d` clone has
//! mode 0700). So such a test runs [`ReachableBinary`], a copy in a directory of mode 0755
//! under `/tmp`, which every user can enter.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Proc;

/// A fresh directory under `/tmp`, mode 0755 whatever the umask, removed with what it holds
/// when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `/tmp/oneloop-NAME-PID`, made afresh: a directory of that name left by an earlier run
    /// of this process id is removed first.
    pub fn new(name: &str) -> TempDir {
        // `/tmp` rather than TMPDIR: the point is a place every user can reach.
        let dir = Path::new("/tmp").join(format!("oneloop-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod 755 {}: {e}", dir.display()));
        TempDir(dir.canonicalize().expect("the directory just made"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The built `oneloop` binary copied, mode 0755, into a [`TempDir`] of its own, so that a
/// process of any user can execute it; removed when dropped.
pub struct ReachableBinary {
    pub path: PathBuf,
    _dir: TempDir,
}

impl ReachableBinary {
    pub fn new(name: &str) -> ReachableBinary {
        let dir = TempDir::new(name);
        let path = dir.0.join("oneloop");
        // A child process writes the copy: a file this process held open for writing could
        // be inherited by a child another test thread forks meanwhile, and executing the copy
        // would then fail with ETXTBSY until that child's exec closed it.
        let ended = Proc::spawn_cmd(
            Command::new("install")
                .args(["-m", "0755", env!("CARGO_BIN_EXE_oneloop")])
                .arg(&path),
        )
        .finish();
        assert_eq!(ended.code, 0, "install: {}", ended.stderr);
        ReachableBinary { path, _dir: dir }
    }
}
