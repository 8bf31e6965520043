//! The simulated host's network stack: which addresses are its own, which packets the
//! kernel drops before the INPUT hook (martians), and how it answers — SYN-ACK from a
//! listening port, RST from a closed one, ICMP port unreachable (rate-limited like
//! `icmp_ratelimit`), echo replies, and REJECT's replies (SEMANTICS.md §7).

use std::net::IpAddr;

use rustc_hash::FxHashMap;

use super::conntrack::CtRef;
use super::{Ifaces, Jiffies, SimConfig};
use crate::model::targets::RejectWith;
use crate::packet::{proto, Packet};

/// Why the host sent a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    /// SYN-ACK from a listening socket.
    SynAck,
    /// ACK (e.g. to a FIN).
    Ack,
    /// RST from a port without a socket.
    Reset,
    /// ICMP port unreachable for a closed UDP port.
    PortUnreachable,
    /// Echo reply.
    EchoReply,
    /// A REJECT rule's reply.
    Reject,
    /// ICMP time exceeded for a packet whose TTL ran out in forwarding.
    TimeExceeded,
}

impl ReplyKind {
    /// Short name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyKind::SynAck => "syn-ack",
            ReplyKind::Ack => "ack",
            ReplyKind::Reset => "rst",
            ReplyKind::PortUnreachable => "icmp-port-unreachable",
            ReplyKind::EchoReply => "echo-reply",
            ReplyKind::Reject => "reject",
            ReplyKind::TimeExceeded => "time-exceeded",
        }
    }
}

/// A socket: (remote address, remote port, local address, local port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SockKey(IpAddr, u16, IpAddr, u16);

impl std::hash::Hash for SockKey {
    /// Three words, as for conntrack's keys (equal keys, equal words).
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let (a, a6) = super::conntrack::addr_bits(self.0);
        let (b, b6) = super::conntrack::addr_bits(self.2);
        h.write_u128(a);
        h.write_u128(b);
        h.write_u64((self.1 as u64) << 16 | self.3 as u64 | (a6 as u64) << 32 | (b6 as u64) << 33);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SockState {
    /// A request socket (SYN received, SYN-ACK sent).
    SynRecv,
    Established,
    /// The peer closed; the application never does.
    CloseWait,
}

/// A connection's socket: its state, `last_oow_ack_time` (when it last sent a SYN-ACK
/// retransmission or a challenge ACK, for the 500 ms `tcp_invalid_ratelimit`), and when
/// the SYN that made it arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sock {
    state: SockState,
    oow: Option<Jiffies>,
    born: Jiffies,
}

/// The host.
#[derive(Debug)]
pub struct Host {
    hosts: Vec<IpAddr>,
    listen: Vec<(u8, u16)>,
    /// Sockets by (remote address, remote port, local address, local port). FxHash, as
    /// the other per-packet tables.
    socks: FxHashMap<SockKey, Sock>,
    /// Per-destination ICMP error tokens (`inet_peer_xrlim_allow`).
    peers: FxHashMap<IpAddr, (u64, Jiffies)>,
    /// `peers` is swept of idle entries when it reaches this size.
    peers_sweep_at: usize,
    /// `socks` is swept of expired request sockets when it reaches this size.
    socks_sweep_at: usize,
    /// Connections waiting in each listening port's accept queue (ESTABLISHED, CLOSE_WAIT
    /// or reset, never accepted: the host runs no application, like the kernel backend's
    /// listening sockets). At most `MAX_ACK_BACKLOG` + 1 per port, so the sockets the host
    /// keeps are bounded whatever the trace's length.
    queued: FxHashMap<u16, u32>,
    hz: u64,
}

/// `listen(fd, 4096)` capped by `net.core.somaxconn` (4096): the accept queue is full when
/// it holds more than this (`sk_acceptq_is_full`), as with the kernel backend's sockets.
const MAX_ACK_BACKLOG: u32 = 4096;

