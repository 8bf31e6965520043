//! The symbolic packet and the encoding of a rule's IP part and `-m` matches as z3
//! formulas (SEMANTICS.md §2 step 1 and §6).
//!
//! A [`SymPacket`] holds one bit-vector per header field the rules look at. Interfaces
//! are a small enumeration ([`IfaceClasses`]): one class per interface name the ruleset
//! mentions, one per `+` prefix, and one for every other name. Matches that depend on
//! kernel state (recent, limit, hashlimit, connlimit, statistic, connmark, the connection
//! fields of `-m conntrack`) or on packet parts this encoding lacks (payload, MAC, TCP
//! MSS, sockets, ipsets, opaque modules) are never guessed: [`encode_match`] returns
//! [`MatchEnc::Unknown`] with the reason, and the caller decides what the unknown part is.

use std::collections::BTreeSet;
use std::net::IpAddr;

use z3::ast::{Bool, BV};

use crate::model::matches::{
    addrtype, ctstate, Addrtype, Conntrack, IcmpType, IpRange, Multiport, PktType, PortSide, TtlOp,
};
use crate::model::{Cidr, Family, Hook, IfaceName, IpMatch, Match, Neg, PortRange, Ruleset, Target};

/// Conntrack states as the values of [`SymPacket::ct`]: the index is the bit position in
/// [`ctstate`] (INVALID = 0 … UNTRACKED = 4).
pub const CT_STATES: [(&str, u8); 5] = [
    ("INVALID", ctstate::INVALID),
    ("NEW", ctstate::NEW),
    ("RELATED", ctstate::RELATED),
    ("ESTABLISHED", ctstate::ESTABLISHED),
    ("UNTRACKED", ctstate::UNTRACKED),
];

/// Link-layer packet types as the values of [`SymPacket::pkttype`] (the kernel's
/// `PACKET_*` numbers).
pub const PKT_TYPES: [(&str, PktType); 4] = [
    ("unicast", PktType::Unicast),
    ("broadcast", PktType::Broadcast),
    ("multicast", PktType::Multicast),
    ("otherhost", PktType::Otherhost),
];

/// Protocols whose headers start with 16-bit source and destination ports (tcp, udp,
/// dccp, sctp, udplite): the port fields are 0 for every other protocol.
pub const PORT_PROTOS: [u8; 5] = [6, 17, 33, 132, 136];

/// A constant bit-vector of `width` bits.
pub fn bv(v: u128, width: u32) -> BV {
    if width <= 64 {
        BV::from_u64(v as u64, width)
    } else {
        BV::from_str(width, &v.to_string()).expect("decimal numeral")
    }
}

/// The bits of an address (IPv4 in the low 32 bits).
pub fn ip_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address width of a family.
pub fn addr_width(f: Family) -> u32 {
    match f {
        Family::V4 => 32,
        Family::V6 => 128,
    }
}

/// Interface names split into the classes the ruleset can tell apart.
///
/// Two interface names are in one class when every `-i`/`-o` test of the ruleset gives
/// both the same result. Each class has a representative name (a real name that
/// belongs to it) and a label for output.
#[derive(Clone, Debug)]
pub struct IfaceClasses {
    /// Representative name of each class (never empty).
    pub reps: Vec<String>,
    /// Label of each class: the exact name, `eth+` for names with that prefix that no
    /// other test singles out, `(other)` for names no test matches.
    pub labels: Vec<String>,
}

impl IfaceClasses {
    /// The classes for a set of interface tests.
    pub fn new(tests: &[IfaceName]) -> IfaceClasses {
        let exact: BTreeSet<&str> = tests.iter().map(|t| t.as_str()).filter(|s| !s.ends_with('+')).collect();
        let prefixes: BTreeSet<&str> = tests.iter().filter_map(|t| t.as_str().strip_suffix('+')).collect();
        let vector = |name: &str| -> Vec<bool> { tests.iter().map(|t| t.matches(name)).collect() };
        let mut reps: Vec<String> = Vec::new();
        let mut labels = Vec::new();
        let mut seen: Vec<Vec<bool>> = Vec::new();
        let mut add = |rep: String, label: String| {
            let v = vector(&rep);
            if !seen.contains(&v) {
                seen.push(v);
                reps.push(rep);
                labels.push(label);
            }
        };
        for e in &exact {
            if !e.is_empty() {
                add(e.to_string(), e.to_string());
            }
        }
        // A name that starts with `p` but with no longer prefix and is no exact name.
        let fresh = |p: &str| -> Option<String> {
            let chars = "0123456789abcdefghijklmnopqrstuvwxyz_-.";
            for a in chars.chars() {
                for b in std::iter::once(None).chain(chars.chars().map(Some)) {
                    let mut s = format!("{p}{a}");
                    if let Some(b) = b {
                        s.push(b);
                    }
                    if s.len() > IfaceName::MAX {
                        continue;
                    }
                    let longer = prefixes.iter().any(|q| q.len() > p.len() && s.starts_with(q));
                    if !longer && !exact.contains(s.as_str()) {
                        return Some(s);
                    }
                }
            }
            None
        };
        for p in &prefixes {
            if p.is_empty() {
                continue;
            }
            let label = if exact.iter().any(|e| e.starts_with(p))
                || prefixes.iter().any(|q| q.len() > p.len() && q.starts_with(p))
            {
                format!("{p}+(other)")
            } else {
                format!("{p}+")
            };
            if let Some(rep) = fresh(p) {
                add(rep, label);
            }
        }
        // Names no prefix (other than the bare `+`) and no exact test matches.
        for cand in ["other0", "zz0", "q0", "x9y8"] {
            if !exact.contains(cand) && !prefixes.iter().any(|p| !p.is_empty() && cand.starts_with(p)) {
                add(cand.to_string(), "(other)".to_string());
                break;
            }
        }
        if reps.is_empty() {
            reps.push("eth0".into());
            labels.push("(any)".into());
        }
        IfaceClasses { reps, labels }
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.reps.len()
    }

