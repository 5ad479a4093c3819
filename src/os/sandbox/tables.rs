//! The system calls the sandbox allows, one table per architecture (the calls the three
//! share, under the same names, and each one's own), each call named by the `libc` crate's
//! constant for it and marked with why it is there:
//! - `survey`: the loop makes it; `docs/sandbox-survey.txt` lists the calls the daemon made
//!   in every scenario of `scripts/sandbox-survey.sh` (glibc and musl, x86_64), and a test
//!   checks that this group and the survey name the same calls;
//! - `always`: allowed though no scenario shows it: the clock when the vDSO is missing
//!   (`clock_gettime`, `gettimeofday`, `time`, the `_time64` ones); what a panic needs to
//!   write its message and end the process (`write`, `writev`, `futex`, `rt_sigprocmask`,
//!   `rt_sigaction`, `gettid`, `tgkill`/`tkill` to itself, `exit`, `exit_group`,
//!   `sigaltstack`, `munmap`, `madvise`); what the allocator may do under a load the scenarios
//!   do not reach (`brk`, `mremap`, `mprotect` without `PROT_EXEC`); `getrandom`, which seeds
//!   the standard library's hash maps once (before the filter, in every scenario); what
//!   reconnecting to syslog needs (an `AF_UNIX` socket, `connect`, `ioctl(FIONBIO)`); and
//!   `restart_syscall`, the kernel's own for a call a signal interrupted;
//! - `probed`: calls C libraries try and do without; they fail with `ENOSYS`.
//!
//! The numbers are never typed: on the architecture the daemon is built for they are the
//! `libc` crate's `SYS_*` constants; the tests read the other architectures' numbers from the
//! `libc` crate's own source and run every table's filter (see `filter::tests`). 32-bit ARM's
//! `_time64` calls, which `libc` does not name for ARM, have the numbers every 32-bit
//! architecture shares (Linux 5.1's generic table), checked against `libc`'s 32-bit RISC-V
//! module, which names them.

/// How a call's arguments are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Allowed whatever its arguments.
    Allow,
    /// Fails with `ENOSYS`.
    Enosys,
    /// `socket`: `AF_UNIX` only (the syslog reconnect; the loop's other sockets come from
    /// `accept4` or were made before the filter).
    UnixSocket,
    /// `mmap`, `mprotect`: never `PROT_EXEC`.
    NoExec,
    /// `tgkill`, `tkill`: to this process only (a panic's abort).
    OwnPid,
    /// `fcntl`: `F_GETFD` and `F_GETFL`, and `F_SETFL` with `O_NONBLOCK` as its only flag.
    Fcntl,
    /// `ioctl`: `FIONBIO` only.
    Fionbio,
    /// `getsockopt`: `SOL_SOCKET`, `SO_PEERCRED` only (who connected to the handover
    /// socket).
    PeerCred,
    /// `openat`: read-only, relative to the access files' directories (a reload).
    ReadBeneath,
}

/// Why a call is in a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Why {
    Survey,
    Always,
    Probed,
}

/// One call of a table. The names and reasons are for the tests that check the tables; the
/// filter needs only the kind.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct Call {
    /// The constant's path as written: `libc :: SYS_read`.
    path: &'static str,
    pub(crate) kind: Kind,
    pub(crate) why: Why,
}

#[cfg_attr(not(test), allow(dead_code))]
impl Call {
    /// The call's name: `read`.
    pub(crate) fn name(&self) -> &'static str {
        let constant = self.path.rsplit(':').next().unwrap_or(self.path).trim();
        constant.strip_prefix("SYS_").unwrap_or(constant)
    }
}

/// An architecture's table.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) arch: &'static str,
    /// `seccomp_data.arch` for it (`AUDIT_ARCH_*`).
    pub(crate) audit: u32,
    /// Whether x32 numbers (x86_64's `__X32_SYSCALL_BIT`) are refused.
    pub(crate) x32: bool,
    /// The names of its `mmap` and `fcntl` (for the tests).
    pub(crate) mmap: &'static str,
    pub(crate) fcntl: &'static str,
    /// Its own calls; the common ones follow them.
    own: &'static [Call],
}

