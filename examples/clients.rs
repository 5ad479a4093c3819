//! Learner clients: the misbehaving and crowding peers that make a server's choices visible.
//! Run one in a second terminal beside an example (each example prints which) or the daemon:
//!
//! ```text
//! cargo run --example clients -- flood ADDR                 # echo: e5, or the daemon's echo
//! cargo run --example clients -- trickle ADDR [--pause MS]  # count: e1 ... e7, the daemon
//! cargo run --example clients -- pair ADDR [--wait SECS]    # count
//! cargo run --example clients -- many ADDR [--count N] [--hold SECS]   # count
//! ```
//!
//! - `flood` sends to an echo server without reading anything back, so that the server's
//!   backpressure shows: once the buffers between the two are full, the server stops reading
//!   and the client can send no more. A client that tries this with blocking sends (Python's
//!   `sendall`) gets stuck inside its own send, or with a timeout fails there, not knowing
//!   how much went out: its own send buffer is full, which is the backpressure working, not
//!   an error of the server. So `flood` writes non-blocking (a `mio` poll of its own, as the
//!   servers have), counts what the kernel took, and says where it stalled. Then it stops
//!   sending, half-closes and reads everything back, to show that nothing was lost.
//! - `trickle` sends one count line in four pieces, with a pause between them (500 ms by
//!   default): the server must keep what it has counted between reads.
//! - `pair` connects a silent client A, then a normal client B beside it. A server that
//!   serves one client at a time (e1) gives B no welcome until A leaves; the others serve B at
//!   once. Then it waits (3 s by default) to see what the server tells the silent A: a
//!   deadline (e6, the daemon) closes it with a message.
//! - `many` opens 200 connections (or `--count`) at once, reads every welcome, holds them
//!   (`--hold`, 0 s by default: look at the server meanwhile), then sends each its line and
//!   reads each reply. It says how many connects took a second or more: those found the
//!   server's listen backlog full (docs/learn/seeds.md, "A backlog of the kernel's maximum,
//!   not 5").
//!
//! Every wait is bounded; each client exits 1 with a message when the server does not do
//! what a count or echo server must.

use std::error::Error;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The longest any one wait of these clients takes.
const WAIT: Duration = Duration::from_secs(5);

fn main() {
    if let Err(e) = run() {
        eprintln!("clients: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: clients flood|trickle|pair|many HOST:PORT [--pause MS] [--wait SECS] \
                 [--count N] [--hold SECS]";
    let (Some(mode), Some(addr)) = (args.first(), args.get(1)) else {
        return Err(usage.into());
    };
    let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let option = |name: &str, default: u64, max: u64| -> Result<u64> {
        let Some(at) = args.iter().position(|a| a == name) else {
            return Ok(default);
        };
        let value = args.get(at + 1).ok_or(format!("{name} needs a value"))?;
        match value.parse() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(format!("{name}: 0 to {max}, not {value}").into()),
        }
    };
    match mode.as_str() {
        "flood" => flood(addr),
        "trickle" => trickle(addr, Duration::from_millis(option("--pause", 500, 10_000)?)),
        "pair" => pair(addr, Duration::from_secs(option("--wait", 3, 3600)?)),
        "many" => many(
            addr,
            option("--count", 200, 10_000)? as usize,
            Duration::from_secs(option("--hold", 0, 3600)?),
        ),
        _ => Err(usage.into()),
    }
}

/// A blocking connection whose reads and writes give up after `WAIT`.
fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, WAIT).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(WAIT))?;
    s.set_write_timeout(Some(WAIT))?;
    Ok(s)
}

/// Reads until `end` has come (the count welcome ends in `string: `), at most `wait` long.
fn read_until(s: &mut TcpStream, end: &[u8], wait: Duration) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0; 1024];
    while !got.ends_with(end) {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        match s.read(&mut buf)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    s.set_read_timeout(Some(WAIT))?;
    Ok(got)
}

fn read_to_end(s: &mut TcpStream) -> io::Result<String> {
    let mut got = Vec::new();
    s.read_to_end(&mut got)?;
    Ok(String::from_utf8_lossy(&got).into_owned())
}

