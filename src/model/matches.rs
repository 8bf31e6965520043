//! Typed `-m` matches. Each type's `Display` prints its options exactly as
//! `iptables-save` does (SEMANTICS.md §1.5), each option preceded by a space, without the
//! `-m NAME` part (see [`Match::name`]).

use std::fmt;
use std::net::IpAddr;

use super::net::{Family, IfaceName, PortRange, TcpFlags};
use super::print::quote;
use super::Neg;

/// One `-m` match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// `-m tcp`
    Tcp(Tcp),
    /// `-m udp`
    Udp(Udp),
    /// `-m icmp`
    Icmp(Icmp),
    /// `-m multiport`
    Multiport(Multiport),
    /// `-m state`
    State(State),
    /// `-m recent`
    Recent(Recent),
    /// `-m limit`
    Limit(Limit),
    /// `-m comment`
    Comment(Comment),
    /// `-m conntrack`
    Conntrack(Conntrack),
    /// `-m hashlimit`
    Hashlimit(Hashlimit),
    /// `-m mark` (packet mark)
    Mark(Mark),
    /// `-m connmark` (connection mark)
    Connmark(Mark),
    /// `-m length`
    Length(Length),
    /// `-m ttl` (IPv4)
    Ttl(Ttl),
    /// `-m addrtype`
    Addrtype(Addrtype),
    /// `-m mac`
    Mac(Mac),
    /// `-m connlimit`
    Connlimit(Connlimit),
    /// `-m set`
    Set(SetMatch),
    /// `-m owner`
    Owner(Owner),
    /// `-m tcpmss`
    Tcpmss(Tcpmss),
    /// `-m physdev`
    Physdev(Physdev),
    /// `-m pkttype`
    Pkttype(Pkttype),
    /// `-m statistic`
    Statistic(Statistic),
    /// `-m iprange`
    Iprange(Iprange),
    /// `-m icmp6` (IPv6)
    Icmp6(Icmp6),
    /// `-m string`
    String(StringMatch),
    /// A module fwverify does not model: kept with its raw options, printed back as given.
    Opaque(Opaque),
}

impl Match {
    /// The module name written after `-m`.
    pub fn name(&self) -> &str {
        match self {
            Match::Tcp(_) => "tcp",
            Match::Udp(_) => "udp",
            Match::Icmp(_) => "icmp",
            Match::Multiport(_) => "multiport",
            Match::State(_) => "state",
            Match::Recent(_) => "recent",
            Match::Limit(_) => "limit",
            Match::Comment(_) => "comment",
            Match::Conntrack(_) => "conntrack",
            Match::Hashlimit(_) => "hashlimit",
            Match::Mark(_) => "mark",
            Match::Connmark(_) => "connmark",
            Match::Length(_) => "length",
            Match::Ttl(t) if t.hl => "hl",
            Match::Ttl(_) => "ttl",
            Match::Addrtype(_) => "addrtype",
            Match::Mac(_) => "mac",
            Match::Connlimit(_) => "connlimit",
            Match::Set(_) => "set",
            Match::Owner(_) => "owner",
            Match::Tcpmss(_) => "tcpmss",
            Match::Physdev(_) => "physdev",
            Match::Pkttype(_) => "pkttype",
            Match::Statistic(_) => "statistic",
            Match::Iprange(_) => "iprange",
            Match::Icmp6(_) => "icmp6",
            Match::String(_) => "string",
            Match::Opaque(o) => &o.module,
        }
    }

    /// The options in canonical save form, each preceded by a space.
    pub fn options(&self) -> &dyn fmt::Display {
        match self {
            Match::Tcp(m) => m,
            Match::Udp(m) => m,
            Match::Icmp(m) => m,
            Match::Multiport(m) => m,
            Match::State(m) => m,
            Match::Recent(m) => m,
            Match::Limit(m) => m,
            Match::Comment(m) => m,
            Match::Conntrack(m) => m,
            Match::Hashlimit(m) => m,
            Match::Mark(m) => m,
            Match::Connmark(m) => m,
            Match::Length(m) => m,
            Match::Ttl(m) => m,
            Match::Addrtype(m) => m,
            Match::Mac(m) => m,
            Match::Connlimit(m) => m,
            Match::Set(m) => m,
            Match::Owner(m) => m,
            Match::Tcpmss(m) => m,
            Match::Physdev(m) => m,
            Match::Pkttype(m) => m,
            Match::Statistic(m) => m,
            Match::Iprange(m) => m,
            Match::Icmp6(m) => m,
            Match::String(m) => m,
            Match::Opaque(m) => m,
        }
    }
}

impl fmt::Display for Match {
    /// `-m NAME --opt …`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "-m {}{}", self.name(), self.options())
    }
}

/// Writes ` [!] --name` followed by ` value` when `value` is given.
pub(crate) fn opt(f: &mut fmt::Formatter<'_>, inv: bool, name: &str, value: impl fmt::Display) -> fmt::Result {
    if inv {
        f.write_str(" !")?;
    }
    write!(f, " --{name} {value}")
}

/// Writes ` [!] --name` (a flag without value).
pub(crate) fn flag(f: &mut fmt::Formatter<'_>, inv: bool, name: &str) -> fmt::Result {
    if inv {
        f.write_str(" !")?;
    }
    write!(f, " --{name}")
}

/// `--tcp-flags MASK COMP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlagTest {
    /// Flags examined.
    pub mask: TcpFlags,
    /// Flags that must be set among the examined ones.
    pub comp: TcpFlags,
}

impl FlagTest {
    /// `--syn` = `FIN,SYN,RST,ACK SYN`.
    pub const SYN: FlagTest = FlagTest { mask: TcpFlags(0x17), comp: TcpFlags(0x02) };

    /// `(flags & mask) == comp`.
    pub fn matches(&self, flags: u8) -> bool {
        flags & self.mask.0 == self.comp.0
    }
}

