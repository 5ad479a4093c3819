//! Giving up root after start-up: `--user NAME`, `--group NAME`, `--chroot DIR`.
//!
//! The daemon binds every socket as root (ports below 1024 need it), then calls
//! [`Plan::resolve`] (which reads the user and group databases, so it runs before any
//! chroot) and [`Plan::apply`], which takes the steps in a fixed order: chroot to DIR and
//! chdir to its `/`; clear the supplementary groups; set the group; set the user; check that
//! the ids are the ones asked for and that `setuid(0)` and `setgid(0)` now fail. After the
//! first step nothing needs a file, and after the last nothing can get root back. Each step
//! that fails is an error naming it; the daemon exits 1 with it.
//!
//! Without root privileges (an effective uid other than 0) only the current user may be
//! asked for, and then there is nothing to do; a group other than the current one, or a
//! chroot, needs root. Asking for `root` itself is refused: it would drop nothing.

use std::ffi::{CString, OsStr};
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::ptr;

use libc::{c_char, c_int, gid_t, uid_t};

use crate::config::Privileges;
use crate::os::sockets::reason;

/// A step of the drop that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropError {
    /// What was being done: `look up user 'www'`, `chroot to /var/empty`.
    pub step: String,
    /// Why it failed: `no such user`, `no such file or directory`.
    pub reason: String,
}

impl DropError {
    fn new(step: impl Into<String>, reason: impl Into<String>) -> DropError {
        DropError {
            step: step.into(),
            reason: reason.into(),
        }
    }

    /// The step failed with the C library's `errno`.
    fn os(step: impl Into<String>) -> DropError {
        DropError::new(step, reason(&io::Error::last_os_error()))
    }
}

/// `cannot drop privileges: chroot to /var/empty: no such file or directory`.
impl fmt::Display for DropError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot drop privileges: {}: {}", self.step, self.reason)
    }
}

impl std::error::Error for DropError {}

/// A user id and a group id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ids {
    uid: uid_t,
    gid: gid_t,
}

/// What [`Plan::apply`] will do: the user and group looked up, and the directory to chroot
/// to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    user: String,
    /// The group's name when `--group` named one (else the user's primary group).
    group: Option<String>,
    ids: Ids,
    chroot: Option<PathBuf>,
    /// False when the daemon already runs as the user asked for, without root.
    change: bool,
}

impl Plan {
    /// Looks up the user (and the group: by default the user's primary group) and decides
    /// what there is to do. `None` when no user was asked for. It needs the user and group
    /// databases, so it must run before the chroot.
    pub fn resolve(asked: &Privileges) -> Result<Option<Plan>, DropError> {
        let Some(user) = &asked.user else {
            return Ok(None);
        };
        let step = format!("look up user '{user}'");
        let (uid, primary) = user_ids(user)
            .map_err(|e| DropError::new(&step, reason(&e)))?
            .ok_or_else(|| DropError::new(&step, "no such user"))?;
        if uid == 0 {
            return Err(DropError::new(
                format!("switch to user '{user}'"),
                "it is uid 0: serving as root would drop nothing",
            ));
        }
        let gid = match &asked.group {
            Some(group) => {
                let step = format!("look up group '{group}'");
                group_id(group)
                    .map_err(|e| DropError::new(&step, reason(&e)))?
                    .ok_or_else(|| DropError::new(&step, "no such group"))?
            }
            None => primary,
        };
        let ids = Ids { uid, gid };
        // SAFETY: geteuid and getegid cannot fail.
        let current = unsafe {
            Ids {
                uid: libc::geteuid(),
                gid: libc::getegid(),
            }
        };
        let change = must_change(current, ids, asked)
            .map_err(|why| DropError::new(format!("switch to user '{user}'"), why))?;
        Ok(Some(Plan {
            user: user.clone(),
            group: asked.group.clone(),
            ids,
            chroot: asked.chroot.clone(),
            change,
        }))
    }

    /// The user id the daemon serves as: the one asked for, else the one it runs as.
    pub fn serving_uid(asked: &Privileges) -> Result<u32, DropError> {
        Ok(match Plan::resolve(asked)? {
            Some(plan) => plan.ids.uid,
            // SAFETY: geteuid cannot fail.
            None => unsafe { libc::geteuid() },
        })
    }

