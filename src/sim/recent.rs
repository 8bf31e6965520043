//! xt_recent, reproduced from `net/netfilter/xt_recent.c` (SEMANTICS.md §3).
//!
//! One [`RecentTable`] per name, sized once: `ip_list_tot` entries, each with a ring of
//! `ring` stamps, all in flat vectors allocated at construction (no heap per packet).

use super::Jiffies;
use crate::model::matches::{RecentMode, RecentSide};

/// Key of an entry: the masked address as 128 bits, plus a family tag bit above.
pub type AddrKey = (bool, u128);

const NIL: u32 = u32::MAX;

/// One named recent table.
#[derive(Clone, Debug)]
pub struct RecentTable {
    /// The table's name (`--name`).
    pub name: String,
    /// Mask fixed by the creating rule, as 128 bits (IPv4 in the low 32).
    pub mask4: u32,
    /// IPv6 mask.
    pub mask6: u128,
    /// Stamps per entry (power of two).
    ring: usize,
    capacity: usize,
    /// Entry of each key: open addressing with linear probing over entry numbers
    /// (`NIL`: empty), at most half full, keys compared with `addr`; sized once.
    slots: Vec<u32>,
    /// Entries held.
    count: usize,
    addr: Vec<AddrKey>,
    ttl: Vec<u8>,
    stamps: Vec<Jiffies>,
    widx: Vec<u32>,
    nstamps: Vec<u32>,
    prev: Vec<u32>,
    next: Vec<u32>,
    head: u32,
    tail: u32,
    free: Vec<u32>,
}

/// A snapshot of one entry, for reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecentEntry {
    /// Masked address.
    pub addr: std::net::IpAddr,
    /// TTL recorded.
    pub ttl: u8,
    /// Newest stamp.
    pub last_seen: Jiffies,
    /// Stamps held, in ring slot order (as /proc shows them).
    pub stamps: Vec<Jiffies>,
}

/// Parameters of one recent evaluation (a compiled `-m recent`).
#[derive(Clone, Copy, Debug)]
pub struct RecentCheck {
    /// Table index in the engine.
    pub table: u32,
    /// Action.
    pub mode: RecentMode,
    /// `!`
    pub inv: bool,
    /// `--seconds` × HZ, computed in 32 bits like the kernel (`info->seconds * HZ`).
    pub window: Option<u32>,
    /// `--reap`
    pub reap: bool,
    /// `--hitcount` (0 = none)
    pub hitcount: u32,
    /// `--rttl`
    pub rttl: bool,
    /// Source or destination address.
    pub side: RecentSide,
}

