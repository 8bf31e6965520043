//! Connection tracking as `-m state`/`-m conntrack` see it (SEMANTICS.md §5), with the
//! TCP state machine of `nf_conntrack_proto_tcp.c` (loose pickup on, windows assumed
//! valid: scenarios carry no sequence numbers).

use std::net::IpAddr;

use super::Jiffies;
use crate::model::matches::ctstate;
use crate::packet::{proto, Packet};

/// A direction-specific tuple key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    a: u16,
    b: u16,
}

/// An address as 128 bits plus a family bit, for hashing in few words.
pub(crate) fn addr_bits(a: IpAddr) -> (u128, bool) {
    match a {
        IpAddr::V4(v) => (u32::from(v) as u128, false),
        IpAddr::V6(v) => (u128::from(v), true),
    }
}

impl std::hash::Hash for Key {
    /// Five words instead of the derived field-by-field hash (which feeds `IpAddr`'s
    /// discriminant and each octet array separately): the key is hashed on every lookup.
    /// Equal keys give equal words, so this agrees with `Eq`.
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let (s, s6) = addr_bits(self.src);
        let (d, d6) = addr_bits(self.dst);
        h.write_u128(s);
        h.write_u128(d);
        h.write_u64(
            (self.proto as u64) << 32 | (self.a as u64) << 16 | self.b as u64 | (s6 as u64) << 40 | (d6 as u64) << 41,
        );
    }
}

/// TCP conntrack states (kernel order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum TcpState {
    None = 0,
    SynSent,
    SynRecv,
    Established,
    FinWait,
    CloseWait,
    LastAck,
    TimeWait,
    Close,
    SynSent2,
}

impl TcpState {
    /// Spelling in /proc/net/nf_conntrack.
    pub fn as_str(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::SynSent2 => "SYN_SENT2",
        }
    }
    fn timeout_secs(self) -> u64 {
        match self {
            TcpState::None => 0,
            TcpState::SynSent | TcpState::SynSent2 => 120,
            TcpState::SynRecv => 60,
            TcpState::Established => 432000,
            TcpState::FinWait => 120,
            TcpState::CloseWait => 60,
            TcpState::LastAck => 30,
            TcpState::TimeWait => 120,
            TcpState::Close => 10,
        }
    }
}

/// A cell of the transition table: a new state, invalid, or ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cell {
    S(TcpState),
    Iv,
    Ig,
}

use Cell::{Ig, Iv, S};
use TcpState as T;

const SS: Cell = S(T::SynSent);
const SR: Cell = S(T::SynRecv);
const ES: Cell = S(T::Established);
const FW: Cell = S(T::FinWait);
const CW: Cell = S(T::CloseWait);
const LA: Cell = S(T::LastAck);
const TW: Cell = S(T::TimeWait);
const CL: Cell = S(T::Close);
const S2: Cell = S(T::SynSent2);

