//! Flattens a model into the simulator's program: rules in one `Vec`, chains as index
//! ranges, jumps as chain ids, recent tables and limit buckets as small ids. Anything the
//! simulator cannot evaluate is an error naming the rule — never a silent guess.

use std::net::IpAddr;

use super::recent::RecentCheck;
use super::{Ifaces, SimConfig};
use crate::model::matches::{
    Addrtype, Conntrack as CtMatch, FlagTest, Hashlimit, IcmpType, Iprange, Multiport, Physdev, PktType, RecentMode,
    StatMode, Ttl,
};
use crate::model::print::save_order;
use crate::model::targets::RejectWith;
use crate::model::targets::{Connmark, Flow, NatPorts};
use crate::model::{Cidr, Hook, IfaceName, Match, Neg, Policy, PortRange, Ruleset, Span, TableName, Target};
use crate::packet::IfaceId;

/// Index of a compiled rule in the program (`Program::rules`).
pub type RuleId = u32;

/// What a report needs to name a rule.
#[derive(Clone, Debug)]
pub struct RuleInfo {
    /// Table.
    pub table: TableName,
    /// Chain name.
    pub chain: String,
    /// 1-based position in the chain.
    pub pos: u32,
    /// Source span.
    pub span: Span,
}

/// An interface test, resolved against the engine's interface table at compile time.
#[derive(Clone, Debug)]
pub(crate) struct IfaceTest {
    pub inv: bool,
    /// `matches[iface id]`; ids past the end never match.
    pub matches: Vec<bool>,
    pub name: IfaceName,
}

impl IfaceTest {
    pub(crate) fn eval(&self, id: Option<IfaceId>) -> bool {
        let hit = match id {
            Some(i) => self.matches.get(i.0 as usize).copied().unwrap_or(false),
            // No device: the kernel compares against an empty name.
            None => self.name.matches(""),
        };
        hit != self.inv
    }
}

#[derive(Clone, Debug)]
pub(crate) struct CIp {
    pub src: Option<Neg<Cidr>>,
    pub dst: Option<Neg<Cidr>>,
    pub in_iface: Option<IfaceTest>,
    pub out_iface: Option<IfaceTest>,
    pub proto: Option<Neg<u8>>,
    pub fragment: Option<bool>,
}

/// `-m owner` with numeric ids: `[!] --socket-exists` (`Some(inverted)`), and
/// `[!] --uid-owner` / `[!] --gid-owner` as (inverted, first id, last id).
#[derive(Clone, Copy, Debug)]
pub(crate) struct OwnerTest {
    pub socket_exists: Option<bool>,
    pub uid: Option<(bool, u32, u32)>,
    pub gid: Option<(bool, u32, u32)>,
}

#[derive(Clone, Debug)]
pub(crate) enum CMatch {
    Tcp {
        sport: Option<Neg<PortRange>>,
        dport: Option<Neg<PortRange>>,
        flags: Option<Neg<FlagTest>>,
        option: Option<Neg<u8>>,
    },
    Udp {
        sport: Option<Neg<PortRange>>,
        dport: Option<Neg<PortRange>>,
    },
    Icmp(Option<Neg<IcmpType>>),
    Multiport(Multiport),
    State {
        inv: bool,
        bits: u8,
    },
    Recent(RecentCheck),
    Limit(u32),
    True,
    /// A match that never holds (`-m policy --pol ipsec`: nothing here is IPsec).
    False,
    Conntrack(Box<CtMatch>),
    Mark {
        inv: bool,
        value: u32,
        mask: u32,
    },
    Connmark {
        inv: bool,
        value: u32,
        mask: u32,
    },
    Length {
        inv: bool,
        min: u16,
        max: u16,
    },
    Ttl(Ttl),
    Owner(OwnerTest),
    Iprange(Iprange),
    Icmp6 {
        inv: bool,
        ty: u8,
        code_min: u8,
        code_max: u8,
    },
    Pkttype {
        inv: bool,
        ty: PktType,
    },
    Addrtype(Addrtype),
    /// `-m statistic --mode nth`: counter id, every, inv.
    Nth {
        id: u32,
        every: u32,
        inv: bool,
    },
    /// `-m tcpmss`: scenario packets carry no TCP options, so the result is `inv`.
    Tcpmss {
        inv: bool,
    },
    /// `-m physdev` on packets that are never bridged.
    Physdev(Physdev),
    Hashlimit {
        table: u32,
        above: bool,
    },
    Connlimit {
        id: u32,
        above: bool,
        limit: u32,
        mask: u8,
        daddr: bool,
    },
}

#[derive(Clone, Debug)]
pub(crate) enum CTarget {
    Accept,
    Drop,
    Return,
    Continue,
    Jump(u32),
    Goto(u32),
    Reject(RejectWith),
    Mark {
        value: u32,
        mask: u32,
    },
    Connmark(Connmark),
    Notrack,
    /// DNAT/SNAT/MASQUERADE/REDIRECT: records the binding, then ACCEPT.
    Nat(NatTo),
}

