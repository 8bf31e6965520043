//! Raw IPv4/IPv6 packets for a TUN device (`IFF_TUN | IFF_NO_PI`: the bytes are the IP
//! packet): building scenario packets and parsing what the host sends back.
//!
//! Only what the kernel backend needs: no IP options, no TCP options, correct checksums
//! (conntrack marks bad checksums INVALID in PREROUTING, SEMANTICS.md §5.3).

use std::net::IpAddr;

use crate::packet::{proto, Packet};

/// What a built TCP segment carries beyond the scenario's row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpSeq {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (sent as is; meaningful with the ACK flag).
    pub ack: u32,
}

/// A packet read back from a TUN device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The packet as the simulator describes it (`iface` left at 0).
    pub pkt: Packet,
    /// TCP sequence and acknowledgement numbers.
    pub tcp: TcpSeq,
    /// Bytes after the transport header (TCP payload length, for sequence tracking).
    pub payload: u32,
    /// For ICMP errors: the quoted packet's (src, dst, proto, sport, dport).
    pub quoted: Option<(IpAddr, IpAddr, u8, u16, u16)>,
}

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [b] = chunks.remainder() {
        acc += (*b as u32) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u32 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let acc = sum16(&s.octets(), 0);
            let acc = sum16(&d.octets(), acc);
            acc + proto as u32 + len as u32
        }
        (s, d) => {
            let s6 = match s {
                IpAddr::V6(a) => a.octets(),
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            };
            let d6 = match d {
                IpAddr::V6(a) => a.octets(),
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            };
            let acc = sum16(&s6, 0);
            let acc = sum16(&d6, acc);
            acc + (len as u32 >> 16) + (len as u32 & 0xffff) + proto as u32
        }
    }
}

/// The transport header length the builder uses for `proto`.
fn l4_header_len(pr: u8) -> usize {
    match pr {
        proto::TCP => 20,
        proto::UDP | proto::ICMP | proto::ICMPV6 => 8,
        _ => 0,
    }
}