/// `tcp_conntracks[dir][index][state]`, columns NONE SS SR ES FW CW LA TW CL S2.
const TABLE: [[[Cell; 10]; 6]; 2] = [
    [
        /* syn    */ [SS, SS, Ig, Ig, Ig, Ig, Ig, SS, SS, S2],
        /* synack */ [Iv, Iv, SR, Iv, Iv, Iv, Iv, Iv, Iv, SR],
        /* fin    */ [Iv, Iv, FW, FW, LA, LA, LA, TW, CL, Iv],
        /* ack    */ [ES, Iv, ES, ES, CW, CW, TW, TW, CL, Iv],
        /* rst    */ [Iv, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        /* none   */ [Iv, Iv, Iv, Iv, Iv, Iv, Iv, Iv, Iv, Iv],
    ],
    [
        /* syn    */ [Iv, S2, Iv, Iv, Iv, Iv, Iv, SS, Iv, S2],
        /* synack */ [Iv, SR, Ig, Ig, Ig, Ig, Ig, Ig, Ig, SR],
        /* fin    */ [Iv, Iv, FW, FW, LA, LA, LA, TW, CL, Iv],
        /* ack    */ [Iv, Ig, SR, ES, CW, CW, TW, TW, CL, Ig],
        /* rst    */ [Iv, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        /* none   */ [Iv, Iv, Iv, Iv, Iv, Iv, Iv, Iv, Iv, Iv],
    ],
];

const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;
const URG: u8 = 0x20;

/// `tcp_valid_flags`: the combinations conntrack accepts (PSH, ECE, CWR ignored).
pub fn tcp_flags_valid(flags: u8) -> bool {
    let f = flags & !(0x08 | 0x40 | 0x80);
    matches!(
        f,
        x if x == SYN || x == SYN | URG || x == SYN | ACK || x == RST || x == RST | ACK
            || x == FIN | ACK || x == FIN | ACK | URG || x == ACK || x == ACK | URG
    )
}

/// `get_conntrack_index`.
fn tcp_index(flags: u8) -> usize {
    if flags & RST != 0 {
        4
    } else if flags & SYN != 0 {
        if flags & ACK != 0 {
            1
        } else {
            0
        }
    } else if flags & FIN != 0 {
        2
    } else if flags & ACK != 0 {
        3
    } else {
        5
    }
}

/// One tracked connection.
#[derive(Clone, Debug)]
pub struct Conn {
    /// Original-direction key.
    pub orig: Key,
    /// TCP state (None for other protocols).
    pub tcp: TcpState,
    /// A reply has been seen.
    pub seen_reply: bool,
    /// ASSURED.
    pub assured: bool,
    /// Expiry time.
    pub expires: Jiffies,
    /// Connection mark.
    pub mark: u32,
    /// Created at (UDP stream detection).
    pub created: Jiffies,
    /// Picked up mid-stream (loose).
    pub picked_up: bool,
    /// A FIN was seen in [orig, reply].
    fin_seen: [bool; 2],
    /// Direction and index of the last packet (for RST reopen).
    last: (u8, u8),
    /// Entered in the table (confirmed and not killed since).
    in_table: bool,
    /// Source NAT binding of the original direction: the address and port (ICMP: the
    /// port is ignored) the original source is rewritten to (SNAT, MASQUERADE).
    pub nat_src: Option<(IpAddr, u16)>,
    /// Destination NAT binding of the original direction (DNAT, REDIRECT).
    pub nat_dst: Option<(IpAddr, u16)>,
}

impl Conn {
    /// The original tuple after NAT: what the reply tuple is the inverse of.
    pub fn translated(&self) -> Key {
        let mut k = self.orig;
        let ports = matches!(k.proto, proto::TCP | proto::UDP);
        if let Some((a, p)) = self.nat_src {
            k.src = a;
            if ports {
                k.a = p;
            }
        }
        if let Some((a, p)) = self.nat_dst {
            k.dst = a;
            if ports {
                k.b = p;
            }
        }
        k
    }

    /// The reply-direction key (the inverse of the translated original tuple).
    pub fn reply(&self) -> Key {
        Conntrack::reply_of(&self.translated())
    }

    /// `--ctstate SNAT`/`DNAT` bits: set when the binding changes the tuple.
    pub fn nat_bits(&self) -> u8 {
        let t = self.translated();
        let mut b = 0;
        if t.src != self.orig.src || t.a != self.orig.a {
            b |= ctstate::SNAT;
        }
        if t.dst != self.orig.dst || t.b != self.orig.b {
            b |= ctstate::DNAT;
        }
        b
    }
}

/// The hash of a tuple: FxHash of its words, mixed once more. The high 32 bits place it
/// (home slot in [`Index`], emulated kernel bucket), bits 8–23 are its tag.
fn tuple_hash(k: &Key) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    k.hash(&mut h);
    let x = h.finish();
    (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

/// The placing half of a tuple hash.
fn hi(h: u64) -> u32 {
    (h >> 32) as u32
}

/// The tag of a tuple hash in [`Index::tags`] (never 0, which marks an empty slot).
fn tag(h: u64) -> u16 {
    (h >> 8) as u16 | 1
}

/// Asks the CPU to bring the cache line at `p` in (x86_64; elsewhere nothing). `p` need
/// not point into an allocation: it is never dereferenced.
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and never faults, whatever the address; `sse` is
    // part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// `reciprocal_scale(hash, n)`: the kernel's map of a 32-bit hash onto `0..n`.
fn scale(h: u32, n: u64) -> u64 {
    (h as u64 * n) >> 32
}

/// Both tuples of every connection in the table: open addressing with linear probing, at
/// most three quarters full; per slot a 16-bit tag (0: empty), in an array of its own so
/// that a lookup that misses (every new connection) reads only the small tag array, and
/// the connection id × 2 + direction with the placing half of the tuple's hash. Keys are
/// compared with the connection's own copy, so the index holds no key: 10 bytes per slot
/// instead of the 49 of a map from `Key`.
#[derive(Clone, Debug)]
struct Index {
    tags: Vec<u16>,
    /// Per slot: the connection id × 2 + direction, and the placing half of the hash
    /// (one array: insertion and deletion write both).
    vals: Vec<(u32, u32)>,
    len: usize,
}

impl Index {
    fn new(bits: u32) -> Index {
        Index { tags: vec![0; 1 << bits], vals: vec![(0, 0); 1 << bits], len: 0 }
    }

    fn mask(&self) -> usize {
        self.tags.len() - 1
    }

    fn home(&self, hi: u32) -> usize {
        scale(hi, self.tags.len() as u64) as usize
    }

    fn find(&self, key: &Key, h: u64, conns: &[Conn]) -> Option<(u32, bool)> {
        let mask = self.mask();
        let t = tag(h);
        let mut i = self.home(hi(h));
        loop {
            let s = self.tags[i];
            if s == 0 {
                return None;
            }
            if s == t {
                let v = self.vals[i].0;
                let (id, reply) = (v >> 1, v & 1 != 0);
                let c = &conns[id as usize];
                if *key == if reply { c.reply() } else { c.orig } {
                    return Some((id, reply));
                }
            }
            i = (i + 1) & mask;
        }
    }

    fn insert(&mut self, h: u64, id: u32, reply: bool) {
        if 4 * (self.len + 1) > 3 * self.tags.len() {
            let bits = self.tags.len().trailing_zeros() + 1;
            let old = std::mem::replace(self, Index::new(bits));
            for (i, &t) in old.tags.iter().enumerate() {
                if t != 0 {
                    self.put(t, old.vals[i].1, old.vals[i].0);
                }
            }
            self.len = old.len;
        }
        self.put(tag(h), hi(h), id << 1 | reply as u32);
        self.len += 1;
    }

    fn put(&mut self, t: u16, hi: u32, v: u32) {
        let mask = self.mask();
        let mut i = self.home(hi);
        while self.tags[i] != 0 {
            i = (i + 1) & mask;
        }
        self.tags[i] = t;
        self.vals[i] = (v, hi);
    }

    /// Removes the entry of connection `id` in direction `reply` with hash `h`
    /// (backward-shift deletion: no tombstones).
    fn remove(&mut self, h: u64, id: u32, reply: bool) {
        let (t, v) = (tag(h), id << 1 | reply as u32);
        let mask = self.mask();
        let mut i = self.home(hi(h));
        while self.tags[i] != t || self.vals[i].0 != v {
            debug_assert!(self.tags[i] != 0, "connection {id} not indexed");
            i = (i + 1) & mask;
        }
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            if self.tags[j] == 0 {
                break;
            }
            let k = self.home(self.vals[j].1);
            // The entry at j may move into the hole at i unless its home lies cyclically
            // in (i, j].
            let stays = if i <= j { i < k && k <= j } else { i < k || k <= j };
            if !stays {
                self.tags[i] = self.tags[j];
                self.vals[i] = self.vals[j];
                i = j;
            }
        }
        self.tags[i] = 0;
        self.len -= 1;
    }

    /// Pushes onto `out` the connection ids of every tuple whose emulated kernel bucket
    /// (`reciprocal_scale(hash, buckets)`) is `b`.
    fn bucket(&self, b: u64, buckets: u64, out: &mut Vec<u32>) {
        // Hashes of bucket b: [ceil(b·2^32/n), ceil((b+1)·2^32/n)); their home slots are
        // a contiguous range, and a tuple sits at or after its home with no empty slot
        // between: scan from the first home to the first empty slot past the last one.
        let lo = ((b << 32).div_ceil(buckets)).min(u32::MAX as u64) as u32;
        let hi = ((((b + 1) << 32).div_ceil(buckets)) - 1).min(u32::MAX as u64) as u32;
        let mask = self.mask();
        let (first, last) = (self.home(lo), self.home(hi));
        let span = last.wrapping_sub(first) & mask;
        let mut i = first;
        for off in 0..self.tags.len() {
            if self.tags[i] == 0 {
                if off > span {
                    break;
                }
            } else if scale(self.vals[i].1, buckets) == b {
                out.push(self.vals[i].0 >> 1);
            }
            i = (i + 1) & mask;
        }
    }
}

/// The connection a packet belongs to while it traverses the hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtRef {
    /// Not tracked (INVALID).
    Invalid,
    /// `NOTRACK`/`CT --notrack` (UNTRACKED).
    Untracked,
    /// An existing connection, with the packet's direction (true = reply).
    Existing(u32, bool),
    /// A new, not yet confirmed connection (held in the pending slot).
    Pending,
    /// An ICMP error the host sends about a connection (REJECT, port unreachable).
    Related,
}

/// What `-m state` sees of a packet, as [`ctstate`] bits.
pub fn state_bits(r: CtRef, table: &Conntrack) -> u8 {
    match r {
        CtRef::Invalid => ctstate::INVALID,
        CtRef::Untracked => ctstate::UNTRACKED,
        CtRef::Pending => ctstate::NEW,
        CtRef::Related => ctstate::RELATED,
        CtRef::Existing(id, reply) => {
            let c = &table.conns[id as usize];
            if reply || c.seen_reply {
                ctstate::ESTABLISHED
            } else {
                ctstate::NEW
            }
        }
    }
}

/// The connection table.
#[derive(Clone, Debug)]
pub struct Conntrack {
    hz: u64,
    /// Both directions' keys of every connection in the table.
    index: Index,
    conns: Vec<Conn>,
    free: Vec<u32>,
    pending: Option<Conn>,
    /// The last pending connection dropped by [`Conntrack::abort`] (until the next
    /// packet): REJECT's and ICMP errors' replies are translated by its NAT binding.
    aborted: Option<Conn>,
    /// Next slot of `conns` the garbage collector looks at.
    gc_next: usize,
    /// `nf_conntrack_max`: connections the table holds at most.
    max: usize,
    /// `nf_conntrack_buckets`: hash buckets, for `early_drop`'s choice of victims.
    buckets: u64,
    /// Set when the last [`Conntrack::packet_in`] found the table full and could not
    /// make room: the kernel drops that packet (`nf_conntrack_in` returns NF_DROP).
    full: bool,
    /// Scratch list of `early_drop`'s candidates (kept to avoid allocating per packet).
    victims: Vec<u32>,
    /// Set once a NAT binding has been recorded ([`Conntrack::set_nat`]). Until then
    /// [`Conntrack::translate`] has nothing to do, and no two connections in the table
    /// share a tuple (a new connection's original tuple was looked up and not found, and
    /// without NAT its reply tuple is that tuple's inverse), which
    /// [`Conntrack::packet_in_near`] relies on.
    nat_bound: bool,
}

/// Slots of the connection table [`Conntrack::gc`] examines per call.
/// Two per packet outpace creation (at most one connection per packet and one per reply),
/// so the table stays within the live connections plus one sweep's lag.
const GC_SLOTS: usize = 2;

fn icmp_reply_type(t: u8, p: u8) -> Option<u8> {
    match (p, t) {
        (proto::ICMP, 8) => Some(0),
        (proto::ICMP, 13) => Some(14),
        (proto::ICMP, 15) => Some(16),
        (proto::ICMP, 17) => Some(18),
        (proto::ICMPV6, 128) => Some(129),
        (proto::ICMPV6, 139) => Some(140),
        _ => None,
    }
}

impl Conntrack {
    /// An empty table holding at most `max` connections (`nf_conntrack_max`) in
    /// `buckets` hash buckets (`nf_conntrack_buckets`).
    pub fn new(hz: u32, max: u32, buckets: u32) -> Conntrack {
        Conntrack {
            hz: hz as u64,
            index: Index::new(12),
            conns: Vec::with_capacity(2048),
            free: Vec::with_capacity(2048),
            pending: None,
            aborted: None,
            gc_next: 0,
            max: max as usize,
            buckets: buckets.max(1) as u64,
            full: false,
            victims: Vec::with_capacity(64),
            nat_bound: false,
        }
    }

    /// True when the last packet given to [`Conntrack::packet_in`] was dropped because
    /// the table was full (`nf_conntrack: table full, dropping packet`).
    pub fn table_full(&self) -> bool {
        self.full
    }

    /// `__nf_conntrack_alloc`'s test before a new connection is made for a packet of
    /// tuple `key`: with the table at `nf_conntrack_max`, `early_drop` must free room,
    /// or the packet is dropped. Returns false in that case.
    fn make_room(&mut self, key: &Key, now: Jiffies) -> bool {
        if self.len() < self.max {
            return true;
        }
        // `early_drop`: from the new tuple's bucket on, up to NF_CT_EVICTION_RANGE (8)
        // buckets; in the first bucket where any is found, every confirmed connection that
        // is not ASSURED is deleted (`early_drop_list`); expired ones met on the way are
        // collected without counting. The kernel's bucket hash has a random seed per
        // boot, so which connections go differs from run to run; here the hash is fixed.
        let mut b = scale(hi(tuple_hash(key)), self.buckets);
        for _ in 0..8 {
            let mut victims = std::mem::take(&mut self.victims);
            victims.clear();
            self.index.bucket(b, self.buckets, &mut victims);
            let mut drops = 0;
            for &id in &victims {
                let c = &self.conns[id as usize];
                if !c.in_table {
                    continue; // both tuples were in the bucket
                }
                if c.expires < now {
                    self.kill(id);
                } else if !c.assured {
                    self.kill(id);
                    drops += 1;
                }
            }
            self.victims = victims;
            if drops > 0 {
                return true;
            }
            b = (b + 1) % self.buckets;
        }
        false
    }

    /// Removes expired connections, a few slots per call: the kernel's `gc_worker`,
    /// spread over packets so that each step stays bounded. Lookups already treat an
    /// expired connection as absent (`packet_in` kills it when its tuple comes back), so
    /// collecting it changes no verdict; it keeps the table, and so memory, at the live
    /// connections (plus what the sweep has not reached yet) instead of every
    /// connection ever made. Time must not go backwards between calls.
    pub fn gc(&mut self, now: Jiffies) {
        let n = self.conns.len();
        if n == 0 {
            return;
        }
        for _ in 0..GC_SLOTS.min(n) {
            if self.gc_next >= n {
                self.gc_next = 0;
            }
            let id = self.gc_next;
            self.gc_next += 1;
            let c = &self.conns[id];
            if c.in_table && c.expires < now {
                self.kill(id as u32);
            }
        }
    }

    /// Connections in the table (expired ones not yet collected included).
    pub fn len(&self) -> usize {
        self.conns.len() - self.free.len()
    }

    /// Slots of the connection vector, live and free.
    pub fn slots(&self) -> usize {
        self.conns.len()
    }

    /// True when no connection is in the table.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key of a packet in its own direction.
    pub fn key(p: &Packet) -> Key {
        match p.proto {
            proto::TCP | proto::UDP => Key { src: p.src, dst: p.dst, proto: p.proto, a: p.sport, b: p.dport },
            proto::ICMP | proto::ICMPV6 => {
                Key { src: p.src, dst: p.dst, proto: p.proto, a: p.icmp_id, b: p.icmp_type as u16 }
            }
            _ => Key { src: p.src, dst: p.dst, proto: p.proto, a: 0, b: 0 },
        }
    }

    fn reply_key(k: &Key) -> Key {
        match k.proto {
            proto::TCP | proto::UDP => Key { src: k.dst, dst: k.src, proto: k.proto, a: k.b, b: k.a },
            proto::ICMP | proto::ICMPV6 => Key {
                src: k.dst,
                dst: k.src,
                proto: k.proto,
                a: k.a,
                b: icmp_reply_type(k.b as u8, k.proto).unwrap_or(255) as u16,
            },
            _ => Key { src: k.dst, dst: k.src, proto: k.proto, a: 0, b: 0 },
        }
    }

    /// A connection by id.
    pub fn conn(&self, id: u32) -> &Conn {
        &self.conns[id as usize]
    }

    /// The connection mark of the packet's connection.
    pub fn mark(&self, r: CtRef) -> Option<u32> {
        match r {
            CtRef::Existing(id, _) => Some(self.conns[id as usize].mark),
            CtRef::Pending => self.pending.as_ref().map(|c| c.mark),
            _ => None,
        }
    }

    /// Sets the connection mark.
    pub fn set_mark(&mut self, r: CtRef, mark: u32) {
        match r {
            CtRef::Existing(id, _) => self.conns[id as usize].mark = mark,
            CtRef::Pending => {
                if let Some(c) = self.pending.as_mut() {
                    c.mark = mark
                }
            }
            _ => {}
        }
    }

    fn kill(&mut self, id: u32) {
        let c = &mut self.conns[id as usize];
        debug_assert!(c.in_table, "connection {id} killed twice");
        c.in_table = false;
        let (o, r) = (tuple_hash(&c.orig), tuple_hash(&c.reply()));
        self.index.remove(o, id, false);
        self.index.remove(r, id, true);
        self.free.push(id);
    }

    /// Asks the CPU to bring in the index slot where `p`'s tuple is looked up, for a
    /// packet that [`Conntrack::packet_in`] will see soon: on a large table the lookup is
    /// a cache miss, and this lets it overlap with the work on the packets before it.
    /// No effect on the table.
    #[inline]
    pub fn prefetch(&self, p: &Packet) {
        let key = Self::key(p);
        let i = self.index.home(hi(tuple_hash(&key)));
        prefetch(self.index.tags.as_ptr().wrapping_add(i));
        prefetch(self.index.vals.as_ptr().wrapping_add(i));
    }

    /// `nf_conntrack_in`: finds or creates the packet's connection and runs the protocol
    /// state machine. A new connection stays pending until [`Conntrack::confirm`].
    pub fn packet_in(&mut self, p: &Packet, now: Jiffies) -> CtRef {
        self.packet_in_near(p, now, CtRef::Invalid)
    }

    /// [`Conntrack::packet_in`] for a packet the host sends in answer to a packet of
    /// connection `near`: its tuple is usually one of that connection's, and is then
    /// recognised without an index lookup. The answer is the lookup's: while no NAT
    /// binding has been recorded a tuple belongs to one connection only (see
    /// `nat_bound`), and a connection whose two tuples are equal is looked up.
    pub fn packet_in_near(&mut self, p: &Packet, now: Jiffies, near: CtRef) -> CtRef {
        self.pending = None;
        self.aborted = None;
        self.full = false;
        // `tcp_error` runs after the lookup (and, without an entry, after the allocation
        // below): an invalid segment is INVALID either way.
        let bad_flags = p.proto == proto::TCP && !tcp_flags_valid(p.flags);
        let key = Self::key(p);
        // The near connection's own tuple, in either direction; else the index.
        let known = match near {
            CtRef::Existing(id, _) if !self.nat_bound && self.conns[id as usize].in_table => {
                let c = &self.conns[id as usize];
                let r = c.reply();
                match (key == c.orig, key == r) {
                    (true, false) => Some((id, false)),
                    (false, true) => Some((id, true)),
                    _ => None,
                }
            }
            _ => None,
        };
        let found = known.or_else(|| self.index.find(&key, tuple_hash(&key), &self.conns));
        if let Some((id, reply)) = found {
            if self.conns[id as usize].expires < now {
                self.kill(id);
            } else if bad_flags {
                return CtRef::Invalid;
            } else {
                return self.existing(id, reply, p, now);
            }
        }
        if (p.proto == proto::ICMP && matches!(p.icmp_type, 3 | 4 | 5 | 11 | 12))
            || (p.proto == proto::ICMPV6 && matches!(p.icmp_type, 1..=4))
        {
            // An ICMP error quoting a tracked connection would be RELATED; scenarios
            // cannot quote one, so the error is not related to anything.
            return CtRef::Invalid;
        }
        if p.proto == proto::ICMPV6 && matches!(p.icmp_type, 130..=137 | 143) {
            // Multicast listener and neighbour discovery messages are never tracked
            // (`noct_valid_new` in nf_conntrack_proto_icmpv6.c).
            return CtRef::Untracked;
        }
        // `resolve_normal_ct` allocates the entry before the protocol's checks of a new
        // connection (`tcp_error`, `tcp_new`, ICMP's valid_new), so a full table drops
        // or makes room for any packet without one.
        if !self.make_room(&key, now) {
            self.full = true;
            return CtRef::Invalid;
        }
        if bad_flags {
            return CtRef::Invalid;
        }
        self.new_conn(key, p, now)
    }

    fn new_conn(&mut self, key: Key, p: &Packet, now: Jiffies) -> CtRef {
        let mut c = Conn {
            orig: key,
            tcp: TcpState::None,
            seen_reply: false,
            assured: false,
            expires: 0,
            mark: 0,
            created: now,
            picked_up: false,
            fin_seen: [false; 2],
            last: (0, tcp_index(p.flags) as u8),
            in_table: false,
            nat_src: None,
            nat_dst: None,
        };
        let timeout = match p.proto {
            proto::TCP => {
                let idx = tcp_index(p.flags);
                match TABLE[0][idx][0] {
                    S(T::SynSent) => {
                        c.tcp = T::SynSent;
                        T::SynSent.timeout_secs()
                    }
                    S(T::Established) => {
                        c.tcp = T::Established;
                        c.picked_up = true;
                        300
                    }
                    _ => return CtRef::Invalid,
                }
            }
            proto::UDP => 30,
            proto::ICMP | proto::ICMPV6 => {
                if icmp_reply_type(p.icmp_type, p.proto).is_none() {
                    return CtRef::Invalid;
                }
                30
            }
            _ => 600,
        };
        c.expires = now + timeout * self.hz;
        self.pending = Some(c);
        CtRef::Pending
    }

    fn existing(&mut self, id: u32, reply: bool, p: &Packet, now: Jiffies) -> CtRef {
        let hz = self.hz;
        let dir = usize::from(reply);
        let c = &mut self.conns[id as usize];
        match p.proto {
            proto::TCP => {
                let idx = tcp_index(p.flags);
                let old = c.tcp;
                let mut cell = TABLE[dir][idx][old as usize];
                if idx == 0 && dir == 0 && matches!(old, T::TimeWait | T::Close) {
                    // Reopen: when we saw a FIN, or the last packet in this direction was
                    // a RST, the old entry dies and the SYN starts a fresh connection.
                    if c.fin_seen[0] || c.fin_seen[1] || c.last == (0, 4) {
                        let key = c.orig;
                        self.kill(id);
                        return self.new_conn(key, p, now);
                    }
                    cell = Ig;
                }
                match cell {
                    Iv => return CtRef::Invalid,
                    Ig => {}
                    S(new) => {
                        if idx == 2 {
                            c.fin_seen[dir] = true;
                        }
                        if new == T::Established && old == T::SynRecv && dir == 0 {
                            c.assured = true;
                        }
                        c.tcp = new;
                        let mut t = new.timeout_secs();
                        if idx == 4 {
                            t = T::Close.timeout_secs();
                        } else if c.picked_up && !c.seen_reply && !reply {
                            t = t.min(300);
                        }
                        c.expires = now + t * hz;
                    }
                }
                c.last = (dir as u8, idx as u8);
                if !c.seen_reply && p.flags & RST != 0 {
                    // A RST before any reply: the connection never existed (`--RR`).
                    self.kill(id);
                    return CtRef::Existing(id, reply);
                }
                if reply && c.picked_up && !c.seen_reply {
                    c.assured = true;
                }
            }
            proto::UDP => {
                // `nf_conntrack_udp_packet`: once a reply has been seen (before this
                // packet: the first reply itself does not count), a packet more than 2 s
                // after the connection was created (`stream_ts`) makes it a stream:
                // ASSURED, with the stream timeout. Found by `fwverify conform`
                // (tests/data/conform/udp-assured.csv).
                let t = if c.seen_reply && now > c.created + 2 * hz {
                    c.assured = true;
                    120
                } else {
                    30
                };
                c.expires = now + t * hz;
            }
            proto::ICMP | proto::ICMPV6 => c.expires = now + 30 * hz,
            _ => c.expires = now + 600 * hz,
        }
        if reply {
            c.seen_reply = true;
        }
        CtRef::Existing(id, reply)
    }

    /// `nf_conntrack_confirm`: a pending connection whose packet got through is entered
    /// into the table.
    #[inline]
    pub fn confirm(&mut self, r: CtRef) -> CtRef {
        if r != CtRef::Pending {
            return r;
        }
        self.confirm_pending()
    }

    #[inline(never)]
    fn confirm_pending(&mut self) -> CtRef {
        let r = CtRef::Pending;
        let Some(mut c) = self.pending.take() else { return r };
        c.in_table = true;
        let (o, rk) = (tuple_hash(&c.orig), tuple_hash(&c.reply()));
        let id = match self.free.pop() {
            Some(id) => {
                self.conns[id as usize] = c;
                id
            }
            None => {
                self.conns.push(c);
                (self.conns.len() - 1) as u32
            }
        };
        self.index.insert(o, id, false);
        self.index.insert(rk, id, true);
        CtRef::Existing(id, false)
    }

    /// `nf_conntrack_tcp_set_closing` (REJECT `--reject-with tcp-reset`): a confirmed TCP
    /// connection moves to CLOSE with the CLOSE timeout, unless it is there already.
    pub fn set_closing(&mut self, r: CtRef, now: Jiffies) {
        let CtRef::Existing(id, _) = r else { return };
        let c = &mut self.conns[id as usize];
        if !c.in_table || c.orig.proto != proto::TCP || c.tcp == T::Close {
            return;
        }
        c.tcp = T::Close;
        c.expires = now + T::Close.timeout_secs() * self.hz;
    }

    /// Whether `p`'s tuple belongs to a live connection in the table (what conntrack's
    /// `icmp_error` looks up for an ICMP error quoting `p`).
    pub fn tracks(&self, p: &Packet, now: Jiffies) -> bool {
        let k = Self::key(p);
        self.index.find(&k, tuple_hash(&k), &self.conns).is_some_and(|(id, _)| self.conns[id as usize].expires >= now)
    }

    /// Records a NAT binding on the pending connection (the nat table runs only for the
    /// first packet of a connection): `src` for SNAT/MASQUERADE, else DNAT/REDIRECT.
    /// A second binding of the same kind (another nat hook of the same manip type) is
    /// ignored, as `nf_nat_setup_info` does once the manip is initialised.
    pub fn set_nat(&mut self, r: CtRef, src: bool, to: (IpAddr, u16)) {
        if r != CtRef::Pending {
            return;
        }
        if let Some(c) = self.pending.as_mut() {
            let slot = if src { &mut c.nat_src } else { &mut c.nat_dst };
            if slot.is_none() {
                *slot = Some(to);
                self.nat_bound = true;
            }
        }
    }

    /// `nf_nat_packet`: applies the packet's connection's NAT binding at a hook of the
    /// given manip type (`src_manip`: POSTROUTING and INPUT; else PREROUTING and OUTPUT).
    /// Original direction: the binding of that type; reply direction: the inverse of the
    /// other type's binding (a reply to a DNAT'd packet gets its source changed back).
    #[inline]
    pub fn translate(&self, r: CtRef, p: &mut Packet, src_manip: bool) {
        if self.nat_bound {
            self.translate_bound(r, p, src_manip);
        }
    }

    fn translate_bound(&self, r: CtRef, p: &mut Packet, src_manip: bool) {
        let c = match r {
            CtRef::Existing(id, _) => &self.conns[id as usize],
            CtRef::Pending => match self.pending.as_ref() {
                Some(c) => c,
                None => return,
            },
            _ => return,
        };
        c.translate(p, matches!(r, CtRef::Existing(_, true)), src_manip);
    }
}

impl Conn {
    /// [`Conntrack::translate`] for a packet of this connection in direction `reply`.
    pub fn translate(&self, p: &mut Packet, reply: bool, src_manip: bool) {
        let c = self;
        let ports = matches!(p.proto, proto::TCP | proto::UDP);
        let o = &c.orig;
        match (reply, src_manip) {
            (false, true) => {
                if let Some((a, port)) = c.nat_src {
                    p.src = a;
                    if ports {
                        p.sport = port;
                    }
                }
            }
            (false, false) => {
                if let Some((a, port)) = c.nat_dst {
                    p.dst = a;
                    if ports {
                        p.dport = port;
                    }
                }
            }
            (true, true) => {
                if c.nat_dst.is_some() {
                    p.src = o.dst;
                    if ports {
                        p.sport = o.b;
                    }
                }
            }
            (true, false) => {
                if c.nat_src.is_some() {
                    p.dst = o.src;
                    if ports {
                        p.dport = o.a;
                    }
                }
            }
        }
    }
}

impl Conntrack {
    /// Drops the pending connection (its packet was dropped).
    pub fn abort(&mut self) {
        if let Some(c) = self.pending.take() {
            self.aborted = Some(c);
        }
    }

    /// The connection of a packet that has gone through the hooks (`Pending` after it
    /// was dropped: the aborted connection), for the replies attached to it.
    pub fn conn_of(&self, r: CtRef) -> Option<&Conn> {
        match r {
            CtRef::Existing(id, _) => Some(&self.conns[id as usize]),
            CtRef::Pending => self.pending.as_ref().or(self.aborted.as_ref()),
            _ => None,
        }
    }

    /// Live connections (not expired at `now`), for reports.
    pub fn live(&self, now: Jiffies) -> impl Iterator<Item = &Conn> + '_ {
        self.conns.iter().filter(move |c| c.in_table && c.expires >= now)
    }

    /// Counts live connections whose original source, masked, equals `addr` masked
    /// (connlimit's `--connlimit-saddr`), or destination with `by_dst`, not in
    /// TIME_WAIT/CLOSE.
    pub fn count_matching(&self, f: impl Fn(&Key) -> bool, now: Jiffies) -> u32 {
        self.conns
            .iter()
            .filter(|c| c.in_table && c.expires >= now && !matches!(c.tcp, T::TimeWait | T::Close) && f(&c.orig))
            .count() as u32
    }

    /// The reply-direction key of an original key.
    pub fn reply_of(k: &Key) -> Key {
        Self::reply_key(k)
    }

    /// Ticks per second.
    pub fn hz(&self) -> u64 {
        self.hz
    }

    /// The pending (unconfirmed) connection.
    pub fn pending_conn(&self) -> Option<&Conn> {
        self.pending.as_ref()
    }

    /// Whether a confirmed connection with original key `k` is alive and not closing
    /// (for connlimit's garbage collection).
    pub fn is_open(&self, k: &Key, now: Jiffies) -> bool {
        match self.index.find(k, tuple_hash(k), &self.conns) {
            Some((id, false)) => {
                let c = &self.conns[id as usize];
                c.expires >= now && !matches!(c.tcp, T::TimeWait | T::Close)
            }
            _ => false,
        }
    }

    /// The pending connection's key (for a new packet).
    pub fn pending_key(&self) -> Option<Key> {
        self.pending.as_ref().map(|c| c.orig)
    }
}