/// Where a NAT target maps the first packet of a connection (the deterministic choice
/// documented on [`NatTo::pick`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NatTo {
    /// Source (SNAT, MASQUERADE) or destination (DNAT, REDIRECT).
    pub src: bool,
    /// The address: a fixed one (first of the range), the host's own (`Host`), or the
    /// packet's own (`Keep`).
    pub addr: NatAddr,
    /// Ports: `None` keeps the port.
    pub ports: Option<NatPorts>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NatAddr {
    Keep,
    Fixed(IpAddr),
    /// REDIRECT (incoming interface's address) and MASQUERADE (outgoing interface's):
    /// the first `--host` address of the packet's family; the packet's own address when
    /// there is none.
    /// REDIRECT of a locally generated packet (nat OUTPUT) uses 127.0.0.1 / ::1.
    Host,
}

impl NatTo {
    /// The (address, port) the packet's `addr`/`port` (its source or destination, as
    /// `src` says) is mapped to. Deterministic, where the kernel may pick otherwise
    /// (`get_unique_tuple`, `nf_nat_l4proto_unique_tuple`): the first address of an
    /// address range (the kernel hashes the tuple into the range); the original port
    /// without `--to-ports`/`:PORTS`, or when it lies inside the port range (the kernel
    /// changes it only on a clash with another connection's tuple, which is not
    /// modelled); otherwise the range's first port (the kernel's choice for DNAT and
    /// REDIRECT; for SNAT/MASQUERADE it starts at a random offset); with `/BASE`
    /// (shifted map) `lo + (port - base) % size`.
    pub fn pick(&self, addr: IpAddr, port: u16, hosts: &[IpAddr], output: bool) -> (IpAddr, u16) {
        let a = match self.addr {
            NatAddr::Keep => addr,
            NatAddr::Fixed(a) => a,
            NatAddr::Host if output && !self.src => {
                if addr.is_ipv4() {
                    IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
                } else {
                    IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
                }
            }
            NatAddr::Host => hosts.iter().copied().find(|h| h.is_ipv4() == addr.is_ipv4()).unwrap_or(addr),
        };
        let p = match self.ports {
            None => port,
            Some(NatPorts { range, base: Some(b) }) => {
                let size = (range.hi as u32 - range.lo as u32) + 1;
                let off = port.wrapping_sub(b) as u32 % size;
                (range.lo as u32 + off) as u16
            }
            Some(NatPorts { range, base: None }) if range.contains(port) => port,
            Some(NatPorts { range, base: None }) => range.lo,
        };
        (a, p)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct CRule {
    pub ip: CIp,
    pub matches: (u32, u32),
    pub target: CTarget,
}

#[derive(Clone, Debug)]
pub(crate) struct CChain {
    pub first: u32,
    pub end: u32,
    pub policy: Option<Policy>,
}

#[derive(Clone, Debug)]
pub(crate) struct CTable {
    pub name: TableName,
    /// Chain id of each hook's built-in chain.
    pub hooks: [Option<u32>; 5],
}

/// A recent table as declared by the rules: name, mask of the creating rule, ring size.
#[derive(Clone, Debug)]
pub struct RecentDecl {
    /// `--name`
    pub name: String,
    /// Mask from the first rule naming the table.
    pub mask: IpAddr,
    /// Stamps per entry.
    pub ring: usize,
}

/// A limit bucket declared by a rule.
#[derive(Clone, Copy, Debug)]
pub struct LimitDecl {
    /// Interval in 1/10000 s.
    pub avg: u32,
    /// Burst.
    pub burst: u32,
}

/// The compiled ruleset.
#[derive(Clone, Debug)]
pub struct Program {
    pub(crate) rules: Vec<CRule>,
    pub(crate) matches: Vec<CMatch>,
    pub(crate) chains: Vec<CChain>,
    pub(crate) tables: Vec<CTable>,
    /// Per rule: where it is.
    pub info: Vec<RuleInfo>,
    /// Per chain: (table, name).
    pub chain_names: Vec<(TableName, String)>,
    /// Recent tables.
    pub recent: Vec<RecentDecl>,
    /// Limit buckets, one per `-m limit`.
    pub limits: Vec<LimitDecl>,
    /// `statistic --mode nth` counters: initial value (`--packet`).
    pub nth: Vec<u32>,
    /// Hashlimit tables (configuration of the creating rule) and, per rule, its table.
    pub hashlimits: Vec<Hashlimit>,
    /// Number of connlimit rules.
    pub connlimits: u32,
    /// The deepest jump stack possible.
    pub(crate) max_depth: usize,
    /// Per rule: its prefilter.
    pub(crate) pre: Vec<Pre>,
    /// Per protocol class (`class_index`), per rule index `i` (and one past the last):
    /// the first rule at or after `i` whose prefilter admits the class.
    pub(crate) next: [Vec<u32>; 4],
    /// Runs of rules testing one key (`Pre::run`).
    pub(crate) runs: Vec<Run>,
}

/// Why a ruleset cannot be simulated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// The rule.
    pub span: Span,
    /// What is missing.
    pub what: String,
}

fn roundup_pow2(n: u32) -> usize {
    (n.max(1) as usize).next_power_of_two()
}

/// Compiles `rs`. Interface names of the tests are resolved against `ifaces`, which
/// must already hold every interface packets will use.
pub fn compile(rs: &Ruleset, cfg: &SimConfig, ifaces: &Ifaces) -> Result<Program, Vec<Unsupported>> {
    let mut p = Program {
        rules: Vec::new(),
        matches: Vec::new(),
        chains: Vec::new(),
        tables: Vec::new(),
        info: Vec::new(),
        chain_names: Vec::new(),
        recent: Vec::new(),
        limits: Vec::new(),
        nth: Vec::new(),
        hashlimits: Vec::new(),
        connlimits: 0,
        max_depth: 1,
        pre: Vec::new(),
        next: Default::default(),
        runs: Vec::new(),
    };
    let mut errs = Vec::new();
    // Tables are loaded in file order; within a table the kernel instantiates matches in
    // blob order (built-ins, then user chains by name), so that is the order in which
    // recent tables are created and get their mask.
    for t in &rs.tables {
        let order = save_order(t);
        let base = p.chains.len() as u32;
        let ids: Vec<(&str, u32)> = order.iter().enumerate().map(|(i, c)| (c.name.as_str(), base + i as u32)).collect();
        let id_of = |n: &str| ids.iter().find(|(m, _)| *m == n).map(|(_, i)| *i);
        let mut hooks = [None; 5];
        for c in &order {
            let cid = id_of(&c.name).expect("chain is in its table");
            if let Some(h) = c.hook {
                hooks[Hook::ALL.iter().position(|x| *x == h).expect("hook")] = Some(cid);
            }
            let first = p.rules.len() as u32;
            for (ri, r) in c.rules.iter().enumerate() {
                let m0 = p.matches.len() as u32;
                for m in &r.matches {
                    match compile_match(&m.m, cfg, &mut p) {
                        // A match that always holds (`-m comment`) is left out.
                        Ok(CMatch::True) => {}
                        Ok(cm) => p.matches.push(cm),
                        Err(what) => errs.push(Unsupported { span: r.span, what }),
                    }
                }
                let target = match &r.target {
                    None => CTarget::Continue,
                    Some(ti) => match &ti.t {
                        Target::Accept => CTarget::Accept,
                        Target::Drop => CTarget::Drop,
                        Target::Return => CTarget::Return,
                        Target::Chain(n) => {
                            let id = id_of(n).expect("jump targets are checked by parse");
                            if ti.goto {
                                CTarget::Goto(id)
                            } else {
                                CTarget::Jump(id)
                            }
                        }
                        Target::Reject(r) => CTarget::Reject(r.with),
                        Target::Log(_) | Target::Nflog(_) => CTarget::Continue,
                        // TCPMSS rewrites an option no match of ours reads.
                        Target::Tcpmss(_) => CTarget::Continue,
                        Target::Mark(m) => CTarget::Mark { value: m.value, mask: m.mask },
                        Target::Connmark(c) => CTarget::Connmark(*c),
                        Target::Notrack => CTarget::Notrack,
                        Target::Dnat(d) if !d.random => CTarget::Nat(NatTo {
                            src: false,
                            addr: d.to.addrs.map_or(NatAddr::Keep, |(lo, _)| NatAddr::Fixed(lo)),
                            ports: d.to.ports,
                        }),
                        Target::Snat(d) if !d.random && !d.random_fully => CTarget::Nat(NatTo {
                            src: true,
                            addr: d.to.addrs.map_or(NatAddr::Keep, |(lo, _)| NatAddr::Fixed(lo)),
                            ports: d.to.ports,
                        }),
                        Target::Masquerade(m) if !m.random && !m.random_fully => {
                            CTarget::Nat(NatTo { src: true, addr: NatAddr::Host, ports: m.ports })
                        }
                        Target::Redirect(m) if !m.random => {
                            CTarget::Nat(NatTo { src: false, addr: NatAddr::Host, ports: m.ports })
                        }
                        Target::Dnat(_) | Target::Snat(_) | Target::Masquerade(_) | Target::Redirect(_) => {
                            errs.push(Unsupported {
                                span: r.span,
                                what: format!(
                                    "target {} --random (the kernel's random choice cannot be reproduced)",
                                    ti.t.name()
                                ),
                            });
                            CTarget::Continue
                        }
                        Target::Ct(ct) if ct.notrack => CTarget::Notrack,
                        Target::Ct(ct)
                            if ct.helper.is_none() && ct.timeout.is_none() && ct.zone == Default::default() =>
                        {
                            CTarget::Continue
                        }
                        Target::Opaque(o)
                            if o.module != "NETMAP"
                                && matches!(
                                    o.module.as_str(),
                                    "AUDIT" | "CHECKSUM" | "IDLETIMER" | "LED" | "RATEEST" | "TRACE" | "ULOG"
                                )
                                && ti.t.flow() == Flow::Continue =>
                        {
                            CTarget::Continue
                        }
                        other => {
                            errs.push(Unsupported { span: r.span, what: format!("target {}", other.name()) });
                            CTarget::Continue
                        }
                    },
                };
                let ip = CIp {
                    src: r.ip.src,
                    dst: r.ip.dst,
                    in_iface: r.ip.in_iface.as_ref().map(|n| iface_test(n, ifaces)),
                    out_iface: r.ip.out_iface.as_ref().map(|n| iface_test(n, ifaces)),
                    proto: r.ip.proto.map(|n| Neg { inv: n.inv, val: n.val.0 }),
                    fragment: r.ip.fragment,
                };
                p.rules.push(CRule { ip, matches: (m0, p.matches.len() as u32), target });
                p.info.push(RuleInfo { table: t.name, chain: c.name.clone(), pos: ri as u32 + 1, span: r.span });
            }
            p.chains.push(CChain { first, end: p.rules.len() as u32, policy: c.policy });
            p.chain_names.push((t.name, c.name.clone()));
        }
        p.max_depth += order.iter().filter(|c| c.hook.is_none()).count();
        p.tables.push(CTable { name: t.name, hooks });
    }
    if errs.is_empty() {
        build_prefilter(&mut p);
        Ok(p)
    } else {
        Err(errs)
    }
}

fn iface_test(n: &Neg<IfaceName>, ifaces: &Ifaces) -> IfaceTest {
    IfaceTest { inv: n.inv, matches: ifaces.names().iter().map(|d| n.val.matches(d)).collect(), name: n.val.clone() }
}

fn compile_match(m: &Match, cfg: &SimConfig, p: &mut Program) -> Result<CMatch, String> {
    Ok(match m {
        Match::Tcp(t) => CMatch::Tcp { sport: t.sport, dport: t.dport, flags: t.flags, option: t.option },
        Match::Udp(u) => CMatch::Udp { sport: u.sport, dport: u.dport },
        Match::Icmp(i) => CMatch::Icmp(i.ty),
        Match::Multiport(m) => CMatch::Multiport(m.clone()),
        Match::State(s) => CMatch::State { inv: s.inv, bits: s.states },
        Match::Comment(_) => CMatch::True,
        Match::Limit(l) => {
            p.limits.push(LimitDecl { avg: l.avg, burst: l.burst });
            CMatch::Limit(p.limits.len() as u32 - 1)
        }
        Match::Recent(r) => {
            let want = if cfg.ip_pkt_list_tot != 0 && r.hitcount < cfg.ip_pkt_list_tot {
                roundup_pow2(cfg.ip_pkt_list_tot)
            } else if r.hitcount != 0 {
                roundup_pow2(r.hitcount)
            } else {
                32
            };
            let table = match p.recent.iter().position(|d| d.name == r.name) {
                Some(i) => {
                    let d = &mut p.recent[i];
                    d.ring = d.ring.max(want);
                    i
                }
                None => {
                    p.recent.push(RecentDecl { name: r.name.clone(), mask: r.mask, ring: want });
                    p.recent.len() - 1
                }
            } as u32;
            let window = r.seconds.map(|s| s.wrapping_mul(cfg.hz));
            let _ = RecentMode::Set;
            CMatch::Recent(RecentCheck {
                table,
                mode: r.mode,
                inv: r.inv,
                window,
                reap: r.reap,
                hitcount: r.hitcount,
                rttl: r.rttl,
                side: r.side,
            })
        }
        Match::Conntrack(c) => CMatch::Conntrack(Box::new(c.clone())),
        Match::Mark(m) => CMatch::Mark { inv: m.inv, value: m.value, mask: m.mask },
        Match::Connmark(m) => CMatch::Connmark { inv: m.inv, value: m.value, mask: m.mask },
        Match::Length(l) => CMatch::Length { inv: l.inv, min: l.min, max: l.max },
        Match::Ttl(t) => CMatch::Ttl(*t),
        Match::Iprange(r) => CMatch::Iprange(*r),
        Match::Icmp6(i) => CMatch::Icmp6 { inv: i.inv, ty: i.ty, code_min: i.code_min, code_max: i.code_max },
        Match::Pkttype(t) => CMatch::Pkttype { inv: t.inv, ty: t.ty },
        Match::Addrtype(a) => {
            if a.limit_iface.is_some() {
                return Err("match addrtype with --limit-iface-in/out".into());
            }
            CMatch::Addrtype(*a)
        }
        Match::Statistic(st) => match st.mode {
            StatMode::Nth { every, packet } => {
                p.nth.push(packet);
                CMatch::Nth { id: p.nth.len() as u32 - 1, every, inv: st.inv }
            }
            StatMode::Random { .. } => {
                return Err("match statistic --mode random (the kernel's random numbers cannot be reproduced)".into())
            }
        },
        Match::Tcpmss(t) => CMatch::Tcpmss { inv: t.inv },
        Match::Physdev(d) => CMatch::Physdev(d.clone()),
        Match::Hashlimit(h) => {
            if h.bytes || h.rate_match {
                return Err("match hashlimit in byte or rate-match mode".into());
            }
            // The table's key, rate and burst come from its creating rule; only
            // `--hashlimit-above` is the rule's own (`cfg->mode & XT_HASHLIMIT_INVERT`).
            let table = match p.hashlimits.iter().position(|x| x.name == h.name) {
                Some(i) => i,
                None => {
                    p.hashlimits.push(h.clone());
                    p.hashlimits.len() - 1
                }
            } as u32;
            CMatch::Hashlimit { table, above: h.above }
        }
        Match::Connlimit(c) => {
            p.connlimits += 1;
            CMatch::Connlimit { id: p.connlimits - 1, above: c.above, limit: c.limit, mask: c.mask, daddr: c.daddr }
        }
        Match::Mac(_) => return Err("match mac (scenarios carry no MAC addresses)".into()),
        Match::Set(_) => return Err("match set (the contents of ipsets are not known)".into()),
        Match::Owner(o) => {
            use crate::model::matches::OwnerId;
            if o.suppl_groups {
                return Err("match owner --suppl-groups (the host's supplementary groups are not modelled)".into());
            }
            let id = |n: &Option<crate::model::Neg<OwnerId>>| -> Result<Option<(bool, u32, u32)>, String> {
                match n {
                    None => Ok(None),
                    Some(n) => match &n.val {
                        OwnerId::Range(lo, hi) => Ok(Some((n.inv, *lo, *hi))),
                        OwnerId::Name(name) => Err(format!(
                            "match owner `{name}` (a name iptables resolves on the machine that loads the rules; give the number)"
                        )),
                    },
                }
            };
            CMatch::Owner(OwnerTest { socket_exists: o.socket_exists, uid: id(&o.uid)?, gid: id(&o.gid)? })
        }
        Match::Opaque(o) if o.module == "policy" => {
            // xt_policy: no packet here has a security path (`skb_sec_path`) and no route
            // an xfrm bundle (scenario packets are plain, the host has no IPsec policies),
            // so `match_policy_in/out` find none and the match is `--pol none`, whatever
            // its other options.
            match o.args.windows(2).find(|w| w[0] == "--pol").map(|w| w[1].as_str()) {
                Some("none") => CMatch::True,
                Some("ipsec") => CMatch::False,
                _ => return Err("match policy (without `--pol none` or `--pol ipsec`)".into()),
            }
        }
        Match::Opaque(o) => return Err(format!("match {} (kept opaque)", o.module)),
        #[allow(unreachable_patterns)]
        other => return Err(format!("match {}", other.name())),
    })
}

/// Protocol classes of the prefilter (`Pre::classes`, `Program::next`).
pub(crate) const CLASS_TCP: u8 = 1;
pub(crate) const CLASS_UDP: u8 = 2;
pub(crate) const CLASS_ICMP: u8 = 4;
pub(crate) const CLASS_OTHER: u8 = 8;

/// The protocol class of a packet (an index into `Program::next`).
pub(crate) fn class_index(proto: u8) -> usize {
    match proto {
        crate::packet::proto::TCP => 0,
        crate::packet::proto::UDP => 1,
        crate::packet::proto::ICMP => 2,
        _ => 3,
    }
}

fn class_of(proto: u8) -> u8 {
    1 << class_index(proto)
}

/// Bits of `Pre::inv`.
const INV_SRC: u8 = 1;
const INV_DST: u8 = 2;
const INV_SPORT: u8 = 4;
const INV_DPORT: u8 = 8;
const INV_FLAGS: u8 = 16;
const INV_STATE: u8 = 32;

/// Bit of an interface id in `Pre::in_ifaces`/`out_ifaces`: ids 0..62 have their own
/// bit, larger ids share bit 62 (set in every mask: not filtered), no device is bit 63.
pub(crate) fn iface_bit(id: Option<IfaceId>) -> u64 {
    match id {
        Some(i) if i.0 < 62 => 1 << i.0,
        Some(_) => 1 << 62,
        None => 1 << 63,
    }
}

/// A rule's prefilter: a necessary condition for the rule to match, built from its IP
/// part and the stateless matches before its first match with side effects (or that
/// reads state other than the packet's ctstate). When it fails, the full evaluation
/// would fail too, and without side effects, so the rule can be skipped. When it holds,
/// the rule is evaluated in full as before.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pre {
    /// IPv4 source and destination tests (`(a & mask) == net`; mask 0 = no test). Only
    /// applied to IPv4 packets.
    pub src_net: u32,
    pub src_mask: u32,
    pub dst_net: u32,
    pub dst_mask: u32,
    pub in_ifaces: u64,
    pub out_ifaces: u64,
    pub sport: (u16, u16),
    pub dport: (u16, u16),
    /// TCP flags: `(flags & mask) == comp` (mask 0 = no test).
    pub flags_mask: u8,
    pub flags_comp: u8,
    /// `ctstate & bits != 0` (with INV_STATE and bits 0: no test).
    pub state: u8,
    /// `INV_*` bits.
    pub inv: u8,
    /// Protocol classes the rule can match.
    pub classes: u8,
    /// `T_*` bits: the tests present.
    pub tests: u8,
    /// Index into `Program::runs` of the run of rules starting here, or `u32::MAX`.
    pub run: u32,
    /// Per protocol class: the next rule after this one to look at (`Program::next` of
    /// the following index).
    pub after: [u32; 4],
    /// False when the rule has no matches and its IP part is at most a protocol test
    /// that its protocol class decides: reaching it (`Program::next`) means it matches.
    pub full: bool,
    /// False when the rule's IP part is at most a protocol test that its protocol class
    /// decides (`ip_match` would hold for every packet reaching it).
    pub ip: bool,
}

