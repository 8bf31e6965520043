//! conntrack, hashlimit, mark, connmark, length, ttl, addrtype, mac, connlimit, set,
//! owner, tcpmss, physdev, pkttype, statistic, iprange and icmp6 (SEMANTICS.md §1.5, §6).
//!
//! Values, defaults, canonical forms and error texts follow iptables-legacy 1.8.9 and
//! the kernel's load checks, as observed by loading each form with
//! `iptables-legacy-restore` into a scratch network namespace (Linux 6.18).

// `Diagnostic` is the error of every option parser (the `MatchParser` trait returns it);
// boxing it is a crate-wide choice, not one for this file.
#![allow(clippy::result_large_err)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::basic::{parse_icmp_type, parse_states};
use super::recent::parse_rate;
use super::{o, parse_port, req, Arg, Cx, MatchParser, OptDef, Val};
use crate::diag::Diagnostic;
use crate::model::matches::{
    addrtype, ctstatus, hashmode, AddrMask, Addrtype, Connlimit, Conntrack, CounterOp, CtDir, Hashlimit, Icmp6,
    IpRange, Iprange, Length, LimitIface, Mac, Mark, Owner, OwnerId, Physdev, PktType, Pkttype, SetDir, SetMatch,
    StatMode, Statistic, Tcpmss, Ttl, TtlOp,
};
use crate::model::net::prefix_mask;
use crate::model::{Family, IfaceName, Match, Neg, PortRange, Proto, Span};

use Arg::{None as N, Required as R, Two as T};

