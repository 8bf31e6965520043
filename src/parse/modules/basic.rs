//! tcp, udp, icmp, multiport, state and comment.

use super::{bad, o, parse_port, parse_port_range, req, twice, Arg, Cx, MatchParser, OptDef, Val};
use crate::diag::Diagnostic;
use crate::model::matches::{ctstate, Comment, FlagTest, Icmp, IcmpType, Multiport, PortSide, State, Tcp, Udp};
use crate::model::{Family, Match, Neg, PortRange, Proto, TcpFlags};

pub(super) fn match_parser(name: &str, family: Family) -> Option<Box<dyn MatchParser>> {
    Some(match name {
        "tcp" => Box::new(TcpP(Tcp::default())),
        "udp" => Box::new(UdpP(Udp::default())),
        "icmp" if family == Family::V4 => Box::new(IcmpP(None)),
        "multiport" => Box::new(MultiportP(None)),
        "state" => Box::new(StateP(None)),
        "comment" => Box::new(CommentP(None)),
        _ => return None,
    })
}

/// Checks that the rule says `-p PROTO` (not negated) for a protocol match.
fn need_proto(cx: &Cx, module: &str, want: &[Proto]) -> Result<(), Diagnostic> {
    match cx.proto {
        Some(p) if !p.inv && want.contains(&p.val) => Ok(()),
        Some(p) if p.inv => {
            Err(Diagnostic::error("E0210", cx.at, format!("`-m {module}` cannot be used with `! -p {}`", p.val))
                .note("the kernel refuses the rule and the whole table fails to load")
                .help("remove the `!` or the protocol options"))
        }
        _ => Err(Diagnostic::error("E0210", cx.at, format!("`-m {module}` needs `-p {}`", want[0]))
            .note("the kernel's match refuses rules for another protocol; the whole table fails to load")
            .help(format!("add `-p {}` before `-m {module}`", want[0]))),
    }
}

struct TcpP(Tcp);

const TCP_OPTS: &[OptDef] = &[
    o("source-port", Arg::Required, true),
    o("sport", Arg::Required, true),
    o("destination-port", Arg::Required, true),
    o("dport", Arg::Required, true),
    o("syn", Arg::None, true),
    o("tcp-flags", Arg::Two, true),
    o("tcp-option", Arg::Required, true),
];

impl MatchParser for TcpP {
    fn name(&self) -> &str {
        "tcp"
    }
    fn opts(&self) -> &'static [OptDef] {
        TCP_OPTS
    }
    fn take(&mut self, opt: usize, _: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        let t = &mut self.0;
        match opt {
            0 | 1 => {
                if t.sport.is_some() {
                    return Err(twice(cx, "tcp", "sport"));
                }
                t.sport = Some(Neg { inv, val: tcp_port_range(&req(val, cx)?)? });
            }
            2 | 3 => {
                if t.dport.is_some() {
                    return Err(twice(cx, "tcp", "dport"));
                }
                t.dport = Some(Neg { inv, val: tcp_port_range(&req(val, cx)?)? });
            }
            4 | 5 => {
                if t.flags.is_some() {
                    return Err(Diagnostic::error("E0107", cx.at, "tcp: only one of `--syn` or `--tcp-flags` allowed")
                        .help("keep one flag test"));
                }
                let test = if opt == 4 {
                    FlagTest::SYN
                } else {
                    let v = req(val, cx)?;
                    let (m, c) = v.text.split_once(' ').unwrap_or((&v.text, ""));
                    let parse = |s: &str| {
                        TcpFlags::parse_list(s).map_err(|n| {
                            bad(cx, v.span, format!("unknown TCP flag `{n}`"))
                                .note("iptables knows FIN, SYN, RST, PSH, ACK, URG, ALL and NONE")
                                .help("write flags as a comma list, e.g. `--tcp-flags SYN,ACK SYN`")
                        })
                    };
                    FlagTest { mask: parse(m)?, comp: parse(c)? }
                };
                t.flags = Some(Neg { inv, val: test });
            }
            _ => {
                let v = req(val, cx)?;
                let n = v.text.parse::<u8>().ok().filter(|n| *n != 0).ok_or_else(|| {
                    bad(cx, v.span, format!("invalid TCP option `{}`", v.text)).help("give a TCP option kind 1-255")
                })?;
                t.option = Some(Neg { inv, val: n });
            }
        }
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        need_proto(cx, "tcp", &[Proto::TCP])?;
        Ok(Match::Tcp(self.0))
    }
}

