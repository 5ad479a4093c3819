//! The gate: for each new TCP connection and each datagram, whether it is served.
//!
//! One place answers "who gets in", from the access lists (`--allow`, `--deny`), the
//! per-source tables (`--max-per-source`, `--max-rate`, `--udp-rate`) and the proxies whose
//! connections begin with a PROXY header (`--proxy-from`, `--proxy-protocol`). The loop asks
//! it and acts on the answer: it sends the messages, counts and logs; the gate only decides,
//! and keeps the tables its decisions need.

use std::net::IpAddr;

use super::access::{AccessList, Cidr, CidrSet};
use super::sources::{HeldTable, RateTable, SourceKey};
use crate::clock::Millis;

/// What a new TCP connection gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Served. With `Some`, it holds a place for its source in the `--max-per-source` table
    /// until [`Gate::release`] gives it back.
    Serve(Option<SourceKey>),
    /// Its source is not served (`--allow`, `--deny`): closed with no message.
    Denied,
    /// Over `--max-per-source` (its limit) or `--max-rate` (`None`): a message, then the close.
    Limited(Option<usize>),
    /// Over `--max-connections`: the busy message, then the close.
    Busy,
}

impl Admission {
    /// Whether the connection is served.
    pub fn serves(self) -> bool {
        matches!(self, Admission::Serve(_))
    }
}

/// What the gate is asked to enforce (each `None` or empty list is off and costs nothing).
#[derive(Debug, Default)]
pub struct Rules<'a> {
    pub allow: &'a [Cidr],
    pub deny: &'a [Cidr],
    /// The proxies whose connections begin with a PROXY header.
    pub proxy_from: &'a [Cidr],
    /// Every connection begins with a PROXY header (`--proxy-protocol`).
    pub proxy_all: bool,
    /// `--max-per-source`, `--max-rate`, `--udp-rate` (0: off).
    pub max_per_source: usize,
    pub max_rate: u32,
    pub udp_rate: u32,
}

/// The admission decisions and the tables they keep.
#[derive(Debug)]
pub struct Gate {
    /// `None`: everyone may connect.
    access: Option<AccessList>,
    proxies: Option<CidrSet>,
    proxy_all: bool,
    /// Connections held per source (`--max-per-source`).
    held: Option<HeldTable>,
    /// New connections a second per source (`--max-rate`).
    rates: Option<RateTable>,
    /// Replies a second per UDP source (`--udp-rate`).
    udp_rates: Option<RateTable>,
}

/// How full the gate's tables are, for the `SIGUSR1` line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableSizes {
    pub holding: usize,
    pub connection_rates: usize,
    pub datagram_rates: usize,
}

impl Gate {
    pub fn new(rules: &Rules) -> Gate {
        Gate {
            access: AccessList::new(rules.allow, rules.deny),
            proxies: (!rules.proxy_from.is_empty()).then(|| CidrSet::new(rules.proxy_from)),
            proxy_all: rules.proxy_all,
            held: HeldTable::new(rules.max_per_source),
            rates: RateTable::new(rules.max_rate),
            udp_rates: RateTable::new(rules.udp_rate),
        }
    }

    /// Puts `access` in force (`None`: everyone may connect) from the next decision on. The
    /// per-source tables are kept: a source holds its places and its rate whatever the lists.
    pub fn set_access(&mut self, access: Option<AccessList>) {
        self.access = access;
    }

    /// Whether a connection from `ip` must begin with a PROXY header.
    pub fn expects_header(&self, ip: IpAddr) -> bool {
        self.proxy_all || self.proxies.as_ref().is_some_and(|p| p.contains(ip))
    }

    /// Whether `ip` may be served at all (`--allow`, `--deny`).
    pub fn permits(&self, ip: IpAddr) -> bool {
        match &self.access {
            Some(access) => access.permits(ip),
            None => true,
        }
    }

    /// What a connection from `ip` gets at `now`: served, or turned away (denied, over a
    /// per-source limit, or `busy`). `exempt` spares it the per-source limits (a listed
    /// proxy's own connection, a health check). One to be served holds its place in the
    /// per-source table from here on.
    pub fn admit(&mut self, ip: IpAddr, now: Millis, exempt: bool, busy: bool) -> Admission {
        if !self.permits(ip) {
            return Admission::Denied;
        }
        let key = SourceKey::of(ip);
        if let (Some(rates), false) = (&mut self.rates, exempt) {
            if !rates.admit(key, now) {
                return Admission::Limited(None);
            }
        }
        if busy {
            return Admission::Busy;
        }
        match (&mut self.held, exempt) {
            (Some(held), false) => match held.try_hold(key) {
                true => Admission::Serve(Some(key)),
                false => Admission::Limited(Some(held.limit())),
            },
            _ => Admission::Serve(None),
        }
    }

    /// Gives back the place a connection held for its source.
    pub fn release(&mut self, key: SourceKey) {
        if let Some(held) = &mut self.held {
            held.release(key);
        }
    }

    /// Whether replies to datagrams are rate-limited (so the loop reads the clock for them).
    pub fn limits_replies(&self) -> bool {
        self.udp_rates.is_some()
    }

