//! Built-in verdicts and the typed target extensions: REJECT, LOG, NFLOG, MARK, CONNMARK,
//! CT, NOTRACK, TCPMSS, DNAT, SNAT, MASQUERADE and REDIRECT.
//!
//! Each parser checks what iptables 1.8.9 checks while it reads the options (values,
//! options given twice), then in `finish` what its final check and the generic
//! xtables check do (missing options, mutually exclusive options, in that order), and
//! the kernel's table and protocol restrictions. Restrictions that depend on the hooks a
//! rule is reached from are checked on the chain graph (`graph::ChainGraph::hook_errors`).

// `Diagnostic` is the error of every option parser (the `TargetParser` trait returns it);
// boxing it is a crate-wide choice, not one for this file.
#![allow(clippy::result_large_err)]

use std::net::IpAddr;

use super::{bad, o, parse_port, req, twice, Arg, Cx, OptDef, TargetParser, Val};
use crate::diag::Diagnostic;
use crate::model::targets::{
    Connmark, ConnmarkMode, Ct, Dnat, Log, Mark, Masquerade, NatPorts, NatRange, Nflog, NflogLen, Redirect, Reject,
    RejectWith, Snat, Tcpmss, CT_EVENTS, CT_EXP_EVENTS,
};
use crate::model::{Family, PortRange, Proto, Span, TableName, Target};

pub(super) fn target_parser(name: &str, family: Family) -> Option<Box<dyn TargetParser>> {
    Some(match name {
        "ACCEPT" => Box::new(Simple(Target::Accept)),
        "DROP" => Box::new(Simple(Target::Drop)),
        "RETURN" => Box::new(Simple(Target::Return)),
        "QUEUE" => Box::new(Simple(Target::Queue)),
        "REJECT" => Box::new(RejectP(None, family)),
        "LOG" => Box::new(LogP(Log { level: 4, ..Log::default() })),
        "NFLOG" => Box::new(NflogP::default()),
        "MARK" => Box::new(MarkP::default()),
        "CONNMARK" => Box::new(ConnmarkP::new()),
        "CT" => Box::new(CtP::default()),
        "NOTRACK" => Box::new(NotrackP),
        "TCPMSS" => Box::new(TcpmssP::default()),
        "DNAT" | "SNAT" | "MASQUERADE" | "REDIRECT" => Box::new(NatP::new(name)?),
        _ => return None,
    })
}

struct Simple(Target);

impl TargetParser for Simple {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn opts(&self) -> &'static [OptDef] {
        &[]
    }
    fn take(&mut self, _: usize, _: &str, _: bool, _: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        Err(Diagnostic::error("E0101", cx.at, format!("{} takes no options", self.0.name())))
    }
    fn finish(self: Box<Self>, _: &mut Cx) -> Result<Target, Diagnostic> {
        Ok(self.0)
    }
}

struct RejectP(Option<RejectWith>, Family);

const REJECT_OPTS: &[OptDef] = &[o("reject-with", Arg::Required, false)];

impl TargetParser for RejectP {
    fn name(&self) -> &str {
        "REJECT"
    }
    fn opts(&self) -> &'static [OptDef] {
        REJECT_OPTS
    }
    fn take(&mut self, _: usize, _: &str, _: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        let v = req(val, cx)?;
        let v6 = self.1 == Family::V6;
        let hit = RejectWith::NAMES.iter().find(|(n, a, r)| {
            let is_v6 = n.starts_with("icmp6");
            (*n == v.text || *a == v.text) && (*r == RejectWith::TcpReset || is_v6 == v6)
        });
        match hit {
            Some((_, _, r)) => self.0 = Some(*r),
            None => {
                return Err(bad(cx, v.span, format!("unknown reject type `{}`", v.text))
                    .note(format!("iptables: unknown reject type \"{}\"", v.text))
                    .help(if v6 {
                        "use icmp6-port-unreachable, icmp6-adm-prohibited, icmp6-no-route, icmp6-addr-unreachable or tcp-reset"
                    } else {
                        "use icmp-port-unreachable, icmp-host-prohibited, icmp-admin-prohibited, icmp-net-unreachable or tcp-reset"
                    }))
            }
        }
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Target, Diagnostic> {
        let with = self.0.unwrap_or(if self.1 == Family::V6 {
            RejectWith::Icmp6PortUnreachable
        } else {
            RejectWith::PortUnreachable
        });
        if cx.table != TableName::Filter {
            return Err(Diagnostic::error("E0210", cx.at, format!("REJECT in table `{}`", cx.table))
                .note("the kernel allows REJECT only in the filter table; the whole table fails to load")
                .help("move the rule to the filter table, or use DROP"));
        }
        if with == RejectWith::TcpReset && !matches!(cx.proto, Some(p) if !p.inv && p.val == Proto::TCP) {
            return Err(Diagnostic::error("E0210", cx.at, "`--reject-with tcp-reset` needs `-p tcp`")
                .note("the kernel refuses tcp-reset for rules that can match other protocols; the whole table fails to load")
                .help("add `-p tcp` to the rule"));
        }
        Ok(Target::Reject(Reject { with }))
    }
}

struct LogP(Log);

const LOG_OPTS: &[OptDef] = &[
    o("log-level", Arg::Required, false),
    o("log-prefix", Arg::Required, false),
    o("log-tcp-sequence", Arg::None, false),
    o("log-tcp-options", Arg::None, false),
    o("log-ip-options", Arg::None, false),
    o("log-uid", Arg::None, false),
    o("log-macdecode", Arg::None, false),
];

/// Syslog level names LOG accepts.
const LEVELS: &[(&str, u8)] = &[
    ("emerg", 0),
    ("alert", 1),
    ("crit", 2),
    ("error", 3),
    ("err", 3),
    ("warning", 4),
    ("warn", 4),
    ("notice", 5),
    ("info", 6),
    ("debug", 7),
];

impl TargetParser for LogP {
    fn name(&self) -> &str {
        "LOG"
    }
    fn opts(&self) -> &'static [OptDef] {
        LOG_OPTS
    }
    fn take(&mut self, opt: usize, _: &str, _: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        let l = &mut self.0;
        match opt {
            0 => {
                let v = req(val, cx)?;
                let n = v.text.parse::<u8>().ok().filter(|n| *n <= 7);
                let n = n.or_else(|| LEVELS.iter().find(|(s, _)| s.eq_ignore_ascii_case(&v.text)).map(|(_, n)| *n));
                l.level = n.ok_or_else(|| {
                    bad(cx, v.span, format!("LOG: bad level `{}`", v.text))
                        .help("use 0-7 or emerg, alert, crit, error, warning, notice, info, debug")
                })?;
            }
            1 => {
                if l.prefix.is_some() {
                    return Err(twice(cx, "LOG", "log-prefix"));
                }
                let v = req(val, cx)?;
                let mut p = v.text;
                if p.len() > 29 {
                    cx.diags.push(
                        Diagnostic::warning(
                            "W0003",
                            v.span,
                            format!("log prefix is {} bytes; iptables keeps the first 29", p.len()),
                        )
                        .help("shorten the prefix"),
                    );
                    let mut cut = 29;
                    while !p.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    p.truncate(cut);
                }
                l.prefix = Some(p);
            }
            2 => l.tcp_sequence = true,
            3 => l.tcp_options = true,
            4 => l.ip_options = true,
            5 => l.uid = true,
            _ => l.macdecode = true,
        }
        Ok(())
    }
    fn finish(self: Box<Self>, _: &mut Cx) -> Result<Target, Diagnostic> {
        Ok(Target::Log(self.0))
    }
}

// ---------------------------------------------------------------------------------------
// Shared helpers: C number parsing as xtables does it, xtables-style errors.

/// `strtoumax(s, &end, 0)` as xtables uses it: leading white space and `+` allowed, `-`
/// refused, `0x` hex, leading `0` octal. Returns the value and the unparsed rest, or
/// `None` when no digit was read or the value overflows.
fn strtou(s: &str) -> Option<(u64, &str)> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    if t.starts_with('-') {
        return None;
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let b = t.as_bytes();
    let (radix, digits) = if b.len() > 2 && b[0] == b'0' && (b[1] | 0x20) == b'x' && b[2].is_ascii_hexdigit() {
        (16, &t[2..])
    } else if b.first() == Some(&b'0') {
        (8, t)
    } else {
        (10, t)
    };
    let n = digits.find(|c: char| !c.is_digit(radix)).unwrap_or(digits.len());
    if n == 0 {
        return None;
    }
    let v = u64::from_str_radix(&digits[..n], radix).ok()?;
    Some((v, &digits[n..]))
}

/// `xtables_strtoui(s, &end, …, min, max)`: a number in range, and the rest.
fn strtoui(s: &str, min: u64, max: u64) -> Option<(u64, &str)> {
    strtou(s).filter(|(v, _)| (min..=max).contains(v))
}

/// A whole-word number in `0..=max` (`XTTYPE_UINT*`).
fn xt_uint(s: &str, max: u64) -> Option<u64> {
    strtou(s).filter(|(v, rest)| rest.is_empty() && *v <= max).map(|(v, _)| v)
}

/// The error for a number out of range, worded as xtables words it.
fn bad_uint(target: &str, opt: &str, v: &Val, max: u64) -> Diagnostic {
    Diagnostic::error("E0105", v.span, format!("{target}: `--{opt}` needs a number from 0 to {max}, not `{}`", v.text))
        .label("not a number in range")
        .note(format!("iptables: {target}: bad value for option \"--{opt}\", or out of range (0-{max})."))
        .help("write a decimal, 0x-hex or 0-octal number in range")
}

/// Parses a `XTTYPE_UINT*` option value.
fn uint(target: &str, opt: &str, v: &Val, max: u64) -> Result<u64, Diagnostic> {
    xt_uint(&v.text, max).ok_or_else(|| bad_uint(target, opt, v, max))
}

