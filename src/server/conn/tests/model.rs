//! The model: a connection driven the way the loop drives it (`pump` on readiness,
//! `on_peer_fin` then `pump` when the poll reports the client's FIN, `on_deadline` when the
//! deadline is due), over a socket whose every call is scripted by proptest. Run longer with
//! `PROPTEST_CASES=100000 cargo test --lib conn::tests::model`.

use super::*;

/// How many pumps in a row may yield before the model calls it a spin.
const MAX_TURNS: usize = 1000;

/// How many deadlines an open connection may need to close once nothing else happens:
/// the request deadline, then at most two linger deadlines (count's message, then the
/// linger after our FIN).
const DRAIN_DEADLINES: usize = 3;

/// `ack`'s text after each read, in the model.
const ACK_REPLY: &[u8] = b"ok\n";

/// The most output a connection may hold: one read's answer.
const HELD_MAX: usize = 4096 + b"\nI get it!\n".len() + ACK_REPLY.len();

/// The reasons for a close once the last words are out: the client's EOF was read
/// before they were, or while the connection lingered.
const CLOSE_NOW: &str = "the client already sent EOF, so no shutdown or linger is needed";
const LINGER_DONE: &str = "the client's EOF came";

/// The session a model connection serves (after a PROXY header or not: `model`'s
/// `proxied`).
#[derive(Clone, Copy, Debug)]
enum Opening {
    Service(Service),
    /// The busy refusal.
    Busy,
}

/// What happens to the connection between pumps.
#[derive(Clone, Copy, Debug)]
enum Event {
    /// The poll reports readiness.
    Ready,
    /// The poll reports the client's FIN (and readiness).
    Fin,
    /// The deadline fires, `late` ms after it was due.
    Deadline { late: u8 },
}

/// The session `opening` begins for `peer`, its first words in `out`.
fn open_session(opening: Opening, peer: SocketAddr, out: &mut Vec<u8>) -> (Session, Step) {
    match opening {
        Opening::Service(service) => Session::open(service, peer, clock(), Epoch::Unix, out),
        Opening::Busy => Session::busy(7, out),
    }
}

/// One connection's life under the model, and what it showed so far.
struct Run {
    conn: Conn<Script>,
    opening: Opening,
    /// The client the session serves (the one a PROXY header names).
    peer: SocketAddr,
    /// Where the session's input begins among the reads: past the PROXY header, if any.
    /// `None` while the header is awaited.
    first_read: Option<usize>,
    /// Why it closed, once it has.
    closed: Option<&'static str>,
    /// A deadline fired while serving (so `count` may say it timed out).
    timed_out: bool,
    /// A deadline has fired: from then on the connection never serves.
    after_deadline: bool,
    /// How often a deadline said it was the connection's timeout.
    timeouts: u32,
    /// It lingered, so its last words were all out.
    lingered: bool,
}

impl Run {
    fn event(&mut self, l: &mut Loop, event: Event) -> Result<(), TestCaseError> {
        let status = match event {
            Event::Ready => self.conn.pump(0, &mut l.cx()),
            Event::Fin => {
                self.conn.on_peer_fin();
                self.conn.pump(0, &mut l.cx())
            }
            Event::Deadline { late } => {
                let due = self.conn.deadline().map(|d| d.due);
                let Some(due) = due else {
                    return Err(TestCaseError::fail("an open connection has no deadline"));
                };
                l.now = l.now.max(due) + Millis::from(late);
                let before = (self.conn.state(), self.conn.deadline());
                self.timed_out |= before.0 == State::Serving;
                let expired = self.conn.on_deadline(0, &mut l.cx());
                let status = expired.status;
                // A connection times out at most once: it leaves its request deadline or
                // idle limit for good.
                self.timeouts += u32::from(expired.timed_out);
                prop_assert!(self.timeouts <= 1, "timed out {} times", self.timeouts);
                // A timeout of a serving connection is always counted.
                prop_assert!(expired.timed_out || before.0 != State::Serving);
                prop_assert!(
                    matches!(status, Status::Closed(_))
                        || (self.conn.state(), self.conn.deadline()) != before,
                    "a deadline left the connection as it was: {:?}",
                    before
                );
                self.after_deadline = true;
                status
            }
        };
        self.settle(l, status)
    }

    /// Acts on a status as the loop does: pumps again after a yield, begins the session
    /// after the PROXY header.
    fn settle(&mut self, l: &mut Loop, mut status: Status) -> Result<(), TestCaseError> {
        for _ in 0..MAX_TURNS {
            match status {
                Status::Open => return self.check(l),
                Status::Closed(why) => {
                    self.closed = Some(why);
                    return self.check(l);
                }
                Status::Yielded => {
                    self.check(l)?;
                    status = self.conn.pump(0, &mut l.cx());
                }
                Status::Proxied(header) => {
                    self.check(l)?;
                    // Exactly the header was read: not a byte past it.
                    let taken = self.conn.io.delivered.concat();
                    prop_assert_eq!(
                        proxy::scan(&taken),
                        proxy::Scan::Header {
                            header,
                            len: taken.len()
                        }
                    );
                    self.first_read = Some(self.conn.io.delivered.len());
                    if let Header::Proxied { source, .. } = header {
                        self.peer = display_peer(source);
                    }
                    let (session, step) = open_session(self.opening, self.peer, &mut l.out);
                    status = self.conn.begin(0, session, step, &mut l.cx());
                }
                Status::Awaits(_) => {
                    return Err(TestCaseError::fail("waits for an operator it has not"))
                }
            }
        }
        Err(TestCaseError::fail("yielded without end"))
    }

