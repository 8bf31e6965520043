//! `fwverify query RULES 'ACCEPT tcp dport 22'`: the classes of packets that get a
//! verdict from one table at one hook, as readable boxes (protocol, CIDR prefixes, port
//! ranges, flag bits, interfaces, states).
//!
//! The query is a verdict followed by the goal of the property language
//! ([`super::property`]): `ACCEPT tcp dport 22`, `DROP udp`, `ACCEPT any ctstate NEW`.
//! Classes are found by enumeration: take a packet with the verdict (a model), widen it
//! field by field into the largest box the solver proves gets the verdict — port,
//! length and TTL intervals end at the boundaries the rules use, addresses widen to the
//! shortest prefix, sets grow one value at a time — print it, exclude it, and look for
//! another packet. Boxes may overlap; when the enumeration ends before `max`, their union
//! is exactly the set of packets (within the goal) that get the verdict.
//!
//! By default the state is the one right after loading ([`StateModel::Empty`]): the
//! conntrack state follows from the packet, and packets are ones the routing decision
//! delivers to INPUT or FORWARD (no martians, no fragments). Matches whose outcome is
//! still unknown become conditions of the class (`if filter INPUT #4 -m limit … matches`).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use z3::ast::{Bool, BV};
use z3::{Model, Solver};

use super::encode::{bv, ip_bits, SymPacket, Unencodable, Universe, CT_STATES, PKT_TYPES};
use super::property::Goal;
use super::traverse::{Final, StateModel, Traversal};
use super::{check, RuleRef, VerifyError};
use crate::model::matches::{Conntrack, Match, PortSide};
use crate::model::{Cidr, Hook, Ruleset, TableName};

/// Options of a query.
#[derive(Clone, Debug)]
pub struct QueryOptions {
    /// Table (default filter).
    pub table: TableName,
    /// Hook (default INPUT).
    pub hook: Hook,
    /// At most this many classes.
    pub max: usize,
    /// State assumption.
    pub state: StateModel,
    /// The host's addresses.
    pub hosts: Vec<IpAddr>,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            table: TableName::Filter,
            hook: Hook::Input,
            max: 50,
            state: StateModel::Empty,
            hosts: Vec::new(),
        }
    }
}

/// A constraint on one field of a class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Range {
    /// Any value.
    Free,
    /// `lo..=hi`.
    Interval(u128, u128),
    /// The top `len` bits equal those of the value.
    Prefix(u128, u32),
    /// One of these values.
    Set(Vec<u128>),
    /// `(x & mask) == value`.
    Bits(u128, u128),
}

/// What kind of values a field has, for widening.
#[derive(Clone, Debug)]
enum Kind {
    Interval(Vec<u128>),
    Prefix,
    Set(u128),
    Bits,
    Exact,
}

#[derive(Clone, Debug, PartialEq, Eq, Copy)]
enum Name {
    InIf,
    OutIf,
    Ct,
    Src,
    Dst,
    Sport,
    Dport,
    Flags,
    IcmpType,
    IcmpCode,
    Len,
    Ttl,
    Mark,
    Pkttype,
    Proto,
    Frag,
    SrcLocal,
    DstLocal,
    Snat,
    Dnat,
    TcpOpt(u8),
    Assumed(usize),
}

impl Name {
    fn depends_on_proto(self) -> bool {
        matches!(self, Name::Sport | Name::Dport | Name::Flags | Name::IcmpType | Name::IcmpCode | Name::TcpOpt(_))
    }
}

#[derive(Clone, Debug)]
enum Var {
    Bv(BV),
    Bool(Bool),
}

#[derive(Clone, Debug)]
struct Field {
    name: Name,
    var: Var,
    width: u32,
    kind: Kind,
}

/// One class of packets: a box over the packet fields, plus outcomes of matches the
/// encoding could not decide.
#[derive(Clone, Debug)]
pub struct PacketClass {
    ranges: Vec<Range>,
}

/// The answer of a query.
#[derive(Clone, Debug)]
pub struct QueryResult {
    /// Classes found, in discovery order.
    pub classes: Vec<String>,
    /// The enumeration ended on its own: the classes cover every packet with the verdict.
    pub complete: bool,
    /// Matches treated as unknown.
    pub assumed: Vec<(RuleRef, Unencodable)>,
}