    /// True when there are no classes (never: there is always one).
    pub fn is_empty(&self) -> bool {
        self.reps.is_empty()
    }

    /// The class of a real interface name.
    pub fn class_of(&self, name: &str, tests: &[IfaceName]) -> usize {
        let v: Vec<bool> = tests.iter().map(|t| t.matches(name)).collect();
        self.reps
            .iter()
            .position(|r| tests.iter().map(|t| t.matches(r)).collect::<Vec<_>>() == v)
            .unwrap_or(self.reps.len() - 1)
    }

    /// The classes whose names a test (`eth0`, `eth+`) matches.
    pub fn matching(&self, test: &IfaceName) -> Vec<usize> {
        (0..self.reps.len()).filter(|&i| test.matches(&self.reps[i])).collect()
    }

    /// Bits of the enumeration: enough to hold the number of classes itself, so that
    /// `class < len` can be written.
    pub fn width(&self) -> u32 {
        (usize::BITS - self.reps.len().leading_zeros()).max(1)
    }
}

/// What the encoding knows about the ruleset and the host beyond the packet.
#[derive(Clone, Debug)]
pub struct Universe {
    /// Address family.
    pub family: Family,
    /// Every interface test of the ruleset (`-i`, `-o`), in file order.
    pub iface_tests: Vec<IfaceName>,
    /// Interface classes.
    pub ifaces: IfaceClasses,
    /// The host's addresses (`--host`); empty means they are unknown (any address may be
    /// one; a unicast destination in INPUT is one, as in the simulator).
    pub hosts: Vec<IpAddr>,
    /// TCP option kinds `--tcp-option` tests.
    pub tcp_options: Vec<u8>,
}

impl Universe {
    /// The universe of a ruleset on a host with these addresses.
    pub fn of(rs: &Ruleset, hosts: &[IpAddr]) -> Universe {
        let mut tests = Vec::new();
        let mut opts = BTreeSet::new();
        for t in &rs.tables {
            for c in &t.chains {
                for r in &c.rules {
                    for n in [&r.ip.in_iface, &r.ip.out_iface].into_iter().flatten() {
                        if !tests.contains(&n.val) {
                            tests.push(n.val.clone());
                        }
                    }
                    for m in &r.matches {
                        if let Match::Tcp(t) = &m.m {
                            if let Some(o) = t.option {
                                opts.insert(o.val);
                            }
                        }
                    }
                }
            }
        }
        // `lo` always has a class of its own: routing treats it apart (loopback
        // addresses are legal on it only), whether or not a rule names it.
        let lo = IfaceName::new("lo").expect("short name");
        if !tests.contains(&lo) {
            tests.push(lo);
        }
        Universe {
            family: rs.family(),
            ifaces: IfaceClasses::new(&tests),
            iface_tests: tests,
            hosts: hosts.to_vec(),
            tcp_options: opts.into_iter().collect(),
        }
    }

    /// The class of interface `name`.
    pub fn iface_class(&self, name: &str) -> usize {
        self.ifaces.class_of(name, &self.iface_tests)
    }

    /// Address width in bits.
    pub fn width(&self) -> u32 {
        addr_width(self.family)
    }
}

/// Which devices a hook has (SEMANTICS.md §2: an absent device compares as the empty name).
pub fn hook_devices(h: Hook) -> (bool, bool) {
    match h {
        Hook::Prerouting | Hook::Input => (true, false),
        Hook::Forward => (true, true),
        Hook::Output | Hook::Postrouting => (false, true),
    }
}

