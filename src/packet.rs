//! What the firewall sees of one packet: a small `Copy` value, no heap (smoltcp's "Repr").
//! Traces (CSV, pcap) and the kernel backend convert to and from it.

use std::fmt;
use std::net::IpAddr;

/// An interface, interned by the simulator's interface table (`sim::Ifaces`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct IfaceId(pub u16);

/// A packet as the simulator sees it. Ports are 0 for protocols without ports; ICMP
/// fields are 0 for non-ICMP packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Packet {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Source port (TCP/UDP).
    pub sport: u16,
    /// Destination port (TCP/UDP).
    pub dport: u16,
    /// TCP flags byte (FIN 0x01 … CWR 0x80).
    pub flags: u8,
    /// ICMP type.
    pub icmp_type: u8,
    /// ICMP code.
    pub icmp_code: u8,
    /// ICMP echo identifier.
    pub icmp_id: u16,
    /// Interface it arrives on (or leaves by, for host replies).
    pub iface: IfaceId,
    /// IP total length in bytes.
    pub len: u16,
    /// Time to live.
    pub ttl: u8,
}

/// Protocol numbers.
pub mod proto {
    /// ICMP
    pub const ICMP: u8 = 1;
    /// TCP
    pub const TCP: u8 = 6;
    /// UDP
    pub const UDP: u8 = 17;
    /// ICMPv6
    pub const ICMPV6: u8 = 58;
}

impl Packet {
    /// A packet with only its IP header filled in: no ports, flags or ICMP fields, on
    /// interface 0 (to be resolved by the caller).
    pub fn ip(src: IpAddr, dst: IpAddr, proto: u8, len: u16, ttl: u8) -> Packet {
        Packet {
            src,
            dst,
            proto,
            sport: 0,
            dport: 0,
            flags: 0,
            icmp_type: 0,
            icmp_code: 0,
            icmp_id: 0,
            iface: IfaceId(0),
            len,
            ttl,
        }
    }

    /// The length of the headers alone for this protocol (IPv4 20 / IPv6 40, plus TCP 20,
    /// UDP 8, ICMP 8): the default total length of a scenario packet.
    pub fn header_len(src: IpAddr, proto: u8) -> u16 {
        let ip = if src.is_ipv4() { 20 } else { 40 };
        ip + match proto {
            proto::TCP => 20,
            proto::UDP | proto::ICMP | proto::ICMPV6 => 8,
            _ => 0,
        }
    }

    /// True for TCP and UDP (protocols with ports the simulator models).
    pub fn has_ports(&self) -> bool {
        matches!(self.proto, proto::TCP | proto::UDP)
    }
}

/// TCP flag letters as written in scenarios: F S R P A U E C.
pub const FLAG_LETTERS: [(char, u8); 8] =
    [('F', 0x01), ('S', 0x02), ('R', 0x04), ('P', 0x08), ('A', 0x10), ('U', 0x20), ('E', 0x40), ('C', 0x80)];

/// Writes flags as letters in the order F S R P A U E C, or `NONE`.
pub struct FlagLetters(pub u8);

impl fmt::Display for FlagLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("NONE");
        }
        for (c, b) in FLAG_LETTERS {
            if self.0 & b != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// Parses scenario flag letters (case-insensitive); `NONE` is no flag. `None` on an
/// unknown letter.
pub fn parse_flag_letters(s: &str) -> Option<u8> {
    if s.eq_ignore_ascii_case("NONE") {
        return Some(0);
    }
    let mut v = 0;
    for ch in s.chars() {
        let u = ch.to_ascii_uppercase();
        v |= FLAG_LETTERS.iter().find(|(c, _)| *c == u)?.1;
    }
    Some(v)
}
