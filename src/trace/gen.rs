//! Scenario generators (`fwverify gen`): port scans, SYN floods, port-knock sequences,
//! ping bursts, many-source traffic and a mixed workload, written as scenario CSV that
//! `check --scenario` reads back.
//!
//! Rows are produced one at a time by [`Rows`], an iterator with O(1) state: a 10 M-row
//! scan never builds a `Vec`. A random scan order is a keyed bijection of the port index
//! (not a shuffled list), and every random choice comes from [`SplitMix64`] seeded by
//! [`Common::seed`], which the CSV header records, so a file can be regenerated exactly.
//!
//! ```
//! use fwverify::trace::gen::{Common, Kind, Spec};
//! let spec = Spec { kind: Kind::IcmpBurst { count: 3, interval_ns: 100_000_000 }, common: Common::default() };
//! let mut out = Vec::new();
//! fwverify::trace::gen::write_csv(&spec, &mut out).unwrap();
//! let text = String::from_utf8(out).unwrap();
//! assert!(text.contains("\n0.2,100.1.2.3,192.0.2.1,icmp,,,,8,3,eth0,,\n"));
//! ```

use std::fmt;
use std::io::{self, Write};
use std::net::IpAddr;

use super::{IfaceBuf, Row};
use crate::packet::{proto, FlagLetters, Packet};
use crate::sim::Verdict;

/// The header row of generated scenarios (a subset of [`super::csv::COLUMNS`]).
pub const HEADER: &str = "time,src,dst,proto,sport,dport,flags,icmp_type,icmp_id,iface,expect,note";

/// SplitMix64 (Steele, Lea and Flood, 2014). Written out rather than taken from a crate
/// so that its stream can never change under us: a seed printed in a scenario header
/// regenerates the same file with any later fwverify.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (Lemire's multiply-shift; `n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u16, hi: u16) -> u16 {
        lo + self.below(hi as u64 - lo as u64 + 1) as u16
    }
}

/// A rate in packets per second, kept exactly as nano-packets per second so that row
/// times are computed in integers (no drift over millions of rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    nano: u64,
}

impl Rate {
    /// Parses `100`, `0.5` or `2500.25` packets per second; `None` for zero or junk.
    pub fn parse(s: &str) -> Option<Rate> {
        let nano = super::csv::parse_seconds(s)?;
        (nano > 0).then_some(Rate { nano })
    }
    /// `n` packets per second.
    pub fn per_second(n: u64) -> Rate {
        Rate { nano: n.max(1) * 1_000_000_000 }
    }
    /// Nanoseconds from the first packet to packet `i` (0-based).
    pub fn offset_ns(self, i: u64) -> u64 {
        (i as u128 * 1_000_000_000_000_000_000 / self.nano as u128) as u64
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Seconds(self.nano).fmt(f)
    }
}

/// Nanoseconds printed as decimal seconds, without trailing zeros (`1.5`, `0.004`, `3`).
#[derive(Clone, Copy, Debug)]
pub struct Seconds(pub u64);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, mut ns) = (self.0 / 1_000_000_000, self.0 % 1_000_000_000);
        if ns == 0 {
            return write!(f, "{s}");
        }
        let mut digits = 9;
        while ns % 10 == 0 {
            ns /= 10;
            digits -= 1;
        }
        write!(f, "{s}.{ns:0digits$}")
    }
}

/// A port list: ranges and single ports, e.g. `1-1024` or `22,80,8000-8080`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortList {
    ranges: Vec<(u16, u16)>,
    len: u64,
}

