//! The daemon's command line: `oneloop [serve] [OPTIONS]` into a [`Config`], logging set up,
//! the server run. Exit codes: 0 after a clean stop, 1 when the daemon cannot start (a bind
//! failure names the address and the reason), 2 for a usage error.

use std::ffi::OsString;
use std::io::Write;
use std::str::FromStr;
use std::time::Duration;

use crate::config::{Config, Epoch, Instance, Service, Transport};
use crate::{systemd, Server};

pub const USAGE: &str = "\
Usage: oneloop [serve] [OPTIONS]
       oneloop client count|ack|echo|time|raw ...   (oneloop client --help)
       oneloop sockopts [--json]

One thread, one poll loop: the classic socket services over TCP and UDP.
With no service given: --tcp count@:51423 --udp echo@:51423

Services (any number; SERVICE@[HOST]:PORT, empty HOST = 0.0.0.0, [::] = all IPv6):
      --tcp SPEC              count, ack, echo or time on TCP
      --udp SPEC              echo or time on UDP
Limits:
      --max-line BYTES        longest count line, LF excluded         [4096]
      --idle-timeout SECS     count request deadline from accept;
                              echo/ack inactivity limit                [30]
      --max-connections N     TCP connections held at once             [10000]
      --max-refusals N        busy refusals lingering at once; past it
                              a refusal closes silently                [64]
      --max-output BYTES      largest read, so unsent output per
                              connection (echo/ack backpressure)       [65536]
      --linger SECS           how long unread input is drained after
                              the reply before closing                 [2]
      --shutdown-grace SECS   time in-flight requests get on SIGTERM   [5]
Service options:
      --ack-reply TEXT        text ack adds after each 'I get it!'     [empty]
      --time-epoch unix|1900  epoch of the 4-byte time                 [unix]
Socket options:
      --backlog N             listen() backlog                         [128]
      --no-reuseaddr          leave SO_REUSEADDR off (on by default)
      --reuseport             SO_REUSEPORT (several daemons, one port)
      --keepalive             SO_KEEPALIVE on connections
      --nodelay               TCP_NODELAY on connections
      --rcvbuf BYTES          SO_RCVBUF                                [system]
      --sndbuf BYTES          SO_SNDBUF                                [system]
      --bind-device IFACE     SO_BINDTODEVICE                          [none]
      --ipv6-only             IPV6_V6ONLY on IPv6 sockets              [dual-stack]
systemd:
      --activated NAME=SERVICE  the service of the passed socket NAME
                              (else NAME itself: FileDescriptorName=count)
  With sockets passed by socket activation (LISTEN_FDS) and no --tcp/--udp,
  only the passed sockets are served. READY=1, STATUS=, STOPPING=1 and
  WATCHDOG=1 go to NOTIFY_SOCKET when it is set.
  -h, --help                  this text
  -V, --version               the version

Logging: RUST_LOG=error|warn|info|debug|trace (default info), to stderr.
Exit status: 0 after SIGINT/SIGTERM, 1 when it cannot start, 2 for a usage error.
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
    init_logging();
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
    let mut config = config;
    if config.instances.is_empty() && activated.is_empty() {
        config.instances = Instance::defaults();
    }
    let server = match Server::bind_with(config, activated) {
        Ok(server) => server,
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };
    match server.run() {
        Ok(_) => 0,
        Err(e) => {
            log::error!("event loop failed: {}", crate::sockets::reason(&e));
            1
        }
    }
}

