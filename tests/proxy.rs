//! Behind a load balancer: `--proxy-from` connections begin with a PROXY header (version 1 or
//! 2), which names the client. Hand-made headers against the daemon over loopback: the proxy
//! is 127.0.0.2, direct clients come from 127.0.0.3.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;

use common::*;
use oneloop::policy::access::Cidr;

/// What the daemon says to a connection from `from` that sends `bytes` and half-closes.
fn exchange(from: &str, to: SocketAddr, bytes: &[u8]) -> String {
    let mut s = connect_from(from, to);
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

fn behind_proxy(tweak: impl FnOnce(&mut oneloop::Config)) -> Daemon {
    start_with(&["tcp:count@127.0.0.1:0"], |c| {
        c.proxy_from = vec![Cidr::parse("127.0.0.2").unwrap()];
        tweak(c);
    })
}

/// A version 2 header: PROXY (or LOCAL), TCP over IPv4 or IPv6, then `tail` (TLVs).
fn v2(local: bool, source: SocketAddr, destination: SocketAddr, tail: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(if local { 0x20 } else { 0x21 });
    let mut addrs = Vec::new();
    match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            h.push(0x11);
            addrs.extend_from_slice(&s.ip().octets());
            addrs.extend_from_slice(&d.ip().octets());
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            h.push(0x21);
            addrs.extend_from_slice(&s.ip().octets());
            addrs.extend_from_slice(&d.ip().octets());
        }
        _ => panic!("one family"),
    }
    addrs.extend_from_slice(&source.port().to_be_bytes());
    addrs.extend_from_slice(&destination.port().to_be_bytes());
    addrs.extend_from_slice(tail);
    h.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
    h.extend_from_slice(&addrs);
    h
}

#[test]
fn the_named_client_is_the_peer() {
    let d = behind_proxy(|_| {});
    let reply = exchange(
        "127.0.0.2",
        d.addr(0),
        b"PROXY TCP4 192.0.2.7 127.0.0.1 40001 51423\r\nhello\n",
    );
    assert_eq!(
        reply,
        "Welcome, 192.0.2.7:40001\nPlease enter a string: You entered 5 characters.\n"
    );
    let header = v2(
        false,
        "[2001:db8::7]:40002".parse().unwrap(),
        "[2001:db8::1]:51423".parse().unwrap(),
        // A TLV (type 0x04, NOOP) the daemon skips.
        &[0x04, 0x00, 0x02, 0xAA, 0xBB],
    );
    let reply = exchange("127.0.0.2", d.addr(0), &[&header[..], b"hi\n"].concat());
    assert_eq!(
        reply,
        "Welcome, [2001:db8::7]:40002\nPlease enter a string: You entered 2 characters.\n"
    );
    let v6 = exchange(
        "127.0.0.2",
        d.addr(0),
        b"PROXY TCP6 2001:db8::9 2001:db8::1 40003 51423\r\nabc",
    );
    assert!(v6.starts_with("Welcome, [2001:db8::9]:40003\n"), "{v6}");
    assert_eq!(d.stop().served, 3);
}

#[test]
fn health_checks_use_the_proxys_address_and_are_counted_apart() {
    let d = behind_proxy(|_| {});
    let unknown = exchange("127.0.0.2", d.addr(0), b"PROXY UNKNOWN\r\nx\n");
    assert!(unknown.starts_with("Welcome, 127.0.0.2:"), "{unknown}");
    let local = v2(
        true,
        "127.0.0.2:1".parse().unwrap(),
        "127.0.0.1:2".parse().unwrap(),
        &[],
    );
    let reply = exchange("127.0.0.2", d.addr(0), &[&local[..], b"y\n"].concat());
    assert!(reply.starts_with("Welcome, 127.0.0.2:"), "{reply}");
    let s = d.stop();
    assert_eq!((s.served, s.health_checks), (0, 2), "{s}");
}

#[test]
fn bad_truncated_oversized_or_missing_headers_get_no_reply() {
    let d = behind_proxy(|_| {});
    for bad in [
        &b"hello\n"[..],
        b"PROXY TCP4 192.0.2.7 127.0.0.1 40001\r\n",
        b"PROXY TCP4 192.0.2.7 127.0.0.1 40001 51423",
        b"PROXY TCP4 ::1 127.0.0.1 1 2\r\n",
        &[b'P'; 200],
        b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c",
        b"",
    ] {
        assert_eq!(exchange("127.0.0.2", d.addr(0), bad), "", "{bad:?}");
    }
    // The daemon goes on, and direct clients need no header.
    let direct = exchange(
        "127.0.0.3",
        d.addr(0),
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    );
    assert!(direct.starts_with("Welcome, 127.0.0.3:"), "{direct}");
    assert!(direct.ends_with("You entered 30 characters.\n"), "{direct}");
    assert_eq!(d.stop().served, 1);
}

