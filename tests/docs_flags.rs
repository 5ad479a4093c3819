//! The documents keep up with the command line: every long flag that the built binary's
//! `--help` texts list appears in the guide for its command (the daemon's, `oneloop --help`, in
//! docs/operating.md; those of `client --help`, `load --help` and `sockopts --help` in
//! docs/tools.md), in docs/protocol.md, and in the man page; every service the daemon accepts
//! is described in docs/protocol.md.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use oneloop::config::Instance;
use oneloop::proto::{Service, Transport};

/// How long a `--help` may take to print.
const WAIT: Duration = Duration::from_secs(20);

/// Where a man page may be kept; each one that exists is checked.
const MAN_PAGES: [&str; 4] = [
    "docs/oneloop.1",
    "docs/oneloop.1.md",
    "docs/man/oneloop.1",
    "man/oneloop.1",
];

/// What `oneloop ARGS` prints on standard output; it must exit 0 within [`WAIT`].
fn stdout_of(args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oneloop"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the oneloop binary starts");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut text = String::new();
        let read = stdout.read_to_string(&mut text).map(|_| text);
        let _ = tx.send(read);
    });
    let text = match rx.recv_timeout(WAIT) {
        Ok(read) => read.unwrap_or_else(|e| panic!("oneloop {args:?}: reading stdout: {e}")),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("oneloop {args:?} printed no complete output within {WAIT:?}");
        }
    };
    let status = child.wait().expect("the child is waited for");
    assert!(status.success(), "oneloop {args:?} exited with {status}");
    text
}

/// Whether `c` can be part of a long flag's name.
fn in_flag(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

/// Every long flag (`--name`) written in `text`.
fn long_flags(text: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    for (at, _) in text.match_indices("--") {
        if text[..at].chars().next_back().is_some_and(in_flag) {
            continue;
        }
        let name: String = text[at + 2..].chars().take_while(|&c| in_flag(c)).collect();
        let name = name.trim_end_matches('-');
        if name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            flags.insert(format!("--{name}"));
        }
    }
    flags
}

/// Whether `doc` names `flag` as a whole word (`--udp` is not named by `--udp-rate`).
fn mentions(doc: &str, flag: &str) -> bool {
    doc.match_indices(flag).any(|(at, _)| {
        let before = doc[..at].chars().next_back();
        let after = doc[at + flag.len()..].chars().next();
        !before.is_some_and(in_flag) && !after.is_some_and(in_flag)
    })
}

/// A man page's text with roff's escapes taken out (`\-\-max\-line`, `\fB...\fR`), so flags
/// read as they are typed.
fn unroff(page: &str) -> String {
    let mut text = page.replace("\\-", "-").replace("\\&", "");
    for font in ["\\fB", "\\fI", "\\fR", "\\fP"] {
        text = text.replace(font, "");
    }
    text
}

