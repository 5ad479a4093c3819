//! The `count` service over real sockets: welcome, counting, pieces, graceful close, limits.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::*;

#[test]
fn welcome_names_the_client_address() {
    let d = start(&["tcp:count@127.0.0.1:0"]);
    let mut s = connect(d.addr(0));
    let len = welcome_for(&s).len();
    let got = read_exact(&mut s, len);
    let want = format!(
        "Welcome, 127.0.0.1:{}\nPlease enter a string: ",
        s.local_addr().unwrap().port()
    );
    assert_eq!(String::from_utf8(got).unwrap(), want);
}

#[test]
fn counts_the_spec_examples() {
    let d = start(&["tcp:count@127.0.0.1:0"]);
    for (line, n) in [
        (&b"hello\r\n"[..], 5),
        ("  h\u{e9}llo \t\n".as_bytes(), 5),
        ("日本語\n".as_bytes(), 3),
        (b"\xff\xfeab\n", 4),
        ("\u{a0}\u{2028}x\u{3000}\n".as_bytes(), 1),
        (b"\n", 0),
    ] {
        assert_eq!(
            count_reply(d.addr(0), line),
            format!("You entered {n} characters.\n"),
            "line {line:?}"
        );
    }
}

#[test]
fn eof_without_newline_counts_what_was_sent() {
    let d = start(&["tcp:count@127.0.0.1:0"]);
    assert_eq!(
        count_reply(d.addr(0), b"abc"),
        "You entered 3 characters.\n"
    );
    assert_eq!(count_reply(d.addr(0), b""), "You entered 0 characters.\n");
}

#[test]
fn a_line_in_small_pieces_counts_the_same() {
    let d = start(&["tcp:count@127.0.0.1:0"]);
    let mut s = count_client(d.addr(0));
    s.set_nodelay(true).unwrap();
    // Multi-byte characters split across writes, too.
    for piece in " 日本語 hé".as_bytes().chunks(1) {
        s.write_all(piece).unwrap();
        s.flush().unwrap();
    }
    s.write_all(b" \n").unwrap();
    assert_eq!(
        String::from_utf8(read_to_end(&mut s)).unwrap(),
        "You entered 6 characters.\n"
    );
}

#[test]
fn reply_survives_bytes_after_the_newline() {
    let d = start(&["tcp:count@127.0.0.1:0"]);
    for i in 0..200 {
        let mut s = count_client(d.addr(0));
        s.write_all(b"four\nand then a lot more that nobody reads ")
            .unwrap();
        s.write_all(&vec![b'z'; 1000 + i]).unwrap();
        // The client does not half-close: the daemon must close without a reset that
        // destroys the reply. A reset shows as an error from read_to_end.
        assert_eq!(
            String::from_utf8(read_to_end(&mut s)).unwrap(),
            "You entered 4 characters.\n",
            "round {i}"
        );
    }
}

#[test]
fn reply_survives_more_bytes_sent_after_the_reply_was_written() {
    let d = start(&["tcp:count@127.0.0.1:0"]);
    for round in 0..50 {
        let mut s = count_client(d.addr(0));
        s.write_all(b"x\n").unwrap();
        let mut reply = read_exact(&mut s, "You entered 1 characters.\n".len());
        // The daemon has written the reply and shut its side; more input now is drained.
        s.write_all(&[b'y'; 5000]).unwrap();
        reply.extend(read_to_end(&mut s));
        assert_eq!(reply, b"You entered 1 characters.\n", "round {round}");
    }
}

#[test]
fn an_over_long_line_is_refused_with_the_limit() {
    let d = start(&["tcp:count@127.0.0.1:0"]);
    let mut s = count_client(d.addr(0));
    s.write_all(&[b'a'; 4097]).unwrap();
    assert_eq!(
        String::from_utf8(read_to_end(&mut s)).unwrap(),
        "Error: line too long (limit 4096 bytes)\n"
    );
    // Exactly the limit is fine.
    let mut line = vec![b'a'; 4096];
    line.push(b'\n');
    assert_eq!(
        count_reply(d.addr(0), &line),
        "You entered 4096 characters.\n"
    );
}

