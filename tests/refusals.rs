//! Refusals are bounded too: a flood of them holds at most `--max-refusals` descriptors.
//! Through the binary, which this test counts the descriptors of (apart from tests/limits.rs,
//! whose in-process tests also run under qemu for aarch64).

mod common;

use std::net::TcpStream;

use common::*;

#[test]
fn a_flood_of_refusals_holds_at_most_max_refusals_descriptors() {
    let mut p = Proc::spawn(
        &[
            "--tcp",
            "count@127.0.0.1:0",
            "--max-connections",
            "5",
            "--max-refusals",
            "10",
            "--linger",
            "30",
        ],
        "info",
    );
    let addr = p.listening(1)[0];
    let base = open_descriptors(p.pid());
    let _held: Vec<TcpStream> = (0..5).map(|_| count_client(addr)).collect();
    // Refused clients that keep their end open, so every refusal that lingers lingers long.
    let mut refused = Vec::new();
    let mut told_busy = 0;
    for _ in 0..300 {
        let mut s = connect(addr);
        match read_to_end(&mut s).as_slice() {
            b"Error: server busy (5 connections)\n" => told_busy += 1,
            b"" => {}
            other => panic!("unexpected {:?}", String::from_utf8_lossy(other)),
        }
        refused.push(s);
    }
    assert_eq!(
        told_busy, 10,
        "only the first refusals linger with the message"
    );
    assert_eq!(open_descriptors(p.pid()), base + 5 + 10);
    p.signal(libc::SIGTERM);
    assert_eq!(p.wait_exit(), 0);
    let summary = p.wait_for("connections served");
    assert!(summary.contains("served 5, refused 300"), "{summary}");
}
