//! Blocking clients for every service (`oneloop client ...`).
//!
//! These are the clients of the classic Python socket tutorials the services come from (docs/learn/seeds.md), one per service, written with plain blocking
//! `std::net` sockets: each one connects, says what its protocol says, prints what comes back
//! and checks it. They are the other half of every lesson the daemon teaches, and small enough
//! to read in one sitting. They share no protocol code with the daemon (only the `Epoch`
//! name, the 1900 offset and the escaping of bytes shown in messages), so a test that passes
//! with a client and the daemon shows both speak the protocol.
//!
//! | client | sends | prints | succeeds when |
//! |---|---|---|---|
//! | `count ADDR [LINE]` | LINE and LF (one line of stdin without LINE), after the prompt | what the server writes: up to 64 KiB to the prompt, up to 64 KiB after the line | the reply is `You entered N characters.` |
//! | `ack ADDR MESSAGE` | MESSAGE, then half-closes | everything until EOF | the reply contains `I get it!` |
//! | `echo ADDR MESSAGE [--udp]` | MESSAGE (half-closes on TCP) | the bytes that came back | they are the bytes sent |
//! | `time ADDR [--tcp] [--epoch unix\|1900]` | an empty datagram (nothing on TCP) | `2026-11-21T05:49:47Z (1795240187 s since 1970)` | the reply is 4 bytes (TCP: read to EOF, at most 64 KiB) |
//! | `raw ADDR [--send TEXT]` | TEXT with `\r \n \t \\ \xHH` escapes, then half-closes | everything until EOF | the server closes cleanly |
//!
//! Every wait is bounded by `--timeout SECS` (default 5): the connect, each read or write, each
//! UDP try. UDP loses packets, so the UDP clients send up to `--tries N` times (default 3).
//! `--deadline SECS` (default none) bounds all of them together, counted from the start: each
//! wait is cut to what is left of it, so a server that trickles a byte just inside every
//! timeout is still cut off. `count` does not count the wait for a line on stdin; name
//! resolution counts, but is the system resolver's and is not cut short. There is no default
//! deadline, because `raw`, `ack` and `echo` may rightly stream for long.
//! ADDR is `HOST:PORT`; a name is resolved and each of its addresses is tried in turn.
//!
//! What a server may send is bounded where the protocol bounds it: `count` takes at most
//! 64 KiB of welcome and prompt, then at most 64 KiB of reply, printing the bytes up to the
//! bound as they come; TCP `time` reads at most 64 KiB. Past a bound the client stops reading
//! and fails (exit 1); the error of a bad `time` reply shows its first 64 bytes, escaped.
//! `echo` over TCP stops one byte past the length of what it sent. `raw` and `ack` print
//! whatever comes until EOF, as `nc` does.
//!
//! Exit codes: 0 success; 1 the server answered, but not as the protocol says (an `Error:`
//! message, a different echo, `reply error N`, more than a bound); 2 usage error; 3 network or
//! I/O error (cannot resolve, refused, reset, timed out, deadline passed, no UDP reply, stdin or
//! stdout failed).

mod clients;
mod net;
mod text;

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::time::Duration;

use lexopt::ValueExt;

use crate::config::ranges::{Number, Range};
use crate::proto::Epoch;
use net::Waits;

/// Why a client failed; each kind has its own exit code.
#[derive(Debug)]
enum Failure {
    /// The server answered, but not as the protocol says (exit 1).
    BadReply(String),
    /// The command line is wrong (exit 2).
    Usage(String),
    /// Resolving, connecting, sending or receiving failed, or stdin or stdout did (exit 3).
    Io(String),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::BadReply(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Io(_) => 3,
        }
    }
}

impl From<lexopt::Error> for Failure {
    fn from(e: lexopt::Error) -> Self {
        Failure::Usage(e.to_string())
    }
}

/// The clients, by the name of the service they talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    Count,
    Ack,
    Echo,
    Time,
    Raw,
}

impl Client {
    const ALL: [Client; 5] = [
        Client::Count,
        Client::Ack,
        Client::Echo,
        Client::Time,
        Client::Raw,
    ];