/// A tcp port range: libxt_tcp refuses a reversed one (verified: `--dport 1000:999` →
/// `invalid portrange (min > max)`), unlike libxt_udp, which keeps it.
fn tcp_port_range(v: &Val) -> Result<PortRange, Diagnostic> {
    let r = parse_port_range(v)?;
    if r.lo > r.hi {
        return Err(Diagnostic::error("E0105", v.span, format!("tcp: port range `{}` is reversed", v.text))
            .label("the first port is larger than the last")
            .note("iptables: invalid portrange (min > max)")
            .help(format!("write `{}:{}`", r.hi, r.lo)));
    }
    Ok(r)
}

struct UdpP(Udp);

const UDP_OPTS: &[OptDef] = &[
    o("source-port", Arg::Required, true),
    o("sport", Arg::Required, true),
    o("destination-port", Arg::Required, true),
    o("dport", Arg::Required, true),
];

impl MatchParser for UdpP {
    fn name(&self) -> &str {
        "udp"
    }
    fn opts(&self) -> &'static [OptDef] {
        UDP_OPTS
    }
    fn take(&mut self, opt: usize, _: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        let slot = if opt < 2 { &mut self.0.sport } else { &mut self.0.dport };
        if slot.is_some() {
            return Err(twice(cx, "udp", if opt < 2 { "sport" } else { "dport" }));
        }
        let v = req(val, cx)?;
        let r = parse_port_range(&v)?;
        if r.lo > r.hi {
            cx.diags.push(
                Diagnostic::warning(
                    "W0004",
                    v.span,
                    format!("udp: port range `{}` is reversed and never matches", v.text),
                )
                .label("the first port is larger than the last")
                .note("iptables keeps a reversed udp range (unlike tcp, where it is an error)")
                .help(format!("write `{}:{}`", r.hi, r.lo)),
            );
        }
        *slot = Some(Neg { inv, val: r });
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        need_proto(cx, "udp", &[Proto::UDP])?;
        Ok(Match::Udp(self.0))
    }
}

/// ICMP type names of iptables' libipt_icmp (SEMANTICS.md §6): name, type, code range.
pub(crate) const ICMP_NAMES: &[(&str, u8, u8, u8)] = &[
    ("any", 255, 0, 255),
    ("echo-reply", 0, 0, 255),
    ("pong", 0, 0, 255),
    ("destination-unreachable", 3, 0, 255),
    ("network-unreachable", 3, 0, 0),
    ("host-unreachable", 3, 1, 1),
    ("protocol-unreachable", 3, 2, 2),
    ("port-unreachable", 3, 3, 3),
    ("fragmentation-needed", 3, 4, 4),
    ("source-route-failed", 3, 5, 5),
    ("network-unknown", 3, 6, 6),
    ("host-unknown", 3, 7, 7),
    ("network-prohibited", 3, 9, 9),
    ("host-prohibited", 3, 10, 10),
    ("TOS-network-unreachable", 3, 11, 11),
    ("TOS-host-unreachable", 3, 12, 12),
    ("communication-prohibited", 3, 13, 13),
    ("host-precedence-violation", 3, 14, 14),
    ("precedence-cutoff", 3, 15, 15),
    ("source-quench", 4, 0, 255),
    ("redirect", 5, 0, 255),
    ("network-redirect", 5, 0, 0),
    ("host-redirect", 5, 1, 1),
    ("TOS-network-redirect", 5, 2, 2),
    ("TOS-host-redirect", 5, 3, 3),
    ("echo-request", 8, 0, 255),
    ("ping", 8, 0, 255),
    ("router-advertisement", 9, 0, 255),
    ("router-solicitation", 10, 0, 255),
    ("time-exceeded", 11, 0, 255),
    ("ttl-exceeded", 11, 0, 255),
    ("ttl-zero-during-transit", 11, 0, 0),
    ("ttl-zero-during-reassembly", 11, 1, 1),
    ("parameter-problem", 12, 0, 255),
    ("ip-header-bad", 12, 0, 0),
    ("required-option-missing", 12, 1, 1),
    ("timestamp-request", 13, 0, 255),
    ("timestamp-reply", 14, 0, 255),
    ("address-mask-request", 17, 0, 255),
    ("address-mask-reply", 18, 0, 255),
];