/// One symbolic packet: every field the stateless matches read, plus the conntrack state
/// and mark the packet carries when it enters a table.
#[derive(Clone, Debug)]
pub struct SymPacket {
    /// Source address (32 or 128 bits).
    pub src: BV,
    /// Destination address.
    pub dst: BV,
    /// IP protocol (8 bits).
    pub proto: BV,
    /// Source port (16 bits; 0 for protocols without ports).
    pub sport: BV,
    /// Destination port.
    pub dport: BV,
    /// TCP flags byte (0 unless TCP).
    pub flags: BV,
    /// ICMP/ICMPv6 type (0 unless ICMP).
    pub icmp_type: BV,
    /// ICMP/ICMPv6 code.
    pub icmp_code: BV,
    /// Input interface class (index into [`IfaceClasses`]).
    pub in_if: BV,
    /// Output interface class.
    pub out_if: BV,
    /// IP total length (16 bits).
    pub len: BV,
    /// TTL (8 bits).
    pub ttl: BV,
    /// Conntrack state index into [`CT_STATES`] (3 bits).
    pub ct: BV,
    /// The connection has source NAT (ctstate SNAT).
    pub snat: Bool,
    /// The connection has destination NAT (ctstate DNAT).
    pub dnat: Bool,
    /// Packet mark on entry to the table (32 bits).
    pub mark: BV,
    /// A non-first fragment.
    pub frag: Bool,
    /// Link-layer type index into [`PKT_TYPES`] (2 bits).
    pub pkttype: BV,
    /// The source is an address of the host (route type LOCAL).
    pub src_local: Bool,
    /// The destination is an address of the host.
    pub dst_local: Bool,
    /// Per `--tcp-option` kind of the ruleset: the option is present.
    pub tcp_opts: Vec<(u8, Bool)>,
    width: u32,
}

fn in_list(x: &BV, vals: &[u8]) -> Bool {
    Bool::or(&vals.iter().map(|v| x.eq(bv(*v as u128, 8))).collect::<Vec<_>>())
}

impl SymPacket {
    /// A packet whose variables are named `{prefix}.src` etc. Distinct prefixes give
    /// independent packets (a bounded model checker makes one per step).
    pub fn new(prefix: &str, u: &Universe) -> SymPacket {
        let w = u.width();
        let iw = u.ifaces.width();
        let n = |f: &str| format!("{prefix}.{f}");
        SymPacket {
            src: BV::new_const(n("src"), w),
            dst: BV::new_const(n("dst"), w),
            proto: BV::new_const(n("proto"), 8),
            sport: BV::new_const(n("sport"), 16),
            dport: BV::new_const(n("dport"), 16),
            flags: BV::new_const(n("flags"), 8),
            icmp_type: BV::new_const(n("icmp_type"), 8),
            icmp_code: BV::new_const(n("icmp_code"), 8),
            in_if: BV::new_const(n("in_if"), iw),
            out_if: BV::new_const(n("out_if"), iw),
            len: BV::new_const(n("len"), 16),
            ttl: BV::new_const(n("ttl"), 8),
            ct: BV::new_const(n("ct"), 3),
            snat: Bool::new_const(n("snat")),
            dnat: Bool::new_const(n("dnat")),
            mark: BV::new_const(n("mark"), 32),
            frag: Bool::new_const(n("frag")),
            pkttype: BV::new_const(n("pkttype"), 2),
            src_local: Bool::new_const(n("src_local")),
            dst_local: Bool::new_const(n("dst_local")),
            tcp_opts: u.tcp_options.iter().map(|k| (*k, Bool::new_const(n(&format!("tcpopt{k}"))))).collect(),
            width: w,
        }
    }

    /// The same packet with another conntrack state variable (constraints put on the
    /// copy's fields bind this packet's, but for the state).
    pub fn with_ct(&self, ct: BV) -> SymPacket {
        SymPacket { ct, ..self.clone() }
    }

    /// Address width.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// The packet's fields equal their values in `m` (the packet of a model).
    pub fn equal_to(&self, m: &z3::Model) -> Bool {
        let mut c = Vec::new();
        for x in [
            &self.src,
            &self.dst,
            &self.proto,
            &self.sport,
            &self.dport,
            &self.flags,
            &self.icmp_type,
            &self.icmp_code,
            &self.in_if,
            &self.out_if,
            &self.len,
            &self.ttl,
            &self.ct,
            &self.mark,
            &self.pkttype,
        ] {
            if let Some(v) = m.eval(x, true) {
                c.push(x.eq(v));
            }
        }
        let bools = [&self.snat, &self.dnat, &self.frag, &self.src_local, &self.dst_local];
        for b in bools.into_iter().chain(self.tcp_opts.iter().map(|(_, b)| b)) {
            if let Some(v) = m.eval(b, true) {
                c.push(b.eq(v));
            }
        }
        Bool::and(&c)
    }

    /// The packet is TCP, UDP, ….
    pub fn is_proto(&self, p: u8) -> Bool {
        self.proto.eq(bv(p as u128, 8))
    }

