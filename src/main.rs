//! The `oneloop` command: `serve` (the default), `client`, `sockopts`.

use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let sub = args.first().and_then(|a| a.to_str()).unwrap_or("");
    let code = match sub {
        "client" => {
            args.remove(0);
            oneloop::cmd::client::run_cli(args)
        }
        #[cfg(feature = "load")]
        "load" => {
            args.remove(0);
            oneloop::cmd::load::run_cli(args)
        }
        "sockopts" => {
            args.remove(0);
            oneloop::cmd::sockopts::run_cli(args)
        }
        "serve" => {
            args.remove(0);
            oneloop::cmd::serve::serve(args)
        }
        _ => oneloop::cmd::serve::serve(args),
    };
    ExitCode::from(code)
}
