//! The PROXY protocol header, versions 1 and 2, as load balancers send it before a client's
//! bytes (HAProxy's `send-proxy` and `send-proxy-v2`, nginx's `proxy_protocol on`, cloud
//! balancers). Sans-IO: nothing here touches a socket.
//!
//! Two ways in, one set of rules:
//! - [`scan`] is a pure function of the bytes received so far. A caller that peeks at the
//!   socket (`MSG_PEEK`, up to [`MAX_HEADER`] bytes) learns whether a whole header is there and
//!   how long it is, then consumes exactly that many bytes: the client's bytes stay in the
//!   kernel, unread.
//! - [`Parser`] takes the bytes in whatever chunks reads return and says, for the chunk that
//!   completes the header, how many of its bytes were the header's: the rest of that chunk is
//!   the client's. It keeps only the first [`V1_MAX`] bytes (every byte the rules look at) and
//!   counts the others, so its state is small and fixed whatever the header's length. Once a
//!   version 2 header's fixed start has come, [`Parser::wanted`] says exactly how many bytes
//!   are still the header's: a caller can read those, in pieces, and not a byte more, so a
//!   header larger than the socket's receive buffer (which a peek never sees whole) is read
//!   all the same.
//!
//! The rules (the PROXY protocol specification, versions 1 and 2):
//! - Version 1 is one line: `PROXY TCP4 SRC DST SPORT DPORT\r\n` (or `TCP6`), single spaces,
//!   addresses of the named family (IPv4 dotted quads without leading zeros, IPv6 text),
//!   decimal ports 0 to 65535 without leading zeros, at most [`V1_MAX`] bytes with the CRLF.
//!   `PROXY UNKNOWN`, then either the CRLF or a space and anything up to it, names no client.
//!   A LF not preceded by CR is invalid at once, as is a family other than these three.
//! - Version 2 is binary: the 12-byte signature, version 2 with command LOCAL (0) or PROXY (1),
//!   a family and protocol byte, a 16-bit length, then that many bytes: the addresses and
//!   type-length-value extensions, which are skipped. LOCAL (a balancer's health check) names
//!   no client and its family byte is ignored. PROXY with TCP over IPv4 (0x11) or IPv6 (0x21)
//!   names one; PROXY with the other families the specification lists (unspecified, UDP, unix
//!   sockets) falls back, as the specification allows, to naming none. Any other version,
//!   command or family byte is invalid, and so is a length shorter than the family's
//!   addresses or one that makes the header longer than [`MAX_HEADER`].
//!
//! Once a prefix of the bytes is invalid, every longer one is; once a prefix holds a whole
//! header, every longer one holds the same header with the same length. That is what lets
//! the two ways agree whatever the chunking.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest version 1 line, CRLF included: `PROXY UNKNOWN` with two full IPv6 addresses
/// and ports.
pub const V1_MAX: usize = 107;

/// The longest header accepted, in bytes. The specification designs headers to fit in 536
/// bytes (the smallest segment every host must take), though version 2's extensions may in
/// principle run to 65,535 bytes; 4096 admits every extension a balancer sends (ALPN, the
/// server name, a unique ID, TLS details, a cloud endpoint ID) many times over, while bounding
/// what a caller that peeks must hold.
pub const MAX_HEADER: usize = 4096;

/// The version 2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The fixed part of a version 2 header: signature, version and command, family, length.
const V2_FIXED: usize = 16;

/// The version 2 address blocks: two IPv4 addresses and ports, two IPv6 ones, two unix paths.
const V2_INET: usize = 12;
const V2_INET6: usize = 36;
const V2_UNIX: usize = 216;

// The rules look at no byte past the first V1_MAX: all of a version 1 line, and the fixed
// part and IP addresses of a version 2 header.
const _: () = assert!(V2_FIXED + V2_INET6 <= V1_MAX);

/// What a complete header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    /// The balancer relays the client `source`, which connected to `destination`.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// The header names no client: a version 1 `UNKNOWN`, a version 2 `LOCAL` (a health
    /// check), or a version 2 `PROXY` for a family other than TCP over IP. The connection's
    /// own addresses stand.
    Local,
}

/// What the bytes received so far amount to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// A valid beginning: more bytes are needed.
    NeedMore,
    /// A whole header, the first `len` bytes; what follows them is the client's.
    Header { header: Header, len: usize },
    /// Not a PROXY protocol header, or one that breaks its rules (the reason says which).
    Invalid(&'static str),
}