    fn name(self) -> &'static str {
        match self {
            Client::Count => "count",
            Client::Ack => "ack",
            Client::Echo => "echo",
            Client::Time => "time",
            Client::Raw => "raw",
        }
    }

    /// The arguments after the client's name, and what the client does.
    fn synopsis(self) -> (&'static str, &'static str) {
        match self {
            Client::Count => (
                "ADDR [LINE]",
                "send LINE (else one line of stdin) to a count server; print its replies",
            ),
            Client::Ack => (
                "ADDR MESSAGE",
                "send MESSAGE, half-close, print the reply until EOF",
            ),
            Client::Echo => (
                "ADDR MESSAGE [--udp] [--tries N]",
                "check that MESSAGE comes back unchanged",
            ),
            Client::Time => (
                "ADDR [--tcp] [--epoch unix|1900] [--tries N]",
                "ask for the time (UDP: an empty datagram) and print it in UTC",
            ),
            Client::Raw => (
                "ADDR [--send TEXT]",
                "send TEXT (escapes \\r \\n \\t \\\\ \\xHH), half-close, print until EOF",
            ),
        }
    }

    /// Whether the client speaks UDP (and so takes `--tries`).
    fn may_use_udp(self) -> bool {
        matches!(self, Client::Echo | Client::Time)
    }
}

/// What every client needs: where to go and how long to wait.
struct Target {
    addr: String,
    waits: Waits,
    tries: u32,
}

/// What one client run sends.
enum Request {
    Count { line: Option<Vec<u8>> },
    Ack { message: Vec<u8> },
    Echo { message: Vec<u8>, udp: bool },
    Time { tcp: bool, epoch: Epoch },
    Raw { send: Vec<u8> },
}

enum Command {
    Help(Option<Client>),
    Run(Target, Request),
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_TRIES: u32 = 3;
/// The range of `--timeout` and `--deadline`, in seconds: a millisecond to a day.
const SECONDS: Range<Duration> = Range {
    min: Duration::from_millis(1),
    max: Duration::from_secs(86_400),
    unit: "s",
};
/// The most `--tries`: with the default timeout, a wait of about 8 minutes.
const TRIES: Range<u32> = Range {
    min: 1,
    max: 100,
    unit: "",
};

/// Runs `oneloop client ARGS`; returns the process exit code.
pub fn run_cli(args: Vec<OsString>) -> u8 {
    let result = parse(args).and_then(|command| match command {
        Command::Help(client) => net::write_out(&mut io::stdout(), help(client).as_bytes()),
        Command::Run(target, request) => clients::run(&target, request),
    });
    match result {
        Ok(()) => 0,
        Err(failure) => {
            match &failure {
                Failure::Usage(why) => {
                    eprintln!("oneloop client: {why} (see `oneloop client --help`)")
                }
                Failure::BadReply(why) | Failure::Io(why) => eprintln!("oneloop client: {why}"),
            }
            failure.exit_code()
        }
    }
}

fn parse(args: Vec<OsString>) -> Result<Command, Failure> {
    use lexopt::prelude::*;

    let mut parser = lexopt::Parser::from_args(args);
    let client = match parser.next()? {
        Some(Short('h') | Long("help")) => return Ok(Command::Help(None)),
        Some(Value(name)) => Client::ALL
            .into_iter()
            .find(|c| name == c.name())
            .ok_or_else(|| Failure::Usage(format!("unknown client {name:?}")))?,
        Some(other) => return Err(other.unexpected().into()),
        None => {
            return Err(Failure::Usage(
                "which client? count, ack, echo, time or raw".into(),
            ))
        }
    };

    let (mut timeout, mut deadline, mut tries) = (DEFAULT_TIMEOUT, None, DEFAULT_TRIES);
    let (mut udp, mut tcp, mut epoch, mut send) = (false, false, Epoch::Unix, Vec::new());
    let mut positional = Vec::new();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help(Some(client))),
            Long("timeout") => timeout = number(&SECONDS, "--timeout", &mut parser)?,
            Long("deadline") => deadline = Some(number(&SECONDS, "--deadline", &mut parser)?),
            Long("tries") if client.may_use_udp() => {
                tries = number(&TRIES, "--tries", &mut parser)?
            }
            Long("udp") if client == Client::Echo => udp = true,
            Long("tcp") if client == Client::Time => tcp = true,
            Long("epoch") if client == Client::Time => {
                let value = parser.value()?.string()?;
                epoch = Epoch::parse(&value).ok_or_else(|| {
                    Failure::Usage(format!("--epoch is unix or 1900, not {value:?}"))
                })?
            }
            Long("send") if client == Client::Raw => {
                send = text::unescape(&parser.value()?.string()?).map_err(Failure::Usage)?
            }
            Value(value) => positional.push(value.into_vec()),
            _ => return Err(arg.unexpected().into()),
        }
    }

    let mut positional = positional.into_iter();
    let addr = positional
        .next()
        .ok_or_else(|| Failure::Usage(format!("{}: missing ADDR", client.name())))?;
    let addr =
        String::from_utf8(addr).map_err(|_| Failure::Usage("ADDR is not valid UTF-8".into()))?;
    let mut message = || {
        positional
            .next()
            .ok_or_else(|| Failure::Usage(format!("{}: missing MESSAGE", client.name())))
    };
    let request = match client {
        Client::Count => Request::Count {
            line: positional.next(),
        },
        Client::Ack => Request::Ack {
            message: message()?,
        },
        Client::Echo => Request::Echo {
            message: message()?,
            udp,
        },
        Client::Time => Request::Time { tcp, epoch },
        Client::Raw => Request::Raw { send },
    };
    if positional.next().is_some() {
        return Err(Failure::Usage(format!(
            "{}: too many arguments",
            client.name()
        )));
    }
    let target = Target {
        addr,
        waits: Waits::starting_now(timeout, deadline),
        tries,
    };
    Ok(Command::Run(target, request))
}