impl RecentTable {
    /// A table holding up to `capacity` entries of `ring` stamps each.
    pub fn new(name: &str, mask4: u32, mask6: u128, capacity: usize, ring: usize) -> RecentTable {
        RecentTable {
            name: name.to_string(),
            mask4,
            mask6,
            ring,
            capacity,
            slots: vec![NIL; (2 * capacity).next_power_of_two().max(8)],
            count: 0,
            addr: vec![(false, 0); capacity],
            ttl: vec![0; capacity],
            stamps: vec![0; capacity * ring],
            widx: vec![0; capacity],
            nstamps: vec![0; capacity],
            prev: vec![NIL; capacity],
            next: vec![NIL; capacity],
            head: NIL,
            tail: NIL,
            free: (0..capacity as u32).rev().collect(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn unlink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        if p == NIL {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev[n as usize] = p;
        }
        self.prev[e as usize] = NIL;
        self.next[e as usize] = NIL;
    }

    fn push_tail(&mut self, e: u32) {
        self.prev[e as usize] = self.tail;
        self.next[e as usize] = NIL;
        if self.tail == NIL {
            self.head = e;
        } else {
            self.next[self.tail as usize] = e;
        }
        self.tail = e;
    }

    fn remove(&mut self, e: u32) {
        self.unlink(e);
        self.unindex(e);
        self.free.push(e);
    }

    /// `recent_entry_init`: evicts the LRU head when full, then records one stamp.
    fn init(&mut self, key: AddrKey, ttl: u8, now: Jiffies) -> u32 {
        if self.count >= self.capacity {
            let h = self.head;
            self.remove(h);
        }
        let e = self.free.pop().expect("a slot is free after eviction");
        let i = e as usize;
        self.addr[i] = key;
        self.ttl[i] = ttl;
        self.stamps[i * self.ring] = now;
        self.widx[i] = 1;
        self.nstamps[i] = 1;
        self.push_tail(e);
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        while self.slots[i] != NIL {
            i = (i + 1) & mask;
        }
        self.slots[i] = e;
        self.count += 1;
        e
    }

    /// The home slot of a key (one multiply of its folded words).
    fn home(&self, key: AddrKey) -> usize {
        let (v6, a) = key;
        let x = (a as u64) ^ ((a >> 64) as u64).rotate_left(29) ^ v6 as u64;
        (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & (self.slots.len() - 1)
    }

    fn find(&self, key: AddrKey) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let e = self.slots[i];
            if e == NIL {
                return None;
            }
            if self.addr[e as usize] == key {
                return Some(e);
            }
            i = (i + 1) & mask;
        }
    }

    /// Takes entry `e` out of `slots` (backward-shift deletion: no tombstones).
    fn unindex(&mut self, e: u32) {
        let mask = self.slots.len() - 1;
        let mut i = self.home(self.addr[e as usize]);
        while self.slots[i] != e {
            i = (i + 1) & mask;
        }
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let f = self.slots[j];
            if f == NIL {
                break;
            }
            let k = self.home(self.addr[f as usize]);
            // The entry at j may move into the hole at i unless its home lies cyclically
            // in (i, j].
            let stays = if i <= j { i < k && k <= j } else { i < k || k <= j };
            if !stays {
                self.slots[i] = f;
                i = j;
            }
        }
        self.slots[i] = NIL;
        self.count -= 1;
    }

    /// `recent_entry_update`: writes a stamp at the ring index and moves to the LRU tail.
    fn update(&mut self, e: u32, now: Jiffies) {
        let i = e as usize;
        let mask = (self.ring - 1) as u32;
        self.widx[i] &= mask;
        self.stamps[i * self.ring + self.widx[i] as usize] = now;
        self.widx[i] += 1;
        if self.widx[i] > self.nstamps[i] {
            self.nstamps[i] = self.widx[i];
        }
        self.unlink(e);
        self.push_tail(e);
    }

    fn lookup(&self, key: AddrKey, ttl: u8) -> Option<u32> {
        let e = self.find(key)?;
        let et = self.ttl[e as usize];
        (ttl == 0 || et == 0 || et == ttl).then_some(e)
    }

    /// Masks an address with the table's mask.
    pub fn key(&self, addr: std::net::IpAddr) -> AddrKey {
        match addr {
            std::net::IpAddr::V4(a) => (false, (u32::from(a) & self.mask4) as u128),
            std::net::IpAddr::V6(a) => (true, u128::from(a) & self.mask6),
        }
    }

    /// Evaluates one `-m recent` match (`recent_mt`). `ttl` is the packet TTL already
    /// adjusted for forwarded packets.
    #[inline]
    pub fn eval(&mut self, c: &RecentCheck, addr: std::net::IpAddr, ttl: u8, now: Jiffies) -> bool {
        // Most evaluations check or remove an address the table does not hold: answered
        // here, inline, exactly as `eval_full` would (no entry: only `--set` acts).
        if c.mode != RecentMode::Set && self.find(self.key(addr)).is_none() {
            return c.inv;
        }
        self.eval_full(c, addr, ttl, now)
    }