/// The constraint a goal of the property language puts on a packet at `hook`.
pub fn goal_condition(g: &Goal, pkt: &SymPacket, u: &Universe, hook: Hook) -> Bool {
    let mut c = Vec::new();
    if let Some(p) = g.proto {
        c.push(pkt.is_proto(p));
    }
    for (r, var) in [(&g.dport, &pkt.dport), (&g.sport, &pkt.sport)] {
        if let Some(r) = r {
            c.push(var.bvuge(bv(r.lo as u128, 16)));
            c.push(var.bvule(bv(r.hi as u128, 16)));
        }
    }
    if let Some(f) = g.flags {
        c.push(pkt.flags.eq(bv(f as u128, 8)));
    }
    if let Some((t, code)) = g.icmp {
        c.push(pkt.icmp_type.eq(bv(t as u128, 8)));
        if let Some(code) = code {
            c.push(pkt.icmp_code.eq(bv(code as u128, 8)));
        }
    }
    if let Some(bits) = g.ctstate {
        c.push(pkt.ct_in(bits));
    }
    if let Some(name) = &g.iface {
        let class = u.iface_class(name);
        let var = if super::encode::hook_devices(hook).0 { &pkt.in_if } else { &pkt.out_if };
        c.push(var.eq(bv(class as u128, u.ifaces.width())));
    }
    if let Some(a) = g.dst {
        c.push(pkt.dst.eq(bv(ip_bits(a), pkt.width())));
    }
    if let Some(a) = g.src {
        c.push(pkt.src.eq(bv(ip_bits(a), pkt.width())));
    }
    Bool::and(&c)
}

/// The packet constraints a query assumes at `hook` under `state`: well-formed, the
/// table's entry conditions, and for [`StateModel::Empty`] the first-packet conntrack
/// state, no NAT flags without a nat table, no fragments, and (INPUT, FORWARD) a packet
/// the routing decision delivers.
pub fn packet_constraints(rs: &Ruleset, u: &Universe, pkt: &SymPacket, hook: Hook, state: StateModel) -> Bool {
    let mut c = vec![pkt.well_formed(u, hook)];
    if state == StateModel::Empty {
        let notrack = rs.table(TableName::Raw).is_some_and(|t| {
            t.chains.iter().flat_map(|c| &c.rules).any(|r| {
                matches!(r.target.as_ref().map(|t| &t.t), Some(crate::model::Target::Notrack))
                    || matches!(r.target.as_ref().map(|t| &t.t), Some(crate::model::Target::Ct(ct)) if ct.notrack)
            })
        });
        let first = pkt.first_packet_ct(u);
        c.push(if notrack { Bool::or(&[first, pkt.ct.eq(bv(4, 3))]) } else { first });
        if rs.table(TableName::Nat).is_none() {
            c.push(pkt.snat.not());
            c.push(pkt.dnat.not());
        }
        c.push(pkt.frag.not());
        if matches!(hook, Hook::Input | Hook::Forward) {
            c.push(pkt.deliverable(u));
        }
    }
    Bool::and(&c)
}

/// Lists the classes of packets within `goal` that get `verdict` from `opts.table` at
/// `opts.hook`.
pub fn query(rs: &Ruleset, verdict: Final, goal: &Goal, opts: &QueryOptions) -> Result<QueryResult, VerifyError> {
    let ti = rs
        .tables
        .iter()
        .position(|t| t.name == opts.table)
        .ok_or_else(|| VerifyError::Input(format!("the ruleset has no {} table", opts.table)))?;
    let u = Universe::of(rs, &opts.hosts);
    let pkt = SymPacket::new("p", &u);
    let trav = Traversal::encode(rs, ti, opts.hook, &pkt, &u, opts.state)?;
    let base = Solver::new();
    let enumerate = Solver::new();
    let pc = packet_constraints(rs, &u, &pkt, opts.hook, opts.state);
    let gc = goal_condition(goal, &pkt, &u, opts.hook);
    for s in [&base, &enumerate] {
        for d in &trav.defs {
            s.assert(d);
        }
        s.assert(&pc);
        s.assert(&trav.entry);
        s.assert(&gc);
    }
    let v = trav.verdict(verdict);
    base.assert(v.not());
    enumerate.assert(&v);
    let fields = fields(rs, &u, &pkt, &trav, opts.hook);
    let pinned: Vec<Option<Range>> = fields.iter().map(|f| goal_range(goal, f, &u)).collect();
    let mut classes = Vec::new();
    let mut complete = false;
    while classes.len() < opts.max {
        if !check(&enumerate, &[], || format!("whether another packet gets {}", verdict.as_str()))? {
            complete = true;
            break;
        }
        let model = enumerate.get_model().expect("sat has a model");
        let mut class = PacketClass { ranges: fields.iter().map(|f| point(&model, f)).collect() };
        for (r, p) in class.ranges.iter_mut().zip(&pinned) {
            if let Some(p) = p {
                *r = p.clone();
            }
        }
        generalize(&base, &fields, &pinned, &mut class, || format!("a class of {} packets", verdict.as_str()))?;
        enumerate.assert(class_formula(&fields, &class).not());
        classes.push(show(rs, &u, &trav, &fields, &class));
    }
    let mut seen = BTreeSet::new();
    let assumed = trav
        .assumed
        .iter()
        .filter(|a| seen.insert((a.rule.clone(), a.index)))
        .map(|a| (a.rule.clone(), a.why.clone()))
        .collect();
    Ok(QueryResult { classes, complete, assumed })
}

