//! Micro-benchmarks of the hot pure code: a whole `count` session over one line (welcome,
//! line, reply), and counting the characters of 4 KiB lines that are ASCII, multi-byte UTF-8
//! or invalid bytes.
//!
//! `cargo bench --bench session` (criterion; `-- --quick` for a short run).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use oneloop::proto::{Epoch, LineCounter, Service, Session, Settings};
use oneloop::server::counters::NO_METRICS;

/// The longest line oneloop accepts by default.
const LINE: usize = 4096;

fn count_session(c: &mut Criterion) {
    let peer: SocketAddr = "127.0.0.1:40512".parse().expect("address");
    let settings = Settings {
        max_line: LINE,
        idle_timeout: Duration::from_secs(30),
        ack_reply: b"",
        console: false,
        metrics: &NO_METRICS,
    };
    let now = SystemTime::now();
    let mut out = Vec::with_capacity(128);
    c.bench_function("count session: welcome, `hello, world`, reply", |b| {
        b.iter(|| {
            out.clear();
            let (mut session, _) =
                Session::open(Service::Count, black_box(peer), now, Epoch::Unix, &mut out);
            session.on_data(black_box(b"hello, world\n"), &settings, &mut out);
            black_box(&out);
        })
    });
}

/// `unit` repeated to exactly `LINE` bytes (the last copy cut short).
fn line_of(unit: &[u8]) -> Vec<u8> {
    unit.iter().copied().cycle().take(LINE).collect()
}

fn line_counter(c: &mut Criterion) {
    let mut group = c.benchmark_group("LineCounter over 4 KiB");
    group.throughput(Throughput::Bytes(LINE as u64));
    let lines = [
        ("ASCII", line_of(b"hello, world ")),
        ("multi-byte UTF-8", line_of("héllo 日本語 🦀 ".as_bytes())),
        ("invalid bytes", line_of(b"\xff\xfe\xc3\x28\xe2\x82")),
    ];
    for (name, line) in &lines {
        group.bench_function(*name, |b| {
            b.iter_batched(
                LineCounter::default,
                |mut counter| {
                    counter.push(black_box(line));
                    counter.finish()
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, count_session, line_counter);
criterion_main!(benches);
