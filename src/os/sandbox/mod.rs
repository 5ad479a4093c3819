//! `--sandbox`: once the daemon serves, it can make only the system calls its loop makes.
//!
//! [`install`] is the last step of start-up, after every socket is bound, the files the
//! daemon needs are open and the privileges are dropped. It sets `PR_SET_NO_NEW_PRIVS`,
//! restricts the file system with Landlock where the kernel has it ([`landlock`], best
//! effort), and installs a seccomp filter ([`filter`]) built from the table of the
//! architecture the daemon runs on ([`tables`]). A call outside the table gets the refusal:
//! with `--sandbox`, `SIGSYS`, whose handler writes one line naming the call's number and
//! architecture to the log and lets the signal end the process; with `--sandbox=log`, the
//! call goes through and the kernel logs it (audit record type 1326, `SECCOMP`, in the
//! kernel's log: `dmesg`, `journalctl -k`), each time it is made.
//!
//! The only file opened after start-up is an access file on `SIGHUP`, relative to its
//! directory's descriptor, opened before the filter: `openat` is allowed with argument 0 one
//! of those descriptors and argument 2 exactly `O_RDONLY|O_CLOEXEC` (no `openat` at all when
//! there is no access file), and `open` is not. Since a filter cannot read the path (an
//! absolute one ignores the descriptor), Landlock's read-only rule for those directories
//! keeps the path beneath them.

pub(crate) mod filter;
pub mod landlock;
pub(crate) mod tables;

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use crate::config::Sandbox;
use crate::os::sockets::reason;

/// A step of the installation that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxError {
    pub step: &'static str,
    pub reason: String,
}

/// `cannot install the sandbox: install the seccomp filter: invalid argument (...)`.
impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot install the sandbox: {}: {}",
            self.step, self.reason
        )
    }
}

impl std::error::Error for SandboxError {}

/// What [`install`] did, for the log.
#[derive(Debug)]
pub struct Installed {
    mode: Sandbox,
    arch: &'static str,
    /// The calls allowed, and those answered with `ENOSYS`.
    allowed: usize,
    enosys: usize,
    instructions: usize,
    /// The Landlock ABI version, or why there is no Landlock.
    landlock: Result<libc::c_long, String>,
    /// The access files' directories, beneath which files may still be read.
    dirs: usize,
}

/// `sandbox: 45 system calls allowed, 6 answered ENOSYS (x86_64), a filter of 145
/// instructions; Landlock ABI 7: no file system access`.
impl fmt::Display for Installed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sandbox: {} system calls allowed, {} answered ENOSYS ({}), a filter of {} \
             instructions; ",
            self.allowed, self.enosys, self.arch, self.instructions
        )?;
        match &self.landlock {
            Ok(abi) if self.dirs == 0 => write!(f, "Landlock ABI {abi}: no file system access")?,
            Ok(abi) => write!(
                f,
                "Landlock ABI {abi}: no file system access but reading in {} access-file director{}",
                self.dirs,
                if self.dirs == 1 { "y" } else { "ies" }
            )?,
            Err(why) => write!(f, "no Landlock ({why}): the filter alone")?,
        }
        if self.mode == Sandbox::Log {
            write!(
                f,
                "; log mode: any other call goes through and the kernel logs it \
                 (type=1326 in dmesg or journalctl -k)"
            )?;
        }
        Ok(())
    }
}

/// Where the SIGSYS handler writes its line, and how the line starts (the log's style).
static LOG_FD: AtomicI32 = AtomicI32::new(libc::STDERR_FILENO);
static LOG_PREFIX: OnceLock<Vec<u8>> = OnceLock::new();