impl PortList {
    /// Parses `A-B` ranges and single ports separated by commas (`:` works as in iptables).
    pub fn parse(s: &str) -> Result<PortList, String> {
        let mut ranges = Vec::new();
        let mut len = 0u64;
        for part in s.split(',').map(str::trim) {
            let port = |p: &str| p.trim().parse::<u16>().map_err(|_| format!("bad port `{p}` in `{s}`: 0-65535"));
            let (lo, hi) = match part.split_once(['-', ':']) {
                Some((a, b)) => (port(a)?, port(b)?),
                None => (port(part)?, port(part)?),
            };
            if lo > hi {
                return Err(format!("reversed port range `{part}`: write the low port first"));
            }
            len += hi as u64 - lo as u64 + 1;
            ranges.push((lo, hi));
        }
        Ok(PortList { ranges, len })
    }
    /// Number of ports (repeats counted).
    pub fn len(&self) -> u64 {
        self.len
    }
    /// True when empty (never, for a parsed list).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The `i`-th port (0-based, `i < len`).
    pub fn get(&self, mut i: u64) -> u16 {
        for &(lo, hi) in &self.ranges {
            let n = hi as u64 - lo as u64 + 1;
            if i < n {
                return lo + i as u16;
            }
            i -= n;
        }
        unreachable!("port index past the end of the list")
    }
    /// Whether `p` is in the list.
    pub fn contains(&self, p: u16) -> bool {
        self.ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&p))
    }
}

impl fmt::Display for PortList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(lo, hi)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// Scan order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Ports in list order.
    Sequential,
    /// A seeded permutation of the list, different for each sweep.
    Random,
}

/// A deliberate knock mistake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mistake {
    /// A knock on a port outside the sequence between the first and second knocks.
    WrongPort,
    /// The first two knocks swapped.
    OutOfOrder,
    /// The second knock comes `window` + 1 s after the first.
    TooSlow,
}

impl Mistake {
    /// The option value.
    pub fn as_str(self) -> &'static str {
        match self {
            Mistake::WrongPort => "wrong-port",
            Mistake::OutOfOrder => "out-of-order",
            Mistake::TooSlow => "too-slow",
        }
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub enum Kind {
    /// TCP SYN to every port of `ports`, `repeat` times.
    Scan {
        /// Ports to probe.
        ports: PortList,
        /// Probes per second.
        rate: Rate,
        /// Probe order.
        order: Order,
        /// Number of sweeps.
        repeat: u64,
    },
    /// `count` SYNs to `dport` from `sources` consecutive addresses (round robin) with
    /// random source ports.
    SynFlood {
        /// Packets per second (all sources together).
        rate: Rate,
        /// Packets.
        count: u64,
        /// Distinct source addresses, starting at `--src`.
        sources: u64,
        /// Destination port.
        dport: u16,
    },
    /// A knock sequence (one SYN per port, `gap_ns` apart), then a SYN to `then`.
    Knock {
        /// The knock ports, in order.
        ports: Vec<u16>,
        /// Time between knocks.
        gap_ns: u64,
        /// A mistake to make, if any.
        mistake: Option<Mistake>,
        /// The port the knock opens.
        then: u16,
        /// The ruleset's knock window (`--seconds`), for `too-slow`.
        window_ns: u64,
    },
    /// `count` ICMP echo requests, `interval_ns` apart, ids 1, 2, …
    IcmpBurst {
        /// Packets.
        count: u64,
        /// Time between packets.
        interval_ns: u64,
    },
    /// One SYN to `dport` from each of `count` consecutive source addresses (to fill
    /// and evict recent tables).
    ManySources {
        /// Sources (= packets).
        count: u64,
        /// Destination port.
        dport: u16,
        /// Packets per second.
        rate: Rate,
    },
    /// Interleaved scanners, knockers, SYN flooders, pingers, web clients and UDP
    /// probes from a pool of `sources` addresses, aimed at the seed ruleset.
    Mix {
        /// Packets.
        count: u64,
        /// Packets per second.
        rate: Rate,
        /// Distinct source addresses, starting at `--src`.
        sources: u64,
    },
}

/// Options every generator shares.
#[derive(Clone, Debug)]
pub struct Common {
    /// Source address (the first one, when there are several).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Time of the first row, in nanoseconds.
    pub start_ns: u64,
    /// Interface the packets arrive on.
    pub iface: IfaceBuf,
    /// Expected verdict of the rows it applies to (see [`Kind`] docs in `gen --help`).
    pub expect: Option<Verdict>,
    /// Seed of the random parts.
    pub seed: u64,
}

impl Default for Common {
    fn default() -> Self {
        Common {
            src: IpAddr::from([100, 1, 2, 3]),
            dst: IpAddr::from([192, 0, 2, 1]),
            start_ns: 0,
            iface: IfaceBuf::new("eth0").expect("short name"),
            expect: None,
            seed: 0,
        }
    }
}

/// A generator: what, and with which common options.
#[derive(Clone, Debug)]
pub struct Spec {
    /// What to generate.
    pub kind: Kind,
    /// Shared options.
    pub common: Common,
}

/// Why a spec cannot be generated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

impl Spec {
    /// Checks the combinations the option parser cannot.
    pub fn validate(&self) -> Result<(), SpecError> {
        let e = |m: &str| Err(SpecError(m.to_string()));
        if self.common.src.is_ipv4() != self.common.dst.is_ipv4() {
            return e("--src and --dst are of different address families");
        }
        match &self.kind {
            Kind::Knock { ports, mistake, then, .. } => {
                if ports.is_empty() {
                    return e("--ports needs at least one knock port");
                }
                if *mistake == Some(Mistake::OutOfOrder) && ports.len() < 2 {
                    return e("--mistake out-of-order needs at least two knock ports");
                }
                if *mistake == Some(Mistake::TooSlow) && ports.len() < 2 {
                    return e("--mistake too-slow needs at least two knock ports");
                }
                if ports.contains(then) {
                    return e("--then is one of the knock ports");
                }
            }
            Kind::SynFlood { sources: 0, .. } | Kind::Mix { sources: 0, .. } => {
                return e("--sources must be at least 1")
            }
            Kind::Scan { repeat: 0, .. } => return e("--repeat must be at least 1"),
            _ => {}
        }
        Ok(())
    }

