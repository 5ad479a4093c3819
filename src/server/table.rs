//! The connection table: every open connection, and every fact the loop keeps about one, in
//! one place, so that closing a connection removes all of it at once (`Table::close`).
//!
//! Per connection: the [`Conn`] itself in a slab (its key is its name in the trace and its
//! token's offset), the instance it came in on, its deadline in the timer lists, and while
//! they apply, the proxy it came through (until its PROXY header is read) and the source it
//! holds a place for (`--max-per-source`). The rare facts are in maps, so a connection that
//! has none costs nothing for them.
//!
//! A connection closed during a batch of events stays in the slab, marked `Closed`, until
//! the batch is done ([`Table::remove_one_closed`]), so a later event of that batch cannot
//! reach a new connection that reused its key.

use std::collections::HashMap;
use std::net::SocketAddr;

use log::debug;
use slab::Slab;

use super::conn::{Conn, State};
use super::timers::Timers;
use crate::clock::Millis;
use crate::policy::sources::SourceKey;

/// Below this many slots, the table never gives memory back.
const KEEP_SLOTS: usize = 256;

/// What a closed connection leaves to give back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Closed {
    /// The source it held a place for (`--max-per-source`).
    pub holds: Option<SourceKey>,
}

/// The again-list: sockets (connection keys, or instances) that used their turn and want
/// another before the loop sleeps; while it holds any, the poll does not wait.
#[derive(Debug, Default)]
pub(crate) struct AgainList(Vec<usize>);

impl AgainList {
    pub(crate) fn push(&mut self, id: usize) {
        self.0.push(id);
    }

    /// Everything on the list, which is left empty for the next turn.
    pub(crate) fn take(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.0)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What is on the list, in order.
    pub(crate) fn list(&self) -> &[usize] {
        &self.0
    }
}

#[derive(Debug)]
pub(crate) struct Table {
    conns: Slab<Conn>,
    /// The instance each slot's connection came in on (a side table: two bytes a slot).
    instance_of: Vec<u16>,
    /// The proxy each connection still waiting for its PROXY header came through.
    proxied: HashMap<usize, SocketAddr>,
    /// The source each connection holding a `--max-per-source` place holds it for.
    holders: HashMap<usize, SourceKey>,
    /// The connections' deadlines.
    deadlines: Timers,
    /// Connections that count toward `--max-connections` (refusals do not).
    counted: usize,
    /// Busy refusals lingering now (at most `--max-refusals`).
    refusing: usize,
    /// Keys closed during the current batch, removed after it.
    closed: Vec<usize>,
    /// Connections that used their turn and want another before the loop sleeps.
    pub(crate) again: AgainList,
    /// After the slab last gave memory back, it tries again only once no more than this
    /// many connections are open (half as many as then), or after it grew: a slot that stays
    /// in use high in the slab cannot make every close pay for a failed attempt.
    shrink_below: usize,
}

impl Table {
    pub(crate) fn new() -> Table {
        Table {
            conns: Slab::new(),
            instance_of: Vec::new(),
            proxied: HashMap::new(),
            holders: HashMap::new(),
            deadlines: Timers::default(),
            counted: 0,
            refusing: 0,
            closed: Vec::new(),
            again: AgainList::default(),
            shrink_below: usize::MAX,
        }
    }

    /// The key the next connection will have.
    pub(crate) fn vacant_key(&self) -> usize {
        self.conns.vacant_key()
    }

    /// Adds a connection of `instance`: counted toward `--max-connections` unless
    /// it is a refusal, waiting for the PROXY header of `proxy` when that is given.
    pub(crate) fn insert(&mut self, conn: Conn, instance: u16, proxy: Option<SocketAddr>) -> usize {
        if self.conns.len() == self.conns.capacity() {
            // The slab grows: a later fall in connections may give memory back again.
            self.shrink_below = usize::MAX;
        }
        if conn.is_refusal() {
            self.refusing += 1;
        } else {
            self.counted += 1;
        }
        let key = self.conns.insert(conn);
        if key >= self.instance_of.len() {
            self.instance_of.resize(key + 1, 0);
        }
        self.instance_of[key] = instance;
        if let Some(proxy) = proxy {
            self.proxied.insert(key, proxy);
        }
        key
    }