pub(super) fn match_parser(name: &str, family: Family) -> Option<Box<dyn MatchParser>> {
    Some(match name {
        "conntrack" => Box::<ConntrackP>::default(),
        "hashlimit" => Box::<HashlimitP>::default(),
        "mark" => Box::new(MarkP { connmark: false, mark: None }),
        "connmark" => Box::new(MarkP { connmark: true, mark: None }),
        "length" => Box::new(LengthP(None)),
        "ttl" if family == Family::V4 => Box::new(TtlP(None, false)),
        "hl" if family == Family::V6 => Box::new(TtlP(None, true)),
        "addrtype" => Box::<AddrtypeP>::default(),
        "mac" => Box::new(MacP(None)),
        "connlimit" => Box::<ConnlimitP>::default(),
        "set" => Box::<SetP>::default(),
        "owner" => Box::<OwnerP>::default(),
        "tcpmss" => Box::new(TcpmssP(None)),
        "physdev" => Box::<PhysdevP>::default(),
        "pkttype" => Box::new(PkttypeP(None)),
        "statistic" => Box::<StatisticP>::default(),
        "iprange" => Box::<IprangeP>::default(),
        "icmp6" if family == Family::V6 => Box::new(Icmp6P(None)),
        "string" => Box::<StringP>::default(),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// Shared helpers: xtables' number and address readers and its error texts.

/// `--NAME` given twice (xtables: "can only be used once").
fn once(cx: &Cx, m: &str, n: &str) -> Diagnostic {
    Diagnostic::error("E0107", cx.at, format!("{m}: option `--{n}` given twice"))
        .label("given before")
        .note(format!("iptables: {m}: option \"--{n}\" can only be used once."))
        .help(format!("give `--{n}` once; to test two values use a second `-m {m}` match"))
}

/// Two options that exclude each other; `a` and `b` in the order of the extension's
/// option table, which is how xtables names them.
fn together(cx: &Cx, m: &str, a: &str, b: &str) -> Diagnostic {
    Diagnostic::error("E0106", cx.at, format!("{m}: `--{a}` cannot be used together with `--{b}`"))
        .note(format!("iptables: {m}: option \"--{a}\" cannot be used together with \"--{b}\"."))
        .help(format!("keep one of `--{a}` and `--{b}`"))
}

/// A mandatory option is missing.
fn required(cx: &Cx, m: &str, n: &str, help: &str) -> Diagnostic {
    Diagnostic::error("E0108", cx.at, format!("{m}: `--{n}` is required"))
        .note(format!("iptables: {m}: option \"--{n}\" must be specified"))
        .help(help.to_string())
}

/// A number outside `lo..=hi` (xtables' generic message).
fn out_of_range(v: &Val, m: &str, n: &str, lo: u64, hi: u64) -> Diagnostic {
    Diagnostic::error("E0105", v.span, format!("{m}: bad value `{}` for `--{n}`", v.text))
        .label(format!("not a number from {lo} to {hi}"))
        .note(format!("iptables: {m}: bad value for option \"--{n}\", or out of range ({lo}-{hi})."))
        .help(format!("give a whole number from {lo} to {hi} (decimal, 0x hex or 0 octal)"))
}

/// A rule iptables accepts but the kernel refuses at commit time.
fn kernel_refuses(span: Span, msg: String, help: impl Into<String>) -> Diagnostic {
    Diagnostic::error("E0105", span, msg)
        .note("the kernel refuses the rule (`iptables-restore: line N failed`) and the whole table fails to load")
        .help(help)
}

/// A range that can never match (kept, as iptables keeps it).
fn never_matches(cx: &mut Cx, what: String, help: String) {
    let d = Diagnostic::warning("W0004", cx.at, what).help(help);
    cx.diags.push(d);
}

/// C `strtoul(s, &end, 0)`: leading blanks, then `0x` hex, `0` octal or decimal digits.
/// Returns the value and the unparsed rest; `None` without digits or on overflow.
fn strtoul(s: &str) -> Option<(u64, &str)> {
    let t = s.trim_start();
    let (radix, digits) = if let Some(r) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        if !r.starts_with(|c: char| c.is_ascii_hexdigit()) {
            // `0x` without hex digits is the number 0 followed by `x…`.
            return Some((0, &t[1..]));
        }
        (16, r)
    } else if let Some(r) = t.strip_prefix('0') {
        (8, r)
    } else {
        (10, t)
    };
    let end = digits.find(|c: char| !c.is_digit(radix)).unwrap_or(digits.len());
    if end == 0 {
        // Only the leading `0` of an octal number counts.
        return (radix == 8).then_some((0, digits));
    }
    let v = u64::from_str_radix(&digits[..end], radix).ok()?;
    Some((v, &digits[end..]))
}

/// A whole word as `xtables_strtoul(s, NULL, …, 0, max)` reads it.
fn c_uint(s: &str, max: u64) -> Option<u64> {
    match strtoul(s) {
        Some((v, "")) if v <= max => Some(v),
        _ => None,
    }
}

/// xtables' `MIN[:MAX]` reader for range types (`xtopt_parse_mint`, two components):
/// empty parts default to 0 and `max`; one number means `N:N`. `Err(None)` for too
/// many components, `Err(Some(part))` for the part that is no number ≤ `max`.
fn parse_mint(s: &str, max: u64) -> Result<(u64, u64), Option<String>> {
    let mut vals: Vec<u64> = Vec::with_capacity(2);
    let mut arg = s;
    loop {
        if vals.len() == 2 {
            return Err(None);
        }
        let (value, rest) = if arg.is_empty() || arg.starts_with(':') {
            (if vals.len() == 1 { max } else { 0 }, arg)
        } else {
            match strtoul(arg) {
                Some((v, r)) if v <= max && (r.is_empty() || r.starts_with(':')) => (v, r),
                _ => return Err(Some(arg.to_string())),
            }
        };
        vals.push(value);
        if rest.is_empty() {
            break;
        }
        arg = &rest[1..];
    }
    Ok((vals[0], *vals.get(1).unwrap_or(&vals[0])))
}

/// The error for [`parse_mint`] failures.
fn mint_error(v: &Val, m: &str, n: &str, max: u64, e: Option<String>) -> Diagnostic {
    match e {
        None => Diagnostic::error("E0105", v.span, format!("{m}: `--{n} {}` has more than two parts", v.text))
            .note(format!("iptables: {m}: Too many components for option \"--{n}\" (max: 2)"))
            .help("write `MIN:MAX`, `MIN:`, `:MAX` or a single number"),
        Some(part) => Diagnostic::error("E0105", v.span, format!("{m}: bad value `{}` for `--{n}`", v.text))
            .label(format!("`{part}` is not a number from 0 to {max}"))
            .note(format!("iptables: {m}: bad value for option \"--{n}\" near \"{part}\", or out of range (0-{max})."))
            .help(format!("write `MIN:MAX`, `MIN:`, `:MAX` or a single number from 0 to {max}")),
    }
}

/// An IPv4 address as `inet_aton` reads it (what getaddrinfo accepts numerically):
/// 1–4 parts, each decimal, `0x` hex or `0` octal; the last part fills the remaining
/// bytes (`10` = 0.0.0.10, `10.1` = 10.0.0.1).
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() > 4 || parts.iter().any(|p| p.is_empty() || p.starts_with(char::is_whitespace)) {
        return None;
    }
    let mut v: u32 = 0;
    for (i, p) in parts.iter().enumerate() {
        let n = c_uint(p, u32::MAX as u64)? as u32;
        if i + 1 < parts.len() {
            if n > 255 {
                return None;
            }
            v |= n << (24 - 8 * i);
        } else {
            let bits = 8 * (4 - i as u32);
            if bits < 32 && n >= 1 << bits {
                return None;
            }
            v |= n;
        }
    }
    Some(Ipv4Addr::from(v))
}

/// A plain IPv4 address the way iptables' own numeric parser reads it (`10.1` =
/// 10.1.0.0), or an IPv6 address, of the rule's family.
fn parse_addr(s: &str, family: Family) -> Option<IpAddr> {
    let t = s.trim_start();
    match family {
        Family::V4 => super::super::rule::parse_ip(t, Family::V4).filter(IpAddr::is_ipv4),
        Family::V6 => t.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
    }
}

/// Address width of a family in bits.
fn width(family: Family) -> u32 {
    if family == Family::V4 {
        32
    } else {
        128
    }
}

/// A prefix length as xtables' `plen`/`plenmask` types read it: a number (IPv4: any
/// 32-bit value, IPv6: 0–128) or a mask in address form (a non-contiguous mask gives
/// 255). Callers treat values above the family width as "all ones" (masks) or as a
/// kernel refusal (hashlimit).
fn parse_plen(s: &str, family: Family) -> Option<u32> {
    let max = if family == Family::V4 { u32::MAX as u64 } else { 128 };
    if let Some(v) = c_uint(s, max) {
        return Some(v as u32);
    }
    let (m, w) = match parse_addr(s, family)? {
        IpAddr::V4(a) => (u32::from(a) as u128, 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    let ones = m.count_ones();
    let full = if w == 32 { u32::MAX as u128 } else { u128::MAX };
    let prefix = if ones == 0 { 0 } else { full & !((1u128 << (w - ones)) - 1) };
    Some(if m == prefix { ones } else { 255 })
}

/// The error for a bad prefix length or mask.
fn plen_error(v: &Val, m: &str, n: &str, family: Family) -> Diagnostic {
    let w = width(family);
    Diagnostic::error("E0105", v.span, format!("{m}: bad mask `{}` for `--{n}`", v.text))
        .label(format!("neither a prefix length 0-{w} nor a network mask"))
        .note(format!(
            "iptables: {m}: bad value for option \"--{n}\", neither a valid network mask nor valid CIDR (0-{w})."
        ))
        .help(format!("give a prefix length 0-{w} or a mask such as 255.255.255.0"))
}

/// Checks that the rule says `-p PROTO` (not negated), as the kernel does for matches
/// bound to one protocol.
fn need_proto(cx: &Cx, module: &str, want: Proto) -> Result<(), Diagnostic> {
    match cx.proto {
        Some(p) if !p.inv && p.val == want => Ok(()),
        Some(p) if p.inv => {
            Err(Diagnostic::error("E0210", cx.at, format!("`-m {module}` cannot be used with `! -p {}`", p.val))
                .note("the kernel refuses the rule and the whole table fails to load")
                .help("remove the `!`"))
        }
        _ => Err(Diagnostic::error("E0210", cx.at, format!("`-m {module}` needs `-p {want}`"))
            .note("the kernel refuses the match for any other protocol and the whole table fails to load")
            .help(format!("add `-p {want}` before `-m {module}`"))),
    }
}

// ---------------------------------------------------------------------------------------
// conntrack

const CONNTRACK_OPTS: &[OptDef] = &[
    o("ctstate", R, true),
    o("ctproto", R, true),
    o("ctorigsrc", R, true),
    o("ctorigdst", R, true),
    o("ctreplsrc", R, true),
    o("ctrepldst", R, true),
    o("ctorigsrcport", R, true),
    o("ctorigdstport", R, true),
    o("ctreplsrcport", R, true),
    o("ctrepldstport", R, true),
    o("ctstatus", R, true),
    o("ctexpire", R, true),
    o("ctdir", R, false),
];

#[derive(Default)]
struct ConntrackP(Conntrack, bool);

/// `ADDR[/LEN|/MASK]` as `--ctorigsrc` reads it: host bits are kept.
fn parse_hostmask(v: &Val, n: &str, family: Family) -> Result<AddrMask, Diagnostic> {
    let (host, mask) = match v.text.split_once('/') {
        Some((h, m)) => (h, Some(m)),
        None => (v.text.as_str(), None),
    };
    let addr = match family {
        Family::V4 => inet_aton(host).map(IpAddr::V4),
        Family::V6 => host.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
    }
    .ok_or_else(|| {
        Diagnostic::error("E0105", v.span, format!("conntrack: bad address `{host}` for `--{n}`"))
            .label("not an address of this family (host names are not resolved)")
            .note("iptables: getaddrinfo: Name or service not known")
            .help("write a numeric address with an optional /prefix or /mask")
    })?;
    let w = width(family);
    let len = match mask {
        None => w,
        Some(m) => parse_plen(m, family).ok_or_else(|| plen_error(v, "conntrack", n, family))?.min(w),
    };
    let mask = prefix_mask(family == Family::V4, len as u8).expect("len ≤ width");
    Ok(AddrMask { addr, mask })
}

/// A conntrack port: a number (taken modulo 65536, as iptables 1.8.9 does) or a
/// service name.
fn ct_port(s: &str) -> Option<u16> {
    let t = s.trim_start();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let v = t.parse::<u64>().unwrap_or(u64::MAX);
        return Some((v % 65536) as u16);
    }
    parse_port(t)
}

fn parse_ct_ports(v: &Val) -> Result<PortRange, Diagnostic> {
    let bad = |p: &str| {
        Diagnostic::error("E0105", v.span, format!("conntrack: bad port `{p}`"))
            .label("not a port number or service name")
            .note(format!("iptables: Port \"{p}\" does not resolve to anything."))
            .help("write a port, a range `LOW:HIGH`, or a service name from /etc/services")
    };
    let (lo, hi) = match v.text.split_once(':') {
        Some((a, b)) => (
            if a.is_empty() { 0 } else { ct_port(a).ok_or_else(|| bad(a))? },
            if b.is_empty() { 65535 } else { ct_port(b).ok_or_else(|| bad(b))? },
        ),
        None => {
            let p = ct_port(&v.text).ok_or_else(|| bad(&v.text))?;
            (p, p)
        }
    };
    Ok(PortRange { lo, hi })
}

impl MatchParser for ConntrackP {
    fn name(&self) -> &str {
        "conntrack"
    }
    fn opts(&self) -> &'static [OptDef] {
        CONNTRACK_OPTS
    }
    fn take(&mut self, opt: usize, name: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        let v = req(val, cx)?;
        let c = &mut self.0;
        self.1 = true;
        let dup = |set: bool| if set { Err(once(cx, "conntrack", name)) } else { Ok(()) };
        match opt {
            0 => {
                dup(c.state.is_some())?;
                c.state = Some(Neg { inv, val: parse_states(&v, true)? });
            }
            1 => {
                dup(c.proto.is_some())?;
                let p = Proto::parse(&v.text).ok_or_else(|| {
                    Diagnostic::error("E0105", v.span, format!("conntrack: unknown protocol `{}`", v.text))
                        .note(format!("iptables: unknown protocol \"{}\" specified", v.text))
                        .help("use a name from /etc/protocols (tcp, udp, icmp, …) or a number 0-255")
                })?;
                c.proto = Some(Neg { inv, val: p.0 });
            }
            2..=5 => {
                let slot = match opt {
                    2 => &mut c.orig_src,
                    3 => &mut c.orig_dst,
                    4 => &mut c.repl_src,
                    _ => &mut c.repl_dst,
                };
                if slot.is_some() {
                    return Err(once(cx, "conntrack", name));
                }
                *slot = Some(Neg { inv, val: parse_hostmask(&v, name, cx.family)? });
            }
            6..=9 => {
                let slot = match opt {
                    6 => &mut c.orig_src_port,
                    7 => &mut c.orig_dst_port,
                    8 => &mut c.repl_src_port,
                    _ => &mut c.repl_dst_port,
                };
                if slot.is_some() {
                    return Err(once(cx, "conntrack", name));
                }
                let r = parse_ct_ports(&v)?;
                if r.lo > r.hi {
                    never_matches(
                        cx,
                        format!("conntrack: port range {}:{} is reversed", r.lo, r.hi),
                        format!("write {}:{}", r.hi, r.lo),
                    );
                }
                *slot = Some(Neg { inv, val: r });
            }
            10 => {
                dup(c.status.is_some())?;
                let mut bits = 0u8;
                for part in v.text.split(',') {
                    let u = part.to_ascii_uppercase();
                    if u == "NONE" {
                        continue;
                    }
                    let (_, b) = ctstatus::NAMES.iter().find(|(n, _)| *n == u).ok_or_else(|| {
                        Diagnostic::error("E0105", v.span, format!("conntrack: bad status `{part}`"))
                            .note(format!("iptables: Bad ctstatus \"{part}\""))
                            .help("statuses are NONE, EXPECTED, SEEN_REPLY, ASSURED, CONFIRMED")
                    })?;
                    bits |= b;
                }
                c.status = Some(Neg { inv, val: bits });
            }
            11 => {
                dup(c.expire.is_some())?;
                let (lo, hi) = parse_mint(&v.text, u32::MAX as u64)
                    .map_err(|e| mint_error(&v, "conntrack", "ctexpire", u32::MAX as u64, e))?;
                if lo > hi {
                    never_matches(
                        cx,
                        format!("conntrack: expiry range {lo}:{hi} is reversed"),
                        format!("write {hi}:{lo}"),
                    );
                }
                c.expire = Some(Neg { inv, val: (lo as u32, hi as u32) });
            }
            _ => {
                dup(c.dir.is_some())?;
                c.dir = Some(match v.text.to_ascii_uppercase().as_str() {
                    "ORIGINAL" => CtDir::Original,
                    "REPLY" => CtDir::Reply,
                    _ => {
                        return Err(Diagnostic::error(
                            "E0105",
                            v.span,
                            format!("conntrack: bad direction `{}`", v.text),
                        )
                        .note(format!("iptables: conntrack: Bad value for \"--ctdir\" option: \"{}\"", v.text))
                        .help("write `--ctdir ORIGINAL` or `--ctdir REPLY`"))
                    }
                });
            }
        }
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        if !self.1 {
            return Err(Diagnostic::error("E0108", cx.at, "conntrack: no test given")
                .note("iptables: conntrack: At least one option is required")
                .help("add e.g. `--ctstate ESTABLISHED,RELATED`"));
        }
        Ok(Match::Conntrack(self.0))
    }
}

// ---------------------------------------------------------------------------------------
// hashlimit

const HASHLIMIT_OPTS: &[OptDef] = &[
    o("hashlimit-upto", R, true),
    o("hashlimit-above", R, true),
    o("hashlimit", R, true),
    o("hashlimit-srcmask", R, false),
    o("hashlimit-dstmask", R, false),
    o("hashlimit-burst", R, false),
    o("hashlimit-htable-size", R, false),
    o("hashlimit-htable-max", R, false),
    o("hashlimit-htable-gcinterval", R, false),
    o("hashlimit-htable-expire", R, false),
    o("hashlimit-mode", R, false),
    o("hashlimit-name", R, false),
    o("hashlimit-rate-match", N, false),
    o("hashlimit-rate-interval", R, false),
];

/// Longest hashlimit name iptables keeps (the rest is cut silently).
const HASHLIMIT_NAME_MAX: usize = 254;
/// The kernel clamps `--hashlimit-htable-size` and `-max` to this (`HASHLIMIT_MAX_SIZE`).
const HASHLIMIT_MAX_SIZE: u32 = 1 << 20;

#[derive(Default)]
struct HashlimitP {
    /// The rate option: index (0 upto, 1 above), `!`, avg, byte mode, unit seconds.
    rate: Option<(usize, bool, u64, bool, u64)>,
    burst: Option<(u64, Span)>,
    mode: Option<u8>,
    name: Option<String>,
    size: Option<u32>,
    max: Option<u32>,
    gc_interval: Option<u32>,
    expire: Option<u32>,
    srcmask: Option<(u32, Span)>,
    dstmask: Option<(u32, Span)>,
    rate_match: bool,
    interval: Option<u32>,
}

/// libxt_hashlimit's `parse_bytes`: `N[k|m]b/s` → byte-mode cost. `Ok(None)` when the
/// text is no byte rate.
fn hashlimit_bytes(s: &str) -> Result<Option<u64>, ()> {
    let Some(pos) = s.find("b/s") else { return Ok(None) };
    if pos == 0 {
        return Ok(None);
    }
    let digits: String = s.trim_start().chars().take_while(|c| c.is_ascii_digit()).collect();
    let r: u64 = digits.parse().unwrap_or(0);
    if r == 0 {
        return Ok(None);
    }
    let factor = match s.as_bytes()[pos - 1] {
        b'm' => 1024 * 1024,
        b'k' => 1024,
        _ => 1,
    };
    let bytes = r.checked_mul(factor).ok_or(())?;
    match Hashlimit::bytes_to_cost(bytes) {
        Some(c) if c != 0 => Ok(Some(c)),
        _ => Err(()),
    }
}

/// The unit of a rate `N/unit` in seconds (`parse_rate` already accepted the text).
fn rate_unit_secs(s: &str) -> u64 {
    match s.split_once('/') {
        Some((_, u)) => {
            let l = u.to_ascii_lowercase();
            if "second".starts_with(&l) {
                1
            } else if "minute".starts_with(&l) {
                60
            } else if "hour".starts_with(&l) {
                3600
            } else {
                86400
            }
        }
        None => 1,
    }
}

/// libxt_hashlimit's `parse_burst`: a number 1–1 000 000, optionally followed by `k`
/// or `m` (then multiplied, without the upper bound).
fn hashlimit_burst(s: &str) -> Option<u64> {
    let (v, rest) = strtoul(s)?;
    if v == 0 || (rest.is_empty() && v > 1_000_000) {
        return None;
    }
    let factor = match rest.bytes().next() {
        Some(b'm') => 1024 * 1024,
        Some(b'k') => 1024,
        _ => 1,
    };
    v.checked_mul(factor)
}

/// xt_hashlimit's `user2credits` (revision ≥ 2) at HZ 250: `x · ⌊HZ · 2^39 / 10^6⌋`,
/// wrapping like the kernel's u64 arithmetic (SEMANTICS.md §4.2).
fn hashlimit_credits(x: u64) -> u64 {
    x.wrapping_mul(137_438_953)
}

impl MatchParser for HashlimitP {
    fn name(&self) -> &str {
        "hashlimit"
    }
    fn opts(&self) -> &'static [OptDef] {
        HASHLIMIT_OPTS
    }
    fn take(&mut self, opt: usize, name: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        const M: &str = "hashlimit";
        let u32_opt = |v: &Val| c_uint(&v.text, u32::MAX as u64).map(|n| n as u32);
        if opt == 12 {
            if self.rate_match {
                return Err(once(cx, M, name));
            }
            self.rate_match = true;
            return Ok(());
        }
        let v = req(val, cx)?;
        match opt {
            0..=2 => {
                let id = if opt == 1 { 1 } else { 0 };
                if let Some((prev, ..)) = self.rate {
                    return Err(if prev == id {
                        once(cx, M, HASHLIMIT_OPTS[id].name)
                    } else {
                        together(cx, M, "hashlimit-upto", "hashlimit-above")
                    });
                }
                let shown = HASHLIMIT_OPTS[id].name;
                let bad = || {
                    Diagnostic::error("E0105", v.span, format!("hashlimit: bad rate `{}`", v.text))
                        .note(format!("iptables: hashlimit: Bad value for \"--{shown}\" option: \"{}\"", v.text))
                        .help("write N/second, N/minute, N/hour, N/day (any prefix of the unit) or Nkb/s, Nmb/s")
                };
                let (avg, bytes, mult) = match hashlimit_bytes(&v.text) {
                    Ok(Some(cost)) => (cost, true, 15),
                    Err(()) => {
                        return Err(Diagnostic::error(
                            "E0105",
                            v.span,
                            format!("hashlimit: rate `{}` is too high", v.text),
                        )
                        .note(format!("iptables: Rate too high \"{}\"", v.text))
                        .help("give a lower byte rate"))
                    }
                    Ok(None) => match parse_rate(&v.text, Hashlimit::SCALE) {
                        Ok(avg) => (avg, false, rate_unit_secs(&v.text)),
                        Err(true) => {
                            return Err(Diagnostic::error(
                                "E0105",
                                v.span,
                                format!("hashlimit: rate `{}` is too fast", v.text),
                            )
                            .note(format!("iptables: Rate too fast \"{}\"", v.text))
                            .help("the fastest packet rate is 1000000/second"))
                        }
                        Err(false) => return Err(bad()),
                    },
                };
                // `--hashlimit-above` sets the invert flag; `!` flips it.
                let above = (id == 1) != inv;
                self.rate = Some((id, above, avg, bytes, mult));
            }
            3 | 4 => {
                let slot = if opt == 3 { &mut self.srcmask } else { &mut self.dstmask };
                if slot.is_some() {
                    return Err(once(cx, M, name));
                }
                let len = parse_plen(&v.text, cx.family).ok_or_else(|| plen_error(&v, M, name, cx.family))?;
                *slot = Some((len, v.span));
            }
            5 => {
                if self.burst.is_some() {
                    return Err(once(cx, M, name));
                }
                let b = hashlimit_burst(&v.text).ok_or_else(|| {
                    Diagnostic::error("E0105", v.span, format!("hashlimit: bad burst `{}`", v.text))
                        .note("iptables: bad value for option \"--hashlimit-burst\", or out of range (1-1000000).")
                        .help("give a number of packets from 1 to 1000000 (byte mode: bytes, optionally with k or m)")
                })?;
                self.burst = Some((b, v.span));
            }
            6..=9 => {
                let slot = match opt {
                    6 => &mut self.size,
                    7 => &mut self.max,
                    8 => &mut self.gc_interval,
                    _ => &mut self.expire,
                };
                if slot.is_some() {
                    return Err(once(cx, M, name));
                }
                let n = u32_opt(&v).ok_or_else(|| out_of_range(&v, M, name, 0, u32::MAX as u64))?;
                if n == 0 && opt >= 8 {
                    return Err(kernel_refuses(
                        v.span,
                        format!("hashlimit: `--{name} 0` is refused by the kernel"),
                        "give a positive number of milliseconds (defaults: gcinterval 1000, expire = the rate unit)",
                    ));
                }
                if n > HASHLIMIT_MAX_SIZE && opt <= 7 {
                    cx.diags.push(
                        Diagnostic::warning(
                            "W0003",
                            v.span,
                            format!("hashlimit: `--{name} {n}` is cut to {HASHLIMIT_MAX_SIZE} by the kernel"),
                        )
                        .help(format!("give at most {HASHLIMIT_MAX_SIZE}")),
                    );
                }
                *slot = Some(if opt <= 7 { n.min(HASHLIMIT_MAX_SIZE) } else { n });
            }
            10 => {
                if self.mode.is_some() {
                    return Err(once(cx, M, name));
                }
                let mut bits = 0u8;
                for tok in v.text.split([',', '|']).filter(|t| !t.is_empty()) {
                    let (_, b) = hashmode::NAMES.iter().find(|(n, _)| *n == tok).ok_or_else(|| {
                        Diagnostic::error("E0105", v.span, format!("hashlimit: bad mode `{tok}`"))
                            .note(format!(
                                "iptables: hashlimit: Bad value for \"--hashlimit-mode\" option: \"{}\"",
                                v.text
                            ))
                            .help("the mode is a comma list of srcip, srcport, dstip, dstport")
                    })?;
                    bits |= b;
                }
                self.mode = Some(bits);
            }
            11 => {
                if self.name.is_some() {
                    return Err(once(cx, M, name));
                }
                let mut n = v.text.clone();
                if n.is_empty() {
                    return Err(Diagnostic::error("E0105", v.span, "hashlimit: empty table name")
                        .note("iptables: Argument must have a minimum length of 1 characters")
                        .help("name the table, e.g. `--hashlimit-name ssh`"));
                }
                if n.contains('/') || n == "." || n == ".." {
                    return Err(kernel_refuses(
                        v.span,
                        format!("hashlimit: invalid table name `{n}`"),
                        "the name becomes /proc/net/ipt_hashlimit/NAME: no `/`, not `.` or `..`",
                    ));
                }
                if n.len() > HASHLIMIT_NAME_MAX {
                    cx.diags.push(
                        Diagnostic::warning(
                            "W0003",
                            v.span,
                            format!(
                                "hashlimit name is {} bytes; iptables keeps the first {HASHLIMIT_NAME_MAX}",
                                n.len()
                            ),
                        )
                        .help("shorten the name"),
                    );
                    let mut cut = HASHLIMIT_NAME_MAX;
                    while !n.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    n.truncate(cut);
                }
                self.name = Some(n);
            }
            _ => {
                if self.interval.is_some() {
                    return Err(once(cx, M, name));
                }
                // atoi: leading digits; ≤ 0 is refused.
                let digits: String = v.text.trim_start().chars().take_while(|c| c.is_ascii_digit()).collect();
                let n = digits.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    Diagnostic::error("E0105", v.span, format!("hashlimit: bad rate interval `{}`", v.text))
                        .note(format!(
                            "iptables: hashlimit: Bad value for \"--hashlimit-rate-interval\" option: \"{}\"",
                            v.text
                        ))
                        .help("give a positive number of seconds")
                })?;
                self.interval = Some(n.min(u32::MAX as u64) as u32);
            }
        }
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        // libxt_hashlimit's own check (the rate) runs before xtables' mandatory options.
        let Some((_, above, mut avg, bytes, mult)) = self.rate else {
            return Err(Diagnostic::error("E0108", cx.at, "hashlimit: no rate given")
                .note("iptables: You have to specify --hashlimit")
                .help("add `--hashlimit-upto RATE` or `--hashlimit-above RATE`"));
        };
        let Some(name) = self.name else {
            return Err(required(cx, "hashlimit", "hashlimit-name", "name the table, e.g. `--hashlimit-name ssh`"));
        };
        let mut expire = self.expire.unwrap_or(mult as u32 * 1000);
        let burst = if bytes {
            match self.burst {
                Some((b, span)) => {
                    let unit = Hashlimit::cost_to_bytes(avg);
                    if b < unit || unit == 0 {
                        return Err(Diagnostic::error(
                            "E0105",
                            span,
                            format!("hashlimit: burst {b} bytes is below the rate"),
                        )
                        .note(format!("iptables: burst cannot be smaller than {unit}b"))
                        .help(format!("give a burst of at least {unit} bytes")));
                    }
                    if self.expire.is_none() {
                        expire = 60_000;
                    }
                    // Stored as a u32 multiple of the byte rate, rounded up.
                    (b.div_ceil(unit)) as u32 as u64
                }
                None => 0,
            }
        } else {
            let b = self.burst.map(|(b, _)| b).unwrap_or(5);
            if b > 1_000_000 {
                let span = self.burst.map(|(_, s)| s).unwrap_or(cx.at);
                return Err(Diagnostic::error("E0105", span, format!("hashlimit: burst {b} is too large"))
                    .note("iptables: bad value for option \"--hashlimit-burst\", or out of range (1-1000000).")
                    .help("give a burst of at most 1000000 packets"));
            }
            b
        };
        let mut interval = 0;
        if self.rate_match {
            if !bytes {
                avg /= mult;
            }
            interval = self.interval.unwrap_or(if bytes { 1 } else { mult as u32 });
            if avg == 0 || avg > u32::MAX as u64 {
                return Err(kernel_refuses(
                    cx.at,
                    "hashlimit: this rate is invalid with `--hashlimit-rate-match`".into(),
                    "use a lower rate",
                ));
            }
        } else if !bytes && hashlimit_credits(avg.wrapping_mul(burst)) < hashlimit_credits(avg) {
            return Err(kernel_refuses(
                cx.at,
                format!("hashlimit: burst {burst} does not fit this rate"),
                "use a smaller burst or a faster rate (1/day allows a burst of at most 1)",
            )
            .note(format!(
                "the kernel refuses the rule (`xt_hashlimit: overflow, try lower: {avg}/{burst}`) and the whole table fails to load"
            )));
        }
        let w = width(cx.family);
        for (len, span, which) in [(self.srcmask, "srcmask"), (self.dstmask, "dstmask")]
            .into_iter()
            .filter_map(|(m, n)| m.map(|(l, s)| (l, s, n)))
        {
            if len > w {
                return Err(kernel_refuses(
                    span,
                    format!("hashlimit: `--hashlimit-{which}` {len} is longer than the address ({w} bits)"),
                    format!("give a prefix length from 0 to {w}"),
                ));
            }
        }
        Ok(Match::Hashlimit(Hashlimit {
            family: cx.family,
            above,
            bytes,
            avg,
            burst,
            mode: self.mode.unwrap_or(0),
            name,
            size: self.size.unwrap_or(0),
            max: self.max.unwrap_or(0),
            gc_interval: self.gc_interval.unwrap_or(1000),
            expire,
            srcmask: self.srcmask.map(|(l, _)| l).unwrap_or(w) as u8,
            dstmask: self.dstmask.map(|(l, _)| l).unwrap_or(w) as u8,
            rate_match: self.rate_match,
            interval,
        }))
    }
}

