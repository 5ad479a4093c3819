//! Who may connect: the networks of `--allow` and `--deny`, written in CIDR notation.
//!
//! A network is written `192.168.0.0/16`, `2001:db8::/32`, or as a plain address (`10.0.0.1`,
//! `::1`: a network of one). What [`Cidr::parse`] accepts, exactly:
//! - IPv4 in dotted decimal as Rust's `Ipv4Addr` reads it (four decimal parts, no leading
//!   zeros), IPv6 as `Ipv6Addr` reads it (no zone such as `%eth0`), without brackets: brackets
//!   belong to an address with a port, and a network has none;
//! - an optional `/PREFIX`, a whole number from 0 to 32 (IPv4) or 128 (IPv6);
//! - no bits set past the prefix: `10.0.0.1/8` is refused, with the network (`10.0.0.0/8`) and
//!   the single address (`10.0.0.1/32`) as hints. A list that decides who is served must not
//!   guess which of the two was meant;
//! - an IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`, a prefix of at least 96) is the IPv4
//!   network it maps (`10.0.0.0/8`), since sources are judged as IPv4 when they are mapped.
//!   Any other IPv6 network, `::/0` included, covers IPv6 sources only.
//!
//! An [`AccessList`] keeps each list as sorted tables of disjoint address ranges, one per
//! family, so a check is two binary searches at most, without allocating, whatever the length
//! of the lists.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Sub;
use std::str::FromStr;

use crate::config::ranges::Range;

/// A network: an address whose bits past `prefix` are zero, and the prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// The prefix lengths of an IPv4 network.
const PREFIX_V4: Range<u8> = Range {
    min: 0,
    max: 32,
    unit: "",
};

/// The prefix lengths of an IPv6 network.
const PREFIX_V6: Range<u8> = Range {
    min: 0,
    max: 128,
    unit: "",
};

/// The mask of the bits past `prefix` in an address `width` bits wide (32 or 128), as the
/// low bits of a `u128`.
fn host_bits(width: u8, prefix: u8) -> u128 {
    u128::MAX
        .checked_shr(u32::from(128 - width + prefix))
        .unwrap_or(0)
}

/// The bits of an address, and its width.
fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

impl Cidr {
    /// Reads a network as the module documentation describes; the error says what is wrong
    /// (`bad network '10.0.0.0/33': prefix: '33' is out of range (0 to 32)`).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let bad = |why: &str| format!("bad network '{text}': {why}");
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        if let Some(inside) = addr.strip_prefix('[') {
            let inside = inside.strip_suffix(']').unwrap_or(inside);
            let hint = match prefix {
                Some(prefix) => format!("{inside}/{prefix}"),
                None => inside.to_string(),
            };
            return Err(bad(&format!(
                "brackets belong to an address with a port: write {hint}"
            )));
        }
        let ip = if let Ok(v4) = addr.parse::<Ipv4Addr>() {
            IpAddr::V4(v4)
        } else if let Ok(v6) = addr.parse::<Ipv6Addr>() {
            IpAddr::V6(v6)
        } else {
            return Err(bad(&format!("'{addr}' is not an IPv4 or IPv6 address")));
        };
        let range = if ip.is_ipv4() { PREFIX_V4 } else { PREFIX_V6 };
        let prefix = match prefix {
            Some(prefix) => range.parse("prefix", prefix).map_err(|e| bad(&e))?,
            None => range.max,
        };
        let (value, width) = bits(ip);
        if value & host_bits(width, prefix) != 0 {
            let network = Cidr::from_bits(value & !host_bits(width, prefix), width, prefix);
            return Err(bad(&format!(
                "bits are set past the prefix: the network is {network}, the single \
                 address {addr}/{width}"
            )));
        }
        Ok(Cidr::from_bits(value, width, prefix))
    }

    /// The network of these bits, an IPv4-mapped one as IPv4.
    fn from_bits(value: u128, width: u8, prefix: u8) -> Cidr {
        if width == 32 {
            let v4 = Ipv4Addr::from(value as u32);
            return Cidr {
                network: IpAddr::V4(v4),
                prefix,
            };
        }
        let v6 = Ipv6Addr::from(value);
        match v6.to_ipv4_mapped() {
            Some(v4) if prefix >= 96 => Cidr {
                network: IpAddr::V4(v4),
                prefix: prefix - 96,
            },
            _ => Cidr {
                network: IpAddr::V6(v6),
                prefix,
            },
        }
    }

    /// The network's first address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// How many leading bits name the network.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the network; an IPv4-mapped IPv6 address is judged as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (first, width) = bits(self.network);
        let (value, family) = bits(ip.to_canonical());
        family == width && value & !host_bits(width, self.prefix) == first
    }

    /// The first and last address of the network, as numbers.
    fn span(&self) -> (u128, u128) {
        let (first, width) = bits(self.network);
        (first, first | host_bits(width, self.prefix))
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(text: &str) -> Result<Cidr, String> {
        Cidr::parse(text)
    }
}

