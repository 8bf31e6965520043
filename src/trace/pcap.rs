//! Packet captures as traces: pcap and pcapng files (via `pcap-file`), frames decoded with
//! `etherparse` into [`Packet`]s.
//!
//! - Link types: Ethernet (with VLAN tags), Linux cooked capture v1 and v2 (`tcpdump -i
//!   any`), and raw IP (`LINKTYPE_RAW`, `IPV4`, `IPV6`). Anything else is an error naming it.
//! - Times are capture timestamps relative to the first frame; pcapng interface
//!   resolutions (`if_tsresol`) and offsets (`if_tsoffset`) are applied.
//! - Every packet arrives on one interface, the caller's choice (`eth0` by default).
//! - Frames that are not IP (ARP, LLDP, …) and IP fragments (the simulator does not
//!   reassemble) are skipped and counted in [`Skipped`]; the caller reports the counts.
//! - A frame that claims to be IP but is cut short or malformed is an error with its
//!   frame number (1-based, counting every frame of the file).
//!
//! Architecture invariant: like the CSV reader, O(1) state (pcap-file's fixed read buffer).

use std::io::Read;
use std::net::IpAddr;

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, PcapError};

use super::{IfaceBuf, Row, TraceError};
use crate::packet::{proto, Packet};

/// Which capture format the first bytes of a file announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Magic {
    /// Classic pcap (either byte order, µs or ns timestamps).
    Pcap,
    /// pcapng (starts with a Section Header Block).
    PcapNg,
}

/// Recognises a capture by its first four bytes; `None` for anything else (CSV).
pub fn sniff(head: &[u8]) -> Option<Magic> {
    let m: [u8; 4] = head.get(..4)?.try_into().ok()?;
    match u32::from_be_bytes(m) {
        0xA1B2_C3D4 | 0xD4C3_B2A1 | 0xA1B2_3C4D | 0x4D3C_B2A1 => Some(Magic::Pcap),
        0x0A0D_0D0A => Some(Magic::PcapNg),
        _ => None,
    }
}

/// Frames left out of the trace, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Frames that carry no IP packet (ARP, LLDP, STP, …).
    pub non_ip: u64,
    /// IP fragments (the simulator sees whole packets only).
    pub fragments: u64,
}

impl Skipped {
    /// True when nothing was skipped.
    pub fn is_empty(&self) -> bool {
        self.non_ip == 0 && self.fragments == 0
    }
}

/// What one frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// An IP packet (its `iface` is a placeholder).
    Ip(Packet),
    /// Not IP.
    NonIp,
    /// An IP fragment.
    Fragment,
}

type Input<R> = std::io::Chain<std::io::Cursor<[u8; 4]>, R>;

enum Inner<R: Read> {
    Pcap { rdr: PcapReader<Input<R>>, link: DataLink },
    Ng { rdr: Box<PcapNgReader<Input<R>>>, ifaces: Vec<NgIface> },
}

/// A streaming capture reader.
pub struct PcapTrace<R: Read> {
    file: String,
    inner: Inner<R>,
    iface: IfaceBuf,
    frame: u64,
    row: u64,
    first_ns: Option<u64>,
    last_ns: u64,
    skipped: Skipped,
}

