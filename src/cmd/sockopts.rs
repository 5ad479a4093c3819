//! The `oneloop sockopts` table: the socket options this build can set or read, each with its
//! value on a fresh TCP and a fresh UDP socket and a one-line meaning, like the option table
//! in the Python socket tutorials (`setsockopt(level, optname, value)`).
//!
//! Every value is read the way the tutorial reads one, with `getsockopt(2)` by (level, name), so
//! the table is the kernel's own default on the machine it runs on. The sockets are fresh and
//! unconnected: IPv4 ones, except for `IPPROTO_IPV6` options, which only an IPv6 socket has.
//! An option the kernel will not give for a socket shows its errno, `n/a (EOPNOTSUPP)`, and
//! does not stop the table. `--json` prints the same as one JSON object.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::os::fd::{AsRawFd, RawFd};

use libc::{c_int, IPPROTO_IP, IPPROTO_IPV6, IPPROTO_TCP, SOL_SOCKET};
use socket2::{Domain, Socket, Type};

use crate::os::raw::{getsockopt, AnyBits};
use Kind::{Flag, Linger, Name, Number, SocketType, Timeval};

/// Which sockets the values are read on.
const SOCKETS: &str = "fresh, unconnected sockets: IPv4, but IPv6 for IPPROTO_IPV6 options";

/// How an option's value is laid out, and so how to show it.
#[derive(Clone, Copy)]
enum Kind {
    /// An `int` used as on/off.
    Flag,
    /// An `int` count (bytes, seconds, hops, ...).
    Number,
    /// A NUL-terminated name (an interface, an algorithm).
    Name,
    /// `struct linger`.
    Linger,
    /// `struct timeval`, shown in milliseconds.
    Timeval,
    /// `SOCK_STREAM`, `SOCK_DGRAM`, ...
    SocketType,
}

/// One row of the table.
struct SockOpt {
    level: c_int,
    name: &'static str,
    opt: c_int,
    kind: Kind,
    meaning: &'static str,
}

const fn row(
    level: c_int,
    name: &'static str,
    opt: c_int,
    kind: Kind,
    meaning: &'static str,
) -> SockOpt {
    SockOpt {
        level,
        name,
        opt,
        kind,
        meaning,
    }
}