    /// Number of rows the spec produces.
    pub fn rows_total(&self) -> u64 {
        match &self.kind {
            Kind::Scan { ports, repeat, .. } => ports.len() * repeat,
            Kind::SynFlood { count, .. } | Kind::IcmpBurst { count, .. } => *count,
            Kind::ManySources { count, .. } | Kind::Mix { count, .. } => *count,
            Kind::Knock { ports, mistake, .. } => {
                ports.len() as u64 + 1 + u64::from(*mistake == Some(Mistake::WrongPort))
            }
        }
    }

    /// The `#` comment lines of the CSV (without the `# `): the command that regenerates
    /// the file, and what it holds.
    pub fn comments(&self) -> Vec<String> {
        let c = &self.common;
        let what = match &self.kind {
            Kind::Scan { ports, rate, order, repeat } => format!(
                "TCP SYN scan of ports {ports} ({} order, {repeat} sweep{}) at {rate} probes/s",
                if *order == Order::Random { "random" } else { "sequential" },
                if *repeat == 1 { "" } else { "s" }
            ),
            Kind::SynFlood { rate, count, sources, dport } => {
                format!("{count} SYNs to port {dport} from {sources} source(s) in turn at {rate} packets/s")
            }
            Kind::Knock { ports, gap_ns, mistake, then, window_ns } => {
                let list: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
                let m = match mistake {
                    None => String::new(),
                    Some(Mistake::WrongPort) => "; mistake: a knock on a wrong port after the first".into(),
                    Some(Mistake::OutOfOrder) => "; mistake: the first two knocks swapped".into(),
                    Some(Mistake::TooSlow) => {
                        format!("; mistake: the second knock {}s after the first", Seconds(window_ns + 1_000_000_000))
                    }
                };
                format!("knock {} every {}s, then a SYN to port {then}{m}", list.join(","), Seconds(*gap_ns))
            }
            Kind::IcmpBurst { count, interval_ns } => {
                format!("{count} ICMP echo requests {}s apart", Seconds(*interval_ns))
            }
            Kind::ManySources { count, dport, rate } => {
                format!("one SYN to port {dport} from each of {count} consecutive sources at {rate} packets/s")
            }
            Kind::Mix { count, rate, sources } => format!(
                "{count} packets at {rate}/s from {sources} source(s): scanners, knockers (1234,2345,3456 then 22), \
                 SYN flooders (port 80), pingers, web clients (80/443) and UDP probes"
            ),
        };
        let expect = match (&self.kind, c.expect) {
            (_, None) => String::new(),
            (Kind::Knock { .. }, Some(v)) => format!("; expect {} on the final SYN", v.as_str()),
            (_, Some(v)) => format!("; expect {} on every row", v.as_str()),
        };
        vec![
            format!("generated by fwverify {}: {} rows", env!("CARGO_PKG_VERSION"), self.rows_total()),
            format!("{what}{expect}"),
            format!("regenerate with: fwverify gen {self}"),
        ]
    }