/// Installs the sandbox in `mode`. `log_fd` and `log_prefix` are where the line of a refused
/// call goes and how it starts (`ERROR `, `<3>ERROR `, a syslog header). Any failure but
/// Landlock's is an error: the daemon must not serve without the filter it was asked for.
pub fn install(
    mode: Sandbox,
    log_fd: RawFd,
    log_prefix: &[u8],
    dirs: &[RawFd],
) -> Result<Installed, SandboxError> {
    let (table, numbers) = tables::native().ok_or(SandboxError {
        step: "choose the system call table",
        reason: "there is none for this architecture".into(),
    })?;
    // SAFETY: getpid cannot fail.
    let pid = unsafe { libc::getpid() } as u32;
    let program = filter::program(table, &numbers, mode, pid, dirs);
    let probed = table
        .calls()
        .filter(|c| c.kind == tables::Kind::Enosys)
        .count();
    if mode == Sandbox::Enforce {
        LOG_FD.store(log_fd, Ordering::Relaxed);
        let _ = LOG_PREFIX.set(log_prefix.to_vec());
        on_sigsys_write_and_die().map_err(|e| SandboxError {
            step: "set the SIGSYS handler",
            reason: reason(&e),
        })?;
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(SandboxError {
            step: "set no_new_privs",
            reason: reason(&io::Error::last_os_error()),
        });
    }
    // In log mode nothing may fail that would not fail without the sandbox: no Landlock.
    let landlock = match mode {
        Sandbox::Enforce => landlock::restrict(dirs).map_err(|e| reason(&e)),
        Sandbox::Log => Err("not in log mode".into()),
    };
    let prog = libc::sock_fprog {
        len: u16::try_from(program.len()).expect("a filter under 65536 instructions"),
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `program`, alive for both calls; the kernel copies it.
    // seccomp(2) first; prctl where it is missing or refused (kernels before 3.17, a service
    // manager's filter that allows prctl but not seccomp).
    let done = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0u32,
            &prog as *const libc::sock_fprog,
        ) == 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            ) == 0
    };
    if !done {
        let e = io::Error::last_os_error();
        let why = match e.raw_os_error() {
            Some(libc::ENOSYS | libc::EINVAL) => format!(
                "{} (the kernel, or an emulator such as qemu-user, takes no seccomp filter)",
                reason(&e)
            ),
            _ => reason(&e),
        };
        return Err(SandboxError {
            step: "install the seccomp filter",
            reason: why,
        });
    }
    Ok(Installed {
        dirs: dirs.len(),
        mode,
        arch: table.arch,
        allowed: numbers.len() - probed,
        enosys: probed,
        instructions: program.len(),
        landlock,
    })
}

/// `siginfo_t` as the kernel fills it for SIGSYS (`_sigsys`: the address of the call, its
/// number and the architecture), after the three ints every `siginfo_t` starts with.
#[repr(C)]
struct SigSys {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    call_addr: *mut libc::c_void,
    syscall: libc::c_int,
    arch: libc::c_uint,
}

fn on_sigsys_write_and_die() -> io::Result<()> {
    // SAFETY: a zeroed sigaction is valid; the handler is an extern "C" fn with the
    // SA_SIGINFO signature.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigsys as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A line made without allocating (a signal handler may not).
struct Line {
    bytes: [u8; 256],
    len: usize,
}

impl Line {
    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    fn number(&mut self, n: i64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut v = n.unsigned_abs();
        loop {
            at -= 1;
            digits[at] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        if n < 0 {
            self.push(b"-");
        }
        self.push(&digits[at..]);
    }
}

/// The line of a refused call: `sandbox: system call 59 (x86_64) is not allowed: the process
/// ends (SIGSYS)`.
fn refusal_line(prefix: &[u8], nr: i64, arch: u32) -> Line {
    let mut line = Line {
        bytes: [0; 256],
        len: 0,
    };
    line.push(prefix);
    line.push(b"sandbox: system call ");
    line.number(nr);
    line.push(b" (");
    line.push(tables::arch_name(arch).as_bytes());
    line.push(b") is not allowed: the process ends (SIGSYS)\n");
    line
}

/// Writes the line, puts back SIGSYS's default action and raises it: when the handler
/// returns, the process dies of SIGSYS. Only `write`, `rt_sigaction` and what `raise` makes
/// (`rt_sigprocmask`, `getpid`, `gettid`, `tgkill` or `tkill`): all allowed.
extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: for SIGSYS from seccomp the kernel fills the `_sigsys` fields SigSys names.
    let (nr, arch) = unsafe {
        let s = &*(info as *const SigSys);
        (i64::from(s.syscall), s.arch)
    };
    let prefix = LOG_PREFIX.get().map_or(&[][..], Vec::as_slice);
    let line = refusal_line(prefix, nr, arch);
    // SAFETY: write from a live buffer; sigaction with a zeroed (SIG_DFL) action; raise.
    unsafe {
        libc::write(
            LOG_FD.load(Ordering::Relaxed),
            line.bytes.as_ptr().cast(),
            line.len,
        );
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGSYS, &default, std::ptr::null_mut());
        libc::raise(libc::SIGSYS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_line_names_the_call_and_the_architecture() {
        let line = refusal_line(b"<3>ERROR ", 59, tables::X86_64.audit);
        assert_eq!(
            std::str::from_utf8(&line.bytes[..line.len]).unwrap(),
            "<3>ERROR sandbox: system call 59 (x86_64) is not allowed: the process ends (SIGSYS)\n"
        );
        let line = refusal_line(b"", -1, 0x4000_0003);
        assert!(std::str::from_utf8(&line.bytes[..line.len])
            .unwrap()
            .starts_with("sandbox: system call -1 (another architecture)"));
    }
}