/// Reads `--icmp-type` like libipt_icmp: a case-insensitive unique name prefix, or
/// `TYPE[/CODE]` numbers.
pub(crate) fn parse_icmp_type(v: &Val, names: &[(&str, u8, u8, u8)], what: &str) -> Result<IcmpType, Diagnostic> {
    let t = v.text.as_str();
    if t.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
        let (ty, code) = match t.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (t, None),
        };
        let num = |s: &str| {
            s.parse::<u8>().map_err(|_| {
                Diagnostic::error("E0105", v.span, format!("invalid {what} type `{t}`"))
                    .help("types and codes are 0-255")
            })
        };
        let ty = num(ty)?;
        return Ok(match code {
            Some(c) => {
                let c = num(c)?;
                IcmpType { ty, code_min: c, code_max: c }
            }
            None => IcmpType { ty, code_min: 0, code_max: 255 },
        });
    }
    let hits: Vec<_> =
        names.iter().filter(|(n, ..)| n.len() >= t.len() && n[..t.len()].eq_ignore_ascii_case(t)).collect();
    match hits.as_slice() {
        [one] => Ok(IcmpType { ty: one.1, code_min: one.2, code_max: one.3 }),
        [] => Err(Diagnostic::error("E0105", v.span, format!("unknown {what} type `{t}`"))
            .note(format!("iptables: Unknown ICMP type `{t}'"))
            .help("use a name such as echo-request, or a number TYPE[/CODE]")),
        [a, b, ..] => {
            Err(Diagnostic::error("E0105", v.span, format!("ambiguous {what} type `{t}`: `{}` or `{}`?", a.0, b.0))
                .help("write more of the name"))
        }
    }
}

struct IcmpP(Option<Neg<IcmpType>>);

const ICMP_OPTS: &[OptDef] = &[o("icmp-type", Arg::Required, true)];

impl MatchParser for IcmpP {
    fn name(&self) -> &str {
        "icmp"
    }
    fn opts(&self) -> &'static [OptDef] {
        ICMP_OPTS
    }
    fn take(&mut self, _: usize, _: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        if self.0.is_some() {
            return Err(twice(cx, "icmp", "icmp-type"));
        }
        self.0 = Some(Neg { inv, val: parse_icmp_type(&req(val, cx)?, ICMP_NAMES, "ICMP")? });
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        need_proto(cx, "icmp", &[Proto::ICMP])?;
        if self.0.is_none() {
            return Err(Diagnostic::error("E0108", cx.at, "icmp: `--icmp-type` is required")
                .note("iptables: icmp: option \"--icmp-type\" must be specified")
                .help("add e.g. `--icmp-type echo-request`, or drop `-m icmp` (`-p icmp` alone matches every ICMP packet)"));
        }
        Ok(Match::Icmp(Icmp { ty: self.0 }))
    }
}

/// One item of a multiport list: `PORT` or `LO:HI` with both ends given and `LO < HI`
/// (libxt_multiport: `1000:` → ``invalid port/service `' specified``, `5:5` and `9:8` →
/// `invalid portrange specified`; verified).
fn multiport_item(part: &str, v: &Val) -> Result<PortRange, Diagnostic> {
    let port = |p: &str| {
        parse_port(p).ok_or_else(|| {
            Diagnostic::error("E0105", v.span, format!("multiport: invalid port `{p}` in `{part}`"))
                .note(format!("iptables: invalid port/service `{p}' specified"))
                .help("write ports 0-65535 or service names, and ranges as `LOW:HIGH` with both ends")
        })
    };
    match part.split_once(':') {
        None => Ok(PortRange::single(port(part)?)),
        Some((a, b)) => {
            let (lo, hi) = (port(a)?, port(b)?);
            if lo >= hi {
                return Err(Diagnostic::error("E0105", v.span, format!("multiport: invalid port range `{part}`"))
                    .note("iptables: invalid portrange specified (the first port must be smaller than the last)")
                    .help(if lo == hi { format!("write `{lo}`") } else { format!("write `{hi}:{lo}`") }));
            }
            Ok(PortRange { lo, hi })
        }
    }
}

struct MultiportP(Option<Multiport>);

const MULTIPORT_OPTS: &[OptDef] = &[
    o("source-ports", Arg::Required, true),
    o("sports", Arg::Required, true),
    o("destination-ports", Arg::Required, true),
    o("dports", Arg::Required, true),
    o("ports", Arg::Required, true),
];