    /// The conntrack state is one of `bits` ([`ctstate`] bits, SNAT/DNAT included).
    pub fn ct_in(&self, bits: u8) -> Bool {
        let mut alts: Vec<Bool> = CT_STATES
            .iter()
            .enumerate()
            .filter(|(_, (_, b))| bits & b != 0)
            .map(|(i, _)| self.ct.eq(bv(i as u128, 3)))
            .collect();
        if bits & ctstate::SNAT != 0 {
            alts.push(self.snat.clone());
        }
        if bits & ctstate::DNAT != 0 {
            alts.push(self.dnat.clone());
        }
        Bool::or(&alts)
    }

    /// The packet has a conntrack entry (NEW, RELATED or ESTABLISHED).
    pub fn has_conntrack(&self) -> Bool {
        self.ct_in(ctstate::NEW | ctstate::RELATED | ctstate::ESTABLISHED)
    }

    fn addr_in(&self, a: &BV, c: &Cidr) -> Bool {
        let w = self.width;
        a.bvand(bv(ip_bits(c.mask()), w)).eq(bv(ip_bits(c.addr()), w))
    }

    /// Limited broadcast (IPv4 255.255.255.255).
    fn is_broadcast(&self, a: &BV) -> Bool {
        if self.width == 32 {
            a.eq(bv(0xffff_ffff, 32))
        } else {
            Bool::from_bool(false)
        }
    }

    /// Multicast (224.0.0.0/4, ff00::/8).
    fn is_multicast(&self, a: &BV) -> Bool {
        if self.width == 32 {
            a.extract(31, 28).eq(bv(0xe, 4))
        } else {
            a.extract(127, 120).eq(bv(0xff, 8))
        }
    }

    /// Loopback (127.0.0.0/8, ::1).
    fn is_loopback(&self, a: &BV) -> Bool {
        if self.width == 32 {
            a.extract(31, 24).eq(bv(127, 8))
        } else {
            a.eq(bv(1, 128))
        }
    }

    /// An address no real host sends from or is addressed at on a non-loopback
    /// interface: IPv4 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4, 240.0.0.0/4 (255.255.255.255
    /// included); IPv6 `::`, `::1`, ff00::/8, and IPv4-mapped ::ffff:0:0/96.
    pub fn special_addr(&self, a: &BV) -> Bool {
        if self.width == 32 {
            let top = a.extract(31, 24);
            Bool::or(&[top.eq(bv(0, 8)), top.eq(bv(127, 8)), a.extract(31, 29).eq(bv(0b111, 3))])
        } else {
            Bool::or(&[a.eq(bv(0, 128)), a.eq(bv(1, 128)), self.is_multicast(a), a.extract(127, 32).eq(bv(0xffff, 96))])
        }
    }

    /// Constraints every real packet meets: enumerations in range, fields of other
    /// protocols zero, lengths at least the headers, SNAT/DNAT only with a connection,
    /// devices as the hook has them, locality as the host's addresses say.
    pub fn well_formed(&self, u: &Universe, hook: Hook) -> Bool {
        let n = u.ifaces.len() as u128;
        let iw = u.ifaces.width();
        let is_tcp = self.is_proto(6);
        let is_icmp = match u.family {
            Family::V4 => self.is_proto(1),
            Family::V6 => self.is_proto(58),
        };
        let has_ports = in_list(&self.proto, &PORT_PROTOS);
        let z8 = bv(0, 8);
        let z16 = bv(0, 16);
        let base: u128 = match u.family {
            Family::V4 => 20,
            Family::V6 => 40,
        };
        let l4 = |p: u8, n: u128| self.is_proto(p).implies(self.len.bvuge(bv(base + n, 16)));
        let mut c = vec![
            self.in_if.bvult(bv(n, iw)),
            self.out_if.bvult(bv(n, iw)),
            self.ct.bvult(bv(5, 3)),
            has_ports.not().implies(Bool::and(&[self.sport.eq(&z16), self.dport.eq(&z16)])),
            is_tcp.not().implies(self.flags.eq(&z8)),
            is_icmp.not().implies(Bool::and(&[self.icmp_type.eq(&z8), self.icmp_code.eq(&z8)])),
            self.len.bvuge(bv(base, 16)),
            l4(6, 20),
            l4(17, 8),
            is_icmp.implies(self.len.bvuge(bv(base + 8, 16))),
            Bool::or(&[self.snat.clone(), self.dnat.clone()]).implies(self.has_conntrack()),
        ];
        for (_, o) in &self.tcp_opts {
            c.push(o.implies(&is_tcp));
        }
        // Loopback addresses are the host's own.
        c.push(self.is_loopback(&self.src).implies(&self.src_local));
        c.push(self.is_loopback(&self.dst).implies(&self.dst_local));
        if !u.hosts.is_empty() {
            let w = self.width;
            let host = |a: &BV| {
                let mut alts: Vec<Bool> = u.hosts.iter().map(|h| a.eq(bv(ip_bits(*h), w))).collect();
                alts.push(self.is_loopback(a));
                Bool::or(&alts)
            };
            c.push(self.src_local.eq(host(&self.src)));
            c.push(self.dst_local.eq(host(&self.dst)));
        } else {
            // Without `--host` the host's addresses are unknown: any source may be one,
            // and a unicast destination in INPUT is one (routing delivered it locally).
            let special = Bool::or(&[self.is_broadcast(&self.dst), self.is_multicast(&self.dst)]);
            match hook {
                Hook::Input => c.push(self.dst_local.eq(special.not())),
                Hook::Forward => c.push(self.dst_local.not()),
                Hook::Prerouting | Hook::Output | Hook::Postrouting => {}
            }
        }
        match hook {
            Hook::Input => {
                c.push(Bool::or(&[self.dst_local.clone(), self.is_broadcast(&self.dst), self.is_multicast(&self.dst)]))
            }
            Hook::Forward => c.push(self.dst_local.not()),
            _ => {}
        }
        Bool::and(&c)
    }

