//! The handover exchange (`--handover PATH`): how a running daemon gives its sockets to the
//! one that replaces it, as two sans-IO state machines, one a side. They see records (one
//! `SOCK_SEQPACKET` message each), how many sockets came with a record, and the end of the
//! connection or of the wait; they say what to send and, once done, what was handed over.
//! Who may speak, the sockets themselves and the clock belong to the loop (`server::handover`
//! and `server::takeover`).
//!
//! ```text
//!   new daemon (Taker)                        running daemon (Giver)
//!   connect(PATH) ──────────────────────────► accept; each side checks the other (SO_PEERCRED)
//!   hello oneloop-handover 1 ───────────────►
//!                 ◄────────────────────────── offer NAME… (the sockets attached, in batches)
//!                 ◄────────────────────────── end COUNT PID
//!   match the names to its instances,
//!   bind the rest, say which it took:
//!   ready I J … ────────────────────────────► stops using those sockets, drains, exits 0
//! ```
//! A record is text: its first line says what it is, and an offer's further lines name one
//! socket each (`tcp count 127.0.0.1:0`, `handover`). Anything else, a record out of order, a
//! version other than [`VERSION`] or a refusal ends the exchange as failed, and the running
//! daemon serves on.

use std::fmt::Write as _;

/// The version of the exchange this build speaks.
pub const VERSION: u32 = 1;

/// The most sockets one record carries (the kernel takes up to 253).
pub const BATCH: usize = 16;

/// The longest record either side sends or reads.
pub const MAX_RECORD: usize = 4096;

/// The most sockets an exchange offers: one per instance, and the handover socket.
pub const MAX_SOCKETS: usize = u16::MAX as usize + 1;

/// The first word of the hello, so that a stray client is told apart from an old version.
const HELLO: &str = "oneloop-handover";

/// One record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// The new daemon's first words: the version of the exchange it speaks.
    Hello { version: u32 },
    /// The running daemon will not hand over, and why.
    Refuse(String),
    /// Sockets, one name each; the sockets come with the record, in the same order.
    Offer(Vec<String>),
    /// Every socket was offered: how many, and the running daemon's process id.
    End { count: usize, pid: u32 },
    /// The new daemon is ready; it took these sockets (indexes in the order offered).
    Ready(Vec<usize>),
}

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = match self {
            Message::Hello { version } => write!(text, "hello {HELLO} {version}"),
            Message::Refuse(why) => write!(text, "refuse {}", one_line(why)),
            Message::Offer(names) => {
                text.push_str("offer");
                names
                    .iter()
                    .try_for_each(|n| write!(text, "\n{}", one_line(n)))
            }
            Message::End { count, pid } => write!(text, "end {count} {pid}"),
            Message::Ready(taken) => {
                text.push_str("ready");
                taken.iter().try_for_each(|i| write!(text, " {i}"))
            }
        };
        text.into_bytes()
    }

    /// The record `bytes`, or what is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Message, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "a record that is not text")?;
        let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
        let (kind, args) = first.split_once(' ').unwrap_or((first, ""));
        let number = |s: &str| s.parse::<u64>().map_err(|_| format!("a bad {kind} record"));
        let words = || args.split(' ').filter(|w| !w.is_empty());
        let message = match kind {
            "hello" => match args.split_once(' ') {
                Some((HELLO, version)) => Message::Hello {
                    version: u32::try_from(number(version)?).map_err(|_| "a bad version")?,
                },
                _ => return Err("a hello from something else than oneloop".into()),
            },
            "refuse" => Message::Refuse(args.to_string()),
            "offer" if args.is_empty() => Message::Offer(match rest {
                "" => Vec::new(),
                rest => rest.split('\n').map(str::to_string).collect(),
            }),
            "end" => match words().map(number).collect::<Result<Vec<_>, _>>()?[..] {
                [count, pid] => Message::End {
                    count: usize::try_from(count).map_err(|_| "a bad count")?,
                    pid: u32::try_from(pid).map_err(|_| "a bad pid")?,
                },
                _ => return Err("a bad end record".into()),
            },
            "ready" => Message::Ready(
                words()
                    .map(|w| number(w).map(|i| usize::try_from(i).unwrap_or(usize::MAX)))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(format!("an unknown record '{}'", one_line(kind))),
        };
        if !matches!(message, Message::Offer(_)) && !rest.is_empty() {
            return Err(format!("a {kind} record of more than one line"));
        }
        Ok(message)
    }

    /// What the record is, for a log line.
    fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "hello",
            Message::Refuse(_) => "refusal",
            Message::Offer(_) => "offer",
            Message::End { .. } => "end",
            Message::Ready(_) => "ready",
        }
    }
}

