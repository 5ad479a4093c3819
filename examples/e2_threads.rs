//! Example 2 of 9: a thread per connection.
//!
//! Adds: each accepted client gets a thread of its own, which runs e1's conversation
//! unchanged (the module below is e1's file, word for word). A silent client now blocks only
//! its own thread; the accept loop goes straight back to `accept`, and everyone is served.
//!
//! Still wrong: every client costs a whole thread, idle or not: a stack (a spawned Rust
//! thread reserves 2 MiB of address space; only the pages it touches become resident), a
//! kernel task, and room in the scheduler. Nothing caps the number of threads, so a flood
//! of connections makes as many as it likes. Watch it with a few hundred idle clients (the
//! example prints these commands with its real address and pid):
//!
//! ```text
//! cargo run --example e2_threads -- 127.0.0.1:51423
//! cargo run -q --example clients -- many 127.0.0.1:51423 --hold 30   # terminal 2
//! grep -E 'Threads|VmRSS|VmSize' /proc/$(pidof e2_threads)/status    # terminal 3, meanwhile
//! ```
//! `Threads` grows by one per client. tests/examples.rs measures it with 100 idle clients
//! (`cargo test --test examples e2_each_idle_client_holds_a_thread -- --nocapture` prints the
//! figures). On one machine (x86-64, 2 cores, glibc 2.36) the 100 clients added 1500 KiB
//! resident (`VmRSS`, 15 KiB each: the pages their threads touched; the kernel's own memory
//! is not counted there) and 1162 MiB of address space (`VmSize`): 100 stacks of 2 MiB, and
//! 15 malloc arenas of 64 MiB, one for each of the first threads that allocated (glibc makes
//! up to 8 per core, so a machine with more cores reserves more). Cheap for a hundred
//! clients, heavy for a hundred thousand, and every switch from one client's thread to
//! another's goes through the kernel's scheduler.
//!
//! Next: e3_busy_loop serves every client from one thread by never waiting at all.

use std::io;
use std::thread;

#[path = "e1_blocking.rs"]
#[allow(dead_code)] // e1's own `main` is not used here
mod e1;

fn main() -> io::Result<()> {
    let listener = e1::listen(&[
        "cargo run -q --example clients -- many ADDR --hold 30  # 200 idle clients for 30 s",
        "grep -E 'Threads|VmRSS|VmSize' /proc/PID/status  # meanwhile: a thread each",
    ])?;
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        // `Builder::spawn`, unlike `thread::spawn`, reports a thread it cannot make (out of
        // memory, or over `ulimit -u`): that client is closed and the server goes on.
        let spawned = thread::Builder::new().spawn(move || {
            if let Err(e) = e1::serve(stream) {
                eprintln!("client: {e}");
            }
        });
        if let Err(e) = spawned {
            eprintln!("no thread for a client: {e}");
        }
    }
    Ok(())
}