#[rustfmt::skip]
const OPTIONS: &[SockOpt] = &[
    row(SOL_SOCKET, "SO_REUSEADDR", libc::SO_REUSEADDR, Flag, "bind an address at once, even while old connections on it are in TIME_WAIT"),
    row(SOL_SOCKET, "SO_REUSEPORT", libc::SO_REUSEPORT, Flag, "let several sockets bind one address and port; the kernel spreads the load"),
    row(SOL_SOCKET, "SO_KEEPALIVE", libc::SO_KEEPALIVE, Flag, "probe an idle TCP connection to find a peer that is gone"),
    row(SOL_SOCKET, "SO_BROADCAST", libc::SO_BROADCAST, Flag, "allow sending datagrams to a broadcast address"),
    row(SOL_SOCKET, "SO_DONTROUTE", libc::SO_DONTROUTE, Flag, "send only to hosts on a directly connected network, bypassing routes"),
    row(SOL_SOCKET, "SO_LINGER", libc::SO_LINGER, Linger, "what close() does with unsent data: off = return at once; on N = wait N s (0: reset)"),
    row(SOL_SOCKET, "SO_RCVBUF", libc::SO_RCVBUF, Number, "receive buffer in bytes (Linux doubles what is set, for its bookkeeping)"),
    row(SOL_SOCKET, "SO_SNDBUF", libc::SO_SNDBUF, Number, "send buffer in bytes (Linux doubles what is set, for its bookkeeping)"),
    row(SOL_SOCKET, "SO_RCVLOWAT", libc::SO_RCVLOWAT, Number, "bytes that must be waiting before a read is woken"),
    row(SOL_SOCKET, "SO_RCVTIMEO", libc::SO_RCVTIMEO, Timeval, "longest a blocking receive waits, in ms (0 = for ever)"),
    row(SOL_SOCKET, "SO_SNDTIMEO", libc::SO_SNDTIMEO, Timeval, "longest a blocking send waits, in ms (0 = for ever)"),
    row(SOL_SOCKET, "SO_OOBINLINE", libc::SO_OOBINLINE, Flag, "deliver TCP urgent (out-of-band) data in the normal stream"),
    row(SOL_SOCKET, "SO_PRIORITY", libc::SO_PRIORITY, Number, "queueing priority of outgoing packets (above 6 needs CAP_NET_ADMIN)"),
    row(SOL_SOCKET, "SO_MARK", libc::SO_MARK, Number, "firewall and routing mark of outgoing packets (setting needs CAP_NET_ADMIN)"),
    row(SOL_SOCKET, "SO_BINDTODEVICE", libc::SO_BINDTODEVICE, Name, "use only this network interface; empty = any"),
    row(SOL_SOCKET, "SO_TYPE", libc::SO_TYPE, SocketType, "the socket's type (read only)"),
    row(SOL_SOCKET, "SO_ERROR", libc::SO_ERROR, Number, "pending error number, cleared by reading it (read only)"),
    row(SOL_SOCKET, "SO_ACCEPTCONN", libc::SO_ACCEPTCONN, Flag, "whether the socket is listening (read only)"),
    row(IPPROTO_TCP, "TCP_NODELAY", libc::TCP_NODELAY, Flag, "send small segments at once instead of coalescing them (Nagle off)"),
    row(IPPROTO_TCP, "TCP_MAXSEG", libc::TCP_MAXSEG, Number, "largest segment payload to send, in bytes"),
    row(IPPROTO_TCP, "TCP_KEEPIDLE", libc::TCP_KEEPIDLE, Number, "keepalive: seconds idle before the first probe"),
    row(IPPROTO_TCP, "TCP_KEEPINTVL", libc::TCP_KEEPINTVL, Number, "keepalive: seconds between probes"),
    row(IPPROTO_TCP, "TCP_KEEPCNT", libc::TCP_KEEPCNT, Number, "keepalive: unanswered probes before the connection is dropped"),
    row(IPPROTO_TCP, "TCP_USER_TIMEOUT", libc::TCP_USER_TIMEOUT, Number, "ms sent data may go unacknowledged before the connection is dropped (0 = system default)"),
    row(IPPROTO_TCP, "TCP_QUICKACK", libc::TCP_QUICKACK, Flag, "acknowledge at once rather than delaying ACKs (reset by the kernel as it goes)"),
    row(IPPROTO_TCP, "TCP_CONGESTION", libc::TCP_CONGESTION, Name, "congestion control algorithm"),
    row(IPPROTO_IP, "IP_TTL", libc::IP_TTL, Number, "time to live (hop limit) of outgoing IPv4 packets"),
    row(IPPROTO_IP, "IP_TOS", libc::IP_TOS, Number, "type-of-service byte (DSCP and ECN) of outgoing IPv4 packets"),
    row(IPPROTO_IP, "IP_MULTICAST_TTL", libc::IP_MULTICAST_TTL, Number, "time to live of outgoing IPv4 multicast datagrams"),
    row(IPPROTO_IP, "IP_MULTICAST_LOOP", libc::IP_MULTICAST_LOOP, Flag, "deliver our own IPv4 multicast datagrams back to local listeners"),
    row(IPPROTO_IPV6, "IPV6_V6ONLY", libc::IPV6_V6ONLY, Flag, "IPv6 only: no IPv4-mapped peers on [::] (default from net.ipv6.bindv6only)"),
    row(IPPROTO_IPV6, "IPV6_UNICAST_HOPS", libc::IPV6_UNICAST_HOPS, Number, "hop limit of outgoing IPv6 packets"),
];

/// What one `getsockopt` gave.
enum Value {
    Flag(bool),
    Number(i64),
    Text(String),
    /// `SO_LINGER`: `None` when off, else the seconds `close()` waits.
    Linger(Option<i64>),
    /// The errno name when the kernel refused.
    Unavailable(String),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Flag(on) => (if *on { "on" } else { "off" }).to_string(),
            Value::Number(n) => n.to_string(),
            Value::Text(s) if s.is_empty() => "\"\"".to_string(),
            Value::Text(s) => s.clone(),
            Value::Linger(None) => "off".to_string(),
            Value::Linger(Some(secs)) => format!("on {secs} s"),
            Value::Unavailable(why) => format!("n/a ({why})"),
        }
    }

    fn json(&self) -> String {
        match self {
            Value::Flag(on) => on.to_string(),
            Value::Linger(None) => "false".to_string(),
            Value::Number(n) | Value::Linger(Some(n)) => n.to_string(),
            Value::Text(s) => json_string(s),
            Value::Unavailable(why) => format!("{{\"error\":{}}}", json_string(why)),
        }
    }
}