/// `10.0.0.0/8`, `2001:db8::/32`: always with the prefix.
impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Address ranges of one family, sorted, disjoint and not adjacent (touching ranges are
/// merged), so one binary search finds the only range that can hold an address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Table<T> {
    ranges: Vec<(T, T)>,
}

impl<T: Copy + Ord + Sub<Output = T> + From<u8>> Table<T> {
    /// The table of these inclusive ranges, in any order, overlapping or not.
    fn new(mut ranges: Vec<(T, T)>) -> Table<T> {
        ranges.sort_unstable();
        let mut merged: Vec<(T, T)> = Vec::with_capacity(ranges.len());
        for (first, last) in ranges {
            match merged.last_mut() {
                // `first - 1` only when `first` is past the last range's end, so above 0.
                Some(open) if first <= open.1 || first - T::from(1) == open.1 => {
                    open.1 = open.1.max(last);
                }
                _ => merged.push((first, last)),
            }
        }
        merged.shrink_to_fit();
        Table { ranges: merged }
    }

    fn contains(&self, value: T) -> bool {
        let after = self.ranges.partition_point(|&(first, _)| first <= value);
        after > 0 && self.ranges[after - 1].1 >= value
    }

    fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// A set of networks of both families, for a membership check in O(log n) without
/// allocating. It holds two sorted vectors of ranges (8 bytes a range for IPv4, 32 for
/// IPv6), no more ranges than networks were given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CidrSet {
    v4: Table<u32>,
    v6: Table<u128>,
}

impl CidrSet {
    pub fn new(networks: &[Cidr]) -> CidrSet {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for network in networks {
            let (first, last) = network.span();
            match network.network {
                IpAddr::V4(_) => v4.push((first as u32, last as u32)),
                IpAddr::V6(_) => v6.push((first, last)),
            }
        }
        CidrSet {
            v4: Table::new(v4),
            v6: Table::new(v6),
        }
    }

    /// Whether `ip` is in one of the networks; an IPv4-mapped IPv6 address is judged as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(v4) => self.v4.contains(u32::from(v4)),
            IpAddr::V6(v6) => self.v6.contains(u128::from(v6)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// `--allow` and `--deny`: deny wins over allow, and with no allow entry every source that
/// is not denied is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessList {
    allow: CidrSet,
    deny: CidrSet,
}

impl AccessList {
    /// The list of these networks, or `None` when both are empty: everyone is served, and
    /// the loop has nothing to check.
    pub fn new(allow: &[Cidr], deny: &[Cidr]) -> Option<AccessList> {
        if allow.is_empty() && deny.is_empty() {
            return None;
        }
        Some(AccessList {
            allow: CidrSet::new(allow),
            deny: CidrSet::new(deny),
        })
    }

    /// Whether a source at `ip` may be served: two binary searches at most, no allocation.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !self.deny.contains(ip) && (self.allow.is_empty() || self.allow.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cidr(text: &str) -> Cidr {
        Cidr::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn list(allow: &[&str], deny: &[&str]) -> AccessList {
        let read = |texts: &[&str]| texts.iter().map(|t| cidr(t)).collect::<Vec<_>>();
        AccessList::new(&read(allow), &read(deny)).expect("a list")
    }