fn read_doc(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The guide for the daemon, which must name every flag of `oneloop --help`.
const DAEMON_GUIDE: &str = "docs/operating.md";

/// The guide for the clients, the load generator and `sockopts`, which must name their flags.
const TOOLS_GUIDE: &str = "docs/tools.md";

/// The `--help` texts whose flags the documents must name, each with the guide for its
/// command.
fn help_texts() -> Vec<(String, String, &'static str)> {
    let mut helps = vec![
        (vec!["--help"], DAEMON_GUIDE),
        (vec!["client", "--help"], TOOLS_GUIDE),
    ];
    if cfg!(feature = "load") {
        helps.push((vec!["load", "--help"], TOOLS_GUIDE));
    }
    helps.push((vec!["sockopts", "--help"], TOOLS_GUIDE));
    helps
        .into_iter()
        .map(|(args, guide)| {
            let command = format!("oneloop {}", args.join(" "));
            (command, stdout_of(&args), guide)
        })
        .collect()
}

/// The documents that must name every flag of every command: the reference, and each man
/// page that exists.
fn reference_documents() -> Vec<(String, String)> {
    let mut docs = vec![("docs/protocol.md".to_string(), read_doc("docs/protocol.md"))];
    for page in MAN_PAGES {
        if Path::new(env!("CARGO_MANIFEST_DIR")).join(page).exists() {
            docs.push((page.to_string(), unroff(&read_doc(page))));
        }
    }
    docs
}

#[test]
fn every_flag_the_help_lists_is_in_its_guide_and_the_reference() {
    let mut missing = Vec::new();
    let references = reference_documents();
    assert!(
        references.iter().any(|(doc, _)| doc == "docs/oneloop.1"),
        "the man page docs/oneloop.1 is not found"
    );
    for (command, help, guide) in help_texts() {
        let flags = long_flags(&help);
        assert!(
            flags.contains("--help"),
            "{command} lists no --help: {flags:?}"
        );
        let guide_text = read_doc(guide);
        let docs = references.iter().map(|(doc, text)| (doc.as_str(), text));
        for (doc, text) in docs.chain([(guide, &guide_text)]) {
            for flag in &flags {
                if !mentions(text, flag) {
                    missing.push(format!("{doc} does not name {flag} (from {command})"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "\n{}", missing.join("\n"));
}

#[test]
fn the_daemons_help_lists_its_flags() {
    // The extraction finds what the daemon's help lists, so the check above checks something.
    let flags = long_flags(&stdout_of(&["--help"]));
    for flag in [
        "--tcp",
        "--udp",
        "--max-line",
        "--allow",
        "--user",
        "--version",
    ] {
        assert!(flags.contains(flag), "{flag} not found in {flags:?}");
    }
}

/// The service names the daemon itself lists when a service is unknown.
fn listed_services() -> Vec<String> {
    let e = Instance::parse(Transport::Tcp, "no-such-service@127.0.0.1:0")
        .expect_err("an unknown service is refused")
        .to_string();
    let list = e
        .split_once("unknown service (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(list, _)| list)
        .unwrap_or_else(|| panic!("the refusal names no services: {e}"));
    list.split(", ").map(str::to_string).collect()
}

#[test]
fn every_service_is_described_in_the_reference() {
    let reference = read_doc("docs/protocol.md");
    let mut names: BTreeSet<String> = listed_services().into_iter().collect();
    names.extend(
        ["count", "ack", "echo", "time", "stats"]
            .into_iter()
            .filter(|name| Service::parse(name).is_some())
            .map(str::to_string),
    );
    assert!(names.contains("count"), "no services found: {names:?}");
    let mut missing = Vec::new();
    for name in &names {
        let service = Service::parse(name)
            .unwrap_or_else(|| panic!("'{name}' is listed as a service but not accepted"));
        assert_eq!(service.to_string(), *name);
        let quoted = format!("`{name}`");
        if !reference
            .lines()
            .any(|l| l.starts_with("## ") && l.contains(&quoted))
        {
            missing.push(format!("no section heading names {quoted}"));
        }
        if !reference.contains(&format!("| {quoted} |")) {
            missing.push(format!("the table of services has no row for {quoted}"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/protocol.md:\n{}",
        missing.join("\n")
    );
}

#[test]
fn flags_are_found_only_as_whole_words() {
    let text = "use --udp-rate N, or --max-line=5; -x and --- are not flags; see --tcp.";
    let flags: Vec<String> = long_flags(text).into_iter().collect();
    assert_eq!(flags, ["--max-line", "--tcp", "--udp-rate"]);
    assert!(mentions(text, "--udp-rate"));
    assert!(!mentions(text, "--udp"));
    assert!(mentions(text, "--tcp"));
    assert!(!mentions("--tcp-only", "--tcp"));
    assert!(!mentions("x--tcp", "--tcp"));
}

#[test]
fn man_page_escapes_are_read_as_typed() {
    let page = ".TP\n\\fB\\-\\-max\\-line\\fR \\fIBYTES\\fR\n";
    assert!(mentions(&unroff(page), "--max-line"));
    assert!(!mentions(page, "--max-line"));
}
