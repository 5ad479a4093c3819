//! The connection's tests: its pure decisions, scripted sockets, and a model of every service
//! driven by proptest through reads, writes, deadlines and events in any order.

use super::*;
use crate::proto::{display_peer, LineCounter};
use crate::proto::{Epoch, Service};
use proptest::prelude::*;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::SystemTime;

#[test]
fn after_the_last_words_a_read_eof_closes_at_once_else_it_lingers() {
    assert_eq!(after_last_words(Input::Ended), Finish::CloseNow);
    assert_eq!(
        after_last_words(Input::FinReported),
        Finish::Linger { shutdown: false }
    );
    assert_eq!(
        after_last_words(Input::Open),
        Finish::Linger { shutdown: true }
    );
}

#[test]
fn a_short_read_after_a_reported_fin_is_the_eof() {
    assert_eq!(got(0, 10, Input::Open), Got::Eof);
    assert_eq!(got(4, 10, Input::Open), Got::Data(4));
    assert_eq!(got(4, 10, Input::FinReported), Got::DataThenEof(4));
    // A full read may have more behind it, FIN or not.
    assert_eq!(got(10, 10, Input::FinReported), Got::Data(10));
}

#[test]
fn lingering_reads_drain_until_the_eof_and_send_a_missing_fin() {
    for fin_sent in [true, false] {
        assert_eq!(linger_read(Got::Eof, fin_sent), Linger::Close);
        assert_eq!(linger_read(Got::DataThenEof(3), fin_sent), Linger::Close);
        assert_eq!(linger_read(Got::Data(3), fin_sent), Linger::Drain);
    }
    assert_eq!(linger_read(Got::Nothing, true), Linger::Wait);
    assert_eq!(linger_read(Got::Nothing, false), Linger::SendFin);
}

/// What a scripted socket does on each call.
#[derive(Clone, Debug)]
enum Act {
    /// A read returns these bytes (empty: EOF).
    Read(Vec<u8>),
    /// A write takes at most this many bytes.
    Take(usize),
    /// A write takes everything.
    All,
    Block,
    Fail(io::ErrorKind),
}

/// A socket that follows a script; past its end every read would block, and every write
/// too unless `drained`. It records what the connection did with it, faults included.
#[derive(Debug, Default)]
struct Script {
    reads: VecDeque<Act>,
    writes: VecDeque<Act>,
    /// Past the write script, writes take everything (the client reads at last).
    drained: bool,
    written: Vec<u8>,
    shut: bool,
    /// What each read returned, in order.
    delivered: Vec<Vec<u8>>,
    /// The EOF was read: every read from now on returns 0, as a socket's do.
    eof: bool,
    /// The last write did not take all it was offered, so the connection holds output.
    held: bool,
    /// Reads and peeks made while the connection held output.
    read_while_held: usize,
    /// Reads made after the EOF was read.
    read_after_eof: usize,
    /// Writes made after the write side was shut down.
    written_after_shut: usize,
}

fn next(acts: &mut VecDeque<Act>) -> Act {
    acts.pop_front().unwrap_or(Act::Block)
}

/// Whether an act is bytes for a read (not the EOF).
fn is_data(act: &Act) -> bool {
    matches!(act, Act::Read(bytes) if !bytes.is_empty())
}