impl Key {
    /// Protocol.
    pub fn proto(&self) -> u8 {
        self.proto
    }
    /// Source port (ICMP: id).
    pub fn sport(&self) -> u16 {
        self.a
    }
    /// Destination port (ICMP: type).
    pub fn dport(&self) -> u16 {
        self.b
    }
    /// Original source address.
    pub fn src(&self) -> IpAddr {
        self.src
    }
    /// Original destination address.
    pub fn dst(&self) -> IpAddr {
        self.dst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_syn(src: u32, sport: u16) -> Packet {
        Packet {
            src: IpAddr::from(src.to_be_bytes()),
            dst: IpAddr::from([192, 0, 2, 1]),
            proto: proto::TCP,
            sport,
            dport: 80,
            flags: SYN,
            icmp_type: 0,
            icmp_code: 0,
            icmp_id: 0,
            iface: crate::packet::IfaceId(0),
            len: 40,
            ttl: 64,
        }
    }

    /// The index finds both tuples of every connection and forgets killed ones, through
    /// growth and backward-shift deletions; `bucket` lists exactly the tuples of a bucket.
    #[test]
    fn index_agrees_with_a_map() {
        let mut ct = Conntrack::new(250, 1 << 20, 64);
        let mut live = std::collections::HashMap::new();
        let mut x = 0x1234_5678_9abc_def0u64;
        for step in 0..40_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = tcp_syn(0x6401_0000 | (x as u32 & 0x3fff), (x >> 20) as u16 | 1024);
            let k = Conntrack::key(&p);
            match live.get(&k) {
                Some(&id) if x.is_multiple_of(3) => {
                    ct.kill(id);
                    live.remove(&k);
                }
                Some(_) => {}
                None => {
                    assert_eq!(ct.packet_in(&p, step), CtRef::Pending);
                    let CtRef::Existing(id, false) = ct.confirm(CtRef::Pending) else { panic!() };
                    live.insert(k, id);
                }
            }
        }
        assert_eq!(ct.len(), live.len());
        assert_eq!(ct.index.len, 2 * live.len());
        for (k, &id) in &live {
            assert_eq!(ct.index.find(k, tuple_hash(k), &ct.conns), Some((id, false)));
            let r = Conntrack::reply_of(k);
            assert_eq!(ct.index.find(&r, tuple_hash(&r), &ct.conns), Some((id, true)));
        }
        let mut seen = 0;
        for b in 0..64 {
            let mut got = Vec::new();
            ct.index.bucket(b, 64, &mut got);
            got.sort_unstable();
            let mut want: Vec<u32> = live
                .iter()
                .flat_map(|(k, &id)| [(*k, id), (Conntrack::reply_of(k), id)])
                .filter(|(k, _)| scale(hi(tuple_hash(k)), 64) == b)
                .map(|(_, id)| id)
                .collect();
            want.sort_unstable();
            assert_eq!(got, want, "bucket {b}");
            seen += got.len();
        }
        assert_eq!(seen, 2 * live.len());
    }