/// `-m tcp`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Tcp {
    /// `[!] --sport`
    pub sport: Option<Neg<PortRange>>,
    /// `[!] --dport`
    pub dport: Option<Neg<PortRange>>,
    /// `[!] --tcp-option N`
    pub option: Option<Neg<u8>>,
    /// `[!] --tcp-flags MASK COMP` (also from `--syn`)
    pub flags: Option<Neg<FlagTest>>,
}

/// Writes ` [!] --name RANGE` unless the range is `0:65535`: libxt_tcp and libxt_udp save a
/// port option only when it is not the full range, and then drop its `!` too (verified:
/// `! --sport 0:65535` saves as nothing). The model keeps it for matching.
fn port_opt(f: &mut fmt::Formatter<'_>, name: &str, p: &Option<Neg<PortRange>>) -> fmt::Result {
    match p {
        Some(p) if !p.val.is_full() => opt(f, p.inv, name, p.val),
        _ => Ok(()),
    }
}

impl fmt::Display for Tcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        port_opt(f, "sport", &self.sport)?;
        port_opt(f, "dport", &self.dport)?;
        if let Some(o) = &self.option {
            opt(f, o.inv, "tcp-option", o.val)?;
        }
        // libxt_tcp saves the flags when the mask is not empty or the test is inverted
        // (verified: `--tcp-flags NONE SYN` saves as nothing).
        if let Some(t) = self.flags.as_ref().filter(|t| t.inv || t.val.mask.0 != 0) {
            opt(f, t.inv, "tcp-flags", format_args!("{} {}", t.val.mask, t.val.comp))?;
        }
        Ok(())
    }
}

/// `-m udp`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Udp {
    /// `[!] --sport`
    pub sport: Option<Neg<PortRange>>,
    /// `[!] --dport`
    pub dport: Option<Neg<PortRange>>,
}

impl fmt::Display for Udp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        port_opt(f, "sport", &self.sport)?;
        port_opt(f, "dport", &self.dport)
    }
}

/// An ICMP type with a code range, as `--icmp-type` stores it. `any` is type 255 with
/// codes 0–255.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IcmpType {
    /// Type (255 = any).
    pub ty: u8,
    /// Lowest code.
    pub code_min: u8,
    /// Highest code.
    pub code_max: u8,
}

impl IcmpType {
    /// Whether a packet of this type and code matches (kernel `icmp_type_code_match`).
    pub fn matches(&self, ty: u8, code: u8) -> bool {
        (self.ty == 0xff || self.ty == ty) && code >= self.code_min && code <= self.code_max
    }
}

impl fmt::Display for IcmpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ty == 0xff {
            return f.write_str("any");
        }
        write!(f, "{}", self.ty)?;
        if self.code_min != 0 || self.code_max != 0xff {
            write!(f, "/{}", self.code_min)?;
        }
        Ok(())
    }
}

/// `-m icmp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Icmp {
    /// `[!] --icmp-type`; `None` only for a bare `-m icmp` (matches every ICMP packet).
    pub ty: Option<Neg<IcmpType>>,
}

impl fmt::Display for Icmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ty {
            Some(t) => opt(f, t.inv, "icmp-type", t.val),
            None => Ok(()),
        }
    }
}

/// Which ports `-m multiport` tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortSide {
    /// `--sports`
    Src,
    /// `--dports`
    Dst,
    /// `--ports` (source or destination)
    Either,
}

/// `-m multiport`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Multiport {
    /// Which ports are tested.
    pub side: PortSide,
    /// `!` before the option: none of the ports.
    pub inv: bool,
    /// Ports and ranges, at most 15 slots (a range takes two).
    pub ports: Vec<PortRange>,
}

impl Multiport {
    /// Whether a packet with these ports matches (before `!`).
    pub fn hits(&self, sport: u16, dport: u16) -> bool {
        self.ports.iter().any(|r| match self.side {
            PortSide::Src => r.contains(sport),
            PortSide::Dst => r.contains(dport),
            PortSide::Either => r.contains(sport) || r.contains(dport),
        })
    }
}

impl fmt::Display for Multiport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.side {
            PortSide::Src => "sports",
            PortSide::Dst => "dports",
            PortSide::Either => "ports",
        };
        if self.inv {
            f.write_str(" !")?;
        }
        write!(f, " --{name} ")?;
        for (i, p) in self.ports.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Conntrack states as bits, in the order iptables-save prints them.
pub mod ctstate {
    /// INVALID
    pub const INVALID: u8 = 1;
    /// NEW
    pub const NEW: u8 = 2;
    /// RELATED
    pub const RELATED: u8 = 4;
    /// ESTABLISHED
    pub const ESTABLISHED: u8 = 8;
    /// UNTRACKED
    pub const UNTRACKED: u8 = 16;
    /// SNAT (conntrack only)
    pub const SNAT: u8 = 32;
    /// DNAT (conntrack only)
    pub const DNAT: u8 = 64;
    /// Names and bits in save order.
    pub const NAMES: [(&str, u8); 7] = [
        ("INVALID", INVALID),
        ("NEW", NEW),
        ("RELATED", RELATED),
        ("ESTABLISHED", ESTABLISHED),
        ("UNTRACKED", UNTRACKED),
        ("SNAT", SNAT),
        ("DNAT", DNAT),
    ];

    /// Writes the comma list of `bits` in save order.
    pub fn write(f: &mut std::fmt::Formatter<'_>, bits: u8) -> std::fmt::Result {
        let mut first = true;
        for (n, b) in NAMES {
            if bits & b != 0 {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(n)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// `-m state --state LIST`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// `!`
    pub inv: bool,
    /// States as [`ctstate`] bits (never SNAT/DNAT).
    pub states: u8,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inv {
            f.write_str(" !")?;
        }
        f.write_str(" --state ")?;
        ctstate::write(f, self.states)
    }
}

/// What a `-m recent` rule does (SEMANTICS.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecentMode {
    /// `--set`
    Set,
    /// `--rcheck`
    Rcheck,
    /// `--update`
    Update,
    /// `--remove`
    Remove,
}

/// Which address `-m recent` records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecentSide {
    /// `--rsource` (default)
    Source,
    /// `--rdest`
    Dest,
}