    /// Takes the steps of the drop in their order; the first that fails is the error. Call
    /// it once every socket is bound and the service manager's notify socket is open.
    pub fn apply(&self) -> Result<(), DropError> {
        if !self.change {
            return Ok(());
        }
        if let Some(dir) = &self.chroot {
            let path = c_string(dir.as_os_str())
                .ok_or_else(|| DropError::new("chroot", "the path holds a NUL byte"))?;
            // SAFETY: a valid C string.
            if unsafe { libc::chroot(path.as_ptr()) } != 0 {
                return Err(DropError::os(format!("chroot to {}", dir.display())));
            }
            // SAFETY: a valid C string.
            if unsafe { libc::chdir(c"/".as_ptr()) } != 0 {
                return Err(DropError::os(format!("chdir to / in {}", dir.display())));
            }
        }
        let Ids { uid, gid } = self.ids;
        // SAFETY: no groups, so no pointer is read.
        if unsafe { libc::setgroups(0, ptr::null()) } != 0 {
            return Err(DropError::os("clear the supplementary groups"));
        }
        // SAFETY: plain system calls on ids.
        if unsafe { libc::setgid(gid) } != 0 {
            return Err(DropError::os(format!("set the group to gid {gid}")));
        }
        // SAFETY: as above.
        if unsafe { libc::setuid(uid) } != 0 {
            return Err(DropError::os(format!("set the user to uid {uid}")));
        }
        self.check()
    }

    /// Checks that the real, effective and saved ids are the ones asked for, that no
    /// supplementary group is left, and that root cannot be had back.
    fn check(&self) -> Result<(), DropError> {
        let Ids { uid, gid } = self.ids;
        all_ids_are("user", libc::getresuid, uid)?;
        all_ids_are("group", libc::getresgid, gid)?;
        // SAFETY: a size of 0 asks for the count only.
        let groups = unsafe { libc::getgroups(0, ptr::null_mut()) };
        if groups != 0 {
            return Err(DropError::new(
                "check the ids",
                format!("{groups} supplementary group(s) are left"),
            ));
        }
        // SAFETY: each either fails, as it must, or makes the daemon root again, which is
        // the error reported (the daemon then exits).
        if unsafe { libc::setuid(0) } == 0 {
            return Err(DropError::new(
                "check that root is gone",
                "setuid(0) succeeded",
            ));
        }
        // SAFETY: as above.
        if unsafe { libc::setgid(0) } == 0 {
            return Err(DropError::new(
                "check that root is gone",
                "setgid(0) succeeded",
            ));
        }
        Ok(())
    }
}

/// `serving as user nobody (uid 65534), gid 65534, no supplementary groups, root /var/empty`.
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ids { uid, gid } = self.ids;
        if !self.change {
            return write!(f, "running as user {} (uid {uid}) already", self.user);
        }
        write!(f, "serving as user {} (uid {uid}), ", self.user)?;
        match &self.group {
            Some(group) => write!(f, "group {group} (gid {gid})")?,
            None => write!(f, "gid {gid}")?,
        }
        f.write_str(", no supplementary groups")?;
        if let Some(dir) = &self.chroot {
            write!(f, ", root {}", dir.display())?;
        }
        Ok(())
    }
}

/// Checks that the real, effective and saved ids that `get` reads (`getresuid`, `getresgid`)
/// are all `want`.
fn all_ids_are<T: Copy + Default + PartialEq + fmt::Display>(
    kind: &str,
    get: unsafe extern "C" fn(*mut T, *mut T, *mut T) -> c_int,
    want: T,
) -> Result<(), DropError> {
    let step = "check the ids";
    let (mut r, mut e, mut s) = (T::default(), T::default(), T::default());
    // SAFETY: the three pointers are valid for the call.
    if unsafe { get(&mut r, &mut e, &mut s) } != 0 {
        return Err(DropError::os(step));
    }
    if [r, e, s] != [want; 3] {
        return Err(DropError::new(
            step,
            format!("the {kind} ids are {r}, {e}, {s}, not {want}"),
        ));
    }
    Ok(())
}