    /// `packet_in_near` gives what `packet_in` gives, whatever connection it is pointed
    /// at: the same answer and the same table after it, for the host's answers to a
    /// connection (either direction), tuples of other connections, new tuples, expired
    /// connections and connections whose two tuples are equal (source = destination).
    #[test]
    fn a_near_connection_gives_the_lookups_answer() {
        let mut ct = Conntrack::new(250, 1 << 20, 64);
        let mut x = 0x0bad_cafe_1234_5678u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let snapshot = |ct: &Conntrack| {
            let conns: Vec<String> = ct.conns.iter().map(|c| format!("{c:?}")).collect();
            (conns, ct.free.clone(), ct.len(), ct.pending.as_ref().map(|c| format!("{c:?}")))
        };
        let (mut shortcuts, mut checked) = (0, 0);
        for step in 0..5_000u64 {
            let r = next();
            // A small space of addresses and ports, so that tuples meet; TCP, UDP, ICMP.
            let (a, b) = (0x6401_0000 | (r as u32 & 7), 0x6401_0000 | ((r >> 3) as u32 & 7));
            let mut p = tcp_syn(a, [1000, 1001, 80, 81][(r >> 6) as usize % 4]);
            p.dst = IpAddr::from(b.to_be_bytes());
            p.dport = 80 + (r >> 8) as u16 % 2;
            match (r >> 10) % 5 {
                0 => p.flags = ACK,
                1 => p.flags = SYN | ACK,
                2 => {
                    p.proto = proto::UDP;
                    p.flags = 0;
                }
                3 => {
                    p.proto = proto::ICMP;
                    p.flags = 0;
                    p.icmp_type = if r >> 13 & 1 == 0 { 8 } else { 0 };
                    p.icmp_id = (r >> 14) as u16 % 3;
                }
                _ => {}
            }
            let now = step * 50;
            if !ct.conns.is_empty() && r >> 20 & 1 == 0 {
                // Point at a connection: often the one whose answer this packet is.
                let id = (r >> 21) as u32 % ct.conns.len() as u32;
                let near = CtRef::Existing(id, r >> 40 & 1 == 0);
                if r >> 41 & 1 == 0 && ct.conns[id as usize].in_table {
                    let k = if r >> 42 & 1 == 0 { ct.conns[id as usize].reply() } else { ct.conns[id as usize].orig };
                    (p.src, p.dst, p.proto) = (k.src, k.dst, k.proto);
                    match k.proto {
                        proto::TCP | proto::UDP => (p.sport, p.dport) = (k.a, k.b),
                        _ => (p.icmp_id, p.icmp_type) = (k.a, k.b as u8),
                    }
                    shortcuts += 1;
                }
                let (mut plain, mut near_ct) = (ct.clone(), ct.clone());
                let want = plain.packet_in(&p, now);
                let got = near_ct.packet_in_near(&p, now, near);
                assert_eq!(got, want, "step {step}: {p:?} near {near:?}");
                assert!(snapshot(&plain) == snapshot(&near_ct), "step {step}: tables differ");
                checked += 1;
            }
            if ct.packet_in(&p, now) == CtRef::Pending {
                ct.confirm(CtRef::Pending);
            }
        }
        assert!(checked > 2_000 && shortcuts > 1_000, "{checked} checked, {shortcuts} answers");
    }

