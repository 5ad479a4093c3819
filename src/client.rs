//! Placeholder: `oneloop client` arrives with its own change.

use std::ffi::OsString;

/// Runs `oneloop client ARGS`; returns the process exit code.
pub fn run_cli(_args: Vec<OsString>) -> u8 {
    eprintln!("oneloop client: not available in this build");
    2
}
