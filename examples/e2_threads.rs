//! Example 2 of 9: a thread per connection.
//!
//! Adds: each accepted client gets a thread of its own, which runs e1's conversation
//! unchanged (the module below is e1's file, word for word). A silent client now blocks only
//! its own thread; the accept loop goes straight back to `accept`, and everyone is served.
//!
//! Still wrong: every client costs a whole thread, idle or not: a stack (a spawned Rust
//! thread reserves 2 MiB of address space; only the pages it touches become resident), a
//! kernel task, and room in the scheduler. Nothing caps the number of threads, so a flood
//! of connections makes as many as it likes. Watch it with a few hundred idle clients:
//!
//! ```text
//! cargo run --example e2_threads -- 127.0.0.1:51423 &
//! for i in $(seq 200); do sleep 600 | nc 127.0.0.1 51423 >/dev/null & done
//! grep -E 'VmRSS|VmSize|Threads' /proc/$(pidof e2_threads)/status
//! ```
//! `Threads` grows by one per client. tests/examples.rs measures it with 100 idle clients
//! (run it with `--nocapture` to see the figures). On one x86-64 Linux machine each idle
//! client cost about 15 KiB resident (`VmRSS`: the pages it touched; the kernel's own memory
//! is not counted there) but 12 MiB of address space (`VmSize`): its 2 MiB stack, and for the
//! first threads a malloc arena of their own (glibc reserves 64 MiB for each, up to 8 arenas
//! per core). Cheap for a hundred clients, heavy for a hundred thousand, and every switch
//! from one client's thread to another's goes through the kernel's scheduler.
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