/// A run of consecutive rules of one chain, from some rule to `end`, that all test one
/// key (source or destination address of IPv4 packets, destination port) against a
/// value set, not negated: a packet whose key is in none of those sets fails the
/// prefilter of every rule of the run.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    pub key: u8,
    pub end: u32,
    /// Per protocol class: `Program::next` of `end`.
    pub after: [u32; 4],
    /// Sorted, disjoint, not adjacent inclusive intervals.
    pub ivals: Vec<(u32, u32)>,
}

const KEY_SRC: u8 = 0;
const KEY_DST: u8 = 1;
const KEY_DPORT: u8 = 2;

impl Run {
    /// Whether some rule of the run may match (false: skip to `end`).
    #[inline]
    pub(crate) fn hit(&self, f: &PreFacts) -> bool {
        let v = match self.key {
            KEY_SRC if f.v4 => f.src,
            KEY_DST if f.v4 => f.dst,
            KEY_DPORT => f.dport as u32,
            _ => return true,
        };
        let k = self.ivals.partition_point(|&(lo, _)| lo <= v);
        k > 0 && v <= self.ivals[k - 1].1
    }
}

/// The facts about a packet (in one table traversal) that prefilters test.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PreFacts {
    pub v4: bool,
    pub src: u32,
    pub dst: u32,
    pub in_bit: u64,
    pub out_bit: u64,
    pub sport: u16,
    pub dport: u16,
    pub flags: u8,
    pub ct: u8,
}