    /// Packets the routing decision lets through to INPUT or FORWARD (the simulator's
    /// martian checks, `ip_route_input_slow`): no multicast, broadcast, 0.0.0.0/8 or
    /// foreign loopback source, no 0.0.0.0/8 or foreign loopback destination, no
    /// multicast destination but 224.0.0.1, and not fragments (conntrack reassembles).
    pub fn deliverable(&self, u: &Universe) -> Bool {
        let lo = match u.ifaces.reps.iter().position(|r| r == "lo") {
            Some(i) => self.in_if.eq(bv(i as u128, u.ifaces.width())),
            // Only when a wildcard such as `l+` also matches `lo`: the checks below are
            // then merely stricter.
            None => Bool::from_bool(false),
        };
        let mut c = vec![self.frag.not(), self.is_multicast(&self.src).not(), self.is_broadcast(&self.src).not()];
        c.push(self.is_loopback(&self.src).implies(&lo));
        if !u.hosts.is_empty() {
            c.push(lo.not().implies(self.src_local.not()));
        }
        if self.width == 32 {
            c.push(self.src.extract(31, 24).eq(bv(0, 8)).not());
            c.push(self.dst.extract(31, 24).eq(bv(0, 8)).not());
            c.push(self.is_loopback(&self.dst).implies(&lo));
            c.push(self.is_multicast(&self.dst).implies(self.dst.eq(bv(0xe000_0001, 32))));
        }
        Bool::and(&c)
    }

    /// The conntrack state of a packet when the connection table is empty, as the
    /// simulator's `Conntrack::packet_in` gives it (SEMANTICS.md §5): TCP with a flag
    /// combination outside the valid set is INVALID; a SYN (no ACK) or a bare ACK opens a
    /// connection (NEW; loose pick-up); other TCP is INVALID; UDP and other protocols are
    /// NEW; ICMP requests (8, 13, 15, 17) are NEW and every other ICMP type INVALID;
    /// ICMPv6 echo (128) and node information (139) are NEW, errors (1–4) INVALID,
    /// neighbour discovery and MLD (130–137, 143) UNTRACKED, the rest INVALID.
    pub fn first_packet_ct(&self, u: &Universe) -> Bool {
        let idx = |s: u8| bv(CT_STATES.iter().position(|(_, b)| *b == s).expect("state") as u128, 3);
        let (invalid, new, untracked) = (idx(ctstate::INVALID), idx(ctstate::NEW), idx(ctstate::UNTRACKED));
        let f = self.flags.bvand(bv(!(0x08u8 | 0x40 | 0x80) as u128, 8));
        // SYN, SYN|URG, ACK, ACK|URG open a connection; the other valid combinations
        // (SYN|ACK, RST, RST|ACK, FIN|ACK, FIN|ACK|URG) need one.
        let opens = in_list(&f, &[0x02, 0x22, 0x10, 0x30]);
        let tcp = opens.ite(&new, &invalid);
        let state = match u.family {
            Family::V4 => {
                let req = in_list(&self.icmp_type, &[8, 13, 15, 17]);
                let icmp = req.ite(&new, &invalid);
                self.is_proto(6).ite(&tcp, &self.is_proto(1).ite(&icmp, &new))
            }
            Family::V6 => {
                let t = &self.icmp_type;
                let nd = Bool::or(&[Bool::and(&[t.bvuge(bv(130, 8)), t.bvule(bv(137, 8))]), t.eq(bv(143, 8))]);
                let req = in_list(t, &[128, 139]);
                let icmp = nd.ite(&untracked, &req.ite(&new, &invalid));
                self.is_proto(6).ite(&tcp, &self.is_proto(58).ite(&icmp, &new))
            }
        };
        self.ct.eq(state)
    }
}