/// A fresh TCP and a fresh UDP socket of one address family.
struct Fresh {
    tcp: io::Result<Socket>,
    udp: io::Result<Socket>,
}

impl Fresh {
    fn new(domain: Domain) -> Self {
        Fresh {
            tcp: Socket::new(domain, Type::STREAM, None),
            udp: Socket::new(domain, Type::DGRAM, None),
        }
    }
}

/// Runs `oneloop sockopts ARGS`; returns the process exit code.
pub fn run_cli(args: Vec<OsString>) -> u8 {
    use lexopt::prelude::*;

    const USAGE: &str = "usage: oneloop sockopts [--json]\n\
        Lists the socket options this build can set or read, with their values on a fresh\n\
        TCP and a fresh UDP socket (IPv4; IPPROTO_IPV6 options on IPv6 sockets), and what\n\
        each one means.\n\
        \x20 --json      print one JSON object instead of the table\n\
        \x20 -h, --help  print this help\n";
    let mut json = false;
    let mut parser = lexopt::Parser::from_args(args);
    loop {
        match parser.next() {
            Ok(None) => break,
            Ok(Some(Long("json"))) => json = true,
            Ok(Some(Short('h') | Long("help"))) => return print_out(USAGE),
            Ok(Some(arg)) => return usage_error(arg.unexpected(), USAGE),
            Err(e) => return usage_error(e, USAGE),
        }
    }
    let (v4, v6) = (Fresh::new(Domain::IPV4), Fresh::new(Domain::IPV6));
    let rows = OPTIONS.iter().map(|opt| {
        let fresh = if opt.level == IPPROTO_IPV6 { &v6 } else { &v4 };
        (opt, read(opt, &fresh.tcp), read(opt, &fresh.udp))
    });
    let backlog = crate::server::default_backlog();
    print_out(&if json {
        json_table(rows, backlog)
    } else {
        text_table(rows, backlog)
    })
}

/// Writes `text` to stdout; returns the exit code: 0, or 1 when stdout is gone.
fn print_out(text: &str) -> u8 {
    match io::stdout().write_all(text.as_bytes()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("oneloop sockopts: cannot write to stdout: {e}");
            1
        }
    }
}

fn usage_error(e: lexopt::Error, usage: &str) -> u8 {
    eprint!("oneloop sockopts: {e}\n{usage}");
    2
}

type Row<'a> = (&'a SockOpt, Value, Value);

/// The listen backlog the daemon's listeners get without `--backlog`, and where it comes from.
type Backlog = (i32, String);

/// What the backlog line says after the number.
const BACKLOG_MEANING: &str = "connections the kernel queues for accept() on a listener";

fn text_table<'a>(rows: impl Iterator<Item = Row<'a>>, backlog: Backlog) -> String {
    let mut out = format!(
        "values on {SOCKETS}\n{:<13} {:<18} {:<18} {:<18} {}\n",
        "level", "option", "TCP", "UDP", "meaning"
    );
    for (opt, tcp, udp) in rows {
        let _ = writeln!(
            out,
            "{:<13} {:<18} {:<18} {:<18} {}",
            level_name(opt.level),
            opt.name,
            tcp.text(),
            udp.text(),
            opt.meaning
        );
    }
    let (value, from) = backlog;
    let _ = writeln!(
        out,
        "{:<13} {:<18} {:<37} {BACKLOG_MEANING} (the daemon's, without --backlog: {from})",
        "listen()", "backlog", value
    );
    out
}