/// Bits of `Pre::tests`: which tests a prefilter has.
const T_ADDR: u8 = 1;
const T_PORTS: u8 = 2;
const T_FLAGS: u8 = 4;
const T_STATE: u8 = 8;
const T_IFACE: u8 = 16;

impl Pre {
    /// Whether the rule may match (its protocol class is tested by `Program::next`).
    #[inline(always)]
    pub(crate) fn pass(&self, f: &PreFacts) -> bool {
        let t = self.tests;
        if t == 0 {
            return true;
        }
        let inv = self.inv;
        if t & T_ADDR != 0
            && f.v4
            && !((((f.src & self.src_mask) == self.src_net) != (inv & INV_SRC != 0))
                & (((f.dst & self.dst_mask) == self.dst_net) != (inv & INV_DST != 0)))
        {
            return false;
        }
        if t & T_PORTS != 0 {
            let sport_ok = (f.sport >= self.sport.0 && f.sport <= self.sport.1) != (inv & INV_SPORT != 0);
            let dport_ok = (f.dport >= self.dport.0 && f.dport <= self.dport.1) != (inv & INV_DPORT != 0);
            if !(sport_ok & dport_ok) {
                return false;
            }
        }
        if t & T_FLAGS != 0 && ((f.flags & self.flags_mask) == self.flags_comp) == (inv & INV_FLAGS != 0) {
            return false;
        }
        if t & T_STATE != 0 && ((f.ct & self.state) != 0) == (inv & INV_STATE != 0) {
            return false;
        }
        if t & T_IFACE != 0 && ((self.in_ifaces & f.in_bit == 0) | (self.out_ifaces & f.out_bit == 0)) {
            return false;
        }
        true
    }
}