// ---------------------------------------------------------------------------------------
// mark, connmark

const MARK_OPTS: &[OptDef] = &[o("mark", R, true)];

struct MarkP {
    connmark: bool,
    mark: Option<Mark>,
}

/// `VALUE[/MASK]`, both 32-bit numbers (decimal, `0x` hex, `0` octal).
fn parse_markmask(v: &Val, m: &str) -> Result<(u32, u32), Diagnostic> {
    let bad = || {
        Diagnostic::error("E0105", v.span, format!("{m}: bad mark `{}`", v.text))
            .note(format!("iptables: {m}: bad integer value for option \"--mark\", or out of range."))
            .help("write VALUE or VALUE/MASK with 32-bit numbers, e.g. 0x1/0xff")
    };
    let garbage = || {
        Diagnostic::error("E0105", v.span, format!("{m}: trailing text after the mark `{}`", v.text))
            .note(format!("iptables: {m}: trailing garbage after value for option \"--mark\"."))
            .help("write VALUE or VALUE/MASK")
    };
    let (value, rest) = strtoul(&v.text).filter(|(n, _)| *n <= u32::MAX as u64).ok_or_else(bad)?;
    if rest.is_empty() {
        return Ok((value as u32, u32::MAX));
    }
    let Some(m) = rest.strip_prefix('/') else { return Err(garbage()) };
    let (mask, rest) = strtoul(m).filter(|(n, _)| *n <= u32::MAX as u64).ok_or_else(bad)?;
    if !rest.is_empty() {
        return Err(garbage());
    }
    Ok((value as u32, mask as u32))
}

impl MatchParser for MarkP {
    fn name(&self) -> &str {
        if self.connmark {
            "connmark"
        } else {
            "mark"
        }
    }
    fn opts(&self) -> &'static [OptDef] {
        MARK_OPTS
    }
    fn take(&mut self, _: usize, _: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        let m = if self.connmark { "connmark" } else { "mark" };
        if self.mark.is_some() {
            return Err(once(cx, m, "mark"));
        }
        let (value, mask) = parse_markmask(&req(val, cx)?, m)?;
        self.mark = Some(Mark { inv, value, mask });
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        let m = if self.connmark { "connmark" } else { "mark" };
        let mark = self.mark.ok_or_else(|| required(cx, m, "mark", "add `--mark VALUE[/MASK]`"))?;
        Ok(if self.connmark { Match::Connmark(mark) } else { Match::Mark(mark) })
    }
}

// ---------------------------------------------------------------------------------------
// length, tcpmss

const LENGTH_OPTS: &[OptDef] = &[o("length", R, true)];

struct LengthP(Option<Length>);

impl MatchParser for LengthP {
    fn name(&self) -> &str {
        "length"
    }
    fn opts(&self) -> &'static [OptDef] {
        LENGTH_OPTS
    }
    fn take(&mut self, _: usize, _: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        if self.0.is_some() {
            return Err(once(cx, "length", "length"));
        }
        let v = req(val, cx)?;
        let (min, max) = parse_mint(&v.text, 65535).map_err(|e| mint_error(&v, "length", "length", 65535, e))?;
        if min > max {
            never_matches(
                cx,
                format!("length range {min}:{max} is reversed and never matches"),
                format!("write {max}:{min}"),
            );
        }
        self.0 = Some(Length { inv, min: min as u16, max: max as u16 });
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        self.0.map(Match::Length).ok_or_else(|| required(cx, "length", "length", "add `--length MIN:MAX`"))
    }
}

const TCPMSS_OPTS: &[OptDef] = &[o("mss", R, true)];

struct TcpmssP(Option<Tcpmss>);

impl MatchParser for TcpmssP {
    fn name(&self) -> &str {
        "tcpmss"
    }
    fn opts(&self) -> &'static [OptDef] {
        TCPMSS_OPTS
    }
    fn take(&mut self, _: usize, _: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        if self.0.is_some() {
            return Err(once(cx, "tcpmss", "mss"));
        }
        let v = req(val, cx)?;
        let (min, max) = parse_mint(&v.text, 65535).map_err(|e| mint_error(&v, "tcpmss", "mss", 65535, e))?;
        if min > max {
            return Err(Diagnostic::error("E0105", v.span, format!("tcpmss: range {min}:{max} is reversed"))
                .note("iptables: tcpmss: invalid range given")
                .help(format!("write {max}:{min}")));
        }
        self.0 = Some(Tcpmss { inv, min: min as u16, max: max as u16 });
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        let m = self.0.ok_or_else(|| required(cx, "tcpmss", "mss", "add `--mss MIN:MAX`"))?;
        need_proto(cx, "tcpmss", Proto::TCP)?;
        Ok(Match::Tcpmss(m))
    }
}

// ---------------------------------------------------------------------------------------
// ttl

const TTL_OPTS: &[OptDef] = &[o("ttl-eq", R, true), o("ttl-lt", R, false), o("ttl-gt", R, false), o("ttl", R, true)];
const HL_OPTS: &[OptDef] = &[o("hl-eq", R, true), o("hl-lt", R, false), o("hl-gt", R, false), o("hl", R, true)];

/// `-m ttl`, or with `.1` `-m hl` (libip6t_hl: the same options with `hl` for `ttl`).
struct TtlP(Option<(usize, Ttl)>, bool);

impl TtlP {
    fn module(&self) -> &'static str {
        if self.1 {
            "hl"
        } else {
            "ttl"
        }
    }
}

