//! Every TCP session fed arbitrary bytes in arbitrary chunks, through the public API the
//! connection uses (`Session::open`, `on_data`, then `on_eof`, `on_deadline` or
//! `on_shutdown`). Checks that nothing panics, that what each call writes is bounded and has
//! the protocol's form, and that `count` and `stats`, which stream their input, answer the
//! same whatever the chunking.
//!
//! Input: byte 0 picks the session and how it ends, byte 1 the line limit, the rest is the
//! stream cut into chunks (`oneloop_fuzz::chunks`).
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use oneloop::proto::{Ack, Epoch, Service, Session, Settings, Step, MAX_REQUEST};
use oneloop::server::counters::NO_METRICS;

const ACK: &[u8] = b"\nI get it!\n";

/// What ends the input, after the chunks.
#[derive(Clone, Copy)]
enum End {
    Eof,
    Deadline,
    Shutdown,
    /// Nothing: the client is still there.
    Open,
}

/// Whether a session is done: nothing more is fed to it after this step.
fn finished(step: Step) -> bool {
    !matches!(step, Step::NeedMore)
}

/// Runs a session over `chunks`; returns what it wrote and its last step.
fn run(kind: u8, chunks: &[&[u8]], end: End, settings: &Settings) -> (Vec<u8>, Step) {
    let peer = "192.0.2.7:40512".parse().unwrap();
    let clock = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut out = Vec::new();
    let (mut session, mut step) = match kind {
        0 => Session::open(Service::Count, peer, clock, Epoch::Unix, &mut out),
        1 => Session::open(Service::Echo, peer, clock, Epoch::Unix, &mut out),
        2 => Session::open(Service::Ack, peer, clock, Epoch::Unix, &mut out),
        3 => Session::open(Service::Time, peer, clock, Epoch::Rfc868, &mut out),
        4 => Session::open(Service::Stats, peer, clock, Epoch::Unix, &mut out),
        _ => (Session::Ack(Ack::numbered(1)), Step::NeedMore),
    };
    if kind == 3 {
        assert_eq!(out.len(), 4, "time says four bytes");
    }
    for chunk in chunks {
        if finished(step) {
            return (out, step);
        }
        let before = out.len();
        step = session.on_data(chunk, settings, &mut out);
        let said = &out[before..];
        match kind {
            1 => assert_eq!(said, *chunk, "echo says back what it got"),
            2 => assert_eq!(said, [*chunk, ACK, settings.ack_reply].concat()),
            5 => {
                assert_eq!(step, Step::AskOperator);
                assert_eq!(said, [*chunk, ACK].concat());
                let before = out.len();
                step = session.on_operator(b"fine\n", &mut out);
                assert_eq!(&out[before..], b"fine\n");
            }
            _ => {}
        }
    }
    if !finished(step) {
        step = match end {
            End::Eof => session.on_eof(&mut out),
            End::Deadline => session.on_deadline(settings, &mut out),
            End::Shutdown => session.on_shutdown(&mut out),
            End::Open => step,
        };
    }
    (out, step)
}

/// Checks `count`'s output: the welcome, then nothing or one answer line.
fn check_count(out: &[u8], step: Step) {
    let welcome: &[u8] = b"Welcome, 192.0.2.7:40512\nPlease enter a string: ";
    let reply = out
        .strip_prefix(welcome)
        .expect("count begins with the welcome");
    if reply.is_empty() {
        return;
    }
    let line = std::str::from_utf8(reply).expect("count's answers are text");
    let body = line.strip_suffix('\n').expect("one line");
    assert!(!body.contains('\n'), "one line: {line:?}");
    match step {
        Step::Answered => {
            let n = body
                .strip_prefix("You entered ")
                .and_then(|rest| rest.strip_suffix(" characters."))
                .expect("the answer");
            n.parse::<u32>().expect("a count");
        }
        Step::Refused(_) => assert!(body.starts_with("Error: "), "{line:?}"),
        other => panic!("count said {line:?} with {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let [select, limit, stream @ ..] = data else {
        return;
    };
    let kind = select % 6;
    let end = match (select >> 3) & 3 {
        0 => End::Eof,
        1 => End::Deadline,
        2 => End::Shutdown,
        _ => End::Open,
    };
    let settings = Settings {
        max_line: 1 + usize::from(*limit) * 17,
        idle_timeout: Duration::from_millis(1 + u64::from(*limit) * 997),
        ack_reply: if select & 0x80 != 0 { b"ok\n" } else { b"" },
        console: kind == 5,
        metrics: &NO_METRICS,
    };
    let chunks = oneloop_fuzz::chunks(stream);
    let (out, step) = run(kind, &chunks, end, &settings);
    match kind {
        0 => {
            check_count(&out, step);
            // The line is counted as it streams past: the chunking changes nothing.
            let whole = chunks.concat();
            assert_eq!(run(kind, &[&whole], end, &settings), (out, step));
        }
        4 => {
            assert!(
                out.is_empty() || out.starts_with(b"HTTP/1.0 "),
                "an HTTP reply"
            );
            assert!(out.len() <= 64 * 1024, "a reply of {} bytes", out.len());
            assert!(
                finished(step) || chunks.iter().map(|c| c.len()).sum::<usize>() <= MAX_REQUEST,
                "a request head longer than {MAX_REQUEST} bytes was still read"
            );
            let whole = chunks.concat();
            assert_eq!(run(kind, &[&whole], end, &settings), (out, step));
        }
        _ => {}
    }
});