fn ms(since: Instant) -> u128 {
    since.elapsed().as_millis()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The bytes `flood` sends: a pattern, so that what comes back can be checked in order.
fn pattern(at: u64) -> u8 {
    (at % 251) as u8
}

/// Sends without reading until the send buffer stays full (the server stopped reading), or
/// `LIMIT` bytes went out; then half-closes, reads everything back and checks it.
fn flood(addr: SocketAddr) -> Result<()> {
    const LIMIT: u64 = 64 << 20;
    const STALL: Duration = Duration::from_secs(2);
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(4);
    let std_stream = connect(addr)?;
    std_stream.set_nonblocking(true)?;
    let mut stream = mio::net::TcpStream::from_std(std_stream);
    stream.set_nodelay(true)?;
    let interest = Interest::READABLE | Interest::WRITABLE;
    poll.registry().register(&mut stream, Token(0), interest)?;
    println!("flood: connected to {addr}; sending without reading anything back");
    let (mut sent, mut full, mut reported) = (0u64, false, 0u64);
    let mut progress = Instant::now();
    let mut chunk = vec![0; 64 * 1024];
    while sent < LIMIT {
        chunk
            .iter_mut()
            .zip(sent..)
            .for_each(|(b, at)| *b = pattern(at));
        match stream.write(&chunk) {
            Ok(n) => {
                (sent, progress) = (sent + n as u64, Instant::now());
                if sent >> 20 > reported >> 20 {
                    println!("flood: {} sent", mib(sent));
                    reported = sent;
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e.into()),
            Err(_) => {}
        }
        if !full {
            println!(
                "flood: my send buffer is full at {} sent: the rest waits for the server to read",
                mib(sent)
            );
            full = true;
        }
        let left = STALL.saturating_sub(progress.elapsed());
        if left.is_zero() {
            break;
        }
        wait(&mut poll, &mut events, left)?;
    }
    if sent < LIMIT {
        println!(
            "flood: stalled at {} sent: no room for {} s. The server stopped reading: what I \
             sent waits in my send buffer and in its receive buffer (backpressure)",
            mib(sent),
            STALL.as_secs()
        );
    } else {
        println!(
            "flood: {} sent without a stall: the server read it all",
            mib(sent)
        );
    }
    println!("flood: now reading back, and sending nothing more (half-close)");
    stream.shutdown(Shutdown::Write)?;
    let back = read_back(&mut stream, &mut poll, &mut events)?;
    if back != sent {
        return Err(format!("read back {} of {} sent", mib(back), mib(sent)).into());
    }
    println!(
        "flood: read back all {} sent, in order: nothing was lost",
        mib(sent)
    );
    Ok(())
}

/// Waits for the flood's socket to be ready, at most `left`.
fn wait(poll: &mut Poll, events: &mut Events, left: Duration) -> io::Result<()> {
    match poll.poll(events, Some(left)) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        result => result,
    }
}

/// Reads to EOF, checking the pattern; returns how many bytes came.
fn read_back(
    stream: &mut mio::net::TcpStream,
    poll: &mut Poll,
    events: &mut Events,
) -> Result<u64> {
    let (mut back, mut buf) = (0u64, vec![0; 64 * 1024]);
    let mut progress = Instant::now();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(back),
            Ok(n) => {
                if let Some(i) = (0..n).find(|&i| buf[i] != pattern(back + i as u64)) {
                    return Err(format!("byte {} came back changed", back + i as u64).into());
                }
                (back, progress) = (back + n as u64, Instant::now());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e.into()),
            Err(_) if progress.elapsed() >= WAIT => {
                return Err(format!("nothing came back for {} s", WAIT.as_secs()).into());
            }
            Err(_) => wait(poll, events, WAIT.saturating_sub(progress.elapsed()))?,
        }
    }
}

/// One count line in pieces, a pause after each.
fn trickle(addr: SocketAddr, pause: Duration) -> Result<()> {
    let mut s = connect(addr)?;
    let welcome = read_until(&mut s, b"string: ", WAIT).map_err(|e| format!("welcome: {e}"))?;
    println!("trickle: welcomed: {:?}", String::from_utf8_lossy(&welcome));
    let start = Instant::now();
    for piece in ["hel", "lo, ", "wor", "ld\n"] {
        s.write_all(piece.as_bytes())?;
        println!("trickle: {:>5} ms: sent {piece:?}", ms(start));
        thread::sleep(pause);
    }
    let reply = read_to_end(&mut s).map_err(|e| format!("reply: {e}"))?;
    println!(
        "trickle: {:>5} ms: the reply, then EOF: {reply:?}",
        ms(start)
    );
    Ok(())
}

