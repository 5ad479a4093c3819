//! The man page, docs/oneloop.1, cannot drift from the command line: each command's section
//! (OPTIONS for the daemon, CLIENTS, LOAD GENERATOR, SOCKET OPTION TABLE) has an entry for
//! every long flag that command's `--help` lists, with the default the help gives
//! (`Default: X.`), and no entry for a flag it does not list; every flag the page names
//! anywhere is a real one; the title carries this version; and groff renders the page without
//! a warning (where groff is installed: under CI it must be).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::Proc;

const PAGE: &str = "docs/oneloop.1";

/// The page's source.
fn page_source() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(PAGE);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What `oneloop ARGS` prints on standard output; it must exit 0.
fn help_of(args: &[&str]) -> String {
    let ended = Proc::spawn(args, "info").finish();
    assert_eq!(ended.code, 0, "oneloop {args:?}: {}", ended.stderr);
    ended.stdout
}

/// The long flags (`--name`) written in `text`, in order; `x--y` and `---` are none.
fn flags_in(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter_map(|word| word.strip_prefix("--"))
        .map(|name| name.trim_end_matches('-'))
        .filter(|name| name.starts_with(|c: char| c.is_ascii_alphanumeric()))
        .map(|name| format!("--{name}"))
}

/// The default a help line gives: a trailing `[X]`, or `(default X` up to `)`, `;` or `,`.
fn default_in(line: &str) -> Option<String> {
    if let Some((_, rest)) = line.split_once("(default ") {
        return rest.split([')', ';', ',']).next().map(str::to_string);
    }
    let inner = line.strip_suffix(']')?;
    inner.rfind('[').map(|open| inner[open + 1..].to_string())
}

/// One command as its `--help` texts describe it.
struct Help {
    /// The man page section that documents it.
    section: &'static str,
    /// The commands whose help this is, for messages.
    name: String,
    /// Every long flag the texts name.
    flags: BTreeSet<String>,
    /// The flags that have an entry of their own (a line starting with `-`), with the default
    /// the entry gives.
    defaults: BTreeMap<String, Option<String>>,
    /// Two texts that give one flag different defaults.
    conflicts: Vec<String>,
}

impl Help {
    /// Reads the `--help` texts of the subcommand `command` (`serve` for the daemon).
    fn read(section: &'static str, command: &str, name: String, texts: &[String]) -> Help {
        let mut help = Help {
            section,
            name,
            flags: BTreeSet::new(),
            defaults: BTreeMap::new(),
            conflicts: Vec::new(),
        };
        for text in texts {
            // The flags of other commands, in the usage lines that name them, are theirs.
            let own = |line: &&str| {
                let line = line.trim();
                let usage = ["Usage:", "usage:"]
                    .iter()
                    .find_map(|p| line.strip_prefix(p))
                    .unwrap_or(line);
                let named = usage.trim_start().strip_prefix("oneloop ");
                let other = named.and_then(|words| words.split(' ').next());
                !other.is_some_and(|w| SUBCOMMANDS.contains(&w) && w != command)
            };
            help.flags
                .extend(text.lines().filter(own).flat_map(flags_in));
            // An entry is a line that starts with a flag, and the lines indented deeper below.
            let mut current = None;
            let mut entry_indent = 0;
            for line in text.lines() {
                let indent = line.len() - line.trim_start().len();
                let line = line.trim();
                if line.starts_with('-') {
                    current = flags_in(line).next();
                    entry_indent = indent;
                    if let Some(flag) = &current {
                        help.defaults.entry(flag.clone()).or_insert(None);
                    }
                } else if line.is_empty() || indent <= entry_indent {
                    current = None;
                }
                let (Some(flag), Some(default)) = (&current, default_in(line)) else {
                    continue;
                };
                let known = help.defaults.get_mut(flag).expect("the entry was added");
                match known {
                    None => *known = Some(default),
                    Some(given) if *given != default => help.conflicts.push(format!(
                        "{}: {flag} has the defaults '{given}' and '{default}'",
                        help.name
                    )),
                    Some(_) => {}
                }
                current = None;
            }
        }
        help
    }
}

