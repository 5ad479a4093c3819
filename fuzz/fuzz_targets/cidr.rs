//! `--allow`/`--deny` networks (`Cidr::parse`): never panics; a network it accepts contains
//! its own address, has a prefix its family allows, and reads back the same when written out.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use oneloop::policy::access::Cidr;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Cidr::parse(text) {
        Ok(cidr) => {
            let width = match cidr.network() {
                IpAddr::V4(_) => 32,
                IpAddr::V6(_) => 128,
            };
            assert!(cidr.prefix() <= width, "{text:?} read as {cidr}");
            assert!(
                cidr.contains(cidr.network()),
                "{cidr} lacks its own address"
            );
            assert_eq!(
                Cidr::parse(&cidr.to_string()),
                Ok(cidr),
                "{text:?} read as {cidr}"
            );
        }
        Err(message) => assert!(message.starts_with("bad network '"), "{message}"),
    }
});