/// `text` with its line breaks replaced, so it stays one line of a record.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// What happened on the connection, as either side sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// A record arrived with this many sockets.
    Record(&'a [u8], usize),
    /// The other side closed the connection (or it failed).
    Closed,
    /// The other side said nothing for too long.
    TimedOut,
}

/// A record to send, with the sockets that go with it (a range of the offered ones).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub message: Message,
    pub sockets: std::ops::Range<usize>,
}

impl Outgoing {
    fn bare(message: Message) -> Outgoing {
        Outgoing {
            message,
            sockets: 0..0,
        }
    }
}

/// The running daemon's side; `on` is the one place its state changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Giver {
    /// Connected: waiting for the new daemon's hello.
    AwaitingHello,
    /// This many sockets were offered: waiting for the new daemon to be ready.
    AwaitingReady { offered: usize },
    /// The new daemon is ready and took these sockets (indexes in the order offered). The end.
    Ready(Vec<usize>),
    /// The exchange failed, for this reason: the running daemon serves on. The end.
    Failed(String),
}

impl Giver {
    /// The refusal sent to a second new daemon while an exchange is under way.
    pub const BUSY: &'static str = "another takeover is under way";

    /// Feeds the machine what happened; `names` are the sockets it has to offer, `pid` its
    /// process id. Returns the records to send, in order.
    pub fn on(&mut self, input: Input<'_>, names: &[String], pid: u32) -> Vec<Outgoing> {
        let (next, out) = match (&*self, input) {
            (Giver::Ready(_) | Giver::Failed(_), _) => return Vec::new(),
            (_, Input::Closed) => (fail("it closed the connection before it was ready"), vec![]),
            (_, Input::TimedOut) => (fail("it was not ready in time"), vec![]),
            (_, Input::Record(_, sockets)) if sockets > 0 => (
                fail("it sent sockets: a new daemon only takes them"),
                vec![],
            ),
            (state, Input::Record(bytes, _)) => match (state, Message::decode(bytes)) {
                (_, Err(why)) => (fail(&format!("it sent {why}")), vec![]),
                (Giver::AwaitingHello, Ok(Message::Hello { version })) if version != VERSION => {
                    let why = format!(
                        "it speaks version {version} of the exchange, this daemon {VERSION}"
                    );
                    let refusal = Outgoing::bare(Message::Refuse(why.clone()));
                    (Giver::Failed(why), vec![refusal])
                }
                (Giver::AwaitingHello, Ok(Message::Hello { .. })) => {
                    if names.len() > MAX_SOCKETS {
                        (
                            fail("there are more sockets than an exchange carries"),
                            vec![],
                        )
                    } else {
                        (
                            Giver::AwaitingReady {
                                offered: names.len(),
                            },
                            offers(names, pid),
                        )
                    }
                }
                (Giver::AwaitingReady { offered }, Ok(Message::Ready(taken))) => {
                    let mut seen = vec![false; *offered];
                    let valid = taken
                        .iter()
                        .all(|&i| i < *offered && !std::mem::replace(&mut seen[i], true));
                    if valid {
                        (Giver::Ready(taken), vec![])
                    } else {
                        (fail("it took sockets that were not offered"), vec![])
                    }
                }
                (_, Ok(message)) => (
                    fail(&format!("it sent {} out of turn", message.kind())),
                    vec![],
                ),
            },
        };
        *self = next;
        out
    }
}

fn fail(why: &str) -> Giver {
    Giver::Failed(why.to_string())
}

/// The offers of `names`, [`BATCH`] at a time, then the end.
fn offers(names: &[String], pid: u32) -> Vec<Outgoing> {
    let mut out: Vec<Outgoing> = (0..names.len())
        .step_by(BATCH)
        .map(|start| {
            let end = (start + BATCH).min(names.len());
            Outgoing {
                message: Message::Offer(names[start..end].to_vec()),
                sockets: start..end,
            }
        })
        .collect();
    out.push(Outgoing::bare(Message::End {
        count: names.len(),
        pid,
    }));
    out
}

/// The new daemon's side; `on` is the one place its state changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Taker {
    /// The hello was sent: the names of the sockets offered so far (the caller keeps the
    /// sockets themselves, in the same order).
    Receiving { names: Vec<String> },
    /// Every socket was offered, by the daemon with this process id. The caller matches them
    /// to its instances, binds the rest, and sends [`Taker::ready`]. The end.
    Offered { names: Vec<String>, pid: u32 },
    /// The exchange failed, for this reason. The end.
    Failed(String),
}