/// Reads `bytes`, the first bytes of a connection, as a PROXY protocol header.
pub fn scan(bytes: &[u8]) -> Scan {
    scan_head(&bytes[..bytes.len().min(V1_MAX)], bytes.len())
}

/// What a [`Parser`] made of one more chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A valid beginning: more bytes are needed.
    NeedMore,
    /// The header is complete: the first `used` bytes of this chunk were its last ones, and
    /// the rest of the chunk is the client's. (Fed again after that, a parser answers the same
    /// header with `used` 0.)
    Done { header: Header, used: usize },
    /// Not a PROXY protocol header, or one that breaks its rules.
    Invalid(&'static str),
}

/// A header arriving in chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parser {
    /// The first bytes received, up to [`V1_MAX`]: all the rules look at.
    head: [u8; V1_MAX],
    head_len: u8,
    /// Every byte received, kept or not.
    seen: usize,
}

impl Default for Parser {
    fn default() -> Parser {
        Parser {
            head: [0; V1_MAX],
            head_len: 0,
            seen: 0,
        }
    }
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Takes the next chunk of the connection's bytes.
    pub fn feed(&mut self, bytes: &[u8]) -> Progress {
        let kept = usize::from(self.head_len);
        let take = bytes.len().min(V1_MAX - kept);
        self.head[kept..kept + take].copy_from_slice(&bytes[..take]);
        // `take` is at most V1_MAX - kept, so the sum fits V1_MAX, which fits a u8.
        self.head_len = (kept + take) as u8;
        let before = self.seen;
        self.seen = self.seen.saturating_add(bytes.len());
        match scan_head(&self.head[..usize::from(self.head_len)], self.seen) {
            Scan::NeedMore => Progress::NeedMore,
            Scan::Invalid(why) => Progress::Invalid(why),
            // The header was incomplete before this chunk (or the parser would have said
            // Done then), so it ends within it; fed after Done, `used` is 0.
            Scan::Header { header, len } => Progress::Done {
                header,
                used: len.saturating_sub(before),
            },
        }
    }
}

impl Parser {
    /// How many more bytes the header takes, when its bytes so far say: a version 2 header
    /// declares its length in its 16-byte fixed start, so from then on a reader may take
    /// exactly the rest, in pieces of any size, and nothing of what follows. `None` before
    /// then, for a version 1 line (its end shows only when it comes), and once the header is
    /// complete or invalid.
    pub fn wanted(&self) -> Option<usize> {
        let head = &self.head[..usize::from(self.head_len)];
        if head.first() != Some(&V2_SIGNATURE[0]) || scan_head(head, self.seen) != Scan::NeedMore {
            return None;
        }
        // A valid beginning of a version 2 header: its length field, once here, is valid too.
        let length = head.get(14..V2_FIXED)?;
        let len = V2_FIXED + usize::from(u16::from_be_bytes([length[0], length[1]]));
        Some(len - self.seen)
    }
}

/// The rules, over `head` (the first bytes, at most [`V1_MAX`]) of `available` bytes in all.
fn scan_head(head: &[u8], available: usize) -> Scan {
    let Some(&first) = head.first() else {
        return Scan::NeedMore;
    };
    if first == V2_SIGNATURE[0] {
        v2(head, available)
    } else {
        v1(head)
    }
}

/// Whether `bytes` so far agree with `expected` (a prefix of it, or it followed by more).
fn agrees(bytes: &[u8], expected: &[u8]) -> bool {
    let n = bytes.len().min(expected.len());
    bytes[..n] == expected[..n]
}

fn v1(head: &[u8]) -> Scan {
    if !agrees(head, b"PROXY ") {
        return Scan::Invalid("not a PROXY protocol header");
    }
    if head.len() > 6
        && ![&b"TCP4 "[..], b"TCP6 ", b"UNKNOWN"]
            .iter()
            .any(|family| agrees(&head[6..], family))
    {
        return Scan::Invalid("v1: unknown protocol family");
    }
    let Some(lf) = head.iter().position(|&b| b == b'\n') else {
        return if head.len() >= V1_MAX {
            Scan::Invalid("v1: no CRLF within 107 bytes")
        } else {
            Scan::NeedMore
        };
    };
    let Some(line) = head[..lf].strip_suffix(b"\r") else {
        return Scan::Invalid("v1: line ends in LF without CR");
    };
    match v1_line(&line[6..]) {
        Ok(header) => Scan::Header {
            header,
            len: lf + 1,
        },
        Err(why) => Scan::Invalid(why),
    }
}