/// Builds the bytes of `pkt`: IP header with its TTL, transport header, zero padding up to
/// `pkt.len` (never shorter than the headers). `id` is the IPv4 identification (ICMP echo
/// sequence number too).
pub fn build(pkt: &Packet, tcp: TcpSeq, id: u16) -> Vec<u8> {
    let v4 = pkt.src.is_ipv4();
    let ip_len = if v4 { 20 } else { 40 };
    let l4_len = l4_header_len(pkt.proto);
    let total = (pkt.len as usize).max(ip_len + l4_len);
    let mut b = vec![0u8; total];
    let seg = total - ip_len;
    match (pkt.src, pkt.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            b[0] = 0x45;
            b[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            b[4..6].copy_from_slice(&id.to_be_bytes());
            b[8] = pkt.ttl;
            b[9] = pkt.proto;
            b[12..16].copy_from_slice(&s.octets());
            b[16..20].copy_from_slice(&d.octets());
            let c = fold(sum16(&b[..20], 0));
            b[10..12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            b[0] = 0x60;
            b[4..6].copy_from_slice(&(seg as u16).to_be_bytes());
            b[6] = pkt.proto;
            b[7] = pkt.ttl;
            b[8..24].copy_from_slice(&s.octets());
            b[24..40].copy_from_slice(&d.octets());
        }
        _ => {}
    }
    let l4 = &mut b[ip_len..];
    let csum_at = match pkt.proto {
        proto::TCP => {
            l4[0..2].copy_from_slice(&pkt.sport.to_be_bytes());
            l4[2..4].copy_from_slice(&pkt.dport.to_be_bytes());
            l4[4..8].copy_from_slice(&tcp.seq.to_be_bytes());
            l4[8..12].copy_from_slice(&tcp.ack.to_be_bytes());
            l4[12] = 5 << 4;
            l4[13] = pkt.flags;
            l4[14..16].copy_from_slice(&65535u16.to_be_bytes());
            Some(16)
        }
        proto::UDP => {
            l4[0..2].copy_from_slice(&pkt.sport.to_be_bytes());
            l4[2..4].copy_from_slice(&pkt.dport.to_be_bytes());
            l4[4..6].copy_from_slice(&(seg as u16).to_be_bytes());
            Some(6)
        }
        proto::ICMP | proto::ICMPV6 => {
            l4[0] = pkt.icmp_type;
            l4[1] = pkt.icmp_code;
            if is_query(pkt.proto, pkt.icmp_type) {
                l4[4..6].copy_from_slice(&pkt.icmp_id.to_be_bytes());
                l4[6..8].copy_from_slice(&id.to_be_bytes());
            }
            Some(2)
        }
        _ => None,
    };
    if let Some(at) = csum_at {
        let acc = match pkt.proto {
            proto::ICMP => 0,
            p => pseudo(pkt.src, pkt.dst, p, seg),
        };
        let mut c = fold(sum16(l4, acc));
        if pkt.proto == proto::UDP && c == 0 {
            c = 0xffff;
        }
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    b
}

/// ICMP messages with an identifier (echo, timestamp, info, address mask; ICMPv6 echo).
fn is_query(pr: u8, t: u8) -> bool {
    if pr == proto::ICMPV6 {
        matches!(t, 128 | 129)
    } else {
        matches!(t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)
    }
}

fn is_error(pr: u8, t: u8) -> bool {
    if pr == proto::ICMPV6 {
        t < 128
    } else {
        matches!(t, 3 | 4 | 5 | 11 | 12)
    }
}

/// Parses an IP packet read from a TUN device; `None` for anything malformed.
pub fn parse(b: &[u8]) -> Option<Parsed> {
    let (src, dst, pr, ttl, len, hl) = ip_header(b)?;
    let l4 = b.get(hl..len.min(b.len()))?;
    let mut pkt = Packet::ip(src, dst, pr, len as u16, ttl);
    let mut tcp = TcpSeq::default();
    let mut payload = 0;
    let mut quoted = None;
    match pr {
        proto::TCP if l4.len() >= 20 => {
            pkt.sport = u16::from_be_bytes([l4[0], l4[1]]);
            pkt.dport = u16::from_be_bytes([l4[2], l4[3]]);
            tcp.seq = u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]);
            tcp.ack = u32::from_be_bytes([l4[8], l4[9], l4[10], l4[11]]);
            pkt.flags = l4[13];
            let off = (l4[12] >> 4) as usize * 4;
            payload = l4.len().saturating_sub(off) as u32;
        }
        proto::UDP if l4.len() >= 8 => {
            pkt.sport = u16::from_be_bytes([l4[0], l4[1]]);
            pkt.dport = u16::from_be_bytes([l4[2], l4[3]]);
            payload = (l4.len() - 8) as u32;
        }
        proto::ICMP | proto::ICMPV6 if l4.len() >= 8 => {
            pkt.icmp_type = l4[0];
            pkt.icmp_code = l4[1];
            if is_query(pr, l4[0]) {
                pkt.icmp_id = u16::from_be_bytes([l4[4], l4[5]]);
            }
            if is_error(pr, l4[0]) {
                quoted = ip_header(&l4[8..]).map(|(s, d, p, _, _, qhl)| {
                    let q = &l4[8..];
                    let port = |at: usize| q.get(qhl + at..qhl + at + 2).map(|x| u16::from_be_bytes([x[0], x[1]]));
                    let ports = matches!(p, proto::TCP | proto::UDP);
                    let sp = if ports { port(0).unwrap_or(0) } else { 0 };
                    let dp = if ports { port(2).unwrap_or(0) } else { 0 };
                    (s, d, p, sp, dp)
                });
            }
        }
        _ => {}
    }
    Some(Parsed { pkt, tcp, payload, quoted })
}