    /// The rows, produced one at a time. `first_line` is the file line of the first row.
    pub fn rows(&self, first_line: u64) -> Rows<'_> {
        let mut rng = SplitMix64::new(self.common.seed);
        let wrong_port = match &self.kind {
            Kind::Knock { ports, then, .. } => loop {
                let p = rng.range(1024, 65535);
                if !ports.contains(&p) && p != *then {
                    break p;
                }
            },
            _ => 0,
        };
        let mut rows = Rows {
            spec: self,
            i: 0,
            total: self.rows_total(),
            line: first_line,
            rng,
            perm: Perm::new(0, 0),
            wrong_port,
            actors: [Actor::IDLE; ACTORS],
        };
        if let Kind::Scan { ports, order: Order::Random, .. } = &self.kind {
            let key = rows.rng.next_u64();
            rows.perm = Perm::new(ports.len(), key);
        }
        rows
    }
}

impl fmt::Display for Spec {
    /// The `gen` arguments that reproduce this spec, every option spelled out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Scan { ports, rate, order, repeat } => {
                let o = if *order == Order::Random { "random" } else { "sequential" };
                write!(f, "scan --ports {ports} --rate {rate} --order {o} --repeat {repeat}")?;
            }
            Kind::SynFlood { rate, count, sources, dport } => {
                write!(f, "synflood --rate {rate} --count {count} --sources {sources} --dport {dport}")?
            }
            Kind::Knock { ports, gap_ns, mistake, then, window_ns } => {
                let list: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
                write!(f, "knock --ports {} --gap {}", list.join(","), Seconds(*gap_ns))?;
                if let Some(m) = mistake {
                    write!(f, " --mistake {}", m.as_str())?;
                }
                write!(f, " --then {then} --window {}", Seconds(*window_ns))?;
            }
            Kind::IcmpBurst { count, interval_ns } => {
                write!(f, "icmp-burst --count {count} --interval {}", Seconds(*interval_ns))?
            }
            Kind::ManySources { count, dport, rate } => {
                write!(f, "many-sources --count {count} --dport {dport} --rate {rate}")?
            }
            Kind::Mix { count, rate, sources } => write!(f, "mix --count {count} --rate {rate} --sources {sources}")?,
        }
        let c = &self.common;
        write!(f, " --src {} --dst {} --start {} --iface {}", c.src, c.dst, Seconds(c.start_ns), c.iface.as_str())?;
        if let Some(v) = c.expect {
            write!(f, " --expect {}", v.as_str())?;
        }
        write!(f, " --seed {}", c.seed)
    }
}

/// A free-text note for a generated row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// Nothing to say.
    None,
    /// Knock number `n` (1-based).
    Knock(u8),
    /// A knock on a port outside the sequence.
    WrongKnock,
    /// The connection the knock should open.
    Then,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::None => Ok(()),
            Note::Knock(n) => write!(f, "knock {n}"),
            Note::WrongKnock => f.write_str("wrong port"),
            Note::Then => f.write_str("after the knock"),
        }
    }
}

/// A keyed bijection of `0..n`: a bijective mixer on `0..2^b` (multiplications by odd
/// numbers and xor-shifts, both invertible modulo 2^b), cycle-walked into `0..n`.
#[derive(Clone, Copy, Debug)]
struct Perm {
    n: u64,
    bits: u32,
    key: u64,
}