/// `VALUE[/MASK]` (`XTTYPE_MARKMASK32`); the mask defaults to all ones.
fn mark_mask(target: &str, opt: &str, v: &Val) -> Result<(u32, u32), Diagnostic> {
    let max = u64::from(u32::MAX);
    let bad_int = || {
        Diagnostic::error("E0105", v.span, format!("{target}: bad mark `{}`", v.text))
            .label("not VALUE or VALUE/MASK with 32-bit numbers")
            .note(format!("iptables: {target}: bad integer value for option \"--{opt}\", or out of range."))
            .help("write a 32-bit value, optionally with a mask: `0x10/0xf0`")
    };
    let garbage = || {
        Diagnostic::error("E0105", v.span, format!("{target}: trailing characters in mark `{}`", v.text))
            .label("not VALUE or VALUE/MASK")
            .note(format!("iptables: {target}: trailing garbage after value for option \"--{opt}\"."))
            .help("write a 32-bit value, optionally with a mask: `0x10/0xf0`")
    };
    let (value, rest) = strtoui(&v.text, 0, max).ok_or_else(bad_int)?;
    if rest.is_empty() {
        return Ok((value as u32, u32::MAX));
    }
    let Some(m) = rest.strip_prefix('/') else { return Err(garbage()) };
    let (mask, rest) = strtoui(m, 0, max).ok_or_else(bad_int)?;
    if !rest.is_empty() {
        return Err(garbage());
    }
    Ok((value as u32, mask as u32))
}

/// The options of a target already given, with where, for xtables' "only once" check
/// (while parsing) and its exclusion check (after the target's own final check).
#[derive(Default)]
struct Seen(Vec<(usize, Span)>);

impl Seen {
    /// Records option `i`; an error when it was given before.
    fn first(&mut self, target: &str, opts: &[OptDef], i: usize, at: Span) -> Result<(), Diagnostic> {
        if self.has(i) {
            let name = opts[i].name;
            return Err(Diagnostic::error("E0107", at, format!("{target}: option `--{name}` given twice"))
                .label("second time")
                .note(format!("iptables: {target}: option \"--{name}\" can only be used once."))
                .help("give the option once"));
        }
        self.0.push((i, at));
        Ok(())
    }

    fn has(&self, i: usize) -> bool {
        self.0.iter().any(|(j, _)| *j == i)
    }

    fn span(&self, i: usize) -> Option<Span> {
        self.0.iter().find(|(j, _)| *j == i).map(|(_, s)| *s)
    }

    /// xtables' exclusion check: `groups` lists sets of option indices that exclude each
    /// other. The first conflicting pair in option-table order is reported, as iptables does.
    fn exclusive(&self, target: &str, opts: &[OptDef], excl: &[(usize, &[usize])]) -> Result<(), Diagnostic> {
        for i in 0..opts.len() {
            if !self.has(i) {
                continue;
            }
            let Some((_, others)) = excl.iter().find(|(a, _)| *a == i) else { continue };
            let Some(j) = (0..opts.len()).filter(|j| others.contains(j) && *j != i).find(|j| self.has(*j)) else {
                continue;
            };
            let (a, b) = (opts[i].name, opts[j].name);
            let at = match (self.span(i), self.span(j)) {
                (Some(x), Some(y)) if x.start > y.start => x,
                (_, Some(y)) => y,
                (x, None) => x.unwrap_or_default(),
            };
            return Err(Diagnostic::error(
                "E0106",
                at,
                format!("{target}: `--{a}` and `--{b}` cannot be used together"),
            )
            .label("conflicts with an earlier option")
            .note(format!("iptables: {target}: option \"--{a}\" cannot be used together with \"--{b}\"."))
            .help("keep one of the two options"));
        }
        Ok(())
    }
}

/// An option the target requires is missing.
fn missing(cx: &Cx, msg: impl Into<String>, note: &str, help: &str) -> Diagnostic {
    Diagnostic::error("E0108", cx.at, msg)
        .label("in this target")
        .note(format!("iptables: {note}"))
        .help(help.to_string())
}

/// The target is only allowed in `want`; the kernel refuses it elsewhere.
fn only_in_table(cx: &Cx, target: &str, want: TableName) -> Result<(), Diagnostic> {
    if cx.table == want {
        return Ok(());
    }
    Err(Diagnostic::error("E0210", cx.at, format!("{target} in table `{}`", cx.table))
        .label(format!("{target} exists only in the {want} table"))
        .note(format!(
            "the kernel allows {target} only in the {want} table; iptables-restore fails at COMMIT (`line N failed`) and the whole table is not loaded"
        ))
        .help(format!("move the rule to the `*{want}` table")))
}

/// `-p` as the kernel sees it: the protocol number unless it is absent or negated.
fn plain_proto(cx: &Cx) -> Option<Proto> {
    cx.proto.filter(|p| !p.inv).map(|p| p.val)
}

// ---------------------------------------------------------------------------------------
// NFLOG

#[derive(Default)]
struct NflogP {
    t: Nflog,
    seen: Seen,
}

const NFLOG_OPTS: &[OptDef] = &[
    o("nflog-group", Arg::Required, false),
    o("nflog-prefix", Arg::Required, false),
    o("nflog-range", Arg::Required, false),
    o("nflog-size", Arg::Required, false),
    o("nflog-threshold", Arg::Required, false),
];

/// NF_LOG_PREFIXLEN - 1: iptables keeps this many bytes of `--nflog-prefix`.
const NFLOG_PREFIX_MAX: usize = 63;

impl TargetParser for NflogP {
    fn name(&self) -> &str {
        "NFLOG"
    }
    fn opts(&self) -> &'static [OptDef] {
        NFLOG_OPTS
    }
    fn take(&mut self, opt: usize, _: &str, _: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        self.seen.first("NFLOG", NFLOG_OPTS, opt, cx.at)?;
        let v = req(val, cx)?;
        let t = &mut self.t;
        match opt {
            0 => t.group = uint("NFLOG", "nflog-group", &v, 65535)? as u16,
            1 => {
                if v.text.is_empty() {
                    return Err(bad(cx, v.span, "NFLOG: empty `--nflog-prefix`")
                        .note("iptables: Argument must have a minimum length of 1 characters")
                        .help("give a prefix or leave the option out"));
                }
                if v.text.contains('\n') {
                    return Err(bad(cx, v.span, "NFLOG: newline in `--nflog-prefix`")
                        .note("iptables: Newlines not allowed in --log-prefix")
                        .help("remove the newline"));
                }
                let mut p = v.text;
                if p.len() > NFLOG_PREFIX_MAX {
                    cx.diags.push(
                        Diagnostic::warning(
                            "W0003",
                            v.span,
                            format!("nflog prefix is {} bytes; iptables keeps the first {NFLOG_PREFIX_MAX}", p.len()),
                        )
                        .help("shorten the prefix"),
                    );
                    let mut cut = NFLOG_PREFIX_MAX;
                    while !p.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    p.truncate(cut);
                }
                t.prefix = Some(p);
            }
            2 => t.len = Some(NflogLen::Range(uint("NFLOG", "nflog-range", &v, u32::MAX.into())? as u32)),
            3 => t.len = Some(NflogLen::Size(uint("NFLOG", "nflog-size", &v, u32::MAX.into())? as u32)),
            _ => t.threshold = uint("NFLOG", "nflog-threshold", &v, 65535)? as u16,
        }
        Ok(())
    }
    fn finish(self: Box<Self>, _: &mut Cx) -> Result<Target, Diagnostic> {
        self.seen.exclusive("NFLOG", NFLOG_OPTS, &[(2, &[3]), (3, &[2])])?;
        Ok(Target::Nflog(self.t))
    }
}

// ---------------------------------------------------------------------------------------
// MARK

#[derive(Default)]
struct MarkP {
    t: Option<Mark>,
    seen: Seen,
}

const MARK_OPTS: &[OptDef] = &[
    o("set-xmark", Arg::Required, false),
    o("set-mark", Arg::Required, false),
    o("and-mark", Arg::Required, false),
    o("or-mark", Arg::Required, false),
    o("xor-mark", Arg::Required, false),
];

const MARK_OPS: &[usize] = &[0, 1, 2, 3, 4];

/// `--set-xmark`, `--set-mark`, `--and-mark`, `--or-mark`, `--xor-mark` as value/mask
/// (shared by MARK and CONNMARK; `opt` indexes [`MARK_OPTS`]).
fn xmark(target: &str, opt: usize, v: &Val) -> Result<(u32, u32), Diagnostic> {
    let name = MARK_OPTS[opt].name;
    Ok(match opt {
        0 => mark_mask(target, name, v)?,
        1 => {
            let (value, mask) = mark_mask(target, name, v)?;
            (value, value | mask)
        }
        _ => {
            let bits = uint(target, name, v, u32::MAX.into())? as u32;
            match opt {
                2 => (0, !bits),
                3 => (bits, bits),
                _ => (bits, 0),
            }
        }
    })
}

impl TargetParser for MarkP {
    fn name(&self) -> &str {
        "MARK"
    }
    fn opts(&self) -> &'static [OptDef] {
        MARK_OPTS
    }
    fn take(&mut self, opt: usize, _: &str, _: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        self.seen.first("MARK", MARK_OPTS, opt, cx.at)?;
        let v = req(val, cx)?;
        let (value, mask) = xmark("MARK", opt, &v)?;
        self.t = Some(Mark { value, mask });
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Target, Diagnostic> {
        let Some(t) = self.t else {
            return Err(missing(
                cx,
                "MARK needs an operation",
                "MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required",
                "add `--set-mark VALUE[/MASK]` (or --set-xmark, --and-mark, --or-mark, --xor-mark)",
            ));
        };
        let excl: Vec<(usize, &[usize])> = MARK_OPS.iter().map(|&i| (i, MARK_OPS)).collect();
        self.seen.exclusive("MARK", MARK_OPTS, &excl)?;
        Ok(Target::Mark(t))
    }
}