/// `-m recent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recent {
    /// The action.
    pub mode: RecentMode,
    /// `!` before the action.
    pub inv: bool,
    /// `--seconds S` (1 … 2^32 − 1).
    pub seconds: Option<u32>,
    /// `--reap`
    pub reap: bool,
    /// `--hitcount N` (0 = none, ≤ 65535).
    pub hitcount: u32,
    /// `--rttl`
    pub rttl: bool,
    /// `--name` (default `DEFAULT`).
    pub name: String,
    /// `--mask` (default all ones).
    pub mask: IpAddr,
    /// `--rsource`/`--rdest`.
    pub side: RecentSide,
}

impl fmt::Display for Recent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match self.mode {
            RecentMode::Set => "set",
            RecentMode::Rcheck => "rcheck",
            RecentMode::Update => "update",
            RecentMode::Remove => "remove",
        };
        flag(f, self.inv, action)?;
        if let Some(s) = self.seconds {
            // iptables 1.8.9 prints the value as a signed int (SEMANTICS.md §1.5).
            write!(f, " --seconds {}", s as i32)?;
        }
        if self.reap {
            f.write_str(" --reap")?;
        }
        if self.hitcount != 0 {
            write!(f, " --hitcount {}", self.hitcount)?;
        }
        if self.rttl {
            f.write_str(" --rttl")?;
        }
        write!(f, " --name {} --mask {}", self.name, self.mask)?;
        f.write_str(match self.side {
            RecentSide::Source => " --rsource",
            RecentSide::Dest => " --rdest",
        })
    }
}

/// Rate units for printing limit/hashlimit rates (SEMANTICS.md §4.1).
pub(crate) fn write_rate(f: &mut fmt::Formatter<'_>, avg: u64, scale: u64) -> fmt::Result {
    let (n, name, _) = rate_unit(avg, scale);
    write!(f, "{n}/{name}")
}

/// The printed form of a rate with average interval `avg` (in `1/scale` s): the count,
/// the unit name and the unit's length in seconds (libxt_limit/libxt_hashlimit
/// `print_rate`).
pub(crate) fn rate_unit(avg: u64, scale: u64) -> (u64, &'static str, u64) {
    let units = [(86400, "day"), (3600, "hour"), (60, "min"), (1, "sec")];
    let mut k = 4;
    for (i, (secs, _)) in units.iter().enumerate().skip(1) {
        let u = scale * secs;
        if avg > u || (avg != 0 && u / avg < u % avg) {
            k = i;
            break;
        }
    }
    let (secs, name) = units[k - 1];
    (scale * secs / avg.max(1), name, secs)
}

/// `-m limit`: one token bucket per rule (SEMANTICS.md §4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Average interval between packets, in 1/10000 s (`XT_LIMIT_SCALE`).
    pub avg: u32,
    /// Bucket size in packets.
    pub burst: u32,
}

impl Limit {
    /// The userspace scale: `avg` counts 1/10000 s.
    pub const SCALE: u32 = 10000;
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(" --limit ")?;
        write_rate(f, self.avg as u64, Limit::SCALE as u64)?;
        if self.burst != 5 {
            write!(f, " --limit-burst {}", self.burst)?;
        }
        Ok(())
    }
}

/// `-m comment --comment TEXT` (≤ 255 bytes, longer text is truncated by iptables).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    /// The text.
    pub text: String,
}

impl fmt::Display for Comment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " --comment {}", quote(&self.text))
    }
}

/// Writes a comma list of the names in `names` whose bits are set in `bits`, in table order.
fn write_bits<T: Copy + Into<u32>>(f: &mut fmt::Formatter<'_>, names: &[(&str, T)], bits: u32) -> fmt::Result {
    let mut first = true;
    for &(n, b) in names {
        if bits & b.into() != 0 {
            if !first {
                f.write_str(",")?;
            }
            f.write_str(n)?;
            first = false;
        }
    }
    Ok(())
}

/// An address with its mask as `-m conntrack` keeps it: unlike `-s`/`-d`, the host bits
/// are **not** cleared (the kernel masks the packet's address and compares it with
/// `addr & mask`), and iptables-save prints the address as given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrMask {
    /// The address as written.
    pub addr: IpAddr,
    /// The mask (same family).
    pub mask: IpAddr,
}

impl AddrMask {
    /// Whether `ip` lies in the masked network (`(ip & mask) == (addr & mask)`).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, self.mask, ip) {
            (IpAddr::V4(a), IpAddr::V4(m), IpAddr::V4(i)) => u32::from(i) & u32::from(m) == u32::from(a) & u32::from(m),
            (IpAddr::V6(a), IpAddr::V6(m), IpAddr::V6(i)) => {
                u128::from(i) & u128::from(m) == u128::from(a) & u128::from(m)
            }
            _ => false,
        }
    }
}

impl fmt::Display for AddrMask {
    /// `ADDR` for a full mask, `ADDR/LEN` for a prefix, else `ADDR/MASK`
    /// (`xtables_ipmask_to_numeric`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (m, width) = match self.mask {
            IpAddr::V4(m) => (u32::from(m) as u128, 32),
            IpAddr::V6(m) => (u128::from(m), 128),
        };
        write!(f, "{}", self.addr)?;
        let ones = m.count_ones();
        let full = if width == 32 { u32::MAX as u128 } else { u128::MAX };
        let prefix = if ones == 0 { 0 } else { full & !((1u128 << (width - ones)) - 1) };
        if m == full {
            Ok(())
        } else if m == prefix {
            write!(f, "/{ones}")
        } else {
            write!(f, "/{}", self.mask)
        }
    }
}