    #[inline(never)]
    fn eval_full(&mut self, c: &RecentCheck, addr: std::net::IpAddr, ttl: u8, now: Jiffies) -> bool {
        let mut ret = c.inv;
        let key = self.key(addr);
        let Some(e) = self.lookup(key, if c.rttl { ttl } else { 0 }) else {
            if c.mode == RecentMode::Set {
                self.init(key, ttl, now);
                ret = !ret;
            }
            return ret;
        };
        match c.mode {
            RecentMode::Set => ret = !ret,
            RecentMode::Remove => {
                self.remove(e);
                return !ret;
            }
            RecentMode::Rcheck | RecentMode::Update => {
                let time = now.wrapping_sub(c.window.unwrap_or(0) as u64);
                // The kernel counts the stamps inside the window until it has `--hitcount`
                // of them (at least one). time_after(time, stamp): the stamp is strictly
                // older than the window.
                if self.hits_reach(e, c.window.map(|_| time), c.hitcount.max(1)) {
                    ret = !ret;
                }
                if c.reap {
                    // The kernel protects the working entry only when it is about to be
                    // recorded (`recent_entry_reap(t, time, e, UPDATE && ret)`, the fix
                    // for kernel bugzilla #207773): an `--rcheck --reap` whose own entry
                    // is the stale LRU head deletes it.
                    self.reap(time, e, c.mode == RecentMode::Update && ret);
                }
            }
        }
        if c.mode == RecentMode::Set || (c.mode == RecentMode::Update && ret) {
            self.update(e, now);
            self.ttl[e as usize] = ttl;
        }
        ret
    }

    /// `recent_entry_reap`: only the LRU head is looked at, and not the working entry when
    /// it is going to be updated.
    /// Whether entry `e` holds at least `need` (≥ 1) stamps, counting only those at or
    /// after `since` when given: the kernel's loop over `e->stamps`, answered in O(1).
    /// Stamps are written in ring order at non-decreasing times (a trace's times never go
    /// back), so the ring read backwards from the newest stamp is sorted newest first,
    /// and "at least `need` stamps since" is "the `need`-th newest stamp is since". The
    /// ring is at least every rule's `--hitcount` (it is sized by the largest).
    fn hits_reach(&self, e: u32, since: Option<Jiffies>, need: u32) -> bool {
        let i = e as usize;
        if self.nstamps[i] < need {
            return false;
        }
        let Some(since) = since else { return true };
        let k = (self.widx[i] as usize + self.ring - need as usize) & (self.ring - 1);
        (self.stamps[i * self.ring + k].wrapping_sub(since) as i64) >= 0
    }

    fn reap(&mut self, time: Jiffies, working: u32, update: bool) {
        let h = self.head;
        if h == NIL || (h == working && update) {
            return;
        }
        let i = h as usize;
        let last = self.stamps[i * self.ring + (self.widx[i] as usize + self.ring - 1) % self.ring];
        if (last.wrapping_sub(time) as i64) < 0 {
            self.remove(h);
        }
    }

