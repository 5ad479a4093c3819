//! Landlock, where the kernel has it (5.13 on): a ruleset that handles every file system
//! access the kernel knows and grants none, so the process can no longer open, create,
//! execute or change any file, wherever it is and whoever it runs as. Unlike `--chroot`, it
//! needs no root and no empty directory, and it holds for descriptors that still point
//! outside a chroot. Best effort: where it is missing the seccomp filter still holds.

use std::io;

/// `LANDLOCK_CREATE_RULESET_VERSION`: asks the kernel's Landlock ABI version.
const CREATE_RULESET_VERSION: libc::c_uint = 1;

/// The file system rights of each ABI version (linux/landlock.h): version 1 has the first
/// 13, version 2 adds `REFER`, 3 `TRUNCATE`, 5 `IOCTL_DEV`.
fn handled_access_fs(abi: libc::c_long) -> u64 {
    let mut rights = (1 << 13) - 1;
    for (version, right) in [(2, 1 << 13), (3, 1 << 14), (5, 1 << 15)] {
        if abi >= version {
            rights |= right;
        }
    }
    rights
}

/// `LANDLOCK_RULE_PATH_BENEATH` and `LANDLOCK_ACCESS_FS_READ_FILE` (linux/landlock.h).
const RULE_PATH_BENEATH: libc::c_uint = 1;
const ACCESS_FS_READ_FILE: u64 = 1 << 2;

/// `struct landlock_path_beneath_attr`, packed as the kernel declares it.
#[repr(C, packed)]
struct PathBeneath {
    allowed_access: u64,
    parent_fd: i32,
}

/// Restricts the process (and any child) to no file system access but reading files beneath
/// the directories `dirs` (the access files'); returns the kernel's Landlock ABI version, or
/// why it could not. Needs `PR_SET_NO_NEW_PRIVS` first.
pub fn restrict(dirs: &[libc::c_int]) -> io::Result<libc::c_long> {
    // SAFETY: with a null attribute and the version flag the kernel only answers a number.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u64>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if abi < 0 {
        return Err(io::Error::last_os_error());
    }
    // struct landlock_ruleset_attr's first field; the kernel takes the shorter struct.
    let handled: u64 = handled_access_fs(abi);
    // SAFETY: a pointer to 8 readable bytes, and their size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &handled as *const u64,
            std::mem::size_of::<u64>(),
            0u32,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = fd as libc::c_int;
    for &dir in dirs {
        let rule = PathBeneath {
            allowed_access: ACCESS_FS_READ_FILE,
            parent_fd: dir,
        };
        // SAFETY: the ruleset made above, and a pointer to the rule, alive for the call.
        let added = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                fd,
                RULE_PATH_BENEATH,
                &rule as *const PathBeneath,
                0u32,
            )
        };
        if added != 0 {
            let error = io::Error::last_os_error();
            // SAFETY: closes the descriptor made above, used by nothing else.
            unsafe { libc::close(fd) };
            return Err(error);
        }
    }
    // SAFETY: the ruleset descriptor just made; no flags.
    let restricted = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) };
    let error = io::Error::last_os_error();
    // SAFETY: closes the descriptor made above, used by nothing else.
    unsafe { libc::close(fd) };
    if restricted != 0 {
        return Err(error);
    }
    Ok(abi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_abi_version_handles_its_rights() {
        assert_eq!(handled_access_fs(1), 0x1fff);
        assert_eq!(handled_access_fs(2), 0x3fff);
        assert_eq!(handled_access_fs(4), 0x7fff);
        assert_eq!(handled_access_fs(6), 0xffff);
    }
}
