//! The five clients: what each one sends, and how it judges the reply.
//!
//! Each function is the whole conversation of one protocol from the client's side, written
//! top to bottom; the socket details live in `net.rs`.

use std::io::{self, BufRead, Write};
use std::ops::ControlFlow;

use super::net::{self, Connection, Relayed};
use super::{text, Failure, Request, Target};
use crate::log::escape::Escaped;
use crate::proto::Epoch;
use crate::proto::SECONDS_1900_TO_1970;

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

/// The seconds since `epoch` that a 32-bit time value denotes, read as a time from 1970 to
/// 2106: past the 1900 count's wrap in 2036, more than the 32 bits hold (value 4 then is
/// 2^32 + 4 seconds since 1900).
fn seconds_since_epoch(value: u32, epoch: Epoch) -> u64 {
    match epoch {
        Epoch::Unix => value.into(),
        Epoch::Rfc868 => u64::from(unix_seconds(value, epoch)) + SECONDS_1900_TO_1970,
    }
}

/// The largest UDP reply we take whole (a datagram carries at most 65,507 bytes of data).
const DATAGRAM_MAX: usize = 65_536;

/// The most a bounded protocol takes from a TCP server: `count`'s welcome and prompt, then
/// `count`'s reply, each; a `time` reply. Past it the client stops reading and fails.
pub(super) const REPLY_MAX: usize = 64 * 1024;

fn over_limit() -> String {
    format!("the server sent more than {REPLY_MAX} bytes")
}

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
/// `Please enter a string: ` and the Python tutorial's `Please enter a string :` alike). A server that
/// refuses (`Error: server busy ...`) closes before prompting; nothing is sent then.
///
/// The greeting and the reply are printed as they come (the prompt must show before a person
/// types), each up to [`REPLY_MAX`] bytes: at the first byte past that the client stops
/// reading and fails, without printing it. The wait for a line on stdin is not counted
/// against `--deadline`: it is a person's wait, not the server's.
fn count(
    target: &Target,
    line: Option<Vec<u8>>,
    out: &mut dyn Write,
    input: &mut dyn BufRead,
) -> Result<(), Failure> {
    let mut conn = Connection::open(&target.addr, target.waits)?;
    let mut greeting = Vec::new();
    let greeted = conn.relay(out, Some(REPLY_MAX), |piece| {
        greeting.extend_from_slice(piece);
        if ends_with_prompt(&greeting) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    match greeted {
        Relayed::Stopped => {}
        Relayed::Eof => return count_verdict(&greeting),
        Relayed::OverLimit => {
            return Err(Failure::BadReply(format!("{} and no prompt", over_limit())))
        }
    }

    let line = match line {
        Some(mut line) => {
            line.push(b'\n');
            line
        }
        None => conn.off_the_clock(|| read_line(input))?,
    };
    conn.send(&line)?;
    conn.half_close()?;
    let mut reply = Vec::new();
    let replied = conn.relay(out, Some(REPLY_MAX), |piece| {
        reply.extend_from_slice(piece);
        ControlFlow::Continue(())
    })?;
    match replied {
        Relayed::OverLimit => Err(Failure::BadReply(format!("reply error: {}", over_limit()))),
        Relayed::Eof | Relayed::Stopped => count_verdict(&reply),
    }
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
    let mut conn = Connection::open(&target.addr, target.waits)?;
    conn.send(message)?;
    conn.half_close()?;
    // The acknowledgement may arrive split across reads: search the new bytes together with
    // the few before them that could start it.
    let mut recent = Vec::new();
    let mut acknowledged = false;
    conn.relay(out, None, |piece| {
        recent.extend_from_slice(piece);
        acknowledged |= recent.windows(ACK.len()).any(|w| w == ACK);
        recent.drain(..recent.len().saturating_sub(ACK.len() - 1));
        ControlFlow::Continue(())
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
            target.waits,
            target.tries,
        )?;
        reply.truncate(n);
        reply
    } else {
        let mut conn = Connection::open(&target.addr, target.waits)?;
        conn.send(message)?;
        conn.half_close()?;
        // One byte more than was sent is enough to know the echo is wrong.
        conn.receive_until_eof(message.len() + 1)?
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
/// reply is 4 bytes, and print it as UTC and as the seconds since the epoch.
///
/// Over TCP the reply's length is known only at EOF, so the client reads until then, but
/// no further than [`REPLY_MAX`] bytes. A bad reply's error shows its first bytes, escaped.
fn time(target: &Target, tcp: bool, epoch: Epoch, out: &mut dyn Write) -> Result<(), Failure> {
    let reply = if tcp {
        let mut conn = Connection::open(&target.addr, target.waits)?;
        conn.receive_until_eof(REPLY_MAX + 1)?
    } else {
        let mut reply = vec![0; DATAGRAM_MAX];
        let n = net::udp_request(&target.addr, b"", &mut reply, target.waits, target.tries)?;
        reply.truncate(n);
        reply
    };
    let Ok(bytes) = <[u8; 4]>::try_from(reply.as_slice()) else {
        return Err(Failure::BadReply(if reply.len() > REPLY_MAX {
            let start = &reply[..Escaped::SHOWN];
            format!("reply error: {}, starting {}", over_limit(), Escaped(start))
        } else {
            format!("reply error {}: {}", reply.len(), Escaped(&reply))
        }));
    };
    let value = u32::from_be_bytes(bytes);
    let line = format!(
        "{} ({} s since {})\n",
        text::rfc3339_utc(unix_seconds(value, epoch).into()),
        seconds_since_epoch(value, epoch),
        epoch_year(epoch)
    );
    net::write_out(out, line.as_bytes())
}

/// `raw`: send TEXT, half-close, print everything until EOF.
fn raw(target: &Target, send: &[u8], out: &mut dyn Write) -> Result<(), Failure> {
    let mut conn = Connection::open(&target.addr, target.waits)?;
    conn.send(send)?;
    conn.half_close()?;
    conn.relay(out, None, |_| ControlFlow::Continue(()))?;
    Ok(())
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

    #[test]
    fn past_the_2036_wrap_the_seconds_since_1900_pass_32_bits() {
        assert_eq!(
            seconds_since_epoch(4_004_228_987, Epoch::Rfc868),
            4_004_228_987
        );
        assert_eq!(
            seconds_since_epoch(u32::MAX, Epoch::Rfc868),
            u64::from(u32::MAX)
        );
        assert_eq!(seconds_since_epoch(0, Epoch::Rfc868), 1 << 32);
        assert_eq!(seconds_since_epoch(4, Epoch::Rfc868), (1 << 32) + 4);
        assert_eq!(seconds_since_epoch(4, Epoch::Unix), 4);
    }
}
