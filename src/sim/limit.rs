//! xt_limit's token bucket with the kernel's 32-bit integer arithmetic (SEMANTICS.md §4.1).

use super::Jiffies;

/// `CREDITS_PER_JIFFY`: the largest power of two ≤ 0xFFFFFFFF / (HZ·86400).
pub fn credits_per_jiffy(hz: u32) -> u32 {
    let max = u32::MAX / (hz * 86400);
    if max == 0 {
        1
    } else {
        1 << (31 - max.leading_zeros())
    }
}

/// `user2credits`: converts an interval in 1/10000 s to credits.
pub fn user2credits(user: u32, hz: u32) -> u32 {
    let cpj = credits_per_jiffy(hz);
    if user > u32::MAX / (hz * cpj) {
        (user / 10000).wrapping_mul(hz * cpj)
    } else {
        user * hz * cpj / 10000
    }
}

/// One rule's bucket.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    credit: u32,
    cap: u32,
    cost: u32,
    prev: Jiffies,
    cpj: u32,
}

impl Bucket {
    /// A full bucket created at `now` (every table commit re-creates it).
    pub fn new(avg: u32, burst: u32, hz: u32, now: Jiffies) -> Bucket {
        let cap = user2credits(avg.wrapping_mul(burst), hz);
        Bucket { credit: cap, cap, cost: user2credits(avg, hz), prev: now, cpj: credits_per_jiffy(hz) }
    }

    /// `limit_mt`: refills by elapsed jiffies, then takes one token if there is one.
    pub fn take(&mut self, now: Jiffies) -> bool {
        if self.credit < self.cost && self.prev == now {
            return false;
        }
        let inc = (now.wrapping_sub(self.prev) as u32).wrapping_mul(self.cpj);
        self.prev = now;
        let mut c = self.credit.wrapping_add(inc);
        if c > self.cap {
            c = self.cap;
        }
        let ok = c >= self.cost;
        if ok {
            c -= self.cost;
        }
        self.credit = c;
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_at_common_hz() {
        assert_eq!(credits_per_jiffy(250), 128);
        assert_eq!(credits_per_jiffy(100), 256);
        assert_eq!(credits_per_jiffy(1000), 32);
        assert_eq!(user2credits(10000, 250), 32000);
    }

    #[test]
    fn one_per_second_burst_four() {
        let mut b = Bucket::new(10000, 4, 250, 0);
        let got: Vec<bool> = (0..6).map(|_| b.take(10)).collect();
        assert_eq!(got, [true, true, true, true, false, false]);
        assert!(!b.take(10 + 249));
        assert!(b.take(10 + 250));
    }
}
