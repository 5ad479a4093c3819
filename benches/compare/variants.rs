//! The designs compared with oneloop, each serving TCP count and UDP echo on 127.0.0.1 the way a
//! reader would expect from that design. The bench re-executes itself as
//! `compare --serve VARIANT`; [`serve`] binds port 0, prints `tcp PORT udp PORT` on stdout and
//! serves until killed.

use std::io::{self, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use crate::protocol::{count_async, count_blocking, echo_async, echo_blocking};

/// Worker threads of the `pool` design.
const POOL_WORKERS: usize = 8;

/// Runs `variant` until the process is killed.
pub fn serve(variant: &str) -> io::Result<()> {
    raise_open_file_limit();
    match variant {
        "serial" => serve_blocking(|listener| {
            for stream in listener.incoming() {
                let _ = count_blocking(stream?);
            }
            Ok(())
        }),
        "threads" => serve_blocking(|listener| {
            for stream in listener.incoming() {
                let stream = stream?;
                thread::spawn(move || count_blocking(stream));
            }
            Ok(())
        }),
        "pool" => serve_blocking(|listener| {
            let (streams, queue) = mpsc::channel();
            let queue = Arc::new(Mutex::new(queue));
            for _ in 0..POOL_WORKERS {
                let queue = Arc::clone(&queue);
                thread::spawn(move || loop {
                    // The lock is held only while taking a stream, not while serving it.
                    let next = queue.lock().expect("queue lock").recv();
                    let Ok(stream) = next else { break };
                    let _ = count_blocking(stream);
                });
            }
            for stream in listener.incoming() {
                streams.send(stream?).expect("a worker is alive");
            }
            Ok(())
        }),
        "tokio-ct" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(serve_tokio()),
        "tokio-mt" => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(serve_tokio()),
        _ => Err(io::Error::other(format!("unknown variant {variant}"))),
    }
}

/// Binds both sockets, announces them, runs UDP echo on a thread of its own and `accept_loop`
/// on this one.
fn serve_blocking(accept_loop: fn(TcpListener) -> io::Result<()>) -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    announce(listener.local_addr()?.port(), udp.local_addr()?.port())?;
    thread::spawn(move || echo_blocking(udp));
    accept_loop(listener)
}

async fn serve_tokio() -> io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    announce(listener.local_addr()?.port(), udp.local_addr()?.port())?;
    tokio::spawn(echo_async(udp));
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(count_async(stream));
    }
}

fn announce(tcp: u16, udp: u16) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "tcp {tcp} udp {udp}")?;
    out.flush()
}

/// Lifts the soft open-file limit to the hard one, as oneloop does, so every design may hold
/// as many connections as the system allows.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct given, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