// ---------------------------------------------------------------------------------------
// CONNMARK

struct ConnmarkP {
    /// 0 set, 1 save, 2 restore.
    mode: Option<u8>,
    ctmark: u32,
    ctmask: u32,
    nfmask: u32,
    shift_right: bool,
    shift_bits: u8,
    seen: Seen,
}

impl ConnmarkP {
    fn new() -> ConnmarkP {
        ConnmarkP {
            mode: None,
            ctmark: 0,
            ctmask: u32::MAX,
            nfmask: u32::MAX,
            shift_right: false,
            shift_bits: 0,
            seen: Seen::default(),
        }
    }
}

/// libxt_CONNMARK revision 2, in its table order (the first five as in [`MARK_OPTS`]).
const CONNMARK_OPTS: &[OptDef] = &[
    o("set-xmark", Arg::Required, false),
    o("set-mark", Arg::Required, false),
    o("and-mark", Arg::Required, false),
    o("or-mark", Arg::Required, false),
    o("xor-mark", Arg::Required, false),
    o("save-mark", Arg::None, false),
    o("restore-mark", Arg::None, false),
    o("left-shift-mark", Arg::Required, false),
    o("right-shift-mark", Arg::Required, false),
    o("ctmask", Arg::Required, false),
    o("nfmask", Arg::Required, false),
    o("mask", Arg::Required, false),
];

const CONNMARK_OPS: &[usize] = &[0, 1, 2, 3, 4, 5, 6];

impl TargetParser for ConnmarkP {
    fn name(&self) -> &str {
        "CONNMARK"
    }
    fn opts(&self) -> &'static [OptDef] {
        CONNMARK_OPTS
    }
    fn take(&mut self, opt: usize, _: &str, _: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        self.seen.first("CONNMARK", CONNMARK_OPTS, opt, cx.at)?;
        match opt {
            0..=4 => {
                let v = req(val, cx)?;
                (self.ctmark, self.ctmask) = xmark("CONNMARK", opt, &v)?;
                self.mode = Some(0);
            }
            5 => self.mode = Some(1),
            6 => self.mode = Some(2),
            7 | 8 => {
                let v = req(val, cx)?;
                let n = uint("CONNMARK", CONNMARK_OPTS[opt].name, &v, 32)? as u8;
                if n > 31 {
                    return Err(bad(cx, v.span, "CONNMARK: the kernel refuses a shift of 32 bits")
                        .label("at most 31")
                        .note("iptables accepts 0-32, but xt_connmark refuses shifts above 31; iptables-restore fails at COMMIT and the whole table is not loaded")
                        .help("shift by 0-31 bits"));
                }
                self.shift_right = opt == 8;
                self.shift_bits = n;
            }
            _ => {
                let v = req(val, cx)?;
                let m = uint("CONNMARK", CONNMARK_OPTS[opt].name, &v, u32::MAX.into())? as u32;
                match opt {
                    9 => self.ctmask = m,
                    10 => self.nfmask = m,
                    _ => (self.ctmask, self.nfmask) = (m, m),
                }
            }
        }
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Target, Diagnostic> {
        let Some(mode) = self.mode else {
            return Err(missing(
                cx,
                "CONNMARK needs an operation",
                "CONNMARK target: No operation specified",
                "add `--set-mark VALUE[/MASK]`, `--save-mark` or `--restore-mark`",
            ));
        };
        let mut excl: Vec<(usize, &[usize])> = CONNMARK_OPS.iter().map(|&i| (i, CONNMARK_OPS)).collect();
        excl.extend([(9, &[11][..]), (10, &[11][..]), (11, &[9, 10][..])]);
        self.seen.exclusive("CONNMARK", CONNMARK_OPTS, &excl)?;
        let mode = match mode {
            0 => ConnmarkMode::Set { value: self.ctmark, ctmask: self.ctmask },
            1 => ConnmarkMode::Save { nfmask: self.nfmask, ctmask: self.ctmask },
            _ => ConnmarkMode::Restore { nfmask: self.nfmask, ctmask: self.ctmask },
        };
        Ok(Target::Connmark(Connmark { mode, shift_right: self.shift_right, shift_bits: self.shift_bits }))
    }
}

// ---------------------------------------------------------------------------------------
// CT and NOTRACK

#[derive(Default)]
struct CtP {
    t: Ct,
    seen: Seen,
    helper_span: Option<Span>,
}

/// libxt_CT revision 2, in its table order.
const CT_OPTS: &[OptDef] = &[
    o("notrack", Arg::None, false),
    o("helper", Arg::Required, false),
    o("timeout", Arg::Required, false),
    o("ctevents", Arg::Required, false),
    o("expevents", Arg::Required, false),
    o("zone-orig", Arg::Required, false),
    o("zone-reply", Arg::Required, false),
    o("zone", Arg::Required, false),
];

/// Conntrack helpers of mainline Linux: name, protocol, and whether IPv6 has it.
const CT_HELPERS: &[(&str, Proto, bool)] = &[
    ("amanda", Proto::UDP, true),
    ("ftp", Proto::TCP, true),
    ("irc", Proto::TCP, false),
    ("netbios-ns", Proto::UDP, false),
    ("pptp", Proto::TCP, false),
    ("Q.931", Proto::TCP, true),
    ("RAS", Proto::UDP, true),
    ("sane", Proto::TCP, true),
    ("sip", Proto::TCP, true),
    ("sip", Proto::UDP, true),
    ("snmp", Proto::UDP, false),
    ("snmp_trap", Proto::UDP, false),
    ("tftp", Proto::UDP, true),
];

/// Bytes of `--helper` iptables keeps (the kernel field is 16 bytes with its NUL).
const CT_HELPER_MAX: usize = 15;

fn ct_events(v: &Val, names: &[&str]) -> Result<u16, Diagnostic> {
    let mut bits = 0u16;
    for w in v.text.split(',') {
        let i = names.iter().position(|n| *n == w).ok_or_else(|| {
            Diagnostic::error("E0105", v.span, format!("CT: unknown event `{w}`"))
                .label("not an event name")
                .note(format!("iptables: Unknown event type \"{w}\""))
                .help(format!("use a comma-separated list of {}", names.join(", ")))
        })?;
        bits |= 1 << i;
    }
    Ok(bits)
}

impl TargetParser for CtP {
    fn name(&self) -> &str {
        "CT"
    }
    fn opts(&self) -> &'static [OptDef] {
        CT_OPTS
    }
    fn take(&mut self, opt: usize, _: &str, _: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        self.seen.first("CT", CT_OPTS, opt, cx.at)?;
        let t = &mut self.t;
        if opt == 0 {
            t.notrack = true;
            return Ok(());
        }
        let v = req(val, cx)?;
        match opt {
            1 => {
                let mut h = v.text;
                if h.len() > CT_HELPER_MAX {
                    cx.diags.push(
                        Diagnostic::warning(
                            "W0003",
                            v.span,
                            format!("helper name is {} bytes; iptables keeps the first {CT_HELPER_MAX}", h.len()),
                        )
                        .help("use the helper's real name, e.g. `ftp`"),
                    );
                    let mut cut = CT_HELPER_MAX;
                    while !h.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    h.truncate(cut);
                }
                self.helper_span = Some(v.span);
                t.helper = Some(h);
            }
            2 => t.timeout = Some(v.text),
            3 => t.ctevents = ct_events(&v, CT_EVENTS)?,
            4 => t.expevents = ct_events(&v, CT_EXP_EVENTS)?,
            _ => {
                // ct_parse_zone_id: direction flags accumulate, the id is replaced.
                match opt {
                    5 => t.zone.orig = true,
                    6 => t.zone.reply = true,
                    _ => {}
                }
                if v.text.eq_ignore_ascii_case("mark") {
                    t.zone.from_mark = true;
                    t.zone.id = 0;
                } else {
                    let id = xt_uint(&v.text, 65535).ok_or_else(|| {
                        bad(cx, v.span, format!("CT: bad zone `{}`", v.text))
                            .label("not a zone number 0-65535 or `mark`")
                            .note(format!("iptables: Cannot parse {} as a zone ID", v.text))
                            .help("write a zone number 0-65535, or `mark`")
                    })?;
                    t.zone.id = id as u16;
                }
            }
        }
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Target, Diagnostic> {
        only_in_table(cx, "CT", TableName::Raw)?;
        let t = self.t;
        // With --notrack the kernel ignores helper and timeout.
        let helper = t.helper.as_deref().filter(|h| !h.is_empty() && !t.notrack);
        let timeout = t.timeout.as_deref().filter(|h| !h.is_empty() && !t.notrack);
        if helper.is_some() || timeout.is_some() {
            let opt = if helper.is_some() { "--helper" } else { "--timeout" };
            let Some(proto) = plain_proto(cx) else {
                return Err(Diagnostic::error("E0210", cx.at, format!("CT {opt} needs `-p PROTOCOL`"))
                    .label("no protocol, or a negated one")
                    .note("the kernel refuses it (\"You must specify a L4 protocol and not use inversions on it\"); iptables-restore fails at COMMIT and the whole table is not loaded")
                    .help("add `-p tcp` or `-p udp` (whichever the helper or timeout policy is for)"));
            };
            if let Some(h) = helper {
                let at = self.helper_span.unwrap_or(cx.at);
                let v6 = cx.family == Family::V6;
                let known: Vec<_> = CT_HELPERS.iter().filter(|(n, _, six)| *n == h && (*six || !v6)).collect();
                if known.is_empty() {
                    let names: Vec<&str> =
                        CT_HELPERS.iter().filter(|(_, _, six)| *six || !v6).map(|(n, _, _)| *n).collect();
                    return Err(Diagnostic::error("E0105", at, format!("CT: no conntrack helper `{h}`"))
                        .label(if v6 { "no such helper for IPv6" } else { "no such helper" })
                        .note("the kernel refuses unknown helpers (names are case-sensitive); iptables-restore fails at COMMIT and the whole table is not loaded")
                        .help(format!("use one of {}", names.join(", "))));
                }
                if !known.iter().any(|(_, p, _)| *p == proto) {
                    let want = known[0].1;
                    return Err(Diagnostic::error("E0210", at, format!("CT: helper `{h}` is for {want}, not {proto}"))
                        .label(format!("needs `-p {want}`"))
                        .note("the kernel looks helpers up by name and protocol and refuses the rule; iptables-restore fails at COMMIT and the whole table is not loaded")
                        .help(format!("use `-p {want}`")));
                }
            }
        }
        Ok(Target::Ct(t))
    }
}