/// The size below which `peers` is never swept.
const PEERS_MIN_SWEEP: usize = 256;
/// The size below which `socks` is never swept.
const SOCKS_MIN_SWEEP: usize = 512;

impl Sock {
    /// A request socket whose retransmission timer has fired: gone for every lookup
    /// (see [`Host::answer`]), and so also for [`Host::sweep_socks`].
    fn request_expired(&self, now: Jiffies, hz: u64) -> bool {
        self.state == SockState::SynRecv && now.wrapping_sub(self.born) > hz
    }
}

impl Host {
    /// A host as configured.
    pub fn new(cfg: &SimConfig) -> Host {
        let mut socks = FxHashMap::default();
        socks.reserve(1024);
        let mut peers = FxHashMap::default();
        peers.reserve(2 * PEERS_MIN_SWEEP);
        Host {
            hosts: cfg.hosts.clone(),
            listen: cfg.listen.clone(),
            socks,
            peers,
            peers_sweep_at: PEERS_MIN_SWEEP,
            socks_sweep_at: SOCKS_MIN_SWEEP,
            queued: FxHashMap::default(),
            hz: cfg.hz as u64,
        }
    }

    /// Sockets held (request, established, CLOSE_WAIT).
    pub fn socks_len(&self) -> usize {
        self.socks.len()
    }

    /// ICMP rate-limit peers held.
    pub fn peers_len(&self) -> usize {
        self.peers.len()
    }

    /// Whether `a` is one of the addresses given with `--host`.
    pub fn is_own(&self, a: IpAddr) -> bool {
        self.hosts.contains(&a)
    }

    /// Whether `dst` is one of the host's addresses (all are, when none were given).
    pub fn is_local(&self, dst: IpAddr) -> bool {
        self.hosts.is_empty() || self.hosts.contains(&dst)
    }