    /// The invariants that hold after every call.
    fn check(&mut self, l: &Loop) -> Result<(), TestCaseError> {
        let (conn, io) = (&self.conn, &self.conn.io);
        prop_assert!(
            l.out.is_empty(),
            "the loop's output buffer is left with bytes"
        );
        prop_assert_eq!(io.read_while_held, 0, "read while output was held");
        prop_assert_eq!(io.read_after_eof, 0, "read after the EOF");
        prop_assert_eq!(io.written_after_shut, 0, "wrote after the shutdown");
        prop_assert!(
            conn.unsent.len() <= HELD_MAX,
            "{} bytes held",
            conn.unsent.len()
        );
        if self.closed.is_none() {
            prop_assert_eq!(io.held, !conn.unsent.is_empty());
            prop_assert!(conn.deadline().is_some(), "open without a deadline");
            prop_assert!(
                !(self.after_deadline && conn.state() == State::Serving),
                "serving again after a deadline"
            );
            self.lingered |= matches!(conn.state(), State::Lingering { .. });
        }
        Ok(())
    }

    /// What the client may have received: every reply the protocol allows for the input
    /// the session was given. The bytes written are a prefix of one of them.
    fn replies(&self) -> Vec<Vec<u8>> {
        let Some(first) = self.first_read else {
            // No session began: nothing is said.
            return vec![Vec::new()];
        };
        let input = &self.conn.io.delivered[first..];
        let Opening::Service(service) = self.opening else {
            return vec![b"Error: server busy (7 connections)\n".to_vec()];
        };
        match service {
            Service::Count => {
                let welcome = format!("Welcome, {}\nPlease enter a string: ", self.peer);
                let all = input.concat();
                let line = all.split(|&b| b == b'\n').next().unwrap_or_default();
                let mut replies = vec![if line.len() > 100 {
                    "Error: line too long (limit 100 bytes)\n".to_string()
                } else {
                    let mut counter = LineCounter::default();
                    counter.push(line);
                    format!("You entered {} characters.\n", counter.finish())
                }];
                if self.timed_out {
                    replies.push("Error: timed out after 30 s\n".to_string());
                }
                replies
                    .into_iter()
                    .map(|reply| (welcome.clone() + &reply).into_bytes())
                    .collect()
            }
            Service::Echo => vec![input.concat()],
            Service::Ack => vec![input
                .iter()
                .flat_map(|read| [&read[..], b"\nI get it!\n", ACK_REPLY].concat())
                .collect()],
            Service::Time => vec![vec![1, 2, 3, 4]],
            Service::Stats => unreachable!("the model does not serve stats"),
        }
    }
}

/// Runs a connection through `events`, then keeps pumping it and firing its deadlines:
/// it must close, and the bytes it wrote must be the protocol's.
fn model(
    opening: Opening,
    proxied: bool,
    script: Script,
    events: Vec<Event>,
) -> Result<(), TestCaseError> {
    let mut l = Loop::new();
    l.ack_reply = ACK_REPLY;
    let conn = if proxied {
        Conn::awaiting_header(0, script, &mut l.cx())
    } else {
        let opened = open_session(opening, peer(), &mut l.out);
        match l.start(opened, script) {
            Ok(conn) => conn,
            Err(_) => {
                // Gone at once (the first write failed): the loop drops it.
                prop_assert!(l.out.is_empty());
                return Ok(());
            }
        }
    };
    let mut run = Run {
        conn,
        opening,
        peer: peer(),
        first_read: (!proxied).then_some(0),
        closed: None,
        timed_out: false,
        timeouts: 0,
        after_deadline: false,
        lingered: false,
    };
    run.check(&l)?;
    if run.conn.state() == State::Answered {
        // Everything was said at open: the loop goes on to the close at once.
        let status = run.conn.pump(0, &mut l.cx());
        run.settle(&mut l, status)?;
    }
    for event in events {
        if run.closed.is_some() {
            break;
        }
        run.event(&mut l, event)?;
    }
    for _ in 0..DRAIN_DEADLINES {
        if run.closed.is_none() {
            run.event(&mut l, Event::Ready)?;
        }
        if run.closed.is_none() {
            run.event(&mut l, Event::Deadline { late: 0 })?;
        }
    }
    prop_assert!(
        run.closed.is_some(),
        "still open ({}) after {} deadlines",
        run.conn.state(),
        DRAIN_DEADLINES
    );
    let written = &run.conn.io.written;
    let replies = run.replies();
    prop_assert!(
        replies.iter().any(|reply| reply.starts_with(written)),
        "wrote {:?}, not a beginning of any of {:?}",
        Escaped(written).to_string(),
        replies
            .iter()
            .map(|r| Escaped(r).to_string())
            .collect::<Vec<_>>()
    );
    if run.lingered || matches!(run.closed, Some(CLOSE_NOW | LINGER_DONE)) {
        prop_assert!(
            replies.iter().any(|reply| reply == written),
            "closed gracefully after {:?}",
            Escaped(written).to_string()
        );
    }
    Ok(())
}

