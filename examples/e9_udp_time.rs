//! Example 9 of 9: the seed's UDP time server, and why some datagrams get no answer.
//!
//! Adds: datagrams. UDP has no connections, no accept and no streams: `recv_from` returns
//! one datagram and the address it came from, and `send_to` answers that address. Any
//! datagram (its content is ignored, and it may be empty) gets 4 bytes: the seconds since
//! 1970-01-01 UTC as an unsigned 32-bit big-endian number (it wraps in 2106), as the seed's
//! `struct.pack("!I", ...)` does. There is no state per client, so one blocking loop serves
//! everyone; a slow client costs nothing but its own datagram.
//!
//! What UDP brings with it: the source address is whatever the sender wrote. CERT advisory
//! CA-1996-01 ("UDP port denial-of-service") is the classic case: one datagram forged to come
//! from port 7 (echo) or 19 (chargen) of a host, sent to another host's echo or chargen, sets
//! the two answering each other for ever, flooding both and the network between them. Any
//! server that answers every datagram can be one end of such a loop, or a reflector that
//! sends its answers to a victim the forger chose. This one answers no datagram whose source
//! port is below 1024: every well-known service (echo 7, discard 9, daytime 13, chargen 19,
//! time 37, DNS 53, NTP 123, SNMP 161...) lives there, and real clients send from ephemeral
//! ports (32768 and up on Linux). What it drops it says on standard error. Try it:
//!
//! ```text
//! cargo run --example e9_udp_time -- 127.0.0.1:51423
//! echo | nc -u -w1 127.0.0.1 51423 | od -An -tu1   # four bytes: now, big-endian
//! ```
//!
//! Still missing, and in the daemon: this loop can do nothing but wait for datagrams. The
//! daemon serves its UDP sockets from the same poll as its TCP connections, a batch of
//! datagrams per system call (src/server/udp.rs, src/os/mmsg.rs). Its refusal rule, in src/proto/datagram.rs,
//! also drops datagrams from its own services' ports (two of its servers must not loop
//! either) and from addresses that cannot be one honest sender: unspecified, multicast,
//! broadcast.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{SystemTime, UNIX_EPOCH};

#[path = "common/watch.rs"]
mod watch;

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1);
    let socket = UdpSocket::bind(addr.as_deref().unwrap_or("127.0.0.1:0"))?;
    watch::say_listening(
        socket.local_addr()?,
        &[
            "cargo run -q -- client time ADDR",
            "echo | nc -u -w1 HOST PORT | od -An -tu1  # four bytes: now, big-endian",
        ],
    )?;

    // Room for any datagram; what does not fit is cut off, which a time request can afford.
    let mut buf = [0; 2048];
    loop {
        let source = match socket.recv_from(&mut buf) {
            Ok((_, source)) => source,
            Err(e) => {
                eprintln!("receive: {e}");
                continue;
            }
        };
        if let Some(why) = refusal(source) {
            eprintln!("dropped a datagram from {source}: {why}");
            continue;
        }
        // UDP may lose an answer, and the client asks again: a failed send is only logged.
        if let Err(e) = socket.send_to(&time_now(), source) {
            eprintln!("answer to {source}: {e}");
        }
    }
}

/// Why a datagram from `source` must not be answered, if it must not.
fn refusal(source: SocketAddr) -> Option<&'static str> {
    (source.port() < 1024).then_some("source port below 1024 (a service, not a client)")
}

/// The time as the seed's clients read it: seconds since 1970, big-endian, modulo 2^32.
fn time_now() -> [u8; 4] {
    // A clock set before 1970 reads as 1970 itself.
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    (secs as u32).to_be_bytes() // `as` keeps the low 32 bits: the value modulo 2^32
}
