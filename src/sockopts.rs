//! Placeholder: `oneloop sockopts` arrives with its own change.

use std::ffi::OsString;

/// Runs `oneloop sockopts ARGS`; returns the process exit code.
pub fn run_cli(_args: Vec<OsString>) -> u8 {
    eprintln!("oneloop sockopts: not available in this build");
    2
}
