//! xt_hashlimit (revision 3, packet mode): one 64-bit token bucket per key in a named
//! table whose configuration comes from the rule that created it (SEMANTICS.md §4.2).

use std::collections::HashMap;
use std::net::IpAddr;

use super::Jiffies;
use crate::model::matches::{hashmode, Hashlimit};
use crate::packet::Packet;

/// `CREDITS_PER_JIFFY` for 64-bit buckets: the largest power of two ≤ 2^64 / (HZ·86400).
pub fn credits_per_jiffy(hz: u32) -> u64 {
    let max = u64::MAX / (hz as u64 * 86400);
    1 << (63 - max.leading_zeros())
}

/// `user2credits` (revision ≥ 2, scale 1,000,000).
pub fn user2credits(user: u64, hz: u32) -> u64 {
    let scale: u64 = 1_000_000;
    let hc = hz as u64 * credits_per_jiffy(hz);
    if scale >= hc {
        user / (scale / hc)
    } else {
        user.wrapping_mul(hc / scale)
    }
}

type HKey = (u128, u128, u16, u16);

#[derive(Clone, Copy, Debug)]
struct Entry {
    credit: u64,
    prev: Jiffies,
    expires: Jiffies,
}

/// One named table.
#[derive(Debug)]
pub struct Table {
    mode: u8,
    srcmask: u128,
    dstmask: u128,
    v4: bool,
    cap: u64,
    cost: u64,
    expire: Jiffies,
    max: usize,
    hz: u32,
    entries: HashMap<HKey, Entry>,
}

fn mask(len: u8, v4: bool) -> u128 {
    let w = if v4 { 32 } else { 128 };
    let len = len.min(w) as u32;
    if len == 0 {
        0
    } else {
        (u128::MAX << (128 - len)) >> (128 - w)
    }
}

fn bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

impl Table {
    /// A table configured by its creating rule.
    pub fn new(h: &Hashlimit, hz: u32) -> Table {
        let v4 = h.family == crate::model::Family::V4;
        let size = if h.size == 0 { 8192 } else { h.size };
        let max = if h.max == 0 { 8 * size } else { h.max };
        let mut entries = HashMap::new();
        entries.reserve(1024);
        Table {
            mode: h.mode,
            srcmask: mask(h.srcmask, v4),
            dstmask: mask(h.dstmask, v4),
            v4,
            cap: user2credits(h.avg.wrapping_mul(h.burst), hz),
            cost: user2credits(h.avg, hz),
            expire: (h.expire as u64 * hz as u64).div_ceil(1000),
            max: max as usize,
            hz,
            entries,
        }
    }

    fn key(&self, p: &Packet) -> HKey {
        let m = self.mode;
        let ports = p.has_ports();
        (
            if m & hashmode::SRCIP != 0 { bits(p.src) & self.srcmask } else { 0 },
            if m & hashmode::DSTIP != 0 { bits(p.dst) & self.dstmask } else { 0 },
            if m & hashmode::SRCPORT != 0 && ports { p.sport } else { 0 },
            if m & hashmode::DSTPORT != 0 && ports { p.dport } else { 0 },
        )
    }

    /// `hashlimit_mt_common`: true when under the limit (a token was taken). `None` when
    /// the table is full and the packet is hot-dropped.
    pub fn eval(&mut self, p: &Packet, now: Jiffies) -> Option<bool> {
        let _ = (self.v4, self.hz);
        let key = self.key(p);
        let cpj = credits_per_jiffy(self.hz);
        let e = match self.entries.get_mut(&key) {
            Some(e) if e.expires >= now => {
                e.expires = now + self.expire;
                let delta = now.wrapping_sub(e.prev);
                if delta != 0 {
                    e.prev = now;
                    e.credit = e.credit.wrapping_add(delta.wrapping_mul(cpj)).min(self.cap);
                }
                e
            }
            _ => {
                // Expired entries are collected by the table's garbage collector, here at
                // once; the kernel's runs every `gc_interval` ms, so until then it may
                // still find the old entry (nondeterministic; see README).
                self.entries.retain(|_, e| e.expires >= now);
                if self.entries.len() >= self.max {
                    return None;
                }
                self.entries.entry(key).or_insert(Entry { credit: self.cap, prev: now, expires: now + self.expire })
            }
        };
        if e.credit >= self.cost {
            e.credit -= self.cost;
            Some(true)
        } else {
            Some(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_semantics() {
        assert_eq!(credits_per_jiffy(250), 1 << 39);
        assert_eq!(user2credits(1, 250), 137_438_953);
    }
}
