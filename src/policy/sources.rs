//! Fair shares per source: how many connections one source may hold (`--max-per-source`), and
//! how fast it may open new ones or be answered (`--max-rate`, `--udp-rate`).
//!
//! A source is a [`SourceKey`]: an IPv4 address, or the /64 of an IPv6 address (one host
//! owns a whole /64, so counting its addresses one by one would give it millions of shares).
//!
//! Both tables stay bounded whatever the number of sources, and neither scans: every call is
//! O(1) (one hash lookup, plus a few writes).
//! - [`HeldTable`] has an entry for a source only while that source holds connections, so it
//!   never has more entries than connections are open, and it gives memory back after a peak.
//! - [`RateTable`] is a token bucket per source, with at most [`RATE_TABLE_CAP`] of them:
//!   past the cap the least recently seen source is forgotten. A source that was forgotten
//!   comes back with a full bucket, which is what it would have had after a second without
//!   a request anyway; only a flood from more than the cap of sources within one second can
//!   make the table forget a source that is still over its rate.
//!
//! The tables are keyed with the standard library's randomly seeded SipHash, so sources an
//! attacker chooses cannot be made to collide.
//!
//! A flag at 0 turns its table off: `new` returns `None`, and the loop holds an `Option` it
//! does not look into.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::clock::Millis;

/// Who a source is for the per-source limits: an IPv4 address as itself, an IPv6 address as
/// its /64 (an IPv4-mapped IPv6 address is its IPv4 address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceKey {
    V4(Ipv4Addr),
    /// The first 64 bits of the address.
    V6(u64),
}

impl SourceKey {
    pub fn of(ip: IpAddr) -> SourceKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => SourceKey::V4(v4),
            IpAddr::V6(v6) => SourceKey::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// `192.0.2.7`, `2001:db8:0:1::/64`.
impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceKey::V4(v4) => write!(f, "{v4}"),
            SourceKey::V6(net) => write!(f, "{}/64", Ipv6Addr::from(u128::from(*net) << 64)),
        }
    }
}

/// Below this many slots a table keeps the memory it has: giving back less is not worth
/// the allocations of growing again.
const KEEP_SLOTS: usize = 64;

/// The connections each source holds now (`--max-per-source`). An entry lives while its
/// source holds at least one connection, so the table has at most as many entries as there
/// are connections; once fewer than a quarter of its slots are in use it shrinks to twice
/// what is in use (amortised O(1), as the table grew by doubling).
#[derive(Debug)]
pub struct HeldTable {
    limit: usize,
    held: HashMap<SourceKey, usize>,
}

impl HeldTable {
    /// The table for `limit` connections per source, or `None` for 0 (no limit).
    pub fn new(limit: usize) -> Option<HeldTable> {
        (limit > 0).then(|| HeldTable {
            limit,
            held: HashMap::new(),
        })
    }

    /// The number of connections one source may hold.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Counts one more connection for `key` and says `true`, or says `false` (and counts
    /// nothing) when the source already holds its limit. A `true` must be matched by one
    /// [`HeldTable::release`] when that connection closes.
    pub fn try_hold(&mut self, key: SourceKey) -> bool {
        let held = self.held.entry(key).or_insert(0);
        if *held >= self.limit {
            return false;
        }
        *held += 1;
        true
    }

    /// One connection of `key` has closed; the source leaves the table with its last one.
    pub fn release(&mut self, key: SourceKey) {
        let Some(held) = self.held.get_mut(&key) else {
            debug_assert!(false, "{key} released a connection it did not hold");
            return;
        };
        *held -= 1;
        if *held == 0 {
            self.held.remove(&key);
            let (len, slots) = (self.held.len(), self.held.capacity());
            if slots > KEEP_SLOTS && len * 4 < slots {
                self.held.shrink_to(len * 2);
            }
        }
    }