/// `-j NOTRACK`: no options, raw table only.
struct NotrackP;

impl TargetParser for NotrackP {
    fn name(&self) -> &str {
        "NOTRACK"
    }
    fn opts(&self) -> &'static [OptDef] {
        &[]
    }
    fn take(&mut self, _: usize, _: &str, _: bool, _: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        Err(Diagnostic::error("E0101", cx.at, "NOTRACK takes no options").help("use `-j CT --notrack …` for options"))
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Target, Diagnostic> {
        only_in_table(cx, "NOTRACK", TableName::Raw)?;
        Ok(Target::Notrack)
    }
}

// ---------------------------------------------------------------------------------------
// TCPMSS

#[derive(Default)]
struct TcpmssP {
    t: Option<Tcpmss>,
    seen: Seen,
}

const TCPMSS_OPTS: &[OptDef] = &[o("set-mss", Arg::Required, false), o("clamp-mss-to-pmtu", Arg::None, false)];

impl TargetParser for TcpmssP {
    fn name(&self) -> &str {
        "TCPMSS"
    }
    fn opts(&self) -> &'static [OptDef] {
        TCPMSS_OPTS
    }
    fn take(&mut self, opt: usize, _: &str, _: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        self.seen.first("TCPMSS", TCPMSS_OPTS, opt, cx.at)?;
        // The last of the two options wins, as in libxt_TCPMSS.
        self.t = Some(if opt == 0 {
            let v = req(val, cx)?;
            // 65535 minus the minimal IP + TCP header.
            let max = if cx.family == Family::V6 { 65495 } else { 65515 };
            Tcpmss::SetMss(uint("TCPMSS", "set-mss", &v, max)? as u16)
        } else {
            Tcpmss::ClampPmtu
        });
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Target, Diagnostic> {
        let Some(t) = self.t else {
            return Err(missing(
                cx,
                "TCPMSS needs `--set-mss` or `--clamp-mss-to-pmtu`",
                "TCPMSS target: At least one parameter is required",
                "add `--clamp-mss-to-pmtu` or `--set-mss VALUE`",
            ));
        };
        if plain_proto(cx) != Some(Proto::TCP) {
            return Err(Diagnostic::error("E0210", cx.at, "TCPMSS needs `-p tcp`")
                .label("the rule can match other protocols")
                .note("the kernel refuses TCPMSS without `-p tcp` (\"TCPMSS target: only valid for protocol 6\"); iptables-restore fails at COMMIT and the whole table is not loaded")
                .help("add `-p tcp --syn` (TCPMSS also needs a SYN test)"));
        }
        Ok(Target::Tcpmss(t))
    }
}

// ---------------------------------------------------------------------------------------
// DNAT, SNAT, MASQUERADE, REDIRECT (libxt_NAT in iptables 1.8.9)

#[derive(Clone, Copy, PartialEq, Eq)]
enum NatKind {
    Dnat,
    Snat,
    Masquerade,
    Redirect,
}

struct NatP {
    kind: NatKind,
    range: NatRange,
    random: bool,
    random_fully: bool,
    persistent: bool,
    seen: Seen,
    base_span: Option<Span>,
}

const DNAT_OPTS: &[OptDef] =
    &[o("to-destination", Arg::Required, false), o("random", Arg::None, false), o("persistent", Arg::None, false)];
const SNAT_OPTS: &[OptDef] = &[
    o("to-source", Arg::Required, false),
    o("random", Arg::None, false),
    o("random-fully", Arg::None, false),
    o("persistent", Arg::None, false),
];
const MASQUERADE_OPTS: &[OptDef] =
    &[o("to-ports", Arg::Required, false), o("random", Arg::None, false), o("random-fully", Arg::None, false)];
const REDIRECT_OPTS: &[OptDef] = &[o("to-ports", Arg::Required, false), o("random", Arg::None, false)];

impl NatP {
    fn new(name: &str) -> Option<NatP> {
        let kind = match name {
            "DNAT" => NatKind::Dnat,
            "SNAT" => NatKind::Snat,
            "MASQUERADE" => NatKind::Masquerade,
            "REDIRECT" => NatKind::Redirect,
            _ => return None,
        };
        Some(NatP {
            kind,
            range: NatRange::default(),
            random: false,
            random_fully: false,
            persistent: false,
            seen: Seen::default(),
            base_span: None,
        })
    }
}

/// Protocols with ports for NAT, as libxt_NAT decides from the rule's `-p` number
/// (negation ignored): TCP, UDP, SCTP, DCCP and ICMP (its id).
fn nat_portok(cx: &Cx) -> bool {
    matches!(cx.proto, Some(p) if matches!(p.val.0, 6 | 17 | 132 | 33 | 1))
}

/// A service name as getservbyname resolves it (case-sensitive; names are lowercase).
fn service(name: &str) -> Option<u16> {
    let numeric = name.bytes().all(|b| b.is_ascii_digit());
    if numeric || name.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    parse_port(name)
}

/// libxt_NAT `parse_ports`: `PORT[-PORT[/BASE]]`. Errors carry iptables' message.
fn nat_ports(arg: &str, portok: bool) -> Result<NatPorts, String> {
    if !portok {
        return Err("Need TCP, UDP, SCTP or DCCP with port specification".into());
    }
    let (lo, rest) = match strtoui(arg, 0, 65535) {
        Some((p, rest)) => (p as u16, rest),
        None => match service(arg) {
            Some(p) => (p, ""),
            None => return Err(format!("Port `{arg}' not valid")),
        },
    };
    let rest = match rest.chars().next() {
        None => return Ok(NatPorts { range: PortRange::single(lo), base: None }),
        Some('-') => &rest[1..],
        Some(':') => return Err("Invalid port:port syntax - use dash".into()),
        Some(_) => return Err(format!("Garbage after port value: `{rest}'")),
    };
    // A range: no service names for the upper end.
    let Some((hi, after)) = strtoui(rest, 0, 65535) else { return Err(format!("Port `{rest}' not valid")) };
    let hi = hi as u16;
    if hi < lo {
        return Err(format!("Port range `{rest}' funky"));
    }
    let range = PortRange { lo, hi };
    let base = match after.chars().next() {
        None => return Ok(NatPorts { range, base: None }),
        Some('/') => &after[1..],
        Some(_) => return Err(format!("Garbage after port range: `{after}'")),
    };
    // Trailing characters after the base are ignored, as in libxt_NAT.
    let b = match strtoui(base, 1, 65535) {
        Some((b, _)) => b as u16,
        None => match service(base) {
            Some(p) => p,
            None => return Err(format!("Port `{base}' not valid")),
        },
    };
    Ok(NatPorts { range, base: Some(b) })
}

/// libxt_NAT `parse_to`: `[ADDR[-ADDR]][:PORTS]`, IPv6 as `[ADDR[-ADDR]]:PORTS`.
fn nat_to(arg: &str, portok: bool, family: Family) -> Result<NatRange, String> {
    let mut r = NatRange::default();
    // (address text, colon position in `arg`)
    let (addr, colon) = match arg.find('[') {
        None => {
            let mut colon = arg.find(':');
            if let Some(c) = colon {
                if arg[c + 1..].contains(':') {
                    colon = None; // an IPv6 address
                }
            }
            (colon.map_or(arg, |c| &arg[..c]), colon)
        }
        Some(open) => {
            let start = open + 1;
            let end = arg[start..].find(']').map(|e| start + e);
            let Some(end) = end.filter(|_| family == Family::V6) else {
                return Err("Invalid address format".into());
            };
            (&arg[start..end], arg[end + 1..].find(':').map(|c| end + 1 + c))
        }
    };
    if let Some(c) = colon {
        r.ports = Some(nat_ports(&arg[c + 1..], portok)?);
        // "Starts with colon or [] colon? No IP info" (libxt_NAT tests the position only).
        if c == 0 || c == 2 {
            return Ok(r);
        }
    }
    let (lo, hi) = match addr.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (addr, None),
    };
    let ip = |s: &str| -> Result<IpAddr, String> {
        let ok = match family {
            Family::V4 => s.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
            Family::V6 => s.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        };
        ok.ok_or_else(|| format!("Bad IP address \"{s}\""))
    };
    let lo = ip(lo)?;
    let hi = match hi {
        Some(h) => ip(h)?,
        None => lo,
    };
    r.addrs = Some((lo, hi));
    Ok(r)
}

