//! The seccomp filter as classic BPF, built from an architecture's table (see
//! [`super::tables`]): the architecture is checked first, x86_64's x32 numbers are refused,
//! then each call of the table is one comparison with the call's number and, for the few
//! whose arguments are checked, a short block over the low 32 bits of one or two arguments.
//! Whatever is not in the table gets the default action.
//!
//! Every call the filter allows whatever its arguments is a constant answer, so kernels from
//! 5.11 on cache it per call number and never run the filter for it again: the loop's own
//! calls (`epoll_wait`, `accept4`, `read`, `sendmmsg`, ...) cost nothing more.

use libc::{sock_filter, BPF_ABS, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W};

use super::tables::{Kind, Table};
use crate::config::Sandbox;

/// x86_64's marker of an x32 call number (`__X32_SYSCALL_BIT`).
pub(crate) const X32_BIT: u32 = 0x4000_0000;

/// Where `seccomp_data` holds the call's number, the architecture and the arguments (each
/// 64 bits; the three architectures are little-endian, so an argument's low half is first).
const NR: u32 = 0;
const ARCH: u32 = 4;
fn arg_low(n: u32) -> u32 {
    16 + 8 * n
}

/// The file descriptor commands `fcntl` may run whatever their argument: `F_GETFD` (the
/// standard library checks a descriptor with it when it closes one, in debug builds) and
/// `F_GETFL`.
pub(crate) const FCNTL_COMMANDS: [u32; 2] = [libc::F_GETFD as u32, libc::F_GETFL as u32];

/// The flags `fcntl(F_SETFL)` may be given: `O_NONBLOCK` and the access mode (which
/// `F_SETFL` ignores), so that it only makes a socket non-blocking (the connection of a new
/// daemon taking over) or blocking; `O_APPEND`, `O_ASYNC`, `O_DIRECT` and `O_NOATIME` are
/// refused.
pub(crate) const SETFL_FLAGS: u32 = (libc::O_ACCMODE | libc::O_NONBLOCK) as u32;

/// The one option `getsockopt` may read, as (argument, value): level `SOL_SOCKET`, option
/// `SO_PEERCRED` (the same numbers on the three architectures).
pub(crate) const PEER_CRED: [(u32, u32); 2] =
    [(1, libc::SOL_SOCKET as u32), (2, libc::SO_PEERCRED as u32)];

/// The flags of `openat` a reload of an access file uses, and the only ones allowed.
pub(crate) const READ_FLAGS: u32 = (libc::O_RDONLY | libc::O_CLOEXEC) as u32;

/// What the filter answers a call outside the table with.
pub(crate) fn refusal(mode: Sandbox) -> u32 {
    match mode {
        // The SIGSYS handler writes the line, then the process dies of SIGSYS.
        Sandbox::Enforce => libc::SECCOMP_RET_TRAP,
        // The call goes through; the kernel logs it (audit type 1326, SECCOMP).
        Sandbox::Log => libc::SECCOMP_RET_LOG,
    }
}

/// The answer to a call that C libraries probe for and do without.
pub(crate) const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// The program for `table`, whose calls have the numbers `numbers` (in the table's order);
/// `pid` is this process's (signals only to itself).
/// `dirs` are the access files' directories, the only ones `openat` may open files in.
pub(crate) fn program(
    table: &Table,
    numbers: &[u32],
    mode: Sandbox,
    pid: u32,
    dirs: &[i32],
) -> Vec<sock_filter> {
    assert_eq!(table.calls().count(), numbers.len(), "one number a call");
    let refuse = refusal(mode);
    let mut p = Program(Vec::with_capacity(4 + 4 * numbers.len()));
    p.load(ARCH);
    p.jump(BPF_JEQ, table.audit, 1, 0);
    p.ret(refuse);
    p.load(NR);
    if table.x32 {
        p.jump(BPF_JSET, X32_BIT, 0, 1);
        p.ret(refuse);
    }
    for (call, &nr) in table.calls().zip(numbers) {
        match call.kind {
            Kind::Allow => {
                p.skip_unless_eq(nr, 1);
                p.ret(libc::SECCOMP_RET_ALLOW);
            }
            Kind::Enosys => {
                p.skip_unless_eq(nr, 1);
                p.ret(ENOSYS);
            }
            Kind::UnixSocket => p.arg_in(nr, 0, &[libc::AF_UNIX as u32], refuse),
            Kind::OwnPid => p.arg_in(nr, 0, &[pid], refuse),
            Kind::Fcntl => {
                // fcntl(fd, cmd, arg): the commands that only read, whatever `arg`, and
                // F_SETFL with no flag but SETFL_FLAGS.
                p.skip_unless_eq(nr, 2 * FCNTL_COMMANDS.len() + 6);
                p.load(arg_low(1));
                for &cmd in &FCNTL_COMMANDS {
                    p.skip_unless_eq(cmd, 1);
                    p.ret(libc::SECCOMP_RET_ALLOW);
                }
                p.skip_unless_eq(libc::F_SETFL as u32, 3);
                p.load(arg_low(2));
                p.jump(BPF_JSET, !SETFL_FLAGS, 1, 0);
                p.ret(libc::SECCOMP_RET_ALLOW);
                p.ret(refuse);
            }
            Kind::Fionbio => p.arg_in(nr, 1, &[libc::FIONBIO as u32], refuse),
            Kind::PeerCred => p.args_are(nr, &PEER_CRED, refuse),
            Kind::ReadBeneath => {
                // openat(dirfd, name, flags): only in the access files' directories, and
                // read-only.
                p.skip_unless_eq(nr, 5 + 2 * dirs.len());
                p.load(arg_low(2));
                p.jump(BPF_JEQ, READ_FLAGS, 1, 0);
                p.ret(refuse);
                p.load(arg_low(0));
                for &fd in dirs {
                    p.skip_unless_eq(fd as u32, 1);
                    p.ret(libc::SECCOMP_RET_ALLOW);
                }
                p.ret(refuse);
            }
            Kind::NoExec => {
                p.skip_unless_eq(nr, 4);
                p.load(arg_low(2));
                p.jump(BPF_JSET, libc::PROT_EXEC as u32, 0, 1);
                p.ret(refuse);
                p.ret(libc::SECCOMP_RET_ALLOW);
            }
        }
    }
    p.ret(refuse);
    p.0
}