/// A silent client beside a normal one.
fn pair(addr: SocketAddr, wait_for_a: Duration) -> Result<()> {
    let mut silent = Some(connect(addr)?);
    println!("pair: A connected, and says nothing");
    let mut b = connect(addr)?;
    let start = Instant::now();
    println!("pair: B connected");
    let patience = Duration::from_secs(2);
    match read_until(&mut b, b"string: ", patience) {
        Ok(_) => println!(
            "pair: B welcomed after {} ms, while A stays silent",
            ms(start)
        ),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            println!(
                "pair: B has no welcome after {} s: the server is stuck on the silent A (e1 \
                 serves one client at a time). A leaves now",
                patience.as_secs()
            );
            silent = None;
            let left = Instant::now();
            read_until(&mut b, b"string: ", WAIT).map_err(|e| format!("B's welcome: {e}"))?;
            println!("pair: B welcomed {} ms after A left", ms(left));
        }
        Err(e) => return Err(format!("B's welcome: {e}").into()),
    }
    b.write_all(b"hello\n")?;
    let reply = read_to_end(&mut b).map_err(|e| format!("B's reply: {e}"))?;
    println!("pair: B sent \"hello\\n\" and read {reply:?}, then EOF");
    let Some(mut a) = silent else {
        return Ok(());
    };
    println!(
        "pair: A stays silent {} s more, reading what the server tells it",
        wait_for_a.as_secs()
    );
    a.set_read_timeout(Some(wait_for_a.max(Duration::from_millis(1))))?;
    let mut told = Vec::new();
    let end = match a.read_to_end(&mut told) {
        Ok(_) => "then EOF: the server closed it".to_string(),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            format!("and it is still open after {} s", wait_for_a.as_secs())
        }
        Err(e) => format!("then {e}"),
    };
    println!(
        "pair: A was told {:?}, {end}",
        String::from_utf8_lossy(&told)
    );
    Ok(())
}

/// `count` connections at once, held, then each sends its line.
fn many(addr: SocketAddr, count: usize, hold: Duration) -> Result<()> {
    let start = Instant::now();
    let (mut conns, mut retried) = (Vec::with_capacity(count), 0);
    for i in 0..count {
        let connecting = Instant::now();
        conns.push(connect(addr).map_err(|e| format!("connection {i}: {e}"))?);
        // Linux answers a full backlog by dropping the handshake; the client tries again
        // after a second.
        retried += usize::from(connecting.elapsed() >= Duration::from_millis(500));
    }
    println!("many: {count} connections open after {} ms", ms(start));
    if retried > 0 {
        println!(
            "many: {retried} of them waited a second or more to connect: the server's listen \
             backlog was full (it accepts more slowly than they came), so the kernel dropped \
             their first handshake and they tried again"
        );
    }
    for (i, s) in conns.iter_mut().enumerate() {
        read_until(s, b"string: ", WAIT).map_err(|e| format!("connection {i}'s welcome: {e}"))?;
    }
    println!("many: {count} welcomes read after {} ms", ms(start));
    if !hold.is_zero() {
        println!(
            "many: holding them {} s: look at the server now",
            hold.as_secs()
        );
        thread::sleep(hold);
    }
    let start = Instant::now();
    for (i, s) in conns.iter_mut().enumerate() {
        s.write_all(format!("client {i}\n").as_bytes())?;
    }
    for (i, s) in conns.iter_mut().enumerate() {
        let want = format!("You entered {} characters.\n", format!("client {i}").len());
        let reply = read_to_end(s).map_err(|e| format!("connection {i}'s reply: {e}"))?;
        if reply != want {
            return Err(format!("connection {i}: {reply:?}, not {want:?}").into());
        }
    }
    println!(
        "many: {count} of {count} answered, each with its own count, in {} ms",
        ms(start)
    );
    Ok(())
}