#[test]
fn the_line_limit_is_a_flag() {
    let d = start_with(&["tcp:count@127.0.0.1:0"], |c| c.max_line = 10);
    assert_eq!(
        count_reply(d.addr(0), b"12345678901\n"),
        "Error: line too long (limit 10 bytes)\n"
    );
    assert_eq!(
        count_reply(d.addr(0), b"1234567890\n"),
        "You entered 10 characters.\n"
    );
}

#[test]
fn a_multi_megabyte_flood_gets_the_error_and_the_daemon_goes_on() {
    let d = start(&["tcp:count@127.0.0.1:0"]);
    let addr = d.addr(0);
    let mut s = count_client(addr);
    let mut reader = s.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        let chunk = vec![b'f'; 64 * 1024];
        let mut sent = 0usize;
        // The daemon drains and discards until its linger deadline, then closes; the
        // writes end with an error there or the flood ends first.
        while sent < 8 << 20 {
            match s.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        let _ = s.shutdown(Shutdown::Write);
    });
    let mut reply = vec![0; "Error: line too long (limit 4096 bytes)\n".len()];
    reader.read_exact(&mut reply).unwrap();
    assert_eq!(reply, b"Error: line too long (limit 4096 bytes)\n");
    // Meanwhile the daemon serves others.
    assert_eq!(count_reply(addr, b"ok\n"), "You entered 2 characters.\n");
    flood.join().unwrap();
}

#[test]
fn the_deadline_ends_a_silent_client() {
    let d = start_with(&["tcp:count@127.0.0.1:0"], |c| {
        c.idle_timeout = Duration::from_millis(300)
    });
    let mut s = count_client(d.addr(0));
    assert_eq!(
        String::from_utf8(read_to_end(&mut s)).unwrap(),
        "Error: timed out after 0.3 s\n"
    );
    let summary = d.stop();
    assert_eq!(summary.timed_out, 1);
}

#[test]
fn a_slow_trickle_does_not_extend_the_deadline() {
    let d = start_with(&["tcp:count@127.0.0.1:0"], |c| {
        c.idle_timeout = Duration::from_millis(400)
    });
    let mut s = count_client(d.addr(0));
    s.set_nodelay(true).unwrap();
    let mut reader = s.try_clone().unwrap();
    // One byte every 50 ms, past the deadline: each byte is activity, none may help.
    let trickle = std::thread::spawn(move || {
        for _ in 0..40 {
            if s.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let mut reply = Vec::new();
    reader.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"Error: timed out after 0.4 s\n");
    trickle.join().unwrap();
}

#[test]
fn ipv6_clients_see_their_bracketed_address() {
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    };
    drop(probe);
    let d = start(&["tcp:count@[::1]:0"]);
    let mut s = connect(d.addr(0));
    let want = format!(
        "Welcome, [::1]:{}\nPlease enter a string: ",
        s.local_addr().unwrap().port()
    );
    assert_eq!(read_exact(&mut s, want.len()), want.as_bytes());
}

#[test]
fn dual_stack_any_shows_ipv4_clients_as_plain_ipv4() {
    if std::net::TcpListener::bind("[::]:0").is_err() {
        eprintln!("no IPv6 here: skipped");
        return;
    }
    let d = start(&["tcp:count@[::]:0"]);
    let port = d.addr(0).port();
    let mut s = connect(format!("127.0.0.1:{port}").parse().unwrap());
    let want = welcome_for(&s);
    assert!(want.starts_with(b"Welcome, 127.0.0.1:"));
    assert_eq!(read_exact(&mut s, want.len()), want);
}

#[test]
fn hundreds_of_clients_at_once() {
    let d = start(&["tcp:count@127.0.0.1:0"]);
    let mut clients: Vec<TcpStream> = (0..500).map(|_| count_client(d.addr(0))).collect();
    for (i, s) in clients.iter_mut().enumerate() {
        s.write_all(format!("{}\n", "x".repeat(i % 50)).as_bytes())
            .unwrap();
    }
    for (i, s) in clients.iter_mut().enumerate() {
        assert_eq!(
            String::from_utf8(read_to_end(s)).unwrap(),
            format!("You entered {} characters.\n", i % 50)
        );
    }
    assert_eq!(d.stop().served, 500);
}