/// The range a goal gives a field: the goal's own fields are shown as asked and never
/// widened.
fn goal_range(g: &Goal, f: &Field, u: &Universe) -> Option<Range> {
    let port = |r: &Option<crate::model::PortRange>| r.map(|r| Range::Interval(r.lo as u128, r.hi as u128));
    match f.name {
        Name::Proto => g.proto.map(|p| Range::Interval(p as u128, p as u128)),
        Name::Dport => port(&g.dport),
        Name::Sport => port(&g.sport),
        Name::Flags => g.flags.map(|v| Range::Bits(0xff, v as u128)),
        Name::IcmpType => g.icmp.map(|(t, _)| Range::Interval(t as u128, t as u128)),
        Name::IcmpCode => g.icmp.and_then(|(_, c)| c).map(|c| Range::Interval(c as u128, c as u128)),
        Name::Ct => g.ctstate.map(|bits| {
            Range::Set((0..CT_STATES.len() as u128).filter(|i| bits & CT_STATES[*i as usize].1 != 0).collect())
        }),
        Name::InIf | Name::OutIf => g.iface.as_ref().map(|n| Range::Set(vec![u.iface_class(n) as u128])),
        Name::Src => g.src.map(|a| Range::Prefix(ip_bits(a), f.width)),
        Name::Dst => g.dst.map(|a| Range::Prefix(ip_bits(a), f.width)),
        _ => None,
    }
}

fn bounds_of(set: &BTreeSet<u128>, max: u128) -> Vec<u128> {
    let mut b: BTreeSet<u128> = set.iter().copied().filter(|v| *v <= max).collect();
    b.insert(0);
    b.insert(max + 1);
    b.into_iter().collect()
}

/// Boundaries where the rules' interval tests change: `lo` and `hi + 1` of every range.
fn boundaries(rs: &Ruleset) -> [BTreeSet<u128>; 5] {
    let [mut ports, mut lens, mut ttls, mut protos, mut icmp] = <[BTreeSet<u128>; 5]>::default();
    let add = |s: &mut BTreeSet<u128>, lo: u128, hi: u128| {
        s.insert(lo);
        s.insert(hi + 1);
    };
    for r in rs.tables.iter().flat_map(|t| &t.chains).flat_map(|c| &c.rules) {
        if let Some(p) = r.ip.proto {
            add(&mut protos, p.val.0 as u128, p.val.0 as u128);
        }
        for m in &r.matches {
            match &m.m {
                Match::Tcp(t) => {
                    for p in [t.sport, t.dport].into_iter().flatten() {
                        add(&mut ports, p.val.lo as u128, p.val.hi as u128);
                    }
                }
                Match::Udp(t) => {
                    for p in [t.sport, t.dport].into_iter().flatten() {
                        add(&mut ports, p.val.lo as u128, p.val.hi as u128);
                    }
                }
                Match::Multiport(mp) => {
                    let _ = PortSide::Src;
                    for p in &mp.ports {
                        add(&mut ports, p.lo as u128, p.hi as u128);
                    }
                }
                Match::Conntrack(Conntrack { orig_src_port, orig_dst_port, repl_src_port, repl_dst_port, .. }) => {
                    for p in [orig_src_port, orig_dst_port, repl_src_port, repl_dst_port].into_iter().flatten() {
                        add(&mut ports, p.val.lo as u128, p.val.hi as u128);
                    }
                }
                Match::Length(l) => add(&mut lens, l.min as u128, l.max as u128),
                Match::Ttl(t) => add(&mut ttls, t.value as u128, t.value as u128),
                Match::Icmp(i) => {
                    if let Some(t) = i.ty {
                        add(&mut icmp, t.val.ty as u128, t.val.ty as u128);
                    }
                }
                Match::Icmp6(i) => add(&mut icmp, i.ty as u128, i.ty as u128),
                _ => {}
            }
        }
    }
    for t in [1u128, 6, 17, 58] {
        add(&mut protos, t, t);
    }
    [ports, lens, ttls, protos, icmp]
}