fn json_table<'a>(rows: impl Iterator<Item = Row<'a>>, backlog: Backlog) -> String {
    let rows: Vec<String> = rows
        .map(|(opt, tcp, udp)| {
            format!(
                "    {{\"level\":\"{}\",\"name\":\"{}\",\"tcp\":{},\"udp\":{},\"meaning\":{}}}",
                level_name(opt.level),
                opt.name,
                tcp.json(),
                udp.json(),
                json_string(opt.meaning)
            )
        })
        .collect();
    let (value, from) = backlog;
    format!(
        "{{\n  \"sockets\":{},\n  \"options\":[\n{}\n  ],\n  \"listen_backlog\":{{\"value\":{value},\"from\":{},\"meaning\":{}}}\n}}\n",
        json_string(SOCKETS),
        rows.join(",\n"),
        json_string(&from),
        json_string(BACKLOG_MEANING)
    )
}

fn level_name(level: c_int) -> &'static str {
    match level {
        SOL_SOCKET => "SOL_SOCKET",
        IPPROTO_TCP => "IPPROTO_TCP",
        IPPROTO_IP => "IPPROTO_IP",
        _ => "IPPROTO_IPV6",
    }
}

const NO_LINGER: libc::linger = libc::linger {
    l_onoff: 0,
    l_linger: 0,
};
const ZERO_TIMEVAL: libc::timeval = libc::timeval {
    tv_sec: 0,
    tv_usec: 0,
};

/// `opt` of the socket `fd`, as the kernel sets it.
fn get<T: AnyBits>(fd: RawFd, opt: &SockOpt, value: T) -> io::Result<T> {
    getsockopt(fd, opt.level, opt.opt, value)
}

/// Reads one option from one socket, decoding it by its kind.
fn read(opt: &SockOpt, socket: &io::Result<Socket>) -> Value {
    let fd = match socket {
        Ok(socket) => socket.as_raw_fd(),
        Err(e) => return Value::Unavailable(errno_name(e)),
    };
    let value = match opt.kind {
        Flag => get::<c_int>(fd, opt, 0).map(|v| Value::Flag(v != 0)),
        Number => get::<c_int>(fd, opt, 0).map(|v| Value::Number(v.into())),
        SocketType => get::<c_int>(fd, opt, 0).map(|v| Value::Text(socket_type_name(v))),
        Name => get(fd, opt, [0u8; 64]).map(|bytes| {
            let name = bytes.split(|&b| b == 0).next().unwrap_or_default();
            Value::Text(String::from_utf8_lossy(name).into_owned())
        }),
        Linger => get(fd, opt, NO_LINGER)
            .map(|l| Value::Linger((l.l_onoff != 0).then_some(l.l_linger.into()))),
        Timeval => {
            get(fd, opt, ZERO_TIMEVAL).map(|tv| Value::Number(millis(tv.tv_sec, tv.tv_usec)))
        }
    };
    value.unwrap_or_else(|e| Value::Unavailable(errno_name(&e)))
}

/// The milliseconds in a `timeval` (its field types differ between targets).
fn millis(secs: impl Into<i64>, micros: impl Into<i64>) -> i64 {
    secs.into() * 1000 + micros.into() / 1000
}

fn socket_type_name(t: c_int) -> String {
    match t {
        libc::SOCK_STREAM => "SOCK_STREAM".into(),
        libc::SOCK_DGRAM => "SOCK_DGRAM".into(),
        libc::SOCK_RAW => "SOCK_RAW".into(),
        libc::SOCK_SEQPACKET => "SOCK_SEQPACKET".into(),
        other => other.to_string(),
    }
}

/// The errno's symbolic name for the errors getsockopt gives, its message otherwise.
fn errno_name(e: &io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::ENOPROTOOPT) => "ENOPROTOOPT",
        Some(libc::EOPNOTSUPP) => "EOPNOTSUPP",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::EPERM) => "EPERM",
        Some(libc::EACCES) => "EACCES",
        Some(libc::ENOTCONN) => "ENOTCONN",
        Some(libc::EAFNOSUPPORT) => "EAFNOSUPPORT",
        Some(libc::EPROTONOSUPPORT) => "EPROTONOSUPPORT",
        _ => return e.to_string(),
    };
    name.to_string()
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::json_string;

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json_string("a\"b\\c\n\u{1}é"), r#""a\"b\\c\u000a\u0001é""#);
    }
}