impl TargetParser for NatP {
    fn name(&self) -> &str {
        match self.kind {
            NatKind::Dnat => "DNAT",
            NatKind::Snat => "SNAT",
            NatKind::Masquerade => "MASQUERADE",
            NatKind::Redirect => "REDIRECT",
        }
    }
    fn opts(&self) -> &'static [OptDef] {
        match self.kind {
            NatKind::Dnat => DNAT_OPTS,
            NatKind::Snat => SNAT_OPTS,
            NatKind::Masquerade => MASQUERADE_OPTS,
            NatKind::Redirect => REDIRECT_OPTS,
        }
    }
    fn take(&mut self, opt: usize, name: &str, _: bool, val: Option<Val>, cx: &mut Cx) -> Result<(), Diagnostic> {
        let target = self.name().to_string();
        self.seen.first(&target, self.opts(), opt, cx.at)?;
        match name {
            "to-destination" | "to-source" | "to-ports" => {
                let v = req(val, cx)?;
                let portok = nat_portok(cx);
                let parsed = if name == "to-ports" {
                    nat_ports(&v.text, portok).map(|p| NatRange { addrs: None, ports: Some(p) })
                } else {
                    nat_to(&v.text, portok, cx.family)
                };
                let r = parsed.map_err(|msg| {
                    let d = bad(cx, v.span, format!("{target}: bad `--{name}` value `{}`", v.text))
                        .note(format!("iptables: {msg}"));
                    if msg.starts_with("Need") {
                        d.label("ports need a protocol with ports").help(
                            "put `-p tcp` or `-p udp` before the target (iptables reads `-p` only if it comes first)",
                        )
                    } else if name == "to-ports" {
                        d.label("not PORT or PORT-PORT").help("write `--to-ports PORT` or `--to-ports LOW-HIGH`")
                    } else {
                        d.label("not ADDR[-ADDR][:PORT[-PORT]]").help(
                            "write e.g. `10.0.0.1`, `10.0.0.1-10.0.0.9`, `10.0.0.1:8080` or `[2001:db8::1]:80-90`",
                        )
                    }
                })?;
                self.base_span = r.ports.and_then(|p| p.base).map(|_| v.span);
                self.range = r;
            }
            "random" => self.random = true,
            "random-fully" => self.random_fully = true,
            _ => self.persistent = true,
        }
        Ok(())
    }
    fn finish(self: Box<Self>, cx: &mut Cx) -> Result<Target, Diagnostic> {
        let target = self.name();
        let mut range = self.range;
        match self.kind {
            NatKind::Redirect => {
                if let Some(at) = self.base_span {
                    return Err(bad(cx, at, "REDIRECT: shifted port maps (`/BASE`) are not supported")
                        .label("REDIRECT has no `/BASE`")
                        .note("iptables: Shifted portmap ranges not supported with this kernel")
                        .help("remove `/BASE`, or use DNAT"));
                }
            }
            // SNAT and MASQUERADE use a kernel structure without the base: the flag stays,
            // the number reads back as 0.
            NatKind::Snat | NatKind::Masquerade => {
                if let Some(p) = range.ports.as_mut() {
                    if p.base.is_some() {
                        cx.diags.push(
                            Diagnostic::warning(
                                "W0003",
                                self.base_span.unwrap_or(cx.at),
                                format!("{target} keeps no shifted port map base; it is saved as `/0`"),
                            )
                            .label("the base is lost")
                            .note("iptables-save prints `/0`, which iptables-restore then refuses (\"Port `0' not valid\")")
                            .help("remove `/BASE`"),
                        );
                        p.base = Some(0);
                    }
                }
            }
            NatKind::Dnat => {}
        }
        if matches!(self.kind, NatKind::Dnat | NatKind::Snat) && !self.seen.has(0) {
            let opt = self.opts()[0].name;
            return Err(missing(
                cx,
                format!("{target} needs `--{opt}`"),
                &format!("{target}: option \"--{opt}\" must be specified"),
                &format!("add `--{opt} ADDRESS[:PORT]`"),
            ));
        }
        only_in_table(cx, target, TableName::Nat)?;
        Ok(match self.kind {
            NatKind::Dnat => Target::Dnat(Dnat { to: range, random: self.random, persistent: self.persistent }),
            NatKind::Snat => Target::Snat(Snat {
                to: range,
                random: self.random,
                random_fully: self.random_fully,
                persistent: self.persistent,
            }),
            NatKind::Masquerade => Target::Masquerade(Masquerade {
                ports: range.ports,
                random: self.random,
                random_fully: self.random_fully,
            }),
            NatKind::Redirect => Target::Redirect(Redirect { ports: range.ports, random: self.random }),
        })
    }
}

#[cfg(test)]
mod tests {
    //! Canonical forms and refusals, each checked against iptables-legacy-restore/-save
    //! 1.8.9 on Linux 6.18 in a scratch network namespace.

    use crate::diag::Diagnostic;
    use crate::model::SavePrinter;

    /// The text of a one-rule file for `table` (IPv6 when the rule says `-s ::/0`).
    fn file(table: &str, rule: &str) -> String {
        format!("*{table}\n-A {rule}\nCOMMIT\n")
    }

    /// The rule as printed back, or the first error.
    fn run(table: &str, rule: &str) -> Result<String, Diagnostic> {
        let parsed = crate::load(&file(table, rule));
        if let Some(d) = parsed.diagnostics.iter().find(|d| d.is_error()) {
            return Err(d.clone());
        }
        let printed = SavePrinter { ruleset: &parsed.ruleset, options: Default::default() }.to_string();
        let lines: Vec<&str> = printed.lines().filter(|l| l.starts_with("-A ")).collect();
        assert_eq!(lines.len(), 1, "{printed}");
        Ok(lines[0].trim_start_matches("-A ").to_string())
    }

    /// Asserts `rule` in `table` prints as `want`.
    fn saved(table: &str, rule: &str, want: &str) {
        match run(table, rule) {
            Ok(got) => assert_eq!(got, want, "{rule}"),
            Err(d) => panic!("{rule}: unexpected error {}: {}", d.code, d.message),
        }
    }

    /// Asserts `rule` fails with `code`, and that the note quotes `note` (iptables' text).
    fn refused(table: &str, rule: &str, code: &str, note: &str) {
        match run(table, rule) {
            Ok(got) => panic!("{rule}: accepted as {got}"),
            Err(d) => {
                assert_eq!(d.code, code, "{rule}: {}", d.message);
                let n = d.note.clone().unwrap_or_default();
                assert!(n.contains(note), "{rule}: note {n:?} lacks {note:?}");
                assert!(d.help.is_some(), "{rule}: no help");
                assert!(!d.message.ends_with('.'), "{rule}: message ends with a period");
            }
        }
    }

    #[test]
    fn mark_forms() {
        let p = "PREROUTING -j MARK";
        for (given, want) in [
            ("--set-mark 5", "--set-xmark 0x5/0xffffffff"),
            ("--set-mark 0x10/0xf0", "--set-xmark 0x10/0xf0"),
            ("--or-mark 1", "--set-xmark 0x1/0x1"),
            ("--and-mark 3", "--set-xmark 0x0/0xfffffffc"),
            ("--xor-mark 3", "--set-xmark 0x3/0x0"),
            ("--set-xmark 7", "--set-xmark 0x7/0xffffffff"),
            ("--set-xmark 0x7/0", "--set-xmark 0x7/0x0"),
            ("--set-mark 010", "--set-xmark 0x8/0xffffffff"),
            ("--set-mark +5", "--set-xmark 0x5/0xffffffff"),
            ("--set-mark 0X1F", "--set-xmark 0x1f/0xffffffff"),
            ("--set-mark 4294967295/4294967295", "--set-xmark 0xffffffff/0xffffffff"),
            ("--set-m 3", "--set-xmark 0x3/0xffffffff"),
        ] {
            saved("mangle", &format!("{p} {given}"), &format!("{p} {want}"));
        }
        // MARK is allowed in every table.
        saved("filter", "OUTPUT -j MARK --set-mark 5", "OUTPUT -j MARK --set-xmark 0x5/0xffffffff");
        saved("nat", "OUTPUT -j MARK --set-mark 5", "OUTPUT -j MARK --set-xmark 0x5/0xffffffff");
    }

    #[test]
    fn mark_refusals() {
        let p = "PREROUTING -j MARK";
        refused("mangle", p, "E0108", "One of the --set-xmark, --{and,or,xor,set}-mark options is required");
        refused(
            "mangle",
            &format!("{p} --set-mark 1 --or-mark 2"),
            "E0106",
            "MARK: option \"--set-mark\" cannot be used together with \"--or-mark\".",
        );
        // iptables names the pair in its option-table order, whatever the input order.
        refused(
            "mangle",
            &format!("{p} --set-mark 2 --set-xmark 1"),
            "E0106",
            "option \"--set-xmark\" cannot be used together with \"--set-mark\"",
        );
        refused(
            "mangle",
            &format!("{p} --set-mark 1 --set-mark 2"),
            "E0107",
            "MARK: option \"--set-mark\" can only be used once.",
        );
        for bad in ["4294967296", "abc", "1/x", "-1", "\"\"", "1/"] {
            refused("mangle", &format!("{p} --set-mark {bad}"), "E0105", "bad integer value for option \"--set-mark\"");
        }
        for bad in ["1x", "09", "0x", "1/2x"] {
            refused("mangle", &format!("{p} --set-mark {bad}"), "E0105", "trailing garbage after value");
        }
        refused("mangle", &format!("{p} --or-mark 1/2"), "E0105", "out of range (0-4294967295)");
        refused("mangle", &format!("{p} --or-mark \"1 \""), "E0105", "out of range (0-4294967295)");
    }

