//! The `stats` service: one HTTP/1.0 or 1.1 `GET` (any path), answered with the daemon's
//! counters in the Prometheus text exposition format (version 0.0.4), then a close.
//!
//! The request head is read as it streams past, in a few bytes of state, up to the blank line
//! that ends it (CRLF CRLF, or bare LFs), at most [`MAX_REQUEST`] bytes. The request line must
//! be `GET TARGET HTTP/1.0` or `HTTP/1.1`; header lines are not interpreted, and nothing after
//! the head is read. Anything else, a head over the limit, or an end of input before the
//! blank line gets `400 Bad Request`. The reply is always HTTP/1.0, the version whose
//! semantics the service keeps (one request, then close); an HTTP/1.1 client takes it, as
//! minor versions of HTTP/1 are compatible by design.

use std::io::Write;
use std::time::Duration;

use super::Step;

/// The longest request head, blank line included.
pub const MAX_REQUEST: usize = 4096;

/// What `stats` reports: the daemon's metrics, written as the body of the response in the
/// Prometheus text exposition format. The daemon implements it over its counters; a session
/// only frames what it writes.
pub trait Metrics: std::fmt::Debug {
    /// Appends the exposition's lines to `body`.
    fn write(&self, body: &mut Vec<u8>);
}

/// Writes the whole `200 OK` response with `metrics` as its body.
pub fn metrics_response(metrics: &dyn Metrics, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(2048);
    metrics.write(&mut body);
    response(out, "200 OK", "text/plain; version=0.0.4", &body);
}

/// A whole HTTP/1.0 response that ends the connection.
fn response(out: &mut Vec<u8>, status: &str, content_type: &str, body: &[u8]) {
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(body);
}

/// Where the request head has got to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Matching `GET ` (how many of its bytes have come).
    Method(u8),
    /// The request target: whether a byte of it has come.
    Target { started: bool },
    /// Matching `HTTP/1.` (how many of its bytes have come), then the minor version, 0 or 1.
    Version(u8),
    /// After the version: the request line's end; whether its CR has come.
    LineEnd { cr: bool },
    /// At the start of a header line, or of the blank line that ends the head; whether a CR
    /// has come.
    LineStart { cr: bool },
    /// Inside a header line.
    Field,
    /// The head is complete, or was refused: the answer is written.
    Over,
}

/// What one byte did to the head.
enum Next {
    Phase(Phase),
    Complete,
    Bad,
}

const METHOD: &[u8] = b"GET ";
const VERSION: &[u8] = b"HTTP/1.";
const BAD_REQUEST: &str = "only GET TARGET HTTP/1.0 or HTTP/1.1 is served\n";

/// One `stats` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    phase: Phase,
    /// Bytes of the head so far (at most [`MAX_REQUEST`]).
    seen: u16,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            phase: Phase::Method(0),
            seen: 0,
        }
    }
}

impl Stats {
    /// Reads request bytes; once the head is complete, answers with `metrics`.
    pub fn on_data(&mut self, data: &[u8], metrics: &dyn Metrics, out: &mut Vec<u8>) -> Step {
        if self.phase == Phase::Over {
            return Step::Answered;
        }
        for &b in data {
            if usize::from(self.seen) == MAX_REQUEST {
                return self.refuse("request too long", "request head over 4096 bytes\n", out);
            }
            self.seen += 1;
            match step(self.phase, b) {
                Next::Phase(phase) => self.phase = phase,
                Next::Complete => {
                    self.phase = Phase::Over;
                    metrics_response(metrics, out);
                    return Step::Answered;
                }
                Next::Bad => return self.refuse("bad request", BAD_REQUEST, out),
            }
        }
        Step::NeedMore
    }

    /// End of input: a head that is not complete by now never will be.
    pub fn on_eof(&mut self, out: &mut Vec<u8>) -> Step {
        if self.phase == Phase::Over {
            Step::Answered
        } else {
            self.refuse("request incomplete", "request head incomplete\n", out)
        }
    }

    /// The request deadline (`--idle-timeout`, `limit`) passed before the head was complete:
    /// `408 Request Timeout`.
    pub fn on_deadline(&mut self, limit: Duration, out: &mut Vec<u8>) -> Step {
        let body = format!(
            "request head not complete within {} s\n",
            limit.as_secs_f64()
        );
        self.fail("408 Request Timeout", "request timed out", &body, out)
    }

    /// Writes the `400` response, `body` telling the client why.
    fn refuse(&mut self, why: &'static str, body: &str, out: &mut Vec<u8>) -> Step {
        self.fail("400 Bad Request", why, body, out)
    }

