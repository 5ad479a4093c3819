//! The five clients: what each one sends, and how it judges the reply.
//!
//! Each function is the whole conversation of one protocol from the client's side, written
//! top to bottom; the socket details live in `net.rs`.

use std::io::{self, BufRead, Write};

use super::net::{self, Connection};
use super::{text, Failure, Request, Target};
use crate::config::Epoch;
use crate::session::SECONDS_1900_TO_1970;

fn epoch_year(epoch: Epoch) -> u32 {
    match epoch {
        Epoch::Unix => 1970,
        Epoch::Rfc868 => 1900,
    }
}

/// Unix seconds for a 32-bit time value counted from `epoch`. Both counts wrap at 2^32, so
/// this is exact from 1970 until 2106 (across the 1900 count's wrap in 2036).
fn unix_seconds(value: u32, epoch: Epoch) -> u32 {
    match epoch {
        Epoch::Unix => value,
        // The low 32 bits are the protocol's arithmetic: it wraps modulo 2^32.
        Epoch::Rfc868 => value.wrapping_sub(SECONDS_1900_TO_1970 as u32),
    }
}

/// The largest UDP reply we take whole (a datagram carries at most 65,507 bytes of data).
const DATAGRAM_MAX: usize = 65_536;

/// Runs one client, printing to stdout (and, for `count` without LINE, reading stdin).
pub(super) fn run(target: &Target, request: Request) -> Result<(), Failure> {
    let out = &mut io::stdout().lock();
    match request {
        Request::Count { line } => count(target, line, out, &mut io::stdin().lock()),
        Request::Ack { message } => ack(target, &message, out),
        Request::Echo { message, udp } => echo(target, &message, udp, out),
        Request::Time { tcp, epoch } => time(target, tcp, epoch, out),
        Request::Raw { send } => raw(target, &send, out),
    }
}

/// `count`: print the greeting up to the prompt, send one line, print the reply.
///
/// The prompt is the unfinished line after the welcome line, ending in `:` (our
/// `Please enter a string: ` and the seed's `Please enter a string :` alike). A server that
/// refuses (`Error: server busy ...`) closes before prompting; nothing is sent then.
fn count(
    target: &Target,
    line: Option<Vec<u8>>,
    out: &mut dyn Write,
    input: &mut dyn BufRead,
) -> Result<(), Failure> {
    const GREETING_MAX: usize = 64 * 1024;
    let mut conn = Connection::open(&target.addr, target.timeout)?;
    let mut greeting = Vec::new();
    let mut buf = [0; 4096];
    while !ends_with_prompt(&greeting) {
        let n = conn.receive(&mut buf)?;
        if n == 0 {
            return count_verdict(&greeting);
        }
        net::write_out(out, &buf[..n])?;
        greeting.extend_from_slice(&buf[..n]);
        if greeting.len() > GREETING_MAX {
            return Err(Failure::BadReply(format!(
                "no prompt in the first {GREETING_MAX} bytes"
            )));
        }
    }

    let line = match line {
        Some(mut line) => {
            line.push(b'\n');
            line
        }
        None => read_line(input)?,
    };
    conn.send(&line)?;
    conn.half_close()?;
    let mut reply = Vec::new();
    conn.relay_until_eof(out, |piece| {
        let room = GREETING_MAX.saturating_sub(reply.len());
        reply.extend_from_slice(&piece[..piece.len().min(room)]);
    })?;
    count_verdict(&reply)
}

/// Whether `text` ends in a prompt: an unfinished line after a complete one, ending in `:`
/// and maybe blanks. (Not any `:`: the welcome line's `127.0.0.1:40512` may arrive in pieces.)
fn ends_with_prompt(text: &[u8]) -> bool {
    let mut lines = text.rsplit(|&b| b == b'\n');
    let unfinished = lines.next().unwrap_or_default();
    lines.next().is_some() && unfinished.trim_ascii_end().ends_with(b":")
}

/// One line of stdin with its LF (without one at EOF: the server then reads EOF as the end).
fn read_line(input: &mut dyn BufRead) -> Result<Vec<u8>, Failure> {
    let mut line = Vec::new();
    input
        .read_until(b'\n', &mut line)
        .map_err(|e| Failure::Io(format!("cannot read stdin: {e}")))?;
    Ok(line)
}

/// Success when the last line the server wrote ends in `You entered N characters.` (the
/// line may begin with the prompt, as it does on a terminal).
fn count_verdict(text: &[u8]) -> Result<(), Failure> {
    const PREFIX: &[u8] = b"You entered ";
    let last = text
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .rfind(|line| !line.is_empty())
        .unwrap_or_default();
    let reply = match last.windows(PREFIX.len()).rposition(|w| w == PREFIX) {
        Some(at) => &last[at + PREFIX.len()..],
        None => b"",
    };
    match reply.strip_suffix(b" characters.") {
        Some(digits) if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) => Ok(()),
        _ if last.is_empty() => Err(Failure::BadReply(
            "the server closed without a reply".into(),
        )),
        _ => Err(Failure::BadReply(format!(
            "the server said {:?}",
            String::from_utf8_lossy(last)
        ))),
    }
}