impl<R: Read> PcapTrace<R> {
    /// Reads the file header of `input` (pcap or pcapng, told apart by its magic number),
    /// shown as `file` in errors; every packet arrives on `iface`.
    pub fn new(file: &str, mut input: R, iface: IfaceBuf) -> Result<PcapTrace<R>, TraceError> {
        let mut head = [0u8; 4];
        if let Err(e) = input.read_exact(&mut head) {
            let what = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "not a capture: shorter than a pcap header".to_string()
            } else {
                format!("read error: {e}")
            };
            return Err(err(file, 0, what));
        }
        let magic =
            sniff(&head).ok_or_else(|| err(file, 0, "not a pcap or pcapng capture (bad magic number)".into()))?;
        let input = std::io::Cursor::new(head).chain(input);
        let inner = match magic {
            Magic::Pcap => {
                let rdr =
                    PcapReader::new(input).map_err(|e| err(file, 0, format!("bad pcap header: {}", pcap_msg(&e))))?;
                let link = rdr.header().datalink;
                check_link(link).map_err(|m| err(file, 0, m))?;
                Inner::Pcap { rdr, link }
            }
            Magic::PcapNg => {
                let rdr = PcapNgReader::new(input)
                    .map_err(|e| err(file, 0, format!("bad pcapng section header: {}", pcap_msg(&e))))?;
                Inner::Ng { rdr: Box::new(rdr), ifaces: Vec::new() }
            }
        };
        Ok(PcapTrace {
            file: file.to_string(),
            inner,
            iface,
            frame: 0,
            row: 0,
            first_ns: None,
            last_ns: 0,
            skipped: Skipped::default(),
        })
    }

    /// Frames skipped so far.
    pub fn skipped(&self) -> Skipped {
        self.skipped
    }

    /// The next IP packet, `Ok(None)` at the end.
    pub fn next_row(&mut self) -> Result<Option<Row>, TraceError> {
        loop {
            let Some((ts_ns, frame)) = self.next_frame()? else { return Ok(None) };
            let pkt = match frame {
                Frame::Ip(p) => p,
                Frame::NonIp => {
                    self.skipped.non_ip += 1;
                    continue;
                }
                Frame::Fragment => {
                    self.skipped.fragments += 1;
                    continue;
                }
            };
            let first = *self.first_ns.get_or_insert(ts_ns);
            let Some(time_ns) = ts_ns.checked_sub(first) else {
                return Err(self.err("timestamp is earlier than the first packet's".into()));
            };
            if time_ns < self.last_ns {
                return Err(self.err(format!(
                    "timestamp goes backwards: {:.9}s after the first packet, the previous one was at {:.9}s",
                    super::seconds(time_ns),
                    super::seconds(self.last_ns)
                )));
            }
            self.last_ns = time_ns;
            self.row += 1;
            return Ok(Some(Row { row: self.row, line: self.frame, time_ns, pkt, iface: self.iface, expect: None }));
        }
    }

    fn err(&self, message: String) -> TraceError {
        err(&self.file, self.frame, message)
    }

    /// The next frame's timestamp (ns since the epoch) and content.
    fn next_frame(&mut self) -> Result<Option<(u64, Frame)>, TraceError> {
        match &mut self.inner {
            Inner::Pcap { rdr, link } => {
                let link = *link;
                let Some(p) = rdr.next_packet() else { return Ok(None) };
                self.frame += 1;
                let p = p.map_err(|e| err(&self.file, self.frame, format!("bad record: {}", pcap_msg(&e))))?;
                let ts = p.timestamp.as_nanos() as u64;
                let f = decode(link, &p.data).map_err(|m| err(&self.file, self.frame, m))?;
                Ok(Some((ts, f)))
            }
            Inner::Ng { rdr, ifaces } => loop {
                let Some(b) = rdr.next_block() else { return Ok(None) };
                let frame = self.frame + 1;
                let b = b.map_err(|e| err(&self.file, frame, format!("bad block: {}", pcap_msg(&e))))?;
                let (iface, raw_ts, data) = match &b {
                    Block::EnhancedPacket(p) => (p.interface_id, p.timestamp.as_nanos() as u64, &p.data),
                    Block::Packet(p) => (p.interface_id as u32, p.timestamp, &p.data),
                    Block::SimplePacket(_) => {
                        let m = "simple packet block: it has no timestamp, so the trace would have no times";
                        return Err(err(&self.file, frame, m.into()));
                    }
                    Block::SectionHeader(_) => {
                        ifaces.clear();
                        continue;
                    }
                    Block::InterfaceDescription(d) => {
                        ifaces.push(NgIface::new(d));
                        continue;
                    }
                    _ => continue,
                };
                self.frame = frame;
                let Some(idb) = ifaces.get(iface as usize) else {
                    return Err(err(&self.file, frame, format!("packet of undeclared interface {iface}")));
                };
                check_link(idb.link).map_err(|m| err(&self.file, frame, m))?;
                let ts = idb.time(raw_ts).ok_or_else(|| err(&self.file, frame, "timestamp out of range".into()))?;
                let f = decode(idb.link, data).map_err(|m| err(&self.file, frame, m))?;
                return Ok(Some((ts, f)));
            },
        }
    }
}

/// What a pcapng Interface Description Block says about its packets.
#[derive(Clone, Copy, Debug)]
struct NgIface {
    link: DataLink,
    /// `if_tsresol`: units of 10^-n s, or of 2^-n s with the high bit set (default 6).
    resol: u8,
    /// `if_tsoffset`, seconds.
    offset: u64,
}