    /// The reason the kernel drops `pkt` at the routing decision, if it does
    /// (`ip_route_input_slow`: martian source or destination).
    pub fn martian(&self, pkt: &Packet, ifaces: &Ifaces) -> Option<&'static str> {
        let on_lo = ifaces.name(pkt.iface) == "lo";
        match pkt.src {
            IpAddr::V4(s) => {
                if s.is_multicast() || s.is_broadcast() {
                    return Some("martian source (multicast or broadcast)");
                }
                if s.octets()[0] == 0 {
                    return Some("martian source (0.0.0.0/8)");
                }
                if s.is_loopback() && !on_lo {
                    return Some("martian source (loopback address on a non-loopback interface)");
                }
            }
            IpAddr::V6(s) => {
                if s.is_multicast() {
                    return Some("martian source (multicast)");
                }
                if s.is_loopback() && !on_lo {
                    return Some("martian source (loopback address on a non-loopback interface)");
                }
            }
        }
        if !on_lo && !self.hosts.is_empty() && self.hosts.contains(&pkt.src) {
            return Some("martian source (the host's own address on a non-loopback interface)");
        }
        if let IpAddr::V4(d) = pkt.dst {
            if d.octets()[0] == 0 || (d.is_loopback() && !on_lo) {
                return Some("martian destination");
            }
            if d.is_multicast() && d != std::net::Ipv4Addr::new(224, 0, 0, 1) {
                return Some("multicast destination of a group the host has not joined");
            }
        }
        None
    }

    fn reply_base(pkt: &Packet) -> Packet {
        Packet {
            src: pkt.dst,
            dst: pkt.src,
            proto: pkt.proto,
            sport: pkt.dport,
            dport: pkt.sport,
            flags: 0,
            icmp_type: 0,
            icmp_code: 0,
            icmp_id: 0,
            iface: pkt.iface,
            len: 0,
            ttl: 64,
        }
    }

    fn tcp_reply(pkt: &Packet, flags: u8) -> Packet {
        let mut r = Self::reply_base(pkt);
        r.flags = flags;
        r.len = Packet::header_len(r.src, proto::TCP);
        r
    }

    /// A SYN-ACK: the kernel adds an MSS option (4 bytes).
    fn syn_ack(pkt: &Packet) -> Packet {
        let mut r = Self::tcp_reply(pkt, 0x12);
        r.len += 4;
        r
    }

    /// ICMP error (type 3) quoting `pkt`: 28 bytes of header plus the quoted IP header
    /// and 8 bytes, at most 576 bytes in all.
    fn icmp_error(pkt: &Packet, code: u8) -> Packet {
        let mut r = Self::reply_base(pkt);
        r.proto = proto::ICMP;
        r.sport = 0;
        r.dport = 0;
        r.icmp_type = 3;
        r.icmp_code = code;
        r.len = (28 + pkt.len).min(576);
        r
    }

    /// `icmp_ratelimit` per destination: tokens in jiffies, one error costs HZ
    /// (1000 ms), the bucket holds 6 (XRLIM_BURST_FACTOR) and starts full.
    fn icmp_allowed(&mut self, dst: IpAddr, now: Jiffies) -> bool {
        let timeout = self.hz;
        if self.peers.len() >= self.peers_sweep_at {
            // A peer idle for 6 s or more has a full bucket, exactly like one never seen
            // (which starts 60 s in credit, capped at 6): forgetting it changes nothing.
            // Sweeping when the map doubles keeps the cost amortised O(1) per insert.
            self.peers.retain(|_, e| now.wrapping_sub(e.1) < 6 * timeout);
            self.peers_sweep_at = (2 * self.peers.len()).max(PEERS_MIN_SWEEP);
        }
        let e = self.peers.entry(dst).or_insert((0, now.wrapping_sub(60 * self.hz)));
        let mut token = e.0 + now.wrapping_sub(e.1);
        e.1 = now;
        if token > 6 * timeout {
            token = 6 * timeout;
        }
        let ok = token >= timeout;
        if ok {
            token -= timeout;
        }
        e.0 = token;
        ok
    }

    /// `__tcp_oow_rate_limited` with `tcp_invalid_ratelimit` = 500 ms: true when the
    /// socket sent its last SYN-ACK retransmission or challenge ACK less than 500 ms ago;
    /// otherwise notes `now` as that time.
    fn oow_limited(&self, sock: &mut Sock, now: Jiffies) -> bool {
        let window = (500 * self.hz).div_ceil(1000);
        if sock.oow.is_some_and(|t| now.wrapping_sub(t) < window) {
            return true;
        }
        sock.oow = Some(now);
        false
    }

    /// Forgets request sockets whose timer has fired, the same test the lookup in
    /// [`Host::answer`] applies (so nothing observable changes), once the table has doubled
    /// since the last sweep: amortised O(1) per new socket, and a SYN flood at a listening
    /// port holds one second of requests instead of every SYN ever received.
    fn sweep_socks(&mut self, now: Jiffies) {
        if self.socks.len() < self.socks_sweep_at {
            return;
        }
        let hz = self.hz;
        self.socks.retain(|_, s| !s.request_expired(now, hz));
        self.socks_sweep_at = (2 * self.socks.len()).max(SOCKS_MIN_SWEEP);
    }

    fn accept_queue_full(&self, port: u16) -> bool {
        self.queued.get(&port).copied().unwrap_or(0) > MAX_ACK_BACKLOG
    }

    /// The stack's answer to a packet delivered locally.
    pub fn answer(&mut self, pkt: &Packet, now: Jiffies) -> Option<(Packet, ReplyKind, CtRef)> {
        match pkt.proto {
            proto::TCP => {
                let key = SockKey(pkt.src, pkt.sport, pkt.dst, pkt.dport);
                let f = pkt.flags;
                let (syn, ack, rst, fin) = (f & 0x02 != 0, f & 0x10 != 0, f & 0x04 != 0, f & 0x01 != 0);
                if rst {
                    // A reset child socket is gone for lookups (`tcp_done`), but it stays in
                    // its listener's accept queue until accepted, which never happens here:
                    // `sk_ack_backlog` keeps counting it (found by `fwverify conform`: 4097
                    // connections fill port 80's queue, one is reset, and the next SYN still
                    // gets no SYN-ACK from the kernel).
                    self.socks.remove(&key);
                    return None;
                }
                let listening = self.listen.contains(&(proto::TCP, pkt.dport));
                let data = pkt.len > Packet::header_len(pkt.src, proto::TCP);
                let ack_reply = || Some((Self::tcp_reply(pkt, 0x10), ReplyKind::Ack, CtRef::Invalid));
                // Segments are assumed in window with the right acknowledgment number (the
                // kernel backend keeps sequence numbers consistent). Checked against the
                // kernel with `fwverify conform` (random traces found every case below).
                let mut found = self.socks.get(&key).copied();
                if found.is_some_and(|s| s.request_expired(now, self.hz)) {
                    // The host sends no SYN-ACK retransmissions (`tcp_synack_retries` = 0, as
                    // the kernel backend sets up), so a request socket dies when its first
                    // retransmission timer fires, TCP_TIMEOUT_INIT = 1 s after the SYN
                    // (`reqsk_timer_handler`; the timer wheel fires it up to 8 ticks late).
                    self.socks.remove(&key);
                    found = None;
                }
                match found {
                    Some(mut sock) => {
                        if sock.state == SockState::SynRecv {
                            // `tcp_check_req` on the request socket.
                            if f & (0x04 | 0x02 | 0x10) == 0x02 {
                                // A pure retransmitted SYN (FIN, PSH, URG do not count):
                                // the SYN-ACK again, at most once per 500 ms.
                                let limited = self.oow_limited(&mut sock, now);
                                self.socks.insert(key, sock);
                                return (!limited).then(|| (Self::syn_ack(pkt), ReplyKind::SynAck, CtRef::Invalid));
                            }
                            if syn {
                                // Any other SYN (SYN-ACK): `embryonic_reset`, the request dies.
                                self.socks.remove(&key);
                                let flags = if ack { 0x04 } else { 0x14 };
                                return Some((Self::tcp_reply(pkt, flags), ReplyKind::Reset, CtRef::Invalid));
                            }
                            if !ack {
                                return None;
                            }
                            // The handshake's ACK: the child socket takes the segment on,
                            // unless the accept queue is full (`tcp_v4_syn_recv_sock` fails,
                            // `tcp_abort_on_overflow` = 0: the ACK is dropped).
                            if self.accept_queue_full(pkt.dport) {
                                return None;
                            }
                            *self.queued.entry(pkt.dport).or_insert(0) += 1;
                            sock = Sock { state: SockState::Established, oow: None, born: sock.born };
                            self.socks.insert(key, sock);
                        }
                        if syn {
                            // RFC 5961 challenge ACK on a synchronized connection (SYN or
                            // SYN-ACK), at most once per 500 ms (`tcp_send_challenge_ack`).
                            let limited = self.oow_limited(&mut sock, now);
                            self.socks.insert(key, sock);
                            return if limited { None } else { ack_reply() };
                        }
                        if !ack {
                            // `tcp_rcv_established`/`tcp_rcv_state_process` drop segments
                            // without ACK (a lone FIN, no flags).
                            return None;
                        }
                        if fin && sock.state == SockState::Established {
                            sock.state = SockState::CloseWait;
                            self.socks.insert(key, sock);
                            return ack_reply();
                        }
                        // Data is acknowledged; in CLOSE_WAIT a FIN again too.
                        if data || (fin && sock.state == SockState::CloseWait) {
                            return ack_reply();
                        }
                        None
                    }
                    // A listening socket (`tcp_rcv_state_process`, TCP_LISTEN): a segment
                    // with ACK gets a RST (SYN-ACK included), a SYN without FIN a SYN-ACK,
                    // anything else is discarded (found by `fwverify conform` on random
                    // traces: SYN-ACK and flagless segments to a listening port).
                    None if listening && ack => Some((Self::tcp_reply(pkt, 0x04), ReplyKind::Reset, CtRef::Invalid)),
                    // `tcp_conn_request` drops a SYN while the accept queue is full.
                    None if listening && syn && !fin && self.accept_queue_full(pkt.dport) => None,
                    None if listening && syn && !fin => {
                        self.sweep_socks(now);
                        self.socks.insert(key, Sock { state: SockState::SynRecv, oow: None, born: now });
                        Some((Self::syn_ack(pkt), ReplyKind::SynAck, CtRef::Invalid))
                    }
                    None if listening => None,
                    None => {
                        // tcp_v4_send_reset: RST with ACK unless the segment had ACK set.
                        let flags = if ack { 0x04 } else { 0x14 };
                        Some((Self::tcp_reply(pkt, flags), ReplyKind::Reset, CtRef::Invalid))
                    }
                }
            }
            proto::UDP => {
                if self.listen.contains(&(proto::UDP, pkt.dport)) || !pkt.src.is_ipv4() {
                    return None;
                }
                self.icmp_allowed(pkt.src, now)
                    .then(|| (Self::icmp_error(pkt, 3), ReplyKind::PortUnreachable, CtRef::Related))
            }
            proto::ICMP | proto::ICMPV6 if pkt.icmp_type == if pkt.proto == proto::ICMP { 8 } else { 128 } => {
                let mut r = Self::reply_base(pkt);
                r.icmp_type = if pkt.proto == proto::ICMP { 0 } else { 129 };
                r.icmp_code = 0;
                r.icmp_id = pkt.icmp_id;
                r.sport = 0;
                r.dport = 0;
                r.len = pkt.len;
                Some((r, ReplyKind::EchoReply, CtRef::Invalid))
            }
            _ => None,
        }
    }

    /// `ip_forward`'s answer to a packet whose TTL would expire: ICMP time exceeded
    /// (type 11 code 0) from the host's own address, rate-limited like every ICMP error.
    /// (IPv6's hop-limit error is not modelled.)
    pub fn time_exceeded(&mut self, pkt: &Packet, now: Jiffies) -> Option<(Packet, ReplyKind, CtRef)> {
        if !pkt.src.is_ipv4()
            || (pkt.proto == proto::ICMP && !matches!(pkt.icmp_type, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18))
        {
            return None;
        }
        if !self.icmp_allowed(pkt.src, now) {
            return None;
        }
        let mut r = Self::icmp_error(pkt, 0);
        r.icmp_type = 11;
        if let Some(a) = self.hosts.iter().find(|a| a.is_ipv4()) {
            r.src = *a;
        }
        Some((r, ReplyKind::TimeExceeded, CtRef::Related))
    }

    /// REJECT's reply (`nf_send_reset` / `nf_send_unreach`).
    pub fn reject_reply(&mut self, pkt: &Packet, with: RejectWith, now: Jiffies) -> Option<(Packet, ReplyKind, CtRef)> {
        if with == RejectWith::TcpReset {
            if pkt.proto != proto::TCP || pkt.flags & 0x04 != 0 {
                return None;
            }
            let flags = if pkt.flags & 0x10 != 0 { 0x04 } else { 0x14 };
            return Some((Self::tcp_reply(pkt, flags), ReplyKind::Reject, CtRef::Invalid));
        }
        // No ICMP error about an ICMP error, nor to broadcast/multicast.
        if pkt.proto == proto::ICMP && !matches!(pkt.icmp_type, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18) {
            return None;
        }
        let code = with.icmp_code()?;
        if !self.icmp_allowed(pkt.src, now) {
            return None;
        }
        let mut r = Self::icmp_error(pkt, code);
        if !self.is_local(pkt.dst) {
            // A forwarded packet is answered from the host's own address.
            if let Some(a) = self.hosts.iter().find(|a| a.is_ipv4() == pkt.src.is_ipv4()) {
                r.src = *a;
            }
        }
        Some((r, ReplyKind::Reject, CtRef::Related))
    }
}