/// Why a match cannot be encoded exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unencodable {
    /// It depends on kernel state (recent tables, token buckets, connections, counters).
    State(String),
    /// It reads a part of the packet or host the encoding does not model.
    Field(String),
    /// The module is kept opaque.
    Opaque(String),
}

impl std::fmt::Display for Unencodable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unencodable::State(s) => write!(f, "{s} depends on kernel state"),
            Unencodable::Field(s) => write!(f, "{s} reads what the encoding does not model"),
            Unencodable::Opaque(s) => write!(f, "match {s} is kept opaque"),
        }
    }
}

/// The encoding of one match.
#[derive(Clone, Debug)]
pub enum MatchEnc {
    /// The match holds exactly when this does.
    Exact(Bool),
    /// Not encodable: the match holds when `sure` holds, fails unless `maybe` holds, and
    /// is unknown in between. Callers substitute the unknown (see [`MatchEnc::with`]).
    Unknown {
        /// Sufficient condition.
        sure: Bool,
        /// Necessary condition.
        maybe: Bool,
        /// Why.
        why: Unencodable,
    },
}

impl MatchEnc {
    /// The condition with `x` standing for the unknown part: `sure ∨ (maybe ∧ x)`.
    pub fn with(&self, x: &Bool) -> Bool {
        match self {
            MatchEnc::Exact(b) => b.clone(),
            MatchEnc::Unknown { sure, maybe, .. } => Bool::or(&[sure.clone(), Bool::and(&[maybe.clone(), x.clone()])]),
        }
    }

    fn unknown(why: Unencodable) -> MatchEnc {
        MatchEnc::Unknown { sure: Bool::from_bool(false), maybe: Bool::from_bool(true), why }
    }
}

/// What a match is evaluated against: the packet, the hook, and the packet's current
/// mark and TTL (targets earlier in the table may have changed them).
pub struct MatchCx<'a> {
    /// The packet.
    pub pkt: &'a SymPacket,
    /// The universe.
    pub u: &'a Universe,
    /// The hook.
    pub hook: Hook,
    /// Current mark.
    pub mark: &'a BV,
    /// Current TTL.
    pub ttl: &'a BV,
}

fn neg(b: Bool, inv: bool) -> Bool {
    if inv {
        b.not()
    } else {
        b
    }
}

fn range16(x: &BV, r: &PortRange) -> Bool {
    Bool::and(&[x.bvuge(bv(r.lo as u128, 16)), x.bvule(bv(r.hi as u128, 16))])
}

fn port(x: &BV, r: &Option<Neg<PortRange>>) -> Bool {
    match r {
        Some(r) => neg(range16(x, &r.val), r.inv),
        None => Bool::from_bool(true),
    }
}

fn iface(cx: &MatchCx<'_>, var: &BV, present: bool, t: &Neg<IfaceName>) -> Bool {
    let hit = if present {
        let iw = cx.u.ifaces.width();
        Bool::or(&cx.u.ifaces.matching(&t.val).into_iter().map(|i| var.eq(bv(i as u128, iw))).collect::<Vec<_>>())
    } else {
        Bool::from_bool(t.val.matches(""))
    };
    neg(hit, t.inv)
}

/// The IP part of a rule (`-s -d -i -o -p -f`, SEMANTICS.md §2 step 1).
pub fn encode_ip(ip: &IpMatch, cx: &MatchCx<'_>) -> Bool {
    let p = cx.pkt;
    let (has_in, has_out) = hook_devices(cx.hook);
    let mut c = Vec::new();
    if let Some(s) = &ip.src {
        c.push(neg(p.addr_in(&p.src, &s.val), s.inv));
    }
    if let Some(d) = &ip.dst {
        c.push(neg(p.addr_in(&p.dst, &d.val), d.inv));
    }
    if let Some(t) = &ip.in_iface {
        c.push(iface(cx, &p.in_if, has_in, t));
    }
    if let Some(t) = &ip.out_iface {
        c.push(iface(cx, &p.out_if, has_out, t));
    }
    if let Some(pr) = &ip.proto {
        c.push(neg(p.is_proto(pr.val.0), pr.inv));
    }
    match ip.fragment {
        Some(false) => c.push(p.frag.clone()),
        Some(true) => c.push(p.frag.not()),
        None => {}
    }
    Bool::and(&c)
}

fn icmp_type(p: &SymPacket, t: &IcmpType) -> Bool {
    let code = Bool::and(&[p.icmp_code.bvuge(bv(t.code_min as u128, 8)), p.icmp_code.bvule(bv(t.code_max as u128, 8))]);
    if t.ty == 0xff {
        Bool::from_bool(true)
    } else {
        Bool::and(&[p.icmp_type.eq(bv(t.ty as u128, 8)), code])
    }
}