/// The line after `PROXY `, without its CRLF.
fn v1_line(rest: &[u8]) -> Result<Header, &'static str> {
    if let Some(after) = rest.strip_prefix(b"UNKNOWN") {
        // What follows `UNKNOWN ` is ignored.
        return match after.first() {
            None | Some(b' ') => Ok(Header::Local),
            Some(_) => Err("v1: unknown protocol family"),
        };
    }
    let text = std::str::from_utf8(rest).map_err(|_| "v1: not ASCII")?;
    let mut fields = text.split(' ');
    let mut field = || match fields.next() {
        None => Err("v1: too few fields"),
        Some("") => Err("v1: fields not separated by single spaces"),
        Some(field) => Ok(field),
    };
    let (family, src, dst, sport, dport) = (field()?, field()?, field()?, field()?, field()?);
    match fields.next() {
        None => {}
        Some("") => return Err("v1: fields not separated by single spaces"),
        Some(_) => return Err("v1: too many fields"),
    }
    let sport = port(sport).ok_or("v1: bad source port")?;
    let dport = port(dport).ok_or("v1: bad destination port")?;
    let (source, destination): (IpAddr, IpAddr) = match family {
        "TCP4" => {
            let ip = |s: &str| s.parse::<Ipv4Addr>().map_err(|_| "v1: bad TCP4 address");
            (ip(src)?.into(), ip(dst)?.into())
        }
        "TCP6" => {
            let ip = |s: &str| s.parse::<Ipv6Addr>().map_err(|_| "v1: bad TCP6 address");
            (ip(src)?.into(), ip(dst)?.into())
        }
        _ => return Err("v1: unknown protocol family"),
    };
    Ok(Header::Proxied {
        source: SocketAddr::new(source, sport),
        destination: SocketAddr::new(destination, dport),
    })
}

/// A decimal port, 0 to 65535, digits only and no leading zero.
fn port(text: &str) -> Option<u16> {
    let digits = text.as_bytes();
    let well_formed = !digits.is_empty()
        && digits.len() <= 5
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || digits.len() == 1);
    if well_formed {
        text.parse().ok()
    } else {
        None
    }
}

fn v2(head: &[u8], available: usize) -> Scan {
    if !agrees(head, &V2_SIGNATURE) {
        return Scan::Invalid("not a PROXY protocol header");
    }
    let Some(&version_command) = head.get(12) else {
        return Scan::NeedMore;
    };
    if version_command >> 4 != 2 {
        return Scan::Invalid("v2: version is not 2");
    }
    let proxied = match version_command & 0x0f {
        0 => false,
        1 => true,
        _ => return Scan::Invalid("v2: unknown command"),
    };
    let Some(&family) = head.get(13) else {
        return Scan::NeedMore;
    };
    // The address block of each family and protocol the specification lists (LOCAL ignores
    // the family, and has no address to read).
    let addresses = match (proxied, family) {
        (false, _) | (true, 0x00) => 0,
        (true, 0x11 | 0x12) => V2_INET,
        (true, 0x21 | 0x22) => V2_INET6,
        (true, 0x31 | 0x32) => V2_UNIX,
        (true, _) => return Scan::Invalid("v2: unknown address family or protocol"),
    };
    let Some(length) = head.get(14..V2_FIXED) else {
        return Scan::NeedMore;
    };
    let len = V2_FIXED + usize::from(u16::from_be_bytes([length[0], length[1]]));
    if len > MAX_HEADER {
        return Scan::Invalid("v2: header longer than 4096 bytes");
    }
    if len < V2_FIXED + addresses {
        return Scan::Invalid("v2: length shorter than the addresses");
    }
    if available < len {
        return Scan::NeedMore;
    }
    let block = &head[V2_FIXED..];
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    let header = match (proxied, family) {
        (true, 0x11) => Header::Proxied {
            source: SocketAddr::new(Ipv4Addr::from(array(&block[0..])).into(), port(8)),
            destination: SocketAddr::new(Ipv4Addr::from(array(&block[4..])).into(), port(10)),
        },
        (true, 0x21) => Header::Proxied {
            source: SocketAddr::new(Ipv6Addr::from(array(&block[0..])).into(), port(32)),
            destination: SocketAddr::new(Ipv6Addr::from(array(&block[16..])).into(), port(34)),
        },
        _ => Header::Local,
    };
    Scan::Header { header, len }
}