    /// The number of sources holding connections now.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// The most sources a [`RateTable`] remembers. At the cap it holds 4096 entries of 40 bytes
/// and an index of 8192 slots of 24 bytes: about 360 KiB, given back when the table empties.
pub const RATE_TABLE_CAP: usize = 4096;

/// A token in the buckets' unit: buckets count thousandths of a token, so a rate of N a
/// second adds exactly N units each millisecond, with nothing lost to rounding.
const UNITS: u64 = 1000;

/// How long a bucket takes to fill from empty: a burst of N at N a second. An entry not
/// seen for this long is full, the same as no entry at all.
pub const REFILL: Millis = 1000;

/// How many forgotten entries one [`RateTable::admit`] removes at most: more than the one it
/// may add, so the table drains while it is used, in constant time per call.
const EXPIRE_PER_ADMIT: usize = 2;

/// The end of a list, or no slot.
const NIL: u32 = u32::MAX;

/// One source's bucket, linked into the list of entries from the most to the least recently
/// seen; a free slot is linked into the free list through `older`.
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: SourceKey,
    /// Tokens in the bucket, in [`UNITS`].
    units: u64,
    /// When the source was last seen (and the bucket last filled).
    seen: Millis,
    newer: u32,
    older: u32,
}

/// A token bucket per source: rate N a second, burst N. `--max-rate` (new connections) and
/// `--udp-rate` (replies) each have one.
///
/// Entries live in a vector of slots, linked from the most to the least recently seen, and a
/// hash map finds a source's slot: seeing a source moves its entry to the front, a new one
/// past [`RATE_TABLE_CAP`] takes the slot of the one at the back. Entries not seen for
/// [`REFILL`] are full buckets, so they are forgotten: a few at each call, and all of them
/// when the loop calls [`RateTable::expire`] at [`RateTable::due`].
#[derive(Debug)]
pub struct RateTable {
    /// N: tokens a second, which is units a millisecond.
    rate: u64,
    index: HashMap<SourceKey, u32>,
    slots: Vec<Entry>,
    newest: u32,
    oldest: u32,
    free: u32,
}

impl RateTable {
    /// The table for `rate` a second per source (and a burst of as many), or `None` for 0
    /// (no limit). The table allocates nothing until the first source comes.
    pub fn new(rate: u32) -> Option<RateTable> {
        (rate > 0).then(|| RateTable {
            rate: u64::from(rate),
            index: HashMap::new(),
            slots: Vec::new(),
            newest: NIL,
            oldest: NIL,
            free: NIL,
        })
    }

    /// Takes a token from `key`'s bucket at time `now` and says `true`, or says `false` when
    /// the bucket is empty. Either way the source counts as seen. O(1): it allocates only
    /// while the table grows towards its cap.
    pub fn admit(&mut self, key: SourceKey, now: Millis) -> bool {
        self.expire_some(now, EXPIRE_PER_ADMIT);
        let full = self.rate * UNITS;
        if let Some(&slot) = self.index.get(&key) {
            self.move_to_front(slot);
            let rate = self.rate;
            let e = &mut self.slots[slot as usize];
            let gained = now.saturating_sub(e.seen).saturating_mul(rate);
            e.units = e.units.saturating_add(gained).min(full);
            e.seen = e.seen.max(now);
            if e.units < UNITS {
                return false;
            }
            e.units -= UNITS;
            return true;
        }
        let entry = Entry {
            key,
            units: full - UNITS,
            seen: now,
            newer: NIL,
            older: NIL,
        };
        let slot = if self.index.len() >= RATE_TABLE_CAP {
            // The least recently seen makes room.
            self.remove_oldest()
        } else {
            self.free_slot()
        };
        self.slots[slot as usize] = entry;
        self.push_front(slot);
        self.index.insert(key, slot);
        true
    }

    /// When the oldest entry is to be forgotten: the time for the loop's timer, or `None`
    /// when the table is empty (then the loop needs no timer for it).
    pub fn due(&self) -> Option<Millis> {
        self.slots
            .get(self.oldest as usize)
            .map(|e| e.seen.saturating_add(REFILL))
    }