impl Perm {
    fn new(n: u64, key: u64) -> Perm {
        let bits = (64 - n.saturating_sub(1).leading_zeros()).max(1);
        Perm { n, bits, key }
    }
    fn mix(&self, mut x: u64) -> u64 {
        let mask = (1u64 << self.bits) - 1;
        let half = self.bits.div_ceil(2);
        for round in 0..3u64 {
            x = (x ^ (self.key >> (round * 16))) & mask;
            x = x.wrapping_mul((self.key >> (round * 8)) | 1) & mask;
            x ^= x >> half;
        }
        x
    }
    /// The image of `i` (`i < n`).
    fn get(&self, i: u64) -> u64 {
        let mut x = self.mix(i);
        while x >= self.n {
            x = self.mix(x);
        }
        x
    }
}

const ACTORS: usize = 64;

/// One simulated client of the mixed workload.
#[derive(Clone, Copy, Debug)]
struct Actor {
    role: Role,
    src: u64,
    step: u32,
    len: u32,
    port: u16,
    sport: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Idle,
    Scanner,
    Knocker,
    Flooder,
    Pinger,
    Web,
    Udp,
}

impl Actor {
    const IDLE: Actor = Actor { role: Role::Idle, src: 0, step: 0, len: 0, port: 0, sport: 0 };
}

/// The rows of a [`Spec`], one at a time (O(1) state).
pub struct Rows<'a> {
    spec: &'a Spec,
    i: u64,
    total: u64,
    line: u64,
    rng: SplitMix64,
    perm: Perm,
    wrong_port: u16,
    actors: [Actor; ACTORS],
}

/// One generated row and its note.
#[derive(Clone, Copy, Debug)]
pub struct GenRow {
    /// The row as `check` would read it back.
    pub row: Row,
    /// The `note` column.
    pub note: Note,
}

/// `base` + `k`, in the same family.
pub fn nth_addr(base: IpAddr, k: u64) -> IpAddr {
    match base {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a).wrapping_add(k as u32)).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a).wrapping_add(k as u128)).into()),
    }
}

