//! The connection's state diagram, `docs/learn/conn-states.svg`, is drawn from
//! [`TRANSITIONS`]: this test writes the table as Graphviz's DOT and checks that the committed
//! picture has exactly the table's edges. `ONELOOP_BLESS=1 cargo test --lib state_diagram`
//! writes `docs/learn/conn-states.dot` and draws the SVG again with `dot` (Debian's
//! `graphviz`).

use super::*;

const DOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/learn/conn-states.dot");
const SVG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/learn/conn-states.svg");

/// Where connections begin: accepted directly, or from a listed proxy.
const BEGINS: [(&str, &str); 2] = [
    ("Serving", "accepted"),
    ("Header", "accepted from a listed proxy"),
];

/// The table as a DOT graph.
fn dot() -> String {
    let mut text = String::from(
        "// Drawn from TRANSITIONS in src/server/conn/mod.rs by the test\n\
         // the_state_diagram_is_drawn_from_the_transitions; do not edit.\n\
         digraph conn {\n  rankdir=TB;\n  bgcolor=\"white\";\n  \
         node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef4fb\", fontname=\"sans-serif\", fontsize=12];\n  \
         edge [fontname=\"sans-serif\", fontsize=9, color=\"#445566\"];\n  \
         accept [shape=point, width=0.12, label=\"\"];\n  \
         Closed [fillcolor=\"#f2f2f2\"];\n",
    );
    for (to, label) in BEGINS {
        text += &format!("  accept -> {to} [label=\"{label}\"];\n");
    }
    for (from, to, label) in TRANSITIONS {
        text += &format!("  {from} -> {to} [label=\"{label}\"];\n");
    }
    text + "}\n"
}

/// The edges the picture draws, from the titles Graphviz gives them (`A&#45;&gt;B`).
fn drawn_edges(svg: &str) -> Vec<(String, String)> {
    let mut edges: Vec<(String, String)> = svg
        .split("<title>")
        .skip(1)
        .filter_map(|rest| {
            let title = rest.split("</title>").next()?;
            let (from, to) = title.split_once("&#45;&gt;")?;
            Some((from.to_string(), to.to_string()))
        })
        .collect();
    edges.sort();
    edges
}

#[test]
fn the_state_diagram_is_drawn_from_the_transitions() {
    if std::env::var_os("ONELOOP_BLESS").is_some() {
        std::fs::write(DOT, dot()).expect("write the DOT file");
        let status = std::process::Command::new("dot")
            .args(["-Tsvg", "-o", SVG, DOT])
            .status()
            .expect("run dot (Debian's graphviz)");
        assert!(status.success());
    }
    let committed = std::fs::read_to_string(DOT).expect("docs/learn/conn-states.dot");
    assert_eq!(
        committed,
        dot(),
        "run with ONELOOP_BLESS=1 to draw it again"
    );
    let svg = std::fs::read_to_string(SVG).expect("docs/learn/conn-states.svg");
    let mut wanted: Vec<(String, String)> = TRANSITIONS
        .iter()
        .map(|&(f, t, _)| (f.to_string(), t.to_string()))
        .chain(
            BEGINS
                .iter()
                .map(|&(t, _)| ("accept".to_string(), t.to_string())),
        )
        .collect();
    wanted.sort();
    assert_eq!(
        drawn_edges(&svg),
        wanted,
        "the SVG is not the table's: ONELOOP_BLESS=1"
    );
}

#[test]
fn every_state_is_in_the_table() {
    for state in [
        State::Header,
        State::Serving,
        State::Waiting,
        State::Answered,
        State::TimedOut,
        State::Lingering { fin_sent: true },
        State::Closed,
    ] {
        assert!(
            TRANSITIONS
                .iter()
                .any(|&(f, t, _)| f == state.name() || t == state.name()),
            "{state:?}"
        );
    }
    // A closed connection goes nowhere.
    assert!(!TRANSITIONS.iter().any(|&(f, _, _)| f == "Closed"));
}