    #[test]
    fn connmark_forms() {
        let p = "PREROUTING -j CONNMARK";
        for (given, want) in [
            ("--set-mark 7", "--set-xmark 0x7/0xffffffff"),
            ("--set-mark 7/0xff", "--set-xmark 0x7/0xff"),
            ("--save-mark", "--save-mark --nfmask 0xffffffff --ctmask 0xffffffff"),
            ("--restore-mark", "--restore-mark --nfmask 0xffffffff --ctmask 0xffffffff"),
            ("--restore-mark --mask 0xff", "--restore-mark --nfmask 0xff --ctmask 0xff"),
            ("--save-mark --nfmask 0xf", "--save-mark --nfmask 0xf --ctmask 0xffffffff"),
            ("--save-mark --ctmask 0xf --nfmask 0xf0", "--save-mark --nfmask 0xf0 --ctmask 0xf"),
            // Options apply in order: --mask after --set-mark replaces its mask, before it not.
            ("--set-mark 7 --mask 3", "--set-xmark 0x7/0x3"),
            ("--mask 3 --set-mark 7", "--set-xmark 0x7/0xffffffff"),
            ("--set-xmark 7/3 --ctmask 4", "--set-xmark 0x7/0x4"),
            ("--and-mark 3", "--set-xmark 0x0/0xfffffffc"),
            ("--or-mark 3", "--set-xmark 0x3/0x3"),
            ("--xor-mark 3", "--set-xmark 0x3/0x0"),
            (
                "--save-mark --left-shift-mark 4",
                "--save-mark --nfmask 0xffffffff --ctmask 0xffffffff --left-shift-mark 4",
            ),
            (
                "--restore-mark --right-shift-mark 3 --left-shift-mark 2",
                "--restore-mark --nfmask 0xffffffff --ctmask 0xffffffff --left-shift-mark 2",
            ),
            ("--set-mark 1 --left-shift-mark 2", "--set-xmark 0x1/0xffffffff --left-shift-mark 2"),
            ("--save-mark --left-shift-mark 0", "--save-mark --nfmask 0xffffffff --ctmask 0xffffffff"),
            ("--set-xmark 0/0", "--set-xmark 0x0/0x0"),
        ] {
            saved("mangle", &format!("{p} {given}"), &format!("{p} {want}"));
        }
    }

    #[test]
    fn connmark_refusals() {
        let p = "PREROUTING -j CONNMARK";
        refused("mangle", p, "E0108", "CONNMARK target: No operation specified");
        // The missing operation is reported before the exclusion, as iptables does.
        refused("mangle", &format!("{p} --ctmask 3 --mask 2"), "E0108", "No operation specified");
        refused(
            "mangle",
            &format!("{p} --save-mark --restore-mark"),
            "E0106",
            "option \"--save-mark\" cannot be used together with \"--restore-mark\"",
        );
        refused(
            "mangle",
            &format!("{p} --save-mark --set-xmark 1"),
            "E0106",
            "option \"--set-xmark\" cannot be used together with \"--save-mark\"",
        );
        refused(
            "mangle",
            &format!("{p} --save-mark --mask 2 --ctmask 3"),
            "E0106",
            "option \"--ctmask\" cannot be used together with \"--mask\"",
        );
        refused(
            "mangle",
            &format!("{p} --save-mark --nfmask 2 --mask 3"),
            "E0106",
            "option \"--nfmask\" cannot be used together with \"--mask\"",
        );
        refused("mangle", &format!("{p} --restore-mark --right-shift-mark 33"), "E0105", "out of range (0-32)");
        refused("mangle", &format!("{p} --restore-mark --right-shift-mark 32"), "E0105", "refuses shifts above 31");
    }

    #[test]
    fn nflog_forms() {
        let p = "INPUT -j NFLOG";
        for (given, want) in [
            ("--nflog-group 5 --nflog-prefix \"nf\"", " --nflog-prefix nf --nflog-group 5"),
            ("--nflog-group 0", ""),
            ("--nflog-group 65535 --nflog-threshold 1", " --nflog-group 65535 --nflog-threshold 1"),
            ("--nflog-threshold 0", ""),
            ("--nflog-size 0", " --nflog-size 0"),
            ("--nflog-range 3", " --nflog-range 3"),
            ("--nflog-range 0", ""),
            ("--nflog-prefix \"it's\"", " --nflog-prefix \"it\\'s\""),
            (
                "--nflog-threshold 1 --nflog-size 4294967295 --nflog-prefix x --nflog-group 2",
                " --nflog-prefix x --nflog-group 2 --nflog-size 4294967295 --nflog-threshold 1",
            ),
            ("--nflog-group 0x10", " --nflog-group 16"),
            ("--nflog-group 0 --nflog-prefix \"iptables[DOS]: \"", " --nflog-prefix \"iptables[DOS]: \""),
        ] {
            saved("filter", &format!("{p} {given}"), &format!("{p}{want}"));
        }
        // The prefix is cut to 63 bytes, with a warning.
        let long = "a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 3 4 5 6 7 8 9";
        saved("filter", &format!("{p} --nflog-prefix \"{long}\""), &format!("{p} --nflog-prefix \"{}\"", &long[..63]));
        let parsed = crate::load(&file("filter", &format!("{p} --nflog-prefix \"{long}\"")));
        assert!(parsed.diagnostics.iter().any(|d| d.code == "W0003"));
    }

    #[test]
    fn nflog_refusals() {
        let p = "INPUT -j NFLOG";
        refused(
            "filter",
            &format!("{p} --nflog-group 65536"),
            "E0105",
            "NFLOG: bad value for option \"--nflog-group\", or out of range (0-65535).",
        );
        refused(
            "filter",
            &format!("{p} --nflog-size 128 --nflog-range 3"),
            "E0106",
            "option \"--nflog-range\" cannot be used together with \"--nflog-size\"",
        );
        refused("filter", &format!("{p} --nflog-prefix \"\""), "E0105", "minimum length of 1");
        refused("filter", &format!("{p} --nflog-group 1 --nflog-group 2"), "E0107", "can only be used once");
    }

    #[test]
    fn ct_forms() {
        let p = "PREROUTING -j CT";
        for (given, want) in [
            ("", ""),
            ("--zone 5", " --zone 5"),
            ("--zone 0", ""),
            ("--zone mark", " --zone mark"),
            ("--zone MARK", " --zone mark"),
            ("--zone-orig 5", " --zone-orig 5"),
            ("--zone-reply 5", " --zone-reply 5"),
            ("--zone-orig 0", ""),
            ("--zone-orig mark", " --zone-orig mark"),
            ("--zone 3 --zone-orig 4", " --zone-orig 4"),
            ("--zone-orig 3 --zone-reply 4", " --zone 4"),
            ("--zone mark --zone-orig 4", " --zone-orig mark"),
            ("--zone 0x10", " --zone 16"),
            ("--ctevents new,destroy", " --ctevents new,destroy"),
            (
                "--ctevents destroy,new,mark,secmark,helper,protoinfo,assured,reply,related,natseqinfo",
                " --ctevents new,related,destroy,reply,assured,protoinfo,helper,mark,natseqinfo,secmark",
            ),
            ("--expevents new", " --expevents new"),
            ("--notrack --zone 5 --ctevents new", " --notrack --ctevents new --zone 5"),
            // With --notrack the kernel ignores the helper, so no -p is needed.
            ("--notrack --helper ftp", " --notrack --helper ftp"),
            ("--notrack --helper abcdefghijklmnopqrstuvwxyz", " --notrack --helper abcdefghijklmno"),
        ] {
            let sep = if given.is_empty() { "" } else { " " };
            saved("raw", &format!("{p}{sep}{given}"), &format!("{p}{want}"));
        }
        saved("raw", "PREROUTING -p tcp -j CT --helper ftp", "PREROUTING -p tcp -j CT --helper ftp");
        saved("raw", "PREROUTING -p udp -j CT --helper tftp", "PREROUTING -p udp -j CT --helper tftp");
        saved("raw", "PREROUTING -p tcp -j CT --helper \"\"", "PREROUTING -p tcp -j CT");
        saved(
            "raw",
            "PREROUTING -p tcp -j CT --helper ftp --zone 7 --ctevents new --expevents new",
            "PREROUTING -p tcp -j CT --helper ftp --ctevents new --expevents new --zone 7",
        );
        saved("raw", "OUTPUT -j NOTRACK", "OUTPUT -j NOTRACK");
        saved("raw", "OUTPUT -j CT --notrack", "OUTPUT -j CT --notrack");
        // IPv6 has ftp but not irc.
        saved("raw", "PREROUTING -s ::/0 -p tcp -j CT --helper ftp", "PREROUTING -p tcp -j CT --helper ftp");
    }

    #[test]
    fn ct_refusals() {
        let p = "PREROUTING -j CT";
        refused("raw", &format!("{p} --zone 65536"), "E0105", "Cannot parse 65536 as a zone ID");
        refused("raw", &format!("{p} --zone 5x"), "E0105", "Cannot parse 5x as a zone ID");
        refused("raw", &format!("{p} --ctevents label"), "E0105", "Unknown event type \"label\"");
        refused("raw", &format!("{p} --ctevents new,,new"), "E0105", "Unknown event type \"\"");
        refused("raw", &format!("{p} --ctevents NEW"), "E0105", "Unknown event type \"NEW\"");
        refused("raw", &format!("{p} --expevents destroy"), "E0105", "Unknown event type \"destroy\"");
        refused("raw", &format!("{p} --notrack --notrack"), "E0107", "CT: option \"--notrack\" can only be used once.");
        refused("raw", &format!("{p} --helper ftp"), "E0210", "You must specify a L4 protocol");
        refused("raw", "PREROUTING ! -p tcp -j CT --helper ftp", "E0210", "You must specify a L4 protocol");
        refused("raw", &format!("{p} --timeout foo"), "E0210", "You must specify a L4 protocol");
        refused("raw", "PREROUTING -p udp -j CT --helper ftp", "E0210", "by name and protocol");
        refused("raw", "PREROUTING -p tcp -j CT --helper nope", "E0105", "refuses unknown helpers");
        refused("raw", "PREROUTING -p tcp -j CT --helper FTP", "E0105", "refuses unknown helpers");
        refused("raw", "PREROUTING -s ::/0 -p tcp -j CT --helper irc", "E0105", "refuses unknown helpers");
        for t in ["filter", "mangle", "nat", "security"] {
            refused(t, "OUTPUT -j CT --notrack", "E0210", "only in the raw table");
            refused(t, "OUTPUT -j NOTRACK", "E0210", "only in the raw table");
        }
        refused("raw", "PREROUTING -j NOTRACK --zone 1", "E0101", "unknown option");
    }

