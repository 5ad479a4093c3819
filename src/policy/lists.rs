//! The access files (`--allow-file`, `--deny-file`) as text: one network a line, written as
//! `--allow` and `--deny` take it ([`Cidr::parse`]); `#` starts a comment, to the end of the
//! line; blank lines are ignored; spaces and tabs around an entry and a CR before the LF are
//! not part of it. One bad line makes the whole file bad: a list that decides who is served is
//! used whole or not at all.

use super::access::{AccessList, Cidr};

/// The most bytes an access file may hold.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// The most entries an access file may hold.
pub const MAX_ENTRIES: usize = 100_000;

/// Why a file's text is not a list: the line (from 1) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub why: String,
}

/// Reads the networks of an access file's text.
pub fn parse(text: &[u8]) -> Result<Vec<Cidr>, BadLine> {
    let mut networks = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let bad = |why: String| BadLine { line: i + 1, why };
        let line = std::str::from_utf8(line).map_err(|_| bad("not UTF-8 text".into()))?;
        let entry = match line.split_once('#') {
            Some((entry, _comment)) => entry,
            None => line,
        };
        let entry = entry.trim_matches([' ', '\t', '\r']);
        if entry.is_empty() {
            continue;
        }
        if networks.len() == MAX_ENTRIES {
            return Err(bad(format!("more than {MAX_ENTRIES} entries")));
        }
        networks.push(Cidr::parse(entry).map_err(bad)?);
    }
    Ok(networks)
}

/// The entries of every access list, from the flags and the files, to be made into one
/// [`AccessList`].
#[derive(Clone, Debug, Default)]
pub struct Entries {
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
}

impl Entries {
    /// How many entries there are, allow and deny together.
    pub fn len(&self) -> usize {
        self.allow.len() + self.deny.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The list the gate checks (`None`: nothing to check).
    pub fn list(&self) -> Option<AccessList> {
        AccessList::new(&self.allow, &self.deny)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> Vec<String> {
        parse(text.as_bytes())
            .unwrap_or_else(|e| panic!("{e:?}"))
            .iter()
            .map(Cidr::to_string)
            .collect()
    }

    #[test]
    fn comments_blanks_crlf_and_spaces_are_not_entries() {
        let text = "# the office\n\n10.0.0.0/8\r\n  192.0.2.1  # the gateway\n\t::1\t\r\n#\n   \n";
        assert_eq!(shown(text), ["10.0.0.0/8", "192.0.2.1/32", "::1/128"]);
        assert_eq!(shown(""), Vec::<String>::new());
        assert_eq!(shown("10.0.0.1"), ["10.0.0.1/32"]);
    }

    #[test]
    fn a_bad_line_is_named_with_its_number() {
        let e = parse(b"10.0.0.0/8\n# fine\n10.0.0.1/8\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.why.starts_with("bad network '10.0.0.1/8'"), "{}", e.why);
        let e = parse(b"10.0.0.1 10.0.0.2\n").unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse(b"::1\n\xff\n").unwrap_err();
        assert_eq!((e.line, e.why.as_str()), (2, "not UTF-8 text"));
    }

    #[test]
    fn entries_past_the_limit_are_a_bad_line() {
        let text = "127.0.0.1\n".repeat(MAX_ENTRIES);
        assert_eq!(parse(text.as_bytes()).unwrap().len(), MAX_ENTRIES);
        let over = format!("{text}# comments do not count\n127.0.0.2\n");
        let e = parse(over.as_bytes()).unwrap_err();
        assert_eq!(e.line, MAX_ENTRIES + 2);
        assert_eq!(e.why, format!("more than {MAX_ENTRIES} entries"));
    }

    #[test]
    fn entries_make_one_list() {
        let mut entries = Entries::default();
        assert!(entries.is_empty() && entries.list().is_none());
        entries.deny = parse(b"127.0.0.2\n").unwrap();
        entries.allow = parse(b"127.0.0.0/8\n").unwrap();
        let list = entries.list().unwrap();
        assert_eq!(entries.len(), 2);
        assert!(list.permits("127.0.0.1".parse().unwrap()));
        assert!(!list.permits("127.0.0.2".parse().unwrap()));
    }
}