impl MatchParser for TtlP {
    fn name(&self) -> &str {
        self.module()
    }
    fn opts(&self) -> &'static [OptDef] {
        if self.1 {
            HL_OPTS
        } else {
            TTL_OPTS
        }
    }
    fn take(&mut self, opt: usize, name: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        let (m, opts) = (self.module(), self.opts());
        // `--ttl` (`--hl`) is the old name of `--ttl-eq` (`--hl-eq`).
        let id = if opt == 3 { 0 } else { opt };
        if let Some((prev, _)) = self.0 {
            if prev == id {
                return Err(once(cx, m, opts[id].name));
            }
            // xtables names them in its table order: lt, gt, eq.
            let rank = |i: usize| [2, 0, 1][i];
            let (a, b) = if rank(prev) < rank(id) { (prev, id) } else { (id, prev) };
            return Err(together(cx, m, opts[a].name, opts[b].name));
        }
        let v = req(val, cx)?;
        let value = c_uint(&v.text, 255).ok_or_else(|| out_of_range(&v, m, name, 0, 255))? as u8;
        let op = match id {
            0 if inv => TtlOp::Ne,
            0 => TtlOp::Eq,
            1 => TtlOp::Lt,
            _ => TtlOp::Gt,
        };
        self.0 = Some((id, Ttl { op, value, hl: self.1 }));
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        let m = self.module();
        self.0.map(|(_, t)| Match::Ttl(t)).ok_or_else(|| {
            let what = if m == "hl" { "HL" } else { "TTL" };
            Diagnostic::error("E0108", cx.at, format!("{m}: no comparison given"))
                .note(format!("iptables: {what} match: You must specify one of `--{m}-eq', `--{m}-lt', `--{m}-gt"))
                .help(format!("add `--{m}-eq N`, `--{m}-lt N` or `--{m}-gt N`"))
        })
    }
}

// ---------------------------------------------------------------------------------------
// addrtype

const ADDRTYPE_OPTS: &[OptDef] =
    &[o("src-type", R, true), o("dst-type", R, true), o("limit-iface-in", N, false), o("limit-iface-out", N, false)];

#[derive(Default)]
struct AddrtypeP(Option<Neg<u16>>, Option<Neg<u16>>, Option<LimitIface>);

impl MatchParser for AddrtypeP {
    fn name(&self) -> &str {
        "addrtype"
    }
    fn opts(&self) -> &'static [OptDef] {
        ADDRTYPE_OPTS
    }
    fn take(&mut self, opt: usize, name: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        if opt >= 2 {
            let want = if opt == 2 { LimitIface::In } else { LimitIface::Out };
            return match self.2 {
                Some(prev) if prev == want => Err(once(cx, "addrtype", name)),
                Some(_) => Err(together(cx, "addrtype", "limit-iface-in", "limit-iface-out")),
                None => {
                    self.2 = Some(want);
                    Ok(())
                }
            };
        }
        let slot = if opt == 0 { &mut self.0 } else { &mut self.1 };
        if slot.is_some() {
            return Err(once(cx, "addrtype", name));
        }
        let v = req(val, cx)?;
        let mut bits = 0u16;
        for part in v.text.split(',') {
            let u = part.to_ascii_uppercase();
            let (_, b) = addrtype::NAMES.iter().find(|(n, _)| *n == u).ok_or_else(|| {
                Diagnostic::error("E0105", v.span, format!("addrtype: bad type `{part}`"))
                    .note(format!("iptables: addrtype: bad type \"{part}\""))
                    .help("types are UNSPEC, UNICAST, LOCAL, BROADCAST, ANYCAST, MULTICAST, BLACKHOLE, UNREACHABLE, PROHIBIT, THROW, NAT, XRESOLVE")
            })?;
            bits |= b;
        }
        if cx.family == Family::V6 {
            // xt_addrtype's checkentry for IPv6 (BLACKHOLE, BROADCAST and PROHIBIT onwards).
            let unsupported = bits & !0b1011_0111;
            if unsupported != 0 {
                let (n, _) = addrtype::NAMES.iter().find(|(_, b)| unsupported & b != 0).expect("a bit is set");
                return Err(kernel_refuses(
                    v.span,
                    format!("addrtype: IPv6 does not support `{n}`"),
                    "IPv6 addrtype knows UNSPEC, UNICAST, LOCAL, ANYCAST, MULTICAST and UNREACHABLE",
                ));
            }
        }
        *slot = Some(Neg { inv, val: bits });
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        if self.0.is_none() && self.1.is_none() {
            return Err(Diagnostic::error("E0108", cx.at, "addrtype: no address type given")
                .note("iptables: addrtype: you must specify --src-type or --dst-type")
                .help("add `--src-type TYPE` or `--dst-type TYPE`, e.g. `--dst-type LOCAL`"));
        }
        Ok(Match::Addrtype(Addrtype { src: self.0, dst: self.1, limit_iface: self.2 }))
    }
}

// ---------------------------------------------------------------------------------------
// mac

const MAC_OPTS: &[OptDef] = &[o("mac-source", R, true)];

struct MacP(Option<Mac>);

/// xtables' Ethernet address reader: six `:`-separated fields of at most two hex digits
/// (an empty field is 0).
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut out = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        let digits = p.strip_prefix('+').unwrap_or(p);
        if p.len() > 2 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        out[i] = if digits.is_empty() { 0 } else { u8::from_str_radix(digits, 16).ok()? };
    }
    Some(out)
}

impl MatchParser for MacP {
    fn name(&self) -> &str {
        "mac"
    }
    fn opts(&self) -> &'static [OptDef] {
        MAC_OPTS
    }
    fn take(&mut self, _: usize, _: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        if self.0.is_some() {
            return Err(once(cx, "mac", "mac-source"));
        }
        let v = req(val, cx)?;
        let addr = parse_mac(&v.text).ok_or_else(|| {
            Diagnostic::error("E0105", v.span, format!("invalid MAC address `{}`", v.text))
                .label("not six hex bytes separated by `:`")
                .note("iptables: Invalid MAC address specified.")
                .help("write the address as six hex bytes, e.g. 00:11:22:aa:bb:cc")
        })?;
        self.0 = Some(Mac { inv, addr });
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        self.0.map(Match::Mac).ok_or_else(|| required(cx, "mac", "mac-source", "add `--mac-source XX:XX:XX:XX:XX:XX`"))
    }
}

// ---------------------------------------------------------------------------------------
// connlimit

const CONNLIMIT_OPTS: &[OptDef] = &[
    o("connlimit-upto", R, true),
    o("connlimit-above", R, true),
    o("connlimit-mask", R, false),
    o("connlimit-saddr", N, false),
    o("connlimit-daddr", N, false),
];

#[derive(Default)]
struct ConnlimitP {
    /// Option index (0 upto, 1 above), above?, limit.
    limit: Option<(usize, bool, u32)>,
    mask: Option<u32>,
    /// Option index (3 saddr, 4 daddr).
    side: Option<usize>,
}

impl MatchParser for ConnlimitP {
    fn name(&self) -> &str {
        "connlimit"
    }
    fn opts(&self) -> &'static [OptDef] {
        CONNLIMIT_OPTS
    }
    fn take(&mut self, opt: usize, name: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        const M: &str = "connlimit";
        match opt {
            0 | 1 => {
                if let Some((prev, ..)) = self.limit {
                    return Err(if prev == opt {
                        once(cx, M, name)
                    } else {
                        together(cx, M, "connlimit-upto", "connlimit-above")
                    });
                }
                let v = req(val, cx)?;
                let n =
                    c_uint(&v.text, u32::MAX as u64).ok_or_else(|| out_of_range(&v, M, name, 0, u32::MAX as u64))?;
                self.limit = Some((opt, (opt == 1) != inv, n as u32));
            }
            2 => {
                if self.mask.is_some() {
                    return Err(once(cx, M, name));
                }
                let v = req(val, cx)?;
                let len = parse_plen(&v.text, cx.family).ok_or_else(|| plen_error(&v, M, name, cx.family))?;
                self.mask = Some(len.min(width(cx.family)));
            }
            _ => match self.side {
                Some(prev) if prev == opt => return Err(once(cx, M, name)),
                Some(_) => return Err(together(cx, M, "connlimit-saddr", "connlimit-daddr")),
                None => self.side = Some(opt),
            },
        }
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        let Some((_, above, limit)) = self.limit else {
            return Err(Diagnostic::error("E0108", cx.at, "connlimit: no limit given")
                .note("iptables: You must specify \"--connlimit-above\" or \"--connlimit-upto\".")
                .help("add `--connlimit-above N` or `--connlimit-upto N`"));
        };
        Ok(Match::Connlimit(Connlimit {
            above,
            limit,
            mask: self.mask.unwrap_or(width(cx.family)) as u8,
            daddr: self.side == Some(4),
        }))
    }
}

// ---------------------------------------------------------------------------------------
// set

const SET_OPTS: &[OptDef] = &[
    o("match-set", T, true),
    o("set", T, true),
    o("return-nomatch", N, false),
    o("update-counters", N, true),
    o("update-subcounters", N, true),
    o("packets-eq", R, true),
    o("packets-lt", R, false),
    o("packets-gt", R, false),
    o("bytes-eq", R, true),
    o("bytes-lt", R, false),
    o("bytes-gt", R, false),
];

/// Longest ipset name (`IPSET_MAXNAMELEN` − 1).
const SET_NAME_MAX: usize = 31;

#[derive(Default)]
struct SetP {
    set: Option<(bool, String, Vec<SetDir>, Span)>,
    return_nomatch: bool,
    skip_counters: bool,
    skip_subcounters: bool,
    packets: Option<(CounterOp, u64)>,
    bytes: Option<(CounterOp, u64)>,
}

impl MatchParser for SetP {
    fn name(&self) -> &str {
        "set"
    }
    fn opts(&self) -> &'static [OptDef] {
        SET_OPTS
    }
    fn take(&mut self, opt: usize, name: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        match opt {
            0 | 1 => {
                if self.set.is_some() {
                    return Err(Diagnostic::error("E0107", cx.at, "set: `--match-set` given twice")
                        .note("iptables: --match-set can be specified only once")
                        .help("use a second `-m set` match to test another set"));
                }
                let v = req(val, cx)?;
                // Two words joined by one space; a set name may itself contain spaces.
                let (set_name, dirs) = v.text.rsplit_once(' ').unwrap_or((&v.text, ""));
                if dirs.is_empty() || dirs.starts_with(['-', '!']) {
                    return Err(Diagnostic::error(
                        "E0102",
                        v.span,
                        "set: `--match-set` needs a set name and directions",
                    )
                    .note("iptables: --match-set requires two args.")
                    .help("write `--match-set NAME src` (or `dst`, `src,dst`, …)"));
                }
                if set_name.len() > SET_NAME_MAX {
                    return Err(Diagnostic::error("E0105", v.span, format!("set: set name `{set_name}` is too long"))
                        .note(format!("iptables: setname `{set_name}' too long, max {SET_NAME_MAX} characters."))
                        .help(format!("ipset names have at most {SET_NAME_MAX} characters")));
                }
                let parts: Vec<&str> = dirs.split(',').collect();
                if parts.len() > 6 {
                    return Err(Diagnostic::error(
                        "E0105",
                        v.span,
                        format!("set: {} directions, at most 6", parts.len()),
                    )
                    .note("iptables: Can't be more src/dst options than 6.")
                    .help("give one `src` or `dst` per dimension of the set"));
                }
                let mut out = Vec::with_capacity(parts.len());
                for p in parts {
                    out.push(match p {
                        "src" => SetDir::Src,
                        "dst" => SetDir::Dst,
                        _ => {
                            return Err(Diagnostic::error("E0105", v.span, format!("set: bad direction `{p}`"))
                                .note("iptables: You must spefify (the comma separated list of) 'src' or 'dst'.")
                                .help("write a comma list of `src` and `dst`, e.g. `src,dst`"))
                        }
                    });
                }
                self.set = Some((inv, set_name.to_string(), out, v.span));
            }
            2 => self.return_nomatch = true,
            3 => self.skip_counters = inv,
            4 => self.skip_subcounters = inv,
            _ => {
                let (what, slot) = if opt <= 7 { ("packets", &mut self.packets) } else { ("bytes", &mut self.bytes) };
                if slot.is_some() {
                    return Err(Diagnostic::error("E0106", cx.at, format!("set: more than one `--{what}-…` test"))
                        .note(format!("iptables: only one of the --{what}-[eq|lt|gt] is allowed"))
                        .help(format!("keep one of `--{what}-eq`, `--{what}-lt`, `--{what}-gt`")));
                }
                let v = req(val, cx)?;
                let n =
                    c_uint(&v.text, u64::MAX).filter(|_| !v.text.trim_start().starts_with('-')).ok_or_else(|| {
                        Diagnostic::error(
                            "E0105",
                            v.span,
                            format!("set: bad counter value `{}` for `--{name}`", v.text),
                        )
                        .note(format!("iptables: Cannot parse {} as a counter value", v.text))
                        .help("give a whole number")
                    })?;
                let op = match (opt - 5) % 3 {
                    0 if inv => CounterOp::Ne,
                    0 => CounterOp::Eq,
                    1 => CounterOp::Lt,
                    _ => CounterOp::Gt,
                };
                *slot = Some((op, n));
            }
        }
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        let Some((inv, name, dirs, span)) = self.set else {
            return Err(Diagnostic::error("E0108", cx.at, "set: `--match-set` is required")
                .note("iptables: You must specify `--match-set' with proper arguments")
                .help("add `--match-set NAME src`"));
        };
        cx.diags.push(
            Diagnostic::warning("W0006", span, format!("ipset `{name}` must exist when the ruleset is loaded"))
                .label("looked up in the kernel by iptables-restore")
                .note(format!(
                    "iptables-restore refuses the whole file if the set is missing (`Set {name} doesn't exist.`); fwverify cannot see the host's ipsets"
                ))
                .help(format!("create the set before loading the rules, e.g. `ipset create {name} hash:ip`")),
        );
        Ok(Match::Set(SetMatch {
            inv,
            name,
            dirs,
            return_nomatch: self.return_nomatch,
            skip_counters: self.skip_counters,
            skip_subcounters: self.skip_subcounters,
            packets: self.packets,
            bytes: self.bytes,
        }))
    }
}

