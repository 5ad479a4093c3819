//! The count protocol and UDP echo as every variant speaks them: the messages and the character
//! count (docs/protocol.md, "TCP `count`"), then one blocking and one async connection
//! handler built on them.
//!
//! The count rule: the line is the bytes before the first LF (or every byte, when the client
//! half-closes first); whitespace (`char::is_whitespace`) is trimmed at both ends; what is left
//! is read as UTF-8 where every byte outside a valid sequence is one character that is never
//! whitespace.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// Longest line in bytes, LF excluded (oneloop's `--max-line` default).
const MAX_LINE: usize = 4096;
/// How long a client has for its line, from accept (oneloop's `--idle-timeout` default).
const LINE_DEADLINE: Duration = Duration::from_secs(30);
/// How long the client's unread input is drained after the reply (oneloop's `--linger`).
const LINGER: Duration = Duration::from_secs(2);
/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_536;

/// What the server says on accept.
fn welcome(peer: SocketAddr) -> String {
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    format!("Welcome, {peer}\nPlease enter a string: ")
}

/// The answer to what was read: at most `MAX_LINE + 1` bytes, ending at the first LF or at EOF.
fn answer(read: &[u8]) -> String {
    match read.strip_suffix(b"\n") {
        Some(line) => reply(line),
        None if read.len() > MAX_LINE => format!("Error: line too long (limit {MAX_LINE} bytes)\n"),
        None => reply(read),
    }
}

fn reply(line: &[u8]) -> String {
    format!("You entered {} characters.\n", count_chars(line))
}

/// Characters of `line` after trimming whitespace, each invalid UTF-8 byte counted as one.
fn count_chars(line: &[u8]) -> usize {
    let whitespace = line.utf8_chunks().flat_map(|chunk| {
        let valid = chunk.valid().chars().map(char::is_whitespace);
        valid.chain(chunk.invalid().iter().map(|_| false))
    });
    let mut kept = None;
    for (i, space) in whitespace.enumerate() {
        if !space {
            kept = Some((kept.map_or(i, |(first, _)| first), i));
        }
    }
    kept.map_or(0, |(first, last)| last - first + 1)
}

/// Serves one count connection with blocking I/O: welcome, line, reply, graceful close.
pub fn count_blocking(stream: TcpStream) -> io::Result<()> {
    let peer = stream.peer_addr()?;
    stream.set_read_timeout(Some(LINE_DEADLINE))?;
    (&stream).write_all(welcome(peer).as_bytes())?;
    let mut reader = BufReader::new(&stream);
    let mut read = Vec::new();
    (&mut reader)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut read)?;
    (&stream).write_all(answer(&read).as_bytes())?;
    stream.shutdown(Shutdown::Write)?;
    // Drain until the client's EOF so unread input never turns the close into a reset.
    stream.set_read_timeout(Some(LINGER))?;
    io::copy(&mut reader, &mut io::sink())?;
    Ok(())
}

/// The same connection on tokio.
pub async fn count_async(stream: tokio::net::TcpStream) -> io::Result<()> {
    let peer = stream.peer_addr()?;
    let mut stream = tokio::io::BufReader::new(stream);
    stream.write_all(welcome(peer).as_bytes()).await?;
    let mut read = Vec::new();
    let mut line = (&mut stream).take(MAX_LINE as u64 + 1);
    tokio::time::timeout(LINE_DEADLINE, line.read_until(b'\n', &mut read)).await??;
    stream.write_all(answer(&read).as_bytes()).await?;
    stream.shutdown().await?;
    let mut sink = tokio::io::sink();
    tokio::time::timeout(LINGER, tokio::io::copy(&mut stream, &mut sink)).await??;
    Ok(())
}

/// UDP echo with blocking I/O: each datagram back to its sender, none to an empty one.
pub fn echo_blocking(socket: UdpSocket) -> io::Result<()> {
    let mut buf = vec![0; MAX_DATAGRAM];
    loop {
        let (n, from) = socket.recv_from(&mut buf)?;
        if n > 0 {
            // A send can fail for one peer (ICMP unreachable); the service goes on.
            let _ = socket.send_to(&buf[..n], from);
        }
    }
}

/// UDP echo on tokio.
pub async fn echo_async(socket: tokio::net::UdpSocket) -> io::Result<()> {
    let mut buf = vec![0; MAX_DATAGRAM];
    loop {
        let (n, from) = socket.recv_from(&mut buf).await?;
        if n > 0 {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    }
}