    /// Entries in LRU order (oldest record first).
    pub fn entries(&self) -> Vec<RecentEntry> {
        let mut out = Vec::new();
        let mut e = self.head;
        while e != NIL {
            let i = e as usize;
            let (v6, a) = self.addr[i];
            let addr = if v6 { std::net::IpAddr::V6(a.into()) } else { std::net::IpAddr::V4((a as u32).into()) };
            let n = self.nstamps[i] as usize;
            let stamps = self.stamps[i * self.ring..i * self.ring + n].to_vec();
            let last = self.stamps[i * self.ring + (self.widx[i] as usize + self.ring - 1) % self.ring];
            out.push(RecentEntry { addr, ttl: self.ttl[i], last_seen: last, stamps });
            e = self.next[i];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(mode: RecentMode, secs: Option<u32>, hit: u32) -> RecentCheck {
        RecentCheck {
            table: 0,
            mode,
            inv: false,
            window: secs.map(|s| s * 250),
            reap: false,
            hitcount: hit,
            rttl: false,
            side: RecentSide::Source,
        }
    }

    #[test]
    fn ssh_throttle_blocks_the_fourth_connection() {
        // SEMANTICS.md §3 example: --set, then --update --seconds 60 --hitcount 4.
        let mut t = RecentTable::new("SSH", u32::MAX, u128::MAX, 100, 32);
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let set = check(RecentMode::Set, None, 0);
        let upd = check(RecentMode::Update, Some(60), 4);
        let mut blocked = Vec::new();
        for k in 0..5u64 {
            let now = 1000 + k * 250;
            t.eval(&set, a, 64, now);
            blocked.push(t.eval(&upd, a, 64, now));
        }
        assert_eq!(blocked, [false, false, false, true, true]);
    }

    #[test]
    fn rcheck_reap_deletes_its_own_stale_entry_but_update_does_not() {
        // Found by `fwverify conform` (tests/data/conform/reap.csv): the kernel spares the
        // working entry only when it is about to be recorded.
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let set = check(RecentMode::Set, None, 0);
        let mut rc = check(RecentMode::Rcheck, Some(1), 0);
        rc.reap = true;
        let mut t = RecentTable::new("r", u32::MAX, u128::MAX, 100, 32);
        t.eval(&set, a, 64, 100);
        assert!(!t.eval(&rc, a, 64, 100 + 251));
        assert!(t.is_empty(), "a stale LRU head is reaped even when it is the working entry");
        let mut up = check(RecentMode::Update, Some(1), 0);
        up.reap = true;
        up.inv = true; // `! --update`: the failed check records, so the entry is kept
        let mut t = RecentTable::new("r", u32::MAX, u128::MAX, 100, 32);
        t.eval(&set, a, 64, 100);
        assert!(t.eval(&up, a, 64, 100 + 251));
        assert_eq!(t.len(), 1);
    }

    proptest::proptest! {
        /// `hits_reach` answers as the kernel's loop over every stamp held, for stamps
        /// written at non-decreasing times into rings of any size.
        #[test]
        fn hit_count_matches_the_kernel_loop(
            ring_bits in 0u32..6,
            gaps in proptest::collection::vec(0u64..40, 1..150),
            window in proptest::option::of(0u64..200),
            need in 1u32..40,
        ) {
            let ring = 1usize << ring_bits;
            let need = need.min(ring as u32);
            let mut t = RecentTable::new("h", u32::MAX, u128::MAX, 4, ring);
            let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
            let set = check(RecentMode::Set, None, 0);
            let mut now = (1u64 << 32) - 300 * 250;
            for g in gaps {
                now += g;
                t.eval(&set, a, 64, now);
                let e = t.find(t.key(a)).unwrap();
                let i = e as usize;
                let since = window.map(|w| now.wrapping_sub(w));
                let held = &t.stamps[i * ring..i * ring + t.nstamps[i] as usize];
                let loop_hits =
                    held.iter().filter(|&&s| since.is_none_or(|x| (s.wrapping_sub(x) as i64) >= 0)).count();
                proptest::prop_assert_eq!(t.hits_reach(e, since, need), loop_hits >= need as usize);
            }
        }
    }

    #[test]
    fn window_is_inclusive_and_eviction_is_lru() {
        let mut t = RecentTable::new("k", u32::MAX, u128::MAX, 2, 32);
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let b: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        let c: std::net::IpAddr = "10.0.0.3".parse().unwrap();
        let set = check(RecentMode::Set, None, 0);
        t.eval(&set, a, 64, 100);
        let rc = check(RecentMode::Rcheck, Some(10), 0);
        assert!(t.eval(&rc, a, 64, 100 + 2500));
        assert!(!t.eval(&rc, a, 64, 100 + 2501));
        t.eval(&set, b, 64, 200);
        t.eval(&set, c, 64, 300); // evicts a, the least recently recorded
        let any = check(RecentMode::Rcheck, None, 0);
        assert!(!t.eval(&any, a, 64, 400));
        assert!(t.eval(&any, b, 64, 400) && t.eval(&any, c, 64, 400));
    }
}
