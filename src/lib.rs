//! oneloop: the classic socket-programming services (line count, echo, ack, time) over TCP and
//! UDP from one thread and one `mio` poll loop.
//!
//! ```no_run
//! use oneloop::{Config, Server};
//! use oneloop::config::Instance;
//! use oneloop::proto::Transport;
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
//! # The layers
//! One folder a layer; each module's doc says what it owns and what it never does. Arrows
//! point down only: a layer uses those below it, never one above.
//! ```text
//! cmd/      front-ends over the library: serve (the daemon's command line), sockopts,
//!           client/, load/
//!   │
//! server/   the loop: Server and run, tokens, bind, accept, the connection table, conn/,
//!           UDP serving, the console, lifecycle, timers, counters, trace, and the
//!           handover of the sockets to a new daemon (handover, takeover)
//!   │
//!   ├── policy/  who is served and how much: access lists, per-source tables, the gate
//!   ├── os/      Linux calls that decide nothing: sockets, batched datagrams, systemd,
//!   │            privileges (all of the crate's `unsafe` is here, tests aside)
//!   ├── log/     how log lines look and where they go: stderr, the journal, syslog
//!   │
//! config/   what the daemon is asked to do, with the range of every number
//! clock     milliseconds since the loop started, handed to every layer that needs the time
//! proto/    the protocols, sans-IO: bytes in, bytes out and a step; no socket, clock or log;
//!           imports nothing of the crate
//! ```
//! The behaviour is described in `docs/protocol.md`.

#![warn(unreachable_pub)]

pub(crate) mod clock;
pub mod cmd;
pub mod config;
pub mod log;
pub mod os;
pub mod policy;
pub mod proto;
pub mod server;

pub use config::Config;
pub use server::{BindError, NothingLeft, Server, Shutdown, Summary};