fn fields(rs: &Ruleset, u: &Universe, p: &SymPacket, trav: &Traversal, hook: Hook) -> Vec<Field> {
    let [ports, lens, ttls, protos, icmp] = boundaries(rs);
    let w = p.width();
    let (has_in, has_out) = super::encode::hook_devices(hook);
    let n_if = u.ifaces.len() as u128;
    let mut f = Vec::new();
    let mut add = |name, var, width, kind| f.push(Field { name, var, width, kind });
    if has_in {
        add(Name::InIf, Var::Bv(p.in_if.clone()), u.ifaces.width(), Kind::Set(n_if));
    }
    if has_out {
        add(Name::OutIf, Var::Bv(p.out_if.clone()), u.ifaces.width(), Kind::Set(n_if));
    }
    add(Name::Ct, Var::Bv(p.ct.clone()), 3, Kind::Set(5));
    add(Name::Src, Var::Bv(p.src.clone()), w, Kind::Prefix);
    add(Name::Dst, Var::Bv(p.dst.clone()), w, Kind::Prefix);
    add(Name::Sport, Var::Bv(p.sport.clone()), 16, Kind::Interval(bounds_of(&ports, 65535)));
    add(Name::Dport, Var::Bv(p.dport.clone()), 16, Kind::Interval(bounds_of(&ports, 65535)));
    add(Name::Flags, Var::Bv(p.flags.clone()), 8, Kind::Bits);
    add(Name::IcmpType, Var::Bv(p.icmp_type.clone()), 8, Kind::Interval(bounds_of(&icmp, 255)));
    add(Name::IcmpCode, Var::Bv(p.icmp_code.clone()), 8, Kind::Interval(bounds_of(&BTreeSet::new(), 255)));
    add(Name::Len, Var::Bv(p.len.clone()), 16, Kind::Interval(bounds_of(&lens, 65535)));
    add(Name::Ttl, Var::Bv(p.ttl.clone()), 8, Kind::Interval(bounds_of(&ttls, 255)));
    add(Name::Mark, Var::Bv(p.mark.clone()), 32, Kind::Exact);
    add(Name::Pkttype, Var::Bv(p.pkttype.clone()), 2, Kind::Set(4));
    add(Name::Frag, Var::Bool(p.frag.clone()), 1, Kind::Exact);
    add(Name::SrcLocal, Var::Bool(p.src_local.clone()), 1, Kind::Exact);
    add(Name::DstLocal, Var::Bool(p.dst_local.clone()), 1, Kind::Exact);
    add(Name::Snat, Var::Bool(p.snat.clone()), 1, Kind::Exact);
    add(Name::Dnat, Var::Bool(p.dnat.clone()), 1, Kind::Exact);
    for (k, b) in &p.tcp_opts {
        add(Name::TcpOpt(*k), Var::Bool(b.clone()), 1, Kind::Exact);
    }
    for (i, a) in trav.assumed.iter().enumerate() {
        if a.index != usize::MAX || matches!(a.why, Unencodable::Opaque(_)) {
            add(Name::Assumed(i), Var::Bool(a.var.clone()), 1, Kind::Exact);
        }
    }
    // The protocol last: it is widened only when every field that depends on it is free.
    add(Name::Proto, Var::Bv(p.proto.clone()), 8, Kind::Interval(bounds_of(&protos, 255)));
    f
}