/// `--ctstatus` bits (the kernel's `IPS_*` bits 0–3), in save order.
pub mod ctstatus {
    /// EXPECTED
    pub const EXPECTED: u8 = 1;
    /// SEEN_REPLY
    pub const SEEN_REPLY: u8 = 2;
    /// ASSURED
    pub const ASSURED: u8 = 4;
    /// CONFIRMED
    pub const CONFIRMED: u8 = 8;
    /// Names and bits in save order (`NONE` = no bit).
    pub const NAMES: [(&str, u8); 4] =
        [("EXPECTED", EXPECTED), ("SEEN_REPLY", SEEN_REPLY), ("ASSURED", ASSURED), ("CONFIRMED", CONFIRMED)];
}

/// `--ctdir`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtDir {
    /// `ORIGINAL`: packets in the direction of the first packet.
    Original,
    /// `REPLY`
    Reply,
}

/// `-m conntrack` (revision 3). Every test is optional; all given ones must hold.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Conntrack {
    /// `[!] --ctstate` as [`ctstate`] bits (SNAT/DNAT allowed).
    pub state: Option<Neg<u8>>,
    /// `[!] --ctproto` (layer-4 protocol number; 0 = `all`).
    pub proto: Option<Neg<u8>>,
    /// `[!] --ctorigsrc`
    pub orig_src: Option<Neg<AddrMask>>,
    /// `[!] --ctorigdst`
    pub orig_dst: Option<Neg<AddrMask>>,
    /// `[!] --ctreplsrc`
    pub repl_src: Option<Neg<AddrMask>>,
    /// `[!] --ctrepldst`
    pub repl_dst: Option<Neg<AddrMask>>,
    /// `[!] --ctorigsrcport` (reversed ranges kept; they never match)
    pub orig_src_port: Option<Neg<PortRange>>,
    /// `[!] --ctorigdstport`
    pub orig_dst_port: Option<Neg<PortRange>>,
    /// `[!] --ctreplsrcport`
    pub repl_src_port: Option<Neg<PortRange>>,
    /// `[!] --ctrepldstport`
    pub repl_dst_port: Option<Neg<PortRange>>,
    /// `[!] --ctstatus` as [`ctstatus`] bits (0 = `NONE`).
    pub status: Option<Neg<u8>>,
    /// `[!] --ctexpire MIN[:MAX]`: remaining lifetime in seconds, inclusive.
    pub expire: Option<Neg<(u32, u32)>>,
    /// `--ctdir`
    pub dir: Option<CtDir>,
}

impl Conntrack {
    /// True when the match tests the connection itself (protocol, tuples, status, expiry,
    /// direction), not only `--ctstate`. Without a connection the kernel evaluates only the
    /// state test (`conntrack_mt`).
    pub fn tests_connection(&self) -> bool {
        self.proto.is_some()
            || self.orig_src.is_some()
            || self.orig_dst.is_some()
            || self.repl_src.is_some()
            || self.repl_dst.is_some()
            || self.orig_src_port.is_some()
            || self.orig_dst_port.is_some()
            || self.repl_src_port.is_some()
            || self.repl_dst_port.is_some()
            || self.status.is_some()
            || self.expire.is_some()
            || self.dir.is_some()
    }
}

impl fmt::Display for Conntrack {
    /// Order of libxt_conntrack's `conntrack_dump` (SEMANTICS.md §1.5).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.state {
            if s.inv {
                f.write_str(" !")?;
            }
            f.write_str(" --ctstate ")?;
            ctstate::write(f, s.val)?;
        }
        if let Some(p) = &self.proto {
            opt(f, p.inv, "ctproto", p.val)?;
        }
        let addrs = [
            ("ctorigsrc", &self.orig_src),
            ("ctorigdst", &self.orig_dst),
            ("ctreplsrc", &self.repl_src),
            ("ctrepldst", &self.repl_dst),
        ];
        for (name, a) in addrs {
            if let Some(a) = a {
                opt(f, a.inv, name, a.val)?;
            }
        }
        let ports = [
            ("ctorigsrcport", &self.orig_src_port),
            ("ctorigdstport", &self.orig_dst_port),
            ("ctreplsrcport", &self.repl_src_port),
            ("ctrepldstport", &self.repl_dst_port),
        ];
        for (name, p) in ports {
            if let Some(p) = p {
                opt(f, p.inv, name, p.val)?;
            }
        }
        if let Some(s) = &self.status {
            if s.inv {
                f.write_str(" !")?;
            }
            f.write_str(" --ctstatus ")?;
            if s.val == 0 {
                f.write_str("NONE")?;
            } else {
                write_bits(f, &ctstatus::NAMES, s.val as u32)?;
            }
        }
        if let Some(e) = &self.expire {
            let (lo, hi) = e.val;
            if lo == hi {
                opt(f, e.inv, "ctexpire", lo)?;
            } else {
                opt(f, e.inv, "ctexpire", format_args!("{lo}:{hi}"))?;
            }
        }
        if let Some(d) = self.dir {
            f.write_str(match d {
                CtDir::Original => " --ctdir ORIGINAL",
                CtDir::Reply => " --ctdir REPLY",
            })?;
        }
        Ok(())
    }
}

/// `--hashlimit-mode` bits (the kernel's `XT_HASHLIMIT_HASH_*`).
pub mod hashmode {
    /// dstip
    pub const DSTIP: u8 = 1;
    /// dstport
    pub const DSTPORT: u8 = 2;
    /// srcip
    pub const SRCIP: u8 = 4;
    /// srcport
    pub const SRCPORT: u8 = 8;
    /// Names and bits in save order.
    pub const NAMES: [(&str, u8); 4] = [("srcip", SRCIP), ("srcport", SRCPORT), ("dstip", DSTIP), ("dstport", DSTPORT)];
}