impl Io for Script {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_while_held += usize::from(self.held);
        if self.eof {
            self.read_after_eof += 1;
            return Ok(0);
        }
        match next(&mut self.reads) {
            Act::Read(mut bytes) => {
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                if bytes.is_empty() {
                    self.eof = true;
                } else {
                    let rest = bytes.split_off(n);
                    if !rest.is_empty() {
                        self.reads.push_front(Act::Read(rest));
                    }
                    self.delivered.push(bytes);
                }
                Ok(n)
            }
            Act::Fail(kind) => Err(kind.into()),
            Act::Take(_) | Act::All | Act::Block => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write(&mut self, buf: &[u8], _more: bool) -> io::Result<usize> {
        self.written_after_shut += usize::from(self.shut);
        let act = match self.writes.pop_front() {
            Some(act) => act,
            None if self.drained => Act::All,
            None => Act::Block,
        };
        let n = match act {
            Act::Take(n) => n.min(buf.len()),
            Act::All | Act::Read(_) => buf.len(),
            Act::Fail(kind) => return Err(kind.into()),
            Act::Block => {
                self.held = true;
                return Err(io::ErrorKind::WouldBlock.into());
            }
        };
        if n == buf.len() {
            self.held = false;
        }
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shut = true;
        Ok(())
    }

    /// Everything queued up to the first act that is not data. A `WouldBlock` or an
    /// `Interrupted` there stands for time passing (or a signal) and is used up, so the
    /// next peek sees what arrived after it.
    fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_while_held += usize::from(self.held);
        if self.eof {
            return Ok(0);
        }
        let mut n = 0;
        for act in self.reads.iter().take_while(|act| is_data(act)) {
            if let Act::Read(bytes) = act {
                let k = bytes.len().min(buf.len() - n);
                buf[n..n + k].copy_from_slice(&bytes[..k]);
                n += k;
            }
        }
        let boundary = self.reads.iter().position(|act| !is_data(act));
        let passing = boundary.filter(|&at| {
            matches!(
                self.reads[at],
                Act::Block | Act::Fail(io::ErrorKind::Interrupted)
            )
        });
        if n > 0 {
            if let Some(at) = passing {
                self.reads.remove(at);
            }
            return Ok(n);
        }
        match self.reads.front() {
            Some(Act::Read(_)) => Ok(0),
            Some(Act::Fail(kind)) if passing.is_none() => Err((*kind).into()),
            Some(Act::Fail(kind)) => {
                let kind = *kind;
                self.reads.pop_front();
                Err(kind.into())
            }
            Some(Act::Block) => {
                self.reads.pop_front();
                Err(io::ErrorKind::WouldBlock.into())
            }
            _ => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// The client's address in these tests.
fn peer() -> SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

/// The wall clock these tests' sessions see: `time` says 01 02 03 04.
fn clock() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(0x0102_0304)
}

struct Loop {
    read_buf: Vec<u8>,
    out: Vec<u8>,
    now: Millis,
    ack_reply: &'static [u8],
}

impl Loop {
    fn new() -> Loop {
        Loop {
            read_buf: vec![0; 4096],
            out: Vec::new(),
            now: 0,
            ack_reply: b"",
        }
    }

    fn cx(&mut self) -> Cx<'_> {
        Cx {
            read_buf: &mut self.read_buf,
            out: &mut self.out,
            settings: Settings {
                max_line: 100,
                idle_timeout: Duration::from_secs(30),
                ack_reply: self.ack_reply,
                console: false,
                metrics: &crate::server::counters::NO_METRICS,
            },
            max_output: 4096,
            linger: Duration::from_secs(2),
            now: self.now,
        }
    }

    /// A connection whose session was just opened (its first words in `self.out`).
    fn start(&mut self, opened: (Session, Step), script: Script) -> io::Result<Conn<Script>> {
        let (session, step) = opened;
        Conn::open(0, script, session, step, &mut self.cx())
    }

    fn open(&mut self, service: Service, script: Script) -> Conn<Script> {
        let opened = Session::open(service, peer(), clock(), Epoch::Unix, &mut self.out);
        self.start(opened, script).unwrap()
    }
}

/// Every write takes everything.
fn writes_all() -> VecDeque<Act> {
    (0..64).map(|_| Act::All).collect()
}

const WELCOME: &[u8] = b"Welcome, 127.0.0.1:9\nPlease enter a string: ";

#[test]
fn count_answers_then_closes_at_once_after_the_clients_eof() {
    let mut l = Loop::new();
    let script = Script {
        reads: VecDeque::from([Act::Read(b"hi\n".into())]),
        writes: writes_all(),
        ..Script::default()
    };
    let mut c = l.open(Service::Count, script);
    assert_eq!(c.pump(0, &mut l.cx()), Status::Open);
    assert_eq!(c.state(), State::Lingering { fin_sent: true });
    assert!(c.io.shut);
    assert_eq!(c.deadline().map(|d| d.kind), Some(Kind::Linger));
    // The client's EOF, after the reply.
    c.io.reads.push_back(Act::Read(b"".into()));
    assert!(matches!(c.pump(0, &mut l.cx()), Status::Closed(_)));
    assert_eq!(
        c.io.written,
        [WELCOME, b"You entered 2 characters.\n"].concat()
    );
}

#[test]
fn a_reported_fin_skips_the_shutdown() {
    let mut l = Loop::new();
    let script = Script {
        reads: VecDeque::from([Act::Read(b"abc".into())]),
        writes: writes_all(),
        ..Script::default()
    };
    let mut c = l.open(Service::Count, script);
    c.on_peer_fin();
    // A short read after the FIN was reported: the EOF, without another read.
    assert!(matches!(c.pump(0, &mut l.cx()), Status::Closed(_)));
    assert!(!c.io.shut);
    assert!(c.io.written.ends_with(b"You entered 3 characters.\n"));
}

#[test]
fn output_that_waits_stops_the_reading_and_a_deadline_then_closes() {
    let mut l = Loop::new();
    let script = Script {
        reads: VecDeque::from([Act::Read(b"0123456789".into()), Act::Read(b"more".into())]),
        writes: VecDeque::from([Act::Take(4), Act::Block]),
        ..Script::default()
    };
    let mut c = l.open(Service::Echo, script);
    assert_eq!(c.pump(0, &mut l.cx()), Status::Open);
    assert_eq!(c.unsent, b"456789");
    // The second read was never made: nothing is read while output waits.
    assert_eq!(c.io.reads.len(), 1);
    l.now = 31_000;
    let expired = c.on_deadline(0, &mut l.cx());
    assert!(matches!(expired.status, Status::Closed(_)), "{expired:?}");
    assert!(expired.timed_out);
    assert!(c.unsent.is_empty());
}

#[test]
fn counts_timeout_message_gets_the_linger_time_then_the_connection_closes() {
    let mut l = Loop::new();
    let script = Script {
        writes: VecDeque::from([Act::All, Act::Take(3), Act::Block]),
        ..Script::default()
    };
    let mut c = l.open(Service::Count, script);
    l.now = 30_000;
    assert_eq!(
        c.on_deadline(0, &mut l.cx()),
        Expired {
            status: Status::Open,
            timed_out: true
        }
    );
    assert_eq!(c.state(), State::TimedOut);
    assert_eq!(
        c.deadline(),
        Some(Deadline {
            kind: Kind::Linger,
            due: 32_000
        })
    );
    l.now = 32_000;
    let expired = c.on_deadline(0, &mut l.cx());
    assert!(matches!(expired.status, Status::Closed(_)));
    // The linger deadline is not a second timeout.
    assert!(!expired.timed_out);
}

/// A `count` session begins for `source` on a connection whose PROXY header was read.
fn begin_count(l: &mut Loop, c: &mut Conn<Script>, source: SocketAddr) {
    let (session, step) = Session::open(
        Service::Count,
        source,
        SystemTime::now(),
        Epoch::Unix,
        &mut l.out,
    );
    c.begin(0, session, step, &mut l.cx());
}

#[test]
fn a_proxy_header_is_read_and_not_a_byte_past_it() {
    let mut l = Loop::new();
    let script = Script {
        reads: VecDeque::from([Act::Read(
            b"PROXY TCP4 10.1.2.3 10.0.0.1 4000 51423\r\nhi\n".into(),
        )]),
        writes: writes_all(),
        ..Script::default()
    };
    let mut c = Conn::awaiting_header(0, script, &mut l.cx());
    assert_eq!(c.state(), State::Header);
    let Status::Proxied(header) = c.pump(0, &mut l.cx()) else {
        panic!("no header")
    };
    let source = "10.1.2.3:4000".parse().unwrap();
    assert_eq!(
        header,
        Header::Proxied {
            source,
            destination: "10.0.0.1:51423".parse().unwrap()
        }
    );
    // What follows the header is the client's, still queued for the session.
    begin_count(&mut l, &mut c, source);
    assert_eq!(
        c.io.written,
        [
            &b"Welcome, 10.1.2.3:4000\nPlease enter a string: "[..],
            b"You entered 2 characters.\n"
        ]
        .concat()
    );
}

#[test]
fn a_proxy_header_not_queued_whole_is_read_in_pieces_and_not_a_byte_past_it() {
    let mut l = Loop::new();
    // A version 2 header for 10.1.2.3:4000 with a 2,000-byte extension (type 0x04).
    let mut body = vec![
        10, 1, 2, 3, 10, 0, 0, 1, 0x0f, 0xa0, 0xc8, 0xdf, 0x04, 0x07, 0xd0,
    ];
    body.resize(body.len() + 2000, 0xaa);
    let len = (body.len() as u16).to_be_bytes();
    let header = [&b"\r\n\r\n\0\r\nQUIT\n\x21\x11"[..], &len, &body].concat();
    // It comes in three parts; the client's line follows the last one at once. (The
    // scripted peek sees the first part alone, and takes the first pause as time gone by:
    // the first pump reads two parts.)
    let script = Script {
        reads: VecDeque::from([
            Act::Read(header[..1000].to_vec()),
            Act::Block,
            Act::Read(header[1000..1500].to_vec()),
            Act::Block,
            Act::Read([&header[1500..], b"hi\n"].concat()),
        ]),
        writes: writes_all(),
        ..Script::default()
    };
    let mut c = Conn::awaiting_header(0, script, &mut l.cx());
    assert_eq!(c.pump(0, &mut l.cx()), Status::Open);
    assert!(matches!(c.session, Session::Unopened(Some(_))));
    let Status::Proxied(header) = c.pump(0, &mut l.cx()) else {
        panic!("no header")
    };
    let source = "10.1.2.3:4000".parse().unwrap();
    assert!(matches!(header, Header::Proxied { source: s, .. } if s == source));
    // Not a byte of the client's line was read with the header.
    assert_eq!(c.io.reads.len(), 1);
    begin_count(&mut l, &mut c, source);
    assert!(c.io.written.ends_with(b"You entered 2 characters.\n"));
}

#[test]
fn a_bad_or_missing_proxy_header_closes_without_a_word() {
    let mut l = Loop::new();
    let script = Script {
        reads: VecDeque::from([Act::Read(b"GET / HTTP/1.0\r\n\r\n".into())]),
        ..Script::default()
    };
    let mut c = Conn::awaiting_header(0, script, &mut l.cx());
    assert!(matches!(c.pump(0, &mut l.cx()), Status::Closed(_)));
    let mut c = Conn::awaiting_header(0, Script::default(), &mut l.cx());
    assert_eq!(c.pump(0, &mut l.cx()), Status::Open);
    l.now = 5_000;
    let expired = c.on_deadline(0, &mut l.cx());
    assert!(matches!(expired.status, Status::Closed(_)));
    // The wait for the header is silent, and not the request's timeout.
    assert!(!expired.timed_out);
    assert!(c.io.written.is_empty());
}

#[test]
fn a_reset_closes_and_drops_the_output() {
    let mut l = Loop::new();
    let script = Script {
        reads: VecDeque::from([Act::Fail(io::ErrorKind::ConnectionReset)]),
        writes: writes_all(),
        ..Script::default()
    };
    let mut c = l.open(Service::Ack, script);
    assert_eq!(c.pump(0, &mut l.cx()), Status::Closed("reset by peer"));
}

mod diagram;
mod model;