/// Every command the page documents, from the built binary's `--help` texts. The load
/// generator's section counts only when it is built in (the cargo feature `load`).
fn helps() -> Vec<Help> {
    let read = |section, command, args: &[&str]| {
        let name = format!("oneloop {}", args.join(" "));
        Help::read(section, command, name, &[help_of(args)])
    };
    let mut helps = vec![
        read("OPTIONS", "serve", &["--help"]),
        read("CLIENTS", "client", &["client", "--help"]),
        read("SOCKET OPTION TABLE", "sockopts", &["sockopts", "--help"]),
    ];
    if cfg!(feature = "load") {
        let load = help_of(&["load", "--help"]);
        // The scenarios, from their lines `oneloop load NAME ADDR`.
        let scenarios: Vec<String> = load
            .lines()
            .filter_map(|l| l.trim().strip_prefix("oneloop load ")?.split(' ').next())
            .filter(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
            .map(str::to_string)
            .collect();
        assert!(scenarios.len() >= 2, "no scenarios found in:\n{load}");
        let mut texts = vec![load];
        texts.extend(scenarios.iter().map(|s| help_of(&["load", s, "--help"])));
        helps.push(Help::read(
            LOAD_SECTION,
            "load",
            "oneloop load [SCENARIO] --help".into(),
            &texts,
        ));
    }
    helps
}

const LOAD_SECTION: &str = "LOAD GENERATOR";

/// The words that name the subcommands.
const SUBCOMMANDS: [&str; 4] = ["serve", "client", "load", "sockopts"];

/// A line of roff as it reads: a request's name and quotes taken away, escapes decoded
/// (`\-` a hyphen, `\e` a backslash, `\fB` and the other font changes nothing).
fn plain(line: &str) -> String {
    let text = match line.strip_prefix('.') {
        Some(request) => request
            .split_once(' ')
            .map_or(String::new(), |(_, args)| args.replace('"', "")),
        None => line.to_string(),
    };
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('-') => out.push('-'),
            Some('e') => out.push('\\'),
            Some('f') => {
                chars.next();
            }
            Some('(') => {
                let name: String = chars.by_ref().take(2).collect();
                out.push(if matches!(name.as_str(), "lq" | "rq") {
                    '"'
                } else {
                    ' '
                });
            }
            Some(other) if other != '&' && other != 'c' => out.push(other),
            _ => {}
        }
    }
    out
}

/// A `.TP` paragraph: its tag line and its text, both as they read.
struct Entry {
    section: String,
    tag: String,
    body: String,
}

impl Entry {
    /// The flag an entry describes: the first long flag of a tag that starts with `-`.
    fn flag(&self) -> Option<String> {
        self.tag
            .trim_start()
            .starts_with('-')
            .then(|| flags_in(&self.tag).next())
            .flatten()
    }