/// `-m hashlimit` (revision 3): one token bucket per key in a named, shared table
/// (SEMANTICS.md §4.2). The fields mirror the kernel's `hashlimit_cfg3`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hashlimit {
    /// Family of the rule (the default masks are 32 or 128 bits and are not printed).
    pub family: Family,
    /// `--hashlimit-above` (or `! --hashlimit-upto`): match when over the limit.
    pub above: bool,
    /// Byte mode (`Nkb/s`): `avg` is a cost per byte unit instead of an interval.
    pub bytes: bool,
    /// Packet mode: average interval between packets in 1/1 000 000 s (divided by the
    /// rate unit in seconds with `--hashlimit-rate-match`). Byte mode: libxt_hashlimit's
    /// cost (`u32::MAX / (bytes/16 + 1)`).
    pub avg: u64,
    /// Packet mode: bucket size in packets (default 5). Byte mode: bucket size in
    /// multiples of the byte rate, 0 when no burst was given.
    pub burst: u64,
    /// [`hashmode`] bits; 0 = one bucket for every packet.
    pub mode: u8,
    /// Table name (`/proc/net/ipt_hashlimit/NAME`), at most 254 bytes.
    pub name: String,
    /// `--hashlimit-htable-size` buckets (0 = kernel default).
    pub size: u32,
    /// `--hashlimit-htable-max` entries (0 = kernel default).
    pub max: u32,
    /// `--hashlimit-htable-gcinterval` in ms (default 1000).
    pub gc_interval: u32,
    /// `--hashlimit-htable-expire` in ms (default: the rate unit in ms).
    pub expire: u32,
    /// `--hashlimit-srcmask` prefix length.
    pub srcmask: u8,
    /// `--hashlimit-dstmask` prefix length.
    pub dstmask: u8,
    /// `--hashlimit-rate-match`
    pub rate_match: bool,
    /// `--hashlimit-rate-interval` in seconds (only with rate-match; 0 otherwise).
    pub interval: u32,
}

impl Hashlimit {
    /// The userspace scale: packet-mode `avg` counts 1/1 000 000 s.
    pub const SCALE: u64 = 1_000_000;
    /// Byte-mode shift (`XT_HASHLIMIT_BYTE_SHIFT`).
    pub const BYTE_SHIFT: u32 = 4;

    /// libxt_hashlimit's `cost_to_bytes`: the byte rate a byte-mode cost stands for.
    pub fn cost_to_bytes(cost: u64) -> u64 {
        let r = (u32::MAX as u64).checked_div(cost).unwrap_or(u32::MAX as u64);
        r.wrapping_sub(1) << Self::BYTE_SHIFT
    }

    /// libxt_hashlimit's `bytes_to_cost`; `None` where iptables would divide by zero.
    pub fn bytes_to_cost(bytes: u64) -> Option<u64> {
        let r = (bytes >> Self::BYTE_SHIFT) as u32;
        r.checked_add(1).map(|d| (u32::MAX / d) as u64)
    }

    /// Default prefix length of the family (not printed).
    fn default_mask(&self) -> u8 {
        if self.family == Family::V4 {
            32
        } else {
            128
        }
    }
}

impl fmt::Display for Hashlimit {
    /// libxt_hashlimit `hashlimit_mt_save` (SEMANTICS.md §1.5).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.above { " --hashlimit-above" } else { " --hashlimit-upto" })?;
        // `quantum`: the default expiry (ms) of the printed rate; only a different
        // expiry is printed.
        let quantum = if self.bytes {
            const UNITS: [(u64, &str); 3] = [(1024 * 1024, "m"), (1024, "k"), (1, "")];
            let mut r = Hashlimit::cost_to_bytes(self.avg);
            // `r & ~(thresh - 1)` is computed with a 32-bit mask in C.
            let (t, u) = UNITS[..2]
                .iter()
                .copied()
                .find(|&(t, _)| r >= t && Hashlimit::bytes_to_cost(r & ((!(t as u32 - 1)) as u64)) == Some(self.avg))
                .unwrap_or(UNITS[2]);
            write!(f, " {}{u}b/s", r / t)?;
            if self.burst == 0 {
                15_000
            } else {
                r = r.wrapping_mul(self.burst);
                let (t, u) = UNITS[..2].iter().copied().find(|&(t, _)| r >= t).unwrap_or(UNITS[2]);
                write!(f, " --hashlimit-burst {}{u}b", r / t)?;
                60_000
            }
        } else {
            let (n, unit, secs) = rate_unit(self.avg, Hashlimit::SCALE);
            write!(f, " {n}/{unit} --hashlimit-burst {}", self.burst)?;
            secs * 1000
        };
        if self.mode != 0 {
            f.write_str(" --hashlimit-mode ")?;
            write_bits(f, &hashmode::NAMES, self.mode as u32)?;
        }
        // Printed with `%s`, not quoted.
        write!(f, " --hashlimit-name {}", self.name)?;
        if self.size != 0 {
            write!(f, " --hashlimit-htable-size {}", self.size)?;
        }
        if self.max != 0 {
            write!(f, " --hashlimit-htable-max {}", self.max)?;
        }
        if self.gc_interval != 1000 {
            write!(f, " --hashlimit-htable-gcinterval {}", self.gc_interval)?;
        }
        if self.expire as u64 != quantum {
            write!(f, " --hashlimit-htable-expire {}", self.expire)?;
        }
        if self.srcmask != self.default_mask() {
            write!(f, " --hashlimit-srcmask {}", self.srcmask)?;
        }
        if self.dstmask != self.default_mask() {
            write!(f, " --hashlimit-dstmask {}", self.dstmask)?;
        }
        if self.rate_match {
            f.write_str(" --hashlimit-rate-match")?;
            if self.interval != 1 {
                write!(f, " --hashlimit-rate-interval {}", self.interval)?;
            }
        }
        Ok(())
    }
}

/// `-m mark` / `-m connmark`: `(mark & mask) == value`, xor `!`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mark {
    /// `!`
    pub inv: bool,
    /// Value compared (kept as given, bits outside the mask included).
    pub value: u32,
    /// Mask (default `0xffffffff`).
    pub mask: u32,
}

