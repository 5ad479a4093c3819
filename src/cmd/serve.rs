//! The daemon's command line: `oneloop [serve] [OPTIONS]` into a [`Config`], logging set up,
//! the server run. Exit codes: 0 after a clean stop, 1 when the daemon cannot start (a bind
//! failure names the address and the reason) or every listener failed for good, 2 for a
//! usage error.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::config::{ranges, Config, Inetd, Instance, Privileges, Sandbox};
use crate::log::init_logging;
use crate::os::privileges::{DropError, Plan};
use crate::os::systemd;
use crate::policy::access::Cidr;
use crate::proto::{Epoch, Service, Transport};
use crate::Server;

pub const USAGE: &str = "\
Usage: oneloop [serve] [OPTIONS]
       oneloop client count|ack|echo|time|raw ...   (oneloop client --help)
       oneloop sockopts [--json]

One thread, one poll loop: the classic socket services over TCP and UDP.
With no service given: --tcp count@:51423 --udp echo@:51423

Services (any number; SERVICE@[HOST]:PORT, empty HOST = 0.0.0.0, [::] = all IPv6):
      --tcp SPEC              count, ack, echo, time or stats on TCP
      --udp SPEC              echo or time on UDP
Limits:
      --max-line BYTES        longest count line, LF excluded;
                              1 to 1073741824                          [4096]
      --idle-timeout SECS     count request deadline from accept;
                              echo/ack inactivity limit                [30]
      --max-connections N     TCP connections held at once;
                              1 to 1000000                             [10000]
      --max-refusals N        busy refusals lingering at once; past it
                              a refusal closes silently; 0 to 10000    [64]
      --max-output BYTES      largest read, so unsent output per
                              connection (echo/ack backpressure);
                              4096 to 65536                            [65536]
      --linger SECS           how long unread input is drained after
                              the reply before closing                 [2]
      --shutdown-grace SECS   time in-flight requests get on SIGTERM   [5]
  SECS may have a fraction: --idle-timeout takes 0.001 to 31536000 (a
  year), --linger and --shutdown-grace 0 to 31536000.
Who may connect (CIDR: 192.168.0.0/16, ::1/128, or a plain address):
      --allow CIDR            serve only these sources; repeatable     [everyone]
      --deny CIDR             never serve these; repeatable; deny
                              wins over allow                          [none]
      --allow-file PATH       --allow entries read from a file, one
                              a line, # comments; repeatable; read
                              again on SIGHUP                          [none]
      --deny-file PATH        --deny entries from a file, likewise     [none]
      --max-per-source N      TCP connections one source holds at
                              once; 0 to 1000000, 0: no limit          [0]
      --max-rate N            new TCP connections a second per source,
                              burst N; 0 to 1000000, 0: no limit       [0]
      --udp-rate N            UDP replies a second per source, burst
                              N; 0 to 1000000, 0: no limit             [0]
  An IPv6 source counts as its /64, an IPv4-mapped one as IPv4. A denied
  connection is closed without a word; a denied datagram is dropped.
Behind a load balancer (PROXY protocol, versions 1 and 2):
      --proxy-from CIDR       connections from these begin with a
                              PROXY header naming the client; others
                              are direct clients; repeatable           [none]
      --proxy-protocol        every connection begins with a header
                              (a listener only the proxy can reach)
  A bad header, or none within 5 s, closes the connection without a word.
