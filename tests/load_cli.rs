//! `oneloop load`, the built binary: numbers out of their range are usage errors before
//! anything is sent.

mod common;

use std::net::TcpListener;

use common::Proc;

#[test]
fn an_absurd_rate_is_a_usage_error_naming_the_range() {
    // A real listener: a load generator that took the rate would run against it.
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = target.local_addr().unwrap().to_string();
    let args = [
        "load",
        "count",
        &addr,
        "--rate",
        "1e300",
        "--duration",
        "0.1",
    ];
    let run = Proc::spawn(&args, "info").finish();
    assert_eq!(
        run.code, 2,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert_eq!(
        run.stderr,
        "oneloop load: --rate: '1e300' is out of range (0.001 to 1000000 per second)\n\
         Try 'oneloop load --help'."
    );
    assert_eq!(run.stdout, "");
}