impl NgIface {
    fn new(idb: &pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock) -> NgIface {
        use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption as O;
        let mut i = NgIface { link: idb.linktype, resol: 6, offset: 0 };
        for o in &idb.options {
            match o {
                O::IfTsResol(r) => i.resol = *r,
                O::IfTsOffset(s) => i.offset = *s,
                _ => {}
            }
        }
        i
    }

    /// A timestamp of `raw` units in nanoseconds.
    fn time(&self, raw: u64) -> Option<u64> {
        let exp = (self.resol & 0x7f) as u32;
        let ns = if self.resol & 0x80 == 0 {
            if exp <= 9 {
                raw as u128 * 10u128.pow(9 - exp)
            } else {
                raw as u128 / 10u128.checked_pow(exp - 9)?
            }
        } else {
            (raw as u128 * 1_000_000_000) >> exp
        };
        let ns = ns.checked_add(self.offset as u128 * 1_000_000_000)?;
        u64::try_from(ns).ok()
    }
}

fn pcap_msg(e: &PcapError) -> String {
    match e {
        PcapError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => "the file ends inside it".into(),
        PcapError::IoError(io) => format!("read error: {io}"),
        other => other.to_string().to_lowercase(),
    }
}

fn check_link(link: DataLink) -> Result<(), String> {
    match link {
        DataLink::ETHERNET
        | DataLink::LINUX_SLL
        | DataLink::LINUX_SLL2
        | DataLink::RAW
        | DataLink::IPV4
        | DataLink::IPV6 => Ok(()),
        other => Err(format!(
            "link type {other:?} is not supported: captures must be Ethernet, Linux cooked (SLL, SLL2) or raw IP"
        )),
    }
}

/// Decodes one frame of link type `link` (one that `check_link` accepts).
pub fn decode(link: DataLink, data: &[u8]) -> Result<Frame, String> {
    let sliced = match link {
        DataLink::ETHERNET => {
            LaxSlicedPacket::from_ethernet(data).map_err(|e| format!("truncated Ethernet header: {e}"))?
        }
        DataLink::LINUX_SLL => {
            // struct sll_header: packet type, ARPHRD type, address length, 8 address
            // bytes, protocol (big endian).
            let h = data.get(..16).ok_or("truncated Linux cooked (SLL) header")?;
            LaxSlicedPacket::from_ether_type(EtherType(u16::from_be_bytes([h[14], h[15]])), &data[16..])
        }
        DataLink::LINUX_SLL2 => {
            // struct sll2_header: protocol first, then reserved, ifindex, ARPHRD type,
            // packet type, address length, 8 address bytes.
            let h = data.get(..20).ok_or("truncated Linux cooked (SLL2) header")?;
            LaxSlicedPacket::from_ether_type(EtherType(u16::from_be_bytes([h[0], h[1]])), &data[20..])
        }
        _ => LaxSlicedPacket::from_ip(data).map_err(|e| format!("bad IP header: {e}"))?,
    };
    let stop = |what: &str| match &sliced.stop_err {
        Some((e, _)) => format!("{what}: {e}"),
        None => what.to_string(),
    };
    let (src, dst, ttl, len, payload) = match &sliced.net {
        None if sliced.stop_err.is_some() => return Err(stop("malformed packet")),
        None | Some(LaxNetSlice::Arp(_)) => return Ok(Frame::NonIp),
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            let len = h.total_len();
            (IpAddr::V4(h.source_addr()), IpAddr::V4(h.destination_addr()), h.ttl(), len, ip.payload())
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let h = ip.header();
            let len = h.payload_length().saturating_add(40);
            (IpAddr::V6(h.source_addr()), IpAddr::V6(h.destination_addr()), h.hop_limit(), len, ip.payload())
        }
    };
    if payload.fragmented {
        return Ok(Frame::Fragment);
    }
    let pr = payload.ip_number.0;
    let mut pkt = Packet::ip(src, dst, pr, len, ttl);
    match &sliced.transport {
        Some(TransportSlice::Tcp(t)) => {
            pkt.sport = t.source_port();
            pkt.dport = t.destination_port();
            pkt.flags = t.header_slice()[13];
        }
        Some(TransportSlice::Udp(u)) => {
            pkt.sport = u.source_port();
            pkt.dport = u.destination_port();
        }
        Some(TransportSlice::Icmpv4(i)) => {
            pkt.icmp_type = i.type_u8();
            pkt.icmp_code = i.code_u8();
            // Echo, timestamp, information and address mask messages carry an identifier.
            if matches!(pkt.icmp_type, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18) {
                let b = i.bytes5to8();
                pkt.icmp_id = u16::from_be_bytes([b[0], b[1]]);
            }
        }
        Some(TransportSlice::Icmpv6(i)) => {
            pkt.icmp_type = i.type_u8();
            pkt.icmp_code = i.code_u8();
            if matches!(pkt.icmp_type, 128 | 129) {
                let b = i.bytes5to8();
                pkt.icmp_id = u16::from_be_bytes([b[0], b[1]]);
            }
        }
        _ if matches!(pr, proto::TCP | proto::UDP | proto::ICMP | proto::ICMPV6) => {
            let name = match pr {
                proto::TCP => "TCP",
                proto::UDP => "UDP",
                proto::ICMP => "ICMP",
                _ => "ICMPv6",
            };
            return Err(stop(&format!("truncated or malformed {name} header")));
        }
        _ => {}
    }
    Ok(Frame::Ip(pkt))
}