impl Taker {
    /// The machine and its first record.
    pub fn start() -> (Taker, Message) {
        (
            Taker::Receiving { names: Vec::new() },
            Message::Hello { version: VERSION },
        )
    }

    /// Feeds the machine what happened.
    pub fn on(&mut self, input: Input<'_>) {
        let Taker::Receiving { names } = self else {
            return;
        };
        let next = match input {
            Input::Closed => Err("the running daemon closed the connection".to_string()),
            Input::TimedOut => Err("the running daemon did not answer in time".to_string()),
            Input::Record(bytes, sockets) => match Message::decode(bytes) {
                Err(why) => Err(format!("the running daemon sent {why}")),
                Ok(Message::Refuse(why)) => Err(format!("the running daemon refused: {why}")),
                Ok(Message::Offer(offered)) if offered.len() != sockets => Err(format!(
                    "an offer of {} socket(s) came with {sockets}",
                    offered.len()
                )),
                Ok(Message::Offer(_)) if names.len() + sockets > MAX_SOCKETS => {
                    Err("the running daemon offered too many sockets".to_string())
                }
                Ok(Message::Offer(offered)) => {
                    names.extend(offered);
                    return;
                }
                Ok(Message::End { count, pid }) if count == names.len() => Ok(Taker::Offered {
                    names: std::mem::take(names),
                    pid,
                }),
                Ok(Message::End { count, .. }) => Err(format!(
                    "the running daemon said it offered {count} socket(s), but {} came",
                    names.len()
                )),
                Ok(message) => Err(format!(
                    "the running daemon sent {} out of turn",
                    message.kind()
                )),
            },
        };
        *self = next.unwrap_or_else(Taker::Failed);
    }

    /// The record that says the new daemon is ready, having taken `taken`.
    pub fn ready(taken: Vec<usize>) -> Message {
        Message::Ready(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("tcp count 127.0.0.1:{i}")).collect()
    }

    fn record(message: &Message) -> Vec<u8> {
        message.encode()
    }

    /// Runs both machines against each other; returns them at the end, with the sockets the
    /// giver's records carried (as indexes).
    fn exchange(offered: &[String], took: impl Fn(&[String]) -> Vec<usize>) -> (Giver, Taker) {
        let (mut taker, hello) = Taker::start();
        let mut giver = Giver::AwaitingHello;
        let mut carried = Vec::new();
        for out in giver.on(Input::Record(&record(&hello), 0), offered, 42) {
            carried.extend(out.sockets.clone());
            taker.on(Input::Record(&record(&out.message), out.sockets.len()));
        }
        assert_eq!(carried, (0..offered.len()).collect::<Vec<_>>());
        if let Taker::Offered { names, .. } = &taker {
            let ready = Taker::ready(took(names));
            assert!(giver
                .on(Input::Record(&record(&ready), 0), offered, 42)
                .is_empty());
        }
        (giver, taker)
    }

    #[test]
    fn every_message_comes_back_from_its_record() {
        for message in [
            Message::Hello { version: 1 },
            Message::Hello { version: u32::MAX },
            Message::Refuse("another takeover is under way".into()),
            Message::Offer(names(3)),
            Message::Offer(vec!["handover".into()]),
            Message::Offer(vec![]),
            Message::End {
                count: 17,
                pid: 4_000_000,
            },
            Message::Ready(vec![]),
            Message::Ready(vec![0, 2, 16]),
        ] {
            assert_eq!(Message::decode(&message.encode()), Ok(message));
        }
    }

    #[test]
    fn bad_records_are_named_not_taken() {
        for (bytes, why) in [
            (&b"\xff\xfe"[..], "not text"),
            (b"hello nginx 1", "something else"),
            (b"hello oneloop-handover x", "bad hello"),
            (b"hello oneloop-handover 99999999999", "bad version"),
            (b"end 3", "bad end"),
            (b"end 3 x", "bad end"),
            (b"ready 1 x", "bad ready"),
            (b"ready 1\n2", "more than one line"),
            (b"offer x\ny", "unknown record"),
            (b"GET / HTTP/1.0", "unknown record"),
            (b"", "unknown record"),
        ] {
            let got = Message::decode(bytes).expect_err(why);
            assert!(got.contains(why), "{got:?} should say {why}");
        }
    }

    #[test]
    fn a_refusal_stays_one_line() {
        let refusal = Message::Refuse("two\nlines".into()).encode();
        assert_eq!(refusal, b"refuse two lines");
    }