    pub(crate) fn get(&self, key: usize) -> Option<&Conn> {
        self.conns.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut Conn> {
        self.conns.get_mut(key)
    }

    /// The connection at `key`, unless it is closed.
    pub(crate) fn open_mut(&mut self, key: usize) -> Option<&mut Conn> {
        self.conns
            .get_mut(key)
            .filter(|c| c.state() != State::Closed)
    }

    /// The instance connection `key` came in on.
    pub(crate) fn instance(&self, key: usize) -> usize {
        usize::from(self.instance_of[key])
    }

    /// Connection `key` is served, holding a place for `holds` (`--max-per-source`).
    pub(crate) fn hold(&mut self, key: usize, holds: Option<SourceKey>) {
        if let Some(source) = holds {
            self.holders.insert(key, source);
        }
    }

    /// The proxy connection `key` came through, taken once its header is read.
    pub(crate) fn take_proxy(&mut self, key: usize) -> Option<SocketAddr> {
        self.proxied.remove(&key)
    }

    /// A connection counted until now is turned away after its PROXY header: it counts as a
    /// refusal from here on (called before its refusal begins, which may close it).
    pub(crate) fn now_refusing(&mut self) {
        self.counted -= 1;
        self.refusing += 1;
    }

    /// Marks connection `key` closed, for `reason`, and forgets every fact kept about it; its
    /// slab entry (and so its socket) goes after the batch. Returns what it leaves to give
    /// back, or `None` when it was not open.
    pub(crate) fn close(&mut self, key: usize, reason: &str) -> Option<Closed> {
        let conn = self.open_mut(key)?;
        // No deregister: the socket is never duplicated, so closing it (when the entry
        // leaves the slab) removes it from the poll, one system call fewer per connection.
        // Until then the `Closed` state makes the loop skip its events.
        conn.close(key, reason);
        if conn.is_refusal() {
            self.refusing -= 1;
        } else {
            self.counted -= 1;
        }
        self.proxied.remove(&key);
        self.deadlines.cancel(key);
        self.closed.push(key);
        Some(Closed {
            holds: self.holders.remove(&key),
        })
    }

    /// Whether connections closed during the batch wait to be removed.
    pub(crate) fn has_closed(&self) -> bool {
        !self.closed.is_empty()
    }

    /// Removes one connection closed during the batch (its socket closes); returns whether
    /// there was one.
    pub(crate) fn remove_one_closed(&mut self) -> bool {
        match self.closed.pop() {
            Some(key) => {
                // Dropping the connection closes its socket, which sends whatever the kernel
                // still holds for it: each close can cost as much as serving a request.
                self.conns.try_remove(key);
                true
            }
            None => false,
        }
    }

    /// Brings the deadline of connection `key` up to date with what the connection wants.
    pub(crate) fn sync_deadline(&mut self, key: usize) {
        if let Some(conn) = self.conns.get(key) {
            self.deadlines.sync(key, conn.deadline());
        }
    }

    /// The nearest deadline, and whose it is.
    pub(crate) fn next_deadline(&self) -> Option<(Millis, usize)> {
        self.deadlines.next()
    }

    /// Takes the key of a connection whose deadline is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Millis) -> Option<usize> {
        self.deadlines.pop_due(now)
    }

    /// Connections that count toward `--max-connections`.
    pub(crate) fn counted(&self) -> usize {
        self.counted
    }

    /// Busy refusals lingering now.
    pub(crate) fn refusing(&self) -> usize {
        self.refusing
    }

    /// Entries in the slab, closed ones not yet removed included.
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Connections not closed.
    pub(crate) fn open(&self) -> usize {
        self.conns.len() - self.closed.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub(crate) fn slots(&self) -> usize {
        self.conns.capacity()
    }

    pub(crate) fn deadlines_armed(&self) -> usize {
        self.deadlines.armed()
    }

    /// Every connection not closed, with its key.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &Conn)> {
        self.conns
            .iter()
            .filter(|(_, c)| c.state() != State::Closed)
    }

    /// Every connection not closed, for the end of the grace period.
    pub(crate) fn iter_open_mut(&mut self) -> impl Iterator<Item = (usize, &mut Conn)> {
        self.conns
            .iter_mut()
            .filter(|(_, c)| c.state() != State::Closed)
    }

    /// Drops every connection (their sockets close): the loop is ending.
    pub(crate) fn clear(&mut self) {
        self.conns.clear();
    }

    /// After a peak, gives back the memory of slots no connection uses: once fewer than a
    /// quarter of the slab's slots hold a connection, the slab drops its free slots past the
    /// highest one in use, and the side tables with it. Below `KEEP_SLOTS` nothing is given
    /// back, so a daemon serving a few connections at a time does not reallocate. Returns
    /// whether it gave memory back.
    pub(crate) fn give_back_memory(&mut self) -> bool {
        let open = self.conns.len();
        let slots = self.conns.capacity();
        if slots <= KEEP_SLOTS || open * 4 >= slots || open > self.shrink_below {
            return false;
        }
        self.conns.shrink_to_fit();
        self.deadlines.shrink_to(self.conns.capacity());
        self.instance_of.truncate(self.conns.capacity());
        self.instance_of.shrink_to_fit();
        self.closed.shrink_to(KEEP_SLOTS);
        self.again.0.shrink_to(KEEP_SLOTS);
        self.shrink_below = open / 2;
        debug!(
            "gave back memory: {} connection slots (of {slots}) kept for {open} open",
            self.conns.capacity()
        );
        true
    }
}