fn model_value(m: &Model, f: &Field) -> u128 {
    match &f.var {
        Var::Bool(b) => m.eval(b, true).and_then(|v| v.as_bool()).map(u128::from).unwrap_or(0),
        Var::Bv(x) if f.width > 64 => {
            let hi = m.eval(&x.extract(127, 64), true).and_then(|v| v.as_u64()).unwrap_or(0) as u128;
            let lo = m.eval(&x.extract(63, 0), true).and_then(|v| v.as_u64()).unwrap_or(0) as u128;
            (hi << 64) | lo
        }
        Var::Bv(x) => m.eval(x, true).and_then(|v| v.as_u64()).unwrap_or(0) as u128,
    }
}

fn mask(width: u32) -> u128 {
    if width >= 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    }
}

fn point(m: &Model, f: &Field) -> Range {
    let v = model_value(m, f);
    match f.kind {
        Kind::Interval(_) => Range::Interval(v, v),
        Kind::Prefix => Range::Prefix(v, f.width),
        Kind::Set(_) => Range::Set(vec![v]),
        Kind::Bits | Kind::Exact => Range::Bits(mask(f.width), v),
    }
}

fn range_formula(f: &Field, r: &Range) -> Bool {
    let x = match &f.var {
        Var::Bool(b) => {
            return match r {
                Range::Free => Bool::from_bool(true),
                Range::Bits(_, v) | Range::Interval(v, _) => {
                    if *v == 1 {
                        b.clone()
                    } else {
                        b.not()
                    }
                }
                _ => Bool::from_bool(true),
            }
        }
        Var::Bv(x) => x,
    };
    let w = f.width;
    match r {
        Range::Free => Bool::from_bool(true),
        Range::Interval(lo, hi) => Bool::and(&[x.bvuge(bv(*lo, w)), x.bvule(bv(*hi, w))]),
        Range::Prefix(v, len) => {
            if *len == 0 {
                Bool::from_bool(true)
            } else {
                x.extract(w - 1, w - len).eq(bv(v >> (w - len), *len))
            }
        }
        Range::Set(vals) => Bool::or(&vals.iter().map(|v| x.eq(bv(*v, w))).collect::<Vec<_>>()),
        Range::Bits(m, v) => x.bvand(bv(*m, w)).eq(bv(v & m, w)),
    }
}

fn class_formula(fields: &[Field], c: &PacketClass) -> Bool {
    Bool::and(&fields.iter().zip(&c.ranges).map(|(f, r)| range_formula(f, r)).collect::<Vec<_>>())
}

/// True when every packet of the class gets the verdict (`base` holds its negation).
fn inside(base: &Solver, fields: &[Field], c: &PacketClass, what: &dyn Fn() -> String) -> Result<bool, VerifyError> {
    base.push();
    base.assert(class_formula(fields, c));
    let r = check(base, &[], what);
    base.pop(1);
    Ok(!r?)
}