#[test]
fn deny_and_the_per_source_limits_act_on_the_named_client() {
    let d = behind_proxy(|c| {
        c.deny = vec![Cidr::parse("198.51.100.0/24").unwrap()];
        c.max_per_source = 1;
    });
    let denied = exchange(
        "127.0.0.2",
        d.addr(0),
        b"PROXY TCP4 198.51.100.9 127.0.0.1 1000 51423\r\nx\n",
    );
    assert_eq!(denied, "");
    // One held connection for 192.0.2.1; a second one of its is over the limit, while the
    // proxy itself (carrying both) is not limited.
    let mut held = connect_from("127.0.0.2", d.addr(0));
    held.write_all(b"PROXY TCP4 192.0.2.1 127.0.0.1 1000 51423\r\n")
        .unwrap();
    let mut welcome = [0u8; 9];
    held.read_exact(&mut welcome).unwrap();
    let over = exchange(
        "127.0.0.2",
        d.addr(0),
        b"PROXY TCP4 192.0.2.1 127.0.0.1 1001 51423\r\n",
    );
    assert_eq!(
        over,
        "Error: too many connections from your address (limit 1)\n"
    );
    let other = exchange(
        "127.0.0.2",
        d.addr(0),
        b"PROXY TCP4 192.0.2.2 127.0.0.1 1002 51423\r\nok\n",
    );
    assert!(other.ends_with("You entered 2 characters.\n"), "{other}");
    drop(held);
    let s = d.stop();
    assert_eq!((s.denied, s.limited, s.served), (1, 1, 2), "{s}");
}

/// The binary serving `count` behind the proxy 127.0.0.2, with `args` added; the addresses
/// it listens on, `count`'s first.
fn spawn_behind_proxy(args: &[&str]) -> (Proc, Vec<SocketAddr>) {
    let all = [
        &["--tcp", "count@127.0.0.1:0", "--proxy-from", "127.0.0.2"][..],
        args,
    ]
    .concat();
    let mut p = Proc::spawn(&all, "info");
    let listening = p.listening(1 + args.iter().filter(|a| a.starts_with("--tcp")).count());
    (p, listening)
}

/// A NOOP extension (type 0x04) of `len` bytes, to pad a version 2 header.
fn noop_tlv(len: u16) -> Vec<u8> {
    [
        &[0x04][..],
        &len.to_be_bytes(),
        &vec![0xAA; usize::from(len)],
    ]
    .concat()
}

#[test]
fn a_header_larger_than_the_receive_buffer_is_read_in_pieces() {
    // The kernel doubles SO_RCVBUF 1024 to 2048, and advertises a window of about half that:
    // a header of 3,000 bytes is never queued whole.
    let (mut p, listening) = spawn_behind_proxy(&["--rcvbuf", "1024"]);
    let addr = listening[0];
    let source = "192.0.2.7:40001".parse().unwrap();
    let destination = "127.0.0.1:51423".parse().unwrap();
    for padding in [1_500, 3_000, 4_096 - 16 - 12 - 3] {
        let header = v2(false, source, destination, &noop_tlv(padding));
        assert!(
            header.len() > 1_500 && header.len() <= 4_096,
            "{}",
            header.len()
        );
        let reply = exchange("127.0.0.2", addr, &[&header[..], b"hello\n"].concat());
        assert_eq!(
            reply,
            "Welcome, 192.0.2.7:40001\nPlease enter a string: You entered 5 characters.\n",
            "a header of {} bytes",
            header.len()
        );
    }
    // One byte more than 4,096 is a bad header: closed without a word.
    let over = v2(
        false,
        source,
        destination,
        &noop_tlv(4_096 - 16 - 12 - 3 + 1),
    );
    assert_eq!(over.len(), 4_097);
    assert_eq!(
        exchange("127.0.0.2", addr, &[&over[..], b"hi\n"].concat()),
        ""
    );
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
    let log = p.seen.join("\n");
    assert!(log.contains("connections served 3,"), "{log}");
}

#[test]
fn bad_and_missing_headers_are_counted_as_failures() {
    let (mut p, listening) = spawn_behind_proxy(&["--tcp", "stats@127.0.0.1:0"]);
    let (count, stats) = (listening[0], listening[1]);
    // A bad header, and a connection that ends before any: both closed without a word.
    assert_eq!(exchange("127.0.0.2", count, b"hello\n"), "");
    assert_eq!(exchange("127.0.0.2", count, b""), "");
    // One that sends nothing and waits: closed once the 5 s for the header are over.
    let mut silent = connect_from("127.0.0.2", count);
    assert_eq!(read_to_end(&mut silent), b"");
    // A good header is no failure.
    let good = exchange(
        "127.0.0.2",
        count,
        b"PROXY TCP4 192.0.2.7 127.0.0.1 40001 51423\r\nhi\n",
    );
    assert!(good.ends_with("You entered 2 characters.\n"), "{good}");
    // Prometheus scrapes directly, from an address that is not a proxy.
    let body = exchange("127.0.0.3", stats, b"GET /metrics HTTP/1.0\r\n\r\n");
    let series = |addr| {
        format!("oneloop_proxy_header_failures_total{{service=\"{}\",transport=\"tcp\",addr=\"{addr}\"}}",
            if addr == count { "count" } else { "stats" })
    };
    assert_eq!(sample(&body, &series(count)), 3);
    assert_eq!(sample(&body, &series(stats)), 0);
    // The summary line keeps its fields.
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
    let log = p.seen.join("\n");
    assert!(
        log.contains(
            "connections served 2, refused 0, timed out 0, denied 0, limited 0; \
             datagrams answered 0, dropped 0, denied 0, limited 0"
        ),
        "{log}"
    );
}