/// Whether a daemon running as `current` must change to become `wanted`, or why it cannot:
/// only root can change its ids or chroot, and a daemon that is not root may only be asked
/// for what it is already.
fn must_change(current: Ids, wanted: Ids, asked: &Privileges) -> Result<bool, String> {
    if current.uid == 0 {
        return Ok(true);
    }
    let running = format!("running as uid {} without root privileges", current.uid);
    if wanted.uid != current.uid {
        return Err(format!("{running}, the daemon can only be the user it is"));
    }
    if asked.group.is_some() && wanted.gid != current.gid {
        return Err(format!(
            "{running}, gid {} cannot become gid {}",
            current.gid, wanted.gid
        ));
    }
    if asked.chroot.is_some() {
        return Err(format!("{running}, --chroot is not possible"));
    }
    Ok(false)
}

fn c_string(text: &OsStr) -> Option<CString> {
    CString::new(text.as_bytes()).ok()
}

/// Runs a reentrant database lookup (`getpwnam_r`, `getgrnam_r`) with a buffer that grows
/// while the C library says it is too small, and reads the entry found with `read`. `None`
/// when there is no such entry (POSIX lets the lookup say so with several error numbers).
fn lookup<T, R>(
    call: impl Fn(*mut T, *mut c_char, usize, *mut *mut T) -> c_int,
    read: impl Fn(&T) -> R,
) -> io::Result<Option<R>> {
    let mut size = 1024;
    loop {
        let mut buf: Vec<c_char> = vec![0; size];
        let mut entry = MaybeUninit::<T>::uninit();
        let mut found: *mut T = ptr::null_mut();
        match call(entry.as_mut_ptr(), buf.as_mut_ptr(), buf.len(), &mut found) {
            // SAFETY: on success `found` is null or points at `entry`, filled in, whose
            // strings live in `buf`, both alive here.
            0 => return Ok(unsafe { found.as_ref() }.map(read)),
            libc::ERANGE if size < 1 << 20 => size *= 4,
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// The uid and primary gid of the user called `name`.
fn user_ids(name: &str) -> io::Result<Option<(uid_t, gid_t)>> {
    let Some(name) = c_string(OsStr::new(name)) else {
        return Ok(None);
    };
    lookup(
        // SAFETY: the pointers are valid for the call, the buffer `len` bytes long.
        |entry, buf, len, found| unsafe { libc::getpwnam_r(name.as_ptr(), entry, buf, len, found) },
        |pw: &libc::passwd| (pw.pw_uid, pw.pw_gid),
    )
}

/// The gid of the group called `name`.
fn group_id(name: &str) -> io::Result<Option<gid_t>> {
    let Some(name) = c_string(OsStr::new(name)) else {
        return Ok(None);
    };
    lookup(
        // SAFETY: as in `user_ids`.
        |entry, buf, len, found| unsafe { libc::getgrnam_r(name.as_ptr(), entry, buf, len, found) },
        |gr: &libc::group| gr.gr_gid,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(user: &str, group: Option<&str>, chroot: Option<&str>) -> Privileges {
        Privileges {
            user: Some(user.to_string()),
            group: group.map(str::to_string),
            chroot: chroot.map(PathBuf::from),
        }
    }

    const ROOT: Ids = Ids { uid: 0, gid: 0 };
    const ALICE: Ids = Ids {
        uid: 1000,
        gid: 1000,
    };

    #[test]
    fn root_and_nobody_are_found_and_strangers_are_not() {
        assert_eq!(user_ids("root").unwrap(), Some((0, 0)));
        let (uid, gid) = user_ids("nobody").unwrap().expect("a nobody user");
        assert!(uid > 0 && gid > 0);
        assert_eq!(group_id("root").unwrap(), Some(0));
        assert_eq!(user_ids("no-such-user-oneloop").unwrap(), None);
        assert_eq!(group_id("no-such-group-oneloop").unwrap(), None);
        assert_eq!(user_ids("nul\0inside").unwrap(), None);
        assert_eq!(user_ids("").unwrap(), None);
    }

    #[test]
    fn no_user_means_no_plan() {
        assert_eq!(Plan::resolve(&Privileges::default()), Ok(None));
    }

    #[test]
    fn unknown_users_and_groups_name_the_lookup() {
        assert_eq!(
            Plan::resolve(&asked("no-such-user-oneloop", None, None)),
            Err(DropError::new(
                "look up user 'no-such-user-oneloop'",
                "no such user"
            ))
        );
        assert_eq!(
            Plan::resolve(&asked("nobody", Some("no-such-group-oneloop"), None)),
            Err(DropError::new(
                "look up group 'no-such-group-oneloop'",
                "no such group"
            ))
        );
        assert_eq!(
            Plan::resolve(&asked("no-such-user-oneloop", None, None))
                .unwrap_err()
                .to_string(),
            "cannot drop privileges: look up user 'no-such-user-oneloop': no such user"
        );
    }

    #[test]
    fn root_is_not_a_user_to_drop_to() {
        let e = Plan::resolve(&asked("root", None, None)).unwrap_err();
        assert_eq!(e.step, "switch to user 'root'");
        assert!(e.reason.contains("uid 0"), "{e}");
    }

    #[test]
    fn the_group_defaults_to_the_users_primary_group() {
        let (uid, gid) = user_ids("nobody").unwrap().unwrap();
        // Whoever runs the test, nobody is not them unless they are nobody.
        let plan = Plan::resolve(&asked("nobody", None, None));
        match plan {
            Ok(Some(plan)) => assert_eq!(plan.ids, Ids { uid, gid }),
            Err(e) => assert!(e.reason.contains("without root privileges"), "{e}"),
            Ok(None) => panic!("a user was asked for"),
        }
        if let Ok(Some(plan)) = Plan::resolve(&asked("nobody", Some("root"), None)) {
            assert_eq!(plan.ids, Ids { uid, gid: 0 });
        }
    }

    #[test]
    fn root_may_become_anyone() {
        for chroot in [None, Some("/var/empty")] {
            let a = asked("x", Some("g"), chroot);
            assert_eq!(must_change(ROOT, ALICE, &a), Ok(true));
        }
    }

    #[test]
    fn without_root_only_the_current_user_is_possible_and_changes_nothing() {
        assert_eq!(
            must_change(ALICE, ALICE, &asked("alice", None, None)),
            Ok(false)
        );
        // Not asked for, the primary group need not be the current one.
        let other_primary = Ids {
            uid: 1000,
            gid: 100,
        };
        assert_eq!(
            must_change(ALICE, other_primary, &asked("alice", None, None)),
            Ok(false)
        );
        assert_eq!(
            must_change(ALICE, ALICE, &asked("alice", Some("alice"), None)),
            Ok(false)
        );
        let running = "running as uid 1000 without root privileges";
        assert_eq!(
            must_change(
                ALICE,
                Ids {
                    uid: 65534,
                    gid: 65534
                },
                &asked("nobody", None, None)
            ),
            Err(format!("{running}, the daemon can only be the user it is"))
        );
        assert_eq!(
            must_change(ALICE, other_primary, &asked("alice", Some("users"), None)),
            Err(format!("{running}, gid 1000 cannot become gid 100"))
        );
        assert_eq!(
            must_change(ALICE, ALICE, &asked("alice", None, Some("/var/empty"))),
            Err(format!("{running}, --chroot is not possible"))
        );
    }

    #[test]
    fn a_plan_says_what_it_does() {
        let plan = Plan {
            user: "nobody".into(),
            group: Some("nogroup".into()),
            ids: Ids {
                uid: 65534,
                gid: 65534,
            },
            chroot: Some(PathBuf::from("/var/empty")),
            change: true,
        };
        assert_eq!(
            plan.to_string(),
            "serving as user nobody (uid 65534), group nogroup (gid 65534), no \
             supplementary groups, root /var/empty"
        );
        let plan = Plan {
            group: None,
            chroot: None,
            ..plan
        };
        assert_eq!(
            plan.to_string(),
            "serving as user nobody (uid 65534), gid 65534, no supplementary groups"
        );
        let stay = Plan {
            change: false,
            ..plan
        };
        assert_eq!(
            stay.to_string(),
            "running as user nobody (uid 65534) already"
        );
        // Nothing to do: nothing is done.
        assert_eq!(stay.apply(), Ok(()));
    }
}