    /// Forgets every entry not seen for [`REFILL`] by `now` (each a full bucket), and gives
    /// the memory back when none is left. The cost is one step per entry forgotten.
    pub fn expire(&mut self, now: Millis) {
        self.expire_some(now, usize::MAX);
        if self.index.is_empty() && self.slots.capacity() > KEEP_SLOTS {
            self.index = HashMap::new();
            self.slots = Vec::new();
            self.free = NIL;
        }
    }

    /// The number of sources remembered now.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Forgets at most `most` entries not seen for [`REFILL`] by `now`, oldest first.
    fn expire_some(&mut self, now: Millis, most: usize) {
        for _ in 0..most {
            match self.due() {
                Some(due) if due <= now => {
                    let slot = self.remove_oldest();
                    self.slots[slot as usize].older = self.free;
                    self.free = slot;
                }
                _ => return,
            }
        }
    }

    /// A slot for a new entry: a free one, or a new one at the end.
    fn free_slot(&mut self) -> u32 {
        if self.free != NIL {
            let slot = self.free;
            self.free = self.slots[slot as usize].older;
            return slot;
        }
        self.slots.push(Entry {
            key: SourceKey::V6(0),
            units: 0,
            seen: 0,
            newer: NIL,
            older: NIL,
        });
        // At most RATE_TABLE_CAP slots: the index fits.
        (self.slots.len() - 1) as u32
    }

    /// Takes the least recently seen entry out of the list and the index; its slot.
    fn remove_oldest(&mut self) -> u32 {
        let slot = self.oldest;
        self.unlink(slot);
        self.index.remove(&self.slots[slot as usize].key);
        slot
    }

    fn move_to_front(&mut self, slot: u32) {
        if slot != self.newest {
            self.unlink(slot);
            self.push_front(slot);
        }
    }

    fn unlink(&mut self, slot: u32) {
        let Entry { newer, older, .. } = self.slots[slot as usize];
        match self.slots.get_mut(newer as usize) {
            Some(e) => e.older = older,
            None => self.newest = older,
        }
        match self.slots.get_mut(older as usize) {
            Some(e) => e.newer = newer,
            None => self.oldest = newer,
        }
    }