impl Mark {
    /// Whether a packet (or connection) mark matches, `!` applied.
    pub fn matches(&self, mark: u32) -> bool {
        (mark & self.mask == self.value) != self.inv
    }
}

impl fmt::Display for Mark {
    /// `--mark 0xV` or `--mark 0xV/0xM`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mask == u32::MAX {
            opt(f, self.inv, "mark", format_args!("{:#x}", self.value))
        } else {
            opt(f, self.inv, "mark", format_args!("{:#x}/{:#x}", self.value, self.mask))
        }
    }
}

/// `-m length`: IP packet length (IPv4 total length) within `min..=max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Length {
    /// `!`
    pub inv: bool,
    /// Lowest length.
    pub min: u16,
    /// Highest length (reversed ranges are kept and never match).
    pub max: u16,
}

impl fmt::Display for Length {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            opt(f, self.inv, "length", self.min)
        } else {
            opt(f, self.inv, "length", format_args!("{}:{}", self.min, self.max))
        }
    }
}

/// The comparison of `-m ttl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TtlOp {
    /// `--ttl-eq`
    Eq,
    /// `! --ttl-eq`
    Ne,
    /// `--ttl-lt` (strictly less)
    Lt,
    /// `--ttl-gt` (strictly greater)
    Gt,
}

/// `-m ttl` (IPv4), or `-m hl` (IPv6: the hop limit, the same test of the same header
/// field; `--hl-eq`, `--hl-lt`, `--hl-gt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ttl {
    /// The comparison.
    pub op: TtlOp,
    /// The value.
    pub value: u8,
    /// Written as `-m hl` (an ip6tables ruleset).
    pub hl: bool,
}

impl Ttl {
    /// Whether a packet with this TTL matches.
    pub fn matches(&self, ttl: u8) -> bool {
        match self.op {
            TtlOp::Eq => ttl == self.value,
            TtlOp::Ne => ttl != self.value,
            TtlOp::Lt => ttl < self.value,
            TtlOp::Gt => ttl > self.value,
        }
    }
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [eq, lt, gt] = if self.hl { ["hl-eq", "hl-lt", "hl-gt"] } else { ["ttl-eq", "ttl-lt", "ttl-gt"] };
        match self.op {
            TtlOp::Eq => opt(f, false, eq, self.value),
            TtlOp::Ne => opt(f, true, eq, self.value),
            TtlOp::Lt => opt(f, false, lt, self.value),
            TtlOp::Gt => opt(f, false, gt, self.value),
        }
    }
}

/// Route types of `-m addrtype` as bits (`1 << RTN_*`), in save order.
pub mod addrtype {
    /// Names and bits in save order.
    pub const NAMES: [(&str, u16); 12] = [
        ("UNSPEC", 1 << 0),
        ("UNICAST", 1 << 1),
        ("LOCAL", 1 << 2),
        ("BROADCAST", 1 << 3),
        ("ANYCAST", 1 << 4),
        ("MULTICAST", 1 << 5),
        ("BLACKHOLE", 1 << 6),
        ("UNREACHABLE", 1 << 7),
        ("PROHIBIT", 1 << 8),
        ("THROW", 1 << 9),
        ("NAT", 1 << 10),
        ("XRESOLVE", 1 << 11),
    ];
}

/// Which device `-m addrtype` restricts the route lookup to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitIface {
    /// `--limit-iface-in`
    In,
    /// `--limit-iface-out`
    Out,
}

/// `-m addrtype` (revision 1): the route type of the source and/or destination address
/// is one of the listed types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Addrtype {
    /// `[!] --src-type` as [`addrtype`] bits.
    pub src: Option<Neg<u16>>,
    /// `[!] --dst-type` as [`addrtype`] bits.
    pub dst: Option<Neg<u16>>,
    /// `--limit-iface-in|out`
    pub limit_iface: Option<LimitIface>,
}

impl fmt::Display for Addrtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, t) in [("src-type", &self.src), ("dst-type", &self.dst)] {
            if let Some(t) = t {
                if t.inv {
                    f.write_str(" !")?;
                }
                write!(f, " --{name} ")?;
                write_bits(f, &addrtype::NAMES, t.val as u32)?;
            }
        }
        match self.limit_iface {
            Some(LimitIface::In) => f.write_str(" --limit-iface-in"),
            Some(LimitIface::Out) => f.write_str(" --limit-iface-out"),
            None => Ok(()),
        }
    }
}

/// `-m mac --mac-source`: Ethernet source address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mac {
    /// `!`
    pub inv: bool,
    /// The address.
    pub addr: [u8; 6],
}

impl fmt::Display for Mac {
    /// Lowercase, two hex digits per byte.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.addr;
        opt(
            f,
            self.inv,
            "mac-source",
            format_args!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", a[0], a[1], a[2], a[3], a[4], a[5]),
        )
    }
}

/// `-m connlimit`: number of tracked connections sharing the masked source (or
/// destination) address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Connlimit {
    /// `--connlimit-above` (true: count > limit) or `--connlimit-upto` (count ≤ limit).
    pub above: bool,
    /// The limit.
    pub limit: u32,
    /// Prefix length of the grouping mask (default 32 / 128).
    pub mask: u8,
    /// `--connlimit-daddr` (group by destination) instead of `--connlimit-saddr`.
    pub daddr: bool,
}

impl fmt::Display for Connlimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.above { "above" } else { "upto" };
        let side = if self.daddr { "daddr" } else { "saddr" };
        write!(f, " --connlimit-{kind} {} --connlimit-mask {} --connlimit-{side}", self.limit, self.mask)
    }
}

/// One dimension of `--match-set NAME src,dst…`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetDir {
    /// `src`
    Src,
    /// `dst`
    Dst,
}