    /// Whether a reply to `ip` at `now` is within `--udp-rate`.
    pub fn admit_reply(&mut self, ip: IpAddr, now: Millis) -> bool {
        match &mut self.udp_rates {
            Some(rates) => rates.admit(SourceKey::of(ip), now),
            None => true,
        }
    }

    /// When the rate tables next have sources to forget.
    pub fn due(&self) -> Option<Millis> {
        [&self.rates, &self.udp_rates]
            .into_iter()
            .filter_map(|table| table.as_ref()?.due())
            .min()
    }

    /// Forgets the sources the rate tables no longer need at `now`.
    pub fn expire(&mut self, now: Millis) {
        for table in [&mut self.rates, &mut self.udp_rates].into_iter().flatten() {
            table.expire(now);
        }
    }

    pub fn sizes(&self) -> TableSizes {
        TableSizes {
            holding: self.held.as_ref().map_or(0, HeldTable::len),
            connection_rates: self.rates.as_ref().map_or(0, RateTable::len),
            datagram_rates: self.udp_rates.as_ref().map_or(0, RateTable::len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn deny_wins_and_comes_before_every_limit() {
        let deny = [Cidr::parse("10.0.0.0/8").unwrap()];
        let mut gate = Gate::new(&Rules {
            deny: &deny,
            max_rate: 1,
            ..Rules::default()
        });
        assert_eq!(
            gate.admit(ip("10.1.2.3"), 0, false, true),
            Admission::Denied
        );
        assert!(!gate.permits(ip("10.1.2.3")));
        assert_eq!(
            gate.admit(ip("127.0.0.1"), 0, false, false),
            Admission::Serve(None)
        );
        // The rate counts before busy does: a second connection in the same second.
        assert_eq!(
            gate.admit(ip("127.0.0.1"), 0, false, true),
            Admission::Limited(None)
        );
    }

    #[test]
    fn new_access_lists_keep_the_per_source_tables() {
        let mut gate = Gate::new(&Rules {
            max_per_source: 2,
            ..Rules::default()
        });
        assert!(gate.admit(ip("10.0.0.1"), 0, false, false).serves());
        let deny = [Cidr::parse("10.0.0.1").unwrap()];
        gate.set_access(AccessList::new(&[], &deny));
        assert_eq!(
            gate.admit(ip("10.0.0.1"), 0, false, false),
            Admission::Denied
        );
        gate.set_access(None);
        assert_eq!(gate.sizes().holding, 1);
        assert!(gate.admit(ip("10.0.0.1"), 0, false, false).serves());
        assert_eq!(
            gate.admit(ip("10.0.0.1"), 0, false, false),
            Admission::Limited(Some(2))
        );
    }

    #[test]
    fn a_served_connection_holds_its_place_until_released() {
        let mut gate = Gate::new(&Rules {
            max_per_source: 1,
            ..Rules::default()
        });
        let first = gate.admit(ip("127.0.0.1"), 0, false, false);
        let key = SourceKey::of(ip("127.0.0.1"));
        assert_eq!(first, Admission::Serve(Some(key)));
        assert_eq!(
            gate.admit(ip("127.0.0.1"), 0, false, false),
            Admission::Limited(Some(1))
        );
        // An exempt connection (a proxy's own, a health check) takes no place.
        assert_eq!(
            gate.admit(ip("127.0.0.1"), 0, true, false),
            Admission::Serve(None)
        );
        assert_eq!(gate.sizes().holding, 1);
        gate.release(key);
        assert_eq!(gate.sizes().holding, 0);
        assert!(gate.admit(ip("127.0.0.1"), 0, false, false).serves());
    }

    #[test]
    fn headers_are_expected_from_the_listed_proxies_or_from_everyone() {
        let proxies = [Cidr::parse("192.0.2.1").unwrap()];
        let gate = Gate::new(&Rules {
            proxy_from: &proxies,
            ..Rules::default()
        });
        assert!(gate.expects_header(ip("192.0.2.1")));
        assert!(!gate.expects_header(ip("192.0.2.2")));
        let all = Gate::new(&Rules {
            proxy_all: true,
            ..Rules::default()
        });
        assert!(all.expects_header(ip("192.0.2.2")));
    }

    #[test]
    fn replies_are_limited_per_source_only_with_a_rate() {
        let mut off = Gate::new(&Rules::default());
        assert!(!off.limits_replies());
        assert!((0..10).all(|_| off.admit_reply(ip("127.0.0.1"), 0)));
        let mut on = Gate::new(&Rules {
            udp_rate: 2,
            ..Rules::default()
        });
        assert!(on.limits_replies());
        assert!(on.admit_reply(ip("127.0.0.1"), 0));
        assert!(on.admit_reply(ip("127.0.0.1"), 0));
        assert!(!on.admit_reply(ip("127.0.0.1"), 0));
        assert!(on.admit_reply(ip("127.0.0.2"), 0));
        assert_eq!(on.sizes().datagram_rates, 2);
        assert!(on.due().is_some());
    }
}