/// `ack`: send MESSAGE, half-close, print the reply until EOF; it must acknowledge.
fn ack(target: &Target, message: &[u8], out: &mut dyn Write) -> Result<(), Failure> {
    const ACK: &[u8] = b"I get it!";
    let mut conn = Connection::open(&target.addr, target.timeout)?;
    conn.send(message)?;
    conn.half_close()?;
    // The acknowledgement may arrive split across reads: search the new bytes together with
    // the few before them that could start it.
    let mut recent = Vec::new();
    let mut acknowledged = false;
    conn.relay_until_eof(out, |piece| {
        recent.extend_from_slice(piece);
        acknowledged |= recent.windows(ACK.len()).any(|w| w == ACK);
        recent.drain(..recent.len().saturating_sub(ACK.len() - 1));
    })?;
    if acknowledged {
        Ok(())
    } else {
        Err(Failure::BadReply(
            "the reply has no \"I get it!\" acknowledgement".into(),
        ))
    }
}

/// `echo`: send MESSAGE, print what comes back, and check it is the same bytes.
fn echo(target: &Target, message: &[u8], udp: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let echoed = if udp {
        if message.is_empty() {
            return Err(Failure::Usage(
                "an empty datagram gets no echo: give a non-empty MESSAGE".into(),
            ));
        }
        let mut reply = vec![0; DATAGRAM_MAX];
        let n = net::udp_request(
            &target.addr,
            message,
            &mut reply,
            target.timeout,
            target.tries,
        )?;
        reply.truncate(n);
        reply
    } else {
        let mut conn = Connection::open(&target.addr, target.timeout)?;
        conn.send(message)?;
        conn.half_close()?;
        // One byte more than was sent is enough to know the echo is wrong.
        conn.receive_until_eof(message.len() as u64 + 1)?
    };
    net::write_out(out, &echoed)?;
    if echoed == message {
        return Ok(());
    }
    let same = message
        .iter()
        .zip(&echoed)
        .take_while(|(a, b)| a == b)
        .count();
    let got = if echoed.len() > message.len() {
        format!("more than {}", message.len())
    } else {
        echoed.len().to_string()
    };
    Err(Failure::BadReply(format!(
        "the echo differs from byte {same} on: sent {} bytes, got back {got}",
        message.len()
    )))
}

/// `time`: ask for the time (UDP: an empty datagram; TCP: just connect), check that the
/// reply is 4 bytes, and print it as UTC and as the raw count.
fn time(target: &Target, tcp: bool, epoch: Epoch, out: &mut dyn Write) -> Result<(), Failure> {
    let reply = if tcp {
        let mut conn = Connection::open(&target.addr, target.timeout)?;
        conn.receive_until_eof(DATAGRAM_MAX as u64)?
    } else {
        let mut reply = vec![0; DATAGRAM_MAX];
        let n = net::udp_request(&target.addr, b"", &mut reply, target.timeout, target.tries)?;
        reply.truncate(n);
        reply
    };
    let Ok(bytes) = <[u8; 4]>::try_from(reply.as_slice()) else {
        return Err(Failure::BadReply(format!(
            "reply error {}: {:?}",
            reply.len(),
            String::from_utf8_lossy(&reply)
        )));
    };
    let value = u32::from_be_bytes(bytes);
    let line = format!(
        "{} ({value} s since {})\n",
        text::rfc3339_utc(unix_seconds(value, epoch).into()),
        epoch_year(epoch)
    );
    net::write_out(out, line.as_bytes())
}

/// `raw`: send TEXT, half-close, print everything until EOF.
fn raw(target: &Target, send: &[u8], out: &mut dyn Write) -> Result<(), Failure> {
    let mut conn = Connection::open(&target.addr, target.timeout)?;
    conn.send(send)?;
    conn.half_close()?;
    conn.relay_until_eof(out, |_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_unfinished_lines_ending_in_a_colon() {
        assert!(ends_with_prompt(
            b"Welcome, 127.0.0.1:4\nPlease enter a string: "
        ));
        assert!(ends_with_prompt(
            b"welcome, ('127.0.0.1', 4)\nPlease enter a string :"
        ));
        assert!(!ends_with_prompt(b"Welcome, 127.0.0.1:4\n"));
        assert!(!ends_with_prompt(b"Welcome, 127.0.0.1:"));
        assert!(!ends_with_prompt(b"Welcome, 127.0.0.1:4\nPlease enter"));
        assert!(!ends_with_prompt(b""));
    }

    #[test]
    fn only_a_count_reply_is_success() {
        assert!(count_verdict(b"You entered 5 characters.\n").is_ok());
        assert!(count_verdict(b"Please enter a string: You entered 0 characters.\r\n").is_ok());
        for bad in [
            &b"Error: server busy (10000 connections)\n"[..],
            b"You entered  characters.\n",
            b"You entered x characters.\n",
            b"",
        ] {
            assert!(matches!(count_verdict(bad), Err(Failure::BadReply(_))));
        }
    }

    #[test]
    fn rfc868_time_converts_to_unix_time_across_the_2036_wrap() {
        assert_eq!(unix_seconds(2_208_988_800, Epoch::Rfc868), 0);
        assert_eq!(unix_seconds(4_004_228_987, Epoch::Rfc868), 1_795_240_187);
        // 2036-02-07T06:28:16Z: the 1900 count wraps to 0.
        assert_eq!(unix_seconds(0, Epoch::Rfc868), 2_085_978_496);
        assert_eq!(unix_seconds(1_795_240_187, Epoch::Unix), 1_795_240_187);
    }
}