// ---------------------------------------------------------------------------------------
// owner

const OWNER_OPTS: &[OptDef] =
    &[o("uid-owner", R, true), o("gid-owner", R, true), o("socket-exists", N, true), o("suppl-groups", N, false)];

#[derive(Default)]
struct OwnerP(Owner);

/// A user or group: `root`, a name (kept), or `ID[-ID]` / `ID[:ID]` (0 … 2^32 − 2).
fn parse_owner_id(v: &Val, n: &str) -> Result<OwnerId, Diagnostic> {
    let t = v.text.as_str();
    let bad = || {
        Diagnostic::error("E0105", v.span, format!("owner: bad value `{t}` for `--{n}`"))
            .note(format!("iptables: owner: Bad value for \"--{n}\" option: \"{t}\""))
            .help("give a name, an id, or an id range `FROM-TO` (ids 0-4294967294)")
    };
    if t == "root" {
        return Ok(OwnerId::Range(0, 0));
    }
    if !t.trim_start().starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') {
        if t.is_empty() || t.contains(char::is_whitespace) {
            return Err(bad());
        }
        return Ok(OwnerId::Name(t.to_string()));
    }
    let max = u32::MAX as u64 - 1;
    let (lo, rest) = strtoul(t).filter(|(v, _)| *v <= max).ok_or_else(bad)?;
    let (hi, rest) = match rest.strip_prefix(['-', ':']) {
        Some(r) => strtoul(r).filter(|(v, _)| *v <= max).ok_or_else(bad)?,
        None => (lo, rest),
    };
    if !rest.is_empty() {
        return Err(bad());
    }
    if lo > hi {
        return Err(kernel_refuses(v.span, format!("owner: range `{t}` is reversed"), format!("write {hi}-{lo}")));
    }
    Ok(OwnerId::Range(lo as u32, hi as u32))
}

impl MatchParser for OwnerP {
    fn name(&self) -> &str {
        "owner"
    }
    fn opts(&self) -> &'static [OptDef] {
        OWNER_OPTS
    }
    fn take(&mut self, opt: usize, name: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        let o = &mut self.0;
        match opt {
            0 | 1 => {
                let slot = if opt == 0 { &mut o.uid } else { &mut o.gid };
                if slot.is_some() {
                    return Err(once(cx, "owner", name));
                }
                *slot = Some(Neg { inv, val: parse_owner_id(&req(val, cx)?, name)? });
            }
            2 => {
                if o.socket_exists.is_some() {
                    return Err(once(cx, "owner", name));
                }
                o.socket_exists = Some(inv);
            }
            _ => {
                if o.gid.is_none() {
                    return Err(Diagnostic::error("E0106", cx.at, "owner: `--suppl-groups` before `--gid-owner`")
                        .note("iptables: owner: Bad value for \"--suppl-groups\" option: \"you need to use --gid-owner first\"")
                        .help("put `--suppl-groups` after `--gid-owner GID`"));
                }
                if o.suppl_groups {
                    return Err(once(cx, "owner", name));
                }
                o.suppl_groups = true;
            }
        }
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        let o = self.0;
        if o.uid.is_none() && o.gid.is_none() && o.socket_exists.is_none() {
            return Err(Diagnostic::error("E0108", cx.at, "owner: no test given")
                .note("iptables: owner: At least one of --uid-owner, --gid-owner or --socket-exists is required")
                .help("add `--uid-owner USER`, `--gid-owner GROUP` or `--socket-exists`"));
        }
        Ok(Match::Owner(o))
    }
}

// ---------------------------------------------------------------------------------------
// physdev

const PHYSDEV_OPTS: &[OptDef] = &[
    o("physdev-in", R, true),
    o("physdev-out", R, true),
    o("physdev-is-in", N, true),
    o("physdev-is-out", N, true),
    o("physdev-is-bridged", N, true),
];

#[derive(Default)]
struct PhysdevP(Physdev);

impl MatchParser for PhysdevP {
    fn name(&self) -> &str {
        "physdev"
    }
    fn opts(&self) -> &'static [OptDef] {
        PHYSDEV_OPTS
    }
    fn take(&mut self, opt: usize, name: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        let p = &mut self.0;
        match opt {
            0 | 1 => {
                let slot = if opt == 0 { &mut p.in_dev } else { &mut p.out_dev };
                if slot.is_some() {
                    return Err(once(cx, "physdev", name));
                }
                let v = req(val, cx)?;
                let dev = IfaceName::new(&v.text).ok_or_else(|| {
                    Diagnostic::error(
                        "E0105",
                        v.span,
                        format!("interface name `{}` is {} characters long", v.text, v.text.len()),
                    )
                    .label("longer than 15 characters")
                    .note(format!("iptables: interface name `{}' must be shorter than IFNAMSIZ (15)", v.text))
                    .help("use the bridge port's real name; `+` at the end matches a prefix")
                })?;
                *slot = Some(Neg { inv, val: dev });
            }
            _ => {
                let slot = match opt {
                    2 => &mut p.is_in,
                    3 => &mut p.is_out,
                    _ => &mut p.is_bridged,
                };
                if slot.is_some() {
                    return Err(once(cx, "physdev", name));
                }
                *slot = Some(inv);
            }
        }
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        let p = self.0;
        if p == Physdev::default() {
            return Err(Diagnostic::error("E0108", cx.at, "physdev: no test given")
                .note("iptables: PHYSDEV: no physdev option specified")
                .help("add e.g. `--physdev-is-bridged` or `--physdev-in PORT`"));
        }
        Ok(Match::Physdev(p))
    }
}

// ---------------------------------------------------------------------------------------
// pkttype

const PKTTYPE_OPTS: &[OptDef] = &[o("pkt-type", R, true)];

struct PkttypeP(Option<Pkttype>);

impl MatchParser for PkttypeP {
    fn name(&self) -> &str {
        "pkttype"
    }
    fn opts(&self) -> &'static [OptDef] {
        PKTTYPE_OPTS
    }
    fn take(&mut self, _: usize, _: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        if self.0.is_some() {
            return Err(once(cx, "pkttype", "pkt-type"));
        }
        let v = req(val, cx)?;
        let ty = match v.text.to_ascii_lowercase().as_str() {
            "unicast" | "host" => PktType::Unicast,
            "broadcast" => PktType::Broadcast,
            "multicast" => PktType::Multicast,
            "otherhost" => PktType::Otherhost,
            _ => {
                return Err(Diagnostic::error("E0105", v.span, format!("pkttype: bad packet type `{}`", v.text))
                    .note(format!("iptables: Bad packet type '{}'", v.text))
                    .help("packet types are unicast (host), broadcast, multicast and otherhost"))
            }
        };
        self.0 = Some(Pkttype { inv, ty });
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        self.0.map(Match::Pkttype).ok_or_else(|| {
            required(cx, "pkttype", "pkt-type", "add `--pkt-type broadcast` (or unicast, multicast, otherhost)")
        })
    }
}

// ---------------------------------------------------------------------------------------
// statistic

const STATISTIC_OPTS: &[OptDef] =
    &[o("mode", R, false), o("probability", R, true), o("every", R, true), o("packet", R, false)];

#[derive(Default)]
struct StatisticP {
    nth: Option<bool>,
    inv: bool,
    probability: Option<u32>,
    every: Option<u32>,
    packet: Option<u32>,
}

impl MatchParser for StatisticP {
    fn name(&self) -> &str {
        "statistic"
    }
    fn opts(&self) -> &'static [OptDef] {
        STATISTIC_OPTS
    }
    fn take(&mut self, opt: usize, name: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        const M: &str = "statistic";
        let v = req(val, cx)?;
        match opt {
            0 => {
                if self.nth.is_some() {
                    return Err(once(cx, M, name));
                }
                self.nth = Some(match v.text.as_str() {
                    "random" => false,
                    "nth" => true,
                    _ => {
                        return Err(Diagnostic::error("E0105", v.span, format!("statistic: bad mode `{}`", v.text))
                            .note(format!("iptables: Bad mode \"{}\"", v.text))
                            .help("write `--mode random` or `--mode nth`"))
                    }
                });
            }
            1 => {
                if self.probability.is_some() {
                    return Err(once(cx, M, name));
                }
                if self.every.is_some() || self.packet.is_some() {
                    let other = if self.every.is_some() { "every" } else { "packet" };
                    return Err(together(cx, M, "probability", other));
                }
                let p = v.text.trim().parse::<f64>().ok().filter(|p| (0.0..=1.0).contains(p)).ok_or_else(|| {
                    Diagnostic::error("E0105", v.span, format!("statistic: bad probability `{}`", v.text))
                        .note("iptables: statistic: bad value for option \"--probability\", or out of range (0-1).")
                        .help("give a probability from 0 to 1, e.g. 0.25")
                })?;
                self.probability = Some((p * 2147483648.0).round() as u32);
                self.inv |= inv;
            }
            _ => {
                let slot = if opt == 2 { &mut self.every } else { &mut self.packet };
                if slot.is_some() {
                    return Err(once(cx, M, name));
                }
                if self.probability.is_some() {
                    return Err(together(cx, M, "probability", name));
                }
                let lo = if opt == 2 { 1 } else { 0 };
                let n = c_uint(&v.text, u32::MAX as u64)
                    .filter(|n| *n >= lo)
                    .ok_or_else(|| out_of_range(&v, M, name, lo, u32::MAX as u64))?;
                *slot = Some(n as u32);
                self.inv |= inv;
            }
        }
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        // libxt_statistic's own check runs first (a missing `--mode` means random there),
        // then xtables' generic checks: mandatory `--mode`, `--every`/`--packet` pairing.
        let nth = self.nth.unwrap_or(false);
        if !nth && self.probability.is_none() {
            return Err(Diagnostic::error("E0108", cx.at, "statistic: random mode needs `--probability`")
                .note("iptables: --probability must be specified when using random mode")
                .help("add `--mode random --probability P` (0 to 1), or `--mode nth --every N --packet P`"));
        }
        if nth && self.every.is_none() && self.packet.is_none() {
            return Err(Diagnostic::error("E0108", cx.at, "statistic: nth mode needs `--every` and `--packet`")
                .note("iptables: --every and --packet must be specified when using nth mode")
                .help("add `--every N --packet 0`"));
        }
        let every = self.every.unwrap_or(1);
        let packet = self.packet.unwrap_or(0);
        if packet > every - 1 {
            return Err(Diagnostic::error(
                "E0105",
                cx.at,
                format!("statistic: `--packet {packet}` must be below `--every {every}`"),
            )
            .note("iptables: the --packet p must be 0 <= p <= n-1")
            .help(format!("give a packet number from 0 to {}", every - 1)));
        }
        if self.nth.is_none() {
            return Err(required(
                cx,
                "statistic",
                "mode",
                "add `--mode random --probability P` or `--mode nth --every N --packet P`",
            ));
        }
        let unpaired = match (self.every.is_some(), self.packet.is_some()) {
            (true, false) => Some(("every", "packet")),
            (false, true) => Some(("packet", "every")),
            _ => None,
        };
        if let Some((given, missing)) = unpaired {
            return Err(Diagnostic::error(
                "E0108",
                cx.at,
                format!("statistic: `--{given}` also requires `--{missing}`"),
            )
            .note(format!("iptables: statistic: option \"--{given}\" also requires \"--{missing}\"."))
            .help(if missing == "packet" { "add `--packet 0`" } else { "add `--every N`" }));
        }
        let mode = match (nth, self.probability) {
            (false, Some(probability)) => StatMode::Random { probability },
            _ => StatMode::Nth { every, packet },
        };
        Ok(Match::Statistic(Statistic { inv: self.inv, mode }))
    }
}

// ---------------------------------------------------------------------------------------
// iprange

const IPRANGE_OPTS: &[OptDef] = &[o("src-range", R, true), o("dst-range", R, true)];

#[derive(Default)]
struct IprangeP(Iprange);