struct Program(Vec<sock_filter>);

impl Program {
    fn load(&mut self, offset: u32) {
        self.0.push(sock_filter {
            code: (BPF_LD | BPF_W | BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: offset,
        });
    }

    fn jump(&mut self, op: u32, k: u32, jt: u8, jf: u8) {
        self.0.push(sock_filter {
            code: (BPF_JMP | op | BPF_K) as u16,
            jt,
            jf,
            k,
        });
    }

    /// Goes on when the accumulator is `k`, else skips the next `n` instructions.
    fn skip_unless_eq(&mut self, k: u32, n: usize) {
        let n = u8::try_from(n).expect("a short block");
        self.jump(BPF_JEQ, k, 0, n);
    }

    fn ret(&mut self, action: u32) {
        self.0.push(sock_filter {
            code: (BPF_RET | BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: action,
        });
    }

    /// Call `nr` is allowed when the low half of argument `arg` is one of `values`; with any
    /// other value it is refused.
    fn arg_in(&mut self, nr: u32, arg: u32, values: &[u32], refuse: u32) {
        self.skip_unless_eq(nr, 2 + 2 * values.len());
        self.load(arg_low(arg));
        for &v in values {
            self.skip_unless_eq(v, 1);
            self.ret(libc::SECCOMP_RET_ALLOW);
        }
        self.ret(refuse);
    }

    /// Call `nr` is allowed when the low half of each argument `arg` of `args` is its
    /// `value`; with any other value of one of them it is refused.
    fn args_are(&mut self, nr: u32, args: &[(u32, u32)], refuse: u32) {
        self.skip_unless_eq(nr, 2 * args.len() + 2);
        for (i, &(arg, value)) in args.iter().enumerate() {
            self.load(arg_low(arg));
            // A mismatch skips the checks left and the allow, to the refusal.
            let to_refusal = u8::try_from(2 * (args.len() - i - 1) + 1).expect("a short block");
            self.jump(BPF_JEQ, value, 0, to_refusal);
        }
        self.ret(libc::SECCOMP_RET_ALLOW);
        self.ret(refuse);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::os::sandbox::tables::{self, Table};

    /// A call as the filter sees it: `seccomp_data`'s number, architecture and arguments.
    pub(crate) struct Input {
        pub(crate) nr: u32,
        pub(crate) arch: u32,
        pub(crate) args: [u64; 6],
    }

    /// Runs a classic BPF program on `input` laid out as `seccomp_data`; the instructions a
    /// seccomp filter may use (absolute word loads, jumps on constants, returns) and no other.
    pub(crate) fn run(program: &[sock_filter], input: &Input) -> u32 {
        let mut data = Vec::with_capacity(64);
        data.extend_from_slice(&input.nr.to_le_bytes());
        data.extend_from_slice(&input.arch.to_le_bytes());
        data.extend_from_slice(&0u64.to_le_bytes());
        for a in input.args {
            data.extend_from_slice(&a.to_le_bytes());
        }
        let mut acc = 0u32;
        let mut pc = 0;
        loop {
            let i = program.get(pc).expect("the program ends in a return");
            pc += 1;
            match u32::from(i.code) {
                c if c == BPF_LD | BPF_W | BPF_ABS => {
                    let at = i.k as usize;
                    assert!(at.is_multiple_of(4) && at + 4 <= data.len(), "load at {at}");
                    acc = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
                }
                c if c == BPF_RET | BPF_K => return i.k,
                c if c & 0x07 == BPF_JMP => {
                    let taken = match c & 0xf0 {
                        op if op == BPF_JEQ => acc == i.k,
                        op if op == BPF_JSET => acc & i.k != 0,
                        op => panic!("jump {op:#x}"),
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                c => panic!("instruction {c:#x}"),
            }
        }
    }

    fn call(table: &Table, numbers: &[u32], name: &str) -> u32 {
        let at = table
            .calls()
            .position(|c| c.name() == name)
            .unwrap_or_else(|| panic!("{name} in {}", table.arch));
        numbers[at]
    }

    const PID: u32 = 4242;

    /// Each table's filter, on made-up calls of its own architecture and others.
    #[allow(clippy::unnecessary_cast)] // the ioctl numbers' type differs between targets
    fn check(table: &Table, numbers: &[u32]) {
        let p = program(table, numbers, Sandbox::Enforce, PID, &[]);
        let ask = |nr: u32, args: [u64; 6]| {
            run(
                &p,
                &Input {
                    nr,
                    arch: table.audit,
                    args,
                },
            )
        };
        let allow = libc::SECCOMP_RET_ALLOW;
        let trap = libc::SECCOMP_RET_TRAP;
        let nr = |name: &str| call(table, numbers, name);
        for (c, &n) in table.calls().zip(numbers) {
            if c.kind == Kind::Allow {
                assert_eq!(ask(n, [0; 6]), allow, "{} {}", table.arch, c.name());
            }
            if c.kind == Kind::Enosys {
                assert_eq!(ask(n, [0; 6]), ENOSYS, "{} {}", table.arch, c.name());
            }
        }
        assert_eq!(ask(nr("accept4"), [3, 0, 0, 0, 0, 0]), allow);
        assert_eq!(ask(nr("statx"), [0; 6]), ENOSYS);
        // Only AF_UNIX sockets: netlink and the internet families are refused.
        let socket = nr("socket");
        let af = |f: i32| [f as u64, libc::SOCK_DGRAM as u64, 0, 0, 0, 0];
        assert_eq!(ask(socket, af(libc::AF_UNIX)), allow);
        for family in [
            libc::AF_NETLINK,
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_PACKET,
        ] {
            assert_eq!(
                ask(socket, af(family)),
                trap,
                "{} family {family}",
                table.arch
            );
        }
        // Memory, never executable.
        let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        let rx = (libc::PROT_READ | libc::PROT_EXEC) as u64;
        for name in [table.mmap, "mprotect"] {
            assert_eq!(ask(nr(name), [0, 4096, rw, 0, 0, 0]), allow, "{name}");
            assert_eq!(ask(nr(name), [0, 4096, rx, 0, 0, 0]), trap, "{name}");
        }
        // Signals to itself only.
        assert_eq!(
            ask(nr("tgkill"), [PID as u64, PID as u64, 6, 0, 0, 0]),
            allow
        );
        assert_eq!(ask(nr("tgkill"), [1, 1, 9, 0, 0, 0]), trap);
        let fcntl = nr(table.fcntl);
        assert_eq!(ask(fcntl, [3, libc::F_GETFD as u64, 0, 0, 0, 0]), allow);
        assert_eq!(ask(fcntl, [3, libc::F_DUPFD as u64, 0, 0, 0, 0]), trap);
        // F_SETFL: the non-blocking flag (beside the access mode), and no other flag.
        let setfl = |flags: i32| ask(fcntl, [3, libc::F_SETFL as u64, flags as u64, 0, 0, 0]);
        assert_eq!(setfl(libc::O_RDWR | libc::O_NONBLOCK), allow);
        assert_eq!(setfl(libc::O_RDWR), allow);
        for flag in [
            libc::O_APPEND,
            libc::O_ASYNC,
            libc::O_DIRECT,
            libc::O_NOATIME,
        ] {
            assert_eq!(
                setfl(libc::O_RDWR | libc::O_NONBLOCK | flag),
                trap,
                "{} F_SETFL {flag:#o}",
                table.arch
            );
        }
        for cmd in [libc::F_SETFD, libc::F_SETOWN, libc::F_SETLK] {
            let nonblocking = libc::O_NONBLOCK as u64;
            assert_eq!(ask(fcntl, [3, cmd as u64, nonblocking, 0, 0, 0]), trap);
        }
        assert_eq!(
            ask(nr("ioctl"), [3, libc::FIONBIO as u64, 0, 0, 0, 0]),
            allow
        );
        assert_eq!(
            ask(nr("ioctl"), [3, libc::TIOCSTI as u64, 0, 0, 0, 0]),
            trap
        );
        // Whose peer a socket has, and no other option.
        let getsockopt = nr("getsockopt");
        let opt = |level: i32, name: i32| [5, level as u64, name as u64, 0, 0, 0];
        assert_eq!(
            ask(getsockopt, opt(libc::SOL_SOCKET, libc::SO_PEERCRED)),
            allow
        );
        for (level, name) in [
            (libc::SOL_SOCKET, libc::SO_ERROR),
            (libc::SOL_SOCKET, libc::SO_PEERSEC),
            (libc::IPPROTO_TCP, libc::SO_PEERCRED),
            (libc::IPPROTO_TCP, libc::TCP_INFO),
        ] {
            assert_eq!(
                ask(getsockopt, opt(level, name)),
                trap,
                "{} getsockopt({level}, {name})",
                table.arch
            );
        }
        // Calls the daemon never makes, by this architecture's numbers.
        for name in [
            "execve", "openat", "ptrace", "clone", "bind", "listen", "kill",
        ] {
            if let Some(n) = tables::tests::number_of(table, name) {
                assert_eq!(ask(n, [0; 6]), trap, "{} {name}", table.arch);
            }
        }
        // Another architecture's calls, whatever their number.
        for arch in [
            tables::X86_64.audit,
            tables::AARCH64.audit,
            tables::ARMV7.audit,
            0x4000_0003, // i386
        ] {
            if arch != table.audit {
                let input = Input {
                    nr: nr("read"),
                    arch,
                    args: [0; 6],
                };
                assert_eq!(run(&p, &input), trap, "{} as {arch:#x}", table.arch);
            }
        }
        // The log mode lets the same calls through, and only those.
        let log = program(table, numbers, Sandbox::Log, PID, &[]);
        let log_ask = |nr: u32, args: [u64; 6]| {
            run(
                &log,
                &Input {
                    nr,
                    arch: table.audit,
                    args,
                },
            )
        };
        assert_eq!(log_ask(nr("read"), [0; 6]), allow);
        assert_eq!(log_ask(socket, af(libc::AF_NETLINK)), libc::SECCOMP_RET_LOG);
        assert_eq!(log_ask(nr("statx"), [0; 6]), ENOSYS);
    }

    #[test]
    fn each_architectures_filter_allows_its_table_and_refuses_the_rest() {
        for (table, numbers) in tables::tests::every_table() {
            check(table, &numbers);
        }
    }

    #[test]
    fn x86_64_refuses_x32_numbers() {
        let (table, numbers) = tables::tests::every_table().remove(0);
        assert_eq!(table.arch, "x86_64");
        let p = program(table, &numbers, Sandbox::Enforce, PID, &[]);
        let read = call(table, &numbers, "read");
        let x32 = |nr| Input {
            nr,
            arch: table.audit,
            args: [0; 6],
        };
        assert_eq!(run(&p, &x32(read)), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run(&p, &x32(read | X32_BIT)), libc::SECCOMP_RET_TRAP);
    }

    #[test]
    fn openat_reads_beneath_the_access_files_directories_only() {
        for (table, numbers) in tables::tests::every_table() {
            let p = program(table, &numbers, Sandbox::Enforce, PID, &[7, 9]);
            let openat = call(table, &numbers, "openat");
            let ask = |dirfd: i32, flags: i32| {
                run(
                    &p,
                    &Input {
                        nr: openat,
                        arch: table.audit,
                        args: [dirfd as u64, 0, flags as u64, 0, 0, 0],
                    },
                )
            };
            let read = libc::O_RDONLY | libc::O_CLOEXEC;
            assert_eq!(ask(7, read), libc::SECCOMP_RET_ALLOW, "{}", table.arch);
            assert_eq!(ask(9, read), libc::SECCOMP_RET_ALLOW, "{}", table.arch);
            let trap = libc::SECCOMP_RET_TRAP;
            // Another descriptor, the working directory (an absolute path ignores the
            // descriptor, so AT_FDCWD is how one is opened), writing or creating: refused.
            assert_eq!(ask(8, read), trap, "{}", table.arch);
            assert_eq!(ask(libc::AT_FDCWD, read), trap, "{}", table.arch);
            assert_eq!(ask(7, libc::O_WRONLY | libc::O_CLOEXEC), trap);
            assert_eq!(ask(7, read | libc::O_CREAT), trap);
            // With no access file, no openat at all.
            let none = program(table, &numbers, Sandbox::Enforce, PID, &[]);
            let input = Input {
                nr: openat,
                arch: table.audit,
                args: [7, 0, read as u64, 0, 0, 0],
            };
            assert_eq!(run(&none, &input), trap, "{}", table.arch);
        }
    }
}