    /// The text with its lines joined by single spaces.
    fn text(&self) -> String {
        self.body.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// The man page, read: its `.TH` line, each section's text, and its `.TP` entries.
struct Page {
    title: String,
    sections: Vec<(String, String)>,
    entries: Vec<Entry>,
}

impl Page {
    fn parse(source: &str) -> Page {
        let mut page = Page {
            title: String::new(),
            sections: Vec::new(),
            entries: Vec::new(),
        };
        let mut tag_next = false;
        let mut in_entry = false;
        for line in source.lines().filter(|l| !l.starts_with(".\\\"")) {
            let request = line
                .strip_prefix('.')
                .map(|r| r.split(' ').next().unwrap_or(""));
            if request == Some("TH") {
                page.title = plain(line);
                continue;
            }
            if request == Some("SH") {
                page.sections.push((plain(line), String::new()));
            }
            if matches!(request, Some("SH" | "SS" | "TP" | "PP" | "P" | "LP" | "IP")) {
                in_entry = false;
                tag_next = request == Some("TP");
                continue;
            }
            let text = plain(line);
            let Some((section, section_text)) = page.sections.last_mut() else {
                continue;
            };
            section_text.push_str(&text);
            section_text.push('\n');
            if tag_next {
                page.entries.push(Entry {
                    section: section.clone(),
                    tag: text,
                    body: String::new(),
                });
                tag_next = false;
                in_entry = true;
            } else if in_entry {
                let entry = page.entries.last_mut().expect("an entry is open");
                entry.body.push_str(&text);
                entry.body.push('\n');
            }
        }
        page
    }
}

/// Where the page and the helps disagree, one line each; `unchecked` sections are left out
/// of the search for flags that do not exist.
fn problems(page: &Page, helps: &[Help], unchecked: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for help in helps {
        found.extend(help.conflicts.iter().cloned());
        let entries: BTreeMap<String, &Entry> = page
            .entries
            .iter()
            .filter(|e| e.section == help.section)
            .filter_map(|e| Some((e.flag()?, e)))
            .collect();
        for flag in &help.flags {
            let Some(entry) = entries.get(flag) else {
                found.push(format!(
                    "{}: no entry for {flag} (from {})",
                    help.section, help.name
                ));
                continue;
            };
            let text = entry.text();
            match help.defaults.get(flag).cloned().flatten() {
                Some(default) if !text.contains(&format!("Default: {default}.")) => {
                    found.push(format!(
                        "{}: {flag} should say 'Default: {default}.' ({}): {text}",
                        help.section, help.name
                    ))
                }
                None if text.contains("Default:") => found.push(format!(
                    "{}: {flag} gives a default that {} does not: {text}",
                    help.section, help.name
                )),
                _ => {}
            }
        }
        for flag in entries.keys().filter(|f| !help.flags.contains(*f)) {
            found.push(format!(
                "{}: an entry for {flag}, which {} does not list",
                help.section, help.name
            ));
        }
    }
    let known: BTreeSet<&String> = helps.iter().flat_map(|h| &h.flags).collect();
    for (section, text) in &page.sections {
        if unchecked.contains(&section.as_str()) {
            continue;
        }
        for flag in flags_in(text).filter(|f| !known.contains(f)) {
            found.push(format!("{section}: names {flag}, which no --help lists"));
        }
    }
    found
}

/// The sections whose command this build leaves out.
fn unchecked() -> Vec<&'static str> {
    if cfg!(feature = "load") {
        Vec::new()
    } else {
        vec![LOAD_SECTION]
    }
}

#[test]
fn the_page_has_every_flag_with_its_default_and_no_other() {
    let page = Page::parse(&page_source());
    let found = problems(&page, &helps(), &unchecked());
    assert!(found.is_empty(), "{PAGE}:\n{}", found.join("\n"));
}

#[test]
fn the_check_finds_a_missing_flag_a_wrong_default_and_a_flag_that_does_not_exist() {
    let source = page_source();
    let helps = helps();
    // The check reads the real page: entries in every command's section, defaults among them.
    let page = Page::parse(&source);
    for help in &helps {
        let flags = page
            .entries
            .iter()
            .filter(|e| e.section == help.section && e.flag().is_some());
        assert!(flags.count() >= 2, "no flag entries in {}", help.section);
    }
    let max_line = ".TP\n.BI \\-\\-max\\-line \" BYTES\"\n";
    assert!(source.contains(max_line), "the --max-line entry moved");

    let without = Page::parse(&source.replacen(max_line, ".TP\n.B other\n", 1));
    let found = problems(&without, &helps, &unchecked());
    assert!(
        found.iter().any(|p| p.contains("no entry for --max-line")),
        "{found:?}"
    );

    let wrong = Page::parse(&source.replacen("Default: 4096.", "Default: 4095.", 1));
    let found = problems(&wrong, &helps, &unchecked());
    assert!(
        found
            .iter()
            .any(|p| p.contains("--max-line should say 'Default: 4096.'")),
        "{found:?}"
    );

    let made_up = format!(".TP\n.B \\-\\-max\\-lines\nMade up.\n{max_line}");
    let invented = source.replacen(max_line, &made_up, 1);
    let found = problems(&Page::parse(&invented), &helps, &unchecked());
    assert!(
        found
            .iter()
            .any(|p| p == "OPTIONS: an entry for --max-lines, which oneloop --help does not list"),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p == "OPTIONS: names --max-lines, which no --help lists"),
        "{found:?}"
    );
}