/// The value of the numeric flag `flag`, when it is in `range`; else a usage error that names
/// the flag and the range.
fn number<T: Number>(
    range: &Range<T>,
    flag: &str,
    parser: &mut lexopt::Parser,
) -> Result<T, Failure> {
    range
        .parse(flag, &parser.value()?.string()?)
        .map_err(Failure::Usage)
}

/// The `--help` text: for one client, or for all of them.
fn help(client: Option<Client>) -> String {
    let mut text = String::from("usage:\n");
    for c in Client::ALL
        .into_iter()
        .filter(|c| client.is_none_or(|x| x == *c))
    {
        let (args, what) = c.synopsis();
        text += &format!("  oneloop client {} {args}\n      {what}\n", c.name());
    }
    let kib = clients::REPLY_MAX / 1024;
    let timeout = DEFAULT_TIMEOUT.as_secs_f64();
    let (seconds, tries) = (SECONDS.ends(), TRIES.ends());
    text += &format!(
        "\nADDR is HOST:PORT: localhost:51423, 192.0.2.7:7, [::1]:7.\n\
         options:\n  \
         --timeout SECS   longest wait for the connect, each read or write, each UDP try (default {timeout})\n  \
         --deadline SECS  longest time for all of them together, from the start (default none;\n                   \
         count does not count the wait for a line on stdin)\n  \
         --tries N        echo --udp, time: UDP requests sent before giving up\n                   \
         (default {DEFAULT_TRIES}, {tries})\n  \
         -h, --help       print this help\n\
         SECS is {seconds} s, fractions allowed.\n\
         count reads at most {kib} KiB of welcome and prompt, then {kib} KiB of reply; time --tcp\n\
         reads at most {kib} KiB. Past that the client stops reading and fails. raw and ack\n\
         print all that comes until EOF.\n\
         exit codes: 0 ok, 1 the reply breaks the protocol (an `Error:` message, too long),\n\
         2 usage error, 3 network or I/O error (refused, reset, timed out, deadline passed,\n\
         no reply)\n"
    );
    text
}
