//! Every relative link in the repository's markdown files resolves: `[text](path)`,
//! `![alt](path)` and `[label]: path` name a file or directory that exists, and a `#heading`
//! after a markdown file (or alone, for the same file) names one of its headings, as GitHub
//! makes their anchors. Links with a scheme (`https:`, `mailto:`) are not followed; code (fenced
//! blocks and `inline spans`) is not read for links.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

/// The repository's markdown files: every `*.md` below the manifest directory, except in
/// hidden directories (`.git`) and cargo's build directories (they hold `CACHEDIR.TAG`).
fn markdown_files() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR"))];
    while let Some(dir) = dirs.pop() {
        if dir.join("CACHEDIR.TAG").exists() {
            continue;
        }
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(".md") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The lines of `text` outside fenced code blocks (```` ``` ```` or `~~~`), each with its
/// number, counted from 1.
fn outside_fences(text: &str) -> Vec<(usize, &str)> {
    let mut lines = Vec::new();
    let mut fence: Option<&str> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match fence {
            Some(open) if trimmed.starts_with(open) => fence = None,
            Some(_) => {}
            None => match ["```", "~~~"].into_iter().find(|f| trimmed.starts_with(f)) {
                Some(open) => fence = Some(open),
                None => lines.push((n + 1, line)),
            },
        }
    }
    lines
}

/// `line` with each `` `span` `` (of any number of backticks) replaced by nothing.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].len() - rest[start..].trim_start_matches('`').len();
        let after = &rest[start + ticks..];
        match after.find(&"`".repeat(ticks)) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The link targets written on one line of prose: inline links and images, and reference
/// definitions.
fn targets(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let trimmed = line.trim_start();
    // `[label]: target`: the first `]` closes the label.
    if let Some(label_end) = trimmed.find(']').filter(|_| trimmed.starts_with('[')) {
        if let Some(definition) = trimmed[label_end..].strip_prefix("]: ") {
            if let Some(target) = definition.split_whitespace().next() {
                found.push(target.trim_matches(['<', '>']).to_string());
            }
        }
    }
    for (at, _) in line.match_indices("](") {
        let rest = &line[at + 2..];
        let Some(end) = rest.find(')') else { continue };
        let target = rest[..end].split_whitespace().next().unwrap_or_default();
        found.push(target.trim_matches(['<', '>']).to_string());
    }
    found
}

/// GitHub's anchor for a heading: lower case, every character but letters, digits, spaces,
/// `-` and `_` dropped, spaces made `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a markdown file's headings; a repeated one also as `NAME-1`, `NAME-2`, ...
fn anchors(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (_, line) in outside_fences(text) {
        let trimmed = line.trim_start();
        let hashes = trimmed.len() - trimmed.trim_start_matches('#').len();
        if !(1..=6).contains(&hashes) || !trimmed[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(trimmed[hashes..].trim_end_matches('#'));
        let mut anchor = base.clone();
        let mut n = 0;
        while !found.insert(anchor.clone()) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
    }
    found
}

/// `path` with `.` and `..` taken out, as the link means it (the file need not exist).
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// What is wrong with the links of the markdown file `file`, whose text is `text`; `root` is
/// the repository's top, which a link starting with `/` is relative to.
fn broken_links(root: &Path, file: &Path, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let shown = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    for (n, line) in outside_fences(text) {
        for target in targets(&without_code_spans(line)) {
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let linked = if path.is_empty() {
                file.to_path_buf()
            } else if let Some(from_top) = path.strip_prefix('/') {
                normal(&root.join(from_top))
            } else {
                normal(&file.parent().unwrap_or(root).join(path))
            };
            let at = format!("{shown}:{n}: ({target})");
            if !path.is_empty() && !linked.exists() {
                problems.push(format!("{at}: no such file"));
                continue;
            }
            if anchor.is_empty() || linked.extension() != Some(OsStr::new("md")) {
                continue;
            }
            let heading_text = if linked == file {
                text.to_string()
            } else {
                std::fs::read_to_string(&linked).unwrap_or_default()
            };
            if !anchors(&heading_text).contains(anchor) {
                problems.push(format!("{at}: no heading with that anchor"));
            }
        }
    }
    problems
}

#[test]
fn every_relative_link_in_the_markdown_files_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = markdown_files();
    assert!(
        files.iter().any(|f| f.ends_with("README.md")) && files.len() >= 5,
        "markdown files found: {files:?}"
    );
    let mut problems = Vec::new();
    for file in &files {
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        problems.extend(broken_links(root, file, &text));
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn a_missing_file_and_a_missing_heading_are_found_and_code_is_not_read() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = root.join("docs/example.md");
    let text = "# A `code` heading: yes\n\
                [ok](protocol.md#the-library), [here](#a-code-heading-yes), \
                ![chart](performance/rss.svg), [up](../Cargo.toml), [web](https://example.com/x)\n\
                [gone](SPEC.md) and [lost](protocol.md#no-such-heading)\n\
                `[in code](nowhere.md)`\n\
                ```\n[in a block](nowhere.md)\n```\n\
                [ref]: ../no-such-dir/\n";
    let found = broken_links(root, &file, text);
    assert_eq!(
        found,
        [
            "docs/example.md:3: (SPEC.md): no such file",
            "docs/example.md:3: (protocol.md#no-such-heading): no heading with that anchor",
            "docs/example.md:8: (../no-such-dir/): no such file",
        ]
    );
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    let text = "# Tools: clients, load\n## The comparison bench: `cargo bench --bench compare`\n\
                ### Micro-benchmarks (`benches/session.rs`)\n## Repeat\n## Repeat\n#not a heading\n";
    let found: Vec<String> = anchors(text).into_iter().collect();
    assert_eq!(
        found,
        [
            "micro-benchmarks-benchessessionrs",
            "repeat",
            "repeat-1",
            "the-comparison-bench-cargo-bench---bench-compare",
            "tools-clients-load",
        ]
    );
}
