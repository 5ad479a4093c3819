//! The learning path's pages (docs/learn/ and docs/learn/traces/) hold together: every lesson
//! links the glossary, every relative link leads to a file that exists, and every picture is
//! linked from a lesson.

use std::path::{Path, PathBuf};

fn learn() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/learn")
}

/// The files of `dir` (not below it) whose names end in `.ext`.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    found.sort();
    found
}

/// Every lesson: the Markdown pages of docs/learn/ and docs/learn/traces/, the glossary aside.
fn lessons() -> Vec<PathBuf> {
    let mut pages = files(&learn(), "md");
    pages.extend(files(&learn().join("traces"), "md"));
    pages.retain(|p| !p.ends_with("glossary.md"));
    assert!(pages.len() >= 10, "{pages:?}");
    pages
}

/// The targets of the Markdown links `[text](target)` of a page.
fn links(text: &str) -> Vec<&str> {
    text.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &text[at + 2..];
            rest.find(')').map(|end| &rest[..end])
        })
        .collect()
}

#[test]
fn every_lesson_links_the_glossary() {
    for page in lessons() {
        let text = std::fs::read_to_string(&page).unwrap();
        let glossary = page.parent().unwrap().join("glossary.md");
        let wanted = if glossary.exists() {
            "glossary.md"
        } else {
            "../glossary.md"
        };
        assert!(
            links(&text).contains(&wanted),
            "{} does not link {wanted}",
            page.display()
        );
    }
}

#[test]
fn every_relative_link_of_the_lessons_leads_to_a_file() {
    let mut pages = lessons();
    pages.push(learn().join("glossary.md"));
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        for target in links(&text) {
            let path = target.split('#').next().unwrap_or("");
            if path.is_empty() || path.contains("://") {
                continue;
            }
            let file = page.parent().unwrap().join(path);
            assert!(file.exists(), "{}: {target} leads nowhere", page.display());
        }
    }
}

#[test]
fn every_picture_is_linked_from_a_lesson() {
    let texts: Vec<String> = lessons()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    for picture in files(&learn(), "svg") {
        let name = picture.file_name().unwrap().to_str().unwrap();
        let linked = texts.iter().any(|text| {
            links(text)
                .iter()
                .any(|target| target.split('#').next().unwrap().ends_with(name))
        });
        assert!(linked, "no lesson links {name}");
    }
}