    /// At `nf_conntrack_max`, a new connection evicts the unassured connections of its
    /// bucket (`early_drop`); when the buckets it looks at hold only ASSURED ones, the
    /// packet is dropped and the table is unchanged.
    #[test]
    fn a_full_table_evicts_unassured_connections_or_drops() {
        let mut ct = Conntrack::new(250, 8, 1);
        for i in 0..8 {
            assert_eq!(ct.packet_in(&tcp_syn(0x6401_0000 + i, 1000), 0), CtRef::Pending);
            ct.confirm(CtRef::Pending);
        }
        assert_eq!(ct.len(), 8);
        // One bucket: every unassured connection goes, the new one comes in.
        assert_eq!(ct.packet_in(&tcp_syn(0x6401_0100, 1000), 1), CtRef::Pending);
        assert!(!ct.table_full());
        ct.confirm(CtRef::Pending);
        assert_eq!(ct.len(), 1);
        for c in &mut ct.conns {
            c.assured = true;
        }
        for i in 0..7 {
            assert_eq!(ct.packet_in(&tcp_syn(0x6402_0000 + i, 1000), 2), CtRef::Pending);
            ct.confirm(CtRef::Pending);
            let k = Conntrack::key(&tcp_syn(0x6402_0000 + i, 1000));
            let (id, _) = ct.index.find(&k, tuple_hash(&k), &ct.conns).unwrap();
            ct.conns[id as usize].assured = true;
        }
        assert_eq!(ct.len(), 8);
        assert_eq!(ct.packet_in(&tcp_syn(0x6403_0000, 1000), 3), CtRef::Invalid);
        assert!(ct.table_full());
        assert_eq!(ct.len(), 8);
        // An existing connection's packets still pass.
        assert!(matches!(ct.packet_in(&tcp_syn(0x6402_0000, 1000), 3), CtRef::Existing(..)));
        assert!(!ct.table_full());
    }

    #[test]
    fn flag_validity_matches_the_kernel_list() {
        for ok in [0x02, 0x22, 0x12, 0x04, 0x14, 0x11, 0x31, 0x10, 0x30, 0x0a, 0x18] {
            assert!(tcp_flags_valid(ok), "{ok:#x}");
        }
        for bad in [0x00, 0x01, 0x20, 0x03, 0x06, 0x32, 0x05, 0x3f] {
            assert!(!tcp_flags_valid(bad), "{bad:#x}");
        }
    }
}
