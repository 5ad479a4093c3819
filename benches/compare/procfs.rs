//! What /proc says about an external server: the processes of its tree, their CPU time, and
//! whether its ports are bound. The parsing works on text, so it is tested on made-up files.

/// The fields of /proc/PID/stat this bench uses; times are in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    pub pid: u32,
    pub ppid: u32,
    pub pgrp: u32,
    /// User and system time of the process itself (all its threads).
    pub utime: u64,
    pub stime: u64,
    /// User and system time of its children that have ended and that it has waited for.
    pub cutime: u64,
    pub cstime: u64,
}

/// One /proc/PID/stat line. The command name (field 2) is in parentheses and may hold spaces
/// or parentheses itself, so the fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (head, rest) = text.rsplit_once(')')?;
    let pid = head.split_once(" (")?.0.trim().parse().ok()?;
    // rest starts with field 3 (state): ppid is field 4, pgrp 5, utime..cstime 14..17.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        pid,
        ppid: u32::try_from(field(4)?).ok()?,
        pgrp: u32::try_from(field(5)?).ok()?,
        utime: field(14)?,
        stime: field(15)?,
        cutime: field(16)?,
        cstime: field(17)?,
    })
}

/// The process tree of `root`: `root`, every process descended from it (through parent links),
/// and every process in its process group (a child that left the tree by daemonising stays in
/// the group).
pub fn tree(stats: &[Stat], root: u32) -> Vec<Stat> {
    let mut members: Vec<Stat> = stats
        .iter()
        .filter(|s| s.pid == root || s.pgrp == root)
        .copied()
        .collect();
    loop {
        let more: Vec<Stat> = stats
            .iter()
            .filter(|s| {
                members.iter().any(|m| m.pid == s.ppid) && !members.iter().any(|m| m.pid == s.pid)
            })
            .copied()
            .collect();
        if more.is_empty() {
            return members;
        }
        members.extend(more);
    }
}

/// User and system ticks of the tree of `root`: each member's own time plus that of its
/// children that ended and were waited for. A child that ended is counted once, in the parent
/// that waited for it; one that was reaped outside the tree is not counted.
pub fn tree_ticks(stats: &[Stat], root: u32) -> (u64, u64) {
    tree(stats, root).iter().fold((0, 0), |(u, s), p| {
        (u + p.utime + p.cutime, s + p.stime + p.cstime)
    })
}

/// Every process's stat now (those that end while being read are left out).
pub fn all_stats() -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let name = e.ok()?.file_name();
        name.to_str()?.parse::<u32>().ok()?;
        let text = std::fs::read_to_string(format!("/proc/{}/stat", name.to_str()?)).ok()?;
        parse_stat(&text)
    })
    .collect()
}

/// Whether a socket table of /proc/net (`tcp`, `tcp6`, `udp`, `udp6`) has local port `port`:
/// listening (state `0A`) when `listen`, bound in any state otherwise.
pub fn has_port(table: &str, port: u16, listen: bool) -> bool {
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = fields
            .get(1)
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        local_port == Some(port) && (!listen || fields.get(3) == Some(&"0A"))
    })
}

/// Whether something listens on TCP `port` (IPv4 or IPv6) in this network namespace.
pub fn tcp_listening(port: u16) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .any(|f| std::fs::read_to_string(f).is_ok_and(|t| has_port(&t, port, true)))
}

/// Whether a UDP socket is bound to `port` (IPv4 or IPv6) in this network namespace.
pub fn udp_bound(port: u16) -> bool {
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .any(|f| std::fs::read_to_string(f).is_ok_and(|t| has_port(&t, port, false)))
}
