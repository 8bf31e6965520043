//! Typed `-m` matches. Each type's `Display` prints its options exactly as
//! `iptables-save` does (SEMANTICS.md §1.5), each option preceded by a space, without the
//! `-m NAME` part (see [`Match::name`]).

use std::fmt;
use std::net::IpAddr;

use super::net::{PortRange, TcpFlags};
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

impl fmt::Display for Tcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.sport {
            opt(f, p.inv, "sport", p.val)?;
        }
        if let Some(p) = &self.dport {
            opt(f, p.inv, "dport", p.val)?;
        }
        if let Some(o) = &self.option {
            opt(f, o.inv, "tcp-option", o.val)?;
        }
        if let Some(t) = &self.flags {
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
        if let Some(p) = &self.sport {
            opt(f, p.inv, "sport", p.val)?;
        }
        if let Some(p) = &self.dport {
            opt(f, p.inv, "dport", p.val)?;
        }
        Ok(())
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
    let units = [(scale * 86400, "day"), (scale * 3600, "hour"), (scale * 60, "min"), (scale, "sec")];
    let mut k = 4;
    for (i, (u, _)) in units.iter().enumerate().skip(1) {
        if avg > *u || (avg != 0 && u / avg < u % avg) {
            k = i;
            break;
        }
    }
    let (u, name) = units[k - 1];
    write!(f, "{}/{}", u / avg.max(1), name)
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
