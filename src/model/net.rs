//! Network vocabulary of the model: address families, masked addresses, port ranges,
//! protocols, TCP flags and interface names. Constructors keep the invariants that
//! iptables itself keeps (host bits cleared, names short enough).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address family of a ruleset: `iptables-save` (IPv4) or `ip6tables-save` (IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (`iptables`).
    V4,
    /// IPv6 (`ip6tables`).
    V6,
}

/// An address with a mask, as matched by `-s`/`-d`: `(addr & mask) == self.addr`.
///
/// Invariant: the address has no bits outside the mask (iptables clears host bits when
/// it loads a rule, SEMANTICS.md §1.4). Masks need not be contiguous.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    mask: IpAddr,
}

impl Cidr {
    /// A masked address; host bits of `addr` are cleared. Both must be of one family.
    pub fn new(addr: IpAddr, mask: IpAddr) -> Option<Cidr> {
        match (addr, mask) {
            (IpAddr::V4(a), IpAddr::V4(m)) => {
                Some(Cidr { addr: IpAddr::V4(Ipv4Addr::from(u32::from(a) & u32::from(m))), mask })
            }
            (IpAddr::V6(a), IpAddr::V6(m)) => {
                Some(Cidr { addr: IpAddr::V6(Ipv6Addr::from(u128::from(a) & u128::from(m))), mask })
            }
            _ => None,
        }
    }

    /// A prefix `addr/len`; `None` when `len` exceeds the family's width.
    pub fn with_prefix(addr: IpAddr, len: u8) -> Option<Cidr> {
        let mask = prefix_mask(addr.is_ipv4(), len)?;
        Cidr::new(addr, mask)
    }

    /// The whole address space of a family (`0.0.0.0/0`).
    pub fn any(family: Family) -> Cidr {
        match family {
            Family::V4 => Cidr { addr: Ipv4Addr::UNSPECIFIED.into(), mask: Ipv4Addr::UNSPECIFIED.into() },
            Family::V6 => Cidr { addr: Ipv6Addr::UNSPECIFIED.into(), mask: Ipv6Addr::UNSPECIFIED.into() },
        }
    }

    /// The network address (host bits cleared).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The mask.
    pub fn mask(&self) -> IpAddr {
        self.mask
    }

    /// The prefix length when the mask is contiguous.
    pub fn prefix_len(&self) -> Option<u8> {
        match self.mask {
            IpAddr::V4(m) => contiguous_len(u32::from(m) as u128, 32),
            IpAddr::V6(m) => contiguous_len(u128::from(m), 128),
        }
    }

    /// True when the mask is all zeros (matches every address).
    pub fn is_any(&self) -> bool {
        match self.mask {
            IpAddr::V4(m) => u32::from(m) == 0,
            IpAddr::V6(m) => u128::from(m) == 0,
        }
    }

    /// Whether `ip` lies in this network (`(ip & mask) == addr`); false across families.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, self.mask, ip) {
            (IpAddr::V4(a), IpAddr::V4(m), IpAddr::V4(i)) => u32::from(i) & u32::from(m) == u32::from(a),
            (IpAddr::V6(a), IpAddr::V6(m), IpAddr::V6(i)) => u128::from(i) & u128::from(m) == u128::from(a),
            _ => false,
        }
    }

    /// The family of the address.
    pub fn family(&self) -> Family {
        if self.addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

/// The mask of a prefix length, `None` when too long for the family.
pub fn prefix_mask(v4: bool, len: u8) -> Option<IpAddr> {
    if v4 {
        if len > 32 {
            return None;
        }
        let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        Some(IpAddr::V4(Ipv4Addr::from(m)))
    } else {
        if len > 128 {
            return None;
        }
        let m = if len == 0 { 0 } else { u128::MAX << (128 - len) };
        Some(IpAddr::V6(Ipv6Addr::from(m)))
    }
}

fn contiguous_len(m: u128, width: u32) -> Option<u8> {
    let ones = m.count_ones();
    let expect = if ones == 0 { 0 } else { (u128::MAX >> (128 - width)) & !((1u128 << (width - ones)) - 1) };
    (m == expect).then_some(ones as u8)
}

impl fmt::Display for Cidr {
    /// iptables-save form: `a.b.c.d/len`, or a dotted mask when it is not contiguous.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix_len() {
            Some(len) => write!(f, "{}/{}", self.addr, len),
            None => write!(f, "{}/{}", self.addr, self.mask),
        }
    }
}

/// An inclusive port range `lo:hi`. A reversed range (lo > hi) is kept, as iptables keeps
/// it, and never matches (SEMANTICS.md §1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port (inclusive).
    pub hi: u16,
}

impl PortRange {
    /// A single port.
    pub fn single(p: u16) -> PortRange {
        PortRange { lo: p, hi: p }
    }
    /// Whether `p` lies in the range.
    pub fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }
    /// True for the whole range `0:65535`.
    pub fn is_full(&self) -> bool {
        self.lo == 0 && self.hi == 65535
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}:{}", self.lo, self.hi)
        }
    }
}

/// An IP protocol number with the names iptables-save prints (from /etc/protocols).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Proto(pub u8);