impl MatchParser for IprangeP {
    fn name(&self) -> &str {
        "iprange"
    }
    fn opts(&self) -> &'static [OptDef] {
        IPRANGE_OPTS
    }
    fn take(&mut self, opt: usize, name: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        let slot = if opt == 0 { &mut self.0.src } else { &mut self.0.dst };
        if slot.is_some() {
            return Err(once(cx, "iprange", name));
        }
        let v = req(val, cx)?;
        let (a, b) = match v.text.split_once('-') {
            Some((a, b)) => (a, b),
            None => (v.text.as_str(), v.text.as_str()),
        };
        let addr = |s: &str| {
            parse_addr(s, cx.family).ok_or_else(|| {
                Diagnostic::error("E0105", v.span, format!("iprange: bad address `{s}` in `--{name}`"))
                    .note(format!("iptables: iprange: Bad value for \"--{name}\" option: \"{s}\""))
                    .help("write `FIRST-LAST` with two addresses of the rule's family, no prefix lengths")
            })
        };
        let range = IpRange { lo: addr(a)?, hi: addr(b)? };
        let reversed = match (range.lo, range.hi) {
            (IpAddr::V4(l), IpAddr::V4(h)) => l > h,
            (IpAddr::V6(l), IpAddr::V6(h)) => l > h,
            _ => false,
        };
        if reversed {
            let what = if inv { "so the negated test matches every packet" } else { "and never matches" };
            let d = Diagnostic::warning("W0004", v.span, format!("iprange: range {range} is reversed {what}"))
                .note(format!(
                    "the kernel logs `xt_iprange: range {range} is reversed and will never match` and loads the rule"
                ))
                .help(format!("write {}-{}", range.hi, range.lo));
            cx.diags.push(d);
        }
        *slot = Some(Neg { inv, val: range });
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        if self.0.src.is_none() && self.0.dst.is_none() {
            return Err(Diagnostic::error("E0108", cx.at, "iprange: no range given")
                .note("iptables: iprange match: You must specify `--src-range' or `--dst-range'")
                .help("add `--src-range FIRST-LAST` or `--dst-range FIRST-LAST`"));
        }
        Ok(Match::Iprange(self.0))
    }
}

// ---------------------------------------------------------------------------------------
// icmp6

const ICMP6_OPTS: &[OptDef] = &[o("icmpv6-type", R, true)];

/// ICMPv6 type names of libip6t_icmp6 (`libxt_icmp.h`): name, type, code range.
const ICMP6_NAMES: &[(&str, u8, u8, u8)] = &[
    ("destination-unreachable", 1, 0, 255),
    ("no-route", 1, 0, 0),
    ("communication-prohibited", 1, 1, 1),
    ("beyond-scope", 1, 2, 2),
    ("address-unreachable", 1, 3, 3),
    ("port-unreachable", 1, 4, 4),
    ("failed-policy", 1, 5, 5),
    ("reject-route", 1, 6, 6),
    ("packet-too-big", 2, 0, 255),
    ("time-exceeded", 3, 0, 255),
    ("ttl-exceeded", 3, 0, 255),
    ("ttl-zero-during-transit", 3, 0, 0),
    ("ttl-zero-during-reassembly", 3, 1, 1),
    ("parameter-problem", 4, 0, 255),
    ("bad-header", 4, 0, 0),
    ("unknown-header-type", 4, 1, 1),
    ("unknown-option", 4, 2, 2),
    ("echo-request", 128, 0, 255),
    ("ping", 128, 0, 255),
    ("echo-reply", 129, 0, 255),
    ("pong", 129, 0, 255),
    ("router-solicitation", 133, 0, 255),
    ("router-advertisement", 134, 0, 255),
    ("neighbour-solicitation", 135, 0, 255),
    ("neighbor-solicitation", 135, 0, 255),
    ("neighbour-advertisement", 136, 0, 255),
    ("neighbor-advertisement", 136, 0, 255),
    ("redirect", 137, 0, 255),
];

struct Icmp6P(Option<Icmp6>);

