//! The operator console (`--console`): standard input is one more source in the poll, and
//! each `ack` read waits for the operator's line. Through the binary, with a pipe for
//! standard input.

mod common;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{ChildStdin, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// The seed document's client: sends MESSAGE, half-closes at once, then reads the reply.
fn seed_client(addr: SocketAddr, message: &[u8]) -> TcpStream {
    let mut s = connect(addr);
    s.write_all(message).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    s
}

fn console(args: &[&str]) -> (Proc, ChildStdin, SocketAddr) {
    let all = [&["--tcp", "ack@127.0.0.1:0", "--console"][..], args].concat();
    let (mut p, stdin) = Proc::spawn_piped(&all, "info");
    let addr = p.listening(1)[0];
    (p, stdin, addr)
}

fn type_line(stdin: &mut ChildStdin, line: &str) {
    stdin.write_all(line.as_bytes()).unwrap();
    stdin.flush().unwrap();
}

#[test]
fn the_seed_client_gets_the_operators_reply() {
    let (mut p, mut stdin, addr) = console(&[]);
    let mut s = seed_client(addr, b"hello");
    let line = p.wait_for("console: connection 1 waits for your reply");
    assert!(line.contains("its client said \"hello\""), "{line}");
    type_line(&mut stdin, "fine, thanks\n");
    assert_eq!(read_to_end(&mut s), b"hello\nI get it!\nfine, thanks\n");
}

#[test]
fn lines_go_to_the_longest_waiting_or_to_at_n() {
    let (mut p, mut stdin, addr) = console(&[]);
    let mut clients = Vec::new();
    for (i, msg) in ["one", "two", "three"].into_iter().enumerate() {
        clients.push(seed_client(addr, msg.as_bytes()));
        p.wait_for(&format!("console: connection {} waits", i + 1));
    }
    type_line(&mut stdin, "first\n@3 third\nsecond\n");
    let replies: Vec<Vec<u8>> = clients.iter_mut().map(read_to_end).collect();
    assert_eq!(replies[0], b"one\nI get it!\nfirst\n");
    assert_eq!(replies[1], b"two\nI get it!\nsecond\n");
    assert_eq!(replies[2], b"three\nI get it!\nthird\n");
    // Numbers are never used again: the next connection is 4.
    let _next = seed_client(addr, b"four");
    p.wait_for("console: connection 4 waits");
    type_line(&mut stdin, "@2 nobody\n");
    p.wait_for("console: connection 2 is not waiting; line dropped");
}

#[test]
fn the_operators_time_does_not_count_toward_the_idle_timeout() {
    let (mut p, mut stdin, addr) = console(&["--idle-timeout", "0.3"]);
    let mut s = connect(addr);
    s.write_all(b"wait").unwrap();
    p.wait_for("console: connection 1 waits");
    // The operator takes three idle timeouts to answer: the connection is still there.
    std::thread::sleep(Duration::from_millis(900));
    type_line(&mut stdin, "here\n");
    let mut got = read_exact(&mut s, b"wait\nI get it!\nhere\n".len());
    assert_eq!(got, b"wait\nI get it!\nhere\n");
    // Reading goes on after the reply, with the idle limit restarted.
    s.write_all(b"again").unwrap();
    got = read_exact(&mut s, b"again\nI get it!\n".len());
    assert_eq!(got, b"again\nI get it!\n");
}

#[test]
fn a_last_line_without_its_lf_still_goes_out() {
    let (mut p, mut stdin, addr) = console(&["--ack-reply", "bye\n"]);
    let mut s = seed_client(addr, b"hi");
    p.wait_for("console: connection 1 waits");
    type_line(&mut stdin, "no newline");
    drop(stdin);
    assert_eq!(read_to_end(&mut s), b"hi\nI get it!\nno newline\n");
}

#[test]
fn at_the_end_of_input_waiting_connections_get_the_reply_text() {
    let (mut p, stdin, addr) = console(&["--ack-reply", "bye\n"]);
    let mut waiting = seed_client(addr, b"hi");
    p.wait_for("console: connection 1 waits");
    drop(stdin);
    assert_eq!(read_to_end(&mut waiting), b"hi\nI get it!\nbye\n");
    p.wait_for("console: end of input");
    // With the console closed, ack answers at once.
    let mut later = seed_client(addr, b"x");
    assert_eq!(read_to_end(&mut later), b"x\nI get it!\nbye\n");
}

fn unpollable(stdin: Stdio) {
    let mut p = Proc::spawn_cmd_stdin(
        std::process::Command::new(env!("CARGO_BIN_EXE_oneloop"))
            .args([
                "--tcp",
                "ack@127.0.0.1:0",
                "--console",
                "--ack-reply",
                "ok\n",
            ])
            .env("RUST_LOG", "info"),
        stdin,
    );
    let addr = p.listening(1)[0];
    p.wait_for("console: standard input cannot be polled");
    let mut s = seed_client(addr, b"x");
    assert_eq!(read_to_end(&mut s), b"x\nI get it!\nok\n");
}

#[test]
fn dev_null_as_standard_input_ends_the_console_at_once() {
    unpollable(Stdio::null());
}

#[test]
fn a_regular_file_as_standard_input_ends_the_console_at_once() {
    let path = std::env::temp_dir().join(format!("oneloop-console-{}", std::process::id()));
    std::fs::write(&path, "a line nobody will read\n").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    unpollable(Stdio::from(file));
}

#[test]
fn waiters_whose_clients_reset_are_freed_and_the_next_line_goes_to_a_live_one() {
    let (mut p, mut stdin, addr) = console(&[]);
    wait_asleep(p.pid());
    let base = open_descriptors(p.pid());
    // Each waiter half-closes first, as the seed client does: that alone must not end its
    // wait; the reset that follows must.
    const GONE: usize = 300;
    let waiters: Vec<TcpStream> = (0..GONE).map(|_| seed_client(addr, b"gone")).collect();
    p.wait_for_nth("waits for your reply", GONE);
    assert_eq!(open_descriptors(p.pid()), base + GONE);
    waiters.into_iter().for_each(reset);
    wait_until("the reset waiters' descriptors to be freed", || {
        open_descriptors(p.pid()) == base
    });
    let mut live = seed_client(addr, b"alive");
    p.wait_for(&format!("console: connection {} waits", GONE + 1));
    type_line(&mut stdin, "for the living\n");
    assert_eq!(
        read_to_end(&mut live),
        b"alive\nI get it!\nfor the living\n"
    );
}

/// The counts of dropped lines the log names: one for each warning that names a line, and
/// N for each `N more line(s) dropped`.
fn dropped_lines_logged(log: &[String]) -> u64 {
    let named = log.iter().filter(|l| l.ends_with("; line dropped")).count() as u64;
    let counted: u64 = log
        .iter()
        .filter_map(|l| {
            l.split("console: ")
                .nth(1)?
                .strip_suffix(" more line(s) dropped: no connection was waiting for them")
        })
        .map(|n| n.parse::<u64>().expect("a count"))
        .sum();
    named + counted
}

#[test]
fn a_flood_on_standard_input_stalls_no_client_and_holds_no_memory() {
    const FLOOD: usize = 8 << 20;
    let (mut p, mut stdin) = Proc::spawn_piped(
        &[
            "--tcp",
            "count@127.0.0.1:0",
            "--console",
            "--ack-reply",
            "x",
        ],
        "info",
    );
    let addr = p.listening(1)[0];
    // Empty lines, with no connection waiting for them: each is dropped.
    let flood = thread::spawn(move || {
        let chunk = vec![b'\n'; 1 << 20];
        for _ in 0..FLOOD / chunk.len() {
            stdin
                .write_all(&chunk)
                .expect("the daemon reads its standard input");
        }
    });
    p.wait_for("console: no connection is waiting; line dropped");
    assert_eq!(count_reply(addr, b"hello\n"), "You entered 5 characters.\n");
    // The reply came while the flood was still being read: its writer is still blocked.
    assert!(
        !flood.is_finished(),
        "the flood was over before the client was served"
    );
    let deadline = Instant::now() + 6 * WAIT;
    while !flood.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the flood is not read after {:?}",
            6 * WAIT
        );
        thread::sleep(Duration::from_millis(20));
    }
    flood.join().unwrap();
    p.wait_for("console: end of input");
    // Every line is accounted for, in two log lines each time the daemon caught up with the
    // writer (at worst every read of 4 KiB), rather than one line each.
    assert_eq!(dropped_lines_logged(&p.seen), FLOOD as u64);
    assert!(p.seen.len() < FLOOD / 1000, "{} log lines", p.seen.len());
    let peak = status_kb(p.pid(), "VmHWM");
    assert!(peak < 64 * 1024, "peak resident memory {peak} kB");
}