/// Protocol names iptables knows, number → name as printed by iptables-save 1.8.9.
pub const PROTO_NAMES: &[(u8, &str)] = &[
    (1, "icmp"),
    (2, "igmp"),
    (4, "ipencap"),
    (6, "tcp"),
    (17, "udp"),
    (33, "dccp"),
    (41, "ipv6"),
    (47, "gre"),
    (50, "esp"),
    (51, "ah"),
    (58, "ipv6-icmp"),
    (89, "ospf"),
    (94, "ipip"),
    (103, "pim"),
    (108, "ipcomp"),
    (112, "vrrp"),
    (132, "sctp"),
    (136, "udplite"),
    (137, "mpls-in-ip"),
];

impl Proto {
    /// TCP.
    pub const TCP: Proto = Proto(6);
    /// UDP.
    pub const UDP: Proto = Proto(17);
    /// ICMP.
    pub const ICMP: Proto = Proto(1);
    /// ICMPv6.
    pub const ICMPV6: Proto = Proto(58);

    /// Looks up a protocol by (case-insensitive) name or number. `all` is protocol 0.
    pub fn parse(s: &str) -> Option<Proto> {
        let l = s.to_ascii_lowercase();
        if l == "all" {
            return Some(Proto(0));
        }
        if let Ok(n) = l.parse::<u8>() {
            return Some(Proto(n));
        }
        let l = match l.as_str() {
            "icmpv6" | "ipv6-icmp" => "ipv6-icmp",
            "mh" | "ipv6-mh" => return Some(Proto(135)),
            other => other,
        };
        PROTO_NAMES.iter().find(|(_, n)| *n == l).map(|&(p, _)| Proto(p))
    }

    /// The name iptables-save prints, if any.
    pub fn name(self) -> Option<&'static str> {
        PROTO_NAMES.iter().find(|(p, _)| *p == self.0).map(|&(_, n)| n)
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A set of TCP flags, one bit each as in the TCP header (FIN = 0x01 … URG = 0x20,
/// ECE = 0x40, CWR = 0x80).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;

    /// The flag names `--tcp-flags` accepts, in iptables-save's printing order.
    pub const NAMES: [(&'static str, u8); 6] =
        [("FIN", 0x01), ("SYN", 0x02), ("RST", 0x04), ("PSH", 0x08), ("ACK", 0x10), ("URG", 0x20)];

    /// Parses a `--tcp-flags` list: comma-separated names (case-insensitive), `ALL` or `NONE`.
    /// Returns the unknown name on failure.
    pub fn parse_list(s: &str) -> Result<TcpFlags, String> {
        let mut v = 0u8;
        for part in s.split(',') {
            let u = part.to_ascii_uppercase();
            match u.as_str() {
                "ALL" => v |= 0x3f,
                "NONE" => {}
                _ => match Self::NAMES.iter().find(|(n, _)| *n == u) {
                    Some((_, b)) => v |= b,
                    None => return Err(part.to_string()),
                },
            }
        }
        Ok(TcpFlags(v))
    }
}

impl fmt::Display for TcpFlags {
    /// `FIN,SYN,RST,ACK` in the fixed order, or `NONE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 & 0x3f == 0 {
            return f.write_str("NONE");
        }
        let mut first = true;
        for (n, b) in Self::NAMES {
            if self.0 & b != 0 {
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

/// An interface name as given to `-i`/`-o`: at most 15 bytes; a trailing `+` makes it a
/// prefix match (`eth+` matches `eth0` and `eth`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IfaceName(String);

impl IfaceName {
    /// Longest name the kernel takes (IFNAMSIZ − 1).
    pub const MAX: usize = 15;

    /// A name, or `None` when longer than 15 bytes.
    pub fn new(s: &str) -> Option<IfaceName> {
        (s.len() <= Self::MAX).then(|| IfaceName(s.to_string()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the bare `+`, which matches every interface (and is omitted on save).
    pub fn is_any(&self) -> bool {
        self.0 == "+"
    }

    /// Whether an interface called `dev` matches (`+` wildcard aware).
    pub fn matches(&self, dev: &str) -> bool {
        match self.0.strip_suffix('+') {
            Some(prefix) => dev.starts_with(prefix),
            None => dev == self.0,
        }
    }
}

impl fmt::Display for IfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_clears_host_bits_and_prints_dotted_when_noncontiguous() {
        let c = Cidr::with_prefix("10.0.0.1".parse().unwrap(), 24).unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/24");
        let m = Cidr::new("10.1.2.3".parse().unwrap(), "255.0.255.0".parse().unwrap()).unwrap();
        assert_eq!(m.to_string(), "10.0.2.0/255.0.255.0");
        let v6 = Cidr::with_prefix("2001:db8::1".parse().unwrap(), 32).unwrap();
        assert_eq!(v6.to_string(), "2001:db8::/32");
        assert!(Cidr::with_prefix("1.2.3.4".parse().unwrap(), 33).is_none());
    }

    #[test]
    fn tcp_flags_print_in_kernel_order() {
        assert_eq!(TcpFlags::parse_list("ack,syn,fin,rst").unwrap().to_string(), "FIN,SYN,RST,ACK");
        assert_eq!(TcpFlags::parse_list("ALL").unwrap().to_string(), "FIN,SYN,RST,PSH,ACK,URG");
        assert_eq!(TcpFlags::parse_list("NONE").unwrap().to_string(), "NONE");
        assert_eq!(TcpFlags::parse_list("CWR").unwrap_err(), "CWR");
    }

    #[test]
    fn iface_wildcards() {
        let w = IfaceName::new("eth+").unwrap();
        assert!(w.matches("eth0") && w.matches("eth") && !w.matches("wlan0"));
        assert!(IfaceName::new("0123456789abcdef").is_none());
    }
}