/// A counter comparison of `-m set` (`--packets-gt 5`, `! --bytes-eq 0`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CounterOp {
    /// `--X-eq`
    Eq,
    /// `! --X-eq`
    Ne,
    /// `--X-lt`
    Lt,
    /// `--X-gt`
    Gt,
}

/// `-m set` (revision 4): ipset membership. The set lives in the kernel and must exist
/// when the rules are loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetMatch {
    /// `!` before `--match-set`.
    pub inv: bool,
    /// Set name (≤ 31 bytes).
    pub name: String,
    /// Which address/port each dimension of the set is taken from (1–6 entries).
    pub dirs: Vec<SetDir>,
    /// `--return-nomatch`
    pub return_nomatch: bool,
    /// `! --update-counters`
    pub skip_counters: bool,
    /// `! --update-subcounters`
    pub skip_subcounters: bool,
    /// `--packets-eq|lt|gt N`
    pub packets: Option<(CounterOp, u64)>,
    /// `--bytes-eq|lt|gt N`
    pub bytes: Option<(CounterOp, u64)>,
}

impl fmt::Display for SetMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inv {
            f.write_str(" !")?;
        }
        write!(f, " --match-set {} ", self.name)?;
        for (i, d) in self.dirs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(match d {
                SetDir::Src => "src",
                SetDir::Dst => "dst",
            })?;
        }
        if self.return_nomatch {
            f.write_str(" --return-nomatch")?;
        }
        if self.skip_counters {
            f.write_str(" ! --update-counters")?;
        }
        if self.skip_subcounters {
            f.write_str(" ! --update-subcounters")?;
        }
        for (what, c) in [("packets", &self.packets), ("bytes", &self.bytes)] {
            if let Some((op, n)) = c {
                let (inv, suffix) = match op {
                    CounterOp::Eq => (false, "eq"),
                    CounterOp::Ne => (true, "eq"),
                    CounterOp::Lt => (false, "lt"),
                    CounterOp::Gt => (false, "gt"),
                };
                opt(f, inv, &format!("{what}-{suffix}"), n)?;
            }
        }
        Ok(())
    }
}

/// A user or group of `-m owner`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OwnerId {
    /// Numeric ids `lo..=hi` (0 … 2^32 − 2).
    Range(u32, u32),
    /// A name iptables resolves through the host's user/group database at load time;
    /// fwverify cannot know the id and keeps the name.
    Name(String),
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OwnerId::Range(lo, hi) if lo == hi => write!(f, "{lo}"),
            OwnerId::Range(lo, hi) => write!(f, "{lo}-{hi}"),
            OwnerId::Name(n) => write!(f, "{}", quote(n)),
        }
    }
}

/// `-m owner` (revision 1): the local socket that sent the packet.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Owner {
    /// `[!] --socket-exists`: `Some(inv)`.
    pub socket_exists: Option<bool>,
    /// `[!] --uid-owner`
    pub uid: Option<Neg<OwnerId>>,
    /// `[!] --gid-owner`
    pub gid: Option<Neg<OwnerId>>,
    /// `--suppl-groups`: the gid test also looks at supplementary groups.
    pub suppl_groups: bool,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(inv) = self.socket_exists {
            flag(f, inv, "socket-exists")?;
        }
        if let Some(u) = &self.uid {
            opt(f, u.inv, "uid-owner", &u.val)?;
        }
        if let Some(g) = &self.gid {
            opt(f, g.inv, "gid-owner", &g.val)?;
        }
        if self.suppl_groups {
            f.write_str(" --suppl-groups")?;
        }
        Ok(())
    }
}

/// `-m tcpmss --mss MIN[:MAX]`: the MSS option of a SYN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tcpmss {
    /// `!`
    pub inv: bool,
    /// Lowest MSS.
    pub min: u16,
    /// Highest MSS (≥ min).
    pub max: u16,
}

impl fmt::Display for Tcpmss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            opt(f, self.inv, "mss", self.min)
        } else {
            opt(f, self.inv, "mss", format_args!("{}:{}", self.min, self.max))
        }
    }
}

/// `-m physdev`: bridge ports of bridged packets. Flags are `Some(inv)` when given.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Physdev {
    /// `[!] --physdev-in NAME`
    pub in_dev: Option<Neg<IfaceName>>,
    /// `[!] --physdev-out NAME`
    pub out_dev: Option<Neg<IfaceName>>,
    /// `[!] --physdev-is-in`
    pub is_in: Option<bool>,
    /// `[!] --physdev-is-out`
    pub is_out: Option<bool>,
    /// `[!] --physdev-is-bridged`
    pub is_bridged: Option<bool>,
}

impl fmt::Display for Physdev {
    /// Order of libxt_physdev's save: is-in, in, is-out, out, is-bridged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(inv) = self.is_in {
            flag(f, inv, "physdev-is-in")?;
        }
        if let Some(d) = &self.in_dev {
            opt(f, d.inv, "physdev-in", &d.val)?;
        }
        if let Some(inv) = self.is_out {
            flag(f, inv, "physdev-is-out")?;
        }
        if let Some(d) = &self.out_dev {
            opt(f, d.inv, "physdev-out", &d.val)?;
        }
        if let Some(inv) = self.is_bridged {
            flag(f, inv, "physdev-is-bridged")?;
        }
        Ok(())
    }
}

/// Link-layer packet type of `-m pkttype` (the kernel's `PACKET_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PktType {
    /// `unicast` (also `host`): addressed to this host, `PACKET_HOST` = 0.
    Unicast,
    /// `broadcast` = 1
    Broadcast,
    /// `multicast` = 2
    Multicast,
    /// `otherhost` = 3
    Otherhost,
}

/// `-m pkttype --pkt-type T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pkttype {
    /// `!`
    pub inv: bool,
    /// The type.
    pub ty: PktType,
}

impl fmt::Display for Pkttype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = match self.ty {
            PktType::Unicast => "unicast",
            PktType::Broadcast => "broadcast",
            PktType::Multicast => "multicast",
            PktType::Otherhost => "otherhost",
        };
        opt(f, self.inv, "pkt-type", n)
    }
}

