//! `SERVICE@[HOST]:PORT` (`Instance::parse`): never panics, and what it accepts it reads
//! back the same from the instance written out again.
//!
//! Input: byte 0 picks the transport, the rest is the text. A host written as a name would
//! be looked up in the DNS, which is not the parser's work and would make every run wait on
//! the network: such inputs are left out (a host of name characters, letters, digits, `.`,
//! `-` and `_`, that is not an IPv4 address; `1.2.3` is a name too). Hosts with any other
//! character still reach the parser, which refuses them without a lookup.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use oneloop::config::Instance;
use oneloop::proto::Transport;

/// Whether `spec` names a host the parser could go and resolve.
fn names_a_host(spec: &str) -> bool {
    let Some((_, addr)) = spec.split_once('@') else {
        return false;
    };
    if addr.starts_with('[') {
        return false;
    }
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    !host.is_empty()
        && host.parse::<Ipv4Addr>().is_err()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

fuzz_target!(|data: &[u8]| {
    let Some((&select, text)) = data.split_first() else {
        return;
    };
    let Ok(spec) = std::str::from_utf8(text) else {
        return;
    };
    if names_a_host(spec) {
        return;
    }
    let transport = if select & 1 == 0 {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    match Instance::parse(transport, spec) {
        Ok(instance) => {
            assert_eq!(instance.transport, transport);
            assert!(instance.service.runs_on(transport));
            let again = format!("{}@{}", instance.service, instance.addr);
            assert_eq!(
                Instance::parse(transport, &again).ok(),
                Some(instance),
                "{spec:?} read as {again:?}, which reads otherwise"
            );
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