    /// Ends the request with the error response `status`, `body` telling the client why.
    fn fail(&mut self, status: &str, why: &'static str, body: &str, out: &mut Vec<u8>) -> Step {
        self.phase = Phase::Over;
        response(out, status, "text/plain", body.as_bytes());
        Step::Refused(why)
    }
}

/// The request head's grammar, one byte at a time.
fn step(phase: Phase, b: u8) -> Next {
    use Phase::*;
    let next = match phase {
        Method(i) if METHOD[usize::from(i)] == b => {
            if usize::from(i) + 1 == METHOD.len() {
                Target { started: false }
            } else {
                Method(i + 1)
            }
        }
        Target { .. } if b.is_ascii_graphic() => Target { started: true },
        Target { started: true } if b == b' ' => Version(0),
        Version(i) if usize::from(i) < VERSION.len() && VERSION[usize::from(i)] == b => {
            Version(i + 1)
        }
        Version(i) if usize::from(i) == VERSION.len() && matches!(b, b'0' | b'1') => {
            LineEnd { cr: false }
        }
        LineEnd { cr: false } if b == b'\r' => LineEnd { cr: true },
        LineEnd { .. } if b == b'\n' => LineStart { cr: false },
        LineStart { .. } if b == b'\n' => return Next::Complete,
        LineStart { cr: false } if b == b'\r' => LineStart { cr: true },
        LineStart { cr: false } => Field,
        Field if b == b'\n' => LineStart { cr: false },
        Field => Field,
        _ => return Next::Bad,
    };
    Next::Phase(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Metrics that write a fixed body.
    #[derive(Debug)]
    struct Golden;

    impl Metrics for Golden {
        fn write(&self, body: &mut Vec<u8>) {
            body.extend_from_slice(GOLDEN_BODY.as_bytes());
        }
    }

    const GOLDEN_BODY: &str = "# TYPE oneloop_x counter\noneloop_x 1\n";

    fn ask(stats: &mut Stats, request: &[u8]) -> (Step, String) {
        let mut out = Vec::new();
        let step = stats.on_data(request, &Golden, &mut out);
        (step, String::from_utf8(out).unwrap())
    }

    fn bad_request(body: &str) -> String {
        format!(
            "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn the_whole_response_for_a_small_snapshot() {
        let (step, out) = ask(
            &mut Stats::default(),
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert_eq!(step, Step::Answered);
        let head = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            GOLDEN_BODY.len()
        );
        assert_eq!(out, head + GOLDEN_BODY);
    }

    #[test]
    fn get_with_any_path_and_either_version() {
        for request in [
            &b"GET / HTTP/1.0\r\n\r\n"[..],
            b"GET /metrics HTTP/1.1\r\nHost: h:1\r\nAccept: text/plain;version=0.0.4\r\n\r\n",
            b"GET * HTTP/1.1\n\n",
            b"GET http://h/x?y=%20z HTTP/1.0\r\nUser-Agent: a b\r\n\n",
            b"GET / HTTP/1.1\r\nX: \r in a field\r\n\r\nand a body",
        ] {
            let (step, out) = ask(&mut Stats::default(), request);
            assert_eq!(
                step,
                Step::Answered,
                "{:?}",
                String::from_utf8_lossy(request)
            );
            assert!(out.starts_with("HTTP/1.0 200 OK\r\n"));
            assert!(out.ends_with(GOLDEN_BODY));
        }
    }

    #[test]
    fn anything_else_is_a_bad_request() {
        for request in [
            &b"POST / HTTP/1.1\r\n\r\n"[..],
            b"HEAD / HTTP/1.1\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 \r\n\r\n",
            b"GET /\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.2\r\n\r\n",
            b"GET / http/1.1\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\r\n\r\n",
            b"GET / HTTP/1.1\r\n\rX\n",
            b"\r\nGET / HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ] {
            let mut stats = Stats::default();
            let (step, out) = ask(&mut stats, request);
            assert_eq!(
                step,
                Step::Refused("bad request"),
                "{:?}",
                String::from_utf8_lossy(request)
            );
            assert_eq!(out, bad_request(BAD_REQUEST));
            // Refused once: nothing more is said.
            assert_eq!(
                ask(&mut stats, b"GET / HTTP/1.0\r\n\r\n"),
                (Step::Answered, String::new())
            );
            assert_eq!(stats.on_eof(&mut Vec::new()), Step::Answered);
        }
    }

    #[test]
    fn a_head_arriving_in_pieces() {
        let request = b"GET /metrics HTTP/1.1\r\nHost: localhost:9100\r\n\r\n";
        for cut in 1..request.len() {
            let mut stats = Stats::default();
            assert_eq!(
                ask(&mut stats, &request[..cut]),
                (Step::NeedMore, String::new())
            );
            let (step, out) = ask(&mut stats, &request[cut..]);
            assert_eq!(step, Step::Answered, "cut at {cut}");
            assert!(out.ends_with(GOLDEN_BODY));
        }
        let mut stats = Stats::default();
        for &b in &request[..request.len() - 1] {
            assert_eq!(ask(&mut stats, &[b]).0, Step::NeedMore);
        }
        assert_eq!(ask(&mut stats, b"\n").0, Step::Answered);
    }

    #[test]
    fn the_head_may_take_4096_bytes_and_no_more() {
        let head = |len: usize| {
            let mut h = b"GET / HTTP/1.1\r\nX: ".to_vec();
            h.resize(len - 4, b'x');
            h.extend_from_slice(b"\r\n\r\n");
            h
        };
        let (step, _) = ask(&mut Stats::default(), &head(MAX_REQUEST));
        assert_eq!(step, Step::Answered);

        let long = head(MAX_REQUEST + 1);
        let mut stats = Stats::default();
        assert_eq!(
            ask(&mut stats, &long[..MAX_REQUEST]),
            (Step::NeedMore, String::new())
        );
        let (step, out) = ask(&mut stats, &long[MAX_REQUEST..]);
        assert_eq!(step, Step::Refused("request too long"));
        assert_eq!(out, bad_request("request head over 4096 bytes\n"));
        // However it comes: one read far over the limit.
        let mut flood = b"GET / HTTP/1.0\r\n".to_vec();
        flood.resize(5000, b'x');
        let (step, _) = ask(&mut Stats::default(), &flood);
        assert_eq!(step, Step::Refused("request too long"));
    }

    #[test]
    fn a_head_not_complete_in_time_gets_408() {
        let mut s = Stats::default();
        assert_eq!(ask(&mut s, b"GET / HTTP/1.0\r\nHost: x").0, Step::NeedMore);
        let mut out = Vec::new();
        let step = s.on_deadline(Duration::from_millis(1500), &mut out);
        assert_eq!(step, Step::Refused("request timed out"));
        let body = "request head not complete within 1.5 s\n";
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "HTTP/1.0 408 Request Timeout\r\nContent-Type: text/plain\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        );
        // Nothing more is read or said.
        assert_eq!(ask(&mut s, b"\r\n\r\n"), (Step::Answered, String::new()));
    }

    #[test]
    fn end_of_input_before_the_blank_line() {
        for sent in [
            &b""[..],
            b"GET / HTTP/1.1\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r",
        ] {
            let mut stats = Stats::default();
            assert_eq!(ask(&mut stats, sent).0, Step::NeedMore);
            let mut out = Vec::new();
            assert_eq!(stats.on_eof(&mut out), Step::Refused("request incomplete"));
            assert_eq!(
                String::from_utf8(out).unwrap(),
                bad_request("request head incomplete\n")
            );
        }
        // After the answer, the end of input changes nothing.
        let mut stats = Stats::default();
        assert_eq!(ask(&mut stats, b"GET / HTTP/1.0\n\n").0, Step::Answered);
        let mut out = Vec::new();
        assert_eq!(stats.on_eof(&mut out), Step::Answered);
        assert!(out.is_empty());
    }

    proptest! {
        #[test]
        fn any_chunking_gets_the_same_answer(
            request in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..64),
                (
                    prop_oneof![
                        Just(b"GET / HTTP/1.1".to_vec()),
                        Just(b"GET /x HTTP/1.0\r\n".to_vec()),
                    ],
                    proptest::collection::vec(
                        prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a'), Just(b' ')],
                        0..32,
                    ),
                )
                    .prop_map(|(line, rest)| [line, rest].concat()),
            ],
            cut in any::<usize>(),
        ) {
            let whole = {
                let mut stats = Stats::default();
                let (step, mut out) = ask(&mut stats, &request);
                let mut tail = Vec::new();
                let step = if step == Step::NeedMore { stats.on_eof(&mut tail) } else { step };
                out.push_str(std::str::from_utf8(&tail).unwrap());
                (step, out)
            };
            let cut = cut % (request.len() + 1);
            let mut stats = Stats::default();
            let (first, mut out) = ask(&mut stats, &request[..cut]);
            let (step, more) = ask(&mut stats, &request[cut..]);
            out.push_str(&more);
            let mut tail = Vec::new();
            let step = match (first, step) {
                (Step::NeedMore, Step::NeedMore) => stats.on_eof(&mut tail),
                (Step::NeedMore, step) => step,
                (first, _) => first,
            };
            out.push_str(std::str::from_utf8(&tail).unwrap());
            prop_assert_eq!((step, out), whole);
        }
    }
}