/// `RUST_LOG` sets the level (default `info`); lines go to stderr as `LEVEL message`. No
/// timestamps: journald and syslog add their own.
pub fn init_logging() {
    let env = env_logger::Env::default().default_filter_or("info");
    let _ = env_logger::Builder::from_env(env)
        .format(|buf, record| writeln!(buf, "{:<5} {}", record.level(), record.args()))
        .try_init();
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
            "--max-line" => config.max_line = number(&flag, &value()?)?,
            "--idle-timeout" => config.idle_timeout = seconds(&flag, &value()?)?,
            "--max-connections" => config.max_connections = number(&flag, &value()?)?,
            "--max-refusals" => config.max_refusals = number(&flag, &value()?)?,
            "--max-output" => config.max_output = number(&flag, &value()?)?,
            "--linger" => config.linger = seconds(&flag, &value()?)?,
            "--shutdown-grace" => config.shutdown_grace = seconds(&flag, &value()?)?,
            "--ack-reply" => config.ack_reply = value()?.into_bytes(),
            "--time-epoch" => {
                config.time_epoch = Epoch::parse(&value()?)
                    .ok_or_else(|| format!("{flag}: expected unix or 1900"))?
            }
            "--backlog" => config.sockets.backlog = number(&flag, &value()?)?,
            "--no-reuseaddr" => config.sockets.reuse_address = false,
            "--reuseport" => config.sockets.reuse_port = true,
            "--keepalive" => config.sockets.keepalive = true,
            "--nodelay" => config.sockets.nodelay = true,
            "--rcvbuf" => config.sockets.recv_buffer = Some(number(&flag, &value()?)?),
            "--sndbuf" => config.sockets.send_buffer = Some(number(&flag, &value()?)?),
            "--bind-device" => config.sockets.bind_device = Some(value()?),
            "--ipv6-only" => config.sockets.ipv6_only = true,
            "--activated" => config.activated.push(activated(&value()?)?),
            _ => return Err(format!("unknown option '{flag}'")),
        }
    }
    // With none given, `serve` runs the default pair, unless sockets were passed.
    config.instances = instances;
    config.validate().map_err(|e| e.to_string())?;
    Ok(Parsed::Run(Box::new(config)))
}

/// `NAME=SERVICE`: the service of the passed socket named NAME.
fn activated(s: &str) -> Result<(String, Service), String> {
    s.split_once('=')
        .and_then(|(name, service)| Some((name.to_string(), Service::parse(service)?)))
        .ok_or_else(|| {
            format!("--activated: expected NAME=SERVICE (count, ack, echo, time), got '{s}'")
        })
}

fn spec(transport: Transport, s: &str) -> Result<Instance, String> {
    Instance::parse(transport, s).map_err(|e| e.to_string())
}

fn number<T: FromStr>(flag: &str, s: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{flag}: '{s}' is not a whole number in range"))
}

/// Seconds, whole or decimal (`30`, `0.5`).
fn seconds(flag: &str, s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .filter(|d| d.as_secs() < 1 << 32)
        .ok_or_else(|| format!("{flag}: '{s}' is not a number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let e = run(&["--activated", "web"]).unwrap_err();
        assert!(e.contains("expected NAME=SERVICE"), "{e}");
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
        assert_eq!(s.backlog, 5);
        assert!(!s.reuse_address && s.reuse_port && s.keepalive && s.nodelay && s.ipv6_only);
        assert_eq!((s.recv_buffer, s.send_buffer), (Some(4096), Some(8192)));
        assert_eq!(s.bind_device.as_deref(), Some("lo"));
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        for (args, says) in [
            (&["--bogus"][..], "unknown option '--bogus'"),
            (&["--tcp", "nope@:1"], "unknown service"),
            (&["--udp", "count@:1"], "tcp only"),
            (&["--max-line", "ten"], "--max-line: 'ten'"),
            (&["--max-line", "0"], "--max-line must be from 1 to"),
            (&["--idle-timeout", "-1"], "--idle-timeout: '-1'"),
            (&["--time-epoch", "1980"], "expected unix or 1900"),
            (&["--tcp"], "missing argument"),
            (&["stray"], "unexpected argument 'stray'"),
        ] {
            let e = run(args).unwrap_err();
            assert!(e.contains(says), "{args:?}: {e}");
        }
    }

    #[test]
    fn help_and_version() {
        let p = |a: &str| parse(vec![OsString::from(a)]).unwrap();
        assert_eq!(p("--help"), Parsed::Help);
        assert_eq!(p("-V"), Parsed::Version);
    }
}