impl Rows<'_> {
    fn packet(&self, src: IpAddr, pr: u8) -> Packet {
        let dst = self.spec.common.dst;
        Packet::ip(src, dst, pr, Packet::header_len(src, pr), 64)
    }

    fn tcp(&self, src: IpAddr, sport: u16, dport: u16, flags: u8) -> Packet {
        Packet { sport, dport, flags, ..self.packet(src, proto::TCP) }
    }

    fn icmp_echo(&self, src: IpAddr, id: u16) -> Packet {
        let pr = if src.is_ipv4() { proto::ICMP } else { proto::ICMPV6 };
        let ty = if src.is_ipv4() { 8 } else { 128 };
        Packet { icmp_type: ty, icmp_id: id, ..self.packet(src, pr) }
    }

    /// Row `i` of a kind whose rows do not depend on earlier ones: (offset, packet, note).
    fn make(&mut self, i: u64) -> (u64, Packet, Note) {
        let src = self.spec.common.src;
        match &self.spec.kind {
            Kind::Scan { ports, rate, order, .. } => {
                let n = ports.len();
                let (sweep, k) = (i / n, i % n);
                if *order == Order::Random && k == 0 && sweep > 0 {
                    self.perm = Perm::new(n, self.rng.next_u64());
                }
                let idx = if *order == Order::Random { self.perm.get(k) } else { k };
                let sport = 40000 + (i % 25000) as u16;
                (rate.offset_ns(i), self.tcp(src, sport, ports.get(idx), 0x02), Note::None)
            }
            Kind::SynFlood { rate, sources, dport, .. } => {
                let s = nth_addr(src, i % sources);
                let sport = self.rng.range(1024, 65535);
                (rate.offset_ns(i), self.tcp(s, sport, *dport, 0x02), Note::None)
            }
            Kind::ManySources { dport, rate, .. } => {
                let sport = self.rng.range(1024, 65535);
                (rate.offset_ns(i), self.tcp(nth_addr(src, i), sport, *dport, 0x02), Note::None)
            }
            Kind::IcmpBurst { interval_ns, .. } => (interval_ns * i, self.icmp_echo(src, (i + 1) as u16), Note::None),
            Kind::Knock { ports, gap_ns, mistake, then, window_ns } => {
                let n = ports.len() as u64;
                // Knock k (0-based) normally goes out at k·gap; the mistakes shift that.
                let wrong = *mistake == Some(Mistake::WrongPort);
                let slow = if *mistake == Some(Mistake::TooSlow) { window_ns + 1_000_000_000 } else { *gap_ns };
                let at = |k: u64| if k == 0 { 0 } else { slow + (k - 1) * gap_ns };
                if wrong && i == 1 {
                    let p = self.tcp(src, 43000 + i as u16, self.wrong_port, 0x02);
                    return (gap_ns / 2, p, Note::WrongKnock);
                }
                let k = if wrong && i > 1 { i - 1 } else { i };
                if k == n {
                    return (at(n), self.tcp(src, 50000, *then, 0x02), Note::Then);
                }
                let j = match (*mistake == Some(Mistake::OutOfOrder), k) {
                    (true, 0) => 1,
                    (true, 1) => 0,
                    _ => k,
                };
                let p = self.tcp(src, 43000 + i as u16, ports[j as usize], 0x02);
                (at(k), p, Note::Knock(j as u8 + 1))
            }
            Kind::Mix { rate, sources, .. } => {
                let (p, note) = self.mix(*sources);
                (rate.offset_ns(i), p, note)
            }
        }
    }

    /// The next packet of the mixed workload: a random actor sends its next packet and
    /// is replaced by a new one when done.
    fn mix(&mut self, sources: u64) -> (Packet, Note) {
        let a = self.rng.below(ACTORS as u64) as usize;
        if self.actors[a].step >= self.actors[a].len {
            self.actors[a] = self.spawn(sources);
        }
        let act = self.actors[a];
        self.actors[a].step += 1;
        let src = nth_addr(self.spec.common.src, act.src);
        let s = act.step;
        match act.role {
            Role::Scanner => (self.tcp(src, act.sport, act.port.wrapping_add(s as u16), 0x02), Note::None),
            Role::Knocker => {
                const KNOCK: [u16; 3] = [1234, 2345, 3456];
                match s {
                    0..=2 => (self.tcp(src, act.sport + s as u16, KNOCK[s as usize], 0x02), Note::Knock(s as u8 + 1)),
                    3 => (self.tcp(src, act.sport + 3, 22, 0x02), Note::Then),
                    4 => (self.tcp(src, act.sport + 3, 22, 0x10), Note::None),
                    _ => (self.tcp(src, act.sport + 3, 22, 0x11), Note::None),
                }
            }
            Role::Flooder => {
                let sport = self.rng.range(1024, 65535);
                (self.tcp(src, sport, 80, 0x02), Note::None)
            }
            Role::Pinger => (self.icmp_echo(src, act.sport.wrapping_add(s as u16)), Note::None),
            Role::Web => {
                let flags = match s {
                    0 => 0x02,
                    1 | 2 => 0x10,
                    3 => 0x18,
                    _ => 0x11,
                };
                (self.tcp(src, act.sport, act.port, flags), Note::None)
            }
            Role::Udp => {
                let p = Packet { sport: act.sport, dport: act.port, ..self.packet(src, proto::UDP) };
                (p, Note::None)
            }
            Role::Idle => unreachable!("spawned actors have a role"),
        }
    }

    fn spawn(&mut self, sources: u64) -> Actor {
        let src = self.rng.below(sources);
        let sport = self.rng.range(1024, 60000);
        let (role, len, port) = match self.rng.below(100) {
            0..=14 => (Role::Scanner, 1 + self.rng.below(200) as u32, self.rng.range(1, 60000)),
            15..=29 => (Role::Knocker, 6, 0),
            30..=44 => (Role::Flooder, 20 + self.rng.below(100) as u32, 80),
            45..=59 => (Role::Pinger, 1 + self.rng.below(8) as u32, 0),
            60..=89 => (Role::Web, 5, if self.rng.below(2) == 0 { 80 } else { 443 }),
            _ => (Role::Udp, 1 + self.rng.below(4) as u32, [53, 123, 161, 5060][self.rng.below(4) as usize]),
        };
        Actor { role, src, step: 0, len, port, sport }
    }
}