fn multiport(p: &SymPacket, m: &Multiport) -> Bool {
    let hits: Vec<Bool> = m
        .ports
        .iter()
        .map(|r| match m.side {
            PortSide::Src => range16(&p.sport, r),
            PortSide::Dst => range16(&p.dport, r),
            PortSide::Either => Bool::or(&[range16(&p.sport, r), range16(&p.dport, r)]),
        })
        .collect();
    Bool::and(&[p.frag.not(), neg(Bool::or(&hits), m.inv)])
}

fn iprange(p: &SymPacket, a: &BV, r: &Neg<IpRange>) -> Bool {
    let w = p.width;
    let same = r.val.lo.is_ipv4() == (w == 32) && r.val.hi.is_ipv4() == (w == 32);
    let inside = if same {
        Bool::and(&[a.bvuge(bv(ip_bits(r.val.lo), w)), a.bvule(bv(ip_bits(r.val.hi), w))])
    } else {
        Bool::from_bool(false)
    };
    neg(inside, r.inv)
}

/// The route types (`addrtype` bits) an address can have: LOCAL for the host's addresses
/// and loopback, BROADCAST for 255.255.255.255, MULTICAST, else UNICAST. Other route
/// types (blackhole, unreachable, prohibit, …) need routes the host model lacks and never hold.
fn addr_type_in(p: &SymPacket, a: &BV, local: &Bool, bits: u16) -> Bool {
    let bit = |name: &str| addrtype::NAMES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b).expect("name");
    let bc = p.is_broadcast(a);
    let mc = p.is_multicast(a);
    let mut alts = Vec::new();
    if bits & bit("LOCAL") != 0 {
        alts.push(local.clone());
    }
    if bits & bit("BROADCAST") != 0 {
        alts.push(bc.clone());
    }
    if bits & bit("MULTICAST") != 0 {
        alts.push(mc.clone());
    }
    if bits & bit("UNICAST") != 0 {
        alts.push(Bool::and(&[local.not(), bc.not(), mc.not()]));
    }
    Bool::or(&alts)
}

fn addrtype_match(p: &SymPacket, a: &Addrtype) -> MatchEnc {
    if a.limit_iface.is_some() {
        return MatchEnc::unknown(Unencodable::Field("addrtype --limit-iface-in/out (per-device routes)".into()));
    }
    let mut c = Vec::new();
    if let Some(s) = a.src {
        c.push(neg(addr_type_in(p, &p.src, &p.src_local, s.val), s.inv));
    }
    if let Some(d) = a.dst {
        c.push(neg(addr_type_in(p, &p.dst, &p.dst_local, d.val), d.inv));
    }
    MatchEnc::Exact(Bool::and(&c))
}

/// `-m conntrack` as xt_conntrack evaluates it: the `--ctstate` test, then, without a
/// connection, true exactly when a state test was given; with a connection the other
/// tests read it (unknown here).
fn conntrack_match(p: &SymPacket, m: &Conntrack) -> MatchEnc {
    let state = match m.state {
        Some(s) => neg(p.ct_in(s.val), s.inv),
        None => Bool::from_bool(true),
    };
    let others = m.tests_connection();
    if !others {
        return MatchEnc::Exact(state);
    }
    let has = p.has_conntrack();
    let sure = if m.state.is_some() { Bool::and(&[state.clone(), has.not()]) } else { Bool::from_bool(false) };
    MatchEnc::Unknown {
        sure,
        maybe: Bool::and(&[state, has]),
        why: Unencodable::State("conntrack --ctproto/--ctorig*/--ctrepl*/--ctstatus/--ctexpire/--ctdir".into()),
    }
}

