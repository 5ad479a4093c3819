//! TCP `echo`, `ack` and `time` over real sockets.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::thread;
use std::time::Duration;

use common::*;
use oneloop::proto::Epoch;

/// A byte pattern that shows any reordering or loss.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Sends `data` from a second thread while reading everything back; returns what came back.
fn echo_round_trip(addr: std::net::SocketAddr, data: Vec<u8>) -> Vec<u8> {
    let mut s = connect(addr);
    let mut writer = s.try_clone().unwrap();
    let sender = thread::spawn(move || {
        writer.write_all(&data).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let got = read_to_end(&mut s);
    sender.join().unwrap();
    got
}

#[test]
fn echo_returns_megabytes_byte_for_byte() {
    let d = start(&["tcp:echo@127.0.0.1:0"]);
    let data = pattern(8 << 20);
    assert!(echo_round_trip(d.addr(0), data.clone()) == data);
}

#[test]
fn echo_with_a_small_output_cap_still_returns_everything() {
    let d = start_with(&["tcp:echo@127.0.0.1:0"], |c| c.max_output = 4096);
    let data = pattern(1 << 20);
    assert!(echo_round_trip(d.addr(0), data.clone()) == data);
}

#[test]
fn an_echo_client_that_never_reads_is_held_back_and_others_are_served() {
    let d = start(&["tcp:echo@127.0.0.1:0", "tcp:count@127.0.0.1:0"]);
    let mut hog = connect(d.addr(0));
    hog.set_nonblocking(true).unwrap();
    // Write until the kernel buffers on both sides are full: the daemon has stopped reading.
    let chunk = pattern(64 * 1024);
    let mut sent = Vec::new();
    let mut blocked_rounds = 0;
    while blocked_rounds < 50 && sent.len() < 256 << 20 {
        match hog.write(&chunk) {
            Ok(n) => {
                sent.extend_from_slice(&chunk[..n]);
                blocked_rounds = 0;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                blocked_rounds += 1;
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(
        sent.len() < 256 << 20,
        "the daemon kept reading without bound"
    );
    // The daemon still answers others.
    assert_eq!(
        count_reply(d.addr(1), b"hi\n"),
        "You entered 2 characters.\n"
    );
    // Reading now gets back exactly what was sent, in order.
    hog.set_nonblocking(false).unwrap();
    hog.shutdown(Shutdown::Write).unwrap();
    let back = read_to_end(&mut hog);
    assert_eq!(back.len(), sent.len());
    assert!(back == sent);
}

#[test]
fn echo_idle_client_is_closed_after_the_timeout() {
    let d = start_with(&["tcp:echo@127.0.0.1:0"], |c| {
        c.idle_timeout = Duration::from_millis(300)
    });
    let mut s = connect(d.addr(0));
    s.write_all(b"abc").unwrap();
    // The echo, then EOF once the connection was idle for the timeout.
    assert_eq!(read_to_end(&mut s), b"abc");
    assert_eq!(d.stop().timed_out, 1);
}

#[test]
fn echo_activity_keeps_the_connection_open() {
    let d = start_with(&["tcp:echo@127.0.0.1:0"], |c| {
        c.idle_timeout = Duration::from_secs(1)
    });
    let mut s = connect(d.addr(0));
    // Exchanges 100 ms apart for two seconds: twice the limit in all, each gap a tenth of it.
    for i in 0..20u8 {
        s.write_all(&[i]).unwrap();
        assert_eq!(read_exact(&mut s, 1), [i]);
        thread::sleep(Duration::from_millis(100));
    }
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut s), b"");
    assert_eq!(d.stop().timed_out, 0);
}

#[test]
fn ack_answers_hello_with_i_get_it() {
    let d = start(&["tcp:ack@127.0.0.1:0"]);
    let mut s = connect(d.addr(0));
    s.write_all(b"hello").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut s), b"hello\nI get it!\n");
}

#[test]
fn ack_answers_each_read_and_adds_the_reply_text() {
    let d = start_with(&["tcp:ack@127.0.0.1:0"], |c| c.ack_reply = b"ok\n".to_vec());
    let mut s = connect(d.addr(0));
    s.write_all(b"one").unwrap();
    assert_eq!(read_exact(&mut s, 17), b"one\nI get it!\nok\n");
    s.write_all(b"two").unwrap();
    assert_eq!(read_exact(&mut s, 17), b"two\nI get it!\nok\n");
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut s), b"");
}

#[test]
fn ack_reads_at_most_4096_bytes_at_a_time() {
    let d = start(&["tcp:ack@127.0.0.1:0"]);
    let mut s = connect(d.addr(0));
    s.write_all(&[b'a'; 10_000]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let back = read_to_end(&mut s);
    let text = String::from_utf8(back).unwrap();
    let parts: Vec<&str> = text.split("\nI get it!\n").collect();
    assert_eq!(parts.last(), Some(&""));
    assert!(parts.len() >= 4, "10000 bytes need at least 3 reads");
    assert!(parts
        .iter()
        .all(|p| p.len() <= 4096 && p.bytes().all(|b| b == b'a')));
    assert_eq!(parts.iter().map(|p| p.len()).sum::<usize>(), 10_000);
}

/// What a TCP time service sends before its EOF.
fn tcp_time(epoch: Epoch) -> Vec<u8> {
    let d = start_with(&["tcp:time@127.0.0.1:0"], |c| c.time_epoch = epoch);
    let mut s = connect(d.addr(0));
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    got
}

#[test]
fn tcp_time_is_four_bytes_of_unix_time_then_eof() {
    assert_time_is_now(tcp_time(Epoch::Unix), Epoch::Unix);
}

#[test]
fn tcp_time_in_the_1900_epoch() {
    assert_time_is_now(tcp_time(Epoch::Rfc868), Epoch::Rfc868);
}

#[test]
fn tcp_time_closes_gracefully_when_the_client_sent_bytes() {
    let d = start(&["tcp:time@127.0.0.1:0"]);
    for _ in 0..50 {
        let mut s = connect(d.addr(0));
        s.write_all(b"some bytes the time service never reads\n")
            .unwrap();
        assert_eq!(read_to_end(&mut s).len(), 4);
    }
}