impl MatchParser for Icmp6P {
    fn name(&self) -> &str {
        "icmp6"
    }
    fn opts(&self) -> &'static [OptDef] {
        ICMP6_OPTS
    }
    fn take(&mut self, _: usize, _: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        if self.0.is_some() {
            return Err(once(cx, "icmp6", "icmpv6-type"));
        }
        let v = req(val, cx)?;
        let t = parse_icmp_type(&v, ICMP6_NAMES, "ICMPv6").map_err(|mut d| {
            d.note = d.note.map(|n| n.replace("ICMP type", "ICMPv6 type"));
            d.help = Some("use a name such as echo-request or neighbour-solicitation, or a number TYPE[/CODE]".into());
            d
        })?;
        self.0 = Some(Icmp6 { inv, ty: t.ty, code_min: t.code_min, code_max: t.code_max });
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        let m = self.0.ok_or_else(|| required(cx, "icmp6", "icmpv6-type", "add `--icmpv6-type TYPE`"))?;
        need_proto(cx, "icmp6", Proto::ICMPV6)?;
        Ok(Match::Icmp6(m))
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{PrintOptions, SavePrinter};

    /// A diagnostic's code and message.
    type Found = (String, String);

    /// Loads `*filter` with one rule (IPv4, or IPv6 when `v6`) and returns the printed
    /// rule line or the first error, plus the warnings.
    fn load(rule: &str, v6: bool) -> (Result<String, Found>, Vec<Found>) {
        // `-s ::/0` makes the file IPv6 and is not printed back.
        let rule = match (v6, rule.split_once(' ').and_then(|(a, r)| r.split_once(' ').map(|(c, r)| (a, c, r)))) {
            (true, Some((a, c, r))) => format!("{a} {c} -s ::/0 {r}"),
            _ => rule.to_string(),
        };
        let text =
            format!("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{rule}\nCOMMIT\n");
        let parsed = crate::load(&text);
        let warnings: Vec<Found> = parsed
            .diagnostics
            .iter()
            .filter(|d| !d.is_error())
            .map(|d| (d.code.to_string(), d.message.clone()))
            .collect();
        if let Some(e) = parsed.diagnostics.iter().find(|d| d.is_error()) {
            return (Err((e.code.to_string(), e.message.clone())), warnings);
        }
        let printed = SavePrinter { ruleset: &parsed.ruleset, options: PrintOptions::default() }.to_string();
        let line = printed.lines().find(|l| l.starts_with("-A ")).unwrap_or("").to_string();
        (Ok(line), warnings)
    }

    /// Asserts the canonical form of a rule.
    #[track_caller]
    fn check(input: &str, expected: &str) {
        check_fam(input, expected, false);
    }

    #[track_caller]
    fn check_fam(input: &str, expected: &str, v6: bool) {
        match load(input, v6).0 {
            Ok(line) => assert_eq!(line, expected, "input: {input}"),
            Err(e) => panic!("input {input} gave error {e:?}"),
        }
    }

    /// Asserts that a rule is refused with `code` and a message containing `msg`.
    #[track_caller]
    fn check_err(input: &str, code: &str, msg: &str) {
        match load(input, false).0 {
            Ok(line) => panic!("input {input} was accepted as {line}"),
            Err((c, m)) => {
                assert_eq!(c, code, "input: {input}, message: {m}");
                assert!(m.contains(msg), "input: {input}: message `{m}` lacks `{msg}`");
            }
        }
    }

    #[test]
    fn conntrack_canonical_forms() {
        check(
            "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED,NEW,INVALID,UNTRACKED,SNAT,DNAT",
            "-A INPUT -m conntrack --ctstate INVALID,NEW,RELATED,ESTABLISHED,UNTRACKED,SNAT,DNAT",
        );
        check(
            "-A INPUT -m conntrack --ctproto tcp --ctorigsrc 10.0.0.1 --ctorigdst 10.0.0.0/8 --ctreplsrc 1.2.3.4 --ctrepldst 5.6.7.8 --ctorigsrcport 10 --ctorigdstport 20 --ctstatus NONE,CONFIRMED,ASSURED,SEEN_REPLY,EXPECTED --ctexpire 10:20 --ctdir ORIGINAL --ctstate NEW",
            "-A INPUT -m conntrack --ctstate NEW --ctproto 6 --ctorigsrc 10.0.0.1 --ctorigdst 10.0.0.0/8 --ctreplsrc 1.2.3.4 --ctrepldst 5.6.7.8 --ctorigsrcport 10 --ctorigdstport 20 --ctstatus EXPECTED,SEEN_REPLY,ASSURED,CONFIRMED --ctexpire 10:20 --ctdir ORIGINAL",
        );
        check(
            "-A INPUT -m conntrack ! --ctstate NEW ! --ctproto udp ! --ctorigsrc 10.0.0.1 ! --ctstatus NONE ! --ctexpire 5 --ctdir reply",
            "-A INPUT -m conntrack ! --ctstate NEW ! --ctproto 17 ! --ctorigsrc 10.0.0.1 ! --ctstatus NONE ! --ctexpire 5 --ctdir REPLY",
        );
        // Host bits are kept; masks print as prefix lengths; over-long prefixes are /32.
        check(
            "-A INPUT -m conntrack --ctorigsrc 10.1.2.3/255.255.0.0",
            "-A INPUT -m conntrack --ctorigsrc 10.1.2.3/16",
        );
        check("-A INPUT -m conntrack --ctorigsrc 10.1.2.3/33", "-A INPUT -m conntrack --ctorigsrc 10.1.2.3");
        check("-A INPUT -m conntrack --ctorigsrc 10/8", "-A INPUT -m conntrack --ctorigsrc 0.0.0.10/8");
        check("-A INPUT -m conntrack --ctorigsrc 0/0", "-A INPUT -m conntrack --ctorigsrc 0.0.0.0/0");
        // Ports: names, open ranges, numbers modulo 65536 (iptables 1.8.9).
        check(
            "-A INPUT -m conntrack --ctorigdstport ssh --ctorigsrcport 10: --ctreplsrcport :10 --ctrepldstport 70000",
            "-A INPUT -m conntrack --ctorigsrcport 10:65535 --ctorigdstport 22 --ctreplsrcport 0:10 --ctrepldstport 4464",
        );
        check(
            "-A INPUT -m conntrack --ctexpire 5: --ctproto all",
            "-A INPUT -m conntrack --ctproto 0 --ctexpire 5:4294967295",
        );
        check(
            "-A INPUT -m conntrack --ctexpire 20:20 --ctstatus NONE,ASSURED",
            "-A INPUT -m conntrack --ctstatus ASSURED --ctexpire 20",
        );
        check_fam(
            "-A INPUT -m conntrack --ctorigsrc 2001:db8::1/64 --ctreplsrc 2001:db8::/ffff:ffff:: --ctstate NEW",
            "-A INPUT -m conntrack --ctstate NEW --ctorigsrc 2001:db8::1/64 --ctreplsrc 2001:db8::/32",
            true,
        );
    }

    #[test]
    fn conntrack_errors() {
        check_err(
            "-A INPUT -m conntrack --ctstate NEW --ctstate INVALID",
            "E0107",
            "conntrack: option `--ctstate` given twice",
        );
        check_err("-A INPUT -m conntrack", "E0108", "conntrack: no test given");
        check_err("-A INPUT -m conntrack --ctstate bogus", "E0105", "bad state `bogus`");
        check_err("-A INPUT -m conntrack --ctstatus BOGUS", "E0105", "bad status");
        check_err("-A INPUT -m conntrack --ctproto 256", "E0105", "unknown protocol `256`");
        check_err("-A INPUT -m conntrack --ctexpire 1:2:3", "E0105", "more than two parts");
        check_err("-A INPUT -m conntrack --ctexpire 4294967296", "E0105", "bad value");
        check_err("-A INPUT -m conntrack --ctorigsrc 10.1.2.3/abc", "E0105", "bad mask");
        check_err("-A INPUT -m conntrack --ctorigsrcport abc", "E0105", "bad port `abc`");
        check_err("-A INPUT -m conntrack ! --ctdir ORIGINAL", "E0104", "cannot be inverted");
        check_err("-A INPUT -m conntrack --ctdir foo", "E0105", "bad direction");
    }

    #[test]
    fn hashlimit_canonical_forms() {
        check(
            "-A INPUT -m hashlimit --hashlimit-upto 10/min --hashlimit-name a",
            "-A INPUT -m hashlimit --hashlimit-upto 10/min --hashlimit-burst 5 --hashlimit-name a",
        );
        check(
            "-A INPUT -m hashlimit --hashlimit 7/s --hashlimit-name a",
            "-A INPUT -m hashlimit --hashlimit-upto 7/sec --hashlimit-burst 5 --hashlimit-name a",
        );
        check(
            "-A INPUT -m hashlimit --hashlimit-above 10/sec --hashlimit-burst 20 --hashlimit-mode srcip --hashlimit-name aflood --hashlimit-srcmask 8",
            "-A INPUT -m hashlimit --hashlimit-above 10/sec --hashlimit-burst 20 --hashlimit-mode srcip --hashlimit-name aflood --hashlimit-srcmask 8",
        );
        check(
            "-A INPUT -m hashlimit --hashlimit-upto 5/m --hashlimit-burst 5 --hashlimit-mode dstport,srcip,dstip,srcport --hashlimit-name a --hashlimit-htable-size 100 --hashlimit-htable-max 1000 --hashlimit-htable-gcinterval 500 --hashlimit-htable-expire 30000 --hashlimit-srcmask 24 --hashlimit-dstmask 16",
            "-A INPUT -m hashlimit --hashlimit-upto 5/min --hashlimit-burst 5 --hashlimit-mode srcip,srcport,dstip,dstport --hashlimit-name a --hashlimit-htable-size 100 --hashlimit-htable-max 1000 --hashlimit-htable-gcinterval 500 --hashlimit-htable-expire 30000 --hashlimit-srcmask 24 --hashlimit-dstmask 16",
        );
        // The default expiry is the input unit; it is printed when the printed unit differs.
        check(
            "-A INPUT -m hashlimit --hashlimit-upto 60/m --hashlimit-name a",
            "-A INPUT -m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 5 --hashlimit-name a --hashlimit-htable-expire 60000",
        );
        check(
            "-A INPUT -m hashlimit --hashlimit-upto 60/m --hashlimit-name a --hashlimit-htable-expire 1000 --hashlimit-htable-gcinterval 1000 --hashlimit-srcmask 32",
            "-A INPUT -m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 5 --hashlimit-name a",
        );
        check(
            "-A INPUT -m hashlimit ! --hashlimit-upto 10/s --hashlimit-name a --hashlimit-mode srcip|dstport --hashlimit-srcmask 255.255.0.0",
            "-A INPUT -m hashlimit --hashlimit-above 10/sec --hashlimit-burst 5 --hashlimit-mode srcip,dstport --hashlimit-name a --hashlimit-srcmask 16",
        );
        check(
            "-A INPUT -m hashlimit --hashlimit-upto 10/s --hashlimit-burst 5k --hashlimit-name x",
            "-A INPUT -m hashlimit --hashlimit-upto 10/sec --hashlimit-burst 5120 --hashlimit-name x",
        );
        // Byte mode.
        check(
            "-A INPUT -m hashlimit --hashlimit-upto 10kb/s --hashlimit-name x",
            "-A INPUT -m hashlimit --hashlimit-upto 10kb/s --hashlimit-name x",
        );
        check(
            "-A INPUT -m hashlimit --hashlimit-upto 100b/s --hashlimit-name x",
            "-A INPUT -m hashlimit --hashlimit-upto 96b/s --hashlimit-name x",
        );
        check(
            "-A INPUT -m hashlimit --hashlimit-upto 5000mb/s --hashlimit-name x",
            "-A INPUT -m hashlimit --hashlimit-upto 5286113568b/s --hashlimit-name x",
        );
        check(
            "-A INPUT -m hashlimit --hashlimit-upto 10kb/s --hashlimit-name x --hashlimit-burst 50000",
            "-A INPUT -m hashlimit --hashlimit-upto 10kb/s --hashlimit-burst 50kb --hashlimit-name x",
        );
        check(
            "-A INPUT -m hashlimit --hashlimit-upto 10kb/s --hashlimit-burst 100k --hashlimit-name x --hashlimit-htable-expire 15000",
            "-A INPUT -m hashlimit --hashlimit-upto 10kb/s --hashlimit-burst 100kb --hashlimit-name x --hashlimit-htable-expire 15000",
        );
        // Rate match: the rate is divided by its unit, the interval defaults to the unit.
        check(
            "-A INPUT -m hashlimit --hashlimit-upto 5/m --hashlimit-name b --hashlimit-rate-match",
            "-A INPUT -m hashlimit --hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-name b --hashlimit-htable-expire 60000 --hashlimit-rate-match --hashlimit-rate-interval 60",
        );
        check(
            "-A INPUT -m hashlimit --hashlimit-upto 1/s --hashlimit-name a --hashlimit-rate-match --hashlimit-rate-interval 10",
            "-A INPUT -m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 5 --hashlimit-name a --hashlimit-rate-match --hashlimit-rate-interval 10",
        );
        check(
            "-A INPUT -m hashlimit --hashlimit-upto 5/m --hashlimit-name a --hashlimit-rate-interval 5",
            "-A INPUT -m hashlimit --hashlimit-upto 5/min --hashlimit-burst 5 --hashlimit-name a",
        );
        check(
            "-A INPUT -m hashlimit --hashlimit-upto 24/day --hashlimit-name a",
            "-A INPUT -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 5 --hashlimit-name a --hashlimit-htable-expire 86400000",
        );
        check(
            "-A INPUT -m hashlimit --hashlimit-upto 1/d --hashlimit-burst 1 --hashlimit-name x",
            "-A INPUT -m hashlimit --hashlimit-upto 1/day --hashlimit-burst 1 --hashlimit-name x",
        );
        check_fam(
            "-A INPUT -m hashlimit --hashlimit-upto 5/s --hashlimit-name v6 --hashlimit-srcmask 64 --hashlimit-dstmask 128",
            "-A INPUT -m hashlimit --hashlimit-upto 5/sec --hashlimit-burst 5 --hashlimit-name v6 --hashlimit-srcmask 64",
            true,
        );
    }

    #[test]
    fn hashlimit_errors() {
        check_err(
            "-A INPUT -m hashlimit --hashlimit-upto 10/min",
            "E0108",
            "hashlimit: `--hashlimit-name` is required",
        );
        check_err("-A INPUT -m hashlimit --hashlimit-name a", "E0108", "no rate given");
        check_err("-A INPUT -m hashlimit --hashlimit-upto 1/week --hashlimit-name a", "E0105", "bad rate `1/week`");
        check_err("-A INPUT -m hashlimit --hashlimit-upto 0/s --hashlimit-name a", "E0105", "bad rate");
        check_err("-A INPUT -m hashlimit --hashlimit-upto 1000001/s --hashlimit-name a", "E0105", "too fast");
        check_err("-A INPUT -m hashlimit --hashlimit-upto 1/day --hashlimit-name a", "E0105", "burst 5 does not fit");
        check_err(
            "-A INPUT -m hashlimit --hashlimit-upto 10/s --hashlimit-above 5/s --hashlimit-name a",
            "E0106",
            "`--hashlimit-upto` cannot be used together with `--hashlimit-above`",
        );
        check_err(
            "-A INPUT -m hashlimit --hashlimit 5/s --hashlimit-upto 5/s --hashlimit-name a",
            "E0107",
            "given twice",
        );
        check_err(
            "-A INPUT -m hashlimit --hashlimit-upto 10/s --hashlimit-burst 0 --hashlimit-name a",
            "E0105",
            "bad burst",
        );
        check_err(
            "-A INPUT -m hashlimit --hashlimit-upto 10/s --hashlimit-burst 2000k --hashlimit-name a",
            "E0105",
            "too large",
        );
        check_err(
            "-A INPUT -m hashlimit --hashlimit-upto 10kb/s --hashlimit-burst 5k --hashlimit-name x",
            "E0105",
            "below the rate",
        );
        check_err(
            "-A INPUT -m hashlimit --hashlimit-upto 10/s --hashlimit-mode bogus --hashlimit-name a",
            "E0105",
            "bad mode",
        );
        check_err(
            "-A INPUT -m hashlimit --hashlimit-upto 10/s --hashlimit-srcmask 33 --hashlimit-name a",
            "E0105",
            "longer than the address",
        );
        check_err("-A INPUT -m hashlimit --hashlimit-upto 10/s --hashlimit-name a/b", "E0105", "invalid table name");
        check_err(
            "-A INPUT -m hashlimit --hashlimit-upto 10/s --hashlimit-htable-expire 0 --hashlimit-name a",
            "E0105",
            "refused by the kernel",
        );
        check_err(
            "-A INPUT -m hashlimit --hashlimit-upto 10/s --hashlimit-rate-interval 0 --hashlimit-name a",
            "E0105",
            "bad rate interval",
        );
    }

    #[test]
    fn hashlimit_clamps_table_sizes() {
        let (r, w) = load(
            "-A INPUT -m hashlimit --hashlimit-upto 10/s --hashlimit-name x --hashlimit-htable-size 4294967295 --hashlimit-htable-max 0",
            false,
        );
        assert_eq!(
            r.unwrap(),
            "-A INPUT -m hashlimit --hashlimit-upto 10/sec --hashlimit-burst 5 --hashlimit-name x --hashlimit-htable-size 1048576"
        );
        assert_eq!(w[0].0, "W0003");
    }

    #[test]
    fn mark_length_ttl_tcpmss() {
        check("-A INPUT -m mark --mark 1/0xff", "-A INPUT -m mark --mark 0x1/0xff");
        check("-A INPUT -m mark ! --mark 5", "-A INPUT -m mark ! --mark 0x5");
        check("-A INPUT -m mark --mark 0x10/0xffffffff", "-A INPUT -m mark --mark 0x10");
        check("-A INPUT -m mark --mark 010", "-A INPUT -m mark --mark 0x8");
        check("-A INPUT -m mark --mark 3/1", "-A INPUT -m mark --mark 0x3/0x1");
        check("-A INPUT -m connmark ! --mark 7", "-A INPUT -m connmark ! --mark 0x7");
        check_err("-A INPUT -m mark --mark 4294967296", "E0105", "bad mark");
        check_err("-A INPUT -m mark --mark 1/2/3", "E0105", "trailing text");
        check_err("-A INPUT -m mark", "E0108", "mark: `--mark` is required");
        check_err("-A INPUT -m mark --mark 1 --mark 2", "E0107", "given twice");

        check("-A INPUT -m length --length :100", "-A INPUT -m length --length 0:100");
        check("-A INPUT -m length --length 100:", "-A INPUT -m length --length 100:65535");
        check("-A INPUT -m length ! --length 100:100", "-A INPUT -m length ! --length 100");
        check("-A INPUT -m length --length 0x10", "-A INPUT -m length --length 16");
        check_err("-A INPUT -m length --length 65536", "E0105", "bad value");
        let (r, w) = load("-A INPUT -m length --length 200:100", false);
        assert_eq!(r.unwrap(), "-A INPUT -m length --length 200:100");
        assert_eq!(w[0].0, "W0004");

        check("-A INPUT -m ttl --ttl 5", "-A INPUT -m ttl --ttl-eq 5");
        check("-A INPUT -m ttl ! --ttl-eq 5", "-A INPUT -m ttl ! --ttl-eq 5");
        check("-A INPUT -m ttl --ttl-lt 5", "-A INPUT -m ttl --ttl-lt 5");
        check("-A INPUT -m ttl --ttl-gt 0x10", "-A INPUT -m ttl --ttl-gt 16");
        check_err("-A INPUT -m ttl ! --ttl-gt 5", "E0104", "cannot be inverted");
        check_err("-A INPUT -m ttl --ttl-eq 256", "E0105", "bad value");
        check_err(
            "-A INPUT -m ttl --ttl-eq 5 --ttl-gt 3",
            "E0106",
            "`--ttl-gt` cannot be used together with `--ttl-eq`",
        );
        check_err("-A INPUT -m ttl", "E0108", "no comparison");

        check("-A INPUT -p tcp -m tcpmss ! --mss 536:65535", "-A INPUT -p tcp -m tcpmss ! --mss 536:65535");
        check("-A INPUT -p tcp -m tcpmss --mss 1400:1400", "-A INPUT -p tcp -m tcpmss --mss 1400");
        check("-A INPUT -p tcp -m tcpmss --mss :1400", "-A INPUT -p tcp -m tcpmss --mss 0:1400");
        check_err("-A INPUT -p tcp -m tcpmss --mss 1500:1400", "E0105", "reversed");
        check_err("-A INPUT -m tcpmss --mss 1400", "E0210", "needs `-p tcp`");
    }

    #[test]
    fn addrtype_mac_connlimit() {
        check("-A INPUT -m addrtype --src-type LOCAL,UNICAST", "-A INPUT -m addrtype --src-type UNICAST,LOCAL");
        check(
            "-A INPUT -m addrtype --dst-type local ! --src-type MULTICAST --limit-iface-in",
            "-A INPUT -m addrtype ! --src-type MULTICAST --dst-type LOCAL --limit-iface-in",
        );
        check_err("-A INPUT -m addrtype --dst-type BOGUS", "E0105", "bad type `BOGUS`");
        check_err("-A INPUT -m addrtype --dst-type LOCAL,", "E0105", "bad type ``");
        check_err("-A INPUT -m addrtype", "E0108", "no address type");
        check_err(
            "-A INPUT -m addrtype --dst-type LOCAL --limit-iface-out --limit-iface-in",
            "E0106",
            "`--limit-iface-in` cannot be used together with `--limit-iface-out`",
        );

        check("-A INPUT -m mac --mac-source 00:11:22:AA:bb:CC", "-A INPUT -m mac --mac-source 00:11:22:aa:bb:cc");
        check("-A INPUT -m mac ! --mac 0:1:2:3:4:5", "-A INPUT -m mac ! --mac-source 00:01:02:03:04:05");
        check("-A INPUT -m mac --mac-source 1::2:3:4:", "-A INPUT -m mac --mac-source 01:00:02:03:04:00");
        check_err("-A INPUT -m mac --mac-source XX:XX:XX:XX:XX:XX", "E0105", "invalid MAC address");
        check_err("-A INPUT -m mac --mac-source 00:11:22:33:44", "E0105", "invalid MAC address");
        check_err("-A INPUT -m mac --mac-source 000:11:22:33:44:55", "E0105", "invalid MAC address");
        check_err("-A INPUT -m mac --mac-source 00-11-22-33-44-55", "E0105", "invalid MAC address");

        check(
            "-A INPUT -m connlimit --connlimit-above 3 --connlimit-mask 24",
            "-A INPUT -m connlimit --connlimit-above 3 --connlimit-mask 24 --connlimit-saddr",
        );
        check(
            "-A INPUT -m connlimit --connlimit-upto 10",
            "-A INPUT -m connlimit --connlimit-upto 10 --connlimit-mask 32 --connlimit-saddr",
        );
        check(
            "-A INPUT -m connlimit ! --connlimit-above 3 --connlimit-daddr --connlimit-mask 255.255.0.0",
            "-A INPUT -m connlimit --connlimit-upto 3 --connlimit-mask 16 --connlimit-daddr",
        );
        check(
            "-A INPUT -m connlimit --connlimit-above 3 --connlimit-mask 33",
            "-A INPUT -m connlimit --connlimit-above 3 --connlimit-mask 32 --connlimit-saddr",
        );
        check_fam(
            "-A INPUT -m connlimit --connlimit-above 3",
            "-A INPUT -m connlimit --connlimit-above 3 --connlimit-mask 128 --connlimit-saddr",
            true,
        );
        check_err("-A INPUT -m connlimit", "E0108", "no limit");
        check_err(
            "-A INPUT -m connlimit --connlimit-above 3 --connlimit-upto 4",
            "E0106",
            "`--connlimit-upto` cannot be used together with `--connlimit-above`",
        );
        check_err(
            "-A INPUT -m connlimit --connlimit-above 3 --connlimit-daddr --connlimit-saddr",
            "E0106",
            "`--connlimit-saddr` cannot be used together with `--connlimit-daddr`",
        );
        check_err("-A INPUT -m connlimit --connlimit-above 4294967296", "E0105", "bad value");
    }

    #[test]
    fn set_is_kept_with_a_warning() {
        let (r, w) = load(
            "-A INPUT -m set --bytes-gt 5 --packets-lt 3 ! --update-subcounters --return-nomatch ! --update-counters ! --match-set S src,dst",
            false,
        );
        assert_eq!(
            r.unwrap(),
            "-A INPUT -m set ! --match-set S src,dst --return-nomatch ! --update-counters ! --update-subcounters --packets-lt 3 --bytes-gt 5"
        );
        assert_eq!(w, vec![("W0006".to_string(), "ipset `S` must exist when the ruleset is loaded".to_string())]);
        check(
            "-A INPUT -m set --set S src --update-counters ! --packets-eq 0x10",
            "-A INPUT -m set --match-set S src ! --packets-eq 16",
        );
        check_err("-A INPUT -m set --match-set S foo", "E0105", "bad direction `foo`");
        check_err("-A INPUT -m set --match-set S src,dst,src,dst,src,dst,src", "E0105", "at most 6");
        check_err("-A INPUT -m set --match-set S -j ACCEPT", "E0102", "needs a set name");
        check_err("-A INPUT -m set", "E0108", "`--match-set` is required");
        check_err("-A INPUT -m set --match-set S src --packets-gt 5 --packets-lt 3", "E0106", "more than one");
        check_err("-A INPUT -m set --match-set S src ! --packets-gt 5", "E0104", "cannot be inverted");
        check_err("-A INPUT -m set --match-set aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa src", "E0105", "too long");
    }

    #[test]
    fn owner_physdev_pkttype() {
        check(
            "-A OUTPUT -m owner ! --uid-owner 1000-2000 --gid-owner 10 --socket-exists",
            "-A OUTPUT -m owner --socket-exists ! --uid-owner 1000-2000 --gid-owner 10",
        );
        check(
            "-A OUTPUT -m owner ! --gid-owner 5 ! --uid-owner 7 --suppl-groups ! --socket-exists",
            "-A OUTPUT -m owner ! --socket-exists ! --uid-owner 7 ! --gid-owner 5 --suppl-groups",
        );
        check("-A OUTPUT -m owner --uid-owner root --gid-owner 5:5", "-A OUTPUT -m owner --uid-owner 0 --gid-owner 5");
        check("-A OUTPUT -m owner --uid-owner 0x10", "-A OUTPUT -m owner --uid-owner 16");
        check("-A OUTPUT -m owner --uid-owner www-data", "-A OUTPUT -m owner --uid-owner www-data");
        check_err("-A OUTPUT -m owner --uid-owner 4294967295", "E0105", "bad value");
        check_err("-A OUTPUT -m owner --uid-owner 5-", "E0105", "bad value");
        check_err("-A OUTPUT -m owner --uid-owner 10-5", "E0105", "reversed");
        check_err("-A OUTPUT -m owner --suppl-groups --gid-owner 5", "E0106", "before `--gid-owner`");
        check_err("-A OUTPUT -m owner", "E0108", "no test given");

        check(
            "-A FORWARD -m physdev --physdev-in eth0 ! --physdev-out eth1 ! --physdev-is-in --physdev-is-out --physdev-is-bridged",
            "-A FORWARD -m physdev ! --physdev-is-in --physdev-in eth0 --physdev-is-out ! --physdev-out eth1 --physdev-is-bridged",
        );
        check_err("-A FORWARD -m physdev", "E0108", "no test given");
        check_err("-A FORWARD -m physdev --physdev-in aaaaaaaaaaaaaaaa", "E0105", "16 characters");
        check_err("-A FORWARD -m physdev --physdev-is-in --physdev-is-in", "E0107", "given twice");

        check("-A INPUT -m pkttype ! --pkt-type MULTICAST", "-A INPUT -m pkttype ! --pkt-type multicast");
        check("-A INPUT -m pkttype --pkt-type host", "-A INPUT -m pkttype --pkt-type unicast");
        check_err("-A INPUT -m pkttype --pkt-type Broad", "E0105", "bad packet type");
    }

    #[test]
    fn statistic_forms() {
        check(
            "-A INPUT -m statistic --mode random --probability 0.5",
            "-A INPUT -m statistic --mode random --probability 0.50000000000",
        );
        check(
            "-A INPUT -m statistic --mode random ! --probability 0.1",
            "-A INPUT -m statistic --mode random ! --probability 0.10000000009",
        );
        check(
            "-A INPUT -m statistic --mode random --probability 0.3333",
            "-A INPUT -m statistic --mode random --probability 0.33330000006",
        );
        check(
            "-A INPUT -m statistic --mode random --probability 1",
            "-A INPUT -m statistic --mode random --probability 1.00000000000",
        );
        check(
            "-A INPUT -m statistic --mode nth ! --every 3 --packet 2",
            "-A INPUT -m statistic --mode nth ! --every 3 --packet 2",
        );
        check_err("-A INPUT -m statistic --mode random --probability 1.5", "E0105", "bad probability");
        check_err("-A INPUT -m statistic --mode nth --every 3", "E0108", "also requires");
        check_err("-A INPUT -m statistic --mode nth --every 3 --packet 3", "E0105", "must be below");
        check_err("-A INPUT -m statistic --mode nth --every 0 --packet 0", "E0105", "bad value");
        check_err("-A INPUT -m statistic --mode random", "E0108", "needs `--probability`");
        check_err("-A INPUT -m statistic --probability 0.5", "E0108", "`--mode` is required");
        check_err(
            "-A INPUT -m statistic --mode random --probability 0.5 --packet 1",
            "E0106",
            "`--probability` cannot be used together with `--packet`",
        );
        check_err("-A INPUT -m statistic --mode bogus", "E0105", "bad mode");
    }

    #[test]
    fn iprange_and_icmp6() {
        check(
            "-A INPUT -m iprange ! --dst-range 10.1.0.1-10.1.0.2 --src-range 10.0.0.1-10.0.0.9",
            "-A INPUT -m iprange --src-range 10.0.0.1-10.0.0.9 ! --dst-range 10.1.0.1-10.1.0.2",
        );
        check("-A INPUT -m iprange --src-range 10.0.0.1", "-A INPUT -m iprange --src-range 10.0.0.1-10.0.0.1");
        check("-A INPUT -m iprange --src-range 10.1-10.2", "-A INPUT -m iprange --src-range 10.1.0.0-10.2.0.0");
        let (r, w) = load("-A INPUT -m iprange --src-range 10.0.0.9-10.0.0.1", false);
        assert_eq!(r.unwrap(), "-A INPUT -m iprange --src-range 10.0.0.9-10.0.0.1");
        assert_eq!(w[0].0, "W0004");
        check_err("-A INPUT -m iprange --src-range 10.0.0.1/24", "E0105", "bad address");
        check_err("-A INPUT -m iprange --src-range 10.0.0.1-", "E0105", "bad address ``");
        check_err("-A INPUT -m iprange --src-range ::1-::2", "E0105", "bad address `::1`");
        check_err("-A INPUT -m iprange", "E0108", "no range");
        check_fam(
            "-A INPUT -m iprange --src-range 2001:db8::1-2001:db8::ff ! --dst-range ::1-::2",
            "-A INPUT -m iprange --src-range 2001:db8::1-2001:db8::ff ! --dst-range ::1-::2",
            true,
        );
        check_fam(
            "-A INPUT -p icmpv6 -m icmp6 --icmpv6-type echo-request",
            "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128",
            true,
        );
        check_fam(
            "-A INPUT -p ipv6-icmp --icmpv6-type echo-reply",
            "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 129",
            true,
        );
        check_fam(
            "-A INPUT -p ipv6-icmp -m icmp6 ! --icmpv6-type port-unreachable",
            "-A INPUT -p ipv6-icmp -m icmp6 ! --icmpv6-type 1/4",
            true,
        );
        check_fam(
            "-A INPUT -p 58 -m icmp6 --icmpv6-type 255",
            "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 255",
            true,
        );
    }

    #[test]
    fn icmp6_errors() {
        let v6 = |rule: &str| load(rule, true).0.unwrap_err();
        let (c, m) = v6("-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type bogus");
        assert_eq!((c.as_str(), m.as_str()), ("E0105", "unknown ICMPv6 type `bogus`"));
        let (c, m) = v6("-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type e");
        assert_eq!(c, "E0105");
        assert!(m.contains("ambiguous"), "{m}");
        let (c, _) = v6("-A INPUT -m icmp6 --icmpv6-type 128");
        assert_eq!(c, "E0210");
        let (c, _) = v6("-A INPUT -p ipv6-icmp -m icmp6");
        assert_eq!(c, "E0108");
    }
}