/// Encodes one `-m` match (SEMANTICS.md §6).
pub fn encode_match(m: &Match, cx: &MatchCx<'_>) -> MatchEnc {
    let p = cx.pkt;
    let t = Bool::from_bool(true);
    let exact = MatchEnc::Exact;
    match m {
        Match::Tcp(tc) => {
            let flags = match &tc.flags {
                Some(f) => neg(p.flags.bvand(bv(f.val.mask.0 as u128, 8)).eq(bv(f.val.comp.0 as u128, 8)), f.inv),
                None => t,
            };
            let option = match &tc.option {
                Some(o) => {
                    let present = p.tcp_opts.iter().find(|(k, _)| *k == o.val).map(|(_, b)| b.clone());
                    neg(present.unwrap_or_else(|| Bool::from_bool(false)), o.inv)
                }
                None => Bool::from_bool(true),
            };
            exact(Bool::and(&[
                p.is_proto(6),
                p.frag.not(),
                port(&p.sport, &tc.sport),
                port(&p.dport, &tc.dport),
                flags,
                option,
            ]))
        }
        Match::Udp(uc) => {
            exact(Bool::and(&[p.is_proto(17), p.frag.not(), port(&p.sport, &uc.sport), port(&p.dport, &uc.dport)]))
        }
        Match::Icmp(ic) => {
            let ty = match &ic.ty {
                Some(ty) => neg(icmp_type(p, &ty.val), ty.inv),
                None => t,
            };
            exact(Bool::and(&[p.is_proto(1), p.frag.not(), ty]))
        }
        Match::Icmp6(ic) => {
            let hit = Bool::and(&[
                p.icmp_type.eq(bv(ic.ty as u128, 8)),
                p.icmp_code.bvuge(bv(ic.code_min as u128, 8)),
                p.icmp_code.bvule(bv(ic.code_max as u128, 8)),
            ]);
            exact(Bool::and(&[p.is_proto(58), p.frag.not(), neg(hit, ic.inv)]))
        }
        Match::Multiport(mp) => exact(multiport(p, mp)),
        Match::State(s) => exact(neg(p.ct_in(s.states), s.inv)),
        Match::Conntrack(c) => conntrack_match(p, c),
        Match::Comment(_) => exact(t),
        Match::Mark(mk) => exact(neg(cx.mark.bvand(bv(mk.mask as u128, 32)).eq(bv(mk.value as u128, 32)), mk.inv)),
        Match::Length(l) => {
            exact(neg(Bool::and(&[p.len.bvuge(bv(l.min as u128, 16)), p.len.bvule(bv(l.max as u128, 16))]), l.inv))
        }
        Match::Ttl(tt) => {
            let v = bv(tt.value as u128, 8);
            exact(match tt.op {
                TtlOp::Eq => cx.ttl.eq(&v),
                TtlOp::Ne => cx.ttl.eq(&v).not(),
                TtlOp::Lt => cx.ttl.bvult(&v),
                TtlOp::Gt => cx.ttl.bvugt(&v),
            })
        }
        Match::Iprange(r) => {
            let mut c = Vec::new();
            if let Some(s) = &r.src {
                c.push(iprange(p, &p.src, s));
            }
            if let Some(d) = &r.dst {
                c.push(iprange(p, &p.dst, d));
            }
            exact(Bool::and(&c))
        }
        Match::Addrtype(a) => addrtype_match(p, a),
        Match::Pkttype(pt) => {
            let i = PKT_TYPES.iter().position(|(_, t)| *t == pt.ty).expect("type");
            exact(neg(p.pkttype.eq(bv(i as u128, 2)), pt.inv))
        }
        // `--set` records the address and returns true (false with `!`) whether or not
        // the address was there (SEMANTICS.md §3 steps 4-5): its value needs no state.
        Match::Recent(r) if r.mode == crate::model::matches::RecentMode::Set => exact(Bool::from_bool(!r.inv)),
        Match::Recent(_) => MatchEnc::unknown(Unencodable::State("recent".into())),
        Match::Limit(_) => MatchEnc::unknown(Unencodable::State("limit".into())),
        Match::Hashlimit(_) => MatchEnc::unknown(Unencodable::State("hashlimit".into())),
        Match::Connlimit(_) => MatchEnc::unknown(Unencodable::State("connlimit".into())),
        Match::Statistic(_) => MatchEnc::unknown(Unencodable::State("statistic".into())),
        Match::Connmark(_) => MatchEnc::unknown(Unencodable::State("connmark".into())),
        Match::Set(_) => MatchEnc::unknown(Unencodable::State("set (ipset contents)".into())),
        Match::Mac(_) => MatchEnc::unknown(Unencodable::Field("mac (Ethernet source)".into())),
        Match::Owner(_) => MatchEnc::unknown(Unencodable::Field("owner (local sockets)".into())),
        Match::Tcpmss(_) => MatchEnc::unknown(Unencodable::Field("tcpmss (TCP MSS option)".into())),
        Match::Physdev(_) => MatchEnc::unknown(Unencodable::Field("physdev (bridge ports)".into())),
        Match::String(_) => MatchEnc::unknown(Unencodable::Field("string (payload)".into())),
        Match::Opaque(o) => MatchEnc::unknown(Unencodable::Opaque(o.module.clone())),
    }
}

/// True when a target may change the packet's mark (MARK, CONNMARK --restore-mark).
pub fn sets_mark(t: &Target) -> bool {
    use crate::model::targets::ConnmarkMode;
    match t {
        Target::Mark(_) => true,
        Target::Connmark(c) => matches!(c.mode, ConnmarkMode::Restore { .. }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iface_classes_split_wildcards() {
        let t = |s: &str| IfaceName::new(s).unwrap();
        let tests = [t("eth0"), t("eth+"), t("lo"), t("wg+")];
        let c = IfaceClasses::new(&tests);
        assert_eq!(c.labels, ["eth0", "lo", "eth+(other)", "wg+", "(other)"]);
        assert_eq!(c.matching(&t("eth+")), [0, 2]);
        assert_eq!(c.class_of("eth7", &tests), 2);
        assert_eq!(c.class_of("ppp0", &tests), 4);
        assert_eq!(c.class_of("wg0", &tests), 3);
        assert_eq!(c.width(), 3);
    }
}
