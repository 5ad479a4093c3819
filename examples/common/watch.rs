//! What every example prints when it starts: `listening on ADDR` (its first line, which
//! tests/examples.rs reads), then the commands that watch it from another terminal, with the
//! real address and process id filled in, and an empty line. Included by each example with
//! `#[path]`.

use std::io::{self, Write};
use std::net::SocketAddr;

/// Prints the banner. In each of `commands`, `ADDR` becomes the real address, `HOST` and
/// `PORT` its two halves (for `nc`), and `PID` this process's id; a comment after `  #` is
/// lined up with the others.
pub fn say_listening(addr: SocketAddr, commands: &[&str]) -> io::Result<()> {
    let (host, port, pid) = (
        addr.ip().to_string(),
        addr.port().to_string(),
        std::process::id(),
    );
    let lines: Vec<(String, &str)> = commands
        .iter()
        .map(|command| {
            let (command, comment) = command.split_once("  #").unwrap_or((command, ""));
            let command = command
                .trim_end()
                .replace("ADDR", &addr.to_string())
                .replace("HOST", &host)
                .replace("PORT", &port)
                .replace("PID", &pid.to_string());
            (command, comment.trim())
        })
        .collect();
    let width = lines
        .iter()
        .map(|(command, _)| command.len())
        .max()
        .unwrap_or(0);
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {addr}")?;
    writeln!(
        out,
        "watch it: run these in another terminal, in this repository"
    )?;
    for (command, comment) in lines {
        match comment {
            "" => writeln!(out, "  {command}")?,
            _ => writeln!(out, "  {command:width$}  # {comment}")?,
        }
    }
    // An empty line ends the banner.
    writeln!(out)?;
    out.flush()
}