#[test]
fn help_entries_and_their_defaults_are_read_from_both_forms() {
    let daemon = Help::read("OPTIONS", "serve", "--help".into(), &[help_of(&["--help"])]);
    let default = |help: &Help, flag: &str| help.defaults.get(flag).cloned();
    assert_eq!(default(&daemon, "--max-line"), Some(Some("4096".into())));
    assert_eq!(default(&daemon, "--group"), Some(Some("the user's".into())));
    assert_eq!(default(&daemon, "--reuseport"), Some(None));
    // Not "info", which the Logging line after the last entry mentions.
    assert_eq!(default(&daemon, "--version"), Some(None));
    // `oneloop sockopts [--json]` in the daemon's usage lines: a flag of sockopts.
    assert!(!daemon.flags.contains("--json"));
    assert!(daemon.conflicts.is_empty(), "{:?}", daemon.conflicts);
    let client_help = help_of(&["client", "--help"]);
    let client = Help::read("CLIENTS", "client", "client --help".into(), &[client_help]);
    assert_eq!(default(&client, "--timeout"), Some(Some("5".into())));
    assert_eq!(default(&client, "--tries"), Some(Some("3".into())));
    // Named in a usage line only: a flag of the command, without an entry of its own.
    assert!(client.flags.contains("--send"));
    assert_eq!(default(&client, "--send"), None);
}

#[test]
fn roff_reads_as_typed() {
    assert_eq!(
        plain(".BI \\-\\-max\\-line \" BYTES\""),
        "--max-line  BYTES"
    );
    assert_eq!(plain("\\fB\\-\\-tcp\\fR \\fISPEC\\fR"), "--tcp SPEC");
    assert_eq!(
        plain("escapes \\er and \\e\\e\\&."),
        "escapes \\r and \\\\."
    );
    assert_eq!(plain("\\(lqI get it!\\(rq"), "\"I get it!\"");
    let flags: Vec<String> = flags_in("use --udp-rate N, x--no, ---, --max-line=5.").collect();
    assert_eq!(flags, ["--udp-rate", "--max-line"]);
    assert_eq!(
        default_in("burst N; 0: no limit      [0]"),
        Some("0".into())
    );
    assert_eq!(
        default_in("all together (default none;"),
        Some("none".into())
    );
    assert_eq!(default_in("  oneloop client echo ADDR [--udp"), None);
}

#[test]
fn the_title_names_this_version() {
    let page = Page::parse(&page_source());
    let version = format!("oneloop {}", env!("CARGO_PKG_VERSION"));
    assert!(page.title.contains(&version), "{PAGE}: .TH {}", page.title);
}

/// Whether a program is on PATH.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

#[test]
fn groff_renders_the_page_without_a_warning() {
    if !on_path("groff") {
        // .ci/run installs it, so CI never skips this.
        assert!(
            std::env::var_os("CI").is_none(),
            "groff is not installed (Debian: groff-base)"
        );
        eprintln!("skipped: groff is not installed");
        return;
    }
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join(PAGE);
    let ended = Proc::spawn_cmd(
        Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&page),
    )
    .finish();
    assert_eq!(ended.code, 0, "groff failed: {}", ended.stderr);
    assert!(ended.stderr.is_empty(), "groff warns:\n{}", ended.stderr);
}