impl Iterator for Rows<'_> {
    type Item = GenRow;

    fn next(&mut self) -> Option<GenRow> {
        if self.i >= self.total {
            return None;
        }
        let i = self.i;
        let (offset, pkt, note) = self.make(i);
        self.i += 1;
        let c = &self.spec.common;
        let expect = match (&self.spec.kind, note) {
            (Kind::Knock { .. }, Note::Then) => c.expect,
            (Kind::Knock { .. }, _) => None,
            _ => c.expect,
        };
        let row = Row { row: i + 1, line: self.line + i, time_ns: c.start_ns + offset, pkt, iface: c.iface, expect };
        Some(GenRow { row, note })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.total - self.i) as usize;
        (left, Some(left))
    }
}

/// Writes one row in [`HEADER`]'s columns.
pub fn write_row(out: &mut impl Write, g: &GenRow) -> io::Result<()> {
    let p = &g.row.pkt;
    write!(out, "{},{},{},", Seconds(g.row.time_ns), p.src, p.dst)?;
    match p.proto {
        proto::TCP => write!(out, "tcp,{},{},{},,,", p.sport, p.dport, FlagLetters(p.flags))?,
        proto::UDP => write!(out, "udp,{},{},,,,", p.sport, p.dport)?,
        proto::ICMP => write!(out, "icmp,,,,{},{},", p.icmp_type, p.icmp_id)?,
        proto::ICMPV6 => write!(out, "icmpv6,,,,{},{},", p.icmp_type, p.icmp_id)?,
        n => write!(out, "{n},,,,,,")?,
    }
    out.write_all(g.row.iface.as_str().as_bytes())?;
    out.write_all(b",")?;
    if let Some(v) = g.row.expect {
        out.write_all(v.as_str().as_bytes())?;
    }
    writeln!(out, ",{}", g.note)
}