/// The first `N` bytes of `bytes` (which has at least that many).
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    fn proxied(source: &str, destination: &str) -> Header {
        Header::Proxied {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        }
    }

    fn whole(bytes: &[u8], header: Header) {
        assert_eq!(
            scan(bytes),
            Scan::Header {
                header,
                len: bytes.len()
            },
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }

    fn invalid(bytes: &[u8]) -> &'static str {
        match scan(bytes) {
            Scan::Invalid(why) => why,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }

    /// Feeds `bytes` cut at `cuts`; returns every answer.
    fn feed_cut(bytes: &[u8], cuts: &[usize]) -> Vec<(usize, Progress)> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.push(0);
        cuts.push(bytes.len());
        cuts.sort_unstable();
        cuts.dedup();
        let mut p = Parser::new();
        cuts.windows(2)
            .map(|w| (w[0], p.feed(&bytes[w[0]..w[1]])))
            .collect()
    }

    #[test]
    fn v1_tcp4_tcp6_and_unknown() {
        whole(
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
            proxied("192.168.0.1:56324", "192.168.0.11:443"),
        );
        whole(
            b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
            proxied("0.0.0.0:0", "255.255.255.255:65535"),
        );
        whole(
            b"PROXY TCP6 2001:db8::1 ::1 40000 51423\r\n",
            proxied("[2001:db8::1]:40000", "[::1]:51423"),
        );
        whole(
            b"PROXY TCP6 ::ffff:192.0.2.7 ::FFFF:192.0.2.8 1 2\r\n",
            proxied("[::ffff:192.0.2.7]:1", "[::ffff:192.0.2.8]:2"),
        );
        whole(b"PROXY UNKNOWN\r\n", Header::Local);
        whole(b"PROXY UNKNOWN ignored \xff\r text\r\n", Header::Local);
    }

    #[test]
    fn v1_at_its_longest() {
        let full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let tcp6 = format!("PROXY TCP6 {full} {full} 65535 65535\r\n");
        assert_eq!(tcp6.len(), 104);
        let ip = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        whole(
            tcp6.as_bytes(),
            Header::Proxied {
                source: SocketAddr::new(ip(full).into(), 65535),
                destination: SocketAddr::new(ip(full).into(), 65535),
            },
        );
        let unknown = format!("PROXY UNKNOWN {full} {full} 65535 65535\r\n");
        assert_eq!(unknown.len(), V1_MAX);
        whole(unknown.as_bytes(), Header::Local);
        // One byte more and the CRLF is past the limit: invalid as soon as the limit is
        // reached, without waiting for the rest.
        let over = format!("PROXY UNKNOWN {full} {full} 65535 655350\r\n");
        assert_eq!(invalid(over.as_bytes()), "v1: no CRLF within 107 bytes");
        assert_eq!(
            invalid(&over.as_bytes()[..V1_MAX]),
            "v1: no CRLF within 107 bytes"
        );
        assert_eq!(scan(&over.as_bytes()[..V1_MAX - 1]), Scan::NeedMore);
    }

    #[test]
    fn v1_breaking_the_rules() {
        let spaces = "v1: fields not separated by single spaces";
        for (line, why) in [
            ("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", spaces),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", spaces),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n", spaces),
            (
                "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
                "v1: too many fields",
            ),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "v1: too few fields"),
            ("PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", "v1: too few fields"),
            (
                "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
                "v1: bad TCP4 address",
            ),
            ("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "v1: bad TCP4 address"),
            (
                "PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n",
                "v1: bad TCP4 address",
            ),
            ("PROXY TCP4 ::1 ::1 1 2\r\n", "v1: bad TCP4 address"),
            ("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "v1: bad TCP6 address"),
            ("PROXY TCP6 fe80::1%2 ::1 1 2\r\n", "v1: bad TCP6 address"),
            ("PROXY TCP6 [::1] ::1 1 2\r\n", "v1: bad TCP6 address"),
            (
                "PROXY TCP4 1.2.3.4 5.6.7.8 0443 2\r\n",
                "v1: bad source port",
            ),
            (
                "PROXY TCP4 1.2.3.4 5.6.7.8 +443 2\r\n",
                "v1: bad source port",
            ),
            (
                "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
                "v1: bad destination port",
            ),
            (
                "PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n",
                "v1: bad destination port",
            ),
            (
                "PROXY TCP4 1.2.3.4 5.6.7.8 1 0x2\r\n",
                "v1: bad destination port",
            ),
            (
                "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
                "v1: line ends in LF without CR",
            ),
            ("PROXY UNKNOWN\n", "v1: line ends in LF without CR"),
            ("PROXY UNKNOWNS\r\n", "v1: unknown protocol family"),
            (
                "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
                "v1: unknown protocol family",
            ),
            (
                "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
                "v1: unknown protocol family",
            ),
            (
                "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
                "v1: unknown protocol family",
            ),
            (
                "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
                "not a PROXY protocol header",
            ),
            ("PROXY\r\n", "not a PROXY protocol header"),
        ] {
            assert_eq!(invalid(line.as_bytes()), why, "{line:?}");
        }
        assert_eq!(
            invalid(b"PROXY TCP4 1.2.3.4 5.6.7.\xff 1 2\r\n"),
            "v1: not ASCII"
        );
    }

    #[test]
    fn garbage_is_invalid_at_its_first_wrong_byte() {
        let not = "not a PROXY protocol header";
        let family = "v1: unknown protocol family";
        for (bytes, why) in [
            (&b"G"[..], not),
            (b"GET / HTTP/1.0\r\n\r\n", not),
            (b"PROXI", not),
            (b"\r\n\r\n\0\r\nQUIX", not),
            (b"\r\n\r\n\x01", not),
            (b"\x16\x03\x01", not),
            (b"PROXY X", family),
            (b"PROXY TCP4_", family),
            (b"PROXY TC\n", family),
            (b"PROXY TCP4 1\n", "v1: line ends in LF without CR"),
        ] {
            assert_eq!(invalid(bytes), why, "{bytes:?}");
        }
    }

    #[test]
    fn truncated_headers_want_more() {
        for bytes in [
            &b""[..],
            b"P",
            b"PROXY ",
            b"PROXY UNKNOWN",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443",
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r",
            b"\r\n\r\n\0\r\nQUIT\n",
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00",
        ] {
            assert_eq!(scan(bytes), Scan::NeedMore, "{bytes:?}");
        }
        let h = v2(
            1,
            0x11,
            &[127, 0, 0, 2, 127, 0, 0, 1, 0x9c, 0x40, 0xc8, 0xdf],
        );
        assert_eq!(scan(&h[..h.len() - 1]), Scan::NeedMore);
    }

    #[test]
    fn v2_proxy_tcp4_and_tcp6() {
        let h = v2(
            1,
            0x11,
            &[127, 0, 0, 2, 127, 0, 0, 1, 0x9c, 0x40, 0xc8, 0xdf],
        );
        whole(&h, proxied("127.0.0.2:40000", "127.0.0.1:51423"));
        let mut block = [0u8; 36];
        block[15] = 1;
        block[16..32].copy_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        block[32..36].copy_from_slice(&[0, 80, 0xff, 0xff]);
        whole(
            &v2(1, 0x21, &block),
            proxied("[::1]:80", "[2001:db8::7]:65535"),
        );
    }

    #[test]
    fn v2_local_and_families_without_a_client() {
        // A health check: LOCAL, no addresses, or addresses that are ignored, whatever the
        // family byte says.
        whole(&v2(0, 0x00, &[]), Header::Local);
        whole(&v2(0, 0x11, &[1; 12]), Header::Local);
        whole(&v2(0, 0xff, &[1; 3]), Header::Local);
        // PROXY for a family the daemon does not speak falls back to the connection's own.
        whole(&v2(1, 0x00, &[]), Header::Local);
        whole(&v2(1, 0x12, &[1; 12]), Header::Local);
        whole(&v2(1, 0x22, &[1; 36]), Header::Local);
        whole(&v2(1, 0x31, &[b'/'; 216]), Header::Local);
        whole(&v2(1, 0x32, &[b'/'; 216]), Header::Local);
    }

    #[test]
    fn v2_extensions_are_skipped() {
        let mut body = vec![10, 0, 0, 9, 10, 0, 0, 1, 0x30, 0x39, 0x00, 0x07];
        body.extend_from_slice(b"\x01\x00\x02h2"); // ALPN
        body.extend_from_slice(b"\x02\x00\x0bexample.com"); // authority
        body.extend_from_slice(b"\x04\x00\x03\0\0\0"); // no-op
        body.extend_from_slice(b"\xea\x00\x05vpce1"); // a cloud balancer's own
        let h = v2(1, 0x11, &body);
        whole(&h, proxied("10.0.0.9:12345", "10.0.0.1:7"));
        // What follows is the client's.
        let mut stream = h.clone();
        stream.extend_from_slice(b"hello\n");
        assert_eq!(
            scan(&stream),
            Scan::Header {
                header: proxied("10.0.0.9:12345", "10.0.0.1:7"),
                len: h.len()
            }
        );
    }

    #[test]
    fn v2_breaking_the_rules() {
        let mut version1 = v2(1, 0x11, &[0; 12]);
        version1[12] = 0x11;
        assert_eq!(invalid(&version1[..13]), "v2: version is not 2");
        let mut version3 = v2(1, 0x11, &[0; 12]);
        version3[12] = 0x31;
        assert_eq!(invalid(&version3), "v2: version is not 2");
        assert_eq!(invalid(&v2(2, 0x11, &[0; 12])[..13]), "v2: unknown command");
        assert_eq!(invalid(&v2(0xf, 0x00, &[])), "v2: unknown command");
        for family in [0x01, 0x10, 0x13, 0x20, 0x23, 0x41, 0xff] {
            assert_eq!(
                invalid(&v2(1, family, &[0; 36])[..14]),
                "v2: unknown address family or protocol",
                "{family:#x}"
            );
        }
        assert_eq!(
            invalid(&v2(1, 0x11, &[0; 11])[..16]),
            "v2: length shorter than the addresses"
        );
        assert_eq!(
            invalid(&v2(1, 0x21, &[0; 35])),
            "v2: length shorter than the addresses"
        );
        assert_eq!(
            invalid(&v2(1, 0x31, &[0; 215])),
            "v2: length shorter than the addresses"
        );
    }

    #[test]
    fn v2_length_is_capped() {
        let longest = v2(0, 0x00, &vec![0; MAX_HEADER - 16]);
        whole(&longest, Header::Local);
        assert_eq!(scan(&longest[..16]), Scan::NeedMore);
        let over = v2(0, 0x00, &vec![0; MAX_HEADER - 15]);
        // Known from the length field alone.
        assert_eq!(invalid(&over[..16]), "v2: header longer than 4096 bytes");
        let mut most = V2_SIGNATURE.to_vec();
        most.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(invalid(&most), "v2: header longer than 4096 bytes");
    }

    #[test]
    fn parser_says_how_much_of_the_chunk_was_the_header() {
        let mut p = Parser::new();
        assert_eq!(p.feed(b"PROXY TCP4 1.2.3.4 "), Progress::NeedMore);
        assert_eq!(p.feed(b"5.6.7.8 1 2\r"), Progress::NeedMore);
        let header = proxied("1.2.3.4:1", "5.6.7.8:2");
        assert_eq!(p.feed(b"\nhello\n"), Progress::Done { header, used: 1 });
        assert_eq!(p.feed(b"more"), Progress::Done { header, used: 0 });

        let mut p = Parser::new();
        assert_eq!(
            p.feed(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
            Progress::Invalid("v1: line ends in LF without CR")
        );
        assert_eq!(
            p.feed(b"\r\n"),
            Progress::Invalid("v1: line ends in LF without CR")
        );

        // Extensions past the first bytes are counted, not kept.
        let h = v2(0, 0x00, &vec![7; 2000]);
        let mut p = Parser::new();
        assert_eq!(p.feed(&h[..1000]), Progress::NeedMore);
        assert_eq!(p.feed(&h[1000..1999]), Progress::NeedMore);
        let mut rest = h[1999..].to_vec();
        rest.extend_from_slice(b"client");
        assert_eq!(
            p.feed(&rest),
            Progress::Done {
                header: Header::Local,
                used: h.len() - 1999
            }
        );
    }

    #[test]
    fn the_parser_wants_what_a_v2_header_declares_and_no_more() {
        let h = v2(1, 0x11, &[7; 2000]);
        let mut p = Parser::new();
        assert_eq!(p.wanted(), None);
        assert_eq!(p.feed(&h[..15]), Progress::NeedMore);
        // The length is not here yet.
        assert_eq!(p.wanted(), None);
        assert_eq!(p.feed(&h[15..16]), Progress::NeedMore);
        assert_eq!(p.wanted(), Some(2000));
        assert_eq!(p.feed(&h[16..1500]), Progress::NeedMore);
        assert_eq!(p.wanted(), Some(h.len() - 1500));
        assert!(matches!(
            p.feed(&h[1500..]),
            Progress::Done { used: 516, .. }
        ));
        assert_eq!(p.wanted(), None);
        // A version 1 line says its end only when it comes; a bad header wants nothing.
        let mut p = Parser::new();
        assert_eq!(p.feed(b"PROXY TCP4 1.2.3.4"), Progress::NeedMore);
        assert_eq!(p.wanted(), None);
        let mut p = Parser::new();
        assert!(matches!(
            p.feed(&v2(0, 0x00, &vec![0; MAX_HEADER - 15])[..16]),
            Progress::Invalid(_)
        ));
        assert_eq!(p.wanted(), None);
    }

    /// Valid headers, each with what it says.
    /// A header naming `source` and `destination` (of one family): a version 1 line, or a
    /// version 2 header with the extensions `ext`.
    fn encode(source: SocketAddr, destination: SocketAddr, binary: bool, ext: &[u8]) -> Vec<u8> {
        let v4 = source.is_ipv4();
        if !binary {
            let family = if v4 { "TCP4" } else { "TCP6" };
            let (s, d) = (source.ip(), destination.ip());
            let (sp, dp) = (source.port(), destination.port());
            return format!("PROXY {family} {s} {d} {sp} {dp}\r\n").into_bytes();
        }
        let octets = |a: SocketAddr| match a.ip() {
            IpAddr::V4(ip) => ip.octets().to_vec(),
            IpAddr::V6(ip) => ip.octets().to_vec(),
        };
        let ports = [
            source.port().to_be_bytes(),
            destination.port().to_be_bytes(),
        ]
        .concat();
        let body = [octets(source), octets(destination), ports, ext.to_vec()].concat();
        v2(1, if v4 { 0x11 } else { 0x21 }, &body)
    }

    /// Valid headers, each with what it says.
    fn valid_header() -> impl Strategy<Value = (Vec<u8>, Header)> {
        let v6 = prop_oneof![
            any::<[u8; 16]>().prop_map(Ipv6Addr::from),
            any::<[u8; 4]>().prop_map(|a| Ipv4Addr::from(a).to_ipv6_mapped()),
            (any::<u16>(), any::<u16>()).prop_map(|(a, b)| Ipv6Addr::new(a, 0, 0, 0, 0, 0, 0, b)),
        ];
        let ips = prop_oneof![
            (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, d)| (s.into(), d.into())),
            (v6.clone(), v6).prop_map(|(s, d)| (IpAddr::from(s), IpAddr::from(d))),
        ];
        let extensions = || proptest::collection::vec(any::<u8>(), 0..300);
        let proxied = (ips, any::<(u16, u16)>(), any::<bool>(), extensions()).prop_map(
            |((s, d), (sp, dp), binary, ext)| {
                let (source, destination) = (SocketAddr::new(s, sp), SocketAddr::new(d, dp));
                let header = Header::Proxied {
                    source,
                    destination,
                };
                (encode(source, destination, binary, &ext), header)
            },
        );
        let unknown = proptest::option::of(proptest::collection::vec(
            any::<u8>().prop_filter("no LF", |&b| b != b'\n'),
            0..=V1_MAX - "PROXY UNKNOWN \r\n".len(),
        ))
        .prop_map(|tail| {
            let mut line = b"PROXY UNKNOWN".to_vec();
            if let Some(tail) = tail {
                line.push(b' ');
                line.extend_from_slice(&tail);
            }
            line.extend_from_slice(b"\r\n");
            (line, Header::Local)
        });
        let v2_local = (any::<u8>(), extensions())
            .prop_map(|(family, body)| (v2(0, family, &body), Header::Local));
        let v2_fallback = (
            prop_oneof![
                Just((0x00, 0)),
                Just((0x12, 12)),
                Just((0x22, 36)),
                Just((0x31, 216)),
                Just((0x32, 216))
            ],
            extensions(),
        )
            .prop_map(|((family, addresses), ext)| {
                let body = [vec![9; addresses], ext].concat();
                (v2(1, family, &body), Header::Local)
            });
        prop_oneof![proxied, unknown, v2_local, v2_fallback]
    }

    /// Bytes that often get past the first checks.
    fn header_like() -> impl Strategy<Value = Vec<u8>> {
        let start = prop_oneof![
            Just(Vec::new()),
            Just(b"PROXY ".to_vec()),
            Just(b"PROXY TCP4 ".to_vec()),
            Just(b"PROXY TCP6 ".to_vec()),
            Just(b"PROXY UNKNOWN".to_vec()),
            Just(V2_SIGNATURE.to_vec()),
            Just([&V2_SIGNATURE[..], &[0x21, 0x11]].concat()),
            Just([&V2_SIGNATURE[..], &[0x20, 0x00]].concat()),
        ];
        let byte = prop_oneof![
            any::<u8>(),
            Just(b' '),
            Just(b'\r'),
            Just(b'\n'),
            Just(b'.'),
            Just(b':'),
            (b'0'..=b'9'),
            Just(0u8),
        ];
        (start, proptest::collection::vec(byte, 0..200)).prop_map(|(s, t)| [s, t].concat())
    }

    proptest! {
        #[test]
        fn any_chunking_of_a_valid_header_parses_the_same(
            (bytes, header) in valid_header(),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            prop_assert_eq!(scan(&bytes), Scan::Header { header, len: bytes.len() });
            for end in 0..bytes.len() {
                prop_assert_eq!(scan(&bytes[..end]), Scan::NeedMore);
            }
            let answers = feed_cut(&bytes, &cuts);
            let (last, rest) = answers.split_last().unwrap();
            prop_assert!(rest.iter().all(|(_, p)| *p == Progress::NeedMore));
            prop_assert_eq!(last.1, Progress::Done { header, used: bytes.len() - last.0 });
        }

        #[test]
        fn a_valid_header_ends_where_the_client_begins(
            (bytes, header) in valid_header(),
            client in proptest::collection::vec(any::<u8>(), 0..200),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let stream = [&bytes[..], &client].concat();
            prop_assert_eq!(scan(&stream), Scan::Header { header, len: bytes.len() });
            let answers = feed_cut(&stream, &cuts);
            let done = answers.iter().find(|(_, p)| *p != Progress::NeedMore).unwrap();
            prop_assert_eq!(done.1, Progress::Done { header, used: bytes.len() - done.0 });
        }

        #[test]
        fn reading_what_the_parser_wants_ends_at_the_header(
            (bytes, header) in valid_header(),
            client in proptest::collection::vec(any::<u8>(), 0..200),
            pieces in proptest::collection::vec(1usize..700, 1..12),
        ) {
            // A version 2 header: its fixed start first, then at most what the parser wants
            // at each read, each read cut shorter as a socket may.
            prop_assume!(bytes[0] == V2_SIGNATURE[0]);
            let stream = [&bytes[..], &client].concat();
            let mut p = Parser::new();
            let mut last = p.feed(&stream[..V2_FIXED]);
            let mut at = V2_FIXED;
            for piece in pieces.iter().cycle() {
                let Some(wanted) = p.wanted() else { break };
                prop_assert!(wanted > 0);
                let n = wanted.min(*piece);
                last = p.feed(&stream[at..at + n]);
                at += n;
            }
            prop_assert_eq!(at, bytes.len());
            let done = matches!(last, Progress::Done { header: h, .. } if h == header);
            prop_assert!(done, "{:?}", last);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_never_overrun(
            bytes in prop_oneof![header_like(), proptest::collection::vec(any::<u8>(), 0..300)],
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let whole = scan(&bytes);
            if let Scan::Header { len, .. } = whole {
                prop_assert!(len <= bytes.len());
            }
            // The parser in chunks agrees with one scan of all the bytes.
            let answers = feed_cut(&bytes, &cuts);
            let first = answers
                .iter()
                .find(|(_, p)| *p != Progress::NeedMore)
                .copied();
            match (whole, first) {
                (Scan::NeedMore, None) => {}
                (Scan::Invalid(a), Some((_, Progress::Invalid(b)))) => prop_assert_eq!(a, b),
                (Scan::Header { header, len }, Some((at, Progress::Done { header: h, used }))) => {
                    prop_assert_eq!(header, h);
                    prop_assert_eq!(at + used, len);
                }
                (whole, first) => prop_assert!(false, "scan {:?}, parser {:?}", whole, first),
            }
        }
    }
}