// ---------------------------------------------------------------------------------------
// string

const STRING_OPTS: &[OptDef] = &[
    o("from", R, false),
    o("to", R, false),
    o("algo", R, false),
    o("string", R, true),
    o("hex-string", R, true),
    o("icase", N, false),
];

#[derive(Default)]
struct StringP {
    inv: bool,
    pattern: Option<Vec<u8>>,
    algo: Option<String>,
    from: Option<u16>,
    to: Option<u16>,
    icase: bool,
}

/// libxt_string's `parse_hex_string`: text with `|hex bytes|` blocks; a backslash escapes
/// the next character outside blocks.
fn parse_hex_string(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    let mut hex = false;
    while i < b.len() {
        match b[i] {
            b'|' => {
                hex = !hex;
                i += 1;
            }
            b'\\' if !hex && i + 1 < b.len() => {
                out.push(b[i + 1]);
                i += 2;
            }
            b' ' if hex => i += 1,
            c if hex => {
                let d = b.get(i + 1).copied().ok_or("odd number of hex digits")?;
                let v = u8::from_str_radix(std::str::from_utf8(&[c, d]).map_err(|_| "bad hex digit")?, 16)
                    .map_err(|_| format!("invalid hex char `{}`", c as char))?;
                out.push(v);
                i += 2;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    if hex {
        return Err("unterminated `|` block".into());
    }
    Ok(out)
}

impl MatchParser for StringP {
    fn name(&self) -> &str {
        "string"
    }
    fn opts(&self) -> &'static [OptDef] {
        STRING_OPTS
    }
    fn take(&mut self, opt: usize, name: &str, inv: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        let bad = |v: &Val, m: String| Diagnostic::error("E0105", v.span, m);
        match opt {
            0 | 1 => {
                let v = req(val, cx)?;
                let n: u16 = v.text.parse().map_err(|_| {
                    bad(&v, format!("string: bad offset `{}` for `--{name}`", v.text)).help("give an offset 0-65535")
                })?;
                if opt == 0 {
                    self.from = Some(n);
                } else {
                    self.to = Some(n);
                }
            }
            2 => {
                let v = req(val, cx)?;
                if !matches!(v.text.as_str(), "bm" | "kmp") {
                    return Err(bad(&v, format!("string: unknown algorithm `{}`", v.text))
                        .help("use `--algo bm` or `--algo kmp`"));
                }
                self.algo = Some(v.text);
            }
            3 | 4 => {
                if self.pattern.is_some() {
                    return Err(once(cx, "string", name));
                }
                let v = req(val, cx)?;
                let p = if opt == 3 {
                    v.text.clone().into_bytes()
                } else {
                    parse_hex_string(&v.text)
                        .map_err(|e| bad(&v, format!("string: bad hex string: {e}")).help("write bytes as `|0d 0a|`"))?
                };
                if p.is_empty() || p.len() > 128 {
                    return Err(
                        bad(&v, "string: the pattern must have 1 to 128 bytes".into()).help("shorten the pattern")
                    );
                }
                self.inv = inv;
                self.pattern = Some(p);
            }
            _ => self.icase = true,
        }
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Match, Diagnostic> {
        let pattern = self.pattern.ok_or_else(|| {
            Diagnostic::error("E0108", cx.at, "string: no pattern given")
                .note("iptables: STRING match: You must specify `--string' or `--hex-string'")
                .help("add `--string TEXT` or `--hex-string \"|hex|\"`")
        })?;
        let algo = self.algo.ok_or_else(|| {
            Diagnostic::error("E0108", cx.at, "string: `--algo` is required")
                .note("iptables: STRING match: You must specify `--algo'")
                .help("add `--algo bm` (or kmp)")
        })?;
        Ok(Match::String(crate::model::matches::StringMatch {
            inv: self.inv,
            pattern,
            algo,
            from: self.from.unwrap_or(0),
            to: self.to.unwrap_or(65535),
            icase: self.icase,
        }))
    }
}