const ALL_CLASSES: u8 = CLASS_TCP | CLASS_UDP | CLASS_ICMP | CLASS_OTHER;

fn iface_mask(t: &Option<IfaceTest>) -> u64 {
    let Some(t) = t else { return u64::MAX };
    let mut m = (1 << 62) | if t.eval(None) { 1 << 63 } else { 0 };
    for i in 0..62u16 {
        if t.eval(Some(IfaceId(i))) {
            m |= 1 << i;
        }
    }
    m
}

fn v4_test(c: &Option<Neg<Cidr>>) -> Option<(u32, u32, bool)> {
    let c = c.as_ref()?;
    // `contains` is false for an IPv4 packet against an IPv6 network.
    match (c.val.addr(), c.val.mask()) {
        (IpAddr::V4(a), IpAddr::V4(m)) => Some((u32::from(a), u32::from(m), c.inv)),
        // Never contains an IPv4 address: mask 0 with net 1 never holds.
        _ => Some((1, 0, c.inv)),
    }
}

fn pre_of(p: &Program, r: &CRule) -> Pre {
    let mut pre = Pre {
        src_net: 0,
        src_mask: 0,
        dst_net: 0,
        dst_mask: 0,
        in_ifaces: iface_mask(&r.ip.in_iface),
        out_ifaces: iface_mask(&r.ip.out_iface),
        sport: (0, u16::MAX),
        dport: (0, u16::MAX),
        flags_mask: 0,
        flags_comp: 0,
        state: 0,
        inv: INV_STATE,
        classes: ALL_CLASSES,
        tests: 0,
        run: u32::MAX,
        after: [0; 4],
        full: true,
        ip: true,
    };
    let ip = &r.ip;
    let proto_exact = ip.proto.is_none_or(|p| {
        !p.inv && matches!(p.val, crate::packet::proto::TCP | crate::packet::proto::UDP | crate::packet::proto::ICMP)
    });
    if proto_exact
        && ip.src.is_none()
        && ip.dst.is_none()
        && ip.in_iface.is_none()
        && ip.out_iface.is_none()
        && ip.fragment.is_none()
    {
        pre.ip = false;
        pre.full = r.matches.0 != r.matches.1;
    }
    // As `Cidr::contains`: `(a & mask) == addr`, the address unmasked.
    if let Some((net, mask, inv)) = v4_test(&r.ip.src) {
        (pre.src_net, pre.src_mask) = (net, mask);
        if inv {
            pre.inv |= INV_SRC;
        }
    }
    if let Some((net, mask, inv)) = v4_test(&r.ip.dst) {
        (pre.dst_net, pre.dst_mask) = (net, mask);
        if inv {
            pre.inv |= INV_DST;
        }
    }
    if let Some(pr) = r.ip.proto {
        if !pr.inv {
            pre.classes &= class_of(pr.val);
        } else if pr.val == crate::packet::proto::TCP
            || pr.val == crate::packet::proto::UDP
            || pr.val == crate::packet::proto::ICMP
        {
            pre.classes &= !class_of(pr.val);
        }
    }
    if r.ip.fragment == Some(false) {
        // `-f`: scenario packets are never fragments.
        pre.classes = 0;
    }
    let ports = |pre: &mut Pre, sport: &Option<Neg<PortRange>>, dport: &Option<Neg<PortRange>>| {
        if let Some(s) = sport {
            if pre.sport == (0, u16::MAX) && pre.inv & INV_SPORT == 0 {
                pre.sport = (s.val.lo, s.val.hi);
                if s.inv {
                    pre.inv |= INV_SPORT;
                }
            }
        }
        if let Some(d) = dport {
            if pre.dport == (0, u16::MAX) && pre.inv & INV_DPORT == 0 {
                pre.dport = (d.val.lo, d.val.hi);
                if d.inv {
                    pre.inv |= INV_DPORT;
                }
            }
        }
    };
    let (a, b) = r.matches;
    for m in &p.matches[a as usize..b as usize] {
        match m {
            CMatch::Multiport(_) => pre.classes &= CLASS_TCP | CLASS_UDP,
            CMatch::True
            | CMatch::False
            | CMatch::Mark { .. }
            | CMatch::Length { .. }
            | CMatch::Ttl(_)
            | CMatch::Owner(_)
            | CMatch::Iprange(_)
            | CMatch::Pkttype { .. }
            | CMatch::Addrtype(_)
            | CMatch::Tcpmss { .. }
            | CMatch::Physdev(_) => {}
            CMatch::Tcp { sport, dport, flags, option: _ } => {
                pre.classes &= CLASS_TCP;
                ports(&mut pre, sport, dport);
                if let Some(f) = flags {
                    if pre.flags_mask == 0 && pre.inv & INV_FLAGS == 0 {
                        pre.flags_mask = f.val.mask.0;
                        pre.flags_comp = f.val.comp.0 & f.val.mask.0;
                        if f.val.comp.0 & !f.val.mask.0 != 0 {
                            // `(x & mask) == comp` never holds.
                            pre.flags_mask = 0;
                            pre.flags_comp = 1;
                        }
                        if f.inv {
                            pre.inv |= INV_FLAGS;
                        }
                    }
                }
            }
            CMatch::Udp { sport, dport } => {
                pre.classes &= CLASS_UDP;
                ports(&mut pre, sport, dport);
            }
            CMatch::Icmp(_) => pre.classes &= CLASS_ICMP,
            CMatch::Icmp6 { .. } => pre.classes &= CLASS_OTHER,
            CMatch::State { inv, bits } => {
                if pre.state == 0 && pre.inv & INV_STATE != 0 {
                    pre.state = *bits;
                    if !*inv {
                        pre.inv &= !INV_STATE;
                    }
                }
            }
            // Matches with side effects, or reading state: stop here.
            CMatch::Recent(_)
            | CMatch::Limit(_)
            | CMatch::Conntrack(_)
            | CMatch::Connmark { .. }
            | CMatch::Nth { .. }
            | CMatch::Hashlimit { .. }
            | CMatch::Connlimit { .. } => break,
        }
    }
    if pre.src_mask != 0
        || pre.src_net != 0
        || pre.dst_mask != 0
        || pre.dst_net != 0
        || pre.inv & (INV_SRC | INV_DST) != 0
    {
        pre.tests |= T_ADDR;
    }
    if pre.sport != (0, u16::MAX) || pre.dport != (0, u16::MAX) || pre.inv & (INV_SPORT | INV_DPORT) != 0 {
        pre.tests |= T_PORTS;
    }
    if pre.flags_mask != 0 || pre.flags_comp != 0 || pre.inv & INV_FLAGS != 0 {
        pre.tests |= T_FLAGS;
    }
    if pre.state != 0 || pre.inv & INV_STATE == 0 {
        pre.tests |= T_STATE;
    }
    if pre.in_ifaces != u64::MAX || pre.out_ifaces != u64::MAX {
        pre.tests |= T_IFACE;
    }
    pre
}