/// (src, dst, proto, ttl, total length, header length) of an IP header. Quoted headers in
/// ICMP errors may be truncated, so only the header itself must be present.
fn ip_header(b: &[u8]) -> Option<(IpAddr, IpAddr, u8, u8, usize, usize)> {
    match b.first()? >> 4 {
        4 if b.len() >= 20 => {
            let hl = (b[0] & 0x0f) as usize * 4;
            let len = u16::from_be_bytes([b[2], b[3]]) as usize;
            let s: [u8; 4] = b[12..16].try_into().ok()?;
            let d: [u8; 4] = b[16..20].try_into().ok()?;
            Some((IpAddr::from(s), IpAddr::from(d), b[9], b[8], len, hl.max(20)))
        }
        6 if b.len() >= 40 => {
            let len = 40 + u16::from_be_bytes([b[4], b[5]]) as usize;
            let s: [u8; 16] = b[8..24].try_into().ok()?;
            let d: [u8; 16] = b[24..40].try_into().ok()?;
            Some((IpAddr::from(s), IpAddr::from(d), b[6], b[7], len, 40))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::IfaceId;

    fn pkt(src: &str, dst: &str, pr: u8) -> Packet {
        let src: IpAddr = src.parse().unwrap();
        Packet {
            src,
            dst: dst.parse().unwrap(),
            proto: pr,
            sport: 40000,
            dport: 22,
            flags: 0x02,
            icmp_type: 8,
            icmp_code: 0,
            icmp_id: 7,
            iface: IfaceId(0),
            len: Packet::header_len(src, pr),
            ttl: 64,
        }
    }

    /// Checksums verify to zero over the header (IPv4) and the pseudo-header plus segment.
    fn verify(b: &[u8]) {
        let (src, dst, pr, _, len, hl) = ip_header(b).unwrap();
        assert_eq!(len, b.len());
        if src.is_ipv4() {
            assert_eq!(fold(sum16(&b[..hl], 0)), 0, "ip checksum");
        }
        let acc = if pr == proto::ICMP { 0 } else { pseudo(src, dst, pr, b.len() - hl) };
        assert_eq!(fold(sum16(&b[hl..], acc)), 0, "l4 checksum");
    }

    #[test]
    fn built_packets_have_valid_checksums_and_parse_back() {
        for (s, d) in [("100.1.2.3", "192.0.2.1"), ("2001:db8::1", "2001:db8::2")] {
            for pr in [proto::TCP, proto::UDP, if s.contains(':') { proto::ICMPV6 } else { proto::ICMP }] {
                let mut p = pkt(s, d, pr);
                if pr == proto::ICMPV6 {
                    p.icmp_type = 128;
                }
                if pr != proto::TCP {
                    p.flags = 0;
                }
                if !p.has_ports() {
                    p.sport = 0;
                    p.dport = 0;
                } else {
                    p.icmp_type = 0;
                    p.icmp_id = 0;
                }
                for len in [p.len, p.len + 13] {
                    p.len = len;
                    let b = build(&p, TcpSeq { seq: 1000, ack: 5 }, 3);
                    verify(&b);
                    let back = parse(&b).unwrap();
                    assert_eq!(back.pkt, p);
                    if pr == proto::TCP {
                        assert_eq!(back.tcp, TcpSeq { seq: 1000, ack: 5 });
                        assert_eq!(back.payload, (len - Packet::header_len(p.src, pr)) as u32);
                    }
                }
            }
        }
    }

    #[test]
    fn short_lengths_are_raised_to_the_headers() {
        let mut p = pkt("100.1.2.3", "192.0.2.1", proto::TCP);
        p.len = 10;
        assert_eq!(build(&p, TcpSeq::default(), 1).len(), 40);
    }

    #[test]
    fn icmp_errors_name_the_quoted_packet() {
        let inner = build(&pkt("100.1.2.3", "192.0.2.1", proto::TCP), TcpSeq::default(), 1);
        let mut err = pkt("192.0.2.1", "100.1.2.3", proto::ICMP);
        err.icmp_type = 3;
        err.icmp_code = 3;
        err.icmp_id = 0;
        err.sport = 0;
        err.dport = 0;
        err.len = 28 + 28;
        let mut b = build(&err, TcpSeq::default(), 1);
        b[28..56].copy_from_slice(&inner[..28]);
        let q = parse(&b).unwrap().quoted.unwrap();
        assert_eq!(q, ("100.1.2.3".parse().unwrap(), "192.0.2.1".parse().unwrap(), proto::TCP, 40000, 22));
    }
}