fn err(file: &str, frame: u64, message: String) -> TraceError {
    TraceError { file: file.to_string(), line: frame, col: 0, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn eth_tcp_syn() -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([100, 1, 2, 3], [192, 0, 2, 1], 57)
            .tcp(40000, 22, 1, 1024)
            .syn();
        let mut v = Vec::new();
        b.write(&mut v, &[]).unwrap();
        v
    }

    #[test]
    fn decodes_ethernet_tcp() {
        let Frame::Ip(p) = decode(DataLink::ETHERNET, &eth_tcp_syn()).unwrap() else { panic!("not IP") };
        assert_eq!(p.src, IpAddr::from([100, 1, 2, 3]));
        assert_eq!((p.proto, p.sport, p.dport, p.flags, p.ttl, p.len), (proto::TCP, 40000, 22, 0x02, 57, 40));
    }

    #[test]
    fn decodes_cooked_and_raw_ip() {
        let eth = eth_tcp_syn();
        let ip = &eth[14..];
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 1, 1, 1, 1, 1, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(ip);
        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 1, 1, 1, 1, 1, 0, 0];
        sll2.extend_from_slice(ip);
        let want = decode(DataLink::ETHERNET, &eth).unwrap();
        assert_eq!(decode(DataLink::LINUX_SLL, &sll).unwrap(), want);
        assert_eq!(decode(DataLink::LINUX_SLL2, &sll2).unwrap(), want);
        assert_eq!(decode(DataLink::RAW, ip).unwrap(), want);
    }

    #[test]
    fn skips_non_ip_and_rejects_truncated() {
        let mut arp = vec![0xff; 12];
        arp.extend_from_slice(&[0x08, 0x06]);
        arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&[0; 20]);
        assert_eq!(decode(DataLink::ETHERNET, &arp).unwrap(), Frame::NonIp);
        let eth = eth_tcp_syn();
        let e = decode(DataLink::ETHERNET, &eth[..14 + 20 + 10]).unwrap_err();
        assert!(e.contains("TCP header"), "{e}");
        assert!(decode(DataLink::ETHERNET, &eth[..10]).unwrap_err().contains("Ethernet"));
    }

    fn frag() -> Vec<u8> {
        // A non-first IPv4 fragment: offset 8 (×8 bytes), no transport header.
        let mut ip = eth_tcp_syn()[14..].to_vec();
        ip[6] = 0;
        ip[7] = 8;
        ip
    }

    fn read_all<R: Read>(mut t: PcapTrace<R>) -> Result<(Vec<Row>, Skipped), TraceError> {
        let mut rows = Vec::new();
        while let Some(r) = t.next_row()? {
            rows.push(r);
        }
        Ok((rows, t.skipped()))
    }

    fn eth0() -> IfaceBuf {
        IfaceBuf::new("eth1").unwrap()
    }

    #[test]
    fn reads_a_pcap_file() {
        use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
        use std::time::Duration;
        let mut arp = vec![0xff; 12];
        arp.extend_from_slice(&[0x08, 0x06]);
        arp.extend_from_slice(&[0; 28]);
        let syn = eth_tcp_syn();
        let header = PcapHeader { datalink: DataLink::ETHERNET, ..PcapHeader::default() };
        let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
        let t0 = Duration::new(1_700_000_000, 250_000_000);
        w.write_packet(&PcapPacket::new(t0, syn.len() as u32, &syn)).unwrap();
        w.write_packet(&PcapPacket::new(t0 + Duration::from_millis(1), arp.len() as u32, &arp)).unwrap();
        w.write_packet(&PcapPacket::new(t0 + Duration::from_millis(1500), syn.len() as u32, &syn)).unwrap();
        let bytes = w.into_writer();
        let (rows, skipped) = read_all(PcapTrace::new("c.pcap", &bytes[..], eth0()).unwrap()).unwrap();
        assert_eq!(
            rows.iter().map(|r| (r.row, r.line, r.time_ns)).collect::<Vec<_>>(),
            [(1, 1, 0), (2, 3, 1_500_000_000)]
        );
        assert_eq!(rows[0].iface.as_str(), "eth1");
        assert_eq!(rows[1].pkt.dport, 22);
        assert_eq!(skipped, Skipped { non_ip: 1, fragments: 0 });

        // The same capture with a truncated second IP frame: an error naming frame 3.
        let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
        w.write_packet(&PcapPacket::new(t0, syn.len() as u32, &syn)).unwrap();
        w.write_packet(&PcapPacket::new(t0, arp.len() as u32, &arp)).unwrap();
        w.write_packet(&PcapPacket::new(t0, 44, &syn[..44])).unwrap();
        let bytes = w.into_writer();
        let e = read_all(PcapTrace::new("c.pcap", &bytes[..], eth0()).unwrap()).unwrap_err();
        assert_eq!((e.line, e.col), (3, 0));
        assert!(e.to_string().starts_with("c.pcap: frame 3: truncated or malformed TCP header"), "{e}");
    }

    #[test]
    fn reads_a_pcapng_file_with_its_time_resolution() {
        use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
        use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
        use pcap_file::pcapng::PcapNgWriter;
        use std::borrow::Cow;
        use std::time::Duration;
        let mut w = PcapNgWriter::new(Vec::new()).unwrap();
        let mut idb = InterfaceDescriptionBlock::new(DataLink::RAW, 65535);
        // Nanosecond timestamps on this interface (pcap-file stores the raw count).
        idb.options.push(InterfaceDescriptionOption::IfTsResol(9));
        w.write_pcapng_block(idb).unwrap();
        let ip = eth_tcp_syn()[14..].to_vec();
        for (raw, data) in [(5_000_000_007u64, ip.clone()), (5_000_000_010, frag()), (5_250_000_007, ip)] {
            let epb = EnhancedPacketBlock {
                interface_id: 0,
                timestamp: Duration::from_nanos(raw),
                original_len: data.len() as u32,
                data: Cow::Owned(data),
                options: vec![],
            };
            w.write_pcapng_block(epb).unwrap();
        }
        let bytes = w.into_inner();
        let (rows, skipped) = read_all(PcapTrace::new("c.pcapng", &bytes[..], eth0()).unwrap()).unwrap();
        assert_eq!(
            rows.iter().map(|r| (r.row, r.line, r.time_ns)).collect::<Vec<_>>(),
            [(1, 1, 0), (2, 3, 250_000_000)]
        );
        assert_eq!(skipped, Skipped { non_ip: 0, fragments: 1 });
    }

    #[test]
    fn rejects_other_files() {
        let e = PcapTrace::new("x.pcap", &b"time,src\n"[..], eth0()).err().unwrap();
        assert_eq!(e.to_string(), "x.pcap: not a pcap or pcapng capture (bad magic number)");
        assert_eq!(sniff(&[0xd4, 0xc3, 0xb2, 0xa1]), Some(Magic::Pcap));
        assert_eq!(sniff(&[0x0a, 0x0d, 0x0d, 0x0a]), Some(Magic::PcapNg));
    }

    #[test]
    fn icmp_echo_id() {
        let b = PacketBuilder::ipv4([100, 1, 2, 3], [192, 0, 2, 1], 64).icmpv4_echo_request(77, 1);
        let mut v = Vec::new();
        b.write(&mut v, &[0; 8]).unwrap();
        let Frame::Ip(p) = decode(DataLink::RAW, &v).unwrap() else { panic!("not IP") };
        assert_eq!((p.proto, p.icmp_type, p.icmp_id, p.len), (proto::ICMP, 8, 77, 36));
    }
}