/// PROXY headers, valid and not.
const HEADERS: [&[u8]; 7] = [
    b"PROXY TCP4 10.1.2.3 10.0.0.1 4000 51423\r\n",
    b"PROXY TCP6 2001:db8::1 ::1 40000 7\r\n",
    b"PROXY UNKNOWN\r\n",
    b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00",
    b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x0a\x01\x02\x03\x0a\x00\x00\x01\x0f\xa0\xc8\xdf",
    b"PROXY TCP4 10.1.2.3 10.0.0.1 4000\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
];

/// What a read may bring.
fn chunk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => "[a-z \t]{0,12}\n?".prop_map(String::into_bytes),
        2 => proptest::collection::vec(any::<u8>(), 1..64),
        1 => (90usize..130).prop_map(|n| vec![b'x'; n]),
        // More than one read takes.
        1 => Just(vec![b'y'; 5000]),
        1 => proptest::sample::select(&HEADERS[..]).prop_map(<[u8]>::to_vec),
    ]
}

fn read_act() -> impl Strategy<Value = Act> {
    prop_oneof![
        10 => chunk().prop_map(Act::Read),
        3 => Just(Act::Block),
        1 => Just(Act::Fail(io::ErrorKind::Interrupted)),
        1 => Just(Act::Fail(io::ErrorKind::ConnectionReset)),
        1 => Just(Act::Read(Vec::new())),
    ]
}

fn write_act() -> impl Strategy<Value = Act> {
    prop_oneof![
        4 => Just(Act::All),
        3 => (1usize..40).prop_map(Act::Take),
        3 => Just(Act::Block),
        1 => Just(Act::Fail(io::ErrorKind::Interrupted)),
        1 => Just(Act::Fail(io::ErrorKind::ConnectionReset)),
        1 => Just(Act::Fail(io::ErrorKind::BrokenPipe)),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        5 => Just(Event::Ready),
        1 => Just(Event::Fin),
        1 => any::<u8>().prop_map(|late| Event::Deadline { late }),
    ]
}

/// A scripted socket; when `proxied`, its reads mostly begin with a PROXY header, whole
/// or in two parts with time between them, the client's first bytes maybe in the same
/// read as its end.
fn script(proxied: bool) -> impl Strategy<Value = Script> {
    let header = if proxied {
        proptest::option::weighted(
            0.8,
            (
                proptest::sample::select(&HEADERS[..]),
                any::<prop::sample::Index>(),
                prop_oneof![Just(Vec::new()), chunk()],
            ),
        )
        .boxed()
    } else {
        Just(None).boxed()
    };
    (
        header,
        proptest::collection::vec(read_act(), 0..10),
        proptest::collection::vec(write_act(), 0..12),
        any::<bool>(),
    )
        .prop_map(|(header, reads, writes, drained)| {
            let mut first = Vec::new();
            if let Some((header, cut, after)) = header {
                let (a, b) = header.split_at(cut.index(header.len()));
                first.extend([
                    Act::Read(a.to_vec()),
                    Act::Block,
                    Act::Read([b, &after].concat()),
                ]);
                first.retain(|act| !matches!(act, Act::Read(bytes) if bytes.is_empty()));
            }
            Script {
                reads: first.into_iter().chain(reads).collect(),
                writes: writes.into(),
                drained,
                ..Script::default()
            }
        })
}

/// A model case: how the connection begins, its socket, and what happens to it.
fn case(opening: Opening) -> impl Strategy<Value = (Opening, bool, Script, Vec<Event>)> {
    any::<bool>().prop_flat_map(move |proxied| {
        (
            Just(opening),
            Just(proxied),
            script(proxied),
            proptest::collection::vec(event(), 0..16),
        )
    })
}

proptest! {
    #[test]
    fn model_count((opening, proxied, script, events) in case(Opening::Service(Service::Count))) {
        model(opening, proxied, script, events)?;
    }

    #[test]
    fn model_echo((opening, proxied, script, events) in case(Opening::Service(Service::Echo))) {
        model(opening, proxied, script, events)?;
    }

    #[test]
    fn model_ack((opening, proxied, script, events) in case(Opening::Service(Service::Ack))) {
        model(opening, proxied, script, events)?;
    }

    #[test]
    fn model_time((opening, proxied, script, events) in case(Opening::Service(Service::Time))) {
        model(opening, proxied, script, events)?;
    }

    #[test]
    fn model_busy((opening, proxied, script, events) in case(Opening::Busy)) {
        model(opening, proxied, script, events)?;
    }
}