/// The value set of a rule's prefilter for `key`, when it has a test of it that is not
/// negated.
fn key_set(pre: &Pre, key: u8) -> Option<(u32, u32)> {
    let mask_range = |net: u32, mask: u32| {
        if net & !mask != 0 {
            // Never holds: an empty set.
            None
        } else if mask.leading_ones() + mask.trailing_zeros() == 32 {
            Some((net, net | !mask))
        } else {
            Some((0, u32::MAX)) // a non-contiguous mask: anything
        }
    };
    match key {
        KEY_SRC if pre.tests & T_ADDR != 0 && pre.inv & INV_SRC == 0 && (pre.src_mask != 0 || pre.src_net != 0) => {
            Some(mask_range(pre.src_net, pre.src_mask).unwrap_or((1, 0)))
        }
        KEY_DST if pre.tests & T_ADDR != 0 && pre.inv & INV_DST == 0 && (pre.dst_mask != 0 || pre.dst_net != 0) => {
            Some(mask_range(pre.dst_net, pre.dst_mask).unwrap_or((1, 0)))
        }
        KEY_DPORT if pre.tests & T_PORTS != 0 && pre.inv & INV_DPORT == 0 && pre.dport != (0, u16::MAX) => {
            Some((pre.dport.0 as u32, pre.dport.1 as u32))
        }
        _ => None,
    }
}