/// What `-m statistic` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatMode {
    /// `--mode random --probability P`: `probability` = round(P · 2^31).
    Random {
        /// Probability scaled by 2^31 (0 … 2^31).
        probability: u32,
    },
    /// `--mode nth --every N --packet P`: one packet in every `N`, the counter starting
    /// at `P`.
    Nth {
        /// N ≥ 1.
        every: u32,
        /// P < N.
        packet: u32,
    },
}

/// `-m statistic`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Statistic {
    /// `!` (before `--probability` or `--every`).
    pub inv: bool,
    /// The mode.
    pub mode: StatMode,
}

impl fmt::Display for Statistic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            StatMode::Random { probability } => {
                f.write_str(" --mode random")?;
                opt(f, self.inv, "probability", format_args!("{:.11}", probability as f64 / 2147483648.0))
            }
            StatMode::Nth { every, packet } => {
                f.write_str(" --mode nth")?;
                opt(f, self.inv, "every", every)?;
                write!(f, " --packet {packet}")
            }
        }
    }
}

/// An inclusive address range `lo-hi` (reversed ranges are kept and never match).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpRange {
    /// First address.
    pub lo: IpAddr,
    /// Last address.
    pub hi: IpAddr,
}

impl IpRange {
    /// Whether `ip` lies in the range (numeric comparison, same family only).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.lo, self.hi, ip) {
            (IpAddr::V4(l), IpAddr::V4(h), IpAddr::V4(i)) => l <= i && i <= h,
            (IpAddr::V6(l), IpAddr::V6(h), IpAddr::V6(i)) => l <= i && i <= h,
            _ => false,
        }
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.lo, self.hi)
    }
}

/// `-m iprange` (revision 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Iprange {
    /// `[!] --src-range`
    pub src: Option<Neg<IpRange>>,
    /// `[!] --dst-range`
    pub dst: Option<Neg<IpRange>>,
}

impl fmt::Display for Iprange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = &self.src {
            opt(f, r.inv, "src-range", r.val)?;
        }
        if let Some(r) = &self.dst {
            opt(f, r.inv, "dst-range", r.val)?;
        }
        Ok(())
    }
}

/// `-m icmp6 --icmpv6-type` (IPv6 only). Unlike `-m icmp`, type 255 is not a wildcard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Icmp6 {
    /// `!`
    pub inv: bool,
    /// ICMPv6 type.
    pub ty: u8,
    /// Lowest code.
    pub code_min: u8,
    /// Highest code.
    pub code_max: u8,
}

impl Icmp6 {
    /// Whether an ICMPv6 packet of this type and code matches, `!` applied.
    pub fn matches(&self, ty: u8, code: u8) -> bool {
        (ty == self.ty && code >= self.code_min && code <= self.code_max) != self.inv
    }
}

impl fmt::Display for Icmp6 {
    /// `--icmpv6-type T[/C]` (the code is printed when the range is not 0–255).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.code_min != 0 || self.code_max != 0xff {
            opt(f, self.inv, "icmpv6-type", format_args!("{}/{}", self.ty, self.code_min))
        } else {
            opt(f, self.inv, "icmpv6-type", self.ty)
        }
    }
}

/// A module or target fwverify keeps without modelling it: its name and raw option words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opaque {
    /// Module or target name.
    pub module: String,
    /// Option words exactly as tokenized (`!`, `--opt`, values).
    pub args: Vec<String>,
}

impl fmt::Display for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for a in &self.args {
            if a.starts_with('-') || a == "!" {
                write!(f, " {a}")?;
            } else {
                write!(f, " {}", quote(a))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rate(u64);
    impl fmt::Display for Rate {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_rate(f, self.0, 10000)
        }
    }

    #[test]
    fn limit_rates_print_like_iptables_save() {
        // avg = 10000 * unit_seconds / N
        let case = |unit: u64, n: u64| Rate(10000 * unit / n).to_string();
        assert_eq!(case(60, 60), "1/sec");
        assert_eq!(case(86400, 24), "1/hour");
        assert_eq!(case(3600, 90), "90/hour");
        assert_eq!(case(1, 7), "7/sec");
        assert_eq!(case(86400, 5000), "5000/day");
        assert_eq!(case(3600, 3), "3/hour");
        assert_eq!(case(1, 1), "1/sec");
    }
}

/// `-m string`: a byte pattern searched in the packet between two offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StringMatch {
    /// `!`
    pub inv: bool,
    /// The pattern bytes (from `--string` or `--hex-string`).
    pub pattern: Vec<u8>,
    /// `--algo` (`bm` or `kmp`).
    pub algo: String,
    /// `--from` offset (default 0).
    pub from: u16,
    /// `--to` offset (default 65535).
    pub to: u16,
    /// `--icase`
    pub icase: bool,
}

impl fmt::Display for StringMatch {
    /// libxt_string's save: printable patterns as a quoted string (`"` and `\` escaped),
    /// others as `"|hex|"`; then `--algo`, `--from` unless 0, `--to` unless 65535, `--icase`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inv {
            f.write_str(" !")?;
        }
        if self.pattern.iter().all(|b| (0x20..0x7f).contains(b)) {
            f.write_str(" --string \"")?;
            for &b in &self.pattern {
                if b == b'"' || b == b'\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{}", b as char)?;
            }
            f.write_str("\"")?;
        } else {
            f.write_str(" --hex-string \"|")?;
            for b in &self.pattern {
                write!(f, "{b:02x}")?;
            }
            f.write_str("|\"")?;
        }
        write!(f, " --algo {}", self.algo)?;
        if self.from != 0 {
            write!(f, " --from {}", self.from)?;
        }
        if self.to != 65535 {
            write!(f, " --to {}", self.to)?;
        }
        if self.icase {
            f.write_str(" --icase")?;
        }
        Ok(())
    }
}