    #[test]
    fn the_sockets_go_in_batches_and_the_taker_gets_every_name_in_order() {
        for count in [0, 1, BATCH - 1, BATCH, BATCH + 1, 3 * BATCH + 2] {
            let offered = names(count);
            let (giver, taker) = exchange(&offered, |names| (0..names.len()).rev().collect());
            assert_eq!(
                taker,
                Taker::Offered {
                    names: offered.clone(),
                    pid: 42
                }
            );
            assert_eq!(giver, Giver::Ready((0..count).rev().collect()));
        }
        let out = Giver::AwaitingHello.on(
            Input::Record(&Message::Hello { version: VERSION }.encode(), 0),
            &names(BATCH + 1),
            7,
        );
        let sizes: Vec<usize> = out.iter().map(|o| o.sockets.len()).collect();
        assert_eq!(sizes, [BATCH, 1, 0]);
    }

    #[test]
    fn the_taker_may_take_some_or_none() {
        let offered = names(3);
        let (giver, _) = exchange(&offered, |_| vec![2]);
        assert_eq!(giver, Giver::Ready(vec![2]));
        let (giver, _) = exchange(&offered, |_| vec![]);
        assert_eq!(giver, Giver::Ready(vec![]));
    }

    #[test]
    fn taking_what_was_not_offered_or_twice_fails() {
        for took in [vec![3], vec![0, 0], vec![usize::MAX]] {
            let (giver, _) = exchange(&names(3), |_| took.clone());
            assert!(matches!(giver, Giver::Failed(ref why) if why.contains("not offered")));
        }
    }

    #[test]
    fn another_version_is_refused_and_told_why() {
        let mut giver = Giver::AwaitingHello;
        let hello = Message::Hello {
            version: VERSION + 1,
        };
        let out = giver.on(Input::Record(&hello.encode(), 0), &names(2), 1);
        let [Outgoing {
            message: Message::Refuse(why),
            sockets,
        }] = &out[..]
        else {
            panic!("{out:?}")
        };
        assert!(sockets.is_empty() && why.contains("version 2"), "{why}");
        assert!(matches!(giver, Giver::Failed(_)));
        let mut taker = Taker::Receiving { names: vec![] };
        taker.on(Input::Record(&out[0].message.encode(), 0));
        assert!(
            matches!(taker, Taker::Failed(ref w) if w.contains("refused: it speaks version 2"))
        );
    }

    #[test]
    fn the_giver_fails_on_silence_a_close_garbage_sockets_or_a_record_out_of_turn() {
        let hello = Message::Hello { version: VERSION }.encode();
        let ready = Message::Ready(vec![]).encode();
        let cases: [(&[Input<'_>], &str); 7] = [
            (&[Input::TimedOut], "in time"),
            (&[Input::Closed], "closed"),
            (&[Input::Record(&hello, 0), Input::Closed], "closed"),
            (&[Input::Record(b"GET /", 0)], "unknown record"),
            (&[Input::Record(&hello, 1)], "sent sockets"),
            (&[Input::Record(&ready, 0)], "ready out of turn"),
            (
                &[Input::Record(&hello, 0), Input::Record(&hello, 0)],
                "hello out of turn",
            ),
        ];
        for (inputs, why) in cases {
            let mut giver = Giver::AwaitingHello;
            for input in inputs {
                giver.on(*input, &names(1), 1);
            }
            assert!(
                matches!(giver, Giver::Failed(ref w) if w.contains(why)),
                "{giver:?}: {why}"
            );
            // Once ended, nothing moves it.
            let before = giver.clone();
            assert!(giver.on(Input::Record(&hello, 0), &names(1), 1).is_empty());
            assert_eq!(giver, before);
        }
    }

    #[test]
    fn the_taker_fails_on_a_refusal_a_close_a_miscount_or_a_record_out_of_turn() {
        let offer = Message::Offer(names(2)).encode();
        let cases: [(&[Input<'_>], &str); 6] = [
            (
                &[Input::Record(b"refuse another takeover is under way", 0)],
                "refused: another",
            ),
            (&[Input::Closed], "closed"),
            (&[Input::TimedOut], "in time"),
            (&[Input::Record(&offer, 1)], "2 socket(s) came with 1"),
            (
                &[Input::Record(&offer, 2), Input::Record(b"end 3 1", 0)],
                "offered 3",
            ),
            (
                &[Input::Record(b"hello oneloop-handover 1", 0)],
                "hello out of turn",
            ),
        ];
        for (inputs, why) in cases {
            let mut taker = Taker::start().0;
            for input in inputs {
                taker.on(*input);
            }
            assert!(
                matches!(taker, Taker::Failed(ref w) if w.contains(why)),
                "{taker:?}: {why}"
            );
        }
    }
}