impl Table {
    /// Every call of the table: its own, then the common ones.
    pub(crate) fn calls(&self) -> impl Iterator<Item = &'static Call> {
        self.own.iter().chain(COMMON)
    }
}

/// `AUDIT_ARCH_*`: the ELF machine, 64-bit and little-endian flags (linux/audit.h).
const AUDIT_64BIT: u32 = 0x8000_0000;
const AUDIT_LE: u32 = 0x4000_0000;

/// Makes `const $calls: &[Call]` and, where `$cfg` holds, `$numbers`, the calls' numbers.
macro_rules! calls {
    (
        $calls:ident, $numbers:ident, cfg($($cfg:tt)*),
        $( $why:ident { $( $($seg:ident)::+ : $kind:ident ),* $(,)? } )*
    ) => {
        const $calls: &[Call] = &[ $( $( Call {
            path: stringify!($($seg)::+),
            kind: Kind::$kind,
            why: Why::$why,
        }, )* )* ];
        #[cfg($($cfg)*)]
        const $numbers: &[libc::c_long] = &[ $( $( $($seg)::+, )* )* ];
    };
}

// The calls every table has, under the same name on the three architectures.
calls! {
    COMMON, COMMON_NUMBERS,
    cfg(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm")),
    Survey {
        libc::SYS_epoll_pwait: Allow,
        libc::SYS_epoll_ctl: Allow,
        libc::SYS_accept4: Allow,
        libc::SYS_read: Allow,
        libc::SYS_write: Allow,
        libc::SYS_recvfrom: Allow,
        libc::SYS_sendto: Allow,
        libc::SYS_sendmsg: Allow,
        libc::SYS_recvmsg: Allow,
        libc::SYS_getsockopt: PeerCred,
        libc::SYS_getpid: Allow,
        libc::SYS_recvmmsg: Allow,
        libc::SYS_sendmmsg: Allow,
        libc::SYS_shutdown: Allow,
        libc::SYS_close: Allow,
        libc::SYS_munmap: Allow,
        libc::SYS_rt_sigreturn: Allow,
        libc::SYS_sigaltstack: Allow,
        libc::SYS_exit_group: Allow,
    }
    Always {
        libc::SYS_brk: Allow,
        libc::SYS_getrandom: Allow,
        libc::SYS_clock_gettime: Allow,
        libc::SYS_gettimeofday: Allow,
        libc::SYS_writev: Allow,
        libc::SYS_mprotect: NoExec,
        libc::SYS_mremap: Allow,
        libc::SYS_madvise: Allow,
        libc::SYS_futex: Allow,
        libc::SYS_rt_sigaction: Allow,
        libc::SYS_rt_sigprocmask: Allow,
        libc::SYS_gettid: Allow,
        libc::SYS_tgkill: OwnPid,
        libc::SYS_tkill: OwnPid,
        libc::SYS_exit: Allow,
        libc::SYS_restart_syscall: Allow,
        libc::SYS_socket: UnixSocket,
        libc::SYS_connect: Allow,
        libc::SYS_ioctl: Fionbio,
        libc::SYS_openat: ReadBeneath,
    }
    Probed {
        libc::SYS_statx: Enosys,
        libc::SYS_clone3: Enosys,
        libc::SYS_epoll_pwait2: Enosys,
        libc::SYS_faccessat2: Enosys,
        libc::SYS_openat2: Enosys,
    }
}

calls! {
    X86_64_OWN, X86_64_NUMBERS, cfg(target_arch = "x86_64"),
    Survey {
        libc::SYS_epoll_wait: Allow,
        libc::SYS_mmap: NoExec,
        libc::SYS_fcntl: Fcntl,
    }
    Always {
        libc::SYS_time: Allow,
        libc::SYS_fstat: Allow,
        libc::SYS_newfstatat: Allow,
    }
    Probed {
        libc::SYS_rseq: Enosys,
    }
}

calls! {
    AARCH64_OWN, AARCH64_NUMBERS, cfg(target_arch = "aarch64"),
    Survey {
        libc::SYS_mmap: NoExec,
        libc::SYS_fcntl: Fcntl,
    }
    Always {
        libc::SYS_fstat: Allow,
        libc::SYS_newfstatat: Allow,
    }
    Probed {
        libc::SYS_rseq: Enosys,
    }
}

/// The calls of 32-bit ARM that the `libc` crate names for glibc but not for musl: the
/// `_time64` ones (Linux 5.1's, one number on every 32-bit architecture; checked against
/// `libc`'s 32-bit RISC-V module) and `rseq` (checked against its glibc ARM module).
#[allow(non_upper_case_globals)] // named as `libc` names the others
#[cfg_attr(not(any(test, target_arch = "arm")), allow(dead_code))]
pub(crate) mod arm {
    pub(crate) const SYS_clock_gettime64: libc::c_long = 403;
    pub(crate) const SYS_clock_getres_time64: libc::c_long = 406;
    pub(crate) const SYS_recvmmsg_time64: libc::c_long = 417;
    pub(crate) const SYS_futex_time64: libc::c_long = 422;
    pub(crate) const SYS_rseq: libc::c_long = 398;
}

calls! {
    ARMV7_OWN, ARMV7_NUMBERS, cfg(target_arch = "arm"),
    Survey {
        libc::SYS_epoll_wait: Allow,
        libc::SYS_recv: Allow,
        libc::SYS_send: Allow,
        arm::SYS_recvmmsg_time64: Allow,
        libc::SYS_mmap2: NoExec,
        libc::SYS_sigreturn: Allow,
        libc::SYS_fcntl64: Fcntl,
    }
    Always {
        arm::SYS_clock_gettime64: Allow,
        libc::SYS_clock_getres: Allow,
        arm::SYS_clock_getres_time64: Allow,
        arm::SYS_futex_time64: Allow,
        libc::SYS_fstat64: Allow,
        libc::SYS_fstatat64: Allow,
    }
    Probed {
        arm::SYS_rseq: Enosys,
    }
}

pub(crate) const X86_64: Table = Table {
    arch: "x86_64",
    audit: libc::EM_X86_64 as u32 | AUDIT_64BIT | AUDIT_LE,
    x32: true,
    mmap: "mmap",
    fcntl: "fcntl",
    own: X86_64_OWN,
};

pub(crate) const AARCH64: Table = Table {
    arch: "aarch64",
    audit: libc::EM_AARCH64 as u32 | AUDIT_64BIT | AUDIT_LE,
    x32: false,
    mmap: "mmap",
    fcntl: "fcntl",
    own: AARCH64_OWN,
};

pub(crate) const ARMV7: Table = Table {
    arch: "arm",
    audit: libc::EM_ARM as u32 | AUDIT_LE,
    x32: false,
    mmap: "mmap2",
    fcntl: "fcntl64",
    own: ARMV7_OWN,
};

/// The table of the architecture the daemon is built for, with its numbers; `None` on the
/// others.
pub(crate) fn native() -> Option<(&'static Table, Vec<u32>)> {
    #[cfg(target_arch = "x86_64")]
    let found = Some((&X86_64, X86_64_NUMBERS));
    #[cfg(target_arch = "aarch64")]
    let found = Some((&AARCH64, AARCH64_NUMBERS));
    #[cfg(target_arch = "arm")]
    let found = Some((&ARMV7, ARMV7_NUMBERS));
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm")))]
    let found: Option<(&Table, &[libc::c_long])> = None;
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm"))]
    let common = COMMON_NUMBERS;
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm")))]
    let common: &[libc::c_long] = &[];
    found.map(|(table, own)| (table, own.iter().chain(common).map(|&n| n as u32).collect()))
}

/// The architecture's name for `audit`, a `seccomp_data.arch` value (for the SIGSYS line).
pub(crate) fn arch_name(audit: u32) -> &'static str {
    [&X86_64, &AARCH64, &ARMV7]
        .iter()
        .find(|t| t.audit == audit)
        .map_or("another architecture", |t| t.arch)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;

    /// The `libc` crate's source, the version `Cargo.lock` holds, in cargo's registry.
    fn libc_source() -> PathBuf {
        let root = env!("CARGO_MANIFEST_DIR");
        let lock = std::fs::read_to_string(format!("{root}/Cargo.lock")).expect("Cargo.lock");
        let version = lock
            .split("[[package]]")
            .find(|p| p.contains("name = \"libc\""))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .expect("libc in Cargo.lock")
            .trim_matches('"')
            .to_string();
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo")
            });
        let registry = home.join("registry/src");
        std::fs::read_dir(&registry)
            .unwrap_or_else(|e| panic!("{}: {e}", registry.display()))
            .map(|d| {
                d.expect("registry entry")
                    .path()
                    .join(format!("libc-{version}"))
            })
            .find(|p| p.is_dir())
            .unwrap_or_else(|| panic!("libc-{version} under {}", registry.display()))
    }

    /// The `SYS_name = number` constants of one of `libc`'s architecture modules.
    fn numbers_in(module: &str) -> BTreeMap<String, u32> {
        let path = libc_source().join("src/unix/linux_like/linux").join(module);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.lines()
            .filter_map(|l| {
                let rest = l.trim().strip_prefix("pub const SYS_")?;
                let (name, value) = rest.split_once(": c_long = ")?;
                let value = value.strip_suffix(';')?.parse().ok()?;
                Some((name.to_string(), value))
            })
            .collect()
    }

    /// Each architecture's glibc and musl modules in `libc`.
    fn modules(table: &Table) -> [&'static str; 2] {
        match table.arch {
            "x86_64" => ["gnu/b64/x86_64/not_x32.rs", "musl/b64/x86_64/mod.rs"],
            "aarch64" => ["gnu/b64/aarch64/mod.rs", "musl/b64/aarch64/mod.rs"],
            "arm" => ["gnu/b32/arm/mod.rs", "musl/b32/arm/mod.rs"],
            other => panic!("{other}"),
        }
    }

    /// The number of call `name` on the table's architecture, from `libc`'s source.
    pub(crate) fn number_of(table: &Table, name: &str) -> Option<u32> {
        let found = numbers_in(modules(table)[0]).get(name).copied();
        found.or_else(|| {
            (table.arch == "arm")
                .then(|| numbers_in("musl/b32/riscv32/mod.rs").get(name).copied())
                .flatten()
        })
    }

    /// Every table with its numbers read from `libc`'s source.
    pub(crate) fn every_table() -> Vec<(&'static Table, Vec<u32>)> {
        [&X86_64, &AARCH64, &ARMV7]
            .into_iter()
            .map(|t| {
                let numbers = t
                    .calls()
                    .map(|c| {
                        number_of(t, c.name()).unwrap_or_else(|| panic!("{} {}", t.arch, c.name()))
                    })
                    .collect();
                (t, numbers)
            })
            .collect()
    }

    #[test]
    fn the_compiled_numbers_are_libcs_source_numbers() {
        let (table, numbers) = native().expect("a table for this architecture");
        let read = every_table()
            .into_iter()
            .find(|(t, _)| t.arch == table.arch)
            .expect("the native table")
            .1;
        assert_eq!(numbers, read);
    }

    #[test]
    fn glibc_and_musl_number_the_calls_alike() {
        for (table, numbers) in every_table() {
            let musl = numbers_in(modules(table)[1]);
            for (c, n) in table.calls().zip(numbers) {
                if let Some(&m) = musl.get(c.name()) {
                    assert_eq!(m, n, "{} {}", table.arch, c.name());
                }
            }
        }
    }

    #[test]
    fn the_arm_numbers_are_libcs() {
        let riscv32 = numbers_in("musl/b32/riscv32/mod.rs");
        for (name, n) in [
            ("clock_gettime64", arm::SYS_clock_gettime64),
            ("clock_getres_time64", arm::SYS_clock_getres_time64),
            ("recvmmsg_time64", arm::SYS_recvmmsg_time64),
            ("futex_time64", arm::SYS_futex_time64),
        ] {
            assert_eq!(riscv32.get(name), Some(&(n as u32)), "{name}");
        }
        let glibc_arm = numbers_in("gnu/b32/arm/mod.rs");
        assert_eq!(glibc_arm.get("rseq"), Some(&(arm::SYS_rseq as u32)));
    }

    /// The survey (`docs/sandbox-survey.txt`, or the file `ONELOOP_SURVEY` names, which
    /// `scripts/sandbox-survey.sh --check` has just made) and x86_64's table: every call
    /// surveyed is in the table, and every call of its `Survey` group was surveyed.
    #[test]
    fn the_survey_and_the_table_agree() {
        let path = std::env::var_os("ONELOOP_SURVEY").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/sandbox-survey.txt"),
            PathBuf::from,
        );
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut surveyed = BTreeSet::new();
        for libc in ["glibc", "musl"] {
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix(libc)?.strip_prefix(": "))
                .unwrap_or_else(|| panic!("no {libc} line in {}", path.display()));
            surveyed.extend(line.split_whitespace());
        }
        let table: BTreeMap<_, _> = X86_64.calls().map(|c| (c.name(), c.why)).collect();
        for call in &surveyed {
            assert!(
                table.contains_key(call),
                "the daemon makes {call}, which the table does not allow"
            );
        }
        for (call, why) in &table {
            assert!(
                *why != Why::Survey || surveyed.contains(call),
                "{call} is in the table's survey group, but no scenario made it"
            );
        }
    }

    #[test]
    fn a_call_is_in_a_table_once() {
        for t in [&X86_64, &AARCH64, &ARMV7] {
            let mut seen = BTreeSet::new();
            for c in t.calls() {
                assert!(seen.insert(c.name()), "{} {} twice", t.arch, c.name());
            }
        }
    }

    /// The other architectures' tables are x86_64's, by the names each gives the calls.
    #[test]
    fn the_other_tables_are_x86_64s_under_their_names() {
        let renamed = BTreeMap::from([
            ("epoll_wait", "on aarch64, epoll_pwait"),
            ("time", "on aarch64 and ARM, clock_gettime"),
            ("mmap", "on ARM, mmap2"),
            ("fcntl", "on ARM, fcntl64"),
            ("fstat", "on ARM, fstat64"),
            ("newfstatat", "on ARM, fstatat64"),
        ]);
        let arm_only = [
            "recv",
            "send",
            "sigreturn",
            "mmap2",
            "fcntl64",
            "clock_getres",
            "fstat64",
            "fstatat64",
        ];
        let x86: BTreeMap<_, _> = X86_64.calls().map(|c| (c.name(), c)).collect();
        for t in [&AARCH64, &ARMV7] {
            for c in t.calls() {
                let name = c.name();
                let base = name.strip_suffix("_time64").unwrap_or(name);
                let base = base
                    .strip_suffix("64")
                    .filter(|_| name == "clock_gettime64");
                let base = base.unwrap_or(name.strip_suffix("_time64").unwrap_or(name));
                match x86.get(base) {
                    Some(x) => assert_eq!((x.kind, x.why), (c.kind, c.why), "{} {name}", t.arch),
                    None => assert!(
                        t.arch == "arm" && arm_only.contains(&base),
                        "{} {name} is not in x86_64's table",
                        t.arch
                    ),
                }
            }
            for (name, c) in &x86 {
                let there = t.calls().any(|o| o.name() == *name);
                assert!(
                    there || renamed.contains_key(name) || c.why == Why::Probed,
                    "{name} is missing on {}",
                    t.arch
                );
            }
        }
    }
}
