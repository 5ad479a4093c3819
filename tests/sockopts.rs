//! `oneloop sockopts`: the table and its JSON list every option of `REQUIRED`, with a value
//! (or the errno that says why there is none) on a fresh TCP and a fresh UDP socket.

use std::process::Command;

/// The options the table must always show.
const REQUIRED: [&str; 17] = [
    "SO_REUSEADDR",
    "SO_REUSEPORT",
    "SO_KEEPALIVE",
    "SO_BROADCAST",
    "SO_LINGER",
    "SO_RCVBUF",
    "SO_SNDBUF",
    "SO_OOBINLINE",
    "SO_TYPE",
    "SO_ERROR",
    "SO_BINDTODEVICE",
    "TCP_NODELAY",
    "TCP_KEEPIDLE",
    "TCP_KEEPINTVL",
    "TCP_KEEPCNT",
    "IPV6_V6ONLY",
    "IP_TTL",
];

fn sockopts(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_oneloop"))
        .arg("sockopts")
        .args(args)
        .output()
        .expect("run oneloop sockopts");
    (
        output.status.code().expect("exit code"),
        String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A JSON value, as far as this test needs one.
#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A small JSON parser (RFC 8259 structure and strings; numbers as Rust reads them), short
/// enough to trust by reading: it panics on what is not JSON.
struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn parse(text: &str) -> Json {
        let mut p = Parser {
            text: text.as_bytes(),
            at: 0,
        };
        let value = p.value();
        p.blanks();
        assert_eq!(p.at, p.text.len(), "text after the JSON value");
        value
    }

    fn blanks(&mut self) {
        while self
            .text
            .get(self.at)
            .is_some_and(|b| b" \t\r\n".contains(b))
        {
            self.at += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.blanks();
        let found = self.text[self.at..].starts_with(token.as_bytes());
        if found {
            self.at += token.len();
        }
        found
    }

    fn expect(&mut self, token: &str) {
        assert!(self.eat(token), "expected {token:?} at byte {}", self.at);
    }

    fn value(&mut self) -> Json {
        if self.eat("null") {
            Json::Null
        } else if self.eat("true") {
            Json::Bool(true)
        } else if self.eat("false") {
            Json::Bool(false)
        } else if self.eat("[") {
            let mut items = Vec::new();
            if !self.eat("]") {
                loop {
                    items.push(self.value());
                    if self.eat("]") {
                        break;
                    }
                    self.expect(",");
                }
            }
            Json::Array(items)
        } else if self.eat("{") {
            let mut fields = Vec::new();
            if !self.eat("}") {
                loop {
                    self.expect("\"");
                    let key = self.string_rest();
                    self.expect(":");
                    fields.push((key, self.value()));
                    if self.eat("}") {
                        break;
                    }
                    self.expect(",");
                }
            }
            Json::Object(fields)
        } else if self.eat("\"") {
            Json::Str(self.string_rest())
        } else {
            let start = self.at;
            while self
                .text
                .get(self.at)
                .is_some_and(|b| b"+-.eE0123456789".contains(b))
            {
                self.at += 1;
            }
            let number = std::str::from_utf8(&self.text[start..self.at]).unwrap();
            assert!(!number.starts_with('+'), "JSON numbers have no plus sign");
            Json::Number(number.parse().expect("a JSON value"))
        }
    }

    /// The rest of a string whose opening quote was eaten.
    fn string_rest(&mut self) -> String {
        let mut s = Vec::new();
        loop {
            let b = self.text[self.at];
            self.at += 1;
            match b {
                b'"' => return String::from_utf8(s).unwrap(),
                b'\\' => {
                    let escape = self.text[self.at];
                    self.at += 1;
                    let c = match escape {
                        b'"' | b'\\' | b'/' => escape as char,
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'u' => {
                            let hex = std::str::from_utf8(&self.text[self.at..self.at + 4]);
                            self.at += 4;
                            char::from_u32(u32::from_str_radix(hex.unwrap(), 16).unwrap()).unwrap()
                        }
                        other => panic!("bad escape \\{}", other as char),
                    };
                    s.extend_from_slice(c.to_string().as_bytes());
                }
                b if b < 0x20 => panic!("raw control byte {b:#x} in a string"),
                b => s.push(b),
            }
        }
    }
}

#[test]
fn the_json_parser_here_accepts_json_and_rejects_the_rest() {
    assert_eq!(
        Parser::parse(r#" {"a":[1,-2.5e3,true,null],"b\n":"\u00e9\""} "#),
        Json::Object(vec![
            (
                "a".into(),
                Json::Array(vec![
                    Json::Number(1.0),
                    Json::Number(-2500.0),
                    Json::Bool(true),
                    Json::Null
                ])
            ),
            ("b\n".into(), Json::Str("é\"".into())),
        ])
    );
    for bad in ["{\"a\":1,}", "[1 2]", "\"tab\there\"", "{'a':1}", "1 1"] {
        assert!(
            std::panic::catch_unwind(|| Parser::parse(bad)).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn json_lists_every_required_option_on_both_sockets() {
    let (code, stdout, _) = sockopts(&["--json"]);
    assert_eq!(code, 0);
    let table = Parser::parse(&stdout);
    let Some(Json::Array(options)) = table.get("options") else {
        panic!("no options array: {stdout}");
    };
    let option = |name: &str| {
        options
            .iter()
            .find(|o| o.get("name") == Some(&Json::Str(name.into())))
            .unwrap_or_else(|| panic!("{name} is missing"))
    };
    for name in REQUIRED {
        let o = option(name);
        for socket in ["tcp", "udp"] {
            let value = o
                .get(socket)
                .unwrap_or_else(|| panic!("{name}: no {socket}"));
            // A value, or an object that names the error.
            if let Json::Object(_) = value {
                assert!(matches!(value.get("error"), Some(Json::Str(_))), "{name}");
            }
        }
        assert!(matches!(o.get("meaning"), Some(Json::Str(m)) if !m.is_empty()));
        assert!(matches!(o.get("level"), Some(Json::Str(_))));
    }
    let value = |name: &str, socket: &str| option(name).get(socket).unwrap().clone();
    assert_eq!(value("SO_TYPE", "tcp"), Json::Str("SOCK_STREAM".into()));
    assert_eq!(value("SO_TYPE", "udp"), Json::Str("SOCK_DGRAM".into()));
    assert_eq!(value("SO_BINDTODEVICE", "tcp"), Json::Str(String::new()));
    assert_eq!(value("SO_REUSEADDR", "tcp"), Json::Bool(false));
    assert_eq!(value("SO_ERROR", "udp"), Json::Number(0.0));
    assert_eq!(value("TCP_NODELAY", "tcp"), Json::Bool(false));
    assert!(
        value("TCP_NODELAY", "udp").get("error").is_some(),
        "no TCP option on UDP"
    );
    assert!(matches!(value("IP_TTL", "udp"), Json::Number(ttl) if ttl >= 1.0));
    assert!(matches!(value("SO_RCVBUF", "tcp"), Json::Number(bytes) if bytes > 0.0));
}

#[test]
fn the_table_has_a_row_per_option_with_both_values_and_a_meaning() {
    let (code, stdout, _) = sockopts(&[]);
    assert_eq!(code, 0);
    for name in REQUIRED {
        let row = stdout
            .lines()
            .find(|line| line.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{stdout}"));
        assert!(row.split_whitespace().count() >= 5, "{row}");
    }
    let so_type = stdout.lines().find(|l| l.contains(" SO_TYPE ")).unwrap();
    assert!(so_type.contains("SOCK_STREAM") && so_type.contains("SOCK_DGRAM"));
    assert!(stdout.contains("IPv6 for IPPROTO_IPV6 options"));
}

#[test]
fn help_exits_0_and_unknown_flags_exit_2() {
    let (code, stdout, _) = sockopts(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("usage: oneloop sockopts"));
    let (code, _, stderr) = sockopts(&["--yaml"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--yaml") && stderr.contains("usage"));
}

/// `net.core.somaxconn` of this machine, as the kernel shows it.
fn somaxconn() -> i64 {
    let text = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap();
    text.trim().parse().unwrap()
}

#[test]
fn the_listen_backlog_the_daemon_uses_is_shown_last() {
    let (code, stdout, _) = sockopts(&[]);
    assert_eq!(code, 0);
    let last = stdout.lines().last().unwrap();
    let words: Vec<&str> = last.split_whitespace().collect();
    assert_eq!(words[..2], ["listen()", "backlog"], "{last}");
    assert_eq!(words[2], somaxconn().to_string(), "{last}");
    assert!(
        last.ends_with("without --backlog: net.core.somaxconn)"),
        "{last}"
    );

    let (code, stdout, _) = sockopts(&["--json"]);
    assert_eq!(code, 0);
    let json = Parser::parse(&stdout);
    let backlog = json.get("listen_backlog").expect("listen_backlog");
    assert_eq!(
        backlog.get("value"),
        Some(&Json::Number(somaxconn() as f64))
    );
    assert_eq!(
        backlog.get("from"),
        Some(&Json::Str("net.core.somaxconn".into()))
    );
}