fn generalize(
    base: &Solver,
    fields: &[Field],
    pinned: &[Option<Range>],
    c: &mut PacketClass,
    what: impl Fn() -> String,
) -> Result<(), VerifyError> {
    let what = &what;
    for (i, f) in fields.iter().enumerate() {
        let cur = c.ranges[i].clone();
        if pinned[i].is_some() {
            continue;
        }
        if f.name == Name::Proto
            && fields.iter().zip(&c.ranges).any(|(g, r)| g.name.depends_on_proto() && *r != Range::Free)
        {
            continue;
        }
        c.ranges[i] = Range::Free;
        if inside(base, fields, c, what)? {
            continue;
        }
        c.ranges[i] = cur.clone();
        match (&f.kind, cur) {
            (Kind::Interval(bounds), Range::Interval(v, _)) => {
                // Lowest start: candidates are the boundaries at or below v.
                let mut lows: Vec<u128> = bounds.iter().copied().filter(|b| *b <= v).collect();
                lows.push(v);
                lows.sort_unstable();
                lows.dedup();
                let (mut a, mut b) = (0usize, lows.len() - 1);
                while a < b {
                    let mid = (a + b) / 2;
                    c.ranges[i] = Range::Interval(lows[mid], v);
                    if inside(base, fields, c, what)? {
                        b = mid;
                    } else {
                        a = mid + 1;
                    }
                }
                let lo = lows[a];
                let mut highs: Vec<u128> = bounds.iter().filter(|b| **b > v).map(|b| b - 1).collect();
                highs.push(v);
                highs.sort_unstable();
                highs.dedup();
                let (mut a, mut b) = (0usize, highs.len() - 1);
                while a < b {
                    let mid = (a + b).div_ceil(2);
                    c.ranges[i] = Range::Interval(lo, highs[mid]);
                    if inside(base, fields, c, what)? {
                        a = mid;
                    } else {
                        b = mid - 1;
                    }
                }
                c.ranges[i] = Range::Interval(lo, highs[a]);
            }
            (Kind::Prefix, Range::Prefix(v, w)) => {
                let (mut a, mut b) = (1u32, w);
                while a < b {
                    let mid = (a + b) / 2;
                    c.ranges[i] = Range::Prefix(v, mid);
                    if inside(base, fields, c, what)? {
                        b = mid;
                    } else {
                        a = mid + 1;
                    }
                }
                c.ranges[i] = Range::Prefix(v & !mask(w - a) & mask(w), a);
            }
            (Kind::Set(n), Range::Set(mut vals)) => {
                for x in 0..*n {
                    if vals.contains(&x) {
                        continue;
                    }
                    vals.push(x);
                    c.ranges[i] = Range::Set(vals.clone());
                    if !inside(base, fields, c, what)? {
                        vals.pop();
                    }
                }
                vals.sort_unstable();
                c.ranges[i] = Range::Set(vals);
            }
            (Kind::Bits, Range::Bits(mut m, v)) => {
                for bit in (0..f.width).rev() {
                    let b = 1u128 << bit;
                    c.ranges[i] = Range::Bits(m & !b, v);
                    if inside(base, fields, c, what)? {
                        m &= !b;
                    }
                }
                c.ranges[i] = Range::Bits(m, v & m);
            }
            (_, cur) => c.ranges[i] = cur,
        }
    }
    Ok(())
}

const FLAG_NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];

fn show_addr(v: u128, width: u32, len: u32) -> String {
    let ip = if width == 32 { IpAddr::V4(Ipv4Addr::from(v as u32)) } else { IpAddr::V6(Ipv6Addr::from(v)) };
    Cidr::with_prefix(ip, len as u8).map(|c| c.to_string()).unwrap_or_else(|| format!("{ip}/{len}"))
}

fn show_interval(lo: u128, hi: u128) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}:{hi}")
    }
}

fn show_proto(v: u128) -> String {
    crate::model::Proto(v as u8).to_string()
}

