//! Front-ends over the library, one a subcommand: `serve` (the daemon's command line, the
//! default), `sockopts`, `client` and `load`. Each turns arguments into calls of the layers
//! below and an exit code; none holds protocol logic or a socket option of its own.

pub mod client;
#[cfg(feature = "load")]
pub mod load;
pub mod serve;
pub mod sockopts;