    fn push_front(&mut self, slot: u32) {
        let newest = self.newest;
        let e = &mut self.slots[slot as usize];
        e.newer = NIL;
        e.older = newest;
        match self.slots.get_mut(newest as usize) {
            Some(e) => e.newer = slot,
            None => self.oldest = slot,
        }
        self.newest = slot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(text: &str) -> SourceKey {
        SourceKey::of(text.parse().unwrap())
    }

    /// The `n`th of many distinct IPv4 sources.
    fn nth(n: u32) -> SourceKey {
        SourceKey::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn ipv6_sources_count_as_their_64() {
        assert_eq!(
            key("2001:db8:0:1::1"),
            key("2001:db8:0:1:ffff:ffff:ffff:ffff")
        );
        assert_ne!(key("2001:db8:0:1::1"), key("2001:db8:0:2::1"));
        assert_eq!(key("2001:db8:0:1::9").to_string(), "2001:db8:0:1::/64");
        assert_eq!(key("::1").to_string(), "::/64");
    }

    #[test]
    fn ipv4_sources_count_one_by_one_and_mapped_ones_as_ipv4() {
        assert_ne!(key("10.0.0.1"), key("10.0.0.2"));
        assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
        assert_eq!(key("::ffff:10.0.0.1").to_string(), "10.0.0.1");
        // An IPv4 address and an IPv6 /64 with the same bits are different sources.
        assert_ne!(SourceKey::V6(0x0a00_0001), key("10.0.0.1"));
    }

    #[test]
    fn the_sizes_rate_table_cap_states() {
        assert_eq!(std::mem::size_of::<Entry>(), 40);
        assert_eq!(std::mem::size_of::<(SourceKey, u32)>(), 24);
    }

    #[test]
    fn zero_turns_a_table_off() {
        assert!(HeldTable::new(0).is_none());
        assert!(RateTable::new(0).is_none());
    }

    #[test]
    fn a_source_holds_up_to_its_limit_while_others_are_served() {
        let mut t = HeldTable::new(2).unwrap();
        assert_eq!(t.limit(), 2);
        let (a, b) = (key("127.0.0.2"), key("127.0.0.3"));
        assert!(t.try_hold(a) && t.try_hold(a));
        assert!(!t.try_hold(a));
        assert!(!t.try_hold(key("::ffff:127.0.0.2")));
        assert!(t.try_hold(b));
        assert_eq!(t.len(), 2);
        t.release(a);
        assert!(t.try_hold(a));
        assert!(!t.try_hold(a));
    }

    #[test]
    fn held_counts_return_to_an_empty_table() {
        let mut t = HeldTable::new(3).unwrap();
        for n in 0..10_000 {
            assert!(t.try_hold(nth(n)));
            assert!(t.try_hold(nth(n)));
        }
        assert_eq!(t.len(), 10_000);
        let peak = t.held.capacity();
        for n in 0..10_000 {
            t.release(nth(n));
            assert_eq!(t.len(), 10_000);
        }
        for n in 0..10_000 {
            t.release(nth(n));
        }
        assert!(t.is_empty());
        assert!(
            t.held.capacity() <= KEEP_SLOTS,
            "{} of {peak}",
            t.held.capacity()
        );
    }

    #[test]
    fn the_ipv6_64_shares_one_limit() {
        let mut t = HeldTable::new(1).unwrap();
        assert!(t.try_hold(key("2001:db8::1")));
        assert!(!t.try_hold(key("2001:db8::2")));
        assert!(t.try_hold(key("2001:db8:0:1::1")));
    }

    #[test]
    fn a_burst_then_refusal() {
        let mut t = RateTable::new(3).unwrap();
        let a = key("127.0.0.2");
        assert!((0..3).all(|_| t.admit(a, 0)));
        assert!(!t.admit(a, 0));
        assert!(!t.admit(a, 0));
        // Another source has a bucket of its own.
        assert!(t.admit(key("127.0.0.3"), 0));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn the_bucket_refills_at_the_rate() {
        let mut t = RateTable::new(3).unwrap();
        let a = key("192.0.2.1");
        assert!((0..3).all(|_| t.admit(a, 0)));
        // One token every 333.3 ms: not at 333 ms, at 334.
        assert!(!t.admit(a, 333));
        assert!(t.admit(a, 334));
        assert!(!t.admit(a, 334));
        // Full after a second; never more than the burst.
        assert!((0..3).all(|_| t.admit(a, 60_000)));
        assert!(!t.admit(a, 60_000));
    }

    #[test]
    fn refills_add_up_exactly_over_time() {
        let mut t = RateTable::new(7).unwrap();
        let a = key("192.0.2.1");
        // Asked every millisecond for 10 s: the burst, then exactly 7 a second.
        let admitted = (0..=10_000).filter(|&now| t.admit(a, now)).count();
        assert_eq!(admitted, 7 + 70);
    }

    #[test]
    fn a_clock_that_goes_back_refills_nothing() {
        let mut t = RateTable::new(1).unwrap();
        let a = key("192.0.2.1");
        assert!(t.admit(a, 5_000));
        assert!(!t.admit(a, 4_000));
        assert!(!t.admit(a, 5_999));
        assert!(t.admit(a, 6_000));
    }

    #[test]
    fn the_table_stays_at_its_cap_under_100000_sources() {
        let mut t = RateTable::new(1).unwrap();
        for n in 0..100_000 {
            assert!(t.admit(nth(n), 0), "a new source has a full bucket");
            assert!(t.len() <= RATE_TABLE_CAP);
        }
        assert_eq!(t.len(), RATE_TABLE_CAP);
        assert_eq!(t.slots.len(), RATE_TABLE_CAP);
        assert!(t.index.capacity() < 4 * RATE_TABLE_CAP);
        // The most recent sources are remembered (their buckets are empty)...
        assert!(!t.admit(nth(99_999), 0));
        assert!(!t.admit(nth(100_000 - RATE_TABLE_CAP as u32), 0));
        // ...the older ones were forgotten.
        assert!(t.admit(nth(0), 0));
    }

    #[test]
    fn the_least_recently_seen_source_makes_room() {
        let mut t = RateTable::new(1).unwrap();
        let cap = RATE_TABLE_CAP as u32;
        for n in 0..cap {
            assert!(t.admit(nth(n), 0));
        }
        // Source 0 is seen again (and refused): source 1 is now the least recently seen.
        assert!(!t.admit(nth(0), 1));
        assert!(t.admit(nth(cap), 2));
        assert_eq!(t.len(), RATE_TABLE_CAP);
        assert!(!t.admit(nth(0), 3), "source 0 is still remembered");
        assert!(t.admit(nth(1), 4), "source 1 was forgotten");
    }

    #[test]
    fn entries_not_seen_for_a_refill_are_forgotten() {
        let mut t = RateTable::new(5).unwrap();
        assert_eq!(t.due(), None);
        for n in 0..200 {
            t.admit(nth(n), u64::from(n));
        }
        assert_eq!(t.due(), Some(REFILL));
        t.expire(REFILL + 99);
        assert_eq!(t.len(), 100);
        assert_eq!(t.due(), Some(REFILL + 100));
        // A source seen again moves to the back of the queue.
        t.admit(nth(100), 1_099);
        assert_eq!(t.due(), Some(REFILL + 101));
        t.expire(2_098);
        assert_eq!(t.len(), 1);
        assert_eq!(t.due(), Some(2_099));
        t.expire(2_099);
        assert_eq!((t.len(), t.due()), (0, None));
        // Empty: the memory is given back.
        assert_eq!((t.slots.capacity(), t.index.capacity()), (0, 0));
        assert!(t.admit(nth(7), 3_000));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn each_admit_forgets_a_few_entries_and_reuses_their_slots() {
        let mut t = RateTable::new(1).unwrap();
        for n in 0..10 {
            t.admit(nth(n), 0);
        }
        // Ten stale entries: each call forgets two and adds one.
        for n in 10..15 {
            t.admit(nth(n), 5_000);
        }
        assert_eq!(t.len(), 5);
        assert_eq!(
            t.slots.len(),
            10,
            "the slots of forgotten entries are reused"
        );
    }

    proptest! {
        /// Forgetting entries (by the cap never reached here, by expiry and at each admit)
        /// never changes an answer: a bucket per source that is never forgotten gives the
        /// same ones.
        #[test]
        fn answers_are_those_of_buckets_never_forgotten(
            rate in 1u32..20,
            steps in prop::collection::vec((0u32..6, 0u64..700, any::<bool>()), 1..300),
        ) {
            let mut t = RateTable::new(rate).unwrap();
            let full = u64::from(rate) * UNITS;
            let mut buckets: HashMap<u32, (u64, Millis)> = HashMap::new();
            let mut now = 0;
            for (source, step, expire) in steps {
                now += step;
                if expire {
                    t.expire(now);
                    prop_assert!(t.due().is_none_or(|due| due > now));
                }
                let (units, seen) = buckets.entry(source).or_insert((full, now));
                *units = (*units + (now - *seen) * u64::from(rate)).min(full);
                *seen = now;
                let want = *units >= UNITS;
                if want {
                    *units -= UNITS;
                }
                prop_assert_eq!(t.admit(nth(source), now), want);
                prop_assert!(t.len() <= 6);
            }
        }
    }
}