    #[test]
    fn tcpmss_forms_and_refusals() {
        let syn = "FORWARD -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j TCPMSS";
        saved("mangle", "FORWARD -p tcp --syn -j TCPMSS --clamp-mss-to-pmtu", &format!("{syn} --clamp-mss-to-pmtu"));
        saved("mangle", "FORWARD -p tcp --syn -j TCPMSS --set-mss 1400", &format!("{syn} --set-mss 1400"));
        // The later of the two options wins.
        saved(
            "mangle",
            "FORWARD -p tcp --syn -j TCPMSS --set-mss 1000 --clamp-mss-to-pmtu",
            &format!("{syn} --clamp-mss-to-pmtu"),
        );
        saved(
            "mangle",
            "FORWARD -p tcp --syn -j TCPMSS --clamp-mss-to-pmtu --set-mss 1000",
            &format!("{syn} --set-mss 1000"),
        );
        saved("mangle", "FORWARD -p tcp --syn -j TCPMSS --set-mss 0", &format!("{syn} --set-mss 0"));
        saved("mangle", "FORWARD -p 6 --syn -j TCPMSS --set-mss 0x10", &format!("{syn} --set-mss 16"));
        saved("mangle", "FORWARD -p tcp --syn -j TCPMSS --set-mss 65515", &format!("{syn} --set-mss 65515"));
        // Any table.
        saved(
            "filter",
            "OUTPUT -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 5",
            "OUTPUT -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 5",
        );
        saved(
            "raw",
            "OUTPUT -p tcp --tcp-flags ACK SYN -j TCPMSS --set-mss 5",
            "OUTPUT -p tcp -m tcp --tcp-flags ACK SYN -j TCPMSS --set-mss 5",
        );

        refused("mangle", "FORWARD -p tcp --syn -j TCPMSS --set-mss 65516", "E0105", "out of range (0-65515)");
        refused("mangle", "FORWARD -s ::/0 -p tcp --syn -j TCPMSS --set-mss 65496", "E0105", "out of range (0-65495)");
        refused("mangle", "FORWARD -p tcp --syn -j TCPMSS --set-mss -1", "E0105", "out of range (0-65515)");
        refused("mangle", "FORWARD -p tcp --syn -j TCPMSS --set-mss 1 --set-mss 2", "E0107", "can only be used once");
        refused("mangle", "FORWARD -p tcp -j TCPMSS", "E0108", "TCPMSS target: At least one parameter is required");
        refused("mangle", "FORWARD -j TCPMSS --set-mss 5", "E0210", "only valid for protocol 6");
        refused("mangle", "FORWARD ! -p tcp -j TCPMSS --set-mss 5", "E0210", "only valid for protocol 6");
        refused("mangle", "FORWARD -p tcp -j TCPMSS --set-mss 5", "E0210", "Only works on TCP SYN packets");
        refused("mangle", "FORWARD -p tcp ! --syn -j TCPMSS --set-mss 5", "E0210", "Only works on TCP SYN packets");
        refused(
            "mangle",
            "PREROUTING -p tcp --syn -j TCPMSS --clamp-mss-to-pmtu",
            "E0210",
            "refuses `-j TCPMSS --clamp-mss-to-pmtu` from PREROUTING",
        );
        refused("mangle", "INPUT -p tcp --syn -j TCPMSS --clamp-mss-to-pmtu", "E0210", "from INPUT");
    }

    #[test]
    fn dnat_forms() {
        for (given, want) in [
            ("-j DNAT --to 10.0.0.3", "-j DNAT --to-destination 10.0.0.3"),
            ("-p tcp -j DNAT --to-destination 10.0.0.3:80", "-p tcp -j DNAT --to-destination 10.0.0.3:80"),
            (
                "-p tcp -j DNAT --to-destination 10.0.0.3-10.0.0.9:80-90",
                "-p tcp -j DNAT --to-destination 10.0.0.3-10.0.0.9:80-90",
            ),
            ("-p tcp -j DNAT --to-destination :80", "-p tcp -j DNAT --to-destination :80"),
            ("-p icmp -j DNAT --to-destination 1.2.3.4:80", "-p icmp -j DNAT --to-destination 1.2.3.4:80"),
            ("! -p tcp -j DNAT --to-destination 1.2.3.4:80", "! -p tcp -j DNAT --to-destination 1.2.3.4:80"),
            ("-p tcp -j DNAT --to-destination 1.2.3.4:http", "-p tcp -j DNAT --to-destination 1.2.3.4:80"),
            ("-p tcp -j DNAT --to-destination 1.2.3.4:0", "-p tcp -j DNAT --to-destination 1.2.3.4:0"),
            ("-p tcp -j DNAT --to-destination 1.2.3.4:80-90/100", "-p tcp -j DNAT --to-destination 1.2.3.4:80-90/100"),
            ("-p udp -j DNAT --to-destination 1.2.3.4:80-90/http", "-p udp -j DNAT --to-destination 1.2.3.4:80-90/80"),
            ("-p udp -j DNAT --to-destination 1.2.3.4:80-90/100x", "-p udp -j DNAT --to-destination 1.2.3.4:80-90/100"),
            ("-j DNAT --to-destination 1.2.3.9-1.2.3.4", "-j DNAT --to-destination 1.2.3.9-1.2.3.4"),
            (
                "-j DNAT --persistent --to-destination 1.2.3.4 --random",
                "-j DNAT --to-destination 1.2.3.4 --random --persistent",
            ),
            ("-j DNAT --to-destination 1.2.3.4 -p tcp", "-p tcp -j DNAT --to-destination 1.2.3.4"),
            ("-p udp -j DNAT --to-destination 1.2.3.4:0x50", "-p udp -j DNAT --to-destination 1.2.3.4:80"),
            ("-p udp -j DNAT --to-destination 0.0.0.0", "-p udp -j DNAT --to-destination 0.0.0.0"),
            ("-p udp -j DNAT --to-destination 1.2.3.4:80-80", "-p udp -j DNAT --to-destination 1.2.3.4:80"),
            ("-p udp -j DNAT --to-destination 1.2.3.4-1.2.3.4", "-p udp -j DNAT --to-destination 1.2.3.4"),
            // libxt_NAT takes a colon at position 2 for "no address".
            ("-p udp -j DNAT --to-destination 12:80", "-p udp -j DNAT --to-destination :80"),
        ] {
            saved("nat", &format!("PREROUTING {given}"), &format!("PREROUTING {want}"));
        }
        saved("nat", "OUTPUT -j DNAT --to 1.1.1.1", "OUTPUT -j DNAT --to-destination 1.1.1.1");
    }

    #[test]
    fn dnat_refusals() {
        let p = "PREROUTING";
        let need = "Need TCP, UDP, SCTP or DCCP with port specification";
        refused("nat", &format!("{p} -j DNAT --to-destination :80"), "E0105", need);
        refused("nat", &format!("{p} -p gre -j DNAT --to-destination 1.2.3.4:80"), "E0105", need);
        // `-p` after the target comes too late for the port check.
        refused("nat", &format!("{p} -j DNAT --to-destination 1.2.3.4:80 -p tcp"), "E0105", need);
        for (arg, msg) in [
            ("1.2.3.4:80:90", "Bad IP address \"1.2.3.4:80:90\""),
            ("1.2.3.4:90-80", "Port range `80' funky"),
            ("1.2.3.4:80-http", "Port `http' not valid"),
            ("1.2.3.4:HTTP", "Port `HTTP' not valid"),
            ("1.2.3.4:65536", "Port `65536' not valid"),
            ("1.2.3.4:80-", "Port `' not valid"),
            ("1.2.3.4:", "Port `' not valid"),
            ("1.2.3.4:80-90/0", "Port `0' not valid"),
            ("1.2.3.4:80/5", "Garbage after port value: `/5'"),
            ("1.2.3.4:08", "Garbage after port value: `8'"),
            ("1.2.3.4:80-90-100", "Garbage after port range: `-100'"),
            ("[1.2.3.4]:80", "Invalid address format"),
            ("host.example", "Bad IP address \"host.example\""),
            ("1.2.3", "Bad IP address \"1.2.3\""),
            ("010.1.1.1", "Bad IP address \"010.1.1.1\""),
            ("1.2.3.4/24", "Bad IP address \"1.2.3.4/24\""),
            ("\"\"", "Bad IP address \"\""),
            ("1.2.3.4-:80", "Bad IP address \"\""),
            ("1.2.3.4-1.2.3.5-1.2.3.6", "Bad IP address \"1.2.3.5-1.2.3.6\""),
        ] {
            refused("nat", &format!("{p} -p tcp -j DNAT --to-destination {arg}"), "E0105", msg);
        }
        refused("nat", &format!("{p} -j DNAT"), "E0108", "DNAT: option \"--to-destination\" must be specified");
        refused("nat", &format!("{p} -j DNAT --to 1.2.3.4 --to 1.2.3.5"), "E0107", "can only be used once");
        refused("nat", &format!("{p} -j DNAT --to 1.2.3.4 --random-fully"), "E0101", "unknown option");
        for t in ["filter", "mangle", "raw"] {
            refused(t, "OUTPUT -j DNAT --to 1.2.3.4", "E0210", "only in the nat table");
        }
        refused("nat", "INPUT -j DNAT --to 1.2.3.4", "E0210", "from INPUT");
        refused("nat", "POSTROUTING -j DNAT --to 1.2.3.4", "E0210", "from POSTROUTING");
    }