/// Writes the whole scenario (comments, header, rows) and returns the number of rows.
pub fn write_csv(spec: &Spec, out: &mut impl Write) -> io::Result<u64> {
    let comments = spec.comments();
    for c in &comments {
        writeln!(out, "# {c}")?;
    }
    writeln!(out, "{HEADER}")?;
    let mut n = 0;
    for g in spec.rows(comments.len() as u64 + 2) {
        write_row(out, &g)?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::csv::CsvTrace;

    fn spec(kind: Kind) -> Spec {
        Spec { kind, common: Common { seed: 7, ..Common::default() } }
    }

    /// Generates, reads back with the scenario reader, and compares row by row.
    fn roundtrip(s: &Spec) -> Vec<Row> {
        let mut out = Vec::new();
        let n = write_csv(s, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut t = CsvTrace::new("gen.csv", text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let mut back = Vec::new();
        while let Some(r) = t.next_row().unwrap_or_else(|e| panic!("{e}\n{text}")) {
            back.push(r);
        }
        let made: Vec<Row> = s.rows(s.comments().len() as u64 + 2).map(|g| g.row).collect();
        assert_eq!(back.len() as u64, n);
        for (a, b) in made.iter().zip(&back) {
            assert_eq!((a.row, a.line, a.time_ns, a.pkt, a.expect), (b.row, b.line, b.time_ns, b.pkt, b.expect));
        }
        back
    }

    #[test]
    fn seconds_print_exactly() {
        assert_eq!(Seconds(0).to_string(), "0");
        assert_eq!(Seconds(1_500_000_000).to_string(), "1.5");
        assert_eq!(Seconds(4_000_000).to_string(), "0.004");
        assert_eq!(Seconds(10_000_000_001).to_string(), "10.000000001");
        assert_eq!(Rate::parse("100").unwrap().offset_ns(3), 30_000_000);
        assert_eq!(Rate::parse("0.5").unwrap().offset_ns(1), 2_000_000_000);
        assert_eq!(Rate::parse("3").unwrap().offset_ns(1), 333_333_333);
        assert_eq!(Rate::parse("0"), None);
    }

    #[test]
    fn random_scan_is_a_seeded_permutation() {
        let s = spec(Kind::Scan {
            ports: PortList::parse("1-1000,2000").unwrap(),
            rate: Rate::per_second(100),
            order: Order::Random,
            repeat: 2,
        });
        let rows = roundtrip(&s);
        assert_eq!(rows.len(), 2002);
        for sweep in rows.chunks(1001) {
            let mut ports: Vec<u16> = sweep.iter().map(|r| r.pkt.dport).collect();
            assert_ne!(ports[..10], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
            ports.sort_unstable();
            let want: Vec<u16> = (1..=1000).chain([2000]).collect();
            assert_eq!(ports, want);
        }
        assert_ne!(rows[0].pkt.dport, rows[1001].pkt.dport, "each sweep has its own order");
        let again: Vec<u16> = s.rows(1).map(|g| g.row.pkt.dport).collect();
        assert_eq!(again, rows.iter().map(|r| r.pkt.dport).collect::<Vec<_>>());
        assert_eq!(rows[1].time_ns, 10_000_000);
    }

    #[test]
    fn knock_mistakes() {
        let knock = |mistake| {
            let s = spec(Kind::Knock {
                ports: vec![1234, 2345, 3456],
                gap_ns: 2_000_000_000,
                mistake,
                then: 22,
                window_ns: 10_000_000_000,
            });
            roundtrip(&s).iter().map(|r| (r.time_ns / 1_000_000, r.pkt.dport)).collect::<Vec<_>>()
        };
        assert_eq!(knock(None), [(0, 1234), (2000, 2345), (4000, 3456), (6000, 22)]);
        assert_eq!(knock(Some(Mistake::OutOfOrder)), [(0, 2345), (2000, 1234), (4000, 3456), (6000, 22)]);
        assert_eq!(knock(Some(Mistake::TooSlow)), [(0, 1234), (11000, 2345), (13000, 3456), (15000, 22)]);
        let w = knock(Some(Mistake::WrongPort));
        assert_eq!(w.len(), 5);
        assert_eq!((w[0], w[2], w[4]), ((0, 1234), (2000, 2345), (6000, 22)));
        assert_eq!(w[1].0, 1000);
        assert!(![1234, 2345, 3456, 22].contains(&w[1].1));
    }

    #[test]
    fn every_kind_reads_back() {
        let c = Common { expect: Some(Verdict::Drop), ..Common::default() };
        for kind in [
            Kind::SynFlood { rate: Rate::per_second(1000), count: 50, sources: 3, dport: 80 },
            Kind::IcmpBurst { count: 6, interval_ns: 100_000_000 },
            Kind::ManySources { count: 150, dport: 22, rate: Rate::per_second(100) },
            Kind::Mix { count: 5000, rate: Rate::per_second(10000), sources: 500 },
        ] {
            let s = Spec { kind, common: c.clone() };
            s.validate().unwrap();
            let rows = roundtrip(&s);
            assert!(rows.iter().all(|r| r.expect == Some(Verdict::Drop)));
        }
        let v6 = Spec {
            kind: Kind::IcmpBurst { count: 2, interval_ns: 1 },
            common: Common { src: "2001:db8::1".parse().unwrap(), dst: "2001:db8::2".parse().unwrap(), ..c },
        };
        assert_eq!(roundtrip(&v6)[1].pkt.icmp_type, 128);
    }

    #[test]
    fn header_names_the_command() {
        let s = spec(Kind::SynFlood { rate: Rate::per_second(100), count: 2, sources: 2, dport: 80 });
        let mut out = Vec::new();
        write_csv(&s, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "# regenerate with: fwverify gen synflood --rate 100 --count 2 --sources 2 --dport 80 \
                 --src 100.1.2.3 --dst 192.0.2.1 --start 0 --iface eth0 --seed 7\n"
            ),
            "{text}"
        );
        assert!(text.contains("\n0.01,100.1.2.4,192.0.2.1,tcp,"), "{text}");
    }
}
