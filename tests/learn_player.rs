//! docs/learn/player.html in a real browser: Debian's `chromium`, headless, loads the page at
//! a scenario and a step given in its address (`player.html?scenario=count&step=12`), and
//! the page it leaves must show that scenario's lines up to the step, the step's own line
//! marked, and the phase of the loop that line belongs to highlighted, as
//! docs/learn/traces/player-data.js (made by scripts/traces.sh) says. A screenshot is kept
//! in target/player/ for a person to look at.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use common::{skip_for_want_of, WAIT};
use serde_json::Value;

const PHASES: [&str; 9] = [
    "setup", "poll", "wake", "accept", "read", "write", "again", "deadline", "close",
];

fn learn() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/learn")
}

/// The scenarios of player-data.js: between `const TRACES = ` and the last `;`, JSON.
fn scenarios() -> Vec<Value> {
    let text = std::fs::read_to_string(learn().join("traces/player-data.js")).unwrap();
    let start = text.find("const TRACES = ").expect("const TRACES") + "const TRACES = ".len();
    let end = text.rfind(';').expect("a closing ;");
    serde_json::from_str::<Vec<Value>>(&text[start..end]).expect("JSON")
}

/// Whether Debian's chromium runs here.
fn have_chromium() -> bool {
    let version = Command::new("chromium").arg("--version").output();
    version.is_ok_and(|out| out.status.success())
}

/// Runs headless chromium on the page at `query` with `what` (`--dump-dom`, or
/// `--screenshot=PATH`); returns its standard output, within a bounded wait.
fn chromium(query: &str, what: &str) -> String {
    let url = format!("file://{}/player.html?{query}", learn().display());
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(["--window-size=1300,760", what, &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send(out);
    });
    let out = rx.recv_timeout(3 * WAIT);
    let _ = child.kill();
    let _ = child.wait();
    out.unwrap_or_else(|_| panic!("chromium did not finish with {query}"))
}

/// Text as the page's serialised DOM writes it.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\u{a0}', "&nbsp;")
}

/// The class attribute of the element with `id`.
fn class_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let element = &dom[dom[..at].rfind('<').unwrap()..];
    let element = &element[..element.find('>').unwrap()];
    let class = element.split("class=\"").nth(1).unwrap_or("");
    &class[..class.find('"').unwrap_or(0)]
}

/// A field of a row of player-data.js: 0 its kind, 1 its phase, 2 its text.
fn field(row: &Value, i: usize) -> String {
    row[i].as_str().unwrap().to_string()
}

/// The step (from 1) of the first line of `scenario` that `pick` (kind, text) chooses.
fn step_of(scenario: &Value, pick: impl Fn(&str, &str) -> bool) -> usize {
    let rows = scenario["rows"].as_array().unwrap();
    let at = rows.iter().position(|r| pick(&field(r, 0), &field(r, 2)));
    at.unwrap_or_else(|| panic!("{}: no line to open the player at", scenario["name"])) + 1
}

/// Opens `scenario` at the first line that `pick` chooses, and checks what the page shows.
fn check(scenario: &Value, pick: impl Fn(&str, &str) -> bool, phase: &str) {
    let name = scenario["name"].as_str().unwrap();
    let rows = scenario["rows"].as_array().unwrap();
    let step = step_of(scenario, pick);
    let (at, text) = (step - 1, field(&rows[step - 1], 2));
    let dom = chromium(&format!("scenario={name}&step={step}"), "--dump-dom");
    let body = format!("data-scenario=\"{name}\" data-step=\"{step}\" data-phase=\"{phase}\"");
    assert!(
        dom.contains(&body),
        "{name} at {step}: want {body}; the page:\n{dom}"
    );
    for p in PHASES {
        let on = class_of(&dom, &format!("phase-{p}"))
            .split(' ')
            .any(|c| c == "on");
        assert_eq!(on, p == phase, "{name} at {step} ({text}): phase {p}");
    }
    // The step's line is marked, and shown with every line before it, none after.
    let now = dom.find(" now\" data-row=").expect("a line marked now");
    let line = &dom[now..];
    let line = &line[line.find('>').unwrap() + 1..line.find("</div>").unwrap()];
    let shown = if field(&rows[at], 0) == "s" {
        format!("# {text}")
    } else {
        text
    };
    assert_eq!(line, escaped(&shown), "{name} at {step}");
    assert_eq!(dom.matches("data-row=").count(), rows.len(), "{name}");
    let hidden = dom.matches(" later\" data-row=").count();
    assert_eq!(hidden, rows.len() - step, "{name} at {step}: lines shown");
}

/// Chooses a line of a scenario by its kind and text.
type Pick = Box<dyn Fn(&str, &str) -> bool + Send>;

#[test]
fn the_player_shows_each_scenario_line_by_line_with_its_phase_of_the_loop() {
    if !have_chromium() {
        let test = "the_player_shows_each_scenario_line_by_line_with_its_phase_of_the_loop";
        return skip_for_want_of(test, "chromium (Debian: chromium)");
    }
    let all = scenarios();
    let named = |name: &str| all.iter().find(|s| s["name"] == name).unwrap().clone();
    let call = |start: &'static str| -> Pick {
        Box::new(move |kind, text| kind == "c" && text.starts_with(start))
    };
    let said = |part: &'static str| -> Pick {
        Box::new(move |kind, text| kind == "n" && text.contains(part))
    };
    let cases = [
        (named("count"), said("poll: sleeping"), "poll"),
        (named("count"), said("poll: woke"), "wake"),
        (named("count"), call("accept4("), "accept"),
        (named("echo"), call("epoll_ctl(3, EPOLL_CTL_MOD"), "write"),
        (named("deadline"), said("its deadline passed"), "deadline"),
    ];
    // And a picture to look at: the count scenario at its first accept.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/player");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("count.png");
    let _ = std::fs::remove_file(&shot);
    let query = format!(
        "scenario=count&step={}",
        step_of(&named("count"), call("accept4("))
    );
    let screenshot = format!("--screenshot={}", shot.display());
    let picture = thread::spawn(move || drop(chromium(&query, &screenshot)));
    let mut running: Vec<_> = cases
        .into_iter()
        .map(|(scenario, pick, phase)| thread::spawn(move || check(&scenario, pick, phase)))
        .collect();
    running.push(picture);
    for run in running {
        if let Err(panic) = run.join() {
            std::panic::resume_unwind(panic);
        }
    }
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "no screenshot at {}", shot.display());
    eprintln!("screenshot: {}", shot.display());
}