    #[test]
    fn networks_and_plain_addresses_are_read() {
        for (text, shown) in [
            ("192.168.0.0/16", "192.168.0.0/16"),
            ("10.0.0.1", "10.0.0.1/32"),
            ("10.0.0.1/32", "10.0.0.1/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("::1", "::1/128"),
            ("::1/128", "::1/128"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("::/0", "::/0"),
            ("fe80::/10", "fe80::/10"),
            ("10.0.0.0/08", "10.0.0.0/8"),
        ] {
            assert_eq!(cidr(text).to_string(), shown, "{text}");
            assert_eq!(text.parse::<Cidr>(), Ok(cidr(text)));
        }
        let c = cidr("172.16.0.0/12");
        assert_eq!((c.network(), c.prefix()), (ip("172.16.0.0"), 12));
    }

    #[test]
    fn ipv4_mapped_networks_are_their_ipv4_networks() {
        assert_eq!(cidr("::ffff:10.0.0.0/104"), cidr("10.0.0.0/8"));
        assert_eq!(cidr("::ffff:10.1.2.3"), cidr("10.1.2.3"));
        assert_eq!(cidr("::ffff:0.0.0.0/96"), cidr("0.0.0.0/0"));
        // Wider than the mapped block: an IPv6 network, IPv6 sources only.
        let wider = cidr("::fffe:0:0/95");
        assert_eq!(wider.to_string(), "::fffe:0:0/95");
        assert!(!wider.contains(ip("10.0.0.1")));
        assert!(!wider.contains(ip("::ffff:10.0.0.1")));
        assert!(wider.contains(ip("::fffe:1:2")));
        // A mapped address with a shorter prefix has bits set past it.
        assert!(Cidr::parse("::ffff:0.0.0.0/95").is_err());
        assert!(!cidr("::/0").contains(ip("10.0.0.1")));
        assert!(!cidr("::/0").contains(ip("::ffff:10.0.0.1")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
    }

    #[test]
    fn malformed_networks_say_what_is_wrong() {
        for (text, why) in [
            ("", "'' is not an IPv4 or IPv6 address"),
            ("/8", "'' is not an IPv4 or IPv6 address"),
            ("10.0.0", "'10.0.0' is not an IPv4 or IPv6 address"),
            ("010.0.0.1", "'010.0.0.1' is not an IPv4 or IPv6 address"),
            ("10.0.0.256", "'10.0.0.256' is not"),
            ("localhost", "'localhost' is not"),
            ("fe80::1%eth0", "'fe80::1%eth0' is not"),
            (" 10.0.0.1", "' 10.0.0.1' is not"),
            ("10.0.0.0/33", "prefix: '33' is out of range (0 to 32)"),
            ("::/129", "prefix: '129' is out of range (0 to 128)"),
            ("10.0.0.0/", "prefix: '' is not a whole number (0 to 32)"),
            (
                "10.0.0.0/8/8",
                "prefix: '8/8' is not a whole number (0 to 32)",
            ),
            ("10.0.0.0/-1", "prefix: '-1' is out of range (0 to 32)"),
            ("10.0.0.0/1.5", "prefix: '1.5' is not a whole number"),
            (
                "10.0.0.0/99999999999999999999",
                "prefix: '99999999999999999999' is out of range",
            ),
            (
                "[::1]",
                "brackets belong to an address with a port: write ::1",
            ),
            (
                "[2001:db8::]/32",
                "brackets belong to an address with a port: write 2001:db8::/32",
            ),
        ] {
            let e = Cidr::parse(text).unwrap_err();
            assert!(e.starts_with(&format!("bad network '{text}': ")), "{e}");
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn bits_past_the_prefix_are_refused_with_both_readings() {
        assert_eq!(
            Cidr::parse("10.0.0.1/8"),
            Err(
                "bad network '10.0.0.1/8': bits are set past the prefix: the network is \
                 10.0.0.0/8, the single address 10.0.0.1/32"
                    .to_string()
            )
        );
        assert_eq!(
            Cidr::parse("2001:db8::1/32"),
            Err(
                "bad network '2001:db8::1/32': bits are set past the prefix: the network is \
                 2001:db8::/32, the single address 2001:db8::1/128"
                    .to_string()
            )
        );
        assert!(Cidr::parse("::ffff:10.0.0.1/104")
            .unwrap_err()
            .contains("the network is 10.0.0.0/8"));
        assert!(Cidr::parse("0.0.0.1/0").is_err());
        assert!(Cidr::parse("255.255.255.255/31").is_err());
        assert!(Cidr::parse("255.255.255.254/31").is_ok());
    }

    #[test]
    fn no_lists_means_nothing_to_check() {
        assert_eq!(AccessList::new(&[], &[]), None);
    }

    #[test]
    fn an_allow_list_serves_only_its_networks() {
        let l = list(&["192.168.0.0/16", "::1"], &[]);
        for served in ["192.168.0.0", "192.168.255.255", "192.168.7.7", "::1"] {
            assert!(l.permits(ip(served)), "{served}");
        }
        for refused in ["192.167.255.255", "192.169.0.0", "10.0.0.1", "::2", "::"] {
            assert!(!l.permits(ip(refused)), "{refused}");
        }
    }

    #[test]
    fn an_allow_list_of_one_family_refuses_the_other() {
        let l = list(&["0.0.0.0/0"], &[]);
        assert!(l.permits(ip("203.0.113.9")));
        assert!(!l.permits(ip("2001:db8::1")));
        let l = list(&["::/0"], &[]);
        assert!(!l.permits(ip("203.0.113.9")));
        assert!(l.permits(ip("2001:db8::1")));
    }

    #[test]
    fn deny_wins_over_an_overlapping_allow() {
        let l = list(
            &["10.0.0.0/8", "10.1.0.0/16", "2001:db8::/32"],
            &["10.1.2.0/24", "10.1.2.128/25", "2001:db8:1::/48"],
        );
        for (addr, served) in [
            ("10.0.0.0", true),
            ("10.1.1.255", true),
            ("10.1.2.0", false),
            ("10.1.2.200", false),
            ("10.1.2.255", false),
            ("10.1.3.0", true),
            ("10.255.255.255", true),
            ("11.0.0.0", false),
            ("2001:db8::1", true),
            ("2001:db8:1::1", false),
            ("2001:db8:1:ffff:ffff:ffff:ffff:ffff", false),
            ("2001:db8:2::", true),
        ] {
            assert_eq!(l.permits(ip(addr)), served, "{addr}");
        }
    }

    #[test]
    fn a_deny_list_alone_serves_everyone_else() {
        let l = list(&[], &["127.0.0.2", "::1"]);
        assert!(!l.permits(ip("127.0.0.2")));
        assert!(l.permits(ip("127.0.0.1")));
        assert!(l.permits(ip("127.0.0.3")));
        assert!(!l.permits(ip("::1")));
        assert!(l.permits(ip("::2")));
    }

    #[test]
    fn mapped_sources_are_judged_as_ipv4() {
        let l = list(&["127.0.0.0/8"], &["127.0.0.2"]);
        assert!(l.permits(ip("::ffff:127.0.0.1")));
        assert!(!l.permits(ip("::ffff:127.0.0.2")));
        assert!(!l.permits(ip("::ffff:10.0.0.1")));
        // An IPv6 list says nothing of mapped sources.
        let l = list(&["::/0"], &[]);
        assert!(!l.permits(ip("::ffff:127.0.0.1")));
        let l = list(&["::ffff:127.0.0.0/104"], &[]);
        assert!(l.permits(ip("127.0.0.1")));
        assert!(l.permits(ip("::ffff:127.9.9.9")));
    }

    #[test]
    fn the_ends_of_the_address_space_are_covered() {
        let l = list(
            &["0.0.0.0/32", "255.255.255.255", "::/128", "ffff::/16"],
            &[],
        );
        for served in [
            "0.0.0.0",
            "255.255.255.255",
            "::",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            assert!(l.permits(ip(served)), "{served}");
        }
        for refused in ["0.0.0.1", "255.255.255.254", "::1", "fffe::"] {
            assert!(!l.permits(ip(refused)), "{refused}");
        }
        let everyone = list(&["0.0.0.0/0", "::/0"], &[]);
        assert!(everyone.permits(ip("0.0.0.0")) && everyone.permits(ip("::")));
    }

    #[test]
    fn overlapping_and_touching_ranges_are_merged() {
        let set = CidrSet::new(&[
            cidr("10.0.0.0/25"),
            cidr("10.0.0.128/25"),
            cidr("10.0.0.0/24"),
            cidr("10.0.0.7"),
            cidr("10.0.2.0/24"),
            cidr("255.255.255.255"),
        ]);
        assert_eq!(
            set.v4.ranges,
            [
                (0x0a00_0000, 0x0a00_00ff),
                (0x0a00_0200, 0x0a00_02ff),
                (u32::MAX, u32::MAX)
            ]
        );
        assert!(!set.contains(ip("10.0.1.0")));
        assert!(set.contains(ip("10.0.2.0")));
    }

    /// A network in a small corner of each family, so that random lists overlap often; as
    /// text, so the parser is exercised too.
    fn network() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u32..=0xffff, 16u8..=32).prop_map(|(low, prefix)| {
                let host = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
                format!("{}/{prefix}", Ipv4Addr::from((0x0a00_0000 | low) & !host))
            }),
            (0u32..=0xffff, 112u8..=128).prop_map(|(low, prefix)| {
                let host = u128::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
                let net = (0x2001_0db8_u128 << 96 | u128::from(low)) & !host;
                format!("{}/{prefix}", Ipv6Addr::from(net))
            }),
            (0u32..=0xffff, 112u8..=128).prop_map(|(low, prefix)| {
                let host = u128::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
                let mapped = u128::from(Ipv4Addr::from(0x0a00_0000 | low).to_ipv6_mapped());
                format!("{}/{prefix}", Ipv6Addr::from(mapped & !host))
            }),
        ]
    }

    /// A source in the same corners, plain or IPv4-mapped.
    fn source() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            (0u32..=0xffff).prop_map(|low| IpAddr::from(Ipv4Addr::from(0x0a00_0000 | low))),
            (0u32..=0xffff)
                .prop_map(|low| IpAddr::from(Ipv4Addr::from(0x0a00_0000 | low).to_ipv6_mapped())),
            (0u32..=0xffff).prop_map(|low| IpAddr::from(Ipv6Addr::from(
                0x2001_0db8_u128 << 96 | u128::from(low)
            ))),
        ]
    }

    proptest! {
        #[test]
        fn permits_agrees_with_a_scan_of_the_lists(
            allow in prop::collection::vec(network(), 0..6),
            deny in prop::collection::vec(network(), 0..6),
            sources in prop::collection::vec(source(), 1..40),
        ) {
            let read = |texts: &[String]| texts.iter().map(|t| cidr(t)).collect::<Vec<_>>();
            let (allow, deny) = (read(&allow), read(&deny));
            let checked = AccessList::new(&allow, &deny);
            for src in sources {
                let scan = !deny.iter().any(|n| n.contains(src))
                    && (allow.is_empty() || allow.iter().any(|n| n.contains(src)));
                let fast = checked.as_ref().is_none_or(|l| l.permits(src));
                prop_assert_eq!(fast, scan, "{} with allow {:?} deny {:?}", src, allow, deny);
            }
        }

        #[test]
        fn the_parser_never_panics_and_what_it_reads_it_shows_back(text in ".{0,48}") {
            if let Ok(c) = Cidr::parse(&text) {
                prop_assert_eq!(Cidr::parse(&c.to_string()), Ok(c));
            }
        }

        #[test]
        fn what_the_parser_shows_it_reads_back(a in any::<u32>(), b in any::<u128>(), p in 0u8..=128) {
            let v4 = Cidr::from_bits(u128::from(a) & !host_bits(32, p.min(32)), 32, p.min(32));
            let v6 = Cidr::from_bits(b & !host_bits(128, p), 128, p);
            prop_assert_eq!(Cidr::parse(&v4.to_string()), Ok(v4));
            prop_assert_eq!(Cidr::parse(&v6.to_string()), Ok(v6));
        }
    }
}