/// Runs of at least `MIN_RUN` rules (at most `MAX_RUN` long, from each of their rules).
const MIN_RUN: usize = 3;
const MAX_RUN: usize = 64;

fn build_runs(p: &Program, pre: &mut [Pre]) -> Vec<Run> {
    let mut runs = Vec::new();
    for c in &p.chains {
        for i in c.first as usize..c.end as usize {
            for key in [KEY_SRC, KEY_DST, KEY_DPORT] {
                let mut sets = Vec::new();
                let mut j = i;
                while j < c.end as usize && j - i < MAX_RUN {
                    match key_set(&pre[j], key) {
                        Some(s) => sets.push(s),
                        None => break,
                    }
                    j += 1;
                }
                if j - i < MIN_RUN {
                    continue;
                }
                sets.retain(|&(lo, hi)| lo <= hi);
                sets.sort_unstable();
                let mut ivals: Vec<(u32, u32)> = Vec::new();
                for (lo, hi) in sets {
                    match ivals.last_mut() {
                        Some(l) if lo <= l.1.saturating_add(1) => l.1 = l.1.max(hi),
                        _ => ivals.push((lo, hi)),
                    }
                }
                pre[i].run = runs.len() as u32;
                runs.push(Run { key, end: j as u32, after: [0; 4], ivals });
                break;
            }
        }
    }
    runs
}

/// (Re)builds the prefilters and the per-class candidate lists (after a change of the
/// interface table too).
pub(crate) fn build_prefilter(p: &mut Program) {
    let mut pre: Vec<Pre> = p.rules.iter().map(|r| pre_of(p, r)).collect();
    p.runs = build_runs(p, &mut pre);
    let n = pre.len();
    for (ci, next) in p.next.iter_mut().enumerate() {
        let class = 1u8 << ci;
        next.clear();
        next.resize(n + 1, n as u32);
        for i in (0..n).rev() {
            next[i] = if pre[i].classes & class != 0 { i as u32 } else { next[i + 1] };
        }
    }
    for (i, x) in pre.iter_mut().enumerate() {
        x.after = std::array::from_fn(|c| p.next[c][i + 1]);
    }
    for r in &mut p.runs {
        r.after = std::array::from_fn(|c| p.next[c][r.end as usize]);
    }
    p.pre = pre;
}