impl MatchParser for MultiportP {
    fn name(&self) -> &str {
        "multiport"
    }
    fn opts(&self) -> &'static [OptDef] {
        MULTIPORT_OPTS
    }
    fn take(&mut self, opt: usize, name: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        if let Some(prev) = &self.0 {
            let p = match prev.side {
                PortSide::Src => "--source-ports",
                PortSide::Dst => "--destination-ports",
                PortSide::Either => "--ports",
            };
            return Err(Diagnostic::error(
                "E0106",
                cx.at,
                format!("multiport: `--{name}` cannot be used together with `{p}`"),
            )
            .note("a multiport match tests one list; use two -m multiport matches for source and destination")
            .help("split into two `-m multiport` matches"));
        }
        let side = match opt {
            0 | 1 => PortSide::Src,
            2 | 3 => PortSide::Dst,
            _ => PortSide::Either,
        };
        let v = req(val, cx)?;
        let mut ports = Vec::new();
        let mut slots = 0;
        for part in v.text.split(',') {
            let r = multiport_item(part, &v)?;
            slots += if part.contains(':') { 2 } else { 1 };
            ports.push(r);
        }
        if slots > 15 {
            return Err(bad(cx, v.span, format!("too many ports: {slots} slots, at most 15"))
                .note("iptables: too many ports specified (a range takes two slots)")
                .help("split the list over several rules"));
        }
        self.0 = Some(Multiport { side, inv, ports });
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        let ok = matches!(cx.proto, Some(p) if !p.inv && matches!(p.val.0, 6 | 17 | 33 | 132 | 136));
        if !ok {
            return Err(Diagnostic::error(
                "E0210",
                cx.at,
                "multiport needs `-p tcp`, `-p udp`, `-p udplite`, `-p sctp` or `-p dccp`",
            )
            .note("without a port protocol the match cannot find ports")
            .help("add `-p tcp` (or udp) before `-m multiport`"));
        }
        let m = self.0.ok_or_else(|| {
            Diagnostic::error("E0108", cx.at, "multiport: no port list given")
                .help("add `--dports`, `--sports` or `--ports` with a list")
        })?;
        Ok(Match::Multiport(m))
    }
}

/// Parses a comma list of conntrack state names (case-insensitive).
pub(crate) fn parse_states(v: &Val, allow_nat: bool) -> Result<u8, Diagnostic> {
    let mut bits = 0;
    for part in v.text.split(',') {
        let u = part.to_ascii_uppercase();
        let hit = ctstate::NAMES.iter().find(|(n, _)| *n == u).filter(|(_, b)| allow_nat || *b < ctstate::SNAT);
        match hit {
            Some((_, b)) => bits |= b,
            None => {
                return Err(Diagnostic::error("E0105", v.span, format!("bad state `{part}`"))
                    .note(format!("iptables: Bad {} \"{part}\"", if allow_nat { "ctstate" } else { "state" }))
                    .help("states are INVALID, NEW, RELATED, ESTABLISHED, UNTRACKED"))
            }
        }
    }
    Ok(bits)
}

struct StateP(Option<State>);

const STATE_OPTS: &[OptDef] = &[o("state", Arg::Required, true)];

impl MatchParser for StateP {
    fn name(&self) -> &str {
        "state"
    }
    fn opts(&self) -> &'static [OptDef] {
        STATE_OPTS
    }
    fn take(&mut self, _: usize, _: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        if self.0.is_some() {
            return Err(twice(cx, "state", "state"));
        }
        self.0 = Some(State { inv, states: parse_states(&req(val, cx)?, false)? });
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        self.0.map(Match::State).ok_or_else(|| {
            Diagnostic::error("E0108", cx.at, "state: `--state` is required")
                .help("add e.g. `--state ESTABLISHED,RELATED`")
        })
    }
}

struct CommentP(Option<String>);

const COMMENT_OPTS: &[OptDef] = &[o("comment", Arg::Required, false)];

impl MatchParser for CommentP {
    fn name(&self) -> &str {
        "comment"
    }
    fn opts(&self) -> &'static [OptDef] {
        COMMENT_OPTS
    }
    fn take(&mut self, _: usize, _: &str, _: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        if self.0.is_some() {
            return Err(twice(cx, "comment", "comment"));
        }
        let v = req(val, cx)?;
        let mut text = v.text;
        if text.len() > 255 {
            cx.diags.push(
                Diagnostic::warning(
                    "W0003",
                    v.span,
                    format!("comment is {} bytes long; iptables keeps the first 255", text.len()),
                )
                .help("shorten the comment"),
            );
            let mut cut = 255;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        self.0 = Some(text);
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        self.0.map(|text| Match::Comment(Comment { text })).ok_or_else(|| {
            Diagnostic::error("E0108", cx.at, "comment: `--comment` is required").help("add `--comment \"TEXT\"`")
        })
    }
}