    #[test]
    fn dnat_ipv6() {
        let p = "PREROUTING -s ::/0";
        for (given, want) in [
            ("-j DNAT --to-destination ::1", "-j DNAT --to-destination ::1"),
            ("-p tcp -j DNAT --to-destination [::1]:80", "-p tcp -j DNAT --to-destination [::1]:80"),
            (
                "-p tcp -j DNAT --to-destination [2001:db8::1-2001:db8::9]:80-90/100",
                "-p tcp -j DNAT --to-destination [2001:db8::1-2001:db8::9]:80-90/100",
            ),
            ("-j DNAT --to-destination 2001:db8::1-2001:db8::9", "-j DNAT --to-destination 2001:db8::1-2001:db8::9"),
            ("-j DNAT --to-destination [::1]", "-j DNAT --to-destination ::1"),
            ("-p tcp -j DNAT --to-destination []:80", "-p tcp -j DNAT --to-destination :80"),
            ("-j DNAT --to-destination 2001:DB8:0:0::1", "-j DNAT --to-destination 2001:db8::1"),
            ("-p icmp -j DNAT --to-destination [::1]:80", "-p icmp -j DNAT --to-destination [::1]:80"),
            ("-j DNAT --to-destination ::ffff:1.2.3.4", "-j DNAT --to-destination ::ffff:1.2.3.4"),
            // glibc's inet_ntop writes IPv4-compatible addresses dotted.
            ("-j DNAT --to-destination ::1:80", "-j DNAT --to-destination ::0.1.0.128"),
            ("-j DNAT --to-destination 1:0:0:2:0:0:0:3", "-j DNAT --to-destination 1:0:0:2::3"),
            ("-j DNAT --to-destination 1::2:3:4:5:6:7", "-j DNAT --to-destination 1:0:2:3:4:5:6:7"),
        ] {
            saved("nat", &format!("{p} {given}"), &format!("PREROUTING {want}"));
        }
        refused(
            "nat",
            &format!("{p} -p tcp -j DNAT --to-destination [2001:db8::1]-[2001:db8::9]:80"),
            "E0105",
            "Port `db8::9]:80' not valid",
        );
        refused("nat", &format!("{p} -p ipv6-icmp -j DNAT --to-destination [::1]:80"), "E0105", "Need TCP, UDP");
        refused("nat", &format!("{p} -j DNAT --to-destination 1.2.3.4"), "E0105", "Bad IP address \"1.2.3.4\"");
        refused("nat", &format!("{p} -j DNAT --to-destination [::1"), "E0105", "Invalid address format");
        refused("nat", &format!("{p} -j DNAT --to-destination fe80::1%eth0"), "E0105", "Bad IP address");
    }

    #[test]
    fn snat_masquerade_redirect_forms() {
        for (chain, given, want) in [
            ("POSTROUTING", "-j SNAT --to 1.2.3.4", "-j SNAT --to-source 1.2.3.4"),
            (
                "POSTROUTING",
                "-p tcp -j SNAT --to-source 1.2.3.4-1.2.3.9:1000-2000 --random-fully --persistent --random",
                "-p tcp -j SNAT --to-source 1.2.3.4-1.2.3.9:1000-2000 --random --random-fully --persistent",
            ),
            // The base of a shifted port map is lost; it reads back as /0.
            (
                "POSTROUTING",
                "-p tcp -j SNAT --to-source 1.2.3.4:80-90/100",
                "-p tcp -j SNAT --to-source 1.2.3.4:80-90/0",
            ),
            ("POSTROUTING", "-p tcp -j SNAT --to-source :80", "-p tcp -j SNAT --to-source :80"),
            ("INPUT", "-j SNAT --to-source 1.2.3.4", "-j SNAT --to-source 1.2.3.4"),
            ("POSTROUTING", "-j MASQUERADE", "-j MASQUERADE"),
            ("POSTROUTING", "-p tcp -j MASQUERADE --to-ports 1024-65535", "-p tcp -j MASQUERADE --to-ports 1024-65535"),
            ("POSTROUTING", "-p tcp -j MASQUERADE --to-ports http", "-p tcp -j MASQUERADE --to-ports 80"),
            ("POSTROUTING", "-p tcp -j MASQUERADE --to-ports 0x10", "-p tcp -j MASQUERADE --to-ports 16"),
            ("POSTROUTING", "-j MASQUERADE --random-fully --random", "-j MASQUERADE --random --random-fully"),
            (
                "POSTROUTING",
                "-p tcp -j MASQUERADE --to-ports 1000-2000/3000",
                "-p tcp -j MASQUERADE --to-ports 1000-2000/0",
            ),
            ("POSTROUTING", "-p icmp -j MASQUERADE --to-ports 1000", "-p icmp -j MASQUERADE --to-ports 1000"),
            ("PREROUTING", "-j REDIRECT", "-j REDIRECT"),
            ("PREROUTING", "-p tcp -j REDIRECT --to 3128", "-p tcp -j REDIRECT --to-ports 3128"),
            (
                "PREROUTING",
                "-p tcp -j REDIRECT --to-ports 80-90 --random",
                "-p tcp -j REDIRECT --to-ports 80-90 --random",
            ),
            ("PREROUTING", "-p udp -j REDIRECT --to-ports 0-0", "-p udp -j REDIRECT --to-ports 0"),
            ("OUTPUT", "-j REDIRECT --random", "-j REDIRECT --random"),
        ] {
            saved("nat", &format!("{chain} {given}"), &format!("{chain} {want}"));
        }
        saved(
            "nat",
            "POSTROUTING -s ::/0 -p tcp -j SNAT --to-source [::1]:80-90/100",
            "POSTROUTING -p tcp -j SNAT --to-source [::1]:80-90/0",
        );
        let parsed = crate::load(&file("nat", "POSTROUTING -p tcp -j MASQUERADE --to-ports 1-2/3"));
        assert!(parsed.diagnostics.iter().any(|d| d.code == "W0003" && d.message.contains("/0")));
    }

    #[test]
    fn snat_masquerade_redirect_refusals() {
        refused("nat", "POSTROUTING -j SNAT", "E0108", "SNAT: option \"--to-source\" must be specified");
        refused(
            "nat",
            "POSTROUTING -j SNAT --to 1.2.3.4 --to 1.2.3.5",
            "E0107",
            "SNAT: option \"--to-source\" can only be used once.",
        );
        refused("nat", "POSTROUTING -j MASQUERADE --to-ports 1000", "E0105", "Need TCP, UDP, SCTP or DCCP");
        refused("nat", "POSTROUTING -j MASQUERADE --to-ports 1000 -p tcp", "E0105", "Need TCP, UDP, SCTP or DCCP");
        refused(
            "nat",
            "POSTROUTING -p tcp -j MASQUERADE --to-ports 1000:2000",
            "E0105",
            "Invalid port:port syntax - use dash",
        );
        refused("nat", "POSTROUTING -p tcp -j MASQUERADE --to-ports 2000-1000", "E0105", "Port range `1000' funky");
        refused("nat", "POSTROUTING -p tcp -j MASQUERADE --to-ports 5-x", "E0105", "Port `x' not valid");
        refused("nat", "POSTROUTING -j MASQUERADE --persistent", "E0101", "unknown option");
        refused("nat", "POSTROUTING -j MASQUERADE --random --random", "E0107", "can only be used once");
        refused("nat", "PREROUTING -j REDIRECT --to-ports 80", "E0105", "Need TCP, UDP, SCTP or DCCP");
        refused(
            "nat",
            "PREROUTING -p tcp -j REDIRECT --to-ports 80-90/100",
            "E0105",
            "Shifted portmap ranges not supported with this kernel",
        );
        refused("nat", "PREROUTING -p tcp -j REDIRECT --to-ports 80 --random-fully", "E0101", "unknown option");
        refused("nat", "PREROUTING -p udp -j REDIRECT --to-ports 08", "E0105", "Garbage after port value: `8'");
        for t in ["filter", "mangle", "raw", "security"] {
            refused(t, "OUTPUT -j SNAT --to 1.2.3.4", "E0210", "only in the nat table");
            refused(t, "OUTPUT -j MASQUERADE", "E0210", "only in the nat table");
            refused(t, "OUTPUT -j REDIRECT", "E0210", "only in the nat table");
        }
        for c in ["PREROUTING", "INPUT", "OUTPUT"] {
            refused("nat", &format!("{c} -j MASQUERADE"), "E0210", &format!("from {c}"));
        }
        for c in ["PREROUTING", "OUTPUT"] {
            refused("nat", &format!("{c} -j SNAT --to 1.2.3.4"), "E0210", &format!("from {c}"));
        }
        refused("nat", "INPUT -j REDIRECT", "E0210", "from INPUT");
        refused("nat", "POSTROUTING -j REDIRECT", "E0210", "from POSTROUTING");
    }

    #[test]
    fn reject_table() {
        for t in ["nat", "mangle", "raw", "security"] {
            refused(t, "OUTPUT -j REJECT", "E0210", "only in the filter table");
        }
    }

    #[test]
    fn number_parsing_like_strtoumax() {
        use super::{strtou, xt_uint};
        assert_eq!(strtou("0x1f"), Some((31, "")));
        assert_eq!(strtou("010"), Some((8, "")));
        assert_eq!(strtou("09"), Some((0, "9")));
        assert_eq!(strtou("0x"), Some((0, "x")));
        assert_eq!(strtou(" +5/3"), Some((5, "/3")));
        assert_eq!(strtou("-1"), None);
        assert_eq!(strtou(""), None);
        assert_eq!(xt_uint("65535", 65535), Some(65535));
        assert_eq!(xt_uint("65536", 65535), None);
        assert_eq!(xt_uint("1 ", 65535), None);
    }
}