fn show(rs: &Ruleset, u: &Universe, trav: &Traversal, fields: &[Field], c: &PacketClass) -> String {
    let mut out = String::new();
    let mut word = |s: String| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&s);
    };
    let get = |n: Name| fields.iter().position(|f| f.name == n).map(|i| &c.ranges[i]);
    match get(Name::Proto) {
        Some(Range::Interval(lo, hi)) if lo == hi => word(show_proto(*lo)),
        Some(Range::Interval(lo, hi)) => word(format!("proto {}:{}", show_proto(*lo), show_proto(*hi))),
        _ => word("any".into()),
    }
    for f in fields {
        let r = get(f.name).expect("field");
        if *r == Range::Free {
            continue;
        }
        let text = match (f.name, r) {
            (Name::Src | Name::Dst, Range::Prefix(v, len)) => {
                let n = if f.name == Name::Src { "src" } else { "dst" };
                format!("{n} {}", show_addr(*v, f.width, *len))
            }
            (
                Name::Sport | Name::Dport | Name::Len | Name::Ttl | Name::IcmpType | Name::IcmpCode,
                Range::Interval(a, b),
            ) => {
                let n = match f.name {
                    Name::Sport => "sport",
                    Name::Dport => "dport",
                    Name::Len => "len",
                    Name::Ttl => "ttl",
                    Name::IcmpType => "type",
                    _ => "code",
                };
                format!("{n} {}", show_interval(*a, *b))
            }
            (Name::Flags, Range::Bits(m, v)) => {
                let parts: Vec<String> = (0..8)
                    .filter(|b| m & (1 << b) != 0)
                    .map(|b| if v & (1 << b) != 0 { FLAG_NAMES[b].to_string() } else { format!("!{}", FLAG_NAMES[b]) })
                    .collect();
                format!("flags {}", parts.join(","))
            }
            (Name::InIf | Name::OutIf, Range::Set(vals)) => {
                let n = if f.name == Name::InIf { "in" } else { "out" };
                let names: Vec<&str> = vals.iter().map(|v| u.ifaces.labels[*v as usize].as_str()).collect();
                format!("{n} {}", names.join(","))
            }
            (Name::Ct, Range::Set(vals)) => {
                let names: Vec<&str> = vals.iter().map(|v| CT_STATES[*v as usize].0).collect();
                format!("ctstate {}", names.join(","))
            }
            (Name::Pkttype, Range::Set(vals)) => {
                let names: Vec<&str> = vals.iter().map(|v| PKT_TYPES[*v as usize].0).collect();
                format!("pkttype {}", names.join(","))
            }
            (Name::Mark, Range::Bits(_, v)) => format!("mark {v:#x}"),
            (Name::Frag, Range::Bits(_, v)) => if *v == 1 { "fragment" } else { "!fragment" }.to_string(),
            (Name::SrcLocal, Range::Bits(_, v)) => format!("src-type {}LOCAL", if *v == 1 { "" } else { "!" }),
            (Name::DstLocal, Range::Bits(_, v)) => format!("dst-type {}LOCAL", if *v == 1 { "" } else { "!" }),
            (Name::Snat, Range::Bits(_, v)) => format!("ctstate {}SNAT", if *v == 1 { "" } else { "!" }),
            (Name::Dnat, Range::Bits(_, v)) => format!("ctstate {}DNAT", if *v == 1 { "" } else { "!" }),
            (Name::TcpOpt(k), Range::Bits(_, v)) => format!("{}tcp-option {k}", if *v == 1 { "" } else { "!" }),
            (Name::Assumed(i), Range::Bits(_, v)) => {
                let a = &trav.assumed[i];
                let rule = a.rule.get(rs);
                let what = match rule.matches.get(a.index) {
                    Some(m) => format!("`{}`", m.m),
                    None => "its target".to_string(),
                };
                format!("[if {} {what} {}]", a.rule.describe(rs), if *v == 1 { "matches" } else { "does not match" })
            }
            (Name::Proto, _) => continue,
            (_, r) => format!("{:?} {r:?}", f.name),
        };
        word(text);
    }
    let _ = write!(out, "");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::property::parse_property;

    fn run(rules: &str, q: &str, opts: &QueryOptions) -> QueryResult {
        let text = format!("*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{rules}COMMIT\n");
        let p = crate::load(&text);
        assert!(!p.has_errors(), "{:?}", p.diagnostics);
        let prop = parse_property(&format!("possible {q}"), 0, 1).unwrap();
        let v = Final::parse(prop.verdict.as_str()).unwrap();
        query(&p.ruleset, v, &prop.goal, opts).unwrap()
    }

    #[test]
    fn ssh_from_one_network() {
        let r = run(
            "-A INPUT -s 10.1.0.0/16 -p tcp --dport 22 -j ACCEPT\n-A INPUT -p tcp --dport 80 -j ACCEPT\n",
            "ACCEPT tcp dport 22",
            &QueryOptions::default(),
        );
        assert!(r.complete);
        assert_eq!(r.classes, ["tcp src 10.1.0.0/16 dport 22"]);
    }

    #[test]
    fn port_ranges_and_states() {
        let r = run(
            "-A INPUT -m state --state ESTABLISHED -j ACCEPT\n-A INPUT -p tcp --dport 1000:2000 -j ACCEPT\n-A INPUT -p tcp --dport 1500 -j DROP\n",
            "ACCEPT tcp",
            &QueryOptions { state: StateModel::Any, ..Default::default() },
        );
        assert!(r.complete);
        assert_eq!(r.classes, ["tcp dport 1000:2000 !fragment", "tcp ctstate ESTABLISHED"]);
    }

    #[test]
    fn nothing_gets_the_verdict() {
        let r = run("-A INPUT -p tcp --dport 22 -j DROP\n", "ACCEPT tcp dport 22", &QueryOptions::default());
        assert!(r.complete && r.classes.is_empty());
    }

    #[test]
    fn first_packets_are_new_or_invalid() {
        let r = run(
            "-A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT\n-A INPUT -p tcp --syn --dport 22 -j ACCEPT\n",
            "ACCEPT tcp",
            &QueryOptions::default(),
        );
        assert!(r.complete);
        assert_eq!(r.classes, ["tcp dport 22 flags !FIN,SYN,!RST,!ACK"]);
    }
}
