//! oneloop: the classic socket-programming services (line count, echo, ack, time) over TCP and
//! UDP from one thread and one `mio` poll loop.
//!
//! ```no_run
//! use oneloop::{Config, Server};
//! use oneloop::config::{Instance, Transport};
//!
//! let count = Instance::parse(Transport::Tcp, "count@127.0.0.1:0").unwrap();
//! let server = Server::bind(Config::with_instances(vec![count])).unwrap();
//! println!("serving on {}", server.instances()[0].addr);
//! let stop = server.shutdown_handle();
//! let loop_thread = std::thread::spawn(move || server.run());
//! // ... talk to it ...
//! stop.shutdown();
//! let summary = loop_thread.join().unwrap().unwrap();
//! println!("{summary}");
//! ```
//!
//! Map of the crate: `config` (what to serve, limits), `sockets` (socket set-up), `server`
//! (the loop), `conn` (one connection's state machine and I/O), `session` (the protocols,
//! without I/O), `console` (the operator console), `proxy` (PROXY protocol headers), `udp`
//! (the UDP services), `access` (`--allow`/`--deny`), `fairness` (the per-source limits),
//! `privileges` (`--user`, `--chroot`), `deadline` (timers), `logging` and `narrate` (the log
//! lines, repeats collapsed), `syslog` (the log under an inetd), `cli` (the command line),
//! `args` (the ranges of its numbers), `systemd` (passed sockets: socket activation and
//! `--inetd`; notifications).
//! The behaviour is described in `docs/protocol.md`.

#![warn(unreachable_pub)]

pub mod access;
pub mod args;
pub mod cli;
pub mod client;
pub mod config;
mod conn;
mod console;
mod deadline;
pub mod fairness;
#[cfg(feature = "load")]
pub mod load;
mod logbytes;
pub mod logging;
mod mmsg;
mod narrate;
pub mod privileges;
pub mod proxy;
mod server;
pub mod session;
pub mod sockets;
pub mod sockopts;
mod syslog;
pub mod systemd;
pub mod udp;

pub use config::Config;
pub use server::{BindError, NothingLeft, Server, Shutdown, Summary};