Privileges (dropped once every socket is bound):
      --user NAME             serve as this user (as root; without
                              root only the current user)              [none]
      --group NAME            serve as this group (with --user)        [the user's]
      --chroot DIR            change root to DIR, an absolute path
                              (with --user)                            [none]
      --sandbox[=log]         then allow only the system calls the
                              loop makes (seccomp, and Landlock where
                              the kernel has it); any other call ends
                              the process with SIGSYS, or with =log
                              goes through and the kernel logs it      [off]
Service options:
      --ack-reply TEXT        text ack adds after each 'I get it!',
                              at most 4096 bytes                       [empty]
      --console               standard input is the operator's console:
                              each ack read waits for a typed line
                              (@N TEXT: for connection N)              [off]
      --step                  for learners: pause before each wait in
                              the poll and after each wake, showing what
                              the loop holds; Enter goes on, c runs
                              freely until the next line               [off]
      --time-epoch unix|1900  epoch of the 4-byte time                 [unix]
Socket options:
      --backlog N             listen() backlog; 1 to 65535             [somaxconn]
      --no-reuseaddr          leave SO_REUSEADDR off on TCP listeners
                              (on by default; never on UDP sockets)
      --reuseport             SO_REUSEPORT (several daemons, one port)
      --keepalive             SO_KEEPALIVE on connections
      --nodelay               TCP_NODELAY on connections
      --rcvbuf BYTES          SO_RCVBUF; 1 to 1073741823               [system]
      --sndbuf BYTES          SO_SNDBUF; 1 to 1073741823               [system]
      --bind-device IFACE     SO_BINDTODEVICE                          [none]
      --ipv6-only             IPV6_V6ONLY on IPv6 sockets              [dual-stack]
  Linux caps --backlog at net.core.somaxconn (the default backlog; 4096
  when it cannot be read) and the buffers at net.core.rmem_max/wmem_max.
systemd:
      --activated NAME=SERVICE  the service of the passed socket NAME
                              (else NAME itself: FileDescriptorName=count)
  With sockets passed by socket activation (LISTEN_FDS) and no --tcp/--udp,
  only the passed sockets are served. READY=1, STATUS=, STOPPING=1 and
  WATCHDOG=1 go to NOTIFY_SOCKET when it is set.
Upgrades:
      --handover PATH         take the sockets of the daemon serving the
                              unix socket PATH, which then drains and
                              exits 0; bind the rest; serve PATH for the
                              next upgrade (none there: bind it all).
                              Not with --inetd, --console, --step or
                              passed sockets                           [none]
Under an inetd (wait mode) or socket activation:
      --inetd TRANSPORT:SERVICE  standard input is the socket an inetd
                              passes (a wait service): tcp:count,
                              udp:time, ...; no default listeners      [off]
      --exit-idle SECS        exit (status 0) after SECS with no
                              connection open and no datagram;
                              0 to 31536000, 0: never                  [0]
  -h, --help                  this text
  -V, --version               the version

Logging: RUST_LOG=error|warn|info|debug|trace (default info), to stderr; with
  JOURNAL_STREAM naming stderr, each line starts with its syslog priority (<6>);
  with --inetd, to syslog (/dev/log) instead, unless stderr is the journal.
Signals: SIGINT/SIGTERM drain for --shutdown-grace, then exit (a second one: at once);
  SIGUSR1 logs the counters and the connections open; SIGHUP reads the access
  files again (a bad one keeps the old lists) and is otherwise only logged;
  SIGUSR2 is ignored.
Exit status: 0 after SIGINT/SIGTERM, 1 when it cannot start or every listener
  failed for good, 2 for a usage error.
";

/// Runs `oneloop serve ARGS`; returns the exit code.
pub fn serve(args: Vec<OsString>) -> u8 {
    let config = match parse(args) {
        Ok(Parsed::Run(config)) => *config,
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return 0;
        }
        Ok(Parsed::Version) => {
            println!("oneloop {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Err(e) => {
            eprintln!("oneloop: {e}\nTry 'oneloop --help'.");
            return 2;
        }
    };
    init_logging(config.inetd.is_some());
    let activated = match systemd::take_passed()
        .map_err(|e| format!("cannot take the sockets passed by the service manager: {e}"))
        .and_then(|passed| systemd::assign(passed, &config.activated))
    {
        Ok(activated) => activated,
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };
    if config.handover.is_some() && !activated.is_empty() {
        let e = crate::config::ConfigError::HandoverWithPassedSockets;
        eprintln!("oneloop: {e}\nTry 'oneloop --help'.");
        return 2;
    }
    let mut activated = activated;
    if let Some(asked) = config.inetd {
        match systemd::inetd(systemd::take_inetd(), asked) {
            Ok(socket) => activated.push(socket),
            Err(e) => {
                log::error!("{e}");
                return 1;
            }
        }
    }
    let mut config = config;
    if config.instances.is_empty() && activated.is_empty() {
        config.instances = Instance::defaults();
    }
    let privileges = config.privileges.clone();
    let sandbox = config.sandbox;
    let inetd = config.inetd.is_some();
    let mut server = match Server::bind_with(config, activated) {
        Ok(server) => server,
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };
    // Every socket is bound (the passed ones taken): the privileges go before the first
    // event is served.
    if let Err(e) = drop_privileges(&privileges) {
        log::error!("{e}");
        return 1;
    }
    // The last step: from here on only the loop's own system calls.
    if let Some(mode) = sandbox {
        server.read_host_now();
        let (log_fd, log_prefix) = crate::log::error_sink(inetd);
        let dirs = server.access_dirs();
        match crate::os::sandbox::install(mode, log_fd, &log_prefix, &dirs) {
            Ok(installed) => log::info!("{installed}"),
            Err(e) => {
                log::error!("{e}");
                return 1;
            }
        }
    }
    match server.run() {
        Ok(_) => 0,
        // Every listener was retired: the loop said so, and logged the summary.
        Err(e) if e.get_ref().is_some_and(|e| e.is::<crate::NothingLeft>()) => 1,
        Err(e) => {
            log::error!("event loop failed: {}", crate::os::sockets::reason(&e));
            1
        }
    }
}

/// Looks up the user and group asked for, then drops to them (see [`crate::os::privileges`]);
/// logs what it did.
fn drop_privileges(asked: &Privileges) -> Result<(), DropError> {
    if let Some(plan) = Plan::resolve(asked)? {
        plan.apply()?;
        log::info!("{plan}");
    }
    Ok(())
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    Run(Box<Config>),
    Help,
    Version,
}

/// Parses the daemon's options (without the program name or `serve`).
pub fn parse(args: Vec<OsString>) -> Result<Parsed, String> {
    use lexopt::Arg::{Long, Short, Value};
    let mut config = Config::default();
    let mut instances = Vec::new();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        let flag = match &arg {
            Long(name) => format!("--{name}"),
            Short(c) => format!("-{c}"),
            Value(v) => return Err(format!("unexpected argument '{}'", v.to_string_lossy())),
        };
        let mut value = || -> Result<String, String> {
            let v = parser.value().map_err(|e| e.to_string())?;
            v.into_string()
                .map_err(|_| format!("{flag}: the value is not valid UTF-8"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "-V" | "--version" => return Ok(Parsed::Version),
            "--tcp" => instances.push(spec(Transport::Tcp, &value()?)?),
            "--udp" => instances.push(spec(Transport::Udp, &value()?)?),
            "--max-line" => config.max_line = ranges::MAX_LINE.parse(&flag, &value()?)?,
            "--idle-timeout" => {
                config.idle_timeout = ranges::IDLE_TIMEOUT.parse(&flag, &value()?)?
            }
            "--max-connections" => {
                config.max_connections = ranges::MAX_CONNECTIONS.parse(&flag, &value()?)?
            }
            "--max-refusals" => {
                config.max_refusals = ranges::MAX_REFUSALS.parse(&flag, &value()?)?
            }
            "--max-output" => config.max_output = ranges::MAX_OUTPUT.parse(&flag, &value()?)?,
            "--linger" => config.linger = ranges::WAIT.parse(&flag, &value()?)?,
            "--shutdown-grace" => config.shutdown_grace = ranges::WAIT.parse(&flag, &value()?)?,
            "--ack-reply" => config.ack_reply = value()?.into_bytes(),
            "--console" => config.console = true,
            "--step" => config.step = true,
            "--inetd" => {
                if config.inetd.is_some() {
                    return Err("--inetd: given twice (an inetd passes one socket)".into());
                }
                config.inetd = Some(Inetd::parse(&value()?)?);
            }
            "--exit-idle" => config.exit_idle = ranges::EXIT_IDLE.parse(&flag, &value()?)?,
            "--time-epoch" => {
                config.time_epoch = Epoch::parse(&value()?)
                    .ok_or_else(|| format!("{flag}: expected unix or 1900"))?
            }
            "--backlog" => config.sockets.backlog = Some(ranges::BACKLOG.parse(&flag, &value()?)?),
            "--no-reuseaddr" => config.sockets.reuse_address = false,
            "--reuseport" => config.sockets.reuse_port = true,
            "--keepalive" => config.sockets.keepalive = true,
            "--nodelay" => config.sockets.nodelay = true,
            "--rcvbuf" => {
                config.sockets.recv_buffer = Some(ranges::SOCKET_BUFFER.parse(&flag, &value()?)?)
            }
            "--sndbuf" => {
                config.sockets.send_buffer = Some(ranges::SOCKET_BUFFER.parse(&flag, &value()?)?)
            }
            "--bind-device" => config.sockets.bind_device = Some(value()?),
            "--ipv6-only" => config.sockets.ipv6_only = true,
            "--allow" => config.allow.push(cidr(&flag, &value()?)?),
            "--deny" => config.deny.push(cidr(&flag, &value()?)?),
            "--allow-file" => config.allow_files.push(PathBuf::from(value()?)),
            "--handover" => config.handover = Some(PathBuf::from(value()?)),
            "--deny-file" => config.deny_files.push(PathBuf::from(value()?)),
            "--proxy-from" => config.proxy_from.push(cidr(&flag, &value()?)?),
            "--proxy-protocol" => config.proxy_protocol = true,
            "--max-per-source" => {
                config.max_per_source = ranges::MAX_PER_SOURCE.parse(&flag, &value()?)?
            }
            "--max-rate" => config.max_rate = ranges::MAX_RATE.parse(&flag, &value()?)?,
            "--udp-rate" => config.udp_rate = ranges::UDP_RATE.parse(&flag, &value()?)?,
            "--user" => config.privileges.user = Some(value()?),
            "--group" => config.privileges.group = Some(value()?),
            "--chroot" => config.privileges.chroot = Some(PathBuf::from(value()?)),
            "--sandbox" => {
                config.sandbox = Some(match parser.optional_value() {
                    None => Sandbox::Enforce,
                    Some(v) if v == "log" => Sandbox::Log,
                    Some(v) => {
                        return Err(format!(
                            "--sandbox: expected --sandbox or --sandbox=log, got '={}'",
                            v.to_string_lossy()
                        ))
                    }
                })
            }
            "--activated" => {
                let (name, service) = activated(&value()?)?;
                if config.activated.iter().any(|(known, _)| *known == name) {
                    return Err(format!("--activated: '{name}' is given twice"));
                }
                config.activated.push((name, service));
            }
            _ => return Err(format!("unknown option '{flag}'")),
        }
    }
    // With none given, `serve` runs the default pair, unless sockets were passed.
    config.instances = instances;
    config.validate().map_err(|e| e.to_string())?;
    Ok(Parsed::Run(Box::new(config)))
}

/// `NAME=SERVICE`: the service of the passed socket named NAME (as `FileDescriptorName=`
/// gives it: not empty, no `:`).
fn activated(s: &str) -> Result<(String, Service), String> {
    let expected =
        || format!("--activated: expected NAME=SERVICE (count, ack, echo, time, stats), got '{s}'");
    let (name, service) = s.split_once('=').ok_or_else(expected)?;
    if name.is_empty() {
        return Err(format!("--activated: the NAME of '{s}' is empty"));
    }
    if name.contains(':') {
        return Err(format!(
            "--activated: NAME '{name}' holds ':', which no passed socket's name can"
        ));
    }
    let service = Service::parse(service).ok_or_else(expected)?;
    Ok((name.to_string(), service))
}

fn cidr(flag: &str, s: &str) -> Result<Cidr, String> {
    Cidr::parse(s).map_err(|e| format!("{flag}: {e}"))
}

fn spec(transport: Transport, s: &str) -> Result<Instance, String> {
    Instance::parse(transport, s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run(args: &[&str]) -> Result<Config, String> {
        match parse(args.iter().map(OsString::from).collect())? {
            Parsed::Run(c) => Ok(*c),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_flags_leaves_the_instances_to_serve() {
        let c = run(&[]).unwrap();
        assert!(c.instances.is_empty());
        assert_eq!(
            c,
            Config {
                instances: Vec::new(),
                ..Config::default()
            }
        );
    }

    #[test]
    fn activated_maps_names_to_services() {
        let c = run(&["--activated", "web=echo", "--activated", "clock=time"]).unwrap();
        assert_eq!(
            c.activated,
            [
                ("web".to_string(), Service::Echo),
                ("clock".to_string(), Service::Time)
            ]
        );
    }

    #[test]
    fn activated_refuses_empty_names_and_services_and_repeats() {
        for (value, says) in [
            (
                "web",
                "--activated: expected NAME=SERVICE (count, ack, echo, time, stats), got 'web'",
            ),
            (
                "web=",
                "--activated: expected NAME=SERVICE (count, ack, echo, time, stats), got 'web='",
            ),
            ("web=dns", "got 'web=dns'"),
            ("=count", "--activated: the NAME of '=count' is empty"),
            ("=", "--activated: the NAME of '=' is empty"),
            ("a:b=count", "--activated: NAME 'a:b' holds ':'"),
        ] {
            let e = run(&["--activated", value]).unwrap_err();
            assert!(e.contains(says), "{value}: {e}");
        }
        let e = run(&["--activated", "web=echo", "--activated", "web=time"]).unwrap_err();
        assert_eq!(e, "--activated: 'web' is given twice");
    }

    #[test]
    fn every_flag_lands_in_the_config() {
        let c = run(&[
            "--tcp",
            "count@127.0.0.1:0",
            "--udp",
            "time@[::1]:0",
            "--tcp=ack@:7000",
            "--max-line",
            "10",
            "--idle-timeout",
            "0.5",
            "--max-connections",
            "3",
            "--max-output",
            "8192",
            "--linger",
            "1",
            "--shutdown-grace",
            "2",
            "--ack-reply",
            "ok",
            "--time-epoch",
            "1900",
            "--backlog",
            "5",
            "--no-reuseaddr",
            "--reuseport",
            "--keepalive",
            "--nodelay",
            "--rcvbuf",
            "4096",
            "--sndbuf",
            "8192",
            "--bind-device",
            "lo",
            "--ipv6-only",
            "--allow",
            "10.0.0.0/8",
            "--allow=::1",
            "--deny",
            "10.0.0.7",
            "--allow-file",
            "/etc/oneloop/allow",
            "--deny-file=deny.txt",
            "--max-per-source",
            "4",
            "--max-rate",
            "20",
            "--udp-rate",
            "100",
            "--user",
            "nobody",
            "--group",
            "nogroup",
            "--chroot",
            "/var/empty",
            "--inetd",
            "udp:time",
            "--exit-idle",
            "60",
        ])
        .unwrap();
        assert_eq!(c.instances.len(), 3);
        assert_eq!(c.instances[1].to_string(), "udp [::1]:0 (time)");
        assert_eq!(c.max_line, 10);
        assert_eq!(c.idle_timeout, Duration::from_millis(500));
        assert_eq!(c.max_connections, 3);
        assert_eq!(c.max_output, 8192);
        assert_eq!(c.linger, Duration::from_secs(1));
        assert_eq!(c.shutdown_grace, Duration::from_secs(2));
        assert_eq!(c.ack_reply, b"ok");
        assert_eq!(c.time_epoch, Epoch::Rfc868);
        let s = &c.sockets;
        assert_eq!(s.backlog, Some(5));
        assert!(!s.reuse_address && s.reuse_port && s.keepalive && s.nodelay && s.ipv6_only);
        assert_eq!((s.recv_buffer, s.send_buffer), (Some(4096), Some(8192)));
        assert_eq!(s.bind_device.as_deref(), Some("lo"));
        let nets = |texts: &[&str]| -> Vec<Cidr> {
            texts.iter().map(|t| Cidr::parse(t).unwrap()).collect()
        };
        assert_eq!(c.allow, nets(&["10.0.0.0/8", "::1"]));
        assert_eq!(c.deny, nets(&["10.0.0.7/32"]));
        assert_eq!(c.allow_files, [PathBuf::from("/etc/oneloop/allow")]);
        assert_eq!(c.deny_files, [PathBuf::from("deny.txt")]);
        assert_eq!((c.max_per_source, c.max_rate, c.udp_rate), (4, 20, 100));
        assert_eq!(c.inetd.map(|i| i.to_string()).as_deref(), Some("udp:time"));
        assert_eq!(c.exit_idle, Duration::from_secs(60));
        assert_eq!(
            c.privileges,
            Privileges {
                user: Some("nobody".into()),
                group: Some("nogroup".into()),
                chroot: Some("/var/empty".into()),
            }
        );
    }

    #[test]
    fn handover_takes_a_path() {
        let c = run(&["--handover", "/run/oneloop/handover.sock"]).unwrap();
        assert_eq!(
            c.handover,
            Some(PathBuf::from("/run/oneloop/handover.sock"))
        );
        assert_eq!(run(&[]).unwrap().handover, None);
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        for (args, says) in [
            (&["--bogus"][..], "unknown option '--bogus'"),
            (&["--tcp", "nope@:1"], "unknown service"),
            (&["--udp", "count@:1"], "tcp only"),
            (&["--max-line", "ten"], "--max-line: 'ten'"),
            (&["--max-line", "0"], "--max-line: '0' is out of range"),
            (
                &["--idle-timeout", "-1"],
                "--idle-timeout: '-1' is out of range",
            ),
            (&["--tcp", "count@[127.0.0.1]:1"], "brackets are for IPv6"),
            (&["--tcp", "count@::1:1"], "IPv6 addresses go in brackets"),
            (&["--time-epoch", "1980"], "expected unix or 1900"),
            (&["--tcp"], "missing argument"),
            (&["stray"], "unexpected argument 'stray'"),
            (
                &["--allow", "10.0.0.1/8"],
                "--allow: bad network '10.0.0.1/8': bits are set past the prefix",
            ),
            (
                &["--deny", "[::1]"],
                "--deny: bad network '[::1]': brackets belong to an address with a port",
            ),
            (
                &["--allow", "example.com"],
                "--allow: bad network 'example.com': 'example.com' is not an IPv4",
            ),
            (&["--deny"], "missing argument"),
            (&["--group", "nogroup"], "--group needs --user"),
            (&["--chroot", "/var/empty"], "--chroot needs --user"),
            (
                &["--user", "nobody", "--chroot", "empty"],
                "--chroot: 'empty' is not an absolute path",
            ),
            (&["--user", ""], "--user: the name is empty"),
            (&["--inetd", "tcp"], "--inetd: expected tcp:SERVICE"),
            (&["--step", "--console"], "--step cannot go with --console"),
            (
                &["--handover", "/run/h", "--inetd", "tcp:count"],
                "--handover cannot go with --inetd",
            ),
            (
                &["--handover", "/run/h", "--console"],
                "--handover cannot go with --console",
            ),
            (
                &["--handover", "/run/h", "--step"],
                "--handover cannot go with --step",
            ),
            (
                &["--handover", ""],
                "--handover: the path must be 1 to 107 bytes",
            ),
            (
                &["--handover", &"/x".repeat(54)],
                "--handover: the path must be 1 to 107 bytes",
            ),
            (
                &["--step", "--inetd", "tcp:count"],
                "--step cannot go with --inetd",
            ),
            (&["--inetd"], "missing argument"),
            (
                &["--inetd", "tcp:echo", "--inetd", "tcp:echo"],
                "--inetd: given twice",
            ),
            (
                &["--console", "--inetd", "tcp:ack"],
                "--console cannot go with --inetd",
            ),
        ] {
            let e = run(args).unwrap_err();
            assert!(e.contains(says), "{args:?}: {e}");
        }
    }

    /// Each numeric flag, the text of its range, and values just inside it at both ends.
    const NUMERIC: [(&str, &str, [&str; 2]); 14] = [
        ("--max-line", "1 to 1073741824 bytes", ["1", "1073741824"]),
        (
            "--max-per-source",
            "0 to 1000000 connections",
            ["0", "1000000"],
        ),
        (
            "--max-rate",
            "0 to 1000000 connections per second",
            ["0", "1000000"],
        ),
        (
            "--udp-rate",
            "0 to 1000000 replies per second",
            ["0", "1000000"],
        ),
        (
            "--max-connections",
            "1 to 1000000 connections",
            ["1", "1000000"],
        ),
        ("--max-refusals", "0 to 10000 refusals", ["0", "10000"]),
        ("--max-output", "4096 to 65536 bytes", ["4096", "65536"]),
        ("--backlog", "1 to 65535", ["1", "65535"]),
        ("--rcvbuf", "1 to 1073741823 bytes", ["1", "1073741823"]),
        ("--sndbuf", "1 to 1073741823 bytes", ["1", "1073741823"]),
        (
            "--idle-timeout",
            "0.001 to 31536000 s",
            ["0.001", "31536000"],
        ),
        ("--linger", "0 to 31536000 s", ["0", "31536000"]),
        ("--shutdown-grace", "0 to 31536000 s", ["0", "31536000"]),
        ("--exit-idle", "0 to 31536000 s", ["0", "31536000"]),
    ];

    #[test]
    fn numbers_at_both_ends_of_their_range_are_taken() {
        for (flag, _, inside) in NUMERIC {
            for value in inside {
                run(&[flag, value]).unwrap_or_else(|e| panic!("{flag} {value}: {e}"));
            }
        }
        let c = run(&[
            "--max-line",
            "1073741824",
            "--rcvbuf",
            "1073741823",
            "--linger",
            "0",
        ])
        .unwrap();
        assert_eq!(c.max_line, 1 << 30);
        assert_eq!(c.sockets.recv_buffer, Some(1_073_741_823));
        assert_eq!(c.linger, Duration::ZERO);
        let c = run(&["--max-refusals", "0", "--idle-timeout", "31536000"]).unwrap();
        assert_eq!(c.max_refusals, 0);
        assert_eq!(c.idle_timeout, Duration::from_secs(31_536_000));
        let backlog = run(&["--backlog", "65535"]).unwrap().sockets.backlog;
        assert_eq!(backlog, Some(65535));
    }

    /// Checks that `flag VALUE` is refused with `FLAG: 'VALUE' WHY` for each of `values`.
    fn assert_refused<V: AsRef<str>>(flag: &str, values: &[V], why: &str) {
        for value in values.iter().map(AsRef::as_ref) {
            assert_eq!(run(&[flag, value]), Err(format!("{flag}: '{value}' {why}")));
        }
    }

    #[test]
    fn numbers_just_outside_their_range_are_usage_errors_naming_it() {
        for (flag, range, inside) in NUMERIC {
            let below_and_above = if range.ends_with(" s") {
                let low = if inside[0] == "0" { "-0.001" } else { "0.0009" };
                [low.to_string(), format!("{}.001", inside[1])]
            } else {
                let step = |v: &str, by: i64| (v.parse::<i64>().unwrap() + by).to_string();
                [step(inside[0], -1), step(inside[1], 1)]
            };
            assert_refused(
                flag,
                &below_and_above,
                &format!("is out of range ({range})"),
            );
        }
    }

    #[test]
    fn negative_huge_and_infinite_numbers_are_out_of_range() {
        for (flag, range, _) in NUMERIC {
            let mut values = vec!["-1", "-5", "4294967296", "18446744073709551616"];
            if range.ends_with(" s") {
                values.extend(["1e300", "inf", "-inf", "infinity", "-0.5"]);
            }
            assert_refused(flag, &values, &format!("is out of range ({range})"));
        }
    }

    #[test]
    fn fractions_words_and_nan_are_not_numbers() {
        for (flag, range, _) in NUMERIC {
            let (kind, values) = if range.ends_with(" s") {
                (
                    "a number of seconds",
                    &["NaN", "nan", "ten", "1s", "", "0x10"][..],
                )
            } else {
                (
                    "a whole number",
                    &["1.5", "4096.0", "1e3", "ten", "", "nan", " 7"][..],
                )
            };
            assert_refused(flag, values, &format!("is not {kind} ({range})"));
        }
    }

    #[test]
    fn the_help_states_every_range() {
        for text in [
            ranges::MAX_LINE.ends(),
            ranges::MAX_CONNECTIONS.ends(),
            ranges::MAX_REFUSALS.ends(),
            ranges::MAX_OUTPUT.ends(),
            ranges::BACKLOG.ends(),
            ranges::SOCKET_BUFFER.ends(),
            ranges::IDLE_TIMEOUT.ends(),
            ranges::WAIT.ends(),
            ranges::MAX_PER_SOURCE.ends(),
            ranges::MAX_RATE.ends(),
            ranges::UDP_RATE.ends(),
            ranges::EXIT_IDLE.ends(),
        ] {
            assert!(USAGE.contains(&text), "the help does not say {text}");
        }
    }

    #[test]
    fn sandbox_is_off_on_or_log() {
        assert_eq!(run(&[]).unwrap().sandbox, None);
        assert_eq!(run(&["--sandbox"]).unwrap().sandbox, Some(Sandbox::Enforce));
        assert_eq!(run(&["--sandbox=log"]).unwrap().sandbox, Some(Sandbox::Log));
        // A value only joined with `=`: a word after it is no value of its own.
        assert_eq!(
            run(&["--sandbox", "log"]),
            Err("unexpected argument 'log'".into())
        );
        assert_eq!(
            run(&["--sandbox=kill"]),
            Err("--sandbox: expected --sandbox or --sandbox=log, got '=kill'".into())
        );
    }

    #[test]
    fn help_and_version() {
        let p = |a: &str| parse(vec![OsString::from(a)]).unwrap();
        assert_eq!(p("--help"), Parsed::Help);
        assert_eq!(p("-V"), Parsed::Version);
    }
}
